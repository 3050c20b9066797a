/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * lvmm: lightweight virtualization manager -- the ioctl ABI.
 *
 * /dev/lvmm -> VM fd -> vCPU fd, as in KVM.  Every structure is made of
 * naturally aligned __u8..__u64 fields, is a multiple of 8 bytes long, and
 * carries a flags word and reserved space: unknown flags and non-zero
 * reserved bytes are rejected with -EINVAL.  See Documentation/api.rst.
 */
#ifndef _UAPI_LINUX_LVMM_H
#define _UAPI_LINUX_LVMM_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* Frozen: features are discovered with LVMM_CHECK_EXTENSION. */
#define LVMM_API_VERSION	1

#define LVMMIO			0xB8

/* ---- /dev/lvmm ---------------------------------------------------------- */

#define LVMM_GET_API_VERSION	_IO(LVMMIO, 0x00)
#define LVMM_CHECK_EXTENSION	_IO(LVMMIO, 0x01)	/* arg: LVMM_CAP_* */
#define LVMM_CREATE_VM		_IOWR(LVMMIO, 0x02, struct lvmm_create_vm)
#define LVMM_GET_VCPU_MMAP_SIZE	_IO(LVMMIO, 0x03)
#define LVMM_RESTORE_VM		_IOWR(LVMMIO, 0x04, struct lvmm_restore_vm)

/* LVMM_CHECK_EXTENSION: 0 means "not supported", anything else a value. */
#define LVMM_CAP_MAX_MEMSLOTS		1	/* number of memory slots */
#define LVMM_CAP_MAX_VCPUS		2	/* vCPUs per VM */
#define LVMM_CAP_MAX_MEMSLOT_SIZE_MB	3	/* largest slot, in MiB */
#define LVMM_CAP_READONLY_MEM		4
#define LVMM_CAP_IMMEDIATE_EXIT		5
#define LVMM_CAP_NMI			6
#define LVMM_CAP_XSAVE			7
#define LVMM_CAP_HYPERCALL		8
#define LVMM_CAP_MAX_VM_NAME		9	/* bytes, with the NUL */
#define LVMM_CAP_DIRTY_LOG		10	/* LVMM_MEMSLOT_LOG_DIRTY and co. */
#define LVMM_CAP_VCPU_STATE		11	/* events, debug registers, XCRs */
#define LVMM_CAP_SNAPSHOT		12	/* the stream's format version */
#define LVMM_CAP_MIGRATE		13	/* LVMM_RESTORE_INCOMING, vm-migrate */
#define LVMM_CAP_IRQCHIP		14	/* LVMM_CREATE_IRQCHIP: local APICs */

#define LVMM_VM_NAME_LEN	32

struct lvmm_create_vm {
	/* in: NUL-terminated; empty picks "vm<id>".  out: the name given. */
	char name[LVMM_VM_NAME_LEN];
	__u32 flags;		/* in: must be 0 */
	__u32 id;		/* out: the VM's id */
	__u64 reserved[4];
};

/*
 * Read a VM from the stream at @fd (Documentation/migration.rst) and
 * return a VM fd with its memory, vCPUs and VMM state in place; get the
 * vCPUs' fds with LVMM_GET_VCPU.
 */
struct lvmm_restore_vm {
	/* in: a new name, or empty for the stream's.  out: the name given. */
	char name[LVMM_VM_NAME_LEN];
	__s32 fd;		/* in: readable */
	__u32 flags;		/* in: LVMM_RESTORE_* */
	__u32 id;		/* out: the VM's id */
	__u32 nr_vcpus;		/* out */
	__u64 reserved[4];
};

/*
 * @fd is a connected, blocking stream socket and the stream a live
 * migration: lvmm answers the source through it (struct lvmm_mig_msg) and
 * returns only once the source has handed the VM over.
 */
#define LVMM_RESTORE_INCOMING	(1U << 0)
/*
 * With LVMM_RESTORE_INCOMING: return the VM fd with the whole VM in, held
 * frozen, before the source is told READY.  The VMM sets up its side, then
 * commits or refuses with LVMM_INCOMING_FINISH (LVMM_CAP_MIGRATE >= 2).
 */
#define LVMM_RESTORE_HOLD	(1U << 1)

