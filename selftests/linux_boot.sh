#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Linux under vmctl run, in the sandbox (as root, lvmm loaded):
#
#   scripts/linux-guest build/linux-guest
#   scripts/vmtest --smp 2 --add build/linux-guest -- /linux-guest/linux_boot.sh
#
# Boots the Debian kernel (vmlinuz next to this script, or in DIR, the
# first argument) with its busybox initramfs (initrd.cpio, whose /init is
# selftests/linux_boot_init.sh) with 1 and with 2 vCPUs ($LINUX_BOOT_CPUS),
# on a pseudo-terminal (guests_pty), and checks for each boot:
#   - the guest reaches its init;
#   - nproc is the number of vCPUs;
#   - the local timer interrupts (LOC in /proc/interrupts), read twice a
#     second apart, rise on every CPU;
#   - the clocksource is tsc where this machine's TSC is invariant
#     (constant_tsc and nonstop_tsc here: lvmm passes that CPUID bit on,
#     and Linux then prefers tsc to kvm-clock, as on KVM), else kvm-clock,
#     and the clock events are lapic-deadline;
#   - a line typed on the console reaches the guest's shell and runs;
#   - the guest's reboot ends vmctl run with status 16, or, in the boot
#     with $LINUX_BOOT_POWEROFF vCPUs (2), whose command line has
#     lvmm.poweroff, its poweroff (ACPI S5) ends it with status 0;
#   - the console, which includes every line of the guest's kernel log
#     that looks like a problem (its init prints them: a quiet boot's
#     console shows no warnings), has no BUG:, WARNING:, Oops, Call Trace,
#     soft lockup, unchecked MSR access, panic, general protection, ACPI
#     error or ACPI warning line.
# Output is kselftest TAP.  A boot gets $LINUX_BOOT_TIMEOUT seconds (120;
# one takes 12-18 s in the sandbox, the debug kernel's included).

VMCTL=${VMCTL:-vmctl}
here=$(cd "$(dirname "$0")" && pwd)
D=${1:-$here}
PTY=${GUESTS_PTY:-$here/guests_pty}
CPUS=${LINUX_BOOT_CPUS:-"1 2"}
MEM=${LINUX_BOOT_MEM:-256M}
POWEROFF=${LINUX_BOOT_POWEROFF:-2}
export GUESTS_PTY_TIMEOUT=${LINUX_BOOT_TIMEOUT:-120}
T=$(mktemp -d /tmp/linux_boot.XXXXXX)
trap 'rm -rf "$T"' EXIT

n=0 pass=0 fail=0 skip=0
# The clocksource Linux picks, as on KVM: tsc over kvm-clock only with an
# invariant TSC, which lvmm offers when this machine has one.
if grep -qw constant_tsc /proc/cpuinfo && grep -qw nonstop_tsc /proc/cpuinfo; then
	want_cs=tsc cs_why="the TSC is invariant here"
else
	want_cs=kvm-clock cs_why="no invariant TSC here"
fi
bad='BUG:|WARNING:|Oops|Call Trace|soft lockup|unchecked MSR access|Kernel panic|general protection|ACPI (BIOS )?Error|ACPI (BIOS )?Warning'
# A boot-time notice of this CPU model, not a kernel warning (scripts/vmtest).
benign='Speculative Return Stack Overflow: WARNING'
typed='echo typed-$((6 * 7))-ran'

echo "TAP version 13"
why=""
[ -c /dev/lvmm ] || why="/dev/lvmm is missing: load lvmm first"
[ -r "$D/vmlinuz" ] && [ -r "$D/initrd.cpio" ] ||
	why="no $D/vmlinuz and initrd.cpio: stage them with scripts/linux-guest"
[ -x "$PTY" ] || why="no guests_pty helper (selftests/build/guests_pty) next to linux_boot.sh"
if [ -n "$why" ]; then
	echo "1..0 # SKIP $why"
	echo "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0"
	exit 4
fi

ok() {
	n=$((n + 1)) pass=$((pass + 1))
	echo "ok $n $1"
}

# not_ok NAME [COMMENT...]: a failure, and why.
not_ok() {
	n=$((n + 1)) fail=$((fail + 1))
	echo "not ok $n $1"
	shift
	for l in "$@"; do printf '%s\n' "$l" | sed 's/^/# /'; done
}

check() {
	if [ -z "$2" ]; then ok "$1"; else not_ok "$1" "$2"; fi
}

# A line the guest's init said: "linux-boot: WHAT ...", without WHAT.
said() { sed -n "s/^linux-boot: $1 //p" "$T/out" | head -n 1; }

uptime_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

