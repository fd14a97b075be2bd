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

NbControlClient *
nb_control_client_connect(const char *socket_path, GError **error)
{
  g_autofree char *escaped = g_dbus_address_escape_value(socket_path);
  g_autofree char *address = g_strconcat("unix:path=", escaped, NULL);
  g_autoptr(GError) local = NULL;
  GDBusConnection *connection = g_dbus_connection_new_for_address_sync(
    address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL, NULL, &local);
  if (connection == NULL) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_UNREACHABLE,
                "the machine's control socket %s does not answer: %s", socket_path, local->message);
    return NULL;
  }
  NbControlClient *c = g_new0(NbControlClient, 1);
  c->connection = connection;
  c->proxy = nb_dbus_machine1_proxy_new_sync(connection, G_DBUS_PROXY_FLAGS_NONE, NULL,
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
