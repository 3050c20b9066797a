// SPDX-License-Identifier: GPL-2.0
/*
 * liblvmm: thin wrappers around the lvmm ioctls.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "lvmm.h"

/* Turn an ioctl()-style return into a value or -errno. */
static int ret_or_errno(long ret)
{
	return ret < 0 ? -errno : (int)ret;
}

int lvmm_open(void)
{
	return ret_or_errno(open(LVMM_DEV_PATH, O_RDWR | O_CLOEXEC));
}

int lvmm_api_version(int dev_fd)
{
	return ret_or_errno(ioctl(dev_fd, LVMM_GET_API_VERSION, 0));
}

int lvmm_check_extension(int dev_fd, unsigned long cap)
{
	return ret_or_errno(ioctl(dev_fd, LVMM_CHECK_EXTENSION, cap));
}

int lvmm_vcpu_mmap_size(int dev_fd)
{
	return ret_or_errno(ioctl(dev_fd, LVMM_GET_VCPU_MMAP_SIZE, 0));
}

int lvmm_vm_create_raw(int dev_fd, struct lvmm_create_vm *args)
{
	return ret_or_errno(ioctl(dev_fd, LVMM_CREATE_VM, args));
}

/* Copy @name, if any, into a request's name field @dst. */
static int name_copy(char dst[LVMM_VM_NAME_LEN], const char *name)
{
	if (!name)
		return 0;
	if (strlen(name) >= LVMM_VM_NAME_LEN)
		return -ENAMETOOLONG;
	strcpy(dst, name);
	return 0;
}

/* Fill @vm for the VM fd @fd the kernel answered with @id and @name. */
static void vm_handle_init(struct lvmm_vm_handle *vm, int fd, __u32 id,
			   const char name[LVMM_VM_NAME_LEN], int vcpu_mmap_size)
{
	vm->fd = fd;
	vm->id = id;
	memcpy(vm->name, name, sizeof(vm->name));
	vm->name[sizeof(vm->name) - 1] = '\0';
	vm->vcpu_mmap_size = vcpu_mmap_size;
}

int lvmm_vm_create(int dev_fd, const char *name, struct lvmm_vm_handle *vm)
{
	struct lvmm_create_vm args;
	int ret, size, fd;

	memset(&args, 0, sizeof(args));
	ret = name_copy(args.name, name);
	if (ret)
		return ret;

	size = lvmm_vcpu_mmap_size(dev_fd);
	if (size < 0)
		return size;

	fd = lvmm_vm_create_raw(dev_fd, &args);
	if (fd < 0)
		return fd;

	vm_handle_init(vm, fd, args.id, args.name, size);
	return 0;
}

int lvmm_vm_restore_raw(int dev_fd, struct lvmm_restore_vm *args)
{
	return ret_or_errno(ioctl(dev_fd, LVMM_RESTORE_VM, args));
}

int lvmm_vm_restore(int dev_fd, int fd, const char *name,
		    struct lvmm_vm_handle *vm, __u32 *nr_vcpus)
{
	return lvmm_vm_restore_flags(dev_fd, fd, name, 0, vm, nr_vcpus);
}

int lvmm_vm_restore_flags(int dev_fd, int fd, const char *name, __u32 flags,
			  struct lvmm_vm_handle *vm, __u32 *nr_vcpus)
{
	struct lvmm_restore_vm args;
	int ret, size, vm_fd;

	memset(&args, 0, sizeof(args));
	args.fd = fd;
	args.flags = flags;
	ret = name_copy(args.name, name);
	if (ret)
		return ret;

	size = lvmm_vcpu_mmap_size(dev_fd);
	if (size < 0)
		return size;

	vm_fd = lvmm_vm_restore_raw(dev_fd, &args);
	if (vm_fd < 0)
		return vm_fd;

	vm_handle_init(vm, vm_fd, args.id, args.name, size);
	if (nr_vcpus)
		*nr_vcpus = args.nr_vcpus;
	return 0;
}

int lvmm_vm_close(struct lvmm_vm_handle *vm)
{
	int ret = ret_or_errno(close(vm->fd));

	vm->fd = -1;
	return ret;
}

int lvmm_vm_info(const struct lvmm_vm_handle *vm, struct lvmm_vm_info *info)
{
	return ret_or_errno(ioctl(vm->fd, LVMM_GET_VM_INFO, info));
}

int lvmm_set_memslot_raw(const struct lvmm_vm_handle *vm,
			 const struct lvmm_memslot *ms)
{
	return ret_or_errno(ioctl(vm->fd, LVMM_SET_MEMSLOT, ms));
}

