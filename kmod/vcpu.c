// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: vCPUs -- the vCPU fd, its run structure and the RUN loop.
 *
 * A vCPU runs in the thread that calls LVMM_RUN, holding vcpu->mutex; every
 * vCPU ioctl takes that mutex killably, so a vCPU's state (fields marked (c)
 * in lvmm.h) is only ever touched by one thread at a time.  Other threads
 * reach a running vCPU only through vcpu->requests and a kick.
 */
#include <linux/anon_inodes.h>
#include <linux/cpumask.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/debugreg.h>
#include <asm/fpu/api.h>
#include <asm/msr-index.h>
#include <asm/trapnr.h>

#include "lvmm.h"

static void lvmm_kick_ipi(void *unused)
{
	/* The IPI itself forced the #VMEXIT; nothing more to do. */
}

/*
 * Post @req to @vcpu.  The caller's state change (vm->paused, vm->dead,
 * the zapped tables) before the bit, the bit before reading vcpu->mode:
 * pairs with lvmm_vcpu_check_vm() and the smp_mb() in the backend's entry
 * path.  Returns the CPU the vCPU is in guest mode on, or -1.
 */
static int lvmm_vcpu_request(struct lvmm_vcpu *vcpu, int req)
{
	int cpu;

	smp_mb__before_atomic();	/* state before the bit */
	set_bit(req, &vcpu->requests);
	smp_mb__after_atomic();		/* bit before reading mode */
	if (READ_ONCE(vcpu->mode) != LVMM_IN_GUEST_MODE)
		return -1;
	cpu = READ_ONCE(vcpu->cpu);
	return (unsigned int)cpu < nr_cpu_ids && cpu_online(cpu) ? cpu : -1;
}

/*
 * Get @vcpu out of guest mode soon, without waiting: any interrupt forces
 * a #VMEXIT, and the reschedule IPI is the cheapest one there is (KVM's
 * kvm_vcpu_kick() does the same).  The vCPU then sees @req before it
 * enters again.  A guest decides how long a #VMEXIT takes no more than
 * how long an interrupt takes to arrive, so nobody may spin on it.
 */
void lvmm_vcpu_kick(struct lvmm_vcpu *vcpu, int req)
{
	int me = get_cpu();
	int cpu = lvmm_vcpu_request(vcpu, req);

	/* On this very CPU it cannot be in guest mode: we are running. */
	if (cpu >= 0 && cpu != me)
		smp_send_reschedule(cpu);
	put_cpu();
	/*
	 * Or it waits in HLT (only with the in-kernel APIC): the bit is
	 * set, and rcuwait_wake_up() orders it before reading the waiter.
	 */
	if (vcpu->lapic)
		rcuwait_wake_up(&vcpu->wait);
}

/*
 * Make every vCPU of @vm leave guest mode and look at @req (and the VM's
 * state) before it enters again.  Returns at once: pause, resume, destroy
 * and policy changes need the vCPUs out soon, not this instant.
 */
void lvmm_vm_kick_all(struct lvmm_vm *vm, int req)
{
	int i;

	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (vcpu)
			lvmm_vcpu_kick(vcpu, req);
	}
}

/*
 * Make every vCPU of @vm flush its guest TLB before it runs guest code
 * again, and wait until no vCPU can still be using an old translation:
 * the only kick that waits, and only where memory is remapped or about to
 * be freed (Documentation/locking.rst, section 4, lists the callers).
 *
 * Either the vCPU sees the request before entering, or we see it in guest
 * mode and interrupt it; the IPI is taken only after the #VMEXIT (GIF is
 * clear until then), so once it has run, the vCPU has left guest mode and
 * will flush before it enters again.
 */
void lvmm_vm_flush_tlb_all(struct lvmm_vm *vm)
{
	int i;

	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);
		int cpu;

		if (!vcpu)
			continue;
		cpu = lvmm_vcpu_request(vcpu, LVMM_REQ_TLB_FLUSH);
		if (cpu >= 0)
			smp_call_function_single(cpu, lvmm_kick_ipi, NULL, 1);
	}
}

