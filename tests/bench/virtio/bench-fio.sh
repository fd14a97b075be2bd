#!/bin/bash
# fio in a guest on virtio-blk: nestbox-vm against QEMU's virtio-blk-pci
# (-M q35), same kernel, initrd, raw image file, memory and CPUs, in one run
# (inside the KVM sandbox where the host lacks hardware KVM).
#
#   tests/bench/virtio/bench-fio.sh [BOOTS] [ROUNDS] [RUNTIME]   after ./test.sh
#
# Each VMM boots BOOTS times, in alternating order (nestbox first, then QEMU
# first, ...); each boot runs ROUNDS rounds of four fio jobs of RUNTIME
# seconds (tests/bench/virtio/fio-guest.sh): 4 KiB random read and write at
# queue depth 32, 1 MiB sequential read and write at depth 4, libaio,
# O_DIRECT, on the whole of /dev/vda. Reports the median over every round of
# every boot, per job and VMM, and the ratio nestbox/QEMU.
#
# Nestbox serves a raw image with buffered preadv/pwritev on a pool of
# threads and fdatasync on flush; QEMU's closest setting is cache=writeback
# (page cache, flush = fdatasync) with aio=threads. The image lives on the
# sandbox's tmpfs, which takes no O_DIRECT (so QEMU's cache=none cannot be
# used there), and both VMMs use the same file.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
boots=${1:-2}
rounds=${2:-2}
runtime=${3:-4}
build=${NESTBOX_BUILD:-$root/build}
build=$(cd "$build" && pwd)
guest=${NESTBOX_GUEST_DIR:-$build/guest}
initrd=$build/bench-fio/fio.cpio

if [ -z "${NESTBOX_IN_SANDBOX:-}" ]; then
  # Built here: copying 80 MiB into an archive is slow under emulation.
  mkdir -p "$build/bench-fio"
  "$here/make-fio-initrd.sh" "$guest/guest.cpio.gz" "$here/fio-guest.sh" "$initrd" || exit 1
  if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
    cd "$build" && exec "$root/tests/sandbox/nb-sandbox" --memory 3G --timeout 1500 -- "$here/$(basename "$0")" "$@"
  fi
fi

