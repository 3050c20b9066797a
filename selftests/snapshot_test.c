// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshots (LVMM_CAP_SNAPSHOT): netlink vm-save writes a VM to a file
 * descriptor as the VM stream, LVMM_RESTORE_VM reads one back as a new
 * VM.  Round trips through files, pipes and sockets with guests that go
 * on exactly where they were saved; streams cut short, corrupted and
 * fuzzed, refused with their errno and with nothing left behind; saves
 * that meet a destroy, a second save or a reader that goes away; who may
 * save.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "nl_util.h"
#include "stream_bytes.h"
#include "vcpu_runner.h"
#include "vcpu_state.h"
#include "apic.h"

#define MiB		(1024 * 1024ULL)

#define REQUIRE_SNAPSHOT(c) do {					\
	TEST_REQUIRE(lvmm_dev_present());				\
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_SNAPSHOT));			\
	REQUIRE_LVMM(c);						\
} while (0)

static int new_memfd(void)
{
	int fd = memfd_create("lvmm-stream", MFD_CLOEXEC);

	TEST_ASSERT(fd >= 0, "memfd_create");
	return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const u8 *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		TEST_ASSERT(n > 0, "write: %s", strerror(errno));
		p += n;
		len -= n;
	}
}

/* Everything @fd has from its position to EOF, in a malloc()ed buffer. */
static u8 *read_all(int fd, size_t *len)
{
	size_t cap = 1 << 20;
	u8 *buf = malloc(cap);

	*len = 0;
	for (;;) {
		ssize_t n;

		if (*len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		TEST_ASSERT(buf, "out of memory");
		n = read(fd, buf + *len, cap - *len);
		TEST_ASSERT(n >= 0, "read: %s", strerror(errno));
		if (!n)
			return buf;
		*len += n;
	}
}

/* LVMM_RESTORE_VM from @fd: the VM fd or -errno; @req as it came back. */
static int restore_fd(int fd, const char *name, struct lvmm_restore_vm *req)
{
	int dev = open_lvmm_dev(), r;

	memset(req, 0, sizeof(*req));
	req->fd = fd;
	if (name)
		snprintf(req->name, sizeof(req->name), "%s", name);
	r = __vm_restore(dev, req);
	close(dev);
	return r;
}

/* Restore @len bytes of @buf, put in memfd @mfd: as restore_fd(). */
static int restore_buf(int mfd, const void *buf, size_t len,
		       const char *name, struct lvmm_restore_vm *req)
{
	TEST_ASSERT(!ftruncate(mfd, 0), "ftruncate");
	TEST_ASSERT(!lseek(mfd, 0, SEEK_SET), "lseek");
	write_all(mfd, buf, len);
	TEST_ASSERT(!lseek(mfd, 0, SEEK_SET), "lseek");
	return restore_fd(mfd, name, req);
}

/* ---- saving ---------------------------------------------------------- */

/*
 * vm-save of @vm to @fd, asserting that it starts and ends well, and
 * expecting the events' figures to hold.
 */
static struct nl_saved __save_vm(struct __test_metadata *_metadata,
				 struct nlc *c, struct lvmm_vm *vm, int fd,
				 bool stop)
{
	struct nl_saved s;
	int r = nl_vm_save_wait(c, vm->h.id, fd, stop, &s);

	TEST_ASSERT(!r, "vm-save of VM %u: %s (%s)", vm->h.id, strerror(-r),
		    c->ext);
	TEST_ASSERT(!s.error, "vm-save of VM %u ended with %s", vm->h.id,
		    strerror(s.error));
	EXPECT_LT(0, s.bytes);
	/* save-total: at most this many in all. */
	EXPECT_GE(s.total, s.bytes)
		TH_LOG("VM %u: saved %llu bytes, save-total said at most %llu",
		       vm->h.id, (unsigned long long)s.bytes,
		       (unsigned long long)s.total);
	if (s.nr_progress) {
		EXPECT_GE(s.bytes, s.progress_bytes);
	}
	return s;
}

#define save_vm(c, vm, fd, stop)	__save_vm(_metadata, c, vm, fd, stop)

/*
 * Save @vm to a new memfd and return it at offset 0: the stream and
 * nothing else is in it.
 */
static int __save_to_memfd(struct __test_metadata *_metadata, struct nlc *c,
			   struct lvmm_vm *vm, bool stop, struct nl_saved *out)
{
	int fd = new_memfd();
	struct nl_saved s = save_vm(c, vm, fd, stop);
	struct stat st;

	TEST_ASSERT(!fstat(fd, &st) && (u64)st.st_size == s.bytes,
		    "the file holds %lld bytes, the saved event says %llu",
		    (long long)st.st_size, (unsigned long long)s.bytes);
	TEST_ASSERT(!lseek(fd, 0, SEEK_SET), "lseek");
	if (out)
		*out = s;
	return fd;
}

#define save_to_memfd(c, vm, stop, out)					\
	__save_to_memfd(_metadata, c, vm, stop, out)

static u32 vm_state(struct nlc *c, u32 id)
{
	struct nl_vm v;

	return nl_vm_get(c, id, NULL, &v) ? 0 : v.state;
}

/* ---- a guest that counts, on one thread per vCPU --------------------- */

#define COUNT_N		2048	/* a SYNC every COUNT_N steps */

static volatile u64 counters[2];
static volatile u64 count_stop;
static volatile u64 count_every = COUNT_N;	/* set per VM by the host */

/*
 * Count in memory; the step is also in a register, so that memory and
 * registers from different moments show as a failed assertion.
 */
static void guest_counter(u64 id)
{
	for (u64 i = counters[id] + 1; !count_stop; i++) {
		GUEST_ASSERT_EQ(counters[id], i - 1);
		counters[id] = i;
		if (!(i % count_every))
			GUEST_SYNC_ARGS(id, i, 0, 0, 0);
	}
	GUEST_DONE();
}

static u64 counter_in(struct lvmm_vm *vm, int id)
{
	return *(volatile u64 *)addr_gva2hva(vm, &counters[id]);
}

static void stop_counting(struct lvmm_vm *vm)
{
	*(volatile u64 *)addr_gva2hva(vm, &count_stop) = 1;
}

enum { END_NONE, END_DONE, END_DESTROYED };

struct counter_thread {
	struct lvmm_vcpu *vcpu;
	pthread_t thread;
	volatile u64 first, last, nr_sync;
	volatile int end;
	volatile bool done;
};

static void *counter_fn(void *arg)
{
	struct counter_thread *t = arg;
	struct lvmm_vcpu *vcpu = t->vcpu;
	struct ucall uc;

	for (;;) {
		int r = __vcpu_run(vcpu);

		if (r == -EINTR)
			continue;
		TEST_ASSERT(!r, "vCPU %u: LVMM_RUN: %s", vcpu->id,
			    strerror(-r));
		if (vcpu->run->exit_reason == LVMM_EXIT_VM_DESTROYED) {
			t->end = END_DESTROYED;
			break;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			TEST_ASSERT(uc.args[0] == vcpu->id,
				    "vCPU %u: SYNC of vCPU %llu", vcpu->id,
				    (unsigned long long)uc.args[0]);
			if (!t->nr_sync)
				t->first = uc.args[1];
			t->last = uc.args[1];
			t->nr_sync++;
			continue;
		case UCALL_DONE:
			t->end = END_DONE;
			break;
		case UCALL_ABORT:
			report_guest_assert(vcpu, &uc);
		default:
			TEST_FAIL("vCPU %u: exit %s", vcpu->id,
				  exit_reason_str(vcpu->run->exit_reason));
		}
		break;
	}
	t->done = true;
	return NULL;
}

static void counter_start(struct counter_thread *t, struct lvmm_vcpu *vcpu)
{
	memset(t, 0, sizeof(*t));
	t->vcpu = vcpu;
	TEST_ASSERT(!pthread_create(&t->thread, NULL, counter_fn, t),
		    "pthread_create");
}

/* Wait for the thread's end, which must be @end. */
static void counter_join(struct counter_thread *t, int end)
{
	TEST_ASSERT(wait_for(t->done, 20000), "vCPU %u runs on", t->vcpu->id);
	pthread_join(t->thread, NULL);
	TEST_ASSERT(t->end == end, "vCPU %u ended with %d, not %d",
		    t->vcpu->id, t->end, end);
}

/*
 * Run the copy @rvm of a counting VM saved with its counter at @c0 to its
 * @nr_sync-th SYNC, then to its end.  It counts on from @c0: its first
 * SYNC is the next one, or the one it was saved in.  Returns that SYNC's
 * count.
 */
static u64 copy_counts_on(struct __test_metadata *_metadata,
			  struct lvmm_vm *rvm, u64 c0, u64 nr_sync)
{
	struct counter_thread rt;

	counter_start(&rt, rvm->vcpus[0]);
	ASSERT_TRUE(wait_for(rt.nr_sync >= nr_sync, 20000))
		TH_LOG("the copy does not count");
	EXPECT_LE(c0, rt.first);
	EXPECT_GE(c0 + COUNT_N, rt.first);
	stop_counting(rvm);
	counter_join(&rt, END_DONE);
	return rt.first;
}

/* ---- fixture: the netlink client ------------------------------------- */

FIXTURE(snap) {
	struct nlc *c;
};

FIXTURE_SETUP(snap)
{
	self->c = NULL;
}

FIXTURE_TEARDOWN(snap)
{
	nlc_close(self->c);
}

/* ---- a counting guest goes on from where it was saved ---------------- */

/*
 * Save a counting guest to a file (@stop: and destroy it), restore it
 * under its own name, and it counts on from the value it was saved
 * with, in memory and in its registers alike.
 */
static void counter_round_trip(struct __test_metadata *_metadata,
			       struct nlc *c, bool stop)
{
	char path[] = "/tmp/lvmm-snap-XXXXXX";
	u64 before, after, c0, first_sync, first = 0;
	char name[LVMM_VM_NAME_LEN];
	struct lvmm_vm *vm, *rvm;
	struct counter_thread t;
	struct lvmm_vcpu *vcpu;
	struct nl_saved s;
	struct nl_vm v;
	struct stat st;
	int fd;

	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	unlink(path);
	vm = vm_create_with_one_vcpu(&vcpu, guest_counter);
	strcpy(name, vm->h.name);
	counter_start(&t, vcpu);
	ASSERT_TRUE(wait_for(t.nr_sync >= 4, 20000)) TH_LOG("the guest does not count");

	before = counter_in(vm, 0);
	s = save_vm(c, vm, fd, stop);
	after = counter_in(vm, 0);
	TH_LOG("%llu bytes, vCPUs held %llu us, %d progress events",
	       (unsigned long long)s.bytes,
	       (unsigned long long)s.pause_ns / 1000, s.nr_progress);
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(s.bytes, (u64)st.st_size);

	if (stop) {
		/* Destroyed once written: nothing runs after the save. */
		counter_join(&t, END_DESTROYED);
		EXPECT_EQ(-ENOENT, nl_vm_get(c, vm->h.id, NULL, &v));
		EXPECT_EQ(-EIO, __vm_get_vcpu(vm, 0));
		after = counter_in(vm, 0);
	} else {
		/* The original runs on. */
		ASSERT_TRUE(wait_for(counter_in(vm, 0) > after + 4 * COUNT_N,
				     20000))
			TH_LOG("the original stopped counting after the save");
		stop_counting(vm);
		counter_join(&t, END_DONE);
		/* Out of the way: the copy takes its name. */
		ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_DESTROY, vm->h.id));
	}

	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	rvm = vm_restore(fd, NULL, vm);
	EXPECT_STREQ(name, rvm->h.name);
	EXPECT_NE(vm->h.id, rvm->h.id);
	ASSERT_NE(NULL, rvm->vcpus[0]);
	ASSERT_EQ(0, nl_vm_get(c, rvm->h.id, NULL, &v));
	EXPECT_EQ(1, v.nr_vcpus);
	EXPECT_EQ(vm->slots[0].size, v.mem_size);

	c0 = counter_in(rvm, 0);
	EXPECT_LE(before, c0);
	EXPECT_GE(after, c0);
	if (stop) {
		/* Frozen from the save on: the copy has the same memory. */
		EXPECT_EQ(after, c0);
		EXPECT_EQ(0, memory_diffs(vm, rvm, &first))
			TH_LOG("the first page that differs is at GPA 0x%llx",
			       (unsigned long long)first);
	}

	first_sync = copy_counts_on(_metadata, rvm, c0, 2);
	EXPECT_EQ(0, first_sync % COUNT_N);
	TH_LOG("saved at %llu (counted %llu..%llu around the save), the copy's first SYNC at %llu",
	       (unsigned long long)c0, (unsigned long long)before,
	       (unsigned long long)after, (unsigned long long)first_sync);
	vm_free(rvm);
	vm_free(vm);
	close(fd);
}

TEST_F_TIMEOUT(snap, counter_save_keeps_running, 120)
{
	REQUIRE_SNAPSHOT(self->c);
	counter_round_trip(_metadata, self->c, false);
}

TEST_F_TIMEOUT(snap, counter_save_stop, 120)
{
	REQUIRE_SNAPSHOT(self->c);
	counter_round_trip(_metadata, self->c, true);
}

/* ---- every byte of memory, zero pages left out ----------------------- */

#define PAT_GPA1	TEST_MEM_GPA			/* 2 MiB aligned: huge */
#define PAT_PAGES1	(3 * 512ULL)
#define PAT_GPA2	(TEST_MEM_GPA + 64 * MiB + SZ_4K)	/* small pages */
#define PAT_PAGES2	(512ULL + 5)
#define LAST_BYTE_VAL	(0xa5ULL << 56)

enum {
	PAGE_ZERO,		/* never written */
	PAGE_FULL,		/* a pattern in every byte */
	PAGE_LAST_BYTE,		/* zero but its last byte */
	PAGE_ZEROED,		/* written, then cleared */
	PAGE_HOST,		/* written by the host through its mapping */
};

/*
 * Slot 1: a whole 2 MiB chunk, then one with scattered pages, then one
 * never touched.  Slot 2: scattered pages, and a partial last chunk.
 */
static int page_kind(int slot, u64 page)
{
	if (slot == 1) {
		if (page < 512)
			return PAGE_FULL;
		if (page >= 1024)
			return PAGE_ZERO;
		page -= 512;
		if (page == 7)
			return PAGE_LAST_BYTE;
		if (page >= 100 && page < 110)
			return PAGE_ZEROED;
		return page % 5 ? PAGE_ZERO : PAGE_FULL;
	}
	if (page == 1)
		return PAGE_LAST_BYTE;
	if (page == 2)
		return PAGE_HOST;
	if (page == PAT_PAGES2 - 1)
		return PAGE_FULL;
	return page % 3 ? PAGE_ZERO : PAGE_FULL;
}

static u64 pattern(u64 gpa)
{
	u64 x = gpa * 0x9e3779b97f4a7c15ULL;

	return x ^ (x >> 29) ^ 0x5a5a5a5a00000001ULL;
}

/* What the 8 bytes at @gpa of a page of @kind hold. */
static u64 expected_u64(int kind, u64 gpa)
{
	switch (kind) {
	case PAGE_FULL:
	case PAGE_HOST:
		return pattern(gpa);
	case PAGE_LAST_BYTE:
		return (gpa & 0xfff) == 0xff8 ? LAST_BYTE_VAL : 0;
	default:
		return 0;
	}
}

static void guest_pattern(void)
{
	for (int s = 1; s <= 2; s++) {
		u64 base = s == 1 ? PAT_GPA1 : PAT_GPA2;
		u64 n = s == 1 ? PAT_PAGES1 : PAT_PAGES2;

		for (u64 p = 0; p < n; p++) {
			volatile u64 *q = (volatile u64 *)(base + p * SZ_4K);
			int kind = page_kind(s, p);

			if (kind == PAGE_ZERO || kind == PAGE_HOST)
				continue;
			for (u64 i = 0; i < 512; i++)
				q[i] = kind == PAGE_ZEROED ?
				       pattern((u64)&q[i]) :
				       expected_u64(kind, (u64)&q[i]);
			if (kind == PAGE_ZEROED)
				for (u64 i = 0; i < 512; i++)
					q[i] = 0;
		}
	}
	GUEST_SYNC(1);

	/* Saved here: the copy checks every byte of both slots. */
	for (int s = 1; s <= 2; s++) {
		u64 base = s == 1 ? PAT_GPA1 : PAT_GPA2;
		u64 n = s == 1 ? PAT_PAGES1 : PAT_PAGES2;

		for (u64 p = 0; p < n; p++) {
			volatile u64 *q = (volatile u64 *)(base + p * SZ_4K);
			int kind = page_kind(s, p);

			for (u64 i = 0; i < 512; i++) {
				u64 v = q[i];

				__GUEST_ASSERT(v == expected_u64(kind, (u64)&q[i]),
					       "guest memory differs at GPA (a), which reads (b)",
					       1, (u64)&q[i], v);
			}
		}
	}
	GUEST_SYNC(2);
	GUEST_DONE();
}

/* Pages of slot @s of @vm that are not what the guest wrote. */
static u64 pattern_diffs(struct lvmm_vm *vm, int s, u64 *first)
{
	struct userspace_mem_region *r = &vm->slots[s];
	u64 diffs = 0;

	for (u64 p = 0; p < r->size / SZ_4K; p++) {
		const u64 *q = (const u64 *)((u8 *)r->hva + p * SZ_4K);
		int kind = page_kind(s, p);

		for (u64 i = 0; i < 512; i++) {
			u64 gpa = r->gpa + p * SZ_4K + i * 8;

			if (q[i] == expected_u64(kind, gpa))
				continue;
			if (!diffs++)
				*first = gpa;
			break;
		}
	}
	return diffs;
}

