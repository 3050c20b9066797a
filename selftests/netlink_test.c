// SPDX-License-Identifier: GPL-2.0
/*
 * The "lvmm" generic netlink family, the management plane: every
 * operation, malformed requests (with their extack messages), who may do
 * what, big dumps, events, and what pause, resume and destroy do to a
 * running guest.  Talks netlink directly with libnl so that it can send
 * what a well-behaved tool never would.
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "nl_util.h"
#include "vcpu_runner.h"

#ifndef __packed
#define __packed	__attribute__((packed))
#endif

/* ---- vm-get dumps and stats-get ---------------------------------------- */

struct vm_dump {
	struct nl_vm *vms;
	size_t n, cap;
};

static int vm_dump_cb(struct nl_msg *msg, void *arg)
{
	struct vm_dump *d = arg;

	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->vms = realloc(d->vms, d->cap * sizeof(*d->vms));
		TEST_ASSERT(d->vms, "out of memory");
	}
	TEST_ASSERT(!parse_vm(msg, &d->vms[d->n]),
		    "vm-get dump reply without id or name");
	d->n++;
	return NL_OK;
}

static int nl_vm_dump(struct nlc *c, struct vm_dump *d)
{
	memset(d, 0, sizeof(*d));
	return nlc_exec(c, nlc_msg(c, LVMM_CMD_VM_GET, NLM_F_DUMP),
			vm_dump_cb, d);
}

static const struct nl_vm *dump_find(const struct vm_dump *d, u32 id)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->vms[i].id == id)
			return &d->vms[i];
	return NULL;
}

#define NR_STATS	(LVMM_A_STATS_GUEST_NS - LVMM_A_STATS_EXITS + 1)

struct nl_stats {
	u32 vm_id;
	u64 total[NR_STATS];		/* LVMM_A_STATS_EXITS.. in order */
	u32 nr_vcpus;
	u32 vcpu_id[MAX_VCPUS];
	u64 vcpu[MAX_VCPUS][NR_STATS];
};

#define STAT(a)		((a) - LVMM_A_STATS_EXITS)

static void parse_counters(struct nlattr **tb, u64 *out)
{
	for (int a = LVMM_A_STATS_EXITS; a <= LVMM_A_STATS_GUEST_NS; a++) {
		TEST_ASSERT(tb[a] && nla_len(tb[a]) == 8,
			    "stats-get: counter %d missing", a);
		out[STAT(a)] = nla_get_u64(tb[a]);
	}
}

static int stats_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[LVMM_A_STATS_MAX + 1], *nests[MAX_VCPUS + 1];
	struct nl_stats *s = arg;
	int n;

	TEST_ASSERT(genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_STATS_MAX,
				  NULL) >= 0, "stats-get: bad reply");
	TEST_ASSERT(tb[LVMM_A_STATS_VM_ID], "stats-get: no vm id");
	s->vm_id = nla_get_u32(tb[LVMM_A_STATS_VM_ID]);
	parse_counters(tb, s->total);
	n = nl_attrs_of_type(msg, LVMM_A_STATS_VCPU, nests, ARRAY_SIZE(nests));
	TEST_ASSERT(n <= MAX_VCPUS, "stats-get: %d vcpu nests", n);
	for (int i = 0; i < n; i++) {
		struct nlattr *vt[LVMM_A_STATS_MAX + 1];

		TEST_ASSERT(!nla_parse_nested(vt, LVMM_A_STATS_MAX, nests[i],
					      NULL) &&
			    vt[LVMM_A_STATS_VCPU_ID], "stats-get: bad vcpu nest");
		s->vcpu_id[s->nr_vcpus] = nla_get_u32(vt[LVMM_A_STATS_VCPU_ID]);
		parse_counters(vt, s->vcpu[s->nr_vcpus++]);
	}
	return NL_OK;
}

static int nl_stats_get(struct nlc *c, u32 vm_id, struct nl_stats *s)
{
	struct nl_msg *msg = nlc_msg(c, LVMM_CMD_STATS_GET, 0);

	nla_put_u32(msg, LVMM_A_VM_ID, vm_id);
	memset(s, 0, sizeof(*s));
	return nlc_exec(c, msg, stats_cb, s);
}

/* ---- guests and the threads that run them -------------------------------- */

static void guest_sync_loop(void)
{
	for (u64 i = 0;; i++)
		GUEST_SYNC(i);
}

static void guest_triple_fault(void)
{
	static const struct { u16 limit; u64 base; } __packed
		no_idt = { 0, 0 };

	asm volatile("lidt %0; ud2" :: "m"(no_idt));
	GUEST_FAIL("survived a triple fault");
}

/* ---- the tests ------------------------------------------------------------ */

