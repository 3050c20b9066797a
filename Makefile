# SPDX-License-Identifier: GPL-2.0-only
#
# lvmm top-level build.
#
#   make            the module (kmod/lvmm.ko), the library, tools, selftests
#   make run        the demo: boot the sandbox, load lvmm, show it working
#   make check      the whole suite in the sandbox (see scripts/check)
#   make bench      lvmm against KVM, in one sandbox boot
#   make fuzz       lvmm_fuzz in the sandbox (FUZZ_SECONDS=60, FUZZ_SEED=time)
#   make intree     lvmm built inside a kernel tree, =m and =y, with W=1
#
# KDIR: the running kernel's build directory when there is one, else the
# newest installed Debian linux-headers-*-amd64.

KDIR ?= $(shell d=/lib/modules/$$(uname -r)/build; [ -d $$d ] && echo $$d || \
	  ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
# For the recipes: empty when no headers were installed before 'deps' ran.
export KDIR

.PHONY: all deps kmod lib tools guests selftests check run bench fuzz intree checkpatch clean

all: kmod lib tools guests selftests

deps:
	@scripts/install-deps --quiet

# Re-evaluate KDIR after deps may have installed the headers.
kmod: deps
	@$(MAKE) --no-print-directory -C "$${KDIR:-$$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1)}" \
		M=$(CURDIR) modules
	@echo "built kmod/lvmm.ko"

lib: deps
	@$(MAKE) --no-print-directory -C tools/lib

tools: lib
	@$(MAKE) --no-print-directory -C tools/vmctl
	@$(MAKE) --no-print-directory -C tools/bench
	@$(MAKE) --no-print-directory -C tools/fuzz

guests: deps
	@$(MAKE) --no-print-directory -C tools/guests

selftests: lib
	@$(MAKE) --no-print-directory -C selftests

check: all
	@scripts/check

run: all
	@scripts/run-demo

bench: all
	@scripts/bench

FUZZ_SECONDS ?= 60
FUZZ_SEED ?=
fuzz: kmod tools
	@scripts/fuzz --seconds $(FUZZ_SECONDS) $(if $(FUZZ_SEED),--seed $(FUZZ_SEED))

intree: deps
	@scripts/intree-build

checkpatch:
	@scripts/checkpatch

clean:
	@if [ -n "$(KDIR)" ]; then $(MAKE) --no-print-directory -C $(KDIR) M=$(CURDIR) clean; fi
	@$(MAKE) --no-print-directory -C tools/lib clean
	@$(MAKE) --no-print-directory -C tools/vmctl clean
	@$(MAKE) --no-print-directory -C tools/bench clean
	@$(MAKE) --no-print-directory -C tools/fuzz clean
	@$(MAKE) --no-print-directory -C tools/guests clean
	@$(MAKE) --no-print-directory -C selftests clean
	@rm -rf build
