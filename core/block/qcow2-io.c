/* qcow2 reads, writes, discards, zeroing, resize and flush.
 *
 * A write to a cluster that is not exclusively ours (unallocated, zero,
 * compressed, shared with a snapshot) goes to a new cluster: data first, then
 * the L2 entry, then the L1 entry if the L2 table is new; the old cluster is
 * released only after the next sync. One mutex per image serialises it all. */
#include "block/qcow2-private.h"

#include <string.h>

#define MAX_RUN_BYTES (UINT64_C(8) << 20)
#define PENDING_FREE_LIMIT 4096

static bool
io_vec(NbQcow2 *s, const struct iovec *iov, int iovcnt, size_t skip, size_t len,
       uint64_t host, bool write, GError **error)
{
  int cnt;
  g_autofree struct iovec *v = nb_iov_slice(iov, iovcnt, skip, len, &cnt);
  return nb_block_fd_rw(s->block->fd, s->block->path, v, cnt, host, write, error);
}

static bool
read_backing(NbQcow2 *s, const struct iovec *iov, int iovcnt, size_t skip, size_t len,
             uint64_t pos, GError **error)
{
  uint64_t bsize = s->backing ? nb_block_size(s->backing) : 0;
  size_t from_backing = pos >= bsize ? 0 : (size_t)MIN((uint64_t)len, bsize - pos);
  if (from_backing > 0) {
    int cnt;
    g_autofree struct iovec *v = nb_iov_slice(iov, iovcnt, skip, from_backing, &cnt);
    if (!nb_block_preadv(s->backing, v, cnt, pos, error))
      return false;
  }
  nb_iov_memset(iov, iovcnt, skip + from_backing, 0, len - from_backing);
  return true;
}

static bool
qcow2_preadv(NbBlock *block, const struct iovec *iov, int iovcnt, uint64_t offset,
             GError **error)
{
  NbQcow2 *s = block->opaque;
  size_t total = nb_iov_size(iov, iovcnt);
  bool ok = true;
  g_mutex_lock(&s->lock);
  for (size_t done = 0; done < total && ok;) {
    uint64_t pos = offset + done;
    uint64_t vc = pos >> s->cluster_bits;
    size_t in_off = (size_t)(pos & (s->cluster_size - 1));
    size_t n = (size_t)MIN(s->cluster_size - in_off, total - done);
    uint64_t e;
    if (!(ok = nb_qcow2_get_entry(s, vc, &e, error)))
      break;
    NbQcow2ClusterType type = nb_qcow2_entry_type(e);
    uint64_t host = e & QCOW2_OFFSET_MASK;
    if (type == NB_QCOW2_NORMAL && !(ok = nb_qcow2_check_data_offset(s, host, error)))
      break;
    if (type == NB_QCOW2_COMPRESSED) {
      if (!(ok = nb_qcow2_read_compressed(s, e, error)))
        break;
      nb_iov_from_buf(iov, iovcnt, done, s->decompressed + in_off, n);
      done += n;
      continue;
    }
    /* Extend over following clusters of the same kind (contiguous on the host
     * for data) so one system call serves the run. */
    while (done + n < total && n < MAX_RUN_BYTES) {
      uint64_t e2;
      if (!(ok = nb_qcow2_get_entry(s, vc + 1, &e2, error)))
        break;
      NbQcow2ClusterType t2 = nb_qcow2_entry_type(e2);
      if (t2 != type)
        break;
      if (type == NB_QCOW2_NORMAL &&
          (e2 & QCOW2_OFFSET_MASK) != host + ((vc + 1 - (pos >> s->cluster_bits)) << s->cluster_bits))
        break;
      vc++;
      n += (size_t)MIN(s->cluster_size, total - done - n);
    }
    if (!ok)
      break;
    switch (type) {
    case NB_QCOW2_NORMAL:
      ok = io_vec(s, iov, iovcnt, done, n, host + in_off, false, error);
      break;
    case NB_QCOW2_ZERO:
      nb_iov_memset(iov, iovcnt, done, 0, n);
      break;
    case NB_QCOW2_UNALLOCATED:
      ok = read_backing(s, iov, iovcnt, done, n, pos, error);
      break;
    case NB_QCOW2_COMPRESSED:
      break;
    }
    done += n;
  }
  g_mutex_unlock(&s->lock);
  return ok;
}

/* An entry about to be replaced or written through must point at plausible
 * clusters: else freeing it would drop counts of metadata. */
