/* The SMBIOS tables, read back the way a guest's dmidecode reads them. */
#include "boot/smbios.h"

#include <string.h>

static uint64_t
le(const uint8_t *p, unsigned size)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < size; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static uint8_t
sum(const uint8_t *p, size_t len)
{
  uint8_t s = 0;
  for (size_t i = 0; i < len; i++)
    s += p[i];
  return s;
}

typedef struct {
  const uint8_t *at;     /* the formatted area */
  unsigned length;
  const char *strings[16];
  unsigned n_strings;
} Parsed;

/* Walks the structures as a reader does: the formatted area, then strings up
 * to a double NUL. Checks every bound on the way. */
static GArray *
parse(GBytes *tables)
{
  gsize len;
  const uint8_t *p = g_bytes_get_data(tables, &len);
  GArray *out = g_array_new(FALSE, TRUE, sizeof(Parsed));
  size_t off = 0;
  while (off < len) {
    g_assert_cmpuint(off + 4, <=, len);
    Parsed s = { .at = p + off, .length = p[off + 1] };
    g_assert_cmpuint(s.length, >=, 4);
    g_assert_cmpuint(off + s.length + 2, <=, len);
    size_t q = off + s.length;
    if (p[q] == 0) {
      g_assert_cmpuint(p[q + 1], ==, 0);
      q += 2;
    } else {
      while (p[q] != 0) {
        const char *str = (const char *)p + q;
        size_t n = strnlen(str, len - q);
        g_assert_cmpuint(q + n + 1, <, len);
        g_assert_cmpuint(s.n_strings, <, G_N_ELEMENTS(s.strings));
        s.strings[s.n_strings++] = str;
        q += n + 1;
      }
      q++;
    }
    g_array_append_val(out, s);
    off = q;
  }
  g_assert_cmpuint(off, ==, len);
  return out;
}

static const char *
string(const Parsed *s, unsigned offset)
{
  unsigned n = s->at[offset];
  if (n == 0)
    return NULL;
  g_assert_cmpuint(n, <=, s->n_strings);
  return s->strings[n - 1];
}

static unsigned
count_type(GArray *a, uint8_t type)
{
  unsigned n = 0;
  for (guint i = 0; i < a->len; i++)
    n += g_array_index(a, Parsed, i).at[0] == type;
  return n;
}

static const Parsed *
find_type(GArray *a, uint8_t type, unsigned nth)
{
  for (guint i = 0; i < a->len; i++)
    if (g_array_index(a, Parsed, i).at[0] == type && nth-- == 0)
      return &g_array_index(a, Parsed, i);
  return NULL;
}

