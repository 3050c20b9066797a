// SPDX-License-Identifier: GPL-2.0
/*
 * The VM stream as bytes, a mutation fuzzer of it and the tiny VM (see
 * include/stream_bytes.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "stream_bytes.h"

int stream_index(const u8 *buf, size_t len, struct rec_ref *recs, int max)
{
	size_t off = 0;
	int n = 0;

	while (n < max && len - off >= sizeof(struct lvmm_rec)) {
		struct lvmm_rec r;

		memcpy(&r, buf + off, sizeof(r));
		if (r.len > len - off - sizeof(r))
			break;
		recs[n++] = (struct rec_ref){ off, r.type, r.len };
		off += sizeof(r) + r.len;
		if (r.type == LVMM_REC_END)
			break;
	}
	return n;
}

int rec_find(const struct rec_ref *recs, int nr, u32 type, int nth)
{
	for (int i = 0; i < nr; i++)
		if (recs[i].type == type && !nth--)
			return i;
	return -1;
}

u64 stream_sum(const u8 *buf, size_t off)
{
	struct lvmm_stream_header h = { 0 };
	struct lvmm_xxh64 x;
	size_t at = 0;
	bool unsummed;

	if (off >= sizeof(struct lvmm_rec) + sizeof(h))
		memcpy(&h, buf + sizeof(struct lvmm_rec), sizeof(h));
	unsummed = h.magic == LVMM_STREAM_MAGIC &&
		   (h.flags & LVMM_STREAM_PAGES_UNSUMMED);
	lvmm_xxh64_reset(&x, 0);
	while (unsummed && off - at >= sizeof(struct lvmm_rec)) {
		struct lvmm_rec r;
		size_t in;

		memcpy(&r, buf + at, sizeof(r));
		if (r.len > off - at - sizeof(r))
			break;
		/* A chunk's pages are out: its record and map are in. */
		in = sizeof(r) + r.len;
		if ((r.type == LVMM_REC_MEMORY || r.type == LVMM_REC_PAGES) &&
		    r.len >= sizeof(struct lvmm_stream_mem))
			in = sizeof(r) + sizeof(struct lvmm_stream_mem);
		lvmm_xxh64_update(&x, buf + at, in);
		at += sizeof(r) + r.len;
	}
	lvmm_xxh64_update(&x, buf + at, off - at);
	return lvmm_xxh64_digest(&x);
}

void stream_set_end(u8 *buf, size_t off, u64 nr_records)
{
	struct lvmm_stream_end end = {
		.checksum = stream_sum(buf, off),
		.nr_records = nr_records,
	};

	memcpy(buf + off + sizeof(struct lvmm_rec), &end, sizeof(end));
}

bool stream_fix(u8 *buf, size_t len)
{
	struct rec_ref recs[MAX_RECS];
	int nr = stream_index(buf, len, recs, MAX_RECS);

	if (!nr || recs[nr - 1].type != LVMM_REC_END ||
	    recs[nr - 1].len != sizeof(struct lvmm_stream_end))
		return false;
	stream_set_end(buf, recs[nr - 1].off, nr - 1);
	return true;
}

size_t rec_drop(u8 *buf, size_t len, const struct rec_ref *r)
{
	size_t n = sizeof(struct lvmm_rec) + r->len;

	memmove(buf + r->off, buf + r->off + n, len - r->off - n);
	return len - n;
}

size_t rec_insert(u8 *buf, size_t len, size_t off, const void *ins,
		  size_t n)
{
	memmove(buf + off + n, buf + off, len - off);
	memcpy(buf + off, ins, n);
	return len + n;
}

/* ---- a mutation fuzzer ---- */

static u64 min_u64(u64 a, u64 b)
{
	return a < b ? a : b;
}

