#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Run in a sandbox booted without SVM (or without NPT): insmod must fail
# with ENODEV and say why in one dmesg line.  $1: the text to expect.
expect=${1:-no AMD SVM}
echo "TAP version 13"
echo "1..1"
dmesg -c > /dev/null
out=$(insmod /lvmm.ko 2>&1)
rc=$?
# busybox insmod tries finit_module() and then init_module(), so the
# module's init runs twice: count distinct lines, and no others of ours.
lines=$(dmesg | grep "lvmm: " | grep -v "taints kernel\|verification failed" |
	sed 's/^\[[^]]*\] //' | sort -u | grep -c "$expect")
others=$(dmesg | grep "lvmm: " | grep -v "taints kernel\|verification failed" |
	grep -vc "$expect")
if [ $rc -ne 0 ] && echo "$out" | grep -q "No such device" &&
   [ "$lines" = 1 ] && [ "$others" = 0 ] &&
   ! grep -q '^lvmm ' /proc/modules; then
	echo "ok 1 insmod_enodev ($expect)"
	echo "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:0 error:0"
	exit 0
fi
echo "# insmod said: $out (rc $rc); dmesg lines: $lines"
dmesg | grep lvmm
echo "not ok 1 insmod_enodev"
echo "# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:0 error:0"
exit 1
