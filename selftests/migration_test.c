// SPDX-License-Identifier: GPL-2.0
/*
 * A vCPU whose thread moves between physical CPUs -- between two RUNs and
 * in the middle of one -- keeps its registers, FPU state and memory.  On
 * hardware this is where ASIDs, VMCB clean bits and the host save area
 * per CPU go wrong.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

#define HOPS		200
#define SPIN_ROUNDS	20
#define SPIN_ITERS	2000000ULL

/* Integer and SSE work whose result depends on every step. */
static u64 step(u64 x)
{
	return x * 6364136223846793005ULL + 1442695040888963407ULL;
}

static void guest_hops(void)
{
	volatile double d = 1.0;
	u64 x = 1;

	for (u64 i = 0; i < HOPS; i++) {
		x = step(x);
		d = d * 1.5 + 1.0;
		GUEST_SYNC_ARGS(i, x, (u64)(d / 1e6), 0, 0);
		if (d > 1e300)
			d = 1.0;
	}
	GUEST_DONE();
}

static void pin(pid_t tid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(tid, sizeof(set), &set);
}

static int nr_cpus(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN);
}

FIXTURE(migration) {
	int unused;
};

FIXTURE_SETUP(migration)
{
}

FIXTURE_TEARDOWN(migration)
{
}

/* The vCPU's thread hops to the other CPU before every RUN. */
TEST_F_TIMEOUT(migration, between_runs, 120)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;
	double d = 1.0;
	u64 x = 1;

	TEST_REQUIRE(lvmm_dev_present());
	if (nr_cpus() < 2)
		SKIP(return, "needs two CPUs");
	vm = vm_create_with_one_vcpu(&vcpu, guest_hops);
	for (u64 i = 0; i < HOPS; i++) {
		pin(0, i % nr_cpus());
		x = step(x);
		d = d * 1.5 + 1.0;
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
		ASSERT_EQ(i, uc.args[0]);
		ASSERT_EQ(x, uc.args[1]) TH_LOG("hop %llu: integer state lost",
						(unsigned long long)i);
		ASSERT_EQ((u64)(d / 1e6), uc.args[2])
			TH_LOG("hop %llu: SSE state lost", (unsigned long long)i);
		if (d > 1e300)
			d = 1.0;
	}
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* Long stretches without exits, so the thread moves mid-RUN. */
static void guest_spin(void)
{
	for (u64 r = 0; r < SPIN_ROUNDS; r++) {
		u64 x = r;

		for (u64 i = 0; i < SPIN_ITERS; i++)
			x = step(x);
		GUEST_SYNC_ARGS(r, x, 0, 0, 0);
	}
	GUEST_DONE();
}

struct mover {
	pid_t tid;
	volatile int stop;
};

static void *mover_thread(void *arg)
{
	struct mover *m = arg;
	int cpu = 0;

	while (!m->stop) {
		pin(m->tid, cpu++ % nr_cpus());
		usleep(2000);
	}
	return NULL;
}

TEST_F_TIMEOUT(migration, during_run, 300)
{
	struct mover m = { .tid = syscall(SYS_gettid) };
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	unsigned long seen = 0;
	pthread_t mover;
	struct ucall uc;

	TEST_REQUIRE(lvmm_dev_present());
	if (nr_cpus() < 2)
		SKIP(return, "needs two CPUs");
	vm = vm_create_with_one_vcpu(&vcpu, guest_spin);
	ASSERT_EQ(0, pthread_create(&mover, NULL, mover_thread, &m));
	for (u64 r = 0; r < SPIN_ROUNDS; r++) {
		u64 x = r;

		for (u64 i = 0; i < SPIN_ITERS; i++)
			x = step(x);
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
		seen |= 1UL << sched_getcpu();
		ASSERT_EQ(r, uc.args[0]);
		ASSERT_EQ(x, uc.args[1]) TH_LOG("round %llu: state lost",
						(unsigned long long)r);
	}
	vcpu_expect_done(vcpu);
	m.stop = 1;
	pthread_join(mover, NULL);
	/* The thread really moved (it left RUN on more than one CPU). */
	EXPECT_LT(1, __builtin_popcountl(seen));
	vm_free(vm);
}

TEST_HARNESS_MAIN
