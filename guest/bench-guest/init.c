/*
 * kata-bench's device-throughput guest: PID 1 of a one-program initramfs (one static
 * process, because each new process risks the stale-page flaw of the PVM test hosts).
 *
 * In the guest it mounts proc, sysfs and devtmpfs and measures, for bench.seconds each:
 *   - 4 KiB random reads (O_DIRECT) from /dev/vda;
 *   - 1 MiB sequential writes (O_DIRECT, fdatasync at the end) to /dev/vda;
 *   - a vsock stream to the host (CID 2, port bench.vsock_port): 64 KiB writes; the host
 *     side counts what arrives.
 * With bench.fs=1 it measures files instead, for bench.seconds each, in two filesystems:
 * virtio-fs (tag "bench") and an ext4 disk (/dev/vda): 1 MiB sequential writes (fsync at
 * the end), 1 MiB sequential reads of that file after dropping the guest's caches, and
 * metadata cycles (create, stat, unlink of a new file).
 * It prints one line per figure: "KATA-BENCH key=value", then powers off.
 *
 * On the host, the same code measures the same operations beside it:
 *   init --host-file FILE SECONDS   (random reads and sequential writes on FILE, O_DIRECT)
 *   init --host-stream SECONDS      (64 KiB writes through a Unix stream socket pair)
 *   init --host-fs DIR SECONDS      (the file operations in DIR)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/vm_sockets.h>

#define MIB (1024.0 * 1024.0)

#define REPORT_PREFIX "KATA-BENCH"
#include "../include/guest_report.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static long long size_of(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    if (S_ISBLK(st.st_mode)) {
        unsigned long long bytes = 0;
        if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) return -1;
        return (long long)bytes;
    }
    return st.st_size;
}

/* 4 KiB reads at random 4 KiB-aligned offsets for `seconds`. */
static void random_reads(const char *path, double seconds, const char *prefix) {
    char key[64];
    int fd = open(path, O_RDONLY | O_DIRECT);
    long long size = fd >= 0 ? size_of(fd) : -1;
    void *buffer = NULL;
    if (fd < 0 || size < 4096 || posix_memalign(&buffer, 4096, 4096) != 0) {
        snprintf(key, sizeof key, "%s_randread_4k_error", prefix);
        report(key, "%s", fd < 0 ? strerror(errno) : "device too small");
        if (fd >= 0) close(fd);
        return;
    }
    long long blocks = size / 4096, done = 0, errors = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 16; i++) {
            off_t offset = (off_t)(next_random() % (uint64_t)blocks) * 4096;
            if (pread(fd, buffer, 4096, offset) == 4096) done++; else errors++;
        }
        t = now();
    }
    double elapsed = t - start;
    snprintf(key, sizeof key, "%s_randread_4k_iops", prefix);
    report(key, "%.1f", done / elapsed);
    snprintf(key, sizeof key, "%s_randread_4k_mibs", prefix);
    report(key, "%.2f", done * 4096 / MIB / elapsed);
    snprintf(key, sizeof key, "%s_randread_4k_errors", prefix);
    report(key, "%lld", errors);
    free(buffer);
    close(fd);
}

/* 1 MiB sequential writes, wrapping at the end of the device, for `seconds`; then fdatasync. */
static void sequential_writes(const char *path, double seconds, const char *prefix) {
    char key[64];
    const size_t chunk = 1 << 20;
    int fd = open(path, O_WRONLY | O_DIRECT);
    long long size = fd >= 0 ? size_of(fd) : -1;
    void *buffer = NULL;
    if (fd < 0 || size < (long long)chunk || posix_memalign(&buffer, 4096, chunk) != 0) {
        snprintf(key, sizeof key, "%s_seqwrite_1m_error", prefix);
        report(key, "%s", fd < 0 ? strerror(errno) : "device too small");
        if (fd >= 0) close(fd);
        return;
    }
    memset(buffer, 0xA5, chunk);
    long long chunks = size / (long long)chunk, done = 0, errors = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        off_t offset = (off_t)(done % chunks) * (off_t)chunk;
        if (pwrite(fd, buffer, chunk, offset) == (ssize_t)chunk) done++; else errors++;
        t = now();
    }
    fdatasync(fd);
    double elapsed = now() - start;
    snprintf(key, sizeof key, "%s_seqwrite_1m_mibs", prefix);
    report(key, "%.2f", done * (chunk / MIB) / elapsed);
    snprintf(key, sizeof key, "%s_seqwrite_1m_errors", prefix);
    report(key, "%lld", errors);
    free(buffer);
    close(fd);
}

/* 64 KiB writes on a connected stream socket for `seconds`; returns bytes sent. */
static long long stream_send(int fd, double seconds) {
    static char buffer[65536];
    memset(buffer, 0x5A, sizeof buffer);
    long long sent = 0;
    double end = now() + seconds;
    while (now() < end) {
        ssize_t n = write(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        sent += n;
    }
    return sent;
}

static void vsock_stream(unsigned port, double seconds) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm address = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port };
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        report("vsock_error", "%s", strerror(errno));
        if (fd >= 0) close(fd);
        return;
    }
    double start = now();
    long long sent = stream_send(fd, seconds);
    double elapsed = now() - start;
    report("vsock_sent_bytes", "%lld", sent);
    report("vsock_guest_mibs", "%.2f", sent / MIB / elapsed);
    close(fd);
}

