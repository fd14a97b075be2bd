/* IPv6: the header and its extension headers, neighbor discovery for the
 * engine's addresses (RFC 4861), router advertisements from which the guest
 * configures itself (SLAAC, RFC 4862; DNS from RDNSS and DNSSL, RFC 8106),
 * ICMPv6 echo to the engine, ICMPv6 errors, and IPv6 out to the guest. TCP,
 * UDP and echo to the world go on to the same flow code as IPv4's. */
#include "net/nat-private.h"

#define RA_INTERVAL_US (120 * G_USEC_PER_SEC)
/* Solicited advertisements: a guest that floods solicitations gets at most
 * five a second. */
#define RA_MIN_GAP_US (200 * 1000)
#define ROUTER_LIFETIME 1800
#define PREFIX_VALID 86400
#define PREFIX_PREFERRED 14400
#define RDNSS_LIFETIME 1800
/* An error quotes as much of the packet as fits in the minimum MTU. */
#define ICMP6_QUOTE_MAX (1280 - NB_IP6_HLEN - 8)

enum {
  EXT_HOP_BY_HOP = 0,
  EXT_ROUTING = 43,
  EXT_FRAGMENT = 44,
  EXT_NONE = 59,
  EXT_DEST_OPTS = 60,
};

enum {
  ICMP6_UNREACH = 1,
  ICMP6_TOO_BIG = 2,
  ICMP6_TIME_EXCEEDED = 3,
  ICMP6_PARAM_PROBLEM = 4,
  ICMP6_ECHO_REQUEST = 128,
  ICMP6_ECHO_REPLY = 129,
  ND_ROUTER_SOLICIT = 133,
  ND_ROUTER_ADVERT = 134,
  ND_NEIGHBOR_SOLICIT = 135,
  ND_NEIGHBOR_ADVERT = 136,
  ND_REDIRECT = 137,
};

enum {
  ND_OPT_SOURCE_LLADDR = 1,
  ND_OPT_TARGET_LLADDR = 2,
  ND_OPT_PREFIX_INFO = 3,
  ND_OPT_MTU = 5,
  ND_OPT_RDNSS = 25,
  ND_OPT_DNSSL = 31,
};

static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 1 };

static bool
is_multicast(const uint8_t *a)
{
  return a[0] == 0xff;
}

static bool
is_unspecified(const uint8_t *a)
{
  static const uint8_t zero[16];
  return memcmp(a, zero, 16) == 0;
}

static bool
is_link_local(const uint8_t *a)
{
  static const uint8_t ll[8] = { 0xfe, 0x80 };
  return memcmp(a, ll, 8) == 0;
}

static bool
is_ours(NbNat *nat, const uint8_t *a)
{
  return memcmp(a, nat->ll6.b, 16) == 0 || memcmp(a, nat->gw6.b, 16) == 0 ||
         memcmp(a, nat->dns6.b, 16) == 0;
}

/* ff02::1:ffXX:XXXX for one of the engine's addresses. */
static bool
is_our_solicited_node(NbNat *nat, const uint8_t *a)
{
  static const uint8_t prefix[13] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff };
  if (memcmp(a, prefix, 13) != 0)
    return false;
  return memcmp(a + 13, nat->ll6.b + 13, 3) == 0 || memcmp(a + 13, nat->gw6.b + 13, 3) == 0 ||
         memcmp(a + 13, nat->dns6.b + 13, 3) == 0;
}

bool
nat_is_guest_addr6(NbNat *nat, const uint8_t *a)
{
  static const uint8_t zero[8];
  if (memcmp(a, nat->cfg->net6, 8) == 0)
    return memcmp(a + 8, zero, 8) != 0 && !is_ours(nat, a); /* :: is the subnet-router anycast */
  return is_link_local(a) && !is_ours(nat, a);
}

/* ---- output ---- */

