// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl list, show, pause, resume, destroy: VMs over the lvmm netlink
 * family.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nl.h"
#include "vmctl.h"

static void vmctl_vm_row(const struct vmctl_vm *vm)
{
	char mem[16], cpu[32];

	printf("%-6" PRIu32 " %-20s %-10s %6" PRIu32 " %7" PRIu32 " %5" PRIu32
	       " %7s %12s\n", vm->id, vm->name,
	       vmctl_vm_state_str(vm->state), vm->owner_uid, vm->creator_pid,
	       vm->nr_vcpus, vmctl_fmt_size(mem, sizeof(mem), vm->mem_size),
	       vmctl_fmt_ns(cpu, sizeof(cpu), vm->guest_ns));
}

static int vmctl_list(struct vmctl *ctx, int argc, char **argv)
{
	struct vmctl_vm *vms = NULL;
	struct vmctl_nl nl;
	size_t i, n = 0;
	int r;

	(void)argv;
	if (argc)
		return 1;
	r = vmctl_nl_open(&nl);
	if (r)
		return r;
	r = vmctl_vm_dump(&nl, &vms, &n);
	vmctl_nl_close(&nl);
	if (r)
		return r;
	if (ctx->json) {
		putchar('[');
		for (i = 0; i < n; i++) {
			if (i)
				putchar(',');
			putchar('{');
			vmctl_json_vm(stdout, &vms[i]);
			putchar('}');
		}
		puts("]");
	} else {
		printf("%-6s %-20s %-10s %6s %7s %5s %7s %12s\n", "ID", "NAME",
		       "STATE", "UID", "PID", "VCPUS", "MEMORY", "GUEST-TIME");
		for (i = 0; i < n; i++)
			vmctl_vm_row(&vms[i]);
	}
	free(vms);
	return 0;
}

struct vmctl_vcpu {
	uint32_t id, state, tid, cpu;
	bool has_cpu;
	uint64_t guest_ns, host_ns, exits, nr_throttled, throttled_ns;
	uint64_t nr_boosts, boosted_ns;
	struct vmctl_cpus affinity;	/* none: it has no thread */
};

struct vmctl_vcpus {
	struct vmctl_vcpu v[VMCTL_MAX_VCPUS];
	size_t n;
};

static int vmctl_vcpu_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[LVMM_A_VCPU_MAX + 1];
	struct vmctl_vcpus *l = arg;
	struct vmctl_vcpu *v;

	if (l->n == VMCTL_MAX_VCPUS ||
	    genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_VCPU_MAX, NULL) < 0 ||
	    !tb[LVMM_A_VCPU_ID])
		return NL_OK;
	v = &l->v[l->n++];
	memset(v, 0, sizeof(*v));
	v->id = nla_get_u32(tb[LVMM_A_VCPU_ID]);
	if (tb[LVMM_A_VCPU_STATE])
		v->state = nla_get_u32(tb[LVMM_A_VCPU_STATE]);
	if (tb[LVMM_A_VCPU_TID])
		v->tid = nla_get_u32(tb[LVMM_A_VCPU_TID]);
	if (tb[LVMM_A_VCPU_CPU]) {
		v->cpu = nla_get_u32(tb[LVMM_A_VCPU_CPU]);
		v->has_cpu = true;
	}
	if (tb[LVMM_A_VCPU_GUEST_NS])
		v->guest_ns = nla_get_u64(tb[LVMM_A_VCPU_GUEST_NS]);
	if (tb[LVMM_A_VCPU_HOST_NS])
		v->host_ns = nla_get_u64(tb[LVMM_A_VCPU_HOST_NS]);
	if (tb[LVMM_A_VCPU_EXITS])
		v->exits = nla_get_u64(tb[LVMM_A_VCPU_EXITS]);
	if (tb[LVMM_A_VCPU_NR_THROTTLED])
		v->nr_throttled = nla_get_u64(tb[LVMM_A_VCPU_NR_THROTTLED]);
	if (tb[LVMM_A_VCPU_THROTTLED_NS])
		v->throttled_ns = nla_get_u64(tb[LVMM_A_VCPU_THROTTLED_NS]);
	if (tb[LVMM_A_VCPU_NR_BOOSTS])
		v->nr_boosts = nla_get_u64(tb[LVMM_A_VCPU_NR_BOOSTS]);
	if (tb[LVMM_A_VCPU_BOOSTED_NS])
		v->boosted_ns = nla_get_u64(tb[LVMM_A_VCPU_BOOSTED_NS]);
	if (tb[LVMM_A_VCPU_AFFINITY])
		vmctl_cpus_from_attr(&v->affinity, tb[LVMM_A_VCPU_AFFINITY]);
	return NL_OK;
}

