/* IPv6 in the NAT engine: neighbor discovery, router advertisements, echo,
 * UDP, DNS and TCP over IPv6 host sockets, and bad IPv6 input, each fed as
 * frames in memory. */
#include "nat-harness.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define STAT(h, field) (harness_stats(h).field)

#define EXPECT_DROP(h, frame_, len_, field)                                    \
  do {                                                                         \
    uint64_t before_ = STAT(h, field);                                         \
    harness_clear(h);                                                          \
    harness_send(h, frame_, len_);                                             \
    harness_run(h, 2);                                                         \
    g_assert_cmpuint(STAT(h, field), ==, before_ + 1);                         \
    g_assert_cmpuint(h->frames->len, ==, 0);                                   \
  } while (0)

static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 1 };
static const uint8_t all_routers[16] = { 0xff, 0x02, [15] = 2 };
static const uint8_t all_routers_mac[6] = { 0x33, 0x33, 0, 0, 0, 2 };
static const uint8_t unspecified[16];
static const uint8_t gw_mac6[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };

/* ff02::1:ffXX:XXXX of addr, and its MAC. */
static void
solicited_node(const uint8_t *addr, uint8_t group[16], uint8_t mac[6])
{
  static const uint8_t prefix[13] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff };
  memcpy(group, prefix, 13);
  memcpy(group + 13, addr + 13, 3);
  mac[0] = mac[1] = 0x33;
  memcpy(mac + 2, group + 12, 4);
}

/* A neighbor solicitation for target, from src (with the guest's MAC in a
 * source link-layer option unless src is ::). */
static size_t
build_ns(uint8_t *f, const uint8_t *src, const uint8_t *target, bool to_group)
{
  uint8_t msg[32] = { 135 };
  memcpy(msg + 8, target, 16);
  size_t len = 24;
  if (memcmp(src, unspecified, 16) != 0) {
    msg[24] = 1;
    msg[25] = 1;
    memcpy(msg + 26, guest_mac, 6);
    len = 32;
  }
  uint8_t group[16], mac[6];
  solicited_node(target, group, mac);
  return build_icmp6(f, to_group ? mac : NULL, src, to_group ? group : target, 255, msg, len);
}

static size_t
build_rs(uint8_t *f)
{
  uint8_t msg[16] = { 133 };
  msg[8] = 1;
  msg[9] = 1;
  memcpy(msg + 10, guest_mac, 6);
  return build_icmp6(f, all_routers_mac, guest_ll6, all_routers, 255, msg, sizeof msg);
}

static size_t
build_echo6(uint8_t *f, const uint8_t *src, const uint8_t *dst, uint16_t id, uint16_t seq)
{
  uint8_t msg[24] = { 128, 0, 0, 0 };
  nb_wr16(msg + 4, id);
  nb_wr16(msg + 6, seq);
  memcpy(msg + 8, "nestbox ipv6 echo", 16);
  return build_icmp6(f, NULL, src, dst, 64, msg, sizeof msg);
}

/* The engine answers echo to its ULA gateway address: it is alive. */
static void
assert_alive6(Harness *h)
{
  uint8_t f[128];
  harness_clear(h);
  harness_send(h, f, build_echo6(f, guest_ip6, gw_ip6, 77, 1));
  GByteArray *r = harness_wait(h, 200);
  g_assert_nonnull(r);
  RxIp6 ip = rx_ip6(r);
  g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_ICMPV6);
  g_assert_cmpuint(ip.l4[0], ==, 129);
  harness_clear(h);
}

/* ---- neighbor discovery ---- */

static void
check_na(GByteArray *r, const uint8_t *target, const uint8_t *dst, bool solicited)
{
  g_assert_nonnull(r);
  RxIp6 ip = rx_ip6(r);
  g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_ICMPV6);
  g_assert_cmpuint(ip.hops, ==, 255);
  g_assert_cmpmem(ip.src, 16, target, 16);
  g_assert_cmpmem(ip.dst, 16, dst, 16);
  g_assert_cmpuint(ip.l4_len, ==, 32);
  g_assert_cmpuint(ip.l4[0], ==, 136);
  g_assert_cmpuint(ip.l4[4], ==, 0x80 | (solicited ? 0x40 : 0) | 0x20); /* router, override */
  g_assert_cmpmem(ip.l4 + 8, 16, target, 16);
  g_assert_cmpuint(ip.l4[24], ==, 2); /* target link-layer address */
  g_assert_cmpuint(ip.l4[25], ==, 1);
  g_assert_cmpmem(ip.l4 + 26, 6, gw_mac6, 6);
}

static void
test_neighbor_solicit(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[256];
  const uint8_t *ours[] = { router_ll6, gw_ip6, dns_ip6 };
  for (gsize i = 0; i < G_N_ELEMENTS(ours); i++) {
    /* Address resolution (to the solicited-node group) and reachability
     * checks (to the address itself). */
    harness_clear(h);
    harness_send(h, f, build_ns(f, guest_ll6, ours[i], true));
    check_na(harness_wait(h, 200), ours[i], guest_ll6, true);
    harness_clear(h);
    harness_send(h, f, build_ns(f, guest_ip6, ours[i], false));
    check_na(harness_wait(h, 200), ours[i], guest_ip6, true);
  }
  /* The guest's duplicate address detection for its own address: silence,
   * so the guest keeps it. */
  harness_clear(h);
  harness_send(h, f, build_ns(f, unspecified, guest_ip6, true));
  harness_run(h, 20);
  g_assert_cmpuint(h->frames->len, ==, 0);
  /* Detection for one of ours: defended, to all nodes. */
  harness_send(h, f, build_ns(f, unspecified, gw_ip6, true));
  check_na(harness_wait(h, 200), gw_ip6, all_nodes, false);
  /* Another address in the prefix: not ours to answer. */
  uint8_t other[16];
  memcpy(other, gw_ip6, 16);
  other[15] = 0x99;
  harness_clear(h);
  harness_send(h, f, build_ns(f, guest_ll6, other, true));
  harness_run(h, 20);
  g_assert_cmpuint(h->frames->len, ==, 0);
  g_assert_cmpuint(STAT(h, drop_ndp), ==, 0);
  harness_free(h);
}

/* ---- router advertisements ---- */

typedef struct {
  uint16_t lifetime;
  uint8_t hop_limit, flags;
  bool slla_ok;
  uint32_t mtu;
  uint8_t prefix[16];
  uint8_t prefix_len, prefix_flags;
  uint32_t valid, preferred;
  uint8_t rdnss[16];
  uint32_t rdnss_lifetime;
  char dnssl[256];
} Ra;

