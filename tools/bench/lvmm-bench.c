// SPDX-License-Identifier: GPL-2.0
/*
 * lvmm-bench: the same guest workloads through lvmm (liblvmm) and through
 * KVM (/dev/kvm, raw ioctls), one row per cost a VMM pays.
 *
 *   lvmm-bench [-r REPEATS] [-n EXITS] [-o ROW] lvmm   raw samples per row
 *   lvmm-bench [-r REPEATS] [-n EXITS] [-o ROW] kvm    the same for KVM
 *   lvmm-bench table LVMM_FILE KVM_FILE       min, median and lvmm/KVM ratio
 *
 * Rows (every sample is nanoseconds per operation):
 *   pio_exit    OUT to a port, back to userspace and in again, per exit
 *   cpuid_exit  CPUID handled in the kernel, per CPUID
 *   touch_64m   first guest write to each 4 KiB page of a fresh 64 MiB slot
 *               (2 MiB aligned), RUN to the completion OUT, per pass
 *   vm_create   create VM, one 2 MiB slot (with its host mapping), one vCPU
 *               (with its run mapping; KVM also gets the supported CPUID as
 *               any VMM sets it, lvmm fills its table at vCPU creation),
 *               then unmap and close everything, per VM
 *   slot_1g     a 1 GiB slot as a VMM pays for it: lvmm SET_MEMSLOT + mmap
 *               of the slot; KVM mmap(MAP_NORESERVE) + SET_USER_MEMORY_REGION
 *   dirty_enable_1g
 *               turn dirty logging on for a 1 GiB slot (2 MiB aligned) that
 *               the guest has written every 4 KiB page of: lvmm
 *               SET_MEMSLOT_FLAGS(LOG_DIRTY), KVM SET_USER_MEMORY_REGION with
 *               the same slot and KVM_MEM_LOG_DIRTY_PAGES, per ioctl.  Between
 *               samples logging goes off and the guest writes every page
 *               again, so that both map the slot with 2 MiB pages again.
 *               KVM (eager_page_split, on by default) splits them all to
 *               4 KiB in this ioctl; lvmm splits a 2 MiB mapping at the
 *               first logged write in it, which no row times (the first
 *               pass after turning logging on is a warm-up)
 *   dirty_harvest_1g
 *               get and clear the log of that slot, logging on, after the
 *               guest wrote every 10th 4 KiB page (10 % dirty): lvmm
 *               GET_DIRTY_LOG of the whole slot, then CLEAR_DIRTY_LOG with
 *               the bitmap GET returned; KVM GET_DIRTY_LOG in its classic
 *               mode (no MANUAL_DIRTY_LOG_PROTECT2: it gets, clears and
 *               write-protects in one call), per harvest
 *   dirty_fault the guest's first write to a page after the log was cleared:
 *               every 4th page (4096 pages) of a fully written 64 MiB slot,
 *               logging on, RUN to the completion OUT, per page
 *
 * The two 1 GiB rows share one VM, so that a run zeroes 1 GiB once.
 * dirty_harvest_1g takes a third of the -r samples (at least one): each
 * needs the guest's 26215 logged writes first, about 2 s in the sandbox.
 * Guest memory is the VMM's to read but never to write here: KVM does not
 * log the VMM's writes, lvmm does.
 *
 * Guests run in 32-bit protected mode with flat segments and paging off,
 * set directly through SET_SREGS, from hand-assembled code at 0x1000.
 * Every run is checked (exit sequence, exit count, final registers, the
 * memory written) so that a broken run prints an error, never a number.
 * The first repeat of each row warms up and is not recorded.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <linux/kvm.h>

#include "lvmm.h"

#define MIB		(1ULL << 20)
#define GIB		(1ULL << 30)
#define HPAGE		(2 * MIB)

#define CODE_GPA	0x1000ULL
#define LOW_SIZE	(2 * MIB)	/* slot 0 at GPA 0: the code */
#define TOUCH_GPA	(64 * MIB)	/* slot 1 for touch_64m */
#define TOUCH_SIZE	(64 * MIB)
#define TOUCH_PAGES	(TOUCH_SIZE / 4096)
#define TOUCH_BYTE	0x5a
#define BIG_GPA		GIB		/* slot 1 for slot_1g, dirty_*_1g */
#define BIG_SIZE	GIB
#define BIG_PAGES	(BIG_SIZE / 4096)
#define HARVEST_EVERY	10		/* dirty_harvest_1g: 10 % dirty */
#define FAULT_EVERY	4		/* dirty_fault: every 4th page... */
#define FAULT_PAGES	(TOUCH_PAGES / FAULT_EVERY)	/* ...of 64 MiB */

#define PORT_LOOP	0x10
#define PORT_READY	0x11
#define PORT_DONE	0x12

/*
 * 32-bit guest code, loaded at CODE_GPA; each first says "ready" so that
 * the timed part starts with the vCPU already running its code.
 */
/* ecx = N:  out ready; 1: out 0x10; dec ecx; jnz 1b; out done; hlt */
static const uint8_t code_pio[] = {
	0xe6, PORT_READY,		/* 1000 out %al,$0x11      */
	0xe6, PORT_LOOP,		/* 1002 out %al,$0x10      */
	0x49,				/* 1004 dec %ecx           */
	0x75, 0xfb,			/* 1005 jnz 1002           */
	0xe6, PORT_DONE,		/* 1007 out %al,$0x12      */
	0xf4,				/* 1009 hlt                */
	0xeb, 0xfe,			/* 100a jmp .              */
};

