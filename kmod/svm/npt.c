// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: nested page tables for SVM.
 *
 * Four levels, long-mode format; built lazily from the memory slots on
 * nested page faults and torn down when a slot goes.  Entries are user,
 * accessed and dirty from the start, so the hardware never writes them.
 * Table pages come from a per-vCPU cache filled before vm->mmu_lock is
 * taken, so the lock is never held across an allocation.
 *
 * Dirty logging write-protects: a slot that logs is mapped with 4 KiB
 * entries, read-only until the guest writes a page, and a 2 MiB entry that
 * was there before is split when one of its pages is first written.  Why
 * not the hardware's dirty bits: see Documentation/migration.rst.
 */
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <asm/mem_encrypt.h>

#include "svm.h"

#define NPT_P		BIT_ULL(0)
#define NPT_RW		BIT_ULL(1)
#define NPT_US		BIT_ULL(2)
#define NPT_A		BIT_ULL(5)
#define NPT_D		BIT_ULL(6)
#define NPT_PS		BIT_ULL(7)
#define NPT_ADDR	0x000ffffffffff000ULL
#define NPT_TABLE	(NPT_P | NPT_RW | NPT_US | NPT_A)
#define NPT_LEVELS	4

static inline int npt_index(u64 gfn, int level)
{
	return (gfn >> ((level - 1) * 9)) & 511;
}

static u64 *npt_table(u64 pte)
{
	return __va(__sme_clr(pte & NPT_ADDR));
}

