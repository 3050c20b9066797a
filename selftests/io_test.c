// SPDX-License-Identifier: GPL-2.0
/*
 * Port I/O exits: IN and OUT of each size, and rep INS/OUTS string I/O that
 * the kernel may split over several exits.
 */
#include "kselftest_harness.h"
#include "lvmm_util.h"

#define PORT	0x3f8

static void guest_pio(void)
{
	outb(PORT, 0x12);
	outw(PORT + 1, 0x3456);
	outl(PORT + 2, 0x789abcde);
	GUEST_ASSERT_EQ(inb(PORT), 0xa5);
	GUEST_ASSERT_EQ(inw(PORT + 1), 0xbeef);
	GUEST_ASSERT_EQ(inl(PORT + 2), 0xdeadc0de);
	/* An 8-bit IN leaves the rest of RAX alone. */
	{
		u64 rax = 0x1122334455667700ULL;

		asm volatile("inb %%dx, %%al" : "+a"(rax) : "d"(PORT));
		GUEST_ASSERT_EQ(rax, 0x1122334455667742ULL);
	}
	GUEST_DONE();
}

static void expect_io(struct __test_metadata *_metadata,
		      struct lvmm_vcpu *vcpu, u8 dir, u8 size, u16 port)
{
	struct lvmm_run *run = vcpu->run;

	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_IO);
	EXPECT_EQ(dir, run->io.direction);
	EXPECT_EQ(size, run->io.size);
	EXPECT_EQ(port, run->io.port);
	EXPECT_EQ(1, run->io.count);
}

TEST(pio_each_size)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	u32 v = 0;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_pio);

	expect_io(_metadata, vcpu, LVMM_EXIT_IO_OUT, 1, PORT);
	EXPECT_EQ(0x12, *(u8 *)vcpu_io_data(vcpu));
	expect_io(_metadata, vcpu, LVMM_EXIT_IO_OUT, 2, PORT + 1);
	EXPECT_EQ(0x3456, *(u16 *)vcpu_io_data(vcpu));
	expect_io(_metadata, vcpu, LVMM_EXIT_IO_OUT, 4, PORT + 2);
	memcpy(&v, vcpu_io_data(vcpu), 4);
	EXPECT_EQ(0x789abcde, v);

	expect_io(_metadata, vcpu, LVMM_EXIT_IO_IN, 1, PORT);
	*(u8 *)vcpu_io_data(vcpu) = 0xa5;
	expect_io(_metadata, vcpu, LVMM_EXIT_IO_IN, 2, PORT + 1);
	*(u16 *)vcpu_io_data(vcpu) = 0xbeef;
	expect_io(_metadata, vcpu, LVMM_EXIT_IO_IN, 4, PORT + 2);
	v = 0xdeadc0de;
	memcpy(vcpu_io_data(vcpu), &v, 4);
	expect_io(_metadata, vcpu, LVMM_EXIT_IO_IN, 1, PORT);
	*(u8 *)vcpu_io_data(vcpu) = 0x42;
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* More than the one data page, so the kernel has to split it. */
#define STR_BYTES	(3 * 4096 + 100)

static u8 str_byte(u64 i)
{
	return (u8)(i * 7 + (i >> 8) + 1);
}

static void guest_string_io(u64 buf, u64 size)
{
	u64 count = STR_BYTES / size;
	u64 rcx = count, rsi = buf, rdi;

	for (u64 i = 0; i < STR_BYTES; i++)
		((volatile u8 *)buf)[i] = str_byte(i);

	switch (size) {
	case 1:
		asm volatile("rep outsb" : "+c"(rcx), "+S"(rsi) : "d"(PORT) : "memory");
		break;
	case 2:
		asm volatile("rep outsw" : "+c"(rcx), "+S"(rsi) : "d"(PORT) : "memory");
		break;
	case 4:
		asm volatile("rep outsl" : "+c"(rcx), "+S"(rsi) : "d"(PORT) : "memory");
		break;
	}
	GUEST_ASSERT_EQ(rcx, 0);
	GUEST_ASSERT_EQ(rsi, buf + count * size);
	GUEST_SYNC(1);

	for (u64 i = 0; i < STR_BYTES; i++)
		((volatile u8 *)buf)[i] = 0;
	rcx = count;
	rdi = buf;
	switch (size) {
	case 1:
		asm volatile("rep insb" : "+c"(rcx), "+D"(rdi) : "d"(PORT) : "memory");
		break;
	case 2:
		asm volatile("rep insw" : "+c"(rcx), "+D"(rdi) : "d"(PORT) : "memory");
		break;
	case 4:
		asm volatile("rep insl" : "+c"(rcx), "+D"(rdi) : "d"(PORT) : "memory");
		break;
	}
	GUEST_ASSERT_EQ(rcx, 0);
	GUEST_ASSERT_EQ(rdi, buf + count * size);
	for (u64 i = 0; i < count * size; i++)
		GUEST_ASSERT_EQ(((volatile u8 *)buf)[i], (u8)~str_byte(i));
	/* The byte after the last element is untouched. */
	GUEST_ASSERT_EQ(((volatile u8 *)buf)[count * size], 0);
	GUEST_DONE();
}

