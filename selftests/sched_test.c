// SPDX-License-Identifier: GPL-2.0
/*
 * A VM's scheduling policy over the management plane (sched-get,
 * sched-set): its defaults, malformed and refused requests (all or
 * nothing, with an extack message), what a VM's owner may ask for
 * without CAP_NET_ADMIN, and what the policy does to running vCPUs: the
 * cap holds, weights share a contended CPU, a throttled vCPU still
 * answers a signal, pause and destroy at once, a pin moves a running
 * vCPU and lives through CPU hotplug, a reservation holds against
 * nice -20 hogs and is refused when the host cannot honour it, and
 * sched-set is announced on the events group.
 */
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "nl_util.h"
#include "ucall.h"
#include "vcpu_runner.h"

#define MS		1000000ULL	/* ns */

/* How far a capped guest's share of wall time may be off (points). */
#define CAP_TOLERANCE	10.0

/* ---- sched-get and sched-set ------------------------------------------- */

struct nl_sched_vcpu {
	u32 id;
	bool has_cpus, pin_broken;
	cpu_set_t cpus;
};

struct nl_sched {
	u32 vm_id;
	char vm_name[LVMM_VM_NAME_LEN];
	u32 weight, cap, period_us, reserve;
	bool has_nice;
	int nice;
	bool has_counters;
	u64 nr_periods, nr_throttled, throttled_ns;
	u32 nr_vcpus;
	struct nl_sched_vcpu vcpu[MAX_VCPUS];
};

static int sched_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[LVMM_A_SCHED_MAX + 1], *nests[MAX_VCPUS + 1];
	struct nl_sched *s = arg;
	int n;

	TEST_ASSERT(genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_SCHED_MAX,
				  NULL) >= 0, "sched-get: bad reply");
	TEST_ASSERT(tb[LVMM_A_SCHED_VM_ID] && tb[LVMM_A_SCHED_VM_NAME] &&
		    tb[LVMM_A_SCHED_WEIGHT] && tb[LVMM_A_SCHED_CAP] &&
		    tb[LVMM_A_SCHED_PERIOD_US],
		    "sched-get: vm-id, vm-name, weight, cap or period-us missing");
	s->vm_id = nla_get_u32(tb[LVMM_A_SCHED_VM_ID]);
	snprintf(s->vm_name, sizeof(s->vm_name), "%s",
		 nla_get_string(tb[LVMM_A_SCHED_VM_NAME]));
	s->weight = nla_get_u32(tb[LVMM_A_SCHED_WEIGHT]);
	s->cap = nla_get_u32(tb[LVMM_A_SCHED_CAP]);
	s->period_us = nla_get_u32(tb[LVMM_A_SCHED_PERIOD_US]);
	if (tb[LVMM_A_SCHED_RESERVE])
		s->reserve = nla_get_u32(tb[LVMM_A_SCHED_RESERVE]);
	s->has_nice = tb[LVMM_A_SCHED_NICE];
	if (s->has_nice)
		s->nice = nla_get_s32(tb[LVMM_A_SCHED_NICE]);
	s->has_counters = tb[LVMM_A_SCHED_NR_PERIODS] &&
			  tb[LVMM_A_SCHED_NR_THROTTLED] &&
			  tb[LVMM_A_SCHED_THROTTLED_NS];
	if (s->has_counters) {
		s->nr_periods = nla_get_u64(tb[LVMM_A_SCHED_NR_PERIODS]);
		s->nr_throttled = nla_get_u64(tb[LVMM_A_SCHED_NR_THROTTLED]);
		s->throttled_ns = nla_get_u64(tb[LVMM_A_SCHED_THROTTLED_NS]);
	}
	n = nl_attrs_of_type(msg, LVMM_A_SCHED_VCPU, nests, ARRAY_SIZE(nests));
	TEST_ASSERT(n <= MAX_VCPUS, "sched-get: %d vcpu nests", n);
	for (int i = 0; i < n; i++) {
		struct nlattr *vt[LVMM_A_SCHED_VCPU_MAX + 1];
		struct nl_sched_vcpu *v = &s->vcpu[s->nr_vcpus++];

		TEST_ASSERT(!nla_parse_nested(vt, LVMM_A_SCHED_VCPU_MAX,
					      nests[i], NULL) &&
			    vt[LVMM_A_SCHED_VCPU_ID], "sched-get: bad vcpu nest");
		v->id = nla_get_u32(vt[LVMM_A_SCHED_VCPU_ID]);
		v->has_cpus = vt[LVMM_A_SCHED_VCPU_CPUS];
		if (v->has_cpus)
			nl_get_cpus(vt[LVMM_A_SCHED_VCPU_CPUS], &v->cpus);
		v->pin_broken = vt[LVMM_A_SCHED_VCPU_PIN_BROKEN];
	}
	return NL_OK;
}

/* A sched-get or sched-set naming VM @vm_id (none if 0). */
static struct nl_msg *sched_msg(struct nlc *c, u8 cmd, u32 vm_id)
{
	struct nl_msg *msg = nlc_msg(c, cmd, 0);

	if (vm_id)
		nla_put_u32(msg, LVMM_A_SCHED_VM_ID, vm_id);
	return msg;
}

static int sched_get(struct nlc *c, u32 vm_id, struct nl_sched *s)
{
	memset(s, 0, sizeof(*s));
	return nlc_exec(c, sched_msg(c, LVMM_CMD_SCHED_GET, vm_id), sched_cb, s);
}

/* sched-set of one u32 attribute: weight, cap, period-us or reserve. */
static struct nl_msg *sched_set_msg(struct nlc *c, u32 vm_id, int attr,
				    u32 val)
{
	struct nl_msg *msg = sched_msg(c, LVMM_CMD_SCHED_SET, vm_id);

	nla_put_u32(msg, attr, val);
	return msg;
}

static int sched_set(struct nlc *c, u32 vm_id, int attr, u32 val)
{
	return nlc_exec(c, sched_set_msg(c, vm_id, attr, val), NULL, NULL);
}

static int sched_set_cap(struct nlc *c, u32 vm_id, u32 cap, u32 period_us)
{
	struct nl_msg *msg = sched_set_msg(c, vm_id, LVMM_A_SCHED_CAP, cap);

	nla_put_u32(msg, LVMM_A_SCHED_PERIOD_US, period_us);
	return nlc_exec(c, msg, NULL, NULL);
}

/* A sched-vcpu nest: pin @vcpu to @cpus (empty: unpin). */
static void put_pin(struct nl_msg *msg, u32 vcpu, const cpu_set_t *cpus)
{
	/* Strict validation wants NLA_F_NESTED on a nest. */
	struct nlattr *nest = nla_nest_start(msg, LVMM_A_SCHED_VCPU |
					     NLA_F_NESTED);

	TEST_ASSERT(nest && !nla_put_u32(msg, LVMM_A_SCHED_VCPU_ID, vcpu) &&
		    !nl_put_cpus(msg, LVMM_A_SCHED_VCPU_CPUS, cpus),
		    "building a sched-vcpu nest");
	nla_nest_end(msg, nest);
}

static struct nl_msg *sched_pin_msg(struct nlc *c, u32 vm_id, u32 vcpu,
				    const cpu_set_t *cpus)
{
	struct nl_msg *msg = sched_msg(c, LVMM_CMD_SCHED_SET, vm_id);

	put_pin(msg, vcpu, cpus);
	return msg;
}

static int sched_pin(struct nlc *c, u32 vm_id, u32 vcpu, const cpu_set_t *cpus)
{
	return nlc_exec(c, sched_pin_msg(c, vm_id, vcpu, cpus), NULL, NULL);
}

/* The set of just @cpu; empty for a negative @cpu. */
static cpu_set_t cpus_of(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	if (cpu >= 0)
		CPU_SET(cpu, &set);
	return set;
}

static const struct nl_sched_vcpu *sched_vcpu(const struct nl_sched *s,
					      u32 id)
{
	for (u32 i = 0; i < s->nr_vcpus; i++)
		if (s->vcpu[i].id == id)
			return &s->vcpu[i];
	return NULL;
}

/* The policy in two sched-get replies is the same (counters aside). */
static bool same_policy(const struct nl_sched *a, const struct nl_sched *b)
{
	if (a->weight != b->weight || a->cap != b->cap ||
	    a->period_us != b->period_us || a->reserve != b->reserve ||
	    a->has_nice != b->has_nice || (a->has_nice && a->nice != b->nice) ||
	    a->nr_vcpus != b->nr_vcpus)
		return false;
	for (u32 i = 0; i < a->nr_vcpus; i++) {
		const struct nl_sched_vcpu *va = &a->vcpu[i], *vb = &b->vcpu[i];

		if (va->id != vb->id || va->has_cpus != vb->has_cpus ||
		    va->pin_broken != vb->pin_broken ||
		    (va->has_cpus && !CPU_EQUAL(&va->cpus, &vb->cpus)))
			return false;
	}
	return true;
}

/* ---- vCPUs, host CPUs and threads -------------------------------------- */

/* vcpu-get of vCPU @id of VM @vm_id, asserting. */
static struct nl_vcpu vcpu_get(struct nlc *c, u32 vm_id, u32 id)
{
	struct vcpu_dump *d = calloc(1, sizeof(*d));
	struct nl_vcpu v;
	int r;

	TEST_ASSERT(d, "out of memory");
	r = nl_vcpu_dump(c, vm_id, d);
	TEST_ASSERT(!r, "vcpu-get of VM %u: %s (%s)", vm_id, strerror(-r),
		    c->ext);
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].id == id) {
			v = d->v[i];
			free(d);
			return v;
		}
	}
	TEST_FAIL("vcpu-get of VM %u: no vCPU %u", vm_id, id);
}

static bool vcpu_on(struct nlc *c, u32 vm_id, u32 id, int cpu)
{
	struct nl_vcpu v = vcpu_get(c, vm_id, id);

	return v.has_cpu && v.cpu == (u32)cpu;
}

/* The highest CPU of a sysfs CPU list ("0-3,6") into @set; -1 if none. */
static int read_cpu_list(const char *path, cpu_set_t *set)
{
	char buf[4096], *p = buf, *end;
	int max = -1;
	FILE *f;

	CPU_ZERO(set);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	while (*p >= '0' && *p <= '9') {
		long lo = strtol(p, &end, 10), hi = lo;

		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		for (long cpu = lo; cpu <= hi && cpu < CPU_SETSIZE; cpu++)
			CPU_SET(cpu, set);
		if (hi > max)
			max = hi;
		p = *end == ',' ? end + 1 : end;
	}
	return max;
}

static int nr_cpu_ids(void)
{
	cpu_set_t possible;

	return read_cpu_list("/sys/devices/system/cpu/possible", &possible) + 1;
}

