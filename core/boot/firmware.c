#include "boot/firmware.h"
#include "boot/e820.h"
#include "boot/linux-loader.h"

#include <string.h>

#define RSDP_SIZE 36
#define SDT_HEADER 36
/* The tables blob from nb_acpi_build at base 0 starts with the RSDP, and the
 * FACS after it is 64-byte aligned: splitting there keeps that alignment in
 * the tables file. */
#define TABLES_SPLIT 64

#define FADT_FIRMWARE_CTRL   36
#define FADT_DSDT            40
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT          140

static uint64_t
get_le(const uint8_t *p, unsigned size)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < size; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void
set_le(uint8_t *p, uint64_t v, unsigned size)
{
  for (unsigned i = 0; i < size; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

typedef struct {
  uint8_t *tables;      /* the tables file being built */
  size_t len;
  GByteArray *pointers; /* loader commands, run before the checksums */
  GByteArray *checksums;
  GPtrArray *seen;      /* table offsets already handled */
} AcpiSplit;

static bool
bad_tables(GError **error, const char *what)
{
  g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_INVALID,
              "cannot hand the ACPI tables to the firmware: %s", what);
  return false;
}

/* A pointer field at field (an offset in the tables file) that holds a
 * base-0 address: rebased to the tables file and patched by the loader. */
static bool
relocate_field(AcpiSplit *s, size_t field, unsigned size, uint64_t *target, GError **error)
{
  if (field + size > s->len)
    return bad_tables(error, "a pointer lies outside the tables");
  uint64_t v = get_le(s->tables + field, size);
  if (v < TABLES_SPLIT || v - TABLES_SPLIT >= s->len)
    return bad_tables(error, "a pointer does not point into the tables");
  v -= TABLES_SPLIT;
  set_le(s->tables + field, v, size);
  nb_fw_cfg_loader_add_pointer(s->pointers, NB_FIRMWARE_ACPI_TABLES_FILE,
                               NB_FIRMWARE_ACPI_TABLES_FILE, (uint32_t)field, (uint8_t)size);
  *target = v;
  return true;
}

static bool
visit_table(AcpiSplit *s, uint64_t at, GError **error);

static bool
visit_pointer(AcpiSplit *s, size_t field, unsigned size, GError **error)
{
  uint64_t target;
  return relocate_field(s, field, size, &target, error) && visit_table(s, target, error);
}

/* Walks a table: checksum it, then relocate and follow what it points to. */
static bool
visit_table(AcpiSplit *s, uint64_t at, GError **error)
{
  if (g_ptr_array_find(s->seen, GSIZE_TO_POINTER(at + 1), NULL))
    return true;
  g_ptr_array_add(s->seen, GSIZE_TO_POINTER(at + 1));
  if (at + 8 > s->len)
    return bad_tables(error, "a table runs past the end");
  const uint8_t *t = s->tables + at;
  uint32_t len = (uint32_t)get_le(t + 4, 4);
  if (memcmp(t, "FACS", 4) == 0)
    return len <= s->len - at ? true : bad_tables(error, "the FACS runs past the end");
  if (len < SDT_HEADER || len > s->len - at)
    return bad_tables(error, "a table has a bad length");

  bool ok = true;
  if (memcmp(t, "RSDT", 4) == 0 || memcmp(t, "XSDT", 4) == 0) {
    unsigned width = t[0] == 'R' ? 4 : 8;
    for (size_t e = SDT_HEADER; ok && e + width <= len; e += width)
      ok = visit_pointer(s, at + e, width, error);
  } else if (memcmp(t, "FACP", 4) == 0) {
    static const struct { size_t off; unsigned size; } fields[] = {
      { FADT_FIRMWARE_CTRL, 4 }, { FADT_DSDT, 4 }, { FADT_X_FIRMWARE_CTRL, 8 }, { FADT_X_DSDT, 8 },
    };
    for (unsigned i = 0; ok && i < G_N_ELEMENTS(fields); i++)
      if (fields[i].off + fields[i].size <= len &&
          get_le(t + fields[i].off, fields[i].size) != 0)
        ok = visit_pointer(s, at + fields[i].off, fields[i].size, error);
  }
  /* After the pointers: the loader patches them, then fixes the sum. */
  nb_fw_cfg_loader_add_checksum(s->checksums, NB_FIRMWARE_ACPI_TABLES_FILE, (uint32_t)at + 9,
                                (uint32_t)at, len);
  return ok;
}

bool
nb_firmware_add_acpi(NbFwCfg *cfg, const NbAcpiConfig *acpi, GError **error)
{
  uint64_t rsdp_addr;
  g_autoptr(GBytes) blob = nb_acpi_build(acpi, 0, &rsdp_addr, error);
  if (blob == NULL)
    return false;
  gsize blob_len;
  const uint8_t *data = g_bytes_get_data(blob, &blob_len);
  if (rsdp_addr != 0 || blob_len <= TABLES_SPLIT || memcmp(data, "RSD PTR ", 8) != 0)
    return bad_tables(error, "the RSDP is not where it was expected");

  g_autofree uint8_t *rsdp = g_memdup2(data, RSDP_SIZE);
  AcpiSplit s = {
    .tables = g_memdup2(data + TABLES_SPLIT, blob_len - TABLES_SPLIT),
    .len = blob_len - TABLES_SPLIT,
    .pointers = g_byte_array_new(),
    .checksums = g_byte_array_new(),
    .seen = g_ptr_array_new(),
  };
  g_autoptr(GByteArray) script = g_byte_array_new();
  nb_fw_cfg_loader_allocate(script, NB_FIRMWARE_ACPI_RSDP_FILE, 16, NB_FW_CFG_LOADER_ZONE_FSEG);
  nb_fw_cfg_loader_allocate(script, NB_FIRMWARE_ACPI_TABLES_FILE, 64, NB_FW_CFG_LOADER_ZONE_HIGH);

  bool ok = true;
  /* The RSDP's RSDT (16, 4 bytes) and XSDT (24, 8 bytes) addresses. */
  static const struct { size_t off; unsigned size; } rsdp_fields[] = { { 16, 4 }, { 24, 8 } };
  for (unsigned i = 0; ok && i < G_N_ELEMENTS(rsdp_fields); i++) {
    uint64_t v = get_le(rsdp + rsdp_fields[i].off, rsdp_fields[i].size);
    if (v < TABLES_SPLIT || v - TABLES_SPLIT >= s.len) {
      ok = bad_tables(error, "the RSDP does not point into the tables");
      break;
    }
    set_le(rsdp + rsdp_fields[i].off, v - TABLES_SPLIT, rsdp_fields[i].size);
    nb_fw_cfg_loader_add_pointer(script, NB_FIRMWARE_ACPI_RSDP_FILE, NB_FIRMWARE_ACPI_TABLES_FILE,
                                 (uint32_t)rsdp_fields[i].off, (uint8_t)rsdp_fields[i].size);
    ok = visit_table(&s, v - TABLES_SPLIT, error);
  }
  if (ok) {
    g_byte_array_append(script, s.pointers->data, s.pointers->len);
    g_byte_array_append(script, s.checksums->data, s.checksums->len);
    /* The RSDP's two checksums: the ACPI 1.0 part, then all of it. */
    nb_fw_cfg_loader_add_checksum(script, NB_FIRMWARE_ACPI_RSDP_FILE, 8, 0, 20);
    nb_fw_cfg_loader_add_checksum(script, NB_FIRMWARE_ACPI_RSDP_FILE, 32, 0, RSDP_SIZE);
  }
  g_byte_array_free(s.pointers, TRUE);
  g_byte_array_free(s.checksums, TRUE);
  g_ptr_array_free(s.seen, TRUE);
  g_autoptr(GBytes) tables = g_bytes_new_take(s.tables, s.len);
  if (!ok)
    return false;

  g_autoptr(GBytes) rsdp_bytes = g_bytes_new(rsdp, RSDP_SIZE);
  g_autoptr(GBytes) script_bytes = g_byte_array_free_to_bytes(g_steal_pointer(&script));
  return nb_fw_cfg_add_file(cfg, NB_FIRMWARE_ACPI_RSDP_FILE, rsdp_bytes, error) &&
         nb_fw_cfg_add_file(cfg, NB_FIRMWARE_ACPI_TABLES_FILE, tables, error) &&
         nb_fw_cfg_add_file(cfg, NB_FIRMWARE_TABLE_LOADER, script_bytes, error);
}

GBytes *
nb_firmware_build_e820(const NbGuestMemory *mem)
{
  GByteArray *b = g_byte_array_new();
  for (unsigned i = 0; i < mem->n_regions; i++) {
    uint8_t e[20];
    set_le(e, mem->regions[i].gpa, 8);
    set_le(e + 8, mem->regions[i].size, 8);
    set_le(e + 16, NB_E820_RAM, 4);
    g_byte_array_append(b, e, sizeof e);
  }
  return g_byte_array_free_to_bytes(b);
}

char *
nb_firmware_pci_boot_path(unsigned slot)
{
  /* The names are what QEMU writes; SeaBIOS matches any name ("*@slot"). */
  return g_strdup_printf("/pci@i0cf8/scsi@%x/disk@0,0", slot);
}

char *
nb_firmware_scsi_boot_path(unsigned slot, unsigned target, unsigned lun)
{
  return g_strdup_printf("/pci@i0cf8/scsi@%x/channel@0/disk@%x,%x", slot, target, lun);
}

bool
nb_firmware_setup_fw_cfg(NbFwCfg *cfg, const NbFirmwareConfig *config, GError **error)
{
  g_autoptr(GBytes) e820 = nb_firmware_build_e820(config->mem);
  g_autoptr(GBytes) uuid = g_bytes_new(config->uuid, sizeof config->uuid);
  if (!nb_fw_cfg_add_u16(cfg, NB_FW_CFG_NB_CPUS, (uint16_t)config->n_cpus, error) ||
      !nb_fw_cfg_add_u16(cfg, NB_FW_CFG_MAX_CPUS, (uint16_t)config->n_cpus, error) ||
      !nb_fw_cfg_add_u64(cfg, NB_FW_CFG_RAM_SIZE, config->mem->ram_size, error) ||
      /* As QEMU's -nographic: no screen (SeaBIOS would then default its
       * text console to the serial port; etc/sercon-port below asks for
       * that anyway, and with a VGA BIOS it mirrors the screen there). */
      !nb_fw_cfg_add_u16(cfg, NB_FW_CFG_NOGRAPHIC, config->has_display ? 0 : 1, error) ||
      !nb_fw_cfg_add_u16(cfg, NB_FW_CFG_BOOT_MENU, 0, error) ||
      !nb_fw_cfg_add_item(cfg, NB_FW_CFG_UUID, uuid, error) ||
      !nb_fw_cfg_add_file(cfg, "etc/e820", e820, error))
    return false;

  if (config->serial_console_port) {
    uint16_t port = GUINT16_TO_LE(config->serial_console_port);
    g_autoptr(GBytes) bytes = g_bytes_new(&port, sizeof port);
    if (!nb_fw_cfg_add_file(cfg, "etc/sercon-port", bytes, error))
      return false;
  }

  if (config->boot_order && config->boot_order[0]) {
    GString *order = g_string_new(NULL);
    for (const char *const *p = config->boot_order; *p; p++)
      g_string_append_printf(order, "%s\n", *p);
    /* NUL-terminated, as QEMU gives it. */
    g_autoptr(GBytes) bytes = g_bytes_new(order->str, order->len + 1);
    g_string_free(order, TRUE);
    if (!nb_fw_cfg_add_file(cfg, "bootorder", bytes, error))
      return false;
  }

  static const uint8_t no_uuid[16] = { 0 };
  NbSmbiosConfig smbios = {
    .mem = config->mem,
    .n_cpus = config->n_cpus,
    .serial = config->name,
    .uuid = memcmp(config->uuid, no_uuid, sizeof no_uuid) != 0 ? config->uuid : NULL,
  };
  g_autoptr(GBytes) anchor = NULL, tables = NULL;
  nb_smbios_build(&smbios, &anchor, &tables);
  if (!nb_fw_cfg_add_file(cfg, NB_SMBIOS_ANCHOR_FILE, anchor, error) ||
      !nb_fw_cfg_add_file(cfg, NB_SMBIOS_TABLES_FILE, tables, error))
    return false;

  return config->acpi == NULL || nb_firmware_add_acpi(cfg, config->acpi, error);
}

/* Linux through the firmware -------------------------------------------------- */

#define LINUX_REAL_ADDR    UINT32_C(0x10000)
#define LINUX_CMDLINE_ADDR UINT32_C(0x20000)
#define LINUX_PROT_ADDR    UINT32_C(0x100000)
/* Room the firmware keeps at the top of low RAM for its tables. */
#define FIRMWARE_HIGH_RESERVE (1024 * 1024)

static bool
add_blob(NbFwCfg *cfg, uint16_t selector, const void *data, size_t len, GError **error)
{
  g_autoptr(GBytes) bytes = g_bytes_new(data, len);
  return nb_fw_cfg_add_item(cfg, selector, bytes, error);
}

bool
nb_firmware_add_linux(NbFwCfg *cfg, const NbGuestMemory *mem, const uint8_t *kernel,
                      size_t kernel_size, const char *kernel_name, const uint8_t *initrd,
                      size_t initrd_size, const char *cmdline, GError **error)
{
  if (kernel_size < 0x400 || get_le(kernel + 0x202, 4) != 0x53726448u ||
      get_le(kernel + 0x1fe, 2) != 0xaa55) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL,
                "%s is not a Linux kernel (no bzImage boot header) — give a kernel image such as "
                "/boot/vmlinuz-…", kernel_name);
    return false;
  }
  unsigned version = (unsigned)get_le(kernel + 0x206, 2);
  bool loaded_high = kernel[0x211] & 0x01;
  if (version < NB_LINUX_MIN_PROTOCOL || !loaded_high) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_UNSUPPORTED,
                "%s uses boot protocol %u.%02u, older than the 2.06 bzImage Nestbox loads",
                kernel_name, version >> 8, version & 0xff);
    return false;
  }
  size_t setup_sects = kernel[0x1f1] ? kernel[0x1f1] : 4;
  size_t setup_size = (setup_sects + 1) * 512;
  if (setup_size >= kernel_size || setup_size > LINUX_CMDLINE_ADDR - LINUX_REAL_ADDR) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL,
                "%s has a setup part of %zu bytes, which does not fit its file or the loader",
                kernel_name, setup_size);
    return false;
  }
  const char *line = cmdline ? cmdline : "";
  size_t cmdline_len = strlen(line) + 1;
  uint32_t cmdline_max = (uint32_t)get_le(kernel + 0x238, 4);
  if (cmdline_len > 0x10000 || (cmdline_max && cmdline_len > (size_t)cmdline_max + 1)) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_CMDLINE,
                "the kernel command line is %zu bytes; %s takes at most %u", cmdline_len - 1,
                kernel_name, cmdline_max ? cmdline_max : 0xffff);
    return false;
  }

  /* The initrd as high as the kernel allows, below the firmware's tables. */
  uint64_t low_end = mem->n_regions ? mem->regions[0].gpa + mem->regions[0].size : 0;
  uint64_t initrd_max = get_le(kernel + 0x22c, 4);
  uint64_t initrd_addr = 0;
  uint64_t prot_size = kernel_size - setup_size;
  if (initrd_size) {
    uint64_t top = MIN(initrd_max + 1, low_end - MIN(low_end, (uint64_t)FIRMWARE_HIGH_RESERVE));
    uint64_t kernel_end = LINUX_PROT_ADDR + MAX(prot_size, get_le(kernel + 0x260, 4));
    if (top < initrd_size || ((top - initrd_size) & ~UINT64_C(4095)) < kernel_end) {
      g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NO_ROOM,
                  "the initrd (%zu bytes) does not fit in the machine's memory below %"
                  G_GUINT64_FORMAT " MiB — give the machine more memory", initrd_size, top >> 20);
      return false;
    }
    initrd_addr = (top - initrd_size) & ~UINT64_C(4095);
  }

  /* The setup header as a boot loader fills it in. */
  g_autofree uint8_t *setup = g_memdup2(kernel, setup_size);
  setup[0x210] = 0xb0;                                  /* type_of_loader: QEMU's */
  setup[0x211] |= 0x80;                                 /* CAN_USE_HEAP */
  set_le(setup + 0x224, LINUX_CMDLINE_ADDR - LINUX_REAL_ADDR - 0x200, 2);  /* heap_end_ptr */
  set_le(setup + 0x228, LINUX_CMDLINE_ADDR, 4);         /* cmd_line_ptr */
  set_le(setup + 0x218, initrd_addr, 4);                /* ramdisk_image */
  set_le(setup + 0x21c, initrd_size, 4);                /* ramdisk_size */

  return nb_fw_cfg_add_u32(cfg, NB_FW_CFG_SETUP_ADDR, LINUX_REAL_ADDR, error) &&
         nb_fw_cfg_add_u32(cfg, NB_FW_CFG_SETUP_SIZE, (uint32_t)setup_size, error) &&
         add_blob(cfg, NB_FW_CFG_SETUP_DATA, setup, setup_size, error) &&
         nb_fw_cfg_add_u32(cfg, NB_FW_CFG_KERNEL_ADDR, LINUX_PROT_ADDR, error) &&
         nb_fw_cfg_add_u32(cfg, NB_FW_CFG_KERNEL_SIZE, (uint32_t)prot_size, error) &&
         add_blob(cfg, NB_FW_CFG_KERNEL_DATA, kernel + setup_size, prot_size, error) &&
         nb_fw_cfg_add_u32(cfg, NB_FW_CFG_INITRD_ADDR, (uint32_t)initrd_addr, error) &&
         nb_fw_cfg_add_u32(cfg, NB_FW_CFG_INITRD_SIZE, (uint32_t)initrd_size, error) &&
         add_blob(cfg, NB_FW_CFG_INITRD_DATA, initrd_size ? initrd : (const uint8_t *)"", initrd_size, error) &&
         nb_fw_cfg_add_u32(cfg, NB_FW_CFG_CMDLINE_ADDR, LINUX_CMDLINE_ADDR, error) &&
         nb_fw_cfg_add_u32(cfg, NB_FW_CFG_CMDLINE_SIZE, (uint32_t)cmdline_len, error) &&
         add_blob(cfg, NB_FW_CFG_CMDLINE_DATA, line, cmdline_len, error);
}
