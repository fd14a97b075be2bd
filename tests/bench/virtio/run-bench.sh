#!/bin/sh
# Compares how virtio-blk requests run: on the device's worker thread
# (threads=0) or on a pool of N threads, side by side in one run, on the same
# raw file. Prints the median of RUNS runs for each setting.
#   tests/bench/virtio/run-bench.sh BUILD_DIR [FILE] [SECONDS] [RUNS]
set -eu
build=${1:?usage: run-bench.sh BUILD_DIR [FILE] [SECONDS] [RUNS]}
file=${2:-${TMPDIR:-/tmp}/nb-bench-blk.raw}
seconds=${3:-2}
runs=${4:-3}
ninja -C "$build" tests/unit/virtio/bench-virtio-blk >/dev/null
bench="$build/tests/unit/virtio/bench-virtio-blk"
for mode in randread randwrite syncwrite seqread; do
  depth=32
  [ "$mode" = seqread ] && depth=4
  for threads in 0 1 2 4 8; do
    results=""
    i=0
    while [ $i -lt "$runs" ]; do
      r=$("$bench" "$file" "$mode" "$depth" "$threads" "$seconds" | sed -n 's/.*requests\/s=\([0-9]*\).*/\1/p')
      results="$results $r"
      i=$((i + 1))
    done
    median=$(echo $results | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$mode depth=$depth threads=$threads median_requests/s=$median runs:$results"
  done
done
