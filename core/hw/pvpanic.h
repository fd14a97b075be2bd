/* pvpanic on PCI (1b36:0011): the guest kernel's pvpanic-pci driver writes
 * here when it panics, so the host can tell a panic from a reboot. */
#pragma once

#include "hw/pci.h"

typedef void (*NbPvpanicFunc)(void *ctx, unsigned events);

#define NB_PVPANIC_PANICKED     (1u << 0)
#define NB_PVPANIC_CRASH_LOADED (1u << 1)

typedef struct NbPvpanic NbPvpanic;

NbPvpanic *nb_pvpanic_new(NbPvpanicFunc on_event, void *ctx);
NbPciDevice *nb_pvpanic_pci_device(NbPvpanic *dev);
void nb_pvpanic_free(NbPvpanic *dev);
