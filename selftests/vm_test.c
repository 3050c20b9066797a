// SPDX-License-Identifier: GPL-2.0
/*
 * LVMM_CREATE_VM: names, argument validation, create/destroy loops and the
 * lifetime of a VM's name (free once every fd of the VM is closed).
 */
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

/* Create with raw arguments; returns the fd or -errno. */
static int create_vm_raw(int dev, const char *name, struct lvmm_create_vm *out)
{
	struct lvmm_create_vm args;

	memset(&args, 0, sizeof(args));
	if (name)
		memcpy(args.name, name, strnlen(name, sizeof(args.name)));
	if (out)
		*out = args;
	return lvmm_vm_create_raw(dev, out ? out : &args);
}

TEST(valid_names)
{
	static const char * const names[] = {
		"a", "vm0", "A-Z_a.z-09", "...", "-", "_x_",
		"0123456789012345678901234567890",	/* 31 bytes + NUL */
	};
	int dev, fd;

	TEST_REQUIRE(lvmm_dev_present());
	dev = open_lvmm_dev();
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct lvmm_create_vm args;
		struct lvmm_vm_info info;

		fd = create_vm_raw(dev, names[i], &args);
		ASSERT_LE(0, fd) TH_LOG("name \"%s\": %s", names[i], strerror(-fd));
		EXPECT_STREQ(names[i], args.name);
		ASSERT_EQ(0, ioctl(fd, LVMM_GET_VM_INFO, &info));
		EXPECT_STREQ(names[i], info.name);
		EXPECT_EQ(args.id, info.id);
		close(fd);
	}
	close(dev);
}

TEST(invalid_names)
{
	static const char * const names[] = {
		"a b", "a/b", "a!", "vm\t", "x:y", "\xc3\xa9t\xc3\xa9", "a\n",
		"*", "../x", "a@b", "%s",
	};
	struct lvmm_create_vm args;
	int dev;

	TEST_REQUIRE(lvmm_dev_present());
	dev = open_lvmm_dev();
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		EXPECT_EQ(-EINVAL, create_vm_raw(dev, names[i], NULL))
			TH_LOG("name \"%s\"", names[i]);
	}

	/* 32 bytes with no NUL. */
	memset(&args, 0, sizeof(args));
	memset(args.name, 'a', sizeof(args.name));
	EXPECT_EQ(-EINVAL, lvmm_vm_create_raw(dev, &args));

	close(dev);
}

TEST(flags_id_reserved)
{
	struct lvmm_create_vm args;
	int dev;

	TEST_REQUIRE(lvmm_dev_present());
	dev = open_lvmm_dev();

	for (int bit = 0; bit < 32; bit++) {
		memset(&args, 0, sizeof(args));
		strcpy(args.name, "flags");
		args.flags = 1U << bit;
		EXPECT_EQ(-EINVAL, lvmm_vm_create_raw(dev, &args))
			TH_LOG("flags 0x%x", args.flags);
	}

	memset(&args, 0, sizeof(args));
	strcpy(args.name, "id");
	args.id = 7;
	EXPECT_EQ(-EINVAL, lvmm_vm_create_raw(dev, &args));

	for (int i = 0; i < 4; i++) {
		memset(&args, 0, sizeof(args));
		strcpy(args.name, "reserved");
		args.reserved[i] = 1ULL << 63;
		EXPECT_EQ(-EINVAL, lvmm_vm_create_raw(dev, &args))
			TH_LOG("reserved[%d]", i);
	}

	/* None of the rejected attempts left a VM behind. */
	memset(&args, 0, sizeof(args));
	strcpy(args.name, "reserved");
	{
		int fd = lvmm_vm_create_raw(dev, &args);

		EXPECT_LE(0, fd);
		close(fd);
	}
	close(dev);
}

TEST(duplicate_name)
{
	int dev, fd1, fd2;
	struct lvmm_create_vm a1, a2;

	TEST_REQUIRE(lvmm_dev_present());
	dev = open_lvmm_dev();
	fd1 = create_vm_raw(dev, "dup", &a1);
	ASSERT_LE(0, fd1);
	EXPECT_EQ(-EEXIST, create_vm_raw(dev, "dup", &a2));
	/* Names are case-sensitive. */
	fd2 = create_vm_raw(dev, "DUP", &a2);
	EXPECT_LE(0, fd2);
	close(fd2);

	/* Free once the only fd is closed. */
	close(fd1);
	fd1 = create_vm_raw(dev, "dup", &a1);
	EXPECT_LE(0, fd1);
	close(fd1);
	close(dev);
}