/* edi = N:  out ready; 1: xor eax,eax; cpuid; dec edi; jnz 1b; out done */
static const uint8_t code_cpuid[] = {
	0xe6, PORT_READY,		/* 1000 out %al,$0x11      */
	0x31, 0xc0,			/* 1002 xor %eax,%eax      */
	0x0f, 0xa2,			/* 1004 cpuid              */
	0x4f,				/* 1006 dec %edi           */
	0x75, 0xf9,			/* 1007 jnz 1002           */
	0xe6, PORT_DONE,		/* 1009 out %al,$0x12      */
	0xf4,				/* 100b hlt                */
	0xeb, 0xfe,			/* 100c jmp .              */
};

/* edi = base, ecx = pages:  out ready; 1: movb; add 4K; dec; jnz; done */
static const uint8_t code_touch[] = {
	0xe6, PORT_READY,		/* 1000 out %al,$0x11      */
	0xc6, 0x07, TOUCH_BYTE,		/* 1002 movb $0x5a,(%edi)  */
	0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, /* 1005 add $0x1000,%edi */
	0x49,				/* 100b dec %ecx           */
	0x75, 0xf4,			/* 100c jnz 1002           */
	0xe6, PORT_DONE,		/* 100e out %al,$0x12      */
	0xf4,				/* 1010 hlt                */
	0xeb, 0xfe,			/* 1011 jmp .              */
};

/* edi = base, ecx = pages, esi = stride, dl = byte: as code_touch */
static const uint8_t code_stride[] = {
	0xe6, PORT_READY,		/* 1000 out %al,$0x11      */
	0x88, 0x17,			/* 1002 mov %dl,(%edi)     */
	0x01, 0xf7,			/* 1004 add %esi,%edi      */
	0x49,				/* 1006 dec %ecx           */
	0x75, 0xf9,			/* 1007 jnz 1002           */
	0xe6, PORT_DONE,		/* 1009 out %al,$0x12      */
	0xf4,				/* 100b hlt                */
	0xeb, 0xfe,			/* 100c jmp .              */
};

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "lvmm-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---- one interface over both hypervisors ---------------------------------- */

enum exit_kind { EXIT_OUT, EXIT_HLT, EXIT_OTHER };

struct bexit {
	enum exit_kind kind;
	unsigned int port;
	unsigned int reason;	/* the hypervisor's own, for messages */
};

struct bregs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rip, rflags;
};

#define MAX_SLOTS 2

struct bvm {
	/* lvmm */
	struct lvmm_vm_handle lvm;
	struct lvmm_vcpu_handle lvcpu;
	/* KVM */
	int vm_fd, vcpu_fd;
	struct kvm_run *krun;
	size_t krun_size;
	/* both: each slot and the host view of it */
	void *hva[MAX_SLOTS];
	uint64_t gpa[MAX_SLOTS];
	uint64_t size[MAX_SLOTS];
	int has_vcpu;
};

struct backend {
	const char *name;
	void (*open)(void);
	void (*vm_create)(struct bvm *vm);
	void (*slot_add)(struct bvm *vm, int slot, uint64_t gpa, uint64_t size,
			 unsigned int how);
	void (*slot_del)(struct bvm *vm, int slot);
	void (*log_dirty)(struct bvm *vm, int slot, int on);
	/* Get the slot's whole log into @bitmap, clear it, write-protect. */
	void (*harvest)(struct bvm *vm, int slot, __u64 *bitmap);
	void (*vcpu_create)(struct bvm *vm);
	void (*set_flat32)(struct bvm *vm);
	void (*set_regs)(struct bvm *vm, const struct bregs *r);
	void (*get_regs)(struct bvm *vm, struct bregs *r);
	void (*run)(struct bvm *vm, struct bexit *e);
	void (*vm_destroy)(struct bvm *vm);
};

/* slot_add() @how: for KVM a bare mmap(MAP_NORESERVE), as slot_1g times it */
#define SLOT_BARE	1

/* ---- lvmm ----------------------------------------------------------------- */

static int lvmm_dev = -1;

static void lv_open(void)
{
	lvmm_dev = lvmm_open();
	if (lvmm_dev < 0)
		die("open %s: %s (is lvmm.ko loaded?)", LVMM_DEV_PATH,
		    strerror(-lvmm_dev));
}

static void lv_vm_create(struct bvm *vm)
{
	int r;

	memset(vm, 0, sizeof(*vm));
	r = lvmm_vm_create(lvmm_dev, NULL, &vm->lvm);
	if (r)
		die("LVMM_CREATE_VM: %s (KVM has VMs?)", strerror(-r));
}

static void lv_slot_add(struct bvm *vm, int slot, uint64_t gpa, uint64_t size,
			unsigned int how)
{
	int r;

	(void)how;	/* lvmm allocates a slot's memory itself */
	r = lvmm_set_memslot(&vm->lvm, slot, 0, gpa, size);
	if (r)
		die("LVMM_SET_MEMSLOT %d (%llu MiB): %s", slot,
		    (unsigned long long)(size / MIB), strerror(-r));
	r = lvmm_memslot_map(&vm->lvm, slot, size, PROT_READ | PROT_WRITE,
			     &vm->hva[slot]);
	if (r)
		die("mmap of lvmm slot %d: %s", slot, strerror(-r));
	vm->gpa[slot] = gpa;
	vm->size[slot] = size;
}

static void lv_slot_del(struct bvm *vm, int slot)
{
	int r;

	lvmm_memslot_unmap(vm->hva[slot], vm->size[slot]);
	vm->hva[slot] = NULL;
	r = lvmm_delete_memslot(&vm->lvm, slot);
	if (r)
		die("deleting lvmm slot %d: %s", slot, strerror(-r));
}

static void lv_log_dirty(struct bvm *vm, int slot, int on)
{
	int r = lvmm_set_memslot_flags(&vm->lvm, slot,
				       on ? LVMM_MEMSLOT_LOG_DIRTY : 0);

	if (r)
		die("LVMM_SET_MEMSLOT_FLAGS %d %s: %s (LVMM_CAP_DIRTY_LOG: %d)",
		    slot, on ? "LOG_DIRTY" : "0", strerror(-r),
		    lvmm_check_extension(lvmm_dev, LVMM_CAP_DIRTY_LOG));
}

