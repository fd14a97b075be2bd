/* Untrusted qcow2 images: every bad header, table or backing chain is
 * refused with an error naming the file and the problem, and nothing in the
 * file changes. */
#include "block/qcow2.h"
#include "block-test-util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void
patch(const char *path, uint64_t off, const void *data, size_t len)
{
  int fd = open(path, O_WRONLY);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(pwrite(fd, data, len, (off_t)off), ==, (ssize_t)len);
  close(fd);
}

static void
patch32(const char *path, uint64_t off, uint32_t v)
{
  v = GUINT32_TO_BE(v);
  patch(path, off, &v, 4);
}

static void
patch64(const char *path, uint64_t off, uint64_t v)
{
  v = GUINT64_TO_BE(v);
  patch(path, off, &v, 8);
}

/* Opening for writing fails with code, the message names the file and
 * contains what, and the file is byte for byte the same. */
static void
assert_refused(const char *path, int code, const char *what)
{
  g_autofree char *before = bt_file_checksum(path);
  g_autoptr(GError) error = NULL;
  NbBlock *b = nb_block_open(path, NULL, &error);
  if (b != NULL)
    g_error("%s was opened, expected “%s”", path, what);
  g_assert_error(error, NB_BLOCK_ERROR, code);
  if (strstr(error->message, path) == NULL || strstr(error->message, what) == NULL)
    g_error("message “%s” lacks “%s” or the file name", error->message, what);
  g_autofree char *after = bt_file_checksum(path);
  g_assert_cmpstr(before, ==, after);
}

static char *
fresh(const char *dir, const char *name)
{
  char *path = g_build_filename(dir, name, NULL);
  g_unlink(path);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_qcow2_create(path, 1 << 20, NULL, &error));
  g_assert_no_error(error);
  /* One data cluster so there are L2 tables to break. */
  g_autoptr(NbBlock) b = nb_block_open(path, NULL, &error);
  bt_write(b, "data", 4, 0);
  return path;
}

