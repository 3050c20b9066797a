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
#define UART_MCR_LOOP	0x10
#define UART_MSR_CTS	0x10
#define UART_MSR_DSR	0x20
#define UART_MSR_DCD	0x80

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
	bool ok = true;

	pthread_mutex_lock(&u->lock);
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
	pthread_mutex_unlock(&u->lock);
	return ok;
}

uint8_t run_uart_in(struct run_uart *u, unsigned int off)
{
	uint8_t v = 0;

	pthread_mutex_lock(&u->lock);
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
	pthread_mutex_unlock(&u->lock);
	return v;
}

void run_uart_rx(struct run_uart *u, const uint8_t *buf, size_t n)
{
	pthread_mutex_lock(&u->lock);
	/* In loopback the line is disconnected from the outside world. */
	if (!(u->mcr & UART_MCR_LOOP))
		while (n--)
			uart_rx_push(u, *buf++);
	pthread_mutex_unlock(&u->lock);
}
