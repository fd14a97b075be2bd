/* virtio-net through the fake guest driver: frames both ways, mergeable
 * receive buffers, the checksum and TSO offloads and what the guest
 * negotiated of them, and every kind of bad input a guest can give. A fake
 * backend records what the device sends; one test puts the real NAT engine
 * behind the device. */
#include "virtio-test-driver.h"
#include "net/nat.h"
#include "net/packet.h"
#include "virtio/virtio-net.h"

#include <string.h>

#define F(bit) (UINT64_C(1) << (bit))
#define BASE_FEATURES (F(NB_VIRTIO_F_VERSION_1) | F(NB_VIRTIO_F_EVENT_IDX) | \
                       F(NB_VIRTIO_F_INDIRECT_DESC) | F(NB_VIRTIO_NET_F_MAC) | \
                       F(NB_VIRTIO_NET_F_STATUS))
#define OFFLOADS (F(NB_VIRTIO_NET_F_CSUM) | F(NB_VIRTIO_NET_F_GUEST_CSUM) | \
                  F(NB_VIRTIO_NET_F_HOST_TSO4) | F(NB_VIRTIO_NET_F_GUEST_TSO4))
#define RX NB_VIRTIO_NET_Q_RX
#define TX NB_VIRTIO_NET_Q_TX
#define HDR NB_VIRTIO_NET_HDR_SIZE
#define QSIZE 64

/* A backend that records what it is sent. */
typedef struct {
  NbNetBackend base;
  GPtrArray *frames;     /* GBytes */
  GArray *metas;         /* NbNetFrameMeta */
  unsigned flushes;
} FakeBackend;

static void
fake_send(NbNetBackend *b, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  FakeBackend *fb = (FakeBackend *)b;
  g_ptr_array_add(fb->frames, g_bytes_new(frame, len));
  NbNetFrameMeta m = meta ? *meta : (NbNetFrameMeta){ 0 };
  g_array_append_val(fb->metas, m);
}

static void
fake_flush(NbNetBackend *b)
{
  ((FakeBackend *)b)->flushes++;
}

static void
fake_destroy(NbNetBackend *b)
{
  FakeBackend *fb = (FakeBackend *)b;
  g_ptr_array_unref(fb->frames);
  g_array_unref(fb->metas);
  g_free(fb);
}

static const NbNetBackendClass fake_class = { "fake", fake_send, fake_flush, fake_destroy };

typedef struct {
  TestDriver td;
  GMainContext *ctx;
  FakeBackend *fb;
  NbNetBackend *backend;  /* fb's, or a NAT engine's */
  NbNat *nat;
  NbVirtioNet *net;
  uint64_t rx_gpa[QSIZE]; /* the buffer behind each receive head */
} Fixture;

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

static void
setup(Fixture *f, gconstpointer data)
{
  memset(f, 0, sizeof *f);
  td_init(&f->td);
  f->ctx = g_main_context_new();
  f->fb = g_new0(FakeBackend, 1);
  nb_net_backend_init(&f->fb->base, &fake_class, f->ctx);
  f->fb->frames = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
  f->fb->metas = g_array_new(FALSE, TRUE, sizeof(NbNetFrameMeta));
  f->backend = &f->fb->base;
  g_autoptr(GError) error = NULL;
  f->net = nb_virtio_net_new(f->td.mem, f->backend, guest_mac, &error);
  g_assert_no_error(error);
  td_add(&f->td, nb_virtio_net_pci_device(f->net));
}

static void
teardown(Fixture *f, gconstpointer data)
{
  nb_virtio_net_free(f->net);
  nb_net_backend_free(f->backend);
  g_main_context_unref(f->ctx);
  td_clear(&f->td);
}

/* Runs the backend's context (where transmit work goes) until cond. */
static bool
pump_until(Fixture *f, bool (*cond)(Fixture *f, const void *arg), const void *arg)
{
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  while (!cond(f, arg)) {
    if (g_get_monotonic_time() > deadline)
      return false;
    if (!g_main_context_iteration(f->ctx, FALSE))
      g_usleep(200);
  }
  return true;
}

static bool
have_used(Fixture *f, const void *arg)
{
  return td_used_idx(&f->td, TX) >= *(const uint16_t *)arg;
}

static void
pump_idle(Fixture *f)
{
  /* The worker hands notifications over asynchronously: give it a moment. */
  for (int i = 0; i < 20; i++) {
    while (g_main_context_iteration(f->ctx, FALSE))
      ;
    g_usleep(500);
  }
}

static void
start(Fixture *f, uint64_t features)
{
  g_assert_true(td_negotiate(&f->td, BASE_FEATURES | features));
  td_setup_queue(&f->td, RX, QSIZE);
  td_setup_queue(&f->td, TX, QSIZE);
  td_driver_ok(&f->td);
  pump_idle(f);   /* the backend hears the guest's features */
}

static NbVirtioNetStats
stats(Fixture *f)
{
  NbVirtioNetStats s;
  nb_virtio_net_get_stats(f->net, &s);
  return s;
}

/* Frames ---------------------------------------------------------------------- */

/* An Ethernet + IPv4 + TCP (or UDP) frame with payload_len bytes; its L4
 * checksum either complete or only the pseudo-header's (partial). */
