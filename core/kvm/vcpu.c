#include "kvm/vcpu.h"
#include "boot/boot-layout.h"
#include "kvm/cpuid.h"
#include "kvm/memory-map.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define NB_VCPU_KICK_SIGNAL SIGUSR1

/* The 64-bit entry's GDT and page tables, where boot-layout.h reserves room:
 * PML4, PDPT, then four page directories mapping the first 4 GiB. */
#define BOOT_GDT_ADDR   NB_BOOT_GDT_ADDR
#define BOOT_PML4_ADDR  NB_BOOT_PAGE_TABLES_ADDR
#define BOOT_PDPT_ADDR  (NB_BOOT_PAGE_TABLES_ADDR + 0x1000)
#define BOOT_PD_ADDR    (NB_BOOT_PAGE_TABLES_ADDR + 0x2000)
G_STATIC_ASSERT(BOOT_PD_ADDR + 4 * 0x1000 <= NB_BOOT_PAGE_TABLES_END);

#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR              0xc0000081
#define MSR_LSTAR             0xc0000082
#define MSR_CSTAR             0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102
#define MSR_IA32_TSC          0x10
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff

#define MISC_ENABLE_FAST_STRING (1u << 0)
#define MTRR_ENABLE             (1u << 11)
#define MTRR_TYPE_WRBACK        6

#define APIC_LVT0   0x350
#define APIC_LVT1   0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI    0x4

struct NbVcpu {
  NbVm *vm;
  unsigned index;
  int fd;
  struct kvm_run *run;
  size_t run_size;
  pthread_t thread;
  bool thread_bound;
};

static void
kick_handler(int sig)
{
  (void)sig;
}

void
nb_vcpu_init_signals(void)
{
  static gsize once = 0;
  if (g_once_init_enter(&once)) {
    struct sigaction sa = { 0 };
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: KVM_RUN must come back with EINTR. */
    sigaction(NB_VCPU_KICK_SIGNAL, &sa, NULL);
    g_once_init_leave(&once, 1);
  }
}

static bool
set_msrs(NbVcpu *vcpu, GError **error)
{
  static const struct { uint32_t index; uint64_t value; } msrs[] = {
    { MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 }, { MSR_IA32_SYSENTER_EIP, 0 },
    { MSR_STAR, 0 }, { MSR_CSTAR, 0 }, { MSR_KERNEL_GS_BASE, 0 }, { MSR_SYSCALL_MASK, 0 },
    { MSR_LSTAR, 0 }, { MSR_IA32_TSC, 0 },
    { MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
    /* Without enabled MTRRs a guest would treat all memory as uncached. */
    { MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK },
  };
  struct kvm_msrs *m = g_malloc0(sizeof *m + G_N_ELEMENTS(msrs) * sizeof(struct kvm_msr_entry));
  m->nmsrs = G_N_ELEMENTS(msrs);
  for (unsigned i = 0; i < G_N_ELEMENTS(msrs); i++) {
    m->entries[i].index = msrs[i].index;
    m->entries[i].data = msrs[i].value;
  }
  int set = ioctl(vcpu->fd, KVM_SET_MSRS, m);
  g_free(m);
  if (set != (int)G_N_ELEMENTS(msrs)) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED,
                "cannot set the model-specific registers of vCPU %u (%d of %u set)", vcpu->index,
                set, (unsigned)G_N_ELEMENTS(msrs));
    return false;
  }
  return true;
}

static bool
set_lapic_lints(NbVcpu *vcpu, GError **error)
{
  struct kvm_lapic_state lapic;
  if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM_GET_LAPIC: %s", g_strerror(errno));
    return false;
  }
  /* As on PCs: LINT0 takes the 8259's ExtINT, LINT1 is NMI. */
  uint32_t lvt0, lvt1;
  memcpy(&lvt0, lapic.regs + APIC_LVT0, 4);
  memcpy(&lvt1, lapic.regs + APIC_LVT1, 4);
  lvt0 = (lvt0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
  lvt1 = (lvt1 & ~0x700u) | (APIC_MODE_NMI << 8);
  memcpy(lapic.regs + APIC_LVT0, &lvt0, 4);
  memcpy(lapic.regs + APIC_LVT1, &lvt1, 4);
  if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM_SET_LAPIC: %s", g_strerror(errno));
    return false;
  }
  return true;
}