static void
ip6_eth_header(NbNat *nat, uint8_t *frame, const uint8_t *dst)
{
  if (is_multicast(dst)) {
    /* RFC 2464 7: 33:33 and the group's last 32 bits. */
    frame[0] = frame[1] = 0x33;
    memcpy(frame + 2, dst + 12, 4);
  } else if (nat->guest_mac_known) {
    memcpy(frame, nat->guest_mac, 6);
  } else {
    memset(frame, 0xff, 6);
  }
  memcpy(frame + 6, nat->gw_mac, 6);
  nb_wr16(frame + 12, NB_ETH_TYPE_IPV6);
}

static void
ip6_header(uint8_t *ip, uint8_t next, const uint8_t *src, const uint8_t *dst, size_t plen,
           uint8_t hops)
{
  ip[0] = 0x60;
  ip[1] = ip[2] = ip[3] = 0;
  nb_wr16(ip + 4, (uint16_t)plen);
  ip[6] = next;
  ip[7] = hops;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
}

static void
ip6_send_hops(NbNat *nat, uint8_t proto, const uint8_t *src, const uint8_t *dst, size_t l4_len,
              uint8_t hops)
{
  size_t mtu = nat->cfg->mtu;
  uint8_t *frame = nat->tx - NAT_TX_HEADROOM;
  if (NB_IP6_HLEN + l4_len <= mtu) {
    ip6_eth_header(nat, frame, dst);
    ip6_header(frame + NB_ETH_HLEN, proto, src, dst, l4_len, hops);
    nat_deliver(nat, frame, NB_ETH_HLEN + NB_IP6_HLEN + l4_len, NULL);
    return;
  }
  /* Only the source fragments in IPv6 (RFC 8200 4.5): a datagram from a host
   * socket that is too big for the guest's link goes in pieces, each with a
   * fragment header, at multiples of 8 bytes. */
  size_t piece = (mtu - NB_IP6_HLEN - 8) & ~(size_t)7;
  g_autofree uint8_t *out = g_malloc(NB_ETH_HLEN + mtu);
  uint32_t id = g_random_int();
  const uint8_t *l4 = nat->tx + NAT_L4_OFF;
  for (size_t off = 0; off < l4_len; off += piece) {
    size_t n = MIN(piece, l4_len - off);
    bool more = off + n < l4_len;
    ip6_eth_header(nat, out, dst);
    ip6_header(out + NB_ETH_HLEN, EXT_FRAGMENT, src, dst, 8 + n, hops);
    uint8_t *fh = out + NB_ETH_HLEN + NB_IP6_HLEN;
    fh[0] = proto;
    fh[1] = 0;
    nb_wr16(fh + 2, (uint16_t)(off | (more ? 1 : 0))); /* offset in 8-byte units, shifted by 3 */
    nb_wr32(fh + 4, id);
    memcpy(fh + 8, l4 + off, n);
    nat_deliver(nat, out, NB_ETH_HLEN + NB_IP6_HLEN + 8 + n, NULL);
  }
}

void
nat_ip6_send(NbNat *nat, uint8_t proto, const uint8_t *src, const uint8_t *dst, size_t l4_len)
{
  ip6_send_hops(nat, proto, src, dst, l4_len, 64);
}

/* Sends the ICMPv6 message of len bytes at nat->tx + NAT_L4_OFF. */
static void
icmp6_send(NbNat *nat, const uint8_t *src, const uint8_t *dst, size_t len, uint8_t hops)
{
  uint8_t *m = nat->tx + NAT_L4_OFF;
  NatAddr s, d;
  memcpy(s.b, src, 16);
  memcpy(d.b, dst, 16);
  nat_l4_csum_addr(nat, m, len, 2, NB_IP_PROTO_ICMPV6, &s, &d, false);
  ip6_send_hops(nat, NB_IP_PROTO_ICMPV6, src, dst, len, hops);
}

