// SPDX-License-Identifier: GPL-2.0
/*
 * Many vCPUs in one VM on as many threads, and several VMs in several
 * processes at once.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

#define NR_VCPUS	64
#define NR_ITERS	100

static u64 shared_counter;

static void guest_vcpu(u64 id)
{
	for (u64 i = 0; i < NR_ITERS; i++) {
		__atomic_add_fetch(&shared_counter, 1, __ATOMIC_SEQ_CST);
		GUEST_SYNC_ARGS(id, i, 0, 0, 0);
	}
	GUEST_DONE();
}

static void *vcpu_thread(void *arg)
{
	struct lvmm_vcpu *vcpu = arg;
	struct ucall uc;

	for (u64 i = 0; i < NR_ITERS; i++) {
		TEST_ASSERT(vcpu_run_ucall(vcpu, &uc) == UCALL_SYNC,
			    "vCPU %u: no SYNC", vcpu->id);
		TEST_ASSERT(uc.args[0] == vcpu->id && uc.args[1] == i,
			    "vCPU %u: SYNC(%llu, %llu), wanted (%u, %llu)",
			    vcpu->id, (unsigned long long)uc.args[0],
			    (unsigned long long)uc.args[1], vcpu->id,
			    (unsigned long long)i);
	}
	vcpu_expect_done(vcpu);
	return NULL;
}

static void run_vcpus(struct __test_metadata *_metadata, int nr)
{
	struct lvmm_vcpu *vcpus[MAX_VCPUS];
	pthread_t threads[MAX_VCPUS];
	struct lvmm_vm_info info;
	struct lvmm_vm *vm;

	vm = vm_create_with_vcpus(nr, guest_vcpu, vcpus);
	ASSERT_EQ(0, lvmm_vm_info(&vm->h, &info));
	EXPECT_EQ((u32)nr, info.nr_vcpus);
	for (int i = 0; i < nr; i++)
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, vcpu_thread,
					    vcpus[i]));
	for (int i = 0; i < nr; i++)
		pthread_join(threads[i], NULL);
	/* Every vCPU's atomic increments hit the same guest memory. */
	sync_global_from_guest(vm, shared_counter);
	EXPECT_EQ((u64)nr * NR_ITERS, shared_counter);
	vm_free(vm);
}

/* Only TEST_F() takes a timeout in this harness. */
FIXTURE(smp) {
	int unused;
};

FIXTURE_SETUP(smp)
{
}

FIXTURE_TEARDOWN(smp)
{
}

TEST_F_TIMEOUT(smp, many_vcpus, 120)
{
	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_MAX_VCPUS) >= NR_VCPUS);
	run_vcpus(_metadata, NR_VCPUS);
}

#define NR_PROCS	8

TEST_F_TIMEOUT(smp, vms_in_processes, 120)
{
	pid_t pids[NR_PROCS];
	int status;

	TEST_REQUIRE(lvmm_dev_present());
	for (int p = 0; p < NR_PROCS; p++) {
		pids[p] = fork();
		ASSERT_LE(0, pids[p]);
		if (!pids[p]) {
			/* 4 vCPUs each; run_vcpus() fails by exiting. */
			run_vcpus(_metadata, 4);
			_exit(_metadata->passed ? 0 : 1);
		}
	}
	for (int p = 0; p < NR_PROCS; p++) {
		ASSERT_EQ(pids[p], waitpid(pids[p], &status, 0));
		EXPECT_TRUE(WIFEXITED(status)) TH_LOG("process %d", p);
		EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("process %d", p);
	}
}

TEST_HARNESS_MAIN
