// SPDX-License-Identifier: GPL-2.0
/*
 * lvmm-snap-bench: what a snapshot of a 256 MiB VM costs
 * (Documentation/migration.rst): netlink vm-save to a file on tmpfs
 * against dd writing as many bytes there, LVMM_RESTORE_VM of that file
 * to the restored guest's first exit, and how long the save held the
 * vCPUs.  Run by scripts/bench in the --smp 1 sandbox.
 *
 *   lvmm-snap-bench [-r RUNS] [-d DIR]
 *
 * The VM: slot 0 (2 MiB at GPA 0) holds the code and a flag byte; slot 1
 * (256 MiB at GPA 256 MiB, 2 MiB aligned, so lvmm backs it with 2 MiB
 * pages) has every 4 KiB page written by the guest, its own address in
 * its first dword: no page is zero, so the stream carries all of them.
 * The guest then spins on the flag; once the VMM sets it, the guest
 * exits with an OUT, and spins again when the VMM has cleared it.
 *
 * Each run, lvmm and dd in alternating order (the host is noisy: this
 * spreads its slow phases over both), after one warm-up run:
 *   save     a vCPU thread is in RUN with the guest spinning (vcpu-get
 *            says so), so that the save must park it; from sending
 *            vm-save to the saved event on the events group (subscribed
 *            to first).  Then the flag stops the guest: the source VM
 *            ran on after the save, and does not take the one CPU from
 *            what follows
 *   restore  lvmm_vm_restore() (LVMM_RESTORE_VM) of that file, then
 *            LVMM_GET_VCPU with its run structure mapped, slot 0 mapped
 *            and the flag set, and RUN to the first exit: the OUT right
 *            after the spin loop the guest was saved in
 *   dd       dd if=/dev/zero of=DIR/... bs=1M count=N, a subprocess, N
 *            the stream's size in MiB rounded up
 *
 * Every run is checked (the saved event's error, the stream's size and
 * header, the restored guest's first exit and memory, dd's status and
 * file) so that a broken run prints an error, never a number.  Prints
 * the runs, a table and then, medians over the runs:
 *   metric save_256m R        lvmm save throughput over dd's (goal >= 0.8)
 *   metric restore_256m_ms X  restore to the first exit, ms (the table
 *                             splits it: the ioctl, the rest)
 *   metric pause_ms X         the saved event's pause-ns, ms: the vCPUs
 *                             stay parked for the whole save
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <netlink/netlink.h>
#include <netlink/genl/genl.h>
#include <linux/lvmm_nl.h>

#include "bench-util.h"

#define MIB		(1ULL << 20)

#define CODE_GPA	0x1000
#define FLAG_GPA	0x2000
#define LOW_SIZE	(2 * MIB)	/* slot 0 at GPA 0: code and flag */
#define BIG_GPA		(256 * MIB)	/* slot 1: the 256 MiB */
#define BIG_SIZE	(256 * MIB)
#define BIG_PAGES	(BIG_SIZE / 4096)

#define PORT_READY	0x11
#define PORT_GO		0x12

/* The stream: every page of slot 1, a page or two of slot 0, a vCPU. */
#define STREAM_MIN	BIG_SIZE
#define STREAM_MAX	(BIG_SIZE + MIB)

#define RESTORED_NAME	"snap-bench-restored"

/*
 * 32-bit code at CODE_GPA.  edi = BIG_GPA, ecx = BIG_PAGES: write each
 * page's address to it, say ready, then spin until the flag is set; OUT
 * to PORT_GO, and spin again.
 */
static const uint8_t code[] = {
	0x89, 0x3f,			/* 1000 mov %edi,(%edi)        */
	0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, /* 1002 add $0x1000,%edi   */
	0x49,				/* 1008 dec %ecx               */
	0x75, 0xf5,			/* 1009 jnz 1000               */
	0xe6, PORT_READY,		/* 100b out %al,$0x11          */
	0x80, 0x3d, 0x00, 0x20, 0x00, 0x00, 0x00, /* 100d cmpb $0,0x2000 */
	0x74, 0xf7,			/* 1014 je 100d                */
	0xe6, PORT_GO,			/* 1016 out %al,$0x12          */
	0xeb, 0xf3,			/* 1018 jmp 100d               */
};

