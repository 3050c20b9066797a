// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/lvmm: API version, extensions, the vCPU mmap size, ENOTTY for unknown
 * ioctls on every kind of fd and EFAULT for bad pointers.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

TEST(api_version)
{
	int fd;

	TEST_REQUIRE(lvmm_dev_present());
	fd = open_lvmm_dev();
	EXPECT_EQ(LVMM_API_VERSION, lvmm_api_version(fd));
	EXPECT_EQ(1, ioctl(fd, LVMM_GET_API_VERSION, 0));
	/* The argument must be 0. */
	EXPECT_EQ(-1, ioctl(fd, LVMM_GET_API_VERSION, 1));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

TEST(extensions)
{
	static const struct { unsigned long cap; int val; } caps[] = {
		{ LVMM_CAP_MAX_MEMSLOTS, 32 },
		{ LVMM_CAP_MAX_VCPUS, 128 },
		{ LVMM_CAP_MAX_MEMSLOT_SIZE_MB, 65536 },
		{ LVMM_CAP_READONLY_MEM, 1 },
		{ LVMM_CAP_IMMEDIATE_EXIT, 1 },
		{ LVMM_CAP_NMI, 1 },
		{ LVMM_CAP_XSAVE, 1 },
		{ LVMM_CAP_HYPERCALL, 1 },
		{ LVMM_CAP_MAX_VM_NAME, LVMM_VM_NAME_LEN },
		{ LVMM_CAP_DIRTY_LOG, 1 },
		{ LVMM_CAP_VCPU_STATE, 1 },
		{ LVMM_CAP_SNAPSHOT, LVMM_STREAM_VERSION },
		{ LVMM_CAP_MIGRATE, 2 },
		{ LVMM_CAP_IRQCHIP, 1 },
		/* Unknown extensions report 0, not an error. */
		{ 0, 0 },
		{ 15, 0 },
		{ 0x7fffffff, 0 },
		{ ~0UL, 0 },
	};
	int fd;

	TEST_REQUIRE(lvmm_dev_present());
	fd = open_lvmm_dev();
	for (size_t i = 0; i < ARRAY_SIZE(caps); i++) {
		int v = lvmm_check_extension(fd, caps[i].cap);

		EXPECT_EQ(caps[i].val, v)
			TH_LOG("LVMM_CHECK_EXTENSION(%lu)", caps[i].cap);
	}
	close(fd);
}

TEST(vcpu_mmap_size)
{
	int fd;

	TEST_REQUIRE(lvmm_dev_present());
	fd = open_lvmm_dev();
	EXPECT_EQ(2 * getpagesize(), lvmm_vcpu_mmap_size(fd));
	EXPECT_EQ(LVMM_RUN_IO_PAGE_OFFSET * getpagesize() + getpagesize(),
		  lvmm_vcpu_mmap_size(fd));
	EXPECT_LE(sizeof(struct lvmm_run), (size_t)getpagesize());
	close(fd);
}

/* Numbers in our magic that no ioctl uses, and a foreign magic. */
static const unsigned long bogus_ioctls[] = {
	_IO(LVMMIO, 0x04), _IO(LVMMIO, 0x7f), _IO(LVMMIO, 0xff),
	_IOR(LVMMIO, 0x40, __u64), _IOW('K', 0x80, __u64), _IO(0xAE, 0x01),
};

static void expect_enotty(struct __test_metadata *_metadata, int fd,
			  const char *what)
{
	for (size_t i = 0; i < ARRAY_SIZE(bogus_ioctls); i++) {
		u64 buf = 0;
		int ret = __lvmm_ioctl(fd, bogus_ioctls[i], &buf);

		EXPECT_EQ(-ENOTTY, ret)
			TH_LOG("%s: ioctl 0x%lx", what, bogus_ioctls[i]);
	}
}

TEST(enotty)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	int fd;

	TEST_REQUIRE(lvmm_dev_present());
	fd = open_lvmm_dev();
	vm = vm_create_bare(NULL);
	vcpu = vm_vcpu_add_raw(vm, 0);

	expect_enotty(_metadata, fd, "/dev/lvmm");
	expect_enotty(_metadata, vm->fd, "VM fd");
	expect_enotty(_metadata, vcpu->h.fd, "vCPU fd");

	/* Each fd only takes its own level's ioctls. */
	EXPECT_EQ(-ENOTTY, __lvmm_ioctl(vm->fd, LVMM_GET_API_VERSION, 0));
	EXPECT_EQ(-ENOTTY, __lvmm_ioctl(vcpu->h.fd, LVMM_GET_API_VERSION, 0));
	EXPECT_EQ(-ENOTTY, __lvmm_ioctl(fd, LVMM_RUN, 0));
	EXPECT_EQ(-ENOTTY, __lvmm_ioctl(vcpu->h.fd, LVMM_CREATE_VCPU, NULL));
	vm_free(vm);
	close(fd);
}

