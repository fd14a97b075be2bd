#include "virtio/virtio-blk.h"
#include "virtio/virtio-pci.h"

#include <string.h>

#define SECTOR 512u
#define HEADER_SIZE 16u
#define SEGMENT_SIZE 16u        /* discard / write-zeroes segment */
#define WZ_FLAG_UNMAP 1u
/* Requests run at once per disk. Measured in tests/bench/virtio/RESULTS.md. */
#define POOL_THREADS 4
#define MAX_THREADS 16
/* Most requests a pool thread takes at once: it runs them one after the
 * other and hands them back together, with one used->idx update and at most
 * one interrupt. */
#define BATCH_MAX 8
/* A pool thread that finishes while others still run a batch leaves the
 * interrupt to the last of them, so that a burst costs the guest one
 * interrupt, not one per thread (measured in tests/bench/virtio/RESULTS.md,
 * run 5). A batch that runs long (a flush, a read from a slow disk) must not
 * hold back requests already done: after this long, the deferred interrupt
 * goes out anyway. */
#define NOTIFY_DEFER_MAX_US 200

/* Config space layout (spec 5.2.4), the fields we fill. */
#define CFG_CAPACITY          0
#define CFG_SIZE_MAX          8
#define CFG_SEG_MAX           12
#define CFG_BLK_SIZE          20
#define CFG_NUM_QUEUES        34
#define CFG_MAX_DISCARD_SECT  36
#define CFG_MAX_DISCARD_SEG   40
#define CFG_DISCARD_ALIGN     44
#define CFG_MAX_WZ_SECT       48
#define CFG_MAX_WZ_SEG        52
#define CFG_WZ_MAY_UNMAP      56
#define CFG_SIZE              60

struct NbVirtioBlk {
  NbVirtioPci *vp;
  NbBlock *block;
  uint64_t sectors;
  bool read_only;
  char serial[NB_VIRTIO_BLK_ID_BYTES];
  uint8_t config[CFG_SIZE];

  GMutex lock;          /* the queue and everything below */
  GCond work;           /* requests wait in pending, or the pool stops */
  GCond drained;        /* in_flight reached 0 */
  unsigned in_flight;   /* taken from the ring, not yet handed back */
  unsigned threads;     /* 0: requests run on the worker itself */
  GThread *pool[MAX_THREADS];
  unsigned idle;        /* pool threads waiting for work */
  unsigned running;     /* pool threads running a batch */
  bool notify_owed;     /* completions pushed, their interrupt deferred */
  gint64 owed_since;    /* monotonic time notify_owed was set */
  bool owed_watched;    /* an idle pool thread waits to send it in time */
  bool stopping;
  /* Requests the worker took and no pool thread has yet: a ring as long as
   * the virtqueue, which bounds how many can be taken at once. */
  NbVirtqElement *pending[NB_VIRTIO_BLK_QUEUE_SIZE];
  unsigned pending_head, pending_count;
};

static void
put_le32(uint8_t *p, uint32_t v)
{
  v = GUINT32_TO_LE(v);
  memcpy(p, &v, 4);
}

static void
put_le64(uint8_t *p, uint64_t v)
{
  v = GUINT64_TO_LE(v);
  memcpy(p, &v, 8);
}

/* Request execution --------------------------------------------------------- */

/* Whether [sector, sector + count) lies on the disk, without overflow. */
static bool
in_range(NbVirtioBlk *blk, uint64_t sector, uint64_t count)
{
  return sector <= blk->sectors && count <= blk->sectors - sector;
}

static uint8_t
do_rw(NbVirtioBlk *blk, bool write, uint64_t sector, const struct iovec *iov, unsigned n,
      size_t offset, size_t len)
{
  if (len % SECTOR != 0 || !in_range(blk, sector, len / SECTOR))
    return NB_VIRTIO_BLK_S_IOERR;
  if (write && blk->read_only)
    return NB_VIRTIO_BLK_S_IOERR;
  if (len == 0)
    return NB_VIRTIO_BLK_S_OK;
  struct iovec stack[64];
  g_autofree struct iovec *heap = NULL;
  struct iovec *data = stack;
  if (n > G_N_ELEMENTS(stack))
    data = heap = g_new(struct iovec, n);
  int cnt = nb_virtq_iov_slice(iov, n, offset, len, data, n);
  if (cnt < 0)
    return NB_VIRTIO_BLK_S_IOERR;
  g_autoptr(GError) error = NULL;
  bool ok = write ? nb_block_pwritev(blk->block, data, cnt, sector * SECTOR, &error)
                  : nb_block_preadv(blk->block, data, cnt, sector * SECTOR, &error);
  if (!ok) {
    g_debug("virtio-blk %s: %s at sector %" G_GUINT64_FORMAT " failed: %s",
            nb_block_path(blk->block), write ? "write" : "read", sector, error->message);
    return NB_VIRTIO_BLK_S_IOERR;
  }
  return NB_VIRTIO_BLK_S_OK;
}

