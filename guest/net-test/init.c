/*
 * PID 1 of the network end-to-end test (virtio-net and virtio-vsock with real Linux
 * drivers). One static process does everything (see guest/virtio-test/init.c for why).
 * Options on the kernel command line:
 *   kata.ip=A.B.C.D kata.peer=A.B.C.D   eth0's address (/24) and the host side's
 *   kata.tcp=PORT:BYTES                 pull BYTES from peer:PORT over TCP, check the pattern
 *   kata.vsock_out=PORT:BYTES           connect to the host (CID 2) PORT, send BYTES, expect them echoed
 *   kata.vsock_in=PORT:BYTES            listen on PORT, accept one host connection, read BYTES, reply "thanks"
 *   kata.mmds=A.B.C.D                   route A.B.C.D to eth0 and talk to the VMM's metadata service (V2) there
 * Pattern byte i: (i * 13 + 7) % 251. Reports "KATA-NET key=value" lines, then powers off.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <net/route.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static char cmdline[4096];

#define REPORT_PREFIX "KATA-NET"
#include "../include/guest_report.h"

static const char *option(const char *key) {
    static char value[128];
    const char *p = strstr(cmdline, key);
    if (!p) return NULL;
    p += strlen(key);
    size_t i = 0;
    while (p[i] && p[i] != ' ' && p[i] != '\n' && i < sizeof value - 1) { value[i] = p[i]; i++; }
    value[i] = 0;
    return value;
}

static unsigned char pattern_byte(unsigned long long i) { return (unsigned char)((i * 13 + 7) % 251); }

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
}

static int configure_eth0(const char *ip) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "eth0");
    struct sockaddr_in *a = (struct sockaddr_in *)&ifr.ifr_addr;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    if (ioctl(s, SIOCSIFADDR, &ifr) < 0) return -1;
    inet_pton(AF_INET, "255.255.255.0", &a->sin_addr);
    if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) return -1;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return -1;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) return -1;
    if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0) {
        unsigned char *m = (unsigned char *)ifr.ifr_hwaddr.sa_data;
        report("eth0_mac", "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    }
    close(s);
    return 0;
}

static unsigned short icmp_checksum(void *data, int len) {
    unsigned long sum = 0;
    unsigned short *p = data;
    for (; len > 1; len -= 2) sum += *p++;
    if (len) sum += *(unsigned char *)p;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

static void ping(const char *peer) {
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    struct timeval tv = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = {.sin_family = AF_INET};
    inet_pton(AF_INET, peer, &to.sin_addr);
    for (int seq = 1; seq <= 10; seq++) {
        struct icmphdr h = {.type = ICMP_ECHO};
        h.un.echo.id = htons(0x4b41);
        h.un.echo.sequence = htons(seq);
        h.checksum = icmp_checksum(&h, sizeof h);
        double start = now_ms();
        if (sendto(s, &h, sizeof h, 0, (struct sockaddr *)&to, sizeof to) < 0) report("ping_send", "errno=%d", errno);
        unsigned char buf[256];
        for (;;) {
            ssize_t n = recv(s, buf, sizeof buf, 0);
            if (n < 0) break;
            int ihl = (buf[0] & 0xf) * 4;
            struct icmphdr *r = (struct icmphdr *)(buf + ihl);
            if (n >= ihl + 8 && r->type == ICMP_ECHOREPLY && r->un.echo.id == htons(0x4b41)) {
                report("ping", "ok seq=%d rtt_ms=%.1f", seq, now_ms() - start);
                close(s);
                return;
            }
        }
    }
    report("ping", "failed");
    close(s);
    const char *files[] = {"/proc/net/arp", "/proc/net/dev", "/proc/net/snmp"};
    for (int f = 0; f < 3; f++) {
        int d = open(files[f], O_RDONLY);
        char text[4096] = "";
        if (d >= 0) { ssize_t n = read(d, text, sizeof text - 1); if (n > 0) text[n] = 0; close(d); }
        char *line = strtok(text, "\n");
        while (line) { report("diag", "%s %s", files[f], line); line = strtok(NULL, "\n"); }
    }
}

/* Reads `bytes` from fd checking the pattern; returns "ok" or what went wrong. */
static const char *read_pattern(int fd, unsigned long long bytes) {
    static unsigned char buf[65536];
    unsigned long long got = 0;
    while (got < bytes) {
        ssize_t n = read(fd, buf, sizeof buf < bytes - got ? sizeof buf : bytes - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n == 0 ? "short" : "read-error";
        for (ssize_t i = 0; i < n; i++) if (buf[i] != pattern_byte(got + i)) return "mismatch";
        got += n;
    }
    return "ok";
}

static const char *write_pattern(int fd, unsigned long long bytes) {
    static unsigned char buf[65536];
    unsigned long long sent = 0;
    while (sent < bytes) {
        size_t chunk = sizeof buf < bytes - sent ? sizeof buf : bytes - sent;
        for (size_t i = 0; i < chunk; i++) buf[i] = pattern_byte(sent + i);
        size_t done = 0;
        while (done < chunk) {
            ssize_t n = write(fd, buf + done, chunk - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return "write-error";
            done += n;
        }
        sent += chunk;
    }
    return "ok";
}

static void tcp_pull(const char *peer, const char *spec) {
    int port = 0;
    unsigned long long bytes = 0;
    sscanf(spec, "%d:%llu", &port, &bytes);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, peer, &to.sin_addr);
    double start = now_ms();
    if (connect(s, (struct sockaddr *)&to, sizeof to) < 0) { report("tcp", "connect-failed errno=%d", errno); return; }
    const char *result = read_pattern(s, bytes);
    double ms = now_ms() - start;
    report("tcp", "%s bytes=%llu ms=%.0f", result, bytes, ms);
    close(s);
}

static void vsock_out(const char *spec) {
    int port = 0;
    unsigned long long bytes = 0;
    sscanf(spec, "%d:%llu", &port, &bytes);
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm to = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
    if (connect(s, (struct sockaddr *)&to, sizeof to) < 0) { report("vsock_out", "connect-failed errno=%d", errno); return; }
    const char *w = write_pattern(s, bytes);
    shutdown(s, SHUT_WR);
    const char *r = read_pattern(s, bytes);
    report("vsock_out", "%s/%s bytes=%llu", w, r, bytes);
    close(s);
}

static void vsock_in(const char *spec) {
    int port = 0;
    unsigned long long bytes = 0;
    sscanf(spec, "%d:%llu", &port, &bytes);
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm me = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (bind(s, (struct sockaddr *)&me, sizeof me) < 0 || listen(s, 4) < 0) { report("vsock_in", "listen-failed errno=%d", errno); return; }
    report("vsock_listening", "%d", port);
    struct pollfd p = {.fd = s, .events = POLLIN};
    if (poll(&p, 1, 120000) != 1) { report("vsock_in", "no-connection"); return; }
    int c = accept(s, NULL, NULL);
    const char *r = read_pattern(c, bytes);
    (void)!write(c, "thanks", 6);
    report("vsock_in", "%s bytes=%llu", r, bytes);
    close(c);
    close(s);
}

/* One HTTP exchange with the metadata service, on a connection of its own (Connection:
 * close, so the answer ends at EOF). Returns the status code (-1: no answer) and puts
 * the body, with newlines as commas, in `body`. */
static int mmds_http(const char *addr, const char *request, char *body, size_t size) {
    body[0] = 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {20, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, addr, &to.sin_addr);
    if (connect(s, (struct sockaddr *)&to, sizeof to) < 0) { close(s); return -1; }
    size_t length = strlen(request);
    if (write(s, request, length) != (ssize_t)length) { close(s); return -1; }
    char answer[2048];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(s, answer + got, sizeof answer - 1 - got);
        if (n <= 0) break;
        got += n;
        if (got == sizeof answer - 1) break;
    }
    close(s);
    answer[got] = 0;
    int status = -1;
    if (sscanf(answer, "HTTP/1.1 %d", &status) != 1) return -1;
    char *start = strstr(answer, "\r\n\r\n");
    if (start) {
        snprintf(body, size, "%s", start + 4);
        for (char *p = body; *p; p++) if (*p == '\n') *p = ',';
    }
    return status;
}

