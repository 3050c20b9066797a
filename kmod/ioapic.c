// SPDX-License-Identifier: GPL-2.0-only
/*
 * The in-kernel I/O APIC (Documentation/irqchip.rst, section 5): an
 * 82093AA with 24 pins at LVMM_IOAPIC_BASE.  The VMM's devices drive its
 * lines with LVMM_IRQ_LINE; it sends their interrupts to the local APICs
 * (lapic.c) and learns of a level-triggered one's EOI from them.
 *
 * Everything in struct lvmm_ioapic is under its lock: the VMM's threads
 * (lines, state), the vCPUs' (MMIO, EOIs).  The lock ranks above nothing:
 * delivery only sets bits and kicks.
 */

#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>

#include "lvmm.h"

#define IOAPIC_VERSION		0x00170011	/* 24 entries, 82093AA */

#define IOAPIC_REG_SELECT	0x00
#define IOAPIC_REG_WINDOW	0x10

#define IOAPIC_ID		0x00
#define IOAPIC_VER		0x01
#define IOAPIC_ARB		0x02
#define IOAPIC_REDIR		0x10

#define RTE_VECTOR		0xffULL
#define RTE_DM(e)		(((e) >> 8) & 7)
#define RTE_LOGICAL		BIT_ULL(11)
#define RTE_DELIVS		BIT_ULL(12)
#define RTE_REMOTE_IRR		BIT_ULL(14)
#define RTE_LEVEL		BIT_ULL(15)
#define RTE_MASKED		BIT_ULL(16)
#define RTE_DEST(e)		((u32)((e) >> 56))
/* What the guest may write: all but delivery status and remote IRR. */
#define RTE_WRITABLE		(0xff0000000001afffULL)

struct lvmm_ioapic {
	spinlock_t lock;		/* everything here */
	u32 id;				/* ID register bits 27-24 */
	u32 ioregsel;			/* 8 bits */
	u32 lines;			/* bit n: pin n asserted */
	/* bit n: an edge waits for unmasking, or for the VM to thaw */
	u32 pending;
	u64 redir[LVMM_IOAPIC_PINS];
};

/*
 * Send pin @pin's interrupt; for a level-triggered one, wait for its EOI.
 *
 * Nothing is sent while a save or a migration holds the VM frozen: it
 * takes the local APICs before the I/O APIC, so an interrupt sent in
 * between would be in neither record (an edge lost, a level pin's remote
 * IRR set with no APIC to EOI it).  An edge waits in ->pending, a level
 * line in ->lines; lvmm_ioapic_resend() sends them once the VM thaws, or
 * on the destination once its APICs are loaded.
 */
static void ioapic_service(struct lvmm_vm *vm, struct lvmm_ioapic *io,
			   int pin)
{
	u64 e = io->redir[pin];

	lockdep_assert_held(&io->lock);
	if ((e & RTE_MASKED) || READ_ONCE(vm->frozen)) {
		if (!(e & RTE_LEVEL))
			io->pending |= BIT(pin);
		return;
	}
	if ((e & RTE_LEVEL) && (e & RTE_REMOTE_IRR))
		return;
	io->pending &= ~BIT(pin);
	/*
	 * Fixed, lowest priority, NMI and INIT; not SMI or ExtINT, which
	 * are not emulated, nor the reserved 3 and 6 (start-up is an IPI's
	 * alone).
	 */
	if (RTE_DM(e) == 2 || RTE_DM(e) == 3 || RTE_DM(e) >= 6)
		return;
	if (lvmm_lapic_deliver(vm, RTE_DEST(e), e & RTE_LOGICAL, RTE_DM(e),
			       e & RTE_VECTOR, e & RTE_LEVEL) &&
	    (e & RTE_LEVEL))
		io->redir[pin] |= RTE_REMOTE_IRR;
}

int lvmm_vm_irq_line(struct lvmm_vm *vm, void __user *argp)
{
	struct lvmm_ioapic *io = READ_ONCE(vm->ioapic);
	struct lvmm_irq_level req;
	u32 bit;

	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	if (!io)
		return -ENXIO;
	if (req.flags || req.pad || req.irq >= LVMM_IOAPIC_PINS ||
	    req.level > 1)
		return -EINVAL;
	bit = BIT(req.irq);
	spin_lock(&io->lock);
	if (!req.level) {
		io->lines &= ~bit;
	} else if (io->redir[req.irq] & RTE_LEVEL) {
		io->lines |= bit;
		ioapic_service(vm, io, req.irq);
	} else if (!(io->lines & bit)) {
		/* Edge-triggered: the rising edge is the interrupt. */
		io->lines |= bit;
		ioapic_service(vm, io, req.irq);
	}
	spin_unlock(&io->lock);
	return 0;
}