static void lv_harvest(struct bvm *vm, int slot, __u64 *bitmap)
{
	uint64_t n = vm->size[slot] / 4096;
	int r;

	r = lvmm_get_dirty_log(&vm->lvm, slot, 0, n, bitmap);
	if (r)
		die("LVMM_GET_DIRTY_LOG %d: %s", slot, strerror(-r));
	r = lvmm_clear_dirty_log(&vm->lvm, slot, 0, n, bitmap);
	if (r)
		die("LVMM_CLEAR_DIRTY_LOG %d: %s", slot, strerror(-r));
}

static void lv_vcpu_create(struct bvm *vm)
{
	int r = lvmm_vcpu_create(&vm->lvm, 0, &vm->lvcpu);

	if (r)
		die("LVMM_CREATE_VCPU: %s", strerror(-r));
	vm->has_vcpu = 1;
}

static void lv_flat(struct lvmm_segment *s, uint8_t type, uint16_t sel)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->s = 1;
	s->present = 1;
	s->db = 1;
	s->g = 1;
}

static void lv_set_flat32(struct bvm *vm)
{
	struct lvmm_sregs s;
	int r;

	r = lvmm_get_sregs(&vm->lvcpu, &s);
	if (r)
		die("LVMM_GET_SREGS: %s", strerror(-r));
	lv_flat(&s.cs, 0xb, 0x08);
	lv_flat(&s.ds, 0x3, 0x10);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.cr0 = 0x11;		/* PE | ET, paging off */
	s.cr4 = 0;
	s.efer = 0;
	r = lvmm_set_sregs(&vm->lvcpu, &s);
	if (r)
		die("LVMM_SET_SREGS: %s", strerror(-r));
}

static void lv_set_regs(struct bvm *vm, const struct bregs *b)
{
	struct lvmm_regs r = {
		.rax = b->rax, .rbx = b->rbx, .rcx = b->rcx, .rdx = b->rdx,
		.rsi = b->rsi, .rdi = b->rdi, .rip = b->rip,
		.rflags = b->rflags,
	};
	int e = lvmm_set_regs(&vm->lvcpu, &r);

	if (e)
		die("LVMM_SET_REGS: %s", strerror(-e));
}

static void lv_get_regs(struct bvm *vm, struct bregs *b)
{
	struct lvmm_regs r;
	int e = lvmm_get_regs(&vm->lvcpu, &r);

	if (e)
		die("LVMM_GET_REGS: %s", strerror(-e));
	b->rax = r.rax; b->rbx = r.rbx; b->rcx = r.rcx; b->rdx = r.rdx;
	b->rsi = r.rsi; b->rdi = r.rdi; b->rip = r.rip; b->rflags = r.rflags;
}

static void lv_run(struct bvm *vm, struct bexit *e)
{
	struct lvmm_run *run = vm->lvcpu.run;
	int r = lvmm_run(&vm->lvcpu);

	if (r)
		die("LVMM_RUN: %s", strerror(-r));
	e->reason = run->exit_reason;
	if (run->exit_reason == LVMM_EXIT_IO &&
	    run->io.direction == LVMM_EXIT_IO_OUT) {
		e->kind = EXIT_OUT;
		e->port = run->io.port;
	} else if (run->exit_reason == LVMM_EXIT_HLT) {
		e->kind = EXIT_HLT;
	} else {
		e->kind = EXIT_OTHER;
	}
}

static void lv_vm_destroy(struct bvm *vm)
{
	int i;

	if (vm->has_vcpu)
		lvmm_vcpu_close(&vm->lvcpu);
	for (i = 0; i < MAX_SLOTS; i++)
		if (vm->hva[i])
			lvmm_memslot_unmap(vm->hva[i], vm->size[i]);
	lvmm_vm_close(&vm->lvm);
}

static const struct backend lvmm_backend = {
	.name = "lvmm",
	.open = lv_open,
	.vm_create = lv_vm_create,
	.slot_add = lv_slot_add,
	.slot_del = lv_slot_del,
	.log_dirty = lv_log_dirty,
	.harvest = lv_harvest,
	.vcpu_create = lv_vcpu_create,
	.set_flat32 = lv_set_flat32,
	.set_regs = lv_set_regs,
	.get_regs = lv_get_regs,
	.run = lv_run,
	.vm_destroy = lv_vm_destroy,
};

/* ---- KVM ------------------------------------------------------------------ */

static int kvm_dev = -1;
static struct kvm_cpuid2 *kvm_cpuid;

