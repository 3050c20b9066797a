// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: live migration (Documentation/migration.rst, 9) -- the VM stream
 * sent over a connected socket while the guest runs, pass after pass of
 * the pages it dirtied, then the vCPUs stopped for the last pass and the
 * handshake that hands the VM over to exactly one host.
 *
 * The source side runs in a kernel thread, lvmm-migrate/<id>, started by
 * netlink vm-migrate.  The destination side is LVMM_RESTORE_VM with
 * LVMM_RESTORE_INCOMING: snapshot.c reads the stream, and calls
 * lvmm_mig_incoming_commit() here once the whole VM is in.
 */
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/memcontrol.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/sched/clock.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "lvmm.h"
#include "stream.h"

/* The source's socket reads and writes; a paused source waits no more. */
#define LVMM_MIG_SOURCE_TIMEOUT	(10 * HZ)
/* The destination's: the source sends without pause until GO. */
#define LVMM_MIG_DEST_TIMEOUT	(30 * HZ)
/* auto-converge: the first step, the next ones, the most (%). */
#define LVMM_MIG_THROTTLE_INITIAL	20
#define LVMM_MIG_THROTTLE_STEP		10
#define LVMM_MIG_THROTTLE_MAX		99
/* Log words taken and cleared at a time: 32768 pages, 128 MiB. */
#define LVMM_MIG_ROUND_WORDS	512
/* Below this, a pass says little about the link's bandwidth. */
#define LVMM_MIG_MIN_SAMPLE	SZ_1M

struct lvmm_migration {
	struct lvmm_vm *vm;
	struct lvmm_stream st;
	struct socket *sock;
	struct lvmm_migrate_req req;
	struct lvmm_migrate_stats stats;
	struct lvmm_memslots *slots;	/* pinned while it runs */
	unsigned long *mask;		/* a round of the log */
	void *bounce;			/* the stream's copy of guest pages */
	/* Who asked: the socket is written as them. */
	const struct cred *cred;
	struct mem_cgroup *memcg;
	u64 start_ns, stop_ns, last_event;
	u64 deadline;			/* jiffies: the frozen phase ends */
	u64 bandwidth;			/* bytes/s, the last good sample */
	u64 dirty;			/* bytes dirty after the last pass */
	u64 taken;			/* lvmm_mig_taken() */
	u32 nr_vcpus;			/* in the header */
	bool logging;
	/* Under vm->lock. */
	bool cancelled;
	bool committed;			/* GO is being written: no way back */
};

/* ---- messages of the handshake ---------------------------------------- */

static void lvmm_mig_set_timeouts(struct socket *sock, long timeo)
{
	lock_sock(sock->sk);
	sock->sk->sk_sndtimeo = timeo;
	sock->sk->sk_rcvtimeo = timeo;
	release_sock(sock->sk);
}

/*
 * Whether @file is a connected, blocking TCP or AF_UNIX stream socket:
 * -ENOTSOCK, -EINVAL (another kind, or O_NONBLOCK), -ENOTCONN.  A reader
 * takes one the peer has finished sending on too (CLOSE_WAIT).
 */
int lvmm_mig_socket_ok(struct file *file, bool reader)
{
	struct socket *sock = sock_from_file(file);
	int state;

	if (!sock)
		return -ENOTSOCK;
	if ((!sk_is_tcp(sock->sk) && !sk_is_stream_unix(sock->sk)) ||
	    (file->f_flags & O_NONBLOCK))
		return -EINVAL;
	state = READ_ONCE(sock->sk->sk_state);
	if (state == TCP_ESTABLISHED ||
	    (reader && sk_is_tcp(sock->sk) && state == TCP_CLOSE_WAIT))
		return 0;
	return -ENOTCONN;
}

/*
 * The handshake's messages go out at once, not held back by Nagle behind
 * unacknowledged data: they are on the downtime's path, and a REFUSE must
 * leave before a close with unread data resets the connection.  Setting it
 * also pushes what is queued.
 */
static void lvmm_mig_nodelay(struct socket *sock)
{
	/* A kernel without TCP/IP has only AF_UNIX streams: nothing to do. */
	if (IS_ENABLED(CONFIG_INET) && sk_is_tcp(sock->sk))
		tcp_sock_set_nodelay(sock->sk);
}

