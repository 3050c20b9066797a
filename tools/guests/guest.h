/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The bundled guests' runtime: port I/O, the 16550 console, printf, the
 * command line from the multiboot information, the ACPI PM timer and the
 * two ways to end (halt, or the debug-exit port).
 */
#ifndef _GUEST_H
#define _GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MAX_CPUS		16
#define MULTIBOOT_BOOT_MAGIC	0x2BADB002U

#define COM1			0x3f8
#define DEBUG_EXIT_PORT		0xf4
#define PMTMR_PORT		0x608
#define PMTMR_HZ		3579545U

struct mb_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name;
};

struct mb_mod {
	uint32_t start, end, string, reserved;
};

#define MBI_MEM			(1U << 0)
#define MBI_CMDLINE		(1U << 2)
#define MBI_MODS		(1U << 3)
#define MBI_LOADER_NAME		(1U << 9)

static inline void outb(uint16_t port, uint8_t v)
{
	asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
	asm volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void cpu_relax(void)
{
	asm volatile("pause" ::: "memory");
}

/* Set up by guest_start() before guest_main() runs on any vCPU. */
extern const struct mb_info *guest_mbi;	/* NULL without the boot magic */
extern const char guest_format[];	/* how this image was entered */
extern char _image_start[], _end[];

/* Each guest's own code: runs on every vCPU; returning halts the vCPU. */
void guest_main(unsigned int cpu);

/* Serialised across vCPUs. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int snprintf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t len, const char *fmt, va_list ap);

void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
size_t strlen(const char *s);

/* The arguments after the image name, and "key=value" lookups in them. */
const char *cmdline_args(void);
bool cmdline_get(const char *key, char *val, size_t len);
uint64_t cmdline_u64(const char *key, uint64_t def);

/* The ACPI PM timer, extended to 64 bits (call at least every 20 min). */
uint64_t pmtimer_ticks(void);
uint64_t ticks_to_ms(uint64_t ticks);

/* Highest guest-physical address of RAM, from mem_upper. */
uint64_t guest_mem_end(void);
/* End of the image and the modules: free memory starts above. */
uint64_t guest_used_end(void);

void __attribute__((noreturn)) guest_halt(void);
void __attribute__((noreturn)) guest_exit(uint32_t value);

#endif /* _GUEST_H */
