/* Internals shared by the files of the NAT engine. Everything here runs on
 * the engine's context thread. */
#pragma once

#include "net/nat.h"
#include "net/packet.h"

#include <sys/epoll.h>

/* Room for the largest IPv4 packet plus its Ethernet header, and some slack
 * for TCP options. */
#define NAT_TX_SIZE (NB_ETH_HLEN + 65535 + 64)
#define NAT_L4_OFF (NB_ETH_HLEN + NB_IP_HLEN)
/* Every frame buffer has this much room before it: an IPv6 packet's L4 part
 * is built at the same NAT_L4_OFF as IPv4's, and its longer header goes
 * into the room in front instead of moving the payload. */
#define NAT_TX_HEADROOM (NB_IP6_HLEN - NB_IP_HLEN)
/* The most extension headers an IPv6 packet from the guest may carry. */
#define NAT_IP6_MAX_EXT 8

/* An address of either family: IPv4 ones are IPv4-mapped (::ffff:a.b.c.d),
 * so flow tables and host sockets deal with one type. */
typedef struct {
  uint8_t b[16];
} NatAddr;

static inline NatAddr
nat_addr4(uint32_t a)
{
  NatAddr r = { { 0 } };
  r.b[10] = r.b[11] = 0xff;
  nb_wr32(r.b + 12, a);
  return r;
}

static inline bool
nat_addr_is4(const NatAddr *a)
{
  static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
  return memcmp(a->b, mapped, 12) == 0;
}

static inline uint32_t
nat_addr_get4(const NatAddr *a)
{
  return nb_rd32(a->b + 12);
}

static inline bool
nat_addr_eq(const NatAddr *a, const NatAddr *b)
{
  return memcmp(a->b, b->b, 16) == 0;
}

/* FNV-1a, for the flow tables' keys. */
static inline guint
nat_hash_bytes(const void *p, size_t len)
{
  const uint8_t *b = p;
  guint h = 2166136261u;
  for (size_t i = 0; i < len; i++)
    h = (h ^ b[i]) * 16777619u;
  return h;
}

/* A host socket address of either family. */
typedef union {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
} NatSockaddr;

typedef struct NbNat NbNat;

/* An fd registered on the engine's epoll set. */
typedef void (*NatWatchFunc)(NbNat *nat, void *obj, uint32_t events);
typedef struct {
  NatWatchFunc func;
  void *obj;
  int fd;
  uint32_t events;
} NatWatch;

/* A parsed IPv4 or IPv6 packet from the guest. */
typedef struct {
  const uint8_t *l4;
  size_t l4_len;
  uint32_t src, dst;   /* IPv4 (host order); 0 for IPv6 */
  NatAddr saddr, daddr;/* either family */
  bool v6;
  uint8_t proto;
  uint8_t ttl;
  const uint8_t *ip;   /* the IP header, for ICMP errors back to the guest */
  size_t ip_hlen;      /* IPv6: with the extension headers */
  bool csum_partial;   /* the guest left the L4 checksum to us: nothing to verify */
} NatPacket;

typedef struct NatDhcp NatDhcp;
typedef struct NatTcp NatTcp;
typedef struct NatUdp NatUdp;
typedef struct NatIcmp NatIcmp;
typedef struct NatFrag NatFrag;
typedef struct NatDns NatDns;

typedef struct {
  NbNatHostFwd fwd;
  uint16_t bound_port;
  int fd;
  NatWatch watch;
} NatFwd;

struct NbNat {
  NbNetBackend backend; /* first: the backend pointer is the engine pointer */
  NbNatConfig *cfg;
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  GSource *epoll_source;
  GSource *tick_source;
  GSource *fast_tick;   /* only while a TCP timer runs */
  int epfd;
  int64_t now;          /* monotonic microseconds, updated on each wake-up */

  uint8_t gw_mac[6];
  uint8_t guest_mac[6];
  bool guest_mac_known;
  uint32_t guest_addr;  /* last address the guest used or was given */
  /* IPv6: fe80::2 (the router), PREFIX::2 (the host) and PREFIX::3 (DNS). */
  NatAddr ll6, gw6, dns6;
  int64_t ra_next;      /* when the next unsolicited router advertisement goes */
  int64_t ra_last;      /* when the last one went, solicited or not */

  NbNatStats stats;

  GPtrArray *dead;      /* objects to free after the current dispatch */
  GPtrArray *fwds;      /* NatFwd */

