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
 *    budget used up sleeps in RUN until the next refill.
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
 * without a lock.
 */
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/cpumask.h>
#include <linux/hrtimer.h>
#include <linux/netlink.h>
#include <linux/pid.h>
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
 * however many vCPUs overran together.  Then the next period number,
 * with release semantics: whoever sees the new number sees the budget.
 */
static void lvmm_sched_refill(struct lvmm_vm_sched *s)
{
	struct lvmm_vm *vm = container_of(s, struct lvmm_vm, sched);
	s64 old = atomic64_read(&s->budget), new, debt_max;

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
	/* Pairs with smp_load_acquire() in lvmm_sched_slice() and _throttle(). */
	smp_store_release(&s->gen, s->gen + 1);
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
	if (seen != gen && try_cmpxchg64(&s->throttled_gen, &seen, gen))
		atomic64_inc(&s->nr_throttled);
	if (vs->throttled_gen != gen) {
		vs->throttled_gen = gen;
		WRITE_ONCE(vs->nr_throttled, vs->nr_throttled + 1);
	}
	atomic_inc(&s->nr_waiting);
	smp_mb__after_atomic();	/* the count before the period number */
	r = wait_event_interruptible(vm->pause_wq,
				     /* pairs with the refill's release */
				     smp_load_acquire(&s->gen) != gen ||
				     !READ_ONCE(s->capped) ||
				     READ_ONCE(vm->paused) ||
				     READ_ONCE(vm->dead) ||
				     (READ_ONCE(vcpu->requests) &
				      (BIT(LVMM_REQ_KICK) | BIT(LVMM_REQ_SCHED))));
	atomic_dec(&s->nr_waiting);
	WRITE_ONCE(vs->throttled_ns, vs->throttled_ns + local_clock() - start);
	return r ? -EINTR : 0;
}

/* Take a slice of the budget, or wait for one. */
static int lvmm_sched_slice(struct lvmm_vcpu *vcpu)
{
	struct lvmm_vm_sched *s = &vcpu->vm->sched;
	/* The period first: pairs with smp_store_release() in the refill. */
	u64 gen = smp_load_acquire(&s->gen);
	s64 budget;

	lvmm_sched_mark_busy(s);
	budget = atomic64_read(&s->budget);
	if (budget <= 0)
		return lvmm_sched_throttle(vcpu, gen);
	/*
	 * A slice outlives the RUN that took it: a VMM that exits to
	 * userspace often does not pay for a timer per RUN.  Its end kicks
	 * a vCPU that may be out of guest mode by then, to no harm.
	 */
	if (READ_ONCE(vcpu->sched.slice_on))
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
	WRITE_ONCE(vcpu->sched.slice_on, true);
	hrtimer_start(&vcpu->sched.slice, ns_to_ktime(budget),
		      HRTIMER_MODE_REL_PINNED_HARD);
	return 1;
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
	if (s->weight_set)
		lvmm_sched_set_nice(s->nice, s->weight_admin);
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
	if (new_thread || vcpu->sched.seq != READ_ONCE(vcpu->vm->sched.seq) ||
	    lvmm_sched_thread_stale(vcpu))
		set_bit(LVMM_REQ_SCHED, &vcpu->requests);
}

/*
 * Before an entry, when lvmm_sched_pending(): apply a policy change, take
 * a slice of the cap.  1: enter; 0: look at the VM again first; -EINTR.
 */
int lvmm_sched_enter(struct lvmm_vcpu *vcpu)
{
	if (test_bit(LVMM_REQ_SCHED, &vcpu->requests)) {
		clear_bit(LVMM_REQ_SCHED, &vcpu->requests);
		lvmm_sched_apply(vcpu);
		return 0;
	}
	if (!READ_ONCE(vcpu->vm->sched.capped))
		return 1;
	return lvmm_sched_slice(vcpu);
}

/* Back from the guest after @guest_ns in guest mode: pay for it. */
void lvmm_sched_charge(struct lvmm_vcpu *vcpu, u64 guest_ns)
{
	atomic64_sub(guest_ns, &vcpu->vm->sched.budget);
}

/* ---- policy changes (sched-set) ------------------------------------------- */

static int lvmm_sched_check(struct lvmm_vm *vm,
			    const struct lvmm_sched_req *req, bool admin,
			    struct netlink_ext_ack *extack)
{
	struct lvmm_vm_sched *s = &vm->sched;
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
	if (req->reserve) {
		NL_SET_ERR_MSG(extack,
			       "CPU reservations are not offered by this lvmm yet");
		return -EOPNOTSUPP;
	}
	if (admin)
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
	if (!s->capped)
		atomic64_set(&s->budget, 0);
	old = atomic64_read(&s->budget);
	while (old > s->quota &&
	       !atomic64_try_cmpxchg(&s->budget, &old, s->quota))
		;
	WRITE_ONCE(s->capped, cap != 0);
	spin_unlock_irqrestore(&s->timer_lock, flags);
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
 * Apply a checked request: all of it, under vm->sched.lock.  Vcpus whose
 * policy changed get LVMM_REQ_SCHED and a kick; throttled ones wake up.
 */
int lvmm_sched_set(struct lvmm_vm *vm, const struct lvmm_sched_req *req,
		   bool admin, struct netlink_ext_ack *extack)
{
	struct lvmm_vm_sched *s = &vm->sched;
	bool cap_changed = false;
	int i, r;

	/* The CPUs a pin may name stay online until it is stored. */
	cpus_read_lock();
	mutex_lock(&s->lock);
	r = lvmm_sched_check(vm, req, admin, extack);
	if (r)
		goto out_unlock;
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
		lvmm_sched_set_cap(s, s->cap, s->period_us);
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
	WRITE_ONCE(s->seq, s->seq + 1);
	mutex_unlock(&s->lock);
	cpus_read_unlock();

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
	spin_lock_irq(&s->timer_lock);
	info->nr_periods = s->nr_periods;
	spin_unlock_irq(&s->timer_lock);
	info->nr_throttled = atomic64_read(&s->nr_throttled);
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
	return 0;
}

void lvmm_sched_exit(void)
{
	cpuhp_remove_state_nocalls(lvmm_sched_hp_state);
	flush_work(&lvmm_sched_hotplug_work);
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
}

void lvmm_sched_vm_destroy(struct lvmm_vm *vm)
{
	hrtimer_cancel(&vm->sched.timer);
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