/* Firecracker's MMDS V2 as a guest sees it: without a token, refused; a token from PUT
 * /latest/api/token; with it, a string, an object's keys (IMDS form) and JSON. */
static void mmds(const char *addr) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct rtentry route = {0};
    struct sockaddr_in *dst = (struct sockaddr_in *)&route.rt_dst, *mask = (struct sockaddr_in *)&route.rt_genmask;
    dst->sin_family = mask->sin_family = AF_INET;
    inet_pton(AF_INET, addr, &dst->sin_addr);
    inet_pton(AF_INET, "255.255.255.255", &mask->sin_addr);
    route.rt_flags = RTF_UP | RTF_HOST;
    route.rt_dev = "eth0";
    if (ioctl(s, SIOCADDRT, &route) < 0) report("mmds_route", "errno=%d", errno);
    close(s);
    char body[1024], request[512], token[128] = "";
    int status = mmds_http(addr, "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: mmds\r\nConnection: close\r\n\r\n", body, sizeof body);
    report("mmds_no_token", "%d", status);
    status = mmds_http(addr, "PUT /latest/api/token HTTP/1.1\r\nHost: mmds\r\nX-metadata-token-ttl-seconds: 60\r\nConnection: close\r\n\r\n",
                       token, sizeof token);
    report("mmds_token", "%d len=%zu", status, strlen(token));
    snprintf(request, sizeof request, "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: %s\r\nConnection: close\r\n\r\n", token);
    status = mmds_http(addr, request, body, sizeof body);
    report("mmds_string", "%d:%s", status, body);
    snprintf(request, sizeof request, "GET /latest/meta-data/ HTTP/1.1\r\nX-metadata-token: %s\r\nConnection: close\r\n\r\n", token);
    status = mmds_http(addr, request, body, sizeof body);
    report("mmds_keys", "%d:%s", status, body);
    snprintf(request, sizeof request, "GET /latest HTTP/1.1\r\nAccept: application/json\r\nX-metadata-token: %s\r\nConnection: close\r\n\r\n", token);
    status = mmds_http(addr, request, body, sizeof body);
    report("mmds_json", "%d:%s", status, body);
    status = mmds_http(addr, "GET /latest HTTP/1.1\r\nX-metadata-token: 0123\r\nConnection: close\r\n\r\n", body, sizeof body);
    report("mmds_bad_token", "%d", status);
}

