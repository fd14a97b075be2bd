/* The AML emitter: byte-exact encodings checked against the ACPI
 * specification's grammar for small objects. */
#include "boot/aml.h"

#include <gio/gio.h>

#include <string.h>

static void
check_bytes(GBytes *got, const uint8_t *want, size_t len)
{
  g_assert_nonnull(got);
  gsize n;
  const uint8_t *data = g_bytes_get_data(got, &n);
  g_assert_cmpmem(data, n, want, len);
}

static void
test_pkg_length(void)
{
  static const struct { size_t content; unsigned n; uint8_t bytes[4]; } cases[] = {
    { 0, 1, { 0x01 } },
    { 62, 1, { 0x3f } },                     /* largest one-byte: 63 in all */
    { 63, 2, { 0x41, 0x04 } },               /* 65 = 0x041 */
    { 4093, 2, { 0x4f, 0xff } },             /* 4095: largest two-byte */
    { 4094, 3, { 0x81, 0x00, 0x01 } },       /* 4097 = 0x1001 */
    { (1 << 20) - 4, 3, { 0x8f, 0xff, 0xff } },
    { (1 << 20) - 3, 4, { 0xc1, 0x00, 0x00, 0x01 } },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    uint8_t out[4] = { 0 };
    g_assert_cmpuint(nb_aml_pkg_length_encode(cases[i].content, out), ==, cases[i].n);
    g_assert_cmpmem(out, cases[i].n, cases[i].bytes, cases[i].n);
  }
  uint8_t out[4];
  g_assert_cmpuint(nb_aml_pkg_length_encode((size_t)1 << 28, out), ==, 0);
}

static void
test_eisaid(void)
{
  uint32_t v;
  g_assert_true(nb_aml_eisaid_encode("PNP0A03", &v));
  g_assert_cmphex(v, ==, 0x030ad041);
  g_assert_true(nb_aml_eisaid_encode("PNP0501", &v));
  g_assert_cmphex(v, ==, 0x0105d041);
  g_assert_true(nb_aml_eisaid_encode("PNP0B00", &v));
  g_assert_cmphex(v, ==, 0x000bd041);
  g_assert_false(nb_aml_eisaid_encode("pnp0A03", &v));
  g_assert_false(nb_aml_eisaid_encode("PNP0a03", &v));
  g_assert_false(nb_aml_eisaid_encode("PNP0A0", &v));
  g_assert_false(nb_aml_eisaid_encode("PNP0A0G", &v));
  g_assert_false(nb_aml_eisaid_encode(NULL, &v));
}

static void
test_integers(void)
{
  g_autoptr(NbAml) aml = nb_aml_new();
  nb_aml_integer(aml, 0);
  nb_aml_integer(aml, 1);
  nb_aml_integer(aml, 0x2a);
  nb_aml_integer(aml, 0x1234);
  nb_aml_integer(aml, 0xdeadbeef);
  nb_aml_integer(aml, 0x100000000ull);
  g_autoptr(GBytes) code = nb_aml_finish(aml, NULL);
  static const uint8_t want[] = {
    0x00, 0x01, 0x0a, 0x2a, 0x0b, 0x34, 0x12, 0x0c, 0xef, 0xbe, 0xad, 0xde,
    0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
  };
  check_bytes(code, want, sizeof want);
}

static void
test_name_package(void)
{
  /* Name (_S5, Package (0x04) { 0x05, 0x05, Zero, Zero }) */
  g_autoptr(NbAml) aml = nb_aml_new();
  nb_aml_name(aml, "_S5");
  nb_aml_package_begin(aml);
  nb_aml_integer(aml, 5);
  nb_aml_integer(aml, 5);
  nb_aml_integer(aml, 0);
  nb_aml_integer(aml, 0);
  nb_aml_end(aml);
  g_autoptr(GBytes) code = nb_aml_finish(aml, NULL);
  static const uint8_t want[] = {
    0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00,
  };
  check_bytes(code, want, sizeof want);
}

static void
test_scope_device_method(void)
{
  /* As iasl compiles it: Scope (\_SB) { Device (PCI0) { Name (_HID, EisaId ("PNP0A03"))
   *   Method (_STA, 0, NotSerialized) { Return (0x0F) } } } */
  g_autoptr(NbAml) aml = nb_aml_new();
  nb_aml_scope_begin(aml, "\\_SB");
  nb_aml_device_begin(aml, "PCI0");
  nb_aml_name(aml, "_HID");
  nb_aml_eisaid(aml, "PNP0A03");
  nb_aml_method_begin(aml, "_STA", 0, false);
  nb_aml_return(aml);
  nb_aml_integer(aml, 0x0f);
  nb_aml_end(aml);
  nb_aml_end(aml);
  nb_aml_end(aml);
  g_autoptr(GBytes) code = nb_aml_finish(aml, NULL);
  static const uint8_t want[] = {
    0x10, 0x21, '\\', '_', 'S', 'B', '_',
    0x5b, 0x82, 0x19, 'P', 'C', 'I', '0',
    0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03,
    0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f,
  };
  check_bytes(code, want, sizeof want);
}

