/* The NAT engine fed frames in memory: what comes back is what a guest
 * would see. */
#include "nat-harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* ---- ARP ---- */

static size_t
build_arp(uint8_t *buf, uint16_t op, uint32_t spa, uint32_t tpa)
{
  size_t n = build_eth(buf, broadcast, NB_ETH_TYPE_ARP);
  uint8_t *a = buf + n;
  nb_wr16(a, 1);
  nb_wr16(a + 2, NB_ETH_TYPE_IPV4);
  a[4] = 6;
  a[5] = 4;
  nb_wr16(a + 6, op);
  memcpy(a + 8, guest_mac, 6);
  nb_wr32(a + 14, spa);
  memset(a + 18, 0, 6);
  nb_wr32(a + 24, tpa);
  return n + 28;
}

static void
test_arp(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[64];
  const uint32_t targets[] = { GW_IP, DNS_IP };
  for (gsize i = 0; i < G_N_ELEMENTS(targets); i++) {
    harness_send(h, f, build_arp(f, 1, GUEST_IP, targets[i]));
    GByteArray *r = harness_wait(h, 100);
    g_assert_nonnull(r);
    g_assert_cmpuint(r->len, ==, 42);
    g_assert_cmpmem(r->data, 6, guest_mac, 6);
    g_assert_cmpuint(nb_rd16(r->data + 12), ==, NB_ETH_TYPE_ARP);
    const uint8_t *a = r->data + 14;
    g_assert_cmpuint(nb_rd16(a + 6), ==, 2);
    g_assert_cmpmem(a + 8, 6, r->data + 6, 6); /* sender MAC = the frame's source */
    g_assert_cmpuint(nb_rd32(a + 14), ==, targets[i]);
    g_assert_cmpmem(a + 18, 6, guest_mac, 6);
    g_assert_cmpuint(nb_rd32(a + 24), ==, GUEST_IP);
  }
  /* Nobody else lives on this link. */
  harness_send(h, f, build_arp(f, 1, GUEST_IP, 0x0a000263));
  g_assert_null(harness_wait(h, 20));
  harness_free(h);
}

/* ---- DHCP ---- */

static size_t
build_dhcp(uint8_t *buf, const uint8_t *mac, uint32_t xid, uint32_t ciaddr, const uint8_t *opts,
           size_t optlen)
{
  uint8_t b[600] = { 0 };
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  nb_wr32(b + 4, xid);
  nb_wr32(b + 12, ciaddr);
  memcpy(b + 28, mac, 6);
  nb_wr32(b + 236, 0x63825363);
  memcpy(b + 240, opts, optlen);
  return build_udp(buf, ciaddr, 68, ciaddr ? GW_IP : 0xffffffffu, 67, b, 240 + optlen);
}

/* The value of option code in a DHCP reply, or NULL. */
static const uint8_t *
dhcp_opt(const RxIp *ip, uint8_t code, size_t *len)
{
  const uint8_t *b = ip->l4 + NB_UDP_HLEN;
  size_t n = ip->l4_len - NB_UDP_HLEN;
  g_assert_cmpuint(n, >=, 240);
  g_assert_cmpuint(nb_rd32(b + 236), ==, 0x63825363);
  for (size_t i = 240; i + 1 < n && b[i] != 255;) {
    if (b[i] == 0) {
      i++;
      continue;
    }
    if (b[i] == code) {
      *len = b[i + 1];
      return b + i + 2;
    }
    i += 2 + b[i + 1];
  }
  return NULL;
}

static int
dhcp_type(const RxIp *ip)
{
  size_t len;
  const uint8_t *v = dhcp_opt(ip, 53, &len);
  g_assert_nonnull(v);
  g_assert_cmpuint(len, ==, 1);
  return v[0];
}

static uint32_t
dhcp_yiaddr(const RxIp *ip)
{
  return nb_rd32(ip->l4 + NB_UDP_HLEN + 16);
}

