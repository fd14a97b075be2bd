/* qcow2: opening and checking the header and tables, closing, info. */
#include "block/qcow2-private.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool
nb_qcow2_corrupt(NbQcow2 *s, GError **error, const char *format, ...)
{
  va_list ap;
  va_start(ap, format);
  g_autofree char *what = g_strdup_vprintf(format, ap);
  va_end(ap);
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT,
              "%s: invalid qcow2 image: %s (check it with “nestboxctl disk check”)",
              s->block->path, what);
  return false;
}

void
nb_qcow2_meta_add(NbQcow2 *s, uint64_t offset)
{
  g_hash_table_add(s->meta, g_memdup2(&offset, sizeof offset));
}

void
nb_qcow2_meta_remove(NbQcow2 *s, uint64_t offset)
{
  g_hash_table_remove(s->meta, &offset);
}

bool
nb_qcow2_header_write(NbQcow2 *s, size_t field, const void *data, size_t len, GError **error)
{
  return nb_block_pwrite_full(s->block->fd, data, len, field, s->block->path, error);
}

bool
nb_qcow2_write_l1_entry(NbQcow2 *s, uint64_t index, GError **error)
{
  uint64_t be = GUINT64_TO_BE(s->l1[index]);
  return nb_block_pwrite_full(s->block->fd, &be, 8, s->l1_offset + index * 8, s->block->path,
                              error);
}

static uint32_t be32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return GUINT32_FROM_BE(v); }
static uint64_t be64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return GUINT64_FROM_BE(v); }

/* [offset, offset+len) must lie in the file, cluster-aligned, past the header. */
static bool
check_table(NbQcow2 *s, const char *what, uint64_t offset, uint64_t len, GError **error)
{
  if ((offset & (s->cluster_size - 1)) != 0)
    return nb_qcow2_corrupt(s, error, "the %s at 0x%" G_GINT64_MODIFIER
                            "x is not aligned to a cluster", what, offset);
  if (offset == 0 && len > 0)
    return nb_qcow2_corrupt(s, error, "the %s overlaps the header", what);
  if (offset > s->file_size || len > s->file_size - offset)
    return nb_qcow2_corrupt(s, error, "the %s (0x%" G_GINT64_MODIFIER "x, %" G_GUINT64_FORMAT
                            " bytes) lies beyond the end of the file (%" G_GUINT64_FORMAT " bytes)",
                            what, offset, len, s->file_size);
  return true;
}

static bool
overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
  return alen > 0 && blen > 0 && a < b + blen && b < a + alen;
}

static bool
backing_name_ok(NbQcow2 *s, const char *name, GError **error)
{
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    if (*p < 0x20 || *p == 0x7f)
      return nb_qcow2_corrupt(s, error, "its backing file name contains control characters");
  }
  /* Protocol names ("nbd:", "json:", "http:") would reach beyond local files. */
  const char *colon = strchr(name, ':');
  const char *slash = strchr(name, '/');
  if (colon != NULL && (slash == NULL || colon < slash)) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: backing file “%s” names a protocol, not a file: only local image "
                "files can back a disk", s->block->path, name);
    return false;
  }
  if (*name == '\0')
    return nb_qcow2_corrupt(s, error, "its backing file name is empty");
  return true;
}

static bool
open_backing(NbQcow2 *s, GError **error)
{
  if (!backing_name_ok(s, s->backing_file, error))
    return false;
  g_autofree char *resolved = NULL;
  if (g_path_is_absolute(s->backing_file)) {
    resolved = g_strdup(s->backing_file);
  } else {
    g_autofree char *dir = g_path_get_dirname(s->block->path);
    resolved = g_build_filename(dir, s->backing_file, NULL);
  }
  NbBlockFormat format = NB_BLOCK_FORMAT_AUTO;
  if (s->backing_format != NULL) {
    g_autoptr(GError) local = NULL;
    if (!nb_block_format_parse(s->backing_format, &format, &local) ||
        format == NB_BLOCK_FORMAT_AUTO) {
      g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                  "%s: backing file format “%s” is not supported", s->block->path,
                  s->backing_format);
      return false;
    }
  }
  GError *local = NULL;
  s->backing = nb_block_open_backing(s->block, resolved, format, &local);
  if (s->backing == NULL) {
    if (local->domain == NB_BLOCK_ERROR && local->code == NB_BLOCK_ERROR_NOT_FOUND)
      g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_NOT_FOUND,
                  "%s: its backing file %s is missing: put it back or point the image "
                  "at its new place with qemu-img rebase -u", s->block->path, resolved);
    else
      g_propagate_error(error, g_steal_pointer(&local));
    g_clear_error(&local);
    return false;
  }
  return true;
}

