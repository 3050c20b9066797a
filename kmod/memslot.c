// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: guest memory.  The module owns it, as bhyve's memory segments: a
 * slot's pages are allocated on first touch (by the guest through a nested
 * page fault, or by the VMM through its mmap), charged to the memory cgroup
 * of the process that created the slot, and freed when the slot is deleted
 * or the VM dies and nothing maps them any more.
 */
#include <linux/highmem.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/pfn_t.h>
#include <linux/rwsem.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "lvmm.h"

struct lvmm_slot *lvmm_memslot_find(struct lvmm_memslots *slots, u64 gfn)
{
	int i;

	for (i = 0; i < LVMM_MAX_MEMSLOTS; i++) {
		struct lvmm_slot *s = slots->slot[i];

		if (s && gfn - s->base_gfn < s->npages)
			return s;
	}
	return NULL;
}

static void lvmm_free_chunk(struct lvmm_chunk *c, unsigned long n)
{
	unsigned long i;

	/*
	 * User mappings are special PTEs without page references; a slot's
	 * mappings are zapped before it is freed, and a mapping pins the VM
	 * file, so no user PTE outlives the pages.
	 */
	if (c->huge)
		put_page(c->huge);
	if (c->small) {
		for (i = 0; i < n; i++)
			if (c->small[i])
				put_page(c->small[i]);
		kvfree(c->small);
	}
}

/* Pages of chunk @ci that lie inside the slot. */
static unsigned long lvmm_chunk_pages(struct lvmm_slot *slot,
				      unsigned long ci)
{
	u64 first = (u64)ci << LVMM_HPAGE_ORDER;

	return min_t(u64, LVMM_PAGES_PER_HPAGE, slot->npages - first);
}

static int lvmm_alloc_chunk(struct lvmm_slot *slot, unsigned long ci)
{
	struct lvmm_chunk *c = &slot->chunks[ci];
	unsigned long i, n = lvmm_chunk_pages(slot, ci);
	struct mem_cgroup *old_memcg;
	struct page **small;
	int r = 0;

	lockdep_assert_held(&slot->alloc_lock);
	old_memcg = set_active_memcg(slot->memcg);

	if (slot->huge_ok && n == LVMM_PAGES_PER_HPAGE) {
		struct page *huge;

		huge = alloc_pages(GFP_HIGHUSER | __GFP_ACCOUNT | __GFP_ZERO |
				   __GFP_COMP | __GFP_NOWARN | __GFP_NORETRY,
				   LVMM_HPAGE_ORDER);
		if (huge) {
			/* Zeroed contents before the pointer: pairs with the
			 * smp_load_acquire() in lvmm_memslot_get_page().
			 */
			smp_store_release(&c->huge, huge);
			goto out;
		}
	}

	small = kvcalloc(LVMM_PAGES_PER_HPAGE, sizeof(*small),
			 GFP_KERNEL_ACCOUNT);
	if (!small) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		small[i] = alloc_page(GFP_HIGHUSER | __GFP_ACCOUNT | __GFP_ZERO);
		if (!small[i]) {
			struct lvmm_chunk tmp = { .small = small };

			lvmm_free_chunk(&tmp, i);
			r = -ENOMEM;
			goto out;
		}
	}
	/* As for c->huge above. */
	smp_store_release(&c->small, small);
out:
	set_active_memcg(old_memcg);
	if (!r)
		lvmm_mm_add_rss(slot->mm, n);
	return r;
}

/*
 * The page backing @gfn, allocated if this is its first touch; NULL when
 * memory runs out.  The slot keeps the reference: callers use the page only
 * inside vm->srcu, which keeps the slot alive.  May sleep.
 */
struct page *lvmm_memslot_get_page(struct lvmm_slot *slot, u64 gfn,
				   bool *huge)
{
	u64 idx = gfn - slot->base_gfn;
	unsigned long ci = idx >> LVMM_HPAGE_ORDER;
	unsigned long off = idx & (LVMM_PAGES_PER_HPAGE - 1);
	struct lvmm_chunk *c = &slot->chunks[ci];
	struct page *page, **small;

	for (;;) {
		/* Pairs with smp_store_release() in lvmm_alloc_chunk(). */
		page = smp_load_acquire(&c->huge);
		if (page) {
			*huge = true;
			return page + off;
		}
		small = smp_load_acquire(&c->small);	/* likewise */
		if (small) {
			*huge = false;
			return small[off];
		}
		mutex_lock(&slot->alloc_lock);
		if (!c->huge && !c->small && lvmm_alloc_chunk(slot, ci)) {
			mutex_unlock(&slot->alloc_lock);
			return NULL;
		}
		mutex_unlock(&slot->alloc_lock);
	}
}

