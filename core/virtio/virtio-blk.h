/* virtio-blk (spec 5.2) over an NbBlock: one PCI device per disk.
 *
 * Requests are taken from the queue on the device's worker thread and run
 * on a small pool of threads, several at a time; each completes with the
 * status the spec asks for: IOERR for host I/O errors, sectors beyond the
 * disk, writes to a read-only disk and malformed requests; UNSUPP for
 * requests the device does not implement. A flush completes only after the
 * data reached the host disk. */
#pragma once

#include "block/block.h"
#include "hw/pci.h"
#include "kvm/guest-memory.h"
#include "virtio/virtqueue.h"

#include <glib.h>
#include <stdint.h>

/* Request types and status values (spec 5.2.6). */
#define NB_VIRTIO_BLK_T_IN           0
#define NB_VIRTIO_BLK_T_OUT          1
#define NB_VIRTIO_BLK_T_FLUSH        4
#define NB_VIRTIO_BLK_T_GET_ID       8
#define NB_VIRTIO_BLK_T_DISCARD      11
#define NB_VIRTIO_BLK_T_WRITE_ZEROES 13

#define NB_VIRTIO_BLK_S_OK     0
#define NB_VIRTIO_BLK_S_IOERR  1
#define NB_VIRTIO_BLK_S_UNSUPP 2

/* Feature bits. */
#define NB_VIRTIO_BLK_F_SIZE_MAX     1
#define NB_VIRTIO_BLK_F_SEG_MAX      2
#define NB_VIRTIO_BLK_F_RO           5
#define NB_VIRTIO_BLK_F_BLK_SIZE     6
#define NB_VIRTIO_BLK_F_FLUSH        9
#define NB_VIRTIO_BLK_F_DISCARD      13
#define NB_VIRTIO_BLK_F_WRITE_ZEROES 14

#define NB_VIRTIO_BLK_ID_BYTES   20
#define NB_VIRTIO_BLK_QUEUE_SIZE 256
/* Limits advertised in the config space. */
#define NB_VIRTIO_BLK_SEG_MAX          (NB_VIRTIO_BLK_QUEUE_SIZE - 2)
#define NB_VIRTIO_BLK_SIZE_MAX         (1u << 20)
#define NB_VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 22)   /* 2 GiB per request */
#define NB_VIRTIO_BLK_MAX_DISCARD_SEG  1

typedef struct NbVirtioBlk NbVirtioBlk;

/* A disk for the guest. The disk is read-only for the guest when block was
 * opened read-only. serial (may be NULL) is what GET_ID returns, at most 20
 * bytes. The device does not take ownership of block: close it after
 * nb_virtio_blk_free(). */
NbVirtioBlk *nb_virtio_blk_new(NbGuestMemory *mem, NbBlock *block, const char *serial,
                               GError **error);
void nb_virtio_blk_free(NbVirtioBlk *blk);

/* What nb_pci_bus_add takes. */
NbPciDevice *nb_virtio_blk_pci_device(NbVirtioBlk *blk);

/* How many requests run at once (default 4); 0 runs them one by one on the
 * device's worker thread. For benchmarks: call before the guest starts. */
void nb_virtio_blk_set_threads(NbVirtioBlk *blk, unsigned threads);

/* Runs one request now, on the calling thread: checks and parses it, does
 * the I/O, writes the status byte. Returns the used length (bytes written to
 * the request's device-writable part). For tests and fuzzing; the device
 * itself calls it from its pool. */
uint32_t nb_virtio_blk_process(NbVirtioBlk *blk, const NbVirtqElement *elem);
