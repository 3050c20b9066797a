/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vmctl run: the reference VMM.  run.c owns the VM and its vCPU threads,
 * run_loader.c reads and places the image, run_uart.c is the 16550 and the
 * console.  Nothing here is used by the other vmctl commands.
 *
 * Guest-physical layout (tools/guests/README.md has the whole boot protocol):
 *
 *   0x00000-0x00fff  unused (the real-mode IVT would be here)
 *   0x01000          GDT: 0x08 64-bit code, 0x10 data, 0x18 32-bit code
 *   0x02000          PML4, 0x3000 PDPT, 0x4000-0x7fff four page directories:
 *                    the first 4 GiB identity-mapped with 2 MiB pages
 *   0x08000          the multiboot information structure, in every format
 *   0x08100          its memory map, 0x8200 its module list
 *   0x08800-0x0bfff  the command line, module strings, boot loader name
 *   0x0c000-0x0ffff  boot stacks, 1 KiB per vCPU, vCPU n's top at
 *                    0x10000 - n * 0x400
 *   0x10000          a flat binary; ELF and multiboot images load anywhere
 *                    from here to the end of memory, modules after them
 */
#ifndef _VMCTL_RUN_H
#define _VMCTL_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <time.h>

#define RUN_GDT_GPA		0x1000ULL
#define RUN_PML4_GPA		0x2000ULL
#define RUN_PDPT_GPA		0x3000ULL
#define RUN_PD_GPA		0x4000ULL
#define RUN_IDMAP_GIB		4
#define RUN_MBI_GPA		0x8000ULL
#define RUN_MMAP_GPA		0x8100ULL
#define RUN_MODS_GPA		0x8200ULL
#define RUN_STR_GPA		0x8800ULL
#define RUN_STR_END		0xc000ULL
#define RUN_STACK_TOP		0x10000ULL
#define RUN_STACK_SIZE		0x400ULL
#define RUN_FLAT_GPA		0x10000ULL
#define RUN_IMAGE_MIN		0x10000ULL	/* images start at or above */

#define RUN_MAX_CPUS		16	/* boot stacks in 0xc000-0xffff */
#define RUN_MAX_MODULES		64	/* 16-byte entries in 0x8200-0x85ff */
#define RUN_MAX_SEGS		16

#define RUN_SEL_CODE64		0x08
#define RUN_SEL_DATA		0x10
#define RUN_SEL_CODE32		0x18

/*
 * A Linux bzImage (run_linux.c) uses the same page tables at 0x2000 and
 * the GDT at 0x1000 with boot.rst's selectors, and:
 *
 *   0x00400          the BIOS data area: the EBDA's segment at 0x40e
 *   0x08000          boot_params (the zero page)
 *   0x10000          vCPU 0's stack top at entry
 *   0x20000          the command line
 *   0x9fc00-0x9ffff  the EBDA (reserved in the e820 map): the MP floating
 *                    pointer, then the MP configuration table
 *   0xe0000-0xe0fff  the ACPI tables (run_acpi.c): the RSDP at 0xe0000,
 *                    then the XSDT, FADT, MADT and DSDT; 0xe0000-0xfffff
 *                    (the BIOS area) is reserved in the e820 map
 *   0xffff0          the reset vector: code that resets through port 0x64
 *   load_addr        the protected-mode kernel: 1 MiB, or its
 *                    pref_address when it is relocatable
 *   top of memory    the initrd, below initrd_addr_max
 */