const char *const bench_name = "lvmm-snap-bench";

/* ---- netlink ------------------------------------------------------------- */

static int vcpu_state_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[LVMM_A_VCPU_MAX + 1];
	uint32_t *state = arg;

	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, LVMM_A_VCPU_MAX, NULL) < 0 ||
	    !tb[LVMM_A_VCPU_ID] || nla_get_u32(tb[LVMM_A_VCPU_ID]) != 0 ||
	    !tb[LVMM_A_VCPU_STATE])
		return NL_OK;
	*state = nla_get_u32(tb[LVMM_A_VCPU_STATE]);
	return NL_OK;
}

/* vcpu-get: the state of vCPU 0 of @vm_id. */
static uint32_t vcpu_state(uint32_t vm_id)
{
	struct nl_msg *m = nl_req(LVMM_CMD_VCPU_GET, NLM_F_DUMP, vm_id);
	uint32_t state = 0;
	int r;

	nl_socket_modify_cb(nl, NL_CB_VALID, NL_CB_CUSTOM, vcpu_state_cb,
			    &state);
	r = nl_send_auto(nl, m);
	nlmsg_free(m);
	if (r >= 0)
		r = nl_recvmsgs_default(nl);
	if (r < 0)
		die("vcpu-get: %s", nl_geterror(r));
	nl_socket_modify_cb(nl, NL_CB_VALID, NL_CB_DEFAULT, NULL, NULL);
	if (!state)
		die("vcpu-get: no state for vCPU 0 of VM %u", vm_id);
	return state;
}

/* What the saved event said, and when it came. */
struct saved {
	uint32_t vm_id;
	int got;
	unsigned int progress;		/* save-progress events before it */
	uint32_t error;
	uint64_t bytes, total, pause_ns, t;
};

static int event_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[LVMM_A_VM_MAX + 1];
	struct saved *s = arg;
	uint64_t t = now_ns();
	uint32_t event;

	if (!nl_vm_event(msg, s->vm_id, tb, &event))
		return NL_OK;
	if (event == LVMM_EVENT_SAVE_PROGRESS) {
		s->progress++;
		return NL_OK;
	}
	if (event != LVMM_EVENT_SAVED)
		return NL_OK;
	if (!tb[LVMM_A_VM_SAVE_ERROR] || !tb[LVMM_A_VM_SAVE_BYTES] ||
	    !tb[LVMM_A_VM_SAVE_TOTAL] || !tb[LVMM_A_VM_PAUSE_NS])
		die("the saved event lacks save-error, save-bytes, save-total or pause-ns");
	s->error = nla_get_u32(tb[LVMM_A_VM_SAVE_ERROR]);
	s->bytes = nla_get_u64(tb[LVMM_A_VM_SAVE_BYTES]);
	s->total = nla_get_u64(tb[LVMM_A_VM_SAVE_TOTAL]);
	s->pause_ns = nla_get_u64(tb[LVMM_A_VM_PAUSE_NS]);
	s->t = t;
	s->got = 1;
	return NL_OK;
}

/* The saved event of @s->vm_id, within a minute. */
static void wait_saved(struct saved *s)
{
	uint64_t deadline = now_ns() + 60000000000ull;

	if (!nl_wait_events(event_cb, s, &s->got, deadline, 1000))
		die("no saved event for VM %u within 60 s", s->vm_id);
}

/* ---- the VM and its vCPU thread -------------------------------------------- */

static int dev;
static struct lvmm_vm_handle vm;
static struct lvmm_vcpu_handle vcpu;
static volatile uint8_t *low;		/* slot 0, the VMM's view */
static pthread_t thread;