static vm_fault_t lvmm_vcpu_fault(struct vm_fault *vmf)
{
	struct lvmm_vcpu *vcpu = vmf->vma->vm_file->private_data;
	struct page *page;

	if (vmf->pgoff == 0)
		page = virt_to_page(vcpu->run);
	else if (vmf->pgoff == LVMM_RUN_IO_PAGE_OFFSET)
		page = virt_to_page(vcpu->io_page);
	else
		return VM_FAULT_SIGBUS;
	get_page(page);
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct lvmm_vcpu_vm_ops = {
	.fault = lvmm_vcpu_fault,
};

static int lvmm_vcpu_mmap(struct file *filp, struct vm_area_struct *vma)
{
	/* The run page and the I/O data page, nothing beyond. */
	if (vma->vm_pgoff + vma_pages(vma) > LVMM_RUN_IO_PAGE_OFFSET + 1)
		return -EINVAL;
	vma->vm_flags |= VM_DONTEXPAND;
	vma->vm_ops = &lvmm_vcpu_vm_ops;
	return 0;
}

static int lvmm_vcpu_release(struct inode *inode, struct file *filp)
{
	struct lvmm_vcpu *vcpu = filp->private_data;

	/* The vCPU itself lives as long as its VM. */
	lvmm_vm_put(vcpu->vm);
	return 0;
}

static bool lvmm_zeroed(const void *p, size_t n)
{
	return !memchr_inv(p, 0, n);
}

static long lvmm_vcpu_get_regs(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_regs r;

	lvmm_vcpu_save_regs(vcpu, &r);
	return copy_to_user(argp, &r, sizeof(r)) ? -EFAULT : 0;
}

void lvmm_vcpu_save_regs(struct lvmm_vcpu *vcpu, struct lvmm_regs *out)
{
	struct lvmm_regs r = {
		.rax = vcpu->regs[LVMM_RAX], .rbx = vcpu->regs[LVMM_RBX],
		.rcx = vcpu->regs[LVMM_RCX], .rdx = vcpu->regs[LVMM_RDX],
		.rsi = vcpu->regs[LVMM_RSI], .rdi = vcpu->regs[LVMM_RDI],
		.rsp = vcpu->regs[LVMM_RSP], .rbp = vcpu->regs[LVMM_RBP],
		.r8 = vcpu->regs[LVMM_R8], .r9 = vcpu->regs[LVMM_R9],
		.r10 = vcpu->regs[LVMM_R10], .r11 = vcpu->regs[LVMM_R11],
		.r12 = vcpu->regs[LVMM_R12], .r13 = vcpu->regs[LVMM_R13],
		.r14 = vcpu->regs[LVMM_R14], .r15 = vcpu->regs[LVMM_R15],
		.rip = vcpu->rip, .rflags = vcpu->rflags,
	};

	*out = r;
}

static long lvmm_vcpu_set_regs(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_regs r;

	if (copy_from_user(&r, argp, sizeof(r)))
		return -EFAULT;
	return lvmm_vcpu_load_regs(vcpu, &r);
}

int lvmm_vcpu_load_regs(struct lvmm_vcpu *vcpu, const struct lvmm_regs *rp)
{
	struct lvmm_regs r = *rp;

	if (r.flags || r.pad || !lvmm_zeroed(r.reserved, sizeof(r.reserved)))
		return -EINVAL;
	vcpu->regs[LVMM_RAX] = r.rax;
	vcpu->regs[LVMM_RBX] = r.rbx;
	vcpu->regs[LVMM_RCX] = r.rcx;
	vcpu->regs[LVMM_RDX] = r.rdx;
	vcpu->regs[LVMM_RSI] = r.rsi;
	vcpu->regs[LVMM_RDI] = r.rdi;
	vcpu->regs[LVMM_RSP] = r.rsp;
	vcpu->regs[LVMM_RBP] = r.rbp;
	vcpu->regs[LVMM_R8] = r.r8;
	vcpu->regs[LVMM_R9] = r.r9;
	vcpu->regs[LVMM_R10] = r.r10;
	vcpu->regs[LVMM_R11] = r.r11;
	vcpu->regs[LVMM_R12] = r.r12;
	vcpu->regs[LVMM_R13] = r.r13;
	vcpu->regs[LVMM_R14] = r.r14;
	vcpu->regs[LVMM_R15] = r.r15;
	vcpu->rip = r.rip;
	/* Bit 1 always reads as one; the other reserved bits as zero. */
	vcpu->rflags = (r.rflags & 0x3f7fd5) | 2;
	/* Userspace moved the vCPU: an unfinished exit is dropped. */
	vcpu->emul.pending = LVMM_PENDING_NONE;
	vcpu->shutdown = false;
	return 0;
}

void lvmm_vcpu_save_sregs(struct lvmm_vcpu *vcpu, struct lvmm_sregs *s)
{
	memset(s, 0, sizeof(*s));
	lvmm_arch->get_sregs(vcpu, s);
	s->apic_base = vcpu->apic_base;
	if (vcpu->lapic)
		s->cr8 = lvmm_lapic_get_cr8(vcpu);
}

static long lvmm_vcpu_get_sregs(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_sregs s;

	lvmm_vcpu_save_sregs(vcpu, &s);
	return copy_to_user(argp, &s, sizeof(s)) ? -EFAULT : 0;
}

static long lvmm_vcpu_set_sregs(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_sregs s;

	if (copy_from_user(&s, argp, sizeof(s)))
		return -EFAULT;
	return lvmm_vcpu_load_sregs(vcpu, &s);
}

/* Whether the APIC base may become @data (0 or -EINVAL), changing nothing. */
static int lvmm_apic_base_check(struct lvmm_vcpu *vcpu, u64 data)
{
	if (vcpu->lapic)
		return lvmm_lapic_check_base(vcpu, data);
	/* 4 KiB aligned base, BSP (8), x2APIC (10, not offered), EN. */
	if (data & ~(PAGE_MASK | BIT(8) | BIT(11)) || data >= (1ULL << 52))
		return -EINVAL;
	return 0;
}

int lvmm_vcpu_load_sregs(struct lvmm_vcpu *vcpu, const struct lvmm_sregs *sp)
{
	struct lvmm_sregs s = *sp;
	int r;

	if (s.flags || s.pad || !lvmm_zeroed(s.reserved, sizeof(s.reserved)))
		return -EINVAL;
	/*
	 * All checked before anything changes: the APIC base's change has
	 * side effects on the local APIC (its mode, its timer) that a
	 * refused register could not take back.
	 */
	r = lvmm_apic_base_check(vcpu, s.apic_base) ?:
	    lvmm_arch->set_sregs(vcpu, &s);
	if (r)
		return r;
	lvmm_set_msr(vcpu, MSR_IA32_APICBASE, s.apic_base);
	if (vcpu->lapic)
		lvmm_lapic_set_cr8(vcpu, s.cr8);
	/* New paging state: no translation from the old one may survive. */
	set_bit(LVMM_REQ_TLB_FLUSH, &vcpu->requests);
	vcpu->emul.pending = LVMM_PENDING_NONE;
	vcpu->shutdown = false;
	return 0;
}

/* Outside LVMM_RUN, where the guest's FPU state is in memory. */
void lvmm_vcpu_save_xsave(struct lvmm_vcpu *vcpu, struct lvmm_xsave *x)
{
	memset(x, 0, sizeof(*x));
	fpu_copy_guest_fpstate_to_uabi(&vcpu->fpu, x, sizeof(*x),
				       lvmm_supported_xcr0(), 0);
}

int lvmm_vcpu_load_xsave(struct lvmm_vcpu *vcpu, const struct lvmm_xsave *x)
{
	u32 pkru = 0;

	/* Rejects features outside what the guest may enable (-EINVAL). */
	return fpu_copy_uabi_to_guest_fpstate(&vcpu->fpu, x,
					      lvmm_supported_xcr0(), &pkru);
}

static long lvmm_vcpu_get_xsave(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_xsave *x;
	long r = 0;

	x = kmalloc(sizeof(*x), GFP_KERNEL);
	if (!x)
		return -ENOMEM;
	lvmm_vcpu_save_xsave(vcpu, x);
	if (copy_to_user(argp, x, sizeof(*x)))
		r = -EFAULT;
	kfree(x);
	return r;
}

static long lvmm_vcpu_set_xsave(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_xsave *x;
	long r;

	x = memdup_user(argp, sizeof(*x));
	if (IS_ERR(x))
		return PTR_ERR(x);
	r = lvmm_vcpu_load_xsave(vcpu, x);
	kfree(x);
	return r;
}

/* MSRs lvmm keeps itself; the rest is the backend's. */
int lvmm_get_msr(struct lvmm_vcpu *vcpu, u32 index, u64 *data)
{
	if (lvmm_lapic_msr(vcpu, index))
		return lvmm_lapic_get_msr(vcpu, index, data);
	if (lvmm_pvclock_msr(vcpu, index))
		return lvmm_pvclock_get_msr(vcpu, index, data);
	switch (index) {
	case MSR_IA32_APICBASE:
		*data = vcpu->apic_base;
		return 0;
	case MSR_IA32_MISC_ENABLE:
		*data = vcpu->misc_enable;
		return 0;
	case MSR_MTRRdefType:
		*data = vcpu->mtrr_def_type;
		return 0;
	case MSR_MTRRcap:
		*data = 0;	/* no variable or fixed ranges */
		return 0;
	case MSR_TSC_AUX:
		*data = vcpu->tsc_aux;
		return 0;
	case MSR_AMD64_NB_CFG:
		*data = 0;	/* Linux reads it on AMD; KVM's is 0 too */
		return 0;
	default:
		return lvmm_arch->get_msr(vcpu, index, data);
	}
}

int lvmm_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 data)
{
	if (lvmm_lapic_msr(vcpu, index))
		return lvmm_lapic_set_msr(vcpu, index, data);
	if (lvmm_pvclock_msr(vcpu, index))
		return lvmm_pvclock_set_msr(vcpu, index, data);
	switch (index) {
	case MSR_IA32_APICBASE:
		if (vcpu->lapic)
			return lvmm_lapic_set_base(vcpu, data);
		if (lvmm_apic_base_check(vcpu, data))
			return -EINVAL;
		vcpu->apic_base = data;
		return 0;
	case MSR_IA32_MISC_ENABLE:
		vcpu->misc_enable = data;
		return 0;
	case MSR_MTRRdefType:
		if (data & ~0xcffULL)
			return -EINVAL;
		vcpu->mtrr_def_type = data;
		return 0;
	case MSR_TSC_AUX:
		if (data >> 32)
			return -EINVAL;
		vcpu->tsc_aux = data;
		return 0;
	case MSR_AMD64_NB_CFG:
		return 0;	/* the northbridge is not the guest's: ignored */
	default:
		return lvmm_arch->set_msr(vcpu, index, data);
	}
}

