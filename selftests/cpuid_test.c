// SPDX-License-Identifier: GPL-2.0
/*
 * CPUID as the guest sees it: the hypervisor bit and signature, VMX/SVM
 * hidden, and LVMM_SET_CPUID/LVMM_GET_CPUID.
 */
#include "kselftest_harness.h"
#include "lvmm_util.h"

static void guest_code(void)
{
	for (;;) {
		struct cpuid_regs l1 = guest_cpuid(1, 0);
		struct cpuid_regs e1 = guest_cpuid(0x80000001, 0);
		struct cpuid_regs hv = guest_cpuid(0x40000000, 0);

		GUEST_SYNC_ARGS(l1.ecx, e1.ecx, hv.ebx, hv.ecx, hv.edx);
	}
}

static void check_filtered(struct __test_metadata *_metadata,
			   struct ucall *uc)
{
	char sig[13];
	u32 r[3] = { uc->args[2], uc->args[3], uc->args[4] };

	EXPECT_NE(0, uc->args[0] & (1U << 31)) TH_LOG("hypervisor bit clear");
	EXPECT_EQ(0, uc->args[0] & (1U << 5)) TH_LOG("VMX visible");
	EXPECT_EQ(0, uc->args[1] & (1U << 2)) TH_LOG("SVM visible");
	memcpy(sig, r, 12);
	sig[12] = 0;
	EXPECT_STREQ("lvmmlvmmlvmm", sig);
}

static struct lvmm_cpuid_entry *find(struct lvmm_cpuid *c, u32 fn)
{
	for (u32 i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn)
			return &c->entries[i];
	return NULL;
}

TEST(guest_view)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	check_filtered(_metadata, &uc);
	vm_free(vm);
}

/*
 * The physical-address width the guest is told fits the 4-level nested
 * tables: a guest that trusted a wider host width could build GPAs the
 * tables cannot map.
 */
TEST(phys_addr_width)
{
	struct lvmm_cpuid_entry *e;
	struct lvmm_vcpu *vcpu;
	struct lvmm_cpuid *c;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	c = lvmm_cpuid_alloc(LVMM_MAX_CPUID_ENTRIES);
	ASSERT_EQ(0, lvmm_get_cpuid(&vcpu->h, c));
	e = find(c, 0x80000008);
	ASSERT_NE(NULL, e);
	EXPECT_GE(48, e->eax & 0xff);
	EXPECT_LE(32, e->eax & 0xff);
	EXPECT_EQ(0, (e->eax >> 16) & 0xff) TH_LOG("guest width: as above");
	free(c);
	vm_free(vm);
}

TEST(get_cpuid_e2big)
{
	struct lvmm_cpuid *c;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	u32 need;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	c = lvmm_cpuid_alloc(LVMM_MAX_CPUID_ENTRIES);
	c->nent = 1;
	ASSERT_EQ(-E2BIG, lvmm_get_cpuid(&vcpu->h, c));
	need = c->nent;
	EXPECT_LT(1, need);
	EXPECT_GE(LVMM_MAX_CPUID_ENTRIES, need);
	c->nent = need;
	ASSERT_EQ(0, lvmm_get_cpuid(&vcpu->h, c));
	EXPECT_EQ(need, c->nent);
	ASSERT_NE(NULL, find(c, 1));
	EXPECT_NE(0, find(c, 1)->ecx & (1U << 31));
	EXPECT_EQ(0, find(c, 1)->ecx & (1U << 5));
	c->nent = 0;
	EXPECT_EQ(-E2BIG, lvmm_get_cpuid(&vcpu->h, c));
	EXPECT_EQ(need, c->nent);
	free(c);
	vm_free(vm);
}

TEST(set_cpuid)
{
	struct lvmm_cpuid_entry *l1, *e1;
	struct lvmm_cpuid *c;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	c = lvmm_cpuid_alloc(LVMM_MAX_CPUID_ENTRIES);
	ASSERT_EQ(0, lvmm_get_cpuid(&vcpu->h, c));
	l1 = find(c, 1);
	e1 = find(c, 0x80000001);
	ASSERT_NE(NULL, l1);
	ASSERT_NE(NULL, e1);
	l1->ecx &= ~1U;			/* hide SSE3: a visible change */
	l1->ecx |= 1U << 5;		/* VMX: stays filtered */
	l1->ecx &= ~(1U << 31);		/* hypervisor: stays set */
	e1->ecx |= 1U << 2;		/* SVM: stays filtered */
	ASSERT_EQ(0, lvmm_set_cpuid(&vcpu->h, c));

	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_EQ(0, uc.args[0] & 1) TH_LOG("SSE3 still visible");
	check_filtered(_metadata, &uc);

	memset(c->entries, 0, LVMM_MAX_CPUID_ENTRIES * sizeof(c->entries[0]));
	c->nent = LVMM_MAX_CPUID_ENTRIES;
	ASSERT_EQ(0, lvmm_get_cpuid(&vcpu->h, c));
	ASSERT_NE(NULL, find(c, 1));
	EXPECT_EQ(0, find(c, 1)->ecx & 1);

	/* flags and reserved are checked. */
	c->flags = 1;
	EXPECT_EQ(-EINVAL, lvmm_set_cpuid(&vcpu->h, c));
	c->flags = 0;
	c->reserved = 1;
	EXPECT_EQ(-EINVAL, lvmm_set_cpuid(&vcpu->h, c));
	c->reserved = 0;
	c->nent = LVMM_MAX_CPUID_ENTRIES + 1;
	EXPECT_NE(0, lvmm_set_cpuid(&vcpu->h, c));
	free(c);
	vm_free(vm);
}

TEST_HARNESS_MAIN
