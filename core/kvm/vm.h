/* A virtual machine on KVM: the VM file descriptor, its memory slots, the
 * in-kernel interrupt controllers, the I/O buses and interrupt routing. */
#pragma once

#include "hw/interrupts.h"
#include "kvm/guest-memory.h"
#include "kvm/io-bus.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_KVM_ERROR (nb_kvm_error_quark())
GQuark nb_kvm_error_quark(void);

typedef enum {
  NB_KVM_ERROR_UNAVAILABLE,   /* no /dev/kvm, or no permission */
  NB_KVM_ERROR_UNSUPPORTED,   /* KVM lacks something we need */
  NB_KVM_ERROR_FAILED,
} NbKvmError;

#define NB_VM_MAX_CPUS 64

typedef struct NbVm NbVm;

/* Opens KVM (NESTBOX_KVM_DEVICE overrides /dev/kvm, for tests), creates the
 * VM with an in-kernel irqchip and PIT, and maps guest RAM. */
NbVm *nb_vm_new(NbGuestMemory *mem, GError **error);
void nb_vm_free(NbVm *vm);

int nb_vm_kvm_fd(NbVm *vm);
int nb_vm_fd(NbVm *vm);
NbGuestMemory *nb_vm_memory(NbVm *vm);
NbIoBus *nb_vm_pio(NbVm *vm);
NbIoBus *nb_vm_mmio(NbVm *vm);
NbInterrupts *nb_vm_interrupts(NbVm *vm);

/* Maps host memory at gpa (a framebuffer BAR); host NULL removes it. */
bool nb_vm_map_ram(void *vm, uint64_t gpa, uint64_t size, void *host, GError **error);
/* KVM's log of the pages the guest wrote in the memory mapped from host
 * since the last call (one bit per 4 KiB page; n_pages must cover the whole
 * mapping), cleared as it is read. False when host is not mapped now. */
bool nb_vm_get_dirty_log(NbVm *vm, const void *host, unsigned long *bitmap, size_t n_pages);

/* Maps host memory read-only at gpa (firmware); it must stay valid until
 * the VM is freed. */
bool nb_vm_map_rom(NbVm *vm, uint64_t gpa, uint64_t size, const void *host, GError **error);

/* Opens the KVM device and checks the API version; used by nb_vm_new and by
 * tools that only probe. Returns the fd or -1 with a user-facing error. */
int nb_kvm_open(GError **error);

/* Coalesced port writes (see kvm/coalesced-ring.h). The first vCPU maps the
 * VM's ring (run_size is its KVM_RUN mapping's size); nb_vm_coalesce_pio then
 * has KVM keep the guest's writes to port..port+len-1 there instead of
 * exiting. It returns false where KVM cannot (too old, no ring): the writes
 * then exit as before, which works the same, only slower. Every vCPU calls
 * nb_vm_flush_coalesced before it handles an exit, so the device sees the
 * writes in order with the guest's other accesses; the main loop calls it now
 * and then for a guest that has stopped exiting. */
void nb_vm_map_coalesced_ring(NbVm *vm, int vcpu_fd, size_t run_size);
bool nb_vm_coalesce_pio(NbVm *vm, uint16_t port, unsigned len);
void nb_vm_flush_coalesced(NbVm *vm);
