// SPDX-License-Identifier: GPL-2.0-only
/*
 * vmctl run: the PC's legacy ports that a Linux guest touches while it
 * boots, for guests that run on lvmm's in-kernel local APIC.  Nothing here
 * raises an interrupt: lvmm has no I/O APIC yet, and a VMM cannot raise a
 * line, so
 *
 * - the 8259 PICs (0x20/0x21, 0xa0/0xa1) and their ELCRs (0x4d0/0x4d1)
 *   read as masked: Linux's probe_8259A() then finds no PIC and uses its
 *   NULL PIC, instead of waiting for interrupts that never come;
 * - the 8254 PIT (0x40-0x43) counts in real time from CLOCK_MONOTONIC,
 *   and port 0x61 gives its channel 2 gate and output, which is what
 *   Linux's TSC calibration reads (quick_pit_calibrate(),
 *   pit_calibrate_tsc()); channel 0 counts, but its IRQ 0 goes nowhere;
 * - the MC146818 RTC and CMOS (0x70/0x71) read the host's UTC time in BCD,
 *   never in an update cycle;
 * - the keyboard controller (0x60/0x64) is there only to reset the
 *   machine: command 0xfe to port 0x64 (Linux's reboot), as port 0x92
 *   bit 0 and port 0xcf9's reset bit do, which ends vmctl run.  Its
 *   status says the output buffer is full and never empties, and the
 *   input buffer empty: Linux's i8042 driver then finds "no controller"
 *   after flushing 16 bytes, where a controller that never answered
 *   would cost it seconds of polling at boot (thousands of exits), and
 *   kb_wait() in its reboot goes straight to the reset command;
 * - the ACPI sleep control and status registers of the FADT (run_acpi.c)
 *   power off: SLP_EN with the sleep type of \_S5 written to the control
 *   register (Linux's poweroff) ends vmctl run with status 0.  The guest
 *   has no other sleep state; SLP_EN with another type is a sleep from
 *   which it wakes at once: WAK_STS sets in the status register (where a
 *   1 clears it), which is what the guest waits for.
 *
 * The caller serialises (run.c holds the lock of struct run_pc).
 */
#include <string.h>
#include <time.h>

#include "run.h"

#define PIT_HZ			1193182ULL
#define PIT_CTRL		0x43
#define PORT_B			0x61	/* NMI status and control */
#define PORT_B_GATE2		(1U << 0)
#define PORT_B_SPKR		(1U << 1)
#define PORT_B_WRITABLE		0x0f
#define PORT_B_REFRESH		(1U << 4)
#define PORT_B_OUT2		(1U << 5)

#define CMOS_INDEX		0x70
#define CMOS_DATA		0x71
#define RTC_REG_A		0x0a
#define RTC_REG_B		0x0b
#define RTC_REG_C		0x0c
#define RTC_REG_D		0x0d
#define RTC_CENTURY		0x32
#define RTC_B_24H		(1U << 1)
#define RTC_B_BINARY		(1U << 2)

#define KBC_DATA		0x60
#define KBC_CMD			0x64
#define KBC_STATUS_OBF		(1U << 0)	/* output buffer full */
#define KBC_STATUS_SYS		(1U << 2)	/* passed its self-test */
#define KBC_STATUS_UNLOCKED	(1U << 4)
#define KBC_CMD_RESET		0xfe

#define PORT_A			0x92	/* system control port A */
#define RESET_CONTROL		0xcf9

void run_pc_init(struct run_pc *pc)
{
	int i;

	memset(pc, 0, sizeof(*pc));
	for (i = 0; i < 3; i++)
		pc->pit[i].gate = i != 2;	/* channel 2's is port 0x61's */
	pc->cmos[RTC_REG_A] = 0x26;	/* 32.768 kHz time base, 1024 Hz */
	pc->cmos[RTC_REG_B] = RTC_B_24H;
	pc->cmos[RTC_REG_D] = 0x80;	/* the battery is good */
}

/* PIT ticks since @since, at most 2^63 ns later. */
static uint64_t pit_ticks(uint64_t now, uint64_t since)
{
	return (unsigned __int128)(now - since) * PIT_HZ / 1000000000ULL;
}

/* The counter's reload value: 0 stands for 65536. */
static uint64_t pit_n(const struct run_pit *c)
{
	return c->reload ? c->reload : 0x10000;
}

static uint64_t pit_elapsed(const struct run_pit *c, uint64_t now)
{
	if (!c->counting)
		return c->frozen;
	return c->frozen + pit_ticks(now, c->start);
}

static uint16_t pit_count(const struct run_pit *c, uint64_t now)
{
	uint64_t n = pit_n(c), t;

	if (!c->loaded)
		return 0;
	t = pit_elapsed(c, now);
	switch (c->mode) {
	case 2:
	case 3:
		return n - t % n;
	default:	/* 0, 1, 4, 5: down to 0, then on from 0xffff */
		return (n - t) & 0xffff;
	}
}

