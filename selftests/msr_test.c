// SPDX-License-Identifier: GPL-2.0
/*
 * MSRs from the host (GET/SET_MSRS, processed counts, refused indices) and
 * from the guest (rdmsr/wrmsr work, others inject #GP).
 */
#include "kselftest_harness.h"
#include "lvmm_util.h"

static const u32 supported[] = {
	MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK,
	MSR_KERNEL_GS_BASE, MSR_FS_BASE, MSR_GS_BASE, MSR_IA32_SYSENTER_CS,
	MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_IA32_CR_PAT,
	MSR_IA32_TSC, MSR_IA32_APICBASE, MSR_IA32_MISC_ENABLE,
	MSR_MTRR_DEF_TYPE, MSR_TSC_AUX,
};

static const struct { u32 index; u64 val; } writable[] = {
	{ MSR_STAR, 0x0023001000000000ULL },
	{ MSR_LSTAR, 0xffffffff81000000ULL },
	{ MSR_CSTAR, 0xffffffff81000040ULL },
	{ MSR_SYSCALL_MASK, 0x47700 },
	{ MSR_KERNEL_GS_BASE, 0xffff888012340000ULL },
	{ MSR_FS_BASE, 0x7f1234567000ULL },
	{ MSR_GS_BASE, 0xffff888076540000ULL },
	{ MSR_IA32_SYSENTER_CS, 0x10 },
	{ MSR_IA32_SYSENTER_ESP, 0xffffffff82000000ULL },
	{ MSR_IA32_SYSENTER_EIP, 0xffffffff81001000ULL },
	{ MSR_IA32_CR_PAT, 0x0007010600070106ULL },
	{ MSR_MTRR_DEF_TYPE, 0xc06 },
	{ MSR_TSC_AUX, 0x1234 },
};

static void guest_nop(void)
{
	GUEST_DONE();
}

TEST(host_get_set)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct lvmm_msrs *m;
	u64 v, tsc;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_nop);
	m = lvmm_msrs_alloc(ARRAY_SIZE(supported));
	for (size_t i = 0; i < ARRAY_SIZE(supported); i++)
		m->entries[i].index = supported[i];
	EXPECT_EQ((int)ARRAY_SIZE(supported), lvmm_get_msrs(&vcpu->h, m));
	EXPECT_EQ(EFER_LME | EFER_LMA | EFER_SCE, m->entries[0].data & ~EFER_NX);
	free(m);

	for (size_t i = 0; i < ARRAY_SIZE(writable); i++) {
		EXPECT_EQ(0, lvmm_set_msr(&vcpu->h, writable[i].index,
					  writable[i].val))
			TH_LOG("set 0x%x", writable[i].index);
		v = 0;
		EXPECT_EQ(0, lvmm_get_msr(&vcpu->h, writable[i].index, &v));
		EXPECT_EQ(writable[i].val, v) TH_LOG("MSR 0x%x", writable[i].index);
	}

	/* TSC_AUX, what RDPID reads: the guest's own, 32 bits, 0 at reset. */
	EXPECT_EQ(-EOPNOTSUPP, lvmm_set_msr(&vcpu->h, MSR_TSC_AUX, 1ULL << 32));
	EXPECT_EQ(0x1234, vcpu_get_msr(vcpu, MSR_TSC_AUX));

	ASSERT_EQ(0, lvmm_set_msr(&vcpu->h, MSR_IA32_TSC, 1ULL << 40));
	ASSERT_EQ(0, lvmm_get_msr(&vcpu->h, MSR_IA32_TSC, &tsc));
	EXPECT_LE(1ULL << 40, tsc);
	EXPECT_GT((1ULL << 40) + (1ULL << 36), tsc);	/* not seconds away */
	vm_free(vm);
}

