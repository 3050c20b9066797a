// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl: the netlink plumbing -- the "lvmm" generic netlink family over
 * libnl-genl-3, extack messages, and looking VMs up by name or id.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <sys/signalfd.h>

#include "nl.h"
#include "vmctl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK	270
#endif

static struct nla_policy vmctl_vm_policy[LVMM_A_VM_MAX + 1] = {
	[LVMM_A_VM_ID]		= { .type = NLA_U32 },
	[LVMM_A_VM_NAME]	= { .type = NLA_NUL_STRING,
				    .maxlen = LVMM_VM_NAME_LEN },
	[LVMM_A_VM_OWNER_UID]	= { .type = NLA_U32 },
	[LVMM_A_VM_CREATOR_PID]	= { .type = NLA_U32 },
	[LVMM_A_VM_STATE]	= { .type = NLA_U32 },
	[LVMM_A_VM_NR_VCPUS]	= { .type = NLA_U32 },
	[LVMM_A_VM_MEM_SIZE]	= { .type = NLA_U64 },
	[LVMM_A_VM_CREATED_NS]	= { .type = NLA_U64 },
	[LVMM_A_VM_GUEST_NS]	= { .type = NLA_U64 },
	[LVMM_A_VM_EVENT]	= { .type = NLA_U32 },
	[LVMM_A_VM_VCPU_ID]	= { .type = NLA_U32 },
	[LVMM_A_VM_SAVE_BYTES]	= { .type = NLA_U64 },
	[LVMM_A_VM_SAVE_TOTAL]	= { .type = NLA_U64 },
	[LVMM_A_VM_SAVE_ERROR]	= { .type = NLA_U32 },
	[LVMM_A_VM_PAUSE_NS]	= { .type = NLA_U64 },
	[LVMM_A_VM_MIGRATE_ITERATION]	= { .type = NLA_U32 },
	[LVMM_A_VM_MIGRATE_SENT]	= { .type = NLA_U64 },
	[LVMM_A_VM_MIGRATE_LEFT]	= { .type = NLA_U64 },
	[LVMM_A_VM_MIGRATE_DIRTY_RATE]	= { .type = NLA_U64 },
	[LVMM_A_VM_MIGRATE_BANDWIDTH]	= { .type = NLA_U64 },
	[LVMM_A_VM_MIGRATE_EXPECTED_NS]	= { .type = NLA_U64 },
	[LVMM_A_VM_MIGRATE_THROTTLE]	= { .type = NLA_U32 },
	[LVMM_A_VM_MIGRATE_OUTCOME]	= { .type = NLA_U32 },
	[LVMM_A_VM_MIGRATE_ERROR]	= { .type = NLA_U32 },
	[LVMM_A_VM_MIGRATE_PEER_ERROR]	= { .type = NLA_U32 },
	[LVMM_A_VM_MIGRATE_TOTAL_NS]	= { .type = NLA_U64 },
	[LVMM_A_VM_MIGRATE_DOWNTIME_NS]	= { .type = NLA_U64 },
};

int vmctl_nl_open(struct vmctl_nl *nl)
{
	int one = 1, r;

	memset(nl, 0, sizeof(*nl));
	nl->sk = nl_socket_alloc();
	if (!nl->sk) {
		vmctl_err("out of memory");
		return -ENOMEM;
	}
	r = genl_connect(nl->sk);
	if (r < 0) {
		vmctl_err("cannot open a generic netlink socket: %s",
			  nl_geterror(r));
		r = -EIO;
		goto out_free;
	}
	/* Ask for the kernel's reason with every error. */
	setsockopt(nl_socket_get_fd(nl->sk), SOL_NETLINK, NETLINK_EXT_ACK,
		   &one, sizeof(one));
	nl->family = genl_ctrl_resolve(nl->sk, LVMM_FAMILY_NAME);
	if (nl->family < 0) {
		vmctl_err("the lvmm module is not loaded (insmod lvmm.ko or modprobe lvmm)");
		r = -ENOENT;
		goto out_free;
	}
	return 0;

out_free:
	nl_socket_free(nl->sk);
	nl->sk = NULL;
	return r;
}

void vmctl_nl_close(struct vmctl_nl *nl)
{
	nl_socket_free(nl->sk);
	nl->sk = NULL;
}