/*
 * The page backing @gfn if its chunk was ever touched, else NULL (the
 * page reads as zeros): for a save, which must not allocate.
 */
struct page *lvmm_memslot_peek_page(struct lvmm_slot *slot, u64 gfn)
{
	u64 idx = gfn - slot->base_gfn;
	struct lvmm_chunk *c = &slot->chunks[idx >> LVMM_HPAGE_ORDER];
	unsigned long off = idx & (LVMM_PAGES_PER_HPAGE - 1);
	struct page *page, **small;

	/* Pairs with smp_store_release() in lvmm_alloc_chunk(). */
	page = smp_load_acquire(&c->huge);
	if (page)
		return page + off;
	small = smp_load_acquire(&c->small);	/* likewise */
	return small ? small[off] : NULL;
}

static void lvmm_memslot_free(struct lvmm_slot *slot)
{
	unsigned long i, n, freed = 0;

	for (i = 0; i < slot->nchunks; i++) {
		struct lvmm_chunk *c = &slot->chunks[i];

		n = lvmm_chunk_pages(slot, i);
		/* A chunk is in the RSS whole once published (alloc_chunk). */
		if (c->huge || c->small)
			freed += n;
		lvmm_free_chunk(c, n);
	}
	/* The VM keeps its mm until its slots are gone (vm.c). */
	lvmm_mm_add_rss(slot->mm, -(long)freed);
	kvfree(slot->chunks);
	kvfree(slot->dirty_bitmap);
	kvfree(slot->user_writable);
	mem_cgroup_put(slot->memcg);
	kfree(slot);
}

/* What can be checked of a request alone, without slots_lock. */
static int lvmm_memslot_check_req(const struct lvmm_memslot *req)
{
	if (req->slot >= LVMM_MAX_MEMSLOTS)
		return -EINVAL;
	if (req->flags & ~(LVMM_MEMSLOT_READONLY | LVMM_MEMSLOT_LOG_DIRTY))
		return -EINVAL;
	/* Nothing writes a read-only slot: there is nothing to log. */
	if ((req->flags & LVMM_MEMSLOT_READONLY) &&
	    (req->flags & LVMM_MEMSLOT_LOG_DIRTY))
		return -EINVAL;
	if (memchr_inv(req->reserved, 0, sizeof(req->reserved)))
		return -EINVAL;
	if (!req->size)
		return 0;
	if (!PAGE_ALIGNED(req->guest_phys_addr) || !PAGE_ALIGNED(req->size))
		return -EINVAL;
	if (req->size > LVMM_MAX_MEMSLOT_SIZE ||
	    req->guest_phys_addr >= LVMM_MAX_GPA ||
	    req->size > LVMM_MAX_GPA - req->guest_phys_addr)
		return -EINVAL;
	return 0;
}

/* Against the VM's slots, under slots_lock, after lvmm_memslot_check_req(). */
static int lvmm_memslot_check(struct lvmm_vm *vm, const struct lvmm_memslot *req)
{
	struct lvmm_memslots *slots = lvmm_memslots(vm);
	u64 gfn, npages;
	int i;

	if (!req->size)
		return slots->slot[req->slot] ? 0 : -ENOENT;
	if (slots->slot[req->slot])
		return -EEXIST;

	gfn = req->guest_phys_addr >> PAGE_SHIFT;
	npages = req->size >> PAGE_SHIFT;
	for (i = 0; i < LVMM_MAX_MEMSLOTS; i++) {
		struct lvmm_slot *s = slots->slot[i];

		if (s && gfn < s->base_gfn + s->npages &&
		    s->base_gfn < gfn + npages)
			return -EEXIST;
	}
	return 0;
}

static int lvmm_dirty_log_alloc(u64 npages, unsigned long **dirty,
				unsigned long **user_writable)
{
	size_t size = BITS_TO_LONGS(npages) * sizeof(long);

	*dirty = kvzalloc(size, GFP_KERNEL_ACCOUNT);
	*user_writable = kvzalloc(size, GFP_KERNEL_ACCOUNT);
	if (*dirty && *user_writable)
		return 0;
	kvfree(*dirty);
	kvfree(*user_writable);
	return -ENOMEM;
}

