// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl version: the module's API version and capabilities.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lvmm.h"
#include "vmctl.h"

static const struct {
	unsigned long cap;
	const char *name;
} vmctl_caps[] = {
	{ LVMM_CAP_MAX_MEMSLOTS, "max_memslots" },
	{ LVMM_CAP_MAX_VCPUS, "max_vcpus" },
	{ LVMM_CAP_MAX_MEMSLOT_SIZE_MB, "max_memslot_size_mb" },
	{ LVMM_CAP_MAX_VM_NAME, "max_vm_name" },
	{ LVMM_CAP_READONLY_MEM, "readonly_mem" },
	{ LVMM_CAP_IMMEDIATE_EXIT, "immediate_exit" },
	{ LVMM_CAP_NMI, "nmi" },
	{ LVMM_CAP_XSAVE, "xsave" },
	{ LVMM_CAP_HYPERCALL, "hypercall" },
	{ LVMM_CAP_DIRTY_LOG, "dirty_log" },
	{ LVMM_CAP_VCPU_STATE, "vcpu_state" },
	{ LVMM_CAP_SNAPSHOT, "snapshot" },
	{ LVMM_CAP_MIGRATE, "migrate" },
};

/* Open /dev/lvmm, or say why not and what to do. */
int vmctl_open_dev(void)
{
	int fd = lvmm_open();

	if (fd == -ENOENT)
		vmctl_err("no /dev/lvmm: load the module first (insmod lvmm.ko or modprobe lvmm)");
	else if (fd == -EACCES)
		vmctl_err("cannot open /dev/lvmm: permission denied; run as root or join the device's group");
	else if (fd < 0)
		vmctl_err("cannot open /dev/lvmm: %s", strerror(-fd));
	return fd;
}

static int vmctl_version(struct vmctl *ctx, int argc, char **argv)
{
	size_t i;
	int dev, v;

	(void)argv;
	if (argc)
		return 1;
	dev = vmctl_open_dev();
	if (dev < 0)
		return dev;
	v = lvmm_api_version(dev);
	if (v < 0) {
		vmctl_err("LVMM_GET_API_VERSION: %s", strerror(-v));
		close(dev);
		return v;
	}
	if (ctx->json) {
		printf("{\"api_version\":%d,\"capabilities\":{", v);
		for (i = 0; i < sizeof(vmctl_caps) / sizeof(vmctl_caps[0]); i++)
			printf("%s\"%s\":%d", i ? "," : "", vmctl_caps[i].name,
			       lvmm_check_extension(dev, vmctl_caps[i].cap));
		printf("}}\n");
	} else {
		printf("lvmm API version %d\n", v);
		for (i = 0; i < sizeof(vmctl_caps) / sizeof(vmctl_caps[0]); i++)
			printf("  %-22s %d\n", vmctl_caps[i].name,
			       lvmm_check_extension(dev, vmctl_caps[i].cap));
	}
	close(dev);
	return 0;
}

VMCTL_CMDS(vmctl_version_cmds) = {
	{ "version", NULL, "Show the lvmm API version and capabilities.",
	  vmctl_version },
	{ NULL },
};
