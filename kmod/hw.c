// SPDX-License-Identifier: GPL-2.0-only
/*
 * Ownership of the CPUs' virtualization extension.
 *
 * lvmm turns virtualization on only while it has VMs, as KVM does: the
 * first VM enables it on every online CPU, the last one to go disables it.
 * Another hypervisor (Debian's kvm_amd) can then be loaded beside lvmm and
 * use the hardware whenever lvmm has no VM, and vice versa.  The backend's
 * cpu_enable() refuses with -EBUSY when the extension is already on, i.e.
 * when somebody else owns it; lvmm never takes it from under them.
 *
 * Ordering of locks: cpus_read_lock() (or the hotplug callbacks, which run
 * with the hotplug lock held for write) -> lvmm_hw_lock.
 */
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/reboot.h>
#include <linux/smp.h>

#include "lvmm.h"

static DEFINE_MUTEX(lvmm_hw_lock);
static unsigned int lvmm_hw_users;		/* lvmm_hw_lock */
static cpumask_t lvmm_hw_enabled;		/* CPUs lvmm turned on */
static atomic_t lvmm_hw_failed;
static enum cpuhp_state lvmm_hp_state;

/* Runs on the CPU itself, IRQs off. */
static void lvmm_hw_enable_cpu(void *unused)
{
	int cpu = raw_smp_processor_id();
	int r;

	if (cpumask_test_cpu(cpu, &lvmm_hw_enabled))
		return;
	r = lvmm_arch->cpu_enable();
	if (r) {
		atomic_inc(&lvmm_hw_failed);
		return;
	}
	cpumask_set_cpu(cpu, &lvmm_hw_enabled);
}

static void lvmm_hw_disable_cpu(void *unused)
{
	int cpu = raw_smp_processor_id();

	if (!cpumask_test_cpu(cpu, &lvmm_hw_enabled))
		return;
	lvmm_arch->cpu_disable();
	cpumask_clear_cpu(cpu, &lvmm_hw_enabled);
}

/* Take a reference on the hardware: the first one turns it on everywhere. */
int lvmm_hw_get(void)
{
	int r = 0;

	cpus_read_lock();
	mutex_lock(&lvmm_hw_lock);
	if (lvmm_hw_users++ == 0) {
		atomic_set(&lvmm_hw_failed, 0);
		on_each_cpu(lvmm_hw_enable_cpu, NULL, 1);
		if (atomic_read(&lvmm_hw_failed)) {
			on_each_cpu(lvmm_hw_disable_cpu, NULL, 1);
			lvmm_hw_users = 0;
			pr_warn_ratelimited("lvmm: virtualization is in use by another hypervisor (EFER.SVME or VMXE already set); close its VMs or unload it, then retry\n");
			r = -EBUSY;
		} else {
			lvmm_watchdog_start();
		}
	}
	mutex_unlock(&lvmm_hw_lock);
	cpus_read_unlock();
	return r;
}

void lvmm_hw_put(void)
{
	cpus_read_lock();
	mutex_lock(&lvmm_hw_lock);
	if (!WARN_ON_ONCE(!lvmm_hw_users) && --lvmm_hw_users == 0) {
		lvmm_watchdog_stop();
		on_each_cpu(lvmm_hw_disable_cpu, NULL, 1);
	}
	mutex_unlock(&lvmm_hw_lock);
	cpus_read_unlock();
}

static int lvmm_hw_online(unsigned int cpu)
{
	int r = 0;

	mutex_lock(&lvmm_hw_lock);
	if (lvmm_hw_users) {
		atomic_set(&lvmm_hw_failed, 0);
		local_irq_disable();
		lvmm_hw_enable_cpu(NULL);
		local_irq_enable();
		if (atomic_read(&lvmm_hw_failed)) {
			pr_warn("lvmm: cannot enable virtualization on CPU %u: in use by another hypervisor\n",
				cpu);
			r = -EBUSY;
		} else {
			lvmm_watchdog_cpu_online();
		}
	}
	mutex_unlock(&lvmm_hw_lock);
	return r;
}

static int lvmm_hw_offline(unsigned int cpu)
{
	mutex_lock(&lvmm_hw_lock);
	local_irq_disable();
	lvmm_hw_disable_cpu(NULL);
	local_irq_enable();
	mutex_unlock(&lvmm_hw_lock);
	return 0;
}

/* Set by the reboot notifier; read by the backends before each entry. */
bool lvmm_rebooting;

/* A normal reboot or kexec leaves the extension off, as the kernel expects. */
static int lvmm_hw_reboot(struct notifier_block *nb, unsigned long code,
			  void *unused)
{
	/*
	 * vCPUs may still be running.  Each checks the flag with IRQs off
	 * before it enters, and the IPI below reaches a CPU only outside
	 * guest mode with GIF set: a vCPU either sees the flag and gives up
	 * with -EIO, or is in guest mode and leaves it before SVM goes off.
	 * The world switch's exception table covers the rest (an emergency
	 * restart from NMI context).
	 */
	WRITE_ONCE(lvmm_rebooting, true);
	on_each_cpu(lvmm_hw_disable_cpu, NULL, 1);
	return NOTIFY_OK;
}

static struct notifier_block lvmm_reboot_nb = {
	.notifier_call = lvmm_hw_reboot,
	.priority = 0,
};

int lvmm_hw_init(void)
{
	int r;

	/*
	 * The hotplug callbacks run on the CPU coming up or going down, so
	 * they touch only that CPU's state.  _nocalls: nothing is enabled yet.
	 */
	r = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN, "lvmm:online",
				      lvmm_hw_online, lvmm_hw_offline);
	if (r < 0)
		return r;
	lvmm_hp_state = r;
	register_reboot_notifier(&lvmm_reboot_nb);
	return 0;
}

void lvmm_hw_exit(void)
{
	unregister_reboot_notifier(&lvmm_reboot_nb);
	cpuhp_remove_state_nocalls(lvmm_hp_state);
	WARN_ON_ONCE(lvmm_hw_users);
	WARN_ON_ONCE(!cpumask_empty(&lvmm_hw_enabled));
}
