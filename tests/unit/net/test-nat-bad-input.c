/* Every kind of bad frame from the issue: each is dropped and counted,
 * nothing comes back, and the engine goes on serving good frames. */
#include "nat-harness.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define STAT(h, field) (harness_stats(h).field)

/* Sends the frame; asserts it produced no frame and raised counter by one. */
#define EXPECT_DROP(h, frame_, len_, field)                                    \
  do {                                                                         \
    uint64_t before_ = STAT(h, field);                                         \
    harness_clear(h);                                                          \
    harness_send(h, frame_, len_);                                             \
    g_assert_cmpuint(STAT(h, field), ==, before_ + 1);                         \
    g_assert_cmpuint(h->frames->len, ==, 0);                                   \
  } while (0)

/* The gateway still answers ping: the engine is alive and well. */
static void
assert_alive(Harness *h)
{
  uint8_t icmp[16] = { 8, 0, 0, 0, 0, 1, 0, 1, 'a', 'l', 'i', 'v', 'e', '!', '!', '!' };
  nb_wr16(icmp + 2, nb_csum(icmp, sizeof icmp));
  uint8_t f[128];
  harness_clear(h);
  harness_send(h, f, build_ip(f, NB_IP_PROTO_ICMP, GUEST_IP, GW_IP, icmp, sizeof icmp, 3, 0));
  GByteArray *r = harness_wait(h, 100);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.l4[0], ==, 0);
}

static size_t
good_udp(uint8_t *f, uint16_t port)
{
  return build_udp(f, GUEST_IP, 40000, GW_IP, port, "data", 4);
}

static void
test_ethernet(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[16] = { 0 };
  EXPECT_DROP(h, f, 0, drop_eth);
  EXPECT_DROP(h, f, 13, drop_eth);
  g_autofree uint8_t *big = g_malloc0(70000);
  build_eth(big, NULL, NB_ETH_TYPE_IPV4);
  EXPECT_DROP(h, big, 70000, drop_eth);
  /* A multicast source address is a forgery. */
  uint8_t m[64];
  size_t n = good_udp(m, 9);
  m[6] |= 1;
  EXPECT_DROP(h, m, n, drop_eth);
  assert_alive(h);
  harness_free(h);
}

static void
test_arp(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[64] = { 0 };
  size_t n = build_eth(f, NULL, NB_ETH_TYPE_ARP);
  EXPECT_DROP(h, f, n + 20, drop_arp); /* truncated */
  nb_wr16(f + n, 6);                   /* not Ethernet hardware */
  EXPECT_DROP(h, f, n + 28, drop_arp);
  assert_alive(h);
  harness_free(h);
}

