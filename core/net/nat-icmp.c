/* ICMP: echo to the gateway and DNS addresses is answered here; echo to the
 * world goes through unprivileged ping sockets (net.ipv4.ping_group_range,
 * which covers ICMPv6 ping sockets too), or one raw socket per family when
 * the process may open it. Errors the guest sends are checked and swallowed. */
#include "net/nat-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <unistd.h>

#define ICMP_TIMEOUT_US (30 * G_USEC_PER_SEC)
#define ICMP_BURST 16

typedef struct {
  NatAddr gaddr, raddr;
  uint16_t gid;
  uint16_t pad;
} IcmpKey;

typedef struct {
  IcmpKey key;
  int fd;            /* ping socket, or -1 when the shared raw socket carries it */
  NatWatch watch;
  uint16_t raw_id;   /* the id used on the raw socket */
  int64_t last;
} IcmpFlow;

struct NatIcmp {
  GHashTable *flows;     /* IcmpKey -> flow */
  GHashTable *by_raw_id; /* raw id -> flow */
  bool ping_sockets;
  bool ping6_sockets;
  int raw_fd;
  NatWatch raw_watch;
  int raw6_fd;          /* IPv6's raw socket: flows share raw_id space with IPv4's */
  NatWatch raw6_watch;
  uint16_t next_raw_id;
};

static guint
icmp_key_hash(gconstpointer p)
{
  return nat_hash_bytes(p, sizeof(IcmpKey));
}

static gboolean
icmp_key_equal(gconstpointer a, gconstpointer b)
{
  return memcmp(a, b, sizeof(IcmpKey)) == 0;
}

static void
icmp_flow_free(gpointer p)
{
  IcmpFlow *f = p;
  if (f->fd >= 0)
    close(f->fd);
  g_free(f);
}

static void
icmp_to_guest(NbNat *nat, IcmpFlow *f, const uint8_t *msg, size_t len, const NatAddr *from)
{
  /* Only echo replies go back; the kernel handles errors for its sockets. */
  bool v6 = !nat_addr_is4(&f->key.gaddr);
  if (len < 8 || msg[0] != (v6 ? 129 : 0) || len > 65535 - NB_IP_HLEN)
    return;
  uint8_t *icmp = nat->tx + NAT_L4_OFF;
  memmove(icmp, msg, len);
  nb_wr16(icmp + 4, f->key.gid);
  NatAddr src = nat_translate_in_addr(nat, from);
  f->last = nat->now;
  if (v6) {
    /* ICMPv6 sums a pseudo-header too. */
    nat_l4_csum_addr(nat, icmp, len, 2, NB_IP_PROTO_ICMPV6, &src, &f->key.gaddr, false);
    nat_ip6_send(nat, NB_IP_PROTO_ICMPV6, src.b, f->key.gaddr.b, len);
    return;
  }
  nb_wr16(icmp + 2, 0);
  nb_wr16(icmp + 2, nb_csum(icmp, len));
  nat_ip_send(nat, NB_IP_PROTO_ICMP, nat_addr_get4(&src), nat_addr_get4(&f->key.gaddr), len, NULL);
}

static void
icmp_ping_ready(NbNat *nat, void *obj, uint32_t events)
{
  IcmpFlow *f = obj;
  for (int n = 0; n < ICMP_BURST; n++) {
    NatSockaddr from;
    socklen_t fl = sizeof from;
    uint8_t *buf = nat->tx + NAT_L4_OFF;
    ssize_t r = recvfrom(f->fd, buf, 65535 - NB_IP_HLEN, MSG_DONTWAIT, &from.sa, &fl);
    if (r < 0)
      return;
    NatAddr a;
    uint16_t port;
    if (!nat_sockaddr_get(&from, fl, &a, &port) || !nat_addr_eq(&a, &f->key.raddr))
      continue;
    icmp_to_guest(nat, f, buf, (size_t)r, &a);
  }
}

static void
icmp_raw_ready(NbNat *nat, void *obj, uint32_t events)
{
  NatIcmp *icmp = obj;
  for (int n = 0; n < ICMP_BURST; n++) {
    uint8_t *buf = nat->tx + NAT_L4_OFF;
    ssize_t r = recv(icmp->raw_fd, buf, 65535, MSG_DONTWAIT);
    if (r < 0)
      return;
    /* A raw socket hands over the IP header too. */
    size_t len = (size_t)r;
    if (len < NB_IP_HLEN)
      continue;
    size_t hlen = (size_t)(buf[0] & 0xf) * 4;
    if (hlen < NB_IP_HLEN || len < hlen + 8 || buf[hlen] != 0)
      continue;
    NatAddr from = nat_addr4(nb_rd32(buf + 12));
    IcmpFlow *f = g_hash_table_lookup(icmp->by_raw_id,
                                      GUINT_TO_POINTER(nb_rd16(buf + hlen + 4) + 1u));
    if (!f || !nat_addr_eq(&f->key.raddr, &from))
      continue;
    icmp_to_guest(nat, f, buf + hlen, len - hlen, &from);
  }
}

