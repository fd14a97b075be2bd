/* VMware VMDK images, read-only, for import: monolithic sparse files
 * ("KDMV" header, grain directory, grain tables) and descriptor files naming
 * flat, zero or sparse extents. streamOptimized (compressed) grains are read
 * too. Extent files named by a descriptor must lie in its folder or below. */
#include "block/block-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define VMDK4_MAGIC 0x564d444bu   /* "KDMV" little-endian */
#define VMDK_FLAG_COMPRESSED (1u << 16)
#define VMDK_FLAG_MARKERS (1u << 17)
#define VMDK_GD_AT_END UINT64_C(0xffffffffffffffff)
#define VMDK_MAX_DESCRIPTOR (64 * 1024)
#define VMDK_MAX_EXTENTS 1024
#define VMDK_MAX_GD_BYTES (64u << 20)
#define VMDK_MAX_CAPACITY (UINT64_C(1) << 46)   /* sectors: 32 PiB */

typedef enum { EXTENT_FLAT, EXTENT_ZERO, EXTENT_SPARSE } ExtentType;

typedef struct {
  ExtentType type;
  int fd;                 /* -1 for ZERO; may be the image's own fd */
  bool own_fd;
  char *path;
  uint64_t start;         /* first byte of the disk it holds */
  uint64_t len;           /* bytes of the disk it holds */
  uint64_t flat_offset;   /* FLAT: byte offset in its file */
  /* SPARSE */
  uint64_t grain;         /* bytes per grain */
  uint32_t gtes;          /* grain table entries per table */
  uint32_t *gd;           /* grain directory, sector offsets */
  uint64_t n_gd;
  uint64_t file_size;
  bool compressed;
  uint32_t *gt;           /* the last grain table read */
  uint64_t gt_sector;
  uint8_t *grain_buf;     /* compressed grains: the last one inflated */
  uint64_t grain_sector;
  uint8_t *cbuf;
} Extent;

typedef struct {
  Extent *extents;
  unsigned n;
  GMutex lock;            /* the grain table and grain caches */
} NbVmdk;

static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return GUINT32_FROM_LE(v); }
static uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return GUINT64_FROM_LE(v); }

static bool
bad(const char *path, GError **error, const char *format, ...) G_GNUC_PRINTF(3, 4);

static bool
bad(const char *path, GError **error, const char *format, ...)
{
  va_list ap;
  va_start(ap, format);
  g_autofree char *what = g_strdup_vprintf(format, ap);
  va_end(ap);
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT, "%s: invalid VMDK image: %s",
              path, what);
  return false;
}

static bool
unsupported(const char *path, GError **error, const char *what)
{
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
              "%s: %s is not supported: convert it with qemu-img convert -O qcow2 first",
              path, what);
  return false;
}

/* Reads the sparse extent header at the start of e->fd. */
static bool
open_sparse(Extent *e, GError **error)
{
  uint8_t h[512];
  struct stat st;
  if (fstat(e->fd, &st) < 0 || st.st_size < 512)
    return bad(e->path, error, "the sparse header is truncated");
  e->file_size = (uint64_t)st.st_size;
  if (!nb_block_pread_full(e->fd, h, sizeof h, 0, e->path, error))
    return false;
  if (le32(h) != VMDK4_MAGIC)
    return bad(e->path, error, "no sparse extent header");
  uint32_t version = le32(h + 4), flags = le32(h + 8);
  uint64_t capacity = le64(h + 12), grain = le64(h + 20);
  uint32_t gtes = le32(h + 44);
  uint64_t gd_offset = le64(h + 56);
  uint16_t algo = (uint16_t)(h[77] | h[78] << 8);
  if (version < 1 || version > 3)
    return unsupported(e->path, error, "this VMDK version");
  if (gd_offset == VMDK_GD_AT_END) {
    /* streamOptimized: the real header is the footer, 1 KiB before the end. */
    if (e->file_size < 1536)
      return bad(e->path, error, "the footer is missing");
    if (!nb_block_pread_full(e->fd, h, sizeof h, e->file_size - 1024, e->path, error))
      return false;
    if (le32(h) != VMDK4_MAGIC)
      return bad(e->path, error, "the footer has no sparse extent header");
    flags = le32(h + 8);
    capacity = le64(h + 12);
    grain = le64(h + 20);
    gtes = le32(h + 44);
    gd_offset = le64(h + 56);
    algo = (uint16_t)(h[77] | h[78] << 8);
  }
  e->compressed = (flags & VMDK_FLAG_COMPRESSED) != 0;
  if (e->compressed && algo != 1)
    return unsupported(e->path, error, "this VMDK compression algorithm");
  if (capacity > VMDK_MAX_CAPACITY)
    return bad(e->path, error, "the capacity is too large");
  if (grain == 0 || grain > 65536 || (grain & (grain - 1)) != 0)
    return bad(e->path, error, "the grain size is not a power of two up to 32 MiB");
  if (gtes == 0 || gtes > 65536)
    return bad(e->path, error, "grain tables of %u entries are out of range", gtes);
  e->grain = grain * 512;
  e->gtes = gtes;
  uint64_t grains = (capacity + grain - 1) / grain;
  e->n_gd = (grains + gtes - 1) / gtes;
  if (e->n_gd * 4 > VMDK_MAX_GD_BYTES)
    return bad(e->path, error, "the grain directory is too large");
  if (gd_offset == 0 || gd_offset > e->file_size / 512 ||
      e->n_gd * 4 > e->file_size - gd_offset * 512)
    return bad(e->path, error, "the grain directory lies beyond the end of the file");
  e->gd = g_new(uint32_t, MAX(e->n_gd, 1));
  if (!nb_block_pread_full(e->fd, e->gd, e->n_gd * 4, gd_offset * 512, e->path, error))
    return false;
  for (uint64_t i = 0; i < e->n_gd; i++) {
    e->gd[i] = GUINT32_FROM_LE(e->gd[i]);
    if (e->gd[i] != 0 && ((uint64_t)e->gd[i] * 512 + (uint64_t)gtes * 4 > e->file_size))
      return bad(e->path, error, "grain table %" G_GUINT64_FORMAT " lies beyond the end of the file", i);
  }
  e->gt = g_new(uint32_t, gtes);
  e->gt_sector = 0;
  if (e->compressed) {
    e->grain_buf = g_malloc(e->grain);
    e->cbuf = g_malloc(e->grain + e->grain / 2 + 1024);
  }
  if (e->len == 0)
    e->len = capacity * 512;
  return true;
}

