#include "boot/e820.h"
#include "boot/boot-layout.h"

#include <stdlib.h>

static int
compare_entries(const void *a, const void *b)
{
  const NbE820Entry *x = a, *y = b;
  return x->addr < y->addr ? -1 : x->addr > y->addr ? 1 : 0;
}

static bool
append(NbE820Entry *out, unsigned max, unsigned *n, uint64_t addr, uint64_t end, uint32_t type)
{
  if (end <= addr)
    return true;
  if (*n >= max)
    return false;
  out[(*n)++] = (NbE820Entry){ .addr = addr, .size = end - addr, .type = type };
  return true;
}

unsigned
nb_e820_build(const NbGuestMemory *mem, NbE820Entry *out, unsigned max)
{
  const uint64_t rsv_base = NB_BOOT_RESERVED_BASE, rsv_end = NB_BOOT_RESERVED_END;
  unsigned n = 0;
  bool covers_reserved = false;

  for (unsigned i = 0; i < mem->n_regions; i++) {
    uint64_t start = mem->regions[i].gpa;
    uint64_t end = start + mem->regions[i].size;
    if (end <= rsv_base || start >= rsv_end) {
      if (!append(out, max, &n, start, end, NB_E820_RAM))
        return 0;
      continue;
    }
    /* RAM under the EBDA and BIOS area is there, but the guest must not use
     * it: the ACPI tables live in it. */
    covers_reserved = true;
    if (!append(out, max, &n, start, MIN(end, rsv_base), NB_E820_RAM) ||
        !append(out, max, &n, MAX(start, rsv_end), end, NB_E820_RAM))
      return 0;
  }
  /* Reserved where RAM is behind it, which every machine we build has. */
  if (covers_reserved && !append(out, max, &n, rsv_base, rsv_end, NB_E820_RESERVED))
    return 0;

  qsort(out, n, sizeof *out, compare_entries);
  return n;
}