TEST(vm_get)
{
	struct lvmm_vcpu *vcpus[2];
	struct lvmm_vm *vm;
	struct nl_vm a, b;
	struct vm_dump d;
	struct timespec ts;
	struct nlc *c;
	u64 now;

	REQUIRE_LVMM(c);
	vm = vm_create_with_vcpus(2, guest_count, vcpus);
	clock_gettime(CLOCK_REALTIME, &ts);
	now = ts.tv_sec * 1000000000ULL + ts.tv_nsec;

	ASSERT_EQ(0, nl_vm_get(c, vm->h.id, NULL, &a)) TH_LOG("%s", c->ext);
	ASSERT_TRUE(a.seen);
	EXPECT_EQ(vm->h.id, a.id);
	EXPECT_STREQ(vm->h.name, a.name);
	EXPECT_EQ(geteuid(), a.owner_uid);
	EXPECT_EQ(getpid(), (pid_t)a.creator_pid);
	EXPECT_EQ(LVMM_VM_STATE_CREATED, a.state);
	EXPECT_EQ(2, a.nr_vcpus);
	EXPECT_EQ(vm->slots[0].size, a.mem_size);
	EXPECT_EQ(0, a.guest_ns);
	EXPECT_LE(a.created_ns, now);
	EXPECT_GT(a.created_ns, now - 60 * 1000000000ULL);
	EXPECT_EQ(0, a.event);

	/* By name: the same VM. */
	ASSERT_EQ(0, nl_vm_get(c, 0, vm->h.name, &b)) TH_LOG("%s", c->ext);
	EXPECT_EQ(a.id, b.id);
	EXPECT_EQ(a.created_ns, b.created_ns);

	/* The dump has it, once, and the same. */
	ASSERT_EQ(0, nl_vm_dump(c, &d)) TH_LOG("%s", c->ext);
	ASSERT_NE(NULL, dump_find(&d, vm->h.id));
	EXPECT_STREQ(vm->h.name, dump_find(&d, vm->h.id)->name);
	EXPECT_EQ(2, dump_find(&d, vm->h.id)->nr_vcpus);
	free(d.vms);

	vm_free(vm);
	/* Gone with its last fd. */
	EXPECT_EQ(-ENOENT, nl_vm_get(c, a.id, NULL, &b));
	EXPECT_NE(0, c->ext[0]) TH_LOG("ENOENT without an extack message");
	nlc_close(c);
}

TEST(vcpu_get_and_stats_get)
{
	struct lvmm_vcpu *vcpus[2];
	struct ucall uc;
	struct vcpu_dump d;
	struct nl_stats *s;
	struct lvmm_vm *vm;
	struct nlc *c;
	u64 sum;
	int i;

	REQUIRE_LVMM(c);
	vm = vm_create_with_vcpus(2, guest_sync_loop, vcpus);

	ASSERT_EQ(0, nl_vcpu_dump(c, vm->h.id, &d)) TH_LOG("%s", c->ext);
	ASSERT_EQ(2, d.n);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(vm->h.id, d.v[i].vm_id);
		EXPECT_EQ((u32)i, d.v[i].id);
		EXPECT_EQ(LVMM_VCPU_STATE_IDLE, d.v[i].state);
		EXPECT_EQ(0, d.v[i].tid);		/* never ran */
		EXPECT_FALSE(d.v[i].has_cpu);
		EXPECT_EQ(0, d.v[i].exits);
	}

	/* vCPU 1 makes 10 ucalls (port I/O exits), vCPU 0 none. */
	for (i = 0; i < 10; i++) {
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpus[1], &uc));
		ASSERT_EQ((u64)i, uc.args[0]);
	}

	s = calloc(1, sizeof(*s));
	ASSERT_EQ(0, nl_stats_get(c, vm->h.id, s)) TH_LOG("%s", c->ext);
	EXPECT_EQ(vm->h.id, s->vm_id);
	ASSERT_EQ(2, s->nr_vcpus);
	EXPECT_EQ(0, s->vcpu_id[0]);
	EXPECT_EQ(1, s->vcpu_id[1]);
	EXPECT_EQ(0, s->vcpu[0][STAT(LVMM_A_STATS_EXITS)]);
	EXPECT_GE(s->vcpu[1][STAT(LVMM_A_STATS_EXITS_IO)], 10);
	EXPECT_GE(s->vcpu[1][STAT(LVMM_A_STATS_EXITS)],
		  s->vcpu[1][STAT(LVMM_A_STATS_EXITS_IO)]);
	EXPECT_GT(s->vcpu[1][STAT(LVMM_A_STATS_GUEST_NS)], 0);
	/* The top level is the sum of the vCPUs. */
	for (int k = 0; k < NR_STATS; k++) {
		if (k == STAT(LVMM_A_STATS_EXITS_OTHER))
			continue;	/* clamped per vCPU */
		sum = s->vcpu[0][k] + s->vcpu[1][k];
		EXPECT_EQ(sum, s->total[k]) TH_LOG("counter %d",
						   k + LVMM_A_STATS_EXITS);
	}
	/* Exits by kind add up to all exits (MMIO exits are NPFs). */
	sum = 0;
	for (int a = LVMM_A_STATS_EXITS_IO; a <= LVMM_A_STATS_NPF; a++)
		if (a != LVMM_A_STATS_EXITS_MMIO)
			sum += s->vcpu[1][STAT(a)];
	EXPECT_EQ(s->vcpu[1][STAT(LVMM_A_STATS_EXITS)], sum);

	/* vcpu-get agrees with stats-get, and says who ran vCPU 1. */
	ASSERT_EQ(0, nl_vcpu_dump(c, vm->h.id, &d)) TH_LOG("%s", c->ext);
	ASSERT_EQ(2, d.n);
	EXPECT_EQ(s->vcpu[1][STAT(LVMM_A_STATS_EXITS)], d.v[1].exits);
	EXPECT_EQ(s->vcpu[1][STAT(LVMM_A_STATS_GUEST_NS)], d.v[1].guest_ns);
	EXPECT_EQ(syscall(SYS_gettid), d.v[1].tid);
	EXPECT_TRUE(d.v[1].has_cpu);
	EXPECT_EQ(LVMM_VCPU_STATE_IDLE, d.v[1].state);

	/* vm-get: the VM ran; guest time is the vCPUs' guest time. */
	{
		struct nl_vm v;

		ASSERT_EQ(0, nl_vm_get(c, vm->h.id, NULL, &v));
		EXPECT_EQ(LVMM_VM_STATE_RUNNING, v.state);
		EXPECT_EQ(s->total[STAT(LVMM_A_STATS_GUEST_NS)], v.guest_ns);
	}
	free(s);
	vm_free(vm);
	nlc_close(c);
}

