// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: the "lvmm" generic netlink family -- the management plane.
 *
 * Written from Documentation/netlink/specs/lvmm.yaml.  Who may do what:
 *  - anyone may list VMs and receive events (vm-get: names, owners and
 *    states, as ps shows processes);
 *  - a VM's details (vcpu-get: threads; stats-get; sched-get) and every
 *    change of its state (pause, resume, destroy) need its owner or
 *    CAP_NET_ADMIN, else EPERM -- KVM, too, shows its statistics to root
 *    only;
 *  - sched-set lets the owner ask for less, as nice does; more needs
 *    CAP_NET_ADMIN (sched.c decides).
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

/* NLA_POLICY_RANGE() holds an s16: 60000 ms needs a range of its own. */
static struct netlink_range_validation lvmm_downtime_range = {
	.min = 1, .max = LVMM_MIGRATE_DOWNTIME_MS_MAX,
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
	[LVMM_A_VM_VCPU_ID]	= { .type = NLA_REJECT },
	[LVMM_A_VM_SAVE_FD]	= { .type = NLA_U32 },
	[LVMM_A_VM_SAVE_STOP]	= { .type = NLA_FLAG },
	[LVMM_A_VM_SAVE_BYTES]	= { .type = NLA_REJECT },
	[LVMM_A_VM_SAVE_TOTAL]	= { .type = NLA_REJECT },
	[LVMM_A_VM_SAVE_ERROR]	= { .type = NLA_REJECT },
	[LVMM_A_VM_PAUSE_NS]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_FD]	= { .type = NLA_U32 },
	[LVMM_A_VM_MIGRATE_DOWNTIME_MS] =
		NLA_POLICY_FULL_RANGE(NLA_U32, &lvmm_downtime_range),
	[LVMM_A_VM_MIGRATE_MAX_BANDWIDTH] = { .type = NLA_U64 },
	[LVMM_A_VM_MIGRATE_MAX_ITER] =
		NLA_POLICY_RANGE(NLA_U32, 1, LVMM_MIGRATE_MAX_ITER_MAX),
	[LVMM_A_VM_MIGRATE_AUTO_CONVERGE] = { .type = NLA_FLAG },
	[LVMM_A_VM_MIGRATE_CHECKSUM] = { .type = NLA_FLAG },
	[LVMM_A_VM_MIGRATE_ITERATION]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_SENT]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_LEFT]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_DIRTY_RATE]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_BANDWIDTH]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_EXPECTED_NS]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_THROTTLE]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_OUTCOME]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_ERROR]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_PEER_ERROR]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_TOTAL_NS]	= { .type = NLA_REJECT },
	[LVMM_A_VM_MIGRATE_DOWNTIME_NS]	= { .type = NLA_REJECT },
};

static struct netlink_range_validation lvmm_weight_range = {
	.min = 1, .max = LVMM_SCHED_WEIGHT_MAX,
};

static struct netlink_range_validation lvmm_period_range = {
	.min = LVMM_SCHED_PERIOD_US_MIN, .max = LVMM_SCHED_PERIOD_US_MAX,
};

/*
 * A CPU bitmap: bit n of byte n / 8, up to x86's largest NR_CPUS (8192)
 * whatever this kernel's is, so that a CPU the host lacks gets a clear
 * "no such CPU" (lvmm_nl_parse_pin()) rather than a length error.
 */
#define LVMM_NL_CPUS_MAX	(8192 / BITS_PER_BYTE)

static const struct nla_policy lvmm_sched_vcpu_policy[LVMM_A_SCHED_VCPU_MAX + 1] = {
	[LVMM_A_SCHED_VCPU_ID]		= { .type = NLA_U32 },
	[LVMM_A_SCHED_VCPU_CPUS]	= { .type = NLA_BINARY,
					    .len = LVMM_NL_CPUS_MAX },
	[LVMM_A_SCHED_VCPU_PIN_BROKEN]	= { .type = NLA_REJECT },
};

