/* The front of every disk image: format detection, range checks, then the
 * backend. */
#include "block/block-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK(nb-block-error-quark, nb_block_error)

const char *
nb_block_format_name(NbBlockFormat format)
{
  switch (format) {
  case NB_BLOCK_FORMAT_AUTO: return "auto";
  case NB_BLOCK_FORMAT_RAW: return "raw";
  case NB_BLOCK_FORMAT_QCOW2: return "qcow2";
  case NB_BLOCK_FORMAT_VDI: return "vdi";
  case NB_BLOCK_FORMAT_VMDK: return "vmdk";
  }
  return "unknown";
}

bool
nb_block_format_parse(const char *name, NbBlockFormat *out, GError **error)
{
  static const NbBlockFormat all[] = { NB_BLOCK_FORMAT_AUTO, NB_BLOCK_FORMAT_RAW,
                                       NB_BLOCK_FORMAT_QCOW2, NB_BLOCK_FORMAT_VDI,
                                       NB_BLOCK_FORMAT_VMDK };
  for (gsize i = 0; i < G_N_ELEMENTS(all); i++) {
    if (name != NULL && g_ascii_strcasecmp(name, nb_block_format_name(all[i])) == 0) {
      *out = all[i];
      return true;
    }
  }
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
              "unknown disk format “%s”: use raw, qcow2, vdi or vmdk", name ? name : "");
  return false;
}

/* Magic numbers only: a file that matches none is raw. */
static NbBlockFormat
probe(int fd)
{
  uint8_t buf[512] = { 0 };
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  if (n < 4)
    return NB_BLOCK_FORMAT_RAW;
  if (memcmp(buf, "QFI\xfb", 4) == 0)
    return NB_BLOCK_FORMAT_QCOW2;
  if (memcmp(buf, "KDMV", 4) == 0)
    return NB_BLOCK_FORMAT_VMDK;
  if (n >= 0x44 && buf[0x40] == 0x7f && buf[0x41] == 0x10 && buf[0x42] == 0xda &&
      buf[0x43] == 0xbe)
    return NB_BLOCK_FORMAT_VDI;
  if (n >= 21 && memcmp(buf, "# Disk DescriptorFile", 21) == 0)
    return NB_BLOCK_FORMAT_VMDK;
  return NB_BLOCK_FORMAT_RAW;
}

static NbBlock *
open_internal(const char *path, NbBlockFormat format, bool read_only, bool no_lock,
              const NbBlock *child, GError **error)
{
  int fd = nb_block_open_file(path, read_only, no_lock, error);
  if (fd < 0)
    return NULL;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    close(fd);
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "%s: %s", path,
                g_strerror(errno));
    return NULL;
  }
  for (const NbBlock *c = child; c != NULL; c = c->child) {
    if (c->dev == (uint64_t)st.st_dev && c->ino == (uint64_t)st.st_ino) {
      close(fd);
      g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT,
                  "%s: its backing chain loops back to %s: fix the backing file "
                  "name with qemu-img rebase -u", child->path, path);
      return NULL;
    }
  }
  if (format == NB_BLOCK_FORMAT_AUTO)
    format = probe(fd);
  if (!read_only && (format == NB_BLOCK_FORMAT_VDI || format == NB_BLOCK_FORMAT_VMDK)) {
    close(fd);
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: %s images can only be read: convert it with "
                "“nestboxctl disk convert %s NEW.qcow2” and use the copy",
                path, nb_block_format_name(format), path);
    return NULL;
  }

  NbBlock *block = g_new0(NbBlock, 1);
  block->path = g_strdup(path);
  block->fd = fd;
  block->read_only = read_only;
  block->format = format;
  block->depth = child ? child->depth + 1 : 0;
  block->child = child;
  block->dev = (uint64_t)st.st_dev;
  block->ino = (uint64_t)st.st_ino;
  bool ok = false;
  switch (format) {
  case NB_BLOCK_FORMAT_RAW: ok = nb_raw_open(block, error); break;
  case NB_BLOCK_FORMAT_QCOW2: ok = nb_qcow2_open(block, error); break;
  case NB_BLOCK_FORMAT_VDI: ok = nb_vdi_open(block, error); break;
  case NB_BLOCK_FORMAT_VMDK: ok = nb_vmdk_open(block, error); break;
  case NB_BLOCK_FORMAT_AUTO: break;
  }
  if (!ok) {
    close(fd);
    g_free(block->path);
    g_free(block);
    return NULL;
  }
  return block;
}

NbBlock *
nb_block_open(const char *path, const NbBlockOpenOptions *options, GError **error)
{
  NbBlockOpenOptions defaults = { .format = NB_BLOCK_FORMAT_AUTO };
  if (options == NULL)
    options = &defaults;
  GError *local = NULL;
  NbBlock *block = open_internal(path, options->format, options->read_only, options->no_lock,
                                 NULL, &local);
  if (block == NULL) {
    /* Problems deep in a backing chain still name the disk that was asked for. */
    if (strstr(local->message, path) == NULL)
      g_prefix_error(&local, "%s: ", path);
    g_propagate_error(error, local);
  }
  return block;
}