int lvmm_set_memslot(const struct lvmm_vm_handle *vm, __u32 slot, __u32 flags,
		     __u64 gpa, __u64 size)
{
	struct lvmm_memslot ms = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.size = size,
	};

	return lvmm_set_memslot_raw(vm, &ms);
}

int lvmm_delete_memslot(const struct lvmm_vm_handle *vm, __u32 slot)
{
	return lvmm_set_memslot(vm, slot, 0, 0, 0);
}

int lvmm_memslot_map(const struct lvmm_vm_handle *vm, __u32 slot, size_t size,
		     int prot, void **addr)
{
	void *p = mmap(NULL, size, prot, MAP_SHARED, vm->fd,
		       LVMM_MEMSLOT_MMAP_OFFSET(slot));

	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

int lvmm_memslot_unmap(void *addr, size_t size)
{
	return ret_or_errno(munmap(addr, size));
}

int lvmm_set_memslot_flags(const struct lvmm_vm_handle *vm, __u32 slot,
			   __u32 flags)
{
	struct lvmm_memslot_flags mf = { .slot = slot, .flags = flags };

	return ret_or_errno(ioctl(vm->fd, LVMM_SET_MEMSLOT_FLAGS, &mf));
}

int lvmm_create_irqchip(const struct lvmm_vm_handle *vm)
{
	struct lvmm_irqchip chip = {};

	return ret_or_errno(ioctl(vm->fd, LVMM_CREATE_IRQCHIP, &chip));
}

int lvmm_irq_line(const struct lvmm_vm_handle *vm, __u32 irq, __u32 level)
{
	struct lvmm_irq_level l = { .irq = irq, .level = level };

	return ret_or_errno(ioctl(vm->fd, LVMM_IRQ_LINE, &l));
}

int lvmm_get_ioapic(const struct lvmm_vm_handle *vm,
		    struct lvmm_ioapic_state *st)
{
	return ret_or_errno(ioctl(vm->fd, LVMM_GET_IOAPIC, st));
}

int lvmm_set_ioapic(const struct lvmm_vm_handle *vm,
		    const struct lvmm_ioapic_state *st)
{
	return ret_or_errno(ioctl(vm->fd, LVMM_SET_IOAPIC, st));
}

/* LVMM_GET_DIRTY_LOG or LVMM_CLEAR_DIRTY_LOG: they take the same struct. */
static int dirty_log_ioctl(const struct lvmm_vm_handle *vm, unsigned long req,
			   __u32 slot, __u64 first_page, __u64 num_pages,
			   const __u64 *bitmap)
{
	struct lvmm_dirty_log log = {
		.slot = slot,
		.first_page = first_page,
		.num_pages = num_pages,
		.bitmap = (__u64)(unsigned long)bitmap,
	};

	return ret_or_errno(ioctl(vm->fd, req, &log));
}

int lvmm_get_dirty_log(const struct lvmm_vm_handle *vm, __u32 slot,
		       __u64 first_page, __u64 num_pages, __u64 *bitmap)
{
	return dirty_log_ioctl(vm, LVMM_GET_DIRTY_LOG, slot, first_page,
			       num_pages, bitmap);
}

int lvmm_clear_dirty_log(const struct lvmm_vm_handle *vm, __u32 slot,
			 __u64 first_page, __u64 num_pages,
			 const __u64 *bitmap)
{
	return dirty_log_ioctl(vm, LVMM_CLEAR_DIRTY_LOG, slot, first_page,
			       num_pages, bitmap);
}

int lvmm_set_vmm_state(const struct lvmm_vm_handle *vm, const void *data,
		       __u32 size)
{
	struct lvmm_vmm_state st = {
		.data = (__u64)(unsigned long)data,
		.size = size,
	};

	return ret_or_errno(ioctl(vm->fd, LVMM_SET_VMM_STATE, &st));
}

int lvmm_get_vmm_state(const struct lvmm_vm_handle *vm, void *data,
		       __u32 *size)
{
	struct lvmm_vmm_state st = {
		.data = (__u64)(unsigned long)data,
		.size = *size,
	};
	int ret;

	ret = ret_or_errno(ioctl(vm->fd, LVMM_GET_VMM_STATE, &st));
	/* The kernel writes the state's length back, ENOSPC included. */
	if (!ret || ret == -ENOSPC)
		*size = st.size;
	return ret;
}

int lvmm_vm_incoming_finish(const struct lvmm_vm_handle *vm, int error)
{
	struct lvmm_incoming_finish req = { .error = error };

	return ret_or_errno(ioctl(vm->fd, LVMM_INCOMING_FINISH, &req));
}

int lvmm_vcpu_create_raw(const struct lvmm_vm_handle *vm,
			 const struct lvmm_create_vcpu *args)
{
	return ret_or_errno(ioctl(vm->fd, LVMM_CREATE_VCPU, args));
}

/* Map the run structure of vCPU fd @fd; on failure @fd is closed. */
static int vcpu_handle_init(const struct lvmm_vm_handle *vm, int fd, __u32 id,
			    struct lvmm_vcpu_handle *vcpu)
{
	void *run;
	int ret;

	run = mmap(NULL, vm->vcpu_mmap_size, PROT_READ | PROT_WRITE,
		   MAP_SHARED, fd, 0);
	if (run == MAP_FAILED) {
		ret = -errno;
		close(fd);
		return ret;
	}

	vcpu->fd = fd;
	vcpu->id = id;
	vcpu->run = run;
	vcpu->run_size = vm->vcpu_mmap_size;
	return 0;
}

int lvmm_vcpu_create(const struct lvmm_vm_handle *vm, __u32 id,
		     struct lvmm_vcpu_handle *vcpu)
{
	struct lvmm_create_vcpu args = { .id = id };
	int fd;

	fd = lvmm_vcpu_create_raw(vm, &args);
	if (fd < 0)
		return fd;
	return vcpu_handle_init(vm, fd, id, vcpu);
}

int lvmm_vcpu_get_raw(const struct lvmm_vm_handle *vm,
		      const struct lvmm_create_vcpu *args)
{
	return ret_or_errno(ioctl(vm->fd, LVMM_GET_VCPU, args));
}

int lvmm_vcpu_get(const struct lvmm_vm_handle *vm, __u32 id,
		  struct lvmm_vcpu_handle *vcpu)
{
	struct lvmm_create_vcpu args = { .id = id };
	int fd;

	fd = lvmm_vcpu_get_raw(vm, &args);
	if (fd < 0)
		return fd;
	return vcpu_handle_init(vm, fd, id, vcpu);
}

int lvmm_vcpu_close(struct lvmm_vcpu_handle *vcpu)
{
	int ret = 0;

	if (vcpu->run && munmap(vcpu->run, vcpu->run_size))
		ret = -errno;
	vcpu->run = NULL;
	if (close(vcpu->fd) && !ret)
		ret = -errno;
	vcpu->fd = -1;
	return ret;
}

int lvmm_run(struct lvmm_vcpu_handle *vcpu)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_RUN, 0));
}

