/* One virtual CPU: its KVM fd, the shared kvm_run page, its set-up for a
 * 64-bit Linux entry, and a run step that dispatches port and MMIO exits. */
#pragma once

#include "kvm/vm.h"

#include <glib.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct NbVcpu NbVcpu;

typedef enum {
  NB_VCPU_EVENT_NONE,        /* an exit handled here; run again */
  NB_VCPU_EVENT_INTERRUPTED, /* kicked (EINTR): look at the machine's state */
  NB_VCPU_EVENT_RESET,       /* triple fault or a reset request */
  NB_VCPU_EVENT_POWEROFF,    /* KVM system event: shutdown */
  NB_VCPU_EVENT_CRASH,       /* KVM could not run the guest; see detail */
} NbVcpuEvent;

/* Creates vCPU index with CPUID and MSRs set for a coherent n_cpus topology. */
NbVcpu *nb_vcpu_new(NbVm *vm, unsigned index, unsigned n_cpus,
                    const struct kvm_cpuid2 *supported, GError **error);
void nb_vcpu_free(NbVcpu *vcpu);

unsigned nb_vcpu_index(NbVcpu *vcpu);

/* Registers and page tables for the 64-bit Linux boot protocol: long mode,
 * identity-mapped low memory, flat segments, RSI = boot_params. */
bool nb_vcpu_setup_linux64(NbVcpu *vcpu, uint64_t entry, uint64_t boot_params,
                           GError **error);

/* One KVM_RUN. Port I/O and MMIO exits are dispatched to the VM's buses. */
NbVcpuEvent nb_vcpu_run(NbVcpu *vcpu, char **detail);

/* Called once by the thread that will run this vCPU, before nb_vcpu_run. */
void nb_vcpu_bind_thread(NbVcpu *vcpu);

/* Makes a running or about-to-run KVM_RUN return NB_VCPU_EVENT_INTERRUPTED.
 * Safe from any thread. */
void nb_vcpu_kick(NbVcpu *vcpu);
/* Called by the vCPU thread after it has seen the kick. */
void nb_vcpu_clear_kick(NbVcpu *vcpu);

/* Installs the no-op signal handler used for kicks; once per process. */
void nb_vcpu_init_signals(void);

/* Registers in one line, for crash reports. Call with the vCPU stopped. */
char *nb_vcpu_describe_state(NbVcpu *vcpu);
