// SPDX-License-Identifier: GPL-2.0
/*
 * A vCPU run by a thread of its own, and a guest that counts.
 */
#include <signal.h>
#include <sys/syscall.h>

#include "vcpu_runner.h"

static volatile u64 guest_counter;
static volatile u64 guest_stop;

void guest_count(void)
{
	while (!guest_stop)
		guest_counter++;
	GUEST_DONE();
}

static void runner_sig(int sig)
{
	(void)sig;
}

static void *runner_fn(void *arg)
{
	struct runner *r = arg;

	r->tid = syscall(SYS_gettid);
	for (;;) {
		r->in_run = true;
		r->ret = __vcpu_run(r->vcpu);
		r->in_run = false;
		r->exit_reason = r->vcpu->run->exit_reason;
		if (r->ret == -EINTR) {
			r->nr_eintr++;
			if (r->retry_eintr)
				continue;
		}
		break;
	}
	r->done_ns = now_ns();
	r->done = true;
	return NULL;
}

void runner_restart(struct runner *r)
{
	struct sigaction sa = { .sa_handler = runner_sig };

	r->done = false;
	r->done_ns = 0;
	/* No SA_RESTART: the signal must end the ioctl, not restart it. */
	TEST_ASSERT(!sigaction(SIGUSR1, &sa, NULL), "sigaction");
	TEST_ASSERT(!pthread_create(&r->thread, NULL, runner_fn, r),
		    "pthread_create");
}

void runner_start(struct runner *r, struct lvmm_vcpu *vcpu)
{
	memset(r, 0, sizeof(*r));
	r->vcpu = vcpu;
	r->retry_eintr = true;
	runner_restart(r);
}

void runner_join(struct runner *r)
{
	pthread_join(r->thread, NULL);
}

u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

u64 counter_of(struct lvmm_vm *vm)
{
	return *(volatile u64 *)addr_gva2hva(vm, &guest_counter);
}

void stop_guest(struct lvmm_vm *vm)
{
	*(volatile u64 *)addr_gva2hva(vm, &guest_stop) = 1;
}

void counting_vm_start(struct runner *r, struct lvmm_vcpu *vcpu)
{
	runner_start(r, vcpu);
	TEST_ASSERT(wait_for(counter_of(vcpu->vm) > 1000, 20000),
		    "the guest does not count");
}

struct lvmm_vm *counting_vm(struct runner *r)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	vm = vm_create_with_one_vcpu(&vcpu, guest_count);
	counting_vm_start(r, vcpu);
	return vm;
}