/* sched-get and sched-set: the VM as in the vm set, then the policy. */
static const struct nla_policy lvmm_sched_policy[LVMM_A_SCHED_MAX + 1] = {
	[LVMM_A_SCHED_VM_ID]	= NLA_POLICY_MIN(NLA_U32, 1),
	[LVMM_A_SCHED_VM_NAME]	= { .type = NLA_NUL_STRING,
				    .len = LVMM_VM_NAME_LEN - 1 },
	[LVMM_A_SCHED_WEIGHT]	= NLA_POLICY_FULL_RANGE(NLA_U32,
							&lvmm_weight_range),
	[LVMM_A_SCHED_CAP]	= NLA_POLICY_MAX(NLA_U32, LVMM_SCHED_CAP_MAX),
	[LVMM_A_SCHED_PERIOD_US] = NLA_POLICY_FULL_RANGE(NLA_U32,
							 &lvmm_period_range),
	[LVMM_A_SCHED_RESERVE]	= NLA_POLICY_MAX(NLA_U32, LVMM_SCHED_CAP_MAX),
	[LVMM_A_SCHED_VCPU]	= NLA_POLICY_NESTED(lvmm_sched_vcpu_policy),
	[LVMM_A_SCHED_NICE]	= { .type = NLA_REJECT },
	[LVMM_A_SCHED_NR_PERIODS] = { .type = NLA_REJECT },
	[LVMM_A_SCHED_NR_THROTTLED] = { .type = NLA_REJECT },
	[LVMM_A_SCHED_THROTTLED_NS] = { .type = NLA_REJECT },
	[LVMM_A_SCHED_PAD]	= { .type = NLA_REJECT },
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

/*
 * A vCPU's guest time up to now: what its exits added, and the stay in
 * guest mode it is in.  Racy by the few instructions of an exit, never by
 * a stay: a vCPU that spins in the guest shows its time at once, not when
 * its next exit comes.
 */
static u64 lvmm_vcpu_guest_ns(struct lvmm_vcpu *vcpu)
{
	u64 ns, stay;
	int cpu;

	/*
	 * Again if an exit added its stay meanwhile: never counted twice.
	 * An exit caught between its two stores shows its stay only at the
	 * next reading.
	 */
	do {
		/*
		 * The exit path clears the CPU's stay and then adds it to
		 * the count, in that order (x86 keeps stores in order): read
		 * them the other way round.
		 */
		bool in_guest;

		ns = READ_ONCE(vcpu->stat.guest_ns);
		smp_rmb();	/* the count before the stay */
		in_guest = READ_ONCE(vcpu->mode) == LVMM_IN_GUEST_MODE;
		/* The entry writes the CPU, then the mode: read them back. */
		smp_rmb();
		cpu = READ_ONCE(vcpu->cpu);
		stay = in_guest && (unsigned int)cpu < nr_cpu_ids ?
		       lvmm_guest_stay_ns(cpu) : 0;
		smp_rmb();	/* the stay before the count again */
	} while (READ_ONCE(vcpu->stat.guest_ns) != ns);
	return ns + stay;
}

static u64 lvmm_vm_guest_ns(struct lvmm_vm *vm)
{
	u64 ns = 0;
	int i;

	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (vcpu)
			ns += lvmm_vcpu_guest_ns(vcpu);
	}
	return ns;
}

/*
 * A reply gives the owner's uid and the creator's pid as the requester
 * sees them.  An event has no single reader: it gives them as seen from
 * the VM's network namespace's user namespace and from the creator's own
 * pid namespace, whichever task's action fired it.
 */
static int lvmm_nl_put_vm(struct sk_buff *skb, struct lvmm_vm *vm, int event,
			  int vcpu_id)
{
	struct user_namespace *user_ns = event ? vm->net->user_ns :
						 current_user_ns();
	pid_t pid = event ? pid_nr_ns(vm->creator, ns_of_pid(vm->creator)) :
			    pid_vnr(vm->creator);

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
	    (event && nla_put_u32(skb, LVMM_A_VM_EVENT, event)) ||
	    (vcpu_id >= 0 && nla_put_u32(skb, LVMM_A_VM_VCPU_ID, vcpu_id)) ||
	    /* Held paused: where it runs, only the operator can tell. */
	    (READ_ONCE(vm->migrate_unknown) && event != LVMM_EVENT_MIGRATED &&
	     nla_put_u32(skb, LVMM_A_VM_MIGRATE_OUTCOME,
			 LVMM_MIGRATE_UNKNOWN)))
		return -EMSGSIZE;
	return 0;
}