TEST(vcpu_get_running_thread)
{
	struct vcpu_dump d;
	struct runner r;
	struct lvmm_vm *vm;
	struct nlc *c;

	REQUIRE_LVMM(c);
	vm = counting_vm(&r);
	ASSERT_EQ(0, nl_vcpu_dump(c, vm->h.id, &d)) TH_LOG("%s", c->ext);
	ASSERT_EQ(1, d.n);
	EXPECT_EQ(LVMM_VCPU_STATE_RUNNING, d.v[0].state);
	EXPECT_EQ(r.tid, (pid_t)d.v[0].tid);
	EXPECT_NE(syscall(SYS_gettid), d.v[0].tid);
	EXPECT_TRUE(d.v[0].has_cpu);
	EXPECT_GT(d.v[0].guest_ns, 0);

	stop_guest(vm);
	runner_join(&r);
	EXPECT_EQ(0, r.ret);
	ASSERT_EQ(0, nl_vcpu_dump(c, vm->h.id, &d));
	EXPECT_EQ(LVMM_VCPU_STATE_IDLE, d.v[0].state);
	EXPECT_EQ(r.tid, (pid_t)d.v[0].tid);
	vm_free(vm);
	nlc_close(c);
}

/* ---- malformed requests ---------------------------------------------------- */

enum { ATTR_NONE, ATTR_U32, ATTR_RAW, ATTR_STR };

struct bad_req {
	const char *what;
	u8 cmd;
	int flags;
	int type;		/* attribute type */
	int kind;
	u32 u32;
	const void *raw;
	int raw_len;
	int err;		/* expected; 0: EINVAL or ERANGE */
	bool extack;		/* an extack message must come back */
};

static const char long_name[] = "a-name-longer-than-31-characters-x";
static const char unterminated[4] = { 'a', 'b', 'c', 'd' };
static const u16 short_u32 = 1;
static const u64 long_u32 = 1;

static const struct bad_req bad_reqs[] = {
	{ "vm-get without a VM", LVMM_CMD_VM_GET, 0, 0, ATTR_NONE,
	  .err = -EINVAL, .extack = true },
	{ "vm-pause without a VM", LVMM_CMD_VM_PAUSE, 0, 0, ATTR_NONE,
	  .err = -EINVAL, .extack = true },
	{ "stats-get without a VM", LVMM_CMD_STATS_GET, 0, 0, ATTR_NONE,
	  .err = -EINVAL, .extack = true },
	{ "vcpu-get without a VM", LVMM_CMD_VCPU_GET, NLM_F_DUMP, 0,
	  ATTR_NONE, .err = -EINVAL, .extack = true },
	{ "id 0 (out of range)", LVMM_CMD_VM_GET, 0, LVMM_A_VM_ID, ATTR_U32,
	  .u32 = 0, .err = -ERANGE, .extack = true },
	{ "destroy id 0", LVMM_CMD_VM_DESTROY, 0, LVMM_A_VM_ID, ATTR_U32,
	  .u32 = 0, .err = -ERANGE, .extack = true },
	{ "id of 2 bytes", LVMM_CMD_VM_GET, 0, LVMM_A_VM_ID, ATTR_RAW,
	  .raw = &short_u32, .raw_len = 2, .extack = true },
	{ "id of 8 bytes", LVMM_CMD_VM_PAUSE, 0, LVMM_A_VM_ID, ATTR_RAW,
	  .raw = &long_u32, .raw_len = 8, .extack = true },
	{ "name too long", LVMM_CMD_VM_GET, 0, LVMM_A_VM_NAME, ATTR_STR,
	  .raw = long_name, .extack = true },
	{ "name not terminated", LVMM_CMD_VM_GET, 0, LVMM_A_VM_NAME, ATTR_RAW,
	  .raw = unterminated, .raw_len = 4, .extack = true },
	{ "empty name attribute", LVMM_CMD_VM_RESUME, 0, LVMM_A_VM_NAME,
	  ATTR_RAW, .raw = "", .raw_len = 0, .extack = true },
	{ "output-only owner-uid", LVMM_CMD_VM_GET, 0, LVMM_A_VM_OWNER_UID,
	  ATTR_U32, .u32 = 0, .err = -EINVAL, .extack = true },
	{ "output-only state in pause", LVMM_CMD_VM_PAUSE, 0, LVMM_A_VM_STATE,
	  ATTR_U32, .u32 = LVMM_VM_STATE_PAUSED, .err = -EINVAL,
	  .extack = true },
	{ "output-only event", LVMM_CMD_VM_DESTROY, 0, LVMM_A_VM_EVENT,
	  ATTR_U32, .u32 = LVMM_EVENT_DESTROYED, .err = -EINVAL,
	  .extack = true },
	{ "unknown attribute", LVMM_CMD_VM_GET, 0, LVMM_A_VM_MAX + 1,
	  ATTR_U32, .u32 = 1, .err = -EINVAL, .extack = true },
	{ "unknown attribute in a dump", LVMM_CMD_VM_GET, NLM_F_DUMP, 200,
	  ATTR_U32, .u32 = 1, .err = -EINVAL, .extack = true },
	{ "attribute type 0", LVMM_CMD_STATS_GET, 0, 0, ATTR_U32, .u32 = 1,
	  .err = -EINVAL, .extack = true },
	{ "no such VM id", LVMM_CMD_VM_GET, 0, LVMM_A_VM_ID, ATTR_U32,
	  .u32 = 0x7ffffff0, .err = -ENOENT, .extack = true },
	{ "no such VM name", LVMM_CMD_VM_PAUSE, 0, LVMM_A_VM_NAME, ATTR_STR,
	  .raw = "no-such-vm-here", .err = -ENOENT, .extack = true },
	{ "vcpu-get of no such VM", LVMM_CMD_VCPU_GET, NLM_F_DUMP,
	  LVMM_A_VM_ID, ATTR_U32, .u32 = 0x7ffffff0, .err = -ENOENT,
	  .extack = true },
	{ "vcpu-get as a do", LVMM_CMD_VCPU_GET, 0, LVMM_A_VM_ID, ATTR_U32,
	  .u32 = 1, .err = -EOPNOTSUPP },
	{ "stats-get as a dump", LVMM_CMD_STATS_GET, NLM_F_DUMP, LVMM_A_VM_ID,
	  ATTR_U32, .u32 = 1, .err = -EOPNOTSUPP },
	{ "vm-event is not a request", LVMM_CMD_VM_EVENT, 0, LVMM_A_VM_ID,
	  ATTR_U32, .u32 = 1, .err = -EOPNOTSUPP },
	{ "unknown command", LVMM_CMD_MAX + 1, 0, LVMM_A_VM_ID, ATTR_U32,
	  .u32 = 1, .err = -EOPNOTSUPP },
};

