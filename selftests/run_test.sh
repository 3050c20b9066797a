#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# vmctl run and the bundled guests, end to end, in the sandbox (as root,
# lvmm loaded):
#
#   scripts/vmtest --add tools/guests/build --add selftests/run_test.sh -- /run_test.sh
#
# Every guest boots in every format to its expected output and exit status;
# corrupt, truncated and foreign images and a too-small --mem are refused
# before any VM exists; signals, kill -9 and Ctrl-]-less teardown leave
# nothing behind.  Output is kselftest TAP.
#
# The guests are looked for in $GUEST_DIR, else next to this script
# (guests/, build/), else /build.  vmctl is $VMCTL or the one on PATH.

VMCTL=${VMCTL:-vmctl}
here=$(cd "$(dirname "$0")" && pwd)
for d in "${GUEST_DIR:-}" "$here/guests" "$here/build" /build "$here/../tools/guests/build"; do
	[ -n "$d" ] && [ -f "$d/hello.bin" ] && { G=$d; break; }
done
T=$(mktemp -d /tmp/run_test.XXXXXX)
trap 'rm -rf "$T"' EXIT

n=0 pass=0 fail=0 skip=0

echo "TAP version 13"
if [ -z "${G:-}" ]; then
	echo "1..0 # SKIP no bundled guests (build tools/guests and --add tools/guests/build)"
	exit 4
fi
if [ ! -c /dev/lvmm ]; then
	echo "1..0 # SKIP /dev/lvmm is missing: load lvmm first"
	exit 4
fi

ok() {
	n=$((n + 1)) pass=$((pass + 1))
	echo "ok $n $1"
}

not_ok() {
	n=$((n + 1)) fail=$((fail + 1))
	echo "not ok $n $1"
	shift
	for l in "$@"; do echo "# $l"; done
	echo "# --- stdout:"; sed 's/^/#   /' "$T/out" | tail -n 15
	echo "# --- stderr:"; sed 's/^/#   /' "$T/err" | tail -n 25
}

# vm ARGS...: run vmctl run with a timeout; $rc is its status.
vm() {
	timeout -s KILL 120 $VMCTL run "$@" > "$T/out" 2> "$T/err" < /dev/null
	rc=$?
}

has() { grep -qF -- "$2" "$T/$1"; }

# expect NAME STATUS [out:TEXT | err:TEXT | !out:TEXT]...: judge the last vm.
expect() {
	name=$1 want=$2
	shift 2
	why=""
	[ "$rc" = "$want" ] || why="exit status $rc, expected $want"
	for c in "$@"; do
		case $c in
		out:*) has out "${c#out:}" || why="$why; stdout lacks '${c#out:}'" ;;
		err:*) has err "${c#err:}" || why="$why; stderr lacks '${c#err:}'" ;;
		!out:*) has out "${c#!out:}" && why="$why; stdout has '${c#!out:}'" ;;
		esac
	done
	if [ -z "$why" ]; then ok "$name"; else not_ok "$name" "${why#; }"; fi
}

# The module's reference count: every lvmm fd holds one.
lvmm_refs() { awk '$1 == "lvmm" { print $3 }' /proc/modules; }

# VM ids come from idr_alloc_cyclic(): a VM created in between uses one up.
vm_id() {
	$VMCTL run -v --console none --entry64 "$G/hello64.bin" 2>&1 |
		sed -n "s/.*vm '[^']*' (id \([0-9]*\)).*/\1/p"
}

vm_list_empty() {
	$VMCTL list > "$T/list" 2>&1 || return 0	# no netlink: refs decide
	! grep -q "$1" "$T/list"
}

# nothing_left NAME: no lvmm fd open and no VM with that name.
nothing_left() {
	r=$(lvmm_refs)
	[ "$r" = 0 ] || { echo "lvmm refcount $r"; return 1; }
	vm_list_empty "$1" || { echo "vmctl list still shows $1"; return 1; }
	# The name is free: a VM can be created with it.
	$VMCTL run --name "$1" --console none --entry64 "$G/hello64.bin" \
		> /dev/null 2>&1 ||
		{ echo "the name $1 is still taken"; return 1; }
}


# ---- every guest, every format ------------------------------------------

for f in hello.bin hello.elf hello.mb hello.mb32; do
	vm --cmdline "greeting=yes" "$G/$f"
	expect "hello: $f" 0 "out:Hello, world!" "out:cmdline: 'greeting=yes'" \
		"out:hello: halting"
