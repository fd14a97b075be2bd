#!/bin/bash
# Runs a block fuzz target for a while on a seed corpus of small images made
# by qemu-img (qcow2 v2/v3 with snapshots, compressed clusters and a backing
# name; VDI; VMDK), created once in the build tree.
# Usage: run-fuzz.sh FUZZER CORPUS_DIR SECONDS
set -eu
fuzzer=$1 corpus=$2 seconds=$3
if [ ! -f "$corpus/.made" ] && command -v qemu-img >/dev/null; then
  mkdir -p "$corpus"
  t=$(mktemp -d)
  trap 'rm -rf "$t"' EXIT
  qemu-img create -q -f raw "$t/s.raw" 64K
  qemu-io -f raw -c 'write -P 0x41 0 8K' "$t/s.raw" >/dev/null
  qemu-img convert -f raw -O qcow2 -o cluster_size=512 "$t/s.raw" "$corpus/v3.qcow2"
  qemu-img convert -f raw -O qcow2 -o cluster_size=512,compat=0.10 "$t/s.raw" "$corpus/v2.qcow2"
  qemu-img convert -c -f raw -O qcow2 -o cluster_size=512 "$t/s.raw" "$corpus/comp.qcow2"
  qemu-img create -q -f qcow2 -o cluster_size=512 "$corpus/snap.qcow2" 64K
  qemu-io -c 'write -P 1 0 1K' "$corpus/snap.qcow2" >/dev/null
  qemu-img snapshot -c s1 "$corpus/snap.qcow2"
  qemu-io -c 'write -z 0 1K' "$corpus/snap.qcow2" >/dev/null
  qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=1 "$corpus/rc1.qcow2" 64K
  qemu-img create -q -f qcow2 -u -o cluster_size=512 -b missing.raw -F raw "$corpus/backing.qcow2" 64K
  qemu-img convert -f raw -O vdi "$t/s.raw" "$corpus/s.vdi"
  qemu-img convert -f raw -O vmdk "$t/s.raw" "$corpus/s.vmdk"
  qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$t/s.raw" "$corpus/stream.vmdk"
  touch "$corpus/.made"
fi
mkdir -p "$corpus"
exec "$fuzzer" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 "$corpus"
