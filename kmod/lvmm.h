/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lvmm: the generic core's view of VMs, vCPUs, memory slots and the
 * architecture backend.  Nothing here names a particular vendor.
 *
 * Field legend (after bhyve): (a) set at allocation, (i) set at init before
 * the object is published, (o) written once, (c) owned by the vCPU thread
 * holding vcpu->mutex, and otherwise the lock that protects it.
 */
#ifndef _LVMM_H
#define _LVMM_H

#include <linux/types.h>
#include <linux/mm_types.h>
#include <linux/uidgid.h>
#include <linux/mutex.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/list.h>
#include <linux/kref.h>
#include <linux/srcu.h>
#include <linux/wait.h>
#include <linux/context_tracking.h>
#include <linux/ftrace.h>
#include <linux/instrumentation.h>
#include <linux/irqflags.h>
#include <linux/rcupdate.h>
#include <linux/vtime.h>
#include <linux/hrtimer.h>
#include <linux/cpumask.h>
#include <linux/atomic.h>
#include <linux/rcuwait.h>
#include <asm/debugreg.h>
#include <asm/fpu/api.h>
#include <linux/lvmm.h>
#include <linux/lvmm_nl.h>

#include "compat.h"

#define LVMM_MAX_MEMSLOTS	32
#define LVMM_MAX_VCPUS		128
#define LVMM_MAX_MEMSLOT_SIZE	(64ULL << 30)
/* Guest-physical addresses must fit the 4-level nested/extended tables. */
#define LVMM_MAX_GPA		BIT_ULL(48)

#define LVMM_DR7_FIXED_1	0x400ULL

/* What the guest reads back after writing @v to DR6 or DR7. */
static inline u64 lvmm_dr6_value(u64 v)
{
	return v | DR6_RESERVED;
}

static inline u64 lvmm_dr7_value(u64 v)
{
	return (v & ~0xd800ULL) | LVMM_DR7_FIXED_1;
}

#define LVMM_HPAGE_SHIFT	21
#define LVMM_HPAGE_SIZE		BIT(LVMM_HPAGE_SHIFT)
#define LVMM_HPAGE_ORDER	(LVMM_HPAGE_SHIFT - PAGE_SHIFT)
#define LVMM_PAGES_PER_HPAGE	BIT(LVMM_HPAGE_ORDER)

struct lvmm_vm;
struct lvmm_vcpu;
struct lvmm_ioapic;
struct netlink_ext_ack;
struct page;
struct mem_cgroup;

/* ---- memory slots (memslot.c) ------------------------------------------- */

/*
 * A slot's backing memory is allocated on first touch in 2 MiB chunks: one
 * compound huge page when the chunk is aligned in guest-physical space and
 * the allocator has one, else an array of 4 KiB pages.
 */
struct lvmm_chunk {
	struct page *huge;		/* order-9 compound page, or NULL */
	struct page **small;		/* LVMM_PAGES_PER_HPAGE pages, or NULL */
};

/*
 * Dirty logging (memslot.c): while @dirty_bitmap is set, every page of the
 * slot is write-protected -- in the nested page tables and in the VMM's
 * mappings -- until a write sets its bit, and CLEAR_DIRTY_LOG clears the
 * bit and protects the page again.  Whoever makes a page writable sets its
 * bit first, under the lock that CLEAR_DIRTY_LOG protects it under: the
 * arch mmu lock for the guest, @log_lock for the VMM.  So a page that is
 * writable anywhere always has its bit set.
 */
struct lvmm_slot {
	u32 id;				/* (i) */
	u32 flags;			/* (i) LVMM_MEMSLOT_READONLY */
	u64 base_gfn;			/* (i) */
	u64 npages;			/* (i) */
	bool huge_ok;			/* (i) base is 2 MiB aligned */
	struct mem_cgroup *memcg;	/* (i) charged for the backing */
	struct mm_struct *mm;		/* (i) the VM's: its RSS counts it */
	struct mutex alloc_lock;	/* serializes chunk allocation */
	unsigned long nchunks;		/* (i) */
	struct lvmm_chunk *chunks;	/* (i) array; entries under alloc_lock */
	/*
	 * Set and cleared under vm->slots_lock and @log_lock (write); read
	 * under vm->srcu, which keeps a cleared bitmap alive.  NULL: not
	 * logging.
	 */
	unsigned long *dirty_bitmap;
	/* Pages the VMM's mappings may write: a subset of the dirty ones. */
	unsigned long *user_writable;	/* as dirty_bitmap */
	struct rw_semaphore log_lock;	/* VMM write faults (read) vs. clear */
};

/* An immutable snapshot of the slots, replaced whole under vm->slots_lock. */
struct lvmm_memslots {
	struct lvmm_memslots *retired;	/* vm->slots_lock: see memslot.c */
	int nr;
	struct lvmm_slot *slot[LVMM_MAX_MEMSLOTS];	/* by id; NULL = empty */
};

struct lvmm_slot *lvmm_memslot_find(struct lvmm_memslots *slots, u64 gfn);
struct page *lvmm_memslot_get_page(struct lvmm_slot *slot, u64 gfn,
				   bool *huge);
struct page *lvmm_memslot_peek_page(struct lvmm_slot *slot, u64 gfn);
int lvmm_vm_set_memslot(struct lvmm_vm *vm, const struct lvmm_memslot *req);
int lvmm_vm_set_memslot_flags(struct lvmm_vm *vm,
			      const struct lvmm_memslot_flags *req);
