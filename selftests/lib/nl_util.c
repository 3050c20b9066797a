// SPDX-License-Identifier: GPL-2.0
/*
 * The selftests' client of the "lvmm" generic netlink family: requests
 * with extack capture, the vm and vcpu replies, the events group.
 */
#include <grp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <linux/netlink.h>

#include <netlink/genl/ctrl.h>

#include "nl_util.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK	270
#endif

struct nlc_req {
	struct nlc *c;
	int err;		/* 1 while waiting */
	int (*cb)(struct nl_msg *msg, void *arg);
	void *arg;
};

static void nlc_extack(struct nlc *c, void *tlvs, int len)
{
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];

	c->ext_tlvs = true;
	if (len <= 0 || nla_parse(tb, NLMSGERR_ATTR_MAX, tlvs, len, NULL))
		return;
	if (tb[NLMSGERR_ATTR_MSG])
		snprintf(c->ext, sizeof(c->ext), "%s",
			 (char *)nla_data(tb[NLMSGERR_ATTR_MSG]));
}

static int nlc_error_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)e - 1;
	struct nlc_req *req = arg;
	int off = NLMSG_HDRLEN + sizeof(*e);

	(void)nla;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
		if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
			off += e->msg.nlmsg_len - NLMSG_HDRLEN;
		nlc_extack(req->c, (char *)nlh + off, (int)nlh->nlmsg_len - off);
	}
	req->err = e->error;
	return NL_STOP;
}

static int nlc_finish_cb(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct nlc_req *req = arg;
	int err = 0;

	/* A dump that failed puts its error, and the extack, in DONE. */
	if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(int)) {
		memcpy(&err, nlmsg_data(nlh), sizeof(err));
		if (nlh->nlmsg_flags & NLM_F_ACK_TLVS)
			nlc_extack(req->c, (char *)nlmsg_data(nlh) + sizeof(int),
				   (int)nlh->nlmsg_len - NLMSG_HDRLEN -
				   (int)sizeof(int));
	}
	req->err = err;
	return NL_STOP;
}

static int nlc_ack_cb(struct nl_msg *msg, void *arg)
{
	((struct nlc_req *)arg)->err = 0;
	(void)msg;
	return NL_STOP;
}

static int nlc_valid_cb(struct nl_msg *msg, void *arg)
{
	struct nlc_req *req = arg;

	return req->cb ? req->cb(msg, req->arg) : NL_OK;
}

struct nlc *nlc_open(void)
{
	struct nlc *c = calloc(1, sizeof(*c));
	int one = 1;

	TEST_ASSERT(c, "out of memory");
	c->sk = nl_socket_alloc();
	TEST_ASSERT(c->sk, "nl_socket_alloc");
	TEST_ASSERT(!genl_connect(c->sk), "genl_connect");
	TEST_ASSERT(!setsockopt(nl_socket_get_fd(c->sk), SOL_NETLINK,
				NETLINK_EXT_ACK, &one, sizeof(one)),
		    "NETLINK_EXT_ACK");
	c->family = genl_ctrl_resolve(c->sk, LVMM_FAMILY_NAME);
	if (c->family < 0) {
		nl_socket_free(c->sk);
		free(c);
		return NULL;
	}
	return c;
}

void nlc_close(struct nlc *c)
{
	if (!c)
		return;
	nl_socket_free(c->sk);
	free(c);
}

struct nl_msg *nlc_msg(struct nlc *c, u8 cmd, int flags)
{
	struct nl_msg *msg = nlmsg_alloc();

	TEST_ASSERT(msg, "nlmsg_alloc");
	TEST_ASSERT(genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, c->family, 0,
				flags, cmd, LVMM_FAMILY_VERSION), "genlmsg_put");
	return msg;
}

