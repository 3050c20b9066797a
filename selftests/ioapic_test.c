// SPDX-License-Identifier: GPL-2.0
/*
 * The in-kernel I/O APIC (LVMM_CAP_IRQCHIP, Documentation/irqchip.rst,
 * section 5): the ABI of LVMM_IRQ_LINE and LVMM_GET/SET_IOAPIC, the
 * registers as the guest reads them, edge- and level-triggered pins,
 * masking, remote IRR and the EOI, redirection to another vCPU, and the
 * state in and out.
 *
 * The guest programs the I/O APIC through its page at LVMM_IOAPIC_BASE
 * and its local APIC through the xAPIC page, both below 4 GiB, which the
 * library's page tables identity-map.  Every LVMM_RUN here has a
 * watchdog: a guest that waits for an interrupt that never comes makes
 * the test fail with a message instead of hanging until the harness
 * kills it.
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lvmm_util.h"
#include "apic.h"
#include "vcpu_runner.h"

#define NR_VCPUS	2

/* The I/O APIC's page, as the guest sees it. */
#define IOAPIC_GPA		LVMM_IOAPIC_BASE
#define IOAPIC_IOREGSEL		0x00
#define IOAPIC_IOWIN		0x10
#define IOAPIC_REG_ID		0x00
#define IOAPIC_REG_VER		0x01
#define IOAPIC_REG_RTE_LO(pin)	(0x10 + 2 * (pin))
#define IOAPIC_REG_RTE_HI(pin)	(0x11 + 2 * (pin))
#define IOAPIC_VERSION_VALUE	0x00170011U	/* 24 entries, version 0x11 */

/* Redirection table entry bits (82093AA datasheet). */
#define RTE_DM_LOWEST		(1ULL << 8)
#define RTE_DM_NMI		(4ULL << 8)
#define RTE_LOGICAL		(1ULL << 11)
#define RTE_DELIVS		(1ULL << 12)
#define RTE_POLARITY_LOW	(1ULL << 13)
#define RTE_REMOTE_IRR		(1ULL << 14)
#define RTE_LEVEL		(1ULL << 15)
#define RTE_MASKED		(1ULL << 16)
#define RTE_DEST(id)		((u64)(id) << 56)

/*
 * Edge vectors are of a higher priority class than level ones: the guest
 * holds a level vector in service until it chooses to EOI, and the edge
 * ones must still get through.
 */
#define EDGE_VEC	0x61
#define EDGE_VEC2	0x71
#define LEVEL_VEC	0x52
#define LEVEL_VEC2	0x53
#define SPURIOUS_VEC	0xff

#define EDGE_PIN	3
#define LEVEL_PIN	9
#define BCAST_PIN	12

/* Guest TSC ticks: at most this long for an interrupt that is due... */
#define WAIT_TSC	5000000000ULL
/* ... and this long for one that must not come (a few ms). */
#define SETTLE_TSC	20000000ULL

/* How long one LVMM_RUN may take before the watchdog ends it. */
#define RUN_TIMEOUT_MS	5000

#define REQUIRE_IRQCHIP() do {						\
	TEST_REQUIRE(lvmm_dev_present());				\
	TEST_REQUIRE(lvmm_cap(LVMM_CAP_IRQCHIP));			\
} while (0)

#define PIN_BIT(n)	(1U << (n))

/* ---- guest side ---------------------------------------------------- */

/* What each vCPU's handler saw, by APIC ID and vector. */
static volatile u64 irqs[NR_VCPUS][256];
static volatile u64 irq_total[NR_VCPUS];
static volatile u64 irq_tmr[NR_VCPUS];	/* TMR bit of the last vector */
/* A vCPU tells the host where it is (for the host's other threads). */
static volatile u64 ready[NR_VCPUS];
/* VM B of the round trip: the redirection table the host loaded. */
static volatile u64 rt_expected[LVMM_IOAPIC_PINS];