/* Bytes written to @sock that the peer has not taken yet. */
static u64 lvmm_mig_unsent(struct socket *sock)
{
	struct sock *sk = sock->sk;

	if (sk_is_tcp(sk))
		return READ_ONCE(tcp_sk(sk)->write_seq) -
		       READ_ONCE(tcp_sk(sk)->snd_una);
	return sk_wmem_alloc_get(sk);
}

/* 0, or why: -ETIMEDOUT, -ECONNRESET (closed), -EINTR, or another. */
static int lvmm_mig_io_error(int n)
{
	if (n == -EAGAIN)
		return -ETIMEDOUT;
	if (n == -ERESTARTSYS)
		return -EINTR;
	if (n == -EPIPE)
		return -ECONNRESET;
	return n;
}

/*
 * 0, or an error with nothing sent -- or LVMM_MIG_PARTIAL: a part of it
 * went out, and whether the peer gets the rest nobody can tell.
 */
#define LVMM_MIG_PARTIAL	1

int lvmm_mig_send(struct file *file, u32 type, int err)
{
	struct lvmm_mig_msg msg = {
		.magic = LVMM_MIG_MAGIC, .type = type, .error = err,
		.version = LVMM_STREAM_VERSION,
	};
	struct msghdr mh = { .msg_flags = MSG_NOSIGNAL };
	struct kvec vec = { &msg, sizeof(msg) };
	int n;

	n = kernel_sendmsg(sock_from_file(file), &mh, &vec, 1, sizeof(msg));
	if (n == sizeof(msg))
		return 0;
	return n < 0 ? lvmm_mig_io_error(n) : LVMM_MIG_PARTIAL;
}

/* A message, checked: -EPROTO if it is not one. */
static int lvmm_mig_recv(struct socket *sock, struct lvmm_mig_msg *msg,
			 int flags)
{
	struct msghdr mh = { };
	struct kvec vec = { msg, sizeof(*msg) };
	int n;

	n = kernel_recvmsg(sock, &mh, &vec, 1, sizeof(*msg),
			   MSG_WAITALL | flags);
	if (n < 0)
		return lvmm_mig_io_error(n);
	if (n != sizeof(*msg))
		return -ECONNRESET;
	/* A newer peer's version and features: this one speaks its own. */
	if (msg->magic != LVMM_MIG_MAGIC || !msg->version ||
	    msg->type < LVMM_MIG_ACCEPT || msg->type > LVMM_MIG_DONE)
		return -EPROTO;
	return 0;
}

/* Tell the source why not; it may be gone already. */
void lvmm_mig_refuse(struct file *file, int err)
{
	lvmm_mig_send(file, LVMM_MIG_REFUSE, -err);
}

/*
 * The destination's end of the handshake, called with the whole VM in,
 * listed and frozen, its fd ready to install: READY, then wait for GO.
 * Only GO lets it run.  Without GO it is destroyed (the caller drops it).
 */
int lvmm_mig_incoming_commit(struct lvmm_vm *vm, struct file *file)
{
	struct lvmm_mig_msg msg;
	int r;

	r = lvmm_mig_send(file, LVMM_MIG_READY, 0) ?:
	    lvmm_mig_recv(sock_from_file(file), &msg, 0);
	if (!r && msg.type != LVMM_MIG_GO)
		r = msg.type == LVMM_MIG_REFUSE ? -ECONNABORTED : -EPROTO;
	if (r) {
		lvmm_vm_destroy(vm);
		return r;
	}
	mutex_lock(&vm->lock);
	if (vm->dead) {
		/* vm-destroy while it came: the source must keep its copy. */
		mutex_unlock(&vm->lock);
		lvmm_mig_refuse(file, -ENOENT);
		return -ENOENT;
	}
	vm->incoming = false;
	WRITE_ONCE(vm->frozen, false);
	mutex_unlock(&vm->lock);
	lvmm_ioapic_resend(vm);
	wake_up_all(&vm->pause_wq);
	/*
	 * The VM is this host's now.  If DONE is lost, the source keeps its
	 * copy paused and says it does not know (section 9.2).
	 */
	lvmm_mig_send(file, LVMM_MIG_DONE, 0);
	return 0;
}

