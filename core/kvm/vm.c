#include "kvm/vm.h"
#include "kvm/coalesced-ring.h"
#include "kvm/memory-map.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

G_DEFINE_QUARK(nb-kvm-error-quark, nb_kvm_error)

#define MAX_GSI        1024
#define IOAPIC_PINS    24
#define MAX_SLOTS      32

typedef struct {
  bool used;
  uint64_t gpa;
  uint64_t size;
  void *host;
} NbMemSlot;

struct NbVm {
  int kvm_fd;
  int vm_fd;
  NbGuestMemory *mem;
  NbIoBus *pio;
  NbIoBus *mmio;
  NbInterrupts interrupts;

  GMutex routing_lock;
  struct kvm_irq_routing *routing;   /* entries for every GSI in use */
  unsigned n_routes;
  uint8_t gsi_used[MAX_GSI];

  GMutex slot_lock;
  NbMemSlot slots[MAX_SLOTS];

  /* KVM's coalesced I/O ring, mapped from the first vCPU's file. */
  GMutex coalesced_lock;
  struct kvm_coalesced_mmio_ring *coalesced_ring;
  size_t coalesced_ring_size;
  unsigned coalesced_slots;
  bool coalescing;          /* a range is registered: the ring may fill */
};

int
nb_kvm_open(GError **error)
{
  const char *path = g_getenv("NESTBOX_KVM_DEVICE");
  if (path == NULL || *path == '\0')
    path = "/dev/kvm";

  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT)
      g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_UNAVAILABLE,
                  "KVM is not available: %s is missing — enable virtualization (VT-x or AMD-V) "
                  "in the firmware settings and load the kvm_intel or kvm_amd module",
                  path);
    else if (err == EACCES || err == EPERM)
      g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_UNAVAILABLE,
                  "KVM is not available: no permission to open %s — add your user to the "
                  "“kvm” group (sudo usermod -aG kvm $USER) and log in again",
                  path);
    else
      g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_UNAVAILABLE,
                  "KVM is not available: cannot open %s: %s", path, g_strerror(err));
    return -1;
  }
  int version = ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_UNSUPPORTED,
                "KVM is not available: %s is not a KVM device with API version %d (got %d)",
                path, KVM_API_VERSION, version);
    close(fd);
    return -1;
  }
  return fd;
}

static bool
check_extension(NbVm *vm, int cap, const char *what, GError **error)
{
  if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap) > 0)
    return true;
  g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_UNSUPPORTED,
              "this host's KVM lacks %s, which Nestbox needs — update the host kernel", what);
  return false;
}

static bool
set_slot(NbVm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *host, uint32_t flags,
         GError **error)
{
  struct kvm_userspace_memory_region region = {
    .slot = slot,
    .flags = flags,
    .guest_phys_addr = gpa,
    .memory_size = size,
    .userspace_addr = (uintptr_t)host,
  };
  if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED,
                "cannot map %" G_GUINT64_FORMAT " bytes of guest memory at 0x%" G_GINT64_MODIFIER
                "x: %s",
                size, gpa, g_strerror(errno));
    return false;
  }
  return true;
}

bool
nb_vm_map_rom(NbVm *vm, uint64_t gpa, uint64_t size, const void *host, GError **error)
{
  /* Writes to a read-only slot exit as MMIO, where nothing answers them:
   * the guest cannot change its firmware image. */
  if (!check_extension(vm, KVM_CAP_READONLY_MEM, "read-only memory slots (for the firmware)", error))
    return false;
  g_mutex_lock(&vm->slot_lock);
  bool ok = false;
  unsigned i = 0;
  while (i < MAX_SLOTS && vm->slots[i].used)
    i++;
  if (i == MAX_SLOTS)
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "no memory slot left for the firmware");
  else if ((ok = set_slot(vm, i, gpa, size, (void *)host, KVM_MEM_READONLY, error)))
    vm->slots[i] = (NbMemSlot){ true, gpa, size, NULL };
  g_mutex_unlock(&vm->slot_lock);
  return ok;
}

