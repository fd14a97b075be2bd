/* qcow2 guest-to-host mapping: L1/L2 lookups, offset checks, compressed
 * clusters and whole-tree refcount walks (for snapshots). */
#include "block/qcow2-private.h"

#include <string.h>

NbQcow2ClusterType
nb_qcow2_entry_type(uint64_t entry)
{
  if (entry & QCOW2_OFLAG_COMPRESSED)
    return NB_QCOW2_COMPRESSED;
  if (entry & QCOW2_OFLAG_ZERO)
    return NB_QCOW2_ZERO;
  if ((entry & QCOW2_OFFSET_MASK) == 0)
    return NB_QCOW2_UNALLOCATED;
  return NB_QCOW2_NORMAL;
}

static uint64_t
image_limit(NbQcow2 *s)
{
  return MAX(s->file_size, s->end_cluster << s->cluster_bits);
}

static bool
hits_fixed_metadata(NbQcow2 *s, uint64_t offset)
{
  uint64_t cs = s->cluster_size;
  if (offset < cs)
    return true;
  if (offset + cs > s->l1_offset && offset < s->l1_offset + (uint64_t)s->l1_size * 8)
    return true;
  if (offset + cs > s->reftable_offset &&
      offset < s->reftable_offset + (uint64_t)s->reftable_clusters * cs)
    return true;
  if (s->snapshots_bytes > 0 && offset + cs > s->snapshots_offset &&
      offset < s->snapshots_offset + s->snapshots_bytes)
    return true;
  return false;
}

bool
nb_qcow2_check_l2_offset(NbQcow2 *s, uint64_t offset, GError **error)
{
  if ((offset & (s->cluster_size - 1)) != 0)
    return nb_qcow2_corrupt(s, error, "L2 table at 0x%" G_GINT64_MODIFIER
                            "x is not aligned to a cluster", offset);
  if (offset >= image_limit(s))
    return nb_qcow2_corrupt(s, error, "L2 table at 0x%" G_GINT64_MODIFIER
                            "x lies beyond the end of the file", offset);
  if (hits_fixed_metadata(s, offset))
    return nb_qcow2_corrupt(s, error, "L2 table at 0x%" G_GINT64_MODIFIER
                            "x overlaps the header or another table", offset);
  return true;
}

bool
nb_qcow2_check_data_offset(NbQcow2 *s, uint64_t offset, GError **error)
{
  if ((offset & (s->cluster_size - 1)) != 0)
    return nb_qcow2_corrupt(s, error, "data cluster at 0x%" G_GINT64_MODIFIER
                            "x is not aligned to a cluster", offset);
  /* Preallocated images may point a little past the end; not terabytes. */
  if (offset >= image_limit(s) + (UINT64_C(1) << 30))
    return nb_qcow2_corrupt(s, error, "data cluster at 0x%" G_GINT64_MODIFIER
                            "x lies far beyond the end of the file", offset);
  if (hits_fixed_metadata(s, offset) || g_hash_table_contains(s->meta, &offset))
    return nb_qcow2_corrupt(s, error, "data cluster at 0x%" G_GINT64_MODIFIER
                            "x overlaps the header or another table", offset);
  return true;
}

bool
nb_qcow2_get_entry(NbQcow2 *s, uint64_t guest_cluster, uint64_t *entry, GError **error)
{
  uint64_t l1i = guest_cluster >> s->l2_bits;
  *entry = 0;
  if (l1i >= s->l1_size)
    return true;
  uint64_t l2 = s->l1[l1i] & QCOW2_OFFSET_MASK;
  if (l2 == 0)
    return true;
  if (!nb_qcow2_check_l2_offset(s, l2, error))
    return false;
  uint8_t *table = nb_qcow2_cache_get(s, &s->l2_cache, l2, error);
  if (table == NULL)
    return false;
  uint64_t be;
  memcpy(&be, table + (guest_cluster & ((UINT64_C(1) << s->l2_bits) - 1)) * 8, 8);
  *entry = GUINT64_FROM_BE(be);
  return true;
}