NbBlock *
nb_block_open_backing(const NbBlock *child, const char *path, NbBlockFormat format,
                      GError **error)
{
  if (child->depth + 1 > NB_BLOCK_MAX_BACKING_DEPTH) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT,
                "%s: its backing chain is deeper than %d images: refusing to follow it "
                "(flatten the chain with “nestboxctl disk convert”)",
                child->path, NB_BLOCK_MAX_BACKING_DEPTH);
    return NULL;
  }
  /* Before opening: the image that loops back is locked by us already. */
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    /* An image file must not reach host devices (a crafted image naming
     * /dev/sda would show the host's disk to the guest). */
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: its backing file %s is not a regular file, so it is not a disk image: "
                "refused", child->path, path);
    return NULL;
  }
  if (stat(path, &st) == 0) {
    for (const NbBlock *c = child; c != NULL; c = c->child) {
      if (c->dev == (uint64_t)st.st_dev && c->ino == (uint64_t)st.st_ino) {
        g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT,
                    "%s: its backing chain loops back to %s: fix the backing file "
                    "name with qemu-img rebase -u", child->path, path);
        return NULL;
      }
    }
  }
  /* Backing files are shared by overlays: read-only with a shared lock, so a
   * writer on the base is refused while an overlay is in use. */
  return open_internal(path, format, true, false, child, error);
}

void
nb_block_close(NbBlock *block)
{
  if (block == NULL)
    return;
  if (block->driver && block->driver->close)
    block->driver->close(block);
  if (block->fd >= 0)
    close(block->fd);
  g_free(block->path);
  g_free(block);
}

uint64_t nb_block_size(NbBlock *block) { return block->size; }
bool nb_block_is_read_only(NbBlock *block) { return block->read_only; }
NbBlockFormat nb_block_format(NbBlock *block) { return block->format; }
const char *nb_block_path(NbBlock *block) { return block->path; }

static bool
check_range(NbBlock *block, uint64_t offset, uint64_t len, bool write, GError **error)
{
  if (write && block->read_only) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_READ_ONLY,
                "%s: the disk is read-only", block->path);
    return false;
  }
  if (offset > block->size || len > block->size - offset) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_OUT_OF_RANGE,
                "%s: request at %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
                " is beyond the end of the disk (%" G_GUINT64_FORMAT " bytes)",
                block->path, offset, len, block->size);
    return false;
  }
  return true;
}

size_t
nb_iov_size(const struct iovec *iov, int iovcnt)
{
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  return total;
}

bool
nb_block_preadv(NbBlock *block, const struct iovec *iov, int iovcnt, uint64_t offset,
                GError **error)
{
  if (iovcnt < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "invalid I/O vector");
    return false;
  }
  size_t len = nb_iov_size(iov, iovcnt);
  if (!check_range(block, offset, len, false, error))
    return false;
  if (len == 0)
    return true;
  return block->driver->preadv(block, iov, iovcnt, offset, error);
}

bool
nb_block_pwritev(NbBlock *block, const struct iovec *iov, int iovcnt, uint64_t offset,
                 GError **error)
{
  if (iovcnt < 0) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_FAILED, "invalid I/O vector");
    return false;
  }
  size_t len = nb_iov_size(iov, iovcnt);
  if (!check_range(block, offset, len, true, error))
    return false;
  if (len == 0)
    return true;
  return block->driver->pwritev(block, iov, iovcnt, offset, error);
}

bool
nb_block_flush(NbBlock *block, GError **error)
{
  if (block->read_only)
    return true;
  return block->driver->flush(block, error);
}

bool
nb_block_discard(NbBlock *block, uint64_t offset, uint64_t len, GError **error)
{
  if (!check_range(block, offset, len, true, error))
    return false;
  if (len == 0)
    return true;
  return block->driver->discard(block, offset, len, error);
}

bool
nb_block_write_zeroes(NbBlock *block, uint64_t offset, uint64_t len, GError **error)
{
  if (!check_range(block, offset, len, true, error))
    return false;
  if (len == 0)
    return true;
  return block->driver->write_zeroes(block, offset, len, error);
}

bool
nb_block_resize(NbBlock *block, uint64_t new_size, GError **error)
{
  if (block->read_only) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_READ_ONLY,
                "%s: cannot resize: the disk is open read-only", block->path);
    return false;
  }
  if (new_size < block->size) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: cannot shrink from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                " bytes: that would drop the data at the end of the disk; make a new, "
                "smaller disk and copy the files instead",
                block->path, block->size, new_size);
    return false;
  }
  if (new_size == block->size)
    return true;
  if (block->driver->resize == NULL) {
    g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
                "%s: %s images cannot be resized: convert to qcow2 first", block->path,
                block->driver->name);
    return false;
  }
  return block->driver->resize(block, new_size, error);
}

uint64_t
nb_block_allocated_bytes(NbBlock *block)
{
  if (block->driver->allocated)
    return block->driver->allocated(block);
  struct stat st;
  if (fstat(block->fd, &st) < 0)
    return 0;
  return (uint64_t)st.st_blocks * 512;
}

bool
nb_block_is_allocated(NbBlock *block, uint64_t offset, uint64_t len, uint64_t *pnum)
{
  if (offset >= block->size) {
    *pnum = 0;
    return false;
  }
  if (len > block->size - offset)
    len = block->size - offset;
  if (block->driver->is_allocated)
    return block->driver->is_allocated(block, offset, len, pnum);
  *pnum = len;
  return true;
}
