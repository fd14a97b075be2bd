#include "kvm/io-bus.h"

#include <string.h>

typedef struct {
  uint64_t last_offset;
  uint64_t last_value;
  unsigned last_size;
  unsigned writes;
} Recorder;

static uint64_t
rec_read(void *opaque, uint64_t offset, unsigned size)
{
  return 0x1122334455667788ull + offset;
}

static void
rec_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  Recorder *r = opaque;
  r->last_offset = offset;
  r->last_value = value;
  r->last_size = size;
  r->writes++;
}

static const NbIoOps rec_ops = { rec_read, rec_write };

static void
test_dispatch(void)
{
  NbIoBus *bus = nb_io_bus_new("test");
  Recorder a = { 0 }, b = { 0 };
  g_assert_true(nb_io_bus_register(bus, 0x3f8, 8, &rec_ops, &a, NULL));
  g_assert_true(nb_io_bus_register(bus, 0x60, 1, &rec_ops, &b, NULL));

  uint32_t v = 0xdeadbeef;
  g_assert_true(nb_io_bus_write(bus, 0x3fa, &v, 2));
  g_assert_cmpuint(a.last_offset, ==, 2);
  g_assert_cmpuint(a.last_value, ==, 0xbeef);
  g_assert_cmpuint(a.last_size, ==, 2);

  uint8_t byte = 0;
  g_assert_true(nb_io_bus_read(bus, 0x60, &byte, 1));
  g_assert_cmpuint(byte, ==, 0x88);

  /* Nothing there: reads float high, writes are dropped. */
  uint32_t none = 0;
  g_assert_false(nb_io_bus_read(bus, 0x1000, &none, 4));
  g_assert_cmpuint(none, ==, 0xffffffff);
  g_assert_false(nb_io_bus_write(bus, 0x1000, &v, 4));

  /* An access that straddles the end of a range is not the device's. */
  g_assert_false(nb_io_bus_write(bus, 0x3fe, &v, 4));
  g_assert_cmpuint(a.writes, ==, 1);
  nb_io_bus_free(bus);
}

static void
test_overlap_refused(void)
{
  NbIoBus *bus = nb_io_bus_new("test");
  Recorder a = { 0 };
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_io_bus_register(bus, 0x1000, 0x100, &rec_ops, &a, NULL));
  g_assert_false(nb_io_bus_register(bus, 0x10ff, 2, &rec_ops, &a, &error));
  g_assert_nonnull(error);
  g_clear_error(&error);
  g_assert_false(nb_io_bus_register(bus, 0xf00, 0x101, &rec_ops, &a, &error));
  g_clear_error(&error);
  g_assert_false(nb_io_bus_register(bus, UINT64_MAX - 1, 4, &rec_ops, &a, &error));
  g_clear_error(&error);
  g_assert_true(nb_io_bus_register(bus, 0x1100, 0x100, &rec_ops, &a, NULL));
  g_assert_true(nb_io_bus_unregister(bus, 0x1000, &a));
  g_assert_false(nb_io_bus_unregister(bus, 0x1000, &a));
  g_assert_true(nb_io_bus_register(bus, 0x10ff, 1, &rec_ops, &a, NULL));
  nb_io_bus_free(bus);
}

static void
test_many_ranges(void)
{
  NbIoBus *bus = nb_io_bus_new("test");
  Recorder r[64] = { 0 };
  /* Registered out of order; binary search must still find each. */
  for (unsigned i = 0; i < 64; i++) {
    unsigned slot = (i * 37) % 64;
    g_assert_true(nb_io_bus_register(bus, 0x10000 + slot * 0x10, 0x10, &rec_ops, &r[slot], NULL));
  }
  for (unsigned slot = 0; slot < 64; slot++) {
    uint8_t v = (uint8_t)slot;
    g_assert_true(nb_io_bus_write(bus, 0x10000 + slot * 0x10 + 5, &v, 1));
    g_assert_cmpuint(r[slot].writes, ==, 1);
    g_assert_cmpuint(r[slot].last_offset, ==, 5);
  }
  nb_io_bus_free(bus);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/io-bus/dispatch", test_dispatch);
  g_test_add_func("/io-bus/overlap-refused", test_overlap_refused);
  g_test_add_func("/io-bus/many-ranges", test_many_ranges);
  return g_test_run();
}