void
nat_icmp6_error(NbNat *nat, const NatPacket *pkt, uint8_t type, uint8_t code, uint32_t param)
{
  /* Never about a packet from :: or to a group, nor about an ICMPv6 error
   * (RFC 4443 2.4 e). */
  if (!pkt->v6 || !nat_is_guest_addr6(nat, pkt->saddr.b) || is_multicast(pkt->daddr.b))
    return;
  if (pkt->proto == NB_IP_PROTO_ICMPV6 && (pkt->l4_len < 1 || pkt->l4[0] < 128))
    return;
  size_t quote = MIN(pkt->ip_hlen + pkt->l4_len, (size_t)ICMP6_QUOTE_MAX);
  uint8_t *m = nat->tx + NAT_L4_OFF;
  m[0] = type;
  m[1] = code;
  nb_wr16(m + 2, 0);
  nb_wr32(m + 4, param);
  memcpy(m + 8, pkt->ip, quote);
  /* From the address it was for when that is ours (DNS port unreachable),
   * else from the router, in the scope of the guest's address. */
  const uint8_t *src = is_ours(nat, pkt->daddr.b) ? pkt->daddr.b
                       : is_link_local(pkt->saddr.b) ? nat->ll6.b
                                                     : nat->gw6.b;
  icmp6_send(nat, src, pkt->saddr.b, 8 + quote, 64);
}

/* ---- router advertisements ---- */

/* RFC 8106 5.2: the search list, each name in DNS wire format. */
static size_t
ra_dnssl(NbNat *nat, uint8_t *o, size_t room)
{
  const NbNatConfig *c = nat->cfg;
  g_autoptr(GPtrArray) names = g_ptr_array_new();
  if (c->domain)
    g_ptr_array_add(names, c->domain);
  for (char **s = c->search; s && *s; s++)
    g_ptr_array_add(names, *s);
  if (!names->len)
    return 0;
  size_t n = 8;
  for (guint i = 0; i < names->len; i++) {
    const char *name = names->pdata[i];
    /* A name takes its length plus two bytes (the first label's length and
     * the root); the option's length is counted in units of 8 up to 255. */
    size_t need = strlen(name) + 2;
    if (n + need > room || n + need > 255 * 8)
      break;
    g_auto(GStrv) labels = g_strsplit(name, ".", -1);
    for (int l = 0; labels[l]; l++) {
      size_t ll = strlen(labels[l]);
      o[n++] = (uint8_t)ll;
      memcpy(o + n, labels[l], ll);
      n += ll;
    }
    o[n++] = 0;
  }
  size_t total = (n + 7) & ~(size_t)7;
  memset(o + n, 0, total - n);
  o[0] = ND_OPT_DNSSL;
  o[1] = (uint8_t)(total / 8);
  nb_wr16(o + 2, 0);
  nb_wr32(o + 4, RDNSS_LIFETIME);
  return total;
}

static void
ra_send(NbNat *nat)
{
  const NbNatConfig *c = nat->cfg;
  uint8_t *m = nat->tx + NAT_L4_OFF;
  memset(m, 0, 16);
  m[0] = ND_ROUTER_ADVERT;
  m[4] = 64; /* the hop limit the guest should use */
  m[5] = 0;  /* neither managed nor other configuration: there is no DHCPv6 */
  nb_wr16(m + 6, ROUTER_LIFETIME);
  size_t n = 16;
  m[n] = ND_OPT_SOURCE_LLADDR;
  m[n + 1] = 1;
  memcpy(m + n + 2, nat->gw_mac, 6);
  n += 8;
  m[n] = ND_OPT_MTU;
  m[n + 1] = 1;
  nb_wr16(m + n + 2, 0);
  nb_wr32(m + n + 4, c->mtu);
  n += 8;
  m[n] = ND_OPT_PREFIX_INFO;
  m[n + 1] = 4;
  m[n + 2] = 64;
  m[n + 3] = 0xc0; /* on-link, autonomous (SLAAC) */
  nb_wr32(m + n + 4, PREFIX_VALID);
  nb_wr32(m + n + 8, PREFIX_PREFERRED);
  nb_wr32(m + n + 12, 0);
  memcpy(m + n + 16, c->net6, 16);
  n += 32;
  m[n] = ND_OPT_RDNSS;
  m[n + 1] = 3;
  nb_wr16(m + n + 2, 0);
  nb_wr32(m + n + 4, RDNSS_LIFETIME);
  memcpy(m + n + 8, nat->dns6.b, 16);
  n += 24;
  n += ra_dnssl(nat, m + n, 2048);
  /* To all nodes: the soliciting guest is the only node on this link. */
  icmp6_send(nat, nat->ll6.b, all_nodes, n, 255);
}

