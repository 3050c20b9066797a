// SPDX-License-Identifier: GPL-2.0
/*
 * ucall over port I/O: the guest half and the host's decoding of it.
 */
#include <stdio.h>
#include <string.h>

#include "lvmm_util.h"

void ucall(u64 cmd, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5)
{
	struct ucall uc;

	uc.cmd = cmd;
	uc.args[0] = a0;
	uc.args[1] = a1;
	uc.args[2] = a2;
	uc.args[3] = a3;
	uc.args[4] = a4;
	uc.args[5] = a5;
	/* The stack is below 4 GiB, so the address fits in EAX. */
	asm volatile("outl %%eax, %0"
		     :: "i"(UCALL_PORT), "a"((u32)(u64)&uc) : "memory");
}

u64 get_ucall(struct lvmm_vcpu *vcpu, struct ucall *uc)
{
	struct lvmm_run *run = vcpu->run;
	u32 gpa;

	memset(uc, 0, sizeof(*uc));
	if (run->exit_reason != LVMM_EXIT_IO || run->io.port != UCALL_PORT ||
	    run->io.direction != LVMM_EXIT_IO_OUT || run->io.size != 4 ||
	    run->io.count != 1)
		return UCALL_NONE;

	memcpy(&gpa, vcpu_io_data(vcpu), sizeof(gpa));
	memcpy(uc, addr_gpa2hva(vcpu->vm, gpa), sizeof(*uc));
	return uc->cmd;
}

/* Guest strings are in the image, read through guest memory. */
static const char *guest_str(struct lvmm_vcpu *vcpu, u64 gva)
{
	static char buf[256];

	strncpy(buf, addr_gva2hva(vcpu->vm, gva), sizeof(buf) - 1);
	return buf;
}

void report_guest_assert(struct lvmm_vcpu *vcpu, struct ucall *uc)
{
	char expr[256];

	snprintf(expr, sizeof(expr), "%s", guest_str(vcpu, uc->args[0]));
	if (uc->args[3])
		TEST_FAIL("vCPU %u: guest assertion failed at %s:%llu: %s (0x%llx vs 0x%llx)",
			  vcpu->id, guest_str(vcpu, uc->args[1]),
			  (unsigned long long)uc->args[2], expr,
			  (unsigned long long)uc->args[4],
			  (unsigned long long)uc->args[5]);
	TEST_FAIL("vCPU %u: guest assertion failed at %s:%llu: %s",
		  vcpu->id, guest_str(vcpu, uc->args[1]),
		  (unsigned long long)uc->args[2], expr);
}

static void __attribute__((noreturn)) unexpected_exit(struct lvmm_vcpu *vcpu)
{
	struct lvmm_run *run = vcpu->run;
	struct lvmm_regs regs;

	lvmm_get_regs(&vcpu->h, &regs);
	switch (run->exit_reason) {
	case LVMM_EXIT_IO:
		TEST_FAIL("vCPU %u: unexpected IO exit: port 0x%x size %u dir %u count %u, rip 0x%llx",
			  vcpu->id, run->io.port, run->io.size,
			  run->io.direction, run->io.count, regs.rip);
	case LVMM_EXIT_MMIO:
		TEST_FAIL("vCPU %u: unexpected MMIO exit: gpa 0x%llx len %u write %u, rip 0x%llx",
			  vcpu->id, run->mmio.phys_addr, run->mmio.len,
			  run->mmio.is_write, regs.rip);
	case LVMM_EXIT_INTERNAL_ERROR:
		TEST_FAIL("vCPU %u: internal error, suberror %u data[0] 0x%llx, rip 0x%llx",
			  vcpu->id, run->internal.suberror,
			  run->internal.data[0], regs.rip);
	case LVMM_EXIT_UNKNOWN:
		TEST_FAIL("vCPU %u: unknown exit, hardware reason 0x%llx, rip 0x%llx",
			  vcpu->id, run->hw.hardware_exit_reason, regs.rip);
	case LVMM_EXIT_FAIL_ENTRY:
		TEST_FAIL("vCPU %u: entry failed, reason 0x%llx",
			  vcpu->id, run->fail_entry.hardware_entry_failure_reason);
	default:
		TEST_FAIL("vCPU %u: unexpected exit %s (%u), rip 0x%llx",
			  vcpu->id, exit_reason_str(run->exit_reason),
			  run->exit_reason, regs.rip);
	}
}

u64 vcpu_run_ucall(struct lvmm_vcpu *vcpu, struct ucall *uc)
{
	u64 cmd;

	vcpu_run(vcpu);
	cmd = get_ucall(vcpu, uc);
	if (cmd == UCALL_NONE)
		unexpected_exit(vcpu);
	if (cmd == UCALL_ABORT)
		report_guest_assert(vcpu, uc);
	return cmd;
}

void vcpu_expect_sync(struct lvmm_vcpu *vcpu, u64 val)
{
	struct ucall uc;
	u64 cmd = vcpu_run_ucall(vcpu, &uc);

	TEST_ASSERT(cmd == UCALL_SYNC, "vCPU %u: wanted SYNC(0x%llx), got ucall %llu",
		    vcpu->id, (unsigned long long)val, (unsigned long long)cmd);
	TEST_ASSERT(uc.args[0] == val, "vCPU %u: wanted SYNC(0x%llx), got SYNC(0x%llx)",
		    vcpu->id, (unsigned long long)val,
		    (unsigned long long)uc.args[0]);
}

void vcpu_expect_done(struct lvmm_vcpu *vcpu)
{
	struct ucall uc;
	u64 cmd = vcpu_run_ucall(vcpu, &uc);

	TEST_ASSERT(cmd == UCALL_DONE, "vCPU %u: wanted DONE, got ucall %llu (arg 0x%llx)",
		    vcpu->id, (unsigned long long)cmd,
		    (unsigned long long)uc.args[0]);
}