static bool
parse_extensions(NbQcow2 *s, const uint8_t *hdr, size_t start, size_t end, GError **error)
{
  size_t pos = start;
  while (pos + 8 <= end) {
    uint32_t type = be32(hdr + pos), len = be32(hdr + pos + 4);
    pos += 8;
    if (type == QCOW2_EXT_END)
      return true;
    if (len > end - pos)
      return nb_qcow2_corrupt(s, error, "header extension 0x%x runs past the first cluster",
                              type);
    if (type == QCOW2_EXT_BACKING_FORMAT) {
      if (len == 0 || len > 16)
        return nb_qcow2_corrupt(s, error, "backing format name has invalid length %u", len);
      s->backing_format = g_strndup((const char *)hdr + pos, len);
    }
    pos += (len + 7) & ~7u;
  }
  return true;
}

static bool
parse_header(NbQcow2 *s, GError **error)
{
  NbBlock *block = s->block;
  g_autofree uint8_t *hdr = g_malloc0(1u << QCOW2_MAX_CLUSTER_BITS);
  if (!nb_block_pread_full(block->fd, hdr, 4096, 0, block->path, error))
    return false;
  if (s->file_size < 72 || be32(hdr) != QCOW2_MAGIC)
    return nb_qcow2_corrupt(s, error, "no qcow2 header");
  s->version = be32(hdr + 4);
  if (s->version != 2 && s->version != 3) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: qcow2 version %u is not supported (only 2 and 3)", block->path,
                s->version);
    return false;
  }
  s->cluster_bits = be32(hdr + 20);
  if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS || s->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
    return nb_qcow2_corrupt(s, error, "cluster size 2^%u is out of range (2^9 to 2^21)",
                            s->cluster_bits);
  s->cluster_size = UINT64_C(1) << s->cluster_bits;
  s->l2_bits = s->cluster_bits - 3;
  if (!nb_block_pread_full(block->fd, hdr, s->cluster_size, 0, block->path, error))
    return false;

  uint64_t backing_offset = be64(hdr + 8);
  uint32_t backing_len = be32(hdr + 16);
  block->size = be64(hdr + 24);
  uint32_t crypt = be32(hdr + 32);
  s->l1_size = be32(hdr + 36);
  s->l1_offset = be64(hdr + 40);
  s->reftable_offset = be64(hdr + 48);
  s->reftable_clusters = be32(hdr + 56);
  uint32_t n_snapshots = be32(hdr + 60);
  uint64_t snapshots_offset = be64(hdr + 64);

  s->refcount_order = 4;
  s->header_length = 72;
  if (s->version == 3) {
    if (s->file_size < 104)
      return nb_qcow2_corrupt(s, error, "the version 3 header is truncated");
    s->incompatible = be64(hdr + 72);
    s->compatible = be64(hdr + 80);
    s->autoclear = be64(hdr + 88);
    s->refcount_order = be32(hdr + 96);
    s->header_length = be32(hdr + 100);
    if (s->header_length < 104 || s->header_length > s->cluster_size ||
        (s->header_length & 7) != 0)
      return nb_qcow2_corrupt(s, error, "header length %u is invalid", s->header_length);
    if (s->header_length > 104 && hdr[104] != 0) {
      g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                  "%s: compression type %u is not supported (only zlib): convert it with "
                  "qemu-img convert -O qcow2 -o compression_type=zlib", block->path, hdr[104]);
      return false;
    }
  }
  if (s->refcount_order > 6)
    return nb_qcow2_corrupt(s, error, "refcount order %u is out of range (0 to 6)",
                            s->refcount_order);
  s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
  s->refcount_max = s->refcount_order == 6 ? INT64_MAX
                                           : (UINT64_C(1) << (1u << s->refcount_order)) - 1;

  uint64_t unknown = s->incompatible & ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
                                         QCOW2_INCOMPAT_COMPRESSION);
  if (unknown) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: uses qcow2 features Nestbox does not support (%s%s0x%" G_GINT64_MODIFIER
                "x): convert it with qemu-img convert -O qcow2", block->path,
                unknown & QCOW2_INCOMPAT_DATA_FILE ? "external data file, " : "",
                unknown & QCOW2_INCOMPAT_EXTL2 ? "extended L2 entries, " : "", unknown);
    return false;
  }
  if (!block->read_only && (s->incompatible & (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT))) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT,
                "%s: the image is marked %s: repair it with “qemu-img check -r all %s” "
                "before writing to it (reading works)", block->path,
                s->incompatible & QCOW2_INCOMPAT_CORRUPT ? "corrupt" : "dirty (not closed cleanly)",
                block->path);
    return false;
  }
  if (crypt != 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: encrypted qcow2 images are not supported: decrypt it with qemu-img convert",
                block->path);
    return false;
  }
  if (block->size > QCOW2_MAX_VIRTUAL_SIZE)
    return nb_qcow2_corrupt(s, error, "virtual size %" G_GUINT64_FORMAT " is too large",
                            block->size);

  /* L1 table: big enough for the disk, not absurdly big. */
  uint64_t l2_span = s->cluster_size << s->l2_bits;
  uint64_t l1_needed = (block->size + l2_span - 1) / l2_span;
  if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES)
    return nb_qcow2_corrupt(s, error, "L1 table size %u is too large", s->l1_size);
  if (s->l1_size < l1_needed)
    return nb_qcow2_corrupt(s, error, "L1 table (%u entries) is too small for the disk size",
                            s->l1_size);
  if (!check_table(s, "L1 table", s->l1_offset, (uint64_t)s->l1_size * 8, error))
    return false;
  if (s->reftable_clusters == 0 ||
      (uint64_t)s->reftable_clusters * s->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
    return nb_qcow2_corrupt(s, error, "refcount table size (%u clusters) is out of range",
                            s->reftable_clusters);
  s->reftable_entries = (uint64_t)s->reftable_clusters * s->cluster_size / 8;
  if (!check_table(s, "refcount table", s->reftable_offset,
                   (uint64_t)s->reftable_clusters * s->cluster_size, error))
    return false;
  if (n_snapshots > QCOW2_MAX_SNAPSHOTS)
    return nb_qcow2_corrupt(s, error, "too many snapshots (%u)", n_snapshots);
  if (n_snapshots > 0 && !check_table(s, "snapshot table", snapshots_offset, 1, error))
    return false;
  if (overlaps(s->l1_offset, (uint64_t)s->l1_size * 8, s->reftable_offset,
               (uint64_t)s->reftable_clusters * s->cluster_size))
    return nb_qcow2_corrupt(s, error, "the L1 table overlaps the refcount table");

  /* Backing file name and header extensions, all in the first cluster. */
  size_t ext_end = s->cluster_size;
  if (backing_offset != 0) {
    if (backing_len == 0 || backing_len > QCOW2_MAX_BACKING_NAME ||
        backing_offset > s->cluster_size || backing_len > s->cluster_size - backing_offset)
      return nb_qcow2_corrupt(s, error, "backing file name (at %" G_GUINT64_FORMAT
                              ", %u bytes) is not inside the first cluster", backing_offset,
                              backing_len);
    s->backing_file = g_strndup((const char *)hdr + backing_offset, backing_len);
    if (strlen(s->backing_file) != backing_len)
      return nb_qcow2_corrupt(s, error, "its backing file name contains a NUL byte");
    ext_end = MIN(ext_end, backing_offset);
  }
  if (!parse_extensions(s, hdr, s->header_length, ext_end, error))
    return false;
  if (n_snapshots > 0 && !nb_qcow2_read_snapshots(s, snapshots_offset, n_snapshots, error))
    return false;
  if (n_snapshots > 0 &&
      (overlaps(s->snapshots_offset, s->snapshots_bytes, s->l1_offset, (uint64_t)s->l1_size * 8) ||
       overlaps(s->snapshots_offset, s->snapshots_bytes, s->reftable_offset,
                (uint64_t)s->reftable_clusters * s->cluster_size)))
    return nb_qcow2_corrupt(s, error, "the snapshot table overlaps the L1 or refcount table");
  return true;
}

