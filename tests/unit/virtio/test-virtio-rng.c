/* virtio-rng gives the guest random bytes in every buffer it offers. */
#include "virtio-test-driver.h"
#include "virtio/virtio-rng.h"

#include <string.h>

static void
test_entropy(void)
{
  TestDriver td;
  td_init(&td);
  g_autoptr(GError) error = NULL;
  NbVirtioRng *rng = nb_virtio_rng_new(td.mem, &error);
  g_assert_no_error(error);
  td_add(&td, nb_virtio_rng_pci_device(rng));
  g_assert_cmpuint(td_cfg_read(&td, NB_PCI_DEVICE_ID, 2), ==, 0x1044);
  g_assert_true(td_negotiate(&td, (UINT64_C(1) << NB_VIRTIO_F_VERSION_1) |
                                  (UINT64_C(1) << NB_VIRTIO_F_EVENT_IDX)));
  td_setup_queue(&td, 0, 8);
  td_driver_ok(&td);

  /* Two buffers in one chain, zeroed first. */
  uint64_t a = td_alloc(&td, 64), b = td_alloc(&td, 4096);
  memset(td_ptr(&td, a, 64), 0, 64);
  memset(td_ptr(&td, b, 4096), 0, 4096);
  TdBuf bufs[] = { { a, 64, true }, { b, 4096, true } };
  uint16_t head = td_submit(&td, 0, bufs, 2);
  td_kick(&td, 0);
  uint32_t id, len;
  g_assert_true(td_wait_used(&td, 0, &id, &len, 5000));
  g_assert_cmpuint(id, ==, head);
  g_assert_cmpuint(len, ==, 64 + 4096);
  /* 4 KiB of zeroes from a working generator: never. Bytes vary too. */
  const uint8_t *p = td_ptr(&td, b, 4096);
  unsigned zeros = 0, distinct = 0;
  bool seen[256] = { false };
  for (unsigned i = 0; i < 4096; i++) {
    zeros += p[i] == 0;
    if (!seen[p[i]]) {
      seen[p[i]] = true;
      distinct++;
    }
  }
  g_assert_cmpuint(zeros, <, 64);
  g_assert_cmpuint(distinct, >, 200);

  /* A huge buffer gets at most the per-request cap, then more on request. */
  uint64_t big = td_alloc(&td, 256 * 1024);
  TdBuf one[] = { { big, 256 * 1024, true } };
  head = td_submit(&td, 0, one, 1);
  td_kick(&td, 0);
  g_assert_true(td_wait_used(&td, 0, &id, &len, 5000));
  g_assert_cmpuint(len, ==, NB_VIRTIO_RNG_MAX_REQUEST);

  /* A readable-only chain gets nothing, and the device goes on. */
  TdBuf ro[] = { { a, 64, false } };
  head = td_submit(&td, 0, ro, 1);
  td_kick(&td, 0);
  g_assert_true(td_wait_used(&td, 0, &id, &len, 5000));
  g_assert_cmpuint(len, ==, 0);

  nb_virtio_rng_free(rng);
  td_clear(&td);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/virtio-rng/entropy", test_entropy);
  return g_test_run();
}
