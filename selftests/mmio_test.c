// SPDX-License-Identifier: GPL-2.0
/*
 * MMIO exits for accesses to unbacked guest-physical memory: reads and
 * writes of each size with the supported instructions (mov 88/89/8A/8B,
 * C6/C7, A0-A3, movzx, movsx, movnti).
 */
#include "kselftest_harness.h"
#include "lvmm_util.h"

#define MMIO	(MMIO_GPA + 0x100)	/* 0xc0000100: the moffs forms spell it out */
_Static_assert(MMIO_GPA + 0x100 == 0xc0000100, "moffs addresses below");

static void guest_mmio(void)
{
	u64 v;
	u32 v32;

	/* Writes: 88, 66 89, 89, REX.W 89, C6, C7, REX.W C7, movnti. */
	asm volatile("movb %b0, (%1)" :: "q"(0x11), "r"(MMIO) : "memory");
	asm volatile("movw %w0, (%1)" :: "r"(0x2233), "r"(MMIO + 2) : "memory");
	asm volatile("movl %k0, (%1)" :: "r"(0x44556677), "r"(MMIO + 4) : "memory");
	asm volatile("movq %0, (%1)" :: "r"(0x8899aabbccddeeffULL), "r"(MMIO + 8) : "memory");
	asm volatile("movb $0x5a, (%0)" :: "r"(MMIO + 1) : "memory");
	asm volatile("movl $0x12345678, (%0)" :: "r"(MMIO + 16) : "memory");
	asm volatile("movq $-2, (%0)" :: "r"(MMIO + 24) : "memory");
	asm volatile("movnti %0, (%1)" :: "r"(0x0badf00ddeadbeefULL), "r"(MMIO + 32) : "memory");
	/* A2/A3: moffs forms, absolute 64-bit address. */
	asm volatile("movabs %%al, 0xc0000128" :: "a"(0x77) : "memory");
	asm volatile("movabs %%eax, 0xc000012c" :: "a"(0xcafe) : "memory");

	/* Reads: 8A, 66 8B, 8B, REX.W 8B; the host answers 0xa1b2c3d4e5f60718. */
	v = 0xffffffffffffffffULL;
	asm volatile("movb (%1), %b0" : "+q"(v) : "r"(MMIO) : "memory");
	GUEST_ASSERT_EQ(v, 0xffffffffffffff18ULL);
	v = 0xffffffffffffffffULL;
	asm volatile("movw (%1), %w0" : "+r"(v) : "r"(MMIO) : "memory");
	GUEST_ASSERT_EQ(v, 0xffffffffffff0718ULL);
	v = 0xffffffffffffffffULL;
	asm volatile("movl (%1), %k0" : "+r"(v) : "r"(MMIO) : "memory");
	GUEST_ASSERT_EQ(v, 0xe5f60718ULL);	/* 32-bit writes zero-extend */
	asm volatile("movq (%1), %0" : "=r"(v) : "r"(MMIO) : "memory");
	GUEST_ASSERT_EQ(v, 0xa1b2c3d4e5f60718ULL);
	/* movzx, movsx of a byte 0x80 and a word 0x8001. */
	asm volatile("movzbq (%1), %0" : "=r"(v) : "r"(MMIO) : "memory");
	GUEST_ASSERT_EQ(v, 0x80);
	asm volatile("movzwl (%1), %k0" : "=r"(v32) : "r"(MMIO) : "memory");
	GUEST_ASSERT_EQ(v32, 0x8001);
	asm volatile("movsbq (%1), %0" : "=r"(v) : "r"(MMIO) : "memory");
	GUEST_ASSERT_EQ(v, 0xffffffffffffff80ULL);
	asm volatile("movswq (%1), %0" : "=r"(v) : "r"(MMIO) : "memory");
	GUEST_ASSERT_EQ(v, 0xffffffffffff8001ULL);
	/* A1: moffs load. */
	asm volatile("movabs 0xc0000130, %%eax" : "=a"(v32) :: "memory");
	GUEST_ASSERT_EQ(v32, 0x600dd00d);
	/* A read through a register other than RAX, into a high register. */
	{
		register u64 r13 asm("r13");

		asm volatile("movq (%1), %0" : "=r"(r13) : "r"(MMIO + 56) : "memory");
		GUEST_ASSERT_EQ(r13, 0x1234);
	}
	GUEST_DONE();
}

