#include "control/control-client.h"
#include "control/control-server.h"
#include "control/nb-control-generated.h"

#include <gio/gio.h>

/* A machine that does not answer in this time is reported, not waited on. */
#define CALL_TIMEOUT_MS 15000

struct NbControlClient {
  GDBusConnection *connection;
  NbDBusMachine1 *proxy;
};

/* A process that holds the socket but does not answer (stopped with
 * SIGSTOP, hung) must not hang `nestboxctl list`. */
#define CONNECT_TIMEOUT_MS 5000

typedef struct {
  GDBusConnection *connection;
  GError *error;
  bool done;
} ConnectResult;

static void
on_connected(GObject *source, GAsyncResult *res, gpointer data)
{
  ConnectResult *r = data;
  r->connection = g_dbus_connection_new_for_address_finish(res, &r->error);
  r->done = true;
}

static gboolean
on_connect_timeout(gpointer cancellable)
{
  g_cancellable_cancel(cancellable);
  return G_SOURCE_REMOVE;
}

/* Connects with a time limit, on a private main context so that the
 * caller's (if any) does not run meanwhile. */
static GDBusConnection *
connect_with_timeout(const char *address, GError **error)
{
  g_autoptr(GMainContext) context = g_main_context_new();
  g_autoptr(GCancellable) cancellable = g_cancellable_new();
  g_main_context_push_thread_default(context);
  GSource *timeout = g_timeout_source_new(CONNECT_TIMEOUT_MS);
  g_source_set_callback(timeout, on_connect_timeout, cancellable, NULL);
  g_source_attach(timeout, context);
  ConnectResult r = { 0 };
  g_dbus_connection_new_for_address(address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL, cancellable,
                                    on_connected, &r);
  while (!r.done)
    g_main_context_iteration(context, TRUE);
  g_source_destroy(timeout);
  g_source_unref(timeout);
  g_main_context_pop_thread_default(context);
  if (r.connection == NULL) {
    if (g_error_matches(r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
      g_clear_error(&r.error);
      g_set_error(&r.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "no answer within %d s (is the process stopped?)",
                  CONNECT_TIMEOUT_MS / 1000);
    }
    g_propagate_error(error, r.error);
  }
  return r.connection;
}

NbControlClient *
nb_control_client_connect(const char *socket_path, GError **error)
{
  g_autofree char *escaped = g_dbus_address_escape_value(socket_path);
  g_autofree char *address = g_strconcat("unix:path=", escaped, NULL);
  g_autoptr(GError) local = NULL;
  GDBusConnection *connection = connect_with_timeout(address, &local);
  if (connection == NULL) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_UNREACHABLE,
                "the machine's control socket %s does not answer: %s", socket_path, local->message);
    return NULL;
  }
  NbControlClient *c = g_new0(NbControlClient, 1);
  c->connection = connection;
  c->proxy = nb_dbus_machine1_proxy_new_sync(connection, G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES |
                                             G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS, NULL,
                                             NB_CONTROL_OBJECT_PATH, NULL, &local);
  if (c->proxy == NULL) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_UNREACHABLE,
                "the machine at %s does not offer its control interface: %s", socket_path, local->message);
    nb_control_client_free(c);
    return NULL;
  }
  g_dbus_proxy_set_default_timeout(G_DBUS_PROXY(c->proxy), CALL_TIMEOUT_MS);
  return c;
}

void
nb_control_client_free(NbControlClient *c)
{
  if (c == NULL)
    return;
  g_clear_object(&c->proxy);
  if (c->connection) {
    g_dbus_connection_close_sync(c->connection, NULL, NULL);
    g_object_unref(c->connection);
  }
  g_free(c);
}

/* Remote errors come back in NB_CONTROL_ERROR (registered with GDBus); the
 * D-Bus error name in front of the text is noise for users. */
static void
tidy_error(GError *error)
{
  if (error && g_dbus_error_is_remote_error(error))
    g_dbus_error_strip_remote_error(error);
}

bool
nb_control_client_get_state(NbControlClient *c, NbMachineState *out, GError **error)
{
  /* Asked for, not read from the proxy's cache: a state change may still be
   * in flight to us. */
  g_autoptr(GVariant) reply = g_dbus_connection_call_sync(
    c->connection, NULL, NB_CONTROL_OBJECT_PATH, "org.freedesktop.DBus.Properties", "Get",
    g_variant_new("(ss)", "org.nestbox.Machine1", "State"), G_VARIANT_TYPE("(v)"),
    G_DBUS_CALL_FLAGS_NONE, CALL_TIMEOUT_MS, NULL, error);
  if (reply == NULL) {
    tidy_error(error ? *error : NULL);
    return false;
  }
  g_autoptr(GVariant) value = NULL;
  g_variant_get(reply, "(v)", &value);
  if (!g_variant_is_of_type(value, G_VARIANT_TYPE_STRING) ||
      !nb_machine_state_from_string(g_variant_get_string(value, NULL), out)) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_FAILED, "the machine reported a state this nestboxctl "
                "does not know; is it a different version?");
    return false;
  }
  return true;
}

bool
nb_control_client_request(NbControlClient *c, NbMachineRequest request, GError **error)
{
  gboolean ok = FALSE;
  switch (request) {
  case NB_MACHINE_REQUEST_PAUSE: ok = nb_dbus_machine1_call_pause_sync(c->proxy, NULL, error); break;
  case NB_MACHINE_REQUEST_RESUME: ok = nb_dbus_machine1_call_resume_sync(c->proxy, NULL, error); break;
  case NB_MACHINE_REQUEST_RESET: ok = nb_dbus_machine1_call_reset_sync(c->proxy, NULL, error); break;
  case NB_MACHINE_REQUEST_SHUTDOWN: ok = nb_dbus_machine1_call_shutdown_sync(c->proxy, NULL, error); break;
  case NB_MACHINE_REQUEST_POWEROFF: ok = nb_dbus_machine1_call_power_off_sync(c->proxy, NULL, error); break;
  }
  if (!ok)
    tidy_error(error ? *error : NULL);
  return ok;
}

bool
nb_control_client_add_port_forward(NbControlClient *c, unsigned nic, const char *rule, GError **error)
{
  if (nb_dbus_machine1_call_add_port_forward_sync(c->proxy, nic, rule, NULL, error))
    return true;
  tidy_error(error ? *error : NULL);
  return false;
}

bool
nb_control_client_remove_port_forward(NbControlClient *c, unsigned nic, const char *rule, GError **error)
{
  if (nb_dbus_machine1_call_remove_port_forward_sync(c->proxy, nic, rule, NULL, error))
    return true;
  tidy_error(error ? *error : NULL);
  return false;
}

char **
nb_control_client_list_port_forwards(NbControlClient *c, unsigned nic, GError **error)
{
  char **rules = NULL;
  if (nb_dbus_machine1_call_list_port_forwards_sync(c->proxy, nic, &rules, NULL, error))
    return rules;
  tidy_error(error ? *error : NULL);
  return NULL;
}
