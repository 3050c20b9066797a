// SPDX-License-Identifier: GPL-2.0
/*
 * lvmm-mig-bench: what a live migration costs (Documentation/migration.rst,
 * 9), between two VMMs in this one process over TCP on the loopback: the
 * source gives its end of the connection to lvmm with netlink vm-migrate,
 * the destination, a thread, gives the end it accepted to
 * LVMM_RESTORE_VM with LVMM_RESTORE_INCOMING.  Run by scripts/bench in
 * the --smp 1 sandbox.
 *
 *   lvmm-mig-bench [-r RUNS] [-d MS] [-a RUNS] [-s ROWS]
 *
 * The guest (mig-guest.S): slot 0 (2 MiB at GPA 0) holds its code, its
 * progress counter and its orders; slot 1 (at GPA 256 MiB) is the memory
 * it first writes all of, then dirties a page at a time, counting.
 *
 *   downtime   256 MiB, dirtied at 8 MiB/s: 4 pages, then HLT, and the
 *              VMM runs the vCPU again 1.95 ms later (on either host, as
 *              a guest's timer would).  At each HLT the VMM reads the
 *              counter through its mapping of slot 0, with
 *              CLOCK_MONOTONIC: the largest gap between two readings,
 *              from the source's last ones to the destination's first,
 *              is the downtime as the guest sees it.  vm-migrate with
 *              downtime-ms -d (default 30); migrate-downtime-ns of the
 *              migrated event is lvmm's own figure.
 *   total      256 MiB written once, then idle (HLT, not run again):
 *              from vm-migrate to the migrated event, against a raw TCP
 *              transfer of 256 MiB (2 MiB writes, 2 MiB reads) over the
 *              same loopback, in alternating order; then the same
 *              migration with migrate-checksum.
 *   converge   32 MiB dirtied at 48 MiB/s by a guest that spins on the
 *              TSC between pages, over a link held to 24 MB/s
 *              (max-bandwidth) with auto-converge: the total time and the
 *              throttle lvmm ended with (migrated event).
 *
 * Every run is checked (the migrated event's outcome, the source's vCPU
 * leaving RUN with LVMM_EXIT_MIGRATED, the guest's memory on the
 * destination: each page's first dword less its address, summed, equals
 * the counter; the TCP byte count) so that a broken run prints an error,
 * never a number.  Prints the runs, a table and then:
 *   metric migrate_downtime_ms X          largest progress gap, median
 *   metric migrate_downtime_lvmm_ms X     migrate-downtime-ns, median
 *   metric migrate_total_vs_tcp R         median total over median TCP
 *   metric migrate_checksum_vs_tcp R      the same, with migrate-checksum
 *   metric migrate_autoconverge_total_ms X
 *   metric migrate_autoconverge_throttle_pct P
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include <netlink/netlink.h>
#include <netlink/genl/genl.h>
#include <linux/lvmm_nl.h>

#include "bench-util.h"
#include "mig-guest.h"

#define MIB		(1ULL << 20)
#define LOW_SIZE	(2 * MIB)	/* slot 0 at GPA 0 */
#define BIG_GPA		(256 * MIB)	/* slot 1 */
#define BIG_SIZE	(256 * MIB)
#define CONV_SIZE	(32 * MIB)

#define DIRTY_MIBPS	8		/* downtime: the guest's rate */
#define PACED_BATCH	4		/* pages per HLT */
#define CONV_MIBPS	48		/* converge: the guest's rate */
#define CONV_LINK	24000000ULL	/* and the link's, bytes/s */

#define TCP_CHUNK	(2 * MIB)
#define MAX_LOG		(1 << 17)	/* progress readings per side */

const char *const bench_name = "lvmm-mig-bench";

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = t / 1000000000ull,
			       .tv_nsec = t % 1000000000ull };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

/* The TSC's rate, which the guest's is too (lvmm only offsets it). */
static double tsc_per_ns(void)
{
	uint64_t t0 = now_ns(), c0 = __rdtsc(), t1, c1;

	usleep(200000);
	c1 = __rdtsc();
	t1 = now_ns();
	return (double)(c1 - c0) / (t1 - t0);
}

/* ---- netlink ------------------------------------------------------------- */

/* A migrate-progress event: a pass's figures. */
struct pass {
	uint64_t t;
	uint32_t iteration, throttle;
	uint64_t sent, left, dirty_rate, bandwidth, expected_ns;
};

#define MAX_PASSES	256

/* What the migrated event said, and when it came. */
struct migrated {
	uint32_t vm_id;
	int got;
	unsigned int progress;		/* migrate-progress events before */
	struct pass pass[MAX_PASSES];	/* the first of them */
	uint32_t iteration, throttle, outcome, error, peer_error;
	uint64_t sent, total_ns, downtime_ns, t;
};