done
vm --entry64 "$G/hello64.bin"
expect "hello: hello64.bin --entry64" 0 "out:Hello, world!" \
	"out:a 64-bit image entered in long mode"
vm "$G/hello.bin"
expect "hello: hello.bin in real mode" 0 "out:a flat binary entered in real mode"
vm "$G/hello.mb"
expect "hello: hello.mb in 32-bit protected mode" 0 \
	"out:a multiboot kernel entered in 32-bit protected mode" \
	"out:memory: 639 KiB low, 64512 KiB high"

echo "module one" > "$T/mod1"
head -c 12345 /dev/zero > "$T/mod2"
vm --mem 32M --cmdline "root=none" --module "$T/mod1 arg1 arg2" --module "$T/mod2" "$G/hello.mb"
expect "hello: multiboot command line and modules" 0 \
	"out:cmdline: 'root=none'" "out:module 0: '$T/mod1 arg1 arg2', 11 bytes" \
	"out:module 1: '$T/mod2', 12345 bytes" "out:31744 KiB high"

vm --cmdline "exit=5" "$G/hello.elf"
expect "hello: debug-exit 5 gives (5 << 1) | 1 = 11" 11 "out:debug-exit port with 5"
vm --cmdline "exit=0" "$G/hello.mb"
expect "hello: debug-exit 0 gives 1" 1
vm --cmdline "exit=127" "$G/hello.bin"
expect "hello: debug-exit 127 gives 255" 255
vm --cmdline "crash=triple" "$G/hello.elf"
expect "hello: triple fault: status 4 and the registers" 4 \
	"err:guest shutdown (triple fault)" "err:rip=" "err:cr0="
vm --cmdline "crash=port" "$G/hello.mb"
expect "hello: unknown port: status 6, port and registers" 6 \
	"err:unhandled exit IO: OUT to port 0x1234" "err:rax=" "err:efer="
vm --cmdline "crash=mmio" "$G/hello.bin"
expect "hello: MMIO: status 6, address and registers" 6 \
	"err:unhandled exit MMIO: write of 4 bytes at guest-physical 0xfee00000" "err:rip="
vm --cpus 4 "$G/hello.elf"
expect "hello: --cpus 4, one greeting, every vCPU halts" 0 "out:Hello, world!"
[ "$(grep -c 'Hello, world' "$T/out")" = 1 ] && ok "hello: --cpus 4 greets once" ||
	not_ok "hello: --cpus 4 greets once" "$(grep -c 'Hello, world' "$T/out") greetings"

for f in spin.bin spin.elf spin.mb; do
	vm --cmdline "every=100k beats=3" "$G/$f"
	expect "spin: $f, 3 heartbeats" 0 "out:vCPU 0 heartbeat 3: 300000 iterations" \
		"out:done after 3 heartbeats" "!out:heartbeat 4"
done
vm --entry64 --cmdline "every=100k beats=2" "$G/spin64.bin"
expect "spin: spin64.bin --entry64" 0 "out:vCPU 0 heartbeat 2: 200000 iterations"
vm --cpus 2 --cmdline "every=100k beats=2" "$G/spin.elf"
expect "spin: --cpus 2, both vCPUs beat" 0 "out:vCPU 0 heartbeat 2" \
	"out:vCPU 1 heartbeat 2: 200000 iterations" "out:vCPU 1 done"

for f in memtouch.bin memtouch.elf memtouch.mb; do
	vm --mem 16M --cmdline "mib=4" "$G/$f"
	expect "memtouch: $f, 4 MiB" 0 "out:wrote 1024 pages" \
		"out:verified 1024 pages" "out:0 mismatches" "out:memtouch: OK"
done
vm --entry64 --mem 16M --cmdline "mib=4 passes=2" "$G/memtouch64.bin"
expect "memtouch: memtouch64.bin --entry64, 2 passes" 0 "out:pass 2: verified 1024 pages" \
	"out:memtouch: OK"
vm --mem 16M --cmdline "mib=2 inject=1" "$G/memtouch.elf"
expect "memtouch: an injected error is caught (status 3)" 3 \
	"out:1 mismatches" "out:memtouch: FAILED"
