/*
 * PID 1 of the virtio-fs end-to-end test: one static process does every check (each new
 * process risks the stale-page flaw of the PVM test hosts, shared/guest-kernel/README.md).
 *
 * It mounts the virtio-fs tag "kataShared" on /mnt (served by virtiofsd on the host) and
 * reports on stdout, lines "KATA-FS key=value":
 *   - a file the host wrote before boot, read back;
 *   - create, rename, hard link, symlink, chmod, chown, truncate, an mmap'd write with
 *     msync and fsync, each checked in the guest (the host checks its side afterwards);
 *   - a file of kata.big_mib MiB (default 64) written in 1 MiB chunks, fsync'd and read
 *     back: both checksums;
 *   - the entries of /mnt/many (the host made 10,000 files);
 *   - "waiting=host-write", then a file the host writes now, seen without a remount;
 *   - "waiting=kill", five quiet seconds in which the host kills virtiofsd, then the
 *     errno of a lookup (the VMM answers EIO once the daemon is gone).
 * Then it powers off.
 *
 * Checksum: FNV-1a over little-endian 64-bit words. Big-file byte j of chunk c:
 * (j * 13 + c * 17) & 0xff.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REPORT_PREFIX "KATA-FS"
#include "../include/guest_report.h"

#define CHUNK (1u << 20)
static unsigned big_chunks = 64;

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    return h;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int read_file(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0) return -errno;
    buf[n] = 0;
    return (int)n;
}

static const char *result(int ok) { return ok ? "ok" : strerror(errno); }

static void metadata(void) {
    int fd = open("/mnt/g1.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    int ok = fd >= 0 && write(fd, "guest data\n", 11) == 11 && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    report("create", "%s", result(ok));

    struct stat st;
    ok = rename("/mnt/g1.txt", "/mnt/g2.txt") == 0 && stat("/mnt/g1.txt", &st) < 0 && errno == ENOENT;
    report("rename", "%s", result(ok));
    ok = link("/mnt/g2.txt", "/mnt/g3.txt") == 0 && stat("/mnt/g2.txt", &st) == 0;
    report("link", "%s nlink=%lu", result(ok), ok ? (unsigned long)st.st_nlink : 0ul);
    char target[64] = {0};
    ok = symlink("g2.txt", "/mnt/sym") == 0 && readlink("/mnt/sym", target, sizeof target - 1) == 6;
    report("symlink", "%s target=%s", result(ok), target);
    ok = chmod("/mnt/g2.txt", 0640) == 0 && stat("/mnt/g2.txt", &st) == 0;
    report("chmod", "%s mode=%o", result(ok), ok ? (unsigned)(st.st_mode & 07777) : 0u);
    ok = chown("/mnt/g2.txt", 1234, 5678) == 0 && stat("/mnt/g2.txt", &st) == 0;
    report("chown", "%s owner=%u:%u", result(ok), ok ? (unsigned)st.st_uid : 0u, ok ? (unsigned)st.st_gid : 0u);
    ok = truncate("/mnt/g2.txt", 4) == 0 && stat("/mnt/g2.txt", &st) == 0;
    report("truncate", "%s size=%lld", result(ok), ok ? (long long)st.st_size : -1ll);

    fd = open("/mnt/mm.bin", O_CREAT | O_RDWR | O_TRUNC, 0644);
    ok = fd >= 0 && ftruncate(fd, 8192) == 0;
    unsigned char *map = ok ? mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    ok = map != MAP_FAILED;
    if (ok) {
        for (int i = 0; i < 8192; i++) map[i] = (unsigned char)(i * 3);
        ok = msync(map, 8192, MS_SYNC) == 0 && munmap(map, 8192) == 0 && fsync(fd) == 0;
    }
    if (fd >= 0) close(fd);
    report("mmap", "%s", result(ok));
}

static void big_file(void) {
    static unsigned char buf[CHUNK];
    uint64_t written = 0xcbf29ce484222325ull, read_back = written;
    int fd = open("/mnt/big.bin", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    int ok = fd >= 0;
    for (unsigned c = 0; ok && c < big_chunks; c++) {
        for (unsigned j = 0; j < CHUNK; j++) buf[j] = (unsigned char)(j * 13 + c * 17);
        written = fnv(written, buf, CHUNK);
        ok = write(fd, buf, CHUNK) == CHUNK;
    }
    ok = ok && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    fd = ok ? open("/mnt/big.bin", O_RDONLY) : -1;
    ok = fd >= 0;
    for (unsigned c = 0; ok && c < big_chunks; c++) {
        size_t have = 0;
        while (ok && have < CHUNK) {
            ssize_t n = read(fd, buf + have, CHUNK - have);
            ok = n > 0;
            if (ok) have += (size_t)n;
        }
        if (ok) read_back = fnv(read_back, buf, CHUNK);
    }
    if (fd >= 0) close(fd);
    report("big", "%s written=%016llx read=%016llx", result(ok), (unsigned long long)written, (unsigned long long)read_back);
}

static void many(void) {
    DIR *dir = opendir("/mnt/many");
    long count = 0;
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir(dir))) {
            if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, "..")) count++;
        }
        closedir(dir);
    }
    report("many", "%ld", dir ? count : -(long)errno);
}

int main(void) {
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    char cmdline[4096];
    if (read_file("/proc/cmdline", cmdline, sizeof cmdline) > 0) {
        const char *option = strstr(cmdline, "kata.big_mib=");
        if (option) big_chunks = (unsigned)strtoul(option + strlen("kata.big_mib="), NULL, 10);
    }
    mkdir("/mnt", 0755);
    report("begin", "1");
    if (mount("kataShared", "/mnt", "virtiofs", 0, NULL) != 0) {
        report("mount", "%s", strerror(errno));
        reboot(RB_POWER_OFF);
    }
    report("mount", "ok");

    char text[256];
    int n = read_file("/mnt/from-host.txt", text, sizeof text);
    if (n > 0 && text[n - 1] == '\n') text[n - 1] = 0;
    report("host_file", "%s", n >= 0 ? text : strerror(-n));

    metadata();
    big_file();
    many();

    report("waiting", "host-write");
    n = -ENOENT;
    for (int i = 0; i < 600 && n < 0; i++) {
        n = read_file("/mnt/live.txt", text, sizeof text);
        if (n < 0) sleep_ms(200);
    }
    if (n > 0 && text[n - 1] == '\n') text[n - 1] = 0;
    report("live", "%s", n >= 0 ? text : strerror(-n));

    // Nothing in flight while the daemon dies: what it had taken would be lost with it.
    report("waiting", "kill");
    sleep_ms(5000);
    struct stat st;
    int err = 0;
    for (int i = 0; i < 30 && !err; i++) {
        if (stat("/mnt/after-kill", &st) < 0 && errno != ENOENT) err = errno;
        else sleep_ms(1000);
    }
    report("after_kill", "%d", err);
    report("end", "1");
    reboot(RB_POWER_OFF);
    return 0;
}