/* 32-bit MOVs through a register, as an OS's readl()/writel(). */
static inline u32 mmio_read32(u64 addr)
{
	u32 v;

	asm volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline void mmio_write32(u64 addr, u32 v)
{
	asm volatile("movl %0, (%1)" :: "r"(v), "r"(addr) : "memory");
}

static u32 ioapic_read(u32 reg)
{
	mmio_write32(IOAPIC_GPA + IOAPIC_IOREGSEL, reg);
	return mmio_read32(IOAPIC_GPA + IOAPIC_IOWIN);
}

static void ioapic_write(u32 reg, u32 v)
{
	mmio_write32(IOAPIC_GPA + IOAPIC_IOREGSEL, reg);
	mmio_write32(IOAPIC_GPA + IOAPIC_IOWIN, v);
}

static u64 ioapic_read_rte(u32 pin)
{
	u64 lo = ioapic_read(IOAPIC_REG_RTE_LO(pin));

	return lo | (u64)ioapic_read(IOAPIC_REG_RTE_HI(pin)) << 32;
}

/* The destination first, so that an unmasking low half finds it. */
static void ioapic_write_rte(u32 pin, u64 rte)
{
	ioapic_write(IOAPIC_REG_RTE_HI(pin), rte >> 32);
	ioapic_write(IOAPIC_REG_RTE_LO(pin), (u32)rte);
}

/*
 * Count the interrupt; EOI the edge-triggered ones at once.  A level
 * vector stays in service until the guest's code EOIs it.
 */
static void guest_irq_handler(struct ex_regs *regs)
{
	u32 id = xapic_read_reg(APIC_ID) >> 24;
	u8 v = regs->vector;

	if (id >= NR_VCPUS)
		GUEST_FAIL("interrupt on an APIC ID the test has no slot for");
	irq_tmr[id] = xapic_vector_bit(APIC_TMR, v);
	irqs[id][v]++;
	irq_total[id]++;
	if (v != LEVEL_VEC && v != LEVEL_VEC2 && v != SPURIOUS_VEC)
		xapic_write_reg(APIC_EOI, 0);
}

static void guest_eoi(void)
{
	xapic_write_reg(APIC_EOI, 0);
}

/* Spin with interrupts on for at most @tsc ticks, until *@p >= @n. */
static void spin_until(volatile u64 *p, u64 n, u64 tsc)
{
	u64 end = rdtsc() + tsc;

	sti();
	while (*p < n && rdtsc() < end)
		cpu_relax();
}

/* Give an interrupt that should not come the time to come anyway. */
static void settle(void)
{
	spin_until(&irq_total[0], ~0ULL, SETTLE_TSC);
}

/* Wait in HLT until *@p >= @n (the host's watchdog bounds it). */
static void halt_until(volatile u64 *p, u64 n)
{
	cli();
	while (*p < n)
		asm volatile("sti; hlt; cli" ::: "memory");
	sti();
}

/* The local APIC software-enabled, TPR 0, interrupts on. */
static void guest_apic_setup(void)
{
	xapic_enable();
	xapic_write_reg(APIC_TASKPRI, 0);
	sti();
}

/* ---- host side ----------------------------------------------------- */

#define guest_var(vm, g)	(*(volatile typeof(g) *)addr_gva2hva(vm, &(g)))

static void sigusr1(int sig)
{
	(void)sig;
}

/*
 * A VM with the in-kernel APICs and @nr vCPUs at @guest_code (vCPU id in
 * its first argument), the handler above on the test's vectors (any other
 * vector ends the test with the guest's report), every vCPU runnable.
 */
static struct lvmm_vm *ioapic_vm(u32 nr, void *guest_code,
				 struct lvmm_vcpu **vcpus)
{
	static const u8 vecs[] = { EDGE_VEC, EDGE_VEC2, LEVEL_VEC, LEVEL_VEC2,
				   SPURIOUS_VEC };
	/* No SA_RESTART: the watchdog's signal must end LVMM_RUN. */
	struct sigaction sa = { .sa_handler = sigusr1 };
	struct lvmm_vm *vm;

	TEST_ASSERT(!sigaction(SIGUSR1, &sa, NULL), "sigaction");
	vm = vm_create_with_irqchip(nr, guest_code, vcpus);
	vm_init_descriptor_tables(vm);
	for (u32 i = 0; i < ARRAY_SIZE(vecs); i++)
		vm_install_exception_handler(vm, vecs[i], guest_irq_handler);
	for (u32 i = 1; i < nr; i++)
		vcpu_set_mp_state(vcpus[i], LVMM_MP_STATE_RUNNABLE);
	return vm;
}

/* Signals the thread in LVMM_RUN until it is out, once time is up. */
struct watchdog {
	pthread_t target, thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	volatile bool fired;
};

static void *watchdog_fn(void *arg)
{
	struct watchdog *w = arg;
	struct timespec ts;
	u64 ms = RUN_TIMEOUT_MS;

	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) ==
		    ETIMEDOUT && !w->done) {
			/* Again every 100 ms: one may land outside the ioctl. */
			w->fired = true;
			pthread_kill(w->target, SIGUSR1);
			ms = 100;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/*
 * Run @vcpu until it makes a ucall, for at most RUN_TIMEOUT_MS; fail the
 * test on anything else, and with the guest's report on an ABORT.  From
 * any thread.
 */
static u64 run_ucall(struct lvmm_vcpu *vcpu, struct ucall *uc)
{
	struct watchdog w = { .target = pthread_self() };
	pthread_condattr_t attr;
	u64 cmd;
	int ret;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &attr);
	pthread_mutex_init(&w.lock, NULL);
	TEST_ASSERT(!pthread_create(&w.thread, NULL, watchdog_fn, &w),
		    "pthread_create");
	do {
		ret = __vcpu_run(vcpu);
	} while (ret == -EINTR && !w.fired);
	pthread_mutex_lock(&w.lock);
	w.done = true;
	pthread_cond_signal(&w.cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(w.thread, NULL);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);

	TEST_ASSERT(ret != -EINTR,
		    "vCPU %u: no exit in %u ms (waiting for an interrupt that never came?)",
		    vcpu->id, RUN_TIMEOUT_MS);
	TEST_ASSERT(!ret, "vCPU %u: LVMM_RUN: %s", vcpu->id, strerror(-ret));
	cmd = get_ucall(vcpu, uc);
	TEST_ASSERT(cmd != UCALL_NONE, "vCPU %u: exit %s (%u), not a ucall",
		    vcpu->id, exit_reason_str(vcpu->run->exit_reason),
		    vcpu->run->exit_reason);
	if (cmd == UCALL_ABORT)
		report_guest_assert(vcpu, uc);
	return cmd;
}

/* Run to the guest's SYNC of @stage; its other arguments in @uc. */
static void run_to_sync(struct lvmm_vcpu *vcpu, u64 stage, struct ucall *uc)
{
	u64 cmd = run_ucall(vcpu, uc);

	TEST_ASSERT(cmd == UCALL_SYNC && uc->args[0] == stage,
		    "vCPU %u: wanted SYNC(%llu), got ucall %llu (arg %llu)",
		    vcpu->id, (unsigned long long)stage,
		    (unsigned long long)cmd, (unsigned long long)uc->args[0]);
}

static void run_to_done(struct lvmm_vcpu *vcpu)
{
	struct ucall uc;
	u64 cmd = run_ucall(vcpu, &uc);

	TEST_ASSERT(cmd == UCALL_DONE, "vCPU %u: wanted DONE, got ucall %llu (arg %llu)",
		    vcpu->id, (unsigned long long)cmd,
		    (unsigned long long)uc.args[0]);
}

/* run_to_sync() in a thread of its own. */
struct vcpu_job {
	struct lvmm_vcpu *vcpu;
	u64 stage;
	struct ucall uc;
	pthread_t thread;
};

static void *vcpu_job_fn(void *arg)
{
	struct vcpu_job *j = arg;

	run_to_sync(j->vcpu, j->stage, &j->uc);
	return NULL;
}

static void vcpu_job_start(struct vcpu_job *j, struct lvmm_vcpu *vcpu,
			   u64 stage)
{
	j->vcpu = vcpu;
	j->stage = stage;
	TEST_ASSERT(!pthread_create(&j->thread, NULL, vcpu_job_fn, j),
		    "pthread_create");
}

/*
 * A device on another thread: once guest variable ready[@id] reaches
 * @want, wait @delay_us and drive pin @pin to @level.
 */
struct line_driver {
	struct lvmm_vm *vm;
	u32 id, pin, level;
	u64 want, delay_us;
	pthread_t thread;
	bool saw_ready;
	int ret;
};

static void *line_driver_fn(void *arg)
{
	struct line_driver *d = arg;

	d->saw_ready = wait_for(guest_var(d->vm, ready[d->id]) >= d->want,
				RUN_TIMEOUT_MS);
	usleep(d->delay_us);
	d->ret = lvmm_irq_line(&d->vm->h, d->pin, d->level);
	return NULL;
}

