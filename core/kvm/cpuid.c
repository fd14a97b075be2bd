#include "kvm/cpuid.h"
#include "kvm/vm.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_EDX_HTT        (1u << 28)
#define CPUID_80000001_ECX_CMP_LEGACY (1u << 1)

struct kvm_cpuid2 *
nb_cpuid_alloc(unsigned max_entries)
{
  struct kvm_cpuid2 *c = g_malloc0(sizeof *c + max_entries * sizeof(struct kvm_cpuid_entry2));
  c->nent = max_entries;
  return c;
}

struct kvm_cpuid2 *
nb_cpuid_get_supported(int kvm_fd, GError **error)
{
  for (unsigned n = 64; n <= 4096; n *= 2) {
    struct kvm_cpuid2 *c = nb_cpuid_alloc(n);
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
      /* KVM emulates the TSC-deadline timer in its local APIC whatever the
       * host CPU has, and says so by a capability, not in this table. A
       * guest without it programs its timer through the APIC's count
       * register, an exit KVM handles on its slow path. */
      struct kvm_cpuid_entry2 *leaf1 = nb_cpuid_find(c, 1, 0);
      if (leaf1 && ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
        leaf1->ecx |= CPUID_1_ECX_TSC_DEADLINE;
      return c;
    }
    int err = errno;
    g_free(c);
    if (err != E2BIG) {
      g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED,
                  "cannot read the CPU features KVM supports: %s", g_strerror(err));
      return NULL;
    }
  }
  g_set_error(error, NB_KVM_ERROR, NB_KVM_ERROR_FAILED, "KVM reports too many CPUID entries");
  return NULL;
}

struct kvm_cpuid_entry2 *
nb_cpuid_find(struct kvm_cpuid2 *cpuid, uint32_t function, uint32_t index)
{
  for (unsigned i = 0; i < cpuid->nent; i++) {
    struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
    if (e->function != function)
      continue;
    if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
      continue;
    return e;
  }
  return NULL;
}

unsigned
nb_cpuid_id_bits(unsigned n)
{
  unsigned bits = 0;
  while ((1u << bits) < n)
    bits++;
  return bits;
}

/* Leaf 0xB and 0x1F: level 0 is SMT (one thread), level 1 is core. */
static void
set_extended_topology(struct kvm_cpuid_entry2 *e, unsigned apic_id, unsigned n_cpus)
{
  unsigned core_bits = nb_cpuid_id_bits(n_cpus);
  switch (e->index) {
  case 0:
    e->eax = 0;                           /* shift to the next level: one thread */
    e->ebx = 1;                           /* logical processors at this level */
    e->ecx = (1u << 8) | e->index;        /* type 1: SMT */
    break;
  case 1:
    e->eax = core_bits;
    e->ebx = n_cpus;
    e->ecx = (2u << 8) | e->index;        /* type 2: core */
    break;
  default:
    e->eax = 0;
    e->ebx = 0;
    e->ecx = e->index;                    /* type 0: invalid, ends the list */
    break;
  }
  e->edx = apic_id;
}

struct kvm_cpuid2 *
nb_cpuid_for_vcpu(const struct kvm_cpuid2 *supported, unsigned index, unsigned n_cpus)
{
  struct kvm_cpuid2 *c = nb_cpuid_alloc(supported->nent);
  memcpy(c->entries, supported->entries, supported->nent * sizeof(struct kvm_cpuid_entry2));
  unsigned apic_id = index;
  unsigned core_bits = nb_cpuid_id_bits(n_cpus);
  bool amd = false;

  struct kvm_cpuid_entry2 *vendor = nb_cpuid_find(c, 0, 0);
  if (vendor && vendor->ebx == 0x68747541 /* "Auth" */)
    amd = true;

  for (unsigned i = 0; i < c->nent; i++) {
    struct kvm_cpuid_entry2 *e = &c->entries[i];
    switch (e->function) {
    case 1:
      /* EBX: initial APIC ID [31:24], addressable logical IDs [23:16],
       * CLFLUSH line size [15:8] kept. */
      e->ebx = (e->ebx & 0x0000ffff) | (apic_id << 24) | ((1u << core_bits) << 16 & 0x00ff0000);
      if (n_cpus > 1)
        e->edx |= CPUID_1_EDX_HTT;
      else
        e->edx &= ~CPUID_1_EDX_HTT;
      e->ecx |= CPUID_1_ECX_HYPERVISOR;
      break;
    case 4:
      /* Deterministic cache parameters: cores per package - 1 in [31:26],
       * threads sharing this cache - 1 in [25:14]. L1/L2 per core, L3 shared. */
      if ((e->eax & 0x1f) != 0) {
        unsigned level = (e->eax >> 5) & 7;
        unsigned sharing = level >= 3 ? (1u << core_bits) - 1 : 0;
        e->eax = (e->eax & 0x3fff) | (sharing << 14) | (((1u << core_bits) - 1) << 26);
      }
      break;
    case 0xb:
    case 0x1f:
      set_extended_topology(e, apic_id, n_cpus);
      break;
    case 0x80000001:
      if (amd) {
        if (n_cpus > 1)
          e->ecx |= CPUID_80000001_ECX_CMP_LEGACY;
        else
          e->ecx &= ~CPUID_80000001_ECX_CMP_LEGACY;
      }
      break;
    case 0x80000008:
      if (amd)   /* NC = cores - 1, ApicIdCoreIdSize */
        e->ecx = (e->ecx & ~0xf0ffu) | ((n_cpus - 1) & 0xff) | (core_bits << 12);
      break;
    case 0x8000001e:
      if (amd) {
        e->eax = apic_id;             /* extended APIC ID */
        e->ebx = (e->ebx & ~0xffffu) | (apic_id & 0xff); /* one thread per core */
        e->ecx = 0;                   /* node 0, one node per package */
      }
      break;
    default:
      break;
    }
  }
  return c;
}