/*
 * LVMM_INCOMING_FINISH: the end of a migration received with
 * LVMM_RESTORE_HOLD.  @error 0 takes the VM: lvmm tells the source READY,
 * waits for GO and the VM runs here.  A positive errno refuses it: the
 * source is told so and keeps running the VM, and this one is destroyed.
 */
struct lvmm_incoming_finish {
	__s32 error;		/* in: 0, or the errno to refuse with */
	__u32 flags;		/* in: must be 0 */
	__u64 reserved[2];	/* must be 0 */
};

/* ---- VM fd --------------------------------------------------------------- */

#define LVMM_SET_MEMSLOT	_IOW(LVMMIO, 0x10, struct lvmm_memslot)
#define LVMM_CREATE_VCPU	_IOW(LVMMIO, 0x11, struct lvmm_create_vcpu)
#define LVMM_GET_VM_INFO	_IOR(LVMMIO, 0x12, struct lvmm_vm_info)
#define LVMM_SET_MEMSLOT_FLAGS	_IOW(LVMMIO, 0x13, struct lvmm_memslot_flags)
#define LVMM_GET_DIRTY_LOG	_IOW(LVMMIO, 0x14, struct lvmm_dirty_log)
#define LVMM_CLEAR_DIRTY_LOG	_IOW(LVMMIO, 0x15, struct lvmm_dirty_log)
#define LVMM_GET_VCPU		_IOW(LVMMIO, 0x16, struct lvmm_create_vcpu)
#define LVMM_SET_VMM_STATE	_IOW(LVMMIO, 0x17, struct lvmm_vmm_state)
#define LVMM_GET_VMM_STATE	_IOWR(LVMMIO, 0x18, struct lvmm_vmm_state)
#define LVMM_CREATE_IRQCHIP	_IOW(LVMMIO, 0x19, struct lvmm_irqchip)
#define LVMM_IRQ_LINE		_IOW(LVMMIO, 0x1a, struct lvmm_irq_level)
#define LVMM_GET_IOAPIC		_IOR(LVMMIO, 0x1b, struct lvmm_ioapic_state)
#define LVMM_SET_IOAPIC		_IOW(LVMMIO, 0x1c, struct lvmm_ioapic_state)
#define LVMM_INCOMING_FINISH	_IOW(LVMMIO, 0x1d, struct lvmm_incoming_finish)

#define LVMM_MEMSLOT_READONLY	(1U << 0)
/* Log writes to the slot: by the guest, the VMM's mapping and lvmm itself. */
#define LVMM_MEMSLOT_LOG_DIRTY	(1U << 1)

/*
 * Create (size != 0) or delete (size == 0) memory slot @slot.  The module
 * allocates the backing memory; map it with mmap() on the VM fd at offset
 * LVMM_MEMSLOT_MMAP_OFFSET(slot).  Addresses and sizes are multiples of
 * 4 KiB; slots never overlap.
 */
struct lvmm_memslot {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 size;
	__u64 reserved[2];
};

/*
 * Change the flags of an existing slot in place.  Only
 * LVMM_MEMSLOT_LOG_DIRTY may change; LVMM_MEMSLOT_READONLY must stay as
 * the slot was created.  Turning logging on starts with an empty log.
 */
struct lvmm_memslot_flags {
	__u32 slot;
	__u32 flags;
	__u64 reserved[3];
};

/*
 * The dirty log of pages [first_page, first_page + num_pages) of @slot,
 * counted from the slot's start: an array of DIV_ROUND_UP(num_pages, 64)
 * __u64 words at @bitmap, bit i of word w for page first_page + 64 w + i.
 * first_page is a multiple of 64; num_pages is too, unless the range
 * ends at the slot's end.
 *
 * GET_DIRTY_LOG copies the log out and changes nothing.  CLEAR_DIRTY_LOG
 * clears the pages whose bits are set in @bitmap and write-protects them
 * again, so that their next write is logged: clear a range just before
 * reading its pages (Documentation/migration.rst).
 */
struct lvmm_dirty_log {
	__u32 slot;
	__u32 flags;		/* must be 0 */
	__u64 first_page;
	__u64 num_pages;
	__u64 bitmap;		/* user address */
	__u64 reserved[2];
};

