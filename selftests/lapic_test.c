// SPDX-License-Identifier: GPL-2.0
/*
 * The in-kernel local APIC (LVMM_CAP_IRQCHIP, Documentation/irqchip.rst):
 * its ABI, the registers in xAPIC and x2APIC mode, the timer in its three
 * modes, task priority, HLT in the kernel, IPIs and INIT/SIPI between two
 * vCPUs, and the state in and out.
 *
 * Times are measured in the guest with its TSC, whose rate the host
 * measures against CLOCK_MONOTONIC first (tsc_calibrate()).  "Not before"
 * is strict, up to that measurement's bracket; "not much later" allows for
 * the sandbox's emulated CPU, which is slow.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"
#include "apic.h"
#include "nl_util.h"
#include "vcpu_runner.h"

#define NR_VCPUS	2
#define IRQ_VECTOR	0x40
#define SPURIOUS_VECTOR	0xff
#define NS_PER_MS	1000000ULL
#define NS_PER_SEC	1000000000ULL

/* "Not much later": what the emulated CPU may add to a timer. */
#define LATE_NS		(5000 * NS_PER_MS)

/* The real-mode code INIT/SIPI starts vCPU 1 in, and what it reports. */
#define SIPI_VECTOR	0x08
#define SIPI_VECTOR2	0x09
#define SIPI_MARKER_GPA	0xa000ULL
#define SIPI_PORT	0xe4

#define REQUIRE_IRQCHIP() do {						\
	TEST_REQUIRE(lvmm_dev_present());				\
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_IRQCHIP));			\
} while (0)

#define GUEST_ASSERT_GE(a, b) do {					\
	u64 __ga = (u64)(a), __gb = (u64)(b);				\
	__GUEST_ASSERT(__ga >= __gb, #a " >= " #b, 1, __ga, __gb);	\
} while (0)

#define GUEST_ASSERT_LE(a, b) do {					\
	u64 __ga = (u64)(a), __gb = (u64)(b);				\
	__GUEST_ASSERT(__ga <= __gb, #a " <= " #b, 1, __ga, __gb);	\
} while (0)

/* ---- guest side ---------------------------------------------------- */

/* What each vCPU's handlers saw; indexed by vCPU id. */
struct vcpu_irqs {
	u64 count;		/* fixed interrupts taken */
	u64 last_vector;
	u64 order[8];		/* the first vectors, in the order taken */
	u64 tsc;		/* TSC in the handler of the last one */
	u64 isr;		/* its ISR bit, in the handler */
	u64 ppr;		/* PPR, in the handler */
	u64 nmi_count;
	u64 spurious;
	u64 gp_count;
	u64 x2apic;		/* the handler EOIs through the MSR */
	u64 ready;		/* for the other vCPU to wait on */
	u64 stage;
};

static volatile struct vcpu_irqs irqs[NR_VCPUS];

/* The TSC's rate as the host measured it, bracketed; kHz. */
static u64 tsc_khz_lo, tsc_khz_hi;
/* Set by the host to let a guest go on. */
static volatile u64 host_go;

/* The handlers run on the interrupted code's stack: one per vCPU. */
static u32 guest_vcpu_id(void)
{
	u64 sp = (u64)__builtin_frame_address(0);

	return (sp - STACKS_GPA) / STACK_SIZE;
}

/* Ticks that at least @ns take, and that at most @ns take. */
static u64 ns_to_tsc_lo(u64 ns)
{
	return ns * tsc_khz_lo / NS_PER_MS;
}

static u64 ns_to_tsc_hi(u64 ns)
{
	return ns * tsc_khz_hi / NS_PER_MS;
}

static void spin_ns(u64 ns)
{
	u64 end = rdtsc() + ns_to_tsc_hi(ns);

	while (rdtsc() < end)
		cpu_relax();
}

/* Spin until *@p >= @v, for at most @ns: whether it got there. */
static bool spin_until(volatile u64 *p, u64 v, u64 ns)
{
	u64 end = rdtsc() + ns_to_tsc_hi(ns);

	while (*p < v) {
		if (rdtsc() > end)
			return false;
		cpu_relax();
	}
	return true;
}

static void guest_irq_handler(struct ex_regs *regs)
{
	volatile struct vcpu_irqs *me = &irqs[guest_vcpu_id()];
	u8 v = regs->vector;
	u64 n = me->count;

	me->tsc = rdtsc();
	if (n < ARRAY_SIZE(me->order))
		me->order[n] = v;
	me->last_vector = v;
	if (me->x2apic) {
		me->isr = (x2apic_read_reg(APIC_ISR + v / 32 * 0x10) >>
			   (v % 32)) & 1;
		me->ppr = x2apic_read_reg(APIC_PROCPRI);
		x2apic_write_reg(APIC_EOI, 0);
	} else {
		me->isr = xapic_vector_bit(APIC_ISR, v);
		me->ppr = xapic_read_reg(APIC_PROCPRI);
		xapic_write_reg(APIC_EOI, 0);
	}
	me->count = n + 1;
}

static void guest_spurious_handler(struct ex_regs *regs)
{
	(void)regs;
	irqs[guest_vcpu_id()].spurious++;
}

static void guest_nmi_handler(struct ex_regs *regs)
{
	(void)regs;
	irqs[guest_vcpu_id()].nmi_count++;
}

/* Only RDMSR and WRMSR fault on purpose here: both are 2 bytes long. */
static void guest_gp_handler(struct ex_regs *regs)
{
	irqs[guest_vcpu_id()].gp_count++;
	regs->rip += 2;
}

#define GUEST_ASSERT_GP(id, stmt) do {					\
	u64 __n = irqs[id].gp_count;					\
	stmt;								\
	__GUEST_ASSERT(irqs[id].gp_count == __n + 1, "#GP from " #stmt,	\
		       1, irqs[id].gp_count - __n, 1);			\
} while (0)

#define GUEST_ASSERT_NO_GP(id, stmt) do {				\
	u64 __n = irqs[id].gp_count;					\
	stmt;								\
	__GUEST_ASSERT(irqs[id].gp_count == __n, "no #GP from " #stmt,	\
		       1, irqs[id].gp_count - __n, 0);			\
} while (0)

static void xapic_self_ipi(u32 vector)
{
	xapic_write_reg(APIC_ICR, APIC_DEST_SELF | APIC_DM_FIXED | vector);
}

static void xapic_send_ipi(u32 dest, u32 icr)
{
	xapic_write_reg(APIC_ICR2, dest << 24);
	xapic_write_reg(APIC_ICR, icr);
}

/* ---- host side ----------------------------------------------------- */

static u64 tsc_now(void)
{
	return __builtin_ia32_rdtsc();
}

/*
 * The TSC's rate against CLOCK_MONOTONIC over about 100 ms, bracketed by
 * the TSC reads on either side of each clock read, into tsc_khz_lo/hi.
 * Before vm_create(): the guest's copy of the image takes them.
 */
static void tsc_calibrate(void)
{
	u64 a0, a1, b0, b1, t0, t1;

	a0 = tsc_now();
	t0 = now_ns();
	a1 = tsc_now();
	usleep(100000);
	b0 = tsc_now();
	t1 = now_ns();
	b1 = tsc_now();
	tsc_khz_lo = (b0 - a1) * NS_PER_MS / (t1 - t0);
	tsc_khz_hi = (b1 - a0) * NS_PER_MS / (t1 - t0) + 1;
	TEST_ASSERT(tsc_khz_lo > 0, "no TSC rate");
}

/*
 * A VM with the in-kernel APIC and @nr vCPUs at @guest_code, with the
 * handlers above in its IDT; vCPUs but 0 made runnable if @run_aps.
 */
static struct lvmm_vm *apic_vm(u32 nr, void *guest_code,
			       struct lvmm_vcpu **vcpus, bool run_aps)
{
	struct lvmm_vm *vm;

	tsc_calibrate();
	vm = vm_create_with_irqchip(nr, guest_code, vcpus);
	vm_init_descriptor_tables(vm);
	for (int v = 32; v < SPURIOUS_VECTOR; v++)
		vm_install_exception_handler(vm, v, guest_irq_handler);
	vm_install_exception_handler(vm, SPURIOUS_VECTOR,
				     guest_spurious_handler);
	vm_install_exception_handler(vm, NMI_VECTOR, guest_nmi_handler);
	vm_install_exception_handler(vm, GP_VECTOR, guest_gp_handler);
	for (u32 i = 1; run_aps && i < nr; i++)
		vcpu_set_mp_state(vcpus[i], LVMM_MP_STATE_RUNNABLE);
	return vm;
}

static void set_host_go(struct lvmm_vm *vm)
{
	*(volatile u64 *)addr_gva2hva(vm, &host_go) = 1;
}

/* Run a vCPU until its guest is done, in a thread of its own. */
static void *vcpu_done_thread(void *arg)
{
	vcpu_expect_done(arg);
	return NULL;
}

/* Both vCPUs of @vcpus at once until their guests are done. */
static void run_pair(struct lvmm_vcpu **vcpus)
{
	pthread_t t[NR_VCPUS];

	for (int i = 0; i < NR_VCPUS; i++)
		TEST_ASSERT(!pthread_create(&t[i], NULL, vcpu_done_thread,
					    vcpus[i]), "pthread_create");
	for (int i = 0; i < NR_VCPUS; i++)
		pthread_join(t[i], NULL);
}

/*
 * One LVMM_RUN in a thread of its own, timed: the thread's CPU time and
 * the wall-clock time it spent in the ioctl.
 */
struct timed_run {
	struct lvmm_vcpu *vcpu;
	pthread_t thread;
	volatile bool retry_eintr, done;
	volatile int ret, nr_eintr;
	volatile u64 cpu_ns, wall_ns;
};

static u64 thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static void *timed_run_fn(void *arg)
{
	struct timed_run *t = arg;
	u64 cpu0 = thread_cpu_ns(), wall0 = now_ns();
	int ret;

	for (;;) {
		ret = __vcpu_run(t->vcpu);
		if (ret != -EINTR)
			break;
		t->nr_eintr++;
		if (!t->retry_eintr)
			break;
	}
	t->cpu_ns = thread_cpu_ns() - cpu0;
	t->wall_ns = now_ns() - wall0;
	t->ret = ret;
	t->done = true;
	return NULL;
}

static void sigusr1(int sig)
{
	(void)sig;
}

