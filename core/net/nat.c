/* The NAT engine: its context, its epoll set of host sockets, and the first
 * steps of every frame from the guest (Ethernet and IPv4; IPv6 goes on to
 * nat-ip6.c). */
#include "net/nat-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib-unix.h>
#include <unistd.h>

/* TCP timers need a fine tick, but only while a flow has one running; the
 * rest (idle flows, fragments, UDP) is looked at once a second, so an idle
 * machine's engine wakes once a second. */
#define FAST_TICK_MS 50
#define SLOW_TICK_MS 1000

typedef struct {
  void *obj;
  GDestroyNotify func;
} NatDead;

static const NbNetBackendClass nat_backend_class;

/* ---- epoll set ---- */

gboolean
nat_watch_add(NbNat *nat, NatWatch *w, int fd, uint32_t events, NatWatchFunc func, void *obj)
{
  w->func = func;
  w->obj = obj;
  w->fd = fd;
  w->events = events;
  struct epoll_event ev = { .events = events, .data.ptr = w };
  return epoll_ctl(nat->epfd, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void
nat_watch_modify(NbNat *nat, NatWatch *w, uint32_t events)
{
  if (w->fd < 0 || w->events == events)
    return;
  w->events = events;
  struct epoll_event ev = { .events = events, .data.ptr = w };
  epoll_ctl(nat->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void
nat_watch_remove(NbNat *nat, NatWatch *w)
{
  if (w->fd >= 0)
    epoll_ctl(nat->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  w->fd = -1;
  w->func = NULL;
}

void
nat_defer_free(NbNat *nat, void *obj, GDestroyNotify free_func)
{
  NatDead *d = g_new(NatDead, 1);
  d->obj = obj;
  d->func = free_func;
  g_ptr_array_add(nat->dead, d);
}

static void
nat_reap(NbNat *nat)
{
  for (guint i = 0; i < nat->dead->len; i++) {
    NatDead *d = nat->dead->pdata[i];
    d->func(d->obj);
    g_free(d);
  }
  g_ptr_array_set_size(nat->dead, 0);
}

static gboolean
nat_epoll_ready(int fd, GIOCondition condition, gpointer user_data)
{
  NbNat *nat = user_data;
  struct epoll_event events[128];
  nat->now = g_get_monotonic_time();
  int n = epoll_wait(nat->epfd, events, G_N_ELEMENTS(events), 0);
  for (int i = 0; i < n; i++) {
    NatWatch *w = events[i].data.ptr;
    /* A watch removed earlier in this batch has no func; its memory is
     * still there until nat_reap(). */
    if (w->func)
      w->func(nat, w->obj, events[i].events);
  }
  nat_tcp_flush(nat);
  nat_reap(nat);
  return G_SOURCE_CONTINUE;
}

static gboolean
nat_slow_tick(gpointer user_data)
{
  NbNat *nat = user_data;
  nat->now = g_get_monotonic_time();
  if (nat_tcp_tick(nat))
    nat_timer_wanted(nat);
  nat_udp_tick(nat);
  nat_icmp_tick(nat);
  nat_frag_tick(nat);
  nat_ip6_tick(nat);
  nat_tcp_flush(nat);
  nat_reap(nat);
  return G_SOURCE_CONTINUE;
}

static gboolean
nat_fast_tick(gpointer user_data)
{
  NbNat *nat = user_data;
  nat->now = g_get_monotonic_time();
  bool again = nat_tcp_tick(nat);
  nat_tcp_flush(nat);
  nat_reap(nat);
  if (again)
    return G_SOURCE_CONTINUE;
  g_source_unref(nat->fast_tick);
  nat->fast_tick = NULL;
  return G_SOURCE_REMOVE;
}

void
nat_timer_wanted(NbNat *nat)
{
  if (nat->fast_tick)
    return;
  nat->fast_tick = g_timeout_source_new(FAST_TICK_MS);
  g_source_set_callback(nat->fast_tick, nat_fast_tick, nat, NULL);
  g_source_attach(nat->fast_tick, nat->context);
}

/* ---- addresses ---- */

bool
nat_is_guest_addr(NbNat *nat, uint32_t addr)
{
  const NbNatConfig *c = nat->cfg;
  return (addr & c->netmask) == c->net && addr != c->net && addr != (c->net | ~c->netmask) &&
         addr != c->gateway && addr != c->dns;
}

bool
nat_translate_out(NbNat *nat, uint32_t dst, uint32_t *host_dst)
{
  const NbNatConfig *c = nat->cfg;
  if (dst == c->gateway) {
    if (!c->host_loopback)
      return false;
    *host_dst = INADDR_LOOPBACK;
    return true;
  }
  if (c->restrict_outbound)
    return false;
  /* The rest of the virtual subnet, broadcasts, multicast and the host's own
   * loopback range are not the outside world. */
  if ((dst & c->netmask) == c->net || dst == 0xffffffffu || (dst >> 28) == 0xe ||
      (dst >> 28) == 0xf || (dst >> 24) == 127 || (dst >> 24) == 0)
    return false;
  *host_dst = dst;
  return true;
}

uint32_t
nat_translate_in(NbNat *nat, uint32_t host_src)
{
  if ((host_src >> 24) == 127)
    return nat->cfg->gateway;
  return host_src;
}

static bool
nat_is_loopback6(const NatAddr *a)
{
  static const uint8_t lo[16] = { [15] = 1 };
  return memcmp(a->b, lo, 16) == 0;
}

bool
nat_translate_out_addr(NbNat *nat, const NatAddr *dst, NatAddr *host_dst)
{
  if (nat_addr_is4(dst)) {
    uint32_t h;
    if (!nat_translate_out(nat, nat_addr_get4(dst), &h))
      return false;
    *host_dst = nat_addr4(h);
    return true;
  }
  const NbNatConfig *c = nat->cfg;
  if (nat_addr_eq(dst, &nat->gw6)) {
    if (!c->host_loopback)
      return false;
    *host_dst = (NatAddr){ { [15] = 1 } };
    return true;
  }
  if (c->restrict_outbound)
    return false;
  /* Our own /64, link-local and multicast scopes, the unspecified and
   * loopback addresses, and IPv4-mapped or -compatible ones (which would
   * reach IPv4 hosts past the IPv4 rules) stay inside. */
  static const uint8_t zero[12];
  const uint8_t *b = dst->b;
  if (memcmp(b, c->net6, 8) == 0 || b[0] == 0xff || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||
      memcmp(b, zero, 12) == 0 || nat_addr_is4(dst))
    return false;
  *host_dst = *dst;
  return true;
}

NatAddr
nat_translate_in_addr(NbNat *nat, const NatAddr *host_src)
{
  if (nat_addr_is4(host_src))
    return nat_addr4(nat_translate_in(nat, nat_addr_get4(host_src)));
  if (nat_is_loopback6(host_src))
    return nat->gw6;
  return *host_src;
}

const NatAddr *
nat_dns_addr(NbNat *nat, bool v6, NatAddr *buf)
{
  if (v6)
    return &nat->dns6;
  *buf = nat_addr4(nat->cfg->dns);
  return buf;
}

socklen_t
nat_sockaddr_set(NatSockaddr *sa, int family, const NatAddr *a, uint16_t port)
{
  memset(sa, 0, sizeof *sa);
  if (family == AF_INET) {
    sa->in.sin_family = AF_INET;
    sa->in.sin_port = htons(port);
    sa->in.sin_addr.s_addr = htonl(nat_addr_get4(a));
    return sizeof sa->in;
  }
  sa->in6.sin6_family = AF_INET6;
  sa->in6.sin6_port = htons(port);
  memcpy(&sa->in6.sin6_addr, a->b, 16);
  return sizeof sa->in6;
}

bool
nat_sockaddr_get(const NatSockaddr *sa, socklen_t len, NatAddr *a, uint16_t *port)
{
  if (len >= sizeof sa->in && sa->sa.sa_family == AF_INET) {
    *a = nat_addr4(ntohl(sa->in.sin_addr.s_addr));
    *port = ntohs(sa->in.sin_port);
    return true;
  }
  if (len >= sizeof sa->in6 && sa->sa.sa_family == AF_INET6) {
    memcpy(a->b, &sa->in6.sin6_addr, 16);
    *port = ntohs(sa->in6.sin6_port);
    return true;
  }
  return false;
}

uint32_t
nat_fwd_guest_addr(NbNat *nat, const NbNatHostFwd *fwd)
{
  if (fwd->guest_addr)
    return fwd->guest_addr;
  if (nat->guest_addr)
    return nat->guest_addr;
  return nat->cfg->dhcp_start;
}

NatAddr
nat_fwd_guest(NbNat *nat, const NbNatHostFwd *fwd)
{
  if (!fwd->guest_v6)
    return nat_addr4(nat_fwd_guest_addr(nat, fwd));
  NatAddr a;
  memcpy(a.b, fwd->guest_addr6, 16);
  return a;
}

NatAddr
nat_fwd_peer(NbNat *nat, const NatAddr *guest, const NatAddr *peer)
{
  if (nat_addr_is4(guest)) {
    /* An IPv6 peer has no IPv4 address to show: to an IPv4 guest it comes
     * from the gateway, as the host's own loopback does. */
    if (!nat_addr_is4(peer))
      return nat_addr4(nat->cfg->gateway);
    return nat_translate_in_addr(nat, peer);
  }
  /* An IPv4 peer has no IPv6 address, and a link-local one would look
   * on-link to the guest: both come from the gateway. */
  if (nat_addr_is4(peer) || (peer->b[0] == 0xfe && (peer->b[1] & 0xc0) == 0x80))
    return nat->gw6;
  return nat_translate_in_addr(nat, peer);
}

/* ---- output ---- */

void
nat_deliver(NbNat *nat, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  if (nb_net_backend_deliver(&nat->backend, frame, len, meta))
    NAT_COUNT(nat, tx_frames);
  else
    NAT_COUNT(nat, tx_dropped);
}

static void
nat_eth_header(NbNat *nat, uint8_t *frame, uint16_t type, uint32_t dst)
{
  static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
  bool known = nat->guest_mac_known && dst != 0xffffffffu;
  memcpy(frame, known ? nat->guest_mac : broadcast, 6);
  memcpy(frame + 6, nat->gw_mac, 6);
  nb_wr16(frame + 12, type);
}

static void
nat_ip_header(uint8_t *ip, uint8_t proto, uint32_t src, uint32_t dst, size_t total,
              uint16_t id, uint16_t frag)
{
  ip[0] = 0x45;
  ip[1] = 0;
  nb_wr16(ip + 2, (uint16_t)total);
  nb_wr16(ip + 4, id);
  nb_wr16(ip + 6, frag);
  ip[8] = 64;
  ip[9] = proto;
  nb_wr16(ip + 10, 0);
  nb_wr32(ip + 12, src);
  nb_wr32(ip + 16, dst);
  nb_wr16(ip + 10, nb_csum(ip, NB_IP_HLEN));
}

bool
nat_l4_csum(NbNat *nat, uint8_t *l4, size_t len, size_t csum_at, uint8_t proto, uint32_t src,
            uint32_t dst, bool may_offload)
{
  uint32_t pseudo = nb_csum_pseudo(src, dst, proto, (uint16_t)len);
  nb_wr16(l4 + csum_at, 0);
  if (may_offload && (nat->backend.peer_features & NB_NET_PEER_CSUM_OFFLOAD)) {
    /* The pseudo-header's sum, folded but not complemented, as a NIC
     * finishing the sum expects it. */
    nb_wr16(l4 + csum_at, (uint16_t)~nb_csum_fold(pseudo));
    return true;
  }
  uint16_t sum = nb_csum_fold(nb_csum_partial(l4, len, pseudo));
  if (proto == NB_IP_PROTO_UDP && sum == 0)
    sum = 0xffff; /* zero means "no checksum" in UDP */
  nb_wr16(l4 + csum_at, sum);
  return false;
}

void
nat_ip_send(NbNat *nat, uint8_t proto, uint32_t src, uint32_t dst, size_t l4_len,
            const NbNetFrameMeta *meta)
{
  uint8_t *frame = nat->tx;
  size_t mtu = nat->cfg->mtu;
  nat_eth_header(nat, frame, NB_ETH_TYPE_IPV4, dst);
  if (NB_IP_HLEN + l4_len <= mtu || (meta && (meta->flags & NB_NET_FRAME_GSO_TCPV4))) {
    /* Don't-fragment, like a host stack doing path MTU discovery. */
    nat_ip_header(frame + NB_ETH_HLEN, proto, src, dst, NB_IP_HLEN + l4_len, nat->ip_id++, 0x4000);
    nat_deliver(nat, frame, NB_ETH_HLEN + NB_IP_HLEN + l4_len, meta);
    return;
  }
  /* Too big for the guest's MTU (a large datagram from a host socket): send
   * it in fragments of a multiple of 8 bytes. */
  size_t piece = (mtu - NB_IP_HLEN) & ~(size_t)7;
  g_autofree uint8_t *out = g_malloc(NB_ETH_HLEN + mtu);
  uint16_t id = nat->ip_id++;
  for (size_t off = 0; off < l4_len; off += piece) {
    size_t n = MIN(piece, l4_len - off);
    bool more = off + n < l4_len;
    nat_eth_header(nat, out, NB_ETH_TYPE_IPV4, dst);
    nat_ip_header(out + NB_ETH_HLEN, proto, src, dst, NB_IP_HLEN + n, id,
                  (uint16_t)((more ? 0x2000 : 0) | (off / 8)));
    memcpy(out + NAT_L4_OFF, frame + NAT_L4_OFF + off, n);
    nat_deliver(nat, out, NB_ETH_HLEN + NB_IP_HLEN + n, NULL);
  }
}

bool
nat_l4_csum_addr(NbNat *nat, uint8_t *l4, size_t len, size_t csum_at, uint8_t proto,
                 const NatAddr *src, const NatAddr *dst, bool may_offload)
{
  if (nat_addr_is4(src))
    return nat_l4_csum(nat, l4, len, csum_at, proto, nat_addr_get4(src), nat_addr_get4(dst),
                       may_offload);
  /* IPv6 frames always carry the whole sum: the offload metadata (and the
   * frontends' nb_net_frame_csum_offsets()) are IPv4's only. */
  nb_wr16(l4 + csum_at, 0);
  uint16_t sum = nb_csum_fold(nb_csum_partial(l4, len, nb_csum_pseudo6(src->b, dst->b, proto,
                                                                       (uint32_t)len)));
  if (proto == NB_IP_PROTO_UDP && sum == 0)
    sum = 0xffff;
  nb_wr16(l4 + csum_at, sum);
  return false;
}

void
nat_l4_send(NbNat *nat, uint8_t proto, const NatAddr *src, const NatAddr *dst, size_t l4_len,
            const NbNetFrameMeta *meta)
{
  if (nat_addr_is4(src))
    nat_ip_send(nat, proto, nat_addr_get4(src), nat_addr_get4(dst), l4_len, meta);
  else
    nat_ip6_send(nat, proto, src->b, dst->b, l4_len);
}

uint32_t
nat_pkt_pseudo(const NatPacket *pkt, uint8_t proto, size_t len)
{
  if (pkt->v6)
    return nb_csum_pseudo6(pkt->saddr.b, pkt->daddr.b, proto, (uint32_t)len);
  return nb_csum_pseudo(pkt->src, pkt->dst, proto, (uint16_t)len);
}

void
nat_icmp_error(NbNat *nat, const NatPacket *pkt, uint8_t type, uint8_t code)
{
  /* The guest's header and the first 8 bytes of what followed (RFC 792). */
  size_t quote = MIN(pkt->ip_hlen + pkt->l4_len, pkt->ip_hlen + 8);
  uint8_t *icmp = nat->tx + NAT_L4_OFF;
  icmp[0] = type;
  icmp[1] = code;
  nb_wr16(icmp + 2, 0);
  nb_wr32(icmp + 4, 0);
  memcpy(icmp + 8, pkt->ip, quote);
  nb_wr16(icmp + 2, nb_csum(icmp, 8 + quote));
  uint32_t src = pkt->dst;
  if (!nat_is_guest_addr(nat, pkt->src))
    return;
  nat_ip_send(nat, NB_IP_PROTO_ICMP, src, pkt->src, 8 + quote, NULL);
}

/* ---- input ---- */

/* IP options: every option must fit in the header; source routes are not
 * honoured by a NAT and are refused. */
static bool
nat_ip_options_ok(const uint8_t *opt, size_t len)
{
  size_t i = 0;
  while (i < len) {
    uint8_t type = opt[i];
    if (type == 0)
      return true;
    if (type == 1) {
      i++;
      continue;
    }
    if (i + 1 >= len)
      return false;
    uint8_t olen = opt[i + 1];
    if (olen < 2 || olen > len - i)
      return false;
    if (type == 131 || type == 137) /* loose and strict source route */
      return false;
    i += olen;
  }
  return true;
}

static void
nat_ip_input(NbNat *nat, const uint8_t *ip, size_t len, bool csum_partial)
{
  if (len < NB_IP_HLEN || (ip[0] >> 4) != 4) {
    NAT_COUNT(nat, drop_ip);
    return;
  }
  size_t hlen = (size_t)(ip[0] & 0xf) * 4;
  size_t total = nb_rd16(ip + 2);
  /* Ethernet pads short frames: the IP total length is the truth, but it
   * must not claim more than the frame holds. */
  if (hlen < NB_IP_HLEN || hlen > len || total < hlen || total > len ||
      nb_csum(ip, hlen) != 0 || !nat_ip_options_ok(ip + NB_IP_HLEN, hlen - NB_IP_HLEN)) {
    NAT_COUNT(nat, drop_ip);
    return;
  }
  uint32_t src = nb_rd32(ip + 12);
  uint32_t dst = nb_rd32(ip + 16);
  if (src != 0 && !nat_is_guest_addr(nat, src)) {
    NAT_COUNT(nat, drop_ip);
    return;
  }

  g_autofree uint8_t *whole = NULL;
  uint16_t frag = nb_rd16(ip + 6);
  if (frag & 0x3fff) {
    size_t whole_len;
    whole = nat_frag_input(nat, ip, hlen, total, &whole_len);
    if (!whole)
      return;
    ip = whole;
    total = whole_len;
  }

  if (src != 0)
    nat->guest_addr = src;
  NatPacket pkt = {
    .l4 = ip + hlen, .l4_len = total - hlen, .src = src, .dst = dst, .saddr = nat_addr4(src),
    .daddr = nat_addr4(dst), .proto = ip[9], .ttl = ip[8], .ip = ip, .ip_hlen = hlen,
    .csum_partial = csum_partial,
  };
  switch (pkt.proto) {
  case NB_IP_PROTO_TCP:
    nat_tcp_input(nat, &pkt);
    break;
  case NB_IP_PROTO_UDP:
    nat_udp_input(nat, &pkt);
    break;
  case NB_IP_PROTO_ICMP:
    nat_icmp_input(nat, &pkt);
    break;
  default:
    NAT_COUNT(nat, drop_policy);
    nat_icmp_error(nat, &pkt, 3, 2); /* protocol unreachable */
    break;
  }
}

static void
nat_send(NbNetBackend *backend, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  NbNat *nat = nat_from_backend(backend);
  nat->now = g_get_monotonic_time();
  NAT_COUNT(nat, rx_frames);
  if (len < NB_ETH_HLEN || len > NB_ETH_HLEN + 65535) {
    NAT_COUNT(nat, drop_eth);
    return;
  }
  const uint8_t *dst = frame;
  const uint8_t *src = frame + 6;
  bool broadcast = (dst[0] & dst[1] & dst[2] & dst[3] & dst[4] & dst[5]) == 0xff;
  if (src[0] & 1) {
    NAT_COUNT(nat, drop_eth); /* a multicast source address is a forgery */
    return;
  }
  /* IPv6 multicast (33:33:...) carries neighbor and router solicitations. */
  bool multicast6 = dst[0] == 0x33 && dst[1] == 0x33;
  if (!broadcast && !multicast6 && memcmp(dst, nat->gw_mac, 6) != 0)
    return; /* multicast or another host's: not ours, not an error */
  uint16_t type = nb_rd16(frame + 12);
  if (type == NB_ETH_TYPE_IPV6) {
    if (!nat->cfg->ipv6)
      return;
    memcpy(nat->guest_mac, src, 6);
    nat->guest_mac_known = true;
    nat_ip6_input(nat, frame + NB_ETH_HLEN, len - NB_ETH_HLEN,
                  meta && (meta->flags & NB_NET_FRAME_CSUM_PARTIAL));
    return;
  }
  if (multicast6)
    return;
  if (type == NB_ETH_TYPE_ARP) {
    nat_arp_input(nat, frame, len);
  } else if (type == NB_ETH_TYPE_IPV4) {
    memcpy(nat->guest_mac, src, 6);
    nat->guest_mac_known = true;
    nat_ip_input(nat, frame + NB_ETH_HLEN, len - NB_ETH_HLEN,
                 meta && (meta->flags & NB_NET_FRAME_CSUM_PARTIAL));
  }
  /* Anything else (VLANs, LLDP) is not handled by this engine. */
}

static void
nat_flush(NbNetBackend *backend)
{
  NbNat *nat = nat_from_backend(backend);
  nat_tcp_flush(nat);
  nat_reap(nat);
}

/* ---- port forwards ---- */

static void
nat_fwd_ready(NbNat *nat, void *obj, uint32_t events)
{
  NatFwd *fwd = obj;
  if (fwd->fwd.proto == NB_NAT_PROTO_TCP)
    nat_tcp_fwd_accept(nat, fwd);
  else
    nat_udp_fwd_readable(nat, fwd);
}

static bool
nat_fwd_same_host(const NbNatHostFwd *a, const NbNatHostFwd *b)
{
  if (a->proto != b->proto || a->host_v6 != b->host_v6)
    return false;
  return a->host_v6 ? memcmp(a->host_addr6, b->host_addr6, 16) == 0 : a->host_addr == b->host_addr;
}

/* The forward listening where key says: its host port as asked, or as bound
 * when it asked for port 0. */
static NatFwd *
nat_fwd_find(NbNat *nat, const NbNatHostFwd *key)
{
  for (guint i = 0; i < nat->fwds->len; i++) {
    NatFwd *f = nat->fwds->pdata[i];
    if (nat_fwd_same_host(&f->fwd, key) &&
        (f->fwd.host_port == key->host_port || (key->host_port && f->bound_port == key->host_port)))
      return f;
  }
  return NULL;
}

static void
nat_fwd_free(gpointer p)
{
  NatFwd *f = p;
  if (f->fd >= 0)
    close(f->fd);
  g_free(f);
}

static gboolean
nat_fwd_add(NbNat *nat, const NbNatHostFwd *fwd, GError **error)
{
  g_autofree char *rule = nb_nat_hostfwd_format(fwd);
  if (fwd->host_port && nat_fwd_find(nat, fwd)) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_EXISTS,
                "a port forward from that host address and port already exists (“%s”): "
                "remove it first", rule);
    return FALSE;
  }
  if (fwd->guest_v6 && !nb_nat_config_guest_addr6_ok(nat->cfg, fwd->guest_addr6)) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                "port forward “%s” goes to an IPv6 address the guest cannot have: give one "
                "inside the NAT's IPv6 prefix (with ipv6=on), or leave the guest address empty "
                "to reach the guest over IPv4", rule);
    return FALSE;
  }
  int type = fwd->proto == NB_NAT_PROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
  int family = fwd->host_v6 ? AF_INET6 : AF_INET;
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    goto fail;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* [::] is IPv6 only: 0.0.0.0 is a forward of its own, so that each
   * address family is opened only when asked for. */
  if (family == AF_INET6)
    setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one);
  NatSockaddr sa;
  NatAddr host = fwd->host_v6 ? (NatAddr){ { 0 } } : nat_addr4(fwd->host_addr);
  if (fwd->host_v6)
    memcpy(host.b, fwd->host_addr6, 16);
  socklen_t salen = nat_sockaddr_set(&sa, family, &host, fwd->host_port);
  if (bind(fd, &sa.sa, salen) < 0 || (type == SOCK_STREAM && listen(fd, 128) < 0))
    goto fail;
  salen = sizeof sa;
  getsockname(fd, &sa.sa, &salen);
  NatFwd *f = g_new0(NatFwd, 1);
  f->fwd = *fwd;
  f->fd = fd;
  f->bound_port = ntohs(family == AF_INET6 ? sa.in6.sin6_port : sa.in.sin_port);
  if (!nat_watch_add(nat, &f->watch, fd, EPOLLIN, nat_fwd_ready, f)) {
    g_free(f);
    goto fail;
  }
  g_ptr_array_add(nat->fwds, f);
  return TRUE;

fail:;
  int err = errno;
  if (fd >= 0)
    close(fd);
  /* "tcp port 127.0.0.1:2222" or "tcp port [::1]:2222": the host side. */
  char *dash = strchr(rule, '-');
  if (dash)
    *dash = '\0';
  char *colon = strchr(rule, ':');
  if (colon)
    *colon = '\0';
  g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_SOCKET,
              "cannot forward %s port %s: %s — pick another host port or address", rule,
              colon ? colon + 1 : rule, g_strerror(err));
  return FALSE;
}

