/* The client end of a machine's control socket, for nestboxctl and the
 * manager: connects with EXTERNAL auth and calls org.nestbox.Machine1. */
#pragma once

#include "control/machine-state.h"

#include <glib.h>
#include <stdbool.h>

typedef struct NbControlClient NbControlClient;

/* Fails with NB_CONTROL_ERROR_UNREACHABLE when nobody serves socket_path. */
NbControlClient *nb_control_client_connect(const char *socket_path, GError **error);
void nb_control_client_free(NbControlClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NbControlClient, nb_control_client_free)

/* The State property as the machine last announced it. */
bool nb_control_client_get_state(NbControlClient *client, NbMachineState *out, GError **error);
/* Calls Pause, Resume, Reset, Shutdown or PowerOff. */
bool nb_control_client_request(NbControlClient *client, NbMachineRequest request, GError **error);
bool nb_control_client_add_port_forward(NbControlClient *client, unsigned nic, const char *rule, GError **error);
bool nb_control_client_remove_port_forward(NbControlClient *client, unsigned nic, const char *rule, GError **error);
char **nb_control_client_list_port_forwards(NbControlClient *client, unsigned nic, GError **error);
