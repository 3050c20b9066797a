/* SPDX-License-Identifier: GPL-2.0 */
/*
 * liblvmm: the userspace library that wraps the lvmm ioctls, each once
 * (what libvmmapi is to bhyve).  Every function returns a negative errno on
 * failure; none exits, aborts or prints.
 */
#ifndef _LIBLVMM_H
#define _LIBLVMM_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/lvmm.h>

#define LVMM_DEV_PATH	"/dev/lvmm"

struct lvmm_vm_handle {
	int fd;
	__u32 id;
	char name[LVMM_VM_NAME_LEN];
	size_t vcpu_mmap_size;	/* from LVMM_GET_VCPU_MMAP_SIZE */
};

struct lvmm_vcpu_handle {
	int fd;
	__u32 id;
	struct lvmm_run *run;	/* mmap of the vCPU fd */
	size_t run_size;
};

/* /dev/lvmm */
int lvmm_open(void);
int lvmm_api_version(int dev_fd);
int lvmm_check_extension(int dev_fd, unsigned long cap);
int lvmm_vcpu_mmap_size(int dev_fd);

/* VM */
int lvmm_vm_create_raw(int dev_fd, struct lvmm_create_vm *args);
int lvmm_vm_create(int dev_fd, const char *name, struct lvmm_vm_handle *vm);
/*
 * LVMM_CAP_SNAPSHOT: a VM read from the stream at @fd, named @name (NULL
 * or "": the stream's name); *@nr_vcpus (may be NULL) gets its number of
 * vCPUs, whose fds lvmm_vcpu_get() returns.
 */
int lvmm_vm_restore_raw(int dev_fd, struct lvmm_restore_vm *args);
int lvmm_vm_restore(int dev_fd, int fd, const char *name,
		    struct lvmm_vm_handle *vm, __u32 *nr_vcpus);
/*
 * lvmm_vm_restore() with LVMM_RESTORE_* @flags: LVMM_RESTORE_INCOMING
 * (LVMM_CAP_MIGRATE) makes @fd a connected, blocking socket to the
 * source of a live migration, and returns once the VM is handed over;
 * with LVMM_RESTORE_HOLD too, once the VM is in, for
 * lvmm_vm_incoming_finish().
 */
int lvmm_vm_restore_flags(int dev_fd, int fd, const char *name, __u32 flags,
			  struct lvmm_vm_handle *vm, __u32 *nr_vcpus);
int lvmm_vm_close(struct lvmm_vm_handle *vm);
int lvmm_vm_info(const struct lvmm_vm_handle *vm, struct lvmm_vm_info *info);
int lvmm_set_memslot_raw(const struct lvmm_vm_handle *vm,
			 const struct lvmm_memslot *ms);
int lvmm_set_memslot(const struct lvmm_vm_handle *vm, __u32 slot, __u32 flags,
		     __u64 gpa, __u64 size);
int lvmm_delete_memslot(const struct lvmm_vm_handle *vm, __u32 slot);
int lvmm_memslot_map(const struct lvmm_vm_handle *vm, __u32 slot, size_t size,
		     int prot, void **addr);
int lvmm_memslot_unmap(void *addr, size_t size);
/* Only LVMM_MEMSLOT_LOG_DIRTY may change; turning it on empties the log. */
int lvmm_set_memslot_flags(const struct lvmm_vm_handle *vm, __u32 slot,
			   __u32 flags);
/* LVMM_CAP_IRQCHIP: the in-kernel APICs, before the first vCPU. */
int lvmm_create_irqchip(const struct lvmm_vm_handle *vm);
/* Drive I/O APIC pin @irq: @level 1 asserted, 0 not. */
int lvmm_irq_line(const struct lvmm_vm_handle *vm, __u32 irq, __u32 level);
int lvmm_get_ioapic(const struct lvmm_vm_handle *vm,
		    struct lvmm_ioapic_state *st);