static Ra
parse_ra(GByteArray *r)
{
  g_assert_nonnull(r);
  RxIp6 ip = rx_ip6(r);
  g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_ICMPV6);
  g_assert_cmpuint(ip.hops, ==, 255);
  g_assert_cmpmem(ip.src, 16, router_ll6, 16);
  g_assert_cmpmem(ip.dst, 16, all_nodes, 16);
  g_assert_cmpuint(ip.l4[0], ==, 134);
  g_assert_cmpuint(ip.l4_len, >=, 16);
  Ra ra = { .hop_limit = ip.l4[4], .flags = ip.l4[5], .lifetime = nb_rd16(ip.l4 + 6) };
  GString *names = g_string_new(NULL);
  for (size_t i = 16; i < ip.l4_len;) {
    const uint8_t *o = ip.l4 + i;
    size_t ol = (size_t)o[1] * 8;
    g_assert_cmpuint(ol, >, 0);
    g_assert_cmpuint(i + ol, <=, ip.l4_len);
    switch (o[0]) {
    case 1:
      ra.slla_ok = ol == 8 && memcmp(o + 2, gw_mac6, 6) == 0;
      break;
    case 5:
      ra.mtu = nb_rd32(o + 4);
      break;
    case 3:
      g_assert_cmpuint(ol, ==, 32);
      ra.prefix_len = o[2];
      ra.prefix_flags = o[3];
      ra.valid = nb_rd32(o + 4);
      ra.preferred = nb_rd32(o + 8);
      memcpy(ra.prefix, o + 16, 16);
      break;
    case 25:
      g_assert_cmpuint(ol, ==, 24);
      ra.rdnss_lifetime = nb_rd32(o + 4);
      memcpy(ra.rdnss, o + 8, 16);
      break;
    case 31:
      for (size_t j = 8; j < ol && o[j];) {
        /* One name: labels up to the root. */
        while (j < ol && o[j]) {
          g_string_append_len(names, (const char *)o + j + 1, o[j]);
          j += (size_t)o[j] + 1;
          g_string_append_c(names, '.');
        }
        j++;
        g_string_append_c(names, ' ');
      }
      break;
    }
    i += ol;
  }
  g_strlcpy(ra.dnssl, names->str, sizeof ra.dnssl);
  g_string_free(names, TRUE);
  return ra;
}

static void
test_router_advert(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[256];
  harness_send(h, f, build_rs(f));
  Ra ra = parse_ra(harness_wait(h, 200));
  g_assert_cmpuint(ra.lifetime, >=, 600); /* a default router */
  g_assert_cmpuint(ra.hop_limit, ==, 64);
  g_assert_cmpuint(ra.flags, ==, 0); /* no DHCPv6 */
  g_assert_true(ra.slla_ok);
  g_assert_cmpuint(ra.mtu, ==, 1500);
  uint8_t prefix[16] = { 0xfd, 0, 0, 0x10, 0, 0, 0, 2 };
  g_assert_cmpmem(ra.prefix, 16, prefix, 16);
  g_assert_cmpuint(ra.prefix_len, ==, 64);
  g_assert_cmpuint(ra.prefix_flags, ==, 0xc0); /* on-link, autonomous */
  g_assert_cmpuint(ra.valid, >=, ra.preferred);
  g_assert_cmpuint(ra.preferred, >, 0);
  g_assert_cmpmem(ra.rdnss, 16, dns_ip6, 16);
  g_assert_cmpuint(ra.rdnss_lifetime, >, 0);
  g_assert_cmpstr(ra.dnssl, ==, "");

  /* A flood of solicitations is answered at most five times a second. */
  harness_clear(h);
  uint64_t policy = STAT(h, drop_policy);
  for (int i = 0; i < 50; i++)
    harness_send(h, f, build_rs(f));
  g_assert_cmpuint(h->frames->len, <=, 1);
  g_assert_cmpuint(STAT(h, drop_policy), >=, policy + 49);
  /* Once a while has passed, it is answered again. */
  harness_run(h, 250);
  harness_clear(h);
  harness_send(h, f, build_rs(f));
  parse_ra(harness_wait(h, 200));
  harness_free(h);
}

static void
test_router_advert_options(void)
{
  Harness *h = harness_new("net6=fd12:3456:789a:1::/64,mtu=1400,domainname=lab.test,"
                           "dnssearch=a.example,dnssearch=b.example");
  uint8_t f[256];
  uint8_t ll[16];
  memcpy(ll, guest_ll6, 16);
  harness_send(h, f, build_rs(f));
  Ra ra = parse_ra(harness_wait(h, 200));
  uint8_t prefix[16] = { 0xfd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0, 1 };
  g_assert_cmpmem(ra.prefix, 16, prefix, 16);
  uint8_t dns[16];
  memcpy(dns, prefix, 16);
  dns[15] = 3;
  g_assert_cmpmem(ra.rdnss, 16, dns, 16);
  g_assert_cmpuint(ra.mtu, ==, 1400);
  g_assert_cmpstr(ra.dnssl, ==, "lab.test. a.example. b.example. ");
  /* The old prefix's gateway is nobody now; the new one answers. */
  uint8_t guest[16];
  memcpy(guest, prefix, 16);
  guest[15] = 0x15;
  uint8_t gw[16];
  memcpy(gw, prefix, 16);
  gw[15] = 2;
  harness_clear(h);
  harness_send(h, f, build_ns(f, guest, gw, true));
  check_na(harness_wait(h, 200), gw, guest, true);
  harness_free(h);

  /* ipv6=off: the engine stays silent on IPv6. */
  h = harness_new("ipv6=off");
  harness_send(h, f, build_rs(f));
  harness_send(h, f, build_echo6(f, guest_ip6, gw_ip6, 1, 1));
  harness_run(h, 20);
  g_assert_cmpuint(h->frames->len, ==, 0);
  harness_free(h);
}

/* Unsolicited advertisements start only once the guest speaks IPv6: an
 * IPv4-only guest (and the IPv4 tests) never see one. */
static void
test_no_advert_ipv4(void)
{
  Harness *h = harness_new(NULL);
  harness_run(h, 1100);
  g_assert_cmpuint(h->frames->len, ==, 0); /* an IPv4-only guest sees none */
  harness_free(h);
}

/* ---- echo ---- */

static void
test_echo6(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[256];
  const uint8_t *ours[] = { router_ll6, gw_ip6, dns_ip6 };
  for (gsize i = 0; i < G_N_ELEMENTS(ours); i++) {
    const uint8_t *src = i == 0 ? guest_ll6 : guest_ip6;
    harness_clear(h);
    harness_send(h, f, build_echo6(f, src, ours[i], 0x4242, (uint16_t)i));
    GByteArray *r = harness_wait(h, 200);
    g_assert_nonnull(r);
    RxIp6 ip = rx_ip6(r);
    g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_ICMPV6);
    g_assert_cmpmem(ip.src, 16, ours[i], 16);
    g_assert_cmpmem(ip.dst, 16, src, 16);
    g_assert_cmpuint(ip.l4_len, ==, 24);
    g_assert_cmpuint(ip.l4[0], ==, 129);
    g_assert_cmpuint(nb_rd16(ip.l4 + 4), ==, 0x4242);
    g_assert_cmpuint(nb_rd16(ip.l4 + 6), ==, i);
    g_assert_cmpmem(ip.l4 + 8, 16, "nestbox ipv6 echo", 16);
  }
  harness_free(h);
}

/* Echo to an IPv6 address of the host's own (not loopback, not link-local)
 * leaves through a ping socket or the raw socket and its reply comes back
 * with the guest's id. */
