// See include/agent_spawn.h. Everything after the clone below is async-signal-safe:
// raw system calls, no allocation, no locks, no stdio. The child is a raw clone of a
// multi-threaded process, so glibc still believes the other threads exist: nothing here
// may call a glibc function that talks to them (setuid family, fork, abort).
#define _GNU_SOURCE
#include "agent_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void report(int fd, int err, const char *step) {
    struct agent_spawn_report message;
    memset(&message, 0, sizeof message);
    message.err = err;
    size_t n = strlen(step);
    if (n >= sizeof message.step) n = sizeof message.step - 1;
    memcpy(message.step, step, n);
    ssize_t ignored = write(fd, &message, sizeof message);
    (void)ignored;
}

static void fail(const struct agent_spawn_config *c, const char *step) {
    report(c->sync_fd, errno ? errno : EINVAL, step);
    _exit(127);
}

// mkdir -p on a path (copied into a stack buffer); the last component is created as a
// directory unless as_file, then as an empty file.
static int make_path(const char *path, int as_file) {
    char buffer[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buffer) { errno = ENAMETOOLONG; return -1; }
    memcpy(buffer, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buffer[i] == '/') {
            buffer[i] = 0;
            if (mkdir(buffer, 0755) != 0 && errno != EEXIST) return -1;
            buffer[i] = '/';
        }
    }
    if (as_file) {
        int fd = open(buffer, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) {
            if (errno == EEXIST || errno == EISDIR) return 0;
            return -1;
        }
        close(fd);
        return 0;
    }
    if (mkdir(buffer, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

// One linux.devices node, inside the container's root: its directory made, whatever is
// already at its path kept (a bound default device, a file of the image), as runc does.
static void make_device(const struct agent_spawn_config *c, const struct agent_device *d) {
    char parent[4096];
    size_t n = strlen(d->path);
    if (n == 0 || n >= sizeof parent) fail(c, "device path");
    memcpy(parent, d->path, n + 1);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        if (make_path(parent, 0) != 0) fail(c, "create the device's directory");
    }
    dev_t number = makedev(d->major, d->minor);
    struct stat st;
    if (lstat(d->path, &st) == 0) return;
    if (mknod(d->path, d->mode, number) != 0) fail(c, "mknod");
    if (chown(d->path, d->uid, d->gid) != 0) fail(c, "chown device");
    if (chmod(d->path, d->mode & 07777) != 0) fail(c, "chmod device");
}

static void write_sysctls(const struct agent_spawn_config *c) {
    for (int i = 0; i < c->sysctl_count; i++) {
        int fd = open(c->sysctl_paths[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(c, "open sysctl");
        size_t length = strlen(c->sysctl_values[i]);
        ssize_t written = write(fd, c->sysctl_values[i], length);
        close(fd);
        if (written != (ssize_t)length) fail(c, "write sysctl");
    }
}

static void set_up_filesystem(const struct agent_spawn_config *c) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(c, "make / private");
    if (mount(c->rootfs, c->rootfs, NULL, MS_BIND | MS_REC, NULL) != 0) fail(c, "bind rootfs");
    for (int i = 0; i < c->mount_count; i++) {
        const struct agent_mount *m = &c->mounts[i];
        if (make_path(m->target, m->is_file) != 0) fail(c, "create mount point");
        if (mount(m->source, m->target, m->fstype, m->flags, m->data) != 0) fail(c, "mount");
        if (m->remount_flags && mount(NULL, m->target, NULL, MS_REMOUNT | MS_BIND | m->remount_flags, NULL) != 0)
            fail(c, "remount bind mount");
        if (m->propagation && mount(NULL, m->target, NULL, m->propagation, NULL) != 0) fail(c, "mount propagation");
    }
    for (int i = 0; i < c->symlink_count; i++) {
        if (symlink(c->symlinks[i].target, c->symlinks[i].path) != 0 && errno != EEXIST) fail(c, "symlink");
    }
    if (chdir(c->rootfs) != 0) fail(c, "chdir rootfs");
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) != 0) fail(c, "detach old root");
    } else if (errno == EINVAL) {
        // The agent runs from the initramfs, whose rootfs cannot be pivoted away from:
        // move the container's root onto / and chroot into it (runc's no-pivot path).
        if (mount(".", "/", NULL, MS_MOVE, NULL) != 0) fail(c, "move the rootfs onto /");
        if (chroot(".") != 0) fail(c, "chroot");
    } else {
        fail(c, "pivot_root");
    }
    if (chdir("/") != 0) fail(c, "chdir /");
    for (int i = 0; i < c->device_count; i++) make_device(c, &c->devices[i]);
    for (int i = 0; i < c->masked_count; i++) {
        const char *path = c->masked_paths[i];
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (mount("tmpfs", path, "tmpfs", MS_RDONLY, NULL) != 0) fail(c, "mask directory");
        } else if (mount("/dev/null", path, NULL, MS_BIND, NULL) != 0) {
            fail(c, "mask file");
        }
    }
    for (int i = 0; i < c->readonly_count; i++) {
        const char *path = c->readonly_paths[i];
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) != 0) {
            if (errno == ENOENT) continue;
            fail(c, "bind readonly path");
        }
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, NULL) != 0) fail(c, "remount readonly path");
    }
    if (c->readonly_rootfs && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
        fail(c, "readonly rootfs");
}

