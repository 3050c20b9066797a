// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm_fuzz: random guest code and random ioctls against /dev/lvmm.
 *
 * Worker processes create VMs in a loop: a 2 MiB slot of random bytes at
 * GPA 0, one to three vCPUs in real, protected or long mode or in random
 * segment and control-register state, one thread per vCPU calling RUN
 * under a 20 ms SIGALRM, and the worker's main thread acting as the
 * controller: it changes registers under the running vCPUs, injects
 * interrupts and NMIs, deletes and adds slots, issues mutated ioctls and
 * races close() and munmap() against the vCPU threads.  One VM in three
 * has the in-kernel irqchip: its guests also get loops of xAPIC page,
 * x2APIC MSR, APIC base, TSC-deadline and I/O APIC accesses and sti; hlt,
 * and a thread of its own raises and lowers the I/O APIC's lines.  Now
 * and then a worker saves its VM with vmctl and restores mutated copies
 * of the stream, and a vCPU whose entry QEMU refused replays issue 13's
 * reproducer (fz_replay_issue13()).  Every
 * third round the parent SIGKILLs the worker at a random moment.  A child
 * runs vmctl on the same VMs meanwhile, and sends random generic-netlink
 * requests of the lvmm family beside it.  See issues 8 and 13.
 *
 * Everything derives from the seed printed on the first line, so that a
 * round's choices can be replayed (the interleaving of threads cannot).
 * Kernel-side problems (WARN, lockdep, RCU stalls) are found by the
 * sandbox's console scan; the fuzzer fails only on what userspace sees:
 * a worker killed by a signal we did not send, a RUN errno outside the
 * expected set, a worker that SIGKILL cannot end, or VMs left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "lvmm.h"
#include "linux/lvmm_nl.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id	_sigev_un._tid
#endif

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))

#define FZ_MEM_SIZE		(2ULL << 20)	/* slot 0 */
#define FZ_PAGE			4096ULL
#define FZ_MAX_VCPUS		3
#define FZ_MAX_SLOTS		32		/* LVMM_CAP_MAX_MEMSLOTS */
#define FZ_TICK_NS		20000000L	/* SIGALRM period of RUN threads */
#define FZ_BUF_SIZE		(32 << 10)	/* mutated ioctl arguments */

/* The parent's time limits, in seconds past --seconds. */
#define FZ_GRACE		4.0	/* a worker may overstay its round */
#define FZ_REAP			6.0	/* every worker reaped by then */
#define FZ_VMCTL_STOP		8.0	/* the vmctl child gone by then */
#define FZ_LEFTOVER_END		11.0	/* stop retrying the leftover check */
#define FZ_BACKSTOP		14	/* alarm(): kill everything, fail */

/* One vmctl command: killed by its own alarm(), then by us. */
#define FZ_VMCTL_ALARM		4
#define FZ_VMCTL_DEADLINE	5.0
#define FZ_VMCTL_SLOW_MS	3000

enum fz_mode { FZ_REAL, FZ_PROT, FZ_LONG, FZ_RANDOM, FZ_MIX };

static const char *const fz_mode_names[] = {
	[FZ_REAL] = "real", [FZ_PROT] = "prot", [FZ_LONG] = "long",
	[FZ_RANDOM] = "random", [FZ_MIX] = "mix",
};

struct fz_opts {
	unsigned int seconds;
	uint64_t seed;
	unsigned int procs;
	bool kill;
	enum fz_mode mode;
	const char *vmctl;	/* NULL: not found */
	int verbose;
};

/* ---- the PRNG: splitmix64 to derive seeds, xorshift64* to draw --------- */

struct fz_rng {
	uint64_t s;
};

static uint64_t fz_splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The seed of sub-object @n of @seed: rounds, VMs, threads. */
static uint64_t fz_derive(uint64_t seed, uint64_t n)
{
	return fz_splitmix(seed ^ fz_splitmix(n + 1));
}

static void fz_rng_init(struct fz_rng *rng, uint64_t seed)
{
	rng->s = fz_splitmix(seed) ? : 1;	/* xorshift's one bad state */
}

static uint64_t fz_rand(struct fz_rng *rng)
{
	uint64_t x = rng->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng->s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t fz_below(struct fz_rng *rng, uint64_t n)
{
	return n ? fz_rand(rng) % n : 0;
}

/* True one time in @n. */
static bool fz_chance(struct fz_rng *rng, uint64_t n)
{
	return fz_below(rng, n) == 0;
}

/* A random page-aligned offset into slot 0. */
static uint64_t fz_page(struct fz_rng *rng)
{
	return fz_below(rng, FZ_MEM_SIZE / FZ_PAGE) * FZ_PAGE;
}

/* Values that hit the boundaries guest code and the kernel care about. */
static uint64_t fz_interesting(struct fz_rng *rng)
{
	static const uint64_t edges[] = {
		0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x10000, 0x7fffffff,
		0x80000000, 0xffffffff, 0x100000000ULL, 0x00007fffffffffffULL,
		0x0000800000000000ULL, 0xffff800000000000ULL,
		0x7fffffffffffffffULL, 0x8000000000000000ULL, ~0ULL,
		0xfee00000, 0xfec00000, 0xb8000, 0xa0000,
	};

	switch (fz_below(rng, 8)) {
	case 0:
		return edges[fz_below(rng, ARRAY_SIZE(edges))];
	case 1:
		return fz_below(rng, FZ_MEM_SIZE);		/* RAM */
	case 2:
		return fz_below(rng, 1ULL << 32);		/* MMIO */
	case 3:
		return fz_below(rng, 256);			/* counts */
	case 4:
		return 0xffff800000000000ULL | fz_rand(rng);	/* canonical */
	default:
		return fz_rand(rng);
	}
}

/* ---- statistics, shared by every process so that a SIGKILL loses none -- */

struct fz_ioctl_name {
	unsigned long cmd;
	const char *name;
};

static const struct fz_ioctl_name fz_ioctls[] = {
	{ LVMM_GET_API_VERSION, "GET_API_VERSION" },
	{ LVMM_CHECK_EXTENSION, "CHECK_EXTENSION" },
	{ LVMM_CREATE_VM, "CREATE_VM" },
	{ LVMM_GET_VCPU_MMAP_SIZE, "GET_VCPU_MMAP_SIZE" },
	{ LVMM_SET_MEMSLOT, "SET_MEMSLOT" },
	{ LVMM_CREATE_VCPU, "CREATE_VCPU" },
	{ LVMM_GET_VM_INFO, "GET_VM_INFO" },
	{ LVMM_RUN, "RUN" },
	{ LVMM_GET_REGS, "GET_REGS" },
	{ LVMM_SET_REGS, "SET_REGS" },
	{ LVMM_GET_SREGS, "GET_SREGS" },
	{ LVMM_SET_SREGS, "SET_SREGS" },
	{ LVMM_GET_XSAVE, "GET_XSAVE" },
	{ LVMM_SET_XSAVE, "SET_XSAVE" },
	{ LVMM_GET_MSRS, "GET_MSRS" },
	{ LVMM_SET_MSRS, "SET_MSRS" },
	{ LVMM_SET_CPUID, "SET_CPUID" },
	{ LVMM_GET_CPUID, "GET_CPUID" },
	{ LVMM_INTERRUPT, "INTERRUPT" },
	{ LVMM_NMI, "NMI" },
	/* The dirty log (LVMM_CAP_DIRTY_LOG). */
	{ LVMM_SET_MEMSLOT_FLAGS, "SET_MEMSLOT_FLAGS" },
	{ LVMM_GET_DIRTY_LOG, "GET_DIRTY_LOG" },
	{ LVMM_CLEAR_DIRTY_LOG, "CLEAR_DIRTY_LOG" },
	/* The rest of the state: LVMM_CAP_VCPU_STATE, LVMM_CAP_SNAPSHOT. */
	{ LVMM_GET_VCPU, "GET_VCPU" },
	{ LVMM_SET_VMM_STATE, "SET_VMM_STATE" },
	{ LVMM_GET_VMM_STATE, "GET_VMM_STATE" },
	{ LVMM_GET_VCPU_EVENTS, "GET_VCPU_EVENTS" },
	{ LVMM_SET_VCPU_EVENTS, "SET_VCPU_EVENTS" },
	{ LVMM_GET_DEBUGREGS, "GET_DEBUGREGS" },
	{ LVMM_SET_DEBUGREGS, "SET_DEBUGREGS" },
	{ LVMM_GET_XCRS, "GET_XCRS" },
	{ LVMM_SET_XCRS, "SET_XCRS" },
	/* The in-kernel irqchip (LVMM_CAP_IRQCHIP). */
	{ LVMM_CREATE_IRQCHIP, "CREATE_IRQCHIP" },
	{ LVMM_IRQ_LINE, "IRQ_LINE" },
	{ LVMM_GET_IOAPIC, "GET_IOAPIC" },
	{ LVMM_SET_IOAPIC, "SET_IOAPIC" },
	{ LVMM_GET_LAPIC, "GET_LAPIC" },
	{ LVMM_SET_LAPIC, "SET_LAPIC" },
	{ LVMM_GET_MP_STATE, "GET_MP_STATE" },
	{ LVMM_SET_MP_STATE, "SET_MP_STATE" },
	/* Migration (LVMM_CAP_SNAPSHOT, LVMM_CAP_MIGRATE). */
	{ LVMM_RESTORE_VM, "RESTORE_VM" },
	{ LVMM_INCOMING_FINISH, "INCOMING_FINISH" },
};

#define FZ_NR_IOC	(ARRAY_SIZE(fz_ioctls) + 1)	/* last: any other */
#define FZ_NR_ERRNO	134				/* 0: out of range */
#define FZ_NR_EXITS	(LVMM_EXIT_MIGRATED + 2)	/* last: out of range */

enum fz_vmctl_cmd {
	FZ_VMCTL_LIST, FZ_VMCTL_SHOW, FZ_VMCTL_STAT, FZ_VMCTL_PAUSE,
	FZ_VMCTL_RESUME, FZ_VMCTL_DESTROY, FZ_NR_VMCTL,
};

static const char *const fz_vmctl_names[] = {
	"list", "show", "stat", "pause", "resume", "destroy",
};

struct fz_stats {
	uint64_t rounds, rounds_killed, rounds_overstayed, worker_errors;
	uint64_t vms, vm_create_failed, vcpus, runs;
	uint64_t exits[FZ_NR_EXITS];
	uint64_t resets, sregs_fallbacks, sigbus, signals, nmis, irqs;
	uint64_t slot_ops, close_races, map_races, mutated, mem_writes;
	uint64_t bad_io_offset;
	uint64_t irqchip_vms, irqchip_failed, apic_code, sane_idt;
	uint64_t irq_line_ops, ioapic_progs, lapic_progs, run_eintr;
	uint64_t mp_seen[4];
	uint64_t guest_irqs;		/* taken through fz_sane_idt() */
	uint64_t eintr_waiting;		/* RUN ended by a signal in HLT/SIPI */		/* GET_MP_STATE: each state, last: other */
	uint64_t bad_run;		/* RUN errno outside the expected set */
	/* Saved streams, mutated and restored (fz_restore_mutated()). */
	uint64_t saves, restores, restores_ok;
	/* Issue 13's reproducer, replayed after a refused entry. */
	uint64_t replays, replay_slow, replay_max_us;
	int bad_run_errno;		/* the first one */
	uint64_t ioc_calls[FZ_NR_IOC], ioc_ok[FZ_NR_IOC];
	uint64_t ioc_err[FZ_NR_IOC][FZ_NR_ERRNO];
	uint64_t vmctl_runs[FZ_NR_VMCTL], vmctl_failed[FZ_NR_VMCTL];
	uint64_t vmctl_hung, vmctl_slow, vmctl_max_ms;
	/* Random generic-netlink messages of the lvmm family. */
	uint64_t nl_sent, nl_ok, nl_dumps, nl_lost;
	uint64_t nl_err[FZ_NR_ERRNO];
	int vmctl_stop;			/* set by the parent */
};

static struct fz_stats *stats;

#define fz_inc(x)	__atomic_fetch_add(&(x), 1, __ATOMIC_RELAXED)
#define fz_load(x)	__atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define fz_store(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

static unsigned int fz_ioctl_index(unsigned long cmd)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(fz_ioctls); i++)
		if (fz_ioctls[i].cmd == cmd)
			return i;
	return FZ_NR_IOC - 1;
}

/* Count an ioctl's outcome (@r: >= 0 or -errno) and hand it back. */
static int fz_note(unsigned long cmd, int r)
{
	unsigned int i = fz_ioctl_index(cmd);

	fz_inc(stats->ioc_calls[i]);
	if (r >= 0)
		fz_inc(stats->ioc_ok[i]);
	else
		fz_inc(stats->ioc_err[i][-r < FZ_NR_ERRNO ? -r : 0]);
	return r;
}

/* A raw ioctl, counted; returns >= 0 or -errno. */
static int fz_ioctl(int fd, unsigned long cmd, void *arg)
{
	int r = ioctl(fd, cmd, arg);

	return fz_note(cmd, r < 0 ? -errno : r);
}

static double fz_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fz_sleep_us(uint64_t us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* One line in one write(), so that processes do not interleave within it. */
static void __attribute__((format(printf, 1, 2))) fz_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDOUT_FILENO, buf, n) < 0)
		return;
}

static const char *fz_errname(int err)
{
	const char *s = err ? strerrorname_np(err) : NULL;

	return s ? s : "E?";
}

/* ---- guest memory writes that survive the slot going away ------------- */

/*
 * The controller deletes slot 0 (and a mutated SET_MEMSLOT may do so too)
 * while the mapping stays: a write then faults with SIGBUS, which is the
 * documented behaviour, not a finding.  Writes to guest memory arm this
 * per-thread guard; a SIGBUS anywhere else kills the worker as it should.
 */
static __thread sigjmp_buf fz_bus_env;
static __thread volatile sig_atomic_t fz_bus_armed;

static void fz_sigbus(int sig)
{
	if (fz_bus_armed) {
		fz_bus_armed = 0;
		siglongjmp(fz_bus_env, 1);
	}
	/* Not ours: die of it, for the parent to see. */
	signal(sig, SIG_DFL);
}

static bool fz_guarded_copy(void *dst, const void *src, size_t len)
{
	if (sigsetjmp(fz_bus_env, 0)) {
		fz_inc(stats->sigbus);
		return false;
	}
	fz_bus_armed = 1;
	memcpy(dst, src, len);
	fz_bus_armed = 0;
	return true;
}

static bool fz_guarded_read(void *dst, const void *src, size_t len)
{
	return fz_guarded_copy(dst, src, len);
}

/* ---- the corpus: instruction sequences planted at a vCPU's entry point -- */

struct fz_snippet {
	unsigned char len;
	unsigned char code[7];
};

/*
 * Random bytes rarely form the sequences that matter, so a third of the
 * vCPUs start on one of these.  The decodings are for 32/64-bit code;
 * in real mode the same bytes mean something close enough.
 */
static const struct fz_snippet fz_corpus[] = {
	/* Spins: a host interrupt must end VMRUN whatever IF says. */
	{ 3, { 0xfb, 0xeb, 0xfe } },		/* sti; jmp $ */
	{ 3, { 0xfa, 0xeb, 0xfe } },		/* cli; jmp $ */
	/* Interrupt shadows back to back (issue 13's first candidate). */
	{ 4, { 0x8e, 0xd0, 0xeb, 0xfc } },	/* mov ss, ax; jmp -4 */
	{ 3, { 0xfb, 0xeb, 0xfd } },		/* sti; jmp -3 */
	{ 6, { 0x8e, 0xd0, 0xfb, 0x8e, 0xd0, 0xf4 } }, /* mov ss; sti; mov ss; hlt */
	{ 4, { 0xfb, 0xf4, 0xeb, 0xfc } },	/* sti; hlt; jmp -4 */
	{ 4, { 0xfa, 0xf4, 0xeb, 0xfc } },	/* cli; hlt; jmp -4 */
	{ 4, { 0xf3, 0x90, 0xeb, 0xfc } },	/* pause; jmp -4 */
	/* Port I/O, and string I/O with whatever count RCX holds. */
	{ 6, { 0xe6, 0x80, 0xe4, 0x61, 0xeb, 0xfa } }, /* out 80; in 61; jmp */
	{ 2, { 0xf3, 0x6e } },			/* rep outsb */
	{ 2, { 0xf3, 0x6c } },			/* rep insb */
	{ 2, { 0xf3, 0x6d } },			/* rep insd */
	{ 2, { 0xf3, 0x6f } },			/* rep outsd */
	/* SVM instructions in the guest must be intercepted. */
	{ 3, { 0x0f, 0x01, 0xd8 } },		/* vmrun */
	{ 3, { 0x0f, 0x01, 0xd9 } },		/* vmmcall */
	{ 3, { 0x0f, 0x01, 0xda } },		/* vmload */
	{ 3, { 0x0f, 0x01, 0xdb } },		/* vmsave */
	{ 3, { 0x0f, 0x01, 0xdc } },		/* stgi */
	{ 3, { 0x0f, 0x01, 0xdd } },		/* clgi */
	{ 3, { 0x0f, 0x01, 0xde } },		/* skinit */
	{ 3, { 0x0f, 0x01, 0xdf } },		/* invlpga */
	/* Intercepted or emulated instructions. */
	{ 2, { 0x0f, 0xa2 } },			/* cpuid */
	{ 2, { 0x0f, 0x32 } },			/* rdmsr */
	{ 2, { 0x0f, 0x30 } },			/* wrmsr */
	{ 3, { 0x0f, 0x01, 0xf9 } },		/* rdtscp */
	{ 4, { 0xf3, 0x0f, 0xc7, 0xf8 } },	/* rdpid eax */
	{ 3, { 0x0f, 0x01, 0xd1 } },		/* xsetbv */
	{ 6, { 0x0f, 0x01, 0xc8, 0x0f, 0x01, 0xc9 } }, /* monitor; mwait */
	{ 4, { 0x0f, 0x08, 0x0f, 0x09 } },	/* invd; wbinvd */
	{ 3, { 0x0f, 0x22, 0xc0 } },		/* mov cr0, eax */
	{ 3, { 0x0f, 0x22, 0xd8 } },		/* mov cr3, eax */
	{ 3, { 0x0f, 0x22, 0xe0 } },		/* mov cr4, eax */
	{ 4, { 0x44, 0x0f, 0x22, 0xc0 } },	/* mov cr8, rax */
	/* CR8 with an interrupt queued: QEMU 7.2 aborted on it. */
	{ 7, { 0xfa, 0x44, 0x0f, 0x22, 0xc0, 0xeb, 0xf9 } }, /* cli; mov cr8; jmp */
	/* Long mode enabled, not active: paging without PAE is #GP. */
	{ 6, { 0x0f, 0x22, 0xc0, 0x0f, 0x06, 0xf4 } },	/* mov cr0; clts; hlt */
	{ 3, { 0x0f, 0x23, 0xf8 } },		/* mov dr7, eax */
	{ 3, { 0x0f, 0x01, 0x38 } },		/* invlpg [eax] */
	/* Exceptions, and a triple fault through a random IDT. */
	{ 4, { 0x0f, 0x01, 0x18, 0xcc } },	/* lidt [eax]; int3 */
	{ 2, { 0x0f, 0x0b } },			/* ud2 */
	{ 1, { 0xf1 } },			/* icebp */
	{ 2, { 0xcd, 0x80 } },			/* int 0x80 */
	{ 1, { 0xcf } },			/* iret */
	{ 2, { 0x0f, 0x05 } },			/* syscall */
	{ 2, { 0x0f, 0x34 } },			/* sysenter */
	/* MMIO: eax is often an address outside every slot. */
	{ 4, { 0x89, 0x00, 0x8b, 0x00 } },	/* mov [eax], eax; mov eax, [eax] */
	{ 3, { 0xf0, 0x87, 0x18 } },		/* lock xchg [eax], ebx */
	{ 2, { 0xf3, 0xa4 } },			/* rep movsb */
	{ 3, { 0x0f, 0xae, 0x28 } },		/* xrstor [eax] */
	{ 3, { 0x0f, 0xae, 0x10 } },		/* ldmxcsr [eax] */
};