int lvmm_set_ioapic(const struct lvmm_vm_handle *vm,
		    const struct lvmm_ioapic_state *st);
/*
 * The dirty log of pages [first_page, first_page + num_pages) of @slot, one
 * bit per page in DIV_ROUND_UP(num_pages, 64) words at @bitmap.  GET copies
 * it out; CLEAR clears (and write-protects again) the pages set in @bitmap.
 */
int lvmm_get_dirty_log(const struct lvmm_vm_handle *vm, __u32 slot,
		       __u64 first_page, __u64 num_pages, __u64 *bitmap);
int lvmm_clear_dirty_log(const struct lvmm_vm_handle *vm, __u32 slot,
			 __u64 first_page, __u64 num_pages,
			 const __u64 *bitmap);

/*
 * LVMM_CAP_SNAPSHOT: the VMM's device state, opaque to lvmm.  SET replaces
 * it (size 0 clears it).  GET copies it to @data if it fits in *@size
 * bytes and sets *@size to its length (0: none); -ENOSPC if it did not
 * fit, with *@size the length needed.
 */
int lvmm_set_vmm_state(const struct lvmm_vm_handle *vm, const void *data,
		       __u32 size);
int lvmm_get_vmm_state(const struct lvmm_vm_handle *vm, void *data,
		       __u32 *size);
/*
 * LVMM_INCOMING_FINISH (LVMM_CAP_MIGRATE >= 2), for a VM received with
 * LVMM_RESTORE_HOLD: @error 0 takes it (returns once the source handed it
 * over), a positive errno refuses it (the source keeps running it).
 */
int lvmm_vm_incoming_finish(const struct lvmm_vm_handle *vm, int error);

/* vCPU */
int lvmm_vcpu_create_raw(const struct lvmm_vm_handle *vm,
			 const struct lvmm_create_vcpu *args);
int lvmm_vcpu_create(const struct lvmm_vm_handle *vm, __u32 id,
		     struct lvmm_vcpu_handle *vcpu);
/* LVMM_CAP_SNAPSHOT: an fd for existing vCPU @id (a restored VM's). */
int lvmm_vcpu_get_raw(const struct lvmm_vm_handle *vm,
		      const struct lvmm_create_vcpu *args);
int lvmm_vcpu_get(const struct lvmm_vm_handle *vm, __u32 id,
		  struct lvmm_vcpu_handle *vcpu);
int lvmm_vcpu_close(struct lvmm_vcpu_handle *vcpu);
int lvmm_run(struct lvmm_vcpu_handle *vcpu);
void *lvmm_run_io_data(const struct lvmm_vcpu_handle *vcpu);
int lvmm_get_regs(const struct lvmm_vcpu_handle *vcpu, struct lvmm_regs *regs);
int lvmm_set_regs(const struct lvmm_vcpu_handle *vcpu,
		  const struct lvmm_regs *regs);
int lvmm_get_sregs(const struct lvmm_vcpu_handle *vcpu,
		   struct lvmm_sregs *sregs);
int lvmm_set_sregs(const struct lvmm_vcpu_handle *vcpu,
		   const struct lvmm_sregs *sregs);
int lvmm_get_xsave(const struct lvmm_vcpu_handle *vcpu,
		   struct lvmm_xsave *xsave);
int lvmm_set_xsave(const struct lvmm_vcpu_handle *vcpu,
		   const struct lvmm_xsave *xsave);

/* Return the number of entries processed, as the kernel does. */
int lvmm_get_msrs(const struct lvmm_vcpu_handle *vcpu, struct lvmm_msrs *msrs);
int lvmm_set_msrs(const struct lvmm_vcpu_handle *vcpu,
		  const struct lvmm_msrs *msrs);
/* One MSR; -EOPNOTSUPP when the kernel did not process it. */
int lvmm_get_msr(const struct lvmm_vcpu_handle *vcpu, __u32 index,
		 __u64 *data);
