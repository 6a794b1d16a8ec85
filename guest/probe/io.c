/*
 * probe.mode=io: an ordinary driver doing I/O forever, so that the host can watch a
 * device's throughput (its rate limiter) from outside: one request at a time, each waited
 * for, on the device probe.io= names: blk (the default) reads 4 KiB of sector 0 of the
 * first disk, rng asks for 64 bytes of entropy. Every 10 completions it prints
 * "probe: io done=N". A request that never completes leaves the count where it stopped.
 */
#include "virtio.h"

void io_virtio(u32 id) {
    u32 base = find_device(id);
    if (!base) {
        puts_serial("probe: io no such device\n");
        return;
    }
    negotiate(base);
    struct ring r;
    ring_setup(&r, base, 0, RINGS + 0x4000);
    wr(base, 0x70, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    u32 header = BUFFERS + 0x1000, data = BUFFERS + 0x2000, status = BUFFERS + 0x3000;
    zero(header, 16);  /* type 0 (IN), sector 0 */
    puts_serial("probe: io started\n");
    for (u32 done = 1;; done++) {
        if (id == ID_BLK) {
            desc(&r, 0, header, 16, DESC_NEXT, 1);
            desc(&r, 1, data, 4096, DESC_WRITE | DESC_NEXT, 2);
            desc(&r, 2, status, 1, DESC_WRITE, 0);
        } else {
            desc(&r, 0, data, 64, DESC_WRITE, 0);
        }
        publish(&r, 0);
        wr(base, 0x50, 0);
        while (used_idx(&r) != r.next) __asm__ volatile("pause");
        if (done % 10 == 0) {
            puts_serial("probe: io done=");
            put_dec(done);
            puts_serial("\n");
        }
    }
}
