#include "hw/pci.h"
#include "boot/acpi.h"
#include "kvm/memory-map.h"

#include <gio/gio.h>
#include <string.h>

#define HOST_BRIDGE_VENDOR 0x1b36   /* generic virtual PCIe host bridge IDs */
#define HOST_BRIDGE_DEVICE 0x0008

struct NbPciBus {
  NbIoBus *pio;
  NbIoBus *mmio;
  NbInterrupts *irqs;
  GMutex lock;                 /* config space and BAR mapping */
  GMutex intx_lock;            /* INTx state: taken inside lock, or alone */
  NbPciDevice *slots[NB_PCI_MAX_SLOTS];
  NbPciDevice host_bridge;
  uint32_t config_address;     /* port 0xCF8 */
  uint64_t next_mmio32;
  uint64_t next_mmio64;
  uint64_t next_io;
  NbPciRamMapFunc ram_map;
  void *ram_map_ctx;
};

/* The interrupt pin register counts from 1 (INTA); the routing shared with
 * the DSDT's _PRT counts from 0. */
static unsigned
intx_gsi(unsigned slot, unsigned pin_register)
{
  return nb_acpi_pci_intx_gsi(slot, pin_register - 1);
}

static inline uint32_t
config_read32(const NbPciDevice *dev, unsigned off)
{
  uint32_t v;
  memcpy(&v, dev->config + off, 4);
  return GUINT32_FROM_LE(v);
}

static inline void
config_write32(NbPciDevice *dev, unsigned off, uint32_t v)
{
  v = GUINT32_TO_LE(v);
  memcpy(dev->config + off, &v, 4);
}

static inline void
config_write16(NbPciDevice *dev, unsigned off, uint16_t v)
{
  v = GUINT16_TO_LE(v);
  memcpy(dev->config + off, &v, 2);
}

static inline uint16_t
config_read16(const NbPciDevice *dev, unsigned off)
{
  uint16_t v;
  memcpy(&v, dev->config + off, 2);
  return GUINT16_FROM_LE(v);
}

void
nb_pci_device_init(NbPciDevice *dev, const char *name, uint16_t vendor, uint16_t device,
                   uint32_t class_code, uint8_t revision, uint16_t subsystem_vendor,
                   uint16_t subsystem_id)
{
  memset(dev, 0, sizeof *dev);
  dev->name = g_strdup(name);
  config_write16(dev, NB_PCI_VENDOR_ID, vendor);
  config_write16(dev, NB_PCI_DEVICE_ID, device);
  dev->config[NB_PCI_REVISION] = revision;
  dev->config[NB_PCI_CLASS_PROG] = class_code & 0xff;
  dev->config[NB_PCI_CLASS_PROG + 1] = (class_code >> 8) & 0xff;
  dev->config[NB_PCI_CLASS_PROG + 2] = (class_code >> 16) & 0xff;
  config_write16(dev, NB_PCI_SUBSYSTEM_VENDOR, subsystem_vendor);
  config_write16(dev, NB_PCI_SUBSYSTEM_ID, subsystem_id);
  /* Command: I/O, memory, bus master, INTx disable are the guest's to set. */
  dev->wmask[NB_PCI_COMMAND] = NB_PCI_COMMAND_IO | NB_PCI_COMMAND_MEMORY | NB_PCI_COMMAND_MASTER;
  dev->wmask[NB_PCI_COMMAND + 1] = NB_PCI_COMMAND_INTX_OFF >> 8;
  dev->wmask[NB_PCI_INTERRUPT_LINE] = 0xff;
  dev->config[NB_PCI_INTERRUPT_PIN] = 1;   /* INTA; a device without INTx sets 0 */
  dev->next_cap = 0x40;
}

void
nb_pci_device_clear(NbPciDevice *dev)
{
  g_clear_pointer(&dev->name, g_free);
  g_clear_pointer(&dev->rom, g_bytes_unref);
}

static uint64_t
round_up_pow2(uint64_t v)
{
  uint64_t p = 1;
  while (p < v)
    p <<= 1;
  return p;
}