static void line_driver_start(struct line_driver *d, struct lvmm_vm *vm,
			      u32 id, u64 want, u32 pin, u32 level)
{
	*d = (struct line_driver){ .vm = vm, .id = id, .want = want,
				   .pin = pin, .level = level,
				   .delay_us = 50000 };
	TEST_ASSERT(!pthread_create(&d->thread, NULL, line_driver_fn, d),
		    "pthread_create");
}

static void ioapic_get(struct lvmm_vm *vm, struct lvmm_ioapic_state *st)
{
	int ret;

	memset(st, 0xaa, sizeof(*st));
	ret = lvmm_get_ioapic(&vm->h, st);
	TEST_ASSERT(!ret, "LVMM_GET_IOAPIC: %s", strerror(-ret));
}

static void ioapic_set(struct lvmm_vm *vm, const struct lvmm_ioapic_state *st)
{
	int ret = lvmm_set_ioapic(&vm->h, st);

	TEST_ASSERT(!ret, "LVMM_SET_IOAPIC: %s", strerror(-ret));
}

/* ---- ABI ------------------------------------------------------------ */

TEST(ioctls_need_irqchip)
{
	struct lvmm_ioapic_state st;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = vm_create_bare(NULL);
	EXPECT_EQ(-ENXIO, lvmm_irq_line(&vm->h, 0, 1));
	EXPECT_EQ(-ENXIO, lvmm_irq_line(&vm->h, 0, 0));
	EXPECT_EQ(-ENXIO, lvmm_get_ioapic(&vm->h, &st));
	memset(&st, 0, sizeof(st));
	EXPECT_EQ(-ENXIO, lvmm_set_ioapic(&vm->h, &st));
	vm_free(vm);
}

TEST(irq_line_abi)
{
	struct lvmm_ioapic_state before, after;
	struct lvmm_irq_level l;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = vm_create_bare(NULL);
	vm_create_irqchip(vm);
	ioapic_get(vm, &before);

	EXPECT_EQ(-EINVAL, lvmm_irq_line(&vm->h, LVMM_IOAPIC_PINS, 1));
	EXPECT_EQ(-EINVAL, lvmm_irq_line(&vm->h, LVMM_IOAPIC_PINS, 0));
	EXPECT_EQ(-EINVAL, lvmm_irq_line(&vm->h, ~0U, 1));
	EXPECT_EQ(-EINVAL, lvmm_irq_line(&vm->h, 0, 2));
	EXPECT_EQ(-EINVAL, lvmm_irq_line(&vm->h, 0, ~0U));
	memset(&l, 0, sizeof(l));
	l.level = 1;
	l.flags = 1;
	EXPECT_EQ(-EINVAL, __vm_ioctl(vm, LVMM_IRQ_LINE, &l)) TH_LOG("flags");
	l.flags = 1U << 31;
	EXPECT_EQ(-EINVAL, __vm_ioctl(vm, LVMM_IRQ_LINE, &l)) TH_LOG("flags");
	l.flags = 0;
	l.pad = 1;
	EXPECT_EQ(-EINVAL, __vm_ioctl(vm, LVMM_IRQ_LINE, &l)) TH_LOG("pad");

	/* None of them drove a line. */
	ioapic_get(vm, &after);
	EXPECT_EQ(0, memcmp(&before, &after, sizeof(before)));
	EXPECT_EQ(0, after.lines);

	/* Every pin, both levels, with no vCPU to send to. */
	for (u32 pin = 0; pin < LVMM_IOAPIC_PINS; pin++) {
		EXPECT_EQ(0, lvmm_irq_line(&vm->h, pin, 1)) TH_LOG("pin %u", pin);
	}
	ioapic_get(vm, &after);
	EXPECT_EQ((1U << LVMM_IOAPIC_PINS) - 1, after.lines);
	for (u32 pin = 0; pin < LVMM_IOAPIC_PINS; pin++) {
		EXPECT_EQ(0, lvmm_irq_line(&vm->h, pin, 0)) TH_LOG("pin %u", pin);
	}
	ioapic_get(vm, &after);
	EXPECT_EQ(0, after.lines);
	vm_free(vm);
}

TEST(ioapic_state_abi)
{
	struct lvmm_ioapic_state good, st, after;
	struct lvmm_vm *vm;

	REQUIRE_IRQCHIP();
	vm = vm_create_bare(NULL);
	vm_create_irqchip(vm);
	ioapic_get(vm, &good);

	st = good;
	st.flags = 1;
	EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st)) TH_LOG("flags");
	st.flags = 1U << 31;
	EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st)) TH_LOG("flags");
	st = good;
	st.pad = 1;
	EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st)) TH_LOG("pad");
	for (int i = 0; i < 2; i++) {
		st = good;
		st.reserved[i] = 1ULL << 63;
		EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st))
			TH_LOG("reserved[%d]", i);
	}
	st = good;
	st.id = 16;
	EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st)) TH_LOG("id 16");
	st.id = ~0U;
	EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st)) TH_LOG("id ~0");
	st = good;
	st.lines = 1U << LVMM_IOAPIC_PINS;
	EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st)) TH_LOG("lines bit 24");
	st.lines = 1U << 31;
	EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st)) TH_LOG("lines bit 31");
	st = good;
	st.pending = 1U << LVMM_IOAPIC_PINS;
	EXPECT_EQ(-EINVAL, lvmm_set_ioapic(&vm->h, &st)) TH_LOG("pending bit 24");

	/* The refused calls loaded nothing. */
	ioapic_get(vm, &after);
	EXPECT_EQ(0, memcmp(&good, &after, sizeof(good)));

	/* The limits themselves are taken. */
	st = good;
	st.id = 15;
	st.lines = (1U << LVMM_IOAPIC_PINS) - 1;
	st.pending = 1U << (LVMM_IOAPIC_PINS - 1);
	EXPECT_EQ(0, lvmm_set_ioapic(&vm->h, &st));
	ioapic_get(vm, &after);
	EXPECT_EQ(15, after.id);
	EXPECT_EQ(st.lines, after.lines);
	EXPECT_EQ(st.pending, after.pending);
	vm_free(vm);
}

