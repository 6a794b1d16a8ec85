/*
 * PID 1 of the virtio end-to-end test: one static process does every check, because each
 * new process risks the stale-page flaw of the PVM test hosts (shared/guest-kernel/README.md).
 *
 * It mounts proc, sysfs and devtmpfs, then reports on stdout (lines "KATA-VIRTIO key=value"):
 *   - the virtio devices the kernel found (/sys/bus/virtio/devices) and the hw_random state;
 *   - random bytes read from /dev/hwrng;
 *   - for each virtio disk (by its serial): size, read-only flag, the pattern the host
 *     wrote at sector 0, a write + fdatasync + read-back of a pattern at sector 64
 *     (4 KiB, O_DIRECT) and, on the disk whose serial starts with "big", 1 MiB at sector
 *     2048; on read-only disks, that a write is refused.
 * Then it powers off, or, with "kata.after=hang" on the command line, prints
 * "KATA-VIRTIO flushed" once every write is flushed and waits to be killed; with
 * "kata.after=release" it prints "KATA-VIRTIO waiting=1" and powers off once the host
 * writes "KATA-GO" at byte 4 MiB of /dev/vda (read with O_DIRECT every 100 ms, at most
 * 10 minutes), so the host can work on a live guest for as long as it needs.
 *
 * Pattern of disk D (its serial), byte i of a region starting at byte offset O:
 *   (i + O/512 * 7 + seed(D)) & 0xff, seed = sum of the serial's bytes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

static char cmdline[4096];

#define REPORT_PREFIX "KATA-VIRTIO"
#include "../include/guest_report.h"

static int read_text(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0) return -1;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
    buf[n] = 0;
    return 0;
}

static unsigned seed_of(const char *serial) {
    unsigned s = 0;
    for (const char *p = serial; *p; p++) s += (unsigned char)*p;
    return s;
}

static void pattern(unsigned char *buf, size_t len, unsigned long long offset, unsigned seed) {
    for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)(i + (offset / 512) * 7 + seed);
}

/* Writes len pattern bytes at offset with O_DIRECT, fdatasync, reads back; returns a word. */
static const char *write_and_verify(const char *dev, unsigned long long offset, size_t len, unsigned seed) {
    unsigned char *out, *in;
    if (posix_memalign((void **)&out, 4096, len) || posix_memalign((void **)&in, 4096, len)) return "nomem";
    pattern(out, len, offset, seed);
    int fd = open(dev, O_RDWR | O_DIRECT);
    if (fd < 0) return "open-failed";
    const char *result = "ok";
    if (pwrite(fd, out, len, offset) != (ssize_t)len) result = "write-failed";
    else if (fdatasync(fd) != 0) result = "flush-failed";
    else if (pread(fd, in, len, offset) != (ssize_t)len) result = "read-failed";
    else if (memcmp(in, out, len) != 0) result = "mismatch";
    close(fd);
    free(out);
    free(in);
    return result;
}

static void check_disk(const char *name) {
    char path[512], serial[64] = "", text[64], dev[300];
    snprintf(path, sizeof path, "/sys/block/%s/serial", name);
    if (read_text(path, serial, sizeof serial) != 0) strcpy(serial, "?");
    snprintf(dev, sizeof dev, "/dev/%s", name);
    unsigned seed = seed_of(serial);

    snprintf(path, sizeof path, "/sys/block/%s/ro", name);
    int ro = read_text(path, text, sizeof text) == 0 && text[0] == '1';
    int fd = open(dev, O_RDONLY);
    unsigned long long bytes = 0;
    if (fd >= 0) ioctl(fd, BLKGETSIZE64, &bytes);

    unsigned char sector[512], expected[512];
    const char *first = "unread";
    if (fd >= 0 && pread(fd, sector, sizeof sector, 0) == (ssize_t)sizeof sector) {
        pattern(expected, sizeof expected, 0, seed);
        first = memcmp(sector, expected, sizeof sector) == 0 ? "pattern" : "other";
    }
    if (fd >= 0) close(fd);

    char key[96];
    snprintf(key, sizeof key, "disk.%s", serial);
    if (ro) {
        int w = open(dev, O_RDWR);
        const char *refused = w < 0 ? "open-refused" : "open-allowed";
        if (w >= 0) {
            unsigned char zero[512] = {0};
            refused = pwrite(w, zero, sizeof zero, 0) < 0 || fsync(w) < 0 ? "write-refused" : "write-allowed";
            close(w);
        }
        report(key, "dev=%s size=%llu ro=1 sector0=%s write=%s", name, bytes, first, refused);
        return;
    }
    const char *small = write_and_verify(dev, 64 * 512, 4096, seed);
    const char *big = strncmp(serial, "big", 3) == 0 ? write_and_verify(dev, 2048ull * 512, 1 << 20, seed) : "skipped";
    report(key, "dev=%s size=%llu ro=0 sector0=%s write4k=%s write1m=%s", name, bytes, first, small, big);
}

int main(void) {
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    read_text("/proc/cmdline", cmdline, sizeof cmdline);
    report("begin", "1");

    int devices = 0;
    DIR *dir = opendir("/sys/bus/virtio/devices");
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        char path[512], id[32] = "?";
        snprintf(path, sizeof path, "/sys/bus/virtio/devices/%s/device", e->d_name);
        read_text(path, id, sizeof id);
        report("device", "%s type=%s", e->d_name, id);
        devices++;
    }
    if (dir) closedir(dir);
    report("devices", "%d", devices);

    char current[64] = "none";
    read_text("/sys/class/misc/hw_random/rng_current", current, sizeof current);
    report("rng_current", "%s", current);
    int rng = open("/dev/hwrng", O_RDONLY);
    unsigned char random[64];
    ssize_t got = rng >= 0 ? read(rng, random, sizeof random) : -1;
    int nonzero = 0;
    for (ssize_t i = 0; i < got; i++) nonzero |= random[i];
    report("rng_read", "%zd nonzero=%d", got, nonzero);
    if (rng >= 0) close(rng);

    dir = opendir("/sys/block");
    while (dir && (e = readdir(dir))) {
        if (strncmp(e->d_name, "vd", 2) == 0) check_disk(e->d_name);
    }
    if (dir) closedir(dir);

    if (strstr(cmdline, "kata.after=hang")) {
        report("flushed", "1");
        for (;;) pause();
    }
    if (strstr(cmdline, "kata.after=release")) {
        report("waiting", "1");
        void *buf = NULL;
        int released = 0;
        if (posix_memalign(&buf, 4096, 4096) == 0) {
            for (int i = 0; i < 6000 && !released; i++) {
                int fd = open("/dev/vda", O_RDONLY | O_DIRECT);
                if (fd >= 0) {
                    released = pread(fd, buf, 4096, 4 << 20) == 4096 && memcmp(buf, "KATA-GO", 7) == 0;
                    close(fd);
                }
                if (!released) usleep(100000);
            }
        }
        report("released", "%d", released);
    }
    report("end", "1");
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
