// CLinux: the Linux calls Swift cannot make directly, for the VMM, the devices and the
// runtime: variadic ioctls (block size, TUN), raw syscalls glibc wraps as GNU extensions
// (setns, accept4), macros (SIGRTMIN, O_DIRECT), termios, timerfd, memory fences. Each
// function is exactly one call with a typed signature; there is no logic. It also brings
// the kernel and libc headers (epoll, eventfd, signalfd, libaio, sockets) the Glibc
// module does not export.
#ifndef CLINUX_H
#define CLINUX_H

// No _GNU_SOURCE here: it would change the layout of libc types (fd_set) from the
// Glibc module's view and break the module build.

#include <linux/fs.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <linux/if_tun.h>
#include <linux/sched.h>
#include <linux/falloc.h>
#include <fcntl.h>
#include <libaio.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <signal.h>
#include <pthread.h>
#include <termios.h>
#include <unistd.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <linux/vm_sockets.h>

// Every pointer passed to or returned by these wrappers is non-null.
#pragma clang assume_nonnull begin

// MARK: - Block devices and files

static inline int clinux_blkgetsize64(int fd, uint64_t *size) { return ioctl(fd, BLKGETSIZE64, size); }
static inline int clinux_fallocate(int fd, int mode, off_t offset, off_t length) { return (int)syscall(SYS_fallocate, fd, mode, offset, length); }
static inline int clinux_o_direct(void) { return __O_DIRECT; }

// MARK: - TAP devices and network namespaces

/// TUNSETIFF: attaches `fd` (an open /dev/net/tun) to the interface `name` with `flags`
/// (creating it when allowed); the kernel's chosen name is copied to `actual` (IFNAMSIZ).
static inline int clinux_tun_set_iff(int fd, const char *name, short flags, char *actual) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = flags;
    int rc = ioctl(fd, TUNSETIFF, &ifr);
    if (rc == 0) memcpy(actual, ifr.ifr_name, IFNAMSIZ);
    return rc;
}
static inline int clinux_tun_set_vnet_hdr_size(int fd, int size) { return ioctl(fd, TUNSETVNETHDRSZ, &size); }
static inline int clinux_tun_set_offload(int fd, unsigned int offloads) { return ioctl(fd, TUNSETOFFLOAD, offloads); }
static inline int clinux_setns(int fd, int nstype) { return (int)syscall(SYS_setns, fd, nstype); }

// MARK: - Sockets and timers the Glibc module does not expose (GNU extensions)

static inline int clinux_accept4(int fd, struct sockaddr *_Nullable address, socklen_t *_Nullable length, int flags) {
    return (int)syscall(SYS_accept4, fd, address, length, flags);
}
static inline int clinux_timerfd_create(int clock, int flags) { return timerfd_create(clock, flags); }
// Guest RAM that a vhost-user backend maps; MFD_CLOEXEC is 1 (linux/memfd.h).
static inline int clinux_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}
static const unsigned int CLINUX_MFD_CLOEXEC = 1U;
// MFD_HUGETLB | MFD_HUGE_2MB (21 << MFD_HUGE_SHIFT, 26): 2 MiB pages from the hugetlb pool.
static const unsigned int CLINUX_MFD_HUGETLB_2MB = 4U | (21U << 26);
static inline int clinux_timerfd_settime(int fd, int flags, const struct itimerspec *value, struct itimerspec *_Nullable old) {
    return timerfd_settime(fd, flags, value, old);
}

// MARK: - Memory ordering for rings shared with the guest (virtio)

static inline void clinux_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void clinux_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void clinux_fence_full(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// MARK: - Syscalls and macros Swift cannot reach

static inline int clinux_pthread_kill(pthread_t thread, int sig) { return pthread_kill(thread, sig); }
static inline int clinux_sigrtmin(void) { return SIGRTMIN; }
static inline int clinux_tcgetattr(int fd, struct termios *t) { return tcgetattr(fd, t); }
static inline int clinux_tcsetattr(int fd, const struct termios *t) { return tcsetattr(fd, TCSANOW, t); }
static inline void clinux_cfmakeraw(struct termios *t) { cfmakeraw(t); }


#pragma clang assume_nonnull end

#endif
