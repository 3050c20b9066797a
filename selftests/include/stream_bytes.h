/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VM stream (uapi/linux/lvmm.h, struct lvmm_rec) as bytes, for the
 * tests that take streams apart and send them back changed
 * (snapshot_test, live_migration_test): its records, an END made to agree
 * again, records cut out and put in, a mutation fuzzer; and the small VM
 * whose stream they start from.  The checksum is liblvmm's lvmm_xxh64()
 * with seed 0.
 */
#ifndef SELFTEST_LVMM_STREAM_BYTES_H
#define SELFTEST_LVMM_STREAM_BYTES_H

#include "lvmm_util.h"
#include "xxhash64.h"		/* tools/lib */

/* The most records of a stream that the tests look at. */
#define MAX_RECS	1024

struct rec_ref {
	size_t off;		/* of the record's header */
	u32 type;
	u64 len;
};

/*
 * The records of @buf as far as their lengths hold, up to and including
 * END, at most @max: how many.
 */
int stream_index(const u8 *buf, size_t len, struct rec_ref *recs, int max);

static inline void *rec_data(u8 *buf, const struct rec_ref *r)
{
	return buf + r->off + sizeof(struct lvmm_rec);
}

/* The index of the @nth record of @type, or -1. */
int rec_find(const struct rec_ref *recs, int nr, u32 type, int nth);
/*
 * The checksum of the @off bytes at @buf as END has it: all of them, but
 * the pages of MEMORY and PAGES records when the header says
 * LVMM_STREAM_PAGES_UNSUMMED.
 */
u64 stream_sum(const u8 *buf, size_t off);
/* Set the END record at @off: checksum of what is before, @nr_records. */
void stream_set_end(u8 *buf, size_t off, u64 nr_records);
/*
 * Make END agree with what comes before it again, as a writer would:
 * its checksum and record count.  False if there is no END to fix.
 */
bool stream_fix(u8 *buf, size_t len);
/* Cut record @r out of the @len bytes at @buf: the new length. */
size_t rec_drop(u8 *buf, size_t len, const struct rec_ref *r);
/* Put the @n bytes at @ins at @off of the @len at @buf (it has room). */
size_t rec_insert(u8 *buf, size_t len, size_t off, const void *ins,
		  size_t n);

/* ---- a mutation fuzzer ---- */

struct stream_fuzz {
	u64 s;			/* xorshift64* state: never 0 */
	/* Types a record may be given (none if NULL), as a mutation. */
	const u32 *types;
	size_t nr_types;
	/* The errnos an input may be refused with, at most 8. */
	const int *allowed;
	size_t nr_allowed;
	u64 iters;		/* inputs made */
	u64 fixed;		/* of them, with END made to agree again */
	u64 accepted;		/* counted by the test */
	u64 refused[8];		/* with each errno of allowed */
	bool fix;		/* the last one: END to be fixed up, if any */
	char what[160];		/* the last one: what was done to it */
};

/*
 * The next input, made of the @len bytes at @b (room for @cap): one
 * mutation -- bit flips, a cut, a record duplicated, dropped or swapped,
 * a length or a count set to a value at the edges, with f->types a
 * record's type changed -- a quarter of the time a second one; half the
 * time END made to agree again, to reach the checks behind the checksum.
 * Returns its length; f->what and f->fix say what was done.
 */
size_t stream_fuzz_next(struct stream_fuzz *f, u8 *b, size_t len, size_t cap);
/* Count an input refused with @err: false if @err is not in f->allowed. */
bool stream_fuzz_refused(struct stream_fuzz *f, int err);

/* What the fuzzer made of how many inputs, in the test's log. */
#define STREAM_FUZZ_LOG(f) do {						\
	const struct stream_fuzz *__f = (f);				\
									\
	TH_LOG("%llu streams (%llu fixed up): %llu accepted",		\
	       (unsigned long long)__f->iters,				\
	       (unsigned long long)__f->fixed,				\
	       (unsigned long long)__f->accepted);			\
	for (size_t __k = 0; __k < __f->nr_allowed; __k++)		\
		TH_LOG("  %s: %llu", strerror(__f->allowed[__k]),	\
		       (unsigned long long)__f->refused[__k]);		\
} while (0)

/* ---- the tiny VM ---- */

/*
 * A small VM for the streams the tests take apart: a real-mode loop at
 * 0x1000 on two vCPUs, counting at 0x2000 with an OUT to TINY_PORT
 * after each step; slot 0 (2 MiB), slot 1 (small pages, a partial last
 * chunk), a read-only slot; a VMM blob of TINY_BLOB bytes, i ^ 0x5a.
 */
#define TINY_SLOT1_GPA	0x300000ULL
#define TINY_SLOT1_SIZE	(SZ_2M + 2 * SZ_4K)
#define TINY_ROM_GPA	0xfffff000ULL
#define TINY_BLOB	100
#define TINY_PORT	0x80

struct lvmm_vm *tiny_vm(const char *name);

#endif /* SELFTEST_LVMM_STREAM_BYTES_H */
