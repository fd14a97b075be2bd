#!/bin/bash
# The test guest image, booted by QEMU (not Nestbox) on KVM, does what guest
# tests rely on: the appended /test.sh and its files arrive, virtio drivers
# find their devices, nestbox.modules= picks modules, and the script's exit
# status comes back as "NESTBOX-TEST-EXIT <status>" before a clean power-off.
# A failure here is the image's fault, not the VMM's.
# Runs where /dev/kvm works: meson runs it through tests/sandbox/nb-sandbox.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
guest_dir=${NESTBOX_GUEST_DIR:?NESTBOX_GUEST_DIR must name the guest image directory}
work=$(mktemp -d "${TMPDIR:-/tmp}/nb-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=0
check() { # DESCRIPTION CONDITION...
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; failed=1; fi
}

magic="nestbox-disk-$$-$RANDOM"
printf '%s\n' "$magic" > "$work/disk.img"
truncate -s 1M "$work/disk.img"
echo "file shipped with the test" > "$work/data.txt"
cat > "$work/test.sh" <<'SCRIPT'
#!/bin/sh
echo "DATA $(cat /test/data.txt)"
echo "DISK $(head -c 64 /dev/vda | head -n 1)"
echo "LOADED $(cut -d' ' -f1 /proc/modules | sort | tr '\n' ' ')"
exit 5
SCRIPT
"$here/make-test-initrd.sh" "$guest_dir/guest.cpio.gz" "$work/test.sh" "$work/test.cpio.gz" "$work/data.txt"

start=$(date +%s)
timeout -k 5 400 qemu-system-x86_64 -accel kvm -cpu host -M q35 -smp 2 -m 256 \
  -nographic -no-reboot -nodefaults -serial "file:$work/console.log" \
  -kernel "$guest_dir/vmlinuz" -initrd "$work/test.cpio.gz" \
  -append "console=ttyS0 panic=-1 quiet nestbox.modules=virtio_blk" \
  -drive "if=virtio,file=$work/disk.img,format=raw" </dev/null > "$work/qemu.log" 2>&1
status=$?
echo "guest boot, test and power-off under QEMU/KVM: $(( $(date +%s) - start )) s"

check "QEMU exits 0 after the guest powers off (got $status)" [ $status -eq 0 ]
# SeaBIOS's screen control codes may precede the first marker on its line.
check "the init ran" grep -aq 'NESTBOX-INIT-REACHED' "$work/console.log"
check "both vCPUs are up" grep -aq '^NESTBOX-GUEST nproc=2 ' "$work/console.log"
check "files given to make-test-initrd.sh are under /test" \
  grep -aq '^DATA file shipped with the test' "$work/console.log"
check "virtio-blk found the disk" grep -aq "^DISK $magic" "$work/console.log"
check "nestbox.modules= loaded virtio_blk and its transport" \
  grep -aqE '^LOADED .*virtio_blk .*virtio_pci ' "$work/console.log"
check "nestbox.modules= loaded nothing else" \
  bash -c "! grep -aqE '^LOADED .*(ext4|virtio_net|bochs)' '$work/console.log'"
check "the script's status comes back" grep -aq '^NESTBOX-TEST-EXIT 5' "$work/console.log"
if [ $failed -ne 0 ]; then
  echo "the guest console said:"
  sed 's/^/    | /' "$work/console.log" | tail -40
  echo "QEMU said:"
  sed 's/^/    | /' "$work/qemu.log"
fi
exit $failed