static int event_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[LVMM_A_VM_MAX + 1];
	struct migrated *m = arg;
	uint64_t t = now_ns();
	uint32_t event;

	if (!nl_vm_event(msg, m->vm_id, tb, &event))
		return NL_OK;
	if (event == LVMM_EVENT_MIGRATE_PROGRESS) {
		struct pass *p = &m->pass[m->progress];

		if (m->progress++ >= MAX_PASSES)
			return NL_OK;
		p->t = t;
		if (tb[LVMM_A_VM_MIGRATE_ITERATION])
			p->iteration = nla_get_u32(tb[LVMM_A_VM_MIGRATE_ITERATION]);
		if (tb[LVMM_A_VM_MIGRATE_THROTTLE])
			p->throttle = nla_get_u32(tb[LVMM_A_VM_MIGRATE_THROTTLE]);
		if (tb[LVMM_A_VM_MIGRATE_SENT])
			p->sent = nla_get_u64(tb[LVMM_A_VM_MIGRATE_SENT]);
		if (tb[LVMM_A_VM_MIGRATE_LEFT])
			p->left = nla_get_u64(tb[LVMM_A_VM_MIGRATE_LEFT]);
		if (tb[LVMM_A_VM_MIGRATE_DIRTY_RATE])
			p->dirty_rate = nla_get_u64(tb[LVMM_A_VM_MIGRATE_DIRTY_RATE]);
		if (tb[LVMM_A_VM_MIGRATE_BANDWIDTH])
			p->bandwidth = nla_get_u64(tb[LVMM_A_VM_MIGRATE_BANDWIDTH]);
		if (tb[LVMM_A_VM_MIGRATE_EXPECTED_NS])
			p->expected_ns = nla_get_u64(tb[LVMM_A_VM_MIGRATE_EXPECTED_NS]);
		return NL_OK;
	}
	if (event != LVMM_EVENT_MIGRATED)
		return NL_OK;
	if (!tb[LVMM_A_VM_MIGRATE_OUTCOME] || !tb[LVMM_A_VM_MIGRATE_ERROR] ||
	    !tb[LVMM_A_VM_MIGRATE_PEER_ERROR] ||
	    !tb[LVMM_A_VM_MIGRATE_SENT] || !tb[LVMM_A_VM_MIGRATE_TOTAL_NS] ||
	    !tb[LVMM_A_VM_MIGRATE_DOWNTIME_NS] ||
	    !tb[LVMM_A_VM_MIGRATE_ITERATION] ||
	    !tb[LVMM_A_VM_MIGRATE_THROTTLE])
		die("the migrated event lacks an attribute (outcome, error, peer-error, sent, total-ns, downtime-ns, iteration or throttle)");
	m->outcome = nla_get_u32(tb[LVMM_A_VM_MIGRATE_OUTCOME]);
	m->error = nla_get_u32(tb[LVMM_A_VM_MIGRATE_ERROR]);
	m->peer_error = nla_get_u32(tb[LVMM_A_VM_MIGRATE_PEER_ERROR]);
	m->sent = nla_get_u64(tb[LVMM_A_VM_MIGRATE_SENT]);
	m->total_ns = nla_get_u64(tb[LVMM_A_VM_MIGRATE_TOTAL_NS]);
	m->downtime_ns = nla_get_u64(tb[LVMM_A_VM_MIGRATE_DOWNTIME_NS]);
	m->iteration = nla_get_u32(tb[LVMM_A_VM_MIGRATE_ITERATION]);
	m->throttle = nla_get_u32(tb[LVMM_A_VM_MIGRATE_THROTTLE]);
	m->t = t;
	m->got = 1;
	return NL_OK;
}

/* The migrated event of @m->vm_id, within @secs. */
static void wait_migrated(struct migrated *m, unsigned int secs)
{
	uint64_t deadline = now_ns() + secs * 1000000000ull;

	if (!nl_wait_events(event_cb, m, &m->got, deadline, 100))
		die("no migrated event for VM %u within %u s", m->vm_id, secs);
	if (m->outcome != LVMM_MIGRATE_MOVED)
		die("the migration did not move the VM: outcome %u, error %u (%s), the destination's %u (%s), after %u passes",
		    m->outcome, m->error, strerror(m->error), m->peer_error,
		    strerror(m->peer_error), m->iteration);
}

/* vm-migrate's flags, as the bench passes them. */
#define MIG_AUTO_CONVERGE	(1U << 0)
#define MIG_CHECKSUM		(1U << 1)

/* vm-migrate of @vm_id over @fd; the end comes as the migrated event. */
static void vm_migrate(uint32_t vm_id, int fd, uint32_t downtime_ms,
		       uint64_t bandwidth, unsigned int flags)
{
	struct nl_msg *m = nl_req(LVMM_CMD_VM_MIGRATE, 0, vm_id);
	int r;

	if (nla_put_u32(m, LVMM_A_VM_MIGRATE_FD, fd) ||
	    (downtime_ms &&
	     nla_put_u32(m, LVMM_A_VM_MIGRATE_DOWNTIME_MS, downtime_ms)) ||
	    (bandwidth &&
	     nla_put_u64(m, LVMM_A_VM_MIGRATE_MAX_BANDWIDTH, bandwidth)) ||
	    ((flags & MIG_AUTO_CONVERGE) &&
	     nla_put_flag(m, LVMM_A_VM_MIGRATE_AUTO_CONVERGE)) ||
	    ((flags & MIG_CHECKSUM) &&
	     nla_put_flag(m, LVMM_A_VM_MIGRATE_CHECKSUM)))
		die("out of memory");
	r = nl_send_sync(nl, m);
	if (r < 0)
		die("vm-migrate: %s", nl_geterror(r));
}

