/* Linux direct boot: a bzImage, an initrd and a command line are put into
 * guest memory the way the x86 boot protocol (Documentation/arch/x86/boot.rst)
 * asks, for a 64-bit entry.
 *
 * The loader fills the zero page, the command line, the e820 map and places
 * the kernel and initrd. The vCPU set-up (long mode, identity map, GDT,
 * RSI = zero page) is the caller's: it gets the entry point and the zero
 * page's address back. */
#pragma once

#include "kvm/guest-memory.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_BOOT_ERROR (nb_boot_error_quark())
GQuark nb_boot_error_quark(void);

typedef enum {
  NB_BOOT_ERROR_IO,            /* a file could not be read */
  NB_BOOT_ERROR_NOT_KERNEL,    /* not a bzImage at all */
  NB_BOOT_ERROR_UNSUPPORTED,   /* a bzImage we cannot boot (too old, 32-bit only) */
  NB_BOOT_ERROR_NO_ROOM,       /* kernel, initrd or tables do not fit in guest RAM */
  NB_BOOT_ERROR_CMDLINE,       /* command line too long */
  NB_BOOT_ERROR_INVALID,       /* bad configuration (ACPI tables and the like) */
} NbBootError;

/* The oldest boot protocol we load: 2.06 brought cmdline_size. A 64-bit
 * entry point (XLF_KERNEL_64) additionally needs 2.12. */
#define NB_LINUX_MIN_PROTOCOL 0x0206

typedef struct {
  const char *kernel_path;   /* bzImage; required */
  const char *initrd_path;   /* NULL for none */
  const char *cmdline;       /* NULL for an empty one */
  uint64_t rsdp_addr;        /* 0 when there are no ACPI tables */
} NbLinuxBootConfig;

typedef struct {
  uint64_t entry;            /* 64-bit entry: kernel load address + 0x200 */
  uint64_t boot_params;      /* zero page: RSI at entry */
  uint64_t kernel_addr;      /* where the protected-mode kernel was copied */
  uint64_t kernel_end;       /* end of what it may use while it unpacks (init_size) */
  uint64_t initrd_addr;      /* 0 when there is none */
  uint64_t initrd_size;
  uint16_t protocol;         /* boot protocol version, e.g. 0x020f */
} NbLinuxBootInfo;

/* Loads everything into mem. On failure the error names the file, what is
 * wrong with it, and what to do; guest memory may have been partly written. */
bool nb_linux_load(NbGuestMemory *mem, const NbLinuxBootConfig *cfg, NbLinuxBootInfo *out,
                   GError **error);

/* The same from a kernel image already in memory (tests, fw_cfg later);
 * kernel_name is what error messages call it. */
bool nb_linux_load_image(NbGuestMemory *mem, const uint8_t *kernel, size_t kernel_size,
                         const char *kernel_name, const NbLinuxBootConfig *cfg,
                         NbLinuxBootInfo *out, GError **error);
