#!/bin/bash
# A guest initramfs that runs fio: the test guest's base archive, then an
# uncompressed cpio with SCRIPT as /test.sh, the host's /usr/bin/fio (Debian's
# fio package) in /fio/, and every shared library it loads plus the dynamic
# loader in /fio/lib/. The script runs fio as
#   /fio/lib/ld-linux-x86-64.so.2 --library-path /fio/lib /fio/fio ...
# The fio part is ~80 MiB (Debian's fio links the ceph, gluster and RDMA
# libraries); it stays uncompressed because inflating it inside a nested
# guest costs far more than copying it.
# Usage: make-fio-initrd.sh BASE.cpio.gz SCRIPT OUT.cpio
set -euo pipefail
base=$1 script=$2 out=$3
fio=$(command -v fio) || { echo "make-fio-initrd: no fio on this host (apt-get install fio)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/fio/lib"
cp "$script" "$tmp/test.sh"
chmod +x "$tmp/test.sh"
cp "$fio" "$tmp/fio/fio"
# ldd prints "name => /path (addr)" for libraries and "/path (addr)" for the
# loader; cp follows the symlinks, so each lands under its soname.
if ldd "$fio" | grep -q 'not found'; then
  echo "make-fio-initrd: $fio needs libraries this host lacks:" >&2
  ldd "$fio" | grep 'not found' >&2
  exit 1
fi
libs=$(ldd "$fio" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }')
if ! grep -q ld-linux <<<"$libs"; then
  echo "make-fio-initrd: ldd $fio named no dynamic loader" >&2
  exit 1
fi
for lib in $libs; do
  cp -L "$lib" "$tmp/fio/lib/"
done
# Linux takes an uncompressed cpio only at a 4-byte aligned offset of the
# initrd (it skips NUL bytes between archives): pad the base up to one, or
# the fio part is "invalid magic at start of compressed archive".
pad=$(( (4 - $(stat -c %s "$base") % 4) % 4 ))
{ cat "$base"; head -c "$pad" /dev/zero; (cd "$tmp" && find . | cpio -o -H newc --quiet); } > "$out.tmp"
mv "$out.tmp" "$out"
