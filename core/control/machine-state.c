#include "control/machine-state.h"

#include <gio/gio.h>

static const GDBusErrorEntry control_dbus_errors[] = {
  { NB_CONTROL_ERROR_FAILED, "org.nestbox.Machine1.Error.Failed" },
  { NB_CONTROL_ERROR_INVALID_STATE, "org.nestbox.Machine1.Error.InvalidState" },
  { NB_CONTROL_ERROR_INVALID_ARGS, "org.nestbox.Machine1.Error.InvalidArgs" },
  { NB_CONTROL_ERROR_NO_NAT, "org.nestbox.Machine1.Error.NoNat" },
  { NB_CONTROL_ERROR_NOT_LISTENING, "org.nestbox.Machine1.Error.NotListening" },
  { NB_CONTROL_ERROR_UNREACHABLE, "org.nestbox.Machine1.Error.Unreachable" },
};

/* Registered with GDBus, so errors keep their domain and code across the
 * socket and a client gets NB_CONTROL_ERROR back, not a generic one. */
GQuark
nb_control_error_quark(void)
{
  static gsize quark = 0;
  g_dbus_error_register_error_domain("nb-control-error-quark", &quark, control_dbus_errors,
                                     G_N_ELEMENTS(control_dbus_errors));
  return (GQuark)quark;
}

static const char *const state_names[] = {
  [NB_MACHINE_STATE_STOPPED] = "stopped",
  [NB_MACHINE_STATE_STARTING] = "starting",
  [NB_MACHINE_STATE_RUNNING] = "running",
  [NB_MACHINE_STATE_PAUSED] = "paused",
  [NB_MACHINE_STATE_SHUTTING_DOWN] = "shutting-down",
  [NB_MACHINE_STATE_CRASHED] = "crashed",
};

const char *
nb_machine_state_to_string(NbMachineState state)
{
  if ((unsigned)state < G_N_ELEMENTS(state_names))
    return state_names[state];
  return "unknown";
}

bool
nb_machine_state_from_string(const char *text, NbMachineState *out)
{
  for (unsigned i = 0; text && i < G_N_ELEMENTS(state_names); i++) {
    if (g_str_equal(text, state_names[i])) {
      *out = (NbMachineState)i;
      return true;
    }
  }
  return false;
}

const char *
nb_machine_request_to_string(NbMachineRequest request)
{
  switch (request) {
  case NB_MACHINE_REQUEST_PAUSE: return "pause";
  case NB_MACHINE_REQUEST_RESUME: return "resume";
  case NB_MACHINE_REQUEST_RESET: return "reset";
  case NB_MACHINE_REQUEST_SHUTDOWN: return "shut down";
  case NB_MACHINE_REQUEST_POWEROFF: return "power off";
  }
  return "?";
}

bool
nb_machine_state_check(NbMachineState state, NbMachineRequest request, GError **error)
{
  const char *hint = NULL;
  switch (request) {
  case NB_MACHINE_REQUEST_PAUSE:
    if (state == NB_MACHINE_STATE_RUNNING || state == NB_MACHINE_STATE_SHUTTING_DOWN)
      return true;
    hint = state == NB_MACHINE_STATE_PAUSED ? "it is paused already" : "only a running machine can be paused";
    break;
  case NB_MACHINE_REQUEST_RESUME:
    if (state == NB_MACHINE_STATE_PAUSED)
      return true;
    hint = "it is not paused";
    break;
  case NB_MACHINE_REQUEST_RESET:
    if (state == NB_MACHINE_STATE_RUNNING || state == NB_MACHINE_STATE_PAUSED ||
        state == NB_MACHINE_STATE_SHUTTING_DOWN)
      return true;
    hint = "it is not running";
    break;
  case NB_MACHINE_REQUEST_SHUTDOWN:
    /* Pressing the button again while shutting down is what users do when a
     * guest asks "really shut down?": let it through. */
    if (state == NB_MACHINE_STATE_RUNNING || state == NB_MACHINE_STATE_SHUTTING_DOWN)
      return true;
    hint = state == NB_MACHINE_STATE_PAUSED ? "a paused guest cannot react to the power button; resume it first"
                                            : "it is not running";
    break;
  case NB_MACHINE_REQUEST_POWEROFF:
    if (state == NB_MACHINE_STATE_STARTING || state == NB_MACHINE_STATE_RUNNING ||
        state == NB_MACHINE_STATE_PAUSED || state == NB_MACHINE_STATE_SHUTTING_DOWN)
      return true;
    hint = "it is not running";
    break;
  }
  g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_STATE,
              "cannot %s the machine while it is %s: %s", nb_machine_request_to_string(request),
              nb_machine_state_to_string(state), hint ? hint : "not allowed");
  return false;
}

NbMachineState
nb_machine_state_after(NbMachineState state, NbMachineRequest request)
{
  switch (request) {
  case NB_MACHINE_REQUEST_PAUSE: return NB_MACHINE_STATE_PAUSED;
  case NB_MACHINE_REQUEST_RESUME: return NB_MACHINE_STATE_RUNNING;
  case NB_MACHINE_REQUEST_RESET: return NB_MACHINE_STATE_STARTING;
  case NB_MACHINE_REQUEST_SHUTDOWN: return NB_MACHINE_STATE_SHUTTING_DOWN;
  case NB_MACHINE_REQUEST_POWEROFF: return NB_MACHINE_STATE_STOPPED;
  }
  return state;
}