/* DISCOVER (and REQUEST when bind) from mac; returns the reply to the last. */
static GByteArray *
dhcp_exchange(Harness *h, const uint8_t *mac, int type, uint32_t requested)
{
  uint8_t opts[16] = { 53, 1, (uint8_t)type };
  size_t n = 3;
  if (requested) {
    opts[n++] = 50;
    opts[n++] = 4;
    nb_wr32(opts + n, requested);
    n += 4;
    opts[n++] = 54;
    opts[n++] = 4;
    nb_wr32(opts + n, GW_IP);
    n += 4;
  }
  opts[n++] = 255;
  uint8_t f[1024];
  harness_clear(h);
  harness_send(h, f, build_dhcp(f, mac, 0x1234, 0, opts, n));
  return harness_wait(h, 100);
}

static void
test_dhcp(void)
{
  Harness *h = harness_new("hostname=vm1,domainname=example.test,dnssearch=a.test,"
                           "dnssearch=b.example,mtu=1400,lease-time=7200");
  GByteArray *r = dhcp_exchange(h, guest_mac, 1, 0);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.proto, ==, NB_IP_PROTO_UDP);
  g_assert_cmpuint(ip.src, ==, GW_IP);
  g_assert_cmpuint(ip.dst, ==, 0xffffffffu);
  g_assert_cmpmem(r->data, 6, broadcast, 6);
  g_assert_cmpuint(nb_rd16(ip.l4), ==, 67);
  g_assert_cmpuint(nb_rd16(ip.l4 + 2), ==, 68);
  g_assert_cmpint(dhcp_type(&ip), ==, 2); /* OFFER */
  g_assert_cmpuint(dhcp_yiaddr(&ip), ==, GUEST_IP);
  g_assert_cmpuint(nb_rd32(ip.l4 + NB_UDP_HLEN + 4), ==, 0x1234);

  size_t len;
  const uint8_t *v;
  v = dhcp_opt(&ip, 54, &len);
  g_assert_true(v && len == 4 && nb_rd32(v) == GW_IP);
  v = dhcp_opt(&ip, 1, &len);
  g_assert_true(v && len == 4 && nb_rd32(v) == 0xffffff00u);
  v = dhcp_opt(&ip, 3, &len);
  g_assert_true(v && len == 4 && nb_rd32(v) == GW_IP);
  v = dhcp_opt(&ip, 6, &len);
  g_assert_true(v && len == 4 && nb_rd32(v) == DNS_IP);
  v = dhcp_opt(&ip, 51, &len);
  g_assert_true(v && len == 4 && nb_rd32(v) == 7200);
  v = dhcp_opt(&ip, 26, &len);
  g_assert_true(v && len == 2 && nb_rd16(v) == 1400);
  v = dhcp_opt(&ip, 12, &len);
  g_assert_true(v && len == 3 && !memcmp(v, "vm1", 3));
  v = dhcp_opt(&ip, 15, &len);
  g_assert_true(v && len == 12 && !memcmp(v, "example.test", 12));
  v = dhcp_opt(&ip, 119, &len);
  static const uint8_t search[] = "\1a\4test\0\1b\7example";
  g_assert_true(v != NULL);
  g_assert_cmpmem(v, len, search, sizeof search);

  r = dhcp_exchange(h, guest_mac, 3, GUEST_IP);
  g_assert_nonnull(r);
  ip = rx_ip(r);
  g_assert_cmpint(dhcp_type(&ip), ==, 5); /* ACK */
  g_assert_cmpuint(dhcp_yiaddr(&ip), ==, GUEST_IP);
  g_assert_cmpuint(harness_stats(h).leases, ==, 1);

  /* Asking for an address that is not ours to give: NAK. */
  r = dhcp_exchange(h, guest_mac, 3, 0x0a000240);
  g_assert_nonnull(r);
  ip = rx_ip(r);
  g_assert_cmpint(dhcp_type(&ip), ==, 6);

  /* Another client gets the next address. */
  const uint8_t mac2[6] = { 0x52, 0x54, 0, 0, 0, 2 };
  r = dhcp_exchange(h, mac2, 1, 0);
  ip = rx_ip(r);
  g_assert_cmpuint(dhcp_yiaddr(&ip), ==, GUEST_IP + 1);
  harness_free(h);
}