/*
 * LVMM_RESTORE_HOLD: the whole VM is in, listed and frozen, and its fd
 * goes to the VMM before the source hears READY.  The VM keeps the socket
 * until LVMM_INCOMING_FINISH, vm-destroy or its last fd.
 */
void lvmm_mig_incoming_hold(struct lvmm_vm *vm, struct file *file)
{
	mutex_lock(&vm->lock);
	vm->incoming_file = get_file(file);
	mutex_unlock(&vm->lock);
}

/* The held socket, now the caller's to answer through and put; or NULL. */
static struct file *lvmm_mig_incoming_take(struct lvmm_vm *vm)
{
	struct file *file;

	mutex_lock(&vm->lock);
	file = vm->incoming_file;
	vm->incoming_file = NULL;
	mutex_unlock(&vm->lock);
	return file;
}

/*
 * A held VM goes before its VMM took it (vm-destroy, or its last fd):
 * the source must keep its copy, and is told why.
 */
void lvmm_mig_incoming_drop(struct lvmm_vm *vm, int err)
{
	struct file *file = lvmm_mig_incoming_take(vm);

	if (!file)
		return;
	lvmm_mig_refuse(file, err);
	fput(file);
}

/* LVMM_INCOMING_FINISH: the VMM takes the held VM, or refuses it. */
long lvmm_vm_incoming_finish(struct lvmm_vm *vm, void __user *argp)
{
	struct lvmm_incoming_finish req;
	struct file *file;
	long r;

	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.flags || memchr_inv(req.reserved, 0, sizeof(req.reserved)) ||
	    req.error < 0 || req.error > MAX_ERRNO)
		return -EINVAL;
	file = lvmm_mig_incoming_take(vm);
	if (!file)
		return -EINVAL;		/* not held, or finished already */
	if (req.error) {
		lvmm_mig_refuse(file, -req.error);
		lvmm_vm_destroy(vm);
		r = 0;
	} else {
		r = lvmm_mig_incoming_commit(vm, file);
	}
	fput(file);
	return r;
}

/* ---- the source ------------------------------------------------------------ */

/* Cancel or destroy; a cancel before the thread allowed SIGKILL too. */
static bool lvmm_mig_stopping(struct lvmm_migration *m)
{
	return signal_pending(current) || READ_ONCE(m->cancelled) ||
	       READ_ONCE(m->vm->dead);
}

/*
 * The frozen phase has a deadline, however slowly the destination takes
 * what it is sent: the socket's timeouts are what is left of it.
 */
static int lvmm_mig_check_deadline(struct lvmm_migration *m)
{
	long left;

	if (!m->deadline)
		return 0;
	left = (long)(m->deadline - get_jiffies_64());
	if (left <= 0)
		return -ETIMEDOUT;
	lvmm_mig_set_timeouts(m->sock, left);
	return 0;
}

static void lvmm_mig_progress(struct lvmm_migration *m, bool force)
{
	u64 now = local_clock();

	if (!force && now - m->last_event < 250 * NSEC_PER_MSEC)
		return;
	m->last_event = now;
	m->stats.sent = m->st.bytes;
	lvmm_nl_migrate_event(m->vm, LVMM_EVENT_MIGRATE_PROGRESS, &m->stats);
}

/* Hold the stream to --bandwidth: sleep until what went out is due. */
static int lvmm_mig_limit(struct lvmm_migration *m)
{
	u64 due, elapsed;
	ktime_t wait;

	if (!m->req.max_bandwidth)
		return 0;
	due = mul_u64_u64_div_u64(m->st.bytes, NSEC_PER_SEC,
				  m->req.max_bandwidth);
	elapsed = ktime_get_ns() - m->start_ns;
	if (due <= elapsed)
		return 0;
	wait = ns_to_ktime(due - elapsed);
	set_current_state(TASK_INTERRUPTIBLE);
	schedule_hrtimeout_range(&wait, 100 * NSEC_PER_USEC, HRTIMER_MODE_REL);
	return lvmm_mig_stopping(m) ? -EINTR : 0;
}

/* After each record: the limit, the events, a way out. */
static int lvmm_mig_step(struct lvmm_migration *m)
{
	int r = lvmm_mig_limit(m);

	lvmm_mig_progress(m, false);
	cond_resched();
	if (!r && lvmm_mig_stopping(m))
		r = -EINTR;
	return r ?: lvmm_mig_check_deadline(m);
}