int nlc_exec(struct nlc *c, struct nl_msg *msg,
	     int (*cb)(struct nl_msg *msg, void *arg), void *arg)
{
	struct nlc_req req = { .c = c, .err = 1, .cb = cb, .arg = arg };
	struct nl_cb *ncb = nl_cb_alloc(NL_CB_DEFAULT);
	int r;

	c->ext[0] = '\0';
	c->ext_tlvs = false;
	TEST_ASSERT(ncb, "nl_cb_alloc");
	nl_cb_err(ncb, NL_CB_CUSTOM, nlc_error_cb, &req);
	nl_cb_set(ncb, NL_CB_FINISH, NL_CB_CUSTOM, nlc_finish_cb, &req);
	nl_cb_set(ncb, NL_CB_ACK, NL_CB_CUSTOM, nlc_ack_cb, &req);
	nl_cb_set(ncb, NL_CB_VALID, NL_CB_CUSTOM, nlc_valid_cb, &req);
	r = nl_send_auto(c->sk, msg);
	nlmsg_free(msg);
	TEST_ASSERT(r >= 0, "nl_send_auto: %s", nl_geterror(r));
	while (req.err > 0) {
		r = nl_recvmsgs(c->sk, ncb);
		TEST_ASSERT(r >= 0 || req.err <= 0, "nl_recvmsgs: %s",
			    nl_geterror(r));
	}
	nl_cb_put(ncb);
	return req.err;
}

int nl_attrs_of_type(struct nl_msg *msg, int type, struct nlattr **out,
		     int max)
{
	struct genlmsghdr *g = nlmsg_data(nlmsg_hdr(msg));
	struct nlattr *a;
	int rem, n = 0;

	nla_for_each_attr(a, genlmsg_attrdata(g, 0), genlmsg_attrlen(g, 0),
			  rem) {
		if (nla_type(a) != type)
			continue;
		if (n < max)
			out[n] = a;
		n++;
	}
	return n;
}

