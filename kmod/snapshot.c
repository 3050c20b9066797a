// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: the VM stream (Documentation/migration.rst) -- a whole VM as a
 * sequence of records, written by a save and read by a restore.
 *
 * A save (netlink vm-save) runs in a kernel thread of its own: it holds
 * the vCPUs parked (vm->frozen), takes each vCPU's state -- from the vCPU
 * thread itself when that is parked inside LVMM_RUN, under vcpu->mutex
 * otherwise -- and writes the header, the memory, the vCPUs and the VMM's
 * state to the caller's file.  A restore (LVMM_RESTORE_VM) reads a stream
 * in the caller's context into a VM nobody else can see yet, checking
 * every length, count and field before it uses it, and lists the VM only
 * once the whole stream has been read and its checksum matched.
 */
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/cred.h>
#include <linux/kthread.h>
#include <linux/memcontrol.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/sched/clock.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/msr-index.h>

#include "lvmm.h"
#include "stream.h"

/*
 * The MSRs a vCPU record carries: all that lvmm keeps for the guest
 * (Documentation/api.rst, 9).  The TSC goes last, so that on a restore
 * the guest's TSC goes on from the value it was saved with.
 */
static const u32 lvmm_stream_msrs[] = {
	MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK,
	MSR_KERNEL_GS_BASE, MSR_FS_BASE, MSR_GS_BASE, MSR_IA32_SYSENTER_CS,
	MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_IA32_CR_PAT,
	MSR_TSC_AUX, MSR_IA32_MISC_ENABLE,
	0x2ff,			/* IA32_MTRR_DEF_TYPE */
	MSR_IA32_APICBASE, MSR_IA32_TSC,
};

static size_t lvmm_image_len(const struct lvmm_stream_vcpu *v)
{
	return sizeof(*v) + v->nmsrs * sizeof(struct lvmm_msr_entry) +
	       v->ncpuid * sizeof(struct lvmm_cpuid_entry);
}

/* A save asks a parked vCPU thread for its state. */
struct lvmm_snap_req {
	struct lvmm_vcpu_image *img;
	struct completion done;
	int r;
};

/* Give up on a vCPU whose thread neither parks nor leaves its ioctl. */
#define LVMM_SAVE_STOP_MS	5000
/* How long an exit the VMM is answering may take to come back. */
#define LVMM_SAVE_EXIT_MS	200

void lvmm_stream_init(struct lvmm_stream *st, struct file *file)
{
	st->file = file;
	st->pos = file->f_pos;
	xxh64_reset(&st->xxh, 0);
	st->bytes = 0;
	st->nr_records = 0;
	st->eof = false;
	st->unsummed = false;
	st->bounce = NULL;
}

/*
 * Whether @file can carry a stream: a regular file, a pipe or a socket,
 * blocking and not O_DIRECT, that kernel_write() (@write) or kernel_read()
 * takes -- ->write_iter (->read_iter) and no plain ->write (->read).  The
 * caller checked that it is open that way.
 */
bool lvmm_stream_file_ok(struct file *file, bool write)
{
	const struct file_operations *fop = file->f_op;
	umode_t mode = file_inode(file)->i_mode;

	/* A file, a pipe or a socket; blocking, through the page cache. */
	if ((!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode)) ||
	    (file->f_flags & (O_NONBLOCK | O_DIRECT)))
		return false;
	if (write)
		return (file->f_mode & FMODE_CAN_WRITE) && fop->write_iter &&
		       !fop->write;
	return (file->f_mode & FMODE_CAN_READ) && fop->read_iter && !fop->read;
}

/* ---- vCPU state ----------------------------------------------------------- */

/*
 * Under vcpu->mutex outside RUN, or in the vCPU's own parked thread with
 * its FPU state swapped out.  An exit the VMM has not answered is not
 * state: the instruction runs again after a restore (api.rst, 7.9).
 */
static int lvmm_vcpu_capture(struct lvmm_vcpu *vcpu,
			     struct lvmm_vcpu_image *img)
{
	struct lvmm_stream_vcpu *v = &img->v;
	u32 i;

	/*
	 * An NMI, INIT or SIPI sent to it and not yet taken lives only in
	 * its APIC's pending bits, which no record carries: take it into
	 * the vCPU's state first, as its next entry would.
	 */
	if (vcpu->lapic)
		lvmm_lapic_events(vcpu);
	memset(v, 0, sizeof(*v));
	v->id = vcpu->id;
	lvmm_vcpu_save_regs(vcpu, &v->regs);
	lvmm_vcpu_save_sregs(vcpu, &v->sregs);
	lvmm_vcpu_save_events(vcpu, &v->events);
	v->events.exit_pending = 0;
	lvmm_vcpu_save_debugregs(vcpu, &v->debugregs);
	v->xcrs.xcr0 = vcpu->xcr0;
	lvmm_vcpu_save_xsave(vcpu, &v->xsave);
	for (i = 0; i < ARRAY_SIZE(lvmm_stream_msrs); i++) {
		img->msrs[i].index = lvmm_stream_msrs[i];
		img->msrs[i].reserved = 0;
		if (lvmm_stream_msrs[i] == MSR_IA32_TSC)
			img->host_tsc = rdtsc();
		if (lvmm_get_msr(vcpu, lvmm_stream_msrs[i], &img->msrs[i].data))
			return -EIO;
	}
	v->nmsrs = ARRAY_SIZE(lvmm_stream_msrs);
	v->ncpuid = vcpu->cpuid_nent;
	memcpy(img->cpuid, vcpu->cpuid, v->ncpuid * sizeof(*img->cpuid));
	if (vcpu->lapic) {
		struct lvmm_stream_lapic *l = &img->lapic;

		memset(l, 0, sizeof(*l));
		l->id = vcpu->id;
		l->mp_state = vcpu->lapic->mp_state;
		l->pvclock_msr = vcpu->pvclock_msr;
		l->pvclock_wall_msr = vcpu->pvclock_wall_msr;
		lvmm_lapic_save(vcpu, &l->lapic);
	}
	return 0;
}

/* The parked vCPU thread answers a save (lvmm_vcpu_park()). */
void lvmm_vcpu_answer_snap(struct lvmm_vcpu *vcpu)
{
	struct lvmm_snap_req *req = xchg(&vcpu->snap_req, NULL);

	if (!req)
		return;		/* the save withdrew it */
	req->r = lvmm_vcpu_capture(vcpu, req->img);
	complete(&req->done);
}

/*
 * Take @vcpu's state while the VM is frozen.  A vCPU outside any ioctl is
 * read under its mutex; one in LVMM_RUN parks and is asked to answer
 * itself.  An exit the VMM is still answering gets a moment to come back,
 * so that it is completed rather than run again after a restore.
 */
