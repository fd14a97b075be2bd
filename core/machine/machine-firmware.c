#include "machine/machine-firmware.h"
#include "boot/firmware.h"
#include "boot/fw-cfg.h"
#include "hw/debug-port.h"
#include "kvm/memory-map.h"
#include "machine/machine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* The shadow area below 1 MiB: 0xC0000-0xFFFFF at most. */
#define SHADOW_END UINT64_C(0x100000)
#define SHADOW_MAX (256 * NB_KiB)
/* Images from 128 KiB (SeaBIOS's bios.bin) up to 8 MiB (flash-sized ones);
 * larger would run into the LAPIC's page. */
#define IMAGE_MIN (128 * NB_KiB)
#define IMAGE_MAX (8 * NB_MiB)

#define NO_BOOT_TEXT "No bootable device"

/* QEMU's option ROM that boots Linux from fw_cfg (Debian's qemu-system-data). */
#define LINUX_ROM_PATH "/usr/share/qemu/linuxboot_dma.bin"

/* An option ROM is run from the 128 KiB at 0xC0000-0xDFFFF, with the
 * machine's other option ROMs. */
#define VGA_BIOS_MAX (128 * NB_KiB)

struct NbMachineFirmware {
  NbGuestMemory *mem;
  char *path;
  char *vga_bios_path;
  uint8_t uuid[16];     /* the machine's, RFC 4122 byte order; zero: none */
  char *name;
  uint8_t *image;       /* page-aligned, read-only once mapped */
  size_t image_size;
  FILE *log;
  NbFwCfg *fw_cfg;
  NbDebugPort *debug_port;
  NbMachineFirmwareNoBootFunc on_no_boot;
  void *ctx;
  bool reported_no_boot;
  bool linux_boot;          /* --kernel: the Linux ROM boots first */
};

static bool
read_file(const char *what, const char *path, char **contents, gsize *size, GError **error)
{
  g_autoptr(GError) read_error = NULL;
  if (g_file_get_contents(path, contents, size, &read_error))
    return true;
  g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_CONFIG, "cannot read the %s %s: %s",
              what, path, read_error->message);
  return false;
}

/* --kernel with firmware boot: the kernel, initrd and command line as fw_cfg
 * items, and the option ROM that loads them. */
static bool
add_linux(NbMachineFirmware *fw, const NbVmOptions *options, GError **error)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *rom = NULL;
  gsize kernel_size = 0, initrd_size = 0, rom_size = 0;
  if (!read_file("kernel", options->kernel, &kernel, &kernel_size, error) ||
      (options->initrd && !read_file("initrd", options->initrd, &initrd, &initrd_size, error)))
    return false;
  if (!read_file("Linux boot ROM", LINUX_ROM_PATH, &rom, &rom_size, error)) {
    g_prefix_error(error, "--kernel with --firmware bios needs Debian's qemu-system-data package: ");
    return false;
  }
  g_autoptr(GBytes) rom_bytes = g_bytes_new_take(g_steal_pointer(&rom), rom_size);
  fw->linux_boot = true;
  return nb_firmware_add_linux(fw->fw_cfg, fw->mem, (const uint8_t *)kernel, kernel_size,
                               options->kernel, (const uint8_t *)initrd, initrd_size,
                               options->append, error) &&
         nb_fw_cfg_add_file(fw->fw_cfg, NB_FIRMWARE_LINUX_ROM_FILE, rom_bytes, error);
}

bool
nb_vm_options_parse_firmware(NbVmOptions *options, const char *firmware,
                             const char *firmware_file, const char *firmware_log,
                             const char *boot, GError **error)
{
  options->firmware = NB_FIRMWARE_DIRECT;
  if (firmware && g_str_equal(firmware, "bios")) {
    options->firmware = NB_FIRMWARE_BIOS;
  } else if (firmware && !g_str_equal(firmware, "direct")) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "--firmware %s is not understood: use direct (Linux direct boot) or bios (SeaBIOS)",
                firmware);
    return false;
  }
  bool bios = options->firmware == NB_FIRMWARE_BIOS;
  if (!bios && (firmware_file || boot)) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "%s only applies to firmware boot: add --firmware bios",
                firmware_file ? "--firmware-file" : "--boot");
    return false;
  }
  if (boot) {
    g_auto(GStrv) items = g_strsplit(boot, ",", -1);
    for (char **i = items; *i; i++) {
      if (!g_str_equal(*i, "disk") && !g_str_equal(*i, "cdrom")) {
        g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                    "--boot %s: “%s” is not a boot device: use cdrom and disk, e.g. "
                    "--boot cdrom,disk", boot, *i);
        return false;
      }
    }
    options->boot_order = g_steal_pointer(&items);
  }
  options->firmware_file = g_strdup(firmware_file);
  options->firmware_log = g_strdup(firmware_log);
  return true;
}

