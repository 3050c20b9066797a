// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl run: a 16550A UART at 0x3f8 on the console.
 *
 * The transmitter is infinitely fast: THR writes go straight to the console
 * and LSR always reads THRE | TEMT.  There is no interrupt controller, so
 * no interrupt is ever raised; IIR still reports the condition a real
 * 16550 would signal, and guests poll LSR.  MCR loopback works, because
 * UART drivers probe with it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

#define UART_RBR_THR	0
#define UART_IER	1
#define UART_IIR_FCR	2
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_MSR	6
#define UART_SCR	7

#define UART_LCR_DLAB	0x80
#define UART_IER_RDI	0x01
#define UART_IER_THRI	0x02
#define UART_IIR_NO_INT	0x01
#define UART_IIR_THRI	0x02
#define UART_IIR_RDI	0x04
#define UART_IIR_FIFO	0xc0
#define UART_FCR_ENABLE	0x01
#define UART_FCR_CLR_RX	0x02
#define UART_LSR_DR	0x01
#define UART_LSR_THRE	0x20
#define UART_LSR_TEMT	0x40
#define UART_MCR_OUT2	0x08	/* gates the interrupt on a PC */
#define UART_MCR_LOOP	0x10
#define UART_MSR_CTS	0x10
#define UART_MSR_DSR	0x20
#define UART_MSR_DCD	0x80

/*
 * What the guest can observe, to tell whether an access changed it: the
 * FIFO's bytes change only with rx_head and rx_len.
 */
struct uart_mark {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thre_pending;
	unsigned int rx_head, rx_len;
};

static void uart_mark(const struct run_uart *u, struct uart_mark *m)
{
	memset(m, 0, sizeof(*m));
	m->ier = u->ier;
	m->lcr = u->lcr;
	m->mcr = u->mcr;
	m->scr = u->scr;
	m->dll = u->dll;
	m->dlm = u->dlm;
	m->fcr = u->fcr;
	m->thre_pending = u->thre_pending;
	m->rx_head = u->rx_head;
	m->rx_len = u->rx_len;
}

/* Count a change since @m: run.c keeps lvmm's copy current by it. */
static void uart_changed(struct run_uart *u, const struct uart_mark *m)
{
	struct uart_mark now;

	uart_mark(u, &now);
	if (memcmp(&now, m, sizeof(now)))
		u->gen++;
}

void run_uart_init(struct run_uart *u, int out_fd)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->out_fd = out_fd;
	u->dll = 0x0c;		/* 9600 baud, as a BIOS would leave it */
	u->lcr = 0x03;		/* 8N1 */
}

void run_uart_destroy(struct run_uart *u)
{
	pthread_mutex_destroy(&u->lock);
}

static void uart_rx_push(struct run_uart *u, uint8_t c)
{
	/* A full FIFO drops the byte, as a real UART overruns. */
	if (u->rx_len == RUN_UART_RX_SIZE)
		return;
	u->rx[(u->rx_head + u->rx_len) % RUN_UART_RX_SIZE] = c;
	u->rx_len++;
}

