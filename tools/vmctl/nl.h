/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vmctl: the netlink plumbing shared by the management commands -- the
 * "lvmm" generic netlink family (uapi/linux/lvmm_nl.h) over libnl-genl-3.
 */
#ifndef _VMCTL_NL_H
#define _VMCTL_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <time.h>

#include <netlink/netlink.h>
#include <netlink/genl/genl.h>
#include <linux/lvmm.h>
#include <linux/lvmm_nl.h>

struct vmctl;

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif

/* More than the module allows (LVMM_CAP_MAX_VCPUS). */
#define VMCTL_MAX_VCPUS	1024

struct vmctl_nl {
	struct nl_sock *sk;
	int family;
	char ext_msg[256];	/* extack message of the last request, or "" */
};

/* A VM, as vm-get and vm-event describe it. */
struct vmctl_vm {
	uint32_t id;
	char name[LVMM_VM_NAME_LEN];
	uint32_t owner_uid;
	uint32_t creator_pid;
	uint32_t state;
	uint32_t nr_vcpus;
	uint64_t mem_size;
	uint64_t created_ns;
	uint64_t guest_ns;
	uint32_t event;		/* vm-event only, else 0 */
	uint32_t vcpu_id;	/* pin-broken and pin-restored events only */
	bool has_vcpu_id;
	/* save-progress and saved events only */
	bool has_save;
	uint64_t save_bytes, save_total;
	uint32_t save_error;	/* saved: 0 or the errno */
	uint64_t pause_ns;	/* saved: how long the vCPUs were held */
	/* migrate-progress and migrated events only */
	bool has_migrate;
	struct vmctl_migrate_ev {
		/* migrate-progress: a pass's figures */
		uint32_t iteration;
		uint64_t sent;		/* both events: bytes sent so far */
		uint64_t left, dirty_rate, bandwidth, expected_ns;
		uint32_t throttle;
		/* migrated: how it ended; vm-get: UNKNOWN, kept paused */
		uint32_t outcome;	/* enum lvmm_migrate_outcome */
		uint32_t error, peer_error;
		uint64_t total_ns, downtime_ns;
	} mig;
};

/* Open a socket and resolve the family; says what went wrong. */
int vmctl_nl_open(struct vmctl_nl *nl);
void vmctl_nl_close(struct vmctl_nl *nl);
/* Join the events group: the socket then only receives. */
int vmctl_nl_join_events(struct vmctl_nl *nl);

/*
 * Commands that start a job in lvmm and wait for its end event (save,
 * migrate): a socket on the events group, opened before the request so
 * that no event can be missed, which hands every message to @cb.  Says
 * what went wrong.
 */
int vmctl_nl_open_events(struct vmctl_nl *nl,
			 int (*cb)(struct nl_msg *msg, void *arg), void *arg);
/* The signals that end or change such a wait: SIGINT, SIGTERM, SIGHUP. */
void vmctl_job_sigset(sigset_t *sigs);
/*
 * Receive events until *@done, with the signals of vmctl_job_sigset(),
 * which the caller blocks before it sends the request, read meanwhile:
 * @on_signal (may be NULL: stop) is called with each, and the wait goes
 * on while it returns 0, else ends with what it returned.  Bursts of
 * events lost to an overrun are counted in *@lost.  Returns 0, the
 * return of @on_signal, or -EIO with libnl's reason in nl->ext_msg.
 */
int vmctl_nl_wait_events(struct vmctl_nl *nl, const bool *done,
			 int (*on_signal)(int sig, void *arg), void *arg,
			 unsigned long *lost);
/* Say that @lost bursts of events were lost, if any. */
void vmctl_nl_report_lost(unsigned long lost);
/*
 * In the @cb of vmctl_nl_open_events(): @msg parsed into @ev if it is a
 * vm-event of VM @vm_id; false if it is anything else.
 */
bool vmctl_nl_vm_event(struct nl_msg *msg, uint32_t vm_id,
		       struct vmctl_vm *ev);
