/* Host file access shared by the backends: opening with the image lock,
 * positional I/O that never returns short, and iovec copying. */
#include "block/block-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/uio.h>
#include <limits.h>

/* QEMU's image locking protocol, so that QEMU and Nestbox refuse each other
 * too: byte 100+i held (shared) means "I use permission i", byte 200+i held
 * means "nobody else may use permission i". Permissions: 0 consistent read,
 * 1 write, 2 write-unchanged, 3 resize. OFD locks belong to the open file, so
 * a second open in this same process is refused as well. */
#define LOCK_PERM_BASE 100
#define LOCK_SHARED_BASE 200
#define PERM_READ 0x1u
#define PERM_WRITE 0x2u
#define PERM_WRITE_UNCHANGED 0x4u
#define PERM_RESIZE 0x8u

static int
lock_byte(int fd, int cmd, short type, off_t byte, struct flock *out)
{
  struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
  int r = fcntl(fd, cmd, &fl);
  if (out)
    *out = fl;
  return r;
}

bool
nb_block_lock(int fd, const char *path, bool exclusive, GError **error)
{
  unsigned use = exclusive ? PERM_READ | PERM_WRITE | PERM_WRITE_UNCHANGED | PERM_RESIZE
                           : PERM_READ;
  /* Writers and readers alike forbid other writers and resizers. */
  unsigned deny = PERM_WRITE | PERM_RESIZE;
  for (int i = 0; i < 4; i++) {
    if (((use >> i) & 1) && lock_byte(fd, F_OFD_SETLK, F_RDLCK, LOCK_PERM_BASE + i, NULL) < 0)
      goto failed;
    if (((deny >> i) & 1) && lock_byte(fd, F_OFD_SETLK, F_RDLCK, LOCK_SHARED_BASE + i, NULL) < 0)
      goto failed;
  }
  for (int i = 0; i < 4; i++) {
    struct flock fl;
    /* Someone else forbids what we use, or uses what we forbid? */
    if ((use >> i) & 1) {
      if (lock_byte(fd, F_OFD_GETLK, F_WRLCK, LOCK_SHARED_BASE + i, &fl) < 0)
        goto failed;
      if (fl.l_type != F_UNLCK)
        goto busy;
    }
    if ((deny >> i) & 1) {
      if (lock_byte(fd, F_OFD_GETLK, F_WRLCK, LOCK_PERM_BASE + i, &fl) < 0)
        goto failed;
      if (fl.l_type != F_UNLCK)
        goto busy;
    }
  }
  return true;

busy:
  {
    struct flock all = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    fcntl(fd, F_OFD_SETLK, &all);
  }
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_LOCKED,
              "%s is in use by another program (a running machine, qemu or "
              "nestboxctl): stop that user first%s", path,
              exclusive ? "" : ", or wait until it stops writing");
  return false;

failed:;
  int saved = errno;
  if (saved == EAGAIN || saved == EACCES)
    goto busy;
  if (saved == EINVAL || saved == ENOLCK || saved == EOPNOTSUPP)
    return true;  /* the filesystem has no locks (some network filesystems) */
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED,
              "%s: cannot lock the image: %s", path, g_strerror(saved));
  return false;
}

