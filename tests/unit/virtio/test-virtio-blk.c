/* virtio-blk through the PCI transport over real raw image files, with the
 * requests a guest sends, and the ones a hostile guest could send. */
#include "virtio-test-driver.h"
#include "virtio/virtio-blk.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define DISK_SIZE (1024 * 1024)
#define SECTORS (DISK_SIZE / 512)

typedef struct {
  TestDriver td;
  char *dir;
  char *path;
  NbBlock *block;
  NbVirtioBlk *blk;
} Fixture;

static uint64_t
blk_features(bool read_only)
{
  uint64_t f = (UINT64_C(1) << NB_VIRTIO_F_VERSION_1) | (UINT64_C(1) << NB_VIRTIO_F_INDIRECT_DESC) |
               (UINT64_C(1) << NB_VIRTIO_F_EVENT_IDX) | (1u << NB_VIRTIO_BLK_F_SEG_MAX) |
               (1u << NB_VIRTIO_BLK_F_SIZE_MAX) | (1u << NB_VIRTIO_BLK_F_BLK_SIZE) |
               (1u << NB_VIRTIO_BLK_F_FLUSH);
  return f | (read_only ? (1u << NB_VIRTIO_BLK_F_RO)
                        : (1u << NB_VIRTIO_BLK_F_DISCARD) | (1u << NB_VIRTIO_BLK_F_WRITE_ZEROES));
}

static NbBlock *
make_disk(const char *path, bool read_only)
{
  g_autoptr(GError) error = NULL;
  if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
    g_assert_true(nb_raw_create(path, DISK_SIZE, &error));
    g_assert_no_error(error);
    /* Known content: sector n is filled with byte n. */
    int fd = open(path, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    uint8_t buf[512];
    for (unsigned s = 0; s < SECTORS; s++) {
      memset(buf, s & 0xff, sizeof buf);
      g_assert_cmpint(pwrite(fd, buf, 512, s * 512), ==, 512);
    }
    close(fd);
  }
  NbBlockOpenOptions opts = { .format = NB_BLOCK_FORMAT_RAW, .read_only = read_only };
  NbBlock *b = nb_block_open(path, &opts, &error);
  g_assert_no_error(error);
  return b;
}

static void
start_device(Fixture *f, bool read_only, const char *serial)
{
  g_autoptr(GError) error = NULL;
  f->block = make_disk(f->path, read_only);
  f->blk = nb_virtio_blk_new(f->td.mem, f->block, serial, &error);
  g_assert_no_error(error);
  td_add(&f->td, nb_virtio_blk_pci_device(f->blk));
  g_assert_true(td_negotiate(&f->td, blk_features(read_only)));
  td_setup_queue(&f->td, 0, 128);
  td_driver_ok(&f->td);
}

/* Fixture modes: GINT_TO_POINTER(MODE_...). */
enum { MODE_RW, MODE_RO, MODE_MSIX_NO_EVENT_IDX };

static void
setup(Fixture *f, gconstpointer data)
{
  td_init(&f->td);
  g_autoptr(GError) error = NULL;
  f->dir = g_dir_make_tmp("nb-virtio-blk-XXXXXX", &error);
  g_assert_no_error(error);
  f->path = g_build_filename(f->dir, "disk.raw", NULL);
  int mode = GPOINTER_TO_INT(data);
  if (mode != MODE_MSIX_NO_EVENT_IDX) {
    start_device(f, mode == MODE_RO, "nestbox-disk-0");
    return;
  }
  /* Without EVENT_IDX (and with NO_INTERRUPT clear) the driver wants an
   * interrupt for every used->idx update, so the count of interrupts is the
   * count of updates. */
  f->block = make_disk(f->path, false);
  f->blk = nb_virtio_blk_new(f->td.mem, f->block, NULL, &error);
  g_assert_no_error(error);
  td_add(&f->td, nb_virtio_blk_pci_device(f->blk));
  g_assert_true(td_negotiate(&f->td, blk_features(false) & ~(UINT64_C(1) << NB_VIRTIO_F_EVENT_IDX)));
  td_setup_queue(&f->td, 0, 128);
  td_msix_enable(&f->td, 2);
  td_set_queue_vector(&f->td, 0, 1);
  td_driver_ok(&f->td);
}

