#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Live migration between two machines, each with its own kernel and lvmm,
# over an emulated network link.  Runs on machine a of
#
#   scripts/vmtest --two --add DIR -- DIR/migrate_2host.sh
#
# (make check's "two" machine), with vmctl on PATH and the bundled guests
# in DIR/guests, DIR/build or /build.  'on b CMD' runs CMD on machine b
# (scripts/vmtest --help, Documentation/sandbox.rst, section 7).
#
#   - the link carries packets, and 'on b' runs commands and brings their
#     status back;
#   - vmctl migrate of a spinning guest to a port where nothing listens
#     fails, and to a b that refuses the VM (one of that name runs
#     there) too: the guest runs on at the source;
#   - a memtouch guest (16 MiB at 4 MiB/s, 3 passes, each written then
#     verified) started on a moves to 'vmctl run --incoming' on b a
#     second into its first pass: vmctl migrate exits 0, a's vmctl run
#     exits 14 (LVMM_EXIT_MIGRATED), the guest's output goes on on b from
#     where it stopped on a (each pass once, none lost, none repeated),
#     its verifications find every word it wrote on either host, b's
#     vmctl run exits 0 (the guest halted), no VM is left on either
#     machine, and the guest's clock went on at its rate on b (a pass run
#     wholly there took 4 s of its PM timer, not a jump).
#
# Output is kselftest TAP.

VMCTL=${VMCTL:-vmctl}
B=10.77.0.2
PORT=7001
here=$(cd "$(dirname "$0")" && pwd)
for d in "${GUEST_DIR:-}" "$here/guests" "$here/build" /build; do
	[ -n "$d" ] && [ -f "$d/memtouch.bin" ] && { G=$d; break; }
