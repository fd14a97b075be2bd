#!/bin/sh
# The test guest's init. It mounts the usual filesystems, loads the modules
# listed in /etc/modules, then:
#   - runs /test.sh if a test appended one (make-test-initrd.sh), prints
#     "NESTBOX-TEST-EXIT <status>" and powers off;
#   - in the demo image, starts a shell on the console;
#   - otherwise prints what the machine looks like and powers off.
# Markers go to the console so the host can follow along.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
echo "NESTBOX-INIT-REACHED"

verbose=false
grep -q nestbox.verbose /proc/cmdline && verbose=true
while read -r module; do
  $verbose && echo "NESTBOX-LOADING $module"
  insmod "$module" 2>/dev/null
done < /etc/modules
# Give drivers a moment to create device nodes.
mdev -s 2>/dev/null

echo "NESTBOX-GUEST nproc=$(nproc) memtotal_kb=$(awk '/MemTotal/ { print $2 }' /proc/meminfo)"

if [ -x /test.sh ]; then
  /test.sh
  status=$?
  sync
  echo "NESTBOX-TEST-EXIT $status"
  poweroff -f
elif [ -e /etc/nestbox-demo ]; then
  echo
  echo "Nestbox demo guest: a busybox shell. 'poweroff -f' powers the machine off."
  setsid cttyhack sh -l
  poweroff -f
else
  poweroff -f
fi
