// SPDX-License-Identifier: GPL-2.0-only
/*
 * Ownership of SVM between lvmm and KVM, and lvmm following CPU hotplug.
 *
 * lvmm turns SVM on only while it has VMs, as KVM does, and never takes it
 * from under another hypervisor: whichever has a VM first owns the CPUs,
 * the other gets EBUSY, and it works again as soon as the owner lets go.
 * EFER.SVME is read through /dev/cpu/N/msr (the msr module) to prove SVM
 * is on on every online CPU exactly while lvmm has a VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>
#include <linux/lvmm.h>

#include "kselftest_harness.h"

#define MSR_EFER	0xc0000080
#define EFER_SVME	(1ULL << 12)

static int lvmm_vm(void)
{
	struct lvmm_create_vm req = {};
	int dev, vm;

	dev = open("/dev/lvmm", O_RDWR);
	if (dev < 0)
		return -errno;
	vm = ioctl(dev, LVMM_CREATE_VM, &req);
	vm = vm < 0 ? -errno : vm;
	close(dev);
	return vm;
}

static int kvm_vm(void)
{
	int dev, vm;

	dev = open("/dev/kvm", O_RDWR);
	if (dev < 0)
		return -errno;
	vm = ioctl(dev, KVM_CREATE_VM, 0);
	vm = vm < 0 ? -errno : vm;
	close(dev);
	return vm;
}

/* EFER.SVME of @cpu: 1, 0, or -1 when the CPU is offline or unreadable. */
static int svme(int cpu)
{
	char path[64];
	uint64_t efer;
	int fd, n;

	snprintf(path, sizeof(path), "/dev/cpu/%d/msr", cpu);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = pread(fd, &efer, sizeof(efer), MSR_EFER);
	close(fd);
	return n == sizeof(efer) ? !!(efer & EFER_SVME) : -1;
}

static int nr_cpus(void)
{
	return sysconf(_SC_NPROCESSORS_CONF);
}

static int set_online(int cpu, int on)
{
	char path[64];
	int fd, r;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", cpu);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	r = write(fd, on ? "1" : "0", 1) == 1 ? 0 : -errno;
	close(fd);
	return r;
}

#define REQUIRE_KVM()							\
	do {								\
		if (access("/dev/kvm", F_OK))				\
			SKIP(return, "kvm_amd is not loaded");		\
	} while (0)

#define REQUIRE_MSR()							\
	do {								\
		if (svme(0) < 0)					\
			SKIP(return, "no /dev/cpu/0/msr (load msr.ko)"); \
	} while (0)

TEST(lvmm_first_kvm_gets_ebusy)
{
	int vm, kvm;

	REQUIRE_KVM();
	vm = lvmm_vm();
	ASSERT_GE(vm, 0) TH_LOG("LVMM_CREATE_VM: %s", strerror(-vm));
	kvm = kvm_vm();
	EXPECT_EQ(-EBUSY, kvm) TH_LOG("KVM_CREATE_VM while lvmm holds SVM");
	if (kvm >= 0)
		close(kvm);
	close(vm);

	/* lvmm let go: KVM works again, and lets go again in turn. */
	kvm = kvm_vm();
	ASSERT_GE(kvm, 0) TH_LOG("KVM_CREATE_VM after lvmm let go: %s",
				 strerror(-kvm));
	close(kvm);
}

TEST(kvm_first_lvmm_gets_ebusy)
{
	int vm, kvm;

	REQUIRE_KVM();
	kvm = kvm_vm();
	ASSERT_GE(kvm, 0) TH_LOG("KVM_CREATE_VM: %s", strerror(-kvm));
	vm = lvmm_vm();
	EXPECT_EQ(-EBUSY, vm) TH_LOG("LVMM_CREATE_VM while KVM holds SVM");
	if (vm >= 0)
		close(vm);
	close(kvm);

	vm = lvmm_vm();
	ASSERT_GE(vm, 0) TH_LOG("LVMM_CREATE_VM after KVM let go: %s",
				strerror(-vm));
	close(vm);
}

TEST(svme_only_while_lvmm_has_vms)
{
	int cpu, vm, vm2;

	REQUIRE_MSR();
	for (cpu = 0; cpu < nr_cpus(); cpu++)
		EXPECT_NE(1, svme(cpu)) TH_LOG("cpu%d: SVME set with no VM", cpu);

	vm = lvmm_vm();
	ASSERT_GE(vm, 0);
	vm2 = lvmm_vm();
	ASSERT_GE(vm2, 0);
	for (cpu = 0; cpu < nr_cpus(); cpu++)
		if (svme(cpu) >= 0)
			EXPECT_EQ(1, svme(cpu)) TH_LOG("cpu%d: SVME clear", cpu);

	/* One VM left: still on. */
	close(vm);
	for (cpu = 0; cpu < nr_cpus(); cpu++)
		if (svme(cpu) >= 0)
			EXPECT_EQ(1, svme(cpu));
	close(vm2);
	for (cpu = 0; cpu < nr_cpus(); cpu++)
		EXPECT_NE(1, svme(cpu)) TH_LOG("cpu%d: SVME left on", cpu);
}

TEST(hotplug_follows_vms)
{
	int vm;

	REQUIRE_MSR();
	if (nr_cpus() < 2 || access("/sys/devices/system/cpu/cpu1/online", W_OK))
		SKIP(return, "needs a second CPU that can go offline");

	vm = lvmm_vm();
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, set_online(1, 0));
	ASSERT_EQ(-1, svme(1));
	ASSERT_EQ(0, set_online(1, 1));
	EXPECT_EQ(1, svme(1)) TH_LOG("cpu1 came back without SVM on");

	/* A VM created while a CPU is offline covers it when it returns. */
	close(vm);
	ASSERT_EQ(0, set_online(1, 0));
	vm = lvmm_vm();
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, set_online(1, 1));
	EXPECT_EQ(1, svme(1));
	close(vm);
	EXPECT_EQ(0, svme(0));
	EXPECT_EQ(0, svme(1));

	/* And with no VM, onlining leaves SVM alone. */
	ASSERT_EQ(0, set_online(1, 0));
	ASSERT_EQ(0, set_online(1, 1));
	EXPECT_EQ(0, svme(1));
}

TEST_HARNESS_MAIN
