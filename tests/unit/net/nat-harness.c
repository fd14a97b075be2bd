#include "nat-harness.h"

#include <glib/gstdio.h>
#include <unistd.h>

const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t gw_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
const uint8_t guest_ip6[16] = { 0xfd, 0, 0, 0x10, 0, 0, 0, 2, [15] = 0x15 };
const uint8_t guest_ll6[16] = { 0xfe, 0x80, [8] = 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56 };
const uint8_t gw_ip6[16] = { 0xfd, 0, 0, 0x10, 0, 0, 0, 2, [15] = 2 };
const uint8_t dns_ip6[16] = { 0xfd, 0, 0, 0x10, 0, 0, 0, 2, [15] = 3 };
const uint8_t router_ll6[16] = { 0xfe, 0x80, [15] = 2 };

static bool
capture(void *opaque, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  Harness *h = opaque;
  GByteArray *copy = g_byte_array_sized_new((guint)len);
  g_byte_array_append(copy, frame, (guint)len);
  g_ptr_array_add(h->frames, copy);
  NbNetFrameMeta m = meta ? *meta : (NbNetFrameMeta){ 0 };
  g_array_append_val(h->metas, m);
  return true;
}

bool rx_ip_skip_l4_csum;

Harness *
harness_new(const char *options)
{
  return harness_new_full(options, 0);
}

Harness *
harness_new_full(const char *options, unsigned features)
{
  Harness *h = g_new0(Harness, 1);
  int fd = g_file_open_tmp("nb-nat-resolv-XXXXXX", &h->resolv, NULL);
  g_assert_cmpint(fd, >=, 0);
  close(fd);
  g_file_set_contents(h->resolv, "nameserver 127.0.0.1\n", -1, NULL);
  g_autofree char *text = g_strdup_printf("nat,resolv-conf=%s%s%s", h->resolv,
                                          options && *options ? "," : "", options ? options : "");
  g_autoptr(GError) error = NULL;
  g_autoptr(NbNatConfig) config = nb_nat_config_parse(text, &error);
  g_assert_no_error(error);
  h->nat = nb_nat_new(config, &error);
  g_assert_no_error(error);
  h->be = nb_nat_get_backend(h->nat);
  h->frames = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
  h->keep = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
  NbNetPeerOps ops = { .deliver = capture };
  h->metas = g_array_new(FALSE, TRUE, sizeof(NbNetFrameMeta));
  nb_net_backend_attach(h->be, &ops, h, features);
  return h;
}

void
harness_free(Harness *h)
{
  nb_nat_free(h->nat);
  g_ptr_array_unref(h->frames);
  g_ptr_array_unref(h->keep);
  g_array_unref(h->metas);
  g_unlink(h->resolv);
  g_free(h->resolv);
  g_free(h);
}

void
harness_send(Harness *h, const uint8_t *frame, size_t len)
{
  nb_net_backend_send(h->be, frame, len, NULL);
  nb_net_backend_flush(h->be);
}

void
harness_send_meta(Harness *h, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  nb_net_backend_send(h->be, frame, len, meta);
  nb_net_backend_flush(h->be);
}

void
harness_clear(Harness *h)
{
  g_ptr_array_set_size(h->frames, 0);
  g_array_set_size(h->metas, 0);
}

GByteArray *
harness_wait(Harness *h, int timeout_ms)
{
  GMainContext *ctx = nb_net_backend_get_context(h->be);
  int64_t end = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
  while (h->frames->len == 0 && g_get_monotonic_time() < end) {
    if (!g_main_context_iteration(ctx, FALSE))
      g_usleep(1000);
  }
  if (h->frames->len == 0)
    return NULL;
  /* Hand out the oldest; keep it alive until the next clear. */
  GByteArray *f = g_byte_array_ref(h->frames->pdata[0]);
  g_ptr_array_remove_index(h->frames, 0);
  h->meta = g_array_index(h->metas, NbNetFrameMeta, 0);
  g_array_remove_index(h->metas, 0);
  g_ptr_array_add(h->keep, f);
  return f;
}

void
harness_run(Harness *h, int ms)
{
  GMainContext *ctx = nb_net_backend_get_context(h->be);
  int64_t end = g_get_monotonic_time() + (int64_t)ms * 1000;
  while (g_get_monotonic_time() < end) {
    if (!g_main_context_iteration(ctx, FALSE))
      g_usleep(1000);
  }
}

NbNatStats
harness_stats(Harness *h)
{
  NbNatStats s;
  nb_nat_get_stats(h->nat, &s);
  return s;
}

size_t
build_eth(uint8_t *buf, const uint8_t *dst, uint16_t type)
{
  memcpy(buf, dst ? dst : gw_mac, 6);
  memcpy(buf + 6, guest_mac, 6);
  nb_wr16(buf + 12, type);
  return NB_ETH_HLEN;
}