static void
test_dhcp_static_lease(void)
{
  Harness *h = harness_new("lease=52:54:00:12:34:56@10.0.2.77,net=10.0.2.0/24");
  GByteArray *r = dhcp_exchange(h, guest_mac, 1, 0);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(dhcp_yiaddr(&ip), ==, 0x0a00024d);
  r = dhcp_exchange(h, guest_mac, 3, 0x0a00024d);
  ip = rx_ip(r);
  g_assert_cmpint(dhcp_type(&ip), ==, 5);
  harness_free(h);
}

static void
test_dhcp_custom_subnet(void)
{
  Harness *h = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(NbNatConfig) c = nb_nat_config_parse("nat,net=192.168.100.0/24,dhcpstart=192.168.100.100", &error);
  g_assert_no_error(error);
  g_assert_cmpuint(c->gateway, ==, 0xc0a86402);
  g_assert_cmpuint(c->dns, ==, 0xc0a86403);
  g_assert_cmpuint(c->dhcp_start, ==, 0xc0a86464);
  (void)h;
}

/* A guest flooding DISCOVERs from random MAC addresses only recycles
 * offers: the pool stays bounded and a bound lease keeps its address. */
static void
test_dhcp_flood(void)
{
  Harness *h = harness_new("pool=4");
  GByteArray *r = dhcp_exchange(h, guest_mac, 1, 0);
  g_assert_nonnull(r);
  r = dhcp_exchange(h, guest_mac, 3, GUEST_IP);
  RxIp ip = rx_ip(r);
  g_assert_cmpint(dhcp_type(&ip), ==, 5);

  for (int i = 0; i < 500; i++) {
    uint8_t mac[6] = { 0x02, 0, 0, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };
    r = dhcp_exchange(h, mac, 1, 0);
    g_assert_nonnull(r);
    ip = rx_ip(r);
    g_assert_cmpint(dhcp_type(&ip), ==, 2);
    uint32_t a = dhcp_yiaddr(&ip);
    g_assert_cmpuint(a, >, GUEST_IP);
    g_assert_cmpuint(a, <, GUEST_IP + 4);
  }
  /* The bound client renews and keeps its address. */
  r = dhcp_exchange(h, guest_mac, 3, GUEST_IP);
  ip = rx_ip(r);
  g_assert_cmpint(dhcp_type(&ip), ==, 5);
  g_assert_cmpuint(dhcp_yiaddr(&ip), ==, GUEST_IP);

  /* All four bound: a fifth client gets nothing, and it is counted. */
  for (int i = 1; i < 4; i++) {
    uint8_t mac[6] = { 0x02, 1, 0, 0, 0, (uint8_t)i };
    r = dhcp_exchange(h, mac, 1, 0);
    ip = rx_ip(r);
    r = dhcp_exchange(h, mac, 3, dhcp_yiaddr(&ip));
    ip = rx_ip(r);
    g_assert_cmpint(dhcp_type(&ip), ==, 5);
  }
  uint64_t full = harness_stats(h).drop_table_full;
  uint8_t mac5[6] = { 0x02, 2, 0, 0, 0, 5 };
  g_assert_null(dhcp_exchange(h, mac5, 1, 0));
  g_assert_cmpuint(harness_stats(h).drop_table_full, ==, full + 1);
  g_assert_cmpuint(harness_stats(h).leases, ==, 4);
  harness_free(h);
}

/* ---- ICMP ---- */

static void
test_icmp_echo_gateway(void)
{
  Harness *h = harness_new(NULL);
  uint8_t icmp[64] = { 8, 0, 0, 0, 0x12, 0x34, 0, 7 };
  for (int i = 8; i < 64; i++)
    icmp[i] = (uint8_t)i;
  nb_wr16(icmp + 2, nb_csum(icmp, sizeof icmp));
  uint8_t f[128];
  harness_send(h, f, build_ip(f, NB_IP_PROTO_ICMP, GUEST_IP, GW_IP, icmp, sizeof icmp, 9, 0));
  GByteArray *r = harness_wait(h, 100);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.proto, ==, NB_IP_PROTO_ICMP);
  g_assert_cmpuint(ip.src, ==, GW_IP);
  g_assert_cmpuint(ip.dst, ==, GUEST_IP);
  g_assert_cmpuint(ip.l4_len, ==, sizeof icmp);
  g_assert_cmpuint(ip.l4[0], ==, 0);
  g_assert_cmpmem(ip.l4 + 4, 60, icmp + 4, 60);
  harness_free(h);
}

