// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl run: the reference VMM (what lkvm run is to KVM).
 *
 * One VM, one memory slot at guest-physical 0, one host thread per vCPU,
 * a 16550 UART on the console, QEMU's isa-debug-exit port and the ACPI PM
 * timer; for a Linux guest also lvmm's in-kernel local APICs and the PC's
 * legacy ports (run_pc.c).  The main thread sets everything up from a fully
 * checked image (or restores a snapshot with --restore, or takes a VM that
 * vmctl migrate sends with --incoming), starts the vCPU threads, then
 * waits for the end: a signal, the console's Ctrl-], or a vCPU that says
 * the VM is over (or moved away).  The exit status says how the guest ended: see the
 * table in run.h and tools/guests/README.md.
 *
 * vmctl keeps its device state in lvmm (run_state.c, LVMM_SET_VMM_STATE)
 * whenever it changes, so that vmctl save, which needs nothing from this
 * process, writes a snapshot whose UART is the one the guest last saw.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "lvmm.h"
#include "migrate.h"
#include "nl.h"
#include "run.h"
#include "snapshot.h"
#include "vmctl.h"

#define RUN_POST_PORT		0x80	/* POST codes: ignored, timestamped */
#define RUN_DEBUG_EXIT_PORT	0xf4	/* QEMU isa-debug-exit, iosize 4 */
#define RUN_PMTMR_PORT		0x608	/* ACPI PM timer, as on QEMU's q35 */
#define RUN_PMTMR_HZ		3579545ULL
#define RUN_KICK_SIGNAL		SIGUSR1
#define RUN_DETACH_CHAR		0x1d	/* Ctrl-] */

enum run_console { RUN_CONSOLE_STDIO, RUN_CONSOLE_NONE, RUN_CONSOLE_FILE };

struct run_vm;

struct run_vcpu {
	struct run_vm *vm;
	struct lvmm_vcpu_handle h;
	pthread_t thread;
	bool thread_started;
	unsigned long exits, io_exits;
};

/* A restored VM's memory slot other than the one at guest-physical 0. */
struct run_map {
	void *addr;
	uint64_t size;
};

/*
 * Ordering of locks: state_lock, then lock or the UART's lock (never both
 * of those two at once); irq_lock, then the UART's lock.  pc.lock nests
 * inside none and takes none.
 */
struct run_vm {
	/* Set up before the vCPU threads start, read-only after. */
	struct lvmm_vm_handle vm;
	int dev_fd;
	unsigned char *mem;		/* the slot at guest-physical 0 */
	uint64_t mem_size;
	struct run_map *maps;		/* --restore: the other slots */
	int nmaps;
	int ncpus;
	struct run_vcpu vcpus[RUN_MAX_CPUS];
	bool verbose;
	struct timespec t_start;	/* the run command began */
	struct timespec t_entered;	/* the first LVMM_RUN was issued */
	const char *src;		/* --restore's FILE, or from */
	char from[VMCTL_ADDR_LEN + 16];	/* --incoming: "the VM from PEER" */
	char peer[VMCTL_ADDR_LEN];	/* --incoming: the source */
	bool incoming;			/* the VM migrated in: its only copy */
	bool held;			/* in, but not taken: the source's */
	struct run_uart uart;
	bool linux_guest;		/* in-kernel APICs and the PC's ports */
	bool ioapic;			/* lvmm's I/O APIC: the UART's IRQ 4 */
	struct run_pc pc;		/* its legacy ports, under pc.lock */
	uint64_t pc_seen[65536 / 64];	/* pc.lock: open-bus ports named */
	pthread_mutex_t irq_lock;	/* orders the UART's line changes */
	bool uart_irq;			/* irq_lock: the line as lvmm has it */
	bool irq_failed;		/* irq_lock: LVMM_IRQ_LINE failed, said */
	int done_fd;			/* eventfd: the VM is over */
	bool keep_state;		/* lvmm keeps vmctl's device state */

	/* Protected by lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* idle vCPUs wait for the end */
	bool stopping;
	int status;
	int halted;
	uint8_t vcpu_state[RUN_MAX_CPUS];	/* enum run_vcpu_state */
	uint64_t vcpu_gen;		/* counts vcpu_state's changes */

	/* Protected by state_lock: what lvmm holds of vmctl's state. */
	pthread_mutex_t state_lock;
	uint64_t state_gen;		/* vcpu_gen + the UART's, as sent */
	bool state_failed;		/* a SET failed; said once */
	uint8_t state_buf[RUN_STATE_MAX];

	/* Written once by vCPU 0's thread. */
	atomic_bool first_exit_seen;
	struct timespec t_first_exit;
	unsigned int first_exit_port;
};

/* The terminal, restored by atexit() on every way out of the process. */
static struct termios run_saved_tty;
static bool run_tty_raw;

static void run_tty_restore(void)
{
	if (run_tty_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &run_saved_tty);
		run_tty_raw = false;
	}
}

static int run_tty_make_raw(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &run_saved_tty) < 0)
		return -errno;
	t = run_saved_tty;
	/* cfmakeraw(), but keep output processing so '\n' still returns. */
	t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR |
		       ICRNL | IXON);
	t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	atexit(run_tty_restore);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0)
		return -errno;
	run_tty_raw = true;
	return 0;
}