/* The reset state as the guest reads it, and what its writes keep. */
static void guest_reset(void)
{
	const u32 last = LVMM_IOAPIC_PINS - 1;

	GUEST_ASSERT_EQ(ioapic_read(IOAPIC_REG_VER), IOAPIC_VERSION_VALUE);
	GUEST_ASSERT_EQ(ioapic_read(IOAPIC_REG_ID), 0);
	for (u32 pin = 0; pin < LVMM_IOAPIC_PINS; pin++) {
		u64 rte = ioapic_read_rte(pin);

		__GUEST_ASSERT(rte & RTE_MASKED, "pin masked at reset", 1,
			       pin, rte);
		__GUEST_ASSERT(!(rte & (RTE_DELIVS | RTE_REMOTE_IRR)),
			       "no delivery status or remote IRR at reset", 1,
			       pin, rte);
	}
	/* The select register reads back. */
	mmio_write32(IOAPIC_GPA + IOAPIC_IOREGSEL, IOAPIC_REG_RTE_HI(5));
	GUEST_ASSERT_EQ(mmio_read32(IOAPIC_GPA + IOAPIC_IOREGSEL),
			IOAPIC_REG_RTE_HI(5));

	/* The ID is writable, the version is not. */
	ioapic_write(IOAPIC_REG_ID, 0x05000000);
	GUEST_ASSERT_EQ(ioapic_read(IOAPIC_REG_ID), 0x05000000);
	ioapic_write(IOAPIC_REG_VER, 0);
	GUEST_ASSERT_EQ(ioapic_read(IOAPIC_REG_VER), IOAPIC_VERSION_VALUE);

	/* Delivery status and remote IRR are the I/O APIC's, not the guest's. */
	ioapic_write_rte(last, RTE_DEST(0xff) | RTE_MASKED | RTE_LEVEL |
			 RTE_REMOTE_IRR | RTE_DELIVS | RTE_POLARITY_LOW |
			 RTE_LOGICAL | RTE_DM_LOWEST | 0x42);
	GUEST_ASSERT_EQ(ioapic_read_rte(last),
			RTE_DEST(0xff) | RTE_MASKED | RTE_LEVEL |
			RTE_POLARITY_LOW | RTE_LOGICAL | RTE_DM_LOWEST | 0x42);
	GUEST_SYNC(1);
	GUEST_DONE();
}

TEST(reset_state)
{
	struct lvmm_ioapic_state st;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = ioapic_vm(1, guest_reset, &vcpu);
	ioapic_get(vm, &st);
	EXPECT_EQ(0, st.flags);
	EXPECT_EQ(0, st.id);
	EXPECT_EQ(0, st.ioregsel);
	EXPECT_EQ(0, st.lines);
	EXPECT_EQ(0, st.pending);
	EXPECT_EQ(0, st.pad);
	EXPECT_EQ(0, st.reserved[0]);
	EXPECT_EQ(0, st.reserved[1]);
	for (u32 pin = 0; pin < LVMM_IOAPIC_PINS; pin++) {
		EXPECT_TRUE(st.redir[pin] & RTE_MASKED)
			TH_LOG("pin %u: 0x%llx", pin,
			       (unsigned long long)st.redir[pin]);
		EXPECT_FALSE(st.redir[pin] & (RTE_DELIVS | RTE_REMOTE_IRR))
			TH_LOG("pin %u: 0x%llx", pin,
			       (unsigned long long)st.redir[pin]);
	}

	run_to_sync(vcpu, 1, &uc);
	ioapic_get(vm, &st);
	EXPECT_EQ(5, st.id);
	EXPECT_EQ(IOAPIC_REG_RTE_HI(LVMM_IOAPIC_PINS - 1), st.ioregsel);
	EXPECT_EQ(RTE_DEST(0xff) | RTE_MASKED | RTE_LEVEL | RTE_POLARITY_LOW |
		  RTE_LOGICAL | RTE_DM_LOWEST | 0x42,
		  st.redir[LVMM_IOAPIC_PINS - 1]);
	run_to_done(vcpu);
	vm_free(vm);
}

/* ---- edge-triggered pins -------------------------------------------- */

static void guest_edge(void)
{
	volatile u64 *n = &irqs[0][EDGE_VEC];

	guest_apic_setup();
	ioapic_write_rte(EDGE_PIN, RTE_DEST(0) | EDGE_VEC);
	GUEST_SYNC(1);
	spin_until(n, 1, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(2, *n, irq_total[0], irq_tmr[0], 0);
	settle();
	GUEST_SYNC_ARGS(3, *n, irq_total[0], 0, 0);
	spin_until(n, 2, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(4, *n, irq_total[0], 0, 0);
	/* The host's other thread raises the line while this one spins... */
	ready[0] = 1;
	spin_until(n, 3, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(5, *n, irq_total[0], 0, 0);
	/* ... and while it waits in HLT. */
	ready[0] = 2;
	halt_until(n, 4);
	settle();
	GUEST_SYNC_ARGS(6, *n, irq_total[0], 0, 0);
	GUEST_DONE();
}

TEST(edge)
{
	struct line_driver d;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = ioapic_vm(1, guest_edge, &vcpu);

	/* From the vCPU's thread, between two LVMM_RUNs. */
	run_to_sync(vcpu, 1, &uc);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 1));
	run_to_sync(vcpu, 2, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("the rising edge, once");
	EXPECT_EQ(1, uc.args[2]) TH_LOG("no other interrupt");
	EXPECT_EQ(0, uc.args[3]) TH_LOG("TMR bit of an edge-triggered vector");

	/* Held high: no edge, nothing sent. */
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 1));
	run_to_sync(vcpu, 3, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("asserting a high line again");
	EXPECT_EQ(1, uc.args[2]);

	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 0));
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 1));
	run_to_sync(vcpu, 4, &uc);
	EXPECT_EQ(2, uc.args[1]) TH_LOG("lowered and raised: once more");
	EXPECT_EQ(2, uc.args[2]);

	/* From another thread, while the guest runs. */
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 0));
	line_driver_start(&d, vm, 0, 1, EDGE_PIN, 1);
	run_to_sync(vcpu, 5, &uc);
	pthread_join(d.thread, NULL);
	EXPECT_TRUE(d.saw_ready);
	EXPECT_EQ(0, d.ret);
	EXPECT_EQ(3, uc.args[1]) TH_LOG("raised while the guest spins");
	EXPECT_EQ(3, uc.args[2]);

	/* ... and while it is halted: the line wakes it. */
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 0));
	line_driver_start(&d, vm, 0, 2, EDGE_PIN, 1);
	run_to_sync(vcpu, 6, &uc);
	pthread_join(d.thread, NULL);
	EXPECT_TRUE(d.saw_ready);
	EXPECT_EQ(0, d.ret);
	EXPECT_EQ(4, uc.args[1]) TH_LOG("raised while the guest halts");
	EXPECT_EQ(4, uc.args[2]);
	run_to_done(vcpu);
	vm_free(vm);
}

