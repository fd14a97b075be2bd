#!/bin/bash
# Installs dependencies, builds Nestbox and runs it.
#   ./run.sh                      boots the demo guest (a Debian kernel with a
#                                 busybox shell) on the serial console
#   ./run.sh NESTBOX-VM-OPTIONS   runs nestbox-vm with those options
set -euo pipefail
cd "$(dirname "$0")"

build-aux/install-deps.sh run
if [ ! -f build/build.ninja ]; then
  meson setup build >/dev/null
fi
# Quiet when it works; the compiler's messages when it does not.
if ! ninja -C build > build/run-build.log 2>&1; then
  cat build/run-build.log >&2
  echo "run.sh: the build failed (log above, also in build/run-build.log)" >&2
  exit 1
fi

if [ $# -gt 0 ]; then
  exec build/app/nestbox-vm "$@"
fi

tests/images/build-guest-image.sh build/guest
# A /dev/kvm without the CPU's virtualization extensions (software-only KVM
# such as PVM) does not get the demo's kernel through its decompression in
# any useful time; say so and where it does run, instead of sitting silent.
if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
  echo "run.sh: this CPU shows no hardware virtualization (vmx or svm), so the demo guest" >&2
  echo "will not boot here at a usable speed. The KVM sandbox runs it instead, not" >&2
  echo "interactively: 'meson test -C build kvm-demo --verbose' boots it, types a command" >&2
  echo "on its console and shows the answer (see README.md, Set-up)." >&2
  exit 1
fi
echo "Booting the demo guest. Type 'poweroff -f' in the guest shell to stop it."
exec build/app/nestbox-vm --kernel build/guest/vmlinuz --initrd build/guest/demo.cpio.gz \
  --append "console=ttyS0 quiet nestbox.demo=1" --cpus 2 --memory 512M
