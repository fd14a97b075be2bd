#!/bin/bash
# nestbox-viewer against real VNC servers, seen the way a user sees it: x11vnc serving
# an Xvfb screen (password authentication) and QEMU's own VNC server showing SeaBIOS.
# The viewer runs under a second Xvfb; screenshots of that screen show what it drew,
# xev on the server's screen shows what input arrived.
#
# Checked: the remote picture appears, fullscreen by default and in a window; it is
# scaled keeping its aspect ratio; keys (with modifiers) and clicks reach the server at
# the right remote coordinates; Ctrl+Alt+F and Ctrl+Alt+Q stay with the viewer; a wrong
# password is refused at once with status 1; the terminal prompt works without echo, and
# with no terminal the password is typed into the window;
# after the server is killed the viewer shows "reconnecting", sleeps instead of
# spinning, and comes back by itself when the server does; a guest mode change
# (DesktopSize) resizes the picture.
set -uo pipefail
viewer=${NESTBOX_VIEWER:?}
source "$(dirname "$0")/x11-lib.sh"

if ! command -v Xvfb >/dev/null; then
  echo "SKIP: no X server (Xvfb) to run the viewer on; build-aux/install-deps.sh installs it"
  exit 77
fi
for tool in x11vnc xsetroot xev xdotool xwininfo import convert python3 qemu-system-x86_64; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing: run build-aux/install-deps.sh"; exit 1; }
done

work=$(mktemp -d)
NB_X11_DIR=$work
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 0.5
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
export SDL_VIDEODRIVER=x11
unset WAYLAND_DISPLAY
# Our own leaks are checked by viewer-errors and viewer-units.
nb_x11_no_leak_check "$viewer"