static size_t
make_frame(uint8_t *buf, uint8_t proto, size_t payload_len, bool partial)
{
  static const uint8_t gw[6] = { 0x52, 0x55, 10, 0, 2, 2 };
  memcpy(buf, gw, 6);
  memcpy(buf + 6, guest_mac, 6);
  nb_wr16(buf + 12, NB_ETH_TYPE_IPV4);
  uint8_t *ip = buf + 14;
  size_t l4_hlen = proto == NB_IP_PROTO_TCP ? 20 : 8;
  size_t l4_len = l4_hlen + payload_len;
  memset(ip, 0, 20);
  ip[0] = 0x45;
  nb_wr16(ip + 2, (uint16_t)(20 + l4_len));
  ip[8] = 64;
  ip[9] = proto;
  uint32_t src = 0x0a00020f, dst = 0x0a000202;
  nb_wr32(ip + 12, src);
  nb_wr32(ip + 16, dst);
  nb_wr16(ip + 10, nb_csum(ip, 20));
  uint8_t *l4 = ip + 20;
  memset(l4, 0, l4_hlen);
  nb_wr16(l4, 40000);
  nb_wr16(l4 + 2, 80);
  size_t csum_at = proto == NB_IP_PROTO_TCP ? 16 : 6;
  if (proto == NB_IP_PROTO_TCP) {
    l4[12] = 5 << 4;
    l4[13] = NB_TCP_ACK;
  } else {
    nb_wr16(l4 + 4, (uint16_t)l4_len);
  }
  for (size_t i = 0; i < payload_len; i++)
    l4[l4_hlen + i] = (uint8_t)(i * 7 + 3);
  uint32_t pseudo = nb_csum_pseudo(src, dst, proto, (uint16_t)l4_len);
  if (partial)
    nb_wr16(l4 + csum_at, (uint16_t)~nb_csum_fold(pseudo));
  else
    nb_wr16(l4 + csum_at, nb_csum_fold(nb_csum_partial(l4, l4_len, pseudo)));
  return 14 + 20 + l4_len;
}

/* Whether the frame's TCP/UDP checksum is complete and right. */
static bool
l4_csum_ok(const uint8_t *frame, size_t len)
{
  const uint8_t *ip = frame + 14;
  size_t l4_len = nb_rd16(ip + 2) - 20;
  uint32_t pseudo = nb_csum_pseudo(nb_rd32(ip + 12), nb_rd32(ip + 16), ip[9], (uint16_t)l4_len);
  return nb_csum_fold(nb_csum_partial(ip + 20, l4_len, pseudo)) == 0;
}

static void
put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static uint16_t
get16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

static void
make_hdr(uint8_t *hdr, uint8_t flags, uint8_t gso_type, uint16_t hdr_len, uint16_t gso_size,
         uint16_t csum_start, uint16_t csum_offset)
{
  memset(hdr, 0, HDR);
  hdr[0] = flags;
  hdr[1] = gso_type;
  put16(hdr + 2, hdr_len);
  put16(hdr + 4, gso_size);
  put16(hdr + 6, csum_start);
  put16(hdr + 8, csum_offset);
}

/* Sends header and frame in two descriptors (as Linux does for a linear
 * skb with a separate header); waits until the device returns the chain. */
static void
send_frame(Fixture *f, const uint8_t *hdr, size_t hdr_len, const uint8_t *frame, size_t len)
{
  uint64_t h = td_alloc(&f->td, hdr_len ? hdr_len : 1);
  uint64_t d = td_alloc(&f->td, len ? len : 1);
  if (hdr_len)
    memcpy(td_ptr(&f->td, h, hdr_len), hdr, hdr_len);
  if (len)
    memcpy(td_ptr(&f->td, d, len), frame, len);
  TdBuf bufs[2] = { { h, (uint32_t)hdr_len, false }, { d, (uint32_t)len, false } };
  unsigned n = 0;
  TdBuf use[2];
  if (hdr_len)
    use[n++] = bufs[0];
  if (len)
    use[n++] = bufs[1];
  uint16_t want = (uint16_t)(td_used_idx(&f->td, TX) + 1);
  td_submit(&f->td, TX, use, n);
  td_kick(&f->td, TX);
  g_assert_true(pump_until(f, have_used, &want));
  uint32_t id, used;
  g_assert_true(td_poll_used(&f->td, TX, &id, &used));
  g_assert_cmpuint(used, ==, 0);
}

static unsigned
sent_count(Fixture *f)
{
  return f->fb->frames->len;
}

static const uint8_t *
sent_frame(Fixture *f, unsigned i, size_t *len)
{
  gsize l;
  const uint8_t *p = g_bytes_get_data(f->fb->frames->pdata[i], &l);
  *len = l;
  return p;
}

static NbNetFrameMeta
sent_meta(Fixture *f, unsigned i)
{
  return g_array_index(f->fb->metas, NbNetFrameMeta, i);
}

/* Posts n receive buffers of size bytes each. */
static void
post_rx(Fixture *f, unsigned n, uint32_t size)
{
  for (unsigned i = 0; i < n; i++) {
    uint64_t gpa = td_alloc(&f->td, size);
    memset(td_ptr(&f->td, gpa, size), 0xee, size);
    TdBuf b = { gpa, size, true };
    uint16_t head = td_submit(&f->td, RX, &b, 1);
    f->rx_gpa[head] = gpa;
  }
  td_kick(&f->td, RX);
}

static bool
deliver(Fixture *f, const uint8_t *frame, size_t len, unsigned flags, uint16_t gso_size)
{
  NbNetFrameMeta meta = { flags, gso_size };
  return nb_net_backend_deliver(f->backend, frame, len, &meta);
}

/* Tests ---------------------------------------------------------------------- */