static bool page_is_zero(const u8 *p)
{
	for (int i = 0; i < 4096; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Check the MEMORY records of @buf against @vm's memory: every page
 * they carry is the one @vm has there, and none is zero.  Returns the
 * number of pages, -1 on a mismatch.
 */
static long stream_pages(struct __test_metadata *_metadata, u8 *buf,
			 size_t len, struct lvmm_vm *vm)
{
	struct rec_ref *recs = calloc(MAX_RECS, sizeof(*recs));
	int nr = stream_index(buf, len, recs, MAX_RECS);
	long pages = 0;

	for (int i = 0; i < nr; i++) {
		struct lvmm_stream_mem m;
		struct userspace_mem_region *r;
		const u8 *page;
		u64 n = 0;

		if (recs[i].type != LVMM_REC_MEMORY)
			continue;
		memcpy(&m, rec_data(buf, &recs[i]), sizeof(m));
		page = (u8 *)rec_data(buf, &recs[i]) + sizeof(m);
		r = m.slot < NR_MEMSLOTS ? &vm->slots[m.slot] : NULL;
		EXPECT_TRUE(r && r->used) TH_LOG("record %d: slot %u", i, m.slot);
		EXPECT_EQ(0, m.first_page % 512) TH_LOG("record %d", i);
		EXPECT_TRUE(m.npages >= 1 && m.npages <= 512);
		if (!r || !r->used ||
		    (m.first_page + m.npages) * SZ_4K > r->size) {
			free(recs);
			return -1;
		}
		for (u32 b = 0; b < 512; b++) {
			const u8 *want = (u8 *)r->hva + (m.first_page + b) * SZ_4K;

			if (!(m.present[b / 64] & (1ULL << (b % 64))))
				continue;
			EXPECT_LT(b, m.npages);
			if (b >= m.npages || memcmp(page, want, SZ_4K) ||
			    page_is_zero(page)) {
				TH_LOG("slot %u page 0x%llx: in the stream %s",
				       m.slot,
				       (unsigned long long)(m.first_page + b),
				       page_is_zero(page) ? "as zeros" :
				       "not as in the VM");
				free(recs);
				return -1;
			}
			page += SZ_4K;
			n++;
		}
		EXPECT_EQ(sizeof(m) + n * SZ_4K, recs[i].len);
		pages += n;
	}
	free(recs);
	return pages;
}

static long nonzero_pages(struct lvmm_vm *vm)
{
	long n = 0;

	for (int s = 0; s < NR_MEMSLOTS; s++) {
		struct userspace_mem_region *r = &vm->slots[s];

		for (u64 off = 0; r->used && off < r->size; off += SZ_4K)
			n += !page_is_zero((u8 *)r->hva + off);
	}
	return n;
}

TEST_F_TIMEOUT(snap, memory_pattern, 180)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm, *rvm;
	u64 *host_page, first = 0;
	size_t len;
	long pages;
	u8 *buf;
	int fd;

	REQUIRE_SNAPSHOT(self->c);
	vm = vm_create_with_one_vcpu(&vcpu, guest_pattern);
	vm_add_memslot(vm, 1, 0, PAT_GPA1, PAT_PAGES1 * SZ_4K);
	vm_add_memslot(vm, 2, 0, PAT_GPA2, PAT_PAGES2 * SZ_4K);
	host_page = addr_gpa2hva(vm, PAT_GPA2 + 2 * SZ_4K);
	for (u64 i = 0; i < 512; i++)
		host_page[i] = pattern(PAT_GPA2 + 2 * SZ_4K + i * 8);

	vcpu_expect_sync(vcpu, 1);
	ASSERT_EQ(0, pattern_diffs(vm, 1, &first)) TH_LOG("0x%llx", first);
	ASSERT_EQ(0, pattern_diffs(vm, 2, &first)) TH_LOG("0x%llx", first);
	vcpu_complete_exit(vcpu);

	fd = save_to_memfd(self->c, vm, false, NULL);
	buf = read_all(fd, &len);
	/* Every page that is not zero, and no other. */
	pages = stream_pages(_metadata, buf, len, vm);
	EXPECT_EQ(nonzero_pages(vm), pages);
	TH_LOG("%zu bytes, %ld pages", len, pages);

	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	rvm = vm_restore(fd, "snap-pattern", vm);
	EXPECT_EQ(0, pattern_diffs(rvm, 1, &first)) TH_LOG("first at 0x%llx", first);
	EXPECT_EQ(0, pattern_diffs(rvm, 2, &first)) TH_LOG("first at 0x%llx", first);
	/* The original has not run since: everything else is the same too. */
	EXPECT_EQ(0, memory_diffs(vm, rvm, &first)) TH_LOG("first at 0x%llx", first);

	/* And the guest finds it so. */
	vcpu_expect_sync(rvm->vcpus[0], 2);
	vcpu_expect_done(rvm->vcpus[0]);
	free(buf);
	close(fd);
	vm_free(rvm);
	vm_free(vm);
}

/* ---- an exit the VMM had not answered is re-executed ----------------- */

#define PIO_PORT	0x71

static void guest_pio(void)
{
	u32 v = inl(PIO_PORT);

	GUEST_SYNC(v);
	GUEST_DONE();
}

static void expect_in_exit(struct __test_metadata *_metadata,
			   struct lvmm_vcpu *vcpu)
{
	struct lvmm_run *run = vcpu->run;

	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_IO);
	EXPECT_EQ(LVMM_EXIT_IO_IN, run->io.direction);
	EXPECT_EQ(PIO_PORT, run->io.port);
	EXPECT_EQ(4, run->io.size);
	EXPECT_EQ(1, run->io.count);
}

TEST_F_TIMEOUT(snap, pending_pio_exit, 120)
{
	struct lvmm_vcpu *vcpu, *rvcpu;
	struct lvmm_vcpu_events ev;
	struct lvmm_regs regs, rregs;
	struct lvmm_vm *vm, *rvm;
	struct nl_saved s;
	u32 v;
	int fd;

	REQUIRE_SNAPSHOT(self->c);
	vm = vm_create_with_one_vcpu(&vcpu, guest_pio);
	vcpu_run(vcpu);
	expect_in_exit(_metadata, vcpu);
	vcpu_regs_get(vcpu, &regs);
	if (lvmm_cap(LVMM_CAP_VCPU_STATE)) {
		vcpu_get_events(vcpu, &ev);
		EXPECT_EQ(1, ev.exit_pending);
	}

	/* Not answered: the save finds the exit pending. */
	fd = save_to_memfd(self->c, vm, false, &s);
	TH_LOG("vCPU held %llu ms with its exit pending",
	       (unsigned long long)s.pause_ns / 1000000);
	rvm = vm_restore(fd, "snap-pio", vm);
	rvcpu = rvm->vcpus[0];
	ASSERT_NE(NULL, rvcpu);
	/* At the IN, which has not happened yet. */
	vcpu_regs_get(rvcpu, &rregs);
	EXPECT_EQ(regs.rip, rregs.rip);
	EXPECT_EQ(0, memcmp(&regs, &rregs, sizeof(regs)));
	if (lvmm_cap(LVMM_CAP_VCPU_STATE)) {
		vcpu_get_events(rvcpu, &ev);
		EXPECT_EQ(0, ev.exit_pending);
	}

	/* The copy does the IN again and exits again, to its own VMM. */
	vcpu_run(rvcpu);
	expect_in_exit(_metadata, rvcpu);
	v = 0xc0ffee01;
	memcpy(vcpu_io_data(rvcpu), &v, 4);
	vcpu_expect_sync(rvcpu, 0xc0ffee01);
	vcpu_expect_done(rvcpu);

	/* The original's exit is still its own to answer. */
	v = 0x5eed0002;
	memcpy(vcpu_io_data(vcpu), &v, 4);
	vcpu_expect_sync(vcpu, 0x5eed0002);
	vcpu_expect_done(vcpu);
	close(fd);
	vm_free(rvm);
	vm_free(vm);
}

/* ---- a queued interrupt is delivered after the restore --------------- */

#define IRQ_VECTOR	0x40
/* Bounded waits in the guest; what they wait for comes at once. */
#define SPIN		1000000ULL

static volatile u64 irq_count, irq_vector;

static void guest_irq_handler(struct ex_regs *regs)
{
	irq_vector = regs->vector;
	irq_count++;
}

static void guest_pending_irq(void)
{
	cli();
	GUEST_SYNC(0);
	/* Saved and restored here, with an interrupt queued and IF=0. */
	GUEST_SYNC(irq_count);
	sti();
	for (u64 i = 0; i < SPIN && !irq_count; i++)
		cpu_relax();
	cli();
	GUEST_SYNC_ARGS(2, irq_count, irq_vector, 0, 0);
	GUEST_DONE();
}

TEST_F_TIMEOUT(snap, pending_interrupt, 120)
{
	REQUIRE_SNAPSHOT(self->c);
	/* Queued with LVMM_INTERRUPT, then with LVMM_SET_VCPU_EVENTS. */
	for (int how = 0; how < 2; how++) {
		u32 vector = IRQ_VECTOR + how;
		struct lvmm_vcpu *vcpu, *rvcpu;
		struct lvmm_vcpu_events ev;
		struct lvmm_vm *vm, *rvm;
		struct ucall uc;
		int fd;

		if (how && !lvmm_cap(LVMM_CAP_VCPU_STATE))
			break;
		vm = vm_create_with_one_vcpu(&vcpu, guest_pending_irq);
		vm_init_descriptor_tables(vm);
		vm_install_exception_handler(vm, vector, guest_irq_handler);
		vcpu_expect_sync(vcpu, 0);
		EXPECT_EQ(0, vcpu->run->if_flag);
		vcpu_complete_exit(vcpu);
		if (!how) {
			ASSERT_EQ(0, lvmm_interrupt(&vcpu->h, vector));
		} else {
			vcpu_get_events(vcpu, &ev);
			ev.irq_pending = 1;
			ev.irq_vector = vector;
			vcpu_set_events(vcpu, &ev);
		}

		/* Saved and destroyed: the copy has the interrupt. */
		fd = save_to_memfd(self->c, vm, true, NULL);
		rvm = vm_restore(fd, NULL, vm);
		rvcpu = rvm->vcpus[0];
		ASSERT_NE(NULL, rvcpu);
		if (lvmm_cap(LVMM_CAP_VCPU_STATE)) {
			vcpu_get_events(rvcpu, &ev);
			EXPECT_EQ(1, ev.irq_pending);
			EXPECT_EQ(vector, ev.irq_vector);
		}
		/* Not before the guest sets IF... */
		vcpu_expect_sync(rvcpu, 0);
		/* ... and then at once, to its handler. */
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(rvcpu, &uc));
		EXPECT_EQ(2, uc.args[0]);
		EXPECT_EQ(1, uc.args[1]) TH_LOG("interrupts taken, queued with %s",
						how ? "SET_VCPU_EVENTS" : "LVMM_INTERRUPT");
		EXPECT_EQ(vector, uc.args[2]);
		vcpu_expect_done(rvcpu);
		close(fd);
		vm_free(rvm);
		vm_free(vm);
	}
}

/* ---- two vCPUs, both in LVMM_RUN while the save takes them ----------- */

/*
 * Few exits: the save finds the vCPUs in guest mode, most of the time,
 * and has to get them out.
 */
#define COUNT_N_BIG	(1ULL << 18)

TEST_F_TIMEOUT(snap, two_running_vcpus, 180)
{
	struct counter_thread t[2], rt[2];
	struct lvmm_vcpu *vcpus[2];
	u64 before[2], after[2], c0[2];
	struct lvmm_vm *vm, *rvm;
	int fd;

	REQUIRE_SNAPSHOT(self->c);
	vm = vm_create_with_vcpus(2, guest_counter, vcpus);
	*(u64 *)addr_gva2hva(vm, &count_every) = COUNT_N_BIG;
	for (int i = 0; i < 2; i++)
		counter_start(&t[i], vcpus[i]);
	ASSERT_TRUE(wait_for(t[0].nr_sync >= 2 && t[1].nr_sync >= 2, 20000));
	for (int i = 0; i < 2; i++)
		before[i] = counter_in(vm, i);
	fd = save_to_memfd(self->c, vm, false, NULL);
	for (int i = 0; i < 2; i++)
		after[i] = counter_in(vm, i);

	/* Both run on in the original, their threads never out of RUN for good. */
	ASSERT_TRUE(wait_for(counter_in(vm, 0) > after[0] + COUNT_N_BIG &&
			     counter_in(vm, 1) > after[1] + COUNT_N_BIG, 20000));
	EXPECT_FALSE(t[0].done);
	EXPECT_FALSE(t[1].done);

	rvm = vm_restore(fd, "snap-smp", vm);
	for (int i = 0; i < 2; i++) {
		ASSERT_NE(NULL, rvm->vcpus[i]);
		c0[i] = counter_in(rvm, i);
		EXPECT_LE(before[i], c0[i]);
		EXPECT_GE(after[i], c0[i]);
		TH_LOG("vCPU %d saved at %llu, %llu steps after a SYNC", i,
		       (unsigned long long)c0[i],
		       (unsigned long long)(c0[i] % COUNT_N_BIG));
		counter_start(&rt[i], rvm->vcpus[i]);
	}
	/* The copy and the original run side by side. */
	ASSERT_TRUE(wait_for(rt[0].nr_sync >= 2 && rt[1].nr_sync >= 2, 20000))
		TH_LOG("the copy does not count on both vCPUs");
	for (int i = 0; i < 2; i++) {
		EXPECT_LE(c0[i], rt[i].first) TH_LOG("vCPU %d", i);
		EXPECT_GE(c0[i] + COUNT_N_BIG, rt[i].first) TH_LOG("vCPU %d", i);
		EXPECT_EQ(0, rt[i].first % COUNT_N_BIG);
	}
	stop_counting(vm);
	stop_counting(rvm);
	for (int i = 0; i < 2; i++) {
		counter_join(&t[i], END_DONE);
		counter_join(&rt[i], END_DONE);
	}
	close(fd);
	vm_free(rvm);
	vm_free(vm);
}

/* ---- the VMM's own state --------------------------------------------- */

TEST_F_TIMEOUT(snap, vmm_state, 120)
{
	u8 *blob = malloc(LVMM_MAX_VMM_STATE + 1);
	u8 *out = malloc(LVMM_MAX_VMM_STATE + 1);
	struct lvmm_vmm_state raw;
	struct lvmm_vm *vm, *rvm, *rvm2;
	u32 size;
	int fd, fd2;

	REQUIRE_SNAPSHOT(self->c);
	ASSERT_TRUE(blob && out);
	for (u32 i = 0; i <= LVMM_MAX_VMM_STATE; i++)
		blob[i] = i * 7 + (i >> 8);
	vm = vm_create_bare("snap-vmm");
	vm_add_memslot(vm, 0, 0, 0, SZ_2M);

	/* None at first. */
	size = 64;
	EXPECT_EQ(0, __vm_get_vmm_state(vm, out, &size));
	EXPECT_EQ(0, size);
	/* At most 64 KiB. */
	EXPECT_EQ(-E2BIG, __vm_set_vmm_state(vm, blob, LVMM_MAX_VMM_STATE + 1));
	ASSERT_EQ(0, __vm_set_vmm_state(vm, blob, LVMM_MAX_VMM_STATE));
	size = LVMM_MAX_VMM_STATE;
	ASSERT_EQ(0, __vm_get_vmm_state(vm, out, &size));
	EXPECT_EQ(LVMM_MAX_VMM_STATE, size);
	EXPECT_EQ(0, memcmp(blob, out, LVMM_MAX_VMM_STATE));

	/* An odd size, for the stream's padding. */
	ASSERT_EQ(0, __vm_set_vmm_state(vm, blob + 3, 4099));
	memset(out, 0xee, 8192);
	size = 4098;
	EXPECT_EQ(-ENOSPC, __vm_get_vmm_state(vm, out, &size));
	EXPECT_EQ(4099, size);
	EXPECT_EQ(0xee, out[0]) TH_LOG("copied out to a buffer too small");
	size = 8192;
	ASSERT_EQ(0, __vm_get_vmm_state(vm, out, &size));
	EXPECT_EQ(4099, size);
	EXPECT_EQ(0, memcmp(blob + 3, out, 4099));
	EXPECT_EQ(0xee, out[4099]);

	/* Flags and reserved must be 0; a bad pointer changes nothing. */
	raw = (struct lvmm_vmm_state){ .data = (u64)(unsigned long)blob,
				       .size = 8, .flags = 1 };
	EXPECT_EQ(-EINVAL, __vm_ioctl(vm, LVMM_SET_VMM_STATE, &raw));
	raw.size = 8192;
	raw.data = (u64)(unsigned long)out;
	EXPECT_EQ(-EINVAL, __vm_ioctl(vm, LVMM_GET_VMM_STATE, &raw));
	raw.flags = 0;
	raw.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, __vm_ioctl(vm, LVMM_SET_VMM_STATE, &raw));
	EXPECT_EQ(-EINVAL, __vm_ioctl(vm, LVMM_GET_VMM_STATE, &raw));
	EXPECT_EQ(-EFAULT, __vm_set_vmm_state(vm, (void *)8, 16));
	size = 8192;
	EXPECT_EQ(-EFAULT, __vm_get_vmm_state(vm, (void *)8, &size));
	size = 8192;
	ASSERT_EQ(0, __vm_get_vmm_state(vm, out, &size));
	EXPECT_EQ(4099, size);

	/* Saved and restored with the VM. */
	fd = save_to_memfd(self->c, vm, false, NULL);
	{
		struct rec_ref recs[MAX_RECS];
		size_t len;
		u8 *buf = read_all(fd, &len);
		int nr = stream_index(buf, len, recs, MAX_RECS);
		int i = rec_find(recs, nr, LVMM_REC_VMM, 0);
		u64 blob_size;

		ASSERT_LE(0, i);
		EXPECT_EQ(-1, rec_find(recs, nr, LVMM_REC_VMM, 1));
		EXPECT_EQ(ALIGN_UP(8 + 4099, 8), recs[i].len);
		memcpy(&blob_size, rec_data(buf, &recs[i]), sizeof(blob_size));
		EXPECT_EQ(4099, blob_size);
		EXPECT_EQ(0, memcmp((u8 *)rec_data(buf, &recs[i]) + 8, blob + 3,
				    4099));
		free(buf);
		ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	}
	rvm = vm_restore(fd, "snap-vmm-r", NULL);
	memset(out, 0, 8192);
	size = 8192;
	ASSERT_EQ(0, __vm_get_vmm_state(rvm, out, &size));
	EXPECT_EQ(4099, size);
	EXPECT_EQ(0, memcmp(blob + 3, out, 4099));
	size = 100;
	EXPECT_EQ(-ENOSPC, __vm_get_vmm_state(rvm, out, &size));
	EXPECT_EQ(4099, size);

	/* Cleared, and saved again: a restored VM saves too, with no blob. */
	ASSERT_EQ(0, __vm_set_vmm_state(rvm, NULL, 0));
	size = 8192;
	ASSERT_EQ(0, __vm_get_vmm_state(rvm, out, &size));
	EXPECT_EQ(0, size);
	fd2 = save_to_memfd(self->c, rvm, true, NULL);
	rvm2 = vm_restore(fd2, NULL, NULL);
	EXPECT_STREQ("snap-vmm-r", rvm2->h.name);
	size = 8192;
	ASSERT_EQ(0, __vm_get_vmm_state(rvm2, out, &size));
	EXPECT_EQ(0, size);
	/* The original kept its own. */
	size = 8192;
	ASSERT_EQ(0, __vm_get_vmm_state(vm, out, &size));
	EXPECT_EQ(4099, size);
	close(fd);
	close(fd2);
	vm_free(rvm2);
	vm_free(rvm);
	vm_free(vm);
	free(blob);
	free(out);
}

