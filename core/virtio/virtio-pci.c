#include "virtio/virtio-pci.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Capability types (spec 4.1.4). */
#define CAP_COMMON_CFG 1
#define CAP_NOTIFY_CFG 2
#define CAP_ISR_CFG    3
#define CAP_DEVICE_CFG 4
#define CAP_PCI_CFG    5

/* Common configuration registers (spec 4.1.4.3). */
#define REG_DFSELECT      0x00
#define REG_DF            0x04
#define REG_GFSELECT      0x08
#define REG_GF            0x0c
#define REG_MSIX_CONFIG   0x10
#define REG_NUM_QUEUES    0x12
#define REG_STATUS        0x14
#define REG_CFG_GEN       0x15
#define REG_Q_SELECT      0x16
#define REG_Q_SIZE        0x18
#define REG_Q_MSIX        0x1a
#define REG_Q_ENABLE      0x1c
#define REG_Q_NOTIFY_OFF  0x1e
#define REG_Q_DESC        0x20
#define REG_Q_DRIVER      0x28
#define REG_Q_DEVICE      0x30

#define ISR_QUEUE  1
#define ISR_CONFIG 2

#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_CTRL_ENABLE  0x8000
#define MSIX_ENTRY_MASKED 1

/* Features the transport and the queue implement for every device. */
#define TRANSPORT_FEATURES ((UINT64_C(1) << NB_VIRTIO_F_VERSION_1) | \
                            (UINT64_C(1) << NB_VIRTIO_F_INDIRECT_DESC) | \
                            (UINT64_C(1) << NB_VIRTIO_F_EVENT_IDX))

typedef struct Watch {
  int fd;
  NbVirtioFdFunc func;
  void *ctx;
  bool dead;
} Watch;

typedef struct {
  uint16_t size;
  uint16_t msix_vector;     /* read by completion threads: atomic */
  bool enabled;
  uint64_t desc, driver, device;
  NbVirtqueue vq;
  int efd;                  /* notifications: ioeventfd or trapped write */
  bool ioeventfd;           /* attached at ioeventfd_addr */
  uint64_t ioeventfd_addr;
} Queue;

typedef struct {
  uint32_t addr_lo, addr_hi, data, ctrl;
  int gsi;                  /* KVM route, -1 until first used */
  int irqfd;
  bool irqfd_attached;
  bool route_dirty;
  bool pending;             /* PBA bit */
} Vector;

struct NbVirtioPci {
  NbPciDevice pci;
  NbGuestMemory *mem;
  NbVirtioDeviceInfo info;
  uint64_t features;        /* offered */
  uint64_t driver_features;

  GMutex lock;              /* transport state; held around device callbacks */
  uint32_t dfselect, gfselect;
  uint16_t queue_select;
  uint16_t msix_config;
  int status;               /* atomic: read by completion threads */
  uint8_t config_generation;
  Queue queues[NB_VIRTIO_MAX_QUEUES];

  GMutex irq_lock;          /* MSI-X state, ISR and the INTx level together */
  Vector vectors[NB_VIRTIO_MAX_VECTORS];
  unsigned n_vectors;
  uint8_t msix_cap;
  uint8_t pci_cfg_cap;      /* the config-space window onto the BAR */
  bool msix_enabled, msix_masked;
  uint8_t isr;

  int epfd;
  int stop_efd;
  GThread *worker;
  bool stopping;
  GHashTable *watches;      /* fd -> Watch, worker and device fds */
  GPtrArray *dead_watches;
  bool warned_broken;
};

/* Interrupt delivery ------------------------------------------------------- */

static NbInterrupts *
irqs(NbVirtioPci *vp)
{
  NbInterrupts *i = nb_pci_device_interrupts(&vp->pci);
  return i && i->ops ? i : NULL;
}