static void kv_open(void)
{
	int n = 256;

	kvm_dev = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_dev < 0)
		die("open /dev/kvm: %s (run kvm-load)", strerror(errno));
	if (ioctl(kvm_dev, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		die("KVM_GET_API_VERSION: not %d", KVM_API_VERSION);
	kvm_cpuid = calloc(1, sizeof(*kvm_cpuid) +
			      n * sizeof(struct kvm_cpuid_entry2));
	if (!kvm_cpuid)
		die("out of memory");
	kvm_cpuid->nent = n;
	if (ioctl(kvm_dev, KVM_GET_SUPPORTED_CPUID, kvm_cpuid))
		die("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
}

static void kv_vm_create(struct bvm *vm)
{
	memset(vm, 0, sizeof(*vm));
	/* As liblvmm does for lvmm: the run size, then the VM. */
	vm->krun_size = ioctl(kvm_dev, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)vm->krun_size <= 0)
		die("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	vm->vm_fd = ioctl(kvm_dev, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		die("KVM_CREATE_VM: %s (lvmm has VMs?)", strerror(errno));
	vm->vcpu_fd = -1;
}

/*
 * Guest memory as QEMU sets it up: anonymous, aligned to 2 MiB like the
 * guest-physical address so that THP can back it with huge pages, and
 * madvise(MADV_HUGEPAGE).  The slot_1g row (@plain, SLOT_BARE) times just
 * what the row says: one mmap(MAP_NORESERVE) and SET_USER_MEMORY_REGION.
 */
static void *kv_alloc(uint64_t size, int plain)
{
	size_t len = size + (size >= HPAGE && !plain ? HPAGE : 0);
	uint8_t *p, *a;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die("mmap %llu MiB: %s", (unsigned long long)(size / MIB),
		    strerror(errno));
	if (size < HPAGE || plain)
		return p;
	a = (uint8_t *)(((uintptr_t)p + HPAGE - 1) & ~(HPAGE - 1));
	if (a > p)
		munmap(p, a - p);
	if (a + size < p + len)
		munmap(a + size, p + len - (a + size));
	if (madvise(a, size, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE): %s", strerror(errno));
	return a;
}

static void kv_set_region(struct bvm *vm, int slot, uint32_t flags,
			  uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &m))
		die("KVM_SET_USER_MEMORY_REGION %d (%llu MiB): %s", slot,
		    (unsigned long long)(size / MIB), strerror(errno));
}

static void kv_slot_add(struct bvm *vm, int slot, uint64_t gpa, uint64_t size,
			unsigned int how)
{
	vm->hva[slot] = kv_alloc(size, how & SLOT_BARE);
	vm->gpa[slot] = gpa;
	vm->size[slot] = size;
	kv_set_region(vm, slot, 0, gpa, size, vm->hva[slot]);
}

static void kv_slot_del(struct bvm *vm, int slot)
{
	kv_set_region(vm, slot, 0, 0, 0, NULL);
	munmap(vm->hva[slot], vm->size[slot]);
	vm->hva[slot] = NULL;
}

/* The same slot again with only its flags changed, as QEMU does it. */
static void kv_log_dirty(struct bvm *vm, int slot, int on)
{
	kv_set_region(vm, slot, on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		      vm->gpa[slot], vm->size[slot], vm->hva[slot]);
}

/*
 * Classic mode: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is never enabled, so
 * GET_DIRTY_LOG gets, clears and write-protects in one call.
 */
static void kv_harvest(struct bvm *vm, int slot, __u64 *bitmap)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };

	if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log))
		die("KVM_GET_DIRTY_LOG %d: %s", slot, strerror(errno));
}

static void kv_vcpu_create(struct bvm *vm)
{
	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		die("KVM_CREATE_VCPU: %s", strerror(errno));
	vm->krun = mmap(NULL, vm->krun_size, PROT_READ | PROT_WRITE,
			MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->krun == MAP_FAILED)
		die("mmap of the KVM vCPU: %s", strerror(errno));
	if (ioctl(vm->vcpu_fd, KVM_SET_CPUID2, kvm_cpuid))
		die("KVM_SET_CPUID2: %s", strerror(errno));
	vm->has_vcpu = 1;
}

static void kv_flat(struct kvm_segment *s, uint8_t type, uint16_t sel)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->s = 1;
	s->present = 1;
	s->db = 1;
	s->g = 1;
}

static void kv_set_flat32(struct bvm *vm)
{
	struct kvm_sregs s;

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s))
		die("KVM_GET_SREGS: %s", strerror(errno));
	kv_flat(&s.cs, 0xb, 0x08);
	kv_flat(&s.ds, 0x3, 0x10);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.cr0 = 0x11;
	s.cr4 = 0;
	s.efer = 0;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s))
		die("KVM_SET_SREGS: %s", strerror(errno));
}

static void kv_set_regs(struct bvm *vm, const struct bregs *b)
{
	struct kvm_regs r = {
		.rax = b->rax, .rbx = b->rbx, .rcx = b->rcx, .rdx = b->rdx,
		.rsi = b->rsi, .rdi = b->rdi, .rip = b->rip,
		.rflags = b->rflags,
	};

	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &r))
		die("KVM_SET_REGS: %s", strerror(errno));
}

static void kv_get_regs(struct bvm *vm, struct bregs *b)
{
	struct kvm_regs r;

	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &r))
		die("KVM_GET_REGS: %s", strerror(errno));
	b->rax = r.rax; b->rbx = r.rbx; b->rcx = r.rcx; b->rdx = r.rdx;
	b->rsi = r.rsi; b->rdi = r.rdi; b->rip = r.rip; b->rflags = r.rflags;
}

static void kv_run(struct bvm *vm, struct bexit *e)
{
	struct kvm_run *run = vm->krun;

	if (ioctl(vm->vcpu_fd, KVM_RUN, 0))
		die("KVM_RUN: %s", strerror(errno));
	e->reason = run->exit_reason;
	if (run->exit_reason == KVM_EXIT_IO &&
	    run->io.direction == KVM_EXIT_IO_OUT) {
		e->kind = EXIT_OUT;
		e->port = run->io.port;
	} else if (run->exit_reason == KVM_EXIT_HLT) {
		e->kind = EXIT_HLT;
	} else {
		e->kind = EXIT_OTHER;
	}
}

static void kv_vm_destroy(struct bvm *vm)
{
	int i;

	if (vm->has_vcpu) {
		munmap(vm->krun, vm->krun_size);
		close(vm->vcpu_fd);
	}
	for (i = 0; i < MAX_SLOTS; i++)
		if (vm->hva[i])
			munmap(vm->hva[i], vm->size[i]);
	close(vm->vm_fd);
}

