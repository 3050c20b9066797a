// SPDX-License-Identifier: GPL-2.0
/*
 * LVMM_SET_MEMSLOT: every validation rule with its errno, memory shared
 * between the host mapping and the guest, deletion (user mapping zapped,
 * guest accesses become MMIO exits) and READONLY slots.
 */
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"

#define SZ_64G	(64ULL << 30)

FIXTURE(slots) {
	struct lvmm_vm *vm;
};

FIXTURE_SETUP(slots)
{
	self->vm = lvmm_dev_present() ? vm_create_bare(NULL) : NULL;
}

FIXTURE_TEARDOWN(slots)
{
	vm_free(self->vm);
}

#define set_slot(slot, flags, gpa, size) \
	__vm_set_memslot(self->vm, slot, flags, gpa, size, NULL)

TEST_F(slots, bad_slot_id)
{
	TEST_REQUIRE(self->vm);
	EXPECT_EQ(-EINVAL, set_slot(NR_MEMSLOTS, 0, 0, SZ_4K));
	EXPECT_EQ(-EINVAL, set_slot(~0U, 0, 0, SZ_4K));
	EXPECT_EQ(-EINVAL, set_slot(NR_MEMSLOTS, 0, 0, 0));
	EXPECT_EQ(0, set_slot(NR_MEMSLOTS - 1, 0, 0, SZ_4K));
}

TEST_F(slots, bad_flags)
{
	TEST_REQUIRE(self->vm);
	/* A read-only slot is never written, so it cannot log writes. */
	EXPECT_EQ(-EINVAL, set_slot(0, LVMM_MEMSLOT_READONLY |
					LVMM_MEMSLOT_LOG_DIRTY, 0, SZ_4K));
	for (int bit = 2; bit < 32; bit++) {
		EXPECT_EQ(-EINVAL, set_slot(0, 1U << bit, 0, SZ_4K))
			TH_LOG("flags 0x%x", 1U << bit);
	}
	EXPECT_EQ(0, set_slot(0, LVMM_MEMSLOT_READONLY, 0, SZ_4K));
	/* LOG_DIRTY alone: accepted where the extension says so. */
	EXPECT_EQ(lvmm_cap(LVMM_CAP_DIRTY_LOG) ? 0 : -EINVAL,
		  set_slot(1, LVMM_MEMSLOT_LOG_DIRTY, SZ_4K, SZ_4K));
}

TEST_F(slots, reserved)
{
	u64 r[2];

	TEST_REQUIRE(self->vm);
	r[0] = 1; r[1] = 0;
	EXPECT_EQ(-EINVAL, __vm_set_memslot(self->vm, 0, 0, 0, SZ_4K, r));
	r[0] = 0; r[1] = 1ULL << 63;
	EXPECT_EQ(-EINVAL, __vm_set_memslot(self->vm, 0, 0, 0, SZ_4K, r));
	/* Also when deleting. */
	EXPECT_EQ(0, set_slot(0, 0, 0, SZ_4K));
	EXPECT_EQ(-EINVAL, __vm_set_memslot(self->vm, 0, 0, 0, 0, r));
}

TEST_F(slots, alignment)
{
	TEST_REQUIRE(self->vm);
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0x1001, SZ_4K));
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0x800, SZ_4K));
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0, 0x1001));
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0, 0xfff));
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0, 1));
	EXPECT_EQ(0, set_slot(0, 0, 0x1000, 0x3000));
}

TEST_F(slots, size_and_range)
{
	TEST_REQUIRE(self->vm);
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_MAX_MEMSLOT_SIZE_MB) == 65536);
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0, SZ_64G + SZ_4K));
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0, 1ULL << 47));
	/* Past the 48-bit guest-physical space. */
	EXPECT_EQ(-EINVAL, set_slot(0, 0, (1ULL << 48) - SZ_4K, 2 * SZ_4K));
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 1ULL << 48, SZ_4K));
	/* gpa + size wraps around. */
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0xfffffffffffff000ULL, 2 * SZ_4K));
	EXPECT_EQ(-EINVAL, set_slot(0, 0, 0xfffffffffffff000ULL, SZ_64G));

	/* The limits themselves are fine (memory comes on first touch). */
	EXPECT_EQ(0, set_slot(1, 0, (1ULL << 48) - SZ_4K, SZ_4K));
	EXPECT_EQ(0, set_slot(2, 0, SZ_64G, SZ_64G));
}

