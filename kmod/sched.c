// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: scheduling policy -- a VM's weight, cap and per-vCPU pins
 * (Documentation/scheduling.rst).
 *
 * The host scheduler stays the only arbiter.  lvmm never picks which
 * thread runs; it only tells the host scheduler what it needs to know
 * about the vCPU threads, and throttles guest time itself:
 *
 *  - a weight is the vCPU threads' nice value, the nearest CFS load
 *    weight (each vCPU competes with its VM's weight, as in credit2);
 *  - a pin is the vCPU thread's affinity, set by the thread itself when
 *    it next enters or when a kick tells it to;
 *  - a cap is a budget of guest time per period shared by the VM's
 *    vCPUs: each exit charges what the guest used, a vCPU takes a slice
 *    before it enters and a timer ends the slice, a vCPU that finds the
 *    budget used up sleeps in RUN until the next refill;
 *  - a reservation is real-time priority for a bounded time: in every
 *    window, each vCPU of the VM is a SCHED_FIFO thread until the guest
 *    has used its share, then the fair thread it was.  lvmm admits a
 *    reservation only if every admitted share still fits.
 *
 * The RUN loop calls lvmm_sched_enter() only when a policy asks for it
 * (lvmm_sched_pending()), so a VM with no cap pays two loads and a bit
 * test per entry.
 *
 * Locking: vm->sched.lock (a mutex) serializes policy changes with the
 * vCPU threads applying them and with the hotplug work.  It nests inside
 * vcpu->mutex and inside cpus_read_lock() (sched-set holds that while it
 * checks and stores pins); under it are sched.timer_lock and what
 * sched_setattr_nocheck() and set_cpus_allowed_ptr() take (cpuset's lock
 * for deadline tasks, the CPU stopper).  sched.timer_lock (a spinlock, IRQ-safe) covers the
 * period timer's state; the budget itself is an atomic that vCPUs charge
 * without a lock.  Reservations add two host-wide locks: lvmm_resv_admit
 * (a mutex, inside sched.lock and vm->lock) for admission, and
 * lvmm_resv_lock (an rt_mutex, inside sched.lock and lvmm_resv_admit) for
 * boosting and demoting threads.
 */
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/cpumask.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/moduleparam.h>
#include <linux/netlink.h>
#include <linux/pid.h>
#include <linux/preempt.h>
#include <linux/rtmutex.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <uapi/linux/sched/types.h>

#include "lvmm.h"

/* A vCPU takes at least this much of the budget before it enters. */
#define LVMM_SCHED_SLICE_MIN_NS	(500 * NSEC_PER_USEC)

/*
 * CFS's load weight of nice -20..19 (kernel/sched/core.c,
 * sched_prio_to_weight[]): not exported, and part of how the scheduler
 * behaves, so kept here to map a weight onto the nearest nice value.
 */
static const int lvmm_nice_weight[40] = {
	88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
	9548, 7620, 6100, 4904, 3906, 3121, 2501, 1991, 1586, 1277,
	1024, 820, 655, 526, 423, 335, 272, 215, 172, 137,
	110, 87, 70, 56, 45, 36, 29, 23, 18, 15,
};

/*
 * The nice value whose CFS weight, relative to nice 0's, is nearest to
 * @weight relative to the default, compared on a log scale: weight 512
 * gives nice -3 (1991/1024 = 1.94 for 2), 1024 gives -6 (3.81 for 4).
 */
int lvmm_sched_weight_to_nice(u32 weight)
{
	/* Compare weight/256 with w/1024 as 4 * weight with w. */
	u64 want = 4ULL * weight;
	int i, best = 0;
	u64 best_err = U64_MAX;

	for (i = 0; i < ARRAY_SIZE(lvmm_nice_weight); i++) {
		u64 w = lvmm_nice_weight[i];
		/* log distance: ratio max/min, in 1/1024ths */
		u64 err = want > w ? div64_u64(want << 10, w) :
				     div64_u64(w << 10, want);

		if (err < best_err) {
			best_err = err;
			best = i;
		}
	}
	return best - 20;
}

/* ---- the cap's period timer and budget ------------------------------------ */

/*
 * The budget a period starts with: the quota, less what the VM overran
 * before, all of it, so that the average over many periods is exact
 * however many vCPUs overran together.  What the last period left is
 * not banked, but stays in guest mode across its end pay their part in
 * it from there (lvmm_sched_pay()).  Then the next period number, with
 * release semantics: whoever sees the new number sees the budget, what
 * was left and when.
 */
static void lvmm_sched_refill(struct lvmm_vm_sched *s)
{
	struct lvmm_vm *vm = container_of(s, struct lvmm_vm, sched);
	s64 old = atomic64_read(&s->budget), new, debt_max;
	u64 now = local_clock();

	lockdep_assert_held(&s->timer_lock);
	/*
	 * vCPUs overrun by at most a slice (half a period) each, and the
	 * timer's lateness: a period per vCPU is all a VM can owe.  More is
	 * no scheduling overrun but a stay that the guest-mode watchdog
	 * reports (an emulator's), and is forgiven.
	 */
	debt_max = (s64)max(READ_ONCE(vm->nr_vcpus), 1) * s->period_ns;
	do {
		new = s->quota + max(min_t(s64, old, 0), -debt_max);
	} while (!atomic64_try_cmpxchg(&s->budget, &old, new));
	atomic64_set(&s->unused, max_t(s64, old, 0));
	WRITE_ONCE(s->refill_at, now);
	/*
	 * Pairs with smp_load_acquire() in lvmm_sched_slice(), _throttle()
	 * and _pay().
	 */
	smp_store_release(&s->gen, s->gen + 1);
}

/*
 * A stay of @guest_ns in guest mode from @start, just ended: charge it.
 * If the period ended once since the vCPU took its slice, the stay's
 * part before that end (all of it, if it ended before) was spent in the
 * period before, whose budget the slice came from: it is paid out of
 * what that period left unused, as far as that goes, and only the rest
 * out of this period's budget.  Charged all to the new period, the stays
 * across every period's end of a VM capped above one CPU took from each
 * period what the last had left: cap 150 on two vCPUs got 144-149 %.
 * The period number, not the clock, says whether a refill came between
 * (@start and the refill's time are two CPUs' local_clock()); a stay
 * across two refills pays all of it to the newest period, as before.
 */
static void lvmm_sched_pay(struct lvmm_vm_sched *s, u64 entry_gen,
			   u64 start, u64 guest_ns)
{
	s64 before, unused;
	u64 gen, at;

	if (unlikely(!guest_ns))
		return;
	/* Pairs with smp_store_release() in lvmm_sched_refill(). */
	gen = smp_load_acquire(&s->gen);
	if (gen == entry_gen + 1) {
		at = READ_ONCE(s->refill_at);
		before = clamp_t(s64, at - start, 0, guest_ns);
		unused = atomic64_read(&s->unused);
		/* Not if another refill came meanwhile: its pool is newer. */
		smp_rmb();	/* the pool before the period number again */
		if (READ_ONCE(s->gen) != gen)
			before = 0;
		while (before && unused > 0) {
			if (atomic64_try_cmpxchg(&s->unused, &unused,
						 unused - min(unused, before))) {
				guest_ns -= min(unused, before);
				break;
			}
		}
	}
	atomic64_sub(guest_ns, &s->budget);
}

/*
 * In the timer interrupt (softirq on PREEMPT_RT): a soft timer's expiry
 * waits for the softirq, which under load is ksoftirqd's, and a cap
 * loses that wait in every period.  It wakes only throttled vCPUs.
 */
static enum hrtimer_restart lvmm_sched_period_fn(struct hrtimer *timer)
{
	struct lvmm_vm_sched *s = container_of(timer, struct lvmm_vm_sched,
					       timer);
	struct lvmm_vm *vm = container_of(s, struct lvmm_vm, sched);
	unsigned long flags;

	spin_lock_irqsave(&s->timer_lock, flags);
	if (!s->busy) {
		/*
		 * Nobody entered for a whole period: stop until somebody
		 * does.  A throttled vCPU still asleep here was woken for a
		 * period already (it marks the period busy before it sleeps).
		 */
		s->timer_on = false;
		spin_unlock_irqrestore(&s->timer_lock, flags);
		return HRTIMER_NORESTART;
	}
	s->busy = false;
	s->nr_periods++;
	lvmm_sched_refill(s);
	/* Under the lock: sched-set may change the period meanwhile. */
	hrtimer_forward_now(timer, ns_to_ktime(s->period_ns));
	spin_unlock_irqrestore(&s->timer_lock, flags);
	/*
	 * Throttled vCPUs wait on the pause queue (lvmm_sched_throttle()).
	 * The new period number before the count of sleepers: pairs with
	 * smp_mb__after_atomic() there, so that either we see the sleeper
	 * or it sees the new number.
	 */
	smp_mb();
	if (atomic_read(&s->nr_waiting))
		wake_up_all(&vm->pause_wq);
	return HRTIMER_RESTART;
}

/*
 * A vCPU is about to use the budget: the period timer must run.  The
 * caller read the period number before, so a refill that this call
 * misses has already moved it on (lvmm_sched_throttle() then does not
 * sleep).
 */
static void lvmm_sched_mark_busy(struct lvmm_vm_sched *s)
{
	unsigned long flags;

	if (READ_ONCE(s->busy))
		return;
	spin_lock_irqsave(&s->timer_lock, flags);
	s->busy = true;
	if (!s->timer_on) {
		/* First use after idling: a fresh period. */
		s->timer_on = true;
		lvmm_sched_refill(s);
		hrtimer_start(&s->timer, ns_to_ktime(s->period_ns),
			      HRTIMER_MODE_REL);
	}
	spin_unlock_irqrestore(&s->timer_lock, flags);
}

static enum hrtimer_restart lvmm_sched_slice_fn(struct hrtimer *timer)
{
	struct lvmm_vcpu *vcpu = container_of(timer, struct lvmm_vcpu,
					      sched.slice);

	/* The slice is over: out of guest mode, and take another. */
	WRITE_ONCE(vcpu->sched.slice_on, false);
	lvmm_vcpu_kick(vcpu, LVMM_REQ_KICK);
	return HRTIMER_NORESTART;
}

/*
 * Out of budget in period @gen: sleep until the next period, or until
 * anything else needs the vCPU (a signal, pause, destroy, a kick, a
 * policy change).  Returns 0 to look at the VM again, -EINTR on a signal.
 */
static int lvmm_sched_throttle(struct lvmm_vcpu *vcpu, u64 gen)
{
	struct lvmm_vm *vm = vcpu->vm;
	struct lvmm_vm_sched *s = &vm->sched;
	struct lvmm_vcpu_sched *vs = &vcpu->sched;
	u64 seen = READ_ONCE(s->throttled_gen), start = local_clock();
	int r;

	/* One throttled period, however many vCPUs and wake-ups it had. */
	/* Only forward: a vCPU of an older period must not count a newer. */
	if ((s64)(gen - seen) > 0 &&
	    try_cmpxchg64(&s->throttled_gen, &seen, gen))
		atomic64_inc(&s->nr_throttled);
	if (vs->throttled_gen != gen) {
		vs->throttled_gen = gen;
		WRITE_ONCE(vs->nr_throttled, vs->nr_throttled + 1);
	}
	lvmm_sched_idle(vcpu);
	atomic_inc(&s->nr_waiting);
	smp_mb__after_atomic();	/* the count before the period number */
	r = wait_event_interruptible(vm->pause_wq,
				     /* pairs with the refill's release */
				     smp_load_acquire(&s->gen) != gen ||
				     !READ_ONCE(s->capped) ||
				     lvmm_vm_stopped(vm) ||
				     READ_ONCE(vm->dead) ||
				     (READ_ONCE(vcpu->requests) &
				      (BIT(LVMM_REQ_KICK) | BIT(LVMM_REQ_SCHED))));
	atomic_dec(&s->nr_waiting);
	WRITE_ONCE(vs->throttled_ns, vs->throttled_ns + local_clock() - start);
	return r ? -EINTR : 0;
}

/* End the vCPU's slice within @ns: keep a timer that ends it sooner. */
static void lvmm_sched_arm(struct lvmm_vcpu *vcpu, s64 ns)
{
	struct lvmm_vcpu_sched *vs = &vcpu->sched;

	if (READ_ONCE(vs->slice_on) &&
	    ktime_to_ns(hrtimer_get_remaining(&vs->slice)) <= ns)
		return;
	WRITE_ONCE(vs->slice_on, true);
	hrtimer_start(&vs->slice, ns_to_ktime(ns), HRTIMER_MODE_REL_PINNED_HARD);
}

/*
 * Take a slice of the budget, or wait for one.  @boosted: the guest time
 * the thread may still run at real-time priority, which no slice
 * outlasts.
 */
static int lvmm_sched_slice(struct lvmm_vcpu *vcpu, s64 boosted)
{
	struct lvmm_vm_sched *s = &vcpu->vm->sched;
	/* The period first: pairs with smp_store_release() in the refill. */
	u64 gen = smp_load_acquire(&s->gen);
	s64 budget;

	vcpu->sched.entry_gen = gen;
	lvmm_sched_mark_busy(s);
	budget = atomic64_read(&s->budget);
	if (budget <= 0)
		return lvmm_sched_throttle(vcpu, gen);
	/*
	 * A slice outlives the RUN that took it: a VMM that exits to
	 * userspace often does not pay for a timer per RUN.  Its end kicks
	 * a vCPU that may be out of guest mode by then, to no harm.
	 */
	if (READ_ONCE(vcpu->sched.slice_on) && !boosted)
		return 1;
	/*
	 * The slice is what is left, within [500 us, half a period]: vCPUs
	 * that take more than the budget holds between them pay it back in
	 * the next period (lvmm_sched_refill()).  Half a period, so that a
	 * vCPU that uses the budget enters at least once in every period
	 * and the timer never takes it for idle.
	 */
	budget = clamp_t(s64, min_t(s64, budget, s->period_ns / 2),
			 LVMM_SCHED_SLICE_MIN_NS, s->period_ns);
	lvmm_sched_arm(vcpu, boosted ? min(budget, boosted) : budget);
	return 1;
}

/* ---- the reservation ------------------------------------------------------ */

/*
 * Windows are host-wide, so that every reserved vCPU is released at once
 * and admission is a test of jobs that share one deadline, the window's
 * end (lvmm_resv_admissible()).  A VM's period is its cap's alone.
 */
#define LVMM_RESV_WINDOW_NS	(10 * NSEC_PER_MSEC)
/* Less than this left is used up: no timer for a few microseconds. */
#define LVMM_RESV_SLICE_MIN_NS	(20 * NSEC_PER_USEC)
/* The boosted threads' priority: the lowest real-time one. */
#define LVMM_RESV_PRIO		1
/* A share's margin over its size, as a shift (lvmm_resv_refill()). */
#define LVMM_RESV_MARGIN_SHIFT	3
/* How far back a window's shortfall is still owed (lvmm_resv_refill()). */
#define LVMM_RESV_DEBT_NS	(10 * LVMM_RESV_WINDOW_NS)

/*
 * The share of each host CPU that reservations may take.  The kernel's
 * real-time throttling (sched_rt_runtime_us, 95 % by default) must leave
 * at least this much, and fair tasks get the rest in every window.
 */
static unsigned int reserve_max = 90;

static int lvmm_reserve_max_set(const char *val, const struct kernel_param *kp)
{
	/* Read under lvmm_resv_admit by admission: a plain store. */
	return param_set_uint_minmax(val, kp, 0, 95);
}

static const struct kernel_param_ops lvmm_reserve_max_ops = {
	.set = lvmm_reserve_max_set,
	.get = param_get_uint,
};
module_param_cb(reserve_max, &lvmm_reserve_max_ops, &reserve_max, 0644);
MODULE_PARM_DESC(reserve_max,
		 "percent of each host CPU that reservations may take, 0-95 (default 90)");

/*
 * The CPU time a reserved vCPU may spend at real-time priority beyond its
 * share of guest time, in percent of the share: what its exits cost lvmm
 * to handle.  Admission counts the share with its slack, so a guest that
 * exits all the time holds the CPU no longer than admission allowed for.
 */
static unsigned int reserve_slack = 25;

static int lvmm_reserve_slack_set(const char *val,
				  const struct kernel_param *kp)
{
	/* Read once by admission, under lvmm_resv_admit. */
	return param_set_uint_minmax(val, kp, 0, 100);
}

static const struct kernel_param_ops lvmm_reserve_slack_ops = {
	.set = lvmm_reserve_slack_set,
	.get = param_get_uint,
};
module_param_cb(reserve_slack, &lvmm_reserve_slack_ops, &reserve_slack, 0644);
MODULE_PARM_DESC(reserve_slack,
		 "percent of its share a reserved vCPU may spend on exits at real-time priority, 0-100 (default 25)");

static DEFINE_MUTEX(lvmm_resv_admit);	/* admission, lvmm_resv_vms */
static LIST_HEAD(lvmm_resv_vms);	/* VMs with a reservation */
/*
 * Boosts, and the list of reserved vCPUs.  An rt_mutex: its holder may be
 * a vCPU thread just demoted and preempted by the fair tasks it gave way
 * to, and lvmm-resv, which waits for it, lends it its priority.  Never
 * a spinlock: sched_setattr_nocheck() may sleep (cpuset's lock, for
 * deadline tasks and on some 6.1 releases for every policy).
 */
static DEFINE_RT_MUTEX(lvmm_resv_lock);
static LIST_HEAD(lvmm_resv_vcpus);	/* the vCPUs of those VMs */
/*
 * The current window, named by the time it ends (ktime_get_ns()): one
 * word says which window it is and how long it has left.
 */
static u64 lvmm_resv_end;
static struct hrtimer lvmm_resv_timer;	/* runs while any VM reserves */
static struct kthread_worker *lvmm_resv_worker;
static struct kthread_work lvmm_resv_work;

/*
 * The current thread's clocks for paying a boost: its CPU time (what the
 * scheduler has accounted it, and the time since its last update; the
 * scheduler's own task_sched_runtime() is not exported), the CPU's clock
 * and the CPU.  Without a preempt notifier, whose static key would patch
 * the scheduler's text each time lvmm is loaded and unloaded
 * (Documentation/sandbox.rst, section 5).
 */
static void lvmm_resv_clock(struct lvmm_resv_clock *c)
{
	unsigned long flags;
	u64 runtime, start;

	local_irq_save(flags);	/* no tick of this CPU between the reads */
	runtime = READ_ONCE(current->se.sum_exec_runtime);
	start = READ_ONCE(current->se.exec_start);
	c->wall_ns = local_clock();
	c->cpu = smp_processor_id();
	local_irq_restore(flags);
	c->cpu_ns = runtime + (c->wall_ns > start ? c->wall_ns - start : 0);
}

/*
 * The CPU time between @mark and @now.  exec_start is on the runqueue's
 * task clock, which leaves out interrupt and steal time where the kernel
 * accounts them (not Debian's 6.1) and differs between CPUs: a difference
 * taken on two CPUs, or out of [0, wall time], is not trusted, and the
 * wall time is paid instead, which is never less.
 */
static u64 lvmm_resv_cpu_delta(const struct lvmm_resv_clock *mark,
			       const struct lvmm_resv_clock *now)
{
	u64 wall = now->wall_ns - mark->wall_ns;
	u64 cpu = now->cpu_ns - mark->cpu_ns;

	if (now->cpu != mark->cpu || now->wall_ns < mark->wall_ns ||
	    (s64)cpu < 0 || cpu > wall)
		return (s64)wall < 0 ? 0 : wall;
	return cpu;
}

static bool lvmm_resv_fair(const struct task_struct *t)
{
	return t->policy == SCHED_NORMAL || t->policy == SCHED_BATCH ||
	       t->policy == SCHED_IDLE;
}

/*
 * Make @t, the thread in RUN of @vs, real-time.  A thread that already
 * outranks every fair task (the VMM made it real-time or deadline) keeps
 * what it has.  Its reset-on-fork flag stays as it was.
 */
static void lvmm_resv_boost(struct lvmm_vcpu_sched *vs, struct task_struct *t)
{
	struct sched_attr attr = {
		.sched_policy = SCHED_FIFO,
		.sched_priority = LVMM_RESV_PRIO,
	};
	int r;

	lockdep_assert_held(&lvmm_resv_lock);
	if (vs->boosted || !lvmm_resv_fair(t))
		return;
	vs->saved_policy = t->policy;
	vs->saved_nice = task_nice(t);
	vs->saved_flags = t->sched_reset_on_fork ? SCHED_FLAG_RESET_ON_FORK : 0;
	attr.sched_flags = vs->saved_flags;
	r = sched_setattr_nocheck(t, &attr);
	if (r) {
		/* E.g. RT group scheduling with no runtime for the cgroup. */
		pr_warn_ratelimited("lvmm: cannot make thread %d real-time for its reservation: %d\n",
				    task_pid_nr(t), r);
		return;
	}
	vs->boosted_task = t;
	vs->boost_start = local_clock();
	/*
	 * The boosted thread pays from its own CPU clock: a thread boosted
	 * by lvmm-resv starts paying at its next lvmm_resv_pay(), the end
	 * of the stay that lvmm-resv's kick cuts short.
	 */
	if (t == current) {
		lvmm_resv_clock(&vs->resv_mark);
		vs->resv_mark_stale = false;
	} else {
		WRITE_ONCE(vs->resv_mark_stale, true);
	}
	vs->nr_boosts++;
	/* The mark before the flag: pairs with lvmm_resv_pay(). */
	smp_store_release(&vs->boosted, true);
}

/*
 * The vCPU thread: pay for its boosted time on a CPU up to now, in the
 * guest and in lvmm's handling of its exits, not while it slept or
 * waited for its CPU.  Its guest time pays lvmm_resv_charge().
 */
static void lvmm_resv_pay(struct lvmm_vcpu_sched *vs)
{
	struct lvmm_resv_clock now;

	lvmm_resv_clock(&now);
	/* Pairs with smp_store_release() in lvmm_resv_boost(). */
	if (smp_load_acquire(&vs->boosted)) {
		if (!READ_ONCE(vs->resv_mark_stale))
			vs->resv_cpu -= lvmm_resv_cpu_delta(&vs->resv_mark, &now);
		WRITE_ONCE(vs->resv_mark_stale, false);
	}
	vs->resv_mark = now;
}

/*
 * Give the thread back the fair policy and nice value it had, unless
 * somebody gave it a policy of their own meanwhile.
 */
static void lvmm_resv_demote(struct lvmm_vcpu_sched *vs)
{
	struct task_struct *t = vs->boosted_task;
	struct sched_attr attr = {
		.sched_policy = vs->saved_policy,
		.sched_nice = vs->saved_nice,
		.sched_flags = vs->saved_flags,
	};
	int r;

	lockdep_assert_held(&lvmm_resv_lock);
	if (!vs->boosted)
		return;
	/* Only the thread demotes itself: what it used is its to pay. */
	WARN_ON_ONCE(t != current);
	lvmm_resv_pay(vs);
	if (t->policy == SCHED_FIFO && t->rt_priority == LVMM_RESV_PRIO) {
		r = sched_setattr_nocheck(t, &attr);
		if (r)
			pr_warn_ratelimited("lvmm: cannot end the boost of thread %d: %d\n",
					    task_pid_nr(t), r);
	}
	WRITE_ONCE(vs->boosted, false);
	vs->boosted_task = NULL;
	WRITE_ONCE(vs->boosted_ns,
		   vs->boosted_ns + local_clock() - vs->boost_start);
}

/* The vCPU thread itself: boost or demote under the lock. */
static void lvmm_resv_self(struct lvmm_vcpu_sched *vs, bool boost)
{
	rt_mutex_lock(&lvmm_resv_lock);
	if (boost)
		lvmm_resv_boost(vs, current);
	else
		lvmm_resv_demote(vs);
	rt_mutex_unlock(&lvmm_resv_lock);
}

/*
 * A new window: boost the thread of every reserved vCPU inside RUN, above
 * the fair tasks that keep it off its CPU, and kick it so that it takes
 * the new share before it enters (it may have been preempted on its way
 * into the guest, with no timer to end a share).  A vCPU that is running
 * boosts itself anyway (lvmm_resv_enter()).  One still boosted from the
 * last window ends it at the window's end and takes the new share then.
 *
 * The thread may be leaving RUN: lvmm_sched_run_end() unpublishes it and
 * then (a full barrier each side) looks whether the vCPU is reserved, and
 * if so takes this lock before it returns to userspace.  So a thread read
 * here under the lock is either not leaving, or waiting for the lock to
 * take the boost back: it cannot run userspace code boosted, nor exit.
 */
static void lvmm_resv_work_fn(struct kthread_work *work)
{
	struct lvmm_vcpu_sched *vs;

	rt_mutex_lock(&lvmm_resv_lock);
	list_for_each_entry(vs, &lvmm_resv_vcpus, resv_node) {
		struct task_struct *t;

		if (vs->boosted)
			continue;
		smp_mb();	/* the list before the thread: pairs with run_end */
		t = READ_ONCE(vs->run_task);
		if (!t)
			continue;
		lvmm_resv_boost(vs, t);
		if (vs->boosted)
			lvmm_vcpu_kick(container_of(vs, struct lvmm_vcpu, sched),
				       LVMM_REQ_KICK);
	}
	rt_mutex_unlock(&lvmm_resv_lock);
}

static enum hrtimer_restart lvmm_resv_window_fn(struct hrtimer *timer)
{
	hrtimer_forward_now(timer, ns_to_ktime(LVMM_RESV_WINDOW_NS));
	WRITE_ONCE(lvmm_resv_end, ktime_to_ns(hrtimer_get_expires(timer)));
	if (!list_empty_careful(&lvmm_resv_vcpus))
		kthread_queue_work(lvmm_resv_worker, &lvmm_resv_work);
	return HRTIMER_RESTART;
}

/*
 * The window @now is in, by its end.  The timer publishes each window a
 * moment after it began; the grid is fixed (an absolute timer, forwarded
 * by whole windows), so a vCPU that gets there first works it out.
 */
static u64 lvmm_resv_window(u64 now)
{
	u64 end = READ_ONCE(lvmm_resv_end);

	if (now >= end)
		end += LVMM_RESV_WINDOW_NS *
		       (1 + div64_u64(now - end, LVMM_RESV_WINDOW_NS));
	return end;
}

/*
 * The vCPU thread: the window @now is in, with its share filled if it is
 * a new one.  An overrun (a kick that came late) is not taken from the
 * new share, which would fall short of the minimum: the slack that
 * admission counts leaves room for it.  Guest time left of the last
 * window is lost if the vCPU did not want it all (lvmm_sched_idle()).
 * Otherwise the shortfall is owed, up to one share, on top of the new
 * share: the host was late (a boost late in the window: a wake-up of
 * lvmm-resv, a reschedule IPI; or no boost at all in windows it wanted),
 * or the guest's exits took the CPU budget.  Only the guest-time budget
 * grows: the CPU budget stays what admission counted, so a debt is paid
 * off over as many windows as that budget takes, and a guest whose exits
 * use up the budget is paid nothing back.  The share aimed at is 1/8
 * over the share: a debt is paid in the next window, and the margin
 * makes up one late window before then, so that the share holds over
 * any ten windows, not only over the windows' own grid.  A margin not
 * reached is not owed: only the share is.
 */
static u64 lvmm_resv_refill(struct lvmm_vcpu_sched *vs, u64 now)
{
	u64 end = lvmm_resv_window(now);
	s64 quota = READ_ONCE(vs->resv_quota);
	s64 cpu_quota = READ_ONCE(vs->resv_cpu_quota);
	s64 owed = 0;
	u64 gap;

	if (vs->resv_end == end)
		return end;
	/*
	 * Windows it never entered in, wanting to, are owed whole.  A window
	 * filled longer ago than LVMM_RESV_DEBT_NS, or on another grid (the
	 * timer starts a new one when reservations begin again), is no
	 * history to go by.
	 */
	gap = end - vs->resv_end;
	if (!vs->resv_idle && vs->resv_end && gap >= LVMM_RESV_WINDOW_NS &&
	    gap <= LVMM_RESV_DEBT_NS)
		owed = gap >= 2 * LVMM_RESV_WINDOW_NS ? quota :
		       clamp_t(s64, vs->resv_budget -
			       (quota >> LVMM_RESV_MARGIN_SHIFT), 0, quota);
	vs->resv_end = end;
	vs->resv_budget = quota + (quota >> LVMM_RESV_MARGIN_SHIFT) + owed;
	vs->resv_cpu = cpu_quota;
	vs->resv_idle = false;
	return end;
}

/*
 * Back from the guest after @guest_ns in guest mode: the share is guest
 * time, boosted or not.  The boosted CPU time is paid here too, so that a
 * boost by lvmm-resv starts paying at the exit its kick caused.  A stay
 * that crossed into a new window pays the last window for its part
 * there first, which decides what that window still owes, and the new
 * one for the rest.  (The CPU time since the window's start is the last
 * window's: a late kick's overrun, which admission's reserve_max leaves
 * room for.)
 */
static void lvmm_resv_charge(struct lvmm_vcpu_sched *vs, u64 guest_ns)
{
	u64 now = ktime_get_ns();
	u64 end = lvmm_resv_window(now);
	u64 in_new = min(guest_ns, now - (end - LVMM_RESV_WINDOW_NS));

	lvmm_resv_pay(vs);
	if (vs->resv_end != end) {
		vs->resv_budget -= guest_ns - in_new;
		lvmm_resv_refill(vs, now);
		guest_ns = in_new;
	}
	vs->resv_budget -= guest_ns;
}

/*
 * Before an entry of a reserved vCPU: its share of this window, at
 * real-time priority while it lasts.  Returns how long it may stay in the
 * guest at that priority, 0 when the thread is not boosted.
 *
 * Two budgets per window.  The share is guest time (lvmm_resv_charge()):
 * the guarantee.  The boosted thread's CPU time, its exits handled in
 * the kernel included (lvmm_resv_pay()), may be the share and its slack
 * and no more: a guest that exits all the time is held real-time no
 * longer than admission counted.  The last slice of a share is never
 * shorter than LVMM_RESV_SLICE_MIN_NS, so a share ends a little over,
 * never under.  No share outlasts its window, and the share belongs to
 * the window, not to the RUN, so a VMM that comes back often gets no
 * more.
 */
static s64 lvmm_resv_enter(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vcpu_sched *vs = &vcpu->sched;
	u64 end, now;
	s64 left;

again:
	lvmm_resv_pay(vs);
	now = ktime_get_ns();
	end = lvmm_resv_refill(vs, now);
	left = min3(max_t(s64, vs->resv_budget, LVMM_RESV_SLICE_MIN_NS),
		    vs->resv_cpu, (s64)(end - now));
	if (vs->resv_budget <= 0 || left < LVMM_RESV_SLICE_MIN_NS) {
		if (!READ_ONCE(vs->boosted))
			return 0;
		rt_mutex_lock(&lvmm_resv_lock);
		/*
		 * Not if a new window began meanwhile: lvmm-resv passed
		 * this vCPU by, as it was boosted.  The fair tasks it gives
		 * way to may also run into the next window, whose boost it
		 * then already has.
		 */
		if (lvmm_resv_window(ktime_get_ns()) == end)
			lvmm_resv_demote(vs);
		rt_mutex_unlock(&lvmm_resv_lock);
		goto again;
	}
	if (!READ_ONCE(vs->boosted)) {
		/* Real-time already, or no boost to be had: this window. */
		if (lvmm_resv_fair(current))
			lvmm_resv_self(vs, true);
		if (!READ_ONCE(vs->boosted)) {
			vs->resv_budget = 0;
			return 0;
		}
	}
	return left;
}

/* ---- applying the policy to the vCPU thread ------------------------------- */

/*
 * Give the current thread the weight's nice value.  A weight an admin set
 * is the thread's, whatever it had.  One the owner set may lower the
 * thread's priority, or raise it only as far as the thread could itself
 * (can_nice(): RLIMIT_NICE, CAP_SYS_NICE), and leaves a policy other
 * than SCHED_NORMAL (idle, batch, real-time) alone.
 */
static void lvmm_sched_set_nice(int nice, bool admin)
{
	struct sched_attr attr = {
		.sched_policy = SCHED_NORMAL,
		.sched_nice = nice,
	};
	int r;

	if (current->policy == SCHED_NORMAL && task_nice(current) == nice)
		return;
	if (!admin && (current->policy != SCHED_NORMAL ||
		       (nice < task_nice(current) && !can_nice(current, nice))))
		return;
	r = sched_setattr_nocheck(current, &attr);
	if (r)
		pr_warn_ratelimited("lvmm: cannot set nice %d for thread %d: %d\n",
				    nice, task_pid_nr(current), r);
}

/* The weight lost from the thread, where lvmm may give it back. */
static bool lvmm_sched_nice_stale(struct lvmm_vm_sched *s)
{
	int nice = READ_ONCE(s->nice);

	if (!READ_ONCE(s->weight_set))
		return false;
	if (READ_ONCE(s->weight_admin))
		return current->policy != SCHED_NORMAL ||
		       task_nice(current) != nice;
	return current->policy == SCHED_NORMAL && task_nice(current) < nice;
}

static void lvmm_sched_forget_thread(struct lvmm_vcpu_sched *vs)
{
	put_pid(vs->pinned);
	vs->pinned = NULL;
}

/* What the VM's creator may use: the limit of an unprivileged pin. */
static void lvmm_sched_creator_cpus(struct lvmm_vm *vm, struct cpumask *mask)
{
	struct task_struct *t;

	cpumask_clear(mask);
	rcu_read_lock();
	t = pid_task(vm->creator, PIDTYPE_TGID);
	if (t)
		cpumask_copy(mask, t->cpus_ptr);
	rcu_read_unlock();
}

/*
 * Give the current thread back its own CPUs.  After an owner's pin, only
 * those the VM's creator may still use: a cpuset that shrank meanwhile
 * does not grow back through lvmm.
 */
static void lvmm_sched_unpin(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vcpu_sched *vs = &vcpu->sched;
	cpumask_var_t mask;

	if (vs->pin_admin) {
		set_cpus_allowed_ptr(current, vs->saved);
		return;
	}
	if (!alloc_cpumask_var(&mask, GFP_KERNEL))
		return;
	lvmm_sched_creator_cpus(vcpu->vm, mask);
	if (cpumask_and(mask, mask, vs->saved))
		set_cpus_allowed_ptr(current, mask);
	free_cpumask_var(mask);
}

/*
 * Pin the current thread.  What the thread may use when lvmm first pins
 * it, or when somebody else (the VMM, a cpuset) changed its CPUs since,
 * is its own: an unpin gives that back, and an owner's pin stays inside
 * it, so that no pin widens what the thread's cpuset allows.  An admin's
 * pin is applied as given.  A thread that stops running the vCPU keeps
 * its CPUs: it is the VMM's thread.
 */
static void lvmm_sched_set_affinity(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vcpu_sched *vs = &vcpu->sched;
	struct pid *me = task_pid(current);
	bool changed = !cpumask_equal(current->cpus_ptr, vs->applied);

	lockdep_assert_held(&vcpu->vm->sched.lock);
	if (cpumask_empty(vs->pin)) {
		if (vs->pinned == me && !changed)
			lvmm_sched_unpin(vcpu);
		lvmm_sched_forget_thread(vs);
		return;
	}
	if (vs->pin_broken)
		return;		/* the host scheduler decides until it is back */
	if (vs->pinned != me || changed) {
		cpumask_copy(vs->saved, current->cpus_ptr);
		lvmm_sched_forget_thread(vs);
		vs->pinned = get_pid(me);
	}
	if (vs->pin_admin)
		cpumask_copy(vs->applied, vs->pin);
	else
		cpumask_and(vs->applied, vs->pin, vs->saved);
	if (cpumask_empty(vs->applied) ||
	    (!cpumask_equal(current->cpus_ptr, vs->applied) &&
	     set_cpus_allowed_ptr(current, vs->applied))) {
		pr_warn_ratelimited("lvmm: cannot pin vCPU %u to %*pbl within %*pbl\n",
				    vcpu->id, cpumask_pr_args(vs->pin),
				    cpumask_pr_args(vs->saved));
		cpumask_copy(vs->applied, current->cpus_ptr);
	}
}

static void lvmm_sched_apply(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vm_sched *s = &vcpu->vm->sched;

	mutex_lock(&s->lock);
	vcpu->sched.seq = s->seq;
	/*
	 * Unboosted first, and no boost until the nice value is the new
	 * one: the next entry boosts again what is reserved, and saves that.
	 */
	rt_mutex_lock(&lvmm_resv_lock);
	lvmm_resv_demote(&vcpu->sched);
	if (s->weight_set)
		lvmm_sched_set_nice(s->nice, s->weight_admin);
	rt_mutex_unlock(&lvmm_resv_lock);
	lvmm_sched_set_affinity(vcpu);
	mutex_unlock(&s->lock);
}

/*
 * Has the thread lost what lvmm gave it (the VMM changed its nice value,
 * policy or CPUs)?  Read without sched.lock: a torn read only makes the
 * thread apply the policy again, under the lock.
 */
static bool lvmm_sched_thread_stale(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vcpu_sched *vs = &vcpu->sched;

	if (lvmm_sched_nice_stale(&vcpu->vm->sched))
		return true;
	return !cpumask_empty(vs->pin) && !READ_ONCE(vs->pin_broken) &&
	       !cpumask_equal(current->cpus_ptr, vs->applied);
}

/*
 * LVMM_RUN begins: a new thread, a policy it has not seen yet, or a
 * thread that lost what it was given.
 */
void lvmm_sched_run_start(struct lvmm_vcpu *vcpu, bool new_thread)
{
	/* Published for the reservation's boosts until lvmm_sched_run_end(). */
	WRITE_ONCE(vcpu->sched.run_task, current);
	if (new_thread || vcpu->sched.seq != READ_ONCE(vcpu->vm->sched.seq) ||
	    lvmm_sched_thread_stale(vcpu))
		set_bit(LVMM_REQ_SCHED, &vcpu->requests);
}

/*
 * LVMM_RUN returns to userspace, where the VMM never runs boosted: the
 * thread is no longer the vCPU's to boost, then, if the vCPU is reserved,
 * it waits for any boost in flight and takes it back (lvmm_resv_work_fn()
 * says why that is enough).
 */
void lvmm_sched_run_end(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vcpu_sched *vs = &vcpu->sched;

	lvmm_sched_idle(vcpu);

	WRITE_ONCE(vs->run_task, NULL);
	smp_mb();	/* the thread before the list: pairs with lvmm-resv */
	if (READ_ONCE(vs->resv_listed) || READ_ONCE(vs->boosted))
		lvmm_resv_self(vs, false);
}

/*
 * Before an entry, when lvmm_sched_pending(): apply a policy change, take
 * the reservation's share and a slice of the cap.  1: enter; 0: look at
 * the VM again first; -EINTR.
 */
/*
 * A policy the vCPU's thread has not applied yet: apply it.  True if
 * there was one.  Also for a vCPU that waits without entering (HLT).
 */
bool lvmm_sched_update(struct lvmm_vcpu *vcpu)
{
	if (!test_bit(LVMM_REQ_SCHED, &vcpu->requests))
		return false;
	clear_bit(LVMM_REQ_SCHED, &vcpu->requests);
	lvmm_sched_apply(vcpu);
	return true;
}

int lvmm_sched_enter(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vm_sched *s = &vcpu->vm->sched;
	s64 boosted = 0;

	if (lvmm_sched_update(vcpu))
		return 0;
	if (READ_ONCE(s->reserved))
		boosted = lvmm_resv_enter(vcpu);
	if (READ_ONCE(s->capped))
		return lvmm_sched_slice(vcpu, boosted);
	if (boosted)
		lvmm_sched_arm(vcpu, boosted);
	return 1;
}

/*
 * Back from the guest after @guest_ns in guest mode, one stay (the arch's
 * vcpu_run enters once) that began at vcpu->entered: pay the cap.
 */
void lvmm_sched_charge(struct lvmm_vcpu *vcpu, u64 guest_ns)
{
	if (READ_ONCE(vcpu->vm->sched.capped))
		lvmm_sched_pay(&vcpu->vm->sched, vcpu->sched.entry_gen,
			       vcpu->entered, guest_ns);
	if (READ_ONCE(vcpu->vm->sched.reserved))
		lvmm_resv_charge(&vcpu->sched, guest_ns);
}

/* ---- policy changes (sched-set) ------------------------------------------- */

static int lvmm_sched_check(struct lvmm_vm *vm,
			    const struct lvmm_sched_req *req,
			    unsigned int privs, struct netlink_ext_ack *extack)
{
	struct lvmm_vm_sched *s = &vm->sched;
	u32 cap = req->has_cap ? req->cap : s->cap;
	u32 reserve = req->has_reserve ? req->reserve : s->reserve;
	u32 period_us = req->has_period ? req->period_us : s->period_us;
	cpumask_var_t allowed;
	int i, r = 0;

	lockdep_assert_held(&s->lock);	/* and cpus_read_lock() */
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		if (req->pin[i] && !cpumask_empty(req->pin[i]) &&
		    !cpumask_intersects(req->pin[i], cpu_active_mask)) {
			NL_SET_ERR_MSG(extack, "none of these CPUs is online");
			return -EINVAL;
		}
	}
	if (cap && reserve > cap) {
		NL_SET_ERR_MSG(extack,
			       "a cap below the reservation cannot be honoured: raise the cap or lower the reservation");
		return -EINVAL;
	}
	/* It could spend a long period's budget early and then sit out windows. */
	if (cap && reserve &&
	    (u64)period_us * NSEC_PER_USEC > LVMM_RESV_WINDOW_NS) {
		NL_SET_ERR_MSG(extack,
			       "a reservation with a cap needs the cap's period to be at most 10 ms, the reservation's window");
		return -EINVAL;
	}
	/* Like a real-time policy, whoever asks: the host's CPU, not a VM's. */
	if (req->has_reserve && req->reserve > s->reserve &&
	    !(privs & LVMM_SCHED_PRIV_NICE)) {
		NL_SET_ERR_MSG(extack, "reserving CPU time needs CAP_SYS_NICE");
		return -EPERM;
	}
	if (privs & LVMM_SCHED_PRIV_ADMIN)
		return 0;
	/* As with nice: anyone may ask for less, only an admin for more. */
	if (req->has_weight && req->weight > s->weight) {
		NL_SET_ERR_MSG(extack,
			       "raising a VM's weight needs CAP_NET_ADMIN");
		return -EPERM;
	}
	if (req->has_cap && s->cap && (!req->cap || req->cap > s->cap)) {
		NL_SET_ERR_MSG(extack,
			       "removing or raising a VM's cap needs CAP_NET_ADMIN");
		return -EPERM;
	}
	if (!zalloc_cpumask_var(&allowed, GFP_KERNEL))
		return -ENOMEM;
	lvmm_sched_creator_cpus(vm, allowed);
	for (i = 0; i < LVMM_MAX_VCPUS && !r; i++) {
		if (req->pin[i] && !cpumask_subset(req->pin[i], allowed)) {
			NL_SET_ERR_MSG(extack,
				       "pinning outside the CPUs the VM's creator may use needs CAP_NET_ADMIN");
			r = -EPERM;
		}
	}
	free_cpumask_var(allowed);
	return r;
}

