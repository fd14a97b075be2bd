/* SMBIOS tables that describe the machine to the guest (what dmidecode and
 * /sys/class/dmi/id show), handed to the firmware the way QEMU does: an
 * SMBIOS 2.8 entry point ("_SM_", 31 bytes; the firmware fills in where the
 * tables land and fixes its checksums) as fw_cfg file etc/smbios/smbios-anchor,
 * and the structures as etc/smbios/smbios-tables.
 *
 * The structures: system (type 1: manufacturer "Nestbox", product, version,
 * the machine's UUID), chassis (3), one processor per vCPU (4), the memory
 * array (16) with one memory device (17) and an address range per RAM region
 * (19), system boot (32) and the end marker (127). There is no BIOS
 * information (type 0): SeaBIOS adds its own, with its vendor and version,
 * which is what a guest should see. */
#pragma once

#include "kvm/guest-memory.h"

#include <glib.h>
#include <stdint.h>

#define NB_SMBIOS_ANCHOR_FILE "etc/smbios/smbios-anchor"
#define NB_SMBIOS_TABLES_FILE "etc/smbios/smbios-tables"

#define NB_SMBIOS_ANCHOR_SIZE 31
#define NB_SMBIOS_MANUFACTURER "Nestbox"
#define NB_SMBIOS_PRODUCT "Nestbox Virtual Machine"

typedef struct {
  const NbGuestMemory *mem;   /* its RAM regions: types 17 and 19 */
  unsigned n_cpus;
  const char *version;        /* Nestbox's version, in type 1 */
  const char *serial;         /* the machine's name, or NULL */
  const uint8_t *uuid;        /* 16 bytes in RFC 4122 (big-endian) order, or NULL */
} NbSmbiosConfig;

/* The anchor (NB_SMBIOS_ANCHOR_SIZE bytes, its table address 0) and the
 * structures. Strings are cut to 64 bytes, as the firmware's screen and
 * dmidecode expect short ones. */
void nb_smbios_build(const NbSmbiosConfig *config, GBytes **anchor, GBytes **tables);