/* ---- VMs, vCPUs ------------------------------------------------------- */

struct fz_vm;

struct fz_vcpu {
	struct fz_vm *vm;
	struct lvmm_vcpu_handle h;
	unsigned int index;
	char what[24];		/* the first setup's mode and snippet, for -v */
	uint64_t seed;
	pthread_t thread;
	bool started;
	int fd_gone;		/* the controller replaced our fd */
	int done;		/* the RUN thread has left its loop */
	bool replay;		/* the next RUN is issue 13's spin */
	uint64_t idt_page;	/* fz_sane_idt()'s, or ~0 */
	uint64_t idt_slot0;	/* slot 0's address then */
};

struct fz_vm {
	const struct fz_opts *o;
	struct lvmm_vm_handle h;
	int devnull;
	uint64_t seed;
	pthread_mutex_t mem_lock;	/* mem, slot0_gpa */
	uint8_t *mem;			/* slot 0's mapping, or NULL */
	uint64_t slot0_gpa;		/* ~0: slot 0 deleted */
	uint32_t extra_slots;		/* bit n: slot n added (controller) */
	int vm_fd_gone;			/* the VM fd is /dev/null now */
	int stop;
	int dead;			/* a RUN said VM_DESTROYED */
	bool irqchip;			/* LVMM_CREATE_IRQCHIP succeeded */
	pthread_t irq_thread;		/* drives the I/O APIC's lines */
	bool irq_started;
	unsigned int nvcpus;
	struct fz_vcpu vcpu[FZ_MAX_VCPUS];
	uint8_t *buf;			/* FZ_BUF_SIZE, the controller's */
};

/* Copy to guest-physical @gpa when slot 0 holds it; false otherwise. */
static bool fz_mem_write(struct fz_vm *vm, uint64_t gpa, const void *src,
			 size_t len)
{
	bool ok = false;

	pthread_mutex_lock(&vm->mem_lock);
	if (vm->mem && gpa >= vm->slot0_gpa &&
	    gpa - vm->slot0_gpa + len <= FZ_MEM_SIZE)
		ok = fz_guarded_copy(vm->mem + (gpa - vm->slot0_gpa), src, len);
	pthread_mutex_unlock(&vm->mem_lock);
	if (ok)
		fz_inc(stats->mem_writes);
	return ok;
}

/* Fill @len bytes at guest-physical @gpa with random bytes. */
static void fz_mem_fill(struct fz_vm *vm, uint64_t gpa, uint64_t len,
			struct fz_rng *rng)
{
	uint64_t page[FZ_PAGE / 8];
	uint64_t off, i;

	for (off = 0; off < len; off += FZ_PAGE) {
		for (i = 0; i < ARRAY_SIZE(page); i++)
			page[i] = fz_rand(rng);
		if (!fz_mem_write(vm, gpa + off, page,
				  len - off < FZ_PAGE ? len - off : FZ_PAGE))
			return;
	}
}

/* ---- guest code that pokes the in-kernel APICs -------------------------- */

#define FZ_APIC_BASE		0xfee00000U
#define FZ_APIC_CODE_MAX	120	/* a short jmp back reaches the start */

/*
 * A program of APIC accesses, assembled for the vCPU's code size: 32-bit
 * operands and addresses need 0x66/0x67 in 16-bit code.  EBX holds the
 * page's address for each MMIO access, so that the same bytes work in
 * 32- and 64-bit code (mod 10 r/m 011: [rbx + disp32]).
 */
struct fz_code {
	uint8_t b[FZ_APIC_CODE_MAX + 32];
	unsigned int n;
	bool o16;
};

static void fz_emit8(struct fz_code *c, uint8_t v)
{
	c->b[c->n++] = v;
}

static void fz_emit32(struct fz_code *c, uint32_t v)
{
	memcpy(c->b + c->n, &v, 4);
	c->n += 4;
}

/* mov r32, imm32: B8+r */
static void fz_emit_mov(struct fz_code *c, unsigned int reg, uint32_t v)
{
	if (c->o16)
		fz_emit8(c, 0x66);
	fz_emit8(c, 0xb8 + reg);
	fz_emit32(c, v);
}

/* mov dword [ebx + off], v, or mov eax, [ebx + off] */
static void fz_emit_mmio(struct fz_code *c, uint32_t base, uint32_t off,
			 bool write, uint32_t v)
{
	fz_emit_mov(c, 3, base);
	if (c->o16) {
		fz_emit8(c, 0x67);
		fz_emit8(c, 0x66);
	}
	fz_emit8(c, write ? 0xc7 : 0x8b);
	fz_emit8(c, 0x83);
	fz_emit32(c, off);
	if (write)
		fz_emit32(c, v);
}

static void fz_emit_msr(struct fz_code *c, uint32_t index, bool write,
			uint64_t v)
{
	fz_emit_mov(c, 1, index);
	if (write) {
		fz_emit_mov(c, 0, v);
		fz_emit_mov(c, 2, v >> 32);
	}
	fz_emit8(c, 0x0f);
	fz_emit8(c, write ? 0x30 : 0x32);
}

/* The xAPIC register offsets that do something, ICR and timer first. */
static const uint16_t fz_apic_regs[] = {
	0x300, 0x300, 0x310, 0x320, 0x380, 0x380, 0x3e0, 0x0b0, 0x0b0,
	0x0f0, 0x0f0, 0x080, 0x020, 0x030, 0x0a0, 0x0d0, 0x0e0, 0x100,
	0x200, 0x280, 0x330, 0x340, 0x350, 0x360, 0x370, 0x390, 0x3f0,
};

/* A value worth writing to the APIC register at @off. */
static uint64_t fz_apic_value(uint32_t off, bool x2apic, struct fz_rng *rng)
{
	uint32_t vec = fz_chance(rng, 16) ? fz_below(rng, 32) :
					   32 + fz_below(rng, 224);

	if (fz_chance(rng, 8))
		return fz_interesting(rng);
	switch (off) {
	case 0x300: {		/* ICR: mode, level, trigger, shorthand */
		uint64_t icr = vec | fz_below(rng, 8) << 8 |
			       (fz_chance(rng, 4) ? 1 << 11 : 0) |
			       (fz_chance(rng, 2) ? 1 << 14 : 0) |
			       (fz_chance(rng, 8) ? 1 << 15 : 0) |
			       fz_below(rng, 4) << 18;
		uint32_t dest = fz_chance(rng, 4) ? 0xff : fz_below(rng, 4);

		if (x2apic)
			return icr | (uint64_t)(dest == 0xff ? ~0U : dest) << 32;
		return icr;
	}
	case 0x310:
		return (fz_chance(rng, 4) ? 0xffU : fz_below(rng, 4)) << 24;
	case 0x320:		/* LVT timer: one-shot, periodic, deadline */
		return vec | fz_below(rng, 4) << 17 |
		       (fz_chance(rng, 8) ? 1 << 16 : 0);
	case 0x380:		/* tiny counts: the timer fires at once */
		return fz_chance(rng, 4) ? 0 : 1 + fz_below(rng, 2000);
	case 0x3e0:
		return fz_below(rng, 16);
	case 0x0b0:
		return fz_chance(rng, 8) ? fz_rand(rng) : 0;
	case 0x0f0:		/* SVR: mostly software-enabled */
		return vec | (fz_chance(rng, 4) ? 0 : 1 << 8);
	case 0x080:
		return fz_below(rng, 256);
	case 0x020:
		return fz_below(rng, 4) << 24;
	default:		/* LVTs and the rest */
		return vec | fz_below(rng, 8) << 8 |
		       (fz_chance(rng, 4) ? 1 << 16 : 0);
	}
}

static const uint64_t fz_apic_bases[] = {
	0xfee00900, 0xfee00800, 0xfee00d00, 0xfee00c00, 0, 0xfee00100,
	0xfee00500, 0xfee00400, 0xfed00900, 0xfee00000,
};

/*
 * Plant at @entry a loop of xAPIC page and x2APIC MSR accesses, APIC base
 * switches, TSC-deadline arming, I/O APIC programming and sti; hlt.
 * Returns false when nothing was written.
 */
static bool fz_apic_code(struct fz_vm *vm, uint64_t entry, bool o16,
			 struct fz_rng *rng)
{
	struct fz_code c = { .o16 = o16 };
	bool x2apic = fz_chance(rng, 3);

	if (x2apic)		/* mostly: into x2APIC mode first */
		fz_emit_msr(&c, 0x1b, true, fz_chance(rng, 4) ?
			    fz_apic_bases[fz_below(rng,
						   ARRAY_SIZE(fz_apic_bases))] :
			    0xfee00c00 | (fz_chance(rng, 2) ? 0x100 : 0));
	while (c.n + 40 < FZ_APIC_CODE_MAX) {
		uint32_t off = fz_apic_regs[fz_below(rng,
						     ARRAY_SIZE(fz_apic_regs))];
		unsigned int w = fz_below(rng, 100);

		if (fz_chance(rng, 8))
			off = fz_below(rng, 4096) & ~(fz_chance(rng, 4) ? 0 : 3);
		if (w < 30) {
			fz_emit_mmio(&c, FZ_APIC_BASE, off, true,
				     fz_apic_value(off, false, rng));
		} else if (w < 40) {
			fz_emit_mmio(&c, FZ_APIC_BASE, off, false, 0);
		} else if (w < 60) {
			uint32_t msr = fz_chance(rng, 8) ?
				       0x800 + fz_below(rng, 256) :
				       0x800 + (off >> 4);

			fz_emit_msr(&c, msr, !fz_chance(rng, 4),
				    fz_apic_value((msr & 0xff) << 4, true,
						  rng));
		} else if (w < 66) {
			fz_emit_msr(&c, 0x1b, !fz_chance(rng, 4),
				    fz_chance(rng, 8) ? fz_interesting(rng) :
				    fz_apic_bases[fz_below(rng,
						ARRAY_SIZE(fz_apic_bases))]);
		} else if (w < 72) {
			/* rdtsc; add eax, small; wrmsr TSC_DEADLINE */
			fz_emit8(&c, 0x0f);
			fz_emit8(&c, 0x31);
			if (c.o16)
				fz_emit8(&c, 0x66);
			fz_emit8(&c, 0x05);
			fz_emit32(&c, fz_below(rng, 100000));
			fz_emit_mov(&c, 1, 0x6e0);
			fz_emit8(&c, 0x0f);
			fz_emit8(&c, 0x30);
		} else if (w < 80) {
			/* I/O APIC: select a redirection entry, write it. */
			uint32_t pin = fz_below(rng, LVMM_IOAPIC_PINS + 2);

			fz_emit_mmio(&c, LVMM_IOAPIC_BASE, 0, true,
				     0x10 + 2 * pin + fz_chance(rng, 4));
			fz_emit_mmio(&c, LVMM_IOAPIC_BASE, 0x10,
				     !fz_chance(rng, 8),
				     (32 + fz_below(rng, 224)) |
				     fz_below(rng, 8) << 8 |
				     (fz_chance(rng, 2) ? 1 << 15 : 0) |
				     (fz_chance(rng, 8) ? 1 << 16 : 0));
		} else if (w < 95) {
			fz_emit8(&c, 0xfb);		/* sti; hlt */
			fz_emit8(&c, 0xf4);
		} else {
			fz_emit8(&c, 0xfa);		/* cli */
		}
	}
	if (!fz_chance(rng, 8)) {			/* jmp to the start */
		fz_emit8(&c, 0xeb);
		fz_emit8(&c, (uint8_t)-(int)(c.n + 1));
	}
	if (!fz_mem_write(vm, entry, c.b, c.n))
		return false;
	fz_inc(stats->apic_code);
	return true;
}

#define FZ_IDT_MAGIC	0x4349504141504943ULL	/* beside the counter */

/*
 * Add what the handler of fz_sane_idt() counted on @v's page to the
 * guests' interrupts, if the page still holds the count: the slot may
 * have been deleted, refilled or moved since, or the guest written it.
 */
static void fz_idt_harvest(struct fz_vm *vm, struct fz_vcpu *v)
{
	/* The RUN thread and the controller both set vCPUs up. */
	uint64_t page = __atomic_exchange_n(&v->idt_page, ~0ULL,
					    __ATOMIC_ACQ_REL);
	uint64_t word[2];
	bool ok = false;

	if (page == ~0ULL)
		return;
	pthread_mutex_lock(&vm->mem_lock);
	if (vm->mem && vm->slot0_gpa == v->idt_slot0 &&
	    page - vm->slot0_gpa < FZ_MEM_SIZE)
		ok = fz_guarded_read(word, vm->mem + (page - vm->slot0_gpa) +
				     0x30, sizeof(word));
	pthread_mutex_unlock(&vm->mem_lock);
	if (ok && word[1] == FZ_IDT_MAGIC && word[0] < (1ULL << 32))
		__atomic_fetch_add(&stats->guest_irqs, word[0],
				   __ATOMIC_RELAXED);
}

/*
 * For 32-bit protected mode on an identity map: a flat GDT and an IDT
 * whose every gate leads to "count; EOI; iret", so that the APIC's
 * interrupts are taken and acknowledged again and again rather than
 * ending in a triple fault through random tables, and we see how many.
 * A TSS too, for the guests that iret to CPL 3 or virtual-8086 mode.
 *
 * Its TR is "available" (type 9), not busy as the CPU leaves it: QEMU
 * 7.2 aborts the whole sandbox ("qemu: fatal: invalid tss type") when a
 * guest whose VMCB TR says busy switches stacks through it, and a valid
 * IDT lets random code get that far within a minute.
 */
static void fz_sane_idt(struct fz_vm *vm, struct fz_vcpu *v,
			struct lvmm_sregs *s, struct lvmm_regs *r,
			struct fz_rng *rng)
{
	/* Through SS: from virtual-8086 mode DS arrives null. */
	uint8_t handler[] = {
		0xf0, 0x36, 0xff, 0x05, 0, 0, 0, 0,		/* lock inc */
		0x36, 0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe,	/* EOI */
		0, 0, 0, 0,
		0xcf,						/* iret */
	};
	/* Exceptions with an error code: pop it first, or iret goes wild. */
	static const uint8_t pop_error[] = {
		0x83, 0xc4, 0x04,			/* add esp, 4 */
		0xeb, 0x40 - 0x67,			/* jmp handler */
	};
	static const uint32_t has_error = 1 << 8 | 0x7c00 | 1 << 17 |
					  1 << 21 | 1 << 29 | 1 << 30;
	uint64_t page = fz_load(vm->slot0_gpa) + fz_page(rng);
	uint64_t tbl[FZ_PAGE / 8];
	uint32_t h, counter = page + 0x30, tss = page + 0x100, esp0;
	unsigned int i;

	fz_idt_harvest(vm, v);
	memcpy(handler + 4, &counter, 4);
	memset(tbl, 0, sizeof(tbl));
	tbl[1] = 0x00cf9b000000ffffULL;		/* 0x08: code */
	tbl[2] = 0x00cf93000000ffffULL;		/* 0x10: data */
	tbl[3] = 0x67 | (uint64_t)(tss & 0xffffff) << 16 |	/* 0x18: TSS */
		 0x89ULL << 40 | (uint64_t)(tss >> 24) << 56;
	tbl[7] = FZ_IDT_MAGIC;			/* 0x38, the counter at 0x30 */
	memcpy((uint8_t *)tbl + 0x40, handler, sizeof(handler));
	memcpy((uint8_t *)tbl + 0x62, pop_error, sizeof(pop_error));
	for (i = 0; i < 256; i++) {
		h = page + (i < 32 && (has_error >> i & 1) ? 0x62 : 0x40);
		tbl[256 + i] = (h & 0xffff) | 0x08ULL << 16 |
			       0x8eULL << 40 | (uint64_t)(h >> 16) << 48;
	}
	r->rsp = fz_load(vm->slot0_gpa) + 0x100 +
		 (fz_below(rng, FZ_MEM_SIZE - 0x200) & ~15ULL);
	esp0 = r->rsp;
	memcpy((uint8_t *)tbl + 0x104, &esp0, 4);
	tbl[0x108 / 8] = 0x10;			/* SS0 */
	if (!fz_mem_write(vm, page, tbl, sizeof(tbl)))
		return;
	s->gdt.base = page;
	s->gdt.limit = 31;
	memset(&s->tr, 0, sizeof(s->tr));
	s->tr.base = tss;
	s->tr.limit = 0x67;
	s->tr.selector = 0x18;
	s->tr.type = 9;
	s->tr.present = 1;
	s->idt.base = page + 0x800;
	s->idt.limit = 0x7ff;
	v->idt_slot0 = fz_load(vm->slot0_gpa);
	fz_store(v->idt_page, page);
	fz_inc(stats->sane_idt);
}

