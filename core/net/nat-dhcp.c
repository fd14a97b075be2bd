/* The DHCP server (RFC 2131) of the virtual subnet. The pool is a fixed
 * array: a guest that floods DISCOVERs from random MAC addresses only
 * recycles offers; addresses already bound stay with their owners. */
#include "net/nat-private.h"

#define BOOTP_FIXED 236
#define DHCP_MAGIC 0x63825363u
#define DHCP_MIN_REPLY 300
#define DHCP_MAX_POOL 4096
#define OFFER_HOLD_US (30 * G_USEC_PER_SEC)
#define DECLINE_HOLD_US (600 * G_USEC_PER_SEC)

enum { DISCOVER = 1, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM };
enum { LEASE_FREE, LEASE_OFFERED, LEASE_BOUND };

typedef struct {
  uint8_t mac[6];
  uint8_t state;
  int64_t expires;
} NatLease;

struct NatDhcp {
  NatLease *pool;
  unsigned pool_size;
};

typedef struct {
  int type;
  uint32_t requested;
  uint32_t server;
  bool has_server;
} DhcpOptions;

NatDhcp *
nat_dhcp_new(NbNat *nat)
{
  const NbNatConfig *c = nat->cfg;
  NatDhcp *dhcp = g_new0(NatDhcp, 1);
  uint32_t last = (c->net | ~c->netmask) - 1;
  unsigned size = c->dhcp_start <= last ? last - c->dhcp_start + 1 : 0;
  if (c->dhcp_pool_size && c->dhcp_pool_size < size)
    size = c->dhcp_pool_size;
  dhcp->pool_size = MIN(size, (unsigned)DHCP_MAX_POOL);
  dhcp->pool = g_new0(NatLease, dhcp->pool_size);
  /* The router and DNS addresses may sit inside the range: never hand
   * them out. Static leases are taken out of the pool too. */
  for (unsigned i = 0; i < dhcp->pool_size; i++) {
    uint32_t a = c->dhcp_start + i;
    bool reserved = a == c->gateway || a == c->dns;
    for (guint j = 0; j < c->static_leases->len; j++)
      reserved |= a == g_array_index(c->static_leases, NbNatStaticLease, j).addr;
    if (reserved) {
      dhcp->pool[i].state = LEASE_BOUND;
      dhcp->pool[i].expires = G_MAXINT64;
    }
  }
  return dhcp;
}

void
nat_dhcp_free(NatDhcp *dhcp)
{
  g_free(dhcp->pool);
  g_free(dhcp);
}

static bool
lease_live(NbNat *nat, const NatLease *l)
{
  return l->state != LEASE_FREE && l->expires > nat->now;
}

unsigned
nat_dhcp_lease_count(NbNat *nat)
{
  unsigned n = 0;
  for (unsigned i = 0; i < nat->dhcp->pool_size; i++) {
    const NatLease *l = &nat->dhcp->pool[i];
    if (l->state == LEASE_BOUND && lease_live(nat, l) && l->expires != G_MAXINT64)
      n++;
  }
  return n;
}

static bool
static_lease(NbNat *nat, const uint8_t *mac, uint32_t *addr)
{
  GArray *leases = nat->cfg->static_leases;
  for (guint i = 0; i < leases->len; i++) {
    NbNatStaticLease *l = &g_array_index(leases, NbNatStaticLease, i);
    if (memcmp(l->mac, mac, 6) == 0) {
      *addr = l->addr;
      return true;
    }
  }
  return false;
}

static NatLease *
lease_of_mac(NbNat *nat, const uint8_t *mac, uint32_t *addr)
{
  NatDhcp *dhcp = nat->dhcp;
  for (unsigned i = 0; i < dhcp->pool_size; i++) {
    NatLease *l = &dhcp->pool[i];
    if (l->state != LEASE_FREE && l->expires != G_MAXINT64 && memcmp(l->mac, mac, 6) == 0) {
      *addr = nat->cfg->dhcp_start + i;
      return l;
    }
  }
  return NULL;
}

static NatLease *
lease_at(NbNat *nat, uint32_t addr)
{
  uint32_t i = addr - nat->cfg->dhcp_start;
  if (addr < nat->cfg->dhcp_start || i >= nat->dhcp->pool_size)
    return NULL;
  return &nat->dhcp->pool[i];
}

/* A free address, else the oldest outstanding offer (a flood's victim). */
static NatLease *
lease_allocate(NbNat *nat, uint32_t *addr)
{
  NatDhcp *dhcp = nat->dhcp;
  int oldest = -1;
  for (unsigned i = 0; i < dhcp->pool_size; i++) {
    NatLease *l = &dhcp->pool[i];
    if (!lease_live(nat, l)) {
      *addr = nat->cfg->dhcp_start + i;
      return l;
    }
    if (l->state == LEASE_OFFERED && (oldest < 0 || l->expires < dhcp->pool[oldest].expires))
      oldest = (int)i;
  }
  if (oldest < 0)
    return NULL;
  *addr = nat->cfg->dhcp_start + (unsigned)oldest;
  return &dhcp->pool[oldest];
}

