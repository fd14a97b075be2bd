/* UDP: each guest port gets a host socket of its own, kept while datagrams
 * flow and closed after a quiet while. DHCP and DNS are answered or forwarded
 * here, and forwarded host ports deliver into the guest. */
#include "net/nat-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/ip.h>
#include <unistd.h>

#define UDP_BURST 32

typedef struct {
  NatAddr gaddr;
  NatAddr raddr; /* all zero for an outbound flow: it may talk to anyone */
  uint16_t gport;
  uint16_t rport;
} UdpKey;

typedef struct {
  UdpKey key;
  int fd;                  /* outbound flows own one; forward flows use the forward's */
  int family;              /* of fd: AF_INET6 (dual stack) for an IPv6 guest address */
  NatWatch watch;
  int64_t last;
  NatFwd *fwd;
  NatSockaddr peer;        /* for forward flows: the host-side peer */
  socklen_t peer_len;
} UdpFlow;

struct NatUdp {
  GHashTable *flows;
};

static guint
udp_key_hash(gconstpointer p)
{
  return nat_hash_bytes(p, sizeof(UdpKey));
}

static gboolean
udp_key_equal(gconstpointer a, gconstpointer b)
{
  return memcmp(a, b, sizeof(UdpKey)) == 0;
}

static void
udp_flow_free(gpointer p)
{
  UdpFlow *f = p;
  if (!f->fwd && f->fd >= 0)
    close(f->fd);
  g_free(f);
}

NatUdp *
nat_udp_new(NbNat *nat)
{
  NatUdp *udp = g_new0(NatUdp, 1);
  udp->flows = g_hash_table_new(udp_key_hash, udp_key_equal);
  return udp;
}

static void
udp_flow_kill(NbNat *nat, UdpFlow *f)
{
  g_hash_table_remove(nat->udp->flows, &f->key);
  if (!f->fwd)
    nat_watch_remove(nat, &f->watch);
  nat_defer_free(nat, f, udp_flow_free);
  nat->stats.udp_flows = g_hash_table_size(nat->udp->flows);
}

void
nat_udp_free(NbNat *nat, NatUdp *udp)
{
  GHashTableIter it;
  gpointer v;
  g_hash_table_iter_init(&it, udp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    UdpFlow *f = v;
    if (!f->fwd)
      nat_watch_remove(nat, &f->watch);
    nat_defer_free(nat, f, udp_flow_free);
  }
  g_hash_table_unref(udp->flows);
  g_free(udp);
}

void
nat_udp_tick(NbNat *nat)
{
  int64_t limit = nat->now - (int64_t)nat->cfg->udp_timeout * G_USEC_PER_SEC;
  GHashTableIter it;
  gpointer v;
  g_autoptr(GPtrArray) old = g_ptr_array_new();
  g_hash_table_iter_init(&it, nat->udp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v))
    if (((UdpFlow *)v)->last < limit)
      g_ptr_array_add(old, v);
  for (guint i = 0; i < old->len; i++)
    udp_flow_kill(nat, old->pdata[i]);
}

void
nat_udp_send_addr(NbNat *nat, const NatAddr *src, uint16_t sport, const NatAddr *dst,
                  uint16_t dport, size_t len)
{
  uint8_t *u = nat->tx + NAT_L4_OFF;
  size_t total = NB_UDP_HLEN + len;
  nb_wr16(u, sport);
  nb_wr16(u + 2, dport);
  nb_wr16(u + 4, (uint16_t)total);
  /* A datagram that must be fragmented needs its whole checksum now. */
  bool fits = NB_IP_HLEN + total <= nat->cfg->mtu;
  NbNetFrameMeta meta = { 0 };
  if (nat_l4_csum_addr(nat, u, total, 6, NB_IP_PROTO_UDP, src, dst, fits))
    meta.flags = NB_NET_FRAME_CSUM_PARTIAL;
  nat_l4_send(nat, NB_IP_PROTO_UDP, src, dst, total, &meta);
}

void
nat_udp_send(NbNat *nat, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, size_t len)
{
  NatAddr s = nat_addr4(src), d = nat_addr4(dst);
  nat_udp_send_addr(nat, &s, sport, &d, dport, len);
}

static void udp_guest_view(NbNat *nat, const UdpFlow *f, const NatSockaddr *to, socklen_t tolen,
                           NatAddr *addr, uint16_t *port);