ok() { echo "ok: $*"; }
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
die() {
  echo "FAIL: $*"
  for f in "$work"/*.log; do
    [ -f "$f" ] && { echo "--- $(basename "$f")"; tail -20 "$f"; }
  done
  exit 1
}

wait_for() { nb_x11_wait_for "$@"; }
start_xvfb() { nb_x11_start_xvfb "$@" || die "the X server for $1 did not start"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A free port that is a VNC display (5900 + N).
free_display_port() {
  python3 - <<'EOF'
import socket
for port in range(5950, 6900):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break
EOF
}

# pixel DISPLAY X Y: "#RRGGBB" of the screen at (X, Y).
pixel() {
  DISPLAY=$1 nb_x11_pixel "$2" "$3"
}
pixel_is() {
  [ "$(pixel "$1" "$2" "$3")" = "$4" ]
}

# The viewer's window on the viewer's screen, and its geometry: WX WY WW WH.
viewer_window() {
  DISPLAY=$view xdotool search --class nestbox-viewer 2>/dev/null | head -1
}
has_window() {
  [ -n "$(viewer_window)" ]
}
geometry() {
  DISPLAY=$view nb_x11_geometry "$1"
}
geometry_is() {
  geometry "$1" && [ "$WW" = "$2" ] && [ "$WH" = "$3" ]
}

cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

start_x11vnc() {
  x11vnc -display "$server" -rfbauth "$work/passwd" -rfbport "$port" -localhost \
    -forever -shared -nopw -noxdamage >"$work/x11vnc.log" 2>&1 &
  x11vnc_pid=$!
  pids+=($x11vnc_pid)
  wait_for 30 grep -q "^PORT=$port" "$work/x11vnc.log" || die "x11vnc did not start on port $port"
}

# x11vnc's SIGTERM handler talks to the X server, and it has been seen to hang
# there for good (CI ran out of time in a plain `wait`): give it 10 s, then KILL.
stop_x11vnc() {
  kill $x11vnc_pid 2>/dev/null
  if ! wait_for 10 sh -c "! kill -0 $x11vnc_pid 2>/dev/null"; then
    echo "note: x11vnc ignored SIGTERM for 10 s; killing it"
    kill -KILL $x11vnc_pid 2>/dev/null
  fi
  wait $x11vnc_pid 2>/dev/null
}

# --- the server side: a 640x480 screen of a known colour, xev in a corner ---------
start_xvfb server 640x480x24
start_xvfb view 1024x768x24
DISPLAY=$server xsetroot -solid '#2080c0' || die "xsetroot failed"
DISPLAY=$server xev -geometry 200x150+50+40 -event keyboard -event button \
  >"$work/xev.log" 2>&1 &
pids+=($!)
x11vnc -storepasswd secret "$work/passwd" >/dev/null 2>&1 || die "x11vnc -storepasswd failed"
echo secret >"$work/password"
echo wrong >"$work/wrong-password"
port=$(free_port)
start_x11vnc
address=127.0.0.1::$port

# --- a wrong password: refused once, with a clear message -------------------------
start=$SECONDS
out=$(DISPLAY=$view timeout 30 "$viewer" --window --password-file "$work/wrong-password" \
  "$address" 2>&1)
status=$?
if [ $status -eq 1 ] && grep -q "the server at $address refused the password" <<<"$out" &&
   [ $((SECONDS - start)) -lt 10 ]; then
  ok "wrong password refused with status 1 in $((SECONDS - start)) s"
else
  fail "wrong password: status $status after $((SECONDS - start)) s: $out"
fi

# --- fullscreen by default -----------------------------------------------------------
DISPLAY=$view "$viewer" -v --password-file "$work/password" "$address" \
  >"$work/viewer.log" 2>&1 &
viewer_pid=$!
pids+=($viewer_pid)
wait_for 30 has_window || die "no viewer window appeared"
win=$(viewer_window)
# 640x480 in 1024x768: the same aspect ratio, so the whole screen, scaled by 1.6.
if wait_for 20 geometry_is "$win" 1024 768 && wait_for 20 pixel_is "$view" 800 560 '#2080C0'; then
  ok "fullscreen by default: the remote colour fills the 1024x768 screen"
else
  fail "fullscreen: window ${WW}x${WH}, pixel $(pixel "$view" 800 560)"
fi

# Ctrl+Alt+F leaves fullscreen: a window of the remote size.
DISPLAY=$view xdotool mousemove 500 400 key ctrl+alt+f
if wait_for 10 geometry_is "$win" 640 480; then
  ok "Ctrl+Alt+F: a 640x480 window"
else
  fail "Ctrl+Alt+F: window is ${WW}x${WH}"
fi

# --- the picture in a window: exact at 1:1 ------------------------------------------
geometry "$win"
if wait_for 10 pixel_is "$view" $((WX + 500)) $((WY + 350)) '#2080C0' &&
   pixel_is "$view" $((WX - 5)) $((WY + 10)) '#000000'; then
  ok "the remote screen's colour is in the window, the viewer's screen outside it"
else
  fail "picture: inside $(pixel "$view" $((WX + 500)) $((WY + 350))), outside $(pixel "$view" $((WX - 5)) $((WY + 10)))"
fi

# --- scaling keeps the aspect ratio: 800x300 shows 400x300 centred --------------------
DISPLAY=$view xdotool windowsize "$win" 800 300
wait_for 10 geometry_is "$win" 800 300 || fail "the window did not become 800x300"
geometry "$win"
if wait_for 10 pixel_is "$view" $((WX + 400)) $((WY + 150)) '#2080C0' &&
   pixel_is "$view" $((WX + 100)) $((WY + 150)) '#000000' &&
   pixel_is "$view" $((WX + 700)) $((WY + 150)) '#000000' &&
   pixel_is "$view" $((WX + 205)) $((WY + 150)) '#2080C0' &&
   pixel_is "$view" $((WX + 594)) $((WY + 150)) '#2080C0'; then
  ok "scaled to 400x300 between black borders"
else
  fail "scaling: $(for x in 100 205 400 594 700; do printf '%s=%s ' $x "$(pixel "$view" $((WX + x)) $((WY + 150)))"; done)"
fi

# --- a click lands at the remote coordinates ----------------------------------------
# Window (294, 62) is remote ((294-200)*640/400, 62*480/300) = (150.4, 99.2): inside
# the xev window at 50..250 x 40..190.
DISPLAY=$view xdotool mousemove --window "$win" 294 62 click 1
if wait_for 10 grep -q "ButtonPress" "$work/xev.log"; then
  where=$(grep -A2 ButtonPress "$work/xev.log" | grep -o 'root:([0-9]*,[0-9]*)' | head -1)
  rx=$(sed 's/root:(\([0-9]*\),.*/\1/' <<<"$where")
  ry=$(sed 's/.*,\([0-9]*\))/\1/' <<<"$where")
  if [ "${rx:-0}" -ge 149 ] && [ "${rx:-0}" -le 151 ] && [ "${ry:-0}" -ge 98 ] &&
     [ "${ry:-0}" -le 100 ]; then
    ok "click at window (294,62) arrived at remote $where"
  else
    fail "click arrived at $where, expected about (150,99)"
  fi
else
  fail "no click arrived"
fi

# --- keys with modifiers ------------------------------------------------------------
DISPLAY=$view xdotool windowfocus "$win" 2>/dev/null
DISPLAY=$view xdotool type --delay 30 'aZ!'
DISPLAY=$view xdotool key ctrl+c F5 Return
# The keysyms of the KeyPress events xev saw, in order.
keysyms() {
  grep -A2 '^KeyPress' "$work/xev.log" | grep -o 'keysym 0x[0-9a-f]*, [A-Za-z0-9_]*' |
    awk '{print $3}' | tr '\n' ' '
}
expect_keys="a Shift_L Z Shift_L exclam Control_L c F5 Return"
keys_arrived() {
  grep -q "a Shift_L Z Shift_L exclam Control_L c F5 Return" <<<"$(keysyms)"
}
if wait_for 10 keys_arrived; then
  ok "keys arrived: $(keysyms)"
else
  fail "keys: expected $expect_keys, got: $(keysyms)"
fi
# Ctrl+Alt+F is the viewer's: no f reaches the server.
DISPLAY=$view xdotool key ctrl+alt+f
sleep 1
DISPLAY=$view xdotool key ctrl+alt+f
sleep 1
if grep -qw f <<<"$(keysyms)"; then
  fail "Ctrl+Alt+F reached the server: $(keysyms)"
else
  ok "Ctrl+Alt+F stayed with the viewer"
fi

# --- idle: no busy loop ---------------------------------------------------------------
t0=$(cpu_ticks $viewer_pid)
sleep 4
t1=$(cpu_ticks $viewer_pid)
if [ $((t1 - t0)) -lt 40 ]; then
  ok "idle while connected: $((t1 - t0)) ticks of CPU in 4 s"
else
  fail "idle while connected: $((t1 - t0)) ticks of CPU in 4 s"
fi

# --- the server goes away: a visible reconnecting state, then back by itself --------
stop_x11vnc
geometry "$win"
if wait_for 15 grep -q "lost the connection to $address" "$work/viewer.log" &&
   wait_for 5 sh -c "DISPLAY=$view xdotool getwindowname $win | grep -q reconnecting"; then
  ok "server killed: the viewer says it is reconnecting (title: $(DISPLAY=$view xdotool getwindowname "$win"))"
else
  fail "no reconnecting state: $(tail -3 "$work/viewer.log")"
fi
# The picture is dimmed under the message panel: drawn on the frame after the
# title changed, so it may take a moment on a loaded machine.
undimmed() {
  dimmed=$(pixel "$view" $((WX + 215)) $((WY + 10)))
  [ "$dimmed" = '#2080C0' ] || [ "$dimmed" = '#000000' ]
}
for _ in $(seq 25); do undimmed || break; sleep 0.2; done
if ! undimmed; then
  ok "the last picture is dimmed ($dimmed) while reconnecting"
else
  fail "the picture is not dimmed while reconnecting: $dimmed"
fi
t0=$(cpu_ticks $viewer_pid)
sleep 4
t1=$(cpu_ticks $viewer_pid)
if [ $((t1 - t0)) -lt 60 ]; then
  ok "reconnecting without spinning: $((t1 - t0)) ticks of CPU in 4 s"
else
  fail "reconnecting uses $((t1 - t0)) ticks of CPU in 4 s"
fi
kill -0 $viewer_pid 2>/dev/null || die "the viewer exited when the server went away"

DISPLAY=$server xsetroot -solid '#c04010'
start_x11vnc
if wait_for 40 grep -q "connected to $address again" "$work/viewer.log" &&
   wait_for 10 pixel_is "$view" $((WX + 400)) $((WY + 150)) '#C04010'; then
  ok "reconnected by itself and shows the new screen"
else
  fail "did not reconnect: $(tail -3 "$work/viewer.log"), pixel $(pixel "$view" $((WX + 400)) $((WY + 150)))"
fi

# --- Ctrl+Alt+Q quits with status 0 ---------------------------------------------------
DISPLAY=$view xdotool mousemove --window "$win" 400 150 key ctrl+alt+q
if wait_for 10 sh -c "! kill -0 $viewer_pid 2>/dev/null"; then
  wait $viewer_pid
  status=$?
  [ $status -eq 0 ] && ok "Ctrl+Alt+Q quit with status 0" || fail "Ctrl+Alt+Q: status $status"
else
  fail "Ctrl+Alt+Q did not quit"
fi

# --- the server comes back with another password: refused once, the viewer exits ------
DISPLAY=$view "$viewer" --window --password-file "$work/password" "$address" \
  >"$work/viewer-newpass.log" 2>&1 &
newpass_pid=$!
pids+=($newpass_pid)
wait_for 30 has_window || fail "no window for the new-password viewer"
sleep 1
stop_x11vnc
x11vnc -storepasswd other "$work/passwd" >/dev/null 2>&1
start_x11vnc
if wait_for 40 sh -c "! kill -0 $newpass_pid 2>/dev/null"; then
  wait $newpass_pid
  status=$?
  if [ $status -eq 1 ] && grep -q "refused the password" "$work/viewer-newpass.log"; then
    ok "a password refused while reconnecting ends the viewer (status 1), no retry loop"
  else
    fail "new password: status $status: $(tail -2 "$work/viewer-newpass.log")"
  fi
else
  fail "the viewer kept running after its password was refused: $(tail -2 "$work/viewer-newpass.log")"
fi
x11vnc -storepasswd secret "$work/passwd" >/dev/null 2>&1
stop_x11vnc
start_x11vnc

# --- the password typed on a terminal, not echoed ---------------------------------------
out=$(DISPLAY=$view VIEWER="$viewer" ADDRESS="$address" timeout 60 python3 - <<'EOF'
import os, pty, select, signal, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(os.environ["VIEWER"], [os.environ["VIEWER"], "-v", "--window", "--view-only",
                                     os.environ["ADDRESS"]])
seen = b""
def read_until(marker, timeout):
    global seen
    end = time.time() + timeout
    while marker not in seen and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return marker in seen
if not read_until(b"Password for ", 20):
    print("no prompt:", seen); sys.exit(1)
os.write(fd, b"secret\n")
connected = read_until(b"connected to", 20)
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
if not connected:
    print("not connected:", seen); sys.exit(1)
after = seen.split(b"Password for ", 1)[1]
if b"secret" in after:
    print("the password was echoed:", seen); sys.exit(1)
print("prompted, connected, no echo")
EOF
)
[ $? -eq 0 ] && ok "terminal password: $out" || fail "terminal password: $out"

# --- no terminal, no password file: the password is asked in the window -------------
wait_for 20 sh -c '! DISPLAY='"$view"' xdotool search --class nestbox-viewer >/dev/null 2>&1'
DISPLAY=$view setsid -w "$viewer" -v --window "$address" </dev/null >"$work/viewer-ask.log" 2>&1 &
ask_pid=$!
pids+=($ask_pid)
wait_for 30 has_window || die "no window for the password prompt"
awin=$(viewer_window)
if wait_for 10 sh -c "DISPLAY=$view xdotool getwindowname $awin | grep -q ' — password — '"; then
  DISPLAY=$view xdotool mousemove --window "$awin" 100 100
  DISPLAY=$view xdotool type --delay 30 'secrex'
  DISPLAY=$view xdotool key BackSpace t Return
  if wait_for 20 grep -q "connected to $address" "$work/viewer-ask.log"; then
    ok "no terminal: the password typed into the window (with a correction) was taken"
  else
    fail "window password: $(tail -3 "$work/viewer-ask.log")"
  fi
else
  fail "no password prompt in the window: title $(DISPLAY=$view xdotool getwindowname "$awin")"
fi
kill $ask_pid 2>/dev/null
wait $ask_pid 2>/dev/null

# --- --wait: a thin client that boots before its server ----------------------------
wait_for 20 sh -c '! DISPLAY='"$view"' xdotool search --class nestbox-viewer >/dev/null 2>&1'
port2=$(free_port)
DISPLAY=$view "$viewer" -v --wait --window --password-file "$work/password" "127.0.0.1::$port2" \
  >"$work/viewer-wait.log" 2>&1 &
wait_pid=$!
pids+=($wait_pid)
wait_for 30 has_window || die "no window for --wait"
wwin=$(viewer_window)
if wait_for 10 sh -c "DISPLAY=$view xdotool getwindowname $wwin | grep -q 'waiting for the server'"; then
  ok "--wait: a window that says it waits ($(DISPLAY=$view xdotool getwindowname "$wwin"))"
else
  fail "--wait: title $(DISPLAY=$view xdotool getwindowname "$wwin")"
fi
sleep 2
kill -0 $wait_pid 2>/dev/null || fail "--wait: the viewer gave up: $(tail -2 "$work/viewer-wait.log")"
saved_port=$port
port=$port2
start_x11vnc
port=$saved_port
if wait_for 40 grep -q "connected to 127.0.0.1::$port2" "$work/viewer-wait.log"; then
  ok "--wait: connected once the server came up"
else
  fail "--wait: $(tail -3 "$work/viewer-wait.log")"
fi
kill $wait_pid
wait $wait_pid 2>/dev/null

# --- a server that accepts and then says nothing: the window stays responsive --------
python3 - "$work/silent.port" <<'EOF' &
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4)
with open(sys.argv[1], "w") as f:
    f.write(str(s.getsockname()[1]))