  NatDhcp *dhcp;
  NatTcp *tcp;
  NatUdp *udp;
  NatIcmp *icmp;
  NatFrag *frag;
  NatDns *dns;

  uint16_t ip_id;
  uint8_t *tx;          /* the frame being built for the guest: usually tx_main */
  uint8_t *tx_main;     /* NAT_TX_SIZE bytes, after NAT_TX_HEADROOM */
};

static inline NbNat *
nat_from_backend(NbNetBackend *backend)
{
  return (NbNat *)backend;
}

#define NAT_COUNT(nat, field) ((nat)->stats.field++)

/* nat.c */
gboolean nat_watch_add(NbNat *nat, NatWatch *w, int fd, uint32_t events, NatWatchFunc func,
                       void *obj);
void nat_watch_modify(NbNat *nat, NatWatch *w, uint32_t events);
void nat_watch_remove(NbNat *nat, NatWatch *w);
/* A TCP timer was started: makes sure the fine tick runs. */
void nat_timer_wanted(NbNat *nat);
/* Frees obj with free_func after the current batch of events. */
void nat_defer_free(NbNat *nat, void *obj, GDestroyNotify free_func);
/* The engine's view of the host: the gateway address maps to 127.0.0.1 when
 * host loopback is on. Returns false if the guest may not reach dst. */
bool nat_translate_out(NbNat *nat, uint32_t dst, uint32_t *host_dst);
/* A source address seen on a host socket, as the guest should see it. */
uint32_t nat_translate_in(NbNat *nat, uint32_t host_src);
bool nat_is_guest_addr(NbNat *nat, uint32_t addr);
/* Sends the IPv4 packet whose L4 part (l4_len bytes) is already in
 * nat->tx + NAT_L4_OFF; fragments it to the MTU if needed (never a GSO
 * frame, nor one with a partial checksum: callers complete those that do
 * not fit). */
void nat_ip_send(NbNat *nat, uint8_t proto, uint32_t src, uint32_t dst, size_t l4_len,
                 const NbNetFrameMeta *meta);
/* Fills the L4 checksum field at l4 + csum_at for a packet to the guest: the
 * full sum, or only the pseudo-header's when the peer takes partial sums
 * (then returns true and the frame goes with NB_NET_FRAME_CSUM_PARTIAL). */
bool nat_l4_csum(NbNat *nat, uint8_t *l4, size_t len, size_t csum_at, uint8_t proto,
                 uint32_t src, uint32_t dst, bool may_offload);
/* Sends an ICMP error about the guest's packet pkt. */
void nat_icmp_error(NbNat *nat, const NatPacket *pkt, uint8_t type, uint8_t code);
/* The same for either family: src and dst are both IPv4 or both IPv6. */
void nat_l4_send(NbNat *nat, uint8_t proto, const NatAddr *src, const NatAddr *dst, size_t l4_len,
                 const NbNetFrameMeta *meta);
bool nat_l4_csum_addr(NbNat *nat, uint8_t *l4, size_t len, size_t csum_at, uint8_t proto,
                      const NatAddr *src, const NatAddr *dst, bool may_offload);
/* The pseudo-header sum for checking a guest packet's L4 checksum. */
uint32_t nat_pkt_pseudo(const NatPacket *pkt, uint8_t proto, size_t len);
/* Family-neutral nat_translate_out/in; IPv6: the gateway maps to ::1. */
bool nat_translate_out_addr(NbNat *nat, const NatAddr *dst, NatAddr *host_dst);
NatAddr nat_translate_in_addr(NbNat *nat, const NatAddr *host_src);
/* The engine's DNS address in the packet's family. */
const NatAddr *nat_dns_addr(NbNat *nat, bool v6, NatAddr *buf);
/* Fills sa for a socket of family (an IPv4 address on an AF_INET6 socket
 * goes IPv4-mapped); returns its length. */
socklen_t nat_sockaddr_set(NatSockaddr *sa, int family, const NatAddr *a, uint16_t port);
/* Reads an address a host socket gave; false if it is of no known family. */
bool nat_sockaddr_get(const NatSockaddr *sa, socklen_t len, NatAddr *a, uint16_t *port);
void nat_deliver(NbNat *nat, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta);
uint32_t nat_fwd_guest_addr(NbNat *nat, const NbNatHostFwd *fwd);
/* The guest end of a forward, in the family it reaches the guest by. */
NatAddr nat_fwd_guest(NbNat *nat, const NbNatHostFwd *fwd);
/* Where a forward's host-side peer appears to come from, in the guest
 * address's family: loopback (and, to an IPv4 guest, any IPv6 peer) is
 * the gateway. */