int vmctl_nl_join_events(struct vmctl_nl *nl)
{
	int grp, r;

	grp = genl_ctrl_resolve_grp(nl->sk, LVMM_FAMILY_NAME,
				    LVMM_MCGRP_EVENTS);
	if (grp < 0) {
		vmctl_err("the lvmm family has no '%s' group; is lvmm.ko older than vmctl?",
			  LVMM_MCGRP_EVENTS);
		return -ENOENT;
	}
	r = nl_socket_add_membership(nl->sk, grp);
	if (r < 0) {
		vmctl_err("cannot join the lvmm events group: %s",
			  nl_geterror(r));
		return -EIO;
	}
	nl_socket_disable_seq_check(nl->sk);
	return 0;
}

int vmctl_nl_open_events(struct vmctl_nl *nl,
			 int (*cb)(struct nl_msg *msg, void *arg), void *arg)
{
	int r = vmctl_nl_open(nl);

	if (r)
		return r;
	r = vmctl_nl_join_events(nl);
	if (r) {
		vmctl_nl_close(nl);
		return r;
	}
	nl_socket_modify_cb(nl->sk, NL_CB_VALID, NL_CB_CUSTOM, cb, arg);
	/* Room for the bursts of a busy host: the end event must get in. */
	nl_socket_set_buffer_size(nl->sk, 1 << 20, 0);
	return 0;
}

void vmctl_job_sigset(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGHUP);
}

int vmctl_nl_wait_events(struct vmctl_nl *nl, const bool *done,
			 int (*on_signal)(int sig, void *arg), void *arg,
			 unsigned long *lost)
{
	struct signalfd_siginfo si;
	struct pollfd p[2];
	sigset_t sigs;
	int r = 0;

	vmctl_job_sigset(&sigs);
	p[0].fd = nl_socket_get_fd(nl->sk);
	p[0].events = POLLIN;
	p[1].fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	p[1].events = POLLIN;
	while (!*done) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(nl->ext_msg, sizeof(nl->ext_msg), "poll: %s",
				 strerror(errno));
			r = -EIO;
			break;
		}
		if (p[1].revents &&
		    read(p[1].fd, &si, sizeof(si)) == sizeof(si)) {
			r = on_signal ? on_signal(si.ssi_signo, arg) : -EINTR;
			if (r)
				break;
		}
		/* POLLERR too: an overrun, which the receive reports. */
		if (!p[0].revents)
			continue;
		r = nl_recvmsgs_default(nl->sk);
		if (r == -NLE_NOMEM) {
			/* An overrun: what was lost is progress, the end comes last. */
			(*lost)++;
		} else if (r < 0) {
			snprintf(nl->ext_msg, sizeof(nl->ext_msg), "%s",
				 nl_geterror(r));
			r = -EIO;
			break;
		}
		r = 0;
	}
	if (p[1].fd >= 0)
		close(p[1].fd);
	return r;
}

void vmctl_nl_report_lost(unsigned long lost)
{
	if (lost)
		vmctl_err("%lu burst%s of lvmm's events were lost; the progress shown was incomplete",
			  lost, lost > 1 ? "s" : "");
}

bool vmctl_nl_vm_event(struct nl_msg *msg, uint32_t vm_id,
		       struct vmctl_vm *ev)
{
	struct genlmsghdr *g = nlmsg_data(nlmsg_hdr(msg));

	return g->cmd == LVMM_CMD_VM_EVENT && !vmctl_nl_parse_vm(msg, ev) &&
	       ev->id == vm_id;
}

int vmctl_nl_job_request(struct vmctl_nl *nl, struct nl_msg *msg,
			 const char *what, const struct vmctl_vm *vm)
{
	int r = vmctl_nl_exec(nl, msg, NULL, NULL);

	switch (r) {
	case 0:
	case -EBUSY:
		break;
	case -ENOENT:
		vmctl_err("cannot %s %s: it has just been destroyed; see vmctl list",
			  what, vm->name);
		break;
	case -EOPNOTSUPP:
		vmctl_err("this lvmm cannot %s VMs (it has no vm-%s: it is older than vmctl); load a newer lvmm",
			  what, what);
		break;
	default:
		vmctl_nl_report(nl, r, what, vm);
		break;
	}
	return r;
}