/* Between main and the vCPU thread; under ctl.lock. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int want;		/* main: 1 run until an exit, -1 quit */
	int in_run;		/* the thread: in its RUN loop */
	int r;			/* its last RUN's return, */
	struct lvmm_run exit;	/* and the exit */
} ctl = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void *vcpu_thread(void *arg)
{
	int r;

	(void)arg;
	pthread_mutex_lock(&ctl.lock);
	for (;;) {
		while (!ctl.want)
			pthread_cond_wait(&ctl.cond, &ctl.lock);
		if (ctl.want < 0)
			break;
		ctl.in_run = 1;
		pthread_mutex_unlock(&ctl.lock);
		do
			r = lvmm_run(&vcpu);
		while (r == -EINTR);
		pthread_mutex_lock(&ctl.lock);
		ctl.r = r;
		ctl.exit = *vcpu.run;
		ctl.want = 0;
		ctl.in_run = 0;
		pthread_cond_broadcast(&ctl.cond);
	}
	pthread_mutex_unlock(&ctl.lock);
	return NULL;
}

static void expect_go(int r, const struct lvmm_run *run, const char *what)
{
	if (r)
		die("%s: RUN: %s", what, strerror(-r));
	if (run->exit_reason != LVMM_EXIT_IO ||
	    run->io.direction != LVMM_EXIT_IO_OUT || run->io.port != PORT_GO)
		die("%s: expected OUT to 0x%x, got exit %s (port 0x%x)", what,
		    PORT_GO, lvmm_exit_reason_name(run->exit_reason),
		    run->exit_reason == LVMM_EXIT_IO ? run->io.port : 0);
}

/* The guest spins in RUN, in the vCPU thread. */
static void vcpu_start(void)
{
	uint64_t deadline;

	__atomic_store_n(&low[FLAG_GPA], 0, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&ctl.lock);
	ctl.want = 1;
	pthread_cond_broadcast(&ctl.cond);
	pthread_mutex_unlock(&ctl.lock);
	deadline = now_ns() + 5000000000ull;
	while (vcpu_state(vm.id) != LVMM_VCPU_STATE_RUNNING) {
		if (now_ns() > deadline)
			die("the vCPU is not in RUN 5 s after it was started");
		usleep(10000);
	}
	usleep(20000);		/* and in the guest */
}

/* The flag: the guest exits with its OUT, the thread leaves RUN. */
static void vcpu_stop(const char *what)
{
	struct lvmm_run exit;
	struct timespec ts;
	int r = 0, run_r;

	__atomic_store_n(&low[FLAG_GPA], 1, __ATOMIC_SEQ_CST);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&ctl.lock);
	while ((ctl.want > 0 || ctl.in_run) && !r)
		r = pthread_cond_timedwait(&ctl.cond, &ctl.lock, &ts);
	run_r = ctl.r;
	exit = ctl.exit;
	pthread_mutex_unlock(&ctl.lock);
	if (r)
		die("%s: the guest did not exit within 10 s of its flag", what);
	expect_go(run_r, &exit, what);
}

static void vm_setup(void)
{
	struct lvmm_regs regs;
	void *p;
	uint64_t t0, t1;
	int r;

	r = lvmm_vm_create(dev, "snap-bench", &vm);
	if (r)
		die("LVMM_CREATE_VM: %s", strerror(-r));
	r = lvmm_set_memslot(&vm, 0, 0, 0, LOW_SIZE) ?:
	    lvmm_set_memslot(&vm, 1, 0, BIG_GPA, BIG_SIZE);
	if (r)
		die("LVMM_SET_MEMSLOT: %s", strerror(-r));
	r = lvmm_memslot_map(&vm, 0, LOW_SIZE, PROT_READ | PROT_WRITE, &p);
	if (r)
		die("mmap of slot 0: %s", strerror(-r));
	low = p;
	memcpy((void *)(low + CODE_GPA), code, sizeof(code));
	vcpu_create_flat32(&vm, &vcpu, CODE_GPA, BIG_PAGES, BIG_GPA);

	/* The guest writes all of slot 1. */
	t0 = now_ns();
	r = lvmm_run(&vcpu);
	t1 = now_ns();
	if (r || vcpu.run->exit_reason != LVMM_EXIT_IO ||
	    vcpu.run->io.port != PORT_READY)
		die("first write of slot 1: expected OUT to 0x%x, got %s (%s)",
		    PORT_READY, r ? "an error" :
		    lvmm_exit_reason_name(vcpu.run->exit_reason),
		    strerror(-r));
	r = lvmm_get_regs(&vcpu, &regs);
	if (r || (uint32_t)regs.rcx || regs.rdi != BIG_GPA + BIG_SIZE)
		die("first write of slot 1: ecx %llu, edi 0x%llx; expected 0 and 0x%llx",
		    (unsigned long long)regs.rcx,
		    (unsigned long long)regs.rdi, BIG_GPA + BIG_SIZE);
	printf("the guest wrote every page of its 256 MiB in %.1f ms\n",
	       (t1 - t0) / 1e6);
	if (pthread_create(&thread, NULL, vcpu_thread, NULL))
		die("pthread_create failed");
}