static struct lvmm_slot *
lvmm_memslot_alloc(struct lvmm_vm *vm, const struct lvmm_memslot *req)
{
	struct lvmm_slot *slot;

	slot = kzalloc(sizeof(*slot), GFP_KERNEL_ACCOUNT);
	if (!slot)
		return NULL;
	slot->id = req->slot;
	slot->flags = req->flags & LVMM_MEMSLOT_READONLY;
	slot->base_gfn = req->guest_phys_addr >> PAGE_SHIFT;
	slot->npages = req->size >> PAGE_SHIFT;
	slot->huge_ok = IS_ALIGNED(req->guest_phys_addr, LVMM_HPAGE_SIZE);
	slot->nchunks = DIV_ROUND_UP(slot->npages, LVMM_PAGES_PER_HPAGE);
	mutex_init(&slot->alloc_lock);
	init_rwsem(&slot->log_lock);
	slot->chunks = kvcalloc(slot->nchunks, sizeof(*slot->chunks),
				GFP_KERNEL_ACCOUNT);
	if (!slot->chunks) {
		kfree(slot);
		return NULL;
	}
	/* Nothing is mapped yet: logging from the start is only the log. */
	if ((req->flags & LVMM_MEMSLOT_LOG_DIRTY) &&
	    lvmm_dirty_log_alloc(slot->npages, &slot->dirty_bitmap,
				 &slot->user_writable)) {
		kvfree(slot->chunks);
		kfree(slot);
		return NULL;
	}
	/*
	 * The slot's creator pays for the memory, wherever it is touched
	 * from, and it counts in the RSS of the VM's creator, whose locked
	 * memory it is too: usually one process.
	 */
	slot->memcg = get_mem_cgroup_from_mm(current->mm);
	slot->mm = vm->mm;
	return slot;
}

/*
 * Arrays replaced by a slot creation wait on vm->retired for the next
 * grace period lvmm sits through anyway -- a slot deletion's -- or for the
 * VM's end.  Creating a slot then never waits for SRCU, and neither does
 * the VM's teardown.  At most LVMM_MAX_MEMSLOTS arrays wait at a time.
 */
static void lvmm_memslots_retire(struct lvmm_vm *vm, struct lvmm_memslots *old)
{
	lockdep_assert_held(&vm->slots_lock);
	old->retired = vm->retired;
	vm->retired = old;
}

/* Only after a grace period, or with no reader left. */
static void lvmm_memslots_free_retired(struct lvmm_vm *vm)
{
	while (vm->retired) {
		struct lvmm_memslots *next = vm->retired->retired;

		kfree(vm->retired);
		vm->retired = next;
	}
}

/*
 * Publish a copy of the slot array with @slot at @id (NULL deletes).  The
 * old array goes after a grace period; deletions wait for it themselves.
 */
static struct lvmm_memslots *lvmm_memslots_replace(struct lvmm_vm *vm, u32 id,
						   struct lvmm_slot *slot)
{
	struct lvmm_memslots *old = lvmm_memslots(vm), *new;

	new = kmemdup(old, sizeof(*old), GFP_KERNEL_ACCOUNT);
	if (!new)
		return NULL;
	new->retired = NULL;
	new->slot[id] = slot;
	new->nr += slot ? 1 : -1;
	rcu_assign_pointer(vm->memslots, new);
	return old;
}

static int lvmm_memslot_delete(struct lvmm_vm *vm, u32 id)
{
	struct lvmm_slot *slot = lvmm_memslots(vm)->slot[id];
	struct lvmm_memslots *old;

	old = lvmm_memslots_replace(vm, id, NULL);
	if (!old)
		return -ENOMEM;
	/*
	 * Once every reader that could see the old array is gone, no new
	 * nested or user mapping of the slot can appear: drop the existing
	 * ones, make sure no vCPU can still use a translation of them, and
	 * only then let the pages go.
	 */
	synchronize_srcu_expedited(&vm->srcu);
	kfree(old);
	lvmm_memslots_free_retired(vm);
	lvmm_arch->vm_zap_gfn_range(vm, slot->base_gfn, slot->npages);
	lvmm_vm_flush_tlb_all(vm);
	unmap_mapping_range(vm->inode->i_mapping,
			    LVMM_MEMSLOT_MMAP_OFFSET(id),
			    slot->npages << PAGE_SHIFT, 1);
	vm->mem_size -= slot->npages << PAGE_SHIFT;
	lvmm_memslot_free(slot);
	return 0;
}

/*
 * Guest memory is pinned: it counts against the caller's RLIMIT_MEMLOCK
 * (unless CAP_IPC_LOCK) in the creator's locked_vm, as VFIO's pinned
 * pages do, besides its memory cgroup charge.  account_locked_vm() takes
 * mmap_lock, which ranks above vm->slots_lock (see vm.c): call it without
 * slots_lock, before a slot is added and after one is gone.
 */
static int lvmm_memslot_account(struct lvmm_vm *vm, u64 npages, bool inc)
{
	return account_locked_vm(vm->mm, npages, inc);
}

