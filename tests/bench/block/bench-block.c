/* The library side of bench-block.sh: the same I/O pattern as
 * `qemu-img bench` (offset advances by STEP and wraps at the disk size),
 * queue depth 1, through nb_block_preadv/pwritev. The image is closed (and so
 * flushed) before it exits, like qemu-img bench. */
#include "block/block.h"

#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
  if (argc != 6) {
    fprintf(stderr, "usage: bench-block FILE read|write BUFSIZE COUNT STEP\n");
    return 2;
  }
  bool write = g_str_equal(argv[2], "write");
  size_t bs = strtoull(argv[3], NULL, 0);
  uint64_t count = strtoull(argv[4], NULL, 0), step = strtoull(argv[5], NULL, 0);
  NbBlockOpenOptions o = { .read_only = !write };
  g_autoptr(GError) error = NULL;
  NbBlock *b = nb_block_open(argv[1], &o, &error);
  if (b == NULL) {
    fprintf(stderr, "%s\n", error->message);
    return 1;
  }
  /* Page-aligned like guest memory (and like qemu-img bench's buffers). */
  uint8_t *buf = NULL;
  if (posix_memalign((void **)&buf, 4096, bs) != 0)
    return 1;
  for (size_t i = 0; i < bs; i++)
    buf[i] = (uint8_t)(i * 7 + 1);
  uint64_t size = nb_block_size(b), offset = 0;
  for (uint64_t i = 0; i < count; i++) {
    struct iovec iov = { buf, bs };
    bool ok = write ? nb_block_pwritev(b, &iov, 1, offset, &error)
                    : nb_block_preadv(b, &iov, 1, offset, &error);
    if (!ok) {
      fprintf(stderr, "%s\n", error->message);
      return 1;
    }
    offset = (offset + step) % size;
    if (offset + bs > size)
      offset = 0;
  }
  nb_block_close(b);
  free(buf);
  return 0;
}
