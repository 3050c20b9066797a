// SPDX-License-Identifier: GPL-2.0-only
/*
 * lvmm: the little x86 instruction decoding a hypervisor cannot avoid.
 *
 * Without decode assists or nRIP the hardware tells us neither the length
 * of the instruction that exited nor what an MMIO access was doing.  This
 * file walks the guest's page tables to fetch the instruction, decodes the
 * few instructions lvmm needs (those it skips, MOV-family MMIO accesses,
 * string port I/O) and finishes them once userspace has answered.  Anything
 * else is refused with an INTERNAL_ERROR exit, never guessed.
 */
#include <linux/kernel.h>
#include <linux/mm.h>
#include <asm/processor-flags.h>
#include <asm/msr-index.h>

#include "lvmm.h"

#define LVMM_MAX_INSN	15	/* bytes in an x86 instruction, at most */

#define PTE_P		BIT_ULL(0)
#define PTE_PS		BIT_ULL(7)
#define PTE_ADDR	0x000ffffffffff000ULL

void lvmm_internal_error(struct lvmm_vcpu *vcpu, u32 suberror, int n, ...)
{
	struct lvmm_run *run = vcpu->run;
	va_list ap;
	int i;

	run->exit_reason = LVMM_EXIT_INTERNAL_ERROR;
	run->internal.suberror = suberror;
	n = min_t(int, n, ARRAY_SIZE(run->internal.data) - 1);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		run->internal.data[i] = va_arg(ap, u64);
	va_end(ap);
	run->internal.data[i++] = vcpu->rip;
	run->internal.ndata = i;
}

static bool lvmm_long_mode(const struct lvmm_cpu_mode *m)
{
	return m->efer & EFER_LMA;
}

static bool lvmm_64bit_code(const struct lvmm_cpu_mode *m)
{
	return lvmm_long_mode(m) && m->cs_l;
}

/* Translate a guest-virtual address with the guest's own page tables. */
static int lvmm_gva_to_gpa(struct lvmm_vcpu *vcpu,
			   const struct lvmm_cpu_mode *m, u64 gva, u64 *gpa)
{
	int level, shift, bits, esize;
	u64 table, pte = 0;

	if (!(m->cr0 & X86_CR0_PG)) {
		*gpa = lvmm_long_mode(m) ? gva : (u32)gva;
		return 0;
	}
	if (lvmm_long_mode(m)) {
		level = (m->cr4 & X86_CR4_LA57) ? 5 : 4;
		table = m->cr3 & PTE_ADDR;
		bits = 9;
		esize = 8;
	} else if (m->cr4 & X86_CR4_PAE) {
		gva = (u32)gva;
		if (lvmm_guest_read(vcpu->vm, (m->cr3 & ~0x1fULL) +
				    ((gva >> 30) & 3) * 8, &pte, 8))
			return -EFAULT;
		if (!(pte & PTE_P))
			return -EFAULT;
		table = pte & PTE_ADDR;
		level = 2;
		bits = 9;
		esize = 8;
	} else {
		gva = (u32)gva;
		table = m->cr3 & 0xfffff000ULL;
		level = 2;
		bits = 10;
		esize = 4;
	}

	for (; level > 0; level--) {
		shift = PAGE_SHIFT + (level - 1) * bits;
		pte = 0;
		if (lvmm_guest_read(vcpu->vm, table +
				    ((gva >> shift) & ((1 << bits) - 1)) * esize,
				    &pte, esize))
			return -EFAULT;
		if (!(pte & PTE_P))
			return -EFAULT;
		/* Large pages: 1 GiB and 2 MiB (4 MiB with 32-bit tables). */
		if (level > 1 && level <= 3 && (pte & PTE_PS) &&
		    (esize == 8 || (m->cr4 & X86_CR4_PSE))) {
			u64 mask = (1ULL << shift) - 1;

			*gpa = ((pte & PTE_ADDR) & ~mask) | (gva & mask);
			return 0;
		}
		table = pte & (esize == 8 ? PTE_ADDR : 0xfffff000ULL);
	}
	*gpa = table | (gva & ~PAGE_MASK);
	return 0;
}

/*
 * Read or write guest-virtual memory as the guest's kernel would.  The walk
 * checks presence only; A/D bits are not updated.
 */
