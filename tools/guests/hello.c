// SPDX-License-Identifier: GPL-2.0-only
/*
 * hello: greet over the UART, show what the boot loader passed, halt.
 *
 * Command line (multiboot's, or vmctl's --cmdline in any format):
 *   exit=V        leave through the debug-exit port with V: status (V<<1)|1
 *   crash=triple  triple-fault (no IDT)          vmctl exits with 4
 *   crash=port    OUT to port 0x1234             vmctl exits with 6
 *   crash=mmio    write to 0xfee00000, no RAM    vmctl exits with 6
 *   read=N        read N characters from the UART and print them
 * Without them hello halts with interrupts off: vmctl exits with 0.
 */
#include "guest.h"

static void show_boot_info(void)
{
	const struct mb_mod *m;
	uint32_t i;

	if (!guest_mbi) {
		printf("hello: no multiboot information (EAX was not 0x2badb002)\n");
		return;
	}
	printf("hello: cmdline: '%s'\n", cmdline_args());
	if (guest_mbi->flags & MBI_LOADER_NAME)
		printf("hello: boot loader: %s\n",
		       (const char *)(uintptr_t)guest_mbi->boot_loader_name);
	if (guest_mbi->flags & MBI_MEM)
		printf("hello: memory: %u KiB low, %u KiB high\n",
		       guest_mbi->mem_lower, guest_mbi->mem_upper);
	if (!(guest_mbi->flags & MBI_MODS))
		return;
	m = (const void *)(uintptr_t)guest_mbi->mods_addr;
	for (i = 0; i < guest_mbi->mods_count; i++)
		printf("hello: module %u: '%s', %u bytes at 0x%x\n", i,
		       (const char *)(uintptr_t)m[i].string,
		       m[i].end - m[i].start, m[i].start);
}

static void crash(const char *how)
{
	static const struct { uint16_t limit; uint64_t base; }
		__attribute__((packed)) no_idt = { 0, 0 };

	printf("hello: crashing on purpose: %s\n", how);
	if (how[0] == 't')
		asm volatile("lidt %0; int3" : : "m"(no_idt));
	else if (how[0] == 'p')
		outb(0x1234, 0x42);
	else if (how[0] == 'm')
		*(volatile uint32_t *)0xfee00000UL = 0xdead;
	printf("hello: '%s' did not crash\n", how);
}

/* Poll the UART's receiver, as a boot loader reading a key would. */
static void read_chars(unsigned int n)
{
	char buf[64];
	unsigned int i;

	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	printf("hello: type %u characters\n", n);
	for (i = 0; i < n; i++) {
		while (!(inb(COM1 + 5) & 0x01))		/* LSR.DR */
			cpu_relax();
		buf[i] = inb(COM1);
	}
	buf[n] = 0;
	printf("hello: read '%s'\n", buf);
}

void guest_main(unsigned int cpu)
{
	char arg[16];

	if (cpu)
		return;		/* one greeting per VM: the others halt */
	printf("Hello, world!  This is lvmm's hello guest, %s.\n",
	       guest_format);
	show_boot_info();
	if (cmdline_get("read", arg, sizeof(arg)))
		read_chars(cmdline_u64("read", 1));
	if (cmdline_get("crash", arg, sizeof(arg)))
		crash(arg);
	if (cmdline_get("exit", arg, sizeof(arg))) {
		printf("hello: leaving through the debug-exit port with %u\n",
		       (unsigned int)cmdline_u64("exit", 0));
		guest_exit(cmdline_u64("exit", 0));
	}
	printf("hello: halting\n");
}
