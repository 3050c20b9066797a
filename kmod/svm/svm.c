// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: the AMD SVM backend -- enabling SVM, the VMCB, entry and exits.
 *
 * Exits are dispatched through svm_exit_handlers[], indexed by the exit
 * code, as in KVM.  A handler returns > 0 to re-enter the guest, 0 to go
 * back to userspace with the run structure filled in, < 0 for an error.
 */
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <asm/cpufeature.h>
#include <asm/debugreg.h>
#include <asm/io.h>
#include <asm/irq_vectors.h>
#include <asm/fpu/api.h>
#include <asm/fpu/xcr.h>
#include <asm/mem_encrypt.h>
#include <asm/msr.h>
#include <asm/mce.h>
#include <asm/nospec-branch.h>
#include <asm/svm.h>

#include "svm.h"

#define IOPM_ORDER	2	/* 12 KiB used */
#define MSRPM_ORDER	1	/* 8 KiB */
#define SVM_EXIT_MAX	(SVM_EXIT_NPF + 1)

static DEFINE_PER_CPU(struct svm_cpu, svm_cpu);
static struct page *svm_iopm, *svm_msrpm;
static u32 svm_max_asid;
static bool svm_has_nrips, svm_has_flush_by_asid, svm_has_tsc_aux;
/* Running nested: guard against the emulator's VMRUN (svm_guard_entry()). */
static bool svm_nested_guard;
static u64 svm_host_xcr0;

/* ---- enabling SVM --------------------------------------------------------- */

static int svm_check_support(void)
{
	u64 vm_cr;

	if (!boot_cpu_has(X86_FEATURE_SVM)) {
		pr_err("lvmm: no AMD SVM on this CPU (Intel VMX is not supported yet); not loading\n");
		return -ENODEV;
	}
	if (!boot_cpu_has(X86_FEATURE_NPT)) {
		pr_err("lvmm: AMD SVM without nested paging (NPT); lvmm needs both, not loading\n");
		return -ENODEV;
	}
	rdmsrl(MSR_VM_CR, vm_cr);
	if (vm_cr & SVM_VM_CR_SVM_DIS_MASK) {
		pr_err("lvmm: SVM is disabled by the firmware; enable it in the BIOS setup\n");
		return -ENODEV;
	}
	return 0;
}

/* MSRs the guest reads and writes directly: VMLOAD/VMSAVE switch them. */
static const u32 svm_passthrough_msrs[] = {
	MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE,
	MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK,
	MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
};

static void svm_msrpm_allow(u8 *msrpm, u32 msr)
{
	u32 offset, bit;

	if (msr < 0x2000)
		offset = 0;
	else if (msr - 0xc0000000 < 0x2000)
		offset = 0x800;
	else
		offset = 0x1000;	/* 0xc0010000..0xc0011fff */
	bit = (msr & 0x1fff) * 2;
	/* Two bits per MSR: read intercept, then write intercept. */
	msrpm[offset + bit / 8] &= ~(3 << (bit % 8));
}

static void svm_free_cpus(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		struct svm_cpu *sc = per_cpu_ptr(&svm_cpu, cpu);

		if (sc->hsave)
			__free_page(sc->hsave);
		if (sc->host_save)
			__free_page(sc->host_save);
		sc->hsave = NULL;
		sc->host_save = NULL;
	}
}

/*
 * The guards for QEMU's emulated SVM (Documentation/sandbox.rst) cost an
 * XSETBV pair and a save-area copy per exit: only under QEMU's TCG, which
 * says so in the hypervisor CPUID leaf.
 */
static bool svm_under_tcg(void)
{
	u32 eax, sig[3];

	if (!boot_cpu_has(X86_FEATURE_HYPERVISOR))
		return false;
	cpuid(0x40000000, &eax, &sig[0], &sig[1], &sig[2]);
	return !memcmp(sig, "TCGTCGTCGTCG", sizeof(sig));
}

static int svm_hardware_setup(void)
{
	int cpu, i;

	svm_max_asid = cpuid_ebx(SVM_CPUID_FUNC) - 1;
	svm_has_nrips = boot_cpu_has(X86_FEATURE_NRIPS);
	svm_has_flush_by_asid = boot_cpu_has(X86_FEATURE_FLUSHBYASID);
	/* RDPID cannot be intercepted: the guest reads TSC_AUX directly. */
	svm_has_tsc_aux = boot_cpu_has(X86_FEATURE_RDTSCP) ||
			  boot_cpu_has(X86_FEATURE_RDPID);
	svm_nested_guard = svm_under_tcg();
	if (boot_cpu_has(X86_FEATURE_XSAVE))
		svm_host_xcr0 = xgetbv(XCR_XFEATURE_ENABLED_MASK);

	for_each_possible_cpu(cpu) {
		struct svm_cpu *sc = per_cpu_ptr(&svm_cpu, cpu);

		sc->hsave = alloc_pages_node(cpu_to_node(cpu),
					     GFP_KERNEL | __GFP_ZERO, 0);
		sc->host_save = alloc_pages_node(cpu_to_node(cpu),
						 GFP_KERNEL | __GFP_ZERO, 0);
		if (!sc->hsave || !sc->host_save)
			goto out_free;
		sc->hsave_pa = svm_page_pa(sc->hsave);
		sc->host_save_pa = svm_page_pa(sc->host_save);
	}

	/* Every port and every MSR outside the safe set is intercepted. */
	svm_iopm = alloc_pages(GFP_KERNEL, IOPM_ORDER);
	svm_msrpm = alloc_pages(GFP_KERNEL, MSRPM_ORDER);
	if (!svm_iopm || !svm_msrpm)
		goto out_free;
	memset(page_address(svm_iopm), 0xff, PAGE_SIZE << IOPM_ORDER);
	memset(page_address(svm_msrpm), 0xff, PAGE_SIZE << MSRPM_ORDER);
	for (i = 0; i < ARRAY_SIZE(svm_passthrough_msrs); i++)
		svm_msrpm_allow(page_address(svm_msrpm),
				svm_passthrough_msrs[i]);
	pr_info("lvmm: SVM: %u ASIDs, nRIP %s, flush-by-ASID %s\n",
		svm_max_asid, svm_has_nrips ? "yes" : "no",
		svm_has_flush_by_asid ? "yes" : "no");
	return 0;

out_free:
	if (svm_iopm)
		__free_pages(svm_iopm, IOPM_ORDER);
	if (svm_msrpm)
		__free_pages(svm_msrpm, MSRPM_ORDER);
	svm_free_cpus();
	return -ENOMEM;
}

static void svm_hardware_unsetup(void)
{
	__free_pages(svm_iopm, IOPM_ORDER);
	__free_pages(svm_msrpm, MSRPM_ORDER);
	svm_free_cpus();
}

static int svm_cpu_enable(void)
{
	struct svm_cpu *sc = this_cpu_ptr(&svm_cpu);
	u64 efer;

	rdmsrl(MSR_EFER, efer);
	if (efer & EFER_SVME)
		return -EBUSY;		/* somebody else's */

	/*
	 * A new generation: vCPUs that ran here before take fresh ASIDs, and
	 * the first allocation flushes every ASID (next_asid is past max).
	 */
	sc->asid_generation++;
	sc->next_asid = svm_max_asid + 1;
	sc->last_vmcb = NULL;
	if (svm_has_tsc_aux)
		rdmsrl(MSR_TSC_AUX, sc->host_tsc_aux);
	wrmsrl(MSR_EFER, efer | EFER_SVME);
	wrmsrl(MSR_VM_HSAVE_PA, sc->hsave_pa);
	return 0;
}

static void svm_cpu_disable(void)
{
	u64 efer;

	wrmsrl(MSR_VM_HSAVE_PA, 0);
	rdmsrl(MSR_EFER, efer);
	if (efer & EFER_SVME) {
		/* GIF=1 first, or INIT and NMI would stay blocked. */
		asm volatile("stgi" ::: "memory");
		wrmsrl(MSR_EFER, efer & ~EFER_SVME);
	}
}

/* ---- VMs ------------------------------------------------------------------ */

static int svm_vm_init(struct lvmm_vm *vm)
{
	return svm_npt_init(to_svm_vm(vm));
}

static void svm_vm_destroy(struct lvmm_vm *vm)
{
	svm_npt_free(to_svm_vm(vm));
}

/* ---- the VMCB ------------------------------------------------------------- */

static inline void svm_set_intercept(struct vmcb *vmcb, int bit)
{
	__set_bit(bit, (unsigned long *)vmcb->control.intercepts);
}

static inline void svm_clr_intercept(struct vmcb *vmcb, int bit)
{
	__clear_bit(bit, (unsigned long *)vmcb->control.intercepts);
}

/* Turn an intercept on or off; the VMCB's clean bit survives a no-op. */
static void svm_intercept(struct svm_vcpu *svm, int bit, bool on)
{
	if (test_bit(bit, (unsigned long *)svm->vmcb->control.intercepts) == on)
		return;
	if (on)
		svm_set_intercept(svm->vmcb, bit);
	else
		svm_clr_intercept(svm->vmcb, bit);
	vmcb_mark_dirty(svm, VMCB_INTERCEPTS);
}

static void svm_init_seg(struct vmcb_seg *seg, u16 attrib)
{
	seg->selector = 0;
	seg->attrib = attrib;
	seg->limit = 0xffff;
	seg->base = 0;
}

