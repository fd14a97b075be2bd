/* Property test: random writes, discards, zeroing, resizes, snapshots and
 * reopens through the library against a shadow copy in memory; then qemu-img
 * check must find nothing and qemu-img compare must find the images equal. */
#include "block/qcow2.h"
#include "block-test-util.h"

typedef struct {
  unsigned cluster_bits;
  unsigned refcount_order;
  unsigned version;
  bool backing;
  int ops;
} Config;

static void
verify(NbBlock *b, const uint8_t *shadow, uint64_t size, GRand *rng)
{
  uint64_t len = MIN(size, (uint64_t)g_rand_int_range(rng, 1, 300000));
  uint64_t off = size > len ? (uint64_t)g_rand_double_range(rng, 0, (double)(size - len)) : 0;
  g_autofree uint8_t *back = g_malloc(len);
  bt_read(b, back, len, off);
  if (memcmp(back, shadow + off, len) != 0) {
    for (uint64_t i = 0; i < len; i++)
      if (back[i] != shadow[off + i]) {
        g_printerr("mismatch at %" G_GUINT64_FORMAT ": got %u want %u\n", off + i, back[i],
                   shadow[off + i]);
        break;
      }
    g_assert_not_reached();
  }
}

static void
run(gconstpointer data)
{
  const Config *cfg = data;
  g_autofree char *dir = bt_tmpdir();
  g_autofree char *path = g_build_filename(dir, "p.qcow2", NULL);
  g_autofree char *base = g_build_filename(dir, "base.raw", NULL);
  g_autofree char *shadow_path = g_build_filename(dir, "shadow.raw", NULL);
  const uint64_t max_size = 12 << 20;
  uint64_t size = 3 << 20;
  g_autofree uint8_t *shadow = g_malloc0(max_size);
  g_autoptr(GError) error = NULL;
  NbQcow2CreateOptions o = { .cluster_bits = cfg->cluster_bits,
                             .refcount_order = cfg->refcount_order,
                             .version = cfg->version };
  if (cfg->backing) {
    /* The backing file is larger than the overlay: growing must not reveal it. */
    g_autofree uint8_t *b = g_malloc(size + (1 << 20));
    bt_fill(b, size + (1 << 20), 99);
    g_assert_true(g_file_set_contents(base, (char *)b, (gssize)(size + (1 << 20)), NULL));
    memcpy(shadow, b, size);
    o.backing_file = "base.raw";
    o.backing_format = NB_BLOCK_FORMAT_RAW;
  }
  g_assert_true(nb_qcow2_create(path, size, &o, &error));
  g_assert_no_error(error);

  GRand *rng = g_rand_new_with_seed(12345 + cfg->cluster_bits * 7 + cfg->refcount_order);
  NbBlock *b = nb_block_open(path, NULL, &error);
  g_assert_no_error(error);
  uint64_t cs = UINT64_C(1) << cfg->cluster_bits;
  int snapshots = 0;
  g_autofree uint8_t *buf = g_malloc(6 * cs + 4096);
  for (int i = 0; i < cfg->ops; i++) {
    int op = g_rand_int_range(rng, 0, 100);
    uint64_t len = (uint64_t)g_rand_int_range(rng, 1, (gint32)(4 * cs + 4096));
    if (g_rand_boolean(rng))
      len = (len / cs + 1) * cs;   /* whole clusters half the time */
    len = MIN(len, size);
    uint64_t off = (uint64_t)g_rand_double_range(rng, 0, (double)(size - len + 1));
    if (g_rand_boolean(rng))
      off &= ~(cs - 1);
    if (op < 55) {
      bt_fill(buf, len, (uint32_t)i);
      bt_write(b, buf, len, off);
      memcpy(shadow + off, buf, len);
    } else if (op < 67) {
      g_assert_true(nb_block_discard(b, off, len, &error));
      g_assert_no_error(error);
      memset(shadow + off, 0, len);
    } else if (op < 77) {
      g_assert_true(nb_block_write_zeroes(b, off, len, &error));
      g_assert_no_error(error);
      memset(shadow + off, 0, len);
    } else if (op < 80) {
      uint64_t grow = MIN(max_size, size + (uint64_t)g_rand_int_range(rng, 1, 1 << 20));
      grow = (grow + 511) & ~UINT64_C(511);
      if (grow <= max_size) {
        g_assert_true(nb_block_resize(b, grow, &error));
        g_assert_no_error(error);
        size = grow;
      }
    } else if (op < 85) {
      g_assert_true(nb_block_flush(b, &error));
      g_assert_no_error(error);
    } else if (op < 88 && cfg->refcount_order >= 2) {
      /* A snapshot taken and dropped again: shared clusters must come back. */
      g_autofree char *name = g_strdup_printf("s%d", snapshots++);
      g_assert_true(nb_qcow2_snapshot_create(b, name, &error));
      g_assert_no_error(error);
      if (g_rand_boolean(rng)) {
        bt_fill(buf, len, (uint32_t)i + 1000);
        bt_write(b, buf, len, off);
        memcpy(shadow + off, buf, len);
      }
      g_assert_true(nb_qcow2_snapshot_delete(b, name, &error));
      g_assert_no_error(error);
    } else if (op < 91) {
      nb_block_close(b);
      bt_assert_qemu_check(path, false);
      b = nb_block_open(path, NULL, &error);
      g_assert_no_error(error);
      g_assert_cmpuint(nb_block_size(b), ==, size);
    }
    if (i % 10 == 0)
      verify(b, shadow, size, rng);
  }
  NbQcow2CheckResult res;
  g_assert_true(nb_qcow2_check(b, false, &res, &error));
  for (guint i = 0; i < res.messages->len; i++)
    g_printerr("%s\n", (char *)res.messages->pdata[i]);
  g_assert_cmpuint(res.corruptions, ==, 0);
  g_assert_cmpuint(res.leaks, ==, 0);
  nb_qcow2_check_result_clear(&res);
  nb_block_close(b);
  g_rand_free(rng);

  bt_assert_qemu_check(path, false);
  g_assert_true(g_file_set_contents(shadow_path, (char *)shadow, (gssize)size, NULL));
  bt_assert_same(path, "qcow2", shadow_path, "raw");
  bt_rmdir(dir);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  bt_require_qemu_img();
  static const Config configs[] = {
    { 9, 4, 3, false, 400 },   /* tiny clusters: many tables, refcount table growth */
    { 9, 0, 3, false, 200 },   /* 1-bit refcounts */
    { 10, 6, 3, true, 300 },   /* 64-bit refcounts, over a backing file */
    { 12, 4, 2, true, 300 },   /* version 2: no zero flag, zeroes written out */
    { 12, 3, 3, true, 200 },   /* 8-bit refcounts */
    { 16, 4, 3, false, 200 },  /* the default */
    { 16, 4, 3, true, 200 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(configs); i++) {
    const Config *c = &configs[i];
    if (c->version == 2 && c->refcount_order != 4)
      continue;
    g_autofree char *name = g_strdup_printf("/block/qcow2/property/c%u-r%u-v%u%s", c->cluster_bits,
                                            c->refcount_order, c->version,
                                            c->backing ? "-backing" : "");
    g_test_add_data_func(name, c, run);
  }
  return g_test_run();
}
