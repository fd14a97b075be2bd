#!/bin/bash
# The VNC path's added delay, natively (no guest, no sandbox, no KVM):
# bench-vnc-delay serves a framebuffer drawn by the display benchmark's guest
# workload code and measures, with vnc-bench-client on the same clock, the
# delay from each frame's write to the client's decoded update.
#
#   tests/bench/display/bench-vnc-delay.sh [SECONDS] [bench-vnc-delay options]
#
# from the source tree after a build (NESTBOX_BUILD, default build/).
# SECONDS per phase, default 8. Options after it go to the program, for
# example --no-dirty-log, --workloads window:25, --encodings tight.
# It runs niced; it does not use the KVM sandbox, so it takes no lock.
# See tests/bench/display/RESULTS.md ("Added delay, natively").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=${NESTBOX_BUILD:-$root/build}
seconds=${1:-8}
shift || true
ninja -C "$build" tests/remote/bench-vnc-delay tests/remote/vnc-bench-client >/dev/null
exec nice "$build/tests/remote/bench-vnc-delay" --client "$build/tests/remote/vnc-bench-client" \
  --seconds "$seconds" "$@"