int lvmm_vm_dirty_log(struct lvmm_vm *vm, const struct lvmm_dirty_log *log,
		      bool clear);
void lvmm_vm_free_memslots(struct lvmm_vm *vm);
vm_fault_t lvmm_vm_mmap_fault(struct vm_fault *vmf);
vm_fault_t lvmm_vm_mmap_mkwrite(struct vm_fault *vmf);
int lvmm_guest_read(struct lvmm_vm *vm, u64 gpa, void *data, unsigned int len);
int lvmm_guest_write(struct lvmm_vm *vm, u64 gpa, const void *data,
		     unsigned int len);

static inline struct lvmm_memslots *lvmm_memslots(struct lvmm_vm *vm);

/* ---- scheduling policy (sched.c) ----------------------------------------- */

/*
 * A VM's policy and the state of its cap.  (s) vm->sched.lock,
 * (t) sched.timer_lock; READ_ONCE where the RUN loop reads it unlocked.
 */
struct lvmm_vm_sched {
	struct mutex lock;		/* policy changes, pins */
	u32 weight;			/* (s) */
	bool weight_set;		/* (s) threads' nice is lvmm's */
	bool weight_admin;		/* (s) set by an admin, not the owner */
	int nice;			/* (s) what the weight maps to */
	u32 cap, period_us;		/* (s) */
	u32 migrate_throttle;		/* (s) % auto-converge slows it by */
	u32 seq;			/* (s) policy generation */

	bool capped;			/* (s)(t) the RUN loop charges guest time */
	u64 period_ns;			/* (s)(t) */
	s64 quota;			/* (s)(t) guest ns per period */
	atomic64_t budget;		/* ns left this period; < 0: overrun */
	atomic64_t unused;		/* (t) set: the last period's leftover */
	u64 refill_at;			/* (t) local_clock() at that end */
	u64 gen;			/* (t) period number */
	bool busy;			/* (t) a vCPU entered this period */
	bool timer_on;			/* (t) */
	spinlock_t timer_lock;
	struct hrtimer timer;		/* refills the budget every period */
	u64 nr_periods;			/* (t) */
	u64 throttled_gen;		/* last period counted as throttled */
	atomic64_t nr_throttled;
	atomic_t nr_waiting;		/* vCPUs throttled now */

	/* The reservation: (r) also under the host's lvmm_resv_admit. */
	u32 reserve;			/* (s)(r) % of one CPU, 0: none */
	u32 resv_slack;			/* (r) reserve_slack when admitted */
	u32 resv_cost;			/* (r) ppm of a CPU per vCPU, slack in */
	bool reserved;			/* (s)(r) the RUN loop boosts */
	struct list_head resv_node;	/* (r) in lvmm_resv_vms */
};

struct lvmm_vcpu_sched {
	u32 seq;			/* (c) the policy generation applied */
	cpumask_var_t pin;		/* (s) empty: not pinned */
	bool pin_admin;			/* (s) set by an admin, not the owner */
	bool pin_broken;		/* (s) no CPU of the pin is online */
	cpumask_var_t saved;		/* (s) the thread's own CPUs */
	cpumask_var_t applied;		/* (s) what lvmm gave the thread */
	struct pid *pinned;		/* (s) that thread, with a reference */
	struct hrtimer slice;		/* ends a slice of the cap */
	bool slice_on;			/* (c) set; the slice timer clears */
	u64 entry_gen;			/* (c) the period it last entered in */
	u64 throttled_gen;		/* (c) last period it was throttled in */
	u64 nr_throttled, throttled_ns;	/* (c) racy reads */

	/*
	 * Its share of the reservation.  (c) the vCPU thread, (l) the host's
	 * lvmm_resv_lock, which the boosting kthread takes too.
	 */
	s64 resv_quota;			/* (s)(r) guest ns per window */
	s64 resv_cpu_quota;		/* (s)(r) boosted CPU ns per window */
	s64 resv_budget;		/* (c) guest ns left in this window */
	s64 resv_cpu;			/* (c) boosted CPU ns left in it */
	u64 resv_end;			/* (c) the window it was filled for */
	struct task_struct *run_task;	/* (c) the thread in RUN */
	bool boosted;			/* (l) that thread is real-time now */
	struct task_struct *boosted_task; /* (l) */
	int saved_policy, saved_nice;	/* (l) what the boost replaced */
	u64 saved_flags;		/* (l) its reset-on-fork */
	struct lvmm_resv_clock {
		u64 cpu_ns, wall_ns;
		int cpu;
	} resv_mark;			/* (c) paid up to (sched.c) */
	bool resv_idle;			/* (c) waited or left RUN this window */
	bool resv_mark_stale;		/* (c)(l) lvmm-resv boosted it since */
	bool resv_listed;		/* (l)(r) on lvmm_resv_vcpus */
	u64 boost_start;		/* (l) */
	struct list_head resv_node;	/* (l)(r) while the VM reserves */
	u64 nr_boosts, boosted_ns;	/* (l) racy reads */
};

/* A sched-set request, checked against the attribute policy already. */
struct lvmm_sched_req {
	bool has_weight, has_cap, has_period, has_reserve;
	u32 weight, cap, period_us, reserve;
	struct cpumask *pin[LVMM_MAX_VCPUS];	/* per vCPU; NULL: unchanged */
};

struct lvmm_sched_info {
	u32 weight, cap, period_us, reserve;
	bool weight_set;
	int nice;
	u64 nr_periods, nr_throttled, throttled_ns;
};

