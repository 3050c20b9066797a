// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl stat, top: a VM's counters, and every VM's CPU use and exit rate
 * as it happens.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "nl.h"
#include "vmctl.h"

struct vmctl_stats_req {
	struct vmctl_stats *total, *vcpus;
	size_t max, n;
};

static void vmctl_stats_parse(struct nlattr **tb, struct vmctl_stats *s)
{
	static const struct {
		int attr;
		size_t off;
	} f[] = {
#define F(a, m) { a, offsetof(struct vmctl_stats, m) }
		F(LVMM_A_STATS_EXITS, exits),
		F(LVMM_A_STATS_EXITS_IO, io),
		F(LVMM_A_STATS_EXITS_MMIO, mmio),
		F(LVMM_A_STATS_EXITS_HLT, hlt),
		F(LVMM_A_STATS_EXITS_HYPERCALL, hypercall),
		F(LVMM_A_STATS_EXITS_CPUID, cpuid),
		F(LVMM_A_STATS_EXITS_MSR, msr),
		F(LVMM_A_STATS_EXITS_INTR, intr),
		F(LVMM_A_STATS_EXITS_OTHER, other),
		F(LVMM_A_STATS_NPF, npf),
		F(LVMM_A_STATS_IRQS, irqs),
		F(LVMM_A_STATS_GUEST_NS, guest_ns),
		F(LVMM_A_STATS_MAPPED_4K, mapped_4k),
		F(LVMM_A_STATS_MAPPED_2M, mapped_2m),
#undef F
	};
	size_t i;

	memset(s, 0, sizeof(*s));
	if (tb[LVMM_A_STATS_VCPU_ID])
		s->vcpu_id = nla_get_u32(tb[LVMM_A_STATS_VCPU_ID]);
	for (i = 0; i < ARRAY_SIZE(f); i++)
		if (tb[f[i].attr] && nla_len(tb[f[i].attr]) == 8)
			*(uint64_t *)((char *)s + f[i].off) =
				nla_get_u64(tb[f[i].attr]);
}

static int vmctl_stats_cb(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct nlattr *tb[LVMM_A_STATS_MAX + 1], *a;
	struct vmctl_stats_req *req = arg;
	int rem;

	if (genlmsg_parse(nlh, 0, tb, LVMM_A_STATS_MAX, NULL) < 0)
		return NL_OK;
	vmctl_stats_parse(tb, req->total);
	nla_for_each_attr(a, genlmsg_attrdata(nlmsg_data(nlh), 0),
			  genlmsg_attrlen(nlmsg_data(nlh), 0), rem) {
		struct nlattr *vt[LVMM_A_STATS_MAX + 1];

		if (nla_type(a) != LVMM_A_STATS_VCPU || !req->vcpus ||
		    req->n == req->max ||
		    nla_parse_nested(vt, LVMM_A_STATS_MAX, a, NULL) < 0)
			continue;
		vmctl_stats_parse(vt, &req->vcpus[req->n++]);
	}
	return NL_OK;
}

int vmctl_stats_get(struct vmctl_nl *nl, uint32_t vm_id,
		    struct vmctl_stats *total, struct vmctl_stats *vcpus,
		    size_t max, size_t *n)
{
	struct vmctl_stats_req req = { total, vcpus, max, 0 };
	struct nl_msg *msg;
	int r;

	msg = vmctl_nl_vm_msg(nl, LVMM_CMD_STATS_GET, 0, vm_id);
	if (!msg)
		return -ENOMEM;
	memset(total, 0, sizeof(*total));
	r = vmctl_nl_exec(nl, msg, vmctl_stats_cb, &req);
	if (n)
		*n = req.n;
	return r;
}

static const struct {
	const char *name;
	size_t off;
} vmctl_counters[] = {
#define C(n, m) { n, offsetof(struct vmctl_stats, m) }
	C("exits", exits), C("exits_io", io), C("exits_mmio", mmio),
	C("exits_hlt", hlt), C("exits_hypercall", hypercall),
	C("exits_cpuid", cpuid), C("exits_msr", msr), C("exits_intr", intr),
	C("exits_other", other), C("npf", npf), C("irqs", irqs),
	C("guest_ns", guest_ns),
#undef C
};