/* ---- the loopback ----------------------------------------------------------- */

/* A socket listening on 127.0.0.1, any port; *@port gets it. */
static int tcp_listen(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(fd, 1) || getsockname(fd, (struct sockaddr *)&a, &len))
		die("a listening socket on 127.0.0.1: %s", strerror(errno));
	*port = ntohs(a.sin_port);
	return fd;
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		die("connect to 127.0.0.1:%u: %s", port, strerror(errno));
	return fd;
}

static int tcp_accept(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		die("accept: %s", strerror(errno));
	return fd;
}

/* ---- a VMM: one VM, one vCPU, its progress readings ---------------------- */

static int dev;
static double tsc_ns;

struct progress {
	uint64_t t;
	uint32_t count;
};

struct vmm {
	const char *what;		/* "source", "destination" */
	struct lvmm_vm_handle vm;
	struct lvmm_vcpu_handle vcpu;
	volatile uint32_t *low;		/* slot 0, the VMM's view */
	uint64_t size;			/* slot 1 */
	uint32_t mode;
	uint64_t period_ns;		/* paced: between two batches */
	/* The vCPU thread's: how RUN ended, and what it read. */
	pthread_t thread;
	uint64_t t_vcpu;		/* destination: LVMM_GET_VCPU done */
	uint64_t t_run, t_exit;		/* its first RUN, and its end */
	int r;
	uint32_t exit_reason, port;
	struct progress *log;
	unsigned int nlog;
};

static volatile uint32_t *ctl(struct vmm *v, uint32_t gpa)
{
	return v->low + gpa / 4;
}

static void vmm_map_low(struct vmm *v)
{
	void *p;
	int r = lvmm_memslot_map(&v->vm, 0, LOW_SIZE, PROT_READ | PROT_WRITE,
				 &p);

	if (r)
		die("%s: mmap of slot 0: %s", v->what, strerror(-r));
	v->low = p;
	v->log = calloc(MAX_LOG, sizeof(*v->log));
	if (!v->log)
		die("out of memory");
}

static void vmm_note(struct vmm *v)
{
	if (v->nlog < MAX_LOG) {
		v->log[v->nlog].t = now_ns();
		v->log[v->nlog].count = *ctl(v, MIG_PROGRESS_GPA);
		v->nlog++;
	}
}

/*
 * The vCPU thread: RUN until the guest stops (OUT to MIG_PORT_STOPPED),
 * the VM moves away (LVMM_EXIT_MIGRATED) or anything else; after each
 * HLT, a reading of the counter and, paced, a sleep until the next batch
 * is due (a late one starts the pace again rather than burst).
 */
static void *vmm_thread(void *arg)
{
	struct vmm *v = arg;
	uint64_t due = now_ns();
	struct lvmm_run *run;
	int r;

	v->t_run = due;
	for (;;) {
		do
			r = lvmm_run(&v->vcpu);
		while (r == -EINTR);
		if (!v->t_exit)
			v->t_exit = now_ns();
		run = v->vcpu.run;
		if (r || run->exit_reason != LVMM_EXIT_HLT)
			break;
		vmm_note(v);
		due += v->period_ns;
		if (now_ns() > due + 4 * v->period_ns)
			due = now_ns();
		sleep_until(due);
	}
	/*
	 * No reading now: a batch the migration cut in two shows on the
	 * destination, at the time the guest goes on there.
	 */
	v->r = r;
	v->exit_reason = r ? 0 : run->exit_reason;
	v->port = !r && run->exit_reason == LVMM_EXIT_IO ? run->io.port : 0;
	return NULL;
}

static void vmm_start(struct vmm *v)
{
	if (pthread_create(&v->thread, NULL, vmm_thread, v))
		die("pthread_create failed");
}

/* Join the vCPU thread, which must have ended as @reason (@port). */
static void vmm_join(struct vmm *v, uint32_t reason, uint32_t port)
{
	pthread_join(v->thread, NULL);
	if (v->r)
		die("%s: RUN: %s", v->what, strerror(-v->r));
	if (v->exit_reason != reason || v->port != port)
		die("%s: the vCPU left RUN with %s (port 0x%x), not %s (port 0x%x)",
		    v->what, lvmm_exit_reason_name(v->exit_reason), v->port,
		    lvmm_exit_reason_name(reason), port);
}