int parse_vm(struct nl_msg *msg, struct nl_vm *vm)
{
	struct nlattr *tb[LVMM_A_VM_MAX + 1];

	memset(vm, 0, sizeof(*vm));
	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_VM_MAX, NULL) < 0 ||
	    !tb[LVMM_A_VM_ID] || !tb[LVMM_A_VM_NAME])
		return -EPROTO;
	vm->id = nla_get_u32(tb[LVMM_A_VM_ID]);
	snprintf(vm->name, sizeof(vm->name), "%s",
		 nla_get_string(tb[LVMM_A_VM_NAME]));
	if (tb[LVMM_A_VM_OWNER_UID])
		vm->owner_uid = nla_get_u32(tb[LVMM_A_VM_OWNER_UID]);
	if (tb[LVMM_A_VM_CREATOR_PID])
		vm->creator_pid = nla_get_u32(tb[LVMM_A_VM_CREATOR_PID]);
	if (tb[LVMM_A_VM_STATE])
		vm->state = nla_get_u32(tb[LVMM_A_VM_STATE]);
	if (tb[LVMM_A_VM_NR_VCPUS])
		vm->nr_vcpus = nla_get_u32(tb[LVMM_A_VM_NR_VCPUS]);
	if (tb[LVMM_A_VM_MEM_SIZE])
		vm->mem_size = nla_get_u64(tb[LVMM_A_VM_MEM_SIZE]);
	if (tb[LVMM_A_VM_CREATED_NS])
		vm->created_ns = nla_get_u64(tb[LVMM_A_VM_CREATED_NS]);
	if (tb[LVMM_A_VM_GUEST_NS])
		vm->guest_ns = nla_get_u64(tb[LVMM_A_VM_GUEST_NS]);
	if (tb[LVMM_A_VM_EVENT])
		vm->event = nla_get_u32(tb[LVMM_A_VM_EVENT]);
	if (tb[LVMM_A_VM_VCPU_ID]) {
		vm->vcpu_id = nla_get_u32(tb[LVMM_A_VM_VCPU_ID]);
		vm->has_vcpu_id = true;
	}
	if (tb[LVMM_A_VM_SAVE_BYTES])
		vm->save_bytes = nla_get_u64(tb[LVMM_A_VM_SAVE_BYTES]);
	if (tb[LVMM_A_VM_SAVE_TOTAL])
		vm->save_total = nla_get_u64(tb[LVMM_A_VM_SAVE_TOTAL]);
	if (tb[LVMM_A_VM_PAUSE_NS])
		vm->pause_ns = nla_get_u64(tb[LVMM_A_VM_PAUSE_NS]);
	if (tb[LVMM_A_VM_SAVE_ERROR]) {
		vm->save_error = nla_get_u32(tb[LVMM_A_VM_SAVE_ERROR]);
		vm->has_save_error = true;
	}
	if (tb[LVMM_A_VM_MIGRATE_ITERATION])
		vm->mig_iteration = nla_get_u32(tb[LVMM_A_VM_MIGRATE_ITERATION]);
	if (tb[LVMM_A_VM_MIGRATE_THROTTLE])
		vm->mig_throttle = nla_get_u32(tb[LVMM_A_VM_MIGRATE_THROTTLE]);
	if (tb[LVMM_A_VM_MIGRATE_SENT])
		vm->mig_sent = nla_get_u64(tb[LVMM_A_VM_MIGRATE_SENT]);
	if (tb[LVMM_A_VM_MIGRATE_LEFT])
		vm->mig_left = nla_get_u64(tb[LVMM_A_VM_MIGRATE_LEFT]);
	if (tb[LVMM_A_VM_MIGRATE_DIRTY_RATE])
		vm->mig_dirty_rate = nla_get_u64(tb[LVMM_A_VM_MIGRATE_DIRTY_RATE]);
	if (tb[LVMM_A_VM_MIGRATE_BANDWIDTH])
		vm->mig_bandwidth = nla_get_u64(tb[LVMM_A_VM_MIGRATE_BANDWIDTH]);
	if (tb[LVMM_A_VM_MIGRATE_EXPECTED_NS])
		vm->mig_expected_ns = nla_get_u64(tb[LVMM_A_VM_MIGRATE_EXPECTED_NS]);
	if (tb[LVMM_A_VM_MIGRATE_OUTCOME]) {
		vm->mig_outcome = nla_get_u32(tb[LVMM_A_VM_MIGRATE_OUTCOME]);
		vm->has_mig_outcome = true;
	}
	if (tb[LVMM_A_VM_MIGRATE_ERROR])
		vm->mig_error = nla_get_u32(tb[LVMM_A_VM_MIGRATE_ERROR]);
	if (tb[LVMM_A_VM_MIGRATE_PEER_ERROR])
		vm->mig_peer_error = nla_get_u32(tb[LVMM_A_VM_MIGRATE_PEER_ERROR]);
	if (tb[LVMM_A_VM_MIGRATE_TOTAL_NS])
		vm->mig_total_ns = nla_get_u64(tb[LVMM_A_VM_MIGRATE_TOTAL_NS]);
	if (tb[LVMM_A_VM_MIGRATE_DOWNTIME_NS])
		vm->mig_downtime_ns = nla_get_u64(tb[LVMM_A_VM_MIGRATE_DOWNTIME_NS]);
	return 0;
}

int vm_get_cb(struct nl_msg *msg, void *arg)
{
	struct nl_vm *vm = arg;

	TEST_ASSERT(!parse_vm(msg, vm), "vm-get reply without id or name");
	vm->seen = true;
	return NL_OK;
}

int nl_vm_get(struct nlc *c, u32 id, const char *name, struct nl_vm *vm)
{
	struct nl_msg *msg = nlc_msg(c, LVMM_CMD_VM_GET, 0);

	if (id)
		nla_put_u32(msg, LVMM_A_VM_ID, id);
	if (name)
		nla_put_string(msg, LVMM_A_VM_NAME, name);
	memset(vm, 0, sizeof(*vm));
	return nlc_exec(c, msg, vm_get_cb, vm);
}

int nl_vm_cmd(struct nlc *c, u8 cmd, u32 id)
{
	struct nl_msg *msg = nlc_msg(c, cmd, 0);

	nla_put_u32(msg, LVMM_A_VM_ID, id);
	return nlc_exec(c, msg, NULL, NULL);
}

