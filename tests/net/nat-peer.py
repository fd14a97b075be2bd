#!/usr/bin/env python3
"""Peers for the NAT namespace tests: a tiny DNS server, UDP echo, a client
that holds many TCP connections open at once against an echo server, and a
router solicitation that prints what the advertisement says."""
import selectors
import socket
import struct
import sys
import time


def dns_server(addr, answers):
    """Answers A (or, for an IPv6 address, AAAA) queries for NAME=IP pairs;
    NXDOMAIN for anything else. Listens on an IPv4 or IPv6 address."""
    table = {}
    for pair in answers:
        name, ip = pair.split("=")
        if ":" in ip:
            table[name.lower().rstrip(".")] = (28, socket.inet_pton(socket.AF_INET6, ip))
        else:
            table[name.lower().rstrip(".")] = (1, socket.inet_aton(ip))
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 53))
    print("ready", flush=True)
    while True:
        q, peer = s.recvfrom(4096)
        if len(q) < 12:
            continue
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        i, labels = 12, []
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
            i += 1 + q[i]
        i += 1
        qtype = struct.unpack("!H", q[i:i + 2])[0] if i + 2 <= len(q) else 0
        question = q[12:i + 4]
        name = ".".join(labels).lower()
        entry = table.get(name)
        ip = entry[1] if entry else None
        if entry and qtype == entry[0]:
            hdr = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
            ans = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(ip)) + ip
            s.sendto(hdr + question + ans, peer)
        else:
            rcode = 0 if ip else 3
            s.sendto(struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, 0, 0, 0) + question, peer)


def udp_echo(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(b"echo:" + data, peer)


def udp_ask(addr, port, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    payload = bytes((i * 7) & 0xff for i in range(int(size)))
    for _ in range(5):
        s.sendto(payload, (addr, int(port)))
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            continue
        if data == b"echo:" + payload:
            print("udp ok", len(payload))
            return 0
        print("udp: wrong reply", len(data))
        return 1
    print("udp: no reply")
    return 1


def tcp_echo_server(addr, port):
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(4096)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.fileobj is ls:
                try:
                    c, _ = ls.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            else:
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except ConnectionError:
                    data = b""
                if data:
                    c.sendall(data)
                else:
                    sel.unregister(c)
                    c.close()


def _plain(a):
    """An address as a user writes it: IPv4-mapped ones as IPv4."""
    return a[7:] if a.startswith("::ffff:") else a


def tcp_whoami(port):
    """On [::]:port (both families): tells each client "PEER at LOCAL"."""
    ls = socket.socket(socket.AF_INET6)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    ls.bind(("::", int(port)))
    ls.listen(16)
    print("ready", flush=True)
    while True:
        c, peer = ls.accept()
        local = c.getsockname()
        c.sendall(("%s at %s\n" % (_plain(peer[0]), _plain(local[0]))).encode())
        c.close()


def tcp_read(addr, port):
    """Prints what a server at addr:port says."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(5)
        s.connect((addr, int(port)))
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
    sys.stdout.write(data.decode())
    return 0


def tcp_many(addr, port, count):
    """Opens count connections, all held open, then checks each one echoes."""
    count = int(count)
    socks = []
    deadline = time.time() + 60
    for i in range(count):
        s = socket.socket()
        s.settimeout(10)
        s.connect((addr, int(port)))
        socks.append(s)
    for i, s in enumerate(socks):
        s.sendall(b"conn %05d\n" % i)
    bad = 0
    for i, s in enumerate(socks):
        want = b"conn %05d\n" % i
        got = b""
        while len(got) < len(want) and time.time() < deadline:
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        if got != want:
            bad += 1
    for s in socks:
        s.close()
    print("tcp-many: %d connections, %d bad" % (count, bad))
    return 1 if bad else 0


def ra_dump(iface):
    """Sends a router solicitation on IFACE and prints the options of the
    advertisement that answers it, one per line."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    s.settimeout(0.5)
    idx = socket.if_nametoindex(iface)
    for _ in range(10):
        # The kernel fills in the checksum of raw ICMPv6.
        s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, idx))
        try:
            while True:
                m, peer = s.recvfrom(4096)
                if m and m[0] == 134:
                    break
        except socket.timeout:
            continue
        print("router %s lifetime %d" % (peer[0].split("%")[0], struct.unpack("!H", m[6:8])[0]))
        i = 16
        while i + 2 <= len(m) and m[i + 1]:
            t, n = m[i], m[i + 1] * 8
            o = m[i:i + n]
            if t == 3:
                print("prefix %s/%d flags %#x" % (socket.inet_ntop(socket.AF_INET6, o[16:32]), o[2], o[3]))
            elif t == 5:
                print("mtu %d" % struct.unpack("!I", o[4:8])[0])
            elif t == 25:
                for j in range(8, n, 16):
                    print("rdnss %s" % socket.inet_ntop(socket.AF_INET6, o[j:j + 16]))
            i += n
        return 0
    print("no router advertisement on %s" % iface)
    return 1


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "dns-server":
        dns_server(args[0], args[1:])
    elif cmd == "udp-echo":
        udp_echo(*args)
    elif cmd == "udp-ask":
        return udp_ask(*args)
    elif cmd == "tcp-echo-server":
        tcp_echo_server(*args)
    elif cmd == "tcp-whoami":
        tcp_whoami(*args)
    elif cmd == "tcp-read":
        return tcp_read(*args)
    elif cmd == "tcp-many":
        return tcp_many(*args)
    elif cmd == "ra-dump":
        return ra_dump(*args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