static int lvmm_access_gva(struct lvmm_vcpu *vcpu,
			   const struct lvmm_cpu_mode *m, u64 gva, void *data,
			   unsigned int len, bool write)
{
	while (len) {
		unsigned int n = min_t(unsigned int, len,
				       PAGE_SIZE - offset_in_page(gva));
		u64 gpa;
		int r;

		r = lvmm_gva_to_gpa(vcpu, m, gva, &gpa);
		if (r)
			return r;
		r = write ? lvmm_guest_write(vcpu->vm, gpa, data, n) :
			    lvmm_guest_read(vcpu->vm, gpa, data, n);
		if (r)
			return r;
		gva += n;
		data += n;
		len -= n;
	}
	return 0;
}

struct lvmm_insn {
	u8 b[16];		/* 15 at most, and a zero for diagnostics */
	int nbytes;		/* fetched */
	int pos;		/* decoded so far */
	u8 opsize, addrsize;
	u8 rex;
	int seg;		/* override, or -1 */
	bool rep;
	u8 op, op2;		/* op == 0x0f: op2 is the second byte */
	u8 mod, reg, rm;	/* reg and rm include REX.R / REX.B */
};

static int lvmm_fetch(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
		      struct lvmm_insn *in)
{
	u64 ip = vcpu->rip;
	unsigned int first;

	if (!lvmm_64bit_code(m))
		ip = (u32)(ip + m->seg_base[LVMM_SEG_CS]);
	memset(in, 0, sizeof(*in));
	in->seg = -1;
	first = min_t(unsigned int, LVMM_MAX_INSN,
		      PAGE_SIZE - offset_in_page(ip));
	if (lvmm_access_gva(vcpu, m, ip, in->b, first, false))
		return -EFAULT;
	in->nbytes = first;
	/* The tail may sit on an unmapped page; fetch it only if it is there. */
	if (first < LVMM_MAX_INSN &&
	    !lvmm_access_gva(vcpu, m, ip + first, in->b + first,
			   LVMM_MAX_INSN - first, false))
		in->nbytes = LVMM_MAX_INSN;
	return 0;
}

static int lvmm_next(struct lvmm_insn *in, u8 *byte)
{
	if (in->pos >= in->nbytes)
		return -EINVAL;
	*byte = in->b[in->pos++];
	return 0;
}

static int lvmm_seg_prefix(u8 c)
{
	switch (c) {
	case 0x26:
		return LVMM_SEG_ES;
	case 0x2e:
		return LVMM_SEG_CS;
	case 0x36:
		return LVMM_SEG_SS;
	case 0x3e:
		return LVMM_SEG_DS;
	case 0x64:
		return LVMM_SEG_FS;
	default:
		return LVMM_SEG_GS;
	}
}

/* Prefixes, REX and the opcode (one or two bytes). */
static int lvmm_decode_opcode(const struct lvmm_cpu_mode *m,
			      struct lvmm_insn *in)
{
	bool is64 = lvmm_64bit_code(m);
	bool db = m->cs_db && (m->cr0 & X86_CR0_PE);
	u8 c;

	in->opsize = is64 || db ? 4 : 2;
	in->addrsize = is64 ? 8 : db ? 4 : 2;
	for (;;) {
		if (lvmm_next(in, &c))
			return -EINVAL;
		switch (c) {
		case 0x66:
			/* Repeated prefixes count once. */
			in->opsize = is64 || db ? 2 : 4;
			in->rex = 0;
			continue;
		case 0x67:
			in->addrsize = is64 ? 4 : db ? 2 : 4;
			in->rex = 0;
			continue;
		case 0x26:
		case 0x2e:
		case 0x36:
		case 0x3e:
		case 0x64:
		case 0x65:
			in->seg = lvmm_seg_prefix(c);
			in->rex = 0;
			continue;
		case 0xf0:
			in->rex = 0;
			continue;
		case 0xf2:
		case 0xf3:
			in->rep = true;
			in->rex = 0;
			continue;
		}
		if (is64 && (c & 0xf0) == 0x40) {
			in->rex = c;
			continue;
		}
		break;
	}
	if (in->rex & 8)
		in->opsize = 8;
	in->op = c;
	if (c == 0x0f && lvmm_next(in, &in->op2))
		return -EINVAL;
	return 0;
}

