/* qcow2 reference counts and cluster allocation.
 *
 * Ordering, so that a crash leaks clusters at most: a cluster is counted (and
 * the count synced) before anything points at it, and its count drops only
 * after the file no longer points at it has been synced. New clusters come
 * from a reserve counted in batches, which keeps the syncs off the write path;
 * a crash leaks what was left in the reserve. */
#include "block/qcow2-private.h"

#include <string.h>

static uint64_t
rb_entry_get(const NbQcow2 *s, const uint8_t *rb, uint64_t i)
{
  switch (s->refcount_order) {
  case 0: return (rb[i / 8] >> (i % 8)) & 1;
  case 1: return (rb[i / 4] >> (2 * (i % 4))) & 3;
  case 2: return (rb[i / 2] >> (4 * (i % 2))) & 15;
  case 3: return rb[i];
  case 4: return (uint64_t)rb[2 * i] << 8 | rb[2 * i + 1];
  case 5: {
    uint32_t v;
    memcpy(&v, rb + 4 * i, 4);
    return GUINT32_FROM_BE(v);
  }
  default: {
    uint64_t v;
    memcpy(&v, rb + 8 * i, 8);
    return GUINT64_FROM_BE(v);
  }
  }
}

/* Stores the value and returns which bytes changed. */
static void
rb_entry_set(const NbQcow2 *s, uint8_t *rb, uint64_t i, uint64_t value, size_t *start,
             size_t *len)
{
  switch (s->refcount_order) {
  case 0: case 1: case 2: {
    unsigned bits = 1u << s->refcount_order;
    unsigned per_byte = 8 / bits;
    unsigned shift = (unsigned)(i % per_byte) * bits;
    uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
    rb[i / per_byte] = (uint8_t)((rb[i / per_byte] & ~mask) | ((value << shift) & mask));
    *start = i / per_byte;
    *len = 1;
    return;
  }
  case 3: rb[i] = (uint8_t)value; *start = i; *len = 1; return;
  case 4:
    rb[2 * i] = (uint8_t)(value >> 8);
    rb[2 * i + 1] = (uint8_t)value;
    *start = 2 * i;
    *len = 2;
    return;
  case 5: {
    uint32_t v = GUINT32_TO_BE((uint32_t)value);
    memcpy(rb + 4 * i, &v, 4);
    *start = 4 * i;
    *len = 4;
    return;
  }
  default: {
    uint64_t v = GUINT64_TO_BE(value);
    memcpy(rb + 8 * i, &v, 8);
    *start = 8 * i;
    *len = 8;
    return;
  }
  }
}

static bool
check_refblock_offset(NbQcow2 *s, uint64_t offset, GError **error)
{
  if ((offset & (s->cluster_size - 1)) != 0 || offset == 0 ||
      offset > QCOW2_MAX_VIRTUAL_SIZE)
    return nb_qcow2_corrupt(s, error, "refcount block at 0x%" G_GINT64_MODIFIER
                            "x is not a valid cluster offset", offset);
  return true;
}

bool
nb_qcow2_refcount_get(NbQcow2 *s, uint64_t cluster, uint64_t *out, GError **error)
{
  uint64_t ti = cluster >> s->rb_bits;
  if (ti >= s->reftable_entries || s->reftable[ti] == 0) {
    *out = 0;
    return true;
  }
  uint64_t rb_offset = s->reftable[ti];
  if (!check_refblock_offset(s, rb_offset, error))
    return false;
  uint8_t *rb = nb_qcow2_cache_get(s, &s->rb_cache, rb_offset, error);
  if (rb == NULL)
    return false;
  *out = rb_entry_get(s, rb, cluster & ((UINT64_C(1) << s->rb_bits) - 1));
  return true;
}

static bool
write_u64_be(NbQcow2 *s, uint64_t offset, uint64_t value, GError **error)
{
  uint64_t be = GUINT64_TO_BE(value);
  return nb_block_pwrite_full(s->block->fd, &be, 8, offset, s->block->path, error);
}

