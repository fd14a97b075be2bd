#!/bin/bash
# Firmware boot through SeaBIOS: power-on to the boot loader and to the guest
# init, nestbox-vm --firmware bios against QEMU -M q35, with the same firmware
# (Debian's bios-256k.bin), the same GRUB disk image (kernel and initrd on it),
# memory and CPUs, in the same run (inside the KVM sandbox where the host
# lacks hardware KVM).
#
#   tests/bench/boot/bench-firmware-boot.sh [RUNS]    from the source tree, after ./test.sh
#
# Each run boots both VMMs, one after the other, so a change in the machine's
# load touches both alike. The host times, from the VMM's start, the first
# appearance on the serial console of:
#   seabios   SeaBIOS's banner (the firmware's first screen output, mid-POST)
#   handoff   "Booting from Hard Disk": the firmware is done and runs the MBR
#   grub      NESTBOX-GRUB-BENCH, echoed by grub.cfg: the boot loader's first line
#   init      NESTBOX-INIT-REACHED, the guest init's first line
#
# NESTBOX_VM_BEFORE=PATH adds another nestbox-vm (a build before a change) as
# a third VMM in the same runs, for a before/after comparison.
# NB_PROFILE=1 then boots each VMM once more with KVM's tracepoints counted
# in-kernel (hist triggers): exits by reason, port I/O by port, MMIO, exits
# to the VMM; the tables show where the time of a firmware boot goes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
runs=${1:-5}
build=${NESTBOX_BUILD:-$root/build}
guest=${NESTBOX_GUEST_DIR:-$build/guest}
bios=${NB_BIOS:-/usr/share/seabios/bios-256k.bin}

if [ -z "${NESTBOX_IN_SANDBOX:-}" ] && ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
  cd "$build" && exec "$root/tests/sandbox/nb-sandbox" --memory 3G --timeout 1500 -- "$0" "$@"
fi
source "$root/tests/images/grub-images.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#!/bin/sh\nexit 0\n' > "$work/idle.sh"
mkdir -p "$work/droot/boot/grub"
"$root/tests/images/make-test-initrd.sh" "$guest/guest.cpio.gz" "$work/idle.sh" "$work/droot/initrd.gz"
cp "$guest/vmlinuz" "$work/droot/vmlinuz"
nb_grub_cfg BENCH > "$work/droot/boot/grub/grub.cfg"
disk=$work/disk.raw
nb_grub_disk "$disk" "$work/droot" || { echo "cannot build the GRUB disk image" >&2; exit 1; }
mem=256

vmms=(nestbox q35)
[ -n "${NESTBOX_VM_BEFORE:-}" ] && vmms=(nestbox before q35)
vmm_cmd() { # vmm
  case $1 in
    before) echo "$NESTBOX_VM_BEFORE --firmware bios --firmware-file $bios --disk $disk,format=raw --boot disk --memory ${mem}M --cpus 1" ;;
    nestbox) echo "$build/app/nestbox-vm --firmware bios --firmware-file $bios --disk $disk,format=raw --boot disk --memory ${mem}M --cpus 1" ;;
    q35) echo "qemu-system-x86_64 -enable-kvm -cpu host -M q35 -m ${mem}M -smp 1 -nodefaults -no-user-config -nographic -serial stdio -no-reboot -bios $bios -drive file=$disk,format=raw,if=none,id=disk0 -device virtio-blk-pci,drive=disk0,bootindex=1" ;;
  esac
}

markers=(seabios handoff grub init)
declare -A pattern=([seabios]='SeaBIOS (version' [handoff]='Booting from Hard Disk'
                    [grub]=NESTBOX-GRUB-BENCH [init]=NESTBOX-INIT-REACHED)

# One boot: "seabios handoff grub init" in milliseconds from the VMM's start
# ("-" for a marker that never came); the console goes to $work/VMM.console.
# on_marker VMM MARKER runs as each marker appears (the profile's snapshots).
on_marker() { :; }
time_boot() {
  local vmm=$1 start line now m
  declare -A at=()
  : > "$work/$vmm.console"
  start=$(date +%s%N)
  while IFS= read -r line; do
    now=$(date +%s%N)
    printf '%s\n' "$line" >> "$work/$vmm.console"
    for m in "${markers[@]}"; do
      if [ -z "${at[$m]:-}" ] && [[ $line == *"${pattern[$m]}"* ]]; then
        at[$m]=$(( (now - start) / 1000000 ))
        on_marker "$vmm" "$m"
      fi
    done
    [ -n "${at[init]:-}" ] && break
  done < <(timeout 300 bash -c "exec $(vmm_cmd "$vmm")" 2>&1)
  wait
  on_marker "$vmm" end
  for m in "${markers[@]}"; do printf '%s ' "${at[$m]:--}"; done
  echo
}

