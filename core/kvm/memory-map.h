/* The guest physical address map (see DESIGN.md, "The machine").
 *
 *   0 .. min(RAM, 3 GiB)        RAM
 *   3 GiB .. 4 GiB              PCI hole: 32-bit BARs, IOAPIC, LAPIC, firmware
 *   4 GiB .. 4 GiB + rest       RAM above the hole
 *   above that                  64-bit PCI BARs
 */
#pragma once

#include <stdint.h>

#define NB_GiB (UINT64_C(1) << 30)
#define NB_MiB (UINT64_C(1) << 20)
#define NB_KiB (UINT64_C(1) << 10)

#define NB_MEM_LOW_LIMIT      (3 * NB_GiB)
#define NB_MEM_HIGH_BASE      (4 * NB_GiB)

#define NB_MEM_PCI_MMIO_BASE  UINT64_C(0xC0000000)
#define NB_MEM_PCI_MMIO_END   UINT64_C(0xFEC00000)   /* exclusive */
#define NB_MEM_IOAPIC_BASE    UINT64_C(0xFEC00000)
#define NB_MEM_LAPIC_BASE     UINT64_C(0xFEE00000)
#define NB_MEM_FIRMWARE_BASE  UINT64_C(0xFFFC0000)   /* top 256 KiB: BIOS */

/* Below 1 MiB, where Linux direct boot puts its structures. */
#define NB_MEM_EBDA_BASE      UINT64_C(0x9FC00)      /* reserved up to 1 MiB */
#define NB_MEM_BIOS_AREA_BASE UINT64_C(0xA0000)
#define NB_MEM_ONE_MiB        UINT64_C(0x100000)
