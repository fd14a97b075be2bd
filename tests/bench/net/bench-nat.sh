#!/bin/bash
# NAT throughput: the Nestbox engine (through nb-nat-tap) against
# slirp4netns (libslirp), in the same set-up: a network namespace whose TAP
# device is the guest, iperf3 from the namespace to a server on the host's
# loopback reached through the gateway 10.0.2.2, both directions, MTU 1500
# and 65520. Prints the median of RUNS runs, the ratio to slirp4netns, and
# the CPU the engine process used per Gbit/s.
#
# Usage (as root): tests/bench/net/bench-nat.sh BUILD_DIR [RUNS] [SECONDS]
# MTUS="65520" DIRS="down" limit a run to some rows (default: all).
set -u
build=${1:?usage: bench-nat.sh BUILD_DIR [RUNS] [SECONDS]}
runs=${2:-3}
secs=${3:-3}
tool=$build/tests/net/nb-nat-tap
for t in iperf3 slirp4netns ip python3; do
  command -v $t >/dev/null || { echo "$t is not installed"; exit 1; }
done
[ -x "$tool" ] || { echo "$tool is missing: build first"; exit 1; }

port=$((10000 + RANDOM % 20000))
iperf3 -s -B 127.0.0.1 -p $port > /dev/null 2>&1 &
server=$!
ns_base=nbbench$$
declare -A engine_pid
cleanup() {
  for p in "${engine_pid[@]}"; do kill $p 2>/dev/null; done
  kill $server 2>/dev/null
  for e in slirp4netns nestbox nestbox-offload; do ip netns del $ns_base-$e 2>/dev/null; done
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }

# start ENGINE MTU: a fresh namespace with the engine attached.
start() {
  local engine=$1 mtu=$2 ns=$ns_base-$1
  ip netns add $ns
  ip netns exec $ns ip link set lo up
  case $engine in
    slirp4netns)
      slirp4netns --configure --mtu=$mtu --netns-type=path /var/run/netns/$ns tap0 > /dev/null 2>&1 &
      engine_pid[$engine]=$!
      for _ in $(seq 50); do ip netns exec $ns ip -4 addr show tap0 2>/dev/null | grep -q inet && break; sleep 0.1; done
      ;;
    nestbox*)
      local extra=
      [ $engine = nestbox-offload ] && extra=--offload
      "$tool" --tap tap0 --netns $ns --net "nat,mtu=$mtu" $extra < /dev/null > /dev/null 2>&1 &
      engine_pid[$engine]=$!
      sleep 0.3
      ip netns exec $ns ip link set tap0 mtu $mtu up
      ip netns exec $ns ip addr add 10.0.2.15/24 dev tap0
      ip netns exec $ns ip route add default via 10.0.2.2
      ;;
  esac
}

stop() {
  kill ${engine_pid[$1]} 2>/dev/null
  wait ${engine_pid[$1]} 2>/dev/null
  unset "engine_pid[$1]"
  ip netns del $ns_base-$1
}

# run ENGINE DIRECTION: prints "Gbit/s cpu-ticks".
run() {
  local rev=
  [ $2 = down ] && rev=-R
  local pid=${engine_pid[$1]} before after json gbps
  before=$(cpu_ticks $pid)
  json=$(timeout $((secs + 15)) ip netns exec $ns_base-$1 iperf3 -c 10.0.2.2 -p $port -t $secs $rev -J 2>/dev/null)
  after=$(cpu_ticks $pid)
  gbps=$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print("%.3f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' <<< "$json" 2>/dev/null || echo 0)
  echo "$gbps $(( after - before ))"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The machines these run on are shared and noisy: the engines take turns,
# run by run, so a busy moment hurts each of them alike.
declare -A rates ticks result cpu
engines=(slirp4netns nestbox nestbox-offload)
for mtu in ${MTUS:-1500 65520}; do
  for engine in "${engines[@]}"; do start $engine $mtu; done
  for _ in $(seq $runs); do
    for dir in ${DIRS:-up down}; do
      for engine in "${engines[@]}"; do
        read -r g t < <(run $engine $dir)
        rates[$engine,$mtu,$dir]+="$g "
        ticks[$engine,$mtu,$dir]=$(( ${ticks[$engine,$mtu,$dir]:-0} + t ))
      done
    done
  done
  for engine in "${engines[@]}"; do
    stop $engine
    for dir in ${DIRS:-up down}; do
      r=${rates[$engine,$mtu,$dir]}
      result[$engine,$mtu,$dir]=$(printf '%s\n' $r | median)
      # CPU of the engine process, in cores, per Gbit/s of the runs' mean rate.
      cpu[$engine,$mtu,$dir]=$(python3 -c "import sys; r=[float(x) for x in sys.argv[1:]]; m=sum(r)/len(r); c=${ticks[$engine,$mtu,$dir]}/$hz/($runs*$secs); print('%.2f' % (c/m) if m else 'n/a')" $r)
      echo "# $engine mtu=$mtu $dir: runs $r Gbit/s, median ${result[$engine,$mtu,$dir]}" >&2
    done
  done
done

echo "| MTU | direction | slirp4netns Gbit/s | Nestbox Gbit/s | ratio | Nestbox + csum offload Gbit/s | ratio | CPU cores per Gbit/s (slirp / Nestbox / offload) |"
echo "|---|---|---|---|---|---|---|---|"
for mtu in ${MTUS:-1500 65520}; do
  for dir in ${DIRS:-up down}; do
    s=${result[slirp4netns,$mtu,$dir]}
    n=${result[nestbox,$mtu,$dir]}
    o=${result[nestbox-offload,$mtu,$dir]}
    ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2fx' % (a/b) if b else 'n/a')" "$1" "$2"; }
    label=$([ $dir = up ] && echo "guest to host" || echo "host to guest")
    echo "| $mtu | $label | $s | $n | $(ratio $n $s) | $o | $(ratio $o $s) | ${cpu[slirp4netns,$mtu,$dir]} / ${cpu[nestbox,$mtu,$dir]} / ${cpu[nestbox-offload,$mtu,$dir]} |"
  done
done