static void string_io(struct __test_metadata *_metadata, u8 size)
{
	u64 total = (STR_BYTES / size) * size, done;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct lvmm_run *run;
	int exits;

	vm = vm_create_with_one_vcpu(&vcpu, guest_string_io);
	run = vcpu->run;
	vcpu_args_set(vcpu, 2, vm_alloc(vm, STR_BYTES + SZ_4K), (u64)size);

	for (done = 0, exits = 0; done < total; exits++) {
		u8 *data;

		vcpu_run(vcpu);
		TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_IO);
		ASSERT_EQ(LVMM_EXIT_IO_OUT, run->io.direction);
		ASSERT_EQ(size, run->io.size);
		ASSERT_EQ(PORT, run->io.port);
		ASSERT_LT(0, run->io.count);
		ASSERT_GE(total - done, (u64)run->io.count * size);
		data = vcpu_io_data(vcpu);
		for (u64 i = 0; i < (u64)run->io.count * size; i++) {
			ASSERT_EQ(str_byte(done + i), data[i])
				TH_LOG("byte %llu", (unsigned long long)(done + i));
		}
		done += (u64)run->io.count * size;
	}
	EXPECT_LT(1, exits);	/* does not fit in the data page */
	vcpu_expect_sync(vcpu, 1);

	for (done = 0, exits = 0; done < total; exits++) {
		u8 *data;

		vcpu_run(vcpu);
		TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_IO);
		ASSERT_EQ(LVMM_EXIT_IO_IN, run->io.direction);
		ASSERT_EQ(size, run->io.size);
		ASSERT_EQ(PORT, run->io.port);
		ASSERT_LT(0, run->io.count);
		ASSERT_GE(total - done, (u64)run->io.count * size);
		data = vcpu_io_data(vcpu);
		for (u64 i = 0; i < (u64)run->io.count * size; i++)
			data[i] = ~str_byte(done + i);
		done += (u64)run->io.count * size;
	}
	EXPECT_LT(1, exits);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

TEST(rep_string_io_byte)
{
	TEST_REQUIRE(lvmm_dev_present());
	string_io(_metadata, 1);
}

TEST(rep_string_io_word)
{
	TEST_REQUIRE(lvmm_dev_present());
	string_io(_metadata, 2);
}

TEST(rep_string_io_dword)
{
	TEST_REQUIRE(lvmm_dev_present());
	string_io(_metadata, 4);
}

/* A single, non-rep OUTSB/INSB. */
static void guest_single_string(u64 buf)
{
	u64 rsi = buf, rdi = buf + 1;

	*(volatile u8 *)buf = 0x99;
	asm volatile("outsb" : "+S"(rsi) : "d"(PORT) : "memory");
	asm volatile("insb" : "+D"(rdi) : "d"(PORT) : "memory");
	GUEST_ASSERT_EQ(rsi, buf + 1);
	GUEST_ASSERT_EQ(rdi, buf + 2);
	GUEST_ASSERT_EQ(*(volatile u8 *)(buf + 1), 0x66);
	GUEST_DONE();
}

TEST(single_string_io)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_single_string);
	vcpu_args_set(vcpu, 1, vm_alloc(vm, SZ_4K));
	expect_io(_metadata, vcpu, LVMM_EXIT_IO_OUT, 1, PORT);
	EXPECT_EQ(0x99, *(u8 *)vcpu_io_data(vcpu));
	expect_io(_metadata, vcpu, LVMM_EXIT_IO_IN, 1, PORT);
	*(u8 *)vcpu_io_data(vcpu) = 0x66;
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

TEST_HARNESS_MAIN
