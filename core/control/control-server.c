#include "control/control-server.h"
#include "control/nb-control-generated.h"

#include <errno.h>
#include <string.h>
#include <gio/gio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Ties one argument-less D-Bus method to the request it makes. */
typedef struct {
  NbControlServer *server;
  NbMachineRequest request;
} NbControlRequestBinding;

struct NbControlServer {
  GDBusServer *server;
  GDBusAuthObserver *observer;
  NbDBusMachine1 *skeleton;
  GPtrArray *connections;     /* GDBusConnection, each with the skeleton exported */
  char *socket_path;
  const NbControlOps *ops;
  void *ctx;
  NbMachineState state;
  NbMachineState resume_to;   /* what Resume goes back to */
  GDBusNodeInfo *bus_info;
  unsigned peers;
  NbControlRequestBinding bindings[5];
};

/* $XDG_RUNTIME_DIR/nestbox; without XDG_RUNTIME_DIR (a root shell, a
 * container), /tmp/nestbox-UID, as tmux and others do: made 0700 and checked
 * to be ours below, so a shared /tmp cannot be used against us. */
static char *
runtime_dir_path(void)
{
  const char *xdg = g_getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg)
    return g_build_filename(xdg, "nestbox", NULL);
  return g_strdup_printf("/tmp/nestbox-%u", (unsigned)getuid());
}

char *
nb_control_socket_path(const char *name)
{
  g_autofree char *dir = runtime_dir_path();
  g_autofree char *file = g_strconcat(name, ".sock", NULL);
  return g_build_filename(dir, file, NULL);
}

char *
nb_control_runtime_path(const char *name, const char *suffix)
{
  g_autofree char *dir = runtime_dir_path();
  g_autofree char *file = g_strconcat(name, suffix, NULL);
  return g_build_filename(dir, file, NULL);
}

char *
nb_control_runtime_dir(GError **error)
{
  g_autofree char *dir = runtime_dir_path();
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    int err = errno;
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_FAILED,
                "cannot create the control folder %s: %s — check XDG_RUNTIME_DIR", dir, g_strerror(err));
    return NULL;
  }
  struct stat st;
  if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_FAILED,
                "the control folder %s must be a folder owned by you with mode 0700 — remove it or "
                "run: chmod 700 %s", dir, dir);
    return NULL;
  }
  return g_steal_pointer(&dir);
}

/* Authentication ---------------------------------------------------------- */

static gboolean
on_allow_mechanism(GDBusAuthObserver *observer, const char *mechanism, gpointer data)
{
  /* EXTERNAL is the kernel's word for who the peer is (SO_PEERCRED); the
   * cookie mechanism would trust files, ANONYMOUS anybody. */
  return g_str_equal(mechanism, "EXTERNAL");
}

static gboolean
on_authorize_peer(GDBusAuthObserver *observer, GIOStream *stream, GCredentials *credentials,
                  gpointer data)
{
  if (credentials == NULL)
    return FALSE;
  g_autoptr(GError) error = NULL;
  uid_t uid = g_credentials_get_unix_user(credentials, &error);
  return uid != (uid_t)-1 && uid == getuid();
}

/* Requests ---------------------------------------------------------------- */

static void
return_error(GDBusMethodInvocation *invocation, GError *error)
{
  if (error->domain != NB_CONTROL_ERROR) {
    /* Errors of other areas (NAT, machine) become Failed with their text. */
    g_dbus_method_invocation_return_error_literal(invocation, NB_CONTROL_ERROR,
                                                  NB_CONTROL_ERROR_FAILED, error->message);
    return;
  }
  g_dbus_method_invocation_return_gerror(invocation, error);
}

/* Checks the request against the state, runs it and moves the state on.
 * Returns whether it succeeded; on failure the invocation is answered. */