int lvmm_save_vcpu(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_image *img)
{
	unsigned long stop = jiffies + msecs_to_jiffies(LVMM_SAVE_STOP_MS);
	unsigned long exit = jiffies + msecs_to_jiffies(LVMM_SAVE_EXIT_MS);
	struct lvmm_snap_req req = { .img = img };
	int r;

	init_completion(&req.done);
	for (;;) {
		if (mutex_trylock(&vcpu->mutex)) {
			if (vcpu->emul.pending != LVMM_PENDING_NONE &&
			    time_before(jiffies, exit)) {
				mutex_unlock(&vcpu->mutex);
				usleep_range(5000, 10000);
				continue;
			}
			r = lvmm_vcpu_capture(vcpu, img);
			mutex_unlock(&vcpu->mutex);
			return r;
		}
		/* The request's fields before it: pairs with the xchg(). */
		smp_store_release(&vcpu->snap_req, &req);
		wake_up_all(&vcpu->vm->pause_wq);
		if (wait_for_completion_timeout(&req.done,
						msecs_to_jiffies(10)))
			return req.r;
		if (cmpxchg(&vcpu->snap_req, &req, NULL) != &req) {
			/* Taken: the vCPU thread is answering now. */
			wait_for_completion(&req.done);
			return req.r;
		}
		if (time_after(jiffies, stop))
			return -ETIMEDOUT;
		if (fatal_signal_pending(current) || READ_ONCE(vcpu->vm->dead))
			return -EINTR;
	}
}

/*
 * Each vCPU's TSC is set once the whole stream is in, from one instant,
 * so that a stream that arrives slowly leaves the vCPUs in step.
 */
struct lvmm_load_tsc {
	u64 tsc[LVMM_MAX_VCPUS];
	DECLARE_BITMAP(has, LVMM_MAX_VCPUS);
};

static void lvmm_load_tsc(struct lvmm_vm *vm, const struct lvmm_load_tsc *t)
{
	u64 start = rdtsc();
	u32 i;

	for_each_set_bit(i, t->has, LVMM_MAX_VCPUS)
		WARN_ON_ONCE(lvmm_set_msr(vm->vcpus[i], MSR_IA32_TSC,
					  t->tsc[i] + (rdtsc() - start)));
}

/*
 * The instruction-set features a vCPU's CPUID table shows that this
 * processor lacks: a guest that used them on the host it was saved on
 * would meet #UD here.  The bits lvmm makes up itself do not count.
 */
static bool lvmm_cpuid_fits_host(const struct lvmm_cpuid_entry *e, u32 n)
{
	static const struct {
		u32 function, index;
		int reg;		/* 0..3: EAX..EDX */
		u32 own;		/* lvmm's own bits */
	} leaves[] = {
		{ 1, 0, 2, BIT(31) | BIT(27) },	/* HYPERVISOR, OSXSAVE */
		{ 1, 0, 3, 0 },
		{ 7, 0, 1, 0 },
		{ 7, 0, 2, BIT(4) },		/* OSPKE */
		{ 0x80000001, 0, 2, 0 },
		{ 0x80000001, 0, 3, 0 },
	};
	u32 i, j;

	for (i = 0; i < ARRAY_SIZE(leaves); i++) {
		u32 host[4], guest;

		for (j = 0; j < n; j++)
			if (e[j].function == leaves[i].function &&
			    e[j].index == leaves[i].index)
				break;
		if (j == n)
			continue;
		guest = (&e[j].eax)[leaves[i].reg];
		cpuid_count(leaves[i].function, leaves[i].index, &host[0],
			    &host[1], &host[2], &host[3]);
		if (guest & ~host[leaves[i].reg] & ~leaves[i].own)
			return false;
	}
	return true;
}

static int lvmm_load_vcpu(struct lvmm_vm *vm, struct lvmm_vcpu_image *img,
			  struct lvmm_load_tsc *tsc)
{
	struct lvmm_stream_vcpu *v = &img->v;
	struct lvmm_vcpu *vcpu;
	u32 i;
	int r;

	if (v->id >= LVMM_MAX_VCPUS || v->pad)
		return -EBADMSG;
	if (!lvmm_cpuid_fits_host(img->cpuid, v->ncpuid))
		return -EOPNOTSUPP;
	vcpu = lvmm_vcpu_create(vm, v->id);
	if (IS_ERR(vcpu))
		return PTR_ERR(vcpu) == -EEXIST ? -EBADMSG : PTR_ERR(vcpu);
	/* The order of a VMM's restore: modes first, the TSC last. */
	r = lvmm_vcpu_load_sregs(vcpu, &v->sregs) ?:
	    lvmm_vcpu_load_regs(vcpu, &v->regs) ?:
	    lvmm_vcpu_load_xcrs(vcpu, &v->xcrs) ?:
	    lvmm_vcpu_load_xsave(vcpu, &v->xsave) ?:
	    lvmm_cpuid_load(vcpu, img->cpuid, v->ncpuid) ?:
	    lvmm_vcpu_load_debugregs(vcpu, &v->debugregs);
	for (i = 0; !r && i < v->nmsrs; i++) {
		struct lvmm_msr_entry *e = &img->msrs[i];

		if (e->reserved) {
			r = -EINVAL;
		} else if (e->index == MSR_IA32_TSC) {
			tsc->tsc[v->id] = e->data;	/* at the end */
			__set_bit(v->id, tsc->has);
		} else {
			r = lvmm_set_msr(vcpu, e->index, e->data);
		}
	}
	/* Last: the loads above drop a shutdown and a pending exit. */
	r = r ?: lvmm_vcpu_load_events(vcpu, &v->events);
	return r == -EINVAL || r == -E2BIG ? -EBADMSG : r;
}

/* ---- writing -------------------------------------------------------------- */

/* A socket is sent to without SIGPIPE, whatever its O_NONBLOCK says now. */
static ssize_t lvmm_stream_send(struct lvmm_stream *st, const void *buf,
				size_t len)
{
	struct socket *sock = sock_from_file(st->file);
	struct msghdr mh = { .msg_flags = MSG_NOSIGNAL };
	struct kvec vec = { (void *)buf, len };

	if (!sock)
		return kernel_write(st->file, buf, len, &st->pos);
	return kernel_sendmsg(sock, &mh, &vec, 1, len);
}

/* @len bytes out, not in the checksum. */
static int lvmm_stream_put(struct lvmm_stream *st, const void *buf, size_t len)
{
	while (len) {
		ssize_t n = lvmm_stream_send(st, buf, len);

		if (n < 0)
			return n == -ERESTARTSYS ? -EINTR : n;
		if (!n)
			return -EIO;
		buf += n;
		len -= n;
		st->bytes += n;
	}
	return 0;
}

int lvmm_stream_write(struct lvmm_stream *st, const void *buf, size_t len)
{
	xxh64_update(&st->xxh, buf, len);
	return lvmm_stream_put(st, buf, len);
}

/* Guest pages: in the checksum unless the stream leaves them out. */
static int lvmm_stream_write_pages(struct lvmm_stream *st, const void *buf,
				   size_t len)
{
	if (st->unsummed)
		return lvmm_stream_put(st, buf, len);
	return lvmm_stream_write(st, buf, len);
}

int lvmm_stream_rec(struct lvmm_stream *st, u32 type, u64 len)
{
	struct lvmm_rec rec = { .type = type, .len = len };

	st->nr_records++;
	return lvmm_stream_write(st, &rec, sizeof(rec));
}

struct lvmm_save {
	struct lvmm_vm *vm;
	struct lvmm_stream st;
	bool stop;			/* destroy the VM once written */
	u64 total;			/* bytes expected, at most */
	u64 pause_start;
	u64 last_event;			/* local_clock() of the last progress */
	/* Who asked: the writes are made as them, not as the kernel. */
	const struct cred *cred;
	struct mem_cgroup *memcg;
	struct rlimit fsize;
};

