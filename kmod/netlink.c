// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: the "lvmm" generic netlink family -- the management plane.
 *
 * Written from Documentation/netlink/specs/lvmm.yaml.  Who may do what:
 *  - anyone may list VMs and receive events (vm-get: names, owners and
 *    states, as ps shows processes);
 *  - a VM's details (vcpu-get: threads; stats-get) and every change of
 *    its state (pause, resume, destroy) need its owner or CAP_NET_ADMIN,
 *    else EPERM -- KVM, too, shows its statistics to root only.
 * VMs live in the network namespace of the process that created them and
 * are visible only there.
 */
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/sched.h>
#include <linux/user_namespace.h>
#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/sock.h>

#include "lvmm.h"

static struct genl_family lvmm_nl_family;

enum { LVMM_NL_MCGRP_EVENTS };

static const struct genl_multicast_group lvmm_nl_mcgrps[] = {
	[LVMM_NL_MCGRP_EVENTS] = { .name = LVMM_MCGRP_EVENTS },
};

/* Requests name a VM; everything else in the set is output only. */
static const struct nla_policy lvmm_vm_policy[LVMM_A_VM_MAX + 1] = {
	[LVMM_A_VM_ID]		= NLA_POLICY_MIN(NLA_U32, 1),
	[LVMM_A_VM_NAME]	= { .type = NLA_NUL_STRING,
				    .len = LVMM_VM_NAME_LEN - 1 },
	[LVMM_A_VM_OWNER_UID]	= { .type = NLA_REJECT },
	[LVMM_A_VM_CREATOR_PID]	= { .type = NLA_REJECT },
	[LVMM_A_VM_STATE]	= { .type = NLA_REJECT },
	[LVMM_A_VM_NR_VCPUS]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MEM_SIZE]	= { .type = NLA_REJECT },
	[LVMM_A_VM_CREATED_NS]	= { .type = NLA_REJECT },
	[LVMM_A_VM_GUEST_NS]	= { .type = NLA_REJECT },
	[LVMM_A_VM_EVENT]	= { .type = NLA_REJECT },
	[LVMM_A_VM_PAD]		= { .type = NLA_REJECT },
};

/*
 * Rights are those of whoever opened the requesting socket, as for
 * netlink_capable(): a socket passed to another process carries its
 * opener's rights, no more and no less, whoever sends on it.
 */
static bool lvmm_nl_allowed(const struct sk_buff *skb, struct lvmm_vm *vm)
{
	const struct sock *sk = NETLINK_CB(skb).sk;
	const struct file *file = sk && sk->sk_socket ? sk->sk_socket->file :
							 NULL;

	return (file && uid_eq(vm->owner, file->f_cred->euid)) ||
	       netlink_ns_capable(skb, sock_net(skb->sk)->user_ns,
				  CAP_NET_ADMIN);
}

/*
 * The VM a request names, with a reference; ERR_PTR with an extack
 * message.  @owner: the caller must own it or have CAP_NET_ADMIN.
 */
static struct lvmm_vm *lvmm_nl_vm(struct sk_buff *skb, struct nlattr **attrs,
				  struct netlink_ext_ack *extack, bool owner)
{
	struct nlattr *id = attrs[LVMM_A_VM_ID], *name = attrs[LVMM_A_VM_NAME];
	struct lvmm_vm *vm;

	if (!id && !name) {
		NL_SET_ERR_MSG(extack, "name the VM: give its id or its name");
		return ERR_PTR(-EINVAL);
	}
	if (id && name) {
		NL_SET_ERR_MSG_ATTR(extack, name,
				    "give the VM's id or its name, not both");
		return ERR_PTR(-EINVAL);
	}
	vm = lvmm_vm_find(sock_net(skb->sk), id ? nla_get_u32(id) : 0,
			  name ? nla_data(name) : NULL);
	if (!vm) {
		NL_SET_ERR_MSG_ATTR(extack, id ?: name, "no such VM");
		return ERR_PTR(-ENOENT);
	}
	if (owner && !lvmm_nl_allowed(skb, vm)) {
		lvmm_vm_put(vm);
		NL_SET_ERR_MSG(extack,
			       "not permitted: the VM belongs to another user (needs CAP_NET_ADMIN)");
		return ERR_PTR(-EPERM);
	}
	return vm;
}

