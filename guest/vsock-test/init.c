/*
 * PID 1 of the vsock end-to-end test (Tests/MachineTests/VsockLinuxTests.swift): one static
 * process does every check, because each new process risks the stale-page flaw of the PVM
 * test hosts (shared/guest-kernel/README.md).
 *
 * It listens on vsock port 1234 and says "KATA-VSOCK listening=1234". Each host connection
 * (CONNECT 1234 through the hybrid vsock socket) starts with a line naming a case:
 *   hclose        echo the line; the host reads it and close()s: our read must return 0.
 *   hshut         read to end of file (the host shut down its writing side), then answer
 *                 "got <bytes> <fnv32>\n" and close().
 *   gclose        write "bye\n" and close(): the host must see the data, then end of file.
 *   gshut         write "half\n", shutdown(SHUT_WR); then read the host's reply to end of file
 *                 and report it.
 *   stress N S    N frames each way (see frame format below): every frame the host sends is
 *                 checked and answered with a frame of our own, of a size drawn from seed S.
 *   done          stop serving host connections.
 * Then it connects to host port 5000 (the host's <uds>_5000 listener) twice:
 *   the first time it writes "gi-hclose\n" and expects end of file (the host closes);
 *   the second time it writes "gi-gclose\n" and closes.
 * Every result is a line "KATA-VSOCK <case>=<result>"; "KATA-VSOCK end=1", then poweroff.
 *
 * Frame: magic 0x4b565346 ("KVSF"), sequence number, payload length, FNV-1a 32 of the
 * payload (all little-endian u32), then the payload: byte i = (seq * 131 + i * 7) & 0xff.
 * A read that waits longer than TIMEOUT_MS reports "timeout".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define TIMEOUT_MS 20000
#define FRAME_MAGIC 0x4b565346u
#define MAX_PAYLOAD (64 << 10)

#define REPORT_PREFIX "KATA-VSOCK"
#include "../include/guest_report.h"

static uint32_t fnv(const uint8_t *p, size_t n, uint32_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* One read with a timeout: >0 bytes, 0 end of file, -1 error (errno), -2 timeout. */
static ssize_t read_wait(int fd, void *buf, size_t size) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, TIMEOUT_MS);
    if (r == 0) return -2;
    if (r < 0) return -1;
    return read(fd, buf, size);
}

/* Exactly `size` bytes: 1, 0 on end of file first, -1 error, -2 timeout. */
static int read_full(int fd, void *buf, size_t size) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = read_wait(fd, (char *)buf + got, size - got);
        if (n == 0) return 0;
        if (n < 0) return (int)n;
        got += (size_t)n;
    }
    return 1;
}

static int write_full(int fd, const void *buf, size_t size) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, (const char *)buf + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

/* A line of at most size-1 bytes, read byte by byte (nothing past it). */
static int read_line(int fd, char *line, size_t size) {
    size_t n = 0;
    while (n + 1 < size) {
        char c;
        int r = read_full(fd, &c, 1);
        if (r != 1) return r;
        if (c == '\n') break;
        line[n++] = c;
    }
    line[n] = 0;
    return 1;
}

static const char *outcome(ssize_t r) {
    if (r == 0) return "eof";
    if (r == -2) return "timeout";
    if (r > 0) return "data";
    return strerror(errno);
}

static void fill_payload(uint8_t *p, uint32_t seq, uint32_t len) {
    for (uint32_t i = 0; i < len; i++) p[i] = (uint8_t)(seq * 131 + i * 7);
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24;
}