/* ---- UDP ---- */

static int
udp_socket(uint16_t *port)
{
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  *port = ntohs(sa.sin_port);
  struct timeval tv = { .tv_sec = 2 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void
test_udp_loopback(void)
{
  Harness *h = harness_new(NULL);
  uint16_t port;
  int fd = udp_socket(&port);
  uint8_t f[2048];
  harness_send(h, f, build_udp(f, GUEST_IP, 40000, GW_IP, port, "ping!", 5));
  harness_run(h, 5);
  char buf[64];
  struct sockaddr_in from;
  socklen_t fl = sizeof from;
  ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
  g_assert_cmpint(n, ==, 5);
  g_assert_cmpmem(buf, 5, "ping!", 5);
  g_assert_cmpuint(ntohl(from.sin_addr.s_addr), ==, INADDR_LOOPBACK);
  sendto(fd, "pong!!", 6, 0, (struct sockaddr *)&from, fl);
  GByteArray *r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.proto, ==, NB_IP_PROTO_UDP);
  g_assert_cmpuint(ip.src, ==, GW_IP); /* the host's loopback shows as the gateway */
  g_assert_cmpuint(ip.dst, ==, GUEST_IP);
  g_assert_cmpuint(nb_rd16(ip.l4), ==, port);
  g_assert_cmpuint(nb_rd16(ip.l4 + 2), ==, 40000);
  g_assert_cmpuint(nb_rd16(ip.l4 + 4), ==, 14);
  g_assert_cmpmem(ip.l4 + 8, 6, "pong!!", 6);
  g_assert_cmpuint(harness_stats(h).udp_flows, ==, 1);
  close(fd);
  harness_free(h);
}

/* The host's ICMP error for a guest datagram reaches the guest, quoting
 * the guest's own header. */
static void
test_udp_port_unreachable(void)
{
  Harness *h = harness_new(NULL);
  uint16_t port;
  int fd = udp_socket(&port);
  close(fd); /* nobody listens there now */
  uint8_t f[256];
  harness_send(h, f, build_udp(f, GUEST_IP, 40002, GW_IP, port, "knock", 5));
  GByteArray *r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.proto, ==, NB_IP_PROTO_ICMP);
  g_assert_cmpuint(ip.dst, ==, GUEST_IP);
  g_assert_cmpuint(ip.l4[0], ==, 3);
  g_assert_cmpuint(ip.l4[1], ==, 3);
  g_assert_cmpuint(ip.l4_len, ==, 8 + 28);
  const uint8_t *q = ip.l4 + 8;
  g_assert_cmpuint(nb_rd32(q + 12), ==, GUEST_IP);
  g_assert_cmpuint(nb_rd32(q + 16), ==, GW_IP);
  g_assert_cmpuint(nb_rd16(q + 20), ==, 40002);
  g_assert_cmpuint(nb_rd16(q + 22), ==, port);
  harness_free(h);
}