int lvmm_sched_init(void);
void lvmm_sched_exit(void);
void lvmm_sched_vm_init(struct lvmm_vm *vm);
void lvmm_sched_vm_destroy(struct lvmm_vm *vm);
int lvmm_sched_vcpu_init(struct lvmm_vcpu *vcpu);
void lvmm_sched_vcpu_destroy(struct lvmm_vcpu *vcpu);
int lvmm_sched_weight_to_nice(u32 weight);
/* What the caller of sched-set may ask for beyond less. */
#define LVMM_SCHED_PRIV_ADMIN	BIT(0)	/* CAP_NET_ADMIN: more weight, cap, pins */
#define LVMM_SCHED_PRIV_NICE	BIT(1)	/* CAP_SYS_NICE: a reservation */
int lvmm_sched_set(struct lvmm_vm *vm, const struct lvmm_sched_req *req,
		   unsigned int privs, struct netlink_ext_ack *extack);
void lvmm_sched_get(struct lvmm_vm *vm, struct lvmm_sched_info *info);
bool lvmm_sched_vcpu_pin(struct lvmm_vcpu *vcpu, struct cpumask *pin,
			 bool *broken);
void lvmm_sched_run_start(struct lvmm_vcpu *vcpu, bool new_thread);
void lvmm_sched_run_end(struct lvmm_vcpu *vcpu);
int lvmm_sched_enter(struct lvmm_vcpu *vcpu);
bool lvmm_sched_update(struct lvmm_vcpu *vcpu);
void lvmm_sched_charge(struct lvmm_vcpu *vcpu, u64 guest_ns);

/* ---- VMs (vm.c) ----------------------------------------------------------- */

struct lvmm_vm {
	struct kref ref;		/* VM fd + one per vCPU */
	u32 id;				/* (i) */
	char name[LVMM_VM_NAME_LEN];	/* (i) */
	struct list_head list;		/* lvmm_vms_lock */
	struct hlist_node name_node;	/* lvmm_vms_lock: by (net, name) */
	struct inode *inode;		/* (i) per-VM, for the mmap of slots */

	struct mutex lock;		/* vCPU creation */
	struct lvmm_vcpu *vcpus[LVMM_MAX_VCPUS];	/* lock; (o) per entry */
	int nr_vcpus;			/* lock; read with READ_ONCE */

	struct mutex slots_lock;	/* memslot changes */
	struct lvmm_memslots __rcu *memslots;	/* slots_lock, srcu to read */
	struct srcu_struct srcu;	/* readers of memslots */
	struct lvmm_memslots *retired;	/* slots_lock: replaced arrays */
	u64 mem_size;			/* slots_lock */
	bool slots_pinned;		/* slots_lock: a save reads them */
	/* slots_lock to write, vm->srcu to read: a migration owns the log */
	bool migrating;

	struct mm_struct *mm;		/* (i) creator's mm, for accounting */
	kuid_t owner;			/* (i) */
	struct pid *creator;		/* (i) the creating process */
	u64 created_ns;			/* (i) CLOCK_REALTIME */
	struct net *net;		/* (i) where the netlink plane sees it */

	/* Management state (netlink.c): written under vm->lock, but ran. */
	bool ran;			/* (c) any vCPU thread: set once, RUN */
	bool paused;			/* vCPUs park before entering */
	bool dead;			/* destroyed: never runs again */
	bool listed;			/* lvmm_vms_lock: in lvmm_vms */
	wait_queue_head_t pause_wq;	/* parked and throttled vCPUs */

	/* Snapshots (snapshot.c), under vm->lock. */
	bool frozen;			/* a save holds the vCPUs parked */
	struct task_struct *save_task;	/* the save or migration, or NULL */
	struct lvmm_migration *migration;	/* the migration, or NULL */
	bool migrated;			/* handed over: RUN says MIGRATED */
	bool migrate_unknown;		/* GO sent, no DONE: until resumed */
	bool incoming;			/* arriving: not this host's before GO */
	struct file *incoming_file;	/* LVMM_RESTORE_HOLD: until FINISH */
	bool irqchip;			/* (o) lock: vCPUs get a local APIC */
	struct lvmm_ioapic *ioapic;	/* (o) lock: with the irqchip */
	/* The paravirtual clock's reference (pvclock.c), set once. */
	spinlock_t pvclock_lock;
	bool pvclock_set;		/* pvclock_lock */
	u64 pvclock_tsc;		/* pvclock_lock: guest TSC at clock 0 */
	u64 pvclock_wall_ns;		/* pvclock_lock: CLOCK_REALTIME then */
	void *vmm_state;		/* the VMM's opaque device state */
	u32 vmm_state_size;

	struct lvmm_vm_sched sched;	/* sched.c */
};

static inline struct lvmm_memslots *lvmm_memslots(struct lvmm_vm *vm)
{
	return srcu_dereference_check(vm->memslots, &vm->srcu,
				      lockdep_is_held(&vm->slots_lock));
}

void lvmm_vm_get(struct lvmm_vm *vm);
struct lvmm_vm *lvmm_vm_find(struct net *net, u32 id, const char *name);
struct lvmm_vm *lvmm_vm_next(struct net *net, u32 *id);
int lvmm_vm_state(struct lvmm_vm *vm);
void lvmm_vm_put(struct lvmm_vm *vm);
long lvmm_dev_create_vm(void __user *argp);
struct lvmm_vm *lvmm_vm_new(void);
int lvmm_vm_install(struct lvmm_vm *vm, const char *name,
		    int (*tell)(struct lvmm_vm *vm, void *ctx), void *ctx);