static uint8_t
do_discard_or_zeroes(NbVirtioBlk *blk, bool zeroes, const NbVirtqElement *elem)
{
  unsigned feature = zeroes ? NB_VIRTIO_BLK_F_WRITE_ZEROES : NB_VIRTIO_BLK_F_DISCARD;
  if (!nb_virtio_pci_has_feature(blk->vp, feature) || blk->read_only)
    return NB_VIRTIO_BLK_S_UNSUPP;
  size_t payload = elem->out_len - HEADER_SIZE;
  if (payload == 0 || payload % SEGMENT_SIZE != 0)
    return NB_VIRTIO_BLK_S_IOERR;
  if (payload / SEGMENT_SIZE > NB_VIRTIO_BLK_MAX_DISCARD_SEG)
    return NB_VIRTIO_BLK_S_UNSUPP;
  uint8_t seg[SEGMENT_SIZE];
  nb_virtq_iov_to_buf(elem->out, elem->n_out, HEADER_SIZE, seg, sizeof seg);
  uint64_t sector;
  uint32_t count, flags;
  memcpy(&sector, seg, 8);
  memcpy(&count, seg + 8, 4);
  memcpy(&flags, seg + 12, 4);
  sector = GUINT64_FROM_LE(sector);
  count = GUINT32_FROM_LE(count);
  flags = GUINT32_FROM_LE(flags);
  /* Discard has no flags; write-zeroes only "unmap" (5.2.6.2). */
  if (flags & ~(zeroes ? WZ_FLAG_UNMAP : 0))
    return NB_VIRTIO_BLK_S_UNSUPP;
  if (count > NB_VIRTIO_BLK_MAX_DISCARD_SECTORS || !in_range(blk, sector, count))
    return NB_VIRTIO_BLK_S_IOERR;
  if (count == 0)
    return NB_VIRTIO_BLK_S_OK;
  g_autoptr(GError) error = NULL;
  /* Punching a hole reads back as zeroes, so "unmap" may use it. */
  bool ok = (!zeroes || (flags & WZ_FLAG_UNMAP))
              ? nb_block_discard(blk->block, sector * SECTOR, (uint64_t)count * SECTOR, &error)
              : nb_block_write_zeroes(blk->block, sector * SECTOR, (uint64_t)count * SECTOR, &error);
  if (!ok && zeroes && (flags & WZ_FLAG_UNMAP)) {
    g_clear_error(&error);
    ok = nb_block_write_zeroes(blk->block, sector * SECTOR, (uint64_t)count * SECTOR, &error);
  }
  if (!ok) {
    g_debug("virtio-blk %s: %s failed: %s", nb_block_path(blk->block),
            zeroes ? "write-zeroes" : "discard", error->message);
    /* A discard the host cannot do loses nothing: it is only a hint. */
    if (!zeroes && g_error_matches(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED))
      return NB_VIRTIO_BLK_S_OK;
    return NB_VIRTIO_BLK_S_IOERR;
  }
  return NB_VIRTIO_BLK_S_OK;
}