static bool
run_request(NbControlServer *s, NbMachineRequest request, GDBusMethodInvocation *invocation)
{
  g_autoptr(GError) error = NULL;
  if (!nb_machine_state_check(s->state, request, &error)) {
    return_error(invocation, error);
    return false;
  }
  bool (*op)(void *, GError **) = NULL;
  switch (request) {
  case NB_MACHINE_REQUEST_PAUSE: op = s->ops->pause; break;
  case NB_MACHINE_REQUEST_RESUME: op = s->ops->resume; break;
  case NB_MACHINE_REQUEST_RESET: op = s->ops->reset; break;
  case NB_MACHINE_REQUEST_SHUTDOWN: op = s->ops->shutdown; break;
  case NB_MACHINE_REQUEST_POWEROFF: op = s->ops->poweroff; break;
  }
  if (op == NULL) {
    g_dbus_method_invocation_return_error(invocation, NB_CONTROL_ERROR, NB_CONTROL_ERROR_FAILED,
                                          "this machine cannot %s", nb_machine_request_to_string(request));
    return false;
  }
  NbMachineState before = s->state;
  if (!op(s->ctx, &error)) {
    return_error(invocation, error);
    return false;
  }
  /* The op may have moved the state itself (a power-off that already
   * stopped the machine); only a state it left alone moves on here. */
  if (s->state == before) {
    NbMachineState next = nb_machine_state_after(before, request);
    if (request == NB_MACHINE_REQUEST_PAUSE)
      s->resume_to = before;
    if (request == NB_MACHINE_REQUEST_RESUME)
      next = s->resume_to;
    nb_control_server_set_state(s, next);
  }
  return true;
}

/* Pause, Resume, Reset, Shutdown and PowerOff take no arguments and return
 * none, so one handler serves them all: its user data says which request
 * the method is. */
static gboolean
on_machine_request(NbDBusMachine1 *skel, GDBusMethodInvocation *invocation, gpointer data)
{
  (void)skel;
  const NbControlRequestBinding *binding = data;
  if (run_request(binding->server, binding->request, invocation))
    g_dbus_method_invocation_return_value(invocation, NULL);
  return TRUE;
}

static bool
forwards_allowed(NbControlServer *s, GDBusMethodInvocation *invocation)
{
  if (s->state == NB_MACHINE_STATE_STOPPED || s->state == NB_MACHINE_STATE_CRASHED) {
    g_dbus_method_invocation_return_error(invocation, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_STATE,
                                          "cannot change port forwards while the machine is %s",
                                          nb_machine_state_to_string(s->state));
    return false;
  }
  return true;
}

static gboolean
on_add_port_forward(NbDBusMachine1 *skel, GDBusMethodInvocation *invocation, guint nic,
                    const char *rule, gpointer data)
{
  NbControlServer *s = data;
  g_autoptr(GError) error = NULL;
  if (!forwards_allowed(s, invocation))
    return TRUE;
  if (s->ops->add_port_forward == NULL || !s->ops->add_port_forward(s->ctx, nic, rule, &error)) {
    if (error == NULL)
      g_set_error_literal(&error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT, "this machine has no NAT network card");
    return_error(invocation, error);
    return TRUE;
  }
  nb_dbus_machine1_complete_add_port_forward(skel, invocation);
  return TRUE;
}

static gboolean
on_remove_port_forward(NbDBusMachine1 *skel, GDBusMethodInvocation *invocation, guint nic,
                       const char *rule, gpointer data)
{
  NbControlServer *s = data;
  g_autoptr(GError) error = NULL;
  if (!forwards_allowed(s, invocation))
    return TRUE;
  if (s->ops->remove_port_forward == NULL || !s->ops->remove_port_forward(s->ctx, nic, rule, &error)) {
    if (error == NULL)
      g_set_error_literal(&error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT, "this machine has no NAT network card");
    return_error(invocation, error);
    return TRUE;
  }
  nb_dbus_machine1_complete_remove_port_forward(skel, invocation);
  return TRUE;
}

static gboolean
on_list_port_forwards(NbDBusMachine1 *skel, GDBusMethodInvocation *invocation, guint nic,
                      gpointer data)
{
  NbControlServer *s = data;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) rules = s->ops->list_port_forwards ? s->ops->list_port_forwards(s->ctx, nic, &error) : NULL;
  if (rules == NULL) {
    if (error == NULL)
      g_set_error_literal(&error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT, "this machine has no NAT network card");
    return_error(invocation, error);
    return TRUE;
  }
  nb_dbus_machine1_complete_list_port_forwards(skel, invocation, (const char *const *)rules);
  return TRUE;
}