static double run_ms(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

/*
 * End the VM with @status, unless something ended it first; true when
 * this call ended it.
 */
static bool run_stop(struct run_vm *v, int status)
{
	uint64_t one = 1;
	bool first;

	pthread_mutex_lock(&v->lock);
	first = !v->stopping;
	if (first) {
		v->stopping = true;
		v->status = status;
	}
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	/* Cannot fail: the counter is far from overflowing. */
	(void)!write(v->done_fd, &one, sizeof(one));
	return first;
}

/*
 * Keep lvmm's copy of vmctl's device state current, so that a vm-save
 * taken at any moment carries it.  A vCPU thread calls this after an exit
 * that changed a device and before it enters LVMM_RUN again, which
 * completes the exit: the state lvmm holds then always matches the exits
 * the guest has seen complete (vm-save waits for an exit in progress to
 * come back).  Only a change is sent.
 */
static void run_state_sync(struct run_vm *v)
{
	uint8_t vcpus[RUN_MAX_CPUS];
	uint64_t vgen, ugen;
	size_t len;
	int e;

	if (!v->keep_state)
		return;
	pthread_mutex_lock(&v->state_lock);
	pthread_mutex_lock(&v->lock);
	memcpy(vcpus, v->vcpu_state, sizeof(vcpus));
	vgen = v->vcpu_gen;
	pthread_mutex_unlock(&v->lock);
	if (vgen + run_uart_gen(&v->uart) == v->state_gen)
		goto out;
	len = run_state_save(v->state_buf, &v->uart, vcpus, v->ncpus, &ugen);
	e = lvmm_set_vmm_state(&v->vm, v->state_buf, len);
	if (!e) {
		v->state_gen = vgen + ugen;
	} else if (!v->state_failed) {
		v->state_failed = true;
		vmctl_err("vm '%s': cannot keep its device state in lvmm (LVMM_SET_VMM_STATE: %s); a snapshot of it would hold an older UART",
			  v->vm.name, strerror(-e));
	}
out:
	pthread_mutex_unlock(&v->state_lock);
}

/* vCPU @c is no longer run by vmctl: say so in the device state. */
static void run_vcpu_set_state(struct run_vcpu *c, enum run_vcpu_state st)
{
	struct run_vm *v = c->vm;

	pthread_mutex_lock(&v->lock);
	v->vcpu_state[c - v->vcpus] = st;
	v->vcpu_gen++;
	pthread_mutex_unlock(&v->lock);
	run_state_sync(v);
}

static bool run_stopping(struct run_vm *v)
{
	bool s;

	pthread_mutex_lock(&v->lock);
	s = v->stopping;
	pthread_mutex_unlock(&v->lock);
	return s;
}

static void run_dump_seg(const char *name, const struct lvmm_segment *s)
{
	fprintf(stderr, "  %-3s sel=%04x base=%016llx limit=%08x type=%x s=%u dpl=%u p=%u l=%u db=%u g=%u\n",
		name, s->selector, (unsigned long long)s->base, s->limit,
		s->type, s->s, s->dpl, s->present, s->l, s->db, s->g);
}

/* The registers of a vCPU that stopped: what anyone debugging needs. */
static void run_dump_state(struct run_vcpu *c)
{
	struct lvmm_sregs s;
	struct lvmm_regs r;
	int e;

	e = lvmm_get_regs(&c->h, &r);
	if (e) {
		fprintf(stderr, "  (LVMM_GET_REGS: %s)\n", strerror(-e));
		return;
	}
	fprintf(stderr,
		"  rip=%016llx rflags=%016llx\n"
		"  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n"
		"  rsi=%016llx rdi=%016llx rsp=%016llx rbp=%016llx\n"
		"  r8 =%016llx r9 =%016llx r10=%016llx r11=%016llx\n"
		"  r12=%016llx r13=%016llx r14=%016llx r15=%016llx\n",
		r.rip, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi,
		r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14,
		r.r15);
	e = lvmm_get_sregs(&c->h, &s);
	if (e) {
		fprintf(stderr, "  (LVMM_GET_SREGS: %s)\n", strerror(-e));
		return;
	}
	fprintf(stderr,
		"  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx\n"
		"  efer=%016llx apic_base=%016llx\n",
		s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.apic_base);
	run_dump_seg("cs", &s.cs);
	run_dump_seg("ds", &s.ds);
	run_dump_seg("ss", &s.ss);
	run_dump_seg("tr", &s.tr);
	fprintf(stderr, "  gdt base=%016llx limit=%04x  idt base=%016llx limit=%04x\n",
		s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
}

/*
 * Drive the UART's line into lvmm's I/O APIC (IRQ 4) after anything that
 * may have changed it: a register access, or input.  irq_lock keeps the
 * level lvmm last got in step with the UART when threads race.
 */
static void run_uart_irq_sync(struct run_vm *v)
{
	bool level;
	int e;

	if (!v->ioapic)
		return;
	pthread_mutex_lock(&v->irq_lock);
	level = run_uart_irq(&v->uart);
	if (level != v->uart_irq) {
		e = lvmm_irq_line(&v->vm, RUN_UART_IRQ, level);
		if (!e) {
			v->uart_irq = level;
		} else if (!v->irq_failed) {
			v->irq_failed = true;
			vmctl_err("vm '%s': cannot drive the UART's IRQ %d (LVMM_IRQ_LINE: %s); the guest's console may stall",
				  v->vm.name, RUN_UART_IRQ, strerror(-e));
		}
	}
	pthread_mutex_unlock(&v->irq_lock);
}

/* Report an exit vmctl does not handle and end the VM with @status. */
static void run_unhandled(struct run_vcpu *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void run_unhandled(struct run_vcpu *c, int status, const char *fmt, ...)
{
	struct run_vm *v = c->vm;
	va_list ap;

	/* One report: a second vCPU failing as the VM goes down adds noise. */
	pthread_mutex_lock(&v->lock);
	if (v->stopping) {
		pthread_mutex_unlock(&v->lock);
		return;
	}
	fprintf(stderr, "\nvmctl: vm '%s' vCPU %u: ", v->vm.name, c->h.id);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	run_dump_state(c);
	fprintf(stderr, "vmctl: stopping the VM (exit status %d)\n", status);
	pthread_mutex_unlock(&v->lock);
	run_stop(v, status);
}

static uint32_t run_pmtmr(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * RUN_PMTMR_HZ +
		(uint64_t)ts.tv_nsec * RUN_PMTMR_HZ / 1000000000ULL);
}

static uint64_t run_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * A Linux guest's other ports: the PC's legacy devices (run_pc.c), and
 * for any other port what a PC's open bus does, since Linux probes for
 * hardware that may not be there (more UARTs, PCI, the floppy...): reads
 * give all ones, writes go nowhere.  -v names each such port once.
 */
static int run_pio_pc(struct run_vcpu *c, uint16_t port, bool out,
		      uint8_t *data, unsigned int size)
{
	struct run_vm *v = c->vm;
	enum run_pc_result r = RUN_PC_OK;
	uint64_t now = run_now_ns();
	time_t real = time(NULL);
	unsigned int i;
	bool unknown = false;

	pthread_mutex_lock(&v->pc.lock);
	for (i = 0; i < size && (r == RUN_PC_OK || r == RUN_PC_NOT_MINE); i++) {
		r = run_pc_io(&v->pc, port + i, out, &data[i], now, real);
		if (r == RUN_PC_NOT_MINE) {
			unknown = true;
			if (!out)
				data[i] = 0xff;
		}
	}
	if (unknown && v->verbose &&
	    !(v->pc_seen[port / 64] & (1ULL << (port % 64)))) {
		v->pc_seen[port / 64] |= 1ULL << (port % 64);
		fprintf(stderr, "vmctl: vCPU %u: %s port 0x%x (%u bytes): no device there; %s\n",
			c->h.id, out ? "OUT to" : "IN from", port, size,
			out ? "ignored" : "reads all ones");
	}
	pthread_mutex_unlock(&v->pc.lock);
	if (r == RUN_PC_POWEROFF) {
		if (v->verbose)
			fprintf(stderr, "\nvmctl: vCPU %u powered the machine off (OUT 0x%x to port 0x%x: ACPI S5)\n",
				c->h.id, data[i - 1], port + i - 1);
		/* Its status is 0, which to the caller is no end: end it here. */
		run_stop(v, RUN_EXIT_POWEROFF);
		return 0;
	}
	if (r != RUN_PC_RESET)
		return 0;
	if (v->verbose)
		fprintf(stderr, "\nvmctl: vCPU %u reset the machine (OUT 0x%x to port 0x%x)\n",
			c->h.id, data[0], port);
	return RUN_EXIT_RESET;
}

/*
 * One element of port I/O: @size bytes at @data.  Returns 0, or the exit
 * status that ends the VM (after saying why).
 */
static int run_pio(struct run_vcpu *c, uint16_t port, bool out,
		   uint8_t *data, unsigned int size)
{
	struct run_vm *v = c->vm;
	uint32_t val = 0;
	unsigned int i;

	if (port >= RUN_UART_BASE && port + size <= RUN_UART_BASE + 8) {
		/* A wide access to a byte-wide device: one byte per port. */
		for (i = 0; i < size; i++) {
			if (!out) {
				data[i] = run_uart_in(&v->uart,
						      port + i - RUN_UART_BASE);
			} else if (!run_uart_out(&v->uart,
						 port + i - RUN_UART_BASE,
						 data[i])) {
				vmctl_err("console: %s; stopping the VM",
					  strerror(errno));
				return RUN_EXIT_RUNTIME;
			}
		}
		return 0;
	}
	switch (port) {
	case RUN_DEBUG_EXIT_PORT:
		if (!out) {
			memset(data, 0, size);
			return 0;
		}
		memcpy(&val, data, size);
		if (v->verbose)
			fprintf(stderr, "\nvmctl: vCPU %u wrote 0x%x to the debug-exit port\n",
				c->h.id, val);
		return (((uint64_t)val << 1) | 1) & 0xff;
	case RUN_POST_PORT:
		if (!out)
			memset(data, 0xff, size);
		return 0;
	case RUN_PMTMR_PORT:
		if (out)
			return 0;
		val = run_pmtmr();
		memcpy(data, &val, size);
		return 0;
	}
	if (v->linux_guest)
		return run_pio_pc(c, port, out, data, size);
	if (out)
		memcpy(&val, data, size < 4 ? size : 4);
	run_unhandled(c, RUN_EXIT_UNHANDLED,
		      "unhandled exit IO: %s port 0x%x, size %u%s (data 0x%x)",
		      out ? "OUT to" : "IN from", port, size,
		      c->h.run->io.count > 1 ? ", string" : "", val);
	return RUN_EXIT_UNHANDLED;
}

static int run_handle_io(struct run_vcpu *c)
{
	struct lvmm_run *run = c->h.run;
	uint8_t *data = lvmm_run_io_data(&c->h);
	bool out = run->io.direction == LVMM_EXIT_IO_OUT;
	unsigned int i;
	int st;

	c->io_exits++;
	/* String I/O (REP OUTSB to THR, say) brings count elements at once. */
	for (i = 0; i < run->io.count; i++) {
		st = run_pio(c, run->io.port, out, data + i * run->io.size,
			     run->io.size);
		if (st)
			return st;
	}
	/* Before the exit completes: see run_state_sync(). */
	if (run->io.port >= RUN_UART_BASE && run->io.port < RUN_UART_BASE + 8) {
		run_state_sync(c->vm);
		run_uart_irq_sync(c->vm);
	}
	return 0;
}

/* A vCPU halted with interrupts off: it is done.  The last one ends the VM. */
static void run_vcpu_halted(struct run_vcpu *c)
{
	struct run_vm *v = c->vm;
	bool all;

	run_vcpu_set_state(c, RUN_VCPU_HALTED);
	pthread_mutex_lock(&v->lock);
	all = ++v->halted == v->ncpus;
	pthread_mutex_unlock(&v->lock);
	if (v->verbose)
		fprintf(stderr, "vmctl: vCPU %u halted\n", c->h.id);
	if (all)
		run_stop(v, RUN_EXIT_HALTED);
}

/*
 * HLT with interrupts on waits for an interrupt.  Nothing in vmctl raises
 * one, so the vCPU idles until the VM ends some other way.
 */
static void run_vcpu_idle(struct run_vcpu *c)
{
	struct run_vm *v = c->vm;

	if (v->verbose)
		fprintf(stderr, "vmctl: vCPU %u: HLT with interrupts enabled; nothing will interrupt it, it waits for the VM to end\n",
			c->h.id);
	run_vcpu_set_state(c, RUN_VCPU_IDLE);
	pthread_mutex_lock(&v->lock);
	while (!v->stopping)
		pthread_cond_wait(&v->cond, &v->lock);
	pthread_mutex_unlock(&v->lock);
}

static void run_kick_handler(int sig)
{
	(void)sig;	/* only there to interrupt LVMM_RUN */
}

static void *run_vcpu_thread(void *arg)
{
	struct run_vcpu *c = arg;
	struct run_vm *v = c->vm;
	struct lvmm_run *run = c->h.run;
	sigset_t kick;
	int r, st;

	sigemptyset(&kick);
	sigaddset(&kick, RUN_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

	while (!run_stopping(v)) {
		r = lvmm_run(&c->h);
		if (r == -EINTR)
			continue;	/* kicked, or a stray signal */
		if (r < 0) {
			vmctl_err("vm '%s' vCPU %u: LVMM_RUN: %s; stopping the VM",
				  v->vm.name, c->h.id, strerror(-r));
			run_stop(v, RUN_EXIT_RUNTIME);
			break;
		}
		c->exits++;
		if (c->h.id == 0 && !atomic_load(&v->first_exit_seen)) {
			clock_gettime(CLOCK_MONOTONIC, &v->t_first_exit);
			v->first_exit_port = run->exit_reason == LVMM_EXIT_IO ?
					     run->io.port : 0;
			atomic_store(&v->first_exit_seen, true);
		}

		switch (run->exit_reason) {
		case LVMM_EXIT_IO:
			st = run_handle_io(c);
			if (st) {
				run_stop(v, st);
				return NULL;
			}
			break;
		case LVMM_EXIT_HLT:
			if (!run->if_flag) {
				run_vcpu_halted(c);
				return NULL;
			}
			run_vcpu_idle(c);
			return NULL;
		case LVMM_EXIT_INTR:
			break;
		case LVMM_EXIT_SHUTDOWN:
			run_unhandled(c, RUN_EXIT_SHUTDOWN,
				      "guest shutdown (triple fault)");
			return NULL;
		case LVMM_EXIT_MMIO:
			run_unhandled(c, RUN_EXIT_UNHANDLED,
				      "unhandled exit MMIO: %s %u bytes at guest-physical 0x%llx, outside the VM's %llu MiB of memory",
				      run->mmio.is_write ? "write of" : "read of",
				      run->mmio.len,
				      (unsigned long long)run->mmio.phys_addr,
				      (unsigned long long)(v->mem_size >> 20));
			return NULL;
		case LVMM_EXIT_HYPERCALL:
			run_unhandled(c, RUN_EXIT_UNHANDLED,
				      "unhandled exit HYPERCALL: nr 0x%llx",
				      (unsigned long long)run->hypercall.nr);
			return NULL;
		case LVMM_EXIT_INTERNAL_ERROR:
			run_unhandled(c, RUN_EXIT_UNHANDLED,
				      "unhandled exit INTERNAL_ERROR: suberror %u, %u data words, data[0] 0x%llx",
				      run->internal.suberror, run->internal.ndata,
				      (unsigned long long)run->internal.data[0]);
			return NULL;
		case LVMM_EXIT_FAIL_ENTRY:
			run_unhandled(c, RUN_EXIT_UNHANDLED,
				      "unhandled exit FAIL_ENTRY: hardware entry failure reason 0x%llx on CPU %u",
				      (unsigned long long)run->fail_entry.hardware_entry_failure_reason,
				      run->fail_entry.cpu);
			return NULL;
		case LVMM_EXIT_VM_DESTROYED:
			if (!run_stopping(v))
				vmctl_err("vm '%s' was destroyed from outside", v->vm.name);
			run_stop(v, RUN_EXIT_DESTROYED);
			return NULL;
		case LVMM_EXIT_MIGRATED:
			/* Every vCPU sees it: one says so. */
			if (run_stop(v, RUN_EXIT_MIGRATED))
				vmctl_err("the VM moved to another host (migrated)");
			return NULL;
		default:
			run_unhandled(c, RUN_EXIT_UNHANDLED,
				      "unhandled exit %s (%u), hardware exit code 0x%llx",
				      lvmm_exit_reason_name(run->exit_reason),
				      run->exit_reason,
				      (unsigned long long)run->hw.hardware_exit_reason);
			return NULL;
		}
	}
	return NULL;
}

static void seg_real(struct lvmm_segment *s, __u16 sel, __u8 type)
{
	memset(s, 0, sizeof(*s));
	s->base = (__u64)sel << 4;
	s->limit = 0xffff;
	s->selector = sel;
	s->type = type;
	s->s = 1;
	s->present = 1;
}

/*
 * Every vCPU starts at the image's entry point, with interrupts off and:
 * EAX = 0x2BADB002, EBX = the multiboot information structure (0x8000),
 * EDI = the vCPU id, ESP = 0x10000 - id * 1 KiB (a 1 KiB boot stack).
 * Linux's boot processor, vCPU 0, starts at its 64-bit entry point with
 * RSI = boot_params; the others wait for INIT and SIPI in lvmm's local
 * APIC, and are not set up here.
 */
static int run_vcpu_setup(struct run_vm *v, struct run_vcpu *c,
			  const struct run_image *img)
{
	struct lvmm_sregs s;
	struct lvmm_regs r;
	int e;

	e = lvmm_get_sregs(&c->h, &s);
	if (e)
		return e;
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.limit = 0x67;
	s.tr.type = 11;		/* busy TSS */
	s.tr.present = 1;
	s.gdt.base = RUN_GDT_GPA;
	s.gdt.limit = 4 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	switch (img->mode) {
	case RUN_MODE_REAL:
		seg_real(&s.cs, RUN_FLAT_GPA >> 4, 11);
		seg_real(&s.ds, RUN_FLAT_GPA >> 4, 3);
		s.es = s.ds;
		s.fs = s.ds;
		s.gs = s.ds;
		seg_real(&s.ss, 0, 3);
		s.idt.limit = 0x3ff;
		s.cr0 = X86_CR0_ET;
		s.cr4 = 0;
		s.efer = 0;
		break;
	case RUN_MODE_PROT32:
		lvmm_seg_flat(&s.cs, RUN_SEL_CODE32, 11, false, true);
		lvmm_seg_flat(&s.ds, RUN_SEL_DATA, 3, false, true);
		s.es = s.ds;
		s.fs = s.ds;
		s.gs = s.ds;
		s.ss = s.ds;
		s.cr0 = X86_CR0_PE | X86_CR0_ET;
		s.cr4 = 0;
		s.efer = 0;
		break;
	case RUN_MODE_LONG64:
		if (img->is_linux) {
			lvmm_seg_flat(&s.cs, RUN_LINUX_SEL_CODE, 11, true, false);
			lvmm_seg_flat(&s.ds, RUN_LINUX_SEL_DATA, 3, false, true);
		} else {
			lvmm_seg_flat(&s.cs, RUN_SEL_CODE64, 11, true, false);
			lvmm_seg_flat(&s.ds, RUN_SEL_DATA, 3, false, true);
		}
		s.es = s.ds;
		s.fs = s.ds;
		s.gs = s.ds;
		s.ss = s.ds;
		s.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE |
			X86_CR0_WP | X86_CR0_PG;
		s.cr3 = RUN_PML4_GPA;
		s.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
		s.efer = EFER_LME | EFER_LMA;
		break;
	}
	e = lvmm_set_sregs(&c->h, &s);
	if (e)
		return e;

	memset(&r, 0, sizeof(r));
	r.rflags = 0x2;
	if (img->is_linux) {
		/* boot.rst's 64-bit protocol: RSI = boot_params, IF clear. */
		r.rsi = RUN_LINUX_BOOT_PARAMS_GPA;
		r.rsp = RUN_STACK_TOP;
		r.rip = img->entry;
		return lvmm_set_regs(&c->h, &r);
	}
	r.rax = MULTIBOOT_BOOT_MAGIC;
	r.rbx = RUN_MBI_GPA;
	r.rdi = c->h.id;
	r.rsp = RUN_STACK_TOP - c->h.id * RUN_STACK_SIZE;
	r.rip = img->mode == RUN_MODE_REAL ? img->entry - RUN_FLAT_GPA :
		img->entry;
	(void)v;
	return lvmm_set_regs(&c->h, &r);
}

/* Parse "64M", "1G", "512K", or a plain number of MiB, as lkvm does. */
static int run_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long n;
	int shift = 20;

	errno = 0;
	n = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K':
		shift = 10, end++;
		break;
	case 'm': case 'M':
		shift = 20, end++;
		break;
	case 'g': case 'G':
		shift = 30, end++;
		break;
	case 0:
		break;
	default:
		return -EINVAL;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || n > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = n << shift;
	return 0;
}

/*
 * vmctl's RSS, its anonymous part and the guest memory it maps, in KiB,
 * from /proc/self/smaps: the status counters lag behind (split RSS
 * counting), the page walk does not.
 */
static void run_rss(const struct run_vm *v, unsigned long *self,
		    unsigned long *anon, unsigned long *guest)
{
	unsigned long start, end, kb;
	bool in_guest = false;
	char line[512];
	FILE *f;

	*self = *anon = *guest = 0;
	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in_guest = start >= (unsigned long)v->mem &&
				   end <= (unsigned long)v->mem + v->mem_size;
			continue;
		}
		if (sscanf(line, "Rss: %lu kB", &kb) == 1) {
			if (in_guest)
				*guest += kb;
			else
				*self += kb;
		} else if (!in_guest &&
			   sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
			*anon += kb;
		}
	}
	fclose(f);
}

