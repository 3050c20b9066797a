// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl run: the ACPI tables of a Linux guest, for a hardware-reduced ACPI
 * platform (ACPI 6.0, "Hardware-Reduced ACPI") as Firecracker and
 * cloud-hypervisor give their guests: no PM1 blocks, no SCI, no GPEs, no
 * FACS.  What they are for is power-off: the FADT's sleep control and
 * status registers are ports RUN_ACPI_SLEEP_CONTROL and
 * RUN_ACPI_SLEEP_STATUS, and the DSDT's \_S5 gives the sleep type that
 * Linux writes there with SLP_EN in its poweroff (acpi_hw_extended_sleep()
 * in drivers/acpi/acpica/hwesleep.c); run_pc.c ends the VM then.
 *
 * At RUN_LINUX_ACPI_GPA (in the BIOS area, reserved in the e820 map), each
 * on a 16-byte boundary:
 *
 *   RSDP  revision 2, where Linux's scan of 0xe0000-0xfffff finds it (and
 *         boot_params.acpi_rsdp_addr points), with no RSDT, only the XSDT
 *   XSDT  the FADT and the MADT
 *   FADT  revision 6 (ACPI 6.0, 276 bytes), HW_REDUCED_ACPI, no fixed
 *         power or sleep button, the sleep registers, the DSDT
 *   MADT  the local APICs (one per vCPU, APIC and processor id = vCPU id),
 *         lvmm's I/O APIC with its GSIs from 0, LINT1 as NMI on every CPU
 *   DSDT  \_S5, and the two ISA devices that have an interrupt: COM1 and
 *         the RTC
 *
 * and, at the reset vector, code that resets (run_pc.c's port 0x64), for
 * Linux's reboot of such a platform.
 *
 * The MADT says what the MP table says (run_linux.c), which stays for a
 * kernel without ACPI or booted with acpi=off.  It has no interrupt
 * source override: the MP table maps ISA IRQ n to I/O APIC pin n, which is
 * ACPI's default.  A hardware-reduced platform has no 8259 (Linux then
 * uses its NULL PIC and no legacy IRQ numbers), so the ISA devices that
 * take an interrupt must be in the DSDT for Linux to route it: without
 * COM1 there, ttyS0 would ask for IRQ 4 that no I/O APIC pin backs.
 */
#include <string.h>

#include "run.h"

#define ACPI_OEM_ID		"LVMM  "
#define ACPI_OEM_TABLE_ID	"VMCTLRUN"
#define ACPI_CREATOR_ID		"LVMM"

/* FADT flags */
#define FADT_POWER_BUTTON	(1U << 4)	/* no fixed power button */
#define FADT_SLEEP_BUTTON	(1U << 5)	/* no fixed sleep button */
#define FADT_HW_REDUCED_ACPI	(1U << 20)

/* Generic Address Structure */
#define GAS_SYSTEM_IO		1
#define GAS_ACCESS_BYTE		1

/* MADT */
#define MADT_LOCAL_APIC		0
#define MADT_IO_APIC		1
#define MADT_LOCAL_APIC_NMI	4
#define MADT_LAPIC_ENABLED	(1U << 0)

struct acpi_rsdp {
	char signature[8];	/* "RSD PTR " */
	uint8_t checksum;	/* of the first 20 bytes */
	char oem_id[6];
	uint8_t revision;	/* 2: ACPI 2.0 and later */
	uint32_t rsdt;
	uint32_t length;
	uint64_t xsdt;
	uint8_t ext_checksum;	/* of all 36 */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_width;
	uint64_t address;
} __attribute__((packed));

/* Only what vmctl sets has a name; the rest stays zero. */
struct acpi_fadt {
	struct acpi_header h;
	uint32_t facs;
	uint32_t dsdt;
	uint8_t pre_flags[68];	/* model ... century, boot flags, reserved */
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_flags;
	uint8_t minor_revision;
	uint64_t x_facs;
	uint64_t x_dsdt;
	struct acpi_gas x_blocks[8];	/* PM1a/b event and control, ... */
	struct acpi_gas sleep_control;
	struct acpi_gas sleep_status;
	uint64_t hypervisor_id;
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_addr;
	uint32_t flags;		/* 0: no PCAT_COMPAT, there are no 8259s */
} __attribute__((packed));