/* ---- register state ---------------------------------------------------- */

#define FZ_CR0_EM	(1ULL << 2)
#define FZ_CR0_TS	(1ULL << 3)
#define FZ_CR0_AM	(1ULL << 18)
#define FZ_CR0_NW	(1ULL << 29)
#define FZ_CR0_CD	(1ULL << 30)
#define FZ_RFLAGS_TF	(1ULL << 8)
#define FZ_RFLAGS_IF	(1ULL << 9)
#define FZ_RFLAGS_AC	(1ULL << 18)

/* CR4 bits every SVM host accepts (svm_cr4_supported()), PAE aside. */
static const uint64_t fz_cr4_bits[] = {
	1 << 0,		/* VME */
	1 << 1,		/* PVI */
	1 << 2,		/* TSD */
	1 << 3,		/* DE */
	1 << 4,		/* PSE */
	1 << 6,		/* MCE */
	1 << 7,		/* PGE */
	1 << 8,		/* PCE */
	X86_CR4_OSFXSR,
	X86_CR4_OSXMMEXCPT,
};

/* Bits the host may lack: SET_SREGS then says EINVAL, and we fall back. */
static const uint64_t fz_cr4_maybe[] = {
	1 << 11,	/* UMIP */
	1 << 12,	/* LA57 */
	1 << 16,	/* FSGSBASE */
	1 << 17,	/* PCIDE */
	1 << 18,	/* OSXSAVE */
	1 << 20,	/* SMEP */
	1 << 21,	/* SMAP */
};

static uint64_t fz_cr4_random(struct fz_rng *rng)
{
	uint64_t cr4 = 0;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(fz_cr4_bits); i++)
		if (fz_chance(rng, 3))
			cr4 |= fz_cr4_bits[i];
	if (fz_chance(rng, 8))
		cr4 |= fz_cr4_maybe[fz_below(rng, ARRAY_SIZE(fz_cr4_maybe))];
	return cr4;
}

static uint64_t fz_cr0_extra(struct fz_rng *rng)
{
	static const uint64_t bits[] = {
		X86_CR0_MP, FZ_CR0_EM, FZ_CR0_TS, X86_CR0_WP, FZ_CR0_AM,
		FZ_CR0_CD,
	};
	uint64_t cr0 = X86_CR0_ET | (fz_chance(rng, 4) ? 0 : X86_CR0_NE);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bits); i++)
		if (fz_chance(rng, 5))
			cr0 |= bits[i];
	return cr0;
}

static void fz_random_regs(struct lvmm_regs *r, struct fz_rng *rng)
{
	__u64 *gpr[] = {
		&r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
		&r->rsp, &r->rbp, &r->r8, &r->r9, &r->r10, &r->r11,
		&r->r12, &r->r13, &r->r14, &r->r15,
	};
	unsigned int i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < ARRAY_SIZE(gpr); i++)
		*gpr[i] = fz_interesting(rng);
	if (fz_chance(rng, 2))
		r->rsp = fz_below(rng, FZ_MEM_SIZE) & ~7ULL;
	if (fz_chance(rng, 8)) {
		r->rflags = fz_rand(rng);	/* the kernel masks it */
	} else {
		r->rflags = 2;
		if (fz_chance(rng, 2))
			r->rflags |= FZ_RFLAGS_IF;
		if (fz_chance(rng, 8))
			r->rflags |= FZ_RFLAGS_TF;
		if (fz_chance(rng, 8))
			r->rflags |= FZ_RFLAGS_AC;
	}
}

static void fz_seg_real(struct lvmm_segment *s, __u16 sel)
{
	memset(s, 0, sizeof(*s));
	s->base = (__u64)sel << 4;
	s->limit = 0xffff;
	s->selector = sel;
	s->type = 3;
	s->s = 1;
	s->present = 1;
}

static void fz_sys_segs(struct lvmm_sregs *s, struct fz_rng *rng, bool real)
{
	memset(&s->tr, 0, sizeof(s->tr));
	s->tr.base = fz_page(rng);
	s->tr.limit = real ? 0xffff : 0x67;
	s->tr.selector = real ? 0 : 0x18;
	s->tr.type = real ? 3 : 11;	/* busy 16-bit / 32- or 64-bit TSS */
	s->tr.present = 1;
	memset(&s->ldt, 0, sizeof(s->ldt));
	s->ldt.type = 2;
	s->ldt.present = 1;
	s->ldt.limit = 0xffff;
	if (fz_chance(rng, 2))
		s->ldt.unusable = 1;
	s->gdt.base = fz_below(rng, FZ_MEM_SIZE);
	s->gdt.limit = fz_chance(rng, 2) ? 0xffff : fz_below(rng, 0x10000);
	s->idt.base = real ? 0 : fz_below(rng, FZ_MEM_SIZE);
	s->idt.limit = real ? 0x3ff : (fz_chance(rng, 2) ? 0xfff :
				       fz_below(rng, 0x10000));
	s->cr2 = fz_chance(rng, 2) ? 0 : fz_rand(rng);
	s->cr8 = fz_chance(rng, 2) ? 0 : fz_below(rng, 16);
}

/* Real mode: CS base random 16-byte aligned, RIP below 64 KiB. */
static uint64_t fz_mode_real(struct lvmm_sregs *s, struct lvmm_regs *r,
			     struct fz_rng *rng)
{
	struct lvmm_segment *data[] = { &s->ds, &s->es, &s->fs, &s->gs,
					&s->ss };
	unsigned int i;

	fz_seg_real(&s->cs, fz_below(rng, 0x10000));
	s->cs.type = 11;
	for (i = 0; i < ARRAY_SIZE(data); i++)
		fz_seg_real(data[i], fz_chance(rng, 2) ? 0 :
				     fz_below(rng, 0x10000));
	fz_sys_segs(s, rng, true);
	s->cr0 = fz_cr0_extra(rng);
	s->cr3 = fz_chance(rng, 2) ? 0 : fz_page(rng);
	/*
	 * Unused without paging, but QEMU 7.2 refuses a CR3 at or above its
	 * 2^40 at VMRUN and used to leave V_INTR_MASKING clear: issue 13's
	 * stall (Documentation/sandbox.rst, section 3).
	 */
	if (fz_chance(rng, 8))
		s->cr3 |= 1ULL << (40 + fz_below(rng, 12));
	s->cr4 = fz_cr4_random(rng);
	s->efer = fz_chance(rng, 4) ? EFER_SCE | EFER_NX : 0;
	r->rip = fz_below(rng, 0x10000);
	return s->cs.base + r->rip;
}

/* A 4 KiB page of page-table entries at @gpa. */
static void fz_write_table(struct fz_vm *vm, uint64_t gpa, const void *tbl)
{
	fz_mem_write(vm, gpa, tbl, FZ_PAGE);
}

/*
 * Flat 32-bit protected mode, without paging, with 32-bit paging (an
 * identity map of 4 MiB pages, or random directory entries) or with PAE
 * paging on random tables.
 */
static uint64_t fz_mode_prot(struct fz_vm *vm, struct lvmm_sregs *s,
			     struct lvmm_regs *r, struct fz_rng *rng)
{
	uint64_t base = fz_load(vm->slot0_gpa), entry = ~0ULL;
	uint32_t pd[1024];
	unsigned int i;
	bool db = !fz_chance(rng, 8);		/* sometimes 16-bit code */

	lvmm_seg_flat(&s->cs, 0x08, 11, false, db);
	lvmm_seg_flat(&s->ds, 0x10, 3, false, true);
	s->es = s->fs = s->gs = s->ss = s->ds;
	if (fz_chance(rng, 8))
		s->ds.base = fz_below(rng, 1ULL << 32);
	fz_sys_segs(s, rng, false);
	s->cr0 = fz_cr0_extra(rng) | X86_CR0_PE;
	s->cr4 = fz_cr4_random(rng);
	s->efer = fz_chance(rng, 4) ? EFER_NX : 0;
	s->cr3 = base + fz_page(rng);
	r->rip = fz_below(rng, FZ_MEM_SIZE - 16);

	switch (fz_below(rng, 4)) {
	case 0:			/* 32-bit paging */
		s->cr0 |= X86_CR0_PG;
		s->cr4 &= ~X86_CR4_PAE;
		if (fz_chance(rng, 2)) {
			s->cr4 |= 1 << 4;	/* PSE */
			for (i = 0; i < ARRAY_SIZE(pd); i++)
				pd[i] = (i << 22) | 0x83;
			entry = r->rip;
		} else {
			for (i = 0; i < ARRAY_SIZE(pd); i++)
				pd[i] = (base + fz_page(rng)) |
					(fz_rand(rng) & 0xfff);
		}
		fz_write_table(vm, s->cr3, pd);
		break;
	case 1:			/* PAE paging on random tables */
		s->cr0 |= X86_CR0_PG;
		s->cr4 |= X86_CR4_PAE;
		s->cr3 = base + fz_below(rng, FZ_MEM_SIZE) / 32 * 32;
		break;
	default:
		s->cr4 &= ~X86_CR4_PAE;
		entry = r->rip;
		/*
		 * Long mode enabled, not active: QEMU 7.2's #VMEXIT lost the
		 * host's CR0 from here (Documentation/sandbox.rst).
		 */
		if (fz_chance(rng, 3))
			s->efer |= EFER_LME;
		break;
	}
	return entry;
}

/*
 * Long mode on a PML4 at a random page of slot 0: either a valid identity
 * map of the first GiB in 2 MiB pages (so that code runs long, and every
 * access above slot 0 is MMIO) or entries pointing at random pages.
 */
static uint64_t fz_mode_long(struct fz_vm *vm, struct lvmm_sregs *s,
			     struct lvmm_regs *r, struct fz_rng *rng)
{
	uint64_t base = fz_load(vm->slot0_gpa), entry = ~0ULL;
	uint64_t tbl[FZ_PAGE / 8];
	uint64_t pml4 = base + fz_page(rng);
	unsigned int i;

	lvmm_seg_flat(&s->cs, 0x08, 11, true, false);
	lvmm_seg_flat(&s->ds, 0x10, 3, false, true);
	s->es = s->fs = s->gs = s->ss = s->ds;
	if (fz_chance(rng, 8))
		s->fs.base = fz_interesting(rng);
	if (fz_chance(rng, 8))
		s->gs.base = fz_interesting(rng);
	fz_sys_segs(s, rng, false);
	s->cr0 = fz_cr0_extra(rng) | X86_CR0_PE | X86_CR0_PG;
	s->cr0 &= ~FZ_CR0_CD;
	s->cr4 = (fz_cr4_random(rng) | X86_CR4_PAE) & ~(1ULL << 12);
	s->efer = EFER_LME | EFER_LMA;
	if (fz_chance(rng, 2))
		s->efer |= EFER_SCE;
	if (fz_chance(rng, 2))
		s->efer |= EFER_NX;
	s->cr3 = pml4;

	if (fz_chance(rng, 2)) {
		uint64_t pdpt = base + fz_page(rng), pd = base + fz_page(rng);

		memset(tbl, 0, sizeof(tbl));
		tbl[0] = pdpt | 3;
		fz_write_table(vm, pml4, tbl);
		memset(tbl, 0, sizeof(tbl));
		tbl[0] = pd | 3;
		if (fz_chance(rng, 4))
			tbl[fz_below(rng, 512)] = pd | 3;	/* an alias */
		if (vm->irqchip) {
			/* The fourth GiB too: the APIC pages are in it. */
			uint64_t pd3 = base + fz_page(rng);

			tbl[3] = pd3 | 3;
			fz_write_table(vm, pdpt, tbl);
			for (i = 0; i < ARRAY_SIZE(tbl); i++)
				tbl[i] = (3ULL << 30) | ((uint64_t)i << 21) |
					 0x83;
			fz_write_table(vm, pd3, tbl);
		} else {
			fz_write_table(vm, pdpt, tbl);
		}
		for (i = 0; i < ARRAY_SIZE(tbl); i++)
			tbl[i] = ((uint64_t)i << 21) | 0x83;
		fz_write_table(vm, pd, tbl);
		r->rip = fz_below(rng, FZ_MEM_SIZE - 16);
		entry = r->rip;
	} else {
		for (i = 0; i < ARRAY_SIZE(tbl); i++) {
			tbl[i] = (base + fz_page(rng)) |
				 (fz_chance(rng, 4) ? fz_rand(rng) & 0xfff : 7);
			if (fz_chance(rng, 16))
				tbl[i] |= fz_rand(rng) & 0xfff0000000000000ULL;
		}
		fz_write_table(vm, pml4, tbl);
		r->rip = fz_chance(rng, 2) ? fz_below(rng, FZ_MEM_SIZE) :
					     fz_interesting(rng);
	}
	return entry;
}

static void fz_mutate_seg(struct lvmm_segment *seg, struct fz_rng *rng)
{
	switch (fz_below(rng, 10)) {
	case 0:
		seg->base = fz_interesting(rng);
		break;
	case 1:
		seg->limit = fz_interesting(rng);
		break;
	case 2:
		seg->selector = fz_rand(rng);
		break;
	case 3:
		seg->type = fz_below(rng, 16);
		break;
	case 4:
		seg->s ^= 1;
		break;
	case 5:
		seg->dpl = fz_below(rng, 4);
		break;
	case 6:
		seg->present ^= 1;
		break;
	case 7:
		seg->db ^= 1;
		seg->l = fz_below(rng, 2);
		break;
	case 8:
		seg->g ^= 1;
		seg->unusable = fz_chance(rng, 4);
		break;
	default:
		*(uint64_t *)seg ^= fz_rand(rng);
		break;
	}
}

/* Mostly valid random state: one of the modes with @n fields changed. */
static void fz_mutate_sregs(struct lvmm_sregs *s, struct fz_rng *rng,
			    unsigned int n)
{
	static const uint64_t cr0_bits[] = {
		X86_CR0_PE, X86_CR0_MP, FZ_CR0_EM, FZ_CR0_TS, X86_CR0_ET,
		X86_CR0_NE, X86_CR0_WP, FZ_CR0_AM, FZ_CR0_NW, FZ_CR0_CD,
		X86_CR0_PG,
	};
	struct lvmm_segment *segs[] = {
		&s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->tr,
		&s->ldt,
	};

	while (n--) {
		switch (fz_below(rng, 10)) {
		case 0:
		case 1:
			fz_mutate_seg(segs[fz_below(rng, ARRAY_SIZE(segs))],
				      rng);
			break;
		case 2:
			s->cr0 ^= cr0_bits[fz_below(rng, ARRAY_SIZE(cr0_bits))];
			break;
		case 3:
			s->cr4 ^= fz_chance(rng, 8) ?
				  1ULL << fz_below(rng, 32) :
				  fz_cr4_bits[fz_below(rng,
						       ARRAY_SIZE(fz_cr4_bits))];
			break;
		case 4:
			s->cr4 ^= X86_CR4_PAE;
			break;
		case 5:
			s->efer ^= fz_chance(rng, 8) ?
				   1ULL << fz_below(rng, 16) :
				   (fz_chance(rng, 2) ? EFER_LME : EFER_NX);
			break;
		case 6:
			s->cr3 = fz_chance(rng, 2) ? fz_page(rng) :
						     fz_interesting(rng);
			break;
		case 7:
			s->cr8 = fz_below(rng, 17);	/* 16: EINVAL */
			break;
		case 8:
			s->gdt.base = fz_interesting(rng);
			s->gdt.limit = fz_rand(rng);
			break;
		default:
			s->idt.base = fz_interesting(rng);
			s->idt.limit = fz_rand(rng);
			break;
		}
	}
}

static enum fz_mode fz_pick_mode(const struct fz_opts *o, struct fz_rng *rng)
{
	return o->mode == FZ_MIX ? (enum fz_mode)fz_below(rng, 4) : o->mode;
}

static uint64_t fz_apply_mode(struct fz_vm *vm, enum fz_mode mode,
			      struct lvmm_sregs *s, struct lvmm_regs *r,
			      struct fz_rng *rng)
{
	switch (mode) {
	case FZ_PROT:
		return fz_mode_prot(vm, s, r, rng);
	case FZ_LONG:
		return fz_mode_long(vm, s, r, rng);
	default:
		return fz_mode_real(s, r, rng);
	}
}

/*
 * Put @v in a fresh random state.  Called before the vCPU first runs, by
 * the RUN thread after SHUTDOWN and failed entries, and by the controller
 * while the vCPU runs (SET_SREGS waits for the vCPU mutex, so it lands
 * between two RUNs).
 */
static int fz_vcpu_setup(struct fz_vm *vm, struct fz_vcpu *v,
			 struct fz_rng *rng)
{
	enum fz_mode mode = fz_pick_mode(vm->o, rng);
	struct lvmm_sregs orig, s;
	struct lvmm_regs r;
	uint64_t entry;
	unsigned int tries;
	bool o16;
	int ret;

