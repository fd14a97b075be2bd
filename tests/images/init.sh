#!/bin/sh
# The test guest's init. It mounts the usual filesystems, loads the modules
# listed in /etc/modules (or only those named by nestbox.modules=a,b,c on
# the kernel command line, or none with nestbox.modules=none), then:
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
# nestbox.modules=a,b,c loads only those (and what they need): loading every
# module takes a while in a nested guest. Without it, all of them load.
wanted=$(sed -n 's/.*nestbox\.modules=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$wanted" ]; then
  # virtio drivers are useless without the PCI transport they sit on.
  case "$wanted" in *virtio*) wanted="virtio_pci,$wanted" ;; esac
  for module in $(echo "$wanted" | tr , ' '); do
    [ "$module" = none ] && continue
    $verbose && echo "NESTBOX-LOADING $module"
    modprobe "$module" || echo "NESTBOX-MODULE-FAILED $module"
  done
else
  while read -r module; do
    $verbose && echo "NESTBOX-LOADING $module"
    insmod "$module" 2>/dev/null
  done < /etc/modules
fi
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