uint64_t vmctl_elapsed_ns(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000ULL + t.tv_nsec -
	       t0->tv_nsec;
}

struct nl_msg *vmctl_nl_msg(struct vmctl_nl *nl, uint8_t cmd, int flags)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, flags,
			 cmd, LVMM_FAMILY_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

struct nl_msg *vmctl_nl_vm_msg(struct vmctl_nl *nl, uint8_t cmd, int flags,
			       uint32_t vm_id)
{
	struct nl_msg *msg = vmctl_nl_msg(nl, cmd, flags);

	if (msg && nla_put_u32(msg, LVMM_A_VM_ID, vm_id)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

struct vmctl_req {
	struct vmctl_nl *nl;
	int err;		/* 1 while waiting, then 0 or -errno */
	int (*cb)(struct nl_msg *msg, void *arg);
	void *arg;
};

/* The extack TLVs after an error (or a dump's DONE), at @tlvs. */
static void vmctl_nl_extack(struct vmctl_nl *nl, void *tlvs, int len)
{
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];

	if (len <= 0 || nla_parse(tb, NLMSGERR_ATTR_MAX, tlvs, len, NULL))
		return;
	if (tb[NLMSGERR_ATTR_MSG])
		snprintf(nl->ext_msg, sizeof(nl->ext_msg), "%s",
			 (char *)nla_data(tb[NLMSGERR_ATTR_MSG]));
}

static int vmctl_nl_error_cb(struct sockaddr_nl *nla, struct nlmsgerr *e,
			     void *arg)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)e - 1;
	struct vmctl_req *req = arg;
	int off = NLMSG_HDRLEN + sizeof(*e);

	(void)nla;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
		if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
			off += e->msg.nlmsg_len - NLMSG_HDRLEN;
		vmctl_nl_extack(req->nl, (char *)nlh + off,
				(int)nlh->nlmsg_len - off);
	}
	req->err = e->error;
	return NL_STOP;
}

static int vmctl_nl_finish_cb(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct vmctl_req *req = arg;
	int err = 0;

	/* A dump that failed says so in its DONE, with the extack after. */
	if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(int)) {
		memcpy(&err, nlmsg_data(nlh), sizeof(err));
		if (nlh->nlmsg_flags & NLM_F_ACK_TLVS)
			vmctl_nl_extack(req->nl,
					(char *)nlmsg_data(nlh) + sizeof(int),
					(int)nlh->nlmsg_len - NLMSG_HDRLEN -
					(int)sizeof(int));
	}
	req->err = err > 0 ? -err : err;
	return NL_STOP;
}

static int vmctl_nl_ack_cb(struct nl_msg *msg, void *arg)
{
	struct vmctl_req *req = arg;

	(void)msg;
	req->err = 0;
	return NL_STOP;
}

static int vmctl_nl_valid_cb(struct nl_msg *msg, void *arg)
{
	struct vmctl_req *req = arg;

	return req->cb ? req->cb(msg, req->arg) : NL_OK;
}

int vmctl_nl_exec(struct vmctl_nl *nl, struct nl_msg *msg,
		  int (*cb)(struct nl_msg *msg, void *arg), void *arg)
{
	struct vmctl_req req = { .nl = nl, .err = 1, .cb = cb, .arg = arg };
	struct nl_cb *c;
	int r;

	nl->ext_msg[0] = '\0';
	c = nl_cb_alloc(NL_CB_DEFAULT);
	if (!c) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nl_cb_err(c, NL_CB_CUSTOM, vmctl_nl_error_cb, &req);
	nl_cb_set(c, NL_CB_FINISH, NL_CB_CUSTOM, vmctl_nl_finish_cb, &req);
	nl_cb_set(c, NL_CB_ACK, NL_CB_CUSTOM, vmctl_nl_ack_cb, &req);
	nl_cb_set(c, NL_CB_VALID, NL_CB_CUSTOM, vmctl_nl_valid_cb, &req);
	r = nl_send_auto(nl->sk, msg);
	nlmsg_free(msg);
	if (r < 0) {
		req.err = -EIO;
		goto out;
	}
	while (req.err > 0) {
		r = nl_recvmsgs(nl->sk, c);
		if (r < 0 && req.err > 0) {
			req.err = r == -NLE_NOMEM ? -ENOMEM : -EIO;
			snprintf(nl->ext_msg, sizeof(nl->ext_msg), "%s",
				 nl_geterror(r));
		}
	}
out:
	nl_cb_put(c);
	return req.err;
}

