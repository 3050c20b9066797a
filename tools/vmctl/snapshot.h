/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vmctl: snapshot files, the VM stream of uapi/linux/lvmm.h written by
 * vm-save (Documentation/migration.rst).  snapshot.c reads them for
 * snapshot-info, and the header for vmctl run --restore.
 */
#ifndef _VMCTL_SNAPSHOT_H
#define _VMCTL_SNAPSHOT_H

#include <stdint.h>
#include <linux/lvmm.h>

/* The header record: the VM's name, vCPU count and memory slots. */
struct vmctl_snap_header {
	struct lvmm_stream_header h;
	struct lvmm_stream_slot *slots;		/* h.nr_slots, malloc'd */
};

/*
 * Read and check the header record at the start of regular file @fd
 * with pread(), so that its position stays at 0 for LVMM_RESTORE_VM.  On
 * failure, say what is wrong with @path and what to do, and return a
 * negative errno: -EBADMSG (not a snapshot, or a corrupt or truncated
 * one), -EPROTONOSUPPORT (a newer format than vmctl reads) or an I/O
 * error.
 */
int vmctl_snap_header_read(int fd, const char *path,
			   struct vmctl_snap_header *sh);
void vmctl_snap_header_free(struct vmctl_snap_header *sh);

/* "x87, SSE, AVX": the XSAVE features of @xcr0, in @buf. */
const char *vmctl_xsave_names(char *buf, size_t len, uint64_t xcr0);

#endif /* _VMCTL_SNAPSHOT_H */