bool
nb_vm_map_ram(void *opaque, uint64_t gpa, uint64_t size, void *host, GError **error)
{
  NbVm *vm = opaque;
  g_mutex_lock(&vm->slot_lock);
  bool ok = false;
  if (host == NULL) {
    for (unsigned i = 0; i < MAX_SLOTS; i++) {
      if (vm->slots[i].used && vm->slots[i].gpa == gpa) {
        ok = set_slot(vm, i, gpa, 0, NULL, 0, error);
        vm->slots[i].used = false;
        g_debug("memory slot %u at 0x%" G_GINT64_MODIFIER "x removed", i, gpa);
        break;
      }
    }
  } else {
    for (unsigned i = 0; i < MAX_SLOTS; i++) {
      if (!vm->slots[i].used) {
        /* Mapped host memory is a framebuffer: log its writes so displays
         * look only at what the guest drew on. */
        ok = set_slot(vm, i, gpa, size, host, KVM_MEM_LOG_DIRTY_PAGES, error);
        if (ok)
          vm->slots[i] = (NbMemSlot){ true, gpa, size, host };
        g_debug("memory slot %u: %" G_GUINT64_FORMAT " KiB of host memory at 0x%" G_GINT64_MODIFIER
                "x%s", i, size >> 10, gpa, ok ? "" : " failed");
        break;
      }
    }
  }
  g_mutex_unlock(&vm->slot_lock);
  return ok;
}

bool
nb_vm_get_dirty_log(NbVm *vm, const void *host, unsigned long *bitmap, size_t n_pages)
{
  bool ok = false;
  g_mutex_lock(&vm->slot_lock);
  for (unsigned i = 0; i < MAX_SLOTS; i++) {
    if (!vm->slots[i].used || vm->slots[i].host != host)
      continue;
    /* KVM fills one bit per page of the slot: the caller's bitmap must hold
     * them all. */
    if (vm->slots[i].size / 4096 > n_pages)
      break;
    memset(bitmap, 0, (n_pages + 7) / 8);
    struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = bitmap };
    ok = ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) == 0;
    break;
  }
  g_mutex_unlock(&vm->slot_lock);
  return ok;
}

/* Interrupt routing ---------------------------------------------------------- */

static bool
commit_routing(NbVm *vm, GError **error)
{
  vm->routing->nr = vm->n_routes;
  vm->routing->flags = 0;
  if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->routing) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "cannot set interrupt routing: %s",
                g_strerror(errno));
    return false;
  }
  return true;
}

static void
add_irqchip_routes(NbVm *vm)
{
  /* The default routing KVM installs with the irqchip, which setting any
   * routing replaces: ISA IRQs to both PICs (except 2) and the IOAPIC. */
  for (unsigned gsi = 0; gsi < IOAPIC_PINS; gsi++) {
    if (gsi < 16 && gsi != 2) {
      struct kvm_irq_routing_entry *e = &vm->routing->entries[vm->n_routes++];
      memset(e, 0, sizeof *e);
      e->gsi = gsi;
      e->type = KVM_IRQ_ROUTING_IRQCHIP;
      e->u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
      e->u.irqchip.pin = gsi % 8;
    }
    struct kvm_irq_routing_entry *e = &vm->routing->entries[vm->n_routes++];
    memset(e, 0, sizeof *e);
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_IRQCHIP;
    e->u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
    e->u.irqchip.pin = gsi;
    vm->gsi_used[gsi] = 1;
  }
}

static void
vm_set_line(void *ctx, unsigned gsi, bool level)
{
  NbVm *vm = ctx;
  struct kvm_irq_level irq = { .irq = gsi, .level = level };
  if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
    g_warning("KVM_IRQ_LINE %u failed: %s", gsi, g_strerror(errno));
}

static void
vm_msi_send(void *ctx, uint64_t address, uint32_t data)
{
  NbVm *vm = ctx;
  struct kvm_msi msi = {
    .address_lo = (uint32_t)address,
    .address_hi = (uint32_t)(address >> 32),
    .data = data,
  };
  if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
    g_warning("KVM_SIGNAL_MSI failed: %s", g_strerror(errno));
}

