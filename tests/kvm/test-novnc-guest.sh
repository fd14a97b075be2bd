#!/bin/bash
# noVNC (Debian's novnc package) in headless Chromium shows a real guest's
# screen: the guest's bochs driver gives /dev/fb0 and the guest draws the
# test pattern; nestbox-vm serves it with --vnc and an extra WebSocket port;
# noVNC's page connects to that port, and the screenshot holds the pattern,
# found and measured pixel by pixel (noVNC asks for Tight with JPEG, so the
# pixels are close, not exact; a wrong or blank picture is off by ~100).
# Chromium is driven over its DevTools protocol (tests/remote/cdp-screenshot.py)
# so that the screenshot waits, in real time, for noVNC to draw.
source "$(dirname "$0")/lib.sh"
: "${NESTBOX_VNC_CLIENT:?NESTBOX_VNC_CLIENT must point at vnc-test-client}"
src=$(cd "$(dirname "$0")" && pwd)
for tool in chromium convert python3 bash; do
  command -v $tool >/dev/null || { echo "FAIL: $tool is missing: run build-aux/install-deps.sh"; exit 1; }
done
[ -f /usr/share/novnc/vnc_lite.html ] || { echo "FAIL: noVNC is missing (package novnc)"; exit 1; }

# The picture stays until F12 (sent once the screenshot is taken).
nb_display_initrd novnc '
/test/guest-display pattern || exit 1
/test/guest-display events 800'

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
}
trap cleanup EXIT
display=21
port=$((5900 + display)) ws=$((5700 + display)) http=$((6000 + display))
NB_LOG=$NB_WORK/novnc.log
timeout -k 5 880 "$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$NB_WORK/novnc.cpio.gz" \
  --append "console=ttyS0 nestbox.modules=bochs,virtio_input,evdev panic=-1 quiet" \
  --memory 512M --serial "file:$NB_LOG" --vnc "127.0.0.1:$display,websocket=$ws" \
  > "$NB_WORK/novnc.stderr" 2>&1 &
vm=$!
pids+=($vm)
# noVNC is ES modules, which browsers load over HTTP only.
python3 -m http.server --bind 127.0.0.1 --directory /usr/share/novnc $http > "$NB_WORK/http.log" 2>&1 &
pids+=($!)
for _ in $(seq 800); do
  grep -aq -E "EVENTS-READY|NESTBOX-TEST-EXIT" "$NB_LOG" 2>/dev/null && break
  kill -0 $vm 2>/dev/null || break
  sleep 0.5
done
nb_expect "the guest drew the pattern on /dev/fb0" "^PATTERN-DRAWN "
size=$(sed -n 's/^PATTERN-DRAWN \([0-9]*x[0-9]*\).*/\1/p' "$NB_LOG" | tr -d '\r' | head -1)
width=${size%x*} height=${size#*x}

if [ -n "$size" ]; then
  # Room for the whole picture and noVNC's status bar.
  win_w=$((width + 64)) win_h=$((height + 96))
  NB_CHECKS=$((NB_CHECKS + 1))
  found=
  # Driven over the DevTools protocol in real time (Chromium's --screenshot
  # counts virtual time, which runs out before a slow sandbox has drawn):
  # the screenshot is taken once noVNC's canvas has the picture. Chromium
  # under the sandbox's emulation can take minutes to start and load noVNC,
  # so it gets one long session rather than two short ones that each start
  # from nothing.
  rm -f "$NB_WORK/shot.png"
  HOME=$NB_WORK XDG_CACHE_HOME=$NB_WORK/cache XDG_CONFIG_HOME=$NB_WORK/config \
    timeout 560 python3 "$src/../remote/cdp-screenshot.py" \
    "http://127.0.0.1:$http/vnc_lite.html?host=127.0.0.1&port=$ws" "$NB_WORK/shot.png" \
    "${win_w}x$win_h" "$size" 480 "$NB_WORK/profile" > "$NB_WORK/chromium.log" 2>&1
  if [ -s "$NB_WORK/shot.png" ] &&
     convert "$NB_WORK/shot.png" -depth 8 "rgb:$NB_WORK/shot.rgb" 2>> "$NB_WORK/chromium.log" &&
     "$NESTBOX_VNC_CLIENT" --find-rgb "$NB_WORK/shot.rgb" "${win_w}x$win_h" "$size" > "$NB_WORK/find.log"; then
    found=1
  fi
  echo "# $(cat "$NB_WORK/chromium.log")"
  if [ -n "$found" ]; then
    nb_pass "noVNC over the WebSocket port shows the guest's $size screen: $(cat "$NB_WORK/find.log")"
  else
    nb_fail "noVNC's screenshot does not show the guest's picture: $(cat "$NB_WORK/find.log" 2>/dev/null)"
    tail -n 5 "$NB_WORK/chromium.log" "$NB_WORK/profile/chromium.log" 2>/dev/null | sed 's/^/    | /'
  fi
fi

# F12 ends the guest.
"$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --keys 0xffc9 > "$NB_WORK/f12.log" 2>&1
wait $vm
NB_STATUS=$?
nb_expect_status "noVNC guest: poweroff" 0
nb_finish