#define RUN_LINUX_SEL_CODE	0x10	/* __BOOT_CS */
#define RUN_LINUX_SEL_DATA	0x18	/* __BOOT_DS */
#define RUN_LINUX_BOOT_PARAMS_GPA 0x8000ULL
#define RUN_LINUX_CMDLINE_GPA	0x20000ULL
#define RUN_LINUX_CMDLINE_MAX	0x10000ULL
#define RUN_LINUX_EBDA_GPA	0x9fc00ULL
#define RUN_LINUX_EBDA_SIZE	0x400ULL
#define RUN_LINUX_MPF_GPA	RUN_LINUX_EBDA_GPA
#define RUN_LINUX_MPC_GPA	(RUN_LINUX_EBDA_GPA + 0x10)
#define RUN_LINUX_ACPI_GPA	0xe0000ULL
#define RUN_LINUX_ACPI_SIZE	0x1000ULL
#define RUN_LINUX_BIOS_GPA	0xe0000ULL	/* to 1 MiB: reserved */
#define RUN_LINUX_RESET_VECTOR	0xffff0ULL	/* 0xf000:0xfff0 */
#define RUN_LINUX_LOAD_MIN	0x100000ULL
#define RUN_LINUX_LAPIC_GPA	0xfee00000U
#define RUN_LINUX_APIC_VERSION	0x14
#define RUN_LINUX_IOAPIC_GPA	0xfec00000U
#define RUN_LINUX_IOAPIC_VERSION 0x11
#define RUN_UART_IRQ		4	/* ISA IRQ 4, I/O APIC pin 4 */
/* Memory ends below the I/O APIC's and local APIC's pages. */
#define RUN_LINUX_MEM_MAX	0xfec00000ULL

#define MULTIBOOT_MAGIC		0x1BADB002U
#define MULTIBOOT_BOOT_MAGIC	0x2BADB002U

/*
 * Exit statuses of vmctl run: how the guest ended.  Debug-exit statuses
 * are odd, (V << 1) | 1; vmctl's own are even, so the two never collide
 * (except 1, which is both a usage error and a debug-exit of 0, as in
 * QEMU's isa-debug-exit convention).
 */
#define RUN_EXIT_HALTED		0	/* every vCPU halted with IF=0 */
#define RUN_EXIT_POWEROFF	0	/* ACPI S5 (Linux's poweroff) */
#define RUN_EXIT_SETUP		2	/* error before the guest ran */
#define RUN_EXIT_SHUTDOWN	4	/* triple fault */
#define RUN_EXIT_UNHANDLED	6	/* unknown port, MMIO, internal error... */
#define RUN_EXIT_RUNTIME	8	/* vmctl failed while the guest ran */
#define RUN_EXIT_DETACH		10	/* Ctrl-] on the console */
#define RUN_EXIT_DESTROYED	12	/* vm-destroy from outside */
#define RUN_EXIT_MIGRATED	14	/* vmctl migrate moved it away */
#define RUN_EXIT_RESET		16	/* reset through the keyboard controller */
#define RUN_EXIT_SIGNAL(sig)	(128 + (sig))

enum run_mode { RUN_MODE_REAL, RUN_MODE_PROT32, RUN_MODE_LONG64 };

struct run_seg {
	uint64_t gpa;
	uint64_t offset;	/* in the file */
	uint64_t filesz;
	uint64_t memsz;
};

struct run_blob {
	const char *path;
	unsigned char *data;
	size_t size;
};

struct run_module {
	const char *arg;	/* "FILE [ARGS]" as given: the module's string */
	struct run_blob blob;
	uint64_t gpa;
};

/* What run_linux_parse() found in a bzImage's setup header. */
struct run_linux {
	uint16_t version;	/* boot protocol, 0x020f for 2.15 */
	uint16_t xloadflags;
	unsigned int hdr_end;	/* the setup header ends here (file offset) */
	uint64_t pm_offset, pm_size;	/* the protected-mode kernel in the file */
	uint64_t load_addr;	/* where it goes; entry at + 0x200 */
	uint64_t init_size;	/* what it needs from load_addr */
	uint64_t pref_address;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;
	bool relocatable;
	struct run_blob initrd;	/* --initrd, path NULL when none */
	uint64_t initrd_gpa;
};

struct run_image {
	struct run_blob blob;
	const char *format;	/* for messages */
	enum run_mode mode;
	struct run_seg segs[RUN_MAX_SEGS];
	int nsegs;
	uint64_t entry;		/* guest-physical; real mode: CS base + IP */
	uint64_t start, end;	/* lowest and highest (exclusive) address */
	bool multiboot;
	bool is_linux;		/* a bzImage: lx says the rest */
	struct run_linux lx;
};