int lvmm_vm_set_memslot(struct lvmm_vm *vm, const struct lvmm_memslot *req)
{
	u64 npages = req->size >> PAGE_SHIFT, freed = 0;
	struct lvmm_slot *slot;
	struct lvmm_memslots *old;
	int r;

	r = lvmm_memslot_check_req(req);
	if (r)
		return r;
	/* Unaccounted again below if the slot is not added after all. */
	r = lvmm_memslot_account(vm, npages, true);
	if (r)
		return r;
	mutex_lock(&vm->slots_lock);
	/* A save reads the slots without this lock (snapshot.c). */
	r = vm->slots_pinned ? -EBUSY : lvmm_memslot_check(vm, req);
	if (r)
		goto out_unlock;
	if (!req->size) {
		freed = lvmm_memslots(vm)->slot[req->slot]->npages;
		r = lvmm_memslot_delete(vm, req->slot);
		if (r)
			freed = 0;
		goto out_unlock;
	}

	r = -ENOMEM;
	slot = lvmm_memslot_alloc(vm, req);
	if (!slot)
		goto out_unlock;
	old = lvmm_memslots_replace(vm, req->slot, slot);
	if (!old) {
		lvmm_memslot_free(slot);
		goto out_unlock;
	}
	vm->mem_size += req->size;
	/*
	 * Readers of the old array can only miss the new slot (an MMIO exit
	 * that the guest raced with the VMM), never see freed memory: free
	 * the old array after they are gone, without making the VMM wait.
	 */
	lvmm_memslots_retire(vm, old);
	npages = 0;		/* stays accounted, with the slot */
	r = 0;
out_unlock:
	mutex_unlock(&vm->slots_lock);
	lvmm_memslot_account(vm, npages + freed, false);
	return r;
}

void lvmm_vm_free_memslots(struct lvmm_vm *vm)
{
	struct lvmm_memslots *slots = rcu_dereference_protected(vm->memslots, 1);
	int i;

	for (i = 0; i < LVMM_MAX_MEMSLOTS; i++) {
		if (!slots->slot[i])
			continue;
		lvmm_memslot_account(vm, slots->slot[i]->npages, false);
		lvmm_memslot_free(slots->slot[i]);
	}
	kfree(slots);
	/* The last reference is gone: no reader can be left. */
	lvmm_memslots_free_retired(vm);
}

static bool lvmm_vm_thawed(struct lvmm_vm *vm)
{
	return !lvmm_vm_frozen_for_migration(vm) || READ_ONCE(vm->dead);
}

/*
 * Wait out a migration's frozen phase, without mmap_lock where the fault
 * may be retried (the VMM's other threads mmap() and fault meanwhile):
 * VM_FAULT_RETRY, or 0 to go on under the lock.
 */
static vm_fault_t lvmm_vm_mmap_wait_migration(struct vm_fault *vmf,
					      struct lvmm_vm *vm)
{
	if (!fault_flag_allow_retry_first(vmf->flags))
		return wait_event_killable(vm->pause_wq, lvmm_vm_thawed(vm)) ?
		       VM_FAULT_SIGBUS : 0;
	if (vmf->flags & FAULT_FLAG_RETRY_NOWAIT)
		return VM_FAULT_RETRY;
	/* The mapping, and its reference to the VM, may go once unlocked. */
	lvmm_vm_get(vm);
	mmap_read_unlock(vmf->vma->vm_mm);
	wait_event_killable(vm->pause_wq, lvmm_vm_thawed(vm));
	lvmm_vm_put(vm);
	return VM_FAULT_RETRY;
}

/*
 * The VMM's mmap of slot memory: insert the page, allocating it if new.
 * Shared mappings start read-only (the VM fd's vm_ops have pfn_mkwrite):
 * a write fault, or the first write to a page mapped for reading, makes
 * the page writable here, and sets its dirty bit first if the slot logs.
 */
