/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lvmm-mig-bench's guest (mig-guest.S) and its VMM agree on these: where
 * the guest keeps its counter and reads its orders, and its ports.
 */
#ifndef MIG_GUEST_H
#define MIG_GUEST_H

#define MIG_CODE_GPA		0x1000
#define MIG_PROGRESS_GPA	0x2000	/* u32: pages dirtied so far */
#define MIG_STOP_GPA		0x2004	/* u32: the VMM sets it: leave */
#define MIG_MODE_GPA		0x2008	/* u32: MIG_MODE_* */
#define MIG_BATCH_GPA		0x200c	/* u32: paced: pages per HLT */
#define MIG_TICKS_GPA		0x2010	/* u32: busy: TSC ticks per page */

#define MIG_MODE_IDLE		0	/* HLT: the VMM does not run it again */
#define MIG_MODE_PACED		1	/* a batch of pages per HLT */
#define MIG_MODE_BUSY		2	/* a page every TICKS, spinning */

#define MIG_PORT_READY		0x11	/* every page touched once */
#define MIG_PORT_STOPPED	0x12	/* saw the stop flag */

#ifndef __ASSEMBLY__
#include <stdint.h>

/* The code, in the bench's binary: copied to MIG_CODE_GPA. */
extern const uint8_t mig_guest_code[], mig_guest_end[];
#endif

#endif /* MIG_GUEST_H */
