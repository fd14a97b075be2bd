#!/bin/bash
# VNC display benchmark: nestbox-vm --vnc against QEMU's own VNC server
# (-M q35 -device bochs-display -vnc), same kernel, initrd, guest workload
# and client, in one run (inside the KVM sandbox where the host lacks
# hardware KVM).
#
#   flock /work/sandbox.lock tests/bench/display/bench-vnc.sh [SECONDS]
#
# from the source tree after a build (NESTBOX_BUILD, default build/;
# NESTBOX_GUEST_DIR, default BUILD/guest). Each VMM boots once; the guest
# (guest-vncload.c, Linux's bochs DRM driver and /dev/fb0) runs each
# workload for SECONDS (default 8): "scroll" (a full-screen text console
# scrolling a line per frame, 10 frames/s) and "window" (a 480x320 window
# dragged across a desktop, 25 frames/s), first with no client, then with
# vnc-bench-client asking for Tight, ZRLE and Raw in turn. Printed: each
# phase's bytes on the wire, frames shown, delay from the guest's write to
# the client's update, VMM CPU per frame; then Nestbox/QEMU ratios. Raw
# results (one JSON object per phase) and the consoles are kept in
# BUILD/bench-vnc/. WORKLOADS="scroll:10" ENCODINGS="none,tight" VMMS=...
# narrow a run. See tests/bench/display/RESULTS.md for the method.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
seconds=${1:-8}
build=${NESTBOX_BUILD:-$root/build}
build=$(cd "$build" && pwd)
guest=${NESTBOX_GUEST_DIR:-$build/guest}
out=$build/bench-vnc

if [ -z "${NESTBOX_IN_SANDBOX:-}" ]; then
  ninja -C "$build" app/nestbox-vm tests/remote/vnc-bench-client >/dev/null || exit 1
  mkdir -p "$out"
  rm -f "$out"/*.console "$out"/*.stderr "$out"/results.jsonl
  # The guest's workload, built here like the display test's guest helper.
  gcc -static -O2 -o "$out/guest-vncload" "$here/guest-vncload.c" || exit 1
  printf '#!/bin/sh\nexec /test/guest-vncload /dev/ttyS0\n' > "$out/vncload.sh"
  "$root/tests/images/make-test-initrd.sh" "$guest/guest.cpio.gz" "$out/vncload.sh" \
    "$out/vncload.cpio.gz" "$out/guest-vncload" || exit 1
  if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
    cd "$build" && exec "$root/tests/sandbox/nb-sandbox" --memory 2G --timeout 900 -- "$here/$(basename "$0")" "$@"
  fi
fi

command -v qemu-system-x86_64 >/dev/null || { echo "bench-vnc: needs qemu-system-x86_64" >&2; exit 1; }
python=$(command -v /usr/bin/python3 || command -v python3)
exec "$python" "$here/bench-vnc.py" --nestbox "$build/app/nestbox-vm" \
  --client "$build/tests/remote/vnc-bench-client" --kernel "$guest/vmlinuz" \
  --initrd "$out/vncload.cpio.gz" --out "$out" --seconds "$seconds" \
  --workloads "${WORKLOADS:-scroll:10,window:25}" --encodings "${ENCODINGS:-none,tight,zrle,raw}" \
  --vmms "${VMMS:-nestbox,qemu}"