/* ---- every piece of vCPU state, the same after the restore ----------- */

#define STATE_IRQ	0x50

static volatile u64 state_tsc;
static volatile u64 state_nmis;

static void guest_state_nmi(struct ex_regs *regs)
{
	(void)regs;
	state_nmis++;
}

static void guest_state(u64 buf, u64 flags)
{
	u64 h, v;

	guest_state_prepare(buf);
	h = guest_checkpoint(0x0123456789abcdefULL, 1, flags & VCPU_STATE_AVX,
			     &state_tsc);
	/* Everything else the guest can read of its state. */
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_state_msrs); i++)
		h = mix(h, rdmsr(vcpu_state_msrs[i]));
	h = mix(h, read_dr(0));
	h = mix(h, read_dr(1));
	h = mix(h, read_dr(6));
	h = mix(h, read_dr(7));
	asm volatile("mov %%cr2, %0" : "=r"(v));
	h = mix(h, v);
	asm volatile("mov %%cr4, %0" : "=r"(v));
	h = mix(h, v);
	asm volatile("mov %%fs:8, %0" : "=r"(v));
	h = mix(h, v);
	if (flags & VCPU_STATE_XSAVE)
		h = mix(h, xgetbv(0));
	GUEST_SYNC(h);
	GUEST_DONE();
}

static void expect_same_segment(struct __test_metadata *_metadata,
				const struct lvmm_segment *a,
				const struct lvmm_segment *b, const char *seg)
{
	EXPECT_EQ(0, memcmp(a, b, sizeof(*a)))
		TH_LOG("%s: base 0x%llx/0x%llx limit 0x%x/0x%x sel 0x%x/0x%x type %u/%u",
		       seg, a->base, b->base, a->limit, b->limit, a->selector,
		       b->selector, a->type, b->type);
}

/* All of a state but the TSC. */
static void expect_same_state(struct __test_metadata *_metadata,
			      const struct vcpu_state *a,
			      const struct vcpu_state *b, bool avx)
{
	const u8 *x = (const u8 *)a->xsave.region;
	const u8 *y = (const u8 *)b->xsave.region;

	EXPECT_EQ(0, memcmp(&a->regs, &b->regs, sizeof(a->regs)))
		TH_LOG("registers (RIP 0x%llx vs 0x%llx, RSP 0x%llx vs 0x%llx)",
		       a->regs.rip, b->regs.rip, a->regs.rsp, b->regs.rsp);
	expect_same_segment(_metadata, &a->sregs.cs, &b->sregs.cs, "CS");
	expect_same_segment(_metadata, &a->sregs.ds, &b->sregs.ds, "DS");
	expect_same_segment(_metadata, &a->sregs.es, &b->sregs.es, "ES");
	expect_same_segment(_metadata, &a->sregs.fs, &b->sregs.fs, "FS");
	expect_same_segment(_metadata, &a->sregs.gs, &b->sregs.gs, "GS");
	expect_same_segment(_metadata, &a->sregs.ss, &b->sregs.ss, "SS");
	expect_same_segment(_metadata, &a->sregs.tr, &b->sregs.tr, "TR");
	expect_same_segment(_metadata, &a->sregs.ldt, &b->sregs.ldt, "LDT");
	EXPECT_EQ(0, memcmp(&a->sregs.gdt, &b->sregs.gdt, sizeof(a->sregs.gdt)));
	EXPECT_EQ(0, memcmp(&a->sregs.idt, &b->sregs.idt, sizeof(a->sregs.idt)));
	EXPECT_EQ(a->sregs.cr0, b->sregs.cr0);
	EXPECT_EQ(a->sregs.cr2, b->sregs.cr2);
	EXPECT_EQ(a->sregs.cr3, b->sregs.cr3);
	EXPECT_EQ(a->sregs.cr4, b->sregs.cr4);
	EXPECT_EQ(a->sregs.cr8, b->sregs.cr8);
	EXPECT_EQ(a->sregs.efer, b->sregs.efer);
	EXPECT_EQ(a->sregs.apic_base, b->sregs.apic_base);
	/* The registers of the XSAVE image: FCW..FTW, MXCSR, ST, XMM, YMM. */
	EXPECT_EQ(0, memcmp(x, y, 6)) TH_LOG("FCW, FSW, FTW");
	EXPECT_EQ(0, memcmp(x + 24, y + 24, 4)) TH_LOG("MXCSR");
	EXPECT_EQ(0, memcmp(x + 32, y + 32, 128)) TH_LOG("ST0-7");
	EXPECT_EQ(0, memcmp(x + 160, y + 160, 256)) TH_LOG("XMM0-15");
	if (avx) {
		EXPECT_EQ(0, memcmp(x + 576, y + 576, 256))
			TH_LOG("YMM0-15, upper halves");
	}
	EXPECT_EQ(0, memcmp(&a->xcrs, &b->xcrs, sizeof(a->xcrs)))
		TH_LOG("XCR0 0x%llx vs 0x%llx", a->xcrs.xcr0, b->xcrs.xcr0);
	EXPECT_EQ(0, memcmp(&a->dregs, &b->dregs, sizeof(a->dregs)))
		TH_LOG("debug registers");
	EXPECT_EQ(0, memcmp(&a->events, &b->events, sizeof(a->events)))
		TH_LOG("events: irq_pending %u/%u vector %u/%u injected %u/%u",
		       a->events.irq_pending, b->events.irq_pending,
		       a->events.irq_vector, b->events.irq_vector,
		       a->events.injected, b->events.injected);
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_state_msrs); i++) {
		u32 index = vcpu_state_msrs[i];

		EXPECT_EQ(vcpu_state_msr(a, index), vcpu_state_msr(b, index))
			TH_LOG("MSR 0x%x", index);
	}
	ASSERT_EQ(a->cpuid->nent, b->cpuid->nent);
	EXPECT_EQ(0, memcmp(a->cpuid->entries, b->cpuid->entries,
			    a->cpuid->nent * sizeof(a->cpuid->entries[0])))
		TH_LOG("CPUID");
}

TEST_F_TIMEOUT(snap, vcpu_state_identical, 120)
{
	struct vcpu_state *st = calloc(3, sizeof(*st));
	struct lvmm_vcpu *vcpu, *rvcpu;
	struct lvmm_vm *vm, *rvm;
	u64 flags, buf, tsc_now, h_orig, h_copy;
	struct ucall uc;
	int fd;

	REQUIRE_SNAPSHOT(self->c);
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_VCPU_STATE));
	ASSERT_NE(NULL, st);
	vm = vm_create();
	vcpu = vm_vcpu_add(vm, 0, guest_state);
	vm_init_descriptor_tables(vm);
	vm_install_exception_handler(vm, NMI_VECTOR, guest_state_nmi);
	buf = vm_alloc(vm, SZ_4K);
	flags = vcpu_enable_xsave(vcpu);
	TH_LOG("guest reads XCR0: %s, uses AVX: %s",
	       flags & VCPU_STATE_XSAVE ? "yes" : "no",
	       flags & VCPU_STATE_AVX ? "yes" : "no");
	vcpu_args_set(vcpu, 2, buf, flags);
	vcpu_set_nondefault_state(vcpu);

	/* To the checkpoint, the exit completed as a VMM does; one queued IRQ. */
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_IO);
	ASSERT_EQ(CHECKPOINT_PORT, vcpu->run->io.port);
	vcpu_complete_exit(vcpu);
	ASSERT_EQ(0, lvmm_interrupt(&vcpu->h, STATE_IRQ));
	if (lvmm_cap(LVMM_CAP_NMI))
		ASSERT_EQ(0, lvmm_nmi(&vcpu->h));

	/* Paused by its user: the save leaves it paused. */
	ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_PAUSE, vm->h.id));
	vcpu_save_state(vcpu, &st[0]);
	fd = save_to_memfd(self->c, vm, false, NULL);
	EXPECT_EQ(LVMM_VM_STATE_PAUSED, vm_state(self->c, vm->h.id));
	EXPECT_EQ(1, st[0].events.irq_pending);
	EXPECT_EQ(!!lvmm_cap(LVMM_CAP_NMI), st[0].events.nmi_pending);
	EXPECT_EQ(0, st[0].events.exit_pending);
	EXPECT_EQ(flags & VCPU_STATE_AVX ? 7 : flags & VCPU_STATE_XSAVE ? 3 : 1,
		  st[0].xcrs.xcr0);
	EXPECT_EQ(0x7ffff000, st[0].dregs.db[1]);

	rvm = vm_restore(fd, "snap-state", vm);
	rvcpu = rvm->vcpus[0];
	ASSERT_NE(NULL, rvcpu);
	vcpu_save_state(rvcpu, &st[1]);
	vcpu_save_state(vcpu, &st[2]);
	tsc_now = vcpu_state_msr(&st[2], MSR_IA32_TSC);
	expect_same_state(_metadata, &st[0], &st[1], flags & VCPU_STATE_AVX);
	/* The save took nothing from the original either. */
	expect_same_state(_metadata, &st[0], &st[2], flags & VCPU_STATE_AVX);
	/*
	 * The copy's TSC went on from the saved value: at least what it was
	 * before the save, less than the original's, which ran all along.
	 */
	EXPECT_LE(vcpu_state_msr(&st[0], MSR_IA32_TSC),
		  vcpu_state_msr(&st[1], MSR_IA32_TSC));
	EXPECT_GT(tsc_now, vcpu_state_msr(&st[1], MSR_IA32_TSC));
	TH_LOG("TSC: 0x%llx before the save, 0x%llx in the copy, 0x%llx in the original",
	       (unsigned long long)vcpu_state_msr(&st[0], MSR_IA32_TSC),
	       (unsigned long long)vcpu_state_msr(&st[1], MSR_IA32_TSC),
	       (unsigned long long)tsc_now);

	/* Both go on to the same result from there: the copy first. */
	TH_LOG("the copy goes on");
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(rvcpu, &uc));
	h_copy = uc.args[0];
	TH_LOG("the original goes on");
	ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_RESUME, vm->h.id));
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	h_orig = uc.args[0];
	EXPECT_EQ(h_orig, h_copy);
	/* The NMI, queued at the save, went to both. */
	EXPECT_EQ(!!lvmm_cap(LVMM_CAP_NMI), *(u64 *)addr_gva2hva(vm, &state_nmis));
	EXPECT_EQ(!!lvmm_cap(LVMM_CAP_NMI), *(u64 *)addr_gva2hva(rvm, &state_nmis));
	EXPECT_LE(vcpu_state_msr(&st[0], MSR_IA32_TSC),
		  *(u64 *)addr_gva2hva(rvm, &state_tsc))
		TH_LOG("the copy's guest read a TSC from before the save");
	vcpu_expect_done(vcpu);
	vcpu_expect_done(rvcpu);
	for (int i = 0; i < 3; i++)
		vcpu_state_free(&st[i]);
	free(st);
	close(fd);
	vm_free(rvm);
	vm_free(vm);
}

/* A vCPU that triple-faulted stays shut down in the copy. */
static void guest_triple_fault(void)
{
	static const struct { u16 limit; u64 base; } __attribute__((packed))
		no_idt = { 0, 0 };

	GUEST_SYNC(1);
	asm volatile("lidt %0; ud2" :: "m"(no_idt));
	GUEST_FAIL("survived a triple fault");
}

TEST_F_TIMEOUT(snap, shutdown_vcpu, 60)
{
	struct lvmm_vcpu_events ev;
	struct lvmm_vm *vm, *rvm;
	struct lvmm_vcpu *vcpu;
	int fd;

	REQUIRE_SNAPSHOT(self->c);
	vm = vm_create_with_one_vcpu(&vcpu, guest_triple_fault);
	vcpu_expect_sync(vcpu, 1);
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_SHUTDOWN);
	fd = save_to_memfd(self->c, vm, true, NULL);
	rvm = vm_restore(fd, NULL, vm);
	if (lvmm_cap(LVMM_CAP_VCPU_STATE)) {
		vcpu_get_events(rvm->vcpus[0], &ev);
		EXPECT_EQ(1, ev.shutdown);
	}
	vcpu_run(rvm->vcpus[0]);
	TEST_ASSERT_EXIT_REASON(rvm->vcpus[0], LVMM_EXIT_SHUTDOWN);
	close(fd);
	vm_free(rvm);
	vm_free(vm);
}

/*
 * A VM in the middle of a migration's pre-copy, logging writes: a save
 * reads its memory without dirtying it, and the stream restores.
 */
TEST_F_TIMEOUT(snap, dirty_logging_vm, 60)
{
	u64 bitmap[8] = {}, zero[8] = {};
	struct lvmm_vm *vm, *rvm;
	u8 *mem;
	int fd;

	REQUIRE_SNAPSHOT(self->c);
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_DIRTY_LOG));
	vm = vm_create_bare("snap-dirty");
	mem = vm_add_memslot(vm, 1, LVMM_MEMSLOT_LOG_DIRTY, TEST_MEM_GPA,
			     512 * SZ_4K);
	memset(mem + 3 * SZ_4K, 0x3c, SZ_4K);
	vm_get_dirty_log(vm, 1, 0, 512, bitmap);
	EXPECT_EQ(1ULL << 3, bitmap[0]);
	vm_clear_dirty_log(vm, 1, 0, 512, bitmap);

	fd = save_to_memfd(self->c, vm, false, NULL);
	vm_get_dirty_log(vm, 1, 0, 512, bitmap);
	EXPECT_EQ(0, memcmp(bitmap, zero, sizeof(zero)))
		TH_LOG("the save dirtied pages: 0x%llx", bitmap[0]);
	rvm = vm_restore(fd, "snap-dirty-r", vm);
	EXPECT_EQ(0x3c, *(u8 *)addr_gpa2hva(rvm, TEST_MEM_GPA + 3 * SZ_4K));
	EXPECT_EQ(0, *(u8 *)addr_gpa2hva(rvm, TEST_MEM_GPA + 4 * SZ_4K));
	close(fd);
	vm_free(rvm);
	vm_free(vm);
}

/* ---- one snapshot, two independent VMs; names ------------------------ */