static void
teardown(Fixture *f, gconstpointer data)
{
  nb_virtio_blk_free(f->blk);
  nb_block_close(f->block);
  td_clear(&f->td);
  unlink(f->path);
  rmdir(f->dir);
  g_free(f->path);
  g_free(f->dir);
}

/* One request: header, optional data out, data in of in_len, status. */
typedef struct {
  uint64_t hdr, data, status;
  uint32_t len;
} Req;

static Req
prepare(Fixture *f, uint32_t type, uint64_t sector, uint32_t len)
{
  Req r = { .hdr = td_alloc(&f->td, 16), .data = len ? td_alloc(&f->td, len) : 0,
            .status = td_alloc(&f->td, 1), .len = len };
  uint8_t hdr[16] = { 0 };
  uint32_t t = GUINT32_TO_LE(type);
  uint64_t s = GUINT64_TO_LE(sector);
  memcpy(hdr, &t, 4);
  memcpy(hdr + 8, &s, 8);
  memcpy(td_ptr(&f->td, r.hdr, 16), hdr, 16);
  *(uint8_t *)td_ptr(&f->td, r.status, 1) = 0xee;
  return r;
}

static uint16_t
submit(Fixture *f, const Req *r, bool data_writable)
{
  TdBuf bufs[3];
  unsigned n = 0;
  bufs[n++] = (TdBuf){ r->hdr, 16, false };
  if (r->len)
    bufs[n++] = (TdBuf){ r->data, r->len, data_writable };
  bufs[n++] = (TdBuf){ r->status, 1, true };
  return td_submit(&f->td, 0, bufs, n);
}

static uint8_t
finish(Fixture *f, const Req *r, uint16_t head, uint32_t *used_len)
{
  uint32_t id, len;
  g_assert_true(td_wait_used(&f->td, 0, &id, &len, 5000));
  g_assert_cmpuint(id, ==, head);
  if (used_len)
    *used_len = len;
  return *(uint8_t *)td_ptr(&f->td, r->status, 1);
}

/* Runs a request and returns its status. */
static uint8_t
run(Fixture *f, uint32_t type, uint64_t sector, uint32_t len, const void *out, void *in,
    uint32_t *used_len)
{
  Req r = prepare(f, type, sector, len);
  bool writable = in != NULL;
  if (out)
    memcpy(td_ptr(&f->td, r.data, len), out, len);
  uint16_t head = submit(f, &r, writable);
  td_kick(&f->td, 0);
  uint8_t status = finish(f, &r, head, used_len);
  if (in)
    memcpy(in, td_ptr(&f->td, r.data, len), len);
  return status;
}

static void
read_file(Fixture *f, uint64_t offset, void *buf, size_t len)
{
  int fd = open(f->path, O_RDONLY);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(pread(fd, buf, len, (off_t)offset), ==, (ssize_t)len);
  close(fd);
}

static void
test_config(Fixture *f, gconstpointer data)
{
  bool ro = GPOINTER_TO_INT(data);
  TestDriver *td = &f->td;
  g_assert_cmpuint(td_cfg_read(td, NB_PCI_DEVICE_ID, 2), ==, 0x1042);
  g_assert_cmpuint(td_device_features(td), ==, blk_features(ro));
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 0, 8), ==, SECTORS);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 8, 4), ==, NB_VIRTIO_BLK_SIZE_MAX);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 12, 4), ==, NB_VIRTIO_BLK_SEG_MAX);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 20, 4), ==, 512);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 36, 4), ==,
                   NB_VIRTIO_BLK_MAX_DISCARD_SECTORS);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 40, 4), ==, 1);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 56, 1), ==, 1);
}

static void
test_read_write(Fixture *f, gconstpointer data)
{
  uint8_t in[4096];
  uint32_t used = 0;
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, 5, sizeof in, NULL, in, &used), ==, 0);
  g_assert_cmpuint(used, ==, sizeof in + 1);
  for (unsigned i = 0; i < sizeof in; i++)
    g_assert_cmpuint(in[i], ==, 5 + i / 512);

  uint8_t out[2048];
  for (unsigned i = 0; i < sizeof out; i++)
    out[i] = (uint8_t)(i * 7 + 3);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_OUT, SECTORS - 4, sizeof out, out, NULL, &used), ==, 0);
  g_assert_cmpuint(used, ==, 1);
  uint8_t back[2048];
  read_file(f, (SECTORS - 4) * 512, back, sizeof back);
  g_assert_cmpmem(back, sizeof back, out, sizeof out);
  memset(in, 0, sizeof in);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, SECTORS - 4, sizeof out, NULL, in, NULL), ==, 0);
  g_assert_cmpmem(in, sizeof out, out, sizeof out);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_FLUSH, 0, 0, NULL, NULL, NULL), ==, 0);
}

