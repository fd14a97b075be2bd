#!/bin/bash
# A real guest with a screen, over VNC: the guest's bochs DRM driver gives
# /dev/fb0, the guest draws the test pattern, and a libvncclient client
# (with the password) sees it pixel for pixel, as does gvnccapture; a wrong
# password is refused; twenty clients at once all see it; keys typed over
# VNC reach the guest's virtio keyboard as the right key codes for a German
# guest layout; and an absolute pointer position lands where it was sent.
source "$(dirname "$0")/lib.sh"
: "${NESTBOX_VNC_CLIENT:?NESTBOX_VNC_CLIENT must point at vnc-test-client}"

nb_display_initrd display '
echo "DRM $(cat /sys/class/drm/card0/device/vendor 2>/dev/null):$(cat /sys/class/drm/card0/device/device 2>/dev/null) $(cat /sys/class/graphics/fb0/name 2>/dev/null)"
dmesg | grep -i -E "bochs|\[drm\]" | head -n 12 | sed "s/^/GUEST-DMESG /"
/test/guest-display pattern || exit 1
sleep 1
dmesg | grep -i -E "blit|warn|drm|bochs" | tail -n 6 | sed "s/^/GUEST-DMESG-AFTER /"
echo "PCI-CONFIG $(od -An -tx1 -N24 /sys/class/graphics/fb0/device/config | tr -s "\n " " ")"
/test/guest-display events 400'

echo "s3cret-pw" > "$NB_WORK/password"
echo "wrong-pw" > "$NB_WORK/wrong"
chmod 600 "$NB_WORK/password"
display=17
port=$((5900 + display))
NB_LOG=$NB_WORK/display.log
G_MESSAGES_DEBUG=all timeout -k 5 500 "$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$NB_WORK/display.cpio.gz" \
  --append "console=ttyS0 nestbox.modules=bochs,virtio_input,evdev panic=-1 quiet" \
  --memory 512M --serial "file:$NB_LOG" \
  --vnc "127.0.0.1:$display,password-file=$NB_WORK/password,keymap=de" \
  > "$NB_WORK/display.stderr" 2>&1 &
vm=$!
for _ in $(seq 800); do
  grep -aq -E "EVENTS-READY|NESTBOX-TEST-EXIT" "$NB_LOG" 2>/dev/null && break
  kill -0 $vm 2>/dev/null || break
  sleep 0.5
