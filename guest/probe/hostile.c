/*
 * probe.mode=hostile: a hostile virtio driver, played against every virtio-mmio device the
 * VMM gave the probe, through the real transport (MMIO exits, ioeventfds, irqfds). What
 * must hold: the VMM neither traps nor stalls, a device the driver broke reports
 * DEVICE_NEEDS_RESET, and every other device keeps working. Each step prints one
 * "probe: hostile ..." line for the host's test to check.
 *   vsock: the rx queue left not ready with rings at the top of the 64-bit address space,
 *          tx ready, DRIVER_OK, then a REQUEST to a host port nobody listens on (the
 *          device owes an RST on rx);
 *   rng:   four heads whose indirect tables claim 64 MiB each, then a good request, then
 *          an available index run more than a queue ahead (the ring is broken);
 *   blk:   after that, an ordinary read of sector 0.
 */
#include "virtio.h"

#define HUGE_TABLE 0x02000000u
#define HUGE_TABLE_LEN (64u << 20)

/* Spins until the device has used `count` chains, or about a second (by the TSC) has passed. */
static int wait_used(struct ring *r, u16 count) {
    u64 start = rdtsc();
    while (used_idx(r) < count) {
        if (rdtsc() - start > 3000000000ull) return 0;
        __asm__ volatile("pause");
    }
    return 1;
}

static void settle(void) {
    u64 start = rdtsc();
    while (rdtsc() - start < 300000000ull) __asm__ volatile("pause");
}

static void report(const char *what, u32 value, u32 status) {
    puts_serial("probe: hostile ");
    puts_serial(what);
    puts_serial("=");
    put_dec(value);
    puts_serial(" status=");
    put_hex(status);
    puts_serial("\n");
}

static void hostile_vsock(u32 base) {
    negotiate(base);
    u64 top = 0xfffffffffffff000ull;  /* any unchecked offset from here overflows */
    queue_registers(base, 0, 256, top, top + 0x800, top + 0xc00, 0);
    struct ring tx, event;
    ring_setup(&tx, base, 1, RINGS);
    ring_setup(&event, base, 2, RINGS + 0x1000);
    wr(base, 0x70, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    /* struct virtio_vsock_hdr: a REQUEST from the guest's CID to host port 9999. */
    u32 packet = BUFFERS;
    zero(packet, 44);
    *(volatile u32 *)(packet + 0) = rd(base, 0x100);  /* src_cid: the guest's, from config */
    *(volatile u32 *)(packet + 8) = 2;                 /* dst_cid: the host */
    *(volatile u32 *)(packet + 16) = 5000;             /* src_port */
    *(volatile u32 *)(packet + 20) = 9999;             /* dst_port */
    *(volatile u16 *)(packet + 28) = 1;                /* type: stream */
    *(volatile u16 *)(packet + 30) = 1;                /* op: REQUEST */
    *(volatile u32 *)(packet + 36) = 65536;            /* buf_alloc */
    desc(&tx, 0, packet, 44, 0, 0);
    publish(&tx, 0);
    wr(base, 0x50, 1);
    int served = wait_used(&tx, 1);
    settle();  /* the device's RST for the refused connection has had its chance */
    report("vsock-rx-unready tx-used", served ? used_idx(&tx) : 0, rd(base, 0x70));
}

static void hostile_rng(u32 base, struct ring *r) {
    negotiate(base);
    ring_setup(r, base, 0, RINGS + 0x2000);
    wr(base, 0x70, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    for (u16 head = 0; head < 4; head++) {
        desc(r, head, HUGE_TABLE, HUGE_TABLE_LEN, DESC_INDIRECT, 0);
        publish(r, head);
    }
    wr(base, 0x50, 0);
    int served = wait_used(r, 4);
    u32 lengths = 0;
    for (u16 slot = 0; slot < 4; slot++) lengths += used_len(r, slot);
    report("rng-indirect-64MiB used", served ? used_idx(r) : 0, rd(base, 0x70));
    report("rng-indirect-64MiB total-len", lengths, rd(base, 0x70));

    desc(r, 4, BUFFERS + 0x100, 64, DESC_WRITE, 0);
    publish(r, 4);
    wr(base, 0x50, 0);
    served = wait_used(r, 5);
    report("rng-good len", served ? used_len(r, 4) : 0, rd(base, 0x70));

    /* The available index run more than a queue ahead: the ring itself is broken. */
    *(volatile u16 *)(r->avail + 2) = (u16)(r->next + 100);
    wr(base, 0x50, 0);
    u64 start = rdtsc();
    while (!(rd(base, 0x70) & NEEDS_RESET) && rdtsc() - start < 3000000000ull) __asm__ volatile("pause");
    report("rng-runaway needs-reset", (rd(base, 0x70) & NEEDS_RESET) != 0, rd(base, 0x70));
    /* Kicks on the failed device change nothing. */
    wr(base, 0x50, 0);
    settle();
    report("rng-after-failure used", used_idx(r), rd(base, 0x70));
}

static void ordinary_blk(u32 base) {
    negotiate(base);
    struct ring r;
    ring_setup(&r, base, 0, RINGS + 0x3000);
    wr(base, 0x70, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    u32 header = BUFFERS + 0x200, data = BUFFERS + 0x400, status = BUFFERS + 0x800;
    zero(header, 16);  /* type 0 (IN), sector 0 */
    zero(data, 512);
    *(volatile u8 *)status = 0xff;
    desc(&r, 0, header, 16, DESC_NEXT, 1);
    desc(&r, 1, data, 512, DESC_WRITE | DESC_NEXT, 2);
    desc(&r, 2, status, 1, DESC_WRITE, 0);
    publish(&r, 0);
    wr(base, 0x50, 0);
    int served = wait_used(&r, 1);
    report("blk-read len", served ? used_len(&r, 0) : 0, rd(base, 0x70));
    report("blk-read first-word", *(volatile u32 *)data, *(volatile u8 *)status);
}

void hostile_virtio(void) {
    u32 found[SLOTS] = {0};
    for (u32 i = 0; i < SLOTS; i++) {
        u32 base = SLOT_BASE + i * SLOT_STRIDE;
        if (rd(base, 0x00) == 0x74726976 /* "virt" */) found[i] = rd(base, 0x08);
    }
    struct ring rng;
    for (u32 i = 0; i < SLOTS; i++) if (found[i] == ID_VSOCK) hostile_vsock(SLOT_BASE + i * SLOT_STRIDE);
    for (u32 i = 0; i < SLOTS; i++) if (found[i] == ID_RNG) hostile_rng(SLOT_BASE + i * SLOT_STRIDE, &rng);
    for (u32 i = 0; i < SLOTS; i++) if (found[i] == ID_BLK) ordinary_blk(SLOT_BASE + i * SLOT_STRIDE);
    puts_serial("probe: hostile done\n");
}