NbVcpu *
nb_vcpu_new(NbVm *vm, unsigned index, unsigned n_cpus, const struct kvm_cpuid2 *supported,
            GError **error)
{
  NbVcpu *vcpu = g_new0(NbVcpu, 1);
  vcpu->vm = vm;
  vcpu->index = index;
  vcpu->fd = ioctl(nb_vm_fd(vm), KVM_CREATE_VCPU, (unsigned long)index);
  if (vcpu->fd < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "cannot create vCPU %u: %s", index,
                g_strerror(errno));
    g_free(vcpu);
    return NULL;
  }
  int run_size = ioctl(nb_vm_kvm_fd(vm), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM_GET_VCPU_MMAP_SIZE: %s",
                g_strerror(errno));
    goto fail;
  }
  vcpu->run_size = (size_t)run_size;
  vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
  if (vcpu->run == MAP_FAILED) {
    vcpu->run = NULL;
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "cannot map vCPU %u's run page: %s",
                index, g_strerror(errno));
    goto fail;
  }
  nb_vm_map_coalesced_ring(vm, vcpu->fd, vcpu->run_size);

  struct kvm_cpuid2 *cpuid = nb_cpuid_for_vcpu(supported, index, n_cpus);
  int set = ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid);
  g_free(cpuid);
  if (set < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "cannot set CPUID of vCPU %u: %s",
                index, g_strerror(errno));
    goto fail;
  }
  if (!set_msrs(vcpu, error) || !set_lapic_lints(vcpu, error))
    goto fail;

  struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
  if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM_SET_FPU: %s", g_strerror(errno));
    goto fail;
  }
  return vcpu;

fail:
  nb_vcpu_free(vcpu);
  return NULL;
}

void
nb_vcpu_free(NbVcpu *vcpu)
{
  if (vcpu == NULL)
    return;
  if (vcpu->run)
    munmap(vcpu->run, vcpu->run_size);
  if (vcpu->fd >= 0)
    close(vcpu->fd);
  g_free(vcpu);
}

unsigned
nb_vcpu_index(NbVcpu *vcpu)
{
  return vcpu->index;
}

static bool
write_boot_page_tables(NbGuestMemory *mem, GError **error)
{
  uint64_t *pml4 = nb_guest_memory_ptr(mem, BOOT_PML4_ADDR, 4096);
  uint64_t *pdpt = nb_guest_memory_ptr(mem, BOOT_PDPT_ADDR, 4096);
  uint64_t *pd = nb_guest_memory_ptr(mem, BOOT_PD_ADDR, 4 * 4096);
  if (!pml4 || !pdpt || !pd) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "no low memory for boot page tables");
    return false;
  }
  memset(pml4, 0, 4096);
  memset(pdpt, 0, 4096);
  const uint64_t present_rw = 0x3, large = 0x80;
  pml4[0] = BOOT_PDPT_ADDR | present_rw;
  for (unsigned i = 0; i < 4; i++)
    pdpt[i] = (BOOT_PD_ADDR + i * 4096) | present_rw;
  for (unsigned i = 0; i < 4 * 512; i++)
    pd[i] = ((uint64_t)i << 21) | present_rw | large;
  return true;
}

static void
flat_segment(struct kvm_segment *s, uint16_t selector, uint8_t type, bool code)
{
  memset(s, 0, sizeof *s);
  s->base = 0;
  s->limit = 0xffffffff;
  s->selector = selector;
  s->type = type;
  s->present = 1;
  s->dpl = 0;
  s->s = 1;
  s->g = 1;
  s->l = code ? 1 : 0;
  s->db = code ? 0 : 1;
}

