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
#   make dkms-install   lvmm's sources in /usr/src/lvmm-VERSION, built and
#                   installed by DKMS for KVER (default: the running kernel)
#   make dkms-remove    every lvmm version from DKMS, and its sources
#
# KDIR: the running kernel's build directory when there is one, else the
# newest installed Debian linux-headers-*-amd64.

KDIR ?= $(shell d=/lib/modules/$$(uname -r)/build; [ -d $$d ] && echo $$d || \
	  ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
# For the recipes: empty when no headers were installed before 'deps' ran.
export KDIR

.PHONY: all deps kmod lib tools guests selftests check run bench fuzz intree checkpatch clean \
	dkms-deps dkms-install dkms-remove

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

# DKMS (README.md, "With DKMS"): only what the module's build reads goes
# to the source tree.  DKMS and DKMS_SOURCE let scripts/dkms-test give
# dkms private trees.
LVMM_VERSION := $(shell cat VERSION)
KVER ?= $(shell uname -r)
DKMS ?= dkms
DKMS_SOURCE ?= /usr/src
DKMS_DIR := $(DKMS_SOURCE)/lvmm-$(LVMM_VERSION)
DKMS_FILES := dkms.conf VERSION Kbuild uapi/linux/lvmm.h uapi/linux/lvmm_nl.h kmod/Makefile \
	$(sort $(filter-out %.mod.c,$(wildcard kmod/*.[ch] kmod/svm/*.[chS])))

dkms-deps:
	@scripts/install-deps --quiet dkms

# Re-running replaces what an earlier run (of any version) installed.
dkms-install: dkms-deps dkms-remove
	mkdir -p $(DKMS_DIR)
	cp --parents $(DKMS_FILES) $(DKMS_DIR)/
	$(DKMS) add lvmm/$(LVMM_VERSION)
	$(DKMS) build lvmm/$(LVMM_VERSION) -k $(KVER)
	$(DKMS) install lvmm/$(LVMM_VERSION) -k $(KVER)
	@echo "lvmm $(LVMM_VERSION) installed for $(KVER) (modprobe lvmm loads it)"

# Every version DKMS knows, from every kernel, and its sources.
dkms-remove:
	@if command -v $(firstword $(DKMS)) >/dev/null; then \
		for v in $$($(DKMS) status lvmm | sed -n 's|^lvmm/\([^,:]*\).*|\1|p' | sort -u); do \
			echo "$(DKMS) remove lvmm/$$v --all"; \
			$(DKMS) remove lvmm/$$v --all || exit 1; \
			echo "rm -rf $(DKMS_SOURCE)/lvmm-$$v"; \
			rm -rf $(DKMS_SOURCE)/lvmm-$$v; \
		done; \
	fi
	rm -rf $(DKMS_DIR)

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