static void
test_dns_forward(void)
{
  /* The DNS address forwards to the resolver of resolv.conf: a local socket
   * on 127.0.0.x:53 stands in for it when the port is free. */
  Harness *h = harness_new(NULL);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53),
                            .sin_addr.s_addr = htonl(0x7f000063) };
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    harness_free(h);
    g_test_skip("cannot bind 127.0.0.99:53 (needs root or a free port)");
    return;
  }
  g_file_set_contents(h->resolv, "# test\nnameserver   127.0.0.99\nnameserver ::1\n", -1, NULL);
  struct timeval tv = { .tv_sec = 2 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint8_t f[256];
  harness_send(h, f, build_udp(f, GUEST_IP, 5353, DNS_IP, 53, "query", 5));
  char buf[64];
  struct sockaddr_in from;
  socklen_t fl = sizeof from;
  g_assert_cmpint(recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), ==, 5);
  sendto(fd, "answer", 6, 0, (struct sockaddr *)&from, fl);
  GByteArray *r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.src, ==, DNS_IP);
  g_assert_cmpuint(nb_rd16(ip.l4), ==, 53);
  g_assert_cmpuint(nb_rd16(ip.l4 + 2), ==, 5353);
  g_assert_cmpmem(ip.l4 + 8, 6, "answer", 6);
  close(fd);
  harness_free(h);
}

/* ---- TCP ---- */

typedef struct {
  uint32_t seq, ack;
  uint8_t flags;
  uint16_t win;
  const uint8_t *data;
  size_t len;
  int mss, wscale;
} RxTcp;

static RxTcp
rx_tcp(GByteArray *frame)
{
  RxIp ip = rx_ip(frame);
  g_assert_cmpuint(ip.proto, ==, NB_IP_PROTO_TCP);
  const uint8_t *t = ip.l4;
  size_t doff = (size_t)(t[12] >> 4) * 4;
  RxTcp r = { .seq = nb_rd32(t + 4), .ack = nb_rd32(t + 8), .flags = t[13],
              .win = nb_rd16(t + 14), .data = t + doff, .len = ip.l4_len - doff,
              .mss = -1, .wscale = -1 };
  for (size_t i = 20; i < doff;) {
    if (t[i] == 0)
      break;
    if (t[i] == 1) {
      i++;
      continue;
    }
    if (t[i] == 2)
      r.mss = nb_rd16(t + i + 2);
    if (t[i] == 3)
      r.wscale = t[i + 2];
    i += t[i + 1];
  }
  return r;
}

static int
tcp_listener(uint16_t *port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
  listen(fd, 4);
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  *port = ntohs(sa.sin_port);
  return fd;
}

static const uint8_t syn_opts[] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 7 }; /* MSS 1460, WS 7 */

static void
test_tcp_connect_and_data(void)
{
  Harness *h = harness_new(NULL);
  uint16_t port;
  int lfd = tcp_listener(&port);
  uint8_t f[2048];
  uint32_t gseq = 1000;

  harness_send(h, f, build_tcp(f, GW_IP, 33000, port, gseq, 0, NB_TCP_SYN, 65535, syn_opts,
                               sizeof syn_opts, NULL, 0));
  GByteArray *r = harness_wait(h, 2000);
  g_assert_nonnull(r);
  RxTcp t = rx_tcp(r);
  g_assert_cmpuint(t.flags, ==, NB_TCP_SYN | NB_TCP_ACK);
  g_assert_cmpuint(t.ack, ==, gseq + 1);
  g_assert_cmpint(t.mss, ==, 1460);
  g_assert_cmpint(t.wscale, >, 0);
  uint32_t hseq = t.seq + 1;
  gseq++;
  int afd = accept(lfd, NULL, NULL);
  g_assert_cmpint(afd, >=, 0);

  /* Guest to host. */
  harness_send(h, f, build_tcp(f, GW_IP, 33000, port, gseq, hseq, NB_TCP_ACK | NB_TCP_PSH, 512,
                               NULL, 0, "hello", 5));
  gseq += 5;
  char buf[64];
  g_assert_cmpint(recv(afd, buf, sizeof buf, 0), ==, 5);
  g_assert_cmpmem(buf, 5, "hello", 5);
  r = harness_wait(h, 1000);
  t = rx_tcp(r);
  g_assert_cmpuint(t.flags & NB_TCP_ACK, !=, 0);
  g_assert_cmpuint(t.ack, ==, gseq);

  /* Host to guest. */
  harness_clear(h);
  g_assert_cmpint(send(afd, "world!", 6, 0), ==, 6);
  r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  t = rx_tcp(r);
  g_assert_cmpuint(t.seq, ==, hseq);
  g_assert_cmpmem(t.data, t.len, "world!", 6);

  /* Not acknowledged: the engine sends it again. */
  harness_clear(h);
  r = harness_wait(h, 1500);
  g_assert_nonnull(r);
  t = rx_tcp(r);
  g_assert_cmpuint(t.seq, ==, hseq);
  g_assert_cmpmem(t.data, t.len, "world!", 6);
  hseq += 6;
  harness_send(h, f, build_tcp(f, GW_IP, 33000, port, gseq, hseq, NB_TCP_ACK, 512, NULL, 0, NULL, 0));

  /* The host closes: FIN to the guest; the guest closes too. */
  harness_clear(h);
  close(afd);
  r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  t = rx_tcp(r);
  g_assert_cmpuint(t.flags & NB_TCP_FIN, !=, 0);
  g_assert_cmpuint(t.seq, ==, hseq);
  harness_send(h, f, build_tcp(f, GW_IP, 33000, port, gseq, hseq + 1, NB_TCP_ACK | NB_TCP_FIN, 512,
                               NULL, 0, NULL, 0));
  harness_run(h, 20);
  g_assert_cmpuint(harness_stats(h).tcp_flows, ==, 0);
  close(lfd);
  harness_free(h);
}