static void
test_echo6_world(void)
{
  uint8_t host[16];
  bool found = false;
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) == 0) {
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
      if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET6)
        continue;
      const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
      if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_V4MAPPED(a) ||
          memcmp(a, gw_ip6, 8) == 0)
        continue;
      memcpy(host, a, 16);
      found = true;
    }
    freeifaddrs(ifs);
  }
  int probe = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (probe < 0)
    probe = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (probe >= 0)
    close(probe);
  if (!found || probe < 0) {
    g_test_skip(!found ? "the host has no IPv6 address but loopback and link-local"
                       : "neither ICMPv6 ping sockets (net.ipv4.ping_group_range) nor raw sockets");
    return;
  }
  Harness *h = harness_new(NULL);
  uint8_t f[256];
  harness_send(h, f, build_echo6(f, guest_ip6, host, 0x5151, 9));
  GByteArray *r = harness_wait(h, 2000);
  g_assert_nonnull(r);
  RxIp6 ip = rx_ip6(r);
  g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_ICMPV6);
  g_assert_cmpmem(ip.src, 16, host, 16);
  g_assert_cmpmem(ip.dst, 16, guest_ip6, 16);
  g_assert_cmpuint(ip.l4[0], ==, 129);
  g_assert_cmpuint(nb_rd16(ip.l4 + 4), ==, 0x5151);
  g_assert_cmpuint(nb_rd16(ip.l4 + 6), ==, 9);
  g_assert_cmpmem(ip.l4 + 8, 16, "nestbox ipv6 echo", 16);
  g_assert_cmpuint(STAT(h, icmp_flows), ==, 1);
  harness_free(h);
}

/* ---- UDP ---- */

static int
udp6_socket(uint16_t *port)
{
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  socklen_t sl = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &sl);
  *port = ntohs(sa.sin6_port);
  struct timeval tv = { .tv_sec = 2 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void
test_udp6_loopback(void)
{
  uint16_t port;
  int fd = udp6_socket(&port);
  if (fd < 0) {
    g_test_skip("this host has no IPv6 loopback");
    return;
  }
  Harness *h = harness_new(NULL);
  uint8_t f[2048];
  harness_send(h, f, build_udp6(f, guest_ip6, 40000, gw_ip6, port, "ping6", 5));
  harness_run(h, 5);
  char buf[64];
  struct sockaddr_in6 from;
  socklen_t fl = sizeof from;
  ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
  g_assert_cmpint(n, ==, 5);
  g_assert_cmpmem(buf, 5, "ping6", 5);
  g_assert_true(IN6_IS_ADDR_LOOPBACK(&from.sin6_addr)); /* the gateway is the host's ::1 */
  sendto(fd, "pong6!", 6, 0, (struct sockaddr *)&from, fl);
  GByteArray *r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  RxIp6 ip = rx_ip6(r);
  g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_UDP);
  g_assert_cmpmem(ip.src, 16, gw_ip6, 16);
  g_assert_cmpmem(ip.dst, 16, guest_ip6, 16);
  g_assert_cmpuint(nb_rd16(ip.l4), ==, port);
  g_assert_cmpuint(nb_rd16(ip.l4 + 2), ==, 40000);
  g_assert_cmpmem(ip.l4 + 8, 6, "pong6!", 6);

  /* A datagram larger than the guest's MTU comes in fragments (only the
   * source fragments in IPv6) that put it back together. */
  harness_clear(h);
  g_autofree uint8_t *big = g_malloc(4000);
  for (int i = 0; i < 4000; i++)
    big[i] = (uint8_t)(i * 7);
  sendto(fd, big, 4000, 0, (struct sockaddr *)&from, fl);
  g_autofree uint8_t *whole = g_malloc0(8 + 4000);
  size_t got = 0;
  bool last = false;
  uint32_t id = 0;
  while (!last) {
    r = harness_wait(h, 1000);
    g_assert_nonnull(r);
    ip = rx_ip6(r);
    g_assert_cmpuint(r->len, <=, NB_ETH_HLEN + 1500);
    g_assert_cmpuint(ip.next, ==, 44);
    uint16_t fo = nb_rd16(ip.l4 + 2);
    if (got == 0)
      id = nb_rd32(ip.l4 + 4);
    g_assert_cmpuint(nb_rd32(ip.l4 + 4), ==, id);
    g_assert_cmpuint(ip.l4[0], ==, NB_IP_PROTO_UDP);
    size_t off = fo & 0xfff8;
    g_assert_cmpuint(off, ==, got);
    memcpy(whole + off, ip.l4 + 8, ip.l4_len - 8);
    got += ip.l4_len - 8;
    last = !(fo & 1);
  }
  g_assert_cmpuint(got, ==, 8 + 4000);
  g_assert_cmpuint(nb_rd16(whole + 4), ==, 8 + 4000);
  g_assert_cmpuint(nb_csum_fold(nb_csum_partial(whole, got, nb_csum_pseudo6(gw_ip6, guest_ip6,
                                                                            NB_IP_PROTO_UDP,
                                                                            (uint32_t)got))),
                   ==, 0);
  g_assert_cmpmem(whole + 8, 4000, big, 4000);
  close(fd);
  harness_free(h);
}

