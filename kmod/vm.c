// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: VMs -- creation, names, lifetime and the VM fd.
 *
 * Ordering of locks (Documentation/locking.rst says the same):
 *
 *   vcpu->mutex
 *     vm->lock                 vCPU creation
 *     vm->slots_lock           memory slot changes
 *       slot->alloc_lock       first-touch allocation of a slot chunk
 *         arch mmu lock        (spinlock) the nested page tables
 *       slot->log_lock         (rwsem) dirty logging; also under mmap_lock
 *                              (read) and inside vm->srcu; the mmu lock
 *                              inside it
 *   cpus_read_lock()           sched-set (sched.c), around:
 *     vm->sched.lock           policy and pins, also under vcpu->mutex
 *       vm->lock               sched-set, around:
 *         lvmm_resv_admit      reservations' admission
 *           lvmm_resv_lock     (rt_mutex) boosts; also under vcpu->mutex
 *   lvmm_vms_lock              the global list and names; taken alone
 *   ioapic->lock               (spinlock) the I/O APIC; only kicks inside
 *   vm->pvclock_lock           (spinlock) the paravirtual clock; innermost
 *
 * The netlink plane (netlink.c) finds a VM under lvmm_vms_lock, takes a
 * reference, drops the lock and only then takes vm->lock.
 *
 * vm->srcu protects readers of vm->memslots (nested page faults, the mmap
 * fault handler); it may be entered under any of the mutexes above and a
 * reader may sleep, but synchronize_srcu_expedited() runs only under
 * vm->slots_lock and never inside a read-side section.  mmap() of the VM fd
 * takes vm->slots_lock under mmap_lock, so user memory is never touched
 * with vm->slots_lock held.
 *
 * Lifetime: the VM fd holds a reference and every vCPU fd holds one; the
 * last lvmm_vm_put() frees the vCPUs, the slots and the VM.
 */
#include <linux/anon_inodes.h>
#include <linux/ctype.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hashtable.h>
#include <linux/idr.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/nsproxy.h>
#include <net/net_namespace.h>
#include <linux/pseudo_fs.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/stringhash.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "lvmm.h"

#define LVMM_FS_MAGIC	0x6c766d6d	/* "lvmm" */

static DEFINE_MUTEX(lvmm_vms_lock);
static LIST_HEAD(lvmm_vms);			/* lvmm_vms_lock */
static DEFINE_IDR(lvmm_vm_ids);			/* lvmm_vms_lock */
/* Names are per network namespace: hashed on (namespace, name). */
static DEFINE_HASHTABLE(lvmm_vm_names, 10);	/* lvmm_vms_lock */
static struct vfsmount *lvmm_mnt;

/*
 * Each VM gets an inode of its own so that deleting a slot can zap exactly
 * that slot's user mappings with unmap_mapping_range(); the shared anon
 * inode would not allow that.
 */
static int lvmm_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, LVMM_FS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type lvmm_fs_type = {
	.name			= "lvmm",
	.init_fs_context	= lvmm_fs_init_fs_context,
	.kill_sb		= kill_anon_super,
};

int lvmm_vm_fs_init(void)
{
	lvmm_mnt = kern_mount(&lvmm_fs_type);
	return PTR_ERR_OR_ZERO(lvmm_mnt);
}

void lvmm_vm_fs_exit(void)
{
	kern_unmount(lvmm_mnt);
	WARN_ON_ONCE(!list_empty(&lvmm_vms));
	idr_destroy(&lvmm_vm_ids);
}

void lvmm_vm_get(struct lvmm_vm *vm)
{
	kref_get(&vm->ref);
}

/* Take the VM out of the list and free its name: vm-destroy or the end. */
static bool lvmm_vm_unlist(struct lvmm_vm *vm)
{
	bool was_listed;

	mutex_lock(&lvmm_vms_lock);
	was_listed = vm->listed;
	if (was_listed) {
		list_del(&vm->list);
		hash_del(&vm->name_node);
		idr_remove(&lvmm_vm_ids, vm->id);
		vm->listed = false;
	}
	mutex_unlock(&lvmm_vms_lock);
	return was_listed;
}

