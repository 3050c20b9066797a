/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lvmm: world switch for SVM.
 *
 * void lvmm_svm_vmrun(u64 *regs, u64 vmcb_pa, u64 host_save_pa)
 *
 * Called with GIF=0 and RFLAGS.IF=1 (the host's IF at VMRUN decides
 * whether physical interrupts exit the guest).  Guest RAX, RSP, RIP and
 * RFLAGS live in the VMCB; the other GPRs in @regs, in lvmm_reg order.
 * VMLOAD/VMSAVE switch the state VMRUN leaves alone (FS, GS, TR, LDTR,
 * KernelGSbase, STAR family, SYSENTER); the host's copy is in @host_save_pa.
 */
#include <linux/linkage.h>
#include <asm/asm.h>
#include <asm/alternative.h>
#include <asm/cpufeatures.h>
#include <asm/nospec-branch.h>

#define REG(n)	((n) * 8)

/*
 * If the SVM instruction at local label \from faults, go on at local
 * label \to when the reboot notifier turned SVM off; otherwise stop.
 */
.macro SVM_FIXUP from, to
.Lsvm_fixup_\from:
	cmpb $0, lvmm_rebooting(%rip)
	jne \to\()b
	ud2
	_ASM_EXTABLE(\from\()b, .Lsvm_fixup_\from)
.endm

/* Called from noinstr code (svm_vcpu_enter_exit()), as KVM's __svm_vcpu_run. */
.section .noinstr.text, "ax"

SYM_FUNC_START(lvmm_svm_vmrun)
	push %rbp
	push %r15
	push %r14
	push %r13
	push %r12
	push %rbx

	push %rdx		/* host save area */
	push %rdi		/* @regs */

	/* The host's FS, GS, TR, ... as they are now, for after the exit. */
	mov %rdx, %rax
1:	vmsave %rax
2:
	mov %rsi, %rax
3:	vmload %rax
4:

	mov REG(1)(%rdi), %rcx
	mov REG(2)(%rdi), %rdx
	mov REG(3)(%rdi), %rbx
	mov REG(5)(%rdi), %rbp
	mov REG(6)(%rdi), %rsi
	mov REG(8)(%rdi), %r8
	mov REG(9)(%rdi), %r9
	mov REG(10)(%rdi), %r10
	mov REG(11)(%rdi), %r11
	mov REG(12)(%rdi), %r12
	mov REG(13)(%rdi), %r13
	mov REG(14)(%rdi), %r14
	mov REG(15)(%rdi), %r15
	mov REG(7)(%rdi), %rdi

#ifdef X86_FEATURE_CLEAR_CPU_BUF_VM
	/*
	 * TSA: with the kernel's mitigation on, VERW clears the CPU buffers
	 * the host filled, so the guest cannot infer them (clobbers ZF only).
	 * Kernels from before the mitigation (Debian's 6.1.147) lack the flag.
	 */
	VM_CLEAR_CPU_BUFFERS
#endif

5:	vmrun %rax
6:

	/* RAX is the VMCB's address again (VMRUN saved it); RSP is ours. */
	push %rax
	mov 8(%rsp), %rax	/* @regs */
	mov %rcx, REG(1)(%rax)
	mov %rdx, REG(2)(%rax)
	mov %rbx, REG(3)(%rax)
	mov %rbp, REG(5)(%rax)
	mov %rsi, REG(6)(%rax)
	mov %rdi, REG(7)(%rax)
	mov %r8, REG(8)(%rax)
	mov %r9, REG(9)(%rax)
	mov %r10, REG(10)(%rax)
	mov %r11, REG(11)(%rax)
	mov %r12, REG(12)(%rax)
	mov %r13, REG(13)(%rax)
	mov %r14, REG(14)(%rax)
	mov %r15, REG(15)(%rax)

	pop %rax		/* VMCB */
7:	vmsave %rax
8:
	pop %rax		/* @regs, done with */
	pop %rax		/* host save area: GS base etc. come back */
9:	vmload %rax
10:

	/* Stuff the RSB before any RET, and untrain it (RETBleed, SRSO). */
	FILL_RETURN_BUFFER %rax, RSB_CLEAR_LOOPS, X86_FEATURE_RETPOLINE
	UNTRAIN_RET
	/* SRSO with spec_rstack_overflow=ibpb-vmexit: a full barrier instead. */
	ALTERNATIVE "", "call entry_ibpb", X86_FEATURE_IBPB_ON_VMEXIT

	/* Leave no guest value in a register the host might speculate on. */
	xor %ecx, %ecx
	xor %edx, %edx
	xor %esi, %esi
	xor %edi, %edi
	xor %r8d, %r8d
	xor %r9d, %r9d
	xor %r10d, %r10d
	xor %r11d, %r11d

	pop %rbx
	pop %r12
	pop %r13
	pop %r14
	pop %r15
	pop %rbp
	RET

	/*
	 * An SVM instruction faulted: EFER.SVME went off under us, which
	 * only a reboot does.  Carry on to the exit path (the caller sees
	 * lvmm_rebooting); anything else is a bug that must not be hidden.
	 */
	SVM_FIXUP 1, 2
	SVM_FIXUP 3, 4
	SVM_FIXUP 5, 6
	SVM_FIXUP 7, 8
	SVM_FIXUP 9, 10
SYM_FUNC_END(lvmm_svm_vmrun)