static void lvmm_save_progress(struct lvmm_save *s, bool force)
{
	u64 now = local_clock();

	if (!force && now - s->last_event < 250 * NSEC_PER_MSEC)
		return;
	s->last_event = now;
	lvmm_nl_save_event(s->vm, LVMM_EVENT_SAVE_PROGRESS, s->st.bytes,
			   s->total, 0, 0);
}

int lvmm_stream_header(struct lvmm_stream *st, struct lvmm_vm *vm,
		       struct lvmm_memslots *slots, u32 version, u32 nr_vcpus,
		       u64 xcr0)
{
	struct lvmm_stream_header *h;
	size_t len;
	int i, n = 0, r;

	len = struct_size(h, slots, slots->nr);
	h = kzalloc(len, GFP_KERNEL);
	if (!h)
		return -ENOMEM;
	h->magic = LVMM_STREAM_MAGIC;
	h->version = version;
	/* The APICs need version 3's records. */
	if (vm->irqchip) {
		h->version = max_t(u32, h->version, 3);
		h->flags |= LVMM_STREAM_IRQCHIP;
	}
	if (st->unsummed) {
		h->version = max_t(u32, h->version, 4);
		h->flags |= LVMM_STREAM_PAGES_UNSUMMED;
	}
	memcpy(h->name, vm->name, sizeof(h->name));
	h->created_ns = ktime_get_real_ns();
	h->xcr0 = xcr0;
	h->nr_vcpus = nr_vcpus;
	h->nr_slots = slots->nr;
	for (i = 0; i < LVMM_MAX_MEMSLOTS; i++) {
		struct lvmm_slot *slot = slots->slot[i];

		if (!slot)
			continue;
		h->slots[n].slot = slot->id;
		h->slots[n].flags = slot->flags;
		h->slots[n].guest_phys_addr = slot->base_gfn << PAGE_SHIFT;
		h->slots[n].size = slot->npages << PAGE_SHIFT;
		h->mem_size += h->slots[n].size;
		n++;
	}
	r = lvmm_stream_rec(st, LVMM_REC_HEADER, len) ?:
	    lvmm_stream_write(st, h, len);
	kfree(h);
	return r;
}

/*
 * The pages @present sets of the @n from @gfn on, each copied once into
 * the bounce buffer: what is hashed is what is sent.
 */
static int lvmm_stream_pages_copied(struct lvmm_stream *st,
				    struct lvmm_slot *slot, u64 gfn, u32 n,
				    const unsigned long *present)
{
	size_t fill = 0;
	int r = 0;
	u32 i;

	for_each_set_bit(i, present, n) {
		copy_page(st->bounce + fill,
			  page_address(lvmm_memslot_peek_page(slot, gfn + i)));
		fill += PAGE_SIZE;
		if (fill == LVMM_STREAM_BOUNCE) {
			r = lvmm_stream_write_pages(st, st->bounce, fill);
			if (r)
				return r;
			fill = 0;
		}
	}
	return fill ? lvmm_stream_write_pages(st, st->bounce, fill) : 0;
}

/*
 * Pages of chunk @ci of @slot as a record of @type (MEMORY or PAGES): the
 * pages whose bits @present sets, those that lie one after the other in
 * memory (all of a 2 MiB page) in one write.  Each was allocated.
 */
int lvmm_stream_pages(struct lvmm_stream *st, u32 type, struct lvmm_slot *slot,
		      unsigned long ci, const unsigned long *present)
{
	u64 first = (u64)ci << LVMM_HPAGE_ORDER, gfn = slot->base_gfn + first;
	u32 n = min_t(u64, LVMM_PAGES_PER_HPAGE, slot->npages - first), i, j;
	struct lvmm_stream_mem mem = { .slot = slot->id, .npages = n,
				       .first_page = first };
	struct page *page;
	int r;

	bitmap_copy((unsigned long *)mem.present, present, n);
	r = lvmm_stream_rec(st, type, sizeof(mem) +
			    (u64)bitmap_weight(present, n) * PAGE_SIZE) ?:
	    lvmm_stream_write(st, &mem, sizeof(mem));
	if (st->bounce)
		return r ?: lvmm_stream_pages_copied(st, slot, gfn, n, present);
	for (i = find_first_bit(present, n); !r && i < n;
	     i = find_next_bit(present, n, j)) {
		page = lvmm_memslot_peek_page(slot, gfn + i);
		for (j = i + 1; j < n && test_bit(j, present) &&
		     lvmm_memslot_peek_page(slot, gfn + j) == page + (j - i);
		     j++)
			;
		r = lvmm_stream_write_pages(st, page_address(page),
					    (j - i) * PAGE_SIZE);
	}
	return r;
}

/*
 * One chunk of a slot (up to 512 pages) as a MEMORY record, the zero
 * pages left out: nothing at all for a chunk never touched.
 */
int lvmm_stream_chunk(struct lvmm_stream *st, struct lvmm_slot *slot,
		      unsigned long ci)
{
	u64 first = (u64)ci << LVMM_HPAGE_ORDER, gfn = slot->base_gfn + first;
	u32 n = min_t(u64, LVMM_PAGES_PER_HPAGE, slot->npages - first), i;
	DECLARE_BITMAP(present, LVMM_PAGES_PER_HPAGE);

	/* Never touched, the chunk reads as zeros: nothing to write. */
	if (!lvmm_memslot_peek_page(slot, gfn))
		return 0;
	bitmap_zero(present, LVMM_PAGES_PER_HPAGE);
	for (i = 0; i < n; i++)
		if (memchr_inv(page_address(lvmm_memslot_peek_page(slot,
								   gfn + i)),
			       0, PAGE_SIZE))
			__set_bit(i, present);
	if (bitmap_empty(present, LVMM_PAGES_PER_HPAGE))
		return 0;
	return lvmm_stream_pages(st, LVMM_REC_MEMORY, slot, ci, present);
}

/*
 * Every slot's memory.  No lock is held across the writes (the file's
 * own locks rank above slots_lock); slots_pinned keeps the slots in place
 * instead: LVMM_SET_MEMSLOT fails with EBUSY until the save is done.
 */
static int lvmm_save_memory(struct lvmm_save *s, struct lvmm_memslots *slots)
{
	unsigned long ci;
	int i, r = 0;

	for (i = 0; i < LVMM_MAX_MEMSLOTS && !r; i++) {
		struct lvmm_slot *slot = slots->slot[i];

		for (ci = 0; slot && ci < slot->nchunks && !r; ci++) {
			r = lvmm_stream_chunk(&s->st, slot, ci);
			lvmm_save_progress(s, false);
			if (!r && (fatal_signal_pending(current) ||
				   READ_ONCE(s->vm->dead)))
				r = -EINTR;
			cond_resched();
		}
	}
	return r;
}

/* A copy of the VMM's state, under vm->lock. */
static void *lvmm_vmm_state_copy(struct lvmm_vm *vm)
{
	void *buf = kvmalloc(vm->vmm_state_size, GFP_KERNEL);

	if (buf)
		memcpy(buf, vm->vmm_state, vm->vmm_state_size);
	return buf;
}

