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

vmms=${NB_FIO_VMMS:-nestbox qemu}
read -r -a vmm_list <<< "$vmms"

if [ -z "${NESTBOX_IN_SANDBOX:-}" ] && [ "${NB_FIO_BOOTS:-}" != report ]; then
  # Built here: copying 80 MiB into an archive is slow under emulation.
  mkdir -p "$build/bench-fio"
  "$here/make-fio-initrd.sh" "$guest/guest.cpio.gz" "$here/fio-guest.sh" "$initrd" || exit 1
  if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
    # The sandbox's own kernel has panicked, reset or locked up after a few
    # VMs in one sandbox, more often the more VMs it ran: at most two VMs
    # per sandbox, in as many sandboxes as the boots need (a sandbox that
    # fails costs its boots only); then the report, here, from the consoles
    # they left.
    per=$((2 / ${#vmm_list[@]})); [ $per -ge 1 ] || per=1
    first=1
    while [ $first -le "$boots" ]; do
      last=$((first + per - 1)); [ $last -le "$boots" ] || last=$boots
      (cd "$build" && NB_FIO_BOOTS="$first $last" "$root/tests/sandbox/nb-sandbox" --memory 3G \
         --timeout 1500 -- "$here/$(basename "$0")" "$@") ||
        echo "bench-fio: the sandbox for boots $first to $last failed; those boots are missing"
      first=$((last + 1))
    done
    NB_FIO_BOOTS=report exec "$here/$(basename "$0")" "$@"
  fi
fi
# NB_FIO_BOOTS="FIRST LAST" runs only those boots; "report" none, and
# reports on the consoles earlier runs left.
read -r first_boot last_boot <<< "${NB_FIO_BOOTS:-1 $boots}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
img=$work/disk.raw
if [ "$first_boot" != report ]; then
  command -v qemu-system-x86_64 >/dev/null || { echo "bench-fio: needs qemu-system-x86_64" >&2; exit 1; }
  # Written out in full, so that reads hit allocated pages, not holes.
  dd if=/dev/zero of="$img" bs=1M count=256 status=none
fi

kernel=$guest/vmlinuz
# NB_FIO_VMMS="nestbox" runs one VMM only; NB_FIO_JOBS=randwrite,seqwrite
# only those jobs; NB_FIO_DEBUG=1 keeps the guest kernel's messages, has the
# guest print its requests in flight every 5 s (fio.watch) and, when a job
# makes no progress for RUNTIME + 60 s, prints every nestbox-vm thread's
# stack (gdb) before stopping it: what a hang needs to be explained.
# NB_FIO_VMMS is a list of VMMs, "nestbox" and "qemu"; each boot starts one
# place further along it, so no VMM always runs first. For experiments, an
# entry nestbox:VAR=VAL[:VAR=VAL...] runs nestbox-vm with those variables in
# its environment, as a VMM of its own in the table.
# NB_FIO_STATS=1 also reports, per 1000 requests of each job, the KVM exits
# and interrupt injections the sandbox's KVM counted (debugfs), the VMM's
# CPU time and context switches, and the interrupts the guest's queue took.
# NB_FIO_PERF=JOB profiles the sandbox during JOB's first round (see
# perf_watch; not with NB_FIO_STATS). NB_FIO_STATS=reasons adds the exits
# split by exit reason and the MSR accesses by MSR (the sandbox kernel's
# kvm_exit and kvm_msr tracepoints, counted by hist triggers): which exits
# one VMM makes the guest take more.
stats=${NB_FIO_STATS:-}
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

# KVM's counters, summed over the VMs alive now, then the VMM's CPU time
# (clock ticks) and its threads' context switches.
stats_snapshot() { # pid
  local f out=""
  for f in exits mmio_exits io_exits irq_injections halt_exits halt_wakeup; do
    out+=" $(cat /sys/kernel/debug/kvm/$f 2>/dev/null || echo 0)"
  done
  local cpu ctx
  cpu=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0)
  # One awk for all threads: under the sandbox's emulation each process
  # started costs tens of milliseconds.
  ctx=$(awk '/ctxt_switches/ { n += $2 } END { print n + 0 }' /proc/"$1"/task/*/status 2>/dev/null)
  echo "$out $cpu $ctx"
}

# With NB_FIO_STATS: a snapshot each time the console LOG gains a FIO-START
# or FIO-RESULT line, written to OUT as "LINE-NUMBER COUNTERS...".
stats_watch() { # pid log out
  local seen=0 now
  while kill -0 "$1" 2>/dev/null; do
    now=$(grep -a -c -E '^FIO-(START|RESULT)' "$2" 2>/dev/null)
    if [ "${now:-0}" -gt $seen ]; then
      # One reading for every line that appeared: a job's FIO-RESULT and the
      # next job's FIO-START often come in the same tenth of a second.
      local snap ev
      snap=$(stats_snapshot "$1")
      [ "$stats" = reasons ] && for ev in $hist_events; do hist_read $ev > "$3.$ev"; done
      while [ $seen -lt "$now" ]; do
        seen=$((seen + 1)); echo "$seen $snap" >> "$3"
        [ "$stats" = reasons ] && for ev in $hist_events; do cp "$3.$ev" "$3.$seen.$ev"; done
      done
    fi
    sleep 0.1
  done
}

# With NB_FIO_STATS=reasons: hist triggers on kvm_exit (by exit reason) and
# kvm_msr (by MSR and direction), set once; hist_read EVENT prints the
# running counts as "KEY COUNT" lines, KEY like exit_reason=124.
tracing=/sys/kernel/debug/tracing
hist_events="kvm_exit kvm_msr"
hist_setup() {
  [ -d $tracing/events/kvm ] || { echo "bench-fio: no kvm tracepoints in $tracing" >&2; return 1; }
  grep -q '^hist:' $tracing/events/kvm/kvm_exit/trigger 2>/dev/null && return 0
  echo 'hist:keys=exit_reason:size=256' > $tracing/events/kvm/kvm_exit/trigger &&
    echo 'hist:keys=ecx.hex,write:size=256' > $tracing/events/kvm/kvm_msr/trigger
}
hist_read() { # event
  awk '/^\{/ { key = $0; sub(/^\{ */, "", key); sub(/ *\}.*/, "", key); gsub(/: */, "=", key)
               gsub(/, */, ",", key); n = $0; sub(/.*hitcount: */, "", n); print key, n + 0 }' \
    $tracing/events/kvm/$1/hist
}