static long lvmm_vcpu_msrs(struct lvmm_vcpu *vcpu, void __user *argp,
			   bool set)
{
	struct lvmm_msrs __user *user = argp;
	struct lvmm_msrs hdr;
	struct lvmm_msr_entry *e;
	u32 i;
	long r;

	if (copy_from_user(&hdr, user, sizeof(hdr)))
		return -EFAULT;
	if (hdr.flags || hdr.reserved)
		return -EINVAL;
	if (hdr.nmsrs > LVMM_MAX_MSR_ENTRIES)
		return -E2BIG;
	e = memdup_user(user->entries, hdr.nmsrs * sizeof(*e));
	if (IS_ERR(e))
		return PTR_ERR(e);

	for (i = 0; i < hdr.nmsrs; i++) {
		if (e[i].reserved) {
			r = -EINVAL;
			goto out_free;
		}
	}
	for (i = 0; i < hdr.nmsrs; i++) {
		if (set ? lvmm_set_msr(vcpu, e[i].index, e[i].data) :
			  lvmm_get_msr(vcpu, e[i].index, &e[i].data))
			break;
	}
	r = i;
	if (!set && copy_to_user(user->entries, e, i * sizeof(*e)))
		r = -EFAULT;
out_free:
	kfree(e);
	return r;
}

