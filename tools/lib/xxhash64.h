/* SPDX-License-Identifier: GPL-2.0 */
/*
 * liblvmm: xxh64, the checksum at the end of a VM stream (uapi/linux/lvmm.h,
 * struct lvmm_stream_end), as the kernel's lib/xxhash.c computes it.
 */
#ifndef _LIBLVMM_XXHASH64_H
#define _LIBLVMM_XXHASH64_H

#include <stddef.h>
#include <linux/types.h>

/* A running xxh64: reset, update with any pieces, digest at any time. */
struct lvmm_xxh64 {
	__u64 total_len;
	__u64 v[4];
	__u8 mem[32];		/* the bytes of an unfinished 32-byte stripe */
	__u32 memsize;
};

void lvmm_xxh64_reset(struct lvmm_xxh64 *s, __u64 seed);
void lvmm_xxh64_update(struct lvmm_xxh64 *s, const void *buf, size_t len);
__u64 lvmm_xxh64_digest(const struct lvmm_xxh64 *s);
/* All of @buf at once. */
__u64 lvmm_xxh64(const void *buf, size_t len, __u64 seed);

#endif /* _LIBLVMM_XXHASH64_H */