static void
test_udp6_unreachable_and_policy(void)
{
  uint16_t port;
  int fd = udp6_socket(&port);
  if (fd < 0) {
    g_test_skip("this host has no IPv6 loopback");
    return;
  }
  close(fd); /* nobody listens there now */
  Harness *h = harness_new(NULL);
  uint8_t f[256];
  harness_send(h, f, build_udp6(f, guest_ip6, 40002, gw_ip6, port, "knock", 5));
  GByteArray *r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  RxIp6 ip = rx_ip6(r);
  g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_ICMPV6);
  g_assert_cmpmem(ip.dst, 16, guest_ip6, 16);
  g_assert_cmpuint(ip.l4[0], ==, 1);
  g_assert_cmpuint(ip.l4[1], ==, 4); /* port unreachable */
  const uint8_t *q = ip.l4 + 8;
  g_assert_cmpuint(q[0] >> 4, ==, 6);
  g_assert_cmpmem(q + 8, 16, guest_ip6, 16);
  g_assert_cmpmem(q + 24, 16, gw_ip6, 16);
  g_assert_cmpuint(nb_rd16(q + 40), ==, 40002);
  g_assert_cmpuint(nb_rd16(q + 42), ==, port);
  harness_free(h);

  /* loopback=off: the gateway is not the host any more. */
  h = harness_new("loopback=off");
  uint64_t policy = STAT(h, drop_policy);
  harness_send(h, f, build_udp6(f, guest_ip6, 40003, gw_ip6, port, "knock", 5));
  harness_run(h, 20);
  g_assert_cmpuint(STAT(h, drop_policy), ==, policy + 1);
  g_assert_cmpuint(STAT(h, udp_flows), ==, 0);
  /* Nor are the link's own scopes, multicast or IPv4-mapped addresses the
   * world. */
  static const uint8_t inside[][16] = {
    { 0xfe, 0x80, [15] = 9 }, { 0xfd, 0, 0, 0x10, 0, 0, 0, 2, [15] = 0x20 },
    { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 }, { [15] = 1 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(inside); i++) {
    policy = STAT(h, drop_policy);
    harness_send(h, f, build_udp6(f, guest_ip6, 40004, inside[i], 9, "x", 1));
    g_assert_cmpuint(STAT(h, drop_policy), ==, policy + 1);
  }
  harness_run(h, 20);
  g_assert_cmpuint(STAT(h, udp_flows), ==, 0);
  harness_free(h);

  /* restrict=on: an administratively prohibited error for the world. */
  h = harness_new("restrict=on");
  static const uint8_t world[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
  harness_send(h, f, build_udp6(f, guest_ip6, 40005, world, 9, "x", 1));
  r = harness_wait(h, 200);
  g_assert_nonnull(r);
  ip = rx_ip6(r);
  g_assert_cmpuint(ip.l4[0], ==, 1);
  g_assert_cmpuint(ip.l4[1], ==, 1);
  g_assert_cmpmem(ip.src, 16, gw_ip6, 16);
  harness_free(h);
}

/* DNS to the IPv6 DNS address reaches the host's resolver; an IPv4 one
 * (through the dual-stack socket) and an IPv6 one alike. */
static void
test_dns6_forward(void)
{
  static const struct {
    const char *conf;
    int family;
  } cases[] = {
    { "nameserver 127.0.0.99\n", AF_INET },
    { "nameserver ::1\n", AF_INET6 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    int fd = socket(cases[i].family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa4 = { .sin_family = AF_INET, .sin_port = htons(53),
                               .sin_addr.s_addr = htonl(0x7f000063) };
    struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(53),
                                .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int b = cases[i].family == AF_INET ? bind(fd, (struct sockaddr *)&sa4, sizeof sa4)
                                       : bind(fd, (struct sockaddr *)&sa6, sizeof sa6);
    if (fd < 0 || b < 0) {
      if (fd >= 0)
        close(fd);
      g_test_message("cannot bind port 53 for \"%s\" (needs root or a free port)", cases[i].conf);
      continue;
    }
    Harness *h = harness_new(NULL);
    g_file_set_contents(h->resolv, cases[i].conf, -1, NULL);
    struct timeval tv = { .tv_sec = 2 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t f[256];
    harness_send(h, f, build_udp6(f, guest_ip6, 5353, dns_ip6, 53, "query6", 6));
    char buf[64];
    struct sockaddr_in6 from;
    socklen_t fl = sizeof from;
    g_assert_cmpint(recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), ==, 6);
    g_assert_cmpmem(buf, 6, "query6", 6);
    sendto(fd, "answer6", 7, 0, (struct sockaddr *)&from, fl);
    GByteArray *r = harness_wait(h, 1000);
    g_assert_nonnull(r);
    RxIp6 ip = rx_ip6(r);
    g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_UDP);
    g_assert_cmpmem(ip.src, 16, dns_ip6, 16);
    g_assert_cmpuint(nb_rd16(ip.l4), ==, 53);
    g_assert_cmpuint(nb_rd16(ip.l4 + 2), ==, 5353);
    g_assert_cmpmem(ip.l4 + 8, 7, "answer6", 7);
    /* Another port of the DNS address: port unreachable. */
    harness_clear(h);
    harness_send(h, f, build_udp6(f, guest_ip6, 5353, dns_ip6, 54, "q", 1));
    r = harness_wait(h, 200);
    g_assert_nonnull(r);
    ip = rx_ip6(r);
    g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_ICMPV6);
    g_assert_cmpmem(ip.src, 16, dns_ip6, 16);
    g_assert_cmpuint(ip.l4[0], ==, 1);
    g_assert_cmpuint(ip.l4[1], ==, 4);
    close(fd);
    harness_free(h);
  }
}

/* ---- TCP ---- */

static RxIp6
rx_tcp6(GByteArray *r, uint8_t *flags, uint32_t *seq, uint32_t *ack, int *mss)
{
  g_assert_nonnull(r);
  RxIp6 ip = rx_ip6(r);
  g_assert_cmpuint(ip.next, ==, NB_IP_PROTO_TCP);
  const uint8_t *t = ip.l4;
  *flags = t[13];
  *seq = nb_rd32(t + 4);
  *ack = nb_rd32(t + 8);
  size_t doff = (size_t)(t[12] >> 4) * 4;
  if (mss) {
    *mss = -1;
    for (size_t i = 20; i + 1 < doff;) {
      if (t[i] == 0)
        break;
      if (t[i] == 1) {
        i++;
        continue;
      }
      if (t[i] == 2)
        *mss = nb_rd16(t + i + 2);
      i += t[i + 1];
    }
  }
  ip.l4 += doff;
  ip.l4_len -= doff;
  return ip;
}

static void
test_tcp6(void)
{
  int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    if (lfd >= 0)
      close(lfd);
    g_test_skip("this host has no IPv6 loopback");
    return;
  }
  listen(lfd, 4);
  socklen_t sl = sizeof sa;
  getsockname(lfd, (struct sockaddr *)&sa, &sl);
  uint16_t port = ntohs(sa.sin6_port);
  static const uint8_t syn_opts[] = { 2, 4, 0x05, 0xa0, 1, 3, 3, 7 }; /* MSS 1440, WS 7 */

  Harness *h = harness_new_full(NULL, NB_NET_PEER_CSUM_OFFLOAD | NB_NET_PEER_TSO4);
  uint8_t f[2048];
  uint32_t gseq = 5000;
  harness_send(h, f, build_tcp6(f, gw_ip6, 33000, port, gseq, 0, NB_TCP_SYN, 65535, syn_opts,
                                sizeof syn_opts, NULL, 0));
  uint8_t flags;
  uint32_t seq, ack;
  int mss;
  rx_tcp6(harness_wait(h, 2000), &flags, &seq, &ack, &mss);
  /* IPv6 frames carry whole checksums and no GSO, whatever the peer takes. */
  g_assert_cmpuint(h->meta.flags, ==, 0);
  g_assert_cmpuint(flags, ==, NB_TCP_SYN | NB_TCP_ACK);
  g_assert_cmpuint(ack, ==, gseq + 1);
  g_assert_cmpint(mss, ==, 1500 - 40 - 20);
  uint32_t hseq = seq + 1;
  gseq++;
  harness_send(h, f, build_tcp6(f, gw_ip6, 33000, port, gseq, hseq, NB_TCP_ACK, 512, NULL, 0,
                                NULL, 0));
  int afd = accept(lfd, NULL, NULL);
  g_assert_cmpint(afd, >=, 0);

  harness_clear(h);
  harness_send(h, f, build_tcp6(f, gw_ip6, 33000, port, gseq, hseq, NB_TCP_ACK | NB_TCP_PSH, 512,
                                NULL, 0, "hello6", 6));
  gseq += 6;
  char buf[64];
  g_assert_cmpint(recv(afd, buf, sizeof buf, 0), ==, 6);
  g_assert_cmpmem(buf, 6, "hello6", 6);

  /* Host to guest: 8000 bytes go in segments of the MSS, each a frame
   * the MTU takes. */
  g_autofree uint8_t *data = g_malloc(8000);
  for (int i = 0; i < 8000; i++)
    data[i] = (uint8_t)(i * 13);
  g_assert_cmpint(send(afd, data, 8000, 0), ==, 8000);
  g_autofree uint8_t *got = g_malloc0(8000);
  size_t have = 0;
  while (have < 8000) {
    GByteArray *r = harness_wait(h, 1000);
    g_assert_nonnull(r);
    g_assert_cmpuint(r->len, <=, NB_ETH_HLEN + 1500);
    g_assert_cmpuint(h->meta.flags, ==, 0);
    RxIp6 ip = rx_tcp6(r, &flags, &seq, &ack, NULL);
    if (ip.l4_len == 0)
      continue; /* the ACK of hello6 */
    g_assert_cmpuint(ack, ==, gseq);
    g_assert_cmpuint(seq, ==, hseq + have);
    memcpy(got + have, ip.l4, ip.l4_len);
    have += ip.l4_len;
  }
  g_assert_cmpmem(got, 8000, data, 8000);
  hseq += 8000;
  harness_send(h, f, build_tcp6(f, gw_ip6, 33000, port, gseq, hseq, NB_TCP_ACK, 512, NULL, 0,
                                NULL, 0));
  harness_clear(h);
  close(afd);
  GByteArray *r;
  do {
    r = harness_wait(h, 1000);
    g_assert_nonnull(r);
    rx_tcp6(r, &flags, &seq, &ack, NULL);
  } while (!(flags & NB_TCP_FIN));
  g_assert_cmpuint(seq, ==, hseq);
  harness_send(h, f, build_tcp6(f, gw_ip6, 33000, port, gseq, hseq + 1, NB_TCP_ACK | NB_TCP_FIN,
                                512, NULL, 0, NULL, 0));
  harness_run(h, 20);
  g_assert_cmpuint(STAT(h, tcp_flows), ==, 0);
  close(lfd);

  /* A closed port: refused, as a RST. */
  harness_clear(h);
  harness_send(h, f, build_tcp6(f, gw_ip6, 33001, port, 1, 0, NB_TCP_SYN, 65535, NULL, 0, NULL, 0));
  rx_tcp6(harness_wait(h, 2000), &flags, &seq, &ack, NULL);
  g_assert_cmpuint(flags & NB_TCP_RST, !=, 0);
  harness_free(h);
}

