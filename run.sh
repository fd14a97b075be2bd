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
ninja -C build >/dev/null

if [ $# -gt 0 ]; then
  exec build/app/nestbox-vm "$@"
fi

tests/images/build-guest-image.sh build/guest
echo "Booting the demo guest. Type 'poweroff -f' in the guest shell to stop it."
exec build/app/nestbox-vm --kernel build/guest/vmlinuz --initrd build/guest/demo.cpio.gz \
  --append "console=ttyS0 quiet nestbox.demo=1" --cpus 2 --memory 512M
