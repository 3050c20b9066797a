// SPDX-License-Identifier: GPL-2.0
/*
 * The paravirtual clock a VM with the in-kernel APIC gets
 * (Documentation/irqchip.rst, 3.1): KVM's CPUID leaves at 0x40000100,
 * its system-time and wall-clock MSRs, and a clock that runs at the
 * host's pace.  A VM without the irqchip has none of it.
 */
#include <time.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

#define PVCLOCK_BASE		0x40000100
#define MSR_WALL_CLOCK		0x4b564d00
#define MSR_SYSTEM_TIME		0x4b564d01
#define FEATURE_NOP_IO_DELAY	(1U << 1)
#define FEATURE_CLOCKSOURCE2	(1U << 3)
#define FEATURE_STABLE_BIT	(1U << 24)

struct pvclock_time {
	u32 version;
	u32 pad0;
	u64 tsc_timestamp;
	u64 system_time;
	u32 mul;
	int8_t shift;
	u8 flags;
	u8 pad[2];
} __attribute__((packed, aligned(32)));

struct pvclock_wall {
	u32 version;
	u32 sec;
	u32 nsec;
} __attribute__((packed, aligned(8)));

static inline u64 rdtsc(void)
{
	u32 lo, hi;

	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

static struct pvclock_time pvti;
static struct pvclock_wall wall;

static u64 host_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void guest_cpuid_leaves(void)
{
	struct cpuid_regs base = guest_cpuid(PVCLOCK_BASE, 0);
	struct cpuid_regs feat = guest_cpuid(PVCLOCK_BASE + 1, 0);

	GUEST_SYNC_ARGS(base.eax, base.ebx, base.ecx, base.edx, feat.eax);
	GUEST_DONE();
}

static void check_leaves(struct lvmm_vcpu *vcpu, bool offered,
			 struct __test_metadata *_metadata)
{
	struct ucall uc;

	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	if (!offered) {
		EXPECT_NE(0x4b4d564bULL, uc.args[1]);
		return;
	}
	EXPECT_EQ(PVCLOCK_BASE + 1, uc.args[0]);
	/* "KVMKVMKVM\0\0\0" */
	EXPECT_EQ(0x4b4d564bULL, uc.args[1]);
	EXPECT_EQ(0x564b4d56ULL, uc.args[2]);
	EXPECT_EQ(0x4dULL, uc.args[3]);
	EXPECT_EQ(FEATURE_NOP_IO_DELAY | FEATURE_CLOCKSOURCE2 |
		  FEATURE_STABLE_BIT, uc.args[4]);
}

TEST(cpuid_leaves)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_IRQCHIP));
	vm = vm_create_with_irqchip(1, guest_cpuid_leaves, &vcpu);
	check_leaves(vcpu, true, _metadata);
	vm_free(vm);

	/* Without the irqchip the leaves are not KVM's. */
	vm = vm_create_with_one_vcpu(&vcpu, guest_cpuid_leaves);
	check_leaves(vcpu, false, _metadata);
	vm_free(vm);
}

/* The clock in ns, as a guest computes it (the pvclock protocol). */
static u64 guest_clock_ns(void)
{
	u64 delta = rdtsc() - pvti.tsc_timestamp;

	if (pvti.shift >= 0)
		delta <<= pvti.shift;
	else
		delta >>= -pvti.shift;
	return pvti.system_time +
	       (u64)(((unsigned __int128)delta * pvti.mul) >> 32);
}

static void guest_clock(void)
{
	wrmsr(MSR_SYSTEM_TIME, (u64)&pvti | 1);
	GUEST_ASSERT_EQ(pvti.version, 2);
	GUEST_ASSERT_EQ(pvti.flags, 1);		/* PVCLOCK_TSC_STABLE_BIT */
	GUEST_ASSERT_EQ(rdmsr(MSR_SYSTEM_TIME), (u64)&pvti | 1);
	GUEST_SYNC(guest_clock_ns());
	GUEST_SYNC(guest_clock_ns());

	wrmsr(MSR_WALL_CLOCK, (u64)&wall);
	GUEST_ASSERT_EQ(wall.version, 2);
	GUEST_SYNC_ARGS(wall.sec * 1000000000ULL + wall.nsec +
			guest_clock_ns(), 0, 0, 0, 0);
	GUEST_DONE();
}

TEST(clock_runs_at_host_pace)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;
	u64 g1, g2, h1, h2, real;
	int64_t diff;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_IRQCHIP));
	vm = vm_create_with_irqchip(1, guest_clock, &vcpu);

	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	h1 = host_ns(CLOCK_MONOTONIC);
	g1 = uc.args[0];
	usleep(500 * 1000);
	h2 = host_ns(CLOCK_MONOTONIC);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	g2 = uc.args[0];
	/*
	 * The guest read its clock just before each exit: its interval is
	 * the host's plus one return to the guest, a few ms at most even
	 * under the emulator.
	 */
	diff = (int64_t)(g2 - g1) - (int64_t)(h2 - h1);
	EXPECT_LE(0 - 5000000LL, diff) TH_LOG("guest %llu ns, host %llu ns",
					      g2 - g1, h2 - h1);
	EXPECT_GE(50000000LL, diff) TH_LOG("guest %llu ns, host %llu ns",
					   g2 - g1, h2 - h1);

	/*
	 * The wall clock plus the clock is the time of day: within what
	 * the host's own TSC calibration is off by over these seconds (a
	 * few ms on the sandbox's debug kernel), and the exit's latency.
	 */
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	real = host_ns(CLOCK_REALTIME);
	EXPECT_GE(real + 50000000ULL, uc.args[0])
		TH_LOG("the guest's time of day is %lld ns ahead",
		       (long long)(uc.args[0] - real));
	EXPECT_LE(real - 1000000000ULL, uc.args[0]);
	ASSERT_EQ(UCALL_DONE, vcpu_run_ucall(vcpu, &uc));
	vm_free(vm);
}

TEST(msrs_only_with_irqchip)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	u64 v = 0;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_cpuid_leaves);
	EXPECT_EQ(-EOPNOTSUPP, lvmm_set_msr(&vcpu->h, MSR_SYSTEM_TIME, 0));
	EXPECT_EQ(-EOPNOTSUPP, lvmm_get_msr(&vcpu->h, MSR_WALL_CLOCK, &v));
	vm_free(vm);

	if (!lvmm_cap(LVMM_CAP_IRQCHIP))
		return;
	vm = vm_create_with_irqchip(1, guest_cpuid_leaves, &vcpu);
	/* Disabled (bit 0 clear): kept, nothing written. */
	EXPECT_EQ(0, lvmm_set_msr(&vcpu->h, MSR_SYSTEM_TIME, 0x2000));
	EXPECT_EQ(0, lvmm_get_msr(&vcpu->h, MSR_SYSTEM_TIME, &v));
	EXPECT_EQ(0x2000, v);
	vm_free(vm);
}

TEST_HARNESS_MAIN