static struct kvm_irq_routing_entry *
find_route(NbVm *vm, unsigned gsi)
{
  for (unsigned i = 0; i < vm->n_routes; i++)
    if (vm->routing->entries[i].gsi == gsi && vm->routing->entries[i].type == KVM_IRQ_ROUTING_MSI)
      return &vm->routing->entries[i];
  return NULL;
}

static int
vm_msi_route_new(void *ctx, uint64_t address, uint32_t data, GError **error)
{
  NbVm *vm = ctx;
  g_mutex_lock(&vm->routing_lock);
  unsigned gsi = IOAPIC_PINS;
  while (gsi < MAX_GSI && vm->gsi_used[gsi])
    gsi++;
  if (gsi == MAX_GSI) {
    g_mutex_unlock(&vm->routing_lock);
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "out of interrupt routes");
    return -1;
  }
  struct kvm_irq_routing_entry *e = &vm->routing->entries[vm->n_routes++];
  memset(e, 0, sizeof *e);
  e->gsi = gsi;
  e->type = KVM_IRQ_ROUTING_MSI;
  e->u.msi.address_lo = (uint32_t)address;
  e->u.msi.address_hi = (uint32_t)(address >> 32);
  e->u.msi.data = data;
  if (!commit_routing(vm, error)) {
    vm->n_routes--;
    g_mutex_unlock(&vm->routing_lock);
    return -1;
  }
  vm->gsi_used[gsi] = 1;
  g_mutex_unlock(&vm->routing_lock);
  return (int)gsi;
}

static bool
vm_msi_route_set(void *ctx, unsigned gsi, uint64_t address, uint32_t data, GError **error)
{
  NbVm *vm = ctx;
  g_mutex_lock(&vm->routing_lock);
  struct kvm_irq_routing_entry *e = find_route(vm, gsi);
  if (e == NULL) {
    g_mutex_unlock(&vm->routing_lock);
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "no MSI route %u", gsi);
    return false;
  }
  e->u.msi.address_lo = (uint32_t)address;
  e->u.msi.address_hi = (uint32_t)(address >> 32);
  e->u.msi.data = data;
  bool ok = commit_routing(vm, error);
  g_mutex_unlock(&vm->routing_lock);
  return ok;
}

static void
vm_msi_route_free(void *ctx, unsigned gsi)
{
  NbVm *vm = ctx;
  g_mutex_lock(&vm->routing_lock);
  struct kvm_irq_routing_entry *e = find_route(vm, gsi);
  if (e != NULL) {
    *e = vm->routing->entries[--vm->n_routes];
    vm->gsi_used[gsi] = 0;
    commit_routing(vm, NULL);
  }
  g_mutex_unlock(&vm->routing_lock);
}

static bool
vm_irqfd_attach(void *ctx, int eventfd, unsigned gsi, GError **error)
{
  NbVm *vm = ctx;
  struct kvm_irqfd irqfd = { .fd = (uint32_t)eventfd, .gsi = gsi };
  if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "cannot attach irqfd to GSI %u: %s",
                gsi, g_strerror(errno));
    return false;
  }
  return true;
}

static void
vm_irqfd_detach(void *ctx, int eventfd, unsigned gsi)
{
  NbVm *vm = ctx;
  struct kvm_irqfd irqfd = { .fd = (uint32_t)eventfd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };
  (void)ioctl(vm->vm_fd, KVM_IRQFD, &irqfd);
}

static bool
vm_ioeventfd_attach(void *ctx, int eventfd, uint64_t addr, unsigned len, bool pio, GError **error)
{
  NbVm *vm = ctx;
  struct kvm_ioeventfd io = {
    .addr = addr, .len = len, .fd = eventfd,
    .flags = pio ? KVM_IOEVENTFD_FLAG_PIO : 0,
  };
  if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED,
                "cannot attach ioeventfd at 0x%" G_GINT64_MODIFIER "x: %s", addr, g_strerror(errno));
    return false;
  }
  return true;
}