/* ModRM, and the SIB and displacement bytes that follow it. */
static int lvmm_decode_modrm(struct lvmm_insn *in)
{
	u8 modrm, sib = 0;
	int disp = 0;

	if (lvmm_next(in, &modrm))
		return -EINVAL;
	in->mod = modrm >> 6;
	in->reg = ((modrm >> 3) & 7) | ((in->rex & 4) << 1);
	in->rm = (modrm & 7) | ((in->rex & 1) << 3);
	if (in->mod == 3)
		return 0;
	if (in->addrsize == 2) {
		if (in->mod == 1)
			disp = 1;
		else if (in->mod == 2 || (modrm & 7) == 6)
			disp = 2;
	} else {
		if ((modrm & 7) == 4 && lvmm_next(in, &sib))
			return -EINVAL;
		if (in->mod == 1)
			disp = 1;
		else if (in->mod == 2 || (modrm & 7) == 5 ||
			 ((modrm & 7) == 4 && (sib & 7) == 5))
			disp = 4;
	}
	in->pos += disp;
	return in->pos <= in->nbytes ? 0 : -EINVAL;
}

static int lvmm_decode(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
		       struct lvmm_insn *in)
{
	return lvmm_fetch(vcpu, m, in) ?: lvmm_decode_opcode(m, in);
}

static u64 lvmm_next_rip(const struct lvmm_cpu_mode *m, u64 rip, int len)
{
	return lvmm_64bit_code(m) ? rip + len : (u32)(rip + len);
}

/*
 * The address of the instruction after the one at RIP, for the exits whose
 * instruction lvmm completes itself: HLT, PAUSE, CPUID, RDMSR/WRMSR, RDPMC,
 * INVD, WBINVD, VMMCALL, XSETBV, MOV to/from DR.
 */