static void
set_bar_common(NbPciDevice *dev, unsigned index, NbPciBarType type, uint64_t size)
{
  g_return_if_fail(index < NB_PCI_NUM_BARS);
  g_return_if_fail(type != NB_PCI_BAR_MEM64 || index + 1 < NB_PCI_NUM_BARS);
  NbPciBar *bar = &dev->bars[index];
  bar->type = type;
  bar->size = round_up_pow2(MAX(size, type == NB_PCI_BAR_IO ? 4 : 4096));
  uint32_t low_bits = 0;
  if (type == NB_PCI_BAR_IO)
    low_bits = 0x1;
  else if (type == NB_PCI_BAR_MEM64)
    low_bits = 0x4;
  if (bar->prefetchable)
    low_bits |= 0x8;
  config_write32(dev, NB_PCI_BAR0 + 4 * index, low_bits);
}

void
nb_pci_device_set_bar(NbPciDevice *dev, unsigned index, NbPciBarType type, uint64_t size,
                      const NbIoOps *ops, void *opaque)
{
  dev->bars[index].ops = ops;
  dev->bars[index].opaque = opaque;
  set_bar_common(dev, index, type, size);
}

void
nb_pci_device_set_ram_bar(NbPciDevice *dev, unsigned index, NbPciBarType type, uint64_t size,
                          void *ram)
{
  dev->bars[index].ram = ram;
  dev->bars[index].prefetchable = true;
  set_bar_common(dev, index, type, size);
}

/* The smallest ROM BAR the PCI spec allows is 2 KiB; a page keeps it clear
 * of anything else the guest maps. */
#define ROM_MIN_SIZE 4096

void
nb_pci_device_set_rom(NbPciDevice *dev, GBytes *image)
{
  g_return_if_fail(dev->bus == NULL && image != NULL);
  g_clear_pointer(&dev->rom, g_bytes_unref);
  dev->rom = g_bytes_ref(image);
  dev->rom_size = round_up_pow2(MAX(g_bytes_get_size(image), ROM_MIN_SIZE));
  config_write32(dev, NB_PCI_ROM_ADDRESS, 0);
}

uint8_t
nb_pci_device_add_capability(NbPciDevice *dev, uint8_t cap_id, const void *body,
                             unsigned body_len, const uint8_t *writable)
{
  unsigned off = dev->next_cap;
  g_return_val_if_fail(off + 2 + body_len <= NB_PCI_CONFIG_SIZE, 0);
  dev->config[off] = cap_id;
  dev->config[off + 1] = 0;
  memcpy(dev->config + off + 2, body, body_len);
  if (writable)
    memcpy(dev->wmask + off + 2, writable, body_len);

  /* Append to the end of the list. */
  if (!(dev->config[NB_PCI_STATUS] & NB_PCI_STATUS_CAP_LIST)) {
    dev->config[NB_PCI_STATUS] |= NB_PCI_STATUS_CAP_LIST;
    dev->config[NB_PCI_CAPABILITY_LIST] = off;
  } else {
    unsigned p = dev->config[NB_PCI_CAPABILITY_LIST];
    while (dev->config[p + 1] != 0)
      p = dev->config[p + 1];
    dev->config[p + 1] = off;
  }
  dev->next_cap = (off + 2 + body_len + 3) & ~3u;
  return off;
}

static void
update_intx(NbPciDevice *dev)
{
  bool disabled = config_read16(dev, NB_PCI_COMMAND) & NB_PCI_COMMAND_INTX_OFF;
  bool level = dev->intx_level && !disabled;
  if (level)
    dev->config[NB_PCI_STATUS] |= NB_PCI_STATUS_INTX;
  else
    dev->config[NB_PCI_STATUS] &= ~NB_PCI_STATUS_INTX;
  if (dev->bus && dev->bus->irqs && dev->config[NB_PCI_INTERRUPT_PIN])
    dev->bus->irqs->ops->set_line(dev->bus->irqs->ctx, dev->gsi, level);
}

/* Devices raise INTx from MMIO handlers and workers; taking only the INTx
 * lock here (never the bus lock) keeps that free of lock-order cycles with
 * BAR remapping, which holds the bus lock while it changes the MMIO bus. */
void
nb_pci_device_set_intx(NbPciDevice *dev, bool level)
{
  if (dev->bus)
    g_mutex_lock(&dev->bus->intx_lock);
  dev->intx_level = level;
  update_intx(dev);
  if (dev->bus)
    g_mutex_unlock(&dev->bus->intx_lock);
}

NbInterrupts *
nb_pci_device_interrupts(NbPciDevice *dev)
{
  return dev->bus ? dev->bus->irqs : NULL;
}

