#include "hw/pvpanic.h"

struct NbPvpanic {
  NbPciDevice pci;
  NbPvpanicFunc on_event;
  void *ctx;
};

static uint64_t
pvpanic_read(void *opaque, uint64_t offset, unsigned size)
{
  /* The events we understand; the driver writes only these. */
  return offset == 0 ? (NB_PVPANIC_PANICKED | NB_PVPANIC_CRASH_LOADED) : 0;
}

static void
pvpanic_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbPvpanic *dev = opaque;
  unsigned events = (unsigned)value & (NB_PVPANIC_PANICKED | NB_PVPANIC_CRASH_LOADED);
  if (offset == 0 && events != 0)
    dev->on_event(dev->ctx, events);
}

static const NbIoOps pvpanic_ops = { pvpanic_read, pvpanic_write };

NbPvpanic *
nb_pvpanic_new(NbPvpanicFunc on_event, void *ctx)
{
  NbPvpanic *dev = g_new0(NbPvpanic, 1);
  dev->on_event = on_event;
  dev->ctx = ctx;
  nb_pci_device_init(&dev->pci, "pvpanic", 0x1b36, 0x0011, 0x088000, 1, 0x1af4, 0x1100);
  dev->pci.config[NB_PCI_INTERRUPT_PIN] = 0;
  nb_pci_device_set_bar(&dev->pci, 0, NB_PCI_BAR_MEM32, 16, &pvpanic_ops, dev);
  return dev;
}

NbPciDevice *
nb_pvpanic_pci_device(NbPvpanic *dev)
{
  return &dev->pci;
}

void
nb_pvpanic_free(NbPvpanic *dev)
{
  if (dev == NULL)
    return;
  nb_pci_device_clear(&dev->pci);
  g_free(dev);
}
