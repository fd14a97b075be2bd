/* The control interface without KVM: the state rules, and the D-Bus server
 * with a fake machine behind it, driven by the real client and by raw D-Bus
 * calls with wrong arguments. */
#include "control/control-client.h"
#include "control/control-server.h"
#include "control/machine-state.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

/* State rules ------------------------------------------------------------- */

static void
test_state_names(void)
{
  for (int s = NB_MACHINE_STATE_STOPPED; s <= NB_MACHINE_STATE_CRASHED; s++) {
    NbMachineState back;
    g_assert_true(nb_machine_state_from_string(nb_machine_state_to_string(s), &back));
    g_assert_cmpint(back, ==, s);
  }
  NbMachineState dummy;
  g_assert_false(nb_machine_state_from_string("Running", &dummy));
  g_assert_false(nb_machine_state_from_string("", &dummy));
  g_assert_false(nb_machine_state_from_string(NULL, &dummy));
  g_assert_cmpstr(nb_machine_state_to_string(NB_MACHINE_STATE_SHUTTING_DOWN), ==, "shutting-down");
  g_assert_cmpstr(nb_machine_state_to_string((NbMachineState)99), ==, "unknown");
}

static void
test_state_rules(void)
{
  /* allowed[state][request] */
  static const bool allowed[6][5] = {
    /*                 pause  resume reset  shutdown poweroff */
    [NB_MACHINE_STATE_STOPPED] =       { false, false, false, false, false },
    [NB_MACHINE_STATE_STARTING] =      { false, false, false, false, true },
    [NB_MACHINE_STATE_RUNNING] =       { true,  false, true,  true,  true },
    [NB_MACHINE_STATE_PAUSED] =        { false, true,  true,  false, true },
    [NB_MACHINE_STATE_SHUTTING_DOWN] = { true,  false, true,  true,  true },
    [NB_MACHINE_STATE_CRASHED] =       { false, false, false, false, false },
  };
  for (int s = 0; s < 6; s++) {
    for (int r = 0; r < 5; r++) {
      g_autoptr(GError) error = NULL;
      bool ok = nb_machine_state_check(s, r, &error);
      g_assert_cmpint(ok, ==, allowed[s][r]);
      if (!ok) {
        g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_STATE);
        /* The message names the request and the state. */
        g_assert_nonnull(strstr(error->message, nb_machine_request_to_string(r)));
        g_assert_nonnull(strstr(error->message, nb_machine_state_to_string(s)));
      }
    }
  }
  g_autoptr(GError) error = NULL;
  g_assert_false(nb_machine_state_check(NB_MACHINE_STATE_PAUSED, NB_MACHINE_REQUEST_SHUTDOWN, &error));
  g_assert_nonnull(strstr(error->message, "resume it first"));
  g_assert_cmpint(nb_machine_state_after(NB_MACHINE_STATE_RUNNING, NB_MACHINE_REQUEST_PAUSE), ==,
                  NB_MACHINE_STATE_PAUSED);
  g_assert_cmpint(nb_machine_state_after(NB_MACHINE_STATE_PAUSED, NB_MACHINE_REQUEST_RESUME), ==,
                  NB_MACHINE_STATE_RUNNING);
  g_assert_cmpint(nb_machine_state_after(NB_MACHINE_STATE_RUNNING, NB_MACHINE_REQUEST_SHUTDOWN), ==,
                  NB_MACHINE_STATE_SHUTTING_DOWN);
  g_assert_cmpint(nb_machine_state_after(NB_MACHINE_STATE_RUNNING, NB_MACHINE_REQUEST_RESET), ==,
                  NB_MACHINE_STATE_STARTING);
  g_assert_cmpint(nb_machine_state_after(NB_MACHINE_STATE_RUNNING, NB_MACHINE_REQUEST_POWEROFF), ==,
                  NB_MACHINE_STATE_STOPPED);
}

/* A fake machine behind the server ---------------------------------------- */

typedef struct {
  gint pauses, resumes, resets, shutdowns, poweroffs;
  gint fail_pause;              /* pause fails like a machine whose vCPUs hang */
  gint guest_listens;           /* the guest has enabled the power button */
  GPtrArray *forwards;          /* NIC 0 is NAT; others are not */
} FakeMachine;