vm --mem 8M --cmdline "mib=16" "$G/memtouch.mb"
expect "memtouch: too much for --mem (status 5)" 5 "out:do not fit"
# 2 MiB at 4 MiB/s: at least half a second by the PM timer.
vm --mem 16M --cmdline "mib=2 rate=4" "$G/memtouch.elf"
ms=$(sed -n 's/.*wrote 512 pages in \([0-9]*\) ms.*/\1/p' "$T/out")
if [ "$rc" = 0 ] && [ -n "$ms" ] && [ "$ms" -ge 450 ] && [ "$ms" -le 5000 ]; then
	ok "memtouch: rate=4 MiB/s writes 2 MiB in ${ms} ms"
else
	not_ok "memtouch: rate=4 MiB/s writes 2 MiB in about 500 ms" "status $rc, ${ms:-no} ms"
fi

# ---- the console ------------------------------------------------------

rm -f "$T/console"
vm --console "$T/console" "$G/hello.elf"
vm --console "$T/console" --cmdline "again" "$G/hello.mb"
if [ "$rc" = 0 ] && [ ! -s "$T/out" ] && [ "$(grep -c 'Hello, world' "$T/console")" = 2 ] &&
   grep -q "cmdline: 'again'" "$T/console"; then
	ok "--console FILE appends the output to FILE"
else
	not_ok "--console FILE appends the output to FILE" "status $rc; console file:" \
		"$(cat "$T/console" 2>&1)"
fi
vm --console none "$G/hello.elf"
expect "--console none discards the output" 0 "!out:Hello"

# On a terminal: raw mode, input reaches the UART, Ctrl-] detaches, and
# the terminal is restored on every way out.
PTY=${GUESTS_PTY:-$here/guests_pty}
if [ -x "$PTY" ]; then
	timeout -s KILL 120 "$PTY" "type 3" "xyz" -- $VMCTL run --cmdline "read=3" \
		"$G/hello.elf" > "$T/out" 2> "$T/err"
	rc=$?
	expect "tty: keyboard input reaches the guest's UART" 0 "out:hello: read 'xyz'" \
		"out:Ctrl-] stops it" "out:tty: restored"
	timeout -s KILL 120 "$PTY" "heartbeat 2" '\x1d' -- $VMCTL run --cmdline "every=100k" \
		"$G/spin.mb" > "$T/out" 2> "$T/err"
	rc=$?
	expect "tty: Ctrl-] stops the VM (status 10), terminal restored" 10 \
		"out:Ctrl-]: stopping vm" "out:tty: restored"
	timeout -s KILL 120 "$PTY" "heartbeat 2" "" -- sh -c \
		"$VMCTL run --cmdline every=100k $G/spin.bin & sleep 3; kill -TERM \$!; wait \$!" \
		> "$T/out" 2> "$T/err"
	rc=$?
	expect "tty: SIGTERM restores the terminal" 143 "out:tty: restored"
else
	for t in "keyboard input" "Ctrl-]" "SIGTERM"; do
		n=$((n + 1)) skip=$((skip + 1))
		echo "ok $n tty: $t # SKIP no guests_pty helper next to run_test.sh"
	done
fi

# ---- images refused before any VM exists -----------------------------

: > "$T/empty"
printf 'this is not a kernel\nat all\n' > "$T/text"
head -c 3000 "$G/hello.elf" > "$T/trunc.elf"
head -c 2000 "$G/hello.mb" > "$T/trunc.mb"
# ELF64 with its program headers moved past the end of the file.
cp "$G/hello.elf" "$T/badph.elf"
printf '\377\377\377\000' | dd of="$T/badph.elf" bs=1 seek=32 conv=notrunc 2>/dev/null
# Multiboot header with a broken checksum.
cp "$G/hello.mb" "$T/badsum.mb"
printf '\001' | dd of="$T/badsum.mb" bs=1 seek=8 conv=notrunc 2>/dev/null
# Multiboot header whose entry is outside the image.
cp "$G/hello.mb" "$T/badentry.mb"
printf '\000\000\000\100' | dd of="$T/badentry.mb" bs=1 seek=28 conv=notrunc 2>/dev/null
printf '\000\000\000\000\000\000\000\000\000\000' | gzip -c > "$T/gz" 2>/dev/null
# ELF64 that is position-independent (ET_DYN), or for another machine.
cp "$G/hello.elf" "$T/dyn.elf"
printf '\003' | dd of="$T/dyn.elf" bs=1 seek=16 conv=notrunc 2>/dev/null
cp "$G/hello.elf" "$T/arm.elf"
printf '\267' | dd of="$T/arm.elf" bs=1 seek=18 conv=notrunc 2>/dev/null
# ELF32 whose multiboot header (at file offset 0x1000) lost its magic.
cp "$G/hello.mb32" "$T/nomb.elf32"
printf '\000' | dd of="$T/nomb.elf32" bs=1 seek=4096 conv=notrunc 2>/dev/null

