/* What SeaBIOS (and other QEMU-aware firmware) reads through fw_cfg to learn
 * the machine: its memory map, CPU count, ACPI tables, boot order and the
 * option ROMs to run.
 *
 * The ACPI tables are the ones direct boot uses (core/boot/acpi.c), handed
 * over the way QEMU does it: the RSDP and the other tables as two files plus
 * a table-loader script that has the firmware place them in its own memory,
 * patch the pointers between them and fix their checksums. Firmware boot and
 * direct boot thus show a guest the same tables. */
#pragma once

#include "boot/acpi.h"
#include "boot/fw-cfg.h"
#include "boot/smbios.h"
#include "kvm/guest-memory.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_FIRMWARE_ACPI_RSDP_FILE   "etc/acpi/rsdp"
#define NB_FIRMWARE_ACPI_TABLES_FILE "etc/acpi/tables"
#define NB_FIRMWARE_TABLE_LOADER     "etc/table-loader"

typedef struct {
  const NbGuestMemory *mem;
  unsigned n_cpus;
  const NbAcpiConfig *acpi;
  /* Open Firmware device paths in boot order, such as "/pci@i0cf8/scsi@3/disk@0,0"; NULL
   * or empty: the firmware's own order. */
  const char *const *boot_order;
  uint16_t serial_console_port;   /* etc/sercon-port: 0x3f8; 0 for none */
  bool has_display;               /* a screen with a VGA BIOS: NOGRAPHIC is 0 */
  const char *name;               /* the machine's, for SMBIOS (serial number); or NULL */
  uint8_t uuid[16];
} NbFirmwareConfig;

/* Adds every item and file to cfg: SMBIOS tables (boot/smbios.h) too, built
 * from the memory map, the CPU count, the name and the UUID (all zero: none). */
bool nb_firmware_setup_fw_cfg(NbFwCfg *cfg, const NbFirmwareConfig *config, GError **error);

/* The ACPI part alone: etc/acpi/rsdp, etc/acpi/tables, etc/table-loader. */
bool nb_firmware_add_acpi(NbFwCfg *cfg, const NbAcpiConfig *acpi, GError **error);

/* The e820 file SeaBIOS reads: RAM regions only, 20-byte little-endian
 * entries { u64 addr, u64 size, u32 type }; the firmware reserves its own
 * areas itself. */
GBytes *nb_firmware_build_e820(const NbGuestMemory *mem);

/* The Open Firmware path SeaBIOS matches for a PCI device in slot (bus 0,
 * function 0), and for a SCSI LUN behind it. */
char *nb_firmware_pci_boot_path(unsigned slot);
char *nb_firmware_scsi_boot_path(unsigned slot, unsigned target, unsigned lun);

/* Linux through the firmware, the way QEMU's -kernel works with SeaBIOS:
 * the kernel's real-mode setup (its header filled in for a boot loader that
 * puts the command line at 0x20000 and the setup at 0x10000), its
 * protected-mode part, the initrd (placed below the top of low RAM, clear of
 * the firmware's own tables) and the command line, as fw_cfg items that an
 * option ROM (QEMU's linuxboot_dma.bin) copies into place before it jumps to
 * the setup code in real mode. */
#define NB_FIRMWARE_LINUX_ROM_FILE "genroms/linuxboot_dma.bin"
/* Where SeaBIOS looks for that ROM in bootorder. */
#define NB_FIRMWARE_LINUX_ROM_BOOT_PATH "/rom@genroms/linuxboot_dma.bin"

bool nb_firmware_add_linux(NbFwCfg *cfg, const NbGuestMemory *mem, const uint8_t *kernel,
                           size_t kernel_size, const char *kernel_name, const uint8_t *initrd,
                           size_t initrd_size, const char *cmdline, GError **error);
