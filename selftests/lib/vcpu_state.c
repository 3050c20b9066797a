// SPDX-License-Identifier: GPL-2.0
/*
 * All of a vCPU's state, saved and loaded as a VMM does, and the guest
 * code of the tests that copy a vCPU (see include/vcpu_state.h).
 */
#include <stdlib.h>

#include "vcpu_state.h"

const u32 vcpu_state_msrs[] = {
	MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK,
	MSR_KERNEL_GS_BASE, MSR_FS_BASE, MSR_GS_BASE, MSR_IA32_SYSENTER_CS,
	MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_IA32_CR_PAT,
	MSR_TSC_AUX, MSR_IA32_MISC_ENABLE, MSR_MTRR_DEF_TYPE, MSR_IA32_APICBASE,
};

/* ---- guest code ---- */

void guest_state_prepare(u64 buf)
{
	u32 mxcsr = 0x1f80 | 0x6000;	/* round toward zero */

	wrmsr(MSR_FS_BASE, buf);
	wrmsr(MSR_GS_BASE, buf + 64);
	wrmsr(MSR_KERNEL_GS_BASE, 0xffff888000123000ULL);
	write_dr(1, 0x7ffff000);
	asm volatile("mov %0, %%cr2" :: "r"(0xdead5000ULL));
	asm volatile("ldmxcsr %0" :: "m"(mxcsr));
}

u64 guest_checkpoint(u64 x, u64 val, u64 avx, volatile u64 *tsc)
{
	u64 a, b, c, fx;

	asm volatile(
		"xor %k[c], %k[c]\n\t"
		"movq %[x], %%xmm8\n\t"
		"pshufd $0x4e, %%xmm8, %%xmm9\n\t"
		"pxor %%xmm8, %%xmm9\n\t"
		"mov %[x], %%r12\n\t"
		"shr $1, %%r12\n\t"
		"cvtsi2sdq %%r12, %%xmm10\n\t"
		"sqrtsd %%xmm10, %%xmm10\n\t"
		"mulsd %%xmm10, %%xmm10\n\t"
		"mov %[x], %%r12\n\t"
		"rol $17, %%r12\n\t"
		"push %%r12\n\t"
		"fildll (%%rsp)\n\t"
		"test %[avx], %[avx]\n\t"
		"jz 1f\n\t"
		"vinsertf128 $1, %%xmm9, %%ymm8, %%ymm11\n"
		"1:\n\t"
		"std\n\t"
		"stc\n\t"
		"mov %k[val], %%eax\n\t"
		"outl %%eax, %[port]\n\t"
		/* CF and DF, without touching the flags first. */
		"mov $0, %%ecx\n\t"
		"adc $0, %%rcx\n\t"
		"pushfq\n\t"
		"pop %%rax\n\t"
		"and $0x400, %%eax\n\t"
		"add %%rax, %%rcx\n\t"
		"cld\n\t"
		"rdtsc\n\t"
		"shl $32, %%rdx\n\t"
		"or %%rdx, %%rax\n\t"
		"mov %%rax, %[tsc]\n\t"
		"xor %%eax, %%eax\n\t"
		"xor %%edx, %%edx\n\t"
		"pop %%r13\n\t"
		"fistpll %[fx]\n\t"
		"movq %%xmm9, %[a]\n\t"
		"xor %%r13, %[a]\n\t"
		"add %%rcx, %[a]\n\t"
		"cvttsd2si %%xmm10, %[b]\n\t"
		"test %[avx], %[avx]\n\t"
		"jz 2f\n\t"
		"vextractf128 $1, %%ymm11, %%xmm12\n\t"
		"movq %%xmm12, %[c]\n\t"
		"vzeroupper\n"
		"2:"
		: [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [fx] "=m"(fx),
		  [tsc] "=m"(*tsc)
		: [x] "r"(x), [val] "r"(val), [avx] "r"(avx),
		  [port] "i"(CHECKPOINT_PORT)
		: "rax", "rcx", "rdx", "r12", "r13", "xmm8", "xmm9", "xmm10",
		  "xmm11", "xmm12", "cc", "memory");
	return mix(mix(mix(a, b), c), fx);
}

/* ---- host side ---- */

u32 vcpu_cpuid_1_ecx(struct lvmm_vcpu *vcpu)
{
	struct lvmm_cpuid *c = vcpu_get_cpuid(vcpu);
	struct lvmm_cpuid_entry *e = cpuid_find(c, 1, 0);
	u32 ecx = e ? e->ecx : 0;

	free(c);
	return ecx;
}

u64 vcpu_supported_xcr0(struct lvmm_vcpu *vcpu)
{
	struct lvmm_cpuid *c = vcpu_get_cpuid(vcpu);
	struct lvmm_cpuid_entry *e = cpuid_find(c, 0xd, 0);
	u64 xcr0 = e ? e->eax | (u64)e->edx << 32 : XFEATURE_X87;

	free(c);
	return xcr0;
}

u64 vcpu_enable_xsave(struct lvmm_vcpu *vcpu)
{
	u32 ecx = vcpu_cpuid_1_ecx(vcpu);
	u64 supported = vcpu_supported_xcr0(vcpu);
	struct lvmm_sregs sregs;
	struct lvmm_xcrs xcrs;
	u64 flags;

	if (!lvmm_cap(LVMM_CAP_XSAVE) || !(ecx & CPUID_1_ECX_XSAVE) ||
	    !(supported & XFEATURE_SSE))
		return 0;
	flags = VCPU_STATE_XSAVE;
	if ((ecx & CPUID_1_ECX_AVX) && (supported & XFEATURE_YMM))
		flags |= VCPU_STATE_AVX;
	vcpu_sregs_get(vcpu, &sregs);
	sregs.cr4 |= X86_CR4_OSXSAVE;
	vcpu_sregs_set(vcpu, &sregs);
	/*
	 * XCR0 from the host, not by the guest's XSETBV, which the sandbox's
	 * CPU does not intercept (vcpu_state_test's xcr0_guest_xsetbv).
	 */
	xcrs = (struct lvmm_xcrs){
		.xcr0 = XFEATURE_X87 | XFEATURE_SSE |
			(flags & VCPU_STATE_AVX ? XFEATURE_YMM : 0),
	};
	vcpu_set_xcrs(vcpu, &xcrs);
	return flags;
}

void vcpu_set_nondefault_state(struct lvmm_vcpu *vcpu)
{
	static const struct { u32 index; u64 val; } start_msrs[] = {
		{ MSR_STAR, 0x0023001000000000ULL },
		{ MSR_LSTAR, 0xffffffff81000000ULL },
		{ MSR_CSTAR, 0xffffffff81000040ULL },
		{ MSR_SYSCALL_MASK, 0x47700 },
		{ MSR_IA32_SYSENTER_CS, 0x10 },
		{ MSR_IA32_SYSENTER_ESP, 0xffffffff82000000ULL },
		{ MSR_IA32_SYSENTER_EIP, 0xffffffff81001000ULL },
		{ MSR_IA32_CR_PAT, 0x0007010600070106ULL },
		{ MSR_TSC_AUX, 0x1234 },
		{ MSR_IA32_MISC_ENABLE, 0x850089 },
		{ MSR_MTRR_DEF_TYPE, 0xc06 },
		{ MSR_IA32_APICBASE, 0xfec00800ULL },
	};
	struct lvmm_debugregs dr = {
		.db = { 0xffffffff81000000ULL, 0, 0x12345678,
			0xfffffffffffff000ULL },
		.dr6 = 0x4002,
		.dr7 = 0x300,
	};

	for (size_t i = 0; i < ARRAY_SIZE(start_msrs); i++)
		vcpu_set_msr(vcpu, start_msrs[i].index, start_msrs[i].val);
	vcpu_set_msr(vcpu, MSR_EFER, vcpu_get_msr(vcpu, MSR_EFER) | EFER_NX);
	vcpu_set_debugregs(vcpu, &dr);
}

void vcpu_save_state(struct lvmm_vcpu *vcpu, struct vcpu_state *st)
{
	int ret;

	st->msrs = lvmm_msrs_alloc(NR_VCPU_STATE_MSRS);
	TEST_ASSERT(st->msrs, "out of memory");
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_state_msrs); i++)
		st->msrs->entries[i].index = vcpu_state_msrs[i];
	st->msrs->entries[NR_VCPU_STATE_MSRS - 1].index = MSR_IA32_TSC;

	vcpu_regs_get(vcpu, &st->regs);
	vcpu_sregs_get(vcpu, &st->sregs);
	ret = lvmm_get_xsave(&vcpu->h, &st->xsave);
	TEST_ASSERT(!ret, "LVMM_GET_XSAVE failed: %s", strerror(-ret));
	vcpu_get_xcrs(vcpu, &st->xcrs);
	vcpu_get_debugregs(vcpu, &st->dregs);
	vcpu_get_events(vcpu, &st->events);
	ret = lvmm_get_msrs(&vcpu->h, st->msrs);
	TEST_ASSERT(ret == (int)NR_VCPU_STATE_MSRS,
		    "LVMM_GET_MSRS: %d of the %zu MSRs", ret, NR_VCPU_STATE_MSRS);
	st->cpuid = vcpu_get_cpuid(vcpu);
}

