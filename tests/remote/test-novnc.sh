#!/bin/bash
# noVNC (Debian's novnc package) in headless Chromium connects to Nestbox's
# VNC server over WebSocket on the VNC port itself and shows the picture:
# the screenshot's canvas holds the test pattern's colours.
set -uo pipefail
server=${NB_VNC_TEST_SERVER:?}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
for tool in chromium convert python3; do
  command -v $tool >/dev/null || { echo "FAIL: $tool is missing (see build-aux/install-deps.sh)"; exit 1; }
done
[ -f /usr/share/novnc/vnc_lite.html ] || { echo "FAIL: noVNC is missing (package novnc)"; exit 1; }

for display in $(seq 70 99); do
  "$server" "$display" 640x480 > "$work/server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do grep -q SERVING "$work/server.log" && break; sleep 0.1; done
  grep -q SERVING "$work/server.log" && break
done
port=$(sed -n 's/^SERVING //p' "$work/server.log")
[ -n "$port" ] || { echo "FAIL: the test server did not start: $(cat "$work/server.log")"; exit 1; }
# noVNC is ES modules, which browsers load over HTTP only.
http=$((port + 300))
python3 -m http.server --bind 127.0.0.1 --directory /usr/share/novnc $http > "$work/http.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$http/vnc_lite.html')" \
    2>/dev/null && break
  sleep 0.2
done
# The screenshot is taken when Chromium's virtual time runs out, whether or
# not noVNC has drawn yet: on a loaded machine, try again with more time.
for budget in 20000 40000 80000; do
  rm -f "$work/shot.png"
  timeout 180 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" \
    --window-size=800,600 --virtual-time-budget=$budget --screenshot="$work/shot.png" \
    "http://127.0.0.1:$http/vnc_lite.html?host=127.0.0.1&port=$port" > "$work/chromium.log" 2>&1
  [ -s "$work/shot.png" ] || { echo "FAIL: no screenshot: $(tail -5 "$work/chromium.log")"; exit 1; }
  # The pattern is a field of many colours; noVNC's own page is a few flat ones.
  colours=$(convert "$work/shot.png" -crop 400x300+200+150 +repage -format %k info:)
  if [ "$colours" -ge 2000 ]; then
    echo "ok: noVNC shows the picture ($colours colours in the middle of the screenshot)"
    exit 0
  fi
  echo "not yet: $colours colours after a virtual-time budget of $budget ms"
done
echo "FAIL: the screenshot shows $colours colours in its middle, not the test pattern"
cp "$work/shot.png" "${TMPDIR:-/tmp}/novnc-failed.png" && echo "    (saved as ${TMPDIR:-/tmp}/novnc-failed.png)"
exit 1
