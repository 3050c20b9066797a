// SPDX-License-Identifier: GPL-2.0
/*
 * lvmm-linux-bench: how long Linux takes to reach its init under lvmm
 * (vmctl run) and under KVM (a minimal VMM in this program on vmctl run's
 * loader and devices: tools/vmctl/run_loader.c, run_linux.c, run_acpi.c,
 * run_uart.c and run_pc.c), and how well lvmm keeps the guest's clock.
 * Run by scripts/bench in the --smp 1 sandbox, after lvmm-irq-bench.
 *
 *   lvmm-linux-bench [-r ROUNDS] [-d SECONDS] [-g DIR] [-m MIB]
 *                    [-t SECONDS] [-K]
 *
 * The guest is scripts/linux-guest's: DIR/vmlinuz and DIR/initrd.cpio,
 * whose /init (selftests/linux_boot_init.sh) prints "linux-boot: init is
 * running" first thing.  Both sides boot it from a child process whose
 * console (the 16550 at 0x3f8) is a pipe to this one: lvmm as "vmctl run
 * --kernel ... --initrd ... --append ...", KVM as this program re-run
 * with --kvm-child, so that both pay the same process start.  A sample
 * is the time from fork() to the line arriving here; the child is then
 * killed and reaped.  Both get the same memory (-m, default 256 MiB),
 * vCPU count and command line ("console=ttyS0 panic=-1 quiet").  The KVM
 * side has KVM's in-kernel APICs, I/O APIC, PIC and PIT, the supported
 * CPUID with each vCPU's APIC ID, and the UART's IRQ 4 through
 * KVM_IRQ_LINE; its APs wait for INIT and SIPI in KVM's APIC.
 *
 * Rows: linux_boot_1vcpu, linux_boot_2vcpu, in -r rounds (default 3; 0
 * leaves them out), lvmm then KVM, KVM then lvmm, ...  Prints the
 * samples, a table of medians, then
 *   ratio linux_boot_1vcpu X      lvmm median / KVM median (< 1: faster)
 *   ratio linux_boot_2vcpu X
 *   metric linux_boot_exits N     lvmm's exits up to init, 2 vCPUs
 *   metric linux_clock_drift_pct P
 *   metric linux_clock_drift_kvm_pct P
 * The exits are read with "vmctl stat" in the first round's 2-vCPU lvmm
 * boot, vmctl stopped (SIGSTOP) at the init line so that they are those
 * up to init.  The drift: with "lvmm.drift=S" (-d S, default 60, or
 * $LVMM_BENCH_LINUX_DRIFT; 0 leaves it out) the guest's init prints its
 * CLOCK_MONOTONIC five times, sleeps S seconds and prints it five times
 * again; each line is timestamped on arrival with this host's
 * CLOCK_MONOTONIC, the least delayed reading of each five is taken (see
 * drift_once()), and P = |dguest - dhost| / dhost * 100, on lvmm and
 * (unless -K) on KVM, 2 vCPUs each.
 *
 * Each boot gets -t seconds (default 180) to print its line (the drift's,
 * S more); a boot that fails or times out shows the end of its console
 * and ends the program, its child killed and reaped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "run.h"
#include "vmctl.h"

#define PROG		"lvmm-linux-bench"
#define MAX_ROUNDS	20
#define MARKER		"linux-boot: init is running"
#define DRIFT_TAG	"linux-boot: drift-clock "
#define DRIFT_CS	"linux-boot: drift-clocksource "
#define DRIFT_SAMPLES	5	/* readings before and after the sleep */
#define CMDLINE		"console=ttyS0 panic=-1 quiet"
#define VM_NAME		"linux-bench"
#define TAIL_LINES	30

/* The ports vmctl run's run_pio() handles itself (run.c). */
#define PORT_POST	0x80
#define PORT_DEBUG_EXIT	0xf4
#define PORT_PMTMR	0x608
#define PMTMR_HZ	3579545ULL

