#!/bin/bash
# Appends SCRIPT as /test.sh (and any FILES under /test/) to a guest initramfs.
# Linux unpacks concatenated cpio archives in order, so the base stays shared.
# Usage: make-test-initrd.sh BASE.cpio.gz SCRIPT OUT.cpio.gz [FILES...]
set -euo pipefail
base=$1 script=$2 out=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$script" "$tmp/test.sh"
chmod +x "$tmp/test.sh"
if [ $# -gt 0 ]; then
  mkdir -p "$tmp/test"
  cp "$@" "$tmp/test/"
fi
{ cat "$base"; (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1); } > "$out.tmp"
mv "$out.tmp" "$out"
