// SPDX-License-Identifier: GPL-2.0
/*
 * Delete and re-add a memory slot while a vCPU on another thread keeps
 * reading from it: the guest sees slot memory, then MMIO exits, then the new
 * slot's memory, and nothing crashes.
 */
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

#define SLOT		1
#define SLOT_GPA	SZ_1G
#define SLOT_SIZE	SZ_2M
#define MMIO_VALUE	0x77ULL
#define STOP		0xffffffffffffffffULL
#define ITERATIONS	50

static void guest_reader(void)
{
	volatile u64 *p = (volatile u64 *)(SLOT_GPA + 0x1000);
	u64 last = 0, v;

	for (;;) {
		v = *p;
		if (v == STOP)
			break;
		if (v != last) {
			GUEST_SYNC(v);
			last = v;
		}
	}
	GUEST_DONE();
}

struct state {
	struct lvmm_vcpu *vcpu;
	volatile u64 last_sync;
	volatile u64 mmio_exits;
	volatile bool done;
};

static void *vcpu_thread(void *arg)
{
	struct state *s = arg;
	struct lvmm_vcpu *vcpu = s->vcpu;
	struct lvmm_run *run = vcpu->run;
	struct ucall uc;

	for (;;) {
		vcpu_run(vcpu);
		if (run->exit_reason == LVMM_EXIT_MMIO) {
			TEST_ASSERT(run->mmio.phys_addr == SLOT_GPA + 0x1000 &&
				    !run->mmio.is_write && run->mmio.len == 8,
				    "bad MMIO exit: gpa 0x%llx len %u write %u",
				    run->mmio.phys_addr, run->mmio.len,
				    run->mmio.is_write);
			memcpy(run->mmio.data, &(u64){ MMIO_VALUE }, 8);
			s->mmio_exits++;
			continue;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			s->last_sync = uc.args[0];
			break;
		case UCALL_DONE:
			s->done = true;
			return NULL;
		case UCALL_ABORT:
			report_guest_assert(vcpu, &uc);
		default:
			TEST_FAIL("unexpected exit %s",
				  exit_reason_str(run->exit_reason));
		}
	}
}

static void wait_for(struct __test_metadata *_metadata, volatile u64 *what,
		     u64 val, const char *name)
{
	for (int i = 0; i < 10000 && *what != val; i++)
		usleep(500);
	ASSERT_EQ(val, *what) TH_LOG("waiting for %s", name);
}

TEST(delete_readd_while_running)
{
	struct state s = { 0 };
	struct lvmm_vm *vm;
	pthread_t t;
	u64 *hva;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&s.vcpu, guest_reader);
	hva = vm_add_memslot(vm, SLOT, 0, SLOT_GPA, SLOT_SIZE);
	ASSERT_EQ(0, pthread_create(&t, NULL, vcpu_thread, &s));

	for (u64 i = 1; i <= ITERATIONS; i++) {
		u64 before;

		hva[0x1000 / 8] = i;
		wait_for(_metadata, &s.last_sync, i, "the guest to read memory");

		before = s.mmio_exits;
		vm_delete_memslot(vm, SLOT);
		/* The read now exits; the guest reports the MMIO value. */
		wait_for(_metadata, &s.last_sync, MMIO_VALUE, "the MMIO value");
		EXPECT_LT(before, s.mmio_exits);

		hva = vm_add_memslot(vm, SLOT, 0, SLOT_GPA, SLOT_SIZE);
		EXPECT_EQ(0, hva[0x1000 / 8]);	/* a new, zeroed slot */
	}
	hva[0x1000 / 8] = STOP;
	pthread_join(t, NULL);
	EXPECT_TRUE(s.done);
	vm_free(vm);
}

TEST_HARNESS_MAIN