/*
 * Send @msg (consumed), the request that starts job @what ("save",
 * "migrate") of @vm.  Returns 0 or a negative errno, and says why the
 * request failed and what to do -- but for -EBUSY, whose reason only
 * the caller knows.
 */
int vmctl_nl_job_request(struct vmctl_nl *nl, struct nl_msg *msg,
			 const char *what, const struct vmctl_vm *vm);
/* Nanoseconds of CLOCK_MONOTONIC since @t0. */
uint64_t vmctl_elapsed_ns(const struct timespec *t0);

/* A request of the family; NULL only when out of memory. */
struct nl_msg *vmctl_nl_msg(struct vmctl_nl *nl, uint8_t cmd, int flags);
/*
 * A request about VM @vm_id (LVMM_A_VM_ID, which every attribute set that
 * names a VM numbers alike); NULL only when out of memory.
 */
struct nl_msg *vmctl_nl_vm_msg(struct vmctl_nl *nl, uint8_t cmd, int flags,
			       uint32_t vm_id);
/*
 * Send @msg (consumed) and receive until the ack or the end of the dump,
 * calling @cb on every reply.  Returns 0 or a negative errno, with the
 * kernel's extack message, if any, in nl->ext_msg.
 */
int vmctl_nl_exec(struct vmctl_nl *nl, struct nl_msg *msg,
		  int (*cb)(struct nl_msg *msg, void *arg), void *arg);

int vmctl_nl_parse_vm(struct nl_msg *msg, struct vmctl_vm *vm);

/* Every VM of the namespace, ordered by id; *vms is malloc'd. */
int vmctl_vm_dump(struct vmctl_nl *nl, struct vmctl_vm **vms, size_t *n);
/* vm-get of VM @id, or of @name if not NULL; 0 or -errno, silently. */
int vmctl_vm_get(struct vmctl_nl *nl, uint32_t id, const char *name,
		 struct vmctl_vm *vm);
/*
 * The VM @arg names (a name, or a numeric id); on failure says so, and
 * what to do, and returns a negative errno.
 */
int vmctl_vm_lookup(struct vmctl_nl *nl, const char *arg,
		    struct vmctl_vm *vm);
/* vmctl_nl_open(), then vmctl_vm_lookup(); on failure @nl is closed. */
int vmctl_nl_open_vm(struct vmctl_nl *nl, const char *arg,
		     struct vmctl_vm *vm);
/*
 * Say why @what (e.g. "pause") of @vm failed with @err, in the user's
 * terms; the kernel's extack message when nothing better is known.
 */
void vmctl_nl_report(struct vmctl_nl *nl, int err, const char *what,
		     const struct vmctl_vm *vm);

const char *vmctl_vm_state_str(uint32_t state);
const char *vmctl_vcpu_state_str(uint32_t state);
const char *vmctl_event_str(uint32_t event);
const char *vmctl_migrate_outcome_str(uint32_t outcome);

/* JSON and text helpers. */
void vmctl_json_str(FILE *f, const char *s);
/* The members of a VM's JSON object, without the braces. */
void vmctl_json_vm(FILE *f, const struct vmctl_vm *vm);
/* "512M", "1.5G": a size for humans, in @buf. */
const char *vmctl_fmt_size(char *buf, size_t len, uint64_t bytes);
/* "1:02:03.45", "12.30s": a duration for humans, in @buf. */
const char *vmctl_fmt_ns(char *buf, size_t len, uint64_t ns);
/* Parse a positive count for -n; false if @s is not one. */
bool vmctl_parse_count(const char *s, unsigned long *n);
/*
 * Parse @s, a number from @min to @max, for @what ("weight", "run:
 * --weight"); else say why not, with @unit (" milliseconds") after the
 * range, and return false.
 */
bool vmctl_parse_u32(const char *what, const char *s, uint32_t min,
		     uint32_t max, const char *unit, uint32_t *v);

