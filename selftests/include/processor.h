/* SPDX-License-Identifier: GPL-2.0 */
/*
 * x86-64 definitions and guest-side helpers for the lvmm selftests.
 */
#ifndef SELFTEST_LVMM_PROCESSOR_H
#define SELFTEST_LVMM_PROCESSOR_H

#include "test_util.h"

#include "lvmm.h"	/* X86_CR0_*, X86_CR4_*, EFER_* */
#define X86_EFLAGS_FIXED (1ULL << 1)
#define X86_EFLAGS_IF	(1ULL << 9)

#define MSR_IA32_TSC		0x10
#define MSR_IA32_APICBASE	0x1b
#define MSR_IA32_SPEC_CTRL	0x48
#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_IA32_CR_PAT		0x277
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MSR_EFER		0xc0000080
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_FS_BASE		0xc0000100
#define MSR_GS_BASE		0xc0000101
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MSR_TSC_AUX		0xc0000103
#define MSR_VM_CR		0xc0010114
#define MSR_VM_HSAVE_PA		0xc0010117

/* XCR0's state components; CPUID.1:ECX's bits for them. */
#define XFEATURE_X87	(1ULL << 0)
#define XFEATURE_SSE	(1ULL << 1)
#define XFEATURE_YMM	(1ULL << 2)
#define XFEATURE_AVX512	(7ULL << 5)
#define XFEATURE_PKRU	(1ULL << 9)
#define CPUID_1_ECX_XSAVE	(1U << 26)
#define CPUID_1_ECX_AVX		(1U << 28)

#define GP_VECTOR	13
#define UD_VECTOR	6
#define NMI_VECTOR	2

/* Selectors of the GDT that vm_create() builds. */
#define GDT_CODE64	0x08
#define GDT_DATA	0x10
#define GDT_CODE32	0x18
#define GDT_TSS		0x28

/* The frame handlers.S builds for every exception and interrupt. */
struct ex_regs {
	u64 rax, rcx, rdx, rbx;
	u64 rbp, rsi, rdi;
	u64 r8, r9, r10, r11;
	u64 r12, r13, r14, r15;
	u64 vector;
	u64 error_code;
	u64 rip;
	u64 cs;
	u64 rflags;
	u64 rsp;
	u64 ss;
};

typedef void (*guest_handler_t)(struct ex_regs *regs);

struct cpuid_regs {
	u32 eax, ebx, ecx, edx;
};

static inline struct cpuid_regs guest_cpuid(u32 leaf, u32 subleaf)
{
	struct cpuid_regs r;

	asm volatile("cpuid"
		     : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
		     : "a"(leaf), "c"(subleaf)
		     : "memory");
	return r;
}

static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;

	asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
	return lo | ((u64)hi << 32);
}

static inline void wrmsr(u32 msr, u64 val)
{
	asm volatile("wrmsr"
		     :: "a"((u32)val), "d"((u32)(val >> 32)), "c"(msr)
		     : "memory");
}

static inline void outb(u16 port, u8 v)
{
	asm volatile("outb %0, %1" :: "a"(v), "Nd"(port) : "memory");
}

static inline void outw(u16 port, u16 v)
{
	asm volatile("outw %0, %1" :: "a"(v), "Nd"(port) : "memory");
}

static inline void outl(u16 port, u32 v)
{
	asm volatile("outl %0, %1" :: "a"(v), "Nd"(port) : "memory");
}

static inline u8 inb(u16 port)
{
	u8 v;

	asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline u16 inw(u16 port)
{
	u16 v;

	asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline u32 inl(u16 port)
{
	u32 v;

	asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

/* XCR0, with CR4.OSXSAVE set. */
static inline u64 xgetbv(u32 xcr)
{
	u32 lo, hi;

	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(xcr) : "memory");
	return lo | ((u64)hi << 32);
}

static inline void xsetbv(u32 xcr, u64 val)
{
	asm volatile("xsetbv"
		     :: "a"((u32)val), "d"((u32)(val >> 32)), "c"(xcr)
		     : "memory");
}

/* Debug register DR@n, in the guest. */
#define read_dr(n) ({							\
	u64 __v;							\
	asm volatile("mov %%dr" #n ", %0" : "=r"(__v) :: "memory");	\
	__v;								\
})
#define write_dr(n, v) do {						\
	asm volatile("mov %0, %%dr" #n :: "r"((u64)(v)) : "memory");	\
} while (0)

static inline void cli(void)
{
	asm volatile("cli" ::: "memory");
}

static inline void sti(void)
{
	asm volatile("sti" ::: "memory");
}

static inline void cpu_relax(void)
{
	asm volatile("pause" ::: "memory");
}

static inline u64 get_rflags(void)
{
	u64 f;

	asm volatile("pushfq; popq %0" : "=r"(f) :: "memory");
	return f;
}

/* VMMCALL with nr in RAX and args in RBX, RCX, RDX, RSI, RDI, R8. */
static inline u64 guest_hypercall(u64 nr, u64 a0, u64 a1, u64 a2, u64 a3,
				  u64 a4, u64 a5)
{
	register u64 r8 asm("r8") = a5;
	u64 ret;

	asm volatile("vmmcall"
		     : "=a"(ret)
		     : "a"(nr), "b"(a0), "c"(a1), "d"(a2), "S"(a3), "D"(a4),
		       "r"(r8)
		     : "memory");
	return ret;
}

#define READ_ONCE(x)	(*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

#endif /* SELFTEST_LVMM_PROCESSOR_H */