TEST(host_refused)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct lvmm_msrs *m;
	u64 lstar;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_nop);
	m = lvmm_msrs_alloc(3);

	m->entries[0].index = MSR_STAR;
	m->entries[1].index = MSR_VM_HSAVE_PA;
	m->entries[2].index = MSR_LSTAR;
	EXPECT_EQ(1, lvmm_get_msrs(&vcpu->h, m));

	m->nmsrs = 1;
	m->entries[0].index = MSR_IA32_SPEC_CTRL;
	EXPECT_EQ(0, lvmm_get_msrs(&vcpu->h, m));
	m->entries[0].index = MSR_VM_CR;
	EXPECT_EQ(0, lvmm_get_msrs(&vcpu->h, m));

	/* SET stops at the refused MSR and leaves the rest alone. */
	ASSERT_EQ(0, lvmm_set_msr(&vcpu->h, MSR_LSTAR, 0x1000));
	m->nmsrs = 3;
	m->entries[0].index = MSR_CSTAR;
	m->entries[0].data = 0x2000;
	m->entries[1].index = MSR_VM_HSAVE_PA;
	m->entries[1].data = 0x100000;
	m->entries[2].index = MSR_LSTAR;
	m->entries[2].data = 0x3000;
	EXPECT_EQ(1, lvmm_set_msrs(&vcpu->h, m));
	ASSERT_EQ(0, lvmm_get_msr(&vcpu->h, MSR_LSTAR, &lstar));
	EXPECT_EQ(0x1000, lstar);
	EXPECT_EQ(-EOPNOTSUPP, lvmm_set_msr(&vcpu->h, MSR_IA32_SPEC_CTRL, 1));

	/* flags must be 0. */
	m->nmsrs = 1;
	m->flags = 1;
	EXPECT_EQ(-EINVAL, lvmm_set_msrs(&vcpu->h, m));
	m->flags = 0;
	m->nmsrs = LVMM_MAX_MSR_ENTRIES + 1;
	EXPECT_GT(0, lvmm_get_msrs(&vcpu->h, m));
	free(m);
	vm_free(vm);
}

static u64 gp_count;
static u64 gp_last_rip;

static void guest_gp_handler(struct ex_regs *regs)
{
	gp_count++;
	gp_last_rip = regs->rip;
	regs->rip += 2;		/* rdmsr and wrmsr are 2 bytes long */
}

static void guest_msrs(void)
{
	GUEST_ASSERT_EQ(rdmsr(MSR_STAR), 0x0023001000000000ULL);
	GUEST_ASSERT_EQ(rdmsr(MSR_EFER) & EFER_LMA, EFER_LMA);
	wrmsr(MSR_LSTAR, 0xffffffff81234560ULL);
	wrmsr(MSR_KERNEL_GS_BASE, 0x12345000ULL);
	GUEST_ASSERT_EQ(rdmsr(MSR_KERNEL_GS_BASE), 0x12345000ULL);
	GUEST_ASSERT_EQ(gp_count, 0);

	rdmsr(MSR_VM_HSAVE_PA);
	GUEST_ASSERT_EQ(gp_count, 1);
	wrmsr(MSR_VM_HSAVE_PA, 0x100000);
	GUEST_ASSERT_EQ(gp_count, 2);
	wrmsr(MSR_IA32_SPEC_CTRL, 1);
	GUEST_ASSERT_EQ(gp_count, 3);
	rdmsr(MSR_VM_CR);
	GUEST_ASSERT_EQ(gp_count, 4);
	rdmsr(0x12345678);
	GUEST_ASSERT_EQ(gp_count, 5);
	GUEST_SYNC(gp_last_rip);
	GUEST_DONE();
}

TEST(guest_rdmsr_wrmsr)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_msrs);
	vm_init_descriptor_tables(vm);
	vm_install_exception_handler(vm, GP_VECTOR, guest_gp_handler);
	vcpu_set_msr(vcpu, MSR_STAR, 0x0023001000000000ULL);

	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	/* The #GP was on the rdmsr, inside the guest's code. */
	EXPECT_LE(IMAGE_GPA, uc.args[0]);
	EXPECT_EQ(0x0f, ((u8 *)uc.args[0])[0]);
	EXPECT_EQ(0x32, ((u8 *)uc.args[0])[1]);
	EXPECT_EQ(0xffffffff81234560ULL, vcpu_get_msr(vcpu, MSR_LSTAR));
	EXPECT_EQ(0x12345000ULL, vcpu_get_msr(vcpu, MSR_KERNEL_GS_BASE));
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

TEST_HARNESS_MAIN