done
T=$(mktemp -d /tmp/migrate_2host.XXXXXX)
src_pid= stay_pid=
cleanup() {
	[ -n "$src_pid" ] && kill "$src_pid" 2>/dev/null
	[ -n "$stay_pid" ] && kill "$stay_pid" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

n=0 pass=0 fail=0 skip=0

ok() {
	n=$((n + 1)) pass=$((pass + 1))
	echo "ok $n $1"
}

not_ok() {
	n=$((n + 1)) fail=$((fail + 1))
	echo "not ok $n $1"
	shift
	for l in "$@"; do echo "# $l"; done
}

skip_rest() {
	for t in "$@"; do
		n=$((n + 1)) skip=$((skip + 1))
		echo "ok $n $t # SKIP $why"
	done
}

# skip_all WHY [TEST...]: TEST... and the migration's tests skip; the end.
skip_all() {
	why=$1
	shift
	IFS='
'
	skip_rest "$@" $MIG_TESTS
	totals
}

totals() {
	echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
	[ $fail = 0 ]
	exit
}

# show NAME FILE: the last lines of FILE as TAP comments.
show() {
	echo "# --- $1:"
	sed 's/^/#   /' "$2" | tail -n 25
}

# wait_for SECONDS CMD...: until CMD succeeds; 1 if it never did.
wait_for() {
	t=$1
	shift
	while [ "$t" -gt 0 ]; do
		"$@" && return 0
		sleep 1
		t=$((t - 1))
	done
	return 1
}

PASSES=3
MIG_TESTS="migrate to a closed port fails, the guest stays
migrate to a b that refuses fails, the guest stays
incoming listens on b
vmctl migrate exits 0
the source's vmctl run exits 14 (migrated)
the destination's vmctl run exits 0 (the guest halted)
the guest's output goes on on b, each pass once
the guest verified every word after the move
the guest's clock kept its rate on b
no VM is left on either machine"

echo "TAP version 13"

# ---- the link and the command channel --------------------------------------

if ping -c 3 -W 5 $B > "$T/ping" 2>&1; then
	ok "link: a reaches b ($B)"
else
	not_ok "link: a reaches b ($B)"
	show ping "$T/ping"
	skip_all "no link to b" "on b runs commands"
fi

out=$(on b uname -n)
rc1=$?
on b 'echo to stderr >&2; exit 3' > "$T/on" 2>&1
rc2=$?
if [ $rc1 = 0 ] && [ "$out" = lvmm-b ] && [ $rc2 = 3 ] &&
   [ "$(cat "$T/on")" = "to stderr" ]; then
	ok "on b runs commands"
else
	not_ok "on b runs commands" "uname -n: '$out' status $rc1; exit 3: status $rc2" \
		"output '$(cat "$T/on")'"
fi

[ -n "${G:-}" ] || skip_all "no bundled guests (memtouch.bin)"
$VMCTL help 2>/dev/null | grep -q '^  vmctl migrate ' || skip_all "this vmctl has no migrate"
for m in a b; do
	on $m "$VMCTL version" | awk '$1 == "migrate" && $2 > 0 { f = 1 } END { exit !f }' ||
		skip_all "lvmm on $m has no LVMM_CAP_MIGRATE"
done

# ---- migrations that cannot start: a spinning guest stays ------------------

$VMCTL run --name stay --console none "$G/spin.bin" > /dev/null 2>&1 < /dev/null &
stay_pid=$!
# The guest runs on at the source: its vmctl run, and the VM, running.
running() { $VMCTL list 2>/dev/null | awk -v n="$1" '$2 == n && $3 == "running" { f = 1 } END { exit !f }'; }
stays() { kill -0 $stay_pid 2>/dev/null && running stay; }
wait_for 10 running stay

$VMCTL migrate stay $B:7009 > "$T/closed" 2>&1
rc=$?
if [ $rc != 0 ] && stays; then
	ok "migrate to a closed port fails, the guest stays"
else
	not_ok "migrate to a closed port fails, the guest stays" \
		"vmctl migrate exit status $rc; the source's vmctl run $(kill -0 $stay_pid 2>/dev/null && echo runs || echo ended)"
	show "vmctl migrate" "$T/closed"
fi

# 'vmctl run --incoming PORT' waits on b; its status goes to /tmp/PORT.rc.
incoming() {
	on b "rm -f /tmp/$1.rc; ($VMCTL run --incoming $B:$1 > /tmp/$1.out 2> /tmp/$1.err < /dev/null; echo \$? > /tmp/$1.rc) &" > /dev/null
}
listening() { on b netstat -ltn 2>/dev/null | grep -q ":$1 "; }

# b has a VM named stay already: lvmm there refuses the header (EEXIST).
on b "$VMCTL run --name stay --console none $G/spin.bin > /dev/null 2>&1 < /dev/null &" > /dev/null
wait_for 10 on b "$VMCTL list | grep -q ' stay '"
incoming 7002
wait_for 20 listening 7002
$VMCTL migrate stay $B:7002 > "$T/refused" 2>&1
rc=$?
wait_for 20 on b test -s /tmp/7002.rc
if [ $rc != 0 ] && stays && on b test -s /tmp/7002.rc; then
	ok "migrate to a b that refuses fails, the guest stays"
else
	not_ok "migrate to a b that refuses fails, the guest stays" \
		"vmctl migrate exit status $rc; the source's vmctl run $(kill -0 $stay_pid 2>/dev/null && echo runs || echo ended); b's vmctl run --incoming: $(on b cat /tmp/7002.rc 2>/dev/null || echo 'still waits')"
	show "vmctl migrate" "$T/refused"
	on b cat /tmp/7002.err > "$T/dst.err"
	show "b: vmctl run --incoming, stderr" "$T/dst.err"
fi
on b "$VMCTL destroy stay" > /dev/null 2>&1
$VMCTL destroy stay > /dev/null 2>&1
wait $stay_pid
stay_pid=

# ---- the migration -------------------------------------------------------------

incoming $PORT
if wait_for 20 listening $PORT; then
	ok "incoming listens on b"
else
	not_ok "incoming listens on b" "nothing listens on $B:$PORT after 20 s"
	on b cat /tmp/$PORT.err > "$T/dst.err"
	show "b: vmctl run --incoming, stderr" "$T/dst.err"
fi

# The guest starts now, and moves a second into its first pass: the passes
# after it begin on b.
$VMCTL run --name mig --mem 64M --cmdline "mib=16 rate=4 passes=$PASSES" \
	"$G/memtouch.bin" > "$T/src.out" 2> "$T/src.err" < /dev/null &
src_pid=$!
wait_for 20 grep -q 'memtouch:.*16 MiB' "$T/src.out"
sleep 1
$VMCTL migrate mig $B:$PORT > "$T/mig" 2>&1
rc=$?
if [ $rc = 0 ]; then
	ok "vmctl migrate exits 0"
	sed 's/^/#   /' "$T/mig" | tail -n 5
else
	not_ok "vmctl migrate exits 0" "exit status $rc"
	show "vmctl migrate" "$T/mig"
fi

# The source's vmctl run: within a minute (the guest runs for ~12 s).
i=0
while kill -0 $src_pid 2>/dev/null && [ $i -lt 60 ]; do
	sleep 1
	i=$((i + 1))
done
timed_out=0
if kill -0 $src_pid 2>/dev/null; then
	timed_out=1
	kill $src_pid
fi
wait $src_pid
src_rc=$?
[ $timed_out = 1 ] && src_rc="none within 60 s"
src_pid=
if [ "$src_rc" = 14 ]; then
	ok "the source's vmctl run exits 14 (migrated)"
else
	not_ok "the source's vmctl run exits 14 (migrated)" "exit status $src_rc"
	show "a: vmctl run, stdout" "$T/src.out"
	show "a: vmctl run, stderr" "$T/src.err"
fi

wait_for 90 on b test -s /tmp/$PORT.rc
dst_rc=$(on b cat /tmp/$PORT.rc 2>/dev/null)
on b cat /tmp/$PORT.out > "$T/dst.out"
on b cat /tmp/$PORT.err > "$T/dst.err"
if [ "$dst_rc" = 0 ]; then
	ok "the destination's vmctl run exits 0 (the guest halted)"
else
	not_ok "the destination's vmctl run exits 0 (the guest halted)" \
		"exit status '${dst_rc:-none within 90 s}'"
	show "b: vmctl run --incoming, stdout" "$T/dst.out"
	show "b: vmctl run --incoming, stderr" "$T/dst.err"
fi

# The passes each host reported writing: together 1 .. PASSES, in order, once.
passes() { sed -n 's/^memtouch: pass \([0-9]*\): wrote .*/\1/p' "$1" | tr '\n' ' '; }
on_a=$(passes "$T/src.out")
on_b=$(passes "$T/dst.out")
if [ "$(echo $on_a $on_b)" = "$(seq -s ' ' $PASSES)" ] && [ -n "$on_b" ] &&
   grep -q '^memtouch: OK' "$T/dst.out" && ! grep -q '^memtouch: OK' "$T/src.out"; then
	ok "the guest's output goes on on b, each pass once"
else
	not_ok "the guest's output goes on on b, each pass once" \
		"passes written on a: '$on_a', on b: '$on_b'"
	show "a: vmctl run, stdout" "$T/src.out"
	show "b: vmctl run --incoming, stdout" "$T/dst.out"
fi

# Each pass verifies what it wrote; the first pass's writes straddle the move.
verified=$(grep -c '^memtouch: pass [0-9]*: verified 4096 pages .* 0 mismatches' "$T/src.out" "$T/dst.out" |
	   awk -F: '{ s += $NF } END { print s }')
if [ "$verified" = $PASSES ] && grep -q '^memtouch: pass [0-9]*: verified' "$T/dst.out" &&
   ! grep -q 'mismatch at' "$T/src.out" "$T/dst.out"; then
	ok "the guest verified every word after the move"
else
	not_ok "the guest verified every word after the move" \
		"$verified of $PASSES passes verified with 0 mismatches, $(grep -c '^memtouch: pass [0-9]*: verified' "$T/dst.out") of them on b"
	grep -h 'mismatch\|FAILED' "$T/src.out" "$T/dst.out" | sed 's/^/#   /' | head -n 8
fi

# A pass that began on b, the pass in flight at the move excepted: 16 MiB at
# 4 MiB/s take 4000 ms of the guest's PM timer (more if the guest ran
# slower); a clock that jumped ahead shows less, one that went back shows
# minutes (a wrap of its 32 bits).
times=$(sed -n 's/^memtouch: pass \([0-9]*\): wrote 4096 pages in \([0-9]*\) ms.*/\1 \2/p' "$T/dst.out" |
	tail -n +2)
bad=$(echo "$times" | awk 'NF == 2 && ($2 < 3900 || $2 > 20000) { printf "pass %s: %s ms; ", $1, $2 }')
if [ -n "$times" ] && [ -z "$bad" ]; then
	ok "the guest's clock kept its rate on b"
else
	not_ok "the guest's clock kept its rate on b" "${bad:-no pass began on b}"
fi

left_a=$($VMCTL list 2>&1 | awk 'NR > 1')
left_b=$(on b "$VMCTL list" 2>&1 | awk 'NR > 1')
if [ -z "$left_a" ] && [ -z "$left_b" ]; then
	ok "no VM is left on either machine"
else
	not_ok "no VM is left on either machine" "a: $left_a" "b: $left_b"
fi

totals