held = []
while True:
    c, _ = s.accept()
    held.append(c)  # never answers
EOF
pids+=($!)
wait_for 10 test -s "$work/silent.port" || die "the silent server did not start"
wait_for 20 sh -c '! DISPLAY='"$view"' xdotool search --class nestbox-viewer >/dev/null 2>&1'
DISPLAY=$view "$viewer" --wait --window "127.0.0.1::$(cat "$work/silent.port")" \
  >"$work/viewer-silent.log" 2>&1 &
silent_pid=$!
pids+=($silent_pid)
wait_for 30 has_window || die "no window for the silent server"
sleep 2  # the first try is under way: the handshake waits for the server's greeting
DISPLAY=$view xdotool mousemove --window "$(viewer_window)" 100 100 key ctrl+alt+q
if wait_for 5 sh -c "! kill -0 $silent_pid 2>/dev/null"; then
  wait $silent_pid
  status=$?
  if [ $status -eq 0 ]; then
    ok "Ctrl+Alt+Q during a hanging handshake quit at once (status 0)"
  else
    fail "quit during a handshake: status $status: $(cat "$work/viewer-silent.log")"
  fi
else
  fail "Ctrl+Alt+Q during a hanging handshake did not quit within 5 s"
fi

# --- QEMU's VNC server: a guest mode change resizes the picture ---------------------------
qport=$(free_display_port)
qdisplay=$((qport - 5900))
qemu-system-x86_64 -S -nodefaults -vga std -display none -m 32 \
  -vnc "127.0.0.1:$qdisplay" -monitor "unix:$work/monitor.sock,server=on,wait=off" \
  >"$work/qemu.log" 2>&1 &
