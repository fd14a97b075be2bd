/* libFuzzer: virtio-blk requests as a hostile guest could shape them: any
 * split of header, data and status over buffers, any type, sector and
 * segment. The request must complete with a status and never touch more
 * than its buffers. */
#include "virtio/virtio-blk.h"
#include "virtio/virtio-pci.h"

#include <string.h>
#include <unistd.h>

#define MiB (UINT64_C(1) << 20)
#define MAX_BUFS 16
#define ARENA (1 * MiB)

static NbGuestMemory *mem;
static NbBlock *disks[2];
static NbVirtioBlk *devs[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
bar_write(NbVirtioBlk *blk, uint64_t off, uint64_t value, unsigned size)
{
  NbPciDevice *dev = nb_virtio_blk_pci_device(blk);
  dev->bars[NB_VIRTIO_PCI_BAR].ops->write(dev->bars[NB_VIRTIO_PCI_BAR].opaque, off, value, size);
}

static void
init(void)
{
  mem = nb_guest_memory_new_split(64 * MiB, 32 * MiB, 48 * MiB, NULL);
  const char *dir = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir();
  for (int i = 0; i < 2; i++) {
    g_autofree char *path = g_strdup_printf("%s/nb-fuzz-blk-%d-%d.raw", dir, (int)getpid(), i);
    unlink(path);
    if (!nb_raw_create(path, 4 * MiB, NULL))
      __builtin_trap();
    NbBlockOpenOptions opts = { .format = NB_BLOCK_FORMAT_RAW, .read_only = i == 1 };
    disks[i] = nb_block_open(path, &opts, NULL);
    unlink(path);   /* the open file stays usable */
    devs[i] = nb_virtio_blk_new(mem, disks[i], "fuzz-serial", NULL);
    if (!mem || !disks[i] || !devs[i])
      __builtin_trap();
    /* Negotiate everything the device offers, as a driver would. */
    bar_write(devs[i], 0x08, 0, 4);
    bar_write(devs[i], 0x0c, 0xffffffff, 4);
    bar_write(devs[i], 0x08, 1, 4);
    bar_write(devs[i], 0x0c, 1, 4);
    bar_write(devs[i], 0x14, 1 | 2 | 8, 1);
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (mem == NULL)
    init();
  if (size < 2)
    return 0;
  NbVirtioBlk *blk = devs[data[0] & 1];
  unsigned n = 1 + data[1] % MAX_BUFS;
  data += 2;
  size -= 2;

  /* Each buffer: 1 byte writable flag, 2 bytes length, then for readable
   * buffers that many bytes of content. Writable ones come after. */
  uint8_t *arena = nb_guest_memory_ptr(mem, 0x100000, ARENA);
  size_t used = 0;
  size_t struct_size = sizeof(NbVirtqElement) + MAX_BUFS * sizeof(struct iovec);
  NbVirtqElement *e = g_malloc0(struct_size);
  e->out = e->iov;
  bool seen_write = false;
  for (unsigned i = 0; i < n && size >= 3; i++) {
    bool w = data[0] & 1;
    size_t len = 1 + (size_t)(data[1] | data[2] << 8) % 8192;
    data += 3;
    size -= 3;
    if (used + len > ARENA)
      break;
    if (w) {
      memset(arena + used, 0xcc, len);
      seen_write = true;
    } else {
      if (seen_write)
        break;   /* the virtqueue never hands out this order */
      size_t c = MIN(len, size);
      memset(arena + used, 0, len);
      memcpy(arena + used, data, c);
      data += c;
      size -= c;
    }
    e->iov[e->n_out + e->n_in] = (struct iovec){ arena + used, len };
    if (w) {
      e->n_in++;
      e->in_len += len;
    } else {
      e->n_out++;
      e->out_len += len;
    }
    used += len;
  }
  e->in = e->iov + e->n_out;
  uint32_t written = nb_virtio_blk_process(blk, e);
  if (written > e->in_len)
    __builtin_trap();
  if (e->in_len > 0) {
    /* The status is always set, to one of the three values. */
    uint8_t status;
    nb_virtq_iov_to_buf(e->in, e->n_in, e->in_len - 1, &status, 1);
    if (status > NB_VIRTIO_BLK_S_UNSUPP)
      __builtin_trap();
  }
  g_free(e);
  return 0;
}
