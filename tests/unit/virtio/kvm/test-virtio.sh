#!/bin/bash
# Proposed tests/kvm/test-virtio.sh (issue 3), kept here until the lead moves it:
# it sources tests/kvm/lib.sh and needs nestbox-vm to wire --disk, --console-port,
# --console hvc and --rng. Register it like the other kvm tests (nb-sandbox,
# --memory 2G, about 1200 s in the TCG sandbox: three guest boots).
# Real guests with virtio disks, console ports and entropy (issue 3).
source "$(dirname "$0")/lib.sh"

mkfs=/usr/sbin/mkfs.ext4
[ -x "$mkfs" ] || mkfs=$(command -v mkfs.ext4)

# The host makes an ext4 image holding a file of known SHA-256.
mkdir -p "$NB_WORK/content"
head -c 1000000 /dev/urandom > "$NB_WORK/content/known.bin"
known=$(sha256sum "$NB_WORK/content/known.bin" | cut -d' ' -f1)
truncate -s 256M "$NB_WORK/disk.img"
"$mkfs" -q -F -d "$NB_WORK/content" "$NB_WORK/disk.img"
truncate -s 16M "$NB_WORK/ro.img"
printf 'readonly-data' | dd of="$NB_WORK/ro.img" conv=notrunc 2>/dev/null
for i in 2 3; do truncate -s 8M "$NB_WORK/extra$i.img"; done

