#!/bin/bash
# A machine made with nestboxctl runs with nestbox-vm --machine: its serial
# console goes to the machine's log, poweroff ends it with 0, a second start
# while it runs is refused, and nestboxctl list shows it running meanwhile.
source "$(dirname "$0")/lib.sh"
: "${NESTBOX_CTL:?NESTBOX_CTL must point at nestboxctl}"
export XDG_DATA_HOME=$NB_WORK/data

initrd=$(nb_initrd machine 'echo MACHINE-GUEST-UP; sleep 15')
"$NESTBOX_CTL" create demo --preset linux-small --kernel "$NESTBOX_GUEST_DIR/vmlinuz" \
  --initrd "$initrd" --cmdline "console=ttyS0 nestbox.modules=none panic=-1 quiet" > /dev/null
dir=$XDG_DATA_HOME/nestbox/machines/demo
NB_LOG=$dir/serial.log

"$NESTBOX_VM" --machine demo > "$NB_WORK/machine.stderr" 2>&1 &
pid=$!
for _ in $(seq 480); do
  grep -q MACHINE-GUEST-UP "$NB_LOG" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
nb_expect "the guest's console goes to the machine's serial.log" "^MACHINE-GUEST-UP"

NB_CHECKS=$((NB_CHECKS + 1))
if "$NESTBOX_CTL" list | grep -qE '^demo +running'; then nb_pass "nestboxctl list shows it running"
else nb_fail "nestboxctl list: $("$NESTBOX_CTL" list 2>&1)"; fi

NB_CHECKS=$((NB_CHECKS + 1))
out=$("$NESTBOX_VM" --machine demo 2>&1)
status=$?
if [ $status -eq 2 ] && grep -q "running" <<<"$out"; then nb_pass "a second start is refused: $out"
else nb_fail "second start: status $status: $out"; fi

wait $pid
NB_STATUS=$?
nb_expect_status "the machine powers off" 0
NB_CHECKS=$((NB_CHECKS + 1))
if "$NESTBOX_CTL" list | grep -qE '^demo +stopped'; then nb_pass "and shows as stopped"
else nb_fail "after poweroff: $("$NESTBOX_CTL" list 2>&1)"; fi
nb_finish