/* Online CPUs this process may run on; returns how many. */
static int usable_cpus(cpu_set_t *set)
{
	cpu_set_t online, mine;

	read_cpu_list("/sys/devices/system/cpu/online", &online);
	TEST_ASSERT(!sched_getaffinity(0, sizeof(mine), &mine),
		    "sched_getaffinity");
	CPU_AND(set, &online, &mine);
	return CPU_COUNT(set);
}

/* The @n-th CPU of @set (from 0), -1 if it has fewer. */
static int nth_cpu(const cpu_set_t *set, int n)
{
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, set) && !n--)
			return cpu;
	return -1;
}

static int thread_nice(pid_t tid)
{
	int nice;

	errno = 0;
	nice = getpriority(PRIO_PROCESS, tid);
	TEST_ASSERT(!errno, "getpriority(%d)", tid);
	return nice;
}

/* Destroy @vm, running on the @n runners @r, and wait for them. */
static void destroy_vm_runners(struct nlc *c, struct lvmm_vm *vm,
			       struct runner *r, int n)
{
	int ret = nl_vm_cmd(c, LVMM_CMD_VM_DESTROY, vm->h.id);

	TEST_ASSERT(!ret, "vm-destroy: %s (%s)", strerror(-ret), c->ext);
	for (int i = 0; i < n; i++) {
		TEST_ASSERT(wait_for(r[i].done, 5000),
			    "RUN did not return on destroy");
		runner_join(&r[i]);
	}
	vm_free(vm);
}

/* Destroy the VM that @r runs, wait for RUN to return, free the VM. */
static void destroy_running_vm(struct nlc *c, struct lvmm_vm *vm,
			       struct runner *r)
{
	destroy_vm_runners(c, vm, r, 1);
}

/*
 * Share of @ms of wall time, in percent, that vCPU 0 of @vm spent in the
 * guest and that its thread (run by @r) spent on a host CPU.
 */
static void measure_share(struct nlc *c, struct lvmm_vm *vm, struct runner *r,
			  u32 ms, double *guest_pct, double *thread_pct)
{
	struct timespec c0, c1;
	u64 g0, g1, t0, t1, tg0, tg1;
	clockid_t clk;

	TEST_ASSERT(!pthread_getcpuclockid(r->thread, &clk),
		    "pthread_getcpuclockid");
	/*
	 * Each figure against its own wall time: on a CPU full of nice -20
	 * hogs and a real-time vCPU this thread may wait long for the reply
	 * of vcpu-get, which must not stretch the thread's interval.
	 */
	clock_gettime(clk, &c0);
	t0 = now_ns();
	tg0 = now_ns();
	g0 = vcpu_get(c, vm->h.id, 0).guest_ns;
	tg0 = (tg0 + now_ns()) / 2;
	usleep(ms * 1000);
	clock_gettime(clk, &c1);
	t1 = now_ns();
	tg1 = now_ns();
	g1 = vcpu_get(c, vm->h.id, 0).guest_ns;
	tg1 = (tg1 + now_ns()) / 2;
	*guest_pct = 100.0 * (double)(g1 - g0) / (double)(tg1 - tg0);
	*thread_pct = 100.0 * ((c1.tv_sec - c0.tv_sec) * 1e9 +
			       (c1.tv_nsec - c0.tv_nsec)) / (double)(t1 - t0);
}

/*
 * The sandbox's CPU is itself a thread on a host that may be busy: it
 * loses the host CPU in bursts of milliseconds that the sandbox's clock
 * still counts, and a boost's end, a slice's kick, come late by as much.
 * On a loaded host a one-second share can then be 20 points off (a
 * reservation's guest share 19-57 % instead of 40, with two busy loops
 * beside the emulator on a 2-CPU host, 2026-12-01).  Where a bound is
 * tight, take up to SHARE_TRIES measurements, each printed, and pass on
 * the first within [@lo, @hi]: a policy that does not work misses in
 * every one.
 */
#define SHARE_TRIES	3

static bool share_within(struct nlc *c, struct lvmm_vm *vm, struct runner *r,
			 u32 ms, double lo, double hi, const char *what,
			 double *guest_pct, double *thread_pct)
{
	for (int i = 0; i < SHARE_TRIES; i++) {
		measure_share(c, vm, r, ms, guest_pct, thread_pct);
		ksft_print_msg("%s: thread %.1f %%, guest %.1f %%\n", what,
			       *thread_pct, *guest_pct);
		fflush(stdout);
		if (*guest_pct >= lo && *guest_pct <= hi)
			return true;
	}
	return false;
}

/* ---- the policy as sched-get reports it --------------------------------- */

TEST(get_defaults)
{
	struct lvmm_vcpu *vcpus[2];
	struct nl_sched *s, *by_name;
	struct lvmm_vm *vm;
	struct nl_msg *msg;
	struct nlc *c;

	REQUIRE_LVMM(c);
	s = calloc(1, sizeof(*s));
	by_name = calloc(1, sizeof(*by_name));
	ASSERT_TRUE(s && by_name);
	vm = vm_create_with_vcpus(2, guest_count, vcpus);

	ASSERT_EQ(0, sched_get(c, vm->h.id, s)) TH_LOG("%s", c->ext);
	EXPECT_EQ(vm->h.id, s->vm_id);
	EXPECT_STREQ(vm->h.name, s->vm_name);
	EXPECT_EQ(LVMM_SCHED_WEIGHT_DEFAULT, s->weight);
	EXPECT_EQ(0, s->cap);
	EXPECT_EQ(LVMM_SCHED_PERIOD_US_DEFAULT, s->period_us);
	EXPECT_EQ(0, s->reserve);
	/* lvmm leaves the threads' nice alone until a weight is set. */
	EXPECT_FALSE(s->has_nice);
	ASSERT_TRUE(s->has_counters);
	EXPECT_EQ(0, s->nr_periods);
	EXPECT_EQ(0, s->nr_throttled);
	EXPECT_EQ(0, s->throttled_ns);
	/* One nest per vCPU, none pinned. */
	ASSERT_EQ(2, s->nr_vcpus);
	for (u32 i = 0; i < 2; i++) {
		const struct nl_sched_vcpu *v = sched_vcpu(s, i);

		ASSERT_NE(NULL, v) TH_LOG("no nest for vCPU %u", i);
		EXPECT_FALSE(v->has_cpus);
		EXPECT_FALSE(v->pin_broken);
	}

	/* By name: the same. */
	msg = nlc_msg(c, LVMM_CMD_SCHED_GET, 0);
	nla_put_string(msg, LVMM_A_SCHED_VM_NAME, vm->h.name);
	ASSERT_EQ(0, nlc_exec(c, msg, sched_cb, by_name)) TH_LOG("%s", c->ext);
	EXPECT_EQ(vm->h.id, by_name->vm_id);
	EXPECT_TRUE(same_policy(s, by_name));

	/* vcpu-get: nothing throttled yet. */
	EXPECT_EQ(0, vcpu_get(c, vm->h.id, 0).nr_throttled);
	EXPECT_EQ(0, vcpu_get(c, vm->h.id, 0).throttled_ns);

	vm_free(vm);
	/* Gone with its last fd. */
	EXPECT_EQ(-ENOENT, sched_get(c, s->vm_id, by_name));
	EXPECT_NE(0, c->ext[0]);
	free(s);
	free(by_name);
	nlc_close(c);
}

TEST(weight_to_nice)
{
	/* The nice whose CFS weight, over nice 0's, is nearest weight / 256. */
	static const struct { u32 weight; int nice; } map[] = {
		{ 256, 0 }, { 512, -3 }, { 1024, -6 }, { 128, 3 },
		{ 320, -1 },	/* 1.25: nice -1 is 1277 / 1024 */
		{ 205, 1 },	/* 0.80: nice 1 is 820 / 1024 */
		{ 1, 19 }, { LVMM_SCHED_WEIGHT_MAX, -20 },
	};
	struct lvmm_vm *vm;
	struct nl_sched *s;
	struct nlc *c;
	int last = 19;

	REQUIRE_LVMM(c);
	s = calloc(1, sizeof(*s));
	ASSERT_NE(NULL, s);
	vm = vm_create_bare(NULL);
	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_WEIGHT,
				       map[i].weight)) TH_LOG("%s", c->ext);
		ASSERT_EQ(0, sched_get(c, vm->h.id, s));
		EXPECT_EQ(map[i].weight, s->weight);
		ASSERT_TRUE(s->has_nice) TH_LOG("weight %u: no nice",
						map[i].weight);
		EXPECT_EQ(map[i].nice, s->nice) TH_LOG("weight %u",
						       map[i].weight);
	}
	/* Heavier never maps to nicer. */
	for (u32 w = 1; w <= LVMM_SCHED_WEIGHT_MAX; w = w * 3 / 2 + 1) {
		ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_WEIGHT, w));
		ASSERT_EQ(0, sched_get(c, vm->h.id, s));
		ASSERT_TRUE(s->has_nice);
		EXPECT_LE(s->nice, last) TH_LOG("weight %u: nice %d", w, s->nice);
		EXPECT_GE(s->nice, -20);
		last = s->nice;
	}
	vm_free(vm);
	free(s);
	nlc_close(c);
}

/* ---- refused requests ----------------------------------------------------- */

enum { BY_ID, BY_BOTH, BY_NONE, BY_UNKNOWN_ID };

#define PIN_USABLE	0	/* every CPU this process may use */
#define PIN_BEYOND	1	/* CPU nr_cpu_ids */

static const struct bad_set {
	const char *what;
	int err;		/* 0: EINVAL, or ERANGE from a policy range */
	int vm;			/* how the request names the VM */
	int attr;		/* a u32 attribute to give, if non-zero */
	u32 val;
	int nr_pins;		/* pin nests: 2 gives the same one twice */
	u32 pin_vcpu;
	int pin_cpu;
} bad_sets[] = {
	{ "weight 0", .attr = LVMM_A_SCHED_WEIGHT, .val = 0 },
	{ "weight 65536", .attr = LVMM_A_SCHED_WEIGHT,
	  .val = LVMM_SCHED_WEIGHT_MAX + 1 },
	{ "cap 12801", .attr = LVMM_A_SCHED_CAP, .val = LVMM_SCHED_CAP_MAX + 1 },
	{ "period 999 us", .attr = LVMM_A_SCHED_PERIOD_US,
	  .val = LVMM_SCHED_PERIOD_US_MIN - 1 },
	{ "period 1000001 us", .attr = LVMM_A_SCHED_PERIOD_US,
	  .val = LVMM_SCHED_PERIOD_US_MAX + 1 },
	{ "unknown attribute", -EINVAL, .attr = LVMM_A_SCHED_MAX + 1, .val = 1 },
	{ "both vm-id and vm-name", -EINVAL, .vm = BY_BOTH },
	{ "neither vm-id nor vm-name", -EINVAL, .vm = BY_NONE },
	{ "no such VM", -ENOENT, .vm = BY_UNKNOWN_ID },
	{ "no such vCPU", -ENOENT, .nr_pins = 1, .pin_vcpu = 5,
	  .pin_cpu = PIN_USABLE },
	{ "CPU beyond nr_cpu_ids", -EINVAL, .nr_pins = 1,
	  .pin_cpu = PIN_BEYOND },
	{ "the same vCPU twice", -EINVAL, .nr_pins = 2, .pin_cpu = PIN_USABLE },
	{ "reserve above the cap", -EINVAL, .attr = LVMM_A_SCHED_RESERVE,
	  .val = 50 },
	{ "reserve over 100 per vCPU", -EINVAL, .attr = LVMM_A_SCHED_RESERVE,
	  .val = 101 },
	{ "reserve beside a 20 ms cap period", -EINVAL,
	  .attr = LVMM_A_SCHED_RESERVE, .val = 10 },
};

