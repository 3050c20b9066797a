// SPDX-License-Identifier: GPL-2.0-only
/*
 * spin: a busy loop on every vCPU, with a heartbeat every N iterations.
 *
 * Command line: every=N (iterations per heartbeat, default 20M; k and M
 * suffixes), beats=K (halt after K heartbeats; default 0, forever).
 */
#include "guest.h"

void guest_main(unsigned int cpu)
{
	uint64_t every = cmdline_u64("every", 20000000);
	uint64_t beats = cmdline_u64("beats", 0);
	uint64_t start, beat, i;
	volatile uint64_t counter = 0;

	if (!every)
		every = 1;
	if (cpu == 0)
		printf("spin: %s; a heartbeat every %u iterations%s\n",
		       guest_format, (unsigned int)every,
		       beats ? "" : ", forever");
	start = cpu == 0 ? pmtimer_ticks() : 0;
	for (beat = 1; !beats || beat <= beats; beat++) {
		for (i = 0; i < every; i++)
			counter++;
		if (cpu == 0)
			printf("spin: vCPU %u heartbeat %u: %u iterations, %u ms\n",
			       cpu, (unsigned int)beat, (unsigned int)counter,
			       (unsigned int)ticks_to_ms(pmtimer_ticks() - start));
		else
			printf("spin: vCPU %u heartbeat %u: %u iterations\n",
			       cpu, (unsigned int)beat, (unsigned int)counter);
	}
	printf("spin: vCPU %u done after %u heartbeats\n", cpu,
	       (unsigned int)beats);
}
