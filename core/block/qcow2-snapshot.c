/* qcow2 internal snapshots: a snapshot is a copy of the L1 table that shares
 * L2 tables and data clusters with the disk, counted in their refcounts.
 * Every step raises counts before anything new points at a cluster and lowers
 * them only after nothing does, so a crash in between leaks at most. */
#include "block/qcow2-private.h"

#include <string.h>
#include <time.h>

#define ENTRY_FIXED 40
#define MAX_EXTRA 1024

void
nb_qcow2_snapshot_entry_clear(NbQcow2SnapshotEntry *entry)
{
  g_clear_pointer(&entry->id, g_free);
  g_clear_pointer(&entry->name, g_free);
}

void
nb_qcow2_snapshot_free(NbQcow2Snapshot *snapshot)
{
  if (snapshot == NULL)
    return;
  g_free(snapshot->id);
  g_free(snapshot->name);
  g_free(snapshot);
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return GUINT32_FROM_BE(v); }
static uint64_t be64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return GUINT64_FROM_BE(v); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { v = GUINT32_TO_BE(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = GUINT64_TO_BE(v); memcpy(p, &v, 8); }

bool
nb_qcow2_read_snapshots(NbQcow2 *s, uint64_t offset, uint32_t count, GError **error)
{
  if ((offset & (s->cluster_size - 1)) != 0 || offset == 0)
    return nb_qcow2_corrupt(s, error, "the snapshot table is not at a cluster boundary");
  uint64_t pos = offset;
  for (uint32_t i = 0; i < count; i++) {
    uint8_t fixed[ENTRY_FIXED];
    if (pos + ENTRY_FIXED > s->file_size || pos - offset + ENTRY_FIXED > QCOW2_MAX_SNAPSHOT_TABLE)
      return nb_qcow2_corrupt(s, error, "snapshot %u lies beyond the end of the file", i);
    if (!nb_block_pread_full(s->block->fd, fixed, ENTRY_FIXED, pos, s->block->path, error))
      return false;
    NbQcow2SnapshotEntry e = { 0 };
    e.l1_offset = be64(fixed);
    e.l1_size = be32(fixed + 8);
    uint16_t id_len = be16(fixed + 12), name_len = be16(fixed + 14);
    e.date_sec = be32(fixed + 16);
    e.date_nsec = be32(fixed + 20);
    e.vm_clock_nsec = be64(fixed + 24);
    e.vm_state_size = be32(fixed + 32);
    e.extra_size = be32(fixed + 36);
    if (e.extra_size > MAX_EXTRA)
      return nb_qcow2_corrupt(s, error, "snapshot %u has %u bytes of extra data", i,
                              e.extra_size);
    uint64_t len = ENTRY_FIXED + (uint64_t)e.extra_size + id_len + name_len;
    if (pos + len > s->file_size || pos - offset + len > QCOW2_MAX_SNAPSHOT_TABLE)
      return nb_qcow2_corrupt(s, error, "snapshot %u lies beyond the end of the file", i);
    g_autofree uint8_t *rest = g_malloc(len - ENTRY_FIXED + 1);
    if (!nb_block_pread_full(s->block->fd, rest, len - ENTRY_FIXED, pos + ENTRY_FIXED,
                             s->block->path, error))
      return false;
    e.disk_size = s->block->size;
    if (e.extra_size >= 16) {
      e.vm_state_size = be64(rest);
      e.disk_size = be64(rest + 8);
    }
    e.id = g_strndup((const char *)rest + e.extra_size, id_len);
    e.name = g_strndup((const char *)rest + e.extra_size + id_len, name_len);
    g_array_append_val(s->snapshots, e);
    if ((uint64_t)e.l1_size * 8 > QCOW2_MAX_L1_BYTES)
      return nb_qcow2_corrupt(s, error, "snapshot “%s” has an L1 table that is too large", e.name);
    if (e.disk_size > QCOW2_MAX_VIRTUAL_SIZE)
      return nb_qcow2_corrupt(s, error, "snapshot “%s” has an invalid disk size", e.name);
    if ((e.l1_offset & (s->cluster_size - 1)) != 0 ||
        (e.l1_size > 0 && (e.l1_offset == 0 || e.l1_offset > s->file_size ||
                           (uint64_t)e.l1_size * 8 > s->file_size - e.l1_offset)))
      return nb_qcow2_corrupt(s, error, "snapshot “%s” has its L1 table outside the file",
                              e.name);
    pos += (len + 7) & ~UINT64_C(7);
  }
  s->snapshots_offset = offset;
  s->snapshots_bytes = pos - offset;
  return true;
}

static bool
write_snapshot_table(NbQcow2 *s, GError **error)
{
  GByteArray *t = g_byte_array_new();
  for (guint i = 0; i < s->snapshots->len; i++) {
    NbQcow2SnapshotEntry *e = &g_array_index(s->snapshots, NbQcow2SnapshotEntry, i);
    size_t id_len = strlen(e->id), name_len = strlen(e->name);
    size_t len = ENTRY_FIXED + 16 + id_len + name_len;
    size_t padded = (len + 7) & ~(size_t)7;
    guint at = t->len;
    g_byte_array_set_size(t, at + (guint)padded);
    uint8_t *p = t->data + at;
    memset(p, 0, padded);
    put64(p, e->l1_offset);
    put32(p + 8, e->l1_size);
    put16(p + 12, (uint16_t)id_len);
    put16(p + 14, (uint16_t)name_len);
    put32(p + 16, e->date_sec);
    put32(p + 20, e->date_nsec);
    put64(p + 24, e->vm_clock_nsec);
    put32(p + 32, (uint32_t)MIN(e->vm_state_size, UINT32_MAX));
    put32(p + 36, 16);
    put64(p + 40, e->vm_state_size);
    put64(p + 48, e->disk_size);
    memcpy(p + 56, e->id, id_len);
    memcpy(p + 56 + id_len, e->name, name_len);
  }
  uint64_t new_offset = 0;
  bool ok = true;
  if (t->len > 0) {
    ok = nb_qcow2_alloc_contiguous(s, nb_qcow2_size_to_clusters(s, t->len), &new_offset, error) &&
         nb_block_pwrite_full(s->block->fd, t->data, t->len, new_offset, s->block->path, error) &&
         nb_block_fdatasync(s->block->fd, s->block->path, error);
  }
  uint64_t bytes = t->len;
  g_byte_array_unref(t);
  if (!ok)
    return false;
  struct __attribute__((packed)) { uint32_t count; uint64_t offset; } hdr = {
    GUINT32_TO_BE(s->snapshots->len), GUINT64_TO_BE(new_offset)
  };
  if (!nb_qcow2_header_write(s, QCOW2_HDR_SNAPSHOTS, &hdr, sizeof hdr, error) ||
      !nb_block_fdatasync(s->block->fd, s->block->path, error))
    return false;
  uint64_t old_offset = s->snapshots_offset, old_bytes = s->snapshots_bytes;
  s->snapshots_offset = new_offset;
  s->snapshots_bytes = bytes;
  if (old_bytes > 0 && !nb_qcow2_refcount_update_range(s, old_offset, old_bytes, -1, error))
    return false;
  return true;
}

static bool
write_active_l1(NbQcow2 *s, GError **error)
{
  /* The counts the new entries rely on are on disk before the entries. */
  if (s->refcounts_unsynced && !nb_block_fdatasync(s->block->fd, s->block->path, error))
    return false;
  s->refcounts_unsynced = false;
  g_autofree uint64_t *be = g_new(uint64_t, MAX(s->l1_size, 1));
  for (uint32_t i = 0; i < s->l1_size; i++)
    be[i] = GUINT64_TO_BE(s->l1[i]);
  return nb_block_pwrite_full(s->block->fd, be, (size_t)s->l1_size * 8, s->l1_offset,
                              s->block->path, error) &&
         nb_block_fdatasync(s->block->fd, s->block->path, error);
}

static int
find(NbQcow2 *s, const char *name_or_id)
{
  for (guint i = 0; i < s->snapshots->len; i++) {
    NbQcow2SnapshotEntry *e = &g_array_index(s->snapshots, NbQcow2SnapshotEntry, i);
    if (g_strcmp0(e->name, name_or_id) == 0)
      return (int)i;
  }
  for (guint i = 0; i < s->snapshots->len; i++) {
    NbQcow2SnapshotEntry *e = &g_array_index(s->snapshots, NbQcow2SnapshotEntry, i);
    if (g_strcmp0(e->id, name_or_id) == 0)
      return (int)i;
  }
  return -1;
}

static NbQcow2 *
writable_qcow2(NbBlock *block, const char *what, GError **error)
{
  if (block->format != NB_BLOCK_FORMAT_QCOW2) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: %s: only qcow2 images have snapshots (convert it to qcow2 first)",
                block->path, what);
    return NULL;
  }
  if (what != NULL && block->read_only) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_READ_ONLY,
                "%s: cannot %s: the image is open read-only", block->path, what);
    return NULL;
  }
  return nb_qcow2_state(block);
}