/*
 * The cap's new quota and period.  Nothing is refilled: the current
 * period runs on, with no more budget than the new quota, and the timer
 * takes the new period from its next expiry.
 */
static void lvmm_sched_set_cap(struct lvmm_vm_sched *s, u32 cap, u32 period_us)
{
	unsigned long flags;
	s64 old;

	spin_lock_irqsave(&s->timer_lock, flags);
	s->period_ns = (u64)period_us * NSEC_PER_USEC;
	s->quota = div_u64(s->period_ns * cap, 100);
	/* A cap set anew owes nothing: an admin's way to forgive a debt. */
	if (!s->capped) {
		atomic64_set(&s->budget, 0);
		atomic64_set(&s->unused, 0);
	}
	old = atomic64_read(&s->budget);
	while (old > s->quota &&
	       !atomic64_try_cmpxchg(&s->budget, &old, s->quota))
		;
	old = atomic64_read(&s->unused);
	while (old > s->quota &&
	       !atomic64_try_cmpxchg(&s->unused, &old, s->quota))
		;
	WRITE_ONCE(s->capped, cap != 0);
	spin_unlock_irqrestore(&s->timer_lock, flags);
}

/*
 * The cap the RUN loop enforces: the owner's, lowered by a migration's
 * auto-converge to (100 - throttle) % of what the vCPUs had -- one host
 * CPU each, or the owner's cap if lower.  Under s->lock.
 */
