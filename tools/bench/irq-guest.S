/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lvmm-irq-bench's guest: 32-bit protected mode, flat segments, paging
 * off, copied to IRQ_CODE_GPA; the VMM writes the GDT and the IDT and
 * enters it with ESI the role (irq-guest.h).  Both roles put their local
 * APIC in x2APIC mode and software-enable it, say so with an OUT, then:
 *
 * timer (vCPU 0, IRQ_MODE_TIMER): per shot, arm the TSC-deadline timer
 *   for now + IRQ_DELTA_GPA ticks and wait in "sti; hlt" until the
 *   record handler has run; the sample is the handler's TSC less the
 *   deadline, and the margin the TSC just before HLT less the deadline
 *   (negative: the vCPU halted before the timer was due).
 * ping (vCPU 0, IRQ_MODE_IPI): per shot, send a fixed IPI to vCPU 1 and
 *   wait in "sti; hlt" for its answer; the sample is the record
 *   handler's TSC less the TSC read before the ICR write.
 * pong (vCPU 1): wait in "sti; hlt"; its handler EOIs and sends the
 *   answer to vCPU 0.  Leaves when ping sets IRQ_STOP_GPA.
 *
 * IRQ_VEC_NUDGE only EOIs: the VMM sends it to a vCPU that made no
 * progress for a while, to end a wake-up the emulator lost (see
 * lvmm-irq-bench.c); the loops above then look at their flags again.
 *
 * Every exception and unknown vector goes to a stub that OUTs to
 * IRQ_PORT_FAULT, so that a broken run prints an error, never a number.
 */
#include "irq-guest.h"

#define MSR_APIC_BASE		0x1b
#define MSR_TSC_DEADLINE	0x6e0
#define MSR_X2APIC_EOI		0x80b
#define MSR_X2APIC_SVR		0x80f
#define MSR_X2APIC_ICR		0x830
#define MSR_X2APIC_LVTT		0x832
#define LVTT_TSC_DEADLINE	(2 << 17)

	.section .rodata.irq_guest, "a"
	.code32
	.globl irq_guest_code, irq_guest_end, irq_guest_record
	.globl irq_guest_pong_irq, irq_guest_nudge, irq_guest_spurious
	.globl irq_guest_fault
irq_guest_code:
	mov	$MSR_APIC_BASE, %ecx
	rdmsr
	or	$0xc00, %eax		/* EN | EXTD: x2APIC */
	wrmsr
	mov	$MSR_X2APIC_SVR, %ecx
	mov	$(0x100 | IRQ_VEC_SPURIOUS), %eax
	xor	%edx, %edx
	wrmsr
	cmp	$IRQ_ROLE_PONG, %esi
	je	pong
	cmpl	$IRQ_MODE_IPI, IRQ_MODE_GPA
	je	ping

timer:
	mov	$MSR_X2APIC_LVTT, %ecx
	mov	$(LVTT_TSC_DEADLINE | IRQ_VEC_RECORD), %eax
	xor	%edx, %edx
	wrmsr
	out	%al, $IRQ_PORT_READY
	xor	%ebx, %ebx		/* the shot */
1:	cli
	movl	$0, IRQ_FLAG_GPA
	rdtsc
	add	IRQ_DELTA_GPA, %eax
	adc	$0, %edx
	mov	%eax, IRQ_DEADLINE_GPA
	mov	%edx, IRQ_DEADLINE_GPA + 4
	mov	$MSR_TSC_DEADLINE, %ecx
	wrmsr
	rdtsc
	sub	IRQ_DEADLINE_GPA, %eax
	sbb	IRQ_DEADLINE_GPA + 4, %edx
	mov	%eax, IRQ_MARGIN_GPA(, %ebx, 8)
	mov	%edx, IRQ_MARGIN_GPA + 4(, %ebx, 8)
