/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What lvmm-sched-bench, lvmm-snap-bench, lvmm-mig-bench and
 * lvmm-irq-bench share (bench-util.c): dying with a message, the clock,
 * the lvmm netlink family and its events group, the median and range of
 * the runs, and a vCPU that starts in flat 32-bit code.
 */
#ifndef LVMM_BENCH_UTIL_H
#define LVMM_BENCH_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <netlink/netlink.h>

#include "lvmm.h"

/* The most runs of a row: stats() takes at most this many. */
#define MAX_RUNS	20

/* The program's name, which die() puts first; each bench defines it. */
extern const char *const bench_name;

/* Say what went wrong on stderr, after bench_name, and exit 1. */
void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* ---- netlink: nl_init() dies if lvmm's family is not there ---- */

extern struct nl_sock *nl;	/* requests */
extern struct nl_sock *ev;	/* the events group, with nl_init(true) */
extern int family;

/* Open nl and, with @events, ev: non-blocking, subscribed to the group. */
void nl_init(bool events);
/* A request @cmd of the family about VM @vm_id. */
struct nl_msg *nl_req(uint8_t cmd, int flags, uint32_t vm_id);
/*
 * In a callback of nl_wait_events(): the attributes of @msg in @tb, which
 * has room for LVMM_A_VM_MAX + 1, and its event in *@event, if it is a
 * vm-event of VM @vm_id; false if it is anything else.
 */
bool nl_vm_event(struct nl_msg *msg, uint32_t vm_id, struct nlattr **tb,
		 uint32_t *event);
/*
 * Hand every message of the events group to @cb with @arg until *@got;
 * waits up to @poll_ms for each.  False if @deadline (now_ns()) passes
 * first.
 */
bool nl_wait_events(int (*cb)(struct nl_msg *msg, void *arg), void *arg,
		    const int *got, uint64_t deadline, int poll_ms);

/* ---- figures ---- */

struct stat3 {
	double med, min, max;
};

/* The median, least and most of the @n values at @v. */
struct stat3 stats(const double *v, unsigned int n);

/* ---- the guest ---- */

/*
 * vCPU 0 of @vm, in @vcpu, set to run flat 32-bit code (CS 0x08, the
 * other segments 0x10, no paging) from @rip, with @ecx and @edi.
 */
void vcpu_create_flat32(struct lvmm_vm_handle *vm,
			struct lvmm_vcpu_handle *vcpu, uint64_t rip,
			uint64_t ecx, uint64_t edi);

#endif /* LVMM_BENCH_UTIL_H */