static void
test_ip_header(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[128];
  size_t n = good_udp(f, 9);
  uint8_t *ip = f + NB_ETH_HLEN;
  uint8_t g[128];

#define MUTATE(stmt, fix_csum)                                    \
  do {                                                            \
    memcpy(g, f, n);                                              \
    uint8_t *gip = g + NB_ETH_HLEN;                               \
    stmt;                                                         \
    if (fix_csum) {                                               \
      nb_wr16(gip + 10, 0);                                       \
      nb_wr16(gip + 10, nb_csum(gip, (size_t)(gip[0] & 15) * 4)); \
    }                                                             \
  } while (0)

  MUTATE(gip[0] = 0x65, true); /* version 6 in an IPv4 frame */
  EXPECT_DROP(h, g, n, drop_ip);
  MUTATE(gip[0] = 0x44, false); /* header shorter than 20 bytes */
  EXPECT_DROP(h, g, n, drop_ip);
  MUTATE(gip[0] = 0x4f, false); /* header longer than the packet */
  EXPECT_DROP(h, g, NB_ETH_HLEN + 40, drop_ip);
  MUTATE(nb_wr16(gip + 2, 200), true); /* total length past the frame */
  EXPECT_DROP(h, g, n, drop_ip);
  MUTATE(nb_wr16(gip + 2, 10), true); /* total length inside the header */
  EXPECT_DROP(h, g, n, drop_ip);
  MUTATE(gip[10] ^= 0x55, false); /* bad header checksum */
  EXPECT_DROP(h, g, n, drop_ip);
  MUTATE(nb_wr32(gip + 12, 0x08080808), true); /* spoofed source */
  EXPECT_DROP(h, g, n, drop_ip);
  EXPECT_DROP(h, f, NB_ETH_HLEN + 10, drop_ip); /* truncated header */
  (void)ip;

  /* Options: one running past the header, one of length zero, a source
   * route. */
  static const uint8_t bad_opts[][4] = {
    { 7, 8, 0, 0 }, { 7, 0, 0, 0 }, { 131, 3, 0, 0 }, { 1, 1, 1, 68 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad_opts); i++) {
    uint8_t o[128];
    memcpy(o, f, NB_ETH_HLEN + NB_IP_HLEN);
    memcpy(o + NB_ETH_HLEN + NB_IP_HLEN, bad_opts[i], 4);
    memcpy(o + NB_ETH_HLEN + NB_IP_HLEN + 4, f + NB_ETH_HLEN + NB_IP_HLEN, n - NB_ETH_HLEN - NB_IP_HLEN);
    uint8_t *oip = o + NB_ETH_HLEN;
    oip[0] = 0x46;
    nb_wr16(oip + 2, (uint16_t)(n - NB_ETH_HLEN + 4));
    nb_wr16(oip + 10, 0);
    nb_wr16(oip + 10, nb_csum(oip, 24));
    EXPECT_DROP(h, o, n + 4, drop_ip);
  }
  assert_alive(h);
  harness_free(h);
}

static size_t
fragment(uint8_t *f, uint16_t id, size_t offset, bool more, const uint8_t *data, size_t len)
{
  return build_ip(f, NB_IP_PROTO_UDP, GUEST_IP, GW_IP, data, len, id,
                  (uint16_t)((more ? 0x2000 : 0) | (offset / 8)));
}

