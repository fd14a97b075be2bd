#include "virtio/virtqueue.h"

#include <string.h>

G_DEFINE_QUARK(nb-virtio-error-quark, nb_virtio_error)

/* Ring fields are shared with a guest running on other CPUs: loads and
 * stores of indices go through atomics, which also gives the ordering the
 * spec asks for (read avail->idx before the ring entries it covers; write
 * used entries before used->idx). */
static inline uint16_t
load16(const uint16_t *p)
{
  return GUINT16_FROM_LE(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static inline void
store16(uint16_t *p, uint16_t v)
{
  __atomic_store_n(p, GUINT16_TO_LE(v), __ATOMIC_RELEASE);
}

static inline void
full_barrier(void)
{
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void
nb_virtqueue_init(NbVirtqueue *vq, NbGuestMemory *mem)
{
  memset(vq, 0, sizeof *vq);
  vq->mem = mem;
}

void
nb_virtqueue_reset(NbVirtqueue *vq)
{
  nb_virtqueue_init(vq, vq->mem);
}

static void *
ring_ptr(NbVirtqueue *vq, uint64_t gpa, uint64_t len, uint64_t align, const char *what,
         GError **error)
{
  if (gpa & (align - 1)) {
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_BAD_RING,
                "%s ring at 0x%" G_GINT64_MODIFIER "x is not %" G_GUINT64_FORMAT "-byte aligned",
                what, gpa, align);
    return NULL;
  }
  void *p = nb_guest_memory_ptr(vq->mem, gpa, len);
  if (p == NULL)
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_BAD_RING,
                "%s ring at 0x%" G_GINT64_MODIFIER "x (%" G_GUINT64_FORMAT " bytes) is not in guest RAM",
                what, gpa, len);
  return p;
}

bool
nb_virtqueue_enable(NbVirtqueue *vq, uint16_t size, uint64_t desc_gpa, uint64_t avail_gpa,
                    uint64_t used_gpa, bool indirect, bool event_idx, GError **error)
{
  if (size == 0 || (size & (size - 1)) != 0) {
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_BAD_RING,
                "queue size %u is not a power of two", size);
    return false;
  }
  /* The sizes include used_event / avail_event whether or not EVENT_IDX is
   * negotiated, as the spec lays the rings out. */
  void *desc = ring_ptr(vq, desc_gpa, 16 * (uint64_t)size, 16, "descriptor", error);
  if (!desc)
    return false;
  void *avail = ring_ptr(vq, avail_gpa, 6 + 2 * (uint64_t)size, 2, "available", error);
  if (!avail)
    return false;
  void *used = ring_ptr(vq, used_gpa, 6 + 8 * (uint64_t)size, 4, "used", error);
  if (!used)
    return false;

  vq->size = size;
  vq->desc_gpa = desc_gpa;
  vq->avail_gpa = avail_gpa;
  vq->used_gpa = used_gpa;
  vq->desc = desc;
  vq->avail = avail;
  vq->used_hdr = used;
  vq->used_ring = (uint32_t *)((uint8_t *)used + 4);
  vq->indirect = indirect;
  vq->event_idx = event_idx;
  vq->last_avail = 0;
  vq->used_idx = 0;
  vq->signalled_used_valid = false;
  vq->broken = false;
  vq->ready = true;
  return true;
}

static NbVirtqPopResult
broken(NbVirtqueue *vq, GError **error, const char *format, ...) G_GNUC_PRINTF(3, 4);

static NbVirtqPopResult
broken(NbVirtqueue *vq, GError **error, const char *format, ...)
{
  va_list args;
  va_start(args, format);
  g_autofree char *msg = g_strdup_vprintf(format, args);
  va_end(args);
  vq->broken = true;
  g_set_error_literal(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_BAD_DESCRIPTOR, msg);
  return NB_VIRTQ_POP_BROKEN;
}