/* BAR mapping --------------------------------------------------------------- */

/* The expansion ROM: reads come from the image, past its end 0xff (an
 * erased flash part); writes go nowhere. */
static uint64_t
rom_read(void *opaque, uint64_t offset, unsigned size)
{
  const NbPciDevice *dev = opaque;
  gsize len;
  const uint8_t *data = g_bytes_get_data(dev->rom, &len);
  uint64_t v = 0;
  for (unsigned i = 0; i < size && i < 8; i++)
    v |= (uint64_t)(offset + i < len ? data[offset + i] : 0xff) << (8 * i);
  return v;
}

static void
rom_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  (void)opaque, (void)offset, (void)value, (void)size;
}

static const NbIoOps rom_ops = { rom_read, rom_write };

static void
update_rom(NbPciBus *bus, NbPciDevice *dev)
{
  if (dev->rom == NULL)
    return;
  uint32_t reg = config_read32(dev, NB_PCI_ROM_ADDRESS);
  uint64_t addr = reg & ~(uint32_t)(dev->rom_size - 1);
  bool want = (reg & NB_PCI_ROM_ENABLE) &&
              (config_read16(dev, NB_PCI_COMMAND) & NB_PCI_COMMAND_MEMORY) && addr != 0 &&
              addr + dev->rom_size <= (UINT64_C(1) << 32);
  if (dev->rom_mapped && (!want || addr != dev->rom_addr)) {
    /* The device itself is the handle: its BARs register their own state. */
    nb_io_bus_unregister(bus->mmio, dev->rom_addr, dev);
    dev->rom_mapped = false;
  }
  if (!dev->rom_mapped && want) {
    g_autoptr(GError) error = NULL;
    if (!nb_io_bus_register(bus->mmio, addr, dev->rom_size, &rom_ops, dev, &error)) {
      g_warning("PCI %s expansion ROM at 0x%" G_GINT64_MODIFIER "x not mapped: %s", dev->name,
                addr, error->message);
      return;
    }
    dev->rom_addr = addr;
    dev->rom_mapped = true;
  }
}

static uint64_t
bar_address(const NbPciDevice *dev, unsigned index)
{
  const NbPciBar *bar = &dev->bars[index];
  uint32_t low = config_read32(dev, NB_PCI_BAR0 + 4 * index);
  if (bar->type == NB_PCI_BAR_IO)
    return low & ~UINT32_C(0x3);
  uint64_t addr = low & ~UINT32_C(0xf);
  if (bar->type == NB_PCI_BAR_MEM64)
    addr |= (uint64_t)config_read32(dev, NB_PCI_BAR0 + 4 * (index + 1)) << 32;
  return addr;
}

static bool
bar_decode_enabled(const NbPciDevice *dev, const NbPciBar *bar)
{
  uint16_t command = config_read16(dev, NB_PCI_COMMAND);
  return bar->type == NB_PCI_BAR_IO ? (command & NB_PCI_COMMAND_IO)
                                    : (command & NB_PCI_COMMAND_MEMORY);
}

static void
unmap_bar(NbPciBus *bus, NbPciDevice *dev, unsigned index)
{
  NbPciBar *bar = &dev->bars[index];
  if (!bar->mapped)
    return;
  if (bar->ram) {
    if (bus->ram_map)
      bus->ram_map(bus->ram_map_ctx, bar->addr, bar->size, NULL, NULL);
  } else {
    nb_io_bus_unregister(bar->type == NB_PCI_BAR_IO ? bus->pio : bus->mmio, bar->addr, bar->opaque);
  }
  bar->mapped = false;
  if (dev->ops && dev->ops->bar_changed)
    dev->ops->bar_changed(dev, index, false);
}

