#include "virtio/virtio-rng.h"
#include "virtio/virtio-pci.h"

#include <errno.h>
#include <sys/random.h>

struct NbVirtioRng {
  NbVirtioPci *vp;
};

/* Fills the chain's writable part; returns the bytes written. */
static size_t
fill(const NbVirtqElement *elem)
{
  size_t total = 0;
  for (unsigned i = 0; i < elem->n_in && total < NB_VIRTIO_RNG_MAX_REQUEST; i++) {
    uint8_t *p = elem->in[i].iov_base;
    size_t want = MIN(elem->in[i].iov_len, NB_VIRTIO_RNG_MAX_REQUEST - total);
    size_t got = 0;
    while (got < want) {
      ssize_t n = getrandom(p + got, want - got, 0);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        g_debug("virtio-rng: getrandom failed: %s", g_strerror(errno));
        return total + got;
      }
      got += (size_t)n;
    }
    total += got;
  }
  return total;
}

static void
rng_queue_notify(void *ctx, unsigned queue)
{
  NbVirtioRng *rng = ctx;
  NbVirtqueue *vq = nb_virtio_pci_queue(rng->vp, 0);
  do {
    nb_virtqueue_disable_notify(vq);
    for (;;) {
      g_autoptr(GError) error = NULL;
      NbVirtqElement *elem = NULL;
      NbVirtqPopResult r = nb_virtqueue_pop(vq, &elem, &error);
      if (r == NB_VIRTQ_POP_EMPTY)
        break;
      if (r == NB_VIRTQ_POP_BROKEN) {
        nb_virtio_pci_set_broken(rng->vp, error->message);
        return;
      }
      nb_virtqueue_push(vq, elem->head, (uint32_t)fill(elem));
      g_free(elem);
    }
  } while (nb_virtqueue_enable_notify(vq));
  if (nb_virtqueue_should_notify(vq))
    nb_virtio_pci_notify_queue(rng->vp, 0);
}

static const NbVirtioDeviceOps rng_ops = {
  .queue_notify = rng_queue_notify,
};

NbVirtioRng *
nb_virtio_rng_new(NbGuestMemory *mem, GError **error)
{
  NbVirtioRng *rng = g_new0(NbVirtioRng, 1);
  NbVirtioDeviceInfo info = {
    .name = "rng",
    .device_id = NB_VIRTIO_ID_RNG,
    .pci_class = 0x00ff00,
    .num_queues = 1,
    .queue_size = 64,
    .config_size = 0,
    .ops = &rng_ops,
    .ctx = rng,
  };
  rng->vp = nb_virtio_pci_new(mem, &info, error);
  if (rng->vp == NULL) {
    g_free(rng);
    return NULL;
  }
  return rng;
}

void
nb_virtio_rng_free(NbVirtioRng *rng)
{
  if (rng == NULL)
    return;
  nb_virtio_pci_free(rng->vp);
  g_free(rng);
}

NbPciDevice *
nb_virtio_rng_pci_device(NbVirtioRng *rng)
{
  return nb_virtio_pci_device(rng->vp);
}
