// SPDX-License-Identifier: GPL-2.0-only
/*
 * The in-kernel local APIC (Documentation/irqchip.rst): one per vCPU of a
 * VM that asked for it with LVMM_CREATE_IRQCHIP.  Vendor-neutral: the
 * backend asks it which vector to inject and tells it what the guest took,
 * and the RUN loop lets a halted vCPU sleep here.
 *
 * Who touches what:
 * - IRR, and the pending NMI/INIT/SIPI bits, are set by anyone (other
 *   vCPUs' IPIs, the timer in hard IRQ context, the vCPU's own ioctls)
 *   with atomic bit operations, followed by a kick of the vCPU.
 * - Everything else is the vCPU's: its thread in RUN, or its ioctls,
 *   both under vcpu->mutex.  The timer callback only sets IRR, clears a
 *   fired TSC deadline and moves its own expiry; the vCPU's thread
 *   cancels it (waiting for a running callback) before it rearms it.
 */

#include <linux/hrtimer.h>
#include <linux/kernel.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/rcuwait.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/sched/stat.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/apicdef.h>
#include <asm/msr-index.h>
#include <asm/tsc.h>

#include "lvmm.h"

static unsigned int halt_poll_ns = 20000;
module_param(halt_poll_ns, uint, 0644);
MODULE_PARM_DESC(halt_poll_ns,
		 "ns a halted vCPU polls for a wake-up before it sleeps (max 1000000)");

#define LAPIC_VERSION		0x00050014	/* 6 LVT entries, integrated */
#define LAPIC_PERIOD_MIN_NS	(200 * NSEC_PER_USEC)
/* A TSC deadline further away than a century fires after one. */
#define LAPIC_TIMER_MAX_NS	(100ULL * 365 * 86400 * NSEC_PER_SEC)

#define LAPIC_LVT_MASKED	BIT(16)
#define LAPIC_LVT_TIMER_MODE	(BIT(17) | BIT(18))
#define LAPIC_TIMER_PERIODIC	BIT(17)
#define LAPIC_TIMER_DEADLINE	BIT(18)

#define LAPIC_ICR_DS		BIT(12)		/* delivery status */
#define LAPIC_ICR_LOGICAL	BIT(11)
#define LAPIC_ICR_LEVEL		BIT(14)
#define LAPIC_ICR_TRIGGER	BIT(15)
#define LAPIC_DM(icr)		(((icr) >> 8) & 7)
#define LAPIC_SH(icr)		(((icr) >> 18) & 3)

enum { DM_FIXED, DM_LOWEST, DM_SMI, DM_RSVD, DM_NMI, DM_INIT, DM_SIPI };
enum { SH_NONE, SH_SELF, SH_ALL, SH_OTHERS };

/* ESR bits, set in lapic->esr with atomic bit operations */
#define ESR_SEND_ILLEGAL	5
#define ESR_RECV_ILLEGAL	6

/* lapic->pending bits */
#define LAPIC_PEND_NMI		0
#define LAPIC_PEND_INIT		1
#define LAPIC_PEND_SIPI		2
#define LAPIC_SIPI_TAKEN	3	/* a sender owns sipi_vector */

#define X2APIC_MSR_BASE		0x800
#define X2APIC_MSR_LAST		0x8ff

static inline u32 lapic_get(struct lvmm_lapic *a, u32 reg)
{
	return READ_ONCE(a->regs[reg >> 2]);
}

static inline void lapic_set(struct lvmm_lapic *a, u32 reg, u32 val)
{
	WRITE_ONCE(a->regs[reg >> 2], val);
}

/* IRR, ISR and TMR are 8 registers of 32 bits, 16 bytes apart. */
static inline unsigned long *lapic_vec_word(struct lvmm_lapic *a, u32 base,
					    u8 vec)
{
	return (unsigned long *)&a->regs[(base + (vec >> 5) * 0x10) >> 2];
}

/* The highest vector set in a 256-bit register, or -1. */
static int lapic_highest(struct lvmm_lapic *a, u32 base)
{
	int i;

	for (i = 7; i >= 0; i--) {
		u32 w = lapic_get(a, base + i * 0x10);

		if (w)
			return i * 32 + __fls(w);
	}
	return -1;
}

static bool lapic_x2apic(struct lvmm_lapic *a)
{
	return a->vcpu->apic_base & X2APIC_ENABLE;
}

static bool lapic_hw_enabled(struct lvmm_lapic *a)
{
	return a->vcpu->apic_base & MSR_IA32_APICBASE_ENABLE;
}

static bool lapic_sw_enabled(struct lvmm_lapic *a)
{
	return lapic_get(a, APIC_SPIV) & APIC_SPIV_APIC_ENABLED;
}

static u32 lapic_id(struct lvmm_lapic *a)
{
	return lapic_x2apic(a) ? a->vcpu->id : lapic_get(a, APIC_ID) >> 24;
}

/* ---- priorities ----------------------------------------------------------- */

static void lapic_update_ppr(struct lvmm_lapic *a)
{
	u32 tpr = lapic_get(a, APIC_TASKPRI);
	int isr = lapic_highest(a, APIC_ISR);
	u32 isrv = isr < 0 ? 0 : isr;

	lapic_set(a, APIC_PROCPRI,
		  (tpr & 0xf0) >= (isrv & 0xf0) ? tpr & 0xff : isrv & 0xf0);
}