	ret = fz_note(LVMM_GET_SREGS, lvmm_get_sregs(&v->h, &orig));
	if (ret)
		return ret;
	fz_random_regs(&r, rng);
	s = orig;
	if (mode == FZ_RANDOM) {
		enum fz_mode base = (enum fz_mode)fz_below(rng, 3);

		/* Fewer changes on each try: mostly valid, sometimes not. */
		for (tries = 0; tries < 3; tries++) {
			s = orig;
			entry = fz_apply_mode(vm, base, &s, &r, rng);
			fz_mutate_sregs(&s, rng, 1 + fz_below(rng, 6 >> tries));
			if (fz_chance(rng, 16))
				s.apic_base = fz_interesting(rng);
			ret = fz_note(LVMM_SET_SREGS,
				      lvmm_set_sregs(&v->h, &s));
			if (ret != -EINVAL)
				break;
		}
		entry = ~0ULL;		/* who knows where it starts */
	} else {
		entry = fz_apply_mode(vm, mode, &s, &r, rng);
		if (vm->irqchip && mode == FZ_PROT && entry != ~0ULL &&
		    s.cs.db && fz_chance(rng, 2))
			fz_sane_idt(vm, v, &s, &r, rng);
		ret = fz_note(LVMM_SET_SREGS, lvmm_set_sregs(&v->h, &s));
	}
	if (ret == -EINVAL) {
		/* A bit the host lacks, or random state refused: real mode. */
		fz_inc(stats->sregs_fallbacks);
		s = orig;
		entry = fz_mode_real(&s, &r, rng);
		s.cr4 = 0;
		ret = fz_note(LVMM_SET_SREGS, lvmm_set_sregs(&v->h, &s));
	}
	o16 = !s.cs.db && !(s.cs.l && (s.efer & EFER_LMA));
	if (entry != ~0ULL && vm->irqchip && fz_chance(rng, 2) &&
	    fz_apic_code(vm, entry, o16, rng)) {
		if (!v->what[0])
			snprintf(v->what, sizeof(v->what), "%s+apic",
				 fz_mode_names[mode]);
	} else if (entry != ~0ULL && fz_chance(rng, 3)) {
		const struct fz_snippet *sn;

		sn = &fz_corpus[fz_below(rng, ARRAY_SIZE(fz_corpus))];
		fz_mem_write(vm, entry, sn->code, sn->len);
		if (!v->what[0])
			snprintf(v->what, sizeof(v->what), "%s+%02x%02x%02x",
				 fz_mode_names[mode], sn->code[0], sn->code[1],
				 sn->code[2]);
	}
	if (!v->what[0])
		snprintf(v->what, sizeof(v->what), "%s%s", fz_mode_names[mode],
			 ret ? "(fallback)" : "");
	/* APs wait for INIT and SIPI: mostly start them ourselves. */
	if (vm->irqchip && v->index && !fz_chance(rng, 4))
		fz_note(LVMM_SET_MP_STATE,
			lvmm_set_mp_state(&v->h, LVMM_MP_STATE_RUNNABLE));
	return fz_note(LVMM_SET_REGS, lvmm_set_regs(&v->h, &r)) ? : ret;
}

/* ---- the RUN threads ---------------------------------------------------- */

static void fz_nop(int sig)
{
	(void)sig;
}

/* A per-thread timer: SIGALRM to this thread only, every 20 ms. */
static int fz_timer_start(timer_t *timer, struct fz_rng *rng)
{
	struct sigevent sev;
	struct itimerspec its = {
		.it_interval = { 0, FZ_TICK_NS },
		.it_value = { 0, 1000000 + fz_below(rng, FZ_TICK_NS) },
	};

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGALRM;
	sev.sigev_notify_thread_id = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, timer))
		return -errno;
	if (timer_settime(*timer, 0, &its, NULL)) {
		timer_delete(*timer);
		return -errno;
	}
	return 0;
}

/*
 * RUN's errnos that a VMM must expect: a signal, a bad address or state
 * set by the controller, memory pressure, an interrupt already pending.
 * Anything else (EIO above all: the kernel marked something dead without
 * being asked) is a finding.
 */
static bool fz_run_errno_expected(int err)
{
	return err == EINTR || err == EFAULT || err == EINVAL ||
	       err == ENOMEM || err == EBUSY;
}

static void fz_fill(void *p, size_t len, struct fz_rng *rng)
{
	uint8_t *b = p;

	while (len--)
		*b++ = fz_rand(rng);
}

/*
 * Issue 13's reproducer, in order (Documentation/sandbox.rst, section 3):
 * an entry QEMU 7.2 refused (a real-mode CR3 at or above 2^40, which
 * fz_mode_real() sets now and then) ended in LVMM_INTERNAL_ERROR_STATE_LOST;
 * now the CR3 is made valid and the guest spins with IF clear.  The
 * RUN thread's 20 ms timer must end each RUN: the refused entry must
 * not have taken V_INTR_MASKING with it.  Returns true if it set it up.
 */
static bool fz_replay_issue13(struct fz_vcpu *v)
{
	static const unsigned char spin[] = { 0xfa, 0xeb, 0xfe }; /* cli; jmp $ */
	struct lvmm_run *run = v->h.run;
	struct lvmm_sregs s;
	struct lvmm_regs r;

	if (run->internal.suberror != LVMM_INTERNAL_ERROR_STATE_LOST ||
	    fz_note(LVMM_GET_SREGS, lvmm_get_sregs(&v->h, &s)) ||
	    fz_note(LVMM_GET_REGS, lvmm_get_regs(&v->h, &r)) ||
	    (s.cr0 & 1))		/* CR0.PE: protected mode */
		return false;
	s.cr3 &= 0xfffff000;
	r.rflags &= ~FZ_RFLAGS_IF;
	r.rip &= 0xffff;
	fz_mem_write(v->vm, s.cs.base + r.rip, spin, sizeof(spin));
	if (fz_note(LVMM_SET_SREGS, lvmm_set_sregs(&v->h, &s)) ||
	    fz_note(LVMM_SET_REGS, lvmm_set_regs(&v->h, &r)))
		return false;
	fz_inc(stats->replays);
	return true;
}

/* Handle one exit; true when the vCPU will never run again. */
static bool fz_handle_exit(struct fz_vcpu *v, struct fz_rng *rng)
{
	struct lvmm_run *run = v->h.run;
	__u32 reason = run->exit_reason;
	uint64_t len;

	fz_inc(stats->exits[reason < FZ_NR_EXITS - 1 ? reason :
			    FZ_NR_EXITS - 1]);
	switch (reason) {
	case LVMM_EXIT_IO:
		len = (uint64_t)run->io.size * run->io.count;
		if (run->io.data_offset > v->h.run_size ||
		    len > v->h.run_size - run->io.data_offset) {
			if (!fz_inc(stats->bad_io_offset))
				fz_log("# io data beyond the run mapping: offset %llu size %u count %u",
				       (unsigned long long)run->io.data_offset,
				       run->io.size, run->io.count);
			break;
		}
		if (run->io.direction == LVMM_EXIT_IO_IN)
			fz_fill(lvmm_run_io_data(&v->h), len, rng);
		break;
	case LVMM_EXIT_MMIO:
		if (!run->mmio.is_write)
			fz_fill(run->mmio.data, run->mmio.len <= 8 ?
				run->mmio.len : 8, rng);
		break;
	case LVMM_EXIT_HYPERCALL:
		run->hypercall.ret = fz_interesting(rng);
		break;
	case LVMM_EXIT_IRQ_WINDOW_OPEN:
		run->request_interrupt_window = 0;
		fz_note(LVMM_INTERRUPT, lvmm_interrupt(&v->h,
						       32 + fz_below(rng, 224)));
		break;
	case LVMM_EXIT_HLT:
	case LVMM_EXIT_INTR:
		break;
	case LVMM_EXIT_VM_DESTROYED:
		return true;
	case LVMM_EXIT_INTERNAL_ERROR:
		if (fz_chance(rng, 2) && fz_replay_issue13(v)) {
			v->replay = true;
			break;
		}
		/* fall through */
	default:
		/* SHUTDOWN, FAIL_ENTRY, INTERNAL_ERROR, UNKNOWN, garbage. */
		fz_inc(stats->resets);
		fz_vcpu_setup(v->vm, v, rng);
		break;
	}
	if (fz_chance(rng, 32)) {
		struct lvmm_regs r;
		struct lvmm_sregs s;

		fz_note(LVMM_GET_REGS, lvmm_get_regs(&v->h, &r));
		fz_note(LVMM_GET_SREGS, lvmm_get_sregs(&v->h, &s));
	}
	return false;
}

static void *fz_runner(void *arg)
{
	struct fz_vcpu *v = arg;
	struct fz_vm *vm = v->vm;
	struct fz_rng rng;
	bool have_timer;
	timer_t timer;
	int r;

	fz_rng_init(&rng, v->seed);
	have_timer = !fz_timer_start(&timer, &rng);
	while (!fz_load(vm->stop)) {
		struct lvmm_run *run = v->h.run;
		/* Without its timer nothing ends the spin but the watchdog. */
		bool replay = v->replay && have_timer;
		double t0 = fz_now();

		if (fz_chance(&rng, 64))
			run->request_interrupt_window = 1;
		if (fz_chance(&rng, 256))
			run->immediate_exit = 1;
		r = fz_note(LVMM_RUN, lvmm_run(&v->h));
		run->immediate_exit = 0;
		fz_inc(stats->runs);
		if (replay) {
			uint64_t us = (fz_now() - t0) * 1e6;

			v->replay = false;
			/* The timer fires every 20 ms; the watchdog's NMI at 1 s. */
			if (us > 500000 && !fz_inc(stats->replay_slow))
				fz_log("# FAIL: issue 13's spin held RUN %llu ms after a refused entry (VM seed %llu)",
				       (unsigned long long)us / 1000,
				       (unsigned long long)vm->seed);
			if (us > fz_load(stats->replay_max_us))
				fz_store(stats->replay_max_us, us);
		}
		if (r >= 0) {
			if (fz_handle_exit(v, &rng)) {
				fz_store(vm->dead, 1);
				break;
			}
			continue;
		}
		if (fz_run_errno_expected(-r)) {
			if (r == -EINTR)
				fz_inc(stats->run_eintr);
			/* A signal must end a RUN that waits in HLT. */
			if (r == -EINTR && vm->irqchip && fz_chance(&rng, 4)) {
				__u32 st;

				if (!fz_note(LVMM_GET_MP_STATE,
					     lvmm_get_mp_state(&v->h, &st)) &&
				    st != LVMM_MP_STATE_RUNNABLE)
					fz_inc(stats->eintr_waiting);
			}
			/* A state RUN refuses would refuse forever: reset. */
			if (r == -EINVAL || r == -EFAULT)
				fz_vcpu_setup(vm, v, &rng);
			continue;
		}
		if ((r == -ENOTTY || r == -EBADF) && fz_load(v->fd_gone))
			break;		/* our fd is /dev/null now */
		if (!fz_inc(stats->bad_run))
			stats->bad_run_errno = -r;
		fz_log("# FAIL: RUN returned %s on %s vcpu %u (VM seed %llu)",
		       fz_errname(-r), vm->h.name, v->index,
		       (unsigned long long)vm->seed);
		break;
	}
	if (have_timer)
		timer_delete(timer);
	fz_store(v->done, 1);
	return NULL;
}

/* ---- the controller ----------------------------------------------------- */

static void fz_flip(void *p, size_t len, struct fz_rng *rng)
{
	uint8_t *b = p;
	unsigned int n = 1 + fz_below(rng, 3);

	while (n--) {
		if (fz_chance(rng, 2))
			b[fz_below(rng, len)] ^= 1 << fz_below(rng, 8);
		else
			b[fz_below(rng, len)] = fz_rand(rng);
	}
}

static struct fz_vcpu *fz_any_vcpu(struct fz_vm *vm, struct fz_rng *rng)
{
	return &vm->vcpu[fz_below(rng, vm->nvcpus)];
}

static uint64_t fz_slot_gpa(struct fz_rng *rng)
{
	switch (fz_below(rng, 8)) {
	case 0:
		return fz_below(rng, 1ULL << 48) & ~(FZ_PAGE - 1);
	case 1:
		return (1ULL << 48) - FZ_PAGE * (1 + fz_below(rng, 4));
	case 2:
		return 0xfee00000;
	default:
		return (FZ_MEM_SIZE + fz_below(rng, 1ULL << 32)) &
		       ~(FZ_PAGE - 1);
	}
}

/* Delete slot 0, let the vCPUs see no memory a moment, add it back. */
static void fz_slot0_cycle(struct fz_vm *vm, struct fz_rng *rng)
{
	uint64_t gpa = fz_chance(rng, 4) ?
		       fz_below(rng, 512) * FZ_MEM_SIZE : 0;
	int r;

	fz_inc(stats->slot_ops);
	pthread_mutex_lock(&vm->mem_lock);
	r = fz_note(LVMM_SET_MEMSLOT, lvmm_delete_memslot(&vm->h, 0));
	if (!r || r == -ENOENT)
		fz_store(vm->slot0_gpa, ~0ULL);
	pthread_mutex_unlock(&vm->mem_lock);
	fz_sleep_us(fz_below(rng, 5000));

	pthread_mutex_lock(&vm->mem_lock);
	r = fz_note(LVMM_SET_MEMSLOT, lvmm_set_memslot(&vm->h, 0, 0, gpa,
						       FZ_MEM_SIZE));
	if (!r)
		fz_store(vm->slot0_gpa, gpa);
	pthread_mutex_unlock(&vm->mem_lock);
	/* The old mapping now shows the new slot's (zeroed) pages. */
	if (!r)
		fz_mem_fill(vm, gpa, FZ_MEM_SIZE, rng);
}

static void fz_extra_slot(struct fz_vm *vm, struct fz_rng *rng)
{
	__u32 slot = 1 + fz_below(rng, FZ_MAX_SLOTS - 1);
	uint64_t size = FZ_PAGE * (1 + fz_below(rng, 64));
	void *p;
	int r;

	fz_inc(stats->slot_ops);
	if (vm->extra_slots & (1U << slot)) {
		r = fz_note(LVMM_SET_MEMSLOT,
			    lvmm_delete_memslot(&vm->h, slot));
		if (!r)
			vm->extra_slots &= ~(1U << slot);
		return;
	}
	r = fz_note(LVMM_SET_MEMSLOT,
		    lvmm_set_memslot(&vm->h, slot, fz_chance(rng, 4) ?
				     LVMM_MEMSLOT_READONLY : 0,
				     fz_slot_gpa(rng), size));
	if (r)
		return;
	vm->extra_slots |= 1U << slot;
	if (!lvmm_memslot_map(&vm->h, slot, size, PROT_READ | PROT_WRITE,
			      &p)) {
		uint64_t word = fz_rand(rng);

		fz_guarded_copy(p, &word, sizeof(word));
		munmap(p, size);
	}
}

static const __u32 fz_msrs[] = {
	0x10, 0x1b, 0x48, 0x49, 0x8b, 0x10a, 0x174, 0x175, 0x176, 0x1a0,
	0x1d9, 0x277, 0x6e0, 0xc0000080, 0xc0000081, 0xc0000082, 0xc0000083,
	0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102, 0xc0000103,
	0xc0010114, 0xc0010117, 0xc0011020,
};

/*
 * Addresses the kernel must refuse with EFAULT.  Never a random one: this
 * binary is static and non-PIE, so a random low address may well be our
 * own data, and the kernel would write into it.
 */
static void *fz_bad_pointer(struct fz_rng *rng)
{
	static const uint64_t bad[] = {
		1, 0xff8, 0x0000800000000000ULL, 0x00007ffffffffff8ULL,
		0xffff800000000000ULL, 0xffffffffff600000ULL,
		0x8000000000000000ULL, ~7ULL,
	};

	return (void *)(uintptr_t)bad[fz_below(rng, ARRAY_SIZE(bad))];
}