static bool
load_tables(NbQcow2 *s, GError **error)
{
  s->l1 = g_new0(uint64_t, MAX(s->l1_size, 1));
  if (s->l1_size > 0 &&
      !nb_block_pread_full(s->block->fd, s->l1, (size_t)s->l1_size * 8, s->l1_offset,
                           s->block->path, error))
    return false;
  for (uint32_t i = 0; i < s->l1_size; i++) {
    s->l1[i] = GUINT64_FROM_BE(s->l1[i]);
    uint64_t l2 = s->l1[i] & QCOW2_OFFSET_MASK;
    if (l2 != 0 && !nb_qcow2_check_l2_offset(s, l2, error))
      return false;
    if (l2 != 0)
      nb_qcow2_meta_add(s, l2);
  }
  s->reftable = g_new0(uint64_t, s->reftable_entries);
  if (!nb_block_pread_full(s->block->fd, s->reftable, s->reftable_entries * 8,
                           s->reftable_offset, s->block->path, error))
    return false;
  uint64_t max_cluster = nb_qcow2_size_to_clusters(s, s->file_size);
  for (uint64_t i = 0; i < s->reftable_entries; i++) {
    s->reftable[i] = GUINT64_FROM_BE(s->reftable[i]);
    uint64_t rb = s->reftable[i];
    if (rb == 0)
      continue;
    if ((rb & (s->cluster_size - 1)) != 0 || rb == 0 || rb >= s->file_size)
      return nb_qcow2_corrupt(s, error, "refcount block %" G_GUINT64_FORMAT " at 0x%"
                              G_GINT64_MODIFIER "x is not inside the file", i, rb);
    if (overlaps(rb, s->cluster_size, s->l1_offset, (uint64_t)s->l1_size * 8) ||
        overlaps(rb, s->cluster_size, s->reftable_offset,
                 (uint64_t)s->reftable_clusters * s->cluster_size))
      return nb_qcow2_corrupt(s, error, "refcount block %" G_GUINT64_FORMAT
                              " overlaps the L1 or refcount table", i);
    nb_qcow2_meta_add(s, rb);
  }
  s->end_cluster = MAX(max_cluster, 1);
  return true;
}

