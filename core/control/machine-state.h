/* The state of a running machine as its control interface shows it, and
 * which requests each state allows. Pure functions, so the rules are tested
 * without KVM; the control server applies them before it acts. */
#pragma once

#include <glib.h>
#include <stdbool.h>

#define NB_CONTROL_ERROR (nb_control_error_quark())
GQuark nb_control_error_quark(void);

/* Each maps to a D-Bus error name org.nestbox.Machine1.Error.<Name>. */
typedef enum {
  NB_CONTROL_ERROR_FAILED,         /* Failed */
  NB_CONTROL_ERROR_INVALID_STATE,  /* InvalidState: not now (e.g. Resume when running) */
  NB_CONTROL_ERROR_INVALID_ARGS,   /* InvalidArgs: a malformed rule, a bad index */
  NB_CONTROL_ERROR_NO_NAT,         /* NoNat: the machine has no such NAT network card */
  NB_CONTROL_ERROR_NOT_LISTENING,  /* NotListening: the guest ignores the power button */
  NB_CONTROL_ERROR_UNREACHABLE,    /* Unreachable: (client side) no machine answers */
} NbControlError;

typedef enum {
  NB_MACHINE_STATE_STOPPED,
  NB_MACHINE_STATE_STARTING,
  NB_MACHINE_STATE_RUNNING,
  NB_MACHINE_STATE_PAUSED,
  NB_MACHINE_STATE_SHUTTING_DOWN,
  NB_MACHINE_STATE_CRASHED,
} NbMachineState;

typedef enum {
  NB_MACHINE_REQUEST_PAUSE,
  NB_MACHINE_REQUEST_RESUME,
  NB_MACHINE_REQUEST_RESET,
  NB_MACHINE_REQUEST_SHUTDOWN,
  NB_MACHINE_REQUEST_POWEROFF,
} NbMachineRequest;

/* "stopped", "starting", "running", "paused", "shutting-down", "crashed". */
const char *nb_machine_state_to_string(NbMachineState state);
bool nb_machine_state_from_string(const char *text, NbMachineState *out);
const char *nb_machine_request_to_string(NbMachineRequest request);

/* Whether request may be made in state; if not, an INVALID_STATE error that
 * says why and what to do instead. */
bool nb_machine_state_check(NbMachineState state, NbMachineRequest request, GError **error);

/* The state once the request has been carried out. A reset goes through
 * starting; a power-off ends in stopped. */
NbMachineState nb_machine_state_after(NbMachineState state, NbMachineRequest request);
