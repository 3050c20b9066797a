// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: what CPUID tells the guest.
 *
 * The table starts as the host's CPUID, filtered, and userspace may replace
 * it with LVMM_SET_CPUID; either way the same filter applies, so the guest
 * never sees a feature lvmm cannot virtualize.  A few fields follow the
 * vCPU (its APIC id, CR4.OSXSAVE) and are filled in at each CPUID exit.
 */
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/cpufeatures.h>
#include <asm/fpu/xcr.h>
#include <asm/fpu/xstate.h>
#include <asm/processor.h>

#include "lvmm.h"

#define LVMM_CPUID_SIGNATURE	0x40000000
/* "lvmmlvmmlvmm" in EBX, ECX, EDX */
#define LVMM_SIG		0x6d6d766c

#define BIT32(x)	(1U << ((x) & 31))

/* The table goes this far; leaves beyond read as zeros. */
#define LVMM_CPUID_MAX_BASIC	0xd
#define LVMM_CPUID_MAX_EXT	0x80000008

static u64 lvmm_host_xcr0;

/* XSAVE features the guest may enable: what the host runs with, user state. */
u64 lvmm_supported_xcr0(void)
{
	if (!lvmm_host_xcr0 && boot_cpu_has(X86_FEATURE_XSAVE))
		lvmm_host_xcr0 = xgetbv(XCR_XFEATURE_ENABLED_MASK);
	/* Not PKRU: lvmm does not switch it (and hides PKU). */
	return lvmm_host_xcr0 & XFEATURE_MASK_USER_SUPPORTED &
	       ~XFEATURE_MASK_PKRU;
}

/* What XSETBV accepts for XCR0, and so does LVMM_SET_XCRS. */
bool lvmm_xcr0_valid(u64 xcr0)
{
	u64 avx512 = XFEATURE_MASK_OPMASK | XFEATURE_MASK_ZMM_Hi256 |
		     XFEATURE_MASK_Hi16_ZMM;

	if (!(xcr0 & XFEATURE_MASK_FP) || (xcr0 & ~lvmm_supported_xcr0()))
		return false;
	if ((xcr0 & XFEATURE_MASK_YMM) && !(xcr0 & XFEATURE_MASK_SSE))
		return false;
	return !(xcr0 & avx512) ||
	       ((xcr0 & avx512) == avx512 && (xcr0 & XFEATURE_MASK_YMM));
}

static void lvmm_cpuid_zero(struct lvmm_cpuid_entry *e)
{
	e->eax = 0;
	e->ebx = 0;
	e->ecx = 0;
	e->edx = 0;
}