/* The bus greeting ----------------------------------------------------------
 * `gdbus call --address` and other tools treat every address as a message
 * bus: they say Hello to org.freedesktop.DBus and add match rules before
 * their call. Peer to peer there is no bus, so the server answers those few
 * calls itself (a unique name, match rules accepted: every signal reaches
 * the one peer anyway) and the tools work unchanged. */

static const char bus_xml[] =
  "<node><interface name='org.freedesktop.DBus'>"
  "<method name='Hello'><arg type='s' direction='out'/></method>"
  "<method name='AddMatch'><arg type='s' direction='in'/></method>"
  "<method name='RemoveMatch'><arg type='s' direction='in'/></method>"
  "</interface></node>";

static void
on_bus_method(GDBusConnection *connection, const char *sender, const char *path, const char *iface,
              const char *method, GVariant *params, GDBusMethodInvocation *invocation, gpointer data)
{
  NbControlServer *s = data;
  if (g_str_equal(method, "Hello")) {
    g_autofree char *name = g_strdup_printf(":1.%u", ++s->peers);
    g_dbus_method_invocation_return_value(invocation, g_variant_new("(s)", name));
  } else {
    g_dbus_method_invocation_return_value(invocation, NULL);
  }
}

static const GDBusInterfaceVTable bus_vtable = { .method_call = on_bus_method };

/* Connections ------------------------------------------------------------- */

static void
on_connection_closed(GDBusConnection *connection, gboolean remote_peer_vanished, GError *error,
                     gpointer data)
{
  NbControlServer *s = data;
  g_signal_handlers_disconnect_by_data(connection, s);
  g_dbus_interface_skeleton_unexport_from_connection(G_DBUS_INTERFACE_SKELETON(s->skeleton), connection);
  g_ptr_array_remove(s->connections, connection);
}

static gboolean
on_new_connection(GDBusServer *server, GDBusConnection *connection, gpointer data)
{
  NbControlServer *s = data;
  g_autoptr(GError) error = NULL;
  if (!g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(s->skeleton), connection,
                                        NB_CONTROL_OBJECT_PATH, &error)) {
    g_warning("control: cannot serve a client: %s", error->message);
    return FALSE;
  }
  if (g_dbus_connection_register_object(connection, "/org/freedesktop/DBus", s->bus_info->interfaces[0],
                                        &bus_vtable, s, NULL, &error) == 0) {
    g_warning("control: cannot serve a client: %s", error->message);
    g_dbus_interface_skeleton_unexport_from_connection(G_DBUS_INTERFACE_SKELETON(s->skeleton), connection);
    return FALSE;
  }
  g_ptr_array_add(s->connections, g_object_ref(connection));
  g_signal_connect(connection, "closed", G_CALLBACK(on_connection_closed), s);
  return TRUE;
}