static int vmctl_vcpu_dump(struct vmctl_nl *nl, const struct vmctl_vm *vm,
			   struct vmctl_vcpus *l)
{
	struct nl_msg *msg;

	l->n = 0;
	msg = vmctl_nl_vm_msg(nl, LVMM_CMD_VCPU_GET, NLM_F_DUMP, vm->id);
	if (!msg)
		return -ENOMEM;
	return vmctl_nl_exec(nl, msg, vmctl_vcpu_cb, l);
}

static void vmctl_show_text(const struct vmctl_vm *vm,
			    const struct vmctl_vcpus *l, int vr)
{
	char buf[64];
	struct tm tm;
	time_t t = vm->created_ns / 1000000000;
	size_t i;

	printf("%-12s %s\n", "name:", vm->name);
	printf("%-12s %" PRIu32 "\n", "id:", vm->id);
	printf("%-12s %s\n", "state:", vmctl_vm_state_str(vm->state));
	if (vm->mig.outcome == LVMM_MIGRATE_UNKNOWN)
		printf("%-12s %s\n", "migration:",
		       "outcome unknown: kept paused here; if it runs on the destination, 'vmctl destroy' it here, else 'vmctl resume' it");
	printf("%-12s %" PRIu32 "\n", "owner uid:", vm->owner_uid);
	printf("%-12s %" PRIu32 "\n", "creator pid:", vm->creator_pid);
	strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
	printf("%-12s %s\n", "created:", buf);
	printf("%-12s %s (%" PRIu64 " bytes)\n", "memory:",
	       vmctl_fmt_size(buf, sizeof(buf), vm->mem_size), vm->mem_size);
	printf("%-12s %s\n", "guest time:",
	       vmctl_fmt_ns(buf, sizeof(buf), vm->guest_ns));
	printf("%-12s %" PRIu32 "\n", "vcpus:", vm->nr_vcpus);
	if (vr || !l->n)
		return;
	printf("\n  %-5s %-8s %7s %4s %12s %12s %12s %12s %10s %12s %s\n",
	       "VCPU", "STATE", "TID", "CPU", "GUEST-TIME", "HOST-TIME", "EXITS",
	       "THROTTLED", "BOOSTS", "BOOSTED", "AFFINITY");
	for (i = 0; i < l->n; i++) {
		const struct vmctl_vcpu *v = &l->v[i];
		char g[32], h[32], thr[32], bst[32], cpu[16] = "-";

		if (v->has_cpu)
			snprintf(cpu, sizeof(cpu), "%" PRIu32, v->cpu);
		printf("  %-5" PRIu32 " %-8s %7" PRIu32 " %4s %12s %12s %12"
		       PRIu64 " %12s %10" PRIu64 " %12s ", v->id,
		       vmctl_vcpu_state_str(v->state), v->tid, cpu,
		       vmctl_fmt_ns(g, sizeof(g), v->guest_ns),
		       vmctl_fmt_ns(h, sizeof(h), v->host_ns), v->exits,
		       vmctl_fmt_ns(thr, sizeof(thr), v->throttled_ns),
		       v->nr_boosts,
		       vmctl_fmt_ns(bst, sizeof(bst), v->boosted_ns));
		vmctl_cpus_print(stdout, &v->affinity);
		putchar('\n');
	}
}

static void vmctl_show_json(const struct vmctl_vm *vm,
			    const struct vmctl_vcpus *l, int vr)
{
	size_t i;

	putchar('{');
	vmctl_json_vm(stdout, vm);
	if (vm->mig.outcome == LVMM_MIGRATE_UNKNOWN)
		fputs(",\"migrate_outcome\":\"unknown\"", stdout);
	/* Without the right to see them, the vCPUs are left out. */
	if (!vr) {
		fputs(",\"vcpu_list\":[", stdout);
		for (i = 0; i < l->n; i++) {
			const struct vmctl_vcpu *v = &l->v[i];

			printf("%s{\"id\":%" PRIu32 ",\"state\":\"%s\",\"tid\":%"
			       PRIu32, i ? "," : "", v->id,
			       vmctl_vcpu_state_str(v->state), v->tid);
			if (v->has_cpu)
				printf(",\"cpu\":%" PRIu32, v->cpu);
			if (v->affinity.len) {
				fputs(",\"affinity\":", stdout);
				vmctl_json_cpus(stdout, &v->affinity);
			}
			printf(",\"guest_ns\":%" PRIu64 ",\"host_ns\":%" PRIu64
			       ",\"exits\":%" PRIu64 ",\"nr_throttled\":%" PRIu64
			       ",\"throttled_ns\":%" PRIu64 ",\"nr_boosts\":%"
			       PRIu64 ",\"boosted_ns\":%" PRIu64 "}",
			       v->guest_ns, v->host_ns, v->exits,
			       v->nr_throttled, v->throttled_ns, v->nr_boosts,
			       v->boosted_ns);
		}
		putchar(']');
	}
	puts("}");
}