int vmctl_nl_parse_vm(struct nl_msg *msg, struct vmctl_vm *vm)
{
	struct nlattr *tb[LVMM_A_VM_MAX + 1];
	int r;

	memset(vm, 0, sizeof(*vm));
	r = genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_VM_MAX,
			  vmctl_vm_policy);
	if (r < 0 || !tb[LVMM_A_VM_ID])
		return -EPROTO;
	vm->id = nla_get_u32(tb[LVMM_A_VM_ID]);
	if (tb[LVMM_A_VM_NAME])
		snprintf(vm->name, sizeof(vm->name), "%s",
			 nla_get_string(tb[LVMM_A_VM_NAME]));
#define GET(attr, field, type)						\
	do {								\
		if (tb[attr])						\
			vm->field = nla_get_##type(tb[attr]);		\
	} while (0)
	GET(LVMM_A_VM_OWNER_UID, owner_uid, u32);
	GET(LVMM_A_VM_CREATOR_PID, creator_pid, u32);
	GET(LVMM_A_VM_STATE, state, u32);
	GET(LVMM_A_VM_NR_VCPUS, nr_vcpus, u32);
	GET(LVMM_A_VM_MEM_SIZE, mem_size, u64);
	GET(LVMM_A_VM_CREATED_NS, created_ns, u64);
	GET(LVMM_A_VM_GUEST_NS, guest_ns, u64);
	GET(LVMM_A_VM_EVENT, event, u32);
	GET(LVMM_A_VM_VCPU_ID, vcpu_id, u32);
	GET(LVMM_A_VM_SAVE_BYTES, save_bytes, u64);
	GET(LVMM_A_VM_SAVE_TOTAL, save_total, u64);
	GET(LVMM_A_VM_SAVE_ERROR, save_error, u32);
	GET(LVMM_A_VM_PAUSE_NS, pause_ns, u64);
	GET(LVMM_A_VM_MIGRATE_ITERATION, mig.iteration, u32);
	GET(LVMM_A_VM_MIGRATE_SENT, mig.sent, u64);
	GET(LVMM_A_VM_MIGRATE_LEFT, mig.left, u64);
	GET(LVMM_A_VM_MIGRATE_DIRTY_RATE, mig.dirty_rate, u64);
	GET(LVMM_A_VM_MIGRATE_BANDWIDTH, mig.bandwidth, u64);
	GET(LVMM_A_VM_MIGRATE_EXPECTED_NS, mig.expected_ns, u64);
	GET(LVMM_A_VM_MIGRATE_THROTTLE, mig.throttle, u32);
	GET(LVMM_A_VM_MIGRATE_OUTCOME, mig.outcome, u32);
	GET(LVMM_A_VM_MIGRATE_ERROR, mig.error, u32);
	GET(LVMM_A_VM_MIGRATE_PEER_ERROR, mig.peer_error, u32);
	GET(LVMM_A_VM_MIGRATE_TOTAL_NS, mig.total_ns, u64);
	GET(LVMM_A_VM_MIGRATE_DOWNTIME_NS, mig.downtime_ns, u64);
#undef GET
	vm->has_vcpu_id = tb[LVMM_A_VM_VCPU_ID];
	vm->has_save = tb[LVMM_A_VM_SAVE_BYTES];
	/* vm-get of a VM kept paused carries an outcome too: no event. */
	vm->has_migrate = tb[LVMM_A_VM_MIGRATE_ITERATION];
	return 0;
}

struct vmctl_vm_list {
	struct vmctl_vm *vms;
	size_t n, cap;
	int err;
};

static int vmctl_vm_dump_cb(struct nl_msg *msg, void *arg)
{
	struct vmctl_vm_list *l = arg;
	struct vmctl_vm *v;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		v = realloc(l->vms, l->cap * sizeof(*v));
		if (!v) {
			l->err = -ENOMEM;
			return NL_STOP;
		}
		l->vms = v;
	}
	if (vmctl_nl_parse_vm(msg, &l->vms[l->n]) == 0)
		l->n++;
	return NL_OK;
}

