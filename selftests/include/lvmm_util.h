/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The lvmm selftest library, in the shape of KVM's kvm_util.h: asserting
 * wrappers over liblvmm plus a VM whose vCPUs start in 64-bit long mode at a
 * C function of the test binary.
 *
 * Guest memory layout (slot 0, identity-mapped, guest virtual == guest
 * physical == host virtual for the test binary's image):
 *   0x1000  GDT            0x2000  IDT           0x3000  TSS
 *   0x10000 PML4, PDPT, 4 page directories (2 MiB pages, low 4 GiB)
 *   0x200000 - 0x400000    one 16 KiB stack per vCPU
 *   0x400000 - _end        the test binary, copied from the host
 *   then a heap for vm_alloc() up to the end of slot 0
 * Tests put their own slots at or above TEST_MEM_GPA.
 */
#ifndef SELFTEST_LVMM_UTIL_H
#define SELFTEST_LVMM_UTIL_H

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <lvmm.h>		/* tools/lib */

#include "test_util.h"
#include "processor.h"
#include "ucall.h"

#define NR_MEMSLOTS		32
#define MAX_VCPUS		128

#define GDT_GPA			0x1000ULL
#define IDT_GPA			0x2000ULL
#define TSS_GPA			0x3000ULL
#define PML4_GPA		0x10000ULL
#define STACKS_GPA		0x200000ULL
#define STACK_SIZE		0x4000ULL
#define IMAGE_GPA		0x400000ULL
#define HEAP_SIZE		(16 * SZ_2M)
#define TEST_MEM_GPA		SZ_1G		/* first GPA free for tests */
#define MMIO_GPA		0xc0000000ULL	/* never backed */

struct userspace_mem_region {
	bool used;
	u32 slot;
	u32 flags;
	u64 gpa;
	u64 size;
	void *hva;
};

struct lvmm_vcpu {
	struct lvmm_vcpu_handle h;
	struct lvmm_vm *vm;
	u32 id;
	struct lvmm_run *run;
};

struct lvmm_vm {
	int dev_fd;
	struct lvmm_vm_handle h;
	int fd;
	struct userspace_mem_region slots[NR_MEMSLOTS];
	struct lvmm_vcpu *vcpus[MAX_VCPUS];
	u64 heap_next, heap_end;
	bool long_mode;		/* slot 0, page tables and image are set up */
};

bool lvmm_dev_present(void);
int open_lvmm_dev(void);		/* asserting */
int lvmm_cap(unsigned long cap);	/* 0 when /dev/lvmm is missing */

/* Asserting wrappers around ioctl(2) on the three kinds of fd. */
#define __lvmm_ioctl(fd, cmd, arg)	({ int __r = ioctl(fd, cmd, arg); \
					   __r < 0 ? -errno : __r; })
#define __ioctl_assert(fd, cmd, name, arg) ({				\
	int __ret = __lvmm_ioctl(fd, cmd, arg);				\
	TEST_ASSERT(__ret >= 0, "%s failed: %s", name, strerror(-__ret));\
	__ret;								\
})
#define __vm_ioctl(vm, cmd, arg)	__lvmm_ioctl((vm)->fd, cmd, arg)
#define vm_ioctl(vm, cmd, arg)		__ioctl_assert((vm)->fd, cmd, #cmd, arg)
#define __vcpu_ioctl(vcpu, cmd, arg)	__lvmm_ioctl((vcpu)->h.fd, cmd, arg)
#define vcpu_ioctl(vcpu, cmd, arg)	__ioctl_assert((vcpu)->h.fd, cmd, #cmd, arg)

/* A bare VM with no memory and no vCPU; @name may be NULL. */
struct lvmm_vm *vm_create_bare(const char *name);
/* A VM with slot 0 laid out as above, ready for vm_vcpu_add(). */
struct lvmm_vm *vm_create(void);
/* vm_create() plus @nr vCPUs (ids 0..nr-1) in long mode at @guest_code. */
struct lvmm_vm *vm_create_with_vcpus(u32 nr, void *guest_code,
				     struct lvmm_vcpu **vcpus);
struct lvmm_vm *vm_create_with_one_vcpu(struct lvmm_vcpu **vcpu,
					void *guest_code);
void vm_free(struct lvmm_vm *vm);

/* Create and map a slot; returns the host mapping. */
void *vm_add_memslot(struct lvmm_vm *vm, u32 slot, u32 flags, u64 gpa,
		     u64 size);
int __vm_set_memslot(struct lvmm_vm *vm, u32 slot, u32 flags, u64 gpa,
		     u64 size, const u64 *reserved);
/* Delete and unmap a slot. */
void vm_delete_memslot(struct lvmm_vm *vm, u32 slot);

/*
 * Dirty logging: LVMM_SET_MEMSLOT_FLAGS, LVMM_GET_DIRTY_LOG and
 * LVMM_CLEAR_DIRTY_LOG of pages [first_page, first_page + num_pages) of
 * @slot.  The __ forms return 0 or -errno, the others assert.
 */