#define LVMM_MEMSLOT_MMAP_SHIFT		40
#define LVMM_MEMSLOT_MMAP_OFFSET(slot)	((__u64)(slot) << LVMM_MEMSLOT_MMAP_SHIFT)

struct lvmm_create_vcpu {
	__u32 id;
	__u32 flags;
	__u64 reserved[3];
};

/*
 * The VMM's own device state, opaque to lvmm, at most
 * LVMM_MAX_VMM_STATE bytes: kept with the VM so that a snapshot taken
 * without the VMM's help carries it.  SET replaces it; GET copies it to
 * @data (at most @size bytes) and sets @size to its length.
 */
struct lvmm_vmm_state {
	__u64 data;		/* user address */
	__u32 size;
	__u32 flags;		/* must be 0 */
	__u64 reserved[2];
};

#define LVMM_MAX_VMM_STATE	65536

/*
 * The in-kernel interrupt controller: a local APIC per vCPU, emulated in
 * the kernel with its timer, IPIs, INIT/SIPI and HLT, and an I/O APIC
 * with 24 pins at LVMM_IOAPIC_BASE.  Before the first vCPU; once per VM.
 */
struct lvmm_irqchip {
	__u32 flags;		/* must be 0 */
	__u32 pad;
	__u64 reserved[3];
};

#define LVMM_IOAPIC_BASE	0xfec00000ULL
#define LVMM_IOAPIC_PINS	24

/* A device's line into the I/O APIC: asserted (1) or not (0). */
struct lvmm_irq_level {
	__u32 irq;		/* the pin, 0..LVMM_IOAPIC_PINS - 1 */
	__u32 level;		/* 0 or 1, already of the pin's polarity */
	__u32 flags;		/* must be 0 */
	__u32 pad;
};

/* The I/O APIC: its registers, and the lines as the devices drive them. */
struct lvmm_ioapic_state {
	__u32 flags;		/* must be 0 */
	__u32 id;		/* bits 27-24 of the ID register */
	__u32 ioregsel;		/* the selected register */
	__u32 lines;		/* bit n: pin n asserted */
	__u32 pending;		/* bit n: an edge on pin n awaits unmasking */
	__u32 pad;
	__u64 reserved[2];
	__u64 redir[LVMM_IOAPIC_PINS];	/* the redirection table */
};

struct lvmm_vm_info {
	char name[LVMM_VM_NAME_LEN];
	__u32 id;
	__u32 flags;		/* out: 0 */
	__u32 nr_vcpus;
	__u32 nr_memslots;
	__u64 mem_size;		/* bytes in all slots */
	__u64 reserved[4];
};

/* ---- vCPU fd ------------------------------------------------------------- */

#define LVMM_RUN		_IO(LVMMIO, 0x80)
#define LVMM_GET_REGS		_IOR(LVMMIO, 0x81, struct lvmm_regs)
#define LVMM_SET_REGS		_IOW(LVMMIO, 0x82, struct lvmm_regs)
#define LVMM_GET_SREGS		_IOR(LVMMIO, 0x83, struct lvmm_sregs)
#define LVMM_SET_SREGS		_IOW(LVMMIO, 0x84, struct lvmm_sregs)
#define LVMM_GET_XSAVE		_IOR(LVMMIO, 0x85, struct lvmm_xsave)
#define LVMM_SET_XSAVE		_IOW(LVMMIO, 0x86, struct lvmm_xsave)
#define LVMM_GET_MSRS		_IOWR(LVMMIO, 0x87, struct lvmm_msrs)
#define LVMM_SET_MSRS		_IOW(LVMMIO, 0x88, struct lvmm_msrs)
#define LVMM_SET_CPUID		_IOW(LVMMIO, 0x89, struct lvmm_cpuid)
#define LVMM_GET_CPUID		_IOWR(LVMMIO, 0x8a, struct lvmm_cpuid)
#define LVMM_INTERRUPT		_IOW(LVMMIO, 0x8b, struct lvmm_interrupt)
#define LVMM_NMI		_IO(LVMMIO, 0x8c)
#define LVMM_GET_VCPU_EVENTS	_IOR(LVMMIO, 0x8d, struct lvmm_vcpu_events)
#define LVMM_SET_VCPU_EVENTS	_IOW(LVMMIO, 0x8e, struct lvmm_vcpu_events)
#define LVMM_GET_DEBUGREGS	_IOR(LVMMIO, 0x8f, struct lvmm_debugregs)
#define LVMM_SET_DEBUGREGS	_IOW(LVMMIO, 0x90, struct lvmm_debugregs)
#define LVMM_GET_XCRS		_IOR(LVMMIO, 0x91, struct lvmm_xcrs)
#define LVMM_SET_XCRS		_IOW(LVMMIO, 0x92, struct lvmm_xcrs)
#define LVMM_GET_LAPIC		_IOR(LVMMIO, 0x93, struct lvmm_lapic_state)
#define LVMM_SET_LAPIC		_IOW(LVMMIO, 0x94, struct lvmm_lapic_state)
#define LVMM_GET_MP_STATE	_IOR(LVMMIO, 0x95, struct lvmm_mp_state)
#define LVMM_SET_MP_STATE	_IOW(LVMMIO, 0x96, struct lvmm_mp_state)

