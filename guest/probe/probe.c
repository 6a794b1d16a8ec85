/*
 * The probe guest: a tiny freestanding program booted through the VMM's real PVH path.
 * It reports what the VMM handed it (hvm_start_info: memory map, command line, modules,
 * RSDP), checks the MP table, the ACPI MADT and the CPUID pass-through, writes the
 * boot-timer byte, prints "probe: status=N" (N = failed checks, or probe.exit=N) and
 * ends through an i8042 reset, falling back to a triple fault where there is no i8042.
 *
 * Command line options: probe.exit=N (status to print), probe.mode=reset|triplefault|
 * hang|spin|poweroff|count|hostile|io|balloon (how to end; count prints "probe: tick N" about every 50 ms,
 * by the TSC, forever: progress a pause must stop and a resume restart; after each tick
 * it prints "probe: key 0xNN" for every byte waiting in the i8042, e.g. Ctrl-Alt-Del;
 * hostile first plays a hostile virtio driver against every device, see hostile.c, then
 * resets; io does I/O forever on one device, see io.c; balloon gives memory back, see balloon.c).
 */
#include "probe.h"

struct hvm_start_info {
    u32 magic, version, flags, nr_modules;
    u64 modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
    u32 memmap_entries, reserved;
};
struct hvm_memmap_entry { u64 addr, size; u32 type, reserved; };
struct hvm_modlist_entry { u64 paddr, size, cmdline_paddr, reserved; };

static int failures;

