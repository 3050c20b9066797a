#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# 200 load/unload cycles of lvmm with a VM in each and CPU hotplug in
# between; the sandbox's console check and kmemleak (debug kernel) catch
# what goes wrong.  Prints kselftest-style totals.
n=${1:-200}
dir=$(dirname "$0")
pass=0 fail=0
cpu1=/sys/devices/system/cpu/cpu1/online

echo "TAP version 13"
echo "1..1"
grep -q '^lvmm ' /proc/modules && rmmod lvmm
i=0
while [ $i -lt $n ]; do
	i=$((i + 1))
	if ! insmod /lvmm.ko; then
		echo "# cycle $i: insmod failed"; fail=1; break
	fi
	if ! "$dir/owner_test" -t svme_only_while_lvmm_has_vms >/tmp/cycle.log 2>&1; then
		cat /tmp/cycle.log; echo "# cycle $i: VM create/destroy failed"; fail=1; break
	fi
	if [ -w $cpu1 ] && [ $((i % 4)) = 0 ]; then
		echo 0 > $cpu1 && echo 1 > $cpu1 || { echo "# cycle $i: hotplug failed"; fail=1; break; }
	fi
	if ! rmmod lvmm; then
		echo "# cycle $i: rmmod failed"; fail=1; break
	fi
	[ -w $cpu1 ] && [ $((i % 4)) = 2 ] && { echo 0 > $cpu1; echo 1 > $cpu1; }
done
if grep -q '^lvmm ' /proc/modules || [ -e /dev/lvmm ]; then
	echo "# lvmm still loaded after the last cycle"; fail=1
fi
insmod /lvmm.ko
if [ $fail = 0 ]; then
	echo "ok 1 load_cycles ($n cycles)"; pass=1
else
	echo "not ok 1 load_cycles"
fi
echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:0 error:0"
[ $fail = 0 ]