static u32 lvmm_sched_cap(struct lvmm_vm *vm)
{
	struct lvmm_vm_sched *s = &vm->sched;
	u32 full = max(READ_ONCE(vm->nr_vcpus), 1) * 100;

	if (!s->migrate_throttle)
		return s->cap;
	if (s->cap && s->cap < full)
		full = s->cap;
	/* Never below a reservation, which needs the cap above it. */
	return max3(full * (100 - s->migrate_throttle) / 100, s->reserve, 1U);
}

/* Kick every vCPU to take the policy anew (a new cap: a new slice). */
static void lvmm_sched_kick_policy(struct lvmm_vm *vm, bool cap_changed)
{
	int i;

	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (!vcpu)
			continue;
		/* A slice of the old cap ends now; the kick takes a new one. */
		if (cap_changed)
			WRITE_ONCE(vcpu->sched.slice_on, false);
		set_bit(LVMM_REQ_SCHED, &vcpu->requests);
		lvmm_vcpu_kick(vcpu, LVMM_REQ_KICK);
	}
	wake_up_all(&vm->pause_wq);
}

/*
 * A migration slows a guest that dirties memory faster than the link
 * carries it by @pct % (0: not at all).  sched-get still shows the
 * owner's cap; the migration's events show the throttle.
 */
