#!/bin/bash
# Namespace tests of the NAT engine: a network namespace with a TAP device
# plays the guest, nb-nat-tap runs the engine on the host side, and stock
# tools (busybox udhcpc, ping, nslookup, wget, httpd, iperf3) do what a
# guest's user would do.
#
# Usage: test-nat-netns.sh PATH/TO/nb-nat-tap TEST
# TEST: dhcp ping dns http noloopback hostfwd udp tcp-many iperf3 ipv6 hostfwd6; a TEST
# with the suffix -offload runs with the TAP's checksum and TSO offloads on,
# as a virtio-net guest negotiates them.
set -u
tool=$1
name=$2
tool_opts=()
case "$name" in
  *-offload) name=${name%-offload}; tool_opts=(--offload) ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
peer="python3 $here/nat-peer.py"

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -f "$work/nat.log" ] && sed 's/^/  nat: /' "$work/nat.log"; exit 1; }
ok() { echo "ok - $*"; }

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"
[ -c /dev/net/tun ] || skip "/dev/net/tun is missing"
for t in ip busybox python3; do
  command -v $t >/dev/null || skip "$t is not installed"
done

work=$(mktemp -d /tmp/nb-nat-test.XXXXXX)
ns=nbnat-$name-$$
tap=nbt$$
pids=()
cleanup() {
  exec 3>&- 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  # ip netns exec forks: what it started lives on in the namespace.
  local left
  left=$(ip netns pids "$ns" 2>/dev/null)
  [ -n "$left" ] && kill $left 2>/dev/null
  wait 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns" || skip "cannot create a network namespace"
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
# Below the ephemeral range (32768 and up), where connections pick theirs.
port() { echo $((10000 + RANDOM % 20000)); }

# Waits until FILE has a line "ready" (a helper has bound its socket).
wait_ready() {
  for _ in $(seq 100); do
    grep -q '^ready' "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "$2 did not start: $(cat "$1")"
}

# start_nat OPTIONS: the engine, with the resolvers of $work/resolv.conf.
start_nat() {
  [ -f "$work/resolv.conf" ] || echo "nameserver 127.0.0.2" > "$work/resolv.conf"
  mkfifo "$work/ctl"
  "$tool" "${tool_opts[@]}" --tap "$tap" --netns "$ns" --net "nat,resolv-conf=$work/resolv.conf${1:+,$1}" \
    < "$work/ctl" > "$work/nat.log" 2>&1 &
  pids+=($!)
  nat_pid=$!
  exec 3> "$work/ctl"
  wait_ready "$work/nat.log" nb-nat-tap
  in_ns ip link set "$tap" up
}

# nat_cmd LINE: a command on the engine's control input; waits for its answer.
nat_cmd() {
  local before
  before=$(wc -l < "$work/nat.log")
  echo "$1" >&3
  for _ in $(seq 50); do
    [ "$(wc -l < "$work/nat.log")" -gt "$before" ] && break
    sleep 0.05
  done
  tail -n 1 "$work/nat.log"
}

# stop_nat: the engine must exit cleanly on SIGTERM and print its counters.
stop_nat() {
  kill -TERM "$nat_pid"
  wait "$nat_pid"
  local rc=$?
  [ $rc -eq 0 ] || fail "nb-nat-tap exited with status $rc"
  grep '^stats' "$work/nat.log" | tail -n 1
}

dhcp() {
  export LEASE_FILE=$work/lease.env
  rm -f "$LEASE_FILE"
  in_ns busybox udhcpc -i "$tap" -n -q -f -t 5 -T 1 -s "$here/udhcpc-script.sh" \
    -O search -O mtu -O hostname -O domain > "$work/udhcpc.log" 2>&1 \
    || fail "udhcpc got no lease: $(cat "$work/udhcpc.log")"
  [ -f "$LEASE_FILE" ] || fail "udhcpc did not run its script"
}

lease_is() {
  grep -qx "$1" "$work/lease.env" || fail "lease: expected $1, got: $(tr '\n' ' ' < "$work/lease.env")"
}

t_dhcp() {
  in_ns ip link set "$tap" address 52:54:00:ab:cd:ef 2>/dev/null
  start_nat "net=192.168.77.0/24,lease-time=3600,mtu=1400,hostname=guest1,domainname=example.test,dnssearch=a.example.test,dnssearch=b.example.test,lease=52:54:00:ab:cd:ef@192.168.77.50"
  in_ns ip link set "$tap" address 52:54:00:ab:cd:ef
  dhcp
  lease_is ip=192.168.77.50
  lease_is router=192.168.77.2
  lease_is dns=192.168.77.3
  lease_is serverid=192.168.77.2
  lease_is subnet=255.255.255.0
  lease_is lease=3600
  lease_is mtu=1400
  lease_is hostname=guest1
  lease_is domain=example.test
  lease_is "search=a.example.test b.example.test"
  ok "static lease with router, DNS, lease time, MTU, host name, domain and search list"

  # Another MAC address gets the first pool address.
  in_ns ip link set "$tap" address 52:54:00:00:00:01
  dhcp
  lease_is ip=192.168.77.15
  ok "pool lease for another MAC address"
  stop_nat
}

t_ping() {
  start_nat ""
  dhcp
  lease_is ip=10.0.2.15
  in_ns busybox ping -c 3 -W 2 10.0.2.2 > "$work/ping.log" || fail "ping gateway: $(cat "$work/ping.log")"
  ok "ping the gateway"
  in_ns busybox ping -c 1 -W 2 -s 3000 10.0.2.3 > "$work/ping.log" || fail "ping DNS: $(cat "$work/ping.log")"
  ok "ping the DNS address with a fragmented 3000-byte echo"
  local hostip
  hostip=$(ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -n 1)
  if [ -n "$hostip" ]; then
    in_ns busybox ping -c 2 -W 2 "$hostip" > "$work/ping.log" || fail "ping $hostip: $(cat "$work/ping.log")"
    ok "ping the host's address $hostip through a host ICMP socket"
  fi
  stop_nat
}

t_dns() {
  $peer dns-server 127.0.0.2 nestbox.test=192.0.2.77 > "$work/dns1.log" 2>&1 &
  pids+=($!)
  wait_ready "$work/dns1.log" "DNS server on 127.0.0.2"
  echo "nameserver 127.0.0.2" > "$work/resolv.conf"
  start_nat ""
  dhcp
  in_ns busybox nslookup nestbox.test 10.0.2.3 > "$work/ns.log" 2>&1
  grep -q 192.0.2.77 "$work/ns.log" || fail "nslookup through 10.0.2.3: $(cat "$work/ns.log")"
  ok "nslookup through the DNS forwarder"

  # The host's resolvers change: the engine follows resolv.conf.
  $peer dns-server 127.0.0.3 nestbox.test=192.0.2.88 > "$work/dns2.log" 2>&1 &
  pids+=($!)
  wait_ready "$work/dns2.log" "DNS server on 127.0.0.3"
  echo "nameserver 127.0.0.3" > "$work/resolv.conf.new"
  mv "$work/resolv.conf.new" "$work/resolv.conf"
  sleep 1.2
  in_ns busybox nslookup nestbox.test 10.0.2.3 > "$work/ns.log" 2>&1
  grep -q 192.0.2.88 "$work/ns.log" || fail "nslookup after resolv.conf changed: $(cat "$work/ns.log")"
  ok "resolv.conf re-read when it changes"
  stop_nat
}

t_http() {
  mkdir -p "$work/www"
  head -c 5000000 /dev/urandom > "$work/www/file.bin"
  local p
  p=$(port)
  busybox httpd -f -p 127.0.0.1:$p -h "$work/www" &
  pids+=($!)
  start_nat ""
  dhcp
  sleep 0.2
  local want got
  want=$(sha256sum < "$work/www/file.bin")
  got=$(in_ns timeout 10 busybox wget -q -O - "http://10.0.2.2:$p/file.bin" | sha256sum)
  [ "$want" = "$got" ] || fail "download from the host's loopback: SHA-256 differs"
  ok "wget 5 MB from the host's loopback through the gateway, SHA-256 matches"
  stop_nat
}

t_noloopback() {
  local p
  p=$(port)
  busybox httpd -f -p 127.0.0.1:$p -h "$work" &
  pids+=($!)
  start_nat "loopback=off"
  dhcp
  if in_ns timeout 3 busybox wget -q -O /dev/null "http://10.0.2.2:$p/"; then
    fail "loopback=off still reaches the host's loopback"
  fi
  ok "loopback=off keeps the guest away from the host's loopback"
  stop_nat
}

t_hostfwd() {
  mkdir -p "$work/www"
  head -c 2000000 /dev/urandom > "$work/www/file.bin"
  local p1 p2 want got
  p1=$(port)
  p2=$(port)
  start_nat "hostfwd=tcp:127.0.0.1:$p1-:80"
  dhcp
  in_ns busybox httpd -f -p 80 -h "$work/www" &
  pids+=($!)
  sleep 0.3
  want=$(sha256sum < "$work/www/file.bin")
  got=$(timeout 10 busybox wget -q -O - "http://127.0.0.1:$p1/file.bin" | sha256sum)
  [ "$want" = "$got" ] || fail "download through the port forward: SHA-256 differs"
  ok "a server in the guest answers through hostfwd tcp:127.0.0.1:$p1-:80"

  [ "$(nat_cmd "add tcp:127.0.0.1:$p2-:80")" = ok ] || fail "adding a port forward at run time"
  got=$(timeout 10 busybox wget -q -O - "http://127.0.0.1:$p2/file.bin" | sha256sum)
  [ "$want" = "$got" ] || fail "download through the port forward added at run time"
  ok "port forward added while running"
  [ "$(nat_cmd "remove tcp 127.0.0.1 $p2")" = ok ] || fail "removing a port forward at run time"
  if timeout 3 busybox wget -q -O /dev/null "http://127.0.0.1:$p2/file.bin" 2>/dev/null; then
    fail "the removed port forward still answers"
  fi
  ok "port forward removed while running"
  case "$(nat_cmd "add tcp:127.0.0.1:$p1-:80")" in
    error:*exists*) ok "a duplicate port forward is refused with a clear error" ;;
    *) fail "a duplicate port forward was not refused" ;;
  esac
  stop_nat
}