done
nb_expect "the guest's bochs driver drives the display (1234:1111)" "^DRM 0x1234:0x1111 bochs"
nb_expect "the guest drew the pattern on /dev/fb0" "^PATTERN-DRAWN "
nb_expect "the guest has the virtio keyboard and tablet" "^INPUT-DEV .* Nestbox Tablet"
size=$(sed -n 's/^PATTERN-DRAWN \([0-9]*x[0-9]*\).*/\1/p' "$NB_LOG" | tr -d '\r' | head -1)
width=${size%x*} height=${size#*x}

# Pixels, exactly, with the password.
NB_CHECKS=$((NB_CHECKS + 1))
if "$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --password-file "$NB_WORK/password" --pattern "$size" \
     --timeout 60 > "$NB_WORK/client.log" 2>&1; then
  nb_pass "a VNC client sees the guest's $size picture pixel for pixel"
else
  nb_fail "VNC picture: $(cat "$NB_WORK/client.log")"
  grep -a -E "GUEST-DMESG|^PCI-CONFIG" "$NB_LOG" | sed 's/^/    | /'
  # What the host's video memory holds, read through the VM's memfd.
  for pid in $(pgrep -P $vm) $vm; do
    for fd in /proc/$pid/fd/*; do
      case $(readlink "$fd") in
      *nestbox-vram*) echo "    | host memfd: $(od -An -tx4 -N16 "$fd"); non-zero bytes:" \
                        "$(tr -d '\000' < "$fd" | wc -c)";;
      esac
    done
  done
  grep -a -E "bochs|framebuffer|memory slot|MMIO" "$NB_WORK/display.stderr" | head -n 50 | sed 's/^/    | /'
fi

# A wrong password is refused.
NB_CHECKS=$((NB_CHECKS + 1))
"$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --password-file "$NB_WORK/wrong" --pattern "$size" \
  --timeout 10 > "$NB_WORK/wrong.log" 2>&1
status=$?
if [ $status = 3 ] && grep -q AUTH-FAILED "$NB_WORK/wrong.log"; then
  nb_pass "a wrong password is refused"
else
  nb_fail "wrong password: exit $status: $(cat "$NB_WORK/wrong.log")"
fi

# gvnccapture (gtk-vnc) saves the same picture.
NB_CHECKS=$((NB_CHECKS + 1))
# It asks for the password on its terminal (script(1) gives it one) and
# flushes what was typed before it asks: type it once the prompt is there.
mkfifo "$NB_WORK/gvnc.in"
timeout 60 script -qec "gvnccapture 127.0.0.1:$display $NB_WORK/capture.png" /dev/null \
  < "$NB_WORK/gvnc.in" > "$NB_WORK/gvnc.log" 2>&1 &
gvnc=$!
exec 9> "$NB_WORK/gvnc.in"
for _ in $(seq 300); do
  grep -aq "Password:" "$NB_WORK/gvnc.log" 2>/dev/null && break
  sleep 0.2
done
sleep 0.5
cat "$NB_WORK/password" >&9
wait $gvnc
gvnc_status=$?
exec 9>&-
if [ $gvnc_status = 0 ] && [ -s "$NB_WORK/capture.png" ] &&
   convert "$NB_WORK/capture.png" -depth 8 "rgb:$NB_WORK/capture.rgb" 2>> "$NB_WORK/gvnc.log" &&
   "$NESTBOX_VNC_CLIENT" --compare-rgb "$NB_WORK/capture.rgb" "$size" >> "$NB_WORK/gvnc.log" 2>&1; then
  nb_pass "gvnccapture saves the same picture"
else
  nb_fail "gvnccapture: $(cat "$NB_WORK/gvnc.log")"
fi

# Twenty clients at once, each with the whole picture.
NB_CHECKS=$((NB_CHECKS + 1))
if "$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --password-file "$NB_WORK/password" --clients 20 \
     --pattern "$size" --timeout 120 > "$NB_WORK/many.log" 2>&1; then
  nb_pass "twenty clients at once see the picture"
else
  nb_fail "twenty clients: $(cat "$NB_WORK/many.log")"
fi

# Keys for a German guest: a, z (on the Y key), ä, @ (AltGr+Q) typed with
# nothing held, ! with the user's Shift; the pointer to the screen's middle;
# then F12, which ends the guest's reader.
x=$((width / 2)) y=$((height / 2))
"$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --password-file "$NB_WORK/password" --pointer "$x,$y" \
  --keys "0x61,0x7a,0xe4,0x40,+0xffe1,0x21,-0xffe1,0xffc9" > "$NB_WORK/keys.log" 2>&1
wait $vm
NB_STATUS=$?
nb_expect_status "display guest: poweroff" 0
got=$(grep -a '^KEY ' "$NB_LOG" | tr -d '\r' | awk '{ printf "%s:%s ", $2, $3 }')
want="30:1 30:0 21:1 21:0 40:1 40:0 100:1 16:1 100:0 16:0 42:1 2:1 2:0 42:0 88:1 88:0 "
NB_CHECKS=$((NB_CHECKS + 1))
if [ "$got" = "$want" ]; then
  nb_pass "keys typed over VNC arrive as the German layout's key codes"
else
  nb_fail "key codes: got '$got', want '$want' (client: $(cat "$NB_WORK/keys.log"))"
fi
ax=$((x * 32767 / (width - 1))) ay=$((y * 32767 / (height - 1)))
nb_expect "the pointer's x lands where it was sent ($x of $width)" "^ABS 0 $ax\s*$"
if grep -aq "dirty log missed" "$NB_WORK/display.stderr"; then
  echo "note: KVM's dirty log missed changes here; the periodic full comparison found them"
fi
nb_expect "the pointer's y lands where it was sent ($y of $height)" "^ABS 1 $ay\s*$"
nb_finish