static void timed_run_start(struct timed_run *t, struct lvmm_vcpu *vcpu,
			    bool retry_eintr)
{
	/* No SA_RESTART: the signal must end the ioctl. */
	struct sigaction sa = { .sa_handler = sigusr1 };

	TEST_ASSERT(!sigaction(SIGUSR1, &sa, NULL), "sigaction");
	memset(t, 0, sizeof(*t));
	t->vcpu = vcpu;
	t->retry_eintr = retry_eintr;
	TEST_ASSERT(!pthread_create(&t->thread, NULL, timed_run_fn, t),
		    "pthread_create");
}

/* Wait up to @ms for the RUN to return; signal it out if it does not. */
static bool timed_run_wait(struct timed_run *t, u64 ms)
{
	bool ok = wait_for(t->done, ms);

	if (!ok) {
		t->retry_eintr = false;
		while (!t->done) {
			pthread_kill(t->thread, SIGUSR1);
			usleep(10000);
		}
	}
	pthread_join(t->thread, NULL);
	return ok;
}

/* vcpu-get's state of vCPU @id; 0 if netlink does not answer. */
static u32 nl_vcpu_state(struct lvmm_vm *vm, u32 id)
{
	static struct vcpu_dump d;
	struct nlc *c = nlc_open();
	u32 state = 0;

	if (!c)
		return 0;
	if (!nl_vcpu_dump(c, vm->h.id, &d))
		for (size_t i = 0; i < d.n; i++)
			if (d.v[i].id == id)
				state = d.v[i].state;
	nlc_close(c);
	return state;
}

/* Whether vcpu-get works here (the vCPU's state is then comparable). */
static bool have_netlink(void)
{
	struct nlc *c = nlc_open();

	if (c)
		nlc_close(c);
	return c;
}

FIXTURE(lapic) {
	int unused;
};

FIXTURE_SETUP(lapic)
{
}

FIXTURE_TEARDOWN(lapic)
{
}

/* ---- ABI ------------------------------------------------------------ */

TEST(cap_irqchip)
{
	TEST_REQUIRE(lvmm_dev_present());
	EXPECT_EQ(1, lvmm_cap(LVMM_CAP_IRQCHIP));
}

TEST(create_irqchip_abi)
{
	struct lvmm_irqchip chip;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = vm_create_bare(NULL);
	memset(&chip, 0, sizeof(chip));
	chip.flags = 1;
	EXPECT_EQ(-EINVAL, __vm_create_irqchip(vm, &chip));
	chip.flags = 1U << 31;
	EXPECT_EQ(-EINVAL, __vm_create_irqchip(vm, &chip));
	memset(&chip, 0, sizeof(chip));
	chip.pad = 1;
	EXPECT_EQ(-EINVAL, __vm_create_irqchip(vm, &chip)) TH_LOG("pad");
	for (int i = 0; i < 3; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, __vm_create_irqchip(vm, &chip))
			TH_LOG("reserved[%d]", i);
	}
	/* The refused calls created nothing. */
	memset(&chip, 0, sizeof(chip));
	EXPECT_EQ(0, __vm_create_irqchip(vm, &chip));
	EXPECT_EQ(-EEXIST, __vm_create_irqchip(vm, &chip));
	vm_free(vm);

	/* Before the first vCPU only. */
	vm = vm_create();
	vm_vcpu_add_raw(vm, 0);
	EXPECT_EQ(-EBUSY, __vm_create_irqchip(vm, &chip));
	vm_free(vm);
}

static void guest_hlt(void)
{
	asm volatile("hlt");
	GUEST_DONE();
}

TEST(lapic_ioctls_need_irqchip)
{
	struct lvmm_lapic_state *s = calloc(1, sizeof(*s));
	struct lvmm_mp_state mp = { .state = LVMM_MP_STATE_RUNNABLE };
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	ASSERT_NE(NULL, s);
	vm = vm_create_with_one_vcpu(&vcpu, guest_hlt);
	EXPECT_EQ(-ENXIO, __vcpu_get_lapic(vcpu, s));
	EXPECT_EQ(-ENXIO, __vcpu_set_lapic(vcpu, s));
	EXPECT_EQ(-ENXIO, __vcpu_get_mp_state(vcpu, &mp));
	EXPECT_EQ(-ENXIO, __vcpu_set_mp_state(vcpu, &mp));
	/* Without the in-kernel APIC, HLT is still the VMM's. */
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_HLT);
	vm_free(vm);
	free(s);
}

TEST(mp_state_and_lapic_abi)
{
	struct lvmm_lapic_state *s = calloc(1, sizeof(*s));
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_mp_state mp;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	ASSERT_NE(NULL, s);
	vm = vm_create_with_irqchip(NR_VCPUS, guest_hlt, vcpus);

	/* vCPU 0 runs at once; the others wait for INIT and SIPI. */
	EXPECT_EQ(LVMM_MP_STATE_RUNNABLE, vcpu_get_mp_state(vcpus[0]));
	EXPECT_EQ(LVMM_MP_STATE_WAIT_SIPI, vcpu_get_mp_state(vcpus[1]));

	memset(&mp, 0, sizeof(mp));
	mp.state = LVMM_MP_STATE_WAIT_SIPI + 1;
	EXPECT_EQ(-EINVAL, __vcpu_set_mp_state(vcpus[1], &mp));
	mp.state = ~0U;
	EXPECT_EQ(-EINVAL, __vcpu_set_mp_state(vcpus[1], &mp));
	mp.state = LVMM_MP_STATE_RUNNABLE;
	mp.flags = 1;
	EXPECT_EQ(-EINVAL, __vcpu_set_mp_state(vcpus[1], &mp));
	mp.flags = 0;
	mp.reserved = 1;
	EXPECT_EQ(-EINVAL, __vcpu_set_mp_state(vcpus[1], &mp));
	/* None of them took. */
	EXPECT_EQ(LVMM_MP_STATE_WAIT_SIPI, vcpu_get_mp_state(vcpus[1]));

	vcpu_set_mp_state(vcpus[1], LVMM_MP_STATE_RUNNABLE);
	EXPECT_EQ(LVMM_MP_STATE_RUNNABLE, vcpu_get_mp_state(vcpus[1]));
	vcpu_set_mp_state(vcpus[0], LVMM_MP_STATE_HALTED);
	EXPECT_EQ(LVMM_MP_STATE_HALTED, vcpu_get_mp_state(vcpus[0]));
	vcpu_set_mp_state(vcpus[0], LVMM_MP_STATE_RUNNABLE);
	memset(&mp, 0xff, sizeof(mp));
	ASSERT_EQ(0, __vcpu_get_mp_state(vcpus[0], &mp));
	EXPECT_EQ(LVMM_MP_STATE_RUNNABLE, mp.state);
	EXPECT_EQ(0, mp.flags);
	EXPECT_EQ(0, mp.reserved);

	/* The reset state, as the architecture has it. */
	for (u32 i = 0; i < NR_VCPUS; i++) {
		memset(s, 0xaa, sizeof(*s));
		vcpu_get_lapic(vcpus[i], s);
		EXPECT_EQ(0, s->flags);
		EXPECT_EQ(0, s->tsc_deadline);
		EXPECT_EQ(0, s->reserved[0]);
		EXPECT_EQ(0, s->reserved[1]);
		EXPECT_EQ(i << 24, lapic_reg(s, APIC_ID));
		EXPECT_EQ(APIC_VERSION_VALUE, lapic_reg(s, APIC_LVR));
		EXPECT_EQ(0xff, lapic_reg(s, APIC_SPIV));
		EXPECT_EQ(0xffffffffU, lapic_reg(s, APIC_DFR));
		EXPECT_EQ(0, lapic_reg(s, APIC_TASKPRI));
		for (u32 r = APIC_LVTT; r <= APIC_LVTERR; r += 0x10) {
			EXPECT_EQ(APIC_LVT_MASKED, lapic_reg(s, r))
				TH_LOG("LVT at 0x%x", r);
		}
		EXPECT_EQ(0, lapic_reg(s, APIC_TMICT));
		EXPECT_EQ(0, lapic_reg(s, APIC_TMCCT));
	}

	/* SET_LAPIC's flags and reserved space. */
	vcpu_get_lapic(vcpus[0], s);
	s->flags = 1;
	EXPECT_EQ(-EINVAL, __vcpu_set_lapic(vcpus[0], s));
	s->flags = 0;
	s->pad = 1;
	EXPECT_EQ(-EINVAL, __vcpu_set_lapic(vcpus[0], s)) TH_LOG("pad");
	s->pad = 0;
	for (int i = 0; i < 2; i++) {
		s->reserved[i] = 1;
		EXPECT_EQ(-EINVAL, __vcpu_set_lapic(vcpus[0], s))
			TH_LOG("reserved[%d]", i);
		s->reserved[i] = 0;
	}
	EXPECT_EQ(0, __vcpu_set_lapic(vcpus[0], s));
	vm_free(vm);
	free(s);
}

/*
 * A SET_SREGS refused for one of its registers changes nothing: not the
 * APIC base, nor what a change of it would do to the APIC (disabling it
 * stops its timer).  SET_LAPIC never loads vectors 0-15 into IRR, ISR or
 * TMR, which no delivery accepts.
 */
TEST(refused_sregs_keep_the_apic)
{
	struct lvmm_lapic_state *s = calloc(1, sizeof(*s));
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_sregs sregs, now;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	ASSERT_NE(NULL, s);
	vm = vm_create_with_irqchip(NR_VCPUS, guest_hlt, vcpus);
	vcpu_get_lapic(vcpus[0], s);
	lapic_reg(s, APIC_SPIV) = APIC_SPIV_APIC_ENABLED | 0xff;
	lapic_reg(s, APIC_LVTT) = 0x40;			/* one-shot */
	lapic_reg(s, APIC_TDCR) = APIC_TDCR_1;
	lapic_reg(s, APIC_TMICT) = 0xffffffffU;		/* 4 s at 1 GHz */
	lapic_reg(s, APIC_TMCCT) = 0xffffffffU;
	lapic_reg(s, APIC_IRR) = 0x00010100;		/* vectors 8, 16 */
	lapic_reg(s, APIC_ISR) = 0x0000ffff;
	lapic_reg(s, APIC_TMR) = 0x00000001;
	vcpu_set_lapic(vcpus[0], s);
	vcpu_get_lapic(vcpus[0], s);
	EXPECT_EQ(0x00010000, lapic_reg(s, APIC_IRR));
	EXPECT_EQ(0, lapic_reg(s, APIC_ISR));
	EXPECT_EQ(0, lapic_reg(s, APIC_TMR));
	EXPECT_NE(0, lapic_reg(s, APIC_TMCCT)) TH_LOG("the timer is not running");

	vcpu_sregs_get(vcpus[0], &sregs);
	sregs.apic_base &= ~MSR_IA32_APICBASE_EN;	/* would stop the timer */
	sregs.efer |= 1ULL << 63;			/* reserved: refused */
	EXPECT_EQ(-EINVAL, lvmm_set_sregs(&vcpus[0]->h, &sregs));
	vcpu_sregs_get(vcpus[0], &now);
	EXPECT_TRUE(now.apic_base & MSR_IA32_APICBASE_EN);
	vcpu_get_lapic(vcpus[0], s);
	EXPECT_NE(0, lapic_reg(s, APIC_TMCCT)) TH_LOG("a refused SET_SREGS stopped the timer");
	EXPECT_EQ(0x40, lapic_reg(s, APIC_LVTT));
	vm_free(vm);
	free(s);
}