TEST_F_TIMEOUT(snap, restore_twice, 120)
{
	struct lvmm_vm *vm, *a, *b;
	struct lvmm_restore_vm req;
	struct lvmm_create_vcpu cv;
	struct lvmm_vcpu *vcpu;
	u64 *page, c0, first_a = 0;
	int fd, nr_vms, r;
	struct ucall uc;

	REQUIRE_SNAPSHOT(self->c);
	vm = vm_create_with_one_vcpu(&vcpu, guest_counter);
	page = vm_add_memslot(vm, 1, 0, TEST_MEM_GPA, 16 * SZ_4K);
	for (int i = 0; i < 512; i++)
		page[i] = pattern(i);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	vcpu_complete_exit(vcpu);
	fd = save_to_memfd(self->c, vm, false, NULL);
	nr_vms = nl_vm_count(self->c);
	ASSERT_LT(0, nr_vms);

	/* The stream's name is the original's, which still has it. */
	EXPECT_EQ(-EEXIST, restore_fd(fd, NULL, &req));
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	EXPECT_EQ(-EEXIST, restore_fd(fd, vm->h.name, &req));
	EXPECT_EQ(nr_vms, nl_vm_count(self->c));

	/* Under new names: twice. */
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	a = vm_restore(fd, "snap-twice-a", vm);
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	b = vm_restore(fd, "snap-twice-b", vm);
	EXPECT_STREQ("snap-twice-a", a->h.name);
	EXPECT_STREQ("snap-twice-b", b->h.name);
	EXPECT_NE(a->h.id, b->h.id);
	EXPECT_NE(vm->h.id, a->h.id);
	EXPECT_NE(vm->h.id, b->h.id);
	EXPECT_EQ(nr_vms + 2, nl_vm_count(self->c));
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	EXPECT_EQ(-EEXIST, restore_fd(fd, "snap-twice-a", &req));
	EXPECT_EQ(nr_vms + 2, nl_vm_count(self->c));

	/* LVMM_GET_VCPU: the vCPUs there are, each once. */
	EXPECT_EQ(-EBUSY, __vm_get_vcpu(a, 0));
	EXPECT_EQ(-ENOENT, __vm_get_vcpu(a, 1));
	EXPECT_EQ(-EINVAL, __vm_get_vcpu(a, MAX_VCPUS));
	cv = (struct lvmm_create_vcpu){ .id = 0, .flags = 1 };
	EXPECT_EQ(-EINVAL, __vm_ioctl(a, LVMM_GET_VCPU, &cv));
	cv = (struct lvmm_create_vcpu){ .id = 0, .reserved = { 0, 0, 1 } };
	EXPECT_EQ(-EINVAL, __vm_ioctl(a, LVMM_GET_VCPU, &cv));

	/* Memory: written in one, unchanged in the other and the original. */
	c0 = counter_in(b, 0);
	memset(addr_gpa2hva(a, TEST_MEM_GPA), 0x77, SZ_4K);
	EXPECT_EQ(pattern(0), *(u64 *)addr_gpa2hva(b, TEST_MEM_GPA));
	EXPECT_EQ(pattern(0), *(u64 *)addr_gpa2hva(vm, TEST_MEM_GPA));
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(a->vcpus[0], &uc));
		if (!i)
			first_a = uc.args[1];
	}
	EXPECT_LT(c0, counter_in(a, 0));
	EXPECT_EQ(c0, counter_in(b, 0));
	EXPECT_EQ(c0, counter_in(vm, 0));
	/* The same state: the same next step in both. */
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(b->vcpus[0], &uc));
	EXPECT_EQ(first_a, uc.args[1]);
	EXPECT_EQ(ALIGN_UP(c0 + 1, COUNT_N), first_a);

	/* The original's name, free again, goes to the next copy. */
	vm_free(vm);
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	r = restore_fd(fd, NULL, &req);
	ASSERT_LE(0, r);
	EXPECT_NE(0, req.id);
	EXPECT_EQ(1, req.nr_vcpus);
	close(r);
	close(fd);
	vm_free(a);
	vm_free(b);
}

/* LVMM_RESTORE_VM's own arguments. */
TEST_F_TIMEOUT(snap, restore_request, 60)
{
	struct lvmm_restore_vm req;
	struct lvmm_vm *vm;
	int fd, dev, wfd, nr_vms;

	REQUIRE_SNAPSHOT(self->c);
	vm = vm_create_bare("snap-req");
	vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	fd = save_to_memfd(self->c, vm, true, NULL);
	dev = open_lvmm_dev();
	nr_vms = nl_vm_count(self->c);

#define EXPECT_BAD_RESTORE(err, assignments) do {			\
	memset(&req, 0, sizeof(req));					\
	req.fd = fd;							\
	assignments;							\
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));				\
	EXPECT_EQ(-(err), __vm_restore(dev, &req)) TH_LOG(#assignments); \
} while (0)
	EXPECT_BAD_RESTORE(EINVAL, req.flags = 1);
	EXPECT_BAD_RESTORE(EINVAL, req.flags = 1U << 31);
	EXPECT_BAD_RESTORE(EINVAL, req.id = 5);
	EXPECT_BAD_RESTORE(EINVAL, req.nr_vcpus = 1);
	EXPECT_BAD_RESTORE(EINVAL, req.reserved[0] = 1);
	EXPECT_BAD_RESTORE(EINVAL, req.reserved[3] = 1ULL << 63);
	EXPECT_BAD_RESTORE(EINVAL, memset(req.name, 'a', sizeof(req.name)));
	EXPECT_BAD_RESTORE(EINVAL, strcpy(req.name, "bad name"));
	EXPECT_BAD_RESTORE(EBADF, req.fd = -1);
	EXPECT_BAD_RESTORE(EBADF, req.fd = 1000000);
	wfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, wfd);
	EXPECT_BAD_RESTORE(EBADF, req.fd = wfd);
	close(wfd);
	/* Not a stream at all: nothing, or zeros. */
	wfd = new_memfd();
	EXPECT_BAD_RESTORE(EBADMSG, req.fd = wfd);
	ASSERT_EQ(0, ftruncate(wfd, SZ_2M));
	EXPECT_BAD_RESTORE(EBADMSG, req.fd = wfd);
	close(wfd);
#undef EXPECT_BAD_RESTORE
	EXPECT_EQ(nr_vms, nl_vm_count(self->c));

	/* And the stream is good. */
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	memset(&req, 0, sizeof(req));
	req.fd = fd;
	wfd = __vm_restore(dev, &req);
	ASSERT_LE(0, wfd);
	EXPECT_STREQ("snap-req", req.name);
	EXPECT_EQ(0, req.nr_vcpus);
	close(wfd);
	close(dev);
	close(fd);
	vm_free(vm);
}

/* ---- streams that are not what a save writes ------------------------- */

/* The tiny VM (stream_bytes.h), with a byte at the end of slot 0 too. */
#define TINY_NAME	"snap-tiny"

static struct lvmm_vm *snap_tiny_vm(void)
{
	struct lvmm_vm *vm = tiny_vm(TINY_NAME);

	*(u8 *)addr_gpa2hva(vm, 0x1ff000 + 4095) = 0x22;
	return vm;
}

/* Run a (tiny) VM's vCPU @vfd for at most ~20 ms: RUN's return. */
static int run_bounded(int vfd, size_t mmap_size)
{
	struct itimerval it = { .it_value = { .tv_usec = 20000 } };
	struct itimerval off = {};
	void *run;
	int r;

	run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vfd, 0);
	if (run == MAP_FAILED)
		return -errno;
	setitimer(ITIMER_REAL, &it, NULL);
	r = ioctl(vfd, LVMM_RUN, 0) < 0 ? -errno : 0;
	setitimer(ITIMER_REAL, &off, NULL);
	munmap(run, mmap_size);
	return r;
}

static void alarm_handler(int sig)
{
	(void)sig;
}

FIXTURE(stream) {
	struct nlc *c;
	u8 *buf;		/* a valid stream of the tiny VM */
	size_t len;
	struct rec_ref recs[MAX_RECS];
	int nr;
	u8 *work;		/* room for a mutated copy */
	size_t cap;
	int mfd;
	int nr_vms;		/* VMs listed before the test */
	size_t mmap_size;
};

FIXTURE_SETUP(stream)
{
	struct sigaction sa = { .sa_handler = alarm_handler };
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	int fd, dev;

	self->buf = NULL;
	self->c = NULL;
	if (!lvmm_dev_present() || !lvmm_cap(LVMM_CAP_SNAPSHOT))
		return;
	self->c = nlc_open();
	if (!self->c)
		return;
	/* No SA_RESTART: the timer ends a RUN that would go on forever. */
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	vm = snap_tiny_vm();
	vcpu = vm->vcpus[0];
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_IO);
	vcpu_complete_exit(vcpu);
	fd = save_to_memfd(self->c, vm, false, NULL);
	vm_free(vm);
	self->buf = read_all(fd, &self->len);
	close(fd);
	self->nr = stream_index(self->buf, self->len, self->recs, MAX_RECS);
	self->cap = self->len * 2 + 2 * SZ_2M;
	self->work = malloc(self->cap);
	ASSERT_NE(NULL, self->work);
	self->mfd = new_memfd();
	dev = open_lvmm_dev();
	self->mmap_size = lvmm_vcpu_mmap_size(dev);
	close(dev);
	self->nr_vms = nl_vm_count(self->c);
}

FIXTURE_TEARDOWN(stream)
{
	if (!self->buf)
		return;
	free(self->buf);
	free(self->work);
	close(self->mfd);
	nlc_close(self->c);
}

#define REQUIRE_STREAM() do {						\
	TEST_REQUIRE(lvmm_dev_present());				\
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_SNAPSHOT));			\
	TEST_REQUIRE(self->c);						\
	ASSERT_NE(NULL, self->buf);					\
} while (0)

/* A fresh copy of the valid stream in self->work; its record @i. */
#define WORK_COPY()	memcpy(self->work, self->buf, self->len)
#define REC(i)		((u8 *)rec_data(self->work, &self->recs[i]))
#define REC_HDR(i)	((struct lvmm_rec *)(self->work + self->recs[i].off))

/*
 * Restore @len bytes of self->work: refused with @err, with no VM left
 * behind, or -- @err 0 -- accepted, usable and closed again.
 */
static void __expect_restore(struct __test_metadata *_metadata,
			     FIXTURE_DATA(stream) *self, size_t len, int err,
			     const char *what)
{
	struct lvmm_restore_vm req;
	int r = restore_buf(self->mfd, self->work, len, NULL, &req);

	if (r >= 0) {
		EXPECT_EQ(0, err) TH_LOG("%s: accepted, as VM %u", what, req.id);
		close(r);
	} else {
		EXPECT_EQ(-err, r) TH_LOG("%s: %s, not %s", what, strerror(-r),
					  strerror(err));
	}
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c))
		TH_LOG("%s: a VM left behind", what);
}

#define expect_restore(len, err, what)					\
	__expect_restore(_metadata, self, len, err, what)

/* The valid stream: its layout, as ABI and writer say. */
TEST_F_TIMEOUT(stream, valid_layout, 60)
{
	struct lvmm_stream_header h;
	struct lvmm_stream_end end;
	u32 nr_mem = 0, nr_vcpu = 0;

	REQUIRE_STREAM();
	/* The checksum: xxh64 as the kernel computes it. */
	EXPECT_EQ(0xef46db3751d8e999ULL, lvmm_xxh64("", 0, 0));
	EXPECT_EQ(0x44bc2cf5ad770999ULL, lvmm_xxh64("abc", 3, 0));
	EXPECT_EQ(0xfbcea83c8a378bf1ULL,
		  lvmm_xxh64("Nobody inspects the spammish repetition", 39, 0));

	ASSERT_LT(3, self->nr);
	EXPECT_EQ(self->len, self->recs[self->nr - 1].off +
		  sizeof(struct lvmm_rec) + sizeof(end)) TH_LOG("END is not last");
	ASSERT_EQ(LVMM_REC_HEADER, self->recs[0].type);
	ASSERT_EQ(LVMM_REC_END, self->recs[self->nr - 1].type);
	memcpy(&h, self->buf + sizeof(struct lvmm_rec), sizeof(h));
	EXPECT_EQ(LVMM_STREAM_MAGIC, h.magic);
	/* No PAGES or RUNSTATE records: the version every lvmm reads. */
	EXPECT_EQ(1, h.version);
	EXPECT_EQ(lvmm_cap(LVMM_CAP_SNAPSHOT), LVMM_STREAM_VERSION);
	EXPECT_EQ(0, h.flags);
	EXPECT_STREQ(TINY_NAME, h.name);
	EXPECT_EQ(2, h.nr_vcpus);
	EXPECT_EQ(3, h.nr_slots);
	EXPECT_EQ(SZ_2M + TINY_SLOT1_SIZE + SZ_4K, h.mem_size);
	EXPECT_EQ(sizeof(h) + 3 * sizeof(struct lvmm_stream_slot),
		  self->recs[0].len);
	EXPECT_NE(0, h.xcr0 & XFEATURE_X87);
	for (int i = 0; i < self->nr; i++) {
		struct lvmm_rec r;

		memcpy(&r, self->buf + self->recs[i].off, sizeof(r));
		EXPECT_EQ(0, r.flags);
		EXPECT_EQ(0, r.len % 8) TH_LOG("record %d", i);
		if (r.type == LVMM_REC_MEMORY) {
			/* Memory before the vCPUs. */
			EXPECT_EQ(0, nr_vcpu);
			nr_mem++;
		}
		if (r.type == LVMM_REC_VCPU) {
			struct lvmm_stream_vcpu v;

			memcpy(&v, self->buf + self->recs[i].off + sizeof(r),
			       sizeof(v));
			EXPECT_EQ(nr_vcpu, v.id);
			EXPECT_EQ(0, v.events.exit_pending);
			EXPECT_LT(0, v.nmsrs);
			EXPECT_LT(0, v.ncpuid);
			EXPECT_EQ(sizeof(v) + v.nmsrs * sizeof(struct lvmm_msr_entry) +
				  v.ncpuid * sizeof(struct lvmm_cpuid_entry), r.len);
			EXPECT_EQ(0x1111 * (nr_vcpu + 1), v.regs.rbx);
			nr_vcpu++;
		}
	}
	/* A record per chunk: slot 0's one, slot 1's two, the ROM's. */
	EXPECT_EQ(4, nr_mem);
	EXPECT_EQ(2, nr_vcpu);
	EXPECT_LE(0, rec_find(self->recs, self->nr, LVMM_REC_VMM, 0));
	memcpy(&end, self->buf + self->recs[self->nr - 1].off +
	       sizeof(struct lvmm_rec), sizeof(end));
	EXPECT_EQ(lvmm_xxh64(self->buf, self->recs[self->nr - 1].off, 0),
		  end.checksum);
	EXPECT_EQ((u64)self->nr - 1, end.nr_records);

	/* As written, and as rewritten by stream_fix(): accepted. */
	WORK_COPY();
	expect_restore(self->len, 0, "the stream as saved");
	ASSERT_TRUE(stream_fix(self->work, self->len));
	EXPECT_EQ(0, memcmp(self->work, self->buf, self->len));
	expect_restore(self->len, 0, "the stream after stream_fix()");
}

TEST_F_TIMEOUT(stream, truncated, 180)
{
	char what[96];

	REQUIRE_STREAM();
	WORK_COPY();
	expect_restore(0, EBADMSG, "an empty file");
	for (int i = 0; i < self->nr; i++) {
		size_t off = self->recs[i].off, len = self->recs[i].len;
		size_t cuts[] = { off, off + 4, off + 8,
				  off + sizeof(struct lvmm_rec),
				  off + sizeof(struct lvmm_rec) + 8,
				  off + sizeof(struct lvmm_rec) + len / 2,
				  off + sizeof(struct lvmm_rec) + len - 1 };

		for (size_t k = 0; k < ARRAY_SIZE(cuts); k++) {
			if (!cuts[k] || cuts[k] >= self->len)
				continue;
			snprintf(what, sizeof(what),
				 "cut at %zu: record %d (type %u) + %zu",
				 cuts[k], i, self->recs[i].type, cuts[k] - off);
			expect_restore(cuts[k], EBADMSG, what);
		}
	}
	expect_restore(self->len - 1, EBADMSG, "the last byte missing");
}

/* One bit flipped, the checksum left alone: EBADMSG, wherever it is. */
TEST_F_TIMEOUT(stream, bit_flips, 180)
{
	int mem = rec_find(self->recs, self->nr, LVMM_REC_MEMORY, 0);
	int vcpu = rec_find(self->recs, self->nr, LVMM_REC_VCPU, 1);
	int vmm = rec_find(self->recs, self->nr, LVMM_REC_VMM, 0);
	int end = self->nr - 1;
	struct {
		const char *what;
		int rec;
		size_t off;	/* into the payload; ~0: the record header */
	} flips[] = {
		{ "the header's magic", 0, 7 },
		{ "the header's creation time", 0,
		  offsetof(struct lvmm_stream_header, created_ns) },
		{ "the header's name", 0,
		  offsetof(struct lvmm_stream_header, name) + 2 },
		{ "a slot's address", 0, sizeof(struct lvmm_stream_header) +
		  offsetof(struct lvmm_stream_slot, guest_phys_addr) + 3 },
		{ "a page", mem, sizeof(struct lvmm_stream_mem) + 0x1234 },
		{ "a page's last byte", mem,
		  sizeof(struct lvmm_stream_mem) + SZ_4K - 1 },
		{ "the present bitmap", mem,
		  offsetof(struct lvmm_stream_mem, present) },
		{ "a memory record's type", mem, ~0UL },
		{ "a vCPU's RAX", vcpu, offsetof(struct lvmm_stream_vcpu, regs) },
		{ "a vCPU's XSAVE image", vcpu,
		  offsetof(struct lvmm_stream_vcpu, xsave) + 200 },
		{ "a vCPU's MSR value", vcpu,
		  sizeof(struct lvmm_stream_vcpu) + 8 },
		{ "a vCPU's CPUID entry", vcpu, (size_t)-2 },
		{ "the VMM's state", vmm, 8 + 50 },
		{ "END's checksum", end, 0 },
		{ "END's record count", end, 8 },
	};

	REQUIRE_STREAM();
	ASSERT_LE(0, mem);
	ASSERT_LE(0, vcpu);
	ASSERT_LE(0, vmm);
	for (size_t i = 0; i < ARRAY_SIZE(flips); i++) {
		int r = flips[i].rec;
		size_t off = flips[i].off;

		WORK_COPY();
		if (off == ~0UL)
			off = self->recs[r].off;
		else if (off == (size_t)-2)	/* the last CPUID entry */
			off = self->recs[r].off + sizeof(struct lvmm_rec) +
			      self->recs[r].len - 12;
		else
			off += self->recs[r].off + sizeof(struct lvmm_rec);
		for (int bit = 0; bit < 8; bit += 3) {
			self->work[off] ^= 1 << bit;
			expect_restore(self->len, EBADMSG, flips[i].what);
			self->work[off] ^= 1 << bit;
		}
	}
}

