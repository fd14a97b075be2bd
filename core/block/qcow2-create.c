/* Creating empty qcow2 images: header, one refcount table, the refcount
 * blocks that count the metadata, and an empty L1 table. */
#include "block/qcow2-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static void put32(uint8_t *p, uint32_t v) { v = GUINT32_TO_BE(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = GUINT64_TO_BE(v); memcpy(p, &v, 8); }

static bool
fail(const char *path, GError **error, NbBlockError code, const char *format, ...)
  G_GNUC_PRINTF(4, 5);

static bool
fail(const char *path, GError **error, NbBlockError code, const char *format, ...)
{
  va_list ap;
  va_start(ap, format);
  g_autofree char *what = g_strdup_vprintf(format, ap);
  va_end(ap);
  g_set_error(error, NB_BLOCK_ERROR, code, "cannot create %s: %s", path, what);
  return false;
}

/* Opens the backing file as overlays will, for its size and format. */
static bool
probe_backing(const char *path, const NbQcow2CreateOptions *o, uint64_t *size,
              NbBlockFormat *format, GError **error)
{
  for (const unsigned char *p = (const unsigned char *)o->backing_file; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return fail(path, error, NB_BLOCK_ERROR_UNSUPPORTED,
                  "the backing file name contains control characters");
  if (strlen(o->backing_file) > QCOW2_MAX_BACKING_NAME)
    return fail(path, error, NB_BLOCK_ERROR_UNSUPPORTED, "the backing file name is too long");
  g_autofree char *resolved = NULL;
  if (g_path_is_absolute(o->backing_file)) {
    resolved = g_strdup(o->backing_file);
  } else {
    g_autofree char *dir = g_path_get_dirname(path);
    resolved = g_build_filename(dir, o->backing_file, NULL);
  }
  NbBlockOpenOptions opts = { .format = o->backing_format, .read_only = true };
  g_autoptr(GError) local = NULL;
  g_autoptr(NbBlock) b = nb_block_open(resolved, &opts, &local);
  if (b == NULL)
    return fail(path, error, NB_BLOCK_ERROR_NOT_FOUND,
                "backing file %s (relative names are taken from the new image's folder): %s",
                resolved, local->message);
  *size = nb_block_size(b);
  *format = nb_block_format(b);
  return true;
}

bool
nb_qcow2_create(const char *path, uint64_t size, const NbQcow2CreateOptions *options,
                GError **error)
{
  NbQcow2CreateOptions o = { 0 };
  if (options)
    o = *options;
  unsigned cb = o.cluster_bits ? o.cluster_bits : 16;
  unsigned version = o.version ? o.version : 3;
  unsigned order = o.refcount_order ? o.refcount_order : 4;
  if (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS)
    return fail(path, error, NB_BLOCK_ERROR_UNSUPPORTED,
                "cluster size must be a power of two from 512 bytes to 2 MiB");
  if (version != 2 && version != 3)
    return fail(path, error, NB_BLOCK_ERROR_UNSUPPORTED, "qcow2 version must be 2 or 3");
  if (order > 6 || (version == 2 && order != 4))
    return fail(path, error, NB_BLOCK_ERROR_UNSUPPORTED,
                "refcount width must be 1 to 64 bits (16 for version 2)");

  NbBlockFormat backing_format = NB_BLOCK_FORMAT_AUTO;
  if (o.backing_file != NULL) {
    uint64_t bsize = 0;
    if (!probe_backing(path, &o, &bsize, &backing_format, error))
      return false;
    if (size == 0)
      size = bsize;
  }
  if (size > QCOW2_MAX_VIRTUAL_SIZE)
    return fail(path, error, NB_BLOCK_ERROR_OUT_OF_RANGE, "the size is too large for qcow2");

  uint64_t cs = UINT64_C(1) << cb;
  uint64_t l2_span = cs << (cb - 3);
  uint64_t l1_entries = (size + l2_span - 1) / l2_span;
  if (l1_entries * 8 > QCOW2_MAX_L1_BYTES)
    return fail(path, error, NB_BLOCK_ERROR_UNSUPPORTED,
                "the disk is too large for %" G_GUINT64_FORMAT "-byte clusters: use larger ones",
                cs);
  uint64_t l1_clusters = (l1_entries * 8 + cs - 1) / cs;
  uint64_t rbe = UINT64_C(1) << (cb + 3 - order);
  uint64_t n_rb = 1, n_tab = 1;
  for (int i = 0; i < 8; i++) {
    uint64_t total = 1 + n_tab + n_rb + l1_clusters;
    n_rb = (total + rbe - 1) / rbe;
    n_tab = MAX((n_rb * 8 + cs - 1) / cs, 1);
  }
  uint64_t total = 1 + n_tab + n_rb + l1_clusters;
  if (n_tab * cs > QCOW2_MAX_REFTABLE_BYTES)
    return fail(path, error, NB_BLOCK_ERROR_UNSUPPORTED, "the disk is too large for its clusters");

  g_autofree uint8_t *img = g_malloc0((n_tab + n_rb + 1) * cs);
  uint8_t *h = img;
  put32(h, QCOW2_MAGIC);
  put32(h + 4, version);
  put32(h + 20, cb);
  put64(h + 24, size);
  put32(h + 36, (uint32_t)l1_entries);
  put64(h + 40, l1_entries ? (1 + n_tab + n_rb) * cs : 0);
  put64(h + 48, cs);
  put32(h + 56, (uint32_t)n_tab);
  size_t pos = 72;
  if (version == 3) {
    put32(h + 96, order);
    put32(h + 100, 104);
    pos = 104;
  }
  if (o.backing_file != NULL) {
    const char *fmt = nb_block_format_name(backing_format);
    size_t flen = strlen(fmt);
    put32(h + pos, QCOW2_EXT_BACKING_FORMAT);
    put32(h + pos + 4, (uint32_t)flen);
    memcpy(h + pos + 8, fmt, flen);
    pos += 8 + ((flen + 7) & ~(size_t)7);
  }
  pos += 8;  /* end of extensions */
  if (o.backing_file != NULL) {
    size_t blen = strlen(o.backing_file);
    if (pos + blen > cs)
      return fail(path, error, NB_BLOCK_ERROR_UNSUPPORTED,
                  "the backing file name does not fit in a %" G_GUINT64_FORMAT "-byte cluster",
                  cs);
    put64(h + 8, pos);
    put32(h + 16, (uint32_t)blen);
    memcpy(h + pos, o.backing_file, blen);
  }
  /* Refcount table, then blocks counting every cluster written here. */
  for (uint64_t i = 0; i < n_rb; i++)
    put64(img + cs + i * 8, (1 + n_tab + i) * cs);
  uint8_t *rb = img + (1 + n_tab) * cs;
  unsigned width = 1u << order;
  for (uint64_t c = 0; c < total; c++) {
    uint64_t bit = c * width;   /* bit position counted from the first block */
    uint8_t *p = rb + bit / 8;
    if (width < 8)
      *p |= (uint8_t)(1u << (bit % 8));
    else
      p[width / 8 - 1] = 1;
  }

  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail(path, error, NB_BLOCK_ERROR_FAILED, "%s%s", g_strerror(errno),
                errno == EEXIST ? " (remove it first or choose another name)" : "");
  GError *local = NULL;
  bool ok = nb_block_pwrite_full(fd, img, (n_tab + n_rb + 1) * cs, 0, path, &local);
  if (ok && ftruncate(fd, (off_t)(total * cs)) < 0)
    ok = fail(path, &local, NB_BLOCK_ERROR_FAILED, "%s", g_strerror(errno));
  if (ok && fsync(fd) < 0)
    ok = fail(path, &local, NB_BLOCK_ERROR_FAILED, "%s", g_strerror(errno));
  close(fd);
  if (!ok) {
    unlink(path);
    g_propagate_error(error, local);
  }
  return ok;
}
