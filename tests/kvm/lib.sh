# Helpers for real-guest tests: build a test initrd, boot it with nestbox-vm,
# and check what the guest said on its serial console.
#
# Tests run inside the KVM sandbox (tests/sandbox/nb-sandbox) when the host
# has no hardware KVM. They need NESTBOX_VM (the nestbox-vm binary) and
# NESTBOX_GUEST_DIR (from tests/images/build-guest-image.sh).

set -uo pipefail

: "${NESTBOX_VM:?NESTBOX_VM must point at nestbox-vm}"
: "${NESTBOX_GUEST_DIR:?NESTBOX_GUEST_DIR must point at the guest image directory}"
NB_IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../images" && pwd)
NB_KVM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NB_WORK=${NB_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/nb-kvm.XXXXXX")}
NB_FAILURES=0
NB_CHECKS=0

nb_fail() {
  echo "FAIL: $*"
  NB_FAILURES=$((NB_FAILURES + 1))
}

nb_pass() {
  echo "ok: $*"
}

# nb_initrd NAME SCRIPT: a guest initrd that runs SCRIPT (a string) as /test.sh.
nb_initrd() {
  local name=$1 script=$2
  printf '#!/bin/sh\n%s\n' "$script" > "$NB_WORK/$name.sh"
  "$NB_IMAGES_DIR/make-test-initrd.sh" "$NESTBOX_GUEST_DIR/guest.cpio.gz" "$NB_WORK/$name.sh" \
    "$NB_WORK/$name.cpio.gz"
  echo "$NB_WORK/$name.cpio.gz"
}

# nb_display_initrd NAME SCRIPT: $NB_WORK/NAME.cpio.gz for a guest with a
# screen: /test/guest-display (guest-display.c, static: busybox can neither
# draw fast nor read evdev) and an init that, unless SCRIPT starts with
# "#no-screen", first waits for /dev/fb0 and takes the text console off it
# so that nothing draws over the picture, then runs SCRIPT. A helper that
# does not build ends the test.
nb_display_initrd() {
  local name=$1 script=$2
  if [ ! -x "$NB_WORK/guest-display" ] &&
     ! gcc -static -O2 -o "$NB_WORK/guest-display" "$NB_KVM_DIR/guest-display.c" 2> "$NB_WORK/gcc.log"; then
    nb_fail "cannot build the guest helper: $(cat "$NB_WORK/gcc.log")"
    nb_finish
  fi
  {
    echo '#!/bin/sh'
    case $script in
    '#no-screen'*) ;;
    *) cat <<'GUEST'
for _ in $(seq 300); do [ -e /dev/fb0 ] && break; sleep 0.1; done
for c in /sys/class/vtconsole/vtcon*; do
  grep -q "frame buffer" "$c/name" 2>/dev/null && echo 0 > "$c/bind"
done
echo 0 > /sys/class/graphics/fbcon/cursor_blink 2>/dev/null
GUEST
    esac
    printf '%s\n' "$script"
  } > "$NB_WORK/$name.sh"
  "$NB_IMAGES_DIR/make-test-initrd.sh" "$NESTBOX_GUEST_DIR/guest.cpio.gz" "$NB_WORK/$name.sh" \
    "$NB_WORK/$name.cpio.gz" "$NB_WORK/guest-display"
}

# nb_boot NAME TIMEOUT INITRD [NESTBOX-VM OPTIONS...]: boots the guest with
# its serial console in $NB_WORK/NAME.log; sets NB_STATUS to nestbox-vm's exit
# status (124 on timeout) and NB_LOG to the log's path. NB_MODULES lists the
# guest modules to load (default none: each module costs seconds in a nested
# guest); NB_APPEND replaces console=ttyS0.
nb_boot() {
  local name=$1 limit=$2 initrd=$3
  shift 3
  NB_LOG="$NB_WORK/$name.log"
  # A boot that times out shows where each vCPU was (NESTBOX_DEBUG_VCPU:
  # registers on stderr at exit); 30 s after SIGTERM for that, as stopping
  # many vCPUs in the emulated sandbox takes a while.
  NESTBOX_DEBUG_VCPU=1 timeout -k 30 "$limit" "$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$initrd" \
    --append "${NB_APPEND:-console=ttyS0} nestbox.modules=${NB_MODULES:-none} panic=-1 quiet" \
    --serial "file:$NB_LOG" "$@" \
    > "$NB_WORK/$name.stderr" 2>&1
  NB_STATUS=$?
}