static void
signal_eventfd(int fd)
{
  uint64_t one = 1;
  ssize_t r;
  do {
    r = write(fd, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
}

/* With irq_lock held. */
static void
vector_deliver(NbVirtioPci *vp, Vector *v)
{
  NbInterrupts *ir = irqs(vp);
  if (ir == NULL)
    return;
  uint64_t addr = ((uint64_t)v->addr_hi << 32) | v->addr_lo;
  if (v->route_dirty || v->gsi < 0) {
    g_autoptr(GError) error = NULL;
    if (v->gsi < 0 && ir->ops->msi_route_new) {
      v->gsi = ir->ops->msi_route_new(ir->ctx, addr, v->data, &error);
      if (v->gsi >= 0 && ir->ops->irqfd_attach &&
          ir->ops->irqfd_attach(ir->ctx, v->irqfd, (unsigned)v->gsi, &error))
        v->irqfd_attached = true;
    } else if (v->gsi >= 0 && ir->ops->msi_route_set) {
      if (!ir->ops->msi_route_set(ir->ctx, (unsigned)v->gsi, addr, v->data, &error)) {
        /* Keep delivering, by the slow path, to the address the guest set. */
        if (v->irqfd_attached && ir->ops->irqfd_detach)
          ir->ops->irqfd_detach(ir->ctx, v->irqfd, (unsigned)v->gsi);
        v->irqfd_attached = false;
      }
    }
    if (error)
      g_debug("virtio %s: MSI-X route: %s", vp->info.name, error->message);
    v->route_dirty = false;
  }
  if (v->irqfd_attached)
    signal_eventfd(v->irqfd);
  else if (ir->ops->msi_send)
    ir->ops->msi_send(ir->ctx, addr, v->data);
}

/* With irq_lock held. */
static void
vector_signal(NbVirtioPci *vp, unsigned index)
{
  if (index >= vp->n_vectors)
    return;
  Vector *v = &vp->vectors[index];
  if (vp->msix_masked || (v->ctrl & MSIX_ENTRY_MASKED)) {
    v->pending = true;
    return;
  }
  vector_deliver(vp, v);
}

/* With irq_lock held: an unmask delivers what was held back. */
static void
vector_flush_pending(NbVirtioPci *vp, unsigned index)
{
  Vector *v = &vp->vectors[index];
  if (v->pending && vp->msix_enabled && !vp->msix_masked && !(v->ctrl & MSIX_ENTRY_MASKED)) {
    v->pending = false;
    vector_deliver(vp, v);
  }
}

static void
raise_interrupt(NbVirtioPci *vp, uint16_t vector, uint8_t isr_bit)
{
  g_mutex_lock(&vp->irq_lock);
  if (vp->msix_enabled) {
    if (vector != NB_VIRTIO_MSI_NO_VECTOR)
      vector_signal(vp, vector);
  } else {
    vp->isr |= isr_bit;
    nb_pci_device_set_intx(&vp->pci, true);
  }
  g_mutex_unlock(&vp->irq_lock);
}

void
nb_virtio_pci_notify_queue(NbVirtioPci *vp, unsigned queue)
{
  if (queue >= vp->info.num_queues)
    return;
  uint16_t vector = __atomic_load_n(&vp->queues[queue].msix_vector, __ATOMIC_RELAXED);
  raise_interrupt(vp, vector, ISR_QUEUE);
}

void
nb_virtio_pci_notify_config(NbVirtioPci *vp)
{
  __atomic_add_fetch(&vp->config_generation, 1, __ATOMIC_RELAXED);
  raise_interrupt(vp, __atomic_load_n(&vp->msix_config, __ATOMIC_RELAXED), ISR_CONFIG);
}

/* Status and features ------------------------------------------------------ */

uint8_t
nb_virtio_pci_status(NbVirtioPci *vp)
{
  return (uint8_t)__atomic_load_n(&vp->status, __ATOMIC_ACQUIRE);
}

bool
nb_virtio_pci_is_active(NbVirtioPci *vp)
{
  uint8_t s = nb_virtio_pci_status(vp);
  return (s & NB_VIRTIO_STATUS_DRIVER_OK) &&
         !(s & (NB_VIRTIO_STATUS_NEEDS_RESET | NB_VIRTIO_STATUS_FAILED));
}

uint64_t
nb_virtio_pci_driver_features(NbVirtioPci *vp)
{
  return vp->driver_features;
}

bool
nb_virtio_pci_has_feature(NbVirtioPci *vp, unsigned bit)
{
  return bit < 64 && (vp->driver_features & (UINT64_C(1) << bit));
}

NbVirtqueue *
nb_virtio_pci_queue(NbVirtioPci *vp, unsigned index)
{
  return index < vp->info.num_queues ? &vp->queues[index].vq : NULL;
}

NbPciDevice *
nb_virtio_pci_device(NbVirtioPci *vp)
{
  return &vp->pci;
}

void
nb_virtio_pci_set_broken(NbVirtioPci *vp, const char *why)
{
  if (!vp->warned_broken)
    g_message("virtio %s: the guest driver broke the device, which now waits for a reset: %s",
              vp->info.name, why);
  vp->warned_broken = true;
  uint8_t s = nb_virtio_pci_status(vp);
  if (s & NB_VIRTIO_STATUS_NEEDS_RESET)
    return;
  __atomic_store_n(&vp->status, s | NB_VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_RELEASE);
  /* Only a driver past DRIVER_OK listens for config changes. */
  if (s & NB_VIRTIO_STATUS_DRIVER_OK)
    nb_virtio_pci_notify_config(vp);
}

void
nb_virtio_pci_kick(NbVirtioPci *vp, unsigned queue)
{
  if (queue < vp->info.num_queues)
    signal_eventfd(vp->queues[queue].efd);
}

/* With the lock held, from whichever thread asked. */
static void
device_reset(NbVirtioPci *vp)
{
  /* The device first: it waits for requests in flight on other threads,
   * which may still push to the queues we are about to clear. */
  if (vp->info.ops->reset)
    vp->info.ops->reset(vp->info.ctx);
  for (unsigned i = 0; i < vp->info.num_queues; i++) {
    Queue *q = &vp->queues[i];
    nb_virtqueue_reset(&q->vq);
    q->size = vp->info.queue_size;
    __atomic_store_n(&q->msix_vector, NB_VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELAXED);
    q->enabled = false;
    q->desc = q->driver = q->device = 0;
  }
  vp->driver_features = 0;
  vp->dfselect = vp->gfselect = 0;
  vp->queue_select = 0;
  __atomic_store_n(&vp->msix_config, NB_VIRTIO_MSI_NO_VECTOR, __ATOMIC_RELAXED);
  __atomic_store_n(&vp->status, 0, __ATOMIC_RELEASE);
  vp->warned_broken = false;
  g_mutex_lock(&vp->irq_lock);
  vp->isr = 0;
  nb_pci_device_set_intx(&vp->pci, false);
  g_mutex_unlock(&vp->irq_lock);
}

static void
write_status(NbVirtioPci *vp, uint8_t value)
{
  uint8_t old = nb_virtio_pci_status(vp);
  if (value == 0) {
    device_reset(vp);
    return;
  }
  if ((value & NB_VIRTIO_STATUS_FEATURES_OK) && !(old & NB_VIRTIO_STATUS_FEATURES_OK)) {
    /* Refusing leaves FEATURES_OK clear; the driver reads it back (4.1.4.3). */
    bool ok = (vp->driver_features & ~vp->features) == 0 &&
              (vp->driver_features & (UINT64_C(1) << NB_VIRTIO_F_VERSION_1));
    if (!ok)
      value &= ~NB_VIRTIO_STATUS_FEATURES_OK;
  }
  if ((value & NB_VIRTIO_STATUS_DRIVER_OK) && !(value & NB_VIRTIO_STATUS_FEATURES_OK))
    value &= ~NB_VIRTIO_STATUS_DRIVER_OK;   /* modern devices only */
  value |= old & NB_VIRTIO_STATUS_NEEDS_RESET;   /* the device's bit, not the driver's */
  __atomic_store_n(&vp->status, value, __ATOMIC_RELEASE);

  if ((value & NB_VIRTIO_STATUS_DRIVER_OK) && !(old & NB_VIRTIO_STATUS_DRIVER_OK)) {
    if (vp->info.ops->activate)
      vp->info.ops->activate(vp->info.ctx);
    /* Buffers may have been queued before DRIVER_OK without a notify that
     * we acted on. */
    for (unsigned i = 0; i < vp->info.num_queues; i++)
      if (vp->queues[i].enabled)
        signal_eventfd(vp->queues[i].efd);
  }
}

static void
enable_queue(NbVirtioPci *vp, Queue *q)
{
  if (q->enabled)
    return;
  g_autoptr(GError) error = NULL;
  if (q->size > vp->info.queue_size) {
    g_autofree char *why = g_strdup_printf("queue size %u is larger than the %u offered", q->size,
                                           vp->info.queue_size);
    nb_virtio_pci_set_broken(vp, why);
    return;
  }
  if (!nb_virtqueue_enable(&q->vq, q->size, q->desc, q->driver, q->device,
                           nb_virtio_pci_has_feature(vp, NB_VIRTIO_F_INDIRECT_DESC),
                           nb_virtio_pci_has_feature(vp, NB_VIRTIO_F_EVENT_IDX), &error)) {
    nb_virtio_pci_set_broken(vp, error->message);
    return;
  }
  q->enabled = true;
}

/* Common configuration ----------------------------------------------------- */

static Queue *
selected_queue(NbVirtioPci *vp)
{
  return vp->queue_select < vp->info.num_queues ? &vp->queues[vp->queue_select] : NULL;
}

/* The register file as the driver sees it now, little-endian. */
static void
common_snapshot(NbVirtioPci *vp, uint8_t *regs)
{
  memset(regs, 0, NB_VIRTIO_PCI_COMMON_SIZE);
#define PUT(off, bytes, val) do { uint64_t v_ = GUINT64_TO_LE((uint64_t)(val)); \
                                  memcpy(regs + (off), &v_, (bytes)); } while (0)
  PUT(REG_DFSELECT, 4, vp->dfselect);
  PUT(REG_DF, 4, vp->dfselect < 2 ? (uint32_t)(vp->features >> (32 * vp->dfselect)) : 0);
  PUT(REG_GFSELECT, 4, vp->gfselect);
  PUT(REG_GF, 4, vp->gfselect < 2 ? (uint32_t)(vp->driver_features >> (32 * vp->gfselect)) : 0);
  PUT(REG_MSIX_CONFIG, 2, vp->msix_config);
  PUT(REG_NUM_QUEUES, 2, vp->info.num_queues);
  PUT(REG_STATUS, 1, nb_virtio_pci_status(vp));
  PUT(REG_CFG_GEN, 1, __atomic_load_n(&vp->config_generation, __ATOMIC_RELAXED));
  PUT(REG_Q_SELECT, 2, vp->queue_select);
  Queue *q = selected_queue(vp);
  if (q) {
    PUT(REG_Q_SIZE, 2, q->size);
    PUT(REG_Q_MSIX, 2, q->msix_vector);
    PUT(REG_Q_ENABLE, 2, q->enabled);
    PUT(REG_Q_NOTIFY_OFF, 2, vp->queue_select);
    PUT(REG_Q_DESC, 8, q->desc);
    PUT(REG_Q_DRIVER, 8, q->driver);
    PUT(REG_Q_DEVICE, 8, q->device);
  } else {
    PUT(REG_Q_MSIX, 2, NB_VIRTIO_MSI_NO_VECTOR);
  }
#undef PUT
}

static uint64_t
common_read(NbVirtioPci *vp, unsigned offset, unsigned size)
{
  uint8_t regs[NB_VIRTIO_PCI_COMMON_SIZE];
  g_mutex_lock(&vp->lock);
  common_snapshot(vp, regs);
  g_mutex_unlock(&vp->lock);
  uint64_t v = 0;
  if (offset + size <= sizeof regs)
    memcpy(&v, regs + offset, size);
  return GUINT64_FROM_LE(v);
}

static const struct { unsigned off, len; } common_fields[] = {
  { REG_DFSELECT, 4 }, { REG_GFSELECT, 4 }, { REG_GF, 4 }, { REG_MSIX_CONFIG, 2 },
  { REG_STATUS, 1 }, { REG_Q_SELECT, 2 }, { REG_Q_SIZE, 2 }, { REG_Q_MSIX, 2 },
  { REG_Q_ENABLE, 2 }, { REG_Q_DESC, 8 }, { REG_Q_DRIVER, 8 }, { REG_Q_DEVICE, 8 },
};

static uint16_t
checked_vector(NbVirtioPci *vp, uint64_t v)
{
  /* A vector the table does not have reads back as NO_VECTOR (4.1.5.1.2). */
  return v < vp->n_vectors ? (uint16_t)v : NB_VIRTIO_MSI_NO_VECTOR;
}

static void
common_apply(NbVirtioPci *vp, unsigned field_off, uint64_t v)
{
  Queue *q = selected_queue(vp);
  bool live = nb_virtio_pci_status(vp) & NB_VIRTIO_STATUS_DRIVER_OK;
  switch (field_off) {
  case REG_DFSELECT: vp->dfselect = (uint32_t)v; break;
  case REG_GFSELECT: vp->gfselect = (uint32_t)v; break;
  case REG_GF:
    if (vp->gfselect < 2 && !(nb_virtio_pci_status(vp) & NB_VIRTIO_STATUS_FEATURES_OK)) {
      unsigned shift = 32 * vp->gfselect;
      vp->driver_features = (vp->driver_features & ~(UINT64_C(0xffffffff) << shift)) |
                            ((v & 0xffffffff) << shift);
    }
    break;
  case REG_MSIX_CONFIG:
    __atomic_store_n(&vp->msix_config, checked_vector(vp, v), __ATOMIC_RELAXED);
    break;
  case REG_STATUS: write_status(vp, (uint8_t)v); break;
  case REG_Q_SELECT: vp->queue_select = (uint16_t)v; break;
  case REG_Q_MSIX:
    if (q)
      __atomic_store_n(&q->msix_vector, checked_vector(vp, v), __ATOMIC_RELAXED);
    break;
  /* Queue layout is frozen once the queue is enabled or the device live. */
  case REG_Q_SIZE:
    if (q && !q->enabled && !live)
      q->size = (uint16_t)v;
    break;
  case REG_Q_ENABLE:
    if (q && !live && v == 1)
      enable_queue(vp, q);
    break;
  case REG_Q_DESC: if (q && !q->enabled && !live) q->desc = v; break;
  case REG_Q_DRIVER: if (q && !q->enabled && !live) q->driver = v; break;
  case REG_Q_DEVICE: if (q && !q->enabled && !live) q->device = v; break;
  default: break;
  }
}

static void
common_write(NbVirtioPci *vp, unsigned offset, uint64_t value, unsigned size)
{
  g_mutex_lock(&vp->lock);
  uint8_t regs[NB_VIRTIO_PCI_COMMON_SIZE];
  common_snapshot(vp, regs);
  uint64_t le = GUINT64_TO_LE(value);
  const uint8_t *bytes = (const uint8_t *)&le;
  /* Byte-wise merge into each field the access touches, so 32-bit halves of
   * the 64-bit queue addresses and narrow accesses all work. */
  for (unsigned f = 0; f < G_N_ELEMENTS(common_fields); f++) {
    unsigned fo = common_fields[f].off, fl = common_fields[f].len;
    if (offset >= fo + fl || offset + size <= fo)
      continue;
    uint8_t field[8] = { 0 };
    memcpy(field, regs + fo, fl);
    for (unsigned i = 0; i < size; i++)
      if (offset + i >= fo && offset + i < fo + fl)
        field[offset + i - fo] = bytes[i];
    uint64_t v;
    memcpy(&v, field, 8);
    common_apply(vp, fo, GUINT64_FROM_LE(v));
  }
  g_mutex_unlock(&vp->lock);
}

/* MSI-X table and PBA ----------------------------------------------------- */

static uint64_t
msix_read(NbVirtioPci *vp, unsigned offset, unsigned size)
{
  uint64_t v = 0;
  g_mutex_lock(&vp->irq_lock);
  if (offset >= NB_VIRTIO_PCI_PBA_OFF) {
    unsigned off = offset - NB_VIRTIO_PCI_PBA_OFF;
    for (unsigned bit = 0; bit < 8 * size; bit++) {
      unsigned idx = 8 * off + bit;
      if (idx < vp->n_vectors && vp->vectors[idx].pending)
        v |= UINT64_C(1) << bit;
    }
  } else {
    unsigned off = offset - NB_VIRTIO_PCI_MSIX_OFF;
    uint32_t words[2] = { 0, 0 };
    for (unsigned w = 0; w < (size + 3) / 4; w++) {
      unsigned idx = (off + 4 * w) / 16, reg = ((off + 4 * w) % 16) / 4;
      words[w] = 0;
      if (idx < vp->n_vectors) {
        Vector *vec = &vp->vectors[idx];
        uint32_t r[4] = { vec->addr_lo, vec->addr_hi, vec->data, vec->ctrl };
        words[w] = r[reg];
      }
    }
    v = words[0];
    if (size == 8)
      v |= (uint64_t)words[1] << 32;
    else if (size < 4)
      v = (words[0] >> (8 * (off & 3))) & ((UINT64_C(1) << (8 * size)) - 1);
  }
  g_mutex_unlock(&vp->irq_lock);
  return v;
}

/* With irq_lock held. */
static void
msix_write_word(NbVirtioPci *vp, unsigned off, uint32_t value)
{
  unsigned idx = off / 16, reg = (off % 16) / 4;
  if (idx >= vp->n_vectors)
    return;
  Vector *v = &vp->vectors[idx];
  switch (reg) {
  case 0: v->route_dirty |= v->addr_lo != value; v->addr_lo = value; break;
  case 1: v->route_dirty |= v->addr_hi != value; v->addr_hi = value; break;
  case 2: v->route_dirty |= v->data != value; v->data = value; break;
  case 3:
    v->ctrl = value & MSIX_ENTRY_MASKED;
    vector_flush_pending(vp, idx);
    break;
  }
}

static void
msix_write(NbVirtioPci *vp, unsigned offset, uint64_t value, unsigned size)
{
  if (offset >= NB_VIRTIO_PCI_PBA_OFF)
    return;   /* the PBA is read-only */
  unsigned off = offset - NB_VIRTIO_PCI_MSIX_OFF;
  /* The spec allows dword and qword accesses only; narrower ones are dropped. */
  if ((size != 4 && size != 8) || (off & (size - 1)))
    return;
  g_mutex_lock(&vp->irq_lock);
  msix_write_word(vp, off, (uint32_t)value);
  if (size == 8)
    msix_write_word(vp, off + 4, (uint32_t)(value >> 32));
  g_mutex_unlock(&vp->irq_lock);
}

/* The MSI-X capability's control word changed in config space. */
static void
msix_control_changed(NbVirtioPci *vp)
{
  uint16_t ctrl = vp->pci.config[vp->msix_cap + 2] | (vp->pci.config[vp->msix_cap + 3] << 8);
  g_mutex_lock(&vp->irq_lock);
  bool was_enabled = vp->msix_enabled;
  vp->msix_enabled = ctrl & MSIX_CTRL_ENABLE;
  vp->msix_masked = ctrl & MSIX_CTRL_MASKALL;
  if (vp->msix_enabled && !was_enabled) {
    /* INTx is not used while MSI-X is on. */
    vp->isr = 0;
    nb_pci_device_set_intx(&vp->pci, false);
  }
  if (vp->msix_enabled)
    for (unsigned i = 0; i < vp->n_vectors; i++)
      vector_flush_pending(vp, i);
  g_mutex_unlock(&vp->irq_lock);
}

/* BAR dispatch -------------------------------------------------------------- */

static uint64_t
bar_read(void *opaque, uint64_t offset, unsigned size)
{
  NbVirtioPci *vp = opaque;
  if (offset < NB_VIRTIO_PCI_COMMON_OFF + NB_VIRTIO_PCI_COMMON_SIZE)
    return offset + size <= NB_VIRTIO_PCI_COMMON_SIZE ? common_read(vp, (unsigned)offset, size) : 0;
  if (offset == NB_VIRTIO_PCI_ISR_OFF) {
    /* Reading ISR acknowledges the interrupt. */
    g_mutex_lock(&vp->irq_lock);
    uint8_t isr = vp->isr;
    vp->isr = 0;
    if (isr)
      nb_pci_device_set_intx(&vp->pci, false);
    g_mutex_unlock(&vp->irq_lock);
    return isr;
  }
  if (offset >= NB_VIRTIO_PCI_DEVICE_OFF && offset < NB_VIRTIO_PCI_DEVICE_OFF + NB_VIRTIO_PCI_DEVICE_SIZE) {
    unsigned off = (unsigned)(offset - NB_VIRTIO_PCI_DEVICE_OFF);
    uint64_t v = 0;
    if (off + size <= vp->info.config_size && vp->info.ops->config_read) {
      uint8_t buf[8] = { 0 };
      vp->info.ops->config_read(vp->info.ctx, off, buf, size);
      memcpy(&v, buf, size);
    }
    return GUINT64_FROM_LE(v);
  }
  if (offset >= NB_VIRTIO_PCI_MSIX_OFF && offset + size <= NB_VIRTIO_PCI_BAR_SIZE)
    return msix_read(vp, (unsigned)offset, size);
  return 0;
}

static void
bar_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbVirtioPci *vp = opaque;
  if (offset < NB_VIRTIO_PCI_COMMON_OFF + NB_VIRTIO_PCI_COMMON_SIZE) {
    if (offset + size <= NB_VIRTIO_PCI_COMMON_SIZE)
      common_write(vp, (unsigned)offset, value, size);
    return;
  }
  if (offset >= NB_VIRTIO_PCI_DEVICE_OFF && offset < NB_VIRTIO_PCI_DEVICE_OFF + NB_VIRTIO_PCI_DEVICE_SIZE) {
    unsigned off = (unsigned)(offset - NB_VIRTIO_PCI_DEVICE_OFF);
    if (off + size <= vp->info.config_size && vp->info.ops->config_write) {
      uint64_t le = GUINT64_TO_LE(value);
      vp->info.ops->config_write(vp->info.ctx, off, &le, size);
    }
    return;
  }
  if (offset >= NB_VIRTIO_PCI_NOTIFY_OFF &&
      offset < NB_VIRTIO_PCI_NOTIFY_OFF + NB_VIRTIO_PCI_NOTIFY_MULT * vp->info.num_queues) {
    /* Without an ioeventfd the write traps here: hand it to the worker the
     * same way KVM would. */
    unsigned q = (unsigned)(offset - NB_VIRTIO_PCI_NOTIFY_OFF) / NB_VIRTIO_PCI_NOTIFY_MULT;
    signal_eventfd(vp->queues[q].efd);
    return;
  }
  if (offset >= NB_VIRTIO_PCI_MSIX_OFF && offset + size <= NB_VIRTIO_PCI_BAR_SIZE)
    msix_write(vp, (unsigned)offset, value, size);
}