GPtrArray *
nb_qcow2_snapshot_list(NbBlock *block, GError **error)
{
  NbQcow2 *s = writable_qcow2(block, NULL, error);
  if (s == NULL)
    return NULL;
  GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)nb_qcow2_snapshot_free);
  g_mutex_lock(&s->lock);
  for (guint i = 0; i < s->snapshots->len; i++) {
    NbQcow2SnapshotEntry *e = &g_array_index(s->snapshots, NbQcow2SnapshotEntry, i);
    NbQcow2Snapshot *sn = g_new0(NbQcow2Snapshot, 1);
    sn->id = g_strdup(e->id);
    sn->name = g_strdup(e->name);
    sn->disk_size = e->disk_size;
    sn->vm_state_size = e->vm_state_size;
    sn->date_sec = e->date_sec;
    sn->date_nsec = e->date_nsec;
    sn->vm_clock_nsec = e->vm_clock_nsec;
    g_ptr_array_add(out, sn);
  }
  g_mutex_unlock(&s->lock);
  return out;
}

/* Whether every cluster of the active tree can take one more user: checked
 * first so a snapshot never stops halfway on narrow refcounts. */
static bool
room_for_one_more(NbQcow2 *s, const uint64_t *l1, uint32_t l1_size, GError **error)
{
  uint64_t n = UINT64_C(1) << s->l2_bits;
  g_autofree uint64_t *table = g_malloc(s->cluster_size);
  for (uint32_t i = 0; i < l1_size; i++) {
    uint64_t l2 = l1[i] & QCOW2_OFFSET_MASK;
    if (l2 == 0)
      continue;
    uint64_t rc;
    if (!nb_qcow2_check_l2_offset(s, l2, error) ||
        !nb_qcow2_refcount_get(s, l2 >> s->cluster_bits, &rc, error))
      return false;
    if (rc >= s->refcount_max)
      goto full;
    uint8_t *cached = nb_qcow2_cache_get(s, &s->l2_cache, l2, error);
    if (cached == NULL)
      return false;
    memcpy(table, cached, s->cluster_size);
    for (uint64_t j = 0; j < n; j++) {
      uint64_t e = GUINT64_FROM_BE(table[j]);
      uint64_t host = e & QCOW2_OFFSET_MASK, len = 1;
      if (nb_qcow2_entry_type(e) == NB_QCOW2_COMPRESSED)
        nb_qcow2_compressed_range(s, e, &host, &len);
      if (host == 0)
        continue;
      for (uint64_t c = host >> s->cluster_bits; c <= (host + len - 1) >> s->cluster_bits; c++) {
        if (!nb_qcow2_refcount_get(s, c, &rc, error))
          return false;
        if (rc >= s->refcount_max)
          goto full;
      }
    }
  }
  return true;
full:
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
              "%s: its %u-bit refcounts are full: delete a snapshot first, or convert "
              "to an image with wider refcounts",
              s->block->path, 1u << s->refcount_order);
  return false;
}

