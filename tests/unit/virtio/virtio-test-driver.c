#include "virtio-test-driver.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>
#include <unistd.h>

#define MiB (UINT64_C(1) << 20)

/* Fake interrupts ----------------------------------------------------------- */

static void
fake_set_line(void *ctx, unsigned gsi, bool level)
{
  TdIrqs *s = ctx;
  g_mutex_lock(&s->lock);
  if (gsi < G_N_ELEMENTS(s->line))
    s->line[gsi] = level;
  g_mutex_unlock(&s->lock);
}

static void
fake_msi_send(void *ctx, uint64_t address, uint32_t data)
{
  TdIrqs *s = ctx;
  g_mutex_lock(&s->lock);
  s->msi_sent++;
  s->last_msi_addr = address;
  s->last_msi_data = data;
  g_mutex_unlock(&s->lock);
}

static int
fake_msi_route_new(void *ctx, uint64_t address, uint32_t data, GError **error)
{
  TdIrqs *s = ctx;
  g_mutex_lock(&s->lock);
  int gsi = -1;
  if (s->routes < TD_MAX_ROUTES) {
    gsi = (int)s->routes++;
    s->route[gsi].addr = address;
    s->route[gsi].data = data;
    s->route[gsi].irqfd = -1;
    s->route[gsi].used = true;
  } else {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE, "no routes left");
  }
  g_mutex_unlock(&s->lock);
  return gsi;
}

static bool
fake_msi_route_set(void *ctx, unsigned gsi, uint64_t address, uint32_t data, GError **error)
{
  TdIrqs *s = ctx;
  g_mutex_lock(&s->lock);
  g_assert_cmpuint(gsi, <, s->routes);
  s->route[gsi].addr = address;
  s->route[gsi].data = data;
  g_mutex_unlock(&s->lock);
  return true;
}

static void
fake_msi_route_free(void *ctx, unsigned gsi)
{
  TdIrqs *s = ctx;
  g_mutex_lock(&s->lock);
  s->route[gsi].used = false;
  g_mutex_unlock(&s->lock);
}

static bool
fake_irqfd_attach(void *ctx, int eventfd, unsigned gsi, GError **error)
{
  TdIrqs *s = ctx;
  g_mutex_lock(&s->lock);
  s->route[gsi].irqfd = eventfd;
  g_mutex_unlock(&s->lock);
  return true;
}

static void
fake_irqfd_detach(void *ctx, int eventfd, unsigned gsi)
{
  TdIrqs *s = ctx;
  g_mutex_lock(&s->lock);
  s->route[gsi].irqfd = -1;
  g_mutex_unlock(&s->lock);
}

static bool
fake_ioeventfd_attach(void *ctx, int eventfd, uint64_t addr, unsigned len, bool pio,
                      GError **error)
{
  TdIrqs *s = ctx;
  if (s->fail_ioeventfd) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "no ioeventfd here");
    return false;
  }
  g_assert_cmpuint(len, ==, 2);
  g_assert_false(pio);
  g_mutex_lock(&s->lock);
  g_assert_cmpuint(s->ioeventfds, <, G_N_ELEMENTS(s->ioeventfd));
  s->ioeventfd[s->ioeventfds].efd = eventfd;
  s->ioeventfd[s->ioeventfds].addr = addr;
  s->ioeventfds++;
  g_mutex_unlock(&s->lock);
  return true;
}

static void
fake_ioeventfd_detach(void *ctx, int eventfd, uint64_t addr, unsigned len, bool pio)
{
  TdIrqs *s = ctx;
  g_mutex_lock(&s->lock);
  for (unsigned i = 0; i < s->ioeventfds; i++) {
    if (s->ioeventfd[i].efd == eventfd && s->ioeventfd[i].addr == addr) {
      s->ioeventfd[i] = s->ioeventfd[--s->ioeventfds];
      break;
    }
  }
  g_mutex_unlock(&s->lock);
}

static const NbInterruptOps fake_ops = {
  fake_set_line, fake_msi_send, fake_msi_route_new, fake_msi_route_set, fake_msi_route_free,
  fake_irqfd_attach, fake_irqfd_detach, fake_ioeventfd_attach, fake_ioeventfd_detach,
};

unsigned
td_irqfd_count(TestDriver *td, unsigned route)
{
  g_mutex_lock(&td->irq_state.lock);
  int fd = route < td->irq_state.routes ? td->irq_state.route[route].irqfd : -1;
  g_mutex_unlock(&td->irq_state.lock);
  if (fd < 0)
    return 0;
  uint64_t count = 0;
  if (read(fd, &count, sizeof count) < 0)
    g_assert_cmpint(errno, ==, EAGAIN);
  return (unsigned)count;
}