static void lvmm_vm_free(struct kref *ref)
{
	struct lvmm_vm *vm = container_of(ref, struct lvmm_vm, ref);
	int i;

	WRITE_ONCE(vm->dead, true);	/* the event says "destroyed" */
	if (lvmm_vm_unlist(vm))
		lvmm_nl_event(vm, LVMM_EVENT_DESTROYED, -1);
	/* Held for a VMM that went without taking it: the source keeps it. */
	lvmm_mig_incoming_drop(vm, -ECANCELED);

	/* First: the host's reservations must not see its vCPUs go. */
	lvmm_sched_vm_destroy(vm);
	for (i = 0; i < LVMM_MAX_VCPUS; i++)
		if (vm->vcpus[i])
			lvmm_vcpu_destroy(vm->vcpus[i]);
	lvmm_ioapic_destroy(vm);
	lvmm_vm_free_memslots(vm);
	lvmm_vm_free_snapshot(vm);
	lvmm_arch->vm_destroy(vm);
	cleanup_srcu_struct(&vm->srcu);
	mmdrop(vm->mm);
	put_net(vm->net);
	put_pid(vm->creator);
	kfree(vm);
	lvmm_hw_put();
}

void lvmm_vm_put(struct lvmm_vm *vm)
{
	kref_put(&vm->ref, lvmm_vm_free);
}

bool lvmm_name_valid(const char *name)
{
	size_t i, len = strnlen(name, LVMM_VM_NAME_LEN);

	if (len == LVMM_VM_NAME_LEN)
		return false;		/* not terminated */
	for (i = 0; i < len; i++)
		if (!isascii(name[i]) ||
		    (!isalnum(name[i]) && !strchr("._-", name[i])))
			return false;
	return true;
}

static u32 lvmm_name_hash(const struct net *net, const char *name)
{
	return full_name_hash(net, name, strlen(name));
}

/* The VM called @name in @net, listed or not yet; lvmm_vms_lock held. */
static struct lvmm_vm *lvmm_name_lookup(const struct net *net,
					const char *name)
{
	struct lvmm_vm *vm;

	lockdep_assert_held(&lvmm_vms_lock);
	hash_for_each_possible(lvmm_vm_names, vm, name_node,
			       lvmm_name_hash(net, name))
		if (net_eq(vm->net, net) && !strcmp(vm->name, name))
			return vm;
	return NULL;
}

/* Whether @name is taken in @vm's namespace now (a hint: it can change). */
bool lvmm_vm_name_taken(struct lvmm_vm *vm, const char *name)
{
	bool taken;

	mutex_lock(&lvmm_vms_lock);
	taken = lvmm_name_lookup(vm->net, name);
	mutex_unlock(&lvmm_vms_lock);
	return taken;
}

/* Give the VM an id and its name, and make it visible; -EEXIST if taken. */
static int lvmm_vm_publish(struct lvmm_vm *vm, const char *name)
{
	int id, r = 0;

	mutex_lock(&lvmm_vms_lock);
	if (name[0] && lvmm_name_lookup(vm->net, name)) {
		r = -EEXIST;
		goto out_unlock;
	}
	for (;;) {
		id = idr_alloc_cyclic(&lvmm_vm_ids, vm, 1, INT_MAX, GFP_KERNEL);
		if (id < 0) {
			r = id;
			goto out_unlock;
		}
		vm->id = id;
		if (name[0]) {
			strscpy(vm->name, name, sizeof(vm->name));
			break;
		}
		snprintf(vm->name, sizeof(vm->name), "vm%d", id);
		if (!lvmm_name_lookup(vm->net, vm->name))
			break;
		/* A user took "vmN" for themselves: try the next id. */
		idr_remove(&lvmm_vm_ids, id);
	}
	list_add_tail(&vm->list, &lvmm_vms);
	hash_add(lvmm_vm_names, &vm->name_node, lvmm_name_hash(vm->net, vm->name));
	vm->listed = true;
out_unlock:
	mutex_unlock(&lvmm_vms_lock);
	return r;
}