/* Datagrams arriving on a host socket, on their way to the guest. */
static void
udp_receive(NbNat *nat, UdpFlow *f, int fd, bool from_fwd)
{
  for (int n = 0; n < UDP_BURST; n++) {
    NatSockaddr from;
    socklen_t fromlen = sizeof from;
    uint8_t *payload = nat->tx + NAT_L4_OFF + NB_UDP_HLEN;
    ssize_t r = recvfrom(fd, payload, 65535 - NB_IP_HLEN - NB_UDP_HLEN, MSG_DONTWAIT,
                         &from.sa, &fromlen);
    if (r < 0)
      return;
    NatAddr src;
    uint16_t sport;
    if (!nat_sockaddr_get(&from, fromlen, &src, &sport))
      continue;
    if (from_fwd) {
      UdpKey key = { .gaddr = nat_fwd_guest(nat, &f->fwd->fwd), .gport = f->fwd->fwd.guest_port,
                     .rport = sport };
      key.raddr = src = nat_fwd_peer(nat, &key.gaddr, &src);
      UdpFlow *ff = g_hash_table_lookup(nat->udp->flows, &key);
      if (!ff) {
        if (g_hash_table_size(nat->udp->flows) >= nat->cfg->max_udp_flows) {
          NAT_COUNT(nat, drop_table_full);
          continue;
        }
        ff = g_new0(UdpFlow, 1);
        ff->key = key;
        ff->fd = fd;
        ff->fwd = f->fwd;
        ff->family = from.sa.sa_family;
        ff->peer = from;
        ff->peer_len = fromlen;
        g_hash_table_insert(nat->udp->flows, &ff->key, ff);
        nat->stats.udp_flows = g_hash_table_size(nat->udp->flows);
      }
      ff->last = nat->now;
      nat_udp_send_addr(nat, &src, sport, &key.gaddr, key.gport, (size_t)r);
      continue;
    }
    f->last = nat->now;
    udp_guest_view(nat, f, &from, fromlen, &src, &sport);
    /* An IPv4-mapped peer of an IPv6 flow that is not the resolver: never
     * sent to (nat_translate_out_addr refuses mapped addresses), so a
     * stray; and the other way round cannot happen on an AF_INET socket. */
    if (nat_addr_is4(&src) != nat_addr_is4(&f->key.gaddr))
      continue;
    nat_udp_send_addr(nat, &src, sport, &f->key.gaddr, f->key.gport, (size_t)r);
  }
}

/* The guest's address for where a host socket sent to: the DNS forwarder
 * for the resolver, the gateway for the host's loopback. */
static void
udp_guest_view(NbNat *nat, const UdpFlow *f, const NatSockaddr *to, socklen_t tolen,
               NatAddr *addr, uint16_t *port)
{
  NatAddr a;
  uint16_t p = 0;
  if (nat_dns_is_resolver(nat, to, tolen)) {
    *addr = *nat_dns_addr(nat, !nat_addr_is4(&f->key.gaddr), addr);
    *port = 53;
    return;
  }
  if (!nat_sockaddr_get(to, tolen, &a, &p))
    memset(&a, 0, sizeof a);
  *addr = nat_translate_in_addr(nat, &a);
  *port = p;
}

/* The same for an IPv6 flow: ICMPv6 errors, or ICMP ones for an IPv4-mapped
 * resolver, as ICMPv6 to the guest. */
static void
udp_error6(NbNat *nat, UdpFlow *f, const struct sock_extended_err *ee, const NatAddr *dst,
           uint16_t dport, size_t len)
{
  uint8_t type, code;
  if (ee->ee_origin == SO_EE_ORIGIN_ICMP6 && (ee->ee_type == 1 || ee->ee_type == 3)) {
    type = ee->ee_type;
    code = ee->ee_code;
  } else if (ee->ee_origin == SO_EE_ORIGIN_ICMP && ee->ee_type == 3) {
    type = 1;
    code = ee->ee_code == 3 ? 4 : 0; /* port unreachable, or no route */
  } else if (ee->ee_origin == SO_EE_ORIGIN_ICMP && ee->ee_type == 11) {
    type = 3;
    code = 0;
  } else {
    return;
  }
  if (nat_addr_is4(dst))
    return;
  uint8_t quoted[NB_IP6_HLEN + NB_UDP_HLEN] = { 0x60 };
  nb_wr16(quoted + 4, (uint16_t)(NB_UDP_HLEN + len));
  quoted[6] = NB_IP_PROTO_UDP;
  quoted[7] = 64;
  memcpy(quoted + 8, f->key.gaddr.b, 16);
  memcpy(quoted + 24, dst->b, 16);
  nb_wr16(quoted + 40, f->key.gport);
  nb_wr16(quoted + 42, dport);
  nb_wr16(quoted + 44, (uint16_t)(NB_UDP_HLEN + len));
  NatPacket pkt = { .l4 = quoted + NB_IP6_HLEN, .l4_len = NB_UDP_HLEN, .saddr = f->key.gaddr,
                    .daddr = *dst, .v6 = true, .proto = NB_IP_PROTO_UDP, .ip = quoted,
                    .ip_hlen = NB_IP6_HLEN };
  nat_icmp6_error(nat, &pkt, type, code, 0);
}