/* The vector to deliver next, if the guest can take one: > PPR's class. */
int lvmm_lapic_next_irq(struct lvmm_vcpu *vcpu)
{
	struct lvmm_lapic *a = vcpu->lapic;
	int irr = lapic_highest(a, APIC_IRR);

	if (irr < 0 || !lapic_hw_enabled(a))
		return -1;
	if ((irr & 0xf0) <= (lapic_get(a, APIC_PROCPRI) & 0xf0))
		return -1;
	return irr;
}

/* A vector is requested but the TPR holds it back: CR8 writes must exit. */
bool lvmm_lapic_tpr_blocks(struct lvmm_vcpu *vcpu)
{
	struct lvmm_lapic *a = vcpu->lapic;
	int irr = lapic_highest(a, APIC_IRR);
	int isr = lapic_highest(a, APIC_ISR);

	return irr >= 0 && (irr & 0xf0) > (max(isr, 0) & 0xf0) &&
	       (irr & 0xf0) <= (lapic_get(a, APIC_TASKPRI) & 0xf0);
}

/* The guest took @vec: it is in service now. */
void lvmm_lapic_ack(struct lvmm_vcpu *vcpu, int vec)
{
	struct lvmm_lapic *a = vcpu->lapic;

	clear_bit(vec & 31, lapic_vec_word(a, APIC_IRR, vec));
	__set_bit(vec & 31, lapic_vec_word(a, APIC_ISR, vec));
	lapic_update_ppr(a);
}

u8 lvmm_lapic_get_cr8(struct lvmm_vcpu *vcpu)
{
	return lapic_get(vcpu->lapic, APIC_TASKPRI) >> 4;
}

/* CR8 as the guest left it; TPR bits 3-0 survive only if it is unchanged. */
void lvmm_lapic_set_cr8(struct lvmm_vcpu *vcpu, u8 cr8)
{
	struct lvmm_lapic *a = vcpu->lapic;

	if ((lapic_get(a, APIC_TASKPRI) >> 4) == (cr8 & 0xf))
		return;
	lapic_set(a, APIC_TASKPRI, (cr8 & 0xf) << 4);
	lapic_update_ppr(a);
}

static void lapic_eoi(struct lvmm_lapic *a)
{
	int isr = lapic_highest(a, APIC_ISR);

	if (isr < 0)
		return;
	__clear_bit(isr & 31, lapic_vec_word(a, APIC_ISR, isr));
	lapic_update_ppr(a);
	/* A level-triggered interrupt's EOI goes to the I/O APIC. */
	if (test_bit(isr & 31, lapic_vec_word(a, APIC_TMR, isr)))
		lvmm_ioapic_eoi(a->vcpu->vm, isr);
}

/* ---- accepting interrupts ------------------------------------------------- */

/* Request @vec in @vcpu's APIC and get the vCPU to look: any context. */
static void lapic_request(struct lvmm_vcpu *vcpu, u8 vec, bool level)
{
	struct lvmm_lapic *a = vcpu->lapic;

	/* TMR says how the vector was triggered, for the EOI. */
	if (level)
		set_bit(vec & 31, lapic_vec_word(a, APIC_TMR, vec));
	else
		clear_bit(vec & 31, lapic_vec_word(a, APIC_TMR, vec));
	set_bit(vec & 31, lapic_vec_word(a, APIC_IRR, vec));
	lvmm_vcpu_kick(vcpu, LVMM_REQ_KICK);
}

static void lapic_post(struct lvmm_vcpu *vcpu, int bit)
{
	set_bit(bit, &vcpu->lapic->pending);
	lvmm_vcpu_kick(vcpu, LVMM_REQ_KICK);
}

/*
 * Deliver an interrupt of delivery mode @dm to @vcpu (an IPI, the I/O
 * APIC's, or the VMM's LVMM_INTERRUPT).  Called by the sender; @vcpu may
 * be running anywhere.  False if the APIC turned it away.
 */
static bool lapic_accept(struct lvmm_vcpu *src, struct lvmm_vcpu *vcpu,
			 u32 dm, u8 vec, bool level)
{
	struct lvmm_lapic *a = vcpu->lapic;

	if (!lapic_hw_enabled(a))
		return false;
	switch (dm) {
	case DM_FIXED:
	case DM_LOWEST:
		if (!lapic_sw_enabled(a))
			return false;
		if (vec < 16) {
			set_bit(ESR_RECV_ILLEGAL, &a->esr);
			return false;
		}
		lapic_request(vcpu, vec, level);
		break;
	case DM_NMI:
		lapic_post(vcpu, LAPIC_PEND_NMI);
		break;
	case DM_INIT:
		/* A start-up sent before the INIT is void: drop it. */
		clear_bit(LAPIC_PEND_SIPI, &a->pending);
		clear_bit(LAPIC_SIPI_TAKEN, &a->pending);
		lapic_post(vcpu, LAPIC_PEND_INIT);
		break;
	case DM_SIPI:
		/*
		 * One start-up at a time: a SIPI that comes before the vCPU
		 * took the last one is the second of INIT-SIPI-SIPI, which
		 * the architecture ignores once the first has started it.
		 */
		if (test_and_set_bit(LAPIC_SIPI_TAKEN, &a->pending))
			break;
		WRITE_ONCE(a->sipi_vector, vec);
		/* The vector before the bit: pairs with lvmm_lapic_events(). */
		smp_mb__before_atomic();
		lapic_post(vcpu, LAPIC_PEND_SIPI);
		break;
	default:
		return false;	/* SMI and reserved: not emulated */
	}
	return true;
}

int lvmm_lapic_interrupt(struct lvmm_vcpu *vcpu, u8 vec)
{
	lapic_accept(vcpu, vcpu, DM_FIXED, vec, false);
	return 0;
}

