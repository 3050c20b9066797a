// SPDX-License-Identifier: GPL-2.0
/*
 * LVMM_SET_MEMSLOT: every validation rule with its errno, memory shared
 * between the host mapping and the guest, deletion (user mapping zapped,
 * guest accesses become MMIO exits) and READONLY slots.
 */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

/* A "Name: N kB" line of /proc/@pid/status (0: self), in KiB; -1 if none. */
static long status_kb(pid_t pid, const char *name)
{
	char path[64], line[128];
	size_t len = strlen(name);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), pid ? "/proc/%d/status" : "/proc/self/status",
		 pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, name, len) && line[len] == ':') {
			kb = strtol(line + len + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return kb;
}

/*
 * This process's RssShmem, exact.  6.1 keeps a task's own page faults in
 * a per-task cache that reaches the counters /proc shows only every 64
 * faults; and the sandbox's files, this program's text included, are on
 * tmpfs, so faulting them in counts as shared memory.  Fault in more
 * than 64 anonymous pages first: the cache is flushed on the way, and
 * holds no shared-memory pages after it (the reading's own code was
 * faulted in by an earlier call).
 */
static long rss_shmem_kb(void)
{
	const size_t n = 80;
	size_t i;
	char *p = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	for (i = 0; i < n; i++)
		p[i * 4096] = 1;
	munmap(p, n * 4096);
	return status_kb(0, "RssShmem");
}

/*
 * Guest memory counts in the RSS of the VM's creator (RssShmem), as its
 * chunks are allocated, whoever touches them, and leaves it when the slot
 * goes: the OOM killer sees it as that process's.
 */
TEST(rss_counts_guest_memory)
{
	long base, kb;
	struct lvmm_vm *vm;
	u8 *hva;
	int i;

	TEST_REQUIRE(lvmm_dev_present());
	vm = vm_create_bare(NULL);
	rss_shmem_kb();		/* the reading's code, faulted in */
	base = rss_shmem_kb();
	ASSERT_GE(base, 0);
	hva = vm_add_memslot(vm, 1, 0, SZ_1G, 8 * SZ_2M);
	/* Nothing is allocated before the first touch. */
	EXPECT_EQ(base, rss_shmem_kb());
	/* A byte in each of three chunks: 2 MiB each. */
	for (i = 0; i < 3; i++)
		hva[i * SZ_2M + 4096] = 1;
	kb = rss_shmem_kb();
	EXPECT_EQ(base + 3 * 2048, kb);
	/* A slot not 2 MiB aligned counts its 4 KiB pages the same. */
	hva = vm_add_memslot(vm, 2, 0, 2ULL * SZ_1G + SZ_4K, SZ_2M + SZ_4K);
	hva[0] = 1;
	hva[SZ_2M] = 1;
	EXPECT_EQ(kb + 2048 + 4, rss_shmem_kb());
	vm_delete_memslot(vm, 1);
	EXPECT_EQ(base + 2048 + 4, rss_shmem_kb());
	vm_free(vm);
	EXPECT_EQ(base, rss_shmem_kb());
}

/* A line in the kernel's log, if it can be written. */
static void kmsg(const char *msg)
{
	int fd = open("/dev/kmsg", O_WRONLY);

	if (fd < 0)
		return;
	/* Only a marker: a lost one shows as a failed console scan. */
	if (write(fd, msg, strlen(msg)) < 0)
		perror("/dev/kmsg");
	close(fd);
}

#define OOM_CG		"lvmm-oom-test"
#define OOM_LIMIT	(96 * 1024 * 1024)
#define OOM_BYSTANDER	(24 * 1024 * 1024)

/* Write @val to @dir/@file; 0 or -errno. */
static int cg_write(const char *dir, const char *file, const char *val)
{
	char path[256];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * The cgroup v2 root, mounted at @root if it is nowhere yet, with the
 * memory controller on for its children: 0, or -1 to skip.
 */
static int cg_root(char *root, size_t size)
{
	snprintf(root, size, "/sys/fs/cgroup");
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK)) {
		snprintf(root, size, "/tmp/lvmm-cgroup2");
		mkdir(root, 0755);
		if (access("/tmp/lvmm-cgroup2/cgroup.controllers", F_OK) &&
		    mount("none", root, "cgroup2", 0, NULL))
			return -1;
	}
	return cg_write(root, "cgroup.subtree_control", "+memory") ? -1 : 0;
}