static bool
fake_pause(void *ctx, GError **error)
{
  FakeMachine *f = ctx;
  if (g_atomic_int_get(&f->fail_pause)) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "only 1 of 2 vCPUs stopped");
    return false;
  }
  g_atomic_int_inc(&f->pauses);
  return true;
}

static bool fake_resume(void *ctx, GError **e) { g_atomic_int_inc(&((FakeMachine *)ctx)->resumes); return true; }
static bool fake_reset(void *ctx, GError **e) { g_atomic_int_inc(&((FakeMachine *)ctx)->resets); return true; }
static bool fake_poweroff(void *ctx, GError **e) { g_atomic_int_inc(&((FakeMachine *)ctx)->poweroffs); return true; }

static bool
fake_shutdown(void *ctx, GError **error)
{
  FakeMachine *f = ctx;
  g_atomic_int_inc(&f->shutdowns);
  if (!g_atomic_int_get(&f->guest_listens)) {
    g_set_error_literal(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NOT_LISTENING, "the guest does not listen");
    return false;
  }
  return true;
}

static bool
fake_add(void *ctx, unsigned nic, const char *rule, GError **error)
{
  FakeMachine *f = ctx;
  if (nic != 0) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT, "network card %u is not a NAT network card", nic);
    return false;
  }
  if (!g_str_has_prefix(rule, "tcp:") && !g_str_has_prefix(rule, "udp:")) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_ARGS, "“%s” is not a rule", rule);
    return false;
  }
  g_ptr_array_add(f->forwards, g_strdup(rule));
  return true;
}

static char **
fake_list(void *ctx, unsigned nic, GError **error)
{
  FakeMachine *f = ctx;
  if (nic != 0) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT, "network card %u is not a NAT network card", nic);
    return NULL;
  }
  char **out = g_new0(char *, f->forwards->len + 1);
  for (guint i = 0; i < f->forwards->len; i++)
    out[i] = g_strdup(f->forwards->pdata[i]);
  return out;
}

static const NbControlOps fake_ops = {
  .pause = fake_pause, .resume = fake_resume, .reset = fake_reset,
  .shutdown = fake_shutdown, .poweroff = fake_poweroff,
  .add_port_forward = fake_add, .list_port_forwards = fake_list,
  /* no remove: the server must answer, not crash */
};

/* The server runs in a thread of its own, as nestbox-vm's main loop would,
 * so the test's synchronous client calls do not wait on themselves. */
typedef struct {
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  NbControlServer *server;
  char *path;
  FakeMachine fake;
  GMutex lock;
  GCond ready;
  bool started;
} ServerFixture;

static gpointer
server_thread(gpointer data)
{
  ServerFixture *fx = data;
  g_main_context_push_thread_default(fx->context);
  g_autoptr(GError) error = NULL;
  fx->server = nb_control_server_new(fx->path, "demo", &fake_ops, &fx->fake, &error);
  g_assert_no_error(error);
  nb_control_server_set_state(fx->server, NB_MACHINE_STATE_RUNNING);
  g_mutex_lock(&fx->lock);
  fx->started = true;
  g_cond_signal(&fx->ready);
  g_mutex_unlock(&fx->lock);
  g_main_loop_run(fx->loop);
  nb_control_server_free(fx->server);
  g_main_context_pop_thread_default(fx->context);
  return NULL;
}

static void
server_setup(ServerFixture *fx, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *runtime = nb_control_runtime_dir(&error);
  g_assert_no_error(error);
  fx->path = nb_control_socket_path("demo");
  g_assert_true(g_str_has_prefix(fx->path, runtime));
  fx->fake.forwards = g_ptr_array_new_with_free_func(g_free);
  fx->fake.guest_listens = 1;
  fx->context = g_main_context_new();
  fx->loop = g_main_loop_new(fx->context, FALSE);
  g_mutex_init(&fx->lock);
  g_cond_init(&fx->ready);
  /* A stale socket from a machine that died is replaced. */
  g_assert_true(g_file_set_contents(fx->path, "stale", -1, NULL));
  fx->thread = g_thread_new("server", server_thread, fx);
  g_mutex_lock(&fx->lock);
  while (!fx->started)
    g_cond_wait(&fx->ready, &fx->lock);
  g_mutex_unlock(&fx->lock);
}

static gboolean
quit_idle(gpointer loop)
{
  g_main_loop_quit(loop);
  return G_SOURCE_REMOVE;
}