/* A pin nest of @vcpu to CPU nr_cpu_ids, which no host has. */
static void put_pin_beyond(struct nl_msg *msg, u32 vcpu)
{
	int cpu = nr_cpu_ids(), len = cpu / 8 + 1;
	struct nlattr *nest = nla_nest_start(msg, LVMM_A_SCHED_VCPU |
					     NLA_F_NESTED);
	u8 *bits = calloc(1, len);

	TEST_ASSERT(bits && cpu > 0, "nr_cpu_ids");
	bits[cpu / 8] = 1 << (cpu % 8);
	TEST_ASSERT(nest && !nla_put_u32(msg, LVMM_A_SCHED_VCPU_ID, vcpu) &&
		    !nla_put(msg, LVMM_A_SCHED_VCPU_CPUS, len, bits),
		    "building a sched-vcpu nest");
	nla_nest_end(msg, nest);
	free(bits);
}

static struct nl_msg *bad_set_msg(struct nlc *c, const struct bad_set *b,
				  struct lvmm_vm *vm, const cpu_set_t *usable)
{
	struct nl_msg *msg = nlc_msg(c, LVMM_CMD_SCHED_SET, 0);

	if (b->vm == BY_ID || b->vm == BY_BOTH)
		nla_put_u32(msg, LVMM_A_SCHED_VM_ID, vm->h.id);
	if (b->vm == BY_UNKNOWN_ID)
		nla_put_u32(msg, LVMM_A_SCHED_VM_ID, 0x7ffffff0);
	if (b->vm == BY_BOTH)
		nla_put_string(msg, LVMM_A_SCHED_VM_NAME, vm->h.name);
	if (b->attr)
		nla_put_u32(msg, b->attr, b->val);
	/*
	 * And a change that is fine on its own, which the refusal must not
	 * let through.
	 */
	if (b->attr == LVMM_A_SCHED_WEIGHT)
		nla_put_u32(msg, LVMM_A_SCHED_CAP, 20);
	else
		nla_put_u32(msg, LVMM_A_SCHED_WEIGHT, 777);
	for (int i = 0; i < b->nr_pins; i++) {
		if (b->pin_cpu == PIN_BEYOND)
			put_pin_beyond(msg, b->pin_vcpu);
		else
			put_pin(msg, b->pin_vcpu, usable);
	}
	return msg;
}

TEST(set_validation)
{
	struct nl_sched *before, *after;
	struct lvmm_vm *vm;
	cpu_set_t usable, pin;
	struct nlc *c;
	int cpu, r;

	REQUIRE_LVMM(c);
	before = calloc(1, sizeof(*before));
	after = calloc(1, sizeof(*after));
	ASSERT_TRUE(before && after);
	ASSERT_GE(usable_cpus(&usable), 1);
	cpu = nth_cpu(&usable, 0);
	vm = vm_create_bare(NULL);
	vm_vcpu_add_raw(vm, 0);

	/*
	 * A policy other than the defaults, to see that nothing moves: the
	 * pin is one CPU, the refused requests pin to all usable ones.
	 */
	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_WEIGHT, 300))
		TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_set_cap(c, vm->h.id, 40, 20000)) TH_LOG("%s", c->ext);
	pin = cpus_of(cpu);
	ASSERT_EQ(0, sched_pin(c, vm->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_get(c, vm->h.id, before));
	ASSERT_EQ(300, before->weight);
	ASSERT_EQ(40, before->cap);
	ASSERT_EQ(20000, before->period_us);
	ASSERT_TRUE(sched_vcpu(before, 0) && sched_vcpu(before, 0)->has_cpus);

	for (size_t i = 0; i < ARRAY_SIZE(bad_sets); i++) {
		const struct bad_set *b = &bad_sets[i];

		r = nlc_exec(c, bad_set_msg(c, b, vm, &usable), NULL, NULL);
		if (b->err) {
			EXPECT_EQ(b->err, r) TH_LOG("%s: %s (extack: %s)",
						    b->what, strerror(-r),
						    c->ext);
		} else {
			EXPECT_TRUE(r == -EINVAL || r == -ERANGE)
				TH_LOG("%s: %s", b->what, strerror(-r));
		}
		EXPECT_NE(0, c->ext[0]) TH_LOG("%s: no extack message", b->what);
		ASSERT_EQ(0, sched_get(c, vm->h.id, after));
		EXPECT_TRUE(same_policy(before, after))
			TH_LOG("%s changed the policy: weight %u cap %u period %u",
			       b->what, after->weight, after->cap,
			       after->period_us);
	}

	/* Reserve 0 is no reservation, and fine. */
	EXPECT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_RESERVE, 0))
		TH_LOG("%s", c->ext);
	/* The companion change alone goes through: the above could fail. */
	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_WEIGHT, 777));
	ASSERT_EQ(0, sched_get(c, vm->h.id, after));
	EXPECT_EQ(777, after->weight);
	EXPECT_EQ(40, after->cap);

	vm_free(vm);
	free(before);
	free(after);
	nlc_close(c);
}

/* ---- who may do what -------------------------------------------------------- */

/*
 * In the child: sched-set @msg of the VM @vm_id must be refused with
 * EPERM and an extack message, and change nothing.  Leaves the policy in
 * @s.
 */
static void child_refused(struct nlc *c, u32 vm_id, struct nl_msg *msg,
			  struct nl_sched *s, const char *what)
{
	struct nl_sched *was = calloc(1, sizeof(*was));
	int r;

	CHILD_CHECK(was && !sched_get(c, vm_id, was), "sched-get");
	r = nlc_exec(c, msg, NULL, NULL);
	CHILD_CHECK(r == -EPERM, "%s: %s", what, strerror(-r));
	CHILD_CHECK(c->ext[0], "%s: EPERM without extack", what);
	CHILD_CHECK(!sched_get(c, vm_id, s) && same_policy(was, s),
		    "%s changed the policy", what);
	free(was);
}

/*
 * As uid 65534 with no capabilities, confined to CPU @mine (@other: a
 * CPU it may not use, or -1): root's VM is out of reach, its own VM may
 * be made less demanding only.
 */
static void nobody_child(u32 root_vm, int dev, int mine, int other)
{
	struct nl_sched *s = calloc(1, sizeof(*s));
	cpu_set_t set = cpus_of(mine);
	struct lvmm_vcpu_handle vcpu;
	struct lvmm_vm_handle vm;
	struct nl_msg *msg;
	struct nlc *c;
	int r;

	CHILD_CHECK(s, "out of memory");
	/* The VM's creator may use @mine only. */
	CHILD_CHECK(!sched_setaffinity(0, sizeof(set), &set),
		    "sched_setaffinity");
	drop_to_nobody();
	/* Opened after dropping: the socket's creds are nobody's too. */
	c = nlc_open();
	CHILD_CHECK(c, "no lvmm family");

	r = sched_get(c, root_vm, s);
	CHILD_CHECK(r == -EPERM, "sched-get of root's VM: %s", strerror(-r));
	CHILD_CHECK(c->ext[0], "sched-get: EPERM without extack");
	/* Not even asking for less. */
	r = sched_set(c, root_vm, LVMM_A_SCHED_WEIGHT, 100);
	CHILD_CHECK(r == -EPERM, "sched-set of root's VM: %s", strerror(-r));
	CHILD_CHECK(c->ext[0], "sched-set: EPERM without extack");
	r = sched_set(c, root_vm, LVMM_A_SCHED_CAP, 10);
	CHILD_CHECK(r == -EPERM, "cap on root's VM: %s", strerror(-r));

	/* A VM of its own, with a vCPU. */
	r = lvmm_vm_create(dev, NULL, &vm);
	CHILD_CHECK(!r, "LVMM_CREATE_VM as nobody: %s", strerror(-r));
	r = lvmm_vcpu_create(&vm, 0, &vcpu);
	CHILD_CHECK(!r, "LVMM_CREATE_VCPU as nobody: %s", strerror(-r));
	r = sched_get(c, vm.id, s);
	CHILD_CHECK(!r, "sched-get of its own VM: %s (%s)", strerror(-r),
		    c->ext);
	CHILD_CHECK(s->weight == LVMM_SCHED_WEIGHT_DEFAULT, "weight %u",
		    s->weight);

	/* Weight: down, and the same again, but not back up. */
	r = sched_set(c, vm.id, LVMM_A_SCHED_WEIGHT, 128);
	CHILD_CHECK(!r, "lowering the weight: %s (%s)", strerror(-r), c->ext);
	r = sched_set(c, vm.id, LVMM_A_SCHED_WEIGHT, 128);
	CHILD_CHECK(!r, "the same weight: %s (%s)", strerror(-r), c->ext);
	child_refused(c, vm.id, sched_set_msg(c, vm.id, LVMM_A_SCHED_WEIGHT,
					      LVMM_SCHED_WEIGHT_DEFAULT),
		      s, "raising the weight");
	CHILD_CHECK(s->weight == 128, "weight %u", s->weight);

	/* Cap: set, lower; not raise, not remove. */
	r = sched_set(c, vm.id, LVMM_A_SCHED_CAP, 50);
	CHILD_CHECK(!r, "setting a cap: %s (%s)", strerror(-r), c->ext);
	child_refused(c, vm.id, sched_set_msg(c, vm.id, LVMM_A_SCHED_CAP, 80),
		      s, "raising the cap");
	child_refused(c, vm.id, sched_set_msg(c, vm.id, LVMM_A_SCHED_CAP, 0),
		      s, "removing the cap");
	CHILD_CHECK(s->cap == 50, "cap %u", s->cap);
	r = sched_set(c, vm.id, LVMM_A_SCHED_CAP, 30);
	CHILD_CHECK(!r, "lowering the cap: %s (%s)", strerror(-r), c->ext);

	/* The period is the owner's to choose, either way. */
	r = sched_set(c, vm.id, LVMM_A_SCHED_PERIOD_US, 20000);
	CHILD_CHECK(!r, "a longer period: %s (%s)", strerror(-r), c->ext);
	r = sched_set(c, vm.id, LVMM_A_SCHED_PERIOD_US, 5000);
	CHILD_CHECK(!r, "a shorter period: %s (%s)", strerror(-r), c->ext);

	/* All or nothing: a lower weight with a higher cap changes neither. */
	msg = sched_set_msg(c, vm.id, LVMM_A_SCHED_WEIGHT, 64);
	nla_put_u32(msg, LVMM_A_SCHED_CAP, 90);
	child_refused(c, vm.id, msg, s, "lower weight with higher cap");
	CHILD_CHECK(s->weight == 128 && s->cap == 30 && s->period_us == 5000,
		    "weight %u cap %u period %u", s->weight, s->cap,
		    s->period_us);

	/* Pins: within the creator's CPUs only. */
	r = sched_pin(c, vm.id, 0, &set);
	CHILD_CHECK(!r, "pin to CPU %d: %s (%s)", mine, strerror(-r), c->ext);
	r = sched_get(c, vm.id, s);
	CHILD_CHECK(!r && sched_vcpu(s, 0) && sched_vcpu(s, 0)->has_cpus &&
		    CPU_EQUAL(&sched_vcpu(s, 0)->cpus, &set),
		    "the pin does not show");
	if (other >= 0) {
		cpu_set_t not_mine = cpus_of(other);

		child_refused(c, vm.id, sched_pin_msg(c, vm.id, 0, &not_mine),
			      s, "a pin outside the creator's CPUs");
	}
	_exit(0);
}