static void
on_debug_line(void *ctx, const char *line)
{
  NbMachineFirmware *fw = ctx;
  if (fw->log) {
    fprintf(fw->log, "%s\n", line);
    fflush(fw->log);
  }
  /* SeaBIOS would wait and reboot forever; the user must hear about it. */
  if (!fw->reported_no_boot && strstr(line, NO_BOOT_TEXT)) {
    fw->reported_no_boot = true;
    if (fw->on_no_boot)
      fw->on_no_boot(fw->ctx, "no bootable device: the firmware found no boot loader on the "
                              "machine's disks — check that the disk or ISO is bootable and "
                              "that --boot names it");
  }
}

NbMachineFirmware *
nb_machine_firmware_new(const NbVmOptions *options, NbGuestMemory *mem, GError **error)
{
  const char *path = options->firmware_file ? options->firmware_file : NB_FIRMWARE_BIOS_DEFAULT_FILE;
  g_autofree char *contents = NULL;
  gsize size = 0;
  g_autoptr(GError) read_error = NULL;
  if (!g_file_get_contents(path, &contents, &size, &read_error)) {
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_CONFIG,
                "cannot read the firmware %s: %s — install Debian's seabios package or give "
                "another image with --firmware-file", path, read_error->message);
    return NULL;
  }
  if (size < IMAGE_MIN || size > IMAGE_MAX || size % (4 * NB_KiB) != 0) {
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_CONFIG,
                "the firmware %s is %" G_GSIZE_FORMAT " bytes: a BIOS image is a multiple of "
                "4 KiB from 128 KiB to 8 MiB (use /usr/share/seabios/bios-256k.bin)", path, size);
    return NULL;
  }
  void *image = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (image == MAP_FAILED) {
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED,
                "cannot allocate memory for the firmware: %s", g_strerror(errno));
    return NULL;
  }
  memcpy(image, contents, size);
  /* The guest cannot write it (read-only slot), and neither may we. */
  mprotect(image, size, PROT_READ);

  NbMachineFirmware *fw = g_new0(NbMachineFirmware, 1);
  fw->mem = mem;
  fw->path = g_strdup(path);
  fw->name = g_strdup(options->name);
  /* Checked when the document was read; "-" separators between hex pairs. */
  if (options->uuid && g_uuid_string_is_valid(options->uuid)) {
    for (unsigned i = 0, j = 0; i < 16 && options->uuid[j]; j++) {
      if (options->uuid[j] == '-')
        continue;
      fw->uuid[i++] = (uint8_t)(g_ascii_xdigit_value(options->uuid[j]) << 4 |
                                g_ascii_xdigit_value(options->uuid[j + 1]));
      j++;
    }
  }
  fw->vga_bios_path = g_strdup(options->vga_bios_file ? options->vga_bios_file
                                                      : NB_FIRMWARE_VGA_BIOS_DEFAULT_FILE);
  fw->image = image;
  fw->image_size = size;
  if (options->firmware_log) {
    fw->log = fopen(options->firmware_log, "we");
    if (fw->log == NULL) {
      int err = errno;
      g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_CONFIG,
                  "cannot write the firmware log %s: %s", options->firmware_log, g_strerror(err));
      nb_machine_firmware_free(fw);
      return NULL;
    }
  }
  fw->fw_cfg = nb_fw_cfg_new(mem);
  fw->debug_port = nb_debug_port_new(on_debug_line, fw);
  if (options->kernel && !add_linux(fw, options, error)) {
    nb_machine_firmware_free(fw);
    return NULL;
  }
  return fw;
}

void
nb_machine_firmware_free(NbMachineFirmware *fw)
{
  if (fw == NULL)
    return;
  if (fw->debug_port) {
    nb_debug_port_flush(fw->debug_port);
    nb_debug_port_free(fw->debug_port);
  }
  nb_fw_cfg_free(fw->fw_cfg);
  if (fw->log)
    fclose(fw->log);
  /* After the VM: its slot pointed here. */
  if (fw->image)
    munmap(fw->image, fw->image_size);
  g_free(fw->path);
  g_free(fw->vga_bios_path);
  g_free(fw->name);
  g_free(fw);
}

static uint16_t
get_le16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

/* What is wrong with an option ROM image for vendor:device, or NULL. The
 * layout is the PCI firmware spec's: 0x55AA, the length in 512-byte units at
 * 2, the offset of the "PCIR" data structure at 0x18, which names the device
 * and the code type (0: x86). SeaBIOS skips a ROM that fails these checks
 * without a word; the user hears why here. */
static char *
vga_bios_problem(const uint8_t *rom, size_t size, uint16_t vendor, uint16_t device)
{
  if (size < 512 || size > VGA_BIOS_MAX)
    return g_strdup_printf("it is %zu bytes, not an option ROM of 512 bytes to %u KiB", size,
                           (unsigned)(VGA_BIOS_MAX >> 10));
  if (rom[0] != 0x55 || rom[1] != 0xaa || (size_t)rom[2] * 512 > size || rom[2] == 0)
    return g_strdup("it has no option ROM header (0x55 0xAA and a length that fits the file)");
  size_t pcir = get_le16(rom + 0x18);
  if (pcir + 0x18 > size || memcmp(rom + pcir, "PCIR", 4) != 0)
    return g_strdup("it has no PCI data structure (\"PCIR\"), so the firmware cannot tie it "
                    "to the display");
  if (get_le16(rom + pcir + 4) != vendor || get_le16(rom + pcir + 6) != device ||
      rom[pcir + 0x14] != 0)
    return g_strdup_printf("it is an option ROM for PCI device %04x:%04x (code type %u), not "
                           "for the display (%04x:%04x, x86)", get_le16(rom + pcir + 4),
                           get_le16(rom + pcir + 6), rom[pcir + 0x14], vendor, device);
  return NULL;
}

