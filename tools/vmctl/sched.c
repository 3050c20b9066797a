// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl sched, pin: a VM's scheduling policy -- weight, cap, period,
 * reservation -- and its vCPUs' pins, over sched-get and sched-set.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nl.h"
#include "vmctl.h"

/* What the reservations of all VMs may take of each host CPU. */
#define VMCTL_RESERVE_MAX_PATH	"/sys/module/lvmm/parameters/reserve_max"

/* The u32 settings: keyword, attribute, range; in VMCTL_SCHED_* order. */
static const struct vmctl_sched_field {
	const char *key;	/* vmctl sched KEY N, vmctl run --KEY N */
	int attr;
	size_t off;
	uint32_t min, max;
	uint32_t scale;		/* from what the user gives to the attribute */
	const char *unit;	/* after the range in messages */
} vmctl_sched_fields[] = {
#define F(k, a, m, lo, hi, sc, u) \
	{ k, a, offsetof(struct vmctl_sched, m), lo, hi, sc, u }
	F("weight", LVMM_A_SCHED_WEIGHT, weight, 1, LVMM_SCHED_WEIGHT_MAX, 1,
	  " (default 256)"),
	F("cap", LVMM_A_SCHED_CAP, cap, 0, LVMM_SCHED_CAP_MAX, 1,
	  " percent of one host CPU (0: no cap)"),
	F("period", LVMM_A_SCHED_PERIOD_US, period_us,
	  LVMM_SCHED_PERIOD_US_MIN / 1000, LVMM_SCHED_PERIOD_US_MAX / 1000,
	  1000, " milliseconds"),
	F("reserve", LVMM_A_SCHED_RESERVE, reserve, 0, LVMM_SCHED_CAP_MAX, 1,
	  " percent of one host CPU (0: none)"),
#undef F
};

#define FIELD(s, i)	(*(uint32_t *)((char *)(s) + vmctl_sched_fields[i].off))

int vmctl_sched_parse(const char *prefix, const char *key, const char *val,
		      struct vmctl_sched *s)
{
	const struct vmctl_sched_field *f;
	char what[32];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(vmctl_sched_fields); i++)
		if (!strcmp(key, vmctl_sched_fields[i].key))
			break;
	if (i == ARRAY_SIZE(vmctl_sched_fields)) {
		vmctl_err("unknown keyword '%s'; give weight, cap, period or reserve",
			  key);
		return 1;
	}
	f = &vmctl_sched_fields[i];
	snprintf(what, sizeof(what), "%s%s", prefix, key);
	if (s->given & (1U << i)) {
		vmctl_err("%s is given twice; give it once", what);
		return 1;
	}
	if (!val) {
		vmctl_err("%s needs a value; give %" PRIu32 " to %" PRIu32 "%s",
			  what, f->min, f->max, f->unit);
		return 1;
	}
	if (!vmctl_parse_u32(what, val, f->min, f->max, f->unit, &FIELD(s, i)))
		return 1;
	FIELD(s, i) *= f->scale;
	s->given |= 1U << i;
	return 0;
}

/* ---- sched-get ------------------------------------------------------------ */

static const struct nla_policy
vmctl_sched_vcpu_policy[LVMM_A_SCHED_VCPU_MAX + 1] = {
	[LVMM_A_SCHED_VCPU_ID]		= { .type = NLA_U32 },
	[LVMM_A_SCHED_VCPU_CPUS]	= { .type = NLA_UNSPEC },
	[LVMM_A_SCHED_VCPU_PIN_BROKEN]	= { .type = NLA_FLAG },
};

static void vmctl_sched_parse_pin(struct vmctl_sched *s, struct nlattr *nest)
{
	struct nlattr *tb[LVMM_A_SCHED_VCPU_MAX + 1];
	struct vmctl_pin *p;

	if (s->nr_pins == s->max_pins ||
	    nla_parse_nested(tb, LVMM_A_SCHED_VCPU_MAX, nest,
			     vmctl_sched_vcpu_policy) < 0 ||
	    !tb[LVMM_A_SCHED_VCPU_ID])
		return;
	p = &s->pins[s->nr_pins++];
	memset(p, 0, sizeof(*p));
	p->vcpu = nla_get_u32(tb[LVMM_A_SCHED_VCPU_ID]);
	p->broken = tb[LVMM_A_SCHED_VCPU_PIN_BROKEN];
	if (tb[LVMM_A_SCHED_VCPU_CPUS])
		vmctl_cpus_from_attr(&p->cpus, tb[LVMM_A_SCHED_VCPU_CPUS]);
}

