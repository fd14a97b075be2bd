#!/bin/bash
# A whole US keyboard over VNC into a real guest, in one boot: every key of a
# US PC keyboard (letters, digits, punctuation, the shifted symbols with the
# user's Shift held, capitals, function keys, Print Screen, Scroll Lock,
# Pause, editing keys, arrows, every modifier, the lock keys and the keypad
# with Num Lock on and off) is sent as the keysym a VNC client sends for it,
# and the guest's /dev/input reports exactly the Linux key code of that key.
# Then keys sent with their scancodes (QEMU's extended key events) arrive
# too, and the guest's Caps and Num Lock LEDs, which its own keyboard handler
# switched on when those keys were pressed, reach a VNC client (QEMU's LED
# state).
source "$(dirname "$0")/lib.sh"
: "${NESTBOX_VNC_CLIENT:?NESTBOX_VNC_CLIENT must point at vnc-test-client}"

# The reader ends on F12; the LED client gets a moment before the guest goes.
nb_display_initrd keys '#no-screen: only the keyboard
/test/guest-display events 400
status=$?
sleep 2
exit $status'

# KEYSYM:LINUX-KEY-CODE, as a US keyboard has them (linux/input-event-codes.h),
# row by row. Scroll Lock twice: whether the guest's console lights its LED
# depends on a terminal being open on it, and pressed twice it ends dark
# either way.
plain="0xff1b:1 0xffbe:59 0xffbf:60 0xffc0:61 0xffc1:62 0xffc2:63 0xffc3:64 0xffc4:65 0xffc5:66
 0xffc6:67 0xffc7:68 0xffc8:87 0xff61:99 0xff14:70 0xff14:70 0xff13:119
 0x60:41 0x31:2 0x32:3 0x33:4 0x34:5 0x35:6 0x36:7 0x37:8 0x38:9 0x39:10 0x30:11 0x2d:12 0x3d:13
 0xff08:14
 0xff09:15 0x71:16 0x77:17 0x65:18 0x72:19 0x74:20 0x79:21 0x75:22 0x69:23 0x6f:24 0x70:25
 0x5b:26 0x5d:27 0x5c:43
 0xffe5:58 0x61:30 0x73:31 0x64:32 0x66:33 0x67:34 0x68:35 0x6a:36 0x6b:37 0x6c:38 0x3b:39
 0x27:40 0xff0d:28
 0xffe1:42 0x7a:44 0x78:45 0x63:46 0x76:47 0x62:48 0x6e:49 0x6d:50 0x2c:51 0x2e:52 0x2f:53
 0xffe2:54
 0xffe3:29 0xffeb:125 0xffe9:56 0x20:57 0xffea:100 0xffec:126 0xff67:127 0xffe4:97
 0xff63:110 0xff50:102 0xff55:104 0xffff:111 0xff57:107 0xff56:109
 0xff52:103 0xff51:105 0xff54:108 0xff53:106
 0xff7f:69 0xffaf:98 0xffaa:55 0xffad:74 0xffb7:71 0xffb8:72 0xffb9:73 0xffab:78
 0xffb4:75 0xffb5:76 0xffb6:77 0xffb1:79 0xffb2:80 0xffb3:81 0xff8d:96 0xffb0:82 0xffae:83
 0xff95:71 0xff97:72 0xff9a:73 0xff96:75 0xff9d:76 0xff98:77 0xff9c:79 0xff99:80 0xff9b:81
 0xff9e:82 0xff9f:83"
# Typed with the user's Shift held, as clients send them.
shifted="0x41:30 0x42:48 0x43:46 0x44:32 0x45:18 0x46:33 0x47:34 0x48:35 0x49:23 0x4a:36
 0x4b:37 0x4c:38 0x4d:50 0x4e:49 0x4f:24 0x50:25 0x51:16 0x52:19 0x53:31 0x54:20 0x55:22
 0x56:47 0x57:17 0x58:45 0x59:21 0x5a:44
 0x7e:41 0x21:2 0x40:3 0x23:4 0x24:5 0x25:6 0x5e:7 0x26:8 0x2a:9 0x28:10 0x29:11 0x5f:12
 0x2b:13 0x7b:26 0x7d:27 0x7c:43 0x3a:39 0x22:40 0x3c:51 0x3e:52 0x3f:53"
