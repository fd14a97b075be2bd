/* What a backend (raw, qcow2, vdi, vmdk) provides to core/block/block.c.
 *
 * block.c checks ranges and read-only before calling a backend, so a backend
 * sees only requests that lie inside its virtual size. */
#pragma once

#include "block/block.h"

typedef struct {
  const char *name;
  bool (*preadv)(NbBlock *block, const struct iovec *iov, int iovcnt,
                 uint64_t offset, GError **error);
  bool (*pwritev)(NbBlock *block, const struct iovec *iov, int iovcnt,
                  uint64_t offset, GError **error);
  bool (*flush)(NbBlock *block, GError **error);
  bool (*discard)(NbBlock *block, uint64_t offset, uint64_t len, GError **error);
  bool (*write_zeroes)(NbBlock *block, uint64_t offset, uint64_t len, GError **error);
  bool (*resize)(NbBlock *block, uint64_t new_size, GError **error);
  /* Bytes of host file used by the image (for info); may be NULL. */
  uint64_t (*allocated)(NbBlock *block);
  /* Whether [offset, offset+len) is stored in this image (not zero, not
   * backing): *pnum gets how many bytes from offset share the answer. */
  bool (*is_allocated)(NbBlock *block, uint64_t offset, uint64_t len, uint64_t *pnum);
  void (*close)(NbBlock *block);
} NbBlockDriver;

struct NbBlock {
  const NbBlockDriver *driver;
  NbBlockFormat format;
  char *path;
  int fd;
  bool read_only;
  uint64_t size;
  int depth;          /* 0 for the image opened, n for the n-th backing file */
  const NbBlock *child;  /* the overlay this is the backing file of, or NULL */
  uint64_t dev, ino;  /* identity of the file, to find loops in backing chains */
  void *opaque;       /* the backend's state */
};

/* Opens path with O_CLOEXEC, takes the advisory image lock unless no_lock, and
 * checks it is a regular file or block device. */
int nb_block_open_file(const char *path, bool read_only, bool no_lock, GError **error);

/* OFD locks in QEMU's byte layout: readers share, a writer excludes all. */
bool nb_block_lock(int fd, const char *path, bool exclusive, GError **error);

/* Full-length positional I/O that retries on EINTR and short transfers. A
 * read past the end of the file fills with zeroes. */
bool nb_block_pread_full(int fd, void *buf, size_t len, uint64_t offset,
                         const char *path, GError **error);
bool nb_block_pwrite_full(int fd, const void *buf, size_t len, uint64_t offset,
                          const char *path, GError **error);
bool nb_block_fdatasync(int fd, const char *path, GError **error);

/* Copies between an iovec array and a flat buffer, starting skip bytes into the
 * iovec array. */
void nb_iov_to_buf(const struct iovec *iov, int iovcnt, size_t skip, void *buf, size_t len);
void nb_iov_from_buf(const struct iovec *iov, int iovcnt, size_t skip, const void *buf, size_t len);
size_t nb_iov_size(const struct iovec *iov, int iovcnt);
/* A new vector (g_free it) for bytes [skip, skip+len) of iov. */
struct iovec *nb_iov_slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
                           int *out_cnt);
void nb_iov_memset(const struct iovec *iov, int iovcnt, size_t skip, int c, size_t len);
/* preadv/pwritev of a whole vector at offset, continuing after short
 * transfers; reads past the end of the file give zeroes. */
bool nb_block_fd_rw(int fd, const char *path, const struct iovec *iov, int iovcnt,
                    uint64_t offset, bool write, GError **error);

/* Backends' open functions: they fill block->driver, opaque and size. */
bool nb_raw_open(NbBlock *block, GError **error);
bool nb_qcow2_open(NbBlock *block, GError **error);
bool nb_vdi_open(NbBlock *block, GError **error);
bool nb_vmdk_open(NbBlock *block, GError **error);

/* Opens the backing file of child read-only with a shared lock. Refuses a
 * chain that loops back to an image in it or is deeper than
 * NB_BLOCK_MAX_BACKING_DEPTH. */
NbBlock *nb_block_open_backing(const NbBlock *child, const char *path, NbBlockFormat format,
                               GError **error);