id0=$(vm_id)
for spec in "empty:the file is empty" "text:it looks like text" \
	    "trunc.elf:past the end of the file" "trunc.mb:past the end of the file" \
	    "badph.elf:past the end of the file" "badsum.mb:bad checksum" \
	    "badentry.mb:outside the loaded image" "gz:gzip data" \
	    "dyn.elf:not an executable (ET_EXEC)" "arm.elf:not x86-64" \
	    "nomb.elf32:32-bit ELF file without a multiboot header"; do
	f=${spec%%:*} msg=${spec#*:}
	vm --name refused "$T/$f"
	expect "refused: $f ($msg)" 2 "err:vmctl: $T/$f: " "err:$msg"
done
vm --name refused /nonexistent.bin
expect "refused: a missing file" 2 "err:/nonexistent.bin: No such file"
vm --name refused --mem 1M "$G/hello.mb"
expect "refused: --mem 1M for hello.mb" 2 "err:--mem 1 MiB is too small" \
	"err:needs at least"
vm --name refused --mem 1M --module "$G/spin.elf" "$G/hello.elf"
expect "refused: --mem 1M for hello.elf and a module" 2 "err:is too small"
vm --name refused --mem 2M --entry64 "$T/trunc.elf"
expect "refused: --entry64 on an ELF image" 2 "err:--entry64 applies to flat binaries"
vm --mem 100k "$G/hello.elf"
expect "usage: --mem 100k is refused" 1 "err:--mem '100k'"
vm --cpus 0 "$G/hello.elf"
expect "usage: --cpus 0 is refused" 1 "err:--cpus '0'"
id1=$(vm_id)
: > "$T/why"
if [ -n "$id0" ] && [ "$id1" = $((id0 + 1)) ] && nothing_left refused > "$T/why"; then
	ok "refused images created no VM (ids $id0 -> $id1, nothing left)"
else
	not_ok "refused images created no VM" "VM ids $id0 -> $id1" "$(cat "$T/why")"
fi

# ---- teardown -----------------------------------------------------------

# bg_spin NAME: start a spin guest forever; wait for its first heartbeat.
bg_spin() {
	: > "$T/bg"
	$VMCTL run --name "$1" --cpus 2 --console "$T/bg" --cmdline "every=1M" \
		"$G/spin.elf" 2> "$T/err" < /dev/null &
	pid=$!
	i=0
	while ! grep -q heartbeat "$T/bg" && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	cp "$T/bg" "$T/out"
}

for sig in TERM:143 INT:130 HUP:129; do
	s=${sig%%:*} want=${sig#*:}
	bg_spin "sig$s"
	list=$($VMCTL list 2>&1)
	kill -$s $pid
	wait $pid
	rc=$?
	if [ "$rc" = "$want" ] && nothing_left "sig$s" > "$T/why"; then
		ok "SIG$s stops a running guest: status $want, nothing left"
	else
		not_ok "SIG$s stops a running guest" "status $rc, expected $want" \
			"$(cat "$T/why")" "vmctl list while running: $list"
	fi
done

bg_spin killed
refs=$(lvmm_refs)
kill -9 $pid
wait $pid 2>/dev/null
sleep 0.2
if grep -q heartbeat "$T/bg" && [ "$refs" -gt 0 ] && nothing_left killed > "$T/why"; then
	ok "kill -9 while spin runs leaves nothing behind (refs $refs -> 0)"
else
	not_ok "kill -9 while spin runs leaves nothing behind" "refs while running: $refs" \
		"$(cat "$T/why")"
fi

bg_spin taken
vm --name taken "$G/hello.elf"
expect "a name in use is refused" 2 "err:a VM named 'taken' exists already"
kill -TERM $pid
wait $pid

echo "1..$n"
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
[ $fail = 0 ]