static void vm_teardown(void)
{
	pthread_mutex_lock(&ctl.lock);
	ctl.want = -1;
	pthread_cond_broadcast(&ctl.cond);
	pthread_mutex_unlock(&ctl.lock);
	pthread_join(thread, NULL);
	lvmm_vcpu_close(&vcpu);
	lvmm_memslot_unmap((void *)low, LOW_SIZE);
	lvmm_vm_close(&vm);
}

/* ---- one run ----------------------------------------------------------------- */

static char save_path[256], dd_path[256], dd_err[256];

struct sample {
	double save_ns, pause_ns, restore_ns, ioctl_ns, dd_ns;
	uint64_t bytes, dd_bytes;
	unsigned int progress;
};

/* The stream begins with the header record of this VM. */
static void check_header(int fd)
{
	struct {
		struct lvmm_rec rec;
		struct lvmm_stream_header h;
	} buf;

	if (pread(fd, &buf, sizeof(buf), 0) != sizeof(buf))
		die("%s: cannot read its header", save_path);
	if (buf.rec.type != LVMM_REC_HEADER ||
	    buf.h.magic != LVMM_STREAM_MAGIC || buf.h.nr_vcpus != 1 ||
	    buf.h.nr_slots != 2 || buf.h.mem_size != LOW_SIZE + BIG_SIZE ||
	    strcmp(buf.h.name, vm.name))
		die("%s: the header is not of VM %s (type %u, magic 0x%llx, %u vCPUs, %u slots, %llu bytes)",
		    save_path, vm.name, buf.rec.type,
		    (unsigned long long)buf.h.magic, buf.h.nr_vcpus,
		    buf.h.nr_slots, (unsigned long long)buf.h.mem_size);
}