TEST(permissions)
{
	struct nl_sched *before, *after;
	struct lvmm_vm *vm;
	cpu_set_t usable;
	int status, dev;
	struct nlc *c;
	pid_t pid;

	REQUIRE_LVMM(c);
	if (geteuid())
		SKIP(return, "needs root, to drop to uid 65534");
	before = calloc(1, sizeof(*before));
	after = calloc(1, sizeof(*after));
	ASSERT_TRUE(before && after);
	ASSERT_GE(usable_cpus(&usable), 1);
	vm = vm_create_bare(NULL);
	ASSERT_EQ(0, sched_get(c, vm->h.id, before));
	/* /dev/lvmm is root's: opened here, before the child drops. */
	dev = open_lvmm_dev();
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		nobody_child(vm->h.id, dev, nth_cpu(&usable, 0),
			     nth_cpu(&usable, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the unprivileged child failed (status 0x%x)", status);
	if (CPU_COUNT(&usable) < 2)
		TH_LOG("one usable CPU: a pin outside the creator's CPUs was not tried");

	/* Root's VM is untouched. */
	ASSERT_EQ(0, sched_get(c, vm->h.id, after));
	EXPECT_TRUE(same_policy(before, after));
	close(dev);
	vm_free(vm);
	free(before);
	free(after);
	nlc_close(c);
}

/*
 * As uid 65534 in a user and network namespace of its own, where it has
 * CAP_NET_ADMIN: that is no admin right over the host's CPUs.
 */
static void userns_child(int dev)
{
	struct lvmm_vm_handle vm;
	struct nlc *c;
	int r;

	drop_to_nobody();
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET))
		_exit(4);	/* no unprivileged user namespaces: skip */
	c = nlc_open();
	CHILD_CHECK(c, "no lvmm family in the new namespace");
	r = lvmm_vm_create(dev, NULL, &vm);
	CHILD_CHECK(!r, "LVMM_CREATE_VM in a user namespace: %s", strerror(-r));
	/* Its own VM: pause is the owner's right, ... */
	r = nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm.id);
	CHILD_CHECK(!r, "pausing its own VM: %s (%s)", strerror(-r), c->ext);
	/* ... more CPU is not. */
	r = sched_set(c, vm.id, LVMM_A_SCHED_WEIGHT, 4096);
	CHILD_CHECK(r == -EPERM, "weight 4096 with CAP_NET_ADMIN in a user namespace: %s",
		    strerror(-r));
	CHILD_CHECK(c->ext[0], "EPERM without extack");
	r = sched_set(c, vm.id, LVMM_A_SCHED_WEIGHT, 100);
	CHILD_CHECK(!r, "lowering the weight: %s (%s)", strerror(-r), c->ext);
	_exit(0);
}

TEST(namespace_admin_is_not_host_admin)
{
	int status, dev;
	struct nlc *c;
	pid_t pid;

	REQUIRE_LVMM(c);
	if (geteuid())
		SKIP(return, "needs root, to drop to uid 65534");
	dev = open_lvmm_dev();
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		userns_child(dev);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	close(dev);
	nlc_close(c);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 4)
		SKIP(return, "unprivileged user namespaces are off");
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child in its own namespaces failed (status 0x%x)",
		       status);
}

/* ---- the cap ---------------------------------------------------------------- */

TEST(cap_holds)
{
	double guest, thread;
	struct nl_sched *s;
	struct nl_vcpu v;
	struct lvmm_vm *vm;
	struct runner r;
	struct nlc *c;

	REQUIRE_LVMM(c);
	s = calloc(1, sizeof(*s));
	ASSERT_NE(NULL, s);
	vm = counting_vm(&r);
	ASSERT_EQ(0, sched_set_cap(c, vm->h.id, 30, 10000)) TH_LOG("%s", c->ext);
	usleep(50000);		/* a few periods to settle */

	measure_share(c, vm, &r, 1000, &guest, &thread);
	EXPECT_GE(guest, 30 - CAP_TOLERANCE) TH_LOG("guest share %.1f %%", guest);
	EXPECT_LE(guest, 30 + CAP_TOLERANCE) TH_LOG("guest share %.1f %%", guest);
	/*
	 * Out of budget, the vCPU thread sleeps: it does not spin (which
	 * is 100 %).  The debug kernel's exits cost enough to bring a 30 %
	 * guest share to 74 % of thread time once (2026-11-30).
	 */
	EXPECT_LT(thread, 85)
		TH_LOG("vCPU thread on a CPU %.1f %% of the time", thread);

	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	ASSERT_TRUE(s->has_counters);
	EXPECT_GT(s->nr_periods, 0);
	EXPECT_GT(s->nr_throttled, 0);
	/* Completed periods, against throttled ones counting the current. */
	EXPECT_LE(s->nr_throttled, s->nr_periods + 1);
	EXPECT_GT(s->throttled_ns, 0);
	v = vcpu_get(c, vm->h.id, 0);
	EXPECT_GT(v.nr_throttled, 0);
	EXPECT_GT(v.throttled_ns, 0);
	/* Held back, it is still in RUN. */
	EXPECT_EQ(LVMM_VCPU_STATE_RUNNING, v.state);
	EXPECT_FALSE(r.done);

	destroy_running_vm(c, vm, &r);
	free(s);
	nlc_close(c);
}

/* Guest time of all of @vm's vCPUs over @ms of wall time, % of one CPU. */
static double vm_share(struct nlc *c, struct lvmm_vm *vm, u32 ms)
{
	struct nl_vm a, b;
	u64 t0, t1;

	TEST_ASSERT(!nl_vm_get(c, vm->h.id, NULL, &a), "vm-get: %s", c->ext);
	t0 = now_ns();
	usleep(ms * 1000);
	TEST_ASSERT(!nl_vm_get(c, vm->h.id, NULL, &b), "vm-get: %s", c->ext);
	t1 = now_ns();
	return 100.0 * (double)(b.guest_ns - a.guest_ns) / (double)(t1 - t0);
}

/*
 * A cap above one CPU bounds the vCPUs together: cap 150 on two spinning
 * vCPUs, each with a CPU of its own to run on, gives one and a half CPUs
 * of guest time, not one (a cap per vCPU, or one CPU's worth) and not
 * the two they get without it.  This checks that the cap binds where it
 * should; the bench measures how close it comes (the shortfall at each
 * period's end that Documentation/scheduling.rst, section 3, is about is
 * within this test's tolerance).
 */
TEST(cap_above_one_cpu)
{
	struct lvmm_vcpu *vcpus[2];
	double free2, got = 0;
	cpu_set_t usable, pin;
	struct lvmm_vm *vm;
	struct runner r[2];
	struct nlc *c;
	int i;

	REQUIRE_LVMM(c);
	if (usable_cpus(&usable) < 2)
		SKIP(return, "needs two online CPUs this process may use");
	vm = vm_create_with_vcpus(2, guest_count, vcpus);
	for (i = 0; i < 2; i++) {
		pin = cpus_of(nth_cpu(&usable, i));
		ASSERT_EQ(0, sched_pin(c, vm->h.id, i, &pin))
			TH_LOG("%s", c->ext);
		runner_start(&r[i], vcpus[i]);
	}
	usleep(300000);
	free2 = vm_share(c, vm, 1000);
	if (free2 < 150 + CAP_TOLERANCE) {
		destroy_vm_runners(c, vm, r, 2);
		SKIP(return, "two uncapped vCPUs got only %.1f %% of a CPU",
		     free2);
	}
	ASSERT_EQ(0, sched_set_cap(c, vm->h.id, 150, 10000))
		TH_LOG("%s", c->ext);
	usleep(50000);
	/* Up to SHARE_TRIES times, as share_within() does. */
	for (i = 0; i < SHARE_TRIES; i++) {
		got = vm_share(c, vm, 1000);
		ksft_print_msg("cap 150 on two vCPUs: %.1f %% (%.1f %% with no cap)\n",
			       got, free2);
		if (fabs(got - 150) <= CAP_TOLERANCE)
			break;
	}
	EXPECT_LE(fabs(got - 150), CAP_TOLERANCE)
		TH_LOG("cap 150: %.1f %% (%.1f %% with no cap)", got, free2);

	destroy_vm_runners(c, vm, r, 2);
	nlc_close(c);
}

/*
 * Re-sending the cap, or changing the period back and forth, never
 * refills the budget: cap 5 of a 1 s period stays near 5 % however often
 * the owner asks.
 */
TEST(cap_not_refilled_by_changes)
{
	double guest;
	struct lvmm_vm *vm;
	struct runner r;
	struct nlc *c, *c2;
	u64 g0, t0;
	int i;

	REQUIRE_LVMM(c);
	c2 = nlc_open();
	ASSERT_NE(NULL, c2);
	vm = counting_vm(&r);
	ASSERT_EQ(0, sched_set_cap(c, vm->h.id, 5, 1000000)) TH_LOG("%s", c->ext);
	usleep(100000);
	g0 = vcpu_get(c, vm->h.id, 0).guest_ns;
	t0 = now_ns();
	for (i = 0; i < 100; i++) {
		ASSERT_EQ(0, sched_set_cap(c2, vm->h.id, 5,
					   i % 2 ? 1000000 : 999000))
			TH_LOG("%s", c2->ext);
		usleep(10000);
	}
	guest = 100.0 * (double)(vcpu_get(c, vm->h.id, 0).guest_ns - g0) /
		(double)(now_ns() - t0);
	/* 5 % a period, and at most the one period started before. */
	EXPECT_LE(guest, 5 + CAP_TOLERANCE)
		TH_LOG("guest share %.1f %% under 100 changes", guest);
	destroy_running_vm(c, vm, &r);
	nlc_close(c2);
	nlc_close(c);
}