static const struct backend kvm_backend = {
	.name = "kvm",
	.open = kv_open,
	.vm_create = kv_vm_create,
	.slot_add = kv_slot_add,
	.slot_del = kv_slot_del,
	.log_dirty = kv_log_dirty,
	.harvest = kv_harvest,
	.vcpu_create = kv_vcpu_create,
	.set_flat32 = kv_set_flat32,
	.set_regs = kv_set_regs,
	.get_regs = kv_get_regs,
	.run = kv_run,
	.vm_destroy = kv_vm_destroy,
};

/* ---- the workloads -------------------------------------------------------- */

static const struct backend *be;

/* A VM with the code slot at GPA 0, one vCPU in flat 32-bit mode. */
static void guest_setup(struct bvm *vm, const uint8_t *code, size_t len)
{
	be->vm_create(vm);
	be->slot_add(vm, 0, 0, LOW_SIZE, 0);
	memcpy((uint8_t *)vm->hva[0] + CODE_GPA, code, len);
	be->vcpu_create(vm);
	be->set_flat32(vm);
}

static void guest_start(struct bvm *vm, uint64_t rcx, uint64_t rdi)
{
	struct bregs r = { .rcx = rcx, .rdi = rdi, .rip = CODE_GPA,
			   .rflags = 2 };

	be->set_regs(vm, &r);
}

static void expect_out(struct bvm *vm, const struct bexit *e,
		       unsigned int port, const char *what)
{
	struct bregs r;

	if (e->kind == EXIT_OUT && e->port == port)
		return;
	be->get_regs(vm, &r);
	die("%s: %s: expected OUT to 0x%x, got exit reason %u (port 0x%x) at rip 0x%llx",
	    be->name, what, port, e->reason,
	    e->kind == EXIT_OUT ? e->port : 0, (unsigned long long)r.rip);
}

/* RUN until the guest is at its loop (the "ready" OUT). */
static void run_to_ready(struct bvm *vm, const char *what)
{
	struct bexit e;

	be->run(vm, &e);
	expect_out(vm, &e, PORT_READY, what);
}

static double pio_once(struct bvm *vm, unsigned long n)
{
	unsigned long exits = 0;
	struct bregs r;
	struct bexit e;
	uint64_t t0, t1;

	guest_start(vm, n, 0);
	run_to_ready(vm, "pio_exit");
	t0 = now_ns();
	for (;;) {
		be->run(vm, &e);
		if (e.kind != EXIT_OUT || e.port != PORT_LOOP)
			break;
		exits++;
	}
	t1 = now_ns();
	expect_out(vm, &e, PORT_DONE, "pio_exit");
	be->get_regs(vm, &r);
	if (exits != n || (uint32_t)r.rcx != 0)
		die("%s: pio_exit: %lu exits, ecx %llu; expected %lu and 0",
		    be->name, exits, (unsigned long long)r.rcx, n);
	/* n loop exits and the completion exit. */
	return (double)(t1 - t0) / (n + 1);
}

static double cpuid_once(struct bvm *vm, unsigned long n)
{
	unsigned int a, b, c, d;
	struct bregs r;
	struct bexit e;
	uint64_t t0, t1;

	guest_start(vm, 0, n);
	run_to_ready(vm, "cpuid_exit");
	t0 = now_ns();
	be->run(vm, &e);
	t1 = now_ns();
	expect_out(vm, &e, PORT_DONE, "cpuid_exit");
	be->get_regs(vm, &r);
	__cpuid(0, a, b, c, d);
	if ((uint32_t)r.rdi != 0 || (uint32_t)r.rbx != b)
		die("%s: cpuid_exit: edi %llu, ebx 0x%llx; expected 0 and 0x%x",
		    be->name, (unsigned long long)r.rdi,
		    (unsigned long long)r.rbx, b);
	(void)a; (void)c; (void)d;
	return (double)(t1 - t0) / n;
}

static double touch_once(void)
{
	struct bvm vm;
	struct bregs r;
	struct bexit e;
	uint64_t t0, t1, i;
	volatile uint8_t *mem;

	guest_setup(&vm, code_touch, sizeof(code_touch));
	be->slot_add(&vm, 1, TOUCH_GPA, TOUCH_SIZE, 0);
	guest_start(&vm, TOUCH_PAGES, TOUCH_GPA);
	run_to_ready(&vm, "touch_64m");
	t0 = now_ns();
	be->run(&vm, &e);
	t1 = now_ns();
	expect_out(&vm, &e, PORT_DONE, "touch_64m");
	be->get_regs(&vm, &r);
	if ((uint32_t)r.rcx != 0 || (uint32_t)r.rdi != TOUCH_GPA + TOUCH_SIZE)
		die("%s: touch_64m: ecx %llu, edi 0x%llx; expected 0 and 0x%llx",
		    be->name, (unsigned long long)r.rcx,
		    (unsigned long long)r.rdi, TOUCH_GPA + TOUCH_SIZE);
	/* The guest's writes reached the memory the VMM sees. */
	mem = vm.hva[1];
	for (i = 0; i < TOUCH_PAGES; i += 17)
		if (mem[i * 4096] != TOUCH_BYTE)
			die("%s: touch_64m: page %llu reads 0x%x, not 0x%x",
			    be->name, (unsigned long long)i, mem[i * 4096],
			    TOUCH_BYTE);
	if (mem[TOUCH_SIZE - 4096] != TOUCH_BYTE || mem[1] != 0)
		die("%s: touch_64m: memory contents wrong", be->name);
	be->vm_destroy(&vm);
	return t1 - t0;
}

static double vm_create_once(unsigned int batch)
{
	struct bvm vm;
	uint64_t t0, t1;
	unsigned int i;

	t0 = now_ns();
	for (i = 0; i < batch; i++) {
		be->vm_create(&vm);
		be->slot_add(&vm, 0, 0, LOW_SIZE, 0);
		be->vcpu_create(&vm);
		be->vm_destroy(&vm);
	}
	t1 = now_ns();
	return (double)(t1 - t0) / batch;
}

