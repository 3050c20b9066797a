// SPDX-License-Identifier: GPL-2.0
/*
 * lvmm-irq-bench: the in-kernel local APIC (Documentation/irqchip.rst) of
 * lvmm against KVM's (KVM_CREATE_IRQCHIP), the same guest code
 * (irq-guest.S) on both, in alternating rounds in one process.  Run by
 * scripts/bench in the --smp 1 sandbox.
 *
 *   lvmm-irq-bench [-r ROUNDS] [-n SHOTS] [-d US] [-P]
 *
 * Rows (each sample is one shot, in microseconds of the guest's TSC):
 *   timer_latency_us
 *       vCPU 0 arms the TSC-deadline timer (x2APIC, MSR 0x6e0) for now +
 *       -d us (default 200) and waits in "sti; hlt"; the sample is the TSC
 *       read first thing in the interrupt handler less the deadline.
 *   ipi_us
 *       vCPU 0 reads the TSC, sends a fixed IPI to vCPU 1 (x2APIC ICR)
 *       and waits in "sti; hlt"; vCPU 1, waiting in "sti; hlt", EOIs and
 *       sends a fixed IPI back; the sample is the TSC in vCPU 0's handler
 *       less the first.  Both receivers halt, so it counts two wake-ups
 *       and, in the --smp 1 sandbox, two switches between the vCPU
 *       threads on the one CPU.
 *
 * The guest learns the deadline in TSC ticks from the VMM; the TSC's rate
 * is measured here against CLOCK_MONOTONIC (both hypervisors give the
 * guest the host's TSC, unscaled).  KVM's vCPUs get the supported CPUID
 * with x2APIC and TSC-deadline set, as QEMU does; vCPU 1 is made
 * runnable with LVMM_SET_MP_STATE / KVM_SET_MP_STATE instead of INIT and
 * SIPI.  Each round runs lvmm, lvmm with halt_poll_ns=0 (its module
 * parameter, set back afterwards; -P leaves it out) and KVM, reversing the
 * order every other round; each run takes -n shots (default 100) after 5
 * that warm up.  Prints the runs, a table of medians, then
 *   ratio timer_latency_us X      lvmm median / KVM median (< 1: faster)
 *   ratio ipi_us X
 *   metric halt_poll_timer R      lvmm default halt_poll_ns over 0:
 *   metric halt_poll_ipi R          below 1, halt-polling pays
 *
 * Every run is checked (its exits, an exception in the guest, each shot
 * recorded) so that a broken run prints an error, never a number.  A
 * timer interrupt before its deadline is counted and shown, not hidden,
 * and so are the wake-ups the emulator loses (watchdog_thread()), which
 * hit lvmm and KVM alike.  A run stuck for a minute shows its vCPU's
 * state and ends the program.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <x86intrin.h>
#include <linux/kvm.h>

#include "bench-util.h"
#include "irq-guest.h"

#define MEM_SIZE	(2u << 20)	/* slot 0 at GPA 0 */
#define WARMUP		5		/* shots of each run not counted */
#define MAX_ROUNDS	20

#define HALT_POLL_PATH	"/sys/module/lvmm/parameters/halt_poll_ns"

const char *const bench_name = "lvmm-irq-bench";

/* ---- one VM of either hypervisor ------------------------------------------ */

struct hv {
	bool kvm;
	unsigned int nr_vcpus;
	uint8_t *mem;
	/* lvmm */
	struct lvmm_vm_handle lvm;
	struct lvmm_vcpu_handle lvcpu[2];
	/* KVM */
	int vm_fd, vcpu_fd[2];
	struct kvm_run *krun[2];
	size_t krun_size;
};

static int lvmm_dev = -1, kvm_dev = -1;
static struct kvm_cpuid2 *kvm_cpuid;

static void lvmm_open_dev(void)
{
	lvmm_dev = lvmm_open();
	if (lvmm_dev < 0)
		die("open %s: %s (is lvmm.ko loaded?)", LVMM_DEV_PATH,
		    strerror(-lvmm_dev));
	if (lvmm_check_extension(lvmm_dev, LVMM_CAP_IRQCHIP) <= 0)
		die("lvmm has no LVMM_CAP_IRQCHIP: the in-kernel APIC is needed");
}

