// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl run: the Linux boot protocol (Documentation/x86/boot.rst in the
 * kernel's tree), as QEMU's -kernel and kvmtool load a bzImage: the
 * protected-mode kernel at its preferred address, the initrd high in
 * memory, the command line, and a boot_params ("zero page") with an e820
 * map; the kernel is entered at its 64-bit entry point.  The CPUs are
 * described by ACPI tables (run_acpi.c), which also let the guest power
 * off, and by an MP table (Intel's MultiProcessor Specification 1.4),
 * which Linux finds in the EBDA and uses without ACPI (acpi=off).
 *
 * Everything that can be wrong with the files is found by
 * run_linux_parse() and run_linux_layout(), before any VM exists.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "vmctl.h"

/* The setup header, at these offsets of the file and of boot_params. */
#define HDR_SETUP_SECTS		0x1f1
#define HDR_BOOT_FLAG		0x1fe
#define HDR_JUMP		0x200
#define HDR_MAGIC		0x202
#define HDR_VERSION		0x206
#define HDR_TYPE_OF_LOADER	0x210
#define HDR_LOADFLAGS		0x211
#define HDR_CODE32_START	0x214
#define HDR_RAMDISK_IMAGE	0x218
#define HDR_RAMDISK_SIZE	0x21c
#define HDR_HEAP_END_PTR	0x224
#define HDR_CMD_LINE_PTR	0x228
#define HDR_INITRD_ADDR_MAX	0x22c
#define HDR_KERNEL_ALIGNMENT	0x230
#define HDR_RELOCATABLE		0x234
#define HDR_XLOADFLAGS		0x236
#define HDR_CMDLINE_SIZE	0x238
#define HDR_HARDWARE_SUBARCH	0x23c
#define HDR_PREF_ADDRESS	0x258
#define HDR_INIT_SIZE		0x260

/* loadflags */
#define LOADED_HIGH		(1U << 0)
#define KEEP_SEGMENTS		(1U << 6)
#define CAN_USE_HEAP		(1U << 7)
#define QUIET_FLAG		(1U << 5)
/* xloadflags (2.12) */
#define XLF_KERNEL_64		(1U << 0)

/* boot_params, outside the setup header. */
#define BP_ACPI_RSDP_ADDR	0x070	/* 2.14 */
#define BP_EXT_RAMDISK_IMAGE	0x0c0
#define BP_EXT_RAMDISK_SIZE	0x0c4
#define BP_EXT_CMD_LINE_PTR	0x0c8
#define BP_E820_ENTRIES		0x1e8
#define BP_E820_TABLE		0x2d0
#define BP_E820_MAX		128

#define E820_RAM		1
#define E820_RESERVED		2

#define PAGE_SIZE		4096ULL
#define ALIGN_UP(x, a)		(((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a)	((x) & ~((uint64_t)(a) - 1))
#define MIB			(1ULL << 20)

/* MP table (MultiProcessor Specification 1.4) */
#define MPC_CPU			0
#define MPC_BUS			1
#define MPC_IOAPIC		2
#define MPC_INTSRC		3
#define MPC_LINTSRC		4
#define MPC_CPU_EN		(1U << 0)
#define MPC_CPU_BP		(1U << 1)
#define MP_INT_INT		0
#define MP_INT_EXTINT		3
#define MP_INT_NMI		1
#define MPC_IOAPIC_EN		(1U << 0)

struct mpf {
	char signature[4];	/* "_MP_" */
	uint32_t physptr;
	uint8_t length;		/* in 16-byte units: 1 */
	uint8_t specification;	/* 4: version 1.4 */
	uint8_t checksum;
	uint8_t feature1;	/* 0: a configuration table is there */
	uint8_t feature2;	/* bit 7 clear: virtual wire, no IMCR */
	uint8_t feature3, feature4, feature5;
} __attribute__((packed));

struct mpc_header {
	char signature[4];	/* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;	/* entries */
	uint32_t lapic;
	uint16_t reserved;
	uint8_t ext_checksum;
	uint8_t reserved2;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

/* mpc_intsrc has the same layout. */
struct mpc_lintsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbusid;
	uint8_t srcbusirq;
	uint8_t destapic;
	uint8_t destapiclint;
} __attribute__((packed));

_Static_assert(sizeof(struct mpf) == 16, "MP floating pointer");
_Static_assert(sizeof(struct mpc_header) == 44, "MP table header");
_Static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry");

static uint16_t get16(const unsigned char *p, size_t off)
{
	return p[off] | p[off + 1] << 8;
}

static uint32_t get32(const unsigned char *p, size_t off)
{
	return get16(p, off) | (uint32_t)get16(p, off + 2) << 16;
}

static uint64_t get64(const unsigned char *p, size_t off)
{
	return get32(p, off) | (uint64_t)get32(p, off + 4) << 32;
}

static void put16(unsigned char *p, size_t off, uint16_t v)
{
	p[off] = v;
	p[off + 1] = v >> 8;
}

static void put32(unsigned char *p, size_t off, uint32_t v)
{
	put16(p, off, v);
	put16(p, off + 2, v >> 16);
}

static void put64(unsigned char *p, size_t off, uint64_t v)
{
	put32(p, off, v);
	put32(p, off + 4, v >> 32);
}

static int lx_err(const struct run_blob *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int lx_err(const struct run_blob *b, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vmctl_err("%s: %s", b->path, msg);
	return -ENOEXEC;
}

bool run_linux_detect(const struct run_blob *b)
{
	return b->size >= HDR_MAGIC + 4 &&
	       !memcmp(b->data + HDR_MAGIC, "HdrS", 4);
}

int run_linux_parse(struct run_image *img)
{
	const struct run_blob *b = &img->blob;
	const unsigned char *d = b->data;
	struct run_linux *lx = &img->lx;
	uint64_t pm_off, align;
	unsigned int sects;

	memset(lx, 0, sizeof(*lx));
	img->is_linux = true;
	img->mode = RUN_MODE_LONG64;
	img->format = "Linux bzImage";
	if (!run_linux_detect(b))
		return lx_err(b, "not a Linux bzImage: no setup header (\"HdrS\" at 0x202)");
	lx->version = get16(d, HDR_VERSION);
	if (lx->version < 0x0206)
		return lx_err(b, "Linux boot protocol %u.%02u is too old: vmctl needs 2.06 or later (Linux 2.6.22 and newer)",
			      lx->version >> 8, lx->version & 0xff);
	if (get16(d, HDR_BOOT_FLAG) != 0xaa55)
		return lx_err(b, "bad boot flag 0x%04x at 0x1fe (expected 0xaa55): corrupt bzImage",
			      get16(d, HDR_BOOT_FLAG));
	lx->hdr_end = HDR_MAGIC + d[HDR_JUMP + 1];
	if (lx->hdr_end < HDR_INIT_SIZE + 4 && lx->version >= 0x020a)
		return lx_err(b, "setup header ends at 0x%x, before the fields of its protocol %u.%02u: corrupt bzImage",
			      lx->hdr_end, lx->version >> 8, lx->version & 0xff);
	if (lx->hdr_end > b->size)
		return lx_err(b, "setup header ends at 0x%x, past the end of the file: truncated bzImage",
			      lx->hdr_end);
	if (!(d[HDR_LOADFLAGS] & LOADED_HIGH))
		return lx_err(b, "a zImage (loaded low, below 1 MiB): vmctl boots bzImages only");
	lx->xloadflags = lx->version >= 0x020c ? get16(d, HDR_XLOADFLAGS) : 0;
	if (lx->version >= 0x020c && !(lx->xloadflags & XLF_KERNEL_64))
		return lx_err(b, "a 32-bit kernel (no 64-bit entry point, xloadflags 0x%x): vmctl enters Linux in 64-bit mode",
			      lx->xloadflags);

	sects = d[HDR_SETUP_SECTS] ? d[HDR_SETUP_SECTS] : 4;
	pm_off = (uint64_t)(sects + 1) * 512;
	if (pm_off >= b->size)
		return lx_err(b, "the protected-mode kernel would start at 0x%" PRIx64 ", past the end of the file (%zu bytes): truncated bzImage",
			      pm_off, b->size);
	lx->pm_offset = pm_off;
	lx->pm_size = b->size - pm_off;
	lx->cmdline_size = get32(d, HDR_CMDLINE_SIZE);
	lx->initrd_addr_max = get32(d, HDR_INITRD_ADDR_MAX);
	lx->relocatable = d[HDR_RELOCATABLE];
	align = get32(d, HDR_KERNEL_ALIGNMENT);
	if (lx->version >= 0x020a) {
		lx->pref_address = get64(d, HDR_PREF_ADDRESS);
		lx->init_size = get32(d, HDR_INIT_SIZE);
	}
	/* Before 2.10 nothing says how much it needs: the file's size. */
	if (lx->init_size < lx->pm_size)
		lx->init_size = lx->pm_size;

	/*
	 * Where QEMU and kvmtool put it: 1 MiB.  A relocatable kernel goes
	 * to its preferred address instead, as boot.rst asks, which is
	 * where it decompresses itself anyway; aligned as it wants.
	 */
	lx->load_addr = RUN_LINUX_LOAD_MIN;
	if (lx->relocatable && lx->pref_address >= RUN_LINUX_LOAD_MIN &&
	    lx->pref_address < (1ULL << 32)) {
		lx->load_addr = lx->pref_address;
		if (align && !(align & (align - 1)))
			lx->load_addr = ALIGN_UP(lx->load_addr, align);
	}
	img->entry = lx->load_addr + 0x200;	/* startup_64 */
	img->start = lx->load_addr;
	img->end = lx->load_addr + lx->init_size;
	img->nsegs = 0;
	return 0;
}

static int fmt_mib(char *buf, size_t len, uint64_t bytes)
{
	return snprintf(buf, len, "%" PRIu64 "M", (uint64_t)(ALIGN_UP(bytes, MIB) >> 20));
}

int run_linux_layout(struct run_image *img, const char *cmdline,
		     uint64_t mem_size)
{
	struct run_linux *lx = &img->lx;
	uint64_t top, kend = lx->load_addr + lx->init_size;
	char need[32];
	size_t len = strlen(cmdline);

	if (mem_size > RUN_LINUX_MEM_MAX) {
		vmctl_err("--mem %" PRIu64 "M is too much for a Linux guest: its memory must end below 0x%llx, where the I/O APIC and the local APIC are; give --mem %lluM or less",
			  mem_size >> 20, RUN_LINUX_MEM_MAX,
			  RUN_LINUX_MEM_MAX >> 20);
		return -E2BIG;
	}
	if (lx->cmdline_size && len > lx->cmdline_size) {
		vmctl_err("the command line is %zu bytes; %s takes at most %u",
			  len, img->blob.path, lx->cmdline_size);
		return -E2BIG;
	}
	if (len >= RUN_LINUX_CMDLINE_MAX) {
		vmctl_err("the command line is %zu bytes; vmctl passes at most %llu",
			  len, RUN_LINUX_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	if (kend > mem_size) {
		fmt_mib(need, sizeof(need), kend + (lx->initrd.size ?
			ALIGN_UP(lx->initrd.size, PAGE_SIZE) : 0));
		vmctl_err("--mem %" PRIu64 "M is too small: %s needs 0x%" PRIx64 "-0x%" PRIx64 " (loaded at 0x%" PRIx64 ", init_size 0x%" PRIx64 ")%s; give --mem %s or more",
			  mem_size >> 20, img->blob.path, lx->load_addr, kend,
			  lx->load_addr, lx->init_size,
			  lx->initrd.size ? " and its initrd above that" : "",
			  need);
		return -ENOSPC;
	}
	lx->initrd_gpa = 0;
	if (!lx->initrd.path)
		return 0;
	/* High, but below initrd_addr_max, as QEMU and kvmtool place it. */
	top = mem_size;
	if (lx->initrd_addr_max && top > (uint64_t)lx->initrd_addr_max + 1)
		top = (uint64_t)lx->initrd_addr_max + 1;
	if (lx->initrd.size > top ||
	    ALIGN_DOWN(top - lx->initrd.size, PAGE_SIZE) < ALIGN_UP(kend, PAGE_SIZE)) {
		if (top < mem_size) {
			vmctl_err("%s (%zu bytes) does not fit between the kernel's end (0x%" PRIx64 ") and its initrd_addr_max (0x%x)",
				  lx->initrd.path, lx->initrd.size, kend,
				  lx->initrd_addr_max);
			return -ENOSPC;
		}
		fmt_mib(need, sizeof(need), ALIGN_UP(kend, PAGE_SIZE) +
			ALIGN_UP(lx->initrd.size, PAGE_SIZE));
		vmctl_err("--mem %" PRIu64 "M is too small: %s ends at 0x%" PRIx64 " and %s takes %zu bytes above it; give --mem %s or more",
			  mem_size >> 20, img->blob.path, kend, lx->initrd.path,
			  lx->initrd.size, need);
		return -ENOSPC;
	}
	lx->initrd_gpa = ALIGN_DOWN(top - lx->initrd.size, PAGE_SIZE);
	return 0;
}

static void e820_add(unsigned char *bp, uint64_t addr, uint64_t size,
		     uint32_t type)
{
	unsigned int n = bp[BP_E820_ENTRIES];
	unsigned char *e = bp + BP_E820_TABLE + n * 20;

	put32(e, 0, addr);
	put32(e, 4, addr >> 32);
	put32(e, 8, size);
	put32(e, 12, size >> 32);
	put32(e, 16, type);
	bp[BP_E820_ENTRIES] = n + 1;
}

static uint8_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return -sum;
}

/*
 * The MP floating pointer at the start of the EBDA, where Linux looks
 * first after the BIOS data area's EBDA pointer, and the configuration
 * table after it: one processor entry per vCPU (APIC id = vCPU id, vCPU
 * 0 the bootstrap processor), the ISA bus, and the local interrupt
 * inputs as a PC wires them (ExtINT on LINT0, NMI on LINT1).  With lvmm's
 * I/O APIC (@ioapic), it too (APIC id @ncpus, after the processors', as
 * SeaBIOS numbers it) and the ISA interrupts on the pins of their number,
 * edge-triggered and active high as the bus says: 1 and 3 to 15.  IRQ 0
 * is left out, as nothing raises it (vmctl's PIT has no interrupt), and
 * so is 2, the PIC's cascade.
 */
static void install_mptable(unsigned char *mem, int ncpus, bool ioapic,
			    uint32_t cpu_sig, uint32_t cpu_features)
{
	struct mpc_ioapic *io;
	struct mpf *mpf = (void *)(mem + RUN_LINUX_MPF_GPA);
	struct mpc_header *mpc = (void *)(mem + RUN_LINUX_MPC_GPA);
	unsigned char *p = (unsigned char *)(mpc + 1);
	struct mpc_lintsrc *lint;
	struct mpc_cpu *cpu;
	struct mpc_bus *bus;
	int i, n = 0;

	memset(mem + RUN_LINUX_EBDA_GPA, 0, RUN_LINUX_EBDA_SIZE);
	for (i = 0; i < ncpus; i++, n++) {
		cpu = (void *)p;
		cpu->type = MPC_CPU;
		cpu->apicid = i;
		cpu->apicver = RUN_LINUX_APIC_VERSION;
		cpu->cpuflag = MPC_CPU_EN | (i == 0 ? MPC_CPU_BP : 0);
		cpu->cpufeature = cpu_sig;
		cpu->featureflag = cpu_features;
		p += sizeof(*cpu);
	}
	bus = (void *)p;
	bus->type = MPC_BUS;
	bus->busid = 0;
	memcpy(bus->bustype, "ISA   ", 6);
	p += sizeof(*bus);
	n++;
	if (ioapic) {
		io = (void *)p;
		io->type = MPC_IOAPIC;
		io->apicid = ncpus;
		io->apicver = RUN_LINUX_IOAPIC_VERSION;
		io->flags = MPC_IOAPIC_EN;
		io->apicaddr = RUN_LINUX_IOAPIC_GPA;
		p += sizeof(*io);
		n++;
		for (i = 1; i < 16; i++) {
			if (i == 2)
				continue;
			lint = (void *)p;
			lint->type = MPC_INTSRC;
			lint->irqtype = MP_INT_INT;
			lint->irqflag = 0;	/* conforms to the bus: ISA */
			lint->srcbusid = 0;
			lint->srcbusirq = i;
			lint->destapic = ncpus;
			lint->destapiclint = i;	/* the pin */
			p += sizeof(*lint);
			n++;
		}
	}
	for (i = 0; i < 2; i++, n++) {
		lint = (void *)p;
		lint->type = MPC_LINTSRC;
		lint->irqtype = i ? MP_INT_NMI : MP_INT_EXTINT;
		lint->irqflag = 0;	/* conforms to the bus */
		lint->srcbusid = 0;
		lint->srcbusirq = 0;
		lint->destapic = 0xff;	/* every local APIC */
		lint->destapiclint = i;
		p += sizeof(*lint);
	}

	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = p - (unsigned char *)mpc;
	mpc->spec = 4;
	memcpy(mpc->oem, "LVMM    ", 8);
	memcpy(mpc->product, "VMCTL RUN   ", 12);
	mpc->oemcount = n;
	mpc->lapic = RUN_LINUX_LAPIC_GPA;
	mpc->checksum = checksum(mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = RUN_LINUX_MPC_GPA;
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum(mpf, sizeof(*mpf));
}

void run_linux_install(unsigned char *mem, uint64_t mem_size,
		       const struct run_image *img, const char *cmdline,
		       int ncpus, bool ioapic, uint32_t cpu_sig,
		       uint32_t cpu_features)
{
	const struct run_linux *lx = &img->lx;
	const unsigned char *d = img->blob.data;
	unsigned char *bp = mem + RUN_LINUX_BOOT_PARAMS_GPA;
	uint64_t *gdt = (void *)(mem + RUN_GDT_GPA);

	/* boot.rst's 64-bit protocol: __BOOT_CS 0x10, __BOOT_DS 0x18. */
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[RUN_LINUX_SEL_CODE / 8] = 0x00af9b000000ffffULL;
	gdt[RUN_LINUX_SEL_DATA / 8] = 0x00cf93000000ffffULL;

	/* The BIOS data area: where the EBDA is, and 639 KiB below it. */
	put16(mem, 0x40e, RUN_LINUX_EBDA_GPA >> 4);
	put16(mem, 0x413, RUN_LINUX_EBDA_GPA >> 10);

	memset(bp, 0, PAGE_SIZE);
	memcpy(bp + HDR_SETUP_SECTS, d + HDR_SETUP_SECTS,
	       lx->hdr_end - HDR_SETUP_SECTS);
	bp[HDR_TYPE_OF_LOADER] = 0xff;	/* undefined: not a registered one */
	/* Messages on; no real-mode code runs, so no heap for it. */
	bp[HDR_LOADFLAGS] &= ~(QUIET_FLAG | CAN_USE_HEAP | KEEP_SEGMENTS);
	put16(bp, HDR_HEAP_END_PTR, 0);
	put32(bp, HDR_CODE32_START, lx->load_addr);
	put32(bp, HDR_CMD_LINE_PTR, RUN_LINUX_CMDLINE_GPA);
	put32(bp, BP_EXT_CMD_LINE_PTR, 0);
	put32(bp, HDR_RAMDISK_IMAGE, lx->initrd_gpa);
	put32(bp, HDR_RAMDISK_SIZE, lx->initrd.size);
	put32(bp, BP_EXT_RAMDISK_IMAGE, 0);
	put32(bp, BP_EXT_RAMDISK_SIZE, 0);
	put32(bp, HDR_HARDWARE_SUBARCH, 0);	/* a PC */

	/*
	 * As in the multiboot map, the EBDA (the MP table) is reserved, and
	 * the BIOS area from 0xe0000 (the ACPI tables) where a PC has it.
	 */
	e820_add(bp, 0, RUN_LINUX_EBDA_GPA, E820_RAM);
	e820_add(bp, RUN_LINUX_EBDA_GPA, RUN_LINUX_EBDA_SIZE, E820_RESERVED);
	e820_add(bp, RUN_LINUX_BIOS_GPA, RUN_LINUX_LOAD_MIN - RUN_LINUX_BIOS_GPA,
		 E820_RESERVED);
	e820_add(bp, RUN_LINUX_LOAD_MIN, mem_size - RUN_LINUX_LOAD_MIN,
		 E820_RAM);

	strcpy((char *)mem + RUN_LINUX_CMDLINE_GPA, cmdline);
	install_mptable(mem, ncpus, ioapic, cpu_sig, cpu_features);
	memcpy(mem + lx->load_addr, d + lx->pm_offset, lx->pm_size);
	if (lx->initrd.size)
		memcpy(mem + lx->initrd_gpa, lx->initrd.data, lx->initrd.size);
}

void run_linux_set_rsdp(unsigned char *mem, uint64_t rsdp_gpa)
{
	/* A kernel before 2.14 ignores it and finds the RSDP by its scan. */
	put64(mem + RUN_LINUX_BOOT_PARAMS_GPA, BP_ACPI_RSDP_ADDR, rsdp_gpa);
}
