#include "kvm/coalesced-ring.h"

#include <string.h>

unsigned
nb_coalesced_ring_slots(size_t page_size)
{
  /* As KVM sizes it: what fits in the page after first and last. */
  if (page_size <= sizeof(struct kvm_coalesced_mmio_ring))
    return 0;
  return (unsigned)((page_size - sizeof(struct kvm_coalesced_mmio_ring)) /
                    sizeof(struct kvm_coalesced_mmio));
}

unsigned
nb_coalesced_ring_drain(struct kvm_coalesced_mmio_ring *ring, unsigned slots,
                        NbCoalescedWriteFunc write, void *ctx)
{
  if (ring == NULL || slots == 0)
    return 0;
  unsigned n = 0;
  uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_RELAXED);
  /* Acquire: the entry KVM filled is visible once last says so. */
  uint32_t last = __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
  while (first != last) {
    if (first >= slots || last >= slots) {
      /* Not a ring KVM keeps: start it afresh rather than read past it. */
      __atomic_store_n(&ring->first, last < slots ? last : 0, __ATOMIC_RELEASE);
      break;
    }
    struct kvm_coalesced_mmio entry;
    memcpy(&entry, &ring->coalesced_mmio[first], sizeof entry);
    first = (first + 1) % slots;
    /* Release: KVM may reuse the slot only after the copy above. */
    __atomic_store_n(&ring->first, first, __ATOMIC_RELEASE);
    if (entry.len >= 1 && entry.len <= sizeof entry.data) {
      write(ctx, entry.pio != 0, entry.phys_addr, entry.data, entry.len);
      n++;
    }
    if (first == last)
      last = __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
  }
  return n;
}