int svm_npt_init(struct svm_vm *svm_vm)
{
	spin_lock_init(&svm_vm->mmu_lock);
	svm_vm->npt_root = (u64 *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
	if (!svm_vm->npt_root)
		return -ENOMEM;
	svm_vm->ncr3 = __sme_set(__pa(svm_vm->npt_root));
	return 0;
}

static void npt_free_table(u64 *table, int level)
{
	int i;

	for (i = 0; level > 1 && i < 512; i++)
		if ((table[i] & NPT_P) && !(table[i] & NPT_PS))
			npt_free_table(npt_table(table[i]), level - 1);
	free_page((unsigned long)table);
}

void svm_npt_free(struct svm_vm *svm_vm)
{
	if (svm_vm->npt_root)
		npt_free_table(svm_vm->npt_root, NPT_LEVELS);
}

int svm_npt_topup(struct svm_vcpu *svm)
{
	while (svm->npt_cache_nr < SVM_NPT_CACHE) {
		u64 *p = (u64 *)get_zeroed_page(GFP_KERNEL_ACCOUNT);

		if (!p)
			return -ENOMEM;
		svm->npt_cache[svm->npt_cache_nr++] = p;
	}
	return 0;
}

void svm_npt_drain(struct svm_vcpu *svm)
{
	while (svm->npt_cache_nr)
		free_page((unsigned long)svm->npt_cache[--svm->npt_cache_nr]);
}

static u64 *npt_cache_get(struct svm_vcpu *svm)
{
	if (WARN_ON_ONCE(!svm->npt_cache_nr))
		return NULL;
	return svm->npt_cache[--svm->npt_cache_nr];
}

/*
 * Replace the 2 MiB entry at @pte by a table of 512 4 KiB entries with the
 * same translations and rights.  No flush: whatever the TLB holds of the
 * old entry is still true.
 */
static bool npt_split(struct svm_vcpu *svm, u64 *pte)
{
	u64 *table = npt_cache_get(svm);
	u64 prot = *pte & (NPT_P | NPT_RW | NPT_US | NPT_A | NPT_D);
	u64 addr = *pte & NPT_ADDR;
	int i;

	if (!table)
		return false;
	for (i = 0; i < 512; i++)
		table[i] = (addr + i * PAGE_SIZE) | prot;
	WRITE_ONCE(*pte, __sme_set(__pa(table)) | NPT_TABLE);
	return true;
}

/*
 * Map @gfn of @slot to the 4 KiB page at host address @pa, for a @write
 * fault or not.  @huge: that page lies in a 2 MiB page backing the whole
 * 2 MiB guest frame, so map the frame at once -- unless 4 KiB entries are
 * already there (from a slot that was deleted, or that logged), in which
 * case the 4 KiB entry it is.  A slot that logs dirty pages gets 4 KiB
 * entries, writable only once written; its bit is set first.
 */
void svm_npt_map(struct svm_vcpu *svm, struct lvmm_slot *slot, u64 gfn,
		 u64 pa, bool huge, bool write)
{
	struct svm_vm *svm_vm = to_svm_vm(svm->vcpu.vm);
	bool writable = !(slot->flags & LVMM_MEMSLOT_READONLY);
	u64 *table = svm_vm->npt_root;
	unsigned long *log;
	int level;
	u64 prot;

	spin_lock(&svm_vm->mmu_lock);
	/*
	 * Logging starts and stops before the pass that protects or
	 * unprotects the slot under this lock: a stale read here is undone.
	 */
	log = READ_ONCE(slot->dirty_bitmap);
	if (log) {
		huge = false;
		writable = write;
		if (write)
			set_bit(gfn - slot->base_gfn, log);
	}
	prot = NPT_P | NPT_US | NPT_A | NPT_D | (writable ? NPT_RW : 0);
	for (level = NPT_LEVELS; level > 1; level--) {
		u64 *pte = &table[npt_index(gfn, level)];

		if (level == 2 && huge && !(*pte & NPT_P)) {
			WRITE_ONCE(*pte, __sme_set(pa & ~(LVMM_HPAGE_SIZE - 1)) |
					 prot | NPT_PS);
			goto out_unlock;
		}
		if ((*pte & NPT_PS) && huge) {
			/*
			 * A racing vCPU mapped the same 2 MiB frame, or a log
			 * that stopped left it read-only.
			 */
			if (writable)
				WRITE_ONCE(*pte, *pte | NPT_RW);
			goto out_unlock;
		}
		if ((*pte & NPT_PS) && !npt_split(svm, pte))
			goto out_unlock;
		if (!(*pte & NPT_P)) {
			u64 *new = npt_cache_get(svm);

			if (!new)
				goto out_unlock;
			WRITE_ONCE(*pte, __sme_set(__pa(new)) | NPT_TABLE);
		}
		table = npt_table(*pte);
	}
	WRITE_ONCE(table[npt_index(gfn, 1)], __sme_set(pa) | prot);
out_unlock:
	spin_unlock(&svm_vm->mmu_lock);
}

/*
 * The deepest present entry on @gfn's walk, and its level; with
 * mmu_lock held.  The entry may be non-present at the level the walk
 * stopped.
 */
static u64 *npt_walk(struct svm_vm *svm_vm, u64 gfn, int *level)
{
	u64 *table = svm_vm->npt_root, *pte = NULL;
	int l;

	for (l = NPT_LEVELS; l >= 1; l--) {
		pte = &table[npt_index(gfn, l)];
		if (!(*pte & NPT_P) || (*pte & NPT_PS) || l == 1)
			break;
		table = npt_table(*pte);
	}
	*level = l;
	return pte;
}

/* The 2 MiB frame's entry on @gfn's walk, which must reach it. */
static u64 *npt_pde(struct svm_vm *svm_vm, u64 gfn)
{
	u64 *table = svm_vm->npt_root;
	int level;

	for (level = NPT_LEVELS; level > 2; level--)
		table = npt_table(table[npt_index(gfn, level)]);
	return &table[npt_index(gfn, 2)];
}

/* The first gfn past the range that an entry at @level on @gfn covers. */
static u64 npt_next(u64 gfn, int level)
{
	return (gfn | ((1ULL << ((level - 1) * 9)) - 1)) + 1;
}

/*
 * Unmap [gfn, gfn + npages).  Empty tables stay until the VM goes.  The
 * caller flushes the guests' TLBs before it frees what was mapped.
 */
/*
 * Clear @clear and set @set in every present leaf entry that maps part of
 * [gfn, gfn + npages), skipping what is not mapped.  Callers never cut a
 * 2 MiB entry: slots that can have them are 2 MiB aligned.
 */
static void npt_change_range(struct svm_vm *svm_vm, u64 gfn, u64 npages,
			     u64 clear, u64 set)
{
	u64 end = gfn + npages;

	spin_lock(&svm_vm->mmu_lock);
	while (gfn < end) {
		int level;
		u64 *pte = npt_walk(svm_vm, gfn, &level);

		if (*pte & NPT_P)
			WRITE_ONCE(*pte, (*pte & ~clear) | set);
		gfn = npt_next(gfn, level);
		cond_resched_lock(&svm_vm->mmu_lock);
	}
	spin_unlock(&svm_vm->mmu_lock);
}

void svm_npt_zap(struct lvmm_vm *vm, u64 gfn, u64 npages)
{
	npt_change_range(to_svm_vm(vm), gfn, npages, ~0ULL, 0);
}

void svm_npt_write_protect(struct lvmm_vm *vm, u64 gfn, u64 npages)
{
	npt_change_range(to_svm_vm(vm), gfn, npages, NPT_RW, 0);
}

/* Page gfn + 64 w + i for each bit i of mask[w]; caller flushes. */
void svm_npt_write_protect_mask(struct lvmm_vm *vm, u64 gfn,
				const unsigned long *mask, u64 nwords)
{
	struct svm_vm *svm_vm = to_svm_vm(vm);
	u64 w;

	spin_lock(&svm_vm->mmu_lock);
	for (w = 0; w < nwords; w++, gfn += BITS_PER_LONG) {
		unsigned long bits = mask[w];

		while (bits) {
			int level, i = __ffs(bits);
			u64 *pte = npt_walk(svm_vm, gfn + i, &level);

			if ((*pte & (NPT_P | NPT_RW)) == (NPT_P | NPT_RW))
				WRITE_ONCE(*pte, *pte & ~NPT_RW);
			bits &= bits - 1;
		}
		if (!(w % 64))
			cond_resched_lock(&svm_vm->mmu_lock);
	}
	spin_unlock(&svm_vm->mmu_lock);
}

/*
 * @slot no longer logs: every frame it backs with a 2 MiB page gets its
 * 2 MiB entry back, and all its entries become writable unless the slot
 * is read-only (a migration logs those too, for the VMM's writes, and
 * the guest's faults meanwhile mapped 4 KiB entries).  The 4 KiB tables
 * this frees go only after no vCPU can still walk them.
 */
void svm_npt_unprotect_slot(struct lvmm_vm *vm, struct lvmm_slot *slot)
{
	bool writable = !(slot->flags & LVMM_MEMSLOT_READONLY);
	struct svm_vm *svm_vm = to_svm_vm(vm);
	unsigned long ci;
	LIST_HEAD(freed);
	struct page *p, *tmp;

	spin_lock(&svm_vm->mmu_lock);
	for (ci = 0; slot->huge_ok && ci < slot->nchunks; ci++) {
		/* Pairs with smp_store_release() in lvmm_alloc_chunk(). */
		struct page *huge = smp_load_acquire(&slot->chunks[ci].huge);
		u64 gfn = slot->base_gfn + ci * LVMM_PAGES_PER_HPAGE;
		int level;
		u64 *pte;

		if (!huge)
			continue;
		pte = npt_walk(svm_vm, gfn, &level);
		if (level != 1)
			continue;	/* 2 MiB already, or not mapped */
		/* The 2 MiB frame's entry, which points to that table. */
		pte = npt_pde(svm_vm, gfn);
		list_add(&virt_to_page(npt_table(*pte))->lru, &freed);
		WRITE_ONCE(*pte, __sme_set(page_to_phys(huge)) | NPT_P |
				 (writable ? NPT_RW : 0) | NPT_US | NPT_A |
				 NPT_D | NPT_PS);
		cond_resched_lock(&svm_vm->mmu_lock);
	}
	spin_unlock(&svm_vm->mmu_lock);
	if (writable)
		npt_change_range(svm_vm, slot->base_gfn, slot->npages, 0,
				 NPT_RW);
	lvmm_vm_flush_tlb_all(vm);
	list_for_each_entry_safe(p, tmp, &freed, lru)
		__free_page(p);
}

/*
 * Count the leaf entries present, by size.  Only 4 KiB tables are ever
 * freed before the VM goes (svm_npt_unprotect_slot() unlinks them under
 * mmu_lock), so the lock is dropped between two page directories, whose
 * tables above stay, and is held while one is read: at most 512 tables.
 */
void svm_npt_count(struct lvmm_vm *vm, u64 *n4k, u64 *n2m)
{
	struct svm_vm *svm_vm = to_svm_vm(vm);
	u64 *l4 = svm_vm->npt_root;
	int i4, i3, i2, i1;

	*n4k = 0;
	*n2m = 0;
	spin_lock(&svm_vm->mmu_lock);
	for (i4 = 0; i4 < 512; i4++) {
		u64 *l3;

		if (!(l4[i4] & NPT_P))
			continue;
		l3 = npt_table(l4[i4]);
		for (i3 = 0; i3 < 512; i3++) {
			u64 *l2;

			if ((l3[i3] & (NPT_P | NPT_PS)) != NPT_P)
				continue;	/* no 1 GiB entries */
			l2 = npt_table(l3[i3]);
			for (i2 = 0; i2 < 512; i2++) {
				u64 pde = l2[i2], *l1;

				if (!(pde & NPT_P))
					continue;
				if (pde & NPT_PS) {
					(*n2m)++;
					continue;
				}
				l1 = npt_table(pde);
				for (i1 = 0; i1 < 512; i1++)
					*n4k += l1[i1] & NPT_P;
			}
			cond_resched_lock(&svm_vm->mmu_lock);
		}
	}
	spin_unlock(&svm_vm->mmu_lock);
}
