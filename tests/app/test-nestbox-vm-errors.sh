#!/bin/bash
# Every way a user can start nestbox-vm wrongly ends with status 2 and a
# message that says what is wrong. None of these needs a working KVM.
set -uo pipefail
vm=${NESTBOX_VM:?}
kernel=${NESTBOX_GUEST_DIR:?}/vmlinuz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# expect DESCRIPTION MESSAGE-REGEX [ENV=VALUE...] -- ARGS...
expect() {
  local what=$1 pattern=$2
  shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local out status
  out=$(env "${envs[@]}" timeout 60 "$vm" "$@" 2>&1 </dev/null)
  status=$?
  if [ $status -eq 2 ] && grep -qE -- "$pattern" <<<"$out"; then
    echo "ok: $what"
  else
    echo "FAIL: $what: status $status, output:"
    echo "$out" | sed 's/^/    | /'
    failures=$((failures + 1))
  fi
}

[ -f "$kernel" ] || { echo "no guest kernel at $kernel"; exit 1; }
echo "not a kernel" > "$work/text"
head -c 4096 /dev/urandom > "$work/random"
truncate -s 200M "$work/big-initrd"

expect "no options" "no kernel given" -- 
expect "unknown option" "bad option" -- --kernel "$kernel" --fast
expect "missing kernel" "$work/missing.*(No such file|not found|cannot)" -- --kernel "$work/missing"
expect "text file as kernel" "is not a Linux kernel" -- --kernel "$work/text"
expect "random bytes as kernel" "is not a Linux kernel" -- --kernel "$work/random"
expect "missing initrd" "missing-initrd" -- --kernel "$kernel" --initrd "$work/missing-initrd"
expect "initrd too large for memory" "initrd|does not fit|too large" -- --kernel "$kernel" --initrd "$work/big-initrd" --memory 128M
expect "memory below the minimum" "too little" -- --kernel "$kernel" --memory 16M
expect "memory beyond the host" "choose less memory" -- --kernel "$kernel" --memory 64T
expect "malformed memory size" "unknown unit" -- --kernel "$kernel" --memory 12Q
expect "zero CPUs" "from 1 to 64" -- --kernel "$kernel" --cpus 0
expect "too many CPUs" "from 1 to 64" -- --kernel "$kernel" --cpus 65
expect "malformed CPU count" "--cpus two" -- --kernel "$kernel" --cpus two
expect "bad serial" "stdio, none or file:PATH" -- --kernel "$kernel" --serial pty
expect "unwritable serial file" "serial output file" -- --kernel "$kernel" --serial "file:$work/no/such/dir/log"
expect "no /dev/kvm" "KVM is not available: .* is missing — enable virtualization" \
  NESTBOX_KVM_DEVICE="$work/kvm" -- --kernel "$kernel" --memory 128M
expect "not a KVM device" "KVM is not available: .* not a KVM device" \
  NESTBOX_KVM_DEVICE=/dev/null -- --kernel "$kernel" --memory 128M

expect "unknown machine" "No machine named 'nope'" XDG_DATA_HOME="$work/data" -- --machine nope
expect "--machine with other settings" "takes its settings from the machine's document" \
  XDG_DATA_HOME="$work/data" -- --machine nope --cpus 2
expect "bad VNC display" "--vnc 127.0.0.1:100: .*display number" -- --kernel "$kernel" --vnc 127.0.0.1:100
expect "VNC on a host name" "is not an IP address" -- --kernel "$kernel" --vnc example.org:1
expect "missing VNC password file" "VNC password file" -- --kernel "$kernel" --vnc "127.0.0.1:1,password-file=$work/no-pw"
expect "unknown VNC keymap" "no keymap .klingon." -- --kernel "$kernel" --vnc "127.0.0.1:1,keymap=klingon"
expect "unknown VNC sharing policy" "share=exclusive is not a sharing policy; expected allow-exclusive" -- --kernel "$kernel" --vnc "127.0.0.1:1,share=exclusive"

# No permission: a device node only root may open, tried as nobody.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  touch "$work/kvm-root-only"
  chmod 600 "$work/kvm-root-only"
  chmod 755 "$work"
  cp "$kernel" "$work/vmlinuz"
  chmod 644 "$work/vmlinuz"
  out=$(NESTBOX_KVM_DEVICE="$work/kvm-root-only" setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$vm" --kernel "$work/vmlinuz" --memory 128M 2>&1 </dev/null)
  status=$?
  if [ $status -eq 2 ] && grep -q "no permission to open .*kvm” group" <<<"$out"; then
    echo "ok: no permission on the KVM device"
  else
    echo "FAIL: no permission on the KVM device: status $status: $out"
    failures=$((failures + 1))
  fi
fi

[ $failures -eq 0 ] && echo "all passed" || echo "$failures failed"
[ $failures -eq 0 ]
