/* KVM's coalesced I/O ring: for port or MMIO ranges registered with
 * KVM_REGISTER_COALESCED_MMIO, KVM records the guest's writes in a page it
 * shares with the VMM and resumes the guest at once, instead of exiting to
 * the VMM for each one. The VMM replays them, in order, before it handles the
 * next exit (and now and then, for a guest that stops exiting). Reads of such
 * a range still exit as usual. Made for write-only logs such as the
 * firmware's debug port, where each byte would otherwise cost an exit. */
#pragma once

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One write: pio says port I/O (addr is the port) or MMIO; len is 1 to 8. */
typedef void (*NbCoalescedWriteFunc)(void *ctx, bool pio, uint64_t addr, const uint8_t *data,
                                     unsigned len);

/* The ring's slots in a page of page_size bytes. */
unsigned nb_coalesced_ring_slots(size_t page_size);

/* Replays every write from first to last in the ring of slots entries, and
 * moves first past each before its write runs (KVM may fill the slot again).
 * Entries that cannot be real (a length above 8, an index outside the ring)
 * are dropped; a bad index empties the ring. One thread at a time: the caller
 * locks. Returns the number of writes replayed. */
unsigned nb_coalesced_ring_drain(struct kvm_coalesced_mmio_ring *ring, unsigned slots,
                                 NbCoalescedWriteFunc write, void *ctx);