void lvmm_sched_migrate_throttle(struct lvmm_vm *vm, u32 pct)
{
	struct lvmm_vm_sched *s = &vm->sched;

	mutex_lock(&s->lock);
	s->migrate_throttle = pct;
	lvmm_sched_set_cap(s, lvmm_sched_cap(vm), s->period_us);
	mutex_unlock(&s->lock);
	lvmm_sched_kick_policy(vm, true);
}

/*
 * vCPUs with a pin, host-wide: with none, hotplug has nothing to check,
 * and the work's references do not hold up a VM's teardown.
 */
static atomic_t lvmm_sched_nr_pinned = ATOMIC_INIT(0);

/* @vcpu's pin becomes @pin, under sched.lock: keep the count. */
static void lvmm_sched_store_pin(struct lvmm_vcpu *vcpu,
				 const struct cpumask *pin)
{
	bool was = !cpumask_empty(vcpu->sched.pin);
	bool now = !cpumask_empty(pin);

	if (now && !was)
		atomic_inc(&lvmm_sched_nr_pinned);
	else if (was && !now)
		atomic_dec(&lvmm_sched_nr_pinned);
	cpumask_copy(vcpu->sched.pin, pin);
}

/*
 * Admission.  Each reserved vCPU is a job released at the start of every
 * window: its share of the window (the VM's reservation split evenly over
 * its vCPUs) on the CPUs it may use (its pin, or every online CPU).  All
 * jobs run at one real-time priority, so a job that is runnable and not
 * running has every CPU it may use busy with other reserved jobs that may
 * use them too.  It therefore ends by
 *
 *	share(i) + sum of share(j) over the jobs j that share a CPU with i,
 *		   divided by the number of CPUs i may use,
 *
 * and a reservation is admitted when that is within reserve_max of the
 * window for every job, its own and those admitted before.  The bound is
 * safe but not tight: a refused request may have fitted.
 */