bool lvmm_vm_name_taken(struct lvmm_vm *vm, const char *name);
bool lvmm_name_valid(const char *name);

/* Parked: paused by the management plane, or held by a save. */
static inline bool lvmm_vm_stopped(struct lvmm_vm *vm)
{
	if (READ_ONCE(vm->frozen))
		return true;
	/* Pairs with smp_wmb() in lvmm_mig_finish(): paused, then thawed. */
	smp_rmb();
	return READ_ONCE(vm->paused);
}

/* Held by a migration for its last pass: the vCPUs' state is sent. */
static inline bool lvmm_vm_frozen_for_migration(struct lvmm_vm *vm)
{
	return READ_ONCE(vm->frozen) && READ_ONCE(vm->migrating);
}

/* Why a dead VM's vCPUs leave RUN: destroyed here, or moved away. */
static inline u32 lvmm_vm_gone_reason(struct lvmm_vm *vm)
{
	/* Pairs with smp_wmb() in __lvmm_vm_destroy(): migrated, then dead. */
	smp_rmb();
	return READ_ONCE(vm->migrated) ? LVMM_EXIT_MIGRATED :
					 LVMM_EXIT_VM_DESTROYED;
}

int lvmm_vm_fs_init(void);
void lvmm_vm_fs_exit(void);

/* ---- vCPUs (vcpu.c) ------------------------------------------------------- */

enum lvmm_vcpu_mode {
	LVMM_OUTSIDE_GUEST_MODE,
	LVMM_IN_GUEST_MODE,
};

/* vcpu->requests bits, processed before each entry with IRQs off. */
#define LVMM_REQ_TLB_FLUSH	0	/* flush the guest's TLB */
#define LVMM_REQ_KICK		1	/* leave guest mode, recheck the VM */
#define LVMM_REQ_SCHED		2	/* apply the VM's policy to the thread */

/* Work the vCPU must finish on the next RUN, after userspace answered. */
enum lvmm_pending {
	LVMM_PENDING_NONE,
	LVMM_PENDING_PIO_IN,		/* copy run->io data into RAX / memory */
	LVMM_PENDING_PIO_OUT,		/* advance past the (string) OUT */
	LVMM_PENDING_MMIO_READ,		/* copy run->mmio.data into a reg */
	LVMM_PENDING_MMIO_WRITE,	/* just skip the instruction */
	LVMM_PENDING_HYPERCALL,		/* run->hypercall.ret into RAX */
};

/* General-purpose registers in the order of their ModRM encoding. */
enum lvmm_reg {
	LVMM_RAX, LVMM_RCX, LVMM_RDX, LVMM_RBX,
	LVMM_RSP, LVMM_RBP, LVMM_RSI, LVMM_RDI,
	LVMM_R8, LVMM_R9, LVMM_R10, LVMM_R11,
	LVMM_R12, LVMM_R13, LVMM_R14, LVMM_R15,
	LVMM_NR_GPRS,
};

enum lvmm_seg {
	LVMM_SEG_ES, LVMM_SEG_CS, LVMM_SEG_SS, LVMM_SEG_DS,
	LVMM_SEG_FS, LVMM_SEG_GS, LVMM_NR_SEGS,
};

/* What the instruction decoder needs to know of the vCPU's mode. */
struct lvmm_cpu_mode {
	u64 cr0, cr3, cr4, efer;
	u64 seg_base[LVMM_NR_SEGS];
	bool cs_l, cs_db;
	u8 cpl;
};

struct lvmm_emul {
	enum lvmm_pending pending;
	u64 next_rip;
	/* PIO */
	u16 port;
	u8 size;
	bool string, rep;
	u32 count;		/* iterations done by this exit */
	u8 addr_size;		/* string I/O: 2, 4 or 8 */
	u8 seg;			/* string OUT source segment */
	/* MMIO read */
	u8 reg;			/* destination register */
	bool high_byte;		/* AH..BH */
	u8 dst_size;		/* bytes written to the register */
	u8 sign_extend;		/* MOVSX: source size, else 0 */
};

/*
 * Written only by the vCPU's own thread, read racily (64-bit loads) by
 * the netlink stats: no lock and no atomic on the exit path.
 */
struct lvmm_vcpu_stat {
	u64 exits;		/* every #VMEXIT */
	u64 io, mmio, hlt, hypercall, cpuid, msr, intr;
	u64 npf;		/* nested page faults, MMIO included */
	u64 irqs;		/* interrupts injected */
	u64 guest_ns;		/* in guest mode */
	u64 run_ns;		/* in LVMM_RUN */
};

struct lvmm_vcpu {
	struct lvmm_vm *vm;		/* (a) holds a reference */
	u32 id;				/* (a) */
	struct mutex mutex;		/* vCPU ioctls, killable */
	struct lvmm_run *run;		/* (a) shared with userspace */
	void *io_page;			/* (a) string I/O data, page 1 */

	/* Kicks: who runs where, and what it must do before entering. */
	int cpu;			/* (c) last physical CPU */
	int mode;			/* lvmm_vcpu_mode, see lvmm_vcpu_request() */
	unsigned long requests;		/* LVMM_REQ_* bits, atomic */
	int state;			/* (c) enum lvmm_vcpu_state, racy reads */
	struct pid __rcu *pid;		/* (c) thread that last ran it */

	/* Guest GPRs; the backend syncs what its hardware keeps itself. */
	u64 regs[LVMM_NR_GPRS];		/* (c) */
	u64 rip;			/* (c) */
	u64 rflags;			/* (c) */