static gboolean
nat_fwd_remove(NbNat *nat, const NbNatHostFwd *key, GError **error)
{
  NatFwd *f = nat_fwd_find(nat, key);
  if (!f) {
    g_autofree char *rule = nb_nat_hostfwd_format(key);
    char *dash = strchr(rule, '-');
    if (dash)
      *dash = '\0';
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_NOT_FOUND,
                "there is no port forward from %s", rule);
    return FALSE;
  }
  nat_watch_remove(nat, &f->watch);
  if (f->fwd.proto == NB_NAT_PROTO_UDP)
    nat_udp_fwd_removed(nat, f);
  g_ptr_array_remove_fast(nat->fwds, f);
  /* Connections already accepted go on: they have sockets of their own. */
  nat_defer_free(nat, f, nat_fwd_free);
  return TRUE;
}

/* Runs func on the engine's thread and waits for it. */
typedef struct {
  NbNat *nat;
  gboolean (*func)(NbNat *nat, gpointer data, GError **error);
  gpointer data;
  GError *error;
  gboolean result;
  gboolean done;
  GMutex lock;
  GCond cond;
} NatCall;

static gboolean
nat_call_run(gpointer p)
{
  NatCall *call = p;
  call->nat->now = g_get_monotonic_time();
  call->result = call->func(call->nat, call->data, &call->error);
  nat_reap(call->nat);
  g_mutex_lock(&call->lock);
  call->done = TRUE;
  g_cond_signal(&call->cond);
  g_mutex_unlock(&call->lock);
  return G_SOURCE_REMOVE;
}