static void run_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void run_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("vmctl: run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

struct run_opts {
	const char *name;
	uint64_t mem;
	int cpus;
	enum run_console console;
	const char *console_file;
	const char *cmdline;
	const char *cmdline_opt;	/* --cmdline or --append, as given */
	const char *kernel;		/* --kernel FILE */
	const char *initrd;		/* --initrd FILE */
	struct run_module mods[RUN_MAX_MODULES];
	int nmods;
	bool entry64;
	bool verbose;
	const char *image;
	const char *restore;		/* --restore FILE, instead of image */
	const char *incoming;		/* --incoming [ADDR:]PORT, instead */
	struct vmctl_hostport incoming_hp;
	const char *given_boot;		/* an option of booting: --mem, ... */
	struct vmctl_sched sched;	/* --weight, --cap, --period, --reserve */
	struct vmctl_cpus pin_all;		/* --pin CPULIST */
	struct vmctl_pin pins[RUN_MAX_CPUS];	/* --pin VCPU=CPULIST */
};

enum {
	RUN_OPT_WEIGHT = 256, RUN_OPT_CAP, RUN_OPT_PERIOD, RUN_OPT_RESERVE,
	RUN_OPT_PIN, RUN_OPT_RESTORE, RUN_OPT_INCOMING, RUN_OPT_KERNEL,
	RUN_OPT_INITRD, RUN_OPT_APPEND,
};

/* --pin CPULIST (every vCPU) or --pin VCPU=CPULIST (that one). */
static int run_parse_pin(struct run_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct vmctl_cpus *c = &o->pin_all;
	uint32_t id;
	char *vcpu;
	bool ok;

	if (eq) {
		vcpu = strndup(arg, eq - arg);
		ok = vcpu && vmctl_parse_u32("run: --pin VCPU", vcpu, 0,
					     RUN_MAX_CPUS - 1, "", &id);
		free(vcpu);
		if (!ok)
			return 1;
		c = &o->pins[id].cpus;
		arg = eq + 1;
	}
	if (c->len && eq)
		run_usage_error("--pin %" PRIu32 "=... is given twice; give it once",
				id);
	else if (c->len)
		run_usage_error("--pin CPULIST is given twice; give it once");
	return c->len || !vmctl_cpus_parse("run: --pin", arg, c);
}

static int run_parse_opts(struct run_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "console", required_argument, NULL, 'C' },
		{ "cmdline", required_argument, NULL, 'a' },
		{ "append", required_argument, NULL, RUN_OPT_APPEND },
		{ "kernel", required_argument, NULL, RUN_OPT_KERNEL },
		{ "initrd", required_argument, NULL, RUN_OPT_INITRD },
		{ "module", required_argument, NULL, 'M' },
		{ "entry64", no_argument, NULL, '6' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "weight", required_argument, NULL, RUN_OPT_WEIGHT },
		{ "cap", required_argument, NULL, RUN_OPT_CAP },
		{ "period", required_argument, NULL, RUN_OPT_PERIOD },
		{ "reserve", required_argument, NULL, RUN_OPT_RESERVE },
		{ "pin", required_argument, NULL, RUN_OPT_PIN },
		{ "restore", required_argument, NULL, RUN_OPT_RESTORE },
		{ "incoming", required_argument, NULL, RUN_OPT_INCOMING },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long n;
	int opt, idx, i;

	memset(o, 0, sizeof(*o));
	o->mem = 64ULL << 20;
	o->cpus = 1;
	o->cmdline = "";
	/* The handler's argv[-1] is "run": getopt wants a program name there. */
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc + 1, argv - 1, ":n:m:c:C:a:M:v",
				  longopts, &idx)) != -1) {
		switch (opt) {
		case 'n':
			o->name = strcmp(optarg, "auto") ? optarg : NULL;
			if (o->name && (!*o->name || strlen(o->name) >= LVMM_VM_NAME_LEN)) {
				run_usage_error("--name '%s': give 1 to %d characters, or 'auto'",
						optarg, LVMM_VM_NAME_LEN - 1);
				return 1;
			}
			break;
		case 'm':
			o->given_boot = "--mem";
			if (run_parse_size(optarg, &o->mem) || o->mem < (1ULL << 20) ||
			    o->mem % 4096) {
				run_usage_error("--mem '%s': give a size of at least 1M, a multiple of 4K, such as 64M or 1G",
						optarg);
				return 1;
			}
			break;
		case 'c':
			o->given_boot = "--cpus";
			n = strtol(optarg, &end, 10);
			if (*end || end == optarg || n < 1 || n > RUN_MAX_CPUS) {
				run_usage_error("--cpus '%s': give a number from 1 to %d",
						optarg, RUN_MAX_CPUS);
				return 1;
			}
			o->cpus = n;
			break;
		case 'C':
			if (!strcmp(optarg, "stdio")) {
				o->console = RUN_CONSOLE_STDIO;
			} else if (!strcmp(optarg, "none")) {
				o->console = RUN_CONSOLE_NONE;
			} else {
				o->console = RUN_CONSOLE_FILE;
				o->console_file = optarg;
			}
			break;
		case 'a':
		case RUN_OPT_APPEND:
			o->given_boot = opt == 'a' ? "--cmdline" : "--append";
			if (o->cmdline_opt) {
				run_usage_error("%s is given after %s: they are the same option; give one",
						o->given_boot, o->cmdline_opt);
				return 1;
			}
			o->cmdline_opt = o->given_boot;
			o->cmdline = optarg;
			break;
		case RUN_OPT_KERNEL:
			o->given_boot = "--kernel";
			o->kernel = optarg;
			break;
		case RUN_OPT_INITRD:
			o->given_boot = "--initrd";
			o->initrd = optarg;
			break;
		case 'M':
			o->given_boot = "--module";
			if (o->nmods == RUN_MAX_MODULES) {
				run_usage_error("at most %d --module options",
						RUN_MAX_MODULES);
				return 1;
			}
			o->mods[o->nmods++].arg = optarg;
			break;
		case '6':
			o->given_boot = "--entry64";
			o->entry64 = true;
			break;
		case RUN_OPT_RESTORE:
			o->restore = optarg;
			break;
		case RUN_OPT_INCOMING:
			o->incoming = optarg;
			if (!vmctl_hostport_parse("run: --incoming", optarg,
						  true, 0, &o->incoming_hp))
				return 1;
			break;
		case 'v':
			o->verbose = true;
			break;
		case RUN_OPT_WEIGHT:
		case RUN_OPT_CAP:
		case RUN_OPT_PERIOD:
		case RUN_OPT_RESERVE:
			if (vmctl_sched_parse("run: --", longopts[idx].name,
					      optarg, &o->sched))
				return 1;
			break;
		case RUN_OPT_PIN:
			if (run_parse_pin(o, optarg))
				return 1;
			break;
		case ':':
			run_usage_error("option '%s' needs an argument",
					argv[optind - 2]);
			return 1;
		default:
			run_usage_error("unknown option '%s'", argv[optind - 2]);
			return 1;
		}
	}
	if (o->restore && o->incoming) {
		run_usage_error("give --restore FILE or --incoming [ADDR:]PORT, not both");
		return 1;
	}
	if (o->restore || o->incoming) {
		const char *opt = o->restore ? "--restore FILE" :
					       "--incoming [ADDR:]PORT";
		const char *from = o->restore ? "the snapshot has" :
						"the migration brings";

		/* The VM's shape, memory and state come with the stream. */
		/* optind counts in argv - 1: argv[optind - 1] is the next. */
		if (optind <= argc) {
			run_usage_error("give an IMAGE or %s, not both", opt);
			return 1;
		}
		if (o->given_boot) {
			run_usage_error("%s does not go with %.*s: %s the VM's memory, vCPUs and state; leave it out",
					o->given_boot, (int)strcspn(opt, " "),
					opt, from);
			return 1;
		}
		/* --pin and --reserve are checked once the vCPUs are known. */
		return 0;
	}
	if (o->kernel) {
		if (optind <= argc) {
			run_usage_error("give --kernel FILE or an IMAGE, not both");
			return 1;
		}
	} else if (optind != argc) {
		run_usage_error(optind > argc ? "no IMAGE given" :
				"give exactly one IMAGE");
		return 1;
	}
	for (i = o->cpus; i < RUN_MAX_CPUS; i++) {
		if (o->pins[i].cpus.len) {
			run_usage_error("--pin %d=...: the VM has vCPUs 0 to %d (--cpus %d)",
					i, o->cpus - 1, o->cpus);
			return 1;
		}
	}
	/* What lvmm would refuse only once the VM exists. */
	if (o->sched.given & VMCTL_SCHED_RESERVE &&
	    o->sched.reserve > 100U * o->cpus) {
		run_usage_error("--reserve %" PRIu32 " is more than %d vCPU%s can use; give at most 100 per vCPU (--cpus)",
				o->sched.reserve, o->cpus, o->cpus > 1 ? "s" : "");
		return 1;
	}
	if (o->sched.given & VMCTL_SCHED_RESERVE &&
	    o->sched.given & VMCTL_SCHED_CAP && o->sched.cap &&
	    o->sched.reserve > o->sched.cap) {
		run_usage_error("--reserve %" PRIu32 " is above --cap %" PRIu32 ", which would not let the VM have it; lower --reserve or raise --cap",
				o->sched.reserve, o->sched.cap);
		return 1;
	}
	o->image = o->kernel ? o->kernel : argv[optind - 1];
	return 0;
}