int lvmm_stream_vmm_state(struct lvmm_stream *st, struct lvmm_vm *vm)
{
	u64 size, len;
	void *buf;
	int r;

	mutex_lock(&vm->lock);
	size = vm->vmm_state_size;
	buf = size ? lvmm_vmm_state_copy(vm) : NULL;
	mutex_unlock(&vm->lock);
	if (!size)
		return 0;
	if (!buf)
		return -ENOMEM;
	len = ALIGN(sizeof(size) + size, 8);
	r = lvmm_stream_rec(st, LVMM_REC_VMM, len) ?:
	    lvmm_stream_write(st, &size, sizeof(size)) ?:
	    lvmm_stream_write(st, buf, size);
	if (!r && len > sizeof(size) + size) {
		static const u8 zeros[8];

		r = lvmm_stream_write(st, zeros,
				      len - sizeof(size) - size);
	}
	kvfree(buf);
	return r;
}

/*
 * The most the stream can take: every record whole, every page of the
 * chunks in use, the largest vCPU records and VMM state there can be.
 */
static u64 lvmm_save_bound(struct lvmm_vm *vm, struct lvmm_memslots *slots,
			   u32 nr_vcpus)
{
	const u64 rec = sizeof(struct lvmm_rec);
	struct lvmm_stream_header *h;
	u64 bytes = rec + struct_size(h, slots, slots->nr) +
		    nr_vcpus * (rec + sizeof(struct lvmm_vcpu_image)) +
		    rec + ALIGN(sizeof(u64) + LVMM_MAX_VMM_STATE, 8) +
		    rec + sizeof(struct lvmm_stream_end);
	unsigned long ci;
	int i;

	for (i = 0; i < LVMM_MAX_MEMSLOTS; i++) {
		struct lvmm_slot *slot = slots->slot[i];

		for (ci = 0; slot && ci < slot->nchunks; ci++)
			if (lvmm_memslot_peek_page(slot, slot->base_gfn +
						   ((u64)ci << LVMM_HPAGE_ORDER)))
				bytes += rec + sizeof(struct lvmm_stream_mem) +
					 LVMM_HPAGE_SIZE;
	}
	return bytes;
}

/* The TSC's entry of a vCPU record, or NULL. */
static struct lvmm_msr_entry *lvmm_image_tsc(struct lvmm_vcpu_image *img)
{
	u32 i;

	for (i = 0; i < img->v.nmsrs; i++)
		if (img->msrs[i].index == MSR_IA32_TSC)
			return &img->msrs[i];
	return NULL;
}

/*
 * The vCPUs were read one after the other: give every TSC as it reads at
 * one instant, so that they stay in step after a restore.
 */
static void lvmm_save_tsc(struct lvmm_vcpu_image **imgs, u32 nr)
{
	u64 now = rdtsc();
	u32 i;

	for (i = 0; i < nr; i++)
		lvmm_image_tsc(imgs[i])->data += now - imgs[i]->host_tsc;
}

/*
 * The state of every vCPU of the frozen @vm into @imgs (freed with
 * lvmm_free_vcpu_images() whatever the result), their number in
 * *@nr_out and the XSAVE components they use in *@xcr0_out.
 */
int lvmm_save_vcpus(struct lvmm_vm *vm, struct lvmm_vcpu_image **imgs,
		    u32 *nr_out, u64 *xcr0_out)
{
	u32 nr = 0, i;
	u64 xcr0 = 0;
	int r = 0;

	/* No I/O APIC delivery still under way into the APICs taken here. */
	lvmm_ioapic_quiesce(vm);
	for (i = 0; i < LVMM_MAX_VCPUS && !r; i++) {
		/* Pairs with smp_store_release() in lvmm_vcpu_add(). */
		struct lvmm_vcpu *vcpu = smp_load_acquire(&vm->vcpus[i]);

		if (!vcpu)
			continue;
		imgs[nr] = kvmalloc(sizeof(**imgs), GFP_KERNEL);
		r = imgs[nr] ? lvmm_save_vcpu(vcpu, imgs[nr]) : -ENOMEM;
		/* XCR0, and XSTATE_BV of the XSAVE header (byte 512). */
		if (imgs[nr])
			xcr0 |= imgs[nr]->v.xcrs.xcr0 |
				imgs[nr]->v.xsave.region[128] |
				(u64)imgs[nr]->v.xsave.region[129] << 32;
		nr++;
	}
	*nr_out = nr;
	*xcr0_out = xcr0;
	if (!r)
		lvmm_save_tsc(imgs, nr);
	return r;
}

void lvmm_free_vcpu_images(struct lvmm_vcpu_image **imgs)
{
	u32 i;

	for (i = 0; i < LVMM_MAX_VCPUS && imgs[i]; i++)
		kvfree(imgs[i]);
	kfree(imgs);
}

/* The VM's part of the in-kernel interrupt controller, as it is now. */
static int lvmm_stream_irqchip(struct lvmm_stream *st, struct lvmm_vm *vm)
{
	struct lvmm_stream_irqchip *ic;
	int r;

	ic = kzalloc(sizeof(*ic), GFP_KERNEL);
	if (!ic)
		return -ENOMEM;
	spin_lock(&vm->pvclock_lock);
	ic->pvclock_set = vm->pvclock_set;
	ic->pvclock_tsc = vm->pvclock_tsc;
	ic->pvclock_wall_ns = vm->pvclock_wall_ns;
	spin_unlock(&vm->pvclock_lock);
	lvmm_ioapic_save(vm, &ic->ioapic);
	r = lvmm_stream_rec(st, LVMM_REC_IRQCHIP, sizeof(*ic)) ?:
	    lvmm_stream_write(st, ic, sizeof(*ic));
	kfree(ic);
	return r;
}

/* One VCPU record per image; with the APICs, LAPIC records and IRQCHIP. */
int lvmm_stream_vcpus(struct lvmm_stream *st, struct lvmm_vm *vm,
		      struct lvmm_vcpu_image **imgs, u32 nr)
{
	u32 i;
	int r = 0;

	for (i = 0; i < nr && !r; i++) {
		size_t len = lvmm_image_len(&imgs[i]->v);

		r = lvmm_stream_rec(st, LVMM_REC_VCPU, len) ?:
		    lvmm_stream_write(st, imgs[i], sizeof(imgs[i]->v)) ?:
		    lvmm_stream_write(st, imgs[i]->msrs,
				      imgs[i]->v.nmsrs * sizeof(*imgs[i]->msrs)) ?:
		    lvmm_stream_write(st, imgs[i]->cpuid,
				      imgs[i]->v.ncpuid *
				      sizeof(*imgs[i]->cpuid));
	}
	if (!vm->irqchip)
		return r;
	for (i = 0; i < nr && !r; i++)
		r = lvmm_stream_rec(st, LVMM_REC_LAPIC,
				    sizeof(imgs[i]->lapic)) ?:
		    lvmm_stream_write(st, &imgs[i]->lapic,
				      sizeof(imgs[i]->lapic));
	return r ?: lvmm_stream_irqchip(st, vm);
}

/* The END record: the checksum of all that went before. */
int lvmm_stream_end(struct lvmm_stream *st)
{
	struct lvmm_stream_end end = {
		.checksum = xxh64_digest(&st->xxh),
		.nr_records = st->nr_records,
	};

	return lvmm_stream_rec(st, LVMM_REC_END, sizeof(end)) ?:
	       lvmm_stream_write(st, &end, sizeof(end));
}