/* The guest, run until it has written all of slot 1 once. */
static void vmm_create(struct vmm *v, const char *name, uint64_t size,
		       uint32_t mode, uint32_t mibps)
{
	uint64_t t0;
	int r;

	v->what = "source";
	v->size = size;
	v->mode = mode;
	r = lvmm_vm_create(dev, name, &v->vm);
	if (r)
		die("LVMM_CREATE_VM %s: %s%s", name, strerror(-r),
		    r == -EEXIST ? " (a VM of the last run lingers)" : "");
	r = lvmm_set_memslot(&v->vm, 0, 0, 0, LOW_SIZE) ?:
	    lvmm_set_memslot(&v->vm, 1, 0, BIG_GPA, size);
	if (r)
		die("LVMM_SET_MEMSLOT: %s", strerror(-r));
	vmm_map_low(v);
	memcpy((void *)ctl(v, MIG_CODE_GPA), mig_guest_code,
	       mig_guest_end - mig_guest_code);
	*ctl(v, MIG_MODE_GPA) = mode;
	*ctl(v, MIG_BATCH_GPA) = PACED_BATCH;
	*ctl(v, MIG_TICKS_GPA) = mibps ?
		(uint32_t)(tsc_ns * 1e9 * 4096 / (mibps * MIB)) : 0;
	v->period_ns = mibps ? PACED_BATCH * 4096 * 1000000000ull /
			       (mibps * MIB) : 0;

	vcpu_create_flat32(&v->vm, &v->vcpu, MIG_CODE_GPA, size / 4096, BIG_GPA);

	t0 = now_ns();
	r = lvmm_run(&v->vcpu);
	if (r || v->vcpu.run->exit_reason != LVMM_EXIT_IO ||
	    v->vcpu.run->io.port != MIG_PORT_READY)
		die("the first write of slot 1: expected OUT to 0x%x, got %s (%s)",
		    MIG_PORT_READY, r ? "an error" :
		    lvmm_exit_reason_name(v->vcpu.run->exit_reason),
		    strerror(-r));
	if (mode == MIG_MODE_IDLE) {
		/* Its HLT: it stays there, the vCPU out of RUN. */
		r = lvmm_run(&v->vcpu);
		if (r || v->vcpu.run->exit_reason != LVMM_EXIT_HLT)
			die("the idle guest: expected HLT, got %s (%s)",
			    r ? "an error" :
			    lvmm_exit_reason_name(v->vcpu.run->exit_reason),
			    strerror(-r));
	}
	printf("  %s: the guest wrote its %llu MiB in %.0f ms\n", name,
	       (unsigned long long)(size / MIB), (now_ns() - t0) / 1e6);
}

static void vmm_close(struct vmm *v)
{
	lvmm_vcpu_close(&v->vcpu);
	lvmm_memslot_unmap((void *)v->low, LOW_SIZE);
	lvmm_vm_close(&v->vm);
	free(v->log);
	memset(v, 0, sizeof(*v));
}

/*
 * The destination's memory is what the guest wrote wherever it ran: the
 * first dwords less their addresses add up to its counter, and the rest
 * of each page is zero.
 */
static void vmm_check_memory(struct vmm *v)
{
	volatile uint32_t *big;
	uint64_t i, pages = v->size / 4096, sum = 0;
	uint32_t count = *ctl(v, MIG_PROGRESS_GPA);
	void *p;
	int r;

	r = lvmm_memslot_map(&v->vm, 1, v->size, PROT_READ, &p);
	if (r)
		die("%s: mmap of slot 1: %s", v->what, strerror(-r));
	big = p;
	for (i = 0; i < pages; i++) {
		uint32_t first = big[i * 1024];

		sum += (uint32_t)(first - (BIG_GPA + i * 4096));
		if (big[i * 1024 + 1] || big[i * 1024 + 1023])
			die("%s: page %llu of slot 1 has words the guest never wrote",
			    v->what, (unsigned long long)i);
	}
	lvmm_memslot_unmap(p, v->size);
	if (sum != count)
		die("%s: the guest counted %u pages dirtied, its memory holds %llu: pages lost or stale",
		    v->what, count, (unsigned long long)sum);
}

/* ---- the destination -------------------------------------------------------- */

struct incoming {
	int lfd;
	struct vmm *v;			/* filled in, its thread started */
	bool run;			/* run the vCPU, or leave it */
	uint64_t t_in;			/* LVMM_RESTORE_VM returned */
	int r;
	int done;			/* t_in and r are set */
};

static void *incoming_thread(void *arg)
{
	struct incoming *in = arg;	/* the caller's until done is set */
	struct vmm *v = in->v;
	bool run = in->run;
	uint32_t nr = 0;
	int fd, r;

	fd = tcp_accept(in->lfd);
	r = lvmm_vm_restore_flags(dev, fd, "mig-bench-dst",
				  LVMM_RESTORE_INCOMING, &v->vm, &nr);
	in->t_in = now_ns();
	in->r = r;
	__atomic_store_n(&in->done, 1, __ATOMIC_RELEASE);
	close(fd);
	if (r)
		return NULL;
	if (nr != 1)
		die("LVMM_RESTORE_VM: %u vCPUs, not 1", nr);
	r = lvmm_vcpu_get(&v->vm, 0, &v->vcpu);
	if (r)
		die("LVMM_GET_VCPU 0 of the migrated VM: %s", strerror(-r));
	v->t_vcpu = now_ns();
	vmm_map_low(v);
	/* This thread is the vCPU's: no thread to start while it waits. */
	if (run)
		vmm_thread(v);
	return NULL;
}