static long lvmm_vcpu_interrupt(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_interrupt irq;

	if (copy_from_user(&irq, argp, sizeof(irq)))
		return -EFAULT;
	if (irq.flags || irq.reserved || irq.vector < 32 || irq.vector > 255)
		return -EINVAL;
	if (vcpu->lapic)
		return lvmm_lapic_interrupt(vcpu, irq.vector);
	if (vcpu->irq_pending)
		return -EBUSY;
	vcpu->irq_vector = irq.vector;
	vcpu->irq_pending = true;
	return 0;
}

void lvmm_vcpu_save_events(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_events *ev)
{
	memset(ev, 0, sizeof(*ev));
	lvmm_arch->get_events(vcpu, ev);
	ev->irq_pending = vcpu->irq_pending;
	ev->irq_vector = vcpu->irq_pending ? vcpu->irq_vector : 0;
	ev->nmi_pending = vcpu->nmi_pending;
	ev->shutdown = vcpu->shutdown;
	ev->exit_pending = vcpu->emul.pending != LVMM_PENDING_NONE;
}

static long lvmm_vcpu_get_events(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_vcpu_events ev;

	/* An NMI its APIC accepted and it has not taken is pending. */
	if (vcpu->lapic)
		lvmm_lapic_events(vcpu);
	lvmm_vcpu_save_events(vcpu, &ev);
	return copy_to_user(argp, &ev, sizeof(ev)) ? -EFAULT : 0;
}

/* Exceptions that push an error code in protected mode. */
static bool lvmm_exception_has_error(u8 vector)
{
	return vector == X86_TRAP_DF ||
	       (vector >= X86_TRAP_TS && vector <= X86_TRAP_PF) ||
	       vector == X86_TRAP_AC || vector == X86_TRAP_CP ||
	       vector == X86_TRAP_VC || vector == 30;	/* #SX */
}

static int lvmm_check_injected(const struct lvmm_vcpu_events *ev)
{
	u8 v = ev->injected_vector;

	if (!ev->injected_has_error && ev->injected_error)
		return -EINVAL;
	switch (ev->injected) {
	case LVMM_EVENT_NONE:
		return v || ev->injected_has_error ? -EINVAL : 0;
	case LVMM_EVENT_INTR:
		return v < 32 || ev->injected_has_error ? -EINVAL : 0;
	case LVMM_EVENT_NMI:
		return v != NMI_VECTOR || ev->injected_has_error ? -EINVAL : 0;
	case LVMM_EVENT_EXCEPTION:
		if (v >= 32 || v == NMI_VECTOR)
			return -EINVAL;
		return ev->injected_has_error &&
		       !lvmm_exception_has_error(v) ? -EINVAL : 0;
	default:
		return -EINVAL;
	}
}

static long lvmm_vcpu_set_events(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_vcpu_events ev;

	if (copy_from_user(&ev, argp, sizeof(ev)))
		return -EFAULT;
	return lvmm_vcpu_load_events(vcpu, &ev);
}

int lvmm_vcpu_load_events(struct lvmm_vcpu *vcpu,
			  const struct lvmm_vcpu_events *evp)
{
	struct lvmm_vcpu_events ev = *evp;
	int r;

	if (ev.pad0 || ev.pad1 || ev.pad2 || ev.flags ||
	    !lvmm_zeroed(ev.reserved, sizeof(ev.reserved)))
		return -EINVAL;
	/* Flags are 0 or 1; exit_pending is output only. */
	if ((ev.injected_has_error | ev.irq_pending | ev.nmi_pending |
	     ev.nmi_masked | ev.interrupt_shadow | ev.shutdown) > 1)
		return -EINVAL;
	if (ev.irq_pending ? ev.irq_vector < 32 : ev.irq_vector)
		return -EINVAL;
	r = lvmm_check_injected(&ev);
	if (r)
		return r;
	lvmm_arch->set_events(vcpu, &ev);
	vcpu->irq_pending = ev.irq_pending;
	vcpu->irq_vector = ev.irq_vector;
	vcpu->nmi_pending = ev.nmi_pending;
	vcpu->shutdown = ev.shutdown;
	/* An exit not completed: its instruction runs again. */
	vcpu->emul.pending = LVMM_PENDING_NONE;
	return 0;
}

void lvmm_vcpu_save_debugregs(struct lvmm_vcpu *vcpu, struct lvmm_debugregs *d)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->db, vcpu->dr, sizeof(d->db));
	d->dr6 = vcpu->dr6;
	d->dr7 = vcpu->dr7;
}

static long lvmm_vcpu_get_debugregs(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_debugregs d;

	lvmm_vcpu_save_debugregs(vcpu, &d);
	return copy_to_user(argp, &d, sizeof(d)) ? -EFAULT : 0;
}

static long lvmm_vcpu_set_debugregs(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_debugregs d;

	if (copy_from_user(&d, argp, sizeof(d)))
		return -EFAULT;
	return lvmm_vcpu_load_debugregs(vcpu, &d);
}

int lvmm_vcpu_load_debugregs(struct lvmm_vcpu *vcpu,
			     const struct lvmm_debugregs *dp)
{
	struct lvmm_debugregs d = *dp;

	if (d.flags || d.pad || !lvmm_zeroed(d.reserved, sizeof(d.reserved)))
		return -EINVAL;
	/* As MOV to DR6/DR7, which #GPs on the upper half. */
	if ((d.dr6 | d.dr7) >> 32)
		return -EINVAL;
	memcpy(vcpu->dr, d.db, sizeof(vcpu->dr));
	vcpu->dr6 = lvmm_dr6_value(d.dr6);
	vcpu->dr7 = lvmm_dr7_value(d.dr7);
	return 0;
}

