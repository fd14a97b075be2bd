#!/bin/sh
# Runs in the guest (as /test.sh of make-fio-initrd.sh's initramfs): fio on
# /dev/vda with O_DIRECT and libaio, ROUNDS rounds of four jobs, RUNTIME
# seconds each, from the kernel command line (fio.rounds=, fio.runtime=).
# Prints one line per job on the console:
#   FIO-RESULT JOB ROUND IOPS KIB_PER_S
# and FIO-FAILED JOB ROUND with fio's message when a job fails, then
#   FIO-IRQS JOB ROUND N
# the interrupts the disk's request queue took during the job.
arg() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" /proc/cmdline; }
rounds=$(arg fio.rounds); rounds=${rounds:-2}
runtime=$(arg fio.runtime); runtime=${runtime:-4}
fio() { /fio/lib/ld-linux-x86-64.so.2 --library-path /fio/lib /fio/fio "$@"; }
[ -b /dev/vda ] || { echo "FIO-FAILED no /dev/vda"; exit 1; }
fio --version | sed 's/^/FIO-VERSION /'
size=$(($(cat /sys/block/vda/size) * 512))
# fio.jobs=randwrite,seqwrite runs only those jobs (all four by default).
only=$(sed -n 's/.*fio\.jobs=\([a-z,]*\).*/\1/p' /proc/cmdline)
# The interrupts the virtio-blk request queue has taken, on all CPUs.
queue_irqs() {
  awk '/virtio[0-9]*-req/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i }
       END { print n + 0 }' /proc/interrupts
}
# fio.watch=1: every 5 s, requests in flight on vda and the interrupts the
# virtio-blk queue got, so a stalled run shows whether completions stopped.
if [ -n "$(arg fio.watch)" ]; then
  ( while sleep 5; do
      echo "FIO-WATCH inflight $(cat /sys/block/vda/inflight) irqs $(queue_irqs)"
    done ) &
fi
round=1
while [ $round -le "$rounds" ]; do
  # name rw bs iodepth
  for job in "randread randread 4k 32" "randwrite randwrite 4k 32" \
             "seqread read 1M 4" "seqwrite write 1M 4"; do
    set -- $job
    case ",${only:-$1}," in *",$1,"*) ;; *) continue ;; esac
    # Shows where a guest that dies mid-run got to.
    echo "FIO-START $1 $round"
    irqs=$(queue_irqs)
    if out=$(fio --name="$1" --filename=/dev/vda --rw="$2" --bs="$3" --iodepth="$4" \
               --ioengine=libaio --direct=1 --size="$size" --norandommap --randrepeat=0 \
               --time_based --runtime="$runtime" --ramp_time=1 \
               --output-format=terse --terse-version=3 2>&1); then
      # terse v3: read KiB/s and IOPS are fields 7 and 8, write's 48 and 49.
      echo "$out" | awk -F';' -v job="$1" -v round=$round '
        $1 == "3" { if ($8 > 0) print "FIO-RESULT", job, round, $8, $7;
                    else print "FIO-RESULT", job, round, $49, $48 }'
    else
      echo "FIO-FAILED $1 $round"
      echo "$out" | tail -5
    fi
    echo "FIO-IRQS $1 $round $(($(queue_irqs) - irqs))"
  done
  round=$((round + 1))
done
# The host's NB_FIO_STATS watcher reads its counters when it sees the last
# FIO-RESULT; the VM has to still be there then.
sleep 3