TEST(malformed_requests)
{
	struct nlc *c;
	struct nl_vm vm;

	REQUIRE_LVMM(c);
	for (size_t i = 0; i < ARRAY_SIZE(bad_reqs); i++) {
		const struct bad_req *b = &bad_reqs[i];
		struct nl_msg *msg = nlc_msg(c, b->cmd, b->flags);
		int r;

		switch (b->kind) {
		case ATTR_U32:
			nla_put_u32(msg, b->type, b->u32);
			break;
		case ATTR_RAW:
			nla_put(msg, b->type, b->raw_len, b->raw);
			break;
		case ATTR_STR:
			nla_put_string(msg, b->type, b->raw);
			break;
		}
		r = nlc_exec(c, msg, vm_get_cb, &vm);
		if (b->err) {
			EXPECT_EQ(b->err, r) TH_LOG("%s: %s (extack: %s)",
						    b->what, strerror(-r),
						    c->ext);
		} else {
			EXPECT_TRUE(r == -EINVAL || r == -ERANGE)
				TH_LOG("%s: %s", b->what, strerror(-r));
		}
		if (b->extack) {
			EXPECT_NE(0, c->ext[0])
				TH_LOG("%s: no extack message", b->what);
		}
	}
	nlc_close(c);
}

TEST(malformed_both_id_and_name)
{
	struct lvmm_vm *vm;
	struct nl_vm v;
	struct nlc *c;

	REQUIRE_LVMM(c);
	vm = vm_create_bare("nl-both");
	/* Even when they agree: one or the other. */
	EXPECT_EQ(-EINVAL, nl_vm_get(c, vm->h.id, vm->h.name, &v));
	EXPECT_NE(0, c->ext[0]);
	EXPECT_FALSE(v.seen);
	vm_free(vm);
	nlc_close(c);
}

TEST(malformed_truncated_attribute)
{
	struct nlattr *a;
	struct nl_msg *msg;
	struct nlc *c;
	int r;

	REQUIRE_LVMM(c);
	/* An attribute header that claims more than the message holds. */
	msg = nlc_msg(c, LVMM_CMD_VM_GET, 0);
	a = nlmsg_reserve(msg, NLA_HDRLEN + 4, NLMSG_ALIGNTO);
	ASSERT_NE(NULL, a);
	a->nla_type = LVMM_A_VM_ID;
	a->nla_len = NLA_HDRLEN + 64;
	r = nlc_exec(c, msg, NULL, NULL);
	EXPECT_EQ(-EINVAL, r);
	EXPECT_NE(0, c->ext[0]) TH_LOG("no extack message");

	/* Trailing garbage too short to be an attribute. */
	msg = nlc_msg(c, LVMM_CMD_VM_GET, 0);
	nla_put_u32(msg, LVMM_A_VM_ID, 1);
	ASSERT_NE(NULL, nlmsg_reserve(msg, 2, 1));
	r = nlc_exec(c, msg, NULL, NULL);
	EXPECT_EQ(-EINVAL, r);
	nlc_close(c);
}

/* ---- permissions ------------------------------------------------------------ */