/*
 * A field set to @val (of @size bytes at @off of record @rec's payload,
 * or of its header for @off < 0), with the checksum made right again:
 * what the check of that field answers, not the checksum's.
 */
static void __expect_field(struct __test_metadata *_metadata,
			   FIXTURE_DATA(stream) *self, int rec, long off,
			   int size, u64 val, int err, const char *what)
{
	u8 *p;

	WORK_COPY();
	p = off < 0 ? self->work + self->recs[rec].off + sizeof(struct lvmm_rec) + off :
		      REC(rec) + off;
	memcpy(p, &val, size);
	/* END where it was: lengths changed do not move it. */
	stream_set_end(self->work, self->recs[self->nr - 1].off, self->nr - 1);
	__expect_restore(_metadata, self, self->len, err, what);
}

#define expect_field(rec, type, field, val, err)			\
	__expect_field(_metadata, self, rec, offsetof(type, field),	\
		       sizeof(((type *)0)->field), val, err,		\
		       #type "." #field " = " #val)
#define REC_LEN		(-(long)sizeof(u64))	/* lvmm_rec.len */
#define REC_FLAGS	(-(long)sizeof(u64) - 4)
#define REC_TYPE	(-(long)sizeof(u64) - 8)

TEST_F_TIMEOUT(stream, header_fields, 120)
{
	struct lvmm_stream_header h;
	const size_t slots = sizeof(h);

	REQUIRE_STREAM();
	memcpy(&h, self->buf + sizeof(struct lvmm_rec), sizeof(h));
	expect_field(0, struct lvmm_stream_header, magic, h.magic ^ 1, EBADMSG);
	expect_field(0, struct lvmm_stream_header, magic, 0, EBADMSG);
	expect_field(0, struct lvmm_stream_header, version,
		     LVMM_STREAM_VERSION + 1, EPROTONOSUPPORT);
	expect_field(0, struct lvmm_stream_header, version, 0xffffffff,
		     EPROTONOSUPPORT);
	expect_field(0, struct lvmm_stream_header, version, 0, EBADMSG);
	expect_field(0, struct lvmm_stream_header, flags, 1, EBADMSG);
	expect_field(0, struct lvmm_stream_header, reserved[0], 1, EBADMSG);
	expect_field(0, struct lvmm_stream_header, reserved[3], 1ULL << 63,
		     EBADMSG);
	/* XSAVE state this host cannot hold. */
	expect_field(0, struct lvmm_stream_header, xcr0, h.xcr0 | 1ULL << 62,
		     EOPNOTSUPP);
	expect_field(0, struct lvmm_stream_header, xcr0, h.xcr0 | 1ULL << 40,
		     EOPNOTSUPP);
	expect_field(0, struct lvmm_stream_header, mem_size, h.mem_size + SZ_4K,
		     EBADMSG);
	expect_field(0, struct lvmm_stream_header, mem_size, 0, EBADMSG);
	/* Counts that do not match what follows, or that no VM can have. */
	expect_field(0, struct lvmm_stream_header, nr_slots, 2, EBADMSG);
	expect_field(0, struct lvmm_stream_header, nr_slots, 4, EBADMSG);
	expect_field(0, struct lvmm_stream_header, nr_slots, NR_MEMSLOTS + 1,
		     EBADMSG);
	expect_field(0, struct lvmm_stream_header, nr_slots, 0xffffffff,
		     EBADMSG);
	expect_field(0, struct lvmm_stream_header, nr_vcpus, 1, EBADMSG);
	expect_field(0, struct lvmm_stream_header, nr_vcpus, 3, EBADMSG);
	expect_field(0, struct lvmm_stream_header, nr_vcpus, MAX_VCPUS + 1,
		     EBADMSG);
	expect_field(0, struct lvmm_stream_header, nr_vcpus, 0xffffffff,
		     EBADMSG);
	/* A name no VM can have. */
	expect_field(0, struct lvmm_stream_header, name[3], ' ', EBADMSG);
	expect_field(0, struct lvmm_stream_header, name[0], 0xc3, EBADMSG);
	WORK_COPY();
	memset(REC(0) + offsetof(struct lvmm_stream_header, name), 'a',
	       LVMM_VM_NAME_LEN);
	ASSERT_TRUE(stream_fix(self->work, self->len));
	expect_restore(self->len, EBADMSG, "a name without its NUL");
	/* The record around it. */
	__expect_field(_metadata, self, 0, REC_LEN, 8, self->recs[0].len + 8,
		       EBADMSG, "header record 8 bytes longer");
	__expect_field(_metadata, self, 0, REC_LEN, 8, 1ULL << 62, EBADMSG,
		       "header record 2^62 bytes long");
	__expect_field(_metadata, self, 0, REC_FLAGS, 4, 1, EBADMSG,
		       "header record flags 1");
	__expect_field(_metadata, self, 0, REC_TYPE, 4, LVMM_REC_MEMORY,
		       EBADMSG, "the header as a memory record");

	/* Slots: overlapping, twice the same, or no slot lvmm would make. */
#define SLOT(i, field)	(slots + (i) * sizeof(struct lvmm_stream_slot) + \
			 offsetof(struct lvmm_stream_slot, field))
	__expect_field(_metadata, self, 0, SLOT(1, guest_phys_addr), 8,
		       0x100000, EBADMSG, "slot 1 inside slot 0");
	__expect_field(_metadata, self, 0, SLOT(1, guest_phys_addr), 8,
		       SZ_2M - SZ_4K, EBADMSG, "slot 1 overlapping slot 0's end");
	__expect_field(_metadata, self, 0, SLOT(2, guest_phys_addr), 8,
		       TINY_SLOT1_GPA + TINY_SLOT1_SIZE - SZ_4K, EBADMSG,
		       "the ROM in slot 1's last page");
	__expect_field(_metadata, self, 0, SLOT(1, slot), 4, 0, EBADMSG,
		       "slot 1 numbered 0");
	__expect_field(_metadata, self, 0, SLOT(1, slot), 4, NR_MEMSLOTS,
		       EBADMSG, "slot 1 numbered 32");
	__expect_field(_metadata, self, 0, SLOT(1, guest_phys_addr), 8,
		       TINY_SLOT1_GPA + 1, EBADMSG, "slot 1 not page-aligned");
	__expect_field(_metadata, self, 0, SLOT(1, guest_phys_addr), 8,
		       ~0ULL << 12, EBADMSG, "slot 1 past the address space");
	__expect_field(_metadata, self, 0, SLOT(1, flags), 4,
		       LVMM_MEMSLOT_LOG_DIRTY, EBADMSG, "slot 1 logging writes");
	__expect_field(_metadata, self, 0, SLOT(1, flags), 4, 1U << 7,
		       EBADMSG, "slot 1 with an unknown flag");
	/*
	 * A size the header's mem_size does not add up to is refused
	 * whatever the size; sizes with mem_size fixed too are below.
	 */
	__expect_field(_metadata, self, 0, SLOT(2, size), 8, 0, EBADMSG,
		       "the ROM 0 bytes long");
#undef SLOT
}

/* Slot sizes, with the header's mem_size kept in step. */
TEST_F_TIMEOUT(stream, slot_sizes, 60)
{
	static const u64 sizes[] = { 0, 100, SZ_4K + 1, 1ULL << 50, ~0ULL << 12 };
	const size_t sz = sizeof(struct lvmm_stream_header) +
			  2 * sizeof(struct lvmm_stream_slot) +
			  offsetof(struct lvmm_stream_slot, size);
	struct lvmm_stream_header h;
	char what[64];

	REQUIRE_STREAM();
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		WORK_COPY();
		memcpy(&h, REC(0), sizeof(h));
		h.mem_size += sizes[i] - SZ_4K;
		memcpy(REC(0), &h, sizeof(h));
		memcpy(REC(0) + sz, &sizes[i], 8);
		ASSERT_TRUE(stream_fix(self->work, self->len));
		snprintf(what, sizeof(what), "the ROM 0x%llx bytes long",
			 (unsigned long long)sizes[i]);
		expect_restore(self->len, EBADMSG, what);
	}
}

TEST_F_TIMEOUT(stream, memory_records, 120)
{
	int m0 = rec_find(self->recs, self->nr, LVMM_REC_MEMORY, 0);
	int m2 = rec_find(self->recs, self->nr, LVMM_REC_MEMORY, 2);
	struct lvmm_stream_mem m;

	REQUIRE_STREAM();
	ASSERT_LE(0, m0);
	ASSERT_LE(0, m2);
	memcpy(&m, self->buf + self->recs[m2].off + sizeof(struct lvmm_rec),
	       sizeof(m));
	/* The writer's order: slot 1's second, partial chunk. */
	ASSERT_EQ(1, m.slot);
	ASSERT_EQ(512, m.first_page);
	ASSERT_EQ(2, m.npages);

	expect_field(m0, struct lvmm_stream_mem, slot, 5, EBADMSG);
	expect_field(m0, struct lvmm_stream_mem, slot, NR_MEMSLOTS, EBADMSG);
	expect_field(m0, struct lvmm_stream_mem, slot, 0xffffffff, EBADMSG);
	expect_field(m0, struct lvmm_stream_mem, npages, 0, EBADMSG);
	expect_field(m0, struct lvmm_stream_mem, npages, 513, EBADMSG);
	expect_field(m0, struct lvmm_stream_mem, npages, 0xffffffff, EBADMSG);
	expect_field(m0, struct lvmm_stream_mem, first_page, 1, EBADMSG);
	expect_field(m0, struct lvmm_stream_mem, first_page, 512, EBADMSG);
	expect_field(m0, struct lvmm_stream_mem, first_page, 1ULL << 63,
		     EBADMSG);
	expect_field(m2, struct lvmm_stream_mem, npages, 3, EBADMSG);
	expect_field(m2, struct lvmm_stream_mem, first_page, 1024, EBADMSG);
	/* A present bit past npages, the count of pages unchanged. */
	expect_field(m2, struct lvmm_stream_mem, present[0],
		     m.present[0] ^ 3ULL << 1, EBADMSG);
	expect_field(m2, struct lvmm_stream_mem, present[7], 1ULL << 63,
		     EBADMSG);
	/* The length against the pages present. */
	__expect_field(_metadata, self, m0, REC_LEN, 8,
		       self->recs[m0].len - SZ_4K, EBADMSG,
		       "a memory record one page short");
	__expect_field(_metadata, self, m0, REC_LEN, 8,
		       self->recs[m0].len + SZ_4K, EBADMSG,
		       "a memory record one page long");
	__expect_field(_metadata, self, m0, REC_LEN, 8, 8, EBADMSG,
		       "a memory record 8 bytes long");
	__expect_field(_metadata, self, m0, REC_LEN, 8, 1ULL << 63, EBADMSG,
		       "a memory record 2^63 bytes long");
	__expect_field(_metadata, self, m0, REC_LEN, 8, ~0ULL - 7, EBADMSG,
		       "a memory record 2^64 - 8 bytes long");
	__expect_field(_metadata, self, m0, REC_LEN, 8,
		       self->recs[m0].len + 4, EBADMSG,
		       "a memory record not a multiple of 8 long");
	__expect_field(_metadata, self, m0, REC_FLAGS, 4, 1, EBADMSG,
		       "a memory record with flags");
}

TEST_F_TIMEOUT(stream, vcpu_records, 120)
{
	int v0 = rec_find(self->recs, self->nr, LVMM_REC_VCPU, 0);
	int v1 = rec_find(self->recs, self->nr, LVMM_REC_VCPU, 1);
	const long msr0 = sizeof(struct lvmm_stream_vcpu);
	struct lvmm_stream_vcpu v;

	REQUIRE_STREAM();
	ASSERT_LE(0, v0);
	ASSERT_LE(0, v1);
	memcpy(&v, self->buf + self->recs[v0].off + sizeof(struct lvmm_rec),
	       sizeof(v));
	expect_field(v1, struct lvmm_stream_vcpu, id, 0, EBADMSG);
	expect_field(v1, struct lvmm_stream_vcpu, id, MAX_VCPUS, EBADMSG);
	expect_field(v1, struct lvmm_stream_vcpu, id, 0xffffffff, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, nmsrs, v.nmsrs + 1, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, nmsrs, LVMM_MAX_MSR_ENTRIES + 1,
		     EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, nmsrs, 0xffffffff, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, ncpuid, v.ncpuid - 1, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, ncpuid,
		     LVMM_MAX_CPUID_ENTRIES + 1, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, ncpuid, 0x80000000, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, pad, 1, EBADMSG);
	/* exit_pending is output only: ignored, as by SET_VCPU_EVENTS. */
	expect_field(v0, struct lvmm_stream_vcpu, events.exit_pending, 1, 0);
	/* A CPUID table that shows the guest features no processor has. */
	{
		struct lvmm_cpuid_entry *e;
		u32 i;

		WORK_COPY();
		e = (void *)(REC(v0) + msr0 +
			     v.nmsrs * sizeof(struct lvmm_msr_entry));
		for (i = 0; i < v.ncpuid; i++)
			if (e[i].function == 7 && e[i].index == 0)
				break;
		ASSERT_LT(i, v.ncpuid) TH_LOG("no CPUID leaf 7 in the record");
		e[i].ebx = ~0U;
		stream_set_end(self->work, self->recs[self->nr - 1].off,
			       self->nr - 1);
		expect_restore(self->len, EOPNOTSUPP,
			       "CPUID leaf 7 EBX all ones");
	}
	/* State no vCPU can be loaded with. */
	expect_field(v0, struct lvmm_stream_vcpu, events.flags, 1, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, events.irq_pending, 2,
		     EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, events.injected, 9, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, regs.flags, 1, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, sregs.flags, 1, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, sregs.cr0,
		     X86_CR0_PG | X86_CR0_ET, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, sregs.efer, 1ULL << 20,
		     EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, debugregs.dr7, 1ULL << 40,
		     EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, debugregs.reserved[0], 1,
		     EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, xcrs.xcr0, 0, EBADMSG);
	expect_field(v0, struct lvmm_stream_vcpu, xcrs.flags, 1, EBADMSG);
	/* MSRs: one not in the list, a refused value, a reserved word. */
	__expect_field(_metadata, self, v0, msr0, 4, 0x12345, EBADMSG,
		       "an MSR outside the list");
	__expect_field(_metadata, self, v0, msr0 + 4, 4, 1, EBADMSG,
		       "an MSR entry's reserved word");
	for (u32 i = 0; i < v.nmsrs; i++) {
		struct lvmm_msr_entry e;

		memcpy(&e, self->buf + self->recs[v0].off +
		       sizeof(struct lvmm_rec) + msr0 + i * sizeof(e),
		       sizeof(e));
		if (e.index != MSR_IA32_APICBASE)
			continue;
		__expect_field(_metadata, self, v0, msr0 + i * sizeof(e) + 8,
			       8, e.data | 1ULL << 10, EBADMSG,
			       "IA32_APIC_BASE in x2APIC mode");
	}
	__expect_field(_metadata, self, v0, REC_LEN, 8, 1ULL << 62, EBADMSG,
		       "a vCPU record 2^62 bytes long");
	__expect_field(_metadata, self, v0, REC_LEN, 8, 64, EBADMSG,
		       "a vCPU record 64 bytes long");
	__expect_field(_metadata, self, v0, REC_LEN, 8,
		       self->recs[v0].len - 16, EBADMSG,
		       "a vCPU record an MSR short");
}

