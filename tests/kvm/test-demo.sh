#!/bin/bash
# The demo guest that ./run.sh boots: the same kernel, initrd, command line,
# CPUs and memory, with its serial console on nestbox-vm's stdin and stdout.
# Once the shell's prompt shows, a command is typed on the console; its
# answer must come back, then 'poweroff -f' must stop the machine (status 0).
source "$(dirname "$0")/lib.sh"

demo=$NESTBOX_GUEST_DIR/demo.cpio.gz
if [ ! -f "$demo" ]; then
  echo "FAIL: no demo initrd at $demo (tests/images/build-guest-image.sh builds it)"
  exit 1
fi

in=$NB_WORK/console.in
mkfifo "$in"
NB_LOG=$NB_WORK/demo.log
# Keep the fifo open for writing from here, so nestbox-vm's stdin does not
# see end of input between the commands typed below.
exec 3<>"$in"
timeout -k 5 420 "$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$demo" \
  --append "console=ttyS0 quiet nestbox.demo=1" --cpus 2 --memory 512M \
  < "$in" > "$NB_LOG" 2> "$NB_WORK/demo.stderr" &
pid=$!

# wait_for PATTERN SECONDS: the console shows a line matching PATTERN.
wait_for() {
  local i
  for i in $(seq $(($2 * 5))); do
    grep -aqE "$1" "$NB_LOG" && return 0
    kill -0 $pid 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

NB_CHECKS=$((NB_CHECKS + 1))
if wait_for "poweroff -f' powers the machine off" 400 && wait_for '^/ # ' 60; then
  nb_pass "the demo shell's prompt is on the serial console"
else
  nb_fail "no demo shell prompt"
fi
# The answer is computed by the guest's shell, so the text typed (which the
# guest echoes) cannot match it by itself.
printf 'echo DEMO-ANSWER-$((6 * 7)) $(uname -r)\n' >&3
NB_CHECKS=$((NB_CHECKS + 1))
if wait_for "^DEMO-ANSWER-42 [0-9]" 60; then
  nb_pass "the shell answers a command typed on the console"
else
  nb_fail "the shell did not answer"
fi
printf 'poweroff -f\n' >&3
wait $pid
NB_STATUS=$?
exec 3>&-
nb_expect_status "'poweroff -f' stops the demo machine" 0
# The transcript, so that 'meson test kvm-demo --verbose' shows the demo.
echo "    the demo's serial console:"
tr -d '\r' < "$NB_LOG" | sed 's/\x1b\[6n//g; s/^/    | /'
if [ "$NB_FAILURES" -gt 0 ]; then
  echo "    nestbox-vm said:"
  sed 's/^/    | /' "$NB_WORK/demo.stderr"
fi
nb_finish
