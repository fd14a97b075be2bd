#!/bin/bash
# virtio-net with the NAT engine, with a real guest kernel: busybox udhcpc
# gets its lease (10.0.2.15, router 10.0.2.2, DNS 10.0.2.3), the guest
# downloads a file from an HTTP server on the host's loopback through the
# gateway address and checks it, and serves busybox httpd, which the host
# fetches through a hostfwd port forward. Over IPv6, in the same boot: the
# guest kernel makes its SLAAC address from the engine's router
# advertisement, pings the gateway's fd00:10:0:2::2, resolves a name through
# the DNS address fd00:10:0:2::3 (forwarded to a DNS server on the host's
# ::1), downloads a file from an HTTP server on the host's ::1 through the
# gateway, and the host fetches from the guest's httpd through a forward
# listening on [::1]. A second machine has two NICs: one on a subnet and
# MAC address of its own, one with the defaults.
source "$(dirname "$0")/lib.sh"
export NB_MODULES=virtio_net
here=$(cd "$(dirname "$0")" && pwd)
dhcp_script=$here/../net/udhcpc-script.sh
port() { echo $((10000 + RANDOM % 20000)); }

# net_initrd NAME SCRIPT: like nb_initrd, with the DHCP event script in /test.
net_initrd() {
  printf '#!/bin/sh\n%s\n' "$2" > "$NB_WORK/$1.sh"
  "$NB_IMAGES_DIR/make-test-initrd.sh" "$NESTBOX_GUEST_DIR/guest.cpio.gz" "$NB_WORK/$1.sh" \
    "$NB_WORK/$1.cpio.gz" "$dhcp_script"
  echo "$NB_WORK/$1.cpio.gz"
}

# What the guest does to bring NIC $1 up: its MAC address, the features its
# driver negotiated (bits 0, 1, 7, 11, 15, 16: CSUM, GUEST_CSUM, GUEST_TSO4,
# HOST_TSO4, MRG_RXBUF, STATUS), and its DHCP lease.
guest_dhcp='
dhcp() {
  echo "MAC$1 $(cat /sys/class/net/eth$1/address)"
  echo "FEATURES$1 $(cut -c1,2,8,12,16,17 /sys/class/net/eth$1/device/features)"
  ip link set eth$1 up
  if LEASE_FILE=/tmp/lease$1.env udhcpc -i eth$1 -n -q -f -t 10 -T 2 -s /test/udhcpc-script.sh \
       > /tmp/udhcpc$1.log 2>&1; then
    echo "LEASE$1 $(tr "\n" " " < /tmp/lease$1.env)"
  else
    echo "DHCP-FAILED$1"; cat /tmp/udhcpc$1.log
  fi
}
ip link set lo up
'

# The host's HTTP server, on the loopback the gateway address leads to.
mkdir -p "$NB_WORK/www"
head -c 4M /dev/urandom > "$NB_WORK/www/download"
down_sha=$(sha256sum < "$NB_WORK/www/download" | cut -d' ' -f1)
web_port=$(port)
busybox httpd -f -p "127.0.0.1:$web_port" -h "$NB_WORK/www" &
web_pid=$!
fwd_port=$(port)
served_sha=$(yes nestbox-guest-http | head -c 3000000 | sha256sum | cut -d' ' -f1)

# IPv6 on the host side: an HTTP server and a DNS server on ::1, the
# engine's resolver for the guest's queries to fd00:10:0:2::3.
ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128' || nb_fail "the host has no ::1 on lo: the IPv6 checks below will fail"
head -c 1M /dev/urandom > "$NB_WORK/www/download6"
down6_sha=$(sha256sum < "$NB_WORK/www/download6" | cut -d' ' -f1)
web6_port=$(port)
busybox httpd -f -p "[::1]:$web6_port" -h "$NB_WORK/www" &
web6_pid=$!
python3 "$here/../net/nat-peer.py" dns-server ::1 host6.nestbox.test=fd00:10:0:2::2 > "$NB_WORK/dns6.log" 2>&1 &
dns6_pid=$!
echo "nameserver ::1" > "$NB_WORK/resolv6.conf"
fwd6_port=$(port)