static double slot_once(struct bvm *vm)
{
	uint64_t t0, t1;

	t0 = now_ns();
	be->slot_add(vm, 1, BIG_GPA, BIG_SIZE, SLOT_BARE);
	t1 = now_ns();
	be->slot_del(vm, 1);
	return t1 - t0;
}

/* ---- the dirty log rows --------------------------------------------------- */

/* A byte no earlier pass wrote (within 255 passes), so that each shows. */
static uint8_t next_byte(void)
{
	static uint8_t b;

	if (!++b)
		b = 1;
	return b;
}

/*
 * code_stride: write @byte to @n pages of slot 1, @every pages apart from
 * page @first; return the time of the RUN that does it.
 */
static double stride_pass(struct bvm *vm, uint64_t first, uint64_t n,
			  uint64_t every, uint8_t byte, const char *what)
{
	uint64_t gpa = vm->gpa[1] + first * 4096;
	uint32_t end = gpa + n * every * 4096;
	struct bregs r = { .rcx = n, .rdx = byte, .rsi = every * 4096,
			   .rdi = gpa, .rip = CODE_GPA, .rflags = 2 };
	struct bexit e;
	uint64_t t0, t1;

	be->set_regs(vm, &r);
	run_to_ready(vm, what);
	t0 = now_ns();
	be->run(vm, &e);
	t1 = now_ns();
	expect_out(vm, &e, PORT_DONE, what);
	be->get_regs(vm, &r);
	if ((uint32_t)r.rcx != 0 || (uint32_t)r.rdi != end)
		die("%s: %s: ecx %llu, edi 0x%llx; expected 0 and 0x%x",
		    be->name, what, (unsigned long long)r.rcx,
		    (unsigned long long)r.rdi, end);
	return t1 - t0;
}

/* That pass's writes reached the memory the VMM sees, and only them. */
static void expect_mem(struct bvm *vm, uint64_t first, uint64_t n,
		       uint64_t every, uint8_t byte, const char *what)
{
	volatile uint8_t *mem = vm->hva[1];
	uint64_t i, p;

	for (i = 0; i < n; i = i + 97 < n || i == n - 1 ? i + 97 : n - 1) {
		p = first + i * every;
		if (mem[p * 4096] != byte)
			die("%s: %s: page %llu reads 0x%x, not 0x%x", be->name,
			    what, (unsigned long long)p, mem[p * 4096], byte);
	}
	p = first + 1;
	if (every > 1 && mem[p * 4096] == byte)
		die("%s: %s: page %llu, not written, reads 0x%x", be->name,
		    what, (unsigned long long)p, byte);
}

/* The log of slot 1 (@npages) has pages @first + k @every, k < @n, only. */
static void expect_log(struct bvm *vm, const __u64 *bm, uint64_t first,
		       uint64_t n, uint64_t every, const char *what)
{
	uint64_t npages = vm->size[1] / 4096, p, set = 0, bad = npages;
	int got, exp;

	for (p = 0; p < npages; p++) {
		got = bm[p / 64] >> (p % 64) & 1;
		exp = p >= first && (p - first) % every == 0 &&
		      (p - first) / every < n;
		set += got;
		if (got != exp && bad == npages)
			bad = p;
	}
	if (bad != npages)
		die("%s: %s: %llu pages logged, page %llu %s; expected %llu from %llu, %llu apart",
		    be->name, what, (unsigned long long)set,
		    (unsigned long long)bad,
		    bm[bad / 64] >> (bad % 64) & 1 ? "set" : "clear",
		    (unsigned long long)n, (unsigned long long)first,
		    (unsigned long long)every);
}

static __u64 log_bitmap[BIG_PAGES / 64];

/* A 1 GiB slot 1, every page of it written by the guest, logging off. */
static void big_setup(struct bvm *vm)
{
	guest_setup(vm, code_stride, sizeof(code_stride));
	be->slot_add(vm, 1, BIG_GPA, BIG_SIZE, 0);
	stride_pass(vm, 0, BIG_PAGES, 1, next_byte(), "1 GiB first touch");
}

static double enable_once(struct bvm *vm)
{
	const char *what = "dirty_enable_1g";
	uint8_t b = next_byte();
	uint64_t t0, t1;

	/* Both map the slot with 2 MiB pages again on these faults. */
	stride_pass(vm, 0, BIG_PAGES, 1, b, what);
	expect_mem(vm, 0, BIG_PAGES, 1, b, what);
	t0 = now_ns();
	be->log_dirty(vm, 1, 1);
	t1 = now_ns();
	/* Logging is on and its log starts empty. */
	be->harvest(vm, 1, log_bitmap);
	expect_log(vm, log_bitmap, 0, 0, 1, what);
	be->log_dirty(vm, 1, 0);
	return t1 - t0;
}

/*
 * Logging on.  Sample @k dirties pages k % 10, + 10, ...: a bit that
 * CLEAR_DIRTY_LOG left set shows up in the next sample's log.
 */
static double harvest_once(struct bvm *vm, unsigned int k)
{
	const char *what = "dirty_harvest_1g";
	uint64_t first = k % HARVEST_EVERY;
	uint64_t n = (BIG_PAGES - first + HARVEST_EVERY - 1) / HARVEST_EVERY;
	uint8_t b = next_byte();
	uint64_t t0, t1;

	stride_pass(vm, first, n, HARVEST_EVERY, b, what);
	t0 = now_ns();
	be->harvest(vm, 1, log_bitmap);
	t1 = now_ns();
	expect_log(vm, log_bitmap, first, n, HARVEST_EVERY, what);
	expect_mem(vm, first, n, HARVEST_EVERY, b, what);
	return t1 - t0;
}