static int vmctl_show(struct vmctl *ctx, int argc, char **argv)
{
	struct vmctl_vcpus *l;
	struct vmctl_vm vm;
	struct vmctl_nl nl;
	int r, vr;

	if (argc != 1)
		return 1;
	r = vmctl_nl_open_vm(&nl, argv[0], &vm);
	if (r)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l) {
		r = -ENOMEM;
		goto out_close;
	}
	vr = vmctl_vcpu_dump(&nl, &vm, l);
	if (vr && vr != -EPERM) {
		vmctl_nl_report(&nl, vr, "list the vCPUs of", &vm);
		r = vr;
		goto out_free;
	}
	if (ctx->json)
		vmctl_show_json(&vm, l, vr);
	else
		vmctl_show_text(&vm, l, vr);
	if (vr == -EPERM && !ctx->json)
		printf("%-12s not shown: the VM belongs to uid %" PRIu32
		       " (run as its owner or with CAP_NET_ADMIN)\n",
		       "vcpu list:", vm.owner_uid);
out_free:
	free(l);
out_close:
	vmctl_nl_close(&nl);
	return r;
}

/* pause, resume, destroy: name the VM, send the command, say why not. */
static int vmctl_change(int argc, char **argv, uint8_t cmd, const char *what)
{
	struct nl_msg *msg;
	struct vmctl_vm vm;
	struct vmctl_nl nl;
	int r;

	if (argc != 1)
		return 1;
	r = vmctl_nl_open_vm(&nl, argv[0], &vm);
	if (r)
		return r;
	msg = vmctl_nl_vm_msg(&nl, cmd, 0, vm.id);
	if (!msg) {
		r = -ENOMEM;
		vmctl_err("out of memory");
		goto out_close;
	}
	r = vmctl_nl_exec(&nl, msg, NULL, NULL);
	if (r == -EALREADY && cmd == LVMM_CMD_VM_PAUSE)
		vmctl_err("%s is already paused; 'vmctl resume %s' lets it run",
			  vm.name, vm.name);
	else if (r == -EALREADY)
		vmctl_err("%s is not paused; 'vmctl pause %s' pauses it",
			  vm.name, vm.name);
	else if (r == -ENOENT)
		vmctl_err("cannot %s %s: it has just been destroyed; see vmctl list",
			  what, vm.name);
	else if (r)
		vmctl_nl_report(&nl, r, what, &vm);
out_close:
	vmctl_nl_close(&nl);
	return r;
}

static int vmctl_pause(struct vmctl *ctx, int argc, char **argv)
{
	(void)ctx;
	return vmctl_change(argc, argv, LVMM_CMD_VM_PAUSE, "pause");
}

static int vmctl_resume(struct vmctl *ctx, int argc, char **argv)
{
	(void)ctx;
	return vmctl_change(argc, argv, LVMM_CMD_VM_RESUME, "resume");
}

static int vmctl_destroy(struct vmctl *ctx, int argc, char **argv)
{
	(void)ctx;
	return vmctl_change(argc, argv, LVMM_CMD_VM_DESTROY, "destroy");
}

VMCTL_CMDS(vmctl_vm_cmds) = {
	{ "list", NULL, "List the VMs of this network namespace.", vmctl_list },
	{ "show", "VM", "Show a VM (by name or id) and its vCPUs.",
	  vmctl_show },
	{ "pause", "VM", "Pause a VM: its vCPUs stop where they are.",
	  vmctl_pause },
	{ "resume", "VM", "Let a paused VM run on.", vmctl_resume },
	{ "destroy", "VM",
	  "Destroy a VM: its vCPUs stop for good and its name is free.",
	  vmctl_destroy },
	{ NULL },
};