static bool
parse_options(const uint8_t *opt, size_t len, DhcpOptions *out)
{
  size_t i = 0;
  while (i < len) {
    uint8_t code = opt[i];
    if (code == 0) {
      i++;
      continue;
    }
    if (code == 255)
      return true;
    if (i + 1 >= len)
      return false;
    size_t olen = opt[i + 1];
    if (olen > len - i - 2)
      return false; /* runs past the end of the packet */
    const uint8_t *v = opt + i + 2;
    switch (code) {
    case 53:
      if (olen != 1)
        return false;
      out->type = v[0];
      break;
    case 50:
      if (olen != 4)
        return false;
      out->requested = nb_rd32(v);
      break;
    case 54:
      if (olen != 4)
        return false;
      out->server = nb_rd32(v);
      out->has_server = true;
      break;
    default:
      break;
    }
    i += 2 + olen;
  }
  /* No end option: tolerated, as most servers do. */
  return true;
}

typedef struct {
  uint8_t *p;
  uint8_t *end;
} OptWriter;

static void
opt_put(OptWriter *w, uint8_t code, const void *data, size_t len)
{
  const uint8_t *d = data;
  /* Long values are split over several options of the same code
   * (RFC 3396). */
  do {
    size_t n = MIN(len, (size_t)255);
    if (w->p + 2 + n + 1 > w->end)
      return;
    w->p[0] = code;
    w->p[1] = (uint8_t)n;
    memcpy(w->p + 2, d, n);
    w->p += 2 + n;
    d += n;
    len -= n;
  } while (len);
}

static void
opt_put32(OptWriter *w, uint8_t code, uint32_t v)
{
  uint8_t b[4];
  nb_wr32(b, v);
  opt_put(w, code, b, 4);
}

/* DNS wire format of a name, as the search list option wants (RFC 3397). */
static size_t
encode_name(const char *name, uint8_t *out, size_t room)
{
  size_t n = 0;
  g_auto(GStrv) labels = g_strsplit(name, ".", -1);
  for (int i = 0; labels[i]; i++) {
    size_t l = strlen(labels[i]);
    if (l == 0)
      continue;
    if (n + 1 + l + 1 > room)
      return 0;
    out[n++] = (uint8_t)l;
    memcpy(out + n, labels[i], l);
    n += l;
  }
  out[n++] = 0;
  return n;
}

static void
dhcp_reply(NbNat *nat, const uint8_t *req, int type, uint32_t yiaddr, bool with_lease)
{
  const NbNatConfig *c = nat->cfg;
  uint8_t *udp_payload = nat->tx + NAT_L4_OFF + NB_UDP_HLEN;
  uint8_t *b = udp_payload;
  memset(b, 0, BOOTP_FIXED + 4);
  b[0] = 2;                     /* BOOTREPLY */
  b[1] = 1;
  b[2] = 6;
  memcpy(b + 4, req + 4, 4);    /* xid */
  memcpy(b + 10, req + 10, 2);  /* flags */
  memcpy(b + 12, req + 12, 4);  /* ciaddr */
  nb_wr32(b + 16, yiaddr);
  memcpy(b + 24, req + 24, 4);  /* giaddr */
  memcpy(b + 28, req + 28, 16); /* chaddr */
  nb_wr32(b + BOOTP_FIXED, DHCP_MAGIC);

  OptWriter w = { b + BOOTP_FIXED + 4, b + 1400 };
  uint8_t t = (uint8_t)type;
  opt_put(&w, 53, &t, 1);
  opt_put32(&w, 54, c->gateway);
  if (type != NAK) {
    if (with_lease) {
      opt_put32(&w, 51, c->lease_time);
      opt_put32(&w, 58, c->lease_time / 2);
      opt_put32(&w, 59, (uint32_t)((uint64_t)c->lease_time * 7 / 8));
    }
    opt_put32(&w, 1, c->netmask);
    opt_put32(&w, 3, c->gateway);
    opt_put32(&w, 6, c->dns);
    opt_put32(&w, 28, c->net | ~c->netmask);
    uint8_t mtu[2];
    nb_wr16(mtu, (uint16_t)c->mtu);
    opt_put(&w, 26, mtu, 2);
    if (c->domain)
      opt_put(&w, 15, c->domain, strlen(c->domain));
    if (c->hostname)
      opt_put(&w, 12, c->hostname, strlen(c->hostname));
    if (c->search) {
      uint8_t list[1024];
      size_t n = 0;
      for (int i = 0; c->search[i]; i++)
        n += encode_name(c->search[i], list + n, sizeof list - n);
      if (n)
        opt_put(&w, 119, list, n);
    }
  }
  *w.p++ = 255;
  size_t len = (size_t)(w.p - b);
  if (len < DHCP_MIN_REPLY) {
    memset(w.p, 0, DHCP_MIN_REPLY - len);
    len = DHCP_MIN_REPLY;
  }
  /* A client with an address gets unicast; one without, broadcast (it
   * cannot take unicast before it has configured the address). */
  uint32_t ciaddr = nb_rd32(req + 12);
  uint32_t dst = ciaddr && nat_is_guest_addr(nat, ciaddr) ? ciaddr : 0xffffffffu;
  nat_udp_send(nat, c->gateway, 67, dst, 68, len);
}