static void
test_config(Fixture *f, gconstpointer data)
{
  g_assert_cmpuint(td_cfg_read(&f->td, NB_PCI_VENDOR_ID, 2), ==, 0x1af4);
  g_assert_cmpuint(td_cfg_read(&f->td, NB_PCI_DEVICE_ID, 2), ==, 0x1041);
  g_assert_cmpuint(td_cfg_read(&f->td, NB_PCI_REVISION, 4) >> 8, ==, 0x020000);
  uint64_t offered = td_device_features(&f->td);
  uint64_t want = BASE_FEATURES | OFFLOADS | F(NB_VIRTIO_NET_F_MRG_RXBUF);
  g_assert_cmphex(offered & want, ==, want);
  /* Not offered: ECN, UFO, TSO6, the control queue, multiqueue. */
  g_assert_cmphex(offered & (F(9) | F(10) | F(12) | F(13) | F(14) | F(17) | F(22)), ==, 0);
  start(f, 0);
  uint8_t mac[6];
  for (unsigned i = 0; i < 6; i++)
    mac[i] = (uint8_t)td_bar_read(&f->td, NB_VIRTIO_PCI_DEVICE_OFF + i, 1);
  g_assert_cmpmem(mac, 6, guest_mac, 6);
  g_assert_cmpuint(td_bar_read(&f->td, NB_VIRTIO_PCI_DEVICE_OFF + 6, 2), ==, NB_VIRTIO_NET_S_LINK_UP);
  g_assert_cmpuint(td_bar_read(&f->td, NB_VIRTIO_PCI_DEVICE_OFF + 8, 2), ==, 1);

  /* Cable pulled: status says so, the config generation moves, frames
   * for the guest are dropped. */
  uint8_t gen = (uint8_t)td_bar_read(&f->td, NB_VIRTIO_PCI_COMMON_OFF + 0x15, 1);
  nb_virtio_net_set_link(f->net, false);
  g_assert_cmpuint(td_bar_read(&f->td, NB_VIRTIO_PCI_DEVICE_OFF + 6, 2), ==, 0);
  g_assert_cmpuint(td_bar_read(&f->td, NB_VIRTIO_PCI_COMMON_OFF + 0x15, 1), !=, gen);
  post_rx(f, 1, 2048);
  uint8_t frame[128];
  size_t len = make_frame(frame, NB_IP_PROTO_UDP, 40, false);
  g_assert_false(deliver(f, frame, len, 0, 0));
  g_assert_cmpuint(stats(f).rx_down, ==, 1);
  nb_virtio_net_set_link(f->net, true);
  g_assert_true(deliver(f, frame, len, 0, 0));
}

static void
test_bad_mac(void)
{
  TestDriver td;
  td_init(&td);
  GMainContext *ctx = g_main_context_new();
  FakeBackend *fb = g_new0(FakeBackend, 1);
  nb_net_backend_init(&fb->base, &fake_class, ctx);
  fb->frames = g_ptr_array_new();
  fb->metas = g_array_new(FALSE, TRUE, sizeof(NbNetFrameMeta));
  const uint8_t multicast[6] = { 0x01, 0, 0x5e, 0, 0, 1 }, zero[6] = { 0 };
  g_autoptr(GError) error = NULL;
  g_assert_null(nb_virtio_net_new(td.mem, &fb->base, multicast, &error));
  g_assert_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED);
  g_assert_nonnull(strstr(error->message, "multicast"));
  g_clear_error(&error);
  g_assert_null(nb_virtio_net_new(td.mem, &fb->base, zero, &error));
  g_assert_nonnull(strstr(error->message, "zeroes"));
  nb_net_backend_free(&fb->base);
  g_main_context_unref(ctx);
  td_clear(&td);
}

static void
test_tx_plain(Fixture *f, gconstpointer data)
{
  start(f, 0);
  uint8_t hdr[HDR], frame[1600];
  make_hdr(hdr, 0, 0, 0, 0, 0, 0);
  size_t len = make_frame(frame, NB_IP_PROTO_TCP, 1460, false);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_count(f), ==, 1);
  size_t got_len;
  const uint8_t *got = sent_frame(f, 0, &got_len);
  g_assert_cmpmem(got, got_len, frame, len);
  g_assert_cmpuint(sent_meta(f, 0).flags, ==, 0);
  g_assert_cmpuint(f->fb->flushes, >=, 1);

  /* Header and frame in one buffer, through an indirect table of three. */
  uint64_t buf = td_alloc(&f->td, HDR + len);
  uint8_t *p = td_ptr(&f->td, buf, HDR + len);
  memcpy(p, hdr, HDR);
  memcpy(p + HDR, frame, len);
  TdBuf parts[3] = { { buf, 5, false }, { buf + 5, 100, false }, { buf + 105, (uint32_t)(HDR + len - 105), false } };
  uint16_t want = (uint16_t)(td_used_idx(&f->td, TX) + 1);
  td_submit_indirect(&f->td, TX, parts, 3);
  td_kick(&f->td, TX);
  g_assert_true(pump_until(f, have_used, &want));
  g_assert_cmpuint(sent_count(f), ==, 2);
  got = sent_frame(f, 1, &got_len);
  g_assert_cmpmem(got, got_len, frame, len);

  NbVirtioNetStats s = stats(f);
  g_assert_cmpuint(s.tx_frames, ==, 2);
  g_assert_cmpuint(s.tx_bytes, ==, 2 * len);
}