void
nat_ip6_tick(NbNat *nat)
{
  /* Unsolicited advertisements keep the router and prefix lifetimes fresh;
   * they start once the guest has spoken IPv6. */
  if (!nat->cfg->ipv6 || !nat->ra_next || nat->now < nat->ra_next)
    return;
  nat->ra_next = nat->now + RA_INTERVAL_US;
  ra_send(nat);
}

/* ---- neighbor discovery from the guest ---- */

/* Every option must have a non-zero length and fit (RFC 4861 4.6); a source
 * link-layer address option is 8 bytes on Ethernet. */
static bool
nd_options_ok(const uint8_t *o, size_t len, bool *has_slla)
{
  *has_slla = false;
  while (len) {
    if (len < 2)
      return false;
    size_t ol = (size_t)o[1] * 8;
    if (ol == 0 || ol > len)
      return false;
    if (o[0] == ND_OPT_SOURCE_LLADDR) {
      if (ol != 8)
        return false;
      *has_slla = true;
    }
    o += ol;
    len -= ol;
  }
  return true;
}

static void
nd_neighbor_solicit(NbNat *nat, const NatPacket *pkt)
{
  const uint8_t *m = pkt->l4;
  size_t len = pkt->l4_len;
  bool slla;
  if (pkt->ttl != 255 || m[1] != 0 || len < 24 || is_multicast(m + 8) ||
      !nd_options_ok(m + 24, len - 24, &slla)) {
    NAT_COUNT(nat, drop_ndp);
    return;
  }
  /* Duplicate address detection comes from :: to the solicited-node group,
   * without a link-layer address (RFC 4861 7.1.1). */
  bool dad = is_unspecified(pkt->saddr.b);
  if (dad && (slla || !is_multicast(pkt->daddr.b))) {
    NAT_COUNT(nat, drop_ndp);
    return;
  }
  const uint8_t *target = m + 8;
  if (!is_ours(nat, target))
    return; /* the guest's own detection, or some other address: not ours */
  if (memcmp(pkt->daddr.b, target, 16) != 0 && !is_our_solicited_node(nat, pkt->daddr.b)) {
    NAT_COUNT(nat, drop_ndp);
    return;
  }
  uint8_t out_target[16];
  memcpy(out_target, target, 16);
  uint8_t *na = nat->tx + NAT_L4_OFF;
  memset(na, 0, 32);
  na[0] = ND_NEIGHBOR_ADVERT;
  /* Router, solicited (unless answering detection), override. */
  na[4] = (uint8_t)(0x80 | (dad ? 0 : 0x40) | 0x20);
  memcpy(na + 8, out_target, 16);
  na[24] = ND_OPT_TARGET_LLADDR;
  na[25] = 1;
  memcpy(na + 26, nat->gw_mac, 6);
  icmp6_send(nat, out_target, dad ? all_nodes : pkt->saddr.b, 32, 255);
}

static void
nd_router_solicit(NbNat *nat, const NatPacket *pkt)
{
  const uint8_t *m = pkt->l4;
  size_t len = pkt->l4_len;
  bool slla;
  if (pkt->ttl != 255 || m[1] != 0 || len < 8 || !nd_options_ok(m + 8, len - 8, &slla) ||
      (slla && is_unspecified(pkt->saddr.b))) {
    NAT_COUNT(nat, drop_ndp);
    return;
  }
  if (nat->ra_last && nat->now - nat->ra_last < RA_MIN_GAP_US) {
    NAT_COUNT(nat, drop_policy);
    return;
  }
  nat->ra_last = nat->now;
  ra_send(nat);
}

