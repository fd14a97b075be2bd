#!/bin/bash
# A real guest's screen in the SDL window (nestbox-vm --display sdl, with --vnc
# beside it), under an Xvfb started here in the sandbox: the window takes the
# guest's mode size and shows the pattern the guest drew on /dev/fb0 pixel for
# pixel; keys typed into it with xdotool reach the guest's virtio keyboard as the
# physical keys' codes; a click lands on the tablet where it was made; closing
# the window presses the guest's ACPI power button (the title says whether the
# guest listens), and closing it again powers the machine off.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../remote/x11-lib.sh"
: "${NESTBOX_VNC_CLIENT:?NESTBOX_VNC_CLIENT must point at vnc-test-client}"
for tool in Xvfb xdotool xwininfo xprop import convert python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing: run build-aux/install-deps.sh"; exit 1; }
done

nb_display_initrd display '
/test/guest-display pattern || exit 1
/test/guest-display events 400'

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
}
trap cleanup EXIT
NB_X11_DIR=$NB_WORK
# Large enough that a 1024x768 window, placed where its first 640x480 one was centred, fits.
if ! nb_x11_start_xvfb DISPLAY 1920x1440x24 > "$NB_WORK/xvfb-start.log"; then
  nb_fail "in the sandbox: $(cat "$NB_WORK/xvfb-start.log")"
  nb_finish
fi
export DISPLAY SDL_VIDEODRIVER=x11
unset WAYLAND_DISPLAY

NB_LOG=$NB_WORK/display.log
display=18
timeout -k 5 500 "$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$NB_WORK/display.cpio.gz" \
  --append "console=ttyS0 nestbox.modules=bochs,virtio_input,evdev panic=-1 quiet" \
  --memory 512M --serial "file:$NB_LOG" --display sdl --vnc "127.0.0.1:$display" \
  > "$NB_WORK/display.stderr" 2>&1 &
vm=$!
pids+=($vm)
for _ in $(seq 800); do
  grep -aq -E "EVENTS-READY|NESTBOX-TEST-EXIT" "$NB_LOG" 2>/dev/null && break
  kill -0 $vm 2>/dev/null || break
  sleep 0.5
done
nb_expect "the guest drew the pattern on /dev/fb0" "^PATTERN-DRAWN "
nb_expect "the guest has the virtio keyboard and tablet" "^INPUT-DEV .* Nestbox Tablet"
size=$(sed -n 's/^PATTERN-DRAWN \([0-9]*x[0-9]*\).*/\1/p' "$NB_LOG" | tr -d '\r' | head -1)
width=${size%x*} height=${size#*x}

win=
for _ in $(seq 60); do
  win=$(xdotool search --class "^nestbox-vm$" 2>/dev/null | head -1)
  # By class: with a locale set, the title is not the STRING xdotool --name reads.
  [ -n "$win" ] && break
  sleep 0.5
done
WX=0 WY=0 WW= WH=
geometry() { nb_x11_geometry "$win"; }
title() { nb_x11_title "$win"; }
NB_CHECKS=$((NB_CHECKS + 1))
if [ -n "$win" ] && geometry && [ "${WW}x${WH}" = "$size" ] && grep -q " - running - " <<<"$(title)"; then
  nb_pass "the SDL window has the guest's mode size ($size), titled '$(title)'"
else
  nb_fail "SDL window: id '$win', ${WW:-?}x${WH:-?} for a $size mode, title '$(title 2>/dev/null)'"
  echo "    windows on $DISPLAY:"
  xwininfo -root -tree 2>&1 | head -20 | sed 's/^/    | /'
  echo "    nestbox-vm said:"
  sed 's/^/    | /' "$NB_WORK/display.stderr" | tail -20
fi

# The picture, pixel for pixel: a screenshot of the window against the pattern.
NB_CHECKS=$((NB_CHECKS + 1))
shown=0
for _ in $(seq 20); do
  if import -window root "$NB_WORK/shot.png" 2>>"$NB_WORK/shot.log" &&
     convert "$NB_WORK/shot.png" -crop "${width}x${height}+${WX:-0}+${WY:-0}" +repage -depth 8 \
       "rgb:$NB_WORK/window.rgb" 2>>"$NB_WORK/shot.log" &&
     "$NESTBOX_VNC_CLIENT" --compare-rgb "$NB_WORK/window.rgb" "$size" > "$NB_WORK/compare.log" 2>&1; then
    shown=1
    break
  fi
  sleep 1
done
if [ $shown = 1 ]; then
  nb_pass "the SDL window shows the guest's $size picture pixel for pixel"
else
  nb_fail "SDL window picture: $(cat "$NB_WORK/compare.log" "$NB_WORK/shot.log" | head -5)"
fi

# Keys: a, z, 1 and Right (arrow) typed into the window arrive as those physical
# keys; a click in the window's middle lands on the tablet there.
x=$((width / 2)) y=$((height / 3))
xdotool mousemove $((WX + x)) $((WY + y)) click 1
sleep 1
xdotool key a z 1 Right
sleep 1
# Closing the window (what a window manager's close button sends) presses the
# guest's power button; closing it again powers the machine off at once.
close_window() { nb_x11_close_window "$win"; }
close_window
sleep 2
closed_title=$(title)
close_window
wait $vm
NB_STATUS=$?
nb_expect_status "the second close stopped the machine" 0
NB_CHECKS=$((NB_CHECKS + 1))
if grep -q "machine stopped: powered off: its window was closed again" "$NB_WORK/display.stderr"; then
  nb_pass "nestbox-vm says the second close powered the machine off"
else
  nb_fail "second close: nestbox-vm said: $(cat "$NB_WORK/display.stderr" | tail -5)"
fi
# Buttons (BTN_LEFT 272) and the power button (116) come apart from the keys.
got=$(grep -a '^KEY ' "$NB_LOG" | tr -d '\r' | awk '$2 != 116 && $2 < 256 { printf "%s:%s ", $2, $3 }')
want="30:1 30:0 44:1 44:0 2:1 2:0 106:1 106:0 "
NB_CHECKS=$((NB_CHECKS + 1))
if [ "$got" = "$want" ]; then
  nb_pass "keys typed into the SDL window arrive as the physical keys' codes"
else
  nb_fail "key codes: got '$got', want '$want'"
fi
ax=$((x * 32767 / (width - 1))) ay=$((y * 32767 / (height - 1)))
nb_expect "the click's x lands on the tablet where it was made ($x of $width)" "^ABS 0 $ax\s*$"
nb_expect "the click's y lands on the tablet where it was made ($y of $height)" "^ABS 1 $ay\s*$"
nb_expect "the click's left button went down in the guest (BTN_LEFT)" "^KEY 272 1"
# Whether the guest listens for the power button depends on its kernel (the
# ACPI button driver sets PWRBTN_EN); the title must say which it is.
if grep -q "shutting down" <<<"$closed_title"; then
  nb_expect "closing the window pressed the guest's power button (KEY_POWER)" "^KEY 116 1"
else
  NB_CHECKS=$((NB_CHECKS + 1))
  if grep -q "the guest ignores the power button (close again to power off now)" <<<"$closed_title"; then
    nb_pass "the guest does not listen for the power button, and the title says so: $closed_title"
  else
    nb_fail "after the close the title is '$closed_title'"
  fi
fi
nb_finish
