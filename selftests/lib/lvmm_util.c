// SPDX-License-Identifier: GPL-2.0
/*
 * The lvmm selftest library: VMs, memory slots and vCPUs with asserting
 * wrappers over liblvmm, in the shape of KVM's lib/kvm_util.c.
 */
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "lvmm_util.h"

bool lvmm_dev_present(void)
{
	int fd = lvmm_open();

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int open_lvmm_dev(void)
{
	int fd = lvmm_open();

	TEST_ASSERT(fd >= 0, "open(%s) failed: %s", LVMM_DEV_PATH,
		    strerror(-fd));
	return fd;
}

int lvmm_cap(unsigned long cap)
{
	int fd = lvmm_open(), ret;

	if (fd < 0)
		return 0;
	ret = lvmm_check_extension(fd, cap);
	close(fd);
	return ret < 0 ? 0 : ret;
}

struct lvmm_vm *vm_create_bare(const char *name)
{
	struct lvmm_vm *vm = calloc(1, sizeof(*vm));
	int ret;

	TEST_ASSERT(vm, "out of memory");
	vm->dev_fd = open_lvmm_dev();
	ret = lvmm_vm_create(vm->dev_fd, name, &vm->h);
	TEST_ASSERT(!ret, "LVMM_CREATE_VM(\"%s\") failed: %s",
		    name ? name : "", strerror(-ret));
	vm->fd = vm->h.fd;
	return vm;
}

int __vm_set_memslot(struct lvmm_vm *vm, u32 slot, u32 flags, u64 gpa,
		     u64 size, const u64 *reserved)
{
	struct lvmm_memslot ms = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.size = size,
	};

	if (reserved)
		memcpy(ms.reserved, reserved, sizeof(ms.reserved));
	return lvmm_set_memslot_raw(&vm->h, &ms);
}

void *vm_add_memslot(struct lvmm_vm *vm, u32 slot, u32 flags, u64 gpa,
		     u64 size)
{
	int ret;

	TEST_ASSERT(slot < NR_MEMSLOTS && !vm->slots[slot].used,
		    "slot %u in use or out of range", slot);
	ret = __vm_set_memslot(vm, slot, flags, gpa, size, NULL);
	TEST_ASSERT(!ret, "LVMM_SET_MEMSLOT(slot %u, gpa 0x%llx, size 0x%llx, flags 0x%x) failed: %s",
		    slot, (unsigned long long)gpa, (unsigned long long)size,
		    flags, strerror(-ret));
	return vm_map_slot(vm, slot, flags, gpa, size);
}

void vm_delete_memslot(struct lvmm_vm *vm, u32 slot)
{
	struct userspace_mem_region *r = &vm->slots[slot];
	int ret;

	TEST_ASSERT(r->used, "slot %u not in use", slot);
	ret = lvmm_delete_memslot(&vm->h, slot);
	TEST_ASSERT(!ret, "deleting slot %u failed: %s", slot, strerror(-ret));
	munmap(r->hva, r->size);
	r->used = false;
}

int __vm_set_memslot_flags(struct lvmm_vm *vm, u32 slot, u32 flags)
{
	return lvmm_set_memslot_flags(&vm->h, slot, flags);
}

void vm_set_memslot_flags(struct lvmm_vm *vm, u32 slot, u32 flags)
{
	int ret = __vm_set_memslot_flags(vm, slot, flags);

	TEST_ASSERT(!ret, "LVMM_SET_MEMSLOT_FLAGS(slot %u, flags 0x%x) failed: %s",
		    slot, flags, strerror(-ret));
	if (slot < NR_MEMSLOTS && vm->slots[slot].used)
		vm->slots[slot].flags = flags;
}

int __vm_get_dirty_log(struct lvmm_vm *vm, u32 slot, u64 first_page,
		       u64 num_pages, u64 *bitmap)
{
	return lvmm_get_dirty_log(&vm->h, slot, first_page, num_pages, bitmap);
}

void vm_get_dirty_log(struct lvmm_vm *vm, u32 slot, u64 first_page,
		      u64 num_pages, u64 *bitmap)
{
	int ret = __vm_get_dirty_log(vm, slot, first_page, num_pages, bitmap);

	TEST_ASSERT(!ret, "LVMM_GET_DIRTY_LOG(slot %u, pages %llu + %llu) failed: %s",
		    slot, (unsigned long long)first_page,
		    (unsigned long long)num_pages, strerror(-ret));
}