/* Bus ------------------------------------------------------------------------ */

void
td_init(TestDriver *td)
{
  memset(td, 0, sizeof *td);
  g_autoptr(GError) error = NULL;
  td->mem = nb_guest_memory_new_split(64 * MiB, 32 * MiB, 48 * MiB, &error);
  g_assert_no_error(error);
  g_mutex_init(&td->irq_state.lock);
  td->irqs.ops = &fake_ops;
  td->irqs.ctx = &td->irq_state;
  td->pio = nb_io_bus_new("pio");
  td->mmio = nb_io_bus_new("mmio");
  td->bus = nb_pci_bus_new(td->pio, td->mmio, &td->irqs, UINT64_C(1) << 40);
  g_assert_true(nb_pci_bus_register_host_bridge(td->bus, &error));
  g_assert_no_error(error);
  td->next_alloc = 0x100000;
}

void
td_clear(TestDriver *td)
{
  nb_pci_bus_free(td->bus);
  nb_io_bus_free(td->pio);
  nb_io_bus_free(td->mmio);
  nb_guest_memory_free(td->mem);
  g_mutex_clear(&td->irq_state.lock);
}

void
td_add(TestDriver *td, NbPciDevice *dev)
{
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_pci_bus_add(td->bus, dev, &error));
  g_assert_no_error(error);
  td->dev = dev;
  td->slot = dev->slot;
  uint32_t bar = td_cfg_read(td, NB_PCI_BAR0 + 4 * NB_VIRTIO_PCI_BAR, 4);
  td->bar = bar & ~UINT32_C(0xf);
  g_assert_cmpuint(td->bar, !=, 0);
  /* Bus mastering, as the guest's PCI core would enable it. */
  td_cfg_write(td, NB_PCI_COMMAND, td_cfg_read(td, NB_PCI_COMMAND, 2) | NB_PCI_COMMAND_MASTER, 2);
}

static void
select_config(TestDriver *td, unsigned off)
{
  uint32_t addr = 0x80000000u | (td->slot << 11) | (off & 0xfc);
  g_assert_true(nb_io_bus_write(td->pio, 0xcf8, &addr, 4));
}

uint32_t
td_cfg_read(TestDriver *td, unsigned off, unsigned size)
{
  select_config(td, off);
  uint32_t v = 0;
  g_assert_true(nb_io_bus_read(td->pio, 0xcfc + (off & 3), &v, size));
  return size == 4 ? v : v & ((1u << (8 * size)) - 1);
}

void
td_cfg_write(TestDriver *td, unsigned off, uint32_t value, unsigned size)
{
  select_config(td, off);
  g_assert_true(nb_io_bus_write(td->pio, 0xcfc + (off & 3), &value, size));
}

uint64_t
td_bar_read(TestDriver *td, uint64_t off, unsigned size)
{
  uint64_t v = 0;
  g_assert_true(nb_io_bus_read(td->mmio, td->bar + off, &v, size));
  return v;
}

void
td_bar_write(TestDriver *td, uint64_t off, uint64_t value, unsigned size)
{
  g_assert_true(nb_io_bus_write(td->mmio, td->bar + off, &value, size));
}

unsigned
td_find_cap(TestDriver *td, uint8_t id)
{
  unsigned p = td_cfg_read(td, NB_PCI_CAPABILITY_LIST, 1);
  for (unsigned guard = 0; p != 0 && guard < 48; guard++) {
    if (td_cfg_read(td, p, 1) == id)
      return p;
    p = td_cfg_read(td, p + 1, 1);
  }
  return 0;
}

unsigned
td_find_virtio_cap(TestDriver *td, uint8_t cfg_type)
{
  unsigned p = td_cfg_read(td, NB_PCI_CAPABILITY_LIST, 1);
  for (unsigned guard = 0; p != 0 && guard < 48; guard++) {
    if (td_cfg_read(td, p, 1) == NB_PCI_CAP_ID_VENDOR && td_cfg_read(td, p + 3, 1) == cfg_type)
      return p;
    p = td_cfg_read(td, p + 1, 1);
  }
  return 0;
}

/* Driver steps --------------------------------------------------------------- */

#define COMMON(reg) (NB_VIRTIO_PCI_COMMON_OFF + (reg))

uint8_t
td_status(TestDriver *td)
{
  return (uint8_t)td_bar_read(td, COMMON(0x14), 1);
}

void
td_reset(TestDriver *td)
{
  td_bar_write(td, COMMON(0x14), 0, 1);
  g_assert_cmpuint(td_status(td), ==, 0);
  memset(td->q, 0, sizeof td->q);
}