#define CR0_PE		(1u << 0)
#define CR0_MP		(1u << 1)
#define CR0_ET		(1u << 4)
#define CR0_NE		(1u << 5)
#define CR0_WP		(1u << 16)
#define CR0_PG		(1u << 31)
#define CR4_PAE		(1u << 5)
#define CR4_OSFXSR	(1u << 9)
#define CR4_OSXMMEXCPT	(1u << 10)
#define EFER_LME	(1u << 8)
#define EFER_LMA	(1u << 10)

static void vsay(const char *fmt, va_list ap)
{
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	exit(1);
}

/* What run_loader.c and run_linux.c report errors with. */
void vmctl_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---- the KVM side: a VMM for one Linux guest, in the child ---------------- */

struct kv_vm {
	int vm_fd;
	int ncpus;
	size_t run_size;
	struct run_uart uart;
	struct run_pc pc;
	pthread_mutex_t irq_lock;
	bool uart_irq;		/* the level KVM last got: irq_lock */
};

struct kv_vcpu {
	struct kv_vm *vm;
	int id, fd;
	struct kvm_run *run;
	pthread_t thread;
};

/* As run.c's run_uart_irq_sync(): the UART's line to GSI 4. */
static void kv_uart_irq_sync(struct kv_vm *v)
{
	struct kvm_irq_level irq = { .irq = RUN_UART_IRQ };
	bool level;

	pthread_mutex_lock(&v->irq_lock);
	level = run_uart_irq(&v->uart);
	if (level != v->uart_irq) {
		irq.level = level;
		if (ioctl(v->vm_fd, KVM_IRQ_LINE, &irq))
			die("kvm: KVM_IRQ_LINE %d: %s", RUN_UART_IRQ,
			    strerror(errno));
		v->uart_irq = level;
	}
	pthread_mutex_unlock(&v->irq_lock);
}

/*
 * One element of port I/O, as run.c's run_pio() does it for a Linux
 * guest; the PIC and the PIT are KVM's (KVM_CREATE_IRQCHIP, _PIT2).
 */
static void kv_pio(struct kv_vm *v, uint16_t port, bool out, uint8_t *data,
		   unsigned int size)
{
	enum run_pc_result r = RUN_PC_OK;
	struct timespec ts;
	uint32_t val = 0;
	unsigned int i;

	if (port >= RUN_UART_BASE && port + size <= RUN_UART_BASE + 8) {
		for (i = 0; i < size; i++) {
			if (!out)
				data[i] = run_uart_in(&v->uart,
						      port + i - RUN_UART_BASE);
			else if (!run_uart_out(&v->uart,
					       port + i - RUN_UART_BASE,
					       data[i]))
				exit(RUN_EXIT_RUNTIME);	/* the pipe is gone */
		}
		return;
	}
	switch (port) {
	case PORT_DEBUG_EXIT:
		if (!out) {
			memset(data, 0, size);
			return;
		}
		memcpy(&val, data, size < 4 ? size : 4);
		exit(((val << 1) | 1) & 0xff);
	case PORT_POST:
		if (!out)
			memset(data, 0xff, size);
		return;
	case PORT_PMTMR:
		if (out)
			return;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		val = (uint64_t)ts.tv_sec * PMTMR_HZ +
		      (uint64_t)ts.tv_nsec * PMTMR_HZ / 1000000000ULL;
		memcpy(data, &val, size < 4 ? size : 4);
		return;
	}
	pthread_mutex_lock(&v->pc.lock);
	for (i = 0; i < size && (r == RUN_PC_OK || r == RUN_PC_NOT_MINE); i++) {
		r = run_pc_io(&v->pc, port + i, out, &data[i], now_ns(),
			      time(NULL));
		if (r == RUN_PC_NOT_MINE && !out)
			data[i] = 0xff;
	}
	pthread_mutex_unlock(&v->pc.lock);
	if (r == RUN_PC_RESET)
		exit(RUN_EXIT_RESET);
	if (r == RUN_PC_POWEROFF)
		exit(RUN_EXIT_POWEROFF);
}