void *lvmm_run_io_data(const struct lvmm_vcpu_handle *vcpu)
{
	return (char *)vcpu->run + vcpu->run->io.data_offset;
}

int lvmm_get_regs(const struct lvmm_vcpu_handle *vcpu, struct lvmm_regs *regs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_REGS, regs));
}

int lvmm_set_regs(const struct lvmm_vcpu_handle *vcpu,
		  const struct lvmm_regs *regs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_REGS, regs));
}

int lvmm_get_sregs(const struct lvmm_vcpu_handle *vcpu,
		   struct lvmm_sregs *sregs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_SREGS, sregs));
}

int lvmm_set_sregs(const struct lvmm_vcpu_handle *vcpu,
		   const struct lvmm_sregs *sregs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_SREGS, sregs));
}

int lvmm_get_xsave(const struct lvmm_vcpu_handle *vcpu,
		   struct lvmm_xsave *xsave)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_XSAVE, xsave));
}

int lvmm_set_xsave(const struct lvmm_vcpu_handle *vcpu,
		   const struct lvmm_xsave *xsave)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_XSAVE, xsave));
}

int lvmm_get_msrs(const struct lvmm_vcpu_handle *vcpu, struct lvmm_msrs *msrs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_MSRS, msrs));
}

int lvmm_set_msrs(const struct lvmm_vcpu_handle *vcpu,
		  const struct lvmm_msrs *msrs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_MSRS, msrs));
}

/* struct lvmm_msrs with room for exactly one entry, on the stack. */
struct lvmm_one_msr {
	struct lvmm_msrs hdr;
	struct lvmm_msr_entry entry;
};

int lvmm_get_msr(const struct lvmm_vcpu_handle *vcpu, __u32 index,
		 __u64 *data)
{
	struct lvmm_one_msr m;
	int ret;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.entry.index = index;
	ret = lvmm_get_msrs(vcpu, &m.hdr);
	if (ret < 0)
		return ret;
	if (ret != 1)
		return -EOPNOTSUPP;
	*data = m.entry.data;
	return 0;
}

