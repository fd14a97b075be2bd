/* qcow2 consistency check: count every reference the tables make and compare
 * with the stored refcounts, the way `qemu-img check` does. */
#include "block/qcow2-private.h"

#include <string.h>
#include <sys/stat.h>

typedef struct {
  NbQcow2 *s;
  uint32_t *refs;
  uint64_t n;
  NbQcow2CheckResult *res;
} Walk;

static void
problem(Walk *w, bool corrupt, const char *format, ...) G_GNUC_PRINTF(3, 4);

static void
problem(Walk *w, bool corrupt, const char *format, ...)
{
  va_list ap;
  va_start(ap, format);
  char *msg = g_strdup_vprintf(format, ap);
  va_end(ap);
  if (corrupt)
    w->res->corruptions++;
  if (w->res->messages->len < 1000)
    g_ptr_array_add(w->res->messages, msg);
  else
    g_free(msg);
}

static void
count(Walk *w, const char *what, uint64_t offset, uint64_t len)
{
  if (len == 0)
    return;
  uint64_t first = offset >> w->s->cluster_bits;
  uint64_t last = (offset + len - 1) >> w->s->cluster_bits;
  for (uint64_t c = first; c <= last; c++) {
    if (c >= w->n) {
      problem(w, true, "%s at 0x%" G_GINT64_MODIFIER "x lies beyond the end of the file",
              what, c << w->s->cluster_bits);
      return;
    }
    if (w->refs[c] < UINT32_MAX)
      w->refs[c]++;
  }
}

static bool
walk_tree(Walk *w, const uint64_t *l1, uint32_t l1_size, bool active, GError **error)
{
  NbQcow2 *s = w->s;
  g_autofree uint64_t *table = g_malloc(s->cluster_size);
  uint64_t n = UINT64_C(1) << s->l2_bits;
  for (uint32_t i = 0; i < l1_size; i++) {
    uint64_t l2 = l1[i] & QCOW2_OFFSET_MASK;
    if (l2 == 0)
      continue;
    if ((l2 & (s->cluster_size - 1)) != 0 || (l2 >> s->cluster_bits) >= w->n) {
      problem(w, true, "L1 entry %u points at an invalid L2 table 0x%" G_GINT64_MODIFIER "x",
              i, l2);
      continue;
    }
    count(w, "L2 table", l2, s->cluster_size);
    if (!nb_block_pread_full(s->block->fd, table, s->cluster_size, l2, s->block->path, error))
      return false;
    for (uint64_t j = 0; j < n; j++) {
      uint64_t e = GUINT64_FROM_BE(table[j]);
      NbQcow2ClusterType type = nb_qcow2_entry_type(e);
      if (type == NB_QCOW2_COMPRESSED) {
        uint64_t off, len;
        nb_qcow2_compressed_range(s, e, &off, &len);
        count(w, "compressed cluster", off, len);
        if (active)
          w->res->allocated_clusters++;
        continue;
      }
      uint64_t host = e & QCOW2_OFFSET_MASK;
      if (host == 0)
        continue;
      if ((host & (s->cluster_size - 1)) != 0) {
        problem(w, true, "L2 entry %" G_GUINT64_FORMAT " of table 0x%" G_GINT64_MODIFIER
                "x is not aligned to a cluster", j, l2);
        continue;
      }
      count(w, "data cluster", host, s->cluster_size);
      if (active && type == NB_QCOW2_NORMAL)
        w->res->allocated_clusters++;
    }
  }
  return true;
}

/* COPIED must be set exactly where the stored count is 1. */
static bool
check_copied(Walk *w, GError **error)
{
  NbQcow2 *s = w->s;
  g_autofree uint64_t *table = g_malloc(s->cluster_size);
  for (uint32_t i = 0; i < s->l1_size; i++) {
    uint64_t l2 = s->l1[i] & QCOW2_OFFSET_MASK;
    if (l2 == 0 || (l2 & (s->cluster_size - 1)) != 0 || (l2 >> s->cluster_bits) >= w->n)
      continue;
    uint64_t rc;
    if (!nb_qcow2_refcount_get(s, l2 >> s->cluster_bits, &rc, error))
      return false;
    if ((rc == 1) != ((s->l1[i] & QCOW2_OFLAG_COPIED) != 0))
      problem(w, true, "L1 entry %u: COPIED flag does not match refcount %" G_GUINT64_FORMAT,
              i, rc);
    if (!nb_block_pread_full(s->block->fd, table, s->cluster_size, l2, s->block->path, error))
      return false;
    for (uint64_t j = 0; j < (UINT64_C(1) << s->l2_bits); j++) {
      uint64_t e = GUINT64_FROM_BE(table[j]);
      uint64_t host = e & QCOW2_OFFSET_MASK;
      if ((e & QCOW2_OFLAG_COMPRESSED) || host == 0 || (host & (s->cluster_size - 1)) ||
          (host >> s->cluster_bits) >= w->n)
        continue;
      if (!nb_qcow2_refcount_get(s, host >> s->cluster_bits, &rc, error))
        return false;
      if ((rc == 1) != ((e & QCOW2_OFLAG_COPIED) != 0))
        problem(w, true, "data cluster 0x%" G_GINT64_MODIFIER "x: COPIED flag does not "
                "match refcount %" G_GUINT64_FORMAT, host, rc);
    }
  }
  return true;
}

