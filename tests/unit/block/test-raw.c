/* The raw backend and the checks in front of every backend. */
#include "block/block.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

static char *
make_temp_dir(void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp("nb-raw-XXXXXX", &error);
  g_assert_no_error(error);
  return dir;
}

static void
remove_dir(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d)) != NULL) {
    g_autofree char *p = g_build_filename(dir, name, NULL);
    g_unlink(p);
  }
  g_rmdir(dir);
}

static void
test_create_read_write(void)
{
  g_autofree char *dir = make_temp_dir();
  g_autofree char *path = g_build_filename(dir, "disk.raw", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_raw_create(path, 1 << 20, &error));
  g_assert_no_error(error);
  /* Never overwrites. */
  g_assert_false(nb_raw_create(path, 1 << 20, &error));
  g_assert_nonnull(error);
  g_clear_error(&error);

  NbBlockOpenOptions opts = { .format = NB_BLOCK_FORMAT_RAW };
  g_autoptr(NbBlock) b = nb_block_open(path, &opts, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(nb_block_size(b), ==, 1 << 20);
  g_assert_cmpint(nb_block_format(b), ==, NB_BLOCK_FORMAT_RAW);

  /* Scatter-gather across three buffers, unaligned offset. */
  uint8_t a[100], c[7000], d[3];
  memset(a, 0xaa, sizeof a);
  memset(c, 0xcc, sizeof c);
  memset(d, 0xdd, sizeof d);
  struct iovec iov[] = { { a, sizeof a }, { c, sizeof c }, { d, sizeof d } };
  g_assert_true(nb_block_pwritev(b, iov, 3, 12345, &error));
  g_assert_no_error(error);
  g_assert_true(nb_block_flush(b, &error));

  uint8_t back[7103];
  struct iovec riov = { back, sizeof back };
  g_assert_true(nb_block_preadv(b, &riov, 1, 12345, &error));
  g_assert_cmpmem(back, 100, a, 100);
  g_assert_cmpmem(back + 100, 7000, c, 7000);
  g_assert_cmpmem(back + 7100, 3, d, 3);

  /* Write zeroes and discard read back as zeroes. */
  g_assert_true(nb_block_write_zeroes(b, 12345, 50, &error));
  g_assert_true(nb_block_discard(b, 12345 + 50, 4096, &error));
  g_assert_no_error(error);
  g_assert_true(nb_block_preadv(b, &riov, 1, 12345, &error));
  for (size_t i = 0; i < 50 + 4096; i++)
    g_assert_cmpuint(back[i], ==, 0);
  g_assert_cmpuint(back[50 + 4096], ==, 0xcc);
  remove_dir(dir);
}

static void
test_range_checks(void)
{
  g_autofree char *dir = make_temp_dir();
  g_autofree char *path = g_build_filename(dir, "disk.raw", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_raw_create(path, 65536, &error));
  g_autoptr(NbBlock) b = nb_block_open(path, NULL, &error);
  g_assert_no_error(error);
  uint8_t buf[512];
  struct iovec iov = { buf, sizeof buf };
  g_assert_false(nb_block_preadv(b, &iov, 1, 65536 - 511, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_OUT_OF_RANGE);
  g_clear_error(&error);
  g_assert_false(nb_block_pwritev(b, &iov, 1, UINT64_MAX - 10, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_OUT_OF_RANGE);
  g_clear_error(&error);
  g_assert_false(nb_block_discard(b, 65000, UINT64_MAX, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_OUT_OF_RANGE);
  g_clear_error(&error);
  g_assert_true(nb_block_preadv(b, &iov, 1, 65536 - 512, &error));
  g_assert_no_error(error);
  nb_block_close(g_steal_pointer(&b));

  /* The file did not grow from the refused write. */
  GStatBuf st;
  g_assert_cmpint(g_stat(path, &st), ==, 0);
  g_assert_cmpint(st.st_size, ==, 65536);
  remove_dir(dir);
}

static void
test_read_only(void)
{
  g_autofree char *dir = make_temp_dir();
  g_autofree char *path = g_build_filename(dir, "disk.raw", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_raw_create(path, 4096, &error));
  NbBlockOpenOptions opts = { .read_only = true };
  g_autoptr(NbBlock) b = nb_block_open(path, &opts, &error);
  g_assert_no_error(error);
  g_assert_true(nb_block_is_read_only(b));
  uint8_t buf[512] = { 1 };
  struct iovec iov = { buf, sizeof buf };
  g_assert_false(nb_block_pwritev(b, &iov, 1, 0, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_READ_ONLY);
  g_clear_error(&error);
  g_assert_false(nb_block_write_zeroes(b, 0, 512, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_READ_ONLY);
  g_clear_error(&error);
  g_assert_false(nb_block_resize(b, 8192, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_READ_ONLY);
  remove_dir(dir);
}

static void
test_locking(void)
{
  g_autofree char *dir = make_temp_dir();
  g_autofree char *path = g_build_filename(dir, "disk.raw", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_raw_create(path, 4096, &error));
  NbBlockOpenOptions rw = { 0 }, ro = { .read_only = true };

  NbBlock *writer = nb_block_open(path, &rw, &error);
  g_assert_no_error(error);
  /* A second writer and a reader are both refused, naming the file. */
  g_assert_null(nb_block_open(path, &rw, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_LOCKED);
  g_assert_nonnull(strstr(error->message, path));
  g_clear_error(&error);
  g_assert_null(nb_block_open(path, &ro, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_LOCKED);
  g_clear_error(&error);
  /* Unless the reader asks not to lock (info on a running disk). */
  NbBlockOpenOptions peek = { .read_only = true, .no_lock = true };
  NbBlock *peeker = nb_block_open(path, &peek, &error);
  g_assert_no_error(error);
  nb_block_close(peeker);
  nb_block_close(writer);

  /* Readers share; a writer is refused while they read. */
  NbBlock *r1 = nb_block_open(path, &ro, &error);
  NbBlock *r2 = nb_block_open(path, &ro, &error);
  g_assert_no_error(error);
  g_assert_null(nb_block_open(path, &rw, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_LOCKED);
  g_clear_error(&error);
  nb_block_close(r1);
  nb_block_close(r2);
  writer = nb_block_open(path, &rw, &error);
  g_assert_no_error(error);
  nb_block_close(writer);
  remove_dir(dir);
}

static void
test_resize_and_misc(void)
{
  g_autofree char *dir = make_temp_dir();
  g_autofree char *path = g_build_filename(dir, "disk.raw", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_raw_create(path, 4096, &error));
  g_autoptr(NbBlock) b = nb_block_open(path, NULL, &error);
  g_assert_no_error(error);
  g_assert_true(nb_block_resize(b, 1 << 20, &error));
  g_assert_cmpuint(nb_block_size(b), ==, 1 << 20);
  g_assert_false(nb_block_resize(b, 4096, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED);
  g_clear_error(&error);
  uint64_t pnum = 0;
  g_assert_false(nb_block_is_allocated(b, 0, 1 << 20, &pnum));
  g_assert_cmpuint(pnum, >, 0);

  /* Not a regular file: refused, not opened. */
  g_assert_null(nb_block_open(dir, NULL, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED);
  g_clear_error(&error);
  g_autofree char *missing = g_build_filename(dir, "missing", NULL);
  g_assert_null(nb_block_open(missing, NULL, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_NOT_FOUND);
  g_clear_error(&error);

  NbBlockFormat f;
  g_assert_true(nb_block_format_parse("QCOW2", &f, NULL));
  g_assert_cmpint(f, ==, NB_BLOCK_FORMAT_QCOW2);
  g_assert_false(nb_block_format_parse("vhdx", &f, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED);
  remove_dir(dir);
}

static void
test_raw_never_probed(void)
{
  /* A raw disk whose guest wrote a qcow2 magic stays raw when format=raw. */
  g_autofree char *dir = make_temp_dir();
  g_autofree char *path = g_build_filename(dir, "disk.raw", NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_raw_create(path, 4096, &error));
  NbBlockOpenOptions opts = { .format = NB_BLOCK_FORMAT_RAW };
  NbBlock *b = nb_block_open(path, &opts, &error);
  g_assert_no_error(error);
  uint8_t hdr[512] = "QFI\xfb\0\0\0\3";
  struct iovec iov = { hdr, sizeof hdr };
  g_assert_true(nb_block_pwritev(b, &iov, 1, 0, &error));
  nb_block_close(b);
  b = nb_block_open(path, &opts, &error);
  g_assert_no_error(error);
  g_assert_cmpint(nb_block_format(b), ==, NB_BLOCK_FORMAT_RAW);
  g_assert_cmpuint(nb_block_size(b), ==, 4096);
  nb_block_close(b);
  remove_dir(dir);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/block/raw/create-read-write", test_create_read_write);
  g_test_add_func("/block/raw/range-checks", test_range_checks);
  g_test_add_func("/block/raw/read-only", test_read_only);
  g_test_add_func("/block/raw/locking", test_locking);
  g_test_add_func("/block/raw/resize-and-misc", test_resize_and_misc);
  g_test_add_func("/block/raw/never-probed", test_raw_never_probed);
  return g_test_run();
}