#define NR_COUNTERS	ARRAY_SIZE(vmctl_counters)
#define COUNTER(s, i)	(*(const uint64_t *)((const char *)(s) + \
					     vmctl_counters[i].off))

static void vmctl_stats_json(const struct vmctl_stats *s)
{
	size_t i;

	for (i = 0; i < NR_COUNTERS; i++)
		printf("%s\"%s\":%" PRIu64, i ? "," : "",
		       vmctl_counters[i].name, COUNTER(s, i));
}

static int vmctl_stat(struct vmctl *ctx, int argc, char **argv)
{
	struct vmctl_stats total, *vcpus;
	struct vmctl_vm vm;
	struct vmctl_nl nl;
	size_t i, j, n = 0;
	int r;

	if (argc != 1)
		return 1;
	vcpus = calloc(VMCTL_MAX_VCPUS, sizeof(*vcpus));
	if (!vcpus) {
		vmctl_err("out of memory");
		return -ENOMEM;
	}
	r = vmctl_nl_open_vm(&nl, argv[0], &vm);
	if (r)
		goto out_free;
	r = vmctl_stats_get(&nl, vm.id, &total, vcpus, VMCTL_MAX_VCPUS, &n);
	if (r) {
		vmctl_nl_report(&nl, r, "read the counters of", &vm);
		goto out_close;
	}
	if (ctx->json) {
		printf("{\"id\":%" PRIu32 ",\"name\":", vm.id);
		vmctl_json_str(stdout, vm.name);
		putchar(',');
		vmctl_stats_json(&total);
		printf(",\"mapped_4k\":%" PRIu64 ",\"mapped_2m\":%" PRIu64,
		       total.mapped_4k, total.mapped_2m);
		fputs(",\"vcpu_list\":[", stdout);
		for (i = 0; i < n; i++) {
			printf("%s{\"id\":%" PRIu32 ",", i ? "," : "",
			       vcpus[i].vcpu_id);
			vmctl_stats_json(&vcpus[i]);
			putchar('}');
		}
		puts("]}");
	} else {
		printf("%-16s %14s", "COUNTER", "TOTAL");
		for (j = 0; j < n; j++)
			printf(" %12s%-2" PRIu32, "vcpu", vcpus[j].vcpu_id);
		putchar('\n');
		for (i = 0; i < NR_COUNTERS; i++) {
			printf("%-16s %14" PRIu64, vmctl_counters[i].name,
			       COUNTER(&total, i));
			for (j = 0; j < n; j++)
				printf(" %14" PRIu64, COUNTER(&vcpus[j], i));
			putchar('\n');
		}
		printf("%-16s %14" PRIu64 "\n%-16s %14" PRIu64 "\n",
		       "mapped_4k", total.mapped_4k, "mapped_2m",
		       total.mapped_2m);
	}
out_close:
	vmctl_nl_close(&nl);
out_free:
	free(vcpus);
	return r;
}

/* ---- top ---------------------------------------------------------------- */

struct vmctl_top_row {
	struct vmctl_vm vm;
	uint64_t exits;
	bool has_exits;		/* stats-get is the owner's or an admin's */
	struct vmctl_sched sched;
	bool has_sched;		/* so is sched-get */
};

struct vmctl_top_sample {
	struct vmctl_top_row *rows;
	size_t n;
	uint64_t t_ns;
};

static uint64_t vmctl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int vmctl_top_sample(struct vmctl_nl *nl, struct vmctl_top_sample *s)
{
	struct vmctl_stats total;
	struct vmctl_vm *vms;
	size_t i, n;
	int r;

	r = vmctl_vm_dump(nl, &vms, &n);
	if (r)
		return r;
	s->t_ns = vmctl_now_ns();
	s->rows = calloc(n ? n : 1, sizeof(*s->rows));
	if (!s->rows) {
		free(vms);
		vmctl_err("out of memory");
		return -ENOMEM;
	}
	s->n = n;
	for (i = 0; i < n; i++) {
		s->rows[i].vm = vms[i];
		if (!vmctl_stats_get(nl, vms[i].id, &total, NULL, 0, NULL)) {
			s->rows[i].exits = total.exits;
			s->rows[i].has_exits = true;
		}
		s->rows[i].has_sched = !vmctl_sched_get(nl, vms[i].id,
							&s->rows[i].sched);
	}
	free(vms);
	return 0;
}