/* Intercepts: closed by default (see Documentation/api.rst). */
static const int svm_default_intercepts[] = {
	INTERCEPT_INTR, INTERCEPT_NMI, INTERCEPT_SMI, INTERCEPT_INIT,
	INTERCEPT_CPUID, INTERCEPT_HLT, INTERCEPT_INVD, INTERCEPT_RDPMC,
	INTERCEPT_INVLPGA, INTERCEPT_IOIO_PROT, INTERCEPT_MSR_PROT,
	INTERCEPT_TASK_SWITCH, INTERCEPT_SHUTDOWN, INTERCEPT_VMRUN,
	INTERCEPT_VMMCALL, INTERCEPT_VMLOAD, INTERCEPT_VMSAVE,
	INTERCEPT_STGI, INTERCEPT_CLGI, INTERCEPT_SKINIT, INTERCEPT_RDTSCP,
	INTERCEPT_WBINVD, INTERCEPT_MONITOR, INTERCEPT_MWAIT,
	INTERCEPT_MWAIT_COND, INTERCEPT_XSETBV, INTERCEPT_RDPRU,
	INTERCEPT_CR4_WRITE,
	/*
	 * #AC and #DB are intercepted (and reflected) so that a guest cannot
	 * hang the physical CPU in an endless microcode exception loop.
	 */
	INTERCEPT_EXCEPTION_OFFSET + AC_VECTOR,
	INTERCEPT_EXCEPTION_OFFSET + DB_VECTOR,
	/* A machine check in guest mode is the host's: see svm_handle_mce(). */
	INTERCEPT_EXCEPTION_OFFSET + MC_VECTOR,
};

static void svm_init_vmcb(struct svm_vcpu *svm)
{
	struct vmcb *vmcb = svm->vmcb;
	struct vmcb_control_area *c = &vmcb->control;
	struct vmcb_save_area *s = &vmcb->save;
	int i;

	for (i = 0; i < ARRAY_SIZE(svm_default_intercepts); i++)
		svm_set_intercept(vmcb, svm_default_intercepts[i]);
	/* All debug register accesses: lvmm keeps the guest's DRs itself. */
	for (i = INTERCEPT_DR0_READ; i <= INTERCEPT_DR7_WRITE; i++)
		svm_set_intercept(vmcb, i);

	c->iopm_base_pa = svm_page_pa(svm_iopm);
	c->msrpm_base_pa = svm_page_pa(svm_msrpm);
	c->int_ctl = V_INTR_MASKING_MASK;
	c->nested_ctl = SVM_NESTED_CTL_NP_ENABLE;
	c->nested_cr3 = to_svm_vm(svm->vcpu.vm)->ncr3;
	c->tsc_offset = 0;

	/* The architectural reset state. */
	svm_init_seg(&s->es, SVM_SELECTOR_P_MASK | SVM_SELECTOR_S_MASK | 3);
	svm_init_seg(&s->ds, SVM_SELECTOR_P_MASK | SVM_SELECTOR_S_MASK | 3);
	svm_init_seg(&s->ss, SVM_SELECTOR_P_MASK | SVM_SELECTOR_S_MASK | 3);
	svm_init_seg(&s->fs, SVM_SELECTOR_P_MASK | SVM_SELECTOR_S_MASK | 3);
	svm_init_seg(&s->gs, SVM_SELECTOR_P_MASK | SVM_SELECTOR_S_MASK | 3);
	svm_init_seg(&s->cs, SVM_SELECTOR_P_MASK | SVM_SELECTOR_S_MASK |
			     SVM_SELECTOR_CODE_MASK | 3);
	s->cs.selector = 0xf000;
	s->cs.base = 0xffff0000;
	svm_init_seg(&s->ldtr, SVM_SELECTOR_P_MASK | 2);
	svm_init_seg(&s->tr, SVM_SELECTOR_P_MASK | 3);
	s->gdtr.limit = 0xffff;
	s->idtr.limit = 0xffff;
	s->cr0 = X86_CR0_NW | X86_CR0_CD | X86_CR0_ET;
	s->efer = EFER_SVME;
	s->dr6 = DR6_RESERVED;
	s->dr7 = LVMM_DR7_FIXED_1;
	s->g_pat = 0x0007040600070406ULL;	/* the reset PAT */
	svm->dirty = VMCB_ALL_CLEAN;
}

static int svm_vcpu_init(struct lvmm_vcpu *vcpu)
{
	struct svm_vcpu *svm = to_svm(vcpu);
	struct page *page;

	page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	if (!page)
		return -ENOMEM;
	svm->vmcb = page_address(page);
	svm->vmcb_pa = svm_page_pa(page);
	svm->asid_cpu = -1;
	svm_init_vmcb(svm);
	return 0;
}

static void svm_vcpu_destroy(struct lvmm_vcpu *vcpu)
{
	struct svm_vcpu *svm = to_svm(vcpu);
	int cpu;

	/* No CPU may think it still has this VMCB cached. */
	for_each_possible_cpu(cpu)
		cmpxchg(&per_cpu_ptr(&svm_cpu, cpu)->last_vmcb, svm->vmcb, NULL);
	svm_npt_drain(svm);
	free_page((unsigned long)svm->vmcb);
}

/* ---- register access ------------------------------------------------------ */

static const int svm_seg_order[] = {
	[LVMM_SEG_ES] = 0, [LVMM_SEG_CS] = 1, [LVMM_SEG_SS] = 2,
	[LVMM_SEG_DS] = 3, [LVMM_SEG_FS] = 4, [LVMM_SEG_GS] = 5,
};

static struct vmcb_seg *svm_seg(struct vmcb *vmcb, int seg)
{
	return &(&vmcb->save.es)[svm_seg_order[seg]];
}

static void svm_get_segment(const struct vmcb_seg *v, struct lvmm_segment *s)
{
	s->base = v->base;
	s->limit = v->limit;
	s->selector = v->selector;
	s->type = v->attrib & SVM_SELECTOR_TYPE_MASK;
	s->s = !!(v->attrib & SVM_SELECTOR_S_MASK);
	s->dpl = (v->attrib >> SVM_SELECTOR_DPL_SHIFT) & 3;
	s->present = !!(v->attrib & SVM_SELECTOR_P_MASK);
	s->avl = !!(v->attrib & SVM_SELECTOR_AVL_MASK);
	s->l = !!(v->attrib & SVM_SELECTOR_L_MASK);
	s->db = !!(v->attrib & SVM_SELECTOR_DB_MASK);
	s->g = !!(v->attrib & SVM_SELECTOR_G_MASK);
	s->unusable = !s->present;
}

static void svm_set_segment(struct vmcb_seg *v, const struct lvmm_segment *s)
{
	v->base = s->base;
	v->limit = s->limit;
	v->selector = s->selector;
	if (s->unusable) {
		v->attrib = 0;
		return;
	}
	v->attrib = (s->type & SVM_SELECTOR_TYPE_MASK) |
		    (s->s ? SVM_SELECTOR_S_MASK : 0) |
		    ((s->dpl & 3) << SVM_SELECTOR_DPL_SHIFT) |
		    (s->present ? SVM_SELECTOR_P_MASK : 0) |
		    (s->avl ? SVM_SELECTOR_AVL_MASK : 0) |
		    (s->l ? SVM_SELECTOR_L_MASK : 0) |
		    (s->db ? SVM_SELECTOR_DB_MASK : 0) |
		    (s->g ? SVM_SELECTOR_G_MASK : 0);
}

/*
 * The sandbox's emulator (QEMU 7.2) restores the host's CR0 at #VMEXIT
 * before its CR4 and EFER, and drops it if the guest's EFER.LME is set
 * with the guest's CR0.PG and CR4.PAE clear: the host goes on without
 * paging and the machine is lost (Documentation/sandbox.rst).  That
 * state -- long mode enabled, not active -- is legal, so lvmm keeps it
 * without ever putting it in the VMCB: LME waits in svm->lme_hidden
 * until PAE or PG is set or LME cleared, and meanwhile CR0 writes are
 * intercepted, so that setting PG without PAE still gets its #GP.  It
 * changes nothing of what the guest sees, and costs nothing unless a
 * guest lingers there.
 */
static u64 svm_guest_efer(struct svm_vcpu *svm)
{
	return (svm->vmcb->save.efer & ~EFER_SVME) |
	       (svm->lme_hidden ? EFER_LME : 0);
}

/* Put the guest's EFER (LMA already right) in the VMCB, as above. */
static void svm_load_efer(struct svm_vcpu *svm, u64 efer)
{
	struct vmcb_save_area *s = &svm->vmcb->save;
	bool hide = (efer & EFER_LME) && !(s->cr0 & X86_CR0_PG) &&
		    !(s->cr4 & X86_CR4_PAE);

	s->efer = (hide ? efer & ~EFER_LME : efer) | EFER_SVME;
	vmcb_mark_dirty(svm, VMCB_CR);
	if (hide != svm->lme_hidden) {
		svm->lme_hidden = hide;
		svm_intercept(svm, INTERCEPT_CR0_WRITE, hide);
	}
}

static void svm_get_sregs(struct lvmm_vcpu *vcpu, struct lvmm_sregs *sr)
{
	struct vmcb_save_area *s = &to_svm(vcpu)->vmcb->save;
	struct vmcb *vmcb = to_svm(vcpu)->vmcb;

	svm_get_segment(&s->cs, &sr->cs);
	svm_get_segment(&s->ds, &sr->ds);
	svm_get_segment(&s->es, &sr->es);
	svm_get_segment(&s->fs, &sr->fs);
	svm_get_segment(&s->gs, &sr->gs);
	svm_get_segment(&s->ss, &sr->ss);
	svm_get_segment(&s->tr, &sr->tr);
	svm_get_segment(&s->ldtr, &sr->ldt);
	sr->gdt.base = s->gdtr.base;
	sr->gdt.limit = s->gdtr.limit;
	sr->idt.base = s->idtr.base;
	sr->idt.limit = s->idtr.limit;
	sr->cr0 = s->cr0;
	sr->cr2 = s->cr2;
	sr->cr3 = s->cr3;
	sr->cr4 = s->cr4;
	sr->cr8 = vmcb->control.int_ctl & V_TPR_MASK;
	sr->efer = svm_guest_efer(to_svm(vcpu));
}