struct lvmm_regs {
	__u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	__u64 r8, r9, r10, r11, r12, r13, r14, r15;
	__u64 rip, rflags;
	__u32 flags;
	__u32 pad;
	__u64 reserved[2];
};

struct lvmm_segment {
	__u64 base;
	__u32 limit;
	__u16 selector;
	__u8 type;		/* descriptor type, 4 bits */
	__u8 s;			/* 1: code/data, 0: system */
	__u8 dpl;
	__u8 present;
	__u8 avl;
	__u8 l;			/* 64-bit code */
	__u8 db;
	__u8 g;
	__u8 unusable;
	__u8 pad;
};

struct lvmm_dtable {
	__u64 base;
	__u16 limit;
	__u16 pad[3];
};

struct lvmm_sregs {
	struct lvmm_segment cs, ds, es, fs, gs, ss;
	struct lvmm_segment tr, ldt;
	struct lvmm_dtable gdt, idt;
	__u64 cr0, cr2, cr3, cr4, cr8;
	__u64 efer;
	__u64 apic_base;
	__u32 flags;
	__u32 pad;
	__u64 reserved[4];
};

/* The standard (non-compacted) XSAVE layout; the legacy area is FXSAVE's. */
struct lvmm_xsave {
	__u32 region[1024];
};

struct lvmm_msr_entry {
	__u32 index;
	__u32 reserved;
	__u64 data;
};

/*
 * GET_MSRS and SET_MSRS return the number of entries processed; they stop
 * at the first MSR outside the documented list (or a value it refuses).
 */
struct lvmm_msrs {
	__u32 nmsrs;
	__u32 flags;
	__u64 reserved;
	struct lvmm_msr_entry entries[];
};

#define LVMM_MAX_MSR_ENTRIES	256

#define LVMM_CPUID_FLAG_SIGNIFICANT_INDEX	(1U << 0)

struct lvmm_cpuid_entry {
	__u32 function;
	__u32 index;
	__u32 flags;
	__u32 eax;
	__u32 ebx;
	__u32 ecx;
	__u32 edx;
	__u32 reserved[3];
};

struct lvmm_cpuid {
	__u32 nent;
	__u32 flags;
	__u64 reserved;
	struct lvmm_cpuid_entry entries[];
};

#define LVMM_MAX_CPUID_ENTRIES	256

struct lvmm_interrupt {
	__u32 vector;		/* 32..255 */
	__u32 flags;
	__u64 reserved;
};

/* lvmm_vcpu_events.injected */
#define LVMM_EVENT_NONE		0
#define LVMM_EVENT_INTR		1	/* external interrupt */
#define LVMM_EVENT_NMI		2
#define LVMM_EVENT_EXCEPTION	3

/*
 * What a vCPU has to deliver, and what blocks delivery: with the
 * registers, the rest of the state that decides what the guest sees next.
 * Every field is 0 or 1 unless it says otherwise.
 */
