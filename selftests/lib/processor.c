// SPDX-License-Identifier: GPL-2.0
/*
 * x86-64 guest setup: long-mode segment state and the guest IDT.
 */
#include <string.h>

#include "lvmm_util.h"

/* Guest-side: indexed by vector; filled by vm_install_exception_handler(). */
guest_handler_t guest_handlers[256];

/* Called by handlers.S on the guest's stack. */
void route_exception(struct ex_regs *regs)
{
	guest_handler_t h = guest_handlers[regs->vector & 0xff];

	if (h) {
		h(regs);
		return;
	}
	ucall(UCALL_ABORT, (u64)"unhandled exception in the guest",
	      (u64)__FILE__, __LINE__, 1, regs->vector, regs->rip);
}

void vcpu_set_long_mode(struct lvmm_vcpu *vcpu)
{
	struct lvmm_sregs sregs;

	vcpu_sregs_get(vcpu, &sregs);

	lvmm_seg_flat(&sregs.cs, GDT_CODE64, 11, true, false);
	lvmm_seg_flat(&sregs.ds, GDT_DATA, 3, false, true);
	sregs.es = sregs.ds;
	sregs.fs = sregs.ds;
	sregs.gs = sregs.ds;
	sregs.ss = sregs.ds;

	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = TSS_GPA;
	sregs.tr.limit = 0x67;
	sregs.tr.selector = GDT_TSS;
	sregs.tr.type = 11;
	sregs.tr.present = 1;

	sregs.gdt.base = GDT_GPA;
	sregs.gdt.limit = GDT_TSS + 16 - 1;
	sregs.idt.base = IDT_GPA;
	sregs.idt.limit = 256 * 16 - 1;

	sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE |
		    X86_CR0_WP | X86_CR0_PG;
	sregs.cr3 = PML4_GPA;
	sregs.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
	sregs.efer = EFER_LME | EFER_LMA | EFER_SCE;
	vcpu_sregs_set(vcpu, &sregs);
}

/*
 * Point all 256 IDT gates (IDT_GPA, which every vCPU's IDTR already names)
 * at the handlers.S stubs.  Until this is called the IDT is empty and any
 * guest exception ends in a triple fault.
 */
void vm_init_descriptor_tables(struct lvmm_vm *vm)
{
	extern const u64 idt_handlers[256];
	u64 *idt = addr_gpa2hva(vm, IDT_GPA);

	for (int v = 0; v < 256; v++) {
		u64 addr = idt_handlers[v];

		/* 64-bit interrupt gate, present, DPL 0. */
		idt[2 * v] = (addr & 0xffff) | ((u64)GDT_CODE64 << 16) |
			     (0x8eULL << 40) | ((addr >> 16 & 0xffff) << 48);
		idt[2 * v + 1] = addr >> 32;
	}
}

void vm_install_exception_handler(struct lvmm_vm *vm, int vector,
				  guest_handler_t handler)
{
	guest_handler_t *h = addr_gva2hva(vm, &guest_handlers[vector]);

	*h = handler;
}