static void
test_tx_many(Fixture *f, gconstpointer data)
{
  /* More than one turn's budget queued at once: all go, in order. */
  start(f, 0);
  uint8_t hdr[HDR];
  make_hdr(hdr, 0, 0, 0, 0, 0, 0);
  for (unsigned i = 0; i < 3 * QSIZE; i++) {
    uint8_t frame[200];
    size_t len = make_frame(frame, NB_IP_PROTO_UDP, 100, false);
    frame[14 + 28] = (uint8_t)i;
    uint64_t gpa = td_alloc(&f->td, HDR + len);
    memcpy(td_ptr(&f->td, gpa, HDR), hdr, HDR);
    memcpy(td_ptr(&f->td, gpa + HDR, len), frame, len);
    TdBuf b = { gpa, (uint32_t)(HDR + len), false };
    td_submit(&f->td, TX, &b, 1);
    if (i % QSIZE == QSIZE - 1) {
      td_kick(&f->td, TX);
      uint16_t want = (uint16_t)(i + 1);
      g_assert_true(pump_until(f, have_used, &want));
      while (td_poll_used(&f->td, TX, NULL, NULL))
        ;
    }
  }
  g_assert_cmpuint(sent_count(f), ==, 3 * QSIZE);
  for (unsigned i = 0; i < 3 * QSIZE; i++) {
    size_t len;
    g_assert_cmpuint(sent_frame(f, i, &len)[14 + 28], ==, (uint8_t)i);
  }
}

static void
test_tx_offloads(Fixture *f, gconstpointer data)
{
  start(f, OFFLOADS);
  uint8_t hdr[HDR];
  g_autofree uint8_t *frame = g_malloc(65600);

  /* Checksum offload at the offsets of TCP over IPv4: passed on as is. */
  size_t len = make_frame(frame, NB_IP_PROTO_TCP, 1000, true);
  make_hdr(hdr, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_count(f), ==, 1);
  g_assert_cmpuint(sent_meta(f, 0).flags, ==, NB_NET_FRAME_CSUM_PARTIAL);

  /* UDP too. */
  len = make_frame(frame, NB_IP_PROTO_UDP, 500, true);
  make_hdr(hdr, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 6);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_meta(f, 1).flags, ==, NB_NET_FRAME_CSUM_PARTIAL);

  /* Offsets the backend's format does not describe (here the checksum of
   * a protocol it does not know, over the UDP payload): finished by the
   * device, the frame goes out complete. */
  len = make_frame(frame, NB_IP_PROTO_UDP, 64, false);
  nb_wr16(frame + 42 + 10, 0);
  make_hdr(hdr, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 42, 10);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_count(f), ==, 3);
  size_t got_len;
  const uint8_t *got = sent_frame(f, 2, &got_len);
  g_assert_cmpuint(sent_meta(f, 2).flags, ==, 0);
  g_assert_cmpuint(nb_csum_fold(nb_csum_partial(got + 42, got_len - 42, 0)), ==, 0);
  g_assert_cmpuint(stats(f).tx_sw_csum, ==, 1);

  /* TSO: a 60 000-byte segment with its MSS. */
  len = make_frame(frame, NB_IP_PROTO_TCP, 60000, true);
  make_hdr(hdr, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, NB_VIRTIO_NET_HDR_GSO_TCPV4, 54, 1448, 34, 16);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_count(f), ==, 4);
  NbNetFrameMeta m = sent_meta(f, 3);
  g_assert_cmpuint(m.flags, ==, NB_NET_FRAME_CSUM_PARTIAL | NB_NET_FRAME_GSO_TCPV4);
  g_assert_cmpuint(m.gso_size, ==, 1448);
  got = sent_frame(f, 3, &got_len);
  g_assert_cmpmem(got, got_len, frame, len);

  /* The largest frame there is still goes. */
  len = make_frame(frame, NB_IP_PROTO_TCP, 65535 - 40, true);
  g_assert_cmpuint(len, ==, NB_VIRTIO_NET_MAX_FRAME);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_count(f), ==, 5);
  g_assert_cmpuint(stats(f).tx_bad_header + stats(f).tx_bad_size, ==, 0);
}

/* Every malformed transmit request is dropped and counted, and the device
 * goes on with the next one. */