uint64_t
td_device_features(TestDriver *td)
{
  td_bar_write(td, COMMON(0x00), 0, 4);
  uint64_t lo = td_bar_read(td, COMMON(0x04), 4);
  td_bar_write(td, COMMON(0x00), 1, 4);
  uint64_t hi = td_bar_read(td, COMMON(0x04), 4);
  return lo | (hi << 32);
}

bool
td_negotiate(TestDriver *td, uint64_t features)
{
  td_reset(td);
  td_bar_write(td, COMMON(0x14), NB_VIRTIO_STATUS_ACKNOWLEDGE, 1);
  td_bar_write(td, COMMON(0x14), NB_VIRTIO_STATUS_ACKNOWLEDGE | NB_VIRTIO_STATUS_DRIVER, 1);
  td_bar_write(td, COMMON(0x08), 0, 4);
  td_bar_write(td, COMMON(0x0c), (uint32_t)features, 4);
  td_bar_write(td, COMMON(0x08), 1, 4);
  td_bar_write(td, COMMON(0x0c), (uint32_t)(features >> 32), 4);
  td_bar_write(td, COMMON(0x14), NB_VIRTIO_STATUS_ACKNOWLEDGE | NB_VIRTIO_STATUS_DRIVER |
                                 NB_VIRTIO_STATUS_FEATURES_OK, 1);
  return td_status(td) & NB_VIRTIO_STATUS_FEATURES_OK;
}

uint64_t
td_alloc(TestDriver *td, uint64_t len)
{
  uint64_t gpa = (td->next_alloc + 4095) & ~UINT64_C(4095);
  td->next_alloc = gpa + len;
  g_assert_cmpuint(td->next_alloc, <, 32 * MiB);
  return gpa;
}

void *
td_ptr(TestDriver *td, uint64_t gpa, uint64_t len)
{
  void *p = nb_guest_memory_ptr(td->mem, gpa, len);
  g_assert_nonnull(p);
  return p;
}

void
td_setup_queue(TestDriver *td, unsigned q, uint16_t size)
{
  TdQueue *tq = &td->q[q];
  tq->size = size;
  tq->desc = td_alloc(td, 16 * size);
  tq->avail = td_alloc(td, 6 + 2 * size);
  tq->used = td_alloc(td, 6 + 8 * size);
  memset(td_ptr(td, tq->desc, 16 * size), 0, 16 * size);
  memset(td_ptr(td, tq->avail, 6 + 2 * size), 0, 6 + 2 * size);
  memset(td_ptr(td, tq->used, 6 + 8 * size), 0, 6 + 8 * size);
  td_bar_write(td, COMMON(0x16), q, 2);
  g_assert_cmpuint(td_bar_read(td, COMMON(0x18), 2), >=, size);
  td_bar_write(td, COMMON(0x18), size, 2);
  td_bar_write(td, COMMON(0x20), (uint32_t)tq->desc, 4);
  td_bar_write(td, COMMON(0x24), (uint32_t)(tq->desc >> 32), 4);
  td_bar_write(td, COMMON(0x28), tq->avail, 8);
  td_bar_write(td, COMMON(0x30), tq->used, 8);
  td_bar_write(td, COMMON(0x1c), 1, 2);
  g_assert_cmpuint(td_bar_read(td, COMMON(0x1c), 2), ==, 1);
}

void
td_driver_ok(TestDriver *td)
{
  td_bar_write(td, COMMON(0x14), td_status(td) | NB_VIRTIO_STATUS_DRIVER_OK, 1);
}

void
td_msix_enable(TestDriver *td, unsigned n_vectors)
{
  for (unsigned i = 0; i < n_vectors; i++) {
    uint64_t e = NB_VIRTIO_PCI_MSIX_OFF + 16 * i;
    td_bar_write(td, e, 0xfee00000, 4);
    td_bar_write(td, e + 4, 0, 4);
    td_bar_write(td, e + 8, 0x40 + i, 4);
    td_bar_write(td, e + 12, 0, 4);
  }
  unsigned cap = td_find_cap(td, NB_PCI_CAP_ID_MSIX);
  g_assert_cmpuint(cap, !=, 0);
  td_cfg_write(td, cap + 2, td_cfg_read(td, cap + 2, 2) | 0x8000, 2);
}

void
td_set_queue_vector(TestDriver *td, unsigned q, uint16_t vector)
{
  td_bar_write(td, COMMON(0x16), q, 2);
  td_bar_write(td, COMMON(0x1a), vector, 2);
}