TEST(auto_name)
{
	struct lvmm_create_vm a1, a2;
	char want[LVMM_VM_NAME_LEN];
	int dev, fd1, fd2, fd3;

	TEST_REQUIRE(lvmm_dev_present());
	dev = open_lvmm_dev();
	fd1 = create_vm_raw(dev, "", &a1);
	ASSERT_LE(0, fd1);
	snprintf(want, sizeof(want), "vm%u", a1.id);
	EXPECT_STREQ(want, a1.name);

	fd2 = create_vm_raw(dev, NULL, &a2);
	ASSERT_LE(0, fd2);
	EXPECT_NE(a1.id, a2.id);
	snprintf(want, sizeof(want), "vm%u", a2.id);
	EXPECT_STREQ(want, a2.name);

	/* The automatic name is taken like any other. */
	EXPECT_EQ(-EEXIST, create_vm_raw(dev, a1.name, NULL));
	close(fd1);
	fd3 = create_vm_raw(dev, a1.name, NULL);
	EXPECT_LE(0, fd3);
	close(fd3);
	close(fd2);
	close(dev);
}

/* A vCPU fd keeps the VM, and so its name, alive. */
TEST(name_held_by_vcpu_fd)
{
	struct lvmm_vm_handle vm;
	struct lvmm_vcpu_handle vcpu;
	int dev, fd;

	TEST_REQUIRE(lvmm_dev_present());
	dev = open_lvmm_dev();
	ASSERT_EQ(0, lvmm_vm_create(dev, "held", &vm));
	ASSERT_EQ(0, lvmm_vcpu_create(&vm, 0, &vcpu));
	close(vm.fd);

	EXPECT_EQ(-EEXIST, create_vm_raw(dev, "held", NULL));
	/* The vCPU still works without its VM fd. */
	{
		struct lvmm_regs regs;

		EXPECT_EQ(0, lvmm_get_regs(&vcpu, &regs));
		EXPECT_EQ(0xfff0, regs.rip);
	}
	ASSERT_EQ(0, lvmm_vcpu_close(&vcpu));
	fd = create_vm_raw(dev, "held", NULL);
	EXPECT_LE(0, fd);
	close(fd);

	/* Closing /dev/lvmm first does not kill the VM either. */
	ASSERT_EQ(0, lvmm_vm_create(dev, "devclosed", &vm));
	close(dev);
	{
		struct lvmm_vm_info info;

		EXPECT_EQ(0, lvmm_vm_info(&vm, &info));
		EXPECT_STREQ("devclosed", info.name);
	}
	close(vm.fd);
}

TEST(create_destroy_loop)
{
	int dev;

	TEST_REQUIRE(lvmm_dev_present());
	dev = open_lvmm_dev();
	for (int i = 0; i < 200; i++) {
		struct lvmm_vm_handle vm;
		struct lvmm_vcpu_handle vcpu;
		void *mem;

		/* The same name every time: it must be freed on close. */
		ASSERT_EQ(0, lvmm_vm_create(dev, "loop", &vm)) TH_LOG("iteration %d", i);
		ASSERT_EQ(0, lvmm_set_memslot(&vm, 0, 0, 0, SZ_2M));
		ASSERT_EQ(0, lvmm_memslot_map(&vm, 0, SZ_2M,
					      PROT_READ | PROT_WRITE, &mem));
		((volatile char *)mem)[i * 4096] = 1;
		ASSERT_EQ(0, lvmm_vcpu_create(&vm, i % 4, &vcpu));
		/* Close in a different order every other time. */
		if (i & 1) {
			lvmm_vm_close(&vm);
			munmap(mem, SZ_2M);
			lvmm_vcpu_close(&vcpu);
		} else {
			lvmm_vcpu_close(&vcpu);
			munmap(mem, SZ_2M);
			lvmm_vm_close(&vm);
		}
	}
	close(dev);
}

TEST(many_vms_open)
{
	struct lvmm_vm_handle vms[200];
	int dev;

	TEST_REQUIRE(lvmm_dev_present());
	dev = open_lvmm_dev();
	for (int i = 0; i < 200; i++) {
		char name[LVMM_VM_NAME_LEN];

		snprintf(name, sizeof(name), "many-%d", i);
		ASSERT_EQ(0, lvmm_vm_create(dev, name, &vms[i])) TH_LOG("VM %d", i);
		for (int j = 0; j < i; j++) {
			ASSERT_NE(vms[j].id, vms[i].id);
		}
	}
	for (int i = 0; i < 200; i++)
		lvmm_vm_close(&vms[i]);
	close(dev);
}

TEST_HARNESS_MAIN