/* ---- IPIs ----------------------------------------------------------------- */

static bool lapic_match_logical(struct lvmm_lapic *a, u32 dest, bool x2)
{
	u32 ldr = lapic_get(a, APIC_LDR);

	if (x2) {
		if (dest == 0xffffffff)
			return true;
		return (dest >> 16) == (ldr >> 16) && (dest & ldr & 0xffff);
	}
	dest &= 0xff;
	if (dest == 0xff)
		return true;
	ldr >>= 24;
	if ((lapic_get(a, APIC_DFR) >> 28) == 0xf)	/* flat */
		return dest & ldr;
	return (dest >> 4) == (ldr >> 4) && (dest & ldr & 0xf);	/* cluster */
}

/* @src NULL: the I/O APIC's message, with an 8-bit destination. */
static bool lapic_match(struct lvmm_lapic *src, struct lvmm_lapic *dst,
			u32 icr, u32 dest)
{
	bool x2 = src && lapic_x2apic(src);

	switch (src ? LAPIC_SH(icr) : SH_NONE) {
	case SH_SELF:
		return src == dst;
	case SH_ALL:
		return true;
	case SH_OTHERS:
		return src != dst;
	}
	if (icr & LAPIC_ICR_LOGICAL)
		return lapic_match_logical(dst, dest, x2);
	if (x2)
		return dest == 0xffffffff || dest == lapic_id(dst);
	return (dest & 0xff) == 0xff || (dest & 0xff) == lapic_id(dst);
}

/*
 * Send the interrupt @icr describes to the APICs @dest names, from @src's
 * APIC or (NULL) from the I/O APIC.  Returns how many took it: a
 * level-triggered interrupt nobody took waits for no EOI.
 */
static int lapic_deliver(struct lvmm_vm *vm, struct lvmm_lapic *src,
			 u32 icr, u32 dest)
{
	u32 dm = LAPIC_DM(icr);
	int i, n = 0;

	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		/* Pairs with smp_store_release() in lvmm_vcpu_add(). */
		struct lvmm_vcpu *v = smp_load_acquire(&vm->vcpus[i]);

		if (!v || !lapic_match(src, v->lapic, icr, dest))
			continue;
		/*
		 * Lowest priority: the architecture lets the APICs choose
		 * among the destinations; lvmm takes the first that accepts
		 * fixed interrupts.
		 */
		if (dm == DM_LOWEST && (!lapic_hw_enabled(v->lapic) ||
					!lapic_sw_enabled(v->lapic)))
			continue;
		if (!lapic_accept(src ? src->vcpu : NULL, v, dm, icr & 0xff,
				  icr & LAPIC_ICR_TRIGGER))
			continue;
		n++;
		if (dm == DM_LOWEST)
			break;
	}
	return n;
}

/* The I/O APIC's message (ioapic.c): under its lock. */
int lvmm_lapic_deliver(struct lvmm_vm *vm, u32 dest, bool logical, u32 dm,
		       u8 vec, bool level)
{
	u32 icr = vec | dm << 8 | (logical ? LAPIC_ICR_LOGICAL : 0) |
		  (level ? LAPIC_ICR_TRIGGER | LAPIC_ICR_LEVEL : 0);

	return lapic_deliver(vm, NULL, icr, dest);
}

static void lapic_send_ipi(struct lvmm_lapic *a, u32 icr, u32 dest)
{
	u32 dm = LAPIC_DM(icr);

	if ((dm == DM_FIXED || dm == DM_LOWEST) && (icr & 0xff) < 16) {
		set_bit(ESR_SEND_ILLEGAL, &a->esr);
		return;
	}
	/* INIT level de-assert: does nothing since the Pentium 4. */
	if (dm == DM_INIT && (icr & LAPIC_ICR_TRIGGER) &&
	    !(icr & LAPIC_ICR_LEVEL))
		return;
	lapic_deliver(a->vcpu->vm, a, icr, dest);
}

/* ---- the timer ------------------------------------------------------------ */

static u32 lapic_timer_mode(struct lvmm_lapic *a)
{
	return lapic_get(a, APIC_LVTT) & LAPIC_LVT_TIMER_MODE;
}

static u32 lapic_divide(struct lvmm_lapic *a)
{
	u32 v = lapic_get(a, APIC_TDCR);

	return 1U << ((((v & 3) | ((v & 8) >> 1)) + 1) & 7);
}

static void lapic_timer_fire(struct lvmm_lapic *a)
{
	u32 lvt = lapic_get(a, APIC_LVTT);

	if (lvt & LAPIC_LVT_MASKED)
		return;
	if ((lvt & 0xff) < 16)
		set_bit(ESR_RECV_ILLEGAL, &a->esr);
	else
		lapic_request(a->vcpu, lvt & 0xff, false);
}

static enum hrtimer_restart lapic_timer_fn(struct hrtimer *t)
{
	struct lvmm_lapic *a = container_of(t, struct lvmm_lapic, timer);

	lapic_timer_fire(a);
	if (lapic_timer_mode(a) == LAPIC_TIMER_PERIODIC && a->period_ns) {
		hrtimer_forward_now(t, ns_to_ktime(a->period_ns));
		return HRTIMER_RESTART;
	}
	/* A TSC deadline reads 0 once it has fired. */
	WRITE_ONCE(a->tsc_deadline, 0);
	return HRTIMER_NORESTART;
}

static void lapic_timer_stop(struct lvmm_lapic *a)
{
	hrtimer_cancel(&a->timer);
	a->period_ns = 0;
}