int lvmm_insn_length(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
		     u64 *next_rip)
{
	struct lvmm_insn in;

	if (lvmm_decode(vcpu, m, &in))
		return -EINVAL;
	if (in.op == 0xf4 || (in.op == 0x90 && in.rep))	/* HLT, PAUSE */
		goto done;
	if (in.op != 0x0f)
		return -EINVAL;
	switch (in.op2) {
	case 0x08: case 0x09:			/* INVD, WBINVD */
	case 0x30: case 0x32: case 0x33:	/* WRMSR, RDMSR, RDPMC */
	case 0xa2:				/* CPUID */
		break;
	case 0x01:				/* VMMCALL, XSETBV, ... */
		if (lvmm_decode_modrm(&in) || in.mod != 3)
			return -EINVAL;
		break;
	case 0x20: case 0x21:			/* MOV r, CRn / DRn */
	case 0x22: case 0x23:			/* MOV CRn / DRn, r */
		if (lvmm_decode_modrm(&in))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
done:
	*next_rip = lvmm_next_rip(m, vcpu->rip, in.pos);
	return 0;
}

/*
 * Decode MOV to or from a control or debug register (0F 20-23): which
 * register, which GPR, and the direction.  The GPR is always the full
 * 64 bits in long mode and 32 bits otherwise, whatever the prefixes.
 */
int lvmm_decode_mov_ctl(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
			struct lvmm_mov_ctl *mov)
{
	struct lvmm_insn in;

	if (lvmm_decode(vcpu, m, &in) || in.op != 0x0f ||
	    in.op2 < 0x20 || in.op2 > 0x23 || lvmm_decode_modrm(&in))
		return -EINVAL;
	mov->dr = in.op2 & 1;
	mov->to_reg = !(in.op2 & 2);
	mov->reg = in.reg;
	mov->gpr = in.rm;
	mov->next_rip = lvmm_next_rip(m, vcpu->rip, in.pos);
	return 0;
}

/*
 * Decode a write to CR0 -- MOV to CR0, CLTS or LMSW with a register
 * operand -- and compute the value it writes, from @m->cr0.  LMSW from
 * memory is not decoded (-EINVAL).
 */
int lvmm_decode_cr0_write(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
			  u64 *cr0, u64 *next_rip)
{
	struct lvmm_insn in;
	u64 src;

	if (lvmm_decode(vcpu, m, &in) || in.op != 0x0f)
		return -EINVAL;
	switch (in.op2) {
	case 0x06:				/* CLTS */
		*cr0 = m->cr0 & ~X86_CR0_TS;
		break;
	case 0x01:				/* LMSW r16: group 7, /6 */
	case 0x22:				/* MOV CR0, r */
		if (lvmm_decode_modrm(&in) || in.mod != 3 ||
		    (in.op2 == 0x01 && (in.reg & 7) != 6) ||
		    (in.op2 == 0x22 && in.reg != 0))
			return -EINVAL;
		src = vcpu->regs[in.rm];
		if (in.op2 == 0x22) {
			*cr0 = lvmm_64bit_code(m) ? src : (u32)src;
			break;
		}
		/* LMSW: PE, MP, EM, TS; it sets PE but cannot clear it. */
		*cr0 = (m->cr0 & ~0xeULL) | (src & 0xf) | (m->cr0 & X86_CR0_PE);
		break;
	default:
		return -EINVAL;
	}
	*next_rip = lvmm_next_rip(m, vcpu->rip, in.pos);
	return 0;
}

static u64 lvmm_size_mask(int size)
{
	return size == 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
}

/* Read a register operand of @size bytes; AH..BH without REX. */
static u64 lvmm_get_reg(struct lvmm_vcpu *vcpu, int reg, int size, bool rex)
{
	if (size == 1 && !rex && reg >= 4 && reg < 8)
		return (vcpu->regs[reg - 4] >> 8) & 0xff;
	return vcpu->regs[reg] & lvmm_size_mask(size);
}

/* Write as the CPU does: 32-bit results zero-extend, 8/16-bit merge. */
static void lvmm_set_reg(struct lvmm_vcpu *vcpu, int reg, int size,
			 bool high_byte, u64 val)
{
	u64 *r;

	if (high_byte) {
		r = &vcpu->regs[reg - 4];
		*r = (*r & ~0xff00ULL) | ((val & 0xff) << 8);
		return;
	}
	r = &vcpu->regs[reg];
	if (size >= 4)
		*r = val & lvmm_size_mask(size);
	else
		*r = (*r & ~lvmm_size_mask(size)) | (val & lvmm_size_mask(size));
}

/* An MMIO read's value @val, of the decoded size, into its register. */
static void lvmm_mmio_read_done(struct lvmm_vcpu *vcpu, u64 val)
{
	struct lvmm_emul *e = &vcpu->emul;

	val &= lvmm_size_mask(e->size);
	if (e->sign_extend)
		val = e->sign_extend == 1 ? (u64)(s64)(s8)val :
					    (u64)(s64)(s16)val;
	lvmm_set_reg(vcpu, e->reg, e->dst_size, e->high_byte, val);
}

/*
 * An access to guest-physical @gpa that no slot backs (or a write to a
 * READONLY slot): decode it and hand it to userspace as an MMIO exit, or
 * to the in-kernel APIC if it is its page.
 */
int lvmm_emulate_mmio(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
		      u64 gpa, bool write_fault)
{
	struct lvmm_run *run = vcpu->run;
	struct lvmm_emul *e = &vcpu->emul;
	struct lvmm_insn in;
	bool write, rex;
	int size, r = -EINVAL;
	u64 data = 0;

	if (lvmm_decode(vcpu, m, &in))
		goto fail;
	rex = in.rex;
	e->sign_extend = 0;
	e->dst_size = 0;
	switch (in.op) {
	case 0x88: case 0x89:			/* MOV r/m, r */
	case 0x8a: case 0x8b:			/* MOV r, r/m */
		if (lvmm_decode_modrm(&in) || in.mod == 3)
			goto fail;
		size = (in.op & 1) ? in.opsize : 1;
		write = !(in.op & 2);
		if (write)
			data = lvmm_get_reg(vcpu, in.reg, size, rex);
		e->reg = in.reg;
		break;
	case 0xc6: case 0xc7: {			/* MOV r/m, imm */
		int isize;

		if (lvmm_decode_modrm(&in) || in.mod == 3 || (in.reg & 7))
			goto fail;
		size = (in.op & 1) ? in.opsize : 1;
		isize = min(size, 4);
		if (in.pos + isize > in.nbytes)
			goto fail;
		memcpy(&data, in.b + in.pos, isize);
		if (isize == 4)
			data = (u64)(s64)(s32)data;	/* imm32 sign-extends */
		data &= lvmm_size_mask(size);
		in.pos += isize;
		write = true;
		break;
	}
	case 0xa0: case 0xa1:			/* MOV AL/eAX, moffs */
	case 0xa2: case 0xa3:			/* MOV moffs, AL/eAX */
		in.pos += in.addrsize;
		if (in.pos > in.nbytes)
			goto fail;
		size = (in.op & 1) ? in.opsize : 1;
		write = in.op >= 0xa2;
		rex = true;			/* AL, never AH */
		if (write)
			data = lvmm_get_reg(vcpu, LVMM_RAX, size, rex);
		e->reg = LVMM_RAX;
		break;
	case 0x0f:
		if (lvmm_decode_modrm(&in) || in.mod == 3)
			goto fail;
		switch (in.op2) {
		case 0xb6: case 0xb7:		/* MOVZX */
		case 0xbe: case 0xbf:		/* MOVSX */
			size = (in.op2 & 1) ? 2 : 1;
			write = false;
			e->reg = in.reg;
			e->dst_size = in.opsize;
			if (in.op2 >= 0xbe)
				e->sign_extend = size;
			break;
		case 0xc3:			/* MOVNTI */
			size = in.opsize == 8 ? 8 : 4;
			write = true;
			data = lvmm_get_reg(vcpu, in.reg, size, rex);
			break;
		default:
			goto fail;
		}
		break;
	default:
		goto fail;
	}
	if (write_fault && !write)
		goto fail;

	e->next_rip = lvmm_next_rip(m, vcpu->rip, in.pos);
	e->size = size;
	if (!write) {
		e->high_byte = size == 1 && !e->dst_size && !rex &&
			       e->reg >= 4 && e->reg < 8;
		if (!e->dst_size)
			e->dst_size = size;
	}
	/* The in-kernel APIC's page: done here, no exit. */
	if (vcpu->lapic && lvmm_lapic_mmio(vcpu, gpa, write, &data, size)) {
		if (!write)
			lvmm_mmio_read_done(vcpu, data);
		vcpu->rip = e->next_rip;
		return 1;
	}
	run->exit_reason = LVMM_EXIT_MMIO;
	run->mmio.phys_addr = gpa;
	run->mmio.len = size;
	run->mmio.is_write = write;
	memset(run->mmio.data, 0, sizeof(run->mmio.data));
	if (write) {
		memcpy(run->mmio.data, &data, size);
		e->pending = LVMM_PENDING_MMIO_WRITE;
	} else {
		e->pending = LVMM_PENDING_MMIO_READ;
	}
	return 0;

fail:
	lvmm_internal_error(vcpu, LVMM_INTERNAL_ERROR_EMULATION, 3, gpa,
			    *(u64 *)in.b, *(u64 *)(in.b + 8));
	return r == -EINVAL ? 0 : r;
}

static u64 lvmm_string_addr(struct lvmm_vcpu *vcpu,
			    const struct lvmm_cpu_mode *m, int seg, int reg,
			    long delta)
{
	struct lvmm_emul *e = &vcpu->emul;
	u64 off = (vcpu->regs[reg] + delta) & lvmm_size_mask(e->addr_size);
	u64 base = m->seg_base[seg];

	/* In 64-bit mode only FS and GS have a base. */
	if (lvmm_64bit_code(m) && seg != LVMM_SEG_FS && seg != LVMM_SEG_GS)
		base = 0;
	return lvmm_64bit_code(m) ? base + off : (u32)(base + off);
}

static void lvmm_string_step(struct lvmm_vcpu *vcpu, int reg, long delta)
{
	struct lvmm_emul *e = &vcpu->emul;

	lvmm_set_reg(vcpu, reg, e->addr_size, false,
		     vcpu->regs[reg] + delta);
}

static long lvmm_string_delta(struct lvmm_vcpu *vcpu, int i)
{
	long step = vcpu->emul.size;

	return (vcpu->rflags & X86_EFLAGS_DF) ? -step * i : step * i;
}

/*
 * Port I/O: fill the run structure.  OUT data is gathered now, IN data is
 * stored when userspace comes back (lvmm_complete_userspace()).  A REP
 * string instruction is done at most a page of data at a time; RIP stays on
 * it until RCX reaches zero, so the guest simply exits again.
 */
int lvmm_emulate_pio(struct lvmm_vcpu *vcpu, const struct lvmm_cpu_mode *m,
		     u16 port, u8 size, bool in, bool string, bool rep,
		     u8 addr_size, u64 next_rip)
{
	struct lvmm_run *run = vcpu->run;
	struct lvmm_emul *e = &vcpu->emul;
	u32 count = 1, i;

	e->port = port;
	e->size = size;
	e->string = string;
	e->rep = rep;
	e->addr_size = addr_size;
	e->next_rip = next_rip;
	e->seg = LVMM_SEG_ES;

	if (string) {
		struct lvmm_insn insn;

		if (rep) {
			u64 rcx = vcpu->regs[LVMM_RCX] &
				  lvmm_size_mask(addr_size);

			if (!rcx) {
				vcpu->rip = next_rip;
				return 1;
			}
			count = min_t(u64, rcx, PAGE_SIZE / size);
		}
		if (!in) {
			/* OUTS reads DS:rSI unless a prefix says otherwise. */
			if (lvmm_decode(vcpu, m, &insn))
				goto fail;
			e->seg = insn.seg >= 0 ? insn.seg : LVMM_SEG_DS;
			for (i = 0; i < count; i++) {
				u64 gva = lvmm_string_addr(vcpu, m, e->seg,
							   LVMM_RSI,
							   lvmm_string_delta(vcpu, i));

				if (lvmm_access_gva(vcpu, m, gva,
						    vcpu->io_page + i * size,
						    size, false))
					goto fail;
			}
		}
	} else if (!in) {
		u64 val = vcpu->regs[LVMM_RAX] & lvmm_size_mask(size);

		memcpy(vcpu->io_page, &val, size);
	}
	e->count = count;
	e->pending = in ? LVMM_PENDING_PIO_IN : LVMM_PENDING_PIO_OUT;

	run->exit_reason = LVMM_EXIT_IO;
	run->io.direction = in ? LVMM_EXIT_IO_IN : LVMM_EXIT_IO_OUT;
	run->io.size = size;
	run->io.port = port;
	run->io.count = count;
	run->io.data_offset = LVMM_RUN_IO_PAGE_OFFSET * PAGE_SIZE;
	return 0;

fail:
	lvmm_internal_error(vcpu, LVMM_INTERNAL_ERROR_EMULATION, 2, port,
			    vcpu->regs[LVMM_RSI]);
	return 0;
}

static int lvmm_complete_pio(struct lvmm_vcpu *vcpu, bool in)
{
	struct lvmm_emul *e = &vcpu->emul;
	struct lvmm_cpu_mode m;
	int reg = in ? LVMM_RDI : LVMM_RSI;
	u32 i;

	if (!e->string) {
		if (in) {
			u64 val = 0;

			memcpy(&val, vcpu->io_page, e->size);
			/* IN to EAX zero-extends, to AL/AX merges. */
			lvmm_set_reg(vcpu, LVMM_RAX, e->size, false, val);
		}
		vcpu->rip = e->next_rip;
		return 1;
	}

	lvmm_arch->get_cpu_mode(vcpu, &m);
	if (in) {
		for (i = 0; i < e->count; i++) {
			u64 gva = lvmm_string_addr(vcpu, &m, LVMM_SEG_ES,
						   LVMM_RDI,
						   lvmm_string_delta(vcpu, i));

			if (lvmm_access_gva(vcpu, &m, gva,
					    vcpu->io_page + i * e->size,
					    e->size, true)) {
				lvmm_internal_error(vcpu,
						    LVMM_INTERNAL_ERROR_EMULATION,
						    2, e->port, gva);
				return 0;
			}
		}
	}
	lvmm_string_step(vcpu, reg, lvmm_string_delta(vcpu, e->count));
	if (e->rep) {
		lvmm_set_reg(vcpu, LVMM_RCX, e->addr_size, false,
			     vcpu->regs[LVMM_RCX] - e->count);
		if (vcpu->regs[LVMM_RCX] & lvmm_size_mask(e->addr_size))
			return 1;	/* not done: re-execute */
	}
	vcpu->rip = e->next_rip;
	return 1;
}

/*
 * Finish the instruction that exited to userspace, now that userspace has
 * filled in its answer.  > 0 to go on, 0 with an exit set up.
 */
int lvmm_complete_userspace(struct lvmm_vcpu *vcpu)
{
	struct lvmm_emul *e = &vcpu->emul;
	enum lvmm_pending pending = e->pending;
	u64 val = 0;

	e->pending = LVMM_PENDING_NONE;
	switch (pending) {
	case LVMM_PENDING_NONE:
		return 1;
	case LVMM_PENDING_PIO_IN:
	case LVMM_PENDING_PIO_OUT:
		return lvmm_complete_pio(vcpu, pending == LVMM_PENDING_PIO_IN);
	case LVMM_PENDING_MMIO_READ:
		/* The size is ours: userspace may have scribbled on mmio.len. */
		memcpy(&val, vcpu->run->mmio.data, e->size);
		lvmm_mmio_read_done(vcpu, val);
		break;
	case LVMM_PENDING_MMIO_WRITE:
		break;
	case LVMM_PENDING_HYPERCALL:
		vcpu->regs[LVMM_RAX] = vcpu->run->hypercall.ret;
		break;
	}
	vcpu->rip = e->next_rip;
	return 1;
}
