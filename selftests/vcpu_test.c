// SPDX-License-Identifier: GPL-2.0
/*
 * LVMM_CREATE_VCPU validation, the run mapping and the vCPU reset state.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

TEST(create_validation)
{
	struct lvmm_create_vcpu args;
	struct lvmm_vm *vm;
	int fd;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_bare(NULL);

	memset(&args, 0, sizeof(args));
	args.id = MAX_VCPUS;
	EXPECT_EQ(-EINVAL, lvmm_vcpu_create_raw(&vm->h, &args));
	args.id = ~0U;
	EXPECT_EQ(-EINVAL, lvmm_vcpu_create_raw(&vm->h, &args));

	memset(&args, 0, sizeof(args));
	args.flags = 1;
	EXPECT_EQ(-EINVAL, lvmm_vcpu_create_raw(&vm->h, &args));
	args.flags = 1U << 31;
	EXPECT_EQ(-EINVAL, lvmm_vcpu_create_raw(&vm->h, &args));
	for (int i = 0; i < 3; i++) {
		memset(&args, 0, sizeof(args));
		args.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, lvmm_vcpu_create_raw(&vm->h, &args))
			TH_LOG("reserved[%d]", i);
	}

	memset(&args, 0, sizeof(args));
	args.id = MAX_VCPUS - 1;
	fd = lvmm_vcpu_create_raw(&vm->h, &args);
	EXPECT_LE(0, fd);
	EXPECT_EQ(-EEXIST, lvmm_vcpu_create_raw(&vm->h, &args));
	/* A closed vCPU's id stays taken while the VM lives. */
	close(fd);
	vm_free(vm);
}

TEST(max_vcpus)
{
	struct lvmm_vm_info info;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_MAX_VCPUS) == MAX_VCPUS);
	vm = vm_create_bare(NULL);
	for (u32 i = 0; i < MAX_VCPUS; i++)
		vm_vcpu_add_raw(vm, MAX_VCPUS - 1 - i);
	ASSERT_EQ(0, lvmm_vm_info(&vm->h, &info));
	EXPECT_EQ(MAX_VCPUS, info.nr_vcpus);
	vm_free(vm);
}

TEST(run_mapping)
{
	struct lvmm_vm *vm;
	struct lvmm_vcpu *vcpu;
	long page = getpagesize();
	void *p;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_bare(NULL);
	vcpu = vm_vcpu_add_raw(vm, 0);
	EXPECT_EQ((size_t)2 * page, vcpu->h.run_size);

	/* The I/O data page alone, as a VMM could map it. */
	p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->h.fd,
		 LVMM_RUN_IO_PAGE_OFFSET * page);
	ASSERT_NE(MAP_FAILED, p);
	((volatile char *)p)[0] = 0x5a;
	EXPECT_EQ(0x5a, ((volatile char *)vcpu->run)[page]);
	munmap(p, page);

	/* Nothing lies beyond the two pages. */
	p = mmap(NULL, page, PROT_READ, MAP_SHARED, vcpu->h.fd, 2 * page);
	EXPECT_EQ(MAP_FAILED, p);
	vm_free(vm);
}

TEST(reset_state)
{
	struct lvmm_sregs sregs;
	struct lvmm_regs regs;
	struct lvmm_vm *vm;
	struct lvmm_vcpu *vcpu;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_bare(NULL);
	vcpu = vm_vcpu_add_raw(vm, 0);
	vcpu_regs_get(vcpu, &regs);
	vcpu_sregs_get(vcpu, &sregs);

	EXPECT_EQ(0xfff0, regs.rip);
	EXPECT_EQ(0x2, regs.rflags);
	EXPECT_EQ(0xf000, sregs.cs.selector);
	EXPECT_EQ(0xffff0000, sregs.cs.base);
	EXPECT_EQ(0xffff, sregs.cs.limit);
	EXPECT_EQ(0, sregs.cr0 & (X86_CR0_PE | X86_CR0_PG));
	EXPECT_EQ(0, sregs.efer & (EFER_LME | EFER_LMA));
	EXPECT_EQ(0, sregs.ds.base);
	EXPECT_EQ(0xffff, sregs.ds.limit);
	EXPECT_EQ(0xffff, sregs.idt.limit);
	vm_free(vm);
}

TEST_HARNESS_MAIN