static void unix_stream(double seconds) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) {
        report("host_stream_error", "%s", strerror(errno));
        return;
    }
    pid_t child = fork();
    if (child == 0) {
        close(pair[0]);
        stream_send(pair[1], seconds);
        _exit(0);
    }
    close(pair[1]);
    static char buffer[65536];
    long long received = 0;
    double start = now();
    for (;;) {
        ssize_t n = read(pair[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        received += n;
    }
    double elapsed = now() - start;
    waitpid(child, NULL, 0);
    report("host_stream_mibs", "%.2f", received / MIB / elapsed);
}

/* The file written and read back is at most this large: it wraps, so the disk stays small. */
#define FS_FILE_CAP (256LL << 20)

static void drop_caches(void) {
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "3", 1) != 1) { /* not root on the host: reads may hit the cache */ }
        close(fd);
    }
}

/* Sequential write, then read, of DIR/bench.dat, then metadata cycles, `seconds` each. */
static void file_operations(const char *dir, double seconds, const char *prefix) {
    char key[96], path[512];
    const size_t chunk = 1 << 20;
    static char buffer[1 << 20];
    memset(buffer, 0xA5, sizeof buffer);
    snprintf(path, sizeof path, "%s/bench.dat", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(key, sizeof key, "%s_error", prefix);
        report(key, "%s: %s", path, strerror(errno));
        return;
    }
    long long written = 0, errors = 0;
    double start = now(), end = start + seconds;
    while (now() < end) {
        off_t offset = (off_t)(written % FS_FILE_CAP);
        if (pwrite(fd, buffer, chunk, offset) == (ssize_t)chunk) written += chunk; else errors++;
    }
    fsync(fd);
    double elapsed = now() - start;
    snprintf(key, sizeof key, "%s_seqwrite_1m_mibs", prefix);
    report(key, "%.2f", written / MIB / elapsed);
    long long size = written < FS_FILE_CAP ? written : FS_FILE_CAP;
    drop_caches();
    long long read_bytes = 0;
    start = now(), end = start + seconds;
    while (size >= (long long)chunk && now() < end) {
        off_t offset = (off_t)(read_bytes % size);
        if (pread(fd, buffer, chunk, offset) == (ssize_t)chunk) read_bytes += chunk; else { errors++; break; }
    }
    elapsed = now() - start;
    snprintf(key, sizeof key, "%s_seqread_1m_mibs", prefix);
    report(key, "%.2f", read_bytes / MIB / elapsed);
    close(fd);
    unlink(path);
    long long cycles = 0;
    start = now(), end = start + seconds;
    while (now() < end) {
        snprintf(path, sizeof path, "%s/meta-%lld", dir, cycles);
        struct stat st;
        int made = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (made < 0 || close(made) != 0 || stat(path, &st) != 0 || unlink(path) != 0) { errors++; break; }
        cycles++;
    }
    elapsed = now() - start;
    snprintf(key, sizeof key, "%s_meta_cycles_per_s", prefix);
    report(key, "%.1f", cycles / elapsed);
    snprintf(key, sizeof key, "%s_errors", prefix);
    report(key, "%lld", errors);
}

static void guest_file_operations(double seconds) {
    mkdir("/mnt", 0755);
    mkdir("/mnt/fs", 0755);
    mkdir("/mnt/blk", 0755);
    if (mount("bench", "/mnt/fs", "virtiofs", 0, NULL) == 0) file_operations("/mnt/fs", seconds, "guest_virtiofs");
    else report("guest_virtiofs_error", "mount: %s", strerror(errno));
    if (mount("/dev/vda", "/mnt/blk", "ext4", 0, NULL) == 0) file_operations("/mnt/blk", seconds, "guest_ext4");
    else report("guest_ext4_error", "mount: %s", strerror(errno));
    umount("/mnt/fs");
    umount("/mnt/blk");
}

static double cmdline_number(const char *cmdline, const char *key, double fallback) {
    const char *p = strstr(cmdline, key);
    if (!p) return fallback;
    double value = strtod(p + strlen(key), NULL);
    return value > 0 ? value : fallback;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--host-file") == 0) {
        double seconds = strtod(argv[3], NULL);
        random_reads(argv[2], seconds, "host_blk");
        sequential_writes(argv[2], seconds, "host_blk");
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "--host-fs") == 0) {
        file_operations(argv[2], strtod(argv[3], NULL), "host_fs");
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--host-stream") == 0) {
        unix_stream(strtod(argv[2], NULL));
        return 0;
    }
    if (getpid() != 1) {
        fprintf(stderr, "usage: %s --host-file FILE SECONDS | --host-stream SECONDS | --host-fs DIR SECONDS (or run as PID 1 in the guest)\n", argv[0]);
        return 64;
    }
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    char cmdline[4096] = "";
    int fd = open("/proc/cmdline", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
        cmdline[n > 0 ? n : 0] = 0;
        close(fd);
    }
    double seconds = cmdline_number(cmdline, "bench.seconds=", 5);
    unsigned port = (unsigned)cmdline_number(cmdline, "bench.vsock_port=", 0);
    report("begin", "1");
    if (cmdline_number(cmdline, "bench.fs=", 0) > 0) {
        guest_file_operations(seconds);
    } else {
        random_reads("/dev/vda", seconds, "guest_blk");
        sequential_writes("/dev/vda", seconds, "guest_blk");
        if (port) vsock_stream(port, seconds);
    }
    report("end", "1");
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