/*
 * A local APIC's EOI of level-triggered @vector: the pins that sent it
 * may send again, and do at once if their line is still asserted.
 */
void lvmm_ioapic_eoi(struct lvmm_vm *vm, u8 vector)
{
	struct lvmm_ioapic *io = READ_ONCE(vm->ioapic);
	int pin;

	if (!io)
		return;
	spin_lock(&io->lock);
	for (pin = 0; pin < LVMM_IOAPIC_PINS; pin++) {
		u64 e = io->redir[pin];

		if ((e & RTE_VECTOR) != vector || !(e & RTE_LEVEL) ||
		    !(e & RTE_REMOTE_IRR))
			continue;
		io->redir[pin] &= ~RTE_REMOTE_IRR;
		if (io->lines & BIT(pin))
			ioapic_service(vm, io, pin);
	}
	spin_unlock(&io->lock);
}

/* The guest wrote half of pin @pin's entry: deliver what it unmasked. */
static void ioapic_write_rte(struct lvmm_vm *vm, struct lvmm_ioapic *io,
			     int pin, bool high, u32 val)
{
	u64 e = io->redir[pin];
	u64 v = high ? ((u64)val << 32) | (u32)e : (e & ~0xffffffffULL) | val;

	e = (e & ~RTE_WRITABLE) | (v & RTE_WRITABLE);
	/* Each trigger mode keeps only its own memory of the line. */
	if (e & RTE_LEVEL)
		io->pending &= ~BIT(pin);
	else
		e &= ~RTE_REMOTE_IRR;
	io->redir[pin] = e;
	if (e & RTE_MASKED)
		return;
	if ((e & RTE_LEVEL) ? (io->lines & BIT(pin)) : (io->pending & BIT(pin)))
		ioapic_service(vm, io, pin);
}

static u32 ioapic_read_reg(struct lvmm_ioapic *io)
{
	u32 reg = io->ioregsel;

	switch (reg) {
	case IOAPIC_ID:
	case IOAPIC_ARB:
		return io->id << 24;
	case IOAPIC_VER:
		return IOAPIC_VERSION;
	}
	if (reg >= IOAPIC_REDIR && reg < IOAPIC_REDIR + 2 * LVMM_IOAPIC_PINS) {
		u64 e = io->redir[(reg - IOAPIC_REDIR) / 2];

		return (reg & 1) ? e >> 32 : (u32)e;
	}
	return 0;
}

static void ioapic_write_reg(struct lvmm_vm *vm, struct lvmm_ioapic *io,
			     u32 val)
{
	u32 reg = io->ioregsel;

	if (reg == IOAPIC_ID)
		io->id = (val >> 24) & 0xf;
	else if (reg >= IOAPIC_REDIR &&
		 reg < IOAPIC_REDIR + 2 * LVMM_IOAPIC_PINS)
		ioapic_write_rte(vm, io, (reg - IOAPIC_REDIR) / 2, reg & 1, val);
}

/* An access to the I/O APIC's page?  Handled if so (lvmm_lapic_mmio()). */
bool lvmm_ioapic_mmio(struct lvmm_vcpu *vcpu, u64 gpa, bool write, u64 *data,
		      unsigned int size)
{
	struct lvmm_vm *vm = vcpu->vm;
	struct lvmm_ioapic *io = READ_ONCE(vm->ioapic);
	u32 off = gpa - LVMM_IOAPIC_BASE;

	if (!io || gpa < LVMM_IOAPIC_BASE || gpa + size > LVMM_IOAPIC_BASE +
	    PAGE_SIZE)
		return false;
	spin_lock(&io->lock);
	if (!write) {
		if (off == IOAPIC_REG_SELECT)
			*data = io->ioregsel;
		else if (off == IOAPIC_REG_WINDOW)
			*data = ioapic_read_reg(io);
		else
			*data = 0;
	} else if (size >= 4) {
		/* 32-bit registers; other writes are ignored, as on KVM. */
		if (off == IOAPIC_REG_SELECT)
			io->ioregsel = *data & 0xff;
		else if (off == IOAPIC_REG_WINDOW)
			ioapic_write_reg(vm, io, (u32)*data);
	}
	spin_unlock(&io->lock);
	return true;
}