static void
test_tcp_refused_and_reset(void)
{
  Harness *h = harness_new(NULL);
  uint16_t port;
  int lfd = tcp_listener(&port);
  close(lfd); /* nobody listens there now */
  uint8_t f[256];
  harness_send(h, f, build_tcp(f, GW_IP, 33001, port, 5000, 0, NB_TCP_SYN, 65535, syn_opts,
                               sizeof syn_opts, NULL, 0));
  GByteArray *r = harness_wait(h, 2000);
  g_assert_nonnull(r);
  RxTcp t = rx_tcp(r);
  g_assert_cmpuint(t.flags & NB_TCP_RST, !=, 0);
  g_assert_cmpuint(t.ack, ==, 5001);

  /* A stray ACK for no connection draws a RST with its ack number. */
  harness_clear(h);
  harness_send(h, f, build_tcp(f, GW_IP, 33002, port, 1, 777, NB_TCP_ACK, 100, NULL, 0, NULL, 0));
  r = harness_wait(h, 100);
  g_assert_nonnull(r);
  t = rx_tcp(r);
  g_assert_cmpuint(t.flags, ==, NB_TCP_RST);
  g_assert_cmpuint(t.seq, ==, 777);
  harness_free(h);
}

/* Data and FIN lost on the way to the guest: both are sent again, the
 * data first and the FIN after it, never a FIN that skips data. */
static void
test_tcp_retransmit_fin(void)
{
  Harness *h = harness_new(NULL);
  uint16_t port;
  int lfd = tcp_listener(&port);
  uint8_t f[2048];
  harness_send(h, f, build_tcp(f, GW_IP, 33020, port, 1, 0, NB_TCP_SYN, 65535, syn_opts,
                               sizeof syn_opts, NULL, 0));
  RxTcp t = rx_tcp(harness_wait(h, 2000));
  uint32_t hseq = t.seq + 1;
  int afd = accept(lfd, NULL, NULL);
  harness_send(h, f, build_tcp(f, GW_IP, 33020, port, 2, hseq, NB_TCP_ACK, 65535, NULL, 0, NULL, 0));
  harness_clear(h);
  send(afd, "abc", 3, 0);
  close(afd);
  for (int round = 0; round < 2; round++) {
    /* Round 0: the first transmission; round 1: the retransmission. */
    bool data = false, fin = false;
    int64_t end = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
    while (!(data && fin) && g_get_monotonic_time() < end) {
      GByteArray *r = harness_wait(h, 100);
      if (!r)
        continue;
      t = rx_tcp(r);
      if (t.len) {
        g_assert_false(fin);
        g_assert_cmpuint(t.seq, ==, hseq);
        g_assert_cmpmem(t.data, t.len, "abc", 3);
        data = true;
      }
      if (t.flags & NB_TCP_FIN) {
        g_assert_true(data);
        g_assert_cmpuint(t.seq + t.len, ==, hseq + 3);
        fin = true;
      }
    }
    g_assert_true(data && fin);
  }
  /* A late ACK for all of it, FIN included, ends the host's side. */
  harness_send(h, f, build_tcp(f, GW_IP, 33020, port, 2, hseq + 4, NB_TCP_ACK | NB_TCP_FIN, 65535,
                               NULL, 0, NULL, 0));
  harness_run(h, 20);
  g_assert_cmpuint(harness_stats(h).tcp_flows, ==, 0);
  g_assert_cmpuint(harness_stats(h).drop_tcp, ==, 0);
  close(lfd);
  harness_free(h);
}

