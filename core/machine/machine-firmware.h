/* Firmware boot for a machine: the BIOS image mapped at the top of the
 * 4 GiB space, its shadow copy below 1 MiB, fw_cfg describing the machine,
 * and the firmware's debug port, logged and watched.
 *
 * The PCI host bridge is not an Intel one, so SeaBIOS finds no PAM
 * registers to open the 0xC0000-0xFFFFF shadow area with. It does not need
 * to: that area is ordinary RAM here, and the machine puts the image's last
 * 256 KiB (0xC0000-0xFFFFF for bios-256k.bin, whose 32-bit code is linked
 * from below 0xE0000) into it before the first instruction, which is the
 * state SeaBIOS's shadowing would have produced. A reboot builds a new machine, so
 * the copy is pristine again each time. */
#pragma once

#include "boot/acpi.h"
#include "kvm/guest-memory.h"
#include "kvm/vm.h"
#include "machine/vm-options.h"

#include <glib.h>
#include <stdbool.h>

/* The firmware-related options of nestbox-vm, checked; any may be NULL. */
bool nb_vm_options_parse_firmware(NbVmOptions *options, const char *firmware,
                                  const char *firmware_file, const char *firmware_log,
                                  const char *boot, GError **error);

/* Called once, on a vCPU thread, when the firmware says it found nothing to
 * boot; message is for the user. */
typedef void (*NbMachineFirmwareNoBootFunc)(void *ctx, const char *message);

typedef struct NbMachineFirmware NbMachineFirmware;

/* Reads the BIOS image and opens the log, before KVM is touched, so that a
 * missing or unreadable file is reported as a configuration error. */
NbMachineFirmware *nb_machine_firmware_new(const NbVmOptions *options, NbGuestMemory *mem,
                                           GError **error);
void nb_machine_firmware_free(NbMachineFirmware *fw);

/* The display's VGA BIOS (--vga-bios-file, by default SeaBIOS's
 * vgabios-bochs-display.bin), checked to be a PCI option ROM for the device
 * vendor:device, for the display's expansion ROM BAR. NULL when it cannot be
 * read or is not one: that is said on stderr and in the firmware log, and
 * the machine boots anyway, its firmware and boot loader on the serial
 * console only. */
GBytes *nb_machine_firmware_load_vga_bios(NbMachineFirmware *fw, uint16_t vendor,
                                          uint16_t device);

/* Where the boot devices sit, for the firmware's boot order. */
typedef struct {
  const char *const *order;   /* "cdrom", "disk"; NULL: CD-ROM, then the disks */
  const unsigned *disk_slots; /* PCI slots of the disks, in --disk order */
  unsigned n_disks;
  int cdrom_slot;             /* PCI slot of the virtio-scsi CD-ROM, -1: none */
  bool has_display;           /* a display with its VGA BIOS */
} NbMachineFirmwareBoot;

/* Maps the image, fills the shadow copy and fw_cfg, claims the fw_cfg and
 * debug ports. */
bool nb_machine_firmware_attach(NbMachineFirmware *fw, NbVm *vm, unsigned n_cpus,
                                const NbAcpiConfig *acpi, const NbMachineFirmwareBoot *boot,
                                NbMachineFirmwareNoBootFunc on_no_boot, void *ctx,
                                GError **error);
