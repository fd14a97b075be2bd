#!/bin/bash
# qcow2 copy-on-write overlay with a real guest: the guest reads a base image
# through an overlay made by `nestboxctl disk create --backing` and writes to
# it; the base stays byte-identical, the overlay holds the writes, qemu-img
# check finds it clean and the flattened disk passes e2fsck with the guest's
# data in it.
source "$(dirname "$0")/lib.sh"
export NB_MODULES=virtio_blk,ext4,crc32c_generic
export PATH="$PATH:/usr/sbin:/sbin"
ctl=$(dirname "$NESTBOX_VM")/nestboxctl

cd "$NB_WORK"
truncate -s 128M base.raw
mkfs.ext4 -q -F base.raw
head -c 1M /dev/urandom > known
known_sha=$(sha256sum < known | cut -d' ' -f1)
debugfs -w -R "write known known" base.raw >/dev/null 2>&1
base_sha=$(sha256sum < base.raw)
new_sha=$(yes nestbox-overlay | head -c 16M | sha256sum | cut -d' ' -f1)
"$ctl" disk create --backing base.raw --backing-format raw overlay.qcow2 \
  || nb_fail "nestboxctl disk create --backing failed"

initrd=$(nb_initrd overlay "
mount -t ext4 /dev/vda /mnt || { echo MOUNT-FAILED; exit 1; }
echo \"KNOWN \$(sha256sum /mnt/known | cut -d' ' -f1)\"
yes nestbox-overlay | head -c 16777216 > /mnt/new
rm /mnt/known
sync
echo \"NEW \$(sha256sum /mnt/new | cut -d' ' -f1)\"
umount /mnt
")
nb_boot overlay 240 "$initrd" --disk "$NB_WORK/overlay.qcow2,format=qcow2" --memory 256M
nb_expect_status "guest on a qcow2 overlay: poweroff" 0
nb_expect "guest reads the base's file through the overlay" "^KNOWN $known_sha"
nb_expect "guest wrote 16 MiB to the overlay" "^NEW $new_sha"

NB_CHECKS=$((NB_CHECKS + 1))
[ "$(sha256sum < base.raw)" = "$base_sha" ] && nb_pass "the base image is byte-identical" \
  || nb_fail "the base image changed"
NB_CHECKS=$((NB_CHECKS + 1))
if qemu-img check -q overlay.qcow2 >check.log 2>&1; then nb_pass "qemu-img check: overlay clean"
else nb_fail "qemu-img check: $(cat check.log)"; fi
allocated=$("$ctl" disk check --json overlay.qcow2 | sed -n 's/.*"allocated-clusters": \([0-9]*\).*/\1/p')
NB_CHECKS=$((NB_CHECKS + 1))
if [ "${allocated:-0}" -ge 256 ]; then nb_pass "the overlay holds the writes ($allocated clusters)"
else nb_fail "the overlay holds only ${allocated:-0} clusters"; fi

qemu-img convert -O raw overlay.qcow2 flat.raw
NB_CHECKS=$((NB_CHECKS + 1))
if e2fsck -fn flat.raw >fsck.log 2>&1; then nb_pass "e2fsck -fn on the flattened disk is clean"
else nb_fail "e2fsck: $(cat fsck.log)"; fi
debugfs -R "dump new new.out" flat.raw >/dev/null 2>&1
NB_CHECKS=$((NB_CHECKS + 1))
[ "$(sha256sum < new.out 2>/dev/null | cut -d' ' -f1)" = "$new_sha" ] \
  && nb_pass "debugfs reads back what the guest wrote" || nb_fail "the guest's file differs"
NB_CHECKS=$((NB_CHECKS + 1))
if debugfs -R "stat known" flat.raw 2>&1 | grep -q "not found"; then nb_pass "the guest's delete is in the overlay"
else nb_fail "the deleted file is still there"; fi
cd /
nb_finish