static void
test_scattered(Fixture *f, gconstpointer data)
{
  /* A read scattered over three buffers, through an indirect table. */
  Req r = prepare(f, NB_VIRTIO_BLK_T_IN, 10, 0);
  uint64_t a = td_alloc(&f->td, 100), b = td_alloc(&f->td, 824), c = td_alloc(&f->td, 100);
  TdBuf bufs[] = { { r.hdr, 8, false }, { r.hdr + 8, 8, false }, { a, 100, true },
                   { b, 824, true }, { c, 100, true }, { r.status, 1, true } };
  uint16_t head = td_submit_indirect(&f->td, 0, bufs, G_N_ELEMENTS(bufs));
  td_kick(&f->td, 0);
  uint32_t used;
  g_assert_cmpuint(finish(f, &r, head, &used), ==, 0);
  g_assert_cmpuint(used, ==, 1025);
  g_assert_cmpuint(*(uint8_t *)td_ptr(&f->td, a, 1), ==, 10);
  g_assert_cmpuint(*(uint8_t *)td_ptr(&f->td, b + 411, 1), ==, 10);
  g_assert_cmpuint(*(uint8_t *)td_ptr(&f->td, b + 412, 1), ==, 11);
  g_assert_cmpuint(*(uint8_t *)td_ptr(&f->td, c + 99, 1), ==, 11);
}

static void
test_get_id(Fixture *f, gconstpointer data)
{
  char id[20];
  memset(id, 'x', sizeof id);
  uint32_t used;
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_GET_ID, 0, sizeof id, NULL, id, &used), ==, 0);
  g_assert_cmpuint(used, ==, 21);
  g_assert_cmpmem(id, 20, "nestbox-disk-0\0\0\0\0\0\0", 20);
  /* A shorter buffer gets what fits. */
  char small[4];
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_GET_ID, 0, sizeof small, NULL, small, NULL), ==, 0);
  g_assert_cmpmem(small, 4, "nest", 4);
}

static void
test_serial_too_long(void)
{
  TestDriver td;
  td_init(&td);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("nb-virtio-blk-XXXXXX", &error);
  g_autofree char *path = g_build_filename(dir, "d.raw", NULL);
  NbBlock *b = make_disk(path, false);
  g_assert_null(nb_virtio_blk_new(td.mem, b, "123456789012345678901", &error));
  g_assert_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED);
  g_assert_nonnull(strstr(error->message, "at most 20"));
  nb_block_close(b);
  unlink(path);
  rmdir(dir);
  td_clear(&td);
}

static void
test_read_only(Fixture *f, gconstpointer data)
{
  uint8_t out[512];
  memset(out, 0x5a, sizeof out);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_OUT, 3, sizeof out, out, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_IOERR);
  uint8_t back[512];
  read_file(f, 3 * 512, back, sizeof back);
  g_assert_cmpuint(back[0], ==, 3);
  /* Reads and flushes still work; discard was never offered. */
  uint8_t in[512];
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, 3, sizeof in, NULL, in, NULL), ==, 0);
  g_assert_cmpuint(in[0], ==, 3);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_FLUSH, 0, 0, NULL, NULL, NULL), ==, 0);
  uint8_t seg[16] = { 0 };
  seg[8] = 1;
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 16, seg, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_UNSUPP);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, seg, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_UNSUPP);
}

static void
test_beyond_disk(Fixture *f, gconstpointer data)
{
  uint8_t buf[1024] = { 0 };
  static const uint64_t sectors[] = { SECTORS, SECTORS - 1, UINT64_MAX, UINT64_MAX / 512,
                                      (UINT64_MAX / 512) + 1 };
  for (unsigned i = 0; i < G_N_ELEMENTS(sectors); i++) {
    g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, sectors[i], sizeof buf, NULL, buf, NULL), ==,
                     NB_VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_OUT, sectors[i], sizeof buf, buf, NULL, NULL), ==,
                     NB_VIRTIO_BLK_S_IOERR);
  }
  /* The last two sectors exactly are fine. */
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, SECTORS - 2, sizeof buf, NULL, buf, NULL), ==, 0);
}