/* ICMP errors the host got for a flow's datagrams (IP_RECVERR) go on to the
 * guest, so its resolver or traceroute learns at once instead of timing
 * out. The quoted header is rebuilt from what the guest sent. */
static void
udp_errors(NbNat *nat, UdpFlow *f)
{
  for (int n = 0; n < UDP_BURST; n++) {
    uint8_t payload[8];
    NatSockaddr to;
    union {
      char buf[CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6))];
      struct cmsghdr align;
    } control;
    struct iovec iov = { payload, sizeof payload };
    struct msghdr msg = { .msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov,
                          .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof control.buf };
    ssize_t r = recvmsg(f->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (r < 0)
      return;
    const struct sock_extended_err *ee = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
          (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR))
        ee = (const struct sock_extended_err *)CMSG_DATA(c);
    if (!ee || msg.msg_namelen < sizeof to.in)
      continue;
    NatAddr dst;
    uint16_t dport;
    udp_guest_view(nat, f, &to, msg.msg_namelen, &dst, &dport);
    if (f->family == AF_INET6) {
      udp_error6(nat, f, ee, &dst, dport, (size_t)r);
      continue;
    }
    if (ee->ee_origin != SO_EE_ORIGIN_ICMP || (ee->ee_type != 3 && ee->ee_type != 11))
      continue; /* unreachable and time exceeded are what a guest acts on */
    /* The guest's datagram, as it was: its header and 8 bytes of UDP. */
    uint8_t quoted[NB_IP_HLEN + NB_UDP_HLEN] = { 0x45 };
    nb_wr16(quoted + 2, (uint16_t)(sizeof quoted + (size_t)r));
    quoted[8] = 64;
    quoted[9] = NB_IP_PROTO_UDP;
    nb_wr32(quoted + 12, nat_addr_get4(&f->key.gaddr));
    nb_wr32(quoted + 16, nat_addr_get4(&dst));
    nb_wr16(quoted + 10, nb_csum(quoted, NB_IP_HLEN));
    nb_wr16(quoted + 20, f->key.gport);
    nb_wr16(quoted + 22, dport);
    nb_wr16(quoted + 24, (uint16_t)(NB_UDP_HLEN + (size_t)r));
    NatPacket pkt = { .l4 = quoted + NB_IP_HLEN, .l4_len = NB_UDP_HLEN,
                      .src = nat_addr_get4(&f->key.gaddr), .dst = nat_addr_get4(&dst),
                      .saddr = f->key.gaddr, .daddr = dst, .proto = NB_IP_PROTO_UDP,
                      .ip = quoted, .ip_hlen = NB_IP_HLEN };
    nat_icmp_error(nat, &pkt, ee->ee_type, ee->ee_code);
  }
}

static void
udp_flow_ready(NbNat *nat, void *obj, uint32_t events)
{
  UdpFlow *f = obj;
  if (events & EPOLLERR)
    udp_errors(nat, f);
  if (events & EPOLLIN)
    udp_receive(nat, f, f->fd, false);
}

void
nat_udp_fwd_readable(NbNat *nat, NatFwd *fwd)
{
  UdpFlow tmp = { .fwd = fwd };
  udp_receive(nat, &tmp, fwd->fd, true);
}

void
nat_udp_fwd_removed(NbNat *nat, NatFwd *fwd)
{
  GHashTableIter it;
  gpointer v;
  g_autoptr(GPtrArray) gone = g_ptr_array_new();
  g_hash_table_iter_init(&it, nat->udp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v))
    if (((UdpFlow *)v)->fwd == fwd)
      g_ptr_array_add(gone, v);
  for (guint i = 0; i < gone->len; i++)
    udp_flow_kill(nat, gone->pdata[i]);
}

static void
udp_evict_one(NbNat *nat)
{
  GHashTableIter it;
  gpointer v;
  UdpFlow *oldest = NULL;
  g_hash_table_iter_init(&it, nat->udp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    UdpFlow *f = v;
    if (!oldest || f->last < oldest->last)
      oldest = f;
  }
  if (oldest)
    udp_flow_kill(nat, oldest);
}

static UdpFlow *
udp_flow_open(NbNat *nat, const NatAddr *gaddr, uint16_t gport)
{
  if (g_hash_table_size(nat->udp->flows) >= nat->cfg->max_udp_flows) {
    /* Full: the quietest flow goes, as a home router's NAT table does. */
    NAT_COUNT(nat, drop_table_full);
    udp_evict_one(nat);
  }
  int family = nat_addr_is4(gaddr) ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return NULL;
  int one = 1, zero = 0;
  if (family == AF_INET) {
    setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof one);
  } else {
    /* Dual stack: an IPv6 guest's DNS queries may go to an IPv4 resolver. */
    setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof one);
    setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof one);
  }
  UdpFlow *f = g_new0(UdpFlow, 1);
  f->key = (UdpKey){ .gaddr = *gaddr, .gport = gport };
  f->fd = fd;
  f->family = family;
  if (!nat_watch_add(nat, &f->watch, fd, EPOLLIN, udp_flow_ready, f)) {
    close(fd);
    g_free(f);
    return NULL;
  }
  g_hash_table_insert(nat->udp->flows, &f->key, f);
  nat->stats.udp_flows = g_hash_table_size(nat->udp->flows);
  return f;
}