/* An ICMPv6 raw socket hands over the message alone (no IPv6 header), and
 * its filter lets only echo replies through. */
static void
icmp_raw6_ready(NbNat *nat, void *obj, uint32_t events)
{
  NatIcmp *icmp = obj;
  for (int n = 0; n < ICMP_BURST; n++) {
    uint8_t *buf = nat->tx + NAT_L4_OFF;
    NatSockaddr from;
    socklen_t fl = sizeof from;
    ssize_t r = recvfrom(icmp->raw6_fd, buf, 65535 - NB_IP_HLEN, MSG_DONTWAIT, &from.sa, &fl);
    if (r < 0)
      return;
    NatAddr a;
    uint16_t port;
    if ((size_t)r < 8 || buf[0] != ICMP6_ECHO_REPLY || !nat_sockaddr_get(&from, fl, &a, &port))
      continue;
    IcmpFlow *f = g_hash_table_lookup(icmp->by_raw_id, GUINT_TO_POINTER(nb_rd16(buf + 4) + 1u));
    if (!f || !nat_addr_eq(&f->key.raddr, &a))
      continue;
    icmp_to_guest(nat, f, buf, (size_t)r, &a);
  }
}

static int
icmp_raw6_open(NbNat *nat, NatIcmp *icmp)
{
  int fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (fd < 0)
    return -1;
  struct icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
  if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0 ||
      !nat_watch_add(nat, &icmp->raw6_watch, fd, EPOLLIN, icmp_raw6_ready, icmp)) {
    close(fd);
    return -1;
  }
  return fd;
}

NatIcmp *
nat_icmp_new(NbNat *nat)
{
  NatIcmp *icmp = g_new0(NatIcmp, 1);
  icmp->flows = g_hash_table_new(icmp_key_hash, icmp_key_equal);
  icmp->by_raw_id = g_hash_table_new(NULL, NULL);
  icmp->raw_fd = icmp->raw6_fd = -1;
  icmp->next_raw_id = (uint16_t)g_random_int();
  if (nat->cfg->restrict_outbound)
    return icmp;
  if (nat->cfg->ipv6) {
    int fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMPV6);
    if (fd6 >= 0) {
      icmp->ping6_sockets = true;
      close(fd6);
    } else {
      icmp->raw6_fd = icmp_raw6_open(nat, icmp);
    }
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd >= 0) {
    icmp->ping_sockets = true;
    close(fd);
    return icmp;
  }
  icmp->raw_fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (icmp->raw_fd >= 0 &&
      !nat_watch_add(nat, &icmp->raw_watch, icmp->raw_fd, EPOLLIN, icmp_raw_ready, icmp)) {
    close(icmp->raw_fd);
    icmp->raw_fd = -1;
  }
  if (icmp->raw_fd < 0)
    g_info("ping from the guest will only reach the gateway: ping sockets are not allowed "
           "(see net.ipv4.ping_group_range) and raw sockets need CAP_NET_RAW");
  return icmp;
}

static void
icmp_flow_kill(NbNat *nat, IcmpFlow *f)
{
  g_hash_table_remove(nat->icmp->flows, &f->key);
  if (f->fd >= 0)
    nat_watch_remove(nat, &f->watch);
  else
    g_hash_table_remove(nat->icmp->by_raw_id, GUINT_TO_POINTER(f->raw_id + 1u));
  nat_defer_free(nat, f, icmp_flow_free);
  nat->stats.icmp_flows = g_hash_table_size(nat->icmp->flows);
}

void
nat_icmp_free(NbNat *nat, NatIcmp *icmp)
{
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init(&it, icmp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    IcmpFlow *f = v;
    if (f->fd >= 0)
      nat_watch_remove(nat, &f->watch);
    nat_defer_free(nat, f, icmp_flow_free);
  }
  g_hash_table_unref(icmp->flows);
  g_hash_table_unref(icmp->by_raw_id);
  if (icmp->raw_fd >= 0) {
    nat_watch_remove(nat, &icmp->raw_watch);
    close(icmp->raw_fd);
  }
  if (icmp->raw6_fd >= 0) {
    nat_watch_remove(nat, &icmp->raw6_watch);
    close(icmp->raw6_fd);
  }
  g_free(icmp);
}

void
nat_icmp_tick(NbNat *nat)
{
  GHashTableIter it;
  gpointer v;
  g_autoptr(GPtrArray) old = g_ptr_array_new();
  g_hash_table_iter_init(&it, nat->icmp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v))
    if (((IcmpFlow *)v)->last < nat->now - ICMP_TIMEOUT_US)
      g_ptr_array_add(old, v);
  for (guint i = 0; i < old->len; i++)
    icmp_flow_kill(nat, old->pdata[i]);
}

