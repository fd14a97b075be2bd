/* A running machine: the VM, its vCPU threads and its devices, assembled
 * from nestbox-vm's options. A reset is a new NbMachine: the old one is freed
 * whole, so no device state can leak across a reboot. */
#pragma once

#include "machine/console-io.h"
#include "machine/vm-options.h"

#include <glib.h>

#define NB_MACHINE_ERROR (nb_machine_error_quark())
GQuark nb_machine_error_quark(void);

typedef enum {
  NB_MACHINE_ERROR_CONFIG,   /* the user's configuration cannot work */
  NB_MACHINE_ERROR_FAILED,
} NbMachineError;

typedef enum {
  NB_MACHINE_EXIT_POWEROFF,  /* the guest powered off (ACPI S5) */
  NB_MACHINE_EXIT_RESET,     /* the guest rebooted */
  NB_MACHINE_EXIT_PANIC,     /* the guest kernel panicked (pvpanic) */
  NB_MACHINE_EXIT_CRASH,     /* KVM could not go on */
  NB_MACHINE_EXIT_STOPPED,   /* stopped from the host (signal, request) */
  NB_MACHINE_EXIT_NO_BOOT,   /* the firmware found nothing to boot */
} NbMachineExit;

typedef struct NbMachine NbMachine;

NbMachine *nb_machine_new(const NbVmOptions *options, NbConsoleIo *console, GError **error);
void nb_machine_free(NbMachine *machine);

/* Starts the vCPUs and runs the calling thread's default main context until
 * the machine stops; returns why. detail (may be NULL) says more. */
NbMachineExit nb_machine_run(NbMachine *machine, char **detail);

/* Thread-safe; the first reason wins. */
void nb_machine_stop(NbMachine *machine, NbMachineExit reason, const char *detail);

const char *nb_machine_exit_describe(NbMachineExit exit);
