#!/bin/bash
# A real gtk-vnc client (gvncviewer) under Xvfb against Nestbox's VNC server:
# it takes the server's offer of QEMU extended key events and sends each
# key's scancode, so keys reach the guest as the keys pressed, whatever the
# layouts. The X server here has a German layout and the server's keymap is
# US: "y" typed on the German Z key must arrive as KEY_Z (44), where the
# symbol through the US keymap would give KEY_Y (21); "z" (the German Y
# key) arrives as KEY_Y; then Up and Delete (E0-prefixed keys).
set -uo pipefail
server=${NB_VNC_TEST_SERVER:?}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
source "$(dirname "$0")/x11-lib.sh"
for tool in Xvfb gvncviewer xdotool setxkbmap; do
  command -v $tool >/dev/null || { echo "FAIL: $tool is missing (see build-aux/install-deps.sh)"; exit 1; }
done
NB_X11_DIR=$work
nb_x11_start_xvfb DISPLAY 1024x768x24 || { echo "FAIL: no X server"; exit 1; }
export DISPLAY
setxkbmap de || { echo "FAIL: setxkbmap de"; exit 1; }

for display in $(seq 73 99); do
  "$server" "$display" 640x480 > "$work/server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do grep -q SERVING "$work/server.log" && break; sleep 0.1; done
  grep -q SERVING "$work/server.log" && break
done
grep -q SERVING "$work/server.log" || { echo "FAIL: the test server did not start"; exit 1; }
gvncviewer "127.0.0.1:$display" > "$work/gvnc.log" 2>&1 &
pids+=($!)
find_window() { win=$(xdotool search --name "Nestbox - GVncViewer" 2>/dev/null | head -1); [ -n "$win" ]; }
nb_x11_wait_for 30 find_window || { echo "FAIL: gvncviewer shows no window: $(cat "$work/gvnc.log")"; exit 1; }
# A click gives it the keyboard; then the keys, slowly enough to be seen apart.
xdotool mousemove --window "$win" 100 100 click 1
sleep 0.5
xdotool windowfocus "$win" 2>/dev/null
sleep 0.3
grep -c '^KEY' "$work/server.log" > "$work/keys.before"
xdotool key --delay 150 y z Up Delete
want="44:1 44:0 21:1 21:0 103:1 103:0 111:1 111:0"
got_keys() {
  got=$(tail -n +$(( $(cat "$work/keys.before") + 1 )) <(grep '^KEY' "$work/server.log") |
        awk '{ printf "%s:%s ", $2, $3 }')
  got=${got% }
  [ "$got" = "$want" ]
}
if nb_x11_wait_for 10 got_keys; then
  echo "ok: gtk-vnc's keys arrive by scancode, as the keys pressed ($got)"
  exit 0
fi
echo "FAIL: keys from gvncviewer: got '$got', want '$want'"
exit 1
