/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ucall: guest -> host calls over port I/O, as KVM's selftests do it.
 *
 * The guest fills a struct ucall on its stack and executes one 32-bit OUT to
 * UCALL_PORT with the struct's address (below 4 GiB, identity-mapped) in
 * EAX; the host reads the struct through its mapping of guest memory.
 */
#ifndef SELFTEST_LVMM_UCALL_H
#define SELFTEST_LVMM_UCALL_H

#include "test_util.h"

#define UCALL_PORT	0xE0

enum {
	UCALL_NONE,
	UCALL_SYNC,
	UCALL_ABORT,
	UCALL_DONE,
};

#define UCALL_MAX_ARGS	6

struct ucall {
	u64 cmd;
	u64 args[UCALL_MAX_ARGS];
};

/* Guest side. */
void ucall(u64 cmd, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5);

#define GUEST_SYNC_ARGS(a0, a1, a2, a3, a4)				\
	ucall(UCALL_SYNC, (u64)(a0), (u64)(a1), (u64)(a2), (u64)(a3),	\
	      (u64)(a4), 0)
#define GUEST_SYNC(arg)		GUEST_SYNC_ARGS(arg, 0, 0, 0, 0)
#define GUEST_DONE()		ucall(UCALL_DONE, 0, 0, 0, 0, 0, 0)

/* ABORT: args = expression, file, line, has values, value a, value b. */
#define __GUEST_ASSERT(cond, str, vals, a, b) do {			\
	if (!(cond))							\
		ucall(UCALL_ABORT, (u64)(str), (u64)__FILE__, __LINE__,	\
		      vals, (u64)(a), (u64)(b));			\
} while (0)

#define GUEST_ASSERT(cond)	__GUEST_ASSERT(cond, #cond, 0, 0, 0)

#define GUEST_ASSERT_EQ(a, b) do {					\
	u64 __ga = (u64)(a), __gb = (u64)(b);				\
	__GUEST_ASSERT(__ga == __gb, #a " == " #b, 1, __ga, __gb);	\
} while (0)

#define GUEST_FAIL(str)		__GUEST_ASSERT(0, str, 0, 0, 0)

struct lvmm_vcpu;

/*
 * Host side: decode the exit as a ucall.  Returns the command, UCALL_NONE
 * when the last exit was not a ucall.
 */
u64 get_ucall(struct lvmm_vcpu *vcpu, struct ucall *uc);

/*
 * Run @vcpu once and require a ucall exit; fail the test with the guest's
 * file:line and expression on UCALL_ABORT.  Returns the command.
 */
u64 vcpu_run_ucall(struct lvmm_vcpu *vcpu, struct ucall *uc);

/* Fail the test with the text of a UCALL_ABORT. */
void __attribute__((noreturn))
report_guest_assert(struct lvmm_vcpu *vcpu, struct ucall *uc);

/* Run and expect UCALL_SYNC with args[0] == @val. */
void vcpu_expect_sync(struct lvmm_vcpu *vcpu, u64 val);
/* Run and expect UCALL_DONE. */
void vcpu_expect_done(struct lvmm_vcpu *vcpu);

#endif /* SELFTEST_LVMM_UCALL_H */
