/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lvmm: the one place for kernel-version differences.  lvmm is written
 * against 6.1; newer kernels renamed or removed a few interfaces.
 */
#ifndef _LVMM_COMPAT_H
#define _LVMM_COMPAT_H

#include <linux/version.h>
#include <linux/mm_types.h>
#include <asm/cpufeature.h>
#include <asm/nospec-branch.h>

/*
 * VMSCAPE: a guest can train the branch predictor against the host's user
 * space, the VMM.  Where the kernel mitigates it (X86_FEATURE_IBPB_EXIT_
 * TO_USER, from Debian's 6.1.153 on), the CPU that ran a guest is marked,
 * and issues IBPB on its next return to user mode, as KVM does after every
 * exit.  Older kernels have neither the flag nor the mark.
 */
static __always_inline void lvmm_mark_ibpb_exit_to_user(void)
{
#ifdef X86_FEATURE_IBPB_EXIT_TO_USER
	if (cpu_feature_enabled(X86_FEATURE_IBPB_EXIT_TO_USER))
		this_cpu_write(x86_ibpb_exit_to_user, true);
#endif
}

/*
 * Guest memory in the RSS of the VM's creator, so that the OOM killer
 * sees it as that process's (Documentation/api.rst, "RSS and the OOM
 * killer").
 * add_mm_counter() cannot be called from a module: its tracepoint helper
 * mm_trace_rss_stat() is not exported.  The counter is the same one;
 * only the rss_stat trace event is not emitted.  6.2 made the counters
 * percpu_counters.
 */
static inline void lvmm_mm_add_rss(struct mm_struct *mm, long pages)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)
	atomic_long_add(pages, &mm->rss_stat.count[MM_SHMEMPAGES]);
#else
	percpu_counter_add(&mm->rss_stat[MM_SHMEMPAGES], pages);
#endif
}

#endif /* _LVMM_COMPAT_H */
