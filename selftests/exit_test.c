// SPDX-License-Identifier: GPL-2.0
/*
 * HLT, VMMCALL hypercalls and triple fault (SHUTDOWN) exits.
 */
#include "kselftest_harness.h"
#include "lvmm_util.h"

extern char guest_hlt_after[];

static void guest_hlt(void)
{
	asm volatile("hlt\n\t"
		     ".global guest_hlt_after\n"
		     "guest_hlt_after:" ::: "memory");
	GUEST_SYNC(1);
	asm volatile("hlt" ::: "memory");
	GUEST_DONE();
}

TEST(hlt)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_regs regs;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_hlt);
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_HLT);
	vcpu_regs_get(vcpu, &regs);
	EXPECT_EQ((u64)guest_hlt_after, regs.rip);
	/* Running again goes on after the HLT, not into it. */
	vcpu_expect_sync(vcpu, 1);
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_HLT);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

static void guest_hypercall_code(void)
{
	u64 ret;

	ret = guest_hypercall(1, 10, 11, 12, 13, 14, 15);
	GUEST_ASSERT_EQ(ret, 0x1111);
	ret = guest_hypercall(0xfffffffffffffff0ULL, ~0ULL, 0, 1ULL << 63,
			      0x8000, 0x7fffffff, 0x123456789ULL);
	GUEST_ASSERT_EQ(ret, (u64)-22);
	GUEST_DONE();
}

static void expect_hypercall(struct __test_metadata *_metadata,
			     struct lvmm_vcpu *vcpu, u64 nr, const u64 *args,
			     u64 ret)
{
	struct lvmm_run *run = vcpu->run;

	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_HYPERCALL);
	EXPECT_EQ(nr, run->hypercall.nr);
	for (int i = 0; i < 6; i++) {
		EXPECT_EQ(args[i], run->hypercall.args[i]) TH_LOG("arg %d", i);
	}
	run->hypercall.ret = ret;
}

TEST(hypercall)
{
	static const u64 args1[] = { 10, 11, 12, 13, 14, 15 };
	static const u64 args2[] = { ~0ULL, 0, 1ULL << 63, 0x8000, 0x7fffffff,
				     0x123456789ULL };
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_HYPERCALL));
	vm = vm_create_with_one_vcpu(&vcpu, guest_hypercall_code);
	expect_hypercall(_metadata, vcpu, 1, args1, 0x1111);
	expect_hypercall(_metadata, vcpu, 0xfffffffffffffff0ULL, args2, -22);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

static void guest_triple_fault(void)
{
	static const struct { u16 limit; u64 base; } __attribute__((packed))
		no_idt = { 0, 0 };

	GUEST_SYNC(1);
	/* #UD with an empty IDT: #GP, #DF, then shutdown. */
	asm volatile("lidt %0; ud2" :: "m"(no_idt));
	GUEST_FAIL("survived a triple fault");
}

static void guest_after_shutdown(void)
{
	GUEST_SYNC(2);
	GUEST_DONE();
}

TEST(triple_fault_shutdown)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_sregs sregs;
	struct lvmm_regs regs;
	struct lvmm_vm *vm;
	u64 tsc_before;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_triple_fault);
	vcpu_expect_sync(vcpu, 1);
	tsc_before = vcpu_get_msr(vcpu, MSR_IA32_TSC);
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_SHUTDOWN);

	/* Without new state it stays shut down. */
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_SHUTDOWN);

	/*
	 * The VMCB was undefined after the shutdown and was rebuilt: the
	 * vCPU shows the reset state, with the guest's TSC still going.
	 */
	vcpu_sregs_get(vcpu, &sregs);
	EXPECT_EQ(0xf000, sregs.cs.selector);
	EXPECT_EQ(0xffff0000ULL, sregs.cs.base);
	EXPECT_EQ(X86_CR0_NW | X86_CR0_CD | X86_CR0_ET, sregs.cr0);
	EXPECT_EQ(0, sregs.efer);
	EXPECT_LE(tsc_before, vcpu_get_msr(vcpu, MSR_IA32_TSC));

	/* New state from userspace: the vCPU runs again. */
	vcpu_set_long_mode(vcpu);
	vcpu_regs_get(vcpu, &regs);
	regs.rip = (u64)guest_after_shutdown;
	regs.rsp = STACKS_GPA + STACK_SIZE - 8;
	regs.rflags = X86_EFLAGS_FIXED;
	vcpu_regs_set(vcpu, &regs);
	vcpu_expect_sync(vcpu, 2);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* A guest exception with the IDT set up reaches its handler. */
static void guest_ud_handler(struct ex_regs *regs)
{
	GUEST_ASSERT_EQ(regs->vector, UD_VECTOR);
	regs->rip += 2;
	GUEST_SYNC(0x6d);
}

static void guest_ud(void)
{
	asm volatile("ud2");
	GUEST_DONE();
}

TEST(exception_handler)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_ud);
	vm_init_descriptor_tables(vm);
	vm_install_exception_handler(vm, UD_VECTOR, guest_ud_handler);
	vcpu_expect_sync(vcpu, 0x6d);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

TEST_HARNESS_MAIN
