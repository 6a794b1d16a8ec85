/*
 * The probe's virtio-mmio driver pieces (virtio 1.2, 4.2.2 and 2.7), shared by hostile.c
 * and io.c: register access, feature negotiation, rings of QSIZE entries in one page,
 * descriptors and the available and used rings.
 */
#include "probe.h"

#define SLOT_BASE 0xc0001000u
#define SLOT_STRIDE 0x1000u
#define SLOTS 8
#define QSIZE 16
#define RINGS 0x01000000u    /* 16 MiB: one page per ring */
#define BUFFERS 0x01010000u

enum { ACK = 1, DRIVER = 2, DRIVER_OK = 4, FEATURES_OK = 8, NEEDS_RESET = 0x40 };
enum { DESC_NEXT = 1, DESC_WRITE = 2, DESC_INDIRECT = 4 };
enum { ID_BLK = 2, ID_RNG = 4, ID_BALLOON = 5, ID_VSOCK = 19 };

static inline u32 rd(u32 base, u32 off) { return *(volatile u32 *)(base + off); }
static inline void wr(u32 base, u32 off, u32 v) { *(volatile u32 *)(base + off) = v; }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

struct ring { u32 base, desc, avail, used; u16 next; };

void zero(u32 at, u32 n);
void negotiate(u32 base);
void queue_registers(u32 base, u32 q, u32 size, u64 desc, u64 avail, u64 used, int ready);
void ring_setup(struct ring *r, u32 base, u32 q, u32 page);
void desc(struct ring *r, u16 i, u32 addr, u32 len, u16 flags, u16 next);
void publish(struct ring *r, u16 head);
u16 used_idx(struct ring *r);
u32 used_len(struct ring *r, u16 slot);
/* The first virtio-mmio slot holding a device of type `id`, or 0. */
u32 find_device(u32 id);
