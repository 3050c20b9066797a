// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: nested page tables for SVM.
 *
 * Four levels, long-mode format; built lazily from the memory slots on
 * nested page faults and torn down when a slot goes.  Entries are user,
 * accessed and dirty from the start, so the hardware never writes them.
 * Table pages come from a per-vCPU cache filled before vm->mmu_lock is
 * taken, so the lock is never held across an allocation.
 */
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

/*
 * Map @gfn to the 4 KiB page at host address @pa.  @huge: that page lies
 * in a 2 MiB page backing the whole 2 MiB guest frame, so map the frame
 * at once -- unless 4 KiB entries are already there (from a slot that was
 * deleted), in which case the 4 KiB entry it is.
 */
void svm_npt_map(struct svm_vcpu *svm, u64 gfn, u64 pa, bool huge,
		 bool writable)
{
	struct svm_vm *svm_vm = to_svm_vm(svm->vcpu.vm);
	u64 prot = NPT_P | NPT_US | NPT_A | NPT_D | (writable ? NPT_RW : 0);
	u64 *table = svm_vm->npt_root;
	int level;

	spin_lock(&svm_vm->mmu_lock);
	for (level = NPT_LEVELS; level > 1; level--) {
		u64 *pte = &table[npt_index(gfn, level)];

		if (level == 2 && huge && !(*pte & NPT_P)) {
			WRITE_ONCE(*pte, __sme_set(pa & ~(LVMM_HPAGE_SIZE - 1)) |
					 prot | NPT_PS);
			goto out_unlock;
		}
		if (*pte & NPT_PS) {
			/* A racing vCPU mapped the same 2 MiB frame. */
			goto out_unlock;
		}
		if (!(*pte & NPT_P)) {
			u64 *new;

			if (WARN_ON_ONCE(!svm->npt_cache_nr))
				goto out_unlock;
			new = svm->npt_cache[--svm->npt_cache_nr];
			WRITE_ONCE(*pte, __sme_set(__pa(new)) | NPT_TABLE);
		}
		table = npt_table(*pte);
	}
	WRITE_ONCE(table[npt_index(gfn, 1)], __sme_set(pa) | prot);
out_unlock:
	spin_unlock(&svm_vm->mmu_lock);
}

/*
 * Unmap [gfn, gfn + npages).  Empty tables stay until the VM goes.  The
 * caller flushes the guests' TLBs before it frees what was mapped.
 */
void svm_npt_zap(struct lvmm_vm *vm, u64 gfn, u64 npages)
{
	struct svm_vm *svm_vm = to_svm_vm(vm);
	u64 end = gfn + npages;

	spin_lock(&svm_vm->mmu_lock);
	while (gfn < end) {
		u64 *table = svm_vm->npt_root, *pte = NULL;
		int level;

		for (level = NPT_LEVELS; level >= 1; level--) {
			pte = &table[npt_index(gfn, level)];
			if (!(*pte & NPT_P) || (*pte & NPT_PS) || level == 1)
				break;
			table = npt_table(*pte);
		}
		if (*pte & NPT_P)
			WRITE_ONCE(*pte, 0);
		/* Skip the whole range this entry covers. */
		gfn = (gfn | ((1ULL << ((level - 1) * 9)) - 1)) + 1;
		cond_resched_lock(&svm_vm->mmu_lock);
	}
	spin_unlock(&svm_vm->mmu_lock);
}