static int lvmm_nl_fill_vm(struct sk_buff *skb, struct lvmm_vm *vm, u32 portid,
			   u32 seq, int flags, u8 cmd, int event, int vcpu_id)
{
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &lvmm_nl_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;
	if (lvmm_nl_put_vm(skb, vm, event, vcpu_id)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* Send a do's reply @msg, or drop it if filling it failed with @r. */
static int lvmm_nl_reply(struct sk_buff *msg, int r, struct genl_info *info)
{
	if (r) {
		nlmsg_free(msg);
		return r;
	}
	return genlmsg_reply(msg, info);
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
				  LVMM_CMD_VM_GET, 0, -1) : -ENOMEM;
	lvmm_vm_put(vm);
	return lvmm_nl_reply(msg, r, info);
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
				    LVMM_CMD_VM_GET, 0, -1);
		lvmm_vm_put(vm);
		if (r)
			break;
		id++;
	}
	cb->args[0] = id;
	/* A full skb ends this round; the cursor starts the next one. */
	return r == -EMSGSIZE && skb->len ? skb->len : r ?: skb->len;
}

/* @mask as a CPU bitmap attribute: bit n of byte n / 8 is CPU n. */
static int lvmm_nl_put_cpus(struct sk_buff *skb, int attrtype,
			    const struct cpumask *mask)
{
	struct nlattr *a;
	u8 *bits;
	int cpu;

	a = nla_reserve(skb, attrtype, DIV_ROUND_UP(nr_cpu_ids, BITS_PER_BYTE));
	if (!a)
		return -EMSGSIZE;
	bits = nla_data(a);
	memset(bits, 0, nla_len(a));
	for_each_cpu(cpu, mask)
		bits[cpu / BITS_PER_BYTE] |= BIT(cpu % BITS_PER_BYTE);
	return 0;
}

/* The CPUs the vCPU's thread may run on now, if it has one. */
static int lvmm_nl_put_affinity(struct sk_buff *skb, struct lvmm_vcpu *vcpu)
{
	struct task_struct *t;
	int r = 0;

	rcu_read_lock();
	t = pid_task(rcu_dereference(vcpu->pid), PIDTYPE_PID);
	if (t)
		r = lvmm_nl_put_cpus(skb, LVMM_A_VCPU_AFFINITY, t->cpus_ptr);
	rcu_read_unlock();
	return r;
}

static int lvmm_nl_fill_vcpu(struct sk_buff *skb, struct lvmm_vcpu *vcpu,
			     struct netlink_callback *cb)
{
	struct lvmm_vcpu_stat *st = &vcpu->stat;
	u64 guest = lvmm_vcpu_guest_ns(vcpu), run = READ_ONCE(st->run_ns);
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
			      LVMM_A_VCPU_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_VCPU_NR_THROTTLED,
			      READ_ONCE(vcpu->sched.nr_throttled),
			      LVMM_A_VCPU_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_VCPU_THROTTLED_NS,
			      READ_ONCE(vcpu->sched.throttled_ns),
			      LVMM_A_VCPU_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_VCPU_NR_BOOSTS,
			      READ_ONCE(vcpu->sched.nr_boosts),
			      LVMM_A_VCPU_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_VCPU_BOOSTED_NS,
			      READ_ONCE(vcpu->sched.boosted_ns),
			      LVMM_A_VCPU_PAD) ||
	    lvmm_nl_put_affinity(skb, vcpu)) {
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
	u64 n4k, n2m;
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
		one.guest_ns = lvmm_vcpu_guest_ns(vcpu);
		for (j = 0; j < sizeof(one) / sizeof(u64); j++)
			((u64 *)&total)[j] += ((u64 *)&one)[j];
		nest = nla_nest_start(skb, LVMM_A_STATS_VCPU);
		if (!nest || nla_put_u32(skb, LVMM_A_STATS_VCPU_ID, vcpu->id) ||
		    lvmm_nl_put_stats(skb, &one))
			goto cancel;
		nla_nest_end(skb, nest);
	}
	lvmm_arch->vm_count_mappings(vm, &n4k, &n2m);
	if (lvmm_nl_put_stats(skb, &total) ||
	    nla_put_u64_64bit(skb, LVMM_A_STATS_MAPPED_4K, n4k,
			      LVMM_A_STATS_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_STATS_MAPPED_2M, n2m,
			      LVMM_A_STATS_PAD))
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
	return lvmm_nl_reply(msg, r, info);
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