/* Makes the refcount block covering cluster exist. New blocks (and a bigger
 * refcount table when needed) go in one area at the end of the file, laid out
 * so that they count themselves: the area is complete before the table or the
 * header points at it. */
static bool
ensure_refblock(NbQcow2 *s, uint64_t cluster, GError **error)
{
  uint64_t ti = cluster >> s->rb_bits;
  if (ti < s->reftable_entries && s->reftable[ti] != 0)
    return true;

  /* Counts far past the end come only from bad tables: no table growth for them. */
  uint64_t limit = (MAX(s->file_size, s->end_cluster << s->cluster_bits) + (UINT64_C(2) << 30)) >>
                   s->cluster_bits;
  if (cluster > limit)
    return nb_qcow2_corrupt(s, error, "cluster 0x%" G_GINT64_MODIFIER
                            "x lies far beyond the end of the file", cluster << s->cluster_bits);
  uint64_t start = s->end_cluster;
  uint64_t n_rb = 0, n_tab = 0, new_entries = s->reftable_entries;
  g_autoptr(GArray) need = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  for (int round = 0;; round++) {
    if (round > 16)
      return nb_qcow2_corrupt(s, error, "cannot lay out refcount blocks");
    uint64_t total = n_rb + n_tab;
    g_array_set_size(need, 0);
    uint64_t first = start >> s->rb_bits, last = (start + MAX(total, 1) - 1) >> s->rb_bits;
    bool have_ti = false;
    for (uint64_t j = first; j <= last; j++) {
      if (j >= s->reftable_entries || s->reftable[j] == 0) {
        g_array_append_val(need, j);
        if (j == ti)
          have_ti = true;
      }
    }
    if (!have_ti)
      g_array_append_val(need, ti);
    uint64_t max_index = MAX(ti, last);
    uint64_t want_entries = s->reftable_entries;
    if (max_index >= s->reftable_entries) {
      uint64_t per_cluster = s->cluster_size / 8;
      want_entries = MAX(max_index + 1, s->reftable_entries * 2);
      want_entries = (want_entries + per_cluster - 1) / per_cluster * per_cluster;
    }
    if (want_entries * 8 > QCOW2_MAX_REFTABLE_BYTES) {
      new_entries = want_entries;
      break;
    }
    uint64_t want_tab = want_entries > s->reftable_entries ? want_entries * 8 / s->cluster_size : 0;
    if (need->len == n_rb && want_tab == n_tab && round > 0) {
      new_entries = want_entries;
      break;
    }
    n_rb = need->len;
    n_tab = want_tab;
  }
  if (new_entries * 8 > QCOW2_MAX_REFTABLE_BYTES) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: the refcount table would exceed %u MiB: use larger clusters",
                s->block->path, QCOW2_MAX_REFTABLE_BYTES >> 20);
    return false;
  }
  uint64_t total = n_rb + n_tab;
  uint64_t area_end = start + total;

  /* New refcount blocks, each counting the area clusters in its range. */
  g_autofree uint8_t *buf = g_malloc(s->cluster_size);
  for (guint k = 0; k < need->len; k++) {
    uint64_t j = g_array_index(need, uint64_t, k);
    memset(buf, 0, s->cluster_size);
    uint64_t lo = j << s->rb_bits, hi = (j + 1) << s->rb_bits;
    for (uint64_t c = MAX(lo, start); c < MIN(hi, area_end); c++) {
      size_t a, b;
      rb_entry_set(s, buf, c - lo, 1, &a, &b);
    }
    if (!nb_block_pwrite_full(s->block->fd, buf, s->cluster_size, (start + k) << s->cluster_bits,
                              s->block->path, error))
      return false;
  }
  /* Area clusters inside refcount blocks that already exist. */
  for (uint64_t c = start; c < area_end; c++) {
    uint64_t j = c >> s->rb_bits;
    if (j < s->reftable_entries && s->reftable[j] != 0 &&
        !nb_qcow2_refcount_set(s, c, 1, error))
      return false;
  }
  s->end_cluster = area_end;

  if (n_tab == 0) {
    if (!nb_block_fdatasync(s->block->fd, s->block->path, error))
      return false;
    for (guint k = 0; k < need->len; k++) {
      uint64_t j = g_array_index(need, uint64_t, k);
      uint64_t rb = (start + k) << s->cluster_bits;
      if (!write_u64_be(s, s->reftable_offset + j * 8, rb, error))
        return false;
      s->reftable[j] = rb;
      nb_qcow2_meta_add(s, rb);
    }
    return true;
  }

  /* A bigger table: written whole, synced, then the header switches to it. */
  g_autofree uint64_t *table = g_new0(uint64_t, new_entries);
  memcpy(table, s->reftable, s->reftable_entries * 8);
  for (guint k = 0; k < need->len; k++)
    table[g_array_index(need, uint64_t, k)] = (start + k) << s->cluster_bits;
  for (guint k = 0; k < need->len; k++)
    nb_qcow2_meta_add(s, (start + k) << s->cluster_bits);
  g_autofree uint64_t *be = g_new(uint64_t, new_entries);
  for (uint64_t j = 0; j < new_entries; j++)
    be[j] = GUINT64_TO_BE(table[j]);
  uint64_t tab_offset = (start + n_rb) << s->cluster_bits;
  if (!nb_block_pwrite_full(s->block->fd, be, new_entries * 8, tab_offset, s->block->path, error) ||
      !nb_block_fdatasync(s->block->fd, s->block->path, error))
    return false;
  struct __attribute__((packed)) { uint64_t offset; uint32_t clusters; } hdr = {
    GUINT64_TO_BE(tab_offset), GUINT32_TO_BE((uint32_t)n_tab)
  };
  if (!nb_qcow2_header_write(s, QCOW2_HDR_REFTABLE, &hdr, sizeof hdr, error) ||
      !nb_block_fdatasync(s->block->fd, s->block->path, error))
    return false;
  uint64_t old_offset = s->reftable_offset, old_clusters = s->reftable_clusters;
  g_free(s->reftable);
  s->reftable = g_steal_pointer(&table);
  s->reftable_entries = new_entries;
  s->reftable_offset = tab_offset;
  s->reftable_clusters = (uint32_t)n_tab;
  /* Nothing points at the old table any more. */
  for (uint64_t c = 0; c < old_clusters; c++) {
    uint64_t cl = (old_offset >> s->cluster_bits) + c;
    if (!nb_qcow2_refcount_set(s, cl, 0, error))
      return false;
    s->free_hint = MIN(s->free_hint, cl);
  }
  return true;
}