/* ---- bad input ---- */

static void
test_bad_ip6(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[512], g[512];
  size_t n = build_udp6(f, guest_ip6, 40000, gw_ip6, 9, "data", 4);

  /* Truncated headers. */
  EXPECT_DROP(h, f, NB_ETH_HLEN + 39, drop_ip6);
  EXPECT_DROP(h, f, NB_ETH_HLEN + 1, drop_ip6);
  /* Not version 6. */
  memcpy(g, f, n);
  g[NB_ETH_HLEN] = 0x40;
  EXPECT_DROP(h, g, n, drop_ip6);
  /* A payload length that claims more than the frame holds. */
  memcpy(g, f, n);
  nb_wr16(g + NB_ETH_HLEN + 4, (uint16_t)(n - NB_ETH_HLEN - NB_IP6_HLEN + 1));
  EXPECT_DROP(h, g, n, drop_ip6);
  nb_wr16(g + NB_ETH_HLEN + 4, 0xffff);
  EXPECT_DROP(h, g, n, drop_ip6);
  /* One that claims less: the UDP length no longer fits. */
  nb_wr16(g + NB_ETH_HLEN + 4, 4);
  EXPECT_DROP(h, g, n, drop_udp);
  /* Sources that are not the guest's: another prefix, multicast, ours. */
  static const uint8_t bad_src[][16] = {
    { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 }, { 0xff, 0x02, [15] = 1 },
    { 0xfd, 0, 0, 0x10, 0, 0, 0, 2, [15] = 2 }, { 0xfe, 0x80, [15] = 2 },
    { 0xfd, 0, 0, 0x10, 0, 0, 0, 2 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad_src); i++)
    EXPECT_DROP(h, f, build_udp6(f, bad_src[i], 40000, gw_ip6, 9, "data", 4), drop_ip6);
  /* UDP without a checksum is not allowed over IPv6. */
  n = build_udp6(f, guest_ip6, 40000, gw_ip6, 9, "data", 4);
  nb_wr16(f + NB_ETH_HLEN + NB_IP6_HLEN + 6, 0);
  EXPECT_DROP(h, f, n, drop_udp);
  /* A bad TCP checksum. */
  n = build_tcp6(f, gw_ip6, 1234, 80, 1, 0, NB_TCP_SYN, 1000, NULL, 0, NULL, 0);
  f[n - 1] ^= 1;
  EXPECT_DROP(h, f, n, drop_tcp);
  /* TCP or UDP to a group or from :: is not for a NAT. */
  static const uint8_t group[16] = { 0xff, 0x02, [15] = 0xfb };
  EXPECT_DROP(h, f, build_udp6(f, guest_ip6, 5353, group, 5353, "mdns", 4), drop_policy);
  EXPECT_DROP(h, f, build_udp6(f, unspecified, 5353, gw_ip6, 5353, "x", 1), drop_policy);
  assert_alive6(h);
  harness_free(h);
}

/* An extension header of type next, len bytes (a multiple of 8), in front
 * of l4; returns the length of both. */
static size_t
ext_header(uint8_t *out, uint8_t next, size_t len, const uint8_t *l4, size_t l4_len)
{
  memset(out, 0, len);
  out[0] = next;
  out[1] = (uint8_t)(len / 8 - 1);
  /* A PadN option fills the rest. */
  out[2] = 1;
  out[3] = (uint8_t)(len - 4);
  memcpy(out + len, l4, l4_len);
  return len + l4_len;
}

static void
test_bad_ext_headers(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[1024], body[512], tmp[512];
  uint8_t echo[24] = { 128, 0, 0, 0, 0, 9, 0, 1 };
  nb_wr16(echo + 2, nb_csum_fold(nb_csum_partial(echo, sizeof echo,
                                                 nb_csum_pseudo6(guest_ip6, gw_ip6, 58, 24))));

  /* A good chain (hop-by-hop, then destination options) still works. */
  size_t n = ext_header(tmp, 58, 8, echo, sizeof echo);
  n = ext_header(body, 60, 8, tmp, n);
  harness_send(h, f, build_ip6(f, NULL, 0, guest_ip6, gw_ip6, 64, body, n));
  GByteArray *r = harness_wait(h, 200);
  g_assert_nonnull(r);
  g_assert_cmpuint(rx_ip6(r).l4[0], ==, 129);

  /* A header that runs past the end of the payload. */
  n = ext_header(body, 58, 16, echo, 0);
  EXPECT_DROP(h, f, build_ip6(f, NULL, 60, guest_ip6, gw_ip6, 64, body, 8), drop_ip6);
  /* One too short for its own first 8 bytes. */
  EXPECT_DROP(h, f, build_ip6(f, NULL, 60, guest_ip6, gw_ip6, 64, body, 4), drop_ip6);
  /* A chain that is too long: nine destination options headers. */
  memcpy(body, echo, sizeof echo);
  n = sizeof echo;
  uint8_t next = 58;
  for (int i = 0; i < 9; i++) {
    memcpy(tmp, body, n);
    n = ext_header(body, next, 8, tmp, n);
    next = 60;
  }
  EXPECT_DROP(h, f, build_ip6(f, NULL, 60, guest_ip6, gw_ip6, 64, body, n), drop_ip6);
  /* Hop-by-hop anywhere but first. */
  n = ext_header(tmp, 58, 8, echo, sizeof echo);
  n = ext_header(body, 0, 8, tmp, n);
  EXPECT_DROP(h, f, build_ip6(f, NULL, 60, guest_ip6, gw_ip6, 64, body, n), drop_ip6);
  /* An option that runs past its header. */
  n = ext_header(body, 58, 8, echo, sizeof echo);
  body[3] = 200;
  EXPECT_DROP(h, f, build_ip6(f, NULL, 60, guest_ip6, gw_ip6, 64, body, n), drop_ip6);
  /* An unknown option that says "discard". */
  n = ext_header(body, 58, 8, echo, sizeof echo);
  body[2] = 0x80;
  body[3] = 2;
  body[6] = 1;
  body[7] = 0;
  EXPECT_DROP(h, f, build_ip6(f, NULL, 60, guest_ip6, gw_ip6, 64, body, n), drop_ip6);
  /* A routing header with segments left: a source route. */
  n = ext_header(body, 58, 24, echo, sizeof echo);
  body[2] = 0; /* type 0 */
  body[3] = 1; /* segments left */
  EXPECT_DROP(h, f, build_ip6(f, NULL, 43, guest_ip6, gw_ip6, 64, body, n), drop_ip6);
  /* Fragments are not reassembled; an atomic fragment is a whole packet. */
  memset(body, 0, 8);
  body[0] = 58;
  nb_wr16(body + 2, 1); /* offset 0, more to come */
  memcpy(body + 8, echo, sizeof echo);
  EXPECT_DROP(h, f, build_ip6(f, NULL, 44, guest_ip6, gw_ip6, 64, body, 8 + sizeof echo),
              drop_frag);
  nb_wr16(body + 2, 0);
  harness_clear(h);
  harness_send(h, f, build_ip6(f, NULL, 44, guest_ip6, gw_ip6, 64, body, 8 + sizeof echo));
  r = harness_wait(h, 200);
  g_assert_nonnull(r);
  g_assert_cmpuint(rx_ip6(r).l4[0], ==, 129);
  /* An unknown upper layer: parameter problem, pointing at the field. */
  harness_clear(h);
  uint64_t policy = STAT(h, drop_policy);
  harness_send(h, f, build_ip6(f, NULL, 253, guest_ip6, gw_ip6, 64, echo, sizeof echo));
  g_assert_cmpuint(STAT(h, drop_policy), ==, policy + 1);
  r = harness_wait(h, 200);
  g_assert_nonnull(r);
  RxIp6 ip = rx_ip6(r);
  g_assert_cmpuint(ip.l4[0], ==, 4);
  g_assert_cmpuint(ip.l4[1], ==, 1);
  g_assert_cmpuint(nb_rd32(ip.l4 + 4), ==, 6);
  assert_alive6(h);
  harness_free(h);
}

