/* Raw images: the file is the disk, byte for byte. */
#include "block/block-private.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static bool
raw_preadv(NbBlock *block, const struct iovec *iov, int iovcnt, uint64_t offset,
           GError **error)
{
  return nb_block_fd_rw(block->fd, block->path, iov, iovcnt, offset, false, error);
}

static bool
raw_pwritev(NbBlock *block, const struct iovec *iov, int iovcnt, uint64_t offset,
            GError **error)
{
  return nb_block_fd_rw(block->fd, block->path, iov, iovcnt, offset, true, error);
}

static bool
raw_flush(NbBlock *block, GError **error)
{
  return nb_block_fdatasync(block->fd, block->path, error);
}

static bool
write_zero_buffer(NbBlock *block, uint64_t offset, uint64_t len, GError **error)
{
  size_t chunk = (size_t)MIN(len, 1u << 20);
  g_autofree uint8_t *zero = g_malloc0(chunk);
  while (len > 0) {
    size_t n = (size_t)MIN(len, chunk);
    if (!nb_block_pwrite_full(block->fd, zero, n, offset, block->path, error))
      return false;
    offset += n;
    len -= n;
  }
  return true;
}

static bool
unsupported(int err)
{
  return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL || err == ENODEV;
}

static bool
raw_discard(NbBlock *block, uint64_t offset, uint64_t len, GError **error)
{
  if (fallocate(block->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                (off_t)len) == 0)
    return true;
  if (!unsupported(errno)) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "%s: discard failed: %s",
                block->path, g_strerror(errno));
    return false;
  }
  /* No holes here: discarded data must still read as zeroes. */
  return write_zero_buffer(block, offset, len, error);
}

static bool
raw_write_zeroes(NbBlock *block, uint64_t offset, uint64_t len, GError **error)
{
  if (fallocate(block->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                (off_t)len) == 0)
    return true;
  if (!unsupported(errno))
    goto failed;
  if (fallocate(block->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                (off_t)len) == 0)
    return true;
  if (!unsupported(errno))
    goto failed;
  return write_zero_buffer(block, offset, len, error);
failed:
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "%s: writing zeroes failed: %s",
              block->path, g_strerror(errno));
  return false;
}

static bool
raw_resize(NbBlock *block, uint64_t new_size, GError **error)
{
  struct stat st;
  if (fstat(block->fd, &st) == 0 && S_ISBLK(st.st_mode)) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s is a block device: resize the device itself", block->path);
    return false;
  }
  if (new_size > INT64_MAX || ftruncate(block->fd, (off_t)new_size) < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "%s: resize failed: %s",
                block->path, g_strerror(new_size > INT64_MAX ? EFBIG : errno));
    return false;
  }
  block->size = new_size;
  return true;
}

static bool
raw_is_allocated(NbBlock *block, uint64_t offset, uint64_t len, uint64_t *pnum)
{
  off_t data = lseek(block->fd, (off_t)offset, SEEK_DATA);
  if (data < 0) {
    if (errno == ENXIO) {   /* only a hole up to the end */
      *pnum = len;
      return false;
    }
    *pnum = len;
    return true;
  }
  if ((uint64_t)data > offset) {
    *pnum = MIN(len, (uint64_t)data - offset);
    return false;
  }
  off_t hole = lseek(block->fd, (off_t)offset, SEEK_HOLE);
  if (hole < 0 || (uint64_t)hole <= offset)
    *pnum = len;
  else
    *pnum = MIN(len, (uint64_t)hole - offset);
  return true;
}

static const NbBlockDriver raw_driver = {
  .name = "raw",
  .preadv = raw_preadv,
  .pwritev = raw_pwritev,
  .flush = raw_flush,
  .discard = raw_discard,
  .write_zeroes = raw_write_zeroes,
  .resize = raw_resize,
  .is_allocated = raw_is_allocated,
};

bool
nb_raw_open(NbBlock *block, GError **error)
{
  struct stat st;
  if (fstat(block->fd, &st) < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "%s: %s", block->path,
                g_strerror(errno));
    return false;
  }
  uint64_t size = (uint64_t)st.st_size;
  if (S_ISBLK(st.st_mode) && ioctl(block->fd, BLKGETSIZE64, &size) < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED,
                "%s: cannot read the size of the block device: %s", block->path,
                g_strerror(errno));
    return false;
  }
  block->driver = &raw_driver;
  block->size = size;
  return true;
}

bool
nb_raw_create(const char *path, uint64_t size, GError **error)
{
  if (size > INT64_MAX) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_OUT_OF_RANGE,
                "cannot create %s: %" G_GUINT64_FORMAT " bytes is too large", path, size);
    return false;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "cannot create %s: %s%s",
                path, g_strerror(errno),
                errno == EEXIST ? " (remove it first or choose another name)" : "");
    return false;
  }
  if (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0) {
    int saved = errno;
    close(fd);
    unlink(path);
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "cannot create %s: %s", path,
                g_strerror(saved));
    return false;
  }
  close(fd);
  return true;
}
