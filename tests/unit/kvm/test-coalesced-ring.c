#include "kvm/coalesced-ring.h"

#include <glib.h>
#include <string.h>

/* A ring laid out as KVM lays it in its page. */
#define PAGE 4096

typedef struct {
  GString *log;      /* "p402:41 m1000:0102 ..." */
} Seen;

static void
record(void *ctx, bool pio, uint64_t addr, const uint8_t *data, unsigned len)
{
  Seen *seen = ctx;
  g_string_append_printf(seen->log, "%s%" G_GINT64_MODIFIER "x:", pio ? "p" : "m", addr);
  for (unsigned i = 0; i < len; i++)
    g_string_append_printf(seen->log, "%02x", data[i]);
  g_string_append_c(seen->log, ' ');
}

static struct kvm_coalesced_mmio_ring *
ring_new(void)
{
  return g_malloc0(PAGE);
}

/* What KVM does for one write: fill the slot at last, then move last. */
static void
kvm_put(struct kvm_coalesced_mmio_ring *ring, unsigned slots, bool pio, uint64_t addr,
        const void *data, unsigned len)
{
  struct kvm_coalesced_mmio *e = &ring->coalesced_mmio[ring->last];
  memset(e, 0, sizeof *e);
  e->phys_addr = addr;
  e->len = len;
  e->pio = pio;
  memcpy(e->data, data, len);
  ring->last = (ring->last + 1) % slots;
}

static void
test_slots(void)
{
  /* KVM_COALESCED_MMIO_MAX on 4 KiB pages: (4096 - 8) / 24. */
  g_assert_cmpuint(nb_coalesced_ring_slots(4096), ==, 170);
  g_assert_cmpuint(nb_coalesced_ring_slots(4), ==, 0);
}

static void
test_in_order(void)
{
  struct kvm_coalesced_mmio_ring *ring = ring_new();
  unsigned slots = nb_coalesced_ring_slots(PAGE);
  Seen seen = { g_string_new(NULL) };
  g_assert_cmpuint(nb_coalesced_ring_drain(ring, slots, record, &seen), ==, 0);

  kvm_put(ring, slots, true, 0x402, "S", 1);
  kvm_put(ring, slots, true, 0x402, "e", 1);
  uint16_t w = 0x0201;
  kvm_put(ring, slots, false, 0x1000, &w, 2);
  g_assert_cmpuint(nb_coalesced_ring_drain(ring, slots, record, &seen), ==, 3);
  g_assert_cmpstr(seen.log->str, ==, "p402:53 p402:65 m1000:0102 ");
  g_assert_cmpuint(ring->first, ==, 3);
  g_assert_cmpuint(ring->first, ==, ring->last);
  /* Drained is drained. */
  g_assert_cmpuint(nb_coalesced_ring_drain(ring, slots, record, &seen), ==, 0);
  g_string_free(seen.log, TRUE);
  g_free(ring);
}

static void
test_wraps(void)
{
  struct kvm_coalesced_mmio_ring *ring = ring_new();
  unsigned slots = nb_coalesced_ring_slots(PAGE);
  ring->first = ring->last = slots - 2;
  Seen seen = { g_string_new(NULL) };
  for (uint8_t c = 'a'; c < 'f'; c++)
    kvm_put(ring, slots, true, 0x402, &c, 1);
  g_assert_cmpuint(ring->last, ==, 3);
  g_assert_cmpuint(nb_coalesced_ring_drain(ring, slots, record, &seen), ==, 5);
  g_assert_cmpstr(seen.log->str, ==, "p402:61 p402:62 p402:63 p402:64 p402:65 ");
  g_assert_cmpuint(ring->first, ==, 3);
  g_string_free(seen.log, TRUE);
  g_free(ring);
}

/* A write a device makes from the callback that lands in the ring (another
 * vCPU's) is replayed in the same drain. */
static struct kvm_coalesced_mmio_ring *reentry_ring;
static void
record_and_add(void *ctx, bool pio, uint64_t addr, const uint8_t *data, unsigned len)
{
  record(ctx, pio, addr, data, len);
  if (data[0] == 'x')
    kvm_put(reentry_ring, nb_coalesced_ring_slots(PAGE), true, 0x402, "y", 1);
}

static void
test_filled_while_draining(void)
{
  struct kvm_coalesced_mmio_ring *ring = reentry_ring = ring_new();
  unsigned slots = nb_coalesced_ring_slots(PAGE);
  Seen seen = { g_string_new(NULL) };
  kvm_put(ring, slots, true, 0x402, "x", 1);
  g_assert_cmpuint(nb_coalesced_ring_drain(ring, slots, record_and_add, &seen), ==, 2);
  g_assert_cmpstr(seen.log->str, ==, "p402:78 p402:79 ");
  g_string_free(seen.log, TRUE);
  g_free(ring);
}

/* The page is shared memory: indexes or lengths that KVM would never write
 * are dropped, and nothing is read outside the ring. */
static void
test_bad_entries(void)
{
  struct kvm_coalesced_mmio_ring *ring = ring_new();
  unsigned slots = nb_coalesced_ring_slots(PAGE);
  Seen seen = { g_string_new(NULL) };
  kvm_put(ring, slots, true, 0x402, "ok", 2);
  ring->coalesced_mmio[0].len = 9;
  kvm_put(ring, slots, true, 0x402, "z", 1);
  g_assert_cmpuint(nb_coalesced_ring_drain(ring, slots, record, &seen), ==, 1);
  g_assert_cmpstr(seen.log->str, ==, "p402:7a ");

  ring->first = slots + 5;
  ring->last = 2;
  g_assert_cmpuint(nb_coalesced_ring_drain(ring, slots, record, &seen), ==, 0);
  g_assert_cmpuint(ring->first, ==, 2);
  ring->first = 0;
  ring->last = 100000;
  g_assert_cmpuint(nb_coalesced_ring_drain(ring, slots, record, &seen), ==, 0);
  g_assert_cmpuint(ring->first, ==, 0);
  g_assert_cmpuint(nb_coalesced_ring_drain(NULL, slots, record, &seen), ==, 0);
  g_assert_cmpstr(seen.log->str, ==, "p402:7a ");
  g_string_free(seen.log, TRUE);
  g_free(ring);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/coalesced-ring/slots", test_slots);
  g_test_add_func("/coalesced-ring/in-order", test_in_order);
  g_test_add_func("/coalesced-ring/wraps", test_wraps);
  g_test_add_func("/coalesced-ring/filled-while-draining", test_filled_while_draining);
  g_test_add_func("/coalesced-ring/bad-entries", test_bad_entries);
  return g_test_run();
}