static uint32_t get32(const uint8_t *p) {
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint8_t frame_in[16 + MAX_PAYLOAD], frame_out[16 + MAX_PAYLOAD], expect_buf[MAX_PAYLOAD];

/* The stress case: frames both ways, each checked for magic, sequence, length, checksum
 * and content. */
static void stress(int fd, unsigned count, unsigned seed) {
    long long t0 = now_ms();
    unsigned long long in_bytes = 0, out_bytes = 0;
    uint32_t state = seed * 2654435761u + 1;
    for (unsigned seq = 0; seq < count; seq++) {
        int r = read_full(fd, frame_in, 16);
        if (r != 1) {
            report("stress", "fail frame %u header: %s", seq, r == 0 ? "eof" : r == -2 ? "timeout" : strerror(errno));
            return;
        }
        uint32_t magic = get32(frame_in), s = get32(frame_in + 4), len = get32(frame_in + 8), sum = get32(frame_in + 12);
        if (magic != FRAME_MAGIC || s != seq || len > MAX_PAYLOAD) {
            report("stress", "fail frame %u: magic %08x seq %u len %u", seq, magic, s, len);
            return;
        }
        r = read_full(fd, frame_in + 16, len);
        if (r != 1) {
            report("stress", "fail frame %u payload: %s", seq, r == 0 ? "eof" : r == -2 ? "timeout" : strerror(errno));
            return;
        }
        fill_payload(expect_buf, seq, len);
        if (fnv(frame_in + 16, len, 2166136261u) != sum || memcmp(expect_buf, frame_in + 16, len) != 0) {
            size_t bad = 0;
            while (bad < len && expect_buf[bad] == frame_in[16 + bad]) bad++;
            report("stress", "fail frame %u: corrupt payload (len %u, first bad byte %zu, checksum %s)", seq, len, bad,
                   fnv(frame_in + 16, len, 2166136261u) == sum ? "matches" : "differs");
            return;
        }
        in_bytes += 16 + len;
        state = state * 1664525u + 1013904223u;
        uint32_t out_len = (state >> 8) % (MAX_PAYLOAD + 1);
        if ((state & 3) == 0) out_len %= 64;  /* many small frames too */
        fill_payload(frame_out + 16, seq ^ 0x5a5a, out_len);
        put32(frame_out, FRAME_MAGIC);
        put32(frame_out + 4, seq);
        put32(frame_out + 8, out_len);
        put32(frame_out + 12, fnv(frame_out + 16, out_len, 2166136261u));
        if (write_full(fd, frame_out, 16 + out_len) < 0) {
            report("stress", "fail frame %u write: %s", seq, strerror(errno));
            return;
        }
        out_bytes += 16 + out_len;
    }
    report("stress", "ok frames=%u in=%llu out=%llu ms=%lld", count, in_bytes, out_bytes, now_ms() - t0);
}

static void serve(int fd) {
    char line[128];
    int r = read_line(fd, line, sizeof line);
    if (r != 1) {
        report("first-line", "%s", r == 0 ? "eof" : r == -2 ? "timeout" : strerror(errno));
        return;
    }
    if (strcmp(line, "hclose") == 0) {
        (void)!write(fd, "hclose\n", 7);
        char c;
        report("hclose", "%s", outcome(read_wait(fd, &c, 1)));
    } else if (strcmp(line, "hclose-block") == 0) {
        /* The same, blocked in read() itself (not poll) when the host closes. */
        struct timeval tv = {.tv_sec = TIMEOUT_MS / 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)!write(fd, "hclose-block\n", 13);
        char c;
        ssize_t n = read(fd, &c, 1);
        report("hclose-block", "%s", n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? "timeout" : outcome(n));
    } else if (strcmp(line, "hshut") == 0) {
        static uint8_t buf[65536];
        unsigned long long total = 0;
        uint32_t h = 2166136261u;
        ssize_t n;
        while ((n = read_wait(fd, buf, sizeof buf)) > 0) {
            h = fnv(buf, (size_t)n, h);
            total += (unsigned long long)n;
        }
        char answer[64];
        int len = snprintf(answer, sizeof answer, "got %llu %08x\n", total, h);
        int wrote = write_full(fd, answer, (size_t)len);
        report("hshut", "%s bytes=%llu fnv=%08x answer=%s", outcome(n), total, h, wrote == 0 ? "sent" : strerror(errno));
    } else if (strcmp(line, "gclose") == 0) {
        report("gclose", "%s", write_full(fd, "bye\n", 4) == 0 ? "sent" : strerror(errno));
    } else if (strcmp(line, "gshut") == 0) {
        int wrote = write_full(fd, "half\n", 5);
        int shut = shutdown(fd, SHUT_WR);
        char reply[64];
        r = read_line(fd, reply, sizeof reply);
        char c;
        ssize_t after = r == 1 ? read_wait(fd, &c, 1) : r;
        report("gshut", "wrote=%d shut=%d reply=%s then=%s", wrote, shut, r == 1 ? reply : outcome(r), outcome(after));
    } else if (strncmp(line, "stress ", 7) == 0) {
        unsigned count = 0, seed = 0;
        if (sscanf(line + 7, "%u %u", &count, &seed) == 2) stress(fd, count, seed);
    } else {
        report("unknown", "%s", line);
    }
}

/* Connects to host port 5000: 0 or -1. */
static int connect_host(void) {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = 5000};
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

int main(void) {
    mount("proc", "/proc", "proc", 0, NULL);
    int listener = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 1234};
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 16) < 0) {
        report("listening", "failed: %s", strerror(errno));
        reboot(RB_POWER_OFF);
    }
    report("listening", "1234");
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            report("accept", "%s", strerror(errno));
            break;
        }
        char peek[5] = {0};
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int done = poll(&p, 1, TIMEOUT_MS) == 1 && recv(fd, peek, 4, MSG_PEEK) == 4 && memcmp(peek, "done", 4) == 0;
        if (done) {
            close(fd);
            break;
        }
        serve(fd);
        close(fd);
    }
    /* Guest-initiated: the host closes, then we close. */
    int fd = connect_host();
    if (fd < 0) {
        report("gi-hclose", "connect: %s", strerror(errno));
    } else {
        int wrote = write_full(fd, "gi-hclose\n", 10);
        char buf[64];
        ssize_t n = read_wait(fd, buf, sizeof buf);
        report("gi-hclose", "wrote=%d read=%s", wrote, outcome(n));
        close(fd);
    }
    fd = connect_host();
    if (fd < 0) {
        report("gi-gclose", "connect: %s", strerror(errno));
    } else {
        report("gi-gclose", "%s", write_full(fd, "gi-gclose\n", 10) == 0 ? "sent" : strerror(errno));
        close(fd);
    }
    report("end", "1");
    reboot(RB_POWER_OFF);
    return 0;
}
