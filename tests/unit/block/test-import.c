/* VDI and VMDK files made by qemu-img import with identical content, to raw
 * and to qcow2; bad ones are refused. */
#include "block/convert.h"
#include "block-test-util.h"

static const struct {
  const char *name;
  const char *args;
  NbBlockFormat format;
} sources[] = {
  { "dyn.vdi", "-O vdi", NB_BLOCK_FORMAT_VDI },
  { "fixed.vdi", "-O vdi -o static=on", NB_BLOCK_FORMAT_VDI },
  { "sparse.vmdk", "-O vmdk", NB_BLOCK_FORMAT_VMDK },
  { "flat.vmdk", "-O vmdk -o subformat=monolithicFlat", NB_BLOCK_FORMAT_VMDK },
  { "stream.vmdk", "-O vmdk -o subformat=streamOptimized", NB_BLOCK_FORMAT_VMDK },
  { "split.vmdk", "-O vmdk -o subformat=twoGbMaxExtentSparse", NB_BLOCK_FORMAT_VMDK },
  { "v3.vmdk", "-O vmdk -o compat6=on", NB_BLOCK_FORMAT_VMDK },
};

static void
test_import(void)
{
  g_autofree char *dir = bt_tmpdir();
  g_autofree char *src = g_build_filename(dir, "src.raw", NULL);
  size_t size = (6 << 20) + 512 * 3;  /* not a multiple of any grain or block */
  g_autofree uint8_t *data = g_malloc0(size);
  bt_fill(data, 1 << 20, 1);
  bt_fill(data + (3 << 20) + 100, 300000, 2);
  memset(data + size - 4000, 0x5a, 4000);
  g_assert_true(g_file_set_contents(src, (char *)data, (gssize)size, NULL));
  g_autofree uint8_t *back = g_malloc(size);

  for (gsize i = 0; i < G_N_ELEMENTS(sources); i++) {
    g_autofree char *img = g_build_filename(dir, sources[i].name, NULL);
    g_assert_cmpint(bt_run(NULL, "qemu-img convert -f raw %s '%s' '%s'", sources[i].args, src,
                           img), ==, 0);
    g_autoptr(GError) error = NULL;
    /* Import formats are read-only: a writer is told to convert. */
    g_assert_null(nb_block_open(img, NULL, &error));
    g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED);
    g_assert_nonnull(strstr(error->message, "convert"));
    g_clear_error(&error);

    NbBlockOpenOptions ro = { .read_only = true };
    g_autoptr(NbBlock) b = nb_block_open(img, &ro, &error);
    g_assert_no_error(error);
    g_assert_cmpint(nb_block_format(b), ==, sources[i].format);
    g_assert_cmpuint(nb_block_size(b), >=, size);
    bt_read(b, back, size, 0);
    if (memcmp(back, data, size) != 0)
      g_error("%s reads differently from its source", sources[i].name);

    g_autofree char *q = g_strdup_printf("%s.qcow2", img);
    g_autofree char *r = g_strdup_printf("%s.raw", img);
    NbConvertOptions to_qcow2 = { .format = NB_BLOCK_FORMAT_QCOW2 };
    NbConvertOptions to_raw = { .format = NB_BLOCK_FORMAT_RAW };
    g_assert_true(nb_block_convert(b, q, &to_qcow2, &error));
    g_assert_no_error(error);
    g_assert_true(nb_block_convert(b, r, &to_raw, &error));
    g_assert_no_error(error);
    bt_assert_qemu_check(q, false);
    bt_assert_same(q, "qcow2", img, nb_block_format_name(sources[i].format));
    bt_assert_same(r, "raw", img, nb_block_format_name(sources[i].format));
    /* Holes stay holes. */
    GStatBuf st;
    g_assert_cmpint(g_stat(r, &st), ==, 0);
    g_assert_cmpint((gint64)st.st_blocks * 512, <, (gint64)(3 << 20));
  }
  bt_rmdir(dir);
}

