// SPDX-License-Identifier: GPL-2.0-only
/*
 * The bundled guests' runtime; see guest.h.
 */
#include "guest.h"

#define UART_THR	0
#define UART_IER	1
#define UART_FCR	2
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_SCR	7
#define UART_LSR_THRE	0x20
#define UART_FIFO_SIZE	16

const struct mb_info *guest_mbi;
static volatile bool guest_ready;
static volatile int print_lock;

void *memset(void *s, int c, size_t n)
{
	unsigned char *p = s;

	while (n--)
		*p++ = c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static bool prefix(const char *s, const char *p, size_t n)
{
	while (n--)
		if (*s++ != *p++)
			return false;
	return true;
}

void guest_halt(void)
{
	for (;;)
		asm volatile("cli; hlt");
}

void guest_exit(uint32_t value)
{
	outl(DEBUG_EXIT_PORT, value);
	guest_halt();	/* without a debug-exit device */
}

/* 115200 8N1, FIFOs on; the scratch register proves a UART is there. */
static void uart_init(void)
{
	outb(COM1 + UART_IER, 0);
	outb(COM1 + UART_LCR, 0x80);		/* DLAB */
	outb(COM1 + 0, 1);			/* divisor 1: 115200 baud */
	outb(COM1 + 1, 0);
	outb(COM1 + UART_LCR, 0x03);		/* 8N1 */
	outb(COM1 + UART_FCR, 0xc7);
	outb(COM1 + UART_MCR, 0x03);		/* DTR, RTS */
	outb(COM1 + UART_SCR, 0x5a);
	if (inb(COM1 + UART_SCR) != 0x5a)
		guest_exit(0x7f);		/* no UART: nowhere to say so */
}

/* Whole FIFOs with REP OUTSB: one exit per 16 bytes, not two per byte. */
static void uart_write(const char *s, size_t n)
{
	size_t chunk;

	while (n) {
		while (!(inb(COM1 + UART_LSR) & UART_LSR_THRE))
			cpu_relax();
		chunk = n < UART_FIFO_SIZE ? n : UART_FIFO_SIZE;
		n -= chunk;
		asm volatile("rep outsb"
			     : "+S"(s), "+c"(chunk)
			     : "d"((uint16_t)(COM1 + UART_THR))
			     : "memory");
	}
}

static void lock(void)
{
	while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
		cpu_relax();
}

static void unlock(void)
{
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

struct out {
	char *buf;
	size_t len, pos;
};

static void put(struct out *o, char c)
{
	if (o->pos + 1 < o->len)
		o->buf[o->pos] = c;
	o->pos++;
}

static void put_num(struct out *o, uint64_t v, unsigned int base, bool neg,
		    int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	while (width-- > n)
		put(o, pad);
	while (n)
		put(o, tmp[--n]);
}

/* %s %c %d %u %x %p %%, with l/ll/z and a width; enough for the guests. */
int vsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
{
	struct out o = { buf, len, 0 };
	int width, lng;
	const char *s;
	uint64_t u;
	int64_t d;
	char pad;

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		pad = ' ';
		if (*fmt == '0')
			pad = '0', fmt++;
		for (width = 0; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + *fmt - '0';
		for (lng = 0; *fmt == 'l' || *fmt == 'z'; fmt++)
			lng++;
		switch (*fmt) {
		case 's':
			s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			for (d = strlen(s); width-- > d;)
				put(&o, ' ');
			while (*s)
				put(&o, *s++);
			break;
		case 'c':
			put(&o, va_arg(ap, int));
			break;
		case 'd':
		case 'i':
			d = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_num(&o, d < 0 ? -(uint64_t)d : (uint64_t)d, 10,
				d < 0, width, pad);
			break;
		case 'u':
		case 'x':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			put_num(&o, u, *fmt == 'u' ? 10 : 16, false, width, pad);
			break;
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (uintptr_t)va_arg(ap, void *), 16, false, 0, 0);
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			put(&o, '%');
			put(&o, *fmt);
			break;
		}
	}
	if (len)
		o.buf[o.pos < len ? o.pos : len - 1] = 0;
	return o.pos;
}

int snprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

int printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	lock();
	uart_write(buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	unlock();
	return n;
}

const char *cmdline_args(void)
{
	const char *s;

	if (!guest_mbi || !(guest_mbi->flags & MBI_CMDLINE))
		return "";
	/* As with QEMU's -kernel, the first word is the image's name. */
	s = (const char *)(uintptr_t)guest_mbi->cmdline;
	while (*s && *s != ' ')
		s++;
	while (*s == ' ')
		s++;
	return s;
}

bool cmdline_get(const char *key, char *val, size_t len)
{
	const char *s = cmdline_args();
	size_t klen = strlen(key), n;

	while (*s) {
		while (*s == ' ')
			s++;
		if (prefix(s, key, klen) &&
		    (s[klen] == '=' || s[klen] == ' ' || !s[klen])) {
			s += klen;
			if (*s == '=')
				s++;
			for (n = 0; s[n] && s[n] != ' ' && n + 1 < len; n++)
				val[n] = s[n];
			val[n] = 0;
			return true;
		}
		while (*s && *s != ' ')
			s++;
	}
	return false;
}

uint64_t cmdline_u64(const char *key, uint64_t def)
{
	char v[24], *p = v;
	uint64_t n = 0;

	if (!cmdline_get(key, v, sizeof(v)) || !*v)
		return def;
	while (*p >= '0' && *p <= '9')
		n = n * 10 + *p++ - '0';
	if (*p == 'k' || *p == 'K')
		n *= 1000;
	else if (*p == 'm' || *p == 'M')
		n *= 1000000;
	return n;
}

uint64_t pmtimer_ticks(void)
{
	static uint64_t total;
	static uint32_t last;
	static bool started;
	uint32_t now = inl(PMTMR_PORT);

	if (!started) {
		started = true;
		last = now;
	}
	total += (uint32_t)(now - last);
	last = now;
	return total;
}

uint64_t ticks_to_ms(uint64_t ticks)
{
	return ticks * 1000 / PMTMR_HZ;
}

uint64_t guest_mem_end(void)
{
	if (!guest_mbi || !(guest_mbi->flags & MBI_MEM))
		return (uintptr_t)_end;
	return 0x100000 + (uint64_t)guest_mbi->mem_upper * 1024;
}

uint64_t guest_used_end(void)
{
	const struct mb_mod *m;
	uint64_t end = (uintptr_t)_end;
	uint32_t i;

	if (guest_mbi && (guest_mbi->flags & MBI_MODS)) {
		m = (const void *)(uintptr_t)guest_mbi->mods_addr;
		for (i = 0; i < guest_mbi->mods_count; i++)
			if (m[i].end > end)
				end = m[i].end;
	}
	return end;
}

/* From entry.S, in 64-bit mode on this vCPU's stack. */
void guest_start(uint32_t cpu, uint32_t magic, uint32_t mbi);

void guest_start(uint32_t cpu, uint32_t magic, uint32_t mbi)
{
	if (cpu == 0) {
		if (magic == MULTIBOOT_BOOT_MAGIC)
			guest_mbi = (const void *)(uintptr_t)mbi;
		uart_init();
		__atomic_store_n(&guest_ready, true, __ATOMIC_RELEASE);
	} else {
		while (!__atomic_load_n(&guest_ready, __ATOMIC_ACQUIRE))
			cpu_relax();
	}
	guest_main(cpu);
}