int __vm_clear_dirty_log(struct lvmm_vm *vm, u32 slot, u64 first_page,
			 u64 num_pages, const u64 *bitmap)
{
	return lvmm_clear_dirty_log(&vm->h, slot, first_page, num_pages,
				    bitmap);
}

void vm_clear_dirty_log(struct lvmm_vm *vm, u32 slot, u64 first_page,
			u64 num_pages, const u64 *bitmap)
{
	int ret = __vm_clear_dirty_log(vm, slot, first_page, num_pages, bitmap);

	TEST_ASSERT(!ret, "LVMM_CLEAR_DIRTY_LOG(slot %u, pages %llu + %llu) failed: %s",
		    slot, (unsigned long long)first_page,
		    (unsigned long long)num_pages, strerror(-ret));
}

void *addr_gpa2hva(struct lvmm_vm *vm, u64 gpa)
{
	for (int i = 0; i < NR_MEMSLOTS; i++) {
		struct userspace_mem_region *r = &vm->slots[i];

		if (r->used && gpa >= r->gpa && gpa - r->gpa < r->size)
			return (char *)r->hva + (gpa - r->gpa);
	}
	TEST_FAIL("No memslot holds GPA 0x%llx", (unsigned long long)gpa);
}

u64 vm_alloc(struct lvmm_vm *vm, u64 size)
{
	u64 gpa = vm->heap_next;

	size = ALIGN_UP(size, SZ_4K);
	TEST_ASSERT(vm->long_mode && gpa + size <= vm->heap_end,
		    "guest heap exhausted");
	vm->heap_next += size;
	memset(addr_gpa2hva(vm, gpa), 0, size);
	return gpa;
}

static int image_end_cb(struct dl_phdr_info *info, size_t sz, void *data)
{
	u64 *end = data;

	(void)sz;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		u64 e = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;

		if (ph->p_type == PT_LOAD && e > *end)
			*end = e;
	}
	return 1;	/* the executable comes first; stop there */
}

struct copy_ctx {
	struct lvmm_vm *vm;
};

static int image_copy_cb(struct dl_phdr_info *info, size_t sz, void *data)
{
	struct copy_ctx *ctx = data;

	(void)sz;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		u64 va = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD)
			continue;
		TEST_ASSERT(va >= IMAGE_GPA,
			    "test not linked at 0x%llx: segment at 0x%llx",
			    IMAGE_GPA, (unsigned long long)va);
		memcpy(addr_gpa2hva(ctx->vm, va), (void *)va, ph->p_memsz);
	}
	return 1;
}

static void write_gdt(struct lvmm_vm *vm)
{
	u64 *gdt = addr_gpa2hva(vm, GDT_GPA);
	u64 tss = TSS_GPA, limit = 0x67;

	gdt[GDT_CODE64 / 8] = 0x00af9b000000ffffULL;
	gdt[GDT_DATA / 8] = 0x00cf93000000ffffULL;
	gdt[GDT_CODE32 / 8] = 0x00cf9b000000ffffULL;
	/* 64-bit TSS, busy: type 0xb, present. */
	gdt[GDT_TSS / 8] = (limit & 0xffff) | ((tss & 0xffffff) << 16) |
			   (0x8bULL << 40) | (((limit >> 16) & 0xf) << 48) |
			   (((tss >> 24) & 0xff) << 56);
	gdt[GDT_TSS / 8 + 1] = tss >> 32;
}

/* Identity-map the low 4 GiB with 2 MiB pages. */
static void write_page_tables(struct lvmm_vm *vm)
{
	u64 *pml4 = addr_gpa2hva(vm, PML4_GPA);
	u64 *pdpt = addr_gpa2hva(vm, PML4_GPA + SZ_4K);

	pml4[0] = (PML4_GPA + SZ_4K) | 3;
	for (u64 i = 0; i < 4; i++) {
		u64 pd_gpa = PML4_GPA + (2 + i) * SZ_4K;
		u64 *pd = addr_gpa2hva(vm, pd_gpa);

		pdpt[i] = pd_gpa | 3;
		for (u64 j = 0; j < 512; j++)
			pd[j] = (i * SZ_1G + j * SZ_2M) | 0x83;	/* P RW PS */
	}
}