/* One-shot or periodic, @left ns from now; the period from TMICT. */
static void lapic_timer_start(struct lvmm_lapic *a, u64 left)
{
	u64 period = (u64)lapic_get(a, APIC_TMICT) * lapic_divide(a);

	lapic_timer_stop(a);
	if (!period)
		return;
	if (lapic_timer_mode(a) == LAPIC_TIMER_PERIODIC) {
		a->period_ns = max_t(u64, period, LAPIC_PERIOD_MIN_NS);
		left = max_t(u64, left, LAPIC_PERIOD_MIN_NS);
	}
	hrtimer_start(&a->timer, ktime_add_ns(ktime_get(), left),
		      HRTIMER_MODE_ABS_HARD);
}

static u32 lapic_current_count(struct lvmm_lapic *a)
{
	s64 left;
	u64 late;

	if (lapic_timer_mode(a) == LAPIC_TIMER_DEADLINE ||
	    !hrtimer_active(&a->timer))
		return 0;
	left = ktime_to_ns(hrtimer_get_remaining(&a->timer));
	if (left <= 0) {
		/* Due, its callback not run yet: a one-shot is at 0 ... */
		if (!a->period_ns)
			return 0;
		/* ... a periodic one has reloaded, as often as it took. */
		div64_u64_rem(-left, a->period_ns, &late);
		left = a->period_ns - late;
	}
	return min_t(u64, div_u64(left, lapic_divide(a)),
		     lapic_get(a, APIC_TMICT));
}

static u64 lapic_guest_tsc(struct lvmm_vcpu *vcpu)
{
	u64 tsc = 0;

	lvmm_arch->get_msr(vcpu, MSR_IA32_TSC, &tsc);
	return tsc;
}

/* Arm the TSC-deadline timer for guest TSC @deadline (0: disarm). */
static void lapic_set_deadline(struct lvmm_lapic *a, u64 deadline)
{
	u64 now, ns;

	if (lapic_timer_mode(a) != LAPIC_TIMER_DEADLINE)
		return;		/* ignored in the other modes */
	lapic_timer_stop(a);
	WRITE_ONCE(a->tsc_deadline, deadline);
	if (!deadline)
		return;
	now = lapic_guest_tsc(a->vcpu);
	if (deadline <= now || !tsc_khz) {
		WRITE_ONCE(a->tsc_deadline, 0);
		lapic_timer_fire(a);
		return;
	}
	/*
	 * At most a century away: ktime_t must not overflow.  Tested
	 * before the conversion, whose 128-by-64 division faults when the
	 * quotient does not fit in 64 bits (a TSC below 1 GHz and a
	 * deadline near 2^64).
	 */
	if (div_u64(deadline - now, tsc_khz) >=
	    div_u64(LAPIC_TIMER_MAX_NS, USEC_PER_SEC))
		ns = LAPIC_TIMER_MAX_NS;
	else
		ns = mul_u64_u32_div(deadline - now, USEC_PER_SEC, tsc_khz);
	hrtimer_start(&a->timer, ktime_add_ns(ktime_get(), ns),
		      HRTIMER_MODE_ABS_HARD);
}

/* ---- registers ------------------------------------------------------------ */

/* What a write may change in each register; 0: not writable. */
static u32 lapic_write_mask(struct lvmm_lapic *a, u32 reg)
{
	bool x2 = lapic_x2apic(a);

	switch (reg) {
	case APIC_ID:
		return x2 ? 0 : 0xff000000;
	case APIC_TASKPRI:
		return 0xff;
	case APIC_LDR:
		return x2 ? 0 : 0xff000000;
	case APIC_DFR:
		return x2 ? 0 : 0xf0000000;
	case APIC_SPIV:
		return 0x3ff;
	case APIC_ESR:
		return x2 ? 0 : 0xffffffff;	/* x2APIC: must write 0 */
	case APIC_ICR:
		return x2 ? 0x000ccfff : 0x000cdfff;
	case APIC_ICR2:
		return x2 ? 0 : 0xff000000;
	case APIC_LVTT:
		return 0x000700ff;
	case APIC_LVTTHMR:
	case APIC_LVTPC:
		return 0x000107ff;
	case APIC_LVT0:
	case APIC_LVT1:
		return 0x0001a7ff;
	case APIC_LVTERR:
		return 0x000100ff;
	case APIC_TMICT:
		return 0xffffffff;
	case APIC_TDCR:
		return 0xb;
	default:
		return 0;
	}
}

static bool lapic_is_lvt(u32 reg)
{
	return reg == APIC_LVTT || reg == APIC_LVTTHMR || reg == APIC_LVTPC ||
	       reg == APIC_LVT0 || reg == APIC_LVT1 || reg == APIC_LVTERR;
}

static void lapic_mask_lvts(struct lvmm_lapic *a)
{
	static const u32 lvts[] = { APIC_LVTT, APIC_LVTTHMR, APIC_LVTPC,
				    APIC_LVT0, APIC_LVT1, APIC_LVTERR };
	int i;

	for (i = 0; i < ARRAY_SIZE(lvts); i++)
		lapic_set(a, lvts[i], lapic_get(a, lvts[i]) | LAPIC_LVT_MASKED);
}