/*
 * The VM and the stream fd of vm-save and vm-migrate, both with a
 * reference, or an error; EBADF (no message yet) if @fd is not an fd.
 */
static struct lvmm_vm *lvmm_nl_stream_vm(struct sk_buff *skb,
					 struct genl_info *info,
					 struct nlattr *fd, struct file **file)
{
	struct lvmm_vm *vm = lvmm_nl_vm(skb, info->attrs, info->extack, true);

	if (IS_ERR(vm))
		return vm;
	*file = fget(nla_get_u32(fd));
	if (!*file) {
		lvmm_vm_put(vm);
		return ERR_PTR(-EBADF);
	}
	return vm;
}

/*
 * vm-save: the fd is the caller's, looked up here in its context; the
 * save takes its own reference and runs in a kernel thread of its own.
 * Progress and the end come as events.  The owner or CAP_NET_ADMIN.
 */
static int lvmm_nl_vm_save_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr *fd = info->attrs[LVMM_A_VM_SAVE_FD];
	struct lvmm_vm *vm;
	struct file *file;
	int r;

	if (!fd) {
		NL_SET_ERR_MSG(info->extack,
			       "give the file descriptor to write the VM to (save-fd)");
		return -EINVAL;
	}
	vm = lvmm_nl_stream_vm(skb, info, fd, &file);
	if (PTR_ERR(vm) == -EBADF)
		NL_SET_ERR_MSG_ATTR(info->extack, fd,
				    "save-fd is not an open file descriptor of the sender");
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	if (!(file->f_mode & FMODE_WRITE)) {
		NL_SET_ERR_MSG_ATTR(info->extack, fd,
				    "save-fd is not open for writing");
		r = -EBADF;
		goto out_fput;
	}
	if (!lvmm_stream_file_ok(file, true)) {
		NL_SET_ERR_MSG_ATTR(info->extack, fd,
				    "lvmm cannot write to save-fd: give a regular file, a pipe or a socket");
		r = -EINVAL;
		goto out_fput;
	}
	r = lvmm_vm_save(vm, file,
			 nla_get_flag(info->attrs[LVMM_A_VM_SAVE_STOP]));
	if (r == -EBUSY)
		NL_SET_ERR_MSG(info->extack, "a save of this VM is running");
	else if (r == -ENOENT)
		NL_SET_ERR_MSG(info->extack, "the VM has been destroyed");
out_fput:
	fput(file);
	lvmm_vm_put(vm);
	return r;
}

/*
 * vm-migrate: as vm-save, with a connected stream socket of the sender's
 * (Documentation/migration.rst, 9).  The owner or CAP_NET_ADMIN.
 */