/* Read each --module "FILE [ARGS]": the file is the first word. */
static int run_read_modules(struct run_opts *o)
{
	char *file;
	size_t len;
	int i, r;

	for (i = 0; i < o->nmods; i++) {
		len = strcspn(o->mods[i].arg, " ");
		file = strndup(o->mods[i].arg, len);
		if (!file)
			return -ENOMEM;
		/* run_free_files() frees the name, even on failure. */
		r = run_blob_read(&o->mods[i].blob, file);
		if (r)
			return r;
	}
	return 0;
}

/*
 * --kernel, --initrd and --module go with some formats only; read the
 * initrd of a Linux guest.
 */
static int run_check_linux(struct run_opts *o, struct run_image *img)
{
	if (o->kernel && !img->is_linux) {
		vmctl_err("--kernel %s: not a Linux bzImage but a %s; give it as IMAGE instead",
			  o->kernel, img->format);
		return -ENOEXEC;
	}
	if (!img->is_linux) {
		if (o->initrd) {
			vmctl_err("--initrd goes with a Linux bzImage; %s is a %s (give a multiboot kernel its files with --module)",
				  o->image, img->format);
			return -EINVAL;
		}
		return 0;
	}
	if (o->nmods) {
		vmctl_err("--module goes with multiboot kernels; give Linux (%s) its initrd with --initrd",
			  o->image);
		return -EINVAL;
	}
	if (!o->initrd)
		return 0;
	return run_blob_read(&img->lx.initrd, o->initrd);
}

static void run_free_files(struct run_opts *o, struct run_image *img)
{
	int i;

	run_blob_free(&img->blob);
	if (img->is_linux)
		run_blob_free(&img->lx.initrd);
	for (i = 0; i < o->nmods; i++) {
		free((char *)o->mods[i].blob.path);
		o->mods[i].blob.path = NULL;
		run_blob_free(&o->mods[i].blob);
	}
}

static int run_open_console(const struct run_opts *o)
{
	int fd;

	switch (o->console) {
	case RUN_CONSOLE_STDIO:
		return STDOUT_FILENO;
	case RUN_CONSOLE_NONE:
		return -1;
	case RUN_CONSOLE_FILE:
		break;
	}
	fd = open(o->console_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		  0644);
	if (fd < 0) {
		fd = -errno;
		vmctl_err("--console %s: %s", o->console_file, strerror(errno));
	}
	return fd;
}

static void run_teardown(struct run_vm *v)
{
	int i;

	for (i = 0; i < v->ncpus; i++)
		if (v->vcpus[i].h.run)
			lvmm_vcpu_close(&v->vcpus[i].h);
	if (v->mem)
		lvmm_memslot_unmap(v->mem, v->mem_size);
	v->mem = NULL;
	for (i = 0; i < v->nmaps; i++)
		lvmm_memslot_unmap(v->maps[i].addr, v->maps[i].size);
	free(v->maps);
	v->maps = NULL;
	v->nmaps = 0;
	if (v->vm.fd >= 0)
		lvmm_vm_close(&v->vm);
	if (v->dev_fd >= 0)
		close(v->dev_fd);
	v->dev_fd = -1;
}