static vm_fault_t lvmm_vm_mmap_insert(struct vm_fault *vmf, bool write)
{
	struct vm_area_struct *vma = vmf->vma;
	struct lvmm_vm *vm = vma->vm_file->private_data;
	u64 shift = LVMM_MEMSLOT_MMAP_SHIFT - PAGE_SHIFT;
	u64 id = vmf->pgoff >> shift;
	u64 idx = vmf->pgoff & ((1ULL << shift) - 1);
	struct lvmm_slot *slot;
	struct page *page;
	vm_fault_t ret = VM_FAULT_SIGBUS;
	unsigned long *log;
	pfn_t pfn;
	bool huge;
	int srcu;

	if (id >= LVMM_MAX_MEMSLOTS)
		return VM_FAULT_SIGBUS;
	/*
	 * A migration's last pass took the log: a write now would be lost
	 * with the source.  It waits for the outcome (bounded: migrate.c).
	 */
	if (write && lvmm_vm_frozen_for_migration(vm)) {
		ret = lvmm_vm_mmap_wait_migration(vmf, vm);
		if (ret)
			return ret;
	}
	srcu = srcu_read_lock(&vm->srcu);
	slot = srcu_dereference(vm->memslots, &vm->srcu)->slot[id];
	if (!slot || idx >= slot->npages)
		goto out_unlock;
	page = lvmm_memslot_get_page(slot, slot->base_gfn + idx, &huge);
	if (!page) {
		ret = VM_FAULT_OOM;
		goto out_unlock;
	}
	pfn = pfn_to_pfn_t(page_to_pfn(page));
	/* Inserted inside the read section: a delete then zaps it. */
	if (!write || !(vma->vm_flags & VM_SHARED)) {
		ret = vmf_insert_mixed(vma, vmf->address, pfn);
		goto out_unlock;
	}
	/* Against CLEAR_DIRTY_LOG's round: the bit before the write. */
	down_read(&slot->log_lock);
	log = slot->dirty_bitmap;
	if (log) {
		set_bit(idx, log);
		set_bit(idx, slot->user_writable);
	}
	ret = vmf_insert_mixed_mkwrite(vma, vmf->address, pfn);
	up_read(&slot->log_lock);
out_unlock:
	srcu_read_unlock(&vm->srcu, srcu);
	return ret;
}

vm_fault_t lvmm_vm_mmap_fault(struct vm_fault *vmf)
{
	return lvmm_vm_mmap_insert(vmf, vmf->flags & FAULT_FLAG_WRITE);
}

/* A write to a page mapped read-only: make it writable ourselves. */
vm_fault_t lvmm_vm_mmap_mkwrite(struct vm_fault *vmf)
{
	vm_fault_t ret = lvmm_vm_mmap_insert(vmf, true);

	/*
	 * NOPAGE: the PTE is done, the core must not touch it again; and
	 * with RETRY (mmap_lock dropped), the core's wp path must not either.
	 */
	return ret & ~VM_FAULT_RETRY ? ret : ret | VM_FAULT_NOPAGE;
}

/*
 * lvmm itself wrote @gfn (inside vm->srcu): log it, after the data.  The
 * barrier pairs with the one in lvmm_dirty_log_start(): either this sees
 * the new log, or whoever reads memory after logging started sees the
 * data.
 */
static void lvmm_slot_mark_dirty(struct lvmm_slot *slot, u64 gfn)
{
	unsigned long *log;

	smp_mb();	/* the data before reading the log's pointer */
	log = READ_ONCE(slot->dirty_bitmap);
	if (log)
		set_bit(gfn - slot->base_gfn, log);
}

/* Copy to or from guest-physical memory, within slots only. */
static int lvmm_guest_rw(struct lvmm_vm *vm, u64 gpa, void *data,
			 unsigned int len, bool write)
{
	int srcu, r = 0;

	srcu = srcu_read_lock(&vm->srcu);
	while (len) {
		unsigned int off = offset_in_page(gpa);
		unsigned int n = min_t(unsigned int, len, PAGE_SIZE - off);
		struct lvmm_slot *slot;
		struct page *page;
		bool huge;
		void *va;

		slot = lvmm_memslot_find(srcu_dereference(vm->memslots,
							  &vm->srcu),
					 gpa >> PAGE_SHIFT);
		if (!slot || (write && (slot->flags & LVMM_MEMSLOT_READONLY))) {
			r = -EFAULT;
			break;
		}
		page = lvmm_memslot_get_page(slot, gpa >> PAGE_SHIFT, &huge);
		if (!page) {
			r = -ENOMEM;
			break;
		}
		va = kmap_local_page(page);
		if (write)
			memcpy(va + off, data, n);
		else
			memcpy(data, va + off, n);
		kunmap_local(va);
		if (write)
			lvmm_slot_mark_dirty(slot, gpa >> PAGE_SHIFT);
		gpa += n;
		data += n;
		len -= n;
	}
	srcu_read_unlock(&vm->srcu, srcu);
	return r;
}

int lvmm_guest_read(struct lvmm_vm *vm, u64 gpa, void *data, unsigned int len)
{
	return lvmm_guest_rw(vm, gpa, data, len, false);
}

int lvmm_guest_write(struct lvmm_vm *vm, u64 gpa, const void *data,
		     unsigned int len)
{
	return lvmm_guest_rw(vm, gpa, (void *)data, len, true);
}

/* ---- dirty logging ------------------------------------------------------ */