static gboolean
nat_call(NbNat *nat, gboolean (*func)(NbNat *, gpointer, GError **), gpointer data,
         GError **error)
{
  if (!nat->thread || g_thread_self() == nat->thread) {
    nat->now = g_get_monotonic_time();
    gboolean ok = func(nat, data, error);
    if (!nat->thread)
      nat_reap(nat);
    return ok;
  }
  NatCall call = { .nat = nat, .func = func, .data = data };
  g_mutex_init(&call.lock);
  g_cond_init(&call.cond);
  g_main_context_invoke(nat->context, nat_call_run, &call);
  g_mutex_lock(&call.lock);
  while (!call.done)
    g_cond_wait(&call.cond, &call.lock);
  g_mutex_unlock(&call.lock);
  g_mutex_clear(&call.lock);
  g_cond_clear(&call.cond);
  if (call.error)
    g_propagate_error(error, call.error);
  return call.result;
}

static gboolean
call_add(NbNat *nat, gpointer data, GError **error)
{
  return nat_fwd_add(nat, data, error);
}

gboolean
nb_nat_add_hostfwd(NbNat *nat, const NbNatHostFwd *fwd, GError **error)
{
  NbNatHostFwd copy = *fwd;
  return nat_call(nat, call_add, &copy, error);
}