/* Create the VM, its memory and vCPUs; on failure nothing is left. */
static int run_create(struct run_vm *v, const struct run_opts *o,
		      const struct run_image *img)
{
	int e, i, max;

	v->dev_fd = vmctl_open_dev();
	if (v->dev_fd < 0)
		return v->dev_fd;
	max = lvmm_check_extension(v->dev_fd, LVMM_CAP_MAX_MEMSLOT_SIZE_MB);
	if (max > 0 && o->mem > ((uint64_t)max << 20)) {
		vmctl_err("--mem %llu MiB is more than lvmm's largest memory slot (%d MiB)",
			  (unsigned long long)(o->mem >> 20), max);
		e = -E2BIG;
		goto out;
	}
	max = lvmm_check_extension(v->dev_fd, LVMM_CAP_MAX_VCPUS);
	if (max > 0 && o->cpus > max) {
		vmctl_err("--cpus %d is more than lvmm allows (%d)", o->cpus, max);
		e = -E2BIG;
		goto out;
	}

	e = lvmm_vm_create(v->dev_fd, o->name, &v->vm);
	if (e) {
		if (e == -EEXIST)
			vmctl_err("a VM named '%s' exists already; choose another --name",
				  o->name);
		else if (e == -EBUSY)
			vmctl_err("cannot create a VM: SVM is in use by another hypervisor (kvm_amd?); close its VMs first");
		else
			vmctl_err("cannot create a VM: %s", strerror(-e));
		v->vm.fd = -1;
		goto out;
	}
	e = lvmm_set_memslot(&v->vm, 0, 0, 0, o->mem);
	if (e == -ENOMEM) {
		/* Guest memory is locked memory (RLIMIT_MEMLOCK). */
		vmctl_err("vm '%s': cannot add %llu MiB of memory: over the locked-memory limit, or out of memory (see 'ulimit -l': raise it, give less --mem, or run with CAP_IPC_LOCK)",
			  v->vm.name, (unsigned long long)(o->mem >> 20));
		goto out;
	} else if (e) {
		vmctl_err("vm '%s': cannot add %llu MiB of memory: %s", v->vm.name,
			  (unsigned long long)(o->mem >> 20), strerror(-e));
		goto out;
	}
	e = lvmm_memslot_map(&v->vm, 0, o->mem, PROT_READ | PROT_WRITE,
			     (void **)&v->mem);
	if (e) {
		vmctl_err("vm '%s': cannot map its memory: %s", v->vm.name,
			  strerror(-e));
		v->mem = NULL;
		goto out;
	}
	v->mem_size = o->mem;

	/*
	 * Linux needs local APICs: lvmm's, created before the vCPUs.  When
	 * lvmm gives it an I/O APIC too, the MP table lists it and the UART
	 * raises IRQ 4 there.
	 */
	if (img->is_linux) {
		struct lvmm_ioapic_state io;

		e = lvmm_check_extension(v->dev_fd, LVMM_CAP_IRQCHIP);
		if (e <= 0) {
			vmctl_err("this lvmm has no in-kernel local APIC (LVMM_CAP_IRQCHIP), which a Linux guest needs; load a newer lvmm");
			e = -EOPNOTSUPP;
			goto out;
		}
		e = lvmm_create_irqchip(&v->vm);
		if (e) {
			vmctl_err("vm '%s': cannot create its local APICs (LVMM_CREATE_IRQCHIP): %s",
				  v->vm.name, strerror(-e));
			goto out;
		}
		v->linux_guest = true;
		v->ioapic = !lvmm_get_ioapic(&v->vm, &io);
	}
	run_install(v->mem, v->mem_size, img, o->mods, o->nmods, o->cmdline,
		    o->cpus, v->ioapic);
	/* And ACPI tables, through which a Linux guest powers off. */
	if (img->is_linux)
		run_linux_set_rsdp(v->mem, run_acpi_install(v->mem, o->cpus,
							    v->ioapic));

	for (i = 0; i < o->cpus; i++) {
		struct run_vcpu *c = &v->vcpus[i];

		c->vm = v;
		e = lvmm_vcpu_create(&v->vm, i, &c->h);
		if (e) {
			vmctl_err("vm '%s': cannot create vCPU %d: %s",
				  v->vm.name, i, strerror(-e));
			goto out;
		}
		v->ncpus = i + 1;
		/* Linux's application processors wait for INIT and SIPI. */
		if (img->is_linux && i)
			continue;
		e = run_vcpu_setup(v, c, img);
		if (e) {
			vmctl_err("vm '%s': cannot set vCPU %d's registers: %s",
				  v->vm.name, i, strerror(-e));
			goto out;
		}
	}
	return 0;
out:
	run_teardown(v);
	return e;
}

/* Why LVMM_RESTORE_VM refused @o->restore, and what to do. */
static void run_restore_error(const struct run_opts *o,
			      const struct vmctl_snap_header *sh, int e)
{
	const char *f = o->restore;
	char names[256], size[16];
	uint64_t lacks = sh->h.xcr0;

	switch (-e) {
	case EBADMSG:
		vmctl_err("cannot restore %s: lvmm finds it corrupt or truncated; 'vmctl snapshot-info %s' says where",
			  f, f);
		break;
	case EPROTONOSUPPORT:
		vmctl_err("cannot restore %s: its format is newer than this lvmm reads (%d); load a newer lvmm",
			  f, LVMM_STREAM_VERSION);
		break;
	case EOPNOTSUPP:
		vmctl_err("cannot restore %s: its vCPUs use XSAVE state this processor cannot hold (they use %s); restore it on a host that has those features",
			  f, vmctl_xsave_names(names, sizeof(names), lacks));
		break;
	case EEXIST:
		vmctl_err("cannot restore %s: a VM named '%s' exists already (the one it was saved from?); give the restored VM another --name",
			  f, o->name ? o->name : sh->h.name[0] ? sh->h.name :
			  "of its name");
		break;
	case ENOMEM:
		vmctl_err("cannot restore %s: out of memory, or over the locked-memory limit for its %s of guest memory (see 'ulimit -l': raise it, or run with CAP_IPC_LOCK)",
			  f, sh->h.mem_size ? vmctl_fmt_size(size, sizeof(size),
							      sh->h.mem_size) :
			  "MiBs");
		break;
	case EBUSY:
		vmctl_err("cannot restore %s: SVM is in use by another hypervisor (kvm_amd?); close its VMs first",
			  f);
		break;
	case EINVAL:
		vmctl_err("cannot restore %s: lvmm refused the request (%s); is lvmm.ko older than vmctl?",
			  f, strerror(-e));
		break;
	default:
		vmctl_err("cannot restore %s: %s", f, strerror(-e));
		break;
	}
}

/*
 * Map the restored VM's slots: as the snapshot's header lists them, or,
 * when the file could not be read ahead (a pipe), vmctl run's one slot
 * at guest-physical 0 if that is what the VM has.
 */
static int run_restore_memory(struct run_vm *v,
			      const struct vmctl_snap_header *sh, bool have_hdr)
{
	struct lvmm_stream_slot one = { .slot = 0 };
	const struct lvmm_stream_slot *slots = sh->slots;
	struct lvmm_vm_info info;
	uint32_t i, n = sh->h.nr_slots;
	void *addr;
	int e;

	if (!have_hdr) {
		memset(&info, 0, sizeof(info));
		e = lvmm_vm_info(&v->vm, &info);
		if (e || info.nr_memslots != 1) {
			if (v->verbose)
				fprintf(stderr, "vmctl: vm '%s': its memory layout is not vmctl run's; vmctl does not map it\n",
					v->vm.name);
			return 0;
		}
		one.size = info.mem_size;
		slots = &one;
		n = 1;
	}
	v->maps = calloc(n ? n : 1, sizeof(*v->maps));
	if (!v->maps)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		e = lvmm_memslot_map(&v->vm, slots[i].slot, slots[i].size,
				     slots[i].flags & LVMM_MEMSLOT_READONLY ?
				     PROT_READ : PROT_READ | PROT_WRITE, &addr);
		if (e) {
			vmctl_err("vm '%s': cannot map its memory slot %" PRIu32 ": %s",
				  v->vm.name, slots[i].slot, strerror(-e));
			return e;
		}
		if (!slots[i].guest_phys_addr && !v->mem) {
			v->mem = addr;
			v->mem_size = slots[i].size;
		} else {
			v->maps[v->nmaps].addr = addr;
			v->maps[v->nmaps++].size = slots[i].size;
		}
	}
	return 0;
}

/*
 * The platform of a restored or migrated VM, known by what it brought:
 * vmctl run gives the in-kernel APICs to Linux guests only, and with
 * them the PC's ports; the UART raises IRQ 4 at lvmm's I/O APIC when
 * there is one.  Without this a Linux guest's console stalls after its
 * first interrupt-driven write, and its timer and RTC ports go unheard.
 */
static void run_restore_platform(struct run_vm *v)
{
	struct lvmm_ioapic_state io;
	struct lvmm_lapic_state lapic;

	v->ioapic = !lvmm_get_ioapic(&v->vm, &io);
	v->linux_guest = v->ioapic ||
			 !lvmm_get_lapic(&v->vcpus[0].h, &lapic);
}

/* vmctl's device state, as the VM carried it (run_state.c). */
static int run_restore_devices(struct run_vm *v)
{
	uint32_t size = LVMM_MAX_VMM_STATE;
	const char *why;
	uint8_t *blob;
	int e, i;

	run_restore_platform(v);
	blob = malloc(size);
	if (!blob)
		return -ENOMEM;
	e = lvmm_get_vmm_state(&v->vm, blob, &size);
	if (e) {
		vmctl_err("vm '%s': cannot read its device state (LVMM_GET_VMM_STATE): %s",
			  v->vm.name, strerror(-e));
		goto out;
	}
	if (!size) {
		vmctl_err("%s holds no device state of vmctl run (another program ran the VM): its UART starts afresh",
			  v->src);
		v->state_gen = UINT64_MAX;	/* lvmm gets vmctl's */
		goto out;
	}
	why = run_state_load(blob, size, &v->uart, v->vcpu_state, v->ncpus);
	if (why) {
		vmctl_err("cannot restore %s: vmctl cannot restore the device state in it: %s",
			  v->src, why);
		e = -EPROTO;
		goto out;
	}
	for (i = 0; i < v->ncpus; i++)
		if (v->vcpu_state[i] == RUN_VCPU_HALTED)
			v->halted++;
	/* lvmm holds it already. */
	v->state_gen = v->vcpu_gen + run_uart_gen(&v->uart);
out:
	free(blob);
	return e;
}

