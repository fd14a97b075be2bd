#!/bin/bash
# Builds the test guests from Debian packages into OUTDIR (cached there):
#   vmlinuz              the Debian kernel that linux-image-amd64 depends on
#   modules/             its modules tree, with modules.dep
#   guest.cpio.gz        busybox + virtio/ext4/9p/drm modules + the test init
#   demo.cpio.gz         the same with an interactive shell (./run.sh)
# Usage: tests/images/build-guest-image.sh OUTDIR
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

out=${1:?usage: build-guest-image.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Tests may build it on demand in parallel: one builder at a time per OUTDIR.
exec 9>"$out/.lock"
flock 9

# The exact kernel package, never a wildcard (that would fetch every version).
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(kernel_package)
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null
  pkg=$(kernel_package)
fi
if [ -z "$pkg" ]; then
  echo "build-guest-image: cannot find the kernel package that linux-image-amd64 depends on" >&2
  exit 1
fi
version=${pkg#linux-image-}

stamp="$out/.built-$version-$(cat "$here"/init.sh "$here"/guest-modules.txt "$0" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi

if [ ! -f "$out/modules/lib/modules/$version/modules.dep" ]; then
  deb_dir="$out/deb"
  mkdir -p "$deb_dir"
  if ! ls "$deb_dir/${pkg}_"*.deb >/dev/null 2>&1; then
    (cd "$deb_dir" && apt-get download "$pkg" >/dev/null 2>&1) || {
      echo "build-guest-image: apt-get download $pkg failed" >&2
      exit 1
    }
  fi
  rm -rf "$out/modules" "$out/unpack"
  dpkg-deb -x "$deb_dir/${pkg}_"*.deb "$out/unpack"
  mkdir -p "$out/modules/lib"
  mv "$out/unpack/lib/modules" "$out/modules/lib/modules"
  cp "$out/unpack/boot/vmlinuz-$version" "$out/vmlinuz"
  cp "$out/unpack/boot/config-$version" "$out/config"
  rm -rf "$out/unpack"
  depmod -b "$out/modules" "$version"
fi

busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q static; then
  busybox=/bin/busybox
fi

# Modules in load order (dependencies first), from modules.dep.
module_list() {
  local name
  while read -r name; do
    case "$name" in ''|'#'*) continue ;; esac
    modprobe -d "$out/modules" -S "$version" --show-depends "$name" 2>/dev/null |
      awk '$1 == "insmod" { print $2 }'
  done < "$1" | awk '!seen[$0]++'
}

# $1: root dir, $2: module list file, $3: init script, $4: extra init settings
make_root() {
  local root=$1 list=$2
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root,usr/bin,usr/sbin,var/log}
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  : > "$root/etc/modules"
  module_list "$list" | while read -r ko; do
    rel=${ko#"$out/modules"}
    mkdir -p "$root$(dirname "$rel")"
    cp "$ko" "$root$rel"
    echo "$rel" >> "$root/etc/modules"
  done
  # modules.dep for the modules that are there, so busybox modprobe works
  # (the init's nestbox.modules= and interactive use in the demo).
  cp "$out/modules/lib/modules/$version/modules.builtin" \
     "$out/modules/lib/modules/$version/modules.order" \
     "$out/modules/lib/modules/$version/modules.builtin.modinfo" "$root/lib/modules/$version/"
  depmod -b "$root" "$version"
  cp "$here/init.sh" "$root/init"
  chmod +x "$root/init"
  echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
  echo "root:x:0:" > "$root/etc/group"
}

pack() {
  (cd "$1" && find . | sort | cpio -o -H newc --quiet | gzip -1 > "$2.tmp")
  mv "$2.tmp" "$2"
}

work="$out/root-guest"
make_root "$work" "$here/guest-modules.txt"
pack "$work" "$out/guest.cpio.gz"
touch "$work/etc/nestbox-demo"
pack "$work" "$out/demo.cpio.gz"
rm -rf "$work"

rm -f "$out"/.built-*
touch "$stamp"