/* ---- masking -------------------------------------------------------- */

static void guest_masking(void)
{
	volatile u64 *edge = &irqs[0][EDGE_VEC], *level = &irqs[0][LEVEL_VEC];

	guest_apic_setup();
	ioapic_write_rte(EDGE_PIN, RTE_MASKED | EDGE_VEC);
	ioapic_write_rte(LEVEL_PIN, RTE_MASKED | RTE_LEVEL | LEVEL_VEC);
	GUEST_SYNC(1);
	settle();
	GUEST_SYNC_ARGS(2, irq_total[0], 0, 0, 0);

	/* The edge was remembered; the level line is low by now. */
	ioapic_write(IOAPIC_REG_RTE_LO(EDGE_PIN), EDGE_VEC);
	ioapic_write(IOAPIC_REG_RTE_LO(LEVEL_PIN), RTE_LEVEL | LEVEL_VEC);
	spin_until(edge, 1, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(3, *edge, *level, irq_total[0], 0);

	ioapic_write(IOAPIC_REG_RTE_LO(EDGE_PIN), RTE_MASKED | EDGE_VEC);
	ioapic_write(IOAPIC_REG_RTE_LO(LEVEL_PIN),
		     RTE_MASKED | RTE_LEVEL | LEVEL_VEC);
	GUEST_SYNC(4);
	settle();
	GUEST_SYNC_ARGS(5, irq_total[0], 0, 0, 0);

	/* The level line is asserted: unmasking sends it. */
	ioapic_write(IOAPIC_REG_RTE_LO(LEVEL_PIN), RTE_LEVEL | LEVEL_VEC);
	spin_until(level, 1, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(6, *level, irq_total[0], irq_tmr[0], 0);
	guest_eoi();
	settle();
	GUEST_SYNC_ARGS(7, *level, irq_total[0], 0, 0);

	/* The second remembered edge, once only. */
	ioapic_write(IOAPIC_REG_RTE_LO(EDGE_PIN), EDGE_VEC);
	spin_until(edge, 2, WAIT_TSC);
	settle();
	ioapic_write(IOAPIC_REG_RTE_LO(EDGE_PIN), RTE_MASKED | EDGE_VEC);
	ioapic_write(IOAPIC_REG_RTE_LO(EDGE_PIN), EDGE_VEC);
	settle();
	GUEST_SYNC_ARGS(8, *edge, irq_total[0], 0, 0);
	GUEST_DONE();
}

TEST(masking)
{
	struct lvmm_ioapic_state st;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = ioapic_vm(1, guest_masking, &vcpu);
	run_to_sync(vcpu, 1, &uc);

	/* Both pins masked: an edge (up and down again), a level pulse. */
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 1));
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 0));
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 1));
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 0));
	ioapic_get(vm, &st);
	EXPECT_EQ(PIN_BIT(EDGE_PIN), st.pending) TH_LOG("the edge is remembered");
	EXPECT_EQ(0, st.lines);
	run_to_sync(vcpu, 2, &uc);
	EXPECT_EQ(0, uc.args[1]) TH_LOG("nothing sent while masked");

	run_to_sync(vcpu, 3, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("the remembered edge, on unmasking");
	EXPECT_EQ(0, uc.args[2]) TH_LOG("a level pulse that ended while masked");
	EXPECT_EQ(1, uc.args[3]);
	ioapic_get(vm, &st);
	EXPECT_EQ(0, st.pending) TH_LOG("the edge was sent");

	/* Masked again: a level line that stays up, and a new edge. */
	run_to_sync(vcpu, 4, &uc);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 1));
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 1));
	run_to_sync(vcpu, 5, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("nothing sent while masked");
	ioapic_get(vm, &st);
	EXPECT_EQ(PIN_BIT(EDGE_PIN), st.pending);
	EXPECT_EQ(PIN_BIT(EDGE_PIN) | PIN_BIT(LEVEL_PIN), st.lines);
	EXPECT_FALSE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR);

	run_to_sync(vcpu, 6, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("the asserted level pin, on unmasking");
	EXPECT_EQ(2, uc.args[2]);
	EXPECT_EQ(1, uc.args[3]) TH_LOG("TMR bit of a level-triggered vector");
	ioapic_get(vm, &st);
	EXPECT_TRUE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 0));
	run_to_sync(vcpu, 7, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("EOI with the line low");
	EXPECT_EQ(2, uc.args[2]);
	ioapic_get(vm, &st);
	EXPECT_FALSE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR);

	run_to_sync(vcpu, 8, &uc);
	EXPECT_EQ(2, uc.args[1]) TH_LOG("a remembered edge is sent once");
	EXPECT_EQ(3, uc.args[2]);
	ioapic_get(vm, &st);
	EXPECT_EQ(0, st.pending);
	run_to_done(vcpu);
	vm_free(vm);
}

/*
 * What a pin remembers belongs to its trigger mode: a level interrupt no
 * APIC took (the APIC software-disabled) leaves no remote IRR behind, and
 * an edge remembered while masked is forgotten when the pin turns level.
 */
static void guest_forget(void)
{
	volatile u64 *level = &irqs[0][LEVEL_VEC], *edge = &irqs[0][EDGE_VEC];

	/* The local APIC is still software-disabled (SVR bit 8 clear). */
	ioapic_write_rte(LEVEL_PIN, RTE_DEST(0) | RTE_LEVEL | LEVEL_VEC);
	ioapic_write_rte(EDGE_PIN, RTE_MASKED | EDGE_VEC);
	GUEST_SYNC(1);

	/* Enabled now: rewriting the unmasked entry sends the asserted line. */
	guest_apic_setup();
	ioapic_write_rte(LEVEL_PIN, RTE_DEST(0) | RTE_LEVEL | LEVEL_VEC);
	spin_until(level, 1, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(2, *level, irq_total[0], 0, 0);
	guest_eoi();

	/* The remembered edge, then level (masked), then edge unmasked. */
	ioapic_write_rte(EDGE_PIN, RTE_MASKED | RTE_LEVEL | EDGE_VEC);
	ioapic_write_rte(EDGE_PIN, EDGE_VEC);
	settle();
	GUEST_SYNC_ARGS(3, *edge, irq_total[0], 0, 0);
	GUEST_DONE();
}

TEST(trigger_mode_memory)
{
	struct lvmm_ioapic_state st;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = ioapic_vm(1, guest_forget, &vcpu);
	run_to_sync(vcpu, 1, &uc);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 1));
	ioapic_get(vm, &st);
	EXPECT_FALSE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR)
		TH_LOG("a level interrupt nobody took waits for no EOI");
	/* An edge while masked: remembered. */
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 1));
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 0));
	ioapic_get(vm, &st);
	EXPECT_EQ(PIN_BIT(EDGE_PIN), st.pending);

	run_to_sync(vcpu, 2, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("sent once the APIC takes it");
	EXPECT_EQ(1, uc.args[2]);
	ioapic_get(vm, &st);
	EXPECT_TRUE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 0));

	run_to_sync(vcpu, 3, &uc);
	EXPECT_EQ(0, uc.args[1]) TH_LOG("the edge was forgotten");
	EXPECT_EQ(1, uc.args[2]);
	ioapic_get(vm, &st);
	EXPECT_EQ(0, st.pending);
	run_to_done(vcpu);
	vm_free(vm);
}