TEST_F_TIMEOUT(stream, vmm_and_end_records, 60)
{
	int vmm = rec_find(self->recs, self->nr, LVMM_REC_VMM, 0);
	int end = self->nr - 1;

	REQUIRE_STREAM();
	ASSERT_LE(0, vmm);
	__expect_field(_metadata, self, vmm, 0, 8, 0, EBADMSG,
		       "a VMM record of 0 bytes of state");
	__expect_field(_metadata, self, vmm, 0, 8, TINY_BLOB + 100, EBADMSG,
		       "VMM state longer than its record");
	__expect_field(_metadata, self, vmm, 0, 8, TINY_BLOB - 8, EBADMSG,
		       "VMM state shorter than its record");
	__expect_field(_metadata, self, vmm, 0, 8, LVMM_MAX_VMM_STATE + 1,
		       EBADMSG, "VMM state above 64 KiB");
	__expect_field(_metadata, self, vmm, 0, 8, ~0ULL, EBADMSG,
		       "VMM state 2^64 - 1 bytes long");
	__expect_field(_metadata, self, vmm, REC_LEN, 8, 1ULL << 40, EBADMSG,
		       "a VMM record 2^40 bytes long");
	/* END: its own length and record count. */
	WORK_COPY();
	memcpy(REC(end) + 8, &(u64){ self->nr }, 8);
	memcpy(REC(end), &(u64){ lvmm_xxh64(self->work, self->recs[end].off,
					    0) }, 8);
	expect_restore(self->len, EBADMSG, "END counting one record more");
	WORK_COPY();
	REC_HDR(end)->len = 24;
	memcpy(REC(end), &(u64){ lvmm_xxh64(self->work, self->recs[end].off,
					    0) }, 8);
	memset(self->work + self->len, 0, 8);
	expect_restore(self->len + 8, EBADMSG, "END 24 bytes long");
	WORK_COPY();
	REC_HDR(end)->flags = 1;
	expect_restore(self->len, EBADMSG, "END with flags");
}

/*
 * The valid stream in self->work with record @drop left out and record
 * @dup copied in after record @after (-1: first of all), END made to
 * agree: its length.
 */
static size_t rearranged(FIXTURE_DATA(stream) *self, int dup, int after,
			 int drop)
{
	size_t len = 0;

	for (int i = -1; i < self->nr; i++) {
		const struct rec_ref *r = &self->recs[i < 0 ? 0 : i];
		const struct rec_ref *d = &self->recs[dup < 0 ? 0 : dup];

		if (i >= 0 && i != drop) {
			memcpy(self->work + len, self->buf + r->off,
			       sizeof(struct lvmm_rec) + r->len);
			len += sizeof(struct lvmm_rec) + r->len;
		}
		if (dup >= 0 && i == after) {
			memcpy(self->work + len, self->buf + d->off,
			       sizeof(struct lvmm_rec) + d->len);
			len += sizeof(struct lvmm_rec) + d->len;
		}
	}
	TEST_ASSERT(stream_fix(self->work, len), "no END");
	return len;
}

/* Records of the wrong type, or in the wrong place, or twice. */
TEST_F_TIMEOUT(stream, record_order, 120)
{
	static const u32 bad_types[] = { 0, LVMM_REC_END + 1, 0x100, 0xffffffff };
	int m0 = rec_find(self->recs, self->nr, LVMM_REC_MEMORY, 0);
	int v0 = rec_find(self->recs, self->nr, LVMM_REC_VCPU, 0);
	int vmm = rec_find(self->recs, self->nr, LVMM_REC_VMM, 0);
	char what[64];

	REQUIRE_STREAM();
	ASSERT_LE(0, m0);
	ASSERT_LE(0, v0);
	ASSERT_LE(0, vmm);
	for (size_t i = 0; i < ARRAY_SIZE(bad_types); i++) {
		snprintf(what, sizeof(what), "a record of type %u", bad_types[i]);
		__expect_field(_metadata, self, m0, REC_TYPE, 4, bad_types[i],
			       EBADMSG, what);
		__expect_field(_metadata, self, vmm, REC_TYPE, 4, bad_types[i],
			       EBADMSG, what);
	}
	__expect_field(_metadata, self, v0, REC_TYPE, 4, LVMM_REC_HEADER,
		       EBADMSG, "a vCPU record typed as a header");

	expect_restore(rearranged(self, 0, 0, -1), EBADMSG, "a second header");
	expect_restore(rearranged(self, 0, vmm, -1), EBADMSG,
		       "a second header, at the end");
	expect_restore(rearranged(self, m0, -1, m0), EBADMSG, "memory first");
	expect_restore(rearranged(self, m0, v0 + 1, m0), EBADMSG,
		       "memory after the vCPUs");
	expect_restore(rearranged(self, m0, vmm, m0), EBADMSG,
		       "memory after the VMM's state");
	expect_restore(rearranged(self, v0, vmm, v0), EBADMSG,
		       "a vCPU after the VMM's state");
	expect_restore(rearranged(self, v0, v0, -1), EBADMSG, "vCPU 0 twice");
	expect_restore(rearranged(self, -1, -1, v0 + 1), EBADMSG,
		       "vCPU 1 missing");
	expect_restore(rearranged(self, vmm, vmm, -1), EBADMSG,
		       "a second VMM record");
	expect_restore(rearranged(self, vmm, v0 - 1, vmm), EBADMSG,
		       "the VMM record before the vCPUs");
	/* The same memory twice is a stream too: the last copy wins. */
	expect_restore(rearranged(self, m0, m0, -1), 0, "a memory record twice");
	expect_restore(rearranged(self, -1, -1, vmm), 0, "no VMM record");
}

/*
 * A chunk sent again, as a migration's later round does: the last copy
 * wins, and the pages it leaves out are zero.
 */
TEST_F_TIMEOUT(stream, chunk_sent_twice, 60)
{
	int m1 = rec_find(self->recs, self->nr, LVMM_REC_MEMORY, 1);
	const struct rec_ref *r;
	struct lvmm_restore_vm req;
	struct lvmm_stream_mem m;
	size_t at, len = 0, n;
	int vmfd, diffs = 0;
	u8 *mem;

	REQUIRE_STREAM();
	ASSERT_LE(0, m1);
	r = &self->recs[m1];
	memcpy(&m, self->buf + r->off + sizeof(struct lvmm_rec), sizeof(m));
	/* Slot 1's first chunk: pages 0 and 300. */
	ASSERT_EQ(1, m.slot);
	ASSERT_EQ(0, m.first_page);
	ASSERT_EQ(1ULL, m.present[0]);
	ASSERT_EQ(1ULL << (300 % 64), m.present[300 / 64]);

	/* Everything up to and including it, then it again with page 0 only. */
	n = r->off + sizeof(struct lvmm_rec) + r->len;
	memcpy(self->work, self->buf, n);
	len = n;
	at = len;
	m.present[300 / 64] = 0;
	memcpy(self->work + len, &(struct lvmm_rec){ .type = LVMM_REC_MEMORY,
		.len = sizeof(m) + SZ_4K }, sizeof(struct lvmm_rec));
	len += sizeof(struct lvmm_rec);
	memcpy(self->work + len, &m, sizeof(m));
	len += sizeof(m);
	memset(self->work + len, 0x99, SZ_4K);		/* a new page 0 */
	len += SZ_4K;
	memcpy(self->work + len, self->buf + n, self->len - n);
	len += self->len - n;
	ASSERT_TRUE(stream_fix(self->work, len));
	ASSERT_LT(at, len);

	vmfd = restore_buf(self->mfd, self->work, len, NULL, &req);
	ASSERT_LE(0, vmfd) TH_LOG("%s", strerror(-vmfd));
	mem = mmap(NULL, TINY_SLOT1_SIZE, PROT_READ, MAP_SHARED, vmfd,
		   LVMM_MEMSLOT_MMAP_OFFSET(1));
	ASSERT_NE(MAP_FAILED, mem);
	for (u64 i = 0; i < SZ_4K; i++)
		diffs += mem[i] != 0x99;
	EXPECT_EQ(0, diffs) TH_LOG("page 0 is not the last copy's");
	EXPECT_EQ(0, mem[300 * SZ_4K]) TH_LOG("page 300, left out, is not zero");
	/* The next chunk is its own: untouched. */
	EXPECT_EQ(0x55, mem[513 * SZ_4K]);
	munmap(mem, TINY_SLOT1_SIZE);
	close(vmfd);
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
}

/*
 * Refusals late in the stream build a whole VM first: none of its
 * memory may stay.  Checked with the host's available memory, with room
 * for what else moves meanwhile.
 */
TEST_F_TIMEOUT(stream, refused_frees_memory, 300)
{
	int end = self->nr - 1, v1 = rec_find(self->recs, self->nr,
					      LVMM_REC_VCPU, 1);
	long before, after;

	REQUIRE_STREAM();
	ASSERT_LE(0, v1);
	WORK_COPY();
	expect_restore(self->len, 0, "warm-up");
	before = mem_available_kb();
	TEST_REQUIRE(before > 0);
	for (int i = 0; i < 100; i++) {
		WORK_COPY();
		if (i & 1) {
			REC(end)[3] ^= 0x10;	/* the checksum */
			expect_restore(self->len, EBADMSG, "checksum");
		} else {
			expect_restore(self->recs[v1].off + 100, EBADMSG,
				       "cut in vCPU 1");
		}
		if (!_metadata->passed)
			break;
	}
	after = mem_available_kb();
	TH_LOG("MemAvailable: %ld kB before, %ld kB after 100 refused streams",
	       before, after);
	/* Each of them had at least a 2 MiB page and two vCPUs. */
	EXPECT_GT(after + 96 * 1024, before);
}

/* ---- a mutation fuzzer ----------------------------------------------- */

#define FUZZ_SECONDS	15
#define FUZZ_MAX_ITERS	100000

/*
 * Restore mutated copies of the valid stream for a bounded time: each is
 * refused with a documented errno, or accepted and then usable.  The
 * seed (SNAPSHOT_FUZZ_SEED, default 1) and the time
 * (SNAPSHOT_FUZZ_SECONDS) make a run replayable.
 */
TEST_F_TIMEOUT(stream, fuzz, 240)
{
	static const int allowed[] = { EBADMSG, EPROTONOSUPPORT, EOPNOTSUPP,
				       EEXIST, ENOMEM };
	u64 seed = env_u64("SNAPSHOT_FUZZ_SEED", 1);
	u64 secs = env_u64("SNAPSHOT_FUZZ_SECONDS", FUZZ_SECONDS);
	struct stream_fuzz fz = { .s = seed ? seed : 1, .allowed = allowed,
				  .nr_allowed = ARRAY_SIZE(allowed) };
	long mem_before, mem_after;
	u64 end;

	REQUIRE_STREAM();
	TH_LOG("seed %llu, %llu s (SNAPSHOT_FUZZ_SEED, SNAPSHOT_FUZZ_SECONDS)",
	       (unsigned long long)seed, (unsigned long long)secs);
	mem_before = mem_available_kb();
	end = now_ns() + secs * 1000000000ULL;
	while (now_ns() < end && fz.iters < FUZZ_MAX_ITERS) {
		struct lvmm_restore_vm req;
		size_t len;
		int r;

		memcpy(self->work, self->buf, self->len);
		len = stream_fuzz_next(&fz, self->work, self->len, self->cap);
		r = restore_buf(self->mfd, self->work, len, NULL, &req);
		if (r >= 0) {
			struct lvmm_vm_info info;
			u32 found = 0;

			fz.accepted++;
			ASSERT_EQ(0, ioctl(r, LVMM_GET_VM_INFO, &info))
				TH_LOG("iteration %llu: %s",
				       (unsigned long long)fz.iters, fz.what);
			EXPECT_EQ(req.id, info.id);
			EXPECT_EQ(req.nr_vcpus, info.nr_vcpus);
			for (u32 id = 0; id < MAX_VCPUS && found < req.nr_vcpus; id++) {
				struct lvmm_create_vcpu cv = { .id = id };
				int vfd = ioctl(r, LVMM_GET_VCPU, &cv), rr;

				if (vfd < 0)
					continue;
				if (!found++) {
					rr = run_bounded(vfd, self->mmap_size);
					EXPECT_TRUE(!rr || rr == -EINTR)
						TH_LOG("iteration %llu (%s): LVMM_RUN: %s",
						       (unsigned long long)fz.iters,
						       fz.what, strerror(-rr));
				}
				close(vfd);
			}
			EXPECT_EQ(req.nr_vcpus, found);
			close(r);
		} else {
			ASSERT_TRUE(stream_fuzz_refused(&fz, -r))
				TH_LOG("iteration %llu (%s%s): %s",
				       (unsigned long long)fz.iters, fz.what,
				       fz.fix ? ", fixed up" : "", strerror(-r));
		}
		if (!(fz.iters % 64)) {
			ASSERT_EQ(self->nr_vms, nl_vm_count(self->c))
				TH_LOG("VMs left behind by iteration %llu",
				       (unsigned long long)fz.iters);
		}
		if (!_metadata->passed)
			break;
	}
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
	mem_after = mem_available_kb();
	STREAM_FUZZ_LOG(&fz);
	TH_LOG("MemAvailable: %ld kB before, %ld kB after", mem_before, mem_after);
	EXPECT_LT(0, fz.iters);
	EXPECT_GT(mem_after + 128 * 1024, mem_before);
}

/* ---- saves that meet a destroy, another save, a bad fd, a reader ----- */

/* A counting guest in a thread: the VM. */
static struct lvmm_vm *counting(struct counter_thread *t)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm = vm_create_with_one_vcpu(&vcpu, guest_counter);

	counter_start(t, vcpu);
	TEST_ASSERT(wait_for(t->nr_sync >= 2, 20000), "the guest does not count");
	return vm;
}

/* Reads a fd to EOF in a thread of its own, pausing after each read. */
struct drain {
	int fd;
	u64 delay_us;
	pthread_t thread;
	u8 *buf;
	size_t len;
};

static void *drain_fn(void *arg)
{
	struct drain *d = arg;
	size_t cap = 1 << 20;
	ssize_t n;

	d->buf = malloc(cap);
	TEST_ASSERT(d->buf, "out of memory");
	do {
		if (d->len == cap) {
			cap *= 2;
			d->buf = realloc(d->buf, cap);
			TEST_ASSERT(d->buf, "out of memory");
		}
		n = read(d->fd, d->buf + d->len, cap - d->len);
		TEST_ASSERT(n >= 0, "read: %s", strerror(errno));
		d->len += n;
		if (d->delay_us)
			usleep(d->delay_us);
	} while (n);
	return NULL;
}

static void drain_start(struct drain *d, int fd, u64 delay_us)
{
	memset(d, 0, sizeof(*d));
	d->fd = fd;
	d->delay_us = delay_us;
	TEST_ASSERT(!pthread_create(&d->thread, NULL, drain_fn, d),
		    "pthread_create");
}

/* Writes a buffer to a fd in a thread of its own, then closes the fd. */
struct feed {
	int fd;
	pthread_t thread;
	const u8 *buf;
	size_t len;
};

static void *feed_fn(void *arg)
{
	struct feed *f = arg;
	const u8 *p = f->buf;
	size_t left = f->len;

	while (left) {
		ssize_t n = write(f->fd, p, left);

		if (n <= 0)
			break;	/* the reader went away: its test says so */
		p += n;
		left -= n;
	}
	close(f->fd);
	return NULL;
}

static void feed_start(struct feed *f, int fd, const u8 *buf, size_t len)
{
	f->fd = fd;
	f->buf = buf;
	f->len = len;
	TEST_ASSERT(!pthread_create(&f->thread, NULL, feed_fn, f),
		    "pthread_create");
}

/* A save that a pipe nobody reads holds up, destroyed meanwhile. */
TEST_F_TIMEOUT(snap, destroy_during_save, 120)
{
	struct counter_thread t;
	struct lvmm_restore_vm req;
	struct nl_events *ev;
	struct lvmm_vm *vm;
	struct nl_saved s;
	struct nl_vm v;
	u64 frozen;
	size_t len;
	int p[2], fd;
	u8 *buf;

	REQUIRE_SNAPSHOT(self->c);
	signal(SIGPIPE, SIG_IGN);
	vm = counting(&t);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ev = events_open();
	ASSERT_EQ(0, nl_vm_save(self->c, vm->h.id, p[1], false)) TH_LOG("%s", self->c->ext);
	close(p[1]);

	/*
	 * Held up: paused, and, once the stream has begun (the vCPUs are
	 * taken first), the guest does not count meanwhile.
	 */
	ASSERT_EQ(1, poll(&(struct pollfd){ .fd = p[0], .events = POLLIN }, 1,
			  10000)) TH_LOG("nothing written");
	EXPECT_EQ(LVMM_VM_STATE_PAUSED, vm_state(self->c, vm->h.id))
		TH_LOG("not paused while it is written");
	frozen = counter_in(vm, 0);
	usleep(100000);
	EXPECT_EQ(frozen, counter_in(vm, 0));
	EXPECT_FALSE(t.done);

	ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_DESTROY, vm->h.id));
	ASSERT_TRUE(event_saved(ev, vm->h.id, &s)) TH_LOG("no saved event after the destroy");
	EXPECT_EQ(EINTR, s.error) TH_LOG("the save ended with %s after %llu bytes",
					 strerror(s.error), (unsigned long long)s.bytes);
	counter_join(&t, END_DESTROYED);
	EXPECT_EQ(-ENOENT, nl_vm_get(self->c, vm->h.id, NULL, &v));
	/* Saving what is destroyed. */
	fd = new_memfd();
	EXPECT_EQ(-ENOENT, nl_vm_save(self->c, vm->h.id, fd, false));
	EXPECT_NE(0, self->c->ext[0]);

	/* What went through the pipe is a stream cut short. */
	buf = read_all(p[0], &len);
	EXPECT_LT(0, len);
	EXPECT_GE(s.bytes, len);
	EXPECT_EQ(-EBADMSG, restore_buf(fd, buf, len, NULL, &req));
	free(buf);
	close(fd);
	close(p[0]);
	events_close(ev);
	vm_free(vm);
}

struct destroyer {
	struct nlc *c;
	u32 id;
	u64 delay_us;
	volatile bool go;
	int r;
};

