#!/bin/bash
# Installs what building and testing Nestbox needs on Debian 12.
# Usage: build-aux/install-deps.sh [run|test]
set -euo pipefail

mode=${1:-test}

# Building and running.
run_packages=(
  build-essential meson ninja-build pkg-config
  libglib2.0-dev libglib2.0-bin
  busybox-static cpio kmod file
  zlib1g-dev
  libvncserver-dev libsdl2-dev libx11-dev
  seabios
)
# The test tiers: the KVM sandbox, real peers, sanitizers and fuzzing.
test_packages=(
  qemu-system-x86 qemu-utils acpica-tools
  clang lld libclang-rt-14-dev
  e2fsprogs iproute2 iperf3 slirp4netns python3 python3-scapy
  xvfb x11vnc x11-utils x11-xserver-utils xdotool imagemagick
  x11-xkb-utils
  gvncviewer novnc chromium
  bash-completion groff-base
  fio
  grub-pc-bin grub-common xorriso mtools
  debian-installer-12-netboot-amd64
)

packages=("${run_packages[@]}")
if [ "$mode" = test ]; then
  packages+=("${test_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
fi
echo "Installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