static void *kv_vcpu_thread(void *arg)
{
	struct kv_vcpu *c = arg;
	struct kvm_run *run = c->run;
	uint8_t *data;
	unsigned int i;

	for (;;) {
		if (ioctl(c->fd, KVM_RUN, 0)) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("kvm: vCPU %d: KVM_RUN: %s", c->id,
			    strerror(errno));
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			data = (uint8_t *)run + run->io.data_offset;
			for (i = 0; i < run->io.count; i++)
				kv_pio(c->vm, run->io.port,
				       run->io.direction == KVM_EXIT_IO_OUT,
				       data + i * run->io.size, run->io.size);
			if (run->io.port >= RUN_UART_BASE &&
			    run->io.port < RUN_UART_BASE + 8)
				kv_uart_irq_sync(c->vm);
			break;
		case KVM_EXIT_MMIO:
			/*
			 * Nothing there (vmctl run would stop; Linux touches
			 * nothing outside lvmm's APICs): reads give all ones.
			 */
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0xff,
				       sizeof(run->mmio.data));
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_SHUTDOWN:
			die("kvm: vCPU %d: guest shutdown (triple fault)",
			    c->id);
		case KVM_EXIT_SYSTEM_EVENT:
			exit(RUN_EXIT_RESET);
		default:
			die("kvm: vCPU %d: unhandled exit reason %u", c->id,
			    run->exit_reason);
		}
	}
	return NULL;
}

static void kv_seg(struct kvm_segment *s, uint16_t sel, uint8_t type,
		   bool l, bool db)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->s = 1;
	s->present = 1;
	s->l = l;
	s->db = db;
	s->g = 1;
}

/* The boot processor as run.c's run_vcpu_setup() sets it for Linux. */
static void kv_bsp_setup(int fd, const struct run_image *img)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	if (ioctl(fd, KVM_GET_SREGS, &s))
		die("kvm: KVM_GET_SREGS: %s", strerror(errno));
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.limit = 0x67;
	s.tr.type = 11;		/* busy TSS */
	s.tr.present = 1;
	s.gdt.base = RUN_GDT_GPA;
	s.gdt.limit = 4 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	kv_seg(&s.cs, RUN_LINUX_SEL_CODE, 11, true, false);
	kv_seg(&s.ds, RUN_LINUX_SEL_DATA, 3, false, true);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s.cr3 = RUN_PML4_GPA;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	s.efer = EFER_LME | EFER_LMA;
	if (ioctl(fd, KVM_SET_SREGS, &s))
		die("kvm: KVM_SET_SREGS: %s", strerror(errno));
	memset(&r, 0, sizeof(r));
	r.rflags = 0x2;
	r.rsi = RUN_LINUX_BOOT_PARAMS_GPA;
	r.rsp = RUN_STACK_TOP;
	r.rip = img->entry;
	if (ioctl(fd, KVM_SET_REGS, &r))
		die("kvm: KVM_SET_REGS: %s", strerror(errno));
}

/* The supported CPUID, as QEMU gives it, with vCPU @id's APIC ID. */
static struct kvm_cpuid2 *kv_cpuid(int kvm_fd, int id)
{
	struct kvm_cpuid_entry2 *e;
	struct kvm_cpuid2 *c;
	unsigned int i, n = 256;

	c = calloc(1, sizeof(*c) + n * sizeof(*e));
	if (!c)
		die("out of memory");
	c->nent = n;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c))
		die("kvm: KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	for (i = 0; i < c->nent; i++) {
		e = &c->entries[i];
		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x00ffffff) | (uint32_t)id << 24;
			/* x2APIC, TSC-deadline, hypervisor */
			e->ecx |= 1u << 21 | 1u << 24 | 1u << 31;
			break;
		case 0xb:
		case 0x1f:
			e->edx = id;
			break;
		case 0x8000001e:
			e->eax = id;
			break;
		}
	}
	return c;
}

