#!/bin/bash
# The guest console on hvc0, a named virtio-console port carrying data both
# ways to a host UNIX socket, and entropy from virtio-rng at /dev/hwrng.
source "$(dirname "$0")/lib.sh"

sock=$NB_WORK/port.sock
# The host end: connect as soon as the socket exists, wait for the guest's
# line, answer it.
python3 - "$sock" > "$NB_WORK/host-port.log" 2>&1 <<'PY' &
import socket, sys, time
path = sys.argv[1]
deadline = time.time() + 500
while True:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        break
    except OSError:
        if time.time() > deadline:
            print("never connected"); sys.exit(1)
        time.sleep(0.2)
buf = b""
while b"\n" not in buf:
    data = s.recv(4096)
    if not data:
        break
    buf += data
print("HOST-GOT", buf.decode(errors="replace").strip())
s.sendall(b"pong-from-host\n")
time.sleep(2)
PY
helper=$!

# The kernel opens init's console before the virtio_console module loads, so
# the script reopens hvc0 itself.
initrd=$(nb_initrd console '
exec > /dev/hvc0 2>&1
echo "HVC-CONSOLE-WORKS"
for d in /sys/class/virtio-ports/*; do
  if [ "$(cat $d/name 2>/dev/null)" = test.port ]; then port=/dev/$(basename $d); fi
done
echo "PORT $port"
exec 3<>"$port"
echo "ping-from-guest" >&3
read -r answer <&3
echo "GUEST-GOT $answer"
exec 3>&-
echo "RNG $(cat /sys/class/misc/hw_random/rng_current)"
echo "RNG-BYTES $(head -c 4096 /dev/hwrng | wc -c)"
')
NB_MODULES=virtio_console,virtio_rng NB_APPEND="console=hvc0" nb_boot console 240 "$initrd" --console hvc --rng \
  --console-port "test.port=$sock" --memory 256M
wait $helper
nb_expect_status "hvc console guest: poweroff" 0
nb_expect "console output through hvc0" "^HVC-CONSOLE-WORKS"
nb_expect "the guest got the host's answer on the named port" "^GUEST-GOT pong-from-host"
NB_CHECKS=$((NB_CHECKS + 1))
if grep -q "HOST-GOT ping-from-guest" "$NB_WORK/host-port.log"; then nb_pass "the host got the guest's line"; else nb_fail "host side: $(cat "$NB_WORK/host-port.log")"; fi
nb_expect "virtio-rng is the guest's hardware RNG" "^RNG virtio_rng"
nb_expect "/dev/hwrng gives bytes" "^RNG-BYTES 4096"
nb_finish
