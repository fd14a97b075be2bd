#include "machine/machine-status.h"
#include "control/control-client.h"
#include "control/control-server.h"
#include "machine/machine-control.h"
#include "machine/machine-registry.h"

static NbMachineState
recorded_state(const char *dir, bool *known)
{
  g_autofree char *file = nb_machine_control_state_file(dir);
  g_autofree char *text = NULL;
  NbMachineState state = NB_MACHINE_STATE_STOPPED;
  *known = g_file_get_contents(file, &text, NULL, NULL) &&
           nb_machine_state_from_string(g_strstrip(text), &state);
  return state;
}

NbMachineState
nb_machine_status_get(const char *name, const char *dir)
{
  g_autofree char *socket = nb_control_socket_path(name);
  bool known;
  NbMachineState recorded = recorded_state(dir, &known);
  if (nb_machine_lock_is_held(dir)) {
    g_autoptr(NbControlClient) client = nb_control_client_connect(socket, NULL);
    NbMachineState live;
    if (client && nb_control_client_get_state(client, &live, NULL))
      return live;
    return known && recorded == NB_MACHINE_STATE_STARTING ? NB_MACHINE_STATE_STARTING : NB_MACHINE_STATE_RUNNING;
  }
  if (g_file_test(socket, G_FILE_TEST_EXISTS))
    return NB_MACHINE_STATE_CRASHED;
  if (known && recorded != NB_MACHINE_STATE_STOPPED)
    return NB_MACHINE_STATE_CRASHED;
  return NB_MACHINE_STATE_STOPPED;
}