initrd=$(nb_initrd disks '
echo "DISKS $(ls /sys/block | tr "\n" " ")"
echo "SERIAL $(cat /sys/block/vda/serial) $(cat /sys/block/vdb/serial) RO $(cat /sys/block/vdb/ro)"
mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo MOUNTED
echo "KNOWN $(sha256sum /mnt/known.bin | cut -d" " -f1)"
dd if=/dev/zero bs=1M count=64 2>/dev/null | tr "\0" "N" > /mnt/big.bin
sync
echo "BIG $(sha256sum /mnt/big.bin | cut -d" " -f1)"
umount /mnt && echo UMOUNTED
if dd if=/dev/zero of=/dev/vdb bs=512 count=1 oflag=direct 2>/dev/null; then echo RO-WRITE-ACCEPTED; else echo RO-WRITE-REFUSED; fi
for d in vdc vdd; do echo "$d-$d" | dd of=/dev/$d oflag=direct bs=512 conv=sync 2>/dev/null && echo "WROTE $d"; done
echo "RNG $(cat /sys/class/misc/hw_random/rng_current) $(dd if=/dev/hwrng bs=16 count=1 2>/dev/null | od -An -tx1 | tr -d " \n")"
')
nb_boot disks 600 "$initrd" --memory 512M \
  --disk "$NB_WORK/disk.img,serial=nbdisk0" --disk "$NB_WORK/ro.img,readonly,serial=ro-disk" \
  --disk "$NB_WORK/extra2.img" --disk "$NB_WORK/extra3.img" --rng
nb_expect_status "guest with four disks powers off" 0
nb_expect "four virtio disks" "DISKS vda vdb vdc vdd"
nb_expect "serials and read-only flag" "SERIAL nbdisk0 ro-disk RO 1"
nb_expect "ext4 mounts" "MOUNTED"
nb_expect "known file reads back" "KNOWN $known"
big=$(dd if=/dev/zero bs=1M count=64 2>/dev/null | tr '\0' 'N' | sha256sum | cut -d' ' -f1)
nb_expect "64 MiB written" "BIG $big"
nb_expect "read-only disk refuses writes" "RO-WRITE-REFUSED"
nb_expect "/dev/hwrng gives bytes" "RNG virtio_rng.0 [0-9a-f]{32}"
NB_CHECKS=$((NB_CHECKS + 3))
if /usr/sbin/e2fsck -fn "$NB_WORK/disk.img" >/dev/null 2>&1; then nb_pass "e2fsck -fn clean"; else nb_fail "e2fsck -fn"; fi
/usr/sbin/debugfs -R "dump /big.bin $NB_WORK/big.out" "$NB_WORK/disk.img" 2>/dev/null
if [ "$(sha256sum < "$NB_WORK/big.out" | cut -d' ' -f1)" = "$big" ]; then nb_pass "debugfs reads the guest's file"; else nb_fail "debugfs content"; fi
if [ "$(head -c 7 "$NB_WORK/extra3.img")" = "vdd-vdd" ]; then nb_pass "fourth disk got its write"; else nb_fail "fourth disk content"; fi

# hvc0 and a named port carried over a UNIX socket (9p cannot hold sockets,
# so the socket lives in /tmp). virtio_console is a module in Debian's
# kernel, so hvc0 exists only after init loads it: the test writes to it
# rather than making it /dev/console.
sock=$(mktemp -u /tmp/nb-port.XXXXXX)
initrd=$(nb_initrd ports '
for d in /sys/class/virtio-ports/*; do [ "$(cat $d/name)" = org.test.port ] && port=/dev/$(basename $d); done
exec 3<>$port
echo guest-says-hello >&3
read -r line <&3
echo "PORT-GOT $line"
exec 3>&-
echo HVC0-OUTPUT-WORKS > /dev/hvc0
')
( for i in $(seq 1 600); do [ -S "$sock" ] && break; sleep 0.2; done
  timeout 500 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"host-says-hi\n")
got = b""
while not got.endswith(b"\n"):
    d = s.recv(100)
    if not d: break
    got += d
open(sys.argv[2], "wb").write(got)
' "$sock" "$NB_WORK/port-out.txt" ) &
NB_LOG="$NB_WORK/ports.log"
timeout -k 5 600 "$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$initrd" \
  --append "console=ttyS0 panic=-1 quiet" --console hvc --serial "file:$NB_LOG" \
  --console-port "org.test.port=$sock" > "$NB_WORK/ports.stderr" 2>&1
NB_STATUS=$?
wait
nb_expect_status "guest with console ports powers off" 0
nb_expect "guest writes on hvc0 reach the console" "HVC0-OUTPUT-WORKS"
nb_expect "host to guest over the named port" "PORT-GOT host-says-hi"
NB_CHECKS=$((NB_CHECKS + 1))
if grep -q guest-says-hello "$NB_WORK/port-out.txt" 2>/dev/null; then nb_pass "guest to host over the named port"; else nb_fail "guest to host over the named port"; fi
# SIGKILL while the guest writes: after journal replay the image is clean
# and what the guest flushed (sync) before the kill is there.
initrd=$(nb_initrd kill '
mount -t ext4 /dev/vda /mnt
dd if=/dev/urandom of=/mnt/flushed.bin bs=1M count=8 2>/dev/null
sync
echo "FLUSHED $(sha256sum /mnt/flushed.bin | cut -d" " -f1)"
i=0
while true; do dd if=/dev/zero of=/mnt/junk$i bs=1M count=4 2>/dev/null; i=$((i + 1)); done
')
NB_LOG="$NB_WORK/kill.log"
: > "$NB_LOG"
"$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$initrd" \
  --append "console=ttyS0 panic=-1 quiet" --serial "file:$NB_LOG" --memory 512M \
  --disk "$NB_WORK/disk.img" > "$NB_WORK/kill.stderr" 2>&1 &
vm=$!
for i in $(seq 1 600); do grep -aq "^FLUSHED" "$NB_LOG" && break; sleep 1; done
sleep 3
kill -9 $vm
wait $vm 2>/dev/null
flushed=$(sed -n 's/^FLUSHED \([0-9a-f]*\).*/\1/p' "$NB_LOG" | head -n 1)
NB_CHECKS=$((NB_CHECKS + 3))
if [ -n "$flushed" ]; then nb_pass "guest flushed before the kill"; else nb_fail "guest never flushed"; fi
/usr/sbin/e2fsck -fy "$NB_WORK/disk.img" >/dev/null 2>&1   # replays the journal
if /usr/sbin/e2fsck -fn "$NB_WORK/disk.img" >/dev/null 2>&1; then nb_pass "clean after journal replay"; else nb_fail "e2fsck after the kill"; fi
/usr/sbin/debugfs -R "dump /flushed.bin $NB_WORK/flushed.out" "$NB_WORK/disk.img" 2>/dev/null
if [ -n "$flushed" ] && [ "$(sha256sum < "$NB_WORK/flushed.out" | cut -d' ' -f1)" = "$flushed" ]; then
  nb_pass "flushed data survived the kill"
else
  nb_fail "flushed data lost"
fi
nb_finish