void vcpu_load_state(struct lvmm_vcpu *vcpu, const struct vcpu_state *st)
{
	int ret;

	ret = lvmm_set_cpuid(&vcpu->h, st->cpuid);
	TEST_ASSERT(!ret, "LVMM_SET_CPUID failed: %s", strerror(-ret));
	vcpu_sregs_set(vcpu, &st->sregs);
	ret = lvmm_set_msrs(&vcpu->h, st->msrs);
	TEST_ASSERT(ret == (int)NR_VCPU_STATE_MSRS,
		    "LVMM_SET_MSRS: %d of the %zu MSRs", ret, NR_VCPU_STATE_MSRS);
	vcpu_set_xcrs(vcpu, &st->xcrs);
	ret = lvmm_set_xsave(&vcpu->h, &st->xsave);
	TEST_ASSERT(!ret, "LVMM_SET_XSAVE failed: %s", strerror(-ret));
	vcpu_regs_set(vcpu, &st->regs);
	vcpu_set_debugregs(vcpu, &st->dregs);
	vcpu_set_events(vcpu, &st->events);
}

void vcpu_state_free(struct vcpu_state *st)
{
	free(st->msrs);
	free(st->cpuid);
}

u64 vcpu_state_msr(const struct vcpu_state *st, u32 index)
{
	for (u32 i = 0; i < st->msrs->nmsrs; i++)
		if (st->msrs->entries[i].index == index)
			return st->msrs->entries[i].data;
	return ~0ULL;
}
