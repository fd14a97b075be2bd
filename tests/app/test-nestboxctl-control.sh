#!/bin/bash
# nestboxctl's run and control commands where no machine can run: usage
# errors, unknown machines, machines that are not running, a start whose
# nestbox-vm fails early (its log's tail is shown), and the crashed state of a
# machine whose process died (stale socket, recorded state).
set -u
C=${NESTBOXCTL:?} HOLD=${HOLD_LOCK:?}
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
export XDG_DATA_HOME=$top/data XDG_RUNTIME_DIR=$top/run
mkdir -m 700 "$XDG_RUNTIME_DIR"
M=$XDG_DATA_HOME/nestbox/machines
fail() { echo "FAIL: $*"; exit 1; }
expect() { # expect RC CMD... ; stdout in $OUT, stderr in $ERR
  local want=$1; shift
  OUT=$("$@" 2> "$top/err"); local rc=$?
  ERR=$(cat "$top/err")
  [ "$rc" = "$want" ] || fail "$* exited $rc, expected $want: $ERR"
}

"$C" create vm1 --preset linux-small --kernel "$top/missing-vmlinuz" > /dev/null || fail create

# Usage errors: 2.
for cmd in start shutdown poweroff pause resume reset state log console forward; do
  expect 2 "$C" $cmd; [[ $ERR == *"expected a machine NAME"* ]] || fail "$cmd without NAME: $ERR"
  expect 2 "$C" $cmd vm1 --no-such-option; [[ $ERR == *"unknown option --no-such-option"* ]] || fail "$cmd option: $ERR"
done
expect 2 "$C" start vm1 extra
expect 2 "$C" start vm1 --timeout soon; [[ $ERR == *"--timeout wants a number"* ]] || fail "timeout: $ERR"
expect 2 "$C" pause vm1 --json=yes; [[ $ERR == *"takes no value"* ]] || fail "json=: $ERR"
expect 2 "$C" forward vm1 frobnicate
expect 2 "$C" forward vm1 add
expect 2 "$C" forward vm1 list extra
expect 2 "$C" log vm1 --lines -3

# No such machine: 3.
for cmd in start shutdown poweroff pause resume reset state log console; do
  expect 3 "$C" $cmd nosuch; [[ $ERR == *"No machine named 'nosuch'"* ]] || fail "$cmd nosuch: $ERR"
done
expect 3 "$C" forward nosuch list
expect 1 "$C" pause 'a/b'

# Not running: 1, with what to do.
expect 0 "$C" state vm1; [ "$OUT" = stopped ] || fail "state: $OUT"
expect 0 "$C" state vm1 --json; [ "$OUT" = '{"name":"vm1","state":"stopped"}' ] || fail "state --json: $OUT"
for cmd in shutdown poweroff pause resume reset; do
  expect 1 "$C" $cmd vm1; [[ $ERR == *"is not running — start it with: nestboxctl start vm1"* ]] || fail "$cmd: $ERR"
done
expect 1 "$C" forward vm1 list; [[ $ERR == *"not running"* ]] || fail "forward: $ERR"
expect 1 "$C" console vm1; [[ $ERR == *"not running"* ]] || fail "console: $ERR"
expect 1 "$C" log vm1; [[ $ERR == *"no log yet"* ]] || fail "log before start: $ERR"

# A start whose nestbox-vm fails at once: 1, with the end of its log.
expect 1 "$C" start vm1 --timeout 60
[[ $ERR == *"did not start: nestbox-vm exited with status 2"* ]] || fail "early exit: $ERR"
[[ $ERR == *"missing-vmlinuz"* ]] || fail "log tail missing the reason: $ERR"
expect 0 "$C" log vm1; [[ $OUT == *"missing-vmlinuz"* ]] || fail "log: $OUT"
expect 0 "$C" log vm1 --lines 1; [ "$(wc -l <<<"$OUT")" = 1 ] || fail "log --lines 1: $OUT"
expect 0 "$C" state vm1; [ "$OUT" = stopped ] || fail "after a failed start: $OUT"
[ -e "$XDG_RUNTIME_DIR/nestbox/vm1.sock" ] && fail "a failed start left its socket"
NESTBOX_VM=$top/no-such-vm expect 1 "$C" start vm1 --timeout 10
[[ $ERR == *"exited with status 127"* && $ERR == *"cannot run"* ]] || fail "missing nestbox-vm: $ERR"

# A running machine (its run lock held) is not started twice.
coproc HOLDER { exec "$HOLD" "$M/vm1" 30; }
read -r line <&"${HOLDER[0]}"; [ "$line" = locked ] || fail "lock helper"
expect 1 "$C" start vm1; [[ $ERR == *"already running"* ]] || fail "second start: $ERR"
expect 0 "$C" state vm1; [ "$OUT" = running ] || fail "held lock: $OUT"
expect 1 "$C" pause vm1; [[ $ERR == *"does not answer on its control socket"* ]] || fail "no socket: $ERR"
kill "$HOLDER_PID"; wait "$HOLDER_PID" 2>/dev/null

# Crashed: the process died and left its socket, or recorded a live state.
touch "$XDG_RUNTIME_DIR/nestbox/vm1.sock"
"$C" list | grep -Eq '^vm1 +crashed' || fail "stale socket: $("$C" list)"
expect 1 "$C" pause vm1; [[ $ERR == *"it crashed — see: nestboxctl log vm1"* ]] || fail "crashed pause: $ERR"
rm "$XDG_RUNTIME_DIR/nestbox/vm1.sock"
echo running > "$M/vm1/state"
expect 0 "$C" list --json; [[ $OUT == *'"state":"crashed"'* ]] || fail "recorded state: $OUT"
expect 0 "$C" info vm1; [[ $OUT == *"State: crashed"* ]] || fail "info: $OUT"
echo stopped > "$M/vm1/state"
expect 0 "$C" state vm1; [ "$OUT" = stopped ] || fail "recorded stopped: $OUT"
echo "all nestboxctl control checks passed"
