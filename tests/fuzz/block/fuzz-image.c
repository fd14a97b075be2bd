/* Fuzz target: any bytes as a disk image file. Opening (format detection,
 * qcow2/VDI/VMDK headers, tables, snapshots, backing names), reading,
 * checking, and for qcow2 writing, discarding, snapshotting and growing must
 * fail cleanly or work, never crash or hang. */
#include "block/qcow2.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfd = -1;
static char path[64];

static void
exercise(NbBlock *b, const uint8_t *data, size_t size)
{
  static uint8_t buf[1 << 17];
  uint64_t disk = nb_block_size(b);
  /* Offsets taken from the input so reads land on whatever it maps. */
  for (int i = 0; i < 4; i++) {
    uint64_t off = 0;
    if (size >= (size_t)(i + 1) * 8)
      memcpy(&off, data + size - (size_t)(i + 1) * 8, 8);
    off = disk ? off % disk : 0;
    size_t len = (size_t)MIN((uint64_t)sizeof buf, disk - off);
    struct iovec iov = { buf, len };
    nb_block_preadv(b, &iov, 1, off, NULL);
    uint64_t pnum;
    nb_block_is_allocated(b, off, len, &pnum);
    if (!nb_block_is_read_only(b)) {
      memset(buf, i, len);
      struct iovec w = { buf, MIN(len, (size_t)70000) };
      nb_block_pwritev(b, &w, 1, off, NULL);
      nb_block_discard(b, off, MIN(len, (size_t)4096), NULL);
    }
  }
  if (nb_block_format(b) == NB_BLOCK_FORMAT_QCOW2) {
    g_autoptr(GPtrArray) snaps = nb_qcow2_snapshot_list(b, NULL);
    NbQcow2CheckResult res;
    nb_qcow2_check(b, false, &res, NULL);
    nb_qcow2_check_result_clear(&res);
    if (!nb_block_is_read_only(b)) {
      if (snaps && snaps->len > 0)
        nb_qcow2_snapshot_apply(b, ((NbQcow2Snapshot *)snaps->pdata[0])->id, NULL);
      nb_qcow2_snapshot_create(b, "fuzz", NULL);
      nb_block_resize(b, disk + (1 << 20), NULL);
      nb_qcow2_snapshot_delete(b, "fuzz", NULL);
    }
  }
  nb_block_flush(b, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (memfd < 0) {
    memfd = memfd_create("fuzz-image", 0);
    if (memfd < 0)
      abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
  }
  for (int rw = 0; rw < 2; rw++) {
    if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
      abort();
    NbBlockOpenOptions o = { .format = NB_BLOCK_FORMAT_AUTO, .read_only = rw == 0 };
    NbBlock *b = nb_block_open(path, &o, NULL);
    if (b != NULL) {
      exercise(b, data, size);
      nb_block_close(b);
    }
  }
  return 0;
}