/* Pass 1: every chunk ever touched, as for a snapshot. */
static int lvmm_mig_first_pass(struct lvmm_migration *m)
{
	unsigned long ci;
	int i, r = 0;

	for (i = 0; i < LVMM_MAX_MEMSLOTS && !r; i++) {
		struct lvmm_slot *slot = m->slots->slot[i];

		for (ci = 0; slot && ci < slot->nchunks && !r; ci++)
			r = lvmm_stream_chunk(&m->st, slot, ci) ?:
			    lvmm_mig_step(m);
	}
	return r;
}

/*
 * A later pass: the pages the log has set, round by round.  A round's
 * bits are cleared (and the pages protected again) and the guest TLBs
 * flushed before any of its pages is read, so a write after the read
 * sets its bit for the next pass.
 */
static int lvmm_mig_dirty_pass(struct lvmm_migration *m)
{
	const u64 chunk_words = LVMM_PAGES_PER_HPAGE / BITS_PER_LONG;
	int i, r = 0;

	for (i = 0; i < LVMM_MAX_MEMSLOTS && !r; i++) {
		struct lvmm_slot *slot = m->slots->slot[i];
		u64 words, w, n, c;

		if (!slot)
			continue;
		words = BITS_TO_LONGS(slot->npages);
		for (w = 0; w < words && !r; w += n) {
			n = min_t(u64, words - w, LVMM_MIG_ROUND_WORDS);
			/* Nothing written: nothing to clear or to flush. */
			if (lvmm_slot_harvest(m->vm, slot, w, m->mask, n))
				lvmm_vm_flush_tlb_all(m->vm);
			for (c = 0; c < n && !r; c += chunk_words) {
				unsigned long ci = (w + c) / chunk_words;
				u64 cw = min(chunk_words, n - c);

				/* Never touched: zero here and there. */
				if (find_first_bit(m->mask + c,
						   cw * BITS_PER_LONG) ==
				    cw * BITS_PER_LONG ||
				    !lvmm_memslot_peek_page(slot,
						slot->base_gfn +
						(ci << LVMM_HPAGE_ORDER)))
					continue;
				r = lvmm_stream_pages(&m->st, LVMM_REC_PAGES,
						      slot, ci, m->mask + c) ?:
				    lvmm_mig_step(m);
			}
		}
	}
	return r;
}

static u64 lvmm_mig_dirty_bytes(struct lvmm_migration *m)
{
	u64 pages = 0;
	int i;

	for (i = 0; i < LVMM_MAX_MEMSLOTS; i++)
		if (m->slots->slot[i])
			pages += lvmm_slot_dirty_pages(m->slots->slot[i]);
	return pages * PAGE_SIZE;
}

/*
 * Bytes the destination has taken: what was written, less the queue --
 * never less than before (an AF_UNIX queue counts buffers, not bytes).
 */
static u64 lvmm_mig_taken(struct lvmm_migration *m)
{
	u64 taken = m->st.bytes - min(lvmm_mig_unsent(m->sock), m->st.bytes);

	m->taken = max(m->taken, taken);
	return m->taken;
}

/*
 * Let the destination take most of what is queued before the pass is
 * judged: a pass that only filled the socket says nothing, and the next
 * one would find nothing new to send.  At most a second; cancel ends it.
 */
static int lvmm_mig_drain(struct lvmm_migration *m)
{
	u64 until = ktime_get_ns() + NSEC_PER_SEC;
	u64 enough = max_t(u64, lvmm_mig_dirty_bytes(m), SZ_256K);

	while (lvmm_mig_unsent(m->sock) > enough &&
	       ktime_get_ns() < until) {
		if (lvmm_mig_stopping(m))
			return -EINTR;
		usleep_range(500, 1000);
	}
	return 0;
}

/*
 * After a pass in which the destination took @bytes in @ns: what is left
 * (dirty, and still queued in the socket), how fast the guest dirties and
 * the link carries, and whether the rest fits in the downtime.  The
 * bandwidth has a floor, so that nothing below divides by a trifle.
 */
