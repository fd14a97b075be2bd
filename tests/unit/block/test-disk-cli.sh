#!/bin/bash
# nestboxctl disk as a user runs it: every command, its exit codes, its JSON,
# and what qemu-img says about the results.
# Usage: test-disk-cli.sh PATH/TO/nestboxctl
set -u
ctl=$(realpath "$1")
command -v qemu-img >/dev/null || { echo "qemu-img is missing: install qemu-utils"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
fails=0
n=0

expect() {  # expect RC DESCRIPTION -- COMMAND...
  local want=$1 what=$2; shift 3
  n=$((n + 1))
  "$@" >out.txt 2>err.txt
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "not ok $n - $what: exit $rc, expected $want"; sed 's/^/#   /' out.txt err.txt
    fails=$((fails + 1))
  else
    echo "ok $n - $what"
  fi
}

check() {  # check DESCRIPTION COMMAND... (a shell test)
  local what=$1; shift
  n=$((n + 1))
  if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; fails=$((fails + 1)); fi
}

expect 0 "create qcow2 20G" -- "$ctl" disk create base.qcow2 20G
check "qemu-img sees 20G qcow2" bash -c "qemu-img info --output=json base.qcow2 | grep -q '\"virtual-size\": 21474836480'"
expect 0 "create raw 1M" -- "$ctl" disk create --format raw disk.raw 1M
check "raw file has the size" test "$(stat -c %s disk.raw)" = 1048576
expect 1 "create refuses to overwrite" -- "$ctl" disk create base.qcow2 1G
check "the message names the file" grep -q "base.qcow2" err.txt
expect 2 "create without size" -- "$ctl" disk create x.qcow2
expect 2 "bad size" -- "$ctl" disk create x.qcow2 12Q
expect 2 "bad format" -- "$ctl" disk create --format vhdx x.img 1G
expect 2 "unknown command" -- "$ctl" disk frobnicate
expect 2 "unknown option" -- "$ctl" disk info --bogus base.qcow2
expect 0 "help" -- "$ctl" disk --help
expect 0 "overlay on a backing file" -- "$ctl" disk create --backing base.qcow2 top.qcow2
expect 0 "info --json" -- "$ctl" disk info --json top.qcow2
check "json has backing file and size" bash -c "grep -q '\"backing-filename\": \"base.qcow2\"' out.txt && grep -q '\"virtual-size\": 21474836480' out.txt"
check "json parses" python3 -c "import json; d = json.load(open('out.txt')); assert d['backing-image']['format'] == 'qcow2'"
check "qemu-img agrees on the backing file" bash -c "qemu-img info top.qcow2 | grep -q 'backing file: base.qcow2'"
expect 0 "info text" -- "$ctl" disk info top.qcow2
check "text names the chain" bash -c "grep -q 'image: top.qcow2' out.txt && grep -q 'backing file: base.qcow2' out.txt"
expect 1 "info on a missing file" -- "$ctl" disk info missing.qcow2
check "missing file is named" grep -q "missing.qcow2" err.txt

qemu-io -c 'write -P 0x61 0 1M' top.qcow2 >/dev/null
expect 0 "snapshot create" -- "$ctl" disk snapshot create top.qcow2 before
qemu-io -c 'write -P 0x62 0 1M' top.qcow2 >/dev/null
expect 0 "snapshot list" -- "$ctl" disk snapshot list top.qcow2
check "list names it" grep -q before out.txt
check "qemu-img lists it" bash -c "qemu-img snapshot -l top.qcow2 | grep -q before"
expect 1 "duplicate snapshot" -- "$ctl" disk snapshot create top.qcow2 before
expect 0 "snapshot apply" -- "$ctl" disk snapshot apply top.qcow2 before
check "applied content is back" bash -c "qemu-io -c 'read -P 0x61 0 1M' top.qcow2 | grep -q 'read 1048576'"
expect 0 "snapshot delete" -- "$ctl" disk snapshot delete top.qcow2 before
expect 1 "delete missing snapshot" -- "$ctl" disk snapshot delete top.qcow2 before
expect 2 "snapshot without action" -- "$ctl" disk snapshot top.qcow2
expect 0 "check clean" -- "$ctl" disk check top.qcow2
check "qemu-img check clean" qemu-img check -q top.qcow2
expect 0 "check --json" -- "$ctl" disk check --json top.qcow2
check "check json parses" python3 -c "import json; d = json.load(open('out.txt')); assert d['corruptions'] == 0 and d['leaks'] == 0 and d['allocated-clusters'] == 16"

expect 0 "resize grow" -- "$ctl" disk resize top.qcow2 +1G
check "qemu-img sees 21G" bash -c "qemu-img info --output=json top.qcow2 | grep -q '\"virtual-size\": 22548578304'"
expect 1 "resize shrink refused" -- "$ctl" disk resize top.qcow2 1G
check "shrink message says why" grep -q "shrink" err.txt
expect 0 "resize raw" -- "$ctl" disk resize disk.raw 2M

# Import a VDI and a VMDK, and flatten the chain.
qemu-img create -q -f raw src.raw 8M
qemu-io -f raw -c 'write -P 0x5a 1M 2M' src.raw >/dev/null
qemu-img convert -f raw -O vdi src.raw src.vdi
qemu-img convert -f raw -O vmdk src.raw src.vmdk
expect 0 "convert vdi to qcow2" -- "$ctl" disk convert src.vdi from-vdi.qcow2
check "vdi import identical" qemu-img compare -q src.raw from-vdi.qcow2
expect 0 "convert vmdk to raw" -- "$ctl" disk convert -O raw src.vmdk from-vmdk.raw
check "vmdk import identical" qemu-img compare -q -f raw -F raw src.raw from-vmdk.raw
expect 0 "flatten overlay" -- "$ctl" disk convert --cluster-size 4K top.qcow2 flat.qcow2
check "flattened identical" qemu-img compare -q top.qcow2 flat.qcow2
check "flattened has no backing" bash -c "! qemu-img info flat.qcow2 | grep -q backing"
expect 1 "convert refuses existing destination" -- "$ctl" disk convert src.vdi from-vdi.qcow2
expect 2 "convert to vdi refused" -- "$ctl" disk convert -O vdi src.raw x.vdi

# Locking: a disk open for writing elsewhere is refused with a clear message.
# qemu-io takes its lock bytes in steps while it opens the image, so wait
# until the kernel's lock table (/proc/locks) shows it holding byte 101
# ("I use the write permission"), the one a writer has to see. qemu-io has
# been seen, rarely, not to take the lock at all; start it again then (up
# to three times), keeping what it said.
holds_write_lock() { # file
  awk -v ino=":$(stat -c %i "$1")" '$2 == "OFDLCK" && substr($6, length($6) - length(ino) + 1) == ino &&
    $7 <= 101 && $8 >= 101 { found = 1 } END { exit !found }' /proc/locks
}
for attempt in 1 2 3; do
  env -u MALLOC_PERTURB_ qemu-io -c 'sleep 600000' top.qcow2 >qemu-io.log 2>&1 &
  qpid=$!
  locked=no
  for _ in $(seq 100); do
    if holds_write_lock top.qcow2; then locked=yes; break; fi
    sleep 0.1
  done
  [ $locked = yes ] && break
  echo "# qemu-io did not lock top.qcow2 (attempt $attempt): $(cat qemu-io.log)"
  kill $qpid 2>/dev/null || true
  wait $qpid 2>/dev/null
done
before=$fails
expect 1 "locked by qemu" -- "$ctl" disk resize top.qcow2 +1G
if [ $fails -ne $before ]; then
  # What a refusal that did not happen needs explained: was qemu-io still
  # there, and which lock bytes did it hold?
  echo "# qemu-io $(kill -0 $qpid 2>/dev/null && echo running || echo gone); lock table for top.qcow2:"
  grep ":$(stat -c %i top.qcow2) " /proc/locks | sed 's/^/#   /'
fi
check "lock message names the file" grep -q "top.qcow2 is in use" err.txt
expect 0 "info --no-lock while in use" -- "$ctl" disk info --no-lock top.qcow2
kill $qpid 2>/dev/null || true
wait $qpid 2>/dev/null

# A broken image: refused at open, with the problem named, file unchanged.
cp base.qcow2 bad.qcow2
printf '\x00\x00\x00\x07' | dd of=bad.qcow2 bs=1 seek=96 conv=notrunc 2>/dev/null
sum=$(sha256sum bad.qcow2)
expect 1 "bad refcount order" -- "$ctl" disk check bad.qcow2
check "message names the problem" grep -q "refcount order 7" err.txt
check "bad image untouched" test "$sum" = "$(sha256sum bad.qcow2)"

echo "1..$n"
[ $fails -eq 0 ]