static void save_once(struct sample *smp)
{
	struct saved s = { .vm_id = vm.id };
	struct nl_msg *m;
	struct stat st;
	uint64_t t0;
	int fd, r;

	/* Read too, for its header once written. */
	fd = open(save_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("%s: %s", save_path, strerror(errno));
	vcpu_start();
	m = nl_req(LVMM_CMD_VM_SAVE, 0, vm.id);
	if (nla_put_u32(m, LVMM_A_VM_SAVE_FD, fd))
		die("out of memory");
	t0 = now_ns();
	r = nl_send_sync(nl, m);
	if (r < 0)
		die("vm-save: %s", nl_geterror(r));
	wait_saved(&s);
	vcpu_stop("the source VM after its save");

	if (s.error)
		die("vm-save: the saved event reports error %u (%s)", s.error,
		    strerror(s.error));
	if (fstat(fd, &st))
		die("%s: %s", save_path, strerror(errno));
	if ((uint64_t)st.st_size != s.bytes)
		die("%s: %llu bytes, but the saved event says %llu", save_path,
		    (unsigned long long)st.st_size,
		    (unsigned long long)s.bytes);
	if (s.bytes < STREAM_MIN || s.bytes > STREAM_MAX)
		die("the stream is %llu bytes, not 256 MiB to 257 MiB: not every page was saved",
		    (unsigned long long)s.bytes);
	if (s.bytes > s.total)
		die("the stream is %llu bytes, over the save-total bound %llu",
		    (unsigned long long)s.bytes, (unsigned long long)s.total);
	/* The vCPUs parked after the request, thawed before the event. */
	if (!s.pause_ns || s.pause_ns > 2 * (s.t - t0) + 50000000)
		die("pause-ns %llu with the save taking %llu ns",
		    (unsigned long long)s.pause_ns,
		    (unsigned long long)(s.t - t0));
	check_header(fd);
	close(fd);
	smp->save_ns = s.t - t0;
	smp->pause_ns = s.pause_ns;
	smp->bytes = s.bytes;
	smp->progress = s.progress;
}

static void check_page(volatile uint32_t *big, uint64_t i)
{
	if (big[i * 1024] != BIG_GPA + i * 4096 || big[i * 1024 + 1])
		die("restore: page %llu of slot 1 reads 0x%x 0x%x, not 0x%llx 0",
		    (unsigned long long)i, big[i * 1024], big[i * 1024 + 1],
		    BIG_GPA + i * 4096);
}

/* The restored memory is what the guest wrote, and the code is in place. */
static void check_restored(struct lvmm_vm_handle *rvm, volatile uint8_t *rlow)
{
	volatile uint32_t *big;
	uint64_t i;
	void *p;
	int r;

	if (memcmp((const void *)(rlow + CODE_GPA), code, sizeof(code)))
		die("restore: the code in slot 0 differs");
	r = lvmm_memslot_map(rvm, 1, BIG_SIZE, PROT_READ, &p);
	if (r)
		die("restore: mmap of slot 1: %s", strerror(-r));
	big = p;
	for (i = 0; i < BIG_PAGES; i += 61)
		check_page(big, i);
	check_page(big, BIG_PAGES - 1);
	lvmm_memslot_unmap(p, BIG_SIZE);
}

static void restore_once(struct sample *smp)
{
	struct lvmm_vm_handle rvm;
	struct lvmm_vcpu_handle rv;
	volatile uint8_t *rlow;
	uint64_t t0, t1, t2;
	uint32_t nr = 0;
	void *p;
	int fd, r;

	fd = open(save_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("%s: %s", save_path, strerror(errno));
	t0 = now_ns();
	r = lvmm_vm_restore(dev, fd, RESTORED_NAME, &rvm, &nr);
	t1 = now_ns();
	if (r)
		die("LVMM_RESTORE_VM of %s: %s%s", save_path, strerror(-r),
		    r == -EEXIST ? " (the last run's restored VM lingers)" :
		    "");
	if (nr != 1)
		die("LVMM_RESTORE_VM: %u vCPUs, not 1", nr);
	r = lvmm_vcpu_get(&rvm, 0, &rv);
	if (r)
		die("LVMM_GET_VCPU 0 of the restored VM: %s", strerror(-r));
	r = lvmm_memslot_map(&rvm, 0, LOW_SIZE, PROT_READ | PROT_WRITE, &p);
	if (r)
		die("restore: mmap of slot 0: %s", strerror(-r));
	rlow = p;
	rlow[FLAG_GPA] = 1;
	r = lvmm_run(&rv);
	t2 = now_ns();
	expect_go(r, rv.run, "the restored guest's first exit");
	close(fd);

	check_restored(&rvm, rlow);
	lvmm_vcpu_close(&rv);
	lvmm_memslot_unmap(p, LOW_SIZE);
	lvmm_vm_close(&rvm);
	smp->restore_ns = t2 - t0;
	smp->ioctl_ns = t1 - t0;
}

extern char **environ;

static void dd_once(struct sample *smp, uint64_t bytes)
{
	unsigned long mib = (bytes + MIB - 1) / MIB;
	char count[32], of[300], msg[256] = "";
	char *argv[] = { "dd", "if=/dev/zero", of, "bs=1M", count, NULL };
	posix_spawn_file_actions_t fa;
	struct stat st;
	uint64_t t0, t1;
	int status, r;
	pid_t pid;
	FILE *f;

	snprintf(count, sizeof(count), "count=%lu", mib);
	snprintf(of, sizeof(of), "of=%s", dd_path);
	/* posix_spawn(): no copy of this process's page tables to time. */
	if (posix_spawn_file_actions_init(&fa) ||
	    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) ||
	    posix_spawn_file_actions_addopen(&fa, 2, dd_err,
					     O_WRONLY | O_CREAT | O_TRUNC,
					     0600))
		die("posix_spawn_file_actions failed");
	t0 = now_ns();
	r = posix_spawnp(&pid, "dd", &fa, NULL, argv, environ);
	if (r)
		die("cannot run dd: %s", strerror(r));
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid: %s", strerror(errno));
	t1 = now_ns();
	posix_spawn_file_actions_destroy(&fa);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		f = fopen(dd_err, "r");
		if (f) {
			if (!fgets(msg, sizeof(msg), f))
				msg[0] = 0;
			fclose(f);
		}
		msg[strcspn(msg, "\n")] = 0;
		die("dd %s %s failed (status 0x%x): %s", of, count, status,
		    msg);
	}
	if (stat(dd_path, &st))
		die("dd left no %s: %s", dd_path, strerror(errno));
	if ((uint64_t)st.st_size != mib * MIB)
		die("dd wrote %lld bytes to %s, not %llu",
		    (long long)st.st_size, dd_path, mib * MIB);
	unlink(dd_path);
	unlink(dd_err);
	smp->dd_ns = t1 - t0;
	smp->dd_bytes = mib * MIB;
}