static void
test_tx_bad(Fixture *f, gconstpointer data)
{
  /* Checksum offload only: no TSO. */
  start(f, F(NB_VIRTIO_NET_F_CSUM));
  uint8_t hdr[HDR];
  g_autofree uint8_t *frame = g_malloc(65700);
  size_t len = make_frame(frame, NB_IP_PROTO_TCP, 2000, true);
  struct {
    const char *what;
    uint8_t flags, gso_type;
    uint16_t hdr_len, gso_size, start, offset;
  } cases[] = {
    { "DATA_VALID is the device's flag", NB_VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0, 0, 0 },
    { "unknown flag", 0x80, 0, 0, 0, 0, 0 },
    { "checksum field past the end", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, (uint16_t)(len - 34 - 1) },
    { "checksum start past the end", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 65535, 0 },
    { "TSO not negotiated", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, NB_VIRTIO_NET_HDR_GSO_TCPV4, 54, 1448, 34, 16 },
    { "UDP segmentation", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 3, 42, 1400, 34, 6 },
    { "TCPv6 segmentation", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 4, 54, 1400, 34, 16 },
    { "ECN", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, NB_VIRTIO_NET_HDR_GSO_TCPV4 | 0x80, 54, 1448, 34, 16 },
  };
  unsigned dropped = 0;
  for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_test_message("case: %s", cases[i].what);
    make_hdr(hdr, cases[i].flags, cases[i].gso_type, cases[i].hdr_len, cases[i].gso_size,
             cases[i].start, cases[i].offset);
    send_frame(f, hdr, HDR, frame, len);
    g_assert_cmpuint(sent_count(f), ==, 0);
    g_assert_cmpuint(stats(f).tx_bad_header, ==, ++dropped);
  }
  /* A short header, a runt, a frame over the limit, no frame at all. */
  make_hdr(hdr, 0, 0, 0, 0, 0, 0);
  send_frame(f, hdr, 8, NULL, 0);
  g_assert_cmpuint(stats(f).tx_bad_header, ==, ++dropped);
  send_frame(f, hdr, HDR, frame, 13);
  g_assert_cmpuint(stats(f).tx_bad_size, ==, 1);
  send_frame(f, hdr, HDR, frame, NB_VIRTIO_NET_MAX_FRAME + 1);
  g_assert_cmpuint(stats(f).tx_bad_size, ==, 2);
  send_frame(f, hdr, HDR, NULL, 0);
  g_assert_cmpuint(stats(f).tx_bad_size, ==, 3);
  g_assert_cmpuint(sent_count(f), ==, 0);

  /* A chain pointing outside guest RAM, and one pointing into the PCI
   * hole: that frame only. */
  uint64_t h = td_alloc(&f->td, HDR);
  memcpy(td_ptr(&f->td, h, HDR), hdr, HDR);
  uint64_t outside[] = { UINT64_C(1) << 40, UINT64_C(40) << 20 };
  for (unsigned i = 0; i < G_N_ELEMENTS(outside); i++) {
    TdBuf bufs[2] = { { h, HDR, false }, { outside[i], 1000, false } };
    uint16_t want = (uint16_t)(td_used_idx(&f->td, TX) + 1);
    td_submit(&f->td, TX, bufs, 2);
    td_kick(&f->td, TX);
    g_assert_true(pump_until(f, have_used, &want));
    uint32_t id, used;
    g_assert_true(td_poll_used(&f->td, TX, &id, &used));
    g_assert_cmpuint(used, ==, 0);
    g_assert_cmpuint(stats(f).tx_bad_buffer, ==, i + 1);
  }
  g_assert_cmpuint(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET, ==, 0);

  /* After all that, a good frame goes through. */
  make_hdr(hdr, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_count(f), ==, 1);
  g_assert_cmpuint(sent_meta(f, 0).flags, ==, NB_NET_FRAME_CSUM_PARTIAL);
}

static void
test_tx_bad_gso(Fixture *f, gconstpointer data)
{
  start(f, OFFLOADS);
  uint8_t hdr[HDR];
  g_autofree uint8_t *frame = g_malloc(65600);
  size_t len = make_frame(frame, NB_IP_PROTO_TCP, 30000, true);
  struct {
    const char *what;
    uint8_t flags;
    uint16_t hdr_len, gso_size, start, offset;
  } cases[] = {
    { "TSO without the checksum offload", 0, 54, 1448, 0, 0 },
    { "TSO with a segment size of 0", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 54, 0, 34, 16 },
    { "TSO with the UDP checksum offset", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 54, 1448, 34, 6 },
    { "TSO with a header longer than the frame", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 65535, 1448, 34, 16 },
    { "TSO with checksum offsets that are not the TCP header's", NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 54, 1448, 40, 16 },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_test_message("case: %s", cases[i].what);
    make_hdr(hdr, cases[i].flags, NB_VIRTIO_NET_HDR_GSO_TCPV4, cases[i].hdr_len,
             cases[i].gso_size, cases[i].start, cases[i].offset);
    send_frame(f, hdr, HDR, frame, len);
    g_assert_cmpuint(sent_count(f), ==, 0);
    g_assert_cmpuint(stats(f).tx_bad_header, ==, i + 1);
  }
  /* TSO of something that is not TCP over IPv4 (ARP) */
  uint8_t arp[60] = { 0 };
  memcpy(arp, frame, 12);
  nb_wr16(arp + 12, NB_ETH_TYPE_ARP);
  make_hdr(hdr, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, NB_VIRTIO_NET_HDR_GSO_TCPV4, 54, 1448, 34, 16);
  send_frame(f, hdr, HDR, arp, sizeof arp);
  g_assert_cmpuint(sent_count(f), ==, 0);
  g_assert_cmpuint(stats(f).tx_bad_header, ==, G_N_ELEMENTS(cases) + 1);
}

static void
test_tx_csum_not_negotiated(Fixture *f, gconstpointer data)
{
  start(f, 0);
  uint8_t hdr[HDR], frame[200];
  size_t len = make_frame(frame, NB_IP_PROTO_TCP, 100, true);
  make_hdr(hdr, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_count(f), ==, 0);
  g_assert_cmpuint(stats(f).tx_bad_header, ==, 1);
}

/* A corrupt ring (a chain that loops) breaks the device until the driver
 * resets it; after the reset it works again. */
static void
test_tx_broken_ring(Fixture *f, gconstpointer data)
{
  start(f, 0);
  TdQueue *tq = &f->td.q[TX];
  NbVirtqDesc *desc = td_ptr(&f->td, tq->desc, 16 * tq->size);
  uint64_t buf = td_alloc(&f->td, 64);
  desc[0] = (NbVirtqDesc){ GUINT64_TO_LE(buf), GUINT32_TO_LE(64), GUINT16_TO_LE(NB_VIRTQ_DESC_F_NEXT), GUINT16_TO_LE(1) };
  desc[1] = (NbVirtqDesc){ GUINT64_TO_LE(buf), GUINT32_TO_LE(64), GUINT16_TO_LE(NB_VIRTQ_DESC_F_NEXT), GUINT16_TO_LE(0) };
  uint16_t *avail = td_ptr(&f->td, tq->avail, 6 + 2 * tq->size);
  avail[2] = 0;
  __atomic_store_n(&avail[1], GUINT16_TO_LE(1), __ATOMIC_RELEASE);
  td_kick(&f->td, TX);
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  while (!(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET) && g_get_monotonic_time() < deadline) {
    g_main_context_iteration(f->ctx, FALSE);
    g_usleep(200);
  }
  g_assert_cmpuint(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET, !=, 0);
  g_assert_cmpuint(sent_count(f), ==, 0);

  /* Reset, set up again, and frames flow. */
  start(f, 0);
  g_assert_cmpuint(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET, ==, 0);
  uint8_t hdr[HDR], frame[200];
  make_hdr(hdr, 0, 0, 0, 0, 0, 0);
  size_t len = make_frame(frame, NB_IP_PROTO_UDP, 50, false);
  send_frame(f, hdr, HDR, frame, len);
  g_assert_cmpuint(sent_count(f), ==, 1);
}