/* The supported CPUID with x2APIC and TSC-deadline, as QEMU sets it. */
static void kvm_open_dev(void)
{
	struct kvm_cpuid_entry2 *e = NULL;
	unsigned int i, n = 256;

	kvm_dev = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_dev < 0)
		die("open /dev/kvm: %s (run kvm-load)", strerror(errno));
	if (ioctl(kvm_dev, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		die("KVM_GET_API_VERSION: not %d", KVM_API_VERSION);
	if (ioctl(kvm_dev, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0 ||
	    ioctl(kvm_dev, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) <= 0)
		die("KVM lacks KVM_CAP_IRQCHIP or KVM_CAP_TSC_DEADLINE_TIMER");
	kvm_cpuid = calloc(1, sizeof(*kvm_cpuid) + n * sizeof(*e));
	if (!kvm_cpuid)
		die("out of memory");
	kvm_cpuid->nent = n;
	if (ioctl(kvm_dev, KVM_GET_SUPPORTED_CPUID, kvm_cpuid))
		die("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	for (i = 0; i < kvm_cpuid->nent; i++)
		if (kvm_cpuid->entries[i].function == 1)
			e = &kvm_cpuid->entries[i];
	if (!e)
		die("KVM_GET_SUPPORTED_CPUID: no leaf 1");
	e->ecx |= 1u << 21 | 1u << 24;	/* x2APIC, TSC-deadline */
}

/* The descriptor tables, the code and the orders, in guest memory. */
static void guest_fill(uint8_t *mem, uint32_t mode, uint32_t shots,
		       uint32_t delta)
{
	static const uint64_t gdt[] = {
		0, 0x00cf9b000000ffffULL, 0x00cf93000000ffffULL,
	};
	uint32_t *idt = (uint32_t *)(mem + IRQ_IDT_GPA);
	unsigned int v;

	memcpy(mem + IRQ_GDT_GPA, gdt, sizeof(gdt));
	memcpy(mem + IRQ_CODE_GPA, irq_guest_code,
	       irq_guest_end - irq_guest_code);
	for (v = 0; v < 256; v++) {
		const uint8_t *h = v == IRQ_VEC_RECORD ? irq_guest_record :
				   v == IRQ_VEC_PONG ? irq_guest_pong_irq :
				   v == IRQ_VEC_NUDGE ? irq_guest_nudge :
				   v == IRQ_VEC_SPURIOUS ? irq_guest_spurious :
				   irq_guest_fault;
		uint32_t a = IRQ_CODE_GPA + (h - irq_guest_code);

		/* A 32-bit interrupt gate to CS 0x08. */
		idt[2 * v] = (a & 0xffff) | 0x08 << 16;
		idt[2 * v + 1] = (a & 0xffff0000) | 0x8e00;
	}
	*(uint32_t *)(mem + IRQ_MODE_GPA) = mode;
	*(uint32_t *)(mem + IRQ_SHOTS_GPA) = shots;
	*(uint32_t *)(mem + IRQ_DELTA_GPA) = delta;
}

static void lv_setup(struct hv *h)
{
	struct lvmm_sregs s;
	struct lvmm_regs regs;
	unsigned int i;
	void *p;
	int r;

	r = lvmm_vm_create(lvmm_dev, NULL, &h->lvm);
	if (r)
		die("LVMM_CREATE_VM: %s (KVM has VMs?)", strerror(-r));
	r = lvmm_create_irqchip(&h->lvm);
	if (r)
		die("LVMM_CREATE_IRQCHIP: %s", strerror(-r));
	r = lvmm_set_memslot(&h->lvm, 0, 0, 0, MEM_SIZE) ?:
	    lvmm_memslot_map(&h->lvm, 0, MEM_SIZE, PROT_READ | PROT_WRITE, &p);
	if (r)
		die("LVMM_SET_MEMSLOT/mmap: %s", strerror(-r));
	h->mem = p;
	for (i = 0; i < h->nr_vcpus; i++) {
		r = lvmm_vcpu_create(&h->lvm, i, &h->lvcpu[i]);
		if (r)
			die("LVMM_CREATE_VCPU %u: %s", i, strerror(-r));
		/* An AP waits for SIPI: start it here instead. */
		r = i ? lvmm_set_mp_state(&h->lvcpu[i], LVMM_MP_STATE_RUNNABLE)
		      : 0;
		r = r ?: lvmm_get_sregs(&h->lvcpu[i], &s);
		if (r)
			die("vCPU %u: LVMM_SET_MP_STATE/GET_SREGS: %s", i,
			    strerror(-r));
		lvmm_seg_flat(&s.cs, 0x08, 0xb, false, true);
		lvmm_seg_flat(&s.ds, 0x10, 0x3, false, true);
		s.es = s.fs = s.gs = s.ss = s.ds;
		s.gdt.base = IRQ_GDT_GPA;
		s.gdt.limit = 3 * 8 - 1;
		s.idt.base = IRQ_IDT_GPA;
		s.idt.limit = 256 * 8 - 1;
		s.cr0 = X86_CR0_PE | X86_CR0_ET;
		s.cr4 = 0;
		s.efer = 0;
		memset(&regs, 0, sizeof(regs));
		regs.rip = IRQ_CODE_GPA;
		regs.rsp = i ? IRQ_STACK1 : IRQ_STACK0;
		regs.rsi = i ? IRQ_ROLE_PONG : IRQ_ROLE_MAIN;
		regs.rflags = 2;
		r = lvmm_set_sregs(&h->lvcpu[i], &s) ?:
		    lvmm_set_regs(&h->lvcpu[i], &regs);
		if (r)
			die("vCPU %u: LVMM_SET_SREGS/REGS: %s", i,
			    strerror(-r));
	}
}

static void kv_flat(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->s = 1;
	s->present = 1;
	s->db = 1;
	s->g = 1;
}

static void kv_setup(struct hv *h)
{
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_userspace_memory_region m = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
	};
	struct kvm_sregs s;
	struct kvm_regs regs;
	unsigned int i;
	int fd;

	h->krun_size = ioctl(kvm_dev, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)h->krun_size <= 0)
		die("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	h->vm_fd = ioctl(kvm_dev, KVM_CREATE_VM, 0);
	if (h->vm_fd < 0)
		die("KVM_CREATE_VM: %s (lvmm has VMs?)", strerror(errno));
	if (ioctl(h->vm_fd, KVM_CREATE_IRQCHIP, 0))
		die("KVM_CREATE_IRQCHIP: %s", strerror(errno));
	h->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->mem == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	m.userspace_addr = (uintptr_t)h->mem;
	if (ioctl(h->vm_fd, KVM_SET_USER_MEMORY_REGION, &m))
		die("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	for (i = 0; i < h->nr_vcpus; i++) {
		fd = ioctl(h->vm_fd, KVM_CREATE_VCPU, i);
		if (fd < 0)
			die("KVM_CREATE_VCPU %u: %s", i, strerror(errno));
		h->vcpu_fd[i] = fd;
		h->krun[i] = mmap(NULL, h->krun_size, PROT_READ | PROT_WRITE,
				  MAP_SHARED, fd, 0);
		if (h->krun[i] == MAP_FAILED)
			die("mmap of KVM vCPU %u: %s", i, strerror(errno));
		if (ioctl(fd, KVM_SET_CPUID2, kvm_cpuid))
			die("KVM_SET_CPUID2: %s", strerror(errno));
		if (i && ioctl(fd, KVM_SET_MP_STATE, &mp))
			die("KVM_SET_MP_STATE: %s", strerror(errno));
		if (ioctl(fd, KVM_GET_SREGS, &s))
			die("KVM_GET_SREGS: %s", strerror(errno));
		kv_flat(&s.cs, 0x08, 0xb);
		kv_flat(&s.ds, 0x10, 0x3);
		s.es = s.fs = s.gs = s.ss = s.ds;
		s.gdt.base = IRQ_GDT_GPA;
		s.gdt.limit = 3 * 8 - 1;
		s.idt.base = IRQ_IDT_GPA;
		s.idt.limit = 256 * 8 - 1;
		s.cr0 = X86_CR0_PE | X86_CR0_ET;
		s.cr4 = 0;
		s.efer = 0;
		memset(&regs, 0, sizeof(regs));
		regs.rip = IRQ_CODE_GPA;
		regs.rsp = i ? IRQ_STACK1 : IRQ_STACK0;
		regs.rsi = i ? IRQ_ROLE_PONG : IRQ_ROLE_MAIN;
		regs.rflags = 2;
		if (ioctl(fd, KVM_SET_SREGS, &s) ||
		    ioctl(fd, KVM_SET_REGS, &regs))
			die("KVM_SET_SREGS/REGS: %s", strerror(errno));
	}
}

static void hv_create(struct hv *h, bool kvm, unsigned int nr_vcpus,
		      uint32_t mode, uint32_t shots, uint32_t delta)
{
	memset(h, 0, sizeof(*h));
	h->kvm = kvm;
	h->nr_vcpus = nr_vcpus;
	if (kvm)
		kv_setup(h);
	else
		lv_setup(h);
	guest_fill(h->mem, mode, shots, delta);
}

static void hv_destroy(struct hv *h)
{
	unsigned int i;

	for (i = 0; i < h->nr_vcpus; i++) {
		if (!h->kvm) {
			lvmm_vcpu_close(&h->lvcpu[i]);
			continue;
		}
		munmap(h->krun[i], h->krun_size);
		close(h->vcpu_fd[i]);
	}
	if (h->kvm) {
		munmap(h->mem, MEM_SIZE);
		close(h->vm_fd);
	} else {
		lvmm_memslot_unmap(h->mem, MEM_SIZE);
		lvmm_vm_close(&h->lvm);
	}
}

/* EIP and ESP of vCPU @i, for messages. */
static void hv_where(struct hv *h, unsigned int i, uint64_t *rip,
		     uint64_t *rsp)
{
	struct lvmm_regs lr;
	struct kvm_regs kr;

	*rip = *rsp = ~0ULL;
	if (h->kvm && !ioctl(h->vcpu_fd[i], KVM_GET_REGS, &kr)) {
		*rip = kr.rip;
		*rsp = kr.rsp;
	} else if (!h->kvm && !lvmm_get_regs(&h->lvcpu[i], &lr)) {
		*rip = lr.rip;
		*rsp = lr.rsp;
	}
}

static volatile sig_atomic_t timed_out;

/* A run that timed out: where vCPU @i is and what its APIC holds. */
static void hv_dump(struct hv *h, unsigned int i, const char *what)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[2];
	} km = { .hdr.nmsrs = 2, .e = { { .index = 0x10 },
					 { .index = 0x6e0 } } };
	struct lvmm_lapic_state ll;
	struct kvm_lapic_state kl;
	struct kvm_mp_state kmp;
	struct lvmm_regs lr;
	struct kvm_regs kr;
	uint64_t rip = 0, rbx = 0, rfl = 0, dl = 0;
	__u64 tsc = 0;
	const uint8_t *a = NULL;
	uint32_t mp = ~0u, *reg;
	unsigned int v = IRQ_VEC_RECORD + (i ? 1 : 0);
	int bad = 0;

	if (h->kvm) {
		bad |= ioctl(h->vcpu_fd[i], KVM_GET_REGS, &kr) ||
		       ioctl(h->vcpu_fd[i], KVM_GET_MP_STATE, &kmp) ||
		       ioctl(h->vcpu_fd[i], KVM_GET_MSRS, &km) != 2 ||
		       ioctl(h->vcpu_fd[i], KVM_GET_LAPIC, &kl);
		rip = kr.rip;
		rbx = kr.rbx;
		rfl = kr.rflags;
		mp = kmp.mp_state;
		tsc = km.e[0].data;
		dl = km.e[1].data;
		a = (const uint8_t *)kl.regs;
	} else {
		bad |= lvmm_get_regs(&h->lvcpu[i], &lr) ||
		       lvmm_get_mp_state(&h->lvcpu[i], &mp) ||
		       lvmm_get_msr(&h->lvcpu[i], 0x10, &tsc) ||
		       lvmm_get_lapic(&h->lvcpu[i], &ll);
		rip = lr.rip;
		rbx = lr.rbx;
		rfl = lr.rflags;
		dl = ll.tsc_deadline;
		a = ll.regs;
	}
	if (bad)
		fprintf(stderr, "(some of the state below could not be read)\n");
	reg = (uint32_t *)(a + 0x200 + v / 32 * 0x10);
	fprintf(stderr,
		"%s: %s: timed out: vCPU %u at rip 0x%llx rflags 0x%llx, shot %llu of %u; mp_state %u; flag %u; guest TSC %llu, deadline written %llu, MSR 0x6e0 %llu; LVTT 0x%x SVR 0x%x; vector 0x%x: IRR %u ISR %u\n",
		h->kvm ? "kvm" : "lvmm", what, i, (unsigned long long)rip,
		(unsigned long long)rfl, (unsigned long long)rbx,
		*(uint32_t *)(h->mem + IRQ_SHOTS_GPA), mp,
		*(uint32_t *)(h->mem + IRQ_FLAG_GPA),
		(unsigned long long)tsc,
		(unsigned long long)*(uint64_t *)(h->mem + IRQ_DEADLINE_GPA),
		(unsigned long long)dl, *(uint32_t *)(a + 0x320),
		*(uint32_t *)(a + 0xf0), v, *reg >> (v % 32) & 1,
		*(uint32_t *)(a + 0x100 + v / 32 * 0x10) >> (v % 32) & 1);
}