static void
test_bad_ndp(void)
{
  Harness *h = harness_new(NULL);
  uint8_t f[512];
  uint8_t group[16], mac[6];
  solicited_node(gw_ip6, group, mac);
  uint8_t ns[40] = { 135 };
  memcpy(ns + 8, gw_ip6, 16);

  /* Options of zero length, or longer than what is left. */
  ns[24] = 1;
  ns[25] = 0;
  EXPECT_DROP(h, f, build_icmp6(f, mac, guest_ll6, group, 255, ns, 32), drop_ndp);
  ns[25] = 2;
  EXPECT_DROP(h, f, build_icmp6(f, mac, guest_ll6, group, 255, ns, 32), drop_ndp);
  /* A source link-layer option of the wrong size. */
  ns[25] = 2;
  EXPECT_DROP(h, f, build_icmp6(f, mac, guest_ll6, group, 255, ns, 40), drop_ndp);
  /* A lone byte of option. */
  EXPECT_DROP(h, f, build_icmp6(f, mac, guest_ll6, group, 255, ns, 25), drop_ndp);
  /* Truncated before the target. */
  EXPECT_DROP(h, f, build_icmp6(f, mac, guest_ll6, group, 255, ns, 20), drop_ndp);
  /* From off the link: a hop limit below 255. */
  EXPECT_DROP(h, f, build_icmp6(f, mac, guest_ll6, group, 64, ns, 24), drop_ndp);
  /* A multicast target. */
  memcpy(ns + 8, group, 16);
  EXPECT_DROP(h, f, build_icmp6(f, mac, guest_ll6, group, 255, ns, 24), drop_ndp);
  memcpy(ns + 8, gw_ip6, 16);
  /* Detection (from ::) with a link-layer address, or not to the group. */
  ns[24] = 1;
  ns[25] = 1;
  memcpy(ns + 26, guest_mac, 6);
  EXPECT_DROP(h, f, build_icmp6(f, mac, unspecified, group, 255, ns, 32), drop_ndp);
  EXPECT_DROP(h, f, build_icmp6(f, NULL, unspecified, gw_ip6, 255, ns, 24), drop_ndp);
  /* To a group that is not the target's. */
  static const uint8_t all[16] = { 0xff, 0x02, [15] = 1 };
  EXPECT_DROP(h, f, build_icmp6(f, mac, guest_ll6, all, 255, ns, 32), drop_ndp);
  /* A bad checksum. */
  size_t n = build_icmp6(f, mac, guest_ll6, group, 255, ns, 32);
  f[n - 1] ^= 0x55;
  EXPECT_DROP(h, f, n, drop_ndp);
  /* Router solicitations: a zero-length option, or truncated. */
  uint8_t rs[16] = { 133 };
  rs[8] = 1;
  rs[9] = 0;
  EXPECT_DROP(h, f, build_icmp6(f, all_routers_mac, guest_ll6, all_routers, 255, rs, 16),
              drop_ndp);
  EXPECT_DROP(h, f, build_icmp6(f, all_routers_mac, guest_ll6, all_routers, 255, rs, 4),
              drop_ndp);
  /* Advertisements from the guest with a zero-length option. */
  uint8_t na[32] = { 136 };
  memcpy(na + 8, guest_ip6, 16);
  na[24] = 2;
  EXPECT_DROP(h, f, build_icmp6(f, NULL, guest_ip6, gw_ip6, 255, na, 32), drop_ndp);
  /* An ICMPv6 error that quotes no IPv6 header. */
  uint8_t err[16] = { 1, 4 };
  EXPECT_DROP(h, f, build_icmp6(f, NULL, guest_ip6, gw_ip6, 64, err, sizeof err), drop_icmp);

  /* After all that, resolution still works. */
  harness_clear(h);
  harness_send(h, f, build_ns(f, guest_ll6, gw_ip6, true));
  check_na(harness_wait(h, 200), gw_ip6, guest_ll6, true);
  assert_alive6(h);
  harness_free(h);
}

static void
test_config6(void)
{
  static const char *bad[] = {
    "nat,net6=fd00::/48", "nat,net6=fd00::1/64", "nat,net6=fe80::/64", "nat,net6=ff02::/64",
    "nat,net6=10.0.2.0/64", "nat,net6=::/64", "nat,ipv6=maybe", "nat,mtu=1000,ipv6=on",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(NbNatConfig) c = nb_nat_config_parse(bad[i], &error);
    g_assert_null(c);
    g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG);
  }
  g_autoptr(GError) error = NULL;
  g_autoptr(NbNatConfig) c = nb_nat_config_parse("nat,net6=2001:db8:1:2::/64", &error);
  g_assert_no_error(error);
  g_assert_true(c->ipv6);
  uint8_t want[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2 };
  g_assert_cmpmem(c->net6, 16, want, 16);
  /* nb_nat_new() checks a configuration built in code as well. */
  g_autoptr(NbNatConfig) odd = nb_nat_config_new();
  odd->net6[15] = 1;
  g_autoptr(GError) error2 = NULL;
  g_assert_null(nb_nat_new(odd, &error2));
  g_assert_error(error2, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG);
  /* A small MTU turns IPv6 off rather than failing. */
  g_autoptr(NbNatConfig) small = nb_nat_config_parse("nat,mtu=576", &error);
  g_assert_no_error(error);
  g_assert_false(small->ipv6);
}

/* ---- port forwards on IPv6 host addresses ---- */