int lvmm_vcpu_load_xcrs(struct lvmm_vcpu *vcpu, const struct lvmm_xcrs *x)
{
	if (x->flags || x->pad || !lvmm_zeroed(x->reserved, sizeof(x->reserved)) ||
	    !lvmm_xcr0_valid(x->xcr0))
		return -EINVAL;
	vcpu->xcr0 = x->xcr0;
	return 0;
}

static long lvmm_vcpu_xcrs(struct lvmm_vcpu *vcpu, void __user *argp, bool set)
{
	struct lvmm_xcrs x = { .xcr0 = vcpu->xcr0 };

	if (!set)
		return copy_to_user(argp, &x, sizeof(x)) ? -EFAULT : 0;
	if (copy_from_user(&x, argp, sizeof(x)))
		return -EFAULT;
	return lvmm_vcpu_load_xcrs(vcpu, &x);
}

static void lvmm_exit_to_user(struct lvmm_vcpu *vcpu)
{
	struct lvmm_run *run = vcpu->run;
	bool allowed = lvmm_arch->vcpu_interrupt_allowed(vcpu);

	run->if_flag = !!(vcpu->rflags & X86_EFLAGS_IF);
	run->ready_for_interrupt_injection = allowed && !vcpu->irq_pending;
	run->apic_base = vcpu->apic_base;
}

/*
 * Remember which thread runs the vCPU, for vcpu-get; KVM does the same.
 * True if it is a new one.  Only a thread that takes the vCPU over waits
 * for readers of the old pid: a vCPU's first RUN does not wait a grace
 * period, which is milliseconds of a migrated guest's downtime.
 */
static bool lvmm_vcpu_set_pid(struct lvmm_vcpu *vcpu)
{
	struct pid *old = rcu_access_pointer(vcpu->pid);

	if (old == task_pid(current))
		return false;
	rcu_assign_pointer(vcpu->pid, get_task_pid(current, PIDTYPE_PID));
	if (old) {
		synchronize_rcu();
		put_pid(old);
	}
	return true;
}

/*
 * The VM is paused: wait in the kernel until it is resumed or destroyed.
 * A signal still takes the thread back to userspace, as any RUN.  A save
 * may ask the parked thread for its vCPU's state (snapshot.c).
 */
static int lvmm_vcpu_park(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vm *vm = vcpu->vm;
	int r;

	WRITE_ONCE(vcpu->state, LVMM_VCPU_STATE_PAUSED);
	r = wait_event_interruptible(vm->pause_wq,
				     !lvmm_vm_stopped(vm) ||
				     READ_ONCE(vm->dead) ||
				     READ_ONCE(vcpu->snap_req));
	if (READ_ONCE(vcpu->snap_req)) {
		/* The state out of RUN: the guest's FPU back in memory. */
		fpu_swap_kvm_fpstate(&vcpu->fpu, false);
		lvmm_vcpu_answer_snap(vcpu);
		fpu_swap_kvm_fpstate(&vcpu->fpu, true);
	}
	WRITE_ONCE(vcpu->state, LVMM_VCPU_STATE_RUNNING);
	return r ? -EINTR : 0;
}

/* Whatever the VM's state asks of the vCPU before it enters: > 0 to go on. */
static int lvmm_vcpu_check_vm(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vm *vm = vcpu->vm;

	for (;;) {
		/*
		 * Clear a kick before reading the state it announces: pairs
		 * with lvmm_vcpu_request().  No kick, no atomic: a kick that
		 * lands after this test is seen by the backend once the vCPU
		 * is in guest mode, and that entry is abandoned.
		 */
		if (test_bit(LVMM_REQ_KICK, &vcpu->requests)) {
			clear_bit(LVMM_REQ_KICK, &vcpu->requests);
			smp_mb__after_atomic();	/* the bit before the state */
		}
		if (READ_ONCE(vm->dead)) {
			vcpu->run->exit_reason = lvmm_vm_gone_reason(vm);
			return 0;
		}
		if (!lvmm_vm_stopped(vm))
			return 1;
		lvmm_sched_idle(vcpu);
		if (lvmm_vcpu_park(vcpu)) {
			vcpu->run->exit_reason = LVMM_EXIT_INTR;
			return -EINTR;
		}
		/* Resumed or destroyed: look again. */
	}
}