TEST_F(slots, overlap_and_exists)
{
	TEST_REQUIRE(self->vm);
	ASSERT_EQ(0, set_slot(0, 0, 0x100000, 0x100000));
	/* Creating an existing slot id is not a resize. */
	EXPECT_EQ(-EEXIST, set_slot(0, 0, 0x800000, 0x1000));
	EXPECT_EQ(-EEXIST, set_slot(0, 0, 0x100000, 0x100000));
	/* Every kind of overlap. */
	EXPECT_EQ(-EEXIST, set_slot(1, 0, 0x100000, 0x100000));
	EXPECT_EQ(-EEXIST, set_slot(1, 0, 0x180000, 0x100000));
	EXPECT_EQ(-EEXIST, set_slot(1, 0, 0x0ff000, 0x2000));
	EXPECT_EQ(-EEXIST, set_slot(1, 0, 0x1ff000, 0x1000));
	EXPECT_EQ(-EEXIST, set_slot(1, 0, 0x140000, 0x1000));
	EXPECT_EQ(-EEXIST, set_slot(1, 0, 0, 0x400000));
	EXPECT_EQ(-EEXIST, set_slot(1, LVMM_MEMSLOT_READONLY, 0x100000, 0x1000));
	/* Adjacent on both sides is fine. */
	EXPECT_EQ(0, set_slot(1, 0, 0x0ff000, 0x1000));
	EXPECT_EQ(0, set_slot(2, 0, 0x200000, 0x1000));
}

TEST_F(slots, delete)
{
	struct lvmm_vm_info info;

	TEST_REQUIRE(self->vm);
	EXPECT_EQ(-ENOENT, set_slot(0, 0, 0, 0));
	EXPECT_EQ(-ENOENT, set_slot(5, 0, 0x1000, 0));
	ASSERT_EQ(0, set_slot(5, 0, 0x100000, 0x1000));
	EXPECT_EQ(0, set_slot(5, 0, 0, 0));
	EXPECT_EQ(-ENOENT, set_slot(5, 0, 0, 0));
	/* The id and the range are free again. */
	EXPECT_EQ(0, set_slot(5, 0, 0x100000, 0x2000));
	EXPECT_EQ(0, set_slot(6, 0, 0x102000, 0x1000));
	ASSERT_EQ(0, lvmm_vm_info(&self->vm->h, &info));
	EXPECT_EQ(2, info.nr_memslots);
	EXPECT_EQ(0x3000, info.mem_size);
}

TEST_F(slots, all_slots)
{
	struct lvmm_vm_info info;

	TEST_REQUIRE(self->vm);
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_MAX_MEMSLOTS) == NR_MEMSLOTS);
	for (u32 i = 0; i < NR_MEMSLOTS; i++) {
		volatile u64 *p = vm_add_memslot(self->vm, i, 0, i * SZ_2M,
						 SZ_2M);

		/* Zero on first touch, and private to the slot. */
		EXPECT_EQ(0, p[0]);
		EXPECT_EQ(0, p[SZ_2M / 8 - 1]);
		p[0] = i + 1;
	}
	for (u32 i = 0; i < NR_MEMSLOTS; i++) {
		EXPECT_EQ(i + 1, *(volatile u64 *)self->vm->slots[i].hva);
	}
	ASSERT_EQ(0, lvmm_vm_info(&self->vm->h, &info));
	EXPECT_EQ(NR_MEMSLOTS, info.nr_memslots);
	EXPECT_EQ(NR_MEMSLOTS * SZ_2M, info.mem_size);
}

TEST_F(slots, mmap_rules)
{
	void *p;

	TEST_REQUIRE(self->vm);
	/* No slot, no mapping. */
	EXPECT_NE(0, lvmm_memslot_map(&self->vm->h, 3, SZ_4K,
				      PROT_READ | PROT_WRITE, &p));
	ASSERT_EQ(0, set_slot(3, 0, SZ_1G, 4 * SZ_4K));
	/* Not past the end of the slot. */
	EXPECT_NE(0, lvmm_memslot_map(&self->vm->h, 3, 8 * SZ_4K,
				      PROT_READ | PROT_WRITE, &p));
	/* Two mappings see the same memory. */
	{
		volatile u64 *a, *b;

		ASSERT_EQ(0, lvmm_memslot_map(&self->vm->h, 3, 4 * SZ_4K,
					      PROT_READ | PROT_WRITE, (void **)&a));
		ASSERT_EQ(0, lvmm_memslot_map(&self->vm->h, 3, 4 * SZ_4K,
					      PROT_READ, (void **)&b));
		a[1000] = 0x1122334455667788ULL;
		EXPECT_EQ(0x1122334455667788ULL, b[1000]);
		munmap((void *)a, 4 * SZ_4K);
		munmap((void *)b, 4 * SZ_4K);
	}
}