/* Words of the log copied per round, through a page-sized buffer. */
#define LVMM_LOG_ROUND_WORDS	(PAGE_SIZE / sizeof(u64))

/*
 * Take pages [first, first + n) of @slot out of the VMM's mappings (under
 * slot->log_lock, for writing): the next access faults them in again,
 * read-only unless it is a write, which logs the page first.  Zapping,
 * not write-protecting: a write-protected PTE stays dirty, and mprotect()
 * would make it writable again without a fault.
 */
static void lvmm_user_unmap(struct lvmm_vm *vm, struct lvmm_slot *slot,
			    u64 first, u64 n)
{
	pgoff_t off = (LVMM_MEMSLOT_MMAP_OFFSET(slot->id) >> PAGE_SHIFT) + first;

	unmap_mapping_pages(vm->inode->i_mapping, off, n, false);
}

/* Under vm->slots_lock. */
static int lvmm_dirty_log_start(struct lvmm_vm *vm, struct lvmm_slot *slot)
{
	unsigned long *dirty, *user_writable;
	int r;

	r = lvmm_dirty_log_alloc(slot->npages, &dirty, &user_writable);
	if (r)
		return r;
	down_write(&slot->log_lock);
	slot->user_writable = user_writable;
	/* An empty log before the pointer, for the fault paths. */
	smp_store_release(&slot->dirty_bitmap, dirty);
	smp_mb();	/* pairs with lvmm_slot_mark_dirty() */
	lvmm_arch->vm_write_protect(vm, slot->base_gfn, slot->npages);
	lvmm_user_unmap(vm, slot, 0, slot->npages);
	up_write(&slot->log_lock);
	lvmm_vm_flush_tlb_all(vm);
	return 0;
}

/* Under vm->slots_lock. */
static void lvmm_dirty_log_stop(struct lvmm_vm *vm, struct lvmm_slot *slot)
{
	unsigned long *dirty, *user_writable;

	down_write(&slot->log_lock);
	dirty = slot->dirty_bitmap;
	user_writable = slot->user_writable;
	WRITE_ONCE(slot->dirty_bitmap, NULL);
	slot->user_writable = NULL;
	up_write(&slot->log_lock);
	/*
	 * The VMM's read-only pages become writable on their next write.
	 * The guest's get their 2 MiB entries back, and become writable
	 * unless the slot is read-only (a migration logs those for the
	 * VMM's writes).
	 */
	lvmm_arch->vm_unprotect_slot(vm, slot);
	/* GET_DIRTY_LOG and lvmm's own writes read the log under srcu. */
	synchronize_srcu_expedited(&vm->srcu);
	kvfree(dirty);
	kvfree(user_writable);
}

int lvmm_vm_set_memslot_flags(struct lvmm_vm *vm,
			      const struct lvmm_memslot_flags *req)
{
	bool log = req->flags & LVMM_MEMSLOT_LOG_DIRTY;
	struct lvmm_slot *slot;
	int r = 0;

	if (req->slot >= LVMM_MAX_MEMSLOTS ||
	    req->flags & ~(LVMM_MEMSLOT_READONLY | LVMM_MEMSLOT_LOG_DIRTY) ||
	    memchr_inv(req->reserved, 0, sizeof(req->reserved)))
		return -EINVAL;
	mutex_lock(&vm->slots_lock);
	slot = lvmm_memslots(vm)->slot[req->slot];
	if (!slot)
		r = -ENOENT;
	else if (vm->migrating)
		r = -EBUSY;	/* the log is the migration's */
	else if ((req->flags & LVMM_MEMSLOT_READONLY) != slot->flags)
		r = -EINVAL;	/* only logging changes in place */
	else if (log && (slot->flags & LVMM_MEMSLOT_READONLY))
		r = -EINVAL;
	else if (log && !slot->dirty_bitmap)
		r = lvmm_dirty_log_start(vm, slot);
	else if (!log && slot->dirty_bitmap)
		lvmm_dirty_log_stop(vm, slot);
	mutex_unlock(&vm->slots_lock);
	return r;
}

/* What can be checked of a GET/CLEAR_DIRTY_LOG request alone. */
static int lvmm_dirty_log_check_req(const struct lvmm_dirty_log *log)
{
	if (log->slot >= LVMM_MAX_MEMSLOTS || log->flags ||
	    memchr_inv(log->reserved, 0, sizeof(log->reserved)) ||
	    !IS_ALIGNED(log->first_page, BITS_PER_LONG) || !log->num_pages)
		return -EINVAL;
	return 0;
}

/*
 * The slot a request names, inside vm->srcu, checked against it: the slot
 * may change between the rounds of one request.  An ERR_PTR on failure.
 */
