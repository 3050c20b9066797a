// SPDX-License-Identifier: GPL-2.0-only
/*
 * How a guest learns its TSC's frequency (Documentation/irqchip.rst,
 * section 3.1): KVM's paravirtual clock, the interface Linux and the BSDs
 * already speak, offered at the second hypervisor CPUID base (0x40000100)
 * beside lvmm's own at 0x40000000, as Xen offers Hyper-V's.  Only to VMs
 * with the in-kernel APIC, whose timers need the frequency anyway.
 *
 * Only the clock: the feature leaf offers the clock, its stable bit and
 * "no I/O delay", and nothing else of KVM's.  The clock's parameters are
 * fixed for a VM (its TSC runs at the host's rate, tsc_khz), so they are
 * written once, when the guest gives the address, and never change.
 */

#include <linux/math64.h>
#include <linux/spinlock.h>
#include <linux/ktime.h>
#include <asm/kvm_para.h>
#include <asm/msr-index.h>
#include <asm/pvclock-abi.h>
#include <asm/tsc.h>

#include "lvmm.h"

#define PVCLOCK_CPUID_BASE	0x40000100
/* KVM_CPUID_FEATURES, at this base */
#define PVCLOCK_CPUID_FEATURES	(PVCLOCK_CPUID_BASE + 1)
#define PVCLOCK_FEATURES	(BIT(KVM_FEATURE_NOP_IO_DELAY) |	\
				 BIT(KVM_FEATURE_CLOCKSOURCE2) |	\
				 BIT(KVM_FEATURE_CLOCKSOURCE_STABLE_BIT))

/* "KVMKVMKVM\0\0\0" */
#define PVCLOCK_SIG_EBX		0x4b4d564b
#define PVCLOCK_SIG_ECX		0x564b4d56
#define PVCLOCK_SIG_EDX		0x0000004d

bool lvmm_pvclock_cpuid(struct lvmm_vcpu *vcpu, u32 function, u32 *eax,
			u32 *ebx, u32 *ecx, u32 *edx)
{
	if (!vcpu->lapic || (function & ~0xffU) != PVCLOCK_CPUID_BASE)
		return false;
	*eax = *ebx = *ecx = *edx = 0;
	switch (function) {
	case PVCLOCK_CPUID_BASE:
		*eax = PVCLOCK_CPUID_FEATURES;
		*ebx = PVCLOCK_SIG_EBX;
		*ecx = PVCLOCK_SIG_ECX;
		*edx = PVCLOCK_SIG_EDX;
		break;
	case PVCLOCK_CPUID_FEATURES:
		*eax = PVCLOCK_FEATURES;
		break;
	}
	return true;
}

bool lvmm_pvclock_msr(struct lvmm_vcpu *vcpu, u32 index)
{
	return vcpu->lapic && (index == MSR_KVM_SYSTEM_TIME_NEW ||
			       index == MSR_KVM_WALL_CLOCK_NEW);
}

/*
 * The scale from TSC ticks to ns: ns = ((ticks << shift) * mul) >> 32,
 * mul below 2^32 (the guest multiplies 64 x 32 bits).
 */
static void pvclock_scale(u32 khz, s8 *shift, u32 *mul)
{
	int s = 0;

	while (((u64)khz << s) <= USEC_PER_SEC)
		s++;
	*shift = s;
	*mul = div64_u64((u64)USEC_PER_SEC << 32, (u64)khz << s);
}

/*
 * The VM's clock: 0 when a vCPU first asked for it, at guest TSC
 * vm->pvclock_tsc and wall-clock time vm->pvclock_wall_ns; the guest TSC
 * is the same on every vCPU.
 */
static void pvclock_reference(struct lvmm_vcpu *vcpu, u64 *tsc, u64 *ns0)
{
	struct lvmm_vm *vm = vcpu->vm;
	u64 now = 0;

	lvmm_arch->get_msr(vcpu, MSR_IA32_TSC, &now);
	spin_lock(&vm->pvclock_lock);
	if (!vm->pvclock_set) {
		vm->pvclock_tsc = now;
		vm->pvclock_wall_ns = ktime_get_real_ns();
		vm->pvclock_set = true;
	}
	*tsc = vm->pvclock_tsc;
	*ns0 = vm->pvclock_wall_ns;
	spin_unlock(&vm->pvclock_lock);
}

/*
 * Write @len bytes of @body at @gpa + @off, bracketed by the u32 version
 * at @gpa: odd while it changes, and never the value a reader saw before
 * (so a page written again is not read torn), as the pvclock protocol
 * asks.  The version goes on from what the guest's memory holds.
 */
static int pvclock_write_versioned(struct lvmm_vcpu *vcpu, u64 gpa,
				   unsigned int off, const void *body,
				   unsigned int len)
{
	struct lvmm_vm *vm = vcpu->vm;
	u32 v;

	if (lvmm_guest_read(vm, gpa, &v, sizeof(v)))
		return -EFAULT;
	v |= 1;
	if (lvmm_guest_write(vm, gpa, &v, sizeof(v)))
		return -EFAULT;
	smp_wmb();	/* the odd version before the body: pairs with the guest's rmb */
	if (lvmm_guest_write(vm, gpa + off, body, len))
		return -EFAULT;
	smp_wmb();	/* the body before the even version */
	v++;
	return lvmm_guest_write(vm, gpa, &v, sizeof(v));
}

/* The vCPU's clock parameters, at the guest-physical address it gave. */
static int pvclock_write_time(struct lvmm_vcpu *vcpu, u64 gpa)
{
	struct pvclock_vcpu_time_info t = {};
	u64 wall;

	pvclock_reference(vcpu, &t.tsc_timestamp, &wall);
	pvclock_scale(tsc_khz, &t.tsc_shift, &t.tsc_to_system_mul);
	t.system_time = 0;
	t.flags = PVCLOCK_TSC_STABLE_BIT;
	return pvclock_write_versioned(vcpu, gpa, sizeof(u64),
				       &t.tsc_timestamp,
				       sizeof(t) - sizeof(u64));
}

/* The wall-clock time at which the VM's clock read 0. */
static int pvclock_write_wall(struct lvmm_vcpu *vcpu, u64 gpa)
{
	struct pvclock_wall_clock w = {};
	u64 tsc, wall;
	u32 rem;

	pvclock_reference(vcpu, &tsc, &wall);
	w.sec = div_u64_rem(wall, NSEC_PER_SEC, &rem);
	w.nsec = rem;
	return pvclock_write_versioned(vcpu, gpa, sizeof(u32), &w.sec,
				       sizeof(w) - sizeof(u32));
}

int lvmm_pvclock_get_msr(struct lvmm_vcpu *vcpu, u32 index, u64 *data)
{
	*data = index == MSR_KVM_SYSTEM_TIME_NEW ? vcpu->pvclock_msr :
						   vcpu->pvclock_wall_msr;
	return 0;
}

/*
 * The guest's writes: bit 0 of the system-time MSR turns the clock on at
 * the 32-byte aligned address in the rest; the wall-clock MSR is written
 * at once.  An address no slot backs is the guest's loss, as on KVM: the
 * MSR keeps the value and nothing is written.
 */
int lvmm_pvclock_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 data)
{
	if (index == MSR_KVM_WALL_CLOCK_NEW) {
		vcpu->pvclock_wall_msr = data;
		pvclock_write_wall(vcpu, data);
		return 0;
	}
	vcpu->pvclock_msr = data;
	if ((data & 1) && tsc_khz)
		pvclock_write_time(vcpu, data & ~0x1fULL);
	return 0;
}