bool
nb_qcow2_refcount_set(NbQcow2 *s, uint64_t cluster, uint64_t value, GError **error)
{
  if (value > s->refcount_max) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: a cluster would be shared %" G_GUINT64_FORMAT " times, more than "
                "%u-bit refcounts hold: delete some snapshots", s->block->path, value,
                1u << s->refcount_order);
    return false;
  }
  if (!ensure_refblock(s, cluster, error))
    return false;
  uint64_t rb_offset = s->reftable[cluster >> s->rb_bits];
  if (!check_refblock_offset(s, rb_offset, error))
    return false;
  uint8_t *rb = nb_qcow2_cache_get(s, &s->rb_cache, rb_offset, error);
  if (rb == NULL)
    return false;
  size_t start, len;
  rb_entry_set(s, rb, cluster & ((UINT64_C(1) << s->rb_bits) - 1), value, &start, &len);
  if (!nb_qcow2_cache_write(s, rb_offset, rb, start, len, error)) {
    nb_qcow2_cache_drop(&s->rb_cache, rb_offset);
    return false;
  }
  s->refcounts_unsynced = true;
  if (cluster >= s->end_cluster && value > 0)
    s->end_cluster = cluster + 1;
  return true;
}

/* Sets clusters [first, first+count) to 1 with one write per refcount
 * block: the batch allocations at the end of the file. */