static bool
validate_entry(NbQcow2 *s, uint64_t e, GError **error)
{
  if (nb_qcow2_entry_type(e) == NB_QCOW2_COMPRESSED) {
    uint64_t off, len;
    nb_qcow2_compressed_range(s, e, &off, &len);
    if (off < s->cluster_size || off + len > MAX(s->file_size, s->end_cluster << s->cluster_bits))
      return nb_qcow2_corrupt(s, error, "compressed cluster at 0x%" G_GINT64_MODIFIER
                              "x lies outside the file", off);
    return true;
  }
  uint64_t host = e & QCOW2_OFFSET_MASK;
  return host == 0 || nb_qcow2_check_data_offset(s, host, error);
}

/* Drops what an L2 entry held, after the next sync. */
static void
release_entry(NbQcow2 *s, uint64_t e, uint64_t keep_host)
{
  NbQcow2ClusterType type = nb_qcow2_entry_type(e);
  if (type == NB_QCOW2_COMPRESSED) {
    uint64_t off, len;
    nb_qcow2_compressed_range(s, e, &off, &len);
    nb_qcow2_free_later(s, off, len);
    s->decompressed_entry = 0;
    return;
  }
  uint64_t host = e & QCOW2_OFFSET_MASK;
  if (host != 0 && host != keep_host)
    nb_qcow2_free_later(s, host, 1);
}

/* Makes the L2 table of a guest cluster ours alone (allocating or copying
 * it) and returns its host offset. */
static bool
writable_l2(NbQcow2 *s, uint64_t vc, uint64_t *l2_out, GError **error)
{
  uint64_t l1i = vc >> s->l2_bits;
  if (l1i >= s->l1_size)
    return nb_qcow2_corrupt(s, error, "guest cluster %" G_GUINT64_FORMAT
                            " is beyond the L1 table", vc);
  uint64_t l1e = s->l1[l1i];
  uint64_t old = l1e & QCOW2_OFFSET_MASK;
  if (old != 0 && (l1e & QCOW2_OFLAG_COPIED)) {
    *l2_out = old;
    return nb_qcow2_check_l2_offset(s, old, error);
  }
  g_autofree uint8_t *table = g_malloc0(s->cluster_size);
  if (old != 0) {
    if (!nb_qcow2_check_l2_offset(s, old, error))
      return false;
    uint8_t *cached = nb_qcow2_cache_get(s, &s->l2_cache, old, error);
    if (cached == NULL)
      return false;
    memcpy(table, cached, s->cluster_size);
  }
  uint64_t fresh;
  if (!nb_qcow2_alloc_cluster(s, &fresh, NULL, error))
    return false;
  /* The table and the counts it relies on reach the disk before L1 points at it. */
  if (!nb_block_pwrite_full(s->block->fd, table, s->cluster_size, fresh, s->block->path, error) ||
      !nb_block_fdatasync(s->block->fd, s->block->path, error))
    return false;
  s->refcounts_unsynced = false;
  if (!nb_qcow2_cache_put(s, &s->l2_cache, fresh, table, error))
    return false;
  s->l1[l1i] = fresh | QCOW2_OFLAG_COPIED;
  nb_qcow2_meta_add(s, fresh);
  if (!nb_qcow2_write_l1_entry(s, l1i, error))
    return false;
  if (old != 0)
    nb_qcow2_free_later(s, old, 1);
  *l2_out = fresh;
  return true;
}

static bool
set_entry(NbQcow2 *s, uint64_t vc, uint64_t entry, GError **error)
{
  uint64_t l2 = 0;
  if (!writable_l2(s, vc, &l2, error))
    return false;
  uint8_t *table = nb_qcow2_cache_get(s, &s->l2_cache, l2, error);
  if (table == NULL)
    return false;
  size_t at = (size_t)(vc & ((UINT64_C(1) << s->l2_bits) - 1)) * 8;
  uint64_t be;
  memcpy(&be, table + at, 8);
  uint64_t old = GUINT64_FROM_BE(be);
  be = GUINT64_TO_BE(entry);
  memcpy(table + at, &be, 8);
  nb_qcow2_cache_mark_dirty(&s->l2_cache, l2);
  release_entry(s, old, entry & QCOW2_OFFSET_MASK);
  return true;
}