size_t
build_ip(uint8_t *buf, uint8_t proto, uint32_t src, uint32_t dst, const uint8_t *l4,
         size_t l4_len, uint16_t id, uint16_t frag)
{
  size_t n = build_eth(buf, NULL, NB_ETH_TYPE_IPV4);
  uint8_t *ip = buf + n;
  ip[0] = 0x45;
  ip[1] = 0;
  nb_wr16(ip + 2, (uint16_t)(NB_IP_HLEN + l4_len));
  nb_wr16(ip + 4, id);
  nb_wr16(ip + 6, frag);
  ip[8] = 64;
  ip[9] = proto;
  nb_wr16(ip + 10, 0);
  nb_wr32(ip + 12, src);
  nb_wr32(ip + 16, dst);
  nb_wr16(ip + 10, nb_csum(ip, NB_IP_HLEN));
  memmove(ip + NB_IP_HLEN, l4, l4_len);
  return n + NB_IP_HLEN + l4_len;
}

size_t
build_udp(uint8_t *buf, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
          const void *data, size_t len)
{
  g_autofree uint8_t *u = g_malloc(NB_UDP_HLEN + len);
  nb_wr16(u, sport);
  nb_wr16(u + 2, dport);
  nb_wr16(u + 4, (uint16_t)(NB_UDP_HLEN + len));
  nb_wr16(u + 6, 0);
  memcpy(u + NB_UDP_HLEN, data, len);
  uint16_t sum = nb_csum_fold(nb_csum_partial(u, NB_UDP_HLEN + len,
                                              nb_csum_pseudo(src, dst, NB_IP_PROTO_UDP,
                                                             (uint16_t)(NB_UDP_HLEN + len))));
  nb_wr16(u + 6, sum ? sum : 0xffff);
  return build_ip(buf, NB_IP_PROTO_UDP, src, dst, u, NB_UDP_HLEN + len, 1, 0);
}

size_t
build_tcp(uint8_t *buf, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
          uint8_t flags, uint16_t win, const uint8_t *opts, size_t optlen, const void *data,
          size_t len)
{
  size_t hlen = NB_TCP_HLEN + optlen;
  g_autofree uint8_t *t = g_malloc0(hlen + len + 1);
  nb_wr16(t, sport);
  nb_wr16(t + 2, dport);
  nb_wr32(t + 4, seq);
  nb_wr32(t + 8, ack);
  t[12] = (uint8_t)((hlen / 4) << 4);
  t[13] = flags;
  nb_wr16(t + 14, win);
  if (optlen)
    memcpy(t + NB_TCP_HLEN, opts, optlen);
  if (len)
    memcpy(t + hlen, data, len);
  uint16_t sum = nb_csum_fold(nb_csum_partial(t, hlen + len,
                                              nb_csum_pseudo(GUEST_IP, dst, NB_IP_PROTO_TCP,
                                                             (uint16_t)(hlen + len))));
  nb_wr16(t + 16, sum);
  return build_ip(buf, NB_IP_PROTO_TCP, GUEST_IP, dst, t, hlen + len, 2, 0x4000);
}

RxIp
rx_ip(const GByteArray *frame)
{
  g_assert_cmpuint(frame->len, >=, NB_ETH_HLEN + NB_IP_HLEN);
  const uint8_t *f = frame->data;
  g_assert_cmpuint(nb_rd16(f + 12), ==, NB_ETH_TYPE_IPV4);
  const uint8_t *ip = f + NB_ETH_HLEN;
  g_assert_cmpuint(ip[0], ==, 0x45);
  g_assert_cmpuint(nb_csum(ip, NB_IP_HLEN), ==, 0);
  size_t total = nb_rd16(ip + 2);
  g_assert_cmpuint(total, ==, frame->len - NB_ETH_HLEN);
  RxIp r = { .src = nb_rd32(ip + 12), .dst = nb_rd32(ip + 16), .proto = ip[9],
             .l4 = ip + NB_IP_HLEN, .l4_len = total - NB_IP_HLEN };
  /* Every L4 checksum the engine sends must verify. */
  if ((r.proto == NB_IP_PROTO_TCP || r.proto == NB_IP_PROTO_UDP) && !rx_ip_skip_l4_csum) {
    uint32_t sum = nb_csum_pseudo(r.src, r.dst, r.proto, (uint16_t)r.l4_len);
    g_assert_cmpuint(nb_csum_fold(nb_csum_partial(r.l4, r.l4_len, sum)), ==, 0);
  } else if (r.proto == NB_IP_PROTO_ICMP) {
    g_assert_cmpuint(nb_csum(r.l4, r.l4_len), ==, 0);
  }
  return r;
}

size_t
build_ip6(uint8_t *buf, const uint8_t *eth_dst, uint8_t next, const uint8_t *src,
          const uint8_t *dst, uint8_t hops, const uint8_t *l4, size_t l4_len)
{
  size_t n = build_eth(buf, eth_dst, NB_ETH_TYPE_IPV6);
  uint8_t *ip = buf + n;
  memmove(ip + NB_IP6_HLEN, l4, l4_len);
  ip[0] = 0x60;
  ip[1] = ip[2] = ip[3] = 0;
  nb_wr16(ip + 4, (uint16_t)l4_len);
  ip[6] = next;
  ip[7] = hops ? hops : 64;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  return n + NB_IP6_HLEN + l4_len;
}

