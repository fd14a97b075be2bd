# Boot-loader images for firmware-boot tests and benchmarks, from Debian's
# grub-pc-bin, without loop devices or partitioning tools. Source this file.
#
#   nb_grub_cfg TAG [MODULES]   a grub.cfg on the serial terminal, timeout 0:
#                               echoes NESTBOX-GRUB-TAG, then boots /vmlinuz
#                               with /initrd.gz (nestbox.modules=MODULES,
#                               default none)
#   nb_grub_disk OUT ROOT       a 64 MiB raw disk: an MBR, one ext2 partition
#                               holding the folder ROOT, GRUB in the MBR gap
#   nb_grub_iso OUT ROOT        a bootable ISO of the folder ROOT (El Torito
#                               and a hybrid MBR), made with grub-mkrescue;
#                               its output goes to stderr when it fails

# The echo comes first, before the menu: it is the boot loader's first line of
# its own, which is what a benchmark times.
nb_grub_cfg() {
  cat <<EOF
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
echo NESTBOX-GRUB-$1
menuentry "nestbox test" {
  linux /vmlinuz console=ttyS0 nestbox.modules=${2:-none} panic=-1 quiet
  initrd /initrd.gz
}
EOF
}

# GRUB's boot.img and core.img go where grub-bios-setup puts them: boot.img's
# code in the MBR, core.img in the sectors after it, up to the partition.
nb_grub_disk() {
  local out=$1 root=$2 g=/usr/lib/grub/i386-pc tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/nb-grub.XXXXXX") || return 1
  mkdir -p "$root/boot/grub/i386-pc"
  cp "$g"/*.mod "$g"/*.lst "$root/boot/grub/i386-pc/"
  rm -f "$out"
  truncate -s 64M "$out"
  le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $(($1 >> 24)); }
  # One bootable partition of type 0x83 from sector 2048 to the end.
  printf "\x80\xfe\xff\xff\x83\xfe\xff\xff$(le32 2048)$(le32 $((64 * 2048 - 2048)))" |
    dd of="$out" bs=1 seek=446 conv=notrunc status=none
  printf '\x55\xaa' | dd of="$out" bs=1 seek=510 conv=notrunc status=none
  PATH="$PATH:/usr/sbin:/sbin" mke2fs -q -F -t ext2 -d "$root" "$tmp/part.img" 63M > /dev/null &&
    dd if="$tmp/part.img" of="$out" bs=512 seek=2048 conv=notrunc status=none &&
    grub-mkimage -O i386-pc -o "$tmp/core.img" -p '(hd0,msdos1)/boot/grub' \
      biosdisk part_msdos ext2 normal linux serial terminal echo configfile || {
    rm -rf "$tmp"
    return 1
  }
  local sectors=$(( ($(stat -c %s "$tmp/core.img") + 511) / 512 ))
  # diskboot's block list (end of core.img's first sector): how many sectors follow.
  printf "$(printf '\\x%02x\\x%02x' $(((sectors - 1) & 255)) $(((sectors - 1) >> 8)))" |
    dd of="$tmp/core.img" bs=1 seek=508 conv=notrunc status=none
  dd if="$g/boot.img" of="$out" bs=440 count=1 conv=notrunc status=none
  dd if="$tmp/core.img" of="$out" bs=512 seek=1 conv=notrunc status=none
  rm -rf "$tmp"
}

nb_grub_iso() {
  local out=$1 root=$2 log
  log=$(grub-mkrescue -o "$out" "$root" 2>&1) || {
    printf 'grub-mkrescue failed: %s\n' "$log" >&2
    return 1
  }
}