static const struct vmctl_top_row *
vmctl_top_prev(const struct vmctl_top_sample *prev, uint32_t id)
{
	size_t i;

	for (i = 0; i < prev->n; i++)
		if (prev->rows[i].vm.id == id)
			return &prev->rows[i];
	return NULL;
}

/* One VM's figures over the interval; "has" ones need its counters. */
struct vmctl_top_figures {
	double cpu, rate, thr;
	bool has_rate;
};

static void vmctl_top_figures(const struct vmctl_top_row *r,
			      const struct vmctl_top_row *p, double dt,
			      struct vmctl_top_figures *f)
{
	memset(f, 0, sizeof(*f));
	f->has_rate = r->has_exits && p && p->has_exits;
	if (!p || dt <= 0)
		return;
	if (r->vm.guest_ns >= p->vm.guest_ns)
		f->cpu = (r->vm.guest_ns - p->vm.guest_ns) / 1e9 / dt * 100;
	if (f->has_rate && r->exits >= p->exits)
		f->rate = (r->exits - p->exits) / dt;
	/* Throttled time is summed over the vCPUs: share of all of theirs. */
	if (r->has_sched && p->has_sched && r->vm.nr_vcpus &&
	    r->sched.throttled_ns >= p->sched.throttled_ns)
		f->thr = (r->sched.throttled_ns - p->sched.throttled_ns) / 1e9 /
			 dt / r->vm.nr_vcpus * 100;
}

static void vmctl_top_json(const struct vmctl_top_row *r,
			   const struct vmctl_top_figures *f, bool first)
{
	printf("%s{\"id\":%" PRIu32 ",\"name\":", first ? "" : ",", r->vm.id);
	vmctl_json_str(stdout, r->vm.name);
	printf(",\"state\":\"%s\",\"vcpus\":%" PRIu32
	       ",\"cpu_percent\":%.1f,\"exits_per_sec\":",
	       vmctl_vm_state_str(r->vm.state), r->vm.nr_vcpus, f->cpu);
	if (f->has_rate)
		printf("%.0f", f->rate);
	else
		fputs("null", stdout);
	if (r->has_sched)
		printf(",\"cap\":%" PRIu32 ",\"reserve\":%" PRIu32
		       ",\"throttled_percent\":%.1f}", r->sched.cap,
		       r->sched.reserve, f->thr);
	else
		fputs(",\"cap\":null,\"reserve\":null,\"throttled_percent\":null}",
		      stdout);
}

static void vmctl_top_text(const struct vmctl_top_row *r,
			   const struct vmctl_top_figures *f)
{
	char cap[16] = "?", res[16] = "?", thr[16] = "?";

	printf("%-6" PRIu32 " %-20s %-10s %5" PRIu32 " %7.1f ", r->vm.id,
	       r->vm.name, vmctl_vm_state_str(r->vm.state), r->vm.nr_vcpus,
	       f->cpu);
	if (f->has_rate)
		printf("%12.0f", f->rate);
	else
		printf("%12s", "-");
	if (r->has_sched && r->sched.cap)
		snprintf(cap, sizeof(cap), "%" PRIu32 "%%", r->sched.cap);
	else if (r->has_sched)
		snprintf(cap, sizeof(cap), "-");
	if (r->has_sched && r->sched.reserve)
		snprintf(res, sizeof(res), "%" PRIu32 "%%", r->sched.reserve);
	else if (r->has_sched)
		snprintf(res, sizeof(res), "-");
	if (r->has_sched)
		snprintf(thr, sizeof(thr), "%.1f", f->thr);
	printf(" %6s %6s %6s\n", cap, res, thr);
}