pids+=($!)
wait_for 20 test -S "$work/monitor.sock" || die "QEMU did not start"
# The terminal test's viewer must be gone, or its window would be taken for this one's.
wait_for 20 sh -c '! DISPLAY='"$view"' xdotool search --class nestbox-viewer >/dev/null 2>&1' ||
  fail "a viewer window stayed after its viewer ended"
DISPLAY=$view "$viewer" -v --window "127.0.0.1:$qdisplay" >"$work/viewer-qemu.log" 2>&1 &
qviewer_pid=$!
pids+=($qviewer_pid)
# QEMU shows 640x480 until the (paused) guest sets a mode.
wait_for 30 grep -q "connected to 127.0.0.1:$qdisplay" "$work/viewer-qemu.log" ||
  die "the viewer did not connect to QEMU"
wait_for 30 has_window || die "no viewer window for QEMU"
qwin=$(viewer_window)
wait_for 10 geometry_is "$qwin" 640 480 || fail "QEMU's first screen: window ${WW}x${WH}"
# "cont" on the monitor, and wait for its answer (the prompt after it) before closing.
python3 - "$work/monitor.sock" <<'EOF' || fail "QEMU's monitor did not take cont"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
seen = b""
while seen.count(b"(qemu)") < 1:
    seen += s.recv(4096)