struct lvmm_resv_job {
	struct cpumask *cpus;
	u64 share;			/* parts per million of a window */
};

/*
 * What a vCPU of a VM reserving @reserve costs each window, in parts per
 * million of it: its share and the share's @slack (reserve_slack), the
 * real-time time it may take.
 */
static u32 lvmm_resv_cost(u32 reserve, u32 slack, u32 nr_vcpus)
{
	return div_u64((u64)reserve * (100 + slack) * 100, nr_vcpus);
}

/* The CPUs a reserved vCPU may use, as admission counts them. */
static void lvmm_resv_cpus(struct cpumask *dst, const struct cpumask *pin)
{
	if (!pin || !cpumask_and(dst, pin, cpu_active_mask))
		cpumask_copy(dst, cpu_active_mask);
}

static int lvmm_resv_admissible(struct lvmm_vm *vm,
				const struct lvmm_sched_req *req, u32 reserve,
				u32 slack, struct netlink_ext_ack *extack)
{
	u64 limit = (u64)READ_ONCE(reserve_max) * 10000;
	struct lvmm_resv_job *jobs;
	struct lvmm_vm *w;
	int n = 0, nr = 0, i, j, r = 0;
	void *masks;

	lockdep_assert_held(&lvmm_resv_admit);
	/* A destroyed VM runs no more: what it reserved is free. */
	list_for_each_entry(w, &lvmm_resv_vms, sched.resv_node)
		if (w != vm && !READ_ONCE(w->dead))
			nr += w->nr_vcpus;
	nr += vm->nr_vcpus;
	jobs = kvcalloc(nr, sizeof(*jobs), GFP_KERNEL);
	masks = kvcalloc(nr, cpumask_size(), GFP_KERNEL);
	if (!jobs || !masks) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nr; i++)
		jobs[i].cpus = masks + i * cpumask_size();

	/* Everybody admitted before, then this VM as it would be. */
	list_for_each_entry(w, &lvmm_resv_vms, sched.resv_node) {
		if (w == vm || READ_ONCE(w->dead))
			continue;
		for (i = 0; i < LVMM_MAX_VCPUS; i++) {
			struct lvmm_vcpu *v = w->vcpus[i];

			if (!v)
				continue;
			lvmm_resv_cpus(jobs[n].cpus, v->sched.pin);
			jobs[n++].share = w->sched.resv_cost;
		}
	}
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *v = vm->vcpus[i];

		if (!v)
			continue;
		lvmm_resv_cpus(jobs[n].cpus, req->pin[i] ? req->pin[i] :
							   v->sched.pin);
		jobs[n++].share = lvmm_resv_cost(reserve, slack, vm->nr_vcpus);
	}

	for (i = 0; i < n && !r; i++) {
		u64 others = 0;

		if (jobs[i].share > limit) {
			NL_SET_ERR_MSG(extack,
				       "a vCPU's share of this reservation, with its slack for exits (reserve_slack), is more than one CPU may reserve (reserve_max): reserve less, or spread it over more vCPUs");
			r = -EBUSY;
			break;
		}
		for (j = 0; j < n; j++)
			if (j != i && cpumask_intersects(jobs[i].cpus, jobs[j].cpus))
				others += jobs[j].share;
		if (jobs[i].share + div_u64(others, cpumask_weight(jobs[i].cpus)) > limit) {
			NL_SET_ERR_MSG(extack,
				       "the host cannot honour this reservation: with those admitted already, the CPUs its vCPUs may use would be over-committed (reserve_max); reserve less, or pin to CPUs with room");
			r = -EBUSY;
		}
	}