/*
 * The destination listens; its thread waits to accept, and then, @run,
 * runs the vCPU: it is the destination's vCPU thread (vmm_join()).
 */
static void incoming_start(struct incoming *in, struct vmm *dst,
			   const struct vmm *src, bool run, uint16_t *port)
{
	memset(dst, 0, sizeof(*dst));
	dst->what = "destination";
	dst->size = src->size;
	dst->mode = src->mode;
	dst->period_ns = src->period_ns;
	memset(in, 0, sizeof(*in));
	in->lfd = tcp_listen(port);
	in->v = dst;
	in->run = run;
	if (pthread_create(&dst->thread, NULL, incoming_thread, in))
		die("pthread_create failed");
}

/* The restore's end: not running, the destination's thread ends here. */
static void incoming_wait(struct incoming *in)
{
	while (!__atomic_load_n(&in->done, __ATOMIC_ACQUIRE))
		usleep(1000);
	if (in->r)
		die("LVMM_RESTORE_VM (incoming): %s", strerror(-in->r));
	/* Not to run: the thread is done once the VM is mapped. */
	if (!in->run)
		pthread_join(in->v->thread, NULL);
}

/*
 * Move @src to a destination in this process; @dst gets it.  Returns when
 * LVMM_RESTORE_VM returned there.
 */
static uint64_t migrate(struct vmm *src, struct vmm *dst, struct migrated *m,
			bool run, uint32_t downtime_ms, uint64_t bandwidth,
			unsigned int flags, unsigned int secs)
{
	struct incoming in;
	uint16_t port;
	int fd;

	incoming_start(&in, dst, src, run, &port);
	fd = tcp_connect(port);
	memset(m, 0, sizeof(*m));
	m->vm_id = src->vm.id;
	vm_migrate(src->vm.id, fd, downtime_ms, bandwidth, flags);
	/* lvmm holds the socket now. */
	close(fd);
	wait_migrated(m, secs);
	incoming_wait(&in);
	close(in.lfd);
	return in.t_in;
}

/* Stop the destination's guest at its next check of the flag. */
static void stop_guest(struct vmm *v)
{
	__atomic_store_n(ctl(v, MIG_STOP_GPA), 1, __ATOMIC_SEQ_CST);
	vmm_join(v, LVMM_EXIT_IO, MIG_PORT_STOPPED);
}

/* ---- the runs ------------------------------------------------------------- */

static void print_passes(const struct migrated *m);

/* Where the largest gap was: when it began, after @from, and on which side. */
struct gap_at {
	double from_ms;
	const char *where;	/* "source", "the move", "destination" */
};

struct down_sample {
	double gap_ms, move_ms, base_ms, lvmm_ms, total_ms;
	/*
	 * From the source's last progress: the restore back, GET_VCPU, the
	 * first RUN and its exit there, the migrated event.
	 */
	double in_ms, vcpu_ms, run_ms, exit_ms, event_ms;
	struct gap_at at;
	unsigned int passes;
	uint64_t sent;
};

/*
 * The largest gap between readings from @from on, the source's then the
 * destination's, and the largest before @from (the pace's own jitter).
 */
static void gaps(const struct vmm *src, const struct vmm *dst, uint64_t from,
		 double *gap_ms, double *base_ms, struct gap_at *at)
{
	uint64_t last = 0, gap = 0, base = 0;
	unsigned int i, side, last_side = 0;

	at->from_ms = 0;
	at->where = "nowhere";
	uint32_t count = 0;
	const struct vmm *v;

	for (side = 0; side < 2; side++) {
		v = side ? dst : src;
		for (i = 0; i < v->nlog; i++) {
			const struct progress *p = &v->log[i];

			if (last && p->count != count) {
				if (p->t - last > gap && last >= from) {
					gap = p->t - last;
					at->from_ms = (last - from) / 1e6;
					at->where = side != last_side ? "the move" :
						    side ? "destination" : "source";
				}
				if (p->t - last > base && p->t < from)
					base = p->t - last;
			}
			if (!last || p->count != count) {
				last = p->t;
				last_side = side;
				count = p->count;
			}
		}
	}
	if (dst->nlog < 2 || dst->log[dst->nlog - 1].count == src->log[src->nlog - 1].count)
		die("the guest made no progress on the destination");
	*gap_ms = gap / 1e6;
	*base_ms = base / 1e6;
}

