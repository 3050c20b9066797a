// SPDX-License-Identifier: GPL-2.0
/*
 * Live migration (LVMM_CAP_MIGRATE) with both ends in this one machine,
 * over TCP on the loopback (UNIX stream sockets on a kernel without
 * TCP/IP): netlink vm-migrate sends a running VM from one end of a
 * connection, LVMM_RESTORE_VM with LVMM_RESTORE_INCOMING receives it at
 * the other, in another thread or process; or our own code plays one
 * side, to break the protocol where lvmm never would.
 *
 * LIVE_MIGRATION_ONLY=NAME runs only the tests whose names NAME holds.
 *
 * Guests that count and that write memory go on exactly where they were,
 * on one vCPU or two; a paused VM arrives paused; a VM goes back and
 * forth.  A destination killed, closing, refusing, answering nothing or
 * nonsense, a cancel, a destroy, a guest that dirties memory faster than
 * the link: each leaves the source as it was, its memory intact and
 * dirty logging off.  GO without DONE leaves it paused.  Hostile sources
 * get an error and leave no VM behind; requests that make no sense are
 * refused; who may migrate.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "nl_util.h"
#include "stream_bytes.h"
#include "vcpu_runner.h"
#include "apic.h"

#define MiB		(1024 * 1024ULL)
#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))

/* Longest a migration of these small guests may take in the sandbox. */
#define MIGRATE_MS	60000

/* The running test, for skip_test(). */
static struct __test_metadata *cur_test;

/*
 * Skip the running test from any of its threads: SKIP() works in the
 * test's own function only.  The harness takes a child's exit status
 * 255 as a skip (not KSFT_SKIP).
 */
static void __attribute__((noreturn)) skip_test(const char *why)
{
	if (cur_test)
		snprintf(cur_test->results->reason,
			 sizeof(cur_test->results->reason), "%s", why);
	ksft_print_msg("SKIP: %s\n", why);
	fflush(stdout);
	fflush(stderr);
	exit(255);
}

/* ---- sockets --------------------------------------------------------- */

/* Send and receive timeouts of our own ends: a hang becomes an error. */
static void sock_timeouts(int fd, int secs)
{
	struct timeval tv = { .tv_sec = secs };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * TCP on the loopback, the transport of a real migration; a kernel
 * without it (the debug kernel of make check has no CONFIG_INET) gets
 * UNIX stream sockets instead, which lvmm takes all the same.
 */
static bool force_unix;		/* a test of UNIX stream sockets */

static bool have_inet(void)
{
	static int inet = -1;

	if (force_unix)
		return false;
	if (inet < 0) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		inet = fd >= 0;
		if (fd >= 0)
			close(fd);
		else
			ksft_print_msg("no TCP/IP in this kernel: UNIX stream sockets instead\n");
	}
	return inet;
}

/* A stream socket, not connected. */
static int stream_socket(void)
{
	int fd = socket(have_inet() ? AF_INET : AF_UNIX,
			SOCK_STREAM | SOCK_CLOEXEC, 0);

	TEST_ASSERT(fd >= 0, "socket: %s", strerror(errno));
	return fd;
}

/* @fd bound to a free address (127.0.0.1, or an abstract UNIX name). */
static void bind_any(int fd, struct sockaddr_in *a, socklen_t *alen)
{
	sa_family_t unix_family = AF_UNIX;
	int r;

	if (have_inet()) {
		*a = (struct sockaddr_in){ .sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		*alen = sizeof(*a);
		r = bind(fd, (struct sockaddr *)a, sizeof(*a)) ?:
		    getsockname(fd, (struct sockaddr *)a, alen);
	} else {
		/* Only the family: the kernel picks an abstract name. */
		r = bind(fd, (struct sockaddr *)&unix_family,
			 sizeof(unix_family));
	}
	TEST_ASSERT(!r, "bind: %s", strerror(errno));
}

/* A datagram socket that is connected somewhere. */
static int dgram_socket(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons(9) };
	int fd, sv[2];

	if (!have_inet()) {
		TEST_ASSERT(!socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0,
					sv), "socketpair");
		close(sv[1]);
		return sv[0];
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	TEST_ASSERT(fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a)),
		    "UDP socket");
	return fd;
}

/*
 * A connection over the loopback: *@src connected, *@dst accepted.
 * @bufsz, if not 0, is the send buffer of *@src and the receive buffer
 * of *@dst: the most the source can be ahead of what *@dst has read.
 */
static void tcp_pair_buf(int *src, int *dst, int bufsz)
{
	struct sockaddr_in a;
	socklen_t alen;
	int l, sv[2];

	if (!have_inet()) {
		TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv), "socketpair: %s", strerror(errno));
		*src = sv[0];
		*dst = sv[1];
		if (bufsz)
			setsockopt(*src, SOL_SOCKET, SO_SNDBUF, &bufsz,
				   sizeof(bufsz));
		return;
	}
	l = stream_socket();
	if (bufsz)
		setsockopt(l, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	bind_any(l, &a, &alen);
	TEST_ASSERT(!listen(l, 1), "listen: %s", strerror(errno));
	*src = stream_socket();
	if (bufsz)
		setsockopt(*src, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	TEST_ASSERT(!connect(*src, (struct sockaddr *)&a, alen),
		    "connect to 127.0.0.1:%u: %s", ntohs(a.sin_port),
		    strerror(errno));
	*dst = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	TEST_ASSERT(*dst >= 0, "accept: %s", strerror(errno));
	close(l);
}

static void tcp_pair(int *src, int *dst)
{
	tcp_pair_buf(src, dst, 0);
}

/* All of @len bytes: 0 or -errno (the peer went away). */
static int send_all(int fd, const void *buf, size_t len)
{
	const u8 *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= n;
	}
	return 0;
}

/* Exactly @len bytes: 0, -ENODATA at the end of the stream, or -errno. */
static int recv_full(int fd, void *buf, size_t len)
{
	u8 *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -ENODATA;
		p += n;
		len -= n;
	}
	return 0;
}

static int msg_send(int fd, u32 type, __s32 error)
{
	struct lvmm_mig_msg m = {
		.magic = LVMM_MIG_MAGIC, .type = type, .error = error,
		.version = LVMM_STREAM_VERSION,
	};

	return send_all(fd, &m, sizeof(m));
}

/* The next message: 1, 0 at the end of the stream, or -errno. */
static int msg_recv(int fd, struct lvmm_mig_msg *m)
{
	int r = recv_full(fd, m, sizeof(*m));

	return r == -ENODATA ? 0 : r ? r : 1;
}

/* ---- netlink --------------------------------------------------------- */

static u32 vm_state(struct nlc *c, u32 id)
{
	struct nl_vm v;

	return nl_vm_get(c, id, NULL, &v) ? 0 : v.state;
}

static bool vm_listed(struct nlc *c, const char *name)
{
	struct nl_vm v;

	return !nl_vm_get(c, 0, name, &v);
}

/* A migration started, and the events group it reports to. */
struct mig {
	struct nl_events *ev;
	u32 id;
	u64 start_ns;
	struct nl_migrated res;
};

/*
 * vm-migrate of VM @id over @fd, which is closed after the request (lvmm
 * holds its own reference): asserts that the request is accepted.
 */
static void mig_start(struct nlc *c, struct mig *m, u32 id, int fd,
		      const struct nl_mig_args *a)
{
	int r;

	memset(m, 0, sizeof(*m));
	m->ev = events_open();
	m->id = id;
	m->start_ns = now_ns();
	r = nl_vm_migrate(c, id, fd, a);
	TEST_ASSERT(!r, "vm-migrate of VM %u: %s (%s)", id, strerror(-r),
		    c->ext);
	close(fd);
}

/* Its migrated event, which must come. */
static struct nl_migrated *mig_wait(struct mig *m)
{
	TEST_ASSERT(event_migrated(m->ev, m->id, &m->res, MIGRATE_MS),
		    "no migrated event for VM %u in %d s", m->id,
		    MIGRATE_MS / 1000);
	events_close(m->ev);
	m->ev = NULL;
	return &m->res;
}

static const char *outcome_str(u32 o)
{
	switch (o) {
	case LVMM_MIGRATE_MOVED:
		return "moved";
	case LVMM_MIGRATE_STAYED:
		return "stayed";
	case LVMM_MIGRATE_UNKNOWN:
		return "unknown";
	}
	return "(bad)";
}

/* What every migrated event must say, whatever its outcome. */
static void __expect_sane(struct __test_metadata *_metadata,
			  const struct nl_migrated *r)
{
	EXPECT_FALSE(r->disorder)
		TH_LOG("a pass number or a byte count went down between events");
	EXPECT_LE(r->progress_sent, r->sent);
	EXPECT_LT(0, r->total_ns);
	EXPECT_GE(r->total_ns, r->downtime_ns);
	if (r->outcome == LVMM_MIGRATE_STAYED) {
		/* api.rst: 0 when it stayed. */
		EXPECT_EQ(0, r->downtime_ns);
	} else {
		EXPECT_LT(0, r->downtime_ns);
	}
	if (r->error != ECONNREFUSED) {
		EXPECT_EQ(0, r->peer_error);
	}
}

#define expect_sane(r)	__expect_sane(_metadata, r)

static void log_migrated(struct __test_metadata *_metadata,
			 const struct nl_migrated *r)
{
	TH_LOG("%s (%s%s%s): %llu bytes in %llu ms, downtime %llu ms, %u passes, %d progress events, throttle up to %u %%",
	       outcome_str(r->outcome), r->error ? strerror(r->error) : "ok",
	       r->peer_error ? ", destination: " : "",
	       r->peer_error ? strerror(r->peer_error) : "",
	       (unsigned long long)r->sent,
	       (unsigned long long)r->total_ns / 1000000,
	       (unsigned long long)r->downtime_ns / 1000000, r->iterations,
	       r->nr_progress, r->max_throttle);
}

/* mig_wait(), and what its event says in the test's log. */
static struct nl_migrated *__mig_wait_log(struct __test_metadata *_metadata,
					  struct mig *m)
{
	struct nl_migrated *r = mig_wait(m);

	log_migrated(_metadata, r);
	return r;
}

#define mig_wait_log(m)	__mig_wait_log(_metadata, m)

/* A migration that failed with @err: the VM stayed where it was. */
static void __expect_stayed(struct __test_metadata *_metadata,
			    const struct nl_migrated *r, int err)
{
	EXPECT_EQ(LVMM_MIGRATE_STAYED, r->outcome);
	EXPECT_EQ(err, r->error) TH_LOG("%s", strerror(r->error));
}

#define expect_stayed(r, err)	__expect_stayed(_metadata, r, err)

/* ---- the destination: LVMM_RESTORE_INCOMING in a thread -------------- */

struct dest {
	int fd;			/* its end of the connection; closed after */
	int dev;		/* /dev/lvmm to use, or -1: its own */
	pthread_t thread;
	struct lvmm_restore_vm req;
	volatile int ret;	/* the VM fd, or -errno */
	volatile pid_t tid;	/* of the thread in the ioctl */
	volatile bool done;
	volatile u64 done_ns;
};

static void *dest_fn(void *arg)
{
	struct dest *d = arg;
	int dev = d->dev >= 0 ? d->dev : open_lvmm_dev();

	d->tid = syscall(SYS_gettid);
	d->ret = __vm_restore(dev, &d->req);
	/* At once: a source blocked on a full socket learns it is over. */
	close(d->fd);
	if (dev != d->dev)
		close(dev);
	d->done_ns = now_ns();
	d->done = true;
	return NULL;
}

static void dest_sig(int sig)
{
	(void)sig;
}

/*
 * LVMM_RESTORE_VM with LVMM_RESTORE_INCOMING on @fd, under @name, through
 * /dev/lvmm fd @dev (-1: its own).
 */
static void dest_start_flags(struct dest *d, int fd, const char *name,
			     int dev, u32 flags)
{
	struct sigaction sa = { .sa_handler = dest_sig };

	memset(d, 0, sizeof(*d));
	d->fd = fd;
	d->dev = dev;
	d->req.fd = fd;
	d->req.flags = flags;
	if (name)
		snprintf(d->req.name, sizeof(d->req.name), "%s", name);
	/* No SA_RESTART: SIGUSR1 ends the ioctl (the EINTR test). */
	TEST_ASSERT(!sigaction(SIGUSR1, &sa, NULL), "sigaction");
	TEST_ASSERT(!pthread_create(&d->thread, NULL, dest_fn, d),
		    "pthread_create");
}

static void dest_start_dev(struct dest *d, int fd, const char *name, int dev)
{
	dest_start_flags(d, fd, name, dev, LVMM_RESTORE_INCOMING);
}

static void dest_start(struct dest *d, int fd, const char *name)
{
	dest_start_dev(d, fd, name, -1);
}

/*
 * vm-migrate of VM @id (@a as in nl_vm_migrate()) over a new connection,
 * to a destination @d that takes it under @name.
 */
static void mig_to_dest(struct nlc *c, struct mig *m, struct dest *d, u32 id,
			const char *name, const struct nl_mig_args *a)
{
	int s, fd;

	tcp_pair(&s, &fd);
	dest_start(d, fd, name);
	mig_start(c, m, id, s, a);
}

/*
 * Wait until the destination sleeps in its ioctl, past the checks of its
 * socket: a source that sends and half-closes before that would find
 * the socket no longer connected (ENOTCONN), a race of the test's.
 */
static void dest_wait_blocked(struct dest *d)
{
	u64 end = now_ns() + 5000000000ULL;
	char path[64], buf[32];

	while (!d->tid && now_ns() < end)
		usleep(1000);
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", d->tid);
	while (now_ns() < end && !d->done) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

		if (fd >= 0)
			close(fd);
		if (n <= 0) {		/* no such file: give it a moment */
			usleep(50000);
			return;
		}
		buf[n] = '\0';
		if (atoi(buf) == SYS_ioctl && buf[0] != 'r')
			return;
		usleep(1000);
	}
}

/* The destination's ioctl ends: its VM fd or -errno. */
static int dest_join(struct dest *d)
{
	TEST_ASSERT(wait_for(d->done, 60000),
		    "LVMM_RESTORE_VM (incoming) still runs after 60 s");
	pthread_join(d->thread, NULL);
	return d->ret;
}

/*
 * The VM of fd @fd that LVMM_RESTORE_VM returned with @req, with its
 * vCPUs' fds, and with @like's slots mapped (the VM it came from), if
 * given.
 */
static struct lvmm_vm *vm_from(int fd, const struct lvmm_restore_vm *req,
			       const struct lvmm_vm *like)
{
	struct lvmm_vm *vm = calloc(1, sizeof(*vm));
	int r;

	TEST_ASSERT(vm, "out of memory");
	TEST_ASSERT(fd >= 0, "the destination failed: %s", strerror(-fd));
	vm->dev_fd = open_lvmm_dev();
	r = lvmm_vcpu_mmap_size(vm->dev_fd);
	TEST_ASSERT(r > 0, "LVMM_GET_VCPU_MMAP_SIZE");
	vm->h.vcpu_mmap_size = r;
	vm->fd = vm->h.fd = fd;
	vm->h.id = req->id;
	memcpy(vm->h.name, req->name, sizeof(vm->h.name));
	vm->h.name[sizeof(vm->h.name) - 1] = '\0';
	/* These tests' VMs have vCPUs 0 to n - 1. */
	for (u32 id = 0; id < req->nr_vcpus; id++)
		vm_vcpu_get(vm, id);
	if (like)
		vm_map_like(vm, like);
	return vm;
}

/* The VM a destination received: vm_from(). */
static struct lvmm_vm *vm_adopt(struct dest *d, const struct lvmm_vm *like)
{
	return vm_from(d->ret, &d->req, like);
}

/* ---- a fake destination: our own code speaking the protocol ---------- */

enum fake_mode {
	FAKE_REFUSE_END,	/* ACCEPT, the whole stream, then REFUSE */
	FAKE_NO_DONE,		/* ACCEPT, READY, GO read, no DONE: closes */
	FAKE_CLOSE_AFTER,	/* ACCEPT, then closes after close_after bytes */
	FAKE_SILENT,		/* reads the header, answers nothing */
	FAKE_SILENT_AT_END,	/* ACCEPT, the whole stream; no READY */
	FAKE_GARBAGE,		/* answers the header with @garbage */
};

struct fake_dest {
	int fd;
	enum fake_mode mode;
	int err;		/* FAKE_REFUSE_END: the errno it sends */
	u64 close_after;	/* FAKE_CLOSE_AFTER: bytes */
	u64 stall_ms;		/* reads nothing this long after ACCEPT */
	int refuse_go;		/* FAKE_NO_DONE: on release, REFUSE with it */
	struct lvmm_mig_msg garbage;	/* FAKE_GARBAGE */
	pthread_t thread;
	u8 *buf;		/* the stream as it came, up to END */
	size_t len, cap;
	struct lvmm_mig_msg go;	/* FAKE_NO_DONE: what came after READY */
	/* Set at the first PAGES record: the guest may stop writing. */
	volatile bool *pages_seen;
	/*
	 * Written (with the byte it holds) when the header came: the source
	 * logs by then, so a later pass sends its page whatever the guest
	 * managed to run meanwhile (one CPU for both).
	 */
	volatile u8 *poke;
	int r;			/* how reading ended: 0 or -errno */
	volatile bool got_header, got_end, got_go, release, done;
};

static int fake_read(struct fake_dest *f, size_t n)
{
	int r;

	if (f->len + n > f->cap) {
		f->cap = MAX(2 * f->cap, f->len + n);
		f->buf = realloc(f->buf, f->cap);
		TEST_ASSERT(f->buf, "out of memory");
	}
	r = recv_full(f->fd, f->buf + f->len, n);
	if (!r)
		f->len += n;
	return r;
}

/* Until the test lets go, or a minute (the source gave up long ago). */
static void fake_hold(struct fake_dest *f)
{
	wait_for(f->release, 60000);
}

static void *fake_fn(void *arg)
{
	struct fake_dest *f = arg;
	struct lvmm_mig_msg m;

	for (;;) {
		struct lvmm_rec rec;
		size_t at = f->len;

		f->r = fake_read(f, sizeof(rec));
		if (f->r)
			break;
		memcpy(&rec, f->buf + at, sizeof(rec));
		if (rec.len > 64 * MiB) {
			f->r = -EFBIG;
			break;
		}
		f->r = fake_read(f, rec.len);
		if (f->r)
			break;
		if (rec.type == LVMM_REC_PAGES && f->pages_seen)
			*f->pages_seen = true;
		if (rec.type == LVMM_REC_HEADER && !f->got_header) {
			f->got_header = true;
			if (f->poke)
				*f->poke = *f->poke;
			if (f->mode == FAKE_SILENT) {
				fake_hold(f);
				break;
			}
			if (f->mode == FAKE_GARBAGE) {
				send_all(f->fd, &f->garbage, sizeof(f->garbage));
				/* Until the source hangs up. */
				while (msg_recv(f->fd, &m) > 0)
					;
				break;
			}
			msg_send(f->fd, LVMM_MIG_ACCEPT, 0);
			if (f->stall_ms)
				usleep(f->stall_ms * 1000);
		}
		if (f->mode == FAKE_CLOSE_AFTER && f->len >= f->close_after)
			break;
		if (rec.type == LVMM_REC_END) {
			f->got_end = true;
			break;
		}
	}
	if (f->got_end && f->mode == FAKE_REFUSE_END)
		msg_send(f->fd, LVMM_MIG_REFUSE, f->err);
	if (f->got_end && f->mode == FAKE_SILENT_AT_END)
		fake_hold(f);
	if (f->got_end && f->mode == FAKE_NO_DONE) {
		msg_send(f->fd, LVMM_MIG_READY, 0);
		if (msg_recv(f->fd, &f->go) == 1)
			f->got_go = true;
		fake_hold(f);
		if (f->got_go && f->refuse_go)
			msg_send(f->fd, LVMM_MIG_REFUSE, f->refuse_go);
	}
	close(f->fd);
	f->done = true;
	return NULL;
}

/* A fake destination in @mode; the test sets what else the mode needs. */
static void fake_init(struct fake_dest *f, enum fake_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
}

