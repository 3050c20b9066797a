/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest exception/interrupt entry stubs (from KVM's lib/x86_64/handlers.S):
 * each pushes a zero error code where the CPU does not, then the vector, and
 * jumps to a common frame builder that calls route_exception(struct ex_regs *).
 */
handle_exception:
	push	%r15
	push	%r14
	push	%r13
	push	%r12
	push	%r11
	push	%r10
	push	%r9
	push	%r8
	push	%rdi
	push	%rsi
	push	%rbp
	push	%rbx
	push	%rdx
	push	%rcx
	push	%rax
	mov	%rsp, %rdi
	call	route_exception
	pop	%rax
	pop	%rcx
	pop	%rdx
	pop	%rbx
	pop	%rbp
	pop	%rsi
	pop	%rdi
	pop	%r8
	pop	%r9
	pop	%r10
	pop	%r11
	pop	%r12
	pop	%r13
	pop	%r14
	pop	%r15
	/* Discard the vector and the error code. */
	add	$16, %rsp
	iretq

.macro HANDLERS has_error from to
	vector = \from
	.rept \to - \from + 1
	.balign 8
666 :
	.pushsection .rodata
	.quad	666b
	.popsection
	.if ! \has_error
	pushq	$0
	.endif
	pushq	$vector
	jmp	handle_exception
	vector = vector + 1
	.endr
.endm

	.pushsection .rodata
	.balign 8
	.global idt_handlers
idt_handlers:
	.popsection

	.text
	HANDLERS has_error=0 from=0  to=7
	HANDLERS has_error=1 from=8  to=8
	HANDLERS has_error=0 from=9  to=9
	HANDLERS has_error=1 from=10 to=14
	HANDLERS has_error=0 from=15 to=16
	HANDLERS has_error=1 from=17 to=17
	HANDLERS has_error=0 from=18 to=255

	.section .note.GNU-stack, "", %progbits