/* Join cgroup @dir, or die. */
static void cg_join(const char *dir)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	CHILD_OK(!cg_write(dir, "cgroup.procs", pid), "join %s", dir);
}

/*
 * A VMM that touches more guest memory than its memory cgroup allows,
 * beside a bystander holding less ordinary memory: the OOM killer must
 * pick the VMM, which it can only if the guest memory counts as the
 * VMM's.  The bystander lives on, and so does the host.
 */
TEST(oom_picks_the_vmm)
{
	char root[64], dir[128], events[256], line[128], max[32];
	int ready[2], vready[2], status, killed = -1;
	pid_t bystander, vmm;
	FILE *f;

	TEST_REQUIRE(lvmm_dev_present());
	TEST_REQUIRE(geteuid() == 0);
	if (cg_root(root, sizeof(root)))
		SKIP(return, "no cgroup v2 memory controller");
	snprintf(dir, sizeof(dir), "%s/" OOM_CG, root);
	rmdir(dir);
	ASSERT_EQ(0, mkdir(dir, 0755));
	snprintf(max, sizeof(max), "%d", OOM_LIMIT);
	ASSERT_EQ(0, cg_write(dir, "memory.max", max));
	cg_write(dir, "memory.swap.max", "0");
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(vready));

	bystander = fork();
	ASSERT_GE(bystander, 0);
	if (!bystander) {
		char *p;

		/* Gone with the test, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		cg_join(dir);
		p = mmap(NULL, OOM_BYSTANDER, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		CHILD_OK(p != MAP_FAILED, "mmap: %s", strerror(errno));
		memset(p, 1, OOM_BYSTANDER);
		CHILD_OK(write(ready[1], "", 1) == 1, "ready");
		for (;;)
			pause();
	}
	ASSERT_EQ(1, read(ready[0], line, 1));

	/* The OOM report's stack trace is expected (scripts/vmtest). */
	kmsg("lvmm selftest: an OOM kill is expected (memslot_test)");
	vmm = fork();
	ASSERT_GE(vmm, 0);
	if (!vmm) {
		struct lvmm_vm *vm;
		size_t i, size = 2 * (size_t)OOM_LIMIT;
		u8 *hva;

		cg_join(dir);
		vm = vm_create_bare(NULL);
		hva = vm_add_memslot(vm, 1, 0, SZ_1G, size);
		CHILD_OK(write(vready[1], "", 1) == 1, "ready");
		for (i = 0; i < size; i += 4096)
			hva[i] = 1;
		/* Twice the limit fitted: the memory was not charged. */
		_exit(3);
	}
	close(vready[1]);
	/* The VM and its slot exist: what follows is the touching. */
	ASSERT_EQ(1, read(vready[0], line, 1))
		TH_LOG("the VMM died before its slot existed");
	ASSERT_EQ(vmm, waitpid(vmm, &status, 0));
	kmsg("lvmm selftest: OOM kill expected until here");
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
		TH_LOG("a VMM twice over its memory.max ended with status 0x%x, not an OOM kill",
		       status);
	EXPECT_EQ(0, waitpid(bystander, &status, WNOHANG))
		TH_LOG("the OOM killer took the bystander (status 0x%x), not the VMM",
		       status);

	snprintf(events, sizeof(events), "%s/memory.events", dir);
	f = fopen(events, "r");
	while (f && fgets(line, sizeof(line), f))
		sscanf(line, "oom_kill %d", &killed);
	if (f)
		fclose(f);
	/* The VMM, and nobody else. */
	EXPECT_EQ(1, killed);

	kill(bystander, SIGKILL);
	waitpid(bystander, NULL, 0);
	close(ready[0]);
	close(ready[1]);
	close(vready[0]);
	EXPECT_EQ(0, rmdir(dir));
}

TEST_HARNESS_MAIN
