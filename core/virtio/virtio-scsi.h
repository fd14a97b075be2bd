/* virtio-scsi (spec 5.6) with one CD-ROM drive at target 0, LUN 0.
 *
 * Queue 0 is control (task management and async notification requests,
 * answered at once: there is never a command in flight to abort), queue 1
 * events (buffers are left with the driver: it polls media with GET EVENT
 * STATUS NOTIFICATION instead), queue 2 commands. Commands run on the
 * device's worker thread. A request's header, CDB and response area come
 * from the guest: short or malformed ones complete with an error response,
 * commands for another target or LUN with BAD_TARGET. */
#pragma once

#include "hw/pci.h"
#include "kvm/guest-memory.h"
#include "virtio/scsi-cdrom.h"
#include "virtio/virtqueue.h"

#include <glib.h>
#include <stdint.h>

#define NB_VIRTIO_ID_SCSI 8

/* Sizes the device offers (the driver may not exceed them). */
#define NB_VIRTIO_SCSI_CDB_SIZE   32
#define NB_VIRTIO_SCSI_SENSE_SIZE 96
/* lun[8], tag, task_attr, prio, crn, then the CDB. */
#define NB_VIRTIO_SCSI_REQ_SIZE   (19 + NB_VIRTIO_SCSI_CDB_SIZE)
/* sense_len, resid, status_qualifier, status, response, then the sense. */
#define NB_VIRTIO_SCSI_RESP_SIZE  (12 + NB_VIRTIO_SCSI_SENSE_SIZE)

/* Response codes (spec 5.6.6.1). */
#define NB_VIRTIO_SCSI_S_OK         0
#define NB_VIRTIO_SCSI_S_OVERRUN    1
#define NB_VIRTIO_SCSI_S_BAD_TARGET 3
#define NB_VIRTIO_SCSI_S_FAILURE    9

typedef struct NbVirtioScsi NbVirtioScsi;

/* medium is the ISO (read-only; may be NULL for an empty drive), owned by
 * the caller. */
NbVirtioScsi *nb_virtio_scsi_new(NbGuestMemory *mem, NbBlock *medium, GError **error);
void nb_virtio_scsi_free(NbVirtioScsi *scsi);
NbPciDevice *nb_virtio_scsi_pci_device(NbVirtioScsi *scsi);
NbScsiCdrom *nb_virtio_scsi_cdrom(NbVirtioScsi *scsi);

/* One command request; returns the bytes written to its device-writable
 * part (what the used ring reports). Exposed for tests. */
uint32_t nb_virtio_scsi_process(NbVirtioScsi *scsi, const NbVirtqElement *elem);
/* One control request, likewise. */
uint32_t nb_virtio_scsi_process_control(NbVirtioScsi *scsi, const NbVirtqElement *elem);