/* Where a chain's buffers are gathered before the element is built. */
typedef struct {
  struct iovec *iov;
  unsigned n, cap;
  unsigned n_out;
  bool seen_write;
  bool tolerant;        /* buffers outside RAM cost only this chain */
  size_t out_len, in_len;
  struct iovec small[32];
} Gather;

static void
gather_add(Gather *g, void *base, size_t len)
{
  if (g->n == g->cap) {
    unsigned cap = g->cap * 2;
    if (g->iov == g->small) {
      g->iov = g_new(struct iovec, cap);
      memcpy(g->iov, g->small, sizeof g->small);
    } else {
      g->iov = g_renew(struct iovec, g->iov, cap);
    }
    g->cap = cap;
  }
  g->iov[g->n++] = (struct iovec){ base, len };
}

static NbVirtqPopResult
walk_chain(NbVirtqueue *vq, const NbVirtqDesc *table, unsigned table_size, unsigned start,
           bool in_indirect, Gather *g, GError **error)
{
  unsigned i = start;
  /* A chain visits each entry of its table at most once, so more steps than
   * entries means a loop. */
  for (unsigned steps = 1;; steps++) {
    if (steps > table_size)
      return broken(vq, error, "descriptor chain from %u loops or is longer than its table (%u)",
                    start, table_size);
    NbVirtqDesc d;
    memcpy(&d, &table[i], sizeof d);   /* read once: the guest may change it */
    uint64_t addr = GUINT64_FROM_LE(d.addr);
    uint32_t len = GUINT32_FROM_LE(d.len);
    uint16_t flags = GUINT16_FROM_LE(d.flags);
    uint16_t next = GUINT16_FROM_LE(d.next);

    if (flags & NB_VIRTQ_DESC_F_INDIRECT) {
      if (in_indirect)
        return broken(vq, error, "indirect descriptor inside an indirect table");
      if (!vq->indirect)
        return broken(vq, error, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
      if (flags & NB_VIRTQ_DESC_F_NEXT)
        return broken(vq, error, "indirect descriptor with NEXT set");
      if (len == 0 || len % sizeof(NbVirtqDesc) != 0)
        return broken(vq, error, "indirect table length %u is not a multiple of 16", len);
      unsigned n = len / sizeof(NbVirtqDesc);
      if (n > NB_VIRTQ_MAX_INDIRECT)
        return broken(vq, error, "indirect table of %u entries (at most %u)", n,
                      NB_VIRTQ_MAX_INDIRECT);
      const NbVirtqDesc *itable = nb_guest_memory_ptr(vq->mem, addr, len);
      if (itable == NULL && g->tolerant)
        return NB_VIRTQ_POP_BAD_BUFFER;
      if (itable == NULL)
        return broken(vq, error, "indirect table at 0x%" G_GINT64_MODIFIER "x (%u bytes) is not in guest RAM",
                      addr, len);
      return walk_chain(vq, itable, n, 0, true, g, error);
    }

    void *p = len ? nb_guest_memory_ptr(vq->mem, addr, len) : NULL;
    if (p == NULL && g->tolerant)
      return NB_VIRTQ_POP_BAD_BUFFER;
    if (len == 0)
      return broken(vq, error, "descriptor %u has zero length", i);
    if (p == NULL)
      return broken(vq, error, "descriptor %u at 0x%" G_GINT64_MODIFIER "x (%u bytes) is not in guest RAM",
                    i, addr, len);
    if (flags & NB_VIRTQ_DESC_F_WRITE) {
      if (!g->seen_write)
        g->n_out = g->n;
      g->seen_write = true;
      g->in_len += len;
    } else {
      if (g->seen_write)
        return broken(vq, error, "device-readable descriptor %u after a writable one", i);
      g->out_len += len;
    }
    gather_add(g, p, len);

    if (!(flags & NB_VIRTQ_DESC_F_NEXT))
      return NB_VIRTQ_POP_OK;
    if (next >= table_size)
      return broken(vq, error, "descriptor %u links to %u, beyond the table (%u)", i, next,
                    table_size);
    i = next;
  }
}

static NbVirtqPopResult
pop(NbVirtqueue *vq, NbVirtqElement **out_elem, bool tolerant, uint16_t *bad_head,
    GError **error)
{
  *out_elem = NULL;
  if (!vq->ready)
    return NB_VIRTQ_POP_EMPTY;
  if (vq->broken) {
    g_set_error_literal(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_BAD_DESCRIPTOR, "queue is broken");
    return NB_VIRTQ_POP_BROKEN;
  }
  uint16_t avail_idx = load16(&vq->avail[1]);
  uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
  if (pending == 0)
    return NB_VIRTQ_POP_EMPTY;
  if (pending > vq->size)
    return broken(vq, error, "available index moved by %u on a queue of %u", pending, vq->size);

  uint16_t head = load16(&vq->avail[2 + vq->last_avail % vq->size]);
  if (head >= vq->size)
    return broken(vq, error, "available ring names descriptor %u on a queue of %u", head, vq->size);

  Gather g = { .cap = G_N_ELEMENTS(g.small), .tolerant = tolerant };
  g.iov = g.small;
  NbVirtqPopResult r = walk_chain(vq, vq->desc, vq->size, head, false, &g, error);
  if (r == NB_VIRTQ_POP_BAD_BUFFER) {
    vq->last_avail++;
    *bad_head = head;
  } else if (r == NB_VIRTQ_POP_OK) {
    if (!g.seen_write)
      g.n_out = g.n;
    NbVirtqElement *e = g_malloc(sizeof *e + g.n * sizeof(struct iovec));
    e->head = head;
    e->n_out = g.n_out;
    e->n_in = g.n - g.n_out;
    e->out_len = g.out_len;
    e->in_len = g.in_len;
    memcpy(e->iov, g.iov, g.n * sizeof(struct iovec));
    e->out = e->iov;
    e->in = e->iov + g.n_out;
    vq->last_avail++;
    *out_elem = e;
  }
  if (g.iov != g.small)
    g_free(g.iov);
  return r;
}

NbVirtqPopResult
nb_virtqueue_pop(NbVirtqueue *vq, NbVirtqElement **out_elem, GError **error)
{
  return pop(vq, out_elem, false, NULL, error);
}

NbVirtqPopResult
nb_virtqueue_pop_tolerant(NbVirtqueue *vq, NbVirtqElement **out_elem, uint16_t *bad_head,
                          GError **error)
{
  return pop(vq, out_elem, true, bad_head, error);
}

void
nb_virtqueue_unpop(NbVirtqueue *vq)
{
  vq->last_avail--;
}

void
nb_virtqueue_push(NbVirtqueue *vq, uint16_t head, uint32_t len)
{
  if (!vq->ready)
    return;
  unsigned slot = vq->used_idx % vq->size;
  uint32_t entry[2] = { GUINT32_TO_LE(head), GUINT32_TO_LE(len) };
  memcpy(&vq->used_ring[2 * slot], entry, sizeof entry);
  vq->used_idx++;
  vq->pushed = true;
  store16(&vq->used_hdr[1], vq->used_idx);   /* release: the entry is visible first */
}

void
nb_virtqueue_push_batch(NbVirtqueue *vq, const uint16_t *heads, const uint32_t *lens, unsigned n)
{
  if (!vq->ready || n == 0)
    return;
  for (unsigned i = 0; i < n; i++) {
    unsigned slot = (uint16_t)(vq->used_idx + i) % vq->size;
    uint32_t entry[2] = { GUINT32_TO_LE(heads[i]), GUINT32_TO_LE(lens[i]) };
    memcpy(&vq->used_ring[2 * slot], entry, sizeof entry);
  }
  vq->used_idx = (uint16_t)(vq->used_idx + n);
  vq->pushed = true;
  store16(&vq->used_hdr[1], vq->used_idx);   /* release: every entry is visible first */
}

static inline uint16_t *
avail_event_ptr(NbVirtqueue *vq)
{
  return (uint16_t *)(vq->used_ring + 2 * vq->size);
}

bool
nb_virtqueue_should_notify(NbVirtqueue *vq)
{
  if (!vq->ready || !vq->pushed)
    return false;   /* nothing new for the driver */
  vq->pushed = false;
  /* Our used->idx store must be visible before we read what the driver
   * asked for, or both sides could decide the other one will act. */
  full_barrier();
  if (!vq->event_idx)
    return !(load16(&vq->avail[0]) & NB_VIRTQ_AVAIL_F_NO_INTERRUPT);

  uint16_t old = vq->signalled_used;
  bool valid = vq->signalled_used_valid;
  uint16_t now = vq->used_idx;
  vq->signalled_used = now;
  vq->signalled_used_valid = true;
  if (!valid)
    return true;
  uint16_t used_event = load16(&vq->avail[2 + vq->size]);
  /* vring_need_event: did we pass used_event since the last decision? */
  return (uint16_t)(now - used_event - 1) < (uint16_t)(now - old);
}

void
nb_virtqueue_disable_notify(NbVirtqueue *vq)
{
  if (!vq->ready || vq->event_idx)
    return;   /* with EVENT_IDX a stale avail_event already quiets the driver */
  store16(&vq->used_hdr[0], load16(&vq->used_hdr[0]) | NB_VIRTQ_USED_F_NO_NOTIFY);
}

bool
nb_virtqueue_enable_notify(NbVirtqueue *vq)
{
  if (!vq->ready || vq->broken)
    return false;
  if (vq->event_idx)
    store16(avail_event_ptr(vq), vq->last_avail);
  else
    store16(&vq->used_hdr[0], load16(&vq->used_hdr[0]) & ~NB_VIRTQ_USED_F_NO_NOTIFY);
  /* The flag must reach the driver before we look again, or a buffer added
   * just now would wait for a notification that never comes. */
  full_barrier();
  return load16(&vq->avail[1]) != vq->last_avail;
}

bool
nb_virtqueue_has_work(NbVirtqueue *vq)
{
  return vq->ready && !vq->broken && load16(&vq->avail[1]) != vq->last_avail;
}

size_t
nb_virtq_iov_size(const struct iovec *iov, unsigned n)
{
  size_t total = 0;
  for (unsigned i = 0; i < n; i++)
    total += iov[i].iov_len;
  return total;
}

size_t
nb_virtq_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len)
{
  size_t done = 0;
  for (unsigned i = 0; i < n && done < len; i++) {
    if (offset >= iov[i].iov_len) {
      offset -= iov[i].iov_len;
      continue;
    }
    size_t chunk = MIN(iov[i].iov_len - offset, len - done);
    memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + offset, chunk);
    done += chunk;
    offset = 0;
  }
  return done;
}

size_t
nb_virtq_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf, size_t len)
{
  size_t done = 0;
  for (unsigned i = 0; i < n && done < len; i++) {
    if (offset >= iov[i].iov_len) {
      offset -= iov[i].iov_len;
      continue;
    }
    size_t chunk = MIN(iov[i].iov_len - offset, len - done);
    memcpy((uint8_t *)iov[i].iov_base + offset, (const uint8_t *)buf + done, chunk);
    done += chunk;
    offset = 0;
  }
  return done;
}

int
nb_virtq_iov_slice(const struct iovec *iov, unsigned n, size_t offset, size_t len, struct iovec *dst,
             unsigned dst_max)
{
  unsigned out = 0;
  for (unsigned i = 0; i < n && len > 0; i++) {
    if (offset >= iov[i].iov_len) {
      offset -= iov[i].iov_len;
      continue;
    }
    if (out == dst_max)
      return -1;
    size_t chunk = MIN(iov[i].iov_len - offset, len);
    dst[out++] = (struct iovec){ (uint8_t *)iov[i].iov_base + offset, chunk };
    len -= chunk;
    offset = 0;
  }
  return len == 0 ? (int)out : -1;
}