static int lvmm_nl_vm_migrate_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nlattr **attrs = info->attrs, *fd = attrs[LVMM_A_VM_MIGRATE_FD];
	struct lvmm_migrate_req req = {
		.downtime_ms = LVMM_MIGRATE_DOWNTIME_MS_DEFAULT,
		.max_iter = LVMM_MIGRATE_MAX_ITER_DEFAULT,
	};
	struct lvmm_vm *vm;
	struct file *file;
	int r;

	if (!fd) {
		NL_SET_ERR_MSG(info->extack,
			       "give the connected socket to send the VM over (migrate-fd)");
		return -EINVAL;
	}
	if (attrs[LVMM_A_VM_MIGRATE_DOWNTIME_MS])
		req.downtime_ms = nla_get_u32(attrs[LVMM_A_VM_MIGRATE_DOWNTIME_MS]);
	if (attrs[LVMM_A_VM_MIGRATE_MAX_ITER])
		req.max_iter = nla_get_u32(attrs[LVMM_A_VM_MIGRATE_MAX_ITER]);
	if (attrs[LVMM_A_VM_MIGRATE_MAX_BANDWIDTH])
		req.max_bandwidth =
			nla_get_u64(attrs[LVMM_A_VM_MIGRATE_MAX_BANDWIDTH]);
	if (req.max_bandwidth &&
	    req.max_bandwidth < LVMM_MIGRATE_MIN_BANDWIDTH) {
		NL_SET_ERR_MSG_ATTR(info->extack,
				    attrs[LVMM_A_VM_MIGRATE_MAX_BANDWIDTH],
				    "migrate-max-bandwidth is below 1 MB/s");
		return -EINVAL;
	}
	req.auto_converge = nla_get_flag(attrs[LVMM_A_VM_MIGRATE_AUTO_CONVERGE]);
	req.checksum = nla_get_flag(attrs[LVMM_A_VM_MIGRATE_CHECKSUM]);
	vm = lvmm_nl_stream_vm(skb, info, fd, &file);
	if (PTR_ERR(vm) == -EBADF)
		NL_SET_ERR_MSG_ATTR(info->extack, fd,
				    "migrate-fd is not an open file descriptor of the sender");
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	r = lvmm_mig_socket_ok(file, false);
	if (r == -ENOTCONN)
		NL_SET_ERR_MSG_ATTR(info->extack, fd,
				    "migrate-fd is not connected: connect it to the destination first");
	else if (r)
		NL_SET_ERR_MSG_ATTR(info->extack, fd,
				    "migrate-fd must be a blocking TCP (or AF_UNIX stream) socket connected to the destination");
	if (r) {
		r = r == -ENOTCONN ? r : -EINVAL;
		goto out_fput;
	}
	r = lvmm_vm_migrate(vm, file, &req, info->extack);
out_fput:
	fput(file);
	lvmm_vm_put(vm);
	return r;
}

static int lvmm_nl_vm_migrate_cancel_doit(struct sk_buff *skb,
					  struct genl_info *info)
{
	struct lvmm_vm *vm;
	int r;

	vm = lvmm_nl_vm(skb, info->attrs, info->extack, true);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	r = lvmm_vm_migrate_cancel(vm, info->extack);
	lvmm_vm_put(vm);
	return r;
}

/* ---- scheduling policy ---------------------------------------------------- */

static int lvmm_nl_fill_sched(struct sk_buff *skb, struct lvmm_vm *vm,
			      struct genl_info *info, struct cpumask *pin)
{
	struct lvmm_sched_info si;
	struct nlattr *nest;
	void *hdr;
	int i;

	lvmm_sched_get(vm, &si);
	hdr = genlmsg_put(skb, info->snd_portid, info->snd_seq,
			  &lvmm_nl_family, 0, LVMM_CMD_SCHED_GET);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u32(skb, LVMM_A_SCHED_VM_ID, vm->id) ||
	    nla_put_string(skb, LVMM_A_SCHED_VM_NAME, vm->name) ||
	    nla_put_u32(skb, LVMM_A_SCHED_WEIGHT, si.weight) ||
	    nla_put_u32(skb, LVMM_A_SCHED_CAP, si.cap) ||
	    nla_put_u32(skb, LVMM_A_SCHED_PERIOD_US, si.period_us) ||
	    nla_put_u32(skb, LVMM_A_SCHED_RESERVE, si.reserve) ||
	    (si.weight_set && nla_put_s32(skb, LVMM_A_SCHED_NICE, si.nice)) ||
	    nla_put_u64_64bit(skb, LVMM_A_SCHED_NR_PERIODS, si.nr_periods,
			      LVMM_A_SCHED_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_SCHED_NR_THROTTLED, si.nr_throttled,
			      LVMM_A_SCHED_PAD) ||
	    nla_put_u64_64bit(skb, LVMM_A_SCHED_THROTTLED_NS, si.throttled_ns,
			      LVMM_A_SCHED_PAD))
		goto cancel;
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);
		bool pinned, broken;

		if (!vcpu)
			continue;
		pinned = lvmm_sched_vcpu_pin(vcpu, pin, &broken);
		nest = nla_nest_start(skb, LVMM_A_SCHED_VCPU);
		if (!nest || nla_put_u32(skb, LVMM_A_SCHED_VCPU_ID, vcpu->id) ||
		    (pinned &&
		     lvmm_nl_put_cpus(skb, LVMM_A_SCHED_VCPU_CPUS, pin)) ||
		    (broken && nla_put_flag(skb, LVMM_A_SCHED_VCPU_PIN_BROKEN)))
			goto cancel;
		nla_nest_end(skb, nest);
	}
	genlmsg_end(skb, hdr);
	return 0;