/*
 * The nudge (irq-guest.S): vCPU @i's APIC requests IRQ_VEC_NUDGE.  lvmm
 * takes LVMM_INTERRUPT into the in-kernel APIC; KVM refuses
 * KVM_INTERRUPT with its irqchip, so it gets an MSI to APIC ID @i.
 */
static void hv_nudge(struct hv *h, unsigned int i)
{
	struct kvm_msi msi = {
		.address_lo = 0xfee00000 | i << 12,
		.data = IRQ_VEC_NUDGE,
	};
	int r;

	if (h->kvm)
		r = ioctl(h->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
	else
		r = lvmm_interrupt(&h->lvcpu[i], IRQ_VEC_NUDGE);
	if (r < 0)
		die("%s: vCPU %u: the nudge (%s): %s", h->kvm ? "kvm" : "lvmm",
		    i, h->kvm ? "KVM_SIGNAL_MSI" : "LVMM_INTERRUPT",
		    strerror(-r));
}

/*
 * RUN vCPU @i until it OUTs to @port; anything else is fatal.  A RUN
 * that a signal interrupts is the watchdog's nudge, or the alarm's end.
 */
static void hv_run_to(struct hv *h, unsigned int i, unsigned int port,
		      const char *what)
{
	const char *side = h->kvm ? "kvm" : "lvmm";
	unsigned int reason, out_port = 0;
	uint64_t rip, rsp;
	const uint32_t *st;
	int r;

again:
	if (h->kvm) {
		struct kvm_run *run = h->krun[i];

		r = ioctl(h->vcpu_fd[i], KVM_RUN, 0) ? -errno : 0;
		reason = run->exit_reason;
		if (!r && reason == KVM_EXIT_IO &&
		    run->io.direction == KVM_EXIT_IO_OUT)
			out_port = run->io.port;
	} else {
		struct lvmm_run *run = h->lvcpu[i].run;

		r = lvmm_run(&h->lvcpu[i]);
		reason = run->exit_reason;
		if (!r && reason == LVMM_EXIT_IO &&
		    run->io.direction == LVMM_EXIT_IO_OUT)
			out_port = run->io.port;
	}
	if (r == -EINTR && timed_out) {
		hv_dump(h, i, what);
		exit(1);
	}
	if (r == -EINTR) {
		hv_nudge(h, i);
		goto again;
	}
	if (r)
		die("%s: %s: vCPU %u: RUN: %s", side, what, i, strerror(-r));
	if (out_port == port)
		return;
	hv_where(h, i, &rip, &rsp);
	if (out_port == IRQ_PORT_FAULT && rsp >= 16 && rsp < MEM_SIZE - 16) {
		st = (const uint32_t *)(h->mem + rsp);
		die("%s: %s: vCPU %u: unexpected exception or vector; stack (EIP CS EFLAGS, or error code first): %x %x %x %x",
		    side, what, i, st[0], st[1], st[2], st[3]);
	}
	die("%s: %s: vCPU %u: expected OUT 0x%x, got exit reason %u (port 0x%x) at rip 0x%llx",
	    side, what, i, port, reason, out_port, (unsigned long long)rip);
}

/* ---- the runs ------------------------------------------------------------- */

static double tsc_hz;
static unsigned int shots = 100;
static const char *doing = "starting";

/*
 * A run that takes more than a minute is stuck: the first SIGALRM
 * interrupts the RUN of the thread it lands on, which shows its vCPU's
 * state (hv_dump()); the second, 10 s later, ends the process.
 */
static void on_alarm(int sig)
{
	static const char m[] = "lvmm-irq-bench: timed out in: ";

	(void)sig;
	if (!timed_out) {
		timed_out = 1;
		alarm(10);
		return;
	}
	if (write(2, m, sizeof(m) - 1) < 0 ||
	    write(2, doing, strlen(doing)) < 0 || write(2, "\n", 1) < 0)
		_exit(1);
	_exit(1);
}

/*
 * The watchdog.  QEMU 7.2's VMRUN ignores the VMCB's interrupt shadow
 * (../shared/EMULATOR.md): when a host interrupt ends the guest's run
 * between its STI and HLT, and a vector is requested then, the
 * hypervisor sees the shadow and waits for an interrupt window, VMRUN
 * drops the shadow, the window opens at once, the vector is delivered
 * before the HLT, and the HLT then waits for an interrupt that already
 * came.  lvmm and KVM both do what the hardware would need; the guest
 * just sleeps.  The timer's own hrtimer interrupt is such a host
 * interrupt, so a run of 100 shots meets it now and then.  So a vCPU
 * whose guest made no progress (the record handler's TSC unchanged) for
 * 150 ms gets IRQ_VEC_NUDGE, which wakes it.  The sample of that shot
 * was taken in the handler and stands; the nudges are counted, "lost"
 * when the flag says the handler had run.
 */
struct watchdog {
	struct hv *h;
	pthread_t vcpu[2];
	unsigned int nr;		/* threads in vcpu[] */
	bool stop;			/* __atomic */
	unsigned int lost, idle;	/* nudges: flag set, flag clear */
};

static void on_nudge(int sig)
{
	(void)sig;	/* only interrupts the RUN */
}

static void *watchdog_thread(void *arg)
{
	struct watchdog *w = arg;
	uint32_t *tsc = (uint32_t *)(w->h->mem + IRQ_TSC_GPA);
	uint32_t *flag = (uint32_t *)(w->h->mem + IRQ_FLAG_GPA);
	uint32_t last = __atomic_load_n(tsc, __ATOMIC_RELAXED), now;
	unsigned int still = 0, i;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		usleep(50000);
		now = __atomic_load_n(tsc, __ATOMIC_RELAXED);
		if (now != last) {
			last = now;
			still = 0;
			continue;
		}
		if (++still < 3)
			continue;
		still = 0;
		if (__atomic_load_n(flag, __ATOMIC_RELAXED))
			w->lost++;
		else
			w->idle++;
		for (i = 0; i < w->nr; i++)
			pthread_kill(w->vcpu[i], SIGUSR1);
	}
	return NULL;
}