static bool
create_locked(NbQcow2 *s, const char *name, GError **error)
{
  if (name == NULL || *name == '\0' || strlen(name) > 1024) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED,
                "%s: a snapshot needs a name of 1 to 1024 bytes", s->block->path);
    return false;
  }
  if (find(s, name) >= 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED,
                "%s: a snapshot named “%s” already exists: choose another name or delete it",
                s->block->path, name);
    return false;
  }
  if (s->snapshots->len >= QCOW2_MAX_SNAPSHOTS) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: too many snapshots: delete some first", s->block->path);
    return false;
  }
  if (!nb_qcow2_sync(s, error) || !room_for_one_more(s, s->l1, s->l1_size, error))
    return false;
  uint64_t next_id = 1;
  for (guint i = 0; i < s->snapshots->len; i++) {
    uint64_t id = g_ascii_strtoull(g_array_index(s->snapshots, NbQcow2SnapshotEntry, i).id,
                                   NULL, 10);
    next_id = MAX(next_id, id + 1);
  }
  /* The copy of the L1 table first, then the shared counts go up. */
  uint64_t l1_offset = 0;
  if (s->l1_size > 0) {
    if (!nb_qcow2_alloc_contiguous(s, nb_qcow2_size_to_clusters(s, (uint64_t)s->l1_size * 8),
                                   &l1_offset, error))
      return false;
    g_autofree uint64_t *be = g_new(uint64_t, s->l1_size);
    for (uint32_t i = 0; i < s->l1_size; i++)
      be[i] = GUINT64_TO_BE(s->l1[i] & ~QCOW2_OFLAG_COPIED);
    if (!nb_block_pwrite_full(s->block->fd, be, (size_t)s->l1_size * 8, l1_offset,
                              s->block->path, error))
      return false;
  }
  if (!nb_qcow2_update_tree_refcounts(s, s->l1, s->l1_size, 1, true, error) ||
      !write_active_l1(s, error))
    return false;

  NbQcow2SnapshotEntry e = { 0 };
  gint64 now = g_get_real_time();
  e.l1_offset = l1_offset;
  e.l1_size = s->l1_size;
  e.id = g_strdup_printf("%" G_GUINT64_FORMAT, next_id);
  e.name = g_strdup(name);
  e.date_sec = (uint32_t)(now / G_USEC_PER_SEC);
  e.date_nsec = (uint32_t)(now % G_USEC_PER_SEC) * 1000;
  e.disk_size = s->block->size;
  g_array_append_val(s->snapshots, e);
  if (!write_snapshot_table(s, error)) {
    nb_qcow2_snapshot_entry_clear(&g_array_index(s->snapshots, NbQcow2SnapshotEntry,
                                                 s->snapshots->len - 1));
    g_array_set_size(s->snapshots, s->snapshots->len - 1);
    return false;
  }
  return true;
}