/*
 * Host CPUs, as the kernel's bitmaps carry them: bit n of byte n / 8 is
 * CPU n.  vmctl knows CPUs 0 to VMCTL_MAX_CPUS - 1.
 */
#define VMCTL_MAX_CPUS	4096

struct vmctl_cpus {
	size_t len;		/* bytes up to the highest CPU; 0: no CPU */
	uint8_t map[VMCTL_MAX_CPUS / 8];
};

/*
 * Parse a CPU list in the kernel's format ("0-3,5,7-8"); else say what is
 * wrong with it, naming it @what, and return false.
 */
bool vmctl_cpus_parse(const char *what, const char *s, struct vmctl_cpus *c);
/* A bitmap attribute from the kernel (CPUs past vmctl's last are cut). */
void vmctl_cpus_from_attr(struct vmctl_cpus *c, const struct nlattr *a);
/* @c as a CPU list, "-" when it has no CPU. */
void vmctl_cpus_print(FILE *f, const struct vmctl_cpus *c);
/* @c as a JSON string, null when it has no CPU. */
void vmctl_json_cpus(FILE *f, const struct vmctl_cpus *c);

/* Counters of a VM or of one vCPU, from stats-get. */
struct vmctl_stats {
	uint32_t vcpu_id;
	uint64_t exits, io, mmio, hlt, hypercall, cpuid, msr, intr, other;
	uint64_t npf, irqs, guest_ns;
	/* The VM's only: nested page table entries, by size. */
	uint64_t mapped_4k, mapped_2m;
};

/*
 * stats-get: the VM's totals in @total and up to @max vCPUs in @vcpus
 * (may be NULL), their number in *@n.  Returns 0 or a negative errno,
 * without a message (see vmctl_nl_report()).
 */
int vmctl_stats_get(struct vmctl_nl *nl, uint32_t vm_id,
		    struct vmctl_stats *total, struct vmctl_stats *vcpus,
		    size_t max, size_t *n);

/* What a struct vmctl_sched holds: given in sched-set, sent by sched-get. */
#define VMCTL_SCHED_WEIGHT	(1U << 0)
#define VMCTL_SCHED_CAP		(1U << 1)
#define VMCTL_SCHED_PERIOD	(1U << 2)
#define VMCTL_SCHED_RESERVE	(1U << 3)
#define VMCTL_SCHED_NICE	(1U << 4)

/* One vCPU's pin. */
struct vmctl_pin {
	uint32_t vcpu;
	bool broken;		/* sched-get: no CPU of the pin is online */
	struct vmctl_cpus cpus;	/* none: not pinned (sched-set: unpin) */
};

/* A VM's scheduling policy (sched.c, Documentation/vmctl.rst). */
struct vmctl_sched {
	unsigned int given;	/* VMCTL_SCHED_* */
	uint32_t weight, cap, period_us, reserve;
	int32_t nice;
	uint64_t nr_periods, nr_throttled, throttled_ns;
	/* sched-get: up to max_pins (none if NULL); sched-set: all of them. */
	struct vmctl_pin *pins;
	size_t nr_pins, max_pins;
};

/*
 * Parse @key ("weight", "cap", "period", "reserve") with @val (may be
 * NULL) into @s: 0, or 1 after saying what is wrong, @prefix ("run: --")
 * before the key.
 */
int vmctl_sched_parse(const char *prefix, const char *key, const char *val,
		      struct vmctl_sched *s);
/* sched-get; 0 or a negative errno, without a message. */
int vmctl_sched_get(struct vmctl_nl *nl, uint32_t vm_id,
		    struct vmctl_sched *s);
/*
 * sched-set of @s on VM @vm (a name or an id), to @what ("pin a vCPU
 * of"); on failure says why, and what to do, and returns a negative errno.
 */
int vmctl_sched_change(const char *vm, const struct vmctl_sched *s,
		       const char *what);

#endif /* _VMCTL_NL_H */
