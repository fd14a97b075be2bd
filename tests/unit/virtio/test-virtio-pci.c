/* The virtio-pci transport, driven through PCI config space and the BAR as a
 * guest driver would, with a small echo device behind it. */
#include "virtio-test-driver.h"

#include <string.h>

#define ECHO_QUEUES 2
#define ECHO_FEATURE_BIT 3

typedef struct {
  NbVirtioPci *vp;
  uint8_t config[8];
  unsigned resets, activations;
  gint handled;
  gint settled;        /* handled, as of the end of the last worker run */
  unsigned delay_us;   /* per request, to have work in progress during a reset */
} Echo;

static void
echo_config_read(void *ctx, unsigned offset, void *data, unsigned len)
{
  Echo *e = ctx;
  memcpy(data, e->config + offset, len);
}

static void
echo_config_write(void *ctx, unsigned offset, const void *data, unsigned len)
{
  Echo *e = ctx;
  memcpy(e->config + offset, data, len);
}

/* Copies what it reads into what it writes, reversed. */
static void
echo_queue_notify(void *ctx, unsigned queue)
{
  Echo *e = ctx;
  NbVirtqueue *vq = nb_virtio_pci_queue(e->vp, queue);
  do {
    nb_virtqueue_disable_notify(vq);
    for (;;) {
      g_autoptr(GError) error = NULL;
      NbVirtqElement *elem = NULL;
      NbVirtqPopResult r = nb_virtqueue_pop(vq, &elem, &error);
      if (r == NB_VIRTQ_POP_BROKEN) {
        nb_virtio_pci_set_broken(e->vp, error->message);
        return;
      }
      if (r == NB_VIRTQ_POP_EMPTY)
        break;
      if (e->delay_us)
        g_usleep(e->delay_us);
      uint8_t buf[256];
      size_t n = nb_virtq_iov_to_buf(elem->out, elem->n_out, 0, buf, MIN(sizeof buf, elem->out_len));
      for (size_t i = 0; i < n / 2; i++) {
        uint8_t t = buf[i];
        buf[i] = buf[n - 1 - i];
        buf[n - 1 - i] = t;
      }
      size_t w = nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, buf, n);
      nb_virtqueue_push(vq, elem->head, (uint32_t)w);
      g_atomic_int_inc(&e->handled);
      g_free(elem);
    }
  } while (nb_virtqueue_enable_notify(vq));
  if (nb_virtqueue_should_notify(vq))
    nb_virtio_pci_notify_queue(e->vp, queue);
  g_atomic_int_set(&e->settled, g_atomic_int_get(&e->handled));
}

static void
echo_activate(void *ctx)
{
  Echo *e = ctx;
  e->activations++;
}

static void
echo_reset(void *ctx)
{
  Echo *e = ctx;
  e->resets++;
}

static const NbVirtioDeviceOps echo_ops = {
  echo_config_read, echo_config_write, echo_queue_notify, echo_activate, echo_reset,
};

typedef struct {
  TestDriver td;
  Echo echo;
} Fixture;

#define FEATURES_ALL ((UINT64_C(1) << NB_VIRTIO_F_VERSION_1) | \
                      (UINT64_C(1) << NB_VIRTIO_F_INDIRECT_DESC) | \
                      (UINT64_C(1) << NB_VIRTIO_F_EVENT_IDX) | (UINT64_C(1) << ECHO_FEATURE_BIT))

static void
setup(Fixture *f, gconstpointer data)
{
  td_init(&f->td);
  memcpy(f->echo.config, "ABCDEFGH", 8);
  NbVirtioDeviceInfo info = {
    .name = "echo", .device_id = 42, .pci_class = 0xff0000,
    .features = UINT64_C(1) << ECHO_FEATURE_BIT, .num_queues = ECHO_QUEUES, .queue_size = 64,
    .config_size = 8, .ops = &echo_ops, .ctx = &f->echo,
  };
  g_autoptr(GError) error = NULL;
  f->echo.vp = nb_virtio_pci_new(f->td.mem, &info, &error);
  g_assert_no_error(error);
  td_add(&f->td, nb_virtio_pci_device(f->echo.vp));
}