struct lvmm_vm *vm_create(void)
{
	struct lvmm_vm *vm = vm_create_bare(NULL);
	struct copy_ctx ctx = { .vm = vm };
	u64 end = 0, heap;

	dl_iterate_phdr(image_end_cb, &end);
	heap = ALIGN_UP(end, SZ_2M);
	vm_add_memslot(vm, 0, 0, 0, heap + HEAP_SIZE);
	vm->heap_next = heap;
	vm->heap_end = heap + HEAP_SIZE;
	vm->long_mode = true;

	dl_iterate_phdr(image_copy_cb, &ctx);
	write_gdt(vm);
	write_page_tables(vm);
	return vm;
}

struct lvmm_vcpu *vm_vcpu_add_raw(struct lvmm_vm *vm, u32 id)
{
	struct lvmm_vcpu *vcpu = calloc(1, sizeof(*vcpu));
	int ret;

	TEST_ASSERT(vcpu && id < MAX_VCPUS && !vm->vcpus[id],
		    "bad vCPU id %u", id);
	ret = lvmm_vcpu_create(&vm->h, id, &vcpu->h);
	TEST_ASSERT(!ret, "LVMM_CREATE_VCPU(%u) failed: %s", id,
		    strerror(-ret));
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->run = vcpu->h.run;
	vm->vcpus[id] = vcpu;
	return vcpu;
}

/* Where a guest function that returns lands. */
static void guest_code_returned(void)
{
	GUEST_FAIL("guest code returned");
	for (;;)
		;
}

struct lvmm_vcpu *vm_vcpu_add(struct lvmm_vm *vm, u32 id, void *guest_code)
{
	struct lvmm_vcpu *vcpu = vm_vcpu_add_raw(vm, id);
	u64 stack_top = STACKS_GPA + (id + 1) * STACK_SIZE;
	struct lvmm_regs regs;

	vcpu_set_long_mode(vcpu);

	/* Enter as if called: RSP + 8 16-byte aligned, a return address. */
	*(u64 *)addr_gpa2hva(vm, stack_top - 8) = (u64)guest_code_returned;
	vcpu_regs_get(vcpu, &regs);
	regs.rip = (u64)guest_code;
	regs.rsp = stack_top - 8;
	regs.rbp = 0;
	regs.rflags = X86_EFLAGS_FIXED;
	regs.rdi = id;
	vcpu_regs_set(vcpu, &regs);
	return vcpu;
}

struct lvmm_vm *vm_create_with_vcpus(u32 nr, void *guest_code,
				     struct lvmm_vcpu **vcpus)
{
	struct lvmm_vm *vm = vm_create();

	for (u32 i = 0; i < nr; i++) {
		struct lvmm_vcpu *v = vm_vcpu_add(vm, i, guest_code);

		if (vcpus)
			vcpus[i] = v;
	}
	return vm;
}

struct lvmm_vm *vm_create_with_one_vcpu(struct lvmm_vcpu **vcpu,
					void *guest_code)
{
	return vm_create_with_vcpus(1, guest_code, vcpu);
}

void vm_free(struct lvmm_vm *vm)
{
	if (!vm)
		return;
	for (int i = 0; i < MAX_VCPUS; i++) {
		if (vm->vcpus[i]) {
			lvmm_vcpu_close(&vm->vcpus[i]->h);
			free(vm->vcpus[i]);
		}
	}
	for (int i = 0; i < NR_MEMSLOTS; i++)
		if (vm->slots[i].used)
			munmap(vm->slots[i].hva, vm->slots[i].size);
	close(vm->fd);
	close(vm->dev_fd);
	free(vm);
}

void vcpu_args_set(struct lvmm_vcpu *vcpu, unsigned int n, ...)
{
	struct lvmm_regs regs;
	va_list ap;

	TEST_ASSERT(n <= 6, "at most 6 arguments");
	vcpu_regs_get(vcpu, &regs);
	va_start(ap, n);
	for (unsigned int i = 0; i < n; i++) {
		u64 v = va_arg(ap, u64);

		switch (i) {
		case 0: regs.rdi = v; break;
		case 1: regs.rsi = v; break;
		case 2: regs.rdx = v; break;
		case 3: regs.rcx = v; break;
		case 4: regs.r8 = v; break;
		case 5: regs.r9 = v; break;
		}
	}
	va_end(ap);
	vcpu_regs_set(vcpu, &regs);
}