static bool lvmm_mig_converged(struct lvmm_migration *m, u64 bytes, u64 ns)
{
	struct lvmm_migrate_stats *s = &m->stats;
	u64 dirty = lvmm_mig_dirty_bytes(m);

	m->dirty = dirty;
	ns = max(ns, 1ULL);
	if (bytes >= LVMM_MIG_MIN_SAMPLE || !m->bandwidth)
		m->bandwidth = max(mul_u64_u64_div_u64(bytes, NSEC_PER_SEC, ns),
				   (u64)LVMM_MIGRATE_MIN_BANDWIDTH);
	s->left = dirty + lvmm_mig_unsent(m->sock);
	s->bandwidth = m->bandwidth;
	s->dirty_rate = mul_u64_u64_div_u64(dirty, NSEC_PER_SEC, ns);
	s->expected_ns = mul_u64_u64_div_u64(s->left, NSEC_PER_SEC,
					     m->bandwidth);
	lvmm_mig_progress(m, true);
	return s->expected_ns <= (u64)m->req.downtime_ms * NSEC_PER_MSEC;
}

/* --auto-converge: slow the guest one more step, up to the most. */
static bool lvmm_mig_throttle_more(struct lvmm_migration *m)
{
	u32 t = m->stats.throttle;

	if (t >= LVMM_MIG_THROTTLE_MAX)
		return false;
	t = t ? min(t + LVMM_MIG_THROTTLE_STEP, LVMM_MIG_THROTTLE_MAX) :
		LVMM_MIG_THROTTLE_INITIAL;
	m->stats.throttle = t;
	lvmm_sched_migrate_throttle(m->vm, t);
	return true;
}

/* The passes while the guest runs, until what is left fits the downtime. */
static int lvmm_mig_precopy(struct lvmm_migration *m)
{
	u64 start = ktime_get_ns(), taken = lvmm_mig_taken(m), pass;
	int r;

	m->stats.iteration = 1;
	lvmm_mig_progress(m, true);
	r = lvmm_mig_first_pass(m) ?: lvmm_mig_drain(m);
	while (!r) {
		pass = lvmm_mig_taken(m) - taken;
		if (lvmm_mig_converged(m, pass, ktime_get_ns() - start))
			break;
		/*
		 * The guest outruns the link.  With auto-converge, only once it
		 * is slowed the most, or after the most passes there can be.
		 */
		if ((m->stats.iteration >= m->req.max_iter &&
		     !(m->req.auto_converge &&
		       m->stats.throttle < LVMM_MIG_THROTTLE_MAX)) ||
		    m->stats.iteration >= LVMM_MIGRATE_MAX_ITER_MAX)
			return -ETIME;
		/*
		 * As QEMU: slow the guest down when it dirtied more than half
		 * of what the link carried in the pass, not while the dirty
		 * set shrinks on its own.
		 */
		if (m->req.auto_converge && m->stats.iteration >= 2 &&
		    m->dirty > pass / 2)
			lvmm_mig_throttle_more(m);
		m->stats.iteration++;
		start = ktime_get_ns();
		taken = lvmm_mig_taken(m);
		r = lvmm_mig_dirty_pass(m) ?: lvmm_mig_drain(m);
	}
	return r;
}

/* Hold the vCPUs parked, as a save does, for the last pass. */
static void lvmm_mig_freeze(struct lvmm_migration *m, bool on)
{
	struct lvmm_vm *vm = m->vm;

	mutex_lock(&vm->lock);
	WRITE_ONCE(vm->frozen, on);
	mutex_unlock(&vm->lock);
	if (on)
		lvmm_vm_kick_all(vm, LVMM_REQ_KICK);
	wake_up_all(&vm->pause_wq);
}

/* The destination's answer: 0 if it is @want, else why not. */
static int lvmm_mig_expect(struct lvmm_migration *m, u32 want)
{
	struct lvmm_mig_msg msg;
	int r = lvmm_mig_recv(m->sock, &msg, 0);

	if (r)
		return r;
	if (msg.type == LVMM_MIG_REFUSE) {
		m->stats.peer_error = msg.error > 0 ? msg.error : EPROTO;
		return -ECONNREFUSED;
	}
	return msg.type == want ? 0 : -EPROTO;
}

