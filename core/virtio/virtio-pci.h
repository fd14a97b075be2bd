/* The virtio 1.x PCI transport (modern only, spec 4.1) shared by every
 * virtio device.
 *
 * One memory BAR holds the common configuration, ISR, device configuration,
 * notification area and the MSI-X table and PBA. Queue notifications arrive
 * on an eventfd per queue (an ioeventfd when KVM provides one, otherwise the
 * trapped MMIO write signals it), and each device's work runs on its own
 * worker thread, never on a vCPU thread. Interrupts go out through an irqfd
 * per MSI-X vector, or INTx with the ISR register when MSI-X is off.
 *
 * Locking: the transport lock is held while the worker runs device callbacks
 * and while a vCPU changes queue or status state, so a reset never races
 * with a request being taken from a queue. */
#pragma once

#include "hw/pci.h"
#include "kvm/guest-memory.h"
#include "virtio/virtqueue.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Device status bits (spec 2.1). */
#define NB_VIRTIO_STATUS_ACKNOWLEDGE  1
#define NB_VIRTIO_STATUS_DRIVER       2
#define NB_VIRTIO_STATUS_DRIVER_OK    4
#define NB_VIRTIO_STATUS_FEATURES_OK  8
#define NB_VIRTIO_STATUS_NEEDS_RESET  0x40
#define NB_VIRTIO_STATUS_FAILED       0x80

/* Device IDs (spec 5). */
#define NB_VIRTIO_ID_NET     1
#define NB_VIRTIO_ID_BLOCK   2
#define NB_VIRTIO_ID_CONSOLE 3
#define NB_VIRTIO_ID_RNG     4

#define NB_VIRTIO_PCI_VENDOR      0x1af4
#define NB_VIRTIO_PCI_DEVICE_BASE 0x1040
#define NB_VIRTIO_MSI_NO_VECTOR   0xffff

/* Layout of the one BAR (BAR 0, 32-bit memory). */
#define NB_VIRTIO_PCI_BAR          0
#define NB_VIRTIO_PCI_COMMON_OFF   0x0000
#define NB_VIRTIO_PCI_COMMON_SIZE  0x38
#define NB_VIRTIO_PCI_ISR_OFF      0x1000
#define NB_VIRTIO_PCI_DEVICE_OFF   0x2000
#define NB_VIRTIO_PCI_DEVICE_SIZE  0x1000
#define NB_VIRTIO_PCI_NOTIFY_OFF   0x3000
#define NB_VIRTIO_PCI_NOTIFY_MULT  4
#define NB_VIRTIO_PCI_MSIX_OFF     0x4000
#define NB_VIRTIO_PCI_PBA_OFF      0x6000
#define NB_VIRTIO_PCI_BAR_SIZE     0x8000

/* Most queues one device may have (each gets its own notify slot and may
 * have its own MSI-X vector). */
#define NB_VIRTIO_MAX_QUEUES  64
#define NB_VIRTIO_MAX_VECTORS (NB_VIRTIO_MAX_QUEUES + 1)

typedef struct NbVirtioPci NbVirtioPci;

/* What a device supplies. queue_notify runs on the device's worker thread,
 * activate and reset on the vCPU thread that wrote the status, all three with
 * the transport lock held; config_read/config_write run on vCPU threads
 * without it. */
typedef struct {
  /* Device configuration space; offset + len never exceed config_size. */
  void (*config_read)(void *ctx, unsigned offset, void *data, unsigned len);
  void (*config_write)(void *ctx, unsigned offset, const void *data, unsigned len);
  /* The driver notified queue (or a host kick asked to look at it). */
  void (*queue_notify)(void *ctx, unsigned queue);
  /* The driver set DRIVER_OK: queues are set up and features final. May be
   * NULL. */
  void (*activate)(void *ctx);
  /* Back to power-on state. Runs on the thread that asked for the reset,
   * with the transport lock held: the worker is idle, but work handed to
   * other threads must be waited for here before returning. */
  void (*reset)(void *ctx);
} NbVirtioDeviceOps;

typedef struct {
  const char *name;
  uint16_t device_id;
  uint32_t pci_class;
  uint64_t features;       /* device-specific bits; the transport adds its own */
  unsigned num_queues;
  uint16_t queue_size;     /* largest size offered for each queue */
  unsigned config_size;
  const NbVirtioDeviceOps *ops;
  void *ctx;
} NbVirtioDeviceInfo;

NbVirtioPci *nb_virtio_pci_new(NbGuestMemory *mem, const NbVirtioDeviceInfo *info,
                               GError **error);
/* Stops the worker: no device callback runs after it returns. Devices call
 * it before tearing down their own threads. */
void nb_virtio_pci_stop(NbVirtioPci *vp);
/* Stops the worker and releases routes and eventfds. Free devices before
 * the PCI bus they are on. */
void nb_virtio_pci_free(NbVirtioPci *vp);

/* What nb_pci_bus_add takes. */
NbPciDevice *nb_virtio_pci_device(NbVirtioPci *vp);

/* For devices and tests. */
NbVirtqueue *nb_virtio_pci_queue(NbVirtioPci *vp, unsigned index);
uint64_t nb_virtio_pci_driver_features(NbVirtioPci *vp);
bool nb_virtio_pci_has_feature(NbVirtioPci *vp, unsigned bit);
uint8_t nb_virtio_pci_status(NbVirtioPci *vp);
/* DRIVER_OK set and not broken: queues may be used. */
bool nb_virtio_pci_is_active(NbVirtioPci *vp);

/* Interrupts the driver for a queue (MSI-X vector or INTx + ISR). Any
 * thread; the caller checks nb_virtqueue_should_notify first. */
void nb_virtio_pci_notify_queue(NbVirtioPci *vp, unsigned queue);
/* The device configuration changed. */
void nb_virtio_pci_notify_config(NbVirtioPci *vp);
/* The driver corrupted something: sets DEVICE_NEEDS_RESET, tells the driver,
 * and stops using the queues until it resets the device. Called from device
 * callbacks (transport lock held). */
void nb_virtio_pci_set_broken(NbVirtioPci *vp, const char *why);

/* Asks the worker to run queue_notify for queue soon (any thread): for host
 * events such as console input arriving. */
void nb_virtio_pci_kick(NbVirtioPci *vp, unsigned queue);

/* Extra file descriptors the worker watches for the device (console
 * sockets). func runs on the worker with the transport lock held. These
 * three are called from device callbacks (the lock is then held) or before
 * the device is on the bus. */
typedef void (*NbVirtioFdFunc)(void *ctx, int fd, uint32_t epoll_events);
bool nb_virtio_pci_watch_fd(NbVirtioPci *vp, int fd, uint32_t epoll_events, NbVirtioFdFunc func,
                            void *ctx, GError **error);
/* Changes the events of a watched fd. */
void nb_virtio_pci_modify_fd(NbVirtioPci *vp, int fd, uint32_t epoll_events);
/* Stops watching; an event already collected for it is dropped. */
void nb_virtio_pci_unwatch_fd(NbVirtioPci *vp, int fd);