struct lvmm_vcpu_events {
	/*
	 * Delivered at the next entry, before anything else: an event whose
	 * delivery an exit interrupted, or an exception lvmm raised.
	 */
	__u8 injected;		/* LVMM_EVENT_* */
	__u8 injected_vector;
	__u8 injected_has_error;
	__u8 pad0;
	__u32 injected_error;
	/* Queued with LVMM_INTERRUPT and LVMM_NMI, not delivered yet. */
	__u8 irq_pending;
	__u8 irq_vector;	/* 32..255 when irq_pending, else 0 */
	__u8 nmi_pending;
	__u8 nmi_masked;	/* in an NMI handler: NMIs wait for its IRET */
	__u8 interrupt_shadow;	/* after STI or MOV SS: no interrupt yet */
	__u8 shutdown;		/* triple fault: RUN returns SHUTDOWN */
	/*
	 * GET: the last exit to userspace is not completed yet.  SET
	 * ignores it and drops the exit: the instruction runs again.
	 */
	__u8 exit_pending;
	__u8 pad1;
	__u32 flags;		/* must be 0 */
	__u32 pad2;
	__u64 reserved[4];
};

/* DR0-3, DR6 and DR7 as the guest reads them. */
struct lvmm_debugregs {
	__u64 db[4];
	__u64 dr6;
	__u64 dr7;
	__u32 flags;		/* must be 0 */
	__u32 pad;
	__u64 reserved[3];
};

/* Extended control registers: XCR0, the features XSAVE manages. */
struct lvmm_xcrs {
	__u64 xcr0;
	__u32 flags;		/* must be 0 */
	__u32 pad;
	__u64 reserved[2];
};

/* ---- the run structure (mmap of the vCPU fd, offset 0) ------------------- */

/*
 * A local APIC (LVMM_CREATE_IRQCHIP): its registers at their xAPIC MMIO
 * offsets, one 32-bit register per 16 bytes (the ID at 0x20 in xAPIC
 * form, ID << 24, whatever the mode).  The mode is the APIC base MSR's.
 * GET gives the timer's current count (0x390) as of the call and the
 * armed TSC deadline; SET arms the timer from them.
 */
struct lvmm_lapic_state {
	__u32 flags;		/* must be 0 */
	__u32 pad;
	__u64 tsc_deadline;	/* guest TSC; 0: not armed */
	__u64 reserved[2];
	__u8 regs[1024];
};

/* lvmm_mp_state.state: what a vCPU with a local APIC waits for. */
#define LVMM_MP_STATE_RUNNABLE		0
#define LVMM_MP_STATE_HALTED		1	/* HLT: an interrupt */
#define LVMM_MP_STATE_WAIT_SIPI		2	/* after INIT: a start-up IPI */

struct lvmm_mp_state {
	__u32 state;		/* LVMM_MP_STATE_* */
	__u32 flags;		/* must be 0 */
	__u64 reserved;
};

#define LVMM_EXIT_UNKNOWN		0
#define LVMM_EXIT_IO			1
#define LVMM_EXIT_MMIO			2
#define LVMM_EXIT_HLT			3
#define LVMM_EXIT_HYPERCALL		4
#define LVMM_EXIT_SHUTDOWN		5
#define LVMM_EXIT_FAIL_ENTRY		6
#define LVMM_EXIT_INTERNAL_ERROR	7
#define LVMM_EXIT_INTR			8
#define LVMM_EXIT_IRQ_WINDOW_OPEN	9
#define LVMM_EXIT_VM_DESTROYED		10	/* vm-destroy: never runs again */
#define LVMM_EXIT_MIGRATED		11	/* runs on another host now */

#define LVMM_EXIT_IO_IN		0
#define LVMM_EXIT_IO_OUT	1

/* INTERNAL_ERROR sub-errors */
#define LVMM_INTERNAL_ERROR_EMULATION		1	/* instruction not decoded */
#define LVMM_INTERNAL_ERROR_UNEXPECTED_EXIT	2	/* hardware exit code */
#define LVMM_INTERNAL_ERROR_DELIVERY_EV		3	/* fault delivering an event */
#define LVMM_INTERNAL_ERROR_STATE_LOST		4	/* the CPU lost the guest's state */

/* Offset (in pages) of the string I/O data area within the vCPU mmap. */
#define LVMM_RUN_IO_PAGE_OFFSET	1

