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
};

/* Open a socket and resolve the family; says what went wrong. */
int vmctl_nl_open(struct vmctl_nl *nl);
void vmctl_nl_close(struct vmctl_nl *nl);
/* Join the events group: the socket then only receives. */
int vmctl_nl_join_events(struct vmctl_nl *nl);

/* A request of the family; NULL only when out of memory. */
struct nl_msg *vmctl_nl_msg(struct vmctl_nl *nl, uint8_t cmd, int flags);
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
/*
 * The VM @arg names (a name, or a numeric id); on failure says so, and
 * what to do, and returns a negative errno.
 */
int vmctl_vm_lookup(struct vmctl_nl *nl, const char *arg,
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

/* Counters of a VM or of one vCPU, from stats-get. */
struct vmctl_stats {
	uint32_t vcpu_id;
	uint64_t exits, io, mmio, hlt, hypercall, cpuid, msr, intr, other;
	uint64_t npf, irqs, guest_ns;
};

/*
 * stats-get: the VM's totals in @total and up to @max vCPUs in @vcpus
 * (may be NULL), their number in *@n.  Returns 0 or a negative errno,
 * without a message (see vmctl_nl_report()).
 */
int vmctl_stats_get(struct vmctl_nl *nl, uint32_t vm_id,
		    struct vmctl_stats *total, struct vmctl_stats *vcpus,
		    size_t max, size_t *n);

#endif /* _VMCTL_NL_H */
