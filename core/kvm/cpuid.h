/* CPUID for each vCPU: what KVM supports, with a topology that agrees with
 * itself and with the MADT: one package, n cores, one thread per core, APIC
 * ID equal to the vCPU index. */
#pragma once

#include <glib.h>
#include <linux/kvm.h>
#include <stdint.h>

/* A kvm_cpuid2 with room for max_entries. */
struct kvm_cpuid2 *nb_cpuid_alloc(unsigned max_entries);

/* KVM_GET_SUPPORTED_CPUID, growing the buffer as KVM asks. */
struct kvm_cpuid2 *nb_cpuid_get_supported(int kvm_fd, GError **error);

/* Rewrites a copy of the supported table for vCPU `index` of `n_cpus`:
 * APIC IDs, leaf 4 and 0xB/0x1F topology, AMD core counts, the hypervisor
 * bit. The result is what KVM_SET_CPUID2 gets. */
struct kvm_cpuid2 *nb_cpuid_for_vcpu(const struct kvm_cpuid2 *supported, unsigned index,
                                     unsigned n_cpus);

/* Lookup helper (NULL if absent). */
struct kvm_cpuid_entry2 *nb_cpuid_find(struct kvm_cpuid2 *cpuid, uint32_t function,
                                       uint32_t index);

/* Bits needed to number n items: 0 for 1, 1 for 2, 2 for 3..4, ... */
unsigned nb_cpuid_id_bits(unsigned n);
