/* The Internet checksum (RFC 1071). It is computed on every frame that goes to
 * the guest without checksum offload, so it sums eight bytes at a time. */
#include "net/packet.h"

uint32_t
nb_csum_partial(const void *data, size_t len, uint32_t sum)
{
  const uint8_t *p = data;
  uint64_t acc = 0;

  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    /* Adding 32-bit halves into 64 bits cannot overflow for any frame size. */
    acc += (v & 0xffffffffu) + (v >> 32);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t v;
    memcpy(&v, p, 4);
    acc += v;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t v;
    memcpy(&v, p, 2);
    acc += v;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t v = 0;
    memcpy(&v, p, 1);
    acc += v;
  }
  /* The sum above is in memory byte order; fold to 16 bits, then swap to
   * network order if memory is little endian (RFC 1071 byte order
   * independence). */
  while (acc >> 16)
    acc = (acc & 0xffff) + (acc >> 16);
  uint16_t s = (uint16_t)acc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  s = (uint16_t)(s << 8 | s >> 8);
#endif
  return (uint32_t)s + sum;
}

uint16_t
nb_csum_fold(uint32_t sum)
{
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

uint32_t
nb_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
  uint32_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
  return sum + proto + len;
}

uint32_t
nb_csum_pseudo6(const uint8_t *src, const uint8_t *dst, uint8_t proto, uint32_t len)
{
  uint32_t sum = 0;
  for (int i = 0; i < 16; i += 2)
    sum += nb_rd16(src + i) + nb_rd16(dst + i);
  return sum + (len >> 16) + (len & 0xffff) + proto;
}