int __vcpu_run(struct lvmm_vcpu *vcpu)
{
	return lvmm_run(&vcpu->h);
}

void vcpu_run(struct lvmm_vcpu *vcpu)
{
	int ret;

	do {
		ret = __vcpu_run(vcpu);
	} while (ret == -EINTR);
	TEST_ASSERT(!ret, "LVMM_RUN failed: %s", strerror(-ret));
}

void vcpu_regs_get(struct lvmm_vcpu *vcpu, struct lvmm_regs *regs)
{
	int ret = lvmm_get_regs(&vcpu->h, regs);

	TEST_ASSERT(!ret, "LVMM_GET_REGS failed: %s", strerror(-ret));
}

void vcpu_regs_set(struct lvmm_vcpu *vcpu, const struct lvmm_regs *regs)
{
	int ret = lvmm_set_regs(&vcpu->h, regs);

	TEST_ASSERT(!ret, "LVMM_SET_REGS failed: %s", strerror(-ret));
}

void vcpu_sregs_get(struct lvmm_vcpu *vcpu, struct lvmm_sregs *sregs)
{
	int ret = lvmm_get_sregs(&vcpu->h, sregs);

	TEST_ASSERT(!ret, "LVMM_GET_SREGS failed: %s", strerror(-ret));
}

void vcpu_sregs_set(struct lvmm_vcpu *vcpu, const struct lvmm_sregs *sregs)
{
	int ret = lvmm_set_sregs(&vcpu->h, sregs);

	TEST_ASSERT(!ret, "LVMM_SET_SREGS failed: %s", strerror(-ret));
}

u64 vcpu_get_msr(struct lvmm_vcpu *vcpu, u32 index)
{
	u64 val = 0;
	int ret = lvmm_get_msr(&vcpu->h, index, &val);

	TEST_ASSERT(!ret, "LVMM_GET_MSRS(0x%x) failed: %s", index,
		    strerror(-ret));
	return val;
}

void vcpu_set_msr(struct lvmm_vcpu *vcpu, u32 index, u64 val)
{
	int ret = lvmm_set_msr(&vcpu->h, index, val);

	TEST_ASSERT(!ret, "LVMM_SET_MSRS(0x%x, 0x%llx) failed: %s", index,
		    (unsigned long long)val, strerror(-ret));
}

void *vcpu_io_data(struct lvmm_vcpu *vcpu)
{
	struct lvmm_run *run = vcpu->run;
	u64 len = (u64)run->io.size * run->io.count;

	TEST_ASSERT(run->io.data_offset + len <= vcpu->h.run_size,
		    "I/O data [0x%llx, +0x%llx) outside the %zu-byte run mapping",
		    (unsigned long long)run->io.data_offset,
		    (unsigned long long)len, vcpu->h.run_size);
	return lvmm_run_io_data(&vcpu->h);
}

void vcpu_complete_exit(struct lvmm_vcpu *vcpu)
{
	int ret;

	vcpu->run->immediate_exit = 1;
	ret = __vcpu_run(vcpu);
	vcpu->run->immediate_exit = 0;
	TEST_ASSERT(ret == -EINTR,
		    "LVMM_RUN with immediate_exit: wanted EINTR, got %d (%s)",
		    ret, ret < 0 ? strerror(-ret) : "no error");
}

struct lvmm_cpuid *vcpu_get_cpuid(struct lvmm_vcpu *vcpu)
{
	struct lvmm_cpuid *cpuid = lvmm_cpuid_alloc(LVMM_MAX_CPUID_ENTRIES);
	int ret;

	TEST_ASSERT(cpuid, "out of memory");
	ret = lvmm_get_cpuid(&vcpu->h, cpuid);
	TEST_ASSERT(!ret, "LVMM_GET_CPUID failed: %s", strerror(-ret));
	return cpuid;
}

struct lvmm_cpuid_entry *cpuid_find(struct lvmm_cpuid *c, u32 fn, u32 index)
{
	for (u32 i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == index)
			return &c->entries[i];
	return NULL;
}