/* What a cluster holds now, for a partial write to go to a new cluster. */
static bool
cluster_content(NbQcow2 *s, uint64_t vc, uint64_t e, uint8_t *buf, GError **error)
{
  struct iovec v = { buf, s->cluster_size };
  switch (nb_qcow2_entry_type(e)) {
  case NB_QCOW2_NORMAL: {
    uint64_t host = e & QCOW2_OFFSET_MASK;
    if (!nb_qcow2_check_data_offset(s, host, error))
      return false;
    return nb_block_pread_full(s->block->fd, buf, s->cluster_size, host, s->block->path, error);
  }
  case NB_QCOW2_ZERO:
    memset(buf, 0, s->cluster_size);
    return true;
  case NB_QCOW2_COMPRESSED:
    if (!nb_qcow2_read_compressed(s, e, error))
      return false;
    memcpy(buf, s->decompressed, s->cluster_size);
    return true;
  case NB_QCOW2_UNALLOCATED:
    return read_backing(s, &v, 1, 0, s->cluster_size, vc << s->cluster_bits, error);
  }
  return false;
}

static bool
write_locked(NbQcow2 *s, const struct iovec *iov, int iovcnt, uint64_t offset, GError **error)
{
  size_t total = nb_iov_size(iov, iovcnt);
  for (size_t done = 0; done < total;) {
    uint64_t pos = offset + done;
    uint64_t vc = pos >> s->cluster_bits;
    size_t in_off = (size_t)(pos & (s->cluster_size - 1));
    size_t n = (size_t)MIN(s->cluster_size - in_off, total - done);
    uint64_t e;
    if (!nb_qcow2_get_entry(s, vc, &e, error) || !validate_entry(s, e, error))
      return false;
    uint64_t host = e & QCOW2_OFFSET_MASK;

    if (nb_qcow2_entry_type(e) == NB_QCOW2_NORMAL && (e & QCOW2_OFLAG_COPIED)) {
      if (!nb_qcow2_check_data_offset(s, host, error))
        return false;
      /* Ours alone: write in place, over a run contiguous on the host. */
      while (done + n < total && n < MAX_RUN_BYTES) {
        uint64_t e2;
        if (!nb_qcow2_get_entry(s, vc + 1, &e2, error))
          return false;
        if (nb_qcow2_entry_type(e2) != NB_QCOW2_NORMAL || !(e2 & QCOW2_OFLAG_COPIED) ||
            (e2 & QCOW2_OFFSET_MASK) !=
                host + ((vc + 1 - (pos >> s->cluster_bits)) << s->cluster_bits))
          break;
        vc++;
        n += (size_t)MIN(s->cluster_size, total - done - n);
      }
      if (!io_vec(s, iov, iovcnt, done, n, host + in_off, true, error))
        return false;
      done += n;
      continue;
    }

    uint64_t fresh;
    if (in_off == 0 && n == s->cluster_size) {
      /* Whole clusters: allocate a run that is contiguous on the host, write
       * the data in one go, then point the L2 entries at it. */
      if (!nb_qcow2_alloc_cluster(s, &fresh, NULL, error))
        return false;
      uint64_t count = 1;
      while (done + count * s->cluster_size + s->cluster_size <= total &&
             count * s->cluster_size < MAX_RUN_BYTES &&
             nb_qcow2_next_reserved(s) == (fresh >> s->cluster_bits) + count) {
        uint64_t e2;
        if (!nb_qcow2_get_entry(s, vc + count, &e2, error) || !validate_entry(s, e2, error))
          return false;
        if (nb_qcow2_entry_type(e2) == NB_QCOW2_NORMAL && (e2 & QCOW2_OFLAG_COPIED))
          break;
        uint64_t next;
        nb_qcow2_alloc_cluster(s, &next, NULL, NULL);
        count++;
      }
      size_t bytes = (size_t)(count * s->cluster_size);
      if (!io_vec(s, iov, iovcnt, done, bytes, fresh, true, error))
        return false;
      for (uint64_t k = 0; k < count; k++) {
        if (!set_entry(s, vc + k, (fresh + (k << s->cluster_bits)) | QCOW2_OFLAG_COPIED, error))
          return false;
      }
      done += bytes;
    } else {
      bool zeroed;
      if (!nb_qcow2_alloc_cluster(s, &fresh, &zeroed, error))
        return false;
      NbQcow2ClusterType type = nb_qcow2_entry_type(e);
      bool was_zero = type == NB_QCOW2_ZERO ||
                      (type == NB_QCOW2_UNALLOCATED &&
                       (s->backing == NULL || pos - in_off >= nb_block_size(s->backing)));
      if (zeroed && was_zero) {
        /* A never-written cluster already reads as zeroes around the data. */
        if (!io_vec(s, iov, iovcnt, done, n, fresh + in_off, true, error))
          return false;
      } else {
        if (!cluster_content(s, vc, e, s->tmp, error))
          return false;
        nb_iov_to_buf(iov, iovcnt, done, s->tmp + in_off, n);
        if (!nb_block_pwrite_full(s->block->fd, s->tmp, s->cluster_size, fresh, s->block->path,
                                  error))
          return false;
      }
      if (!set_entry(s, vc, fresh | QCOW2_OFLAG_COPIED, error))
        return false;
      done += n;
    }
  }
  if (s->pending_free->len > PENDING_FREE_LIMIT)
    return nb_qcow2_sync(s, error);
  return true;
}