/* Messages a router only receives from other routers or hosts: checked,
 * then nothing to do (the engine is the only router on the link). */
static void
nd_other(NbNat *nat, const NatPacket *pkt, size_t fixed)
{
  const uint8_t *m = pkt->l4;
  bool slla;
  if (pkt->ttl != 255 || m[1] != 0 || pkt->l4_len < fixed ||
      !nd_options_ok(m + fixed, pkt->l4_len - fixed, &slla))
    NAT_COUNT(nat, drop_ndp);
}

/* An ICMPv6 error must quote an IPv6 header. */
static bool
icmp6_error_ok(const uint8_t *m, size_t len)
{
  return len >= 8 + NB_IP6_HLEN && (m[8] >> 4) == 6;
}

static void
icmp6_input(NbNat *nat, const NatPacket *pkt)
{
  const uint8_t *m = pkt->l4;
  size_t len = pkt->l4_len;
  bool nd = len >= 1 && m[0] >= ND_ROUTER_SOLICIT && m[0] <= ND_REDIRECT;
  if (len < 8 || (!pkt->csum_partial &&
                  nb_csum_fold(nb_csum_partial(m, len, nat_pkt_pseudo(pkt, NB_IP_PROTO_ICMPV6,
                                                                      len))) != 0)) {
    if (nd)
      NAT_COUNT(nat, drop_ndp);
    else
      NAT_COUNT(nat, drop_icmp);
    return;
  }
  bool unspec = is_unspecified(pkt->saddr.b);
  switch (m[0]) {
  case ND_NEIGHBOR_SOLICIT:
    nd_neighbor_solicit(nat, pkt);
    return;
  case ND_ROUTER_SOLICIT:
    nd_router_solicit(nat, pkt);
    return;
  case ND_ROUTER_ADVERT:
    nd_other(nat, pkt, 16);
    return;
  case ND_NEIGHBOR_ADVERT:
    nd_other(nat, pkt, 24);
    return;
  case ND_REDIRECT:
    nd_other(nat, pkt, 40);
    return;
  case ICMP6_UNREACH:
  case ICMP6_TOO_BIG:
  case ICMP6_TIME_EXCEEDED:
  case ICMP6_PARAM_PROBLEM:
    if (!icmp6_error_ok(m, len))
      NAT_COUNT(nat, drop_icmp);
    return;
  case ICMP6_ECHO_REQUEST:
    break;
  default:
    /* Multicast listener reports and the like: nothing a router of one
     * host has to act on. */
    return;
  }
  if (m[1] != 0 || unspec || is_multicast(pkt->daddr.b)) {
    NAT_COUNT(nat, drop_policy);
    return;
  }
  if (is_ours(nat, pkt->daddr.b)) {
    uint8_t *reply = nat->tx + NAT_L4_OFF;
    memcpy(reply, m, len);
    reply[0] = ICMP6_ECHO_REPLY;
    NatAddr from = pkt->daddr, to = pkt->saddr;
    icmp6_send(nat, from.b, to.b, len, 64);
    return;
  }
  nat_icmp6_echo_out(nat, pkt);
}

/* ---- input ---- */

/* Hop-by-hop and destination options: each must fit; an option we do not
 * know whose type says "discard if unknown" (the top two bits) discards the
 * packet (RFC 8200 4.2). */
static bool
ip6_options_ok(const uint8_t *o, size_t len)
{
  size_t i = 0;
  while (i < len) {
    uint8_t type = o[i];
    if (type == 0) {
      i++;
      continue;
    }
    if (i + 1 >= len)
      return false;
    size_t ol = (size_t)o[i + 1] + 2;
    if (ol > len - i)
      return false;
    if ((type & 0xc0) != 0)
      return false;
    i += ol;
  }
  return true;
}

