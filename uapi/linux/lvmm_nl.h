/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * lvmm: the "lvmm" generic netlink family, the management plane.
 *
 * Kept in step with Documentation/netlink/specs/lvmm.yaml (a selftest
 * checks that they agree).  Attributes start at 1 and are append-only.
 */
#ifndef _UAPI_LINUX_LVMM_NL_H
#define _UAPI_LINUX_LVMM_NL_H

#define LVMM_FAMILY_NAME	"lvmm"
#define LVMM_FAMILY_VERSION	1
#define LVMM_MCGRP_EVENTS	"events"

/* Scheduling policy limits (Documentation/scheduling.rst). */
#define LVMM_SCHED_WEIGHT_DEFAULT	256
#define LVMM_SCHED_WEIGHT_MAX		65535
#define LVMM_SCHED_CAP_MAX		12800	/* 128 vCPUs at 100 % */
#define LVMM_SCHED_PERIOD_US_DEFAULT	10000
#define LVMM_SCHED_PERIOD_US_MIN	1000
#define LVMM_SCHED_PERIOD_US_MAX	1000000

enum lvmm_vm_state {
	LVMM_VM_STATE_CREATED = 1,	/* no vCPU has run yet */
	LVMM_VM_STATE_RUNNING,
	LVMM_VM_STATE_PAUSED,
	LVMM_VM_STATE_SHUTDOWN,		/* a vCPU triple-faulted */
	LVMM_VM_STATE_DESTROYED,	/* destroyed, fds still open */
};

enum lvmm_vcpu_state {
	LVMM_VCPU_STATE_IDLE = 1,	/* not in LVMM_RUN */
	LVMM_VCPU_STATE_RUNNING,
	LVMM_VCPU_STATE_PAUSED,		/* in LVMM_RUN, parked */
	LVMM_VCPU_STATE_HALTED,		/* in LVMM_RUN, waiting in HLT */
};

enum lvmm_event {
	LVMM_EVENT_CREATED = 1,
	LVMM_EVENT_DESTROYED,
	LVMM_EVENT_PAUSED,
	LVMM_EVENT_RESUMED,
	LVMM_EVENT_SHUTDOWN,
	LVMM_EVENT_SCHED,		/* sched-set changed the policy */
	LVMM_EVENT_PIN_BROKEN,		/* CPU hotplug left a pin no online CPU */
	LVMM_EVENT_PIN_RESTORED,	/* a broken pin's CPUs are back */
	LVMM_EVENT_SAVE_PROGRESS,	/* vm-save: bytes written so far */
	LVMM_EVENT_SAVED,		/* vm-save ended; save-error says how */
	LVMM_EVENT_MIGRATE_PROGRESS,	/* vm-migrate: a pass's figures */
	LVMM_EVENT_MIGRATED,		/* vm-migrate ended; migrate-outcome */
};

/* How a vm-migrate ended, for the VM on this (the source) host. */
enum lvmm_migrate_outcome {
	LVMM_MIGRATE_MOVED = 1,		/* runs on the destination; gone here */
	LVMM_MIGRATE_STAYED,		/* failed or cancelled: runs on here */
	LVMM_MIGRATE_UNKNOWN,		/* GO sent, no DONE: kept paused here */
};

/* vm-migrate defaults and limits (Documentation/migration.rst, 9). */
#define LVMM_MIGRATE_DOWNTIME_MS_DEFAULT	300
#define LVMM_MIGRATE_DOWNTIME_MS_MAX		60000
#define LVMM_MIGRATE_MAX_ITER_DEFAULT		30
#define LVMM_MIGRATE_MAX_ITER_MAX		1000
#define LVMM_MIGRATE_MIN_BANDWIDTH		1000000	/* bytes/s, 1 MB/s */