static bool
set_one_range(NbQcow2 *s, uint64_t first, uint64_t count, GError **error)
{
  uint64_t per_block = UINT64_C(1) << s->rb_bits;
  while (count > 0) {
    if (!ensure_refblock(s, first, error))
      return false;
    uint64_t rb_offset = s->reftable[first >> s->rb_bits];
    if (!check_refblock_offset(s, rb_offset, error))
      return false;
    uint8_t *rb = nb_qcow2_cache_get(s, &s->rb_cache, rb_offset, error);
    if (rb == NULL)
      return false;
    uint64_t i = first & (per_block - 1);
    uint64_t n = MIN(count, per_block - i);
    size_t lo = SIZE_MAX, hi = 0;
    for (uint64_t k = 0; k < n; k++) {
      size_t start, len;
      rb_entry_set(s, rb, i + k, 1, &start, &len);
      lo = MIN(lo, start);
      hi = MAX(hi, start + len);
    }
    if (!nb_qcow2_cache_write(s, rb_offset, rb, lo, hi - lo, error)) {
      nb_qcow2_cache_drop(&s->rb_cache, rb_offset);
      return false;
    }
    s->refcounts_unsynced = true;
    if (first + n > s->end_cluster)
      s->end_cluster = first + n;
    first += n;
    count -= n;
  }
  return true;
}

bool
nb_qcow2_refcount_update_range(NbQcow2 *s, uint64_t offset, uint64_t len, int addend,
                               GError **error)
{
  if (len == 0)
    return true;
  uint64_t first = offset >> s->cluster_bits;
  uint64_t last = (offset + len - 1) >> s->cluster_bits;
  for (uint64_t c = first; c <= last; c++) {
    uint64_t v;
    if (!nb_qcow2_refcount_get(s, c, &v, error))
      return false;
    if (addend < 0 && v < (uint64_t)-addend)
      return nb_qcow2_corrupt(s, error, "cluster 0x%" G_GINT64_MODIFIER
                              "x is freed more often than it is counted",
                              c << s->cluster_bits);
    v += (uint64_t)(int64_t)addend;
    if (!nb_qcow2_refcount_set(s, c, v, error))
      return false;
    if (v == 0) {
      s->free_hint = MIN(s->free_hint, c);
      /* A freed table must not come back from the cache, nor guard its
       * cluster against reuse as data. */
      nb_qcow2_cache_drop(&s->l2_cache, c << s->cluster_bits);
      nb_qcow2_meta_remove(s, c << s->cluster_bits);
    }
  }
  return true;
}

/* Reserve entries: a cluster index, with this bit when the cluster comes
 * from past the end of everything ever written, so it reads as zeroes. */
#define RESERVED_FRESH (UINT64_C(1) << 63)

static bool
is_reserved(NbQcow2 *s, uint64_t c)
{
  for (guint i = 0; i < s->reserved->len; i++)
    if ((g_array_index(s->reserved, uint64_t, i) & ~RESERVED_FRESH) == c)
      return true;
  return false;
}

uint64_t
nb_qcow2_next_reserved(NbQcow2 *s)
{
  return s->reserved->len ? g_array_index(s->reserved, uint64_t, 0) & ~RESERVED_FRESH
                          : UINT64_MAX;
}