GBytes *
nb_machine_firmware_load_vga_bios(NbMachineFirmware *fw, uint16_t vendor, uint16_t device)
{
  g_autofree char *contents = NULL;
  g_autofree char *problem = NULL;
  gsize size = 0;
  g_autoptr(GError) read_error = NULL;
  if (!g_file_get_contents(fw->vga_bios_path, &contents, &size, &read_error))
    problem = g_strdup(read_error->message);
  else
    problem = vga_bios_problem((const uint8_t *)contents, size, vendor, device);
  if (problem == NULL)
    return g_bytes_new_take(g_steal_pointer(&contents), size);

  g_autofree char *message = g_strdup_printf(
    "cannot use the VGA BIOS %s: %s — the machine boots without it, but its screen stays blank "
    "until the guest's own display driver starts; the firmware and boot loader show only on the "
    "serial console. Install Debian's seabios package, or give another image with "
    "--vga-bios-file", fw->vga_bios_path, problem);
  g_message("%s", message);
  if (fw->log) {
    fprintf(fw->log, "nestbox: %s\n", message);
    fflush(fw->log);
  }
  return NULL;
}

bool
nb_machine_firmware_attach(NbMachineFirmware *fw, NbVm *vm, unsigned n_cpus,
                           const NbAcpiConfig *acpi, const NbMachineFirmwareBoot *boot,
                           NbMachineFirmwareNoBootFunc on_no_boot, void *ctx, GError **error)
{
  fw->on_no_boot = on_no_boot;
  fw->ctx = ctx;
  uint64_t top = 4 * NB_GiB;
  if (!nb_vm_map_rom(vm, top - fw->image_size, fw->image_size, fw->image, error))
    return false;
  /* SeaBIOS's 32-bit code is linked to run from the shadow copy, and with
   * bios-256k.bin it starts below 0xE0000: the copy covers the image's last
   * 256 KiB (what its own shadowing would copy there), not just the 128 KiB
   * that the legacy ROM window at 0xE0000 shows. */
  size_t shadow = MIN(fw->image_size, SHADOW_MAX);
  if (!nb_guest_memory_write(fw->mem, SHADOW_END - shadow, fw->image + fw->image_size - shadow,
                             shadow)) {
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED,
                "cannot put the BIOS below 1 MiB: the machine has no RAM there");
    return false;
  }

  /* SeaBIOS tries what bootorder lists first, in that order. */
  static const char *const default_order[] = { "cdrom", "disk", NULL };
  g_autoptr(GPtrArray) order = g_ptr_array_new_with_free_func(g_free);
  if (fw->linux_boot)
    g_ptr_array_add(order, g_strdup(NB_FIRMWARE_LINUX_ROM_BOOT_PATH));
  for (const char *const *o = boot->order ? boot->order : default_order; *o; o++) {
    if (g_str_equal(*o, "cdrom") && boot->cdrom_slot >= 0)
      g_ptr_array_add(order, nb_firmware_scsi_boot_path((unsigned)boot->cdrom_slot, 0, 0));
    if (g_str_equal(*o, "disk"))
      for (unsigned i = 0; i < boot->n_disks; i++)
        g_ptr_array_add(order, nb_firmware_pci_boot_path(boot->disk_slots[i]));
  }
  g_ptr_array_add(order, NULL);

  NbFirmwareConfig config = {
    .mem = fw->mem,
    .n_cpus = n_cpus,
    .acpi = acpi,
    .boot_order = (const char *const *)order->pdata,
    .serial_console_port = 0x3f8,
    .has_display = boot->has_display,
    .name = fw->name,
  };
  memcpy(config.uuid, fw->uuid, sizeof config.uuid);
  if (!nb_firmware_setup_fw_cfg(fw->fw_cfg, &config, error) ||
      !nb_fw_cfg_register(fw->fw_cfg, nb_vm_pio(vm), error) ||
      !nb_debug_port_register(fw->debug_port, nb_vm_pio(vm), error))
    return false;
  /* SeaBIOS writes its log a byte at a time, thousands of them, whether or
   * not anyone keeps it (the machine watches it for "No bootable device"):
   * KVM collects them without an exit each. Where it cannot, they trap. */
  if (!nb_vm_coalesce_pio(vm, NB_DEBUG_PORT, 1))
    g_debug("the firmware's debug port traps each write: KVM cannot coalesce port writes");
  return true;
}