static int kvm_child(int ncpus, uint64_t mem_size, const char *kernel,
		     const char *initrd, const char *cmdline)
{
	struct kvm_userspace_memory_region m = { .slot = 0 };
	struct kvm_pit_config pit = { .flags = 0 };
	struct run_image img;
	struct kv_vcpu *c;
	struct kv_vm v;
	unsigned char *mem;
	int kvm_fd, i, tries;

	memset(&img, 0, sizeof(img));
	if (run_blob_read(&img.blob, kernel) || run_image_parse(&img, false))
		exit(RUN_EXIT_SETUP);
	if (!img.is_linux)
		die("%s: not a Linux bzImage", kernel);
	if (run_blob_read(&img.lx.initrd, initrd) ||
	    run_layout(&img, NULL, 0, cmdline, mem_size))
		exit(RUN_EXIT_SETUP);

	memset(&v, 0, sizeof(v));
	v.ncpus = ncpus;
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		die("kvm: open /dev/kvm: %s (run kvm-load)", strerror(errno));
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0 ||
	    ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_PIT2) <= 0)
		die("kvm: no KVM_CAP_IRQCHIP or KVM_CAP_PIT2");
	v.run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)v.run_size <= 0)
		die("kvm: KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	/* lvmm's VM of the boot before may take a moment to go. */
	for (tries = 0;; tries++) {
		v.vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
		if (v.vm_fd >= 0 || errno != EBUSY || tries == 50)
			break;
		usleep(100000);
	}
	if (v.vm_fd < 0)
		die("kvm: KVM_CREATE_VM: %s (lvmm has VMs?)", strerror(errno));
	if (ioctl(v.vm_fd, KVM_CREATE_IRQCHIP, 0))
		die("kvm: KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(v.vm_fd, KVM_CREATE_PIT2, &pit))
		die("kvm: KVM_CREATE_PIT2: %s", strerror(errno));
	mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("kvm: mmap of %" PRIu64 " MiB: %s", mem_size >> 20,
		    strerror(errno));
	/* As QEMU backs guest RAM: transparent huge pages where it can. */
	madvise(mem, mem_size, MADV_HUGEPAGE);
	m.memory_size = mem_size;
	m.userspace_addr = (uintptr_t)mem;
	if (ioctl(v.vm_fd, KVM_SET_USER_MEMORY_REGION, &m))
		die("kvm: KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	/*
	 * KVM's I/O APIC is there: the MP table and the ACPI tables list
	 * it, as run.c's run_create() does for lvmm's.
	 */
	run_install(mem, mem_size, &img, NULL, 0, cmdline, ncpus, true);
	run_linux_set_rsdp(mem, run_acpi_install(mem, ncpus, true));

	run_uart_init(&v.uart, STDOUT_FILENO);
	run_pc_init(&v.pc);
	pthread_mutex_init(&v.pc.lock, NULL);
	pthread_mutex_init(&v.irq_lock, NULL);
	c = calloc(ncpus, sizeof(*c));
	if (!c)
		die("out of memory");
	for (i = 0; i < ncpus; i++) {
		struct kvm_cpuid2 *cpuid = kv_cpuid(kvm_fd, i);

		c[i].vm = &v;
		c[i].id = i;
		c[i].fd = ioctl(v.vm_fd, KVM_CREATE_VCPU, i);
		if (c[i].fd < 0)
			die("kvm: KVM_CREATE_VCPU %d: %s", i, strerror(errno));
		c[i].run = mmap(NULL, v.run_size, PROT_READ | PROT_WRITE,
				MAP_SHARED, c[i].fd, 0);
		if (c[i].run == MAP_FAILED)
			die("kvm: mmap of vCPU %d: %s", i, strerror(errno));
		if (ioctl(c[i].fd, KVM_SET_CPUID2, cpuid))
			die("kvm: KVM_SET_CPUID2: %s", strerror(errno));
		free(cpuid);
		/* The APs wait for INIT and SIPI in KVM's local APIC. */
		if (!i)
			kv_bsp_setup(c[i].fd, &img);
	}
	for (i = 0; i < ncpus; i++)
		if (pthread_create(&c[i].thread, NULL, kv_vcpu_thread, &c[i]))
			die("kvm: cannot start vCPU %d's thread", i);
	/* The threads end the process: the parent kills it at init. */
	for (i = 0; i < ncpus; i++)
		pthread_join(c[i].thread, NULL);
	return 0;
}

/* ---- a boot, seen from the parent ----------------------------------------- */

struct boot {
	const char *what;	/* for messages: "lvmm 2 vCPUs" */
	pid_t pid;
	int fd;			/* the child's console and stderr */
	uint64_t t0;		/* when it was forked */
	char line[4096];
	size_t len;
	char pend[4096];	/* read, not yet looked at */
	size_t npend;
	char tail[TAIL_LINES][160];	/* the last lines, for errors */
	unsigned int ntail;
};

static const char *vmctl_path = "vmctl";
static const char *self_path;
static char kernel[PATH_MAX], initrd[PATH_MAX];
static unsigned int mem_mib = 256, timeout_s = 180;

static void boot_start(struct boot *b, const char *what, char *const argv[])
{
	int p[2], null;

	memset(b, 0, sizeof(*b));
	b->what = what;
	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	b->t0 = now_ns();
	b->pid = fork();
	if (b->pid < 0)
		die("fork: %s", strerror(errno));
	if (!b->pid) {
		null = open("/dev/null", O_RDONLY);
		if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0 ||
		    dup2(p[1], 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, PROG ": cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	close(p[1]);
	b->fd = p[0];
}

/* Kill the child and reap it; SIGKILL if SIGTERM is not enough in 5 s. */
static int boot_stop(struct boot *b)
{
	uint64_t end;
	int st = 0;
	pid_t r;

	if (b->pid <= 0)
		return 0;
	kill(b->pid, SIGTERM);
	kill(b->pid, SIGCONT);
	end = now_ns() + 5000000000ULL;
	while ((r = waitpid(b->pid, &st, WNOHANG)) == 0 && now_ns() < end)
		usleep(10000);
	if (r == 0) {
		kill(b->pid, SIGKILL);
		r = waitpid(b->pid, &st, 0);
	}
	b->pid = 0;
	close(b->fd);
	return st;
}

static struct boot *cur_boot;

static void boot_cleanup(void)
{
	if (cur_boot)
		boot_stop(cur_boot);
}

static void on_signal(int sig)
{
	(void)sig;
	if (cur_boot && cur_boot->pid > 0)
		kill(cur_boot->pid, SIGKILL);
	_exit(1);
}

static void __attribute__((noreturn))
boot_fail(struct boot *b, const char *why)
{
	unsigned int i, n = b->ntail < TAIL_LINES ? b->ntail : TAIL_LINES;
	int st;

	cur_boot = NULL;
	st = boot_stop(b);
	fprintf(stderr, PROG ": %s: %s; its last %u lines of console:\n",
		b->what, why, n);
	for (i = b->ntail - n; i < b->ntail; i++)
		fprintf(stderr, "  | %s\n", b->tail[i % TAIL_LINES]);
	if (WIFEXITED(st))
		fprintf(stderr, PROG ": %s: it ended with status %d\n",
			b->what, WEXITSTATUS(st));
	exit(1);
}

/*
 * Read the console until a line that starts with @prefix; returns when
 * it came (now_ns()), and the line in b->line.  A child that ends first,
 * or no such line in -t seconds, is fatal.
 */
static uint64_t boot_wait(struct boot *b, const char *prefix,
			  unsigned int extra_s)
{
	uint64_t deadline = now_ns() + (timeout_s + extra_s) * 1000000000ULL;
	struct pollfd pfd = { .fd = b->fd, .events = POLLIN };
	uint64_t now = now_ns();
	char why[64];
	size_t i, keep;
	ssize_t n;
	int r;

	for (;;) {
		for (i = 0; i < b->npend; i++) {
			char ch = b->pend[i];

			if (ch == '\r')
				continue;
			if (ch != '\n') {
				if (b->len < sizeof(b->line) - 1)
					b->line[b->len++] = ch;
				continue;
			}
			b->line[b->len] = 0;
			keep = b->len < sizeof(b->tail[0]) ? b->len :
			       sizeof(b->tail[0]) - 1;
			memcpy(b->tail[b->ntail % TAIL_LINES], b->line, keep);
			b->tail[b->ntail++ % TAIL_LINES][keep] = 0;
			b->len = 0;
			if (!strncmp(b->line, prefix, strlen(prefix))) {
				/* The rest waits for the next call. */
				b->npend -= i + 1;
				memmove(b->pend, b->pend + i + 1, b->npend);
				return now;
			}
		}
		b->npend = 0;
		now = now_ns();
		if (now >= deadline) {
			snprintf(why, sizeof(why), "no '%.30s' in %u s", prefix,
				 timeout_s + extra_s);
			boot_fail(b, why);
		}
		r = poll(&pfd, 1, (deadline - now) / 1000000 + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("poll: %s", strerror(errno));
		if (!r)
			continue;
		n = read(b->fd, b->pend, sizeof(b->pend));
		/* When the line came: the read that brought its end. */
		now = now_ns();
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			boot_fail(b, "the console closed: it ended before the line");
		b->npend = n;
	}
}

/* Start a boot of @ncpus vCPUs on lvmm or KVM, with @append. */
static void boot_guest(struct boot *b, bool kvm, int ncpus,
		       const char *append, const char *name)
{
	static char what[64], cpus[8], mem[16];
	char *lv[] = {
		(char *)vmctl_path, "run", "--cpus", cpus, "--mem", mem,
		"--kernel", kernel, "--initrd", initrd, "--append",
		(char *)append, NULL, NULL, NULL,
	};
	char *kv[] = {
		(char *)self_path, "--kvm-child", cpus, mem, kernel, initrd,
		(char *)append, NULL,
	};

	snprintf(what, sizeof(what), "%s %d vCPU%s", kvm ? "kvm" : "lvmm",
		 ncpus, ncpus > 1 ? "s" : "");
	snprintf(cpus, sizeof(cpus), "%d", ncpus);
	snprintf(mem, sizeof(mem), "%uM", mem_mib);
	if (name) {
		lv[12] = "--name";
		lv[13] = (char *)name;
	}
	boot_start(b, what, kvm ? kv : lv);
	cur_boot = b;
}

static void boot_end(struct boot *b)
{
	cur_boot = NULL;
	boot_stop(b);
}

/*
 * "vmctl stat NAME", shown indented; returns its total of exits, or -1
 * if it could not be read.
 */
static long long show_exits(const char *name)
{
	char *argv[] = { (char *)vmctl_path, "stat", (char *)name, NULL };
	long long total = -1;
	char line[512];
	struct boot s;
	FILE *f;
	int st;

	boot_start(&s, "vmctl stat", argv);
	f = fdopen(s.fd, "r");
	if (!f)
		die("fdopen: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		printf("  %s", line);
		if (!strncmp(line, "exits ", 6))
			sscanf(line + 6, "%lld", &total);
	}
	fclose(f);
	waitpid(s.pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return total;
}

/* One boot to init; returns its time in seconds. */
static double boot_once(bool kvm, int ncpus, bool exits, long long *nexits)
{
	struct boot b;
	uint64_t t;

	boot_guest(&b, kvm, ncpus, CMDLINE, exits ? VM_NAME : NULL);
	t = boot_wait(&b, MARKER, 0);
	if (exits) {
		/* Hold the vCPUs at init, so the counts are those to init. */
		kill(b.pid, SIGSTOP);
		printf("\nlvmm's exits up to init, %d vCPUs (vmctl stat):\n",
		       ncpus);
		*nexits = show_exits(VM_NAME);
		printf("\n");
	}
	boot_end(&b);
	return (t - b.t0) / 1e9;
}

/*
 * The guest's and this host's clocks over the guest's sleep of @secs.  The
 * guest prints DRIFT_SAMPLES readings before its sleep and as many after;
 * of each group the one that came here soonest after the guest read it
 * (the least host time less guest time, as NTP picks its samples) is
 * used, so that the console's delays, which a loaded host varies, count
 * as little as they can.
 */
/* Host time less guest time of reading @i, in ms (from some epoch). */
static double delay_ms(const uint64_t *h, const unsigned long long *g, int i)
{
	return (int64_t)(h[i] - g[i]) / 1e6;
}

static double drift_once(bool kvm, unsigned int secs)
{
	char append[sizeof(CMDLINE) + 32], cs[32];
	unsigned long long g[2 * DRIFT_SAMPLES];
	uint64_t h[2 * DRIFT_SAMPLES];
	int i, k, best[2] = { 0, DRIFT_SAMPLES };
	int worst[2] = { 0, DRIFT_SAMPLES };
	struct boot b;
	double dg, dh;

	snprintf(append, sizeof(append), "%s lvmm.drift=%u", CMDLINE, secs);
	boot_guest(&b, kvm, 2, append, NULL);
	boot_wait(&b, DRIFT_CS, 0);
	snprintf(cs, sizeof(cs), "%.31s", b.line + strlen(DRIFT_CS));
	for (i = 0; i < 2 * DRIFT_SAMPLES; i++) {
		h[i] = boot_wait(&b, DRIFT_TAG, secs);
		if (sscanf(b.line + strlen(DRIFT_TAG), "%llu", &g[i]) != 1)
			boot_fail(&b, "a drift-clock line without a number");
		k = i / DRIFT_SAMPLES;
		if (delay_ms(h, g, i) < delay_ms(h, g, best[k]))
			best[k] = i;
		if (delay_ms(h, g, i) > delay_ms(h, g, worst[k]))
			worst[k] = i;
	}
	boot_end(&b);
	dg = (double)(g[best[1]] - g[best[0]]);
	dh = (double)(h[best[1]] - h[best[0]]);
	printf("drift %-4s guest %.6f s, host %.6f s over a sleep of %u s: %+.4f%%",
	       kvm ? "kvm" : "lvmm", dg / 1e9, dh / 1e9, secs,
	       (dg - dh) / dh * 100);
	/* How much the console's delay varied, in each group. */
	printf(" (guest clocksource %s; delay spread %.1f and %.1f ms)\n", cs,
	       delay_ms(h, g, worst[0]) - delay_ms(h, g, best[0]),
	       delay_ms(h, g, worst[1]) - delay_ms(h, g, best[1]));
	return fabs(dg - dh) / dh * 100;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, unsigned int n, double *min)
{
	double t[MAX_ROUNDS];

	memcpy(t, v, n * sizeof(*v));
	qsort(t, n, sizeof(*t), cmp_double);
	*min = t[0];
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: " PROG " [-r ROUNDS] [-d SECONDS] [-g DIR] [-m MIB] [-t SECONDS] [-K]\n"
		"  -r N   rounds of lvmm and KVM boots, 1 and 2 vCPUs (default 3,\n"
		"         at most %d; 0: only the drift)\n"
		"  -d S   the clock-drift boot's sleep (default 60, or\n"
		"         $LVMM_BENCH_LINUX_DRIFT; 0 leaves the drift out)\n"
		"  -g DIR the guest: DIR/vmlinuz, DIR/initrd.cpio (default\n"
		"         /linux-guest, from scripts/linux-guest)\n"
		"  -m MIB guest memory (default 256)\n"
		"  -t S   seconds a boot has to reach init (default 180)\n"
		"  -K     no drift on KVM\n"
		"vmctl is $VMCTL, or vmctl in PATH\n", MAX_ROUNDS);
	exit(2);
}

int main(int argc, char **argv)
{
	static const char *const side[2] = { "lvmm", "kvm" };
	double smp[2][2][MAX_ROUNDS], med[2][2], lo[2][2], dl = -1, dk = -1;
	unsigned int rounds = 3, drift = 60, r, k, m;
	const char *dir = "/linux-guest", *e;
	char what[64];
	long long nexits = -1;
	bool kvm_drift = true;
	struct sigaction sa;
	int c;

	if (argc == 7 && !strcmp(argv[1], "--kvm-child"))
		return kvm_child(atoi(argv[2]),
				 strtoull(argv[3], NULL, 0) << 20, argv[4],
				 argv[5], argv[6]);
	e = getenv("LVMM_BENCH_LINUX_DRIFT");
	if (e && *e)
		drift = strtoul(e, NULL, 0);
	while ((c = getopt(argc, argv, "r:d:g:m:t:Kh")) != -1) {
		switch (c) {
		case 'r':
			rounds = strtoul(optarg, NULL, 0);
			if (rounds > MAX_ROUNDS)
				die("-r: 0..%d", MAX_ROUNDS);
			break;
		case 'd':
			drift = strtoul(optarg, NULL, 0);
			break;
		case 'g':
			dir = optarg;
			break;
		case 'm':
			mem_mib = strtoul(optarg, NULL, 0);
			if (mem_mib < 64 || mem_mib > 3072)
				die("-m: 64..3072 (MiB)");
			break;
		case 't':
			timeout_s = strtoul(optarg, NULL, 0);
			if (!timeout_s)
				die("-t: at least 1 second");
			break;
		case 'K':
			kvm_drift = false;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (drift > 3600)
		die("-d: at most 3600 seconds");
	e = getenv("VMCTL");
	if (e && *e)
		vmctl_path = e;
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", dir);
	snprintf(initrd, sizeof(initrd), "%s/initrd.cpio", dir);
	if (access(kernel, R_OK) || access(initrd, R_OK))
		die("no %s or %s: stage the guest with scripts/linux-guest",
		    kernel, initrd);
	if (access("/dev/lvmm", R_OK | W_OK))
		die("/dev/lvmm: %s (is lvmm.ko loaded?)", strerror(errno));
	if (access("/dev/kvm", R_OK | W_OK))
		die("/dev/kvm: %s (run kvm-load)", strerror(errno));
	self_path = "/proc/self/exe";

	atexit(boot_cleanup);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("guest %s, %s, %u MiB, command line \"%s\"; %u rounds, a boot is fork() to \"%s\"\n",
	       kernel, initrd, mem_mib, CMDLINE, rounds, MARKER);
	for (r = 0; r < rounds; r++) {
		for (m = 0; m < 2; m++) {
			for (k = 0; k < 2; k++) {
				/* lvmm then KVM, then KVM then lvmm, ... */
				unsigned int s = r % 2 ? 1 - k : k;
				bool ex = !r && m == 1 && s == 0;

				smp[s][m][r] = boot_once(s, m + 1, ex,
							 &nexits);
				printf("run %u %-4s linux_boot_%uvcpu %7.3f s\n",
				       r + 1, side[s], m + 1, smp[s][m][r]);
			}
		}
	}
	if (drift) {
		dl = drift_once(false, drift);
		if (kvm_drift)
			dk = drift_once(true, drift);
	}

	if (!rounds)
		goto drift_only;
	for (k = 0; k < 2; k++)
		for (m = 0; m < 2; m++)
			med[k][m] = median(smp[k][m], rounds, &lo[k][m]);
	printf("\nLinux to its init, lvmm (vmctl run) vs KVM (the same loader), same boot\n"
	       "(QEMU TCG: absolute times are the emulator's, compare ratios); s, %u boots per side\n\n",
	       rounds);
	printf("%-17s %-30s %8s %8s %8s %8s %8s\n", "row", "what",
	       "lvmm min", "lvmm med", "KVM min", "KVM med", "lvmm/KVM");
	for (m = 0; m < 2; m++) {
		snprintf(what, sizeof(what), "fork to init, %u vCPU%s, %u MiB",
			 m + 1, m ? "s" : "", mem_mib);
		printf("linux_boot_%uvcpu  %-30s %8.3f %8.3f %8.3f %8.3f %7.2fx\n",
		       m + 1, what, lo[0][m], med[0][m], lo[1][m], med[1][m],
		       med[0][m] / med[1][m]);
	}
	printf("\n");
	for (m = 0; m < 2; m++)
		printf("ratio linux_boot_%uvcpu %.2f\n", m + 1,
		       med[0][m] / med[1][m]);
	if (nexits >= 0)
		printf("metric linux_boot_exits %lld\n", nexits);
	else
		printf("(lvmm's exit counts could not be read: no linux_boot_exits)\n");
drift_only:
	if (dl >= 0)
		printf("metric linux_clock_drift_pct %.4f\n", dl);
	if (dk >= 0)
		printf("metric linux_clock_drift_kvm_pct %.4f\n", dk);
	return nexits >= 0 || !rounds ? 0 : 1;
}
