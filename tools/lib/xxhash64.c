// SPDX-License-Identifier: GPL-2.0
/*
 * liblvmm: xxh64 (Yann Collet's xxHash, 64-bit), the checksum of the VM
 * stream.  The algorithm of the kernel's lib/xxhash.c, written again for
 * userspace: little-endian input, as lvmm's hosts are.
 */
#include <string.h>

#include "xxhash64.h"

#define PRIME64_1	0x9E3779B185EBCA87ULL
#define PRIME64_2	0xC2B2AE3D27D4EB4FULL
#define PRIME64_3	0x165667B19E3779F9ULL
#define PRIME64_4	0x85EBCA77C2B2AE63ULL
#define PRIME64_5	0x27D4EB2F165667C5ULL

static __u64 rotl64(__u64 x, unsigned int r)
{
	return (x << r) | (x >> (64 - r));
}

/* Unaligned little-endian loads; the compiler makes them one move. */
static __u64 get64(const __u8 *p)
{
	__u64 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static __u32 get32(const __u8 *p)
{
	__u32 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static __u64 round64(__u64 acc, __u64 input)
{
	acc += input * PRIME64_2;
	acc = rotl64(acc, 31);
	return acc * PRIME64_1;
}

static __u64 merge_round64(__u64 acc, __u64 val)
{
	acc ^= round64(0, val);
	return acc * PRIME64_1 + PRIME64_4;
}

void lvmm_xxh64_reset(struct lvmm_xxh64 *s, __u64 seed)
{
	memset(s, 0, sizeof(*s));
	s->v[0] = seed + PRIME64_1 + PRIME64_2;
	s->v[1] = seed + PRIME64_2;
	s->v[2] = seed;
	s->v[3] = seed - PRIME64_1;
}

/* One 32-byte stripe into the four lanes. */
static void stripe64(__u64 *v, const __u8 *p)
{
	v[0] = round64(v[0], get64(p));
	v[1] = round64(v[1], get64(p + 8));
	v[2] = round64(v[2], get64(p + 16));
	v[3] = round64(v[3], get64(p + 24));
}

void lvmm_xxh64_update(struct lvmm_xxh64 *s, const void *buf, size_t len)
{
	const __u8 *p = buf, *end = p + len;
	size_t fill;

	s->total_len += len;
	if (s->memsize + len < 32) {
		memcpy(s->mem + s->memsize, p, len);
		s->memsize += len;
		return;
	}
	if (s->memsize) {
		fill = 32 - s->memsize;
		memcpy(s->mem + s->memsize, p, fill);
		stripe64(s->v, s->mem);
		p += fill;
		s->memsize = 0;
	}
	for (; p + 32 <= end; p += 32)
		stripe64(s->v, p);
	if (p < end) {
		memcpy(s->mem, p, end - p);
		s->memsize = end - p;
	}
}

__u64 lvmm_xxh64_digest(const struct lvmm_xxh64 *s)
{
	const __u8 *p = s->mem, *end = p + s->memsize;
	__u64 h;

	if (s->total_len >= 32) {
		h = rotl64(s->v[0], 1) + rotl64(s->v[1], 7) +
		    rotl64(s->v[2], 12) + rotl64(s->v[3], 18);
		h = merge_round64(h, s->v[0]);
		h = merge_round64(h, s->v[1]);
		h = merge_round64(h, s->v[2]);
		h = merge_round64(h, s->v[3]);
	} else {
		h = s->v[2] + PRIME64_5;	/* the seed */
	}
	h += s->total_len;

	for (; p + 8 <= end; p += 8) {
		h ^= round64(0, get64(p));
		h = rotl64(h, 27) * PRIME64_1 + PRIME64_4;
	}
	if (p + 4 <= end) {
		h ^= (__u64)get32(p) * PRIME64_1;
		h = rotl64(h, 23) * PRIME64_2 + PRIME64_3;
		p += 4;
	}
	for (; p < end; p++) {
		h ^= *p * PRIME64_5;
		h = rotl64(h, 11) * PRIME64_1;
	}

	h ^= h >> 33;
	h *= PRIME64_2;
	h ^= h >> 29;
	h *= PRIME64_3;
	h ^= h >> 32;
	return h;
}

__u64 lvmm_xxh64(const void *buf, size_t len, __u64 seed)
{
	struct lvmm_xxh64 s;

	lvmm_xxh64_reset(&s, seed);
	lvmm_xxh64_update(&s, buf, len);
	return lvmm_xxh64_digest(&s);
}