static void
qcow2_free(NbQcow2 *s)
{
  if (s == NULL)
    return;
  nb_qcow2_cache_clear(&s->l2_cache);
  nb_qcow2_cache_clear(&s->rb_cache);
  g_free(s->l1);
  g_free(s->reftable);
  if (s->meta)
    g_hash_table_unref(s->meta);
  if (s->reserved)
    g_array_free(s->reserved, TRUE);
  if (s->pending_free)
    g_array_free(s->pending_free, TRUE);
  g_free(s->backing_file);
  g_free(s->backing_format);
  nb_block_close(s->backing);
  if (s->snapshots) {
    for (guint i = 0; i < s->snapshots->len; i++)
      nb_qcow2_snapshot_entry_clear(&g_array_index(s->snapshots, NbQcow2SnapshotEntry, i));
    g_array_free(s->snapshots, TRUE);
  }
  if (s->inflater_ready)
    inflateEnd(&s->inflater);
  g_free(s->cbuf);
  g_free(s->tmp);
  g_free(s->decompressed);
  g_mutex_clear(&s->lock);
  g_free(s);
}

void
nb_qcow2_close(NbBlock *block)
{
  NbQcow2 *s = block->opaque;
  if (s == NULL)
    return;
  if (!block->read_only) {
    g_autoptr(GError) error = NULL;
    /* Leftovers become leaks at worst; nobody can act on an error here. */
    if (!nb_qcow2_sync(s, &error) || !nb_qcow2_release_reserve(s, &error) ||
        !nb_block_fdatasync(block->fd, block->path, &error))
      g_warning("%s", error->message);
  }
  qcow2_free(s);
  block->opaque = NULL;
}