static u64 lvmm_vm_guest_ns(struct lvmm_vm *vm)
{
	u64 ns = 0;
	int i;

	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (vcpu)
			ns += READ_ONCE(vcpu->stat.guest_ns);
	}
	return ns;
}

/*
 * A reply gives the owner's uid and the creator's pid as the requester
 * sees them.  An event has no single reader: it gives them as seen from
 * the VM's network namespace's user namespace and from the creator's own
 * pid namespace, whichever task's action fired it.
 */
static int lvmm_nl_fill_vm(struct sk_buff *skb, struct lvmm_vm *vm, u32 portid,
			   u32 seq, int flags, u8 cmd, int event)
{
	struct user_namespace *user_ns = event ? vm->net->user_ns :
						 current_user_ns();
	pid_t pid = event ? pid_nr_ns(vm->creator, ns_of_pid(vm->creator)) :
			    pid_vnr(vm->creator);
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &lvmm_nl_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u32(skb, LVMM_A_VM_ID, vm->id) ||
	    nla_put_string(skb, LVMM_A_VM_NAME, vm->name) ||
	    nla_put_u32(skb, LVMM_A_VM_OWNER_UID,
			from_kuid_munged(user_ns, vm->owner)) ||
	    nla_put_u32(skb, LVMM_A_VM_CREATOR_PID, pid) ||
	    nla_put_u32(skb, LVMM_A_VM_STATE, lvmm_vm_state(vm)) ||
	    nla_put_u32(skb, LVMM_A_VM_NR_VCPUS, READ_ONCE(vm->nr_vcpus)) ||
	    nla_put_u64_64bit(skb, LVMM_A_VM_MEM_SIZE, READ_ONCE(vm->mem_size),
			      LVMM_A_VM_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_VM_CREATED_NS, vm->created_ns,
			      LVMM_A_VM_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_VM_GUEST_NS, lvmm_vm_guest_ns(vm),
			      LVMM_A_VM_PAD) ||
	    (event && nla_put_u32(skb, LVMM_A_VM_EVENT, event))) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

static int lvmm_nl_vm_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct lvmm_vm *vm;
	struct sk_buff *msg;
	int r;

	vm = lvmm_nl_vm(skb, info->attrs, info->extack, false);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	r = msg ? lvmm_nl_fill_vm(msg, vm, info->snd_portid, info->snd_seq, 0,
				  LVMM_CMD_VM_GET, 0) : -ENOMEM;
	lvmm_vm_put(vm);
	if (r) {
		nlmsg_free(msg);
		return r;
	}
	return genlmsg_reply(msg, info);
}

/* cb->args[0]: the next VM id to look at. */
static int lvmm_nl_vm_get_dumpit(struct sk_buff *skb,
				 struct netlink_callback *cb)
{
	u32 id = cb->args[0] ?: 1;
	struct lvmm_vm *vm;
	int r = 0;

	while ((vm = lvmm_vm_next(sock_net(skb->sk), &id))) {
		r = lvmm_nl_fill_vm(skb, vm, NETLINK_CB(cb->skb).portid,
				    cb->nlh->nlmsg_seq, NLM_F_MULTI,
				    LVMM_CMD_VM_GET, 0);
		lvmm_vm_put(vm);
		if (r)
			break;
		id++;
	}
	cb->args[0] = id;
	/* A full skb ends this round; the cursor starts the next one. */
	return r == -EMSGSIZE && skb->len ? skb->len : r ?: skb->len;
}

static int lvmm_nl_fill_vcpu(struct sk_buff *skb, struct lvmm_vcpu *vcpu,
			     struct netlink_callback *cb)
{
	struct lvmm_vcpu_stat *st = &vcpu->stat;
	u64 guest = READ_ONCE(st->guest_ns), run = READ_ONCE(st->run_ns);
	struct pid *pid;
	u32 tid;
	void *hdr;

