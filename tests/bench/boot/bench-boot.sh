#!/bin/bash
# Boot to guest init and VMM memory overhead: nestbox-vm against QEMU
# (-M microvm and -M q35, -kernel), same kernel, initrd, memory and CPUs, in
# the same run (inside the KVM sandbox where the host lacks hardware KVM).
#
#   tests/bench/boot/bench-boot.sh [RUNS]         from the source tree, after ./test.sh
#
# "Init reached" is the guest init's first console line, timed by the host
# from the VMM's start. Memory overhead is the VMM's resident memory less its
# guest RAM, read while the guest idles. Both VMMs keep guest RAM in private
# anonymous memory that asked for transparent huge pages (QEMU's default;
# smaps VmFlags "hg"), and no other mapping of theirs does: guest RAM is
# what those mappings have resident.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
runs=${1:-5}
build=${NESTBOX_BUILD:-$root/build}
guest=${NESTBOX_GUEST_DIR:-$build/guest}

if [ -z "${NESTBOX_IN_SANDBOX:-}" ] && ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
  cd "$build" && exec "$root/tests/sandbox/nb-sandbox" --memory 3G --timeout 3000 -- "$0" "$@"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#!/bin/sh\nsleep ${NB_IDLE:-0}\n' > "$work/idle.sh"
"$root/tests/images/make-test-initrd.sh" "$guest/guest.cpio.gz" "$work/idle.sh" "$work/boot.cpio.gz"
printf '#!/bin/sh\nsleep 8\n' > "$work/sleep.sh"
"$root/tests/images/make-test-initrd.sh" "$guest/guest.cpio.gz" "$work/sleep.sh" "$work/sleep.cpio.gz"

kernel=$guest/vmlinuz
append="console=ttyS0 panic=-1 quiet nestbox.modules=none"
mem=256

vmm_cmd() { # vmm initrd
  case $1 in
    nestbox) echo "$build/app/nestbox-vm --kernel $kernel --initrd $2 --append '$append' --memory ${mem}M --cpus 1" ;;
    microvm) echo "qemu-system-x86_64 -enable-kvm -cpu host -M microvm -m ${mem}M -smp 1 -nodefaults -no-user-config -nographic -serial stdio -no-reboot -kernel $kernel -initrd $2 -append '$append'" ;;
    q35) echo "qemu-system-x86_64 -enable-kvm -cpu host -M q35 -m ${mem}M -smp 1 -nodefaults -no-user-config -nographic -serial stdio -no-reboot -kernel $kernel -initrd $2 -append '$append'" ;;
  esac
}

# Milliseconds from start to the first "NESTBOX-INIT-REACHED" on the console.
time_boot() {
  local cmd=$1 start line
  start=$(date +%s%N)
  while IFS= read -r line; do
    if [[ $line == *NESTBOX-INIT-REACHED* ]]; then
      echo $(( ($(date +%s%N) - start) / 1000000 ))
      break
    fi
  done < <(timeout 300 bash -c "exec $cmd" 2>/dev/null)
  wait
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "nan" }'; }

declare -A boot overhead
for vmm in nestbox microvm q35; do
  times=()
  for _ in $(seq "$runs"); do
    times+=("$(time_boot "$(vmm_cmd $vmm "$work/boot.cpio.gz")")")
  done
  boot[$vmm]=$(printf '%s\n' "${times[@]}" | median)
  echo "boot $vmm: ${times[*]} ms (median ${boot[$vmm]})"

  # Memory: start with a guest that idles, read the VMM's RSS after init.
  bash -c "exec $(vmm_cmd $vmm "$work/sleep.cpio.gz")" > "$work/$vmm.console" 2>/dev/null &
  pid=$!
  for _ in $(seq 600); do
    grep -q NESTBOX-GUEST "$work/$vmm.console" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.2
  done
  sleep 1
  rss=$(awk '/^VmRSS/ { print $2 }' /proc/$pid/status 2>/dev/null)
  ram=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { rss = 0 } /^Rss:/ { rss = $2 }
             /^VmFlags:/ && / hg( |$)/ { sum += rss; n++ } END { if (n) print sum }' /proc/$pid/smaps 2>/dev/null)
  if [ -n "$rss" ] && [ -n "$ram" ]; then
    overhead[$vmm]=$(( rss - ram ))
    echo "memory $vmm: RSS ${rss} kB, guest RAM ${ram} kB, overhead ${overhead[$vmm]} kB"
  else
    overhead[$vmm]=0
    echo "memory $vmm: the VMM had exited before it could be measured; its console said:"
    tail -5 "$work/$vmm.console" 2>/dev/null
  fi
  wait $pid
done

echo
echo "| measure | nestbox-vm | QEMU microvm | QEMU q35 | nestbox/microvm | nestbox/q35 |"
echo "|---|---|---|---|---|---|"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "| boot to init, median of $runs (ms) | ${boot[nestbox]} | ${boot[microvm]} | ${boot[q35]} | $(ratio "${boot[nestbox]}" "${boot[microvm]}") | $(ratio "${boot[nestbox]}" "${boot[q35]}") |"
echo "| VMM memory overhead (KiB) | ${overhead[nestbox]} | ${overhead[microvm]} | ${overhead[q35]} | $(ratio "${overhead[nestbox]}" "${overhead[microvm]}") | $(ratio "${overhead[nestbox]}" "${overhead[q35]}") |"