static int mapped_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[LVMM_A_STATS_MAX + 1];
	struct nl_mapped *m = arg;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_STATS_MAX, NULL) < 0 ||
	    !tb[LVMM_A_STATS_MAPPED_4K] || !tb[LVMM_A_STATS_MAPPED_2M])
		return NL_SKIP;
	m->n4k = nla_get_u64(tb[LVMM_A_STATS_MAPPED_4K]);
	m->n2m = nla_get_u64(tb[LVMM_A_STATS_MAPPED_2M]);
	return NL_OK;
}

int nl_vm_mapped(struct nlc *c, u32 id, struct nl_mapped *m)
{
	struct nl_msg *msg = nlc_msg(c, LVMM_CMD_STATS_GET, 0);
	int r;

	m->n4k = m->n2m = ~0ULL;
	nla_put_u32(msg, LVMM_A_STATS_VM_ID, id);
	r = nlc_exec(c, msg, mapped_cb, m);
	if (!r && (m->n4k == ~0ULL || m->n2m == ~0ULL))
		r = -ENODATA;
	return r;
}

static int vm_count_cb(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(*(int *)arg)++;
	return NL_OK;
}

int nl_vm_count(struct nlc *c)
{
	int n = 0, r;

	r = nlc_exec(c, nlc_msg(c, LVMM_CMD_VM_GET, NLM_F_DUMP), vm_count_cb,
		     &n);
	return r ? r : n;
}

int nl_put_cpus(struct nl_msg *msg, int type, const cpu_set_t *set)
{
	u8 bytes[CPU_SETSIZE / 8] = {};
	int len = 0;

	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, set))
			continue;
		bytes[cpu / 8] |= 1 << (cpu % 8);
		len = cpu / 8 + 1;
	}
	return nla_put(msg, type, len, bytes);
}

void nl_get_cpus(const struct nlattr *a, cpu_set_t *set)
{
	const u8 *bytes = nla_data(a);

	CPU_ZERO(set);
	for (int i = 0; i < nla_len(a); i++) {
		for (int bit = 0; bit < 8; bit++) {
			int cpu = i * 8 + bit;

			if (!(bytes[i] & (1 << bit)))
				continue;
			TEST_ASSERT(cpu < CPU_SETSIZE,
				    "CPU %d in a bitmap: more than the test handles",
				    cpu);
			CPU_SET(cpu, set);
		}
	}
}

static int vcpu_dump_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[LVMM_A_VCPU_MAX + 1];
	struct vcpu_dump *d = arg;
	struct nl_vcpu *v;

	TEST_ASSERT(d->n < MAX_VCPUS, "too many vCPUs in vcpu-get");
	TEST_ASSERT(genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_VCPU_MAX,
				  NULL) >= 0, "vcpu-get: bad reply");
	TEST_ASSERT(tb[LVMM_A_VCPU_VM_ID] && tb[LVMM_A_VCPU_ID] &&
		    tb[LVMM_A_VCPU_STATE] && tb[LVMM_A_VCPU_TID] &&
		    tb[LVMM_A_VCPU_GUEST_NS] && tb[LVMM_A_VCPU_HOST_NS] &&
		    tb[LVMM_A_VCPU_EXITS], "vcpu-get: attribute missing");
	v = &d->v[d->n++];
	v->vm_id = nla_get_u32(tb[LVMM_A_VCPU_VM_ID]);
	v->id = nla_get_u32(tb[LVMM_A_VCPU_ID]);
	v->state = nla_get_u32(tb[LVMM_A_VCPU_STATE]);
	v->tid = nla_get_u32(tb[LVMM_A_VCPU_TID]);
	v->has_cpu = tb[LVMM_A_VCPU_CPU];
	if (v->has_cpu)
		v->cpu = nla_get_u32(tb[LVMM_A_VCPU_CPU]);
	v->guest_ns = nla_get_u64(tb[LVMM_A_VCPU_GUEST_NS]);
	v->host_ns = nla_get_u64(tb[LVMM_A_VCPU_HOST_NS]);
	v->exits = nla_get_u64(tb[LVMM_A_VCPU_EXITS]);
	v->has_affinity = tb[LVMM_A_VCPU_AFFINITY];
	if (v->has_affinity)
		nl_get_cpus(tb[LVMM_A_VCPU_AFFINITY], &v->affinity);
	if (tb[LVMM_A_VCPU_NR_THROTTLED])
		v->nr_throttled = nla_get_u64(tb[LVMM_A_VCPU_NR_THROTTLED]);
	if (tb[LVMM_A_VCPU_THROTTLED_NS])
		v->throttled_ns = nla_get_u64(tb[LVMM_A_VCPU_THROTTLED_NS]);
	if (tb[LVMM_A_VCPU_NR_BOOSTS])
		v->nr_boosts = nla_get_u64(tb[LVMM_A_VCPU_NR_BOOSTS]);
	if (tb[LVMM_A_VCPU_BOOSTED_NS])
		v->boosted_ns = nla_get_u64(tb[LVMM_A_VCPU_BOOSTED_NS]);
	return NL_OK;
}