static const NbIoOps bar_ops = { bar_read, bar_write };

/* PCI callbacks (bus lock held) ------------------------------------------- */

static void
detach_ioeventfds(NbVirtioPci *vp)
{
  NbInterrupts *ir = irqs(vp);
  for (unsigned i = 0; i < vp->info.num_queues; i++) {
    Queue *q = &vp->queues[i];
    if (q->ioeventfd && ir && ir->ops->ioeventfd_detach)
      ir->ops->ioeventfd_detach(ir->ctx, q->efd, q->ioeventfd_addr, 2, false);
    q->ioeventfd = false;
  }
}

static void
pci_bar_changed(NbPciDevice *dev, unsigned index, bool mapped)
{
  NbVirtioPci *vp = dev->opaque;
  if (index != NB_VIRTIO_PCI_BAR)
    return;
  detach_ioeventfds(vp);
  NbInterrupts *ir = irqs(vp);
  if (!mapped || ir == NULL || ir->ops->ioeventfd_attach == NULL)
    return;
  for (unsigned i = 0; i < vp->info.num_queues; i++) {
    Queue *q = &vp->queues[i];
    uint64_t addr = dev->bars[index].addr + NB_VIRTIO_PCI_NOTIFY_OFF + NB_VIRTIO_PCI_NOTIFY_MULT * i;
    g_autoptr(GError) error = NULL;
    /* Drivers notify with a 16-bit write of the queue index. */
    if (ir->ops->ioeventfd_attach(ir->ctx, q->efd, addr, 2, false, &error)) {
      q->ioeventfd = true;
      q->ioeventfd_addr = addr;
    } else {
      g_debug("virtio %s: queue %u notifies will trap: %s", vp->info.name, i, error->message);
    }
  }
}