bool
nb_qcow2_read_compressed(NbQcow2 *s, uint64_t entry, GError **error)
{
  if (entry == s->decompressed_entry && entry != 0)
    return true;
  uint64_t offset, len;
  nb_qcow2_compressed_range(s, entry, &offset, &len);
  if (offset < s->cluster_size || offset >= image_limit(s))
    return nb_qcow2_corrupt(s, error, "compressed cluster at 0x%" G_GINT64_MODIFIER
                            "x lies outside the file", offset);
  if (!nb_block_pread_full(s->block->fd, s->cbuf, len, offset, s->block->path, error))
    return false;
  s->decompressed_entry = 0;
  inflateReset(&s->inflater);
  s->inflater.next_in = s->cbuf;
  s->inflater.avail_in = (uInt)len;
  s->inflater.next_out = s->decompressed;
  s->inflater.avail_out = (uInt)s->cluster_size;
  int ret = inflate(&s->inflater, Z_FINISH);
  if (!((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && s->inflater.avail_out == 0))
    return nb_qcow2_corrupt(s, error, "compressed cluster at 0x%" G_GINT64_MODIFIER
                            "x does not decompress to a full cluster", offset);
  s->decompressed_entry = entry;
  return true;
}

bool
nb_qcow2_update_tree_refcounts(NbQcow2 *s, uint64_t *l1, uint32_t l1_size, int addend,
                               bool active, GError **error)
{
  g_autofree uint8_t *table = g_malloc(s->cluster_size);
  uint64_t n = UINT64_C(1) << s->l2_bits;
  for (uint32_t i = 0; i < l1_size; i++) {
    uint64_t l2 = l1[i] & QCOW2_OFFSET_MASK;
    if (l2 == 0)
      continue;
    if (!nb_qcow2_check_l2_offset(s, l2, error))
      return false;
    uint8_t *cached = nb_qcow2_cache_get(s, &s->l2_cache, l2, error);
    if (cached == NULL)
      return false;
    memcpy(table, cached, s->cluster_size);
    bool changed = false;
    for (uint64_t j = 0; j < n; j++) {
      uint64_t be, e;
      memcpy(&be, table + j * 8, 8);
      e = GUINT64_FROM_BE(be);
      NbQcow2ClusterType type = nb_qcow2_entry_type(e);
      if (type == NB_QCOW2_COMPRESSED) {
        uint64_t off, len;
        nb_qcow2_compressed_range(s, e, &off, &len);
        if (off < s->cluster_size || off + len > image_limit(s))
          return nb_qcow2_corrupt(s, error, "compressed cluster at 0x%" G_GINT64_MODIFIER
                                  "x lies outside the file", off);
        if (addend != 0 && !nb_qcow2_refcount_update_range(s, off, len, addend, error))
          return false;
        continue;
      }
      uint64_t host = e & QCOW2_OFFSET_MASK;
      if (host == 0)
        continue;
      if (!nb_qcow2_check_data_offset(s, host, error))
        return false;
      if (addend != 0 && !nb_qcow2_refcount_update_range(s, host, 1, addend, error))
        return false;
      if (active) {
        uint64_t rc;
        if (!nb_qcow2_refcount_get(s, host >> s->cluster_bits, &rc, error))
          return false;
        uint64_t want = rc == 1 ? (e | QCOW2_OFLAG_COPIED) : (e & ~QCOW2_OFLAG_COPIED);
        if (want != e) {
          be = GUINT64_TO_BE(want);
          memcpy(table + j * 8, &be, 8);
          changed = true;
        }
      }
    }
    if (changed) {
      if (!nb_block_pwrite_full(s->block->fd, table, s->cluster_size, l2, s->block->path, error))
        return false;
      if (!nb_qcow2_cache_put(s, &s->l2_cache, l2, table, error))
        return false;
    }
    if (addend != 0 && !nb_qcow2_refcount_update_range(s, l2, 1, addend, error))
      return false;
    if (active) {
      uint64_t rc;
      if (!nb_qcow2_refcount_get(s, l2 >> s->cluster_bits, &rc, error))
        return false;
      l1[i] = rc == 1 ? (l1[i] | QCOW2_OFLAG_COPIED) : (l1[i] & ~QCOW2_OFLAG_COPIED);
    }
  }
  return true;
}