static void
test_partial_sector(Fixture *f, gconstpointer data)
{
  uint8_t buf[700] = { 0 };
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, 0, sizeof buf, NULL, buf, NULL), ==,
                   NB_VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_OUT, 0, sizeof buf, buf, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_IOERR);
  uint8_t back[512];
  read_file(f, 0, back, sizeof back);
  g_assert_cmpuint(back[100], ==, 0);   /* sector 0 holds byte 0 anyway; check sector 1 */
  read_file(f, 512, back, sizeof back);
  g_assert_cmpuint(back[100], ==, 1);
}

static void
test_unsupported(Fixture *f, gconstpointer data)
{
  static const uint32_t types[] = { 2, 3, 5, 10, 12, 14, 99, 0x80000001u };
  for (unsigned i = 0; i < G_N_ELEMENTS(types); i++) {
    uint32_t used;
    g_assert_cmpuint(run(f, types[i], 0, 0, NULL, NULL, &used), ==, NB_VIRTIO_BLK_S_UNSUPP);
    g_assert_cmpuint(used, ==, 1);
  }
}

static void
test_short_header(Fixture *f, gconstpointer data)
{
  uint64_t hdr = td_alloc(&f->td, 16), st = td_alloc(&f->td, 1);
  memset(td_ptr(&f->td, hdr, 16), 0, 16);
  *(uint8_t *)td_ptr(&f->td, st, 1) = 0xee;
  TdBuf bufs[] = { { hdr, 8, false }, { st, 1, true } };
  uint16_t head = td_submit(&f->td, 0, bufs, 2);
  td_kick(&f->td, 0);
  uint32_t id, len;
  g_assert_true(td_wait_used(&f->td, 0, &id, &len, 5000));
  g_assert_cmpuint(id, ==, head);
  g_assert_cmpuint(*(uint8_t *)td_ptr(&f->td, st, 1), ==, NB_VIRTIO_BLK_S_IOERR);

  /* No header and no status at all: completed with nothing written. */
  uint64_t junk = td_alloc(&f->td, 64);
  TdBuf only_in[] = { { junk, 0x40, false } };
  head = td_submit(&f->td, 0, only_in, 1);
  td_kick(&f->td, 0);
  g_assert_true(td_wait_used(&f->td, 0, &id, &len, 5000));
  g_assert_cmpuint(id, ==, head);
  g_assert_cmpuint(len, ==, 0);
  /* Header only, status missing. */
  TdBuf hdr_only[] = { { hdr, 16, false } };
  head = td_submit(&f->td, 0, hdr_only, 1);
  td_kick(&f->td, 0);
  g_assert_true(td_wait_used(&f->td, 0, &id, &len, 5000));
  g_assert_cmpuint(len, ==, 0);
  /* The device goes on working. */
  uint8_t in[512];
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, 7, sizeof in, NULL, in, NULL), ==, 0);
  g_assert_cmpuint(in[0], ==, 7);
  g_assert_cmpuint(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET, ==, 0);
}

static void
test_discard_and_zeroes(Fixture *f, gconstpointer data)
{
  uint8_t seg[16];
  uint8_t in[512];
#define SEG(sector, count, flags) do { uint64_t s_ = GUINT64_TO_LE(sector); \
    uint32_t c_ = GUINT32_TO_LE(count), f_ = GUINT32_TO_LE(flags); memcpy(seg, &s_, 8); \
    memcpy(seg + 8, &c_, 4); memcpy(seg + 12, &f_, 4); } while (0)

  SEG(16, 8, 0);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 16, seg, NULL, NULL), ==, 0);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, 16, 512, NULL, in, NULL), ==, 0);
  g_assert_cmpuint(in[0] | in[511], ==, 0);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, 24, 512, NULL, in, NULL), ==, 0);
  g_assert_cmpuint(in[0], ==, 24);

  SEG(40, 2, 0);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, seg, NULL, NULL), ==, 0);
  SEG(50, 1, 1);   /* unmap allowed */
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, seg, NULL, NULL), ==, 0);
  uint8_t back[512];
  read_file(f, 41 * 512, back, 512);
  g_assert_cmpuint(back[0] | back[511], ==, 0);
  read_file(f, 50 * 512, back, 512);
  g_assert_cmpuint(back[0] | back[511], ==, 0);
  read_file(f, 42 * 512, back, 512);
  g_assert_cmpuint(back[0], ==, 42);

  /* Discard takes no flags. */
  SEG(60, 1, 1);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 16, seg, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_UNSUPP);
  SEG(60, 1, 2);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, seg, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_UNSUPP);
  /* Beyond the disk, too long, overflowing. */
  SEG(SECTORS - 1, 2, 0);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 16, seg, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_IOERR);
  SEG(0, NB_VIRTIO_BLK_MAX_DISCARD_SECTORS + 1, 0);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, seg, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_IOERR);
  SEG(UINT64_MAX - 1, 4, 0);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 16, seg, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_IOERR);
  /* Two segments where one is allowed; a torn segment. */
  uint8_t two[32] = { 0 };
  two[8] = 1;
  two[24] = 1;
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 32, two, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_UNSUPP);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 12, two, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 0, NULL, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_IOERR);
#undef SEG
}