cancel:
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

static int lvmm_nl_sched_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	cpumask_var_t pin;
	struct lvmm_vm *vm;
	struct sk_buff *msg;
	size_t size;
	int r;

	vm = lvmm_nl_vm(skb, info->attrs, info->extack, true);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	/* Each vCPU's nest: its id and a pin of nr_cpu_ids bits. */
	size = NLMSG_DEFAULT_SIZE + READ_ONCE(vm->nr_vcpus) *
	       (64 + DIV_ROUND_UP(nr_cpu_ids, BITS_PER_BYTE));
	msg = nlmsg_new(size, GFP_KERNEL);
	r = -ENOMEM;
	if (msg && alloc_cpumask_var(&pin, GFP_KERNEL)) {
		r = lvmm_nl_fill_sched(msg, vm, info, pin);
		free_cpumask_var(pin);
	}
	lvmm_vm_put(vm);
	return lvmm_nl_reply(msg, r, info);
}

/* One vCPU's new pin, from its sched-vcpu nest, into @req. */
static int lvmm_nl_parse_pin(struct lvmm_vm *vm, struct nlattr *nest,
			     struct lvmm_sched_req *req,
			     struct netlink_ext_ack *extack)
{
	struct nlattr *tb[LVMM_A_SCHED_VCPU_MAX + 1], *cpus;
	struct cpumask *mask;
	const u8 *bits;
	int r, i;
	u32 id;

	r = nla_parse_nested(tb, LVMM_A_SCHED_VCPU_MAX, nest,
			     lvmm_sched_vcpu_policy, extack);
	if (r)
		return r;
	if (!tb[LVMM_A_SCHED_VCPU_ID]) {
		NL_SET_ERR_MSG_ATTR(extack, nest, "a vcpu nest needs the vCPU's id");
		return -EINVAL;
	}
	id = nla_get_u32(tb[LVMM_A_SCHED_VCPU_ID]);
	if (id >= LVMM_MAX_VCPUS || !READ_ONCE(vm->vcpus[id])) {
		NL_SET_ERR_MSG_ATTR(extack, tb[LVMM_A_SCHED_VCPU_ID],
				    "no such vCPU");
		return -ENOENT;
	}
	if (req->pin[id]) {
		NL_SET_ERR_MSG_ATTR(extack, tb[LVMM_A_SCHED_VCPU_ID],
				    "the vCPU is given twice");
		return -EINVAL;
	}
	cpus = tb[LVMM_A_SCHED_VCPU_CPUS];
	if (!cpus) {
		NL_SET_ERR_MSG_ATTR(extack, nest,
				    "give the CPUs to pin the vCPU to (empty: unpin)");
		return -EINVAL;
	}
	mask = kzalloc(cpumask_size(), GFP_KERNEL);
	if (!mask)
		return -ENOMEM;
	req->pin[id] = mask;
	bits = nla_data(cpus);
	for (i = 0; i < nla_len(cpus) * BITS_PER_BYTE; i++) {
		if (!(bits[i / BITS_PER_BYTE] & BIT(i % BITS_PER_BYTE)))
			continue;
		if (i >= nr_cpu_ids) {
			NL_SET_ERR_MSG_ATTR(extack, cpus,
					    "the host has no such CPU");
			return -EINVAL;
		}
		cpumask_set_cpu(i, mask);
	}
	return 0;
}

static int lvmm_nl_parse_sched(struct lvmm_vm *vm, struct genl_info *info,
			       struct lvmm_sched_req *req)
{
	struct nlattr **attrs = info->attrs, *a;
	int rem, r;

