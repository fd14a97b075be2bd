#!/bin/bash
# Reboot restarts the machine (or ends it with --no-reboot), a triple fault is
# named as one, a kernel panic is reported as one, and SIGTERM stops the
# machine cleanly.
source "$(dirname "$0")/lib.sh"

reboot=$(nb_initrd reboot 'echo REBOOTING; reboot -f')

nb_boot no-reboot 240 "$reboot" --no-reboot
nb_expect_status "guest reboot with --no-reboot" 0
nb_expect "guest asked to reboot" "^REBOOTING"
NB_CHECKS=$((NB_CHECKS + 1))
if grep -q "triple fault" "$NB_WORK/no-reboot.stderr"; then
  nb_fail "a reboot the guest asked for is reported as a triple fault: $(cat "$NB_WORK/no-reboot.stderr")"
else
  nb_pass "a reboot the guest asked for is not called a triple fault"
fi

# Linux's reboot=t resets by a triple fault: the VMM names it and where the
# vCPU was.
NB_APPEND="console=ttyS0 reboot=t" nb_boot triple 240 "$reboot" --no-reboot
nb_expect_status "guest reset by a triple fault with --no-reboot" 0
NB_CHECKS=$((NB_CHECKS + 1))
if grep -qE "the machine reset: a triple fault (\(vCPU 0: RIP=.*\)|on vCPU 0 \(KVM reset its registers .*\)); not restarting \(--no-reboot\)" \
     "$NB_WORK/triple.stderr"; then
  nb_pass "the triple fault is reported, with the vCPU registers where KVM keeps them"
else
  nb_fail "no triple-fault message: $(cat "$NB_WORK/triple.stderr")"
fi

# Without --no-reboot the machine comes back: wait for the second boot, then
# stop it with SIGTERM.
NB_LOG="$NB_WORK/reboot.log"
"$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$reboot" \
  --append "console=ttyS0 nestbox.modules=none panic=-1 quiet" --serial "file:$NB_LOG" > "$NB_WORK/reboot.stderr" 2>&1 &
pid=$!
for _ in $(seq 480); do
  n=$(grep -ac '^NESTBOX-INIT-REACHED' "$NB_LOG" 2>/dev/null)
  [ "${n:-0}" -ge 2 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
boots=$(grep -ac '^NESTBOX-INIT-REACHED' "$NB_LOG")
NB_CHECKS=$((NB_CHECKS + 1))
if [ "$boots" -ge 2 ]; then nb_pass "reboot boots the guest again ($boots boots)"; else nb_fail "only $boots boot(s) after reboot"; fi
kill -TERM $pid 2>/dev/null
wait $pid
NB_STATUS=$?
nb_expect_status "SIGTERM stops the machine" 0
NB_CHECKS=$((NB_CHECKS + 1))
if grep -q "stopped: terminated (SIGTERM)" "$NB_WORK/reboot.stderr"; then nb_pass "SIGTERM reported"; else nb_fail "no SIGTERM message"; cat "$NB_WORK/reboot.stderr"; fi

panic=$(nb_initrd panic 'echo PANICKING; echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger')
NB_MODULES=pvpanic_pci nb_boot panic 240 "$panic"
nb_expect_status "guest kernel panic" 3
NB_CHECKS=$((NB_CHECKS + 1))
if grep -q "the guest kernel panicked" "$NB_WORK/panic.stderr"; then nb_pass "panic reported"; else nb_fail "no panic message"; cat "$NB_WORK/panic.stderr"; fi
nb_finish