/*
 * vCPU 1's thread.  It stays until told to (@leave), so that the
 * watchdog never signals a thread that is gone.
 */
struct pong {
	struct hv *h;
	sem_t ready, done, leave;
};

/* sem_wait(), through the watchdog's signals. */
static void wait_sem(sem_t *s)
{
	while (sem_wait(s) && errno == EINTR && !timed_out)
		;
}

static void *pong_thread(void *arg)
{
	struct pong *p = arg;

	hv_run_to(p->h, 1, IRQ_PORT_READY, "ipi_us (pong)");
	sem_post(&p->ready);
	hv_run_to(p->h, 1, IRQ_PORT_DONE, "ipi_us (pong)");
	sem_post(&p->done);
	wait_sem(&p->leave);
	return NULL;
}

/*
 * One run of @mode on the hypervisor: the samples, in us, at @v (shots
 * of them), and for the timer the shots taken before their deadline in
 * *@early and those whose HLT came after the deadline in *@late_hlt.
 */
static void run_once(bool kvm, uint32_t mode, uint32_t delta, double *v,
		     unsigned int *early, unsigned int *late_hlt,
		     unsigned int *lost, unsigned int *idle)
{
	const char *what = mode == IRQ_MODE_TIMER ? "timer_latency_us" :
			   "ipi_us";
	struct watchdog w = { .nr = 1 };
	const int64_t *lat, *margin;
	pthread_t t, wt;
	struct pong p;
	struct hv h;
	unsigned int i;

	hv_create(&h, kvm, mode == IRQ_MODE_IPI ? 2 : 1, mode,
		  shots + WARMUP, delta);
	w.h = &h;
	w.vcpu[0] = pthread_self();
	if (mode == IRQ_MODE_IPI) {
		p.h = &h;
		if (sem_init(&p.ready, 0, 0) || sem_init(&p.done, 0, 0) ||
		    sem_init(&p.leave, 0, 0) ||
		    pthread_create(&t, NULL, pong_thread, &p))
			die("cannot start vCPU 1's thread");
		w.vcpu[w.nr++] = t;
	}
	if (pthread_create(&wt, NULL, watchdog_thread, &w))
		die("cannot start the watchdog thread");
	if (mode == IRQ_MODE_IPI)
		wait_sem(&p.ready);
	hv_run_to(&h, 0, IRQ_PORT_READY, what);
	hv_run_to(&h, 0, IRQ_PORT_DONE, what);
	if (mode == IRQ_MODE_IPI)
		wait_sem(&p.done);
	__atomic_store_n(&w.stop, true, __ATOMIC_RELAXED);
	pthread_join(wt, NULL);
	if (mode == IRQ_MODE_IPI) {
		sem_post(&p.leave);
		pthread_join(t, NULL);
	}
	*lost = w.lost;
	*idle = w.idle;
	lat = (const int64_t *)(h.mem + IRQ_LAT_GPA) + WARMUP;
	margin = (const int64_t *)(h.mem + IRQ_MARGIN_GPA) + WARMUP;
	*early = *late_hlt = 0;
	for (i = 0; i < shots; i++) {
		v[i] = lat[i] * 1e6 / tsc_hz;
		if (mode != IRQ_MODE_TIMER)
			continue;
		*early += lat[i] < 0;
		*late_hlt += margin[i] >= 0;
	}
	if (mode == IRQ_MODE_IPI)
		for (i = 0; i < shots; i++)
			if (lat[i] <= 0)
				die("%s: ipi_us: shot %u took %lld ticks",
				    kvm ? "kvm" : "lvmm", i,
				    (long long)lat[i]);
	hv_destroy(&h);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The @p-th fraction of the @n values at @v, which this sorts. */
static double pct(double *v, unsigned int n, double p)
{
	double k = p * (n - 1);
	unsigned int lo = k;

	qsort(v, n, sizeof(*v), cmp_double);
	return lo + 1 < n ? v[lo] + (k - lo) * (v[lo + 1] - v[lo]) : v[lo];
}

/* ---- halt_poll_ns --------------------------------------------------------- */

static char poll_saved[32];

static int poll_read(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");
	int ok;

	snprintf(buf, n, "?");
	if (!f)
		return -1;
	ok = !!fgets(buf, n, f);
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return ok ? 0 : -1;
}

static void poll_write(const char *val)
{
	FILE *f = fopen(HALT_POLL_PATH, "w");

	if (!f || fprintf(f, "%s\n", val) < 0 || fclose(f))
		die("writing %s to %s: %s", val, HALT_POLL_PATH,
		    strerror(errno));
}

static void poll_restore(void)
{
	if (poll_saved[0])
		poll_write(poll_saved);
}

/* ---- main ----------------------------------------------------------------- */

enum side { LVMM, LVMM_POLL0, KVM, NSIDES };
static const char *const side_name[] = { "lvmm", "lvmm-poll0", "kvm" };

static void usage(void)
{
	fprintf(stderr,
		"usage: lvmm-irq-bench [-r ROUNDS] [-n SHOTS] [-d US] [-P]\n"
		"  -r N   rounds of lvmm, lvmm with halt_poll_ns=0 and KVM\n"
		"         (default 5, at most %d)\n"
		"  -n N   shots per run, after %d warm-up shots (default 100,\n"
		"         at most %d)\n"
		"  -d US  timer_latency_us: the deadline, us ahead (default 200)\n"
		"  -P     leave out the halt_poll_ns=0 runs\n",
		MAX_ROUNDS, WARMUP, IRQ_MAX_SHOTS - WARMUP);
	exit(2);
}

int main(int argc, char **argv)
{
	static double smp[NSIDES][2][MAX_ROUNDS * IRQ_MAX_SHOTS];
	unsigned int rounds = 5, deadline_us = 200, nside, r, k, m;
	double med[NSIDES][2], lo[NSIDES][2], p90[NSIDES][2];
	char cpuinfo[256] = "?", cs[64], kpoll[32], line[256], what[64];
	unsigned int early, late_hlt, lost, idle, tot_early[NSIDES] = {0},
		tot_lost[NSIDES] = {0};
	enum side order[NSIDES] = { LVMM, LVMM_POLL0, KVM };
	bool poll0 = true;
	struct sigaction sa;
	struct utsname u;
	uint64_t n0, c0;
	uint32_t delta;
	FILE *f;
	int c;

	while ((c = getopt(argc, argv, "r:n:d:Ph")) != -1) {
		switch (c) {
		case 'r':
			rounds = strtoul(optarg, NULL, 0);
			if (!rounds || rounds > MAX_ROUNDS)
				die("-r: 1..%d", MAX_ROUNDS);
			break;
		case 'n':
			shots = strtoul(optarg, NULL, 0);
			if (!shots || shots > IRQ_MAX_SHOTS - WARMUP)
				die("-n: 1..%d", IRQ_MAX_SHOTS - WARMUP);
			break;
		case 'd':
			deadline_us = strtoul(optarg, NULL, 0);
			if (!deadline_us || deadline_us > 1000000)
				die("-d: 1..1000000");
			break;
		case 'P':
			poll0 = false;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: interrupt the RUN */
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_nudge;
	sigaction(SIGUSR1, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	lvmm_open_dev();
	kvm_open_dev();
	if (poll0 && poll_read(HALT_POLL_PATH, poll_saved, sizeof(poll_saved))) {
		printf("no %s: the halt_poll_ns=0 runs are left out\n",
		       HALT_POLL_PATH);
		poll_saved[0] = 0;
		poll0 = false;
	}
	atexit(poll_restore);
	nside = poll0 ? NSIDES : 2;
	if (!poll0)
		order[1] = KVM;

	/* The TSC against CLOCK_MONOTONIC over 200 ms. */
	n0 = now_ns();
	c0 = __rdtsc();
	usleep(200000);
	tsc_hz = (__rdtsc() - c0) * 1e9 / (now_ns() - n0);
	delta = deadline_us * tsc_hz / 1e6;
	f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %255[0-9.]", cpuinfo) == 1)
			break;
	if (f)
		fclose(f);
	poll_read("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		  cs, sizeof(cs));
	poll_read("/sys/module/kvm/parameters/halt_poll_ns", kpoll,
		  sizeof(kpoll));
	uname(&u);
	printf("kernel=%s cpus=%ld clocksource=%s tsc=%.1f MHz (measured; cpuinfo %s) rounds=%u shots=%u (+%d warm-up) deadline=%u us (%u ticks) halt_poll_ns: lvmm %s, kvm %s\n",
	       u.release, sysconf(_SC_NPROCESSORS_ONLN), cs, tsc_hz / 1e6,
	       cpuinfo, rounds, shots, WARMUP, deadline_us, delta,
	       poll0 ? poll_saved : "(not changed)", kpoll);

	for (r = 0; r < rounds; r++) {
		for (k = 0; k < nside; k++) {
			/* lvmm, lvmm-poll0, kvm; then kvm, lvmm-poll0, lvmm */
			enum side s = order[r % 2 ? nside - 1 - k : k];

			if (s == LVMM_POLL0)
				poll_write("0");
			for (m = 0; m < 2; m++) {
				uint32_t mode = m ? IRQ_MODE_IPI :
						    IRQ_MODE_TIMER;
				double *v = smp[s][m] + r * shots;
				double tmp[IRQ_MAX_SHOTS], x;

				snprintf(what, sizeof(what), "round %u %s %s",
					 r + 1, side_name[s],
					 m ? "ipi_us" : "timer_latency_us");
				doing = what;
				alarm(60);
				run_once(s == KVM, mode, delta, v, &early,
					 &late_hlt, &lost, &idle);
				tot_lost[s] += lost;
				alarm(0);
				memcpy(tmp, v, shots * sizeof(*v));
				x = pct(tmp, shots, 0.5);	/* sorts tmp */
				printf("run %u %-10s %-16s med %7.1f us  min %7.1f  p90 %7.1f  max %8.1f",
				       r + 1, side_name[s],
				       m ? "ipi_us" : "timer_latency_us", x, tmp[0],
				       pct(tmp, shots, 0.9), tmp[shots - 1]);
				if (mode == IRQ_MODE_TIMER) {
					printf("  halted after the deadline %u/%u, fired early %u",
					       late_hlt, shots, early);
					tot_early[s] += early;
				}
				if (lost || idle)
					printf("  nudged: lost wake-ups %u, slow %u",
					       lost, idle);
				printf("\n");
			}
			if (s == LVMM_POLL0)
				poll_write(poll_saved);
		}
	}

	for (k = 0; k < nside; k++) {
		enum side s = order[k];

		for (m = 0; m < 2; m++) {
			n0 = rounds * shots;
			med[s][m] = pct(smp[s][m], n0, 0.5);
			lo[s][m] = smp[s][m][0];
			p90[s][m] = pct(smp[s][m], n0, 0.9);
		}
	}
	printf("\nlvmm vs KVM, in-kernel APICs, same guest code, same boot (QEMU TCG:\n"
	       "absolute times are the emulator's, compare ratios); us, %u shots per side\n\n",
	       rounds * shots);
	printf("%-16s %-38s %8s %8s %8s %9s %8s %8s %8s %9s\n", "row", "what",
	       "lvmm min", "lvmm med", "lvmm p90", "poll0 med", "KVM min",
	       "KVM med", "KVM p90", "lvmm/KVM");
	for (m = 0; m < 2; m++) {
		char p0[16] = "-";

		if (poll0)
			snprintf(p0, sizeof(p0), "%.1f", med[LVMM_POLL0][m]);
		printf("%-16s %-38s %8.1f %8.1f %8.1f %9s %8.1f %8.1f %8.1f %8.2fx\n",
		       m ? "ipi_us" : "timer_latency_us",
		       m ? "IPI round trip 0->1->0, both in HLT" :
			   "TSC deadline to handler, vCPU in HLT",
		       lo[LVMM][m], med[LVMM][m], p90[LVMM][m], p0,
		       lo[KVM][m], med[KVM][m], p90[KVM][m],
		       med[LVMM][m] / med[KVM][m]);
	}
	printf("(poll0: lvmm with halt_poll_ns=0; timer shots before their deadline:\n"
	       " lvmm %u, poll0 %u, KVM %u; wake-ups lost to the emulator's interrupt\n"
	       " shadow, nudged: lvmm %u, poll0 %u, KVM %u)\n\n",
	       tot_early[LVMM], tot_early[LVMM_POLL0], tot_early[KVM],
	       tot_lost[LVMM], tot_lost[LVMM_POLL0], tot_lost[KVM]);
	printf("ratio timer_latency_us %.2f\n", med[LVMM][0] / med[KVM][0]);
	printf("ratio ipi_us %.2f\n", med[LVMM][1] / med[KVM][1]);
	if (poll0) {
		printf("metric halt_poll_timer %.2f\n",
		       med[LVMM][0] / med[LVMM_POLL0][0]);
		printf("metric halt_poll_ipi %.2f\n",
		       med[LVMM][1] / med[LVMM_POLL0][1]);
	}
	return 0;
}