void
nat_udp_input(NbNat *nat, const NatPacket *pkt)
{
  if (pkt->l4_len < NB_UDP_HLEN) {
    NAT_COUNT(nat, drop_udp);
    return;
  }
  const uint8_t *u = pkt->l4;
  uint16_t sport = nb_rd16(u), dport = nb_rd16(u + 2);
  size_t ulen = nb_rd16(u + 4);
  /* The UDP length may be shorter than the IP payload (padding follows),
   * never longer. */
  if (ulen < NB_UDP_HLEN || ulen > pkt->l4_len || sport == 0 || dport == 0) {
    NAT_COUNT(nat, drop_udp);
    return;
  }
  /* IPv6 has no header checksum, so UDP's is not optional there (RFC 8200
   * 8.1). */
  bool no_sum = nb_rd16(u + 6) == 0;
  if ((no_sum && pkt->v6) ||
      (!no_sum && !pkt->csum_partial &&
       nb_csum_fold(nb_csum_partial(u, ulen, nat_pkt_pseudo(pkt, NB_IP_PROTO_UDP, ulen))) != 0)) {
    NAT_COUNT(nat, drop_udp);
    return;
  }
  const uint8_t *data = u + NB_UDP_HLEN;
  size_t len = ulen - NB_UDP_HLEN;
  const NbNatConfig *c = nat->cfg;

  if (dport == 67 && !pkt->v6) {
    if (pkt->dst == 0xffffffffu || pkt->dst == c->gateway || pkt->dst == (c->net | ~c->netmask))
      nat_dhcp_input(nat, nat->guest_mac, data, len);
    else
      NAT_COUNT(nat, drop_policy);
    return;
  }
  if (!pkt->v6 && pkt->src == 0) {
    NAT_COUNT(nat, drop_policy);
    return;
  }

  /* A reply to a peer of a forwarded port goes out through that forward. */
  UdpKey fkey = { .gaddr = pkt->saddr, .raddr = pkt->daddr, .gport = sport, .rport = dport };
  UdpFlow *f = g_hash_table_lookup(nat->udp->flows, &fkey);
  if (f && f->fwd) {
    f->last = nat->now;
    sendto(f->fd, data, len, MSG_DONTWAIT, &f->peer.sa, f->peer_len);
    return;
  }

  NatSockaddr to;
  socklen_t tolen;
  int family = pkt->v6 ? AF_INET6 : AF_INET;
  NatAddr dns4;
  if (nat_addr_eq(&pkt->daddr, nat_dns_addr(nat, pkt->v6, &dns4))) {
    if (dport != 53 || !(tolen = nat_dns_resolver(nat, family, &to))) {
      NAT_COUNT(nat, drop_dns);
      if (pkt->v6)
        nat_icmp6_error(nat, pkt, 1, 4, 0); /* port unreachable */
      else
        nat_icmp_error(nat, pkt, 3, 3);
      return;
    }
  } else {
    NatAddr host;
    if (!nat_translate_out_addr(nat, &pkt->daddr, &host)) {
      NAT_COUNT(nat, drop_policy);
      bool gateway = pkt->v6 ? nat_addr_eq(&pkt->daddr, &nat->gw6) : pkt->dst == c->gateway;
      if (gateway || !c->restrict_outbound)
        return;
      if (pkt->v6)
        nat_icmp6_error(nat, pkt, 1, 1, 0); /* administratively prohibited */
      else
        nat_icmp_error(nat, pkt, 3, 13);
      return;
    }
    tolen = nat_sockaddr_set(&to, family, &host, dport);
  }

  UdpKey key = { .gaddr = pkt->saddr, .gport = sport };
  f = g_hash_table_lookup(nat->udp->flows, &key);
  if (!f) {
    f = udp_flow_open(nat, &pkt->saddr, sport);
    if (!f) {
      NAT_COUNT(nat, drop_table_full);
      return;
    }
  }
  f->last = nat->now;
  if (sendto(f->fd, data, len, MSG_DONTWAIT, &to.sa, tolen) < 0 && errno == EMSGSIZE) {
    if (pkt->v6)
      nat_icmp6_error(nat, pkt, 2, 0, nat->cfg->mtu); /* packet too big */
    else
      nat_icmp_error(nat, pkt, 3, 4); /* fragmentation needed */
  }
}