static bool
check_locked(NbQcow2 *s, bool repair, NbQcow2CheckResult *res, GError **error)
{
  if (!s->block->read_only &&
      (!nb_qcow2_sync(s, error) || !nb_qcow2_release_reserve(s, error)))
    return false;
  struct stat st;
  uint64_t file_size = s->file_size;
  if (fstat(s->block->fd, &st) == 0)
    file_size = (uint64_t)st.st_size;
  Walk w = { .s = s, .res = res };
  w.n = MAX(nb_qcow2_size_to_clusters(s, file_size), 1);
  w.refs = g_new0(uint32_t, w.n);
  bool ok = false;

  count(&w, "header", 0, s->cluster_size);
  count(&w, "L1 table", s->l1_offset, (uint64_t)s->l1_size * 8);
  count(&w, "refcount table", s->reftable_offset,
        (uint64_t)s->reftable_clusters * s->cluster_size);
  for (uint64_t i = 0; i < s->reftable_entries; i++)
    if (s->reftable[i] != 0)
      count(&w, "refcount block", s->reftable[i], s->cluster_size);
  count(&w, "snapshot table", s->snapshots_offset, s->snapshots_bytes);
  if (!walk_tree(&w, s->l1, s->l1_size, true, error))
    goto out;
  for (guint i = 0; i < s->snapshots->len; i++) {
    NbQcow2SnapshotEntry *e = &g_array_index(s->snapshots, NbQcow2SnapshotEntry, i);
    count(&w, "snapshot L1 table", e->l1_offset, (uint64_t)e->l1_size * 8);
    g_autofree uint64_t *l1 = g_new0(uint64_t, MAX(e->l1_size, 1));
    if (e->l1_size > 0 &&
        !nb_block_pread_full(s->block->fd, l1, (size_t)e->l1_size * 8, e->l1_offset,
                             s->block->path, error))
      goto out;
    for (uint32_t j = 0; j < e->l1_size; j++)
      l1[j] = GUINT64_FROM_BE(l1[j]);
    if (!walk_tree(&w, l1, e->l1_size, false, error))
      goto out;
  }

  uint64_t end = 0;
  for (uint64_t c = 0; c < w.n; c++) {
    uint64_t stored;
    if (!nb_qcow2_refcount_get(s, c, &stored, error))
      goto out;
    if (w.refs[c] > 0 || stored > 0)
      end = c + 1;
    if (stored == w.refs[c])
      continue;
    if (stored > w.refs[c]) {
      if (repair && !s->block->read_only) {
        if (!nb_qcow2_refcount_set(s, c, w.refs[c], error))
          goto out;
        problem(&w, false, "repaired leaked cluster 0x%" G_GINT64_MODIFIER "x", c << s->cluster_bits);
        if (w.refs[c] == 0)
          s->free_hint = MIN(s->free_hint, c);
        continue;
      }
      res->leaks++;
      problem(&w, false, "leaked cluster 0x%" G_GINT64_MODIFIER "x: refcount %" G_GUINT64_FORMAT
              ", used %u times", c << s->cluster_bits, stored, w.refs[c]);
    } else {
      problem(&w, true, "cluster 0x%" G_GINT64_MODIFIER "x: refcount %" G_GUINT64_FORMAT
              " but used %u times", c << s->cluster_bits, stored, w.refs[c]);
    }
  }
  if (!check_copied(&w, error))
    goto out;
  if (repair && !s->block->read_only && !nb_block_fdatasync(s->block->fd, s->block->path, error))
    goto out;
  res->image_end_offset = end << s->cluster_bits;
  res->total_clusters = nb_qcow2_size_to_clusters(s, s->block->size);
  ok = true;
out:
  g_free(w.refs);
  return ok;
}

bool
nb_qcow2_check(NbBlock *block, bool repair_leaks, NbQcow2CheckResult *result, GError **error)
{
  memset(result, 0, sizeof *result);
  result->messages = g_ptr_array_new_with_free_func(g_free);
  if (block->format != NB_BLOCK_FORMAT_QCOW2) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: only qcow2 images can be checked (a %s image has no metadata)",
                block->path, nb_block_format_name(block->format));
    return false;
  }
  NbQcow2 *s = nb_qcow2_state(block);
  g_mutex_lock(&s->lock);
  bool ok = check_locked(s, repair_leaks, result, error);
  g_mutex_unlock(&s->lock);
  return ok;
}

void
nb_qcow2_check_result_clear(NbQcow2CheckResult *result)
{
  if (result->messages)
    g_ptr_array_unref(result->messages);
  result->messages = NULL;
}