static void *destroyer_fn(void *arg)
{
	struct destroyer *d = arg;

	while (!d->go)
		;
	if (d->delay_us)
		usleep(d->delay_us);
	d->r = nl_vm_cmd(d->c, LVMM_CMD_VM_DESTROY, d->id);
	return NULL;
}

/* vm-save and vm-destroy at once, from two threads: no hang, an answer. */
TEST_F_TIMEOUT(snap, save_destroy_race, 180)
{
	/* From at once to after the save is done (tens of ms). */
	static const u64 delay_us[] = { 0, 0, 300, 300, 3000, 3000, 200000,
					200000 };
	int outcome[3] = {};	/* saved, save failed, save refused */

	REQUIRE_SNAPSHOT(self->c);
	for (size_t i = 0; i < ARRAY_SIZE(delay_us); i++) {
		struct destroyer d = { .delay_us = delay_us[i] };
		struct lvmm_restore_vm req;
		struct counter_thread t;
		struct nl_events *ev;
		struct lvmm_vm *vm;
		struct nl_saved s;
		pthread_t thread;
		int fd = new_memfd(), r;

		vm = counting(&t);
		d.c = nlc_open();
		d.id = vm->h.id;
		ASSERT_NE(NULL, d.c);
		ASSERT_EQ(0, pthread_create(&thread, NULL, destroyer_fn, &d));
		ev = events_open();
		d.go = true;
		r = nl_vm_save(self->c, vm->h.id, fd, i & 1);
		pthread_join(thread, NULL);
		if (r) {
			EXPECT_EQ(-ENOENT, r) TH_LOG("vm-save: %s", self->c->ext);
			EXPECT_EQ(0, d.r);
			outcome[2]++;
		} else {
			ASSERT_TRUE(event_saved(ev, vm->h.id, &s))
				TH_LOG("round %zu: no saved event", i);
			/* With save-stop, one of the two destroys comes second. */
			EXPECT_TRUE(!d.r || ((i & 1) && d.r == -ENOENT))
				TH_LOG("destroy: %s", strerror(-d.r));
			ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
			r = restore_fd(fd, NULL, &req);
			if (!s.error) {
				/* Written whole: it restores. */
				EXPECT_LE(0, r) TH_LOG("round %zu: %s", i, strerror(-r));
				outcome[0]++;
			} else {
				EXPECT_EQ(-EBADMSG, r) TH_LOG("round %zu, save error %s",
							      i, strerror(s.error));
				outcome[1]++;
			}
			if (r >= 0)
				close(r);
		}
		counter_join(&t, END_DESTROYED);
		events_close(ev);
		nlc_close(d.c);
		close(fd);
		vm_free(vm);
	}
	TH_LOG("saved %d, save failed %d, save refused %d", outcome[0],
	       outcome[1], outcome[2]);
}

/* One save at a time; the second is refused and changes nothing. */
TEST_F_TIMEOUT(snap, second_save_busy, 120)
{
	struct counter_thread t;
	struct nl_events *ev;
	struct lvmm_vm *vm, *rvm;
	struct drain dr;
	struct nl_saved s;
	u64 before, c0;
	int p[2], fd, fd2;

	REQUIRE_SNAPSHOT(self->c);
	vm = counting(&t);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	fd = new_memfd();
	ev = events_open();
	before = counter_in(vm, 0);
	ASSERT_EQ(0, nl_vm_save(self->c, vm->h.id, p[1], false));
	close(p[1]);
	ASSERT_TRUE(wait_for(vm_state(self->c, vm->h.id) == LVMM_VM_STATE_PAUSED,
			     5000));
	EXPECT_EQ(-EBUSY, nl_vm_save(self->c, vm->h.id, fd, false));
	EXPECT_NE(0, self->c->ext[0]) TH_LOG("EBUSY without an extack message");
	EXPECT_EQ(-EBUSY, nl_vm_save(self->c, vm->h.id, fd, true));

	/* Read: the first save ends well; the second left no trace. */
	drain_start(&dr, p[0], 0);
	ASSERT_TRUE(event_saved(ev, vm->h.id, &s));
	EXPECT_EQ(0, s.error) TH_LOG("%s", strerror(s.error));
	pthread_join(dr.thread, NULL);
	EXPECT_EQ(s.bytes, dr.len);
	EXPECT_EQ(0, lseek(fd, 0, SEEK_END)) TH_LOG("the refused save wrote");
	ASSERT_TRUE(wait_for(counter_in(vm, 0) > before + 4 * COUNT_N, 20000))
		TH_LOG("the VM does not run after the save (a save-stop that was refused?)");

	/* The stream from the pipe restores, and counts on. */
	write_all(fd, dr.buf, dr.len);
	ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
	rvm = vm_restore(fd, "snap-busy", vm);
	c0 = counter_in(rvm, 0);
	EXPECT_LE(before, c0);
	copy_counts_on(_metadata, rvm, c0, 1);

	/* Not busy any more. */
	fd2 = new_memfd();
	save_vm(self->c, vm, fd2, false);
	stop_counting(vm);
	counter_join(&t, END_DONE);
	close(fd2);
	close(fd);
	close(p[0]);
	free(dr.buf);
	events_close(ev);
	vm_free(rvm);
	vm_free(vm);
}

/* vm-save's own arguments; where in the file it writes. */
TEST_F_TIMEOUT(snap, save_request, 120)
{
	static const char junk[100] = "not a stream";
	struct lvmm_vm *vm, *rvm;
	struct nl_msg *msg;
	struct nl_saved s;
	struct stat st;
	int fd, ro, p[2];
	char path[64];

	REQUIRE_SNAPSHOT(self->c);
	vm = vm_create_bare("snap-args");
	vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	memset(addr_gpa2hva(vm, 0x5000), 0x66, SZ_4K);
	fd = new_memfd();

	/* No fd. */
	msg = nlc_msg(self->c, LVMM_CMD_VM_SAVE, 0);
	nla_put_u32(msg, LVMM_A_VM_ID, vm->h.id);
	EXPECT_EQ(-EINVAL, nlc_exec(self->c, msg, NULL, NULL));
	EXPECT_NE(0, self->c->ext[0]) TH_LOG("EINVAL without an extack message");
	/* Not an fd of ours, or not one to write to. */
	EXPECT_EQ(-EBADF, nl_vm_save(self->c, vm->h.id, 1000000, false));
	EXPECT_NE(0, self->c->ext[0]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	EXPECT_EQ(-EBADF, nl_vm_save(self->c, vm->h.id, ro, false));
	EXPECT_NE(0, self->c->ext[0]);
	close(ro);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	EXPECT_EQ(-EBADF, nl_vm_save(self->c, vm->h.id, p[0], false));
	close(p[0]);
	close(p[1]);
	/* No such VM, by id and by name. */
	EXPECT_EQ(-ENOENT, nl_vm_save(self->c, 0x7ffffff0, fd, false));
	msg = nlc_msg(self->c, LVMM_CMD_VM_SAVE, 0);
	nla_put_string(msg, LVMM_A_VM_NAME, "snap-no-such-vm");
	nla_put_u32(msg, LVMM_A_VM_SAVE_FD, fd);
	EXPECT_EQ(-ENOENT, nlc_exec(self->c, msg, NULL, NULL));
	/* None of them wrote anything, or stopped the VM. */
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(0, st.st_size);
	EXPECT_EQ(LVMM_VM_STATE_CREATED, vm_state(self->c, vm->h.id));

	/* At the file's position, which ends up after the stream. */
	write_all(fd, junk, sizeof(junk));
	s = save_vm(self->c, vm, fd, false);
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(sizeof(junk) + s.bytes, (u64)st.st_size);
	EXPECT_EQ((off_t)(sizeof(junk) + s.bytes), lseek(fd, 0, SEEK_CUR));
	{
		struct lvmm_restore_vm req;

		ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
		EXPECT_EQ(-EBADMSG, restore_fd(fd, "snap-args-r", &req));
	}
	ASSERT_EQ(sizeof(junk), lseek(fd, sizeof(junk), SEEK_SET));
	rvm = vm_restore(fd, "snap-args-r", vm);
	/* A restore reads the stream and no more: the position is at its end. */
	EXPECT_EQ((off_t)(sizeof(junk) + s.bytes), lseek(fd, 0, SEEK_CUR));
	EXPECT_EQ(0x6666666666666666ULL, *(u64 *)addr_gpa2hva(rvm, 0x5000));

	/*
	 * By name, to another file: the same stream but for its creation
	 * time and so its checksum (nothing ran in between).
	 */
	ro = new_memfd();
	{
		struct nl_events *ev = events_open();
		size_t off = sizeof(struct lvmm_rec) +
			     offsetof(struct lvmm_stream_header, created_ns);
		struct nl_saved s2;
		size_t l1, l2;
		u8 *b1, *b2;

		msg = nlc_msg(self->c, LVMM_CMD_VM_SAVE, 0);
		nla_put_string(msg, LVMM_A_VM_NAME, "snap-args");
		nla_put_u32(msg, LVMM_A_VM_SAVE_FD, ro);
		ASSERT_EQ(0, nlc_exec(self->c, msg, NULL, NULL)) TH_LOG("%s", self->c->ext);
		ASSERT_TRUE(event_saved(ev, vm->h.id, &s2));
		EXPECT_EQ(0, s2.error);
		EXPECT_EQ(s.bytes, s2.bytes);
		events_close(ev);
		ASSERT_EQ(sizeof(junk), lseek(fd, sizeof(junk), SEEK_SET));
		b1 = read_all(fd, &l1);
		ASSERT_EQ(0, lseek(ro, 0, SEEK_SET));
		b2 = read_all(ro, &l2);
		ASSERT_EQ(l1, l2);
		ASSERT_LT(off + 8 + 16, l1);
		memset(b1 + off, 0, 8);
		memset(b2 + off, 0, 8);
		memset(b1 + l1 - 16, 0, 8);
		memset(b2 + l2 - 16, 0, 8);
		EXPECT_EQ(0, memcmp(b1, b2, l1));
		free(b1);
		free(b2);
	}
	close(ro);
	close(fd);
	vm_free(rvm);
	vm_free(vm);
}

/*
 * Through a pipe read slowly: saved into one (with progress reported on
 * the way), restored out of another, and out of a socket.
 */
TEST_F_TIMEOUT(snap, pipe_round_trip, 120)
{
	struct counter_thread t, rt;
	struct lvmm_vm *vm, *rvm;
	struct nl_events *ev;
	struct nl_saved s;
	struct drain dr;
	struct feed f;
	u64 before, after, c0, first;
	int p[2], q[2], sv[2];

	REQUIRE_SNAPSHOT(self->c);
	signal(SIGPIPE, SIG_IGN);
	vm = counting(&t);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	/* 1.3 MB, 64 KiB at a time, every 40 ms: about 0.8 s. */
	drain_start(&dr, p[0], 40000);
	ev = events_open();
	before = counter_in(vm, 0);
	ASSERT_EQ(0, nl_vm_save(self->c, vm->h.id, p[1], true)) TH_LOG("%s", self->c->ext);
	/* The save has its own reference: EOF comes when it is done. */
	close(p[1]);
	ASSERT_TRUE(event_saved(ev, vm->h.id, &s));
	ASSERT_EQ(0, s.error) TH_LOG("%s", strerror(s.error));
	counter_join(&t, END_DESTROYED);
	after = counter_in(vm, 0);
	pthread_join(dr.thread, NULL);
	close(p[0]);
	EXPECT_EQ(s.bytes, dr.len);
	EXPECT_LE(before, after);
	/* Progress every ~250 ms; the vCPUs held all along. */
	EXPECT_LE(2, s.nr_progress);
	EXPECT_LT(0, s.progress_bytes);
	EXPECT_GE(s.bytes, s.progress_bytes);
	EXPECT_LE(400000000ULL, s.pause_ns);
	TH_LOG("%llu bytes, %d progress events, the last at %llu bytes; vCPUs held %llu ms",
	       (unsigned long long)s.bytes, s.nr_progress,
	       (unsigned long long)s.progress_bytes,
	       (unsigned long long)s.pause_ns / 1000000);

	/* Out of a pipe. */
	ASSERT_EQ(0, pipe2(q, O_CLOEXEC));
	feed_start(&f, q[1], dr.buf, dr.len);
	rvm = vm_restore(q[0], NULL, vm);
	close(q[0]);
	pthread_join(f.thread, NULL);
	EXPECT_STREQ(vm->h.name, rvm->h.name);
	c0 = counter_in(rvm, 0);
	EXPECT_EQ(after, c0);
	first = copy_counts_on(_metadata, rvm, c0, 2);
	vm_free(rvm);

	/* Out of a socket: the same VM again, the same next step. */
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	feed_start(&f, sv[0], dr.buf, dr.len);
	rvm = vm_restore(sv[1], NULL, vm);
	close(sv[1]);
	pthread_join(f.thread, NULL);
	EXPECT_EQ(after, counter_in(rvm, 0));
	counter_start(&rt, rvm->vcpus[0]);
	ASSERT_TRUE(wait_for(rt.nr_sync >= 1, 20000));
	EXPECT_EQ(first, rt.first);
	stop_counting(rvm);
	counter_join(&rt, END_DONE);
	vm_free(rvm);

	/* A pipe that ends early: cut short. */
	{
		struct lvmm_restore_vm req;

		ASSERT_EQ(0, pipe2(q, O_CLOEXEC));
		feed_start(&f, q[1], dr.buf, dr.len / 2);
		EXPECT_EQ(-EBADMSG, restore_fd(q[0], NULL, &req));
		close(q[0]);
		pthread_join(f.thread, NULL);
	}
	free(dr.buf);
	events_close(ev);
	vm_free(vm);
}

/* A socket whose reader goes away mid-stream: the VM runs on. */
TEST_F_TIMEOUT(snap, socket_closed_mid_stream, 120)
{
	struct counter_thread t;
	struct nl_events *ev;
	struct lvmm_vm *vm;
	struct nl_saved s;
	u8 buf[4096];
	size_t got = 0;
	u64 frozen;
	int sv[2], fd;

	REQUIRE_SNAPSHOT(self->c);
	signal(SIGPIPE, SIG_IGN);
	vm = counting(&t);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ev = events_open();
	ASSERT_EQ(0, nl_vm_save(self->c, vm->h.id, sv[0], false)) TH_LOG("%s", self->c->ext);
	close(sv[0]);
	/* A little: more than the header, far less than the image. */
	while (got < 64 * 1024) {
		ssize_t n = read(sv[1], buf, sizeof(buf));

		ASSERT_LT(0, n);
		got += n;
	}
	ASSERT_TRUE(wait_for(vm_state(self->c, vm->h.id) == LVMM_VM_STATE_PAUSED,
			     5000)) TH_LOG("not paused while it is written");
	frozen = counter_in(vm, 0);
	usleep(100000);
	EXPECT_EQ(frozen, counter_in(vm, 0));
	close(sv[1]);

	ASSERT_TRUE(event_saved(ev, vm->h.id, &s));
	EXPECT_EQ(EPIPE, s.error) TH_LOG("the save ended with %s", strerror(s.error));
	EXPECT_LE(got, s.bytes);
	/* Running again, and not destroyed. */
	ASSERT_TRUE(wait_for(counter_in(vm, 0) > frozen + 4 * COUNT_N, 20000))
		TH_LOG("the VM does not run after the failed save");
	EXPECT_FALSE(t.done);
	EXPECT_NE(LVMM_VM_STATE_PAUSED, vm_state(self->c, vm->h.id));
	/* And a save works again. */
	fd = new_memfd();
	save_vm(self->c, vm, fd, false);
	stop_counting(vm);
	counter_join(&t, END_DONE);
	close(fd);
	events_close(ev);
	vm_free(vm);
}

/*
 * Paused by its user with its vCPU parked in LVMM_RUN: saved as it
 * stands, and still paused afterwards -- or, with save-stop, destroyed.
 */
TEST_F_TIMEOUT(snap, save_paused_vm, 120)
{
	REQUIRE_SNAPSHOT(self->c);
	for (int stop = 0; stop < 2; stop++) {
		struct counter_thread t;
		struct lvmm_vm *vm, *rvm;
		struct vcpu_dump d;
		u64 frozen;
		int fd;

		vm = counting(&t);
		ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_PAUSE, vm->h.id));
		ASSERT_EQ(LVMM_VM_STATE_PAUSED, vm_state(self->c, vm->h.id));
		/* Parked in RUN: the pause kicks, the vCPU parks on its way. */
		ASSERT_TRUE(wait_for(!nl_vcpu_dump(self->c, vm->h.id, &d) &&
				     d.v[0].state == LVMM_VCPU_STATE_PAUSED,
				     5000));
		frozen = counter_in(vm, 0);
		usleep(50000);
		ASSERT_EQ(frozen, counter_in(vm, 0));

		fd = save_to_memfd(self->c, vm, stop, NULL);
		if (stop) {
			counter_join(&t, END_DESTROYED);
		} else {
			EXPECT_EQ(LVMM_VM_STATE_PAUSED,
				  vm_state(self->c, vm->h.id));
			usleep(100000);
			EXPECT_EQ(frozen, counter_in(vm, 0))
				TH_LOG("the paused VM ran after the save");
			EXPECT_FALSE(t.done);
			ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_RESUME,
					       vm->h.id));
			ASSERT_TRUE(wait_for(counter_in(vm, 0) > frozen + COUNT_N,
					     20000));
			stop_counting(vm);
			counter_join(&t, END_DONE);
			ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_DESTROY,
					       vm->h.id));
		}
		rvm = vm_restore(fd, NULL, vm);
		/* Exactly where the pause left it; and the copy runs. */
		EXPECT_EQ(frozen, counter_in(rvm, 0));
		EXPECT_NE(LVMM_VM_STATE_PAUSED, vm_state(self->c, rvm->h.id));
		copy_counts_on(_metadata, rvm, frozen, 1);
		close(fd);
		vm_free(rvm);
		vm_free(vm);
	}
}