/* ---- level-triggered pins and remote IRR ---------------------------- */

static void guest_level(void)
{
	volatile u64 *n = &irqs[0][LEVEL_VEC];

	guest_apic_setup();
	ioapic_write_rte(LEVEL_PIN, RTE_DEST(0) | RTE_LEVEL | LEVEL_VEC);
	GUEST_SYNC(1);
	spin_until(n, 1, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(2, *n, irq_total[0], irq_tmr[0],
			xapic_vector_bit(APIC_ISR, LEVEL_VEC));
	/* In service, not EOIed: the I/O APIC must not send it again. */
	settle();
	GUEST_SYNC_ARGS(3, *n, irq_total[0],
			xapic_vector_bit(APIC_IRR, LEVEL_VEC), 0);
	/* The EOI, with the line still asserted: again at once. */
	guest_eoi();
	spin_until(n, 2, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(4, *n, irq_total[0], 0, 0);
	/* The line is low now: the EOI ends it. */
	guest_eoi();
	settle();
	GUEST_SYNC_ARGS(5, *n, irq_total[0],
			xapic_vector_bit(APIC_IRR, LEVEL_VEC),
			xapic_vector_bit(APIC_ISR, LEVEL_VEC));
	/* A new assertion. */
	spin_until(n, 3, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(6, *n, irq_total[0], 0, 0);
	guest_eoi();
	settle();
	GUEST_SYNC_ARGS(7, *n, irq_total[0], 0, 0);
	GUEST_DONE();
}

TEST(level_remote_irr)
{
	struct lvmm_ioapic_state st;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = ioapic_vm(1, guest_level, &vcpu);
	run_to_sync(vcpu, 1, &uc);
	ioapic_get(vm, &st);
	EXPECT_FALSE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 1));

	run_to_sync(vcpu, 2, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("the asserted line, once");
	EXPECT_EQ(1, uc.args[2]);
	EXPECT_EQ(1, uc.args[3]) TH_LOG("TMR bit of a level-triggered vector");
	EXPECT_EQ(1, uc.args[4]) TH_LOG("in service");
	ioapic_get(vm, &st);
	EXPECT_TRUE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR)
		TH_LOG("entry 0x%llx", (unsigned long long)st.redir[LEVEL_PIN]);
	EXPECT_EQ(PIN_BIT(LEVEL_PIN), st.lines);
	/* Asserting it again changes nothing while remote IRR is set. */
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 1));

	run_to_sync(vcpu, 3, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("no second interrupt before the EOI");
	EXPECT_EQ(1, uc.args[2]);
	EXPECT_EQ(0, uc.args[3]) TH_LOG("not requested again in the local APIC");

	run_to_sync(vcpu, 4, &uc);
	EXPECT_EQ(2, uc.args[1]) TH_LOG("the EOI with the line asserted sends again");
	EXPECT_EQ(2, uc.args[2]);
	ioapic_get(vm, &st);
	EXPECT_TRUE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 0));

	run_to_sync(vcpu, 5, &uc);
	EXPECT_EQ(2, uc.args[1]) TH_LOG("lowered, then EOI: no more");
	EXPECT_EQ(2, uc.args[2]);
	EXPECT_EQ(0, uc.args[3]);
	EXPECT_EQ(0, uc.args[4]);
	ioapic_get(vm, &st);
	EXPECT_FALSE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR)
		TH_LOG("entry 0x%llx", (unsigned long long)st.redir[LEVEL_PIN]);
	EXPECT_EQ(0, st.lines);

	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 1));
	run_to_sync(vcpu, 6, &uc);
	EXPECT_EQ(3, uc.args[1]) TH_LOG("asserted again after the EOI");
	EXPECT_EQ(3, uc.args[2]);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, LEVEL_PIN, 0));
	run_to_sync(vcpu, 7, &uc);
	EXPECT_EQ(3, uc.args[1]);
	ioapic_get(vm, &st);
	EXPECT_FALSE(st.redir[LEVEL_PIN] & RTE_REMOTE_IRR);
	run_to_done(vcpu);
	vm_free(vm);
}

/* ---- destinations --------------------------------------------------- */

/*
 * The destinations vCPU 0 programs: APIC ID 1 and everyone, physical;
 * or, with logical_dest, logical flat 0x02 (vCPU 1's LDR) and 0x03.
 */
static u64 logical_dest;

static void guest_redirect(u64 id)
{
	guest_apic_setup();
	/* Flat model (DFR's reset value): one LDR bit per vCPU. */
	xapic_write_reg(APIC_LDR, (1U << id) << 24);
	if (id == 0) {
		ioapic_write_rte(EDGE_PIN, EDGE_VEC |
				 (logical_dest ? RTE_LOGICAL | RTE_DEST(0x02) :
						 RTE_DEST(1)));
		ioapic_write_rte(BCAST_PIN, EDGE_VEC2 |
				 (logical_dest ? RTE_LOGICAL | RTE_DEST(0x03) :
						 RTE_DEST(0xff)));
		GUEST_SYNC(1);
		settle();
		GUEST_SYNC_ARGS(3, irqs[0][EDGE_VEC], irq_total[0], 0, 0);
		ready[0] = 2;
		halt_until(&irqs[0][EDGE_VEC2], 1);
		settle();
		GUEST_SYNC_ARGS(5, irqs[0][EDGE_VEC2], irq_total[0], 0, 0);
	} else {
		ready[1] = 1;
		halt_until(&irqs[1][EDGE_VEC], 1);
		settle();
		GUEST_SYNC_ARGS(2, irqs[1][EDGE_VEC], irq_total[1], 0, 0);
		ready[1] = 2;
		halt_until(&irqs[1][EDGE_VEC2], 1);
		settle();
		GUEST_SYNC_ARGS(4, irqs[1][EDGE_VEC2], irq_total[1], 0, 0);
	}
	GUEST_DONE();
}