static long lvmm_vm_get_info(struct lvmm_vm *vm, void __user *argp)
{
	struct lvmm_vm_info info = {};

	memcpy(info.name, vm->name, sizeof(info.name));
	info.id = vm->id;
	mutex_lock(&vm->slots_lock);
	info.nr_memslots = lvmm_memslots(vm)->nr;
	info.mem_size = vm->mem_size;
	mutex_unlock(&vm->slots_lock);
	info.nr_vcpus = READ_ONCE(vm->nr_vcpus);
	return copy_to_user(argp, &info, sizeof(info)) ? -EFAULT : 0;
}

static long lvmm_vm_ioctl(struct file *filp, unsigned int cmd,
			  unsigned long arg)
{
	struct lvmm_vm *vm = filp->private_data;
	void __user *argp = (void __user *)arg;

	/* A destroyed VM keeps its fds but does nothing more. */
	if (READ_ONCE(vm->dead))
		return -EIO;
	/* A VM fd passed to another process keeps working there, as KVM's. */
	switch (cmd) {
	case LVMM_SET_MEMSLOT: {
		struct lvmm_memslot req;

		if (copy_from_user(&req, argp, sizeof(req)))
			return -EFAULT;
		return lvmm_vm_set_memslot(vm, &req);
	}
	case LVMM_SET_MEMSLOT_FLAGS: {
		struct lvmm_memslot_flags req;

		if (copy_from_user(&req, argp, sizeof(req)))
			return -EFAULT;
		return lvmm_vm_set_memslot_flags(vm, &req);
	}
	case LVMM_GET_DIRTY_LOG:
	case LVMM_CLEAR_DIRTY_LOG: {
		struct lvmm_dirty_log log;

		if (copy_from_user(&log, argp, sizeof(log)))
			return -EFAULT;
		return lvmm_vm_dirty_log(vm, &log, cmd == LVMM_CLEAR_DIRTY_LOG);
	}
	case LVMM_CREATE_VCPU:
		return lvmm_vm_create_vcpu(vm, argp);
	case LVMM_GET_VCPU:
		return lvmm_vm_get_vcpu(vm, argp);
	case LVMM_SET_VMM_STATE:
	case LVMM_GET_VMM_STATE:
		return lvmm_vm_vmm_state(vm, argp, cmd == LVMM_SET_VMM_STATE);
	case LVMM_GET_VM_INFO:
		return lvmm_vm_get_info(vm, argp);
	case LVMM_CREATE_IRQCHIP:
		return lvmm_vm_create_irqchip(vm, argp);
	case LVMM_IRQ_LINE:
		return lvmm_vm_irq_line(vm, argp);
	case LVMM_GET_IOAPIC:
	case LVMM_SET_IOAPIC:
		return lvmm_vm_ioapic_state(vm, argp, cmd == LVMM_SET_IOAPIC);
	case LVMM_INCOMING_FINISH:
		return lvmm_vm_incoming_finish(vm, argp);
	default:
		return -ENOTTY;
	}
}

static const struct vm_operations_struct lvmm_vm_vm_ops = {
	.fault = lvmm_vm_mmap_fault,
	/* Shared mappings start read-only: a first write is seen (logging). */
	.pfn_mkwrite = lvmm_vm_mmap_mkwrite,
};

