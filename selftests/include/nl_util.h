/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small client of the "lvmm" generic netlink family for the management
 * plane's selftests.  It talks netlink directly with libnl so that a test
 * can send what a well-behaved tool never would, and it keeps the extack
 * message of every refused request.
 */
#ifndef SELFTEST_LVMM_NL_UTIL_H
#define SELFTEST_LVMM_NL_UTIL_H

#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/genl/genl.h>

#include <linux/lvmm_nl.h>

#include "lvmm_util.h"

struct nlc {
	struct nl_sock *sk;
	int family;
	char ext[256];		/* extack message of the last request */
	bool ext_tlvs;		/* the last error came with extack TLVs */
};

/* NULL when lvmm (or its family) is not there: the test skips. */
struct nlc *nlc_open(void);
void nlc_close(struct nlc *c);
/* A request for @cmd of the lvmm family, to fill with attributes. */
struct nl_msg *nlc_msg(struct nlc *c, u8 cmd, int flags);
/*
 * Send @msg (consumed) and take the replies, each handed to @cb; 0 or
 * -errno, with the extack message in c->ext.
 */
int nlc_exec(struct nlc *c, struct nl_msg *msg,
	     int (*cb)(struct nl_msg *msg, void *arg), void *arg);

/* Skip the test when /dev/lvmm or the family is missing. */
#define REQUIRE_LVMM(c)	do {						\
	TEST_REQUIRE(lvmm_dev_present());				\
	(c) = nlc_open();						\
	TEST_REQUIRE((c) != NULL);					\
} while (0)

/*
 * The top-level attributes of type @type of genetlink message @msg, in
 * order: up to @max of them into @out.  Returns how many there are.
 */
int nl_attrs_of_type(struct nl_msg *msg, int type, struct nlattr **out,
		     int max);

/* A VM as vm-get and the events report it. */
struct nl_vm {
	u32 id, owner_uid, creator_pid, state, nr_vcpus, event;
	char name[LVMM_VM_NAME_LEN];
	u64 mem_size, created_ns, guest_ns;
	u32 vcpu_id;		/* pin events only */
	bool has_vcpu_id;
	/* save-progress and saved events only */
	u64 save_bytes, save_total, pause_ns;
	u32 save_error;
	bool has_save_error;
	/* migrate-progress and migrated events only */
	u32 mig_iteration, mig_throttle;
	u64 mig_sent, mig_left, mig_dirty_rate, mig_bandwidth, mig_expected_ns;
	/* migrated events only */
	u32 mig_outcome, mig_error, mig_peer_error;
	u64 mig_total_ns, mig_downtime_ns;
	bool has_mig_outcome;
	bool seen;
};

int parse_vm(struct nl_msg *msg, struct nl_vm *vm);
int vm_get_cb(struct nl_msg *msg, void *arg);
/* vm-get do, by id (non-zero) or by name. */
int nl_vm_get(struct nlc *c, u32 id, const char *name, struct nl_vm *vm);
/* pause, resume, destroy and friends: one VM by id. */
int nl_vm_cmd(struct nlc *c, u8 cmd, u32 id);
/* The number of VMs a vm-get dump lists, or -errno. */
int nl_vm_count(struct nlc *c);

/* How the nested page tables map a VM's memory now (stats-get). */
struct nl_mapped {
	u64 n4k, n2m;		/* entries of 4 KiB and of 2 MiB */
};

/* 0, or -errno; -ENODATA when the reply lacks either count. */
int nl_vm_mapped(struct nlc *c, u32 id, struct nl_mapped *m);

/* A vCPU as vcpu-get reports it. */
struct nl_vcpu {
	u32 vm_id, id, state, tid, cpu;
	bool has_cpu;
	u64 guest_ns, host_ns, exits;
	bool has_affinity;
	cpu_set_t affinity;
	u64 nr_throttled, throttled_ns;
	u64 nr_boosts, boosted_ns;
};

struct vcpu_dump {
	struct nl_vcpu v[MAX_VCPUS];
	size_t n;
};