keys="" want=""
for k in $plain; do
  keys+="${k%:*}," want+="${k#*:}:1 ${k#*:}:0 "
done
for k in $shifted; do
  keys+="+0xffe1,${k%:*},-0xffe1," want+="42:1 ${k#*:}:1 ${k#*:}:0 42:0 "
done
keys=${keys%,}
# Then by scancode (QEMU key numbers): A, Right Ctrl (E0 1D), Up (E0 48),
# and F12, which ends the guest's reader.
scancodes="0x1e/0x61,0x9d/0xffe4,0xc8/0xff52,0x58/0xffc9"
want+="30:1 30:0 97:1 97:0 103:1 103:0 88:1 88:0 "

display=19
port=$((5900 + display))
NB_LOG=$NB_WORK/keys.log
timeout -k 5 500 "$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$NB_WORK/keys.cpio.gz" \
  --append "console=ttyS0 nestbox.modules=virtio_input,evdev panic=-1 quiet" \
  --memory 256M --serial "file:$NB_LOG" --vnc "127.0.0.1:$display" \
  > "$NB_WORK/keys.stderr" 2>&1 &
vm=$!
for _ in $(seq 800); do
  grep -aq -E "EVENTS-READY|NESTBOX-TEST-EXIT" "$NB_LOG" 2>/dev/null && break
  kill -0 $vm 2>/dev/null || break
  sleep 0.5
done
nb_expect "the guest has the virtio keyboard" "^INPUT-DEV .* Nestbox Keyboard"

# A client that watches the LEDs while the keys are typed: Caps and Num
# Lock on is 4 + 2 in QEMU's LED byte.
"$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --expect-leds 6 --timeout 200 > "$NB_WORK/leds.log" 2>&1 &
leds=$!
"$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --keys "$keys" > "$NB_WORK/client.log" 2>&1
echo "keysym client: exit $?" >> "$NB_WORK/client.log"
"$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --scancode-keys "$scancodes" --timeout 60 \
  > "$NB_WORK/scancodes.log" 2>&1
scancode_status=$?
# Without them, F12 as a keysym still ends the guest's reader.
[ $scancode_status = 0 ] || "$NESTBOX_VNC_CLIENT" "127.0.0.1:$port" --keys 0xffc9 > /dev/null 2>&1
wait $vm
NB_STATUS=$?
wait $leds
leds_status=$?
nb_expect_status "keys guest: poweroff" 0

got=$(grep -a '^KEY ' "$NB_LOG" | tr -d '\r' | awk '{ printf "%s:%s ", $2, $3 }')
NB_CHECKS=$((NB_CHECKS + 1))
if [ "$got" = "$want" ]; then
  nb_pass "every key of a US keyboard typed over VNC arrives with its Linux key code ($(echo "$plain $shifted" | wc -w) keys)"
else
  nb_fail "key codes differ (client: $(cat "$NB_WORK/client.log"))"
  diff <(echo "$want" | tr ' ' '\n') <(echo "$got" | tr ' ' '\n') | head -n 20 | sed 's/^/    | /'
fi
NB_CHECKS=$((NB_CHECKS + 1))
if [ $scancode_status = 0 ] && grep -q EXT-KEYS-CONFIRMED "$NB_WORK/scancodes.log"; then
  nb_pass "keys sent by scancode (QEMU extended key events) are confirmed and arrive"
else
  nb_fail "scancode keys: exit $scancode_status: $(cat "$NB_WORK/scancodes.log")"
fi
nb_expect "the guest's keyboard handler switched Caps and Num Lock on (Linux LED bits 2 + 1)" \
  "^GUEST-LEDS 3 Nestbox Keyboard"
NB_CHECKS=$((NB_CHECKS + 1))
if [ $leds_status = 0 ] && grep -q "^LEDS 6" "$NB_WORK/leds.log"; then
  nb_pass "a VNC client is told the guest's LEDs ($(grep '^LEDS' "$NB_WORK/leds.log" | tr '\n' ' '))"
else
  nb_fail "LED state: exit $leds_status: $(cat "$NB_WORK/leds.log")"
fi
nb_finish