static int lvmm_vm_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct lvmm_vm *vm = filp->private_data;
	u64 shift = LVMM_MEMSLOT_MMAP_SHIFT - PAGE_SHIFT;
	u64 id = vma->vm_pgoff >> shift;
	u64 first = vma->vm_pgoff & ((1ULL << shift) - 1);
	struct lvmm_slot *slot;
	int r = 0;

	/* A mapping covers part of one existing slot. */
	if (id >= LVMM_MAX_MEMSLOTS)
		return -EINVAL;
	mutex_lock(&vm->slots_lock);
	slot = lvmm_memslots(vm)->slot[id];
	if (!slot)
		r = -ENOENT;
	else if (first + vma_pages(vma) > slot->npages)
		r = -EINVAL;
	mutex_unlock(&vm->slots_lock);
	if (r)
		return r;
	/* Pages are inserted one by one at fault time (vmf_insert_mixed()). */
	vma->vm_flags |= VM_MIXEDMAP | VM_DONTEXPAND;
	vma->vm_ops = &lvmm_vm_vm_ops;
	return 0;
}

static int lvmm_vm_release(struct inode *inode, struct file *filp)
{
	lvmm_vm_put(filp->private_data);
	return 0;
}

static const struct file_operations lvmm_vm_fops = {
	.owner		= THIS_MODULE,
	.release	= lvmm_vm_release,
	.unlocked_ioctl	= lvmm_vm_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= lvmm_vm_mmap,
	.llseek		= noop_llseek,
};

static int lvmm_vm_init(struct lvmm_vm *vm)
{
	struct lvmm_memslots *slots;
	int r;

	kref_init(&vm->ref);
	INIT_LIST_HEAD(&vm->list);
	mutex_init(&vm->lock);
	spin_lock_init(&vm->pvclock_lock);
	mutex_init(&vm->slots_lock);
	init_waitqueue_head(&vm->pause_wq);
	lvmm_sched_vm_init(vm);
	vm->owner = current_euid();
	vm->creator = get_task_pid(current, PIDTYPE_TGID);
	vm->created_ns = ktime_get_real_ns();
	vm->net = get_net(current->nsproxy->net_ns);
	vm->mm = current->mm;
	mmgrab(vm->mm);

	slots = kzalloc(sizeof(*slots), GFP_KERNEL_ACCOUNT);
	if (!slots) {
		r = -ENOMEM;
		goto out_mmdrop;
	}
	RCU_INIT_POINTER(vm->memslots, slots);
	r = init_srcu_struct(&vm->srcu);
	if (r)
		goto out_free_slots;
	r = lvmm_arch->vm_init(vm);
	if (r)
		goto out_cleanup_srcu;
	return 0;

out_cleanup_srcu:
	cleanup_srcu_struct(&vm->srcu);
out_free_slots:
	kfree(slots);
out_mmdrop:
	mmdrop(vm->mm);
	put_net(vm->net);
	put_pid(vm->creator);
	return r;
}

/* The VM fd: an inode of lvmm's own, so the slots' mappings are per VM. */
static struct file *lvmm_vm_file(struct lvmm_vm *vm)
{
	struct inode *inode;
	struct file *file;

	if (!try_module_get(THIS_MODULE))
		return ERR_PTR(-ENOENT);
	inode = alloc_anon_inode(lvmm_mnt->mnt_sb);
	if (IS_ERR(inode)) {
		module_put(THIS_MODULE);
		return ERR_CAST(inode);
	}
	file = alloc_file_pseudo(inode, lvmm_mnt, "lvmm-vm", O_RDWR,
				 &lvmm_vm_fops);
	if (IS_ERR(file)) {
		iput(inode);
		module_put(THIS_MODULE);
		return file;
	}
	vm->inode = inode;
	file->private_data = vm;
	return file;
}

/* A new VM, not yet visible to anyone; lvmm_vm_put() undoes it all. */
struct lvmm_vm *lvmm_vm_new(void)
{
	struct lvmm_vm *vm;
	int r;

	r = lvmm_hw_get();
	if (r)
		return ERR_PTR(r);
	vm = kzalloc(lvmm_arch->vm_size, GFP_KERNEL_ACCOUNT);
	if (!vm) {
		lvmm_hw_put();
		return ERR_PTR(-ENOMEM);
	}
	r = lvmm_vm_init(vm);
	if (r) {
		kfree(vm);
		lvmm_hw_put();
		return ERR_PTR(r);
	}
	return vm;
}