/*
 * A VM whose vCPU is held back nearly all the time: 1 % of a CPU over a
 * period of 1 s is 10 ms of guest time a second.  Returns once the vCPU
 * is throttled, with 990 ms of throttle still to go.
 */
static struct lvmm_vm *throttled_vm(struct nlc *c, struct runner *r)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct nl_vcpu v;
	u64 g;
	int ret;

	vm = vm_create_with_one_vcpu(&vcpu, guest_count);
	ret = sched_set_cap(c, vm->h.id, 1, LVMM_SCHED_PERIOD_US_MAX);
	TEST_ASSERT(!ret, "cap 1 %%: %s (%s)", strerror(-ret), c->ext);
	counting_vm_start(r, vcpu);
	r->retry_eintr = false;
	TEST_ASSERT(wait_for(vcpu_get(c, vm->h.id, 0).nr_throttled > 0, 3000),
		    "the vCPU is never throttled");
	usleep(5000);
	g = vcpu_get(c, vm->h.id, 0).guest_ns;
	usleep(20000);
	v = vcpu_get(c, vm->h.id, 0);
	TEST_ASSERT(v.guest_ns == g, "a throttled vCPU ran %llu ns in 20 ms",
		    (unsigned long long)(v.guest_ns - g));
	TEST_ASSERT(v.state == LVMM_VCPU_STATE_RUNNING && !r->done,
		    "a throttled vCPU is not in RUN (state %u)", v.state);
	return vm;
}

TEST(throttled_vcpu_leaves_run)
{
	struct lvmm_vm *vm;
	struct runner r;
	struct nlc *c;
	u64 t0, t1;

	REQUIRE_LVMM(c);

	/* A signal: EINTR at once. */
	vm = throttled_vm(c, &r);
	t0 = now_ns();
	pthread_kill(r.thread, SIGUSR1);
	ASSERT_TRUE(wait_for(r.done, 2000)) TH_LOG("RUN ignored a signal");
	runner_join(&r);
	EXPECT_EQ(-EINTR, r.ret);
	EXPECT_EQ(LVMM_EXIT_INTR, r.exit_reason);
	EXPECT_LE(r.done_ns - t0, 50 * MS)
		TH_LOG("RUN returned %llu ms after the signal",
		       (unsigned long long)((r.done_ns - t0) / MS));
	vm_free(vm);

	/* vm-pause: parked at once, still in RUN. */
	vm = throttled_vm(c, &r);
	t0 = now_ns();
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id))
		TH_LOG("%s", c->ext);
	ASSERT_TRUE(wait_for(vcpu_get(c, vm->h.id, 0).state ==
			     LVMM_VCPU_STATE_PAUSED, 2000))
		TH_LOG("the throttled vCPU does not park");
	t1 = now_ns();
	EXPECT_LE(t1 - t0, 50 * MS)
		TH_LOG("parked %llu ms after vm-pause",
		       (unsigned long long)((t1 - t0) / MS));
	EXPECT_FALSE(r.done);
	destroy_running_vm(c, vm, &r);
	EXPECT_EQ(LVMM_EXIT_VM_DESTROYED, r.exit_reason);

	/* vm-destroy: VM_DESTROYED at once. */
	vm = throttled_vm(c, &r);
	t0 = now_ns();
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_DESTROY, vm->h.id))
		TH_LOG("%s", c->ext);
	ASSERT_TRUE(wait_for(r.done, 2000)) TH_LOG("RUN did not return");
	runner_join(&r);
	EXPECT_EQ(0, r.ret);
	EXPECT_EQ(LVMM_EXIT_VM_DESTROYED, r.exit_reason);
	EXPECT_LE(r.done_ns - t0, 50 * MS)
		TH_LOG("RUN returned %llu ms after vm-destroy",
		       (unsigned long long)((r.done_ns - t0) / MS));
	vm_free(vm);
	nlc_close(c);
}

TEST(policy_before_first_run_and_across_pause)
{
	struct nl_sched *s, *was;
	struct lvmm_vcpu *vcpu;
	double guest, thread;
	struct lvmm_vm *vm;
	struct runner r;
	struct nlc *c;

	REQUIRE_LVMM(c);
	s = calloc(1, sizeof(*s));
	was = calloc(1, sizeof(*was));
	ASSERT_TRUE(s && was);
	vm = vm_create_with_one_vcpu(&vcpu, guest_count);
	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_WEIGHT, 128))
		TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_CAP, 50))
		TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_get(c, vm->h.id, was));
	EXPECT_EQ(128, was->weight);
	EXPECT_EQ(50, was->cap);
	EXPECT_EQ(LVMM_SCHED_PERIOD_US_DEFAULT, was->period_us);
	ASSERT_TRUE(was->has_nice);
	EXPECT_EQ(3, was->nice);

	/* The first RUN runs under it: nice +3 and the cap. */
	counting_vm_start(&r, vcpu);
	EXPECT_TRUE(wait_for(thread_nice(r.tid) == 3, 1000))
		TH_LOG("vCPU thread at nice %d", thread_nice(r.tid));
	/*
	 * Past the first entries first: their nested page faults (the
	 * guest's memory is allocated on first touch) take host time, a lot
	 * of it on the debug kernel, and would count against the share.
	 */
	usleep(300000);
	/*
	 * The cap is in force: never above it, and throttled.  How close
	 * to it a nice +3 vCPU gets is cap_holds's business: on the debug
	 * kernel this one now and then gets 37 % of its 50 % (left open).
	 */
	measure_share(c, vm, &r, 700, &guest, &thread);
	EXPECT_GE(guest, 50 - 3 * CAP_TOLERANCE)
		TH_LOG("guest share %.1f %%", guest);
	EXPECT_LE(guest, 50 + CAP_TOLERANCE) TH_LOG("guest share %.1f %%", guest);
	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	EXPECT_GT(s->nr_throttled, 0);

	/* Paused and resumed: the same policy, still enforced. */
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_PAUSE, vm->h.id))
		TH_LOG("%s", c->ext);
	ASSERT_TRUE(wait_for(vcpu_get(c, vm->h.id, 0).state ==
			     LVMM_VCPU_STATE_PAUSED, 2000));
	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	EXPECT_TRUE(same_policy(was, s)) TH_LOG("the policy changed on pause");
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id))
		TH_LOG("%s", c->ext);
	ASSERT_TRUE(wait_for(vcpu_get(c, vm->h.id, 0).state ==
			     LVMM_VCPU_STATE_RUNNING, 2000));
	usleep(30000);
	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	EXPECT_TRUE(same_policy(was, s)) TH_LOG("the policy changed on resume");
	measure_share(c, vm, &r, 700, &guest, &thread);
	EXPECT_GE(guest, 50 - 3 * CAP_TOLERANCE)
		TH_LOG("guest share %.1f %% after resume", guest);
	EXPECT_LE(guest, 50 + CAP_TOLERANCE)
		TH_LOG("guest share %.1f %% after resume", guest);
	EXPECT_EQ(3, thread_nice(r.tid));

	destroy_running_vm(c, vm, &r);
	free(s);
	free(was);
	nlc_close(c);
}

/* ---- weight ------------------------------------------------------------------ */