static void
test_fragments(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[2048];
  uint8_t data[1024];
  memset(data, 0x41, sizeof data);

  /* Overlap: the second piece starts inside the first. */
  harness_send(h, f, fragment(f, 10, 0, true, data, 64));
  EXPECT_DROP(h, f, fragment(f, 10, 32, false, data, 64), drop_frag);
  /* A middle piece whose length is not a multiple of 8. */
  EXPECT_DROP(h, f, fragment(f, 11, 0, true, data, 60), drop_frag);
  /* Past 64 KiB. */
  EXPECT_DROP(h, f, fragment(f, 12, 65528, false, data, 64), drop_frag);
  /* A last piece that ends before a piece already in. */
  harness_send(h, f, fragment(f, 13, 512, true, data, 64));
  EXPECT_DROP(h, f, fragment(f, 13, 256, false, data, 64), drop_frag);
  /* The evil bit. */
  EXPECT_DROP(h, f, build_ip(f, NB_IP_PROTO_UDP, GUEST_IP, GW_IP, data, 64, 14, 0x8000 | 0x2000),
              drop_frag);

  /* Endless fragments: many datagrams that never complete. The table stays
   * bounded, old entries make room, and memory stays under the limit. */
  uint64_t full = STAT(h, drop_table_full);
  for (int i = 0; i < 2000; i++)
    harness_send(h, f, fragment(f, (uint16_t)(1000 + i), 8 * (size_t)(i % 100), true, data, 512));
  g_assert_cmpuint(STAT(h, drop_table_full), >, full);
  harness_run(h, 1100); /* one slow tick updates the byte count */
  g_assert_cmpuint(STAT(h, frag_bytes), <=, 1024 * 1024);
  g_assert_cmpuint(h->frames->len, ==, 0);

  /* A good fragmented datagram still arrives whole. */
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  bind(fd, (struct sockaddr *)&sa, sizeof sa);
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  struct timeval tv = { .tv_sec = 2 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint8_t whole[2048];
  size_t wn = build_udp(whole, GUEST_IP, 40001, GW_IP, ntohs(sa.sin_port), data, 1000);
  const uint8_t *udp = whole + NB_ETH_HLEN + NB_IP_HLEN;
  size_t ulen = wn - NB_ETH_HLEN - NB_IP_HLEN;
  /* Second half first: order must not matter. */
  harness_send(h, f, fragment(f, 77, 504, false, udp + 504, ulen - 504));
  harness_send(h, f, fragment(f, 77, 0, true, udp, 504));
  char buf[2048];
  g_assert_cmpint(recv(fd, buf, sizeof buf, 0), ==, 1000);
  g_assert_cmpmem(buf, 1000, data, 1000);
  close(fd);
  assert_alive(h);
  harness_free(h);
}

static void
test_tcp(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[256];
  size_t n;
  /* Data offset below 5 words, and past the segment. */
  n = build_tcp(f, GW_IP, 1234, 80, 1, 0, NB_TCP_SYN, 100, NULL, 0, NULL, 0);
  uint8_t *t = f + NB_ETH_HLEN + NB_IP_HLEN;
#define REFIX()                                                                       \
  do {                                                                                \
    nb_wr16(t + 16, 0);                                                               \
    size_t l_ = n - NB_ETH_HLEN - NB_IP_HLEN;                                         \
    nb_wr16(t + 16, nb_csum_fold(nb_csum_partial(                                     \
                      t, l_, nb_csum_pseudo(GUEST_IP, GW_IP, NB_IP_PROTO_TCP, (uint16_t)l_)))); \
  } while (0)
  t[12] = 0x40;
  REFIX();
  EXPECT_DROP(h, f, n, drop_tcp);
  t[12] = 0xf0;
  REFIX();
  EXPECT_DROP(h, f, n, drop_tcp);

  /* Flag combinations no stack sends. */
  static const uint8_t bad_flags[] = {
    NB_TCP_SYN | NB_TCP_FIN, NB_TCP_SYN | NB_TCP_RST, NB_TCP_FIN | NB_TCP_RST | NB_TCP_ACK, 0,
    NB_TCP_FIN, NB_TCP_URG | NB_TCP_PSH,
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad_flags); i++) {
    n = build_tcp(f, GW_IP, 1234, 80, 1, 0, bad_flags[i], 100, NULL, 0, NULL, 0);
    EXPECT_DROP(h, f, n, drop_tcp);
  }
  /* Bad checksum. */
  n = build_tcp(f, GW_IP, 1234, 80, 1, 0, NB_TCP_SYN, 100, NULL, 0, "x", 1);
  f[n - 1] ^= 1;
  EXPECT_DROP(h, f, n, drop_tcp);
  /* Options: zero length, running past the header, an MSS of the wrong
   * size. */
  static const uint8_t bad_opts[][4] = { { 8, 0, 1, 1 }, { 1, 1, 8, 10 }, { 2, 3, 5, 0 } };
  for (gsize i = 0; i < G_N_ELEMENTS(bad_opts); i++) {
    n = build_tcp(f, GW_IP, 1234, 80, 1, 0, NB_TCP_SYN, 100, bad_opts[i], 4, NULL, 0);
    EXPECT_DROP(h, f, n, drop_tcp);
  }
  /* Port zero. */
  n = build_tcp(f, GW_IP, 0, 80, 1, 0, NB_TCP_SYN, 100, NULL, 0, NULL, 0);
  EXPECT_DROP(h, f, n, drop_tcp);
  /* Shorter than a TCP header. */
  n = build_ip(f, NB_IP_PROTO_TCP, GUEST_IP, GW_IP, (const uint8_t *)"0123456789", 10, 5, 0);
  EXPECT_DROP(h, f, n, drop_tcp);
  assert_alive(h);
  harness_free(h);
}

static void
test_udp(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[256];
  size_t n = good_udp(f, 9);
  uint8_t *u = f + NB_ETH_HLEN + NB_IP_HLEN;
  uint8_t g[256];
  memcpy(g, f, n);
  nb_wr16(g + NB_ETH_HLEN + NB_IP_HLEN + 4, 40); /* says 40 bytes, has 12 */
  EXPECT_DROP(h, g, n, drop_udp);
  memcpy(g, f, n);
  nb_wr16(g + NB_ETH_HLEN + NB_IP_HLEN + 4, 4); /* shorter than its header */
  EXPECT_DROP(h, g, n, drop_udp);
  memcpy(g, f, n);
  g[n - 1] ^= 0xff; /* bad checksum */
  EXPECT_DROP(h, g, n, drop_udp);
  n = build_ip(f, NB_IP_PROTO_UDP, GUEST_IP, GW_IP, (const uint8_t *)"abc", 3, 5, 0);
  EXPECT_DROP(h, f, n, drop_udp);
  (void)u;
  assert_alive(h);
  harness_free(h);
}