/*
 * Name @vm (@name, or "vm<id>" if empty), list it and return an fd for
 * it.  @tell(@vm, @ctx) runs last before the fd exists: it copies what
 * the caller was given, and may still refuse (a migration's handshake).
 * Takes over the caller's reference, also on failure.
 */
int lvmm_vm_install(struct lvmm_vm *vm, const char *name,
		    int (*tell)(struct lvmm_vm *vm, void *ctx), void *ctx)
{
	struct file *file;
	int fd, r;

	r = lvmm_vm_publish(vm, name);
	if (r)
		goto out_put;
	/*
	 * Listed, so announce it now: once its fd is installed another
	 * thread may close it, and "destroyed" must not come first.
	 */
	lvmm_nl_event(vm, LVMM_EVENT_CREATED, -1);
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		r = fd;
		goto out_put;
	}
	file = lvmm_vm_file(vm);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		r = PTR_ERR(file);
		goto out_put;
	}
	/* From here on the file's ->release owns the VM. */
	r = tell(vm, ctx);
	if (r) {
		put_unused_fd(fd);
		fput(file);
		return r;
	}
	fd_install(fd, file);
	return fd;

out_put:
	lvmm_vm_put(vm);
	return r;
}

static int lvmm_create_vm_tell(struct lvmm_vm *vm, void *ctx)
{
	struct lvmm_create_vm __user *req = *(void __user **)ctx;

	return copy_to_user(req->name, vm->name, sizeof(vm->name)) ||
	       put_user(vm->id, &req->id) ? -EFAULT : 0;
}

long lvmm_dev_create_vm(void __user *argp)
{
	struct lvmm_create_vm req;
	struct lvmm_vm *vm;

	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (req.flags || req.id || memchr_inv(req.reserved, 0,
					      sizeof(req.reserved)))
		return -EINVAL;
	if (!lvmm_name_valid(req.name))
		return -EINVAL;
	vm = lvmm_vm_new();
	if (IS_ERR(vm))
		return PTR_ERR(vm);
	return lvmm_vm_install(vm, req.name, lvmm_create_vm_tell, &argp);
}

/* ---- the management plane's view --------------------------------------- */

static bool lvmm_vm_tryget(struct lvmm_vm *vm)
{
	/* The last reference may be going: the VM is on its way out. */
	return kref_get_unless_zero(&vm->ref);
}

/* The VM of @net with @id, or else @name; with a reference, or NULL. */
struct lvmm_vm *lvmm_vm_find(struct net *net, u32 id, const char *name)
{
	struct lvmm_vm *vm, *found = NULL;

	mutex_lock(&lvmm_vms_lock);
	if (id) {
		vm = idr_find(&lvmm_vm_ids, id);
		if (vm && net_eq(vm->net, net) && lvmm_vm_tryget(vm))
			found = vm;
	} else if (name) {
		vm = lvmm_name_lookup(net, name);
		if (vm && lvmm_vm_tryget(vm))
			found = vm;
	}
	mutex_unlock(&lvmm_vms_lock);
	return found;
}

/*
 * The VM of @net (NULL: of any namespace) with the lowest id >= *@id, with
 * a reference; a cursor.
 */
struct lvmm_vm *lvmm_vm_next(struct net *net, u32 *id)
{
	struct lvmm_vm *vm = NULL;
	int next;

	/* Ids are below INT_MAX: a cursor past the last one ends the walk. */
	if (*id >= INT_MAX)
		return NULL;
	next = *id;
	mutex_lock(&lvmm_vms_lock);
	while ((vm = idr_get_next(&lvmm_vm_ids, &next))) {
		if ((!net || net_eq(vm->net, net)) && lvmm_vm_tryget(vm))
			break;
		if (++next >= INT_MAX) {
			vm = NULL;
			break;
		}
	}
	mutex_unlock(&lvmm_vms_lock);
	*id = next;
	return vm;
}