int __vcpu_get_events(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_events *ev)
{
	return lvmm_get_vcpu_events(&vcpu->h, ev);
}

void vcpu_get_events(struct lvmm_vcpu *vcpu, struct lvmm_vcpu_events *ev)
{
	int ret = __vcpu_get_events(vcpu, ev);

	TEST_ASSERT(!ret, "LVMM_GET_VCPU_EVENTS failed: %s", strerror(-ret));
}

int __vcpu_set_events(struct lvmm_vcpu *vcpu,
		      const struct lvmm_vcpu_events *ev)
{
	return lvmm_set_vcpu_events(&vcpu->h, ev);
}

void vcpu_set_events(struct lvmm_vcpu *vcpu,
		     const struct lvmm_vcpu_events *ev)
{
	int ret = __vcpu_set_events(vcpu, ev);

	TEST_ASSERT(!ret, "LVMM_SET_VCPU_EVENTS failed: %s", strerror(-ret));
}

int __vcpu_get_debugregs(struct lvmm_vcpu *vcpu, struct lvmm_debugregs *dr)
{
	return lvmm_get_debugregs(&vcpu->h, dr);
}

void vcpu_get_debugregs(struct lvmm_vcpu *vcpu, struct lvmm_debugregs *dr)
{
	int ret = __vcpu_get_debugregs(vcpu, dr);

	TEST_ASSERT(!ret, "LVMM_GET_DEBUGREGS failed: %s", strerror(-ret));
}

int __vcpu_set_debugregs(struct lvmm_vcpu *vcpu,
			 const struct lvmm_debugregs *dr)
{
	return lvmm_set_debugregs(&vcpu->h, dr);
}

void vcpu_set_debugregs(struct lvmm_vcpu *vcpu,
			const struct lvmm_debugregs *dr)
{
	int ret = __vcpu_set_debugregs(vcpu, dr);

	TEST_ASSERT(!ret, "LVMM_SET_DEBUGREGS failed: %s", strerror(-ret));
}

int __vcpu_get_xcrs(struct lvmm_vcpu *vcpu, struct lvmm_xcrs *xcrs)
{
	return lvmm_get_xcrs(&vcpu->h, xcrs);
}

void vcpu_get_xcrs(struct lvmm_vcpu *vcpu, struct lvmm_xcrs *xcrs)
{
	int ret = __vcpu_get_xcrs(vcpu, xcrs);

	TEST_ASSERT(!ret, "LVMM_GET_XCRS failed: %s", strerror(-ret));
}

int __vcpu_set_xcrs(struct lvmm_vcpu *vcpu, const struct lvmm_xcrs *xcrs)
{
	return lvmm_set_xcrs(&vcpu->h, xcrs);
}

void vcpu_set_xcrs(struct lvmm_vcpu *vcpu, const struct lvmm_xcrs *xcrs)
{
	int ret = __vcpu_set_xcrs(vcpu, xcrs);

	TEST_ASSERT(!ret, "LVMM_SET_XCRS(0x%llx) failed: %s",
		    (unsigned long long)xcrs->xcr0, strerror(-ret));
}

int __vm_restore(int dev_fd, struct lvmm_restore_vm *req)
{
	return __lvmm_ioctl(dev_fd, LVMM_RESTORE_VM, req);
}

int __vm_get_vcpu(struct lvmm_vm *vm, u32 id)
{
	struct lvmm_create_vcpu req = { .id = id };

	return __vm_ioctl(vm, LVMM_GET_VCPU, &req);
}

/* Take vCPU @id's fd @fd into @vm, with its run structure mapped. */
static struct lvmm_vcpu *vcpu_of_fd(struct lvmm_vm *vm, u32 id, int fd)
{
	struct lvmm_vcpu *vcpu = calloc(1, sizeof(*vcpu));
	void *run;

	TEST_ASSERT(vcpu && id < MAX_VCPUS && !vm->vcpus[id],
		    "bad vCPU id %u", id);
	run = mmap(NULL, vm->h.vcpu_mmap_size, PROT_READ | PROT_WRITE,
		   MAP_SHARED, fd, 0);
	TEST_ASSERT(run != MAP_FAILED, "mmap of vCPU %u failed", id);
	vcpu->h.fd = fd;
	vcpu->h.id = id;
	vcpu->h.run = run;
	vcpu->h.run_size = vm->h.vcpu_mmap_size;
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->run = run;
	vm->vcpus[id] = vcpu;
	return vcpu;
}