static bool
read_compressed_grain(Extent *e, uint64_t sector, GError **error)
{
  if (e->grain_sector == sector)
    return true;
  e->grain_sector = 0;
  uint8_t hdr[12];
  if (!nb_block_pread_full(e->fd, hdr, sizeof hdr, sector * 512, e->path, error))
    return false;
  uint32_t size = le32(hdr + 8);
  if (size == 0 || size > e->grain + e->grain / 2 + 1000 ||
      sector * 512 + 12 + size > e->file_size)
    return bad(e->path, error, "a compressed grain at sector %" G_GUINT64_FORMAT
               " has an invalid size", sector);
  if (!nb_block_pread_full(e->fd, e->cbuf, size, sector * 512 + 12, e->path, error))
    return false;
  uLongf out = (uLongf)e->grain;
  int ret = uncompress(e->grain_buf, &out, e->cbuf, size);
  if (ret != Z_OK && ret != Z_BUF_ERROR)
    return bad(e->path, error, "a compressed grain at sector %" G_GUINT64_FORMAT
               " does not decompress", sector);
  if (out < e->grain)
    memset(e->grain_buf + out, 0, e->grain - out);
  e->grain_sector = sector;
  return true;
}

/* Host sector of the grain holding byte rel of the extent; 0 = reads as zero. */
static bool
grain_sector(Extent *e, uint64_t rel, uint64_t *sector, GError **error)
{
  uint64_t gi = rel / e->grain;
  uint64_t gdi = gi / e->gtes;
  *sector = 0;
  if (gdi >= e->n_gd || e->gd[gdi] == 0)
    return true;
  if (e->gt_sector != e->gd[gdi]) {
    e->gt_sector = 0;
    if (!nb_block_pread_full(e->fd, e->gt, (size_t)e->gtes * 4, (uint64_t)e->gd[gdi] * 512,
                             e->path, error))
      return false;
    for (uint32_t i = 0; i < e->gtes; i++)
      e->gt[i] = GUINT32_FROM_LE(e->gt[i]);
    e->gt_sector = e->gd[gdi];
  }
  uint32_t s = e->gt[gi % e->gtes];
  if (s <= 1)   /* 1: a grain of zeroes (version 2 and later) */
    return true;
  if ((uint64_t)s * 512 >= e->file_size)
    return bad(e->path, error, "grain at sector %u lies beyond the end of the file", s);
  *sector = s;
  return true;
}