int nl_vcpu_dump(struct nlc *c, u32 vm_id, struct vcpu_dump *d);

/*
 * CPU bitmaps on the wire: bit n of byte n / 8 is CPU n.  A set is put
 * in as few bytes as hold its highest CPU (none for an empty set).
 */
int nl_put_cpus(struct nl_msg *msg, int type, const cpu_set_t *set);
void nl_get_cpus(const struct nlattr *a, cpu_set_t *set);

/* The events group. */
struct nl_events {
	struct nl_sock *sk;
	struct nl_vm last;
};

struct nl_events *events_open(void);
/*
 * The next event about VM @id (others are skipped); false after 10 s
 * without one.
 */
bool event_next(struct nl_events *ev, u32 id, struct nl_vm *out);
void events_close(struct nl_events *ev);

/* How a vm-save ended: its saved event. */
struct nl_saved {
	u32 error;		/* save-error: 0, or the errno it failed with */
	u64 bytes, total;	/* save-bytes, save-total */
	u64 pause_ns;
	int nr_progress;	/* save-progress events before it */
	u64 progress_bytes;	/* save-bytes of the last of them */
};

/*
 * vm-save of VM @id to @fd of this process, with save-stop if @stop:
 * 0 or the request's -errno (its extack message in c->ext).  The save
 * goes on in the kernel; its events come on the events group.
 */
int nl_vm_save(struct nlc *c, u32 id, int fd, bool stop);
/*
 * Wait on @ev for the saved event of VM @id, counting the save-progress
 * events before it; false after 10 s without an event of @id.
 */
bool event_saved(struct nl_events *ev, u32 id, struct nl_saved *out);
/*
 * vm-save and wait for its end: subscribes to the events group before
 * the request, so that the saved event cannot be missed.  The request's
 * -errno, -ETIMEDOUT if no saved event came, or 0 with @out filled.
 */
int nl_vm_save_wait(struct nlc *c, u32 id, int fd, bool stop,
		    struct nl_saved *out);

/* vm-migrate's options; a field left 0 is not sent (lvmm's default). */
struct nl_mig_args {
	u32 downtime_ms;
	u64 max_bandwidth;
	u32 max_iter;
	bool auto_converge;
	bool checksum;		/* the pages in the stream's checksum too */
};

/*
 * vm-migrate of VM @id over @fd, a connected socket of this process, with
 * the options of @a (NULL: none): 0 or the request's -errno (its extack
 * message in c->ext).  The migration goes on in the kernel; its events
 * come on the events group.
 */
int nl_vm_migrate(struct nlc *c, u32 id, int fd, const struct nl_mig_args *a);

/* How a vm-migrate ended: its migrated event, and the progress before. */
struct nl_migrated {
	u32 outcome;		/* enum lvmm_migrate_outcome */
	u32 error, peer_error;	/* errnos, 0 if none */
	u64 total_ns, downtime_ns, sent;
	int nr_progress;	/* migrate-progress events before it */
	u32 iterations;		/* the highest pass they reported */
	u32 max_throttle;	/* the most they said the guest was slowed */
	u64 progress_sent;	/* migrate-sent of the last of them */
	/* A pass number or a byte count that went down from one to the next. */
	bool disorder;
};

/*
 * Wait on @ev for the migrated event of VM @id, for up to @ms
 * milliseconds, taking the migrate-progress events before it into @out;
 * false if it did not come.
 */
bool event_migrated(struct nl_events *ev, u32 id, struct nl_migrated *out,
		    u64 ms);

/* In a child: a check that fails exits with the line it failed on. */
#define CHILD_CHECK(cond, fmt, ...) do {				\
	if (!(cond)) {							\
		fprintf(stderr, "# %s:%d: %s: " fmt "\n", __FILE__,	\
			__LINE__, #cond, ##__VA_ARGS__);		\
		_exit(__LINE__ & 0xff ? __LINE__ & 0xff : 1);		\
	}								\
} while (0)

/* Become uid and gid 65534, with no supplementary groups and no caps. */
void drop_to_nobody(void);

#endif /* SELFTEST_LVMM_NL_UTIL_H */
