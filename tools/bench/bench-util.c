// SPDX-License-Identifier: GPL-2.0
/*
 * What the lvmm benches share: see bench-util.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <linux/lvmm_nl.h>

#include "bench-util.h"

void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", bench_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* ---- netlink ---- */

struct nl_sock *nl;
struct nl_sock *ev;
int family;

void nl_init(bool events)
{
	int grp;

	nl = nl_socket_alloc();
	if (events)
		ev = nl_socket_alloc();
	if (!nl || genl_connect(nl) || (events && (!ev || genl_connect(ev))))
		die("cannot open a generic netlink socket");
	family = genl_ctrl_resolve(nl, LVMM_FAMILY_NAME);
	if (family < 0)
		die("no lvmm netlink family: is lvmm loaded?");
	if (!events)
		return;
	grp = genl_ctrl_resolve_grp(nl, LVMM_FAMILY_NAME, LVMM_MCGRP_EVENTS);
	if (grp < 0)
		die("no \"%s\" group in the lvmm family: %s",
		    LVMM_MCGRP_EVENTS, nl_geterror(grp));
	/* Events carry no sequence numbers of ours. */
	nl_socket_disable_seq_check(ev);
	if (nl_socket_add_membership(ev, grp) ||
	    nl_socket_set_nonblocking(ev))
		die("cannot subscribe to the lvmm events group");
}

struct nl_msg *nl_req(uint8_t cmd, int flags, uint32_t vm_id)
{
	struct nl_msg *m = nlmsg_alloc();

	if (!m || !genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, flags,
			       cmd, LVMM_FAMILY_VERSION) ||
	    nla_put_u32(m, LVMM_A_VM_ID, vm_id))
		die("out of memory");
	return m;
}

bool nl_vm_event(struct nl_msg *msg, uint32_t vm_id, struct nlattr **tb,
		 uint32_t *event)
{
	struct genlmsghdr *g = nlmsg_data(nlmsg_hdr(msg));

	if (g->cmd != LVMM_CMD_VM_EVENT ||
	    genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_VM_MAX, NULL) < 0 ||
	    !tb[LVMM_A_VM_ID] || nla_get_u32(tb[LVMM_A_VM_ID]) != vm_id ||
	    !tb[LVMM_A_VM_EVENT])
		return false;
	*event = nla_get_u32(tb[LVMM_A_VM_EVENT]);
	return true;
}

bool nl_wait_events(int (*cb)(struct nl_msg *msg, void *arg), void *arg,
		    const int *got, uint64_t deadline, int poll_ms)
{
	struct pollfd p = { .fd = nl_socket_get_fd(ev), .events = POLLIN };
	int r;

	nl_socket_modify_cb(ev, NL_CB_VALID, NL_CB_CUSTOM, cb, arg);
	while (!*got) {
		if (now_ns() > deadline)
			return false;
		if (poll(&p, 1, poll_ms) <= 0)
			continue;
		r = nl_recvmsgs_default(ev);
		if (r < 0 && r != -NLE_AGAIN)
			die("reading the events group: %s (an event lost?)",
			    nl_geterror(r));
	}
	return true;
}

/* ---- figures ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stat3 stats(const double *v, unsigned int n)
{
	double s[MAX_RUNS];
	struct stat3 r;

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	r.min = s[0];
	r.max = s[n - 1];
	r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return r;
}

/* ---- the guest ---- */

void vcpu_create_flat32(struct lvmm_vm_handle *vm,
			struct lvmm_vcpu_handle *vcpu, uint64_t rip,
			uint64_t ecx, uint64_t edi)
{
	struct lvmm_regs regs;
	struct lvmm_sregs s;
	int r;

	r = lvmm_vcpu_create(vm, 0, vcpu) ?: lvmm_get_sregs(vcpu, &s);
	if (r)
		die("LVMM_CREATE_VCPU: %s", strerror(-r));
	lvmm_seg_flat(&s.cs, 0x08, 0xb, false, true);
	lvmm_seg_flat(&s.ds, 0x10, 0x3, false, true);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.cr0 = X86_CR0_PE | X86_CR0_ET;
	s.cr4 = 0;
	s.efer = 0;
	memset(&regs, 0, sizeof(regs));
	regs.rcx = ecx;
	regs.rdi = edi;
	regs.rip = rip;
	regs.rflags = 2;
	r = lvmm_set_sregs(vcpu, &s) ?: lvmm_set_regs(vcpu, &regs);
	if (r)
		die("LVMM_SET_SREGS/REGS: %s", strerror(-r));
}