struct mmio_expect {
	u64 addr;
	u32 len;
	u8 write;
	u64 data;	/* written by the guest, or returned to it */
};

static const struct mmio_expect expected[] = {
	{ MMIO, 1, 1, 0x11 },
	{ MMIO + 2, 2, 1, 0x2233 },
	{ MMIO + 4, 4, 1, 0x44556677 },
	{ MMIO + 8, 8, 1, 0x8899aabbccddeeffULL },
	{ MMIO + 1, 1, 1, 0x5a },
	{ MMIO + 16, 4, 1, 0x12345678 },
	{ MMIO + 24, 8, 1, 0xfffffffffffffffeULL },
	{ MMIO + 32, 8, 1, 0x0badf00ddeadbeefULL },
	{ MMIO + 40, 1, 1, 0x77 },
	{ MMIO + 44, 4, 1, 0xcafe },
	{ MMIO, 1, 0, 0x18 },
	{ MMIO, 2, 0, 0x0718 },
	{ MMIO, 4, 0, 0xe5f60718 },
	{ MMIO, 8, 0, 0xa1b2c3d4e5f60718ULL },
	{ MMIO, 1, 0, 0x80 },
	{ MMIO, 2, 0, 0x8001 },
	{ MMIO, 1, 0, 0x80 },
	{ MMIO, 2, 0, 0x8001 },
	{ MMIO + 48, 4, 0, 0x600dd00d },
	{ MMIO + 56, 8, 0, 0x1234 },
};

TEST(mmio_each_size_and_instruction)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct lvmm_run *run;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_mmio);
	run = vcpu->run;

	for (size_t i = 0; i < ARRAY_SIZE(expected); i++) {
		const struct mmio_expect *e = &expected[i];
		struct ucall uc;
		u64 data = 0;

		vcpu_run(vcpu);
		if (get_ucall(vcpu, &uc) == UCALL_ABORT)
			report_guest_assert(vcpu, &uc);
		TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_MMIO);
		ASSERT_EQ(e->addr, run->mmio.phys_addr) TH_LOG("access %zu", i);
		ASSERT_EQ(e->len, run->mmio.len) TH_LOG("access %zu", i);
		ASSERT_EQ(e->write, run->mmio.is_write) TH_LOG("access %zu", i);
		if (e->write) {
			memcpy(&data, run->mmio.data, e->len);
			EXPECT_EQ(e->data, data) TH_LOG("access %zu", i);
		} else {
			memset(run->mmio.data, 0, sizeof(run->mmio.data));
			memcpy(run->mmio.data, &e->data, e->len);
		}
	}
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* Compiled C code's ordinary loads and stores to a device. */
static void guest_mmio_c(void)
{
	volatile u32 *reg = (volatile u32 *)(MMIO_GPA + 0x1000);

	for (u32 i = 0; i < 16; i++)
		reg[i] = reg[i] + i;
	GUEST_DONE();
}

TEST(mmio_loop)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct lvmm_run *run;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_mmio_c);
	run = vcpu->run;
	for (u32 i = 0; i < 16; i++) {
		u32 v;

		vcpu_run(vcpu);
		TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_MMIO);
		ASSERT_EQ(MMIO_GPA + 0x1000 + 4 * i, run->mmio.phys_addr);
		ASSERT_EQ(0, run->mmio.is_write);
		ASSERT_EQ(4, run->mmio.len);
		v = 1000 * i;
		memcpy(run->mmio.data, &v, 4);

		vcpu_run(vcpu);
		TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_MMIO);
		ASSERT_EQ(MMIO_GPA + 0x1000 + 4 * i, run->mmio.phys_addr);
		ASSERT_EQ(1, run->mmio.is_write);
		ASSERT_EQ(4, run->mmio.len);
		memcpy(&v, run->mmio.data, 4);
		ASSERT_EQ(1001 * i, v);
	}
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

TEST_HARNESS_MAIN