static int lvmm_save_vm(struct lvmm_save *s)
{
	struct lvmm_vm *vm = s->vm;
	struct lvmm_vcpu_image **imgs;
	struct lvmm_memslots *slots;
	u32 nr = 0;
	u64 xcr0 = 0;
	int r;

	imgs = kcalloc(LVMM_MAX_VCPUS, sizeof(*imgs), GFP_KERNEL);
	if (!imgs)
		return -ENOMEM;
	/* The vCPUs first, at one point in time: nothing runs after. */
	r = lvmm_save_vcpus(vm, imgs, &nr, &xcr0);
	if (r)
		goto out_free;

	mutex_lock(&vm->slots_lock);
	vm->slots_pinned = true;
	slots = lvmm_memslots(vm);
	mutex_unlock(&vm->slots_lock);
	s->total = lvmm_save_bound(vm, slots, nr);
	lvmm_save_progress(s, true);
	/*
	 * No PAGES or RUNSTATE record: a version 1 stream, for any reader
	 * (3 with the APICs).
	 */
	r = lvmm_stream_header(&s->st, vm, slots, 1, nr, xcr0) ?:
	    lvmm_save_memory(s, slots);
	mutex_lock(&vm->slots_lock);
	vm->slots_pinned = false;
	mutex_unlock(&vm->slots_lock);
	r = r ?: lvmm_stream_vcpus(&s->st, vm, imgs, nr) ?:
	    lvmm_stream_vmm_state(&s->st, vm) ?:
	    lvmm_stream_end(&s->st);
out_free:
	lvmm_free_vcpu_images(imgs);
	return r;
}

static int lvmm_save_thread(void *arg)
{
	struct lvmm_save *s = arg;
	struct lvmm_vm *vm = s->vm;
	u64 pause_ns;
	int r;

	const struct cred *old_cred;
	struct mem_cgroup *old_memcg;

	/* A destroy kills a save that a stalled pipe or socket holds up. */
	allow_signal(SIGKILL);
	/* Write as the requester: its quotas, its file size limit, its LSM
	 * label and its memory cgroup, never the kernel's.
	 */
	old_cred = override_creds(s->cred);
	old_memcg = set_active_memcg(s->memcg);
	task_lock(current->group_leader);
	current->signal->rlim[RLIMIT_FSIZE] = s->fsize;
	task_unlock(current->group_leader);
	/* A destroy before SIGKILL was allowed is seen here. */
	r = READ_ONCE(vm->dead) ? -EINTR : lvmm_save_vm(s);
	s->st.file->f_pos = s->st.pos;
	set_active_memcg(old_memcg);
	revert_creds(old_cred);
	put_cred(s->cred);
	mem_cgroup_put(s->memcg);

	mutex_lock(&vm->lock);
	if (!r && s->stop)
		r = -ECANCELED;		/* destroyed below, not thawed */
	WRITE_ONCE(vm->frozen, false);
	vm->save_task = NULL;
	mutex_unlock(&vm->lock);
	if (r == -ECANCELED) {
		r = 0;
		lvmm_vm_destroy(vm);
	} else {
		lvmm_ioapic_resend(vm);	/* what came while it was frozen */
	}
	wake_up_all(&vm->pause_wq);
	pause_ns = local_clock() - s->pause_start;
	lvmm_nl_save_event(vm, LVMM_EVENT_SAVED, s->st.bytes, s->total, -r,
			   pause_ns);
	fput(s->st.file);
	lvmm_vm_put(vm);
	kfree(s);
	module_put_and_kthread_exit(0);
}

/*
 * Under vm->lock: the kernel thread, not yet woken, of @vm's one save or
 * migration, with a reference to @vm for it; -ENOENT if @vm is dead,
 * -EBUSY if another runs.
 */
struct task_struct *lvmm_vm_worker(struct lvmm_vm *vm, int (*fn)(void *),
				   void *data, const char *name)
{
	struct task_struct *task;

	lockdep_assert_held(&vm->lock);
	if (vm->dead)
		return ERR_PTR(-ENOENT);
	if (vm->save_task || vm->incoming)
		return ERR_PTR(-EBUSY);
	task = kthread_create(fn, data, "%s/%u", name, vm->id);
	if (IS_ERR(task))
		return task;
	lvmm_vm_get(vm);
	vm->save_task = task;
	return task;
}

/*
 * netlink vm-save: freeze @vm and start the thread that writes it to
 * @file; it reports progress and the end as events.  Takes its own
 * references.  -EBUSY if a save of @vm runs already.
 */
int lvmm_vm_save(struct lvmm_vm *vm, struct file *file, bool stop)
{
	struct task_struct *task;
	struct lvmm_save *s;
	int r = 0;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	if (!try_module_get(THIS_MODULE)) {
		kfree(s);
		return -ENOENT;
	}
	s->vm = vm;
	s->stop = stop;
	lvmm_stream_init(&s->st, file);
	s->cred = get_current_cred();
	s->memcg = get_mem_cgroup_from_mm(current->mm);
	task_lock(current->group_leader);
	s->fsize = current->signal->rlim[RLIMIT_FSIZE];
	task_unlock(current->group_leader);

	mutex_lock(&vm->lock);
	task = lvmm_vm_worker(vm, lvmm_save_thread, s, "lvmm-save");
	if (IS_ERR(task)) {
		r = PTR_ERR(task);
		goto out_unlock;
	}
	get_file(file);
	s->pause_start = local_clock();
	WRITE_ONCE(vm->frozen, true);
	mutex_unlock(&vm->lock);
	lvmm_vm_kick_all(vm, LVMM_REQ_KICK);
	wake_up_all(&vm->pause_wq);	/* throttled vCPUs park too */
	wake_up_process(task);
	return 0;

out_unlock:
	mutex_unlock(&vm->lock);
	put_cred(s->cred);
	mem_cgroup_put(s->memcg);
	module_put(THIS_MODULE);
	kfree(s);
	return r;
}

/* ---- reading -------------------------------------------------------------- */

/* @len bytes in, not in the checksum. */
static int lvmm_stream_get(struct lvmm_stream *st, void *buf, size_t len)
{
	void *p = buf;
	size_t left = len;

	while (left) {
		ssize_t n = kernel_read(st->file, p, left, &st->pos);

		if (n < 0)
			return n == -ERESTARTSYS ? -EINTR :
			       n == -EAGAIN ? -ETIMEDOUT : n;
		if (!n) {
			st->eof = true;
			return -EBADMSG;	/* cut short */
		}
		p += n;
		left -= n;
		st->bytes += n;
	}
	return 0;
}

static int lvmm_stream_read(struct lvmm_stream *st, void *buf, size_t len)
{
	int r = lvmm_stream_get(st, buf, len);

	if (!r)
		xxh64_update(&st->xxh, buf, len);
	return r;
}

/* Guest pages: as lvmm_stream_write_pages() sent them. */
static int lvmm_stream_read_pages(struct lvmm_stream *st, void *buf,
				  size_t len)
{
	if (st->unsummed)
		return lvmm_stream_get(st, buf, len);
	return lvmm_stream_read(st, buf, len);
}

/* The header record: the VM's shape, checked before anything is made. */
static int lvmm_load_header(struct lvmm_vm *vm, struct lvmm_stream *st,
			    struct lvmm_stream_header **out)
{
	struct lvmm_stream_header fixed, *h;
	struct lvmm_rec rec;
	u64 mem_size = 0;
	size_t len;
	u32 i;
	int r;