/* Run it on @fd, its end of the connection, in a thread. */
static void fake_run(struct fake_dest *f, int fd)
{
	f->fd = fd;
	sock_timeouts(fd, 30);
	TEST_ASSERT(!pthread_create(&f->thread, NULL, fake_fn, f),
		    "pthread_create");
}

/*
 * vm-migrate of VM @id over a new connection, to fake destination @f,
 * with the options of @a (NULL: none).
 */
static void mig_to_fake_args(struct nlc *c, struct mig *m,
			     struct fake_dest *f, u32 id,
			     const struct nl_mig_args *a)
{
	int s, fd;

	tcp_pair(&s, &fd);
	fake_run(f, fd);
	mig_start(c, m, id, s, a);
}

static void mig_to_fake(struct nlc *c, struct mig *m, struct fake_dest *f,
			u32 id)
{
	mig_to_fake_args(c, m, f, id, NULL);
}

static void fake_join(struct fake_dest *f)
{
	f->release = true;
	TEST_ASSERT(wait_for(f->done, 40000), "the fake destination hangs");
	pthread_join(f->thread, NULL);
}

/*
 * Check a stream as a source sent it: a header of @nr_slots slots and
 * @nr_vcpus vCPUs, version 2 if the pages are in the checksum (@sums,
 * migrate-checksum), else version 4 with LVMM_STREAM_PAGES_UNSUMMED;
 * MEMORY records, then PAGES records (some if @pages, else none), the
 * vCPUs, RUNSTATE with @runstate, and an END that matches.
 */
static void __check_stream(struct __test_metadata *_metadata, u8 *buf,
			   size_t len, u32 nr_slots, u32 nr_vcpus,
			   u32 runstate, bool pages, bool sums)
{
	struct rec_ref *recs = calloc(MAX_RECS, sizeof(*recs));
	int nr = stream_index(buf, len, recs, MAX_RECS), nr_pages = 0;
	int nr_mem = 0, nr_vcpu = 0, state = 0, rs;
	struct lvmm_stream_runstate run;
	struct lvmm_stream_header h;
	struct lvmm_stream_end end;

	TEST_ASSERT(recs, "out of memory");
	ASSERT_LT(3, nr);
	ASSERT_EQ(LVMM_REC_HEADER, recs[0].type);
	ASSERT_EQ(LVMM_REC_END, recs[nr - 1].type);
	EXPECT_EQ(len, recs[nr - 1].off + sizeof(struct lvmm_rec) +
		  sizeof(end)) TH_LOG("bytes after END");
	memcpy(&h, rec_data(buf, &recs[0]), sizeof(h));
	EXPECT_EQ(LVMM_STREAM_MAGIC, h.magic);
	EXPECT_EQ(sums ? 2 : 4, h.version);
	EXPECT_EQ(sums ? 0 : LVMM_STREAM_PAGES_UNSUMMED, h.flags);
	EXPECT_EQ(nr_slots, h.nr_slots);
	EXPECT_EQ(nr_vcpus, h.nr_vcpus);
	/* Pass 1 is MEMORY, every later pass PAGES; then the vCPUs. */
	for (int i = 1; i < nr - 1; i++) {
		switch (recs[i].type) {
		case LVMM_REC_MEMORY:
			EXPECT_EQ(0, state) TH_LOG("MEMORY record %d after PAGES or a vCPU", i);
			nr_mem++;
			break;
		case LVMM_REC_PAGES:
			EXPECT_GE(1, state) TH_LOG("PAGES record %d after a vCPU", i);
			state = 1;
			nr_pages++;
			break;
		case LVMM_REC_VCPU:
			state = 2;
			nr_vcpu++;
			break;
		case LVMM_REC_VMM:
		case LVMM_REC_RUNSTATE:
			state = 3;
			break;
		default:
			EXPECT_EQ(LVMM_REC_MEMORY, recs[i].type)
				TH_LOG("record %d of an unknown type", i);
		}
	}
	EXPECT_LT(0, nr_mem);
	if (pages) {
		EXPECT_LT(0, nr_pages)
			TH_LOG("no PAGES record: the later passes sent nothing");
	} else {
		EXPECT_EQ(0, nr_pages) TH_LOG("pages sent again, unchanged");
	}
	EXPECT_EQ(nr_vcpus, nr_vcpu);
	rs = rec_find(recs, nr, LVMM_REC_RUNSTATE, 0);
	EXPECT_EQ(nr - 2, rs) TH_LOG("RUNSTATE is not last before END");
	EXPECT_EQ(-1, rec_find(recs, nr, LVMM_REC_RUNSTATE, 1));
	if (rs > 0) {
		EXPECT_EQ(sizeof(run), recs[rs].len);
		memcpy(&run, rec_data(buf, &recs[rs]), sizeof(run));
		EXPECT_EQ(runstate, run.flags);
		EXPECT_EQ(0, run.pad);
	}
	memcpy(&end, rec_data(buf, &recs[nr - 1]), sizeof(end));
	EXPECT_EQ(stream_sum(buf, recs[nr - 1].off), end.checksum);
	/* Without migrate-checksum, a page's bytes are not in it. */
	if (sums) {
		EXPECT_EQ(lvmm_xxh64(buf, recs[nr - 1].off, 0), end.checksum);
	} else {
		EXPECT_NE(lvmm_xxh64(buf, recs[nr - 1].off, 0), end.checksum);
	}
	EXPECT_EQ(nr - 1, end.nr_records);
	free(recs);
}

#define check_stream(buf, len, nr_slots, nr_vcpus, runstate, pages, sums) \
	__check_stream(_metadata, buf, len, nr_slots, nr_vcpus, runstate, \
		       pages, sums)

/* ---- a relay between source and destination that records and holds -- */

struct relay {
	int a, b;		/* the source's peer, the destination's */
	u32 hold_slot;		/* hold after pass 1 sent a chunk of it */
	volatile bool *pages_seen;	/* as for struct fake_dest */
	pthread_t thread;
	u8 *buf;		/* source to destination, as it went */
	size_t len, cap, parsed;
	bool end_seen;
	volatile bool holding, release, done;
};

/* Look at the records that came in whole since the last look. */
static void relay_parse(struct relay *r)
{
	while (!r->end_seen && r->len - r->parsed >= sizeof(struct lvmm_rec)) {
		struct lvmm_stream_mem m;
		struct lvmm_rec rec;

		memcpy(&rec, r->buf + r->parsed, sizeof(rec));
		if (rec.len > r->len - r->parsed - sizeof(rec))
			return;
		if (rec.type == LVMM_REC_MEMORY && rec.len >= sizeof(m)) {
			memcpy(&m, r->buf + r->parsed + sizeof(rec), sizeof(m));
			if (m.slot == r->hold_slot) {
				r->hold_slot = ~0U;
				r->holding = true;
			}
		}
		if (rec.type == LVMM_REC_PAGES && r->pages_seen)
			*r->pages_seen = true;
		r->end_seen = rec.type == LVMM_REC_END;
		r->parsed += sizeof(rec) + rec.len;
	}
}

static void *relay_fn(void *arg)
{
	struct relay *r = arg;
	bool a_open = true, b_open = true;
	u8 back[4096];

	while (a_open || b_open) {
		struct pollfd p[2] = {
			{ .fd = a_open && !r->holding ? r->a : -1,
			  .events = POLLIN },
			{ .fd = b_open ? r->b : -1, .events = POLLIN },
		};
		ssize_t n;

		if (r->holding && r->release)
			r->holding = false;
		if (poll(p, 2, 10) < 0 && errno != EINTR)
			break;
		if (p[0].revents) {
			if (r->len + 256 * 1024 > r->cap) {
				r->cap = MAX(2 * r->cap, r->len + 256 * 1024);
				r->buf = realloc(r->buf, r->cap);
				TEST_ASSERT(r->buf, "out of memory");
			}
			n = read(r->a, r->buf + r->len, 256 * 1024);
			if (n <= 0) {
				a_open = false;
				shutdown(r->b, SHUT_WR);
			} else {
				if (send_all(r->b, r->buf + r->len, n))
					break;
				r->len += n;
				relay_parse(r);
			}
		}
		if (p[1].revents) {
			n = read(r->b, back, sizeof(back));
			if (n <= 0) {
				b_open = false;
				shutdown(r->a, SHUT_WR);
			} else if (send_all(r->a, back, n)) {
				break;
			}
		}
	}
	close(r->a);
	close(r->b);
	r->done = true;
	return NULL;
}

static void relay_start(struct relay *r, int a, int b, u32 hold_slot,
			volatile bool *pages_seen)
{
	memset(r, 0, sizeof(*r));
	r->a = a;
	r->b = b;
	r->hold_slot = hold_slot;
	r->pages_seen = pages_seen;
	TEST_ASSERT(!pthread_create(&r->thread, NULL, relay_fn, r),
		    "pthread_create");
}

/* ---- vCPUs, each in a thread of its own ------------------------------ */

enum { END_NONE, END_DONE, END_MIGRATED, END_DESTROYED, END_LOST };

/* guest_memtouch() reads here whether to pause its writes. */
#define QUIET_PORT	0x73

struct vthread {
	struct lvmm_vcpu *vcpu;
	u16 io_port;		/* exits on it are resumed (tiny_vm) */
	/*
	 * What QUIET_PORT reads.  The guest learns it through an exit, not
	 * through its memory: a write of the VMM to guest memory waits
	 * while a migration holds the VM frozen.
	 */
	volatile bool quiet;
	pthread_t thread;
	volatile u64 nr_sync;
	volatile u64 first[4], last[4];	/* args of the first, last SYNC */
	volatile u64 nr_io;
	volatile bool stop;	/* io_port guests: end at the next exit */
	volatile int end;
	volatile bool done;
	struct nl_mapped mapped;	/* touch_vm(): how it was mapped */
};

static void *vthread_fn(void *arg)
{
	struct vthread *t = arg;
	struct lvmm_vcpu *vcpu = t->vcpu;
	struct lvmm_run *run = vcpu->run;
	struct ucall uc;

	for (;;) {
		int r = __vcpu_run(vcpu);

		if (r == -EINTR)
			continue;
		TEST_ASSERT(!r, "vCPU %u: LVMM_RUN: %s", vcpu->id,
			    strerror(-r));
		if (run->exit_reason == LVMM_EXIT_MIGRATED) {
			t->end = END_MIGRATED;
			break;
		}
		if (run->exit_reason == LVMM_EXIT_VM_DESTROYED) {
			t->end = END_DESTROYED;
			break;
		}
		/*
		 * QEMU 7.2's multi-threaded TCG now and then loses a guest
		 * entry's state when two vCPUs are busy, and lvmm stops the
		 * vCPU with this error (Documentation/sandbox.rst, 4).
		 */
		if (run->exit_reason == LVMM_EXIT_INTERNAL_ERROR &&
		    run->internal.suberror == LVMM_INTERNAL_ERROR_STATE_LOST) {
			t->end = END_LOST;
			break;
		}
		if (run->exit_reason == LVMM_EXIT_IO &&
		    run->io.port == QUIET_PORT &&
		    run->io.direction == LVMM_EXIT_IO_IN) {
			*(u8 *)vcpu_io_data(vcpu) = t->quiet;
			continue;
		}
		if (t->io_port && run->exit_reason == LVMM_EXIT_IO &&
		    run->io.port == t->io_port) {
			t->nr_io++;
			if (t->stop) {
				t->end = END_DONE;
				break;
			}
			continue;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			for (int i = 0; i < 4; i++) {
				if (!t->nr_sync)
					t->first[i] = uc.args[i];
				t->last[i] = uc.args[i];
			}
			__atomic_store_n(&t->nr_sync, t->nr_sync + 1,
					 __ATOMIC_RELEASE);
			continue;
		case UCALL_DONE:
			t->end = END_DONE;
			break;
		case UCALL_ABORT:
			report_guest_assert(vcpu, &uc);
		default:
			TEST_FAIL("vCPU %u: exit %s", vcpu->id,
				  exit_reason_str(run->exit_reason));
		}
		break;
	}
	t->done = true;
	return NULL;
}

static void vthread_start(struct vthread *t, struct lvmm_vcpu *vcpu,
			  u16 io_port)
{
	memset(t, 0, sizeof(*t));
	t->vcpu = vcpu;
	t->io_port = io_port;
	TEST_ASSERT(!pthread_create(&t->thread, NULL, vthread_fn, t),
		    "pthread_create");
}

/* The emulator's race (vthread_fn()): a skip, not a result. */
static void skip_if_lost(struct vthread *t)
{
	if (t->done && t->end == END_LOST)
		skip_test("the CPU (QEMU's TCG) lost a guest entry's state: Documentation/sandbox.rst, 4");
}

/* Wait for the thread's end, which must be @end. */
static void vthread_join(struct vthread *t, int end)
{
	TEST_ASSERT(wait_for(t->done, 20000), "vCPU %u runs on",
		    t->vcpu->id);
	pthread_join(t->thread, NULL);
	skip_if_lost(t);
	TEST_ASSERT(t->end == end, "vCPU %u ended with %d, not %d",
		    t->vcpu->id, t->end, end);
}

/* Wait for @cond, or the vCPU thread's end (a failure). */
#define wait_vcpu(t, cond, ms) ({					\
	bool __ok = wait_for((cond) || (t)->done, ms);			\
	skip_if_lost(t);						\
	TEST_ASSERT(!(t)->done, "vCPU %u left LVMM_RUN: end %d",	\
		    (t)->vcpu->id, (t)->end);				\
	__ok && (cond);							\
})

/* ---- a guest that counts --------------------------------------------- */

#define COUNT_N		(1ULL << 14)	/* a SYNC every COUNT_N steps */

static volatile u64 counters[2];
static volatile u64 count_stop;

/*
 * Count in memory; the step is also in a register, so that memory and
 * registers from different moments show as a failed assertion.
 */
static void guest_counter(u64 id)
{
	for (u64 i = counters[id] + 1; !count_stop; i++) {
		GUEST_ASSERT_EQ(counters[id], i - 1);
		counters[id] = i;
		if (!(i % COUNT_N))
			GUEST_SYNC_ARGS(id, i, 0, 0, 0);
	}
	GUEST_DONE();
}

static u64 counter_in(struct lvmm_vm *vm, int id)
{
	return *(volatile u64 *)addr_gva2hva(vm, &counters[id]);
}

static void stop_counting(struct lvmm_vm *vm)
{
	*(volatile u64 *)addr_gva2hva(vm, &count_stop) = 1;
}

/*
 * Run @vm, which arrived with its counter @id at @c0, until it syncs
 * twice: it goes on from @c0, never from before.  Returns its first SYNC.
 */
static u64 __counts_on(struct __test_metadata *_metadata, struct vthread *t,
		       u64 c0)
{
	EXPECT_TRUE(wait_vcpu(t, t->nr_sync >= 2, 20000))
		TH_LOG("the VM does not count on the destination");
	/* The SYNC it stopped in, run again, or the next one. */
	EXPECT_LE(c0, t->first[1]);
	EXPECT_GE(c0 + COUNT_N, t->first[1]);
	EXPECT_EQ(0, t->first[1] % COUNT_N);
	EXPECT_LT(t->first[1], t->last[1]);
	return t->first[1];
}

#define counts_on(t, c0)	__counts_on(_metadata, t, c0)

/* ---- a guest that writes memory -------------------------------------- */

#define TOUCH_SLOT	3
#define TOUCH_GPA	(TEST_MEM_GPA + 64 * MiB)
/* A read-only slot the guest reads each round once told to, 2 MiB. */
#define TOUCH_ROM_SLOT	4
#define TOUCH_ROM_GPA	(TEST_MEM_GPA + 32 * MiB)

static struct {
	u64 pages;		/* in the slot; set by the host */
	u64 hot;		/* rewritten, from the first, round after round */
	u64 delay;		/* spin steps after each page */
	u64 stop;
	u64 gen;		/* the round under way */
	u64 written;		/* pages written, all rounds */
	u64 rom_read;		/* set by the host: read TOUCH_ROM_SLOT */
	u64 rom_sum;		/* the sum of a word of each of its pages */
	u64 rom_rounds;		/* rounds that read it */
} touch;

/* Word @gpa of a page written in round @gen. */
static u64 touch_word(u64 gpa, u64 gen)
{
	u64 x = (gpa + (gen << 44)) * 0x9e3779b97f4a7c15ULL;

	return x ^ x >> 29;
}

/* The round page @q (at @gpa) was written in, or 0 if its words disagree. */
static u64 page_gen(const volatile u64 *q, u64 gpa)
{
	u64 gen = q[0];

	for (u64 i = 1; i < 512; i++)
		if (q[i] != touch_word(gpa + i * 8, gen))
			return 0;
	return gen;
}

/*
 * Pages of touch slot @q (@pages at TOUCH_GPA, the first @hot of them
 * rewritten) that are not as guest_memtouch() leaves them between two
 * pages: the cold ones from round 1; the hot ones whole, from round
 * @gen or the round before it, and no page from a later round than the
 * one before it.  The first bad page in *@first.
 */
static u64 touch_diffs(const volatile u64 *q, u64 pages, u64 hot, u64 gen,
		       u64 *first)
{
	u64 bad = 0, prev = gen;

	for (u64 p = 0; p < pages; p++) {
		const volatile u64 *pg = q + p * 512;
		u64 g = page_gen(pg, TOUCH_GPA + p * SZ_4K);
		bool ok;

		if (p < hot) {
			ok = g && g <= prev && g + 1 >= gen;
			prev = g;
		} else {
			ok = g == 1;
		}
		if (!ok && !bad++)
			*first = p;
	}
	return bad;
}

static void touch_page(u64 p, u64 gen)
{
	volatile u64 *q = (volatile u64 *)(TOUCH_GPA + p * SZ_4K);

	q[0] = gen;
	for (u64 i = 1; i < 512; i++)
		q[i] = touch_word((u64)&q[i], gen);
}

/*
 * Write every page (round 1), SYNC 1; then rewrite the hot pages round
 * after round (pausing between rounds while QUIET_PORT says so) until
 * told to stop; then check every page and SYNC 2 with the number of bad
 * pages, the first, and the last round.
 */
static void guest_memtouch(void)
{
	volatile typeof(touch) *t = &touch;
	u64 gen, bad, first = ~0ULL;

	for (u64 p = 0; p < t->pages; p++)
		touch_page(p, 1);
	t->gen = 1;
	GUEST_SYNC_ARGS(1, 0, 0, 0, 0);
	for (gen = 2; !t->stop; gen++) {
		/* Quiet: writing nothing at all, not even a counter. */
		while (inb(QUIET_PORT) && !t->stop)
			cpu_relax();
		t->gen = gen;
		if (t->rom_read) {
			u64 sum = 0;

			for (u64 p = 0; p < SZ_2M / SZ_4K; p++)
				sum += *(volatile u64 *)(TOUCH_ROM_GPA +
							 p * SZ_4K + 8);
			t->rom_sum = sum;
			t->rom_rounds++;
		}
		for (u64 p = 0; p < t->hot && !t->stop; p++) {
			touch_page(p, gen);
			t->written++;
			for (u64 i = 0; i < t->delay; i++)
				asm volatile("");
		}
	}
	gen = t->gen;
	bad = touch_diffs((const volatile u64 *)TOUCH_GPA, t->pages, t->hot,
			  gen, &first);
	GUEST_SYNC_ARGS(2, bad, first, gen, 0);
	GUEST_DONE();
}

static volatile typeof(touch) *touch_of(struct lvmm_vm *vm)
{
	return addr_gva2hva(vm, (void *)&touch);
}

/*
 * A VM of guest_memtouch() on one vCPU, running in @t, with its slot of
 * @pages pages of which the first @hot are rewritten: returned once it
 * wrote them all and rewrote the hot ones twice.
 */