static void
test_not_negotiated(Fixture *f, gconstpointer data)
{
  /* A driver that did not take DISCARD gets UNSUPP for it. */
  uint64_t features = blk_features(false) & ~(UINT64_C(1) << NB_VIRTIO_BLK_F_DISCARD);
  g_assert_true(td_negotiate(&f->td, features));
  td_setup_queue(&f->td, 0, 64);
  td_driver_ok(&f->td);
  uint8_t seg[16] = { 0 };
  seg[8] = 1;
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_DISCARD, 0, 16, seg, NULL, NULL), ==,
                   NB_VIRTIO_BLK_S_UNSUPP);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, seg, NULL, NULL), ==, 0);
}

static void
test_io_error(Fixture *f, gconstpointer data)
{
  /* The host refuses writes past 512 KiB (RLIMIT_FSIZE): a real EFBIG from
   * pwritev, which the guest must see as IOERR. */
  struct rlimit old;
  g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = { 512 * 1024, old.rlim_max };
  g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &lim), ==, 0);
  uint8_t out[512];
  memset(out, 0x11, sizeof out);
  uint8_t st_hi = run(f, NB_VIRTIO_BLK_T_OUT, 1500, sizeof out, out, NULL, NULL);
  uint8_t st_lo = run(f, NB_VIRTIO_BLK_T_OUT, 100, sizeof out, out, NULL, NULL);
  g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
  signal(SIGXFSZ, old_handler);
  g_assert_cmpuint(st_hi, ==, NB_VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint(st_lo, ==, NB_VIRTIO_BLK_S_OK);
  uint8_t back[512];
  read_file(f, 1500 * 512, back, 512);
  g_assert_cmpuint(back[0], ==, 1500 & 0xff);
}

/* Makes N writes of len bytes available at once (write i at sector
 * first + i * step, filled with fill + i), kicks once, waits until each has
 * completed exactly once with status OK and reads every one back. */
static void
write_many_at_once(Fixture *f, unsigned n, uint64_t first, uint64_t step, size_t len,
                   uint8_t fill)
{
  enum { MAX = 64 };
  g_assert_cmpuint(n, <=, MAX);
  Req reqs[MAX];
  uint16_t heads[MAX];
  for (unsigned i = 0; i < n; i++) {
    reqs[i] = prepare(f, NB_VIRTIO_BLK_T_OUT, first + step * i, len);
    memset(td_ptr(&f->td, reqs[i].data, len), fill + i, len);
    heads[i] = submit(f, &reqs[i], false);
  }
  td_kick(&f->td, 0);
  bool seen[MAX] = { false };
  for (unsigned done = 0; done < n; done++) {
    uint32_t id, used_len;
    g_assert_true(td_wait_used(&f->td, 0, &id, &used_len, 5000));
    unsigned i = 0;
    while (i < n && heads[i] != id)
      i++;
    g_assert_cmpuint(i, <, n);
    g_assert_false(seen[i]);
    seen[i] = true;
    g_assert_cmpuint(*(uint8_t *)td_ptr(&f->td, reqs[i].status, 1), ==, 0);
  }
  for (unsigned i = 0; i < n; i++) {
    g_autofree uint8_t *back = g_malloc(len);
    read_file(f, (first + step * i) * 512, back, len);
    g_assert_cmpuint(back[0], ==, (uint8_t)(fill + i));
    g_assert_cmpuint(back[len - 1], ==, (uint8_t)(fill + i));
  }
}