static u64 svm_cr4_supported(void)
{
	u64 cr4 = X86_CR4_VME | X86_CR4_PVI | X86_CR4_TSD | X86_CR4_DE |
		  X86_CR4_PSE | X86_CR4_PAE | X86_CR4_MCE | X86_CR4_PGE |
		  X86_CR4_PCE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;

	if (boot_cpu_has(X86_FEATURE_XSAVE))
		cr4 |= X86_CR4_OSXSAVE;
	if (boot_cpu_has(X86_FEATURE_FSGSBASE))
		cr4 |= X86_CR4_FSGSBASE;
	if (boot_cpu_has(X86_FEATURE_PCID))
		cr4 |= X86_CR4_PCIDE;
	if (boot_cpu_has(X86_FEATURE_SMEP))
		cr4 |= X86_CR4_SMEP;
	if (boot_cpu_has(X86_FEATURE_SMAP))
		cr4 |= X86_CR4_SMAP;
	if (boot_cpu_has(X86_FEATURE_UMIP))
		cr4 |= X86_CR4_UMIP;
	if (boot_cpu_has(X86_FEATURE_LA57))
		cr4 |= X86_CR4_LA57;
	return cr4;
}

#define SVM_EFER_GUEST	(EFER_SCE | EFER_LME | EFER_LMA | EFER_NX | EFER_FFXSR)

/*
 * The combinations VMRUN would refuse (AMD APM: "Canonicalization and
 * Consistency Checks") are refused here with -EINVAL instead.
 */
static int svm_check_cr_efer(u64 cr0, u64 cr3, u64 cr4, u64 efer)
{
	if (cr0 >> 32 || ((cr0 & X86_CR0_NW) && !(cr0 & X86_CR0_CD)))
		return -EINVAL;
	if ((cr0 & X86_CR0_PG) && !(cr0 & X86_CR0_PE))
		return -EINVAL;
	if (cr3 >> 52 || cr4 & ~svm_cr4_supported())
		return -EINVAL;
	if (efer & ~SVM_EFER_GUEST)
		return -EINVAL;
	if ((efer & EFER_LME) && (cr0 & X86_CR0_PG) && !(cr4 & X86_CR4_PAE))
		return -EINVAL;
	return 0;
}

static int svm_set_sregs(struct lvmm_vcpu *vcpu, const struct lvmm_sregs *sr)
{
	struct svm_vcpu *svm = to_svm(vcpu);
	struct vmcb_save_area *s = &svm->vmcb->save;
	u64 efer = sr->efer & ~EFER_LMA;

	if (sr->cr8 > 15)
		return -EINVAL;
	if ((efer & EFER_LME) && (sr->cr0 & X86_CR0_PG))
		efer |= EFER_LMA;
	if (svm_check_cr_efer(sr->cr0, sr->cr3, sr->cr4, efer))
		return -EINVAL;
	if ((efer & EFER_LMA) && sr->cs.l && sr->cs.db)
		return -EINVAL;

	svm_set_segment(&s->cs, &sr->cs);
	svm_set_segment(&s->ds, &sr->ds);
	svm_set_segment(&s->es, &sr->es);
	svm_set_segment(&s->fs, &sr->fs);
	svm_set_segment(&s->gs, &sr->gs);
	svm_set_segment(&s->ss, &sr->ss);
	svm_set_segment(&s->tr, &sr->tr);
	svm_set_segment(&s->ldtr, &sr->ldt);
	s->cpl = (sr->cr0 & X86_CR0_PE) ? sr->ss.dpl : 0;
	s->gdtr.base = sr->gdt.base;
	s->gdtr.limit = sr->gdt.limit;
	s->idtr.base = sr->idt.base;
	s->idtr.limit = sr->idt.limit;
	s->cr0 = sr->cr0;
	s->cr2 = sr->cr2;
	s->cr3 = sr->cr3;
	s->cr4 = sr->cr4;
	svm_load_efer(svm, efer);
	svm->vmcb->control.int_ctl = (svm->vmcb->control.int_ctl & ~V_TPR_MASK) |
				     sr->cr8;
	svm->dirty |= BIT(VMCB_CR) | BIT(VMCB_DT) | BIT(VMCB_SEG) |
		      BIT(VMCB_CR2) | BIT(VMCB_INTR);
	return 0;
}

static void svm_get_cpu_mode(struct lvmm_vcpu *vcpu, struct lvmm_cpu_mode *m)
{
	struct vmcb *vmcb = to_svm(vcpu)->vmcb;
	int i;

	m->cr0 = vmcb->save.cr0;
	m->cr3 = vmcb->save.cr3;
	m->cr4 = vmcb->save.cr4;
	m->efer = svm_guest_efer(to_svm(vcpu));
	for (i = 0; i < LVMM_NR_SEGS; i++)
		m->seg_base[i] = svm_seg(vmcb, i)->base;
	m->cs_l = !!(vmcb->save.cs.attrib & SVM_SELECTOR_L_MASK);
	m->cs_db = !!(vmcb->save.cs.attrib & SVM_SELECTOR_DB_MASK);
	m->cpl = vmcb->save.cpl;
}

static bool lvmm_64bit_mode(const struct lvmm_cpu_mode *m)
{
	return (m->efer & EFER_LMA) && m->cs_l;
}

static bool svm_pat_valid(u64 pat)
{
	int i;

	for (i = 0; i < 8; i++) {
		u8 t = pat >> (i * 8);

		if (t == 2 || t == 3 || t > 7)
			return false;
	}
	return true;
}

/*
 * The MSRs kept in the VMCB's save area as they are (see the list in
 * Documentation/api.rst); @addr: the value is an address and must be
 * canonical, as WRMSR would insist.
 */
static u64 *svm_msr_field(struct vmcb_save_area *s, u32 index, bool *addr)
{
	*addr = true;
	switch (index) {
	case MSR_LSTAR:
		return &s->lstar;
	case MSR_CSTAR:
		return &s->cstar;
	case MSR_KERNEL_GS_BASE:
		return &s->kernel_gs_base;
	case MSR_FS_BASE:
		return &s->fs.base;
	case MSR_GS_BASE:
		return &s->gs.base;
	case MSR_IA32_SYSENTER_ESP:
		return &s->sysenter_esp;
	case MSR_IA32_SYSENTER_EIP:
		return &s->sysenter_eip;
	}
	*addr = false;
	switch (index) {
	case MSR_STAR:
		return &s->star;
	case MSR_SYSCALL_MASK:
		return &s->sfmask;
	case MSR_IA32_SYSENTER_CS:
		return &s->sysenter_cs;
	}
	return NULL;
}