size_t
build_icmp6(uint8_t *buf, const uint8_t *eth_dst, const uint8_t *src, const uint8_t *dst,
            uint8_t hops, const uint8_t *msg, size_t len)
{
  g_autofree uint8_t *m = g_memdup2(msg, len);
  nb_wr16(m + 2, 0);
  nb_wr16(m + 2, nb_csum_fold(nb_csum_partial(m, len, nb_csum_pseudo6(src, dst, NB_IP_PROTO_ICMPV6,
                                                                      (uint32_t)len))));
  return build_ip6(buf, eth_dst, NB_IP_PROTO_ICMPV6, src, dst, hops, m, len);
}

size_t
build_udp6(uint8_t *buf, const uint8_t *src, uint16_t sport, const uint8_t *dst, uint16_t dport,
           const void *data, size_t len)
{
  g_autofree uint8_t *u = g_malloc(NB_UDP_HLEN + len);
  nb_wr16(u, sport);
  nb_wr16(u + 2, dport);
  nb_wr16(u + 4, (uint16_t)(NB_UDP_HLEN + len));
  nb_wr16(u + 6, 0);
  memcpy(u + NB_UDP_HLEN, data, len);
  uint16_t sum = nb_csum_fold(nb_csum_partial(u, NB_UDP_HLEN + len,
                                              nb_csum_pseudo6(src, dst, NB_IP_PROTO_UDP,
                                                              (uint32_t)(NB_UDP_HLEN + len))));
  nb_wr16(u + 6, sum ? sum : 0xffff);
  return build_ip6(buf, NULL, NB_IP_PROTO_UDP, src, dst, 0, u, NB_UDP_HLEN + len);
}

size_t
build_tcp6(uint8_t *buf, const uint8_t *dst, uint16_t sport, uint16_t dport, uint32_t seq,
           uint32_t ack, uint8_t flags, uint16_t win, const uint8_t *opts, size_t optlen,
           const void *data, size_t len)
{
  size_t hlen = NB_TCP_HLEN + optlen;
  g_autofree uint8_t *t = g_malloc0(hlen + len + 1);
  nb_wr16(t, sport);
  nb_wr16(t + 2, dport);
  nb_wr32(t + 4, seq);
  nb_wr32(t + 8, ack);
  t[12] = (uint8_t)((hlen / 4) << 4);
  t[13] = flags;
  nb_wr16(t + 14, win);
  if (optlen)
    memcpy(t + NB_TCP_HLEN, opts, optlen);
  if (len)
    memcpy(t + hlen, data, len);
  uint16_t sum = nb_csum_fold(nb_csum_partial(t, hlen + len,
                                              nb_csum_pseudo6(guest_ip6, dst, NB_IP_PROTO_TCP,
                                                              (uint32_t)(hlen + len))));
  nb_wr16(t + 16, sum);
  return build_ip6(buf, NULL, NB_IP_PROTO_TCP, guest_ip6, dst, 0, t, hlen + len);
}

RxIp6
rx_ip6(const GByteArray *frame)
{
  g_assert_cmpuint(frame->len, >=, NB_ETH_HLEN + NB_IP6_HLEN);
  const uint8_t *f = frame->data;
  g_assert_cmpuint(nb_rd16(f + 12), ==, NB_ETH_TYPE_IPV6);
  g_assert_cmpmem(f + 6, 6, gw_mac, 6);
  const uint8_t *ip = f + NB_ETH_HLEN;
  g_assert_cmpuint(ip[0] >> 4, ==, 6);
  size_t plen = nb_rd16(ip + 4);
  g_assert_cmpuint(plen, ==, frame->len - NB_ETH_HLEN - NB_IP6_HLEN);
  RxIp6 r = { .next = ip[6], .hops = ip[7], .l4 = ip + NB_IP6_HLEN, .l4_len = plen };
  memcpy(r.src, ip + 8, 16);
  memcpy(r.dst, ip + 24, 16);
  memcpy(r.eth_dst, f, 6);
  /* The Ethernet destination: the guest's, or the group's for multicast. */
  if (r.dst[0] == 0xff) {
    g_assert_cmpuint(f[0], ==, 0x33);
    g_assert_cmpuint(f[1], ==, 0x33);
    g_assert_cmpmem(f + 2, 4, r.dst + 12, 4);
  } else {
    g_assert_cmpmem(f, 6, guest_mac, 6);
  }
  if (r.next == NB_IP_PROTO_TCP || r.next == NB_IP_PROTO_UDP || r.next == NB_IP_PROTO_ICMPV6) {
    uint32_t sum = nb_csum_pseudo6(r.src, r.dst, r.next, (uint32_t)r.l4_len);
    g_assert_cmpuint(nb_csum_fold(nb_csum_partial(r.l4, r.l4_len, sum)), ==, 0);
  }
  return r;
}