static void
teardown(Fixture *f, gconstpointer data)
{
  nb_virtio_pci_free(f->echo.vp);
  td_clear(&f->td);
}

/* Sets the device up with both queues and sends "hello" through queue q. */
static void
start(Fixture *f, uint64_t features)
{
  g_assert_true(td_negotiate(&f->td, features));
  for (unsigned q = 0; q < ECHO_QUEUES; q++)
    td_setup_queue(&f->td, q, 16);
  td_driver_ok(&f->td);
  g_assert_cmpuint(td_status(&f->td) & NB_VIRTIO_STATUS_DRIVER_OK, !=, 0);
}

static uint16_t
send_hello(Fixture *f, unsigned q, uint64_t *reply)
{
  uint64_t out = td_alloc(&f->td, 5), in = td_alloc(&f->td, 16);
  memcpy(td_ptr(&f->td, out, 5), "hello", 5);
  TdBuf bufs[] = { { out, 5, false }, { in, 16, true } };
  *reply = in;
  return td_submit(&f->td, q, bufs, 2);
}

static void
expect_hello(Fixture *f, unsigned q, uint16_t head, uint64_t reply)
{
  uint32_t id = 0, len = 0;
  g_assert_true(td_wait_used(&f->td, q, &id, &len, 5000));
  g_assert_cmpuint(id, ==, head);
  g_assert_cmpuint(len, ==, 5);
  g_assert_cmpmem(td_ptr(&f->td, reply, 5), 5, "olleh", 5);
}

/* Waits until the worker has finished with every request it took, its
 * interrupt decision included, so "no interrupt" checks are not early. */
static void
settle(Fixture *f)
{
  for (unsigned i = 0; i < 5000; i++) {
    if (g_atomic_int_get(&f->echo.settled) >= g_atomic_int_get(&f->echo.handled))
      return;
    g_usleep(1000);
  }
  g_assert_not_reached();
}

static void
test_identity(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  g_assert_cmpuint(td_cfg_read(td, NB_PCI_VENDOR_ID, 2), ==, 0x1af4);
  g_assert_cmpuint(td_cfg_read(td, NB_PCI_DEVICE_ID, 2), ==, 0x1040 + 42);
  g_assert_cmpuint(td_cfg_read(td, NB_PCI_REVISION, 1), ==, 1);
  g_assert_cmpuint(td_cfg_read(td, NB_PCI_SUBSYSTEM_VENDOR, 2), ==, 0x1af4);
  g_assert_cmpuint(td_cfg_read(td, NB_PCI_STATUS, 2) & NB_PCI_STATUS_CAP_LIST, !=, 0);

  static const struct { uint8_t type; uint32_t off, len; } caps[] = {
    { 1, NB_VIRTIO_PCI_COMMON_OFF, NB_VIRTIO_PCI_COMMON_SIZE },
    { 2, NB_VIRTIO_PCI_NOTIFY_OFF, 4 * ECHO_QUEUES },
    { 3, NB_VIRTIO_PCI_ISR_OFF, 1 },
    { 4, NB_VIRTIO_PCI_DEVICE_OFF, 8 },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(caps); i++) {
    unsigned p = td_find_virtio_cap(td, caps[i].type);
    g_assert_cmpuint(p, !=, 0);
    g_assert_cmpuint(td_cfg_read(td, p + 2, 1), ==, caps[i].type == 2 ? 20 : 16);
    g_assert_cmpuint(td_cfg_read(td, p + 4, 1), ==, NB_VIRTIO_PCI_BAR);
    g_assert_cmpuint(td_cfg_read(td, p + 8, 4), ==, caps[i].off);
    g_assert_cmpuint(td_cfg_read(td, p + 12, 4), ==, caps[i].len);
    if (caps[i].type == 2)
      g_assert_cmpuint(td_cfg_read(td, p + 16, 4), ==, NB_VIRTIO_PCI_NOTIFY_MULT);
  }
  unsigned msix = td_find_cap(td, NB_PCI_CAP_ID_MSIX);
  g_assert_cmpuint(msix, !=, 0);
  g_assert_cmpuint(td_cfg_read(td, msix + 2, 2), ==, ECHO_QUEUES);   /* table size - 1 */
  g_assert_cmpuint(td_cfg_read(td, msix + 4, 4), ==, NB_VIRTIO_PCI_MSIX_OFF | NB_VIRTIO_PCI_BAR);
  g_assert_cmpuint(td_cfg_read(td, msix + 8, 4), ==, NB_VIRTIO_PCI_PBA_OFF | NB_VIRTIO_PCI_BAR);
  /* The table size is not the guest's to change. */
  td_cfg_write(td, msix + 2, 0x3ff, 2);
  g_assert_cmpuint(td_cfg_read(td, msix + 2, 2), ==, ECHO_QUEUES);

  /* BAR sizing: all ones reads back the size mask. */
  uint32_t bar = td_cfg_read(td, NB_PCI_BAR0, 4);
  td_cfg_write(td, NB_PCI_BAR0, 0xffffffff, 4);
  g_assert_cmpuint(td_cfg_read(td, NB_PCI_BAR0, 4), ==, (uint32_t)~(NB_VIRTIO_PCI_BAR_SIZE - 1));
  td_cfg_write(td, NB_PCI_BAR0, bar, 4);
}

