#!/bin/bash
# Firmware boot with real guests: SeaBIOS (Debian's seabios package) boots
# GRUB from a disk with GRUB in its MBR (raw and qcow2) and from an ISO made
# with grub-mkrescue (as a disk: its hybrid MBR); GRUB, on the serial
# terminal, loads the test kernel and initrd, whose init reports the CPUs and
# ACPI tables the firmware passed on. A disk with no boot loader ends with a
# clear message and status 1 instead of a silent loop; a missing firmware
# file is a usage error.
source "$(dirname "$0")/lib.sh"
source "$NB_IMAGES_DIR/grub-images.sh"
export PATH="$PATH:/usr/sbin:/sbin"

# busybox has no eject: a static one for the guest (CDROMEJECT, as eject(1) does).
cat > "$NB_WORK/eject.c" <<'EOF'
#include <fcntl.h>
#include <linux/cdrom.h>
#include <stdio.h>
#include <sys/ioctl.h>
int main(int argc, char **argv) {
  int fd = open(argc > 1 ? argv[1] : "/dev/sr0", O_RDONLY | O_NONBLOCK);
  if (fd < 0 || ioctl(fd, CDROMEJECT, 0) < 0) { perror("eject"); return 1; }
  return 0;
}
EOF
gcc -static -O2 -o "$NB_WORK/eject" "$NB_WORK/eject.c" || nb_fail "cannot build the guest's eject helper"

# nb_initrd with FILES for /test/.
nb_initrd_files() {
  local name=$1 script=$2
  shift 2
  printf '#!/bin/sh\n%s\n' "$script" > "$NB_WORK/$name.sh"
  "$NB_IMAGES_DIR/make-test-initrd.sh" "$NESTBOX_GUEST_DIR/guest.cpio.gz" "$NB_WORK/$name.sh" \
    "$NB_WORK/$name.cpio.gz" "$@"
  echo "$NB_WORK/$name.cpio.gz"
}

# The guest: what a user would check first on a machine that booted.
initrd=$(nb_initrd_files fw '
echo "CPUS $(grep -c ^processor /proc/cpuinfo)"
echo "ACPI $(ls /sys/firmware/acpi/tables | grep -E "^(APIC|DSDT|FACP)$" | sort | tr "\n" " ")"
d=/sys/class/dmi/id
echo "DMI $(cat $d/sys_vendor) / $(cat $d/product_name) / $(cat $d/bios_vendor) / $(cat $d/chassis_vendor)"
if [ -n "$(grep -o "nestbox.modules=[^ ]*sr_mod" /proc/cmdline)" ]; then
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/sr0 ] && break; sleep 1; done
  echo "SR0 $(dd if=/dev/sr0 bs=2048 skip=16 count=1 2>/dev/null | head -c 6 | tail -c 5)"
  if /test/eject /dev/sr0; then
    dd if=/dev/sr0 bs=2048 count=1 of=/dev/null 2>/dev/null && echo "STILL-READABLE" || echo "EJECTED"
  fi
fi
' "$NB_WORK/eject")

# nb_fw_boot NAME TIMEOUT [NESTBOX-VM OPTIONS...]: like nb_boot, through SeaBIOS.
# One CI run in the sandbox saw a boot hang after GRUB started the kernel
# (240 s, no guest output; 3 loops of this test since and every other run
# passed): a boot that times out is shown in full, with where the vCPUs were,
# and tried once more, loudly, so a second hang still fails the test.
nb_fw_boot() {
  local name=$1 limit=$2 try
  shift 2
  NB_LOG="$NB_WORK/$name.log"
  for try in 1 2; do
    # The vCPUs' registers at exit, on stderr: where a boot that timed out was.
    NESTBOX_DEBUG_VCPU=1 timeout -k 5 "$limit" "$NESTBOX_VM" --firmware bios --serial "file:$NB_LOG" \
      --firmware-log "$NB_WORK/$name.fwlog" "$@" > "$NB_WORK/$name.stderr" 2>&1
    NB_STATUS=$?
    [ "$NB_STATUS" = 124 ] && [ "$try" = 1 ] || break
    echo "RETRY: the $name boot timed out after $limit s; its console, stderr and firmware log:"
    tail -n 15 "$NB_LOG" | sed 's/^/    | /'
    sed 's/^/    | /' "$NB_WORK/$name.stderr"
    tail -n 15 "$NB_WORK/$name.fwlog" | sed 's/^/    | /'
  done
}

# 1. A disk with GRUB installed, raw, with two CPUs.
mkdir -p "$NB_WORK/droot/boot/grub"
cp "$NESTBOX_GUEST_DIR/vmlinuz" "$NB_WORK/droot/vmlinuz"
cp "$initrd" "$NB_WORK/droot/initrd.gz"
nb_grub_cfg DISK > "$NB_WORK/droot/boot/grub/grub.cfg"
nb_grub_disk "$NB_WORK/disk.raw" "$NB_WORK/droot" || nb_fail "cannot build the GRUB disk image"
nb_fw_boot raw 240 --disk "$NB_WORK/disk.raw,format=raw" --boot disk --cpus 2 --memory 256M
nb_expect_status "raw GRUB disk: the guest powers off" 0
nb_expect "SeaBIOS shows its banner on the serial console" "SeaBIOS \(version"
nb_expect "GRUB runs from the disk's MBR" "NESTBOX-GRUB-DISK"
nb_expect "the kernel GRUB loaded reaches init" "NESTBOX-INIT-REACHED"
nb_expect "both CPUs came up through the firmware" "^CPUS 2"
nb_expect "the guest has the machine's ACPI tables" "^ACPI APIC DSDT FACP"
nb_expect "the guest's DMI (SMBIOS) names Nestbox as the maker, SeaBIOS as the BIOS" \
  "^DMI Nestbox / Nestbox Virtual Machine / SeaBIOS / Nestbox"
