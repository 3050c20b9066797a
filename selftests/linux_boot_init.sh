#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# /init of the Linux guest that selftests/linux_boot.sh and make run boot
# under vmctl run; scripts/linux-guest puts it in a busybox initramfs.
#
# By default it reports, on the console, what linux_boot.sh checks: the
# CPUs, the local timer interrupts of every CPU read twice a second apart
# while each CPU is busy (an idle CPU may stop its tick), the clocksource,
# and every line of the kernel log that looks like a kernel problem (the
# console of a "quiet" boot shows no warnings).  Then it reads one line
# from the console, runs it with sh, and reboots (vmctl run: status 16),
# or with "lvmm.poweroff" on the kernel command line powers off (through
# ACPI: vmctl run's status 0).  Each such line starts with "linux-boot: ".
#
# With "lvmm.shell" on the kernel command line it gives an interactive
# shell on the console instead; "poweroff -f" (status 0) or "reboot -f"
# there (or leaving the shell: a reboot) ends the VM.
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
hostname lvmm-guest

say() { echo "linux-boot: $*"; }

# Every line of the kernel log that looks like a kernel problem.
scan_log() {
	dmesg | grep -E 'BUG:|WARNING:|Oops|Call Trace|soft lockup|unchecked MSR access|Kernel panic|general protection|ACPI (BIOS )?Error|ACPI (BIOS )?Warning' |
		sed 's/^/linux-boot: dmesg: /'
	say "kernel log scanned"
}

case " $(cat /proc/cmdline) " in
*" lvmm.shell "*)
	say "a busybox shell on the console; 'poweroff -f' or 'reboot -f' ends the VM"
	PS1='lvmm-guest# ' setsid cttyhack sh
	reboot -f ;;
*" lvmm.drift="*)
	# tools/bench/lvmm-linux-bench: CLOCK_MONOTONIC in ns ("now at" in
	# /proc/timer_list, else /proc/uptime), five readings, then five more
	# S seconds later; the bench times each line's arrival on the host
	# and kills the VM.  linux_boot.sh moves the VM during the sleep,
	# and reads the kernel log's problems, which follow.
	say "init is running"
	s=$(sed 's/.* lvmm\.drift=\([0-9]*\).*/\1/' /proc/cmdline)
	mono() {
		awk '/^now at/ { print $3; f = 1; exit }
			END { if (!f) exit 1 }' /proc/timer_list 2>/dev/null ||
			awk '{ printf "%.0f\n", $1 * 1e9 }' /proc/uptime
	}
	say "drift-clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	for i in 1 2 3 4 5; do say "drift-clock $(mono)"; done
	sleep "$s"
	for i in 1 2 3 4 5; do say "drift-clock $(mono)"; done
	scan_log
	exec sleep 100000 ;;
esac

say "init is running"
say "uname $(uname -r)"
n=$(nproc)
say "nproc $n"
say "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
say "clockevent $(cat /sys/devices/system/clockevents/clockevent0/current_device)"

c=0
while [ "$c" -lt "$n" ]; do
	taskset -c "$c" sh -c 'while [ ! -e /tmp/stop ]; do :; done' &
	c=$((c + 1))
done
say "loc1 $(grep 'LOC:' /proc/interrupts)"
sleep 1
say "loc2 $(grep 'LOC:' /proc/interrupts)"
touch /tmp/stop
wait

scan_log

say "type a command"
if read -r -t 60 line; then
	say "read a line of ${#line} characters"
	sh -c "$line"
	say "it ended with status $?"
else
	say "read no line from the console"
fi
case " $(cat /proc/cmdline) " in
*" lvmm.poweroff "*)
	say "powering off"
	poweroff -f ;;
esac
say "rebooting"
reboot -f
