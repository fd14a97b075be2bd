#!/bin/bash
# Memory sizes below, at and across the PCI hole reach the guest: MemTotal is
# the size less what the kernel keeps for itself (its image, reserved areas).
source "$(dirname "$0")/lib.sh"

initrd=$(nb_initrd memory 'grep MemTotal /proc/meminfo; cat /proc/iomem | grep "System RAM"')
for size_mb in ${NB_MEMORY_SIZES_MB:-128 1024 3072 5120}; do
  nb_boot "mem-$size_mb" 240 "$initrd" --memory "${size_mb}M"
  nb_expect_status "${size_mb}M: poweroff" 0
  kb=$(sed -n 's/^NESTBOX-GUEST .*memtotal_kb=\([0-9]*\).*/\1/p' "$NB_LOG" | head -1)
  NB_CHECKS=$((NB_CHECKS + 1))
  want=$((size_mb * 1024))
  # MemTotal leaves out the kernel's image and what it reserves, mostly its
  # page array (about 1.6% of RAM): allow 4% plus 64 MiB. A lost region (the
  # part above 4 GiB is 1 GiB or more) would be far more.
  slack=$((want / 25 + 64 * 1024))
  if [ -n "$kb" ] && [ "$kb" -le "$want" ] && [ "$kb" -ge $((want - slack)) ]; then
    nb_pass "${size_mb}M: MemTotal ${kb} kB"
  else
    nb_fail "${size_mb}M: MemTotal '${kb}' kB, expected $((want - slack)) to $want kB"
  fi
  if [ "$size_mb" -gt 3072 ]; then
    nb_expect "${size_mb}M: RAM above 4 GiB" "^ *100000000-.* : System RAM"
  fi
done

# Guest RAM takes the host's transparent huge pages (2 MiB pages in KVM's
# tables for the guest), read from nestbox-vm's smaps while the guest runs:
# its RAM is the one mapping that asked for them (VmFlags "hg").
initrd=$(nb_initrd thp 'echo NESTBOX-THP-READY; sleep 6')
nb_boot thp 240 "$initrd" --memory 256M &
boot=$!
vm=""
for _ in $(seq 1200); do
  grep -q NESTBOX-THP-READY "$NB_WORK/thp.log" 2>/dev/null && break
  kill -0 $boot 2>/dev/null || break
  sleep 0.1
done
for t in $(pgrep -P $boot); do vm=$(pgrep -P "$t" -x nestbox-vm) && break; done
huge=""
[ -n "$vm" ] && huge=$(awk '/^AnonHugePages:/ { h = $2 } /^VmFlags:/ && / hg( |$)/ { sum += h; n++ }
                           END { if (n == 1) print sum }' "/proc/$vm/smaps" 2>/dev/null)
wait $boot
NB_CHECKS=$((NB_CHECKS + 1))
if grep -q '\[never\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null ||
   [ ! -e /sys/kernel/mm/transparent_hugepage/enabled ]; then
  nb_pass "huge pages: this host has transparent huge pages off, not checked"
elif [ -n "$huge" ] && [ "$huge" -gt 0 ]; then
  nb_pass "huge pages: ${huge} kB of guest RAM in 2 MiB pages"
else
  nb_fail "huge pages: guest RAM has '${huge}' kB in huge pages (nestbox-vm pid '${vm}'), expected some"
fi
nb_finish
