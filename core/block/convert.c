/* Conversion between formats: the destination is created empty, so holes
 * and zero runs in the source are simply skipped. */
#include "block/convert.h"

#include <string.h>
#include <unistd.h>

#define CHUNK (UINT64_C(1) << 20)

static bool
all_zero(const uint8_t *p, size_t len)
{
  /* Compare the buffer with itself shifted by one byte: equal means uniform. */
  return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static bool
copy(NbBlock *src, NbBlock *dst, const NbConvertOptions *o, GError **error)
{
  uint64_t size = nb_block_size(src);
  g_autofree uint8_t *buf = g_malloc(CHUNK);
  for (uint64_t pos = 0; pos < size;) {
    uint64_t len = MIN(CHUNK, size - pos), n = 0;
    if (!nb_block_is_allocated(src, pos, len, &n)) {
      pos += MAX(n, 1);
      continue;
    }
    n = MIN(MAX(n, 1), len);
    struct iovec iov = { buf, (size_t)n };
    if (!nb_block_preadv(src, &iov, 1, pos, error))
      return false;
    /* Only the non-zero 4 KiB pieces, merged into runs: zero stays sparse. */
    for (size_t at = 0; at < n;) {
      size_t piece = (size_t)MIN(4096, n - at);
      if (all_zero(buf + at, piece)) {
        at += piece;
        continue;
      }
      size_t end = at + piece;
      while (end < n && !all_zero(buf + end, (size_t)MIN(4096, n - end)))
        end += (size_t)MIN(4096, n - end);
      struct iovec run = { buf + at, end - at };
      if (!nb_block_pwritev(dst, &run, 1, pos + at, error))
        return false;
      at = end;
    }
    pos += n;
    if (o->progress)
      o->progress(pos, size, o->progress_data);
  }
  return nb_block_flush(dst, error);
}

bool
nb_block_convert(NbBlock *src, const char *path, const NbConvertOptions *options,
                 GError **error)
{
  NbConvertOptions o = { .format = NB_BLOCK_FORMAT_QCOW2 };
  if (options)
    o = *options;
  uint64_t size = nb_block_size(src);
  bool created = false;
  if (o.format == NB_BLOCK_FORMAT_RAW) {
    created = nb_raw_create(path, size, error);
  } else if (o.format == NB_BLOCK_FORMAT_QCOW2) {
    NbQcow2CreateOptions q = o.qcow2;
    q.backing_file = NULL;
    created = nb_qcow2_create(path, size, &q, error);
  } else {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "cannot convert to %s: Nestbox writes raw and qcow2 images",
                nb_block_format_name(o.format));
    return false;
  }
  if (!created)
    return false;
  NbBlockOpenOptions open_opts = { .format = o.format };
  NbBlock *dst = nb_block_open(path, &open_opts, error);
  bool ok = dst != NULL && copy(src, dst, &o, error);
  nb_block_close(dst);
  if (!ok)
    unlink(path);
  return ok;
}