static u64 rnd(u64 *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static const u64 interesting[] = {
	0, 1, 2, 7, 8, 16, 31, 32, 33, 127, 128, 129, 255, 256, 257, 511,
	512, 513, 4095, 4096, 4104, 65536, 65537, 0x7fffffff, 0x80000000,
	0xffffffff, 1ULL << 32, 1ULL << 40, 1ULL << 62, 1ULL << 63, ~0ULL,
	~0ULL - 7,
};

/*
 * One mutation of the @len bytes at @b (room for @cap), drawn from
 * f->s: the new length; @what says what.
 */
static size_t mutate(struct stream_fuzz *f, u8 *b, size_t len, size_t cap,
		     char *what, size_t wlen)
{
	struct rec_ref recs[MAX_RECS];
	int nr = stream_index(b, len, recs, MAX_RECS), i, j;
	u64 *s = &f->s, v = interesting[rnd(s) % ARRAY_SIZE(interesting)];
	size_t off, n;
	u8 *tmp;

	if (len < 16) {
		snprintf(what, wlen, "nothing (%zu bytes)", len);
		return len;
	}
	i = nr ? rnd(s) % nr : 0;
	/* The tenth, a record's type, only with types to give. */
	switch (rnd(s) % (f->types ? 10 : 9)) {
	case 0:
		n = 1 + rnd(s) % 4;
		snprintf(what, wlen, "%zu bit flips", n);
		while (n--)
			b[rnd(s) % len] ^= 1 << (rnd(s) % 8);
		return len;
	case 1:		/* in the structure of a record: its first bytes */
		if (!nr)
			break;
		off = recs[i].off + rnd(s) % min_u64(160, recs[i].len + 16);
		snprintf(what, wlen, "bit flip at %zu, in record %d", off, i);
		b[off] ^= 1 << (rnd(s) % 8);
		return len;
	case 2:
		n = rnd(s) % len;
		snprintf(what, wlen, "cut at %zu", n);
		return n;
	case 3:
		if (!nr)
			break;
		n = sizeof(struct lvmm_rec) + recs[i].len;
		if (len + n > cap)
			break;
		off = recs[i].off + n;
		memmove(b + off + n, b + off, len - off);
		memcpy(b + off, b + recs[i].off, n);
		snprintf(what, wlen, "record %d twice", i);
		return len + n;
	case 4:
		if (!nr)
			break;
		snprintf(what, wlen, "record %d dropped", i);
		return rec_drop(b, len, &recs[i]);
	case 5:
		if (nr < 2 || i == nr - 1)
			break;
		j = i + 1;
		n = sizeof(struct lvmm_rec) + recs[i].len;
		tmp = malloc(n);
		if (!tmp)
			break;
		memcpy(tmp, b + recs[i].off, n);
		memmove(b + recs[i].off, b + recs[j].off,
			sizeof(struct lvmm_rec) + recs[j].len);
		memcpy(b + recs[i].off + sizeof(struct lvmm_rec) + recs[j].len,
		       tmp, n);
		free(tmp);
		snprintf(what, wlen, "records %d and %d swapped", i, j);
		return len;
	case 6:
		if (!nr)
			break;
		if (rnd(s) & 1)
			v = recs[i].len + (rnd(s) & 1 ? 8 : -8) * (1 + rnd(s) % 512);
		memcpy(b + recs[i].off + 8, &v, 8);
		snprintf(what, wlen, "record %d's length 0x%llx", i,
			 (unsigned long long)v);
		return len;
	case 7:		/* a count or a field: u32 in a record's first bytes */
		if (!nr || recs[i].len < 4)
			break;
		off = recs[i].off + sizeof(struct lvmm_rec) +
		      (rnd(s) % min_u64(64, recs[i].len / 4)) * 4;
		memcpy(b + off, &v, 4);
		snprintf(what, wlen, "u32 at %zu (record %d) = 0x%x", off, i,
			 (u32)v);
		return len;
	case 8:
		off = (rnd(s) % (len / 8)) * 8;
		memcpy(b + off, &v, 8);
		snprintf(what, wlen, "u64 at %zu = 0x%llx", off,
			 (unsigned long long)v);
		return len;
	case 9:
		if (!nr)
			break;
		n = f->types[rnd(s) % f->nr_types];
		memcpy(b + recs[i].off, &n, 4);
		snprintf(what, wlen, "record %d's type %zu", i, n);
		return len;
	}
	snprintf(what, wlen, "nothing");
	return len;
}

size_t stream_fuzz_next(struct stream_fuzz *f, u8 *b, size_t len, size_t cap)
{
	char what2[80];

	len = mutate(f, b, len, cap, f->what, sizeof(f->what));
	f->fix = rnd(&f->s) & 1;
	if (rnd(&f->s) % 4 == 0) {
		len = mutate(f, b, len, cap, what2, sizeof(what2));
		snprintf(f->what + strlen(f->what),
			 sizeof(f->what) - strlen(f->what), ", then %s", what2);
	}
	if (f->fix)
		f->fixed += stream_fix(b, len);
	f->iters++;
	return len;
}

bool stream_fuzz_refused(struct stream_fuzz *f, int err)
{
	TEST_ASSERT(f->nr_allowed <= ARRAY_SIZE(f->refused),
		    "%zu errnos: room for %zu", f->nr_allowed,
		    ARRAY_SIZE(f->refused));
	for (size_t k = 0; k < f->nr_allowed; k++) {
		if (f->allowed[k] == err) {
			f->refused[k]++;
			return true;
		}
	}
	return false;
}

/* ---- the tiny VM ---- */

/* 1000: mov 0x2000,%ax; inc %ax; mov %ax,0x2000; out %ax,$0x80; jmp 1000 */
static const u8 tiny_code[] = {
	0xa1, 0x00, 0x20, 0x40, 0xa3, 0x00, 0x20, 0xe7, TINY_PORT, 0xeb, 0xf5,
};

struct lvmm_vm *tiny_vm(const char *name)
{
	struct lvmm_vm *vm = vm_create_bare(name);
	u8 *mem, *mem1, *rom, blob[TINY_BLOB];

	mem = vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	memcpy(mem + 0x1000, tiny_code, sizeof(tiny_code));
	memset(mem + 0x10000, 0x11, SZ_4K);
	mem1 = vm_add_memslot(vm, 1, 0, TINY_SLOT1_GPA, TINY_SLOT1_SIZE);
	memset(mem1, 0x33, SZ_4K);
	memset(mem1 + 300 * SZ_4K, 0x44, 100);
	memset(mem1 + 513 * SZ_4K, 0x55, SZ_4K);
	rom = vm_add_memslot(vm, 2, LVMM_MEMSLOT_READONLY, TINY_ROM_GPA, SZ_4K);
	memset(rom, 0xf4, SZ_4K);
	for (u32 id = 0; id < 2; id++) {
		struct lvmm_vcpu *vcpu = vm_vcpu_add_raw(vm, id);
		struct lvmm_sregs sregs;
		struct lvmm_regs regs;

		vcpu_sregs_get(vcpu, &sregs);
		sregs.cs.selector = 0;
		sregs.cs.base = 0;
		vcpu_sregs_set(vcpu, &sregs);
		vcpu_regs_get(vcpu, &regs);
		regs.rip = 0x1000;
		regs.rbx = 0x1111 * (id + 1);
		vcpu_regs_set(vcpu, &regs);
	}
	for (int i = 0; i < TINY_BLOB; i++)
		blob[i] = i ^ 0x5a;
	TEST_ASSERT(!__vm_set_vmm_state(vm, blob, TINY_BLOB), "SET_VMM_STATE");
	return vm;
}
