// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl monitor: the lvmm events group, one line per event.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "nl.h"
#include "vmctl.h"

struct vmctl_monitor {
	bool json;
	unsigned long count, seen;
};

/* A migrate-progress or migrated event's figures, as key value pairs. */
static void vmctl_monitor_migrate_text(const struct vmctl_vm *vm)
{
	const struct vmctl_migrate_ev *m = &vm->mig;

	if (vm->event == LVMM_EVENT_MIGRATED) {
		printf(" outcome %s error %" PRIu32 " peer_error %" PRIu32
		       " sent %" PRIu64 " total_ns %" PRIu64 " downtime_ns %"
		       PRIu64, vmctl_migrate_outcome_str(m->outcome),
		       m->error, m->peer_error, m->sent, m->total_ns,
		       m->downtime_ns);
		return;
	}
	printf(" iteration %" PRIu32 " sent %" PRIu64 " left %" PRIu64
	       " dirty_rate %" PRIu64 " bandwidth %" PRIu64 " expected_ns %"
	       PRIu64 " throttle %" PRIu32, m->iteration, m->sent, m->left,
	       m->dirty_rate, m->bandwidth, m->expected_ns, m->throttle);
}

static void vmctl_monitor_migrate_json(const struct vmctl_vm *vm)
{
	const struct vmctl_migrate_ev *m = &vm->mig;

	if (vm->event == LVMM_EVENT_MIGRATED) {
		printf(",\"migrate_outcome\":\"%s\",\"migrate_error\":%" PRIu32
		       ",\"migrate_peer_error\":%" PRIu32 ",\"migrate_sent\":%"
		       PRIu64 ",\"migrate_total_ns\":%" PRIu64
		       ",\"migrate_downtime_ns\":%" PRIu64,
		       vmctl_migrate_outcome_str(m->outcome), m->error,
		       m->peer_error, m->sent, m->total_ns, m->downtime_ns);
		return;
	}
	printf(",\"migrate_iteration\":%" PRIu32 ",\"migrate_sent\":%" PRIu64
	       ",\"migrate_left\":%" PRIu64 ",\"migrate_dirty_rate\":%" PRIu64
	       ",\"migrate_bandwidth\":%" PRIu64 ",\"migrate_expected_ns\":%"
	       PRIu64 ",\"migrate_throttle\":%" PRIu32, m->iteration, m->sent,
	       m->left, m->dirty_rate, m->bandwidth, m->expected_ns,
	       m->throttle);
}

static int vmctl_monitor_cb(struct nl_msg *msg, void *arg)
{
	struct genlmsghdr *g = nlmsg_data(nlmsg_hdr(msg));
	struct vmctl_monitor *m = arg;
	struct vmctl_vm vm;

	if (g->cmd != LVMM_CMD_VM_EVENT || vmctl_nl_parse_vm(msg, &vm))
		return NL_OK;
	if (m->json) {
		printf("{\"event\":\"%s\",", vmctl_event_str(vm.event));
		vmctl_json_vm(stdout, &vm);
		if (vm.has_vcpu_id)
			printf(",\"vcpu_id\":%" PRIu32, vm.vcpu_id);
		if (vm.has_save)
			printf(",\"save_bytes\":%" PRIu64 ",\"save_total\":%"
			       PRIu64, vm.save_bytes, vm.save_total);
		if (vm.has_save && vm.event == LVMM_EVENT_SAVED)
			printf(",\"save_error\":%" PRIu32 ",\"pause_ns\":%"
			       PRIu64, vm.save_error, vm.pause_ns);
		if (vm.has_migrate)
			vmctl_monitor_migrate_json(&vm);
		puts("}");
	} else {
		printf("%-9s %s id %" PRIu32 " uid %" PRIu32 " pid %" PRIu32
		       " state %s", vmctl_event_str(vm.event), vm.name,
		       vm.id, vm.owner_uid, vm.creator_pid,
		       vmctl_vm_state_str(vm.state));
		if (vm.has_vcpu_id)
			printf(" vcpu %" PRIu32, vm.vcpu_id);
		if (vm.has_save)
			printf(" bytes %" PRIu64 " total %" PRIu64,
			       vm.save_bytes, vm.save_total);
		if (vm.has_save && vm.event == LVMM_EVENT_SAVED)
			printf(" error %" PRIu32 " pause_ns %" PRIu64,
			       vm.save_error, vm.pause_ns);
		if (vm.has_migrate)
			vmctl_monitor_migrate_text(&vm);
		putchar('\n');
	}
	fflush(stdout);
	m->seen++;
	return m->count && m->seen >= m->count ? NL_STOP : NL_OK;
}

static int vmctl_monitor(struct vmctl *ctx, int argc, char **argv)
{
	struct vmctl_monitor m = { .json = ctx->json };
	struct vmctl_nl nl;
	int r;

	if (argc == 2 && !strcmp(argv[0], "-n")) {
		if (!vmctl_parse_count(argv[1], &m.count))
			return 1;
	} else if (argc) {
		return 1;
	}
	r = vmctl_nl_open(&nl);
	if (r)
		return r;
	r = vmctl_nl_join_events(&nl);
	if (r)
		goto out_close;
	nl_socket_modify_cb(nl.sk, NL_CB_VALID, NL_CB_CUSTOM,
			    vmctl_monitor_cb, &m);
	while (!m.count || m.seen < m.count) {
		r = nl_recvmsgs_default(nl.sk);
		if (r == -NLE_NOMEM) {
			/* The socket overran: say so and carry on. */
			vmctl_err("events were lost: this host makes them faster than vmctl reads");
			continue;
		}
		if (r < 0) {
			vmctl_err("cannot receive events: %s", nl_geterror(r));
			r = -EIO;
			goto out_close;
		}
	}
	r = 0;
out_close:
	vmctl_nl_close(&nl);
	return r;
}

VMCTL_CMDS(vmctl_monitor_cmds) = {
	{ "monitor", "[-n COUNT]",
	  "Print VM events as they happen: created, paused, resumed, shutdown,\n"
	  "      destroyed, sched, pin-broken, pin-restored, save-progress, saved,\n"
	  "      migrate-progress, migrated.",
	  vmctl_monitor },
	{ NULL },
};