static void
server_teardown(ServerFixture *fx, gconstpointer data)
{
  g_main_context_invoke(fx->context, quit_idle, fx->loop);
  g_thread_join(fx->thread);
  /* The socket goes with the server. */
  g_assert_false(g_file_test(fx->path, G_FILE_TEST_EXISTS));
  g_main_loop_unref(fx->loop);
  g_main_context_unref(fx->context);
  g_ptr_array_unref(fx->fake.forwards);
  g_mutex_clear(&fx->lock);
  g_cond_clear(&fx->ready);
  g_free(fx->path);
}

static void
test_socket_mode(ServerFixture *fx, gconstpointer data)
{
  struct stat st;
  g_assert_cmpint(stat(fx->path, &st), ==, 0);
  g_assert_true(S_ISSOCK(st.st_mode));
  g_assert_cmpint(st.st_mode & 0777, ==, 0600);
  g_autofree char *dir = g_path_get_dirname(fx->path);
  g_assert_cmpint(stat(dir, &st), ==, 0);
  g_assert_cmpint(st.st_mode & 0777, ==, 0700);
}

static NbMachineState
client_state(NbControlClient *c)
{
  NbMachineState s;
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_control_client_get_state(c, &s, &error));
  g_assert_no_error(error);
  return s;
}

static void
test_requests(ServerFixture *fx, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbControlClient) c = nb_control_client_connect(fx->path, &error);
  g_assert_no_error(error);
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_RUNNING);

  g_assert_true(nb_control_client_request(c, NB_MACHINE_REQUEST_PAUSE, &error));
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_PAUSED);
  g_assert_cmpint(g_atomic_int_get(&fx->fake.pauses), ==, 1);

  /* Paused: a second pause and the power button are refused, the machine is not asked. */
  g_assert_false(nb_control_client_request(c, NB_MACHINE_REQUEST_PAUSE, &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_STATE);
  g_assert_nonnull(strstr(error->message, "paused already"));
  g_assert_false(g_dbus_error_is_remote_error(error));  /* the D-Bus name is stripped for users */
  g_clear_error(&error);
  g_assert_false(nb_control_client_request(c, NB_MACHINE_REQUEST_SHUTDOWN, &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_STATE);
  g_clear_error(&error);
  g_assert_cmpint(g_atomic_int_get(&fx->fake.pauses), ==, 1);
  g_assert_cmpint(g_atomic_int_get(&fx->fake.shutdowns), ==, 0);

  g_assert_true(nb_control_client_request(c, NB_MACHINE_REQUEST_RESUME, &error));
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_RUNNING);
  g_assert_false(nb_control_client_request(c, NB_MACHINE_REQUEST_RESUME, &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_STATE);
  g_clear_error(&error);

  /* A guest that ignores the power button: the error says so, the state stays. */
  g_atomic_int_set(&fx->fake.guest_listens, 0);
  g_assert_false(nb_control_client_request(c, NB_MACHINE_REQUEST_SHUTDOWN, &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NOT_LISTENING);
  g_clear_error(&error);
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_RUNNING);

  /* A pause that fails in the machine fails the call with the machine's reason. */
  g_atomic_int_set(&fx->fake.fail_pause, 1);
  g_assert_false(nb_control_client_request(c, NB_MACHINE_REQUEST_PAUSE, &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_FAILED);
  g_assert_nonnull(strstr(error->message, "vCPUs stopped"));
  g_clear_error(&error);
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_RUNNING);

  g_atomic_int_set(&fx->fake.guest_listens, 1);
  g_assert_true(nb_control_client_request(c, NB_MACHINE_REQUEST_SHUTDOWN, &error));
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_SHUTTING_DOWN);
  /* Pausing while shutting down and resuming goes back to shutting down. */
  g_atomic_int_set(&fx->fake.fail_pause, 0);
  g_assert_true(nb_control_client_request(c, NB_MACHINE_REQUEST_PAUSE, &error));
  g_assert_true(nb_control_client_request(c, NB_MACHINE_REQUEST_RESUME, &error));
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_SHUTTING_DOWN);

  g_assert_true(nb_control_client_request(c, NB_MACHINE_REQUEST_RESET, &error));
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_STARTING);
  g_assert_true(nb_control_client_request(c, NB_MACHINE_REQUEST_POWEROFF, &error));
  g_assert_no_error(error);
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_STOPPED);
  g_assert_false(nb_control_client_request(c, NB_MACHINE_REQUEST_POWEROFF, &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_STATE);
  g_assert_cmpint(g_atomic_int_get(&fx->fake.poweroffs), ==, 1);
  g_assert_cmpint(g_atomic_int_get(&fx->fake.resets), ==, 1);
}