uint32_t
nb_virtio_blk_process(NbVirtioBlk *blk, const NbVirtqElement *elem)
{
  /* The status byte is the last device-writable byte; without one there is
   * no way to report anything, so the request completes with nothing written. */
  if (elem->in_len == 0)
    return 0;
  size_t data_in = elem->in_len - 1;
  uint8_t status;
  uint32_t written = 0;

  if (elem->out_len < HEADER_SIZE) {
    status = NB_VIRTIO_BLK_S_IOERR;
  } else {
    uint8_t hdr[HEADER_SIZE];
    nb_virtq_iov_to_buf(elem->out, elem->n_out, 0, hdr, sizeof hdr);
    uint32_t type;
    uint64_t sector;
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    type = GUINT32_FROM_LE(type);
    sector = GUINT64_FROM_LE(sector);

    switch (type) {
    case NB_VIRTIO_BLK_T_IN:
      status = do_rw(blk, false, sector, elem->in, elem->n_in, 0, data_in);
      if (status == NB_VIRTIO_BLK_S_OK)
        written = (uint32_t)data_in;
      break;
    case NB_VIRTIO_BLK_T_OUT:
      status = do_rw(blk, true, sector, elem->out, elem->n_out, HEADER_SIZE,
                     elem->out_len - HEADER_SIZE);
      break;
    case NB_VIRTIO_BLK_T_FLUSH: {
      g_autoptr(GError) error = NULL;
      status = NB_VIRTIO_BLK_S_OK;
      if (!blk->read_only && !nb_block_flush(blk->block, &error)) {
        g_debug("virtio-blk %s: flush failed: %s", nb_block_path(blk->block), error->message);
        status = NB_VIRTIO_BLK_S_IOERR;
      }
      break;
    }
    case NB_VIRTIO_BLK_T_GET_ID: {
      size_t n = MIN(data_in, sizeof blk->serial);
      nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, blk->serial, n);
      written = (uint32_t)n;
      status = NB_VIRTIO_BLK_S_OK;
      break;
    }
    case NB_VIRTIO_BLK_T_DISCARD:
      status = do_discard_or_zeroes(blk, false, elem);
      break;
    case NB_VIRTIO_BLK_T_WRITE_ZEROES:
      status = do_discard_or_zeroes(blk, true, elem);
      break;
    default:
      status = NB_VIRTIO_BLK_S_UNSUPP;
      break;
    }
  }
  nb_virtq_iov_from_buf(elem->in, elem->n_in, data_in, &status, 1);
  return written + 1;
}

/* Queue handling ------------------------------------------------------------ */

/* With the lock held: the interrupt for what has been pushed, if the driver
 * asked for one. */
static void
notify_locked(NbVirtioBlk *blk)
{
  blk->notify_owed = false;
  if (nb_virtqueue_should_notify(nb_virtio_pci_queue(blk->vp, 0)))
    nb_virtio_pci_notify_queue(blk->vp, 0);
}

/* With the lock held: whether a deferred interrupt has waited its longest. */
static bool
owed_overdue_locked(NbVirtioBlk *blk)
{
  return blk->notify_owed && g_get_monotonic_time() - blk->owed_since >= NOTIFY_DEFER_MAX_US;
}

/* With the lock held: hands n finished requests back to the driver in one
 * used->idx update, then interrupts once if the driver asked for it, unless
 * another pool thread still runs a batch and will do so when it finishes. */
static void
complete_locked(NbVirtioBlk *blk, NbVirtqElement **elems, const uint32_t *lens, unsigned n)
{
  NbVirtqueue *vq = nb_virtio_pci_queue(blk->vp, 0);
  uint16_t heads[BATCH_MAX];
  for (unsigned i = 0; i < n; i++)
    heads[i] = elems[i]->head;
  nb_virtqueue_push_batch(vq, heads, lens, n);
  if (blk->running > 0) {
    if (!blk->notify_owed) {
      blk->notify_owed = true;
      blk->owed_since = g_get_monotonic_time();
    } else if (owed_overdue_locked(blk)) {
      notify_locked(blk);
    }
  } else {
    notify_locked(blk);
  }
  blk->in_flight -= n;
  if (blk->in_flight == 0)
    g_cond_broadcast(&blk->drained);
}

static gpointer
pool_main(gpointer data)
{
  NbVirtioBlk *blk = data;
  NbVirtqElement *batch[BATCH_MAX];
  uint32_t lens[BATCH_MAX];
  g_mutex_lock(&blk->lock);
  for (;;) {
    if (blk->pending_count == 0) {
      if (blk->stopping)
        break;
      blk->idle++;
      if (blk->notify_owed && !blk->owed_watched) {
        /* The threads still running owe the guest an interrupt; one idle
         * thread sees that it does not wait past NOTIFY_DEFER_MAX_US. */
        blk->owed_watched = true;
        gint64 deadline = blk->owed_since + NOTIFY_DEFER_MAX_US;
        if (!g_cond_wait_until(&blk->work, &blk->lock, deadline) && owed_overdue_locked(blk))
          notify_locked(blk);
        blk->owed_watched = false;
      } else {
        g_cond_wait(&blk->work, &blk->lock);
      }
      blk->idle--;
      continue;
    }
    /* An even share of what waits, so that a burst spreads over the pool
     * while each thread still completes several requests per interrupt. */
    unsigned n = (blk->pending_count + blk->threads - 1) / blk->threads;
    n = CLAMP(n, 1, BATCH_MAX);
    /* The worker stopped taking requests when the ring was full: it is to
     * look again now that there is room. */
    if (blk->pending_count == NB_VIRTIO_BLK_QUEUE_SIZE)
      nb_virtio_pci_kick(blk->vp, 0);
    for (unsigned i = 0; i < n; i++) {
      batch[i] = blk->pending[blk->pending_head];
      blk->pending_head = (blk->pending_head + 1) % NB_VIRTIO_BLK_QUEUE_SIZE;
    }
    blk->pending_count -= n;
    blk->running++;
    g_mutex_unlock(&blk->lock);
    for (unsigned i = 0; i < n; i++)
      lens[i] = nb_virtio_blk_process(blk, batch[i]);
    g_mutex_lock(&blk->lock);
    blk->running--;
    complete_locked(blk, batch, lens, n);
    g_mutex_unlock(&blk->lock);
    for (unsigned i = 0; i < n; i++)
      g_free(batch[i]);
    g_mutex_lock(&blk->lock);
  }
  g_mutex_unlock(&blk->lock);
  return NULL;
}

