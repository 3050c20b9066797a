/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The local APIC as the guest programs it (LVMM_CAP_IRQCHIP), in the
 * shape of KVM's selftests' include/x86_64/apic.h: register offsets and
 * bits, and guest-side accessors for xAPIC (MMIO at APIC_DEFAULT_GPA,
 * which the library's page tables identity-map) and x2APIC (MSRs).
 */
#ifndef SELFTEST_LVMM_APIC_H
#define SELFTEST_LVMM_APIC_H

#include "processor.h"

#define APIC_DEFAULT_GPA	0xfee00000ULL

/* IA32_APIC_BASE */
#define MSR_IA32_APICBASE_BSP	(1ULL << 8)
#define MSR_IA32_APICBASE_EXTD	(1ULL << 10)
#define MSR_IA32_APICBASE_EN	(1ULL << 11)
#define MSR_IA32_APICBASE_BASE	0xfffff000ULL
#define MSR_IA32_TSC_DEADLINE	0x6e0

/* CPUID leaf 1 ECX */
#define CPUID_1_ECX_X2APIC	(1U << 21)
#define CPUID_1_ECX_TSC_DEADLINE (1U << 24)

/* Register offsets in the xAPIC page; x2APIC MSR = 0x800 + offset / 16. */
#define APIC_ID		0x20
#define APIC_LVR	0x30
#define APIC_TASKPRI	0x80
#define APIC_PROCPRI	0xa0
#define APIC_EOI	0xb0
#define APIC_LDR	0xd0
#define APIC_DFR	0xe0
#define APIC_SPIV	0xf0
#define APIC_ISR	0x100
#define APIC_TMR	0x180
#define APIC_IRR	0x200
#define APIC_ESR	0x280
#define APIC_ICR	0x300
#define APIC_ICR2	0x310
#define APIC_LVTT	0x320
#define APIC_LVTTHMR	0x330
#define APIC_LVTPC	0x340
#define APIC_LVT0	0x350
#define APIC_LVT1	0x360
#define APIC_LVTERR	0x370
#define APIC_TMICT	0x380
#define APIC_TMCCT	0x390
#define APIC_TDCR	0x3e0
#define APIC_SELF_IPI	0x3f0

#define APIC_VERSION_VALUE	0x00050014U	/* 6 LVT entries, version 0x14 */

#define APIC_SPIV_APIC_ENABLED	(1U << 8)
#define APIC_DFR_FLAT		0xffffffffU
#define APIC_DFR_CLUSTER	0x0fffffffU

/* ICR low */
#define APIC_DM_FIXED		0x000
#define APIC_DM_LOWEST		0x100
#define APIC_DM_SMI		0x200
#define APIC_DM_NMI		0x400
#define APIC_DM_INIT		0x500
#define APIC_DM_STARTUP		0x600
#define APIC_DEST_LOGICAL	0x800
#define APIC_ICR_BUSY		0x1000
#define APIC_INT_ASSERT		0x4000
#define APIC_INT_LEVELTRIG	0x8000
#define APIC_DEST_SELF		0x40000
#define APIC_DEST_ALLINC	0x80000
#define APIC_DEST_ALLBUT	0xc0000

/* LVT entries */
#define APIC_LVT_MASKED		(1U << 16)
#define APIC_LVT_TIMER_ONESHOT	(0U << 17)
#define APIC_LVT_TIMER_PERIODIC	(1U << 17)
#define APIC_LVT_TIMER_TSCDEADLINE (2U << 17)

/* Divide configuration values. */
#define APIC_TDCR_1		0xb
#define APIC_TDCR_2		0x0
#define APIC_TDCR_16		0x3
#define APIC_TDCR_128		0xa

/* ESR bits */
#define APIC_ESR_SEND_ILLEGAL	(1U << 5)
#define APIC_ESR_RECV_ILLEGAL	(1U << 6)

#define APIC_BASE_MSR		0x800
#define X2APIC_MSR(reg)		(APIC_BASE_MSR + ((reg) >> 4))

/*
 * xAPIC accesses are single 32-bit MOVs through a register, as an OS
 * writes them (Linux's readl()/writel()); the compiler could otherwise
 * pick the 64-bit absolute form for an address above 2 GiB.
 */
static inline u32 xapic_read_reg(u32 reg)
{
	u32 v;

	asm volatile("movl (%1), %0"
		     : "=r"(v) : "r"(APIC_DEFAULT_GPA + reg) : "memory");
	return v;
}

static inline void xapic_write_reg(u32 reg, u32 v)
{
	asm volatile("movl %0, (%1)"
		     :: "r"(v), "r"(APIC_DEFAULT_GPA + reg) : "memory");
}

static inline u64 x2apic_read_reg(u32 reg)
{
	return rdmsr(X2APIC_MSR(reg));
}

static inline void x2apic_write_reg(u32 reg, u64 v)
{
	wrmsr(X2APIC_MSR(reg), v);
}

/* Software-enable the xAPIC with spurious vector 0xff. */
static inline void xapic_enable(void)
{
	xapic_write_reg(APIC_SPIV, APIC_SPIV_APIC_ENABLED | 0xff);
}

/* EN | EXTD, from xAPIC mode, then software-enable. */
static inline void x2apic_enable(void)
{
	wrmsr(MSR_IA32_APICBASE,
	      rdmsr(MSR_IA32_APICBASE) | MSR_IA32_APICBASE_EN |
	      MSR_IA32_APICBASE_EXTD);
	x2apic_write_reg(APIC_SPIV, APIC_SPIV_APIC_ENABLED | 0xff);
}

/* Bit @vector of the 256-bit ISR, TMR or IRR at @base. */
static inline bool xapic_vector_bit(u32 base, u8 vector)
{
	return xapic_read_reg(base + (vector / 32) * 0x10) &
	       (1U << (vector % 32));
}

static inline u64 rdtsc(void)
{
	u32 lo, hi;

	asm volatile("rdtsc" : "=a"(lo), "=d"(hi) :: "memory");
	return lo | ((u64)hi << 32);
}

static inline u64 read_cr8(void)
{
	u64 v;

	asm volatile("mov %%cr8, %0" : "=r"(v) :: "memory");
	return v;
}

static inline void write_cr8(u64 v)
{
	asm volatile("mov %0, %%cr8" :: "r"(v) : "memory");
}

#endif /* SELFTEST_LVMM_APIC_H */
