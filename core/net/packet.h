/* Reading and writing protocol fields in frames. Frames come from the guest
 * at any alignment, so every field is read byte by byte, in network order. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NB_ETH_HLEN 14
#define NB_ETH_TYPE_IPV4 0x0800
#define NB_ETH_TYPE_ARP 0x0806
#define NB_ETH_TYPE_IPV6 0x86dd
#define NB_IP_HLEN 20
#define NB_IP_PROTO_ICMP 1
#define NB_IP_PROTO_TCP 6
#define NB_IP_PROTO_UDP 17
#define NB_IP_PROTO_ICMPV6 58
#define NB_IP6_HLEN 40
#define NB_TCP_HLEN 20
#define NB_UDP_HLEN 8

#define NB_TCP_FIN 0x01
#define NB_TCP_SYN 0x02
#define NB_TCP_RST 0x04
#define NB_TCP_PSH 0x08
#define NB_TCP_ACK 0x10
#define NB_TCP_URG 0x20

static inline uint16_t
nb_rd16(const uint8_t *p)
{
  return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t
nb_rd32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void
nb_wr16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static inline void
nb_wr32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* One's complement sum of data, folded to 32 bits, to be finished by
 * nb_csum_fold(). Odd lengths are padded with a zero byte, so only the last
 * piece of a checksummed area may have an odd length. */
uint32_t nb_csum_partial(const void *data, size_t len, uint32_t sum);
uint16_t nb_csum_fold(uint32_t sum);
/* The sum of the IPv4 pseudo-header for TCP and UDP (addresses in host order). */
uint32_t nb_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);
/* The sum of the IPv6 pseudo-header (RFC 8200 8.1): 16-byte addresses as
 * they are on the wire. */
uint32_t nb_csum_pseudo6(const uint8_t *src, const uint8_t *dst, uint8_t proto, uint32_t len);
/* Checksum of a whole area: 0 means a received area with its checksum is good. */
static inline uint16_t
nb_csum(const void *data, size_t len)
{
  return nb_csum_fold(nb_csum_partial(data, len, 0));
}