static void downtime_once(struct down_sample *d, uint32_t downtime_ms)
{
	static struct migrated m;
	struct vmm src = { 0 }, dst;
	uint64_t from, t_in, t_last;

	vmm_create(&src, "mig-bench-src", BIG_SIZE, MIG_MODE_PACED,
		   DIRTY_MIBPS);
	vmm_start(&src);
	usleep(500000);		/* a steady pace first */
	from = now_ns();
	t_in = migrate(&src, &dst, &m, true, downtime_ms, 0, 0, 120);
	vmm_join(&src, LVMM_EXIT_MIGRATED, 0);
	usleep(300000);		/* the guest goes on there */
	stop_guest(&dst);
	t_last = src.log[src.nlog - 1].t;
	d->in_ms = ((int64_t)t_in - (int64_t)t_last) / 1e6;
	d->vcpu_ms = ((int64_t)dst.t_vcpu - (int64_t)t_last) / 1e6;
	d->run_ms = ((int64_t)dst.t_run - (int64_t)t_last) / 1e6;
	d->exit_ms = ((int64_t)dst.t_exit - (int64_t)t_last) / 1e6;
	if (!dst.nlog || dst.log[0].t < t_last)
		die("the destination's first reading comes before the source's last");
	d->event_ms = ((int64_t)m.t - (int64_t)t_last) / 1e6;
	print_passes(&m);
	vmm_check_memory(&dst);
	gaps(&src, &dst, from, &d->gap_ms, &d->base_ms, &d->at);
	d->move_ms = (dst.log[0].t - t_last) / 1e6;
	d->lvmm_ms = m.downtime_ns / 1e6;
	d->total_ms = m.total_ns / 1e6;
	d->passes = m.iteration;
	d->sent = m.sent;
	vmm_close(&dst);
	vmm_close(&src);
}

struct total_sample {
	double mig_ms, lvmm_ms, tcp_ms;
	uint64_t sent;
};

/* An idle 256 MiB guest moved, with @flags (MIG_CHECKSUM) or none. */
static void total_once(struct total_sample *s, unsigned int flags)
{
	static struct migrated m;
	struct vmm src = { 0 }, dst;
	uint64_t t0;

	vmm_create(&src, "mig-bench-src", BIG_SIZE, MIG_MODE_IDLE, 0);
	t0 = now_ns();
	migrate(&src, &dst, &m, false, 0, 0, flags, 120);
	s->mig_ms = (m.t - t0) / 1e6;
	s->lvmm_ms = m.total_ns / 1e6;
	s->sent = m.sent;
	/* The source's vCPU, out of RUN, learns it on its next entry. */
	if (lvmm_run(&src.vcpu) || src.vcpu.run->exit_reason != LVMM_EXIT_MIGRATED)
		die("source: RUN after the move did not say MIGRATED");
	vmm_check_memory(&dst);
	if (*ctl(&dst, MIG_PROGRESS_GPA))
		die("the idle guest counted pages");
	vmm_close(&dst);
	vmm_close(&src);
}

static uint8_t *tcp_buf;

struct tcp_rx {
	int lfd;
	uint64_t bytes, t_end;
	uint8_t *buf;
};

static void *tcp_rx_thread(void *arg)
{
	struct tcp_rx *rx = arg;
	int fd = tcp_accept(rx->lfd);
	ssize_t n;

	while ((n = read(fd, rx->buf, TCP_CHUNK)) > 0)
		rx->bytes += n;
	rx->t_end = now_ns();
	if (n < 0)
		die("TCP receiver: %s", strerror(errno));
	close(fd);
	return NULL;
}

/* 256 MiB over the loopback: 2 MiB writes, 2 MiB reads, as fast as it goes. */
static void tcp_once(struct total_sample *s)
{
	static uint8_t *rxbuf;
	struct tcp_rx rx = { .buf = rxbuf };
	uint64_t t0, left;
	pthread_t t;
	uint16_t port;
	ssize_t n;
	int fd;

	if (!tcp_buf) {
		tcp_buf = malloc(TCP_CHUNK);
		rxbuf = malloc(TCP_CHUNK);
		if (!tcp_buf || !rxbuf)
			die("out of memory");
		memset(tcp_buf, 0x5a, TCP_CHUNK);
		memset(rxbuf, 0, TCP_CHUNK);
		rx.buf = rxbuf;
	}
	rx.lfd = tcp_listen(&port);
	if (pthread_create(&t, NULL, tcp_rx_thread, &rx))
		die("pthread_create failed");
	t0 = now_ns();
	fd = tcp_connect(port);
	for (left = BIG_SIZE; left; left -= n) {
		n = write(fd, tcp_buf, left < TCP_CHUNK ? left : TCP_CHUNK);
		if (n <= 0)
			die("TCP sender: %s", n ? strerror(errno) : "wrote 0");
	}
	close(fd);
	pthread_join(t, NULL);
	close(rx.lfd);
	if (rx.bytes != BIG_SIZE)
		die("TCP: %llu bytes arrived, not %llu",
		    (unsigned long long)rx.bytes, BIG_SIZE);
	s->tcp_ms = (rx.t_end - t0) / 1e6;
}

struct conv_sample {
	double total_ms, lvmm_ms;
	uint32_t throttle, passes;
	unsigned int progress;
};

/* The last migrate-progress event of each pass. */
static void print_passes(const struct migrated *m)
{
	unsigned int i, n = m->progress < MAX_PASSES ? m->progress : MAX_PASSES;

	for (i = 0; i < n; i++) {
		const struct pass *p = &m->pass[i];

		if (i + 1 < n && m->pass[i + 1].iteration == p->iteration)
			continue;
		printf("    pass %u: throttle %u %%, sent %.1f MiB, left %.1f MiB, dirty %.1f MB/s, link %.1f MB/s, expected downtime %.0f ms\n",
		       p->iteration, p->throttle, p->sent / (double)MIB,
		       p->left / (double)MIB, p->dirty_rate / 1e6,
		       p->bandwidth / 1e6, p->expected_ns / 1e6);
	}
}