static void
test_device_config(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF, 4), ==, 0x44434241);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 6, 2), ==, 0x4847);
  td_bar_write(td, NB_VIRTIO_PCI_DEVICE_OFF + 1, 'z', 1);
  g_assert_cmpmem(f->echo.config, 8, "AzCDEFGH", 8);
  /* Beyond the device's config: reads zero, writes go nowhere. */
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 6, 4), ==, 0);
  td_bar_write(td, NB_VIRTIO_PCI_DEVICE_OFF + 8, 0xffffffff, 4);
  g_assert_cmpmem(f->echo.config, 8, "AzCDEFGH", 8);
}

static void
test_features(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  g_assert_cmpuint(td_device_features(td), ==, FEATURES_ALL);
  /* Select values past the feature words read zero. */
  td_bar_write(td, 0x00, 7, 4);
  g_assert_cmpuint(td_bar_read(td, 0x04, 4), ==, 0);

  /* A modern device refuses drivers without VERSION_1 ... */
  g_assert_false(td_negotiate(td, UINT64_C(1) << NB_VIRTIO_F_EVENT_IDX));
  /* ... and features it did not offer ... */
  g_assert_false(td_negotiate(td, FEATURES_ALL | (UINT64_C(1) << 20)));
  /* ... and DRIVER_OK without FEATURES_OK. */
  td_driver_ok(td);
  g_assert_cmpuint(td_status(td) & NB_VIRTIO_STATUS_DRIVER_OK, ==, 0);
  g_assert_cmpuint(f->echo.activations, ==, 0);

  g_assert_true(td_negotiate(td, (UINT64_C(1) << NB_VIRTIO_F_VERSION_1) | (1 << ECHO_FEATURE_BIT)));
  g_assert_true(nb_virtio_pci_has_feature(f->echo.vp, ECHO_FEATURE_BIT));
  g_assert_false(nb_virtio_pci_has_feature(f->echo.vp, NB_VIRTIO_F_EVENT_IDX));
  /* Features are frozen once accepted. */
  td_bar_write(td, 0x08, 0, 4);
  td_bar_write(td, 0x0c, 0xffffffff, 4);
  g_assert_cmpuint(td_bar_read(td, 0x0c, 4), ==, 1 << ECHO_FEATURE_BIT);
  td_driver_ok(td);
  g_assert_cmpuint(f->echo.activations, ==, 1);
  g_assert_true(nb_virtio_pci_is_active(f->echo.vp));

  /* Reset clears it all and tells the device. */
  unsigned resets = f->echo.resets;
  td_reset(td);
  g_assert_cmpuint(f->echo.resets, ==, resets + 1);
  g_assert_cmpuint(nb_virtio_pci_driver_features(f->echo.vp), ==, 0);
  g_assert_false(nb_virtio_pci_is_active(f->echo.vp));
}