/* The last pass, with the vCPUs stopped, and everything else. */
static int lvmm_mig_stop_and_copy(struct lvmm_migration *m)
{
	struct lvmm_stream_runstate rs = { };
	struct lvmm_vcpu_image **imgs;
	u32 nr;
	u64 xcr0;
	int r;

	imgs = kcalloc(LVMM_MAX_VCPUS, sizeof(*imgs), GFP_KERNEL);
	if (!imgs)
		return -ENOMEM;
	lvmm_mig_freeze(m, true);
	m->stop_ns = ktime_get_ns();
	/* However slow the destination, the guest is held this long at most. */
	m->deadline = get_jiffies_64() +
		      max(LVMM_MIG_SOURCE_TIMEOUT,
			  2 * msecs_to_jiffies(m->req.downtime_ms));
	r = lvmm_save_vcpus(m->vm, imgs, &nr, &xcr0);
	if (!r && nr != m->nr_vcpus)
		r = -EIO;	/* the vCPUs counted in the header */
	/*
	 * Frozen, the guest writes nothing and the VMM's writes wait: what
	 * is hashed is what is sent without the bounce buffer's copy, as
	 * for a save.
	 */
	m->st.bounce = NULL;
	r = r ?: lvmm_mig_dirty_pass(m) ?:
	    lvmm_stream_vcpus(&m->st, m->vm, imgs, nr) ?:
	    lvmm_stream_vmm_state(&m->st, m->vm);
	/* As late as can be: a pause until now arrives with the VM. */
	if (READ_ONCE(m->vm->paused))
		rs.flags |= LVMM_RUNSTATE_PAUSED;
	r = r ?: lvmm_stream_rec(&m->st, LVMM_REC_RUNSTATE, sizeof(rs)) ?:
	    lvmm_stream_write(&m->st, &rs, sizeof(rs)) ?:
	    lvmm_stream_end(&m->st) ?:
	    lvmm_mig_check_deadline(m);
	if (!r)
		lvmm_mig_nodelay(m->sock);	/* the stream is out: GO next */
	lvmm_free_vcpu_images(imgs);
	return r;
}

/*
 * READY in, GO out, DONE in.  Returns the outcome; the vCPUs are still
 * frozen.  Once GO may have left, the source never runs again by itself.
 */
static u32 lvmm_mig_handover(struct lvmm_migration *m, int *err)
{
	struct lvmm_vm *vm = m->vm;
	int r;

	r = lvmm_mig_expect(m, LVMM_MIG_READY);
	if (!r) {
		mutex_lock(&vm->lock);
		if (m->cancelled || vm->dead)
			r = -ECANCELED;
		else
			m->committed = true;
		mutex_unlock(&vm->lock);
	}
	if (r) {
		*err = r;
		return LVMM_MIGRATE_STAYED;
	}
	r = lvmm_mig_check_deadline(m) ?:
	    lvmm_mig_send(m->st.file, LVMM_MIG_GO, 0);
	/* Not a byte of GO went out: the destination cannot run it. */
	if (r < 0) {
		*err = r;
		return LVMM_MIGRATE_STAYED;
	}
	r = r == LVMM_MIG_PARTIAL ? -ECONNRESET :
	    lvmm_mig_check_deadline(m) ?: lvmm_mig_expect(m, LVMM_MIG_DONE);
	*err = r;
	return r ? LVMM_MIGRATE_UNKNOWN : LVMM_MIGRATE_MOVED;
}

/*
 * A write failed: a destination that refused says why before it closes
 * (an incoming restore that found the stream wanting, or out of memory).
 */
static int lvmm_mig_why(struct lvmm_migration *m, int r)
{
	struct lvmm_mig_msg msg;

	r = lvmm_mig_io_error(r);
	if (r == -EINTR || r == -ETIME || m->stats.peer_error ||
	    lvmm_mig_recv(m->sock, &msg, MSG_DONTWAIT) ||
	    msg.type != LVMM_MIG_REFUSE)
		return r;
	m->stats.peer_error = msg.error > 0 ? msg.error : EPROTO;
	return -ECONNREFUSED;
}