/* An ioctl built from a valid argument with some bytes changed. */
static void fz_ioctl_typed(struct fz_vm *vm, int dev_fd, struct fz_rng *rng)
{
	struct fz_vcpu *v = fz_any_vcpu(vm, rng);
	uint8_t *buf = vm->buf;
	unsigned int i, n;
	int r;

	memset(buf, 0, FZ_BUF_SIZE);
	switch (fz_below(rng, 24)) {
	case 0: {
		struct lvmm_regs *regs = (void *)buf;

		if (!fz_ioctl(v->h.fd, LVMM_GET_REGS, regs))
			fz_flip(regs, sizeof(*regs), rng);
		fz_ioctl(v->h.fd, LVMM_SET_REGS, regs);
		break;
	}
	case 1: {
		struct lvmm_sregs *s = (void *)buf;

		if (!fz_ioctl(v->h.fd, LVMM_GET_SREGS, s)) {
			if (fz_chance(rng, 2))
				fz_flip(s, sizeof(*s), rng);
			else
				fz_mutate_sregs(s, rng, 1 + fz_below(rng, 3));
		}
		fz_ioctl(v->h.fd, LVMM_SET_SREGS, s);
		break;
	}
	case 2: {
		struct lvmm_memslot *ms = (void *)buf;

		/* Never slot 0 on purpose: fz_slot0_cycle() does that. */
		ms->slot = 1 + fz_below(rng, FZ_MAX_SLOTS + 8);
		ms->flags = fz_chance(rng, 4) ? fz_rand(rng) :
						fz_below(rng, 4);
		ms->guest_phys_addr = fz_chance(rng, 4) ? fz_interesting(rng) :
							  fz_slot_gpa(rng);
		ms->size = fz_chance(rng, 4) ? fz_interesting(rng) & ~0xfffULL :
					       FZ_PAGE * fz_below(rng, 256);
		if (fz_chance(rng, 16))
			ms->size = (64ULL << 30) + FZ_PAGE;
		if (fz_chance(rng, 8))
			ms->reserved[fz_below(rng, 2)] = fz_rand(rng);
		if (!fz_ioctl(vm->h.fd, LVMM_SET_MEMSLOT, ms) &&
		    ms->slot < FZ_MAX_SLOTS) {
			if (ms->size)
				vm->extra_slots |= 1U << ms->slot;
			else
				vm->extra_slots &= ~(1U << ms->slot);
		}
		break;
	}
	case 3: {
		struct lvmm_create_vcpu *cv = (void *)buf;

		cv->id = fz_chance(rng, 2) ? fz_below(rng, 132) : fz_rand(rng);
		if (fz_chance(rng, 4))
			cv->flags = fz_rand(rng);
		if (fz_chance(rng, 4))
			cv->reserved[fz_below(rng, 3)] = fz_rand(rng);
		r = fz_ioctl(vm->h.fd, LVMM_CREATE_VCPU, cv);
		if (r >= 0)
			close(r);
		break;
	}
	case 4: {
		struct lvmm_interrupt *irq = (void *)buf;

		irq->vector = fz_chance(rng, 2) ? fz_below(rng, 300) :
						  fz_rand(rng);
		if (fz_chance(rng, 4))
			irq->flags = fz_rand(rng);
		if (fz_chance(rng, 4))
			irq->reserved = fz_rand(rng);
		fz_ioctl(v->h.fd, LVMM_INTERRUPT, irq);
		break;
	}
	case 5:
	case 6: {
		struct lvmm_msrs *m = (void *)buf;

		n = fz_chance(rng, 8) ? fz_below(rng, 300) :
					1 + fz_below(rng, 8);
		m->nmsrs = fz_chance(rng, 16) ? fz_rand(rng) : n;
		if (fz_chance(rng, 8))
			m->flags = fz_rand(rng);
		for (i = 0; i < n && i < LVMM_MAX_MSR_ENTRIES; i++) {
			m->entries[i].index = fz_chance(rng, 8) ?
				fz_rand(rng) :
				fz_msrs[fz_below(rng, ARRAY_SIZE(fz_msrs))];
			m->entries[i].data = fz_interesting(rng);
		}
		fz_ioctl(v->h.fd, fz_chance(rng, 2) ? LVMM_GET_MSRS :
						      LVMM_SET_MSRS, m);
		break;
	}
	case 7: {
		struct lvmm_cpuid *c = (void *)buf;

		c->nent = fz_chance(rng, 2) ? fz_below(rng, 300) :
					      LVMM_MAX_CPUID_ENTRIES;
		r = fz_ioctl(v->h.fd, LVMM_GET_CPUID, c);
		if (fz_chance(rng, 2))
			break;
		if (r || !c->nent || c->nent > LVMM_MAX_CPUID_ENTRIES ||
		    fz_chance(rng, 4)) {
			n = 1 + fz_below(rng, 16);
			c->nent = n;
			fz_fill(c->entries, n * sizeof(c->entries[0]), rng);
		} else {
			fz_flip(c->entries, c->nent * sizeof(c->entries[0]),
				rng);
		}
		if (fz_chance(rng, 16))
			c->flags = fz_rand(rng);
		fz_ioctl(v->h.fd, LVMM_SET_CPUID, c);
		break;
	}
	case 8: {
		struct lvmm_xsave *x = (void *)buf;

		/* The header (512..575) and MXCSR (24) are what XRSTOR checks. */
		if (!fz_ioctl(v->h.fd, LVMM_GET_XSAVE, x)) {
			if (fz_chance(rng, 3))
				fz_flip((uint8_t *)x + 512, 64, rng);
			else if (fz_chance(rng, 2))
				fz_flip((uint8_t *)x + 24, 4, rng);
			else
				fz_flip(x, sizeof(*x), rng);
		}
		fz_ioctl(v->h.fd, LVMM_SET_XSAVE, x);
		break;
	}
	case 9: {
		struct lvmm_create_vm *cvm = (void *)buf;

		if (fz_chance(rng, 2))
			fz_fill(cvm->name, sizeof(cvm->name), rng);
		else
			snprintf(cvm->name, sizeof(cvm->name), "fz%d-x%u",
				 getpid(), (unsigned int)fz_below(rng, 4));
		if (fz_chance(rng, 4))
			cvm->flags = fz_rand(rng);
		if (fz_chance(rng, 4))
			cvm->reserved[fz_below(rng, 4)] = fz_rand(rng);
		r = fz_ioctl(dev_fd, LVMM_CREATE_VM, cvm);
		if (r >= 0 && fz_chance(rng, 2)) {
			/* Its irqchip and a vCPU, in either order. */
			struct lvmm_create_vcpu cv = { 0 };
			struct lvmm_irqchip chip = { 0 };
			int vfd = -1;

			if (fz_chance(rng, 4))
				vfd = fz_ioctl(r, LVMM_CREATE_VCPU, &cv);
			fz_ioctl(r, LVMM_CREATE_IRQCHIP, &chip);
			if (vfd < 0)
				vfd = fz_ioctl(r, LVMM_CREATE_VCPU, &cv);
			if (vfd >= 0)
				close(vfd);
		}
		if (r >= 0)
			close(r);
		break;
	}
	case 10: {
		struct lvmm_memslot_flags *mf = (void *)buf;

		/* Logging on slot 0 while the guest writes is the point. */
		mf->slot = fz_chance(rng, 2) ? 0 :
			   fz_below(rng, FZ_MAX_SLOTS + 4);
		mf->flags = fz_chance(rng, 8) ? fz_rand(rng) :
			    fz_chance(rng, 4) ? LVMM_MEMSLOT_READONLY :
			    fz_chance(rng, 3) ? 0 : LVMM_MEMSLOT_LOG_DIRTY;
		if (fz_chance(rng, 16))
			mf->reserved[fz_below(rng, 3)] = fz_rand(rng);
		fz_ioctl(vm->h.fd, LVMM_SET_MEMSLOT_FLAGS, mf);
		break;
	}
	case 11: {
		struct lvmm_dirty_log *dl = (void *)buf;
		uint64_t *bitmap = (void *)(buf + 256);
		uint64_t max = (FZ_BUF_SIZE - 256) * 8;

		/* Valid: slot 0's 512 pages in 64-page steps. */
		dl->slot = fz_chance(rng, 4) ? fz_below(rng, FZ_MAX_SLOTS + 4) :
					       0;
		dl->first_page = fz_below(rng, 8) * 64;
		dl->num_pages = fz_chance(rng, 2) ? 512 - dl->first_page :
				64 * (1 + fz_below(rng, 4));
		dl->bitmap = (uintptr_t)bitmap;
		switch (fz_below(rng, 8)) {
		case 0:
			dl->first_page = fz_below(rng, 600);
			break;
		case 1:
			dl->num_pages = fz_below(rng, 600);
			break;
		case 2:		/* too far: the kernel must not copy */
			dl->first_page = fz_interesting(rng);
			dl->num_pages = fz_interesting(rng);
			dl->bitmap = (uintptr_t)fz_bad_pointer(rng);
			break;
		case 3:
			dl->bitmap = (uintptr_t)fz_bad_pointer(rng);
			break;
		case 4:
			if (fz_chance(rng, 2))
				dl->flags = fz_rand(rng);
			else
				dl->reserved[fz_below(rng, 2)] = fz_rand(rng);
			break;
		}
		/* Never more bits than the buffer holds. */
		if (dl->bitmap == (uintptr_t)bitmap && dl->num_pages > max)
			dl->num_pages = max;
		/* Only a slot that logs has a log. */
		if (fz_chance(rng, 2)) {
			struct lvmm_memslot_flags mf = {
				.slot = dl->slot,
				.flags = LVMM_MEMSLOT_LOG_DIRTY,
			};

			fz_ioctl(vm->h.fd, LVMM_SET_MEMSLOT_FLAGS, &mf);
		}
		/* Mostly the migration's order: get, clear what was got. */
		r = fz_chance(rng, 4) ? -1 :
		    fz_ioctl(vm->h.fd, LVMM_GET_DIRTY_LOG, dl);
		if (fz_chance(rng, 3))
			break;
		if (r && dl->bitmap == (uintptr_t)bitmap)
			fz_fill(bitmap, (dl->num_pages + 63) / 64 * 8, rng);
		fz_ioctl(vm->h.fd, LVMM_CLEAR_DIRTY_LOG, dl);
		break;
	}
	case 12: {
		struct lvmm_create_vcpu *cv = (void *)buf;

		/* Not restored: every id has its fd, or is no vCPU. */
		cv->id = fz_chance(rng, 2) ? fz_below(rng, 4) : fz_rand(rng);
		if (fz_chance(rng, 4))
			cv->flags = fz_rand(rng);
		if (fz_chance(rng, 4))
			cv->reserved[fz_below(rng, 3)] = fz_rand(rng);
		r = fz_ioctl(vm->h.fd, LVMM_GET_VCPU, cv);
		if (r >= 0)
			close(r);
		break;
	}
	case 13: {
		struct lvmm_vmm_state *st = (void *)buf;

		st->data = (uintptr_t)(buf + 64);
		st->size = fz_chance(rng, 4) ? 0 :
			   fz_below(rng, FZ_BUF_SIZE - 64);
		if (fz_chance(rng, 8)) {
			st->size = fz_chance(rng, 2) ? LVMM_MAX_VMM_STATE + 1 :
						       fz_rand(rng);
			st->data = (uintptr_t)fz_bad_pointer(rng);
		} else if (fz_chance(rng, 16)) {
			st->data = (uintptr_t)fz_bad_pointer(rng);
		}
		if (fz_chance(rng, 16))
			st->flags = fz_rand(rng);
		if (fz_chance(rng, 16))
			st->reserved[fz_below(rng, 2)] = fz_rand(rng);
		if (fz_chance(rng, 2)) {
			if (st->data == (uintptr_t)(buf + 64))
				fz_fill(buf + 64, st->size, rng);
			fz_ioctl(vm->h.fd, LVMM_SET_VMM_STATE, st);
		} else {
			fz_ioctl(vm->h.fd, LVMM_GET_VMM_STATE, st);
		}
		break;
	}
	case 14: {
		struct lvmm_vcpu_events *ev = (void *)buf;

		if (!fz_ioctl(v->h.fd, LVMM_GET_VCPU_EVENTS, ev)) {
			switch (fz_below(rng, 6)) {
			case 0:
				fz_flip(ev, sizeof(*ev), rng);
				break;
			case 1:
				ev->injected = fz_below(rng, 5);
				ev->injected_vector = fz_rand(rng);
				ev->injected_has_error = fz_below(rng, 3);
				ev->injected_error = fz_interesting(rng);
				break;
			case 2:
				ev->irq_pending = fz_below(rng, 3);
				ev->irq_vector = fz_chance(rng, 4) ?
						 fz_below(rng, 32) :
						 32 + fz_below(rng, 224);
				break;
			case 3:
				ev->nmi_pending = fz_below(rng, 2);
				ev->nmi_masked = fz_below(rng, 2);
				ev->interrupt_shadow = fz_below(rng, 3);
				break;
			case 4:
				ev->shutdown = fz_below(rng, 2);
				ev->exit_pending = fz_below(rng, 2);
				break;
			default:
				if (fz_chance(rng, 2))
					ev->flags = fz_rand(rng);
				else
					ev->reserved[fz_below(rng, 4)] =
						fz_rand(rng);
				break;
			}
		}
		fz_ioctl(v->h.fd, LVMM_SET_VCPU_EVENTS, ev);
		break;
	}
	case 15: {
		struct lvmm_debugregs *dr = (void *)buf;

		if (!fz_ioctl(v->h.fd, LVMM_GET_DEBUGREGS, dr)) {
			switch (fz_below(rng, 5)) {
			case 0:
				fz_flip(dr, sizeof(*dr), rng);
				break;
			case 1:		/* armed breakpoints on guest code */
				dr->db[fz_below(rng, 4)] = fz_interesting(rng);
				dr->dr7 = fz_below(rng, 1ULL << 32) | 0x400;
				break;
			case 2:
				dr->dr6 = fz_interesting(rng);
				break;
			case 3:
				dr->dr7 = fz_interesting(rng);
				break;
			default:
				dr->flags = fz_rand(rng);
				break;
			}
		}
		fz_ioctl(v->h.fd, LVMM_SET_DEBUGREGS, dr);
		break;
	}
	case 16: {
		struct lvmm_xcrs *x = (void *)buf;
		static const uint64_t xcr0[] = {
			0, 1, 2, 3, 5, 7, 0x1f, 0xe7, 0xff, 0x2ff,
			1ULL << 63,
		};

		if (!fz_ioctl(v->h.fd, LVMM_GET_XCRS, x)) {
			if (fz_chance(rng, 8))
				fz_flip(x, sizeof(*x), rng);
			else
				x->xcr0 = fz_chance(rng, 8) ? fz_rand(rng) :
					  xcr0[fz_below(rng,
							ARRAY_SIZE(xcr0))];
		}
		fz_ioctl(v->h.fd, LVMM_SET_XCRS, x);
		break;
	}
	case 17: {
		struct lvmm_irqchip *chip = (void *)buf;

		/* After the first vCPU: refused, whatever the arguments. */
		if (fz_chance(rng, 4))
			chip->flags = fz_rand(rng);
		if (fz_chance(rng, 4))
			chip->reserved[fz_below(rng, 3)] = fz_rand(rng);
		fz_ioctl(vm->h.fd, LVMM_CREATE_IRQCHIP, chip);
		break;
	}
	case 18: {
		struct lvmm_irq_level *l = (void *)buf;

		l->irq = fz_chance(rng, 4) ? fz_interesting(rng) :
					     fz_below(rng, LVMM_IOAPIC_PINS);
		l->level = fz_chance(rng, 8) ? fz_rand(rng) : fz_below(rng, 2);
		if (fz_chance(rng, 8))
			l->flags = fz_rand(rng);
		if (fz_chance(rng, 8))
			l->pad = fz_rand(rng);
		fz_ioctl(vm->h.fd, LVMM_IRQ_LINE, l);
		break;
	}
	case 19: {
		struct lvmm_ioapic_state *io = (void *)buf;

		if (!fz_ioctl(vm->h.fd, LVMM_GET_IOAPIC, io)) {
			if (fz_chance(rng, 3)) {
				fz_flip(io, sizeof(*io), rng);
			} else {
				n = 1 + fz_below(rng, 4);
				while (n--)
					io->redir[fz_below(rng,
						LVMM_IOAPIC_PINS)] =
						fz_interesting(rng);
				io->lines = fz_rand(rng);
				io->pending = fz_rand(rng);
			}
		}
		fz_ioctl(vm->h.fd, LVMM_SET_IOAPIC, io);
		break;
	}
	case 20: {
		struct lvmm_lapic_state *ls = (void *)buf;
		uint32_t val, off;

		if (!fz_ioctl(v->h.fd, LVMM_GET_LAPIC, ls)) {
			switch (fz_below(rng, 4)) {
			case 0:
				fz_flip(ls, sizeof(*ls), rng);
				break;
			case 1:
				ls->tsc_deadline = fz_interesting(rng);
				break;
			default:
				n = 1 + fz_below(rng, 4);
				while (n--) {
					off = fz_chance(rng, 8) ?
					      fz_below(rng, 64) * 16 :
					      fz_apic_regs[fz_below(rng,
						ARRAY_SIZE(fz_apic_regs))];
					val = fz_apic_value(off, false, rng);
					memcpy(ls->regs + off, &val,
					       sizeof(val));
				}
				break;
			}
		}
		fz_ioctl(v->h.fd, LVMM_SET_LAPIC, ls);
		break;
	}
	case 21: {
		struct lvmm_mp_state *mp = (void *)buf;

		if (!fz_ioctl(v->h.fd, LVMM_GET_MP_STATE, mp))
			fz_inc(stats->mp_seen[mp->state < 3 ? mp->state : 3]);
		mp->state = fz_chance(rng, 8) ? fz_rand(rng) : fz_below(rng, 4);
		if (fz_chance(rng, 8))
			mp->flags = fz_rand(rng);
		if (fz_chance(rng, 8))
			mp->reserved = fz_rand(rng);
		fz_ioctl(v->h.fd, LVMM_SET_MP_STATE, mp);
		break;
	}
	case 22: {
		/* Only a VM received with LVMM_RESTORE_HOLD may take it. */
		struct lvmm_incoming_finish *f = (void *)buf;

		f->error = fz_chance(rng, 2) ? 0 : (int32_t)fz_interesting(rng);
		if (fz_chance(rng, 8))
			f->flags = fz_rand(rng);
		if (fz_chance(rng, 8))
			f->reserved[fz_below(rng, 2)] = fz_rand(rng);
		fz_ioctl(vm->h.fd, LVMM_INCOMING_FINISH, f);
		break;
	}
	default:
		fz_ioctl(dev_fd, LVMM_CHECK_EXTENSION,
			 (void *)(uintptr_t)fz_interesting(rng));
		fz_ioctl(dev_fd, LVMM_GET_API_VERSION,
			 (void *)(uintptr_t)fz_below(rng, 2));
		fz_ioctl(dev_fd, LVMM_GET_VCPU_MMAP_SIZE,
			 (void *)(uintptr_t)fz_below(rng, 2));
		fz_ioctl(vm->h.fd, LVMM_GET_VM_INFO,
			 fz_chance(rng, 8) ? NULL : buf);
		break;
	}
}

/* Any command number, mostly in lvmm's magic, with any argument. */
static void fz_ioctl_raw(struct fz_vm *vm, int dev_fd, struct fz_rng *rng)
{
	static const uint8_t nrs[] = {
		0x00, 0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
		0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x81, 0x82,
		0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c,
		0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96,
		0x97,
	};
	static const unsigned int sizes[] = {
		0, 8, 16, 32, 40, 64, 72, 80, 144, 256, 264, 4096,
	};
	unsigned int dir = fz_below(rng, 4);
	unsigned int type = fz_chance(rng, 8) ? fz_below(rng, 256) : LVMMIO;
	unsigned int nr = fz_chance(rng, 4) ? fz_below(rng, 256) :
			  nrs[fz_below(rng, ARRAY_SIZE(nrs))];
	unsigned int size = fz_chance(rng, 4) ? fz_below(rng, 1 << 14) :
			    sizes[fz_below(rng, ARRAY_SIZE(sizes))];
	unsigned long cmd = _IOC(dir, type, nr, size);
	int fds[] = { dev_fd, vm->h.fd, fz_any_vcpu(vm, rng)->h.fd };
	void *arg;
	int r;

	/* RUN from this thread would spin in the guest with no timer. */
	if (cmd == LVMM_RUN)
		return;
	switch (fz_below(rng, 8)) {
	case 0:
		arg = NULL;
		break;
	case 1:
		arg = fz_bad_pointer(rng);
		break;
	case 2:
		memset(vm->buf, 0, FZ_BUF_SIZE);
		arg = vm->buf;
		break;
	default:
		fz_fill(vm->buf, size ? size : 64, rng);
		arg = vm->buf;
		break;
	}
	r = fz_ioctl(fds[fz_below(rng, 3)], cmd, arg);
	if (r >= 0 && (cmd == LVMM_CREATE_VM || cmd == LVMM_CREATE_VCPU))
		close(r);
}

static void fz_restore_mutated(struct fz_vm *vm, int dev_fd,
			       struct fz_rng *rng);