static void
test_rx_plain(Fixture *f, gconstpointer data)
{
  start(f, 0);
  uint8_t frame[1600];
  size_t len = make_frame(frame, NB_IP_PROTO_TCP, 1460, false);
  /* No buffers yet: dropped. */
  g_assert_false(deliver(f, frame, len, 0, 0));
  g_assert_cmpuint(stats(f).rx_no_buffer, ==, 1);

  post_rx(f, 2, 1526);
  g_assert_true(deliver(f, frame, len, 0, 0));
  uint32_t id, used;
  g_assert_true(td_poll_used(&f->td, RX, &id, &used));
  g_assert_cmpuint(used, ==, HDR + len);
  const uint8_t *p = td_ptr(&f->td, f->rx_gpa[id], used);
  g_assert_cmpuint(p[0], ==, 0);
  g_assert_cmpuint(p[1], ==, NB_VIRTIO_NET_HDR_GSO_NONE);
  g_assert_cmpuint(get16(p + 10), ==, 1);
  g_assert_cmpmem(p + HDR, len, frame, len);

  /* Without mergeable buffers a frame must fit one buffer: a 1526-byte
   * buffer cannot take 2000 bytes, and stays for a frame that fits. */
  uint8_t big[2100];
  size_t big_len = make_frame(big, NB_IP_PROTO_UDP, 2000, false);
  g_assert_false(deliver(f, big, big_len, 0, 0));
  g_assert_cmpuint(stats(f).rx_no_buffer, ==, 2);
  g_assert_false(td_poll_used(&f->td, RX, NULL, NULL));
  g_assert_true(deliver(f, frame, len, 0, 0));
  g_assert_true(td_poll_used(&f->td, RX, &id, &used));
  g_assert_cmpuint(used, ==, HDR + len);

  NbVirtioNetStats s = stats(f);
  g_assert_cmpuint(s.rx_frames, ==, 2);
  g_assert_cmpuint(s.rx_bytes, ==, 2 * len);
}

static void
test_rx_mergeable(Fixture *f, gconstpointer data)
{
  start(f, F(NB_VIRTIO_NET_F_MRG_RXBUF) | OFFLOADS);
  g_autofree uint8_t *frame = g_malloc(65600);
  size_t len = make_frame(frame, NB_IP_PROTO_TCP, 3000, true);
  /* 3054 + 12 bytes over 1024-byte buffers: three of them, but only two
   * are there. Nothing is used until the third comes. */
  post_rx(f, 2, 1024);
  g_assert_false(deliver(f, frame, len, NB_NET_FRAME_CSUM_PARTIAL, 0));
  g_assert_cmpuint(td_used_idx(&f->td, RX), ==, 0);
  g_assert_cmpuint(stats(f).rx_no_buffer, ==, 1);
  post_rx(f, 1, 1024);
  g_assert_true(deliver(f, frame, len, NB_NET_FRAME_CSUM_PARTIAL, 0));
  g_assert_cmpuint(td_used_idx(&f->td, RX), ==, 3);
  GByteArray *got = g_byte_array_new();
  size_t total = 0;
  for (unsigned i = 0; i < 3; i++) {
    uint32_t id, used;
    g_assert_true(td_poll_used(&f->td, RX, &id, &used));
    g_assert_cmpuint(used, ==, i < 2 ? 1024 : HDR + len - 2048);
    g_byte_array_append(got, td_ptr(&f->td, f->rx_gpa[id], used), used);
    total += used;
  }
  g_assert_cmpuint(total, ==, HDR + len);
  g_assert_cmpuint(got->data[0], ==, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM);
  g_assert_cmpuint(get16(got->data + 6), ==, 34);
  g_assert_cmpuint(get16(got->data + 8), ==, 16);
  g_assert_cmpuint(get16(got->data + 10), ==, 3);
  g_assert_cmpmem(got->data + HDR, len, frame, len);
  g_byte_array_unref(got);

  /* A 64 KiB TSO frame over 4 KiB buffers: 17 of them. */
  len = make_frame(frame, NB_IP_PROTO_TCP, 65000, true);
  post_rx(f, 20, 4096);
  g_assert_true(deliver(f, frame, len, NB_NET_FRAME_CSUM_PARTIAL | NB_NET_FRAME_GSO_TCPV4, 1448));
  got = g_byte_array_new();
  uint32_t id, used;
  while (td_poll_used(&f->td, RX, &id, &used))
    g_byte_array_append(got, td_ptr(&f->td, f->rx_gpa[id], used), used);
  g_assert_cmpuint(got->len, ==, HDR + len);
  g_assert_cmpuint(get16(got->data + 10), ==, (HDR + len + 4095) / 4096);
  g_assert_cmpuint(got->data[1], ==, NB_VIRTIO_NET_HDR_GSO_TCPV4);
  g_assert_cmpuint(get16(got->data + 2), ==, 54);
  g_assert_cmpuint(get16(got->data + 4), ==, 1448);
  g_assert_cmpmem(got->data + HDR, len, frame, len);
  g_byte_array_unref(got);
}