static struct lvmm_vm *touch_vm(struct vthread *t, u64 pages, u64 hot,
				u64 delay)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm = vm_create_with_one_vcpu(&vcpu, guest_memtouch);
	volatile typeof(touch) *tc = touch_of(vm);
	struct nlc *c;
	int r;

	vm_add_memslot(vm, TOUCH_SLOT, 0, TOUCH_GPA, pages * SZ_4K);
	tc->pages = pages;
	tc->hot = hot;
	tc->delay = delay;
	vthread_start(t, vcpu, 0);
	TEST_ASSERT(wait_vcpu(t, t->nr_sync >= 1, 30000),
		    "the guest did not write its memory");
	TEST_ASSERT(wait_vcpu(t, tc->gen >= 4 || !hot, 30000),
		    "the guest does not rewrite its memory");
	c = nlc_open();
	TEST_ASSERT(c, "no lvmm netlink family");
	r = nl_vm_mapped(c, vm->h.id, &t->mapped);
	TEST_ASSERT(!r, "stats-get: %s", strerror(-r));
	nlc_close(c);
	return vm;
}

/*
 * Stop guest_memtouch() in @vm, running in @t: it checks its memory,
 * and so does the host.  Its last round.
 */
static u64 __touch_finish(struct __test_metadata *_metadata,
			  struct lvmm_vm *vm, struct vthread *t)
{
	volatile typeof(touch) *tc = touch_of(vm);
	u64 n = t->nr_sync, first = 0, bad;

	t->quiet = false;
	tc->stop = 1;
	/* It syncs, and its DONE may follow at once. */
	EXPECT_TRUE(wait_for(t->nr_sync > n || t->done, 30000))
		TH_LOG("the guest did not stop");
	skip_if_lost(t);
	EXPECT_LT(n, t->nr_sync) TH_LOG("vCPU thread ended: %d", t->end);
	EXPECT_EQ(2, t->last[0]);
	EXPECT_EQ(0, t->last[1])
		TH_LOG("the guest finds %llu of its pages wrong, the first page %llu",
		       (unsigned long long)t->last[1],
		       (unsigned long long)t->last[2]);
	bad = touch_diffs(addr_gpa2hva(vm, TOUCH_GPA), tc->pages, tc->hot,
			  t->last[3], &first);
	EXPECT_EQ(0, bad) TH_LOG("the host finds %llu pages wrong, the first %llu",
				 (unsigned long long)bad,
				 (unsigned long long)first);
	vthread_join(t, END_DONE);
	return t->last[3];
}

#define touch_finish(vm, t)	__touch_finish(_metadata, vm, t)

/* ---- the source after a migration that failed ------------------------ */

/*
 * A migration of @vm (guest_memtouch() in @t) that ended @res: the VM
 * is there as before (@paused: paused, and resumed here), runs, and its
 * memory is as its guest wrote it; its slots log nothing, and slots and
 * vCPUs can change again.
 */
static void __expect_intact(struct __test_metadata *_metadata,
			    struct nlc *c, struct lvmm_vm *vm,
			    struct vthread *t, bool paused)
{
	volatile typeof(touch) *tc = touch_of(vm);
	struct lvmm_create_vcpu cv = { .id = 7 };
	struct nl_mapped m;
	struct nl_vm v;
	u64 bm[8] = {}, w;
	int fd;

	t->quiet = false;
	ASSERT_EQ(0, nl_vm_get(c, vm->h.id, NULL, &v));
	EXPECT_STREQ(vm->h.name, v.name);
	EXPECT_EQ(paused ? LVMM_VM_STATE_PAUSED : LVMM_VM_STATE_RUNNING,
		  v.state);
	EXPECT_FALSE(t->done);
	if (paused) {
		w = tc->written;
		usleep(100000);
		EXPECT_EQ(w, tc->written) TH_LOG("paused, and it runs");
		ASSERT_EQ(0, nl_vm_cmd(c, LVMM_CMD_VM_RESUME, vm->h.id));
	}
	/* It runs on. */
	w = tc->written;
	EXPECT_TRUE(wait_vcpu(t, tc->written > w + 2 * tc->hot, 20000))
		TH_LOG("the guest does not run after the migration ended");
	/* Its 2 MiB mappings are back (logging split those it wrote). */
	ASSERT_EQ(0, nl_vm_mapped(c, vm->h.id, &m));
	EXPECT_LE(t->mapped.n2m, m.n2m)
		TH_LOG("2 MiB entries: %llu before the migration, %llu after",
		       (unsigned long long)t->mapped.n2m,
		       (unsigned long long)m.n2m);
	/* Dirty logging is off, as for a slot that never logged. */
	for (int s = 0; s < NR_MEMSLOTS; s++) {
		u64 n = vm->slots[s].size / SZ_4K;

		if (!vm->slots[s].used)
			continue;
		EXPECT_EQ(-EINVAL, __vm_get_dirty_log(vm, s, 0, MIN(n, 64), bm))
			TH_LOG("slot %d still logs", s);
		EXPECT_EQ(-EINVAL, __vm_clear_dirty_log(vm, s, 0, MIN(n, 64), bm));
	}
	/* And the VMM may log again, and change slots and vCPUs. */
	EXPECT_EQ(0, __vm_set_memslot_flags(vm, TOUCH_SLOT, LVMM_MEMSLOT_LOG_DIRTY));
	EXPECT_EQ(0, __vm_get_dirty_log(vm, TOUCH_SLOT, 0, 64, bm));
	EXPECT_EQ(0, __vm_set_memslot_flags(vm, TOUCH_SLOT, 0));
	EXPECT_EQ(0, __vm_set_memslot(vm, 9, 0, 3 * SZ_1G, 16 * SZ_4K, NULL));
	EXPECT_EQ(0, __vm_set_memslot(vm, 9, 0, 3 * SZ_1G, 0, NULL));
	fd = ioctl(vm->fd, LVMM_CREATE_VCPU, &cv);
	EXPECT_LE(0, fd) TH_LOG("LVMM_CREATE_VCPU: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	/* Every page as the guest wrote it, by its account and ours. */
	touch_finish(vm, t);
}

#define expect_intact(c, vm, t, paused)					\
	__expect_intact(_metadata, c, vm, t, paused)

/* ---- fixture: the netlink client ------------------------------------- */

FIXTURE(mig) {
	struct nlc *c;
	int nr_vms;		/* VMs listed before the test */
};

FIXTURE_SETUP(mig)
{
	self->c = NULL;
	self->nr_vms = 0;
	signal(SIGPIPE, SIG_IGN);
}

FIXTURE_TEARDOWN(mig)
{
	nlc_close(self->c);
}

/*
 * LIVE_MIGRATION_ONLY=NAME[,NAME...] runs only the tests named (the
 * harness of this kernel has no filter of its own); the others skip.
 */
#define REQUIRE_ONLY() do {						\
	const char *__only = getenv("LIVE_MIGRATION_ONLY");		\
									\
	if (__only && *__only && !strstr(__only, _metadata->name))	\
		SKIP(return, "not in LIVE_MIGRATION_ONLY");		\
} while (0)

#define REQUIRE_MIGRATE() do {						\
	REQUIRE_ONLY();							\
	cur_test = _metadata;						\
	TEST_REQUIRE(lvmm_dev_present());				\
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_MIGRATE));			\
	REQUIRE_LVMM(self->c);						\
	self->nr_vms = nl_vm_count(self->c);				\
} while (0)

/* Nothing left listed by the test. */
#define EXPECT_NO_VM_LEFT() do {					\
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c))			\
		TH_LOG("a VM is left behind");				\
} while (0)

/* ---- a counting guest moves ------------------------------------------ */

/*
 * A guest counting on one vCPU moves: the source's vCPU leaves RUN with
 * LVMM_EXIT_MIGRATED, the source VM is gone and its name free, the
 * destination has the same memory and counts on from where the source
 * stopped.
 */
TEST_F_TIMEOUT(mig, spin_guest, 120)
{
	struct lvmm_vm *vm, *dvm, *other;
	struct vthread t, dt;
	struct lvmm_vcpu *vcpu;
	struct nl_migrated *res;
	char name[LVMM_VM_NAME_LEN];
	u64 c_src, c0, first = 0;
	struct dest d;
	struct mig m;
	struct nl_vm v;
	int r;

	REQUIRE_MIGRATE();
	vm = vm_create_with_one_vcpu(&vcpu, guest_counter);
	strcpy(name, vm->h.name);
	vthread_start(&t, vcpu, 0);
	ASSERT_TRUE(wait_vcpu(&t, t.nr_sync >= 3, 20000));

	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-spin-dst", NULL);
	res = mig_wait_log(&m);
	ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
		TH_LOG("%s, destination %s", strerror(res->error),
		       strerror(res->peer_error));
	EXPECT_EQ(0, res->error);
	expect_sane(res);
	EXPECT_LE(1, res->nr_progress);
	EXPECT_LE(1, res->iterations);
	EXPECT_LT(vm->slots[0].size / 64, res->sent) TH_LOG("too little sent");

	/* The source's vCPU leaves RUN, and never runs again. */
	vthread_join(&t, END_MIGRATED);
	ASSERT_EQ(0, __vcpu_run(vcpu));
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_MIGRATED);
	c_src = counter_in(vm, 0);
	EXPECT_LE(t.last[1], c_src);
	/* Gone from the list, and its name is free. */
	EXPECT_EQ(-ENOENT, nl_vm_get(self->c, vm->h.id, NULL, &v));
	EXPECT_FALSE(vm_listed(self->c, name));
	other = vm_create_bare(name);
	EXPECT_STREQ(name, other->h.name);
	vm_free(other);

	r = dest_join(&d);
	ASSERT_LE(0, r) TH_LOG("the destination: %s", strerror(-r));
	EXPECT_STREQ("mig-spin-dst", d.req.name);
	EXPECT_EQ(1, d.req.nr_vcpus);
	dvm = vm_adopt(&d, vm);
	ASSERT_EQ(0, nl_vm_get(self->c, dvm->h.id, NULL, &v));
	EXPECT_STREQ("mig-spin-dst", v.name);
	EXPECT_NE(LVMM_VM_STATE_PAUSED, v.state);
	EXPECT_EQ(1, v.nr_vcpus);
	EXPECT_EQ(vm->slots[0].size, v.mem_size);
	/* Exactly the memory the source stopped with. */
	c0 = counter_in(dvm, 0);
	EXPECT_EQ(c_src, c0);
	EXPECT_EQ(0, memory_diffs(vm, dvm, &first))
		TH_LOG("the first page that differs is at GPA 0x%llx",
		       (unsigned long long)first);
	/* The destination does not log: lvmm's log was the source's. */
	{
		u64 bm[1];

		EXPECT_EQ(-EINVAL, __vm_get_dirty_log(dvm, 0, 0, 64, bm));
	}

	vthread_start(&dt, dvm->vcpus[0], 0);
	counts_on(&dt, c0);
	TH_LOG("stopped at %llu; the destination's first SYNC at %llu",
	       (unsigned long long)c0, (unsigned long long)dt.first[1]);
	stop_counting(dvm);
	vthread_join(&dt, END_DONE);
	vm_free(dvm);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* ---- the in-kernel APICs move too (stream version 3) ------------------ */

#define TICK_VEC	0x40
#define TICK_SPIN_TSC	(10ULL * 1000 * 1000 * 1000)	/* seconds, at most */

static volatile u64 ticks;

static void guest_tick(struct ex_regs *regs)
{
	(void)regs;
	ticks++;
	x2apic_write_reg(APIC_EOI, 0);
}

/* Wait, interrupts on, for @n more ticks of the APIC timer, or give up. */
static u64 guest_ticks_after(u64 n)
{
	u64 from = ticks, end = rdtsc() + TICK_SPIN_TSC;

	while (ticks < from + n && rdtsc() < end)
		cpu_relax();
	return ticks;
}

static void guest_ticking(void)
{
	x2apic_enable();
	x2apic_write_reg(APIC_TDCR, 0xb);			/* divide by 1 */
	x2apic_write_reg(APIC_LVTT, (1U << 17) | TICK_VEC);	/* periodic */
	x2apic_write_reg(APIC_TMICT, 2000000);			/* 2 ms */
	sti();
	GUEST_SYNC_ARGS(1, guest_ticks_after(2), 0, 0, 0);
	GUEST_SYNC_ARGS(2, guest_ticks_after(5), 0, 0, 0);
	GUEST_DONE();
}

/*
 * A VM with the in-kernel APIC, its periodic timer running, moves: the
 * destination's APIC has the same registers and its timer goes on, with
 * the pages in the stream's checksum (@sums) or not.
 */
static void __mig_irqchip(struct __test_metadata *_metadata,
			  FIXTURE_DATA(mig) *self, bool sums)
{
	struct lvmm_lapic_state *la = calloc(2, sizeof(*la)), *lb = la + 1;
	struct nl_mig_args a = { .checksum = sums };
	struct nl_migrated *res;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm, *dvm;
	struct ucall uc;
	struct dest d;
	struct mig m;
	u64 t0;
	int r;

	REQUIRE_MIGRATE();
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_IRQCHIP));
	ASSERT_NE(NULL, la);
	vm = vm_create_with_irqchip(1, guest_ticking, &vcpu);
	vm_init_descriptor_tables(vm);
	vm_install_exception_handler(vm, TICK_VEC, guest_tick);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	ASSERT_EQ(1, uc.args[0]);
	t0 = uc.args[1];
	ASSERT_LE(2, t0) TH_LOG("the APIC timer does not tick");
	vcpu_get_lapic(vcpu, la);

	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-irqchip-dst", &a);
	res = mig_wait_log(&m);
	ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
		TH_LOG("%s, destination %s", strerror(res->error),
		       strerror(res->peer_error));
	r = dest_join(&d);
	ASSERT_LE(0, r) TH_LOG("the destination: %s", strerror(-r));
	dvm = vm_adopt(&d, vm);
	vcpu_get_lapic(dvm->vcpus[0], lb);
	EXPECT_EQ(lapic_reg(la, APIC_LVTT), lapic_reg(lb, APIC_LVTT));
	EXPECT_EQ(lapic_reg(la, APIC_TMICT), lapic_reg(lb, APIC_TMICT));
	EXPECT_EQ(lapic_reg(la, APIC_SPIV), lapic_reg(lb, APIC_SPIV));
	EXPECT_LT(0, lapic_reg(lb, APIC_TMCCT))
		TH_LOG("the timer is stopped (source %u, LVTT %x DCR %x)", lapic_reg(la, APIC_TMCCT), lapic_reg(lb, APIC_LVTT), lapic_reg(lb, APIC_TDCR));

	/* The guest repeats its last SYNC, then counts five more ticks. */
	do {
		ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(dvm->vcpus[0], &uc));
	} while (uc.args[0] < 2);
	EXPECT_LE(t0 + 5, uc.args[1]) TH_LOG("the timer stopped in the move");
	vm_free(dvm);
	vm_free(vm);
	free(la);
	EXPECT_NO_VM_LEFT();
}

TEST_F_TIMEOUT(mig, irqchip, 120)
{
	__mig_irqchip(_metadata, self, false);
}

TEST_F_TIMEOUT(mig, irqchip_checksum, 120)
{
	__mig_irqchip(_metadata, self, true);
}

/* Two vCPUs, both counting: both leave the source, both count on. */
TEST_F_TIMEOUT(mig, two_vcpus, 120)
{
	struct lvmm_vcpu *vcpus[2];
	struct vthread t[2], dt[2];
	struct nl_migrated *res;
	struct lvmm_vm *vm, *dvm;
	u64 c0[2], first = 0;
	struct dest d;
	struct mig m;
	struct nl_vm v;

	REQUIRE_MIGRATE();
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_MAX_VCPUS) >= 2);
	vm = vm_create_with_vcpus(2, guest_counter, vcpus);
	for (int i = 0; i < 2; i++)
		vthread_start(&t[i], vcpus[i], 0);
	for (int i = 0; i < 2; i++)
		ASSERT_TRUE(wait_vcpu(&t[i], t[i].nr_sync >= 2, 20000));

	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-two-dst", NULL);
	res = mig_wait_log(&m);
	for (int i = 0; i < 2; i++)
		skip_if_lost(&t[i]);
	ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
		TH_LOG("%s", strerror(res->error));
	expect_sane(res);
	for (int i = 0; i < 2; i++)
		vthread_join(&t[i], END_MIGRATED);

	ASSERT_LE(0, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	EXPECT_EQ(2, d.req.nr_vcpus);
	dvm = vm_adopt(&d, vm);
	ASSERT_EQ(0, nl_vm_get(self->c, dvm->h.id, NULL, &v));
	EXPECT_EQ(2, v.nr_vcpus);
	EXPECT_EQ(0, memory_diffs(vm, dvm, &first))
		TH_LOG("the first page that differs is at GPA 0x%llx",
		       (unsigned long long)first);
	for (int i = 0; i < 2; i++) {
		c0[i] = counter_in(dvm, i);
		EXPECT_EQ(counter_in(vm, i), c0[i]);
		EXPECT_LE(t[i].last[1], c0[i]);
		vthread_start(&dt[i], dvm->vcpus[i], 0);
	}
	for (int i = 0; i < 2; i++)
		counts_on(&dt[i], c0[i]);
	stop_counting(dvm);
	for (int i = 0; i < 2; i++)
		vthread_join(&dt[i], END_DONE);
	vm_free(dvm);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * A paused VM arrives paused: frozen where the pause left it until
 * vm-resume, on the destination, lets it count on.
 */
TEST_F_TIMEOUT(mig, paused_vm_arrives_paused, 120)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm, *dvm;
	struct nl_migrated *res;
	struct vthread t, dt;
	struct vcpu_dump dump;
	struct dest d;
	struct mig m;
	u64 frozen;

	REQUIRE_MIGRATE();
	vm = vm_create_with_one_vcpu(&vcpu, guest_counter);
	vthread_start(&t, vcpu, 0);
	ASSERT_TRUE(wait_vcpu(&t, t.nr_sync >= 2, 20000));
	ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_PAUSE, vm->h.id));
	ASSERT_TRUE(wait_for(!nl_vcpu_dump(self->c, vm->h.id, &dump) &&
			     dump.v[0].state == LVMM_VCPU_STATE_PAUSED, 5000));
	frozen = counter_in(vm, 0);

	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-paused-dst", NULL);
	res = mig_wait_log(&m);
	ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
		TH_LOG("%s", strerror(res->error));
	expect_sane(res);
	/* Parked in RUN, it leaves with MIGRATED all the same. */
	vthread_join(&t, END_MIGRATED);
	EXPECT_EQ(frozen, counter_in(vm, 0));

	ASSERT_LE(0, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	dvm = vm_adopt(&d, vm);
	EXPECT_EQ(LVMM_VM_STATE_PAUSED, vm_state(self->c, dvm->h.id));
	EXPECT_EQ(frozen, counter_in(dvm, 0));
	/* Its vCPU parks in RUN, as a paused VM's does. */
	vthread_start(&dt, dvm->vcpus[0], 0);
	EXPECT_TRUE(wait_for(!nl_vcpu_dump(self->c, dvm->h.id, &dump) &&
			     dump.v[0].state == LVMM_VCPU_STATE_PAUSED, 5000));
	usleep(200000);
	EXPECT_EQ(frozen, counter_in(dvm, 0)) TH_LOG("arrived paused, and ran");
	EXPECT_EQ(0, dt.nr_sync);
	EXPECT_FALSE(dt.done);
	ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_RESUME, dvm->h.id));
	counts_on(&dt, frozen);
	stop_counting(dvm);
	vthread_join(&dt, END_DONE);
	vm_free(dvm);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * Over a UNIX stream socket pair, the other kind of socket lvmm takes: a
 * counting guest, and a VM with nothing in it at all.
 */