static bool
qcow2_pwritev(NbBlock *block, const struct iovec *iov, int iovcnt, uint64_t offset,
              GError **error)
{
  NbQcow2 *s = block->opaque;
  g_mutex_lock(&s->lock);
  bool ok = write_locked(s, iov, iovcnt, offset, error);
  g_mutex_unlock(&s->lock);
  return ok;
}

static bool
write_zero_bytes(NbQcow2 *s, uint64_t pos, size_t len, GError **error)
{
  g_autofree uint8_t *zero = g_malloc0(len);
  struct iovec v = { zero, len };
  return write_locked(s, &v, 1, pos, error);
}

/* Makes [offset, offset+len) read as zeroes, dropping whole clusters: as
 * zero clusters (version 3) for write-zeroes, or unallocated for discard
 * where nothing shows through from a backing file. */
static bool
zero_locked(NbQcow2 *s, uint64_t offset, uint64_t len, bool discard, GError **error)
{
  for (uint64_t done = 0; done < len;) {
    uint64_t pos = offset + done;
    uint64_t vc = pos >> s->cluster_bits;
    size_t in_off = (size_t)(pos & (s->cluster_size - 1));
    size_t n = (size_t)MIN(s->cluster_size - in_off, len - done);
    uint64_t e;
    if (!nb_qcow2_get_entry(s, vc, &e, error) || !validate_entry(s, e, error))
      return false;
    NbQcow2ClusterType type = nb_qcow2_entry_type(e);
    bool reads_zero = (type == NB_QCOW2_ZERO && (e & QCOW2_OFFSET_MASK) == 0) ||
                      (type == NB_QCOW2_UNALLOCATED &&
                       (s->backing == NULL || pos >= nb_block_size(s->backing)));
    if (!reads_zero) {
      if (n < s->cluster_size || (s->version < 3 && s->backing != NULL)) {
        if (!write_zero_bytes(s, pos, n, error))
          return false;
      } else {
        uint64_t entry = (s->backing != NULL || (!discard && s->version >= 3)) ? QCOW2_OFLAG_ZERO : 0;
        if (!set_entry(s, vc, entry, error))
          return false;
      }
    }
    done += n;
  }
  if (s->pending_free->len > PENDING_FREE_LIMIT)
    return nb_qcow2_sync(s, error);
  return true;
}

static bool
qcow2_discard(NbBlock *block, uint64_t offset, uint64_t len, GError **error)
{
  NbQcow2 *s = block->opaque;
  g_mutex_lock(&s->lock);
  bool ok = zero_locked(s, offset, len, true, error);
  g_mutex_unlock(&s->lock);
  return ok;
}

static bool
qcow2_write_zeroes(NbBlock *block, uint64_t offset, uint64_t len, GError **error)
{
  NbQcow2 *s = block->opaque;
  g_mutex_lock(&s->lock);
  bool ok = zero_locked(s, offset, len, false, error);
  g_mutex_unlock(&s->lock);
  return ok;
}

static bool
qcow2_flush(NbBlock *block, GError **error)
{
  NbQcow2 *s = block->opaque;
  g_mutex_lock(&s->lock);
  bool ok = nb_qcow2_sync(s, error);
  g_mutex_unlock(&s->lock);
  return ok;
}

