#include "virtio/virtio-net.h"
#include "net/packet.h"
#include "virtio/virtio-pci.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Device configuration (5.1.4): mac, status, max_virtqueue_pairs. */
#define CFG_MAC      0
#define CFG_STATUS   6
#define CFG_MAX_VQP  8
#define CFG_SIZE     10

/* Header fields (5.1.6). */
#define HDR_FLAGS       0
#define HDR_GSO_TYPE    1
#define HDR_HDR_LEN     2
#define HDR_GSO_SIZE    4
#define HDR_CSUM_START  6
#define HDR_CSUM_OFFSET 8
#define HDR_NUM_BUFFERS 10

/* Transmit chains taken per turn on the backend's thread before it looks
 * at its other sources (host sockets, timers) again. */
#define TX_BUDGET 128

#define BIT(n) (UINT64_C(1) << (n))

typedef struct {
  GSource source;
  NbVirtioNet *net;
} NetSource;

struct NbVirtioNet {
  NbVirtioPci *vp;
  NbNetBackend *backend;
  GMainContext *context;      /* the backend's; referenced */
  GSource *source;            /* on context: transmit work, feature changes */
  uint8_t mac[6];
  int link_up;                /* atomic */

  /* Lock order: the transport lock (reset, activate), then tx_lock, then
   * rx_lock (the backend may deliver while it is sending). */
  GMutex tx_lock;
  bool tx_active;             /* DRIVER_OK and not detached */
  uint64_t tx_features;       /* what the driver accepted, for transmit */
  uint8_t *tx_buf;            /* header + frame, copied out of guest memory once */
  NbVirtioNetStats tx_stats;

  GMutex rx_lock;
  bool rx_active;
  uint64_t rx_features;
  uint8_t *rx_scratch;        /* a frame whose checksum is completed here */
  NbVirtqElement *rx_elems[NB_VIRTIO_NET_QUEUE_SIZE];
  uint16_t rx_heads[NB_VIRTIO_NET_QUEUE_SIZE];
  uint32_t rx_lens[NB_VIRTIO_NET_QUEUE_SIZE];
  NbVirtioNetStats rx_stats;

  int features_dirty;         /* atomic: peer features to tell the backend */
  unsigned peer_features;     /* atomic */

  /* A queue the driver corrupted, found on the backend's thread: the
   * transport is told on its worker, where such calls belong. */
  int broken_efd;
  GMutex broken_lock;
  char *broken_why;
  unsigned broken_generation;
  unsigned generation;        /* resets so far; written with the transport lock held */
};

static bool net_deliver(void *opaque, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta);
static const NbNetPeerOps peer_ops = { net_deliver };

static uint16_t
get_le16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

static void
put_le16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

/* Finishes a partial checksum the way a NIC does: the one's complement sum
 * from start to the end of the frame (the field holds the pseudo-header's
 * sum) goes into the field at start + offset. The caller checked that the
 * field lies in the frame. */
static void
complete_csum(uint8_t *frame, size_t len, size_t start, size_t offset)
{
  uint16_t sum = nb_csum_fold(nb_csum_partial(frame + start, len - start, 0));
  nb_wr16(frame + start + offset, sum);
}