TEST_F_TIMEOUT(mig, unix_socket_pair, 120)
{
	REQUIRE_MIGRATE();
	force_unix = true;
	for (int empty = 0; empty < 2; empty++) {
		struct lvmm_vm *vm, *dvm;
		struct nl_migrated *res;
		struct lvmm_vcpu *vcpu;
		struct vthread t, dt;
		struct dest d;
		struct mig m;
		u64 c0 = 0;

		if (empty) {
			vm = vm_create_bare("mig-empty");
		} else {
			vm = vm_create_with_one_vcpu(&vcpu, guest_counter);
			vthread_start(&t, vcpu, 0);
			ASSERT_TRUE(wait_vcpu(&t, t.nr_sync >= 2, 20000));
		}
		mig_to_dest(self->c, &m, &d, vm->h.id, "mig-unix-dst", NULL);
		res = mig_wait_log(&m);
		ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
			TH_LOG("%s: %s, destination %s", empty ? "empty" : "counting",
			       strerror(res->error), strerror(res->peer_error));
		expect_sane(res);
		ASSERT_LE(0, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
		dvm = vm_adopt(&d, vm);
		if (!empty) {
			vthread_join(&t, END_MIGRATED);
			c0 = counter_in(dvm, 0);
			EXPECT_EQ(counter_in(vm, 0), c0);
			vthread_start(&dt, dvm->vcpus[0], 0);
			counts_on(&dt, c0);
			stop_counting(dvm);
			vthread_join(&dt, END_DONE);
		} else {
			EXPECT_EQ(0, d.req.nr_vcpus);
		}
		vm_free(dvm);
		vm_free(vm);
	}
	EXPECT_NO_VM_LEFT();
}

/*
 * A destination that takes its time with pass 1, over a UNIX socket
 * pair: what the socket holds is not what the destination took (an
 * AF_UNIX socket counts its buffers' true size), and the source must
 * cope all the same.
 */
TEST_F_TIMEOUT(mig, slow_reader_unix, 120)
{
	struct nl_migrated *res;
	struct fake_dest f;
	struct lvmm_vm *vm;
	struct mig m;
	u8 *mem;

	REQUIRE_MIGRATE();
	force_unix = true;
	vm = vm_create_bare("mig-slow-reader");
	mem = vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	for (int p = 0; p < 8; p++)
		memset(mem + p * 37 * SZ_4K, 0x10 + p, 100);
	fake_init(&f, FAKE_REFUSE_END);
	f.err = ENOSPC;
	f.stall_ms = 500;
	mig_to_fake(self->c, &m, &f, vm->h.id);
	res = mig_wait_log(&m);
	fake_join(&f);
	EXPECT_TRUE(f.got_end);
	expect_stayed(res, ECONNREFUSED);
	EXPECT_EQ(ENOSPC, res->peer_error);
	expect_sane(res);
	EXPECT_EQ(f.len, res->sent);
	free(f.buf);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* Two VMs migrate at once, each to its own destination. */
TEST_F_TIMEOUT(mig, two_at_once, 120)
{
	static const char *const names[2] = { "mig-one-dst", "mig-two-dst" };
	struct lvmm_vm *vm[2], *dvm[2];
	struct vthread t[2], dt[2];
	struct lvmm_vcpu *vcpu;
	struct dest d[2];
	struct mig m[2];

	REQUIRE_MIGRATE();
	for (int i = 0; i < 2; i++) {
		vm[i] = vm_create_with_one_vcpu(&vcpu, guest_counter);
		vthread_start(&t[i], vcpu, 0);
	}
	for (int i = 0; i < 2; i++)
		ASSERT_TRUE(wait_vcpu(&t[i], t[i].nr_sync >= 2, 20000));
	for (int i = 0; i < 2; i++)
		mig_to_dest(self->c, &m[i], &d[i], vm[i]->h.id, names[i],
			    NULL);
	for (int i = 0; i < 2; i++) {
		struct nl_migrated *res = mig_wait_log(&m[i]);

		ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
			TH_LOG("VM %d: %s", i, strerror(res->error));
		expect_sane(res);
	}
	for (int i = 0; i < 2; i++) {
		u64 first = 0;

		vthread_join(&t[i], END_MIGRATED);
		ASSERT_LE(0, dest_join(&d[i])) TH_LOG("%s", strerror(-d[i].ret));
		dvm[i] = vm_adopt(&d[i], vm[i]);
		/* Each has its own memory, not the other's. */
		EXPECT_EQ(0, memory_diffs(vm[i], dvm[i], &first))
			TH_LOG("VM %d: the first page that differs is at GPA 0x%llx",
			       i, (unsigned long long)first);
		vthread_start(&dt[i], dvm[i]->vcpus[0], 0);
		counts_on(&dt[i], counter_in(vm[i], 0));
	}
	for (int i = 0; i < 2; i++) {
		stop_counting(dvm[i]);
		vthread_join(&dt[i], END_DONE);
		vm_free(dvm[i]);
		vm_free(vm[i]);
	}
	EXPECT_NO_VM_LEFT();
}

/*
 * There and back, twice: each hop's destination is the next hop's
 * source, and takes the name its source had two hops before.
 */
TEST_F_TIMEOUT(mig, back_and_forth, 180)
{
	struct lvmm_vm *vms[5];
	struct vthread t[5];
	struct lvmm_vcpu *vcpu;
	char names[2][LVMM_VM_NAME_LEN];
	u64 c_prev = 0;

	REQUIRE_MIGRATE();
	vms[0] = vm_create_with_one_vcpu(&vcpu, guest_counter);
	strcpy(names[0], vms[0]->h.name);
	strcpy(names[1], "mig-pong");
	vthread_start(&t[0], vcpu, 0);
	ASSERT_TRUE(wait_vcpu(&t[0], t[0].nr_sync >= 2, 20000));

	for (int hop = 0; hop < 4; hop++) {
		struct lvmm_vm *src = vms[hop];
		const char *to = names[(hop + 1) % 2];
		struct nl_migrated *res;
		u64 c0, first = 0;
		struct dest d;
		struct mig m;

		mig_to_dest(self->c, &m, &d, src->h.id, to, NULL);
		res = mig_wait_log(&m);
		ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
			TH_LOG("hop %d: %s, destination %s", hop,
			       strerror(res->error), strerror(res->peer_error));
		expect_sane(res);
		vthread_join(&t[hop], END_MIGRATED);
		ASSERT_LE(0, dest_join(&d))
			TH_LOG("hop %d: the destination: %s", hop,
			       strerror(-d.ret));
		EXPECT_STREQ(to, d.req.name);
		vms[hop + 1] = vm_adopt(&d, src);
		c0 = counter_in(vms[hop + 1], 0);
		EXPECT_EQ(counter_in(src, 0), c0);
		EXPECT_LE(c_prev, c0) TH_LOG("hop %d: the counter went back", hop);
		EXPECT_EQ(0, memory_diffs(src, vms[hop + 1], &first))
			TH_LOG("hop %d: the first page that differs is at GPA 0x%llx",
			       hop, (unsigned long long)first);
		/* The name of two hops back is this VM's now. */
		{
			struct nl_vm v;

			EXPECT_EQ(0, nl_vm_get(self->c, 0, to, &v));
			EXPECT_EQ(vms[hop + 1]->h.id, v.id);
		}
		vthread_start(&t[hop + 1], vms[hop + 1]->vcpus[0], 0);
		counts_on(&t[hop + 1], c0);
		c_prev = t[hop + 1].last[1];
	}
	stop_counting(vms[4]);
	vthread_join(&t[4], END_DONE);
	for (int i = 0; i < 5; i++)
		vm_free(vms[i]);
	EXPECT_NO_VM_LEFT();
}

/* ---- a guest that writes its memory moves ---------------------------- */

#define VMM_SLOT	1		/* written by the VMM only */
#define VMM_GPA		TEST_MEM_GPA
#define VMM_SIZE	SZ_2M
#define ROM_SLOT	2		/* read-only to the guest */
#define ROM_GPA		(TEST_MEM_GPA + 4 * MiB)
#define ROM_SIZE	(4 * SZ_4K)
#define VMM_PAGE	5		/* the page of each the VMM rewrites */
#define ROM_PAGE	1

static void fill_page(u8 *p, u8 v)
{
	memset(p, v, SZ_4K);
}

/*
 * A guest rewriting some of its pages all the time moves: its later
 * passes send those pages (PAGES records); pages the VMM wrote after pass
 * 1 had sent them, in a slot the guest may write and in one it may not,
 * arrive as the VMM wrote them; all memory arrives as the source stopped
 * with it, and the guest finds its pages as it wrote them.
 */
TEST_F_TIMEOUT(mig, memtouch_guest, 180)
{
	const u64 pages = 16 * MiB / SZ_4K, hot = 512;
	u8 *vmm, *rom, *dvmm, *drom;
	struct lvmm_vm *vm, *dvm;
	struct nl_migrated *res;
	struct rec_ref *recs;
	struct vthread t, dt;
	struct relay rl;
	struct dest d;
	struct mig m;
	u64 first = 0, bad;
	int s, ra, rb, fd, nr, seen = 0;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, pages, hot, 0);
	vmm = vm_add_memslot(vm, VMM_SLOT, 0, VMM_GPA, VMM_SIZE);
	rom = vm_add_memslot(vm, ROM_SLOT, LVMM_MEMSLOT_READONLY, ROM_GPA,
			     ROM_SIZE);
	for (u64 p = 0; p < VMM_SIZE / SZ_4K; p++)
		fill_page(vmm + p * SZ_4K, 0x10 + p % 64);
	for (u64 p = 0; p < ROM_SIZE / SZ_4K; p++)
		fill_page(rom + p * SZ_4K, 0xc0 + p);
	/* As it wrote them, before anything moves. */
	bad = touch_diffs(addr_gpa2hva(vm, TOUCH_GPA), pages, 0, 0, &first);
	EXPECT_EQ(hot, bad);
	EXPECT_EQ(0, first);

	/*
	 * Source -> relay -> destination.  Small buffers keep the source
	 * within a few hundred KiB of what the relay took: held after the
	 * VMM's slots went in pass 1, the source is still in pass 1.
	 */
	tcp_pair_buf(&s, &ra, 64 * 1024);
	tcp_pair(&rb, &fd);
	/*
	 * The guest writes until the later passes began: they carry its
	 * pages; then it lets the migration converge, however slow the
	 * link.
	 */
	relay_start(&rl, ra, rb, ROM_SLOT, &t.quiet);
	dest_start(&d, fd, "mig-touch-dst");
	mig_start(self->c, &m, vm->h.id, s, NULL);
	ASSERT_TRUE(wait_for(rl.holding || rl.done, 30000))
		TH_LOG("the read-only slot never came in pass 1");
	ASSERT_FALSE(rl.done);
	fill_page(vmm + VMM_PAGE * SZ_4K, 0xee);
	fill_page(rom + ROM_PAGE * SZ_4K, 0xef);
	rl.release = true;

	res = mig_wait_log(&m);
	ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
		TH_LOG("%s, destination %s", strerror(res->error),
		       strerror(res->peer_error));
	expect_sane(res);
	vthread_join(&t, END_MIGRATED);
	ASSERT_LE(0, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	ASSERT_TRUE(wait_for(rl.done, 10000));
	pthread_join(rl.thread, NULL);

	dvm = vm_adopt(&d, vm);
	EXPECT_EQ(0, memory_diffs(vm, dvm, &first))
		TH_LOG("the first page that differs is at GPA 0x%llx",
		       (unsigned long long)first);
	dvmm = addr_gpa2hva(dvm, VMM_GPA);
	drom = addr_gpa2hva(dvm, ROM_GPA);
	EXPECT_EQ(0xee, dvmm[VMM_PAGE * SZ_4K + 100]);
	EXPECT_EQ(0xef, drom[ROM_PAGE * SZ_4K + 100]);
	EXPECT_EQ(0x10 + (VMM_PAGE + 1) % 64, dvmm[(VMM_PAGE + 1) * SZ_4K]);
	/* The cold pages are all from round 1; the hot ones are later. */
	bad = touch_diffs(addr_gpa2hva(dvm, TOUCH_GPA), pages, 0, 0, &first);
	EXPECT_EQ(hot, bad);
	EXPECT_EQ(0, first);

	/*
	 * The stream: pass 1 as MEMORY, then PAGES; the VMM's pages in
	 * PAGES records; then GO, and nothing else.
	 */
	ASSERT_LE(sizeof(struct lvmm_mig_msg), rl.len - rl.parsed);
	check_stream(rl.buf, rl.parsed, 4, 1, 0, true, false);
	{
		struct lvmm_mig_msg go;

		EXPECT_EQ(sizeof(go), rl.len - rl.parsed);
		memcpy(&go, rl.buf + rl.parsed, sizeof(go));
		EXPECT_EQ(LVMM_MIG_MAGIC, go.magic);
		EXPECT_EQ(LVMM_MIG_GO, go.type);
	}
	recs = calloc(MAX_RECS, sizeof(*recs));
	nr = stream_index(rl.buf, rl.parsed, recs, MAX_RECS);
	for (int i = 0; i < nr; i++) {
		struct lvmm_stream_mem mem;
		const u8 *page;
		u32 want_slot;
		u64 want_page;

		if (recs[i].type != LVMM_REC_PAGES)
			continue;
		memcpy(&mem, rec_data(rl.buf, &recs[i]), sizeof(mem));
		if (mem.slot != VMM_SLOT && mem.slot != ROM_SLOT)
			continue;
		want_slot = mem.slot;
		want_page = want_slot == VMM_SLOT ? VMM_PAGE : ROM_PAGE;
		page = (u8 *)rec_data(rl.buf, &recs[i]) + sizeof(mem);
		for (u64 b = 0; b < 512; b++) {
			if (!(mem.present[b / 64] & (1ULL << (b % 64))))
				continue;
			if (mem.first_page + b == want_page &&
			    page[100] == (want_slot == VMM_SLOT ? 0xee : 0xef))
				seen |= 1 << want_slot;
			page += SZ_4K;
		}
	}
	free(recs);
	EXPECT_EQ(1 << VMM_SLOT | 1 << ROM_SLOT, seen)
		TH_LOG("the pages the VMM wrote after pass 1 were not sent again (0x%x)",
		       seen);

	/* And the guest on the destination finds everything as it wrote it. */
	vthread_start(&dt, dvm->vcpus[0], 0);
	EXPECT_TRUE(wait_vcpu(&dt, touch_of(dvm)->written >
				   touch_of(vm)->written + 2 * hot, 20000));
	touch_finish(dvm, &dt);
	free(rl.buf);
	vm_free(dvm);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* ---- failures: the source stays as it was ---------------------------- */

#define FAIL_PAGES	1024		/* 4 MiB */
#define FAIL_HOT	64
#define SLOW_BW		(2 * MiB)	/* bytes/s: pass 1 takes ~3 s */

/*
 * The destination's process is killed in the middle of the stream: the
 * source stays, and nothing of the half-built VM is left.  The stream
 * kept to --bandwidth meanwhile.
 */
TEST_F_TIMEOUT(mig, destination_killed, 120)
{
	struct nl_mig_args a = { .max_bandwidth = SLOW_BW };
	struct nl_migrated *res;
	struct lvmm_vm *vm;
	struct vthread t;
	struct mig m;
	int s, fd, status;
	pid_t pid;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
	tcp_pair(&s, &fd);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct lvmm_restore_vm req = {
			.fd = fd, .flags = LVMM_RESTORE_INCOMING,
			.name = "mig-killed",
		};
		int dev = lvmm_open();

		close(s);
		_exit(ioctl(dev, LVMM_RESTORE_VM, &req) < 0 ? 1 : 0);
	}
	close(fd);
	mig_start(self->c, &m, vm->h.id, s, &a);
	usleep(800000);
	ASSERT_EQ(0, waitpid(pid, &status, WNOHANG))
		TH_LOG("the destination ended before it was killed (status 0x%x)",
		       status);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	res = mig_wait_log(&m);
	EXPECT_EQ(LVMM_MIGRATE_STAYED, res->outcome);
	/*
	 * The connection closed; or, when the source had written all it
	 * had into the socket's buffer before the reset came, it reads the
	 * REFUSE the dying destination sent first.
	 */
	EXPECT_TRUE(res->error == ECONNRESET ||
		    (res->error == ECONNREFUSED && res->peer_error == EINTR))
		TH_LOG("%s, destination %s", strerror(res->error),
		       strerror(res->peer_error));
	expect_sane(res);
	EXPECT_LT(0, res->sent);
	/*
	 * Never faster than --bandwidth: lvmm sleeps after each record, so
	 * one record (a chunk, 2 MiB) is the most it may be ahead.
	 */
	EXPECT_GE(SLOW_BW * (res->total_ns / 1000000) / 1000 + SZ_2M + SZ_4K,
		  res->sent);
	EXPECT_TRUE(wait_for(!vm_listed(self->c, "mig-killed"), 5000))
		TH_LOG("the killed destination's VM is listed");
	expect_intact(self->c, vm, &t, false);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* The destination closes its socket after 1 MiB. */
TEST_F_TIMEOUT(mig, destination_closes, 120)
{
	struct nl_migrated *res;
	struct fake_dest f;
	struct lvmm_vm *vm;
	struct vthread t;
	struct mig m;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
	fake_init(&f, FAKE_CLOSE_AFTER);
	f.close_after = MiB;
	mig_to_fake(self->c, &m, &f, vm->h.id);
	res = mig_wait_log(&m);
	fake_join(&f);
	EXPECT_TRUE(f.got_header);
	EXPECT_LE(MiB, f.len);
	expect_stayed(res, ECONNRESET);
	expect_sane(res);
	expect_intact(self->c, vm, &t, false);
	free(f.buf);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * The destination's socket is shut down under LVMM_RESTORE_INCOMING:
 * the ioctl fails with ECONNRESET and leaves nothing; the source stays.
 */
TEST_F_TIMEOUT(mig, destination_socket_shut_down, 120)
{
	struct nl_mig_args a = { .max_bandwidth = SLOW_BW };
	struct nl_migrated *res;
	struct lvmm_vm *vm;
	struct vthread t;
	struct dest d;
	struct mig m;
	int s, fd, fd2;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
	tcp_pair(&s, &fd);
	fd2 = dup(fd);
	ASSERT_LE(0, fd2);
	dest_start(&d, fd, "mig-shut");
	mig_start(self->c, &m, vm->h.id, s, &a);
	usleep(800000);
	ASSERT_FALSE(d.done) TH_LOG("the destination ended early: %s",
				    strerror(-d.ret));
	ASSERT_EQ(0, shutdown(fd2, SHUT_RDWR));
	EXPECT_EQ(-ECONNRESET, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	close(fd2);
	EXPECT_FALSE(vm_listed(self->c, "mig-shut"));
	res = mig_wait_log(&m);
	expect_stayed(res, ECONNRESET);
	expect_sane(res);
	expect_intact(self->c, vm, &t, false);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * The destination refuses the header: a VM of the name exists there.
 * The source learns why (peer error EEXIST); the VM there is untouched.
 */
TEST_F_TIMEOUT(mig, destination_refuses, 120)
{
	struct lvmm_vm *vm, *taken;
	struct nl_migrated *res;
	struct vthread t;
	struct dest d;
	struct mig m;
	struct nl_vm v;

	REQUIRE_MIGRATE();
	taken = vm_create_bare("mig-taken");
	vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-taken", NULL);
	res = mig_wait_log(&m);
	expect_stayed(res, ECONNREFUSED);
	EXPECT_EQ(EEXIST, res->peer_error) TH_LOG("%s", strerror(res->peer_error));
	expect_sane(res);
	/* Refused at the header: not after the whole VM came. */
	EXPECT_GT(vm->slots[TOUCH_SLOT].size, res->sent);
	EXPECT_EQ(-EEXIST, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	ASSERT_EQ(0, nl_vm_get(self->c, 0, "mig-taken", &v));
	EXPECT_EQ(taken->h.id, v.id);
	EXPECT_EQ(LVMM_VM_STATE_CREATED, v.state);
	expect_intact(self->c, vm, &t, false);
	vm_free(vm);
	vm_free(taken);
	EXPECT_NO_VM_LEFT();
}

/*
 * LVMM_RESTORE_HOLD: the destination's VMM gets the VM, whole and frozen,
 * before the source hears READY, and decides.  It refuses (EPERM), it is
 * destroyed (vm-destroy: ENOENT), or its VMM goes without a word (its fds
 * closed: ECANCELED): each time the source is told why and runs on, and
 * nothing is left here.  Then it takes one: the VM moves and runs here.
 */
TEST_F_TIMEOUT(mig, vmm_decides_on_a_held_vm, 180)
{
	static const int why[] = { EPERM, ENOENT, ECANCELED, 0 };
	struct lvmm_incoming_finish fin = { };

	REQUIRE_MIGRATE();
	for (unsigned int i = 0; i < ARRAY_SIZE(why); i++) {
		struct nl_migrated *res;
		struct lvmm_vm *vm;
		struct vthread t;
		struct dest d;
		struct mig m;
		struct nl_vm v;
		int s, fd, vm_fd;

		vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
		tcp_pair(&s, &fd);
		dest_start_flags(&d, fd, "mig-held", -1,
				 LVMM_RESTORE_INCOMING | LVMM_RESTORE_HOLD);
		mig_start(self->c, &m, vm->h.id, s, NULL);
		vm_fd = dest_join(&d);
		ASSERT_LE(0, vm_fd) TH_LOG("held: %s", strerror(-vm_fd));
		EXPECT_EQ(1, d.req.nr_vcpus);
		/* Listed, frozen: the source has not let it go. */
		ASSERT_EQ(0, nl_vm_get(self->c, 0, "mig-held", &v));
		EXPECT_EQ(LVMM_VM_STATE_PAUSED, v.state);

		if (why[i] == EPERM) {
			fin.error = EPERM;
			EXPECT_EQ(0, ioctl(vm_fd, LVMM_INCOMING_FINISH, &fin))
				TH_LOG("%s", strerror(errno));
			/* Refused: the VM here is gone. */
			EXPECT_EQ(-1, ioctl(vm_fd, LVMM_INCOMING_FINISH, &fin));
			EXPECT_EQ(EIO, errno);
		} else if (why[i] == ENOENT) {
			EXPECT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_DESTROY,
					       v.id));
		}
		if (why[i]) {
			close(vm_fd);
			res = mig_wait_log(&m);
			expect_stayed(res, ECONNREFUSED);
			EXPECT_EQ(why[i], res->peer_error)
				TH_LOG("%s", strerror(res->peer_error));
			expect_sane(res);
			EXPECT_FALSE(vm_listed(self->c, "mig-held"));
			expect_intact(self->c, vm, &t, false);
			vm_free(vm);
			continue;
		}

		/* Taken: the source hands it over, and it runs here. */
		fin.error = 0;
		EXPECT_EQ(-1, ioctl(vm_fd, LVMM_INCOMING_FINISH,
				    &(struct lvmm_incoming_finish){ .flags = 1 }));
		EXPECT_EQ(EINVAL, errno);
		EXPECT_EQ(0, ioctl(vm_fd, LVMM_INCOMING_FINISH, &fin))
			TH_LOG("%s", strerror(errno));
		res = mig_wait_log(&m);
		EXPECT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
			TH_LOG("%s, destination %s", strerror(res->error),
			       strerror(res->peer_error));
		/* Once: it is not held any more. */
		EXPECT_EQ(-1, ioctl(vm_fd, LVMM_INCOMING_FINISH, &fin));
		EXPECT_EQ(EINVAL, errno);
		ASSERT_EQ(0, nl_vm_get(self->c, 0, "mig-held", &v));
		EXPECT_NE(LVMM_VM_STATE_PAUSED, v.state);
		vthread_join(&t, END_MIGRATED);
		close(vm_fd);		/* its last fd: it goes */
		vm_free(vm);
	}
	EXPECT_NO_VM_LEFT();
}

/* vm-migrate-cancel in pass 1: ECANCELED, promptly; a second: ENOENT. */
TEST_F_TIMEOUT(mig, cancel, 120)
{
	struct nl_mig_args a = { .max_bandwidth = SLOW_BW };
	struct nl_migrated *res;
	struct lvmm_vm *vm;
	struct vthread t;
	struct dest d;
	struct mig m;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-cancelled", &a);
	usleep(600000);
	EXPECT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL, vm->h.id))
		TH_LOG("%s", self->c->ext);
	res = mig_wait_log(&m);
	expect_stayed(res, ECANCELED);
	expect_sane(res);
	EXPECT_GT(3000000000ULL, now_ns() - m.start_ns)
		TH_LOG("the cancel took its time");
	/* The destination learns at once, and keeps nothing. */
	EXPECT_EQ(-ECONNRESET, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	EXPECT_FALSE(vm_listed(self->c, "mig-cancelled"));
	EXPECT_EQ(-ENOENT, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL,
				     vm->h.id));
	EXPECT_NE(0, self->c->ext[0]) TH_LOG("ENOENT without an extack message");
	expect_intact(self->c, vm, &t, false);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * The guest first reads a read-only slot while a migration logs it, so
 * it is mapped in 4 KiB entries; the migration is cancelled, and the slot
 * is mapped by its 2 MiB entry again, read-only still.
 */
TEST_F_TIMEOUT(mig, rom_huge_again_after_cancel, 120)
{
	struct nl_mig_args a = { .max_bandwidth = SLOW_BW };
	volatile typeof(touch) *tc;
	struct nl_mapped during, after;
	struct nl_migrated *res;
	struct lvmm_vm *vm;
	struct vthread t;
	u64 sum = 0, r;
	struct dest d;
	struct mig m;
	u8 *rom;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
	tc = touch_of(vm);
	rom = vm_add_memslot(vm, TOUCH_ROM_SLOT, LVMM_MEMSLOT_READONLY,
			     TOUCH_ROM_GPA, SZ_2M);
	for (u64 p = 0; p < SZ_2M / SZ_4K; p++) {
		fill_page(rom + p * SZ_4K, p & 0xff);
		sum += *(u64 *)(rom + p * SZ_4K + 8);
	}
	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-rom", &a);
	usleep(600000);
	tc->rom_read = 1;
	ASSERT_TRUE(wait_vcpu(&t, tc->rom_rounds >= 2, 20000))
		TH_LOG("the guest does not read its ROM");
	EXPECT_EQ(sum, tc->rom_sum);
	ASSERT_EQ(0, nl_vm_mapped(self->c, vm->h.id, &during));
	EXPECT_LE(t.mapped.n4k + SZ_2M / SZ_4K, during.n4k)
		TH_LOG("the ROM read while logging is not in 4 KiB entries");
	EXPECT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL, vm->h.id))
		TH_LOG("%s", self->c->ext);
	res = mig_wait_log(&m);
	expect_stayed(res, ECANCELED);
	EXPECT_EQ(-ECONNRESET, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	ASSERT_EQ(0, nl_vm_mapped(self->c, vm->h.id, &after));
	EXPECT_LE(t.mapped.n2m + 1, after.n2m)
		TH_LOG("2 MiB entries: %llu before, %llu after: the ROM's is not back",
		       (unsigned long long)t.mapped.n2m,
		       (unsigned long long)after.n2m);
	/* The guest reads on what the VMM wrote. */
	r = tc->rom_rounds;
	EXPECT_TRUE(wait_vcpu(&t, tc->rom_rounds >= r + 2, 20000));
	EXPECT_EQ(sum, tc->rom_sum);
	tc->rom_read = 0;
	expect_intact(self->c, vm, &t, false);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* vm-destroy during the migration: it ends (EINTR), and so does the VM. */
TEST_F_TIMEOUT(mig, destroyed_during_migration, 120)
{
	struct nl_mig_args a = { .max_bandwidth = SLOW_BW };
	struct nl_migrated *res;
	struct lvmm_vm *vm;
	struct vthread t;
	struct dest d;
	struct mig m;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-destroyed", &a);
	usleep(600000);
	EXPECT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_DESTROY, vm->h.id));
	res = mig_wait_log(&m);
	expect_stayed(res, EINTR);
	expect_sane(res);
	vthread_join(&t, END_DESTROYED);
	EXPECT_EQ(-ECONNRESET, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	EXPECT_FALSE(vm_listed(self->c, "mig-destroyed"));
	EXPECT_FALSE(vm_listed(self->c, vm->h.name));
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * The destination reads the header and answers nothing: the source
 * gives up after its 10 s timeout (ETIMEDOUT) and stays.
 */
TEST_F_TIMEOUT(mig, destination_silent, 120)
{
	struct nl_migrated *res;
	struct fake_dest f;
	struct lvmm_vm *vm;
	struct vthread t;
	struct mig m;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, 256, 16, 0);
	fake_init(&f, FAKE_SILENT);
	mig_to_fake(self->c, &m, &f, vm->h.id);
	res = mig_wait_log(&m);
	fake_join(&f);
	EXPECT_TRUE(f.got_header);
	expect_stayed(res, ETIMEDOUT);
	expect_sane(res);
	EXPECT_LE(9500000000ULL, res->total_ns);
	EXPECT_GE(15000000000ULL, res->total_ns);
	expect_intact(self->c, vm, &t, false);
	free(f.buf);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * The destination answers the header with something that is not an
 * ACCEPT: a bad magic, no version, a type there is none of, another
 * message.  EPROTO; and no REFUSE either.
 */
TEST_F_TIMEOUT(mig, destination_speaks_garbage, 120)
{
	static const struct lvmm_mig_msg garbage[] = {
		{ ~LVMM_MIG_MAGIC, LVMM_MIG_ACCEPT, 0, LVMM_STREAM_VERSION, 0 },
		{ LVMM_MIG_MAGIC, LVMM_MIG_ACCEPT, 0, 0, 0 },
		{ LVMM_MIG_MAGIC, LVMM_MIG_DONE + 1, 0, LVMM_STREAM_VERSION, 0 },
		{ LVMM_MIG_MAGIC, 0, 0, LVMM_STREAM_VERSION, 0 },
		{ LVMM_MIG_MAGIC, LVMM_MIG_READY, 0, LVMM_STREAM_VERSION, 0 },
	};
	struct lvmm_vm *vm;
	struct vthread t;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, 256, 16, 0);
	for (size_t k = 0; k < ARRAY_SIZE(garbage); k++) {
		struct nl_migrated *res;
		struct fake_dest f;
		struct mig m;

		fake_init(&f, FAKE_GARBAGE);
		f.garbage = garbage[k];
		mig_to_fake(self->c, &m, &f, vm->h.id);
		res = mig_wait(&m);
		fake_join(&f);
		EXPECT_EQ(LVMM_MIGRATE_STAYED, res->outcome) TH_LOG("answer %zu", k);
		EXPECT_EQ(EPROTO, res->error)
			TH_LOG("answer %zu: %s", k, strerror(res->error));
		expect_sane(res);
		free(f.buf);
	}
	expect_intact(self->c, vm, &t, false);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * The destination takes the whole stream and refuses at the end: the
 * source stays, running or paused as it was.  The stream it sent is
 * whole: pass 1 as MEMORY, the later passes as PAGES, RUNSTATE, an END
 * that matches.
 */
TEST_F_TIMEOUT(mig, destination_refuses_at_the_end, 120)
{
	REQUIRE_MIGRATE();
	for (int paused = 0; paused < 2; paused++) {
		struct nl_migrated *res;
		struct fake_dest f;
		struct lvmm_vm *vm;
		struct vthread t;
		struct mig m;

		vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
		if (paused)
			ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_PAUSE,
					       vm->h.id));
		fake_init(&f, FAKE_REFUSE_END);
		f.err = ENOSPC;
		f.pages_seen = &t.quiet;
		mig_to_fake(self->c, &m, &f, vm->h.id);
		res = mig_wait_log(&m);
		fake_join(&f);
		ASSERT_TRUE(f.got_end);
		expect_stayed(res, ECONNREFUSED);
		EXPECT_EQ(ENOSPC, res->peer_error);
		expect_sane(res);
		EXPECT_EQ(f.len, res->sent) TH_LOG("sent is not what came");
		/* Paused, its memory does not change: sent once. */
		check_stream(f.buf, f.len, 2, 1,
			     paused ? LVMM_RUNSTATE_PAUSED : 0, !paused, false);
		expect_intact(self->c, vm, &t, paused);
		free(f.buf);
		vm_free(vm);
	}
	EXPECT_NO_VM_LEFT();
}

/* Writes guest memory through the VMM's mapping when told to. */
struct writer {
	volatile u64 *p;
	pthread_t thread;
	volatile bool go, done;
};

static void *writer_fn(void *arg)
{
	struct writer *w = arg;

	while (!w->go)
		usleep(1000);
	*w->p = 0x5a5a5a5a5a5a5a5aULL;
	w->done = true;
	return NULL;
}

/*
 * The destination takes the whole stream and then says nothing: the
 * frozen source waits out the deadline of its frozen phase (10 s) and
 * runs on.  Meanwhile nothing may change what was sent: vCPU ioctls that
 * change state fail with EBUSY, and a write of the VMM to guest memory
 * waits for the outcome -- that thread alone: the VMM's others go on,
 * mapping memory and starting threads.
 */
TEST_F_TIMEOUT(mig, destination_silent_at_the_end, 120)
{
	struct lvmm_vcpu_events ev;
	struct lvmm_debugregs dr;
	struct nl_migrated *res;
	struct lvmm_vcpu *idle;
	struct lvmm_sregs sregs;
	struct lvmm_regs regs;
	struct fake_dest f;
	struct lvmm_vm *vm;
	struct vthread t;
	struct writer w = {};
	struct mig m;
	u64 t0, ms;
	void *map;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
	idle = vm_vcpu_add_raw(vm, 1);		/* never runs */
	w.p = addr_gva2hva(vm, vm_alloc(vm, SZ_4K));
	ASSERT_EQ(0, pthread_create(&w.thread, NULL, writer_fn, &w));
	fake_init(&f, FAKE_SILENT_AT_END);
	f.pages_seen = &t.quiet;
	mig_to_fake(self->c, &m, &f, vm->h.id);
	ASSERT_TRUE(wait_for(f.got_end || f.done, MIGRATE_MS));
	ASSERT_TRUE(f.got_end);

	/* Frozen: what was sent stays as it was. */
	EXPECT_EQ(LVMM_VM_STATE_PAUSED, vm_state(self->c, vm->h.id));
	ASSERT_EQ(0, __vcpu_ioctl(idle, LVMM_GET_REGS, &regs));
	EXPECT_EQ(-EBUSY, __vcpu_ioctl(idle, LVMM_SET_REGS, &regs));
	ASSERT_EQ(0, __vcpu_ioctl(idle, LVMM_GET_SREGS, &sregs));
	EXPECT_EQ(-EBUSY, __vcpu_ioctl(idle, LVMM_SET_SREGS, &sregs));
	ASSERT_EQ(0, __vcpu_get_events(idle, &ev));
	EXPECT_EQ(-EBUSY, __vcpu_set_events(idle, &ev));
	ASSERT_EQ(0, __vcpu_get_debugregs(idle, &dr));
	EXPECT_EQ(-EBUSY, __vcpu_set_debugregs(idle, &dr));
	EXPECT_EQ(-EBUSY, __vcpu_ioctl(idle, LVMM_NMI, NULL));
	w.go = true;
	usleep(300000);
	EXPECT_FALSE(w.done) TH_LOG("the VMM wrote guest memory while frozen");
	/* The VMM's other threads are not held up by the one that waits. */
	t0 = now_ns();
	map = mmap(NULL, 16 * SZ_4K, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	munmap(map, 16 * SZ_4K);
	ms = (now_ns() - t0) / 1000000;
	EXPECT_GT(1000, ms)
		TH_LOG("mmap() waited %llu ms behind the VMM's write to frozen guest memory",
		       (unsigned long long)ms);

	res = mig_wait_log(&m);
	expect_stayed(res, ETIMEDOUT);
	expect_sane(res);
	EXPECT_LE(9500000000ULL, now_ns() - m.start_ns);
	/* The outcome is known: the write goes through, the ioctls too. */
	EXPECT_TRUE(wait_for(w.done, 5000)) TH_LOG("the VMM's write still waits");
	if (w.done)
		pthread_join(w.thread, NULL);
	EXPECT_EQ(0x5a5a5a5a5a5a5a5aULL, *w.p);
	EXPECT_EQ(0, __vcpu_ioctl(idle, LVMM_SET_REGS, &regs));
	fake_join(&f);
	expect_intact(self->c, vm, &t, false);
	free(f.buf);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * GO goes out and DONE never comes -- the destination hangs up, says
 * nothing for the source's 10 s, or refuses after all (its VM was
 * destroyed before GO came): the source keeps the VM paused (outcome
 * unknown) until the operator says.  Once GO is out, vm-migrate-cancel
 * is too late (EBUSY).
 */
TEST_F_TIMEOUT(mig, go_without_done, 120)
{
	REQUIRE_MIGRATE();
	for (int how = 0; how < 3; how++) {
		bool silent = how == 1, refuses = how == 2;
		struct nl_migrated *res;
		struct fake_dest f;
		struct lvmm_vm *vm;
		struct vthread t;
		struct nl_vm v;
		struct mig m;
		u64 w;

		vm = touch_vm(&t, FAIL_PAGES, FAIL_HOT, 0);
		fake_init(&f, FAKE_NO_DONE);
		f.pages_seen = &t.quiet;
		if (refuses)
			f.refuse_go = ENOENT;
		mig_to_fake(self->c, &m, &f, vm->h.id);
		ASSERT_TRUE(wait_for(f.got_go || f.done, MIGRATE_MS));
		ASSERT_TRUE(f.got_go) TH_LOG("no GO after READY");
		EXPECT_EQ(LVMM_MIG_MAGIC, f.go.magic);
		EXPECT_EQ(LVMM_MIG_GO, f.go.type);
		EXPECT_EQ(0, f.go.error);
		EXPECT_EQ(LVMM_STREAM_VERSION, f.go.version);
		EXPECT_EQ(0, f.go.features);
		/* Stopped for the handover, and too late to cancel. */
		EXPECT_EQ(LVMM_VM_STATE_PAUSED, vm_state(self->c, vm->h.id));
		EXPECT_EQ(-EBUSY, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL,
					    vm->h.id));
		EXPECT_NE(0, self->c->ext[0])
			TH_LOG("EBUSY without an extack message");
		w = touch_of(vm)->written;
		if (!silent)
			fake_join(&f);	/* hangs up without DONE, or refuses */

		res = mig_wait_log(&m);
		if (silent)
			fake_join(&f);
		EXPECT_EQ(LVMM_MIGRATE_UNKNOWN, res->outcome);
		EXPECT_EQ(silent ? ETIMEDOUT : refuses ? ECONNREFUSED : ECONNRESET,
			  res->error) TH_LOG("%s", strerror(res->error));
		EXPECT_EQ(refuses ? ENOENT : 0, res->peer_error);
		expect_sane(res);
		if (silent) {
			EXPECT_LE(10000000000ULL, res->downtime_ns);
			EXPECT_GE(15000000000ULL, res->downtime_ns);
		}
		check_stream(f.buf, f.len, 2, 1, 0, true, false);
		/* Kept, paused, its vCPU parked in RUN; no migration runs. */
		usleep(200000);
		EXPECT_EQ(w, touch_of(vm)->written) TH_LOG("the VM ran on after GO");
		EXPECT_EQ(-ENOENT, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL,
					     vm->h.id));
		/* vm-get says why it is paused ... */
		ASSERT_EQ(0, nl_vm_get(self->c, vm->h.id, NULL, &v));
		EXPECT_TRUE(v.has_mig_outcome);
		EXPECT_EQ(LVMM_MIGRATE_UNKNOWN, v.mig_outcome);
		/* ... until the operator resumes it: all there. */
		expect_intact(self->c, vm, &t, true);
		ASSERT_EQ(0, nl_vm_get(self->c, vm->h.id, NULL, &v));
		EXPECT_FALSE(v.has_mig_outcome);
		free(f.buf);
		vm_free(vm);
	}
	EXPECT_NO_VM_LEFT();
}

/* ---- a guest that dirties memory faster than the link ---------------- */

#define DIRTY_PAGES	512		/* 2 MiB, every page rewritten */
#define DIRTY_DOWNTIME	100		/* ms */

/*
 * The guest rewrites its pages with a delay after each that the host
 * picks so that one nested page fault per page (what a pass of the
 * migration costs it) slows it to no less than a third: then the link is
 * made three times slower than the guest dirties with logging on, and
 * its pages so many that a pass takes ~0.4 s, four times the downtime.
 * Without help it never converges; at 1 % of the CPU (auto-converge's
 * last step) it dirties a tenth of what the link takes in a pass.
 */
struct dirtier {
	u64 r0, rlog;		/* pages/s it writes: logging off, on */
	u64 delay, hot, bw;	/* its delay, pages; the link's bytes/s */
};

/* Pages per second the guest writes, over @ms, with the log on or off. */
static u64 touch_rate(struct lvmm_vm *vm, u64 ms, bool log)
{
	volatile typeof(touch) *tc = touch_of(vm);
	u64 bm[DIRTY_PAGES / 64], w0, t0, n;

	if (log)
		vm_set_memslot_flags(vm, TOUCH_SLOT, LVMM_MEMSLOT_LOG_DIRTY);
	w0 = tc->written;
	t0 = now_ns();
	while (now_ns() < t0 + ms * 1000000) {
		usleep(log ? 20000 : 50000);
		if (!log)
			continue;
		/* Protect them again, as a pass does. */
		vm_get_dirty_log(vm, TOUCH_SLOT, 0, DIRTY_PAGES, bm);
		vm_clear_dirty_log(vm, TOUCH_SLOT, 0, DIRTY_PAGES, bm);
	}
	n = tc->written - w0;
	t0 = now_ns() - t0;
	if (log)
		vm_set_memslot_flags(vm, TOUCH_SLOT, 0);
	return n * 1000000000ULL / t0;
}

static struct lvmm_vm *__dirtier_vm(struct __test_metadata *_metadata,
				    struct vthread *t, struct dirtier *d)
{
	struct lvmm_vm *vm = touch_vm(t, DIRTY_PAGES, DIRTY_PAGES, 0);
	volatile typeof(touch) *tc = touch_of(vm);

	memset(d, 0, sizeof(*d));
	for (d->delay = 1000; ; d->delay *= 4) {
		tc->delay = d->delay;
		usleep(20000);
		d->r0 = touch_rate(vm, 300, false);
		d->rlog = touch_rate(vm, 300, true);
		TH_LOG("delay %llu: %llu pages/s, %llu with logging",
		       (unsigned long long)d->delay,
		       (unsigned long long)d->r0, (unsigned long long)d->rlog);
		if (d->r0 <= 3 * d->rlog && d->rlog * 2 / 15 <= DIRTY_PAGES)
			break;
		if (d->delay > 10000000)
			break;
	}
	d->hot = MAX(MIN(d->rlog * 2 / 15, DIRTY_PAGES), 32);
	d->bw = d->rlog * SZ_4K / 3;
	if (d->bw < LVMM_MIGRATE_MIN_BANDWIDTH)
		skip_test("the guest writes too slowly to outrun a link of 1 MB/s");
	/*
	 * The pages past the new end were rewritten too: out of the
	 * checks of touch_diffs(), which wants them from round 1.
	 */
	tc->pages = d->hot;
	tc->hot = d->hot;
	TH_LOG("the guest rewrites %llu pages; the link takes %llu KiB/s",
	       (unsigned long long)d->hot, (unsigned long long)d->bw / 1024);
	return vm;
}

#define dirtier_vm(t, d)	__dirtier_vm(_metadata, t, d)

/*
 * No convergence: with --max-iterations 2 and no auto-converge the
 * migration gives up (ETIME) and the source stays.
 */
TEST_F_TIMEOUT(mig, no_convergence, 120)
{
	struct nl_migrated *res;
	struct nl_mig_args a;
	struct dirtier dr;
	struct lvmm_vm *vm;
	struct vthread t;
	struct dest d;
	struct mig m;

	REQUIRE_MIGRATE();
	vm = dirtier_vm(&t, &dr);
	a = (struct nl_mig_args){ .downtime_ms = DIRTY_DOWNTIME,
				  .max_bandwidth = dr.bw, .max_iter = 2 };
	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-etime", &a);
	res = mig_wait_log(&m);
	expect_stayed(res, ETIME);
	EXPECT_EQ(2, res->iterations);
	EXPECT_EQ(0, res->max_throttle);
	expect_sane(res);
	EXPECT_EQ(-ECONNRESET, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	EXPECT_FALSE(vm_listed(self->c, "mig-etime"));
	expect_intact(self->c, vm, &t, false);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * The same guest and link with auto-converge: the guest is slowed pass
 * after pass until what is left fits the downtime, and it moves.  On
 * the destination it runs at full speed again.
 */
TEST_F_TIMEOUT(mig, auto_converge, 120)
{
	struct nl_migrated *res;
	struct nl_mig_args a;
	struct lvmm_vm *vm, *dvm;
	struct vthread t, dt;
	struct dirtier dr;
	struct dest d;
	struct mig m;
	u64 first = 0, rate;

	REQUIRE_MIGRATE();
	vm = dirtier_vm(&t, &dr);
	a = (struct nl_mig_args){ .downtime_ms = DIRTY_DOWNTIME,
				  .max_bandwidth = dr.bw,
				  .auto_converge = true };
	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-converged", &a);
	res = mig_wait_log(&m);
	ASSERT_EQ(LVMM_MIGRATE_MOVED, res->outcome)
		TH_LOG("%s", strerror(res->error));
	expect_sane(res);
	EXPECT_LT(0, res->max_throttle) TH_LOG("it converged without a throttle");
	EXPECT_LE(3, res->iterations);
	vthread_join(&t, END_MIGRATED);
	ASSERT_LE(0, dest_join(&d)) TH_LOG("%s", strerror(-d.ret));
	dvm = vm_adopt(&d, vm);
	EXPECT_EQ(0, memory_diffs(vm, dvm, &first))
		TH_LOG("the first page that differs is at GPA 0x%llx",
		       (unsigned long long)first);
	vthread_start(&dt, dvm->vcpus[0], 0);
	rate = touch_rate(dvm, 300, false);
	EXPECT_LE(dr.r0 / 3, rate)
		TH_LOG("%llu pages/s on the destination, %llu before: still throttled?",
		       (unsigned long long)rate, (unsigned long long)dr.r0);
	touch_finish(dvm, &dt);
	vm_free(dvm);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* A throttled guest gets its speed back when the migration is cancelled. */
TEST_F_TIMEOUT(mig, throttle_lifted_on_cancel, 120)
{
	struct nl_migrated *res;
	struct nl_mig_args a;
	struct dirtier dr;
	struct lvmm_vm *vm;
	struct vthread t;
	struct dest d;
	struct mig m;
	struct nl_vm e;
	u32 throttle = 0;
	u64 rate;

	REQUIRE_MIGRATE();
	vm = dirtier_vm(&t, &dr);
	a = (struct nl_mig_args){ .downtime_ms = DIRTY_DOWNTIME,
				  .max_bandwidth = dr.bw,
				  .auto_converge = true };
	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-throttled", &a);
	/* At 60 %, the guest gets 40 % of a CPU: less than it had. */
	while (throttle < 60 && event_next(m.ev, vm->h.id, &e)) {
		ASSERT_NE(LVMM_EVENT_MIGRATED, e.event)
			TH_LOG("it ended before the throttle reached 60 %%: %s",
			       strerror(e.mig_error));
		if (e.event == LVMM_EVENT_MIGRATE_PROGRESS)
			throttle = e.mig_throttle;
	}
	ASSERT_LE(60, throttle);
	/* Slowed now. */
	rate = touch_rate(vm, 300, false);
	EXPECT_GT(dr.r0 * 3 / 4, rate) TH_LOG("%llu pages/s at a throttle of %u %%",
					     (unsigned long long)rate, throttle);
	ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL, vm->h.id));
	res = mig_wait_log(&m);
	expect_stayed(res, ECANCELED);
	EXPECT_EQ(-ECONNRESET, dest_join(&d));
	rate = touch_rate(vm, 300, false);
	EXPECT_LE(dr.r0 / 2, rate)
		TH_LOG("%llu pages/s after the cancel, %llu before the migration",
		       (unsigned long long)rate, (unsigned long long)dr.r0);
	expect_intact(self->c, vm, &t, false);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* ---- requests that make no sense ------------------------------------- */

/*
 * vm-migrate of VM @id with the u32 attribute @attr = @val, over a
 * connection of its own: the request's result.  A migration it started
 * by mistake is cancelled, and so cannot change what comes after.
 */
static int migrate_opt(struct nlc *c, u32 id, int attr, u64 val)
{
	struct nl_msg *msg = nlc_msg(c, LVMM_CMD_VM_MIGRATE, 0);
	char ext[sizeof(c->ext)];
	struct nl_migrated res;
	struct nl_events *ev;
	int s, fd, r;

	tcp_pair(&s, &fd);
	ev = events_open();
	nla_put_u32(msg, LVMM_A_VM_ID, id);
	nla_put_u32(msg, LVMM_A_VM_MIGRATE_FD, s);
	if (attr == LVMM_A_VM_MIGRATE_MAX_BANDWIDTH)
		nla_put_u64(msg, attr, val);
	else
		nla_put_u32(msg, attr, val);
	r = nlc_exec(c, msg, NULL, NULL);
	memcpy(ext, c->ext, sizeof(ext));
	if (!r) {
		nl_vm_cmd(c, LVMM_CMD_VM_MIGRATE_CANCEL, id);
		event_migrated(ev, id, &res, MIGRATE_MS);
	}
	memcpy(c->ext, ext, sizeof(ext));
	events_close(ev);
	close(s);
	close(fd);
	return r;
}

/*
 * vm-migrate's fd must be a blocking, connected stream socket of the
 * sender; its options in range; the VM one that exists.  Refused with
 * an extack message, nothing started, the socket untouched.
 */
TEST_F_TIMEOUT(mig, bad_requests, 60)
{
	struct sockaddr_in a;
	struct nl_saved saved;
	socklen_t alen;
	struct lvmm_vm *vm;
	struct nl_msg *msg;
	int s, fd, p[2], sv[2], x, mfd;
	u32 id;
	char c;

	REQUIRE_MIGRATE();
	vm = vm_create_bare("mig-args");
	vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	memset(addr_gpa2hva(vm, 0x5000), 0x66, SZ_4K);
	id = vm->h.id;
	tcp_pair(&s, &fd);

	/* No fd; not an fd of the sender. */
	msg = nlc_msg(self->c, LVMM_CMD_VM_MIGRATE, 0);
	nla_put_u32(msg, LVMM_A_VM_ID, id);
	EXPECT_EQ(-EINVAL, nlc_exec(self->c, msg, NULL, NULL));
	EXPECT_NE(0, self->c->ext[0]) TH_LOG("EINVAL without an extack message");
	EXPECT_EQ(-EBADF, nl_vm_migrate(self->c, id, 1000000, NULL));
	EXPECT_NE(0, self->c->ext[0]);

	/* Not a stream socket: a file, a pipe, datagrams, packets. */
	mfd = memfd_create("mig", MFD_CLOEXEC);
	ASSERT_LE(0, mfd);
	EXPECT_EQ(-EINVAL, nl_vm_migrate(self->c, id, mfd, NULL));
	EXPECT_NE(0, self->c->ext[0]);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	EXPECT_EQ(-EINVAL, nl_vm_migrate(self->c, id, p[1], NULL));
	EXPECT_NE(0, self->c->ext[0]);
	EXPECT_EQ(-EINVAL, nl_vm_migrate(self->c, id, p[0], NULL));
	x = dgram_socket();
	EXPECT_EQ(-EINVAL, nl_vm_migrate(self->c, id, x, NULL));
	EXPECT_NE(0, self->c->ext[0]);
	close(x);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv));
	EXPECT_EQ(-EINVAL, nl_vm_migrate(self->c, id, sv[0], NULL));
	close(sv[0]);
	close(sv[1]);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
	EXPECT_EQ(-EINVAL, nl_vm_migrate(self->c, id, sv[0], NULL));
	close(sv[0]);
	close(sv[1]);

	/* A stream socket, but not connected, listening, or non-blocking. */
	x = stream_socket();
	EXPECT_EQ(-ENOTCONN, nl_vm_migrate(self->c, id, x, NULL));
	EXPECT_NE(0, self->c->ext[0]);
	bind_any(x, &a, &alen);
	ASSERT_EQ(0, listen(x, 1));
	EXPECT_EQ(-ENOTCONN, nl_vm_migrate(self->c, id, x, NULL));
	close(x);
	ASSERT_EQ(0, fcntl(s, F_SETFL, O_NONBLOCK));
	EXPECT_EQ(-EINVAL, nl_vm_migrate(self->c, id, s, NULL));
	EXPECT_NE(0, self->c->ext[0]);
	ASSERT_EQ(0, fcntl(s, F_SETFL, 0));

	/* Options out of range: the policy's ERANGE (api.rst, 14.2). */
	EXPECT_EQ(-ERANGE, migrate_opt(self->c, id,
				       LVMM_A_VM_MIGRATE_DOWNTIME_MS, 0));
	EXPECT_NE(0, self->c->ext[0]);
	EXPECT_EQ(-ERANGE, migrate_opt(self->c, id,
				       LVMM_A_VM_MIGRATE_DOWNTIME_MS,
				       LVMM_MIGRATE_DOWNTIME_MS_MAX + 1));
	EXPECT_NE(0, self->c->ext[0]);
	EXPECT_EQ(-ERANGE, migrate_opt(self->c, id,
				       LVMM_A_VM_MIGRATE_DOWNTIME_MS, ~0U));
	EXPECT_EQ(-ERANGE, migrate_opt(self->c, id,
				       LVMM_A_VM_MIGRATE_MAX_ITER, 0));
	EXPECT_NE(0, self->c->ext[0]);
	EXPECT_EQ(-ERANGE, migrate_opt(self->c, id,
				       LVMM_A_VM_MIGRATE_MAX_ITER,
				       LVMM_MIGRATE_MAX_ITER_MAX + 1));
	/* Slower than 1 MB/s is not a link to migrate over. */
	EXPECT_EQ(-EINVAL, migrate_opt(self->c, id,
				       LVMM_A_VM_MIGRATE_MAX_BANDWIDTH,
				       LVMM_MIGRATE_MIN_BANDWIDTH - 1));
	EXPECT_NE(0, self->c->ext[0]);
	/* Output attributes are not for requests. */
	EXPECT_EQ(-EINVAL, migrate_opt(self->c, id,
				       LVMM_A_VM_MIGRATE_OUTCOME, 1));

	/* The VM: none such, by id or name; neither; both. */
	EXPECT_EQ(-ENOENT, nl_vm_migrate(self->c, 0x7ffffff0, s, NULL));
	EXPECT_NE(0, self->c->ext[0]);
	msg = nlc_msg(self->c, LVMM_CMD_VM_MIGRATE, 0);
	nla_put_string(msg, LVMM_A_VM_NAME, "mig-no-such-vm");
	nla_put_u32(msg, LVMM_A_VM_MIGRATE_FD, s);
	EXPECT_EQ(-ENOENT, nlc_exec(self->c, msg, NULL, NULL));
	msg = nlc_msg(self->c, LVMM_CMD_VM_MIGRATE, 0);
	nla_put_u32(msg, LVMM_A_VM_MIGRATE_FD, s);
	EXPECT_EQ(-EINVAL, nlc_exec(self->c, msg, NULL, NULL));
	msg = nlc_msg(self->c, LVMM_CMD_VM_MIGRATE, 0);
	nla_put_u32(msg, LVMM_A_VM_ID, id);
	nla_put_string(msg, LVMM_A_VM_NAME, "mig-args");
	nla_put_u32(msg, LVMM_A_VM_MIGRATE_FD, s);
	EXPECT_EQ(-EINVAL, nlc_exec(self->c, msg, NULL, NULL));

	/* Cancel: none runs; no such VM. */
	EXPECT_EQ(-ENOENT, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL, id));
	EXPECT_NE(0, self->c->ext[0]);
	EXPECT_EQ(-ENOENT, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL,
				     0x7ffffff0));

	/* None of them started anything, or took the socket. */
	EXPECT_EQ(LVMM_VM_STATE_CREATED, vm_state(self->c, id));
	EXPECT_EQ(0, nl_vm_save_wait(self->c, id, mfd, false, &saved));
	EXPECT_EQ(0, saved.error);
	ASSERT_EQ(1, send(s, "x", 1, MSG_NOSIGNAL));
	ASSERT_EQ(1, recv(fd, &c, 1, 0));
	EXPECT_EQ('x', c);
	close(s);
	close(fd);
	close(mfd);
	close(p[0]);
	close(p[1]);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/*
 * While a migration runs: a second one, a save, slot and vCPU changes and
 * the VMM's dirty log are refused with EBUSY; the guest runs on.
 */