t_udp() {
  local u1 u2
  u1=$(port)
  u2=$(port)
  $peer udp-echo 127.0.0.1 $u1 > "$work/echo.log" 2>&1 &
  pids+=($!)
  wait_ready "$work/echo.log" "UDP echo server"
  start_nat "hostfwd=udp:127.0.0.1:$u2-:7777"
  dhcp
  in_ns $peer udp-ask 10.0.2.2 $u1 1000 || fail "UDP from the guest to the host"
  in_ns $peer udp-ask 10.0.2.2 $u1 6000 || fail "large UDP from the guest to the host (fragments)"
  ok "UDP guest to host, 1000 and 6000 bytes (fragmented both ways)"
  in_ns $peer udp-echo 0.0.0.0 7777 > "$work/echo2.log" 2>&1 &
  pids+=($!)
  wait_ready "$work/echo2.log" "UDP echo server in the guest"
  $peer udp-ask 127.0.0.1 $u2 1200 || fail "UDP from the host into the guest through a port forward"
  ok "UDP host to guest through hostfwd udp:127.0.0.1:$u2-:7777"
  stop_nat
}

t_tcp_many() {
  local t
  t=$(port)
  ulimit -n 8192
  $peer tcp-echo-server 127.0.0.1 $t > "$work/echo.log" 2>&1 &
  pids+=($!)
  wait_ready "$work/echo.log" "TCP echo server"
  start_nat ""
  dhcp
  in_ns $peer tcp-many 10.0.2.2 $t 1000 || fail "1000 concurrent TCP connections"
  ok "1000 concurrent TCP connections, each echoed"
  stop_nat
}

