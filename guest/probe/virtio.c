/* The probe's virtio-mmio driver pieces; see virtio.h. */
#include "virtio.h"

void zero(u32 at, u32 n) { for (u32 i = 0; i < n; i++) *(volatile u8 *)(at + i) = 0; }

/* Reset, ACKNOWLEDGE, DRIVER, every offered feature, FEATURES_OK. */
void negotiate(u32 base) {
    wr(base, 0x70, 0);
    wr(base, 0x70, ACK);
    wr(base, 0x70, ACK | DRIVER);
    for (u32 sel = 0; sel < 2; sel++) {
        wr(base, 0x14, sel);
        u32 offered = rd(base, 0x10);
        wr(base, 0x24, sel);
        wr(base, 0x20, offered);
    }
    wr(base, 0x70, ACK | DRIVER | FEATURES_OK);
}

void queue_registers(u32 base, u32 q, u32 size, u64 desc, u64 avail, u64 used, int ready) {
    wr(base, 0x30, q);
    wr(base, 0x38, size);
    wr(base, 0x80, (u32)desc);
    wr(base, 0x84, (u32)(desc >> 32));
    wr(base, 0x90, (u32)avail);
    wr(base, 0x94, (u32)(avail >> 32));
    wr(base, 0xa0, (u32)used);
    wr(base, 0xa4, (u32)(used >> 32));
    if (ready) wr(base, 0x44, 1);
}

/* A ring of QSIZE entries in its own page of RAM: descriptors, avail at +0x100, used at +0x200. */
void ring_setup(struct ring *r, u32 base, u32 q, u32 page) {
    zero(page, 0x1000);
    r->base = base;
    r->desc = page;
    r->avail = page + 0x100;
    r->used = page + 0x200;
    r->next = 0;
    queue_registers(base, q, QSIZE, page, page + 0x100, page + 0x200, 1);
}

void desc(struct ring *r, u16 i, u32 addr, u32 len, u16 flags, u16 next) {
    u32 at = r->desc + 16u * i;
    *(volatile u32 *)at = addr;
    *(volatile u32 *)(at + 4) = 0;
    *(volatile u32 *)(at + 8) = len;
    *(volatile u16 *)(at + 12) = flags;
    *(volatile u16 *)(at + 14) = next;
}

void publish(struct ring *r, u16 head) {
    *(volatile u16 *)(r->avail + 4 + 2u * (r->next % QSIZE)) = head;
    barrier();
    r->next++;
    *(volatile u16 *)(r->avail + 2) = r->next;
}

u16 used_idx(struct ring *r) { return *(volatile u16 *)(r->used + 2); }
u32 used_len(struct ring *r, u16 slot) { return *(volatile u32 *)(r->used + 4 + 8u * (slot % QSIZE) + 4); }

u32 find_device(u32 id) {
    for (u32 i = 0; i < SLOTS; i++) {
        u32 base = SLOT_BASE + i * SLOT_STRIDE;
        if (rd(base, 0x00) == 0x74726976 /* "virt" */ && rd(base, 0x08) == id) return base;
    }
    return 0;
}
