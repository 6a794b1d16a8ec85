/*
 * probe.mode=balloon: a virtio-balloon driver, so that the host can watch guest memory
 * being given back. The probe touches 32 MiB of its RAM (48-80 MiB: the VM needs 96 MiB
 * or more) and prints "probe: balloon touched"; it then waits for the host's target
 * (num_pages), inflates with the page frame numbers of the touched area, 256 per buffer,
 * up to the target, reports the size in `actual`, and prints "probe: balloon inflated=N"
 * and whether a given-back page now reads as zeroes ("probe: balloon zeroed=1"). Then it
 * idles.
 */
#include "virtio.h"

#define TOUCH_BASE 0x03000000u
#define TOUCH_PAGES 8192u
#define PFNS_PER_BUFFER 256u

void balloon_virtio(void) {
    u32 base = find_device(ID_BALLOON);
    if (!base) {
        puts_serial("probe: balloon no device\n");
        return;
    }
    negotiate(base);
    struct ring inflate, deflate;
    ring_setup(&inflate, base, 0, RINGS + 0x5000);
    ring_setup(&deflate, base, 1, RINGS + 0x6000);
    wr(base, 0x70, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    for (u32 page = 0; page < TOUCH_PAGES; page++) *(volatile u32 *)(TOUCH_BASE + page * 4096u) = 0xa5a5a5a5u;
    puts_serial("probe: balloon touched\n");
    u32 target;
    while ((target = rd(base, 0x100)) == 0) __asm__ volatile("pause");
    if (target > TOUCH_PAGES) target = TOUCH_PAGES;
    u32 pfns = BUFFERS + 0x4000;
    u32 done = 0;
    while (done < target) {
        u32 n = target - done < PFNS_PER_BUFFER ? target - done : PFNS_PER_BUFFER;
        for (u32 i = 0; i < n; i++) *(volatile u32 *)(pfns + 4u * i) = (TOUCH_BASE >> 12) + done + i;
        desc(&inflate, 0, pfns, 4u * n, 0, 0);
        publish(&inflate, 0);
        wr(base, 0x50, 0);
        while (used_idx(&inflate) != inflate.next) __asm__ volatile("pause");
        done += n;
    }
    wr(base, 0x104, done);
    puts_serial("probe: balloon inflated=");
    put_dec(done);
    puts_serial("\nprobe: balloon zeroed=");
    put_dec(*(volatile u32 *)TOUCH_BASE == 0);
    puts_serial("\n");
    for (;;) __asm__ volatile("hlt");
}
