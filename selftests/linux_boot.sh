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
# Then a guest with $LINUX_MOVE_CPUS vCPUs (2) moves while it sleeps: its
# init (lvmm.drift=S) reads its clock five times, sleeps S seconds
# ($LINUX_MOVE_SLEEP, 15) and reads it five times more.  During the
# sleep vmctl save --stop writes it to a file, vmctl run --restore goes
# on from there, and where this kernel has TCP/IP, vmctl migrate moves
# that one live to a vmctl run --incoming.  The last five readings must
# come on the last host's console, S seconds or a little more of the
# guest's own clock after the first five, and its kernel log must be
# clean.
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

# ---- a Linux guest saved, restored and migrated while it sleeps ----------

MCPUS=${LINUX_MOVE_CPUS:-2}
SLEEP=${LINUX_MOVE_SLEEP:-15}
t="moved, $MCPUS vCPUs"
# wait_for N FILES...: up to $GUESTS_PTY_TIMEOUT s for N drift-clock lines.
wait_for() {
	local want=$1 i=0
	shift
	while [ "$(cat "$@" 2>/dev/null | grep -c '^linux-boot: drift-clock ')" -lt "$want" ] &&
	      [ $i -lt $((GUESTS_PTY_TIMEOUT * 10)) ]; do
		sleep 0.1; i=$((i + 1))
	done
	[ $i -lt $((GUESTS_PTY_TIMEOUT * 10)) ]
}
# The port a vmctl run --incoming 127.0.0.1:0 said it waits on.
in_port() { sed -n 's/^vmctl: waiting for a migration on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1"; }

$VMCTL run --name lxmove --cpus "$MCPUS" --mem "$MEM" --kernel "$D/vmlinuz" \
	--initrd "$D/initrd.cpio" --append "console=ttyS0 panic=-1 quiet lvmm.drift=$SLEEP" \
	--console "$T/m0" > "$T/m0.out" 2> "$T/m0.err" < /dev/null &
p0=$!
last="$T/m0"
if wait_for 5 "$T/m0"; then
	ok "$t: the guest reads its clock"
	$VMCTL save --stop lxmove "$T/lx.snap" > "$T/save.out" 2>&1
	rc=$?
	check "$t: vmctl save --stop of it" "$([ $rc = 0 ] || cat "$T/save.out")"
	wait "$p0"; rc=$?
	check "$t: its vmctl run sees it saved and gone (status 12)" \
		"$([ $rc = 12 ] || echo "status $rc: $(cat "$T/m0.err")")"
	$VMCTL run --restore "$T/lx.snap" --console "$T/m1" > "$T/m1.out" 2> "$T/m1.err" < /dev/null &
	p1=$!
	last="$T/m1" lastpid=$p1 want=12
	if [ -e /proc/net/tcp ]; then
		$VMCTL run --incoming 127.0.0.1:0 --name lxmove2 --console "$T/m2" \
			> "$T/m2.out" 2> "$T/m2.err" < /dev/null &
		p2=$!
		i=0
		while [ -z "$(in_port "$T/m2.err")" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		i=0
		while ! $VMCTL show lxmove > /dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		$VMCTL migrate lxmove "127.0.0.1:$(in_port "$T/m2.err")" > "$T/mig.out" 2>&1
		rc=$?
		check "$t: vmctl migrate of the restored guest ($(tr '\r' '\n' < "$T/mig.out" | grep '^migrated' | head -n 1))" \
			"$([ $rc = 0 ] || cat "$T/mig.out" "$T/m2.err")"
		wait "$p1"; rc=$?
		check "$t: the restored guest's vmctl run sees it migrated (status 14)" \
			"$([ $rc = 14 ] || echo "status $rc: $(cat "$T/m1.err")")"
		last="$T/m2" lastpid=$p2
	else
		n=$((n + 1)) skip=$((skip + 1))
		echo "ok $n $t: vmctl migrate # SKIP no TCP/IP in this kernel"
	fi
	if wait_for 10 "$T/m0" "$T/m1" "$T/m2"; then
		ok "$t: it reads its clock again, after the move"
	else
		not_ok "$t: it reads its clock again, after the move" "$(tail -n 5 "$T/m0" "$T/m1" "$T/m2" "$last.err" 2>&1)"
	fi
	clocks=$(grep -h '^linux-boot: drift-clock ' "$last" | awk '{ print $3 }')
	first=$(grep -h '^linux-boot: drift-clock ' "$T/m0" | awk 'NR == 5 { print $3 }')
	again=$(echo "$clocks" | tail -n 1)
	check "$t: the last five readings come on the last host's console" \
		"$([ "$(echo "$clocks" | grep -c .)" = 5 ] || echo "$(echo "$clocks" | grep -c .) on $last")"
	check "$t: the guest slept $SLEEP s of its own clock ($first -> $again ns)" \
		"$(awk -v a="${first:-0}" -v b="${again:-0}" -v s="$SLEEP" 'BEGIN {
			d = (b - a) / 1e9
			if (d < s || d > s + 10) printf "%.3f s between the blocks", d }')"
	i=0
	while ! grep -q '^linux-boot: kernel log scanned' "$last" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	problems=$(cat "$T/m0" "$T/m1" "$T/m2" 2>/dev/null | grep -aE "$bad" | grep -avE "$benign")
	check "$t: no kernel problem on its consoles or in its log" \
		"$(if [ -n "$problems" ]; then echo "$problems" | head -n 20
		   elif ! grep -q '^linux-boot: kernel log scanned' "$last"; then echo "the guest's init did not get to scan its kernel log"; fi)"
	echo "# --- $t: the guest's consoles, host after host:"
	cat "$T/m0" "$T/m1" "$T/m2" 2>/dev/null | tr -d '\r' | tail -n 40 | sed 's/^/#   /'
	$VMCTL destroy lxmove2 > /dev/null 2>&1 || $VMCTL destroy lxmove > /dev/null 2>&1
	wait "$lastpid"; rc=$?
	check "$t: destroyed, its last vmctl run ends (status $want)" \
		"$([ $rc = $want ] || echo "status $rc: $(cat "$last.err")")"
else
	not_ok "$t: the guest reads its clock" "$(cat "$T/m0.err"; tail -n 20 "$T/m0")"
	kill -9 "$p0" 2> /dev/null
	wait "$p0"
fi

echo "1..$n"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ $fail = 0 ]