	struct lvmm_emul emul;		/* (c) */
	bool irq_pending;		/* (c) LVMM_INTERRUPT queued */
	u8 irq_vector;			/* (c) */
	bool nmi_pending;		/* (c) */

	struct fpu_guest fpu;		/* (a) guest FPU and XSAVE state */
	u64 xcr0;			/* (c) guest XCR0 */
	bool shutdown;			/* (c) triple fault seen */

	/* CPUID the guest sees (cpuid.c) */
	u32 cpuid_nent;			/* (c) */
	struct lvmm_cpuid_entry *cpuid;	/* (a) LVMM_MAX_CPUID_ENTRIES */

	/* MSRs with no home in the backend's state */
	u64 apic_base;			/* (c) */
	u64 misc_enable;		/* (c) */
	u64 mtrr_def_type;		/* (c) */
	u32 tsc_aux;			/* (c) what RDPID reads in the guest */
	u64 dr[4], dr6, dr7;		/* (c) virtual debug registers */

	struct lvmm_vcpu_stat stat;	/* (c) */
	u64 entered;			/* (c) local_clock() at the arch's last entry */
	struct lvmm_vcpu_sched sched;	/* sched.c */
	struct lvmm_lapic *lapic;	/* (a) the in-kernel APIC, or NULL */
	struct rcuwait wait;		/* a halted vCPU's thread sleeps here */
	u64 pvclock_msr, pvclock_wall_msr;	/* (c) pvclock.c */
	/* A save's request: xchg()/cmpxchg() only (locking.rst, 7c). */
	struct lvmm_snap_req *snap_req;
	bool fd_given;			/* vm->lock: an fd was made for it */
};

/* Does the RUN loop account guest time (a cap or a reservation)? */
static inline bool lvmm_sched_active(struct lvmm_vm *vm)
{
	return READ_ONCE(vm->sched.capped) || READ_ONCE(vm->sched.reserved);
}

/*
 * The vCPU waits in RUN (halted, paused, throttled) or leaves it: it does
 * not want all of this window, so a share it did not use is not carried.
 */
static inline void lvmm_sched_idle(struct lvmm_vcpu *vcpu)
{
	vcpu->sched.resv_idle = true;
}

/* Does the RUN loop need lvmm_sched_enter() before this entry? */
static inline bool lvmm_sched_pending(struct lvmm_vcpu *vcpu)
{
	return lvmm_sched_active(vcpu->vm) ||
	       test_bit(LVMM_REQ_SCHED, &vcpu->requests);
}

/* ---- the in-kernel local APIC (lapic.c) ----------------------------------- */

/* See lapic.c for who may touch what. */
struct lvmm_lapic {
	struct lvmm_vcpu *vcpu;		/* (a) */
	u32 regs[256];			/* the xAPIC page's first 1 KiB */
	unsigned long pending;		/* NMI, INIT, SIPI posted: atomic */
	u8 sipi_vector;			/* its sender holds the SIPI_TAKEN bit */
	u32 mp_state;			/* (c) LVMM_MP_STATE_* */
	unsigned long esr;		/* errors since ESR was written: atomic */
	u32 icr_dest;			/* (c) x2APIC: ICR bits 63-32 */
	struct hrtimer timer;		/* one-shot, periodic, TSC deadline */
	u64 period_ns;			/* (c) periodic: 0 otherwise */
	u64 tsc_deadline;		/* (c) the timer clears it on firing */
};

int lvmm_vm_enable_irqchip(struct lvmm_vm *vm);
long lvmm_vm_create_irqchip(struct lvmm_vm *vm, void __user *argp);
int lvmm_lapic_create(struct lvmm_vcpu *vcpu);
void lvmm_lapic_destroy(struct lvmm_vcpu *vcpu);
int lvmm_lapic_next_irq(struct lvmm_vcpu *vcpu);
bool lvmm_lapic_tpr_blocks(struct lvmm_vcpu *vcpu);
void lvmm_lapic_ack(struct lvmm_vcpu *vcpu, int vec);
u8 lvmm_lapic_get_cr8(struct lvmm_vcpu *vcpu);
void lvmm_lapic_set_cr8(struct lvmm_vcpu *vcpu, u8 cr8);
int lvmm_lapic_interrupt(struct lvmm_vcpu *vcpu, u8 vec);
bool lvmm_lapic_mmio(struct lvmm_vcpu *vcpu, u64 gpa, bool write, u64 *data,
		     unsigned int size);
bool lvmm_lapic_msr(struct lvmm_vcpu *vcpu, u32 index);
int lvmm_lapic_get_msr(struct lvmm_vcpu *vcpu, u32 index, u64 *data);
int lvmm_lapic_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 data);
int lvmm_lapic_check_base(struct lvmm_vcpu *vcpu, u64 data);
int lvmm_lapic_set_base(struct lvmm_vcpu *vcpu, u64 data);
void lvmm_lapic_events(struct lvmm_vcpu *vcpu);
void lvmm_lapic_halt(struct lvmm_vcpu *vcpu);
int lvmm_lapic_wait(struct lvmm_vcpu *vcpu);
long lvmm_vcpu_get_lapic(struct lvmm_vcpu *vcpu, void __user *argp);
long lvmm_vcpu_set_lapic(struct lvmm_vcpu *vcpu, void __user *argp);
long lvmm_vcpu_mp_state(struct lvmm_vcpu *vcpu, void __user *argp, bool set);
void lvmm_lapic_save(struct lvmm_vcpu *vcpu, struct lvmm_lapic_state *st);
int lvmm_lapic_load(struct lvmm_vcpu *vcpu, const struct lvmm_lapic_state *st);
int lvmm_lapic_set_mp_state(struct lvmm_vcpu *vcpu, u32 state);
int lvmm_lapic_deliver(struct lvmm_vm *vm, u32 dest, bool logical, u32 dm,
		       u8 vec, bool level);