static uint32_t
config_le32(const NbPciDevice *dev, unsigned off)
{
  uint32_t v;
  memcpy(&v, dev->config + off, 4);
  return GUINT32_FROM_LE(v);
}

/* VIRTIO_PCI_CAP_PCI_CFG (4.1.4.9): the driver names a BAR offset and
 * length in the capability, then writes or reads pci_cfg_data. The bus
 * answers config reads from the config bytes without asking the device, so
 * the BAR is read when the window is set up and the value left in
 * pci_cfg_data for the read that follows. */
static void
pci_cfg_window(NbVirtioPci *vp, unsigned offset, unsigned size)
{
  NbPciDevice *dev = &vp->pci;
  unsigned cap = vp->pci_cfg_cap;
  unsigned bar_field = cap + 4, off_field = cap + 8, data_field = cap + 16;
  if (offset >= data_field + 4 || offset + size <= bar_field)
    return;
  uint32_t bar_off = config_le32(dev, off_field);
  uint32_t len = config_le32(dev, off_field + 4);
  bool valid = dev->config[bar_field] == NB_VIRTIO_PCI_BAR && (len == 1 || len == 2 || len == 4) &&
               bar_off % len == 0 && bar_off <= NB_VIRTIO_PCI_BAR_SIZE - len;
  if (!valid)
    return;
  if (offset < data_field + 4 && offset + size > data_field) {
    bar_write(vp, bar_off, config_le32(dev, data_field), len);
  } else {
    uint32_t v = GUINT32_TO_LE((uint32_t)bar_read(vp, bar_off, len));
    memcpy(dev->config + data_field, &v, 4);
  }
}