static void
vm_ioeventfd_detach(void *ctx, int eventfd, uint64_t addr, unsigned len, bool pio)
{
  NbVm *vm = ctx;
  struct kvm_ioeventfd io = {
    .addr = addr, .len = len, .fd = eventfd,
    .flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | KVM_IOEVENTFD_FLAG_DEASSIGN,
  };
  (void)ioctl(vm->vm_fd, KVM_IOEVENTFD, &io);
}

static const NbInterruptOps vm_interrupt_ops = {
  .set_line = vm_set_line,
  .msi_send = vm_msi_send,
  .msi_route_new = vm_msi_route_new,
  .msi_route_set = vm_msi_route_set,
  .msi_route_free = vm_msi_route_free,
  .irqfd_attach = vm_irqfd_attach,
  .irqfd_detach = vm_irqfd_detach,
  .ioeventfd_attach = vm_ioeventfd_attach,
  .ioeventfd_detach = vm_ioeventfd_detach,
};

/* Creation ----------------------------------------------------------------- */

NbVm *
nb_vm_new(NbGuestMemory *mem, GError **error)
{
  int kvm_fd = nb_kvm_open(error);
  if (kvm_fd < 0)
    return NULL;

  NbVm *vm = g_new0(NbVm, 1);
  vm->kvm_fd = kvm_fd;
  vm->vm_fd = -1;
  vm->mem = mem;
  g_mutex_init(&vm->routing_lock);
  g_mutex_init(&vm->slot_lock);
  g_mutex_init(&vm->coalesced_lock);
  vm->pio = nb_io_bus_new("port I/O");
  vm->mmio = nb_io_bus_new("MMIO");
  vm->interrupts = (NbInterrupts){ &vm_interrupt_ops, vm };
  vm->routing = g_malloc0(sizeof(struct kvm_irq_routing) +
                          (MAX_GSI + 64) * sizeof(struct kvm_irq_routing_entry));

  if (!check_extension(vm, KVM_CAP_IRQCHIP, "an in-kernel interrupt controller", error) ||
      !check_extension(vm, KVM_CAP_USER_MEMORY, "user memory regions", error) ||
      !check_extension(vm, KVM_CAP_IRQ_ROUTING, "interrupt routing", error) ||
      !check_extension(vm, KVM_CAP_IRQFD, "irqfd", error) ||
      !check_extension(vm, KVM_CAP_IOEVENTFD, "ioeventfd", error) ||
      !check_extension(vm, KVM_CAP_PIT2, "an in-kernel PIT", error) ||
      !check_extension(vm, KVM_CAP_SIGNAL_MSI, "MSI injection", error) ||
      !check_extension(vm, KVM_CAP_EXT_CPUID, "CPUID configuration", error))
    goto fail;

  do {
    vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
  } while (vm->vm_fd < 0 && errno == EINTR);
  if (vm->vm_fd < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED,
                "cannot create a KVM virtual machine: %s — is another hypervisor (VirtualBox, "
                "VMware) holding the virtualization extensions?",
                g_strerror(errno));
    goto fail;
  }
  fcntl(vm->vm_fd, F_SETFD, FD_CLOEXEC);

  /* Intel VMX needs three pages for the real-mode TSS and one for the
   * identity map, somewhere the guest never uses: just below the BIOS. */
  if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)0xfffbd000) < 0 && errno != ENOTTY) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM_SET_TSS_ADDR: %s", g_strerror(errno));
    goto fail;
  }
  uint64_t identity = 0xfffbc000;
  (void)ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity);

  if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "cannot create the interrupt controller: %s",
                g_strerror(errno));
    goto fail;
  }
  struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
  if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "cannot create the timer (PIT): %s",
                g_strerror(errno));
    goto fail;
  }

  add_irqchip_routes(vm);
  if (!commit_routing(vm, error))
    goto fail;

  for (unsigned i = 0; i < mem->n_regions; i++) {
    if (!set_slot(vm, i, mem->regions[i].gpa, mem->regions[i].size, mem->regions[i].host, 0, error))
      goto fail;
    vm->slots[i] = (NbMemSlot){ true, mem->regions[i].gpa, mem->regions[i].size, mem->regions[i].host };
  }
  return vm;