TEST_F_TIMEOUT(mig, one_at_a_time, 120)
{
	struct lvmm_create_vcpu cv = { .id = 1 };
	struct nl_migrated *res;
	struct fake_dest f;
	struct lvmm_vm *vm;
	struct vthread t;
	struct mig m;
	int s2, fd2, mfd;
	u64 bm[4] = {}, w;

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, 256, 16, 0);
	fake_init(&f, FAKE_SILENT);
	mig_to_fake(self->c, &m, &f, vm->h.id);
	/* The header is out: the thread is logging. */
	ASSERT_TRUE(wait_for(f.got_header, 10000));

	tcp_pair(&s2, &fd2);
	EXPECT_EQ(-EBUSY, nl_vm_migrate(self->c, vm->h.id, s2, NULL));
	EXPECT_NE(0, self->c->ext[0]) TH_LOG("EBUSY without an extack message");
	mfd = memfd_create("mig", MFD_CLOEXEC);
	ASSERT_LE(0, mfd);
	EXPECT_EQ(-EBUSY, nl_vm_save(self->c, vm->h.id, mfd, false));
	EXPECT_NE(0, self->c->ext[0]);
	EXPECT_EQ(0, lseek(mfd, 0, SEEK_END));
	EXPECT_EQ(-EBUSY, __vm_set_memslot(vm, 9, 0, 3 * SZ_1G, 16 * SZ_4K,
					   NULL));
	EXPECT_EQ(-EBUSY, __vm_set_memslot(vm, TOUCH_SLOT, 0, TOUCH_GPA, 0,
					   NULL));
	EXPECT_EQ(-1, ioctl(vm->fd, LVMM_CREATE_VCPU, &cv));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-EBUSY, __vm_set_memslot_flags(vm, TOUCH_SLOT,
						 LVMM_MEMSLOT_LOG_DIRTY));
	EXPECT_EQ(-EBUSY, __vm_get_dirty_log(vm, TOUCH_SLOT, 0, 64, bm));
	EXPECT_EQ(-EBUSY, __vm_clear_dirty_log(vm, TOUCH_SLOT, 0, 64, bm));
	/* Pre-copy does not stop the guest. */
	w = touch_of(vm)->written;
	EXPECT_TRUE(wait_vcpu(&t, touch_of(vm)->written > w + 64, 10000));
	EXPECT_EQ(LVMM_VM_STATE_RUNNING, vm_state(self->c, vm->h.id));

	/* A cancel ends the wait for the silent destination at once. */
	ASSERT_EQ(0, nl_vm_cmd(self->c, LVMM_CMD_VM_MIGRATE_CANCEL, vm->h.id));
	res = mig_wait_log(&m);
	fake_join(&f);
	expect_stayed(res, ECANCELED);
	EXPECT_GT(5000000000ULL, res->total_ns);
	expect_intact(self->c, vm, &t, false);
	close(s2);
	close(fd2);
	close(mfd);
	free(f.buf);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

