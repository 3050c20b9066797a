/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lvmm-irq-bench's guest (irq-guest.S) and its VMM agree on these: where
 * the VMM puts the descriptor tables and the orders, where the guest
 * leaves its samples, the vectors and the ports.
 */
#ifndef IRQ_GUEST_H
#define IRQ_GUEST_H

#define IRQ_GDT_GPA		0x0500	/* null, code 0x08, data 0x10 */
#define IRQ_IDT_GPA		0x0600	/* 256 interrupt gates */
#define IRQ_CODE_GPA		0x1000
#define IRQ_MODE_GPA		0x2000	/* u32: IRQ_MODE_* */
#define IRQ_SHOTS_GPA		0x2004	/* u32: samples to take */
#define IRQ_DELTA_GPA		0x2008	/* u32: timer: TSC ticks to the deadline */
#define IRQ_STOP_GPA		0x200c	/* u32: ping sets it: pong leaves */
#define IRQ_FLAG_GPA		0x2010	/* u32: the record handler ran */
#define IRQ_TSC_GPA		0x2018	/* u64: the TSC in the record handler */
#define IRQ_DEADLINE_GPA	0x2020	/* u64: timer: the deadline armed */
#define IRQ_LAT_GPA		0x3000	/* s64 per shot: handler TSC less start */
#define IRQ_MARGIN_GPA		0x5000	/* s64 per shot: timer: HLT less deadline */
#define IRQ_MAX_SHOTS		1000
#define IRQ_STACK0		0x8000	/* vCPU 0's ESP */
#define IRQ_STACK1		0x9000	/* vCPU 1's */

/* ESI at entry */
#define IRQ_ROLE_MAIN		0	/* vCPU 0: the timer, or ping */
#define IRQ_ROLE_PONG		1	/* vCPU 1: answers ping's IPIs */

#define IRQ_MODE_TIMER		0
#define IRQ_MODE_IPI		1

#define IRQ_VEC_RECORD		0x40	/* timer and pong's answer: read the TSC */
#define IRQ_VEC_PONG		0x41	/* ping's IPI to vCPU 1 */
#define IRQ_VEC_NUDGE		0x42	/* the VMM's, to end a lost wake-up */
#define IRQ_VEC_SPURIOUS	0xff

#define IRQ_PORT_READY		0x11	/* APIC set up */
#define IRQ_PORT_DONE		0x12	/* every shot taken (pong: stopped) */
#define IRQ_PORT_FAULT		0x13	/* an exception or an unexpected vector */

#ifndef __ASSEMBLY__
#include <stdint.h>

/* The code, in the bench's binary: copied to IRQ_CODE_GPA. */
extern const uint8_t irq_guest_code[], irq_guest_end[];
/* Its interrupt handlers, for the IDT the VMM writes. */
extern const uint8_t irq_guest_record[], irq_guest_pong_irq[],
	irq_guest_nudge[], irq_guest_spurious[], irq_guest_fault[];
#endif

#endif /* IRQ_GUEST_H */