iperf_rate() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["end"]["sum_received"]["bits_per_second"]/1e6))' "$1"
}

t_iperf3() {
  command -v iperf3 >/dev/null || skip "iperf3 is not installed"
  local p up down
  p=$(port)
  iperf3 -s -B 127.0.0.1 -p $p > "$work/iperf-server.log" 2>&1 &
  pids+=($!)
  start_nat ""
  dhcp
  sleep 0.3
  in_ns iperf3 -c 10.0.2.2 -p $p -t 2 -J > "$work/up.json" || fail "iperf3 guest to host"
  in_ns iperf3 -c 10.0.2.2 -p $p -t 2 -R -J > "$work/down.json" || fail "iperf3 host to guest: $(cat "$work/down.json")"
  up=$(iperf_rate "$work/up.json") || fail "iperf3 guest to host: $(cat "$work/up.json")"
  down=$(iperf_rate "$work/down.json") || fail "iperf3 host to guest: $(cat "$work/down.json")"
  [ "$up" -ge 50 ] || fail "iperf3 guest to host: only $up Mbit/s"
  [ "$down" -ge 50 ] || fail "iperf3 host to guest: only $down Mbit/s"
  ok "iperf3 guest to host $up Mbit/s, host to guest $down Mbit/s"
  stop_nat
}