/* ---- the paravirtual clock (pvclock.c) ------------------------------------ */

bool lvmm_pvclock_cpuid(struct lvmm_vcpu *vcpu, u32 function, u32 *eax,
			u32 *ebx, u32 *ecx, u32 *edx);
bool lvmm_pvclock_msr(struct lvmm_vcpu *vcpu, u32 index);
int lvmm_pvclock_get_msr(struct lvmm_vcpu *vcpu, u32 index, u64 *data);
int lvmm_pvclock_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 data);

/* ---- the in-kernel I/O APIC (ioapic.c) ------------------------------------ */

int lvmm_ioapic_create(struct lvmm_vm *vm);
void lvmm_ioapic_destroy(struct lvmm_vm *vm);
bool lvmm_ioapic_mmio(struct lvmm_vcpu *vcpu, u64 gpa, bool write, u64 *data,
		      unsigned int size);
void lvmm_ioapic_eoi(struct lvmm_vm *vm, u8 vector);
int lvmm_vm_irq_line(struct lvmm_vm *vm, void __user *argp);
long lvmm_vm_ioapic_state(struct lvmm_vm *vm, void __user *argp, bool set);
void lvmm_ioapic_save(struct lvmm_vm *vm, struct lvmm_ioapic_state *st);
int lvmm_ioapic_load(struct lvmm_vm *vm, const struct lvmm_ioapic_state *st);
void lvmm_ioapic_quiesce(struct lvmm_vm *vm);
void lvmm_ioapic_resend(struct lvmm_vm *vm);

/* Must the vCPU wait (HLT, or for SIPI) before it can enter? */
static inline bool lvmm_vcpu_waits(struct lvmm_vcpu *vcpu)
{
	return vcpu->lapic && vcpu->lapic->mp_state != LVMM_MP_STATE_RUNNABLE;
}

long lvmm_vm_create_vcpu(struct lvmm_vm *vm, void __user *argp);
long lvmm_vm_get_vcpu(struct lvmm_vm *vm, void __user *argp);
struct lvmm_vcpu *lvmm_vcpu_create(struct lvmm_vm *vm, u32 id);
/*
 * A vCPU's state in the ABI's structures, for a snapshot: the loaders run
 * every check of the matching set-ioctl.  Under vcpu->mutex, outside RUN.
 */
void lvmm_vcpu_save_regs(struct lvmm_vcpu *vcpu, struct lvmm_regs *r);
int lvmm_vcpu_load_regs(struct lvmm_vcpu *vcpu, const struct lvmm_regs *r);
void lvmm_vcpu_save_sregs(struct lvmm_vcpu *vcpu, struct lvmm_sregs *s);
int lvmm_vcpu_load_sregs(struct lvmm_vcpu *vcpu, const struct lvmm_sregs *s);
void lvmm_vcpu_save_xsave(struct lvmm_vcpu *vcpu, struct lvmm_xsave *x);
int lvmm_vcpu_load_xsave(struct lvmm_vcpu *vcpu, const struct lvmm_xsave *x);
void lvmm_vcpu_save_events(struct lvmm_vcpu *vcpu,
			   struct lvmm_vcpu_events *ev);
int lvmm_vcpu_load_events(struct lvmm_vcpu *vcpu,
			  const struct lvmm_vcpu_events *ev);
void lvmm_vcpu_save_debugregs(struct lvmm_vcpu *vcpu,
			      struct lvmm_debugregs *d);
int lvmm_vcpu_load_debugregs(struct lvmm_vcpu *vcpu,
			     const struct lvmm_debugregs *d);
int lvmm_vcpu_load_xcrs(struct lvmm_vcpu *vcpu, const struct lvmm_xcrs *x);
void lvmm_vcpu_destroy(struct lvmm_vcpu *vcpu);
void lvmm_vcpu_reset(struct lvmm_vcpu *vcpu);
void lvmm_vcpu_start_at(struct lvmm_vcpu *vcpu, u8 vector);
void lvmm_vm_flush_tlb_all(struct lvmm_vm *vm);
void lvmm_vm_kick_all(struct lvmm_vm *vm, int req);
void lvmm_vcpu_kick(struct lvmm_vcpu *vcpu, int req);
int lvmm_get_msr(struct lvmm_vcpu *vcpu, u32 index, u64 *data);
int lvmm_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 data);

/* ---- CPUID (cpuid.c) ------------------------------------------------------ */

int lvmm_cpuid_init(struct lvmm_vcpu *vcpu);
long lvmm_vcpu_set_cpuid(struct lvmm_vcpu *vcpu, void __user *argp);
long lvmm_vcpu_get_cpuid(struct lvmm_vcpu *vcpu, void __user *argp);
void lvmm_cpuid(struct lvmm_vcpu *vcpu, u64 cr4, u32 *eax, u32 *ebx,
		u32 *ecx, u32 *edx);
u64 lvmm_supported_xcr0(void);
int lvmm_cpuid_load(struct lvmm_vcpu *vcpu, struct lvmm_cpuid_entry *e,
		    u32 nent);
bool lvmm_xcr0_valid(u64 xcr0);