static void
pci_config_written(NbPciDevice *dev, unsigned offset, unsigned size)
{
  NbVirtioPci *vp = dev->opaque;
  unsigned ctrl = vp->msix_cap + 2;
  if (offset < ctrl + 2 && offset + size > ctrl)
    msix_control_changed(vp);
  pci_cfg_window(vp, offset, size);
}

static const NbPciDeviceOps pci_ops = { pci_config_written, pci_bar_changed };

/* Worker -------------------------------------------------------------------- */

static void
queue_event(void *ctx, int fd, uint32_t events)
{
  NbVirtioPci *vp = ctx;
  uint64_t count;
  if (read(fd, &count, sizeof count) < 0)
    return;
  for (unsigned i = 0; i < vp->info.num_queues; i++) {
    if (vp->queues[i].efd != fd)
      continue;
    if (nb_virtio_pci_is_active(vp) && vp->queues[i].enabled && !vp->queues[i].vq.broken)
      vp->info.ops->queue_notify(vp->info.ctx, i);
    return;
  }
}

static void
stop_event(void *ctx, int fd, uint32_t events)
{
  NbVirtioPci *vp = ctx;
  vp->stopping = true;
}

static gpointer
worker_main(gpointer data)
{
  NbVirtioPci *vp = data;
  struct epoll_event events[16];
  for (;;) {
    int n = epoll_wait(vp->epfd, events, G_N_ELEMENTS(events), -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      g_warning("virtio %s: worker stops: epoll_wait: %s", vp->info.name, g_strerror(errno));
      break;
    }
    g_mutex_lock(&vp->lock);
    for (int i = 0; i < n; i++) {
      Watch *w = events[i].data.ptr;
      if (!w->dead)
        w->func(w->ctx, w->fd, events[i].events);
    }
    /* Watches removed during this batch may still have had events in it. */
    g_ptr_array_set_size(vp->dead_watches, 0);
    bool stop = vp->stopping;
    g_mutex_unlock(&vp->lock);
    if (stop)
      break;
  }
  return NULL;
}