static void nobody_child(u32 root_vm, int dev_fd)
{
	struct lvmm_create_vm req = {};
	struct vcpu_dump *d = calloc(1, sizeof(*d));
	struct nl_stats *s = calloc(1, sizeof(*s));
	struct vm_dump dump;
	struct nl_vm vm;
	struct nlc *c;
	int fd, r;

	drop_to_nobody();
	/* Opened after dropping: the socket's creds are nobody's too. */
	c = nlc_open();
	CHILD_CHECK(c, "no lvmm family");

	/* Anyone may look. */
	r = nl_vm_get(c, root_vm, NULL, &vm);
	CHILD_CHECK(r == 0, "vm-get: %s", strerror(-r));
	CHILD_CHECK(vm.owner_uid == 0, "owner %u", vm.owner_uid);
	r = nl_vm_dump(c, &dump);
	CHILD_CHECK(r == 0 && dump_find(&dump, root_vm), "dump: %s",
		    strerror(-r));

	/* Nobody else may look closer, or touch. */
	static const u8 cmds[] = { LVMM_CMD_VM_PAUSE, LVMM_CMD_VM_RESUME,
				   LVMM_CMD_VM_DESTROY };
	for (size_t i = 0; i < sizeof(cmds); i++) {
		r = nl_vm_cmd(c, cmds[i], root_vm);
		CHILD_CHECK(r == -EPERM, "cmd %d: %s", cmds[i], strerror(-r));
		CHILD_CHECK(c->ext[0], "cmd %d: EPERM without extack", cmds[i]);
	}
	r = nl_vcpu_dump(c, root_vm, d);
	CHILD_CHECK(r == -EPERM, "vcpu-get: %s", strerror(-r));
	CHILD_CHECK(c->ext[0], "vcpu-get: EPERM without extack");
	CHILD_CHECK(d->n == 0, "vcpu-get leaked %zu vCPUs", d->n);
	r = nl_stats_get(c, root_vm, s);
	CHILD_CHECK(r == -EPERM, "stats-get: %s", strerror(-r));
	CHILD_CHECK(c->ext[0], "stats-get: EPERM without extack");

	/* By name, too. */
	{
		struct nl_msg *msg = nlc_msg(c, LVMM_CMD_VM_DESTROY, 0);

		nla_put_string(msg, LVMM_A_VM_NAME, vm.name);
		r = nlc_exec(c, msg, NULL, NULL);
		CHILD_CHECK(r == -EPERM, "destroy by name: %s", strerror(-r));
	}

	/* A VM of one's own is one's own to manage. */
	strcpy(req.name, "nl-nobody");
	fd = ioctl(dev_fd, LVMM_CREATE_VM, &req);
	CHILD_CHECK(fd >= 0, "LVMM_CREATE_VM as nobody: %s", strerror(errno));
	r = nl_vm_get(c, req.id, NULL, &vm);
	CHILD_CHECK(r == 0 && vm.owner_uid == 65534, "owner %u", vm.owner_uid);
	r = nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, req.id);
	CHILD_CHECK(r == 0, "pause own VM: %s (%s)", strerror(-r), c->ext);
	r = nl_stats_get(c, req.id, s);
	CHILD_CHECK(r == 0, "stats-get own VM: %s", strerror(-r));
	r = nl_vm_cmd(c, LVMM_CMD_VM_DESTROY, req.id);
	CHILD_CHECK(r == 0, "destroy own VM: %s", strerror(-r));
	_exit(0);
}

TEST(permissions)
{
	struct lvmm_vm *vm;
	struct nl_vm v;
	struct nlc *c;
	int status, dev;
	pid_t pid;

	REQUIRE_LVMM(c);
	TEST_REQUIRE(geteuid() == 0);
	vm = vm_create_bare("nl-root-owned");
	dev = open_lvmm_dev();
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		nobody_child(vm->h.id, dev);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the unprivileged child failed (status 0x%x)", status);

	/*
	 * A socket carries its opener's rights: root's socket, handed to a
	 * process that became nobody, still manages root's VM.
	 */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int r;

		drop_to_nobody();
		r = nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id);
		CHILD_CHECK(r == 0, "pause on root's socket: %s (%s)",
			    strerror(-r), c->ext);
		r = nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id);
		CHILD_CHECK(r == 0, "resume on root's socket: %s", strerror(-r));
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("nobody with root's socket failed (status 0x%x)", status);

	/* Root's VM is untouched. */
	ASSERT_EQ(0, nl_vm_get(c, vm->h.id, NULL, &v));
	EXPECT_EQ(LVMM_VM_STATE_CREATED, v.state);
	/* Root (CAP_NET_ADMIN) may manage anyone's VM. */
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id));
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id));
	close(dev);
	vm_free(vm);
	nlc_close(c);
}

TEST(netns_isolation)
{
	struct lvmm_vm *vm;
	int status;
	pid_t pid;
	struct nlc *c;

	REQUIRE_LVMM(c);
	vm = vm_create_bare("nl-netns");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		struct vm_dump d;
		struct nl_vm v;
		struct nlc *n;
		int r;

		if (unshare(CLONE_NEWNET))
			_exit(4);	/* skip */
		n = nlc_open();
		CHILD_CHECK(n, "no lvmm family in a new netns (netnsok?)");
		r = nl_vm_dump(n, &d);
		CHILD_CHECK(r == 0 && !dump_find(&d, vm->h.id),
			    "another namespace's VM is listed");
		r = nl_vm_get(n, vm->h.id, NULL, &v);
		CHILD_CHECK(r == -ENOENT, "vm-get by id: %s", strerror(-r));
		r = nl_vm_get(n, 0, vm->h.name, &v);
		CHILD_CHECK(r == -ENOENT, "vm-get by name: %s", strerror(-r));
		r = nl_vm_cmd(n, LVMM_CMD_VM_DESTROY, vm->h.id);
		CHILD_CHECK(r == -ENOENT, "destroy: %s", strerror(-r));

		/* Names are per namespace: the same one is free here. */
		{
			struct lvmm_create_vm req = {};
			int dev = open_lvmm_dev(), fd;

			strcpy(req.name, vm->h.name);
			fd = ioctl(dev, LVMM_CREATE_VM, &req);
			CHILD_CHECK(fd >= 0, "the same name in another netns: %s",
				    strerror(errno));
			CHILD_CHECK(req.id != vm->h.id, "same id");
			r = nl_vm_get(n, 0, vm->h.name, &v);
			CHILD_CHECK(r == 0 && v.id == req.id,
				    "by name: %s, id %u", strerror(-r), v.id);
			/* ... and taken now, in this namespace only. */
			req.id = 0;	/* output only */
			CHILD_CHECK(ioctl(dev, LVMM_CREATE_VM, &req) < 0 &&
				    errno == EEXIST, "a second one: %s",
				    strerror(errno));
			close(fd);
			close(dev);
		}
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 4)
		SKIP(goto out, "cannot create a network namespace");
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child in a new netns failed (status 0x%x)", status);
out:
	vm_free(vm);
	nlc_close(c);
}

/* ---- a big dump ----------------------------------------------------------------- */