/* Touch @p in a child; return the signal that killed it, or 0. */
static int touch_in_child(volatile u64 *p)
{
	int status;
	pid_t pid = fork();

	if (!pid) {
		p[0] = 1;
		(void)p[1];
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* Deleting a slot zaps the user mapping of it. */
TEST_F(slots, delete_zaps_mapping)
{
	volatile u64 *p;

	TEST_REQUIRE(self->vm);
	ASSERT_EQ(0, set_slot(1, 0, SZ_1G, SZ_2M));
	ASSERT_EQ(0, lvmm_memslot_map(&self->vm->h, 1, SZ_2M,
				      PROT_READ | PROT_WRITE, (void **)&p));
	p[0] = 42;
	EXPECT_EQ(0, touch_in_child(p));
	ASSERT_EQ(0, set_slot(1, 0, 0, 0));
	EXPECT_EQ(SIGBUS, touch_in_child(p));
	EXPECT_EQ(SIGBUS, touch_in_child(p + SZ_2M / 8 - 1));

	/* A new slot in the same place starts out zeroed. */
	ASSERT_EQ(0, set_slot(1, 0, SZ_1G, SZ_2M));
	munmap((void *)p, SZ_2M);
	ASSERT_EQ(0, lvmm_memslot_map(&self->vm->h, 1, SZ_2M,
				      PROT_READ | PROT_WRITE, (void **)&p));
	EXPECT_EQ(0, p[0]);
	munmap((void *)p, SZ_2M);
}

/* ---- guest access ---------------------------------------------------- */

static u64 pattern(u64 gpa)
{
	return gpa * 0x9e3779b97f4a7c15ULL;
}

/* Check the host's pattern every 512 bytes, then write its inverse. */
static void guest_rw(u64 gpa, u64 size)
{
	for (u64 off = 0; off < size; off += 512)
		GUEST_ASSERT_EQ(*(volatile u64 *)(gpa + off), pattern(gpa + off));
	GUEST_SYNC(1);
	for (u64 off = 0; off < size; off += 512)
		*(volatile u64 *)(gpa + off) = ~pattern(gpa + off);
	GUEST_DONE();
}

static void host_guest_rw(struct __test_metadata *_metadata, u64 gpa, u64 size)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	char *hva;

	vm = vm_create_with_one_vcpu(&vcpu, guest_rw);
	hva = vm_add_memslot(vm, 1, 0, gpa, size);
	for (u64 off = 0; off < size; off += 512)
		*(u64 *)(hva + off) = pattern(gpa + off);
	vcpu_args_set(vcpu, 2, gpa, size);
	vcpu_expect_sync(vcpu, 1);
	vcpu_expect_done(vcpu);
	for (u64 off = 0; off < size; off += 512) {
		ASSERT_EQ(~pattern(gpa + off), *(u64 *)(hva + off))
			TH_LOG("gpa 0x%llx", (unsigned long long)(gpa + off));
	}
	vm_free(vm);
}

TEST(guest_rw_2m_aligned)
{
	TEST_REQUIRE(lvmm_dev_present());
	host_guest_rw(_metadata, SZ_1G, 3 * SZ_2M);
}

TEST(guest_rw_4k_aligned)
{
	TEST_REQUIRE(lvmm_dev_present());
	host_guest_rw(_metadata, SZ_1G + SZ_2M + 3 * SZ_4K, SZ_2M + 5 * SZ_4K);
}

TEST(guest_rw_small)
{
	TEST_REQUIRE(lvmm_dev_present());
	host_guest_rw(_metadata, 0x80000000ULL - SZ_4K, SZ_4K);
}

static void guest_read_deleted(u64 gpa)
{
	GUEST_SYNC(*(volatile u64 *)gpa);
	/* Now deleted: the read is an MMIO exit that the host answers. */
	GUEST_SYNC(*(volatile u64 *)gpa);
	GUEST_DONE();
}

TEST(guest_access_after_delete)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct lvmm_run *run;
	u64 *hva, v = 0xfeedfacecafebeefULL;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_with_one_vcpu(&vcpu, guest_read_deleted);
	run = vcpu->run;
	hva = vm_add_memslot(vm, 1, 0, SZ_1G, SZ_2M);
	hva[8] = 1234;
	vcpu_args_set(vcpu, 1, SZ_1G + 64);
	vcpu_expect_sync(vcpu, 1234);

	vm_delete_memslot(vm, 1);
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_MMIO);
	EXPECT_EQ(SZ_1G + 64, run->mmio.phys_addr);
	EXPECT_EQ(8, run->mmio.len);
	EXPECT_EQ(0, run->mmio.is_write);
	memcpy(run->mmio.data, &v, 8);
	vcpu_expect_sync(vcpu, v);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