/* ---- CPUID ---------------------------------------------------------- */

static void guest_cpuid_1(void)
{
	struct cpuid_regs r = guest_cpuid(1, 0);

	GUEST_SYNC_ARGS(r.ecx, r.edx, 0, 0, 0);
	GUEST_DONE();
}

TEST(cpuid_x2apic_tsc_deadline)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = vm_create_with_irqchip(1, guest_cpuid_1, &vcpu);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_NE(0, uc.args[0] & CPUID_1_ECX_X2APIC) TH_LOG("x2APIC");
	EXPECT_NE(0, uc.args[0] & CPUID_1_ECX_TSC_DEADLINE) TH_LOG("TSC deadline");
	EXPECT_NE(0, uc.args[1] & (1U << 9)) TH_LOG("APIC (EDX bit 9)");
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* ---- xAPIC ---------------------------------------------------------- */

static u8 xapic_read8(u32 reg)
{
	u8 v;

	asm volatile("movb (%1), %0"
		     : "=q"(v) : "r"(APIC_DEFAULT_GPA + reg) : "memory");
	return v;
}

static u16 xapic_read16(u32 reg)
{
	u16 v;

	asm volatile("movw (%1), %0"
		     : "=r"(v) : "r"(APIC_DEFAULT_GPA + reg) : "memory");
	return v;
}

static void guest_xapic(u64 id)
{
	volatile struct vcpu_irqs *me = &irqs[id];
	u64 bsp = id ? 0 : MSR_IA32_APICBASE_BSP;

	cli();
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_APICBASE),
			APIC_DEFAULT_GPA | MSR_IA32_APICBASE_EN | bsp);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_ID), id << 24);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LVR), APIC_VERSION_VALUE);
	GUEST_ASSERT_EQ(xapic_read8(APIC_LVR), 0x14);
	GUEST_ASSERT_EQ(xapic_read16(APIC_LVR), 0x14);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_SPIV), 0xff);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TASKPRI), 0);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_PROCPRI), 0);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_DFR), 0xffffffff);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LVTT), APIC_LVT_MASKED);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LVT0), APIC_LVT_MASKED);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LVT1), APIC_LVT_MASKED);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LVTERR), APIC_LVT_MASKED);

	/* Software-disabled: LVTs stay masked, fixed IPIs are refused. */
	xapic_write_reg(APIC_LVTT, IRQ_VECTOR);
	GUEST_ASSERT(xapic_read_reg(APIC_LVTT) & APIC_LVT_MASKED);
	xapic_self_ipi(IRQ_VECTOR);
	GUEST_ASSERT(!xapic_vector_bit(APIC_IRR, IRQ_VECTOR));

	xapic_enable();
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_SPIV), APIC_SPIV_APIC_ENABLED | 0xff);
	xapic_write_reg(APIC_LVTT, IRQ_VECTOR);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LVTT), IRQ_VECTOR);
	xapic_write_reg(APIC_LVTT, APIC_LVT_MASKED);

	/* ID is writable in xAPIC mode; LDR bits 31-24, DFR bits 31-28. */
	xapic_write_reg(APIC_ID, 0x5U << 24);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_ID), 0x5U << 24);
	xapic_write_reg(APIC_ID, id << 24);
	xapic_write_reg(APIC_LDR, 0xffffffff);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LDR), 0xff000000);
	xapic_write_reg(APIC_LDR, 0);
	xapic_write_reg(APIC_DFR, 0);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_DFR), APIC_DFR_CLUSTER);
	xapic_write_reg(APIC_DFR, APIC_DFR_FLAT);

	/* TPR, PPR and CR8. */
	xapic_write_reg(APIC_TASKPRI, 0x2f);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TASKPRI), 0x2f);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_PROCPRI), 0x2f);
	GUEST_ASSERT_EQ(read_cr8(), 2);
	write_cr8(5);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TASKPRI), 0x50);
	xapic_write_reg(APIC_TASKPRI, 0);
	GUEST_ASSERT_EQ(read_cr8(), 0);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_PROCPRI), 0);

	/* A self IPI by destination: waits in IRR while IF is clear. */
	xapic_send_ipi(id, APIC_DM_FIXED | IRQ_VECTOR);
	GUEST_ASSERT(!(xapic_read_reg(APIC_ICR) & APIC_ICR_BUSY));
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_ICR2), id << 24);
	GUEST_ASSERT(xapic_vector_bit(APIC_IRR, IRQ_VECTOR));
	GUEST_ASSERT(!xapic_vector_bit(APIC_ISR, IRQ_VECTOR));
	GUEST_ASSERT_EQ(me->count, 0);
	sti();
	GUEST_ASSERT(spin_until(&me->count, 1, 100 * NS_PER_MS));
	cli();
	GUEST_ASSERT_EQ(me->last_vector, IRQ_VECTOR);
	/* In service in its handler, at priority 0x40; EOI cleared it. */
	GUEST_ASSERT_EQ(me->isr, 1);
	GUEST_ASSERT_EQ(me->ppr, 0x40);
	GUEST_ASSERT(!xapic_vector_bit(APIC_ISR, IRQ_VECTOR));
	GUEST_ASSERT(!xapic_vector_bit(APIC_IRR, IRQ_VECTOR));
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_PROCPRI), 0);

	/* The self shorthand. */
	xapic_self_ipi(IRQ_VECTOR + 1);
	sti();
	GUEST_ASSERT(spin_until(&me->count, 2, 100 * NS_PER_MS));
	cli();
	GUEST_ASSERT_EQ(me->last_vector, IRQ_VECTOR + 1);

	/* An illegal vector is not sent, and says so in ESR. */
	xapic_write_reg(APIC_ESR, 0);
	xapic_self_ipi(3);
	xapic_write_reg(APIC_ESR, 0);
	GUEST_ASSERT(xapic_read_reg(APIC_ESR) & APIC_ESR_SEND_ILLEGAL);
	sti();
	spin_ns(10 * NS_PER_MS);
	cli();
	GUEST_ASSERT_EQ(me->count, 2);
	xapic_write_reg(APIC_ESR, 0);
	xapic_write_reg(APIC_ESR, 0);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_ESR), 0);

	/* A register the APIC does not have: reads 0, writes ignored. */
	xapic_write_reg(0x40, 0x12345678);
	GUEST_ASSERT_EQ(xapic_read_reg(0x40), 0);
	GUEST_ASSERT_EQ(me->spurious, 0);
	GUEST_DONE();
}

TEST(xapic_mmio)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(NR_VCPUS, guest_xapic, vcpus, true);
	vcpu_expect_done(vcpus[0]);
	vcpu_expect_done(vcpus[1]);
	vm_free(vm);
}

/* ---- x2APIC --------------------------------------------------------- */

static void guest_x2apic(u64 id)
{
	volatile struct vcpu_irqs *me = &irqs[id];
	u64 bsp = id ? 0 : MSR_IA32_APICBASE_BSP;
	u64 xapic = APIC_DEFAULT_GPA | MSR_IA32_APICBASE_EN | bsp;
	u64 x2apic = xapic | MSR_IA32_APICBASE_EXTD;

	cli();
	/* Not in x2APIC mode: every x2APIC MSR is a #GP. */
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(APIC_ID)));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_TASKPRI), 0));
	/* EXTD without EN. */
	GUEST_ASSERT_GP(id, wrmsr(MSR_IA32_APICBASE,
				  APIC_DEFAULT_GPA | MSR_IA32_APICBASE_EXTD | bsp));
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_APICBASE), xapic);

	GUEST_ASSERT_NO_GP(id, wrmsr(MSR_IA32_APICBASE, x2apic));
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_APICBASE), x2apic);
	me->x2apic = 1;
	GUEST_ASSERT_NO_GP(id, x2apic_write_reg(APIC_SPIV,
						APIC_SPIV_APIC_ENABLED | 0xff));
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_SPIV), APIC_SPIV_APIC_ENABLED | 0xff);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_ID), id);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_LVR), APIC_VERSION_VALUE);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_LDR),
			((id >> 4) << 16) | (1U << (id & 15)));

	/* The architecture's #GPs. */
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(APIC_EOI)));
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(APIC_SELF_IPI)));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_ID), id));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_LVR), APIC_VERSION_VALUE));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_PROCPRI), 0));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_LDR), 1));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_ISR), 0));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_TMR), 0));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_IRR), 0));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_TMCCT), 0));
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(APIC_DFR)));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_DFR), APIC_DFR_FLAT));
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(APIC_ICR2)));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_ICR2), 0));
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(0x90)));		/* APR */
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(0x10)));		/* nothing */
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_EOI), 1));
	GUEST_ASSERT_NO_GP(id, wrmsr(X2APIC_MSR(APIC_EOI), 0));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_ESR), 1));
	GUEST_ASSERT_NO_GP(id, wrmsr(X2APIC_MSR(APIC_ESR), 0));
	/* Reserved bits. */
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_TASKPRI), 0x100));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_TASKPRI), 1ULL << 32));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_SPIV),
				  APIC_SPIV_APIC_ENABLED | 0xff | (1U << 20)));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_LVTT),
				  APIC_LVT_MASKED | (1U << 20)));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_TDCR), 0x10));
	GUEST_ASSERT_GP(id, wrmsr(X2APIC_MSR(APIC_SELF_IPI),
				  IRQ_VECTOR | (1U << 8)));
	/* None of those changed anything. */
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_TASKPRI), 0);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_SPIV), APIC_SPIV_APIC_ENABLED | 0xff);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_LVTT), APIC_LVT_MASKED);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_ID), id);

	/* TPR and CR8. */
	x2apic_write_reg(APIC_TASKPRI, 0x20);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_TASKPRI), 0x20);
	GUEST_ASSERT_EQ(read_cr8(), 2);
	x2apic_write_reg(APIC_TASKPRI, 0);

	/* SELF IPI. */
	x2apic_write_reg(APIC_SELF_IPI, IRQ_VECTOR + 2);
	GUEST_ASSERT((x2apic_read_reg(APIC_IRR + 0x20) >> 2) & 1);
	sti();
	GUEST_ASSERT(spin_until(&me->count, 1, 100 * NS_PER_MS));
	cli();
	GUEST_ASSERT_EQ(me->last_vector, IRQ_VECTOR + 2);
	GUEST_ASSERT_EQ(me->isr, 1);
	GUEST_ASSERT_EQ(me->ppr, 0x40);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_ISR + 0x20), 0);

	/* The 64-bit ICR, to its own id. */
	x2apic_write_reg(APIC_ICR, (id << 32) | APIC_DM_FIXED | (IRQ_VECTOR + 3));
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_ICR) & ~(u64)APIC_ICR_BUSY,
			(id << 32) | APIC_DM_FIXED | (IRQ_VECTOR + 3));
	sti();
	GUEST_ASSERT(spin_until(&me->count, 2, 100 * NS_PER_MS));
	cli();
	GUEST_ASSERT_EQ(me->last_vector, IRQ_VECTOR + 3);

	/* x2APIC to xAPIC directly: #GP, and still x2APIC. */
	GUEST_ASSERT_GP(id, wrmsr(MSR_IA32_APICBASE, xapic));
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_APICBASE), x2apic);
	GUEST_ASSERT_EQ(x2apic_read_reg(APIC_ID), id);

	/* To disabled, then to xAPIC: allowed. */
	me->x2apic = 0;
	GUEST_ASSERT_NO_GP(id, wrmsr(MSR_IA32_APICBASE, APIC_DEFAULT_GPA | bsp));
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_APICBASE), APIC_DEFAULT_GPA | bsp);
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(APIC_ID)));
	/* Hardware-disabled, the page is the VMM's MMIO. */
	GUEST_SYNC(1);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LVR), 0x77);
	GUEST_ASSERT_NO_GP(id, wrmsr(MSR_IA32_APICBASE, xapic));
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_APICBASE), xapic);
	GUEST_ASSERT_GP(id, rdmsr(X2APIC_MSR(APIC_ID)));
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_ID), id << 24);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_LVR), APIC_VERSION_VALUE);
	GUEST_DONE();
}