FIXTURE(slow) {};
FIXTURE_SETUP(slow) {}
FIXTURE_TEARDOWN(slow) {}

#define NR_MANY	1000

TEST_F_TIMEOUT(slow, dump_1000_vms, 600)
{
	struct rlimit rl = { NR_MANY + 256, NR_MANY + 256 };
	struct lvmm_vm_handle *h;
	struct vm_dump d;
	struct nlc *c;
	int dev, r, seen = 0;
	char name[32];
	bool *listed;

	REQUIRE_LVMM(c);
	TEST_REQUIRE(!setrlimit(RLIMIT_NOFILE, &rl));
	h = calloc(NR_MANY, sizeof(*h));
	listed = calloc(NR_MANY, sizeof(*listed));
	ASSERT_TRUE(h && listed);
	dev = open_lvmm_dev();
	for (int i = 0; i < NR_MANY; i++) {
		snprintf(name, sizeof(name), "nl-many-%d", i);
		r = lvmm_vm_create(dev, name, &h[i]);
		ASSERT_EQ(0, r) TH_LOG("VM %d: %s", i, strerror(-r));
	}
	ASSERT_EQ(0, nl_vm_dump(c, &d)) TH_LOG("%s", c->ext);
	EXPECT_GE(d.n, NR_MANY);
	for (size_t i = 0; i < d.n; i++) {
		int k;

		/* Each VM once, under its own name and id. */
		if (sscanf(d.vms[i].name, "nl-many-%d", &k) != 1)
			continue;
		ASSERT_TRUE(k >= 0 && k < NR_MANY);
		EXPECT_EQ(h[k].id, d.vms[i].id);
		EXPECT_FALSE(listed[k]) TH_LOG("%s listed twice",
					       d.vms[i].name);
		listed[k] = true;
		seen++;
	}
	EXPECT_EQ(NR_MANY, seen);
	for (int i = 0; i < NR_MANY; i++)
		close(h[i].fd);
	free(d.vms);
	free(listed);
	free(h);
	close(dev);
	/* And all gone with their fds. */
	ASSERT_EQ(0, nl_vm_dump(c, &d));
	for (size_t i = 0; i < d.n; i++)
		EXPECT_NE(0, strncmp(d.vms[i].name, "nl-many-", 8));
	free(d.vms);
	nlc_close(c);
}

/* ---- events ---------------------------------------------------------------------- */

TEST(events)
{
	struct nl_events *ev;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm, *vm2;
	struct runner r;
	struct nl_vm e;
	struct nlc *c;

	REQUIRE_LVMM(c);
	ev = events_open();

	vm = vm_create_with_one_vcpu(&vcpu, guest_count);
	ASSERT_TRUE(event_next(ev, vm->h.id, &e)) TH_LOG("no created event");
	EXPECT_EQ(LVMM_EVENT_CREATED, e.event);
	EXPECT_STREQ(vm->h.name, e.name);
	EXPECT_EQ(geteuid(), e.owner_uid);
	EXPECT_EQ(getpid(), (pid_t)e.creator_pid);

	runner_start(&r, vcpu);
	ASSERT_TRUE(wait_for(counter_of(vm) > 1000, 20000));
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id));
	ASSERT_TRUE(event_next(ev, vm->h.id, &e)) TH_LOG("no paused event");
	EXPECT_EQ(LVMM_EVENT_PAUSED, e.event);
	EXPECT_EQ(LVMM_VM_STATE_PAUSED, e.state);
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id));
	ASSERT_TRUE(event_next(ev, vm->h.id, &e)) TH_LOG("no resumed event");
	EXPECT_EQ(LVMM_EVENT_RESUMED, e.event);
	EXPECT_EQ(LVMM_VM_STATE_RUNNING, e.state);
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_DESTROY, vm->h.id));
	ASSERT_TRUE(event_next(ev, vm->h.id, &e)) TH_LOG("no destroyed event");
	EXPECT_EQ(LVMM_EVENT_DESTROYED, e.event);
	EXPECT_EQ(LVMM_VM_STATE_DESTROYED, e.state);
	runner_join(&r);
	EXPECT_EQ(LVMM_EXIT_VM_DESTROYED, r.exit_reason);
	vm_free(vm);

	/* Shutdown: a triple fault. */
	vm2 = vm_create_with_one_vcpu(&vcpu, guest_triple_fault);
	ASSERT_TRUE(event_next(ev, vm2->h.id, &e));
	EXPECT_EQ(LVMM_EVENT_CREATED, e.event);
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_SHUTDOWN);
	ASSERT_TRUE(event_next(ev, vm2->h.id, &e)) TH_LOG("no shutdown event");
	EXPECT_EQ(LVMM_EVENT_SHUTDOWN, e.event);
	EXPECT_EQ(LVMM_VM_STATE_SHUTDOWN, e.state);
	ASSERT_EQ(0, nl_vm_get(c, vm2->h.id, NULL, &e));
	EXPECT_EQ(LVMM_VM_STATE_SHUTDOWN, e.state);

	/* The last fd going is a destroy too. */
	vm_free(vm2);
	ASSERT_TRUE(event_next(ev, e.id, &e)) TH_LOG("no destroyed event on close");
	EXPECT_EQ(LVMM_EVENT_DESTROYED, e.event);
	events_close(ev);
	nlc_close(c);
}

static void guest_port_loop(void)
{
	for (;;)
		asm volatile("outb %%al, $0x80" ::: "memory");
}

struct rewriter {
	volatile __u32 *exit_reason;
	volatile bool stop;
};

static void *rewriter_fn(void *arg)
{
	struct rewriter *w = arg;

	while (!w->stop)
		*w->exit_reason = LVMM_EXIT_SHUTDOWN;
	return NULL;
}