/* Host data beyond the guest's window waits in the host socket. */
static void
test_tcp_window(void)
{
  Harness *h = harness_new(NULL);
  uint16_t port;
  int lfd = tcp_listener(&port);
  uint8_t f[2048];
  harness_send(h, f, build_tcp(f, GW_IP, 33003, port, 1, 0, NB_TCP_SYN, 1000, NULL, 0, NULL, 0));
  GByteArray *r = harness_wait(h, 2000);
  RxTcp t = rx_tcp(r);
  g_assert_cmpint(t.mss, ==, 1460);
  g_assert_cmpint(t.wscale, ==, -1); /* no scaling: the guest did not offer it */
  uint32_t hseq = t.seq + 1;
  int afd = accept(lfd, NULL, NULL);
  /* A 1000-byte window, no MSS option: segments of at most 536 bytes. */
  harness_send(h, f, build_tcp(f, GW_IP, 33003, port, 2, hseq, NB_TCP_ACK, 1000, NULL, 0, NULL, 0));
  char data[5000];
  memset(data, 'x', sizeof data);
  g_assert_cmpint(send(afd, data, sizeof data, 0), ==, sizeof data);
  harness_clear(h);
  harness_run(h, 100);
  size_t got = 0;
  for (guint i = 0; i < h->frames->len; i++) {
    t = rx_tcp(h->frames->pdata[i]);
    g_assert_cmpuint(t.len, <=, 536);
    got += t.len;
  }
  g_assert_cmpuint(got, ==, 1000);
  close(afd);
  close(lfd);
  harness_free(h);
}

/* A peer with checksum and TSO offloads gets 64 KiB segments with only the
 * pseudo-header summed, and may send frames whose checksum it left undone. */
static void
test_tcp_offloads(void)
{
  Harness *h = harness_new_full(NULL, NB_NET_PEER_CSUM_OFFLOAD | NB_NET_PEER_TSO4);
  uint16_t port;
  int lfd = tcp_listener(&port);
  uint8_t f[2048];
  rx_ip_skip_l4_csum = true;
  harness_send(h, f, build_tcp(f, GW_IP, 33010, port, 1, 0, NB_TCP_SYN, 65535, syn_opts,
                               sizeof syn_opts, NULL, 0));
  GByteArray *r = harness_wait(h, 2000);
  RxTcp t = rx_tcp(r);
  uint32_t hseq = t.seq + 1;
  int afd = accept(lfd, NULL, NULL);

  /* Guest data with its checksum left to us: garbage in the field, taken
   * because the frame says so. */
  size_t n = build_tcp(f, GW_IP, 33010, port, 2, hseq, NB_TCP_ACK, 65535, NULL, 0, "offload", 7);
  f[NB_ETH_HLEN + NB_IP_HLEN + 16] ^= 0x5a;
  NbNetFrameMeta partial = { .flags = NB_NET_FRAME_CSUM_PARTIAL };
  harness_send_meta(h, f, n, &partial);
  char buf[16];
  g_assert_cmpint(recv(afd, buf, sizeof buf, 0), ==, 7);
  g_assert_cmpmem(buf, 7, "offload", 7);

  static char data[30000];
  memset(data, 'z', sizeof data);
  harness_clear(h);
  g_assert_cmpint(send(afd, data, sizeof data, 0), ==, sizeof data);
  size_t got = 0;
  bool saw_gso = false;
  while (got < sizeof data && (r = harness_wait(h, 1000))) {
    RxIp ip = rx_ip(r);
    t = rx_tcp(r);
    if (!t.len)
      continue;
    g_assert_true(h->meta.flags & NB_NET_FRAME_CSUM_PARTIAL);
    uint16_t want = (uint16_t)~nb_csum_fold(nb_csum_pseudo(ip.src, ip.dst, NB_IP_PROTO_TCP,
                                                           (uint16_t)ip.l4_len));
    g_assert_cmpuint(nb_rd16(ip.l4 + 16), ==, want);
    uint16_t start, offset;
    g_assert_true(nb_net_frame_csum_offsets(r->data, r->len, &start, &offset));
    g_assert_cmpuint(start, ==, NB_ETH_HLEN + NB_IP_HLEN);
    g_assert_cmpuint(offset, ==, 16);
    if (t.len > 1460) {
      g_assert_true(h->meta.flags & NB_NET_FRAME_GSO_TCPV4);
      g_assert_cmpuint(h->meta.gso_size, ==, 1460);
      saw_gso = true;
    }
    got += t.len;
  }
  g_assert_cmpuint(got, ==, sizeof data);
  g_assert_true(saw_gso);
  rx_ip_skip_l4_csum = false;
  close(afd);
  close(lfd);
  harness_free(h);
}