static int vmctl_sched_get_cb(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct nlattr *tb[LVMM_A_SCHED_MAX + 1], *a;
	struct vmctl_sched *s = arg;
	size_t i;
	int rem;

	if (genlmsg_parse(nlh, 0, tb, LVMM_A_SCHED_MAX, NULL) < 0)
		return NL_OK;
	for (i = 0; i < ARRAY_SIZE(vmctl_sched_fields); i++) {
		a = tb[vmctl_sched_fields[i].attr];
		if (a && nla_len(a) == 4) {
			FIELD(s, i) = nla_get_u32(a);
			s->given |= 1U << i;
		}
	}
	if (tb[LVMM_A_SCHED_NICE]) {
		s->nice = nla_get_s32(tb[LVMM_A_SCHED_NICE]);
		s->given |= VMCTL_SCHED_NICE;
	}
#define GET64(attr, field)						\
	do {								\
		if (tb[attr] && nla_len(tb[attr]) == 8)			\
			s->field = nla_get_u64(tb[attr]);		\
	} while (0)
	GET64(LVMM_A_SCHED_NR_PERIODS, nr_periods);
	GET64(LVMM_A_SCHED_NR_THROTTLED, nr_throttled);
	GET64(LVMM_A_SCHED_THROTTLED_NS, throttled_ns);
#undef GET64
	nla_for_each_attr(a, genlmsg_attrdata(nlmsg_data(nlh), 0),
			  genlmsg_attrlen(nlmsg_data(nlh), 0), rem)
		if (nla_type(a) == LVMM_A_SCHED_VCPU && s->pins)
			vmctl_sched_parse_pin(s, a);
	return NL_OK;
}

int vmctl_sched_get(struct vmctl_nl *nl, uint32_t vm_id, struct vmctl_sched *s)
{
	struct vmctl_pin *pins = s->pins;
	size_t max = s->max_pins;
	struct nl_msg *msg;

	memset(s, 0, sizeof(*s));
	s->pins = pins;
	s->max_pins = max;
	msg = vmctl_nl_vm_msg(nl, LVMM_CMD_SCHED_GET, 0, vm_id);
	if (!msg)
		return -ENOMEM;
	return vmctl_nl_exec(nl, msg, vmctl_sched_get_cb, s);
}

/* ---- sched-set ------------------------------------------------------------ */

static int vmctl_sched_put(struct nl_msg *msg, const struct vmctl_sched *s)
{
	const struct vmctl_pin *p;
	struct nlattr *nest;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(vmctl_sched_fields); i++)
		if (s->given & (1U << i) &&
		    nla_put_u32(msg, vmctl_sched_fields[i].attr, FIELD(s, i)))
			return -ENOMEM;
	for (p = s->pins; p < s->pins + s->nr_pins; p++) {
		/* An empty bitmap unpins. */
		nest = nla_nest_start(msg, LVMM_A_SCHED_VCPU);
		if (!nest || nla_put_u32(msg, LVMM_A_SCHED_VCPU_ID, p->vcpu) ||
		    nla_put(msg, LVMM_A_SCHED_VCPU_CPUS, p->cpus.len, p->cpus.map))
			return -ENOMEM;
		nla_nest_end(msg, nest);
	}
	return 0;
}