# NB_FIO_PERF=JOB: a system-wide perf profile of the sandbox (software
# clock, every process) during the first round of JOB, reported by thread
# and by thread and symbol in LOG.perf.
perf_job=${NB_FIO_PERF:-}
perf_watch() { # log
  local i
  for i in $(seq 600); do
    grep -aq "^FIO-START $perf_job 1" "$1" 2>/dev/null && break
    sleep 0.2
  done
  grep -aq "^FIO-START $perf_job 1" "$1" 2>/dev/null || return 0
  sleep 1.5   # past fio's ramp
  perf record -a -g -e cpu-clock -F 499 -o "$1.perf.data" -- sleep $((runtime - 1)) >/dev/null 2>&1
  {
    echo "== by thread"
    perf report -i "$1.perf.data" --stdio --no-children --sort comm 2>/dev/null | grep -v '^#' | grep '%' | head -20
    echo "== by thread and symbol"
    perf report -i "$1.perf.data" --stdio --no-children -g none --sort comm,sym 2>/dev/null |
      grep -v '^#' | grep '%' | head -60
  } > "$1.perf"
}

# The VMM's process: the newest one of that name in this sandbox.
vmm_pid() { # vmm
  case $1 in qemu) pgrep -n -x qemu-system-x86 ;; *) pgrep -n -x nestbox-vm ;; esac
}

