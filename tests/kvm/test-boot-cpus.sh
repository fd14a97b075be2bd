#!/bin/bash
# The Debian kernel boots with 1, 2, 4 and 8 vCPUs, finds each through ACPI,
# and its poweroff ends nestbox-vm with status 0. Its timer is the local
# APIC's TSC deadline (KVM emulates one; Nestbox's CPUID must say so).
source "$(dirname "$0")/lib.sh"

initrd=$(nb_initrd cpus 'echo "CPUS online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc)"
echo "TIMER $(cat /sys/devices/system/clockevents/clockevent0/current_device)"')
for n in ${NB_CPU_COUNTS:-1 2 4 8}; do
  nb_boot "cpus-$n" 240 "$initrd" --cpus "$n" --memory 256M
  nb_expect_status "$n vCPUs: poweroff" 0
  nb_expect "$n vCPUs: nproc" "^NESTBOX-GUEST nproc=$n "
  nb_expect "$n vCPUs: all online" "^CPUS online=0(-$((n - 1)))? nproc=$n"
  nb_expect "$n vCPUs: TSC-deadline timer" "^TIMER lapic-deadline"
done
nb_finish