median() { grep -v '^-$' | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A samples
for run in $(seq "$runs"); do
  for vmm in "${vmms[@]}"; do
    t=$(time_boot $vmm)
    echo "run $run $vmm: $t(ms: ${markers[*]})"
    read -r -a v <<< "$t"
    for i in "${!markers[@]}"; do samples[$vmm.${markers[$i]}]+="${v[$i]} "; done
    if [ "${v[3]}" = - ]; then
      echo "  $vmm did not reach init; its console ended with:"
      tail -n 8 "$work/$vmm.console" | sed 's/^/  | /'
    fi
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
if [ -n "${NESTBOX_VM_BEFORE:-}" ]; then
  echo "| power-on to (median of $runs, ms) | nestbox-vm | before | QEMU q35 | nestbox/q35 | before/q35 | nestbox/before |"
  echo "|---|---|---|---|---|---|---|"
else
  echo "| power-on to (median of $runs, ms) | nestbox-vm | QEMU q35 | nestbox/q35 |"
  echo "|---|---|---|---|"
fi
declare -A label=([seabios]="SeaBIOS banner" [handoff]="firmware hands off to the MBR"
                  [grub]="GRUB's first line" [init]="guest init's first line")
for m in "${markers[@]}"; do
  a=$(printf '%s\n' ${samples[nestbox.$m]} | median)
  b=$(printf '%s\n' ${samples[q35.$m]} | median)
  if [ -n "${NESTBOX_VM_BEFORE:-}" ]; then
    c=$(printf '%s\n' ${samples[before.$m]} | median)
    echo "| ${label[$m]} | $a | $c | $b | $(ratio "$a" "$b") | $(ratio "$c" "$b") | $(ratio "$a" "$c") |"
  else
    echo "| ${label[$m]} | $a | $b | $(ratio "$a" "$b") |"
  fi
done

[ -n "${NB_PROFILE:-}" ] || exit 0

# Profile: one more boot of each with KVM's tracepoints counted in the kernel,
# the counts read as each marker appears: what each phase of the boot costs.
tr=/sys/kernel/tracing
[ -d $tr/events/kvm ] || mount -t tracefs nodev $tr 2>/dev/null
if [ ! -d $tr/events/kvm ]; then
  echo "no KVM tracepoints under $tr: no profile"
  exit 0
fi
hists=("kvm_exit:exit_reason" "kvm_pio:port.hex,rw" "kvm_mmio:type,gpa.hex" "kvm_userspace_exit:reason")
phases=(seabios handoff grub init end)
on_marker() { # vmm marker: a snapshot of every count, with builtins only (no fork delays it)
  local h data
  for h in "${hists[@]}"; do
    IFS= read -r -d '' data < "$tr/events/kvm/${h%%:*}/hist"
    printf '%s' "$data" > "$work/raw.$1.${h%%:*}.$2"
  done
}
# The counts of one event per phase (since the previous marker), top 20.
phase_table() { # vmm event
  echo "-- $1: ${2} by key, per phase (each since the one before; total last)"
  echo "key | ${phases[*]} total"
  for p in "${phases[@]}"; do
    grep -sE '^\{' "$work/raw.$1.$2.$p" | tr -d '{}' | sed 's/hitcount: *//; s/  */ /g' \
      > "$work/prof.$1.$2.$p"
  done
  awk -v np=${#phases[@]} '
    BEGIN { for (i = 1; i < ARGC; i++) index_of[ARGV[i]] = i }
    { f = index_of[FILENAME]; n = $NF; $NF = ""; key = $0; c[key, f] = n
      if (!(key in seen)) { seen[key] = 1; keys[++nk] = key } }
    END {
      for (i = 1; i <= nk; i++) {
        k = keys[i]; line = k "|"; prev = 0
        # A snapshot without the key (or a marker that never came): no change.
        for (p = 1; p <= np; p++) { v = ((k, p) in c) ? c[k, p] : prev; line = line " " (v - prev); prev = v }
        print prev "\t" line " " prev
      }
    }' $(for p in "${phases[@]}"; do echo "$work/prof.$1.$2.$p"; done) |
    sort -rn | head -20 | cut -f2-
}
for vmm in "${vmms[@]}"; do
  for h in "${hists[@]}"; do
    echo "hist:keys=${h#*:}:sort=hitcount.descending:size=4096" > "$tr/events/kvm/${h%%:*}/trigger"
  done
  echo
  echo "profile $vmm: $(time_boot $vmm)(ms: ${markers[*]})"
  for h in "${hists[@]}"; do
    phase_table $vmm "${h%%:*}"
    echo "!hist:keys=${h#*:}:sort=hitcount.descending:size=4096" > "$tr/events/kvm/${h%%:*}/trigger"
  done
done
