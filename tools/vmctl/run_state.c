// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl run: its device state as one blob, for snapshots.
 *
 * vmctl run keeps this blob in lvmm with LVMM_SET_VMM_STATE whenever the
 * state changes, so that a vm-save taken from outside (vmctl save) carries
 * it; vmctl run --restore reads it back with LVMM_GET_VMM_STATE.  lvmm does
 * not look inside.  All little-endian; offsets in bytes:
 *
 *   header     0  u64 magic, "VMCTLDEV" (RUN_STATE_MAGIC)
 *              8  u32 version (RUN_STATE_VERSION, 1)
 *             12  u32 length of the whole blob, header included
 *   sections, from 16 to the end, each
 *              0  u32 type
 *              4  u32 len: the payload's bytes
 *              8  the payload, then zeros up to a multiple of 8
 *
 *   RUN_STATE_UART (1): the 16550 at 0x3f8, as run_uart.c lays it out:
 *              port, IER, LCR, MCR, SCR, DLL, DLM, FCR, the THR-empty
 *              condition, then the receive FIFO's bytes, oldest first
 *   RUN_STATE_VCPUS (2): u32 nr, u32 reserved (0), then nr bytes, one
 *              per vCPU in the order of their ids: enum run_vcpu_state
 *
 * Version 1 has exactly these two sections, once each.  A reader refuses
 * another magic (another VMM's state), a newer version, a length other
 * than the blob's, a section type it does not know and a payload that is
 * not its layout: device state it cannot restore is never dropped
 * silently.  A later vmctl adds a section or changes one by raising the
 * version.  The other devices vmctl run emulates have no state: the
 * debug-exit and POST ports, and the PM timer, which reads the host's
 * CLOCK_MONOTONIC.
 */
#include <stdio.h>
#include <string.h>

#include "run.h"

#define RUN_STATE_HDR		16
#define RUN_STATE_SEC_HDR	8
#define RUN_STATE_UART		1
#define RUN_STATE_VCPUS		2

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* A section of @len payload bytes at @p, which the caller wrote. */
static size_t section_end(uint8_t *p, uint32_t type, size_t len)
{
	put32(p, type);
	put32(p + 4, len);
	memset(p + RUN_STATE_SEC_HDR + len, 0,
	       align8(len) - len);
	return RUN_STATE_SEC_HDR + align8(len);
}

size_t run_state_save(uint8_t *buf, struct run_uart *u, const uint8_t *vcpus,
		      int ncpus, uint64_t *uart_gen)
{
	size_t off = RUN_STATE_HDR, len;
	uint64_t magic = RUN_STATE_MAGIC;
	int i;

	len = run_uart_save(u, buf + off + RUN_STATE_SEC_HDR, uart_gen);
	off += section_end(buf + off, RUN_STATE_UART, len);

	put32(buf + off + RUN_STATE_SEC_HDR, ncpus);
	put32(buf + off + RUN_STATE_SEC_HDR + 4, 0);
	for (i = 0; i < ncpus; i++)
		buf[off + RUN_STATE_SEC_HDR + 8 + i] = vcpus[i];
	off += section_end(buf + off, RUN_STATE_VCPUS, 8 + ncpus);

	for (i = 0; i < 8; i++)
		buf[i] = magic >> (8 * i);
	put32(buf + 8, RUN_STATE_VERSION);
	put32(buf + 12, off);
	return off;
}

int run_state_identify(const uint8_t *blob, size_t len, uint32_t *version)
{
	if (len < RUN_STATE_HDR || get64(blob) != RUN_STATE_MAGIC)
		return 0;
	*version = get32(blob + 8);
	return 1;
}

const char *run_state_load(const uint8_t *blob, size_t len,
			   struct run_uart *u, uint8_t *vcpus, int ncpus)
{
	static char why[96];
	const uint8_t *uart = NULL, *vs = NULL;
	const char *err;
	size_t off, uart_len = 0, vs_len = 0;
	uint32_t version, type, n, i;

	if (!run_state_identify(blob, len, &version))
		return "it is not vmctl run's (another VMM ran the VM)";
	if (version > RUN_STATE_VERSION) {
		snprintf(why, sizeof(why),
			 "it was written by a newer vmctl (format %u; this vmctl reads %u)",
			 version, RUN_STATE_VERSION);
		return why;
	}
	if (version != RUN_STATE_VERSION || get32(blob + 12) != len)
		return "its header is corrupt";
	for (off = RUN_STATE_HDR; off < len; off += RUN_STATE_SEC_HDR + align8(n)) {
		if (len - off < RUN_STATE_SEC_HDR)
			return "a section is cut short";
		type = get32(blob + off);
		n = get32(blob + off + 4);
		if (align8(n) > len - off - RUN_STATE_SEC_HDR)
			return "a section is longer than the blob";
		if (type == RUN_STATE_UART && !uart) {
			uart = blob + off + RUN_STATE_SEC_HDR;
			uart_len = n;
		} else if (type == RUN_STATE_VCPUS && !vs) {
			vs = blob + off + RUN_STATE_SEC_HDR;
			vs_len = n;
		} else {
			snprintf(why, sizeof(why),
				 "it has a section of type %u this vmctl does not know, or one twice",
				 type);
			return why;
		}
	}
	if (!uart || !vs)
		return "it lacks the UART's or the vCPUs' section";
	if (vs_len < 8 || get32(vs + 4) || vs_len != 8 + get32(vs))
		return "its vCPU section is corrupt";
	if (get32(vs) != (uint32_t)ncpus) {
		snprintf(why, sizeof(why),
			 "it is for %u vCPUs, the VM has %d", get32(vs), ncpus);
		return why;
	}
	for (i = 0; i < (uint32_t)ncpus; i++)
		if (vs[8 + i] >= RUN_VCPU_STATES)
			return "its vCPU section is corrupt";
	/* The UART's section is checked whole before the UART changes. */
	err = run_uart_load(u, uart, uart_len);
	if (err)
		return err;
	memcpy(vcpus, vs + 8, ncpus);
	return NULL;
}