static void x2apic_run(struct __test_metadata *_metadata,
		       struct lvmm_vcpu *vcpu)
{
	struct lvmm_run *run = vcpu->run;

	vcpu_expect_sync(vcpu, 1);
	vcpu_run(vcpu);
	TEST_ASSERT_EXIT_REASON(vcpu, LVMM_EXIT_MMIO);
	EXPECT_EQ(APIC_DEFAULT_GPA + APIC_LVR, run->mmio.phys_addr);
	EXPECT_EQ(4, run->mmio.len);
	EXPECT_EQ(0, run->mmio.is_write);
	memset(run->mmio.data, 0, sizeof(run->mmio.data));
	run->mmio.data[0] = 0x77;
	vcpu_expect_done(vcpu);
}

TEST(x2apic_msrs)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(NR_VCPUS, guest_x2apic, vcpus, true);
	x2apic_run(_metadata, vcpus[0]);
	x2apic_run(_metadata, vcpus[1]);
	vm_free(vm);
}

/* ---- LVMM_INTERRUPT ------------------------------------------------- */

static void guest_lvmm_interrupt(void)
{
	volatile struct vcpu_irqs *me = &irqs[0];

	cli();
	xapic_enable();
	GUEST_SYNC(0);
	GUEST_SYNC_ARGS(xapic_vector_bit(APIC_IRR, IRQ_VECTOR),
			xapic_vector_bit(APIC_IRR, IRQ_VECTOR + 1), 0, 0, 0);
	sti();
	spin_until(&me->count, 3, 100 * NS_PER_MS);
	cli();
	GUEST_SYNC_ARGS(me->count, me->order[0], me->order[1], 0, 0);
	GUEST_DONE();
}

TEST(lvmm_interrupt_requests_in_apic)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_lvmm_interrupt, &vcpu, false);
	vcpu_expect_sync(vcpu, 0);
	/* No EBUSY: each request sets IRR; the same vector merges. */
	EXPECT_EQ(0, lvmm_interrupt(&vcpu->h, IRQ_VECTOR));
	EXPECT_EQ(0, lvmm_interrupt(&vcpu->h, IRQ_VECTOR + 1));
	EXPECT_EQ(0, lvmm_interrupt(&vcpu->h, IRQ_VECTOR + 1));
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_EQ(1, uc.args[0]);
	EXPECT_EQ(1, uc.args[1]);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_EQ(2, uc.args[0]) TH_LOG("interrupts taken");
	/* The higher priority first. */
	EXPECT_EQ(IRQ_VECTOR + 1, uc.args[1]);
	EXPECT_EQ(IRQ_VECTOR, uc.args[2]);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* ---- the timer ------------------------------------------------------ */

static void timer_setup(u32 lvtt, u32 tdcr)
{
	xapic_enable();
	xapic_write_reg(APIC_TDCR, tdcr);
	xapic_write_reg(APIC_LVTT, lvtt);
}

/*
 * Arm a one-shot of @count at @tdcr (divide @div) and wait for it: it
 * comes not before count * div ns after the write, and not much later.
 */
static void oneshot_check(u32 count, u32 tdcr, u64 div)
{
	volatile struct vcpu_irqs *me = &irqs[0];
	u64 n = me->count, ns = (u64)count * div, before, after;

	xapic_write_reg(APIC_TDCR, tdcr);
	before = rdtsc();
	xapic_write_reg(APIC_TMICT, count);
	after = rdtsc();
	GUEST_ASSERT(spin_until(&me->count, n + 1, ns + LATE_NS));
	GUEST_ASSERT_EQ(me->last_vector, IRQ_VECTOR);
	/*
	 * Armed between @before and @after: not before @before + ns, and not
	 * much after @after + ns.  The vCPU may be held up between arming
	 * and @after for longer than ns (the sandbox's CPU lost by the host
	 * during the write's exit): the interrupt then comes before @after.
	 */
	GUEST_ASSERT(me->tsc > before);
	GUEST_ASSERT_GE(me->tsc - before, ns_to_tsc_lo(ns));
	GUEST_ASSERT_LE(me->tsc - before,
			after - before + ns_to_tsc_hi(ns + LATE_NS));
	/* Once only; then the current count reads 0. */
	spin_ns(ns + 20 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, n + 1);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TMCCT), 0);
}

static void guest_timer_oneshot(void)
{
	volatile struct vcpu_irqs *me = &irqs[0];
	u32 cct;

	timer_setup(APIC_LVT_TIMER_ONESHOT | IRQ_VECTOR, APIC_TDCR_1);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TDCR), APIC_TDCR_1);
	sti();
	oneshot_check(20 * NS_PER_MS, APIC_TDCR_1, 1);

	/* The current count goes down from the initial count. */
	xapic_write_reg(APIC_TMICT, 200 * NS_PER_MS);
	cct = xapic_read_reg(APIC_TMCCT);
	GUEST_ASSERT(cct > 0 && cct <= 200 * NS_PER_MS);
	spin_ns(NS_PER_MS);
	GUEST_ASSERT(xapic_read_reg(APIC_TMCCT) < cct);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TMICT), 200 * NS_PER_MS);
	/* Writing 0 stops it. */
	xapic_write_reg(APIC_TMICT, 0);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TMCCT), 0);
	spin_ns(250 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 1);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, timer_oneshot, 60)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_timer_oneshot, &vcpu, false);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

static void guest_timer_divide(void)
{
	timer_setup(APIC_LVT_TIMER_ONESHOT | IRQ_VECTOR, APIC_TDCR_1);
	sti();
	/* 1 ms at 1; 16 ms at 16; 128 ms at 128; 2 ms at reset's 2. */
	oneshot_check(NS_PER_MS, APIC_TDCR_1, 1);
	oneshot_check(NS_PER_MS, APIC_TDCR_16, 16);
	oneshot_check(NS_PER_MS, APIC_TDCR_128, 128);
	oneshot_check(NS_PER_MS, APIC_TDCR_2, 2);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, timer_divide, 60)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_timer_divide, &vcpu, false);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/*
 * A periodic timer of @period_ns (at divide 1) for @window_ns: how many
 * times it fired, with the most it could have (strict) in *@max.
 */
static u64 periodic_count(u64 period_ns, u64 window_ns, u64 *max)
{
	volatile struct vcpu_irqs *me = &irqs[0];
	u64 n = me->count, t0, t1, got;

	xapic_write_reg(APIC_LVTT, APIC_LVT_TIMER_PERIODIC | IRQ_VECTOR);
	/* Before arming: the vCPU may be held up after it. */
	t0 = rdtsc();
	xapic_write_reg(APIC_TMICT, period_ns);
	spin_ns(window_ns);
	got = me->count - n;
	t1 = rdtsc();
	xapic_write_reg(APIC_TMICT, 0);
	*max = (t1 - t0) / ns_to_tsc_lo(period_ns) + 1;
	return got;
}

static void guest_timer_periodic(void)
{
	volatile struct vcpu_irqs *me = &irqs[0];
	u64 got, max, n;

	timer_setup(APIC_LVT_TIMER_PERIODIC | IRQ_VECTOR, APIC_TDCR_1);
	sti();
	/* 2 ms for 200 ms: 100 at most; at least 10 on a slow CPU. */
	got = periodic_count(2 * NS_PER_MS, 200 * NS_PER_MS, &max);
	GUEST_ASSERT_LE(got, max);
	GUEST_ASSERT_GE(got, 10);
	/* Stopped: no more. */
	n = me->count;
	spin_ns(20 * NS_PER_MS);
	GUEST_ASSERT_LE(me->count, n + 1);
	n = me->count;
	spin_ns(20 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, n);

	/*
	 * 10 us is stretched to 200 us: over the window as it was measured
	 * (max counts it in 10 us periods), as above; a window the host
	 * stretched past 50 ms holds more periods.
	 */
	got = periodic_count(10000, 50 * NS_PER_MS, &max);
	GUEST_ASSERT_GE(got, 1);
	GUEST_ASSERT_LE(got, max / 20 + 2);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, timer_periodic, 60)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_timer_periodic, &vcpu, false);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

