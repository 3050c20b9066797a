// SPDX-License-Identifier: GPL-2.0
/*
 * Host-side assertion failure report, as KVM's selftests print it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "test_util.h"

void test_assert(bool exp, const char *exp_str, const char *file,
		 unsigned int line, const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	if (exp)
		exit(0);	/* not reached: the macros only call on failure */

	fprintf(stderr, "==== Test Assertion Failure ====\n"
		"  %s:%u: %s\n  errno=%d (%s)\n  ",
		file, line, exp_str, err, strerror(err));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stdout);
	fflush(stderr);
	exit(TEST_ASSERT_EXIT);
}