command -v qemu-system-x86_64 >/dev/null || { echo "bench-fio: needs qemu-system-x86_64" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
img=$work/disk.raw
# Written out in full, so that reads hit allocated pages, not holes.
dd if=/dev/zero of="$img" bs=1M count=256 status=none

kernel=$guest/vmlinuz
# NB_FIO_VMMS="nestbox" runs one VMM only; NB_FIO_JOBS=randwrite,seqwrite
# only those jobs; NB_FIO_DEBUG=1 keeps the guest kernel's messages, has the
# guest print its requests in flight every 5 s (fio.watch) and, when a job
# makes no progress for RUNTIME + 60 s, prints every nestbox-vm thread's
# stack (gdb) before stopping it: what a hang needs to be explained.
vmms=${NB_FIO_VMMS:-nestbox qemu}
fio_jobs=${NB_FIO_JOBS:-}
debug=${NB_FIO_DEBUG:-}
append="console=ttyS0 panic=-1 nestbox.modules=virtio_blk fio.rounds=$rounds fio.runtime=$runtime"
if [ -n "$debug" ]; then append+=" loglevel=7 hung_task_timeout_secs=30 fio.watch=1"; else append+=" quiet"; fi
[ -n "$fio_jobs" ] && append+=" fio.jobs=$fio_jobs"
# NB_FIO_APPEND: more guest kernel parameters (both VMMs).
[ -n "${NB_FIO_APPEND:-}" ] && append+=" $NB_FIO_APPEND"
n_jobs=4
[ -n "$fio_jobs" ] && n_jobs=$(echo "$fio_jobs" | tr ',' '\n' | grep -c .)
mem=512M

# With NB_FIO_DEBUG: stops PID once the console LOG shows no new FIO-START
# or FIO-RESULT line for RUNTIME + 60 s, printing its threads' stacks first.
stall_watch() { # pid log
  local last="" same=0 now
  while kill -0 "$1" 2>/dev/null; do
    sleep 5
    now=$(grep -a -c -E '^FIO-(START|RESULT)' "$2" 2>/dev/null)
    if [ "$now" = "$last" ]; then same=$((same + 5)); else same=0; last=$now; fi
    if [ $same -ge $((runtime + 60)) ]; then
      echo "STALL: no fio progress for $same s; nestbox-vm threads:"
      for t in /proc/"$1"/task/*; do echo "  thread $(cat "$t/comm") $(cat "$t/wchan" 2>/dev/null)"; done
      command -v gdb >/dev/null && timeout 60 gdb -p "$1" -batch -ex 'thread apply all bt' 2>&1 | grep -E '^(Thread|#)' | head -150
      kill "$1"
      return
    fi
  done
}

run_vmm() { # vmm log
  case $1 in
    nestbox)
      if [ -n "$debug" ]; then
        G_MESSAGES_DEBUG=all "$build/app/nestbox-vm" --kernel "$kernel" --initrd "$initrd" --append "$append" \
          --memory $mem --cpus 1 --serial "file:$2" --disk "$img" --no-reboot &
        local pid=$!
        stall_watch $pid "$2" &
        local watch=$!
        wait $pid; local st=$?
        kill $watch 2>/dev/null; wait $watch 2>/dev/null
        return $st
      fi
      timeout -k 5 600 "$build/app/nestbox-vm" --kernel "$kernel" --initrd "$initrd" --append "$append" \
        --memory $mem --cpus 1 --serial "file:$2" --disk "$img" --no-reboot ;;
    qemu)
      timeout -k 5 600 qemu-system-x86_64 -accel kvm -cpu host -M q35 -m $mem -smp 1 \
        -nodefaults -no-user-config -display none -serial "file:$2" -no-reboot \
        -kernel "$kernel" -initrd "$initrd" -append "$append" \
        -drive "file=$img,if=none,id=vda,format=raw,cache=writeback,aio=threads" \
        -device virtio-blk-pci,drive=vda ;;
  esac
}

# Consoles are kept in the build tree (the sandbox's /tmp goes with it).
logs=$build/bench-fio/logs
mkdir -p "$logs"
rm -f "$logs"/*.log "$logs"/*.stderr
jobs="randread randwrite seqread seqwrite"
declare -A results
order=()
for b in $(seq "$boots"); do
  if [ $((b % 2)) = 1 ]; then order=(nestbox qemu); else order=(qemu nestbox); fi
  for vmm in "${order[@]}"; do
    case " $vmms " in *" $vmm "*) ;; *) continue ;; esac
    log=$logs/$vmm-$b.log
    start=$(date +%s)
    run_vmm $vmm "$log" > "$logs/$vmm-$b.stderr" 2>&1
    status=$?
    echo "boot $b $vmm: exit $status after $(( $(date +%s) - start )) s"
    grep -a '^FIO-VERSION' "$log" | head -1
    # Both VMMs stop when the guest reboots (--no-reboot, -no-reboot), so a
    # guest that crashed shows as missing rounds, not as a second boot.
    got=$(grep -ac '^FIO-RESULT' "$log")
    if grep -aq '^FIO-FAILED' "$log" || [ $status != 0 ] || [ "$got" != $((rounds * n_jobs)) ]; then
      echo "  $vmm ran $got of $((rounds * n_jobs)) jobs (exit $status); console in $log"
      echo "  its console ended with:"
      tail -n "$([ -n "$debug" ] && echo 60 || echo 15)" "$log" | sed 's/^/  | /'
      grep -v -e "MMIO" "$logs/$vmm-$b.stderr" | tail -n 40 | sed 's/^/  ! /'
    fi
    while read -r _ job round iops kib; do
      echo "  $vmm $job round $round: $iops IOPS, $((kib / 1024)) MiB/s"
      results[$vmm,$job]+=" $iops:$kib"
    done < <(grep -a '^FIO-RESULT' "$log" | tr -d '\r')
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (!NR) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
# pick FIELD (1 = IOPS, 2 = KiB/s) from "iops:kib" samples
pick() { tr ' ' '\n' | grep . | cut -d: -f"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "| fio job (median of $((boots * rounds)) runs of ${runtime} s) | measure | nestbox-vm | QEMU q35 virtio-blk-pci | nestbox/QEMU |"
echo "|---|---|---|---|---|"
for job in $jobs; do
  case $job in
    rand*) field=1; unit=IOPS; desc="4 KiB $job, depth 32" ;;
    *) field=2; unit=MiB/s; desc="1 MiB $job, depth 4" ;;
  esac
  n=$(echo "${results[nestbox,$job]:-}" | pick $field | median)
  q=$(echo "${results[qemu,$job]:-}" | pick $field | median)
  r=$(ratio "$n" "$q")
  if [ $field = 2 ]; then n=$((n / 1024)); q=$((q / 1024)); fi
  echo "| $desc | $unit | $n | $q | $r |"
done
