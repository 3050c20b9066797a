// SPDX-License-Identifier: GPL-2.0-only
/*
 * memtouch: write a pattern over N MiB of guest memory at a given rate,
 * read it back, and report mismatches and pages touched per second.
 *
 * Command line: mib=N (default 16), rate=R (MiB/s, default 0: as fast as
 * it goes), passes=P (default 1), inject=1 (corrupt one word after
 * writing, to show that the check catches it).
 * Halts (vmctl exits 0) when every word matched; otherwise leaves through
 * the debug-exit port with 1 (status 3), or 2 (status 5) if N MiB do not
 * fit in the guest's memory.
 */
#include "guest.h"

#define PAGE		4096UL
#define MIB		(1UL << 20)
#define BATCH		64		/* pages between rate checks */

static uint64_t pattern(uint64_t addr, uint64_t pass)
{
	return addr ^ (pass * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a5a5a00000000ULL;
}

static uint64_t per_s(uint64_t n, uint64_t ticks)
{
	return ticks ? n * PMTMR_HZ / ticks : 0;
}

void guest_main(unsigned int cpu)
{
	uint64_t mib = cmdline_u64("mib", 16);
	uint64_t rate = cmdline_u64("rate", 0);
	uint64_t passes = cmdline_u64("passes", 1);
	uint64_t base, end, pages, p, w, t0, t, due, bad = 0, pass;
	volatile uint64_t *q;

	if (cpu)
		return;
	base = (guest_used_end() + 2 * MIB - 1) & ~(2 * MIB - 1);
	end = base + mib * MIB;
	printf("memtouch: %s; %u MiB at 0x%x, %s%u MiB/s, %u pass%s\n",
	       guest_format, (unsigned int)mib, (unsigned int)base,
	       rate ? "" : "unthrottled, not ", (unsigned int)rate,
	       (unsigned int)passes, passes == 1 ? "" : "es");
	if (!mib || end > guest_mem_end()) {
		printf("memtouch: %u MiB do not fit: the guest's memory ends at 0x%x; give a smaller mib= or a larger --mem\n",
		       (unsigned int)mib, (unsigned int)guest_mem_end());
		guest_exit(2);
	}
	pages = mib * MIB / PAGE;

	for (pass = 1; pass <= passes; pass++) {
		t0 = pmtimer_ticks();
		for (p = 0; p < pages; p++) {
			q = (volatile uint64_t *)(base + p * PAGE);
			for (w = 0; w < PAGE / 8; w++)
				q[w] = pattern((uint64_t)&q[w], pass);
			if (!rate || (p + 1) % BATCH)
				continue;
			/* Ticks by which (p + 1) pages are due at rate MiB/s. */
			due = (p + 1) * PAGE * PMTMR_HZ / (rate * MIB);
			while (pmtimer_ticks() - t0 < due)
				cpu_relax();
		}
		t = pmtimer_ticks() - t0;
		printf("memtouch: pass %u: wrote %u pages in %u ms: %u pages/s\n",
		       (unsigned int)pass, (unsigned int)pages,
		       (unsigned int)ticks_to_ms(t), (unsigned int)per_s(pages, t));
		if (cmdline_u64("inject", 0)) {
			q = (volatile uint64_t *)(base + PAGE + 8);
			*q ^= 1;
			printf("memtouch: injected an error at 0x%x\n",
			       (unsigned int)(uintptr_t)q);
		}

		t0 = pmtimer_ticks();
		for (p = 0; p < pages; p++) {
			q = (volatile uint64_t *)(base + p * PAGE);
			for (w = 0; w < PAGE / 8; w++) {
				uint64_t want = pattern((uint64_t)&q[w], pass);
				uint64_t got = q[w];

				if (got == want)
					continue;
				if (bad++ < 4)
					printf("memtouch: mismatch at 0x%lx: read 0x%lx, expected 0x%lx\n",
					       (unsigned long)&q[w], (unsigned long)got,
					       (unsigned long)want);
			}
		}
		t = pmtimer_ticks() - t0;
		printf("memtouch: pass %u: verified %u pages in %u ms: %u pages/s, %u mismatches\n",
		       (unsigned int)pass, (unsigned int)pages,
		       (unsigned int)ticks_to_ms(t), (unsigned int)per_s(pages, t),
		       (unsigned int)bad);
	}
	if (bad) {
		printf("memtouch: FAILED: %u mismatched words\n", (unsigned int)bad);
		guest_exit(1);
	}
	printf("memtouch: OK\n");
}