static void guest_readonly(u64 gpa)
{
	volatile u64 *p = (volatile u64 *)gpa;

	GUEST_ASSERT_EQ(p[0], 0x0123456789abcdefULL);
	GUEST_ASSERT_EQ(p[511], 0x55);
	p[1] = 0xdeadbeefULL;		/* MMIO exit; memory unchanged */
	GUEST_ASSERT_EQ(p[1], 0x77);
	GUEST_DONE();
}

TEST(readonly_slot)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct lvmm_run *run;
	u64 *hva, v;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_READONLY_MEM));
	vm = vm_create_with_one_vcpu(&vcpu, guest_readonly);
	run = vcpu->run;
	hva = vm_add_memslot(vm, 1, LVMM_MEMSLOT_READONLY, SZ_1G, SZ_4K);
	hva[0] = 0x0123456789abcdefULL;
	hva[1] = 0x77;
	hva[511] = 0x55;
	vcpu_args_set(vcpu, 1, SZ_1G);

	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_MMIO);
	EXPECT_EQ(SZ_1G + 8, run->mmio.phys_addr);
	EXPECT_EQ(8, run->mmio.len);
	EXPECT_EQ(1, run->mmio.is_write);
	memcpy(&v, run->mmio.data, 8);
	EXPECT_EQ(0xdeadbeefULL, v);
	EXPECT_EQ(0x77, hva[1]);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* The VmLck line of /proc/self/status, in KiB. */
static long vm_locked_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

#define CHILD_OK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "child: " __VA_ARGS__);			\
		fprintf(stderr, "\n");					\
		_exit(1);						\
	}								\
} while (0)

/*
 * Guest memory is pinned memory: a slot counts in the creator's locked
 * memory (VmLck) against RLIMIT_MEMLOCK, unless CAP_IPC_LOCK.  Past the
 * limit SET_MEMSLOT fails with ENOMEM, and a deleted slot gives it back.
 */
static void memlock_child(int dev)
{
	struct rlimit lim = { (2 * SZ_2M), (2 * SZ_2M) };
	struct lvmm_create_vm req = {};
	struct lvmm_memslot m = {};
	long base;
	int vm;

	CHILD_OK(!setrlimit(RLIMIT_MEMLOCK, &lim), "setrlimit");
	CHILD_OK(!setgroups(0, NULL) && !setresgid(65534, 65534, 65534) &&
		 !setresuid(65534, 65534, 65534), "drop to nobody");
	vm = ioctl(dev, LVMM_CREATE_VM, &req);
	CHILD_OK(vm >= 0, "LVMM_CREATE_VM: %s", strerror(errno));
	base = vm_locked_kb();
	CHILD_OK(base >= 0, "no VmLck in /proc/self/status");

	m.slot = 0;
	m.size = SZ_2M;
	CHILD_OK(!ioctl(vm, LVMM_SET_MEMSLOT, &m), "2 MiB: %s", strerror(errno));
	CHILD_OK(vm_locked_kb() == base + 2048, "VmLck %ld kB", vm_locked_kb());

	m.slot = 1;
	m.guest_phys_addr = SZ_1G;
	m.size = (2 * SZ_2M);
	CHILD_OK(ioctl(vm, LVMM_SET_MEMSLOT, &m) < 0 && errno == ENOMEM,
		 "6 MiB past a 4 MiB limit: %s", strerror(errno));
	CHILD_OK(vm_locked_kb() == base + 2048, "VmLck %ld kB after ENOMEM",
		 vm_locked_kb());

	/* A bad request is EINVAL, limit or not, and changes nothing. */
	m.flags = 0x80;
	CHILD_OK(ioctl(vm, LVMM_SET_MEMSLOT, &m) < 0 && errno == EINVAL,
		 "bad flags: %s", strerror(errno));
	m.flags = 0;

	m.slot = 0;
	m.guest_phys_addr = 0;
	m.size = 0;
	CHILD_OK(!ioctl(vm, LVMM_SET_MEMSLOT, &m), "delete: %s", strerror(errno));
	CHILD_OK(vm_locked_kb() == base, "VmLck %ld kB after delete",
		 vm_locked_kb());
	m.slot = 1;
	m.guest_phys_addr = SZ_1G;
	m.size = (2 * SZ_2M);
	CHILD_OK(!ioctl(vm, LVMM_SET_MEMSLOT, &m), "4 MiB now: %s",
		 strerror(errno));
	close(vm);
	_exit(0);
}

TEST(memlock_limit)
{
	int dev, status;
	pid_t pid;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(geteuid() == 0);
	dev = open_lvmm_dev();
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		memlock_child(dev);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child over its RLIMIT_MEMLOCK failed (status 0x%x)",
		       status);
	close(dev);
}

TEST_HARNESS_MAIN