static void
blk_queue_notify(void *ctx, unsigned queue)
{
  NbVirtioBlk *blk = ctx;
  NbVirtqueue *vq = nb_virtio_pci_queue(blk->vp, 0);
  unsigned added = 0;
  g_mutex_lock(&blk->lock);
  for (;;) {
    g_autoptr(GError) error = NULL;
    NbVirtqElement *elem = NULL;
    nb_virtqueue_disable_notify(vq);
    /* The ring cannot hold more requests than the queue has entries, but a
     * driver that reuses entries before they complete could: take no more
     * than there is room for, and come back when a pool thread made room
     * (it kicks the queue). */
    if (blk->threads > 0 && blk->pending_count == NB_VIRTIO_BLK_QUEUE_SIZE)
      break;
    NbVirtqPopResult r = nb_virtqueue_pop(vq, &elem, &error);
    if (r == NB_VIRTQ_POP_EMPTY) {
      if (nb_virtqueue_enable_notify(vq))
        continue;
      break;
    }
    if (r == NB_VIRTQ_POP_BROKEN) {
      nb_virtio_pci_set_broken(blk->vp, error->message);
      break;
    }
    blk->in_flight++;
    if (blk->threads == 0) {
      g_mutex_unlock(&blk->lock);
      uint32_t len = nb_virtio_blk_process(blk, elem);
      g_mutex_lock(&blk->lock);
      complete_locked(blk, &elem, &len, 1);
      g_free(elem);
      continue;
    }
    blk->pending[(blk->pending_head + blk->pending_count) % NB_VIRTIO_BLK_QUEUE_SIZE] = elem;
    blk->pending_count++;
    added++;
  }
  /* One wake-up per thread that will find work, not one per request. */
  for (unsigned i = 0; i < MIN(added, blk->idle); i++)
    g_cond_signal(&blk->work);
  g_mutex_unlock(&blk->lock);
}

static void
pool_stop(NbVirtioBlk *blk)
{
  g_mutex_lock(&blk->lock);
  blk->stopping = true;
  g_cond_broadcast(&blk->work);
  g_mutex_unlock(&blk->lock);
  for (unsigned i = 0; i < MAX_THREADS; i++) {
    if (blk->pool[i])
      g_thread_join(blk->pool[i]);
    blk->pool[i] = NULL;
  }
  blk->stopping = false;
}

static bool
pool_start(NbVirtioBlk *blk, unsigned threads, GError **error)
{
  blk->threads = MIN(threads, MAX_THREADS);
  for (unsigned i = 0; i < blk->threads; i++) {
    g_autofree char *name = g_strdup_printf("virtio-blk-io%u", i);
    blk->pool[i] = g_thread_try_new(name, pool_main, blk, error);
    if (blk->pool[i] == NULL) {
      pool_stop(blk);
      blk->threads = 0;
      return false;
    }
  }
  return true;
}

void
nb_virtio_blk_set_threads(NbVirtioBlk *blk, unsigned threads)
{
  pool_stop(blk);
  g_autoptr(GError) error = NULL;
  if (!pool_start(blk, threads, &error))
    g_warning("virtio-blk: requests run on the worker thread: %s", error->message);
}

static void
blk_reset(void *ctx)
{
  NbVirtioBlk *blk = ctx;
  /* Requests already taken finish and complete into the old rings first:
   * the driver has not reused their buffers yet, and no thread may write
   * guest memory on the device's behalf after the reset. */
  g_mutex_lock(&blk->lock);
  while (blk->in_flight > 0)
    g_cond_wait(&blk->drained, &blk->lock);
  g_mutex_unlock(&blk->lock);
}

