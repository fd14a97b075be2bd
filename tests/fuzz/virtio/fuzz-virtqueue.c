/* libFuzzer: a split virtqueue whose rings and descriptors are whatever the
 * input says, as a hostile guest could write them. Every element the queue
 * hands out must lie wholly in guest RAM. */
#include "virtio/virtqueue.h"

#include <string.h>

#define MiB (UINT64_C(1) << 20)
#define DESC  0x1000
#define AVAIL 0x3000
#define USED  0x4000
#define TABLES 0x8000   /* where indirect tables may go */

static NbGuestMemory *mem;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (mem == NULL) {
    /* A region end at 32 MiB next to a hole, as in the unit tests. */
    mem = nb_guest_memory_new_split(64 * MiB, 32 * MiB, 48 * MiB, NULL);
    if (mem == NULL)
      __builtin_trap();
  }
  if (size < 4)
    return 0;
  uint8_t flags = data[0];
  uint16_t qsize = (uint16_t)(1u << (data[1] % 9));   /* 1..256 */
  uint16_t start = (uint16_t)(data[2] | data[3] << 8);
  data += 4;
  size -= 4;

  /* The rest is the descriptor table, then the avail ring, then tables. */
  uint8_t *ram = nb_guest_memory_ptr(mem, 0, 0x10000);
  memset(ram, 0, 0x10000);
  size_t desc_bytes = MIN(size, 16u * qsize);
  memcpy(ram + DESC, data, desc_bytes);
  data += desc_bytes;
  size -= desc_bytes;
  size_t avail_bytes = MIN(size, 6u + 2u * qsize);
  memcpy(ram + AVAIL, data, avail_bytes);
  data += avail_bytes;
  size -= avail_bytes;
  memcpy(ram + TABLES, data, MIN(size, 0x8000u));

  NbVirtqueue vq;
  nb_virtqueue_init(&vq, mem);
  if (!nb_virtqueue_enable(&vq, qsize, DESC, AVAIL, USED, flags & 1, flags & 2, NULL))
    __builtin_trap();
  /* Start anywhere in the index space, to cover wrap-around. */
  vq.last_avail = start;
  vq.used_idx = start;

  for (unsigned n = 0; n < 300; n++) {
    NbVirtqElement *e = NULL;
    GError *error = NULL;
    NbVirtqPopResult r = nb_virtqueue_pop(&vq, &e, &error);
    if (r != NB_VIRTQ_POP_OK) {
      if ((r == NB_VIRTQ_POP_BROKEN) != (error != NULL))
        __builtin_trap();
      g_clear_error(&error);
      break;
    }
    size_t out = 0, in = 0;
    for (unsigned i = 0; i < e->n_out + e->n_in; i++) {
      const struct iovec *v = &e->iov[i];
      /* Must be inside one RAM region, whole. */
      const uint8_t *lo = mem->mapping, *hi = mem->mapping + mem->ram_size;
      if ((const uint8_t *)v->iov_base < lo || (const uint8_t *)v->iov_base + v->iov_len > hi ||
          v->iov_len == 0)
        __builtin_trap();
      ((volatile uint8_t *)v->iov_base)[v->iov_len - 1];
      if (i < e->n_out)
        out += v->iov_len;
      else
        in += v->iov_len;
    }
    if (out != e->out_len || in != e->in_len || e->head >= qsize)
      __builtin_trap();
    nb_virtqueue_push(&vq, e->head, (uint32_t)in);
    (void)nb_virtqueue_should_notify(&vq);
    g_free(e);
    if (flags & 4)
      (void)nb_virtqueue_enable_notify(&vq);
  }
  return 0;
}
