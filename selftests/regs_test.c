// SPDX-License-Identifier: GPL-2.0
/*
 * Register state round trips (regs, sregs, xsave), that the guest sees what
 * the host set and the host sees what the guest did, and flags/reserved
 * validation on the SET ioctls.
 */
#include "kselftest_harness.h"
#include "lvmm_util.h"

static void guest_regs(void)
{
	u64 r15, xmm0;

	asm volatile("movq %%xmm0, %0" : "=r"(xmm0));
	asm volatile("mov %%r15, %0" : "=r"(r15));
	GUEST_SYNC_ARGS(1, xmm0, r15, 0, 0);
	asm volatile("mov %0, %%rax; movq %%rax, %%xmm15"
		     :: "r"(0x0123456789abcdefULL) : "rax", "xmm15");
	asm volatile("mov %0, %%r14" :: "r"(0xfeedULL) : "r14");
	GUEST_SYNC(2);
	GUEST_DONE();
}

TEST(regs_round_trip)
{
	struct lvmm_regs regs, out;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	u64 *r;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_regs);
	vcpu_regs_get(vcpu, &regs);
	r = &regs.rax;
	for (int i = 0; i < 16; i++)
		if (r + i != &regs.rsp)
			r[i] = 0x1111111111111111ULL * (i + 1) ^ (u64)i << 56;
	regs.rflags = 0x2 | 0x1 | 0x4 | 0x40 | 0x800;	/* CF PF ZF OF */
	vcpu_regs_set(vcpu, &regs);
	vcpu_regs_get(vcpu, &out);
	EXPECT_EQ(0, memcmp(&regs, &out, offsetof(struct lvmm_regs, flags)));
	vm_free(vm);
}

TEST(regs_reach_guest_and_back)
{
	struct lvmm_xsave *xsave;
	struct lvmm_regs regs;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;
	u64 v;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_XSAVE));
	vm = vm_create_with_one_vcpu(&vcpu, guest_regs);
	xsave = calloc(1, sizeof(*xsave));
	ASSERT_EQ(0, lvmm_get_xsave(&vcpu->h, xsave));
	/* XMM0 lives at byte 160 of the legacy area. */
	v = 0x5555aaaa3333ccccULL;
	memcpy((char *)xsave->region + 160, &v, 8);
	xsave->region[512 / 4] |= 3;	/* XSTATE_BV: x87 | SSE */
	ASSERT_EQ(0, lvmm_set_xsave(&vcpu->h, xsave));
	vcpu_regs_get(vcpu, &regs);
	regs.r15 = 0xabcdef0123ULL;
	vcpu_regs_set(vcpu, &regs);

	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_EQ(1, uc.args[0]);
	EXPECT_EQ(0x5555aaaa3333ccccULL, uc.args[1]);
	EXPECT_EQ(0xabcdef0123ULL, uc.args[2]);

	vcpu_expect_sync(vcpu, 2);
	vcpu_regs_get(vcpu, &regs);
	EXPECT_EQ(0xfeed, regs.r14);
	memset(xsave, 0, sizeof(*xsave));
	ASSERT_EQ(0, lvmm_get_xsave(&vcpu->h, xsave));
	memcpy(&v, (char *)xsave->region + 160 + 15 * 16, 8);
	EXPECT_EQ(0x0123456789abcdefULL, v);
	vcpu_expect_done(vcpu);
	free(xsave);
	vm_free(vm);
}

TEST(sregs_round_trip)
{
	struct lvmm_sregs sregs, out;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_regs);
	vcpu_sregs_get(vcpu, &sregs);
	EXPECT_EQ(PML4_GPA, sregs.cr3);
	EXPECT_EQ(GDT_GPA, sregs.gdt.base);
	EXPECT_EQ(IDT_GPA, sregs.idt.base);
	EXPECT_EQ(0xfff, sregs.idt.limit);
	EXPECT_EQ(GDT_CODE64, sregs.cs.selector);
	EXPECT_EQ(1, sregs.cs.l);
	EXPECT_NE(0, sregs.efer & EFER_LMA);
	EXPECT_NE(0, sregs.cr0 & X86_CR0_PG);

	sregs.cr2 = 0xdead0000ULL;
	sregs.fs.base = 0x7f0000001000ULL;
	sregs.gs.base = 0xffff888000000000ULL;
	sregs.cr8 = 5;
	vcpu_sregs_set(vcpu, &sregs);
	vcpu_sregs_get(vcpu, &out);
	EXPECT_EQ(sregs.cr2, out.cr2);
	EXPECT_EQ(sregs.fs.base, out.fs.base);
	EXPECT_EQ(sregs.gs.base, out.gs.base);
	EXPECT_EQ(sregs.cr8, out.cr8);
	EXPECT_EQ(sregs.cr0, out.cr0);
	EXPECT_EQ(sregs.cr4, out.cr4);
	EXPECT_EQ(sregs.efer, out.efer);
	EXPECT_EQ(sregs.tr.base, out.tr.base);
	EXPECT_EQ(sregs.tr.selector, out.tr.selector);
	EXPECT_EQ(sregs.ss.selector, out.ss.selector);
	EXPECT_EQ(sregs.gdt.limit, out.gdt.limit);
	/* The guest still runs after the round trip. */
	vcpu_sregs_get(vcpu, &sregs);
	sregs.cr8 = 0;
	vcpu_sregs_set(vcpu, &sregs);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &(struct ucall){}));
	vm_free(vm);
}

TEST(xsave_round_trip)
{
	struct lvmm_xsave *a, *b;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_XSAVE));
	vm = vm_create_with_one_vcpu(&vcpu, guest_regs);
	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	ASSERT_EQ(0, lvmm_get_xsave(&vcpu->h, a));
	/* FCW at 0, MXCSR at 24: the reset values. */
	EXPECT_EQ(0x37f, a->region[0] & 0xffff);
	EXPECT_EQ(0x1f80, a->region[6]);
	for (int i = 0; i < 16 * 4; i++)
		a->region[160 / 4 + i] = 0x01010101 * (i + 1);
	a->region[6] = 0x1f80 | 0x6000;	/* MXCSR rounding: toward zero */
	a->region[512 / 4] |= 3;
	ASSERT_EQ(0, lvmm_set_xsave(&vcpu->h, a));
	ASSERT_EQ(0, lvmm_get_xsave(&vcpu->h, b));
	EXPECT_EQ(0, memcmp(&a->region[160 / 4], &b->region[160 / 4], 256));
	EXPECT_EQ(a->region[6], b->region[6]);
	free(a);
	free(b);
	vm_free(vm);
}

TEST(set_flags_reserved)
{
	struct lvmm_sregs sregs;
	struct lvmm_regs regs;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_regs);
	vcpu_regs_get(vcpu, &regs);
	regs.flags = 1;
	EXPECT_EQ(-EINVAL, lvmm_set_regs(&vcpu->h, &regs));
	regs.flags = 0;
	regs.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, lvmm_set_regs(&vcpu->h, &regs));
	vcpu_sregs_get(vcpu, &sregs);
	sregs.flags = 1U << 31;
	EXPECT_EQ(-EINVAL, lvmm_set_sregs(&vcpu->h, &sregs));
	sregs.flags = 0;
	sregs.reserved[3] = 1;
	EXPECT_EQ(-EINVAL, lvmm_set_sregs(&vcpu->h, &sregs));
	/* Nothing of the rejected calls was applied. */
	{
		struct lvmm_regs now;

		vcpu_regs_get(vcpu, &now);
		EXPECT_EQ((u64)guest_regs, now.rip);
	}
	vm_free(vm);
}

TEST_HARNESS_MAIN
