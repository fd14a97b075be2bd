/* QEMU's firmware configuration interface (fw_cfg), the way SeaBIOS, OVMF
 * and Linux's qemu_fw_cfg driver use it on a PC: a selector port (0x510,
 * 16-bit), a byte-wide data port (0x511) and a DMA address register (0x514,
 * two big-endian 32-bit halves; writing the low half starts a transfer).
 *
 * Items are numbered by selector: the fixed ones (signature, ID, CPU count…)
 * and named files from 0x20 listed in the file directory (selector 0x19).
 * Every item is read-only for the guest. A DMA request names guest memory:
 * its descriptor and its buffer are checked against guest RAM for their
 * whole length, and a bad one fails that request (the error bit in its
 * control word), never the machine. */
#pragma once

#include "kvm/guest-memory.h"
#include "kvm/io-bus.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_FW_CFG_ERROR (nb_fw_cfg_error_quark())
GQuark nb_fw_cfg_error_quark(void);

typedef enum {
  NB_FW_CFG_ERROR_INVALID,   /* a bad selector, file name or duplicate */
  NB_FW_CFG_ERROR_FULL,      /* no selector left for another file */
} NbFwCfgError;

#define NB_FW_CFG_PORT_SELECTOR 0x510
#define NB_FW_CFG_PORT_DATA     0x511
#define NB_FW_CFG_PORT_DMA      0x514

/* Fixed selectors (QEMU's numbering; firmware depends on it). */
#define NB_FW_CFG_SIGNATURE      0x00
#define NB_FW_CFG_ID             0x01
#define NB_FW_CFG_UUID           0x02
#define NB_FW_CFG_RAM_SIZE       0x03
#define NB_FW_CFG_NOGRAPHIC      0x04
#define NB_FW_CFG_NB_CPUS        0x05
#define NB_FW_CFG_KERNEL_ADDR    0x07
#define NB_FW_CFG_KERNEL_SIZE    0x08
#define NB_FW_CFG_KERNEL_CMDLINE 0x09
#define NB_FW_CFG_INITRD_ADDR    0x0a
#define NB_FW_CFG_INITRD_SIZE    0x0b
#define NB_FW_CFG_BOOT_DEVICE    0x0c
#define NB_FW_CFG_BOOT_MENU      0x0e
#define NB_FW_CFG_MAX_CPUS       0x0f
#define NB_FW_CFG_KERNEL_ENTRY   0x10
#define NB_FW_CFG_KERNEL_DATA    0x11
#define NB_FW_CFG_INITRD_DATA    0x12
#define NB_FW_CFG_CMDLINE_ADDR   0x13
#define NB_FW_CFG_CMDLINE_SIZE   0x14
#define NB_FW_CFG_CMDLINE_DATA   0x15
#define NB_FW_CFG_SETUP_ADDR     0x16
#define NB_FW_CFG_SETUP_SIZE     0x17
#define NB_FW_CFG_SETUP_DATA     0x18
#define NB_FW_CFG_FILE_DIR       0x19
#define NB_FW_CFG_FILE_FIRST     0x20
#define NB_FW_CFG_ENTRY_MASK     0x3fff
#define NB_FW_CFG_ARCH_LOCAL     0x8000
#define NB_FW_CFG_E820_TABLE     (NB_FW_CFG_ARCH_LOCAL + 3)

/* NB_FW_CFG_ID bits. */
#define NB_FW_CFG_VERSION        0x01
#define NB_FW_CFG_VERSION_DMA    0x02

/* DMA control bits (big-endian in the guest's descriptor). */
#define NB_FW_CFG_DMA_ERROR      0x01
#define NB_FW_CFG_DMA_READ       0x02
#define NB_FW_CFG_DMA_SKIP       0x04
#define NB_FW_CFG_DMA_SELECT     0x08
#define NB_FW_CFG_DMA_WRITE      0x10

/* What a 64-bit read of the DMA register gives: "QEMU CFG". */
#define NB_FW_CFG_DMA_SIGNATURE  UINT64_C(0x51454d5520434647)

#define NB_FW_CFG_FILE_NAME_MAX  56   /* bytes, NUL included */

typedef struct NbFwCfg NbFwCfg;

/* The signature and ID items are there from the start. */
NbFwCfg *nb_fw_cfg_new(NbGuestMemory *mem);
void nb_fw_cfg_free(NbFwCfg *cfg);

/* A fixed item (selector below 0x20, or an arch-local one). Replaces an
 * item already there. */
bool nb_fw_cfg_add_item(NbFwCfg *cfg, uint16_t selector, GBytes *data, GError **error);
/* Little-endian integers, the way QEMU stores its numeric items. */
bool nb_fw_cfg_add_u16(NbFwCfg *cfg, uint16_t selector, uint16_t value, GError **error);
bool nb_fw_cfg_add_u32(NbFwCfg *cfg, uint16_t selector, uint32_t value, GError **error);
bool nb_fw_cfg_add_u64(NbFwCfg *cfg, uint16_t selector, uint64_t value, GError **error);

/* A named file, listed in the directory; returns false for an empty or too
 * long name, a duplicate, or when all selectors are used. */
bool nb_fw_cfg_add_file(NbFwCfg *cfg, const char *name, GBytes *data, GError **error);
/* The file's contents, or NULL; for tests and for building on other files. */
GBytes *nb_fw_cfg_get_file(NbFwCfg *cfg, const char *name);

/* Selector back to the signature, offsets to zero, DMA address cleared. */
void nb_fw_cfg_reset(NbFwCfg *cfg);

/* Claims ports 0x510-0x511 and 0x514-0x51b. */
bool nb_fw_cfg_register(NbFwCfg *cfg, NbIoBus *pio, GError **error);

/* DMA requests that failed (bad descriptor address, buffer outside RAM,
 * a write to a read-only item): counted, for tests and diagnostics. */
unsigned nb_fw_cfg_dma_errors(NbFwCfg *cfg);

/* The ACPI table loader's script (etc/table-loader): 128-byte commands that
 * the firmware runs in order. */
#define NB_FW_CFG_LOADER_ZONE_HIGH 1   /* anywhere in RAM below 4 GiB */
#define NB_FW_CFG_LOADER_ZONE_FSEG 2   /* in 0xE0000-0xFFFFF */

void nb_fw_cfg_loader_allocate(GByteArray *script, const char *file, uint32_t align,
                               uint8_t zone);
/* Adds the guest address of src_file to the size-byte little-endian value
 * at offset in dest_file. */
void nb_fw_cfg_loader_add_pointer(GByteArray *script, const char *dest_file,
                                  const char *src_file, uint32_t offset, uint8_t size);
/* Sets the byte at offset so that bytes [start, start + length) sum to 0. */
void nb_fw_cfg_loader_add_checksum(GByteArray *script, const char *file, uint32_t offset,
                                   uint32_t start, uint32_t length);