static void
test_bad_vmdk_descriptors(void)
{
  g_autofree char *dir = bt_tmpdir();
  static const struct { const char *extent; const char *what; } cases[] = {
    { "RW 2048 FLAT \"../secret\" 0", "outside the descriptor" },
    { "RW 2048 FLAT \"/etc/passwd\" 0", "outside the descriptor" },
    { "RW 2048 FLAT \"sub/../../x\" 0", "outside the descriptor" },
    { "RW 2048 FLAT \"missing-flat.vmdk\" 0", "missing-flat.vmdk" },
    { "RW 2048 FOO \"x\" 0", "not supported" },
    { "RW 99999999999999999 ZERO", "too large" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *path = g_build_filename(dir, "d.vmdk", NULL);
    g_autofree char *text = g_strdup_printf("# Disk DescriptorFile\nversion=1\nCID=1\n"
                                            "parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
                                            "%s\n", cases[i].extent);
    g_assert_true(g_file_set_contents(path, text, -1, NULL));
    NbBlockOpenOptions ro = { .read_only = true };
    g_autoptr(GError) error = NULL;
    g_assert_null(nb_block_open(path, &ro, &error));
    g_assert_nonnull(error);
    if (strstr(error->message, cases[i].what) == NULL || strstr(error->message, path) == NULL)
      g_error("“%s”: message “%s” lacks “%s”", cases[i].extent, error->message, cases[i].what);
  }
  /* A delta disk needs its parent. */
  g_autofree char *delta = g_build_filename(dir, "delta.vmdk", NULL);
  g_assert_true(g_file_set_contents(delta, "# Disk DescriptorFile\nparentCID=1234abcd\n"
                                    "RW 2048 ZERO\n", -1, NULL));
  NbBlockOpenOptions ro = { .read_only = true };
  g_autoptr(GError) error = NULL;
  g_assert_null(nb_block_open(delta, &ro, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED);
  bt_rmdir(dir);
}

static void
test_bad_vdi(void)
{
  g_autofree char *dir = bt_tmpdir();
  g_autofree char *src = g_build_filename(dir, "s.raw", NULL);
  g_autofree char *vdi = g_build_filename(dir, "s.vdi", NULL);
  g_assert_cmpint(bt_run(NULL, "qemu-img create -q -f raw '%s' 4M && "
                         "qemu-io -f raw -c 'write -P 1 0 1M' '%s' >/dev/null && "
                         "qemu-img convert -f raw -O vdi '%s' '%s'", src, src, src, vdi), ==, 0);
  g_autofree char *data = NULL;
  gsize len;
  g_assert_true(g_file_get_contents(vdi, &data, &len, NULL));
  struct { size_t off; uint32_t value; const char *what; } cases[] = {
    { 0x180, 0x7fffffff, "block map is too large" },
    { 0x178, 1000, "block size" },
    { 0x154, 0x10000000, "beyond the end" },
    { 0x44, 0x00020000, "version" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *copy = g_memdup2(data, len);
    uint32_t le = GUINT32_TO_LE(cases[i].value);
    memcpy(copy + cases[i].off, &le, 4);
    g_assert_true(g_file_set_contents(vdi, copy, (gssize)len, NULL));
    NbBlockOpenOptions ro = { .read_only = true };
    g_autoptr(GError) error = NULL;
    g_assert_null(nb_block_open(vdi, &ro, &error));
    if (strstr(error->message, cases[i].what) == NULL)
      g_error("message “%s” lacks “%s”", error->message, cases[i].what);
  }
  /* A block map entry past the last block. */
  uint32_t map_off;
  memcpy(&map_off, data + 0x154, 4);
  g_autofree char *copy = g_memdup2(data, len);
  uint32_t entry = GUINT32_TO_LE(1000);
  memcpy(copy + GUINT32_FROM_LE(map_off), &entry, 4);
  g_assert_true(g_file_set_contents(vdi, copy, (gssize)len, NULL));
  NbBlockOpenOptions ro = { .read_only = true };
  g_autoptr(GError) error = NULL;
  g_assert_null(nb_block_open(vdi, &ro, &error));
  g_assert_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_CORRUPT);
  bt_rmdir(dir);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  bt_require_qemu_img();
  g_test_add_func("/block/import/qemu-made", test_import);
  g_test_add_func("/block/import/bad-vmdk", test_bad_vmdk_descriptors);
  g_test_add_func("/block/import/bad-vdi", test_bad_vdi);
  return g_test_run();
}