static u32 lvmm_mig_run(struct lvmm_migration *m, int *err)
{
	struct lvmm_vm *vm = m->vm;
	u64 xcr0 = 0;
	int i, r;

	r = lvmm_vm_migrate_log(vm, true);
	if (r) {
		*err = r;
		return LVMM_MIGRATE_STAYED;
	}
	m->logging = true;
	mutex_lock(&vm->slots_lock);
	m->slots = lvmm_memslots(vm);
	mutex_unlock(&vm->slots_lock);
	/*
	 * The vCPUs the header counts: none can be added while a migration
	 * runs.  XCR0 as the guest has it now, for the destination's early
	 * check; the vCPU records have the final word.
	 */
	mutex_lock(&vm->lock);
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		if (!vm->vcpus[i])
			continue;
		xcr0 |= READ_ONCE(vm->vcpus[i]->xcr0);
		m->nr_vcpus++;
	}
	mutex_unlock(&vm->lock);
	/*
	 * Version 2 (PAGES, RUNSTATE); 3 with the APICs; 4 when the pages
	 * are outside the checksum (no migrate-checksum).
	 */
	r = lvmm_stream_header(&m->st, vm, m->slots, 2, m->nr_vcpus, xcr0) ?:
	    lvmm_mig_expect(m, LVMM_MIG_ACCEPT) ?:
	    lvmm_mig_precopy(m) ?:
	    lvmm_mig_stop_and_copy(m);
	if (r) {
		*err = lvmm_mig_why(m, r);
		return LVMM_MIGRATE_STAYED;
	}
	return lvmm_mig_handover(m, err);
}

/* The source as it was, or paused when nobody knows where the VM runs. */
static void lvmm_mig_finish(struct lvmm_migration *m, u32 outcome)
{
	struct lvmm_vm *vm = m->vm;

	if (m->logging)
		lvmm_vm_migrate_log(vm, false);
	if (m->stats.throttle)
		lvmm_sched_migrate_throttle(vm, 0);
	mutex_lock(&vm->lock);
	if (outcome == LVMM_MIGRATE_UNKNOWN && !vm->paused && !vm->dead) {
		WRITE_ONCE(vm->paused, true);
		lvmm_nl_event(vm, LVMM_EVENT_PAUSED, -1);
	}
	if (outcome == LVMM_MIGRATE_UNKNOWN)
		vm->migrate_unknown = true;
	/*
	 * Moved: the vCPUs stay frozen until dead is set with migrated, so
	 * that none enters the guest here again.  Otherwise paused first:
	 * pairs with smp_rmb() in lvmm_vm_stopped().
	 */
	smp_wmb();
	if (outcome != LVMM_MIGRATE_MOVED)
		WRITE_ONCE(vm->frozen, false);
	vm->save_task = NULL;
	vm->migration = NULL;
	mutex_unlock(&vm->lock);
	if (outcome == LVMM_MIGRATE_MOVED)
		lvmm_vm_destroy_moved(vm);
	else
		lvmm_ioapic_resend(vm);	/* what came while it was frozen */
	wake_up_all(&vm->pause_wq);
}

static int lvmm_mig_thread(void *arg)
{
	struct lvmm_migration *m = arg;
	struct lvmm_vm *vm = m->vm;
	const struct cred *old_cred;
	struct mem_cgroup *old_memcg;
	int err = 0;
	u32 outcome;

	/* Cancel and destroy end a write or read the peer holds up. */
	allow_signal(SIGKILL);
	old_cred = override_creds(m->cred);
	old_memcg = set_active_memcg(m->memcg);
	m->start_ns = ktime_get_ns();
	if (READ_ONCE(vm->dead)) {
		err = -EINTR;
		outcome = LVMM_MIGRATE_STAYED;
	} else {
		outcome = lvmm_mig_run(m, &err);
	}
	if (err == -EINTR && m->cancelled)
		err = -ECANCELED;
	/* A destination still reading learns at once that it is over. */
	if (outcome == LVMM_MIGRATE_STAYED)
		kernel_sock_shutdown(m->sock, SHUT_RDWR);
	set_active_memcg(old_memcg);
	revert_creds(old_cred);

	m->stats.outcome = outcome;
	m->stats.error = -err;
	m->stats.sent = m->st.bytes;
	m->stats.total_ns = ktime_get_ns() - m->start_ns;
	if (outcome != LVMM_MIGRATE_STAYED)
		m->stats.downtime_ns = ktime_get_ns() - m->stop_ns;
	lvmm_mig_finish(m, outcome);
	lvmm_nl_migrate_event(vm, LVMM_EVENT_MIGRATED, &m->stats);

	put_cred(m->cred);
	mem_cgroup_put(m->memcg);
	fput(m->st.file);
	lvmm_vm_put(vm);
	free_page((unsigned long)m->mask);
	kvfree(m->bounce);
	kfree(m);
	module_put_and_kthread_exit(0);
}