static int vmctl_vm_cmp(const void *a, const void *b)
{
	const struct vmctl_vm *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int vmctl_vm_dump(struct vmctl_nl *nl, struct vmctl_vm **vms, size_t *n)
{
	struct vmctl_vm_list l = {};
	struct nl_msg *msg;
	int r;

	msg = vmctl_nl_msg(nl, LVMM_CMD_VM_GET, NLM_F_DUMP);
	if (!msg)
		return -ENOMEM;
	r = vmctl_nl_exec(nl, msg, vmctl_vm_dump_cb, &l);
	if (!r)
		r = l.err;
	if (r) {
		free(l.vms);
		vmctl_nl_report(nl, r, "list VMs", NULL);
		return r;
	}
	if (l.n)
		qsort(l.vms, l.n, sizeof(*l.vms), vmctl_vm_cmp);
	*vms = l.vms;
	*n = l.n;
	return 0;
}

static int vmctl_vm_get_cb(struct nl_msg *msg, void *arg)
{
	vmctl_nl_parse_vm(msg, arg);
	return NL_OK;
}

int vmctl_vm_get(struct vmctl_nl *nl, uint32_t id, const char *name,
		 struct vmctl_vm *vm)
{
	struct nl_msg *msg;

	msg = vmctl_nl_msg(nl, LVMM_CMD_VM_GET, 0);
	if (!msg)
		return -ENOMEM;
	if (name ? nla_put_string(msg, LVMM_A_VM_NAME, name) :
		   nla_put_u32(msg, LVMM_A_VM_ID, id)) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	memset(vm, 0, sizeof(*vm));
	return vmctl_nl_exec(nl, msg, vmctl_vm_get_cb, vm);
}

static bool vmctl_name_valid(const char *s)
{
	if (!*s || strlen(s) >= LVMM_VM_NAME_LEN)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return false;
	return true;
}

int vmctl_vm_lookup(struct vmctl_nl *nl, const char *arg, struct vmctl_vm *vm)
{
	unsigned long id;
	char *end;
	int r = -ENOENT;

	errno = 0;
	id = strtoul(arg, &end, 10);
	/* A number is an id first, then maybe a name. */
	if (*arg && isdigit((unsigned char)*arg) && !*end && !errno &&
	    id > 0 && id <= UINT32_MAX) {
		r = vmctl_vm_get(nl, id, NULL, vm);
		if (r != -ENOENT)
			goto out;
	}
	if (!vmctl_name_valid(arg)) {
		vmctl_err("'%s' is not a VM name or id (names are up to %d letters, digits, '.', '_' or '-'); see vmctl list",
			  arg, LVMM_VM_NAME_LEN - 1);
		return -EINVAL;
	}
	r = vmctl_vm_get(nl, 0, arg, vm);
out:
	if (r == -ENOENT)
		vmctl_err("no VM named %s; see vmctl list", arg);
	else if (r)
		vmctl_nl_report(nl, r, "look up", NULL);
	return r;
}

int vmctl_nl_open_vm(struct vmctl_nl *nl, const char *arg,
		     struct vmctl_vm *vm)
{
	int r = vmctl_nl_open(nl);

	if (r)
		return r;
	r = vmctl_vm_lookup(nl, arg, vm);
	if (r)
		vmctl_nl_close(nl);
	return r;
}

void vmctl_nl_report(struct vmctl_nl *nl, int err, const char *what,
		     const struct vmctl_vm *vm)
{
	const char *name = vm ? vm->name : "";
	const char *sp = vm ? " " : "";

	switch (err) {
	case -EPERM:
	case -EACCES:
		if (vm)
			vmctl_err("not permitted to %s %s: it belongs to uid %u (run as its owner or with CAP_NET_ADMIN)",
				  what, name, vm->owner_uid);
		else
			vmctl_err("not permitted to %s (run as root or with CAP_NET_ADMIN)",
				  what);
		return;
	case -ENOENT:
		vmctl_err("cannot %s%s%s: %s; see vmctl list", what, sp, name,
			  nl->ext_msg[0] ? nl->ext_msg : "no such VM");
		return;
	default:
		break;
	}
	if (nl->ext_msg[0])
		vmctl_err("cannot %s%s%s: %s (%s)", what, sp, name,
			  nl->ext_msg, strerror(-err));
	else
		vmctl_err("cannot %s%s%s: %s", what, sp, name, strerror(-err));
}

const char *vmctl_vm_state_str(uint32_t state)
{
	static const char *const s[] = {
		[LVMM_VM_STATE_CREATED] = "created",
		[LVMM_VM_STATE_RUNNING] = "running",
		[LVMM_VM_STATE_PAUSED] = "paused",
		[LVMM_VM_STATE_SHUTDOWN] = "shutdown",
		[LVMM_VM_STATE_DESTROYED] = "destroyed",
	};

	return state < ARRAY_SIZE(s) && s[state] ? s[state] :
							       "unknown";
}

const char *vmctl_vcpu_state_str(uint32_t state)
{
	static const char *const s[] = {
		[LVMM_VCPU_STATE_IDLE] = "idle",
		[LVMM_VCPU_STATE_RUNNING] = "running",
		[LVMM_VCPU_STATE_PAUSED] = "paused",
		[LVMM_VCPU_STATE_HALTED] = "halted",
	};

	return state < ARRAY_SIZE(s) && s[state] ? s[state] :
							       "unknown";
}

const char *vmctl_event_str(uint32_t event)
{
	static const char *const s[] = {
		[LVMM_EVENT_CREATED] = "created",
		[LVMM_EVENT_DESTROYED] = "destroyed",
		[LVMM_EVENT_PAUSED] = "paused",
		[LVMM_EVENT_RESUMED] = "resumed",
		[LVMM_EVENT_SHUTDOWN] = "shutdown",
		[LVMM_EVENT_SCHED] = "sched",
		[LVMM_EVENT_PIN_BROKEN] = "pin-broken",
		[LVMM_EVENT_PIN_RESTORED] = "pin-restored",
		[LVMM_EVENT_SAVE_PROGRESS] = "save-progress",
		[LVMM_EVENT_SAVED] = "saved",
		[LVMM_EVENT_MIGRATE_PROGRESS] = "migrate-progress",
		[LVMM_EVENT_MIGRATED] = "migrated",
	};

	return event < ARRAY_SIZE(s) && s[event] ? s[event] :
							       "unknown";
}

const char *vmctl_migrate_outcome_str(uint32_t outcome)
{
	static const char *const s[] = {
		[LVMM_MIGRATE_MOVED] = "moved",
		[LVMM_MIGRATE_STAYED] = "stayed",
		[LVMM_MIGRATE_UNKNOWN] = "unknown",
	};

	return outcome < ARRAY_SIZE(s) && s[outcome] ? s[outcome] :
						       "unknown";
}

void vmctl_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void vmctl_json_vm(FILE *f, const struct vmctl_vm *vm)
{
	fprintf(f, "\"id\":%" PRIu32 ",\"name\":", vm->id);
	vmctl_json_str(f, vm->name);
	fprintf(f, ",\"state\":\"%s\",\"owner_uid\":%" PRIu32
		",\"creator_pid\":%" PRIu32 ",\"vcpus\":%" PRIu32
		",\"mem_bytes\":%" PRIu64 ",\"created_ns\":%" PRIu64
		",\"guest_ns\":%" PRIu64,
		vmctl_vm_state_str(vm->state), vm->owner_uid, vm->creator_pid,
		vm->nr_vcpus, vm->mem_size, vm->created_ns, vm->guest_ns);
}

const char *vmctl_fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char units[] = "BKMGTPE";
	double v = bytes;
	int u = 0;

	while (v >= 1024 && u < 6) {
		v /= 1024;
		u++;
	}
	if (!u || v >= 100 || v == (uint64_t)v)
		snprintf(buf, len, "%.0f%c", v, units[u]);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
	return buf;
}