for cpus in $CPUS; do
	cpu_s=vCPUs
	[ "$cpus" = 1 ] && cpu_s=vCPU
	t="$cpus $cpu_s"
	append="console=ttyS0 panic=-1 quiet"
	end=reboot want=16
	if [ "$cpus" = "$POWEROFF" ]; then
		append="$append lvmm.poweroff"
		end=poweroff want=0
	fi
	t0=$(uptime_ms)
	# The guest types nothing until its init asks; then one line, Enter.
	timeout -s KILL $((GUESTS_PTY_TIMEOUT + 90)) \
		"$PTY" "linux-boot: type a command" "$typed\\x0d" -- \
		$VMCTL run -v --name "linux-boot$cpus" --cpus "$cpus" --mem "$MEM" \
		--kernel "$D/vmlinuz" --initrd "$D/initrd.cpio" \
		--append "$append" > "$T/raw" 2>&1 < /dev/null
	rc=$?
	ms=$(($(uptime_ms) - t0))
	tr -d '\r' < "$T/raw" > "$T/out"
	echo "# $t: vmctl run took $((ms / 1000)).$((ms % 1000 / 100)) s, status $rc"
	sed -n 's/^vmctl: \(start-up\|ran\) /# \1 /p' "$T/out"

	grep -q '^linux-boot: init is running' "$T/out" && init=1 || init=0
	check "$t: the guest reaches its init" \
		"$([ $init = 1 ] || echo "no 'init is running' from the guest's /init")"

	np=$(said nproc)
	check "$t: nproc is $cpus" "$([ "$np" = "$cpus" ] || echo "nproc said '$np'")"

	# "LOC: N0 N1 ... Local timer interrupts": one count per CPU.
	counts='{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) printf "%s%s", (i > 2 ? " " : ""), $i }'
	l1=$(said loc1 | awk "$counts")
	l2=$(said loc2 | awk "$counts")
	loc_why=$(echo "$l1|$l2" | awk -F'|' -v cpus="$cpus" '{
		a = split($1, x, " "); b = split($2, y, " ")
		if (a != cpus || b != cpus) { printf "counts for %d and %d CPUs, not %d", a, b, cpus; exit }
		for (i = 1; i <= a; i++) if (y[i] <= x[i]) printf "CPU%d: %d then %d; ", i - 1, x[i], y[i]
	}')
	check "$t: local timer interrupts rise on every CPU (LOC ${l1:-?} -> ${l2:-?})" "$loc_why"

	cs=$(said clocksource)
	check "$t: the clocksource is $want_cs ($cs_why)" \
		"$([ "$cs" = "$want_cs" ] || echo "it is '$cs'")"
	ce=$(said clockevent)
	check "$t: the clock events are the local APIC's TSC deadline" \
		"$([ "$ce" = lapic-deadline ] || echo "they are '$ce'")"

	check "$t: a line typed on the console runs in the guest" \
		"$(grep -q 'typed-42-ran' "$T/out" || echo "no 'typed-42-ran' on the console ($(said read))")"

	# vmctl -v says which port ended it (status 0 is also "halted").
	how='reset the machine'
	[ $end = poweroff ] && how='powered the machine off'
	end_why=""
	[ "$rc" = "$want" ] ||
		end_why="status $rc (guests_pty: 124 is its ${GUESTS_PTY_TIMEOUT} s timeout; 137: killed)"
	[ -z "$end_why" ] && ! grep -q "^vmctl: vCPU [0-9]* $how" "$T/out" &&
		end_why="status $rc, but vmctl -v did not say '$how'"
	check "$t: $end ends vmctl run with status $want" "$end_why"

	problems=$(grep -aE "$bad" "$T/out" | grep -avE "$benign")
	if [ -z "$problems" ] && grep -q '^linux-boot: kernel log scanned' "$T/out"; then
		ok "$t: no kernel problem on the guest's console or in its log"
	elif [ -z "$problems" ]; then
		not_ok "$t: no kernel problem on the guest's console or in its log" \
			"the guest's init did not get to scan its kernel log"
	else
		not_ok "$t: no kernel problem on the guest's console or in its log" \
			"$(echo "$problems" | head -n 20)"
	fi

	# The console is part of the result (a quiet boot's is short).
	echo "# --- $t: the guest's console (at most its last 80 lines):"
	tail -n 80 "$T/out" | sed 's/^/#   /'
	$VMCTL list 2>/dev/null | grep -q "linux-boot$cpus" &&
		not_ok "$t: the VM is gone after vmctl run ended" "vmctl list shows linux-boot$cpus"
done

echo "1..$n"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ $fail = 0 ]