bool
nb_qcow2_snapshot_create(NbBlock *block, const char *name, GError **error)
{
  NbQcow2 *s = writable_qcow2(block, "create a snapshot", error);
  if (s == NULL)
    return false;
  g_mutex_lock(&s->lock);
  bool ok = create_locked(s, name, error);
  g_mutex_unlock(&s->lock);
  return ok;
}

static uint64_t *
read_l1(NbQcow2 *s, const NbQcow2SnapshotEntry *e, uint32_t size, GError **error)
{
  uint64_t *l1 = g_new0(uint64_t, MAX(size, 1));
  if (e->l1_size > 0 &&
      !nb_block_pread_full(s->block->fd, l1, (size_t)e->l1_size * 8, e->l1_offset,
                           s->block->path, error)) {
    g_free(l1);
    return NULL;
  }
  for (uint32_t i = 0; i < e->l1_size; i++)
    l1[i] = GUINT64_FROM_BE(l1[i]);
  return l1;
}

static bool
apply_locked(NbQcow2 *s, const char *name_or_id, GError **error)
{
  int idx = find(s, name_or_id);
  if (idx < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_NOT_FOUND,
                "%s: no snapshot named “%s” (list them with “nestboxctl disk snapshot list”)",
                s->block->path, name_or_id);
    return false;
  }
  NbQcow2SnapshotEntry *e = &g_array_index(s->snapshots, NbQcow2SnapshotEntry, idx);
  uint64_t l2_span = s->cluster_size << s->l2_bits;
  if ((e->disk_size + l2_span - 1) / l2_span > e->l1_size)
    return nb_qcow2_corrupt(s, error, "snapshot “%s” has an L1 table too small for its size",
                            e->name);
  if (!nb_qcow2_sync(s, error))
    return false;
  if (e->l1_size > s->l1_size && !nb_qcow2_grow_l1(s, e->l1_size, error))
    return false;
  g_autofree uint64_t *snap = read_l1(s, e, s->l1_size, error);
  if (snap == NULL)
    return false;
  for (uint32_t i = 0; i < e->l1_size; i++) {
    uint64_t l2 = snap[i] & QCOW2_OFFSET_MASK;
    if (l2 != 0 && !nb_qcow2_check_l2_offset(s, l2, error))
      return false;
  }
  if (!room_for_one_more(s, snap, e->l1_size, error))
    return false;
  /* The snapshot's tree gains the active disk as a user, then the active L1
   * switches to it, then the old tree loses that user. */
  if (!nb_qcow2_update_tree_refcounts(s, snap, e->l1_size, 1, false, error))
    return false;
  g_autofree uint64_t *old = s->l1;
  s->l1 = g_steal_pointer(&snap);
  for (uint32_t i = 0; i < s->l1_size; i++)
    if ((s->l1[i] & QCOW2_OFFSET_MASK) != 0)
      nb_qcow2_meta_add(s, s->l1[i] & QCOW2_OFFSET_MASK);
  if (!write_active_l1(s, error))
    return false;
  if (!nb_qcow2_update_tree_refcounts(s, old, s->l1_size, -1, false, error) ||
      !nb_qcow2_update_tree_refcounts(s, s->l1, s->l1_size, 0, true, error) ||
      !write_active_l1(s, error))
    return false;
  if (e->disk_size != s->block->size) {
    uint64_t be = GUINT64_TO_BE(e->disk_size);
    if (!nb_qcow2_header_write(s, QCOW2_HDR_SIZE, &be, 8, error))
      return false;
    s->block->size = e->disk_size;
  }
  s->decompressed_entry = 0;
  return nb_qcow2_sync(s, error);
}