/* run_loader.c */
int run_blob_read(struct run_blob *b, const char *path);
void run_blob_free(struct run_blob *b);
int run_image_parse(struct run_image *img, bool entry64);
int run_layout(struct run_image *img, struct run_module *mods, int nmods,
	       const char *cmdline, uint64_t mem_size);
/* @ioapic: lvmm gave the VM an I/O APIC, which Linux's MP table lists. */
void run_install(unsigned char *mem, uint64_t mem_size,
		 const struct run_image *img, const struct run_module *mods,
		 int nmods, const char *cmdline, int ncpus, bool ioapic);

/* run_linux.c: the Linux boot protocol and the MP table. */
bool run_linux_detect(const struct run_blob *b);
int run_linux_parse(struct run_image *img);
/* Place the initrd (lx.initrd read already) and check that all fits. */
int run_linux_layout(struct run_image *img, const char *cmdline,
		     uint64_t mem_size);
/*
 * @cpu_sig, @cpu_features: CPUID 1 EAX and EDX, for the MP table, which
 * lists lvmm's I/O APIC when there is one (@ioapic).
 */
void run_linux_install(unsigned char *mem, uint64_t mem_size,
		       const struct run_image *img, const char *cmdline,
		       int ncpus, bool ioapic, uint32_t cpu_sig,
		       uint32_t cpu_features);
/* After it: boot_params' acpi_rsdp_addr, where run_acpi_install() put it. */
void run_linux_set_rsdp(unsigned char *mem, uint64_t rsdp_gpa);

/*
 * run_acpi.c: a Linux guest's ACPI tables (hardware-reduced ACPI) at
 * RUN_LINUX_ACPI_GPA, for @ncpus local APICs and lvmm's I/O APIC when
 * there is one (@ioapic); returns the RSDP's address.  Its FADT's sleep
 * control register is port RUN_ACPI_SLEEP_CONTROL, where SLP_EN with
 * SLP_TYP RUN_ACPI_S5_TYPE (its \_S5) powers off (run_pc.c), and its
 * sleep status register RUN_ACPI_SLEEP_STATUS.
 */
#define RUN_ACPI_SLEEP_CONTROL	0x600
#define RUN_ACPI_SLEEP_STATUS	0x601
#define RUN_ACPI_SLP_TYP_SHIFT	2	/* bits 4:2 */
#define RUN_ACPI_SLP_TYP_MASK	0x1c
#define RUN_ACPI_SLP_EN		0x20
#define RUN_ACPI_WAK_STS	0x80
#define RUN_ACPI_S5_TYPE	5

uint64_t run_acpi_install(unsigned char *mem, int ncpus, bool ioapic);

/* run_uart.c: the 16550 at 0x3f8 and the console behind it. */
#define RUN_UART_BASE		0x3f8
#define RUN_UART_RX_SIZE	4096

struct run_uart {
	pthread_mutex_t lock;
	int out_fd;		/* -1: discard */
	bool out_error;		/* a write failed: the VM stops */
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thre_pending;	/* the THR-empty interrupt condition */
	uint8_t rx[RUN_UART_RX_SIZE];
	unsigned int rx_head, rx_len;
	uint64_t gen;		/* counts the changes the guest can see */
};

void run_uart_init(struct run_uart *u, int out_fd);
void run_uart_destroy(struct run_uart *u);
/* Returns false when the console failed (the VM should stop). */
bool run_uart_out(struct run_uart *u, unsigned int off, uint8_t val);
uint8_t run_uart_in(struct run_uart *u, unsigned int off);
/*
 * Its interrupt output: OUT2 (which gates it on a PC) and a condition
 * that IER enables, as IIR reports it.
 */
bool run_uart_irq(struct run_uart *u);
void run_uart_rx(struct run_uart *u, const uint8_t *buf, size_t n);
/* The count of changes; it moves whenever run_uart_save() would differ. */
uint64_t run_uart_gen(struct run_uart *u);
/*
 * The UART's section of vmctl's device state into @buf (at most
 * RUN_UART_STATE_MAX bytes), and the count of changes it is as of.
 */