static void
test_queue_registers(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  g_assert_cmpuint(td_bar_read(td, 0x12, 2), ==, ECHO_QUEUES);
  for (unsigned q = 0; q < ECHO_QUEUES; q++) {
    td_bar_write(td, 0x16, q, 2);
    g_assert_cmpuint(td_bar_read(td, 0x18, 2), ==, 64);
    g_assert_cmpuint(td_bar_read(td, 0x1e, 2), ==, q);   /* notify offset */
    g_assert_cmpuint(td_bar_read(td, 0x1a, 2), ==, NB_VIRTIO_MSI_NO_VECTOR);
    g_assert_cmpuint(td_bar_read(td, 0x1c, 2), ==, 0);
  }
  /* A queue that does not exist has size 0 and ignores writes. */
  td_bar_write(td, 0x16, ECHO_QUEUES, 2);
  g_assert_cmpuint(td_bar_read(td, 0x18, 2), ==, 0);
  td_bar_write(td, 0x1c, 1, 2);
  g_assert_cmpuint(td_bar_read(td, 0x1c, 2), ==, 0);
  /* 64-bit addresses in two halves. */
  td_bar_write(td, 0x16, 1, 2);
  td_bar_write(td, 0x20, 0x12345000, 4);
  td_bar_write(td, 0x24, 0x9, 4);
  g_assert_cmpuint(td_bar_read(td, 0x20, 8), ==, UINT64_C(0x912345000));
  /* Vectors the MSI-X table does not have read back as NO_VECTOR. */
  td_bar_write(td, 0x1a, ECHO_QUEUES + 1, 2);
  g_assert_cmpuint(td_bar_read(td, 0x1a, 2), ==, NB_VIRTIO_MSI_NO_VECTOR);
  td_bar_write(td, 0x1a, ECHO_QUEUES, 2);
  g_assert_cmpuint(td_bar_read(td, 0x1a, 2), ==, ECHO_QUEUES);
  td_bar_write(td, 0x10, 99, 2);
  g_assert_cmpuint(td_bar_read(td, 0x10, 2), ==, NB_VIRTIO_MSI_NO_VECTOR);
}

static void
test_bad_queue_size(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  g_assert_true(td_negotiate(td, FEATURES_ALL));
  td_bar_write(td, 0x16, 0, 2);
  td_bar_write(td, 0x18, 12, 2);   /* not a power of two */
  td_bar_write(td, 0x20, td_alloc(td, 4096), 8);
  td_bar_write(td, 0x28, td_alloc(td, 4096), 8);
  td_bar_write(td, 0x30, td_alloc(td, 4096), 8);
  td_bar_write(td, 0x1c, 1, 2);
  g_assert_cmpuint(td_bar_read(td, 0x1c, 2), ==, 0);
  g_assert_cmpuint(td_status(td) & NB_VIRTIO_STATUS_NEEDS_RESET, !=, 0);
  /* Reset recovers. */
  start(f, FEATURES_ALL);
  g_assert_cmpuint(td_status(td) & NB_VIRTIO_STATUS_NEEDS_RESET, ==, 0);
}

static void
test_bad_ring_address(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  g_assert_true(td_negotiate(td, FEATURES_ALL));
  td_bar_write(td, 0x16, 1, 2);
  td_bar_write(td, 0x18, 16, 2);
  td_bar_write(td, 0x20, 40ull << 20, 8);   /* in the hole */
  td_bar_write(td, 0x28, td_alloc(td, 4096), 8);
  td_bar_write(td, 0x30, td_alloc(td, 4096), 8);
  td_bar_write(td, 0x1c, 1, 2);
  g_assert_cmpuint(td_status(td) & NB_VIRTIO_STATUS_NEEDS_RESET, !=, 0);
  td_driver_ok(td);
  g_assert_false(nb_virtio_pci_is_active(f->echo.vp));
}