static void
test_port_forwards(ServerFixture *fx, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbControlClient) c = nb_control_client_connect(fx->path, &error);
  g_assert_no_error(error);
  g_assert_true(nb_control_client_add_port_forward(c, 0, "tcp::2222-:22", &error));
  g_auto(GStrv) rules = nb_control_client_list_port_forwards(c, 0, &error);
  g_assert_no_error(error);
  g_assert_cmpint(g_strv_length(rules), ==, 1);
  g_assert_cmpstr(rules[0], ==, "tcp::2222-:22");

  g_assert_false(nb_control_client_add_port_forward(c, 0, "bogus", &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_ARGS);
  g_clear_error(&error);
  g_assert_false(nb_control_client_add_port_forward(c, 7, "tcp::1-:2", &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT);
  g_clear_error(&error);
  g_assert_null(nb_control_client_list_port_forwards(c, 3, &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT);
  g_clear_error(&error);
  /* A machine that cannot remove forwards says so. */
  g_assert_false(nb_control_client_remove_port_forward(c, 0, "tcp::2222", &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT);
}

/* Raw calls, as a hostile or careless client would make them. */
static void
test_wrong_arguments(ServerFixture *fx, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *address = g_strconcat("unix:path=", fx->path, NULL);
  g_autoptr(GDBusConnection) conn = g_dbus_connection_new_for_address_sync(
    address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL, NULL, &error);
  g_assert_no_error(error);

  static const struct { const char *iface, *method; const char *args; GDBusError want; } calls[] = {
    { "org.nestbox.Machine1", "Pause", "(s)", G_DBUS_ERROR_INVALID_ARGS },
    { "org.nestbox.Machine1", "AddPortForward", "(s)", G_DBUS_ERROR_INVALID_ARGS },
    { "org.nestbox.Machine1", "AddPortForward", "(su)", G_DBUS_ERROR_INVALID_ARGS },
    { "org.nestbox.Machine1", "ListPortForwards", "()", G_DBUS_ERROR_INVALID_ARGS },
    { "org.nestbox.Machine1", "Explode", "()", G_DBUS_ERROR_UNKNOWN_METHOD },
    { "org.nestbox.Nothing", "Pause", "()", G_DBUS_ERROR_UNKNOWN_METHOD },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(calls); i++) {
    GVariant *args = NULL;
    if (g_str_equal(calls[i].args, "(s)"))
      args = g_variant_new("(s)", "x");
    else if (g_str_equal(calls[i].args, "(su)"))
      args = g_variant_new("(su)", "tcp::1-:2", 0);
    g_autoptr(GVariant) reply = g_dbus_connection_call_sync(conn, NULL, NB_CONTROL_OBJECT_PATH, calls[i].iface,
                                                            calls[i].method, args, NULL, G_DBUS_CALL_FLAGS_NONE,
                                                            5000, NULL, &error);
    g_assert_null(reply);
    if (!g_error_matches(error, G_DBUS_ERROR, calls[i].want) &&
        !g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_INTERFACE))
      g_error("%s.%s%s: unexpected %s", calls[i].iface, calls[i].method, calls[i].args, error->message);
    g_clear_error(&error);
  }
  /* A read-only property cannot be set. */
  g_autoptr(GVariant) set = g_dbus_connection_call_sync(
    conn, NULL, NB_CONTROL_OBJECT_PATH, "org.freedesktop.DBus.Properties", "Set",
    g_variant_new("(ssv)", "org.nestbox.Machine1", "State", g_variant_new_string("paused")), NULL,
    G_DBUS_CALL_FLAGS_NONE, 5000, NULL, &error);
  g_assert_null(set);
  g_assert_nonnull(error);
  g_clear_error(&error);
  /* Nothing reached the machine, and the server still answers. */
  g_assert_cmpint(g_atomic_int_get(&fx->fake.pauses), ==, 0);
  g_assert_cmpint(fx->fake.forwards->len, ==, 0);
  g_autoptr(NbControlClient) c = nb_control_client_connect(fx->path, &error);
  g_assert_no_error(error);
  g_assert_cmpint(client_state(c), ==, NB_MACHINE_STATE_RUNNING);
}

typedef struct {
  GPtrArray *states;
} SignalLog;

static void
on_properties_changed(GDBusConnection *conn, const char *sender, const char *path, const char *iface,
                      const char *signal, GVariant *params, gpointer data)
{
  SignalLog *log = data;
  g_autoptr(GVariant) changed = g_variant_get_child_value(params, 1);
  const char *state = NULL;
  if (g_variant_lookup(changed, "State", "&s", &state))
    g_ptr_array_add(log->states, g_strdup(state));
}

static void
test_state_signals(ServerFixture *fx, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *address = g_strconcat("unix:path=", fx->path, NULL);
  g_autoptr(GDBusConnection) conn = g_dbus_connection_new_for_address_sync(
    address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL, NULL, &error);
  g_assert_no_error(error);
  SignalLog log = { g_ptr_array_new_with_free_func(g_free) };
  guint id = g_dbus_connection_signal_subscribe(conn, NULL, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                                NB_CONTROL_OBJECT_PATH, "org.nestbox.Machine1",
                                                G_DBUS_SIGNAL_FLAGS_NONE, on_properties_changed, &log, NULL);
  const char *methods[] = { "Pause", "Resume", "Shutdown" };
  for (unsigned i = 0; i < G_N_ELEMENTS(methods); i++) {
    g_autoptr(GVariant) r = g_dbus_connection_call_sync(conn, NULL, NB_CONTROL_OBJECT_PATH, "org.nestbox.Machine1",
                                                        methods[i], NULL, NULL, G_DBUS_CALL_FLAGS_NONE, 5000, NULL,
                                                        &error);
    g_assert_no_error(error);
    g_assert_nonnull(r);
  }
  gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
  while (log.states->len < 3 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, FALSE), g_usleep(1000);
  g_assert_cmpint(log.states->len, ==, 3);
  g_assert_cmpstr(log.states->pdata[0], ==, "paused");
  g_assert_cmpstr(log.states->pdata[1], ==, "running");
  g_assert_cmpstr(log.states->pdata[2], ==, "shutting-down");
  g_dbus_connection_signal_unsubscribe(conn, id);
  g_ptr_array_unref(log.states);
}

static void
test_unreachable(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbControlClient) c = nb_control_client_connect("/nonexistent/nestbox/none.sock", &error);
  g_assert_null(c);
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_UNREACHABLE);
  g_assert_nonnull(strstr(error->message, "/nonexistent/nestbox/none.sock"));
}