/* A VM; also what requests use to name one (by id or by name). */
enum {
	LVMM_A_VM_UNSPEC,
	LVMM_A_VM_ID,			/* u32 */
	LVMM_A_VM_NAME,			/* string */
	LVMM_A_VM_OWNER_UID,		/* u32 */
	LVMM_A_VM_CREATOR_PID,		/* u32 */
	LVMM_A_VM_STATE,		/* u32: enum lvmm_vm_state */
	LVMM_A_VM_NR_VCPUS,		/* u32 */
	LVMM_A_VM_MEM_SIZE,		/* u64: bytes in memory slots */
	LVMM_A_VM_CREATED_NS,		/* u64: CLOCK_REALTIME */
	LVMM_A_VM_GUEST_NS,		/* u64: time in guest mode, all vCPUs */
	LVMM_A_VM_EVENT,		/* u32: enum lvmm_event */
	LVMM_A_VM_PAD,
	LVMM_A_VM_VCPU_ID,		/* u32: the vCPU of a pin event */
	LVMM_A_VM_SAVE_FD,		/* u32: vm-save writes to this fd */
	LVMM_A_VM_SAVE_STOP,		/* flag: vm-save destroys the VM after */
	LVMM_A_VM_SAVE_BYTES,		/* u64: written so far */
	LVMM_A_VM_SAVE_TOTAL,		/* u64: at most this many in all */
	LVMM_A_VM_SAVE_ERROR,		/* u32: errno, 0 when it succeeded */
	LVMM_A_VM_PAUSE_NS,		/* u64: how long the vCPUs were held */
	LVMM_A_VM_MIGRATE_FD,		/* u32: a connected stream socket */
	LVMM_A_VM_MIGRATE_DOWNTIME_MS,	/* u32: 1..60000, default 300 */
	LVMM_A_VM_MIGRATE_MAX_BANDWIDTH, /* u64: bytes/s >= 1e6, 0 = none */
	LVMM_A_VM_MIGRATE_MAX_ITER,	/* u32: passes, 1..1000, default 30 */
	LVMM_A_VM_MIGRATE_AUTO_CONVERGE, /* flag: throttle a fast dirtier */
	LVMM_A_VM_MIGRATE_ITERATION,	/* u32: the pass, 1 = all memory */
	LVMM_A_VM_MIGRATE_SENT,		/* u64: bytes sent so far */
	LVMM_A_VM_MIGRATE_LEFT,		/* u64: bytes dirty, to send */
	LVMM_A_VM_MIGRATE_DIRTY_RATE,	/* u64: bytes/s the guest dirties */
	LVMM_A_VM_MIGRATE_BANDWIDTH,	/* u64: bytes/s of the last pass */
	LVMM_A_VM_MIGRATE_EXPECTED_NS,	/* u64: downtime if it stopped now */
	LVMM_A_VM_MIGRATE_THROTTLE,	/* u32: % the guest is slowed by */
	LVMM_A_VM_MIGRATE_OUTCOME,	/* u32: enum lvmm_migrate_outcome */
	LVMM_A_VM_MIGRATE_ERROR,	/* u32: errno, 0 when it moved */
	LVMM_A_VM_MIGRATE_PEER_ERROR,	/* u32: the destination's REFUSE */
	LVMM_A_VM_MIGRATE_TOTAL_NS,	/* u64: from start to end */
	LVMM_A_VM_MIGRATE_DOWNTIME_NS,	/* u64: vCPUs stopped, to DONE */
	LVMM_A_VM_MIGRATE_CHECKSUM,	/* flag: pages in the checksum too */

	__LVMM_A_VM_MAX,
	LVMM_A_VM_MAX = __LVMM_A_VM_MAX - 1
};

enum {
	LVMM_A_VCPU_UNSPEC,
	LVMM_A_VCPU_VM_ID,		/* u32 */
	LVMM_A_VCPU_ID,			/* u32 */
	LVMM_A_VCPU_STATE,		/* u32: enum lvmm_vcpu_state */
	LVMM_A_VCPU_TID,		/* u32: thread that last ran it */
	LVMM_A_VCPU_CPU,		/* u32: host CPU it last ran on */
	LVMM_A_VCPU_GUEST_NS,		/* u64 */
	LVMM_A_VCPU_HOST_NS,		/* u64: in LVMM_RUN, not in the guest */
	LVMM_A_VCPU_EXITS,		/* u64 */
	LVMM_A_VCPU_PAD,
	LVMM_A_VCPU_AFFINITY,		/* binary: CPU bitmap of its thread */
	LVMM_A_VCPU_NR_THROTTLED,	/* u64: times the cap stopped it */
	LVMM_A_VCPU_THROTTLED_NS,	/* u64: time the cap held it back */
	LVMM_A_VCPU_NR_BOOSTS,		/* u64: times its reservation boosted it */
	LVMM_A_VCPU_BOOSTED_NS,		/* u64: time it ran boosted */

	__LVMM_A_VCPU_MAX,
	LVMM_A_VCPU_MAX = __LVMM_A_VCPU_MAX - 1
};