static void
test_intx(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  start(f, FEATURES_ALL);
  unsigned gsi = td->dev->gsi;
  g_assert_false(td->irq_state.line[gsi]);
  uint64_t reply;
  uint16_t head = send_hello(f, 1, &reply);
  td_kick(td, 1);
  expect_hello(f, 1, head, reply);
  /* The interrupt is raised after the used entry; give it a moment. */
  for (unsigned i = 0; i < 1000 && !td->irq_state.line[gsi]; i++)
    g_usleep(1000);
  g_assert_true(td->irq_state.line[gsi]);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_ISR_OFF, 1), ==, 1);
  g_assert_false(td->irq_state.line[gsi]);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_ISR_OFF, 1), ==, 0);
  /* INTx disabled in the command register keeps the line low. */
  td_cfg_write(td, NB_PCI_COMMAND, td_cfg_read(td, NB_PCI_COMMAND, 2) | NB_PCI_COMMAND_INTX_OFF, 2);
  head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
  settle(f);
  g_assert_false(td->irq_state.line[gsi]);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_ISR_OFF, 1), ==, 1);
  g_assert_cmpuint(td->irq_state.msi_sent, ==, 0);
}

static void
test_ioeventfd(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  g_assert_cmpuint(td->irq_state.ioeventfds, ==, ECHO_QUEUES);
  for (unsigned i = 0; i < ECHO_QUEUES; i++)
    g_assert_cmpuint(td->irq_state.ioeventfd[i].addr, ==,
                     td->bar + NB_VIRTIO_PCI_NOTIFY_OFF + 4 * i);
  start(f, FEATURES_ALL);
  /* The notify arrives the way KVM delivers it: on the eventfd, no exit. */
  uint64_t reply;
  uint16_t head = send_hello(f, 1, &reply);
  int efd = -1;
  for (unsigned i = 0; i < td->irq_state.ioeventfds; i++)
    if (td->irq_state.ioeventfd[i].addr == td->bar + NB_VIRTIO_PCI_NOTIFY_OFF + 4)
      efd = td->irq_state.ioeventfd[i].efd;
  g_assert_cmpint(efd, >=, 0);
  uint64_t one = 1;
  g_assert_cmpint(write(efd, &one, 8), ==, 8);
  expect_hello(f, 1, head, reply);

  /* The guest moves the BAR: the doorbells follow it. */
  uint64_t new_bar = td->bar + 0x100000;
  td_cfg_write(td, NB_PCI_BAR0, (uint32_t)new_bar, 4);
  td->bar = new_bar;
  g_assert_cmpuint(td->irq_state.ioeventfds, ==, ECHO_QUEUES);
  for (unsigned i = 0; i < ECHO_QUEUES; i++)
    g_assert_cmpuint(td->irq_state.ioeventfd[i].addr & ~UINT64_C(0xf), ==,
                     (new_bar + NB_VIRTIO_PCI_NOTIFY_OFF + 4 * i) & ~UINT64_C(0xf));
  head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
  /* Memory decoding off: no doorbells at all. */
  td_cfg_write(td, NB_PCI_COMMAND, td_cfg_read(td, NB_PCI_COMMAND, 2) & ~NB_PCI_COMMAND_MEMORY, 2);
  g_assert_cmpuint(td->irq_state.ioeventfds, ==, 0);
}

static void
test_no_ioeventfd(Fixture *f, gconstpointer data)
{
  /* Without ioeventfd the trapped write still reaches the worker. */
  TestDriver *td = &f->td;
  td->irq_state.fail_ioeventfd = true;
  td_cfg_write(td, NB_PCI_BAR0, (uint32_t)(td->bar + 0x200000), 4);
  td->bar += 0x200000;
  g_assert_cmpuint(td->irq_state.ioeventfds, ==, 0);
  start(f, FEATURES_ALL);
  uint64_t reply;
  uint16_t head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
}

static unsigned
wait_irqfd(TestDriver *td, unsigned route)
{
  for (unsigned i = 0; i < 2000; i++) {
    unsigned n = td_irqfd_count(td, route);
    if (n)
      return n;
    g_usleep(500);
  }
  return 0;
}