/* What the backend is told, and what a guest without offloads gets. */
static void
test_rx_guest_features(Fixture *f, gconstpointer data)
{
  start(f, OFFLOADS | F(NB_VIRTIO_NET_F_MRG_RXBUF));
  g_assert_cmpuint(f->backend->peer_features, ==, NB_NET_PEER_CSUM_OFFLOAD | NB_NET_PEER_TSO4);
  /* TSO without the checksum offload under it is not a valid choice:
   * neither is used. */
  start(f, F(NB_VIRTIO_NET_F_GUEST_TSO4));
  g_assert_cmpuint(f->backend->peer_features, ==, 0);
  start(f, F(NB_VIRTIO_NET_F_GUEST_CSUM));
  g_assert_cmpuint(f->backend->peer_features, ==, NB_NET_PEER_CSUM_OFFLOAD);

  /* No offloads at all: frames the backend still offers offloaded (it
   * heard late) are finished here or dropped. */
  start(f, 0);
  g_assert_cmpuint(f->backend->peer_features, ==, 0);
  post_rx(f, 4, 1526);
  uint8_t frame[1600];
  size_t len = make_frame(frame, NB_IP_PROTO_TCP, 1000, true);
  g_assert_false(l4_csum_ok(frame, len));
  g_assert_true(deliver(f, frame, len, NB_NET_FRAME_CSUM_PARTIAL, 0));
  uint32_t id, used;
  g_assert_true(td_poll_used(&f->td, RX, &id, &used));
  const uint8_t *p = td_ptr(&f->td, f->rx_gpa[id], used);
  g_assert_cmpuint(p[0], ==, 0);
  g_assert_true(l4_csum_ok(p + HDR, used - HDR));
  g_assert_cmpuint(stats(f).rx_sw_csum, ==, 1);
  g_assert_false(deliver(f, frame, len, NB_NET_FRAME_CSUM_PARTIAL | NB_NET_FRAME_GSO_TCPV4, 536));
  g_assert_cmpuint(stats(f).rx_bad_offload, ==, 1);
  /* A partial checksum on something that is not TCP or UDP over IPv4
   * cannot be placed. */
  uint8_t arp[60] = { 0 };
  memcpy(arp, frame, 12);
  nb_wr16(arp + 12, NB_ETH_TYPE_ARP);
  g_assert_false(deliver(f, arp, sizeof arp, NB_NET_FRAME_CSUM_PARTIAL, 0));
  g_assert_cmpuint(stats(f).rx_bad_offload, ==, 2);
  /* Checksum offload but no TSO: a TSO frame is dropped. */
  start(f, F(NB_VIRTIO_NET_F_GUEST_CSUM));
  post_rx(f, 4, 1526);
  g_assert_false(deliver(f, frame, len, NB_NET_FRAME_CSUM_PARTIAL | NB_NET_FRAME_GSO_TCPV4, 536));
  g_assert_true(deliver(f, frame, len, NB_NET_FRAME_CSUM_PARTIAL, 0));
  g_assert_true(td_poll_used(&f->td, RX, &id, &used));
  p = td_ptr(&f->td, f->rx_gpa[id], used);
  g_assert_cmpuint(p[0], ==, NB_VIRTIO_NET_HDR_F_NEEDS_CSUM);
}

static void
test_rx_bad_buffers(Fixture *f, gconstpointer data)
{
  start(f, F(NB_VIRTIO_NET_F_MRG_RXBUF));
  uint8_t frame[200];
  size_t len = make_frame(frame, NB_IP_PROTO_UDP, 100, false);
  struct { const char *what; uint64_t gpa; uint32_t len; bool write; } cases[] = {
    { "smaller than the header", 0, 8, true },
    { "device-readable", 0, 2048, false },
    { "outside guest RAM", UINT64_C(1) << 40, 2048, true },
    { "in the PCI hole", UINT64_C(40) << 20, 2048, true },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_test_message("case: %s", cases[i].what);
    TdBuf b = { cases[i].gpa ? cases[i].gpa : td_alloc(&f->td, cases[i].len), cases[i].len, cases[i].write };
    td_submit(&f->td, RX, &b, 1);
    g_assert_false(deliver(f, frame, len, 0, 0));
    /* The buffer is handed back unused, and counted. */
    uint32_t id, used;
    g_assert_true(td_poll_used(&f->td, RX, &id, &used));
    g_assert_cmpuint(used, ==, 0);
    g_assert_cmpuint(stats(f).rx_bad_buffer, ==, i + 1);
  }
  g_assert_cmpuint(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET, ==, 0);
  /* A good buffer after a bad one in the same frame: both come back
   * empty, the frame is dropped. */
  TdBuf good = { td_alloc(&f->td, 64), 64, true };
  TdBuf bad = { UINT64_C(1) << 40, 2048, true };
  td_submit(&f->td, RX, &good, 1);
  td_submit(&f->td, RX, &bad, 1);
  g_assert_false(deliver(f, frame, len, 0, 0));
  for (unsigned i = 0; i < 2; i++) {
    uint32_t id, used;
    g_assert_true(td_poll_used(&f->td, RX, &id, &used));
    g_assert_cmpuint(used, ==, 0);
  }
  /* The device still delivers. */
  post_rx(f, 1, 2048);
  g_assert_true(deliver(f, frame, len, 0, 0));
  uint32_t id, used;
  g_assert_true(td_poll_used(&f->td, RX, &id, &used));
  g_assert_cmpuint(used, ==, HDR + len);
}