static bool uart_write_console(struct run_uart *u, uint8_t c)
{
	ssize_t n;

	if (u->out_fd < 0 || u->out_error)
		return !u->out_error;
	do {
		n = write(u->out_fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		u->out_error = true;
	return !u->out_error;
}

bool run_uart_out(struct run_uart *u, unsigned int off, uint8_t val)
{
	struct uart_mark m;
	bool ok = true;

	pthread_mutex_lock(&u->lock);
	uart_mark(u, &m);
	switch (off) {
	case UART_RBR_THR:
		if (u->lcr & UART_LCR_DLAB) {
			u->dll = val;
			break;
		}
		if (u->mcr & UART_MCR_LOOP)
			uart_rx_push(u, val);
		else
			ok = uart_write_console(u, val);
		u->thre_pending = true;
		break;
	case UART_IER:
		if (u->lcr & UART_LCR_DLAB) {
			u->dlm = val;
			break;
		}
		/* Enabling THRI with an empty THR raises it at once. */
		if ((val & UART_IER_THRI) && !(u->ier & UART_IER_THRI))
			u->thre_pending = true;
		u->ier = val & 0x0f;
		break;
	case UART_IIR_FCR:
		u->fcr = val & 0xc9;
		if (val & UART_FCR_CLR_RX)
			u->rx_len = 0;
		break;
	case UART_LCR:
		u->lcr = val;
		break;
	case UART_MCR:
		u->mcr = val & 0x1f;
		break;
	case UART_SCR:
		u->scr = val;
		break;
	default:	/* LSR and MSR writes are ignored, as on hardware */
		break;
	}
	uart_changed(u, &m);
	pthread_mutex_unlock(&u->lock);
	return ok;
}

uint8_t run_uart_in(struct run_uart *u, unsigned int off)
{
	struct uart_mark m;
	uint8_t v = 0;

	pthread_mutex_lock(&u->lock);
	uart_mark(u, &m);
	switch (off) {
	case UART_RBR_THR:
		if (u->lcr & UART_LCR_DLAB) {
			v = u->dll;
			break;
		}
		if (u->rx_len) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % RUN_UART_RX_SIZE;
			u->rx_len--;
		}
		break;
	case UART_IER:
		v = (u->lcr & UART_LCR_DLAB) ? u->dlm : u->ier;
		break;
	case UART_IIR_FCR:
		if ((u->ier & UART_IER_RDI) && u->rx_len) {
			v = UART_IIR_RDI;
		} else if ((u->ier & UART_IER_THRI) && u->thre_pending) {
			v = UART_IIR_THRI;
			u->thre_pending = false;	/* reading IIR clears it */
		} else {
			v = UART_IIR_NO_INT;
		}
		if (u->fcr & UART_FCR_ENABLE)
			v |= UART_IIR_FIFO;
		break;
	case UART_LCR:
		v = u->lcr;
		break;
	case UART_MCR:
		v = u->mcr;
		break;
	case UART_LSR:
		v = UART_LSR_THRE | UART_LSR_TEMT | (u->rx_len ? UART_LSR_DR : 0);
		break;
	case UART_MSR:
		if (u->mcr & UART_MCR_LOOP)
			/* RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD */
			v = (u->mcr & 0x0f) << 4;
		else
			v = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
		break;
	case UART_SCR:
		v = u->scr;
		break;
	}
	uart_changed(u, &m);
	pthread_mutex_unlock(&u->lock);
	return v;
}

bool run_uart_irq(struct run_uart *u)
{
	bool irq;

	pthread_mutex_lock(&u->lock);
	irq = (u->mcr & UART_MCR_OUT2) && !(u->mcr & UART_MCR_LOOP) &&
	      (((u->ier & UART_IER_RDI) && u->rx_len) ||
	       ((u->ier & UART_IER_THRI) && u->thre_pending));
	pthread_mutex_unlock(&u->lock);
	return irq;
}

void run_uart_rx(struct run_uart *u, const uint8_t *buf, size_t n)
{
	struct uart_mark m;

	pthread_mutex_lock(&u->lock);
	uart_mark(u, &m);
	/* In loopback the line is disconnected from the outside world. */
	if (!(u->mcr & UART_MCR_LOOP))
		while (n--)
			uart_rx_push(u, *buf++);
	uart_changed(u, &m);
	pthread_mutex_unlock(&u->lock);
}

uint64_t run_uart_gen(struct run_uart *u)
{
	uint64_t gen;

	pthread_mutex_lock(&u->lock);
	gen = u->gen;
	pthread_mutex_unlock(&u->lock);
	return gen;
}

/*
 * The UART section of vmctl's device state (run_state.c has the whole
 * format), little-endian:
 *
 *   0  u16 port (RUN_UART_BASE)     2  u8 ier, lcr, mcr, scr, dll, dlm, fcr
 *   9  u8 thre_pending (0 or 1)    10  u16 reserved (0)
 *  12  u32 rx_len (<= RUN_UART_RX_SIZE)
 *  16  rx_len bytes: the receive FIFO, oldest first
 */
#define UART_STATE_FIXED	16

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static uint16_t get16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

size_t run_uart_save(struct run_uart *u, uint8_t *buf, uint64_t *gen)
{
	unsigned int i;
	size_t len;

	pthread_mutex_lock(&u->lock);
	put16(buf, RUN_UART_BASE);
	buf[2] = u->ier;
	buf[3] = u->lcr;
	buf[4] = u->mcr;
	buf[5] = u->scr;
	buf[6] = u->dll;
	buf[7] = u->dlm;
	buf[8] = u->fcr;
	buf[9] = u->thre_pending;
	put16(buf + 10, 0);
	put32(buf + 12, u->rx_len);
	for (i = 0; i < u->rx_len; i++)
		buf[UART_STATE_FIXED + i] =
			u->rx[(u->rx_head + i) % RUN_UART_RX_SIZE];
	len = UART_STATE_FIXED + u->rx_len;
	*gen = u->gen;
	pthread_mutex_unlock(&u->lock);
	return len;
}

const char *run_uart_load(struct run_uart *u, const uint8_t *buf, size_t len)
{
	uint32_t rx_len;

	if (len < UART_STATE_FIXED)
		return "its UART section is too short";
	rx_len = get32(buf + 12);
	if (get16(buf) != RUN_UART_BASE)
		return "its UART is not at port 0x3f8";
	if (buf[9] > 1 || get16(buf + 10) || buf[2] & 0xf0 ||
	    buf[4] & 0xe0 || buf[8] & 0x36)
		return "its UART registers hold values a 16550 cannot have";
	if (rx_len > RUN_UART_RX_SIZE || len != UART_STATE_FIXED + rx_len)
		return "its UART's receive FIFO is not the size it says";

	pthread_mutex_lock(&u->lock);
	u->ier = buf[2];
	u->lcr = buf[3];
	u->mcr = buf[4];
	u->scr = buf[5];
	u->dll = buf[6];
	u->dlm = buf[7];
	u->fcr = buf[8];
	u->thre_pending = buf[9];
	memcpy(u->rx, buf + UART_STATE_FIXED, rx_len);
	u->rx_head = 0;
	u->rx_len = rx_len;
	u->gen++;
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

void run_uart_describe(struct run_uart *u, char *buf, size_t len)
{
	unsigned int i;
	size_t n;
	uint8_t c;

	pthread_mutex_lock(&u->lock);
	n = snprintf(buf, len,
		     "IER 0x%02x LCR 0x%02x MCR 0x%02x FCR 0x%02x SCR 0x%02x, divisor %u, THR-empty interrupt %s, %u byte%s of input waiting",
		     u->ier, u->lcr, u->mcr, u->fcr, u->scr,
		     u->dll | u->dlm << 8, u->thre_pending ? "pending" : "clear",
		     u->rx_len, u->rx_len == 1 ? "" : "s");
	/* The first of them, as C would write them. */
	for (i = 0; i < u->rx_len && i < 16 && n + 6 < len; i++) {
		c = u->rx[(u->rx_head + i) % RUN_UART_RX_SIZE];
		n += snprintf(buf + n, len - n, c >= 0x20 && c < 0x7f &&
			      c != '\\' && c != '"' ? "%s%c" : "%s\\x%02x",
			      i ? "" : ": \"", c);
	}
	if (i && n + 5 < len)
		snprintf(buf + n, len - n, "%s\"", i < u->rx_len ? "..." : "");
	pthread_mutex_unlock(&u->lock);
}