/*
 * The file of --restore, its header read ahead into @sh when it is a
 * regular file (*@have_hdr), so that a file that is no snapshot is
 * refused before lvmm is asked: its fd, or a negative errno after saying
 * why.
 */
static int run_restore_open(const struct run_opts *o,
			    struct vmctl_snap_header *sh, bool *have_hdr)
{
	struct stat st;
	int fd, e;

	fd = open(o->restore, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = -errno;
		if (e == -ENOENT)
			vmctl_err("--restore %s: no such file", o->restore);
		else
			vmctl_err("--restore %s: %s", o->restore, strerror(-e));
		return e;
	}
	if (!fstat(fd, &st) && S_ISDIR(st.st_mode)) {
		vmctl_err("--restore %s is a directory; give a snapshot file",
			  o->restore);
		e = -EISDIR;
		goto out_close;
	}
	if (S_ISREG(st.st_mode)) {
		e = vmctl_snap_header_read(fd, o->restore, sh);
		if (e)
			goto out_close;
		*have_hdr = true;
		if (sh->h.nr_vcpus > RUN_MAX_CPUS || !sh->h.nr_vcpus) {
			vmctl_err("cannot restore %s: its VM has %" PRIu32 " vCPUs, vmctl run runs 1 to %d",
				  o->restore, sh->h.nr_vcpus, RUN_MAX_CPUS);
			e = -E2BIG;
			goto out_close;
		}
	}
	return fd;
out_close:
	close(fd);
	return e;
}

/* Why LVMM_RESTORE_VM refused the migration, and what to do. */
static void run_incoming_error(const struct run_vm *v,
			       const struct run_opts *o, int e, int sig)
{
	const char *peer = v->peer;

	switch (-e) {
	case EBADMSG:
		vmctl_err("the stream from %s is corrupt, or was cut short (did the source cancel, or stop?); nothing was created here, and the VM runs on at the source",
			  peer);
		break;
	case EPROTONOSUPPORT:
		vmctl_err("the VM from %s comes in a stream format newer than this lvmm reads (%d); load a newer lvmm here; the VM runs on at the source",
			  peer, LVMM_STREAM_VERSION);
		break;
	case EOPNOTSUPP:
		vmctl_err("cannot take the VM from %s: this host lacks CPU features the guest uses (XSAVE state, or instruction-set features its CPUID shows); migrate it to a host that has them; it runs on at the source",
			  peer);
		break;
	case EEXIST:
		if (o->name)
			vmctl_err("cannot take the VM from %s: a VM named '%s' exists here already; give the incoming VM another --name; it runs on at the source",
				  peer, o->name);
		else
			vmctl_err("cannot take the VM from %s: a VM of its name exists here already; give the incoming VM another name with --name; it runs on at the source",
				  peer);
		break;
	case ENOMEM:
		vmctl_err("cannot take the VM from %s: out of memory, or over the locked-memory limit for its guest memory (see 'ulimit -l': raise it, or run with CAP_IPC_LOCK); it runs on at the source",
			  peer);
		break;
	case ECONNRESET:
	case ENOTCONN:
	case EPIPE:
	case ENODATA:
	case ETIMEDOUT:
		vmctl_err("the source %s went away before it handed the VM over (%s): the VM still runs there; nothing was created here",
			  peer, strerror(-e));
		break;
	case EINTR:
		vmctl_err("%s: interrupted before the VM was handed over: nothing was created here, and the VM runs on at the source",
			  sig ? strsignal(sig) : "a signal");
		break;
	case EBUSY:
		vmctl_err("cannot take the VM from %s: SVM is in use by another hypervisor (kvm_amd?); close its VMs first",
			  peer);
		break;
	case ECONNABORTED:
		vmctl_err("the source %s gave the migration up at the end (cancelled, or it failed there): the VM still runs there; nothing was created here",
			  peer);
		break;
	case EPROTO:
		vmctl_err("cannot take the VM from %s: it does not answer as lvmm's migration does (is it 'vmctl migrate'?); nothing was created here",
			  peer);
		break;
	case ENOENT:
		vmctl_err("the VM from %s was destroyed here before it was handed over; it runs on at the source",
			  peer);
		break;
	case EINVAL:
	case EBADF:
		vmctl_err("cannot take the VM from %s: lvmm refused the request (%s); is lvmm.ko older than vmctl?",
			  peer, strerror(-e));
		break;
	default:
		vmctl_err("cannot take the VM from %s: %s", peer, strerror(-e));
		break;
	}
}

static volatile sig_atomic_t run_incoming_sig;

static void run_incoming_handler(int sig)
{
	run_incoming_sig = sig;
}

/*
 * --incoming: listen, accept exactly one connection and give it to
 * LVMM_RESTORE_VM with LVMM_RESTORE_INCOMING, which returns once the
 * source has handed the VM over.  A signal ends the wait for the
 * connection (@sig_fd), and the migration, which lvmm then refuses.
 */
static int run_incoming(struct run_vm *v, const struct run_opts *o,
			int sig_fd, uint32_t *nr)
{
	struct sigaction sa, old[3];
	char addr[VMCTL_ADDR_LEN];
	static const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	sigset_t set;
	int lfd, fd, e, i, sig = 0, cap;
	__u32 flags = LVMM_RESTORE_INCOMING;

	cap = lvmm_check_extension(v->dev_fd, LVMM_CAP_MIGRATE);
	if (cap <= 0) {
		vmctl_err("this lvmm cannot receive migrations (no LVMM_CAP_MIGRATE: it is older than vmctl); load a newer lvmm");
		return -EOPNOTSUPP;
	}
	/* Take the VM only once vmctl has set it up: it may still refuse. */
	if (cap >= 2)
		flags |= LVMM_RESTORE_HOLD;
	lfd = vmctl_mig_listen(&o->incoming_hp, addr);
	if (lfd < 0)
		return lfd;
	fprintf(stderr, "vmctl: waiting for a migration on %s\n", addr);
	fd = vmctl_mig_accept(lfd, sig_fd, v->peer, &sig);
	/* Exactly one connection: nobody else may send a VM now. */
	close(lfd);
	if (fd == -EINTR)
		vmctl_err("%s: no migration came; stopping", strsignal(sig));
	if (fd < 0)
		return fd;
	snprintf(v->from, sizeof(v->from), "the VM from %s", v->peer);
	v->src = v->from;
	fprintf(stderr, "vmctl: receiving a VM from %s\n", v->peer);

	/*
	 * lvmm's reads end with EINTR on a signal the caller handles: let
	 * the blocked SIGINT, SIGTERM and SIGHUP through to a handler for
	 * the call, one already pending included.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = run_incoming_handler;
	sigemptyset(&set);
	for (i = 0; i < 3; i++) {
		sigaction(sigs[i], &sa, &old[i]);
		sigaddset(&set, sigs[i]);
	}
	run_incoming_sig = 0;
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (run_incoming_sig)
		e = -EINTR;
	else
		e = lvmm_vm_restore_flags(v->dev_fd, fd, o->name, flags,
					  &v->vm, nr);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (i = 0; i < 3; i++)
		sigaction(sigs[i], &old[i], NULL);
	close(fd);
	if (e) {
		v->vm.fd = -1;
		run_incoming_error(v, o, e, run_incoming_sig);
	} else if (flags & LVMM_RESTORE_HOLD) {
		v->held = true;
		/* Not taken yet: a signal now refuses it (run_restore()). */
		if (run_incoming_sig)
			e = -EINTR;
	} else if (run_incoming_sig) {
		/* Too late: the source let the VM go, stopping it loses it. */
		vmctl_err("%s came as the VM arrived: it runs here now",
			  strsignal(run_incoming_sig));
	}
	return e;
}

/*
 * A VM received with LVMM_RESTORE_HOLD and set up: take it (@e 0; the
 * source hands it over) or refuse it for @e, and the source runs on.
 * Returns 0 if it is this host's now.
 */
static int run_incoming_finish(struct run_vm *v, const struct run_opts *o,
			       int e)
{
	int r;

	v->held = false;
	if (e) {
		r = lvmm_vm_incoming_finish(&v->vm, -e);
		if (r)
			vmctl_err("vm '%s': cannot refuse it to its source (%s); the source keeps the VM unless it was told GO",
				  v->vm.name, strerror(-r));
		else
			vmctl_err("refused the VM from %s (%s): it runs on at the source",
				  v->peer, strerror(-e));
		return e;
	}
	r = lvmm_vm_incoming_finish(&v->vm, 0);
	if (r)
		run_incoming_error(v, o, r, 0);
	return r;
}

/*
 * A VM that migrated in is here only: its source let it go.  When vmctl
 * cannot run it after all, keep it, not running, until a signal, so that
 * it can be saved first.
 */
static void run_incoming_hold(struct run_vm *v, int sig_fd)
{
	struct pollfd p = { .fd = sig_fd, .events = POLLIN };
	struct signalfd_siginfo si;

	vmctl_err("vm '%s' moved here and its source let it go, so it is held here, not running, until vmctl exits: keep it with 'vmctl save %s FILE' from another shell first, then stop vmctl (Ctrl-C)",
		  v->vm.name, v->vm.name);
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	(void)!read(sig_fd, &si, sizeof(si));
}

/*
 * --restore, --incoming: the VM, its memory and vCPUs from a snapshot or
 * a migration with LVMM_RESTORE_VM, then vmctl's devices from the state
 * it carries.  On failure nothing is left (but see run_incoming_hold()).
 */
