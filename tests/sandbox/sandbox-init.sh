#!/bin/sh
# Init of the KVM sandbox: the host's root (read-only) and its writable
# folders arrive over 9p; the command from the host runs chrooted in them,
# with /dev/kvm from the kvm_amd module over QEMU's emulated SVM.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/sandbox-modules); do
  insmod /modules/$m.ko 2>/dev/null || echo "nb-sandbox: loading $m failed"
done

opts=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /host
mount -t 9p -o $opts,ro hostroot /host || { echo "nb-sandbox: cannot mount the host root"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
# What udev or systemd would add: bash's <(...) needs /dev/fd.
ln -sf /proc/self/fd /host/dev/fd
ln -sf /proc/self/fd/0 /host/dev/stdin
ln -sf /proc/self/fd/1 /host/dev/stdout
ln -sf /proc/self/fd/2 /host/dev/stderr
mkdir -p /host/dev/pts /host/dev/shm 2>/dev/null
mount -t devpts devpts /host/dev/pts
mount -t tmpfs shm /host/dev/shm
mount -t tmpfs tmp /host/tmp
mount -t tmpfs run /host/run

# Writable folders over the read-only root (and over the new /tmp).
io=$(sed -n 's/.*nbsandbox.io=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p "/host$io" 2>/dev/null
mount -t 9p -o $opts nbio "/host$io"
n=0
while read -r path; do
  if [ -n "$path" ]; then
    mkdir -p "/host$path" 2>/dev/null
    mount -t 9p -o $opts "share$n" "/host$path"
  fi
  n=$((n + 1))
done < "/host$io/shares"
[ -e /dev/kvm ] || echo "nb-sandbox: /dev/kvm did not appear (is kvm_amd loaded?)"

# The host's network is not the sandbox's: give it a working loopback.
ip link set lo up 2>/dev/null

chroot /host /bin/bash "$io/command" > "/host$io/output" 2>&1
echo $? > "/host$io/status"
sync
poweroff -f