static void
report_broken(NbVirtioNet *net, const char *why)
{
  g_mutex_lock(&net->broken_lock);
  if (net->broken_why == NULL) {
    net->broken_why = g_strdup(why);
    net->broken_generation = __atomic_load_n(&net->generation, __ATOMIC_ACQUIRE);
  }
  g_mutex_unlock(&net->broken_lock);
  uint64_t one = 1;
  ssize_t r;
  do {
    r = write(net->broken_efd, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
}

/* On the transport's worker, with its lock held. */
static void
broken_event(void *ctx, int fd, uint32_t events)
{
  NbVirtioNet *net = ctx;
  uint64_t count;
  if (read(fd, &count, sizeof count) < 0)
    return;
  g_mutex_lock(&net->broken_lock);
  g_autofree char *why = g_steal_pointer(&net->broken_why);
  bool current = net->broken_generation == net->generation;
  g_mutex_unlock(&net->broken_lock);
  /* One found before a reset that has happened since is no longer true. */
  if (why && current)
    nb_virtio_pci_set_broken(net->vp, why);
}

static void
notify_if_needed(NbVirtioNet *net, unsigned q)
{
  if (nb_virtqueue_should_notify(nb_virtio_pci_queue(net->vp, q)))
    nb_virtio_pci_notify_queue(net->vp, q);
}

/* Transmit ------------------------------------------------------------------ */

/* Checks a frame the guest sent and what its header asks for; fills meta.
 * frame is our own copy, so the guest cannot change it under us. */
static bool
tx_check(NbVirtioNet *net, const uint8_t *hdr, uint8_t *frame, size_t len, NbNetFrameMeta *meta)
{
  NbVirtioNetStats *st = &net->tx_stats;
  uint8_t flags = hdr[HDR_FLAGS];
  uint8_t gso_type = hdr[HDR_GSO_TYPE];
  uint16_t gso_size = get_le16(hdr + HDR_GSO_SIZE);
  uint16_t hdr_len = get_le16(hdr + HDR_HDR_LEN);
  uint16_t csum_start = get_le16(hdr + HDR_CSUM_START);
  uint16_t csum_offset = get_le16(hdr + HDR_CSUM_OFFSET);
  *meta = (NbNetFrameMeta){ 0 };

  /* DATA_VALID and RSC_INFO are the device's to set (5.1.6.2.1). */
  if (flags & ~NB_VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    st->tx_bad_header++;
    return false;
  }
  if (flags & NB_VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    if (!(net->tx_features & BIT(NB_VIRTIO_NET_F_CSUM)) ||
        (size_t)csum_start + csum_offset + 2 > len) {
      st->tx_bad_header++;
      return false;
    }
    uint16_t start, offset;
    if (nb_net_frame_csum_offsets(frame, len, &start, &offset) && start == csum_start &&
        offset == csum_offset) {
      meta->flags |= NB_NET_FRAME_CSUM_PARTIAL;
    } else if (gso_type == NB_VIRTIO_NET_HDR_GSO_NONE) {
      /* Not TCP or UDP over IPv4 as the backend knows it (IPv6, say):
       * finish the sum here, as the NIC would have. */
      complete_csum(frame, len, csum_start, csum_offset);
      st->tx_sw_csum++;
    }
  }
  switch (gso_type) {
  case NB_VIRTIO_NET_HDR_GSO_NONE:
    break;
  case NB_VIRTIO_NET_HDR_GSO_TCPV4:
    /* TSO needs the checksum offload over the TCP header (5.1.6.2), a
     * segment size, and a header length the frame has. */
    if (!(net->tx_features & BIT(NB_VIRTIO_NET_F_HOST_TSO4)) ||
        !(meta->flags & NB_NET_FRAME_CSUM_PARTIAL) || csum_offset != 16 || gso_size == 0 ||
        hdr_len > len) {
      st->tx_bad_header++;
      return false;
    }
    meta->flags |= NB_NET_FRAME_GSO_TCPV4;
    meta->gso_size = gso_size;
    break;
  default:
    /* ECN, UDP and IPv6 segmentation are not offered. */
    st->tx_bad_header++;
    return false;
  }
  return true;
}

/* With tx_lock held. */
static bool
tx_process_locked(NbVirtioNet *net, const NbVirtqElement *elem)
{
  NbVirtioNetStats *st = &net->tx_stats;
  if (elem->out_len < NB_VIRTIO_NET_HDR_SIZE) {
    st->tx_bad_header++;
    return false;
  }
  size_t len = elem->out_len - NB_VIRTIO_NET_HDR_SIZE;
  if (len < NB_ETH_HLEN || len > NB_VIRTIO_NET_MAX_FRAME) {
    st->tx_bad_size++;
    return false;
  }
  nb_virtq_iov_to_buf(elem->out, elem->n_out, 0, net->tx_buf, NB_VIRTIO_NET_HDR_SIZE + len);
  uint8_t *frame = net->tx_buf + NB_VIRTIO_NET_HDR_SIZE;
  NbNetFrameMeta meta;
  if (!tx_check(net, net->tx_buf, frame, len, &meta))
    return false;
  st->tx_frames++;
  st->tx_bytes += len;
  nb_net_backend_send(net->backend, frame, len, &meta);
  return true;
}

bool
nb_virtio_net_process_tx(NbVirtioNet *net, const NbVirtqElement *elem)
{
  g_mutex_lock(&net->tx_lock);
  bool sent = tx_process_locked(net, elem);
  g_mutex_unlock(&net->tx_lock);
  return sent;
}

/* On the backend's thread: takes what the guest queued. Returns true when
 * the budget ran out with work left. */
static bool
tx_drain(NbVirtioNet *net)
{
  g_mutex_lock(&net->tx_lock);
  if (!net->tx_active || !nb_virtio_pci_is_active(net->vp)) {
    g_mutex_unlock(&net->tx_lock);
    return false;
  }
  NbVirtqueue *vq = nb_virtio_pci_queue(net->vp, NB_VIRTIO_NET_Q_TX);
  unsigned budget = TX_BUDGET;
  bool more = false;
  bool sent = false;
  for (;;) {
    nb_virtqueue_disable_notify(vq);
    while (budget > 0) {
      g_autoptr(GError) error = NULL;
      NbVirtqElement *elem = NULL;
      uint16_t bad_head = 0;
      NbVirtqPopResult r = nb_virtqueue_pop_tolerant(vq, &elem, &bad_head, &error);
      if (r == NB_VIRTQ_POP_EMPTY)
        break;
      if (r == NB_VIRTQ_POP_BROKEN) {
        report_broken(net, error->message);
        goto out;
      }
      budget--;
      if (r == NB_VIRTQ_POP_BAD_BUFFER) {
        net->tx_stats.tx_bad_buffer++;
        nb_virtqueue_push(vq, bad_head, 0);
        continue;
      }
      sent |= tx_process_locked(net, elem);
      nb_virtqueue_push(vq, elem->head, 0);
      g_free(elem);
    }
    if (budget == 0 && nb_virtqueue_has_work(vq)) {
      /* Notifications stay off: we come back on our own, after the
       * backend's other sources had their turn. */
      more = true;
      break;
    }
    if (!nb_virtqueue_enable_notify(vq))
      break;
    if (budget == 0) {
      more = true;
      break;
    }
  }
out:
  if (sent)
    nb_net_backend_flush(net->backend);
  notify_if_needed(net, NB_VIRTIO_NET_Q_TX);
  g_mutex_unlock(&net->tx_lock);
  return more;
}

/* The backend's-thread source: feature changes, then transmit work. */
static gboolean
source_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
  NbVirtioNet *net = ((NetSource *)source)->net;
  g_source_set_ready_time(source, -1);
  if (__atomic_exchange_n(&net->features_dirty, 0, __ATOMIC_ACQ_REL))
    nb_net_backend_attach(net->backend, &peer_ops, net,
                          __atomic_load_n(&net->peer_features, __ATOMIC_ACQUIRE));
  if (tx_drain(net))
    g_source_set_ready_time(source, 0);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs source_funcs = { .dispatch = source_dispatch };

/* Receive ------------------------------------------------------------------- */

/* Copies [header][frame] from offset pos, len bytes, into iov. */
static void
rx_copy(const struct iovec *iov, unsigned n, const uint8_t *hdr, const uint8_t *frame,
        size_t pos, size_t len)
{
  size_t at = 0;
  if (pos < NB_VIRTIO_NET_HDR_SIZE) {
    size_t c = MIN(len, NB_VIRTIO_NET_HDR_SIZE - pos);
    nb_virtq_iov_from_buf(iov, n, 0, hdr + pos, c);
    at = c;
    len -= c;
    pos = NB_VIRTIO_NET_HDR_SIZE;
  }
  if (len)
    nb_virtq_iov_from_buf(iov, n, at, frame + (pos - NB_VIRTIO_NET_HDR_SIZE), len);
}

/* Hands back every chain taken for a frame that will not be delivered:
 * unused ones go back to the ring, or, when one of them was unusable, all
 * are returned empty (the driver counts them as length errors). */
static void
rx_abandon(NbVirtioNet *net, NbVirtqueue *vq, unsigned n, bool consume)
{
  for (unsigned i = 0; i < n; i++) {
    net->rx_lens[i] = 0;
    g_free(net->rx_elems[i]);
    net->rx_elems[i] = NULL;
  }
  if (consume) {
    nb_virtqueue_push_batch(vq, net->rx_heads, net->rx_lens, n);
    notify_if_needed(net, NB_VIRTIO_NET_Q_RX);
  } else {
    for (unsigned i = 0; i < n; i++)
      nb_virtqueue_unpop(vq);
  }
}

/* With rx_lock held. */
static bool
rx_deliver_locked(NbVirtioNet *net, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  NbVirtioNetStats *st = &net->rx_stats;
  if (!net->rx_active || !nb_virtio_pci_is_active(net->vp) ||
      !__atomic_load_n(&net->link_up, __ATOMIC_ACQUIRE)) {
    st->rx_down++;
    return false;
  }
  uint8_t hdr[NB_VIRTIO_NET_HDR_SIZE] = { 0 };
  unsigned flags = meta ? meta->flags : 0;
  bool guest_csum = net->rx_features & BIT(NB_VIRTIO_NET_F_GUEST_CSUM);
  bool guest_tso = guest_csum && (net->rx_features & BIT(NB_VIRTIO_NET_F_GUEST_TSO4));
  if (flags) {
    uint16_t start, offset;
    bool gso = flags & NB_NET_FRAME_GSO_TCPV4;
    if (!(flags & NB_NET_FRAME_CSUM_PARTIAL) || !nb_net_frame_csum_offsets(frame, len, &start, &offset) ||
        (gso && (!guest_tso || offset != 16 || meta->gso_size == 0))) {
      /* Offload flags that do not fit the frame, or a TSO frame for a
       * guest without TSO (the backend was told not to make one). */
      st->rx_bad_offload++;
      return false;
    }
    if (guest_csum) {
      hdr[HDR_FLAGS] = NB_VIRTIO_NET_HDR_F_NEEDS_CSUM;
      put_le16(hdr + HDR_CSUM_START, start);
      put_le16(hdr + HDR_CSUM_OFFSET, offset);
      if (gso) {
        hdr[HDR_GSO_TYPE] = NB_VIRTIO_NET_HDR_GSO_TCPV4;
        put_le16(hdr + HDR_GSO_SIZE, meta->gso_size);
        put_le16(hdr + HDR_HDR_LEN, (uint16_t)(start + (frame[start + 12] >> 4) * 4));
      }
    } else {
      /* A frame offloaded before the backend heard this driver's features
       * (just after a reset): finish it for the guest. */
      memcpy(net->rx_scratch, frame, len);
      complete_csum(net->rx_scratch, len, start, offset);
      frame = net->rx_scratch;
      st->rx_sw_csum++;
    }
  }

  NbVirtqueue *vq = nb_virtio_pci_queue(net->vp, NB_VIRTIO_NET_Q_RX);
  bool mergeable = net->rx_features & BIT(NB_VIRTIO_NET_F_MRG_RXBUF);
  size_t total = NB_VIRTIO_NET_HDR_SIZE + len;
  size_t done = 0;
  unsigned n = 0;
  while (done < total) {
    if (n == G_N_ELEMENTS(net->rx_elems)) {
      /* More buffers than a queue holds: they are far smaller than the
       * driver may post. */
      st->rx_bad_buffer++;
      rx_abandon(net, vq, n, true);
      return false;
    }
    g_autoptr(GError) error = NULL;
    NbVirtqElement *elem = NULL;
    uint16_t bad_head = 0;
    NbVirtqPopResult r = nb_virtqueue_pop_tolerant(vq, &elem, &bad_head, &error);
    if (r == NB_VIRTQ_POP_EMPTY) {
      st->rx_no_buffer++;
      rx_abandon(net, vq, n, false);
      return false;
    }
    if (r == NB_VIRTQ_POP_BROKEN) {
      report_broken(net, error->message);
      for (unsigned i = 0; i < n; i++)
        g_clear_pointer(&net->rx_elems[i], g_free);
      st->rx_bad_buffer++;
      return false;
    }
    if (r == NB_VIRTQ_POP_BAD_BUFFER || elem->n_out > 0 ||
        elem->in_len < (n == 0 ? NB_VIRTIO_NET_HDR_SIZE : 1)) {
      /* Outside RAM, device-readable parts in a receive buffer, or too small
       * for the header (5.1.6.3.1): the driver broke the rules. */
      net->rx_heads[n] = r == NB_VIRTQ_POP_BAD_BUFFER ? bad_head : elem->head;
      net->rx_elems[n] = elem;
      st->rx_bad_buffer++;
      rx_abandon(net, vq, n + 1, true);
      return false;
    }
    size_t chunk = MIN(elem->in_len, total - done);
    if (!mergeable && chunk < total) {
      /* Without mergeable buffers one must hold the whole frame; this one
       * may do for a smaller frame later. */
      g_free(elem);
      nb_virtqueue_unpop(vq);
      st->rx_no_buffer++;
      return false;
    }
    rx_copy(elem->in, elem->n_in, hdr, frame, done, chunk);
    net->rx_elems[n] = elem;
    net->rx_heads[n] = elem->head;
    net->rx_lens[n] = (uint32_t)chunk;
    done += chunk;
    n++;
  }
  uint8_t count[2];
  put_le16(count, (uint16_t)n);
  nb_virtq_iov_from_buf(net->rx_elems[0]->in, net->rx_elems[0]->n_in, HDR_NUM_BUFFERS, count, 2);
  for (unsigned i = 0; i < n; i++)
    g_clear_pointer(&net->rx_elems[i], g_free);
  nb_virtqueue_push_batch(vq, net->rx_heads, net->rx_lens, n);
  notify_if_needed(net, NB_VIRTIO_NET_Q_RX);
  st->rx_frames++;
  st->rx_bytes += len;
  return true;
}

/* The backend's deliver callback, on its thread. */
static bool
net_deliver(void *opaque, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  NbVirtioNet *net = opaque;
  if (len < NB_ETH_HLEN || len > NB_VIRTIO_NET_MAX_FRAME)
    return false;
  g_mutex_lock(&net->rx_lock);
  bool ok = rx_deliver_locked(net, frame, len, meta);
  g_mutex_unlock(&net->rx_lock);
  return ok;
}

/* Device callbacks ------------------------------------------------------------ */

static void
net_queue_notify(void *ctx, unsigned queue)
{
  NbVirtioNet *net = ctx;
  /* New receive buffers need no action: frames are dropped, not held, when
   * there are none (TCP sends again). Transmit work belongs to the backend's
   * thread. */
  if (queue == NB_VIRTIO_NET_Q_TX)
    g_source_set_ready_time(net->source, 0);
}

static void
set_peer_features(NbVirtioNet *net, uint64_t features)
{
  unsigned peer = 0;
  if (features & BIT(NB_VIRTIO_NET_F_GUEST_CSUM)) {
    peer |= NB_NET_PEER_CSUM_OFFLOAD;
    if (features & BIT(NB_VIRTIO_NET_F_GUEST_TSO4))
      peer |= NB_NET_PEER_TSO4;
  }
  __atomic_store_n(&net->peer_features, peer, __ATOMIC_RELEASE);
  __atomic_store_n(&net->features_dirty, 1, __ATOMIC_RELEASE);
  g_source_set_ready_time(net->source, 0);
}

static void
net_activate(void *ctx)
{
  NbVirtioNet *net = ctx;
  uint64_t features = nb_virtio_pci_driver_features(net->vp);
  /* TSO4 without the checksum offload under it is not a valid pair
   * (5.1.3.1): use neither TSO. */
  if (!(features & BIT(NB_VIRTIO_NET_F_CSUM)))
    features &= ~BIT(NB_VIRTIO_NET_F_HOST_TSO4);
  if (!(features & BIT(NB_VIRTIO_NET_F_GUEST_CSUM)))
    features &= ~BIT(NB_VIRTIO_NET_F_GUEST_TSO4);
  g_mutex_lock(&net->tx_lock);
  g_mutex_lock(&net->rx_lock);
  net->tx_features = net->rx_features = features;
  net->tx_active = net->rx_active = true;
  /* Frames for the guest are not signalled by the driver: new receive
   * buffers need no notification. */
  nb_virtqueue_disable_notify(nb_virtio_pci_queue(net->vp, NB_VIRTIO_NET_Q_RX));
  g_mutex_unlock(&net->rx_lock);
  g_mutex_unlock(&net->tx_lock);
  set_peer_features(net, features);
}

static void
net_reset(void *ctx)
{
  NbVirtioNet *net = ctx;
  /* Waits for a frame being sent or delivered on the backend's thread. */
  g_mutex_lock(&net->tx_lock);
  g_mutex_lock(&net->rx_lock);
  net->tx_active = net->rx_active = false;
  net->tx_features = net->rx_features = 0;
  __atomic_add_fetch(&net->generation, 1, __ATOMIC_RELEASE);
  g_mutex_unlock(&net->rx_lock);
  g_mutex_unlock(&net->tx_lock);
  if (net->source)
    set_peer_features(net, 0);
}

static void
net_config_read(void *ctx, unsigned offset, void *data, unsigned len)
{
  NbVirtioNet *net = ctx;
  uint8_t config[CFG_SIZE] = { 0 };
  memcpy(config + CFG_MAC, net->mac, 6);
  put_le16(config + CFG_STATUS,
           __atomic_load_n(&net->link_up, __ATOMIC_ACQUIRE) ? NB_VIRTIO_NET_S_LINK_UP : 0);
  put_le16(config + CFG_MAX_VQP, 1);
  memcpy(data, config + offset, len);
}

static void
net_config_write(void *ctx, unsigned offset, const void *data, unsigned len)
{
  /* Nothing here is the driver's to write (5.1.4.2): the MAC changes only
   * with VIRTIO_NET_F_CTRL_MAC_ADDR, which is not offered. */
}

static const NbVirtioDeviceOps net_ops = {
  .config_read = net_config_read,
  .config_write = net_config_write,
  .queue_notify = net_queue_notify,
  .activate = net_activate,
  .reset = net_reset,
};

/* Public ------------------------------------------------------------------------ */

void
nb_virtio_net_set_link(NbVirtioNet *net, bool up)
{
  int old = __atomic_exchange_n(&net->link_up, up ? 1 : 0, __ATOMIC_ACQ_REL);
  if (old != (up ? 1 : 0) && nb_virtio_pci_is_active(net->vp) &&
      nb_virtio_pci_has_feature(net->vp, NB_VIRTIO_NET_F_STATUS))
    nb_virtio_pci_notify_config(net->vp);
}

static void
add_stats(NbVirtioNetStats *out, const NbVirtioNetStats *in)
{
  uint64_t *o = (uint64_t *)out;
  const uint64_t *i = (const uint64_t *)in;
  for (size_t k = 0; k < sizeof *out / sizeof(uint64_t); k++)
    o[k] += i[k];
}

void
nb_virtio_net_get_stats(NbVirtioNet *net, NbVirtioNetStats *out)
{
  *out = (NbVirtioNetStats){ 0 };
  g_mutex_lock(&net->tx_lock);
  add_stats(out, &net->tx_stats);
  g_mutex_unlock(&net->tx_lock);
  g_mutex_lock(&net->rx_lock);
  add_stats(out, &net->rx_stats);
  g_mutex_unlock(&net->rx_lock);
}

NbPciDevice *
nb_virtio_net_pci_device(NbVirtioNet *net)
{
  return nb_virtio_pci_device(net->vp);
}

NbVirtioNet *
nb_virtio_net_new(NbGuestMemory *mem, NbNetBackend *backend, const uint8_t mac[6],
                  GError **error)
{
  if ((mac[0] & 1) || (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0) {
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                "MAC address %02x:%02x:%02x:%02x:%02x:%02x cannot be a NIC's: it is %s — "
                "give a unicast address such as 52:54:00:12:34:56",
                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
                (mac[0] & 1) ? "a multicast address" : "all zeroes");
    return NULL;
  }
  NbVirtioNet *net = g_new0(NbVirtioNet, 1);
  net->backend = backend;
  memcpy(net->mac, mac, 6);
  net->link_up = 1;
  net->broken_efd = -1;
  g_mutex_init(&net->tx_lock);
  g_mutex_init(&net->rx_lock);
  g_mutex_init(&net->broken_lock);
  net->tx_buf = g_malloc(NB_VIRTIO_NET_HDR_SIZE + NB_VIRTIO_NET_MAX_FRAME);
  net->rx_scratch = g_malloc(NB_VIRTIO_NET_MAX_FRAME);

  net->context = g_main_context_ref(nb_net_backend_get_context(backend));
  net->source = g_source_new(&source_funcs, sizeof(NetSource));
  ((NetSource *)net->source)->net = net;
  g_source_set_name(net->source, "virtio-net");
  g_source_attach(net->source, net->context);
  nb_net_backend_attach(backend, &peer_ops, net, 0);

  net->broken_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (net->broken_efd < 0) {
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED, "cannot create an eventfd: %s",
                g_strerror(errno));
    goto fail;
  }
  NbVirtioDeviceInfo info = {
    .name = "net",
    .device_id = NB_VIRTIO_ID_NET,
    .pci_class = 0x020000,   /* network, Ethernet */
    .features = BIT(NB_VIRTIO_NET_F_CSUM) | BIT(NB_VIRTIO_NET_F_GUEST_CSUM) |
                BIT(NB_VIRTIO_NET_F_MAC) | BIT(NB_VIRTIO_NET_F_GUEST_TSO4) |
                BIT(NB_VIRTIO_NET_F_HOST_TSO4) | BIT(NB_VIRTIO_NET_F_MRG_RXBUF) |
                BIT(NB_VIRTIO_NET_F_STATUS),
    .num_queues = 2,
    .queue_size = NB_VIRTIO_NET_QUEUE_SIZE,
    .config_size = CFG_SIZE,
    .ops = &net_ops,
    .ctx = net,
  };
  net->vp = nb_virtio_pci_new(mem, &info, error);
  if (net->vp == NULL ||
      !nb_virtio_pci_watch_fd(net->vp, net->broken_efd, EPOLLIN, broken_event, net, error))
    goto fail;
  return net;

fail:
  nb_virtio_net_free(net);
  return NULL;
}

/* Runs on the backend's thread: after it, the backend never calls us. */
typedef struct {
  NbVirtioNet *net;
  GMutex lock;
  GCond cond;
  bool done;
} Detach;

static void
detach_now(NbVirtioNet *net)
{
  nb_net_backend_attach(net->backend, NULL, NULL, 0);
  g_source_destroy(net->source);
}

static gboolean
detach_idle(gpointer data)
{
  Detach *d = data;
  detach_now(d->net);
  g_mutex_lock(&d->lock);
  d->done = true;
  g_cond_signal(&d->cond);
  g_mutex_unlock(&d->lock);
  return G_SOURCE_REMOVE;
}

static void
detach(NbVirtioNet *net)
{
  if (g_main_context_acquire(net->context)) {
    /* Nobody runs the backend's context: it is ours for the moment. */
    detach_now(net);
    g_main_context_release(net->context);
    return;
  }
  Detach d = { .net = net };
  g_mutex_init(&d.lock);
  g_cond_init(&d.cond);
  GSource *idle = g_idle_source_new();
  g_source_set_priority(idle, G_PRIORITY_HIGH);
  g_source_set_callback(idle, detach_idle, &d, NULL);
  g_source_attach(idle, net->context);
  g_source_unref(idle);
  g_mutex_lock(&d.lock);
  while (!d.done)
    g_cond_wait(&d.cond, &d.lock);
  g_mutex_unlock(&d.lock);
  g_mutex_clear(&d.lock);
  g_cond_clear(&d.cond);
}

void
nb_virtio_net_free(NbVirtioNet *net)
{
  if (net == NULL)
    return;
  if (net->vp)
    nb_virtio_pci_stop(net->vp);
  if (net->source) {
    detach(net);
    g_source_unref(net->source);
  }
  nb_virtio_pci_free(net->vp);
  if (net->context)
    g_main_context_unref(net->context);
  if (net->broken_efd >= 0)
    close(net->broken_efd);
  g_free(net->broken_why);
  g_free(net->tx_buf);
  g_free(net->rx_scratch);
  g_mutex_clear(&net->tx_lock);
  g_mutex_clear(&net->rx_lock);
  g_mutex_clear(&net->broken_lock);
  g_free(net);
}