int lvmm_ioapic_create(struct lvmm_vm *vm)
{
	struct lvmm_ioapic *io;
	int pin;

	io = kzalloc(sizeof(*io), GFP_KERNEL_ACCOUNT);
	if (!io)
		return -ENOMEM;
	spin_lock_init(&io->lock);
	for (pin = 0; pin < LVMM_IOAPIC_PINS; pin++)
		io->redir[pin] = RTE_MASKED;
	/* Readers see it initialized: pairs with READ_ONCE() above. */
	smp_store_release(&vm->ioapic, io);
	return 0;
}

void lvmm_ioapic_destroy(struct lvmm_vm *vm)
{
	kfree(vm->ioapic);
	vm->ioapic = NULL;
}

/* The I/O APIC in the ABI's form (LVMM_GET_IOAPIC, and the stream). */
void lvmm_ioapic_save(struct lvmm_vm *vm, struct lvmm_ioapic_state *st)
{
	struct lvmm_ioapic *io = vm->ioapic;

	memset(st, 0, sizeof(*st));
	spin_lock(&io->lock);
	st->id = io->id;
	st->ioregsel = io->ioregsel;
	st->lines = io->lines;
	st->pending = io->pending;
	memcpy(st->redir, io->redir, sizeof(st->redir));
	spin_unlock(&io->lock);
}

long lvmm_vm_ioapic_state(struct lvmm_vm *vm, void __user *argp, bool set)
{
	struct lvmm_ioapic_state st;
	int r;

	if (!READ_ONCE(vm->ioapic))
		return -ENXIO;
	if (!set) {
		lvmm_ioapic_save(vm, &st);
		return copy_to_user(argp, &st, sizeof(st)) ? -EFAULT : 0;
	}
	if (copy_from_user(&st, argp, sizeof(st)))
		return -EFAULT;
	r = lvmm_ioapic_load(vm, &st);
	if (!r)
		lvmm_ioapic_resend(vm);
	return r;
}

int lvmm_ioapic_load(struct lvmm_vm *vm, const struct lvmm_ioapic_state *st)
{
	struct lvmm_ioapic *io = vm->ioapic;
	int pin;

	if (st->flags || st->pad || memchr_inv(st->reserved, 0,
					       sizeof(st->reserved)) ||
	    st->id > 0xf || st->ioregsel > 0xff ||
	    st->lines >> LVMM_IOAPIC_PINS || st->pending >> LVMM_IOAPIC_PINS)
		return -EINVAL;
	spin_lock(&io->lock);
	io->id = st->id;
	io->ioregsel = st->ioregsel;
	io->lines = st->lines;
	io->pending = st->pending;
	for (pin = 0; pin < LVMM_IOAPIC_PINS; pin++) {
		u64 e = st->redir[pin] & (RTE_WRITABLE | RTE_REMOTE_IRR);

		io->redir[pin] = (e & RTE_LEVEL) ? e : e & ~RTE_REMOTE_IRR;
		/* Only an edge waits; a level line is its line. */
		if (e & RTE_LEVEL)
			io->pending &= ~BIT(pin);
	}
	spin_unlock(&io->lock);
	return 0;
}

/*
 * The VM was just frozen (vm->frozen set, before this): a delivery that
 * read it unset, under the lock, has finished once the lock is ours, and
 * every later one sees it set.  Then a save may take the local APICs.
 */
void lvmm_ioapic_quiesce(struct lvmm_vm *vm)
{
	struct lvmm_ioapic *io = READ_ONCE(vm->ioapic);

	if (io) {
		spin_lock(&io->lock);
		spin_unlock(&io->lock);
	}
}

/*
 * Send what waits: edges held back (by a mask since lifted, or while the
 * VM was frozen) and asserted level lines without a remote IRR.  After a
 * thaw, after LVMM_SET_IOAPIC, and by a restore once the local APICs are
 * loaded, so that nothing goes to an APIC that is not there yet.
 */
void lvmm_ioapic_resend(struct lvmm_vm *vm)
{
	struct lvmm_ioapic *io = READ_ONCE(vm->ioapic);
	int pin;

	if (!io)
		return;
	spin_lock(&io->lock);
	for (pin = 0; pin < LVMM_IOAPIC_PINS; pin++) {
		u64 e = io->redir[pin];

		if (!(e & RTE_MASKED) &&
		    ((e & RTE_LEVEL) ? io->lines : io->pending) & BIT(pin))
			ioapic_service(vm, io, pin);
	}
	spin_unlock(&io->lock);
}