struct lvmm_vcpu *vm_vcpu_get(struct lvmm_vm *vm, u32 id)
{
	int fd = __vm_get_vcpu(vm, id);

	TEST_ASSERT(fd >= 0, "LVMM_GET_VCPU(%u) failed: %s", id,
		    strerror(-fd));
	return vcpu_of_fd(vm, id, fd);
}

void *vm_map_slot(struct lvmm_vm *vm, u32 slot, u32 flags, u64 gpa, u64 size)
{
	struct userspace_mem_region *r;
	void *hva;
	int ret;

	TEST_ASSERT(slot < NR_MEMSLOTS && !vm->slots[slot].used,
		    "slot %u mapped already or out of range", slot);
	ret = lvmm_memslot_map(&vm->h, slot, size, PROT_READ | PROT_WRITE,
			       &hva);
	TEST_ASSERT(!ret, "mmap of slot %u failed: %s", slot, strerror(-ret));
	r = &vm->slots[slot];
	r->used = true;
	r->slot = slot;
	r->flags = flags;
	r->gpa = gpa;
	r->size = size;
	r->hva = hva;
	return hva;
}

struct lvmm_vm *vm_restore(int fd, const char *name,
			   const struct lvmm_vm *like)
{
	struct lvmm_vm *vm = calloc(1, sizeof(*vm));
	struct lvmm_restore_vm req = { .fd = fd };
	u32 found = 0;
	int ret;

	TEST_ASSERT(vm, "out of memory");
	if (name) {
		TEST_ASSERT(strlen(name) < sizeof(req.name), "name too long");
		strcpy(req.name, name);
	}
	vm->dev_fd = open_lvmm_dev();
	ret = lvmm_vcpu_mmap_size(vm->dev_fd);
	TEST_ASSERT(ret > 0, "LVMM_GET_VCPU_MMAP_SIZE failed: %s",
		    strerror(-ret));
	vm->h.vcpu_mmap_size = ret;
	ret = __vm_restore(vm->dev_fd, &req);
	TEST_ASSERT(ret >= 0, "LVMM_RESTORE_VM(\"%s\") failed: %s",
		    req.name, strerror(-ret));
	vm->fd = vm->h.fd = ret;
	vm->h.id = req.id;
	memcpy(vm->h.name, req.name, sizeof(vm->h.name));
	vm->h.name[sizeof(vm->h.name) - 1] = '\0';

	/* The vCPUs keep their ids: look for as many as there are. */
	for (u32 id = 0; id < MAX_VCPUS && found < req.nr_vcpus; id++) {
		int vfd = __vm_get_vcpu(vm, id);

		if (vfd == -ENOENT)
			continue;
		TEST_ASSERT(vfd >= 0, "LVMM_GET_VCPU(%u) failed: %s", id,
			    strerror(-vfd));
		vcpu_of_fd(vm, id, vfd);
		found++;
	}
	TEST_ASSERT(found == req.nr_vcpus,
		    "LVMM_GET_VCPU found %u of the %u restored vCPUs", found,
		    req.nr_vcpus);
	if (like)
		vm_map_like(vm, like);
	return vm;
}

void vm_map_like(struct lvmm_vm *vm, const struct lvmm_vm *like)
{
	for (int i = 0; i < NR_MEMSLOTS; i++) {
		const struct userspace_mem_region *r = &like->slots[i];

		if (r->used)
			vm_map_slot(vm, i, r->flags, r->gpa, r->size);
	}
	vm->heap_next = like->heap_next;
	vm->heap_end = like->heap_end;
	vm->long_mode = like->long_mode;
}

