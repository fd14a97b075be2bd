#!/bin/bash
# The Debian kernel boots with 1, 2, 4 and 8 vCPUs, finds each through ACPI,
# and its poweroff ends nestbox-vm with status 0.
source "$(dirname "$0")/lib.sh"

initrd=$(nb_initrd cpus 'echo "CPUS online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc)"')
for n in ${NB_CPU_COUNTS:-1 2 4 8}; do
  nb_boot "cpus-$n" 240 "$initrd" --cpus "$n" --memory 256M
  nb_expect_status "$n vCPUs: poweroff" 0
  nb_expect "$n vCPUs: nproc" "^NESTBOX-GUEST nproc=$n "
  nb_expect "$n vCPUs: all online" "^CPUS online=0(-$((n - 1)))? nproc=$n"
done
nb_finish