void putc_serial(char c) {
    for (int i = 0; i < 100000 && !(inb(0x3f8 + 5) & 0x20); i++) {}
    outb(0x3f8, (u8)c);
}
void puts_serial(const char *s) { while (*s) putc_serial(*s++); }
void put_dec(u32 v) {
    char buf[11]; int i = 10; buf[i] = 0;
    do { buf[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    puts_serial(buf + i);
}
void put_hex(u64 v) {
    char buf[19]; int i = 18; buf[i] = 0;
    do { buf[--i] = "0123456789abcdef"[v & 0xf]; v >>= 4; } while (v);
    buf[--i] = 'x'; buf[--i] = '0';
    puts_serial(buf + i);
}
static void check(int ok, const char *what) {
    puts_serial(ok ? "probe: ok " : "probe: FAIL ");
    puts_serial(what);
    puts_serial("\n");
    if (!ok) failures++;
}

static int starts_with(const char *s, const char *prefix) {
    while (*prefix) if (*s++ != *prefix++) return 0;
    return 1;
}
/* Value of "key=" in the command line, or 0. */
static const char *option(const char *cmdline, const char *key) {
    const char *p = cmdline;
    while (p && *p) {
        while (*p == ' ') p++;
        if (starts_with(p, key)) {
            while (*key) { key++; p++; }
            return p;
        }
        while (*p && *p != ' ') p++;
    }
    return 0;
}
static int option_is(const char *value, const char *word) {
    if (!value) return 0;
    while (*word) if (*value++ != *word++) return 0;
    return *value == 0 || *value == ' ';
}
static u32 parse_dec(const char *p) {
    u32 v = 0;
    while (p && *p >= '0' && *p <= '9') v = v * 10 + (u32)(*p++ - '0');
    return v;
}
static u8 sum(const u8 *p, u32 n) { u8 s = 0; while (n--) s += *p++; return s; }

/* MP floating pointer in the EBDA: returns the processor count, or -1. */
static int mptable_cpus(void) {
    for (const u8 *p = (const u8 *)0x9fc00; p < (const u8 *)0xa0000; p += 16) {
        if (p[0] != '_' || p[1] != 'M' || p[2] != 'P' || p[3] != '_') continue;
        if (sum(p, 16) != 0) return -1;
        const u8 *table = (const u8 *)*(const u32 *)(p + 4);
        if (table[0] != 'P' || table[1] != 'C' || table[2] != 'M' || table[3] != 'P') return -1;
        if (sum(table, *(const u16 *)(table + 4)) != 0) return -1;
        int cpus = 0;
        const u8 *e = table + 44;
        for (u32 i = 0; i < *(const u16 *)(table + 34); i++) {
            if (e[0] == 0) { cpus++; e += 20; } else e += 8;
        }
        return cpus;
    }
    return -1;
}

/* Walks RSDP -> XSDT -> MADT and counts enabled local APICs; -1 if anything is off. */
static int madt_cpus(u64 rsdp_paddr) {
    const u8 *rsdp = (const u8 *)(u32)rsdp_paddr;
    if (!starts_with((const char *)rsdp, "RSD PTR ") || sum(rsdp, 20) != 0 || sum(rsdp, 36) != 0) return -1;
    const u8 *xsdt = (const u8 *)(u32)*(const u64 *)(rsdp + 24);
    u32 length = *(const u32 *)(xsdt + 4);
    if (!starts_with((const char *)xsdt, "XSDT") || sum(xsdt, length) != 0) return -1;
    for (u32 off = 36; off + 8 <= length; off += 8) {
        const u8 *t = (const u8 *)(u32)*(const u64 *)(xsdt + off);
        u32 tlen = *(const u32 *)(t + 4);
        if (sum(t, tlen) != 0) return -1;
        if (!starts_with((const char *)t, "APIC")) continue;
        int cpus = 0;
        for (u32 e = 44; e + 2 <= tlen && t[e + 1] >= 2; e += t[e + 1]) {
            if (t[e] == 0 && (*(const u32 *)(t + e + 4) & 1)) cpus++;
        }
        return cpus;
    }
    return -1;
}

void probe_main(struct hvm_start_info *si) {
    puts_serial("probe: hello from the probe guest\n");
    check(si->magic == 0x336ec578, "start_info magic");
    puts_serial("probe: start_info version=");
    put_dec(si->version);
    puts_serial("\n");

    const char *cmdline = si->cmdline_paddr ? (const char *)(u32)si->cmdline_paddr : "";
    puts_serial("probe: cmdline=");
    puts_serial(cmdline);
    puts_serial("\n");

    struct hvm_memmap_entry *map = (struct hvm_memmap_entry *)(u32)si->memmap_paddr;
    u64 ram = 0;
    puts_serial("probe: memmap entries=");
    put_dec(si->memmap_entries);
    puts_serial("\n");
    for (u32 i = 0; i < si->memmap_entries; i++) {
        puts_serial("probe: memmap ");
        put_hex(map[i].addr);
        puts_serial(" size ");
        put_hex(map[i].size);
        puts_serial(" type ");
        put_dec(map[i].type);
        puts_serial("\n");
        if (map[i].type == 1) ram += map[i].size;
    }
    puts_serial("probe: ram_kib=");
    put_dec((u32)(ram >> 10));
    puts_serial("\n");

    puts_serial("probe: modules=");
    put_dec(si->nr_modules);
    puts_serial("\n");
    struct hvm_modlist_entry *mods = (struct hvm_modlist_entry *)(u32)si->modlist_paddr;
    for (u32 i = 0; i < si->nr_modules; i++) {
        const u8 *data = (const u8 *)(u32)mods[i].paddr;
        u32 size = (u32)mods[i].size;
        u32 checksum = 0;
        for (u32 j = 0; j < size; j++) checksum = checksum * 31 + data[j];
        puts_serial("probe: module ");
        put_dec(i);
        puts_serial(" size=");
        put_dec(size);
        puts_serial(" hash=");
        put_hex(checksum);
        puts_serial("\n");
    }

    u32 a, b, c, d;
    cpuid(0x40000000, 0, &a, &b, &c, &d);
    char sig[13];
    *(u32 *)&sig[0] = b; *(u32 *)&sig[4] = c; *(u32 *)&sig[8] = d; sig[12] = 0;
    puts_serial("probe: hypervisor=");
    puts_serial(sig);
    puts_serial("\n");
    cpuid(1, 0, &a, &b, &c, &d);
    puts_serial("probe: bsp_apic_id=");
    put_dec(b >> 24);
    puts_serial("\n");
    check((c >> 31) & 1, "cpuid hypervisor bit");

    int mp = mptable_cpus();
    puts_serial("probe: mptable_cpus=");
    if (mp < 0) puts_serial("invalid"); else put_dec((u32)mp);
    puts_serial("\n");
    check(mp > 0, "mp table");
    int madt = madt_cpus(si->rsdp_paddr);
    puts_serial("probe: madt_cpus=");
    if (madt < 0) puts_serial("invalid"); else put_dec((u32)madt);
    puts_serial("\n");
    check(madt == mp, "acpi madt matches mp table");

    *(volatile u8 *)0xc0000000 = 123;  /* Firecracker-compatible boot timer */
    puts_serial("probe: boot-timer written\n");

    const char *exit_value = option(cmdline, "probe.exit=");
    u32 status = exit_value ? parse_dec(exit_value) : (u32)failures;
    puts_serial("probe: status=");
    put_dec(status);
    puts_serial("\n");

    const char *mode = option(cmdline, "probe.mode=");
    if (option_is(mode, "hang")) {
        puts_serial("probe: halting forever\n");
        for (;;) __asm__ volatile("cli; hlt");
    }
    if (option_is(mode, "count")) {
        for (u32 tick = 0;; tick++) {
            puts_serial("probe: tick ");
            put_dec(tick);
            puts_serial("\n");
            while (inb(0x64) & 1) {  /* i8042 output buffer: SendCtrlAltDel's scancodes */
                puts_serial("probe: key ");
                put_hex(inb(0x60));
                puts_serial("\n");
            }
            u64 start = rdtsc();
            while (rdtsc() - start < 100000000ull) __asm__ volatile("pause");
        }
    }
    if (option_is(mode, "hostile")) hostile_virtio();
    if (option_is(mode, "io")) io_virtio(option_is(option(cmdline, "probe.io="), "rng") ? 4 : 2);
    if (option_is(mode, "balloon")) balloon_virtio();
    if (option_is(mode, "spin")) {
        puts_serial("probe: spinning forever\n");
        for (;;) __asm__ volatile("pause");
    }
    if (option_is(mode, "poweroff")) {
        puts_serial("probe: acpi poweroff\n");
        outb(0x3c0, (5 << 2) | (1 << 5));  /* SLP_TYP=S5 | SLP_EN on the FADT's sleep register */
    }
    if (!option_is(mode, "triplefault")) {
        puts_serial("probe: i8042 reset\n");
        outb(0x64, 0xfe);
    }
    puts_serial("probe: triple fault\n");
    struct { u16 limit; u32 base; } __attribute__((packed)) empty_idt = { 0, 0 };
    __asm__ volatile("lidt %0; ud2" : : "m"(empty_idt));
    for (;;) __asm__ volatile("hlt");
}