int main(void) {
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    int fd = open("/proc/cmdline", O_RDONLY);
    if (fd >= 0) { (void)!read(fd, cmdline, sizeof cmdline - 1); close(fd); }
    report("begin", "1");
    char ipbuf[64] = "", peerbuf[64] = "";
    const char *ip = option("kata.ip="), *peer = NULL;
    if (ip) { strncpy(ipbuf, ip, sizeof ipbuf - 1); ip = ipbuf; }
    if ((peer = option("kata.peer="))) { strncpy(peerbuf, peer, sizeof peerbuf - 1); peer = peerbuf; }
    if (ip) {
        report("eth0", "%s", configure_eth0(ip) == 0 ? "up" : "failed");
        int routes = open("/proc/net/route", O_RDONLY);
        char table[1024] = "";
        if (routes >= 0) { ssize_t n = read(routes, table, sizeof table - 1); if (n > 0) table[n] = 0; close(routes); }
        for (char *p = table; *p; p++) if (*p == '\n' || *p == '\t') *p = ' ';
        report("routes", "%s", table);
        if (peer) ping(peer);
        const char *tcp = option("kata.tcp=");
        if (tcp && peer) tcp_pull(peer, tcp);
        const char *mmds_addr = option("kata.mmds=");
        if (mmds_addr) {
            char addr[64];
            snprintf(addr, sizeof addr, "%s", mmds_addr);
            mmds(addr);
        }
    }
    char spec[128];
    const char *v = option("kata.vsock_out=");
    if (v) { strncpy(spec, v, sizeof spec - 1); spec[sizeof spec - 1] = 0; vsock_out(spec); }
    v = option("kata.vsock_in=");
    if (v) { strncpy(spec, v, sizeof spec - 1); spec[sizeof spec - 1] = 0; vsock_in(spec); }
    report("end", "1");
    reboot(RB_POWER_OFF);
    return 0;
}