out:
	kvfree(masks);
	kvfree(jobs);
	return r;
}

/* Start or stop the windows, and the thread that boosts. */
static int lvmm_resv_start(void)
{
	struct kthread_worker *w;

	lockdep_assert_held(&lvmm_resv_admit);
	if (!lvmm_resv_worker) {
		w = kthread_create_worker(0, "lvmm-resv");
		if (IS_ERR(w))
			return PTR_ERR(w);
		/* Above the boosted vCPUs, as it has to get them going. */
		sched_set_fifo(w->task);
		lvmm_resv_worker = w;
	}
	if (list_empty(&lvmm_resv_vms)) {
		u64 end = ktime_get_ns() + LVMM_RESV_WINDOW_NS;

		WRITE_ONCE(lvmm_resv_end, end);
		hrtimer_start(&lvmm_resv_timer, ns_to_ktime(end),
			      HRTIMER_MODE_ABS_HARD);
	}
	return 0;
}

/*
 * The VM's reservation becomes @reserve with @slack, already admitted:
 * each vCPU's quotas, and the VM on the host's list.  The vCPUs take the
 * new quotas at their next window.
 */
static int lvmm_resv_store(struct lvmm_vm *vm, u32 reserve, u32 slack)
{
	struct lvmm_vm_sched *s = &vm->sched;
	s64 quota = 0, cpu_quota = 0;
	int i, r;

	lockdep_assert_held(&lvmm_resv_admit);
	if (reserve && !s->reserve) {
		r = lvmm_resv_start();
		if (r)
			return r;
		list_add_tail(&s->resv_node, &lvmm_resv_vms);
	} else if (!reserve && s->reserve) {
		list_del_init(&s->resv_node);
		if (list_empty(&lvmm_resv_vms))
			hrtimer_cancel(&lvmm_resv_timer);
	}
	if (reserve) {
		quota = div_u64((u64)LVMM_RESV_WINDOW_NS * reserve,
				100 * vm->nr_vcpus);
		s->resv_slack = slack;
		s->resv_cost = lvmm_resv_cost(reserve, slack, vm->nr_vcpus);
		cpu_quota = div_u64((u64)LVMM_RESV_WINDOW_NS * s->resv_cost,
				    1000000);
	}
	rt_mutex_lock(&lvmm_resv_lock);
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu_sched *vs = vm->vcpus[i] ?
					     &vm->vcpus[i]->sched : NULL;

		if (!vs)
			continue;
		WRITE_ONCE(vs->resv_quota, quota);
		WRITE_ONCE(vs->resv_cpu_quota, cpu_quota);
		/* Boosted ones end it themselves, at the kick of sched-set. */
		if (reserve && !vs->resv_listed)
			list_add_tail(&vs->resv_node, &lvmm_resv_vcpus);
		else if (!reserve && vs->resv_listed)
			list_del(&vs->resv_node);
		WRITE_ONCE(vs->resv_listed, reserve != 0);
	}
	rt_mutex_unlock(&lvmm_resv_lock);
	WRITE_ONCE(s->reserve, reserve);
	WRITE_ONCE(s->reserved, reserve != 0);
	return 0;
}