/*
 * Logging on, log cleared.  The same pages each sample: a page that
 * CLEAR_DIRTY_LOG left writable goes missing from the next sample's log.
 */
static double fault_once(struct bvm *vm)
{
	const char *what = "dirty_fault";
	uint8_t b = next_byte();
	double t;

	t = stride_pass(vm, 0, FAULT_PAGES, FAULT_EVERY, b, what);
	be->harvest(vm, 1, log_bitmap);
	expect_log(vm, log_bitmap, 0, FAULT_PAGES, FAULT_EVERY, what);
	expect_mem(vm, 0, FAULT_PAGES, FAULT_EVERY, b, what);
	return t / FAULT_PAGES;
}

/* ---- collecting ----------------------------------------------------------- */

static unsigned int repeats = 15;
static const char *only;		/* -o: just this row */
static unsigned long nexits = 20000;
#define VM_BATCH	10
#define MAX_REPEATS	1000

static int want(const char *name)
{
	return !only || !strcmp(only, name);
}

static void print_row(const char *name, const double *v, unsigned int n)
{
	unsigned int i;

	printf("row %s", name);
	for (i = 0; i < n; i++)
		printf(" %.1f", v[i]);
	printf("\n");
	fflush(stdout);
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

/* What one clock read costs here: the sandbox's clocksource may be slow. */
static double clock_cost_ns(void)
{
	uint64_t t0 = now_ns(), t1;
	int i;

	for (i = 0; i < 1000; i++)
		now_ns();
	t1 = now_ns();
	return (t1 - t0) / 1001.0;
}

static int bench(const struct backend *b)
{
	unsigned int nharvest = (repeats + 2) / 3;
	double v[MAX_REPEATS];
	char thp[128], cs[64];
	struct utsname u;
	struct bvm vm;
	unsigned int i;

	be = b;
	be->open();
	uname(&u);
	read_line("/sys/kernel/mm/transparent_hugepage/enabled", thp,
		  sizeof(thp));
	read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		  cs, sizeof(cs));
	printf("info %s kernel=%s cpus=%ld repeats=%u exits=%lu clocksource=%s clock_gettime=%.0fns thp=[%s]\n",
	       be->name, u.release, sysconf(_SC_NPROCESSORS_ONLN), repeats,
	       nexits, cs, clock_cost_ns(), thp);

	if (want("pio_exit")) {
		guest_setup(&vm, code_pio, sizeof(code_pio));
		pio_once(&vm, nexits / 10);		/* warm-up */
		for (i = 0; i < repeats; i++)
			v[i] = pio_once(&vm, nexits);
		be->vm_destroy(&vm);
		print_row("pio_exit", v, repeats);
	}
	if (want("cpuid_exit")) {
		guest_setup(&vm, code_cpuid, sizeof(code_cpuid));
		cpuid_once(&vm, nexits / 10);
		for (i = 0; i < repeats; i++)
			v[i] = cpuid_once(&vm, nexits);
		be->vm_destroy(&vm);
		print_row("cpuid_exit", v, repeats);
	}
	if (want("touch_64m")) {
		touch_once();
		for (i = 0; i < repeats; i++)
			v[i] = touch_once();
		print_row("touch_64m", v, repeats);
	}
	if (want("vm_create")) {
		vm_create_once(1);
		for (i = 0; i < repeats; i++)
			v[i] = vm_create_once(VM_BATCH);
		print_row("vm_create", v, repeats);
	}
	if (want("slot_1g")) {
		guest_setup(&vm, code_pio, sizeof(code_pio));
		slot_once(&vm);
		for (i = 0; i < 2 * repeats; i++)
			v[i] = slot_once(&vm);
		be->vm_destroy(&vm);
		print_row("slot_1g", v, 2 * repeats);
	}
	if (want("dirty_enable_1g") || want("dirty_harvest_1g")) {
		big_setup(&vm);
		if (want("dirty_enable_1g")) {
			enable_once(&vm);
			for (i = 0; i < repeats; i++)
				v[i] = enable_once(&vm);
			print_row("dirty_enable_1g", v, repeats);
		}
		if (want("dirty_harvest_1g")) {
			be->log_dirty(&vm, 1, 1);
			harvest_once(&vm, 0);
			for (i = 0; i < nharvest; i++)
				v[i] = harvest_once(&vm, i + 1);
			print_row("dirty_harvest_1g", v, nharvest);
		}
		be->vm_destroy(&vm);
	}
	if (want("dirty_fault")) {
		guest_setup(&vm, code_stride, sizeof(code_stride));
		be->slot_add(&vm, 1, TOUCH_GPA, TOUCH_SIZE, 0);
		stride_pass(&vm, 0, TOUCH_PAGES, 1, next_byte(),
			    "64 MiB first touch");
		be->log_dirty(&vm, 1, 1);
		fault_once(&vm);
		for (i = 0; i < repeats; i++)
			v[i] = fault_once(&vm);
		be->vm_destroy(&vm);
		print_row("dirty_fault", v, repeats);
	}
	return 0;
}

/* ---- the table ------------------------------------------------------------ */

static const struct {
	const char *name;
	const char *what;
} rows[] = {
	{ "pio_exit",	"per OUT exit to userspace" },
	{ "cpuid_exit",	"per CPUID, in-kernel exit" },
	{ "touch_64m",	"first touch of 64 MiB, per pass" },
	{ "vm_create",	"VM + 2 MiB slot + vCPU, create+close" },
	{ "slot_1g",	"create a 1 GiB slot (+ its mmap)" },
	{ "dirty_enable_1g", "logging on, 1 GiB slot, all touched" },
	{ "dirty_harvest_1g", "get+clear log of 1 GiB, 10 % dirty" },
	{ "dirty_fault", "first write after a clear, per page" },
};
#define NROWS	(sizeof(rows) / sizeof(rows[0]))