static void
test_bad_headers(void)
{
  g_autofree char *dir = bt_tmpdir();
  char *p;

  p = fresh(dir, "l1.qcow2");
  patch32(p, 36, 0x10000000);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "L1 table size");
  g_free(p);

  p = fresh(dir, "order.qcow2");
  patch32(p, 96, 7);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "refcount order 7");
  g_free(p);

  p = fresh(dir, "l1eof.qcow2");
  patch64(p, 40, UINT64_C(1) << 40);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "beyond the end of the file");
  g_free(p);

  p = fresh(dir, "rtzero.qcow2");
  patch64(p, 48, 0);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "overlaps the header");
  g_free(p);

  p = fresh(dir, "overlap.qcow2");
  patch64(p, 40, 65536);  /* the L1 table onto the refcount table */
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "overlaps");
  g_free(p);

  p = fresh(dir, "cbits.qcow2");
  patch32(p, 20, 30);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "cluster size");
  g_free(p);

  p = fresh(dir, "size.qcow2");
  patch64(p, 24, UINT64_MAX);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "virtual size");
  g_free(p);

  p = fresh(dir, "small-l1.qcow2");
  patch64(p, 24, UINT64_C(1) << 40);  /* the L1 table no longer covers the disk */
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "too small");
  g_free(p);

  p = fresh(dir, "feature.qcow2");
  patch64(p, 72, UINT64_C(1) << 4);
  assert_refused(p, NB_BLOCK_ERROR_UNSUPPORTED, "extended L2");
  g_free(p);

  p = fresh(dir, "version.qcow2");
  patch32(p, 4, 4);
  assert_refused(p, NB_BLOCK_ERROR_UNSUPPORTED, "version 4");
  g_free(p);

  p = fresh(dir, "crypt.qcow2");
  patch32(p, 32, 1);
  assert_refused(p, NB_BLOCK_ERROR_UNSUPPORTED, "encrypted");
  g_free(p);

  p = fresh(dir, "snap.qcow2");
  patch32(p, 60, 5);
  patch64(p, 64, UINT64_C(1) << 30);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "snapshot table");
  g_free(p);

  p = fresh(dir, "snapover.qcow2");
  {
    /* A valid-looking snapshot entry, placed on the refcount table. */
    uint8_t entry[40] = { 0 };
    patch(p, 65536 * 5, entry, sizeof entry);
  }
  patch32(p, 60, 1);
  patch64(p, 64, 65536);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "overlaps");
  g_free(p);

  p = fresh(dir, "snaps.qcow2");
  patch32(p, 60, 1000000);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "too many snapshots");
  g_free(p);

  p = fresh(dir, "hdrlen.qcow2");
  patch32(p, 100, 7);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "header length");
  g_free(p);

  p = fresh(dir, "l2eof.qcow2");
  patch64(p, 3 * 65536, (UINT64_C(1) << 45) | (UINT64_C(1) << 63));  /* L1[0] */
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "L2 table");
  g_free(p);

  p = fresh(dir, "rb.qcow2");
  patch64(p, 65536, 12345);  /* refcount block 0, misaligned */
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "refcount block");
  g_free(p);

  p = fresh(dir, "dirty.qcow2");
  patch64(p, 72, 1);
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "dirty");
  {
    /* Reading a dirty image is fine. */
    NbBlockOpenOptions ro = { .read_only = true };
    g_autoptr(GError) error = NULL;
    g_autoptr(NbBlock) b = nb_block_open(p, &ro, &error);
    g_assert_no_error(error);
    g_assert_nonnull(b);
  }
  g_free(p);

  p = g_build_filename(dir, "trunc.qcow2", NULL);
  g_assert_true(g_file_set_contents(p, "QFI\xfb\0\0\0\3", 8, NULL));
  assert_refused(p, NB_BLOCK_ERROR_CORRUPT, "no qcow2 header");
  g_free(p);
  bt_rmdir(dir);
}

static void
test_bad_l2_entries(void)
{
  /* Data clusters pointing into metadata or far past the end fail the
   * request, not the process, and leave the file alone. */
  g_autofree char *dir = bt_tmpdir();
  g_autofree char *p = fresh(dir, "l2.qcow2");
  g_autoptr(GError) error = NULL;
  uint64_t l1e;
  {
    int fd = open(p, O_RDONLY);
    g_assert_cmpint(pread(fd, &l1e, 8, 3 * 65536), ==, 8);
    close(fd);
  }
  uint64_t l2 = GUINT64_FROM_BE(l1e) & UINT64_C(0x00fffffffffffe00);
  patch64(p, l2, (3 * UINT64_C(65536)) | (UINT64_C(1) << 63));        /* onto the L1 table */
  patch64(p, l2 + 8, (UINT64_C(1) << 50) | (UINT64_C(1) << 63));       /* far past the end */
  patch64(p, l2 + 16, UINT64_C(1) << 62 | UINT64_C(1) << 40);          /* compressed, outside */
  patch64(p, l2 + 24, (2 * UINT64_C(65536)) | (UINT64_C(1) << 63));    /* onto a refcount block */
  patch64(p, l2 + 32, l2 | (UINT64_C(1) << 63));                         /* onto its own L2 table */
  g_autofree char *before = bt_file_checksum(p);
  g_autoptr(NbBlock) b = nb_block_open(p, NULL, &error);
  g_assert_no_error(error);
  uint8_t buf[65536];
  struct iovec iov = { buf, sizeof buf };
  for (int i = 0; i < 5; i++) {
    g_assert_false(nb_block_preadv(b, &iov, 1, (uint64_t)i * 65536, &error));
    g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT);
    g_assert_nonnull(strstr(error->message, p));
    g_clear_error(&error);
    g_assert_false(nb_block_pwritev(b, &iov, 1, (uint64_t)i * 65536, &error));
    g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT);
    g_clear_error(&error);
  }
  g_autofree char *after = bt_file_checksum(p);
  g_assert_cmpstr(before, ==, after);
  /* The rest of the disk still works. */
  bt_write(b, "ok", 2, 5 * 65536);
  bt_rmdir(dir);
}

