// The post-fork path of the guest agent: what runs in a freshly cloned child between
// clone(2) and execve(2). The agent is multi-threaded, so that child may only make
// async-signal-safe calls; this helper does exactly that, from a configuration the
// Swift side prepared completely beforehand (every path joined, every string a C
// string, nothing allocated after the clone). It has no policy of its own.
#ifndef AGENT_SPAWN_H
#define AGENT_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

struct agent_mount {
    const char *source;   // may be NULL
    const char *target;   // absolute host-side path (rootfs already joined)
    const char *fstype;   // may be NULL
    unsigned long flags;  // MS_* without MS_RDONLY for bind mounts (see remount_flags)
    const char *data;     // may be NULL
    unsigned long remount_flags;  // non-zero: bind mounts remounted MS_REMOUNT|MS_BIND|these
    unsigned long propagation;    // non-zero: mount(NULL, target, NULL, propagation)
    int is_file;          // create the target as an empty file instead of a directory
};

struct agent_symlink {
    const char *target;   // what the link points to
    const char *path;     // absolute host-side path of the link
};

struct agent_device {
    const char *path;     // absolute path in the container
    unsigned int mode;    // S_IFCHR/S_IFBLK/S_IFIFO | permission bits
    unsigned int major;
    unsigned int minor;
    unsigned int uid;
    unsigned int gid;
};

struct agent_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

struct agent_spawn_config {
    // Create: namespaces to unshare through clone (CLONE_NEWNS|CLONE_NEWPID|...).
    int clone_flags;
    // Exec: namespace fds to join (setns), in order; the process then forks once more so
    // that it lands in the joined PID namespace, and reports the final pid on pid_fd.
    const int *join_ns_fds;
    int join_ns_count;
    int pid_fd;
    int join_root_fd;                     // -1 or the container init's root (/proc/PID/root)
    // Create: namespaces of another container of the sandbox to join (setns) right after
    // the clone, before the filesystem is set up (ipc, uts).
    const int *share_ns_fds;
    int share_ns_count;

    // Filesystem (create only; rootfs NULL for exec).
    const char *rootfs;
    const struct agent_mount *mounts;
    int mount_count;
    const struct agent_symlink *symlinks;
    int symlink_count;
    const char *const *masked_paths;      // container paths
    int masked_count;
    const char *const *readonly_paths;    // container paths
    int readonly_count;
    int readonly_rootfs;
    const char *hostname;                 // may be NULL
    const struct agent_device *devices;   // made once the root is entered (container paths)
    int device_count;
    const char *const *sysctl_paths;      // /proc/sys/..., written in the new namespaces
    const char *const *sysctl_values;
    int sysctl_count;

    // Process.
    const char *cwd;
    const char *const *argv;
    const char *const *envp;
    const char *search_path;              // PATH value for argv[0] without '/'
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
    const struct agent_rlimit *rlimits;
    int rlimit_count;
    int set_capabilities;
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    int cap_last;                         // /proc/sys/kernel/cap_last_cap
    int no_new_privileges;
    int oom_score_adj_set;
    int oom_score_adj;

    // stdio and control.
    int stdin_fd, stdout_fd, stderr_fd;   // dup2'ed onto 0, 1, 2
    int terminal;                         // the process gets a terminal (setsid + TIOCSCTTY)
    // Terminal processes: the child opens a pty in the container's own devpts (so that
    // ttyname works inside) and sends the controller side over this socket (SCM_RIGHTS).
    // The std*_fd fields are then ignored. -1: stdin_fd is already a terminal.
    int console_socket;
    unsigned short console_rows, console_columns;
    const int *cgroup_procs_fds;          // open cgroup.procs files (one per hierarchy): joined first
    int cgroup_procs_count;
    int sync_fd;                          // pipe (O_CLOEXEC): readiness and errors, see below
    int start_fd;                         // -1 or a pipe: wait for one byte before execve
    int parent_death_signal;              // 0 or a signal sent when the agent dies
};

// Messages on sync_fd, each exactly this size: err == 0 means "set up, waiting for
// start" (only sent when start_fd >= 0); err != 0 is an errno with the failed step.
// After execve the pipe closes (O_CLOEXEC), so end of file means the program runs.
struct agent_spawn_report {
    int32_t err;
    char step[60];
};

// Clones the child and returns its pid (for exec: the pid of the intermediate child,
// the final pid arrives on pid_fd), or -1 with errno.
pid_t agent_spawn(const struct agent_spawn_config *config);

// Thin wrappers for what Swift cannot call directly.
int agent_if_up(const char *name);
int agent_if_set_mtu(const char *name, int mtu);
int agent_if_rename(const char *name, const char *new_name);
int agent_power_off(void);
int agent_set_winsize(int fd, unsigned short rows, unsigned short columns);
int agent_socketpair_cloexec(int fds[2]);
// Receives one descriptor sent with SCM_RIGHTS; -1 (errno 0 at end of stream) if none.
int agent_receive_fd(int socket);
int agent_set_subreaper(void);
int agent_accept_cloexec(int listener);
int agent_pipe_cloexec(int fds[2]);
int agent_set_pipe_size(int fd, int size);
uint32_t agent_random_u32(void);

#endif
