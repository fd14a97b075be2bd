/* Split virtqueues (virtio 1.x, section 2.7) over guest memory.
 *
 * The rings live in guest RAM and the guest may change them at any moment:
 * every index, address and length read from them is checked before use. A
 * queue that the driver has corrupted (a descriptor outside RAM, a loop, an
 * index that jumps) is marked broken; the device then stops using it and
 * sets DEVICE_NEEDS_RESET, as the spec allows.
 *
 * A queue is not thread-safe: its owner serialises pop, push and the
 * notification calls (one worker, or a lock around them). */
#pragma once

#include "kvm/guest-memory.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define NB_VIRTIO_ERROR (nb_virtio_error_quark())
GQuark nb_virtio_error_quark(void);

typedef enum {
  NB_VIRTIO_ERROR_BAD_RING,        /* queue size or ring address unusable */
  NB_VIRTIO_ERROR_BAD_DESCRIPTOR,  /* a chain the driver corrupted */
  NB_VIRTIO_ERROR_FAILED,
} NbVirtioError;

/* Largest split queue the spec allows. */
#define NB_VIRTQ_MAX_SIZE      32768
/* Longest indirect table we walk; Linux uses at most a few hundred entries. */
#define NB_VIRTQ_MAX_INDIRECT  1024

/* Descriptor flags and ring flags (spec 2.7.5 - 2.7.8). */
#define NB_VIRTQ_DESC_F_NEXT       1
#define NB_VIRTQ_DESC_F_WRITE      2
#define NB_VIRTQ_DESC_F_INDIRECT   4
#define NB_VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define NB_VIRTQ_USED_F_NO_NOTIFY     1

/* Feature bits the queue itself implements. */
#define NB_VIRTIO_F_INDIRECT_DESC 28
#define NB_VIRTIO_F_EVENT_IDX     29
#define NB_VIRTIO_F_VERSION_1     32

typedef struct {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
} NbVirtqDesc;

typedef struct {
  NbGuestMemory *mem;
  uint16_t size;
  bool ready;
  bool broken;
  bool indirect;        /* VIRTIO_F_INDIRECT_DESC negotiated */
  bool event_idx;       /* VIRTIO_F_EVENT_IDX negotiated */
  uint64_t desc_gpa, avail_gpa, used_gpa;
  /* Host views of the rings, checked once when the queue is enabled: guest
   * RAM never moves, so they stay valid until reset. */
  NbVirtqDesc *desc;
  uint16_t *avail;      /* flags, idx, ring[size], used_event */
  uint16_t *used_hdr;   /* flags, idx */
  uint32_t *used_ring;  /* pairs of (id, len), then avail_event (le16) */
  uint16_t last_avail;  /* next avail entry we will take */
  uint16_t used_idx;    /* our copy of used->idx */
  uint16_t signalled_used;      /* used_idx when we last decided about an interrupt */
  bool signalled_used_valid;
  bool pushed;          /* something was pushed since should_notify last ran */
} NbVirtqueue;

/* One request: a chain split into the parts the device reads (out) and the
 * parts it writes (in), in order. Pointers are into guest RAM. */
typedef struct {
  uint16_t head;
  unsigned n_out, n_in;
  size_t out_len, in_len;
  struct iovec *out;
  struct iovec *in;
  struct iovec iov[];   /* n_out + n_in entries; out and in point in here */
} NbVirtqElement;

typedef enum {
  NB_VIRTQ_POP_EMPTY,
  NB_VIRTQ_POP_OK,
  NB_VIRTQ_POP_BROKEN,  /* queue now broken; the error says why */
  NB_VIRTQ_POP_BAD_BUFFER, /* nb_virtqueue_pop_tolerant only: an unusable chain was taken */
} NbVirtqPopResult;

void nb_virtqueue_init(NbVirtqueue *vq, NbGuestMemory *mem);

/* Checks size (a power of two, 1..NB_VIRTQ_MAX_SIZE) and that every ring
 * lies whole and aligned in RAM, then makes the queue ready. */
bool nb_virtqueue_enable(NbVirtqueue *vq, uint16_t size, uint64_t desc_gpa, uint64_t avail_gpa,
                         uint64_t used_gpa, bool indirect, bool event_idx, GError **error);

/* Back to the state after init: not ready, not broken, indices zero. */
void nb_virtqueue_reset(NbVirtqueue *vq);

/* Takes the next available chain. The element is freed with g_free(). */
NbVirtqPopResult nb_virtqueue_pop(NbVirtqueue *vq, NbVirtqElement **out_elem, GError **error);

/* Like nb_virtqueue_pop, for devices whose requests stand alone (network
 * frames): a chain whose buffers are not in guest RAM, or are empty, costs
 * only that request. It is taken from the ring and NB_VIRTQ_POP_BAD_BUFFER
 * returned with its head in *bad_head, for the device to hand back unused
 * (push with length 0). A corrupt ring (an index that jumps, a head or link
 * beyond the table, a loop, a bad indirect table) still breaks the queue. */
NbVirtqPopResult nb_virtqueue_pop_tolerant(NbVirtqueue *vq, NbVirtqElement **out_elem,
                                           uint16_t *bad_head, GError **error);

/* Puts a chain back as if it had never been taken (the device could not
 * start it yet). Only the most recently popped element may be returned. */
void nb_virtqueue_unpop(NbVirtqueue *vq);

/* Returns a chain to the driver with len bytes written into its in part. */
void nb_virtqueue_push(NbVirtqueue *vq, uint16_t head, uint32_t len);

/* Returns n chains at once: the driver sees them all in one used->idx
 * update (a frame spread over mergeable receive buffers must not be seen
 * half done). */
void nb_virtqueue_push_batch(NbVirtqueue *vq, const uint16_t *heads, const uint32_t *lens,
                             unsigned n);

/* Whether the driver wants an interrupt for what was pushed since the last
 * call (VIRTQ_AVAIL_F_NO_INTERRUPT or used_event); false when nothing was. */
bool nb_virtqueue_should_notify(NbVirtqueue *vq);

/* Asks the driver not to notify while we are draining the queue. */
void nb_virtqueue_disable_notify(NbVirtqueue *vq);
/* Asks for notifications again; returns true when buffers arrived in the
 * meantime, so the caller drains again instead of sleeping. */
bool nb_virtqueue_enable_notify(NbVirtqueue *vq);

/* Whether a chain is waiting (false for a queue not ready or broken). */
bool nb_virtqueue_has_work(NbVirtqueue *vq);

/* Bytes of an iovec list, and copies to/from it starting at offset. */
size_t nb_virtq_iov_size(const struct iovec *iov, unsigned n);
size_t nb_virtq_iov_to_buf(const struct iovec *iov, unsigned n, size_t offset, void *buf, size_t len);
size_t nb_virtq_iov_from_buf(const struct iovec *iov, unsigned n, size_t offset, const void *buf,
                       size_t len);
/* The part [offset, offset + len) of an iovec list as a new list in dst (at
 * most dst_max entries); returns the number of entries, or -1 when it does
 * not fit. */
int nb_virtq_iov_slice(const struct iovec *iov, unsigned n, size_t offset, size_t len,
                 struct iovec *dst, unsigned dst_max);
