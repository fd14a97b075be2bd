#!/bin/bash
# Runs one real-guest test in the KVM sandbox: run-in-sandbox.sh MEMORY SECONDS TEST.
# nb-sandbox retries a sandbox that stalls as a whole once, saying so.
memory=$1 seconds=$2 test=$3
exec "$(dirname "$0")/../sandbox/nb-sandbox" --memory "$memory" --timeout "$seconds" -- "$test"