bool
nb_vcpu_setup_linux64(NbVcpu *vcpu, uint64_t entry, uint64_t boot_params, GError **error)
{
  NbGuestMemory *mem = nb_vm_memory(vcpu->vm);
  if (vcpu->index == 0 && !write_boot_page_tables(mem, error))
    return false;

  /* GDT: null, null, __BOOT_CS (0x10), __BOOT_DS (0x18), as the boot protocol asks. */
  static const uint64_t gdt[] = {
    0, 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL,
  };
  if (!nb_guest_memory_write(mem, BOOT_GDT_ADDR, gdt, sizeof gdt)) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "no low memory for the boot GDT");
    return false;
  }

  struct kvm_sregs sregs;
  if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM_GET_SREGS: %s", g_strerror(errno));
    return false;
  }
  flat_segment(&sregs.cs, 0x10, 0xb, true);
  flat_segment(&sregs.ds, 0x18, 0x3, false);
  sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
  sregs.gdt.base = BOOT_GDT_ADDR;
  sregs.gdt.limit = sizeof gdt - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cr3 = BOOT_PML4_ADDR;
  sregs.cr4 = 1u << 5;                            /* PAE */
  sregs.cr0 = (1u << 0) | (1u << 4) | (1u << 5) | (1u << 31); /* PE, ET, NE, PG */
  sregs.efer = (1u << 8) | (1u << 10);            /* LME, LMA */
  if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM_SET_SREGS: %s", g_strerror(errno));
    return false;
  }

  struct kvm_regs regs = { 0 };
  regs.rflags = 0x2;
  regs.rip = entry;
  regs.rsi = boot_params;
  if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0) {
    g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM_SET_REGS: %s", g_strerror(errno));
    return false;
  }
  return true;
}

static void
handle_io(NbVcpu *vcpu)
{
  struct kvm_run *run = vcpu->run;
  uint8_t *data = (uint8_t *)run + run->io.data_offset;
  NbIoBus *bus = nb_vm_pio(vcpu->vm);
  /* String I/O arrives as count consecutive accesses in the data area. */
  for (uint32_t i = 0; i < run->io.count; i++) {
    if (run->io.direction == KVM_EXIT_IO_OUT)
      nb_io_bus_write(bus, run->io.port, data, run->io.size);
    else
      nb_io_bus_read(bus, run->io.port, data, run->io.size);
    data += run->io.size;
  }
}

static void
handle_mmio(NbVcpu *vcpu)
{
  struct kvm_run *run = vcpu->run;
  NbIoBus *bus = nb_vm_mmio(vcpu->vm);
  unsigned len = MIN(run->mmio.len, 8u);
  bool handled = run->mmio.is_write ? nb_io_bus_write(bus, run->mmio.phys_addr, run->mmio.data, len)
                                     : nb_io_bus_read(bus, run->mmio.phys_addr, run->mmio.data, len);
  /* Accesses to where nothing is are dropped, as on a PC; the first few are
   * logged, as they usually mean a mapping the guest expects is missing. */
  static gint logged;
  if (!handled && g_atomic_int_add(&logged, 1) < 16)
    g_debug("vCPU %u: MMIO %s of %u bytes at 0x%" G_GINT64_MODIFIER "x: no device there",
            vcpu->index, run->mmio.is_write ? "write" : "read", len, (guint64)run->mmio.phys_addr);
}

