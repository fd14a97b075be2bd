/* Where Linux direct boot puts its structures in guest memory.
 *
 * Everything here lies below 1 MiB so that one identity map of low memory
 * covers it, and none of it overlaps what the kernel itself is loaded over
 * (1 MiB and up). The ranges below 0x9FC00 are usable RAM in the e820 map:
 * Linux reclaims them once it has read the zero page and built its own page
 * tables. The ACPI tables sit in the reserved BIOS area so that Linux keeps
 * them and so that a legacy scan of 0xE0000-0xFFFFF finds the RSDP too. */
#pragma once

#include <stdint.h>

/* GDT for the 64-bit entry: null, null, __BOOT_CS (0x10), __BOOT_DS (0x18). */
#define NB_BOOT_GDT_ADDR          UINT64_C(0x500)

/* The zero page (struct boot_params), one page. */
#define NB_BOOT_PARAMS_ADDR       UINT64_C(0x7000)

/* Top of the boot stack (it grows down towards the zero page's end). */
#define NB_BOOT_STACK_TOP         UINT64_C(0x9000)

/* Identity-map page tables: PML4, PDPT and four page directories that map the
 * first 4 GiB with 2 MiB pages. */
#define NB_BOOT_PAGE_TABLES_ADDR  UINT64_C(0x9000)
#define NB_BOOT_PAGE_TABLES_END   UINT64_C(0xF000)   /* exclusive */

/* Kernel command line, NUL-terminated; the kernel's own cmdline_size also
 * limits it. */
#define NB_BOOT_CMDLINE_ADDR      UINT64_C(0x20000)
#define NB_BOOT_CMDLINE_MAX       UINT64_C(0x10000)  /* bytes including the NUL */

/* Where the protected-mode kernel goes when it has no preferred address. */
#define NB_BOOT_KERNEL_ADDR       UINT64_C(0x100000)

/* Reserved in the e820 map: the EBDA and the legacy BIOS area up to 1 MiB. */
#define NB_BOOT_RESERVED_BASE     UINT64_C(0x9FC00)
#define NB_BOOT_RESERVED_END      UINT64_C(0x100000) /* exclusive */

/* ACPI tables for direct boot; the RSDP comes first, 16-byte aligned. */
#define NB_BOOT_ACPI_ADDR         UINT64_C(0xE0000)
#define NB_BOOT_ACPI_END          UINT64_C(0x100000) /* exclusive */
