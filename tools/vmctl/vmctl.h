/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vmctl: the lvmm command-line tool.  Commands live in a table, one file
 * per object, in iw's shape.
 */
#ifndef _VMCTL_H
#define _VMCTL_H

#include <stdbool.h>

/* Exit statuses */
#define VMCTL_EXIT_OK		0
#define VMCTL_EXIT_USAGE	1
#define VMCTL_EXIT_ERROR	2

struct vmctl {
	bool json;		/* -j */
	const char *prog;
};

/*
 * A handler returns 0 on success, 1 for bad arguments (vmctl prints the
 * command's usage) or a negative errno after printing what went wrong
 * and what to do.
 */
struct vmctl_cmd {
	const char *name;
	const char *args;
	const char *help;
	int (*handler)(struct vmctl *ctx, int argc, char **argv);
};

#define VMCTL_CMDS(name) const struct vmctl_cmd name[]

extern VMCTL_CMDS(vmctl_version_cmds);
extern VMCTL_CMDS(vmctl_vm_cmds);
extern VMCTL_CMDS(vmctl_sched_cmds);
extern VMCTL_CMDS(vmctl_run_cmds);
extern VMCTL_CMDS(vmctl_snapshot_cmds);
extern VMCTL_CMDS(vmctl_migrate_cmds);
extern VMCTL_CMDS(vmctl_stat_cmds);
extern VMCTL_CMDS(vmctl_monitor_cmds);

void vmctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vmctl_open_dev(void);

#endif /* _VMCTL_H */
