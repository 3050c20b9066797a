// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: the guest-mode watchdog -- no vCPU stays in guest mode for long.
 *
 * On hardware any physical interrupt ends guest mode within microseconds,
 * so the host's own timer tick bounds every stay.  An emulated CPU may not
 * keep that promise: QEMU 7.2's multi-threaded TCG has been seen to keep
 * one VMRUN for 20 s while timer interrupts and IPIs waited, and only an
 * NMI ended it (Documentation/sandbox.rst).  A CPU that takes no
 * interrupts stalls RCU and everything that waits for it, so lvmm does
 * not rely on the promise: once a second this looks for CPUs in guest
 * mode since more than LVMM_GUEST_STAY_MAX_NS and sends them an NMI, which
 * every backend intercepts.  lvmm's NMI handler claims it; the backend
 * reports the stay, with the guest's state, when the vCPU comes out.
 *
 * Costs a per-CPU store on entry and on exit.
 */
#include <linux/cpumask.h>
#include <linux/jiffies.h>
#include <linux/math64.h>
#include <linux/nmi.h>
#include <linux/percpu.h>
#include <linux/sched/clock.h>
#include <linux/timer.h>
#include <asm/apic.h>
#include <asm/irq_vectors.h>
#include <asm/nmi.h>

#include "lvmm.h"

#define LVMM_WATCHDOG_PERIOD	HZ

/*
 * Per CPU, all lock-free: the watchdog must not wait for anything a task
 * on the stuck CPU might hold (a mutex holder preempted there by the vCPU
 * thread would never give it back).
 */
static DEFINE_PER_CPU(u64, lvmm_guest_since);		/* ns, or 0 */
static DEFINE_PER_CPU(u64, lvmm_nmi_for);		/* stay it was for */
static DEFINE_PER_CPU(bool, lvmm_nmi_sent);		/* not claimed yet */

/*
 * One timer per CPU, pinned there, and each looks at every other CPU: a
 * CPU stuck in guest mode runs no timer of its own, so a single timer
 * (or a delayed work, whose timer lives where it was queued) could be
 * the one that never fires.  They run only while lvmm has VMs.
 */
static DEFINE_PER_CPU(struct timer_list, lvmm_watchdog_timer);

/*
 * Called with IRQs off around the world switch (lvmm_guest_enter_irqoff())
 * with the local_clock() the backend took anyway.  Not jiffies: the stuck
 * CPU may be the one that keeps jiffies going.  local_clock() of two CPUs
 * may differ by a tick or so; the watchdog's second does not mind.
 */
void lvmm_watchdog_enter(u64 now)
{
	this_cpu_write(lvmm_guest_since, now | 1);
}

void lvmm_watchdog_exit_guest(void)
{
	this_cpu_write(lvmm_guest_since, 0);
}

/*
 * How long @cpu has been in guest mode, now; 0 if it is not.  For the
 * management plane's guest time, which adds the stay in progress.
 */
u64 lvmm_guest_stay_ns(int cpu)
{
	u64 since = READ_ONCE(per_cpu(lvmm_guest_since, cpu)) & ~1ULL;
	u64 now = local_clock();

	return since && (s64)(now - since) > 0 ? now - since : 0;
}

static int lvmm_watchdog_nmi(unsigned int type, struct pt_regs *regs)
{
	if (!this_cpu_read(lvmm_nmi_sent))
		return NMI_DONE;
	this_cpu_write(lvmm_nmi_sent, false);
	return NMI_HANDLED;
}

static void lvmm_watchdog_fn(struct timer_list *t)
{
	int me = smp_processor_id(), cpu;
	u64 now = local_clock();

	for_each_online_cpu(cpu) {
		u64 since = READ_ONCE(per_cpu(lvmm_guest_since, cpu));

		if (cpu == me || !since || now - since <= LVMM_GUEST_STAY_MAX_NS ||
		    (s64)(now - since) < 0)
			continue;
		/* Claimed by lvmm_watchdog_nmi(): the flag before the NMI. */
		WRITE_ONCE(per_cpu(lvmm_nmi_sent, cpu), true);
		smp_mb();	/* the flag is visible before the NMI lands */
		apic->send_IPI(cpu, NMI_VECTOR);
		if (xchg(&per_cpu(lvmm_nmi_for, cpu), since) != since)
			pr_warn("lvmm: CPU %d in guest mode for %llu ms: sent it an NMI\n",
				cpu, div_u64(now - since, NSEC_PER_MSEC));
	}
	mod_timer(t, jiffies + LVMM_WATCHDOG_PERIOD);
}

/* The first VM is coming: arm a timer on every online CPU. */
void lvmm_watchdog_start(void)
{
	int cpu;

	for_each_online_cpu(cpu) {
		struct timer_list *t = per_cpu_ptr(&lvmm_watchdog_timer, cpu);

		t->expires = jiffies + LVMM_WATCHDOG_PERIOD;
		add_timer_on(t, cpu);
	}
}

/*
 * This CPU came (back) online while there are VMs: its timer runs here
 * again (a pinned timer moves to the CPU that modifies it; it went to
 * another CPU when this one went down).
 */
void lvmm_watchdog_cpu_online(void)
{
	mod_timer(this_cpu_ptr(&lvmm_watchdog_timer),
		  jiffies + LVMM_WATCHDOG_PERIOD);
}

/* The last VM went: no vCPU can be in guest mode any more. */
void lvmm_watchdog_stop(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		del_timer_sync(per_cpu_ptr(&lvmm_watchdog_timer, cpu));
}

int lvmm_watchdog_init(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		timer_setup(per_cpu_ptr(&lvmm_watchdog_timer, cpu),
			    lvmm_watchdog_fn, TIMER_PINNED);
	return register_nmi_handler(NMI_LOCAL, lvmm_watchdog_nmi, 0, "lvmm");
}

void lvmm_watchdog_exit(void)
{
	/* No VM is left: the timers are stopped and no NMI is on its way. */
	unregister_nmi_handler(NMI_LOCAL, "lvmm");
}