static long lvmm_vcpu_run(struct lvmm_vcpu *vcpu)
{
	struct lvmm_run *run = vcpu->run;
	u64 start = local_clock(), guest_ns;
	long r;

	if (READ_ONCE(vcpu->vm->dead)) {
		run->exit_reason = lvmm_vm_gone_reason(vcpu->vm);
		r = 0;
		goto out;
	}
	if (vcpu->shutdown) {
		run->exit_reason = LVMM_EXIT_SHUTDOWN;
		r = 0;
		goto out;
	}
	r = lvmm_complete_userspace(vcpu);
	if (r <= 0)
		goto out;
	if (READ_ONCE(run->immediate_exit)) {
		run->exit_reason = LVMM_EXIT_INTR;
		r = -EINTR;
		goto out;
	}

	lvmm_sched_run_start(vcpu, lvmm_vcpu_set_pid(vcpu));
	WRITE_ONCE(vcpu->state, LVMM_VCPU_STATE_RUNNING);
	if (!READ_ONCE(vcpu->vm->ran))
		WRITE_ONCE(vcpu->vm->ran, true);
	fpu_swap_kvm_fpstate(&vcpu->fpu, true);
	for (;;) {
		r = lvmm_vcpu_check_vm(vcpu);
		if (r <= 0)
			break;
		if (signal_pending(current)) {
			run->exit_reason = LVMM_EXIT_INTR;
			r = -EINTR;
			break;
		}
		if (vcpu->lapic) {
			lvmm_lapic_events(vcpu);
			if (lvmm_vcpu_waits(vcpu)) {
				/*
				 * A new policy wakes the wait: apply it here,
				 * since a waiting vCPU does not enter.
				 */
				lvmm_sched_update(vcpu);
				lvmm_sched_idle(vcpu);
				lvmm_lapic_wait(vcpu);
				continue;
			}
		}
		if (run->request_interrupt_window && !vcpu->irq_pending &&
		    lvmm_arch->vcpu_interrupt_allowed(vcpu)) {
			run->exit_reason = LVMM_EXIT_IRQ_WINDOW_OPEN;
			r = 0;
			break;
		}
		cond_resched();
		if (unlikely(lvmm_sched_pending(vcpu))) {
			r = lvmm_sched_enter(vcpu);
			if (r < 0) {
				run->exit_reason = LVMM_EXIT_INTR;
				break;
			}
			if (!r)
				continue;
		}
		guest_ns = vcpu->stat.guest_ns;
		r = lvmm_arch->vcpu_run(vcpu);
		if (unlikely(lvmm_sched_active(vcpu->vm)))
			lvmm_sched_charge(vcpu, vcpu->stat.guest_ns - guest_ns);
		if (r <= 0)
			break;
	}
	fpu_swap_kvm_fpstate(&vcpu->fpu, false);
	lvmm_sched_run_end(vcpu);
	WRITE_ONCE(vcpu->state, LVMM_VCPU_STATE_IDLE);
	/*
	 * A shutdown in this RUN, as the kernel saw it: run->exit_reason is
	 * userspace's to rewrite at any time.  A vCPU already shut down
	 * returned above without entering.
	 */
	if (vcpu->shutdown)
		lvmm_nl_event(vcpu->vm, LVMM_EVENT_SHUTDOWN, -1);
out:
	lvmm_exit_to_user(vcpu);
	vcpu->stat.run_ns += local_clock() - start;
	return r;
}

/* Whether vCPU ioctl @cmd changes the vCPU's state (LVMM_RUN parks). */
static bool lvmm_vcpu_ioctl_changes(unsigned int cmd)
{
	switch (cmd) {
	case LVMM_SET_REGS:
	case LVMM_SET_SREGS:
	case LVMM_SET_XSAVE:
	case LVMM_SET_MSRS:
	case LVMM_SET_CPUID:
	case LVMM_INTERRUPT:
	case LVMM_NMI:
	case LVMM_SET_VCPU_EVENTS:
	case LVMM_SET_DEBUGREGS:
	case LVMM_SET_XCRS:
	case LVMM_SET_LAPIC:
	case LVMM_SET_MP_STATE:
		return true;
	default:
		return false;
	}
}

static long lvmm_vcpu_ioctl(struct file *filp, unsigned int cmd,
			    unsigned long arg)
{
	struct lvmm_vcpu *vcpu = filp->private_data;
	void __user *argp = (void __user *)arg;
	long r;

	if (mutex_lock_killable(&vcpu->mutex))
		return -EINTR;
	/*
	 * A migration took the vCPU's state (under this mutex, or from RUN
	 * parked) and sends it: a change now would be lost with the source.
	 */
	if (lvmm_vm_frozen_for_migration(vcpu->vm) &&
	    lvmm_vcpu_ioctl_changes(cmd)) {
		mutex_unlock(&vcpu->mutex);
		return -EBUSY;
	}
	switch (cmd) {
	case LVMM_RUN:
		r = arg ? -EINVAL : lvmm_vcpu_run(vcpu);
		break;
	case LVMM_GET_REGS:
		r = lvmm_vcpu_get_regs(vcpu, argp);
		break;
	case LVMM_SET_REGS:
		r = lvmm_vcpu_set_regs(vcpu, argp);
		break;
	case LVMM_GET_SREGS:
		r = lvmm_vcpu_get_sregs(vcpu, argp);
		break;
	case LVMM_SET_SREGS:
		r = lvmm_vcpu_set_sregs(vcpu, argp);
		break;
	case LVMM_GET_XSAVE:
		r = lvmm_vcpu_get_xsave(vcpu, argp);
		break;
	case LVMM_SET_XSAVE:
		r = lvmm_vcpu_set_xsave(vcpu, argp);
		break;
	case LVMM_GET_MSRS:
		r = lvmm_vcpu_msrs(vcpu, argp, false);
		break;
	case LVMM_SET_MSRS:
		r = lvmm_vcpu_msrs(vcpu, argp, true);
		break;
	case LVMM_SET_CPUID:
		r = lvmm_vcpu_set_cpuid(vcpu, argp);
		break;
	case LVMM_GET_CPUID:
		r = lvmm_vcpu_get_cpuid(vcpu, argp);
		break;
	case LVMM_INTERRUPT:
		r = lvmm_vcpu_interrupt(vcpu, argp);
		break;
	case LVMM_NMI:
		/* NMIs that arrive while one is pending merge, as on hardware. */
		r = arg ? -EINVAL : 0;
		if (!r)
			vcpu->nmi_pending = true;
		break;
	case LVMM_GET_VCPU_EVENTS:
		r = lvmm_vcpu_get_events(vcpu, argp);
		break;
	case LVMM_SET_VCPU_EVENTS:
		r = lvmm_vcpu_set_events(vcpu, argp);
		break;
	case LVMM_GET_DEBUGREGS:
		r = lvmm_vcpu_get_debugregs(vcpu, argp);
		break;
	case LVMM_SET_DEBUGREGS:
		r = lvmm_vcpu_set_debugregs(vcpu, argp);
		break;
	case LVMM_GET_XCRS:
	case LVMM_SET_XCRS:
		r = lvmm_vcpu_xcrs(vcpu, argp, cmd == LVMM_SET_XCRS);
		break;
	case LVMM_GET_LAPIC:
		r = lvmm_vcpu_get_lapic(vcpu, argp);
		break;
	case LVMM_SET_LAPIC:
		r = lvmm_vcpu_set_lapic(vcpu, argp);
		break;
	case LVMM_GET_MP_STATE:
	case LVMM_SET_MP_STATE:
		r = lvmm_vcpu_mp_state(vcpu, argp, cmd == LVMM_SET_MP_STATE);
		break;
	default:
		r = -ENOTTY;
	}
	mutex_unlock(&vcpu->mutex);
	return r;
}