static void
test_name_strings(void)
{
  g_autoptr(NbAml) aml = nb_aml_new();
  nb_aml_name(aml, "\\_SB.PCI0");
  nb_aml_integer(aml, 0);
  nb_aml_name(aml, "^^A.B.C");
  nb_aml_string(aml, "hi");
  g_autoptr(GBytes) code = nb_aml_finish(aml, NULL);
  static const uint8_t want[] = {
    0x08, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 0x00,
    0x08, '^', '^', 0x2f, 0x03, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_',
    0x0d, 'h', 'i', 0x00,
  };
  check_bytes(code, want, sizeof want);
}

static void
test_long_package(void)
{
  /* 100 elements of 5 bytes: a two-byte PkgLength, and the count. */
  g_autoptr(NbAml) aml = nb_aml_new();
  nb_aml_package_begin(aml);
  for (int i = 0; i < 100; i++)
    nb_aml_integer(aml, 0x10000 + i);
  nb_aml_end(aml);
  g_autoptr(GBytes) code = nb_aml_finish(aml, NULL);
  gsize n;
  const uint8_t *d = g_bytes_get_data(code, &n);
  g_assert_cmpuint(n, ==, 1 + 2 + 1 + 500);
  g_assert_cmphex(d[0], ==, 0x12);
  size_t total = 2 + 1 + 500;
  g_assert_cmphex(d[1], ==, 0x40 | (total & 0xf));
  g_assert_cmphex(d[2], ==, total >> 4);
  g_assert_cmpuint(d[3], ==, 100);
  g_assert_cmphex(d[4], ==, 0x0c);
}

static void
test_resource_template(void)
{
  g_autoptr(GByteArray) res = g_byte_array_new();
  nb_aml_res_io(res, 0x3f8, 0x3f8, 1, 8);
  nb_aml_res_irq_noflags(res, 4);
  g_autoptr(NbAml) aml = nb_aml_new();
  nb_aml_resource_template(aml, res);
  g_autoptr(GBytes) code = nb_aml_finish(aml, NULL);
  static const uint8_t want[] = {
    0x11, 0x10, 0x0a, 0x0d,
    0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
    0x22, 0x10, 0x00,
    0x79, 0x00,
  };
  check_bytes(code, want, sizeof want);

  /* Address space descriptors: the length field and the computed length. */
  g_autoptr(GByteArray) win = g_byte_array_new();
  nb_aml_res_qword_memory(win, 0x100000000ull, 0x8ffffffffull, true);
  g_assert_cmpuint(win->len, ==, 46);
  g_assert_cmphex(win->data[0], ==, 0x8a);
  g_assert_cmpuint(win->data[1] | win->data[2] << 8, ==, 43);
  uint64_t len;
  memcpy(&len, win->data + 38, 8);
  g_assert_cmphex(len, ==, 0x800000000ull);
}

static void
expect_failure(NbAml *aml, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) code = nb_aml_finish(aml, &error);
  g_assert_null(code);
  g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  if (g_test_verbose())
    g_printerr("%s\n", error->message);
  g_assert_nonnull(strstr(error->message, needle));
}

static void
test_malformed(void)
{
  g_autoptr(NbAml) too_long = nb_aml_new();
  nb_aml_name(too_long, "TOOLONG");
  nb_aml_integer(too_long, 0);
  expect_failure(too_long, "“TOOLONG” is not a valid name");

  g_autoptr(NbAml) digit = nb_aml_new();
  nb_aml_device_begin(digit, "\\_SB.1ABC");
  nb_aml_end(digit);
  expect_failure(digit, "not a valid name");

  g_autoptr(NbAml) empty_seg = nb_aml_new();
  nb_aml_name(empty_seg, "A..B");
  nb_aml_integer(empty_seg, 0);
  expect_failure(empty_seg, "not a valid name");

  g_autoptr(NbAml) open = nb_aml_new();
  nb_aml_scope_begin(open, "\\_SB");
  expect_failure(open, "still open");

  g_autoptr(NbAml) extra = nb_aml_new();
  nb_aml_end(extra);
  expect_failure(extra, "without an open scope");

  g_autoptr(NbAml) big = nb_aml_new();
  nb_aml_package_begin(big);
  for (int i = 0; i < 256; i++)
    nb_aml_integer(big, 0);
  nb_aml_end(big);
  expect_failure(big, "at most 255 elements");

  g_autoptr(NbAml) eisa = nb_aml_new();
  nb_aml_eisaid(eisa, "PNP0A3");
  expect_failure(eisa, "not an EISA ID");

  g_autoptr(NbAml) args = nb_aml_new();
  nb_aml_method_begin(args, "FOO", 8, false);
  expect_failure(args, "at most 7");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/aml/pkg-length", test_pkg_length);
  g_test_add_func("/aml/eisaid", test_eisaid);
  g_test_add_func("/aml/integers", test_integers);
  g_test_add_func("/aml/name-package", test_name_package);
  g_test_add_func("/aml/scope-device-method", test_scope_device_method);
  g_test_add_func("/aml/name-strings", test_name_strings);
  g_test_add_func("/aml/long-package", test_long_package);
  g_test_add_func("/aml/resource-template", test_resource_template);
  g_test_add_func("/aml/malformed", test_malformed);
  return g_test_run();
}