static void vmctl_top_print(const struct vmctl_top_sample *prev,
			    const struct vmctl_top_sample *cur, bool tty,
			    bool json)
{
	double dt = (cur->t_ns - prev->t_ns) / 1e9;
	struct vmctl_top_figures f;
	size_t i;

	if (tty)
		fputs("\033[H\033[2J", stdout);
	if (json)
		putchar('[');
	else
		printf("%-6s %-20s %-10s %5s %7s %12s %6s %6s %6s%s", "ID",
		       "NAME", "STATE", "VCPUS", "CPU%", "EXITS/S", "CAP", "RES",
		       "THR%", tty ? "    (q quits)\n" : "\n");
	for (i = 0; i < cur->n; i++) {
		const struct vmctl_top_row *r = &cur->rows[i];

		vmctl_top_figures(r, vmctl_top_prev(prev, r->vm.id), dt, &f);
		if (json)
			vmctl_top_json(r, &f, !i);
		else
			vmctl_top_text(r, &f);
	}
	if (json)
		putchar(']');
	putchar('\n');
	fflush(stdout);
}

static struct termios vmctl_saved_tty;
static bool vmctl_tty_raw;

static void vmctl_tty_restore(void)
{
	if (vmctl_tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &vmctl_saved_tty);
	vmctl_tty_raw = false;
}

static void vmctl_tty_signal(int sig)
{
	vmctl_tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Wait @ms for 'q' on a terminal; true when the user asked to quit. */
static bool vmctl_top_wait(int ms, bool keys)
{
	uint64_t end = vmctl_now_ns() + ms * 1000000ULL, now;
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	char c;

	while ((now = vmctl_now_ns()) < end) {
		int left = (end - now) / 1000000 + 1;

		if (!keys) {
			usleep(left * 1000);
			continue;
		}
		if (poll(&p, 1, left) <= 0)
			continue;
		if (read(STDIN_FILENO, &c, 1) != 1)
			return true;	/* the terminal went away */
		if (c == 'q' || c == 'Q' || c == 3 /* ^C */)
			return true;
	}
	return false;
}

static int vmctl_top(struct vmctl *ctx, int argc, char **argv)
{
	struct vmctl_top_sample prev = {}, cur = {};
	unsigned long count = 0, done = 0, delay_ms = 1000;
	bool tty = isatty(STDOUT_FILENO), keys;
	struct vmctl_nl nl;
	int i, r;

	for (i = 0; i < argc; i++) {
		unsigned long v;

		if (!strcmp(argv[i], "-n") && i + 1 < argc &&
		    vmctl_parse_count(argv[i + 1], &v)) {
			count = v;
			i++;
		} else if (!strcmp(argv[i], "-d") && i + 1 < argc &&
			   vmctl_parse_count(argv[i + 1], &v)) {
			delay_ms = v * 1000;
			i++;
		} else {
			return 1;
		}
	}
	keys = tty && isatty(STDIN_FILENO);
	r = vmctl_nl_open(&nl);
	if (r)
		return r;
	if (keys && !tcgetattr(STDIN_FILENO, &vmctl_saved_tty)) {
		struct termios raw = vmctl_saved_tty;

		raw.c_lflag &= ~(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		vmctl_tty_raw = !tcsetattr(STDIN_FILENO, TCSANOW, &raw);
		signal(SIGINT, vmctl_tty_signal);
		signal(SIGTERM, vmctl_tty_signal);
	}
	r = vmctl_top_sample(&nl, &prev);
	while (!r && (!count || done < count)) {
		if (vmctl_top_wait(delay_ms, keys))
			break;
		r = vmctl_top_sample(&nl, &cur);
		if (r)
			break;
		vmctl_top_print(&prev, &cur, tty, ctx->json);
		done++;
		free(prev.rows);
		prev = cur;
		cur.rows = NULL;
	}
	vmctl_tty_restore();
	free(prev.rows);
	vmctl_nl_close(&nl);
	return r;
}

VMCTL_CMDS(vmctl_stat_cmds) = {
	{ "stat", "VM", "Show a VM's exit and time counters, per vCPU.",
	  vmctl_stat },
	{ "top", "[-n COUNT] [-d SECONDS]",
	  "Show every VM's CPU use, exits per second, cap, reservation and time\n"
	  "      throttled, each second (q quits).",
	  vmctl_top },
	{ NULL },
};