static bool
read_extent(NbVmdk *v, Extent *e, const struct iovec *iov, int iovcnt, size_t skip,
            size_t len, uint64_t rel, GError **error)
{
  if (e->type == EXTENT_ZERO) {
    nb_iov_memset(iov, iovcnt, skip, 0, len);
    return true;
  }
  if (e->type == EXTENT_FLAT) {
    int cnt;
    g_autofree struct iovec *sub = nb_iov_slice(iov, iovcnt, skip, len, &cnt);
    return nb_block_fd_rw(e->fd, e->path, sub, cnt, e->flat_offset + rel, false, error);
  }
  for (size_t done = 0; done < len;) {
    uint64_t pos = rel + done;
    uint64_t in = pos % e->grain;
    size_t n = (size_t)MIN(e->grain - in, len - done);
    uint64_t sector;
    g_mutex_lock(&v->lock);
    bool ok = grain_sector(e, pos, &sector, error);
    if (ok && sector != 0 && e->compressed) {
      ok = read_compressed_grain(e, sector, error);
      if (ok)
        nb_iov_from_buf(iov, iovcnt, skip + done, e->grain_buf + in, n);
    }
    g_mutex_unlock(&v->lock);
    if (!ok)
      return false;
    if (sector == 0) {
      nb_iov_memset(iov, iovcnt, skip + done, 0, n);
    } else if (!e->compressed) {
      int cnt;
      g_autofree struct iovec *sub = nb_iov_slice(iov, iovcnt, skip + done, n, &cnt);
      if (!nb_block_fd_rw(e->fd, e->path, sub, cnt, sector * 512 + in, false, error))
        return false;
    }
    done += n;
  }
  return true;
}

static bool
vmdk_preadv(NbBlock *block, const struct iovec *iov, int iovcnt, uint64_t offset,
            GError **error)
{
  NbVmdk *v = block->opaque;
  size_t total = nb_iov_size(iov, iovcnt);
  size_t done = 0;
  for (unsigned i = 0; i < v->n && done < total; i++) {
    Extent *e = &v->extents[i];
    uint64_t pos = offset + done;
    if (pos >= e->start + e->len)
      continue;
    size_t n = (size_t)MIN((uint64_t)(total - done), e->start + e->len - pos);
    if (!read_extent(v, e, iov, iovcnt, done, n, pos - e->start, error))
      return false;
    done += n;
  }
  nb_iov_memset(iov, iovcnt, done, 0, total - done);
  return true;
}

static bool
vmdk_is_allocated(NbBlock *block, uint64_t offset, uint64_t len, uint64_t *pnum)
{
  NbVmdk *v = block->opaque;
  *pnum = len;
  for (unsigned i = 0; i < v->n; i++) {
    Extent *e = &v->extents[i];
    if (offset >= e->start + e->len)
      continue;
    *pnum = MIN(len, e->start + e->len - offset);
    if (e->type == EXTENT_ZERO)
      return false;
    if (e->type == EXTENT_FLAT)
      return true;
    uint64_t rel = offset - e->start, sector = 1;
    *pnum = MIN(*pnum, e->grain - rel % e->grain);
    g_mutex_lock(&v->lock);
    bool ok = grain_sector(e, rel, &sector, NULL);
    g_mutex_unlock(&v->lock);
    return !ok || sector != 0;
  }
  return false;
}

static void
extent_clear(Extent *e)
{
  if (e->own_fd && e->fd >= 0)
    close(e->fd);
  g_free(e->path);
  g_free(e->gd);
  g_free(e->gt);
  g_free(e->grain_buf);
  g_free(e->cbuf);
}

static void
vmdk_free(NbVmdk *v)
{
  for (unsigned i = 0; i < v->n; i++)
    extent_clear(&v->extents[i]);
  g_free(v->extents);
  g_mutex_clear(&v->lock);
  g_free(v);
}

static void
vmdk_close(NbBlock *block)
{
  if (block->opaque)
    vmdk_free(block->opaque);
}

static const NbBlockDriver vmdk_driver = {
  .name = "vmdk",
  .preadv = vmdk_preadv,
  .is_allocated = vmdk_is_allocated,
  .close = vmdk_close,
};

/* An extent file named in a descriptor: relative, inside its folder. */
static int
open_extent_file(NbBlock *block, const char *name, char **out_path, GError **error)
{
  for (const unsigned char *p = (const unsigned char *)name; *p; p++)
    if (*p < 0x20 || *p == 0x7f) {
      bad(block->path, error, "an extent file name contains control characters");
      return -1;
    }
  g_auto(GStrv) parts = g_strsplit(name, "/", -1);
  bool escapes = g_path_is_absolute(name) || *name == '\0';
  for (int i = 0; parts[i]; i++)
    if (strcmp(parts[i], "..") == 0)
      escapes = true;
  if (escapes) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: extent file “%s” is outside the descriptor's folder: Nestbox only "
                "reads extents next to the descriptor (move them there)", block->path, name);
    return -1;
  }
  g_autofree char *dir = g_path_get_dirname(block->path);
  *out_path = g_build_filename(dir, name, NULL);
  return nb_block_open_file(*out_path, true, false, error);
}