static void run_redirect(struct __test_metadata *_metadata, bool logical)
{
	struct lvmm_vcpu *vcpus[NR_VCPUS];
	struct vcpu_job j0, j1;
	struct lvmm_vm *vm;
	struct ucall uc;

	logical_dest = logical;
	vm = ioapic_vm(NR_VCPUS, guest_redirect, vcpus);

	/* vCPU 0 programs pin EDGE_PIN for vCPU 1; vCPU 1 halts. */
	run_to_sync(vcpus[0], 1, &uc);
	vcpu_job_start(&j1, vcpus[1], 2);
	ASSERT_TRUE(wait_for(guest_var(vm, ready[1]) >= 1, RUN_TIMEOUT_MS));
	usleep(50000);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, EDGE_PIN, 1));
	pthread_join(j1.thread, NULL);
	EXPECT_EQ(1, j1.uc.args[1]) TH_LOG("vCPU 1 takes it");
	EXPECT_EQ(1, j1.uc.args[2]);
	run_to_sync(vcpus[0], 3, &uc);
	EXPECT_EQ(0, uc.args[1]) TH_LOG("vCPU 0 does not");
	EXPECT_EQ(0, uc.args[2]);

	/* Pin BCAST_PIN names both: both take it, both halted. */
	vcpu_job_start(&j0, vcpus[0], 5);
	vcpu_job_start(&j1, vcpus[1], 4);
	ASSERT_TRUE(wait_for(guest_var(vm, ready[0]) >= 2 &&
			     guest_var(vm, ready[1]) >= 2, RUN_TIMEOUT_MS));
	usleep(50000);
	ASSERT_EQ(0, lvmm_irq_line(&vm->h, BCAST_PIN, 1));
	pthread_join(j0.thread, NULL);
	pthread_join(j1.thread, NULL);
	EXPECT_EQ(1, j0.uc.args[1]) TH_LOG("vCPU 0, both");
	EXPECT_EQ(1, j0.uc.args[2]);
	EXPECT_EQ(1, j1.uc.args[1]) TH_LOG("vCPU 1, both");
	EXPECT_EQ(2, j1.uc.args[2]);
	run_to_done(vcpus[0]);
	run_to_done(vcpus[1]);
	vm_free(vm);
}

TEST(redirect_to_other_vcpu)
{
	REQUIRE_IRQCHIP();
	run_redirect(_metadata, false);
}

TEST(redirect_logical)
{
	REQUIRE_IRQCHIP();
	run_redirect(_metadata, true);
}

/* ---- the state, in and out ------------------------------------------ */

#define PIN_SET_LEVEL		LEVEL_PIN	/* due: unmasked, asserted */
#define PIN_SET_EDGE		EDGE_PIN	/* due: unmasked, an edge */
#define PIN_SET_RIRR		5	/* not: remote IRR set */
#define PIN_SET_MLEVEL		6	/* not: masked level, asserted */
#define PIN_SET_MEDGE		7	/* not: masked edge, remembered */
#define PIN_SET_EDGE_RIRR	8	/* not: edge, remote IRR dropped */

static void guest_set_delivers(void)
{
	guest_apic_setup();
	GUEST_SYNC(1);
	halt_until(&irq_total[0], 2);
	settle();
	GUEST_SYNC_ARGS(2, irqs[0][LEVEL_VEC], irqs[0][EDGE_VEC], irq_total[0],
			0);
	guest_eoi();
	settle();
	GUEST_SYNC_ARGS(3, irqs[0][LEVEL_VEC], irq_total[0], 0, 0);
	GUEST_DONE();
}