void
nat_dhcp_input(NbNat *nat, const uint8_t *src_mac, const uint8_t *data, size_t len)
{
  if (len < BOOTP_FIXED + 4 || data[0] != 1 || data[1] != 1 || data[2] != 6 ||
      nb_rd32(data + BOOTP_FIXED) != DHCP_MAGIC) {
    NAT_COUNT(nat, drop_dhcp);
    return;
  }
  DhcpOptions o = { 0 };
  if (!parse_options(data + BOOTP_FIXED + 4, len - BOOTP_FIXED - 4, &o) || o.type == 0) {
    NAT_COUNT(nat, drop_dhcp);
    return;
  }
  const uint8_t *mac = data + 28;
  if (mac[0] & 1) {
    NAT_COUNT(nat, drop_dhcp);
    return;
  }
  const NbNatConfig *c = nat->cfg;
  uint32_t ciaddr = nb_rd32(data + 12);
  uint32_t addr = 0;
  bool fixed = static_lease(nat, mac, &addr);
  NatLease *lease = fixed ? NULL : lease_of_mac(nat, mac, &addr);

  switch (o.type) {
  case DISCOVER:
    if (!fixed && !lease) {
      /* The address the client asks for, if it is free; else any. */
      NatLease *want = o.requested ? lease_at(nat, o.requested) : NULL;
      if (want && !lease_live(nat, want)) {
        lease = want;
        addr = o.requested;
      } else {
        lease = lease_allocate(nat, &addr);
      }
      if (!lease) {
        NAT_COUNT(nat, drop_table_full);
        return;
      }
    }
    if (lease) {
      if (lease->state != LEASE_BOUND) {
        memcpy(lease->mac, mac, 6);
        lease->state = LEASE_OFFERED;
        lease->expires = nat->now + OFFER_HOLD_US;
      }
    }
    dhcp_reply(nat, data, OFFER, addr, true);
    return;

  case REQUEST: {
    if (o.has_server && o.server != c->gateway) {
      /* The client took another server's offer. */
      if (lease && lease->state == LEASE_OFFERED)
        lease->state = LEASE_FREE;
      return;
    }
    uint32_t want = o.requested ? o.requested : ciaddr;
    if (!fixed && !lease) {
      /* A client rebooting with an address we no longer remember (our
       * process restarted): grant it if it is free. */
      NatLease *l = lease_at(nat, want);
      if (l && !lease_live(nat, l)) {
        lease = l;
        addr = want;
        memcpy(lease->mac, mac, 6);
      }
    }
    if ((!fixed && !lease) || want != addr) {
      dhcp_reply(nat, data, NAK, 0, false);
      return;
    }
    if (lease) {
      lease->state = LEASE_BOUND;
      lease->expires = nat->now + (int64_t)c->lease_time * G_USEC_PER_SEC;
    }
    nat->guest_addr = addr;
    memcpy(nat->guest_mac, src_mac, 6);
    nat->guest_mac_known = true;
    dhcp_reply(nat, data, ACK, addr, true);
    return;
  }
  case RELEASE:
    if (lease && ciaddr == addr)
      lease->state = LEASE_FREE;
    return;
  case DECLINE: {
    /* Someone else on the link uses it: keep it out of the pool a while. */
    NatLease *l = lease_at(nat, o.requested);
    if (l && (l == lease || !lease_live(nat, l))) {
      memset(l->mac, 0, 6);
      l->state = LEASE_BOUND;
      l->expires = nat->now + DECLINE_HOLD_US;
    }
    return;
  }
  case INFORM:
    if (ciaddr && nat_is_guest_addr(nat, ciaddr))
      dhcp_reply(nat, data, ACK, 0, false);
    return;
  default:
    NAT_COUNT(nat, drop_dhcp);
    return;
  }
}