2:	sti
	hlt
	cli
	cmpl	$0, IRQ_FLAG_GPA
	je	2b
	mov	IRQ_TSC_GPA, %eax
	mov	IRQ_TSC_GPA + 4, %edx
	sub	IRQ_DEADLINE_GPA, %eax
	sbb	IRQ_DEADLINE_GPA + 4, %edx
	mov	%eax, IRQ_LAT_GPA(, %ebx, 8)
	mov	%edx, IRQ_LAT_GPA + 4(, %ebx, 8)
	inc	%ebx
	cmp	IRQ_SHOTS_GPA, %ebx
	jb	1b
	jmp	done

ping:
	out	%al, $IRQ_PORT_READY
	xor	%ebx, %ebx
1:	cli
	movl	$0, IRQ_FLAG_GPA
	rdtsc
	mov	%eax, %edi		/* the start; the handlers keep EDI, EBP */
	mov	%edx, %ebp
	mov	$MSR_X2APIC_ICR, %ecx
	mov	$IRQ_VEC_PONG, %eax	/* fixed, physical, no shorthand */
	mov	$1, %edx		/* to x2APIC ID 1 */
	wrmsr
2:	sti
	hlt
	cli
	cmpl	$0, IRQ_FLAG_GPA
	je	2b
	mov	IRQ_TSC_GPA, %eax
	mov	IRQ_TSC_GPA + 4, %edx
	sub	%edi, %eax
	sbb	%ebp, %edx
	mov	%eax, IRQ_LAT_GPA(, %ebx, 8)
	mov	%edx, IRQ_LAT_GPA + 4(, %ebx, 8)
	inc	%ebx
	cmp	IRQ_SHOTS_GPA, %ebx
	jb	1b
	movl	$1, IRQ_STOP_GPA	/* pong: leave at the next IPI */
	mov	$MSR_X2APIC_ICR, %ecx
	mov	$IRQ_VEC_PONG, %eax
	mov	$1, %edx
	wrmsr
done:
	out	%al, $IRQ_PORT_DONE
	jmp	done

pong:
	out	%al, $IRQ_PORT_READY
1:	sti
	hlt
	cli
	cmpl	$0, IRQ_STOP_GPA
	je	1b
	jmp	done

/* Timer, or pong's answer: the TSC first, then the flag, then EOI. */
irq_guest_record:
	push	%eax
	push	%edx
	rdtsc
	mov	%eax, IRQ_TSC_GPA
	mov	%edx, IRQ_TSC_GPA + 4
	movl	$1, IRQ_FLAG_GPA
	push	%ecx
	mov	$MSR_X2APIC_EOI, %ecx
	xor	%eax, %eax
	xor	%edx, %edx
	wrmsr
	pop	%ecx
	pop	%edx
	pop	%eax
	iret

/* vCPU 1: EOI, then answer vCPU 0. */
irq_guest_pong_irq:
	push	%eax
	push	%ecx
	push	%edx
	mov	$MSR_X2APIC_EOI, %ecx
	xor	%eax, %eax
	xor	%edx, %edx
	wrmsr
	mov	$MSR_X2APIC_ICR, %ecx
	mov	$IRQ_VEC_RECORD, %eax
	xor	%edx, %edx		/* to x2APIC ID 0 */
	wrmsr
	pop	%edx
	pop	%ecx
	pop	%eax
	iret

/* The VMM's nudge: EOI, nothing else. */
irq_guest_nudge:
	push	%eax
	push	%ecx
	push	%edx
	mov	$MSR_X2APIC_EOI, %ecx
	xor	%eax, %eax
	xor	%edx, %edx
	wrmsr
	pop	%edx
	pop	%ecx
	pop	%eax
	iret

/* A spurious interrupt takes no EOI. */
irq_guest_spurious:
	iret

irq_guest_fault:
	out	%al, $IRQ_PORT_FAULT
	jmp	irq_guest_fault
irq_guest_end:
	.code64
	.section .note.GNU-stack, "", @progbits