static void
test_many_in_flight(Fixture *f, gconstpointer data)
{
  write_many_at_once(f, 40, 100, 4, 2048, 0x80);
}

static void
test_completions_coalesced(Fixture *f, gconstpointer data)
{
  /* 40 writes made available at once (3 descriptors each, on a queue of
   * 128): the pool hands them back in batches, each with one used->idx
   * update, and a pool thread that finishes while another still runs
   * leaves the interrupt to the last one: a handful of interrupts, not one
   * per request (what a 4 KiB random-write load in a guest paid at first).
   * How few depends on how the threads overlap: 1 to 5 when they do, about
   * one per batch (11 to 15) when each finishes before the next starts. */
  enum { N = 40 };
  write_many_at_once(f, N, 0, 8, 4096, 0x40);
  unsigned irqs = td_irqfd_count(&f->td, 0);
  g_test_message("%u requests, %u interrupts", N, irqs);
  g_assert_cmpuint(irqs, >=, 1);
  g_assert_cmpuint(irqs, <=, N / 2);
}

static void
test_inline_worker(Fixture *f, gconstpointer data)
{
  /* Requests run on the worker itself: same results. */
  nb_virtio_blk_set_threads(f->blk, 0);
  test_many_in_flight(f, data);
  test_read_write(f, data);
}

static void
test_reset_during_io(Fixture *f, gconstpointer data)
{
  for (unsigned round = 0; round < 4; round++) {
    for (unsigned i = 0; i < 40; i++) {
      Req r = prepare(f, i % 3 == 0 ? NB_VIRTIO_BLK_T_FLUSH : NB_VIRTIO_BLK_T_OUT, 8 * i,
                      i % 3 == 0 ? 0 : 4096);
      submit(f, &r, false);
    }
    td_kick(&f->td, 0);
    g_usleep(500 * round);
    td_reset(&f->td);
    /* Nothing is written into the old rings after the reset returned. */
    uint16_t used = td_used_idx(&f->td, 0);
    g_usleep(20000);
    g_assert_cmpuint(td_used_idx(&f->td, 0), ==, used);
    g_assert_true(td_negotiate(&f->td, blk_features(false)));
    td_setup_queue(&f->td, 0, 128);
    td_driver_ok(&f->td);
  }
  uint8_t in[512];
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_IN, 3, sizeof in, NULL, in, NULL), ==, 0);
}

static void
test_broken_chain_keeps_others(Fixture *f, gconstpointer data)
{
  /* A second disk on the same bus keeps working while the first is broken. */
  g_autofree char *path2 = g_build_filename(f->dir, "disk2.raw", NULL);
  NbBlock *b2 = make_disk(path2, false);
  g_autoptr(GError) error = NULL;
  NbVirtioBlk *blk2 = nb_virtio_blk_new(f->td.mem, b2, NULL, &error);
  g_assert_no_error(error);

  TdBuf bad[] = { { 40ull << 20, 16, false } };
  td_submit(&f->td, 0, bad, 1);
  td_kick(&f->td, 0);
  for (unsigned i = 0; i < 2000 && !(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET); i++)
    g_usleep(500);
  g_assert_cmpuint(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET, !=, 0);

  /* Drive the second disk with a second driver view of the same bus. */
  TestDriver saved = f->td;
  td_add(&f->td, nb_virtio_blk_pci_device(blk2));
  g_assert_true(td_negotiate(&f->td, blk_features(false)));
  td_setup_queue(&f->td, 0, 64);
  td_driver_ok(&f->td);
  uint8_t out[512];
  memset(out, 0x77, sizeof out);
  g_assert_cmpuint(run(f, NB_VIRTIO_BLK_T_OUT, 9, sizeof out, out, NULL, NULL), ==, 0);
  int fd = open(path2, O_RDONLY);
  uint8_t back[512];
  g_assert_cmpint(pread(fd, back, 512, 9 * 512), ==, 512);
  close(fd);
  g_assert_cmpuint(back[0], ==, 0x77);
  /* The first disk's file did not get it. */
  read_file(f, 9 * 512, back, 512);
  g_assert_cmpuint(back[0], ==, 9);

  nb_virtio_blk_free(blk2);
  nb_block_close(b2);
  unlink(path2);
  f->td.dev = saved.dev;
  f->td.slot = saved.slot;
  f->td.bar = saved.bar;
}