/* A client socket connected (or connecting) to [::1]:port. */
static int
connect6(int type, uint16_t port)
{
  int c = socket(AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port),
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  connect(c, (struct sockaddr *)&sa, sizeof sa);
  return c;
}

static bool
have_loopback6(void)
{
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

/* Reads n bytes from a non-blocking socket while the engine runs. */
static void
recv_all(Harness *h, int fd, char *buf, size_t n)
{
  size_t got = 0;
  for (int i = 0; i < 400 && got < n; i++) {
    harness_run(h, 5);
    ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
    if (r > 0)
      got += (size_t)r;
  }
  g_assert_cmpuint(got, ==, n);
}

/* The usual case: listen on the host's ::1, reach the guest over the IPv4
 * address DHCP gave it; the host peer shows as the gateway. */
static void
test_hostfwd6_to_guest4(void)
{
  if (!have_loopback6()) {
    g_test_skip("this host has no IPv6 loopback");
    return;
  }
  Harness *h = harness_new(NULL);
  NbNatHostFwd fwd;
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_nat_hostfwd_parse("tcp:[::1]:0-:22", &fwd, &error));
  g_assert_true(fwd.host_v6);
  g_assert_false(fwd.guest_v6);
  g_assert_true(nb_nat_add_hostfwd(h->nat, &fwd, &error));
  g_assert_no_error(error);
  uint16_t port = nb_nat_hostfwd_rule_bound_port(h->nat, &fwd);
  g_assert_cmpuint(port, !=, 0);
  /* The IPv4 look-up does not find the IPv6 forward. */
  g_assert_cmpuint(nb_nat_hostfwd_bound_port(h->nat, NB_NAT_PROTO_TCP, INADDR_LOOPBACK, 0), ==, 0);

  int c = connect6(SOCK_STREAM, port);
  GByteArray *r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.proto, ==, NB_IP_PROTO_TCP);
  g_assert_cmpuint(ip.src, ==, GW_IP);
  g_assert_cmpuint(ip.dst, ==, GUEST_IP);
  g_assert_cmpuint(ip.l4[13], ==, NB_TCP_SYN);
  g_assert_cmpuint(nb_rd16(ip.l4 + 2), ==, 22);
  uint16_t rport = nb_rd16(ip.l4);
  uint32_t hseq = nb_rd32(ip.l4 + 4) + 1;

  /* The guest accepts; data goes both ways. */
  uint8_t f[2048];
  uint32_t gseq = 9000;
  harness_clear(h);
  harness_send(h, f, build_tcp(f, GW_IP, 22, rport, gseq, hseq, NB_TCP_SYN | NB_TCP_ACK, 65535,
                               NULL, 0, NULL, 0));
  gseq++;
  harness_run(h, 10);
  harness_send(h, f, build_tcp(f, GW_IP, 22, rport, gseq, hseq, NB_TCP_ACK | NB_TCP_PSH, 65535,
                               NULL, 0, "SSH-2.0-guest\r\n", 15));
  gseq += 15;
  char buf[64];
  recv_all(h, c, buf, 15);
  g_assert_cmpmem(buf, 15, "SSH-2.0-guest\r\n", 15);
  harness_clear(h);
  g_assert_cmpint(send(c, "from ::1", 8, 0), ==, 8);
  bool seen = false;
  while (!seen && (r = harness_wait(h, 1000))) {
    ip = rx_ip(r);
    size_t doff = (size_t)(ip.l4[12] >> 4) * 4;
    if (ip.l4_len == doff)
      continue;
    g_assert_cmpuint(ip.src, ==, GW_IP);
    g_assert_cmpuint(nb_rd32(ip.l4 + 4), ==, hseq);
    g_assert_cmpuint(ip.l4_len - doff, ==, 8);
    g_assert_cmpmem(ip.l4 + doff, 8, "from ::1", 8);
    seen = true;
  }
  g_assert_true(seen);
  close(c);

  /* Removed while running: the port no longer takes connections. */
  NbNatHostFwd key;
  g_autofree char *text = g_strdup_printf("tcp:[::1]:%u-:1", port);
  g_assert_true(nb_nat_hostfwd_parse(text, &key, &error));
  g_assert_true(nb_nat_remove_hostfwd_rule(h->nat, &key, &error));
  g_assert_false(nb_nat_remove_hostfwd_rule(h->nat, &key, &error));
  g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_NOT_FOUND);
  g_assert_nonnull(strstr(error->message, "[::1]"));
  g_clear_error(&error);
  harness_run(h, 5);
  c = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port),
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  g_assert_cmpint(connect(c, (struct sockaddr *)&sa, sizeof sa), <, 0);
  close(c);
  harness_free(h);
}

/* A forward to the guest's IPv6 address: the SYN comes over IPv6, from the
 * gateway's PREFIX::2 (the host's ::1). */
static void
test_hostfwd6_to_guest6(void)
{
  if (!have_loopback6()) {
    g_test_skip("this host has no IPv6 loopback");
    return;
  }
  Harness *h = harness_new("hostfwd=tcp:[::1]:0-[fd00:10:0:2::15]:80");
  NbNatHostFwd key;
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_nat_hostfwd_parse("tcp:[::1]:0-:1", &key, &error));
  uint16_t port = nb_nat_hostfwd_rule_bound_port(h->nat, &key);
  g_assert_cmpuint(port, !=, 0);
  assert_alive6(h); /* the guest has spoken: the engine knows its MAC */
  int c = connect6(SOCK_STREAM, port);
  uint8_t flags;
  uint32_t seq, ack;
  int mss;
  GByteArray *r = harness_wait(h, 1000);
  RxIp6 ip = rx_tcp6(r, &flags, &seq, &ack, &mss);
  g_assert_cmpuint(flags, ==, NB_TCP_SYN);
  g_assert_cmpmem(ip.src, 16, gw_ip6, 16);
  g_assert_cmpmem(ip.dst, 16, guest_ip6, 16);
  g_assert_cmpint(mss, ==, 1500 - 40 - 20);
  uint16_t rport = nb_rd16(r->data + NB_ETH_HLEN + NB_IP6_HLEN);
  g_assert_cmpuint(nb_rd16(r->data + NB_ETH_HLEN + NB_IP6_HLEN + 2), ==, 80);
  uint32_t hseq = seq + 1, gseq = 100;
  uint8_t f[2048];
  harness_clear(h);
  harness_send(h, f, build_tcp6(f, gw_ip6, 80, rport, gseq, hseq, NB_TCP_SYN | NB_TCP_ACK, 65535,
                                NULL, 0, NULL, 0));
  gseq++;
  harness_run(h, 10);
  harness_send(h, f, build_tcp6(f, gw_ip6, 80, rport, gseq, hseq, NB_TCP_ACK | NB_TCP_PSH, 65535,
                                NULL, 0, "HTTP/1.0 200 OK\r\n", 17));
  char buf[32];
  recv_all(h, c, buf, 17);
  g_assert_cmpmem(buf, 17, "HTTP/1.0 200 OK\r\n", 17);
  close(c);
  harness_free(h);
}

/* UDP from [::1] to the guest's IPv4 port, and the reply back to the
 * host peer through the forward's socket. */