	rcu_read_lock();
	pid = rcu_dereference(vcpu->pid);
	tid = pid ? pid_vnr(pid) : 0;
	rcu_read_unlock();

	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &lvmm_nl_family, NLM_F_MULTI, LVMM_CMD_VCPU_GET);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u32(skb, LVMM_A_VCPU_VM_ID, vcpu->vm->id) ||
	    nla_put_u32(skb, LVMM_A_VCPU_ID, vcpu->id) ||
	    nla_put_u32(skb, LVMM_A_VCPU_STATE, READ_ONCE(vcpu->state)) ||
	    nla_put_u32(skb, LVMM_A_VCPU_TID, tid) ||
	    (READ_ONCE(vcpu->cpu) >= 0 &&
	     nla_put_u32(skb, LVMM_A_VCPU_CPU, READ_ONCE(vcpu->cpu))) ||
	    nla_put_u64_64bit(skb, LVMM_A_VCPU_GUEST_NS, guest,
			      LVMM_A_VCPU_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_VCPU_HOST_NS,
			      run > guest ? run - guest : 0, LVMM_A_VCPU_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_VCPU_EXITS, READ_ONCE(st->exits),
			      LVMM_A_VCPU_PAD)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* cb->args[0]: the next vCPU id. */
static int lvmm_nl_vcpu_get_dumpit(struct sk_buff *skb,
				   struct netlink_callback *cb)
{
	const struct genl_dumpit_info *info = genl_dumpit_info(cb);
	struct lvmm_vm *vm;
	int i, r = 0;

	vm = lvmm_nl_vm(cb->skb, info->attrs, cb->extack, true);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	for (i = cb->args[0]; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (!vcpu)
			continue;
		r = lvmm_nl_fill_vcpu(skb, vcpu, cb);
		if (r)
			break;
	}
	cb->args[0] = i;
	lvmm_vm_put(vm);
	return r == -EMSGSIZE && skb->len ? skb->len : r ?: skb->len;
}

static int lvmm_nl_put_stats(struct sk_buff *skb, const struct lvmm_vcpu_stat *s)
{
	u64 other = s->exits - s->io - s->hlt - s->hypercall - s->cpuid -
		    s->msr - s->intr - s->npf;

	return nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS, s->exits,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS_IO, s->io,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS_MMIO, s->mmio,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS_HLT, s->hlt,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS_HYPERCALL,
				 s->hypercall, LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS_CPUID, s->cpuid,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS_MSR, s->msr,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS_INTR, s->intr,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_EXITS_OTHER,
				 (s64)other > 0 ? other : 0, LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_NPF, s->npf,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_IRQS, s->irqs,
				 LVMM_A_STATS_PAD) ||
	       nla_put_u64_64bit(skb, LVMM_A_STATS_GUEST_NS, s->guest_ns,
				 LVMM_A_STATS_PAD) ? -EMSGSIZE : 0;
}

/* A racy snapshot: each counter is read once, whole. */
static void lvmm_stat_read(struct lvmm_vcpu_stat *dst,
			   const struct lvmm_vcpu_stat *src)
{
	const u64 *s = (const u64 *)src;
	u64 *d = (u64 *)dst;
	int i;

	for (i = 0; i < sizeof(*src) / sizeof(u64); i++)
		d[i] = READ_ONCE(s[i]);
}

static int lvmm_nl_fill_stats(struct sk_buff *skb, struct lvmm_vm *vm,
			      struct genl_info *info)
{
	struct lvmm_vcpu_stat total = {}, one;
	struct nlattr *nest;
	void *hdr;
	int i, j;

	hdr = genlmsg_put(skb, info->snd_portid, info->snd_seq,
			  &lvmm_nl_family, 0, LVMM_CMD_STATS_GET);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u32(skb, LVMM_A_STATS_VM_ID, vm->id))
		goto cancel;
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (!vcpu)
			continue;
		lvmm_stat_read(&one, &vcpu->stat);
		for (j = 0; j < sizeof(one) / sizeof(u64); j++)
			((u64 *)&total)[j] += ((u64 *)&one)[j];
		nest = nla_nest_start(skb, LVMM_A_STATS_VCPU);
		if (!nest || nla_put_u32(skb, LVMM_A_STATS_VCPU_ID, vcpu->id) ||
		    lvmm_nl_put_stats(skb, &one))
			goto cancel;
		nla_nest_end(skb, nest);
	}
	if (lvmm_nl_put_stats(skb, &total))
		goto cancel;
	genlmsg_end(skb, hdr);
	return 0;
cancel:
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

