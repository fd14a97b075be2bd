/* Port I/O and MMIO dispatch: a guest access that exits to userspace is
 * routed to the device that registered the range.
 *
 * Registration and removal may happen while vCPUs run (a guest moving a PCI
 * BAR), even from a handler on the same bus: dispatch works on a snapshot of
 * the ranges and holds no lock while the handler runs. A device may thus see
 * an access that raced with its removal; devices live until the machine's
 * vCPUs have stopped, so that is harmless. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
  /* size is 1, 2, 4 or 8; offset is relative to the registered base. */
  uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
  void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
} NbIoOps;

typedef struct NbIoBus NbIoBus;

NbIoBus *nb_io_bus_new(const char *name);
void nb_io_bus_free(NbIoBus *bus);

/* Fails if the range overlaps a registered one. */
bool nb_io_bus_register(NbIoBus *bus, uint64_t base, uint64_t len,
                        const NbIoOps *ops, void *opaque, GError **error);
/* Removes the range that starts at base and belongs to opaque. */
bool nb_io_bus_unregister(NbIoBus *bus, uint64_t base, void *opaque);

/* Returns false when nothing is registered there: reads then see all ones. */
bool nb_io_bus_read(NbIoBus *bus, uint64_t addr, void *data, unsigned size);
bool nb_io_bus_write(NbIoBus *bus, uint64_t addr, const void *data, unsigned size);
