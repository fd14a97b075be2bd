/* Helpers for the NAT unit tests: an engine whose frames for the guest are
 * captured in memory, and builders of frames from the guest. */
#pragma once

#include "net/nat.h"
#include "net/packet.h"

#include <arpa/inet.h>

#define GUEST_IP 0x0a00020fu /* 10.0.2.15 */
#define GW_IP 0x0a000202u
#define DNS_IP 0x0a000203u

extern const uint8_t guest_mac[6];

/* IPv6 addresses of the default net6 (fd00:10:0:2::/64). */
extern const uint8_t guest_ip6[16]; /* fd00:10:0:2::15 */
extern const uint8_t guest_ll6[16]; /* fe80::5054:ff:fe12:3456 */
extern const uint8_t gw_ip6[16];    /* fd00:10:0:2::2 */
extern const uint8_t dns_ip6[16];   /* fd00:10:0:2::3 */
extern const uint8_t router_ll6[16];/* fe80::2 */

typedef struct {
  NbNat *nat;
  NbNetBackend *be;
  GPtrArray *frames; /* GByteArray, in arrival order */
  GPtrArray *keep;   /* frames handed out by harness_wait() */
  GArray *metas;     /* NbNetFrameMeta of each frame in frames */
  NbNetFrameMeta meta; /* of the frame harness_wait() returned last */
  char *resolv;
} Harness;

Harness *harness_new(const char *options);
/* With a peer that announces features (NbNetPeerFeatures). */
Harness *harness_new_full(const char *options, unsigned features);
/* Sends a frame with offload metadata. */
void harness_send_meta(Harness *h, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta);
/* rx_ip() checks L4 checksums unless this is set (partial-checksum frames). */
extern bool rx_ip_skip_l4_csum;
void harness_free(Harness *h);
void harness_send(Harness *h, const uint8_t *frame, size_t len);
/* Runs the engine's context until a frame for the guest arrives, up to
 * timeout_ms; returns it (owned by the harness) or NULL. */
GByteArray *harness_wait(Harness *h, int timeout_ms);
/* Drops the frames received so far. */
void harness_clear(Harness *h);
void harness_run(Harness *h, int ms);
NbNatStats harness_stats(Harness *h);

/* Frame builders: write into buf, return the frame length. */
size_t build_eth(uint8_t *buf, const uint8_t *dst, uint16_t type);
size_t build_ip(uint8_t *buf, uint8_t proto, uint32_t src, uint32_t dst, const uint8_t *l4,
                size_t l4_len, uint16_t id, uint16_t frag);
size_t build_udp(uint8_t *buf, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                 const void *data, size_t len);
size_t build_tcp(uint8_t *buf, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
                 uint32_t ack, uint8_t flags, uint16_t win, const uint8_t *opts, size_t optlen,
                 const void *data, size_t len);

/* IPv6: the header (hop limit 64 unless hops), then l4 (or the extension
 * headers and l4 that the caller put there). */
size_t build_ip6(uint8_t *buf, const uint8_t *eth_dst, uint8_t next, const uint8_t *src,
                 const uint8_t *dst, uint8_t hops, const uint8_t *l4, size_t l4_len);
/* ICMPv6 with its checksum filled in. */
size_t build_icmp6(uint8_t *buf, const uint8_t *eth_dst, const uint8_t *src, const uint8_t *dst,
                   uint8_t hops, const uint8_t *msg, size_t len);
size_t build_udp6(uint8_t *buf, const uint8_t *src, uint16_t sport, const uint8_t *dst,
                  uint16_t dport, const void *data, size_t len);
size_t build_tcp6(uint8_t *buf, const uint8_t *dst, uint16_t sport, uint16_t dport, uint32_t seq,
                  uint32_t ack, uint8_t flags, uint16_t win, const uint8_t *opts, size_t optlen,
                  const void *data, size_t len);

typedef struct {
  uint8_t src[16], dst[16];
  uint8_t eth_dst[6];
  uint8_t next;
  uint8_t hops;
  const uint8_t *l4;
  size_t l4_len;
} RxIp6;
/* Asserts a well formed IPv6 frame (no extension headers) whose L4
 * checksum verifies. */
RxIp6 rx_ip6(const GByteArray *frame);

/* Parsed view of a frame for the guest; asserts it is well formed IPv4. */
typedef struct {
  uint32_t src, dst;
  uint8_t proto;
  const uint8_t *l4;
  size_t l4_len;
} RxIp;
RxIp rx_ip(const GByteArray *frame);