/* A guest write of @val to @reg, already masked: do what it says. */
static void lapic_write(struct lvmm_lapic *a, u32 reg, u32 val)
{
	u32 old = lapic_get(a, reg);

	switch (reg) {
	case APIC_TASKPRI:
		lapic_set(a, reg, val);
		lapic_update_ppr(a);
		break;
	case APIC_EOI:
		lapic_eoi(a);
		break;
	case APIC_DFR:
		lapic_set(a, reg, val | 0x0fffffff);
		break;
	case APIC_SPIV:
		lapic_set(a, reg, val);
		if (!(val & APIC_SPIV_APIC_ENABLED))
			lapic_mask_lvts(a);
		break;
	case APIC_ESR:
		/* A write latches the errors seen since the last one. */
		lapic_set(a, reg, xchg(&a->esr, 0));
		break;
	case APIC_ICR:
		lapic_set(a, reg, val);
		lapic_send_ipi(a, val, lapic_x2apic(a) ? a->icr_dest :
					lapic_get(a, APIC_ICR2) >> 24);
		break;
	case APIC_LVTT:
		if (!lapic_sw_enabled(a))
			val |= LAPIC_LVT_MASKED;
		if ((val & LAPIC_LVT_TIMER_MODE) == LAPIC_LVT_TIMER_MODE)
			val &= ~LAPIC_LVT_TIMER_MODE;	/* reserved: one-shot */
		lapic_set(a, reg, val);
		if ((old ^ val) & LAPIC_LVT_TIMER_MODE) {
			lapic_timer_stop(a);
			lapic_set(a, APIC_TMICT, 0);
			WRITE_ONCE(a->tsc_deadline, 0);
		}
		break;
	case APIC_TMICT:
		if (lapic_timer_mode(a) == LAPIC_TIMER_DEADLINE)
			break;
		lapic_set(a, reg, val);
		lapic_timer_start(a, (u64)val * lapic_divide(a));
		break;
	default:
		if (lapic_is_lvt(reg) && !lapic_sw_enabled(a))
			val |= LAPIC_LVT_MASKED;
		lapic_set(a, reg, val);
		break;
	}
}

static u32 lapic_read(struct lvmm_lapic *a, u32 reg)
{
	switch (reg) {
	case APIC_ID:
		return lapic_x2apic(a) ? a->vcpu->id : lapic_get(a, reg);
	case APIC_LVR:
		return LAPIC_VERSION;
	case APIC_TMCCT:
		return lapic_current_count(a);
	case APIC_ICR:
		return lapic_get(a, reg) & ~LAPIC_ICR_DS;
	case APIC_ARBPRI:
	case APIC_EOI:
	case APIC_RRR:
	case APIC_SELF_IPI:
		return 0;
	default:
		return reg < APIC_TDCR + 0x10 ? lapic_get(a, reg) : 0;
	}
}

/* ---- xAPIC: the MMIO page --------------------------------------------------- */

/*
 * An access to guest-physical @gpa that lvmm could not map: the APIC's if
 * it is at the APIC page in xAPIC mode.  Returns true if handled, with a
 * read's value in *@data.
 */
bool lvmm_lapic_mmio(struct lvmm_vcpu *vcpu, u64 gpa, bool write, u64 *data,
		     unsigned int size)
{
	struct lvmm_lapic *a = vcpu->lapic;
	u32 off = gpa & (PAGE_SIZE - 1), reg = off & 0xff0, byte = off & 0xf;
	u32 mask;

	if (!a || !lapic_hw_enabled(a) || lapic_x2apic(a) ||
	    (gpa & PAGE_MASK) != (vcpu->apic_base & PAGE_MASK) ||
	    off + size > PAGE_SIZE)
		return lvmm_ioapic_mmio(vcpu, gpa, write, data, size);
	if (!write) {
		*data = byte < 4 ? lapic_read(a, reg) >> (8 * byte) : 0;
		return true;
	}
	/* 32-bit writes at a register's offset; an 8-byte one is as 32. */
	if (byte || size < 4 || reg == APIC_SELF_IPI)
		return true;
	mask = lapic_write_mask(a, reg);
	if (mask || reg == APIC_EOI)
		lapic_write(a, reg, (u32)*data & mask);
	return true;
}

/* ---- x2APIC: the MSRs ------------------------------------------------------- */

bool lvmm_lapic_msr(struct lvmm_vcpu *vcpu, u32 index)
{
	return vcpu->lapic && ((index >= X2APIC_MSR_BASE &&
				index <= X2APIC_MSR_LAST) ||
			       index == MSR_IA32_TSC_DEADLINE);
}

/* The x2APIC registers, readable (r) and writable (w). */
static int x2apic_access(u32 reg, bool write)
{
	switch (reg) {
	case APIC_ID: case APIC_LVR: case APIC_PROCPRI: case APIC_LDR:
	case APIC_TMCCT:
		return write ? -EINVAL : 0;
	case APIC_EOI: case APIC_SELF_IPI:
		return write ? 0 : -EINVAL;
	case APIC_TASKPRI: case APIC_SPIV: case APIC_ESR: case APIC_ICR:
	case APIC_LVTT: case APIC_LVTTHMR: case APIC_LVTPC: case APIC_LVT0:
	case APIC_LVT1: case APIC_LVTERR: case APIC_TMICT: case APIC_TDCR:
		return 0;
	default:
		if (reg >= APIC_ISR && reg < APIC_ESR)
			return write ? -EINVAL : 0;	/* ISR, TMR, IRR */
		return -EINVAL;
	}
}

/* -EINVAL: the guest gets a #GP, as the architecture says. */
int lvmm_lapic_get_msr(struct lvmm_vcpu *vcpu, u32 index, u64 *data)
{
	struct lvmm_lapic *a = vcpu->lapic;
	u32 reg = (index - X2APIC_MSR_BASE) << 4;

	if (index == MSR_IA32_TSC_DEADLINE) {
		*data = lapic_timer_mode(a) == LAPIC_TIMER_DEADLINE ?
			READ_ONCE(a->tsc_deadline) : 0;
		return 0;
	}
	if (!lapic_x2apic(a) || x2apic_access(reg, false))
		return -EINVAL;
	*data = lapic_read(a, reg);
	if (reg == APIC_ICR)
		*data |= (u64)a->icr_dest << 32;
	return 0;
}

