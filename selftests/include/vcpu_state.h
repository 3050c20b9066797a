/* SPDX-License-Identifier: GPL-2.0 */
/*
 * All of a vCPU's state as a VMM saves and loads it, and guest code that
 * stops with state live in every kind of register: for the tests that copy
 * a vCPU and expect the copy to run on exactly as the original does
 * (vcpu_state_test's state_copy, snapshot_test's vcpu_state_identical).
 */
#ifndef SELFTEST_LVMM_VCPU_STATE_H
#define SELFTEST_LVMM_VCPU_STATE_H

#include "lvmm_util.h"

/* The port guest_checkpoint() stops at. */
#define CHECKPOINT_PORT		0x72

/* What vcpu_enable_xsave() turned on, for the guest code to use. */
#define VCPU_STATE_XSAVE	(1ULL << 0)	/* CR4.OSXSAVE: the guest reads XCR0 */
#define VCPU_STATE_AVX		(1ULL << 1)	/* and XCR0 has YMM: it uses them */

/* The MSRs of api.rst's "9. MSRs" that a vCPU carries, the TSC apart. */
extern const u32 vcpu_state_msrs[16];
/* The MSRs of a struct vcpu_state: those, then the TSC. */
#define NR_VCPU_STATE_MSRS	(ARRAY_SIZE(vcpu_state_msrs) + 1)

struct vcpu_state {
	struct lvmm_regs regs;
	struct lvmm_sregs sregs;
	struct lvmm_xsave xsave;
	struct lvmm_xcrs xcrs;
	struct lvmm_debugregs dregs;
	struct lvmm_vcpu_events events;
	struct lvmm_msrs *msrs;
	struct lvmm_cpuid *cpuid;
};

/* Fold @v into the hash @h. */
static inline u64 mix(u64 h, u64 v)
{
	h ^= v;
	h *= 0x100000001b3ULL;
	return h ^ (h >> 29);
}

/* ---- guest code ---- */

/*
 * State the guest makes itself: FS and GS bases at @buf and @buf + 64,
 * KERNEL_GS_BASE, DR1 (0x7ffff000), CR2 and MXCSR (round toward zero).
 */
void guest_state_prepare(u64 buf);
/*
 * Stop at an OUT of @val to CHECKPOINT_PORT with state live in every kind
 * of register: GPRs, the stack, RFLAGS (CF, DF), x87, XMM computed under
 * the guest's rounding mode and, with @avx, the upper half of a YMM
 * register.  Right after the OUT, store the TSC at @tsc; return all of
 * that state folded into a hash.
 */
u64 guest_checkpoint(u64 x, u64 val, u64 avx, volatile u64 *tsc);

/* ---- host side ---- */

/* CPUID.1:ECX of the vCPU's table. */
u32 vcpu_cpuid_1_ecx(struct lvmm_vcpu *vcpu);
/* The XCR0 bits the guest is offered: CPUID.(0xd, 0):EDX:EAX. */
u64 vcpu_supported_xcr0(struct lvmm_vcpu *vcpu);
/*
 * Where the vCPU's CPUID offers XSAVE with SSE (and AVX), set CR4.OSXSAVE
 * and XCR0 (x87, SSE and, with AVX, YMM); VCPU_STATE_XSAVE and
 * VCPU_STATE_AVX as they were turned on.
 */
u64 vcpu_enable_xsave(struct lvmm_vcpu *vcpu);
/*
 * A start state that differs from a new vCPU's everywhere it can: the
 * MSRs of vcpu_state_msrs (EFER gains NX), the debug registers.
 */
void vcpu_set_nondefault_state(struct lvmm_vcpu *vcpu);
/* Save all of the vCPU's state into @st; vcpu_state_free() it. */
void vcpu_save_state(struct lvmm_vcpu *vcpu, struct vcpu_state *st);
/* Load @st, in the order a VMM loads it: the mode first, events last. */
void vcpu_load_state(struct lvmm_vcpu *vcpu, const struct vcpu_state *st);
void vcpu_state_free(struct vcpu_state *st);
/* The value of MSR @index in @st; ~0 if @st does not have it. */
u64 vcpu_state_msr(const struct vcpu_state *st, u32 index);

#endif /* SELFTEST_LVMM_VCPU_STATE_H */