static void converge_once(struct conv_sample *c)
{
	static struct migrated m;
	struct vmm src = { 0 }, dst;

	vmm_create(&src, "mig-bench-src", CONV_SIZE, MIG_MODE_BUSY,
		   CONV_MIBPS);
	vmm_start(&src);
	usleep(300000);
	migrate(&src, &dst, &m, true, 0, CONV_LINK, MIG_AUTO_CONVERGE, 600);
	vmm_join(&src, LVMM_EXIT_MIGRATED, 0);
	usleep(200000);
	stop_guest(&dst);
	vmm_check_memory(&dst);
	c->total_ms = m.total_ns / 1e6;
	c->lvmm_ms = m.downtime_ns / 1e6;
	c->throttle = m.throttle;
	c->passes = m.iteration;
	c->progress = m.progress;
	print_passes(&m);
	vmm_close(&dst);
	vmm_close(&src);
}

/* ---- figures ------------------------------------------------------------------ */

static void row(const char *name, const char *what, const char *unit,
		struct stat3 s)
{
	printf("%-28s %-46s %-4s %9.1f %9.1f %9.1f\n", name, what, unit,
	       s.med, s.min, s.max);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: lvmm-mig-bench [-r RUNS] [-d MS] [-a RUNS] [-s ROWS]\n"
		"  -r N    runs of the downtime and total rows (default 5,\n"
		"          at most %d)\n"
		"  -d MS   downtime-ms asked of vm-migrate (default 30)\n"
		"  -a N    auto-converge runs (default 1, 0: none)\n"
		"  -s ROWS which: downtime,total,converge (default all)\n",
		MAX_RUNS);
	exit(2);
}

