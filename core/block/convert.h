/* Copying a disk into a new image of another format (import, flatten). */
#pragma once

#include "block/block.h"
#include "block/qcow2.h"

typedef struct {
  NbBlockFormat format;            /* RAW or QCOW2 */
  NbQcow2CreateOptions qcow2;      /* for QCOW2 (no backing file) */
  /* Called now and then with bytes done and total; may be NULL. */
  void (*progress)(uint64_t done, uint64_t total, void *data);
  void *progress_data;
} NbConvertOptions;

/* Reads all of src (through its backing chain) into a new image at path,
 * leaving out what is unallocated or zero so the copy stays sparse. The new
 * file is removed again when anything fails. */
bool nb_block_convert(NbBlock *src, const char *path, const NbConvertOptions *options,
                      GError **error);