static void
test_four_disks(Fixture *f, gconstpointer data)
{
  /* Four disks on one bus, driven at once, each write reaching its file. */
  enum { N = 4 };
  char *paths[N];
  NbBlock *blocks[N];
  NbVirtioBlk *devs[N];
  TestDriver drivers[N];
  Req reqs[N];
  uint16_t heads[N];
  for (unsigned i = 0; i < N; i++) {
    g_autoptr(GError) error = NULL;
    paths[i] = g_strdup_printf("%s/disk-%u.raw", f->dir, i);
    blocks[i] = make_disk(paths[i], false);
    g_autofree char *serial = g_strdup_printf("disk-%u", i);
    devs[i] = nb_virtio_blk_new(f->td.mem, blocks[i], serial, &error);
    g_assert_no_error(error);
    /* One driver view per device, sharing the bus and RAM, each with its
     * own part of RAM for rings and buffers. */
    drivers[i] = f->td;
    drivers[i].next_alloc = (8 + 4 * i) << 20;
    td_add(&drivers[i], nb_virtio_blk_pci_device(devs[i]));
    g_assert_true(td_negotiate(&drivers[i], blk_features(false)));
    td_setup_queue(&drivers[i], 0, 32);
    td_driver_ok(&drivers[i]);
  }
  for (unsigned i = 0; i < N; i++) {
    Fixture view = *f;
    view.td = drivers[i];
    reqs[i] = prepare(&view, NB_VIRTIO_BLK_T_OUT, 33, 512);
    memset(td_ptr(&view.td, reqs[i].data, 512), 0xd0 + i, 512);
    heads[i] = submit(&view, &reqs[i], false);
    drivers[i] = view.td;
    td_kick(&drivers[i], 0);
  }
  for (unsigned i = 0; i < N; i++) {
    uint32_t id, len;
    g_assert_true(td_wait_used(&drivers[i], 0, &id, &len, 5000));
    g_assert_cmpuint(id, ==, heads[i]);
    g_assert_cmpuint(*(uint8_t *)td_ptr(&drivers[i], reqs[i].status, 1), ==, 0);
  }
  for (unsigned i = 0; i < N; i++) {
    nb_virtio_blk_free(devs[i]);
    nb_block_close(blocks[i]);
    int fd = open(paths[i], O_RDONLY);
    uint8_t back[512];
    g_assert_cmpint(pread(fd, back, 512, 33 * 512), ==, 512);
    close(fd);
    g_assert_cmpuint(back[0], ==, 0xd0 + i);
    g_assert_cmpuint(back[511], ==, 0xd0 + i);
    unlink(paths[i]);
    g_free(paths[i]);
  }
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  gconstpointer rw = GINT_TO_POINTER(MODE_RW), ro = GINT_TO_POINTER(MODE_RO);
  gconstpointer msix = GINT_TO_POINTER(MODE_MSIX_NO_EVENT_IDX);
#define T(name, mode, fn) g_test_add("/virtio-blk/" name, Fixture, mode, setup, fn, teardown)
  T("config", rw, test_config);
  T("config-read-only", ro, test_config);
  T("read-write", rw, test_read_write);
  T("scattered-indirect", rw, test_scattered);
  T("get-id", rw, test_get_id);
  T("read-only", ro, test_read_only);
  T("beyond-disk", rw, test_beyond_disk);
  T("partial-sector", rw, test_partial_sector);
  T("unsupported", rw, test_unsupported);
  T("short-header", rw, test_short_header);
  T("discard-and-zeroes", rw, test_discard_and_zeroes);
  T("not-negotiated", rw, test_not_negotiated);
  T("io-error", rw, test_io_error);
  T("many-in-flight", rw, test_many_in_flight);
  T("inline-worker", rw, test_inline_worker);
  T("completions-coalesced", msix, test_completions_coalesced);
  T("many-in-flight-msix", msix, test_many_in_flight);
  T("reset-during-io", rw, test_reset_during_io);
  T("broken-chain-keeps-others", rw, test_broken_chain_keeps_others);
  T("four-disks", rw, test_four_disks);
#undef T
  g_test_add_func("/virtio-blk/serial-too-long", test_serial_too_long);
  return g_test_run();
}