static void guest_timer_masked(void)
{
	volatile struct vcpu_irqs *me = &irqs[0];

	timer_setup(APIC_LVT_MASKED | APIC_LVT_TIMER_ONESHOT | IRQ_VECTOR,
		    APIC_TDCR_1);
	sti();
	/* Masked: it counts, but requests nothing. */
	xapic_write_reg(APIC_TMICT, 5 * NS_PER_MS);
	GUEST_ASSERT(xapic_read_reg(APIC_TMCCT) > 0);
	spin_ns(30 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 0);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TMCCT), 0);
	GUEST_ASSERT(!xapic_vector_bit(APIC_IRR, IRQ_VECTOR));
	/* Unmasking afterwards brings nothing: nothing was requested. */
	xapic_write_reg(APIC_LVTT, APIC_LVT_TIMER_ONESHOT | IRQ_VECTOR);
	spin_ns(20 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 0);

	/* A masked periodic timer goes on counting; unmasked, it fires. */
	xapic_write_reg(APIC_LVTT, APIC_LVT_MASKED | APIC_LVT_TIMER_PERIODIC |
			IRQ_VECTOR);
	xapic_write_reg(APIC_TMICT, NS_PER_MS);
	spin_ns(20 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 0);
	GUEST_ASSERT(xapic_read_reg(APIC_TMCCT) > 0);
	xapic_write_reg(APIC_LVTT, APIC_LVT_TIMER_PERIODIC | IRQ_VECTOR);
	GUEST_ASSERT(spin_until(&me->count, 2, LATE_NS));
	xapic_write_reg(APIC_TMICT, 0);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, timer_masked, 60)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_timer_masked, &vcpu, false);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

static void guest_timer_tsc_deadline(void)
{
	volatile struct vcpu_irqs *me = &irqs[0];
	u64 d, t;

	timer_setup(APIC_LVT_TIMER_TSCDEADLINE | IRQ_VECTOR, APIC_TDCR_1);
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_TSC_DEADLINE), 0);
	sti();

	/* 10 ms ahead: not before the TSC gets there, not much later. */
	d = rdtsc() + ns_to_tsc_hi(10 * NS_PER_MS);
	wrmsr(MSR_IA32_TSC_DEADLINE, d);
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_TSC_DEADLINE), d);
	GUEST_ASSERT(spin_until(&me->count, 1, 10 * NS_PER_MS + LATE_NS));
	GUEST_ASSERT_EQ(me->last_vector, IRQ_VECTOR);
	GUEST_ASSERT_GE(me->tsc, d);
	GUEST_ASSERT_LE(me->tsc, d + ns_to_tsc_hi(LATE_NS));
	/* Fired: disarmed. */
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_TSC_DEADLINE), 0);
	spin_ns(20 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 1);

	/* In the past: at once. */
	t = rdtsc();
	wrmsr(MSR_IA32_TSC_DEADLINE, t - 1);
	GUEST_ASSERT(spin_until(&me->count, 2, 50 * NS_PER_MS));
	GUEST_ASSERT_EQ(me->count, 2);

	/* Writing 0 disarms it. */
	wrmsr(MSR_IA32_TSC_DEADLINE, rdtsc() + ns_to_tsc_hi(10 * NS_PER_MS));
	wrmsr(MSR_IA32_TSC_DEADLINE, 0);
	GUEST_ASSERT_EQ(rdmsr(MSR_IA32_TSC_DEADLINE), 0);
	spin_ns(50 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 2);

	/* The initial count means nothing in this mode. */
	xapic_write_reg(APIC_TMICT, 1000);
	spin_ns(20 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 2);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TMCCT), 0);

	/* Changing the mode stops the timer. */
	wrmsr(MSR_IA32_TSC_DEADLINE, rdtsc() + ns_to_tsc_hi(10 * NS_PER_MS));
	xapic_write_reg(APIC_LVTT, APIC_LVT_TIMER_ONESHOT | IRQ_VECTOR);
	spin_ns(50 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 2);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, timer_tsc_deadline, 60)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_timer_tsc_deadline, &vcpu, false);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* A timer that fires while its vector waits in IRR merges with it. */
static void guest_timer_merge(void)
{
	cli();
	timer_setup(APIC_LVT_TIMER_PERIODIC | IRQ_VECTOR, APIC_TDCR_1);
	xapic_write_reg(APIC_TMICT, NS_PER_MS);
	spin_ns(30 * NS_PER_MS);
	xapic_write_reg(APIC_TMICT, 0);
	GUEST_ASSERT(xapic_vector_bit(APIC_IRR, IRQ_VECTOR));
	GUEST_ASSERT_EQ(irqs[0].count, 0);
	sti();
	spin_ns(20 * NS_PER_MS);
	cli();
	GUEST_ASSERT_EQ(irqs[0].count, 1);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, timer_merges_while_pending, 60)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_timer_merge, &vcpu, false);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/*
 * An LVT vector below 16 is not delivered (vector 5 has no handler: the
 * guest would abort) and sets ESR's receive-illegal-vector bit.
 */
static void guest_timer_illegal_vector(void)
{
	timer_setup(APIC_LVT_TIMER_ONESHOT | 5, APIC_TDCR_1);
	sti();
	xapic_write_reg(APIC_ESR, 0);
	xapic_write_reg(APIC_TMICT, NS_PER_MS);
	spin_ns(30 * NS_PER_MS);
	xapic_write_reg(APIC_ESR, 0);
	GUEST_SYNC(xapic_read_reg(APIC_ESR));
	GUEST_ASSERT_EQ(irqs[0].count, 0);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, timer_illegal_vector, 60)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_timer_illegal_vector, &vcpu, false);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_NE(0, uc.args[0] & APIC_ESR_RECV_ILLEGAL)
		TH_LOG("ESR 0x%llx", (unsigned long long)uc.args[0]);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* ---- task priority -------------------------------------------------- */

static void guest_tpr(void)
{
	volatile struct vcpu_irqs *me = &irqs[0];

	xapic_enable();
	sti();

	/* Through the register. */
	xapic_write_reg(APIC_TASKPRI, 0x50);
	xapic_self_ipi(0x45);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 0);
	GUEST_ASSERT(xapic_vector_bit(APIC_IRR, 0x45));
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_PROCPRI), 0x50);
	/* The same class is not above it. */
	xapic_write_reg(APIC_TASKPRI, 0x40);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 0);
	/* Below: delivered at once. */
	xapic_write_reg(APIC_TASKPRI, 0x30);
	GUEST_ASSERT_EQ(me->count, 1);
	GUEST_ASSERT_EQ(me->last_vector, 0x45);
	GUEST_ASSERT_EQ(me->ppr, 0x40);

	/* Through CR8. */
	write_cr8(5);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TASKPRI), 0x50);
	xapic_self_ipi(0x46);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 1);
	write_cr8(4);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(me->count, 1);
	write_cr8(3);
	GUEST_ASSERT_EQ(me->count, 2);
	GUEST_ASSERT_EQ(me->last_vector, 0x46);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_TASKPRI), 0x30);

	/* A higher class gets through; in service, it raises PPR. */
	write_cr8(5);
	xapic_self_ipi(0x61);
	GUEST_ASSERT(spin_until(&me->count, 3, 100 * NS_PER_MS));
	GUEST_ASSERT_EQ(me->last_vector, 0x61);
	GUEST_ASSERT_EQ(me->ppr, 0x60);
	GUEST_ASSERT_EQ(xapic_read_reg(APIC_PROCPRI), 0x50);
	write_cr8(0);

	/* Two waiting: the higher first. */
	cli();
	xapic_self_ipi(0x45);
	xapic_self_ipi(0x61);
	sti();
	GUEST_ASSERT(spin_until(&me->count, 5, 100 * NS_PER_MS));
	GUEST_ASSERT_EQ(me->order[3], 0x61);
	GUEST_ASSERT_EQ(me->order[4], 0x45);
	GUEST_DONE();
}

TEST(tpr_blocks_delivery)
{
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_tpr, &vcpu, false);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* ---- HLT ------------------------------------------------------------ */

/*
 * Wait until vcpu-get shows vCPU @id halted (in LVMM_RUN, waiting).
 * Without netlink, give it 200 ms and say yes.
 */
static bool wait_halted(struct lvmm_vm *vm, u32 id)
{
	if (!have_netlink()) {
		usleep(200000);
		return true;
	}
	return wait_for(nl_vcpu_state(vm, id) == LVMM_VCPU_STATE_HALTED, 5000);
}

static void guest_hlt_timer(void)
{
	u64 t0;

	timer_setup(APIC_LVT_TIMER_ONESHOT | IRQ_VECTOR, APIC_TDCR_1);
	GUEST_SYNC(0);
	t0 = rdtsc();		/* before arming, as in oneshot_check() */
	xapic_write_reg(APIC_TMICT, 300 * NS_PER_MS);
	asm volatile("sti; hlt; cli" ::: "memory");
	GUEST_SYNC_ARGS(1, irqs[0].count, rdtsc() - t0, 0, 0);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, hlt_sleeps_until_timer, 60)
{
	struct lvmm_vcpu *vcpu;
	struct timed_run t;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_hlt_timer, &vcpu, false);
	vcpu_expect_sync(vcpu, 0);

	timed_run_start(&t, vcpu, true);
	ASSERT_TRUE(wait_halted(vm, 0)) TH_LOG("vcpu-get never said halted");
	ASSERT_TRUE(timed_run_wait(&t, 10000)) TH_LOG("the timer did not wake it");
	ASSERT_EQ(0, t.ret);
	ASSERT_EQ(UCALL_SYNC, get_ucall(vcpu, &uc));
	EXPECT_EQ(1, uc.args[0]);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("timer interrupts");
	EXPECT_LE(300 * NS_PER_MS * tsc_khz_lo / NS_PER_MS, uc.args[2])
		TH_LOG("woke after %llu ticks", (unsigned long long)uc.args[2]);
	/* Asleep, not spinning: a small share of the time on a CPU. */
	EXPECT_LE(300 * NS_PER_MS, t.wall_ns);
	EXPECT_GT(t.wall_ns / 4, t.cpu_ns)
		TH_LOG("%llu ns of CPU in %llu ns of RUN",
		       (unsigned long long)t.cpu_ns,
		       (unsigned long long)t.wall_ns);
	EXPECT_EQ(LVMM_MP_STATE_RUNNABLE, vcpu_get_mp_state(vcpu));
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

static volatile u64 after_hlt;