bool
nb_virtio_pci_watch_fd(NbVirtioPci *vp, int fd, uint32_t epoll_events, NbVirtioFdFunc func,
                       void *ctx, GError **error)
{
  Watch *w = g_new0(Watch, 1);
  w->fd = fd;
  w->func = func;
  w->ctx = ctx;
  struct epoll_event ev = { .events = epoll_events, .data.ptr = w };
  if (epoll_ctl(vp->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int e = errno;
    g_free(w);
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                "virtio %s: cannot watch fd %d: %s", vp->info.name, fd, g_strerror(e));
    return false;
  }
  g_hash_table_replace(vp->watches, GINT_TO_POINTER(fd), w);
  return true;
}

void
nb_virtio_pci_modify_fd(NbVirtioPci *vp, int fd, uint32_t epoll_events)
{
  Watch *w = g_hash_table_lookup(vp->watches, GINT_TO_POINTER(fd));
  if (w == NULL)
    return;
  struct epoll_event ev = { .events = epoll_events, .data.ptr = w };
  (void)epoll_ctl(vp->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void
nb_virtio_pci_unwatch_fd(NbVirtioPci *vp, int fd)
{
  Watch *w = g_hash_table_lookup(vp->watches, GINT_TO_POINTER(fd));
  if (w == NULL)
    return;
  (void)epoll_ctl(vp->epfd, EPOLL_CTL_DEL, fd, NULL);
  w->dead = true;
  g_hash_table_steal(vp->watches, GINT_TO_POINTER(fd));
  g_ptr_array_add(vp->dead_watches, w);
}

/* Construction -------------------------------------------------------------- */

static void
add_virtio_cap(NbVirtioPci *vp, uint8_t type, uint32_t offset, uint32_t length, bool notify)
{
  uint8_t body[18] = { 0 };
  unsigned len = notify ? 18 : 14;
  body[0] = (uint8_t)(len + 2);   /* cap_len counts the ID and next bytes */
  body[1] = type;
  body[2] = NB_VIRTIO_PCI_BAR;
  uint32_t v = GUINT32_TO_LE(offset);
  memcpy(body + 6, &v, 4);
  v = GUINT32_TO_LE(length);
  memcpy(body + 10, &v, 4);
  if (notify) {
    v = GUINT32_TO_LE(NB_VIRTIO_PCI_NOTIFY_MULT);
    memcpy(body + 14, &v, 4);
  }
  nb_pci_device_add_capability(&vp->pci, NB_PCI_CAP_ID_VENDOR, body, len, NULL);
}

static void
add_msix_cap(NbVirtioPci *vp)
{
  uint8_t body[10] = { 0 };
  uint8_t writable[10] = { 0 };
  uint16_t ctrl = GUINT16_TO_LE((uint16_t)(vp->n_vectors - 1));
  memcpy(body, &ctrl, 2);
  uint32_t table = GUINT32_TO_LE(NB_VIRTIO_PCI_MSIX_OFF | NB_VIRTIO_PCI_BAR);
  uint32_t pba = GUINT32_TO_LE(NB_VIRTIO_PCI_PBA_OFF | NB_VIRTIO_PCI_BAR);
  memcpy(body + 2, &table, 4);
  memcpy(body + 6, &pba, 4);
  writable[1] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8;
  vp->msix_cap = nb_pci_device_add_capability(&vp->pci, NB_PCI_CAP_ID_MSIX, body, sizeof body,
                                              writable);
}

static int
new_eventfd(const char *what, GError **error)
{
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0)
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED, "cannot create %s eventfd: %s",
                what, g_strerror(errno));
  return fd;
}