/* ---- instruction decoding and guest memory (x86.c) ------------------------ */

int lvmm_insn_length(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
		     u64 *next_rip);
struct lvmm_mov_ctl {
	bool dr;		/* debug register, else control register */
	bool to_reg;		/* MOV r, CRn/DRn */
	u8 reg;			/* CRn / DRn number */
	u8 gpr;			/* enum lvmm_reg */
	u64 next_rip;
};

int lvmm_decode_mov_ctl(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
			struct lvmm_mov_ctl *mov);
int lvmm_decode_cr0_write(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
			  u64 *cr0, u64 *next_rip);
int lvmm_emulate_mmio(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
		      u64 gpa, bool write_fault);
int lvmm_emulate_pio(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
		     u16 port, u8 size, bool in, bool string, bool rep,
		     u8 addr_size, u64 next_rip);
int lvmm_complete_userspace(struct lvmm_vcpu *vcpu);
void lvmm_internal_error(struct lvmm_vcpu *vcpu, u32 suberror, int n, ...);

/* ---- snapshots: the VM stream (snapshot.c) ------------------------------- */

struct lvmm_snap_req;
void lvmm_vcpu_answer_snap(struct lvmm_vcpu *vcpu);
bool lvmm_stream_file_ok(struct file *file, bool write);
int lvmm_vm_save(struct lvmm_vm *vm, struct file *file, bool stop);

/* ---- live migration (migrate.c) ------------------------------------------- */

struct lvmm_migrate_req {
	u32 downtime_ms;
	u32 max_iter;
	u64 max_bandwidth;		/* bytes/s, 0 = none */
	bool auto_converge;
	bool checksum;			/* the pages in the checksum too */
};

/* What the progress and end events carry. */
struct lvmm_migrate_stats {
	u32 iteration;
	u32 throttle;			/* % */
	u64 sent, left;			/* bytes */
	u64 dirty_rate, bandwidth;	/* bytes/s */
	u64 expected_ns;
	/* The end */
	u32 outcome;			/* enum lvmm_migrate_outcome */
	int error, peer_error;		/* positive errnos */
	u64 total_ns, downtime_ns;
};

int lvmm_vm_migrate(struct lvmm_vm *vm, struct file *file,
		    const struct lvmm_migrate_req *req,
		    struct netlink_ext_ack *extack);
int lvmm_vm_migrate_cancel(struct lvmm_vm *vm, struct netlink_ext_ack *extack);
int lvmm_mig_socket_ok(struct file *file, bool reader);
bool lvmm_vm_logs_dirty(struct lvmm_vm *vm);
int lvmm_vm_migrate_log(struct lvmm_vm *vm, bool on);
bool lvmm_slot_harvest(struct lvmm_vm *vm, struct lvmm_slot *slot, u64 first,
		       unsigned long *mask, u64 n);
u64 lvmm_slot_dirty_pages(struct lvmm_slot *slot);
void lvmm_sched_migrate_throttle(struct lvmm_vm *vm, u32 pct);
void lvmm_nl_migrate_event(struct lvmm_vm *vm, int event,
			   const struct lvmm_migrate_stats *st);
long lvmm_dev_restore_vm(void __user *argp);
long lvmm_vm_vmm_state(struct lvmm_vm *vm, void __user *argp, bool set);
void lvmm_vm_free_snapshot(struct lvmm_vm *vm);
void lvmm_mig_incoming_hold(struct lvmm_vm *vm, struct file *file);
void lvmm_mig_incoming_drop(struct lvmm_vm *vm, int err);
long lvmm_vm_incoming_finish(struct lvmm_vm *vm, void __user *argp);

/* ---- the management plane (netlink.c) ------------------------------------- */

int lvmm_netlink_init(void);
void lvmm_netlink_exit(void);
void lvmm_nl_event(struct lvmm_vm *vm, int event, int vcpu_id);
void lvmm_nl_save_event(struct lvmm_vm *vm, int event, u64 bytes, u64 total,
			int err, u64 pause_ns);
int lvmm_vm_pause(struct lvmm_vm *vm);
int lvmm_vm_resume(struct lvmm_vm *vm);
int lvmm_vm_destroy(struct lvmm_vm *vm);
void lvmm_vm_destroy_moved(struct lvmm_vm *vm);

/* ---- the guest-mode watchdog (watchdog.c) --------------------------------- */

/* Longer than this in guest mode, and the vCPU's CPU gets an NMI. */
#define LVMM_GUEST_STAY_MAX_NS	NSEC_PER_SEC

int lvmm_watchdog_init(void);
void lvmm_watchdog_exit(void);
void lvmm_watchdog_start(void);
void lvmm_watchdog_stop(void);
void lvmm_watchdog_cpu_online(void);
void lvmm_watchdog_enter(u64 now);
void lvmm_watchdog_exit_guest(void);
u64 lvmm_guest_stay_ns(int cpu);

/* ---- guest entry and exit, for the backends ------------------------------ */

/* Set by the reboot notifier: no VMRUN/VMRESUME may start any more. */
extern bool lvmm_rebooting;

/*
 * Entering a guest is, for the rest of the kernel, like returning to user
 * mode (KVM's guest_timing_enter_irqoff() and guest_state_enter_irqoff()
 * do the same): the guest's time is accounted as guest time, and the CPU
 * is in a quiescent state for RCU and RCU-Tasks, so that a vCPU spinning
 * in guest mode holds up neither grace periods nor the function tracer.
 * Called with IRQs off, right before the backend lets the CPU's IF be set
 * for the world switch, with its local_clock() reading; lockdep is told
 * IRQs are on from here.  For a noinstr caller: once context tracking has
 * entered the guest, RCU may not be watching, so everything that can be
 * instrumented or traced runs inside instrumentation_begin()/end(), and
 * only there.
 */
