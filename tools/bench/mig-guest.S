/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lvmm-mig-bench's guest: 32-bit protected mode, flat segments, paging
 * off, copied to MIG_CODE_GPA and entered there with EDI the first page
 * of the memory to dirty and ECX its number of pages.  Assembled into the
 * bench's binary as data: the VMM copies mig_guest_code..mig_guest_end.
 *
 * It writes each page's address into the page's first dword (no page is
 * zero: a migration carries them all) and says so with an OUT.  Then, as
 * MIG_MODE_GPA says: idle (HLT, which exits, and the VMM leaves it
 * there); paced (MIG_BATCH_GPA pages, then HLT, so that the VMM sets the
 * pace by when it runs the vCPU again); or busy (a page every
 * MIG_TICKS_GPA TSC ticks, spinning on RDTSC in between: a guest that
 * needs the CPU, which auto-converge's cap slows down).
 *
 * Dirtying a page adds 1 to its first dword, then 1 to the counter at
 * MIG_PROGRESS_GPA, round robin over the pages.  The stop flag is read
 * before each batch (paced) or page (busy), so a guest that stopped has
 * counted every increment: the first dwords less their addresses add up
 * to the counter, whichever host it ran on.
 */
#include "mig-guest.h"

	.section .rodata.mig_guest, "a"
	.code32
	.globl mig_guest_code, mig_guest_end
mig_guest_code:
	mov	%edi, %esi		/* the memory */
	mov	%ecx, %ebx
	shl	$12, %ebx		/* its size in bytes */
1:	mov	%edi, (%edi)
	add	$0x1000, %edi
	dec	%ecx
	jnz	1b
	out	%al, $MIG_PORT_READY
	xor	%edi, %edi		/* the next page's offset */
	mov	MIG_MODE_GPA, %eax
	cmp	$MIG_MODE_PACED, %eax
	je	paced
	cmp	$MIG_MODE_BUSY, %eax
	je	busy
idle:
	hlt
	jmp	idle

paced:
	cmpl	$0, MIG_STOP_GPA
	jne	stop
	mov	MIG_BATCH_GPA, %ecx
2:	incl	(%esi,%edi)
	incl	MIG_PROGRESS_GPA
	add	$0x1000, %edi
	cmp	%ebx, %edi
	jb	3f
	xor	%edi, %edi
3:	dec	%ecx
	jnz	2b
	hlt
	jmp	paced

busy:
	mov	MIG_TICKS_GPA, %ebp
	rdtsc
	mov	%eax, %ecx		/* when the next page is due (low 32 bits) */
4:	cmpl	$0, MIG_STOP_GPA
	jne	stop
	incl	(%esi,%edi)
	incl	MIG_PROGRESS_GPA
	add	$0x1000, %edi
	cmp	%ebx, %edi
	jb	5f
	xor	%edi, %edi
5:	add	%ebp, %ecx
6:	rdtsc
	sub	%ecx, %eax		/* how late it is */
	jns	7f
	pause
	jmp	6b
	/* More than 16 pages late (it was not running): no burst to catch up. */
7:	mov	%ebp, %edx
	shl	$4, %edx
	cmp	%edx, %eax
	jbe	4b
	add	%eax, %ecx
	jmp	4b

stop:
	out	%al, $MIG_PORT_STOPPED
	jmp	stop
mig_guest_end:
	.code64
	.section .note.GNU-stack, "", @progbits