NB_CHECKS=$((NB_CHECKS + 1))
if grep -q "fw_cfg DMA interface supported" "$NB_WORK/raw.fwlog"; then
  nb_pass "the firmware log shows SeaBIOS using fw_cfg DMA"
else
  nb_fail "no fw_cfg DMA line in the firmware log: $(head -c 2000 "$NB_WORK/raw.fwlog")"
fi

# 1b. --kernel through the firmware: fw_cfg items and QEMU's Linux boot ROM.
nb_fw_boot kernel 240 --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$initrd" \
  --append "console=ttyS0 nestbox.modules=none panic=-1 quiet" --memory 256M
nb_expect_status "--kernel with --firmware bios: the guest powers off" 0
nb_expect "SeaBIOS ran first" "SeaBIOS \(version"
nb_expect "the kernel passed through fw_cfg reaches init" "NESTBOX-INIT-REACHED"

# 2. The same disk as qcow2.
qemu-img convert -f raw -O qcow2 "$NB_WORK/disk.raw" "$NB_WORK/disk.qcow2"
rm -f "$NB_WORK/disk.raw"
nb_fw_boot qcow2 240 --disk "$NB_WORK/disk.qcow2" --memory 256M
nb_expect_status "qcow2 GRUB disk: the guest powers off" 0
nb_expect "the kernel from the qcow2 disk reaches init" "NESTBOX-INIT-REACHED"
rm -f "$NB_WORK/disk.qcow2"

# 3. An ISO made with grub-mkrescue in the CD-ROM drive (virtio-scsi), booted
#    through El Torito ahead of a blank disk; Linux reads it as /dev/sr0 and
#    ejects it.
mkdir -p "$NB_WORK/iso/boot/grub"
cp "$NESTBOX_GUEST_DIR/vmlinuz" "$NB_WORK/iso/vmlinuz"
cp "$initrd" "$NB_WORK/iso/initrd.gz"
nb_grub_cfg CDROM virtio_pci,virtio_scsi,sr_mod > "$NB_WORK/iso/boot/grub/grub.cfg"
nb_grub_iso "$NB_WORK/test.iso" "$NB_WORK/iso" 2> "$NB_WORK/mkrescue.log" ||
  nb_fail "$(cat "$NB_WORK/mkrescue.log")"
truncate -s 16M "$NB_WORK/blank.img"
nb_fw_boot cdrom 300 --cdrom "$NB_WORK/test.iso" --disk "$NB_WORK/blank.img,format=raw" \
  --boot cdrom,disk --memory 256M
nb_expect_status "grub-mkrescue ISO on the CD-ROM: the guest powers off" 0
nb_expect "GRUB runs from the CD (El Torito)" "NESTBOX-GRUB-CDROM"
nb_expect "the kernel from the CD reaches init" "NESTBOX-INIT-REACHED"
nb_expect "Linux reads the ISO on /dev/sr0" "^SR0 CD001"
nb_expect "the guest ejects the CD" "^EJECTED"

# 4. Nothing to boot: a blank disk. SeaBIOS would retry forever.
start=$(date +%s)
nb_fw_boot blank 120 --disk "$NB_WORK/blank.img,format=raw" --memory 128M
NB_CHECKS=$((NB_CHECKS + 1))
if [ "$NB_STATUS" = 1 ] && grep -q "no bootable device" "$NB_WORK/blank.stderr"; then
  nb_pass "a blank disk: 'no bootable device' on stderr, exit status 1, after $(( $(date +%s) - start )) s"
else
  nb_fail "a blank disk: status $NB_STATUS, stderr: $(cat "$NB_WORK/blank.stderr")"
fi
nb_expect "the firmware's own message is on the console" "No bootable device"
NB_CHECKS=$((NB_CHECKS + 1))
grep -q "No bootable device" "$NB_WORK/blank.fwlog" && nb_pass "and in the firmware log" ||
  nb_fail "no 'No bootable device' in the firmware log"

# 5. A missing firmware file is a configuration error, before anything runs.
nb_fw_boot missing 30 --firmware-file "$NB_WORK/no-such-bios.bin" --disk "$NB_WORK/blank.img,format=raw"
NB_CHECKS=$((NB_CHECKS + 1))
if [ "$NB_STATUS" = 2 ] && grep -q "cannot read the firmware .*no-such-bios.bin" "$NB_WORK/missing.stderr"; then
  nb_pass "a missing firmware file: exit status 2 with the file named"
else
  nb_fail "a missing firmware file: status $NB_STATUS, stderr: $(cat "$NB_WORK/missing.stderr")"
fi

# NB_KEEP_LOGS=DIR keeps the consoles and firmware logs for a look afterwards.
if [ -n "${NB_KEEP_LOGS:-}" ]; then
  mkdir -p "$NB_KEEP_LOGS" && cp "$NB_WORK"/*.log "$NB_WORK"/*.fwlog "$NB_WORK"/*.stderr "$NB_KEEP_LOGS"/ 2>/dev/null
fi
nb_finish