static void
map_bar(NbPciBus *bus, NbPciDevice *dev, unsigned index)
{
  NbPciBar *bar = &dev->bars[index];
  uint64_t addr = bar_address(dev, index);
  /* Zero, the all-ones pattern read back while the guest sizes the BAR (SeaBIOS
   * does so with decoding on), or an address that wraps, is "not placed". */
  bool sizing = bar->type != NB_PCI_BAR_IO && addr == (uint32_t)(~(bar->size - 1) & ~UINT64_C(0xf));
  if (addr == 0 || sizing || addr + bar->size < addr ||
      (bar->type == NB_PCI_BAR_IO && addr + bar->size > 0x10000) ||
      (bar->type == NB_PCI_BAR_MEM32 && addr + bar->size > (UINT64_C(1) << 32)))
    return;
  g_autoptr(GError) error = NULL;
  bool ok;
  if (bar->ram)
    ok = bus->ram_map && bus->ram_map(bus->ram_map_ctx, addr, bar->size, bar->ram, &error);
  else
    ok = nb_io_bus_register(bar->type == NB_PCI_BAR_IO ? bus->pio : bus->mmio, addr, bar->size,
                            bar->ops, bar->opaque, &error);
  if (!ok) {
    /* The guest placed it over something else: leave it unmapped, as hardware
     * would lose the decode conflict, and say so once. */
    g_warning("PCI %s BAR%u at 0x%" G_GINT64_MODIFIER "x not mapped: %s", dev->name, index,
              addr, error ? error->message : "no RAM mapper");
    return;
  }
  bar->addr = addr;
  bar->mapped = true;
  if (dev->ops && dev->ops->bar_changed)
    dev->ops->bar_changed(dev, index, true);
}

static void
update_bars(NbPciBus *bus, NbPciDevice *dev)
{
  for (unsigned i = 0; i < NB_PCI_NUM_BARS; i++) {
    NbPciBar *bar = &dev->bars[i];
    if (bar->type == NB_PCI_BAR_NONE || bar->size == 0)
      continue;
    bool want = bar_decode_enabled(dev, bar);
    uint64_t addr = bar_address(dev, i);
    if (bar->mapped && (!want || addr != bar->addr))
      unmap_bar(bus, dev, i);
    if (!bar->mapped && want)
      map_bar(bus, dev, i);
    if (bar->type == NB_PCI_BAR_MEM64)
      i++;
  }
}

/* Config space -------------------------------------------------------------- */

static uint32_t
bar_size_mask(const NbPciDevice *dev, unsigned off)
{
  unsigned index = (off - NB_PCI_BAR0) / 4;
  /* The upper half of a 64-bit BAR. */
  if (index > 0 && dev->bars[index - 1].type == NB_PCI_BAR_MEM64)
    return (uint32_t)(~(dev->bars[index - 1].size - 1) >> 32);
  const NbPciBar *bar = &dev->bars[index];
  if (bar->type == NB_PCI_BAR_NONE)
    return 0;
  uint32_t mask = (uint32_t)~(bar->size - 1);
  return bar->type == NB_PCI_BAR_IO ? mask & ~UINT32_C(0x3) : mask & ~UINT32_C(0xf);
}

static void
device_config_write(NbPciBus *bus, NbPciDevice *dev, unsigned off, uint32_t value, unsigned size)
{
  bool touches_bars = off < NB_PCI_BAR0 + 24 && off + size > NB_PCI_BAR0;
  bool touches_command = off < NB_PCI_COMMAND + 2 && off + size > NB_PCI_COMMAND;
  bool touches_rom = off < NB_PCI_ROM_ADDRESS + 4 && off + size > NB_PCI_ROM_ADDRESS;

  for (unsigned i = 0; i < size; i++) {
    unsigned at = off + i;
    uint8_t byte = (value >> (8 * i)) & 0xff;
    if (at >= NB_PCI_BAR0 && at < NB_PCI_BAR0 + 24) {
      unsigned bar_off = at & ~3u;
      uint32_t mask = bar_size_mask(dev, bar_off);
      uint8_t mask_byte = (mask >> (8 * (at - bar_off))) & 0xff;
      dev->config[at] = (dev->config[at] & ~mask_byte) | (byte & mask_byte);
    } else if (at >= NB_PCI_ROM_ADDRESS && at < NB_PCI_ROM_ADDRESS + 4) {
      /* The address bits the ROM's size leaves, and the enable bit; none
       * without a ROM (the register then reads 0). */
      uint32_t mask = dev->rom ? (~(uint32_t)(dev->rom_size - 1) | NB_PCI_ROM_ENABLE) : 0;
      uint8_t mask_byte = (mask >> (8 * (at - NB_PCI_ROM_ADDRESS))) & 0xff;
      dev->config[at] = (dev->config[at] & ~mask_byte) | (byte & mask_byte);
    } else if (at == NB_PCI_STATUS || at == NB_PCI_STATUS + 1) {
      /* Status error bits are write-one-to-clear; we raise none. */
    } else {
      dev->config[at] = (dev->config[at] & ~dev->wmask[at]) | (byte & dev->wmask[at]);
    }
  }
  if (touches_bars || touches_command)
    update_bars(bus, dev);
  if (touches_rom || touches_command)
    update_rom(bus, dev);
  if (touches_command) {
    g_mutex_lock(&bus->intx_lock);
    update_intx(dev);
    g_mutex_unlock(&bus->intx_lock);
  }
  if (dev->ops && dev->ops->config_written)
    dev->ops->config_written(dev, off, size);
}