static void guest_hlt_wake(void)
{
	volatile struct vcpu_irqs *me = &irqs[0];

	xapic_enable();
	sti();
	GUEST_SYNC(0);
	asm volatile("hlt" ::: "memory");
	after_hlt = 1;
	GUEST_SYNC_ARGS(1, me->count, me->last_vector, 0, 0);
	asm volatile("hlt" ::: "memory");
	GUEST_SYNC_ARGS(2, me->nmi_count, me->count, 0, 0);
	GUEST_DONE();
}

/*
 * Run @vcpu, halted in its guest, in a thread until vcpu-get says it is
 * halted, then signal it out: LVMM_RUN returns EINTR, still halted.
 * Other vCPU ioctls wait for a RUN in progress, so this is how a VMM
 * reaches a halted vCPU.
 */
static void signal_out_of_hlt(struct __test_metadata *_metadata,
			      struct lvmm_vm *vm, struct lvmm_vcpu *vcpu,
			      const char *what)
{
	struct timed_run t;

	timed_run_start(&t, vcpu, false);
	ASSERT_TRUE(wait_halted(vm, vcpu->id)) TH_LOG("vcpu-get never said halted");
	usleep(200000);
	ASSERT_FALSE(t.done) TH_LOG("HLT left RUN: exit %s",
				    exit_reason_str(vcpu->run->exit_reason));
	pthread_kill(t.thread, SIGUSR1);
	ASSERT_TRUE(wait_for(t.done, 5000)) TH_LOG("the signal did not end RUN");
	pthread_join(t.thread, NULL);
	EXPECT_EQ(-EINTR, t.ret);
	EXPECT_EQ(LVMM_EXIT_INTR, vcpu->run->exit_reason);
	EXPECT_EQ(LVMM_MP_STATE_HALTED, vcpu_get_mp_state(vcpu));
	/* Allow for a slow CPU: the wait itself must not burn one. */
	EXPECT_GT(t.wall_ns / 4, t.cpu_ns)
		TH_LOG("%s: %llu ns of CPU in %llu ns of RUN", what,
		       (unsigned long long)t.cpu_ns,
		       (unsigned long long)t.wall_ns);
}

TEST_F_TIMEOUT(lapic, hlt_signal_eintr_stays_halted, 60)
{
	struct lvmm_vcpu *vcpu;
	struct timed_run t;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_hlt_wake, &vcpu, false);
	vcpu_expect_sync(vcpu, 0);

	/*
	 * A signal takes the thread out of HLT with EINTR; it goes back
	 * into RUN, still halted, and sleeps again until the next one.
	 */
	timed_run_start(&t, vcpu, true);
	ASSERT_TRUE(wait_halted(vm, 0)) TH_LOG("vcpu-get never said halted");
	usleep(200000);
	pthread_kill(t.thread, SIGUSR1);
	ASSERT_TRUE(wait_for(t.nr_eintr, 5000)) TH_LOG("the signal did not end RUN");
	ASSERT_TRUE(wait_halted(vm, 0));
	usleep(300000);
	EXPECT_FALSE(t.done);
	t.retry_eintr = false;
	pthread_kill(t.thread, SIGUSR1);
	ASSERT_TRUE(wait_for(t.done, 5000));
	pthread_join(t.thread, NULL);
	EXPECT_EQ(-EINTR, t.ret);
	EXPECT_EQ(LVMM_EXIT_INTR, vcpu->run->exit_reason);
	EXPECT_EQ(LVMM_MP_STATE_HALTED, vcpu_get_mp_state(vcpu));
	EXPECT_GT(t.wall_ns / 4, t.cpu_ns)
		TH_LOG("HLT, EINTR, RUN again: %llu ns of CPU in %llu ns of RUN",
		       (unsigned long long)t.cpu_ns,
		       (unsigned long long)t.wall_ns);
	EXPECT_EQ(0, *(volatile u64 *)addr_gva2hva(vm, &after_hlt));

	/* A RUN of the halted vCPU from another thread: the same. */
	signal_out_of_hlt(_metadata, vm, vcpu,
			  "RUN of a halted vCPU on a new thread");
	EXPECT_EQ(0, *(volatile u64 *)addr_gva2hva(vm, &after_hlt));
	vm_free(vm);
}

/* An NMI handler that halts, with NMIs blocked until its IRET. */
static void guest_nmi_hlt_handler(struct ex_regs *regs)
{
	(void)regs;
	irqs[0].nmi_count++;
	asm volatile("hlt" ::: "memory");
}

static void guest_wait_nmi(void)
{
	xapic_enable();
	GUEST_SYNC(0);
	for (;;)
		cpu_relax();
}

/*
 * A vCPU halted in its NMI handler sleeps, also with a second NMI
 * pending: it cannot take that one before its IRET, so waking for it
 * would only make the vCPU enter, halt and wake again, spinning.
 */
TEST_F_TIMEOUT(lapic, hlt_in_nmi_handler_sleeps, 60)
{
	volatile u64 *nmis;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_wait_nmi, &vcpu, false);
	vm_install_exception_handler(vm, NMI_VECTOR, guest_nmi_hlt_handler);
	nmis = addr_gva2hva(vm, (void *)&irqs[0].nmi_count);
	vcpu_expect_sync(vcpu, 0);
	ASSERT_EQ(0, lvmm_nmi(&vcpu->h));
	signal_out_of_hlt(_metadata, vm, vcpu, "HLT in the NMI handler");
	EXPECT_EQ(1, *nmis);
	ASSERT_EQ(0, lvmm_nmi(&vcpu->h));
	signal_out_of_hlt(_metadata, vm, vcpu,
			  "HLT in the NMI handler, a second NMI pending");
	EXPECT_EQ(1, *nmis) TH_LOG("an NMI was taken inside the NMI handler");
	vm_free(vm);
}

TEST_F_TIMEOUT(lapic, hlt_wakes_on_lvmm_interrupt_and_nmi, 60)
{
	struct lvmm_vcpu *vcpu;
	struct timed_run t;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = apic_vm(1, guest_hlt_wake, &vcpu, false);
	vcpu_expect_sync(vcpu, 0);

	signal_out_of_hlt(_metadata, vm, vcpu, "HLT");
	ASSERT_EQ(0, lvmm_interrupt(&vcpu->h, IRQ_VECTOR));
	/* Requested, not taken: it takes it when it runs. */
	EXPECT_EQ(LVMM_MP_STATE_HALTED, vcpu_get_mp_state(vcpu));
	timed_run_start(&t, vcpu, true);
	ASSERT_TRUE(timed_run_wait(&t, 5000)) TH_LOG("LVMM_INTERRUPT did not wake it");
	ASSERT_EQ(0, t.ret);
	ASSERT_EQ(UCALL_SYNC, get_ucall(vcpu, &uc));
	EXPECT_EQ(1, uc.args[0]);
	EXPECT_EQ(1, uc.args[1]);
	EXPECT_EQ(IRQ_VECTOR, uc.args[2]);
	EXPECT_EQ(1, *(volatile u64 *)addr_gva2hva(vm, &after_hlt));

	signal_out_of_hlt(_metadata, vm, vcpu, "second HLT");
	ASSERT_EQ(0, lvmm_nmi(&vcpu->h));
	timed_run_start(&t, vcpu, true);
	ASSERT_TRUE(timed_run_wait(&t, 5000)) TH_LOG("LVMM_NMI did not wake it");
	ASSERT_EQ(0, t.ret);
	ASSERT_EQ(UCALL_SYNC, get_ucall(vcpu, &uc));
	EXPECT_EQ(2, uc.args[0]);
	EXPECT_EQ(1, uc.args[1]);
	EXPECT_EQ(1, uc.args[2]);
	vcpu_expect_done(vcpu);
	vm_free(vm);
}

/* ---- IPIs between two vCPUs ----------------------------------------- */

#define WAIT_NS		(2000 * NS_PER_MS)

/*
 * vCPU 1 of the IPI tests: take interrupts until vCPU 0 is done, halted
 * in between if @halt (vCPU 0 then wakes it with one more IPI).
 */
static void ipi_target(u64 id, bool enable, bool halt)
{
	if (enable)
		xapic_enable();
	irqs[id].ready = 1;
	if (halt) {
		while (!irqs[0].stage)
			asm volatile("sti; hlt" ::: "memory");
	}
	GUEST_ASSERT(spin_until(&irqs[0].stage, 1, 10 * WAIT_NS));
	GUEST_DONE();
}

static void guest_ipi_fixed(u64 id)
{
	sti();
	if (id) {
		ipi_target(id, true, true);
		return;
	}
	xapic_enable();
	GUEST_ASSERT(spin_until(&irqs[1].ready, 1, WAIT_NS));
	/* vCPU 1 is asleep in HLT by now: the IPI wakes it. */
	spin_ns(50 * NS_PER_MS);
	xapic_send_ipi(1, APIC_DM_FIXED | 0x50);
	GUEST_ASSERT(!(xapic_read_reg(APIC_ICR) & APIC_ICR_BUSY));
	GUEST_ASSERT(spin_until(&irqs[1].count, 1, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x50);
	/* In service at vCPU 1, in its own handler. */
	GUEST_ASSERT_EQ(irqs[1].isr, 1);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].count, 0);
	GUEST_ASSERT_EQ(irqs[1].count, 1);
	/* To an ID nobody has: nobody. */
	xapic_send_ipi(7, APIC_DM_FIXED | 0x51);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].count + irqs[1].count, 1);
	irqs[0].stage = 1;
	xapic_send_ipi(1, APIC_DM_FIXED | 0x5f);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, ipi_fixed_physical, 60)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(NR_VCPUS, guest_ipi_fixed, vcpus, true);
	run_pair(vcpus);
	vm_free(vm);
}

static void guest_ipi_logical(u64 id)
{
	sti();
	xapic_write_reg(APIC_DFR, APIC_DFR_FLAT);
	xapic_write_reg(APIC_LDR, (1U << id) << 24);
	if (id) {
		ipi_target(id, true, false);
		return;
	}
	xapic_enable();
	GUEST_ASSERT(spin_until(&irqs[1].ready, 1, WAIT_NS));
	/* Logical 0x02: vCPU 1 alone. */
	xapic_send_ipi(0x02, APIC_DEST_LOGICAL | APIC_DM_FIXED | 0x52);
	GUEST_ASSERT(spin_until(&irqs[1].count, 1, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x52);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].count, 0);
	/* Logical 0x03: both. */
	xapic_send_ipi(0x03, APIC_DEST_LOGICAL | APIC_DM_FIXED | 0x53);
	GUEST_ASSERT(spin_until(&irqs[0].count, 1, WAIT_NS));
	GUEST_ASSERT(spin_until(&irqs[1].count, 2, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[0].last_vector, 0x53);
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x53);
	/* Logical 0x04: nobody. */
	xapic_send_ipi(0x04, APIC_DEST_LOGICAL | APIC_DM_FIXED | 0x54);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].count, 1);
	GUEST_ASSERT_EQ(irqs[1].count, 2);
	/* Lowest priority to both: the lowest-numbered, vCPU 0. */
	xapic_send_ipi(0x03, APIC_DEST_LOGICAL | APIC_DM_LOWEST | 0x55);
	GUEST_ASSERT(spin_until(&irqs[0].count, 2, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[0].last_vector, 0x55);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[1].count, 2);
	irqs[0].stage = 1;
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, ipi_logical_flat, 60)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(NR_VCPUS, guest_ipi_logical, vcpus, true);
	run_pair(vcpus);
	vm_free(vm);
}