int lvmm_lapic_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 data)
{
	struct lvmm_lapic *a = vcpu->lapic;
	u32 reg = (index - X2APIC_MSR_BASE) << 4, mask;

	if (index == MSR_IA32_TSC_DEADLINE) {
		lapic_set_deadline(a, data);
		return 0;
	}
	if (!lapic_x2apic(a) || x2apic_access(reg, true))
		return -EINVAL;
	switch (reg) {
	case APIC_EOI:
		if (data)
			return -EINVAL;
		lapic_eoi(a);
		return 0;
	case APIC_SELF_IPI:
		if (data & ~0xffULL)
			return -EINVAL;
		lapic_accept(vcpu, vcpu, DM_FIXED, data, false);
		return 0;
	case APIC_ICR:
		if ((u32)data & ~lapic_write_mask(a, reg))
			return -EINVAL;
		a->icr_dest = data >> 32;
		lapic_write(a, reg, (u32)data);
		return 0;
	}
	mask = lapic_write_mask(a, reg);
	if (data & ~(u64)mask)
		return -EINVAL;
	lapic_write(a, reg, data);
	return 0;
}

/* ---- the APIC base MSR ------------------------------------------------------ */

static void lapic_enter_x2apic(struct lvmm_lapic *a)
{
	u32 id = a->vcpu->id;

	lapic_set(a, APIC_LDR, ((id >> 4) << 16) | BIT(id & 0xf));
}

/* Whether the APIC base may become @data: 0 or -EINVAL, nothing changed. */
int lvmm_lapic_check_base(struct lvmm_vcpu *vcpu, u64 data)
{
	u64 old = vcpu->apic_base;
	bool en = data & MSR_IA32_APICBASE_ENABLE, x2 = data & X2APIC_ENABLE;

	if (data & ~(PAGE_MASK | MSR_IA32_APICBASE_BSP |
		     MSR_IA32_APICBASE_ENABLE | X2APIC_ENABLE) ||
	    data >= (1ULL << 52))
		return -EINVAL;
	/*
	 * x2APIC needs EN, is entered only from xAPIC and left only to
	 * disabled (Intel SDM, "x2APIC State Transitions").
	 */
	if ((x2 && !en) || (en && !x2 && (old & X2APIC_ENABLE)) ||
	    (x2 && !(old & MSR_IA32_APICBASE_ENABLE)))
		return -EINVAL;
	return 0;
}

int lvmm_lapic_set_base(struct lvmm_vcpu *vcpu, u64 data)
{
	struct lvmm_lapic *a = vcpu->lapic;
	u64 old = vcpu->apic_base;
	bool en = data & MSR_IA32_APICBASE_ENABLE, x2 = data & X2APIC_ENABLE;
	int r = lvmm_lapic_check_base(vcpu, data);

	if (r)
		return r;
	vcpu->apic_base = data;
	if (x2 && !(old & X2APIC_ENABLE))
		lapic_enter_x2apic(a);
	if (!en && (old & MSR_IA32_APICBASE_ENABLE)) {
		lapic_timer_stop(a);
		WRITE_ONCE(a->tsc_deadline, 0);
	}
	return 0;
}

/* ---- reset, INIT and SIPI ----------------------------------------------- */

static void lapic_reset(struct lvmm_lapic *a)
{
	u32 reg;

	lapic_timer_stop(a);
	memset(a->regs, 0, sizeof(a->regs));
	WRITE_ONCE(a->esr, 0);
	a->icr_dest = 0;
	WRITE_ONCE(a->tsc_deadline, 0);
	lapic_set(a, APIC_ID, a->vcpu->id << 24);
	lapic_set(a, APIC_DFR, 0xffffffff);
	lapic_set(a, APIC_SPIV, 0xff);
	for (reg = APIC_LVTT; reg <= APIC_LVTERR; reg += 0x10)
		lapic_set(a, reg, LAPIC_LVT_MASKED);
	if (lapic_x2apic(a))
		lapic_enter_x2apic(a);
}

/* INIT: the architecture's INIT state; the BSP runs again at once. */
static void lapic_init_vcpu(struct lvmm_vcpu *vcpu)
{
	struct lvmm_lapic *a = vcpu->lapic;

	lvmm_vcpu_reset(vcpu);
	lapic_reset(a);
	a->mp_state = (vcpu->apic_base & MSR_IA32_APICBASE_BSP) ?
		      LVMM_MP_STATE_RUNNABLE : LVMM_MP_STATE_WAIT_SIPI;
}

/*
 * Take what other vCPUs posted: NMI, INIT, start-up.  The vCPU's thread,
 * before it enters.
 */
void lvmm_lapic_events(struct lvmm_vcpu *vcpu)
{
	struct lvmm_lapic *a = vcpu->lapic;
	u8 vec;

	if (likely(!READ_ONCE(a->pending)))
		return;
	if (test_and_clear_bit(LAPIC_PEND_NMI, &a->pending))
		vcpu->nmi_pending = true;
	if (test_and_clear_bit(LAPIC_PEND_INIT, &a->pending))
		lapic_init_vcpu(vcpu);
	if (test_and_clear_bit(LAPIC_PEND_SIPI, &a->pending)) {
		/* Pairs with smp_mb__before_atomic() in lapic_accept(). */
		smp_mb__after_atomic();
		vec = READ_ONCE(a->sipi_vector);
		clear_bit(LAPIC_SIPI_TAKEN, &a->pending);
		if (a->mp_state == LVMM_MP_STATE_WAIT_SIPI) {
			lvmm_vcpu_start_at(vcpu, vec);
			a->mp_state = LVMM_MP_STATE_RUNNABLE;
		}
	}
}

