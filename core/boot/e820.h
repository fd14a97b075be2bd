/* The BIOS memory map (e820) that a guest sees: RAM regions with the legacy
 * BIOS area carved out as reserved.
 *
 * Linux direct boot puts it into the zero page; firmware boot will hand the
 * same table to SeaBIOS through fw_cfg, so both kinds of boot agree. */
#pragma once

#include "kvm/guest-memory.h"

#include <stdint.h>

#define NB_E820_RAM       1
#define NB_E820_RESERVED  2
#define NB_E820_ACPI      3

typedef struct {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
} NbE820Entry;

/* Enough for every layout NbGuestMemory can have: each RAM region split
 * around the reserved range, plus the range itself. */
#define NB_E820_MAX_ENTRIES (2 * NB_GUEST_MEMORY_MAX_REGIONS + 1)

/* Fills out (room for max entries) with the map sorted by address and returns
 * how many entries it wrote. Returns 0 only when max is too small. */
unsigned nb_e820_build(const NbGuestMemory *mem, NbE820Entry *out, unsigned max);