static const struct file_operations lvmm_vcpu_fops = {
	.owner		= THIS_MODULE,
	.release	= lvmm_vcpu_release,
	.unlocked_ioctl	= lvmm_vcpu_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= lvmm_vcpu_mmap,
	.llseek		= noop_llseek,
};

static void lvmm_vcpu_free(struct lvmm_vcpu *vcpu)
{
	lvmm_lapic_destroy(vcpu);
	put_pid(rcu_dereference_protected(vcpu->pid, 1));
	fpu_free_guest_fpstate(&vcpu->fpu);
	kvfree(vcpu->cpuid);
	free_page((unsigned long)vcpu->io_page);
	free_page((unsigned long)vcpu->run);
	kfree(vcpu);
}

/* Called at VM teardown, when no fd refers to the VM any more. */
void lvmm_vcpu_destroy(struct lvmm_vcpu *vcpu)
{
	lvmm_arch->vcpu_destroy(vcpu);
	lvmm_sched_vcpu_destroy(vcpu);
	lvmm_vcpu_free(vcpu);
}

static struct lvmm_vcpu *lvmm_vcpu_alloc(struct lvmm_vm *vm, u32 id)
{
	struct lvmm_vcpu *vcpu;

	vcpu = kzalloc(lvmm_arch->vcpu_size, GFP_KERNEL_ACCOUNT);
	if (!vcpu)
		return NULL;
	vcpu->vm = vm;
	vcpu->id = id;
	mutex_init(&vcpu->mutex);
	vcpu->cpu = -1;
	vcpu->state = LVMM_VCPU_STATE_IDLE;
	vcpu->run = (void *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
	vcpu->io_page = (void *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
	vcpu->cpuid = kvcalloc(LVMM_MAX_CPUID_ENTRIES, sizeof(*vcpu->cpuid),
			       GFP_KERNEL_ACCOUNT);
	if (!vcpu->run || !vcpu->io_page || !vcpu->cpuid ||
	    !fpu_alloc_guest_fpstate(&vcpu->fpu)) {
		kvfree(vcpu->cpuid);
		free_page((unsigned long)vcpu->io_page);
		free_page((unsigned long)vcpu->run);
		kfree(vcpu);
		return NULL;
	}
	/* Architectural reset values (the backend sets the rest). */
	vcpu->xcr0 = XFEATURE_MASK_FP;
	vcpu->rflags = X86_EFLAGS_FIXED;
	vcpu->rip = 0xfff0;
	vcpu->apic_base = 0xfee00000 | BIT(11) | (id == 0 ? BIT(8) : 0);
	vcpu->misc_enable = MSR_IA32_MISC_ENABLE_FAST_STRING;
	vcpu->dr6 = DR6_RESERVED;
	vcpu->dr7 = LVMM_DR7_FIXED_1;
	rcuwait_init(&vcpu->wait);
	return vcpu;
}

/*
 * INIT (lapic.c): the architecture's INIT state.  The TSC, PAT, the
 * x87/SSE state, XCR0 and the MSRs lvmm keeps here (the APIC base among
 * them) stay as they are.
 */
void lvmm_vcpu_reset(struct lvmm_vcpu *vcpu)
{
	memset(vcpu->regs, 0, sizeof(vcpu->regs));
	vcpu->rip = 0xfff0;
	vcpu->rflags = X86_EFLAGS_FIXED;
	vcpu->emul.pending = LVMM_PENDING_NONE;
	vcpu->irq_pending = false;
	vcpu->nmi_pending = false;
	vcpu->shutdown = false;
	vcpu->dr6 = DR6_RESERVED;
	vcpu->dr7 = LVMM_DR7_FIXED_1;
	lvmm_arch->vcpu_reset(vcpu);
	set_bit(LVMM_REQ_TLB_FLUSH, &vcpu->requests);
}

/* A start-up IPI's @vector: real mode at vector << 12, after INIT. */
void lvmm_vcpu_start_at(struct lvmm_vcpu *vcpu, u8 vector)
{
	struct lvmm_sregs s = {};

	lvmm_arch->get_sregs(vcpu, &s);
	s.cs.selector = vector << 8;
	s.cs.base = (u64)vector << 12;
	WARN_ON_ONCE(lvmm_arch->set_sregs(vcpu, &s));
	vcpu->rip = 0;
}

/*
 * A file for @vcpu and an fd number for it, which the caller installs;
 * the file holds a reference to the VM.
 */
static struct file *lvmm_vcpu_file(struct lvmm_vcpu *vcpu, int *fd)
{
	struct file *file;

	*fd = get_unused_fd_flags(O_CLOEXEC);
	if (*fd < 0)
		return ERR_PTR(*fd);
	file = anon_inode_getfile("lvmm-vcpu", &lvmm_vcpu_fops, vcpu, O_RDWR);
	if (IS_ERR(file)) {
		put_unused_fd(*fd);
		return file;
	}
	/* The fd's reference, dropped by its ->release. */
	lvmm_vm_get(vcpu->vm);
	return file;
}

/*
 * Add vCPU @id to @vm; with @fd, also return an fd for it (> 0), made
 * before the vCPU is visible so that nothing needs undoing after.
 */
static int lvmm_vcpu_add(struct lvmm_vm *vm, u32 id, bool fd,
			 struct lvmm_vcpu **out)
{
	struct lvmm_vcpu *vcpu;
	struct file *file = NULL;
	int ufd = 0, r;

	vcpu = lvmm_vcpu_alloc(vm, id);
	if (!vcpu)
		return -ENOMEM;
	r = lvmm_cpuid_init(vcpu);
	if (r)
		goto out_free;
	/* Checked again under vm->lock, below. */
	if (READ_ONCE(vm->irqchip)) {
		r = lvmm_lapic_create(vcpu);
		if (r)
			goto out_free;
	}
	r = lvmm_sched_vcpu_init(vcpu);
	if (r)
		goto out_free;
	r = lvmm_arch->vcpu_init(vcpu);
	if (r)
		goto out_sched_destroy;

	mutex_lock(&vm->lock);
	if (vm->vcpus[id]) {
		r = -EEXIST;
		goto out_unlock;
	}
	/* The irqchip came while this vCPU was made without its APIC. */
	if (!vcpu->lapic != !vm->irqchip) {
		r = -EBUSY;
		goto out_unlock;
	}
	/*
	 * A reservation is split among the vCPUs it was admitted for; a
	 * save or a migration sends the vCPUs it found when it started.
	 */
	if (vm->sched.reserve || vm->frozen || vm->save_task) {
		r = -EBUSY;
		goto out_unlock;
	}
	if (fd) {
		file = lvmm_vcpu_file(vcpu, &ufd);
		if (IS_ERR(file)) {
			r = PTR_ERR(file);
			goto out_unlock;
		}
	}
	vcpu->fd_given = fd;
	/*
	 * Visible to kicks and the management plane before anybody can run
	 * it.  Pairs with READ_ONCE() in lvmm_vm_kick_all() and others.
	 */
	smp_store_release(&vm->vcpus[id], vcpu);
	WRITE_ONCE(vm->nr_vcpus, vm->nr_vcpus + 1);
	mutex_unlock(&vm->lock);
	if (file)
		fd_install(ufd, file);
	if (out)
		*out = vcpu;
	return ufd;

out_unlock:
	mutex_unlock(&vm->lock);
	lvmm_arch->vcpu_destroy(vcpu);
out_sched_destroy:
	lvmm_sched_vcpu_destroy(vcpu);
out_free:
	lvmm_vcpu_free(vcpu);
	return r;
}

/* A restore's vCPU: no fd, the VM owns it (LVMM_GET_VCPU gives one). */
struct lvmm_vcpu *lvmm_vcpu_create(struct lvmm_vm *vm, u32 id)
{
	struct lvmm_vcpu *vcpu;
	int r = lvmm_vcpu_add(vm, id, false, &vcpu);

	return r < 0 ? ERR_PTR(r) : vcpu;
}

static int lvmm_vcpu_req(void __user *argp, struct lvmm_create_vcpu *req)
{
	if (copy_from_user(req, argp, sizeof(*req)))
		return -EFAULT;
	if (req->flags || !lvmm_zeroed(req->reserved, sizeof(req->reserved)))
		return -EINVAL;
	return req->id >= LVMM_MAX_VCPUS ? -EINVAL : 0;
}

long lvmm_vm_create_vcpu(struct lvmm_vm *vm, void __user *argp)
{
	struct lvmm_create_vcpu req;
	int r = lvmm_vcpu_req(argp, &req);

	return r ?: lvmm_vcpu_add(vm, req.id, true, NULL);
}

/*
 * LVMM_GET_VCPU: the fd of a vCPU that was made without one (a restored
 * VM's), once: whoever holds the VM fd does not get every vCPU with it.
 */
long lvmm_vm_get_vcpu(struct lvmm_vm *vm, void __user *argp)
{
	struct lvmm_create_vcpu req;
	struct lvmm_vcpu *vcpu;
	struct file *file;
	int r = lvmm_vcpu_req(argp, &req);

	if (r)
		return r;
	mutex_lock(&vm->lock);
	vcpu = vm->vcpus[req.id];
	if (!vcpu)
		r = -ENOENT;
	else if (vcpu->fd_given)
		r = -EBUSY;
	if (!r) {
		file = lvmm_vcpu_file(vcpu, &r);
		if (!IS_ERR(file)) {
			vcpu->fd_given = true;
			fd_install(r, file);
		} else {
			r = PTR_ERR(file);
		}
	}
	mutex_unlock(&vm->lock);
	return r;
}