/*
 * netlink vm-migrate: start the thread that sends @vm over the socket
 * @file.  Takes its own references; the end comes as an event.
 */
int lvmm_vm_migrate(struct lvmm_vm *vm, struct file *file,
		    const struct lvmm_migrate_req *req,
		    struct netlink_ext_ack *extack)
{
	struct task_struct *task;
	struct lvmm_migration *m;
	int r = 0;

	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		return -ENOMEM;
	m->mask = (unsigned long *)__get_free_page(GFP_KERNEL);
	if (req->checksum)
		m->bounce = kvmalloc(LVMM_STREAM_BOUNCE, GFP_KERNEL);
	if (!m->mask || (req->checksum && !m->bounce)) {
		free_page((unsigned long)m->mask);
		kvfree(m->bounce);
		kfree(m);
		return -ENOMEM;
	}
	if (!try_module_get(THIS_MODULE)) {
		free_page((unsigned long)m->mask);
		kvfree(m->bounce);
		kfree(m);
		return -ENOENT;
	}
	m->vm = vm;
	m->req = *req;
	m->sock = sock_from_file(file);
	lvmm_stream_init(&m->st, file);
	/*
	 * The guest runs while its pages are read.  Without migrate-checksum
	 * they go from its memory to the socket, TCP's checksum theirs (as
	 * QEMU's); with it, through the bounce buffer into the checksum.
	 */
	m->st.unsummed = !req->checksum;
	m->st.bounce = m->bounce;
	m->cred = get_current_cred();
	m->memcg = get_mem_cgroup_from_mm(current->mm);

	/* A hint (vm->slots_lock, not under vm->lock): the thread knows. */
	if (lvmm_vm_logs_dirty(vm)) {
		NL_SET_ERR_MSG(extack,
			       "the VMM logs dirty pages of a slot: a migration needs the log, stop that first");
		r = -EBUSY;
		goto out_free;
	}
	mutex_lock(&vm->lock);
	task = lvmm_vm_worker(vm, lvmm_mig_thread, m, "lvmm-migrate");
	if (IS_ERR(task)) {
		r = PTR_ERR(task);
		if (r == -ENOENT)
			NL_SET_ERR_MSG(extack, "the VM has been destroyed");
		else if (r == -EBUSY)
			NL_SET_ERR_MSG(extack,
				       "a save or a migration of this VM runs");
		goto out_unlock;
	}
	get_file(file);
	vm->migration = m;
	mutex_unlock(&vm->lock);
	lvmm_mig_set_timeouts(m->sock, LVMM_MIG_SOURCE_TIMEOUT);
	wake_up_process(task);
	return 0;

out_unlock:
	mutex_unlock(&vm->lock);
out_free:
	put_cred(m->cred);
	mem_cgroup_put(m->memcg);
	module_put(THIS_MODULE);
	free_page((unsigned long)m->mask);
	kvfree(m->bounce);
	kfree(m);
	return r;
}

int lvmm_vm_migrate_cancel(struct lvmm_vm *vm, struct netlink_ext_ack *extack)
{
	struct lvmm_migration *m;
	int r = 0;

	mutex_lock(&vm->lock);
	m = vm->migration;
	if (!m) {
		NL_SET_ERR_MSG(extack, "no migration of this VM runs");
		r = -ENOENT;
	} else if (m->committed) {
		NL_SET_ERR_MSG(extack,
			       "too late: the VM is being handed over to the destination");
		r = -EBUSY;
	} else if (!m->cancelled) {
		m->cancelled = true;
		send_sig(SIGKILL, vm->save_task, 1);
	}
	mutex_unlock(&vm->lock);
	return r;
}

/* The destination's socket, for LVMM_RESTORE_VM: it only answers. */
void lvmm_mig_incoming_prepare(struct file *file)
{
	lvmm_mig_set_timeouts(sock_from_file(file), LVMM_MIG_DEST_TIMEOUT);
	lvmm_mig_nodelay(sock_from_file(file));
}