/*
 * The reservation part of a request: checked against what the VM's
 * vCPUs can use, admitted, and stored.  Under vm->lock, which vCPU
 * creation takes: a VM with a reservation gets no new vCPU, as its
 * reservation was split among those it had.  Under lvmm_resv_admit, as
 * the pins of the request, which admission counted, are stored.
 */
static int lvmm_sched_set_reserve(struct lvmm_vm *vm,
				  const struct lvmm_sched_req *req,
				  struct netlink_ext_ack *extack)
{
	struct lvmm_vm_sched *s = &vm->sched;
	u32 reserve = req->has_reserve ? req->reserve : s->reserve;
	u32 slack = s->resv_slack;
	bool pins = false;
	int i, r;

	for (i = 0; i < LVMM_MAX_VCPUS; i++)
		pins |= !!req->pin[i];
	if (reserve == s->reserve && !(reserve && pins))
		return 0;
	lockdep_assert_held(&vm->lock);
	lockdep_assert_held(&lvmm_resv_admit);
	if (reserve && !vm->nr_vcpus) {
		NL_SET_ERR_MSG(extack,
			       "the VM has no vCPUs yet: create them before reserving CPU time");
		return -EINVAL;
	}
	if (reserve > 100 * vm->nr_vcpus) {
		NL_SET_ERR_MSG(extack,
			       "a reservation of more than 100 per vCPU is more than the VM can use");
		return -EINVAL;
	}
	if (reserve && div_u64((u64)LVMM_RESV_WINDOW_NS * reserve,
			       100 * vm->nr_vcpus) < LVMM_RESV_SLICE_MIN_NS) {
		NL_SET_ERR_MSG(extack,
			       "a vCPU's share of this reservation is too small to use (20 us of each 10 ms window at least): reserve more");
		return -EINVAL;
	}
	/*
	 * Less, with the same pins, always fits: even over a lower limit,
	 * with the slack it was admitted with.
	 */
	if (reserve && (reserve > s->reserve || pins)) {
		slack = READ_ONCE(reserve_slack);
		r = lvmm_resv_admissible(vm, req, reserve, slack, extack);
		if (r)
			return r;
	}
	return lvmm_resv_store(vm, reserve, slack);
}

/*
 * Apply a checked request: all of it, under vm->sched.lock.  Vcpus whose
 * policy changed get LVMM_REQ_SCHED and a kick; throttled ones wake up.
 */