NbControlServer *
nb_control_server_new(const char *socket_path, const char *name, const NbControlOps *ops, void *ctx,
                      GError **error)
{
  if (strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_FAILED,
                "the control socket path %s is too long for a UNIX socket — use a shorter XDG_RUNTIME_DIR",
                socket_path);
    return NULL;
  }
  if (unlink(socket_path) != 0 && errno != ENOENT) {
    int err = errno;
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_FAILED, "cannot remove the stale control socket %s: %s",
                socket_path, g_strerror(err));
    return NULL;
  }

  NbControlServer *s = g_new0(NbControlServer, 1);
  s->socket_path = g_strdup(socket_path);
  s->ops = ops;
  s->ctx = ctx;
  s->state = NB_MACHINE_STATE_STARTING;
  s->resume_to = NB_MACHINE_STATE_RUNNING;
  s->connections = g_ptr_array_new_with_free_func(g_object_unref);

  s->bus_info = g_dbus_node_info_new_for_xml(bus_xml, NULL);
  s->skeleton = nb_dbus_machine1_skeleton_new();
  nb_dbus_machine1_set_name(s->skeleton, name);
  nb_dbus_machine1_set_state(s->skeleton, nb_machine_state_to_string(s->state));
  static const struct {
    const char *signal;
    NbMachineRequest request;
  } request_methods[] = {
    { "handle-pause", NB_MACHINE_REQUEST_PAUSE },
    { "handle-resume", NB_MACHINE_REQUEST_RESUME },
    { "handle-reset", NB_MACHINE_REQUEST_RESET },
    { "handle-shutdown", NB_MACHINE_REQUEST_SHUTDOWN },
    { "handle-power-off", NB_MACHINE_REQUEST_POWEROFF },
  };
  G_STATIC_ASSERT(G_N_ELEMENTS(request_methods) == G_N_ELEMENTS(s->bindings));
  for (size_t i = 0; i < G_N_ELEMENTS(request_methods); i++) {
    s->bindings[i] = (NbControlRequestBinding){ s, request_methods[i].request };
    g_signal_connect(s->skeleton, request_methods[i].signal, G_CALLBACK(on_machine_request),
                     &s->bindings[i]);
  }
  g_signal_connect(s->skeleton, "handle-add-port-forward", G_CALLBACK(on_add_port_forward), s);
  g_signal_connect(s->skeleton, "handle-remove-port-forward", G_CALLBACK(on_remove_port_forward), s);
  g_signal_connect(s->skeleton, "handle-list-port-forwards", G_CALLBACK(on_list_port_forwards), s);

  s->observer = g_dbus_auth_observer_new();
  g_signal_connect(s->observer, "allow-mechanism", G_CALLBACK(on_allow_mechanism), s);
  g_signal_connect(s->observer, "authorize-authenticated-peer", G_CALLBACK(on_authorize_peer), s);

  g_autofree char *escaped = g_dbus_address_escape_value(socket_path);
  g_autofree char *address = g_strconcat("unix:path=", escaped, NULL);
  g_autofree char *guid = g_dbus_generate_guid();
  /* Created under umask 077, so the socket is 0600 from its first moment,
   * not after a chmod that a fast client could beat. */
  mode_t old_umask = umask(077);
  s->server = g_dbus_server_new_sync(address, G_DBUS_SERVER_FLAGS_NONE, guid, s->observer, NULL, error);
  umask(old_umask);
  if (s->server == NULL) {
    g_prefix_error(error, "cannot listen on the control socket %s: ", socket_path);
    nb_control_server_free(s);
    return NULL;
  }
  chmod(socket_path, 0600);
  g_signal_connect(s->server, "new-connection", G_CALLBACK(on_new_connection), s);
  g_dbus_server_start(s->server);
  return s;
}

void
nb_control_server_free(NbControlServer *s)
{
  if (s == NULL)
    return;
  if (s->server) {
    g_dbus_server_stop(s->server);
    g_signal_handlers_disconnect_by_data(s->server, s);
    g_object_unref(s->server);
    unlink(s->socket_path);
  }
  for (guint i = 0; i < s->connections->len; i++) {
    GDBusConnection *c = g_ptr_array_index(s->connections, i);
    g_signal_handlers_disconnect_by_data(c, s);
    g_dbus_interface_skeleton_unexport_from_connection(G_DBUS_INTERFACE_SKELETON(s->skeleton), c);
    /* Whatever the last state change queued goes out before the close. */
    g_dbus_connection_flush_sync(c, NULL, NULL);
    g_dbus_connection_close_sync(c, NULL, NULL);
  }
  g_ptr_array_free(s->connections, TRUE);
  if (s->skeleton) {
    g_signal_handlers_disconnect_by_data(s->skeleton, s);
    g_object_unref(s->skeleton);
  }
  g_clear_object(&s->observer);
  g_clear_pointer(&s->bus_info, g_dbus_node_info_unref);
  g_free(s->socket_path);
  g_free(s);
}

void
nb_control_server_set_state(NbControlServer *s, NbMachineState state)
{
  if (s->state == state)
    return;
  s->state = state;
  nb_dbus_machine1_set_state(s->skeleton, nb_machine_state_to_string(state));
  /* PropertiesChanged goes out now, not on the next idle: the process may
   * be about to exit (stopped, crashed). */
  g_dbus_interface_skeleton_flush(G_DBUS_INTERFACE_SKELETON(s->skeleton));
}

NbMachineState
nb_control_server_get_state(NbControlServer *s)
{
  return s->state;
}

const char *
nb_control_server_socket_path(NbControlServer *s)
{
  return s->socket_path;
}