static struct lvmm_slot *lvmm_dirty_log_slot(struct lvmm_vm *vm,
					     const struct lvmm_dirty_log *log)
{
	struct lvmm_slot *slot;

	slot = srcu_dereference(vm->memslots, &vm->srcu)->slot[log->slot];
	if (!slot)
		return ERR_PTR(-ENOENT);
	if (!READ_ONCE(slot->dirty_bitmap) ||
	    log->first_page > slot->npages ||
	    log->num_pages > slot->npages - log->first_page)
		return ERR_PTR(-EINVAL);
	/* Whole words, but for the slot's last one. */
	if (!IS_ALIGNED(log->num_pages, BITS_PER_LONG) &&
	    log->first_page + log->num_pages != slot->npages)
		return ERR_PTR(-EINVAL);
	return slot;
}

/* Check a request against its slot before any user memory is touched. */
static int lvmm_dirty_log_check(struct lvmm_vm *vm,
				const struct lvmm_dirty_log *log)
{
	struct lvmm_slot *slot;
	int srcu, r;

	r = lvmm_dirty_log_check_req(log);
	if (r)
		return r;
	srcu = srcu_read_lock(&vm->srcu);
	slot = lvmm_dirty_log_slot(vm, log);
	srcu_read_unlock(&vm->srcu, srcu);
	return PTR_ERR_OR_ZERO(slot);
}

/*
 * Clear the bits of @n words of @slot's log from word @first on, as
 * @mask asks; leave in @mask the bits that were set, and write-protect
 * those pages for the guest and the VMM.  Under slot->log_lock (write),
 * so no VMM write fault can set a bit between the clear and the
 * protection; the guest's fault path sets its bit under the arch mmu
 * lock, which vm_write_protect_mask() takes after the clear.
 */
static void lvmm_dirty_log_clear_words(struct lvmm_vm *vm,
				       struct lvmm_slot *slot, u64 first,
				       unsigned long *mask, u64 n)
{
	u64 i, lo = U64_MAX, hi = 0;

	for (i = 0; i < n; i++) {
		unsigned long *word = &slot->dirty_bitmap[first + i];
		unsigned long user;

		if (!mask[i])
			continue;
		mask[i] &= atomic_long_fetch_andnot(mask[i],
						    (atomic_long_t *)word);
		user = slot->user_writable[first + i] & mask[i];
		if (!user)
			continue;
		slot->user_writable[first + i] &= ~user;
		lo = min(lo, (first + i) * BITS_PER_LONG + __ffs(user));
		hi = max(hi, (first + i) * BITS_PER_LONG + __fls(user));
	}
	lvmm_arch->vm_write_protect_mask(vm, slot->base_gfn +
					 first * BITS_PER_LONG, mask, n);
	/* Pages between them are unmapped already, or dirty: no harm. */
	if (lo <= hi)
		lvmm_user_unmap(vm, slot, lo, hi - lo + 1);
}

/* One round of GET (copy @n words from @first into @buf) or of CLEAR. */
static int lvmm_dirty_log_round(struct lvmm_vm *vm, struct lvmm_slot *slot,
				u64 first, unsigned long *buf, u64 n,
				bool clear)
{
	unsigned long *log;
	u64 i;

	/* A migration's log; it set the flag and waited for vm->srcu. */
	if (READ_ONCE(vm->migrating))
		return -EBUSY;
	if (clear) {
		down_write(&slot->log_lock);
		/* Logging may have stopped since the check. */
		log = slot->dirty_bitmap;
		if (log)
			lvmm_dirty_log_clear_words(vm, slot, first, buf, n);
		up_write(&slot->log_lock);
		return log ? 0 : -EINVAL;
	}
	/* As above; vm->srcu keeps a log that stopped. */
	log = READ_ONCE(slot->dirty_bitmap);
	if (!log)
		return -EINVAL;
	for (i = 0; i < n; i++)
		buf[i] = READ_ONCE(log[first + i]);
	return 0;
}

/*
 * GET_DIRTY_LOG or CLEAR_DIRTY_LOG, in rounds through a buffer: user
 * memory is never touched inside vm->srcu (a fault there could wait on a
 * mmap() that waits for a slot deletion that waits for us).
 */
