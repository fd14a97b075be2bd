/* The built-in NAT engine: the guest's whole network, with no privileges.
 *
 * It answers ARP for the gateway and DNS addresses, serves DHCP, forwards DNS
 * to the host's resolvers, and carries the guest's TCP, UDP and ICMP echo over
 * ordinary host sockets. Over IPv6 it is the link's router: it answers
 * neighbor discovery, advertises a /64 for SLAAC with its DNS address, and
 * carries TCP, UDP and echo the same way. Port forwards map host ports to
 * guest ports and can be changed while the machine runs. Every table is
 * bounded, so a guest cannot make the engine grow without limit. */
#pragma once

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/net-backend.h"

#define NB_NAT_ERROR (nb_nat_error_quark())
GQuark nb_nat_error_quark(void);

typedef enum {
  NB_NAT_ERROR_CONFIG,    /* a bad --net option */
  NB_NAT_ERROR_SOCKET,    /* a host socket could not be set up */
  NB_NAT_ERROR_EXISTS,    /* a port forward is already there */
  NB_NAT_ERROR_NOT_FOUND, /* no such port forward */
} NbNatError;

typedef enum {
  NB_NAT_PROTO_TCP,
  NB_NAT_PROTO_UDP,
} NbNatProto;

/* A port forward. IPv4 addresses are in host byte order; guest_addr 0 means
 * the address the guest got from DHCP (or the first DHCP address). A forward
 * may listen on an IPv6 host address (host_v6: "[::1]:2222") and still reach
 * the guest over IPv4, which every guest has; or reach the guest at an IPv6
 * address inside net6 (guest_v6: "[fd00:10:0:2::15]:22"). */
typedef struct {
  NbNatProto proto;
  uint32_t host_addr;       /* when !host_v6 */
  uint16_t host_port;
  uint32_t guest_addr;      /* when !guest_v6 */
  uint16_t guest_port;
  bool host_v6;
  bool guest_v6;
  uint8_t host_addr6[16];   /* network byte order, when host_v6 */
  uint8_t guest_addr6[16];  /* when guest_v6 */
} NbNatHostFwd;

typedef struct {
  uint8_t mac[6];
  uint32_t addr;
} NbNatStaticLease;

/* Addresses are in host byte order. Create with nb_nat_config_new() (the
 * defaults) or nb_nat_config_parse(). */
typedef struct {
  bool has_mac;       /* mac= given: the guest device's address */
  uint8_t mac[6];
  uint32_t net;       /* 10.0.2.0 */
  uint32_t netmask;   /* 255.255.255.0 */
  uint32_t gateway;   /* .2: the virtual router, and the host's loopback */
  uint32_t dns;       /* .3: the DNS forwarder */
  uint32_t dhcp_start;/* .15 */
  unsigned dhcp_pool_size; /* addresses from dhcp_start; 0: to the end of the subnet */
  unsigned lease_time;     /* seconds */
  unsigned mtu;            /* the guest's MTU, sent in DHCP and used for MSS */
  char *domain;
  char **search;           /* NULL-terminated; may be NULL */
  char *hostname;
  GArray *static_leases;   /* NbNatStaticLease */
  GArray *hostfwds;        /* NbNatHostFwd */
  bool host_loopback;      /* the gateway address reaches the host's 127.0.0.1 */
  bool restrict_outbound;  /* guest may only use DHCP, DNS and port forwards */
  char *resolv_conf;       /* where the host's resolvers are listed */
  unsigned max_tcp_flows;
  unsigned max_udp_flows;
  unsigned max_icmp_flows;
  unsigned udp_timeout;    /* seconds of silence before a UDP flow goes */
  bool ipv6;               /* router advertisements, DNS and flows over IPv6 */
  uint8_t net6[16];        /* the guest's /64 (fd00:10:0:2::): ::2 gateway, ::3 DNS */
} NbNatConfig;

NbNatConfig *nb_nat_config_new(void);
NbNatConfig *nb_nat_config_copy(const NbNatConfig *config);
void nb_nat_config_free(NbNatConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NbNatConfig, nb_nat_config_free)

