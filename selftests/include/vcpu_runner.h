/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A vCPU run by a thread of its own, the way a VMM runs it, for tests that
 * act on a running guest from outside: pause, destroy, signals, policy.
 */
#ifndef SELFTEST_LVMM_VCPU_RUNNER_H
#define SELFTEST_LVMM_VCPU_RUNNER_H

#include <pthread.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "lvmm_util.h"

struct runner {
	struct lvmm_vcpu *vcpu;
	pthread_t thread;
	volatile pid_t tid;
	volatile int ret;		/* of the last LVMM_RUN */
	volatile u32 exit_reason;
	volatile bool in_run, done;
	volatile u64 done_ns;		/* now_ns() when RUN returned for good */
	bool retry_eintr;		/* run again after EINTR (the default) */
	volatile int nr_eintr;
};

/*
 * Run @vcpu in a new thread until an exit other than EINTR (or any exit,
 * without retry_eintr).  SIGUSR1 gets a no-op handler without SA_RESTART:
 * pthread_kill(r->thread, SIGUSR1) takes the thread out of LVMM_RUN.
 */
void runner_start(struct runner *r, struct lvmm_vcpu *vcpu);
/* runner_start() again on r->vcpu, keeping r's settings. */
void runner_restart(struct runner *r);
void runner_join(struct runner *r);

u64 now_ns(void);

/* Poll @cond for up to @ms milliseconds. */
#define wait_for(cond, ms) ({						\
	u64 __end = now_ns() + (u64)(ms) * 1000000;			\
	bool __ok;							\
	while (!(__ok = (cond)) && now_ns() < __end)			\
		usleep(1000);						\
	__ok;								\
})

/* Guest code: count in guest_counter until the host calls stop_guest(). */
void guest_count(void);
u64 counter_of(struct lvmm_vm *vm);
void stop_guest(struct lvmm_vm *vm);

/* A VM counting on one vCPU, run by @r, once it has counted a little. */
struct lvmm_vm *counting_vm(struct runner *r);
/* Start @vcpu of a guest_count VM in @r and wait until it counts. */
void counting_vm_start(struct runner *r, struct lvmm_vcpu *vcpu);

#endif /* SELFTEST_LVMM_VCPU_RUNNER_H */