# IPv6: the kernel in the namespace configures itself from the engine's
# router advertisement (SLAAC), then pings, resolves and downloads over IPv6.
# IPv6 on in the namespace: new interfaces take it, as a host (not a router)
# that accepts advertisements and makes its own addresses. (/proc/sys/net is
# the namespace's own under ip netns exec.)
ns_ipv6_on() {
  [ -d /proc/sys/net/ipv6 ] || skip "the kernel has no IPv6"
  in_ns sh -c 'c=/proc/sys/net/ipv6/conf
    echo 0 > $c/all/disable_ipv6 && echo 0 > $c/default/disable_ipv6 &&
    echo 0 > $c/all/forwarding && echo 1 > $c/default/accept_ra &&
    echo 1 > $c/default/autoconf' || skip "cannot turn IPv6 on in the namespace"
}

# slaac_addr: waits for the TAP's global address from the advertisement;
# sets addr.
slaac_addr() {
  addr=""
  for _ in $(seq 150); do
    addr=$(in_ns ip -6 -o addr show dev "$tap" scope global -tentative | awk '{print $4}' | cut -d/ -f1 | head -n 1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || fail "no address from the router advertisement: $(in_ns ip -6 addr show dev "$tap")"
}

# Port forwards listening on the host's ::1: to the guest's IPv4 address
# (the default) and to its SLAAC address, added and removed at run time.
t_hostfwd6() {
  ip -6 addr show dev lo | grep -q '::1/128' || skip "the host has no IPv6 loopback"
  mkdir -p "$work/www"
  head -c 2000000 /dev/urandom > "$work/www/file.bin"
  local p1 p2 p3 p4 addr want got
  p1=$(port)
  p2=$(port)
  p3=$(port)
  p4=$(port)
  ns_ipv6_on
  start_nat "hostfwd=tcp:[::1]:$p1-:80"
  dhcp
  slaac_addr
  in_ns busybox httpd -f -p 80 -h "$work/www" &
  pids+=($!)
  sleep 0.3
  want=$(sha256sum < "$work/www/file.bin")
  got=$(timeout 10 busybox wget -q -O - "http://[::1]:$p1/file.bin" | sha256sum)
  [ "$want" = "$got" ] || fail "download through hostfwd tcp:[::1]:$p1-:80: SHA-256 differs"
  if timeout 3 busybox wget -q -O /dev/null "http://127.0.0.1:$p1/file.bin" 2>/dev/null; then
    fail "a forward on [::1] also answers on 127.0.0.1"
  fi
  ok "a server in the guest answers [::1]:$p1 through hostfwd tcp:[::1]:$p1-:80 (to 10.0.2.15), SHA-256 matches"

  # Who the guest's server sees, and where: over IPv4 the host's ::1 is
  # the gateway 10.0.2.2, over IPv6 it is fd00:10:0:2::2.
  in_ns $peer tcp-whoami 8081 > "$work/whoami.log" 2>&1 &
  pids+=($!)
  wait_ready "$work/whoami.log" "the guest's whoami server"
  [ "$(nat_cmd "add tcp:[::1]:$p3-:8081")" = ok ] || fail "adding tcp:[::1]:$p3-:8081 at run time"
  got=$($peer tcp-read ::1 "$p3") || fail "no answer through tcp:[::1]:$p3-:8081"
  [ "$got" = "10.0.2.2 at 10.0.2.15" ] || fail "through tcp:[::1]:$p3-:8081 the guest saw: $got"
  ok "a connection to [::1]:$p3 arrives at the guest's 10.0.2.15:8081 from 10.0.2.2"
  [ "$(nat_cmd "add tcp:[::1]:$p2-[$addr]:80")" = ok ] || fail "adding tcp:[::1]:$p2-[$addr]:80 at run time"
  [ "$(nat_cmd "add tcp:[::1]:$p4-[$addr]:8081")" = ok ] || fail "adding tcp:[::1]:$p4-[$addr]:8081 at run time"
  got=$(timeout 10 busybox wget -q -O - "http://[::1]:$p2/file.bin" | sha256sum)
  [ "$want" = "$got" ] || fail "download through the forward to the guest's IPv6 address $addr"
  got=$($peer tcp-read ::1 "$p4") || fail "no answer through tcp:[::1]:$p4-[$addr]:8081"
  [ "$got" = "fd00:10:0:2::2 at $addr" ] || fail "through tcp:[::1]:$p4-[$addr]:8081 the guest saw: $got"
  ok "forwards to the guest's SLAAC address $addr added while running: download SHA-256 matches, the guest sees fd00:10:0:2::2"
  [ "$(nat_cmd "remove tcp:[::1]:$p2")" = ok ] || fail "removing tcp:[::1]:$p2 at run time"
  if timeout 3 busybox wget -q -O /dev/null "http://[::1]:$p2/file.bin" 2>/dev/null; then
    fail "the removed IPv6 port forward still answers"
  fi
  ok "IPv6 port forward removed while running"
  case "$(nat_cmd "add tcp:[::1]:$p1-:80")" in
    error:*exists*) ok "a duplicate IPv6 port forward is refused with a clear error" ;;
    *) fail "a duplicate IPv6 port forward was not refused" ;;
  esac
  case "$(nat_cmd "add tcp:[::1]:$p2-[fd00:99::1]:80")" in
    error:*"IPv6 address the guest cannot have"*) ok "a forward to an IPv6 address outside net6 is refused" ;;
    *) fail "a forward to an address outside net6 was not refused" ;;
  esac
  stop_nat
}

