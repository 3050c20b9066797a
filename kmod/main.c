// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: module entry and /dev/lvmm.
 *
 * /dev/lvmm is registered last at init and removed first at exit, so no
 * file can reach a half-initialized or half-torn-down module.  A VM or vCPU
 * fd pins the module (fops->owner) until it is closed.
 */
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/fs.h>

#include "lvmm.h"

const struct lvmm_arch_ops *lvmm_arch;

static long lvmm_check_extension(unsigned long ext)
{
	switch (ext) {
	case LVMM_CAP_MAX_MEMSLOTS:
		return LVMM_MAX_MEMSLOTS;
	case LVMM_CAP_MAX_VCPUS:
		return LVMM_MAX_VCPUS;
	case LVMM_CAP_MAX_MEMSLOT_SIZE_MB:
		return LVMM_MAX_MEMSLOT_SIZE >> 20;
	case LVMM_CAP_MAX_VM_NAME:
		return LVMM_VM_NAME_LEN;
	case LVMM_CAP_READONLY_MEM:
	case LVMM_CAP_IMMEDIATE_EXIT:
	case LVMM_CAP_NMI:
	case LVMM_CAP_XSAVE:
	case LVMM_CAP_HYPERCALL:
	case LVMM_CAP_DIRTY_LOG:
	case LVMM_CAP_VCPU_STATE:
	case LVMM_CAP_IRQCHIP:
		return 1;
	case LVMM_CAP_MIGRATE:
		return 2;	/* 2: LVMM_RESTORE_HOLD, LVMM_INCOMING_FINISH */
	case LVMM_CAP_SNAPSHOT:
		return LVMM_STREAM_VERSION;
	default:
		return 0;
	}
}

static long lvmm_dev_ioctl(struct file *filp, unsigned int cmd,
			   unsigned long arg)
{
	switch (cmd) {
	case LVMM_GET_API_VERSION:
		return arg ? -EINVAL : LVMM_API_VERSION;
	case LVMM_CHECK_EXTENSION:
		return lvmm_check_extension(arg);
	case LVMM_CREATE_VM:
		return lvmm_dev_create_vm((void __user *)arg);
	case LVMM_RESTORE_VM:
		return lvmm_dev_restore_vm((void __user *)arg);
	case LVMM_GET_VCPU_MMAP_SIZE:
		return arg ? -EINVAL : 2 * PAGE_SIZE;
	default:
		return -ENOTTY;
	}
}

static const struct file_operations lvmm_dev_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= lvmm_dev_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice lvmm_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "lvmm",
	.fops	= &lvmm_dev_fops,
	.mode	= 0660,
};

static int __init lvmm_init(void)
{
	int r;

	lvmm_arch = &lvmm_svm_ops;
	r = lvmm_arch->check_support();
	if (r)
		return r;

	r = lvmm_arch->hardware_setup();
	if (r)
		return r;

	r = lvmm_hw_init();
	if (r)
		goto out_arch_exit;

	r = lvmm_vm_fs_init();
	if (r)
		goto out_hw_exit;

	r = lvmm_netlink_init();
	if (r)
		goto out_fs_exit;

	r = lvmm_watchdog_init();
	if (r)
		goto out_netlink_exit;

	r = lvmm_sched_init();
	if (r)
		goto out_watchdog_exit;

	r = misc_register(&lvmm_dev);
	if (r) {
		pr_err("lvmm: cannot register /dev/lvmm: %d\n", r);
		goto out_sched_exit;
	}
	pr_info("lvmm: loaded, %s backend, API version %d\n", lvmm_arch->name,
		LVMM_API_VERSION);
	return 0;

out_sched_exit:
	lvmm_sched_exit();
out_watchdog_exit:
	lvmm_watchdog_exit();
out_netlink_exit:
	lvmm_netlink_exit();
out_fs_exit:
	lvmm_vm_fs_exit();
out_hw_exit:
	lvmm_hw_exit();
out_arch_exit:
	lvmm_arch->hardware_unsetup();
	return r;
}

static void __exit lvmm_exit(void)
{
	misc_deregister(&lvmm_dev);
	lvmm_sched_exit();
	lvmm_watchdog_exit();
	lvmm_netlink_exit();
	lvmm_vm_fs_exit();
	lvmm_hw_exit();
	lvmm_arch->hardware_unsetup();
	pr_info("lvmm: unloaded\n");
}

module_init(lvmm_init);
module_exit(lvmm_exit);

MODULE_DESCRIPTION("lvmm: lightweight virtualization manager");
MODULE_LICENSE("GPL");
/* The release, from VERSION, in the out-of-tree and DKMS builds (Kbuild). */
#ifdef LVMM_VERSION
MODULE_VERSION(LVMM_VERSION);
#endif