void
nat_ip6_input(NbNat *nat, const uint8_t *ip, size_t len, bool csum_partial)
{
  if (len < NB_IP6_HLEN || (ip[0] >> 4) != 6) {
    NAT_COUNT(nat, drop_ip6);
    return;
  }
  /* Ethernet pads short frames: the payload length is the truth, but it
   * must not claim more than the frame holds. */
  size_t plen = nb_rd16(ip + 4);
  if (plen > len - NB_IP6_HLEN) {
    NAT_COUNT(nat, drop_ip6);
    return;
  }
  size_t total = NB_IP6_HLEN + plen;
  const uint8_t *src = ip + 8, *dst = ip + 24;
  bool unspec = is_unspecified(src);
  if (is_multicast(src) || (!unspec && !nat_is_guest_addr6(nat, src))) {
    NAT_COUNT(nat, drop_ip6);
    return;
  }
  if (!nat->ra_next)
    nat->ra_next = nat->now + RA_INTERVAL_US;

  uint8_t next = ip[6];
  size_t off = NB_IP6_HLEN;
  size_t next_at = 6; /* where the field naming the current header is */
  for (int n = 0; next == EXT_HOP_BY_HOP || next == EXT_ROUTING || next == EXT_FRAGMENT ||
                  next == EXT_DEST_OPTS;
       n++) {
    /* Hop-by-hop options may only come first; the chain is bounded, and
     * every header must fit in the payload. */
    if (n >= NAT_IP6_MAX_EXT || total - off < 8 || (next == EXT_HOP_BY_HOP && n != 0)) {
      NAT_COUNT(nat, drop_ip6);
      return;
    }
    const uint8_t *h = ip + off;
    size_t hl = next == EXT_FRAGMENT ? 8 : ((size_t)h[1] + 1) * 8;
    if (hl > total - off) {
      NAT_COUNT(nat, drop_ip6);
      return;
    }
    if ((next == EXT_HOP_BY_HOP || next == EXT_DEST_OPTS) && !ip6_options_ok(h + 2, hl - 2)) {
      NAT_COUNT(nat, drop_ip6);
      return;
    }
    if (next == EXT_ROUTING && h[3] != 0) {
      /* Segments left: a source route, which a NAT does not honour. */
      NAT_COUNT(nat, drop_ip6);
      return;
    }
    if (next == EXT_FRAGMENT && (nb_rd16(h + 2) & 0xfff9) != 0) {
      /* A real fragment: IPv6 fragments from the guest are not reassembled
       * (its stack does path MTU discovery; only an "atomic" fragment, at
       * offset 0 with no more to come, is a whole packet). */
      NAT_COUNT(nat, drop_frag);
      return;
    }
    next_at = off;
    next = h[0];
    off += hl;
  }

  NatPacket pkt = {
    .l4 = ip + off, .l4_len = total - off, .v6 = true, .proto = next, .ttl = ip[7], .ip = ip,
    .ip_hlen = off, .csum_partial = csum_partial,
  };
  memcpy(pkt.saddr.b, src, 16);
  memcpy(pkt.daddr.b, dst, 16);
  if (next == NB_IP_PROTO_ICMPV6) {
    icmp6_input(nat, &pkt);
    return;
  }
  if (next == EXT_NONE)
    return;
  /* Only neighbor discovery comes from :: or goes to a group. */
  if (unspec || is_multicast(dst)) {
    NAT_COUNT(nat, drop_policy);
    return;
  }
  switch (next) {
  case NB_IP_PROTO_TCP:
    nat_tcp_input(nat, &pkt);
    break;
  case NB_IP_PROTO_UDP:
    nat_udp_input(nat, &pkt);
    break;
  default:
    NAT_COUNT(nat, drop_policy);
    nat_icmp6_error(nat, &pkt, ICMP6_PARAM_PROBLEM, 1, (uint32_t)next_at); /* unknown next header */
    break;
  }
}