static void
blk_config_read(void *ctx, unsigned offset, void *data, unsigned len)
{
  NbVirtioBlk *blk = ctx;
  memcpy(data, blk->config + offset, len);
}

static const NbVirtioDeviceOps blk_ops = {
  .config_read = blk_config_read,
  .queue_notify = blk_queue_notify,
  .reset = blk_reset,
};

NbVirtioBlk *
nb_virtio_blk_new(NbGuestMemory *mem, NbBlock *block, const char *serial, GError **error)
{
  if (serial && strlen(serial) > NB_VIRTIO_BLK_ID_BYTES) {
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                "disk serial \"%s\" is too long: virtio-blk serials have at most %d characters",
                serial, NB_VIRTIO_BLK_ID_BYTES);
    return NULL;
  }
  NbVirtioBlk *blk = g_new0(NbVirtioBlk, 1);
  blk->block = block;
  blk->sectors = nb_block_size(block) / SECTOR;
  blk->read_only = nb_block_is_read_only(block);
  if (serial)
    memcpy(blk->serial, serial, strlen(serial));
  g_mutex_init(&blk->lock);
  g_cond_init(&blk->work);
  g_cond_init(&blk->drained);

  uint64_t features = (UINT64_C(1) << NB_VIRTIO_BLK_F_SEG_MAX) |
                      (UINT64_C(1) << NB_VIRTIO_BLK_F_SIZE_MAX) |
                      (UINT64_C(1) << NB_VIRTIO_BLK_F_BLK_SIZE) |
                      (UINT64_C(1) << NB_VIRTIO_BLK_F_FLUSH);
  if (blk->read_only)
    features |= UINT64_C(1) << NB_VIRTIO_BLK_F_RO;
  else
    features |= (UINT64_C(1) << NB_VIRTIO_BLK_F_DISCARD) |
                (UINT64_C(1) << NB_VIRTIO_BLK_F_WRITE_ZEROES);

  put_le64(blk->config + CFG_CAPACITY, blk->sectors);
  put_le32(blk->config + CFG_SIZE_MAX, NB_VIRTIO_BLK_SIZE_MAX);
  put_le32(blk->config + CFG_SEG_MAX, NB_VIRTIO_BLK_SEG_MAX);
  put_le32(blk->config + CFG_BLK_SIZE, SECTOR);
  blk->config[CFG_NUM_QUEUES] = 1;
  put_le32(blk->config + CFG_MAX_DISCARD_SECT, NB_VIRTIO_BLK_MAX_DISCARD_SECTORS);
  put_le32(blk->config + CFG_MAX_DISCARD_SEG, NB_VIRTIO_BLK_MAX_DISCARD_SEG);
  put_le32(blk->config + CFG_DISCARD_ALIGN, 4096 / SECTOR);
  put_le32(blk->config + CFG_MAX_WZ_SECT, NB_VIRTIO_BLK_MAX_DISCARD_SECTORS);
  put_le32(blk->config + CFG_MAX_WZ_SEG, NB_VIRTIO_BLK_MAX_DISCARD_SEG);
  blk->config[CFG_WZ_MAY_UNMAP] = 1;

  if (!pool_start(blk, POOL_THREADS, error))
    goto fail;
  NbVirtioDeviceInfo info = {
    .name = "blk",
    .device_id = NB_VIRTIO_ID_BLOCK,
    .pci_class = 0x018000,   /* mass storage, other */
    .features = features,
    .num_queues = 1,
    .queue_size = NB_VIRTIO_BLK_QUEUE_SIZE,
    .config_size = CFG_SIZE,
    .ops = &blk_ops,
    .ctx = blk,
  };
  blk->vp = nb_virtio_pci_new(mem, &info, error);
  if (blk->vp == NULL)
    goto fail;
  return blk;

fail:
  nb_virtio_blk_free(blk);
  return NULL;
}

void
nb_virtio_blk_free(NbVirtioBlk *blk)
{
  if (blk == NULL)
    return;
  /* The worker first, so nothing new reaches the pool; then the pool, whose
   * last completions still use the queue. */
  if (blk->vp)
    nb_virtio_pci_stop(blk->vp);
  pool_stop(blk);
  nb_virtio_pci_free(blk->vp);
  g_mutex_clear(&blk->lock);
  g_cond_clear(&blk->work);
  g_cond_clear(&blk->drained);
  g_free(blk);
}

NbPciDevice *
nb_virtio_blk_pci_device(NbVirtioBlk *blk)
{
  return nb_virtio_pci_device(blk->vp);
}