/*
 * run->exit_reason is the VMM's to write at any time: a VMM that writes
 * SHUTDOWN there, while its vCPU runs a guest that only does port I/O,
 * must not make lvmm tell the world the VM shut down.  After a thousand
 * exits the next event is still the destroy.
 */
TEST(no_shutdown_event_from_userspace)
{
	struct rewriter w = {};
	struct nl_events *ev;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct nl_vm e;
	pthread_t t;
	u32 id;
	int i;

	TEST_REQUIRE(lvmm_dev_present());
	ev = events_open();
	vm = vm_create_with_one_vcpu(&vcpu, guest_port_loop);
	id = vm->h.id;
	ASSERT_TRUE(event_next(ev, id, &e));
	EXPECT_EQ(LVMM_EVENT_CREATED, e.event);
	w.exit_reason = &vcpu->run->exit_reason;
	ASSERT_EQ(0, pthread_create(&t, NULL, rewriter_fn, &w));
	for (i = 0; i < 1000; i++)
		ASSERT_EQ(0, lvmm_run(&vcpu->h));
	w.stop = true;
	pthread_join(t, NULL);
	vm_free(vm);
	ASSERT_TRUE(event_next(ev, id, &e)) TH_LOG("no destroyed event");
	EXPECT_EQ(LVMM_EVENT_DESTROYED, e.event)
		TH_LOG("event %u before the destroy", e.event);
	events_close(ev);
}

/*
 * Another thread closes the new VM fd the moment it is installed: the
 * events must still say created, then destroyed, for the same VM.  (The
 * fd is the VMM's from fd_install() on; nothing may touch the VM after.)
 */
struct closer {
	volatile int fd;
	volatile bool armed, stop;
};

static void *closer_fn(void *arg)
{
	struct closer *c = arg;

	while (!c->stop)
		if (c->armed && !close(c->fd))
			c->armed = false;
	return NULL;
}

TEST(events_create_close_race)
{
	struct closer cl = {};
	struct nl_events *ev;
	pthread_t th;
	struct nl_vm e;
	struct nlc *c;
	int dev, i;

	REQUIRE_LVMM(c);
	ev = events_open();
	dev = open_lvmm_dev();
	ASSERT_EQ(0, pthread_create(&th, NULL, closer_fn, &cl));
	for (i = 0; i < 200; i++) {
		struct lvmm_create_vm req = {};
		int fd = dup(0);

		/* The lowest free fd is the one LVMM_CREATE_VM will use. */
		ASSERT_GE(fd, 0);
		close(fd);
		cl.fd = fd;
		cl.armed = true;
		fd = ioctl(dev, LVMM_CREATE_VM, &req);
		ASSERT_GE(fd, 0) TH_LOG("LVMM_CREATE_VM: %s", strerror(errno));
		ASSERT_EQ(cl.fd, fd);
		ASSERT_TRUE(wait_for(!cl.armed, 5000));
		ASSERT_TRUE(event_next(ev, req.id, &e))
			TH_LOG("VM %u: no event", req.id);
		ASSERT_EQ(LVMM_EVENT_CREATED, e.event)
			TH_LOG("VM %u: event %u before created", req.id, e.event);
		ASSERT_TRUE(event_next(ev, req.id, &e))
			TH_LOG("VM %u: no destroyed event", req.id);
		ASSERT_EQ(LVMM_EVENT_DESTROYED, e.event);
	}
	cl.stop = true;
	pthread_join(th, NULL);
	close(dev);
	events_close(ev);
	nlc_close(c);
}

/* ---- pause and resume ---------------------------------------------------------------- */

TEST(pause_resume_keeps_progress)
{
	struct vcpu_dump d;
	struct lvmm_vm *vm;
	struct runner r;
	struct nl_vm v;
	struct nlc *c;
	u64 c1, c2, c3;

	REQUIRE_LVMM(c);
	vm = counting_vm(&r);

	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id))
		TH_LOG("%s", c->ext);
	/* Pause kicks without waiting: the VM is paused at once ... */
	ASSERT_EQ(0, nl_vm_get(c, vm->h.id, NULL, &v));
	EXPECT_EQ(LVMM_VM_STATE_PAUSED, v.state);
	/* ... and its vCPUs park as soon as they leave guest mode. */
	ASSERT_EQ(0, nl_vcpu_dump(c, vm->h.id, &d));
	ASSERT_EQ(1, d.n);
	EXPECT_TRUE(wait_for(!nl_vcpu_dump(c, vm->h.id, &d) &&
			     d.v[0].state == LVMM_VCPU_STATE_PAUSED, 5000))
		TH_LOG("vCPU state %u, not paused", d.v[0].state);
	/* Once parked, the guest does not run any more. */
	c1 = counter_of(vm);
	usleep(300000);
	c2 = counter_of(vm);
	EXPECT_EQ(c1, c2) TH_LOG("the guest counted while paused");
	EXPECT_TRUE(r.in_run) TH_LOG("RUN returned on pause");
	EXPECT_FALSE(r.done);

	/* A second pause: EALREADY, and it says why. */
	EXPECT_EQ(-EALREADY, nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id));
	EXPECT_NE(0, c->ext[0]);

	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id));
	ASSERT_TRUE(wait_for(counter_of(vm) > c2 + 1000, 20000))
		TH_LOG("the guest does not count after resume");
	c3 = counter_of(vm);
	EXPECT_GT(c3, c2);	/* on from where it stopped, not from 0 */
	EXPECT_EQ(0, r.nr_eintr);
	/* Resuming a running VM: EALREADY. */
	EXPECT_EQ(-EALREADY, nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id));
	EXPECT_NE(0, c->ext[0]);
	ASSERT_EQ(0, nl_vm_get(c, vm->h.id, NULL, &v));
	EXPECT_EQ(LVMM_VM_STATE_RUNNING, v.state);

	stop_guest(vm);
	runner_join(&r);
	EXPECT_EQ(0, r.ret);
	EXPECT_EQ(LVMM_EXIT_IO, r.exit_reason);	/* the GUEST_DONE ucall */
	{
		struct ucall uc;

		EXPECT_EQ(UCALL_DONE, get_ucall(r.vcpu, &uc));
	}
	EXPECT_GE(counter_of(vm), c3);
	vm_free(vm);
	nlc_close(c);
}