TEST(set_ioapic_delivers)
{
	struct lvmm_ioapic_state st, got;
	struct lvmm_vcpu *vcpu;
	struct lvmm_vm *vm;
	struct ucall uc;

	REQUIRE_IRQCHIP();
	vm = ioapic_vm(1, guest_set_delivers, &vcpu);
	run_to_sync(vcpu, 1, &uc);

	ioapic_get(vm, &st);
	st.redir[PIN_SET_LEVEL] = RTE_DEST(0) | RTE_LEVEL | LEVEL_VEC;
	st.redir[PIN_SET_EDGE] = RTE_DEST(0) | EDGE_VEC;
	st.redir[PIN_SET_RIRR] = RTE_REMOTE_IRR | RTE_LEVEL | LEVEL_VEC2;
	st.redir[PIN_SET_MLEVEL] = RTE_MASKED | RTE_LEVEL | LEVEL_VEC2;
	st.redir[PIN_SET_MEDGE] = RTE_MASKED | EDGE_VEC2;
	st.redir[PIN_SET_EDGE_RIRR] = RTE_REMOTE_IRR | RTE_DELIVS | EDGE_VEC2;
	st.lines = PIN_BIT(PIN_SET_LEVEL) | PIN_BIT(PIN_SET_RIRR) | PIN_BIT(PIN_SET_MLEVEL);
	st.pending = PIN_BIT(PIN_SET_EDGE) | PIN_BIT(PIN_SET_MEDGE);
	ioapic_set(vm, &st);

	/* The vCPU is in userspace: sent means requested in its APIC. */
	run_to_sync(vcpu, 2, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("unmasked asserted level pin");
	EXPECT_EQ(1, uc.args[2]) TH_LOG("unmasked edge pin with an edge");
	EXPECT_EQ(2, uc.args[3]) TH_LOG("and nothing else");

	ioapic_get(vm, &got);
	EXPECT_TRUE(got.redir[PIN_SET_LEVEL] & RTE_REMOTE_IRR);
	EXPECT_TRUE(got.redir[PIN_SET_RIRR] & RTE_REMOTE_IRR)
		TH_LOG("remote IRR is kept on a level-triggered entry");
	EXPECT_EQ(RTE_LEVEL | LEVEL_VEC2 | RTE_REMOTE_IRR,
		  got.redir[PIN_SET_RIRR]);
	EXPECT_EQ(EDGE_VEC2, got.redir[PIN_SET_EDGE_RIRR])
		TH_LOG("delivery status and an edge entry's remote IRR dropped");
	EXPECT_EQ(PIN_BIT(PIN_SET_MEDGE), got.pending);
	EXPECT_EQ(st.lines, got.lines);

	ASSERT_EQ(0, lvmm_irq_line(&vm->h, PIN_SET_LEVEL, 0));
	run_to_sync(vcpu, 3, &uc);
	EXPECT_EQ(1, uc.args[1]);
	EXPECT_EQ(2, uc.args[2]);
	ioapic_get(vm, &got);
	EXPECT_FALSE(got.redir[PIN_SET_LEVEL] & RTE_REMOTE_IRR);
	EXPECT_TRUE(got.redir[PIN_SET_RIRR] & RTE_REMOTE_IRR)
		TH_LOG("another vector's EOI");
	run_to_done(vcpu);
	vm_free(vm);
}

/* What the guest of VM A programs; the pins the host then drives. */
#define RT_LEVEL_PIN	LEVEL_PIN	/* sent, remote IRR set */
#define RT_EDGE_PIN	EDGE_PIN	/* masked, an edge remembered */
#define RT_MLEVEL_PIN	4		/* masked, asserted */
#define RT_IOREGSEL	IOAPIC_REG_VER

static const struct {
	u32 pin;
	u64 rte;
} rt_table[] = {
	{ RT_LEVEL_PIN, RTE_DEST(0) | RTE_LEVEL | LEVEL_VEC },
	{ RT_EDGE_PIN, RTE_DEST(0) | RTE_MASKED | EDGE_VEC },
	{ RT_MLEVEL_PIN, RTE_MASKED | RTE_LEVEL | RTE_POLARITY_LOW |
			 LEVEL_VEC2 },
	{ 20, RTE_DEST(0x0f) | RTE_MASKED | RTE_LOGICAL | RTE_DM_LOWEST |
	      0x90 },
	{ 23, RTE_DEST(0xff) | RTE_MASKED | RTE_DM_NMI },
};

static void guest_roundtrip_a(void)
{
	guest_apic_setup();
	ioapic_write(IOAPIC_REG_ID, 0x03000000);
	for (u32 i = 0; i < ARRAY_SIZE(rt_table); i++)
		ioapic_write_rte(rt_table[i].pin, rt_table[i].rte);
	GUEST_SYNC(1);
	spin_until(&irqs[0][LEVEL_VEC], 1, WAIT_TSC);
	settle();
	(void)ioapic_read(RT_IOREGSEL);
	GUEST_SYNC_ARGS(2, irqs[0][LEVEL_VEC], irq_total[0], 0, 0);
	GUEST_DONE();
}

/* VM B: the loaded state as the guest reads it, and the remembered edge. */
static void guest_roundtrip_b(void)
{
	GUEST_ASSERT_EQ(mmio_read32(IOAPIC_GPA + IOAPIC_IOREGSEL), RT_IOREGSEL);
	GUEST_ASSERT_EQ(ioapic_read(IOAPIC_REG_ID), 0x03000000);
	for (u32 pin = 0; pin < LVMM_IOAPIC_PINS; pin++)
		GUEST_ASSERT_EQ(ioapic_read_rte(pin), rt_expected[pin]);
	guest_apic_setup();
	settle();
	GUEST_SYNC_ARGS(1, irq_total[0], 0, 0, 0);
	ioapic_write(IOAPIC_REG_RTE_LO(RT_EDGE_PIN), EDGE_VEC);
	spin_until(&irqs[0][EDGE_VEC], 1, WAIT_TSC);
	settle();
	GUEST_SYNC_ARGS(2, irqs[0][EDGE_VEC], irq_total[0], 0, 0);
	GUEST_DONE();
}

TEST(get_set_round_trip)
{
	struct lvmm_ioapic_state reset, a, b;
	struct lvmm_vcpu *va, *vb;
	struct lvmm_vm *vma, *vmb;
	struct ucall uc;
	u32 lines;

	REQUIRE_IRQCHIP();
	vma = ioapic_vm(1, guest_roundtrip_a, &va);
	ioapic_get(vma, &reset);
	run_to_sync(va, 1, &uc);
	ASSERT_EQ(0, lvmm_irq_line(&vma->h, RT_LEVEL_PIN, 1));
	ASSERT_EQ(0, lvmm_irq_line(&vma->h, RT_EDGE_PIN, 1));
	ASSERT_EQ(0, lvmm_irq_line(&vma->h, RT_MLEVEL_PIN, 1));
	run_to_sync(va, 2, &uc);
	EXPECT_EQ(1, uc.args[1]);
	EXPECT_EQ(1, uc.args[2]);

	/* What the guest and the lines made of VM A's I/O APIC. */
	lines = PIN_BIT(RT_LEVEL_PIN) | PIN_BIT(RT_EDGE_PIN) | PIN_BIT(RT_MLEVEL_PIN);
	ioapic_get(vma, &a);
	EXPECT_EQ(0, a.flags);
	EXPECT_EQ(3, a.id);
	EXPECT_EQ(RT_IOREGSEL, a.ioregsel);
	EXPECT_EQ(lines, a.lines);
	EXPECT_EQ(PIN_BIT(RT_EDGE_PIN), a.pending);
	for (u32 pin = 0; pin < LVMM_IOAPIC_PINS; pin++) {
		u64 want = reset.redir[pin];

		for (u32 i = 0; i < ARRAY_SIZE(rt_table); i++)
			if (rt_table[i].pin == pin)
				want = rt_table[i].rte;
		if (pin == RT_LEVEL_PIN)
			want |= RTE_REMOTE_IRR;
		EXPECT_EQ(want, a.redir[pin]) TH_LOG("pin %u", pin);
	}

	/* Into a new VM: GET gives back what SET took. */
	vmb = ioapic_vm(1, guest_roundtrip_b, &vb);
	ioapic_set(vmb, &a);
	ioapic_get(vmb, &b);
	EXPECT_EQ(0, memcmp(&a, &b, sizeof(a)));
	for (u32 pin = 0; pin < LVMM_IOAPIC_PINS; pin++)
		guest_var(vmb, rt_expected[pin]) = a.redir[pin];

	/* Remote IRR was set and the edge's pin masked: nothing was sent. */
	run_to_sync(vb, 1, &uc);
	EXPECT_EQ(0, uc.args[1]);
	run_to_sync(vb, 2, &uc);
	EXPECT_EQ(1, uc.args[1]) TH_LOG("the edge remembered in VM A");
	EXPECT_EQ(1, uc.args[2]);
	ioapic_get(vmb, &b);
	EXPECT_EQ(0, b.pending);
	run_to_done(vb);
	run_to_done(va);
	vm_free(vmb);
	vm_free(vma);
}

TEST_HARNESS_MAIN