static void
write_desc(TestDriver *td, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
           uint16_t flags, uint16_t next)
{
  NbVirtqDesc d = { GUINT64_TO_LE(addr), GUINT32_TO_LE(len), GUINT16_TO_LE(flags),
                    GUINT16_TO_LE(next) };
  memcpy(td_ptr(td, table + 16 * i, 16), &d, 16);
}

static void
make_available(TestDriver *td, unsigned q, uint16_t head)
{
  TdQueue *tq = &td->q[q];
  uint16_t *avail = td_ptr(td, tq->avail, 6 + 2 * tq->size);
  avail[2 + tq->avail_idx % tq->size] = GUINT16_TO_LE(head);
  tq->avail_idx++;
  __atomic_store_n(&avail[1], GUINT16_TO_LE(tq->avail_idx), __ATOMIC_RELEASE);
}

void
td_submit_at(TestDriver *td, unsigned q, uint16_t first, const TdBuf *bufs, unsigned n)
{
  TdQueue *tq = &td->q[q];
  for (unsigned i = 0; i < n; i++)
    write_desc(td, tq->desc, first + i, bufs[i].gpa, bufs[i].len,
               (bufs[i].write ? NB_VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? NB_VIRTQ_DESC_F_NEXT : 0),
               (uint16_t)(first + i + 1));
  make_available(td, q, first);
}

uint16_t
td_submit(TestDriver *td, unsigned q, const TdBuf *bufs, unsigned n)
{
  TdQueue *tq = &td->q[q];
  g_assert_cmpuint(n, <=, tq->size);
  uint16_t head = tq->next_desc;
  for (unsigned i = 0; i < n; i++) {
    unsigned d = (tq->next_desc + i) % tq->size;
    write_desc(td, tq->desc, d, bufs[i].gpa, bufs[i].len,
               (bufs[i].write ? NB_VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? NB_VIRTQ_DESC_F_NEXT : 0),
               (uint16_t)((d + 1) % tq->size));
  }
  tq->next_desc = (uint16_t)((tq->next_desc + n) % tq->size);
  make_available(td, q, head);
  return head;
}

uint16_t
td_submit_indirect(TestDriver *td, unsigned q, const TdBuf *bufs, unsigned n)
{
  TdQueue *tq = &td->q[q];
  uint64_t table = td_alloc(td, 16 * n);
  for (unsigned i = 0; i < n; i++)
    write_desc(td, table, i, bufs[i].gpa, bufs[i].len,
               (bufs[i].write ? NB_VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? NB_VIRTQ_DESC_F_NEXT : 0),
               (uint16_t)(i + 1));
  uint16_t head = tq->next_desc;
  write_desc(td, tq->desc, head, table, 16 * n, NB_VIRTQ_DESC_F_INDIRECT, 0);
  tq->next_desc = (uint16_t)((tq->next_desc + 1) % tq->size);
  make_available(td, q, head);
  return head;
}

void
td_kick(TestDriver *td, unsigned q)
{
  td_bar_write(td, NB_VIRTIO_PCI_NOTIFY_OFF + NB_VIRTIO_PCI_NOTIFY_MULT * q, q, 2);
}

uint16_t
td_used_idx(TestDriver *td, unsigned q)
{
  TdQueue *tq = &td->q[q];
  uint16_t *used = td_ptr(td, tq->used, 4);
  return GUINT16_FROM_LE(__atomic_load_n(&used[1], __ATOMIC_ACQUIRE));
}

bool
td_poll_used(TestDriver *td, unsigned q, uint32_t *id, uint32_t *len)
{
  TdQueue *tq = &td->q[q];
  if (td_used_idx(td, q) == tq->last_used)
    return false;
  uint32_t *ring = td_ptr(td, tq->used + 4, 8 * tq->size);
  unsigned slot = tq->last_used % tq->size;
  if (id)
    *id = GUINT32_FROM_LE(ring[2 * slot]);
  if (len)
    *len = GUINT32_FROM_LE(ring[2 * slot + 1]);
  tq->last_used++;
  /* As Linux does with EVENT_IDX: interrupt me for the next one. */
  uint16_t *used_event = td_ptr(td, tq->avail + 4 + 2 * tq->size, 2);
  __atomic_store_n(used_event, GUINT16_TO_LE(tq->last_used), __ATOMIC_SEQ_CST);
  return true;
}

bool
td_wait_used(TestDriver *td, unsigned q, uint32_t *id, uint32_t *len, unsigned timeout_ms)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  while (!td_poll_used(td, q, id, len)) {
    if (g_get_monotonic_time() > deadline)
      return false;
    g_usleep(200);
  }
  return true;
}
