// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupt injection with request_interrupt_window, LVMM_INTERRUPT
 * validation, and NMI injection.
 */
#include "kselftest_harness.h"
#include "lvmm_util.h"

#define IRQ_VECTOR	0x40

static volatile u64 irq_count, irq_vector, nmi_count;

static void guest_irq_handler(struct ex_regs *regs)
{
	irq_vector = regs->vector;
	irq_count++;
}

static void guest_nmi_handler(struct ex_regs *regs)
{
	(void)regs;
	nmi_count++;
}

static void guest_irq(void)
{
	cli();
	GUEST_SYNC(get_rflags() & X86_EFLAGS_IF);
	sti();
	while (!irq_count)
		cpu_relax();
	cli();
	GUEST_SYNC_ARGS(irq_count, irq_vector, 0, 0, 0);
	/* NMIs get through with IF=0. */
	while (!nmi_count)
		cpu_relax();
	GUEST_SYNC_ARGS(nmi_count, irq_count, 0, 0, 0);
	GUEST_DONE();
}

TEST(interrupt_window_and_injection)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct lvmm_run *run;
	struct ucall uc;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_irq);
	run = vcpu->run;
	vm_init_descriptor_tables(vm);
	vm_install_exception_handler(vm, IRQ_VECTOR, guest_irq_handler);
	vm_install_exception_handler(vm, NMI_VECTOR, guest_nmi_handler);

	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_EQ(0, uc.args[0]);
	/* Set on every exit: interrupts are off at this ucall. */
	EXPECT_EQ(0, run->if_flag);
	EXPECT_EQ(0, run->ready_for_interrupt_injection);

	run->request_interrupt_window = 1;
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_IRQ_WINDOW_OPEN);
	EXPECT_EQ(1, run->if_flag);
	EXPECT_EQ(1, run->ready_for_interrupt_injection);
	run->request_interrupt_window = 0;

	EXPECT_EQ(-EINVAL, lvmm_interrupt(&vcpu->h, 31));
	EXPECT_EQ(-EINVAL, lvmm_interrupt(&vcpu->h, 0));
	EXPECT_EQ(-EINVAL, lvmm_interrupt(&vcpu->h, 256));
	{
		struct lvmm_interrupt bad = { .vector = IRQ_VECTOR, .flags = 1 };

		EXPECT_EQ(-EINVAL, __vcpu_ioctl(vcpu, LVMM_INTERRUPT, &bad));
		bad.flags = 0;
		bad.reserved = 1;
		EXPECT_EQ(-EINVAL, __vcpu_ioctl(vcpu, LVMM_INTERRUPT, &bad));
	}
	ASSERT_EQ(0, lvmm_interrupt(&vcpu->h, IRQ_VECTOR));
	EXPECT_EQ(-EBUSY, lvmm_interrupt(&vcpu->h, IRQ_VECTOR + 1));

	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_EQ(1, uc.args[0]);
	EXPECT_EQ(IRQ_VECTOR, uc.args[1]);

	/* Delivered, so the queue is free again: but IF=0 now, so it waits. */
	if (lvmm_cap(LVMM_CAP_NMI)) {
		ASSERT_EQ(0, lvmm_interrupt(&vcpu->h, IRQ_VECTOR));
		ASSERT_EQ(0, lvmm_nmi(&vcpu->h));
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
		EXPECT_EQ(1, uc.args[0]);
		EXPECT_EQ(1, uc.args[1]);	/* the IRQ is still pending */
		vcpu_expect_done(vcpu);
	}
	vm_free(vm);
}

/* An interrupt queued while the guest has IF=1 is taken at once. */
static void guest_spin_irq(void)
{
	sti();
	GUEST_SYNC(0);
	for (u64 i = 1; i <= 3; i++) {
		while (irq_count < i)
			cpu_relax();
		GUEST_SYNC_ARGS(i, irq_vector, 0, 0, 0);
	}
	GUEST_DONE();
}

TEST(repeated_injection)
{
	static const u32 vec[] = { IRQ_VECTOR, IRQ_VECTOR + 1, 255 };
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_spin_irq);
	vm_init_descriptor_tables(vm);
	for (u32 i = 0; i < ARRAY_SIZE(vec); i++)
		vm_install_exception_handler(vm, vec[i], guest_irq_handler);
	vcpu_expect_sync(vcpu, 0);
	EXPECT_EQ(1, vcpu->run->if_flag);
	EXPECT_EQ(1, vcpu->run->ready_for_interrupt_injection);
	for (u32 i = 0; i < ARRAY_SIZE(vec); i++) {
		ASSERT_EQ(0, lvmm_interrupt(&vcpu->h, vec[i]));
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
		EXPECT_EQ(i + 1, uc.args[0]);
		EXPECT_EQ(vec[i], uc.args[1]);
	}
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/*
 * CR8 written while an interrupt waits for the guest's IF: lvmm asks
 * for an interrupt window then, and takes the CR8 write itself (QEMU
 * 7.2 aborts on it otherwise: Documentation/sandbox.rst).  The TPR the
 * guest wrote is the one it reads back and the host sees, and the
 * interrupt still arrives once IF is set.
 */
static void guest_cr8_in_window(void)
{
	u64 cr8;

	cli();
	GUEST_SYNC(0);
	asm volatile("mov %0, %%cr8" :: "r"(3ULL));
	asm volatile("mov %%cr8, %0" : "=r"(cr8));
	GUEST_SYNC(cr8);
	asm volatile("mov %0, %%cr8" :: "r"(0ULL));
	sti();
	while (!irq_count)
		cpu_relax();
	cli();
	GUEST_SYNC_ARGS(irq_count, irq_vector, 0, 0, 0);
	GUEST_DONE();
}

TEST(cr8_write_in_interrupt_window)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_sregs sregs;
	struct lvmm_vm *vm;
	struct ucall uc;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_cr8_in_window);
	vm_init_descriptor_tables(vm);
	vm_install_exception_handler(vm, IRQ_VECTOR, guest_irq_handler);
	vcpu_expect_sync(vcpu, 0);
	EXPECT_EQ(0, vcpu->run->if_flag);
	ASSERT_EQ(0, lvmm_interrupt(&vcpu->h, IRQ_VECTOR));
	vcpu_expect_sync(vcpu, 3);
	vcpu_sregs_get(vcpu, &sregs);
	EXPECT_EQ(3, sregs.cr8);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_EQ(1, uc.args[0]);
	EXPECT_EQ(IRQ_VECTOR, uc.args[1]);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

TEST_HARNESS_MAIN
