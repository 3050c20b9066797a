/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Host-side assertions for the lvmm selftests, in the shape of KVM's
 * tools/testing/selftests/kvm/include/test_util.h.
 */
#ifndef SELFTEST_LVMM_TEST_UTIL_H
#define SELFTEST_LVMM_TEST_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <linux/types.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif
#define ALIGN_UP(x, a)		(((x) + (a) - 1) & ~((u64)(a) - 1))
#define SZ_4K			0x1000ULL
#define SZ_2M			0x200000ULL
#define SZ_1G			0x40000000ULL

/* Exit code the test process dies with when an assertion fails. */
#define TEST_ASSERT_EXIT	254

void __attribute__((noreturn, format(printf, 5, 6)))
test_assert(bool exp, const char *exp_str, const char *file, unsigned int line,
	    const char *fmt, ...);

/*
 * Fail the running test with file:line, the expression, errno's text and a
 * message.  Usable from any host thread of a test.
 */
#define TEST_ASSERT(e, fmt, ...) do {					\
	if (!(e))							\
		test_assert(false, #e, __FILE__, __LINE__, fmt, ##__VA_ARGS__); \
} while (0)

#define TEST_ASSERT_EQ(a, b) do {					\
	typeof(a) __a = (a);						\
	typeof(b) __b = (b);						\
	TEST_ASSERT(__a == __b, "%s == %s: 0x%llx != 0x%llx", #a, #b,	\
		    (unsigned long long)__a, (unsigned long long)__b);	\
} while (0)

#define TEST_FAIL(fmt, ...)						\
	test_assert(false, "(fail)", __FILE__, __LINE__, fmt, ##__VA_ARGS__)

/*
 * Skip the current kselftest-harness test (TEST()/TEST_F() body only) when
 * a requirement of the machine is not met.
 */
#define TEST_REQUIRE(cond) do {						\
	if (!(cond))							\
		SKIP(return, "requirement not met: %s", #cond);		\
} while (0)

#endif /* SELFTEST_LVMM_TEST_UTIL_H */