	r = lvmm_stream_read(st, &rec, sizeof(rec)) ?:
	    lvmm_stream_read(st, &fixed, sizeof(fixed));
	if (r)
		return r;
	if (rec.type != LVMM_REC_HEADER || fixed.magic != LVMM_STREAM_MAGIC)
		return -EBADMSG;	/* not a VM stream */
	if (fixed.version > LVMM_STREAM_VERSION)
		return -EPROTONOSUPPORT;
	if (!fixed.version || rec.flags ||
	    fixed.flags & ~(LVMM_STREAM_IRQCHIP | LVMM_STREAM_PAGES_UNSUMMED) ||
	    ((fixed.flags & LVMM_STREAM_IRQCHIP) && fixed.version < 3) ||
	    ((fixed.flags & LVMM_STREAM_PAGES_UNSUMMED) && fixed.version < 4) ||
	    memchr_inv(fixed.reserved, 0, sizeof(fixed.reserved)) ||
	    fixed.nr_slots > LVMM_MAX_MEMSLOTS ||
	    fixed.nr_vcpus > LVMM_MAX_VCPUS ||
	    rec.len != struct_size(h, slots, fixed.nr_slots) ||
	    !lvmm_name_valid(fixed.name))
		return -EBADMSG;
	/* State this host's processor cannot hold. */
	if (fixed.xcr0 & ~lvmm_supported_xcr0())
		return -EOPNOTSUPP;
	/* Before any vCPU: they get their APICs as they are made. */
	if (fixed.flags & LVMM_STREAM_IRQCHIP) {
		r = lvmm_vm_enable_irqchip(vm);
		if (r)
			return r;
	}
	len = rec.len;
	h = kmalloc(len, GFP_KERNEL);
	if (!h)
		return -ENOMEM;
	*h = fixed;
	r = lvmm_stream_read(st, h->slots, len - sizeof(fixed));
	for (i = 0; !r && i < h->nr_slots; i++) {
		struct lvmm_memslot req = {
			.slot = h->slots[i].slot,
			.flags = h->slots[i].flags,
			.guest_phys_addr = h->slots[i].guest_phys_addr,
			.size = h->slots[i].size,
		};

		/* A slot the stream would add at run time is not its shape. */
		if (!req.size || (req.flags & LVMM_MEMSLOT_LOG_DIRTY))
			r = -EBADMSG;
		else
			r = lvmm_vm_set_memslot(vm, &req);
		if (r == -EINVAL || r == -EEXIST || r == -ENOENT)
			r = -EBADMSG;
		mem_size += req.size;
	}
	if (!r && mem_size != h->mem_size)
		r = -EBADMSG;
	if (r) {
		kfree(h);
		return r;
	}
	st->nr_records++;
	st->unsummed = h->flags & LVMM_STREAM_PAGES_UNSUMMED;
	*out = h;
	return 0;
}

/*
 * A MEMORY or PAGES record: the pages it carries go into the slot.  The
 * ones it leaves out are zero for MEMORY, which matters only where an
 * earlier record of the same stream wrote them, and @keep (PAGES) them.
 */
static int lvmm_load_memory(struct lvmm_vm *vm, struct lvmm_stream *st,
			    u64 len, bool keep)
{
	struct lvmm_stream_mem mem;
	struct lvmm_slot *slot;
	bool touched;
	u32 i, j, present;
	int r;

	if (len < sizeof(mem))
		return -EBADMSG;
	r = lvmm_stream_read(st, &mem, sizeof(mem));
	if (r)
		return r;
	/* One chunk of the slot, as lvmm writes them. */
	if (mem.slot >= LVMM_MAX_MEMSLOTS || !mem.npages ||
	    mem.npages > LVMM_PAGES_PER_HPAGE ||
	    !IS_ALIGNED(mem.first_page, LVMM_PAGES_PER_HPAGE))
		return -EBADMSG;
	present = bitmap_weight((unsigned long *)mem.present,
				LVMM_PAGES_PER_HPAGE);
	if (find_next_bit((unsigned long *)mem.present, LVMM_PAGES_PER_HPAGE,
			  mem.npages) != LVMM_PAGES_PER_HPAGE ||
	    len != sizeof(mem) + (u64)present * PAGE_SIZE)
		return -EBADMSG;

	/* Nobody else sees the VM yet: its slots stay as they are. */
	slot = rcu_dereference_protected(vm->memslots, true)->slot[mem.slot];
	/* The whole chunk: the pages it leaves out are zero. */
	if (!slot || mem.first_page >= slot->npages ||
	    mem.npages != min_t(u64, LVMM_PAGES_PER_HPAGE,
				slot->npages - mem.first_page))
		return -EBADMSG;
	/* Written by an earlier record: the pages left out must be zeroed. */
	touched = !keep && lvmm_memslot_peek_page(slot, slot->base_gfn +
						  mem.first_page);
	for (i = 0; i < mem.npages && !r; i = j) {
		u64 gfn = slot->base_gfn + mem.first_page;
		struct page *page;
		bool huge;

		j = i + 1;
		if (!test_bit(i, (unsigned long *)mem.present)) {
			page = touched ? lvmm_memslot_peek_page(slot, gfn + i) :
					 NULL;
			if (page)
				clear_highpage(page);
			continue;
		}
		page = lvmm_memslot_get_page(slot, gfn + i, &huge);
		if (!page)
			return -ENOMEM;
		/* Pages that follow in memory too (a 2 MiB page): one read. */
		while (j < mem.npages &&
		       test_bit(j, (unsigned long *)mem.present) &&
		       lvmm_memslot_peek_page(slot, gfn + j) == page + (j - i))
			j++;
		r = lvmm_stream_read_pages(st, page_address(page),
					   (size_t)(j - i) * PAGE_SIZE);
	}
	return r;
}

static int lvmm_load_vcpu_rec(struct lvmm_vm *vm, struct lvmm_stream *st,
			      u64 len, struct lvmm_vcpu_image *img,
			      struct lvmm_load_tsc *tsc)
{
	struct lvmm_stream_vcpu *v = &img->v;
	int r;

	if (len < sizeof(*v))
		return -EBADMSG;
	r = lvmm_stream_read(st, v, sizeof(*v));
	if (r)
		return r;
	if (v->nmsrs > LVMM_STREAM_MAX_MSRS ||
	    v->ncpuid > LVMM_MAX_CPUID_ENTRIES || len != lvmm_image_len(v))
		return -EBADMSG;
	r = lvmm_stream_read(st, img->msrs, v->nmsrs * sizeof(*img->msrs)) ?:
	    lvmm_stream_read(st, img->cpuid, v->ncpuid * sizeof(*img->cpuid));
	return r ?: lvmm_load_vcpu(vm, img, tsc);
}

static int lvmm_load_vmm_state(struct lvmm_vm *vm, struct lvmm_stream *st,
			       u64 len)
{
	void *buf;
	u64 size;
	int r;

	if (vm->vmm_state || len < sizeof(size))
		return -EBADMSG;
	r = lvmm_stream_read(st, &size, sizeof(size));
	if (r)
		return r;
	if (!size || size > LVMM_MAX_VMM_STATE ||
	    len != ALIGN(sizeof(size) + size, 8))
		return -EBADMSG;
	buf = kvmalloc(len - sizeof(size), GFP_KERNEL_ACCOUNT);
	if (!buf)
		return -ENOMEM;
	r = lvmm_stream_read(st, buf, len - sizeof(size));
	if (r) {
		kvfree(buf);
		return r;
	}
	vm->vmm_state = buf;
	vm->vmm_state_size = size;
	return 0;
}