fail:
  nb_vm_free(vm);
  return NULL;
}

void
nb_vm_free(NbVm *vm)
{
  if (vm == NULL)
    return;
  if (vm->coalesced_ring)
    munmap(vm->coalesced_ring, vm->coalesced_ring_size);
  g_mutex_clear(&vm->coalesced_lock);
  if (vm->vm_fd >= 0)
    close(vm->vm_fd);
  close(vm->kvm_fd);
  nb_io_bus_free(vm->pio);
  nb_io_bus_free(vm->mmio);
  g_free(vm->routing);
  g_mutex_clear(&vm->routing_lock);
  g_mutex_clear(&vm->slot_lock);
  g_free(vm);
}

int nb_vm_kvm_fd(NbVm *vm) { return vm->kvm_fd; }
int nb_vm_fd(NbVm *vm) { return vm->vm_fd; }
NbGuestMemory *nb_vm_memory(NbVm *vm) { return vm->mem; }
NbIoBus *nb_vm_pio(NbVm *vm) { return vm->pio; }
NbIoBus *nb_vm_mmio(NbVm *vm) { return vm->mmio; }
NbInterrupts *nb_vm_interrupts(NbVm *vm) { return &vm->interrupts; }

/* Coalesced port writes ---------------------------------------------------- */

void
nb_vm_map_coalesced_ring(NbVm *vm, int vcpu_fd, size_t run_size)
{
  g_mutex_lock(&vm->coalesced_lock);
  int page = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
  long page_size = sysconf(_SC_PAGESIZE);
  /* The ring is the VM's, at the same page of every vCPU's file: one
   * mapping of its own outlives the vCPU it came from. */
  if (vm->coalesced_ring == NULL && page > 0 && page_size > 0 &&
      (size_t)(page + 1) * (size_t)page_size <= run_size) {
    void *ring = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd,
                      (off_t)page * page_size);
    if (ring != MAP_FAILED) {
      vm->coalesced_ring = ring;
      vm->coalesced_ring_size = (size_t)page_size;
      vm->coalesced_slots = nb_coalesced_ring_slots((size_t)page_size);
    }
  }
  g_mutex_unlock(&vm->coalesced_lock);
}

bool
nb_vm_coalesce_pio(NbVm *vm, uint16_t port, unsigned len)
{
  if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) <= 0)
    return false;
  g_mutex_lock(&vm->coalesced_lock);
  bool ok = false;
  if (vm->coalesced_ring) {
    struct kvm_coalesced_mmio_zone zone = { .addr = port, .size = len, .pio = 1 };
    ok = ioctl(vm->vm_fd, KVM_REGISTER_COALESCED_MMIO, &zone) == 0;
    if (ok)
      __atomic_store_n(&vm->coalescing, true, __ATOMIC_RELEASE);
  }
  g_mutex_unlock(&vm->coalesced_lock);
  return ok;
}

static void
replay_write(void *ctx, bool pio, uint64_t addr, const uint8_t *data, unsigned len)
{
  NbVm *vm = ctx;
  nb_io_bus_write(pio ? vm->pio : vm->mmio, addr, data, len);
}

void
nb_vm_flush_coalesced(NbVm *vm)
{
  if (!__atomic_load_n(&vm->coalescing, __ATOMIC_ACQUIRE))
    return;
  struct kvm_coalesced_mmio_ring *ring = vm->coalesced_ring;
  /* Most exits find it empty: no lock for that. */
  if (__atomic_load_n(&ring->first, __ATOMIC_RELAXED) ==
      __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE))
    return;
  g_mutex_lock(&vm->coalesced_lock);
  nb_coalesced_ring_drain(ring, vm->coalesced_slots, replay_write, vm);
  g_mutex_unlock(&vm->coalesced_lock);
}