	if (attrs[LVMM_A_SCHED_WEIGHT]) {
		req->has_weight = true;
		req->weight = nla_get_u32(attrs[LVMM_A_SCHED_WEIGHT]);
	}
	if (attrs[LVMM_A_SCHED_CAP]) {
		req->has_cap = true;
		req->cap = nla_get_u32(attrs[LVMM_A_SCHED_CAP]);
	}
	if (attrs[LVMM_A_SCHED_PERIOD_US]) {
		req->has_period = true;
		req->period_us = nla_get_u32(attrs[LVMM_A_SCHED_PERIOD_US]);
	}
	if (attrs[LVMM_A_SCHED_RESERVE]) {
		req->has_reserve = true;
		req->reserve = nla_get_u32(attrs[LVMM_A_SCHED_RESERVE]);
	}
	nla_for_each_attr(a, genlmsg_data(info->genlhdr),
			  genlmsg_len(info->genlhdr), rem) {
		if (nla_type(a) != LVMM_A_SCHED_VCPU)
			continue;
		r = lvmm_nl_parse_pin(vm, a, req, info->extack);
		if (r)
			return r;
	}
	return 0;
}

static int lvmm_nl_sched_set_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct lvmm_sched_req *req;
	unsigned int privs = 0;
	struct lvmm_vm *vm;
	int i, r;

	vm = lvmm_nl_vm(skb, info->attrs, info->extack, true);
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	req = kzalloc(sizeof(*req), GFP_KERNEL);
	r = req ? lvmm_nl_parse_sched(vm, info, req) : -ENOMEM;
	if (!r) {
		/*
		 * More CPU for a VM takes CAP_NET_ADMIN over the whole host,
		 * not in a namespace any user can make; real-time priority,
		 * which a reservation is, CAP_SYS_NICE.
		 */
		if (netlink_capable(skb, CAP_NET_ADMIN))
			privs |= LVMM_SCHED_PRIV_ADMIN;
		if (netlink_capable(skb, CAP_SYS_NICE))
			privs |= LVMM_SCHED_PRIV_NICE;
		r = lvmm_sched_set(vm, req, privs, info->extack);
	}
	for (i = 0; req && i < LVMM_MAX_VCPUS; i++)
		kfree(req->pin[i]);
	kfree(req);
	lvmm_vm_put(vm);
	return r;
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
	{
		.cmd	= LVMM_CMD_VM_SAVE,
		.doit	= lvmm_nl_vm_save_doit,
	},
	{
		.cmd	= LVMM_CMD_VM_MIGRATE,
		.doit	= lvmm_nl_vm_migrate_doit,
	},
	{
		.cmd	= LVMM_CMD_VM_MIGRATE_CANCEL,
		.doit	= lvmm_nl_vm_migrate_cancel_doit,
	},
	{
		.cmd	= LVMM_CMD_SCHED_GET,
		.doit	= lvmm_nl_sched_get_doit,
		.policy	= lvmm_sched_policy,
		.maxattr = LVMM_A_SCHED_MAX,
	},
	{
		.cmd	= LVMM_CMD_SCHED_SET,
		.doit	= lvmm_nl_sched_set_doit,
		.policy	= lvmm_sched_policy,
		.maxattr = LVMM_A_SCHED_MAX,
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
void lvmm_nl_event(struct lvmm_vm *vm, int event, int vcpu_id)
{
	struct sk_buff *msg;

	if (!genl_has_listeners(&lvmm_nl_family, vm->net, LVMM_NL_MCGRP_EVENTS))
		return;
	msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return;
	if (lvmm_nl_fill_vm(msg, vm, 0, 0, 0, LVMM_CMD_VM_EVENT, event,
			    vcpu_id)) {
		nlmsg_free(msg);
		return;
	}
	genlmsg_multicast_netns(&lvmm_nl_family, vm->net, msg, 0,
				LVMM_NL_MCGRP_EVENTS, GFP_KERNEL);
}

/*
 * An event of @vm with the VM message's attributes, for the caller to add
 * its own to: NULL if nobody listens or there is no memory.
 */
static struct sk_buff *lvmm_nl_event_start(struct lvmm_vm *vm, int event,
					   void **hdr)
{
	struct sk_buff *msg;

	if (!genl_has_listeners(&lvmm_nl_family, vm->net, LVMM_NL_MCGRP_EVENTS))
		return NULL;
	msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return NULL;
	*hdr = genlmsg_put(msg, 0, 0, &lvmm_nl_family, 0, LVMM_CMD_VM_EVENT);
	if (!*hdr || lvmm_nl_put_vm(msg, vm, event, -1)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

/* Send what lvmm_nl_event_start() began; @err: an attribute did not fit. */
static void lvmm_nl_event_send(struct lvmm_vm *vm, struct sk_buff *msg,
			       void *hdr, int err)
{
	if (err) {
		nlmsg_free(msg);
		return;
	}
	genlmsg_end(msg, hdr);
	genlmsg_multicast_netns(&lvmm_nl_family, vm->net, msg, 0,
				LVMM_NL_MCGRP_EVENTS, GFP_KERNEL);
}

static int lvmm_nl_put_u64(struct sk_buff *msg, int attr, u64 v)
{
	return nla_put_u64_64bit(msg, attr, v, LVMM_A_VM_PAD);
}

/* A save's progress (@err 0) or end, to the events group. */
void lvmm_nl_save_event(struct lvmm_vm *vm, int event, u64 bytes, u64 total,
			int err, u64 pause_ns)
{
	struct sk_buff *msg;
	void *hdr;

	int bad;

	msg = lvmm_nl_event_start(vm, event, &hdr);
	if (!msg)
		return;
	bad = lvmm_nl_put_u64(msg, LVMM_A_VM_SAVE_BYTES, bytes) ||
	      lvmm_nl_put_u64(msg, LVMM_A_VM_SAVE_TOTAL, total) ||
	      (event == LVMM_EVENT_SAVED &&
	       (nla_put_u32(msg, LVMM_A_VM_SAVE_ERROR, err) ||
		lvmm_nl_put_u64(msg, LVMM_A_VM_PAUSE_NS, pause_ns)));
	lvmm_nl_event_send(vm, msg, hdr, bad);
}

/* A migration's pass (@event MIGRATE_PROGRESS) or end, to the events group. */
void lvmm_nl_migrate_event(struct lvmm_vm *vm, int event,
			   const struct lvmm_migrate_stats *st)
{
	struct sk_buff *msg;
	void *hdr;

	int bad;

	msg = lvmm_nl_event_start(vm, event, &hdr);
	if (!msg)
		return;
	bad = nla_put_u32(msg, LVMM_A_VM_MIGRATE_ITERATION, st->iteration) ||
	      nla_put_u32(msg, LVMM_A_VM_MIGRATE_THROTTLE, st->throttle) ||
	      lvmm_nl_put_u64(msg, LVMM_A_VM_MIGRATE_SENT, st->sent) ||
	      lvmm_nl_put_u64(msg, LVMM_A_VM_MIGRATE_LEFT, st->left) ||
	      lvmm_nl_put_u64(msg, LVMM_A_VM_MIGRATE_DIRTY_RATE,
			      st->dirty_rate) ||
	      lvmm_nl_put_u64(msg, LVMM_A_VM_MIGRATE_BANDWIDTH, st->bandwidth) ||
	      lvmm_nl_put_u64(msg, LVMM_A_VM_MIGRATE_EXPECTED_NS,
			      st->expected_ns);
	if (!bad && event == LVMM_EVENT_MIGRATED)
		bad = nla_put_u32(msg, LVMM_A_VM_MIGRATE_OUTCOME, st->outcome) ||
		      nla_put_u32(msg, LVMM_A_VM_MIGRATE_ERROR, st->error) ||
		      nla_put_u32(msg, LVMM_A_VM_MIGRATE_PEER_ERROR,
				  st->peer_error) ||
		      lvmm_nl_put_u64(msg, LVMM_A_VM_MIGRATE_TOTAL_NS,
				      st->total_ns) ||
		      lvmm_nl_put_u64(msg, LVMM_A_VM_MIGRATE_DOWNTIME_NS,
				      st->downtime_ns);
	lvmm_nl_event_send(vm, msg, hdr, bad);
}

int lvmm_netlink_init(void)
{
	return genl_register_family(&lvmm_nl_family);
}

void lvmm_netlink_exit(void)
{
	genl_unregister_family(&lvmm_nl_family);
}
