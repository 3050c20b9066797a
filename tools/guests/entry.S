/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Entry points of the bundled guests, assembled once per way in:
 *
 *   ENTRY_REAL  flat binary at 0x10000, entered in real mode (CS=0x1000)
 *   ENTRY_MB    multiboot v1 kernel, entered in 32-bit protected mode
 *               (MB_ELF: an ELF32 kernel, without the address fields)
 *   ENTRY_64    ELF64 image or flat binary run with --entry64, entered in
 *               64-bit mode on vmctl's identity map
 *
 * Each starts with OUT to port 0x80, which vmctl timestamps as the guest's
 * first instruction, then reaches 64-bit mode with EAX = the boot magic,
 * EBX = the multiboot information and EDI = the vCPU id (vmctl's boot
 * protocol, whatever the format), takes a stack of its own and calls
 * guest_start().  A vCPU that returns halts with interrupts off.
 */
#define MB_MAGIC	0x1BADB002
#ifdef MB_ELF
#define MB_FLAGS	0x00000003	/* page-aligned modules, memory info */
#else
#define MB_FLAGS	0x00010003	/* ... and the address fields */
#endif

#define SEL_CODE64	0x08
#define SEL_DATA	0x10
#define SEL_CODE32	0x18

#define GUEST_MAX_CPUS	16
#define STACK_SHIFT	14		/* 16 KiB per vCPU */

	.section .text.start, "ax"
	.globl _start

#ifdef ENTRY_REAL
	.code16
_start:
	outb	%al, $0x80
	cli
	movw	%cs, %cx
	movw	%cx, %ds
	lgdtl	gdt_desc - _start
	movl	%cr0, %ecx
	orl	$1, %ecx			/* PE */
	movl	%ecx, %cr0
	ljmpl	$SEL_CODE32, $prot32
#endif

#ifdef ENTRY_MB
	.code32
	.balign 4
mb_header:
	.long	MB_MAGIC
	.long	MB_FLAGS
	.long	-(MB_MAGIC + MB_FLAGS)
#ifndef MB_ELF
	.long	mb_header			/* header_addr */
	.long	_image_start			/* load_addr */
	.long	_edata				/* load_end_addr */
	.long	_end				/* bss_end_addr */
	.long	_start				/* entry_addr */
#endif
_start:
	outb	%al, $0x80
	cli
	/* The boot loader's GDT is undefined: load ours before any reload. */
	lgdt	gdt_desc
	ljmp	$SEL_CODE32, $prot32
#endif

#if defined(ENTRY_REAL) || defined(ENTRY_MB)
	.code32
prot32:
	movw	$SEL_DATA, %cx
	movw	%cx, %ds
	movw	%cx, %es
	movw	%cx, %fs
	movw	%cx, %gs
	movw	%cx, %ss
	movl	%eax, %esi			/* RDMSR/WRMSR take EAX and EDX */

	/*
	 * Identity-map 4 GiB with 2 MiB pages.  Every vCPU writes the same
	 * values, so they may all do it at once.
	 */
	xorl	%ecx, %ecx
1:	movl	%ecx, %edx
	shll	$21, %edx
	orl	$0x83, %edx			/* present, writable, 2 MiB */
	movl	%edx, pd(, %ecx, 8)
	movl	$0, pd + 4(, %ecx, 8)
	incl	%ecx
	cmpl	$2048, %ecx
	jb	1b
	xorl	%ecx, %ecx
2:	movl	%ecx, %edx
	shll	$12, %edx
	addl	$pd + 3, %edx
	movl	%edx, pdpt(, %ecx, 8)
	incl	%ecx
	cmpl	$4, %ecx
	jb	2b
	movl	$pdpt + 3, pml4

	movl	%cr4, %ecx
	orl	$0x20, %ecx			/* PAE */
	movl	%ecx, %cr4
	movl	$pml4, %ecx
	movl	%ecx, %cr3
	movl	$0xc0000080, %ecx		/* EFER */
	rdmsr
	orl	$0x100, %eax			/* LME */
	wrmsr
	movl	%cr0, %ecx
	orl	$0x80010023, %ecx		/* PG, WP, NE, MP, PE */
	andl	$~0x60000000, %ecx		/* caches on: clear CD, NW */
	movl	%ecx, %cr0
	ljmp	$SEL_CODE64, $long64

	.code64
long64:
	movl	%esi, %eax
	jmp	start64

	.balign 8
gdt:
	.quad	0
	.quad	0x00af9b000000ffff		/* 0x08: 64-bit code */
	.quad	0x00cf93000000ffff		/* 0x10: data */
	.quad	0x00cf9b000000ffff		/* 0x18: 32-bit code */
gdt_end:
gdt_desc:
	.word	gdt_end - gdt - 1
	.long	gdt
#endif

	.code64
#ifdef ENTRY_64
_start:
	outb	%al, $0x80
	cli
#endif
start64:
	cmpl	$GUEST_MAX_CPUS, %edi
	jae	9f				/* no stack for this vCPU */
	movl	%edi, %ecx
	incl	%ecx
	shll	$STACK_SHIFT, %ecx
	leaq	guest_stacks(%rip), %rsp
	addq	%rcx, %rsp
	movl	%eax, %esi			/* magic */
	movl	%ebx, %edx			/* multiboot information */
	movl	%edi, %edi			/* vCPU id */
	call	guest_start
9:	cli
	hlt
	jmp	9b

	.section .rodata
	.globl	guest_format
guest_format:
#if defined(ENTRY_REAL)
	.asciz	"a flat binary entered in real mode"
#elif defined(ENTRY_MB) && defined(MB_ELF)
	.asciz	"a multiboot kernel (ELF32) entered in 32-bit protected mode"
#elif defined(ENTRY_MB)
	.asciz	"a multiboot kernel entered in 32-bit protected mode"
#else
	.asciz	"a 64-bit image entered in long mode"
#endif

	.section .bss
	.balign 4096
#if defined(ENTRY_REAL) || defined(ENTRY_MB)
pml4:	.skip	4096
pdpt:	.skip	4096
pd:	.skip	4 * 4096
#endif
	.globl	guest_stacks
guest_stacks:
	.skip	GUEST_MAX_CPUS << STACK_SHIFT

	.section .note.GNU-stack, "", @progbits