TEST(weight_shares_a_cpu)
{
	struct lvmm_vm *light, *heavy;
	struct runner rl, rh;
	u64 l0, h0, dl, dh;
	cpu_set_t usable, pin;
	struct nlc *c;
	int cpu;

	REQUIRE_LVMM(c);
	ASSERT_GE(usable_cpus(&usable), 1);
	cpu = nth_cpu(&usable, 0);
	pin = cpus_of(cpu);
	light = counting_vm(&rl);
	heavy = counting_vm(&rh);

	/* Both on one CPU, where they compete. */
	ASSERT_EQ(0, sched_pin(c, light->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_pin(c, heavy->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_set(c, light->h.id, LVMM_A_SCHED_WEIGHT, 256));
	ASSERT_EQ(0, sched_set(c, heavy->h.id, LVMM_A_SCHED_WEIGHT, 1024));
	ASSERT_TRUE(wait_for(vcpu_on(c, light->h.id, 0, cpu) &&
			     vcpu_on(c, heavy->h.id, 0, cpu), 1000))
		TH_LOG("the vCPUs do not run on CPU %d", cpu);
	EXPECT_TRUE(wait_for(thread_nice(rl.tid) == 0 &&
			     thread_nice(rh.tid) == -6, 1000))
		TH_LOG("nice %d and %d, not 0 and -6", thread_nice(rl.tid),
		       thread_nice(rh.tid));
	usleep(100000);

	l0 = vcpu_get(c, light->h.id, 0).guest_ns;
	h0 = vcpu_get(c, heavy->h.id, 0).guest_ns;
	usleep(1500000);
	dl = vcpu_get(c, light->h.id, 0).guest_ns - l0;
	dh = vcpu_get(c, heavy->h.id, 0).guest_ns - h0;
	/* 4 times the weight: about 3.8 times the time at nice -6 vs 0. */
	EXPECT_GT(dl, 0) TH_LOG("the lighter VM did not run at all");
	EXPECT_GT(dh, 2 * dl) TH_LOG("guest time %llu ms (1024) vs %llu ms (256)",
				     (unsigned long long)(dh / MS),
				     (unsigned long long)(dl / MS));

	destroy_running_vm(c, light, &rl);
	destroy_running_vm(c, heavy, &rh);
	nlc_close(c);
}

/* ---- pins -------------------------------------------------------------------- */

TEST(pin_moves_running_vcpu)
{
	cpu_set_t usable, pin;
	struct nl_sched *s;
	struct lvmm_vm *vm;
	struct nl_vcpu v;
	struct runner r;
	struct nlc *c;
	int a, b;
	u64 n;

	REQUIRE_LVMM(c);
	if (usable_cpus(&usable) < 2)
		SKIP(return, "needs two online CPUs this process may use");
	a = nth_cpu(&usable, 0);
	b = nth_cpu(&usable, 1);
	s = calloc(1, sizeof(*s));
	ASSERT_NE(NULL, s);
	vm = counting_vm(&r);

	pin = cpus_of(a);
	ASSERT_EQ(0, sched_pin(c, vm->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	ASSERT_TRUE(wait_for(vcpu_on(c, vm->h.id, 0, a), 1000))
		TH_LOG("the vCPU does not move to CPU %d", a);

	pin = cpus_of(b);
	ASSERT_EQ(0, sched_pin(c, vm->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	EXPECT_TRUE(wait_for(vcpu_on(c, vm->h.id, 0, b), 200))
		TH_LOG("the vCPU is not on CPU %d within 200 ms", b);
	v = vcpu_get(c, vm->h.id, 0);
	ASSERT_TRUE(v.has_affinity);
	EXPECT_TRUE(CPU_EQUAL(&pin, &v.affinity))
		TH_LOG("affinity of %d CPUs, not {%d}", CPU_COUNT(&v.affinity), b);
	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	ASSERT_NE(NULL, sched_vcpu(s, 0));
	EXPECT_TRUE(sched_vcpu(s, 0)->has_cpus &&
		    CPU_EQUAL(&pin, &sched_vcpu(s, 0)->cpus));
	EXPECT_FALSE(sched_vcpu(s, 0)->pin_broken);
	n = counter_of(vm);
	EXPECT_TRUE(wait_for(counter_of(vm) > n, 1000))
		TH_LOG("the guest stopped after the move");

	/* Unpinned: free to run on more than the pin again. */
	CPU_ZERO(&pin);
	ASSERT_EQ(0, sched_pin(c, vm->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	EXPECT_TRUE(wait_for((v = vcpu_get(c, vm->h.id, 0)).has_affinity &&
			     CPU_ISSET(a, &v.affinity) &&
			     CPU_ISSET(b, &v.affinity), 200))
		TH_LOG("affinity of %d CPUs after unpin",
		       CPU_COUNT(&v.affinity));
	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	EXPECT_FALSE(sched_vcpu(s, 0)->has_cpus);

	destroy_running_vm(c, vm, &r);
	free(s);
	nlc_close(c);
}

/*
 * CPU 1 goes offline and back.  It comes back online in the fixture's
 * teardown if an ASSERT fails, and at exit if a TEST_ASSERT does.
 */
#define CPU1_ONLINE	"/sys/devices/system/cpu/cpu1/online"

static bool cpu1_down;

static int cpu1_online(bool on)
{
	FILE *f = fopen(CPU1_ONLINE, "w");
	int r;

	if (!f)
		return -errno;
	r = fputs(on ? "1\n" : "0\n", f) < 0 ? -errno : 0;
	if (fclose(f) && !r)
		r = -errno;
	if (!r)
		cpu1_down = !on;
	return r;
}

static void cpu1_restore(void)
{
	if (cpu1_down && cpu1_online(true))
		fprintf(stderr, "# cannot bring CPU 1 back online\n");
}

FIXTURE(cpu1) {};

FIXTURE_SETUP(cpu1)
{
	atexit(cpu1_restore);
}

FIXTURE_TEARDOWN(cpu1)
{
	cpu1_restore();
}

/* Skip unless CPU 1 may go offline with CPU @other online. */
#define REQUIRE_CPU1_HOTPLUG(other) do {				\
	cpu_set_t __online;						\
									\
	if (geteuid())							\
		SKIP(return, "needs root for CPU hotplug");		\
	read_cpu_list("/sys/devices/system/cpu/online", &__online);	\
	if (!CPU_ISSET(1, &__online) || CPU_COUNT(&__online) < 2 ||	\
	    access(CPU1_ONLINE, W_OK))					\
		SKIP(return, "needs CPU 1 online and able to go offline"); \
	CPU_CLR(1, &__online);						\
	(other) = nth_cpu(&__online, 0);				\
} while (0)

/* The next event of type @type about VM @id, others skipped. */
static bool event_wait(struct nl_events *ev, u32 id, u32 type,
		       struct nl_vm *e)
{
	while (event_next(ev, id, e))
		if (e->event == type)
			return true;
	return false;
}

TEST_F(cpu1, pin_to_offline_cpus)
{
	struct nl_sched *before, *after;
	struct lvmm_vm *vm;
	struct nl_msg *msg;
	cpu_set_t pin;
	struct nlc *c;
	int other, r;

	REQUIRE_LVMM(c);
	REQUIRE_CPU1_HOTPLUG(other);
	before = calloc(1, sizeof(*before));
	after = calloc(1, sizeof(*after));
	ASSERT_TRUE(before && after);
	vm = vm_create_bare(NULL);
	vm_vcpu_add_raw(vm, 0);
	pin = cpus_of(other);
	ASSERT_EQ(0, sched_pin(c, vm->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_get(c, vm->h.id, before));

	ASSERT_EQ(0, cpu1_online(false));
	/* No online CPU in the pin: refused, with the rest of the request. */
	pin = cpus_of(1);
	msg = sched_pin_msg(c, vm->h.id, 0, &pin);
	nla_put_u32(msg, LVMM_A_SCHED_WEIGHT, 777);
	r = nlc_exec(c, msg, NULL, NULL);
	EXPECT_EQ(-EINVAL, r) TH_LOG("%s", strerror(-r));
	EXPECT_NE(0, c->ext[0]);
	ASSERT_EQ(0, sched_get(c, vm->h.id, after));
	EXPECT_TRUE(same_policy(before, after));
	/* One online CPU is enough. */
	CPU_SET(other, &pin);
	EXPECT_EQ(0, sched_pin(c, vm->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	ASSERT_EQ(0, cpu1_online(true));

	vm_free(vm);
	free(before);
	free(after);
	nlc_close(c);
}

TEST_F(cpu1, pin_broken_and_restored)
{
	struct nl_events *ev;
	struct nl_sched *s;
	cpu_set_t pin;
	struct lvmm_vm *vm;
	struct nl_vcpu v;
	struct runner r;
	struct nl_vm e;
	struct nlc *c;
	int other;
	u64 g;

	REQUIRE_LVMM(c);
	REQUIRE_CPU1_HOTPLUG(other);
	(void)other;
	s = calloc(1, sizeof(*s));
	ASSERT_NE(NULL, s);
	ev = events_open();
	vm = counting_vm(&r);
	pin = cpus_of(1);
	ASSERT_EQ(0, sched_pin(c, vm->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	ASSERT_TRUE(wait_for(vcpu_on(c, vm->h.id, 0, 1), 1000))
		TH_LOG("the vCPU does not move to CPU 1");

	/* CPU 1 goes: the pin breaks, the vCPU runs on elsewhere. */
	ASSERT_EQ(0, cpu1_online(false));
	ASSERT_TRUE(event_wait(ev, vm->h.id, LVMM_EVENT_PIN_BROKEN, &e))
		TH_LOG("no pin-broken event");
	EXPECT_TRUE(e.has_vcpu_id && e.vcpu_id == 0);
	g = vcpu_get(c, vm->h.id, 0).guest_ns;
	EXPECT_TRUE(wait_for(vcpu_get(c, vm->h.id, 0).guest_ns > g, 1000))
		TH_LOG("the vCPU stopped with its pin broken");
	v = vcpu_get(c, vm->h.id, 0);
	EXPECT_TRUE(v.has_cpu && v.cpu != 1) TH_LOG("on CPU %u", v.cpu);
	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	ASSERT_NE(NULL, sched_vcpu(s, 0));
	EXPECT_TRUE(sched_vcpu(s, 0)->pin_broken);
	/* The pin itself is kept, for when the CPU is back. */
	EXPECT_TRUE(sched_vcpu(s, 0)->has_cpus &&
		    CPU_EQUAL(&pin, &sched_vcpu(s, 0)->cpus));

	/* CPU 1 is back: so is the pin. */
	ASSERT_EQ(0, cpu1_online(true));
	ASSERT_TRUE(event_wait(ev, vm->h.id, LVMM_EVENT_PIN_RESTORED, &e))
		TH_LOG("no pin-restored event");
	EXPECT_TRUE(e.has_vcpu_id && e.vcpu_id == 0);
	EXPECT_TRUE(wait_for(vcpu_on(c, vm->h.id, 0, 1), 1000))
		TH_LOG("the vCPU is not back on CPU 1 within a second");
	v = vcpu_get(c, vm->h.id, 0);
	EXPECT_TRUE(v.has_affinity && CPU_EQUAL(&pin, &v.affinity));
	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	EXPECT_FALSE(sched_vcpu(s, 0)->pin_broken);

	destroy_running_vm(c, vm, &r);
	events_close(ev);
	free(s);
	nlc_close(c);
}

/* ---- events ------------------------------------------------------------------ */

/* ---- reservations ------------------------------------------------------------ */

/*
 * lvmm's parameters: reserve_max, the percent of each CPU reservations
 * may take, and reserve_slack, what a share may spend on exits besides.
 */
static unsigned int param_get(const char *name)
{
	char path[128];
	unsigned int v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/lvmm/parameters/%s", name);
	f = fopen(path, "r");
	TEST_ASSERT(f && fscanf(f, "%u", &v) == 1, "reading %s", name);
	fclose(f);
	return v;
}

static bool param_set(const char *name, unsigned int v)
{
	char path[128];
	bool ok;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/lvmm/parameters/%s", name);
	f = fopen(path, "w");
	ok = f && fprintf(f, "%u\n", v) > 0;
	return f && !fclose(f) && ok;
}

static unsigned int reserve_max(void)
{
	return param_get("reserve_max");
}

/* A test that changes a parameter puts it back, even when it fails. */
/* Reservations, and the nice -20 hogs they are tested against: root. */
#define REQUIRE_LVMM_NICE(c) do {					\
	REQUIRE_LVMM(c);						\
	if (geteuid())							\
		SKIP(return, "needs CAP_SYS_NICE, for nice -20 and reservations"); \
} while (0)

static unsigned int saved_reserve_max, saved_reserve_slack = -1u;

static void restore_params(void)
{
	if (saved_reserve_max && param_set("reserve_max", saved_reserve_max))
		saved_reserve_max = 0;
	if (saved_reserve_slack != -1u &&
	    param_set("reserve_slack", saved_reserve_slack))
		saved_reserve_slack = -1u;
}

/* sched-set @msg must fail with @err and an extack, and change nothing. */
static void set_refused(struct nlc *c, u32 vm_id, struct nl_msg *msg,
			int err, const char *what)
{
	struct nl_sched *was = calloc(1, sizeof(*was));
	struct nl_sched *now = calloc(1, sizeof(*now));
	int r;

	TEST_ASSERT(was && now && !sched_get(c, vm_id, was), "sched-get");
	r = nlc_exec(c, msg, NULL, NULL);
	TEST_ASSERT(r == err, "%s: %s where %s was due (%s)", what,
		    strerror(-r), strerror(-err), c->ext);
	TEST_ASSERT(c->ext[0], "%s: no extack message", what);
	TEST_ASSERT(!sched_get(c, vm_id, now) && same_policy(was, now),
		    "%s changed the policy", what);
	free(was);
	free(now);
}

static struct lvmm_vm *one_vcpu_vm(void)
{
	struct lvmm_vm *vm = vm_create_bare(NULL);

	vm_vcpu_add_raw(vm, 0);
	return vm;
}

/*
 * Admission: one CPU takes reservations up to reserve_max and no more,
 * a pin onto a full CPU is refused, lowering always fits, a destroyed
 * VM's reservation is free again, a reserved VM creates no vCPU, and
 * admission counts the slack of each share.
 */
TEST(reserve_admission)
{
	struct lvmm_vcpu_handle extra;
	struct lvmm_vm *a, *b, *d;
	unsigned int max, half;
	cpu_set_t usable, pin;
	struct nl_sched *s;
	struct nlc *c;
	int cpu;

	REQUIRE_LVMM_NICE(c);
	/* Read once lvmm is known to be loaded. */
	max = reserve_max();
	half = max / 2;
	ASSERT_GE(max, 20) TH_LOG("reserve_max %u is too small to test", max);
	/* Shares alone first; the slack that admission adds at the end. */
	saved_reserve_slack = param_get("reserve_slack");
	atexit(restore_params);		/* TEST_ASSERT() exits */
	ASSERT_TRUE(param_set("reserve_slack", 0));
	s = calloc(1, sizeof(*s));
	ASSERT_NE(NULL, s);
	ASSERT_GE(usable_cpus(&usable), 1);
	cpu = nth_cpu(&usable, 0);
	pin = cpus_of(cpu);
	a = one_vcpu_vm();
	b = one_vcpu_vm();
	ASSERT_EQ(0, sched_pin(c, a->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_pin(c, b->h.id, 0, &pin)) TH_LOG("%s", c->ext);

	/* More than one CPU may reserve, for a single vCPU. */
	set_refused(c, a->h.id, sched_set_msg(c, a->h.id, LVMM_A_SCHED_RESERVE,
					      max + 1),
		    -EBUSY, "a vCPU's share above reserve_max");
	/* Two VMs on one CPU: up to reserve_max between them. */
	ASSERT_EQ(0, sched_set(c, a->h.id, LVMM_A_SCHED_RESERVE, half))
		TH_LOG("%s", c->ext);
	ASSERT_EQ(0, sched_get(c, a->h.id, s));
	EXPECT_EQ(half, s->reserve);
	set_refused(c, b->h.id, sched_set_msg(c, b->h.id, LVMM_A_SCHED_RESERVE,
					      max - half + 1),
		    -EBUSY, "one point more than the CPU has");
	ASSERT_EQ(0, sched_set(c, b->h.id, LVMM_A_SCHED_RESERVE, max - half))
		TH_LOG("%s", c->ext);

	/* A reserved vCPU elsewhere may not be pinned onto the full CPU. */
	if (usable_cpus(&usable) >= 2) {
		cpu_set_t other = cpus_of(nth_cpu(&usable, 1));

		d = one_vcpu_vm();
		ASSERT_EQ(0, sched_pin(c, d->h.id, 0, &other));
		ASSERT_EQ(0, sched_set(c, d->h.id, LVMM_A_SCHED_RESERVE, 10))
			TH_LOG("%s", c->ext);
		set_refused(c, d->h.id, sched_pin_msg(c, d->h.id, 0, &pin),
			    -EBUSY, "a pin onto a full CPU");
		vm_free(d);
	}

	/*
	 * Less always fits, even over a lower limit: with reserve_max down
	 * to what a has, b may go down but not back up.
	 */
	saved_reserve_max = max;
	TEST_ASSERT(param_set("reserve_max", half), "lowering reserve_max");
	TEST_ASSERT(!sched_set(c, b->h.id, LVMM_A_SCHED_RESERVE, 1),
		    "less over a lowered reserve_max: %s", c->ext);
	set_refused(c, b->h.id, sched_set_msg(c, b->h.id, LVMM_A_SCHED_RESERVE,
					      2),
		    -EBUSY, "more over a lowered reserve_max");
	TEST_ASSERT(param_set("reserve_max", max), "restoring reserve_max");
	ASSERT_EQ(0, sched_set(c, a->h.id, LVMM_A_SCHED_RESERVE, 5))
		TH_LOG("%s", c->ext);
	/* The reservation was split among the vCPUs it had. */
	EXPECT_EQ(-EBUSY, lvmm_vcpu_create(&a->h, 1, &extra));
	ASSERT_EQ(0, sched_set(c, a->h.id, LVMM_A_SCHED_RESERVE, 0))
		TH_LOG("%s", c->ext);
	ASSERT_EQ(0, lvmm_vcpu_create(&a->h, 1, &extra));

	/*
	 * b's reservation goes with b.  a's two vCPUs, one pinned, one not,
	 * may then share reserve_max: half each, the pinned one meeting the
	 * other on its CPU.  Two points more are too much.
	 */
	vm_free(b);
	set_refused(c, a->h.id, sched_set_msg(c, a->h.id, LVMM_A_SCHED_RESERVE,
					      max + 2),
		    -EBUSY, "two vCPUs over reserve_max on one CPU");
	ASSERT_EQ(0, sched_set(c, a->h.id, LVMM_A_SCHED_RESERVE, max & ~1u))
		TH_LOG("%s", c->ext);

	/*
	 * With a slack of 25 %, admission counts each share 1.25 times.  A
	 * reservation admitted with none may go down, and not back up.
	 */
	ASSERT_TRUE(param_set("reserve_slack", 25));
	ASSERT_EQ(0, sched_set(c, a->h.id, LVMM_A_SCHED_RESERVE,
			       (max & ~1u) - 2)) TH_LOG("%s", c->ext);
	set_refused(c, a->h.id, sched_set_msg(c, a->h.id, LVMM_A_SCHED_RESERVE,
					      max & ~1u),
		    -EBUSY, "back up, with the slack counted");
	ASSERT_EQ(0, sched_set(c, a->h.id, LVMM_A_SCHED_RESERVE, 0))
		TH_LOG("%s", c->ext);
	b = one_vcpu_vm();
	ASSERT_EQ(0, sched_pin(c, b->h.id, 0, &pin)) TH_LOG("%s", c->ext);
	set_refused(c, b->h.id, sched_set_msg(c, b->h.id, LVMM_A_SCHED_RESERVE,
					      max * 100 / 125 + 1),
		    -EBUSY, "a share whose slack goes over reserve_max");
	ASSERT_EQ(0, sched_set(c, b->h.id, LVMM_A_SCHED_RESERVE,
			       max * 100 / 125)) TH_LOG("%s", c->ext);
	vm_free(b);
	restore_params();

	/* Reserve 1 on six vCPUs: under 20 us of a window each. */
	d = vm_create_bare(NULL);
	for (u32 i = 0; i < 6; i++)
		vm_vcpu_add_raw(d, i);
	set_refused(c, d->h.id, sched_set_msg(c, d->h.id, LVMM_A_SCHED_RESERVE,
					      1),
		    -EINVAL, "a share too small to use");
	vm_free(d);

	lvmm_vcpu_close(&extra);
	vm_free(a);
	free(s);
	nlc_close(c);
}

/* Reserving is for CAP_SYS_NICE, as a real-time policy is. */
TEST(reserve_needs_cap_sys_nice)
{
	struct lvmm_vcpu_handle vcpu;
	struct lvmm_vm_handle vm;
	int status, dev;
	pid_t pid;

	if (!lvmm_dev_present())
		SKIP(return, "no /dev/lvmm");
	if (geteuid())
		SKIP(return, "needs root, to drop to uid 65534");
	dev = open_lvmm_dev();
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		struct nl_sched *s = calloc(1, sizeof(*s));
		struct nlc *c;
		int r;

		drop_to_nobody();
		c = nlc_open();
		CHILD_CHECK(s && c, "no lvmm family");
		CHILD_CHECK(!lvmm_vm_create(dev, NULL, &vm) &&
			    !lvmm_vcpu_create(&vm, 0, &vcpu), "a VM as nobody");
		r = sched_set(c, vm.id, LVMM_A_SCHED_RESERVE, 10);
		CHILD_CHECK(r == -EPERM, "reserve as nobody: %s", strerror(-r));
		CHILD_CHECK(strstr(c->ext, "CAP_SYS_NICE"),
			    "extack '%s' does not name CAP_SYS_NICE", c->ext);
		CHILD_CHECK(!sched_get(c, vm.id, s) && !s->reserve,
			    "reserve %u after EPERM", s->reserve);
		/* Asking for none is asking for less. */
		r = sched_set(c, vm.id, LVMM_A_SCHED_RESERVE, 0);
		CHILD_CHECK(!r, "reserve 0 as nobody: %s", strerror(-r));
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	close(dev);
}

/* A guest that exits all the time, each exit handled in the kernel. */
static void guest_cpuid_loop(void)
{
	for (;;) {
		u32 a = 0, b, c = 0, d;

		asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	}
}

/*
 * A process spinning on @cpu at @nice.  It dies with the test: a test that
 * fails, or that the harness kills at its timeout, never gets to
 * hog_stop(), and a hog left spinning at nice -20 (holding the VM's fd,
 * and so its reservation) would fail every test after it.
 */
static pid_t hog_start(int cpu, int nice)
{
	cpu_set_t set = cpus_of(cpu);
	pid_t parent = getpid();
	pid_t pid = fork();

	TEST_ASSERT(pid >= 0, "fork");
	if (!pid) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent ||
		    sched_setaffinity(0, sizeof(set), &set) ||
		    setpriority(PRIO_PROCESS, 0, nice))
			_exit(1);
		for (;;)
			;
	}
	return pid;
}

static void hog_stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * Pin vCPU 0 of @vm, running, to the first CPU this test may use, and
 * start two processes spinning there at nice -20.
 */
static void pin_beside_hogs(struct nlc *c, struct lvmm_vm *vm, pid_t hogs[2])
{
	cpu_set_t usable, pin;
	int cpu;

	TEST_ASSERT(usable_cpus(&usable) >= 1, "no CPU to use");
	cpu = nth_cpu(&usable, 0);
	pin = cpus_of(cpu);
	TEST_ASSERT(!sched_pin(c, vm->h.id, 0, &pin), "pin: %s", c->ext);
	TEST_ASSERT(wait_for(vcpu_on(c, vm->h.id, 0, cpu), 1000),
		    "vCPU 0 not on CPU %d", cpu);
	hogs[0] = hog_start(cpu, -20);
	hogs[1] = hog_start(cpu, -20);
}

/*
 * Two nice -20 hogs on the vCPU's CPU leave it next to nothing; a
 * reservation of 40 gives its thread 40 % of the CPU, and no more than
 * the hogs let it have beyond that.
 */
TEST(reservation_holds_against_hogs)
{
	double guest, thread, boosted;
	cpu_set_t usable;
	u64 b0, t0;
	struct lvmm_vm *vm;
	struct nl_vcpu v;
	struct runner r;
	struct nlc *c;
	pid_t hogs[2];

	REQUIRE_LVMM_NICE(c);
	vm = counting_vm(&r);
	pin_beside_hogs(c, vm, hogs);
	usleep(100000);

	/* CFS: 1024 against 2 x 88761, about 0.6 %. */
	measure_share(c, vm, &r, 500, &guest, &thread);
	EXPECT_LT(guest, 15) TH_LOG("guest share %.1f %% before reserving",
				    guest);

	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_RESERVE, 40))
		TH_LOG("%s", c->ext);
	usleep(50000);
	b0 = vcpu_get(c, vm->h.id, 0).boosted_ns;
	t0 = now_ns();
	measure_share(c, vm, &r, 1000, &guest, &thread);
	v = vcpu_get(c, vm->h.id, 0);
	boosted = 100.0 * (double)(v.boosted_ns - b0) / (double)(now_ns() - t0);
	ksft_print_msg("reserve 40 beside two nice -20 hogs: thread %.1f %%, guest %.1f %%, real-time %.1f %%\n",
		       thread, guest, boosted);
	fflush(stdout);
	/*
	 * The share is guest time, within a CPU budget of the share and its
	 * slack (25 %) for the exits: the emulator's exits cost so much that
	 * the CPU budget may end first (a debug kernel's exits are slow), but
	 * the guest gets far more than the 0.6 % of the fair share.
	 */
	EXPECT_GE(thread, 40 - CAP_TOLERANCE)
		TH_LOG("thread share %.1f %% with 40 reserved", thread);
	EXPECT_GE(guest, 10) TH_LOG("guest share %.1f %% with 40 reserved",
				    guest);
	/*
	 * Its share and a late kick's overrun (an exit and a demotion, slow
	 * on the emulated debug kernel), then the fair thread until the next
	 * tick: a boost that never ended would take the CPU from the hogs
	 * (95 %, the kernel's real-time limit).  The wall-clock time it is
	 * real-time is only printed: on the debug kernel it runs far above
	 * the time on a CPU (Documentation/scheduling.rst, section 7).
	 */
	EXPECT_LE(thread, 85) TH_LOG("thread share %.1f %% with 40 reserved",
				     thread);
	EXPECT_GT(v.nr_boosts, 10) TH_LOG("%llu boosts",
					  (unsigned long long)v.nr_boosts);


	/*
	 * Gone, while boosted: a fair thread again, the hogs' CPU theirs.
	 * (With one CPU this test's thread never runs while the vCPU's is
	 * real-time, so it cannot see the boost.)
	 */
	if (usable_cpus(&usable) >= 2)
		EXPECT_TRUE(wait_for(sched_getscheduler(r.tid) == SCHED_FIFO,
				     1000));
	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_RESERVE, 0))
		TH_LOG("%s", c->ext);
	EXPECT_TRUE(wait_for(sched_getscheduler(r.tid) == SCHED_OTHER, 1000));
	usleep(50000);
	measure_share(c, vm, &r, 500, &guest, &thread);
	EXPECT_LT(guest, 15) TH_LOG("guest share %.1f %% after the reservation",
				    guest);
	EXPECT_EQ(SCHED_OTHER, sched_getscheduler(r.tid));

	hog_stop(hogs[0]);
	hog_stop(hogs[1]);
	destroy_running_vm(c, vm, &r);
	nlc_close(c);
}

static void guest_sync_loop(void)
{
	for (;;) {
		for (volatile int i = 0; i < 20000; i++)
			;
		GUEST_SYNC(0);
	}
}

/*
 * With slack 100 the CPU budget, 80 % of the CPU, is far more than a
 * spinning guest's share needs: the share of guest time ends each boost,
 * and the guest gets its 40 % (45 % with the margin), not the budget.
 * (A test of its own: the debug kernel's starved netlink replies make
 * each phase slow.)
 */
TEST(reservation_share_ends_the_boost)
{
	double guest, thread;
	struct lvmm_vm *vm;
	struct runner r;
	struct nlc *c;
	pid_t hogs[2];

	REQUIRE_LVMM_NICE(c);
	vm = counting_vm(&r);
	pin_beside_hogs(c, vm, hogs);
	saved_reserve_slack = param_get("reserve_slack");
	atexit(restore_params);		/* TEST_ASSERT() exits */
	ASSERT_TRUE(param_set("reserve_slack", 100));
	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_RESERVE, 40))
		TH_LOG("%s", c->ext);
	restore_params();
	usleep(50000);
	/* The share aimed at is 45 % (the margin); the budget's, 80 %. */
	EXPECT_TRUE(share_within(c, vm, &r, 1000, 40 - CAP_TOLERANCE, 45 + 15,
				 "reserve 40 with slack 100 beside two nice -20 hogs",
				 &guest, &thread))
		TH_LOG("guest share %.1f %%, not 30-60 %%", guest);

	hog_stop(hogs[0]);
	hog_stop(hogs[1]);
	destroy_running_vm(c, vm, &r);
	nlc_close(c);
}

/*
 * A guest that exits all the time never uses its share of guest time: its
 * thread is real-time only for its CPU budget, the share and its slack,
 * and the nice -20 hogs keep the rest.  With slack 0 the budget is 40 %
 * of the CPU, with slack 100 it is 80 %: the thread's share follows it.
 * Paid with guest time alone, it would stay real-time to the kernel's
 * 95 % either way.
 */
TEST(reservation_pays_for_exits)
{
	double guest, thread[2];
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct runner r;
	struct nlc *c;
	pid_t hogs[2];

	REQUIRE_LVMM_NICE(c);
	vm = vm_create_with_one_vcpu(&vcpu, guest_cpuid_loop);
	runner_start(&r, vcpu);
	ASSERT_TRUE(wait_for(vcpu_get(c, vm->h.id, 0).exits > 1000, 5000));
	pin_beside_hogs(c, vm, hogs);
	saved_reserve_slack = param_get("reserve_slack");
	atexit(restore_params);		/* TEST_ASSERT() exits */
	for (int i = 0; i < 2; i++) {
		/* The slack is the reservation's from its admission on. */
		ASSERT_TRUE(param_set("reserve_slack", i ? 100 : 0));
		ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_RESERVE, 0))
			TH_LOG("%s", c->ext);
		ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_RESERVE, 40))
			TH_LOG("%s", c->ext);
		usleep(50000);
		measure_share(c, vm, &r, 1000, &guest, &thread[i]);
		ksft_print_msg("reserve 40 with slack %d, a guest of CPUID exits, beside two nice -20 hogs: thread %.1f %%, guest %.1f %%\n",
			       i ? 100 : 0, thread[i], guest);
		fflush(stdout);
	}
	restore_params();
	/* Its budget and a late kick's overrun (slow on the debug kernel). */
	EXPECT_GE(thread[0], 40 - CAP_TOLERANCE) TH_LOG("slack 0: %.1f %%",
							thread[0]);
	EXPECT_LE(thread[0], 70) TH_LOG("slack 0: %.1f %%", thread[0]);
	/*
	 * Quiet, the two differ by 20-35 points; on a loaded host the
	 * emulator's late kicks add to both, the first most.
	 */
	EXPECT_GT(thread[1], thread[0] + 8)
		TH_LOG("slack 100: %.1f %% against %.1f %% with none",
		       thread[1], thread[0]);

	hog_stop(hogs[0]);
	hog_stop(hogs[1]);
	destroy_running_vm(c, vm, &r);
	nlc_close(c);
}

