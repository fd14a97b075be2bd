#!/bin/bash
# Every way nestbox-viewer can be started wrongly, or pointed at nothing, ends with the
# documented status (2: bad command line, 1: cannot connect) and a message that says
# what is wrong. No display is needed: these fail before a window would open.
set -uo pipefail
viewer=${NESTBOX_VIEWER:?}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
unset DISPLAY WAYLAND_DISPLAY

# expect DESCRIPTION STATUS MESSAGE-REGEX -- ARGS...
expect() {
  local what=$1 want=$2 pattern=$3
  shift 4
  local out status start=$SECONDS
  out=$(timeout 30 setsid -w "$viewer" "$@" 2>&1 </dev/null)
  status=$?
  if [ $status -eq "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
    echo "ok: $what ($((SECONDS - start)) s)"
  else
    echo "FAIL: $what: status $status (expected $want), output:"
    echo "$out" | sed 's/^/    | /'
    failures=$((failures + 1))
  fi
}

expect "no address" 2 "no server address given — usage: nestbox-viewer" --
expect "two addresses" 2 "more than one server address" -- a:1 b:2
expect "unknown option" 2 "Unknown option --fast" -- --fast server:1
expect "display not a number" 2 "bad server address “server:abc”: “abc” is not a display number" -- server:abc
expect "display too large" 2 "from 0 to 59635" -- server:60000
expect "empty display" 2 "is not a display number" -- server:
expect "port zero" 2 "“0” is not a TCP port from 1 to 65535" -- server::0
expect "port too large" 2 "is not a TCP port from 1 to 65535" -- server::70000
expect "bare IPv6" 2 "write IPv6 addresses in brackets" -- fe80::1:1
expect "unclosed bracket" 2 "closing “]”" -- "[::1:1"
expect "space in host" 2 "cannot be part of a host name" -- "my server:1"

# A port nothing listens on: bind one, note it, close it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect "nothing listening" 1 "cannot connect to 127.0.0.1::$port \(TCP port $port\): .*Connection refused — check that the machine is running" -- "127.0.0.1::$port"
expect "unknown host" 1 "cannot connect to no-such-host.invalid:1: .*no-such-host.invalid.* — check the host name" -- no-such-host.invalid:1
expect "missing password file" 1 "cannot read the password file: .*$work/missing" -- --password-file "$work/missing" 127.0.0.1:1
: > "$work/empty"
expect "empty password file" 1 "password file .*empty.* is empty" -- --password-file "$work/empty" 127.0.0.1:1
expect "help" 0 "Ctrl\+Alt\+F toggles fullscreen, Ctrl\+Alt\+Q quits" -- --help

if [ $failures -ne 0 ]; then
  echo "$failures failed"
  exit 1
fi
echo "all passed"