u64 memory_diffs(struct lvmm_vm *a, struct lvmm_vm *b, u64 *first)
{
	u64 diffs = 0;

	for (int s = 0; s < NR_MEMSLOTS; s++) {
		struct userspace_mem_region *ra = &a->slots[s];
		struct userspace_mem_region *rb = &b->slots[s];

		if (!ra->used)
			continue;
		TEST_ASSERT(rb->used && rb->size == ra->size,
			    "slot %d: not the same in both VMs", s);
		for (u64 off = 0; off < ra->size; off += SZ_4K) {
			if (!memcmp((u8 *)ra->hva + off, (u8 *)rb->hva + off,
				    SZ_4K))
				continue;
			if (!diffs++)
				*first = ra->gpa + off;
		}
	}
	return diffs;
}

int __vm_set_vmm_state(struct lvmm_vm *vm, const void *data, u32 size)
{
	struct lvmm_vmm_state st = { .data = (u64)(unsigned long)data,
				     .size = size };

	return __vm_ioctl(vm, LVMM_SET_VMM_STATE, &st);
}

int __vm_get_vmm_state(struct lvmm_vm *vm, void *data, u32 *size)
{
	struct lvmm_vmm_state st = { .data = (u64)(unsigned long)data,
				     .size = *size };
	int ret = __vm_ioctl(vm, LVMM_GET_VMM_STATE, &st);

	if (!ret || ret == -ENOSPC)
		*size = st.size;
	return ret;
}

long mem_available_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

u64 env_u64(const char *name, u64 dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

const char *exit_reason_str(u32 reason)
{
	return lvmm_exit_reason_name(reason);
}

int __vm_create_irqchip(struct lvmm_vm *vm, const struct lvmm_irqchip *chip)
{
	return __vm_ioctl(vm, LVMM_CREATE_IRQCHIP, chip);
}

void vm_create_irqchip(struct lvmm_vm *vm)
{
	int ret = lvmm_create_irqchip(&vm->h);

	TEST_ASSERT(!ret, "LVMM_CREATE_IRQCHIP failed: %s", strerror(-ret));
}

struct lvmm_vm *vm_create_with_irqchip(u32 nr, void *guest_code,
				       struct lvmm_vcpu **vcpus)
{
	struct lvmm_vm *vm = vm_create();

	vm_create_irqchip(vm);
	for (u32 i = 0; i < nr; i++) {
		struct lvmm_vcpu *v = vm_vcpu_add(vm, i, guest_code);

		if (vcpus)
			vcpus[i] = v;
	}
	return vm;
}

int __vcpu_get_lapic(struct lvmm_vcpu *vcpu, struct lvmm_lapic_state *s)
{
	return lvmm_get_lapic(&vcpu->h, s);
}

void vcpu_get_lapic(struct lvmm_vcpu *vcpu, struct lvmm_lapic_state *s)
{
	int ret = __vcpu_get_lapic(vcpu, s);

	TEST_ASSERT(!ret, "LVMM_GET_LAPIC failed: %s", strerror(-ret));
}

int __vcpu_set_lapic(struct lvmm_vcpu *vcpu,
		     const struct lvmm_lapic_state *s)
{
	return lvmm_set_lapic(&vcpu->h, s);
}

void vcpu_set_lapic(struct lvmm_vcpu *vcpu, const struct lvmm_lapic_state *s)
{
	int ret = __vcpu_set_lapic(vcpu, s);

	TEST_ASSERT(!ret, "LVMM_SET_LAPIC failed: %s", strerror(-ret));
}

int __vcpu_get_mp_state(struct lvmm_vcpu *vcpu, struct lvmm_mp_state *mp)
{
	return __vcpu_ioctl(vcpu, LVMM_GET_MP_STATE, mp);
}

u32 vcpu_get_mp_state(struct lvmm_vcpu *vcpu)
{
	u32 state = 0;
	int ret = lvmm_get_mp_state(&vcpu->h, &state);

	TEST_ASSERT(!ret, "LVMM_GET_MP_STATE failed: %s", strerror(-ret));
	return state;
}

int __vcpu_set_mp_state(struct lvmm_vcpu *vcpu,
			const struct lvmm_mp_state *mp)
{
	return __vcpu_ioctl(vcpu, LVMM_SET_MP_STATE, mp);
}

void vcpu_set_mp_state(struct lvmm_vcpu *vcpu, u32 state)
{
	int ret = lvmm_set_mp_state(&vcpu->h, state);

	TEST_ASSERT(!ret, "LVMM_SET_MP_STATE(%u) failed: %s", state,
		    strerror(-ret));
}
