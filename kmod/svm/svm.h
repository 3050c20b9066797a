/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lvmm: the AMD SVM backend's private state.
 */
#ifndef _LVMM_SVM_H
#define _LVMM_SVM_H

#include <linux/spinlock.h>
#include <asm/mem_encrypt.h>
#include <asm/svm.h>

#include "../lvmm.h"

/* VMCB clean bits (AMD APM: "VMCB Clean Bits"); a set bit = unchanged. */
enum {
	VMCB_INTERCEPTS,	/* intercepts, TSC offset, pause filter */
	VMCB_PERM_MAP,		/* IOPM and MSRPM base */
	VMCB_ASID,
	VMCB_INTR,		/* int_ctl, int_vector */
	VMCB_NPT,		/* nested_ctl, nested_cr3, g_pat */
	VMCB_CR,		/* CR0, CR3, CR4, EFER */
	VMCB_DR,		/* DR6, DR7 */
	VMCB_DT,		/* GDT, IDT */
	VMCB_SEG,		/* CS, DS, SS, ES, CPL */
	VMCB_CR2,
	VMCB_LBR,
	VMCB_AVIC,
	VMCB_NR_CLEAN_BITS,
};

#define VMCB_ALL_CLEAN	((1U << VMCB_NR_CLEAN_BITS) - 1)

/* Host physical address of a page, as the VMCB and nested tables want it. */
#define svm_page_pa(page)	__sme_set(page_to_pfn(page) << PAGE_SHIFT)

/* Nested page fault error code (EXITINFO1) */
#define NPF_WRITE	BIT_ULL(1)
#define NPF_RSVD	BIT_ULL(3)
#define NPF_FETCH	BIT_ULL(4)

/* Per physical CPU, (i) at module load, the rest with IRQs off on it. */
struct svm_cpu {
	struct page *hsave;		/* (i) MSR_VM_HSAVE_PA */
	struct page *host_save;		/* (i) host VMSAVE/VMLOAD area */
	u64 hsave_pa, host_save_pa;	/* (i) */
	u64 asid_generation;
	u32 next_asid;
	struct vmcb *last_vmcb;		/* clean bits, IBPB */
	u64 host_tsc_aux;		/* at enable; what RDPID reads here */
	/* Under a hypervisor: the entry's state, see svm_guard_entry(). */
	struct vmcb_save_area save_snap;
	u64 regs_snap[LVMM_NR_GPRS];
	u32 event_inj_snap, event_inj_err_snap, int_ctl_snap;
};

/* Pages the nested page fault path may need, allocated before the lock. */
#define SVM_NPT_CACHE	4

struct svm_vm {
	struct lvmm_vm vm;
	spinlock_t mmu_lock;		/* the nested page tables */
	u64 *npt_root;			/* (i) */
	u64 ncr3;			/* (i) */
};

struct svm_vcpu {
	struct lvmm_vcpu vcpu;
	struct vmcb *vmcb;		/* (a) */
	u64 vmcb_pa;			/* (a) */
	u32 dirty;			/* (c) VMCB_* bits changed since VMRUN */
	u64 asid_generation;		/* (c) 0: needs a new ASID */
	int asid_cpu;			/* (c) where the ASID is valid */
	bool nmi_masked;		/* (c) guest in its NMI handler */
	bool lme_hidden;		/* (c) EFER.LME kept out of the VMCB */
	bool iret_seen;			/* (c) its IRET intercepted */
	bool guard_retried;		/* (c) see svm_guard_shutdown() */
	u64 iret_rip;			/* (c) RIP of that IRET */
	int npt_cache_nr;		/* (c) */
	u64 *npt_cache[SVM_NPT_CACHE];	/* (c) zeroed table pages */
};

static inline struct svm_vm *to_svm_vm(struct lvmm_vm *vm)
{
	return container_of(vm, struct svm_vm, vm);
}

static inline struct svm_vcpu *to_svm(struct lvmm_vcpu *vcpu)
{
	return container_of(vcpu, struct svm_vcpu, vcpu);
}

static inline void vmcb_mark_dirty(struct svm_vcpu *svm, int bit)
{
	svm->dirty |= 1U << bit;
}

/* npt.c */
int svm_npt_init(struct svm_vm *svm_vm);
void svm_npt_free(struct svm_vm *svm_vm);
int svm_npt_topup(struct svm_vcpu *svm);
void svm_npt_drain(struct svm_vcpu *svm);
void svm_npt_map(struct svm_vcpu *svm, struct lvmm_slot *slot, u64 gfn,
		 u64 pa, bool huge, bool write);
void svm_npt_zap(struct lvmm_vm *vm, u64 gfn, u64 npages);
void svm_npt_write_protect(struct lvmm_vm *vm, u64 gfn, u64 npages);
void svm_npt_write_protect_mask(struct lvmm_vm *vm, u64 gfn,
				const unsigned long *mask, u64 nwords);
void svm_npt_unprotect_slot(struct lvmm_vm *vm, struct lvmm_slot *slot);
void svm_npt_count(struct lvmm_vm *vm, u64 *n4k, u64 *n2m);

/* vmrun.S */
void lvmm_svm_vmrun(u64 *regs, u64 vmcb_pa, u64 host_save_pa);

#endif /* _LVMM_SVM_H */