static bool pit_out(const struct run_pit *c, uint64_t now)
{
	uint64_t n = pit_n(c), t;

	if (!c->loaded)
		return c->mode != 0;	/* mode 0 starts low, the others high */
	t = pit_elapsed(c, now);
	switch (c->mode) {
	case 0:
		return t >= n;
	case 1:
		return t >= n || !c->counting;
	case 2:
		return t % n != n - 1;
	case 3:
		return t % n < (n + 1) / 2;
	default:	/* 4, 5: a strobe of one tick */
		return t != n;
	}
}

/* A new count was written: modes 1 and 5 wait for the gate to rise. */
static void pit_load(struct run_pit *c, uint64_t now)
{
	c->loaded = true;
	c->frozen = 0;
	c->start = now;
	c->counting = c->gate && c->mode != 1 && c->mode != 5;
}

static void pit_set_gate(struct run_pit *c, bool gate, uint64_t now)
{
	if (gate == c->gate)
		return;
	c->gate = gate;
	if (!c->loaded)
		return;
	if (!gate) {
		/* Modes 0, 2, 3 and 4 stop counting while the gate is low. */
		if (c->counting && c->mode != 1 && c->mode != 5) {
			c->frozen = pit_elapsed(c, now);
			c->counting = false;
		}
		return;
	}
	/* A rising gate (re)starts modes 1, 2, 3 and 5; 0 and 4 go on. */
	if (c->mode == 0 || c->mode == 4) {
		c->start = now;
		c->counting = true;
	} else {
		c->frozen = 0;
		c->start = now;
		c->counting = true;
	}
}

static void pit_control(struct run_pc *pc, uint8_t v, uint64_t now)
{
	struct run_pit *c;
	int i;

	if ((v >> 6) == 3) {
		/* Read-back: bits 3-1 pick the channels, 5 and 4 are active low. */
		for (i = 0; i < 3; i++) {
			if (!(v & (2 << i)))
				continue;
			c = &pc->pit[i];
			if (!(v & 0x20) && !c->latched) {
				c->latched = true;
				c->latch = pit_count(c, now);
				c->latch_msb = false;
			}
			if (!(v & 0x10) && !c->status_latched) {
				c->status_latched = true;
				c->status = pit_out(c, now) << 7 |
					    !c->loaded << 6 | c->rw << 4 |
					    c->mode << 1;
			}
		}
		return;
	}
	c = &pc->pit[v >> 6];
	if (!(v & 0x30)) {
		/* Counter latch. */
		if (!c->latched) {
			c->latched = true;
			c->latch = pit_count(c, now);
			c->latch_msb = false;
		}
		return;
	}
	c->rw = (v >> 4) & 3;
	c->mode = (v >> 1) & 7;
	if (c->mode > 5)
		c->mode -= 4;	/* 6 and 7 are 2 and 3 */
	c->loaded = false;
	c->counting = false;
	c->latched = false;
	c->status_latched = false;
	c->write_msb = false;
	c->read_msb = false;
}

static uint8_t pit_read(struct run_pit *c, uint64_t now)
{
	uint16_t v;
	bool msb;

	if (c->status_latched) {
		c->status_latched = false;
		return c->status;
	}
	if (c->latched) {
		v = c->latch;
		if (c->rw == 3 && !c->latch_msb) {
			c->latch_msb = true;
			return v;
		}
		c->latched = false;
		return c->rw == 2 || c->rw == 3 ? v >> 8 : v;
	}
	v = pit_count(c, now);
	msb = c->rw == 2 || (c->rw == 3 && c->read_msb);
	if (c->rw == 3)
		c->read_msb = !c->read_msb;
	return msb ? v >> 8 : v;
}

static void pit_write(struct run_pit *c, uint8_t v, uint64_t now)
{
	switch (c->rw) {
	case 1:
		c->reload = v;
		break;
	case 2:
		c->reload = v << 8;
		break;
	case 3:
		if (!c->write_msb) {
			c->write_lsb = v;
			c->write_msb = true;
			return;
		}
		c->write_msb = false;
		c->reload = v << 8 | c->write_lsb;
		break;
	default:
		return;		/* no access mode programmed */
	}
	pit_load(c, now);
}

static uint8_t bcd(unsigned int v)
{
	return (v / 10) << 4 | v % 10;
}