int
nb_block_open_file(const char *path, bool read_only, bool no_lock, GError **error)
{
  int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && errno == EISDIR) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s is a directory, not a disk image: name the image file inside it", path);
    return -1;
  }
  if (fd < 0) {
    int saved = errno;
    g_set_error(error, NB_BLOCK_ERROR,
                saved == ENOENT ? NB_BLOCK_ERROR_NOT_FOUND : NB_BLOCK_ERROR_FAILED,
                "cannot open disk image %s: %s%s", path, g_strerror(saved),
                saved == EACCES || saved == EROFS ? " (open it read-only or fix its permissions)" : "");
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
    close(fd);
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s is not a disk image: only regular files and block devices can be disks",
                path);
    return -1;
  }
  /* O_NONBLOCK only kept open() from hanging on a FIFO; disk I/O blocks. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (!no_lock && !nb_block_lock(fd, path, !read_only, error)) {
    close(fd);
    return -1;
  }
  return fd;
}

bool
nb_block_pread_full(int fd, void *buf, size_t len, uint64_t offset, const char *path,
                    GError **error)
{
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)offset);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED,
                  "%s: read at %" G_GUINT64_FORMAT " failed: %s", path, offset,
                  g_strerror(errno));
      return false;
    }
    if (n == 0) {
      memset(p, 0, len);
      return true;
    }
    p += n;
    len -= (size_t)n;
    offset += (uint64_t)n;
  }
  return true;
}

bool
nb_block_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset,
                     const char *path, GError **error)
{
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, (off_t)offset);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED,
                  "%s: write at %" G_GUINT64_FORMAT " failed: %s%s", path, offset,
                  g_strerror(errno), errno == ENOSPC ? " (free some space on the host)" : "");
      return false;
    }
    p += n;
    len -= (size_t)n;
    offset += (uint64_t)n;
  }
  return true;
}

bool
nb_block_fdatasync(int fd, const char *path, GError **error)
{
  while (fdatasync(fd) < 0) {
    if (errno == EINTR)
      continue;
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "%s: flush failed: %s",
                path, g_strerror(errno));
    return false;
  }
  return true;
}

void
nb_iov_to_buf(const struct iovec *iov, int iovcnt, size_t skip, void *buf, size_t len)
{
  uint8_t *out = buf;
  for (int i = 0; i < iovcnt && len > 0; i++) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    size_t n = MIN(iov[i].iov_len - skip, len);
    memcpy(out, (uint8_t *)iov[i].iov_base + skip, n);
    out += n;
    len -= n;
    skip = 0;
  }
}

void
nb_iov_from_buf(const struct iovec *iov, int iovcnt, size_t skip, const void *buf, size_t len)
{
  const uint8_t *in = buf;
  for (int i = 0; i < iovcnt && len > 0; i++) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    size_t n = MIN(iov[i].iov_len - skip, len);
    memcpy((uint8_t *)iov[i].iov_base + skip, in, n);
    in += n;
    len -= n;
    skip = 0;
  }
}

bool
nb_block_fd_rw(int fd, const char *path, const struct iovec *iov, int iovcnt,
               uint64_t offset, bool write, GError **error)
{
  /* preadv/pwritev may stop short; continue from where they stopped with a
   * local copy of the vector so the caller's stays untouched. */
  struct iovec local[64];
  g_autofree struct iovec *heap = NULL;
  struct iovec *v = local;
  if (iovcnt > (int)G_N_ELEMENTS(local))
    v = heap = g_new(struct iovec, iovcnt);
  memcpy(v, iov, sizeof *v * (size_t)iovcnt);
  int cnt = iovcnt;
  while (cnt > 0) {
    if (v[0].iov_len == 0) {
      v++;
      cnt--;
      continue;
    }
    ssize_t n = write ? pwritev(fd, v, MIN(cnt, IOV_MAX), (off_t)offset)
                      : preadv(fd, v, MIN(cnt, IOV_MAX), (off_t)offset);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED,
                  "%s: %s at %" G_GUINT64_FORMAT " failed: %s%s", path,
                  write ? "write" : "read", offset, g_strerror(errno),
                  errno == ENOSPC ? " (free some space on the host)" : "");
      return false;
    }
    if (n == 0) {
      if (write) {
        g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED,
                    "%s: write at %" G_GUINT64_FORMAT " made no progress", path, offset);
        return false;
      }
      /* The file shrank under us: what is gone reads as zeroes. */
      for (int i = 0; i < cnt; i++)
        memset(v[i].iov_base, 0, v[i].iov_len);
      return true;
    }
    offset += (uint64_t)n;
    size_t done = (size_t)n;
    while (cnt > 0 && done >= v[0].iov_len) {
      done -= v[0].iov_len;
      v++;
      cnt--;
    }
    if (cnt > 0 && done > 0) {
      v[0].iov_base = (uint8_t *)v[0].iov_base + done;
      v[0].iov_len -= done;
    }
  }
  return true;
}


struct iovec *
nb_iov_slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len, int *out_cnt)
{
  struct iovec *out = g_new(struct iovec, MAX(iovcnt, 1));
  int n = 0;
  for (int i = 0; i < iovcnt && len > 0; i++) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    size_t take = MIN(iov[i].iov_len - skip, len);
    out[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
    out[n].iov_len = take;
    n++;
    len -= take;
    skip = 0;
  }
  *out_cnt = n;
  return out;
}

void
nb_iov_memset(const struct iovec *iov, int iovcnt, size_t skip, int c, size_t len)
{
  for (int i = 0; i < iovcnt && len > 0; i++) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    size_t n = MIN(iov[i].iov_len - skip, len);
    memset((uint8_t *)iov[i].iov_base + skip, c, n);
    len -= n;
    skip = 0;
  }
}