static bool
refill_reserve(NbQcow2 *s, GError **error)
{
  unsigned want = s->reserve_batch;
  unsigned got = 0;
  /* Holes left by freed clusters first, then the end of the file. */
  while (got < want && s->free_hint < s->end_cluster) {
    uint64_t c = s->free_hint++;
    uint64_t v;
    if (!nb_qcow2_refcount_get(s, c, &v, error))
      return false;
    if (v != 0 || c == 0 || is_reserved(s, c))
      continue;
    if (!nb_qcow2_refcount_set(s, c, 1, error))
      return false;
    g_array_append_val(s->reserved, c);
    got++;
  }
  if (got < want) {
    uint64_t first = s->end_cluster, n = want - got;
    s->end_cluster += n;
    if (!set_one_range(s, first, n, error))
      return false;
    for (uint64_t c = first; c < first + n; c++) {
      uint64_t entry = c | RESERVED_FRESH;
      g_array_append_val(s->reserved, entry);
    }
  }
  /* Sequential writers get bigger batches. No sync here: the counts are
   * synced before any table that points at these clusters is written. */
  if (s->reserve_batch < 1024)
    s->reserve_batch *= 2;
  return true;
}

bool
nb_qcow2_alloc_cluster(NbQcow2 *s, uint64_t *offset, bool *zeroed, GError **error)
{
  if (s->reserved->len == 0 && !refill_reserve(s, error))
    return false;
  uint64_t c = g_array_index(s->reserved, uint64_t, 0);
  g_array_remove_index(s->reserved, 0);
  if (zeroed)
    *zeroed = (c & RESERVED_FRESH) != 0;
  *offset = (c & ~RESERVED_FRESH) << s->cluster_bits;
  return true;
}

bool
nb_qcow2_alloc_contiguous(NbQcow2 *s, uint64_t n, uint64_t *offset, GError **error)
{
  uint64_t start = s->end_cluster;
  s->end_cluster += n;
  if (!set_one_range(s, start, n, error))
    return false;
  *offset = start << s->cluster_bits;
  return nb_block_fdatasync(s->block->fd, s->block->path, error);
}

void
nb_qcow2_free_later(NbQcow2 *s, uint64_t offset, uint64_t len)
{
  if (len == 0)
    return;
  uint64_t first = offset >> s->cluster_bits;
  uint64_t last = (offset + len - 1) >> s->cluster_bits;
  for (uint64_t c = first; c <= last; c++)
    g_array_append_val(s->pending_free, c);
}

bool
nb_qcow2_sync(NbQcow2 *s, GError **error)
{
  if (!nb_qcow2_cache_flush(s, &s->l2_cache, error) ||
      !nb_block_fdatasync(s->block->fd, s->block->path, error))
    return false;
  s->refcounts_unsynced = false;
  if (s->pending_free->len == 0)
    return true;
  g_autoptr(GArray) todo = g_steal_pointer(&s->pending_free);
  s->pending_free = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  for (guint i = 0; i < todo->len; i++) {
    uint64_t c = g_array_index(todo, uint64_t, i);
    if (!nb_qcow2_refcount_update_range(s, c << s->cluster_bits, 1, -1, error))
      return false;
  }
  return true;
}

bool
nb_qcow2_release_reserve(NbQcow2 *s, GError **error)
{
  while (s->reserved->len > 0) {
    uint64_t c = g_array_index(s->reserved, uint64_t, s->reserved->len - 1) & ~RESERVED_FRESH;
    if (!nb_qcow2_refcount_set(s, c, 0, error))
      return false;
    g_array_set_size(s->reserved, s->reserved->len - 1);
    s->free_hint = MIN(s->free_hint, c);
  }
  s->reserve_batch = 16;
  return true;
}

void
nb_qcow2_compressed_range(const NbQcow2 *s, uint64_t entry, uint64_t *offset, uint64_t *len)
{
  unsigned x = 62 - (s->cluster_bits - 8);
  uint64_t host = entry & ((UINT64_C(1) << x) - 1);
  uint64_t sectors = ((entry >> x) & ((UINT64_C(1) << (s->cluster_bits - 8)) - 1)) + 1;
  *offset = host;
  *len = sectors * 512 - (host & 511);
}