t_ipv6() {
  mkdir -p "$work/www"
  head -c 3000000 /dev/urandom > "$work/www/file.bin"
  local p addr want got
  p=$(port)
  python3 -m http.server --bind ::1 --directory "$work/www" "$p" > "$work/httpd.log" 2>&1 &
  pids+=($!)
  $peer dns-server ::1 nestbox.test=2001:db8::77 > "$work/dns.log" 2>&1 &
  pids+=($!)
  wait_ready "$work/dns.log" "DNS server on ::1"
  echo "nameserver ::1" > "$work/resolv.conf"
  # New interfaces in the namespace take these: IPv6 on, as a host (not a
  # router) that accepts advertisements and makes its own addresses.
  # (/proc/sys/net is the namespace's own under ip netns exec.)
  [ -d /proc/sys/net/ipv6 ] || skip "the kernel has no IPv6"
  in_ns sh -c 'c=/proc/sys/net/ipv6/conf
    echo 0 > $c/all/disable_ipv6 && echo 0 > $c/default/disable_ipv6 &&
    echo 0 > $c/all/forwarding && echo 1 > $c/default/accept_ra &&
    echo 1 > $c/default/autoconf' || skip "cannot turn IPv6 on in the namespace"
  start_nat "mtu=1400"
  addr=""
  for _ in $(seq 150); do
    addr=$(in_ns ip -6 -o addr show dev "$tap" scope global -tentative | awk '{print $4}' | cut -d/ -f1 | head -n 1)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || fail "no address from the router advertisement: $(in_ns ip -6 addr show dev "$tap")"
  case "$addr" in
    fd00:10:0:2:*) ;;
    *) fail "SLAAC address $addr is not in fd00:10:0:2::/64" ;;
  esac
  in_ns ip -6 route show default | grep -q "via fe80::2 dev $tap" \
    || fail "no default route via fe80::2: $(in_ns ip -6 route show)"
  [ "$(in_ns cat "/proc/sys/net/ipv6/conf/$tap/mtu")" = 1400 ] \
    || fail "the advertised MTU was not taken: $(in_ns cat "/proc/sys/net/ipv6/conf/$tap/mtu")"
  ok "SLAAC address $addr in fd00:10:0:2::/64, default route via fe80::2, MTU 1400"
  in_ns $peer ra-dump "$tap" > "$work/ra.log" 2>&1 || fail "router solicitation: $(cat "$work/ra.log")"
  grep -qx "rdnss fd00:10:0:2::3" "$work/ra.log" || fail "no RDNSS option: $(cat "$work/ra.log")"
  grep -qx "prefix fd00:10:0:2::/64 flags 0xc0" "$work/ra.log" || fail "prefix option: $(cat "$work/ra.log")"
  ok "a solicited advertisement names fd00:10:0:2::3 as DNS server (RDNSS)"

  in_ns busybox ping -6 -c 3 -W 2 fd00:10:0:2::2 > "$work/ping.log" || fail "ping -6 the gateway: $(cat "$work/ping.log")"
  in_ns busybox ping -6 -c 1 -W 2 "fe80::2%$tap" > "$work/ping.log" || fail "ping -6 fe80::2: $(cat "$work/ping.log")"
  ok "ping -6 the gateway at fd00:10:0:2::2 and fe80::2"
  local hostip6
  hostip6=$(ip -6 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | grep -v '^fd00:10:0:2:' | head -n 1)
  if [ -n "$hostip6" ]; then
    in_ns busybox ping -6 -c 2 -W 2 "$hostip6" > "$work/ping.log" || fail "ping -6 $hostip6: $(cat "$work/ping.log")"
    ok "ping -6 the host's address $hostip6 through a host ICMPv6 socket"
  fi

  in_ns busybox nslookup -type=AAAA nestbox.test fd00:10:0:2::3 > "$work/ns.log" 2>&1
  grep -q 2001:db8::77 "$work/ns.log" || fail "nslookup through fd00:10:0:2::3: $(cat "$work/ns.log")"
  ok "nslookup through the IPv6 DNS address, forwarded to the host's resolver on ::1"

  want=$(sha256sum < "$work/www/file.bin")
  got=""
  for _ in $(seq 20); do
    got=$(in_ns timeout 10 busybox wget -q -O - "http://[fd00:10:0:2::2]:$p/file.bin" | sha256sum)
    [ "$want" = "$got" ] && break
    sleep 0.2 # the HTTP server may still be starting
  done
  [ "$want" = "$got" ] || fail "download from the host's ::1 over IPv6: SHA-256 differs ($(cat "$work/httpd.log"))"
  ok "wget 3 MB from the host's ::1 through [fd00:10:0:2::2], SHA-256 matches"
  stop_nat
  local stats
  stats=$(grep '^stats' "$work/nat.log" | tail -n 1)
  # A real stack's IPv6 (neighbor discovery, multicast listener reports with
  # hop-by-hop options) is all well formed: none of it may count as bad.
  for c in ip6 ndp icmp tcp udp frag; do
    echo "$stats" | grep -q " $c=0 " || fail "the kernel's IPv6 frames were counted as bad: $stats"
  done
  ok "no frame of the kernel's counted as bad ($stats)"
}

case "$name" in
  dhcp) t_dhcp ;;
  ping) t_ping ;;
  dns) t_dns ;;
  http) t_http ;;
  noloopback) t_noloopback ;;
  hostfwd) t_hostfwd ;;
  udp) t_udp ;;
  tcp-many) t_tcp_many ;;
  iperf3) t_iperf3 ;;
  ipv6) t_ipv6 ;;
  hostfwd6) t_hostfwd6 ;;
  *) echo "unknown test $name"; exit 2 ;;
esac
exit 0