static void
test_tables(void)
{
  NbGuestMemory mem = { .n_regions = 2 };
  mem.regions[0] = (NbRamRegion){ .gpa = 0, .size = 3 * (UINT64_C(1) << 30) };
  mem.regions[1] = (NbRamRegion){ .gpa = UINT64_C(1) << 32, .size = UINT64_C(1) << 30 };
  static const uint8_t uuid[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                                    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
  NbSmbiosConfig config = { .mem = &mem, .n_cpus = 3, .serial = "web-1", .uuid = uuid };
  g_autoptr(GBytes) anchor = NULL, tables = NULL;
  nb_smbios_build(&config, &anchor, &tables);

  /* The entry point: "_SM_", version 2.8, both checksums, the table's size
   * and structure count, the address left for the firmware. */
  gsize alen;
  const uint8_t *a = g_bytes_get_data(anchor, &alen);
  g_assert_cmpuint(alen, ==, NB_SMBIOS_ANCHOR_SIZE);
  g_assert_cmpmem(a, 4, "_SM_", 4);
  g_assert_cmpuint(a[5], ==, 31);
  g_assert_cmpuint(a[6], ==, 2);
  g_assert_cmpuint(a[7], ==, 8);
  g_assert_cmpuint(sum(a, alen), ==, 0);
  g_assert_cmpmem(a + 0x10, 5, "_DMI_", 5);
  g_assert_cmpuint(sum(a + 0x10, alen - 0x10), ==, 0);
  g_assert_cmpuint(le(a + 0x16, 2), ==, g_bytes_get_size(tables));
  g_assert_cmpuint(le(a + 0x18, 4), ==, 0);

  g_autoptr(GArray) s = parse(tables);
  g_assert_cmpuint(le(a + 0x1c, 2), ==, s->len);
  unsigned max = 0;
  for (guint i = 0; i + 1 < s->len; i++)
    max = MAX(max, (unsigned)(g_array_index(s, Parsed, i + 1).at - g_array_index(s, Parsed, i).at));
  g_assert_cmpuint(le(a + 8, 2), >=, max);

  /* Handles are unique; the last structure is the end marker. */
  for (guint i = 0; i < s->len; i++)
    for (guint j = i + 1; j < s->len; j++)
      g_assert_cmpuint(le(g_array_index(s, Parsed, i).at + 2, 2), !=,
                       le(g_array_index(s, Parsed, j).at + 2, 2));
  g_assert_cmpuint(g_array_index(s, Parsed, s->len - 1).at[0], ==, 127);
  /* No BIOS information: the firmware adds its own. */
  g_assert_cmpuint(count_type(s, 0), ==, 0);

  /* What /sys/class/dmi/id shows: sys_vendor, product_name, product_serial,
   * product_uuid (its first three fields little-endian in the table). */
  const Parsed *t1 = find_type(s, 1, 0);
  g_assert_nonnull(t1);
  g_assert_cmpuint(t1->length, ==, 27);
  g_assert_cmpstr(string(t1, 4), ==, "Nestbox");
  g_assert_cmpstr(string(t1, 5), ==, "Nestbox Virtual Machine");
  g_assert_null(string(t1, 6));
  g_assert_cmpstr(string(t1, 7), ==, "web-1");
  static const uint8_t want_uuid[16] = { 0x78, 0x56, 0x34, 0x12, 0xbc, 0x9a, 0xf0, 0xde,
                                         0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
  g_assert_cmpmem(t1->at + 8, 16, want_uuid, 16);

  g_assert_cmpuint(count_type(s, 3), ==, 1);
  /* A processor per vCPU, each enabled, in its own socket. */
  g_assert_cmpuint(count_type(s, 4), ==, 3);
  for (unsigned i = 0; i < 3; i++) {
    const Parsed *t4 = find_type(s, 4, i);
    g_autofree char *socket = g_strdup_printf("CPU %u", i);
    g_assert_cmpuint(t4->length, ==, 42);
    g_assert_cmpstr(string(t4, 4), ==, socket);
    g_assert_cmpuint(t4->at[5], ==, 3);
    g_assert_cmpuint(t4->at[0x18], ==, 0x41);
    g_assert_cmpuint(t4->at[0x23], ==, 1);
  }

  /* Memory: the array holds 4 GiB in one device, which type 17 names, and
   * type 19 maps both RAM regions, in KiB, to that array. */
  const Parsed *t16 = find_type(s, 16, 0), *t17 = find_type(s, 17, 0);
  g_assert_nonnull(t16);
  g_assert_nonnull(t17);
  g_assert_cmpuint(le(t16->at + 7, 4), ==, 4 * 1024 * 1024);
  g_assert_cmpuint(le(t16->at + 13, 2), ==, 1);
  g_assert_cmpuint(le(t17->at + 4, 2), ==, le(t16->at + 2, 2));
  g_assert_cmpuint(le(t17->at + 12, 2), ==, 4096);
  g_assert_cmpstr(string(t17, 16), ==, "DIMM 0");
  g_assert_cmpuint(count_type(s, 19), ==, 2);
  const Parsed *low = find_type(s, 19, 0), *high = find_type(s, 19, 1);
  g_assert_cmpuint(le(low->at + 4, 4), ==, 0);
  g_assert_cmpuint(le(low->at + 8, 4), ==, 3 * 1024 * 1024 - 1);
  g_assert_cmpuint(le(high->at + 4, 4), ==, 4 * 1024 * 1024);
  g_assert_cmpuint(le(high->at + 8, 4), ==, 5 * 1024 * 1024 - 1);
  g_assert_cmpuint(le(high->at + 12, 2), ==, le(t16->at + 2, 2));
  g_assert_cmpuint(count_type(s, 32), ==, 1);
}

/* A machine too big for the 32-bit fields: the extended ones carry it. */
static void
test_large_memory(void)
{
  NbGuestMemory mem = { .n_regions = 2 };
  mem.regions[0] = (NbRamRegion){ .gpa = 0, .size = 3 * (UINT64_C(1) << 30) };
  mem.regions[1] = (NbRamRegion){ .gpa = UINT64_C(1) << 32, .size = UINT64_C(5) << 40 };
  NbSmbiosConfig config = { .mem = &mem, .n_cpus = 64 };
  g_autoptr(GBytes) anchor = NULL, tables = NULL;
  nb_smbios_build(&config, &anchor, &tables);
  g_autoptr(GArray) s = parse(tables);
  g_assert_cmpuint(count_type(s, 4), ==, 64);
  uint64_t ram = (UINT64_C(5) << 40) + (UINT64_C(3) << 30);
  const Parsed *t16 = find_type(s, 16, 0), *t17 = find_type(s, 17, 0);
  g_assert_cmpuint(le(t16->at + 7, 4), ==, 0x80000000u);
  g_assert_cmpuint(le(t16->at + 15, 8), ==, ram);
  g_assert_cmpuint(le(t17->at + 12, 2), ==, 0x7fff);
  g_assert_cmpuint(le(t17->at + 0x1c, 4), ==, ram >> 20);
  const Parsed *high = find_type(s, 19, 1);
  g_assert_cmpuint(le(high->at + 4, 4), ==, 0xffffffffu);
  g_assert_cmpuint(le(high->at + 15, 8), ==, UINT64_C(1) << 32);
  g_assert_cmpuint(le(high->at + 23, 8), ==, (UINT64_C(1) << 32) + (UINT64_C(5) << 40) - 1);
  /* No serial or UUID given: none in the table. */
  const Parsed *t1 = find_type(s, 1, 0);
  g_assert_null(string(t1, 7));
  static const uint8_t zero[16] = { 0 };
  g_assert_cmpmem(t1->at + 8, 16, zero, 16);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/smbios/tables", test_tables);
  g_test_add_func("/smbios/large-memory", test_large_memory);
  return g_test_run();
}