/* Hide what lvmm does not virtualize, and say that this is a VM. */
static void lvmm_cpuid_filter(struct lvmm_cpuid_entry *e)
{
	u64 xcr0 = lvmm_supported_xcr0();

	switch (e->function) {
	case 0:
		e->eax = min_t(u32, e->eax, LVMM_CPUID_MAX_BASIC);
		break;
	case 0x80000000:
		e->eax = min_t(u32, e->eax, LVMM_CPUID_MAX_EXT);
		break;
	case 1:
		/*
		 * No nested virtualization (VMX, SMX), no MONITOR/MWAIT, no
		 * x2APIC or TSC deadline (no in-kernel APIC), no perf/debug
		 * store MSRs; OSXSAVE is the guest's CR4 bit.
		 */
		e->ecx &= ~(BIT32(X86_FEATURE_VMX) | BIT32(X86_FEATURE_SMX) |
			    BIT32(X86_FEATURE_MWAIT) | BIT32(X86_FEATURE_X2APIC) |
			    BIT32(X86_FEATURE_TSC_DEADLINE_TIMER) |
			    BIT32(X86_FEATURE_PDCM) | BIT32(X86_FEATURE_DTES64) |
			    BIT32(X86_FEATURE_DSCPL) | BIT32(X86_FEATURE_EST) |
			    BIT32(X86_FEATURE_TM2) | BIT32(X86_FEATURE_OSXSAVE));
		e->ecx |= BIT32(X86_FEATURE_HYPERVISOR);
		e->edx &= ~(BIT32(X86_FEATURE_MCE) | BIT32(X86_FEATURE_MCA) |
			    BIT32(X86_FEATURE_DS) | BIT32(X86_FEATURE_ACPI) |
			    BIT32(X86_FEATURE_ACC) | BIT32(X86_FEATURE_PBE));
		break;
	case 6:			/* thermal and power management */
	case 0xa:		/* architectural perfmon */
		lvmm_cpuid_zero(e);
		break;
	case 7:
		if (e->index == 0) {
			e->ebx &= ~(BIT32(X86_FEATURE_SGX) |
				    BIT32(X86_FEATURE_INVPCID) |
				    BIT32(X86_FEATURE_CQM) |
				    BIT32(X86_FEATURE_RDT_A) |
				    BIT32(X86_FEATURE_INTEL_PT));
			/*
			 * Not offered by default (a VMM's SET_CPUID may):
			 * lvmm loads the guest's TSC_AUX around VMRUN, so
			 * RDPID would read the guest's own value.
			 */
			e->ecx &= ~(BIT32(X86_FEATURE_WAITPKG) |
				    BIT32(X86_FEATURE_RDPID) |
				    BIT32(X86_FEATURE_PKU) |
				    BIT32(X86_FEATURE_OSPKE) |
				    BIT32(X86_FEATURE_SGX_LC));
			e->edx = 0;
		}
		break;
	case 0xd:
		if (e->index == 0) {
			e->eax &= (u32)xcr0;
			e->edx &= (u32)(xcr0 >> 32);
		} else if (e->index == 1) {
			e->eax &= BIT32(X86_FEATURE_XSAVEOPT);	/* no XSAVES */
			e->ecx = 0;
			e->edx = 0;
		}
		break;
	case 0x80000001:
		/* No nested virtualization; RDTSCP as RDPID above. */
		e->ecx &= ~(BIT32(X86_FEATURE_SVM) | BIT32(X86_FEATURE_SKINIT) |
			    BIT32(X86_FEATURE_WDT) | BIT32(X86_FEATURE_IBS) |
			    BIT32(X86_FEATURE_PERFCTR_CORE) |
			    BIT32(X86_FEATURE_MWAITX));
		e->edx &= ~BIT32(X86_FEATURE_RDTSCP);
		break;
	case 0x80000008:
		/* Speculation controls: their MSRs are not offered. */
		e->ebx = 0;
		/*
		 * Physical addresses: no wider than the 4-level nested tables
		 * reach (48 bits); the guest-physical width says the same.
		 */
		e->eax = (e->eax & 0xff00) | min_t(u32, e->eax & 0xff,
						     ilog2(LVMM_MAX_GPA));
		break;
	case 0x8000000a:	/* nested virtualization features */
	case 0x8000001f:	/* memory encryption */
		lvmm_cpuid_zero(e);
		break;
	case LVMM_CPUID_SIGNATURE:
		e->eax = LVMM_CPUID_SIGNATURE;
		e->ebx = LVMM_SIG;
		e->ecx = LVMM_SIG;
		e->edx = LVMM_SIG;
		break;
	}
}

static bool lvmm_cpuid_indexed(u32 function)
{
	return function == 4 || function == 7 || function == 0xb ||
	       function == 0xd || function == 0x8000001d;
}

static int lvmm_cpuid_add(struct lvmm_vcpu *vcpu, u32 function, u32 index)
{
	struct lvmm_cpuid_entry *e;

	if (vcpu->cpuid_nent >= LVMM_MAX_CPUID_ENTRIES)
		return -E2BIG;
	e = &vcpu->cpuid[vcpu->cpuid_nent++];
	memset(e, 0, sizeof(*e));
	e->function = function;
	e->index = index;
	if (lvmm_cpuid_indexed(function))
		e->flags = LVMM_CPUID_FLAG_SIGNIFICANT_INDEX;
	cpuid_count(function, index, &e->eax, &e->ebx, &e->ecx, &e->edx);
	lvmm_cpuid_filter(e);
	return 0;
}

/* The default table: the host's leaves, filtered. */
int lvmm_cpuid_init(struct lvmm_vcpu *vcpu)
{
	u32 max = min_t(u32, cpuid_eax(0), LVMM_CPUID_MAX_BASIC);
	u32 xmax = min_t(u32, cpuid_eax(0x80000000), LVMM_CPUID_MAX_EXT);
	u32 f, i;
	int r = 0;

	vcpu->cpuid_nent = 0;
	for (f = 0; f <= max && !r; f++) {
		if (f == 4) {
			for (i = 0; i < 8 && !r; i++) {
				r = lvmm_cpuid_add(vcpu, f, i);
				if (!(vcpu->cpuid[vcpu->cpuid_nent - 1].eax & 0x1f))
					break;
			}
		} else if (f == 7 || f == 0xb) {
			r = lvmm_cpuid_add(vcpu, f, 0) ?:
			    lvmm_cpuid_add(vcpu, f, 1);
		} else if (f == 0xd) {
			for (i = 0; i < 64 && !r; i++)
				if (i < 2 || (lvmm_supported_xcr0() & BIT_ULL(i)))
					r = lvmm_cpuid_add(vcpu, f, i);
		} else {
			r = lvmm_cpuid_add(vcpu, f, 0);
		}
	}
	for (f = 0x80000000; f <= xmax && !r; f++)
		r = lvmm_cpuid_add(vcpu, f, 0);
	return r ?: lvmm_cpuid_add(vcpu, LVMM_CPUID_SIGNATURE, 0);
}