int lvmm_sched_set(struct lvmm_vm *vm, const struct lvmm_sched_req *req,
		   unsigned int privs, struct netlink_ext_ack *extack)
{
	struct lvmm_vm_sched *s = &vm->sched;
	bool admin = privs & LVMM_SCHED_PRIV_ADMIN;
	bool cap_changed = false;
	int i, r;

	/* The CPUs a pin may name stay online until it is stored. */
	cpus_read_lock();
	mutex_lock(&s->lock);
	r = lvmm_sched_check(vm, req, privs, extack);
	if (r)
		goto out_unlock;
	/* First what may still be refused: then nothing else has changed. */
	mutex_lock(&vm->lock);
	mutex_lock(&lvmm_resv_admit);
	r = lvmm_sched_set_reserve(vm, req, extack);
	if (r) {
		mutex_unlock(&lvmm_resv_admit);
		mutex_unlock(&vm->lock);
		goto out_unlock;
	}
	if (req->has_weight) {
		/* The owner re-sending an admin's weight leaves it the admin's. */
		bool same = s->weight_set && req->weight == s->weight;

		WRITE_ONCE(s->weight, req->weight);
		WRITE_ONCE(s->nice, lvmm_sched_weight_to_nice(req->weight));
		WRITE_ONCE(s->weight_admin, admin || (same && s->weight_admin));
		WRITE_ONCE(s->weight_set, true);
	}
	if ((req->has_cap && req->cap != s->cap) ||
	    (req->has_period && req->period_us != s->period_us)) {
		s->cap = req->has_cap ? req->cap : s->cap;
		s->period_us = req->has_period ? req->period_us : s->period_us;
		lvmm_sched_set_cap(s, lvmm_sched_cap(vm), s->period_us);
		cap_changed = true;
	}
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (!req->pin[i] || !vcpu)
			continue;
		vcpu->sched.pin_admin = admin ||
			(vcpu->sched.pin_admin &&
			 cpumask_equal(vcpu->sched.pin, req->pin[i]));
		lvmm_sched_store_pin(vcpu, req->pin[i]);
		WRITE_ONCE(vcpu->sched.pin_broken, false);
	}
	mutex_unlock(&lvmm_resv_admit);
	mutex_unlock(&vm->lock);
	WRITE_ONCE(s->seq, s->seq + 1);
	mutex_unlock(&s->lock);
	cpus_read_unlock();

	lvmm_sched_kick_policy(vm, cap_changed);
	lvmm_nl_event(vm, LVMM_EVENT_SCHED, -1);
	return 0;

out_unlock:
	mutex_unlock(&s->lock);
	cpus_read_unlock();
	return r;
}

/* A consistent copy of the policy, for sched-get. */
void lvmm_sched_get(struct lvmm_vm *vm, struct lvmm_sched_info *info)
{
	struct lvmm_vm_sched *s = &vm->sched;
	int i;

	mutex_lock(&s->lock);
	info->weight = s->weight;
	info->weight_set = s->weight_set;
	info->nice = s->nice;
	info->cap = s->cap;
	info->period_us = s->period_us;
	info->reserve = s->reserve;
	/*
	 * Both in one period: a period that ends between the two reads
	 * would show a throttled period more than the completed ones allow.
	 */
	spin_lock_irq(&s->timer_lock);
	info->nr_periods = s->nr_periods;
	info->nr_throttled = atomic64_read(&s->nr_throttled);
	spin_unlock_irq(&s->timer_lock);
	info->throttled_ns = 0;
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (vcpu)
			info->throttled_ns += READ_ONCE(vcpu->sched.throttled_ns);
	}
	mutex_unlock(&s->lock);
}

/* A vCPU's pin, for sched-get: false if it has none. */
bool lvmm_sched_vcpu_pin(struct lvmm_vcpu *vcpu, struct cpumask *pin,
			 bool *broken)
{
	struct lvmm_vm_sched *s = &vcpu->vm->sched;
	bool pinned;

	mutex_lock(&s->lock);
	pinned = !cpumask_empty(vcpu->sched.pin);
	cpumask_copy(pin, vcpu->sched.pin);
	*broken = vcpu->sched.pin_broken;
	mutex_unlock(&s->lock);
	return pinned;
}

/* ---- CPU hotplug ---------------------------------------------------------- */

/* Pins that lost their last online CPU break, and mend when one is back. */
static void lvmm_sched_check_pins(struct lvmm_vm *vm)
{
	struct lvmm_vm_sched *s = &vm->sched;
	int i;

	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);
		int event = 0;
		bool online;

		if (!vcpu)
			continue;
		mutex_lock(&s->lock);
		online = cpumask_intersects(vcpu->sched.pin, cpu_active_mask);
		if (!cpumask_empty(vcpu->sched.pin) &&
		    online == vcpu->sched.pin_broken) {
			WRITE_ONCE(vcpu->sched.pin_broken, !online);
			event = online ? LVMM_EVENT_PIN_RESTORED :
					 LVMM_EVENT_PIN_BROKEN;
		}
		mutex_unlock(&s->lock);
		if (!event)
			continue;
		if (online) {
			set_bit(LVMM_REQ_SCHED, &vcpu->requests);
			lvmm_vcpu_kick(vcpu, LVMM_REQ_KICK);
			wake_up_all(&vm->pause_wq);
		}
		lvmm_nl_event(vm, event, vcpu->id);
	}
}

static void lvmm_sched_hotplug_fn(struct work_struct *work)
{
	struct lvmm_vm *vm;
	u32 id = 1;

	/* Wait for the hotplug operation that queued us to finish. */
	cpus_read_lock();
	cpus_read_unlock();
	while ((vm = lvmm_vm_next(NULL, &id))) {
		lvmm_sched_check_pins(vm);
		lvmm_vm_put(vm);
		id++;
	}
}

static DECLARE_WORK(lvmm_sched_hotplug_work, lvmm_sched_hotplug_fn);
static enum cpuhp_state lvmm_sched_hp_state;

static int lvmm_sched_cpu_change(unsigned int cpu)
{
	if (atomic_read(&lvmm_sched_nr_pinned))
		schedule_work(&lvmm_sched_hotplug_work);
	return 0;
}

int lvmm_sched_init(void)
{
	int r;

	r = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN, "lvmm/sched:online",
				      lvmm_sched_cpu_change,
				      lvmm_sched_cpu_change);
	if (r < 0)
		return r;
	lvmm_sched_hp_state = r;
	hrtimer_init(&lvmm_resv_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	lvmm_resv_timer.function = lvmm_resv_window_fn;
	kthread_init_work(&lvmm_resv_work, lvmm_resv_work_fn);
	return 0;
}

void lvmm_sched_exit(void)
{
	cpuhp_remove_state_nocalls(lvmm_sched_hp_state);
	flush_work(&lvmm_sched_hotplug_work);
	/* No VM is left, so no reservation: the timer is stopped. */
	WARN_ON_ONCE(!list_empty(&lvmm_resv_vms));
	hrtimer_cancel(&lvmm_resv_timer);
	if (lvmm_resv_worker)
		kthread_destroy_worker(lvmm_resv_worker);
}

/* ---- object lifetime ------------------------------------------------------ */

void lvmm_sched_vm_init(struct lvmm_vm *vm)
{
	struct lvmm_vm_sched *s = &vm->sched;

	mutex_init(&s->lock);
	spin_lock_init(&s->timer_lock);
	hrtimer_init(&s->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	s->timer.function = lvmm_sched_period_fn;
	s->weight = LVMM_SCHED_WEIGHT_DEFAULT;
	s->period_us = LVMM_SCHED_PERIOD_US_DEFAULT;
	s->period_ns = (u64)s->period_us * NSEC_PER_USEC;
	atomic64_set(&s->nr_throttled, 0);
	atomic_set(&s->nr_waiting, 0);
	s->throttled_gen = -1ULL;
	INIT_LIST_HEAD(&s->resv_node);
}

/* Before the vCPUs go: admission reads their pins. */
void lvmm_sched_vm_destroy(struct lvmm_vm *vm)
{
	hrtimer_cancel(&vm->sched.timer);
	if (vm->sched.reserve) {
		mutex_lock(&lvmm_resv_admit);
		lvmm_resv_store(vm, 0, 0);
		mutex_unlock(&lvmm_resv_admit);
	}
}

int lvmm_sched_vcpu_init(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vcpu_sched *vs = &vcpu->sched;

	if (!zalloc_cpumask_var(&vs->pin, GFP_KERNEL_ACCOUNT) ||
	    !zalloc_cpumask_var(&vs->saved, GFP_KERNEL_ACCOUNT) ||
	    !zalloc_cpumask_var(&vs->applied, GFP_KERNEL_ACCOUNT)) {
		free_cpumask_var(vs->applied);
		free_cpumask_var(vs->saved);
		free_cpumask_var(vs->pin);
		return -ENOMEM;
	}
	vs->throttled_gen = -1ULL;
	INIT_LIST_HEAD(&vs->resv_node);
	hrtimer_init(&vs->slice, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
	vs->slice.function = lvmm_sched_slice_fn;
	return 0;
}

void lvmm_sched_vcpu_destroy(struct lvmm_vcpu *vcpu)
{
	hrtimer_cancel(&vcpu->sched.slice);
	if (!cpumask_empty(vcpu->sched.pin))
		atomic_dec(&lvmm_sched_nr_pinned);
	put_pid(vcpu->sched.pinned);
	free_cpumask_var(vcpu->sched.applied);
	free_cpumask_var(vcpu->sched.saved);
	free_cpumask_var(vcpu->sched.pin);
}