NbVirtioPci *
nb_virtio_pci_new(NbGuestMemory *mem, const NbVirtioDeviceInfo *info, GError **error)
{
  g_return_val_if_fail(info->num_queues >= 1 && info->num_queues <= NB_VIRTIO_MAX_QUEUES, NULL);
  g_return_val_if_fail(info->queue_size >= 1 && info->queue_size <= NB_VIRTQ_MAX_SIZE &&
                       (info->queue_size & (info->queue_size - 1)) == 0, NULL);
  g_return_val_if_fail(info->config_size <= NB_VIRTIO_PCI_DEVICE_SIZE, NULL);
  g_return_val_if_fail(info->ops && info->ops->queue_notify, NULL);

  NbVirtioPci *vp = g_new0(NbVirtioPci, 1);
  vp->mem = mem;
  vp->info = *info;
  vp->features = info->features | TRANSPORT_FEATURES;
  g_mutex_init(&vp->lock);
  g_mutex_init(&vp->irq_lock);
  vp->epfd = -1;
  vp->stop_efd = -1;
  vp->watches = g_hash_table_new_full(NULL, NULL, NULL, g_free);
  vp->dead_watches = g_ptr_array_new_with_free_func(g_free);
  for (unsigned i = 0; i < NB_VIRTIO_MAX_QUEUES; i++)
    vp->queues[i].efd = -1;
  for (unsigned i = 0; i < NB_VIRTIO_MAX_VECTORS; i++) {
    vp->vectors[i].irqfd = -1;
    vp->vectors[i].gsi = -1;
    vp->vectors[i].ctrl = MSIX_ENTRY_MASKED;
  }
  vp->n_vectors = info->num_queues + 1;

  nb_pci_device_init(&vp->pci, info->name, NB_VIRTIO_PCI_VENDOR,
                     NB_VIRTIO_PCI_DEVICE_BASE + info->device_id, info->pci_class, 1,
                     NB_VIRTIO_PCI_VENDOR, 0x1100);
  vp->pci.ops = &pci_ops;
  vp->pci.opaque = vp;
  nb_pci_device_set_bar(&vp->pci, NB_VIRTIO_PCI_BAR, NB_PCI_BAR_MEM32, NB_VIRTIO_PCI_BAR_SIZE,
                        &bar_ops, vp);
  add_virtio_cap(vp, CAP_COMMON_CFG, NB_VIRTIO_PCI_COMMON_OFF, NB_VIRTIO_PCI_COMMON_SIZE, false);
  add_virtio_cap(vp, CAP_ISR_CFG, NB_VIRTIO_PCI_ISR_OFF, 1, false);
  if (info->config_size > 0)
    add_virtio_cap(vp, CAP_DEVICE_CFG, NB_VIRTIO_PCI_DEVICE_OFF, info->config_size, false);
  add_virtio_cap(vp, CAP_NOTIFY_CFG, NB_VIRTIO_PCI_NOTIFY_OFF,
                 NB_VIRTIO_PCI_NOTIFY_MULT * info->num_queues, true);
  add_msix_cap(vp);
  {
    uint8_t body[18] = { 0 }, writable[18] = { 0 };
    body[0] = 20;
    body[1] = CAP_PCI_CFG;
    writable[2] = 0xff;                  /* bar */
    memset(writable + 6, 0xff, 12);      /* offset, length, data */
    vp->pci_cfg_cap = nb_pci_device_add_capability(&vp->pci, NB_PCI_CAP_ID_VENDOR, body,
                                                   sizeof body, writable);
  }

  vp->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (vp->epfd < 0) {
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED, "cannot create epoll: %s",
                g_strerror(errno));
    goto fail;
  }
  for (unsigned i = 0; i < info->num_queues; i++) {
    Queue *q = &vp->queues[i];
    nb_virtqueue_init(&q->vq, mem);
    q->size = info->queue_size;
    q->msix_vector = NB_VIRTIO_MSI_NO_VECTOR;
    q->efd = new_eventfd("queue", error);
    if (q->efd < 0 || !nb_virtio_pci_watch_fd(vp, q->efd, EPOLLIN, queue_event, vp, error))
      goto fail;
  }
  for (unsigned i = 0; i < vp->n_vectors; i++)
    if ((vp->vectors[i].irqfd = new_eventfd("irq", error)) < 0)
      goto fail;
  vp->msix_config = NB_VIRTIO_MSI_NO_VECTOR;
  vp->stop_efd = new_eventfd("stop", error);
  if (vp->stop_efd < 0 || !nb_virtio_pci_watch_fd(vp, vp->stop_efd, EPOLLIN, stop_event, vp, error))
    goto fail;

  char *thread_name = g_strdup_printf("virtio-%s", info->name);
  vp->worker = g_thread_try_new(thread_name, worker_main, vp, error);
  g_free(thread_name);
  if (vp->worker == NULL)
    goto fail;
  return vp;