const char *vmctl_fmt_ns(char *buf, size_t len, uint64_t ns)
{
	uint64_t cs = ns / 10000000, s = cs / 100;

	if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64,
			 s / 3600, s / 60 % 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRIu64 ":%02" PRIu64 ".%02" PRIu64,
			 s / 60, s % 60, cs % 100);
	else
		snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 "s", s, cs % 100);
	return buf;
}

bool vmctl_parse_count(const char *s, unsigned long *n)
{
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	*n = strtoul(s, &end, 10);
	return !*end && !errno && *n > 0;
}

bool vmctl_parse_u32(const char *what, const char *s, uint32_t min,
		     uint32_t max, const char *unit, uint32_t *v)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end) {
		vmctl_err("%s '%s' is not a number; give %" PRIu32 " to %"
			  PRIu32 "%s", what, s, min, max, unit);
		return false;
	}
	if (errno || n < min || n > max) {
		vmctl_err("%s %s is out of range; give %" PRIu32 " to %" PRIu32
			  "%s", what, s, min, max, unit);
		return false;
	}
	*v = n;
	return true;
}

/* One CPU number at *@p, then *@p is past it; NULL, or why not. */
static const char *vmctl_cpu_num(const char **p, unsigned long *n,
				 char *why, size_t len)
{
	char *end;

	if (!isdigit((unsigned char)**p)) {
		if (**p)
			snprintf(why, len, "'%s' does not start with a CPU number",
				 *p);
		else
			snprintf(why, len, "a CPU number is missing at the end");
		return why;
	}
	errno = 0;
	*n = strtoul(*p, &end, 10);
	if (errno || *n >= VMCTL_MAX_CPUS) {
		snprintf(why, len, "CPU %.*s is past CPU %d", (int)(end - *p),
			 *p, VMCTL_MAX_CPUS - 1);
		return why;
	}
	*p = end;
	return NULL;
}

