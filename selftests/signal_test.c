// SPDX-License-Identifier: GPL-2.0
/*
 * Getting a vCPU out of the guest: immediate_exit, a signal to the vCPU
 * thread (EINTR, LVMM_EXIT_INTR), and SIGKILL of a process whose guest spins.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

static void guest_spin(void)
{
	GUEST_SYNC(1);
	for (;;)
		cpu_relax();
}

static void guest_sync_loop(void)
{
	for (u64 i = 0;; i++)
		GUEST_SYNC(i);
}

TEST(immediate_exit)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_IMMEDIATE_EXIT));
	vm = vm_create_with_one_vcpu(&vcpu, guest_sync_loop);
	vcpu_expect_sync(vcpu, 0);

	vcpu->run->immediate_exit = 1;
	EXPECT_EQ(-EINTR, __vcpu_run(vcpu));
	EXPECT_EQ(LVMM_EXIT_INTR, vcpu->run->exit_reason);
	EXPECT_EQ(-EINTR, __vcpu_run(vcpu));
	vcpu->run->immediate_exit = 0;
	/* The guest did not move. */
	vcpu_expect_sync(vcpu, 1);
	vm_free(vm);
}

static void sigusr1(int sig)
{
	(void)sig;
}

struct kicker {
	pthread_t target;
	volatile bool stop;
};

static void *kick(void *arg)
{
	struct kicker *k = arg;

	while (!k->stop) {
		usleep(20000);
		pthread_kill(k->target, SIGUSR1);
	}
	return NULL;
}

TEST(signal_eintr)
{
	struct sigaction sa = { .sa_handler = sigusr1 };
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct kicker k;
	pthread_t t;
	int ret;

	TEST_REQUIRE(lvmm_dev_present());
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	vm = vm_create_with_one_vcpu(&vcpu, guest_spin);
	vcpu_expect_sync(vcpu, 1);

	k.target = pthread_self();
	k.stop = false;
	ASSERT_EQ(0, pthread_create(&t, NULL, kick, &k));
	/* The guest spins forever: only the signal gets us out. */
	ret = __vcpu_run(vcpu);
	k.stop = true;
	pthread_join(t, NULL);
	EXPECT_EQ(-EINTR, ret);
	EXPECT_EQ(LVMM_EXIT_INTR, vcpu->run->exit_reason);

	/* And the vCPU can be run (and interrupted) again. */
	k.stop = false;
	ASSERT_EQ(0, pthread_create(&t, NULL, kick, &k));
	ret = __vcpu_run(vcpu);
	k.stop = true;
	pthread_join(t, NULL);
	EXPECT_EQ(-EINTR, ret);
	vm_free(vm);
}

TEST(sigkill_spinning_guest)
{
	char name[LVMM_VM_NAME_LEN];
	struct lvmm_vm_handle h;
	int pipefd[2], status, dev;
	char c;
	pid_t pid;

	TEST_REQUIRE(lvmm_dev_present());
	snprintf(name, sizeof(name), "killed-%d", getpid());
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct lvmm_vcpu *vcpu;
		struct lvmm_vm *vm = vm_create();
		struct lvmm_vm_handle named;

		/* A second, named VM so that the parent can look for it. */
		ASSERT_EQ(0, lvmm_vm_create(vm->dev_fd, name, &named));
		vcpu = vm_vcpu_add(vm, 0, guest_spin);
		vcpu_expect_sync(vcpu, 1);
		ASSERT_EQ(1, write(pipefd[1], "r", 1));
		vcpu_run(vcpu);
		_exit(1);	/* not reached */
	}
	close(pipefd[1]);
	ASSERT_EQ(1, read(pipefd[0], &c, 1));
	usleep(100000);		/* let it get deep into the guest */
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));

	/* The module still works and the dead process's VM is gone. */
	dev = open_lvmm_dev();
	EXPECT_EQ(LVMM_API_VERSION, lvmm_api_version(dev));
	ASSERT_EQ(0, lvmm_vm_create(dev, name, &h));
	lvmm_vm_close(&h);
	close(dev);
	{
		struct lvmm_vcpu *vcpu;
		struct lvmm_vm *vm = vm_create_with_one_vcpu(&vcpu, guest_spin);

		vcpu_expect_sync(vcpu, 1);
		vm_free(vm);
	}
}

static u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* One RUN with SIGALRM due in @ms; returns __vcpu_run()'s value. */
static int run_with_alarm(struct lvmm_vcpu *vcpu, unsigned int ms)
{
	struct itimerval it = { .it_value.tv_usec = ms * 1000 };
	struct itimerval off = {};
	int r;

	setitimer(ITIMER_REAL, &it, NULL);
	r = __vcpu_run(vcpu);
	setitimer(ITIMER_REAL, &off, NULL);
	return r;
}

/*
 * Host interrupts end guest mode whatever the guest's IF, also after an
 * entry the CPU refused.  QEMU 7.2 writes its own int_ctl, without
 * V_INTR_MASKING, into the VMCB when VMRUN fails an early check (here a
 * CR3 above its 40 physical-address bits, which it tests even for a
 * real-mode guest).  A guest spinning with IF clear then kept its host
 * CPU from every interrupt and IPI: the whole -smp 1 sandbox stopped
 * (issue 13, Documentation/sandbox.rst section 3).
 */
TEST(cli_spin_after_refused_entry)
{
	static const u8 code[] = { 0xfa, 0xeb, 0xfe };	/* cli; jmp . */
	struct sigaction sa = { .sa_handler = sigusr1 };
	struct lvmm_sregs sregs;
	struct lvmm_regs regs;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	u64 t0, ms;
	u8 *mem;
	int r;

	TEST_REQUIRE(lvmm_dev_present());
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	vm = vm_create_bare(NULL);
	mem = vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	memcpy(mem + 0x1000, code, sizeof(code));
	vcpu = vm_vcpu_add_raw(vm, 0);
	vcpu_sregs_get(vcpu, &sregs);
	sregs.cs.selector = 0;
	sregs.cs.base = 0;
	sregs.cr3 = 1ULL << 44;		/* paging is off: unused */
	vcpu_sregs_set(vcpu, &sregs);
	vcpu_regs_get(vcpu, &regs);
	regs.rip = 0x1000;
	vcpu_regs_set(vcpu, &regs);

	/* An emulator refuses the entry; hardware runs the spin. */
	r = run_with_alarm(vcpu, 100);
	TH_LOG("first entry: %d, exit reason %u (internal error %u, data %llx %llx)",
	       r, vcpu->run->exit_reason, vcpu->run->internal.suberror,
	       vcpu->run->internal.data[0], vcpu->run->internal.data[1]);

	sregs.cr3 = 0;
	vcpu_sregs_set(vcpu, &sregs);
	vcpu_regs_set(vcpu, &regs);
	t0 = mono_ns();
	r = run_with_alarm(vcpu, 100);
	ms = (mono_ns() - t0) / 1000000;
	EXPECT_EQ(-EINTR, r);
	/* Without the fix: forever on one CPU, the watchdog's 1 s on more. */
	EXPECT_LT(ms, 700) TH_LOG("the spin held its CPU for %llu ms", ms);
	vcpu_regs_get(vcpu, &regs);
	EXPECT_EQ(0x1001, regs.rip);
	vm_free(vm);
}

TEST_HARNESS_MAIN