TEST(signal_while_paused)
{
	struct vcpu_dump d;
	struct lvmm_vm *vm;
	struct runner r;
	struct nlc *c;
	u64 c1;

	REQUIRE_LVMM(c);
	vm = counting_vm(&r);
	r.retry_eintr = false;
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id));
	/* Pause does not wait: the guest counts until the vCPU parks. */
	EXPECT_TRUE(wait_for(!nl_vcpu_dump(c, vm->h.id, &d) &&
			     d.v[0].state == LVMM_VCPU_STATE_PAUSED, 5000));
	c1 = counter_of(vm);
	usleep(100000);
	/* A signal takes the thread out of RUN, as any RUN. */
	pthread_kill(r.thread, SIGUSR1);
	ASSERT_TRUE(wait_for(r.done, 5000)) TH_LOG("RUN ignored a signal");
	runner_join(&r);
	EXPECT_EQ(-EINTR, r.ret);
	EXPECT_EQ(LVMM_EXIT_INTR, r.exit_reason);
	EXPECT_EQ(c1, counter_of(vm));

	/* RUN again: still paused, it blocks without running the guest. */
	r.retry_eintr = true;
	runner_restart(&r);
	usleep(300000);
	EXPECT_FALSE(r.done);
	EXPECT_EQ(c1, counter_of(vm));
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id));
	EXPECT_TRUE(wait_for(counter_of(vm) > c1, 20000));
	stop_guest(vm);
	runner_join(&r);
	EXPECT_EQ(0, r.ret);
	vm_free(vm);
	nlc_close(c);
}

/* ---- destroy ----------------------------------------------------------------------------- */

TEST(destroy_running_vm)
{
	struct lvmm_vm *vm, *again;
	struct runner r;
	struct nl_vm v;
	struct nlc *c;
	char name[LVMM_VM_NAME_LEN];
	int status, ret;
	pid_t pid;
	u64 c1;

	REQUIRE_LVMM(c);
	vm = counting_vm(&r);
	snprintf(name, sizeof(name), "%s", vm->h.name);

	/* Another process destroys it, by name. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		struct nlc *n = nlc_open();
		struct nl_msg *msg;

		CHILD_CHECK(n, "no family");
		msg = nlc_msg(n, LVMM_CMD_VM_DESTROY, 0);
		nla_put_string(msg, LVMM_A_VM_NAME, name);
		ret = nlc_exec(n, msg, NULL, NULL);
		CHILD_CHECK(ret == 0, "destroy: %s (%s)", strerror(-ret),
			    n->ext);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));

	/* The vCPU thread leaves RUN, with VM_DESTROYED. */
	ASSERT_TRUE(wait_for(r.done, 10000)) TH_LOG("RUN did not return");
	runner_join(&r);
	EXPECT_EQ(0, r.ret);
	EXPECT_EQ(LVMM_EXIT_VM_DESTROYED, r.exit_reason);
	c1 = counter_of(vm);

	/* Gone from the list at once, though its fds are open. */
	EXPECT_EQ(-ENOENT, nl_vm_get(c, vm->h.id, NULL, &v));
	EXPECT_EQ(-ENOENT, nl_vm_get(c, 0, name, &v));
	/* A second destroy finds nothing. */
	EXPECT_EQ(-ENOENT, nl_vm_cmd(c, LVMM_CMD_VM_DESTROY, vm->h.id));

	/* The name is free at once. */
	again = vm_create_bare(name);
	EXPECT_STREQ(name, again->h.name);
	EXPECT_NE(vm->h.id, again->h.id);
	ASSERT_EQ(0, nl_vm_get(c, 0, name, &v));
	EXPECT_EQ(again->h.id, v.id);

	/* RUN again: the same answer, and the guest never runs. */
	ret = __vcpu_run(r.vcpu);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(LVMM_EXIT_VM_DESTROYED, r.vcpu->run->exit_reason);
	ret = __vcpu_run(r.vcpu);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(LVMM_EXIT_VM_DESTROYED, r.vcpu->run->exit_reason);
	EXPECT_EQ(c1, counter_of(vm));

	/* Its memory is still there for the VMM until the last fd. */
	EXPECT_GT(c1, 0);
	vm_free(vm);
	vm_free(again);
	nlc_close(c);
}

TEST(destroy_paused_vm)
{
	struct lvmm_vm *vm;
	struct runner r;
	struct nlc *c;

	REQUIRE_LVMM(c);
	vm = counting_vm(&r);
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id));
	usleep(100000);
	/* A parked vCPU wakes up to its VM's destruction. */
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_DESTROY, vm->h.id));
	ASSERT_TRUE(wait_for(r.done, 10000)) TH_LOG("RUN stayed parked");
	runner_join(&r);
	EXPECT_EQ(0, r.ret);
	EXPECT_EQ(LVMM_EXIT_VM_DESTROYED, r.exit_reason);
	/* Nothing to pause or resume any more. */
	EXPECT_EQ(-ENOENT, nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id));
	vm_free(vm);
	nlc_close(c);
}

TEST_HARNESS_MAIN