/* ---- port forwards ---- */

static void
test_hostfwd_runtime(void)
{
  Harness *h = harness_new(NULL);
  NbNatHostFwd fwd;
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_nat_hostfwd_parse("tcp:127.0.0.1:0-:22", &fwd, &error));
  g_assert_true(nb_nat_add_hostfwd(h->nat, &fwd, &error));
  g_assert_no_error(error);
  uint16_t port = nb_nat_hostfwd_bound_port(h->nat, NB_NAT_PROTO_TCP, INADDR_LOOPBACK, 0);
  g_assert_cmpuint(port, !=, 0);

  /* A host connection arrives as a SYN to guest port 22. */
  int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  connect(c, (struct sockaddr *)&sa, sizeof sa);
  GByteArray *r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.src, ==, GW_IP);
  g_assert_cmpuint(ip.dst, ==, GUEST_IP);
  RxTcp t = rx_tcp(r);
  g_assert_cmpuint(t.flags, ==, NB_TCP_SYN);
  g_assert_cmpuint(nb_rd16(ip.l4 + 2), ==, 22);
  close(c);

  g_assert_true(nb_nat_remove_hostfwd(h->nat, NB_NAT_PROTO_TCP, INADDR_LOOPBACK, port, &error));
  g_assert_false(nb_nat_remove_hostfwd(h->nat, NB_NAT_PROTO_TCP, INADDR_LOOPBACK, port, &error));
  g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_NOT_FOUND);
  harness_free(h);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/nat/arp", test_arp);
  g_test_add_func("/nat/dhcp/options", test_dhcp);
  g_test_add_func("/nat/dhcp/static-lease", test_dhcp_static_lease);
  g_test_add_func("/nat/dhcp/custom-subnet", test_dhcp_custom_subnet);
  g_test_add_func("/nat/dhcp/flood", test_dhcp_flood);
  g_test_add_func("/nat/icmp/echo-gateway", test_icmp_echo_gateway);
  g_test_add_func("/nat/udp/loopback", test_udp_loopback);
  g_test_add_func("/nat/udp/dns-forward", test_dns_forward);
  g_test_add_func("/nat/udp/port-unreachable", test_udp_port_unreachable);
  g_test_add_func("/nat/tcp/connect-data-close", test_tcp_connect_and_data);
  g_test_add_func("/nat/tcp/refused-and-reset", test_tcp_refused_and_reset);
  g_test_add_func("/nat/tcp/window", test_tcp_window);
  g_test_add_func("/nat/tcp/offloads", test_tcp_offloads);
  g_test_add_func("/nat/tcp/retransmit-fin", test_tcp_retransmit_fin);
  g_test_add_func("/nat/hostfwd/runtime", test_hostfwd_runtime);
  return g_test_run();
}