/* Map the run page or slot 0 a second time, touch it, unmap it. */
static void fz_map_race(struct fz_vm *vm, struct fz_rng *rng)
{
	struct fz_vcpu *v = fz_any_vcpu(vm, rng);
	uint64_t word;
	void *p;

	fz_inc(stats->map_races);
	if (fz_chance(rng, 2)) {
		size_t len = vm->h.vcpu_mmap_size;

		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			 v->h.fd, 0);
		if (p == MAP_FAILED)
			return;
		fz_guarded_read(&word, (uint8_t *)p + fz_below(rng, len / 8) * 8,
				sizeof(word));
		munmap(p, len);
		return;
	}
	if (lvmm_memslot_map(&vm->h, 0, FZ_MEM_SIZE, PROT_READ | PROT_WRITE,
			     &p))
		return;
	/* Guest code changing under the vCPUs' feet. */
	word = fz_rand(rng);
	fz_guarded_copy((uint8_t *)p + fz_below(rng, FZ_MEM_SIZE / 8) * 8,
			&word, sizeof(word));
	munmap(p, FZ_MEM_SIZE);
}

/*
 * Drop the last reference the fd table holds while a RUN thread is inside
 * the ioctl.  dup2() from /dev/null does it atomically: the fd number
 * never names another lvmm object, so the RUN thread sees ENOTTY, not
 * a stranger's file.
 */
static void fz_close_race(struct fz_vm *vm, struct fz_rng *rng)
{
	fz_inc(stats->close_races);
	if (fz_chance(rng, 3)) {
		fz_store(vm->vm_fd_gone, 1);
		dup2(vm->devnull, vm->h.fd);
	} else {
		struct fz_vcpu *v = fz_any_vcpu(vm, rng);

		fz_store(v->fd_gone, 1);
		dup2(vm->devnull, v->h.fd);
	}
}

static bool fz_all_done(struct fz_vm *vm)
{
	unsigned int i;

	for (i = 0; i < vm->nvcpus; i++)
		if (!fz_load(vm->vcpu[i].done))
			return false;
	return true;
}

/* Unmask some I/O APIC pins with vectors the APICs take. */
static void fz_ioapic_program(struct fz_vm *vm, struct fz_rng *rng)
{
	struct lvmm_ioapic_state io;
	unsigned int n = 1 + fz_below(rng, 8);

	fz_inc(stats->ioapic_progs);
	if (fz_note(LVMM_GET_IOAPIC, lvmm_get_ioapic(&vm->h, &io)))
		return;
	while (n--) {
		uint64_t e = 32 + fz_below(rng, 224);

		e |= fz_chance(rng, 4) ? fz_below(rng, 8) << 8 : 0;
		e |= fz_chance(rng, 2) ? 1 << 15 : 0;		/* level */
		e |= fz_chance(rng, 8) ? 1 << 11 : 0;		/* logical */
		e |= (fz_chance(rng, 3) ? 0xffULL : fz_below(rng, 4)) << 56;
		io.redir[fz_below(rng, LVMM_IOAPIC_PINS)] = e;
	}
	fz_note(LVMM_SET_IOAPIC, lvmm_set_ioapic(&vm->h, &io));
}

/* Enable a vCPU's APIC and arm its timer with a tiny count. */
static void fz_lapic_program(struct fz_vcpu *v, struct fz_rng *rng)
{
	struct lvmm_lapic_state ls;
	uint32_t svr = 0x1ff, lvt = 32 + fz_below(rng, 224);
	uint32_t count = 1 + fz_below(rng, 5000), div = 0xb;

	fz_inc(stats->lapic_progs);
	if (fz_note(LVMM_GET_LAPIC, lvmm_get_lapic(&v->h, &ls)))
		return;
	lvt |= fz_below(rng, 2) << 17;		/* one-shot or periodic */
	memcpy(ls.regs + 0xf0, &svr, 4);
	memcpy(ls.regs + 0x320, &lvt, 4);
	memcpy(ls.regs + 0x380, &count, 4);
	memcpy(ls.regs + 0x390, &count, 4);
	memcpy(ls.regs + 0x3e0, &div, 4);
	fz_note(LVMM_SET_LAPIC, lvmm_set_lapic(&v->h, &ls));
}

/*
 * The I/O APIC's lines, from a thread of their own while the vCPUs run
 * and the controller changes everything else: LVMM_IRQ_LINE is a VM
 * ioctl that waits for no vCPU.
 */
static void *fz_irq_lines(void *arg)
{
	struct fz_vm *vm = arg;
	struct fz_rng rng;

	fz_rng_init(&rng, fz_derive(vm->seed, ~2ULL));
	while (!fz_load(vm->stop)) {
		__u32 pin = fz_chance(&rng, 16) ? fz_below(&rng, 40) :
			    fz_below(&rng, LVMM_IOAPIC_PINS);

		fz_inc(stats->irq_line_ops);
		fz_note(LVMM_IRQ_LINE, lvmm_irq_line(&vm->h, pin,
						     fz_below(&rng, 2)));
		if (fz_chance(&rng, 4))		/* a pulse */
			fz_note(LVMM_IRQ_LINE, lvmm_irq_line(&vm->h, pin, 0));
		if (fz_chance(&rng, 64)) {
			struct lvmm_ioapic_state io;

			fz_note(LVMM_GET_IOAPIC, lvmm_get_ioapic(&vm->h, &io));
		}
		fz_sleep_us(fz_below(&rng, 1000));
	}
	return NULL;
}

static void fz_control(struct fz_vm *vm, int dev_fd, struct fz_rng *rng,
		       double end)
{
	while (fz_now() < end && !fz_all_done(vm)) {
		struct fz_vcpu *v = fz_any_vcpu(vm, rng);
		unsigned int w = fz_below(rng, vm->irqchip ? 112 : 100);

		if (w < 10) {
			struct lvmm_regs r;

			fz_random_regs(&r, rng);
			r.rip = fz_below(rng, FZ_MEM_SIZE);
			fz_note(LVMM_SET_REGS, lvmm_set_regs(&v->h, &r));
		} else if (w < 18) {
			fz_vcpu_setup(vm, v, rng);	/* a mode switch */
		} else if (w < 30) {
			fz_inc(stats->irqs);
			fz_note(LVMM_INTERRUPT,
				lvmm_interrupt(&v->h, 32 + fz_below(rng, 224)));
		} else if (w < 36) {
			fz_inc(stats->nmis);
			fz_note(LVMM_NMI, lvmm_nmi(&v->h));
		} else if (w < 52) {
			if (v->started && !fz_load(v->done)) {
				fz_inc(stats->signals);
				pthread_kill(v->thread, SIGUSR1);
			}
		} else if (w < 55) {
			if (!vm->vm_fd_gone)
				fz_slot0_cycle(vm, rng);
		} else if (w < 60) {
			if (!vm->vm_fd_gone)
				fz_extra_slot(vm, rng);
		} else if (w < 72) {
			fz_inc(stats->mutated);
			fz_ioctl_typed(vm, dev_fd, rng);
		} else if (w < 82) {
			fz_inc(stats->mutated);
			fz_ioctl_raw(vm, dev_fd, rng);
		} else if (w < 88) {
			uint64_t len = 1 + fz_below(rng, 256);

			fz_mem_fill(vm, fz_load(vm->slot0_gpa) +
				    fz_below(rng, FZ_MEM_SIZE - len), len, rng);
		} else if (w < 92) {
			if (!vm->vm_fd_gone)
				fz_map_race(vm, rng);
		} else if (w < 93) {
			if (fz_chance(rng, 4))
				fz_close_race(vm, rng);
		} else if (w < 100) {
			struct lvmm_vm_info info;

			fz_note(LVMM_GET_VM_INFO, lvmm_vm_info(&vm->h, &info));
			if (w == 99 && fz_chance(rng, 4))
				fz_restore_mutated(vm, dev_fd, rng);
		} else if (w < 104) {
			fz_ioapic_program(vm, rng);
		} else if (w < 108) {
			fz_lapic_program(v, rng);
		} else {
			__u32 st;

			/* Who is halted; sometimes wake or park one. */
			if (!fz_note(LVMM_GET_MP_STATE,
				     lvmm_get_mp_state(&v->h, &st)))
				fz_inc(stats->mp_seen[st < 3 ? st : 3]);
			if (fz_chance(rng, 4))
				fz_note(LVMM_SET_MP_STATE,
					lvmm_set_mp_state(&v->h,
							  fz_below(rng, 3)));
		}
		fz_sleep_us(fz_below(rng, 2000));
	}
}

/* ---- one VM's life ------------------------------------------------------ */

static void fz_vm_teardown(struct fz_vm *vm, struct fz_rng *rng)
{
	unsigned int i, order = fz_below(rng, 3);

	/* vCPU fds hold the VM: any order must free everything. */
	if (order == 1)
		lvmm_vm_close(&vm->h);
	if (order == 2 && vm->mem)
		munmap(vm->mem, FZ_MEM_SIZE);
	for (i = 0; i < vm->nvcpus; i++)
		lvmm_vcpu_close(&vm->vcpu[i].h);
	if (order != 2 && vm->mem)
		munmap(vm->mem, FZ_MEM_SIZE);
	if (order != 1)
		lvmm_vm_close(&vm->h);
}

static void fz_vm_life(const struct fz_opts *o, int dev_fd, uint64_t seed,
		       unsigned int n, double end)
{
	struct fz_vm *vm;
	struct fz_rng rng;
	char name[LVMM_VM_NAME_LEN];
	unsigned int i, nvcpus;
	int fd = dev_fd, r;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return;
	vm->buf = malloc(FZ_BUF_SIZE);
	if (!vm->buf) {
		free(vm);
		return;
	}
	vm->o = o;
	vm->seed = seed;
	vm->slot0_gpa = ~0ULL;
	pthread_mutex_init(&vm->mem_lock, NULL);
	fz_rng_init(&rng, seed);

	/* A fresh /dev/lvmm fd now and then, closed while the VM lives. */
	if (fz_chance(&rng, 4))
		fd = lvmm_open();
	if (fd < 0)
		fd = dev_fd;
	snprintf(name, sizeof(name), "fz%d-%u", getpid(), n);
	r = fz_note(LVMM_CREATE_VM, lvmm_vm_create(fd, name, &vm->h));
	if (fd != dev_fd)
		close(fd);
	if (r) {
		fz_inc(stats->vm_create_failed);
		if (o->verbose)
			fz_log("# %s: CREATE_VM: %s", name, fz_errname(-r));
		fz_sleep_us(10000);
		goto out_free;
	}
	fz_inc(stats->vms);
	vm->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

	r = fz_note(LVMM_SET_MEMSLOT, lvmm_set_memslot(&vm->h, 0, 0, 0,
						       FZ_MEM_SIZE));
	if (!r) {
		void *p;

		vm->slot0_gpa = 0;
		if (!lvmm_memslot_map(&vm->h, 0, FZ_MEM_SIZE,
				      PROT_READ | PROT_WRITE, &p))
			vm->mem = p;
		fz_mem_fill(vm, 0, FZ_MEM_SIZE, &rng);
	}

	/* One VM in three has the in-kernel APICs. */
	if (fz_chance(&rng, 3)) {
		r = fz_note(LVMM_CREATE_IRQCHIP, lvmm_create_irqchip(&vm->h));
		if (!r) {
			vm->irqchip = true;
			fz_inc(stats->irqchip_vms);
		} else {
			fz_inc(stats->irqchip_failed);
		}
	}

	nvcpus = 1 + fz_below(&rng, FZ_MAX_VCPUS);
	for (i = 0; i < nvcpus; i++) {
		struct fz_vcpu *v = &vm->vcpu[i];

		r = fz_note(LVMM_CREATE_VCPU, lvmm_vcpu_create(&vm->h, i,
							       &v->h));
		if (r)
			break;
		fz_inc(stats->vcpus);
		v->vm = vm;
		v->index = i;
		v->idt_page = ~0ULL;
		v->seed = fz_derive(seed, i);
		vm->nvcpus++;
		fz_vcpu_setup(vm, v, &rng);
	}
	if (o->verbose > 1)
		fz_log("# %s: seed %llu, %.2f s,%s vCPUs: %s %s %s", name,
		       (unsigned long long)seed, end - fz_now(),
		       vm->irqchip ? " irqchip," : "",
		       vm->vcpu[0].what, vm->vcpu[1].what, vm->vcpu[2].what);
	if (!vm->nvcpus)
		goto out_close;

	for (i = 0; i < vm->nvcpus; i++) {
		struct fz_vcpu *v = &vm->vcpu[i];

		if (pthread_create(&v->thread, NULL, fz_runner, v)) {
			v->done = 1;
			continue;
		}
		v->started = true;
	}
	if (vm->irqchip && !pthread_create(&vm->irq_thread, NULL,
					   fz_irq_lines, vm))
		vm->irq_started = true;

	fz_control(vm, dev_fd, &rng, end);

	/*
	 * A RUN may be in the guest, or halted in the kernel: SIGUSR1 until
	 * each thread notices.
	 */
	fz_store(vm->stop, 1);
	if (vm->irq_started)
		pthread_join(vm->irq_thread, NULL);
	for (i = 0; i < vm->nvcpus; i++) {
		struct fz_vcpu *v = &vm->vcpu[i];

		if (!v->started)
			continue;
		while (!fz_load(v->done)) {
			pthread_kill(v->thread, SIGUSR1);
			fz_sleep_us(2000);
		}
		pthread_join(v->thread, NULL);
	}
	for (i = 0; i < vm->nvcpus; i++)
		fz_idt_harvest(vm, &vm->vcpu[i]);

out_close:
	fz_vm_teardown(vm, &rng);
	if (vm->devnull >= 0)
		close(vm->devnull);
out_free:
	pthread_mutex_destroy(&vm->mem_lock);
	free(vm->buf);
	free(vm);
}

static int fz_worker(const struct fz_opts *o, uint64_t seed, double end)
{
	struct sigaction sa;
	struct fz_rng rng;
	unsigned int n = 0;
	int dev_fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* No SA_RESTART: a signal must make RUN return EINTR. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fz_nop;
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	/* SA_NODEFER: the guard longjmps out of the handler. */
	sa.sa_handler = fz_sigbus;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);

	dev_fd = lvmm_open();
	if (dev_fd < 0) {
		fz_log("# worker: open %s: %s", LVMM_DEV_PATH,
		       fz_errname(-dev_fd));
		return 2;
	}
	fz_rng_init(&rng, seed);
	while (fz_now() + 0.05 < end) {
		double life = 0.1 + fz_below(&rng, 1400) / 1000.0;
		double now = fz_now();

		if (life > end - now)
			life = end - now;
		fz_vm_life(o, dev_fd, fz_derive(seed, n), n, now + life);
		n++;
	}
	close(dev_fd);
	return 0;
}

/* ---- vmctl -------------------------------------------------------------- */

/*
 * Run vmctl with @args, its stdout into @out.  Never waits longer than
 * FZ_VMCTL_DEADLINE: vmctl dies of its own alarm() first, and is killed
 * if a system call keeps it past that.  Returns the exit status, or -1
 * when it could not run or had to be killed.
 */
static int fz_vmctl_exec(const char *path, const char *const args[],
			 char *out, size_t outlen)
{
	const char *argv[8] = { path };
	double start = fz_now(), left;
	size_t len = 0, i;
	int pfd[2], status, r = -1;
	uint64_t ms;
	pid_t pid;

	for (i = 0; args[i] && i < ARRAY_SIZE(argv) - 2; i++)
		argv[i + 1] = args[i];
	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (!pid) {
		int null = open("/dev/null", O_RDWR);

		dup2(pfd[1], STDOUT_FILENO);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		signal(SIGALRM, SIG_DFL);
		alarm(FZ_VMCTL_ALARM);	/* survives execv() */
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	while ((left = start + FZ_VMCTL_DEADLINE - fz_now()) > 0) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		char sink[512];
		ssize_t n;

		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		if (out && len + 1 < outlen)
			n = read(pfd[0], out + len, outlen - len - 1);
		else
			n = read(pfd[0], sink, sizeof(sink));
		if (n <= 0)
			break;
		if (out && len + 1 < outlen)
			len += n;
	}
	close(pfd[0]);
	if (out)
		out[len] = '\0';
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid) {
			if (WIFEXITED(status))
				r = WEXITSTATUS(status);
			else if (WTERMSIG(status) == SIGALRM)
				fz_inc(stats->vmctl_hung);
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
		if (fz_now() > start + FZ_VMCTL_DEADLINE) {
			/* In a system call past its alarm: note it, move on. */
			fz_inc(stats->vmctl_hung);
			kill(pid, SIGKILL);
			fz_sleep_us(100000);
			waitpid(pid, &status, WNOHANG);
			break;
		}
		fz_sleep_us(1000);
	}
	ms = (fz_now() - start) * 1000;
	if (ms > stats->vmctl_max_ms)
		stats->vmctl_max_ms = ms;
	if (ms > FZ_VMCTL_SLOW_MS) {
		fz_inc(stats->vmctl_slow);
		fz_log("# vmctl %s %s took %llu ms", args[0],
		       args[1] ? args[1] : "", (unsigned long long)ms);
	}
	return r;
}

#define FZ_MAX_NAMES	64

/* The names of the VMs in `vmctl -j list` output that start with @prefix. */
static unsigned int fz_vm_names(const char *json, const char *prefix,
				char names[][LVMM_VM_NAME_LEN])
{
	const char *p = json;
	unsigned int n = 0;

	while (n < FZ_MAX_NAMES && (p = strstr(p, "\"name\":\""))) {
		const char *q;
		size_t len;

		p += strlen("\"name\":\"");
		q = strchr(p, '"');
		if (!q)
			break;
		len = q - p;
		if (len < LVMM_VM_NAME_LEN && !strncmp(p, prefix,
						       strlen(prefix))) {
			memcpy(names[n], p, len);
			names[n++][len] = '\0';
		}
		p = q;
	}
	return n;
}

/*
 * ---- random netlink messages ---------------------------------------------
 *
 * Raw generic netlink, so that the messages can be what no library would
 * build: any command, version and flags, attributes of any type, length
 * and nesting, names of live VMs or garbage.  An fd attribute only ever
 * names /dev/null, the socket itself or no open fd, so that a vm-save
 * cannot write into the fuzzer's own output.
 */
struct fz_nl {
	int sock, devnull, family;
	unsigned int seq;
};

#define FZ_NL_BUF	4096