fail:
  nb_virtio_pci_free(vp);
  return NULL;
}

void
nb_virtio_pci_stop(NbVirtioPci *vp)
{
  if (vp->worker) {
    signal_eventfd(vp->stop_efd);
    g_thread_join(vp->worker);
    vp->worker = NULL;
  }
}

void
nb_virtio_pci_free(NbVirtioPci *vp)
{
  if (vp == NULL)
    return;
  nb_virtio_pci_stop(vp);
  NbInterrupts *ir = irqs(vp);
  detach_ioeventfds(vp);
  for (unsigned i = 0; i < vp->n_vectors; i++) {
    Vector *v = &vp->vectors[i];
    if (ir && v->irqfd_attached && ir->ops->irqfd_detach)
      ir->ops->irqfd_detach(ir->ctx, v->irqfd, (unsigned)v->gsi);
    if (ir && v->gsi >= 0 && ir->ops->msi_route_free)
      ir->ops->msi_route_free(ir->ctx, (unsigned)v->gsi);
    if (v->irqfd >= 0)
      close(v->irqfd);
  }
  for (unsigned i = 0; i < NB_VIRTIO_MAX_QUEUES; i++)
    if (vp->queues[i].efd >= 0)
      close(vp->queues[i].efd);
  if (vp->stop_efd >= 0)
    close(vp->stop_efd);
  if (vp->epfd >= 0)
    close(vp->epfd);
  g_hash_table_destroy(vp->watches);
  g_ptr_array_free(vp->dead_watches, TRUE);
  nb_pci_device_clear(&vp->pci);
  g_mutex_clear(&vp->lock);
  g_mutex_clear(&vp->irq_lock);
  g_free(vp);
}