run_vmm() { # vmm log
  if [ -n "$perf_job" ]; then
    # Its report waits for the VM to end, so that it does not run during
    # the next one.
    perf_watch "$2" &
    local perf_pid=$!
    run_vmm_plain "$@"; local st=$?
    wait $perf_pid
    return $st
  fi
  if [ -n "$stats" ]; then
    [ -d /sys/kernel/debug/kvm ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
    [ "$stats" = reasons ] && { hist_setup || stats=1; }
    rm -f "$2.stats"*
    run_vmm_plain "$@" &
    local runner=$! pid="" i
    for i in $(seq 50); do pid=$(vmm_pid "$1") && break; sleep 0.1; done
    [ -n "$pid" ] && stats_watch "$pid" "$2" "$2.stats" &
    local watch=$!
    wait $runner; local st=$?
    kill $watch 2>/dev/null; wait $watch 2>/dev/null
    return $st
  fi
  run_vmm_plain "$@"
}

run_vmm_plain() ( # vmm log
  vmm=$1
  case $vmm in
    nestbox:*)
      vars=${vmm#nestbox:}
      IFS=: read -r -a assignments <<< "$vars"
      for a in "${assignments[@]}"; do export "${a?}"; done
      vmm=nestbox ;;
  esac
  case $vmm in
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
)

# With NB_FIO_STATS: adds each job's counters (snapshot at its FIO-RESULT
# less the one at its FIO-START) and request count to stat_sums[VMM,JOB].
collect_stats() { # vmm log
  local k=0 kind job round iops prev="" snap line irqs
  [ -f "$2.stats" ] || return
  while read -r kind job round iops _; do
    k=$((k + 1))
    snap=$(awk -v k=$k '$1 == k { $1 = ""; print; exit }' "$2.stats")
    if [ "$kind" = FIO-RESULT ] && [ -n "$prev" ] && [ -n "$snap" ] && [ "$stats" = reasons ]; then
      # "EVENT KEY DELTA" lines and one "requests - N" line per job round,
      # summed when the tables are printed.
      local ev reasons=$logs/reasons-${1//[:=]/_}-$job
      echo "requests - $((iops * (runtime + 1)))" >> "$reasons"
      for ev in $hist_events; do
        awk -v ev=$ev 'FNR == NR { a[$1] = $2; next } { d = $2 - a[$1]; if (d > 0) print ev, $1, d }' \
          "$2.stats.$((k - 1)).$ev" "$2.stats.$k.$ev" >> "$reasons" 2>/dev/null
      done
    fi
    if [ "$kind" = FIO-RESULT ] && [ -n "$prev" ] && [ -n "$snap" ]; then
      irqs=$(grep -a "^FIO-IRQS $job $round " "$2" | tr -d '\r' | awk '{ print $4; exit }')
      line=$(awk -v a="$prev" -v b="$snap" -v ios=$((iops * (runtime + 1))) -v irqs="${irqs:-0}" 'BEGIN {
        n = split(a, x, " "); split(b, y, " ")
        out = ios; for (i = 1; i <= n; i++) out = out " " (y[i] - x[i]); print out " " irqs }')
      stat_sums[$1,$job]=$(awk -v a="${stat_sums[$1,$job]:-}" -v b="$line" 'BEGIN {
        n = split(b, y, " "); split(a, x, " "); out = ""
        for (i = 1; i <= n; i++) out = out (i > 1 ? " " : "") (x[i] + y[i]); print out }')
    fi
    prev=$snap
  done < <(grep -a -E '^FIO-(START|RESULT)' "$2" | tr -d '\r')
}

# Consoles are kept in the build tree (the sandbox's /tmp goes with it).
logs=$build/bench-fio/logs
mkdir -p "$logs"
[ "$first_boot" = 1 ] && rm -f "$logs"/*.log "$logs"/*.stderr "$logs"/*.stats* "$logs"/*.perf*
jobs="randread randwrite seqread seqwrite"
[ -n "$fio_jobs" ] && jobs=$(echo "$fio_jobs" | tr ',' ' ')
declare -A results
declare -A stat_sums
[ "$first_boot" = report ] || for b in $(seq "$first_boot" "$last_boot"); do
  order=()
  for i in $(seq 0 $((${#vmm_list[@]} - 1))); do
    order+=("${vmm_list[$(( (i + b - 1) % ${#vmm_list[@]} ))]}")
  done
  for vmm in "${order[@]}"; do
    log=$logs/${vmm//[:=]/_}-$b.log
    start=$(date +%s)
    run_vmm "$vmm" "$log" > "${log%.log}.stderr" 2>&1
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
      grep -v -e "MMIO" "${log%.log}.stderr" | tail -n 40 | sed 's/^/  ! /'
    fi
    while read -r _ job round iops kib; do
      echo "  $vmm $job round $round: $iops IOPS, $((kib / 1024)) MiB/s"
    done < <(grep -a '^FIO-RESULT' "$log" | tr -d '\r')
  done
done
# A run of some boots only (one sandbox of several) leaves the report to
# the "report" run after the last.
if [ "$first_boot" != report ] && { [ "$first_boot" != 1 ] || [ "$last_boot" != "$boots" ]; }; then
  exit 0
fi
rm -f "$logs"/reasons-*
for b in $(seq "$boots"); do
  for vmm in "${vmm_list[@]}"; do
    log=$logs/${vmm//[:=]/_}-$b.log
    [ -f "$log" ] || continue
    [ -n "$stats" ] && collect_stats "$vmm" "$log"
    while read -r _ job round iops kib; do
      results[$vmm,$job]+=" $iops:$kib"
    done < <(grep -a '^FIO-RESULT' "$log" | tr -d '\r')
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (!NR) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
# pick FIELD (1 = IOPS, 2 = KiB/s) from "iops:kib" samples
pick() { tr ' ' '\n' | grep . | cut -d: -f"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

if [ -n "$stats" ]; then
  echo
  echo "Per 1000 requests (KVM's counters in the sandbox; CPU in ms; guest IRQs from /proc/interrupts):"
  echo
  echo "| job | VMM | exits | MMIO exits | I/O exits | IRQ injections | halts | wake-ups | VMM CPU ms | VMM context switches | guest queue IRQs |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  hz=$(getconf CLK_TCK)
  for job in $jobs; do
    for vmm in "${vmm_list[@]}"; do
      [ -n "${stat_sums[$vmm,$job]:-}" ] || continue
      echo "${stat_sums[$vmm,$job]}" | awk -v job="$job" -v vmm="$vmm" -v hz="$hz" '{
        ios = $1; if (ios <= 0) next
        printf "| %s | %s |", job, vmm
        for (i = 2; i <= NF; i++) {
          v = $i * 1000 / ios
          if (i == 8) v = v * 1000 / hz
          printf " %.0f |", v
        }
        printf "\n" }'
    done
  done
  if [ "$stats" = reasons ]; then
    for ev in $hist_events; do
      echo
      echo "Per 1000 requests, $ev by key (the most frequent 12 of the first VMM):"
      for job in $jobs; do
        echo
        echo "| $job: key | $(printf '%s | ' "${vmm_list[@]}")"
        echo "|---|$(printf -- '---|%.0s' "${vmm_list[@]}")"
        cols=()
        for vmm in "${vmm_list[@]}"; do
          f=$logs/reasons-${vmm//[:=]/_}-$job out=$work/cols.${#cols[@]}
          awk -v ev=$ev -v col=$((${#cols[@]} + 1)) '$1 == "requests" { reqs += $3 } $1 == ev { c[$2] += $3 }
            END { for (k in c) printf "%d %s %.1f\n", col, k, c[k] * 1000 / (reqs > 0 ? reqs : 1) }' \
            "$f" 2>/dev/null > "$out"
          cols+=("$out")
        done
        awk -v nv=${#cols[@]} '
          { v[$1, $2] = $3; keys[$2] = 1; if ($1 == 1) first[$2] = $3 }
          END {
            n = 0; for (k in keys) { n++; order[n] = k; w[k] = (k in first) ? first[k] : 0 }
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
              if (w[order[j]] > w[order[i]]) { t = order[i]; order[i] = order[j]; order[j] = t }
            for (i = 1; i <= n && i <= 12; i++) {
              k = order[i]; line = "| " k " |"
              for (g = 1; g <= nv; g++) line = line " " ((g SUBSEP k) in v ? v[g, k] : 0) " |"
              print line
            }
          }' "${cols[@]}"
      done
    done
  fi
fi

echo
echo "| fio job (median of $((boots * rounds)) runs of ${runtime} s) | measure | VMM | result | QEMU q35 virtio-blk-pci | VMM/QEMU |"
echo "|---|---|---|---|---|---|"
for job in $jobs; do
  case $job in
    rand*) field=1; unit=IOPS; desc="4 KiB $job, depth 32" ;;
    *) field=2; unit=MiB/s; desc="1 MiB $job, depth 4" ;;
  esac
  q=$(echo "${results[qemu,$job]:-}" | pick $field | median)
  for vmm in "${vmm_list[@]}"; do
    [ "$vmm" = qemu ] && continue
    n=$(echo "${results[$vmm,$job]:-}" | pick $field | median)
    r=$(ratio "$n" "$q")
    qs=$q
    if [ $field = 2 ]; then n=$((n / 1024)); qs=$((q / 1024)); fi
    echo "| $desc | $unit | ${vmm/nestbox/nestbox-vm} | $n | $qs | $r |"
  done
done