bool
nb_qcow2_open(NbBlock *block, GError **error)
{
  NbQcow2 *s = g_new0(NbQcow2, 1);
  g_mutex_init(&s->lock);
  s->block = block;
  struct stat st;
  if (fstat(block->fd, &st) < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "%s: %s", block->path,
                g_strerror(errno));
    qcow2_free(s);
    return false;
  }
  s->file_size = (uint64_t)st.st_size;
  s->meta = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
  s->reserved = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  s->pending_free = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  s->snapshots = g_array_new(FALSE, TRUE, sizeof(NbQcow2SnapshotEntry));
  s->reserve_batch = 16;
  if (!parse_header(s, error) || !load_tables(s, error)) {
    qcow2_free(s);
    return false;
  }
  /* L2 cache covering 8 GiB of disk at 64 KiB clusters (4 MiB), at most 64 tables. */
  unsigned l2_slots = (unsigned)CLAMP((UINT64_C(4) << 20) >> s->cluster_bits, 16, 64);
  nb_qcow2_cache_init(&s->l2_cache, l2_slots, s->cluster_size);
  nb_qcow2_cache_init(&s->rb_cache, 8, s->cluster_size);
  s->cbuf = g_malloc(2 * s->cluster_size + 512);
  s->tmp = g_malloc(s->cluster_size);
  s->decompressed = g_malloc(s->cluster_size);
  s->decompressed_entry = 0;
  if (inflateInit2(&s->inflater, -12) != Z_OK) {
    qcow2_free(s);
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "%s: zlib failed", block->path);
    return false;
  }
  s->inflater_ready = true;

  if (s->backing_file != NULL && !open_backing(s, error)) {
    qcow2_free(s);
    return false;
  }
  if (!block->read_only && s->version == 3 && s->autoclear != 0) {
    /* Bitmaps and the like that we do not keep up to date: say so. */
    uint64_t zero = 0;
    if (!nb_qcow2_header_write(s, QCOW2_HDR_AUTOCLEAR, &zero, 8, error)) {
      qcow2_free(s);
      return false;
    }
    s->autoclear = 0;
  }
  block->opaque = s;
  block->driver = &nb_qcow2_driver;
  return true;
}

NbBlock *
nb_block_backing(NbBlock *block)
{
  if (block->format != NB_BLOCK_FORMAT_QCOW2 || block->opaque == NULL)
    return NULL;
  return nb_qcow2_state(block)->backing;
}

void
nb_qcow2_info_clear(NbQcow2Info *info)
{
  g_clear_pointer(&info->backing_file, g_free);
  g_clear_pointer(&info->backing_format, g_free);
}

bool
nb_qcow2_get_info(NbBlock *block, NbQcow2Info *info)
{
  memset(info, 0, sizeof *info);
  if (block->format != NB_BLOCK_FORMAT_QCOW2)
    return false;
  NbQcow2 *s = nb_qcow2_state(block);
  g_mutex_lock(&s->lock);
  info->version = s->version;
  info->cluster_bits = s->cluster_bits;
  info->refcount_bits = 1u << s->refcount_order;
  info->dirty = (s->incompatible & QCOW2_INCOMPAT_DIRTY) != 0;
  info->corrupt = (s->incompatible & QCOW2_INCOMPAT_CORRUPT) != 0;
  info->backing_file = g_strdup(s->backing_file);
  info->backing_format = g_strdup(s->backing_format);
  info->n_snapshots = s->snapshots->len;
  g_mutex_unlock(&s->lock);
  return true;
}