/*
 * The boost is for guest time: every return from RUN finds the VMM's
 * thread with the policy it had, however often the guest exits.
 */
TEST(reservation_never_boosts_userspace)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;
	int runs = 0, boosted = 0;
	struct nl_vcpu v;
	struct nlc *c;
	u64 start, end;

	REQUIRE_LVMM_NICE(c);
	vm = vm_create_with_one_vcpu(&vcpu, guest_sync_loop);
	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_RESERVE, 50))
		TH_LOG("%s", c->ext);
	ASSERT_EQ(SCHED_OTHER, sched_getscheduler(0));
	start = now_ns();
	end = start + 300 * MS;
	while (now_ns() < end) {
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
		runs++;
		boosted += sched_getscheduler(0) != SCHED_OTHER;
	}
	end = now_ns();
	EXPECT_EQ(0, boosted) TH_LOG("%d of %d returns from RUN real-time",
				     boosted, runs);
	v = vcpu_get(c, vm->h.id, 0);
	EXPECT_GT(v.nr_boosts, 0);
	/*
	 * Every RUN paid for its boost: near the share in all (50 %, with
	 * the debug kernel's slow exits and demotions on top), where a RUN
	 * that did not pay would leave it real-time nearly all the time.
	 */
	EXPECT_LT(v.boosted_ns, (end - start) * 85 / 100)
		TH_LOG("boosted %llu of %llu ms",
		       (unsigned long long)(v.boosted_ns / MS),
		       (unsigned long long)((end - start) / MS));
	vm_free(vm);
	nlc_close(c);
}