int main(int argc, char **argv)
{
	double gap[MAX_RUNS], base[MAX_RUNS], lvmm[MAX_RUNS], dtot[MAX_RUNS];
	double move[MAX_RUNS];
	double mig[MAX_RUNS], mlvmm[MAX_RUNS], tcp[MAX_RUNS], msum[MAX_RUNS];
	double ctot[MAX_RUNS], cthr[MAX_RUNS], cdown[MAX_RUNS];
	unsigned int runs = 5, conv_runs = 1, i;
	bool do_down = true, do_total = true;
	uint32_t downtime_ms = 30;
	struct down_sample d;
	struct total_sample s;
	struct conv_sample c;
	struct stat3 mst, tst;
	struct utsname u;
	sigset_t sigs;
	int opt;

	while ((opt = getopt(argc, argv, "r:d:a:s:h")) != -1) {
		switch (opt) {
		case 's':
			do_down = strstr(optarg, "downtime");
			do_total = strstr(optarg, "total");
			if (!strstr(optarg, "converge"))
				conv_runs = 0;
			if (!do_down && !do_total && !conv_runs)
				die("-s: downtime, total and/or converge");
			break;
		case 'r':
			runs = strtoul(optarg, NULL, 0);
			if (!runs || runs > MAX_RUNS)
				die("-r: 1..%d", MAX_RUNS);
			break;
		case 'd':
			downtime_ms = strtoul(optarg, NULL, 0);
			if (!downtime_ms || downtime_ms > 60000)
				die("-d: 1..60000 ms");
			break;
		case 'a':
			conv_runs = strtoul(optarg, NULL, 0);
			if (conv_runs > MAX_RUNS)
				die("-a: 0..%d", MAX_RUNS);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	/* A signal would end the incoming restore (EINTR): none here. */
	sigfillset(&sigs);
	sigdelset(&sigs, SIGINT);
	sigdelset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	dev = lvmm_open();
	if (dev < 0)
		die("open %s: %s (is lvmm.ko loaded?)", LVMM_DEV_PATH,
		    strerror(-dev));
	if (lvmm_check_extension(dev, LVMM_CAP_MIGRATE) < 1)
		die("lvmm has no live migration (LVMM_CAP_MIGRATE)");
	nl_init(true);
	tsc_ns = tsc_per_ns();
	uname(&u);
	printf("lvmm-mig-bench: kernel=%s cpus=%ld tsc=%.0f MHz runs=%u downtime-ms=%u auto-converge runs=%u\n",
	       u.release, sysconf(_SC_NPROCESSORS_ONLN), tsc_ns * 1000, runs,
	       downtime_ms, conv_runs);

	for (i = 0; do_down && i < runs; i++) {
		downtime_once(&d, downtime_ms);
		gap[i] = d.gap_ms;
		move[i] = d.move_ms;
		base[i] = d.base_ms;
		lvmm[i] = d.lvmm_ms;
		dtot[i] = d.total_ms;
		printf("downtime run %u: guest's largest gap %.1f ms (at %s, %.0f ms after vm-migrate; %.1f ms before it), at the move %.1f ms, lvmm's downtime %.1f ms, total %.0f ms, %u passes, %.1f MiB sent\n",
		       i + 1, d.gap_ms, d.at.where, d.at.from_ms, d.base_ms,
		       d.move_ms, d.lvmm_ms, d.total_ms, d.passes,
		       d.sent / (double)MIB);
		printf("    from the guest's last progress on the source: the restore returned at %.1f ms, GET_VCPU at %.1f, the first RUN at %.1f, its exit at %.1f, the migrated event at %.1f\n",
		       d.in_ms, d.vcpu_ms, d.run_ms, d.exit_ms, d.event_ms);
		fflush(stdout);
	}
	for (i = 0; do_total && i < runs; i++) {
		if (i % 2)
			tcp_once(&s);
		total_once(&s, 0);
		if (!(i % 2))
			tcp_once(&s);
		mig[i] = s.mig_ms;
		mlvmm[i] = s.lvmm_ms;
		tcp[i] = s.tcp_ms;
		printf("total run %u%s: migration %.0f ms (lvmm's total %.0f ms, %.1f MiB sent), TCP %.0f ms, ratio %.2f\n",
		       i + 1, i % 2 ? " TCP first" : "", s.mig_ms, s.lvmm_ms,
		       s.sent / (double)MIB, s.tcp_ms, s.mig_ms / s.tcp_ms);
		fflush(stdout);
		/* The same with the pages in the checksum, beside it. */
		total_once(&s, MIG_CHECKSUM);
		msum[i] = s.mig_ms;
		printf("total run %u, --checksum: migration %.0f ms (lvmm's total %.0f ms), ratio %.2f\n",
		       i + 1, s.mig_ms, s.lvmm_ms, s.mig_ms / tcp[i]);
		fflush(stdout);
	}
	for (i = 0; i < conv_runs; i++) {
		converge_once(&c);
		ctot[i] = c.total_ms;
		cthr[i] = c.throttle;
		cdown[i] = c.lvmm_ms;
		printf("auto-converge run %u: total %.0f ms, %u passes, throttle %u %% at the end, lvmm's downtime %.1f ms\n",
		       i + 1, c.total_ms, c.passes, c.throttle, c.lvmm_ms);
		fflush(stdout);
	}

	printf("\nlive migration over TCP on the loopback, %u runs (auto-converge: %u)\n",
	       runs, conv_runs);
	printf("%-28s %-46s %-4s %9s %9s %9s\n", "row", "what", "unit",
	       "median", "min", "max");
	if (do_down) {
		row("migrate_downtime_ms", "256 MiB, 8 MiB/s: largest gap (goal <= 30)",
		    "ms", stats(gap, runs));
		row("  at_move", "  source's last progress to destination's",
		    "ms", stats(move, runs));
		row("  before", "  the largest gap before the migration", "ms",
		    stats(base, runs));
		row("migrate_downtime_lvmm_ms", "  lvmm's migrate-downtime-ns",
		    "ms", stats(lvmm, runs));
		row("  total", "  migrate-total-ns", "ms", stats(dtot, runs));
	}
	if (do_total) {
		mst = stats(mig, runs);
		tst = stats(tcp, runs);
		row("migrate_idle_256m", "idle 256 MiB: vm-migrate to migrated event",
		    "ms", mst);
		row("  lvmm", "  migrate-total-ns", "ms", stats(mlvmm, runs));
		row("tcp_256m", "raw TCP, 256 MiB, same loopback", "ms", tst);
		printf("%-28s %-46s %-4s %9.2f %9s %9s\n", "migrate_total_vs_tcp",
		       "migration over TCP time (goal <= 1.25)", "x",
		       mst.med / tst.med, "-", "-");
		row("migrate_idle_256m_checksum", "  the same with migrate-checksum",
		    "ms", stats(msum, runs));
		printf("%-28s %-46s %-4s %9.2f %9s %9s\n", "migrate_checksum_vs_tcp",
		       "  with migrate-checksum over TCP time", "x",
		       stats(msum, runs).med / tst.med, "-", "-");
	}
	if (conv_runs) {
		row("migrate_autoconverge_total", "32 MiB at 48 MiB/s, 24 MB/s link", "ms",
		    stats(ctot, conv_runs));
		row("  throttle", "  the throttle at the end", "%",
		    stats(cthr, conv_runs));
		row("  downtime", "  migrate-downtime-ns", "ms",
		    stats(cdown, conv_runs));
	}
	putchar('\n');
	if (do_down) {
		printf("metric migrate_downtime_ms %.1f\n", stats(gap, runs).med);
		printf("metric migrate_downtime_lvmm_ms %.1f\n",
		       stats(lvmm, runs).med);
	}
	if (do_total) {
		printf("metric migrate_total_vs_tcp %.2f\n", mst.med / tst.med);
		printf("metric migrate_checksum_vs_tcp %.2f\n",
		       stats(msum, runs).med / tst.med);
	}
	if (conv_runs) {
		printf("metric migrate_autoconverge_total_ms %.0f\n",
		       stats(ctot, conv_runs).med);
		printf("metric migrate_autoconverge_throttle_pct %.0f\n",
		       stats(cthr, conv_runs).med);
	}
	return 0;
}
