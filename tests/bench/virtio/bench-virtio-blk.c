/* virtio-blk request path throughput on the host, without a guest: the
 * test driver keeps `depth` requests in flight on one queue, waits for
 * interrupts on the MSI-X irqfd as a guest would, and resubmits. Used to
 * choose how requests run (worker thread only, or a pool of N threads).
 *
 *   bench-virtio-blk FILE MODE DEPTH THREADS SECONDS
 *   MODE: randread | randwrite | seqread | syncwrite (write + flush)
 * FILE is a raw image (created 256 MiB if missing); its page cache is
 * dropped first with posix_fadvise so reads reach the disk. */
#include "virtio-test-driver.h"
#include "virtio/virtio-blk.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_SIZE (256ull << 20)

typedef struct {
  TestDriver *td;
  bool write, seq, sync;
  uint32_t bs;
  uint64_t sectors, next_seq;
  GRand *rand;
  struct { uint64_t hdr, data, status; bool flush_next; } slot[64];
} Bench;

static void
submit(Bench *bn, unsigned i)
{
  uint32_t type = bn->write ? NB_VIRTIO_BLK_T_OUT : NB_VIRTIO_BLK_T_IN;
  if (bn->sync && bn->slot[i].flush_next)
    type = NB_VIRTIO_BLK_T_FLUSH;
  uint64_t sector;
  if (bn->seq) {
    sector = bn->next_seq;
    bn->next_seq = (bn->next_seq + bn->bs / 512) % (bn->sectors - bn->bs / 512);
  } else {
    sector = (uint64_t)g_rand_int_range(bn->rand, 0, (gint32)(bn->sectors / 8)) * 8;
  }
  uint8_t hdr[16] = { 0 };
  memcpy(hdr, &type, 4);
  memcpy(hdr + 8, &sector, 8);
  memcpy(td_ptr(bn->td, bn->slot[i].hdr, 16), hdr, 16);
  TdBuf bufs[3] = { { bn->slot[i].hdr, 16, false }, { bn->slot[i].data, bn->bs, !bn->write },
                    { bn->slot[i].status, 1, true } };
  if (type == NB_VIRTIO_BLK_T_FLUSH) {
    TdBuf two[2] = { bufs[0], bufs[2] };
    td_submit_at(bn->td, 0, (uint16_t)(3 * i), two, 2);
  } else {
    td_submit_at(bn->td, 0, (uint16_t)(3 * i), bufs, 3);
  }
  if (bn->sync)
    bn->slot[i].flush_next = !bn->slot[i].flush_next;
}

int
main(int argc, char **argv)
{
  if (argc != 6) {
    fprintf(stderr, "usage: %s FILE randread|randwrite|seqread|syncwrite DEPTH THREADS SECONDS\n",
            argv[0]);
    return 2;
  }
  const char *path = argv[1], *mode = argv[2];
  unsigned depth = (unsigned)atoi(argv[3]), threads = (unsigned)atoi(argv[4]);
  double seconds = atof(argv[5]);
  bool seq = strcmp(mode, "seqread") == 0;
  bool write = strcmp(mode, "randwrite") == 0 || strcmp(mode, "syncwrite") == 0;
  bool sync = strcmp(mode, "syncwrite") == 0;
  uint32_t bs = seq ? (1u << 20) : 4096;
  if (depth < 1 || depth > 64)
    return 2;

  g_autoptr(GError) error = NULL;
  if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
    if (!nb_raw_create(path, FILE_SIZE, &error))
      g_error("%s", error->message);
    /* Allocate it for real, so reads hit the disk, not holes. */
    int fd = open(path, O_WRONLY);
    g_autofree char *chunk = g_malloc(1 << 20);
    memset(chunk, 0x5a, 1 << 20);
    for (uint64_t off = 0; off < FILE_SIZE; off += 1 << 20)
      if (pwrite(fd, chunk, 1 << 20, (off_t)off) != 1 << 20)
        g_error("cannot fill %s", path);
    fsync(fd);
    close(fd);
  }
  int fd = open(path, O_RDONLY);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);

  TestDriver td;
  td_init(&td);
  NbBlockOpenOptions opts = { .format = NB_BLOCK_FORMAT_RAW };
  NbBlock *block = nb_block_open(path, &opts, &error);
  if (!block)
    g_error("%s", error->message);
  uint64_t sectors = nb_block_size(block) / 512;
  NbVirtioBlk *blk = nb_virtio_blk_new(td.mem, block, NULL, &error);
  nb_virtio_blk_set_threads(blk, threads);
  td_add(&td, nb_virtio_blk_pci_device(blk));
  uint64_t features = (UINT64_C(1) << NB_VIRTIO_F_VERSION_1) |
                      (UINT64_C(1) << NB_VIRTIO_F_EVENT_IDX) | (1u << NB_VIRTIO_BLK_F_FLUSH);
  if (!td_negotiate(&td, features))
    g_error("negotiation failed");
  td_setup_queue(&td, 0, 256);
  td_msix_enable(&td, 2);
  td_set_queue_vector(&td, 0, 1);
  td_driver_ok(&td);

  Bench bench = { .td = &td, .write = write, .seq = seq, .sync = sync, .bs = bs,
                   .sectors = sectors, .rand = g_rand_new_with_seed(42) };
  Bench *bn = &bench;
  for (unsigned i = 0; i < depth; i++) {
    bn->slot[i].hdr = td_alloc(&td, 16);
    bn->slot[i].data = td_alloc(&td, bs);
    bn->slot[i].status = td_alloc(&td, 1);
    memset(td_ptr(&td, bn->slot[i].data, bs), 0xa5, bs);
  }
  for (unsigned i = 0; i < depth; i++)
    submit(bn, i);
  td_kick(&td, 0);
  /* The first completion creates the MSI route and its irqfd. */
  uint32_t id, len;
  if (!td_wait_used(&td, 0, &id, &len, 10000))
    g_error("no completion");
  submit(bn, id / 3);
  td_kick(&td, 0);
  int irqfd = td.irq_state.route[0].irqfd;

  uint64_t done = 1, bytes = 0;
  gint64 start = g_get_monotonic_time(), end = start + (gint64)(seconds * 1e6);
  while (g_get_monotonic_time() < end) {
    bool any = false;
    while (td_poll_used(&td, 0, &id, &len)) {
      uint8_t status = *(uint8_t *)td_ptr(&td, bn->slot[id / 3].status, 1);
      if (status != 0)
        g_error("request failed with status %u", status);
      done++;
      if (!(sync && !bn->slot[id / 3].flush_next))
        bytes += bs;
      submit(bn, id / 3);
      any = true;
    }
    if (any) {
      td_kick(&td, 0);
      continue;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (td_used_idx(&td, 0) != td.q[0].last_used)
      continue;
    struct pollfd p = { irqfd, POLLIN, 0 };
    if (poll(&p, 1, 1000) > 0) {
      uint64_t n;
      if (read(irqfd, &n, 8) < 0)
        break;
    }
  }
  double elapsed = (g_get_monotonic_time() - start) / 1e6;
  printf("mode=%s depth=%u threads=%u requests/s=%.0f MB/s=%.1f\n", mode, depth, threads,
         done / elapsed, bytes / elapsed / 1e6);
  /* Let what is in flight finish before tearing down. */
  g_usleep(100000);
  nb_virtio_blk_free(blk);
  nb_block_close(block);
  td_clear(&td);
  g_rand_free(bn->rand);
  return 0;
}