static void
test_dhcp(void)
{
  Harness *h = harness_new(NULL);
  uint8_t b[300] = { 1, 1, 6 };
  memcpy(b + 28, guest_mac, 6);
  nb_wr32(b + 236, 0x63825363);
  uint8_t f[512];
  /* An option whose length runs past the end of the packet. */
  b[240] = 53;
  b[241] = 1;
  b[242] = 1;
  b[243] = 12;
  b[244] = 200;
  EXPECT_DROP(h, f, build_udp(f, 0, 68, 0xffffffffu, 67, b, 247), drop_dhcp);
  /* An option code with no room for its length byte. */
  EXPECT_DROP(h, f, build_udp(f, 0, 68, 0xffffffffu, 67, b, 244), drop_dhcp);
  /* Message type of the wrong size. */
  b[241] = 2;
  b[243] = 255;
  EXPECT_DROP(h, f, build_udp(f, 0, 68, 0xffffffffu, 67, b, 244), drop_dhcp);
  /* No message type at all, a short packet, a bad magic cookie. */
  b[240] = 255;
  EXPECT_DROP(h, f, build_udp(f, 0, 68, 0xffffffffu, 67, b, 241), drop_dhcp);
  EXPECT_DROP(h, f, build_udp(f, 0, 68, 0xffffffffu, 67, b, 100), drop_dhcp);
  b[240] = 53;
  b[241] = 1;
  b[242] = 1;
  b[243] = 255;
  nb_wr32(b + 236, 0x12345678);
  EXPECT_DROP(h, f, build_udp(f, 0, 68, 0xffffffffu, 67, b, 244), drop_dhcp);
  assert_alive(h);
  harness_free(h);
}

static void
test_icmp(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[256];
  /* A port unreachable that quotes only part of an IP header. */
  uint8_t e[8 + 12] = { 3, 3 };
  e[8] = 0x45;
  nb_wr16(e + 2, nb_csum(e, sizeof e));
  EXPECT_DROP(h, f, build_ip(f, NB_IP_PROTO_ICMP, GUEST_IP, GW_IP, e, sizeof e, 5, 0), drop_icmp);
  /* One that quotes a header claiming options it does not carry. */
  uint8_t e2[8 + 28] = { 11, 0 };
  e2[8] = 0x4f;
  nb_wr16(e2 + 2, nb_csum(e2, sizeof e2));
  EXPECT_DROP(h, f, build_ip(f, NB_IP_PROTO_ICMP, GUEST_IP, GW_IP, e2, sizeof e2, 5, 0), drop_icmp);
  /* Bad checksum, and shorter than an ICMP header. */
  uint8_t echo[12] = { 8, 0, 0, 0, 0, 1, 0, 1 };
  EXPECT_DROP(h, f, build_ip(f, NB_IP_PROTO_ICMP, GUEST_IP, GW_IP, echo, sizeof echo, 5, 0), drop_icmp);
  EXPECT_DROP(h, f, build_ip(f, NB_IP_PROTO_ICMP, GUEST_IP, GW_IP, echo, 4, 5, 0), drop_icmp);
  assert_alive(h);
  harness_free(h);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/nat-bad/ethernet", test_ethernet);
  g_test_add_func("/nat-bad/arp", test_arp);
  g_test_add_func("/nat-bad/ip-header", test_ip_header);
  g_test_add_func("/nat-bad/fragments", test_fragments);
  g_test_add_func("/nat-bad/tcp", test_tcp);
  g_test_add_func("/nat-bad/udp", test_udp);
  g_test_add_func("/nat-bad/dhcp", test_dhcp);
  g_test_add_func("/nat-bad/icmp", test_icmp);
  return g_test_run();
}