typedef struct {
  NbNatHostFwd key;
  uint16_t bound;
} NatRemoveArgs;

static gboolean
call_remove(NbNat *nat, gpointer data, GError **error)
{
  NatRemoveArgs *a = data;
  return nat_fwd_remove(nat, &a->key, error);
}

gboolean
nb_nat_remove_hostfwd_rule(NbNat *nat, const NbNatHostFwd *key, GError **error)
{
  NatRemoveArgs a = { .key = *key };
  return nat_call(nat, call_remove, &a, error);
}

gboolean
nb_nat_remove_hostfwd(NbNat *nat, NbNatProto proto, uint32_t host_addr, uint16_t host_port,
                      GError **error)
{
  NbNatHostFwd key = { .proto = proto, .host_addr = host_addr, .host_port = host_port };
  return nb_nat_remove_hostfwd_rule(nat, &key, error);
}

static gboolean
call_bound(NbNat *nat, gpointer data, GError **error)
{
  NatRemoveArgs *a = data;
  NatFwd *f = nat_fwd_find(nat, &a->key);
  a->bound = f ? f->bound_port : 0;
  return TRUE;
}

uint16_t
nb_nat_hostfwd_rule_bound_port(NbNat *nat, const NbNatHostFwd *key)
{
  NatRemoveArgs a = { .key = *key };
  nat_call(nat, call_bound, &a, NULL);
  return a.bound;
}

