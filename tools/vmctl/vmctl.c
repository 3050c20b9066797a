// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl: main, the command table and help.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmctl.h"

static const struct vmctl_cmd *const vmctl_tables[] = {
	vmctl_vm_cmds,
	vmctl_sched_cmds,
	vmctl_run_cmds,
	vmctl_snapshot_cmds,
	vmctl_migrate_cmds,
	vmctl_stat_cmds,
	vmctl_monitor_cmds,
	vmctl_version_cmds,
};

void vmctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("vmctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define for_each_cmd(c, i)						\
	for (i = 0; i < sizeof(vmctl_tables) / sizeof(vmctl_tables[0]); i++) \
		for (c = vmctl_tables[i]; c->name; c++)

static void vmctl_usage_cmd(FILE *f, const struct vmctl_cmd *c)
{
	fprintf(f, "  vmctl %s%s%s\n", c->name, c->args ? " " : "",
		c->args ? c->args : "");
	fprintf(f, "      %s\n", c->help);
}

static void vmctl_usage(FILE *f)
{
	const struct vmctl_cmd *c;
	size_t i;

	fprintf(f, "usage: vmctl [-j] COMMAND [ARGS...]\n\n"
		   "Manage lvmm virtual machines.  -j prints JSON.\n\n"
		   "commands:\n");
	for_each_cmd(c, i)
		vmctl_usage_cmd(f, c);
	fprintf(f, "\n'vmctl COMMAND --help' describes one command; "
		   "see also vmctl(8).\n");
}

static const struct vmctl_cmd *vmctl_find(const char *name)
{
	const struct vmctl_cmd *c;
	size_t i;

	for_each_cmd(c, i)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int main(int argc, char **argv)
{
	struct vmctl ctx = { .prog = argv[0] };
	const struct vmctl_cmd *c;
	int opt, r;

	while ((opt = getopt(argc, argv, "+jh")) != -1) {
		switch (opt) {
		case 'j':
			ctx.json = true;
			break;
		case 'h':
			vmctl_usage(stdout);
			return VMCTL_EXIT_OK;
		default:
			vmctl_usage(stderr);
			return VMCTL_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (!argc) {
		vmctl_usage(stderr);
		return VMCTL_EXIT_USAGE;
	}
	if (!strcmp(argv[0], "help")) {
		if (argc > 1 && (c = vmctl_find(argv[1]))) {
			vmctl_usage_cmd(stdout, c);
			return VMCTL_EXIT_OK;
		}
		vmctl_usage(stdout);
		return VMCTL_EXIT_OK;
	}
	c = vmctl_find(argv[0]);
	if (!c) {
		vmctl_err("unknown command '%s'; see 'vmctl help'", argv[0]);
		return VMCTL_EXIT_USAGE;
	}
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		vmctl_usage_cmd(stdout, c);
		return VMCTL_EXIT_OK;
	}
	r = c->handler(&ctx, argc - 1, argv + 1);
	if (r == 1) {
		fprintf(stderr, "usage:\n");
		vmctl_usage_cmd(stderr, c);
		return VMCTL_EXIT_USAGE;
	}
	return r < 0 ? VMCTL_EXIT_ERROR : VMCTL_EXIT_OK;
}