static int run_restore(struct run_vm *v, const struct run_opts *o,
		       int sig_fd)
{
	struct vmctl_snap_header sh;
	bool have_hdr = false;
	struct timespec t0, t1;
	uint32_t nr = 0, id;
	int fd = -1, e, max;

	memset(&sh, 0, sizeof(sh));
	v->src = o->restore;
	if (o->restore) {
		fd = run_restore_open(o, &sh, &have_hdr);
		if (fd < 0)
			return fd;
	}
	v->dev_fd = vmctl_open_dev();
	if (v->dev_fd < 0) {
		e = v->dev_fd;
		goto out_close;
	}
	if (o->incoming) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		e = run_incoming(v, o, sig_fd, &nr);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (e && !v->held)
			goto out;
		v->incoming = true;
		if (e)
			goto out;
		goto restored;
	}
	e = lvmm_check_extension(v->dev_fd, LVMM_CAP_SNAPSHOT);
	if (e <= 0) {
		vmctl_err("this lvmm cannot restore snapshots (it is older than vmctl); load a newer lvmm");
		e = -EOPNOTSUPP;
		goto out;
	}
	if (have_hdr && sh.h.version > (uint32_t)e) {
		vmctl_err("cannot restore %s: it is snapshot format %" PRIu32 ", this lvmm reads up to %d; load a newer lvmm",
			  o->restore, sh.h.version, e);
		e = -EPROTONOSUPPORT;
		goto out;
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	e = lvmm_vm_restore(v->dev_fd, fd, o->name, &v->vm, &nr);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (e) {
		v->vm.fd = -1;
		run_restore_error(o, &sh, e);
		goto out;
	}
restored:
	if (!nr || nr > RUN_MAX_CPUS) {
		vmctl_err("cannot restore %s: its VM has %" PRIu32 " vCPUs, vmctl run runs 1 to %d",
			  v->src, nr, RUN_MAX_CPUS);
		e = -E2BIG;
		goto out;
	}
	/* Its vCPUs keep their ids: 0 to nr - 1 in vmctl's VMs. */
	max = lvmm_check_extension(v->dev_fd, LVMM_CAP_MAX_VCPUS);
	for (id = 0; (uint32_t)v->ncpus < nr && (max <= 0 || id < (uint32_t)max);
	     id++) {
		struct run_vcpu *c = &v->vcpus[v->ncpus];

		c->vm = v;
		e = lvmm_vcpu_get(&v->vm, id, &c->h);
		if (e == -ENOENT && max > 0)
			continue;
		if (e) {
			vmctl_err("vm '%s': cannot get vCPU %" PRIu32 ": %s",
				  v->vm.name, id, strerror(-e));
			goto out;
		}
		v->ncpus++;
	}
	if ((uint32_t)v->ncpus < nr) {
		vmctl_err("vm '%s': found %d of its %" PRIu32 " vCPUs", v->vm.name,
			  v->ncpus, nr);
		e = -ENOENT;
		goto out;
	}
	e = run_restore_memory(v, &sh, have_hdr);
	if (!e)
		e = run_restore_devices(v);
	if (e)
		goto out;
	if (v->held) {
		e = run_incoming_finish(v, o, 0);
		if (e) {
			v->incoming = false;	/* gone: lvmm destroyed it */
			goto out;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
	}
	if (v->verbose) {
		char buf[256];
		time_t t = sh.h.created_ns / 1000000000;
		struct tm tm;
		int i;

		if (have_hdr) {
			strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC",
				 gmtime_r(&t, &tm));
			fprintf(stderr, "vmctl: %s: a snapshot of '%s' taken %s (format %" PRIu32 ")\n",
				o->restore, sh.h.name, buf, sh.h.version);
		}
		fprintf(stderr, "vmctl: vm '%s' (id %u) %s in %.3f ms: %llu MiB, %d vCPU%s\n",
			v->vm.name, v->vm.id,
			v->incoming ? "received" : "restored", run_ms(&t0, &t1),
			(unsigned long long)(have_hdr ? sh.h.mem_size >> 20 :
					     v->mem_size >> 20),
			v->ncpus, v->ncpus > 1 ? "s" : "");
		run_uart_describe(&v->uart, buf, sizeof(buf));
		fprintf(stderr, "vmctl: UART: %s\n", buf);
		for (i = 0; i < v->ncpus; i++)
			if (v->vcpu_state[i] != RUN_VCPU_RUNNING)
				fprintf(stderr, "vmctl: vCPU %u had %s: it stays so\n",
					v->vcpus[i].h.id,
					v->vcpu_state[i] == RUN_VCPU_HALTED ?
					"halted" : "gone idle");
	}
	vmctl_snap_header_free(&sh);
	if (fd >= 0)
		close(fd);
	return 0;
out:
	if (v->held) {
		run_incoming_finish(v, o, e);
		v->incoming = false;
	}
	if (v->incoming)
		run_incoming_hold(v, sig_fd);
	run_teardown(v);
out_close:
	vmctl_snap_header_free(&sh);
	if (fd >= 0)
		close(fd);
	return e;
}

/*
 * --weight, --cap, --period, --reserve and --pin, in one sched-set once
 * every vCPU exists (lvmm creates none for a VM with a reservation, which
 * it splits among those it has) and while none has run: each vCPU's own
 * pin, else the one for all, packed into o->pins.
 */
static int run_sched(const struct run_vm *v, struct run_opts *o)
{
	struct vmctl_sched *s = &o->sched;
	struct vmctl_pin *p;
	char id[16];
	int i;

	s->pins = o->pins;
	for (i = 0; i < v->ncpus; i++) {
		if (!o->pins[i].cpus.len && !o->pin_all.len)
			continue;
		p = &o->pins[s->nr_pins++];
		*p = o->pins[i];
		p->vcpu = i;
		if (!p->cpus.len)
			p->cpus = o->pin_all;
	}
	if (!s->given && !s->nr_pins)
		return 0;
	snprintf(id, sizeof(id), "%" PRIu32, v->vm.id);
	return vmctl_sched_change(id, s, "apply --weight, --cap, --period, --reserve or --pin to");
}

/* Stop every vCPU thread: immediate_exit covers one about to enter RUN. */
static void run_join_all(struct run_vm *v)
{
	int i;

	pthread_mutex_lock(&v->lock);
	v->stopping = true;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	for (i = 0; i < v->ncpus; i++) {
		if (!v->vcpus[i].thread_started)
			continue;
		__atomic_store_n(&v->vcpus[i].h.run->immediate_exit, 1,
				 __ATOMIC_SEQ_CST);
		pthread_kill(v->vcpus[i].thread, RUN_KICK_SIGNAL);
	}
	for (i = 0; i < v->ncpus; i++) {
		if (!v->vcpus[i].thread_started)
			continue;
		pthread_join(v->vcpus[i].thread, NULL);
		v->vcpus[i].thread_started = false;
	}
}

/*
 * Wait for the end: a vCPU ending the VM (done_fd), a signal, or console
 * input, which goes to the UART (Ctrl-] on a terminal detaches).
 */
static void run_wait(struct run_vm *v, int sig_fd, bool console_in, bool tty)
{
	struct pollfd p[3] = {
		{ .fd = v->done_fd, .events = POLLIN },
		{ .fd = sig_fd, .events = POLLIN },
		{ .fd = console_in ? STDIN_FILENO : -1, .events = POLLIN },
	};
	struct signalfd_siginfo si;
	uint8_t buf[256];
	ssize_t n, i;

	for (;;) {
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			vmctl_err("poll: %s", strerror(errno));
			run_stop(v, RUN_EXIT_RUNTIME);
			return;
		}
		if (p[0].revents)
			return;
		if (p[1].revents && read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
			if (!tty || si.ssi_signo != SIGINT)
				fprintf(stderr, "\nvmctl: %s: stopping vm '%s'\n",
					strsignal(si.ssi_signo), v->vm.name);
			run_stop(v, RUN_EXIT_SIGNAL(si.ssi_signo));
			return;
		}
		if (!p[2].revents)
			continue;
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			p[2].fd = -1;	/* EOF: the guest just gets no more */
			continue;
		}
		if (tty) {
			for (i = 0; i < n; i++)
				if (buf[i] == RUN_DETACH_CHAR)
					break;
			run_uart_rx(&v->uart, buf, i);
			run_state_sync(v);
			run_uart_irq_sync(v);
			if (i < n) {
				fprintf(stderr, "\r\nvmctl: Ctrl-]: stopping vm '%s'\r\n",
					v->vm.name);
				run_stop(v, RUN_EXIT_DETACH);
				return;
			}
		} else {
			run_uart_rx(&v->uart, buf, n);
			run_state_sync(v);
			run_uart_irq_sync(v);
		}
	}
}

static void run_describe_linux(const struct run_vm *v,
			       const struct run_opts *o,
			       const struct run_image *img)
{
	const struct run_linux *lx = &img->lx;

	fprintf(stderr, "vmctl: Linux boot protocol %u.%02u, %s, %llu bytes of protected-mode kernel at 0x%llx, init_size 0x%llx\n",
		lx->version >> 8, lx->version & 0xff,
		lx->relocatable ? "relocatable" : "not relocatable",
		(unsigned long long)lx->pm_size,
		(unsigned long long)lx->load_addr,
		(unsigned long long)lx->init_size);
	if (o->initrd)
		fprintf(stderr, "vmctl: initrd %s: %zu bytes at 0x%llx\n",
			o->initrd, lx->initrd.size,
			(unsigned long long)lx->initrd_gpa);
	fprintf(stderr, "vmctl: command line \"%s\"; boot_params at 0x%llx, ACPI tables at 0x%llx, MP table at 0x%llx%s\n",
		o->cmdline, RUN_LINUX_BOOT_PARAMS_GPA, RUN_LINUX_ACPI_GPA,
		RUN_LINUX_MPF_GPA,
		v->ioapic ? " with the I/O APIC; the UART on IRQ 4" :
		" (no I/O APIC: lvmm has none)");
}