static void
test_msix(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  start(f, FEATURES_ALL);
  td_msix_enable(td, ECHO_QUEUES + 1);
  td_set_queue_vector(td, 0, 1);
  td_set_queue_vector(td, 1, 2);
  uint64_t reply;
  uint16_t head = send_hello(f, 1, &reply);
  td_kick(td, 1);
  expect_hello(f, 1, head, reply);
  g_assert_cmpuint(wait_irqfd(td, 0), ==, 1);
  g_assert_cmpuint(td->irq_state.routes, ==, 1);
  g_assert_cmpuint(td->irq_state.route[0].addr, ==, 0xfee00000);
  g_assert_cmpuint(td->irq_state.route[0].data, ==, 0x42);   /* vector 2 */
  g_assert_false(td->irq_state.line[td->dev->gsi]);

  /* Masked entry: the interrupt waits in the PBA until unmasked. */
  td_bar_write(td, NB_VIRTIO_PCI_MSIX_OFF + 16 * 2 + 12, 1, 4);
  head = send_hello(f, 1, &reply);
  td_kick(td, 1);
  expect_hello(f, 1, head, reply);
  settle(f);
  g_assert_cmpuint(td_irqfd_count(td, 0), ==, 0);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_PBA_OFF, 8), ==, 1u << 2);
  /* A new message while masked is used when it is delivered. */
  td_bar_write(td, NB_VIRTIO_PCI_MSIX_OFF + 16 * 2 + 8, 0x77, 4);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_MSIX_OFF + 16 * 2 + 8, 4), ==, 0x77);
  td_bar_write(td, NB_VIRTIO_PCI_MSIX_OFF + 16 * 2 + 12, 0, 4);
  g_assert_cmpuint(td_irqfd_count(td, 0), ==, 1);
  g_assert_cmpuint(td->irq_state.route[0].data, ==, 0x77);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_PBA_OFF, 8), ==, 0);

  /* Function mask in config space works the same way. */
  unsigned cap = td_find_cap(td, NB_PCI_CAP_ID_MSIX);
  td_cfg_write(td, cap + 2, 0xc000, 2);
  head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
  settle(f);
  g_assert_cmpuint(td->irq_state.routes, ==, 1);   /* vector 1 not yet routed */
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_PBA_OFF, 8), ==, 1u << 1);
  td_cfg_write(td, cap + 2, 0x8000, 2);
  g_assert_cmpuint(td->irq_state.routes, ==, 2);
  g_assert_cmpuint(td->irq_state.route[1].data, ==, 0x41);
  g_assert_cmpuint(td_irqfd_count(td, 1), ==, 1);

  /* NO_VECTOR: no interrupt at all. */
  td_set_queue_vector(td, 0, NB_VIRTIO_MSI_NO_VECTOR);
  head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
  settle(f);
  g_assert_cmpuint(td_irqfd_count(td, 1), ==, 0);
  g_assert_cmpuint(td_bar_read(td, NB_VIRTIO_PCI_ISR_OFF, 1), ==, 0);
}

static void
test_broken_chain(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  start(f, FEATURES_ALL);
  td_msix_enable(td, ECHO_QUEUES + 1);
  td_bar_write(td, 0x10, 0, 2);   /* config changes on vector 0 */
  td_set_queue_vector(td, 0, 1);
  /* A descriptor in the hole between the RAM regions. */
  TdBuf bad[] = { { 40ull << 20, 16, false } };
  td_submit(td, 0, bad, 1);
  td_kick(td, 0);
  for (unsigned i = 0; i < 2000 && !(td_status(td) & NB_VIRTIO_STATUS_NEEDS_RESET); i++)
    g_usleep(500);
  g_assert_cmpuint(td_status(td) & NB_VIRTIO_STATUS_NEEDS_RESET, !=, 0);
  g_assert_cmpuint(wait_irqfd(td, 0), ==, 1);   /* config interrupt */
  g_assert_cmpuint(td->irq_state.route[0].data, ==, 0x40);
  g_assert_cmpuint(td_used_idx(td, 0), ==, 0);
  /* The other queue is stopped too until reset. */
  uint64_t reply;
  send_hello(f, 1, &reply);
  td_kick(td, 1);
  g_usleep(20000);
  g_assert_cmpuint(td_used_idx(td, 1), ==, 0);
  /* The driver echoing NEEDS_RESET back does not clear it. */
  td_bar_write(td, 0x14, td_status(td), 1);
  g_assert_cmpuint(td_status(td) & NB_VIRTIO_STATUS_NEEDS_RESET, !=, 0);

  start(f, FEATURES_ALL);
  uint16_t head = send_hello(f, 1, &reply);
  td_kick(td, 1);
  expect_hello(f, 1, head, reply);
}