struct drain {
	int fd;
	pthread_t thread;
	size_t len;
};

static void *drain_fn(void *arg)
{
	struct drain *d = arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(d->fd, buf, sizeof(buf))) > 0)
		d->len += n;
	return NULL;
}

/*
 * vm-migrate while a save of the VM runs, or while the VMM logs one of
 * its slots: EBUSY; once that ends, it starts.
 */
TEST_F_TIMEOUT(mig, busy_with_save_or_log, 120)
{
	struct nl_migrated *res;
	struct nl_events *ev;
	struct fake_dest f;
	struct nl_saved sv;
	struct lvmm_vm *vm;
	struct vthread t;
	struct drain dr = {};
	struct mig m;
	int s, fd, p[2];

	REQUIRE_MIGRATE();
	vm = touch_vm(&t, 256, 16, 0);

	/* A save into a pipe nobody reads yet holds the VM. */
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ev = events_open();
	ASSERT_EQ(0, nl_vm_save(self->c, vm->h.id, p[1], false));
	close(p[1]);
	ASSERT_TRUE(wait_for(vm_state(self->c, vm->h.id) == LVMM_VM_STATE_PAUSED,
			     5000));
	tcp_pair(&s, &fd);
	EXPECT_EQ(-EBUSY, nl_vm_migrate(self->c, vm->h.id, s, NULL));
	EXPECT_NE(0, self->c->ext[0]) TH_LOG("EBUSY without an extack message");
	dr.fd = p[0];
	ASSERT_EQ(0, pthread_create(&dr.thread, NULL, drain_fn, &dr));
	ASSERT_TRUE(event_saved(ev, vm->h.id, &sv));
	EXPECT_EQ(0, sv.error);
	pthread_join(dr.thread, NULL);
	close(p[0]);
	events_close(ev);

	/* The VMM logs a slot: the log would be the migration's. */
	vm_set_memslot_flags(vm, TOUCH_SLOT, LVMM_MEMSLOT_LOG_DIRTY);
	EXPECT_EQ(-EBUSY, nl_vm_migrate(self->c, vm->h.id, s, NULL));
	EXPECT_NE(0, self->c->ext[0]);
	vm_set_memslot_flags(vm, TOUCH_SLOT, 0);

	/* Neither in the way any more. */
	fake_init(&f, FAKE_REFUSE_END);
	f.err = EAGAIN;
	fake_run(&f, fd);
	mig_start(self->c, &m, vm->h.id, s, NULL);
	res = mig_wait(&m);
	fake_join(&f);
	expect_stayed(res, ECONNREFUSED);
	EXPECT_EQ(EAGAIN, res->peer_error);
	expect_intact(self->c, vm, &t, false);
	free(f.buf);
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* ---- who may migrate ------------------------------------------------- */

static void nobody_child(u32 root_vm, int dev)
{
	struct lvmm_create_vm cr = { .name = "mig-nobody" };
	struct nl_migrated res;
	struct nl_events *ev;
	struct nlc *c;
	struct dest d;
	struct nl_vm v;
	int s, fd, vmfd, r;

	drop_to_nobody();
	c = nlc_open();
	CHILD_CHECK(c, "no lvmm family");
	tcp_pair(&s, &fd);

	/* Another user's VM: neither migrated nor its migration cancelled. */
	r = nl_vm_migrate(c, root_vm, s, NULL);
	CHILD_CHECK(r == -EPERM, "vm-migrate of root's VM: %s", strerror(-r));
	CHILD_CHECK(c->ext[0], "EPERM without an extack message");
	r = nl_vm_cmd(c, LVMM_CMD_VM_MIGRATE_CANCEL, root_vm);
	CHILD_CHECK(r == -EPERM, "vm-migrate-cancel of root's VM: %s",
		    strerror(-r));

	/* One's own: it moves, and the copy is one's own too. */
	vmfd = ioctl(dev, LVMM_CREATE_VM, &cr);
	CHILD_CHECK(vmfd >= 0, "LVMM_CREATE_VM: %s", strerror(errno));
	dest_start_dev(&d, fd, "mig-nobody-dst", dev);
	ev = events_open();
	r = nl_vm_migrate(c, cr.id, s, NULL);
	CHILD_CHECK(r == 0, "vm-migrate of its own VM: %s (%s)", strerror(-r),
		    c->ext);
	CHILD_CHECK(event_migrated(ev, cr.id, &res, MIGRATE_MS),
		    "no migrated event");
	CHILD_CHECK(res.outcome == LVMM_MIGRATE_MOVED, "%s: %s",
		    outcome_str(res.outcome), strerror(res.error));
	r = dest_join(&d);
	CHILD_CHECK(r >= 0, "the destination: %s", strerror(-r));
	r = nl_vm_get(c, d.req.id, NULL, &v);
	CHILD_CHECK(!r && v.owner_uid == 65534, "the copy's owner: %u",
		    v.owner_uid);
	_exit(0);
}

TEST_F_TIMEOUT(mig, permission, 60)
{
	struct nl_migrated *res;
	struct lvmm_vm *vm;
	struct dest d;
	struct mig m;
	int status, dev;
	pid_t pid;

	REQUIRE_MIGRATE();
	TEST_REQUIRE(geteuid() == 0);
	vm = vm_create_bare("mig-root-owned");
	vm_add_memslot(vm, 0, 0, 0, SZ_2M);
	memset(addr_gpa2hva(vm, 0x5000), 0x66, SZ_4K);
	dev = open_lvmm_dev();
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		nobody_child(vm->h.id, dev);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the unprivileged child failed (status 0x%x)", status);
	close(dev);
	/* Untouched; and CAP_NET_ADMIN may migrate it. */
	EXPECT_EQ(LVMM_VM_STATE_CREATED, vm_state(self->c, vm->h.id));
	EXPECT_FALSE(vm_listed(self->c, "mig-nobody-dst"));
	mig_to_dest(self->c, &m, &d, vm->h.id, "mig-root-dst", NULL);
	res = mig_wait(&m);
	EXPECT_EQ(LVMM_MIGRATE_MOVED, res->outcome) TH_LOG("%s", strerror(res->error));
	ASSERT_LE(0, dest_join(&d));
	{
		struct lvmm_vm *dvm = vm_adopt(&d, vm);

		EXPECT_EQ(0x66, *(u8 *)addr_gpa2hva(dvm, 0x5000));
		vm_free(dvm);
	}
	vm_free(vm);
	EXPECT_NO_VM_LEFT();
}

/* ---- hostile sources: streams sent to LVMM_RESTORE_INCOMING ---------- */

/*
 * The tests below take apart the migration stream of the tiny VM
 * (stream_bytes.h), recorded while vCPU 0 ran (vCPU 1 never runs).
 */

/* How a fake source answers READY. */
enum {
	READY_GO,		/* GO, as a source does */
	READY_CLOSE,		/* hangs up */
	READY_BAD_MAGIC,	/* GO with the wrong magic */
	READY_NO_VERSION,	/* GO with version 0 */
	READY_NEWER,		/* GO of a newer version, with features */
	READY_REFUSE,		/* REFUSE */
	READY_DONE,		/* a message only a destination sends */
	READY_DESTROY,		/* vm-destroy of the VM, then GO */
};

struct replay {
	int ret;		/* the destination's: a VM fd or -errno */
	struct lvmm_restore_vm req;
	int accept, ready, done, refuse, other;
	int refuse_err;		/* of the last REFUSE */
	bool listed_at_ready;	/* vm-get by name between READY and GO */
	u32 state_at_ready;
	bool destroyed;		/* READY_DESTROY: vm-destroy worked */
};

/*
 * Be a migration's source: send the @len bytes at @buf to a destination
 * in LVMM_RESTORE_INCOMING under @name, over TCP (or a UNIX stream socket
 * pair, @unix_pair), read its messages, answer READY as @ready says, and
 * wait for its end.  A stream without END ends with our side shut down,
 * as a source cut short.
 */
static void replay(struct nlc *c, const u8 *buf, size_t len, const char *name,
		   int ready, bool unix_pair, struct replay *out)
{
	struct rec_ref *recs = calloc(MAX_RECS, sizeof(*recs));
	struct lvmm_mig_msg mm;
	bool complete;
	struct dest d;
	int s, fd, sv[2];

	TEST_ASSERT(recs, "out of memory");
	memset(out, 0, sizeof(*out));
	if (unix_pair) {
		TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					sv), "socketpair");
		s = sv[0];
		fd = sv[1];
	} else {
		tcp_pair(&s, &fd);
	}
	sock_timeouts(s, 40);
	dest_start(&d, fd, name);
	dest_wait_blocked(&d);
	complete = rec_find(recs, stream_index(buf, len, recs, MAX_RECS),
			    LVMM_REC_END, 0) >= 0;
	free(recs);
	/* The destination may give up early: then the send fails. */
	send_all(s, buf, len);
	if (!complete)
		shutdown(s, SHUT_WR);
	while (msg_recv(s, &mm) > 0) {
		struct lvmm_mig_msg go = {
			.magic = LVMM_MIG_MAGIC, .type = LVMM_MIG_GO,
			.version = LVMM_STREAM_VERSION,
		};
		struct nl_vm v;

		/* This lvmm's messages: its version, no features. */
		if (mm.magic != LVMM_MIG_MAGIC ||
		    mm.version != LVMM_STREAM_VERSION || mm.features) {
			out->other++;
			continue;
		}
		switch (mm.type) {
		case LVMM_MIG_ACCEPT:
			out->accept++;
			continue;
		case LVMM_MIG_REFUSE:
			out->refuse++;
			out->refuse_err = mm.error;
			continue;
		case LVMM_MIG_DONE:
			out->done++;
			continue;
		case LVMM_MIG_READY:
			break;
		default:
			out->other++;
			continue;
		}
		out->ready++;
		if (c && name && !nl_vm_get(c, 0, name, &v)) {
			out->listed_at_ready = true;
			out->state_at_ready = v.state;
			if (ready == READY_DESTROY)
				out->destroyed = !nl_vm_cmd(c, LVMM_CMD_VM_DESTROY,
							    v.id);
		}
		switch (ready) {
		case READY_CLOSE:
			goto out;
		case READY_BAD_MAGIC:
			go.magic = ~LVMM_MIG_MAGIC;
			break;
		case READY_NO_VERSION:
			go.version = 0;
			break;
		case READY_NEWER:
			go.version = LVMM_STREAM_VERSION + 7;
			go.features = ~0ULL;
			break;
		case READY_REFUSE:
			go.type = LVMM_MIG_REFUSE;
			go.error = ECANCELED;
			break;
		case READY_DONE:
			go.type = LVMM_MIG_DONE;
			break;
		}
		send_all(s, &go, sizeof(go));
	}