static void
test_hostfwd6_udp(void)
{
  if (!have_loopback6()) {
    g_test_skip("this host has no IPv6 loopback");
    return;
  }
  Harness *h = harness_new("hostfwd=udp:[::1]:0-:7777");
  NbNatHostFwd key;
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_nat_hostfwd_parse("udp:[::1]:0-:1", &key, &error));
  uint16_t port = nb_nat_hostfwd_rule_bound_port(h->nat, &key);
  g_assert_cmpuint(port, !=, 0);
  int c = connect6(SOCK_DGRAM, port);
  g_assert_cmpint(send(c, "query", 5, 0), ==, 5);
  GByteArray *r = harness_wait(h, 1000);
  g_assert_nonnull(r);
  RxIp ip = rx_ip(r);
  g_assert_cmpuint(ip.proto, ==, NB_IP_PROTO_UDP);
  g_assert_cmpuint(ip.src, ==, GW_IP);
  g_assert_cmpuint(ip.dst, ==, GUEST_IP);
  g_assert_cmpuint(nb_rd16(ip.l4 + 2), ==, 7777);
  g_assert_cmpmem(ip.l4 + 8, 5, "query", 5);
  uint16_t rport = nb_rd16(ip.l4);
  uint8_t f[256];
  harness_send(h, f, build_udp(f, GUEST_IP, 7777, GW_IP, rport, "answer", 6));
  char buf[16];
  recv_all(h, c, buf, 6);
  g_assert_cmpmem(buf, 6, "answer", 6);
  close(c);
  harness_free(h);
}

/* Parsing, printing and refusals of IPv6 forwards. */
static void
test_hostfwd6_config(void)
{
  static const char *round[] = {
    "tcp:[::1]:2222-:22", "udp:[::]:53-:53", "tcp:[::1]:8080-[fd00:10:0:2::15]:80",
    "tcp:127.0.0.1:2222-:22", "tcp:0.0.0.0:80-10.0.2.20:8080",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(round); i++) {
    NbNatHostFwd fwd;
    g_autoptr(GError) error = NULL;
    g_assert_true(nb_nat_hostfwd_parse(round[i], &fwd, &error));
    g_autofree char *back = nb_nat_hostfwd_format(&fwd);
    g_assert_cmpstr(back, ==, round[i]);
  }
  static const char *bad_syntax[] = {
    "tcp:[::1:2222-:22", "tcp:::1:2222-:22", "tcp:[]:2222-:22", "tcp:[fe80::1%lo]:2222-:22",
    "tcp:[10.0.2.2]:2222-:22", "tcp:[::1]:2222-[::1:22", "tcp:[::1]2222-:22",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad_syntax); i++) {
    NbNatHostFwd fwd;
    g_autoptr(GError) error = NULL;
    if (nb_nat_hostfwd_parse(bad_syntax[i], &fwd, &error))
      g_error("“%s” was taken", bad_syntax[i]);
    g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG);
  }
  /* Guest addresses the guest cannot have. */
  static const char *bad_guest[] = {
    "nat,hostfwd=tcp:[::1]:1-[fd00:99::15]:22",          /* outside net6 */
    "nat,hostfwd=tcp:[::1]:1-[fd00:10:0:2::2]:22",       /* the gateway's */
    "nat,hostfwd=tcp:[::1]:1-[fd00:10:0:2::]:22",        /* the subnet-router anycast */
    "nat,ipv6=off,hostfwd=tcp:[::1]:1-[fd00:10:0:2::15]:22",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(bad_guest); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(NbNatConfig) c = nb_nat_config_parse(bad_guest[i], &error);
    g_assert_null(c);
    g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG);
    g_assert_nonnull(strstr(error->message, "IPv6 address the guest cannot have"));
  }
  /* A moved net6 moves what a forward may reach. */
  g_autoptr(GError) error = NULL;
  g_autoptr(NbNatConfig) c = nb_nat_config_parse(
    "nat,hostfwd=tcp:[::1]:1-[2001:db8:0:7::abc]:22,net6=2001:db8:0:7::/64", &error);
  g_assert_no_error(error);
  g_assert_nonnull(c);
  g_assert_true(g_array_index(c->hostfwds, NbNatHostFwd, 0).guest_v6);
  /* Added while running, the same check applies. */
  Harness *h = harness_new(NULL);
  NbNatHostFwd fwd;
  g_assert_true(nb_nat_hostfwd_parse("tcp:[::1]:0-[2001:db8:0:7::abc]:22", &fwd, &error));
  g_assert_false(nb_nat_add_hostfwd(h->nat, &fwd, &error));
  g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG);
  g_clear_error(&error);
  /* IPv4 and IPv6 forwards of one port live side by side ([::] is IPv6
   * only), and each is removed on its own. */
  if (have_loopback6()) {
    NbNatHostFwd v4, v6;
    g_assert_true(nb_nat_hostfwd_parse("tcp:127.0.0.1:0-:22", &v4, &error));
    g_assert_true(nb_nat_add_hostfwd(h->nat, &v4, &error));
    uint16_t port = nb_nat_hostfwd_bound_port(h->nat, NB_NAT_PROTO_TCP, INADDR_LOOPBACK, 0);
    g_autofree char *text = g_strdup_printf("tcp:[::]:%u-:22", port);
    g_assert_true(nb_nat_hostfwd_parse(text, &v6, &error));
    if (!nb_nat_add_hostfwd(h->nat, &v6, &error))
      g_error("[::]:%u beside 127.0.0.1:%u: %s", port, port, error->message);
    g_assert_false(nb_nat_add_hostfwd(h->nat, &v6, &error));
    g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_EXISTS);
    g_clear_error(&error);
    g_assert_true(nb_nat_remove_hostfwd(h->nat, NB_NAT_PROTO_TCP, INADDR_LOOPBACK, port, &error));
    g_assert_cmpuint(nb_nat_hostfwd_rule_bound_port(h->nat, &v6), ==, port);
    g_assert_true(nb_nat_remove_hostfwd_rule(h->nat, &v6, &error));
  }
  harness_free(h);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/nat6/config", test_config6);
  g_test_add_func("/nat6/ndp/neighbor-solicit", test_neighbor_solicit);
  g_test_add_func("/nat6/ndp/router-advert", test_router_advert);
  g_test_add_func("/nat6/ndp/router-advert-options", test_router_advert_options);
  g_test_add_func("/nat6/ndp/no-advert-for-ipv4-guest", test_no_advert_ipv4);
  g_test_add_func("/nat6/icmp/echo", test_echo6);
  g_test_add_func("/nat6/icmp/echo-host-address", test_echo6_world);
  g_test_add_func("/nat6/udp/loopback-and-fragments", test_udp6_loopback);
  g_test_add_func("/nat6/udp/unreachable-and-policy", test_udp6_unreachable_and_policy);
  g_test_add_func("/nat6/udp/dns-forward", test_dns6_forward);
  g_test_add_func("/nat6/tcp/connect-data-close", test_tcp6);
  g_test_add_func("/nat6/bad/ip6-header", test_bad_ip6);
  g_test_add_func("/nat6/bad/extension-headers", test_bad_ext_headers);
  g_test_add_func("/nat6/bad/ndp", test_bad_ndp);
  g_test_add_func("/nat6/hostfwd/to-guest-ipv4", test_hostfwd6_to_guest4);
  g_test_add_func("/nat6/hostfwd/to-guest-ipv6", test_hostfwd6_to_guest6);
  g_test_add_func("/nat6/hostfwd/udp", test_hostfwd6_udp);
  g_test_add_func("/nat6/hostfwd/config", test_hostfwd6_config);
  return g_test_run();
}
