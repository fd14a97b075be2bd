#!/bin/bash
# Tests of nb-sandbox, run by meson (suite kvm):
#   test-sandbox.sh direct KVM-PROBE    the command runs on the host's /dev/kvm,
#                                       its output and exit status come back
#   test-sandbox.sh forced KVM-PROBE    the same inside the sandbox (QEMU TCG with
#                                       nested SVM), plus a write into the
#                                       writable share and a non-zero status
#   test-sandbox.sh timeout             a sandbox that cannot finish in time is
#                                       stopped and reported with status 124
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sandbox=$here/nb-sandbox
mode=${1:?usage: test-sandbox.sh direct|forced|timeout [KVM-PROBE]}
probe=${2:-}
[ -n "$probe" ] && probe=$(realpath "$probe")

failed=0
check() { # DESCRIPTION CONDITION...
  local what=$1; shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAILED: $what"
    failed=1
  fi
}

guest_dir=${NESTBOX_GUEST_DIR:-$PWD/guest}
need_guest() {
  # Quick when test.sh has already built it.
  if ! "$here/../images/build-guest-image.sh" "$guest_dir"; then
    echo "FAILED: cannot build the sandbox kernel into $guest_dir" \
         "(tests/images/build-guest-image.sh $guest_dir)"
    exit 1
  fi
  export NESTBOX_GUEST_DIR=$guest_dir
}

work=$(mktemp -d "$PWD/sandbox-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

case "$mode" in
direct)
  if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    echo "SKIP: no usable /dev/kvm on this machine (missing, or no permission);" \
         "sandbox-forced covers the sandbox"
    exit 77
  fi
  out=$("$sandbox" --direct --timeout 60 -- "$probe" 2>&1)
  status=$?
  echo "$out"
  check "kvm-probe passes directly" [ $status -eq 0 ]
  check "its output comes back" grep -q 'KVM ran guest code' <<<"$out"
  "$sandbox" --direct -- sh -c 'exit 7'
  status=$?
  check "the command's exit status is nb-sandbox's (7, got $status)" [ $status -eq 7 ]
  ;;
forced)
  need_guest
  # One boot checks everything: KVM works inside, the caller's directory is
  # the command's and is writable, the environment arrives, and stdout and
  # the exit status come back.
  cd "$work"
  export NB_SANDBOX_TEST_VALUE="two words"
  start=$(date +%s)
  # The probe's folder is shared too: a build tree under /tmp would
  # otherwise be hidden by the sandbox's own /tmp.
  out=$("$sandbox" --force --timeout 300 --share "$(dirname "$probe")" -- bash -c '
      "$1"; probe=$?
      echo "probe-status=$probe"
      echo "value=$NB_SANDBOX_TEST_VALUE in-sandbox=${NESTBOX_IN_SANDBOX:-no}"
      echo written > "$PWD/from-sandbox"
      touch /tmp/tmp-is-writable && echo tmp-ok
      [ -c /dev/kvm ] && echo kvm-node-ok
      exit 42' probe-script "$probe" 2>&1)
  status=$?
  echo "$out"
  echo "sandbox round trip: $(( $(date +%s) - start )) s"
  check "kvm-probe passes inside the sandbox" grep -q '^probe-status=0$' <<<"$out"
  check "kvm-probe's output comes back" grep -q 'KVM ran guest code' <<<"$out"
  check "the environment arrives" grep -q '^value=two words in-sandbox=1$' <<<"$out"
  check "/tmp is writable inside" grep -q '^tmp-ok$' <<<"$out"
  check "/dev/kvm exists inside" grep -q '^kvm-node-ok$' <<<"$out"
  check "the working directory is shared writable" \
    grep -qx written "$work/from-sandbox"
  check "the command's exit status is nb-sandbox's (42, got $status)" [ $status -eq 42 ]
  ;;
timeout)
  need_guest
  start=$(date +%s)
  out=$("$sandbox" --force --timeout 2 -- sleep 1000 2>&1)
  status=$?
  elapsed=$(( $(date +%s) - start ))
  echo "$out"
  check "a timeout gives status 124 (got $status)" [ $status -eq 124 ]
  check "a timeout is reported" grep -q 'timed out after 2s' <<<"$out"
  check "the sandbox stops promptly (${elapsed}s)" [ $elapsed -lt 30 ]
  ;;
*)
  echo "test-sandbox.sh: unknown mode $mode" >&2
  exit 2
  ;;
esac
exit $failed