static uint64_t
config_address_read(void *opaque, uint64_t offset, unsigned size)
{
  NbPciBus *bus = opaque;
  if (offset != 0 || size != 4)
    return ~UINT64_C(0);
  g_mutex_lock(&bus->lock);
  uint32_t v = bus->config_address;
  g_mutex_unlock(&bus->lock);
  return v;
}

static void
config_address_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbPciBus *bus = opaque;
  /* Only dword writes to 0xCF8 are configuration mechanism #1. */
  if (offset != 0 || size != 4)
    return;
  g_mutex_lock(&bus->lock);
  bus->config_address = (uint32_t)value & 0x80fffffc;
  g_mutex_unlock(&bus->lock);
}

/* The device addressed by 0xCF8, if enabled and present (bus 0, function 0). */
static NbPciDevice *
addressed_device(NbPciBus *bus)
{
  uint32_t a = bus->config_address;
  if (!(a & 0x80000000u))
    return NULL;
  unsigned bus_nr = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
  if (bus_nr != 0 || fn != 0)
    return NULL;
  return bus->slots[slot];
}

static uint64_t
config_data_read(void *opaque, uint64_t offset, unsigned size)
{
  NbPciBus *bus = opaque;
  g_mutex_lock(&bus->lock);
  NbPciDevice *dev = addressed_device(bus);
  unsigned reg = (bus->config_address & 0xfc) + (unsigned)offset;
  uint64_t v = ~UINT64_C(0);
  if (dev && size <= 4 && reg + size <= NB_PCI_CONFIG_SIZE) {
    v = 0;
    memcpy(&v, dev->config + reg, size);
    v = GUINT64_FROM_LE(v);
  }
  g_mutex_unlock(&bus->lock);
  return v;
}

static void
config_data_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbPciBus *bus = opaque;
  g_mutex_lock(&bus->lock);
  NbPciDevice *dev = addressed_device(bus);
  unsigned reg = (bus->config_address & 0xfc) + (unsigned)offset;
  if (dev && size <= 4 && reg + size <= NB_PCI_CONFIG_SIZE)
    device_config_write(bus, dev, reg, (uint32_t)value, size);
  g_mutex_unlock(&bus->lock);
}

static const NbIoOps config_address_ops = { config_address_read, config_address_write };
static const NbIoOps config_data_ops = { config_data_read, config_data_write };

/* Bus ----------------------------------------------------------------------- */

NbPciBus *
nb_pci_bus_new(NbIoBus *pio, NbIoBus *mmio, NbInterrupts *irqs, uint64_t mmio64_base)
{
  NbPciBus *bus = g_new0(NbPciBus, 1);
  bus->pio = pio;
  bus->mmio = mmio;
  bus->irqs = irqs;
  g_mutex_init(&bus->lock);
  g_mutex_init(&bus->intx_lock);
  bus->next_mmio32 = NB_MEM_PCI_MMIO_BASE;
  bus->next_mmio64 = mmio64_base;
  bus->next_io = 0xc000;

  /* The host bridge in slot 0, as Linux expects on PC-like machines. Its
   * subsystem ID is QEMU's "virtual machine" one (1af4:1100): SeaBIOS only
   * trusts fw_cfg on a host bridge that carries it. */
  nb_pci_device_init(&bus->host_bridge, "host-bridge", HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE,
                     0x060000, 0, 0x1af4, 0x1100);
  bus->host_bridge.bus = bus;
  bus->slots[0] = &bus->host_bridge;
  return bus;
}

void
nb_pci_bus_free(NbPciBus *bus)
{
  if (bus == NULL)
    return;
  nb_pci_device_clear(&bus->host_bridge);
  g_mutex_clear(&bus->lock);
  g_mutex_clear(&bus->intx_lock);
  g_free(bus);
}