# nb_wait_stall PID LOG SECONDS: waits for the nestbox-vm PID; if its console
# LOG stops growing for SECONDS first, prints every thread's stack (gdb) and
# stops it. Sets NB_STATUS to its exit status, or to 124 after a stall: what
# a guest that hangs needs explained, without waiting out the whole timeout.
nb_wait_stall() {
  local pid=$1 log=$2 limit=$3 size last=-1 same=0
  while kill -0 "$pid" 2>/dev/null; do
    size=$(stat -c %s "$log" 2>/dev/null || echo 0)
    if [ "$size" = "$last" ]; then same=$((same + 1)); else same=0; last=$size; fi
    if [ $same -ge $((limit * 2)) ]; then
      echo "STALL: no console output for $limit s; nestbox-vm's threads:"
      local vm
      vm=$(pgrep -n -P "$pid" -x nestbox-vm || echo "$pid")
      command -v gdb >/dev/null &&
        timeout 90 gdb -p "$vm" -batch -ex 'thread apply all bt' 2>&1 | grep -E '^(Thread|#)' | head -120 | sed 's/^/    | /'
      kill "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      NB_STATUS=124
      return
    fi
    sleep 0.5
  done
  wait "$pid"
  NB_STATUS=$?
}

# nb_expect NAME PATTERN: the log has a line matching the extended regex.
nb_expect() {
  local what=$1 pattern=$2
  NB_CHECKS=$((NB_CHECKS + 1))
  if grep -aqE "$pattern" "$NB_LOG"; then
    nb_pass "$what"
  else
    nb_fail "$what: no line matching /$pattern/ in the guest console; it ended with:"
    tail -n 25 "$NB_LOG" | sed 's/^/    | /'
    echo "    nestbox-vm said:"
    sed 's/^/    | /' "$NB_WORK/$(basename "$NB_LOG" .log).stderr"
    local fwlog="$NB_WORK/$(basename "$NB_LOG" .log).fwlog"
    if [ -s "$fwlog" ]; then
      echo "    firmware log, last lines:"
      tail -n 15 "$fwlog" | sed 's/^/    | /'
    fi
  fi
}

# nb_expect_status NAME WANT: nestbox-vm exited with WANT.
nb_expect_status() {
  local what=$1 want=$2
  NB_CHECKS=$((NB_CHECKS + 1))
  if [ "$NB_STATUS" = "$want" ]; then
    nb_pass "$what (exit status $want)"
  else
    nb_fail "$what: nestbox-vm exited with $NB_STATUS, expected $want"
    [ "$NB_STATUS" = 124 ] && echo "    (it timed out)"
    tail -n 25 "$NB_LOG" 2>/dev/null | sed 's/^/    | /'
    sed 's/^/    | /' "$NB_WORK/$(basename "$NB_LOG" .log).stderr"
    local fwlog="$NB_WORK/$(basename "$NB_LOG" .log).fwlog"
    if [ -s "$fwlog" ]; then
      echo "    firmware log, last lines:"
      tail -n 15 "$fwlog" | sed 's/^/    | /'
    fi
  fi
}

# Last line of a test: a summary and the exit status meson reads.
nb_finish() {
  rm -rf "$NB_WORK"
  if [ "$NB_FAILURES" -gt 0 ]; then
    echo "$NB_FAILURES of $NB_CHECKS checks failed"
    exit 1
  fi
  echo "all $NB_CHECKS checks passed"
  exit 0
}