static int lvmm_nl_stats_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct lvmm_vm *vm;
	struct sk_buff *msg;
	size_t size;
	int r;

	vm = lvmm_nl_vm(skb, info->attrs, info->extack, true);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	/* Each vCPU's nest: 12 counters and its id, with headers. */
	size = NLMSG_DEFAULT_SIZE + (READ_ONCE(vm->nr_vcpus) + 1) * 256;
	msg = nlmsg_new(size, GFP_KERNEL);
	r = msg ? lvmm_nl_fill_stats(msg, vm, info) : -ENOMEM;
	lvmm_vm_put(vm);
	if (r) {
		nlmsg_free(msg);
		return r;
	}
	return genlmsg_reply(msg, info);
}

/* pause, resume, destroy: the owner or CAP_NET_ADMIN. */
static int lvmm_nl_change(struct sk_buff *skb, struct genl_info *info,
			  int (*op)(struct lvmm_vm *vm))
{
	struct lvmm_vm *vm;
	int r;

	vm = lvmm_nl_vm(skb, info->attrs, info->extack, true);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	r = op(vm);
	if (r == -ENOENT)
		NL_SET_ERR_MSG(info->extack, "the VM has been destroyed");
	lvmm_vm_put(vm);
	return r;
}

static int lvmm_nl_vm_pause_doit(struct sk_buff *skb, struct genl_info *info)
{
	int r = lvmm_nl_change(skb, info, lvmm_vm_pause);

	if (r == -EALREADY)
		NL_SET_ERR_MSG(info->extack, "the VM is already paused");
	return r;
}

static int lvmm_nl_vm_resume_doit(struct sk_buff *skb, struct genl_info *info)
{
	int r = lvmm_nl_change(skb, info, lvmm_vm_resume);

	if (r == -EALREADY)
		NL_SET_ERR_MSG(info->extack, "the VM is not paused");
	return r;
}

static int lvmm_nl_vm_destroy_doit(struct sk_buff *skb, struct genl_info *info)
{
	return lvmm_nl_change(skb, info, lvmm_vm_destroy);
}

static const struct genl_ops lvmm_nl_ops[] = {
	{
		.cmd	= LVMM_CMD_VM_GET,
		.doit	= lvmm_nl_vm_get_doit,
		.dumpit	= lvmm_nl_vm_get_dumpit,
	},
	{
		.cmd	= LVMM_CMD_VCPU_GET,
		.dumpit	= lvmm_nl_vcpu_get_dumpit,
	},
	{
		.cmd	= LVMM_CMD_STATS_GET,
		.doit	= lvmm_nl_stats_get_doit,
	},
	{
		.cmd	= LVMM_CMD_VM_PAUSE,
		.doit	= lvmm_nl_vm_pause_doit,
	},
	{
		.cmd	= LVMM_CMD_VM_RESUME,
		.doit	= lvmm_nl_vm_resume_doit,
	},
	{
		.cmd	= LVMM_CMD_VM_DESTROY,
		.doit	= lvmm_nl_vm_destroy_doit,
	},
};

static struct genl_family lvmm_nl_family __ro_after_init = {
	.name		= LVMM_FAMILY_NAME,
	.version	= LVMM_FAMILY_VERSION,
	.maxattr	= LVMM_A_VM_MAX,
	.policy		= lvmm_vm_policy,
	.netnsok	= true,
	.module		= THIS_MODULE,
	.ops		= lvmm_nl_ops,
	.n_ops		= ARRAY_SIZE(lvmm_nl_ops),
	.mcgrps		= lvmm_nl_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(lvmm_nl_mcgrps),
};

/* Tell the events group, in the VM's namespace. */
void lvmm_nl_event(struct lvmm_vm *vm, int event)
{
	struct sk_buff *msg;

	if (!genl_has_listeners(&lvmm_nl_family, vm->net, LVMM_NL_MCGRP_EVENTS))
		return;
	msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return;
	if (lvmm_nl_fill_vm(msg, vm, 0, 0, 0, LVMM_CMD_VM_EVENT, event)) {
		nlmsg_free(msg);
		return;
	}
	genlmsg_multicast_netns(&lvmm_nl_family, vm->net, msg, 0,
				LVMM_NL_MCGRP_EVENTS, GFP_KERNEL);
}

int lvmm_netlink_init(void)
{
	return genl_register_family(&lvmm_nl_family);
}

void lvmm_netlink_exit(void)
{
	genl_unregister_family(&lvmm_nl_family);
}
