/* The control socket of a running machine: org.nestbox.Machine1 over D-Bus,
 * peer to peer, on a UNIX socket (mode 0600 in a 0700 folder) that accepts
 * EXTERNAL authentication from the same uid only.
 *
 * The server owns the machine's state as clients see it and checks each
 * request against it (machine-state.h) before it calls the machine; the
 * machine does the work through NbControlOps. It runs on the thread-default
 * main context of the thread that creates it; the ops run there too. */
#pragma once

#include "control/machine-state.h"

#include <glib.h>
#include <stdbool.h>

#define NB_CONTROL_OBJECT_PATH "/org/nestbox/Machine1"

typedef struct {
  bool (*pause)(void *ctx, GError **error);
  bool (*resume)(void *ctx, GError **error);
  bool (*reset)(void *ctx, GError **error);
  bool (*shutdown)(void *ctx, GError **error);
  bool (*poweroff)(void *ctx, GError **error);
  /* rule is untrusted text from the client; nic an untrusted index. */
  bool (*add_port_forward)(void *ctx, unsigned nic, const char *rule, GError **error);
  bool (*remove_port_forward)(void *ctx, unsigned nic, const char *rule, GError **error);
  char **(*list_port_forwards)(void *ctx, unsigned nic, GError **error);
} NbControlOps;

typedef struct NbControlServer NbControlServer;

/* $XDG_RUNTIME_DIR/nestbox/NAME.sock, or /tmp/nestbox-UID/NAME.sock without
 * XDG_RUNTIME_DIR (the folder is not created here). */
char *nb_control_socket_path(const char *name);
/* Another file of a running machine in that folder: NAME + suffix. */
char *nb_control_runtime_path(const char *name, const char *suffix);
/* That folder, created with mode 0700 if missing; refused if it is not a
 * folder of ours that only we can enter. */
char *nb_control_runtime_dir(GError **error);

/* Listens on socket_path, replacing a stale socket there: callers hold the
 * machine's run lock, so nobody else can be serving it. The state starts as
 * "starting". */
NbControlServer *nb_control_server_new(const char *socket_path, const char *name,
                                       const NbControlOps *ops, void *ctx, GError **error);
/* Stops listening, drops every client and removes the socket. */
void nb_control_server_free(NbControlServer *server);

void nb_control_server_set_state(NbControlServer *server, NbMachineState state);
NbMachineState nb_control_server_get_state(NbControlServer *server);
const char *nb_control_server_socket_path(NbControlServer *server);