int lvmm_set_msr(const struct lvmm_vcpu_handle *vcpu, __u32 index, __u64 data);

/* Allocate a zeroed struct with room for @n entries; NULL on failure. */
struct lvmm_msrs *lvmm_msrs_alloc(__u32 n);
struct lvmm_cpuid *lvmm_cpuid_alloc(__u32 n);

/* On -E2BIG, cpuid->nent holds the number of entries needed. */
int lvmm_get_cpuid(const struct lvmm_vcpu_handle *vcpu,
		   struct lvmm_cpuid *cpuid);
int lvmm_set_cpuid(const struct lvmm_vcpu_handle *vcpu,
		   const struct lvmm_cpuid *cpuid);
int lvmm_interrupt(const struct lvmm_vcpu_handle *vcpu, __u32 vector);
int lvmm_nmi(const struct lvmm_vcpu_handle *vcpu);

/* LVMM_CAP_VCPU_STATE: events, debug registers and XCRs. */
int lvmm_get_vcpu_events(const struct lvmm_vcpu_handle *vcpu,
			 struct lvmm_vcpu_events *events);
int lvmm_set_vcpu_events(const struct lvmm_vcpu_handle *vcpu,
			 const struct lvmm_vcpu_events *events);
int lvmm_get_debugregs(const struct lvmm_vcpu_handle *vcpu,
		       struct lvmm_debugregs *dregs);
int lvmm_set_debugregs(const struct lvmm_vcpu_handle *vcpu,
		       const struct lvmm_debugregs *dregs);
int lvmm_get_xcrs(const struct lvmm_vcpu_handle *vcpu, struct lvmm_xcrs *xcrs);
int lvmm_set_xcrs(const struct lvmm_vcpu_handle *vcpu,
		  const struct lvmm_xcrs *xcrs);

/* LVMM_CAP_IRQCHIP: the vCPU's local APIC and what it waits for. */
int lvmm_get_lapic(const struct lvmm_vcpu_handle *vcpu,
		   struct lvmm_lapic_state *lapic);
int lvmm_set_lapic(const struct lvmm_vcpu_handle *vcpu,
		   const struct lvmm_lapic_state *lapic);
int lvmm_get_mp_state(const struct lvmm_vcpu_handle *vcpu, __u32 *state);
int lvmm_set_mp_state(const struct lvmm_vcpu_handle *vcpu, __u32 state);

/* "IO", "MMIO", ...: the name of an LVMM_EXIT_* reason, "(bad)" if none. */
const char *lvmm_exit_reason_name(__u32 reason);

/* x86 bits a VMM sets through LVMM_SET_SREGS. */
#define X86_CR0_PE		(1ULL << 0)
#define X86_CR0_MP		(1ULL << 1)
#define X86_CR0_ET		(1ULL << 4)
#define X86_CR0_NE		(1ULL << 5)
#define X86_CR0_WP		(1ULL << 16)
#define X86_CR0_NW		(1ULL << 29)
#define X86_CR0_CD		(1ULL << 30)
#define X86_CR0_PG		(1ULL << 31)
#define X86_CR4_PAE		(1ULL << 5)
#define X86_CR4_OSFXSR		(1ULL << 9)
#define X86_CR4_OSXMMEXCPT	(1ULL << 10)
#define X86_CR4_OSXSAVE		(1ULL << 18)
#define EFER_SCE		(1ULL << 0)
#define EFER_LME		(1ULL << 8)
#define EFER_LMA		(1ULL << 10)
#define EFER_NX			(1ULL << 11)

/*
 * A flat 4 GiB code or data segment: @type is the descriptor type (11
 * execute/read code, 3 read/write data), @l 64-bit code, @db 32-bit.
 */
void lvmm_seg_flat(struct lvmm_segment *s, __u16 selector, __u8 type,
		   bool l, bool db);

#endif /* _LIBLVMM_H */