static void
test_path_too_long(void)
{
  g_autofree char *path = g_strnfill(200, 'x');
  g_autoptr(GError) error = NULL;
  g_assert_null(nb_control_server_new(path, "x", &fake_ops, NULL, &error));
  g_assert_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_FAILED);
  g_assert_nonnull(strstr(error->message, "too long"));
}

int
main(int argc, char **argv)
{
  /* Before GLib reads it: sockets go to a folder of this test's own. */
  g_autofree char *runtime = g_dir_make_tmp("nb-control-XXXXXX", NULL);
  g_setenv("XDG_RUNTIME_DIR", runtime, TRUE);
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/control/state/names", test_state_names);
  g_test_add_func("/control/state/rules", test_state_rules);
  g_test_add_func("/control/client/unreachable", test_unreachable);
  g_test_add_func("/control/server/path-too-long", test_path_too_long);
  g_test_add("/control/server/socket-mode", ServerFixture, NULL, server_setup, test_socket_mode, server_teardown);
  g_test_add("/control/server/requests", ServerFixture, NULL, server_setup, test_requests, server_teardown);
  g_test_add("/control/server/port-forwards", ServerFixture, NULL, server_setup, test_port_forwards, server_teardown);
  g_test_add("/control/server/wrong-arguments", ServerFixture, NULL, server_setup, test_wrong_arguments,
             server_teardown);
  g_test_add("/control/server/state-signals", ServerFixture, NULL, server_setup, test_state_signals, server_teardown);
  int status = g_test_run();
  g_autofree char *dir = g_build_filename(runtime, "nestbox", NULL);
  g_rmdir(dir);
  g_rmdir(runtime);
  return status;
}
