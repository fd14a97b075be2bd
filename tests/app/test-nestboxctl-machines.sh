#!/bin/bash
# nestboxctl's machine commands as a user runs them, against a scratch XDG_DATA_HOME.
set -u
C=${NESTBOXCTL:?} HOLD=${HOLD_LOCK:?}
export XDG_DATA_HOME=$(mktemp -d)
trap 'rm -rf "$XDG_DATA_HOME"' EXIT
M=$XDG_DATA_HOME/nestbox/machines
fail() { echo "FAIL: $*"; exit 1; }
expect() { # expect RC CMD... ; stderr kept in $ERR
  local want=$1; shift
  ERR=$("$@" 2>&1 >/dev/null); local rc=$?
  [ "$rc" = "$want" ] || fail "$* exited $rc, expected $want: $ERR"
}

expect 0 "$C" create web --preset linux-small --kernel /boot/k --cmdline console=ttyS0
expect 1 "$C" create web
expect 1 "$C" create 'a/b'; [[ $ERR == *"contains '/'"* ]] || fail "slash: $ERR"
expect 1 "$C" create ..
expect 1 "$C" create "$(printf 'x%.0s' {1..65})"; [[ $ERR == *"64 bytes"* ]] || fail "long: $ERR"
expect 2 "$C" create web2 --preset nope
expect 2 "$C" create web2 --memory 1K
expect 2 "$C" create

"$C" list | grep -Eq '^web +stopped +1 +256M' || fail "list: $("$C" list)"
[ "$("$C" list --json)" = '[{"name":"web","state":"stopped","cpus":1,"memory":268435456}]' ] || fail "list --json"
"$C" info web | grep -q '^cmdline=console=ttyS0' || fail info
expect 3 "$C" info nope

# Two concurrent sets on one machine: both land, the document stays whole.
"$C" set web cpu.count=4 & "$C" set web memory.size=2G; wait $! || fail "set"
"$C" list | grep -Eq '^web +stopped +4 +2G' || fail "concurrent set lost an update: $("$C" list)"
expect 1 "$C" set web cpu.count=0; [[ $ERR == *"[cpu] count"* ]] || fail "set bad: $ERR"
expect 1 "$C" set web cpu.bogus=1
expect 3 "$C" set nope cpu.count=2
ls "$M/web" | grep -q tmp && fail "temporary file left behind"

# A malformed document: refused with its file and line.
mkdir "$M/broken" && printf '[machine]\nname=broken\n[cpu]\ncount=lots\n' > "$M/broken/machine.ini"
expect 1 "$C" info broken; [[ $ERR == *"broken/machine.ini:4: [cpu] count"* ]] || fail "malformed: $ERR"
"$C" list 2>/dev/null | grep -Eq '^broken +invalid' || fail "list shows broken"

# Delete while running (the run lock held) is refused, then allowed.
coproc HOLDER { exec "$HOLD" "$M/web" 30; }
read -r line <&"${HOLDER[0]}"; [ "$line" = locked ] || fail "lock helper"
"$C" list | grep -Eq '^web +running' || fail "running state"
expect 1 "$C" delete web --yes; [[ $ERR == *running* ]] || fail "delete running: $ERR"
kill "$HOLDER_PID"; wait "$HOLDER_PID" 2>/dev/null
expect 2 "$C" delete web
expect 0 "$C" delete web --yes
[ -e "$M/web" ] && fail "directory left"
expect 3 "$C" delete web --yes
expect 0 "$C" presets
echo PASS