NatAddr nat_fwd_peer(NbNat *nat, const NatAddr *guest, const NatAddr *peer);

/* nat-ip6.c: IPv6 in and out, neighbor discovery, router advertisements */
void nat_ip6_input(NbNat *nat, const uint8_t *ip, size_t len, bool csum_partial);
/* Sends the IPv6 packet whose L4 part is in nat->tx + NAT_L4_OFF (its
 * header goes into the headroom); fragments what the MTU cannot take. */
void nat_ip6_send(NbNat *nat, uint8_t proto, const uint8_t *src, const uint8_t *dst,
                  size_t l4_len);
/* Sends an ICMPv6 error (RFC 4443) about the guest's packet pkt; param is
 * the MTU of "packet too big" or the pointer of "parameter problem". */
void nat_icmp6_error(NbNat *nat, const NatPacket *pkt, uint8_t type, uint8_t code,
                     uint32_t param);
bool nat_is_guest_addr6(NbNat *nat, const uint8_t *a);
void nat_ip6_tick(NbNat *nat);

/* nat-arp.c */
void nat_arp_input(NbNat *nat, const uint8_t *frame, size_t len);

/* nat-ip.c: fragment reassembly */
NatFrag *nat_frag_new(void);
void nat_frag_free(NatFrag *frag);
/* Takes a fragment; returns a whole datagram (IP header + payload, to be
 * g_free()d) once all pieces are in, else NULL. */
uint8_t *nat_frag_input(NbNat *nat, const uint8_t *ip, size_t hlen, size_t total, size_t *out_len);
void nat_frag_tick(NbNat *nat);

/* nat-dhcp.c */
NatDhcp *nat_dhcp_new(NbNat *nat);
void nat_dhcp_free(NatDhcp *dhcp);
void nat_dhcp_input(NbNat *nat, const uint8_t *frame_src_mac, const uint8_t *data, size_t len);
unsigned nat_dhcp_lease_count(NbNat *nat);

/* nat-icmp.c */
NatIcmp *nat_icmp_new(NbNat *nat);
void nat_icmp_free(NbNat *nat, NatIcmp *icmp);
void nat_icmp_input(NbNat *nat, const NatPacket *pkt);
/* An ICMPv6 echo request to an address outside (through a ping socket). */
void nat_icmp6_echo_out(NbNat *nat, const NatPacket *pkt);
void nat_icmp_tick(NbNat *nat);

/* nat-udp.c */
NatUdp *nat_udp_new(NbNat *nat);
void nat_udp_free(NbNat *nat, NatUdp *udp);
void nat_udp_input(NbNat *nat, const NatPacket *pkt);
void nat_udp_tick(NbNat *nat);
void nat_udp_fwd_readable(NbNat *nat, NatFwd *fwd);
void nat_udp_fwd_removed(NbNat *nat, NatFwd *fwd);
/* Builds a UDP datagram to the guest from data already at
 * nat->tx + NAT_L4_OFF + NB_UDP_HLEN. */
void nat_udp_send(NbNat *nat, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                  size_t len);
void nat_udp_send_addr(NbNat *nat, const NatAddr *src, uint16_t sport, const NatAddr *dst,
                       uint16_t dport, size_t len);

/* nat-dns.c */
NatDns *nat_dns_new(NbNat *nat);
void nat_dns_free(NatDns *dns);
/* The resolver to send a guest's query to, for a host socket of family
 * (AF_INET: the IPv4 resolvers only; AF_INET6 sockets take both, IPv4 ones
 * mapped); returns the address length, 0 when there is none. */
socklen_t nat_dns_resolver(NbNat *nat, int family, NatSockaddr *out);
bool nat_dns_is_resolver(NbNat *nat, const NatSockaddr *addr, socklen_t len);

/* nat-tcp.c */
NatTcp *nat_tcp_new(NbNat *nat);
void nat_tcp_free(NbNat *nat, NatTcp *tcp);
void nat_tcp_input(NbNat *nat, const NatPacket *pkt);
/* Returns whether a TCP timer still runs (the fast tick is still needed). */
bool nat_tcp_tick(NbNat *nat);
void nat_tcp_flush(NbNat *nat);
void nat_tcp_fwd_accept(NbNat *nat, NatFwd *fwd);
unsigned nat_tcp_flow_count(NbNat *nat);