/* ---- HLT, and waiting for SIPI ------------------------------------------ */

/* Would the waiting vCPU run now? */
static bool lapic_wake(struct lvmm_vcpu *vcpu)
{
	struct lvmm_lapic *a = vcpu->lapic;

	if (READ_ONCE(a->pending) & (BIT(LAPIC_PEND_INIT) | BIT(LAPIC_PEND_SIPI)))
		return true;
	if (a->mp_state != LVMM_MP_STATE_HALTED)
		return false;
	/*
	 * An NMI only once the guest can take it: a vCPU halted in its NMI
	 * handler would otherwise wake, enter, halt again, and spin.
	 */
	if ((vcpu->nmi_pending || (READ_ONCE(a->pending) & BIT(LAPIC_PEND_NMI))) &&
	    lvmm_arch->vcpu_nmi_allowed(vcpu))
		return true;
	return (vcpu->rflags & X86_EFLAGS_IF) && lvmm_lapic_next_irq(vcpu) >= 0;
}

/* HLT retired: wait in the kernel unless there is something to take. */
void lvmm_lapic_halt(struct lvmm_vcpu *vcpu)
{
	vcpu->lapic->mp_state = LVMM_MP_STATE_HALTED;
	if (lapic_wake(vcpu))
		vcpu->lapic->mp_state = LVMM_MP_STATE_RUNNABLE;
}

/* Anything the RUN loop must look at: a kick, the VM's state, a signal. */
static bool lapic_wait_over(struct lvmm_vcpu *vcpu)
{
	return lapic_wake(vcpu) || test_bit(LVMM_REQ_KICK, &vcpu->requests) ||
	       test_bit(LVMM_REQ_SCHED, &vcpu->requests) ||
	       signal_pending(current);
}

/*
 * The vCPU is halted or waits for SIPI: poll briefly, then sleep until
 * the RUN loop has something to do.  Returns 1 to look again.
 */
int lvmm_lapic_wait(struct lvmm_vcpu *vcpu)
{
	struct lvmm_lapic *a = vcpu->lapic;
	u32 poll = min(READ_ONCE(halt_poll_ns), 1000000U);
	u64 start = local_clock();

	WRITE_ONCE(vcpu->state, LVMM_VCPU_STATE_HALTED);
	if (a->mp_state == LVMM_MP_STATE_HALTED && poll) {
		do {
			if (lapic_wait_over(vcpu))
				goto woken;
			cpu_relax();
			/* Nobody else may want this CPU, as in KVM's poll. */
		} while (local_clock() - start < poll && !need_resched() &&
			 single_task_running());
	}
	rcuwait_wait_event(&vcpu->wait, lapic_wait_over(vcpu),
			   TASK_INTERRUPTIBLE);
woken:
	if (lapic_wake(vcpu) && a->mp_state == LVMM_MP_STATE_HALTED)
		a->mp_state = LVMM_MP_STATE_RUNNABLE;
	WRITE_ONCE(vcpu->state, LVMM_VCPU_STATE_RUNNING);
	return 1;
}

/* ---- creation and the ABI ------------------------------------------------- */

/* The irqchip for @vm, which has no vCPU yet (also a restore's). */
int lvmm_vm_enable_irqchip(struct lvmm_vm *vm)
{
	int r = 0;

	mutex_lock(&vm->lock);
	if (vm->irqchip)
		r = -EEXIST;
	else if (vm->nr_vcpus)
		r = -EBUSY;
	else
		r = lvmm_ioapic_create(vm);
	if (!r)
		WRITE_ONCE(vm->irqchip, true);
	mutex_unlock(&vm->lock);
	return r;
}

long lvmm_vm_create_irqchip(struct lvmm_vm *vm, void __user *argp)
{
	struct lvmm_irqchip req;

	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.flags || req.pad || memchr_inv(req.reserved, 0,
					       sizeof(req.reserved)))
		return -EINVAL;
	return lvmm_vm_enable_irqchip(vm);
}

int lvmm_lapic_create(struct lvmm_vcpu *vcpu)
{
	struct lvmm_lapic *a;

	a = kzalloc(sizeof(*a), GFP_KERNEL_ACCOUNT);
	if (!a)
		return -ENOMEM;
	a->vcpu = vcpu;
	hrtimer_init(&a->timer, CLOCK_MONOTONIC, HRTIMER_MODE_ABS_HARD);
	a->timer.function = lapic_timer_fn;
	vcpu->lapic = a;
	lapic_reset(a);
	a->mp_state = (vcpu->apic_base & MSR_IA32_APICBASE_BSP) ?
		      LVMM_MP_STATE_RUNNABLE : LVMM_MP_STATE_WAIT_SIPI;
	return 0;
}

void lvmm_lapic_destroy(struct lvmm_vcpu *vcpu)
{
	if (!vcpu->lapic)
		return;
	hrtimer_cancel(&vcpu->lapic->timer);
	kfree(vcpu->lapic);
	vcpu->lapic = NULL;
}

