/* The e820 map for the machine sizes users pick: small, right at the hole,
 * and split around it. */
#include "boot/boot-layout.h"
#include "boot/e820.h"
#include "kvm/memory-map.h"

typedef struct {
  uint64_t addr, size;
  uint32_t type;
} Expect;

static void
check_map(NbGuestMemory *mem, const Expect *want, unsigned n_want)
{
  NbE820Entry map[NB_E820_MAX_ENTRIES];
  unsigned n = nb_e820_build(mem, map, G_N_ELEMENTS(map));
  g_assert_cmpuint(n, ==, n_want);
  for (unsigned i = 0; i < n; i++) {
    g_assert_cmphex(map[i].addr, ==, want[i].addr);
    g_assert_cmphex(map[i].size, ==, want[i].size);
    g_assert_cmpuint(map[i].type, ==, want[i].type);
    if (i > 0)
      g_assert_cmpuint(map[i].addr, >=, map[i - 1].addr + map[i - 1].size);
  }
  /* The RAM it reports adds up to the machine's, less the hidden BIOS area. */
  uint64_t ram = 0;
  for (unsigned i = 0; i < n; i++)
    if (map[i].type == NB_E820_RAM)
      ram += map[i].size;
  g_assert_cmpuint(ram, ==, mem->ram_size - (NB_BOOT_RESERVED_END - NB_BOOT_RESERVED_BASE));
}

static NbGuestMemory *
memory(uint64_t size)
{
  g_autoptr(GError) error = NULL;
  NbGuestMemory *mem = nb_guest_memory_new(size, &error);
  g_assert_no_error(error);
  return mem;
}

static void
test_128m(void)
{
  g_autoptr(NbGuestMemory) mem = memory(128 * NB_MiB);
  const Expect want[] = {
    { 0, 0x9fc00, NB_E820_RAM },
    { 0x9fc00, 0x60400, NB_E820_RESERVED },
    { 0x100000, 127 * NB_MiB, NB_E820_RAM },
  };
  check_map(mem, want, G_N_ELEMENTS(want));
}

static void
test_3g(void)
{
  g_autoptr(NbGuestMemory) mem = memory(3 * NB_GiB);
  const Expect want[] = {
    { 0, 0x9fc00, NB_E820_RAM },
    { 0x9fc00, 0x60400, NB_E820_RESERVED },
    { 0x100000, 3 * NB_GiB - NB_MiB, NB_E820_RAM },
  };
  check_map(mem, want, G_N_ELEMENTS(want));
}

static void
test_5g(void)
{
  g_autoptr(NbGuestMemory) mem = memory(5 * NB_GiB);
  const Expect want[] = {
    { 0, 0x9fc00, NB_E820_RAM },
    { 0x9fc00, 0x60400, NB_E820_RESERVED },
    { 0x100000, 3 * NB_GiB - NB_MiB, NB_E820_RAM },
    { 4 * NB_GiB, 2 * NB_GiB, NB_E820_RAM },
  };
  check_map(mem, want, G_N_ELEMENTS(want));
}

static void
test_split(void)
{
  /* A custom split, the way tests put the hole low. */
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new_split(96 * NB_MiB, 64 * NB_MiB,
                                                           256 * NB_MiB, &error);
  g_assert_no_error(error);
  const Expect want[] = {
    { 0, 0x9fc00, NB_E820_RAM },
    { 0x9fc00, 0x60400, NB_E820_RESERVED },
    { 0x100000, 63 * NB_MiB, NB_E820_RAM },
    { 256 * NB_MiB, 32 * NB_MiB, NB_E820_RAM },
  };
  check_map(mem, want, G_N_ELEMENTS(want));
}

static void
test_too_small_buffer(void)
{
  g_autoptr(NbGuestMemory) mem = memory(5 * NB_GiB);
  NbE820Entry map[3];
  g_assert_cmpuint(nb_e820_build(mem, map, 3), ==, 0);
  g_assert_cmpuint(nb_e820_build(mem, map, 0), ==, 0);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/e820/128m", test_128m);
  g_test_add_func("/e820/3g", test_3g);
  g_test_add_func("/e820/5g", test_5g);
  g_test_add_func("/e820/split", test_split);
  g_test_add_func("/e820/too-small-buffer", test_too_small_buffer);
  return g_test_run();
}