#define RUN_UART_STATE_MAX	(16 + RUN_UART_RX_SIZE)
size_t run_uart_save(struct run_uart *u, uint8_t *buf, uint64_t *gen);
/* Take the state of a section run_uart_save() wrote; NULL, or why not. */
const char *run_uart_load(struct run_uart *u, const uint8_t *buf, size_t len);
/* Its registers and FIFO in a line, for -v. */
void run_uart_describe(struct run_uart *u, char *buf, size_t len);

/*
 * run_pc.c: the legacy ports a Linux guest needs (PIC, PIT, RTC, reset)
 * and its ACPI sleep registers (power-off).
 */
struct run_pit {
	uint8_t mode;		/* 0-5 */
	uint8_t rw;		/* access: 1 LSB, 2 MSB, 3 LSB then MSB */
	uint16_t reload;	/* 0: 65536 */
	bool loaded;		/* a count was written since the mode */
	bool counting;
	bool gate;
	uint64_t start;		/* CLOCK_MONOTONIC ns counting began */
	uint64_t frozen;	/* ticks counted before start */
	bool write_msb, read_msb, latch_msb;
	uint8_t write_lsb;
	bool latched, status_latched;
	uint16_t latch;
	uint8_t status;
};

struct run_pc {
	pthread_mutex_t lock;
	struct run_pit pit[3];
	uint8_t port_b;		/* port 0x61's writable bits */
	uint8_t cmos_index;
	uint8_t cmos[128];
	uint8_t rcr;		/* port 0xcf9 */
	uint8_t sleep_status;	/* RUN_ACPI_SLEEP_STATUS: WAK_STS */
};

enum run_pc_result {
	RUN_PC_OK, RUN_PC_NOT_MINE, RUN_PC_RESET, RUN_PC_POWEROFF
};

/* Everything but the lock, which the caller initialises. */
void run_pc_init(struct run_pc *pc);
/*
 * A byte at @port: out (*@v written) or in (*@v read); @now is
 * CLOCK_MONOTONIC in ns, @now_real the time of day.
 */
enum run_pc_result run_pc_io(struct run_pc *pc, uint16_t port, bool out,
			     uint8_t *v, uint64_t now, time_t now_real);

/*
 * run_state.c: vmctl run's device state as one versioned blob, which run.c
 * keeps in lvmm (LVMM_SET_VMM_STATE) so that vm-save carries it, and reads
 * back after LVMM_RESTORE_VM.  The format is described there.
 */
#define RUN_STATE_MAGIC		0x5645444c54434d56ULL	/* "VMCTLDEV" */
#define RUN_STATE_VERSION	1
#define RUN_STATE_MAX		(16 + 8 + RUN_UART_STATE_MAX + 8 + 8 + \
				 RUN_MAX_CPUS + 8)

/* What vmctl does with a vCPU; run_state carries it. */
enum run_vcpu_state {
	RUN_VCPU_RUNNING,	/* vmctl runs it */
	RUN_VCPU_HALTED,	/* HLT with IF=0: done, counts toward the end */
	RUN_VCPU_IDLE,		/* HLT with IF=1: waits for the end */
	RUN_VCPU_STATES
};

/*
 * Write the blob of @u and @vcpus[@ncpus] to @buf (RUN_STATE_MAX bytes);
 * returns its length, and in *@uart_gen the UART's count it is as of.
 */
size_t run_state_save(uint8_t *buf, struct run_uart *u, const uint8_t *vcpus,
		      int ncpus, uint64_t *uart_gen);
/*
 * Load a blob into @u and @vcpus (@ncpus of them, which it must have);
 * NULL, or why not (a phrase: "it was written by a newer vmctl (format
 * 2)").  Nothing changes when it fails.
 */
const char *run_state_load(const uint8_t *blob, size_t len,
			   struct run_uart *u, uint8_t *vcpus, int ncpus);
/*
 * Whose blob @blob is, for snapshot-info: 1 and its format version in
 * *@version when it is vmctl's (it starts with RUN_STATE_MAGIC), else 0.
 */
int run_state_identify(const uint8_t *blob, size_t len, uint32_t *version);

#endif /* _VMCTL_RUN_H */