static uint8_t cmos_read(struct run_pc *pc, time_t now_real)
{
	unsigned int idx = pc->cmos_index;
	bool binary = pc->cmos[RTC_REG_B] & RTC_B_BINARY;
	unsigned int v, h;
	struct tm tm;

	gmtime_r(&now_real, &tm);
	switch (idx) {
	case 0:
		v = tm.tm_sec;
		break;
	case 2:
		v = tm.tm_min;
		break;
	case 4:
		h = tm.tm_hour;
		if (pc->cmos[RTC_REG_B] & RTC_B_24H)
			return binary ? h : bcd(h);
		/* 12-hour: 12, 1..11, with bit 7 for PM. */
		v = h % 12 ? h % 12 : 12;
		return (binary ? v : bcd(v)) | (h >= 12 ? 0x80 : 0);
	case 6:
		v = tm.tm_wday + 1;
		break;
	case 7:
		v = tm.tm_mday;
		break;
	case 8:
		v = tm.tm_mon + 1;
		break;
	case 9:
		v = tm.tm_year % 100;
		break;
	case RTC_CENTURY:
		v = (tm.tm_year + 1900) / 100;
		break;
	case RTC_REG_A:
		return pc->cmos[idx] & 0x7f;	/* never in an update (UIP) */
	case RTC_REG_C:
		return 0;			/* no interrupt flags */
	default:
		return pc->cmos[idx];
	}
	return binary ? v : bcd(v);
}

static void cmos_write(struct run_pc *pc, uint8_t v)
{
	unsigned int idx = pc->cmos_index;

	/* The clock follows the host's; C and D are read-only. */
	if (idx <= 9 && idx != 1 && idx != 3 && idx != 5)
		return;
	if (idx == RTC_REG_C || idx == RTC_REG_D || idx == RTC_CENTURY)
		return;
	pc->cmos[idx] = v;
}

enum run_pc_result run_pc_io(struct run_pc *pc, uint16_t port, bool out,
			     uint8_t *v, uint64_t now, time_t now_real)
{
	switch (port) {
	case 0x20: case 0x21: case 0xa0: case 0xa1:
		/* The PICs: every line masked, nothing requested or in service. */
		if (!out)
			*v = port & 1 ? 0xff : 0;
		return RUN_PC_OK;
	case 0x4d0: case 0x4d1:
		if (!out)
			*v = 0;		/* ELCR: every line edge-triggered */
		return RUN_PC_OK;
	case 0x40: case 0x41: case 0x42:
		if (out)
			pit_write(&pc->pit[port - 0x40], *v, now);
		else
			*v = pit_read(&pc->pit[port - 0x40], now);
		return RUN_PC_OK;
	case PIT_CTRL:
		if (out)
			pit_control(pc, *v, now);
		else
			*v = 0xff;	/* write-only */
		return RUN_PC_OK;
	case PORT_B:
		if (out) {
			pc->port_b = *v & PORT_B_WRITABLE;
			pit_set_gate(&pc->pit[2], *v & PORT_B_GATE2, now);
		} else {
			/* The refresh bit toggles every 15 us, as on a PC. */
			*v = pc->port_b |
			     ((now / 15085) & 1 ? PORT_B_REFRESH : 0) |
			     (pit_out(&pc->pit[2], now) ? PORT_B_OUT2 : 0);
		}
		return RUN_PC_OK;
	case CMOS_INDEX:
		if (out)
			pc->cmos_index = *v & 0x7f;	/* bit 7 masks NMI */
		else
			*v = 0xff;
		return RUN_PC_OK;
	case CMOS_DATA:
		if (out)
			cmos_write(pc, *v);
		else
			*v = cmos_read(pc, now_real);
		return RUN_PC_OK;
	case KBC_DATA:
		if (!out)
			*v = 0;
		return RUN_PC_OK;
	case KBC_CMD:
		if (!out) {
			*v = KBC_STATUS_OBF | KBC_STATUS_SYS |
			     KBC_STATUS_UNLOCKED;
			return RUN_PC_OK;
		}
		return *v == KBC_CMD_RESET ? RUN_PC_RESET : RUN_PC_OK;
	case PORT_A:
		if (!out) {
			*v = 0x02;	/* A20 on */
			return RUN_PC_OK;
		}
		return *v & 1 ? RUN_PC_RESET : RUN_PC_OK;
	case RESET_CONTROL:
		if (!out) {
			*v = pc->rcr;
			return RUN_PC_OK;
		}
		pc->rcr = *v & 0x0e;
		return *v & 0x04 ? RUN_PC_RESET : RUN_PC_OK;
	case RUN_ACPI_SLEEP_CONTROL:
		if (!out) {
			*v = 0;		/* write-only: SLP_EN reads as 0 */
			return RUN_PC_OK;
		}
		if (!(*v & RUN_ACPI_SLP_EN))
			return RUN_PC_OK;
		if ((*v & RUN_ACPI_SLP_TYP_MASK) >> RUN_ACPI_SLP_TYP_SHIFT ==
		    RUN_ACPI_S5_TYPE)
			return RUN_PC_POWEROFF;
		pc->sleep_status |= RUN_ACPI_WAK_STS;
		return RUN_PC_OK;
	case RUN_ACPI_SLEEP_STATUS:
		if (out)
			pc->sleep_status &= ~(*v & RUN_ACPI_WAK_STS);
		else
			*v = pc->sleep_status;
		return RUN_PC_OK;
	}
	return RUN_PC_NOT_MINE;
}