/* Check and filter @nent entries at @e, then make them the vCPU's table. */
int lvmm_cpuid_load(struct lvmm_vcpu *vcpu, struct lvmm_cpuid_entry *e,
		    u32 nent)
{
	u32 i;

	if (nent > LVMM_MAX_CPUID_ENTRIES)
		return -E2BIG;
	for (i = 0; i < nent; i++) {
		if (e[i].flags & ~LVMM_CPUID_FLAG_SIGNIFICANT_INDEX ||
		    memchr_inv(e[i].reserved, 0, sizeof(e[i].reserved)))
			return -EINVAL;
		lvmm_cpuid_filter(&e[i]);
	}
	memcpy(vcpu->cpuid, e, nent * sizeof(*e));
	vcpu->cpuid_nent = nent;
	return 0;
}

long lvmm_vcpu_set_cpuid(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_cpuid __user *user = argp;
	struct lvmm_cpuid_entry *e;
	struct lvmm_cpuid hdr;
	int r;

	if (copy_from_user(&hdr, user, sizeof(hdr)))
		return -EFAULT;
	if (hdr.flags || hdr.reserved)
		return -EINVAL;
	if (hdr.nent > LVMM_MAX_CPUID_ENTRIES)
		return -E2BIG;
	e = memdup_user(user->entries, hdr.nent * sizeof(*e));
	if (IS_ERR(e))
		return PTR_ERR(e);
	r = lvmm_cpuid_load(vcpu, e, hdr.nent);
	kfree(e);
	return r;
}

long lvmm_vcpu_get_cpuid(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_cpuid __user *user = argp;
	struct lvmm_cpuid hdr;

	if (copy_from_user(&hdr, user, sizeof(hdr)))
		return -EFAULT;
	if (hdr.flags || hdr.reserved)
		return -EINVAL;
	if (hdr.nent < vcpu->cpuid_nent) {
		hdr.nent = vcpu->cpuid_nent;
		return copy_to_user(user, &hdr, sizeof(hdr)) ? -EFAULT : -E2BIG;
	}
	hdr.nent = vcpu->cpuid_nent;
	if (copy_to_user(user, &hdr, sizeof(hdr)) ||
	    copy_to_user(user->entries, vcpu->cpuid,
			 hdr.nent * sizeof(*vcpu->cpuid)))
		return -EFAULT;
	return 0;
}

/* The guest executed CPUID: answer from the table (zeros if absent). */
void lvmm_cpuid(struct lvmm_vcpu *vcpu, u64 cr4, u32 *eax, u32 *ebx,
		u32 *ecx, u32 *edx)
{
	u32 function = *eax, index = *ecx, i;
	struct lvmm_cpuid_entry *e = NULL;

	if (lvmm_pvclock_cpuid(vcpu, function, eax, ebx, ecx, edx))
		return;
	for (i = 0; i < vcpu->cpuid_nent; i++) {
		struct lvmm_cpuid_entry *c = &vcpu->cpuid[i];

		if (c->function == function &&
		    (!(c->flags & LVMM_CPUID_FLAG_SIGNIFICANT_INDEX) ||
		     c->index == index)) {
			e = c;
			break;
		}
	}
	if (!e) {
		*eax = 0;
		*ebx = 0;
		*ecx = 0;
		*edx = 0;
		return;
	}
	*eax = e->eax;
	*ebx = e->ebx;
	*ecx = e->ecx;
	*edx = e->edx;
	switch (function) {
	case 1:
		*ebx = (*ebx & 0x00ffffff) | (vcpu->id << 24);
		if (cr4 & X86_CR4_OSXSAVE)
			*ecx |= BIT32(X86_FEATURE_OSXSAVE);
		/* The in-kernel APIC has x2APIC and the TSC-deadline timer. */
		if (vcpu->lapic) {
			*ecx |= BIT32(X86_FEATURE_X2APIC) |
				BIT32(X86_FEATURE_TSC_DEADLINE_TIMER);
			if (!(vcpu->apic_base & MSR_IA32_APICBASE_ENABLE))
				*edx &= ~BIT32(X86_FEATURE_APIC);
		}
		break;
	case 6:
		/* Its timer is an hrtimer: it runs in every C-state (ARAT). */
		if (vcpu->lapic)
			*eax |= BIT32(2);
		break;
	case 0xb:
		*edx = vcpu->id;
		break;
	}
}
