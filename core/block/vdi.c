/* VirtualBox VDI images, read-only, for import: a header, a block map of
 * 32-bit entries and the blocks. */
#include "block/block-private.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define VDI_SIGNATURE 0xbeda107fu
#define VDI_VERSION_1_1 0x00010001u
#define VDI_TYPE_DYNAMIC 1u
#define VDI_TYPE_FIXED 2u
#define VDI_UNALLOCATED 0xffffffffu
#define VDI_ZERO 0xfffffffeu
#define VDI_MAX_BLOCKS (UINT32_C(1) << 24)   /* 16 TiB at 1 MiB blocks */

typedef struct {
  uint32_t *map;         /* host byte order */
  uint32_t n_blocks;
  uint32_t block_size;
  uint64_t data_offset;
} NbVdi;

static uint32_t le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return GUINT32_FROM_LE(v); }
static uint64_t le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return GUINT64_FROM_LE(v); }

static bool
bad(NbBlock *block, GError **error, const char *what)
{
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT,
              "%s: invalid VDI image: %s", block->path, what);
  return false;
}

static bool
vdi_preadv(NbBlock *block, const struct iovec *iov, int iovcnt, uint64_t offset,
           GError **error)
{
  NbVdi *v = block->opaque;
  size_t total = nb_iov_size(iov, iovcnt);
  for (size_t done = 0; done < total;) {
    uint64_t pos = offset + done;
    uint64_t bi = pos / v->block_size;
    uint64_t in = pos % v->block_size;
    size_t n = (size_t)MIN(v->block_size - in, total - done);
    uint32_t entry = bi < v->n_blocks ? v->map[bi] : VDI_UNALLOCATED;
    if (entry == VDI_UNALLOCATED || entry == VDI_ZERO) {
      nb_iov_memset(iov, iovcnt, done, 0, n);
    } else {
      if (entry >= v->n_blocks)
        return bad(block, error, "a block map entry points past the last block");
      int cnt;
      g_autofree struct iovec *sub = nb_iov_slice(iov, iovcnt, done, n, &cnt);
      uint64_t host = v->data_offset + (uint64_t)entry * v->block_size + in;
      if (!nb_block_fd_rw(block->fd, block->path, sub, cnt, host, false, error))
        return false;
    }
    done += n;
  }
  return true;
}

static bool
vdi_is_allocated(NbBlock *block, uint64_t offset, uint64_t len, uint64_t *pnum)
{
  NbVdi *v = block->opaque;
  uint64_t bi = offset / v->block_size;
  uint32_t entry = bi < v->n_blocks ? v->map[bi] : VDI_UNALLOCATED;
  *pnum = MIN(len, v->block_size - offset % v->block_size);
  return entry != VDI_UNALLOCATED && entry != VDI_ZERO;
}

static void
vdi_close(NbBlock *block)
{
  NbVdi *v = block->opaque;
  if (v) {
    g_free(v->map);
    g_free(v);
  }
}

static const NbBlockDriver vdi_driver = {
  .name = "vdi",
  .preadv = vdi_preadv,
  .is_allocated = vdi_is_allocated,
  .close = vdi_close,
};

bool
nb_vdi_open(NbBlock *block, GError **error)
{
  uint8_t h[512];
  struct stat st;
  if (fstat(block->fd, &st) < 0 || st.st_size < 512)
    return bad(block, error, "the header is truncated");
  if (!nb_block_pread_full(block->fd, h, sizeof h, 0, block->path, error))
    return false;
  if (le32(h + 0x40) != VDI_SIGNATURE)
    return bad(block, error, "no VDI signature");
  uint32_t version = le32(h + 0x44);
  if (version != VDI_VERSION_1_1) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: VDI version %u.%u is not supported (only 1.1)", block->path,
                version >> 16, version & 0xffff);
    return false;
  }
  uint32_t type = le32(h + 0x4c);
  if (type != VDI_TYPE_DYNAMIC && type != VDI_TYPE_FIXED) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: VDI image type %u is not supported (differencing images need their "
                "parent: clone the disk in VirtualBox first)", block->path, type);
    return false;
  }
  uint32_t map_offset = le32(h + 0x154);
  uint32_t data_offset = le32(h + 0x158);
  uint32_t sector_size = le32(h + 0x168);
  uint64_t disk_size = le64(h + 0x170);
  uint32_t block_size = le32(h + 0x178);
  uint32_t block_extra = le32(h + 0x17c);
  uint32_t n_blocks = le32(h + 0x180);
  if (sector_size != 512)
    return bad(block, error, "the sector size is not 512");
  if (block_size < 512 || block_size > (64u << 20) || (block_size & (block_size - 1)) != 0)
    return bad(block, error, "the block size is not a power of two from 512 bytes to 64 MiB");
  if (block_extra != 0)
    return bad(block, error, "blocks with extra data are not supported");
  if (n_blocks > VDI_MAX_BLOCKS)
    return bad(block, error, "the block map is too large");
  if (disk_size > (uint64_t)n_blocks * block_size)
    return bad(block, error, "the disk is larger than its blocks");
  if ((uint64_t)map_offset + (uint64_t)n_blocks * 4 > (uint64_t)st.st_size)
    return bad(block, error, "the block map lies beyond the end of the file");
  if (map_offset < 0x180 || data_offset < (uint64_t)map_offset + (uint64_t)n_blocks * 4)
    return bad(block, error, "the block map overlaps the header or the data");

  NbVdi *v = g_new0(NbVdi, 1);
  v->n_blocks = n_blocks;
  v->block_size = block_size;
  v->data_offset = data_offset;
  v->map = g_new(uint32_t, MAX(n_blocks, 1));
  if (!nb_block_pread_full(block->fd, v->map, (size_t)n_blocks * 4, map_offset, block->path,
                           error)) {
    g_free(v->map);
    g_free(v);
    return false;
  }
  for (uint32_t i = 0; i < n_blocks; i++) {
    v->map[i] = GUINT32_FROM_LE(v->map[i]);
    if (v->map[i] < VDI_ZERO && v->map[i] >= n_blocks) {
      g_free(v->map);
      g_free(v);
      return bad(block, error, "a block map entry points past the last block");
    }
  }
  block->opaque = v;
  block->driver = &vdi_driver;
  block->size = disk_size;
  return true;
}