out:
	close(s);
	out->ret = dest_join(&d);
	out->req = d.req;
}

FIXTURE(incoming) {
	struct nlc *c;
	u8 *buf;		/* a migration stream of the tiny VM */
	size_t len;
	struct rec_ref recs[MAX_RECS];
	int nr;
	u8 *work;		/* room for a changed copy */
	size_t cap;
	int nr_vms;		/* VMs listed before the test */
};

/*
 * Record a real migration of the tiny VM while it runs, with the pages
 * in the checksum if @sums: a fake destination takes the stream and
 * refuses at the end.  The stream becomes self->buf, indexed, with room
 * for a changed copy in self->work.
 */
static void __tiny_stream(struct __test_metadata *_metadata,
			  FIXTURE_DATA(incoming) *self, bool sums)
{
	struct nl_mig_args a = { .checksum = sums };
	struct nl_migrated *res;
	struct fake_dest f;
	struct lvmm_vm *vm;
	struct vthread t;
	struct mig m;

	vm = tiny_vm("mig-tiny");
	vthread_start(&t, vm->vcpus[0], TINY_PORT);
	ASSERT_TRUE(wait_vcpu(&t, t.nr_io > 100, 10000));
	fake_init(&f, FAKE_REFUSE_END);
	f.err = ENOSPC;
	f.poke = addr_gpa2hva(vm, 0x10000);
	mig_to_fake_args(self->c, &m, &f, vm->h.id, &a);
	res = mig_wait(&m);
	fake_join(&f);
	ASSERT_EQ(LVMM_MIGRATE_STAYED, res->outcome);
	ASSERT_EQ(ECONNREFUSED, res->error);
	ASSERT_TRUE(f.got_end);
	t.stop = true;
	vthread_join(&t, END_DONE);
	vm_free(vm);

	free(self->buf);
	free(self->work);
	self->buf = f.buf;
	self->len = f.len;
	self->nr = stream_index(self->buf, self->len, self->recs, MAX_RECS);
	check_stream(self->buf, self->len, 3, 2, 0, true, sums);
	self->cap = 2 * self->len + 4 * SZ_4K;
	self->work = malloc(self->cap);
	ASSERT_NE(NULL, self->work);
}

/*
 * The hostile-stream tests start from a stream whose checksum covers
 * everything (migrate-checksum), so that any byte changed is caught.
 */
FIXTURE_SETUP(incoming)
{
	self->buf = NULL;
	self->work = NULL;
	self->c = NULL;
	signal(SIGPIPE, SIG_IGN);
	if (!lvmm_dev_present() || !lvmm_cap(LVMM_CAP_MIGRATE))
		return;
	self->c = nlc_open();
	if (!self->c)
		return;
	__tiny_stream(_metadata, self, true);
	self->nr_vms = nl_vm_count(self->c);
}

FIXTURE_TEARDOWN(incoming)
{
	free(self->buf);
	free(self->work);
	nlc_close(self->c);
}

#define REQUIRE_INCOMING() do {						\
	REQUIRE_ONLY();							\
	cur_test = _metadata;						\
	TEST_REQUIRE(lvmm_dev_present());				\
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_MIGRATE));			\
	TEST_REQUIRE(self->c);						\
	ASSERT_NE(NULL, self->buf);					\
} while (0)

/* A fresh copy of the stream in self->work; its record @i. */
#define WORK_COPY()	memcpy(self->work, self->buf, self->len)
#define REC(i)		((u8 *)rec_data(self->work, &self->recs[i]))
#define REC_HDR(i)	((struct lvmm_rec *)(self->work + self->recs[i].off))

#define IN_NAME		"mig-in"

/*
 * Send @len bytes of self->work as a source would: the destination
 * refuses it with @err (and says so, @refused) and leaves nothing; or
 * (@err 0) takes it, and the VM is closed again.
 */
static void __expect_incoming(struct __test_metadata *_metadata,
			      FIXTURE_DATA(incoming) *self, size_t len,
			      int ready, int err, const char *what,
			      struct replay *o)
{
	replay(self->c, self->work, len, IN_NAME, ready, false, o);
	if (o->ret >= 0) {
		EXPECT_EQ(0, err) TH_LOG("%s: accepted, as VM %u", what,
					 o->req.id);
		close(o->ret);
	} else {
		EXPECT_EQ(-err, o->ret) TH_LOG("%s: %s, not %s", what,
					       strerror(-o->ret),
					       strerror(err));
	}
	EXPECT_EQ(0, o->other) TH_LOG("%s: a message that is none", what);
	EXPECT_FALSE(vm_listed(self->c, IN_NAME)) TH_LOG("%s: left listed", what);
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c))
		TH_LOG("%s: a VM left behind", what);
}

#define expect_incoming(len, ready, err, what, o)			\
	__expect_incoming(_metadata, self, len, ready, err, what, o)

/* Refused at once: REFUSE with the errno, no ACCEPT if @early. */
#define expect_refused(len, err, early, what) do {			\
	struct replay __o;						\
									\
	expect_incoming(len, READY_GO, err, what, &__o);		\
	EXPECT_EQ(early ? 0 : 1, __o.accept) TH_LOG("%s", what);	\
	EXPECT_EQ(0, __o.ready) TH_LOG("%s", what);			\
	EXPECT_EQ(1, __o.refuse) TH_LOG("%s", what);			\
	EXPECT_EQ(err, __o.refuse_err) TH_LOG("%s: REFUSE says %s",	\
					      what,			\
					      strerror(__o.refuse_err)); \
} while (0)

/*
 * The stream as the source sent it, replayed: ACCEPT, READY (the VM
 * listed, paused), GO, DONE, and the VM is whole.  Over TCP and over a
 * UNIX stream socket pair.
 */
TEST_F_TIMEOUT(incoming, valid_stream, 60)
{
	REQUIRE_INCOMING();
	for (int unix_pair = 0; unix_pair < 2; unix_pair++) {
		u8 blob[TINY_BLOB + 8], *m1;
		struct lvmm_vm *vm;
		struct vthread t;
		struct replay o;
		struct nl_vm v;
		u32 size = sizeof(blob);

		replay(self->c, self->buf, self->len, IN_NAME, READY_GO,
		       unix_pair, &o);
		ASSERT_LE(0, o.ret) TH_LOG("%s", strerror(-o.ret));
		EXPECT_EQ(1, o.accept);
		EXPECT_EQ(1, o.ready);
		EXPECT_EQ(1, o.done);
		EXPECT_EQ(0, o.refuse);
		EXPECT_TRUE(o.listed_at_ready);
		EXPECT_EQ(LVMM_VM_STATE_PAUSED, o.state_at_ready)
			TH_LOG("listed between READY and GO, and not frozen");
		EXPECT_STREQ(IN_NAME, o.req.name);
		EXPECT_EQ(2, o.req.nr_vcpus);
		vm = vm_from(o.ret, &o.req, NULL);
		ASSERT_EQ(0, nl_vm_get(self->c, vm->h.id, NULL, &v));
		EXPECT_NE(LVMM_VM_STATE_PAUSED, v.state);
		EXPECT_EQ(SZ_2M + TINY_SLOT1_SIZE + SZ_4K, v.mem_size);
		m1 = vm_map_slot(vm, 1, 0, TINY_SLOT1_GPA, TINY_SLOT1_SIZE);
		EXPECT_EQ(0x33, m1[4095]);
		EXPECT_EQ(0x44, m1[300 * SZ_4K + 99]);
		EXPECT_EQ(0, m1[300 * SZ_4K + 100]);
		EXPECT_EQ(0x55, m1[513 * SZ_4K + 4095]);
		ASSERT_EQ(0, __vm_get_vmm_state(vm, blob, &size));
		ASSERT_EQ(TINY_BLOB, size);
		for (int i = 0; i < TINY_BLOB; i++)
			ASSERT_EQ(i ^ 0x5a, blob[i]);
		/* And it runs. */
		vthread_start(&t, vm->vcpus[0], TINY_PORT);
		EXPECT_TRUE(wait_vcpu(&t, t.nr_io > 10, 10000));
		t.stop = true;
		vthread_join(&t, END_DONE);
		vm_free(vm);
	}
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
}

/* Corrupt bytes and fields: EBADMSG (EPROTONOSUPPORT for a version). */
TEST_F_TIMEOUT(incoming, corrupt, 60)
{
	struct lvmm_stream_mem mem;
	int i;

	REQUIRE_INCOMING();
	i = rec_find(self->recs, self->nr, LVMM_REC_MEMORY, 0);
	ASSERT_LE(0, i);

	WORK_COPY();
	REC(i)[sizeof(mem) + 10] ^= 0x01;	/* a byte of a page */
	expect_refused(self->len, EBADMSG, false, "a byte of a page");

	WORK_COPY();
	REC(0)[0] ^= 0x01;			/* the magic */
	expect_refused(self->len, EBADMSG, true, "the magic");

	WORK_COPY();
	((struct lvmm_stream_header *)REC(0))->version = LVMM_STREAM_VERSION + 1;
	stream_fix(self->work, self->len);
	expect_refused(self->len, EPROTONOSUPPORT, true, "a newer version");

	WORK_COPY();
	((struct lvmm_stream_mem *)REC(i))->slot = 9;
	stream_fix(self->work, self->len);
	expect_refused(self->len, EBADMSG, false, "a memory record of no slot");

	WORK_COPY();
	REC_HDR(i)->type = 99;
	stream_fix(self->work, self->len);
	expect_refused(self->len, EBADMSG, false, "a record of unknown type");

	WORK_COPY();
	((struct lvmm_stream_end *)REC(self->nr - 1))->nr_records++;
	expect_refused(self->len, EBADMSG, false, "END's record count");
}

/*
 * Without migrate-checksum, the default, END's checksum leaves the
 * guest's pages out (LVMM_STREAM_PAGES_UNSUMMED): a page changed on the
 * way arrives changed, as TCP would have let it through; any other byte
 * changed is still refused, the header's flag among them.
 */