static IcmpFlow *
icmp_flow_open(NbNat *nat, const IcmpKey *key)
{
  NatIcmp *icmp = nat->icmp;
  if (g_hash_table_size(icmp->flows) >= nat->cfg->max_icmp_flows) {
    NAT_COUNT(nat, drop_table_full);
    return NULL;
  }
  IcmpFlow *f = g_new0(IcmpFlow, 1);
  f->key = *key;
  f->fd = -1;
  bool v6 = !nat_addr_is4(&key->gaddr);
  if (v6 ? icmp->ping6_sockets : icmp->ping_sockets) {
    f->fd = v6 ? socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6)
               : socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (f->fd < 0 || !nat_watch_add(nat, &f->watch, f->fd, EPOLLIN, icmp_ping_ready, f)) {
      icmp_flow_free(f);
      return NULL;
    }
  } else if ((v6 ? icmp->raw6_fd : icmp->raw_fd) >= 0) {
    /* Find an id no other flow uses on the shared raw socket. */
    for (int tries = 0; tries < 65536; tries++) {
      uint16_t id = icmp->next_raw_id++;
      if (!g_hash_table_contains(icmp->by_raw_id, GUINT_TO_POINTER(id + 1u))) {
        f->raw_id = id;
        break;
      }
    }
    g_hash_table_insert(icmp->by_raw_id, GUINT_TO_POINTER(f->raw_id + 1u), f);
  } else {
    g_free(f);
    return NULL;
  }
  g_hash_table_insert(icmp->flows, &f->key, f);
  nat->stats.icmp_flows = g_hash_table_size(icmp->flows);
  return f;
}

/* An echo request to the world, either family, through the flow's socket. */
static void
icmp_echo_out(NbNat *nat, const NatPacket *pkt)
{
  const uint8_t *m = pkt->l4;
  size_t len = pkt->l4_len;
  NatAddr host;
  if (!nat_translate_out_addr(nat, &pkt->daddr, &host)) {
    NAT_COUNT(nat, drop_policy);
    return;
  }
  IcmpKey key = { .gaddr = pkt->saddr, .raddr = host, .gid = nb_rd16(m + 4) };
  IcmpFlow *f = g_hash_table_lookup(nat->icmp->flows, &key);
  if (!f && !(f = icmp_flow_open(nat, &key))) {
    NAT_COUNT(nat, drop_policy);
    return;
  }
  f->last = nat->now;
  NatSockaddr to;
  socklen_t tolen = nat_sockaddr_set(&to, pkt->v6 ? AF_INET6 : AF_INET, &host, 0);
  if (f->fd >= 0) {
    /* The kernel puts the socket's own id in and fixes the checksum. */
    sendto(f->fd, m, len, MSG_DONTWAIT, &to.sa, tolen);
    return;
  }
  g_autofree uint8_t *copy = g_memdup2(m, len);
  nb_wr16(copy + 4, f->raw_id);
  if (pkt->v6) {
    /* The kernel sums ICMPv6 on raw sockets itself (RFC 3542 3.1). */
    sendto(nat->icmp->raw6_fd, copy, len, MSG_DONTWAIT, &to.sa, tolen);
    return;
  }
  nb_wr16(copy + 2, 0);
  nb_wr16(copy + 2, nb_csum(copy, len));
  sendto(nat->icmp->raw_fd, copy, len, MSG_DONTWAIT, &to.sa, tolen);
}

/* An ICMP error must quote an IP header and 8 bytes of what followed. */
static bool
icmp_error_ok(const uint8_t *msg, size_t len)
{
  if (len < 8 + NB_IP_HLEN)
    return false;
  const uint8_t *inner = msg + 8;
  size_t ihl = (size_t)(inner[0] & 0xf) * 4;
  return (inner[0] >> 4) == 4 && ihl >= NB_IP_HLEN && len >= 8 + ihl + 8;
}

void
nat_icmp_input(NbNat *nat, const NatPacket *pkt)
{
  const uint8_t *m = pkt->l4;
  size_t len = pkt->l4_len;
  if (len < 8 || nb_csum(m, len) != 0) {
    NAT_COUNT(nat, drop_icmp);
    return;
  }
  uint8_t type = m[0];
  if (type == 3 || type == 4 || type == 5 || type == 11 || type == 12) {
    if (!icmp_error_ok(m, len))
      NAT_COUNT(nat, drop_icmp);
    return;
  }
  if (type != 8 || m[1] != 0 || pkt->src == 0) {
    NAT_COUNT(nat, drop_policy);
    return;
  }
  const NbNatConfig *c = nat->cfg;
  if (pkt->dst == c->gateway || pkt->dst == c->dns) {
    uint8_t *icmp = nat->tx + NAT_L4_OFF;
    memcpy(icmp, m, len);
    icmp[0] = 0;
    nb_wr16(icmp + 2, 0);
    nb_wr16(icmp + 2, nb_csum(icmp, len));
    nat_ip_send(nat, NB_IP_PROTO_ICMP, pkt->dst, pkt->src, len, NULL);
    return;
  }
  icmp_echo_out(nat, pkt);
}

void
nat_icmp6_echo_out(NbNat *nat, const NatPacket *pkt)
{
  icmp_echo_out(nat, pkt);
}