static void
test_reset_during_io(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  f->echo.delay_us = 2000;
  for (unsigned round = 0; round < 5; round++) {
    start(f, FEATURES_ALL);
    uint64_t reply;
    for (unsigned i = 0; i < 8; i++)
      send_hello(f, 0, &reply);
    td_kick(td, 0);
    g_usleep(3000 * round);
    td_reset(td);
    /* After the reset returns the device writes nothing more. */
    uint16_t used = td_used_idx(td, 0);
    g_usleep(30000);
    g_assert_cmpuint(td_used_idx(td, 0), ==, used);
  }
  f->echo.delay_us = 0;
  start(f, FEATURES_ALL);
  uint64_t reply;
  uint16_t head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
}

static void
test_event_idx_suppression(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  start(f, FEATURES_ALL);
  td_msix_enable(td, ECHO_QUEUES + 1);
  td_set_queue_vector(td, 0, 1);
  TdQueue *tq = &td->q[0];
  /* used_event far ahead: the driver does not want interrupts yet. The first
   * completion after setup interrupts regardless. */
  uint64_t reply;
  uint16_t head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
  g_assert_cmpuint(wait_irqfd(td, 0), ==, 1);
  uint16_t *used_event = td_ptr(td, tq->avail + 4 + 2 * tq->size, 2);
  *used_event = 100;
  head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
  settle(f);
  g_assert_cmpuint(td_irqfd_count(td, 0), ==, 0);
  /* avail_event was published for the driver's side. */
  uint16_t *avail_event = td_ptr(td, tq->used + 4 + 8 * tq->size, 2);
  g_assert_cmpuint(*avail_event, ==, 2);
  *used_event = 2;
  head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
  g_assert_cmpuint(wait_irqfd(td, 0), ==, 1);
}

static void
test_indirect_through_transport(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  start(f, FEATURES_ALL);
  uint64_t out = td_alloc(td, 3), in = td_alloc(td, 3);
  memcpy(td_ptr(td, out, 3), "abc", 3);
  TdBuf bufs[] = { { out, 3, false }, { in, 3, true } };
  uint16_t head = td_submit_indirect(td, 0, bufs, 2);
  td_kick(td, 0);
  uint32_t id, len;
  g_assert_true(td_wait_used(td, 0, &id, &len, 5000));
  g_assert_cmpuint(id, ==, head);
  g_assert_cmpmem(td_ptr(td, in, 3), 3, "cba", 3);

  /* Without INDIRECT_DESC negotiated the same chain breaks the device. */
  start(f, (UINT64_C(1) << NB_VIRTIO_F_VERSION_1));
  td_submit_indirect(td, 0, bufs, 2);
  td_kick(td, 0);
  for (unsigned i = 0; i < 2000 && !(td_status(td) & NB_VIRTIO_STATUS_NEEDS_RESET); i++)
    g_usleep(500);
  g_assert_cmpuint(td_status(td) & NB_VIRTIO_STATUS_NEEDS_RESET, !=, 0);
}