int nl_vcpu_dump(struct nlc *c, u32 vm_id, struct vcpu_dump *d)
{
	struct nl_msg *msg = nlc_msg(c, LVMM_CMD_VCPU_GET, NLM_F_DUMP);

	nla_put_u32(msg, LVMM_A_VM_ID, vm_id);
	memset(d, 0, sizeof(*d));
	return nlc_exec(c, msg, vcpu_dump_cb, d);
}

static int events_cb(struct nl_msg *msg, void *arg)
{
	struct genlmsghdr *g = nlmsg_data(nlmsg_hdr(msg));
	struct nl_events *ev = arg;

	if (g->cmd == LVMM_CMD_VM_EVENT && !parse_vm(msg, &ev->last))
		ev->last.seen = true;
	return NL_STOP;
}

struct nl_events *events_open(void)
{
	struct nl_events *ev = calloc(1, sizeof(*ev));
	struct timeval tv = { .tv_sec = 10 };
	int grp;

	TEST_ASSERT(ev, "out of memory");
	ev->sk = nl_socket_alloc();
	TEST_ASSERT(ev->sk && !genl_connect(ev->sk), "genl_connect");
	grp = genl_ctrl_resolve_grp(ev->sk, LVMM_FAMILY_NAME,
				    LVMM_MCGRP_EVENTS);
	TEST_ASSERT(grp >= 0, "no '%s' group in the lvmm family",
		    LVMM_MCGRP_EVENTS);
	TEST_ASSERT(!nl_socket_add_membership(ev->sk, grp), "join events");
	nl_socket_disable_seq_check(ev->sk);
	nl_socket_modify_cb(ev->sk, NL_CB_VALID, NL_CB_CUSTOM, events_cb, ev);
	setsockopt(nl_socket_get_fd(ev->sk), SOL_SOCKET, SO_RCVTIMEO, &tv,
		   sizeof(tv));
	return ev;
}

bool event_next(struct nl_events *ev, u32 id, struct nl_vm *out)
{
	for (;;) {
		ev->last.seen = false;
		if (nl_recvmsgs_default(ev->sk) < 0)
			return false;
		if (ev->last.seen && ev->last.id == id) {
			*out = ev->last;
			return true;
		}
	}
}

void events_close(struct nl_events *ev)
{
	nl_socket_free(ev->sk);
	free(ev);
}

int nl_vm_save(struct nlc *c, u32 id, int fd, bool stop)
{
	struct nl_msg *msg = nlc_msg(c, LVMM_CMD_VM_SAVE, 0);

	nla_put_u32(msg, LVMM_A_VM_ID, id);
	nla_put_u32(msg, LVMM_A_VM_SAVE_FD, fd);
	if (stop)
		nla_put_flag(msg, LVMM_A_VM_SAVE_STOP);
	return nlc_exec(c, msg, NULL, NULL);
}

