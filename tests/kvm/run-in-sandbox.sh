#!/bin/bash
# Runs one real-guest test in the KVM sandbox: run-in-sandbox.sh MEMORY SECONDS TEST.
# The nested sandbox (QEMU's software SVM running kvm_amd) has been seen to stall
# as a whole once, with the guest test's own timeouts unable to fire inside it.
# A stalled sandbox is retried once, saying so loudly, so that an emulator stall
# does not fail the run; a test that fails, or a second stall, fails.
memory=$1 seconds=$2 test=$3
sandbox=$(dirname "$0")/../sandbox/nb-sandbox
"$sandbox" --memory "$memory" --timeout "$seconds" -- "$test"
status=$?
if [ $status -eq 124 ]; then
  echo "run-in-sandbox: THE SANDBOX STALLED (no result in ${seconds}s); retrying $(basename "$test") once"
  "$sandbox" --memory "$memory" --timeout "$seconds" -- "$test"
  status=$?
fi
exit $status