TEST_F_TIMEOUT(incoming, pages_unsummed, 60)
{
	const u64 page0 = TINY_SLOT1_GPA;	/* holds 0x33 at 4095 */
	struct lvmm_stream_mem mem;
	struct lvmm_vm *vm;
	struct replay o;
	int i, last = -1;
	u8 *m1;

	REQUIRE_INCOMING();
	__tiny_stream(_metadata, self, false);
	ASSERT_TRUE(_metadata->passed);

	WORK_COPY();
	expect_incoming(self->len, READY_GO, 0, "the stream as sent", &o);
	EXPECT_EQ(1, o.done);

	/* The last copy of slot 1's first page: a byte of it changed. */
	for (i = 1; i < self->nr - 1; i++) {
		if (self->recs[i].type != LVMM_REC_MEMORY &&
		    self->recs[i].type != LVMM_REC_PAGES)
			continue;
		memcpy(&mem, rec_data(self->buf, &self->recs[i]), sizeof(mem));
		if (mem.slot == 1 && !mem.first_page && (mem.present[0] & 1))
			last = i;
	}
	ASSERT_LE(0, last) TH_LOG("no record carries slot 1's first page");
	WORK_COPY();
	ASSERT_EQ(0x33, REC(last)[sizeof(mem) + 4095]);
	REC(last)[sizeof(mem) + 4095] ^= 0x01;
	replay(self->c, self->work, self->len, IN_NAME, READY_GO, false, &o);
	ASSERT_LE(0, o.ret) TH_LOG("a changed page refused: %s",
				   strerror(-o.ret));
	EXPECT_EQ(1, o.done);
	vm = vm_from(o.ret, &o.req, NULL);
	m1 = vm_map_slot(vm, 1, 0, page0, TINY_SLOT1_SIZE);
	EXPECT_EQ(0x32, m1[4095]) TH_LOG("the page is not as it came");
	EXPECT_EQ(0x44, m1[300 * SZ_4K + 99]);
	vm_free(vm);

	/* The rest is in the checksum, the flag that says so too. */
	WORK_COPY();
	i = rec_find(self->recs, self->nr, LVMM_REC_VCPU, 0);
	ASSERT_LE(0, i);
	REC(i)[64] ^= 0x01;
	expect_refused(self->len, EBADMSG, false, "a byte of a vCPU");

	/*
	 * A page moved in a chunk's map, the length still right: only the
	 * checksum can tell, and the map is in it.
	 */
	WORK_COPY();
	memcpy(&mem, REC(last), sizeof(mem));
	for (i = 1; i < (int)mem.npages && (mem.present[i / 64] >> (i % 64)) & 1;
	     i++)
		;
	ASSERT_GT((int)mem.npages, i) TH_LOG("the chunk has every page");
	mem.present[0] &= ~1ULL;
	mem.present[i / 64] |= 1ULL << (i % 64);
	memcpy(REC(last), &mem, sizeof(mem));
	expect_refused(self->len, EBADMSG, false, "a page moved in a map");

	WORK_COPY();
	((struct lvmm_stream_header *)REC(0))->flags &=
		~LVMM_STREAM_PAGES_UNSUMMED;
	expect_refused(self->len, EBADMSG, false, "the flag cleared");

	/* Cleared, and END made over every byte: the reader follows it. */
	stream_fix(self->work, self->len);
	EXPECT_EQ(lvmm_xxh64(self->work, self->recs[self->nr - 1].off, 0),
		  ((struct lvmm_stream_end *)REC(self->nr - 1))->checksum);
	expect_incoming(self->len, READY_GO, 0, "the flag cleared, END over all",
			&o);
	EXPECT_EQ(1, o.done);

	WORK_COPY();
	((struct lvmm_stream_header *)REC(0))->version = 3;
	stream_fix(self->work, self->len);
	expect_refused(self->len, EBADMSG, true, "the flag in version 3");
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
}

/* The stream cut short: ECONNRESET, and REFUSE says so. */
TEST_F_TIMEOUT(incoming, truncated, 60)
{
	size_t hdr_end = self->recs[1].off, end = self->recs[self->nr - 1].off;
	struct {
		size_t len;
		const char *what;
	} cuts[] = {
		{ 8, "in the header's record header" },
		{ hdr_end - 8, "in the header" },
		{ hdr_end, "after the header" },
		{ hdr_end + 100, "in the first memory record" },
		{ end, "before END" },
		{ self->len - 8, "in END" },
	};

	REQUIRE_INCOMING();
	WORK_COPY();
	for (size_t k = 0; k < ARRAY_SIZE(cuts); k++) {
		struct replay o;

		expect_incoming(cuts[k].len, READY_GO, ECONNRESET,
				cuts[k].what, &o);
		EXPECT_EQ(cuts[k].len >= hdr_end, o.accept) TH_LOG("%s", cuts[k].what);
		EXPECT_EQ(0, o.ready);
		EXPECT_EQ(ECONNRESET, o.refuse_err) TH_LOG("%s", cuts[k].what);
	}
}

/*
 * The handshake broken after READY: the VM, listed and frozen until
 * then, is destroyed and the ioctl fails; a signal ends the wait for
 * the stream.
 */
TEST_F_TIMEOUT(incoming, handshake, 60)
{
	static const struct {
		int ready, err;
		const char *what;
	} cases[] = {
		{ READY_CLOSE, ECONNRESET, "the source hangs up" },
		{ READY_BAD_MAGIC, EPROTO, "GO with a bad magic" },
		{ READY_NO_VERSION, EPROTO, "GO without a version" },
		{ READY_REFUSE, ECONNABORTED, "the source refuses" },
		{ READY_DONE, EPROTO, "DONE instead of GO" },
		{ READY_DESTROY, ENOENT, "vm-destroy before GO" },
	};
	struct lvmm_mig_msg mm;
	struct dest d;
	int s, fd, r;

	REQUIRE_INCOMING();
	WORK_COPY();
	for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
		struct replay o;

		expect_incoming(self->len, cases[k].ready, cases[k].err,
				cases[k].what, &o);
		EXPECT_EQ(1, o.ready) TH_LOG("%s", cases[k].what);
		EXPECT_EQ(0, o.done) TH_LOG("%s", cases[k].what);
		EXPECT_TRUE(o.listed_at_ready);
		EXPECT_EQ(LVMM_VM_STATE_PAUSED, o.state_at_ready);
		if (cases[k].ready == READY_DESTROY) {
			/* REFUSE instead of DONE: the source keeps its copy. */
			EXPECT_TRUE(o.destroyed);
			EXPECT_EQ(1, o.refuse);
			EXPECT_EQ(ENOENT, o.refuse_err);
		}
	}

	/* A newer source's GO: its version and features are ignored. */
	{
		struct replay o;

		expect_incoming(self->len, READY_NEWER, 0, "a newer GO", &o);
		EXPECT_EQ(1, o.done);
	}

	/* A signal while it waits for the stream: EINTR, and nothing. */
	tcp_pair(&s, &fd);
	sock_timeouts(s, 30);
	dest_start(&d, fd, IN_NAME);
	ASSERT_EQ(0, send_all(s, self->buf, self->recs[1].off));
	ASSERT_EQ(1, msg_recv(s, &mm));
	EXPECT_EQ(LVMM_MIG_ACCEPT, mm.type);
	usleep(100000);
	ASSERT_FALSE(d.done);
	pthread_kill(d.thread, SIGUSR1);
	r = dest_join(&d);
	EXPECT_EQ(-EINTR, r) TH_LOG("%s", strerror(-r));
	r = msg_recv(s, &mm);
	EXPECT_TRUE(r == 0 || (r == 1 && mm.type == LVMM_MIG_REFUSE &&
			       mm.error == EINTR));
	close(s);
	EXPECT_FALSE(vm_listed(self->c, IN_NAME));
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
}

/* self->work with the header at version 1, without RUNSTATE: its length. */
static size_t make_v1(FIXTURE_DATA(incoming) *self, bool keep_runstate,
		      bool pages_as_memory)
{
	int rs = rec_find(self->recs, self->nr, LVMM_REC_RUNSTATE, 0);
	size_t len = self->len;

	WORK_COPY();
	((struct lvmm_stream_header *)REC(0))->version = 1;
	for (int i = 0; pages_as_memory && i < self->nr; i++)
		if (self->recs[i].type == LVMM_REC_PAGES)
			REC_HDR(i)->type = LVMM_REC_MEMORY;
	if (!keep_runstate)
		len = rec_drop(self->work, len, &self->recs[rs]);
	stream_fix(self->work, len);
	return len;
}

/*
 * Version 1 streams have no PAGES or RUNSTATE records: one that has
 * either is corrupt; without them it is a good stream.
 */
TEST_F_TIMEOUT(incoming, version_1, 60)
{
	struct replay o;
	size_t len;

	REQUIRE_INCOMING();
	ASSERT_LE(0, rec_find(self->recs, self->nr, LVMM_REC_PAGES, 0));

	len = make_v1(self, false, false);
	expect_refused(len, EBADMSG, false, "PAGES in a version 1 stream");
	len = make_v1(self, true, true);
	expect_refused(len, EBADMSG, false, "RUNSTATE in a version 1 stream");
	len = make_v1(self, false, true);
	expect_incoming(len, READY_GO, 0, "a version 1 stream", &o);
	EXPECT_EQ(1, o.done);
}

/*
 * RUNSTATE: once, after the vCPUs and the VMM's state, with known flags
 * only; PAUSED arrives paused.  PAGES after a vCPU is out of order.
 */
TEST_F_TIMEOUT(incoming, record_order, 60)
{
	int rs = rec_find(self->recs, self->nr, LVMM_REC_RUNSTATE, 0);
	int v0 = rec_find(self->recs, self->nr, LVMM_REC_VCPU, 0);
	int pg = rec_find(self->recs, self->nr, LVMM_REC_PAGES, 0);
	struct lvmm_stream_runstate *run;
	size_t len, n;
	struct replay o;
	struct nl_vm v;
	u8 *copy;

	REQUIRE_INCOMING();
	ASSERT_LT(0, rs);
	ASSERT_LT(0, v0);
	ASSERT_LT(0, pg);
	run = (struct lvmm_stream_runstate *)REC(rs);

	WORK_COPY();
	run->flags = LVMM_RUNSTATE_PAUSED << 1;
	stream_fix(self->work, self->len);
	expect_refused(self->len, EBADMSG, false, "an unknown run state flag");
	WORK_COPY();
	run->pad = 1;
	stream_fix(self->work, self->len);
	expect_refused(self->len, EBADMSG, false, "RUNSTATE's pad");

	/* RUNSTATE twice; before the last vCPU; PAGES after a vCPU. */
	n = sizeof(struct lvmm_rec) + self->recs[rs].len;
	WORK_COPY();
	len = rec_insert(self->work, self->len, self->recs[rs].off,
			 self->work + self->recs[rs].off, n);
	stream_fix(self->work, len);
	expect_refused(len, EBADMSG, false, "RUNSTATE twice");
	copy = malloc(n);
	ASSERT_NE(NULL, copy);
	WORK_COPY();
	memcpy(copy, self->work + self->recs[rs].off, n);
	len = rec_drop(self->work, self->len, &self->recs[rs]);
	len = rec_insert(self->work, len, self->recs[v0].off, copy, n);
	stream_fix(self->work, len);
	expect_refused(len, EBADMSG, false, "RUNSTATE before the vCPUs");
	free(copy);
	n = sizeof(struct lvmm_rec) + self->recs[pg].len;
	WORK_COPY();
	len = rec_insert(self->work, self->len, self->recs[v0 + 1].off,
			 self->work + self->recs[pg].off, n);
	stream_fix(self->work, len);
	expect_refused(len, EBADMSG, false, "PAGES after a vCPU");

	/* Paused, it arrives paused. */
	WORK_COPY();
	run->flags = LVMM_RUNSTATE_PAUSED;
	stream_fix(self->work, self->len);
	replay(self->c, self->work, self->len, IN_NAME, READY_GO, false, &o);
	ASSERT_LE(0, o.ret) TH_LOG("%s", strerror(-o.ret));
	ASSERT_EQ(0, nl_vm_get(self->c, o.req.id, NULL, &v));
	EXPECT_EQ(LVMM_VM_STATE_PAUSED, v.state);
	close(o.ret);
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
}

/*
 * A PAGES record changes the pages it carries and keeps the others of
 * its chunk; a MEMORY record makes them zero.
 */
TEST_F_TIMEOUT(incoming, pages_keep_the_rest, 60)
{
	int v0 = rec_find(self->recs, self->nr, LVMM_REC_VCPU, 0);
	struct {
		struct lvmm_rec h;
		struct lvmm_stream_mem m;
		u8 page[4096];
	} rec = {
		.h = { .len = sizeof(struct lvmm_stream_mem) + SZ_4K },
		.m = { .slot = 1, .npages = 512, .present = { 1 } },
	};

	REQUIRE_INCOMING();
	ASSERT_LT(0, v0);
	memset(rec.page, 0x77, sizeof(rec.page));
	for (int memory = 0; memory < 2; memory++) {
		struct lvmm_vm *vm;
		struct replay o;
		size_t len;
		u8 *m1;

		rec.h.type = memory ? LVMM_REC_MEMORY : LVMM_REC_PAGES;
		WORK_COPY();
		len = rec_insert(self->work, self->len, self->recs[v0].off,
				 &rec, sizeof(rec));
		stream_fix(self->work, len);
		replay(self->c, self->work, len, IN_NAME, READY_GO, false, &o);
		ASSERT_LE(0, o.ret) TH_LOG("%s", strerror(-o.ret));
		vm = vm_from(o.ret, &o.req, NULL);
		m1 = vm_map_slot(vm, 1, 0, TINY_SLOT1_GPA, TINY_SLOT1_SIZE);
		EXPECT_EQ(0x77, m1[0]);
		EXPECT_EQ(0x77, m1[4095]);
		EXPECT_EQ(memory ? 0 : 0x44, m1[300 * SZ_4K])
			TH_LOG("%s: the page it left out", memory ? "MEMORY" : "PAGES");
		/* Another chunk: untouched either way. */
		EXPECT_EQ(0x55, m1[513 * SZ_4K]);
		vm_free(vm);
	}
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
}

/* LVMM_RESTORE_INCOMING needs a connected, blocking stream socket. */
TEST_F_TIMEOUT(incoming, request, 60)
{
	struct lvmm_restore_vm req;
	struct sockaddr_in a;
	socklen_t alen;
	int dev, p[2], x, mfd, s, fd;

	REQUIRE_INCOMING();
	dev = open_lvmm_dev();
#define INCOMING(f, fl) ({						\
	memset(&req, 0, sizeof(req));					\
	req.fd = (f);							\
	req.flags = (fl);						\
	strcpy(req.name, IN_NAME);					\
	__vm_restore(dev, &req);					\
})
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	EXPECT_EQ(-EINVAL, INCOMING(p[0], LVMM_RESTORE_INCOMING));
	mfd = memfd_create("mig", MFD_CLOEXEC);
	ASSERT_LE(0, mfd);
	ASSERT_EQ(self->len, write(mfd, self->buf, self->len));
	ASSERT_EQ(0, lseek(mfd, 0, SEEK_SET));
	EXPECT_EQ(-EINVAL, INCOMING(mfd, LVMM_RESTORE_INCOMING));
	x = stream_socket();
	EXPECT_EQ(-ENOTCONN, INCOMING(x, LVMM_RESTORE_INCOMING));
	bind_any(x, &a, &alen);
	ASSERT_EQ(0, listen(x, 1));
	EXPECT_EQ(-ENOTCONN, INCOMING(x, LVMM_RESTORE_INCOMING));
	close(x);
	x = dgram_socket();
	EXPECT_EQ(-EINVAL, INCOMING(x, LVMM_RESTORE_INCOMING));
	close(x);
	tcp_pair(&s, &fd);
	ASSERT_EQ(0, fcntl(fd, F_SETFL, O_NONBLOCK));
	EXPECT_EQ(-EBADF, INCOMING(fd, LVMM_RESTORE_INCOMING));
	ASSERT_EQ(0, fcntl(fd, F_SETFL, 0));
	EXPECT_EQ(-EINVAL, INCOMING(fd, LVMM_RESTORE_INCOMING << 1));
	/* The same stream from a file, without the flag: a snapshot. */
	x = INCOMING(mfd, 0);
	EXPECT_LE(0, x) TH_LOG("%s", strerror(-x));
	if (x >= 0)
		close(x);
#undef INCOMING
	close(s);
	close(fd);
	close(mfd);
	close(p[0]);
	close(p[1]);
	close(dev);
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
}

/* ---- a mutation fuzzer of the migration stream ----------------------- */

/* The types a fuzzed record may get: every one there is, and one more. */
static const u32 fuzz_types[] = {
	LVMM_REC_HEADER, LVMM_REC_MEMORY, LVMM_REC_VCPU, LVMM_REC_VMM,
	LVMM_REC_END, LVMM_REC_PAGES, LVMM_REC_RUNSTATE, 8,
};

#define FUZZ_SECONDS	10

/*
 * Mutated copies of the migration stream, sent as a source sends, for a
 * bounded time: each is refused with a documented errno (which REFUSE
 * says too), or taken and whole; none leaves a VM or memory behind.  The
 * seed (LIVE_MIGRATION_FUZZ_SEED, default 1) and the time
 * (LIVE_MIGRATION_FUZZ_SECONDS) make a run replayable.
 */
TEST_F_TIMEOUT(incoming, fuzz, 120)
{
	static const int allowed[] = { EBADMSG, EPROTONOSUPPORT, EOPNOTSUPP,
				       ENOMEM, ECONNRESET, EPROTO };
	u64 seed = env_u64("LIVE_MIGRATION_FUZZ_SEED", 1);
	u64 secs = env_u64("LIVE_MIGRATION_FUZZ_SECONDS", FUZZ_SECONDS);
	struct stream_fuzz fz = { .s = seed ? seed : 1, .types = fuzz_types,
				  .nr_types = ARRAY_SIZE(fuzz_types),
				  .allowed = allowed,
				  .nr_allowed = ARRAY_SIZE(allowed) };
	long mem_before, mem_after;
	u64 end;

	REQUIRE_INCOMING();
	TH_LOG("seed %llu, %llu s (LIVE_MIGRATION_FUZZ_SEED, LIVE_MIGRATION_FUZZ_SECONDS)",
	       (unsigned long long)seed, (unsigned long long)secs);
	mem_before = mem_available_kb();
	end = now_ns() + secs * 1000000000ULL;
	while (now_ns() < end) {
		struct replay o;
		size_t len;

		WORK_COPY();
		len = stream_fuzz_next(&fz, self->work, self->len, self->cap);
		replay(NULL, self->work, len, "mig-fz", READY_GO, false, &o);
		EXPECT_EQ(0, o.other)
			TH_LOG("iteration %llu (%s)",
			       (unsigned long long)fz.iters, fz.what);
		if (o.ret >= 0) {
			struct lvmm_vm_info info;

			fz.accepted++;
			EXPECT_EQ(1, o.done);
			EXPECT_EQ(0, ioctl(o.ret, LVMM_GET_VM_INFO, &info));
			EXPECT_EQ(o.req.id, info.id);
			EXPECT_EQ(o.req.nr_vcpus, info.nr_vcpus);
			close(o.ret);
		} else {
			ASSERT_TRUE(stream_fuzz_refused(&fz, -o.ret))
				TH_LOG("iteration %llu (%s%s): %s",
				       (unsigned long long)fz.iters, fz.what,
				       fz.fix ? ", fixed up" : "",
				       strerror(-o.ret));
			/* REFUSE, when it came, gave the same reason. */
			if (o.refuse) {
				EXPECT_EQ(-o.ret, o.refuse_err)
					TH_LOG("iteration %llu (%s): %s, REFUSE says %s",
					       (unsigned long long)fz.iters,
					       fz.what, strerror(-o.ret),
					       strerror(o.refuse_err));
			}
		}
		if (!(fz.iters % 32)) {
			ASSERT_EQ(self->nr_vms, nl_vm_count(self->c))
				TH_LOG("VMs left behind by iteration %llu",
				       (unsigned long long)fz.iters);
		}
		if (!_metadata->passed)
			break;
	}
	EXPECT_EQ(self->nr_vms, nl_vm_count(self->c));
	mem_after = mem_available_kb();
	STREAM_FUZZ_LOG(&fz);
	TH_LOG("MemAvailable: %ld kB before, %ld kB after", mem_before, mem_after);
	EXPECT_LT(10, fz.iters);
	EXPECT_GT(mem_after + 64 * 1024, mem_before);
}

TEST_HARNESS_MAIN