static void guest_ipi_nmi(u64 id)
{
	/* vCPU 1 takes it with IF clear and its APIC software-disabled. */
	cli();
	if (id) {
		ipi_target(id, false, false);
		return;
	}
	xapic_enable();
	GUEST_ASSERT(spin_until(&irqs[1].ready, 1, WAIT_NS));
	xapic_send_ipi(1, APIC_DM_NMI | APIC_INT_ASSERT);
	GUEST_ASSERT(spin_until(&irqs[1].nmi_count, 1, WAIT_NS));
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].nmi_count, 0);
	GUEST_ASSERT_EQ(irqs[1].nmi_count, 1);
	GUEST_ASSERT_EQ(irqs[1].count, 0);
	irqs[0].stage = 1;
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, ipi_nmi, 60)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(NR_VCPUS, guest_ipi_nmi, vcpus, true);
	run_pair(vcpus);
	vm_free(vm);
}

static void guest_ipi_broadcast(u64 id)
{
	sti();
	if (id) {
		ipi_target(id, true, false);
		return;
	}
	xapic_enable();
	GUEST_ASSERT(spin_until(&irqs[1].ready, 1, WAIT_NS));
	/* All but self. */
	xapic_write_reg(APIC_ICR, APIC_DEST_ALLBUT | APIC_DM_FIXED | 0x56);
	GUEST_ASSERT(spin_until(&irqs[1].count, 1, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x56);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].count, 0);
	/* All including self. */
	xapic_write_reg(APIC_ICR, APIC_DEST_ALLINC | APIC_DM_FIXED | 0x57);
	GUEST_ASSERT(spin_until(&irqs[0].count, 1, WAIT_NS));
	GUEST_ASSERT(spin_until(&irqs[1].count, 2, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[0].last_vector, 0x57);
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x57);
	/* Physical 0xff is everyone. */
	xapic_send_ipi(0xff, APIC_DM_FIXED | 0x58);
	GUEST_ASSERT(spin_until(&irqs[0].count, 2, WAIT_NS));
	GUEST_ASSERT(spin_until(&irqs[1].count, 3, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[0].last_vector, 0x58);
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x58);
	irqs[0].stage = 1;
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, ipi_broadcast_shorthands, 60)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(NR_VCPUS, guest_ipi_broadcast, vcpus, true);
	run_pair(vcpus);
	vm_free(vm);
}

static void guest_ipi_cluster(u64 id)
{
	sti();
	/* Cluster 1, bit @id. */
	xapic_write_reg(APIC_DFR, APIC_DFR_CLUSTER);
	xapic_write_reg(APIC_LDR, (0x10U | (1U << id)) << 24);
	if (id) {
		ipi_target(id, true, false);
		return;
	}
	xapic_enable();
	GUEST_ASSERT(spin_until(&irqs[1].ready, 1, WAIT_NS));
	/* Cluster 1, bit 1: vCPU 1 alone. */
	xapic_send_ipi(0x12, APIC_DEST_LOGICAL | APIC_DM_FIXED | 0x52);
	GUEST_ASSERT(spin_until(&irqs[1].count, 1, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x52);
	/* Cluster 1, bits 0 and 1: both. */
	xapic_send_ipi(0x13, APIC_DEST_LOGICAL | APIC_DM_FIXED | 0x53);
	GUEST_ASSERT(spin_until(&irqs[0].count, 1, WAIT_NS));
	GUEST_ASSERT(spin_until(&irqs[1].count, 2, WAIT_NS));
	/* Clusters 0 and 2: nobody. */
	xapic_send_ipi(0x03, APIC_DEST_LOGICAL | APIC_DM_FIXED | 0x54);
	xapic_send_ipi(0x23, APIC_DEST_LOGICAL | APIC_DM_FIXED | 0x54);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].count, 1);
	GUEST_ASSERT_EQ(irqs[1].count, 2);
	irqs[0].stage = 1;
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, ipi_logical_cluster, 60)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(NR_VCPUS, guest_ipi_cluster, vcpus, true);
	run_pair(vcpus);
	vm_free(vm);
}

static void guest_ipi_x2apic(u64 id)
{
	sti();
	x2apic_enable();
	irqs[id].x2apic = 1;
	if (id) {
		ipi_target(id, false, false);
		return;
	}
	GUEST_ASSERT(spin_until(&irqs[1].ready, 1, WAIT_NS));
	/* Physical: x2APIC ID 1. */
	x2apic_write_reg(APIC_ICR, (1ULL << 32) | APIC_DM_FIXED | 0x60);
	GUEST_ASSERT(spin_until(&irqs[1].count, 1, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x60);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].count, 0);
	/* Cluster 0, bit 1; then bits 0 and 1. */
	x2apic_write_reg(APIC_ICR, (2ULL << 32) | APIC_DEST_LOGICAL | 0x61);
	GUEST_ASSERT(spin_until(&irqs[1].count, 2, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x61);
	x2apic_write_reg(APIC_ICR, (3ULL << 32) | APIC_DEST_LOGICAL | 0x62);
	GUEST_ASSERT(spin_until(&irqs[0].count, 1, WAIT_NS));
	GUEST_ASSERT(spin_until(&irqs[1].count, 3, WAIT_NS));
	/* Cluster 1: nobody. */
	x2apic_write_reg(APIC_ICR, (0x10003ULL << 32) | APIC_DEST_LOGICAL | 0x63);
	spin_ns(10 * NS_PER_MS);
	GUEST_ASSERT_EQ(irqs[0].count, 1);
	GUEST_ASSERT_EQ(irqs[1].count, 3);
	/* Physical 0xffffffff: everyone. */
	x2apic_write_reg(APIC_ICR, (0xffffffffULL << 32) | APIC_DM_FIXED | 0x64);
	GUEST_ASSERT(spin_until(&irqs[0].count, 2, WAIT_NS));
	GUEST_ASSERT(spin_until(&irqs[1].count, 4, WAIT_NS));
	GUEST_ASSERT_EQ(irqs[0].last_vector, 0x64);
	GUEST_ASSERT_EQ(irqs[1].last_vector, 0x64);
	irqs[0].stage = 1;
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, ipi_x2apic, 60)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = apic_vm(NR_VCPUS, guest_ipi_x2apic, vcpus, true);
	run_pair(vcpus);
	vm_free(vm);
}

/*
 * vCPU 0: INIT and SIPI to vCPU 1, once the host says go; with
 * @second, a second SIPI right after the first, as Linux sends it.
 */
static void guest_init_sipi(u64 id, u64 second)
{
	(void)id;
	xapic_enable();
	GUEST_ASSERT(spin_until(&host_go, 1, 10 * WAIT_NS));
	xapic_send_ipi(1, APIC_DM_INIT | APIC_INT_ASSERT | APIC_INT_LEVELTRIG);
	xapic_send_ipi(1, APIC_DM_INIT | APIC_INT_LEVELTRIG);
	xapic_send_ipi(1, APIC_DM_STARTUP | SIPI_VECTOR);
	/* vCPU 1 no longer waits: a second SIPI is ignored. */
	if (second)
		xapic_send_ipi(1, APIC_DM_STARTUP | SIPI_VECTOR2);
	GUEST_DONE();
}

/*
 * Real mode at (vector << 12): write a marker into another page (DS is
 * 0), OUT the tag to SIPI_PORT, and halt.
 */
static void put_sipi_code(struct lvmm_vm *vm, u32 vector, u8 tag)
{
	const u8 code[] = {
		0xb8, 0x5a, 0x5a,		/* mov $0x5a5a, %ax */
		0xa3, SIPI_MARKER_GPA & 0xff, SIPI_MARKER_GPA >> 8,
						/* mov %ax, (SIPI_MARKER_GPA) */
		0xb0, tag,			/* mov $tag, %al */
		0xe6, SIPI_PORT,		/* out %al, $SIPI_PORT */
		0xf4,				/* 1: hlt */
		0xeb, 0xfd,			/* jmp 1b */
	};

	memcpy(addr_gpa2hva(vm, (u64)vector << 12), code, sizeof(code));
}

/* Not the reset PAT (0x0007040600070406): WC in entries 1 and 5. */
#define INIT_PAT	0x0007010600070106ULL

/*
 * INIT and SIPI (a second one with @second) from vCPU 0 bring vCPU 1,
 * which waited in LVMM_RUN, up in the real-mode code at SIPI_VECTOR.
 */