/* The APIC in the ABI's form (LVMM_GET_LAPIC, and the stream). */
void lvmm_lapic_save(struct lvmm_vcpu *vcpu, struct lvmm_lapic_state *st)
{
	struct lvmm_lapic *a = vcpu->lapic;

	memset(st, 0, sizeof(*st));
	memcpy(st->regs, a->regs, sizeof(st->regs));
	*(u32 *)(st->regs + APIC_TMCCT) = lapic_current_count(a);
	*(u32 *)(st->regs + APIC_LVR) = LAPIC_VERSION;
	*(u32 *)(st->regs + APIC_ICR) &= ~LAPIC_ICR_DS;
	if (lapic_x2apic(a))
		*(u32 *)(st->regs + APIC_ICR2) = a->icr_dest;
	st->tsc_deadline = READ_ONCE(a->tsc_deadline);
}

long lvmm_vcpu_get_lapic(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_lapic_state *st;
	long r = 0;

	if (!vcpu->lapic)
		return -ENXIO;
	st = kmalloc(sizeof(*st), GFP_KERNEL);
	if (!st)
		return -ENOMEM;
	lvmm_lapic_save(vcpu, st);
	if (copy_to_user(argp, st, sizeof(*st)))
		r = -EFAULT;
	kfree(st);
	return r;
}

/*
 * Every register through the guest's masks; the timer rearmed, in the
 * mode of the APIC base MSR, which must be loaded before.
 */
int lvmm_lapic_load(struct lvmm_vcpu *vcpu, const struct lvmm_lapic_state *st)
{
	struct lvmm_lapic *a = vcpu->lapic;
	const u32 *in = (const u32 *)st->regs;
	u32 reg, count;

	if (st->flags || st->pad ||
	    memchr_inv(st->reserved, 0, sizeof(st->reserved)))
		return -EINVAL;
	lapic_timer_stop(a);
	for (reg = 0; reg < sizeof(a->regs); reg += 0x10) {
		u32 val = in[reg >> 2];

		if (reg >= APIC_ISR && reg < APIC_ESR)		/* ISR TMR IRR */
			/* Vectors 0-15 are never accepted, nor loaded. */
			lapic_set(a, reg, (reg - APIC_ISR) % 0x80 ? val :
					  val & ~0xffffU);
		else if (reg == APIC_ID)
			lapic_set(a, reg, val & 0xff000000);
		else if (reg == APIC_LDR)
			lapic_set(a, reg, val & 0xff000000);
		else if (reg == APIC_DFR)
			lapic_set(a, reg, val | 0x0fffffff);
		else if (reg == APIC_ICR)
			lapic_set(a, reg, val & 0x000cdfff);
		else if (reg == APIC_ESR)
			lapic_set(a, reg, val);
		else
			lapic_set(a, reg, val & lapic_write_mask(a, reg));
	}
	a->icr_dest = lapic_x2apic(a) ? in[APIC_ICR2 >> 2] : 0;
	if (lapic_x2apic(a)) {
		lapic_set(a, APIC_ICR2, 0);
		lapic_enter_x2apic(a);
	}
	if ((lapic_get(a, APIC_LVTT) & LAPIC_LVT_TIMER_MODE) == LAPIC_LVT_TIMER_MODE)
		lapic_set(a, APIC_LVTT,
			  lapic_get(a, APIC_LVTT) & ~LAPIC_LVT_TIMER_MODE);
	if (!lapic_sw_enabled(a))
		lapic_mask_lvts(a);
	lapic_update_ppr(a);
	lapic_set(a, APIC_TMCCT, 0);

	if (lapic_timer_mode(a) == LAPIC_TIMER_DEADLINE) {
		lapic_set(a, APIC_TMICT, 0);
		lapic_set_deadline(a, st->tsc_deadline);
		return 0;
	}
	WRITE_ONCE(a->tsc_deadline, 0);
	count = min(in[APIC_TMCCT >> 2], lapic_get(a, APIC_TMICT));
	/* A periodic timer never stops: at 0 it has just reloaded. */
	if (!count && lapic_timer_mode(a) == LAPIC_TIMER_PERIODIC)
		count = lapic_get(a, APIC_TMICT);
	if (count)
		lapic_timer_start(a, (u64)count * lapic_divide(a));
	return 0;
}

long lvmm_vcpu_set_lapic(struct lvmm_vcpu *vcpu, void __user *argp)
{
	struct lvmm_lapic_state *st;
	long r;

	if (!vcpu->lapic)
		return -ENXIO;
	st = memdup_user(argp, sizeof(*st));
	if (IS_ERR(st))
		return PTR_ERR(st);
	r = lvmm_lapic_load(vcpu, st);
	kfree(st);
	return r;
}

long lvmm_vcpu_mp_state(struct lvmm_vcpu *vcpu, void __user *argp, bool set)
{
	struct lvmm_mp_state mp = {};

	if (!vcpu->lapic)
		return -ENXIO;
	if (!set) {
		/* An INIT or SIPI sent and not yet taken, taken now. */
		lvmm_lapic_events(vcpu);
		mp.state = vcpu->lapic->mp_state;
		return copy_to_user(argp, &mp, sizeof(mp)) ? -EFAULT : 0;
	}
	if (copy_from_user(&mp, argp, sizeof(mp)))
		return -EFAULT;
	if (mp.flags || mp.reserved)
		return -EINVAL;
	return lvmm_lapic_set_mp_state(vcpu, mp.state);
}

int lvmm_lapic_set_mp_state(struct lvmm_vcpu *vcpu, u32 state)
{
	if (state > LVMM_MP_STATE_WAIT_SIPI)
		return -EINVAL;
	vcpu->lapic->mp_state = state;
	return 0;
}