static __always_inline void lvmm_guest_enter_irqoff(u64 now)
{
	instrumentation_begin();
	lvmm_watchdog_enter(now);
	vtime_account_guest_enter();
	trace_hardirqs_on_prepare();
	lockdep_hardirqs_on_prepare();
	instrumentation_end();
	if (!context_tracking_guest_enter()) {
		instrumentation_begin();
		rcu_virt_note_context_switch(smp_processor_id());
		instrumentation_end();
	}
	lockdep_hardirqs_on(CALLER_ADDR0);
}

/* Back from the guest, IRQs off again: the reverse, in reverse order. */
static __always_inline void lvmm_guest_exit_irqoff(void)
{
	lockdep_hardirqs_off(CALLER_ADDR0);
	context_tracking_guest_exit();
	instrumentation_begin();
	trace_hardirqs_off_finish();
	vtime_account_guest_exit();
	lvmm_watchdog_exit_guest();
	/* On the CPU that ran the guest, before preemption is back on. */
	lvmm_mark_ibpb_exit_to_user();
	instrumentation_end();
}

/* ---- the architecture backend --------------------------------------------- */

/*
 * The backend's object sizes: the core allocates struct lvmm_vm and
 * struct lvmm_vcpu with this much room and the backend embeds them.
 */
struct lvmm_arch_ops {
	const char *name;

	/* module scope */
	int (*check_support)(void);	/* -ENODEV with one dmesg line */
	int (*hardware_setup)(void);	/* per-CPU allocations */
	void (*hardware_unsetup)(void);
	int (*cpu_enable)(void);	/* this CPU, IRQs off; -EBUSY if taken */
	void (*cpu_disable)(void);	/* this CPU, IRQs off */

	/* VM scope */
	size_t vm_size;
	int (*vm_init)(struct lvmm_vm *vm);
	void (*vm_destroy)(struct lvmm_vm *vm);
	/* Drop guest mappings of [gfn, gfn + npages); caller flushes TLBs. */
	void (*vm_zap_gfn_range)(struct lvmm_vm *vm, u64 gfn, u64 npages);
	/*
	 * Dirty logging.  Write-protect the guest's mappings of
	 * [gfn, gfn + npages), or of page gfn + 64 w + i for each bit i
	 * of mask[w]; the caller flushes TLBs.  Map @slot, which stopped
	 * logging, with 2 MiB pages again, and writable unless it is
	 * read-only; flushes itself.
	 */
	void (*vm_write_protect)(struct lvmm_vm *vm, u64 gfn, u64 npages);
	void (*vm_write_protect_mask)(struct lvmm_vm *vm, u64 gfn,
				      const unsigned long *mask, u64 nwords);
	void (*vm_unprotect_slot)(struct lvmm_vm *vm, struct lvmm_slot *slot);
	/* The guest-physical mappings present now, in 4 KiB and 2 MiB entries. */
	void (*vm_count_mappings)(struct lvmm_vm *vm, u64 *n4k, u64 *n2m);

	/* vCPU scope */
	size_t vcpu_size;
	int (*vcpu_init)(struct lvmm_vcpu *vcpu);
	void (*vcpu_destroy)(struct lvmm_vcpu *vcpu);
	/* INIT: the backend's state to the architecture's INIT state. */
	void (*vcpu_reset)(struct lvmm_vcpu *vcpu);
	/*
	 * Enter the guest once and handle the exit: > 0 to re-enter,
	 * 0 with run->exit_reason set to return to userspace, < 0 an error.
	 * The stay goes into vcpu->stat.guest_ns, its start (local_clock())
	 * into vcpu->entered.
	 */
	int (*vcpu_run)(struct lvmm_vcpu *vcpu);
	bool (*vcpu_interrupt_allowed)(struct lvmm_vcpu *vcpu);
	/* NMIs are not blocked (the guest is not in an NMI handler). */
	bool (*vcpu_nmi_allowed)(struct lvmm_vcpu *vcpu);

	/* register access */
	void (*get_sregs)(struct lvmm_vcpu *vcpu, struct lvmm_sregs *sregs);
	int (*set_sregs)(struct lvmm_vcpu *vcpu, const struct lvmm_sregs *sregs);
	void (*get_cpu_mode)(struct lvmm_vcpu *vcpu, struct lvmm_cpu_mode *m);
	int (*get_msr)(struct lvmm_vcpu *vcpu, u32 index, u64 *data);
	int (*set_msr)(struct lvmm_vcpu *vcpu, u32 index, u64 data);
	/*
	 * The backend's part of lvmm_vcpu_events: the injected event, NMI
	 * masking and the interrupt shadow.  set_events() gets fields that
	 * lvmm_vcpu_set_events() checked.
	 */
	void (*get_events)(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_events *ev);
	void (*set_events)(struct lvmm_vcpu *vcpu,
			   const struct lvmm_vcpu_events *ev);
};

extern const struct lvmm_arch_ops *lvmm_arch;
extern const struct lvmm_arch_ops lvmm_svm_ops;

/* ---- hardware ownership (hw.c) -------------------------------------------- */

int lvmm_hw_init(void);
void lvmm_hw_exit(void);
int lvmm_hw_get(void);
void lvmm_hw_put(void);

#endif /* _LVMM_H */