static bool
parse_descriptor(NbBlock *block, NbVmdk *v, const char *text, GError **error)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  GArray *extents = g_array_new(FALSE, TRUE, sizeof(Extent));
  uint64_t at = 0;
  bool ok = true;
  for (int i = 0; lines[i] && ok; i++) {
    g_strstrip(lines[i]);
    const char *l = lines[i];
    if (g_str_has_prefix(l, "parentCID")) {
      const char *eq = strchr(l, '=');
      g_autofree char *val = g_strstrip(g_strdup(eq ? eq + 1 : ""));
      if (g_ascii_strcasecmp(val, "ffffffff") != 0)
        ok = unsupported(block->path, error, "a VMDK with a parent (snapshot delta)");
      continue;
    }
    if (!(g_str_has_prefix(l, "RW ") || g_str_has_prefix(l, "RDONLY ") ||
          g_str_has_prefix(l, "NOACCESS ")))
      continue;
    if (extents->len >= VMDK_MAX_EXTENTS) {
      ok = bad(block->path, error, "too many extents");
      break;
    }
    char access[16], type[16];
    unsigned long long sectors = 0, offset = 0;
    int name_start = 0;
    if (sscanf(l, "%15s %llu %15s %n", access, &sectors, type, &name_start) < 3) {
      ok = bad(block->path, error, "cannot parse extent line “%s”", l);
      break;
    }
    Extent e = { .fd = -1, .start = at, .len = (uint64_t)sectors * 512 };
    if (sectors > VMDK_MAX_CAPACITY || at + e.len > (VMDK_MAX_CAPACITY * 512)) {
      ok = bad(block->path, error, "an extent is too large");
      break;
    }
    if (strcmp(type, "ZERO") == 0) {
      e.type = EXTENT_ZERO;
    } else {
      const char *q1 = strchr(l + name_start, '"');
      const char *q2 = q1 ? strchr(q1 + 1, '"') : NULL;
      if (q2 == NULL) {
        ok = bad(block->path, error, "extent line “%s” names no file", l);
        break;
      }
      g_autofree char *name = g_strndup(q1 + 1, (gsize)(q2 - q1 - 1));
      if (sscanf(q2 + 1, "%llu", &offset) != 1)
        offset = 0;
      if (strcmp(type, "FLAT") == 0 || strcmp(type, "VMFS") == 0) {
        e.type = EXTENT_FLAT;
        e.flat_offset = (uint64_t)offset * 512;
      } else if (strcmp(type, "SPARSE") == 0) {
        e.type = EXTENT_SPARSE;
      } else {
        ok = unsupported(block->path, error, "this VMDK extent type");
        break;
      }
      e.fd = open_extent_file(block, name, &e.path, error);
      if (e.fd < 0) {
        g_free(e.path);
        ok = false;
        break;
      }
      e.own_fd = true;
      if (e.type == EXTENT_SPARSE && !open_sparse(&e, error)) {
        extent_clear(&e);
        ok = false;
        break;
      }
    }
    at += e.len;
    g_array_append_val(extents, e);
  }
  v->n = extents->len;
  v->extents = (Extent *)g_array_free(extents, FALSE);
  if (ok && v->n == 0)
    ok = bad(block->path, error, "the descriptor names no extents");
  if (ok)
    block->size = at;
  return ok;
}

bool
nb_vmdk_open(NbBlock *block, GError **error)
{
  NbVmdk *v = g_new0(NbVmdk, 1);
  g_mutex_init(&v->lock);
  uint8_t magic[4] = { 0 };
  if (!nb_block_pread_full(block->fd, magic, 4, 0, block->path, error)) {
    vmdk_free(v);
    return false;
  }
  bool ok;
  if (le32(magic) == VMDK4_MAGIC) {
    /* monolithicSparse or streamOptimized: one sparse extent, this file. */
    v->extents = g_new0(Extent, 1);
    v->n = 1;
    Extent *e = &v->extents[0];
    e->type = EXTENT_SPARSE;
    e->fd = block->fd;
    e->path = g_strdup(block->path);
    ok = open_sparse(e, error);
    if (ok)
      block->size = e->len;
  } else {
    struct stat st;
    if (fstat(block->fd, &st) < 0 || st.st_size > VMDK_MAX_DESCRIPTOR) {
      vmdk_free(v);
      return bad(block->path, error, "the descriptor is larger than 64 KiB");
    }
    g_autofree char *text = g_malloc0((size_t)st.st_size + 1);
    ok = nb_block_pread_full(block->fd, text, (size_t)st.st_size, 0, block->path, error);
    /* qemu pads descriptors with NUL bytes: the text ends at the first. */
    if (ok)
      ok = parse_descriptor(block, v, text, error);
  }
  if (!ok) {
    vmdk_free(v);
    return false;
  }
  block->opaque = v;
  block->driver = &vmdk_driver;
  return true;
}