TEST(efault)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	void *bad;
	int fd;

	TEST_REQUIRE(lvmm_dev_present());
	/* A mapped but inaccessible page: copy_{from,to}_user must fail. */
	bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, bad);

	fd = open_lvmm_dev();
	vm = vm_create_bare(NULL);
	vcpu = vm_vcpu_add_raw(vm, 0);

	EXPECT_EQ(-EFAULT, __lvmm_ioctl(fd, LVMM_CREATE_VM, bad));
	EXPECT_EQ(-EFAULT, __lvmm_ioctl(fd, LVMM_CREATE_VM, NULL));
	EXPECT_EQ(-EFAULT, __vm_ioctl(vm, LVMM_SET_MEMSLOT, bad));
	EXPECT_EQ(-EFAULT, __vm_ioctl(vm, LVMM_CREATE_VCPU, bad));
	EXPECT_EQ(-EFAULT, __vm_ioctl(vm, LVMM_GET_VM_INFO, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_GET_REGS, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_SET_REGS, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_GET_SREGS, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_SET_SREGS, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_GET_XSAVE, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_SET_XSAVE, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_GET_MSRS, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_SET_MSRS, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_GET_CPUID, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_SET_CPUID, bad));
	EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_INTERRUPT, bad));

	/* The header is readable but the entries are not. */
	{
		char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct lvmm_msrs *msrs;

		ASSERT_NE(MAP_FAILED, page);
		ASSERT_EQ(0, mprotect(page + 4096, 4096, PROT_NONE));
		msrs = (struct lvmm_msrs *)(page + 4096 - sizeof(*msrs));
		memset(msrs, 0, sizeof(*msrs));
		msrs->nmsrs = 4;
		EXPECT_EQ(-EFAULT, __vcpu_ioctl(vcpu, LVMM_GET_MSRS, msrs));
		munmap(page, 8192);
	}

	vm_free(vm);
	close(fd);
	munmap(bad, 4096);
}

TEST(vm_info)
{
	struct lvmm_vm_info info;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_bare("info-test");
	memset(&info, 0xff, sizeof(info));
	ASSERT_EQ(0, lvmm_vm_info(&vm->h, &info));
	EXPECT_STREQ("info-test", info.name);
	EXPECT_EQ(vm->h.id, info.id);
	EXPECT_EQ(0, info.flags);
	EXPECT_EQ(0, info.nr_vcpus);
	EXPECT_EQ(0, info.nr_memslots);
	EXPECT_EQ(0, info.mem_size);

	vm_vcpu_add_raw(vm, 0);
	vm_vcpu_add_raw(vm, 5);
	vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	vm_add_memslot(vm, 3, LVMM_MEMSLOT_READONLY, SZ_1G, 3 * SZ_4K);
	ASSERT_EQ(0, lvmm_vm_info(&vm->h, &info));
	EXPECT_EQ(2, info.nr_vcpus);
	EXPECT_EQ(2, info.nr_memslots);
	EXPECT_EQ(SZ_2M + 3 * SZ_4K, info.mem_size);

	vm_delete_memslot(vm, 0);
	ASSERT_EQ(0, lvmm_vm_info(&vm->h, &info));
	EXPECT_EQ(1, info.nr_memslots);
	EXPECT_EQ(3 * SZ_4K, info.mem_size);
	vm_free(vm);
}

TEST_HARNESS_MAIN