/* Parses the --net option: "nat[,mac=52:54:00:12:34:56][,net=10.0.2.0/24]
 * [,host=IP][,dns=IP][,dhcpstart=IP][,pool=N][,lease-time=SECONDS][,mtu=N]
 * [,domainname=NAME][,dnssearch=NAME]...[,hostname=NAME][,lease=MAC@IP]...
 * [,hostfwd=tcp:127.0.0.1:2222-:22]...[,loopback=on|off][,restrict=on|off]
 * [,resolv-conf=PATH][,max-flows=N][,net6=PREFIX/64][,ipv6=on|off]". */
NbNatConfig *nb_nat_config_parse(const char *text, GError **error);
/* "tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" (QEMU's hostfwd syntax);
 * an IPv6 address goes in brackets: "tcp:[::1]:2222-:22". */
gboolean nb_nat_hostfwd_parse(const char *text, NbNatHostFwd *out, GError **error);
/* The rule as nb_nat_hostfwd_parse() reads it back ("tcp:[::1]:2222-:22"). */
char *nb_nat_hostfwd_format(const NbNatHostFwd *fwd);
/* Whether a port forward may send to a: inside net6, not the engine's. */
bool nb_nat_config_guest_addr6_ok(const NbNatConfig *config, const uint8_t a[16]);
/* Checks that the addresses fit together (gateway inside the subnet, ...). */
gboolean nb_nat_config_check(const NbNatConfig *config, GError **error);

/* Frames dropped, by the reason. All are counters since the start. */
typedef struct {
  uint64_t rx_frames;       /* frames from the guest */
  uint64_t tx_frames;       /* frames to the guest */
  uint64_t tx_dropped;      /* frames the guest had no room for */
  uint64_t drop_eth;        /* runt, oversized or not for us */
  uint64_t drop_arp;
  uint64_t drop_ip;         /* bad IPv4 header, length or checksum */
  uint64_t drop_ip6;        /* bad IPv6 header, payload length or extension headers */
  uint64_t drop_ndp;        /* bad neighbor discovery message or option */
  uint64_t drop_frag;       /* fragments that overlap, run past 64 KiB, time out or overflow;
                             * IPv6 fragments (not reassembled) */
  uint64_t drop_tcp;
  uint64_t drop_udp;
  uint64_t drop_icmp;       /* ICMP and ICMPv6 (other than neighbor discovery) */
  uint64_t drop_dhcp;
  uint64_t drop_dns;
  uint64_t drop_policy;     /* well formed but not allowed (restrict, no route) */
  uint64_t drop_table_full; /* a bounded table refused a new entry */
  uint64_t tcp_flows;       /* open now */
  uint64_t udp_flows;
  uint64_t icmp_flows;
  uint64_t leases;
  uint64_t frag_bytes;
} NbNatStats;

typedef struct NbNat NbNat;

/* The engine, bound to a new GMainContext. Call nb_nat_start() to run it in a
 * thread of its own, or iterate its context yourself. */
NbNat *nb_nat_new(const NbNatConfig *config, GError **error);
/* The engine is an NbNetBackend: attach the guest device to it. */
NbNetBackend *nb_nat_get_backend(NbNat *nat);
gboolean nb_nat_start(NbNat *nat, GError **error);
/* Stops the thread (if any) and frees everything. */
void nb_nat_free(NbNat *nat);

/* Safe from any thread. */
gboolean nb_nat_add_hostfwd(NbNat *nat, const NbNatHostFwd *fwd, GError **error);
gboolean nb_nat_remove_hostfwd(NbNat *nat, NbNatProto proto, uint32_t host_addr,
                               uint16_t host_port, GError **error);
void nb_nat_get_stats(NbNat *nat, NbNatStats *out);
/* The port a forward is bound to: useful when it asked for port 0. Returns 0
 * if there is no such forward. */
uint16_t nb_nat_hostfwd_bound_port(NbNat *nat, NbNatProto proto, uint32_t host_addr,
                                   uint16_t host_port);
/* The same two for a forward of either family: key's proto, host address
 * (host_v6 and host_addr6, or host_addr) and host port say which; the guest
 * side of key is not looked at. */
gboolean nb_nat_remove_hostfwd_rule(NbNat *nat, const NbNatHostFwd *key, GError **error);
uint16_t nb_nat_hostfwd_rule_bound_port(NbNat *nat, const NbNatHostFwd *key);
