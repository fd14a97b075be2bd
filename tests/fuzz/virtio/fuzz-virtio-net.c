/* libFuzzer: virtio-net transmit requests as a hostile guest could shape
 * them: any split of header and frame over buffers, any header fields, any
 * frame, on devices that negotiated no offloads, the checksum offload only,
 * or all of them. Whatever reaches the backend must be a frame the backend
 * can trust: of a sane size, and with only the offloads the guest
 * negotiated, consistently described.
 *
 * Input: a byte choosing the device, a byte with the number of buffers,
 * two bytes of length per buffer, then the bytes that fill them in order
 * (virtio_net_hdr first). */
#include "net/net-backend.h"
#include "virtio/virtio-net.h"
#include "virtio/virtio-pci.h"

#include <string.h>

#define MiB (UINT64_C(1) << 20)
#define MAX_BUFS 8
#define ARENA (1 * MiB)
#define N_DEVS 3

typedef struct {
  NbNetBackend base;
  bool sent;
  unsigned offloads;    /* the NbNetFrameFlags this device may pass on */
} FuzzBackend;

static NbGuestMemory *mem;
static GMainContext *ctx;
static FuzzBackend backends[N_DEVS];
static NbVirtioNet *devs[N_DEVS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_send(NbNetBackend *b, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  FuzzBackend *fb = (FuzzBackend *)b;
  fb->sent = true;
  if (len < 14 || len > NB_VIRTIO_NET_MAX_FRAME)
    __builtin_trap();
  unsigned flags = meta ? meta->flags : 0;
  if (flags & ~fb->offloads)
    __builtin_trap();
  if (flags & NB_NET_FRAME_GSO_TCPV4) {
    if (!(flags & NB_NET_FRAME_CSUM_PARTIAL) || meta->gso_size == 0)
      __builtin_trap();
  }
  uint16_t start = 0, offset = 0;
  if ((flags & NB_NET_FRAME_CSUM_PARTIAL) && !nb_net_frame_csum_offsets(frame, len, &start, &offset))
    __builtin_trap();
  if ((flags & NB_NET_FRAME_GSO_TCPV4) && offset != 16)
    __builtin_trap();
  /* Copy it whole: ASan checks that the frame is all there. */
  static uint8_t copy[NB_VIRTIO_NET_MAX_FRAME];
  memcpy(copy, frame, len);
}

static void
fuzz_destroy(NbNetBackend *b)
{
}

static const NbNetBackendClass fuzz_class = { "fuzz", fuzz_send, NULL, fuzz_destroy };

static void
bar_write(NbVirtioNet *net, uint64_t off, uint64_t value, unsigned size)
{
  NbPciDevice *dev = nb_virtio_net_pci_device(net);
  dev->bars[NB_VIRTIO_PCI_BAR].ops->write(dev->bars[NB_VIRTIO_PCI_BAR].opaque, off, value, size);
}

static void
init(void)
{
  mem = nb_guest_memory_new_split(64 * MiB, 32 * MiB, 48 * MiB, NULL);
  ctx = g_main_context_new();
  static const uint64_t features[N_DEVS] = {
    0,
    UINT64_C(1) << NB_VIRTIO_NET_F_CSUM,
    (UINT64_C(1) << NB_VIRTIO_NET_F_CSUM) | (UINT64_C(1) << NB_VIRTIO_NET_F_HOST_TSO4) |
      (UINT64_C(1) << NB_VIRTIO_NET_F_GUEST_CSUM) | (UINT64_C(1) << NB_VIRTIO_NET_F_GUEST_TSO4) |
      (UINT64_C(1) << NB_VIRTIO_NET_F_MRG_RXBUF),
  };
  static const unsigned offloads[N_DEVS] = {
    0, NB_NET_FRAME_CSUM_PARTIAL, NB_NET_FRAME_CSUM_PARTIAL | NB_NET_FRAME_GSO_TCPV4,
  };
  const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
  for (int i = 0; i < N_DEVS; i++) {
    nb_net_backend_init(&backends[i].base, &fuzz_class, ctx);
    backends[i].offloads = offloads[i];
    devs[i] = mem ? nb_virtio_net_new(mem, &backends[i].base, mac, NULL) : NULL;
    if (devs[i] == NULL)
      __builtin_trap();
    uint64_t f = features[i] | (UINT64_C(1) << NB_VIRTIO_F_VERSION_1);
    bar_write(devs[i], 0x08, 0, 4);
    bar_write(devs[i], 0x0c, (uint32_t)f, 4);
    bar_write(devs[i], 0x08, 1, 4);
    bar_write(devs[i], 0x0c, (uint32_t)(f >> 32), 4);
    bar_write(devs[i], 0x14, 1 | 2 | 8, 1);
    bar_write(devs[i], 0x14, 1 | 2 | 8 | 4, 1);   /* DRIVER_OK: the features are final */
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (mem == NULL)
    init();
  if (size < 2)
    return 0;
  unsigned d = data[0] % N_DEVS;
  unsigned n = 1 + data[1] % MAX_BUFS;
  data += 2;
  size -= 2;
  size_t lens[MAX_BUFS];
  size_t total = 0;
  unsigned got = 0;
  for (; got < n && size >= 2; got++) {
    /* Up to 24 KiB each: three make a frame over the limit. */
    lens[got] = 1 + (size_t)(data[0] | data[1] << 8) % 24576;
    total += lens[got];
    data += 2;
    size -= 2;
  }
  if (got == 0 || total > ARENA)
    return 0;

  uint8_t *arena = nb_guest_memory_ptr(mem, 0x100000, ARENA);
  size_t c = MIN(size, total);
  memcpy(arena, data, c);
  memset(arena + c, 0, total - c);
  NbVirtqElement *e = g_malloc0(sizeof(NbVirtqElement) + MAX_BUFS * sizeof(struct iovec));
  e->out = e->iov;
  e->in = e->iov + got;
  size_t at = 0;
  for (unsigned i = 0; i < got; i++) {
    e->iov[i] = (struct iovec){ arena + at, lens[i] };
    at += lens[i];
  }
  e->n_out = got;
  e->out_len = total;
  backends[d].sent = false;
  bool sent = nb_virtio_net_process_tx(devs[d], e);
  if (sent != backends[d].sent)
    __builtin_trap();
  g_free(e);
  return 0;
}
