#!/bin/bash
# A machine run by nestboxctl and controlled over its D-Bus socket, with a
# real guest: start --headless returns while the machine runs on; list shows
# it running; a second start is refused; pause stops the guest (the
# heartbeat it prints on its serial line every 0.2 s stops) and resume
# restarts it, with nestboxctl and with gdbus call; the serial console
# socket carries keys and output; shutdown presses the ACPI power button,
# which the guest sees as KEY_POWER on its "Power Button" input device before
# it powers off; poweroff stops it at once; a machine whose nestbox-vm is
# killed shows as crashed, with its log readable. With a NAT card added,
# port forwards on 127.0.0.1 and [::1] are added, used, listed and removed
# while the machine runs.
source "$(dirname "$0")/lib.sh"
: "${NESTBOX_CTL:?NESTBOX_CTL must point at nestboxctl}"
export XDG_DATA_HOME=$NB_WORK/data XDG_RUNTIME_DIR=$NB_WORK/run
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
C=$NESTBOX_CTL

button=$(find "$NESTBOX_GUEST_DIR/modules" -name button.ko | head -n 1)
[ -n "$button" ] || { echo "FAIL: no button.ko under $NESTBOX_GUEST_DIR/modules"; exit 1; }

# The guest: the ACPI button driver, a heartbeat, an echo of what it reads on
# the console, and a wait for one input event from the power button.
printf '#!/bin/sh\n%s\n' '
insmod /test/button.ko
mdev -s
dev=
for d in /sys/class/input/event*; do
  grep -q "Power Button" "$d/device/name" 2>/dev/null && dev=/dev/input/${d##*/}
done
[ -n "$dev" ] || { echo "NO-POWER-BUTTON-DEVICE"; ls /sys/class/input; exit 1; }
(i=0; while :; do echo "HEARTBEAT $i"; i=$((i + 1)); sleep 0.2; done) &
beat=$!
(while read -r line; do echo "GOT:$line"; done < /dev/console) &
if [ -e /sys/class/net/eth0 ]; then
  ip link set lo up; ip link set eth0 up
  ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
  ping -c 1 -W 5 10.0.2.2 > /dev/null  # the engine learns our MAC address
  mkdir -p /tmp/www; echo "nestbox-forwarded-$(cat /sys/class/net/eth0/address)" > /tmp/www/index.html
  httpd -p 80 -h /tmp/www && echo "GUEST-HTTPD-UP"
fi
echo "CONTROL-GUEST-UP $dev"
dd if="$dev" of=/tmp/event bs=24 count=1 2>/dev/null
kill $beat
echo "POWER-KEY-SEEN $(wc -c < /tmp/event) bytes"
' > "$NB_WORK/control.sh"
initrd=$NB_WORK/control.cpio.gz
"$NB_IMAGES_DIR/make-test-initrd.sh" "$NESTBOX_GUEST_DIR/guest.cpio.gz" "$NB_WORK/control.sh" "$initrd" "$button"

"$C" create ctl --preset linux-small --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$initrd" \
  --cmdline "console=ttyS0 nestbox.modules=evdev,virtio_net panic=-1 quiet" > /dev/null
dir=$XDG_DATA_HOME/nestbox/machines/ctl
NB_LOG=$dir/serial.log
sock=$XDG_RUNTIME_DIR/nestbox/ctl.sock

check() {  # check WHAT COMMAND...: passes if COMMAND succeeds
  local what=$1
  shift
  NB_CHECKS=$((NB_CHECKS + 1))
  if "$@"; then nb_pass "$what"; else nb_fail "$what"; fi
}

wait_for() {  # wait_for PATTERN SECONDS: the serial log gets a matching line
  local end=$((SECONDS + $2))
  while [ $SECONDS -lt $end ]; do
    grep -aqE "$1" "$NB_LOG" 2>/dev/null && return 0
    # A guest that ended, or a machine that stopped, will not print it.
    grep -aq '^NESTBOX-TEST-EXIT' "$NB_LOG" 2>/dev/null && return 1
    kill -0 "$PID" 2>/dev/null || { grep -aqE "$1" "$NB_LOG" 2>/dev/null; return; }
    sleep 0.5
  done
  return 1
}

beats() { grep -ac '^HEARTBEAT' "$NB_LOG"; }

start_machine() {  # start_machine: sets PID from start --json
  local out
  out=$("$C" start ctl --headless --json 2> "$NB_WORK/start.err")
  START_STATUS=$?
  PID=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' <<<"$out")
  echo "start: $out $(cat "$NB_WORK/start.err")"
}

dump() {
  echo "    serial log:"; tail -n 15 "$NB_LOG" | sed 's/^/    | /'
  echo "    machine log:"; "$C" log ctl --lines 15 | sed 's/^/    | /'
}

# 1. Start, and the things a running machine does -----------------------------
start_machine
check "start --headless returns 0 once the machine runs" [ "$START_STATUS" = 0 ]
check "nestboxctl has exited and the machine goes on running" kill -0 "$PID"
check "list shows it running" bash -c "'$C' list | grep -qE '^ctl +running'"
check "the control socket is mode 0600" [ "$(stat -c %a "$sock")" = 600 ]
out=$("$C" start ctl 2>&1); status=$?
check "a second start is refused ($out)" bash -c "[ $status = 1 ] && grep -q 'already running' <<<'$out'"

if ! wait_for '^CONTROL-GUEST-UP' 240; then nb_fail "the guest did not come up"; dump; nb_finish; fi
wait_for '^HEARTBEAT 3$' 60

"$C" pause ctl > /dev/null
check "state is paused" [ "$("$C" state ctl)" = paused ]
b1=$(beats); sleep 3; b2=$(beats)
check "paused: the heartbeat stops ($b1 then $b2 beats)" [ "$b1" = "$b2" ]
"$C" resume ctl > /dev/null
sleep 3; b3=$(beats)
check "resumed: the heartbeat goes on ($b2 then $b3 beats)" [ "$b3" -gt "$b2" ]

G=(gdbus call --address "unix:path=$sock" --dest org.nestbox.Machine1 --object-path /org/nestbox/Machine1)
"${G[@]}" --method org.nestbox.Machine1.Pause > /dev/null
state=$("${G[@]}" --method org.freedesktop.DBus.Properties.Get org.nestbox.Machine1 State)
check "gdbus call Pause pauses it ($state)" [ "$state" = "(<'paused'>,)" ]
b1=$(beats); sleep 2; b2=$(beats)
check "and the heartbeat stops ($b1 then $b2)" [ "$b1" = "$b2" ]
err=$("${G[@]}" --method org.nestbox.Machine1.Shutdown 2>&1)
check "the power button of a paused machine is refused ($err)" grep -q InvalidState <<<"$err"
err=$("${G[@]}" --method org.nestbox.Machine1.AddPortForward 0 2>&1)
check "wrong D-Bus arguments get a D-Bus error ($err)" grep -q InvalidArgs <<<"$err"
err=$("${G[@]}" --method org.nestbox.Machine1.AddPortForward 0 'tcp::2222-:22' 2>&1)
check "port forwards without a NAT card get a clear error ($err)" grep -q NoNat <<<"$err"
"${G[@]}" --method org.nestbox.Machine1.Resume > /dev/null
sleep 2; b3=$(beats)
check "gdbus call Resume restarts it ($b2 then $b3)" [ "$b3" -gt "$b2" ]

# Reset: the guest boots again, in the same process.
"$C" reset ctl > /dev/null
check "reset is accepted" [ $? = 0 ]
end=$((SECONDS + 240))
while [ $SECONDS -lt $end ] && kill -0 "$PID" 2>/dev/null; do
  [ "$(grep -ac '^CONTROL-GUEST-UP' "$NB_LOG")" -ge 2 ] && break
  sleep 0.5
done
check "reset boots the guest again" [ "$(grep -ac '^CONTROL-GUEST-UP' "$NB_LOG")" -ge 2 ]
check "in the same process, running" bash -c "kill -0 $PID && [ \"\$('$C' state ctl)\" = running ]"

# The serial console through its socket: keys in, output out, Ctrl-] leaves.
{ sleep 1; echo "console-hello-$$"; sleep 4; printf '\035'; } | "$C" console ctl > "$NB_WORK/console.out" 2> "$NB_WORK/console.err"
status=$?
check "console echoes through the guest" grep -aq "GOT:console-hello-$$" "$NB_WORK/console.out"
check "console detaches on Ctrl-] with 0 ($status)" bash -c "[ $status = 0 ] && grep -q detached '$NB_WORK/console.err'"

# One console client at a time: a second is refused, --force takes over.
{ sleep 8; } | "$C" console ctl > "$NB_WORK/console1.out" 2>&1 &
first=$!
sleep 2
out=$("$C" console ctl < /dev/null 2>&1); status=$?
check "a second console is refused ($out)" bash -c "[ $status = 1 ] && grep -q 'in use' <<<'$out'"
{ sleep 1; printf '\035'; } | "$C" console ctl --force > /dev/null 2>&1
check "console --force takes over" [ $? = 0 ]
wait $first
check "and the first client is told" grep -aq "took over" "$NB_WORK/console1.out"

out=$("$C" shutdown ctl --wait --timeout 120 2>&1)
status=$?
check "shutdown --wait presses the power button and returns once stopped ($out)" [ "$status" = 0 ]
wait_for '^NESTBOX-TEST-EXIT' 5
nb_expect "the guest saw the power key event" "^POWER-KEY-SEEN 24 bytes"
nb_expect "and powered off" "^NESTBOX-TEST-EXIT 0"
check "the machine is stopped" [ "$("$C" state ctl)" = stopped ]
check "its socket is gone" [ ! -e "$sock" ]
check "its process has exited" bash -c "! kill -0 $PID 2>/dev/null"

# 2. port forwards at run time, then poweroff ---------------------------------------
"$C" set ctl net:0.mode=nat > /dev/null
check "a NAT card is added to the stopped machine" [ $? = 0 ]
start_machine
wait_for '^CONTROL-GUEST-UP' 240
check "the guest's httpd is up on its NAT card" grep -aq '^GUEST-HTTPD-UP' "$NB_LOG"
port() { echo $((10000 + RANDOM % 20000)); }
fetch() { timeout 30 busybox wget -q -O - "$1" 2>/dev/null; }  # (busybox 1.35 wget -T crashes)
p4=$(port); p6=$(port)
for rule in "tcp:127.0.0.1:$p4-:80" "tcp:[::1]:$p6-:80"; do
  out=$("$C" forward ctl add "$rule" 2>&1)
  check "forward add $rule while running ($out)" [ $? = 0 ]
done
list=$("$C" forward ctl list)
check "forward list shows both ($(tr '\n' ' ' <<<"$list"))" \
  bash -c "grep -qF '127.0.0.1:$p4' <<<'$list' && grep -qF '[::1]:$p6' <<<'$list'"
check "the host reaches the guest's httpd through 127.0.0.1:$p4" \
  bash -c "$(declare -f fetch); fetch http://127.0.0.1:$p4/ | grep -q '^nestbox-forwarded-'"
check "and through [::1]:$p6" bash -c "$(declare -f fetch); fetch 'http://[::1]:$p6/' | grep -q '^nestbox-forwarded-'"
out=$("$C" forward ctl add "tcp:[::1]:$p6-:80" 2>&1); status=$?
check "the same forward again is refused ($out)" bash -c "[ $status = 1 ] && grep -q 'already exists' <<<'$out'"
out=$("$C" forward ctl remove "tcp:[::1]:$p6" 2>&1)
check "forward remove on [::1] ($out)" [ $? = 0 ]
check "and [::1]:$p6 no longer answers" bash -c "$(declare -f fetch); ! fetch 'http://[::1]:$p6/' > /dev/null"
check "while 127.0.0.1:$p4 still does" bash -c "$(declare -f fetch); fetch http://127.0.0.1:$p4/ | grep -q '^nestbox-forwarded-'"
out=$("$C" poweroff ctl 2>&1); status=$?
check "poweroff stops it at once ($out)" bash -c "[ $status = 0 ] && [ \"\$('$C' state ctl)\" = stopped ]"
check "without a power key event" bash -c "! grep -aq POWER-KEY-SEEN '$NB_LOG'"
out=$("$C" pause ctl 2>&1); status=$?
check "pause of a stopped machine fails with 1 ($out)" bash -c "[ $status = 1 ] && grep -q 'not running' <<<'$out'"

# 3. a killed nestbox-vm ------------------------------------------------------------
start_machine
wait_for '^CONTROL-GUEST-UP' 240
kill -KILL "$PID"
for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
check "a killed machine shows as crashed in list" bash -c "'$C' list | grep -qE '^ctl +crashed'"
check "and in state --json" [ "$("$C" state ctl --json)" = '{"name":"ctl","state":"crashed"}' ]
check "its log is readable" bash -c "'$C' log ctl | grep -q 'state running'"
out=$("$C" pause ctl 2>&1)
check "requests to it say it crashed ($out)" grep -q crashed <<<"$out"
start_machine
check "it can be started again" [ "$START_STATUS" = 0 ]
"$C" poweroff ctl > /dev/null
check "and is stopped cleanly" [ "$("$C" state ctl)" = stopped ]
[ "$NB_FAILURES" -gt 0 ] && dump
nb_finish