struct lvmm_run {
	/* in */
	__u8 request_interrupt_window;
	__u8 immediate_exit;
	__u8 padding1[6];

	/* out */
	__u32 exit_reason;
	__u8 ready_for_interrupt_injection;
	__u8 if_flag;
	__u16 flags;
	__u64 cr8;
	__u64 apic_base;

	union {
		/* LVMM_EXIT_UNKNOWN */
		struct {
			__u64 hardware_exit_reason;
		} hw;
		/* LVMM_EXIT_FAIL_ENTRY */
		struct {
			__u64 hardware_entry_failure_reason;
			__u32 cpu;
			__u32 pad;
		} fail_entry;
		/* LVMM_EXIT_IO: data at data_offset bytes into the mmap */
		struct {
			__u8 direction;
			__u8 size;	/* 1, 2 or 4 */
			__u16 port;
			__u32 count;
			__u64 data_offset;
		} io;
		/* LVMM_EXIT_MMIO */
		struct {
			__u64 phys_addr;
			__u8 data[8];
			__u32 len;
			__u8 is_write;
			__u8 pad[3];
		} mmio;
		/* LVMM_EXIT_HYPERCALL: ret is handed back in RAX */
		struct {
			__u64 nr;
			__u64 args[6];
			__u64 ret;
		} hypercall;
		/* LVMM_EXIT_INTERNAL_ERROR */
		struct {
			__u32 suberror;
			__u32 ndata;
			__u64 data[16];
		} internal;
		char padding[256];
	};
};

/* ---- the VM stream: snapshots and migration ------------------------------ */

/*
 * A VM as a sequence of records, each a header and @len bytes of payload
 * (a multiple of 8).  Little-endian, as the hosts that run it.  The order:
 * HEADER; MEMORY and PAGES records (a page may come more than once: the
 * last copy wins); one VCPU record per vCPU; with the in-kernel APICs, one
 * LAPIC record per vCPU and one IRQCHIP record; at most one VMM record;
 * at most one RUNSTATE record; END.  See Documentation/migration.rst.
 *
 * Version 1 has no PAGES or RUNSTATE records, version 2 no LAPIC or
 * IRQCHIP records, version 3 no LVMM_STREAM_PAGES_UNSUMMED.  lvmm writes
 * the lowest version that holds what it writes (a snapshot: 1; a
 * migration: 2, or 4 with its pages outside the checksum; a VM with the
 * in-kernel APICs: at least 3) and reads every version up to
 * LVMM_STREAM_VERSION.
 */
#define LVMM_STREAM_MAGIC	0x50414e534d4d564cULL	/* "LVMMSNAP" */
#define LVMM_STREAM_VERSION	4

#define LVMM_REC_HEADER		1
#define LVMM_REC_MEMORY		2
#define LVMM_REC_VCPU		3
#define LVMM_REC_VMM		4
#define LVMM_REC_END		5
#define LVMM_REC_PAGES		6	/* v2: like MEMORY, others unchanged */
#define LVMM_REC_RUNSTATE	7	/* v2: struct lvmm_stream_runstate */
#define LVMM_REC_LAPIC		8	/* v3: struct lvmm_stream_lapic */
#define LVMM_REC_IRQCHIP	9	/* v3: struct lvmm_stream_irqchip */

/* lvmm_stream_header.flags */
#define LVMM_STREAM_IRQCHIP	(1U << 0)	/* v3: LVMM_CREATE_IRQCHIP */
/*
 * v4: END's checksum leaves out the pages of MEMORY and PAGES records (a
 * live migration without migrate-checksum: TCP's own checksum covers
 * them); their record headers and struct lvmm_stream_mem are still in.
 */
#define LVMM_STREAM_PAGES_UNSUMMED (1U << 1)

struct lvmm_rec {
	__u32 type;		/* LVMM_REC_* */
	__u32 flags;		/* 0 */
	__u64 len;		/* payload bytes that follow */
};

struct lvmm_stream_slot {
	__u32 slot;
	__u32 flags;		/* LVMM_MEMSLOT_READONLY or 0 */
	__u64 guest_phys_addr;
	__u64 size;
};

