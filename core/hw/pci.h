/* The PCI bus behind the host bridge, and the device side of it.
 *
 * A device embeds an NbPciDevice, fills its identity, BARs and capabilities,
 * and adds it to the bus. The bus assigns BAR addresses in the PCI hole (there
 * is no firmware to do it on direct boot), maps them on the MMIO / port bus,
 * and follows the guest when it moves or disables them. */
#pragma once

#include "hw/interrupts.h"
#include "kvm/io-bus.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_PCI_CONFIG_SIZE 256
#define NB_PCI_MAX_SLOTS   32
#define NB_PCI_NUM_BARS    6

/* Config space offsets we use by name. */
#define NB_PCI_VENDOR_ID        0x00
#define NB_PCI_DEVICE_ID        0x02
#define NB_PCI_COMMAND          0x04
#define NB_PCI_STATUS           0x06
#define NB_PCI_REVISION         0x08
#define NB_PCI_CLASS_PROG       0x09
#define NB_PCI_HEADER_TYPE      0x0e
#define NB_PCI_BAR0             0x10
#define NB_PCI_SUBSYSTEM_VENDOR 0x2c
#define NB_PCI_SUBSYSTEM_ID     0x2e
#define NB_PCI_ROM_ADDRESS      0x30
#define NB_PCI_CAPABILITY_LIST  0x34
#define NB_PCI_INTERRUPT_LINE   0x3c
#define NB_PCI_INTERRUPT_PIN    0x3d

#define NB_PCI_COMMAND_IO       0x1
#define NB_PCI_COMMAND_MEMORY   0x2
#define NB_PCI_COMMAND_MASTER   0x4
#define NB_PCI_COMMAND_INTX_OFF 0x400
#define NB_PCI_STATUS_CAP_LIST  0x10
#define NB_PCI_STATUS_INTX      0x08
#define NB_PCI_ROM_ENABLE       0x1

#define NB_PCI_CAP_ID_VENDOR    0x09
#define NB_PCI_CAP_ID_MSIX      0x11

typedef enum {
  NB_PCI_BAR_NONE,
  NB_PCI_BAR_IO,
  NB_PCI_BAR_MEM32,
  NB_PCI_BAR_MEM64,   /* takes this slot and the next */
} NbPciBarType;

typedef struct NbPciBus NbPciBus;
typedef struct NbPciDevice NbPciDevice;

typedef struct {
  NbPciBarType type;
  uint64_t size;          /* power of two; 0 when unused */
  const NbIoOps *ops;     /* trapped BAR */
  void *opaque;
  void *ram;              /* or: host memory mapped straight into the guest */
  bool prefetchable;
  uint64_t addr;          /* where the guest has it now */
  bool mapped;
} NbPciBar;

/* Both callbacks run with the bus lock held: they may use the MMIO/port buses,
 * interrupts and nb_pci_device_set_intx, but not other nb_pci_bus_* calls. */
typedef struct {
  /* After a config-space write has been applied (offset, size as written). */
  void (*config_written)(NbPciDevice *dev, unsigned offset, unsigned size);
  /* A BAR was mapped (mapped=true, at bar->addr) or unmapped. */
  void (*bar_changed)(NbPciDevice *dev, unsigned index, bool mapped);
} NbPciDeviceOps;

struct NbPciDevice {
  uint8_t config[NB_PCI_CONFIG_SIZE];
  uint8_t wmask[NB_PCI_CONFIG_SIZE];     /* bits the guest may write */
  NbPciBar bars[NB_PCI_NUM_BARS];
  const NbPciDeviceOps *ops;
  void *opaque;
  char *name;
  NbPciBus *bus;
  unsigned slot;
  unsigned gsi;                          /* INTx routing, set by the bus */
  uint8_t next_cap;                      /* where the next capability goes */
  /* The expansion ROM (config 0x30), when the device has one. */
  GBytes *rom;
  uint64_t rom_size;                     /* the BAR's size: a power of two */
  uint64_t rom_addr;                     /* where the guest has it now */
  bool rom_mapped;
  bool intx_level;
};

/* Identity; the header type is 0 (endpoint). */
void nb_pci_device_init(NbPciDevice *dev, const char *name, uint16_t vendor,
                        uint16_t device, uint32_t class_code, uint8_t revision,
                        uint16_t subsystem_vendor, uint16_t subsystem_id);
void nb_pci_device_clear(NbPciDevice *dev);

/* A trapped BAR handled by ops; size is rounded up to a power of two. */
void nb_pci_device_set_bar(NbPciDevice *dev, unsigned index, NbPciBarType type,
                           uint64_t size, const NbIoOps *ops, void *opaque);
/* A BAR backed by host memory (a framebuffer): the guest touches it directly. */
void nb_pci_device_set_ram_bar(NbPciDevice *dev, unsigned index, NbPciBarType type,
                               uint64_t size, void *ram);

/* An expansion ROM BAR holding image (a PCI option ROM: the VGA BIOS of a
 * display), read-only for the guest; call before nb_pci_bus_add. Firmware
 * sizes it, places it, enables it (bit 0 of config 0x30, with memory decode
 * on), copies the image out and disables it again: the BAR is trapped, each
 * read served from the image, since it is read once per boot. */
void nb_pci_device_set_rom(NbPciDevice *dev, GBytes *image);

/* Appends a capability; body excludes the 2-byte ID/next header and writable
 * is a mask (may be NULL) over the body. Returns its config offset. */
uint8_t nb_pci_device_add_capability(NbPciDevice *dev, uint8_t cap_id,
                                     const void *body, unsigned body_len,
                                     const uint8_t *writable);

/* INTx: assert or deassert the device's pin (honours COMMAND.INTX_OFF). */
void nb_pci_device_set_intx(NbPciDevice *dev, bool level);

/* The machine's interrupts, for MSI-X and irqfd. */
NbInterrupts *nb_pci_device_interrupts(NbPciDevice *dev);

/* Bus side, used by the machine. */
NbPciBus *nb_pci_bus_new(NbIoBus *pio, NbIoBus *mmio, NbInterrupts *irqs,
                         uint64_t mmio64_base);
void nb_pci_bus_free(NbPciBus *bus);
bool nb_pci_bus_add(NbPciBus *bus, NbPciDevice *dev, GError **error);
/* Host bridge config mechanism #1 on ports 0xCF8-0xCFF. */
bool nb_pci_bus_register_host_bridge(NbPciBus *bus, GError **error);
/* Maps RAM-backed BARs: set by the machine, called with (ctx, gpa, size, host ptr or NULL to remove). */
typedef bool (*NbPciRamMapFunc)(void *ctx, uint64_t gpa, uint64_t size, void *host, GError **error);
void nb_pci_bus_set_ram_mapper(NbPciBus *bus, NbPciRamMapFunc map, void *ctx);