struct madt_lapic {
	uint8_t type, length;
	uint8_t processor_id;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length;
	uint8_t id;
	uint8_t reserved;
	uint32_t addr;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length;
	uint8_t processor_id;	/* 0xff: every processor */
	uint16_t flags;		/* 0: conforms to the bus */
	uint8_t lint;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT, ACPI 6.0");
_Static_assert(__builtin_offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
_Static_assert(__builtin_offsetof(struct acpi_fadt, sleep_control) == 244,
	       "FADT sleep control register");
_Static_assert(sizeof(struct madt_lapic_nmi) == 6, "MADT local APIC NMI");

/*
 * The DSDT's AML, hand-assembled (ACPI 6.0, "ACPI Machine Language
 * Specification"); "iasl -d" of the table gives back
 *
 *	Name (_S5, Package () { 5, 0 })
 *	Scope (_SB) {
 *		Device (COM1) {
 *			Name (_HID, EisaId ("PNP0501"))
 *			Name (_UID, 1)
 *			Name (_CRS, ResourceTemplate () {
 *				IO (Decode16, 0x3F8, 0x3F8, 0x01, 0x08)
 *				IRQNoFlags () { 4 }
 *			})
 *		}
 *		Device (RTC) {
 *			Name (_HID, EisaId ("PNP0B00"))
 *			Name (_CRS, ResourceTemplate () {
 *				IO (Decode16, 0x70, 0x70, 0x01, 0x02)
 *				IRQNoFlags () { 8 }
 *			})
 *		}
 *	}
 *
 * Linux reads the package's first element as SLP_TYPa.
 */
static const uint8_t dsdt_aml[] = {
	/* NameOp "_S5_" PackageOp PkgLength(5) NumElements(2) 5 Zero */
	0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, RUN_ACPI_S5_TYPE,
	0x00,
	/* ScopeOp PkgLength(0x5a, in two bytes) "_SB_" */
	0x10, 0x4a, 0x05, '_', 'S', 'B', '_',
	/* DeviceOp PkgLength(0x2b) "COM1" */
	0x5b, 0x82, 0x2b, 'C', 'O', 'M', '1',
	/* Name (_HID, EisaId ("PNP0501")): DWordConst 0x0105d041 */
	0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01,
	/* Name (_UID, One) */
	0x08, '_', 'U', 'I', 'D', 0x01,
	/* Name (_CRS, Buffer (PkgLength 0x10) { ByteConst 13 bytes ... }) */
	0x08, '_', 'C', 'R', 'S', 0x11, 0x10, 0x0a, 0x0d,
	/* I/O port descriptor: decode16, 0x3f8-0x3f8, align 1, 8 ports */
	0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
	/* IRQ descriptor without flags: IRQ 4 (edge, active high) */
	0x22, 0x10, 0x00,
	/* End tag and its checksum (0: not checked) */
	0x79, 0x00,
	/* DeviceOp PkgLength(0x25) "RTC_" */
	0x5b, 0x82, 0x25, 'R', 'T', 'C', '_',
	/* Name (_HID, EisaId ("PNP0B00")): DWordConst 0x000bd041 */
	0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0b, 0x00,
	0x08, '_', 'C', 'R', 'S', 0x11, 0x10, 0x0a, 0x0d,
	/* I/O port descriptor: decode16, 0x70-0x70, align 1, 2 ports */
	0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02,
	/* IRQ descriptor without flags: IRQ 8 */
	0x22, 0x00, 0x01,
	0x79, 0x00,
};

/*
 * What a PC's firmware has at the reset vector, 0xf000:0xfff0, cut down to
 * what a reset means to vmctl run: "mov al, 0xfe; out 0x64, al" (the
 * keyboard controller's reset, run_pc.c), then "hlt; jmp $-1".  Linux
 * jumps there in real mode to reboot a hardware-reduced ACPI machine
 * without EFI: reboot_init() picks EFI for it (efi_reboot_required()),
 * and without EFI its restart goes on to machine_real_restart().
 */
static const uint8_t reset_vector[] = {
	0xb0, 0xfe, 0xe6, 0x64, 0xf4, 0xeb, 0xfd,
};

static uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return -sum;
}

static void acpi_header(struct acpi_header *h, const char *sig,
			uint32_t length, uint8_t revision)
{
	memcpy(h->signature, sig, 4);
	h->length = length;
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
	/* Last: the sum of the whole table, this byte included, is 0. */
	h->checksum = acpi_checksum(h, length);
}

static void acpi_gas_port(struct acpi_gas *g, uint16_t port)
{
	g->space_id = GAS_SYSTEM_IO;
	g->bit_width = 8;
	g->bit_offset = 0;
	g->access_width = GAS_ACCESS_BYTE;
	g->address = port;
}

/* The next table's address: 16-byte aligned, after @len bytes at @gpa. */
static uint64_t acpi_next(uint64_t gpa, size_t len)
{
	return (gpa + len + 15) & ~15ULL;
}

static uint64_t install_madt(unsigned char *mem, uint64_t gpa, int ncpus,
			     bool ioapic)
{
	struct acpi_madt *madt = (void *)(mem + gpa);
	unsigned char *p = (unsigned char *)(madt + 1);
	struct madt_lapic_nmi *nmi;
	struct madt_ioapic *io;
	struct madt_lapic *la;
	int i;

	madt->lapic_addr = RUN_LINUX_LAPIC_GPA;
	madt->flags = 0;
	for (i = 0; i < ncpus; i++) {
		la = (void *)p;
		la->type = MADT_LOCAL_APIC;
		la->length = sizeof(*la);
		la->processor_id = i;
		la->apic_id = i;
		la->flags = MADT_LAPIC_ENABLED;
		p += sizeof(*la);
	}
	if (ioapic) {
		/* The MP table's id for it: after the processors'. */
		io = (void *)p;
		io->type = MADT_IO_APIC;
		io->length = sizeof(*io);
		io->id = ncpus;
		io->addr = RUN_LINUX_IOAPIC_GPA;
		io->gsi_base = 0;
		p += sizeof(*io);
	}
	nmi = (void *)p;
	nmi->type = MADT_LOCAL_APIC_NMI;
	nmi->length = sizeof(*nmi);
	nmi->processor_id = 0xff;
	nmi->flags = 0;
	nmi->lint = 1;
	p += sizeof(*nmi);
	/* ACPI 6.0's MADT is revision 4. */
	acpi_header(&madt->h, "APIC", p - (unsigned char *)madt, 4);
	return acpi_next(gpa, madt->h.length);
}

uint64_t run_acpi_install(unsigned char *mem, int ncpus, bool ioapic)
{
	uint64_t rsdp_gpa = RUN_LINUX_ACPI_GPA;
	uint64_t xsdt_gpa = acpi_next(rsdp_gpa, sizeof(struct acpi_rsdp));
	uint64_t fadt_gpa = acpi_next(xsdt_gpa, sizeof(struct acpi_header) + 16);
	uint64_t madt_gpa = acpi_next(fadt_gpa, sizeof(struct acpi_fadt));
	struct acpi_rsdp *rsdp = (void *)(mem + rsdp_gpa);
	struct acpi_header *xsdt = (void *)(mem + xsdt_gpa);
	struct acpi_fadt *fadt = (void *)(mem + fadt_gpa);
	uint64_t entries[2] = { fadt_gpa, madt_gpa };
	struct acpi_header *dsdt;
	uint64_t dsdt_gpa;

	memset(mem + RUN_LINUX_ACPI_GPA, 0, RUN_LINUX_ACPI_SIZE);
	memcpy(mem + RUN_LINUX_RESET_VECTOR, reset_vector,
	       sizeof(reset_vector));
	dsdt_gpa = install_madt(mem, madt_gpa, ncpus, ioapic);
	dsdt = (void *)(mem + dsdt_gpa);
	memcpy(dsdt + 1, dsdt_aml, sizeof(dsdt_aml));
	/* Revision 2: 64-bit integers in its AML. */
	acpi_header(dsdt, "DSDT", sizeof(*dsdt) + sizeof(dsdt_aml), 2);

	fadt->flags = FADT_POWER_BUTTON | FADT_SLEEP_BUTTON |
		      FADT_HW_REDUCED_ACPI;
	fadt->minor_revision = 0;
	fadt->x_dsdt = dsdt_gpa;
	acpi_gas_port(&fadt->sleep_control, RUN_ACPI_SLEEP_CONTROL);
	acpi_gas_port(&fadt->sleep_status, RUN_ACPI_SLEEP_STATUS);
	acpi_header(&fadt->h, "FACP", sizeof(*fadt), 6);

	memcpy(xsdt + 1, entries, sizeof(entries));
	acpi_header(xsdt, "XSDT", sizeof(*xsdt) + sizeof(entries), 1);

	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt = xsdt_gpa;
	rsdp->checksum = acpi_checksum(rsdp, 20);
	rsdp->ext_checksum = acpi_checksum(rsdp, sizeof(*rsdp));
	return rsdp_gpa;
}
