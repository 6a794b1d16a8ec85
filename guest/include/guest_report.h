/* The test and benchmark guests' one output channel: "PREFIX key=value" lines on the
 * serial console (stdout of /init), which the host-side test reads. Each init.c defines
 * REPORT_PREFIX ("KATA-NET", ...) before including this. Header-only: every guest is one
 * static C file built by guest/build-static-initramfs.sh. */
#ifndef GUEST_REPORT_H
#define GUEST_REPORT_H

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#ifndef REPORT_PREFIX
#error "define REPORT_PREFIX before including guest_report.h"
#endif

static void report(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const char *key, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof line, REPORT_PREFIX " %s=", key);
    n += vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) n = sizeof line - 2;
    line[n++] = '\n';
    (void)!write(1, line, n);
}

#endif