/* Before the driver is ready and after a reset, frames are dropped. */
static void
test_rx_inactive(Fixture *f, gconstpointer data)
{
  uint8_t frame[200];
  size_t len = make_frame(frame, NB_IP_PROTO_UDP, 100, false);
  g_assert_false(deliver(f, frame, len, 0, 0));
  start(f, 0);
  post_rx(f, 1, 2048);
  g_assert_true(deliver(f, frame, len, 0, 0));
  td_reset(&f->td);
  g_assert_false(deliver(f, frame, len, 0, 0));
  g_assert_cmpuint(stats(f).rx_down, ==, 2);
}

/* The real NAT engine behind the device: an ARP request from the guest
 * gets the gateway's answer in the guest's receive buffer. */
static void
test_nat_arp(void)
{
  Fixture fx, *f = &fx;
  memset(f, 0, sizeof *f);
  td_init(&f->td);
  g_autoptr(GError) error = NULL;
  g_autoptr(NbNatConfig) config = nb_nat_config_parse("nat", &error);
  g_assert_no_error(error);
  f->nat = nb_nat_new(config, &error);
  g_assert_no_error(error);
  f->backend = nb_nat_get_backend(f->nat);
  f->ctx = g_main_context_ref(nb_net_backend_get_context(f->backend));
  f->net = nb_virtio_net_new(f->td.mem, f->backend, guest_mac, &error);
  g_assert_no_error(error);
  td_add(&f->td, nb_virtio_net_pci_device(f->net));
  g_assert_true(nb_nat_start(f->nat, &error));
  g_assert_true(td_negotiate(&f->td, BASE_FEATURES | OFFLOADS | F(NB_VIRTIO_NET_F_MRG_RXBUF)));
  td_setup_queue(&f->td, RX, QSIZE);
  td_setup_queue(&f->td, TX, QSIZE);
  td_driver_ok(&f->td);
  post_rx(f, 8, 2048);

  uint8_t req[HDR + 42] = { 0 };
  uint8_t *eth = req + HDR;
  memset(eth, 0xff, 6);
  memcpy(eth + 6, guest_mac, 6);
  nb_wr16(eth + 12, NB_ETH_TYPE_ARP);
  uint8_t *arp = eth + 14;
  nb_wr16(arp, 1);
  nb_wr16(arp + 2, NB_ETH_TYPE_IPV4);
  arp[4] = 6;
  arp[5] = 4;
  nb_wr16(arp + 6, 1);
  memcpy(arp + 8, guest_mac, 6);
  nb_wr32(arp + 14, 0x0a00020f);
  nb_wr32(arp + 24, 0x0a000202);
  uint64_t gpa = td_alloc(&f->td, sizeof req);
  memcpy(td_ptr(&f->td, gpa, sizeof req), req, sizeof req);
  TdBuf b = { gpa, sizeof req, false };
  td_submit(&f->td, TX, &b, 1);
  td_kick(&f->td, TX);
  uint32_t id, used;
  g_assert_true(td_wait_used(&f->td, RX, &id, &used, 5000));
  const uint8_t *p = td_ptr(&f->td, fx.rx_gpa[id], used);
  g_assert_cmpuint(used, >=, HDR + 42);
  const uint8_t *reply = p + HDR;
  g_assert_cmpmem(reply, 6, guest_mac, 6);
  g_assert_cmpuint(nb_rd16(reply + 12), ==, NB_ETH_TYPE_ARP);
  g_assert_cmpuint(nb_rd16(reply + 14 + 6), ==, 2);                 /* a reply */
  g_assert_cmpuint(nb_rd32(reply + 14 + 14), ==, 0x0a000202);       /* from the gateway */
  const uint8_t gw_mac[6] = { 0x52, 0x55, 10, 0, 2, 2 };
  g_assert_cmpmem(reply + 14 + 8, 6, gw_mac, 6);
  g_assert_true(td_wait_used(&f->td, TX, &id, &used, 5000));
  NbNatStats ns;
  nb_nat_get_stats(f->nat, &ns);
  g_assert_cmpuint(ns.rx_frames, ==, 1);
  g_assert_cmpuint(ns.tx_frames, ==, 1);
  NbVirtioNetStats s = stats(f);
  g_assert_cmpuint(s.tx_frames, ==, 1);
  g_assert_cmpuint(s.rx_frames, ==, 1);

  /* Freeing while the engine runs: the NIC detaches on its thread. */
  nb_virtio_net_free(f->net);
  nb_nat_free(f->nat);
  g_main_context_unref(f->ctx);
  td_clear(&f->td);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/virtio-net/" name, Fixture, NULL, setup, fn, teardown)
  ADD("config-and-link", test_config);
  g_test_add_func("/virtio-net/bad-mac", test_bad_mac);
  ADD("tx/plain", test_tx_plain);
  ADD("tx/many", test_tx_many);
  ADD("tx/offloads", test_tx_offloads);
  ADD("tx/bad-input", test_tx_bad);
  ADD("tx/bad-gso", test_tx_bad_gso);
  ADD("tx/csum-not-negotiated", test_tx_csum_not_negotiated);
  ADD("tx/broken-ring", test_tx_broken_ring);
  ADD("rx/plain", test_rx_plain);
  ADD("rx/mergeable", test_rx_mergeable);
  ADD("rx/guest-features", test_rx_guest_features);
  ADD("rx/bad-buffers", test_rx_bad_buffers);
  ADD("rx/inactive", test_rx_inactive);
  g_test_add_func("/virtio-net/nat-arp", test_nat_arp);
  return g_test_run();
}
