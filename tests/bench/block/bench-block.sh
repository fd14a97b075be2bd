#!/bin/bash
# qcow2 throughput: Nestbox's block library against qemu-img bench on the same
# files and the same offsets (queue depth 1, host page cache), medians of
# RUNS runs, as ratios (above 1.00: Nestbox faster).
# Usage: tests/bench/block/bench-block.sh BUILD_DIR [RUNS]
#   BUILD_DIR: a meson build of Nestbox (for core/libnbcore.a).
set -euo pipefail
build=$(realpath "$1")
runs=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/nb-bench-XXXXXX")
trap 'rm -rf "$work"' EXIT

ninja -C "$build" core/libnbcore.a >"$work/ninja.log" || { cat "$work/ninja.log"; exit 1; }
cc -O2 -D_GNU_SOURCE -I"$src/core" "$here/bench-block.c" -o "$work/bench-block" \
  "$build/core/libnbcore.a" $(pkg-config --cflags --libs glib-2.0 gio-2.0 gio-unix-2.0 zlib) -lpthread

size_mb=256
img_read="$work/read.qcow2"
# A fully allocated image for the read tests, written by qemu.
qemu-img create -q -f qcow2 "$img_read" ${size_mb}M
qemu-io -c "write -P 0x5a 0 ${size_mb}M" "$img_read" >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# timed FILE COMMAND...: appends "wall_seconds cpu_seconds" of the command to FILE.
timed() {
  local out=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" >/dev/null
  awk '{printf "%s %.3f\n", $1, $2 + $3}' "$work/time" >>"$out"
}

# run_case NAME MODE BS COUNT STEP
run_case() {
  local name=$1 mode=$2 bs=$3 count=$4 step=$5
  : >"$work/nb.t"; : >"$work/q.t"
  for _ in $(seq "$runs"); do
    for who in nestbox qemu; do
      local img=$img_read
      if [ "$mode" = write ]; then
        img="$work/write.qcow2"
        rm -f "$img"
        qemu-img create -q -f qcow2 "$img" ${size_mb}M
      fi
      if [ $who = nestbox ]; then
        timed "$work/nb.t" "$work/bench-block" "$img" "$mode" "$bs" "$count" "$step"
      else
        local w=""
        [ "$mode" = write ] && w="-w"
        timed "$work/q.t" qemu-img bench -q -f qcow2 -t writeback -d 1 $w -c "$count" \
          -s "$bs" -S "$step" "$img"
      fi
    done
  done
  local nbw nbc qw qc
  nbw=$(awk '{print $1}' "$work/nb.t" | median); nbc=$(awk '{print $2}' "$work/nb.t" | median)
  qw=$(awk '{print $1}' "$work/q.t" | median); qc=$(awk '{print $2}' "$work/q.t" | median)
  awk -v n="$name" -v nbw="$nbw" -v nbc="$nbc" -v qw="$qw" -v qc="$qc" -v b=$((bs * count)) 'BEGIN {
    printf "| %-28s | %8.0f MB/s | %6.2f s | %8.0f MB/s | %6.2f s | %5.2f | %5.2f |\n",
      n, b / nbw / 1e6, nbc, b / qw / 1e6, qc, qw / nbw, (nbc > 0 ? qc / nbc : 0) }'
}

echo "qcow2, 64 KiB clusters, ${size_mb} MiB image, $runs runs each, medians of the whole"
echo "process (open, I/O, flush and close). Ratios: qemu time / Nestbox time (above 1: Nestbox faster)."
echo
echo "| case                         | Nestbox       | CPU      | qemu-img bench | CPU      | wall ratio | CPU ratio |"
echo "|------------------------------|---------------|----------|---------------|----------|-------|-------|"
# Random: a large odd step wraps around the disk, visiting offsets in a scattered order.
run_case "sequential read 1 MiB"       read  1048576 $((size_mb * 8)) 1048576
run_case "random read 4 KiB"           read  4096    60000 $((4096 * 7919))
run_case "sequential write 1 MiB (new)" write 1048576 $((size_mb)) 1048576
run_case "random write 4 KiB (new)"    write 4096    30000 $((4096 * 7919))