void
nb_pci_bus_set_ram_mapper(NbPciBus *bus, NbPciRamMapFunc map, void *ctx)
{
  bus->ram_map = map;
  bus->ram_map_ctx = ctx;
}

bool
nb_pci_bus_register_host_bridge(NbPciBus *bus, GError **error)
{
  return nb_io_bus_register(bus->pio, 0xcf8, 4, &config_address_ops, bus, error) &&
         nb_io_bus_register(bus->pio, 0xcfc, 4, &config_data_ops, bus, error);
}

/* Places BARs largest first would pack tighter; devices are few, so natural
 * alignment in order of index is enough and keeps addresses predictable. */
static bool
assign_bars(NbPciBus *bus, NbPciDevice *dev, GError **error)
{
  for (unsigned i = 0; i < NB_PCI_NUM_BARS; i++) {
    NbPciBar *bar = &dev->bars[i];
    if (bar->type == NB_PCI_BAR_NONE || bar->size == 0)
      continue;
    uint64_t *next;
    uint64_t limit;
    switch (bar->type) {
    case NB_PCI_BAR_IO: next = &bus->next_io; limit = 0x10000; break;
    case NB_PCI_BAR_MEM32: next = &bus->next_mmio32; limit = NB_MEM_PCI_MMIO_END; break;
    default: next = &bus->next_mmio64; limit = UINT64_C(1) << 46; break;
    }
    uint64_t addr = (*next + bar->size - 1) & ~(bar->size - 1);
    if (addr + bar->size > limit) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                  "no room for PCI device %s's BAR%u (%" G_GUINT64_FORMAT " bytes)", dev->name, i,
                  bar->size);
      return false;
    }
    *next = addr + bar->size;
    uint32_t low = config_read32(dev, NB_PCI_BAR0 + 4 * i) & 0xf;
    config_write32(dev, NB_PCI_BAR0 + 4 * i, (uint32_t)addr | low);
    if (bar->type == NB_PCI_BAR_MEM64) {
      config_write32(dev, NB_PCI_BAR0 + 4 * (i + 1), (uint32_t)(addr >> 32));
      i++;
    }
  }
  /* The ROM gets a place too, left disabled: a guest reads it by setting
   * the enable bit (Linux's sysfs "rom" file does). */
  if (dev->rom) {
    uint64_t addr = (bus->next_mmio32 + dev->rom_size - 1) & ~(dev->rom_size - 1);
    if (addr + dev->rom_size > NB_MEM_PCI_MMIO_END) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                  "no room for PCI device %s's expansion ROM (%" G_GUINT64_FORMAT " bytes)",
                  dev->name, dev->rom_size);
      return false;
    }
    bus->next_mmio32 = addr + dev->rom_size;
    config_write32(dev, NB_PCI_ROM_ADDRESS, (uint32_t)addr);
  }
  return true;
}

bool
nb_pci_bus_add(NbPciBus *bus, NbPciDevice *dev, GError **error)
{
  g_mutex_lock(&bus->lock);
  unsigned slot = 1;
  while (slot < NB_PCI_MAX_SLOTS && bus->slots[slot])
    slot++;
  if (slot == NB_PCI_MAX_SLOTS) {
    g_mutex_unlock(&bus->lock);
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                "cannot add PCI device %s: all %d slots are in use", dev->name, NB_PCI_MAX_SLOTS - 1);
    return false;
  }
  if (!assign_bars(bus, dev, error)) {
    g_mutex_unlock(&bus->lock);
    return false;
  }
  dev->bus = bus;
  dev->slot = slot;
  if (dev->config[NB_PCI_INTERRUPT_PIN] != 0) {
    dev->gsi = intx_gsi(slot, dev->config[NB_PCI_INTERRUPT_PIN]);
    dev->config[NB_PCI_INTERRUPT_LINE] = (uint8_t)dev->gsi;
  }
  bus->slots[slot] = dev;
  /* Enable decoding as firmware would have, so direct-boot guests that keep
   * the assignment work without reprogramming. */
  uint16_t command = config_read16(dev, NB_PCI_COMMAND) | NB_PCI_COMMAND_IO | NB_PCI_COMMAND_MEMORY;
  config_write16(dev, NB_PCI_COMMAND, command);
  update_bars(bus, dev);
  g_mutex_unlock(&bus->lock);
  return true;
}