static int run_vm(struct run_opts *o, struct run_image *img,
		  struct timespec *t_start)
{
	struct run_vm *v;
	struct sigaction sa;
	struct timespec t_end;
	unsigned long rss_self = 0, rss_anon = 0, rss_guest = 0, exits = 0;
	sigset_t block;
	bool tty = false;
	int sig_fd, out_fd, e, i, status;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->t_start = *t_start;
	v->verbose = o->verbose;
	v->vm.fd = -1;
	v->dev_fd = -1;
	v->done_fd = -1;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	pthread_mutex_init(&v->state_lock, NULL);
	v->state_gen = UINT64_MAX;	/* nothing in lvmm yet */
	pthread_mutex_init(&v->pc.lock, NULL);
	run_pc_init(&v->pc);
	pthread_mutex_init(&v->irq_lock, NULL);

	out_fd = run_open_console(o);
	if (out_fd < -1) {
		free(v);
		return out_fd;
	}
	run_uart_init(&v->uart, out_fd);

	/*
	 * From here SIGINT/SIGTERM/SIGHUP arrive through the signalfd, and the
	 * kick signal only in the vCPU threads, which unblock it.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, RUN_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	sigdelset(&block, RUN_KICK_SIGNAL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = run_kick_handler;
	sigaction(RUN_KICK_SIGNAL, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);	/* a closed console is an EPIPE */
	sig_fd = signalfd(-1, &block, SFD_CLOEXEC);
	v->done_fd = eventfd(0, EFD_CLOEXEC);
	if (sig_fd < 0 || v->done_fd < 0) {
		e = -errno;
		vmctl_err("signalfd/eventfd: %s", strerror(errno));
		goto out_close;
	}

	e = o->restore || o->incoming ? run_restore(v, o, sig_fd) :
					run_create(v, o, img);
	if (e)
		goto out_close;
	for (i = v->ncpus; i < RUN_MAX_CPUS; i++) {
		if (o->pins[i].cpus.len) {
			vmctl_err("run: --pin %d=...: the VM has vCPUs 0 to %d",
				  i, v->ncpus - 1);
			e = -EINVAL;
			goto out_teardown;
		}
	}
	e = run_sched(v, o);
	if (e)
		goto out_teardown;
	/* From now on lvmm holds vmctl's device state, for vm-save. */
	v->keep_state = lvmm_check_extension(v->dev_fd, LVMM_CAP_SNAPSHOT) > 0;
	run_state_sync(v);
	if (o->verbose && img) {
		fprintf(stderr, "vmctl: %s: %s, 0x%llx-0x%llx, entry 0x%llx\n",
			o->image, img->format, (unsigned long long)img->start,
			(unsigned long long)img->end,
			(unsigned long long)img->entry);
		if (img->is_linux)
			run_describe_linux(v, o, img);
		fprintf(stderr, "vmctl: vm '%s' (id %u): %llu MiB, %d vCPU%s\n",
			v->vm.name, v->vm.id,
			(unsigned long long)(v->mem_size >> 20), v->ncpus,
			v->ncpus > 1 ? "s" : "");
	}
	/* The binary is static: drop what was read before the guest runs. */
	if (img)
		run_free_files(o, img);

	if (o->console == RUN_CONSOLE_STDIO && isatty(STDIN_FILENO)) {
		e = run_tty_make_raw();
		if (e) {
			vmctl_err("cannot put the terminal in raw mode: %s",
				  strerror(-e));
			goto out_teardown;
		}
		tty = true;
		fprintf(stderr, "vmctl: vm '%s' on this terminal; Ctrl-] stops it\r\n",
			v->vm.name);
	}

	clock_gettime(CLOCK_MONOTONIC, &v->t_entered);
	/* A restored VM whose vCPUs had all halted is over at once. */
	if (v->halted == v->ncpus)
		run_stop(v, RUN_EXIT_HALTED);
	for (i = 0; i < v->ncpus; i++) {
		/* Restored halted or idle: vmctl had stopped running it. */
		if (v->vcpu_state[i] != RUN_VCPU_RUNNING)
			continue;
		e = pthread_create(&v->vcpus[i].thread, NULL, run_vcpu_thread,
				   &v->vcpus[i]);
		if (e) {
			vmctl_err("cannot start a thread for vCPU %d: %s", i,
				  strerror(e));
			run_stop(v, RUN_EXIT_RUNTIME);
			break;
		}
		v->vcpus[i].thread_started = true;
	}

	run_wait(v, sig_fd, o->console == RUN_CONSOLE_STDIO, tty);
	run_join_all(v);
	clock_gettime(CLOCK_MONOTONIC, &t_end);
	if (v->uart.out_error && v->status == RUN_EXIT_HALTED)
		v->status = RUN_EXIT_RUNTIME;
	status = v->status;
	run_rss(v, &rss_self, &rss_anon, &rss_guest);
	for (i = 0; i < v->ncpus; i++)
		exits += v->vcpus[i].exits;
	run_teardown(v);
	run_tty_restore();

	if (o->verbose) {
		fprintf(stderr, "vmctl: setup %.3f ms (%s)\n",
			run_ms(&v->t_start, &v->t_entered),
			o->incoming ? "migration received, vCPUs and memory mapped" :
			o->restore ? "snapshot restored, vCPUs and memory mapped" :
			"image checked, VM created, memory and vCPUs set up");
		if (atomic_load(&v->first_exit_seen)) {
			if (v->first_exit_port)
				fprintf(stderr, "vmctl: start-up %.3f ms: from 'vmctl run' to the guest's first exit (port 0x%x)\n",
					run_ms(&v->t_start, &v->t_first_exit),
					v->first_exit_port);
			else
				fprintf(stderr, "vmctl: start-up %.3f ms: from 'vmctl run' to the guest's first exit\n",
					run_ms(&v->t_start, &v->t_first_exit));
		}
		fprintf(stderr, "vmctl: ran %.3f ms, %lu exits\n",
			run_ms(&v->t_entered, &t_end), exits);
		fprintf(stderr, "vmctl: vmctl RSS %lu KiB, %lu KiB of it anonymous; guest memory not counted (%lu KiB resident in vmctl's mapping)\n",
			rss_self, rss_anon, rss_guest);
		fprintf(stderr, "vmctl: exit status %d\n", status);
	}
	close(sig_fd);
	close(v->done_fd);
	if (out_fd > STDOUT_FILENO)
		close(out_fd);
	run_uart_destroy(&v->uart);
	pthread_mutex_destroy(&v->pc.lock);
	pthread_mutex_destroy(&v->irq_lock);
	free(v);
	fflush(NULL);
	/* The status says how the guest ended; see the table in run.h. */
	exit(status);

out_teardown:
	if (v->incoming)
		run_incoming_hold(v, sig_fd);
	run_teardown(v);
out_close:
	if (sig_fd >= 0)
		close(sig_fd);
	if (v->done_fd >= 0)
		close(v->done_fd);
	if (out_fd > STDOUT_FILENO)
		close(out_fd);
	pthread_sigmask(SIG_UNBLOCK, &block, NULL);
	run_uart_destroy(&v->uart);
	pthread_mutex_destroy(&v->pc.lock);
	pthread_mutex_destroy(&v->irq_lock);
	free(v);
	return e;
}

static int vmctl_run(struct vmctl *ctx, int argc, char **argv)
{
	struct run_image img;
	struct run_opts o;
	struct timespec t0;
	int r;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = run_parse_opts(&o, argc, argv);
	if (r)
		return r;
	if (o.restore || o.incoming)
		return run_vm(&o, NULL, &t0);

	/* Every check on the files comes before the VM exists. */
	memset(&img, 0, sizeof(img));
	r = run_blob_read(&img.blob, o.image);
	if (r)
		return r;
	r = run_image_parse(&img, o.entry64);
	if (!r)
		r = run_check_linux(&o, &img);
	if (!r)
		r = run_read_modules(&o);
	if (!r)
		r = run_layout(&img, o.mods, o.nmods, o.cmdline, o.mem);
	if (!r)
		r = run_vm(&o, &img, &t0);
	run_free_files(&o, &img);
	return r;
}

VMCTL_CMDS(vmctl_run_cmds) = {
	{ "run",
	  "[--name N] [--mem SIZE] [--cpus N] [--console stdio|none|FILE] [--cmdline STR] [--module 'FILE [ARGS]']... [--entry64] [--initrd FILE] [--weight N] [--cap PERCENT] [--period MS] [--reserve PERCENT] [--pin [VCPU=]CPULIST]... [-v] IMAGE | --kernel FILE | --restore FILE | --incoming [ADDR:]PORT",
	  "Boot IMAGE (flat binary, ELF64 or multiboot kernel) in a new VM with a\n"
	  "      16550 console, until the guest halts or writes V to port 0xf4.\n"
	  "      A Linux bzImage (IMAGE, or --kernel FILE) boots with the Linux boot\n"
	  "      protocol, --initrd FILE, its command line from --cmdline or --append,\n"
	  "      lvmm's local APICs, ACPI tables and an MP table, until it resets\n"
	  "      the machine or powers off.\n"
	  "      Defaults: --mem 64M --cpus 1 --console stdio --name auto.  --weight,\n"
	  "      --cap, --period, --reserve and --pin (CPULIST: every vCPU,\n"
	  "      VCPU=CPULIST: one) set its scheduling policy before it runs, as\n"
	  "      vmctl sched and pin do.  --restore FILE runs a snapshot 'vmctl save'\n"
	  "      wrote instead, from where it was, with its UART as it was;\n"
	  "      --incoming [ADDR:]PORT waits on PORT for one 'vmctl migrate' and\n"
	  "      runs the VM it brings likewise; --mem, --cpus, --cmdline, --module,\n"
	  "      --entry64, --kernel, --initrd and --append go with neither.\n"
	  "      Exit status: 0 halted or powered off (Linux's poweroff), 2 setup\n"
	  "      error, 4 triple fault, 6 unhandled exit, 8 runtime error, 10 Ctrl-],\n"
	  "      12 destroyed, 14 migrated away, 16 reset (Linux's reboot), 128+N\n"
	  "      signal N, (V<<1)|1 debug-exit.",
	  vmctl_run },
	{ NULL },
};
