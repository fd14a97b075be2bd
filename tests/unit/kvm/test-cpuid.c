#include "kvm/cpuid.h"

#include <stdbool.h>
#include <string.h>

/* A table shaped like KVM_GET_SUPPORTED_CPUID's on an Intel or AMD host. */
static struct kvm_cpuid2 *
fake_supported(bool amd)
{
  struct kvm_cpuid2 *c = nb_cpuid_alloc(12);
  unsigned n = 0;
  c->entries[n++] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0x1f,
                                               .ebx = amd ? 0x68747541 : 0x756e6547 };
  c->entries[n++] = (struct kvm_cpuid_entry2){ .function = 1, .ebx = 0x00000800, .ecx = 0x1,
                                               .edx = 0x1 };
  for (unsigned i = 0; i < 4; i++)   /* L1d, L1i, L2, L3 */
    c->entries[n++] = (struct kvm_cpuid_entry2){
      .function = 4, .index = i, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
      .eax = ((i == 3 ? 3u : i == 2 ? 2u : 1u) << 5) | (i == 1 ? 2u : i == 0 ? 1u : 3u) };
  for (unsigned i = 0; i < 3; i++)
    c->entries[n++] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = i,
                                                 .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
  c->entries[n++] = (struct kvm_cpuid_entry2){ .function = 0x80000001 };
  c->entries[n++] = (struct kvm_cpuid_entry2){ .function = 0x80000008, .ecx = 0 };
  c->entries[n++] = (struct kvm_cpuid_entry2){ .function = 0x8000001e };
  c->nent = n;
  return c;
}

static void
check_topology(bool amd, unsigned n_cpus)
{
  g_autofree struct kvm_cpuid2 *supported = fake_supported(amd);
  for (unsigned index = 0; index < n_cpus; index++) {
    g_autofree struct kvm_cpuid2 *c = nb_cpuid_for_vcpu(supported, index, n_cpus);
    unsigned bits = nb_cpuid_id_bits(n_cpus);

    struct kvm_cpuid_entry2 *leaf1 = nb_cpuid_find(c, 1, 0);
    g_assert_cmpuint(leaf1->ebx >> 24, ==, index);                 /* APIC ID */
    g_assert_cmpuint((leaf1->ebx >> 16) & 0xff, ==, (1u << bits) & 0xff);
    g_assert_cmpuint(leaf1->ebx & 0xffff, ==, 0x0800);             /* CLFLUSH kept */
    g_assert_true(leaf1->ecx & (1u << 31));                        /* hypervisor */
    g_assert_cmpuint(!!(leaf1->edx & (1u << 28)), ==, n_cpus > 1); /* HTT */

    struct kvm_cpuid_entry2 *smt = nb_cpuid_find(c, 0xb, 0);
    struct kvm_cpuid_entry2 *core = nb_cpuid_find(c, 0xb, 1);
    struct kvm_cpuid_entry2 *end = nb_cpuid_find(c, 0xb, 2);
    g_assert_cmpuint(smt->ebx, ==, 1);
    g_assert_cmpuint((smt->ecx >> 8) & 0xff, ==, 1);
    g_assert_cmpuint(core->eax & 0x1f, ==, bits);
    g_assert_cmpuint(core->ebx, ==, n_cpus);
    g_assert_cmpuint((core->ecx >> 8) & 0xff, ==, 2);
    g_assert_cmpuint((end->ecx >> 8) & 0xff, ==, 0);
    g_assert_cmpuint(smt->edx, ==, index);
    g_assert_cmpuint(core->edx, ==, index);

    for (unsigned i = 0; i < 4; i++) {
      struct kvm_cpuid_entry2 *cache = nb_cpuid_find(c, 4, i);
      g_assert_cmpuint((cache->eax >> 26) + 1, ==, 1u << bits);    /* cores per package */
      unsigned level = (cache->eax >> 5) & 7;
      unsigned sharing = ((cache->eax >> 14) & 0xfff) + 1;
      g_assert_cmpuint(sharing, ==, level == 3 ? 1u << bits : 1u);
    }

    if (amd) {
      struct kvm_cpuid_entry2 *size = nb_cpuid_find(c, 0x80000008, 0);
      g_assert_cmpuint((size->ecx & 0xff) + 1, ==, n_cpus);
      g_assert_cmpuint((size->ecx >> 12) & 0xf, ==, bits);
      g_assert_cmpuint(nb_cpuid_find(c, 0x8000001e, 0)->eax, ==, index);
      g_assert_cmpuint(!!(nb_cpuid_find(c, 0x80000001, 0)->ecx & 2), ==, n_cpus > 1);
    }
  }
}

static void
test_topology_intel(void)
{
  static const unsigned counts[] = { 1, 2, 3, 4, 8, 13, 64 };
  for (gsize i = 0; i < G_N_ELEMENTS(counts); i++)
    check_topology(false, counts[i]);
}

static void
test_topology_amd(void)
{
  static const unsigned counts[] = { 1, 2, 5, 8, 64 };
  for (gsize i = 0; i < G_N_ELEMENTS(counts); i++)
    check_topology(true, counts[i]);
}

static void
test_id_bits(void)
{
  g_assert_cmpuint(nb_cpuid_id_bits(1), ==, 0);
  g_assert_cmpuint(nb_cpuid_id_bits(2), ==, 1);
  g_assert_cmpuint(nb_cpuid_id_bits(3), ==, 2);
  g_assert_cmpuint(nb_cpuid_id_bits(4), ==, 2);
  g_assert_cmpuint(nb_cpuid_id_bits(5), ==, 3);
  g_assert_cmpuint(nb_cpuid_id_bits(64), ==, 6);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cpuid/topology-intel", test_topology_intel);
  g_test_add_func("/cpuid/topology-amd", test_topology_amd);
  g_test_add_func("/cpuid/id-bits", test_id_bits);
  return g_test_run();
}
