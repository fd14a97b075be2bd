#!/bin/bash
# virtio-blk with real guests: an ext4 image made on the host is read and
# written by the guest and checked by e2fsck and debugfs afterwards; a
# read-only disk refuses writes; four disks with serials at once; and data
# the guest flushed survives SIGKILL of nestbox-vm.
source "$(dirname "$0")/lib.sh"
export NB_MODULES=virtio_blk,ext4,crc32c_generic
export PATH="$PATH:/usr/sbin:/sbin"

img=$NB_WORK/disk.img
truncate -s 256M "$img"
mkfs.ext4 -q -F "$img"
head -c 1M /dev/urandom > "$NB_WORK/known"
known_sha=$(sha256sum < "$NB_WORK/known" | cut -d' ' -f1)
debugfs -w -R "write $NB_WORK/known known" "$img" >/dev/null 2>&1
big_sha=$(yes nestbox-block-test | head -c 64M | sha256sum | cut -d' ' -f1)

initrd=$(nb_initrd blk "
mount -t ext4 /dev/vda /mnt || { echo MOUNT-FAILED; exit 1; }
echo \"KNOWN \$(sha256sum /mnt/known | cut -d' ' -f1)\"
yes nestbox-block-test | head -c 67108864 > /mnt/big
sync
echo \"BIG \$(sha256sum /mnt/big | cut -d' ' -f1)\"
umount /mnt
")
nb_boot blk 240 "$initrd" --disk "$img" --memory 256M
nb_expect_status "ext4 read and write: poweroff" 0
nb_expect "guest reads the host's file intact" "^KNOWN $known_sha"
nb_expect "guest wrote 64 MiB" "^BIG $big_sha"
NB_CHECKS=$((NB_CHECKS + 1))
if e2fsck -fn "$img" >"$NB_WORK/fsck.log" 2>&1; then nb_pass "e2fsck -fn is clean"; else nb_fail "e2fsck -fn: $(cat "$NB_WORK/fsck.log")"; fi
debugfs -R "dump big $NB_WORK/big" "$img" >/dev/null 2>&1
NB_CHECKS=$((NB_CHECKS + 1))
if [ "$(sha256sum < "$NB_WORK/big" | cut -d' ' -f1)" = "$big_sha" ]; then nb_pass "debugfs reads back what the guest wrote"; else nb_fail "the 64 MiB file read back by debugfs differs"; fi

# Read-only: the guest sees a read-only disk and cannot write it.
before=$(sha256sum < "$img")
initrd=$(nb_initrd ro "
echo \"RO \$(cat /sys/block/vda/ro)\"
mount -o ro /dev/vda /mnt && echo \"RO-MOUNTED \$(sha256sum /mnt/known | cut -d' ' -f1)\" && umount /mnt
if dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null; then echo WRITE-ACCEPTED; else echo WRITE-REFUSED; fi
")
nb_boot ro 240 "$initrd" --disk "$img,readonly" --memory 256M
nb_expect_status "read-only disk: poweroff" 0
nb_expect "the guest sees the disk read-only" "^RO 1"
nb_expect "a read-only mount works" "^RO-MOUNTED $known_sha"
nb_expect "writes are refused" "^WRITE-REFUSED"
NB_CHECKS=$((NB_CHECKS + 1))
[ "$(sha256sum < "$img")" = "$before" ] && nb_pass "the image is unchanged" || nb_fail "the read-only image changed"

# Four disks at once, each with its serial.
args=()
for i in 1 2 3 4; do
  truncate -s $((i * 16))M "$NB_WORK/d$i.img"
  args+=(--disk "$NB_WORK/d$i.img,serial=NBDISK$i")
done
initrd=$(nb_initrd four '
for d in vda vdb vdc vdd; do
  echo "DISK $d $(cat /sys/block/$d/size) $(cat /sys/block/$d/serial 2>/dev/null)"
done
')
nb_boot four 240 "$initrd" "${args[@]}" --memory 256M
nb_expect_status "four disks: poweroff" 0
for i in 1 2 3 4; do
  d=vd$(printf "\\x$(printf %x $((96 + i)))")
  nb_expect "disk $d: size and serial" "^DISK $d $((i * 16 * 2048)) NBDISK$i"
done

# SIGKILL while the guest writes: what it synced is on the disk, and the
# journal brings the filesystem back to clean.
truncate -s 256M "$img.kill"
mkfs.ext4 -q -F "$img.kill"
initrd=$(nb_initrd kill '
mount -t ext4 /dev/vda /mnt || exit 1
i=1
while true; do
  yes "chunk-$i" | head -c 2097152 > /mnt/c$i
  sync
  echo "FLUSHED $i"
  i=$((i + 1))
done
')
NB_LOG="$NB_WORK/kill.log"
"$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$initrd" --memory 256M \
  --append "console=ttyS0 nestbox.modules=$NB_MODULES panic=-1 quiet" --serial "file:$NB_LOG" --disk "$img.kill" \
  > "$NB_WORK/kill.stderr" 2>&1 &
pid=$!
for _ in $(seq 480); do
  grep -q '^FLUSHED 3' "$NB_LOG" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
flushed=$(sed -n 's/^FLUSHED \([0-9]*\).*/\1/p' "$NB_LOG" | tail -1)
NB_CHECKS=$((NB_CHECKS + 1))
if [ -n "$flushed" ] && [ "$flushed" -ge 3 ]; then nb_pass "guest flushed $flushed chunks before the kill"; else nb_fail "the guest never flushed 3 chunks"; tail "$NB_LOG"; fi
e2fsck -fy "$img.kill" >/dev/null 2>&1
NB_CHECKS=$((NB_CHECKS + 1))
if e2fsck -fn "$img.kill" >"$NB_WORK/fsck2.log" 2>&1; then nb_pass "clean after journal replay"; else nb_fail "not clean after replay: $(cat "$NB_WORK/fsck2.log")"; fi
for i in $(seq 1 "${flushed:-0}"); do
  debugfs -R "dump c$i $NB_WORK/c$i" "$img.kill" >/dev/null 2>&1
  NB_CHECKS=$((NB_CHECKS + 1))
  if [ "$(sha256sum < "$NB_WORK/c$i" 2>/dev/null)" = "$(yes "chunk-$i" | head -c 2M | sha256sum)" ]; then
    nb_pass "flushed chunk $i is intact"
  else
    nb_fail "flushed chunk $i is missing or wrong"
  fi
done
nb_finish