NbVcpuEvent
nb_vcpu_run(NbVcpu *vcpu, char **detail)
{
  int ran = ioctl(vcpu->fd, KVM_RUN, 0);
  int run_errno = errno;
  /* Writes KVM held back come before whatever made this exit. */
  nb_vm_flush_coalesced(vcpu->vm);
  errno = run_errno;
  if (ran < 0) {
    if (errno == EINTR || errno == EAGAIN)
      return NB_VCPU_EVENT_INTERRUPTED;
    if (detail)
      *detail = g_strdup_printf("KVM_RUN failed on vCPU %u: %s", vcpu->index, g_strerror(errno));
    return NB_VCPU_EVENT_CRASH;
  }
  struct kvm_run *run = vcpu->run;
  switch (run->exit_reason) {
  case KVM_EXIT_IO:
    handle_io(vcpu);
    return NB_VCPU_EVENT_NONE;
  case KVM_EXIT_MMIO:
    handle_mmio(vcpu);
    return NB_VCPU_EVENT_NONE;
  case KVM_EXIT_INTR:
    return NB_VCPU_EVENT_INTERRUPTED;
  case KVM_EXIT_HLT:
    /* Only without an in-kernel LAPIC; treat as a spurious exit. */
    return NB_VCPU_EVENT_NONE;
  case KVM_EXIT_SHUTDOWN:
    /* A triple fault: on a PC, that resets the machine. Said, with where
     * the vCPU was, because a guest that resets itself silently is hard to
     * tell from one that asked for a reboot. */
    if (detail) {
      /* On AMD hosts KVM resets the vCPU itself on a shutdown intercept
       * (the VMCB is undefined after one): its registers are then the
       * reset vector's, which says nothing about where the guest was. */
      struct kvm_regs regs;
      struct kvm_sregs sregs;
      bool reset = ioctl(vcpu->fd, KVM_GET_REGS, &regs) == 0 &&
                   ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) == 0 && regs.rip == 0xfff0 &&
                   sregs.cs.selector == 0xf000;
      g_autofree char *state = reset ? NULL : nb_vcpu_describe_state(vcpu);
      *detail = reset ? g_strdup_printf("a triple fault on vCPU %u (KVM reset its registers "
                                        "already, as it does on AMD processors: where the "
                                        "guest was is lost)", vcpu->index)
                      : g_strdup_printf("a triple fault (%s)", state);
    }
    return NB_VCPU_EVENT_RESET;
  case KVM_EXIT_SYSTEM_EVENT:
    switch (run->system_event.type) {
    case KVM_SYSTEM_EVENT_RESET:
      return NB_VCPU_EVENT_RESET;
    case KVM_SYSTEM_EVENT_SHUTDOWN:
      return NB_VCPU_EVENT_POWEROFF;
    default:
      if (detail)
        *detail = g_strdup_printf("vCPU %u: system event %u", vcpu->index, run->system_event.type);
      return NB_VCPU_EVENT_CRASH;
    }
  case KVM_EXIT_FAIL_ENTRY:
    if (detail)
      *detail = g_strdup_printf("vCPU %u: KVM could not enter the guest (hardware reason 0x%llx)",
                                vcpu->index,
                                (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
    return NB_VCPU_EVENT_CRASH;
  case KVM_EXIT_INTERNAL_ERROR:
    if (detail)
      *detail = g_strdup_printf("vCPU %u: KVM internal error (suberror %u)", vcpu->index,
                                run->internal.suberror);
    return NB_VCPU_EVENT_CRASH;
  default:
    if (detail)
      *detail = g_strdup_printf("vCPU %u: unexpected exit reason %u", vcpu->index, run->exit_reason);
    return NB_VCPU_EVENT_CRASH;
  }
}

void
nb_vcpu_bind_thread(NbVcpu *vcpu)
{
  vcpu->thread = pthread_self();
  __atomic_store_n(&vcpu->thread_bound, true, __ATOMIC_RELEASE);
}

void
nb_vcpu_kick(NbVcpu *vcpu)
{
  /* immediate_exit covers a kick that lands before KVM_RUN is entered; the
   * signal covers one that lands while the guest runs. */
  __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&vcpu->thread_bound, __ATOMIC_ACQUIRE))
    pthread_kill(vcpu->thread, NB_VCPU_KICK_SIGNAL);
}

void
nb_vcpu_clear_kick(NbVcpu *vcpu)
{
  __atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

char *
nb_vcpu_describe_state(NbVcpu *vcpu)
{
  struct kvm_regs regs;
  struct kvm_sregs sregs;
  if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
    return g_strdup_printf("vCPU %u: registers unavailable", vcpu->index);
  return g_strdup_printf("vCPU %u: RIP=%016llx RSP=%016llx RAX=%016llx RFLAGS=%08llx "
                         "CR0=%08llx CR3=%016llx CR4=%08llx EFER=%llx CS=%04x",
                         vcpu->index, regs.rip, regs.rsp, regs.rax, regs.rflags, sregs.cr0,
                         sregs.cr3, sregs.cr4, sregs.efer, sregs.cs.selector);
}
