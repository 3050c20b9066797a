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

static void lvmm_memslot_free(struct lvmm_slot *slot)
{
	unsigned long i;

	for (i = 0; i < slot->nchunks; i++)
		lvmm_free_chunk(&slot->chunks[i], lvmm_chunk_pages(slot, i));
	kvfree(slot->chunks);
	mem_cgroup_put(slot->memcg);
	kfree(slot);
}

/* What can be checked of a request alone, without slots_lock. */
static int lvmm_memslot_check_req(const struct lvmm_memslot *req)
{
	if (req->slot >= LVMM_MAX_MEMSLOTS)
		return -EINVAL;
	if (req->flags & ~LVMM_MEMSLOT_READONLY)
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

static struct lvmm_slot *lvmm_memslot_alloc(const struct lvmm_memslot *req)
{
	struct lvmm_slot *slot;

	slot = kzalloc(sizeof(*slot), GFP_KERNEL_ACCOUNT);
	if (!slot)
		return NULL;
	slot->id = req->slot;
	slot->flags = req->flags;
	slot->base_gfn = req->guest_phys_addr >> PAGE_SHIFT;
	slot->npages = req->size >> PAGE_SHIFT;
	slot->huge_ok = IS_ALIGNED(req->guest_phys_addr, LVMM_HPAGE_SIZE);
	slot->nchunks = DIV_ROUND_UP(slot->npages, LVMM_PAGES_PER_HPAGE);
	mutex_init(&slot->alloc_lock);
	slot->chunks = kvcalloc(slot->nchunks, sizeof(*slot->chunks),
				GFP_KERNEL_ACCOUNT);
	if (!slot->chunks) {
		kfree(slot);
		return NULL;
	}
	/* The creator pays for the memory, wherever it is touched from. */
	slot->memcg = get_mem_cgroup_from_mm(current->mm);
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
	r = lvmm_memslot_check(vm, req);
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
	slot = lvmm_memslot_alloc(req);
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

/* The VMM's mmap of slot memory: insert the page, allocating it if new. */
vm_fault_t lvmm_vm_mmap_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct lvmm_vm *vm = vma->vm_file->private_data;
	u64 shift = LVMM_MEMSLOT_MMAP_SHIFT - PAGE_SHIFT;
	u64 id = vmf->pgoff >> shift;
	u64 idx = vmf->pgoff & ((1ULL << shift) - 1);
	struct lvmm_slot *slot;
	struct page *page;
	vm_fault_t ret = VM_FAULT_SIGBUS;
	bool huge;
	int srcu;

	if (id >= LVMM_MAX_MEMSLOTS)
		return VM_FAULT_SIGBUS;
	srcu = srcu_read_lock(&vm->srcu);
	slot = srcu_dereference(vm->memslots, &vm->srcu)->slot[id];
	if (!slot || idx >= slot->npages)
		goto out_unlock;
	page = lvmm_memslot_get_page(slot, slot->base_gfn + idx, &huge);
	if (!page) {
		ret = VM_FAULT_OOM;
		goto out_unlock;
	}
	/* Inserted inside the read section: a delete then zaps it. */
	ret = vmf_insert_mixed(vma, vmf->address,
			       pfn_to_pfn_t(page_to_pfn(page)));
out_unlock:
	srcu_read_unlock(&vm->srcu, srcu);
	return ret;
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