static int lvmm_load_runstate(struct lvmm_vm *vm, struct lvmm_stream *st,
			      u64 len)
{
	struct lvmm_stream_runstate rs;
	int r;

	if (len != sizeof(rs))
		return -EBADMSG;
	r = lvmm_stream_read(st, &rs, sizeof(rs));
	if (r)
		return r;
	if (rs.pad || rs.flags & ~LVMM_RUNSTATE_PAUSED)
		return -EBADMSG;
	/* Nobody sees the VM yet. */
	vm->paused = rs.flags & LVMM_RUNSTATE_PAUSED;
	return 0;
}

/* The APICs a stream carries, loaded once the TSCs are (v3). */
struct lvmm_load_irqchip {
	bool on;			/* the header's LVMM_STREAM_IRQCHIP */
	bool done;			/* the IRQCHIP record came */
	u32 nr;				/* LAPIC records so far */
	DECLARE_BITMAP(seen, LVMM_MAX_VCPUS);
	struct lvmm_stream_lapic *lapics;	/* nr_vcpus of them */
};

static int lvmm_load_lapic_rec(struct lvmm_vm *vm, struct lvmm_stream *st,
			       u64 len, struct lvmm_load_irqchip *ic)
{
	struct lvmm_stream_lapic *l = &ic->lapics[ic->nr];
	int r;

	if (len != sizeof(*l))
		return -EBADMSG;
	r = lvmm_stream_read(st, l, sizeof(*l));
	if (r)
		return r;
	if (l->id >= LVMM_MAX_VCPUS || !vm->vcpus[l->id] ||
	    test_and_set_bit(l->id, ic->seen) ||
	    l->mp_state > LVMM_MP_STATE_WAIT_SIPI ||
	    memchr_inv(l->reserved, 0, sizeof(l->reserved)))
		return -EBADMSG;
	ic->nr++;
	return 0;
}

static int lvmm_load_irqchip_rec(struct lvmm_vm *vm, struct lvmm_stream *st,
				 u64 len)
{
	struct lvmm_stream_irqchip *ic;
	int r;

	if (len != sizeof(*ic))
		return -EBADMSG;
	ic = kmalloc(sizeof(*ic), GFP_KERNEL);
	if (!ic)
		return -ENOMEM;
	r = lvmm_stream_read(st, ic, sizeof(*ic));
	if (!r && (ic->flags || ic->pvclock_set > 1 ||
		   memchr_inv(ic->reserved, 0, sizeof(ic->reserved))))
		r = -EBADMSG;
	if (!r)
		r = lvmm_ioapic_load(vm, &ic->ioapic);
	if (!r) {
		/* Nobody sees the VM yet. */
		vm->pvclock_set = ic->pvclock_set;
		vm->pvclock_tsc = ic->pvclock_tsc;
		vm->pvclock_wall_ns = ic->pvclock_wall_ns;
	}
	kfree(ic);
	return r == -EINVAL ? -EBADMSG : r;
}

/*
 * After the TSCs: the deadline timers count in guest TSC, and the
 * paravirtual clock's pages in guest memory stay right as they are.
 */
static int lvmm_load_lapics(struct lvmm_vm *vm, struct lvmm_load_irqchip *ic)
{
	u32 i;
	int r = 0;

	for (i = 0; i < ic->nr && !r; i++) {
		struct lvmm_stream_lapic *l = &ic->lapics[i];
		struct lvmm_vcpu *vcpu = vm->vcpus[l->id];

		r = lvmm_lapic_load(vcpu, &l->lapic) ?:
		    lvmm_lapic_set_mp_state(vcpu, l->mp_state);
		vcpu->pvclock_msr = l->pvclock_msr;
		vcpu->pvclock_wall_msr = l->pvclock_wall_msr;
	}
	return r == -EINVAL ? -EBADMSG : r;
}

/* The records after the header, up to and including END. */
static int lvmm_load_records(struct lvmm_vm *vm, struct lvmm_stream *st,
			     const struct lvmm_stream_header *h)
{
	bool v2 = h->version >= 2, runstate = false;
	struct lvmm_load_irqchip ic = {
		.on = h->flags & LVMM_STREAM_IRQCHIP,
	};
	struct lvmm_vcpu_image *img;
	struct lvmm_stream_end end;
	struct lvmm_load_tsc *tsc;
	u32 nr_vcpus = 0;
	int r = 0;

	img = kvmalloc(sizeof(*img), GFP_KERNEL);
	tsc = kzalloc(sizeof(*tsc), GFP_KERNEL);
	if (ic.on)
		ic.lapics = kvcalloc(max(h->nr_vcpus, 1U), sizeof(*ic.lapics),
				     GFP_KERNEL);
	if (!img || !tsc || (ic.on && !ic.lapics)) {
		kvfree(img);
		kfree(tsc);
		kvfree(ic.lapics);
		return -ENOMEM;
	}
	for (;;) {
		struct lvmm_rec rec;
		u64 sum = xxh64_digest(&st->xxh);

		r = lvmm_stream_read(st, &rec, sizeof(rec));
		if (r)
			break;
		r = -EBADMSG;
		if (rec.flags || !IS_ALIGNED(rec.len, 8))
			break;
		if (rec.type == LVMM_REC_END) {
			if (rec.len == sizeof(end) &&
			    !lvmm_stream_read(st, &end, sizeof(end)) &&
			    end.checksum == sum &&
			    end.nr_records == st->nr_records &&
			    nr_vcpus == h->nr_vcpus && ic.done == ic.on)
				r = 0;
			break;
		}
		st->nr_records++;
		/* Memory, vCPUs, the VMM's state, the run state: in order. */
		if (runstate)
			break;
		switch (rec.type) {
		case LVMM_REC_MEMORY:
		case LVMM_REC_PAGES:
			if (!nr_vcpus && !vm->vmm_state &&
			    (v2 || rec.type == LVMM_REC_MEMORY))
				r = lvmm_load_memory(vm, st, rec.len,
						     rec.type == LVMM_REC_PAGES);
			break;
		case LVMM_REC_VCPU:
			if (nr_vcpus < h->nr_vcpus && !ic.nr &&
			    !vm->vmm_state) {
				r = lvmm_load_vcpu_rec(vm, st, rec.len, img,
						       tsc);
				nr_vcpus++;
			}
			break;
		case LVMM_REC_LAPIC:
			if (ic.on && nr_vcpus == h->nr_vcpus &&
			    ic.nr < nr_vcpus && !ic.done && !vm->vmm_state)
				r = lvmm_load_lapic_rec(vm, st, rec.len, &ic);
			break;
		case LVMM_REC_IRQCHIP:
			if (ic.on && ic.nr == h->nr_vcpus && !ic.done &&
			    !vm->vmm_state) {
				r = lvmm_load_irqchip_rec(vm, st, rec.len);
				ic.done = true;
			}
			break;
		case LVMM_REC_VMM:
			if (ic.done == ic.on)
				r = lvmm_load_vmm_state(vm, st, rec.len);
			break;
		case LVMM_REC_RUNSTATE:
			if (v2 && nr_vcpus == h->nr_vcpus && ic.done == ic.on) {
				r = lvmm_load_runstate(vm, st, rec.len);
				runstate = true;
			}
			break;
		}
		if (r)
			break;
		if (fatal_signal_pending(current)) {
			r = -EINTR;
			break;
		}
		cond_resched();
	}
	if (!r) {
		lvmm_load_tsc(vm, tsc);
		r = lvmm_load_lapics(vm, &ic);
	}
	/* The I/O APIC's waiting interrupts, to the APICs just loaded. */
	if (!r)
		lvmm_ioapic_resend(vm);
	kvfree(img);
	kfree(tsc);
	kvfree(ic.lapics);
	return r;
}