static int fz_nl_put(char *buf, size_t *len, int type, const void *data,
		     size_t n)
{
	struct nlattr *a = (struct nlattr *)(buf + *len);
	size_t total = NLA_ALIGN(NLA_HDRLEN + n);

	if (*len + total > FZ_NL_BUF)
		return -1;
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + n;
	memcpy(buf + *len + NLA_HDRLEN, data, n);
	memset(buf + *len + NLA_HDRLEN + n, 0, total - NLA_HDRLEN - n);
	*len += total;
	return 0;
}

/* Send @len bytes at @buf: the kernel's answer, 0 or -errno (-ETIMEDOUT: none). */
static int fz_nl_talk(struct fz_nl *nl, char *buf, size_t len, bool dump)
{
	static char in[1 << 16];
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	int i;

	h->nlmsg_len = len;
	h->nlmsg_seq = ++nl->seq;
	if (send(nl->sock, buf, len, 0) < 0)
		return -errno;
	/* Dumps answer in parts; give up after a few empty waits. */
	for (i = 0; i < (dump ? 64 : 4); i++) {
		struct pollfd p = { .fd = nl->sock, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 200) <= 0)
			return -ETIMEDOUT;
		n = recv(nl->sock, in, sizeof(in), MSG_DONTWAIT);
		if (n < 0)
			return errno == ENOBUFS ? -ENOBUFS : -errno;
		for (h = (struct nlmsghdr *)in; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != nl->seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				return e->error;
			}
		}
	}
	return -ETIMEDOUT;
}

static bool fz_nl_open(struct fz_nl *nl)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char buf[FZ_NL_BUF], in[FZ_NL_BUF];
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	struct genlmsghdr *g = NLMSG_DATA(h);
	size_t len = NLMSG_LENGTH(GENL_HDRLEN);
	ssize_t n;

	nl->family = -1;
	nl->sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	nl->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (nl->sock < 0 || nl->devnull < 0 ||
	    bind(nl->sock, (struct sockaddr *)&sa, sizeof(sa)))
		return false;
	memset(buf, 0, sizeof(buf));
	h->nlmsg_type = GENL_ID_CTRL;
	h->nlmsg_flags = NLM_F_REQUEST;
	g->cmd = CTRL_CMD_GETFAMILY;
	g->version = 1;
	if (fz_nl_put(buf, &len, CTRL_ATTR_FAMILY_NAME, LVMM_FAMILY_NAME,
		      strlen(LVMM_FAMILY_NAME) + 1))
		return false;
	h->nlmsg_len = len;
	if (send(nl->sock, buf, len, 0) < 0)
		return false;
	n = recv(nl->sock, in, sizeof(in), 0);
	h = (struct nlmsghdr *)in;
	if (n <= 0 || !NLMSG_OK(h, (size_t)n) ||
	    h->nlmsg_type != GENL_ID_CTRL)
		return false;
	{
		struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(h) +
						     GENL_HDRLEN);
		int left = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);

		while (left >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
		       a->nla_len <= left) {
			if ((a->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID)
				nl->family = *(uint16_t *)((char *)a +
							   NLA_HDRLEN);
			left -= NLA_ALIGN(a->nla_len);
			a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
		}
	}
	return nl->family >= 0;
}

/* One attribute's payload: a number, a live VM's name, or garbage. */
static size_t fz_nl_payload(struct fz_nl *nl, struct fz_rng *rng, int type,
			    char names[][LVMM_VM_NAME_LEN], unsigned int n,
			    unsigned char *p)
{
	uint64_t v = fz_interesting(rng);
	size_t len;

	if (type == LVMM_A_VM_SAVE_FD || type == LVMM_A_VM_MIGRATE_FD) {
		static const int pick[] = { -1, 0x7fffffff };
		int fd = fz_chance(rng, 2) ? nl->devnull : fz_chance(rng, 2) ?
			 nl->sock : pick[fz_below(rng, 2)];

		memcpy(p, &fd, 4);
		return 4;
	}
	switch (fz_below(rng, 6)) {
	case 0:
		len = 4;
		break;
	case 1:
		len = 8;
		break;
	case 2:
		len = 0;
		break;
	case 3:
		if (n) {
			const char *name = names[fz_below(rng, n)];

			len = strlen(name);
			memcpy(p, name, len + 1);
			return len + !fz_chance(rng, 8);	/* unterminated */
		}
		/* fall through */
	default:
		len = fz_below(rng, fz_chance(rng, 8) ? 600 : 40);
		for (size_t i = 0; i < len; i++)
			p[i] = fz_rand(rng);
		return len;
	}
	if (len == 4 && fz_chance(rng, 2))
		v = fz_below(rng, 3000);	/* ids, pins, percentages */
	memcpy(p, &v, len);
	return len;
}

/*
 * Most requests are well formed around one mutation, so that they get
 * past the policy into the handlers: a valid command naming a live VM (or
 * a random id), then attributes of the command's own set, mostly of the
 * right size, with interesting values.
 */
static void fz_nl_shaped(struct fz_nl *nl, struct fz_rng *rng, char *buf,
			 size_t *len, int cmd, char names[][LVMM_VM_NAME_LEN],
			 unsigned int n)
{
	bool sched = cmd == LVMM_CMD_SCHED_GET || cmd == LVMM_CMD_SCHED_SET;
	int max = sched ? LVMM_A_SCHED_MAX : LVMM_A_VM_MAX;
	unsigned int k, extra = fz_below(rng, 4);
	unsigned char p[64];

	/* LVMM_A_VM_ID/NAME and LVMM_A_SCHED_VM_ID/NAME are 1 and 2. */
	if (n && !fz_chance(rng, 4)) {
		const char *name = names[fz_below(rng, n)];

		fz_nl_put(buf, len, LVMM_A_VM_NAME, name, strlen(name) + 1);
	} else {
		uint32_t id = fz_below(rng, 3000);

		fz_nl_put(buf, len, LVMM_A_VM_ID, &id, 4);
	}
	for (k = 0; k < extra; k++) {
		int type = 3 + fz_below(rng, max - 2);
		uint64_t v = fz_chance(rng, 2) ? fz_below(rng, 200) :
						  fz_interesting(rng);
		size_t plen = fz_chance(rng, 4) ? 8 : fz_chance(rng, 8) ? 0 : 4;

		if (sched && type == LVMM_A_SCHED_VCPU) {
			size_t nlen = 0;
			uint32_t id = fz_below(rng, 4);
			uint64_t cpus = fz_chance(rng, 2) ? 1 + fz_below(rng, 3) :
							    fz_rand(rng);

			fz_nl_put((char *)p, &nlen, LVMM_A_SCHED_VCPU_ID, &id, 4);
			fz_nl_put((char *)p, &nlen, LVMM_A_SCHED_VCPU_CPUS, &cpus,
				  fz_below(rng, 9));
			fz_nl_put(buf, len, type | NLA_F_NESTED, p, nlen);
			continue;
		}
		if (!sched && (type == LVMM_A_VM_SAVE_FD ||
			       type == LVMM_A_VM_MIGRATE_FD))
			plen = fz_nl_payload(nl, rng, type, names, 0, p);
		else
			memcpy(p, &v, plen);
		fz_nl_put(buf, len, type, p, plen);
	}
}

/* A random request to the lvmm family; counted by its answer. */
static void fz_nl_once(struct fz_nl *nl, struct fz_rng *rng,
		       char names[][LVMM_VM_NAME_LEN], unsigned int n)
{
	char buf[FZ_NL_BUF];
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	struct genlmsghdr *g = NLMSG_DATA(h);
	size_t len = NLMSG_LENGTH(GENL_HDRLEN);
	unsigned int k, attrs = fz_below(rng, 7);
	bool dump = fz_chance(rng, 4);
	int err;

	memset(buf, 0, NLMSG_LENGTH(GENL_HDRLEN));
	h->nlmsg_type = nl->family;
	g->version = fz_chance(rng, 8) ? fz_rand(rng) : LVMM_FAMILY_VERSION;
	if (!fz_chance(rng, 4)) {
		g->cmd = 1 + fz_below(rng, LVMM_CMD_MAX);
		dump = (g->cmd == LVMM_CMD_VM_GET ||
			g->cmd == LVMM_CMD_VCPU_GET) && fz_chance(rng, 3);
		attrs = 0;
		fz_nl_shaped(nl, rng, buf, &len, g->cmd, names, n);
	} else {
		g->cmd = fz_below(rng, LVMM_CMD_MAX + 3);
	}
	/* Always an ack: every request gets an answer to wait for. */
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (dump ? NLM_F_DUMP : 0);
	for (k = 0; k < attrs; k++) {
		unsigned char p[640];
		int type = fz_below(rng, 40);
		size_t plen;

		if (fz_chance(rng, 6)) {
			/* A nest of one to three children. */
			unsigned char nest[640];
			size_t nlen = 0, c, cl;

			for (c = 0; c < 1 + fz_below(rng, 3); c++) {
				int ct = fz_below(rng, 12);

				cl = fz_nl_payload(nl, rng, ct, names, n, p);
				if (nlen + NLA_ALIGN(NLA_HDRLEN + cl) >
				    sizeof(nest))
					break;
				fz_nl_put((char *)nest, &nlen, ct, p, cl);
			}
			plen = nlen;
			memcpy(p, nest, nlen);
			type |= NLA_F_NESTED;
		} else {
			plen = fz_nl_payload(nl, rng, type, names, n, p);
		}
		if (fz_nl_put(buf, &len, type, p, plen))
			break;
	}
	fz_inc(stats->nl_sent);
	if (dump)
		fz_inc(stats->nl_dumps);
	err = fz_nl_talk(nl, buf, len, dump);
	if (err == -ETIMEDOUT || err == -ENOBUFS)
		fz_inc(stats->nl_lost);
	else if (!err)
		fz_inc(stats->nl_ok);
	else
		fz_inc(stats->nl_err[-err < FZ_NR_ERRNO ? -err : 0]);
}

#define FZ_STREAM_MAX	(8 << 20)

/*
 * A saved VM stream, mutated, restored: the reader in the kernel parses
 * what it is given.  The stream is this VM's, saved once per worker with
 * `vmctl save` (which pauses and resumes it); each restore changes a few
 * bytes, a 64-bit word or the length.  What comes back is mostly refused
 * (the checksum, if nothing before it); a VM that is restored goes at
 * once with its fd.
 */
static void fz_restore_mutated(struct fz_vm *vm, int dev_fd,
			       struct fz_rng *rng)
{
	static uint8_t *saved, *copy;
	static size_t saved_len;
	struct lvmm_vm_handle h;
	char path[64], name[LVMM_VM_NAME_LEN];
	size_t len, i, n;
	ssize_t got;
	int fd, r;

	if (!vm->o->vmctl)
		return;
	if (!saved) {
		const char *args[] = { "save", vm->h.name, path, NULL };

		saved = malloc(FZ_STREAM_MAX);
		copy = malloc(FZ_STREAM_MAX);
		if (!saved || !copy)
			return;
		snprintf(path, sizeof(path), "/tmp/fz-stream-%d", getpid());
		if (fz_vmctl_exec(vm->o->vmctl, args, NULL, 0) ||
		    (fd = open(path, O_RDONLY)) < 0) {
			unlink(path);
			return;
		}
		got = read(fd, saved, FZ_STREAM_MAX);
		close(fd);
		unlink(path);
		if (got <= 0)
			return;
		saved_len = got;
		fz_inc(stats->saves);
	}
	if (!saved_len)
		return;
	len = saved_len;
	memcpy(copy, saved, len);
	switch (fz_below(rng, 4)) {
	case 0:		/* a few bits */
		for (i = 0, n = 1 + fz_below(rng, 8); i < n; i++)
			copy[fz_below(rng, len)] ^= 1 << fz_below(rng, 8);
		break;
	case 1:		/* a word: a length, a count, an address */
		if (len >= 8) {
			uint64_t word = fz_interesting(rng);

			memcpy(copy + (fz_below(rng, len - 7) & ~7ULL), &word, 8);
		}
		break;
	case 2:		/* cut short */
		len = fz_below(rng, len);
		break;
	default:	/* bytes, near the start where the header is */
		for (i = 0, n = 1 + fz_below(rng, 16); i < n; i++)
			copy[fz_below(rng, len < 4096 ? len : 4096)] = fz_rand(rng);
		break;
	}
	fd = memfd_create("fz-stream", 0);
	if (fd < 0)
		return;
	if (write(fd, copy, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET)) {
		close(fd);
		return;
	}
	snprintf(name, sizeof(name), "fz-r%d-%llu", getpid(),
		 (unsigned long long)fz_below(rng, 1000));
	fz_inc(stats->restores);
	r = fz_note(LVMM_RESTORE_VM,
		    lvmm_vm_restore_flags(dev_fd, fd, name,
					  fz_chance(rng, 16) ? fz_rand(rng) : 0,
					  &h, NULL));
	close(fd);
	if (!r) {
		fz_inc(stats->restores_ok);
		lvmm_vm_close(&h);
	}
}

static void fz_vmctl_loop(const struct fz_opts *o)
{
	static char out[1 << 16];
	char names[FZ_MAX_NAMES][LVMM_VM_NAME_LEN];
	struct fz_rng rng;

	struct fz_nl nl;
	bool nl_ok;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	fz_rng_init(&rng, fz_derive(o->seed, ~0ULL));
	nl_ok = fz_nl_open(&nl);
	if (!nl_ok)
		fz_log("# netlink: no lvmm family, no random messages");
	while (!fz_load(stats->vmctl_stop)) {
		const char *list[] = { "-j", "list", NULL };
		unsigned int n, k;
		int r;

		fz_inc(stats->vmctl_runs[FZ_VMCTL_LIST]);
		r = fz_vmctl_exec(o->vmctl, list, out, sizeof(out));
		if (r)
			fz_inc(stats->vmctl_failed[FZ_VMCTL_LIST]);
		n = r ? 0 : fz_vm_names(out, "fz", names);
		for (k = 0; n && k < 1 + fz_below(&rng, 4); k++) {
			static const enum fz_vmctl_cmd pick[] = {
				FZ_VMCTL_SHOW, FZ_VMCTL_STAT, FZ_VMCTL_PAUSE,
				FZ_VMCTL_PAUSE, FZ_VMCTL_RESUME,
				FZ_VMCTL_RESUME, FZ_VMCTL_RESUME,
				FZ_VMCTL_DESTROY,
			};
			enum fz_vmctl_cmd c = pick[fz_below(&rng,
							    ARRAY_SIZE(pick))];
			const char *args[] = {
				fz_chance(&rng, 2) ? "-j" : fz_vmctl_names[c],
				NULL, NULL, NULL,
			};

			if (args[0][0] == '-') {
				args[1] = fz_vmctl_names[c];
				args[2] = names[fz_below(&rng, n)];
			} else {
				args[1] = names[fz_below(&rng, n)];
			}
			fz_inc(stats->vmctl_runs[c]);
			if (fz_vmctl_exec(o->vmctl, args, NULL, 0))
				fz_inc(stats->vmctl_failed[c]);
		}
		for (k = 0; nl_ok && k < 1 + fz_below(&rng, 8); k++)
			fz_nl_once(&nl, &rng, names, n);
		fz_sleep_us(fz_below(&rng, 30000));
	}
}

/* vmctl: --vmctl, else next to this binary, else in PATH. */
static const char *fz_find_vmctl(const char *arg)
{
	static char buf[PATH_MAX];
	const char *path = getenv("PATH");
	char *slash;
	ssize_t n;

	if (arg)
		return access(arg, X_OK) ? NULL : arg;
	n = readlink("/proc/self/exe", buf, sizeof(buf) - 8);
	if (n > 0) {
		buf[n] = '\0';
		slash = strrchr(buf, '/');
		if (slash) {
			strcpy(slash + 1, "vmctl");
			if (!access(buf, X_OK))
				return buf;
		}
	}
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t len = end ? (size_t)(end - path) : strlen(path);

		if (len && len + 7 < sizeof(buf)) {
			memcpy(buf, path, len);
			strcpy(buf + len, "/vmctl");
			if (!access(buf, X_OK))
				return buf;
		}
		path = end ? end + 1 : NULL;
	}
	return NULL;
}

/* ---- the parent ----------------------------------------------------------- */

#define FZ_MAX_PROCS	16
#define FZ_MAX_PIDS	4096

struct fz_slot {
	pid_t pid;
	uint64_t round;
	double end, kill_at;
	bool killed, overstayed;
};

static struct fz_slot fz_slots[FZ_MAX_PROCS];
static pid_t fz_vmctl_pid;
static char fz_backstop_msg[256];
static pid_t fz_pids[FZ_MAX_PIDS];	/* every worker, for the leftovers */
static unsigned int fz_nr_pids;

/* The backstop: whatever is stuck, end the run now, as a failure. */
static void fz_backstop(int sig)
{
	unsigned int i;

	(void)sig;
	for (i = 0; i < FZ_MAX_PROCS; i++)
		if (fz_slots[i].pid > 0)
			kill(fz_slots[i].pid, SIGKILL);
	if (fz_vmctl_pid > 0)
		kill(-fz_vmctl_pid, SIGKILL);
	if (write(STDOUT_FILENO, fz_backstop_msg,
		  strlen(fz_backstop_msg)) < 0)
		_exit(1);
	_exit(1);
}

static uint64_t fz_round_seed(const struct fz_opts *o, uint64_t round)
{
	return fz_derive(o->seed, round);
}

static void fz_start_round(const struct fz_opts *o, struct fz_slot *s,
			   uint64_t round, double deadline)
{
	uint64_t seed = fz_round_seed(o, round);
	struct fz_rng rng;
	double now = fz_now(), len;
	pid_t pid;

	/* The parent's draws come from the round's seed too. */
	fz_rng_init(&rng, fz_derive(seed, ~1ULL));
	len = 1.0 + fz_below(&rng, 3000) / 1000.0;
	memset(s, 0, sizeof(*s));
	s->round = round;
	s->end = now + len < deadline ? now + len : deadline;
	if (o->kill && round % 3 == 2)
		s->kill_at = now + 0.05 + fz_below(&rng, 1000) / 1000.0 *
					  (s->end - now);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fz_log("# fork: %s", fz_errname(errno));
		return;
	}
	if (!pid) {
		signal(SIGALRM, SIG_DFL);
		_exit(fz_worker(o, seed, s->end));
	}
	s->pid = pid;
	if (fz_nr_pids < FZ_MAX_PIDS)
		fz_pids[fz_nr_pids++] = pid;
	fz_inc(stats->rounds);
	if (o->verbose)
		fz_log("# round %llu: pid %d seed %llu for %.1f s%s",
		       (unsigned long long)round, pid,
		       (unsigned long long)seed, s->end - now,
		       s->kill_at ? ", SIGKILL at a random moment" : "");
}