/* Counters of one vCPU, or of the whole VM (no LVMM_A_STATS_VCPU_ID). */
enum {
	LVMM_A_STATS_UNSPEC,
	LVMM_A_STATS_VM_ID,		/* u32 */
	LVMM_A_STATS_VCPU_ID,		/* u32 */
	LVMM_A_STATS_EXITS,		/* u64: all exits */
	LVMM_A_STATS_EXITS_IO,		/* u64 */
	LVMM_A_STATS_EXITS_MMIO,	/* u64 */
	LVMM_A_STATS_EXITS_HLT,		/* u64 */
	LVMM_A_STATS_EXITS_HYPERCALL,	/* u64 */
	LVMM_A_STATS_EXITS_CPUID,	/* u64 */
	LVMM_A_STATS_EXITS_MSR,		/* u64 */
	LVMM_A_STATS_EXITS_INTR,	/* u64: host interrupts */
	LVMM_A_STATS_EXITS_OTHER,	/* u64 */
	LVMM_A_STATS_NPF,		/* u64: nested page faults */
	LVMM_A_STATS_IRQS,		/* u64: interrupts injected */
	LVMM_A_STATS_GUEST_NS,		/* u64 */
	LVMM_A_STATS_VCPU,		/* nested: per-vCPU counters */
	LVMM_A_STATS_PAD,
	/*
	 * The VM's alone (not in a vcpu nest): the nested page table's
	 * leaf entries now present, by size.
	 */
	LVMM_A_STATS_MAPPED_4K,		/* u64: 4 KiB entries */
	LVMM_A_STATS_MAPPED_2M,		/* u64: 2 MiB entries */

	__LVMM_A_STATS_MAX,
	LVMM_A_STATS_MAX = __LVMM_A_STATS_MAX - 1
};

/*
 * Scheduling policy of a VM (sched-get, sched-set).  Requests name the VM
 * with vm-id or vm-name, as in the vm set.  CPU bitmaps: bit n of byte
 * n / 8 is host CPU n.
 */
enum {
	LVMM_A_SCHED_UNSPEC,
	LVMM_A_SCHED_VM_ID,		/* u32 */
	LVMM_A_SCHED_VM_NAME,		/* string */
	LVMM_A_SCHED_WEIGHT,		/* u32: 1..65535, default 256 */
	LVMM_A_SCHED_CAP,		/* u32: % of one host CPU, 0 = none */
	LVMM_A_SCHED_PERIOD_US,		/* u32: the cap's period, 1000..1000000 */
	LVMM_A_SCHED_RESERVE,		/* u32: % of one host CPU, 0 = none */
	LVMM_A_SCHED_VCPU,		/* nested, multi: sched-vcpu */
	LVMM_A_SCHED_NICE,		/* s32: nice the weight maps to */
	LVMM_A_SCHED_NR_PERIODS,	/* u64: periods the capped VM ran in */
	LVMM_A_SCHED_NR_THROTTLED,	/* u64: periods it ran out of budget */
	LVMM_A_SCHED_THROTTLED_NS,	/* u64: vCPU time held back, summed */
	LVMM_A_SCHED_PAD,

	__LVMM_A_SCHED_MAX,
	LVMM_A_SCHED_MAX = __LVMM_A_SCHED_MAX - 1
};

/* One vCPU's placement, nested in LVMM_A_SCHED_VCPU. */
enum {
	LVMM_A_SCHED_VCPU_UNSPEC,
	LVMM_A_SCHED_VCPU_ID,		/* u32 */
	LVMM_A_SCHED_VCPU_CPUS,		/* binary: pin bitmap; empty = none */
	LVMM_A_SCHED_VCPU_PIN_BROKEN,	/* flag: no CPU of the pin is online */

	__LVMM_A_SCHED_VCPU_MAX,
	LVMM_A_SCHED_VCPU_MAX = __LVMM_A_SCHED_VCPU_MAX - 1
};

enum {
	LVMM_CMD_UNSPEC,
	LVMM_CMD_VM_GET,		/* do: one VM; dump: all VMs */
	LVMM_CMD_VCPU_GET,		/* dump: the vCPUs of one VM */
	LVMM_CMD_STATS_GET,		/* do: a VM's counters */
	LVMM_CMD_VM_PAUSE,
	LVMM_CMD_VM_RESUME,
	LVMM_CMD_VM_DESTROY,
	LVMM_CMD_VM_EVENT,		/* notification, events group */
	LVMM_CMD_SCHED_GET,		/* do: a VM's scheduling policy */
	LVMM_CMD_SCHED_SET,		/* do: change it */
	LVMM_CMD_VM_SAVE,		/* do: start writing a VM to a fd */
	LVMM_CMD_VM_MIGRATE,		/* do: start a live migration */
	LVMM_CMD_VM_MIGRATE_CANCEL,	/* do: stop it; the VM stays */

	__LVMM_CMD_MAX,
	LVMM_CMD_MAX = __LVMM_CMD_MAX - 1
};

#endif /* _UAPI_LINUX_LVMM_NL_H */