static int svm_get_msr(struct lvmm_vcpu *vcpu, u32 index, u64 *data)
{
	struct vmcb *vmcb = to_svm(vcpu)->vmcb;
	bool addr;
	u64 *field = svm_msr_field(&vmcb->save, index, &addr);

	if (field) {
		*data = *field;
		return 0;
	}
	switch (index) {
	case MSR_EFER:
		*data = svm_guest_efer(to_svm(vcpu));
		break;
	case MSR_IA32_CR_PAT:
		*data = vmcb->save.g_pat;
		break;
	case MSR_IA32_TSC:
		*data = rdtsc() + vmcb->control.tsc_offset;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

static int svm_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 data)
{
	struct svm_vcpu *svm = to_svm(vcpu);
	struct vmcb_save_area *s = &svm->vmcb->save;
	bool addr;
	u64 *field = svm_msr_field(s, index, &addr);

	if (field) {
		/* 48-bit canonical; LA57 hosts are not offered LA57 guests' MSRs */
		if (addr && (s64)(data << 16) >> 16 != (s64)data)
			return -EINVAL;
		*field = data;
		return 0;
	}
	switch (index) {
	case MSR_EFER:
		if (data & ~SVM_EFER_GUEST)
			return -EINVAL;
		/* LMA follows CR0.PG and LME; a write cannot change it. */
		data = (data & ~EFER_LMA) | (s->efer & EFER_LMA);
		if (svm_check_cr_efer(s->cr0, s->cr3, s->cr4, data))
			return -EINVAL;
		svm_load_efer(svm, data);
		break;
	case MSR_IA32_CR_PAT:
		if (!svm_pat_valid(data))
			return -EINVAL;
		s->g_pat = data;
		vmcb_mark_dirty(svm, VMCB_NPT);
		break;
	case MSR_IA32_TSC:
		svm->vmcb->control.tsc_offset = data - rdtsc();
		vmcb_mark_dirty(svm, VMCB_INTERCEPTS);
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

/* ---- events --------------------------------------------------------------- */

static void svm_inject_exception(struct svm_vcpu *svm, int vector,
				 bool has_error, u32 error)
{
	svm->vmcb->control.event_inj = vector | SVM_EVTINJ_VALID |
				       SVM_EVTINJ_TYPE_EXEPT |
				       (has_error ? SVM_EVTINJ_VALID_ERR : 0);
	svm->vmcb->control.event_inj_err = error;
}

static void svm_inject_ud(struct svm_vcpu *svm)
{
	svm_inject_exception(svm, UD_VECTOR, false, 0);
}

static void svm_inject_gp(struct svm_vcpu *svm)
{
	svm_inject_exception(svm, GP_VECTOR, true, 0);
}

static bool svm_interrupt_allowed(struct lvmm_vcpu *vcpu)
{
	struct vmcb *vmcb = to_svm(vcpu)->vmcb;

	return (vcpu->rflags & X86_EFLAGS_IF) &&
	       !(vmcb->control.int_state & SVM_INTERRUPT_SHADOW_MASK) &&
	       !(vmcb->control.event_inj & SVM_EVTINJ_VALID);
}

/* Not in an NMI handler whose IRET has not yet executed. */
static bool svm_nmi_allowed(struct lvmm_vcpu *vcpu)
{
	struct svm_vcpu *svm = to_svm(vcpu);

	return !svm->nmi_masked ||
	       (svm->iret_seen && vcpu->rip != svm->iret_rip);
}

/* Ask for a #VMEXIT as soon as the guest can take an interrupt. */
static void svm_irq_window(struct svm_vcpu *svm, bool on)
{
	struct vmcb_control_area *c = &svm->vmcb->control;

	if (on) {
		c->int_ctl |= V_IRQ_MASK | V_INTR_PRIO_MASK | V_IGN_TPR_MASK;
		c->int_vector = 0;
	} else {
		c->int_ctl &= ~V_IRQ_INJECTION_BITS_MASK;
	}
	vmcb_mark_dirty(svm, VMCB_INTR);
	svm_intercept(svm, INTERCEPT_VINTR, on);
	/*
	 * QEMU 7.2 raises its virtual-interrupt request without its big
	 * lock when the guest writes CR8 while V_IRQ is set, and aborts
	 * (Documentation/sandbox.rst): while the window is asked for, CR8
	 * writes come to lvmm instead.  Rare and cheap on hardware too.
	 */
	svm_intercept(svm, INTERCEPT_CR8_WRITE, on);
	/*
	 * Under QEMU an entry with V_IRQ set can lose the host's interrupt
	 * (svm_guard_apic_poll()), and only an exit gets it back: a guest
	 * spinning on a lock with IF clear would never give one.  Let its
	 * PAUSE exit while the window is asked for.
	 */
	if (svm_nested_guard)
		svm_intercept(svm, INTERCEPT_PAUSE, on);
}

/*
 * The in-kernel APIC's interrupt, if the guest can take it now; and its
 * TPR as V_TPR.  True if one waits for the guest to be able to take it.
 */
static bool svm_inject_lapic(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct vmcb_control_area *c = &svm->vmcb->control;
	int vec = lvmm_lapic_next_irq(vcpu);
	u32 tpr;

	if (vec >= 0 && svm_interrupt_allowed(vcpu)) {
		c->event_inj = vec | SVM_EVTINJ_VALID | SVM_EVTINJ_TYPE_INTR;
		lvmm_lapic_ack(vcpu, vec);
		vcpu->stat.irqs++;
		vec = lvmm_lapic_next_irq(vcpu);
	}
	tpr = lvmm_lapic_get_cr8(vcpu);
	if ((c->int_ctl & V_TPR_MASK) != tpr) {
		c->int_ctl = (c->int_ctl & ~V_TPR_MASK) | tpr;
		vmcb_mark_dirty(svm, VMCB_INTR);
	}
	return vec >= 0;
}

/* Decide what to deliver at this entry: NMI first, then an interrupt. */
static void svm_inject_events(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct vmcb_control_area *c = &svm->vmcb->control;
	bool shadow = c->int_state & SVM_INTERRUPT_SHADOW_MASK;
	bool apic_waits = false;

	if (svm->iret_seen && vcpu->rip != svm->iret_rip) {
		/* The handler's IRET completed: NMIs are unblocked. */
		svm->iret_seen = false;
		svm->nmi_masked = false;
	}
	if (c->event_inj & SVM_EVTINJ_VALID)
		goto window;
	if (vcpu->nmi_pending && !svm->nmi_masked && !shadow) {
		c->event_inj = NMI_VECTOR | SVM_EVTINJ_VALID |
			       SVM_EVTINJ_TYPE_NMI;
		vcpu->nmi_pending = false;
		svm->nmi_masked = true;
		svm_intercept(svm, INTERCEPT_IRET, true);
		goto window;
	}
	if (vcpu->irq_pending && svm_interrupt_allowed(vcpu)) {
		c->event_inj = vcpu->irq_vector | SVM_EVTINJ_VALID |
			       SVM_EVTINJ_TYPE_INTR;
		vcpu->irq_pending = false;
		vcpu->stat.irqs++;
	}
window:
	if (vcpu->lapic)
		apic_waits = svm_inject_lapic(svm);
	if ((vcpu->irq_pending || apic_waits ||
	     vcpu->run->request_interrupt_window) &&
	    !svm_interrupt_allowed(vcpu))
		svm_irq_window(svm, true);
	/*
	 * An interrupt only the TPR holds back: a CR8 write that lowers it
	 * must exit, to deliver it at once (and the window needs CR8 writes,
	 * see svm_irq_window()).
	 */
	if (vcpu->lapic)
		svm_intercept(svm, INTERCEPT_CR8_WRITE,
			      (c->int_ctl & V_IRQ_MASK) ||
			      lvmm_lapic_tpr_blocks(vcpu));
}

static const struct {
	u8 lvmm;
	u32 svm;
} svm_event_types[] = {
	{ LVMM_EVENT_INTR, SVM_EVTINJ_TYPE_INTR },
	{ LVMM_EVENT_NMI, SVM_EVTINJ_TYPE_NMI },
	{ LVMM_EVENT_EXCEPTION, SVM_EVTINJ_TYPE_EXEPT },
};

static void svm_get_events(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_events *ev)
{
	struct svm_vcpu *svm = to_svm(vcpu);
	struct vmcb_control_area *c = &svm->vmcb->control;
	int i;

	for (i = 0; i < ARRAY_SIZE(svm_event_types); i++) {
		if (!(c->event_inj & SVM_EVTINJ_VALID) ||
		    (c->event_inj & SVM_EVTINJ_TYPE_MASK) !=
		    svm_event_types[i].svm)
			continue;
		ev->injected = svm_event_types[i].lvmm;
		ev->injected_vector = c->event_inj & SVM_EVTINJ_VEC_MASK;
		ev->injected_has_error = !!(c->event_inj & SVM_EVTINJ_VALID_ERR);
		ev->injected_error = ev->injected_has_error ? c->event_inj_err : 0;
	}
	/* Masked until the handler's IRET has executed (RIP moved on). */
	ev->nmi_masked = svm->nmi_masked &&
			 !(svm->iret_seen && vcpu->rip != svm->iret_rip);
	ev->interrupt_shadow = !!(c->int_state & SVM_INTERRUPT_SHADOW_MASK);
}

/* Built from checked fields: never a raw value from userspace. */
static void svm_set_events(struct lvmm_vcpu *vcpu,
			   const struct lvmm_vcpu_events *ev)
{
	struct svm_vcpu *svm = to_svm(vcpu);
	struct vmcb_control_area *c = &svm->vmcb->control;
	int i;

	c->event_inj = 0;
	c->event_inj_err = 0;
	for (i = 0; i < ARRAY_SIZE(svm_event_types); i++) {
		if (ev->injected != svm_event_types[i].lvmm)
			continue;
		c->event_inj = ev->injected_vector | SVM_EVTINJ_VALID |
			       svm_event_types[i].svm |
			       (ev->injected_has_error ? SVM_EVTINJ_VALID_ERR : 0);
		c->event_inj_err = ev->injected_error;
	}
	/* The next IRET unmasks, as after an NMI lvmm delivered itself. */
	svm->nmi_masked = ev->nmi_masked;
	svm->iret_seen = false;
	svm_intercept(svm, INTERCEPT_IRET, ev->nmi_masked);
	if (ev->interrupt_shadow)
		c->int_state |= SVM_INTERRUPT_SHADOW_MASK;
	else
		c->int_state &= ~SVM_INTERRUPT_SHADOW_MASK;
}

/* An event the exit interrupted is delivered again on the next entry. */
static void svm_reinject_events(struct svm_vcpu *svm)
{
	struct vmcb_control_area *c = &svm->vmcb->control;
	u32 info = c->exit_int_info;

	if (!(info & SVM_EXITINTINFO_VALID))
		return;
	/* A software interrupt's INTn simply executes again. */
	if ((info & SVM_EXITINTINFO_TYPE_MASK) == SVM_EXITINTINFO_TYPE_SOFT)
		return;
	c->event_inj = info;
	c->event_inj_err = c->exit_int_info_err;
}

/* ---- entry ---------------------------------------------------------------- */

/* Give the vCPU an ASID that is valid on this CPU and has no stale entries. */
static void svm_new_asid(struct svm_vcpu *svm, struct svm_cpu *sc)
{
	struct vmcb_control_area *c = &svm->vmcb->control;

	if (sc->next_asid > svm_max_asid) {
		/* Rollover: every ASID starts clean in the new generation. */
		sc->asid_generation++;
		sc->next_asid = 1;
		c->tlb_ctl = TLB_CONTROL_FLUSH_ALL_ASID;
	}
	c->asid = sc->next_asid++;
	svm->asid_generation = sc->asid_generation;
	vmcb_mark_dirty(svm, VMCB_ASID);
}

/* IRQs off: ASID, pending TLB flush, clean bits. */
static void svm_prepare_entry(struct svm_vcpu *svm, int cpu)
{
	struct svm_cpu *sc = per_cpu_ptr(&svm_cpu, cpu);
	struct vmcb *vmcb = svm->vmcb;
	bool moved = svm->asid_cpu != cpu;

	if (moved) {
		/* A new CPU: its ASID space is not ours. */
		svm->asid_generation = 0;
		svm->asid_cpu = cpu;
	}
	if (test_and_clear_bit(LVMM_REQ_TLB_FLUSH, &svm->vcpu.requests)) {
		if (svm_has_flush_by_asid)
			vmcb->control.tlb_ctl = TLB_CONTROL_FLUSH_ASID;
		else
			svm->asid_generation = 0;
	}
	if (svm->asid_generation != sc->asid_generation)
		svm_new_asid(svm, sc);

	/*
	 * A CPU caches VMCB state only for the VMCB it ran last, and only if
	 * the vCPU did not run elsewhere in between (A, B, then A again).
	 */
	if (moved || sc->last_vmcb != vmcb) {
		svm->dirty = VMCB_ALL_CLEAN;
		/*
		 * Another vCPU, maybe another VM, ran here last: it must not
		 * steer this one's indirect branches.  With IBPB on every
		 * exit (SRSO's ibpb-vmexit) that is done already.
		 */
		if (sc->last_vmcb != vmcb &&
		    !cpu_feature_enabled(X86_FEATURE_IBPB_ON_VMEXIT))
			indirect_branch_prediction_barrier();
		sc->last_vmcb = vmcb;
	}
	vmcb->control.clean = VMCB_ALL_CLEAN & ~svm->dirty;
	svm->dirty = 0;
}

/*
 * Hand a machine check that hit the guest to the host's handler, as if it
 * had interrupted user mode: the guest's own state means nothing to it.
 * IRQs are still off and the thread has not moved to another CPU.
 */
static void svm_handle_mce(void)
{
#ifdef CONFIG_X86_MCE
	struct pt_regs regs = {
		.cs = 3,
		.flags = X86_EFLAGS_IF,
	};

	do_machine_check(&regs);
#endif
}

/*
 * The vCPU stayed in guest mode for over LVMM_GUEST_STAY_MAX_NS, which no
 * hardware allows (its timer tick ends guest mode): say where the guest
 * was, so that the emulator's trigger can be found (watchdog.c).
 */
static void svm_report_stay(struct svm_vcpu *svm, u64 stay_ns)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct vmcb_control_area *c = &svm->vmcb->control;
	struct vmcb_save_area *s = &svm->vmcb->save;
	u8 code[16];

	pr_warn_ratelimited("lvmm: VM %s vCPU %u stayed %u ms in guest mode (exit 0x%x): rip %llx cs %x/%llx cr0 %llx cr3 %llx cr4 %llx efer %llx rflags %llx int_state %x int_ctl %x exit_int_info %x\n",
			    vcpu->vm->name, vcpu->id,
			    (u32)div_u64(stay_ns, NSEC_PER_MSEC),
			    (u32)c->exit_code, s->rip, s->cs.selector,
			    s->cs.base, s->cr0, s->cr3, s->cr4, s->efer,
			    s->rflags, (u32)c->int_state, c->int_ctl,
			    c->exit_int_info);
	/* Without paging, CS base + RIP is the code's guest-physical address. */
	if (!(s->cr0 & X86_CR0_PG) &&
	    !lvmm_guest_read(vcpu->vm, (u32)(s->cs.base + s->rip), code,
			     sizeof(code)))
		pr_warn_ratelimited("lvmm:  code at rip: %*phN\n",
				    (int)sizeof(code), code);
}

/*
 * Enter the guest once.  Returns 0 after a #VMEXIT, 1 if the entry was
 * abandoned for a request, a signal or a reschedule, -EIO on reboot.
 */
/*
 * QEMU 7.2's multi-threaded TCG now and then ends a VMRUN with the host's
 * own state in the VMCB's save area: RIP just after VMRUN, RAX the VMCB,
 * the host's CR3, and a nested page fault on the host's page tables for
 * an exit code (Documentation/sandbox.rst, section 4).  The guest ran,
 * and what it had become is gone.  Left alone, that state would be the
 * guest's next entry and show host addresses to GET_REGS/GET_SREGS.
 * Under a hypervisor keep what the entry loaded, and if an exit comes
 * back with the host's RAX and CR3, put it back and stop the vCPU with an
 * internal error: re-entering would run the guest's last stretch twice.
 * On bare metal this costs nothing.  IRQs off, on the entry's CPU.
 */
static void svm_guard_snapshot(struct svm_vcpu *svm, struct svm_cpu *sc)
{
	struct vmcb *vmcb = svm->vmcb;

	memcpy(&sc->save_snap, &vmcb->save, sizeof(sc->save_snap));
	memcpy(sc->regs_snap, svm->vcpu.regs, sizeof(sc->regs_snap));
	sc->event_inj_snap = vmcb->control.event_inj;
	sc->event_inj_err_snap = vmcb->control.event_inj_err;
	sc->int_ctl_snap = vmcb->control.int_ctl;
}

static void svm_guard_restore(struct svm_vcpu *svm, struct svm_cpu *sc)
{
	struct vmcb *vmcb = svm->vmcb;

	memcpy(&vmcb->save, &sc->save_snap, sizeof(vmcb->save));
	memcpy(svm->vcpu.regs, sc->regs_snap, sizeof(sc->regs_snap));
	vmcb->control.event_inj = sc->event_inj_snap;
	vmcb->control.event_inj_err = sc->event_inj_err_snap;
	/* The emulator wrote its own (host-mode) int_ctl there too. */
	vmcb->control.int_ctl = sc->int_ctl_snap;
	sc->last_vmcb = NULL;		/* reload it all */
}

/*
 * The race's other face loses the nested paging that VMRUN turned on: the
 * guest's first fetch walks its page tables as host memory and it
 * triple-faults where it entered, having run nothing.  So a SHUTDOWN at
 * the entry's RIP and CR3 enters once more from the same state: a real
 * triple fault there does the same again, and is reported then.
 */
static bool svm_guard_shutdown(struct svm_vcpu *svm, struct svm_cpu *sc)
{
	struct vmcb *vmcb = svm->vmcb;
	bool again = (u32)vmcb->control.exit_code == SVM_EXIT_SHUTDOWN &&
		     vmcb->save.rip == sc->save_snap.rip &&
		     vmcb->save.cr3 == sc->save_snap.cr3;

	if (svm->guard_retried && !again)
		pr_warn_ratelimited("lvmm: vCPU %u: the CPU (an emulator) lost an entry's nested paging (CPU %d); entered again from the same state\n",
				    svm->vcpu.id, smp_processor_id());
	if (again && !svm->guard_retried) {
		svm_guard_restore(svm, sc);
		svm->guard_retried = true;
		return true;
	}
	svm->guard_retried = false;
	return false;
}

/*
 * QEMU 7.2 keeps TR's type "available" inside, as its own LTR leaves it,
 * and aborts the whole emulator ("invalid tss type") when a guest outside
 * long mode switches stacks through the TSS (an interrupt or exception
 * from CPL 3 or virtual-8086 mode) with the busy type, the architecture's
 * for a loaded TR, that its VMRUN copies in from the VMCB.  Under it,
 * enter with the available type and give the busy one back at the exit:
 * the emulator's own TR loads say "available" too (sandbox.rst, 9).
 */
#define SVM_TSS_BUSY	0x2	/* type 11 (busy 32-bit TSS) against 9; 3 against 1 */

static void svm_guard_tr_enter(struct vmcb *vmcb)
{
	u16 type = vmcb->save.tr.attrib & 0xf;

	if (type == 0xb || type == 0x3)
		vmcb->save.tr.attrib &= ~SVM_TSS_BUSY;
}

static void svm_guard_tr_exit(struct vmcb *vmcb)
{
	u16 type = vmcb->save.tr.attrib & 0xf;

	if (type == 0x9 || type == 0x1)
		vmcb->save.tr.attrib |= SVM_TSS_BUSY;
}

/*
 * QEMU 7.2's VMRUN sets its virtual-interrupt request (V_IRQ in int_ctl)
 * with a plain read-modify-write of the CPU's interrupt_request, without
 * the big lock, while the I/O thread may be setting the host APIC's poll
 * request in the same word: that request is then lost.  The host APIC
 * keeps the interrupt in its IRR but nothing asks the CPU to take it, and
 * a one-shot timer is not armed again until its interrupt runs, so a CPU
 * with no other interrupt source never takes one again (the -smp 1
 * sandbox stopped with a guest spinning on a lock; Documentation/sandbox.rst
 * section 10).  A CR8 write in the host makes QEMU's APIC look at its IRR
 * again: do one, with the value CR8 already has, after each entry that
 * asked for an interrupt window.
 */
static __always_inline void svm_guard_apic_poll(void)
{
	unsigned long cr8;

	asm volatile("mov %%cr8, %0" : "=r" (cr8));
	asm volatile("mov %0, %%cr8" : : "r" (cr8) : "memory");
}

/* Keep the XCR0 a guest set without an intercept, if lvmm allows it. */
static void svm_guard_xcr0(struct lvmm_vcpu *vcpu)
{
	u64 xcr0 = xgetbv(XCR_XFEATURE_ENABLED_MASK);

	if (xcr0 != vcpu->xcr0 && lvmm_xcr0_valid(xcr0))
		vcpu->xcr0 = xcr0;
}

/* What svm_guard_entry() found. */
enum svm_guard {
	SVM_GUARD_OK,
	SVM_GUARD_LOST,		/* the guest's state is gone: stop the vCPU */
	SVM_GUARD_AGAIN,	/* nothing ran: enter again */
};

static enum svm_guard svm_guard_entry(struct svm_vcpu *svm,
				      struct svm_cpu *sc, u64 host_cr3)
{
	struct vmcb *vmcb = svm->vmcb;

	if (likely(vmcb->save.rax != svm->vmcb_pa ||
		   vmcb->save.cr3 != host_cr3))
		return svm_guard_shutdown(svm, sc) ? SVM_GUARD_AGAIN :
						     SVM_GUARD_OK;
	svm_guard_restore(svm, sc);
	pr_warn_ratelimited("lvmm: vCPU %u: the CPU (an emulator) left the host's state for the guest's at an exit (CPU %d, info1 0x%llx, info2 0x%llx); the vCPU stops with an internal error\n",
			    svm->vcpu.id, smp_processor_id(),
			    vmcb->control.exit_info_1,
			    vmcb->control.exit_info_2);
	return SVM_GUARD_LOST;
}

/*
 * V_INTR_MASKING must be set at every VMRUN: with it clear, the guest's
 * RFLAGS.IF decides whether the host's own interrupts end guest mode, and
 * a guest that spins with IF=0 keeps its host CPU from every tick and IPI
 * (issue 13, Documentation/sandbox.rst section 3).  lvmm never clears it,
 * but an emulator can write its own int_ctl over the VMCB's at a #VMEXIT:
 * under one, put it back before the next VMRUN and say which exit lost it.
 * svm_guard_restore() covers the cases known; this catches any other.
 */
static void svm_restore_intr_masking(struct svm_vcpu *svm)
{
	struct vmcb_control_area *c = &svm->vmcb->control;

	pr_warn_ratelimited("lvmm: vCPU %u: V_INTR_MASKING was clear after exit 0x%x (int_ctl 0x%x); set again\n",
			    svm->vcpu.id, (u32)c->exit_code, c->int_ctl);
	c->int_ctl |= V_INTR_MASKING_MASK;
	vmcb_mark_dirty(svm, VMCB_INTR);
}

/*
 * The world switch proper, as KVM's svm_vcpu_enter_exit(): not
 * instrumented, since RCU may not be watching between the two context
 * tracking calls (lvmm_guest_enter_irqoff()).  GIF=0 keeps the host's
 * interrupts out until stgi; IF=1 at VMRUN is what makes them end guest
 * mode (V_INTR_MASKING).
 */
static noinstr void svm_vcpu_enter_exit(struct svm_vcpu *svm,
					struct svm_cpu *sc, u64 start,
					bool irq_window)
{
	lvmm_guest_enter_irqoff(start);
	raw_local_irq_enable();
	lvmm_svm_vmrun(svm->vcpu.regs, svm->vmcb_pa, sc->host_save_pa);
	raw_local_irq_disable();
	if (unlikely(irq_window))
		svm_guard_apic_poll();
	lvmm_guest_exit_irqoff();
}

/* svm_enter(): the exit is not the guest's; run->exit_reason is set. */
#define SVM_ENTER_LOST	2

static int svm_enter(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct vmcb *vmcb = svm->vmcb;
	struct svm_cpu *sc;
	enum svm_guard guard = SVM_GUARD_OK;
	bool swap_xcr0, swap_tsc_aux, irq_window = false;
	u64 start, stay;
	int cpu;

	vmcb->save.rax = vcpu->regs[LVMM_RAX];
	vmcb->save.rsp = vcpu->regs[LVMM_RSP];
	vmcb->save.rip = vcpu->rip;
	vmcb->save.rflags = vcpu->rflags;
	svm_inject_events(svm);

	preempt_disable();
	local_irq_disable();
	/*
	 * Only now, with IRQs off, may the guest's FPU state go into the
	 * registers: a softirq's kernel_fpu_begin() after this point would
	 * otherwise leave host SIMD data there for the guest to read (and
	 * be saved as the guest's).
	 */
	if (test_thread_flag(TIF_NEED_FPU_LOAD))
		switch_fpu_return();
	cpu = smp_processor_id();
	WRITE_ONCE(vcpu->cpu, cpu);
	WRITE_ONCE(vcpu->mode, LVMM_IN_GUEST_MODE);
	/* Pairs with smp_mb__after_atomic() in lvmm_vcpu_request(). */
	smp_mb();
	if (need_resched() || signal_pending(current) ||
	    test_bit(LVMM_REQ_KICK, &vcpu->requests) ||
	    READ_ONCE(lvmm_rebooting)) {
		WRITE_ONCE(vcpu->mode, LVMM_OUTSIDE_GUEST_MODE);
		local_irq_enable();
		preempt_enable();
		return READ_ONCE(lvmm_rebooting) ? -EIO : 1;
	}
	svm_prepare_entry(svm, cpu);
	sc = per_cpu_ptr(&svm_cpu, cpu);
	vmcb->control.exit_int_info = 0;

	/*
	 * Under a hypervisor that does not intercept the guest's XSETBV
	 * (QEMU 7.2's TCG), the guest sets XCR0 itself: swap whenever it
	 * could have (Documentation/sandbox.rst).
	 */
	swap_xcr0 = (vmcb->save.cr4 & X86_CR4_OSXSAVE) &&
		    (vcpu->xcr0 != svm_host_xcr0 || svm_nested_guard);
	swap_tsc_aux = svm_has_tsc_aux && vcpu->tsc_aux != sc->host_tsc_aux;

	asm volatile("clgi" ::: "memory");
	if (swap_xcr0)
		xsetbv(XCR_XFEATURE_ENABLED_MASK, vcpu->xcr0);
	if (swap_tsc_aux)
		wrmsrl(MSR_TSC_AUX, vcpu->tsc_aux);
	if (svm_nested_guard) {
		svm_guard_tr_enter(vmcb);
		svm_guard_snapshot(svm, sc);
		irq_window = vmcb->control.int_ctl & V_IRQ_MASK;
	}
	start = local_clock();
	vcpu->entered = start;
	svm_vcpu_enter_exit(svm, sc, start, irq_window);
	stay = local_clock() - start;
	vcpu->stat.guest_ns += stay;
	if (swap_tsc_aux)
		wrmsrl(MSR_TSC_AUX, sc->host_tsc_aux);
	if (swap_xcr0) {
		if (unlikely(svm_nested_guard))
			svm_guard_xcr0(vcpu);
		xsetbv(XCR_XFEATURE_ENABLED_MASK, svm_host_xcr0);
	}
	/* #VMEXIT left DR7 at its reset value; restore the host's if used. */
	if (hw_breakpoint_active())
		hw_breakpoint_restore();
	asm volatile("stgi" ::: "memory");
	/*
	 * With GIF set again, as KVM does: the handler may need NMIs, which
	 * GIF=0 would hold back (an NMI pending from the guest's time is
	 * taken at the stgi, first).
	 */
	if (unlikely((u32)vmcb->control.exit_code ==
		     SVM_EXIT_EXCP_BASE + MC_VECTOR))
		svm_handle_mce();

	WRITE_ONCE(vcpu->mode, LVMM_OUTSIDE_GUEST_MODE);
	vmcb->control.tlb_ctl = TLB_CONTROL_DO_NOTHING;
	if (svm_nested_guard) {
		guard = svm_guard_entry(svm, sc, __read_cr3());
		svm_guard_tr_exit(vmcb);
	}
	local_irq_enable();
	preempt_enable();
	if (unlikely(svm_nested_guard &&
		     !(vmcb->control.int_ctl & V_INTR_MASKING_MASK)))
		svm_restore_intr_masking(svm);
	if (unlikely(guard == SVM_GUARD_LOST)) {
		lvmm_internal_error(vcpu, LVMM_INTERNAL_ERROR_STATE_LOST, 2,
				    (u64)vmcb->control.exit_code,
				    vmcb->control.exit_info_2);
		return READ_ONCE(lvmm_rebooting) ? -EIO : SVM_ENTER_LOST;
	}
	if (unlikely(guard == SVM_GUARD_AGAIN))
		return READ_ONCE(lvmm_rebooting) ? -EIO : 1;

	vcpu->regs[LVMM_RAX] = vmcb->save.rax;
	vcpu->regs[LVMM_RSP] = vmcb->save.rsp;
	vcpu->rip = vmcb->save.rip;
	vcpu->rflags = vmcb->save.rflags;
	vcpu->stat.exits++;
	if (unlikely(stay > LVMM_GUEST_STAY_MAX_NS))
		svm_report_stay(svm, stay);
	return READ_ONCE(lvmm_rebooting) ? -EIO : 0;
}

/* ---- exit handlers -------------------------------------------------------- */

typedef int (*svm_exit_handler)(struct svm_vcpu *svm);

/* The address after the instruction that exited. */
static int svm_next_rip(struct svm_vcpu *svm, u64 *next_rip)
{
	struct lvmm_cpu_mode m;

	if (svm_has_nrips && svm->vmcb->control.next_rip) {
		*next_rip = svm->vmcb->control.next_rip;
		return 0;
	}
	svm_get_cpu_mode(&svm->vcpu, &m);
	return lvmm_insn_length(&svm->vcpu, &m, next_rip);
}

static int svm_emulation_failed(struct svm_vcpu *svm)
{
	lvmm_internal_error(&svm->vcpu, LVMM_INTERNAL_ERROR_EMULATION, 1,
			    (u64)svm->vmcb->control.exit_code);
	return 0;
}

/* The emulated instruction retired: move on, out of any STI/MOV SS shadow. */
static void svm_retire(struct svm_vcpu *svm, u64 next_rip)
{
	svm->vcpu.rip = next_rip;
	svm->vmcb->control.int_state &= ~SVM_INTERRUPT_SHADOW_MASK;
}

/* Finish an instruction lvmm handled in the kernel. */
static int svm_skip(struct svm_vcpu *svm)
{
	u64 next_rip;

	if (svm_next_rip(svm, &next_rip))
		return svm_emulation_failed(svm);
	svm_retire(svm, next_rip);
	return 1;
}

static int svm_handle_intr(struct svm_vcpu *svm)
{
	svm->vcpu.stat.intr++;
	return 1;			/* the host took its interrupt */
}

static int svm_handle_vintr(struct svm_vcpu *svm)
{
	svm_irq_window(svm, false);
	return 1;
}

static int svm_handle_cpuid(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	u32 eax = vcpu->regs[LVMM_RAX], ebx, ecx = vcpu->regs[LVMM_RCX], edx;

	vcpu->stat.cpuid++;
	lvmm_cpuid(vcpu, svm->vmcb->save.cr4, &eax, &ebx, &ecx, &edx);
	vcpu->regs[LVMM_RAX] = eax;
	vcpu->regs[LVMM_RBX] = ebx;
	vcpu->regs[LVMM_RCX] = ecx;
	vcpu->regs[LVMM_RDX] = edx;
	return svm_skip(svm);
}

static int svm_handle_hlt(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	int r = svm_skip(svm);

	vcpu->stat.hlt++;
	if (r <= 0)
		return r;
	/* With the in-kernel APIC the vCPU waits in the kernel (RUN loop). */
	if (vcpu->lapic) {
		lvmm_lapic_halt(vcpu);
		return 1;
	}
	/* An interrupt the guest can take now ends the HLT at once. */
	if ((vcpu->irq_pending && svm_interrupt_allowed(vcpu)) ||
	    (vcpu->nmi_pending && !svm->nmi_masked))
		return 1;
	vcpu->run->exit_reason = LVMM_EXIT_HLT;
	return 0;
}

static int svm_handle_io(struct svm_vcpu *svm)
{
	struct vmcb_control_area *c = &svm->vmcb->control;
	u32 info = c->exit_info_1;
	struct lvmm_cpu_mode m;
	u8 size = (info & SVM_IOIO_SIZE_MASK) >> SVM_IOIO_SIZE_SHIFT;
	u8 asize = (info & SVM_IOIO_ASIZE_MASK) >> SVM_IOIO_ASIZE_SHIFT;

	svm->vcpu.stat.io++;
	svm_get_cpu_mode(&svm->vcpu, &m);
	/* SZ8/16/32 are one-hot byte counts; A16/32/64 are bits 0-2. */
	asize = asize == 1 ? 2 : asize == 2 ? 4 : 8;
	/* EXITINFO2 always holds the next RIP for IOIO. */
	return lvmm_emulate_pio(&svm->vcpu, &m, info >> 16, size,
				info & SVM_IOIO_TYPE_MASK,
				info & SVM_IOIO_STR_MASK,
				info & SVM_IOIO_REP_MASK, asize,
				c->exit_info_2);
}

static int svm_handle_msr(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	u32 index = vcpu->regs[LVMM_RCX];
	u64 data;

	vcpu->stat.msr++;
	if (svm->vmcb->control.exit_info_1) {
		data = (vcpu->regs[LVMM_RDX] << 32) |
		       (u32)vcpu->regs[LVMM_RAX];
		if (lvmm_set_msr(vcpu, index, data)) {
			svm_inject_gp(svm);
			return 1;
		}
	} else {
		if (lvmm_get_msr(vcpu, index, &data)) {
			svm_inject_gp(svm);
			return 1;
		}
		vcpu->regs[LVMM_RAX] = (u32)data;
		vcpu->regs[LVMM_RDX] = data >> 32;
	}
	return svm_skip(svm);
}

static int svm_handle_npf(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct vmcb_control_area *c = &svm->vmcb->control;
	u64 gpa = c->exit_info_2, error = c->exit_info_1;
	bool write = error & NPF_WRITE;
	struct lvmm_slot *slot;
	struct lvmm_cpu_mode m;
	struct page *page;
	bool huge;
	int srcu, r;

	vcpu->stat.npf++;
	/*
	 * lvmm never sets reserved bits; but a GPA the 4-level tables cannot
	 * reach faults as if it had.  It is backed by no slot: MMIO.
	 */
	if ((error & NPF_RSVD) && WARN_ON_ONCE(gpa < LVMM_MAX_GPA))
		return -EIO;
	r = svm_npt_topup(svm);
	if (r)
		return r;

	srcu = srcu_read_lock(&vcpu->vm->srcu);
	slot = lvmm_memslot_find(srcu_dereference(vcpu->vm->memslots,
						  &vcpu->vm->srcu),
				 gpa >> PAGE_SHIFT);
	if (!slot || (write && (slot->flags & LVMM_MEMSLOT_READONLY))) {
		srcu_read_unlock(&vcpu->vm->srcu, srcu);
		if (error & NPF_FETCH ||
		    (c->exit_int_info & SVM_EXITINTINFO_VALID)) {
			/* Code in MMIO, or an IDT/stack there: not emulated. */
			lvmm_internal_error(vcpu, (error & NPF_FETCH) ?
					    LVMM_INTERNAL_ERROR_EMULATION :
					    LVMM_INTERNAL_ERROR_DELIVERY_EV,
					    2, gpa, error);
			return 0;
		}
		vcpu->stat.mmio++;
		svm_get_cpu_mode(vcpu, &m);
		return lvmm_emulate_mmio(vcpu, &m, gpa, write);
	}
	page = lvmm_memslot_get_page(slot, gpa >> PAGE_SHIFT, &huge);
	if (page)
		svm_npt_map(svm, slot, gpa >> PAGE_SHIFT, page_to_phys(page),
			    huge, write);
	srcu_read_unlock(&vcpu->vm->srcu, srcu);
	return page ? 1 : -ENOMEM;
}

/* The VMCB from the reset state again, keeping only the guest's TSC. */
static void svm_vcpu_reset_vmcb(struct svm_vcpu *svm)
{
	u64 tsc_offset = svm->vmcb->control.tsc_offset;

	clear_page(svm->vmcb);
	svm_init_vmcb(svm);
	svm->vmcb->control.tsc_offset = tsc_offset;
	svm->asid_generation = 0;
	svm->nmi_masked = false;
	svm->iret_seen = false;
	svm->lme_hidden = false;
}

/*
 * INIT: the reset state, but PAT, like the TSC, stays as it was (AMD
 * APM vol. 2, "Initial Processor State"; Intel SDM vol. 3, table 9-1;
 * KVM keeps it too).
 */
static void svm_vcpu_reset(struct lvmm_vcpu *vcpu)
{
	struct svm_vcpu *svm = to_svm(vcpu);
	u64 pat = svm->vmcb->save.g_pat;

	svm_vcpu_reset_vmcb(svm);
	svm->vmcb->save.g_pat = pat;
}

static int svm_handle_shutdown(struct svm_vcpu *svm)
{
	/*
	 * After a SHUTDOWN intercept the whole VMCB is undefined (AMD APM,
	 * "Shutdown Intercept"), control area included: start again from
	 * the reset state, keeping only the guest's TSC running.  The vCPU
	 * runs again once userspace has given it new registers.
	 */
	svm_vcpu_reset_vmcb(svm);
	svm->vcpu.shutdown = true;
	svm->vcpu.run->exit_reason = LVMM_EXIT_SHUTDOWN;
	return 0;
}

static int svm_handle_vmmcall(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct lvmm_run *run = vcpu->run;
	u64 next_rip;

	vcpu->stat.hypercall++;
	if (svm_next_rip(svm, &next_rip))
		return svm_emulation_failed(svm);
	run->exit_reason = LVMM_EXIT_HYPERCALL;
	run->hypercall.nr = vcpu->regs[LVMM_RAX];
	run->hypercall.args[0] = vcpu->regs[LVMM_RBX];
	run->hypercall.args[1] = vcpu->regs[LVMM_RCX];
	run->hypercall.args[2] = vcpu->regs[LVMM_RDX];
	run->hypercall.args[3] = vcpu->regs[LVMM_RSI];
	run->hypercall.args[4] = vcpu->regs[LVMM_RDI];
	run->hypercall.args[5] = vcpu->regs[LVMM_R8];
	run->hypercall.ret = 0;
	vcpu->emul.next_rip = next_rip;
	vcpu->emul.pending = LVMM_PENDING_HYPERCALL;
	return 0;
}

static int svm_handle_ud(struct svm_vcpu *svm)
{
	svm_inject_ud(svm);
	return 1;
}

static int svm_handle_gp(struct svm_vcpu *svm)
{
	svm_inject_gp(svm);
	return 1;
}

static int svm_handle_xsetbv(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	u64 xcr0 = (vcpu->regs[LVMM_RDX] << 32) | (u32)vcpu->regs[LVMM_RAX];

	if ((u32)vcpu->regs[LVMM_RCX] != XCR_XFEATURE_ENABLED_MASK ||
	    svm->vmcb->save.cpl || !lvmm_xcr0_valid(xcr0)) {
		svm_inject_gp(svm);
		return 1;
	}
	vcpu->xcr0 = xcr0;
	return svm_skip(svm);
}

/* MOV to/from DR0-7: kept in software, no hardware breakpoints. */
static int svm_handle_dr(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct lvmm_mov_ctl mov;
	struct lvmm_cpu_mode m;
	int dr, gpr;
	bool to_dr;
	u64 *val;

	svm_get_cpu_mode(vcpu, &m);
	if (lvmm_decode_mov_ctl(vcpu, &m, &mov) || !mov.dr)
		return svm_emulation_failed(svm);
	dr = mov.reg & 7;
	gpr = mov.gpr;
	to_dr = !mov.to_reg;
	if (m.cpl) {
		svm_inject_gp(svm);
		return 1;
	}
	/* DR4/DR5 alias DR6/DR7 unless CR4.DE. */
	if ((dr == 4 || dr == 5) && (m.cr4 & X86_CR4_DE)) {
		svm_inject_ud(svm);
		return 1;
	}
	val = dr < 4 ? &vcpu->dr[dr] : (dr & 1) ? &vcpu->dr7 : &vcpu->dr6;
	if (to_dr) {
		u64 v = lvmm_64bit_mode(&m) ? vcpu->regs[gpr] :
					      (u32)vcpu->regs[gpr];

		if (dr >= 6 && v >> 32) {
			svm_inject_gp(svm);
			return 1;
		}
		*val = dr < 6 ? v : (dr == 6 ? lvmm_dr6_value(v) :
					       lvmm_dr7_value(v));
	} else {
		vcpu->regs[gpr] = lvmm_64bit_mode(&m) ? *val : (u32)*val;
	}
	svm_retire(svm, mov.next_rip);
	return 1;
}

/* Paging bits whose change invalidates the guest's translations. */
#define SVM_CR4_TLB_BITS	(X86_CR4_PGE | X86_CR4_PAE | X86_CR4_PSE | \
				 X86_CR4_PCIDE | X86_CR4_SMEP | X86_CR4_LA57)

/*
 * MOV to CR4 is intercepted so that the guest cannot turn on what lvmm
 * does not switch (CR4.PKE would let it write the host's PKRU), and so
 * that its CR4.OSXSAVE decides XCR0 from the next entry on.
 */
static int svm_handle_cr4_write(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct vmcb_save_area *s = &svm->vmcb->save;
	struct lvmm_mov_ctl mov;
	struct lvmm_cpu_mode m;
	u64 cr4;

	svm_get_cpu_mode(vcpu, &m);
	if (lvmm_decode_mov_ctl(vcpu, &m, &mov) || mov.dr || mov.to_reg ||
	    mov.reg != 4)
		return svm_emulation_failed(svm);
	/* The source is 32 bits wide outside 64-bit mode. */
	cr4 = lvmm_64bit_mode(&m) ? vcpu->regs[mov.gpr] :
				    (u32)vcpu->regs[mov.gpr];
	if (m.cpl || (cr4 & ~svm_cr4_supported()) ||
	    ((s->efer & EFER_LMA) && !(cr4 & X86_CR4_PAE)) ||
	    ((s->efer & EFER_LMA) && ((cr4 ^ s->cr4) & X86_CR4_LA57)) ||
	    ((cr4 & X86_CR4_PCIDE) && !(s->efer & EFER_LMA)) ||
	    ((cr4 & ~s->cr4 & X86_CR4_PCIDE) && (s->cr3 & 0xfff))) {
		svm_inject_gp(svm);
		return 1;
	}
	if ((cr4 ^ s->cr4) & SVM_CR4_TLB_BITS)
		set_bit(LVMM_REQ_TLB_FLUSH, &vcpu->requests);
	s->cr4 = cr4;
	svm_load_efer(svm, svm_guest_efer(svm));
	svm_retire(svm, mov.next_rip);
	return 1;
}

/* MOV to CR8, intercepted only while an interrupt window is asked for. */
static int svm_handle_cr8_write(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct vmcb_control_area *c = &svm->vmcb->control;
	struct lvmm_mov_ctl mov;
	struct lvmm_cpu_mode m;
	u64 cr8;

	svm_get_cpu_mode(vcpu, &m);
	/* MOV CR8, or LOCK MOV CR0 (AMD's other encoding of it). */
	if (lvmm_decode_mov_ctl(vcpu, &m, &mov) || mov.dr || mov.to_reg ||
	    (mov.reg != 8 && mov.reg != 0))
		return svm_emulation_failed(svm);
	cr8 = vcpu->regs[mov.gpr];
	if (m.cpl || cr8 & ~0xfULL) {
		svm_inject_gp(svm);
		return 1;
	}
	c->int_ctl = (c->int_ctl & ~V_TPR_MASK) | cr8;
	vmcb_mark_dirty(svm, VMCB_INTR);
	if (vcpu->lapic)
		lvmm_lapic_set_cr8(vcpu, cr8);
	svm_retire(svm, mov.next_rip);
	return 1;
}

/*
 * CR0 writes, intercepted only while EFER.LME is kept out of the VMCB
 * (svm_load_efer()): paging is off then, so no write can leave it on
 * without PAE -- that one is the architecture's #GP.
 */
static int svm_handle_cr0_write(struct svm_vcpu *svm)
{
	struct lvmm_vcpu *vcpu = &svm->vcpu;
	struct vmcb_save_area *s = &svm->vmcb->save;
	struct lvmm_cpu_mode m;
	u64 cr0, next_rip;

	svm_get_cpu_mode(vcpu, &m);
	if (lvmm_decode_cr0_write(vcpu, &m, &cr0, &next_rip))
		return svm_emulation_failed(svm);
	if (m.cpl || cr0 >> 32 ||
	    ((cr0 & X86_CR0_NW) && !(cr0 & X86_CR0_CD)) ||
	    ((cr0 & X86_CR0_PG) && !(cr0 & X86_CR0_PE)) ||
	    ((cr0 & X86_CR0_PG) && (m.efer & EFER_LME) &&
	     !(s->cr4 & X86_CR4_PAE))) {
		svm_inject_gp(svm);
		return 1;
	}
	cr0 |= X86_CR0_ET;
	if ((cr0 ^ s->cr0) & (X86_CR0_PG | X86_CR0_WP | X86_CR0_PE))
		set_bit(LVMM_REQ_TLB_FLUSH, &vcpu->requests);
	s->cr0 = cr0;
	svm_load_efer(svm, svm_guest_efer(svm));
	svm_retire(svm, next_rip);
	return 1;
}

static int svm_handle_iret(struct svm_vcpu *svm)
{
	/* NMIs unblock once this IRET has executed: see svm_inject_events. */
	svm_intercept(svm, INTERCEPT_IRET, false);
	svm->iret_seen = true;
	svm->iret_rip = svm->vcpu.rip;
	return 1;
}

/*
 * Reflect #AC and #DB back into the guest: they are intercepted only to
 * keep the CPU from looping on them.
 */
static int svm_handle_ac(struct svm_vcpu *svm)
{
	svm_inject_exception(svm, AC_VECTOR, true,
			     svm->vmcb->control.exit_info_1);
	return 1;
}

static int svm_handle_mc(struct svm_vcpu *svm)
{
	/* svm_enter() gave it to the host's handler already. */
	return 1;
}

static int svm_handle_db(struct svm_vcpu *svm)
{
	svm_inject_exception(svm, DB_VECTOR, false, 0);
	return 1;
}

static const svm_exit_handler svm_exit_handlers[SVM_EXIT_MAX] = {
	[SVM_EXIT_INTR]			= svm_handle_intr,
	[SVM_EXIT_NMI]			= svm_handle_intr,
	[SVM_EXIT_SMI]			= svm_handle_intr,
	[SVM_EXIT_INIT]			= svm_handle_intr,
	[SVM_EXIT_VINTR]		= svm_handle_vintr,
	[SVM_EXIT_CPUID]		= svm_handle_cpuid,
	[SVM_EXIT_HLT]			= svm_handle_hlt,
	[SVM_EXIT_IOIO]			= svm_handle_io,
	[SVM_EXIT_MSR]			= svm_handle_msr,
	[SVM_EXIT_NPF]			= svm_handle_npf,
	[SVM_EXIT_SHUTDOWN]		= svm_handle_shutdown,
	[SVM_EXIT_VMMCALL]		= svm_handle_vmmcall,
	[SVM_EXIT_VMRUN]		= svm_handle_ud,
	[SVM_EXIT_VMLOAD]		= svm_handle_ud,
	[SVM_EXIT_VMSAVE]		= svm_handle_ud,
	[SVM_EXIT_STGI]			= svm_handle_ud,
	[SVM_EXIT_CLGI]			= svm_handle_ud,
	[SVM_EXIT_SKINIT]		= svm_handle_ud,
	[SVM_EXIT_INVLPGA]		= svm_handle_ud,
	[SVM_EXIT_RDTSCP]		= svm_handle_ud,
	[SVM_EXIT_MONITOR]		= svm_handle_ud,
	[SVM_EXIT_MWAIT]		= svm_handle_ud,
	[SVM_EXIT_MWAIT_COND]		= svm_handle_ud,
	[SVM_EXIT_RDPRU]		= svm_handle_ud,
	[SVM_EXIT_RDPMC]		= svm_handle_gp,
	[SVM_EXIT_PAUSE]		= svm_skip,
	[SVM_EXIT_INVD]			= svm_skip,
	[SVM_EXIT_WBINVD]		= svm_skip,
	[SVM_EXIT_XSETBV]		= svm_handle_xsetbv,
	[SVM_EXIT_IRET]			= svm_handle_iret,
	[SVM_EXIT_WRITE_CR0]		= svm_handle_cr0_write,
	[SVM_EXIT_WRITE_CR4]		= svm_handle_cr4_write,
	[SVM_EXIT_WRITE_CR8]		= svm_handle_cr8_write,
	[SVM_EXIT_EXCP_BASE + AC_VECTOR] = svm_handle_ac,
	[SVM_EXIT_EXCP_BASE + DB_VECTOR] = svm_handle_db,
	[SVM_EXIT_EXCP_BASE + MC_VECTOR] = svm_handle_mc,
	[SVM_EXIT_READ_DR0 ... SVM_EXIT_WRITE_DR7] = svm_handle_dr,
};

static int svm_vcpu_run(struct lvmm_vcpu *vcpu)
{
	struct svm_vcpu *svm = to_svm(vcpu);
	struct vmcb_control_area *c = &svm->vmcb->control;
	u32 code;
	int r = svm_enter(svm);

	if (r == SVM_ENTER_LOST)
		return 0;
	if (r)
		return r;
	c->event_inj = 0;
	svm_reinject_events(svm);
	/* The guest moves CR8 without exits: the APIC's TPR follows. */
	if (vcpu->lapic)
		lvmm_lapic_set_cr8(vcpu, c->int_ctl & V_TPR_MASK);

	/* QEMU's TCG truncates exit codes to 32 bits: compare those. */
	code = c->exit_code;
	if (code == (u32)SVM_EXIT_ERR) {
		vcpu->run->exit_reason = LVMM_EXIT_FAIL_ENTRY;
		vcpu->run->fail_entry.hardware_entry_failure_reason =
			((u64)c->exit_code_hi << 32) | c->exit_code;
		vcpu->run->fail_entry.cpu = vcpu->cpu;
		return 0;
	}
	if (code < SVM_EXIT_MAX && svm_exit_handlers[code])
		return svm_exit_handlers[code](svm);

	vcpu->run->exit_reason = LVMM_EXIT_UNKNOWN;
	vcpu->run->hw.hardware_exit_reason = code;
	return 0;
}

const struct lvmm_arch_ops lvmm_svm_ops = {
	.name			= "AMD SVM",
	.check_support		= svm_check_support,
	.hardware_setup		= svm_hardware_setup,
	.hardware_unsetup	= svm_hardware_unsetup,
	.cpu_enable		= svm_cpu_enable,
	.cpu_disable		= svm_cpu_disable,

	.vm_size		= sizeof(struct svm_vm),
	.vm_init		= svm_vm_init,
	.vm_destroy		= svm_vm_destroy,
	.vm_zap_gfn_range	= svm_npt_zap,
	.vm_write_protect	= svm_npt_write_protect,
	.vm_write_protect_mask	= svm_npt_write_protect_mask,
	.vm_unprotect_slot	= svm_npt_unprotect_slot,
	.vm_count_mappings	= svm_npt_count,

	.vcpu_size		= sizeof(struct svm_vcpu),
	.vcpu_init		= svm_vcpu_init,
	.vcpu_destroy		= svm_vcpu_destroy,
	.vcpu_reset		= svm_vcpu_reset,
	.vcpu_run		= svm_vcpu_run,
	.vcpu_interrupt_allowed	= svm_interrupt_allowed,
	.vcpu_nmi_allowed	= svm_nmi_allowed,

	.get_sregs		= svm_get_sregs,
	.set_sregs		= svm_set_sregs,
	.get_cpu_mode		= svm_get_cpu_mode,
	.get_msr		= svm_get_msr,
	.set_msr		= svm_set_msr,
	.get_events		= svm_get_events,
	.set_events		= svm_set_events,
};
