/* A disk image as a device sees it: a size and byte-addressed I/O.
 *
 * Implementations (raw, qcow2) are safe to call from several threads at once.
 * Every offset and length comes from a guest and is checked here again. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define NB_BLOCK_ERROR (nb_block_error_quark())
GQuark nb_block_error_quark(void);

typedef enum {
  NB_BLOCK_ERROR_FAILED,        /* I/O error from the host */
  NB_BLOCK_ERROR_OUT_OF_RANGE,  /* beyond the end of the disk */
  NB_BLOCK_ERROR_READ_ONLY,
  NB_BLOCK_ERROR_CORRUPT,       /* the image's metadata is invalid */
  NB_BLOCK_ERROR_UNSUPPORTED,
  NB_BLOCK_ERROR_LOCKED,        /* another process uses the image */
  NB_BLOCK_ERROR_NOT_FOUND,
} NbBlockError;

typedef enum {
  NB_BLOCK_FORMAT_AUTO,
  NB_BLOCK_FORMAT_RAW,
  NB_BLOCK_FORMAT_QCOW2,
  NB_BLOCK_FORMAT_VDI,     /* read-only import */
  NB_BLOCK_FORMAT_VMDK,    /* read-only import */
} NbBlockFormat;

/* Longest backing chain followed: deeper chains are refused, not walked. */
#define NB_BLOCK_MAX_BACKING_DEPTH 16

typedef struct {
  NbBlockFormat format;
  bool read_only;
  bool no_lock;      /* tools that only read (info) may skip the lock */
} NbBlockOpenOptions;

typedef struct NbBlock NbBlock;

NbBlock *nb_block_open(const char *path, const NbBlockOpenOptions *options, GError **error);
void nb_block_close(NbBlock *block);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NbBlock, nb_block_close)

uint64_t nb_block_size(NbBlock *block);          /* virtual size in bytes */
bool nb_block_is_read_only(NbBlock *block);
NbBlockFormat nb_block_format(NbBlock *block);
const char *nb_block_path(NbBlock *block);

bool nb_block_preadv(NbBlock *block, const struct iovec *iov, int iovcnt,
                     uint64_t offset, GError **error);
bool nb_block_pwritev(NbBlock *block, const struct iovec *iov, int iovcnt,
                      uint64_t offset, GError **error);
/* Durable on the host disk (fdatasync) when it returns true. */
bool nb_block_flush(NbBlock *block, GError **error);
/* Deallocate (reads as zero afterwards) and write zeroes. */
bool nb_block_discard(NbBlock *block, uint64_t offset, uint64_t len, GError **error);
bool nb_block_write_zeroes(NbBlock *block, uint64_t offset, uint64_t len, GError **error);

/* Grows the virtual disk (shrinking is refused: it would drop guest data). */
bool nb_block_resize(NbBlock *block, uint64_t new_size, GError **error);

/* "raw", "qcow2", "vdi", "vmdk"; parse accepts the same names ("auto" too). */
const char *nb_block_format_name(NbBlockFormat format);
bool nb_block_format_parse(const char *name, NbBlockFormat *out, GError **error);

/* Bytes the image file takes on the host (allocated blocks). */
uint64_t nb_block_allocated_bytes(NbBlock *block);

/* Whether the bytes at offset may read as non-zero (false: they certainly
 * read as zeroes, through the whole backing chain); *pnum gets how many bytes
 * (at most len) from offset have the same answer. Used by convert to skip
 * holes. */
bool nb_block_is_allocated(NbBlock *block, uint64_t offset, uint64_t len, uint64_t *pnum);

/* Creates an empty raw image of size bytes (sparse). Refuses to overwrite an
 * existing file. */
bool nb_raw_create(const char *path, uint64_t size, GError **error);