initrd=$(net_initrd nat "$guest_dhcp
dhcp 0
echo \"ROUTE \$(ip route | grep ^default)\"
if timeout 180 wget -q -O /tmp/download http://10.0.2.2:$web_port/download; then
  echo \"DOWNLOAD \$(sha256sum /tmp/download | cut -d' ' -f1)\"
else
  echo DOWNLOAD-FAILED
fi
[ -e /proc/net/if_inet6 ] && echo IPV6-KERNEL
i=0
while ! ip -6 addr show dev eth0 scope global | grep -v tentative | grep -q \"inet6 fd00:10:0:2:\"; do
  i=\$((i + 1))
  [ \$i -gt 60 ] && break
  sleep 0.5
done
echo \"ADDR6 \$(ip -6 addr show dev eth0 scope global | sed -n 's/.*inet6 \\([^ ]*\\).*/\\1/p' | head -n 1)\"
echo \"ROUTE6 \$(ip -6 route | grep ^default)\"
ping6 -c 2 -W 5 fd00:10:0:2::2 > /tmp/ping6.log 2>&1 && echo PING6-GATEWAY-OK
nslookup -type=AAAA host6.nestbox.test fd00:10:0:2::3 > /tmp/ns6.log 2>&1
a6=\$(awk '/^Name:/ { n = 1 } n && /^Address/ { print \$NF; exit }' /tmp/ns6.log)
echo \"RESOLVED6 \$a6\"
if [ -n \"\$a6\" ] && timeout 120 wget -q -O /tmp/download6 \"http://[\$a6]:$web6_port/download6\"; then
  echo \"DOWNLOAD6 \$(sha256sum /tmp/download6 | cut -d' ' -f1)\"
else
  echo DOWNLOAD6-FAILED
  cat /tmp/ns6.log
fi
mkdir -p /www
yes nestbox-guest-http | head -c 3000000 > /www/served
httpd -f -vv -p 80 -h /www 2> /tmp/httpd.log &
echo HTTPD-READY
i=0
while ! grep -q url:/done /tmp/httpd.log; do
  i=\$((i + 1))
  [ \$i -gt 300 ] && { echo HOST-NEVER-FETCHED; break; }
  sleep 1
done
echo \"HTTPD-SERVED \$(grep -c response:200 /tmp/httpd.log)\"
")
NB_LOG=$NB_WORK/nat.log
timeout -k 5 600 "$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$initrd" --memory 256M \
  --append "console=ttyS0 nestbox.modules=$NB_MODULES panic=-1 quiet" --serial "file:$NB_LOG" \
  --net "nat,resolv-conf=$NB_WORK/resolv6.conf,hostfwd=tcp:127.0.0.1:$fwd_port-:80,hostfwd=tcp:[::1]:$fwd6_port-:80" \
  > "$NB_WORK/nat.stderr" 2>&1 &
vm=$!
for _ in $(seq 1100); do
  grep -aq '^HTTPD-READY' "$NB_LOG" 2>/dev/null && break
  kill -0 $vm 2>/dev/null || break
  sleep 0.5
done
NB_CHECKS=$((NB_CHECKS + 1))
fetched=$NB_WORK/fetched
if grep -aq '^HTTPD-READY' "$NB_LOG" 2>/dev/null &&
   timeout 120 busybox wget -q -O "$fetched" "http://127.0.0.1:$fwd_port/served" &&
   [ "$(sha256sum < "$fetched" | cut -d' ' -f1)" = "$served_sha" ]; then
  nb_pass "the host fetched 3 MB from the guest's httpd through hostfwd"
else
  nb_fail "the host could not fetch the guest's file through hostfwd port $fwd_port"
fi
NB_CHECKS=$((NB_CHECKS + 1))
if grep -aq '^HTTPD-READY' "$NB_LOG" 2>/dev/null &&
   timeout 120 busybox wget -q -O "$fetched.6" "http://[::1]:$fwd6_port/served" &&
   [ "$(sha256sum < "$fetched.6" | cut -d' ' -f1)" = "$served_sha" ]; then
  nb_pass "the host fetched 3 MB from the guest's httpd through hostfwd tcp:[::1]:$fwd6_port-:80"
else
  nb_fail "the host could not fetch the guest's file through hostfwd [::1]:$fwd6_port"
fi
# (busybox wget's -T crashes: timeout(1) bounds it instead.)
timeout 60 busybox wget -q -O /dev/null "http://127.0.0.1:$fwd_port/done" 2>/dev/null
wait $vm
NB_STATUS=$?
nb_expect_status "NAT guest: poweroff" 0
nb_expect "default MAC address" "^MAC0 52:54:00:12:34:56"
nb_expect "the driver took checksum, TSO and mergeable buffers" "^FEATURES0 111111"
nb_expect "DHCP address 10.0.2.15" "^LEASE0 .*ip=10\.0\.2\.15 "
nb_expect "DHCP router 10.0.2.2" "^LEASE0 .*router=10\.0\.2\.2 "
nb_expect "DHCP DNS 10.0.2.3" "^LEASE0 .*dns=10\.0\.2\.3 "
nb_expect "default route through the gateway" "^ROUTE default via 10\.0\.2\.2 dev eth0"
nb_expect "the guest downloaded 4 MiB from the host's loopback intact" "^DOWNLOAD $down_sha"
nb_expect "the guest's httpd served the host (over IPv4 and IPv6)" "^HTTPD-SERVED ([2-9]|[1-9][0-9])"
nb_expect "the guest kernel has IPv6 (/proc/net/if_inet6)" "^IPV6-KERNEL"
nb_expect "SLAAC address in fd00:10:0:2::/64 from the router advertisement" "^ADDR6 fd00:10:0:2:[0-9a-f:]+/64"
nb_expect "IPv6 default route through fe80::2" "^ROUTE6 default via fe80::2 dev eth0"
nb_expect "ping6 the gateway fd00:10:0:2::2" "^PING6-GATEWAY-OK"
nb_expect "AAAA look-up through fd00:10:0:2::3, answered by the host's ::1" "^RESOLVED6 fd00:10:0:2::2[[:space:]]*$"
nb_expect "the guest downloaded 1 MiB from the host's ::1 over IPv6 intact" "^DOWNLOAD6 $down6_sha"
kill $web6_pid $dns6_pid 2>/dev/null

# A port forward from a host port that is taken (the web server's) is a
# configuration error, said before the guest starts.
NB_CHECKS=$((NB_CHECKS + 1))
"$NESTBOX_VM" --kernel "$NESTBOX_GUEST_DIR/vmlinuz" --initrd "$initrd" --serial none \
  --net nat --net "nat,hostfwd=tcp:127.0.0.1:$web_port-:80" > "$NB_WORK/busy.stderr" 2>&1
status=$?
if [ $status = 2 ] && grep -q "network card 2: cannot forward tcp port 127.0.0.1:$web_port" "$NB_WORK/busy.stderr"; then
  nb_pass "a busy host port is refused with exit status 2: $(cat "$NB_WORK/busy.stderr")"
else
  nb_fail "busy host port: exit status $status, said: $(cat "$NB_WORK/busy.stderr")"
fi
kill $web_pid 2>/dev/null

# Two NICs: the first on its own subnet with a MAC address given, the second
# with the defaults (its MAC address follows its index), each with an engine
# of its own.
initrd=$(net_initrd two "$guest_dhcp
dhcp 0
dhcp 1
ping -c 1 -W 5 192.168.77.2 > /dev/null && echo PING0-OK
ping -c 1 -W 5 -I eth1 10.0.2.2 > /dev/null && echo PING1-OK
")
nb_boot two 400 "$initrd" --memory 256M --net "nat,net=192.168.77.0/24,mac=52:54:00:ab:cd:ef" \
  --net nat
nb_expect_status "two NICs: poweroff" 0
nb_expect "the MAC address given" "^MAC0 52:54:00:ab:cd:ef"
nb_expect "the second NIC's default MAC address" "^MAC1 52:54:00:12:34:57"
nb_expect "NIC 1: address from its own subnet" "^LEASE0 .*ip=192\.168\.77\.15 "
nb_expect "NIC 1: router on its subnet" "^LEASE0 .*router=192\.168\.77\.2 "
nb_expect "NIC 1: DNS on its subnet" "^LEASE0 .*dns=192\.168\.77\.3 "
nb_expect "NIC 2: the default subnet" "^LEASE1 .*ip=10\.0\.2\.15 "
nb_expect "NIC 1's gateway answers ping" "^PING0-OK"
nb_expect "NIC 2's gateway answers ping" "^PING1-OK"
nb_finish