/* Reap @s's worker if it is done; returns true when it failed the run. */
static bool fz_reap(const struct fz_opts *o, struct fz_slot *s, bool *failed)
{
	int status;
	pid_t w = waitpid(s->pid, &status, WNOHANG);

	if (w != s->pid)
		return false;
	if (WIFSIGNALED(status)) {
		if (WTERMSIG(status) != SIGKILL || !s->killed) {
			fz_log("# FAIL: round %llu (seed %llu, pid %d) died of signal %d (%s)",
			       (unsigned long long)s->round,
			       (unsigned long long)fz_round_seed(o, s->round),
			       s->pid, WTERMSIG(status),
			       strsignal(WTERMSIG(status)));
			*failed = true;
		}
	} else if (WEXITSTATUS(status)) {
		fz_inc(stats->worker_errors);
		fz_log("# round %llu: worker exited with status %d",
		       (unsigned long long)s->round, WEXITSTATUS(status));
	}
	s->pid = 0;
	return true;
}

/* Run the rounds until @deadline; false when a worker failed the run. */
static bool fz_rounds(const struct fz_opts *o, double deadline)
{
	double start = fz_now(), beat = start + 5;
	uint64_t round = 0;
	bool failed = false;
	unsigned int i, live;

	for (;;) {
		double now = fz_now();

		if (o->verbose && now >= beat) {
			fz_log("# +%.0f s: %llu rounds, %llu VMs, %llu RUNs, %llu exits to reset",
			       now - start, (unsigned long long)stats->rounds,
			       (unsigned long long)stats->vms,
			       (unsigned long long)stats->runs,
			       (unsigned long long)stats->resets);
			beat += 5;
		}

		live = 0;
		for (i = 0; i < o->procs; i++) {
			struct fz_slot *s = &fz_slots[i];

			if (s->pid > 0)
				fz_reap(o, s, &failed);
			if (s->pid <= 0 && now + 0.2 < deadline)
				fz_start_round(o, s, round++, deadline);
			if (s->pid <= 0)
				continue;
			live++;
			if (s->killed)
				continue;
			if (s->kill_at && now >= s->kill_at) {
				kill(s->pid, SIGKILL);
				s->killed = true;
				fz_inc(stats->rounds_killed);
			} else if (now >= s->end + FZ_GRACE) {
				/* Stuck: a vCPU thread that never returned. */
				fz_log("# round %llu (seed %llu, pid %d) overstayed its end by %.0f s: SIGKILL",
				       (unsigned long long)s->round,
				       (unsigned long long)
				       fz_round_seed(o, s->round),
				       s->pid, FZ_GRACE);
				kill(s->pid, SIGKILL);
				s->killed = s->overstayed = true;
				fz_inc(stats->rounds_overstayed);
			}
		}
		if (!live && now >= deadline)
			break;
		if (now >= deadline + FZ_REAP) {
			for (i = 0; i < o->procs; i++) {
				if (fz_slots[i].pid <= 0)
					continue;
				fz_log("# FAIL: round %llu (pid %d) still alive %.0f s after SIGKILL",
				       (unsigned long long)fz_slots[i].round,
				       fz_slots[i].pid,
				       FZ_REAP - FZ_GRACE);
				failed = true;
			}
			break;
		}
		fz_sleep_us(10000);
	}
	return !failed;
}

/* Count the VMs our workers left; -1 when vmctl cannot tell. */
static int fz_leftovers(const struct fz_opts *o, double until)
{
	static char out[1 << 16];
	const char *list[] = { "-j", "list", NULL };
	int left = -1;

	while (o->vmctl) {
		const char *p = out;
		unsigned int i;

		if (fz_vmctl_exec(o->vmctl, list, out, sizeof(out)))
			return -1;
		/* Ours: named fz..., or created by one of our workers. */
		left = 0;
		while ((p = strchr(p, '{'))) {
			const char *name = strstr(p, "\"name\":\"fz");
			const char *pid = strstr(p, "\"creator_pid\":");
			const char *end = strchr(p, '}');
			bool mine = name && (!end || name < end);

			if (pid && (!end || pid < end)) {
				long v = atol(pid + strlen("\"creator_pid\":"));

				for (i = 0; i < fz_nr_pids; i++)
					mine |= fz_pids[i] == v;
			}
			left += mine;
			if (mine && fz_now() + 0.5 >= until)
				fz_log("# left over: %.*s",
				       end ? (int)(end - p + 1) : 200, p);
			p++;
		}
		/* A VM goes with its last fd: give exits a moment. */
		if (!left || fz_now() + 0.5 >= until)
			break;
		fz_sleep_us(500000);
	}
	return left;
}

static void fz_summary(const struct fz_opts *o, double secs)
{
	uint64_t errs[FZ_NR_ERRNO] = { 0 };
	unsigned int i, e;

	fz_log("# summary: %.0f s, %llu rounds (%llu SIGKILLed at random, %llu overstayed), %llu worker errors",
	       secs, (unsigned long long)stats->rounds,
	       (unsigned long long)stats->rounds_killed,
	       (unsigned long long)stats->rounds_overstayed,
	       (unsigned long long)stats->worker_errors);
	fz_log("# VMs %llu (create failed %llu), vCPUs %llu, RUN calls %llu",
	       (unsigned long long)stats->vms,
	       (unsigned long long)stats->vm_create_failed,
	       (unsigned long long)stats->vcpus,
	       (unsigned long long)stats->runs);
	fz_log("# resets %llu, SET_SREGS fallbacks %llu, SIGUSR1 %llu, IRQs %llu, NMIs %llu",
	       (unsigned long long)stats->resets,
	       (unsigned long long)stats->sregs_fallbacks,
	       (unsigned long long)stats->signals,
	       (unsigned long long)stats->irqs,
	       (unsigned long long)stats->nmis);
	fz_log("# slot ops %llu, mutated ioctls %llu, map races %llu, close races %llu, guest writes %llu, SIGBUS caught %llu",
	       (unsigned long long)stats->slot_ops,
	       (unsigned long long)stats->mutated,
	       (unsigned long long)stats->map_races,
	       (unsigned long long)stats->close_races,
	       (unsigned long long)stats->mem_writes,
	       (unsigned long long)stats->sigbus);

	fz_log("# irqchip VMs %llu (CREATE_IRQCHIP failed %llu), APIC guest programs %llu, sane IDTs %llu",
	       (unsigned long long)stats->irqchip_vms,
	       (unsigned long long)stats->irqchip_failed,
	       (unsigned long long)stats->apic_code,
	       (unsigned long long)stats->sane_idt);
	fz_log("# IRQ line ops %llu, I/O APIC programs %llu, LAPIC programs %llu",
	       (unsigned long long)stats->irq_line_ops,
	       (unsigned long long)stats->ioapic_progs,
	       (unsigned long long)stats->lapic_progs);
	fz_log("# RUN EINTR %llu, of which seen waiting (halted or for a SIPI) %llu",
	       (unsigned long long)stats->run_eintr,
	       (unsigned long long)stats->eintr_waiting);
	fz_log("# interrupts taken by guests with a sane IDT (counted by the guest): %llu",
	       (unsigned long long)stats->guest_irqs);
	fz_log("# MP states seen: runnable %llu, halted %llu, wait-SIPI %llu, other %llu",
	       (unsigned long long)stats->mp_seen[0],
	       (unsigned long long)stats->mp_seen[1],
	       (unsigned long long)stats->mp_seen[2],
	       (unsigned long long)stats->mp_seen[3]);
	fz_log("# exit reasons:");
	for (i = 0; i < FZ_NR_EXITS; i++)
		fz_log("#   %-16s %12llu", i < FZ_NR_EXITS - 1 ?
		       lvmm_exit_reason_name(i) : "(out of range)",
		       (unsigned long long)stats->exits[i]);

	fz_log("# ioctls:              calls           ok  errors");
	for (i = 0; i < FZ_NR_IOC; i++) {
		char line[400];
		int n = 0;

		if (!stats->ioc_calls[i])
			continue;
		for (e = 0; e < FZ_NR_ERRNO; e++) {
			uint64_t c = stats->ioc_err[i][e];

			errs[e] += c;
			if (c && n < (int)sizeof(line) - 40)
				n += snprintf(line + n, sizeof(line) - n,
					      " %s:%llu", e ? fz_errname(e) :
					      "other", (unsigned long long)c);
		}
		line[n] = '\0';
		fz_log("#   %-18s %10llu %12llu %s",
		       i < ARRAY_SIZE(fz_ioctls) ? fz_ioctls[i].name :
		       "(other)", (unsigned long long)stats->ioc_calls[i],
		       (unsigned long long)stats->ioc_ok[i], line);
	}
	fz_log("# errors by errno:");
	for (e = 0; e < FZ_NR_ERRNO; e++)
		if (errs[e])
			fz_log("#   %-16s %12llu", e ? fz_errname(e) : "other",
			       (unsigned long long)errs[e]);

	if (!o->vmctl) {
		fz_log("# vmctl: not found, not run");
		return;
	}
	for (i = 0; i < FZ_NR_VMCTL; i++)
		fz_log("# vmctl %-8s %8llu runs, %llu failed",
		       fz_vmctl_names[i],
		       (unsigned long long)stats->vmctl_runs[i],
		       (unsigned long long)stats->vmctl_failed[i]);
	fz_log("# netlink: %llu random requests (%llu dumps), %llu ok, %llu unanswered",
	       (unsigned long long)stats->nl_sent,
	       (unsigned long long)stats->nl_dumps,
	       (unsigned long long)stats->nl_ok,
	       (unsigned long long)stats->nl_lost);
	for (i = 0; i < FZ_NR_ERRNO; i++)
		if (stats->nl_err[i])
			fz_log("#   netlink %-12s %10llu",
			       i ? fz_errname(i) : "other",
			       (unsigned long long)stats->nl_err[i]);
	fz_log("# vmctl: %llu hung (killed), %llu slower than %d ms, slowest %llu ms",
	       (unsigned long long)stats->vmctl_hung,
	       (unsigned long long)stats->vmctl_slow, FZ_VMCTL_SLOW_MS,
	       (unsigned long long)stats->vmctl_max_ms);
}

static void fz_usage(FILE *f)
{
	fprintf(f,
		"usage: lvmm_fuzz [--seconds N] [--seed S] [--procs P] [--no-kill]\n"
		"                 [--mode real|prot|long|random|mix] [--vmctl PATH] [-v]\n"
		"\n"
		"Random guest code and random ioctls against /dev/lvmm for N seconds\n"
		"(default 60) in P worker processes (default 2); every third round\n"
		"is SIGKILLed at a random moment unless --no-kill.  vmctl (default:\n"
		"next to this binary, or in PATH) pauses, resumes and destroys the\n"
		"VMs meanwhile.  The seed (default: from the time) is printed first;\n"
		"the same seed, --procs and --mode replay the same rounds.  The last\n"
		"lines are kselftest-style totals.\n");
}

static int fz_parse(int argc, char **argv, struct fz_opts *o)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "procs", required_argument, NULL, 'p' },
		{ "no-kill", no_argument, NULL, 'K' },
		{ "mode", required_argument, NULL, 'm' },
		{ "vmctl", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ },
	};
	const char *vmctl = NULL;
	bool seeded = false;
	char *end;
	int c;
	unsigned int i;

	memset(o, 0, sizeof(*o));
	o->seconds = 60;
	o->procs = 2;
	o->kill = true;
	o->mode = FZ_MIX;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->seconds = strtoul(optarg, &end, 0);
			if (*end || !o->seconds || o->seconds > 86400) {
				fprintf(stderr, "lvmm_fuzz: --seconds: 1..86400\n");
				return -1;
			}
			break;
		case 's':
			o->seed = strtoull(optarg, &end, 0);
			if (*end) {
				fprintf(stderr, "lvmm_fuzz: --seed: a number\n");
				return -1;
			}
			seeded = true;
			break;
		case 'p':
			o->procs = strtoul(optarg, &end, 0);
			if (*end || !o->procs || o->procs > FZ_MAX_PROCS) {
				fprintf(stderr, "lvmm_fuzz: --procs: 1..%d\n",
					FZ_MAX_PROCS);
				return -1;
			}
			break;
		case 'K':
			o->kill = false;
			break;
		case 'm':
			for (i = 0; i < ARRAY_SIZE(fz_mode_names); i++)
				if (!strcmp(optarg, fz_mode_names[i]))
					break;
			if (i == ARRAY_SIZE(fz_mode_names)) {
				fprintf(stderr, "lvmm_fuzz: --mode: real, prot, long, random or mix\n");
				return -1;
			}
			o->mode = i;
			break;
		case 'c':
			vmctl = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			fz_usage(stdout);
			exit(0);
		default:
			fz_usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fz_usage(stderr);
		return -1;
	}
	if (!seeded) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		o->seed = (uint32_t)(ts.tv_sec ^ ts.tv_nsec ^
				     ((uint64_t)getpid() << 16));
	}
	o->vmctl = fz_find_vmctl(vmctl);
	if (vmctl && !o->vmctl)
		fprintf(stderr, "lvmm_fuzz: --vmctl %s: not executable; running without vmctl\n",
			vmctl);
	return 0;
}

static void fz_totals(bool pass, bool skip)
{
	fz_log("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0",
	       pass && !skip, !pass, skip);
}

int main(int argc, char **argv)
{
	struct fz_opts o;
	double start, deadline;
	bool ok = true;
	int fd, left, status;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fz_parse(argc, argv, &o))
		return 2;
	fz_log("# lvmm_fuzz seed=%llu", (unsigned long long)o.seed);
	fz_log("# seconds=%u procs=%u mode=%s kill=%s vmctl=%s",
	       o.seconds, o.procs, fz_mode_names[o.mode],
	       o.kill ? "yes" : "no", o.vmctl ? o.vmctl : "(none)");

	fd = lvmm_open();
	if (fd < 0) {
		fz_log("1..1");
		fz_log("ok 1 # SKIP lvmm_fuzz: cannot open %s: %s",
		       LVMM_DEV_PATH, fz_errname(-fd));
		fz_totals(true, true);
		/* 0, not KSFT_SKIP: scripts/check counts a non-zero status as a failure. */
		return 0;
	}
	close(fd);

	stats = mmap(NULL, sizeof(*stats), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (stats == MAP_FAILED) {
		fz_log("1..1");
		fz_log("not ok 1 lvmm_fuzz seed=%llu # mmap: %s",
		       (unsigned long long)o.seed, fz_errname(errno));
		fz_totals(false, false);
		return 1;
	}

	snprintf(fz_backstop_msg, sizeof(fz_backstop_msg),
		 "# FAIL: still running %d s past --seconds: killed everything\n"
		 "1..1\nnot ok 1 lvmm_fuzz seed=%llu # backstop\n"
		 "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0\n",
		 FZ_BACKSTOP, (unsigned long long)o.seed);
	signal(SIGALRM, fz_backstop);
	alarm(o.seconds + FZ_BACKSTOP);
	signal(SIGPIPE, SIG_IGN);

	start = fz_now();
	deadline = start + o.seconds;
	if (o.vmctl) {
		fflush(stdout);
		fz_vmctl_pid = fork();
		if (!fz_vmctl_pid) {
			signal(SIGALRM, SIG_DFL);
			setpgid(0, 0);	/* one kill() takes its vmctls too */
			fz_vmctl_loop(&o);
			_exit(0);
		}
	}

	ok = fz_rounds(&o, deadline);

	if (fz_vmctl_pid > 0) {
		fz_store(stats->vmctl_stop, 1);
		while (waitpid(fz_vmctl_pid, &status, WNOHANG) != fz_vmctl_pid) {
			if (fz_now() >= deadline + FZ_VMCTL_STOP) {
				kill(-fz_vmctl_pid, SIGKILL);
				fz_sleep_us(100000);
				waitpid(fz_vmctl_pid, &status, WNOHANG);
				break;
			}
			fz_sleep_us(10000);
		}
		fz_vmctl_pid = 0;
	}

	left = fz_leftovers(&o, deadline + FZ_LEFTOVER_END);
	fz_summary(&o, fz_now() - start);
	if (left < 0) {
		fz_log("# leftover VMs: not checked (%s)", o.vmctl ?
		       "vmctl -j list failed: no netlink?" : "no vmctl");
	} else if (left) {
		fz_log("# FAIL: %d VMs left after every worker exited", left);
		ok = false;
	} else {
		fz_log("# leftover VMs: none");
	}
	fz_log("# streams saved %llu, mutated and restored %llu (%llu taken)",
	       (unsigned long long)stats->saves,
	       (unsigned long long)stats->restores,
	       (unsigned long long)stats->restores_ok);
	fz_log("# issue 13's reproducer replayed %llu times, longest RUN %llu ms",
	       (unsigned long long)stats->replays,
	       (unsigned long long)stats->replay_max_us / 1000);
	if (stats->replay_slow) {
		fz_log("# FAIL: %llu replays held their CPU over 500 ms",
		       (unsigned long long)stats->replay_slow);
		ok = false;
	}
	if (stats->bad_run) {
		fz_log("# FAIL: %llu RUNs returned an unexpected errno (first: %s)",
		       (unsigned long long)stats->bad_run,
		       fz_errname(stats->bad_run_errno));
		ok = false;
	}
	alarm(0);

	fz_log("1..1");
	fz_log("%sok 1 lvmm_fuzz seed=%llu rounds=%llu vms=%llu runs=%llu",
	       ok ? "" : "not ", (unsigned long long)o.seed,
	       (unsigned long long)stats->rounds,
	       (unsigned long long)stats->vms,
	       (unsigned long long)stats->runs);
	fz_totals(ok, false);
	return ok ? 0 : 1;
}