/* The host-wide share of each CPU that reservations may take, or -1. */
static int vmctl_reserve_max(void)
{
	FILE *f = fopen(VMCTL_RESERVE_MAX_PATH, "r");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/*
 * Was @s refused for raising @vm's reservation?  It raises it, and asks
 * for nothing else the owner may be refused (more weight, a looser cap,
 * pins, as Documentation/vmctl.rst has it).
 */
static bool vmctl_sched_raises_reserve(struct vmctl_nl *nl,
				       const struct vmctl_vm *vm,
				       const struct vmctl_sched *s)
{
	struct vmctl_sched cur = {};
	char ext_msg[sizeof(nl->ext_msg)];
	int r;

	if (!(s->given & VMCTL_SCHED_RESERVE) || !s->reserve || s->nr_pins)
		return false;
	/* Keep the refusal's reason for the message. */
	memcpy(ext_msg, nl->ext_msg, sizeof(ext_msg));
	r = vmctl_sched_get(nl, vm->id, &cur);
	memcpy(nl->ext_msg, ext_msg, sizeof(ext_msg));
	if (r || s->reserve <= cur.reserve)
		return false;
	if (s->given & VMCTL_SCHED_WEIGHT && s->weight > cur.weight)
		return false;
	return !(s->given & VMCTL_SCHED_CAP && cur.cap &&
		 (!s->cap || s->cap > cur.cap));
}

/* Admission refused a reservation, or pins of a VM with one. */
static void vmctl_sched_report_busy(struct vmctl_nl *nl, const char *what,
				    const struct vmctl_vm *vm)
{
	char limit[64] = "a share of each host CPU";
	int max = vmctl_reserve_max();

	if (max >= 0)
		snprintf(limit, sizeof(limit), "%d%% of each host CPU", max);
	vmctl_err("cannot %s %s: %s; the reservations of all VMs together may take %s (reserve_max, in %s): 'vmctl sched VM' shows what another VM reserves",
		  what, vm->name,
		  nl->ext_msg[0] ? nl->ext_msg : "the host cannot honour its reservation",
		  limit, VMCTL_RESERVE_MAX_PATH);
}

/* Say why sched-get or sched-set (@s; NULL for get) of @vm failed. */
static void vmctl_sched_report(struct vmctl_nl *nl, int err, const char *what,
			       const struct vmctl_vm *vm,
			       const struct vmctl_sched *s)
{
	const char *lvmm = nl->ext_msg[0] ? " (lvmm: " : "";
	const char *end = nl->ext_msg[0] ? ")" : "";

	if (err == -EPERM && s && vmctl_sched_raises_reserve(nl, vm, s))
		vmctl_err("not permitted to reserve CPU time for %s%s%s%s: a reservation makes the VM's vCPU threads real-time, which needs CAP_SYS_NICE; run as root, or with it",
			  vm->name, lvmm, nl->ext_msg, end);
	else if (err == -EPERM && s && vm->owner_uid == geteuid())
		vmctl_err("not permitted to %s %s%s%s%s: raising a weight, removing or loosening a cap, or pinning outside the CPUs its creator may use needs CAP_NET_ADMIN%s; ask for less, or run with it",
			  what, vm->name, lvmm, nl->ext_msg, end,
			  s->given & VMCTL_SCHED_RESERVE ?
			  ", and raising a reservation CAP_SYS_NICE" : "");
	else if (err == -EBUSY && s)
		vmctl_sched_report_busy(nl, what, vm);
	else if (err == -ENOENT && s && s->nr_pins)
		vmctl_err("cannot %s %s: %s; 'vmctl sched %s' lists its vCPUs",
			  what, vm->name,
			  nl->ext_msg[0] ? nl->ext_msg : "no such vCPU",
			  vm->name);
	else if (err == -EOPNOTSUPP)
		vmctl_err("cannot %s %s: this lvmm has no scheduling policy; is lvmm.ko older than vmctl?",
			  what, vm->name);
	else
		vmctl_nl_report(nl, err, what, vm);
}

int vmctl_sched_change(const char *arg, const struct vmctl_sched *s,
		       const char *what)
{
	struct nl_msg *msg;
	struct vmctl_vm vm;
	struct vmctl_nl nl;
	int r;

	r = vmctl_nl_open_vm(&nl, arg, &vm);
	if (r)
		return r;
	msg = vmctl_nl_vm_msg(&nl, LVMM_CMD_SCHED_SET, 0, vm.id);
	if (!msg || vmctl_sched_put(msg, s)) {
		nlmsg_free(msg);
		vmctl_err("out of memory");
		r = -ENOMEM;
		goto out_close;
	}
	r = vmctl_nl_exec(&nl, msg, NULL, NULL);
	if (r)
		vmctl_sched_report(&nl, r, what, &vm, s);
out_close:
	vmctl_nl_close(&nl);
	return r;
}

/* ---- vmctl sched ------------------------------------------------------------- */

static void vmctl_sched_text(const struct vmctl_vm *vm,
			     const struct vmctl_sched *s)
{
	char buf[32];
	size_t i;

	printf("%-12s %s\n", "name:", vm->name);
	printf("%-12s %" PRIu32 "\n", "id:", vm->id);
	if (s->given & VMCTL_SCHED_NICE)
		printf("%-12s %" PRIu32 " (nice %" PRId32 ")\n", "weight:",
		       s->weight, s->nice);
	else
		printf("%-12s %" PRIu32 " (never set: lvmm leaves the vCPUs' nice alone)\n",
		       "weight:", s->weight);
	if (s->period_us % 1000)
		snprintf(buf, sizeof(buf), "%" PRIu32 " us", s->period_us);
	else
		snprintf(buf, sizeof(buf), "%" PRIu32 " ms", s->period_us / 1000);
	if (s->cap)
		printf("%-12s %" PRIu32 "%% of a CPU, period %s\n", "cap:",
		       s->cap, buf);
	else
		printf("%-12s none (period %s)\n", "cap:", buf);
	if (s->reserve && vm->nr_vcpus > 1)
		printf("%-12s %" PRIu32 "%% of a CPU, %.3g%% per vCPU\n",
		       "reserve:", s->reserve,
		       (double)s->reserve / vm->nr_vcpus);
	else if (s->reserve)
		printf("%-12s %" PRIu32 "%% of a CPU\n", "reserve:", s->reserve);
	else
		printf("%-12s none\n", "reserve:");
	printf("%-12s %" PRIu64 " of %" PRIu64 " periods, %s\n", "throttled:",
	       s->nr_throttled, s->nr_periods,
	       vmctl_fmt_ns(buf, sizeof(buf), s->throttled_ns));
	if (!s->nr_pins)
		return;
	printf("\n  %-5s %s\n", "VCPU", "PIN");
	for (i = 0; i < s->nr_pins; i++) {
		printf("  %-5" PRIu32 " ", s->pins[i].vcpu);
		vmctl_cpus_print(stdout, &s->pins[i].cpus);
		puts(s->pins[i].broken ? " (broken: none of its CPUs is online)" :
					 "");
	}
}

static void vmctl_sched_json(const struct vmctl_vm *vm,
			     const struct vmctl_sched *s)
{
	size_t i;

	printf("{\"id\":%" PRIu32 ",\"name\":", vm->id);
	vmctl_json_str(stdout, vm->name);
	printf(",\"weight\":%" PRIu32, s->weight);
	if (s->given & VMCTL_SCHED_NICE)
		printf(",\"nice\":%" PRId32, s->nice);
	printf(",\"cap\":%" PRIu32 ",\"period_us\":%" PRIu32 ",\"reserve\":%"
	       PRIu32 ",\"nr_periods\":%" PRIu64 ",\"nr_throttled\":%" PRIu64
	       ",\"throttled_ns\":%" PRIu64 ",\"vcpus\":[", s->cap,
	       s->period_us, s->reserve, s->nr_periods, s->nr_throttled,
	       s->throttled_ns);
	for (i = 0; i < s->nr_pins; i++) {
		printf("%s{\"id\":%" PRIu32 ",\"pin\":", i ? "," : "",
		       s->pins[i].vcpu);
		vmctl_json_cpus(stdout, &s->pins[i].cpus);
		printf(",\"pin_broken\":%s}",
		       s->pins[i].broken ? "true" : "false");
	}
	puts("]}");
}

static int vmctl_sched_show(struct vmctl *ctx, const char *arg)
{
	struct vmctl_sched s = { .max_pins = VMCTL_MAX_VCPUS };
	struct vmctl_vm vm;
	struct vmctl_nl nl;
	int r;

	s.pins = calloc(s.max_pins, sizeof(*s.pins));
	if (!s.pins) {
		vmctl_err("out of memory");
		return -ENOMEM;
	}
	r = vmctl_nl_open_vm(&nl, arg, &vm);
	if (r)
		goto out_free;
	r = vmctl_sched_get(&nl, vm.id, &s);
	if (r)
		vmctl_sched_report(&nl, r, "read the scheduling policy of", &vm,
				   NULL);
	else if (ctx->json)
		vmctl_sched_json(&vm, &s);
	else
		vmctl_sched_text(&vm, &s);
	vmctl_nl_close(&nl);
out_free:
	free(s.pins);
	return r;
}

static int vmctl_sched(struct vmctl *ctx, int argc, char **argv)
{
	struct vmctl_sched s = {};
	int i;

	if (argc == 1)
		return vmctl_sched_show(ctx, argv[0]);
	if (!argc)
		return 1;
	for (i = 1; i < argc; i += 2)
		if (vmctl_sched_parse("", argv[i], i + 1 < argc ? argv[i + 1] :
					NULL, &s))
			return 1;
	return vmctl_sched_change(argv[0], &s, "change the scheduling policy of");
}

/* ---- vmctl pin --------------------------------------------------------------- */

static int vmctl_pin(struct vmctl *ctx, int argc, char **argv)
{
	struct vmctl_pin pin = {};
	struct vmctl_sched s = { .pins = &pin, .nr_pins = 1 };

	(void)ctx;
	if (argc != 3)
		return 1;
	if (!vmctl_parse_u32("vCPU", argv[1], 0, VMCTL_MAX_VCPUS - 1, "",
			     &pin.vcpu))
		return 1;
	if (strcmp(argv[2], "none") &&
	    !vmctl_cpus_parse("pin", argv[2], &pin.cpus))
		return 1;
	return vmctl_sched_change(argv[0], &s, "pin a vCPU of");
}

VMCTL_CMDS(vmctl_sched_cmds) = {
	{ "sched", "VM [weight N] [cap PERCENT] [period MS] [reserve PERCENT]",
	  "Show a VM's scheduling policy and pins, or change what is given:\n"
	  "      weight 1-65535 (default 256), cap in percent of one host CPU (0: none),\n"
	  "      the cap's period 1-1000 ms (default 10), reserve: CPU time guaranteed,\n"
	  "      in percent of one host CPU, split among the vCPUs (0: none).",
	  vmctl_sched },
	{ "pin", "VM VCPU CPULIST|none",
	  "Pin a vCPU to host CPUs, as in 0-3,6; none unpins it.", vmctl_pin },
	{ NULL },
};