struct lvmm_stream_header {
	__u64 magic;
	__u32 version;
	__u32 flags;		/* LVMM_STREAM_* */
	char name[LVMM_VM_NAME_LEN];
	__u64 created_ns;	/* CLOCK_REALTIME when it was written */
	__u64 xcr0;		/* XSAVE components the vCPUs' state uses */
	__u32 nr_vcpus;
	__u32 nr_slots;
	__u64 mem_size;		/* bytes in all slots */
	__u64 reserved[4];
	struct lvmm_stream_slot slots[];	/* nr_slots */
};

/* Up to 512 pages of one slot; the pages not present are zero. */
struct lvmm_stream_mem {
	__u32 slot;
	__u32 npages;		/* 1..512 */
	__u64 first_page;	/* page of the slot */
	__u64 present[8];	/* bit i: page first_page + i follows */
	/* then 4096 bytes for each bit set, in order */
};

struct lvmm_stream_vcpu {
	__u32 id;
	__u32 nmsrs;		/* lvmm_msr_entry that follow */
	__u32 ncpuid;		/* lvmm_cpuid_entry that follow them */
	__u32 pad;
	struct lvmm_regs regs;
	struct lvmm_sregs sregs;
	struct lvmm_vcpu_events events;
	struct lvmm_debugregs debugregs;
	struct lvmm_xcrs xcrs;
	struct lvmm_xsave xsave;
};

/* LVMM_REC_VMM: a __u64 size, then the VMM's state, then padding. */

/*
 * LVMM_REC_PAGES carries a struct lvmm_stream_mem too, but the pages it
 * leaves out keep what they had: a later pass of a migration sends only
 * the pages written since the last.
 */

/* A vCPU's local APIC, and what it waits for. */
struct lvmm_stream_lapic {
	__u32 id;		/* the vCPU's */
	__u32 mp_state;		/* LVMM_MP_STATE_* */
	__u64 pvclock_msr;	/* the paravirtual clock's MSRs */
	__u64 pvclock_wall_msr;
	__u64 reserved[2];	/* 0 */
	struct lvmm_lapic_state lapic;
};

/* The VM's part: the I/O APIC, and the paravirtual clock's zero. */
struct lvmm_stream_irqchip {
	__u32 flags;		/* 0 */
	__u32 pvclock_set;	/* 1: the clock was started */
	__u64 pvclock_tsc;	/* guest TSC at the clock's zero */
	__u64 pvclock_wall_ns;	/* CLOCK_REALTIME then */
	__u64 reserved[3];	/* 0 */
	struct lvmm_ioapic_state ioapic;
};

#define LVMM_RUNSTATE_PAUSED	(1U << 0)	/* arrives paused (vm-pause) */

struct lvmm_stream_runstate {
	__u32 flags;		/* LVMM_RUNSTATE_* */
	__u32 pad;		/* 0 */
};

struct lvmm_stream_end {
	__u64 checksum;		/* xxh64, seed 0, of the bytes before it */
	__u64 nr_records;	/* records before this one */
};

/*
 * A live migration's handshake (Documentation/migration.rst, 9): messages
 * on the same socket, outside the stream and its checksum.  The
 * destination answers the header with ACCEPT or REFUSE, and END with
 * READY or REFUSE; the source then sends GO, and the destination, which
 * runs the VM only once GO is in, answers DONE.  REFUSE may also come at
 * any point in between, when the destination gives up.
 */
#define LVMM_MIG_MAGIC		0x474d564cU	/* "LVMG" */

#define LVMM_MIG_ACCEPT		1	/* dest: the header is acceptable */
#define LVMM_MIG_REFUSE		2	/* dest: error is why (an errno) */
#define LVMM_MIG_READY		3	/* dest: the whole VM is in, named */
#define LVMM_MIG_GO		4	/* source: it is yours; mine stops */
#define LVMM_MIG_DONE		5	/* dest: GO received, the VM runs */

struct lvmm_mig_msg {
	__u32 magic;		/* LVMM_MIG_MAGIC */
	__u32 type;		/* LVMM_MIG_* */
	__s32 error;		/* REFUSE: a positive errno; else 0 */
	__u32 version;		/* the sender's LVMM_STREAM_VERSION */
	__u64 features;		/* 0 today; a reader ignores bits it lacks */
};

#endif /* _UAPI_LINUX_LVMM_H */