int __vm_set_memslot_flags(struct lvmm_vm *vm, u32 slot, u32 flags);
void vm_set_memslot_flags(struct lvmm_vm *vm, u32 slot, u32 flags);
int __vm_get_dirty_log(struct lvmm_vm *vm, u32 slot, u64 first_page,
		       u64 num_pages, u64 *bitmap);
void vm_get_dirty_log(struct lvmm_vm *vm, u32 slot, u64 first_page,
		      u64 num_pages, u64 *bitmap);
int __vm_clear_dirty_log(struct lvmm_vm *vm, u32 slot, u64 first_page,
			 u64 num_pages, const u64 *bitmap);
void vm_clear_dirty_log(struct lvmm_vm *vm, u32 slot, u64 first_page,
			u64 num_pages, const u64 *bitmap);

void *addr_gpa2hva(struct lvmm_vm *vm, u64 gpa);
#define addr_gva2hva(vm, gva)	addr_gpa2hva(vm, (u64)(gva))
/* Allocate zeroed guest memory from slot 0's heap; returns its GPA/GVA. */
u64 vm_alloc(struct lvmm_vm *vm, u64 size);

/* Copy a host global to its guest copy (same address) and back. */
#define sync_global_to_guest(vm, g)					\
	memcpy(addr_gva2hva(vm, &(g)), (const void *)&(g), sizeof(g))
#define sync_global_from_guest(vm, g)					\
	memcpy((void *)&(g), addr_gva2hva(vm, &(g)), sizeof(g))

/* vCPUs */
struct lvmm_vcpu *vm_vcpu_add_raw(struct lvmm_vm *vm, u32 id);
struct lvmm_vcpu *vm_vcpu_add(struct lvmm_vm *vm, u32 id, void *guest_code);
void vcpu_args_set(struct lvmm_vcpu *vcpu, unsigned int n, ...);
void vcpu_set_long_mode(struct lvmm_vcpu *vcpu);

int __vcpu_run(struct lvmm_vcpu *vcpu);
void vcpu_run(struct lvmm_vcpu *vcpu);		/* asserting, retries EINTR */
void vcpu_regs_get(struct lvmm_vcpu *vcpu, struct lvmm_regs *regs);
void vcpu_regs_set(struct lvmm_vcpu *vcpu, const struct lvmm_regs *regs);
void vcpu_sregs_get(struct lvmm_vcpu *vcpu, struct lvmm_sregs *sregs);
void vcpu_sregs_set(struct lvmm_vcpu *vcpu, const struct lvmm_sregs *sregs);
u64 vcpu_get_msr(struct lvmm_vcpu *vcpu, u32 index);
void vcpu_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 val);
void *vcpu_io_data(struct lvmm_vcpu *vcpu);
/*
 * Complete the last exit without entering the guest: LVMM_RUN with
 * immediate_exit, which returns EINTR once the instruction is finished.
 * What a VMM does before it saves a vCPU that stopped at an exit.
 */
void vcpu_complete_exit(struct lvmm_vcpu *vcpu);
/* The vCPU's CPUID table, from calloc(): free() it. */
struct lvmm_cpuid *vcpu_get_cpuid(struct lvmm_vcpu *vcpu);
/* The entry of @c for leaf @fn, subleaf @index; NULL if there is none. */
struct lvmm_cpuid_entry *cpuid_find(struct lvmm_cpuid *c, u32 fn, u32 index);

/*
 * LVMM_CAP_VCPU_STATE: events, debug registers, XCR0.  The __ forms
 * return 0 or -errno, the others assert.
 */
int __vcpu_get_events(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_events *ev);
void vcpu_get_events(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_events *ev);
int __vcpu_set_events(struct lvmm_vcpu *vcpu,
		      const struct lvmm_vcpu_events *ev);
void vcpu_set_events(struct lvmm_vcpu *vcpu,
		     const struct lvmm_vcpu_events *ev);
int __vcpu_get_debugregs(struct lvmm_vcpu *vcpu, struct lvmm_debugregs *dr);
void vcpu_get_debugregs(struct lvmm_vcpu *vcpu, struct lvmm_debugregs *dr);
int __vcpu_set_debugregs(struct lvmm_vcpu *vcpu,
			 const struct lvmm_debugregs *dr);
void vcpu_set_debugregs(struct lvmm_vcpu *vcpu,
			const struct lvmm_debugregs *dr);
int __vcpu_get_xcrs(struct lvmm_vcpu *vcpu, struct lvmm_xcrs *xcrs);
void vcpu_get_xcrs(struct lvmm_vcpu *vcpu, struct lvmm_xcrs *xcrs);
int __vcpu_set_xcrs(struct lvmm_vcpu *vcpu, const struct lvmm_xcrs *xcrs);
void vcpu_set_xcrs(struct lvmm_vcpu *vcpu, const struct lvmm_xcrs *xcrs);
const char *exit_reason_str(u32 reason);