bool
nb_qcow2_snapshot_apply(NbBlock *block, const char *name_or_id, GError **error)
{
  NbQcow2 *s = writable_qcow2(block, "apply a snapshot", error);
  if (s == NULL)
    return false;
  g_mutex_lock(&s->lock);
  bool ok = apply_locked(s, name_or_id, error);
  g_mutex_unlock(&s->lock);
  return ok;
}

static bool
delete_locked(NbQcow2 *s, const char *name_or_id, GError **error)
{
  int idx = find(s, name_or_id);
  if (idx < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_NOT_FOUND,
                "%s: no snapshot named “%s” (list them with “nestboxctl disk snapshot list”)",
                s->block->path, name_or_id);
    return false;
  }
  if (!nb_qcow2_sync(s, error))
    return false;
  NbQcow2SnapshotEntry gone = g_array_index(s->snapshots, NbQcow2SnapshotEntry, idx);
  g_autofree uint64_t *l1 = read_l1(s, &gone, gone.l1_size, error);
  if (l1 == NULL)
    return false;
  g_array_remove_index(s->snapshots, (guint)idx);
  /* Out of the table first: from then on only counts are left to drop. */
  if (!write_snapshot_table(s, error)) {
    g_array_insert_val(s->snapshots, (guint)idx, gone);
    return false;
  }
  bool ok = nb_qcow2_update_tree_refcounts(s, l1, gone.l1_size, -1, false, error) &&
            (gone.l1_size == 0 ||
             nb_qcow2_refcount_update_range(s, gone.l1_offset, (uint64_t)gone.l1_size * 8, -1,
                                            error)) &&
            nb_qcow2_update_tree_refcounts(s, s->l1, s->l1_size, 0, true, error) &&
            write_active_l1(s, error);
  nb_qcow2_snapshot_entry_clear(&gone);
  return ok;
}

bool
nb_qcow2_snapshot_delete(NbBlock *block, const char *name_or_id, GError **error)
{
  NbQcow2 *s = writable_qcow2(block, "delete a snapshot", error);
  if (s == NULL)
    return false;
  g_mutex_lock(&s->lock);
  bool ok = delete_locked(s, name_or_id, error);
  g_mutex_unlock(&s->lock);
  return ok;
}