uint16_t
nb_nat_hostfwd_bound_port(NbNat *nat, NbNatProto proto, uint32_t host_addr, uint16_t host_port)
{
  NbNatHostFwd key = { .proto = proto, .host_addr = host_addr, .host_port = host_port };
  return nb_nat_hostfwd_rule_bound_port(nat, &key);
}

static gboolean
call_stats(NbNat *nat, gpointer data, GError **error)
{
  NbNatStats *out = data;
  *out = nat->stats;
  out->tcp_flows = nat_tcp_flow_count(nat);
  out->leases = nat_dhcp_lease_count(nat);
  return TRUE;
}

void
nb_nat_get_stats(NbNat *nat, NbNatStats *out)
{
  nat_call(nat, call_stats, out, NULL);
}

/* ---- life cycle ---- */

NbNat *
nb_nat_new(const NbNatConfig *config, GError **error)
{
  if (!nb_nat_config_check(config, error))
    return NULL;
  NbNat *nat = g_new0(NbNat, 1);
  nat->cfg = nb_nat_config_copy(config);
  nat->context = g_main_context_new();
  nb_net_backend_init(&nat->backend, &nat_backend_class, nat->context);
  nat->epfd = epoll_create1(EPOLL_CLOEXEC);
  nat->dead = g_ptr_array_new();
  nat->fwds = g_ptr_array_new();
  nat->tx = nat->tx_main = (uint8_t *)g_malloc0(NAT_TX_HEADROOM + NAT_TX_SIZE) + NAT_TX_HEADROOM;
  nat->now = g_get_monotonic_time();
  nat->ip_id = (uint16_t)g_random_int();
  /* A locally administered address that shows the gateway's IPv4 address,
   * easy to spot in a capture. */
  nat->gw_mac[0] = 0x52;
  nat->gw_mac[1] = 0x55;
  nb_wr32(nat->gw_mac + 2, config->gateway);
  nat->ll6.b[0] = 0xfe;
  nat->ll6.b[1] = 0x80;
  nat->ll6.b[15] = 2;
  memcpy(nat->gw6.b, config->net6, 8);
  nat->gw6.b[15] = 2;
  nat->dns6 = nat->gw6;
  nat->dns6.b[15] = 3;
  /* ra_next stays 0 until the guest speaks IPv6: a guest that boots asks
   * for an advertisement, and unsolicited ones follow from then on. */

  nat->frag = nat_frag_new();
  nat->dhcp = nat_dhcp_new(nat);
  nat->dns = nat_dns_new(nat);
  nat->tcp = nat_tcp_new(nat);
  nat->udp = nat_udp_new(nat);
  nat->icmp = nat_icmp_new(nat);

  nat->epoll_source = g_unix_fd_source_new(nat->epfd, G_IO_IN);
  g_source_set_callback(nat->epoll_source, (GSourceFunc)(void (*)(void))nat_epoll_ready, nat,
                        NULL);
  g_source_attach(nat->epoll_source, nat->context);
  nat->tick_source = g_timeout_source_new(SLOW_TICK_MS);
  g_source_set_callback(nat->tick_source, nat_slow_tick, nat, NULL);
  g_source_attach(nat->tick_source, nat->context);

  for (guint i = 0; i < config->hostfwds->len; i++) {
    if (!nat_fwd_add(nat, &g_array_index(config->hostfwds, NbNatHostFwd, i), error)) {
      nb_nat_free(nat);
      return NULL;
    }
  }
  if (nat->epfd < 0) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_SOCKET, "cannot create the NAT engine's epoll set: %s",
                g_strerror(errno));
    nb_nat_free(nat);
    return NULL;
  }
  return nat;
}

