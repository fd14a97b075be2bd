#include "base/size.h"

static void
test_parse_valid(void)
{
  static const struct { const char *text; uint64_t bytes; } cases[] = {
    { "0", 0 }, { "4096", 4096 }, { "512M", 512ull << 20 }, { "2G", 2ull << 30 },
    { "2g", 2ull << 30 }, { "1K", 1024 }, { "3T", 3ull << 40 }, { "64MiB", 64ull << 20 },
    { "1GB", 1ull << 30 }, { "100B", 100 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    uint64_t bytes = 1;
    g_assert_true(nb_size_parse(cases[i].text, &bytes, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(bytes, ==, cases[i].bytes);
  }
}

static void
test_parse_invalid(void)
{
  static const char *cases[] = { "", "M", "-1", "12X", "1.5G", "1G5", " 1G", "1 G",
                                 "99999999999999999999", "17179869184T", "0x10" };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    uint64_t bytes = 7;
    g_assert_false(nb_size_parse(cases[i], &bytes, &error));
    g_assert_nonnull(error);
    g_assert_cmpuint(bytes, ==, 7);
  }
}

static void
test_format(void)
{
  g_autofree char *a = nb_size_format(512ull << 20);
  g_autofree char *b = nb_size_format(5ull << 30);
  g_autofree char *c = nb_size_format(1536 * 1024);
  g_autofree char *d = nb_size_format(1000);
  g_assert_cmpstr(a, ==, "512M");
  g_assert_cmpstr(b, ==, "5G");
  g_assert_cmpstr(c, ==, "1536K");
  g_assert_cmpstr(d, ==, "1000");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/size/parse-valid", test_parse_valid);
  g_test_add_func("/size/parse-invalid", test_parse_invalid);
  g_test_add_func("/size/format", test_format);
  return g_test_run();
}