static void
test_bad_backing(void)
{
  g_autofree char *dir = bt_tmpdir();
  g_autoptr(GError) error = NULL;
  /* A loop through two images and one through itself. */
  g_assert_cmpint(bt_run(NULL, "cd '%s' && qemu-img create -q -f qcow2 a.qcow2 1M && "
                         "qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2 && "
                         "qemu-img rebase -u -b b.qcow2 -F qcow2 a.qcow2 && "
                         "qemu-img create -q -f qcow2 self.qcow2 1M && "
                         "qemu-img rebase -u -b self.qcow2 -F qcow2 self.qcow2", dir), ==, 0);
  g_autofree char *b = g_build_filename(dir, "b.qcow2", NULL);
  assert_refused(b, NB_BLOCK_ERROR_CORRUPT, "loops");
  g_autofree char *self = g_build_filename(dir, "self.qcow2", NULL);
  assert_refused(self, NB_BLOCK_ERROR_CORRUPT, "loops");

  /* Too deep: 18 images on top of each other. */
  g_assert_cmpint(bt_run(NULL, "cd '%s' && qemu-img create -q -f qcow2 d0.qcow2 1M && "
                         "for i in $(seq 1 18); do qemu-img create -q -f qcow2 -b d$((i-1)).qcow2 "
                         "-F qcow2 d$i.qcow2 || exit 1; done", dir), ==, 0);
  g_autofree char *deep = g_build_filename(dir, "d18.qcow2", NULL);
  assert_refused(deep, NB_BLOCK_ERROR_CORRUPT, "deeper than 16");
  g_autofree char *ok = g_build_filename(dir, "d15.qcow2", NULL);
  {
    g_autoptr(NbBlock) blk = nb_block_open(ok, NULL, &error);
    g_assert_no_error(error);
    g_assert_nonnull(blk);
  }

  /* Names that reach beyond local files, control characters, devices,
   * folders and FIFOs. */
  g_autofree char *fifo = g_build_filename(dir, "fifo", NULL);
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  static const struct { const char *name; int code; const char *what; } cases[] = {
    { "nbd:localhost:10809", NB_BLOCK_ERROR_UNSUPPORTED, "protocol" },
    { "json:{\"file\":\"/etc/passwd\"}", NB_BLOCK_ERROR_UNSUPPORTED, "protocol" },
    { "base\n.raw", NB_BLOCK_ERROR_CORRUPT, "control characters" },
    { "fifo", NB_BLOCK_ERROR_UNSUPPORTED, "not a disk image" },
    { ".", NB_BLOCK_ERROR_UNSUPPORTED, "not a disk image" },
    { "/dev/null", NB_BLOCK_ERROR_UNSUPPORTED, "not a disk image" },
    { "missing.raw", NB_BLOCK_ERROR_NOT_FOUND, "missing" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *name = g_strdup_printf("bk%zu.qcow2", i);
    g_autofree char *p = fresh(dir, name);
    /* Backing name at 512, within the first cluster. */
    patch(p, 512, cases[i].name, strlen(cases[i].name));
    patch64(p, 8, 512);
    patch32(p, 16, (uint32_t)strlen(cases[i].name));
    assert_refused(p, cases[i].code, cases[i].what);
  }
  bt_rmdir(dir);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  bt_require_qemu_img();
  g_test_add_func("/block/qcow2/bad/headers", test_bad_headers);
  g_test_add_func("/block/qcow2/bad/l2-entries", test_bad_l2_entries);
  g_test_add_func("/block/qcow2/bad/backing", test_bad_backing);
  return g_test_run();
}