struct stats {
	double min, med;
	unsigned int n;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Samples of one row, from every "row" line with its name (rounds add up). */
struct samples {
	double v[MAX_REPEATS];
	unsigned int n;
};

static void load(const char *path, struct stats *st, char *info, size_t ilen)
{
	static struct samples smp[NROWS];
	char line[8192];
	FILE *f = fopen(path, "r");
	unsigned int r, n;

	if (!f)
		die("%s: %s", path, strerror(errno));
	memset(smp, 0, sizeof(smp));
	memset(st, 0, NROWS * sizeof(*st));
	snprintf(info, ilen, "?");
	while (fgets(line, sizeof(line), f)) {
		char *tok, *save = NULL;

		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "info ", 5)) {
			snprintf(info, ilen, "%s", line + 5);
			continue;
		}
		if (strncmp(line, "row ", 4))
			continue;
		tok = strtok_r(line + 4, " ", &save);
		for (r = 0; r < NROWS; r++)
			if (tok && !strcmp(tok, rows[r].name))
				break;
		if (r == NROWS)
			continue;
		while ((tok = strtok_r(NULL, " ", &save)) &&
		       smp[r].n < MAX_REPEATS)
			smp[r].v[smp[r].n++] = strtod(tok, NULL);
	}
	fclose(f);
	for (r = 0; r < NROWS; r++) {
		double *v = smp[r].v;

		n = smp[r].n;
		if (!n)
			continue;
		qsort(v, n, sizeof(v[0]), cmp_double);
		st[r].n = n;
		st[r].min = v[0];
		st[r].med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	}
}

/* ns -> a unit that keeps 3-4 significant digits. */
static const char *unit_for(double ns, double *div)
{
	if (ns >= 10e6) {
		*div = 1e6;
		return "ms";
	}
	*div = 1e3;
	return "us";
}

static int table(const char *lpath, const char *kpath)
{
	struct stats l[NROWS], k[NROWS];
	char linfo[8192], kinfo[8192];
	double ratio[NROWS];
	unsigned int r;

	load(lpath, l, linfo, sizeof(linfo));
	load(kpath, k, kinfo, sizeof(kinfo));

	printf("lvmm vs KVM, same guest code, same boot.  Both run nested under QEMU TCG\n"
	       "(emulated SVM + NPT): absolute times are the emulator's, compare ratios.\n");
	printf("lvmm: %s\nkvm:  %s\n\n", linfo, kinfo);
	printf("%-16s %-37s %4s %9s %9s %9s %9s %9s\n", "row", "what", "unit",
	       "lvmm min", "lvmm med", "KVM min", "KVM med", "lvmm/KVM");
	for (r = 0; r < NROWS; r++) {
		double div;
		const char *u;

		if (!l[r].n || !k[r].n) {
			ratio[r] = 0;
			printf("%-16s %-37s   missing (lvmm %u, KVM %u samples)\n",
			       rows[r].name, rows[r].what, l[r].n, k[r].n);
			continue;
		}
		u = unit_for(k[r].med < l[r].med ? k[r].med : l[r].med, &div);
		ratio[r] = l[r].med / k[r].med;
		printf("%-16s %-37s %4s %9.2f %9.2f %9.2f %9.2f %8.2fx\n",
		       rows[r].name, rows[r].what, u, l[r].min / div,
		       l[r].med / div, k[r].min / div, k[r].med / div,
		       ratio[r]);
	}
	printf("\n(ratio > 1: lvmm slower; medians over the samples, n =");
	for (r = 0; r < NROWS; r++)
		printf("%s%u", r ? "/" : " ", l[r].n);
	printf(")\n\n");
	for (r = 0; r < NROWS; r++) {
		if (!l[r].n || !k[r].n)
			continue;
		printf("ratio %s %.2f\n", rows[r].name, ratio[r]);
	}
	for (r = 0; r < NROWS; r++)
		if (!l[r].n || !k[r].n)
			return 1;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: lvmm-bench [-r REPEATS] [-n EXITS] [-o ROW] lvmm|kvm\n"
		"       lvmm-bench table LVMM_OUTPUT KVM_OUTPUT\n"
		"  lvmm, kvm  run the rows on that hypervisor, print raw samples\n"
		"             (\"row NAME ns ns ...\", nanoseconds per operation)\n"
		"  table      min/median per row and the lvmm/KVM ratio of medians,\n"
		"             then one \"ratio NAME X\" line per row\n"
		"  -r N       samples per row (default 15; slot_1g takes 2N,\n"
		"             dirty_harvest_1g N/3 rounded up)\n"
		"  -n N       exits per pio_exit/cpuid_exit sample (default 20000)\n"
		"  -o ROW     only that row (pio_exit, cpuid_exit, touch_64m,\n"
		"             vm_create, slot_1g, dirty_enable_1g,\n"
		"             dirty_harvest_1g, dirty_fault)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "r:n:o:h")) != -1) {
		switch (c) {
		case 'o':
			only = optarg;
			break;
		case 'r':
			repeats = strtoul(optarg, NULL, 0);
			if (!repeats || 2 * repeats > MAX_REPEATS)
				die("-r: 1..%d", MAX_REPEATS / 2);
			break;
		case 'n':
			nexits = strtoul(optarg, NULL, 0);
			if (nexits < 10 || nexits > 0x7fffffff)
				die("-n: 10..2^31-1");
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 1 && !strcmp(argv[0], "lvmm"))
		return bench(&lvmm_backend);
	if (argc == 1 && !strcmp(argv[0], "kvm"))
		return bench(&kvm_backend);
	if (argc == 3 && !strcmp(argv[0], "table"))
		return table(argv[1], argv[2]);
	usage();
	return 2;
}
