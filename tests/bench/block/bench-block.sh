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

ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run_case NAME MODE BS COUNT STEP
run_case() {
  local name=$1 mode=$2 bs=$3 count=$4 step=$5
  local nb_times=() q_times=()
  for _ in $(seq "$runs"); do
    for who in nestbox qemu; do
      local img=$img_read
      if [ "$mode" = write ]; then
        img="$work/write.qcow2"
        rm -f "$img"
        qemu-img create -q -f qcow2 "$img" ${size_mb}M
      fi
      sync
      local t0 t1
      t0=$(ns)
      if [ $who = nestbox ]; then
        "$work/bench-block" "$img" "$mode" "$bs" "$count" "$step"
        t1=$(ns); nb_times+=($(( (t1 - t0) / 1000 )))
      else
        local w=""
        [ "$mode" = write ] && w="-w"
        qemu-img bench -q -f qcow2 -t writeback -d 1 $w -c "$count" -s "$bs" -S "$step" "$img" >/dev/null
        t1=$(ns); q_times+=($(( (t1 - t0) / 1000 )))
      fi
    done
  done
  local nb q
  nb=$(printf '%s\n' "${nb_times[@]}" | median)
  q=$(printf '%s\n' "${q_times[@]}" | median)
  local bytes=$((bs * count))
  awk -v n="$name" -v nb="$nb" -v q="$q" -v b="$bytes" -v c="$count" 'BEGIN {
    printf "| %-28s | %9.1f MB/s %8.0f IOPS | %9.1f MB/s %8.0f IOPS | %5.2f |\n",
      n, b / nb, c / (nb / 1e6), b / q, c / (q / 1e6), q / nb }'
}

echo "qcow2, 64 KiB clusters, ${size_mb} MiB image, $runs runs each, medians (whole process wall time)"
echo
echo "| case                         | Nestbox                        | qemu-img bench                 | ratio |"
echo "|------------------------------|--------------------------------|--------------------------------|-------|"
# Random: a large odd step wraps around the disk, visiting offsets in a scattered order.
run_case "sequential read 1 MiB"       read  1048576 $((size_mb * 8)) 1048576
run_case "random read 4 KiB"           read  4096    60000 $((4096 * 7919))
run_case "sequential write 1 MiB (new)" write 1048576 $((size_mb)) 1048576
run_case "random write 4 KiB (new)"    write 4096    30000 $((4096 * 7919))