TEST(sched_event)
{
	struct nl_events *ev;
	struct lvmm_vm *vm;
	struct nl_sched *s;
	struct nl_vm e;
	struct nlc *c;

	REQUIRE_LVMM(c);
	s = calloc(1, sizeof(*s));
	ASSERT_NE(NULL, s);
	ev = events_open();
	vm = vm_create_bare(NULL);
	ASSERT_TRUE(event_next(ev, vm->h.id, &e)) TH_LOG("no created event");
	ASSERT_EQ(LVMM_EVENT_CREATED, e.event);

	ASSERT_EQ(0, sched_set(c, vm->h.id, LVMM_A_SCHED_WEIGHT, 300))
		TH_LOG("%s", c->ext);
	ASSERT_TRUE(event_next(ev, vm->h.id, &e)) TH_LOG("no event for sched-set");
	EXPECT_EQ(LVMM_EVENT_SCHED, e.event);
	EXPECT_STREQ(vm->h.name, e.name);
	EXPECT_FALSE(e.has_vcpu_id);
	ASSERT_EQ(0, sched_set_cap(c, vm->h.id, 50, 20000)) TH_LOG("%s", c->ext);
	ASSERT_TRUE(event_next(ev, vm->h.id, &e));
	EXPECT_EQ(LVMM_EVENT_SCHED, e.event);

	/* A refused sched-set and a sched-get tell nobody. */
	EXPECT_NE(0, sched_set(c, vm->h.id, LVMM_A_SCHED_WEIGHT, 0));
	/* No vCPU to reserve for. */
	EXPECT_EQ(-EINVAL, sched_set(c, vm->h.id, LVMM_A_SCHED_RESERVE, 10));
	ASSERT_EQ(0, sched_get(c, vm->h.id, s));
	ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_DESTROY, vm->h.id));
	ASSERT_TRUE(event_next(ev, vm->h.id, &e));
	EXPECT_EQ(LVMM_EVENT_DESTROYED, e.event)
		TH_LOG("event %u where destroyed was due", e.event);

	vm_free(vm);
	events_close(ev);
	free(s);
	nlc_close(c);
}

TEST_HARNESS_MAIN