/* lvmm then dd, or dd then lvmm: the stream's size from the warm-up. */
static void run_once(struct sample *smp, int dd_first, uint64_t bytes)
{
	if (dd_first)
		dd_once(smp, bytes);
	save_once(smp);
	restore_once(smp);
	unlink(save_path);
	if (!dd_first)
		dd_once(smp, smp->bytes);
}

/* ---- figures ------------------------------------------------------------------ */

static double mibps(uint64_t bytes, double ns)
{
	return bytes / (double)MIB / (ns / 1e9);
}

static void row(const char *name, const char *what, const char *unit,
		struct stat3 s)
{
	printf("%-15s %-44s %-5s %9.1f %9.1f %9.1f\n", name, what, unit,
	       s.med, s.min, s.max);
}

/* The runs' figures, each in the unit the table shows. */
struct figures {
	double save[MAX_RUNS], dd[MAX_RUNS];	/* MiB/s */
	double pause[MAX_RUNS];			/* ms, and so on */
	double restore[MAX_RUNS], ioctl[MAX_RUNS], rest[MAX_RUNS];
	unsigned int n;
};

/* The table, then the metric lines: medians over the runs. */
static void report(const struct figures *f, uint64_t bytes, const char *fs)
{
	struct stat3 save = stats(f->save, f->n), dd = stats(f->dd, f->n);
	struct stat3 pause = stats(f->pause, f->n);
	struct stat3 restore = stats(f->restore, f->n);
	struct stat3 ioctl = stats(f->ioctl, f->n);
	double ratio = save.med / dd.med;

	printf("\nsnapshot of a 256 MiB VM, every page written by its guest: stream %.2f MiB (%llu bytes) on %s, %u runs\n",
	       bytes / (double)MIB, (unsigned long long)bytes, fs, f->n);
	printf("%-15s %-44s %-5s %9s %9s %9s\n", "row", "what", "unit",
	       "median", "min", "max");
	row("save", "vm-save: request to saved event", "MiB/s", save);
	row("dd", "dd of as many bytes, same directory", "MiB/s", dd);
	printf("%-15s %-44s %-5s %9.2f %9s %9s\n", "save_256m",
	       "save over dd throughput (goal >= 0.8)", "x", ratio, "-", "-");
	row("pause_ms", "vCPUs held parked (saved event's pause-ns)", "ms",
	    pause);
	row("restore_256m_ms", "LVMM_RESTORE_VM to the guest's first exit",
	    "ms", restore);
	row("  ioctl", "lvmm_vm_restore() alone", "ms", ioctl);
	row("  rest", "GET_VCPU, mmaps, flag, RUN to the exit", "ms",
	    stats(f->rest, f->n));
	printf("(the ioctl is %.0f %% of the restore, medians)\n",
	       ioctl.med / restore.med * 100);
	printf("\nmetric save_256m %.2f\n", ratio);
	printf("metric restore_256m_ms %.1f\n", restore.med);
	printf("metric pause_ms %.1f\n", pause.med);
}