static void init_sipi(struct __test_metadata *_metadata, bool second)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct lvmm_sregs sregs;
	struct timed_run t;
	struct lvmm_vm *vm;

	vm = apic_vm(NR_VCPUS, guest_init_sipi, vcpus, false);
	vcpu_args_set(vcpus[0], 2, 0ULL, (u64)second);
	/* INIT keeps PAT, as it keeps the TSC. */
	vcpu_set_msr(vcpus[1], MSR_IA32_CR_PAT, INIT_PAT);
	put_sipi_code(vm, SIPI_VECTOR, 0x42);
	put_sipi_code(vm, SIPI_VECTOR2, 0x99);
	EXPECT_EQ(LVMM_MP_STATE_WAIT_SIPI, vcpu_get_mp_state(vcpus[1]));

	/* vCPU 1 waits in RUN for its SIPI, asleep. */
	timed_run_start(&t, vcpus[1], true);
	ASSERT_TRUE(wait_halted(vm, 1)) TH_LOG("vcpu-get never said halted");
	usleep(300000);
	ASSERT_FALSE(t.done) TH_LOG("vCPU 1 ran without a SIPI: exit %s",
				    exit_reason_str(vcpus[1]->run->exit_reason));

	set_host_go(vm);
	vcpu_expect_done(vcpus[0]);
	ASSERT_TRUE(timed_run_wait(&t, 10000)) TH_LOG("the SIPI did not start vCPU 1");
	ASSERT_EQ(0, t.ret);
	TEST_ASSERT_EXIT_REASON(vcpus[1], LVMM_EXIT_IO);
	EXPECT_EQ(SIPI_PORT, vcpus[1]->run->io.port);
	EXPECT_EQ(LVMM_EXIT_IO_OUT, vcpus[1]->run->io.direction);
	EXPECT_EQ(1, vcpus[1]->run->io.size);
	EXPECT_EQ(0x42, *(u8 *)vcpu_io_data(vcpus[1]))
		TH_LOG("0x99: the second SIPI started it");
	EXPECT_EQ(0x5a5a, *(u16 *)addr_gpa2hva(vm, SIPI_MARKER_GPA));
	vcpu_sregs_get(vcpus[1], &sregs);
	EXPECT_EQ((u16)(SIPI_VECTOR << 8), sregs.cs.selector);
	EXPECT_EQ((u64)SIPI_VECTOR << 12, sregs.cs.base);
	EXPECT_EQ(0, sregs.cr0 & X86_CR0_PE);
	EXPECT_EQ(0, sregs.efer & EFER_LME);
	EXPECT_EQ(INIT_PAT, vcpu_get_msr(vcpus[1], MSR_IA32_CR_PAT));
	EXPECT_EQ(LVMM_MP_STATE_RUNNABLE, vcpu_get_mp_state(vcpus[1]));
	/* It slept while it waited. */
	EXPECT_GT(t.wall_ns / 4, t.cpu_ns)
		TH_LOG("WAIT_SIPI: %llu ns of CPU in %llu ns of RUN",
		       (unsigned long long)t.cpu_ns,
		       (unsigned long long)t.wall_ns);
	vm_free(vm);
}

TEST_F_TIMEOUT(lapic, init_sipi_starts_ap, 60)
{
	REQUIRE_IRQCHIP();
	init_sipi(_metadata, false);
}

TEST_F_TIMEOUT(lapic, second_sipi_ignored, 60)
{
	REQUIRE_IRQCHIP();
	init_sipi(_metadata, true);
}

/* ---- the state in and out ------------------------------------------- */

#define STATE_ICT	0xffffffffU	/* at divide 16: about 69 s */

static void guest_lapic_state_src(void)
{
	cli();
	xapic_enable();
	xapic_write_reg(APIC_TASKPRI, 0x30);
	xapic_write_reg(APIC_DFR, APIC_DFR_CLUSTER);
	xapic_write_reg(APIC_LDR, 0x21000000);
	xapic_write_reg(APIC_LVT0, APIC_LVT_MASKED | 0x31);
	xapic_write_reg(APIC_LVTERR, 0x33);
	xapic_write_reg(APIC_TDCR, APIC_TDCR_16);
	xapic_write_reg(APIC_LVTT, APIC_LVT_TIMER_ONESHOT | IRQ_VECTOR);
	xapic_write_reg(APIC_TMICT, STATE_ICT);
	xapic_self_ipi(0x45);
	GUEST_SYNC(0);
	GUEST_DONE();
}

/* The copy: what the registers say, then the interrupt it was left. */
static void guest_lapic_state_dst(void)
{
	u32 c0, c1;

	cli();
	c0 = xapic_read_reg(APIC_TMCCT);
	spin_ns(5 * NS_PER_MS);
	c1 = xapic_read_reg(APIC_TMCCT);
	GUEST_SYNC_ARGS(xapic_read_reg(APIC_TASKPRI), xapic_read_reg(APIC_SPIV),
			xapic_read_reg(APIC_LDR), c0, c1);
	GUEST_ASSERT(xapic_vector_bit(APIC_IRR, 0x45));
	sti();
	GUEST_ASSERT(spin_until(&irqs[0].count, 1, 100 * NS_PER_MS));
	cli();
	GUEST_ASSERT_EQ(irqs[0].last_vector, 0x45);
	GUEST_DONE();
}

static const u32 state_regs[] = {
	APIC_ID, APIC_LVR, APIC_TASKPRI, APIC_LDR, APIC_DFR, APIC_SPIV,
	APIC_LVTT, APIC_LVTTHMR, APIC_LVTPC, APIC_LVT0, APIC_LVT1, APIC_LVTERR,
	APIC_TMICT, APIC_TDCR, APIC_IRR + 0x20,
};

TEST_F_TIMEOUT(lapic, lapic_state_round_trip, 60)
{
	struct lvmm_lapic_state *s = calloc(1, sizeof(*s));
	struct lvmm_lapic_state *s2 = calloc(1, sizeof(*s2));
	struct lvmm_vcpu *src, *dst;
	struct lvmm_vm *vm, *vm2;
	u32 cct1, cct2, cct3;
	u64 t0, t1;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	ASSERT_TRUE(s && s2);
	vm = apic_vm(1, guest_lapic_state_src, &src, false);
	vcpu_expect_sync(src, 0);
	vcpu_get_lapic(src, s);
	EXPECT_EQ(0, s->tsc_deadline);
	EXPECT_EQ(0, lapic_reg(s, APIC_ID));
	EXPECT_EQ(APIC_VERSION_VALUE, lapic_reg(s, APIC_LVR));
	EXPECT_EQ(APIC_SPIV_APIC_ENABLED | 0xff, lapic_reg(s, APIC_SPIV));
	EXPECT_EQ(0x30, lapic_reg(s, APIC_TASKPRI));
	EXPECT_EQ(0x30, lapic_reg(s, APIC_PROCPRI));
	EXPECT_EQ(APIC_DFR_CLUSTER, lapic_reg(s, APIC_DFR));
	EXPECT_EQ(0x21000000, lapic_reg(s, APIC_LDR));
	EXPECT_EQ(APIC_LVT_MASKED | 0x31, lapic_reg(s, APIC_LVT0));
	EXPECT_EQ(0x33, lapic_reg(s, APIC_LVTERR));
	EXPECT_EQ(APIC_TDCR_16, lapic_reg(s, APIC_TDCR));
	EXPECT_EQ(IRQ_VECTOR, lapic_reg(s, APIC_LVTT));
	EXPECT_EQ(STATE_ICT, lapic_reg(s, APIC_TMICT));
	cct1 = lapic_reg(s, APIC_TMCCT);
	EXPECT_LT(0, cct1);
	EXPECT_GE(STATE_ICT, cct1);
	EXPECT_EQ(1U << 5, lapic_reg(s, APIC_IRR + 0x20));	/* 0x45 */
	EXPECT_EQ(0, lapic_reg(s, APIC_ISR + 0x20));

	/* Into a fresh vCPU of another VM, with a PPR to recompute. */
	vm2 = apic_vm(1, guest_lapic_state_dst, &dst, false);
	lapic_reg(s, APIC_PROCPRI) = 0xff;
	vcpu_set_lapic(dst, s);
	t0 = now_ns();
	vcpu_get_lapic(dst, s2);
	for (size_t i = 0; i < ARRAY_SIZE(state_regs); i++) {
		EXPECT_EQ(lapic_reg(s, state_regs[i]),
			  lapic_reg(s2, state_regs[i]))
			TH_LOG("register 0x%x", state_regs[i]);
	}
	EXPECT_EQ(0x30, lapic_reg(s2, APIC_PROCPRI));
	cct2 = lapic_reg(s2, APIC_TMCCT);
	EXPECT_GE(cct1, cct2);
	EXPECT_LT(0, cct2);

	/* It counts on: at 16 ns a count, not faster. */
	usleep(100000);
	vcpu_get_lapic(dst, s2);
	t1 = now_ns();
	cct3 = lapic_reg(s2, APIC_TMCCT);
	EXPECT_GT(cct2, cct3) TH_LOG("the current count does not go down");
	EXPECT_GE((t1 - t0) / 16 + 1, (u64)cct2 - cct3);

	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(dst, &uc));
	EXPECT_EQ(0x30, uc.args[0]);
	EXPECT_EQ(APIC_SPIV_APIC_ENABLED | 0xff, uc.args[1]);
	EXPECT_EQ(0x21000000, uc.args[2]);
	EXPECT_GE(cct3, uc.args[3]);
	EXPECT_GT(uc.args[3], uc.args[4]) TH_LOG("counting in the guest");
	vcpu_expect_done(dst);
	vm_free(vm2);
	vm_free(vm);
	free(s);
	free(s2);
}

/* An armed TSC deadline goes out with GET_LAPIC and in with SET_LAPIC. */
static void guest_deadline_state(void)
{
	u64 d;

	timer_setup(APIC_LVT_TIMER_TSCDEADLINE | IRQ_VECTOR, APIC_TDCR_1);
	sti();
	d = rdtsc() + ns_to_tsc_hi(3600 * NS_PER_SEC);
	wrmsr(MSR_IA32_TSC_DEADLINE, d);
	GUEST_SYNC(d);
	GUEST_ASSERT(spin_until(&irqs[0].count, 1, LATE_NS));
	GUEST_SYNC_ARGS(irqs[0].tsc, rdmsr(MSR_IA32_TSC_DEADLINE), 0, 0, 0);
	GUEST_DONE();
}

TEST_F_TIMEOUT(lapic, lapic_state_tsc_deadline, 60)
{
	struct lvmm_lapic_state *s = calloc(1, sizeof(*s));
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;
	u64 d;

	REQUIRE_IRQCHIP();
	ASSERT_NE(NULL, s);
	vm = apic_vm(1, guest_deadline_state, &vcpu, false);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	vcpu_get_lapic(vcpu, s);
	EXPECT_EQ(uc.args[0], s->tsc_deadline);
	EXPECT_EQ(APIC_LVT_TIMER_TSCDEADLINE | IRQ_VECTOR,
		  lapic_reg(s, APIC_LVTT));
	/* 20 ms from now, instead of an hour. */
	d = vcpu_get_msr(vcpu, MSR_IA32_TSC) +
	    20 * NS_PER_MS * tsc_khz_hi / NS_PER_MS;
	s->tsc_deadline = d;
	vcpu_set_lapic(vcpu, s);
	vcpu_get_lapic(vcpu, s);
	EXPECT_EQ(d, s->tsc_deadline);
	ASSERT_EQ(UCALL_SYNC, vcpu_run_ucall(vcpu, &uc));
	EXPECT_LE(d, uc.args[0]) TH_LOG("fired before the deadline");
	EXPECT_EQ(0, uc.args[1]);
	vcpu_expect_done(vcpu);
	vm_free(vm);
	free(s);
}

TEST_HARNESS_MAIN
