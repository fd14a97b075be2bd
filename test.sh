#!/bin/bash
# Installs dependencies, builds Nestbox (plain, ASan+UBSan, fuzzers) and runs
# every test tier: unit, sanitizers, network namespaces, real guests on KVM
# (through the KVM sandbox when /dev/kvm is missing) and a short fuzz run.
# The last line printed is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

build-aux/install-deps.sh test || { echo "installing dependencies failed"; echo "0 passed, 1 failed"; exit 1; }

setup() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

status=0
logs=()

build() {
  local dir=$1; shift
  if ! setup "$dir" -Dwerror=true "$@" || ! ninja -C "$dir"; then
    echo "build in $dir failed"
    status=1
    return 1
  fi
}

# The sanitizer and fuzz builds share the plain build's guest images.
guest=$PWD/build/guest
build build
build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dguest_dir="$guest"
CC=clang build build-fuzz -Dfuzzing=true -Db_lundef=false -Dguest_dir="$guest"

# Guest images from Debian's packages, cached in the build tree.
if ! tests/images/build-guest-image.sh "$guest"; then
  echo "building the test guest image failed"
  status=1
fi

run_tests() {
  local dir=$1; shift
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@"
  logs+=("$dir/meson-logs/testlog.json")
}

run_tests build --no-suite fuzz || status=1
run_tests build-asan --suite unit || status=1
run_tests build-fuzz --suite fuzz || status=1

python3 build-aux/count-results.py "${logs[@]}"
count_status=$?
if [ $status -ne 0 ] || [ $count_status -ne 0 ]; then
  exit 1
fi