s.sendall(b"cont\n")
while seen.count(b"(qemu)") < 2:
    seen += s.recv(4096)
EOF
# SeaBIOS sets 720x400 text mode: in the 640x480 window a 640x356 picture from y=62.
band_empty() {
  import -display "$view" -window root "$work/q.png" 2>/dev/null &&
    [ "$(convert "$work/q.png" -crop "640x60+$WX+$WY" -format '%[fx:maxima]' info:)" = 0 ]
}
text_shown() {
  import -display "$view" -window root "$work/q.png" 2>/dev/null &&
    [ "$(convert "$work/q.png" -crop "640x356+$WX+$((WY + 62))" -format '%[fx:maxima>0.3]' info:)" = 1 ]
}
geometry "$qwin"
if wait_for 30 grep -q "the remote desktop is 720x400" "$work/viewer-qemu.log" &&
   wait_for 20 text_shown && band_empty && kill -0 $qviewer_pid; then
  ok "DesktopSize: 720x400 letterboxed in the 640x480 window, SeaBIOS text shown"
else
  fail "DesktopSize: $(cat "$work/viewer-qemu.log")"
fi

if [ $failures -ne 0 ]; then
  echo "$failures failed"
  for f in "$work"/viewer*.log; do echo "--- $(basename "$f")"; tail -20 "$f"; done
  exit 1
fi
echo "all passed"