NbNetBackend *
nb_nat_get_backend(NbNat *nat)
{
  return &nat->backend;
}

static gpointer
nat_thread_main(gpointer p)
{
  NbNat *nat = p;
  g_main_context_push_thread_default(nat->context);
  g_main_loop_run(nat->loop);
  g_main_context_pop_thread_default(nat->context);
  return NULL;
}

gboolean
nb_nat_start(NbNat *nat, GError **error)
{
  if (nat->thread)
    return TRUE;
  nat->loop = g_main_loop_new(nat->context, FALSE);
  nat->thread = g_thread_try_new("nb-nat", nat_thread_main, nat, error);
  return nat->thread != NULL;
}

static void
nat_destroy(NbNetBackend *backend)
{
  NbNat *nat = nat_from_backend(backend);
  if (nat->thread) {
    g_main_loop_quit(nat->loop);
    g_thread_join(nat->thread);
    nat->thread = NULL;
  }
  g_clear_pointer(&nat->loop, g_main_loop_unref);
  nat_reap(nat);
  for (guint i = 0; i < nat->fwds->len; i++)
    nat_fwd_free(nat->fwds->pdata[i]);
  g_ptr_array_unref(nat->fwds);
  nat_tcp_free(nat, nat->tcp);
  nat_udp_free(nat, nat->udp);
  nat_icmp_free(nat, nat->icmp);
  nat_reap(nat);
  nat_dns_free(nat->dns);
  nat_dhcp_free(nat->dhcp);
  nat_frag_free(nat->frag);
  g_ptr_array_unref(nat->dead);
  g_source_destroy(nat->epoll_source);
  g_source_unref(nat->epoll_source);
  g_source_destroy(nat->tick_source);
  g_source_unref(nat->tick_source);
  if (nat->fast_tick) {
    g_source_destroy(nat->fast_tick);
    g_source_unref(nat->fast_tick);
  }
  if (nat->epfd >= 0)
    close(nat->epfd);
  g_main_context_unref(nat->context);
  nb_nat_config_free(nat->cfg);
  g_free(nat->tx_main - NAT_TX_HEADROOM);
  g_free(nat);
}

void
nb_nat_free(NbNat *nat)
{
  if (nat)
    nb_net_backend_free(&nat->backend);
}

static const NbNetBackendClass nat_backend_class = {
  .name = "nat",
  .send = nat_send,
  .flush = nat_flush,
  .destroy = nat_destroy,
};
