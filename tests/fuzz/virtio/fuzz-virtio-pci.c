/* libFuzzer: a guest driver that programs the virtio-pci transport in any
 * order with any values: config space, common configuration, MSI-X table,
 * notify doorbells, device config, resets. Behind it a virtio-blk disk, so
 * queue setup, notifications and a reset with requests in flight all run.
 * The process must survive everything; the device may only end up broken. */
#include "virtio-test-driver.h"
#include "virtio/virtio-blk.h"

#include <string.h>
#include <unistd.h>

static TestDriver td;
static NbBlock *disk;
static NbVirtioBlk *blk;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The device reports each breakage once per reset; thousands of runs would
 * only fill the log. Warnings and worse still get through. */
static GLogWriterOutput
quiet_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  if (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG))
    return G_LOG_WRITER_HANDLED;
  return g_log_writer_default(level, fields, n_fields, data);
}

static void
init(void)
{
  g_log_set_writer_func(quiet_writer, NULL, NULL);
  td_init(&td);
  const char *dir = g_file_test("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir();
  g_autofree char *path = g_strdup_printf("%s/nb-fuzz-vpci-%d.raw", dir, (int)getpid());
  unlink(path);
  if (!nb_raw_create(path, 1 << 20, NULL))
    __builtin_trap();
  NbBlockOpenOptions opts = { .format = NB_BLOCK_FORMAT_RAW };
  disk = nb_block_open(path, &opts, NULL);
  unlink(path);
  blk = disk ? nb_virtio_blk_new(td.mem, disk, "fuzz", NULL) : NULL;
  if (blk == NULL)
    __builtin_trap();
  td_add(&td, nb_virtio_blk_pci_device(blk));
}

static uint64_t
take(const uint8_t **data, size_t *size, unsigned n)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < n && *size > 0; i++) {
    v |= (uint64_t)**data << (8 * i);
    (*data)++;
    (*size)--;
  }
  return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (blk == NULL)
    init();
  /* Each run starts from a device reset with MSI-X off, as after boot. */
  td_bar_write(&td, 0x14, 0, 1);
  unsigned msix = td_find_cap(&td, NB_PCI_CAP_ID_MSIX);
  td_cfg_write(&td, msix + 2, 0, 2);
  static const unsigned sizes[] = { 1, 2, 4, 8 };
  /* Guest addresses the input names land in the first 2 MiB of RAM, so
   * queue setup sometimes succeeds; the rest of the address space too. */
  while (size >= 2) {
    uint8_t op = (uint8_t)take(&data, &size, 1);
    unsigned sz = sizes[op >> 6];
    switch (op & 7) {
    case 0: {   /* config space write, anywhere above the BARs */
      unsigned off = 0x40 + (unsigned)take(&data, &size, 1) % 0xc0;
      unsigned s = sz > 4 ? 4 : sz;
      off &= ~(s - 1);
      td_cfg_write(&td, off, (uint32_t)take(&data, &size, s), s);
      break;
    }
    case 1:
    case 2: {   /* BAR write, biased to the common configuration */
      uint64_t off = (op & 7) == 1 ? take(&data, &size, 1) % 0x38
                                   : take(&data, &size, 2) % NB_VIRTIO_PCI_BAR_SIZE;
      off &= ~(uint64_t)(sz - 1);
      uint64_t v = take(&data, &size, sz);
      if ((off == 0x20 || off == 0x28 || off == 0x30) && (op & 8))
        v &= 0x1ffff0;   /* a plausible ring address */
      if (off + sz <= NB_VIRTIO_PCI_BAR_SIZE)
        td_bar_write(&td, off, v, sz);
      break;
    }
    case 3: {   /* BAR read (ISR reads have side effects) */
      uint64_t off = take(&data, &size, 2) % NB_VIRTIO_PCI_BAR_SIZE;
      off &= ~(uint64_t)(sz - 1);
      if (off + sz <= NB_VIRTIO_PCI_BAR_SIZE)
        (void)td_bar_read(&td, off, sz);
      break;
    }
    case 4:     /* doorbell */
      td_kick(&td, 0);
      break;
    case 5: {   /* write guest RAM in the ring area */
      uint64_t gpa = take(&data, &size, 3) & 0x1fffff;
      uint8_t bytes[16];
      unsigned n = (unsigned)MIN(size, sizeof bytes);
      memcpy(bytes, data, n);
      data += n;
      size -= n;
      if (n)
        nb_guest_memory_write(td.mem, gpa, bytes, n);
      break;
    }
    case 6:     /* let the worker run */
      g_usleep(50);
      break;
    case 7:     /* reset, possibly with requests in flight */
      td_bar_write(&td, 0x14, 0, 1);
      break;
    }
  }
  return 0;
}
