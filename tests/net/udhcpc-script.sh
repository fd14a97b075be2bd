#!/bin/sh
# udhcpc's event script for the namespace tests: configures the interface and
# writes what the server handed out to $LEASE_FILE, one KEY=VALUE a line.
case "$1" in
bound|renew)
  env | grep -E '^(ip|subnet|router|dns|domain|search|mtu|hostname|lease|serverid|broadcast)=' \
    | sort > "$LEASE_FILE"
  ip -4 addr flush dev "$interface" # IPv6 (link-local, SLAAC) stays
  ip addr add "$ip/${mask:-24}" dev "$interface"
  [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
  ip route add default via "$router" dev "$interface"
  ;;
esac
exit 0