int lvmm_set_msr(const struct lvmm_vcpu_handle *vcpu, __u32 index, __u64 data)
{
	struct lvmm_one_msr m;
	int ret;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.entry.index = index;
	m.entry.data = data;
	ret = lvmm_set_msrs(vcpu, &m.hdr);
	if (ret < 0)
		return ret;
	return ret == 1 ? 0 : -EOPNOTSUPP;
}

struct lvmm_msrs *lvmm_msrs_alloc(__u32 n)
{
	struct lvmm_msrs *msrs;

	msrs = calloc(1, sizeof(*msrs) + n * sizeof(msrs->entries[0]));
	if (msrs)
		msrs->nmsrs = n;
	return msrs;
}

struct lvmm_cpuid *lvmm_cpuid_alloc(__u32 n)
{
	struct lvmm_cpuid *cpuid;

	cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(cpuid->entries[0]));
	if (cpuid)
		cpuid->nent = n;
	return cpuid;
}

int lvmm_get_cpuid(const struct lvmm_vcpu_handle *vcpu,
		   struct lvmm_cpuid *cpuid)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_CPUID, cpuid));
}

int lvmm_set_cpuid(const struct lvmm_vcpu_handle *vcpu,
		   const struct lvmm_cpuid *cpuid)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_CPUID, cpuid));
}

int lvmm_interrupt(const struct lvmm_vcpu_handle *vcpu, __u32 vector)
{
	struct lvmm_interrupt irq = { .vector = vector };

	return ret_or_errno(ioctl(vcpu->fd, LVMM_INTERRUPT, &irq));
}

int lvmm_nmi(const struct lvmm_vcpu_handle *vcpu)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_NMI, 0));
}

int lvmm_get_vcpu_events(const struct lvmm_vcpu_handle *vcpu,
			 struct lvmm_vcpu_events *events)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_VCPU_EVENTS, events));
}

int lvmm_set_vcpu_events(const struct lvmm_vcpu_handle *vcpu,
			 const struct lvmm_vcpu_events *events)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_VCPU_EVENTS, events));
}

int lvmm_get_debugregs(const struct lvmm_vcpu_handle *vcpu,
		       struct lvmm_debugregs *dregs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_DEBUGREGS, dregs));
}

int lvmm_set_debugregs(const struct lvmm_vcpu_handle *vcpu,
		       const struct lvmm_debugregs *dregs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_DEBUGREGS, dregs));
}

int lvmm_get_xcrs(const struct lvmm_vcpu_handle *vcpu, struct lvmm_xcrs *xcrs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_XCRS, xcrs));
}

int lvmm_set_xcrs(const struct lvmm_vcpu_handle *vcpu,
		  const struct lvmm_xcrs *xcrs)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_XCRS, xcrs));
}

int lvmm_get_lapic(const struct lvmm_vcpu_handle *vcpu,
		   struct lvmm_lapic_state *lapic)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_GET_LAPIC, lapic));
}

int lvmm_set_lapic(const struct lvmm_vcpu_handle *vcpu,
		   const struct lvmm_lapic_state *lapic)
{
	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_LAPIC, lapic));
}

int lvmm_get_mp_state(const struct lvmm_vcpu_handle *vcpu, __u32 *state)
{
	struct lvmm_mp_state mp = {};
	int r = ret_or_errno(ioctl(vcpu->fd, LVMM_GET_MP_STATE, &mp));

	if (!r)
		*state = mp.state;
	return r;
}

int lvmm_set_mp_state(const struct lvmm_vcpu_handle *vcpu, __u32 state)
{
	struct lvmm_mp_state mp = { .state = state };

	return ret_or_errno(ioctl(vcpu->fd, LVMM_SET_MP_STATE, &mp));
}

const char *lvmm_exit_reason_name(__u32 reason)
{
	static const char *const names[] = {
		[LVMM_EXIT_UNKNOWN] = "UNKNOWN",
		[LVMM_EXIT_IO] = "IO",
		[LVMM_EXIT_MMIO] = "MMIO",
		[LVMM_EXIT_HLT] = "HLT",
		[LVMM_EXIT_HYPERCALL] = "HYPERCALL",
		[LVMM_EXIT_SHUTDOWN] = "SHUTDOWN",
		[LVMM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
		[LVMM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
		[LVMM_EXIT_INTR] = "INTR",
		[LVMM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
		[LVMM_EXIT_VM_DESTROYED] = "VM_DESTROYED",
		[LVMM_EXIT_MIGRATED] = "MIGRATED",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "(bad)";
}

void lvmm_seg_flat(struct lvmm_segment *s, __u16 selector, __u8 type,
		   bool l, bool db)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = selector;
	s->type = type;
	s->s = 1;
	s->present = 1;
	s->l = l;
	s->db = db;
	s->g = 1;
}
