/* virtio-rng (spec 5.4): the guest's /dev/hwrng, fed from the host kernel's
 * getrandom(). */
#pragma once

#include "hw/pci.h"
#include "kvm/guest-memory.h"

#include <glib.h>

/* Most bytes one request gets, so one greedy buffer cannot keep the worker
 * busy; the driver simply asks again. */
#define NB_VIRTIO_RNG_MAX_REQUEST (64 * 1024)

typedef struct NbVirtioRng NbVirtioRng;

NbVirtioRng *nb_virtio_rng_new(NbGuestMemory *mem, GError **error);
void nb_virtio_rng_free(NbVirtioRng *rng);
/* What nb_pci_bus_add takes. */
NbPciDevice *nb_virtio_rng_pci_device(NbVirtioRng *rng);