bool
nb_qcow2_grow_l1(NbQcow2 *s, uint32_t need, GError **error)
{
  NbBlock *block = s->block;
  uint64_t bytes = (uint64_t)need * 8;
  uint64_t clusters = nb_qcow2_size_to_clusters(s, bytes);
  uint64_t new_offset;
  if (!nb_qcow2_alloc_contiguous(s, clusters, &new_offset, error))
    return false;
  g_autofree uint64_t *table = g_new0(uint64_t, clusters * s->cluster_size / 8);
  for (uint32_t i = 0; i < s->l1_size; i++)
    table[i] = GUINT64_TO_BE(s->l1[i]);
  if (!nb_block_pwrite_full(block->fd, table, clusters * s->cluster_size, new_offset,
                            block->path, error) ||
      !nb_block_fdatasync(block->fd, block->path, error))
    return false;
  struct __attribute__((packed)) { uint32_t size; uint64_t offset; } hdr = {
    GUINT32_TO_BE(need), GUINT64_TO_BE(new_offset)
  };
  if (!nb_qcow2_header_write(s, QCOW2_HDR_L1_SIZE, &hdr, sizeof hdr, error) ||
      !nb_block_fdatasync(block->fd, block->path, error))
    return false;
  uint64_t old_offset = s->l1_offset, old_bytes = (uint64_t)s->l1_size * 8;
  uint64_t *grown = g_new0(uint64_t, need);
  memcpy(grown, s->l1, old_bytes);
  g_free(s->l1);
  s->l1 = grown;
  s->l1_size = need;
  s->l1_offset = new_offset;
  if (old_bytes > 0 && !nb_qcow2_refcount_update_range(s, old_offset, old_bytes, -1, error))
    return false;
  return true;
}

static bool
resize_locked(NbQcow2 *s, uint64_t new_size, GError **error)
{
  NbBlock *block = s->block;
  if (new_size > QCOW2_MAX_VIRTUAL_SIZE) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_OUT_OF_RANGE,
                "%s: %" G_GUINT64_FORMAT " bytes is larger than qcow2 allows", block->path,
                new_size);
    return false;
  }
  uint64_t l2_span = s->cluster_size << s->l2_bits;
  uint64_t need = (new_size + l2_span - 1) / l2_span;
  if (need * 8 > QCOW2_MAX_L1_BYTES) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: %" G_GUINT64_FORMAT " bytes needs an L1 table larger than %u MiB: "
                "use larger clusters", block->path, new_size, QCOW2_MAX_L1_BYTES >> 20);
    return false;
  }
  if (!nb_qcow2_sync(s, error))
    return false;
  if (need > s->l1_size && !nb_qcow2_grow_l1(s, (uint32_t)need, error))
    return false;
  uint64_t be = GUINT64_TO_BE(new_size);
  if (!nb_qcow2_header_write(s, QCOW2_HDR_SIZE, &be, 8, error))
    return false;
  uint64_t old_size = block->size;
  block->size = new_size;
  /* A backing file larger than the old size must not show through the new
   * space: that part of the disk starts as zeroes. */
  if (s->backing != NULL && nb_block_size(s->backing) > old_size) {
    uint64_t end = MIN(new_size, nb_block_size(s->backing));
    if (!zero_locked(s, old_size, end - old_size, false, error))
      return false;
  }
  return nb_qcow2_sync(s, error);
}

static bool
qcow2_resize(NbBlock *block, uint64_t new_size, GError **error)
{
  NbQcow2 *s = block->opaque;
  g_mutex_lock(&s->lock);
  bool ok = resize_locked(s, new_size, error);
  g_mutex_unlock(&s->lock);
  return ok;
}

static bool
qcow2_is_allocated(NbBlock *block, uint64_t offset, uint64_t len, uint64_t *pnum)
{
  NbQcow2 *s = block->opaque;
  g_mutex_lock(&s->lock);
  bool answer = true;
  uint64_t done = 0;
  while (done < len) {
    uint64_t pos = offset + done;
    uint64_t n = MIN(s->cluster_size - (pos & (s->cluster_size - 1)), len - done);
    uint64_t e;
    bool here;
    if (!nb_qcow2_get_entry(s, pos >> s->cluster_bits, &e, NULL)) {
      here = true;
    } else {
      switch (nb_qcow2_entry_type(e)) {
      case NB_QCOW2_ZERO: here = false; break;
      case NB_QCOW2_UNALLOCATED:
        if (s->backing == NULL || pos >= nb_block_size(s->backing)) {
          here = false;
        } else {
          uint64_t bn;
          here = nb_block_is_allocated(s->backing, pos, n, &bn);
          n = MAX(bn, 1);
        }
        break;
      default: here = true; break;
      }
    }
    if (done == 0)
      answer = here;
    else if (here != answer)
      break;
    done += n;
  }
  g_mutex_unlock(&s->lock);
  *pnum = MIN(done, len);
  return answer;
}

const NbBlockDriver nb_qcow2_driver = {
  .name = "qcow2",
  .preadv = qcow2_preadv,
  .pwritev = qcow2_pwritev,
  .flush = qcow2_flush,
  .discard = qcow2_discard,
  .write_zeroes = qcow2_write_zeroes,
  .resize = qcow2_resize,
  .is_allocated = qcow2_is_allocated,
  .close = nb_qcow2_close,
};