int lvmm_vm_dirty_log(struct lvmm_vm *vm, const struct lvmm_dirty_log *log,
		      bool clear)
{
	u64 __user *ubitmap = u64_to_user_ptr(log->bitmap);
	u64 words = DIV_ROUND_UP(log->num_pages, BITS_PER_LONG), w, n;
	u64 first = log->first_page / BITS_PER_LONG;
	struct lvmm_slot *slot;
	unsigned long *buf;
	int srcu, r;

	r = lvmm_dirty_log_check(vm, log);
	if (r)
		return r;
	buf = (unsigned long *)__get_free_page(GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	for (w = 0; w < words && !r; w += n) {
		n = min_t(u64, words - w, LVMM_LOG_ROUND_WORDS);
		if (clear && copy_from_user(buf, ubitmap + w, n * sizeof(u64))) {
			r = -EFAULT;
			break;
		}
		srcu = srcu_read_lock(&vm->srcu);
		slot = lvmm_dirty_log_slot(vm, log);
		r = IS_ERR(slot) ? PTR_ERR(slot) :
		    lvmm_dirty_log_round(vm, slot, first + w, buf, n, clear);
		srcu_read_unlock(&vm->srcu, srcu);
		if (!r && !clear && copy_to_user(ubitmap + w, buf,
						 n * sizeof(u64)))
			r = -EFAULT;
	}
	free_page((unsigned long)buf);
	/* No write through an old translation once CLEAR returns. */
	if (clear)
		lvmm_vm_flush_tlb_all(vm);
	return r;
}

/* ---- a live migration's log (migrate.c) ----------------------------------- */

/*
 * Log every slot for a migration, or stop: -EBUSY if the VMM logs one
 * itself.  The VMM's dirty-log ioctls fail with -EBUSY from here on; the
 * ones already in a round end before logging starts.  Under nothing; the
 * slots are pinned (vm->slots_pinned) while a migration runs.
 */
int lvmm_vm_migrate_log(struct lvmm_vm *vm, bool on)
{
	struct lvmm_memslots *slots;
	int i, r = 0;

	mutex_lock(&vm->slots_lock);
	slots = lvmm_memslots(vm);
	if (on) {
		for (i = 0; i < LVMM_MAX_MEMSLOTS; i++)
			if (slots->slot[i] && slots->slot[i]->dirty_bitmap)
				r = -EBUSY;
		if (r)
			goto out_unlock;
		WRITE_ONCE(vm->migrating, true);
		vm->slots_pinned = true;
		synchronize_srcu(&vm->srcu);
	}
	for (i = 0; i < LVMM_MAX_MEMSLOTS && !r; i++) {
		struct lvmm_slot *slot = slots->slot[i];

		if (!slot)
			continue;
		if (on)
			r = lvmm_dirty_log_start(vm, slot);
		else if (slot->dirty_bitmap)
			lvmm_dirty_log_stop(vm, slot);
	}
	/* A slot that could not log: the others stop again. */
	for (i = 0; r && i < LVMM_MAX_MEMSLOTS; i++)
		if (slots->slot[i] && slots->slot[i]->dirty_bitmap)
			lvmm_dirty_log_stop(vm, slots->slot[i]);
	if (!on || r) {
		WRITE_ONCE(vm->migrating, false);
		vm->slots_pinned = false;
	}
out_unlock:
	mutex_unlock(&vm->slots_lock);
	return r;
}

/* Whether the VMM has a slot log dirty pages. */
bool lvmm_vm_logs_dirty(struct lvmm_vm *vm)
{
	struct lvmm_memslots *slots;
	bool logs = false;
	int i;

	mutex_lock(&vm->slots_lock);
	slots = lvmm_memslots(vm);
	for (i = 0; i < LVMM_MAX_MEMSLOTS; i++)
		if (slots->slot[i] && slots->slot[i]->dirty_bitmap)
			logs = true;
	mutex_unlock(&vm->slots_lock);
	return logs;
}

/*
 * Take and clear the log of @n words of @slot from word @first into
 * @mask, protecting those pages again; the caller flushes the guest TLBs
 * (lvmm_vm_flush_tlb_all()) before it reads them.  The slot logs, and
 * stays (the migration's pin).  False if no bit was set: nothing changed.
 */
bool lvmm_slot_harvest(struct lvmm_vm *vm, struct lvmm_slot *slot, u64 first,
		       unsigned long *mask, u64 n)
{
	unsigned long any = 0;
	u64 i;

	for (i = 0; i < n; i++) {
		mask[i] = READ_ONCE(slot->dirty_bitmap[first + i]);
		any |= mask[i];
	}
	if (!any)
		return false;
	down_write(&slot->log_lock);
	lvmm_dirty_log_clear_words(vm, slot, first, mask, n);
	up_write(&slot->log_lock);
	return true;
}

/* Pages set in @slot's log now; a moving figure while the guest runs. */
u64 lvmm_slot_dirty_pages(struct lvmm_slot *slot)
{
	return bitmap_weight(slot->dirty_bitmap, slot->npages);
}