static void read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, n, "?");
	if (!f)
		return;
	if (fgets(buf, n, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: lvmm-snap-bench [-r RUNS] [-d DIR]\n"
		"  -r N    runs after the warm-up (default 5, at most %d)\n"
		"  -d DIR  where the stream and dd's file go (default /tmp,\n"
		"          tmpfs in the sandbox)\n", MAX_RUNS);
	exit(2);
}

int main(int argc, char **argv)
{
	struct figures f = { .n = 5 };
	unsigned int i;
	const char *dir = "/tmp";
	struct sample smp;
	char cs[64], fs[32];
	struct statfs sfs;
	struct utsname u;
	struct stat st;
	int c;

	while ((c = getopt(argc, argv, "r:d:h")) != -1) {
		switch (c) {
		case 'r':
			f.n = strtoul(optarg, NULL, 0);
			if (!f.n || f.n > MAX_RUNS)
				die("-r: 1..%d", MAX_RUNS);
			break;
		case 'd':
			dir = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	snprintf(save_path, sizeof(save_path), "%s/lvmm-snap-bench.snap", dir);
	snprintf(dd_path, sizeof(dd_path), "%s/lvmm-snap-bench.dd", dir);
	snprintf(dd_err, sizeof(dd_err), "%s/lvmm-snap-bench.dd-err", dir);
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		die("-d %s: not a directory", dir);

	dev = lvmm_open();
	if (dev < 0)
		die("open %s: %s (is lvmm.ko loaded?)", LVMM_DEV_PATH,
		    strerror(-dev));
	if (lvmm_check_extension(dev, LVMM_CAP_SNAPSHOT) < 1)
		die("lvmm has no snapshots (LVMM_CAP_SNAPSHOT)");
	nl_init(true);
	uname(&u);
	read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		  cs, sizeof(cs));
	if (statfs(dir, &sfs))
		die("statfs %s: %s", dir, strerror(errno));
	if (sfs.f_type == TMPFS_MAGIC)
		snprintf(fs, sizeof(fs), "tmpfs");
	else
		snprintf(fs, sizeof(fs), "fs 0x%lx", (unsigned long)sfs.f_type);
	printf("lvmm-snap-bench: kernel=%s cpus=%ld clocksource=%s dir=%s (%s) runs=%u (+1 warm-up)\n",
	       u.release, sysconf(_SC_NPROCESSORS_ONLN), cs, dir, fs, f.n);

	vm_setup();
	run_once(&smp, 0, 0);		/* warm-up */
	for (i = 0; i < f.n; i++) {
		run_once(&smp, i % 2, smp.bytes);
		f.save[i] = mibps(smp.bytes, smp.save_ns);
		f.dd[i] = mibps(smp.dd_bytes, smp.dd_ns);
		f.pause[i] = smp.pause_ns / 1e6;
		f.restore[i] = smp.restore_ns / 1e6;
		f.ioctl[i] = smp.ioctl_ns / 1e6;
		f.rest[i] = (smp.restore_ns - smp.ioctl_ns) / 1e6;
		printf("run %u%s: save %.1f ms (%.1f MiB/s, pause %.1f ms, %u progress events), dd %.1f ms (%.1f MiB/s), restore %.1f ms (ioctl %.1f + %.1f)\n",
		       i + 1, i % 2 ? " dd first" : "", smp.save_ns / 1e6,
		       f.save[i], f.pause[i], smp.progress, smp.dd_ns / 1e6,
		       f.dd[i], f.restore[i], f.ioctl[i], f.rest[i]);
		fflush(stdout);
	}
	vm_teardown();

	report(&f, smp.bytes, fs);
	return 0;
}