struct lvmm_restore_ctx {
	void __user *argp;
	struct file *file;
	bool incoming;
	bool hold;			/* LVMM_RESTORE_HOLD: the VMM finishes */
	bool answered;			/* the handshake told the source */
};

/* Tell the caller; a migration's handshake comes last (migrate.c). */
static int lvmm_restore_tell(struct lvmm_vm *vm, void *arg)
{
	struct lvmm_restore_ctx *ctx = arg;
	struct lvmm_restore_vm __user *req = ctx->argp;

	if (copy_to_user(req->name, vm->name, sizeof(vm->name)) ||
	    put_user(vm->id, &req->id) ||
	    put_user(READ_ONCE(vm->nr_vcpus), &req->nr_vcpus))
		return -EFAULT;
	if (!ctx->incoming)
		return 0;
	ctx->answered = true;
	if (ctx->hold) {
		/* The rest is LVMM_INCOMING_FINISH's, or the VM's end's. */
		lvmm_mig_incoming_hold(vm, ctx->file);
		return 0;
	}
	return lvmm_mig_incoming_commit(vm, ctx->file);
}

/*
 * The stream's VM, read and checked, before it is named.  An incoming
 * migration answers the header, and any failure, through the socket.
 */
static int lvmm_restore_read(struct lvmm_vm *vm, struct lvmm_stream *st,
			     const char *name, bool incoming)
{
	struct lvmm_stream_header *h = NULL;
	int r;

	r = lvmm_load_header(vm, st, &h);
	if (!r && incoming) {
		/* Refused now, not after the whole VM came. */
		if (lvmm_vm_name_taken(vm, name[0] ? name : h->name))
			r = -EEXIST;
		else
			r = lvmm_mig_send(st->file, LVMM_MIG_ACCEPT, 0);
	}
	r = r ?: lvmm_load_records(vm, st, h);
	if (incoming && st->eof)
		r = -ECONNRESET;	/* the source went away */
	if (r && incoming)
		lvmm_mig_refuse(st->file, r);
	if (!r && !name[0])
		strscpy(vm->name, h->name, sizeof(vm->name));
	kfree(h);
	return r;
}

/*
 * LVMM_RESTORE_VM: a VM from the stream at req.fd, read in the caller's
 * context (its memory cgroup and RLIMIT_MEMLOCK pay).  Nothing is left
 * behind when the stream is refused.  With LVMM_RESTORE_INCOMING the fd
 * is a migration's socket, and the VM is the caller's only after the
 * handshake handed it over.
 */
long lvmm_dev_restore_vm(void __user *argp)
{
	struct lvmm_restore_ctx ctx = { .argp = argp };
	char name[LVMM_VM_NAME_LEN];
	struct lvmm_restore_vm req;
	struct lvmm_stream st;
	struct lvmm_vm *vm;
	struct file *file;
	int r;

	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.flags & ~(LVMM_RESTORE_INCOMING | LVMM_RESTORE_HOLD) ||
	    (req.flags & LVMM_RESTORE_HOLD &&
	     !(req.flags & LVMM_RESTORE_INCOMING)) ||
	    req.id || req.nr_vcpus ||
	    memchr_inv(req.reserved, 0, sizeof(req.reserved)) ||
	    !lvmm_name_valid(req.name))
		return -EINVAL;
	ctx.incoming = req.flags & LVMM_RESTORE_INCOMING;
	ctx.hold = req.flags & LVMM_RESTORE_HOLD;
	file = fget(req.fd);
	if (!file)
		return -EBADF;
	if (!(file->f_mode & FMODE_READ) || !lvmm_stream_file_ok(file, false)) {
		fput(file);
		return -EBADF;
	}
	if (ctx.incoming) {
		r = lvmm_mig_socket_ok(file, true);
		if (r) {
			fput(file);
			return r == -ENOTCONN ? r : -EINVAL;
		}
		lvmm_mig_incoming_prepare(file);
	}
	vm = lvmm_vm_new();
	if (IS_ERR(vm)) {
		if (ctx.incoming)
			lvmm_mig_refuse(file, PTR_ERR(vm));
		fput(file);
		return PTR_ERR(vm);
	}
	lvmm_stream_init(&st, file);
	r = lvmm_restore_read(vm, &st, req.name, ctx.incoming);
	if (file->f_mode & FMODE_LSEEK)
		file->f_pos = st.pos;
	if (r) {
		fput(file);
		lvmm_vm_put(vm);
		return r;
	}
	/* Listed frozen, not to be saved or sent on: only GO makes it ours. */
	vm->frozen = ctx.incoming;
	vm->incoming = ctx.incoming;
	ctx.file = file;
	memcpy(name, req.name[0] ? req.name : vm->name, sizeof(name));
	r = lvmm_vm_install(vm, name, lvmm_restore_tell, &ctx);
	/* The name taken since the header, no fd, no memory: say so. */
	if (r < 0 && ctx.incoming && !ctx.answered)
		lvmm_mig_refuse(file, r);
	fput(file);
	return r;
}

/* ---- the VMM's state ------------------------------------------------------ */

long lvmm_vm_vmm_state(struct lvmm_vm *vm, void __user *argp, bool set)
{
	struct lvmm_vmm_state __user *user = argp;
	struct lvmm_vmm_state req;
	void *buf = NULL, *old;
	u32 size;
	int r = 0;

	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.flags || memchr_inv(req.reserved, 0, sizeof(req.reserved)))
		return -EINVAL;
	if (set) {
		if (req.size > LVMM_MAX_VMM_STATE)
			return -E2BIG;
		if (req.size) {
			buf = vmemdup_user(u64_to_user_ptr(req.data), req.size);
			if (IS_ERR(buf))
				return PTR_ERR(buf);
		}
		mutex_lock(&vm->lock);
		old = vm->vmm_state;
		vm->vmm_state = buf;
		vm->vmm_state_size = req.size;
		mutex_unlock(&vm->lock);
		kvfree(old);
		return 0;
	}
	/* A copy, so that user memory is not touched under vm->lock. */
	mutex_lock(&vm->lock);
	size = vm->vmm_state_size;
	if (size <= req.size && size) {
		buf = lvmm_vmm_state_copy(vm);
		if (!buf)
			r = -ENOMEM;
	}
	mutex_unlock(&vm->lock);
	if (!r && buf && copy_to_user(u64_to_user_ptr(req.data), buf, size))
		r = -EFAULT;
	kvfree(buf);
	if (r)
		return r;
	if (put_user(size, &user->size))
		return -EFAULT;
	return size > req.size ? -ENOSPC : 0;
}

void lvmm_vm_free_snapshot(struct lvmm_vm *vm)
{
	kvfree(vm->vmm_state);
}