static int send_fd(int socket, int fd) {
    char byte = 'c';
    struct iovec io = { .iov_base = &byte, .iov_len = 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = control.buffer,
                              .msg_controllen = sizeof control.buffer };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof(int));
    return sendmsg(socket, &message, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

// Opens a pty in the process's own /dev/pts, hands the controller to the agent, and
// returns the terminal side.
static int open_console(const struct agent_spawn_config *c) {
    int controller = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (controller < 0 && errno == ENOENT) controller = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (controller < 0) fail(c, "open /dev/ptmx");
    int unlock = 0;
    if (ioctl(controller, TIOCSPTLCK, &unlock) != 0) fail(c, "unlock pty");
    int terminal = ioctl(controller, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (terminal < 0) fail(c, "open the pty peer");
    if (c->console_rows || c->console_columns) {
        struct winsize size = { .ws_row = c->console_rows, .ws_col = c->console_columns };
        if (ioctl(controller, TIOCSWINSZ, &size) != 0) fail(c, "set the console size");
    }
    if (send_fd(c->console_socket, controller) != 0) fail(c, "send the pty to the agent");
    close(controller);
    return terminal;
}

static void set_oom_score_adj(const struct agent_spawn_config *c) {
    if (c->oom_score_adj_set) {
        char text[16];
        int v = c->oom_score_adj, n = 0;
        char digits[12];
        int negative = v < 0;
        unsigned int u = negative ? (unsigned int)(-v) : (unsigned int)v;
        do { digits[n++] = (char)('0' + u % 10); u /= 10; } while (u && n < 11);
        int k = 0;
        if (negative) text[k++] = '-';
        while (n) text[k++] = digits[--n];
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, text, k) != k) fail(c, "oom_score_adj");
        close(fd);
    }
}

static void set_up_process(const struct agent_spawn_config *c) {
    for (int i = 0; i < c->rlimit_count; i++) {
        struct rlimit limit = { .rlim_cur = c->rlimits[i].soft, .rlim_max = c->rlimits[i].hard };
        if (setrlimit(c->rlimits[i].resource, &limit) != 0) fail(c, "setrlimit");
    }
    if (setsid() < 0) fail(c, "setsid");
    int fds[3] = { c->stdin_fd, c->stdout_fd, c->stderr_fd };
    if (c->terminal && c->console_socket >= 0) {
        int terminal = open_console(c);
        fds[0] = fds[1] = fds[2] = terminal;
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] == i) {
            int flags = fcntl(i, F_GETFD);
            if (flags >= 0) fcntl(i, F_SETFD, flags & ~FD_CLOEXEC);
        } else if (dup2(fds[i], i) < 0) {
            fail(c, "dup2 stdio");
        }
    }
    if (c->terminal && ioctl(0, TIOCSCTTY, 0) != 0) fail(c, "TIOCSCTTY");
}