struct slot_churn {
	struct lvmm_vm *vm;
	pthread_t thread;
	volatile bool stop;
	u64 changes, busy;
	int err;
};

/* Create and delete slot 5 in turn; EBUSY while a save writes memory. */
static void *slot_churn_fn(void *arg)
{
	struct slot_churn *sc = arg;
	bool there = false;

	while (!sc->stop && !sc->err) {
		int r = __vm_set_memslot(sc->vm, 5, 0, 2 * SZ_1G,
					 there ? 0 : 16 * SZ_4K, NULL);

		if (r == -EBUSY) {
			sc->busy++;
			continue;
		}
		sc->err = r;
		there = !there;
		sc->changes++;
	}
	return NULL;
}

/* Slots come and go while the VM is saved, again and again. */
TEST_F_TIMEOUT(snap, save_during_slot_changes, 180)
{
	struct slot_churn sc = {};
	struct counter_thread t;
	struct lvmm_vm *vm;
	int saved = 0;

	REQUIRE_SNAPSHOT(self->c);
	vm = counting(&t);
	sc.vm = vm;
	ASSERT_EQ(0, pthread_create(&sc.thread, NULL, slot_churn_fn, &sc));
	for (int i = 0; i < 6; i++) {
		struct lvmm_restore_vm req;
		struct rec_ref recs[MAX_RECS];
		struct lvmm_stream_header h;
		int fd = save_to_memfd(self->c, vm, false, NULL), r, nr;
		size_t len;
		u8 *buf = read_all(fd, &len);

		/* The slots of one moment: 0, and 5 or not. */
		nr = stream_index(buf, len, recs, MAX_RECS);
		ASSERT_LT(0, nr);
		memcpy(&h, buf + sizeof(struct lvmm_rec), sizeof(h));
		EXPECT_TRUE(h.nr_slots == 1 || h.nr_slots == 2);
		EXPECT_EQ(vm->slots[0].size + (h.nr_slots - 1) * 16 * SZ_4K,
			  h.mem_size);
		ASSERT_EQ(0, lseek(fd, 0, SEEK_SET));
		r = restore_fd(fd, "snap-churn", &req);
		EXPECT_LE(0, r) TH_LOG("save %d: %s", i, strerror(-r));
		if (r >= 0)
			close(r);
		saved += h.nr_slots == 2;
		free(buf);
		close(fd);
	}
	sc.stop = true;
	pthread_join(sc.thread, NULL);
	EXPECT_EQ(0, sc.err) TH_LOG("SET_MEMSLOT: %s", strerror(-sc.err));
	EXPECT_LT(6, sc.changes);
	TH_LOG("%llu slot changes, %llu EBUSY; %d of 6 streams caught slot 5",
	       (unsigned long long)sc.changes, (unsigned long long)sc.busy,
	       saved);
	stop_counting(vm);
	counter_join(&t, END_DONE);
	vm_free(vm);
}

/* Two restores under one name at once: one VM, one EEXIST. */
struct racer {
	const u8 *buf;
	size_t len;
	pthread_t thread;
	volatile bool *go;
	int r;
};

static void *racer_fn(void *arg)
{
	struct racer *rc = arg;
	struct lvmm_restore_vm req;
	int fd = new_memfd();

	write_all(fd, rc->buf, rc->len);
	TEST_ASSERT(!lseek(fd, 0, SEEK_SET), "lseek");
	while (!*rc->go)
		;
	rc->r = restore_fd(fd, "snap-race", &req);
	close(fd);
	return NULL;
}

TEST_F_TIMEOUT(snap, restore_same_name_race, 120)
{
	struct lvmm_vm *vm;
	int fd, nr_vms;
	size_t len;
	u8 *buf;

	REQUIRE_SNAPSHOT(self->c);
	vm = snap_tiny_vm();
	fd = save_to_memfd(self->c, vm, true, NULL);
	buf = read_all(fd, &len);
	close(fd);
	nr_vms = nl_vm_count(self->c);
	for (int i = 0; i < 10; i++) {
		volatile bool go = false;
		struct racer rc[2];
		int ok = 0;

		for (int k = 0; k < 2; k++) {
			rc[k] = (struct racer){ .buf = buf, .len = len, .go = &go };
			ASSERT_EQ(0, pthread_create(&rc[k].thread, NULL, racer_fn,
						    &rc[k]));
		}
		usleep(10000);
		go = true;
		for (int k = 0; k < 2; k++) {
			pthread_join(rc[k].thread, NULL);
			if (rc[k].r >= 0)
				ok++;
			else
				EXPECT_EQ(-EEXIST, rc[k].r);
		}
		EXPECT_EQ(1, ok);
		EXPECT_EQ(nr_vms + ok, nl_vm_count(self->c));
		for (int k = 0; k < 2; k++)
			if (rc[k].r >= 0)
				close(rc[k].r);
	}
	EXPECT_EQ(nr_vms, nl_vm_count(self->c));
	free(buf);
	vm_free(vm);
}

/* ---- who may save ---------------------------------------------------- */

static void nobody_child(u32 root_vm, int dev)
{
	struct lvmm_create_vm cr = {};
	struct lvmm_restore_vm req;
	struct nl_saved s;
	struct nl_vm v;
	struct nlc *c;
	int fd, vmfd, r;

	drop_to_nobody();
	c = nlc_open();
	CHILD_CHECK(c, "no lvmm family");
	fd = memfd_create("nobody", MFD_CLOEXEC);
	CHILD_CHECK(fd >= 0, "memfd_create");

	/* Another user's VM: neither saved nor saved-and-stopped. */
	r = nl_vm_save(c, root_vm, fd, false);
	CHILD_CHECK(r == -EPERM, "vm-save of root's VM: %s", strerror(-r));
	CHILD_CHECK(c->ext[0], "EPERM without an extack message");
	r = nl_vm_save(c, root_vm, fd, true);
	CHILD_CHECK(r == -EPERM, "vm-save with save-stop: %s", strerror(-r));
	CHILD_CHECK(lseek(fd, 0, SEEK_END) == 0, "something was written");

	/* One's own: saved, and restored. */
	strcpy(cr.name, "snap-nobody");
	vmfd = ioctl(dev, LVMM_CREATE_VM, &cr);
	CHILD_CHECK(vmfd >= 0, "LVMM_CREATE_VM: %s", strerror(errno));
	r = nl_vm_save_wait(c, cr.id, fd, false, &s);
	CHILD_CHECK(r == 0, "vm-save of its own VM: %s (%s)", strerror(-r), c->ext);
	CHILD_CHECK(s.error == 0, "saved with %s", strerror(s.error));
	CHILD_CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek");
	memset(&req, 0, sizeof(req));
	req.fd = fd;
	strcpy(req.name, "snap-nobody-r");
	r = ioctl(dev, LVMM_RESTORE_VM, &req);
	CHILD_CHECK(r >= 0, "LVMM_RESTORE_VM: %s", strerror(errno));
	r = nl_vm_get(c, req.id, NULL, &v);
	CHILD_CHECK(r == 0 && v.owner_uid == 65534, "the copy's owner: %u",
		    v.owner_uid);
	_exit(0);
}

TEST_F_TIMEOUT(snap, permission, 60)
{
	struct lvmm_vm *vm;
	int status, dev;
	pid_t pid;

	REQUIRE_SNAPSHOT(self->c);
	TEST_REQUIRE(geteuid() == 0);
	vm = vm_create_bare("snap-root-owned");
	vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	dev = open_lvmm_dev();
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		nobody_child(vm->h.id, dev);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the unprivileged child failed (status 0x%x)", status);
	/* Untouched, and root may save it. */
	EXPECT_EQ(LVMM_VM_STATE_CREATED, vm_state(self->c, vm->h.id));
	close(save_to_memfd(self->c, vm, false, NULL));
	close(dev);
	vm_free(vm);
}

/* ---- the in-kernel APICs travel with the VM (stream version 3) ------- */

#define IRQC_TIMER_VEC	0x40
#define IRQC_LINE_VEC	0x41
#define IRQC_PIN	5
#define IRQC_SPIN_TSC	(10ULL * 1000 * 1000 * 1000)	/* seconds, at most */

static volatile u64 irqc_ticks, irqc_lines;

static void irqc_timer(struct ex_regs *regs)
{
	(void)regs;
	irqc_ticks++;
	x2apic_write_reg(APIC_EOI, 0);
}

static void irqc_line(struct ex_regs *regs)
{
	(void)regs;
	irqc_lines++;
	x2apic_write_reg(APIC_EOI, 0);
}

static void irqc_ioapic_write(u32 reg, u32 val)
{
	*(volatile u32 *)LVMM_IOAPIC_BASE = reg;
	*(volatile u32 *)(LVMM_IOAPIC_BASE + 0x10) = val;
}

/* Spin with interrupts on until *@p > @n, for a few seconds at most. */
static u64 irqc_wait(volatile u64 *p, u64 n)
{
	u64 end = rdtsc() + IRQC_SPIN_TSC;

	while (*p <= n && rdtsc() < end)
		cpu_relax();
	return *p;
}

static void guest_irqchip(void)
{
	x2apic_enable();
	x2apic_write_reg(APIC_TDCR, 0xb);		/* divide by 1 */
	x2apic_write_reg(APIC_LVTT, (1U << 17) | IRQC_TIMER_VEC);
	x2apic_write_reg(APIC_TMICT, 2000000);		/* 2 ms, periodic */
	/* Pin IRQC_PIN: edge, to APIC 0. */
	irqc_ioapic_write(0x11 + 2 * IRQC_PIN, 0);
	irqc_ioapic_write(0x10 + 2 * IRQC_PIN, IRQC_LINE_VEC);
	sti();
	irqc_wait(&irqc_ticks, 2);
	GUEST_SYNC(1);
	GUEST_SYNC_ARGS(2, irqc_wait(&irqc_ticks, irqc_ticks + 5), 0, 0, 0);
	GUEST_SYNC_ARGS(3, irqc_wait(&irqc_lines, 0), 0, 0, 0);
	GUEST_DONE();
}

/* Run until the guest's SYNC @stage (a restored vCPU repeats the last). */
static u64 irqc_run_to(struct __test_metadata *_metadata,
		       struct lvmm_vcpu *vcpu, u64 stage)
{
	struct ucall uc;

	do {
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	} while (uc.args[0] < stage);
	EXPECT_EQ(stage, uc.args[0]);
	return uc.args[1];
}

/* A VM of guest_irqchip() on two vCPUs, its handlers installed. */
static struct lvmm_vm *irqc_vm(struct lvmm_vcpu **vcpus)
{
	struct lvmm_vm *vm = vm_create_with_irqchip(2, guest_irqchip, vcpus);

	vm_init_descriptor_tables(vm);
	vm_install_exception_handler(vm, IRQC_TIMER_VEC, irqc_timer);
	vm_install_exception_handler(vm, IRQC_LINE_VEC, irqc_line);
	return vm;
}

TEST_F_TIMEOUT(snap, irqchip_round_trip, 120)
{
	struct lvmm_lapic_state *la = calloc(2, sizeof(*la)), *lb = la + 1;
	struct lvmm_ioapic_state ia, ib;
	struct lvmm_vcpu *vcpus[2];
	struct lvmm_vm *vm, *rvm;
	static const u32 regs[] = { APIC_ID, APIC_TASKPRI, APIC_LDR, APIC_SPIV,
				    APIC_LVTT, APIC_TMICT, APIC_TDCR,
				    APIC_LVT0, APIC_LVT1, APIC_LVTERR };
	u32 mp = ~0U;
	u64 ticks;
	size_t i;
	int fd;

	REQUIRE_SNAPSHOT(self->c);
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_IRQCHIP));
	ASSERT_NE(NULL, la);
	vm = irqc_vm(vcpus);
	irqc_run_to(_metadata, vcpus[0], 1);

	vcpu_get_lapic(vcpus[0], la);
	ASSERT_EQ(0, lvmm_get_ioapic(&vm->h, &ia));
	/* Out of RUN the guest takes no interrupt: this is what is saved. */
	ticks = *(volatile u64 *)addr_gva2hva(vm, &irqc_ticks);
	EXPECT_LE(3, ticks);
	fd = save_to_memfd(self->c, vm, true, NULL);

	rvm = vm_restore(fd, NULL, vm);
	ASSERT_NE(NULL, rvm->vcpus[1]);
	/* The I/O APIC and the local APIC as they were. */
	ASSERT_EQ(0, lvmm_get_ioapic(&rvm->h, &ib));
	EXPECT_EQ(0, memcmp(&ia, &ib, sizeof(ia)));
	vcpu_get_lapic(rvm->vcpus[0], lb);
	for (i = 0; i < ARRAY_SIZE(regs); i++) {
		u32 reg = regs[i];

		EXPECT_EQ(lapic_reg(la, reg), lapic_reg(lb, reg))
			TH_LOG("APIC register 0x%x", reg);
	}
	/* Still counting down, from no more than the period. */
	EXPECT_GE(2000000U, lapic_reg(lb, APIC_TMCCT));
	/* vCPU 1 still waits for its start-up IPI. */
	mp = vcpu_get_mp_state(rvm->vcpus[1]);
	EXPECT_EQ(LVMM_MP_STATE_WAIT_SIPI, mp);
	EXPECT_EQ(MSR_IA32_APICBASE_EN | MSR_IA32_APICBASE_EXTD |
		  MSR_IA32_APICBASE_BSP | 0xfee00000ULL,
		  vcpu_get_msr(rvm->vcpus[0], MSR_IA32_APICBASE));

	/* The copy's timer ticks, and its I/O APIC delivers a line. */
	EXPECT_LE(ticks + 5, irqc_run_to(_metadata, rvm->vcpus[0], 2));
	ASSERT_EQ(0, lvmm_irq_line(&rvm->h, IRQC_PIN, 1));
	EXPECT_EQ(1, irqc_run_to(_metadata, rvm->vcpus[0], 3));
	vm_free(rvm);
	vm_free(vm);
	close(fd);
	free(la);
}

/*
 * A line raised while a save holds the VM frozen, after its vCPUs (and
 * their APICs) were taken: the I/O APIC keeps the edge until the save is
 * done, so that the saved I/O APIC carries it.  The VM takes it when it
 * thaws, and so does a copy restored from that save.
 */
TEST_F_TIMEOUT(snap, irqchip_line_while_frozen, 120)
{
	struct lvmm_vcpu *vcpus[2];
	struct lvmm_vm *vm, *rvm;
	struct lvmm_ioapic_state ia;
	struct nl_events *ev;
	struct nl_saved s;
	struct drain dr;
	struct feed f;
	int p[2], q[2], n = 0;
	u64 end;

	REQUIRE_SNAPSHOT(self->c);
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_IRQCHIP));
	signal(SIGPIPE, SIG_IGN);
	vm = irqc_vm(vcpus);
	irqc_run_to(_metadata, vcpus[0], 2);

	/* Saved into a pipe nobody reads yet: it stays frozen, writing. */
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ev = events_open();
	ASSERT_EQ(0, nl_vm_save(self->c, vm->h.id, p[1], false))
		TH_LOG("%s", self->c->ext);
	close(p[1]);
	/* Bytes in the pipe: the vCPUs were taken (they come first). */
	end = now_ns() + 10000000000ULL;
	while (!n && now_ns() < end) {
		ASSERT_EQ(0, ioctl(p[0], FIONREAD, &n));
		usleep(1000);
	}
	ASSERT_LT(0, n) TH_LOG("the save wrote nothing in 10 s");
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, IRQC_PIN, 1));
	ASSERT_EQ(0, lvmm_get_ioapic(&vm->h, &ia));
	EXPECT_TRUE(ia.pending & (1U << IRQC_PIN))
		TH_LOG("the edge went to an APIC already saved");
	drain_start(&dr, p[0], 0);
	ASSERT_TRUE(event_saved(ev, vm->h.id, &s));
	ASSERT_EQ(0, s.error) TH_LOG("%s", strerror(s.error));
	pthread_join(dr.thread, NULL);
	close(p[0]);
	events_close(ev);

	/* The VM, thawed, takes it... */
	ASSERT_EQ(0, lvmm_get_ioapic(&vm->h, &ia));
	EXPECT_FALSE(ia.pending & (1U << IRQC_PIN));
	EXPECT_EQ(1, irqc_run_to(_metadata, vcpus[0], 3));
	/* ... and so does its copy. */
	ASSERT_EQ(0, pipe2(q, O_CLOEXEC));
	feed_start(&f, q[1], dr.buf, dr.len);
	rvm = vm_restore(q[0], "irqc-line-copy", vm);
	close(q[0]);
	pthread_join(f.thread, NULL);
	EXPECT_EQ(1, irqc_run_to(_metadata, rvm->vcpus[0], 3));
	vm_free(rvm);
	vm_free(vm);
	free(dr.buf);
}

TEST_HARNESS_MAIN