#define TEST_ASSERT_EXIT_REASON(vcpu, expected) do {			\
	u32 __er = (vcpu)->run->exit_reason;				\
	TEST_ASSERT(__er == (expected),					\
		    "Wanted exit %s, got %s (%u)",			\
		    exit_reason_str(expected), exit_reason_str(__er), __er); \
} while (0)

/*
 * LVMM_CAP_SNAPSHOT.  __vm_restore(): LVMM_RESTORE_VM of the stream at
 * @fd with @req's name (the stream's if empty); the VM fd or -errno, and
 * what the kernel wrote back in @req.
 */
int __vm_restore(int dev_fd, struct lvmm_restore_vm *req);
/*
 * Restore the stream at @fd under @name (NULL or "" for the stream's)
 * and get every vCPU's fd.  With @like, the VM the stream was saved
 * from: map its slots, and take its guest heap, as they are in the
 * stream.  Without, no slot is mapped (vm_map_slot() maps one).
 */
struct lvmm_vm *vm_restore(int fd, const char *name,
			   const struct lvmm_vm *like);
/*
 * Map slot @slot, which the VM has already (set, or restored with it as
 * in its stream): @size bytes at @gpa.
 */
void *vm_map_slot(struct lvmm_vm *vm, u32 slot, u32 flags, u64 gpa, u64 size);
/*
 * A copy of @like (restored, or received from a migration): map @like's
 * slots, and take its guest heap and mode, as they are in the stream.
 */
void vm_map_like(struct lvmm_vm *vm, const struct lvmm_vm *like);
/*
 * Compare the memory of two VMs with the same slots, page by page: the
 * number of pages that differ, the first at *@first.
 */
u64 memory_diffs(struct lvmm_vm *a, struct lvmm_vm *b, u64 *first);
/* LVMM_GET_VCPU: another fd of vCPU @id; -errno. */
int __vm_get_vcpu(struct lvmm_vm *vm, u32 id);
/* A vCPU that exists (a restored one): its fd, mapped, as vm_vcpu_add(). */
struct lvmm_vcpu *vm_vcpu_get(struct lvmm_vm *vm, u32 id);
/*
 * LVMM_SET_VMM_STATE and LVMM_GET_VMM_STATE: 0 or -errno.  GET sets
 * *@size to the blob's size, also on -ENOSPC.
 */
int __vm_set_vmm_state(struct lvmm_vm *vm, const void *data, u32 size);
int __vm_get_vmm_state(struct lvmm_vm *vm, void *data, u32 *size);

/* The host's MemAvailable, in kB; -1 if /proc/meminfo does not say. */
long mem_available_kb(void);
/* The number in environment variable @name, @dflt if it is unset or "". */
u64 env_u64(const char *name, u64 dflt);

/*
 * LVMM_CAP_IRQCHIP: the in-kernel local APICs.  vm_create_irqchip()
 * turns them on (before the first vCPU); vm_create_with_irqchip() is
 * vm_create_with_vcpus() with them, the vCPUs but vCPU 0 left as the
 * kernel makes them (LVMM_MP_STATE_WAIT_SIPI): vcpu_set_mp_state() with
 * LVMM_MP_STATE_RUNNABLE runs one at its guest code.  The __ forms
 * return 0 or -errno, the others assert.
 */
int __vm_create_irqchip(struct lvmm_vm *vm, const struct lvmm_irqchip *chip);
void vm_create_irqchip(struct lvmm_vm *vm);
struct lvmm_vm *vm_create_with_irqchip(u32 nr, void *guest_code,
				       struct lvmm_vcpu **vcpus);
int __vcpu_get_lapic(struct lvmm_vcpu *vcpu, struct lvmm_lapic_state *s);
void vcpu_get_lapic(struct lvmm_vcpu *vcpu, struct lvmm_lapic_state *s);
int __vcpu_set_lapic(struct lvmm_vcpu *vcpu,
		     const struct lvmm_lapic_state *s);
void vcpu_set_lapic(struct lvmm_vcpu *vcpu, const struct lvmm_lapic_state *s);
int __vcpu_get_mp_state(struct lvmm_vcpu *vcpu, struct lvmm_mp_state *mp);
u32 vcpu_get_mp_state(struct lvmm_vcpu *vcpu);
int __vcpu_set_mp_state(struct lvmm_vcpu *vcpu,
			const struct lvmm_mp_state *mp);
void vcpu_set_mp_state(struct lvmm_vcpu *vcpu, u32 state);
/* The 32-bit register at xAPIC offset @reg of @s. */
#define lapic_reg(s, reg)	(*(u32 *)&(s)->regs[(reg)])

/* IDT for the guest: handlers.S stubs routed to C handlers. */
void vm_init_descriptor_tables(struct lvmm_vm *vm);
void vm_install_exception_handler(struct lvmm_vm *vm, int vector,
				  guest_handler_t handler);

#endif /* SELFTEST_LVMM_UTIL_H */