static void set_up_user_and_exec(const struct agent_spawn_config *c) {
    if (c->start_fd >= 0) {
        report(c->sync_fd, 0, "ready");
        char byte;
        ssize_t n;
        do { n = read(c->start_fd, &byte, 1); } while (n < 0 && errno == EINTR);
        if (n != 1) _exit(127);  // the container was removed before it started
    }
    if (c->cwd && chdir(c->cwd) != 0) fail(c, "chdir to the process cwd");
    if (c->set_capabilities) {
        for (int cap = 0; cap <= c->cap_last; cap++) {
            if (cap < 64 && (c->cap_bounding & (1ULL << cap))) continue;
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) fail(c, "drop bounding capability");
        }
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail(c, "PR_SET_KEEPCAPS");
    }
    // Raw system calls: glibc's wrappers would broadcast SIGSETXID to the agent's other
    // threads, which do not exist in this child, and wait for them forever.
    if (syscall(SYS_setgroups, (size_t)c->group_count, c->groups) != 0) fail(c, "setgroups");
    if (syscall(SYS_setresgid, c->gid, c->gid, c->gid) != 0) fail(c, "setresgid");
    if (syscall(SYS_setresuid, c->uid, c->uid, c->uid) != 0) fail(c, "setresuid");
    if (c->set_capabilities) {
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct data[2];
        data[0].effective = (uint32_t)c->cap_effective;
        data[1].effective = (uint32_t)(c->cap_effective >> 32);
        data[0].permitted = (uint32_t)c->cap_permitted;
        data[1].permitted = (uint32_t)(c->cap_permitted >> 32);
        data[0].inheritable = (uint32_t)c->cap_inheritable;
        data[1].inheritable = (uint32_t)(c->cap_inheritable >> 32);
        if (syscall(SYS_capset, &header, data) != 0) fail(c, "capset");
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) fail(c, "clear ambient");
        for (int cap = 0; cap <= c->cap_last && cap < 64; cap++) {
            if (!(c->cap_ambient & (1ULL << cap))) continue;
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) fail(c, "raise ambient capability");
        }
    }
    if (c->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(c, "no_new_privs");

    const char *file = c->argv[0];
    if (strchr(file, '/') != NULL || c->search_path == NULL) {
        execve(file, (char *const *)c->argv, (char *const *)c->envp);
        fail(c, "execve");
    }
    // PATH search (execvpe is not async-signal-safe in every libc).
    char candidate[4096];
    int saved = ENOENT;
    const char *p = c->search_path;
    size_t file_length = strlen(file);
    while (1) {
        const char *end = strchr(p, ':');
        size_t dir_length = end ? (size_t)(end - p) : strlen(p);
        if (dir_length + 1 + file_length + 1 <= sizeof candidate) {
            size_t k = 0;
            if (dir_length == 0) { candidate[k++] = '.'; }
            else { memcpy(candidate, p, dir_length); k = dir_length; }
            candidate[k++] = '/';
            memcpy(candidate + k, file, file_length + 1);
            execve(candidate, (char *const *)c->argv, (char *const *)c->envp);
            if (errno != ENOENT && errno != ENOTDIR) saved = errno;
        }
        if (!end) break;
        p = end + 1;
    }
    errno = saved;
    fail(c, "execve (PATH search)");
}

