/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lvmm: the one place for kernel-version differences.  lvmm is written
 * against 6.1; newer kernels renamed or removed a few interfaces.
 */
#ifndef _LVMM_COMPAT_H
#define _LVMM_COMPAT_H

#include <linux/version.h>

#endif /* _LVMM_COMPAT_H */