int lvmm_vm_state(struct lvmm_vm *vm)
{
	int i;

	if (READ_ONCE(vm->dead))
		return LVMM_VM_STATE_DESTROYED;
	if (lvmm_vm_stopped(vm))
		return LVMM_VM_STATE_PAUSED;
	for (i = 0; i < LVMM_MAX_VCPUS; i++) {
		struct lvmm_vcpu *vcpu = READ_ONCE(vm->vcpus[i]);

		if (vcpu && READ_ONCE(vcpu->shutdown))
			return LVMM_VM_STATE_SHUTDOWN;
	}
	return READ_ONCE(vm->ran) ? LVMM_VM_STATE_RUNNING :
				    LVMM_VM_STATE_CREATED;
}

/*
 * Park every vCPU in the kernel, without the VMM's help.  They resume
 * exactly where they were: the guest only ever stops between two exits.
 */
int lvmm_vm_pause(struct lvmm_vm *vm)
{
	int r = 0;

	mutex_lock(&vm->lock);
	if (vm->dead)
		r = -ENOENT;
	else if (vm->paused)
		r = -EALREADY;
	else
		WRITE_ONCE(vm->paused, true);
	/* Under the lock: events go out in the order the changes happen. */
	if (!r)
		lvmm_nl_event(vm, LVMM_EVENT_PAUSED, -1);
	mutex_unlock(&vm->lock);
	if (r)
		return r;
	lvmm_vm_kick_all(vm, LVMM_REQ_KICK);
	wake_up_all(&vm->pause_wq);	/* throttled vCPUs park too */
	return 0;
}

int lvmm_vm_resume(struct lvmm_vm *vm)
{
	int r = 0;

	mutex_lock(&vm->lock);
	if (vm->dead)
		r = -ENOENT;
	else if (!vm->paused)
		r = -EALREADY;
	else
		WRITE_ONCE(vm->paused, false);
	/* The operator decided where the VM of an unknown outcome runs. */
	if (!r)
		vm->migrate_unknown = false;
	if (!r)
		lvmm_nl_event(vm, LVMM_EVENT_RESUMED, -1);
	mutex_unlock(&vm->lock);
	if (r)
		return r;
	wake_up_all(&vm->pause_wq);
	return 0;
}

/*
 * Destroy from outside: the vCPUs leave RUN with LVMM_EXIT_VM_DESTROYED
 * -- LVMM_EXIT_MIGRATED if @moved, a migration's handover, which holds the
 * vCPUs frozen until then -- the name is free at once, the memory goes
 * with the last fd.
 */
static int __lvmm_vm_destroy(struct lvmm_vm *vm, bool moved)
{
	mutex_lock(&vm->lock);
	if (vm->dead) {
		mutex_unlock(&vm->lock);
		return -ENOENT;
	}
	if (moved) {
		WRITE_ONCE(vm->migrated, true);
		smp_wmb();	/* pairs with lvmm_vm_gone_reason() */
	}
	WRITE_ONCE(vm->dead, true);
	/* A save held up by a stalled pipe or socket gives up. */
	if (vm->save_task)
		send_sig(SIGKILL, vm->save_task, 1);
	mutex_unlock(&vm->lock);
	lvmm_vm_kick_all(vm, LVMM_REQ_KICK);
	wake_up_all(&vm->pause_wq);
	if (lvmm_vm_unlist(vm))
		lvmm_nl_event(vm, LVMM_EVENT_DESTROYED, -1);
	/* Held, not taken yet: the source must keep its copy. */
	lvmm_mig_incoming_drop(vm, -ENOENT);
	return 0;
}

int lvmm_vm_destroy(struct lvmm_vm *vm)
{
	return __lvmm_vm_destroy(vm, false);
}

/* A migration handed @vm over: it runs elsewhere, never again here. */
void lvmm_vm_destroy_moved(struct lvmm_vm *vm)
{
	__lvmm_vm_destroy(vm, true);
}