pid_t agent_spawn(const struct agent_spawn_config *c) {
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)c->clone_flags | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid != 0) return pid;  // parent (or -1)

    // Child.
    if (c->parent_death_signal) prctl(PR_SET_PDEATHSIG, c->parent_death_signal, 0, 0, 0);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        signal(s, SIG_DFL);
    }
    for (int i = 0; i < c->share_ns_count; i++) {
        if (setns(c->share_ns_fds[i], 0) != 0) fail(c, "join the sandbox's namespace");
    }
    write_sysctls(c);
    if (c->join_ns_count > 0) {
        for (int i = 0; i < c->join_ns_count; i++) {
            if (setns(c->join_ns_fds[i], 0) != 0) fail(c, "setns");
        }
        // setns put us at the mount namespace's root; the container's root may be a
        // chroot below it (no-pivot path), so take the init's root explicitly.
        if (c->join_root_fd >= 0) {
            if (fchdir(c->join_root_fd) != 0) fail(c, "enter the container root");
            if (chroot(".") != 0) fail(c, "chroot into the container root");
            if (chdir("/") != 0) fail(c, "chdir /");
        }
        // A raw clone, not fork(): glibc's fork runs atfork handlers and takes locks that
        // another agent thread may have held at the time of the first clone.
        pid_t grandchild = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0);
        if (grandchild < 0) fail(c, "fork into the PID namespace");
        if (grandchild > 0) {
            int32_t value = grandchild;
            ssize_t ignored = write(c->pid_fd, &value, sizeof value);
            (void)ignored;
            _exit(0);
        }
        if (c->parent_death_signal) prctl(PR_SET_PDEATHSIG, c->parent_death_signal, 0, 0, 0);
    }
    for (int i = 0; i < c->cgroup_procs_count; i++) {
        if (write(c->cgroup_procs_fds[i], "0", 1) != 1) fail(c, "join cgroup");
    }
    set_oom_score_adj(c);  // through the agent's /proc, before the container's replaces it
    if (c->rootfs) set_up_filesystem(c);
    if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) != 0) fail(c, "sethostname");
    set_up_process(c);
    set_up_user_and_exec(c);
    _exit(127);
}

// MARK: thin wrappers

static int inet_socket(void) { return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); }

int agent_if_up(const char *name) {
    int fd = inet_socket();
    if (fd < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    int result = ioctl(fd, SIOCGIFFLAGS, &request);
    if (result == 0) {
        request.ifr_flags |= IFF_UP | IFF_RUNNING;
        result = ioctl(fd, SIOCSIFFLAGS, &request);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

int agent_if_set_mtu(const char *name, int mtu) {
    int fd = inet_socket();
    if (fd < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    request.ifr_mtu = mtu;
    int result = ioctl(fd, SIOCSIFMTU, &request);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

int agent_if_rename(const char *name, const char *new_name) {
    int fd = inet_socket();
    if (fd < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    strncpy(request.ifr_newname, new_name, IFNAMSIZ - 1);
    int result = ioctl(fd, SIOCSIFNAME, &request);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

int agent_power_off(void) {
    sync();
    return reboot(RB_POWER_OFF);
}

int agent_set_winsize(int fd, unsigned short rows, unsigned short columns) {
    struct winsize size = { .ws_row = rows, .ws_col = columns };
    return ioctl(fd, TIOCSWINSZ, &size);
}

int agent_set_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int agent_accept_cloexec(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}

int agent_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int agent_set_pipe_size(int fd, int size) {
    return fcntl(fd, F_SETPIPE_SZ, size);
}

uint32_t agent_random_u32(void) {
    uint32_t value = 0;
    if (getrandom(&value, sizeof value, 0) != sizeof value) value = (uint32_t)getpid() * 2654435761u;
    return value;
}

int agent_socketpair_cloexec(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

int agent_receive_fd(int socket) {
    char byte;
    struct iovec io = { .iov_base = &byte, .iov_len = 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr message = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = control.buffer,
                              .msg_controllen = sizeof control.buffer };
    ssize_t n;
    do { n = recvmsg(socket, &message, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n <= 0) { if (n == 0) errno = 0; return -1; }
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&message); h; h = CMSG_NXTHDR(&message, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && h->cmsg_len == CMSG_LEN(sizeof(int))) {
            int fd;
            memcpy(&fd, CMSG_DATA(h), sizeof fd);
            return fd;
        }
    }
    errno = EPROTO;
    return -1;
}