static void
test_pci_cfg_window(Fixture *f, gconstpointer data)
{
  TestDriver *td = &f->td;
  unsigned cap = td_find_virtio_cap(td, 5);
  g_assert_cmpuint(cap, !=, 0);
  g_assert_cmpuint(td_cfg_read(td, cap + 2, 1), ==, 20);
  /* Read num_queues through config space. */
  td_cfg_write(td, cap + 4, NB_VIRTIO_PCI_BAR, 1);
  td_cfg_write(td, cap + 8, 0x12, 4);
  td_cfg_write(td, cap + 12, 2, 4);
  g_assert_cmpuint(td_cfg_read(td, cap + 16, 2), ==, ECHO_QUEUES);
  /* Write queue_select through it. */
  td_cfg_write(td, cap + 8, 0x16, 4);
  td_cfg_write(td, cap + 16, 1, 4);
  g_assert_cmpuint(td_bar_read(td, 0x16, 2), ==, 1);
  /* Device config through the window. */
  td_cfg_write(td, cap + 8, NB_VIRTIO_PCI_DEVICE_OFF, 4);
  td_cfg_write(td, cap + 12, 4, 4);
  g_assert_cmpuint(td_cfg_read(td, cap + 16, 4), ==, 0x44434241);
  /* Bad lengths, misaligned or out-of-BAR offsets and other BARs do nothing. */
  td_cfg_write(td, cap + 8, 0x16, 4);
  td_cfg_write(td, cap + 12, 3, 4);
  td_cfg_write(td, cap + 16, 0, 4);
  td_cfg_write(td, cap + 12, 2, 4);
  td_cfg_write(td, cap + 8, 0x17, 4);
  td_cfg_write(td, cap + 16, 0, 4);
  td_cfg_write(td, cap + 8, NB_VIRTIO_PCI_BAR_SIZE, 4);
  td_cfg_write(td, cap + 16, 0, 4);
  td_cfg_write(td, cap + 8, 0xfffffffe, 4);
  td_cfg_write(td, cap + 16, 0, 4);
  td_cfg_write(td, cap + 4, 3, 1);
  td_cfg_write(td, cap + 8, 0x16, 4);
  td_cfg_write(td, cap + 16, 0, 4);
  g_assert_cmpuint(td_bar_read(td, 0x16, 2), ==, 1);
}

static void
test_bar_garbage(Fixture *f, gconstpointer data)
{
  /* Every offset and size in the BAR, read and written with junk, before
   * and after setup: nothing crashes and the device still works. */
  TestDriver *td = &f->td;
  static const unsigned sizes[] = { 1, 2, 4, 8 };
  for (uint64_t off = 0; off < NB_VIRTIO_PCI_BAR_SIZE; off += 4) {
    if (off == NB_VIRTIO_PCI_COMMON_OFF + 0x14)
      continue;   /* status: covered elsewhere */
    for (unsigned s = 0; s < G_N_ELEMENTS(sizes); s++)
      if (off + sizes[s] <= NB_VIRTIO_PCI_BAR_SIZE)
        (void)td_bar_read(td, off, sizes[s]);
    if (off >= NB_VIRTIO_PCI_MSIX_OFF || off < 0x38)
      td_bar_write(td, off, 0xa5a5a5a5a5a5a5a5ull, 4);
  }
  start(f, FEATURES_ALL);
  uint64_t reply;
  uint16_t head = send_hello(f, 0, &reply);
  td_kick(td, 0);
  expect_hello(f, 0, head, reply);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define T(name, fn) g_test_add("/virtio-pci/" name, Fixture, NULL, setup, fn, teardown)
  T("identity", test_identity);
  T("device-config", test_device_config);
  T("features", test_features);
  T("queue-registers", test_queue_registers);
  T("bad-queue-size", test_bad_queue_size);
  T("bad-ring-address", test_bad_ring_address);
  T("intx", test_intx);
  T("ioeventfd", test_ioeventfd);
  T("no-ioeventfd", test_no_ioeventfd);
  T("msix", test_msix);
  T("broken-chain", test_broken_chain);
  T("reset-during-io", test_reset_during_io);
  T("event-idx-suppression", test_event_idx_suppression);
  T("indirect", test_indirect_through_transport);
  T("pci-cfg-window", test_pci_cfg_window);
  T("bar-garbage", test_bar_garbage);
#undef T
  return g_test_run();
}