bool event_saved(struct nl_events *ev, u32 id, struct nl_saved *out)
{
	struct nl_vm e;

	memset(out, 0, sizeof(*out));
	while (event_next(ev, id, &e)) {
		if (e.event == LVMM_EVENT_SAVE_PROGRESS) {
			out->nr_progress++;
			out->progress_bytes = e.save_bytes;
			continue;
		}
		if (e.event != LVMM_EVENT_SAVED)
			continue;
		TEST_ASSERT(e.has_save_error, "saved event without save-error");
		out->error = e.save_error;
		out->bytes = e.save_bytes;
		out->total = e.save_total;
		out->pause_ns = e.pause_ns;
		return true;
	}
	return false;
}

int nl_vm_save_wait(struct nlc *c, u32 id, int fd, bool stop,
		    struct nl_saved *out)
{
	struct nl_events *ev = events_open();
	int r = nl_vm_save(c, id, fd, stop);

	if (!r && !event_saved(ev, id, out))
		r = -ETIMEDOUT;
	events_close(ev);
	return r;
}

int nl_vm_migrate(struct nlc *c, u32 id, int fd, const struct nl_mig_args *a)
{
	struct nl_msg *msg = nlc_msg(c, LVMM_CMD_VM_MIGRATE, 0);

	nla_put_u32(msg, LVMM_A_VM_ID, id);
	nla_put_u32(msg, LVMM_A_VM_MIGRATE_FD, fd);
	if (a && a->downtime_ms)
		nla_put_u32(msg, LVMM_A_VM_MIGRATE_DOWNTIME_MS, a->downtime_ms);
	if (a && a->max_bandwidth)
		nla_put_u64(msg, LVMM_A_VM_MIGRATE_MAX_BANDWIDTH,
			    a->max_bandwidth);
	if (a && a->max_iter)
		nla_put_u32(msg, LVMM_A_VM_MIGRATE_MAX_ITER, a->max_iter);
	if (a && a->auto_converge)
		nla_put_flag(msg, LVMM_A_VM_MIGRATE_AUTO_CONVERGE);
	if (a && a->checksum)
		nla_put_flag(msg, LVMM_A_VM_MIGRATE_CHECKSUM);
	return nlc_exec(c, msg, NULL, NULL);
}

bool event_migrated(struct nl_events *ev, u32 id, struct nl_migrated *out,
		    u64 ms)
{
	struct timespec ts;
	u64 end, now;
	struct nl_vm e;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000 + ms;
	memset(out, 0, sizeof(*out));
	do {
		/* event_next() gives up after 10 s without an event. */
		while (event_next(ev, id, &e)) {
			if (e.event == LVMM_EVENT_MIGRATE_PROGRESS) {
				if (e.mig_iteration < out->iterations ||
				    e.mig_sent < out->progress_sent)
					out->disorder = true;
				out->nr_progress++;
				out->iterations = e.mig_iteration;
				out->progress_sent = e.mig_sent;
				if (e.mig_throttle > out->max_throttle)
					out->max_throttle = e.mig_throttle;
				continue;
			}
			if (e.event != LVMM_EVENT_MIGRATED)
				continue;
			TEST_ASSERT(e.has_mig_outcome,
				    "migrated event without migrate-outcome");
			if (e.mig_sent < out->progress_sent)
				out->disorder = true;
			out->outcome = e.mig_outcome;
			out->error = e.mig_error;
			out->peer_error = e.mig_peer_error;
			out->total_ns = e.mig_total_ns;
			out->downtime_ns = e.mig_downtime_ns;
			out->sent = e.mig_sent;
			return true;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
	} while (now < end);
	return false;
}

void drop_to_nobody(void)
{
	CHILD_CHECK(!setgroups(0, NULL), "setgroups");
	CHILD_CHECK(!setresgid(65534, 65534, 65534), "setresgid");
	CHILD_CHECK(!setresuid(65534, 65534, 65534), "setresuid");
}