/* One "N" or "N-M" at *@p, into @c; NULL, or why not. */
static const char *vmctl_cpus_range(const char **p, struct vmctl_cpus *c,
				    char *why, size_t len)
{
	unsigned long a, b;

	if (vmctl_cpu_num(p, &a, why, len))
		return why;
	b = a;
	if (**p == '-') {
		(*p)++;
		if (vmctl_cpu_num(p, &b, why, len))
			return why;
		if (b < a) {
			snprintf(why, len, "the range %lu-%lu goes down", a, b);
			return why;
		}
	}
	for (; a <= b; a++)
		c->map[a / 8] |= 1U << (a % 8);
	if (b / 8 >= c->len)
		c->len = b / 8 + 1;
	return NULL;
}

bool vmctl_cpus_parse(const char *what, const char *s, struct vmctl_cpus *c)
{
	const char *p = s;
	char why[96];

	memset(c, 0, sizeof(*c));
	if (!*s) {
		snprintf(why, sizeof(why), "it is empty");
		goto bad;
	}
	for (;;) {
		if (vmctl_cpus_range(&p, c, why, sizeof(why)))
			goto bad;
		if (!*p)
			return true;
		if (*p++ != ',') {
			snprintf(why, sizeof(why), "'%s' follows a CPU", p - 1);
			goto bad;
		}
	}
bad:
	vmctl_err("%s '%s' is not a CPU list: %s; write CPUs as in 0-3,5,7-8 (0 to %d)",
		  what, s, why, VMCTL_MAX_CPUS - 1);
	return false;
}

void vmctl_cpus_from_attr(struct vmctl_cpus *c, const struct nlattr *a)
{
	size_t len = nla_len(a);

	memset(c, 0, sizeof(*c));
	if (len > sizeof(c->map))
		len = sizeof(c->map);
	memcpy(c->map, nla_data(a), len);
	while (len && !c->map[len - 1])
		len--;
	c->len = len;
}

static bool vmctl_cpu_isset(const struct vmctl_cpus *c, size_t cpu)
{
	return cpu / 8 < c->len && c->map[cpu / 8] & (1U << (cpu % 8));
}

void vmctl_cpus_print(FILE *f, const struct vmctl_cpus *c)
{
	size_t i, j;
	bool first = true;

	if (!c->len)
		fputc('-', f);
	for (i = 0; i < c->len * 8; i = j + 1) {
		j = i;
		if (!vmctl_cpu_isset(c, i))
			continue;
		while (vmctl_cpu_isset(c, j + 1))
			j++;
		fprintf(f, "%s%zu", first ? "" : ",", i);
		if (j > i)
			fprintf(f, "-%zu", j);
		first = false;
	}
}

void vmctl_json_cpus(FILE *f, const struct vmctl_cpus *c)
{
	if (!c->len) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	vmctl_cpus_print(f, c);
	fputc('"', f);
}
