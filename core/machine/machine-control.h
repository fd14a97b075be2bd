/* nestbox-vm's side of the control socket: serves org.nestbox.Machine1 for
 * the machine it runs (core/control/control-server.h) and carries requests
 * out on the current NbMachine, which a reset replaces. It also keeps the
 * machine's last state in <dir>/state, so that nestboxctl can tell a machine
 * that stopped from one whose process died. */
#pragma once

#include "control/machine-state.h"
#include "machine/machine.h"
#include "machine/vm-options.h"

#include <glib.h>

typedef struct NbMachineControl NbMachineControl;

/* Listens on nb_control_socket_path(name), and serves console (the serial
 * console) on nb_console_socket_path(name); the caller holds the run lock.
 * options->nets gives the network cards whose port forwards it lists. */
NbMachineControl *nb_machine_control_new(const char *name, const char *dir, const NbVmOptions *options,
                                         NbConsoleIo *console, GError **error);
/* The final state is recorded, the socket removed, clients dropped. */
void nb_machine_control_free(NbMachineControl *control);

/* machine is about to run its vCPUs: state running. */
void nb_machine_control_attach(NbMachineControl *control, NbMachine *machine);
/* The machine ended with exit; restarting says whether another follows
 * (a reboot). The state becomes starting, stopped or crashed. */
void nb_machine_control_detach(NbMachineControl *control, NbMachineExit exit, bool restarting);

/* Where nb_machine_control keeps the last state. */
char *nb_machine_control_state_file(const char *dir);
