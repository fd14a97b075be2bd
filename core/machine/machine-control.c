#include "machine/machine-control.h"
#include "control/control-server.h"
#include "machine/console-client.h"
#include "machine/console-server.h"
#include "net/nat.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

struct NbMachineControl {
  NbControlServer *server;
  NbConsoleServer *console;
  NbMachine *machine;        /* NULL between a reset and the next machine */
  char *state_file;
  GPtrArray *forwards;       /* per NIC: GPtrArray of rule strings, or NULL (not NAT) */
};

char *
nb_machine_control_state_file(const char *dir)
{
  return g_build_filename(dir, "state", NULL);
}

/* Each change goes to the log (stderr, which nestboxctl start points at the
 * machine's log) and to the state file. */
static void
set_state(NbMachineControl *c, NbMachineState state)
{
  nb_control_server_set_state(c->server, state);
  g_autoptr(GDateTime) now = g_date_time_new_now_local();
  g_autofree char *stamp = g_date_time_format(now, "%F %T");
  fprintf(stderr, "nestbox-vm: %s state %s\n", stamp, nb_machine_state_to_string(state));
  g_autofree char *text = g_strconcat(nb_machine_state_to_string(state), "\n", NULL);
  g_autoptr(GError) error = NULL;
  if (!g_file_set_contents(c->state_file, text, -1, &error))
    fprintf(stderr, "nestbox-vm: cannot record the machine's state: %s\n", error->message);
}

static NbMachine *
current(NbMachineControl *c, GError **error)
{
  if (c->machine == NULL)
    g_set_error_literal(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_STATE,
                        "the machine is restarting; try again in a moment");
  return c->machine;
}

static bool
op_pause(void *ctx, GError **error)
{
  NbMachine *m = current(ctx, error);
  return m && nb_machine_pause(m, error);
}

static bool
op_resume(void *ctx, GError **error)
{
  NbMachine *m = current(ctx, error);
  if (m)
    nb_machine_resume(m);
  return m != NULL;
}

static bool
op_reset(void *ctx, GError **error)
{
  NbMachine *m = current(ctx, error);
  if (m)
    nb_machine_stop(m, NB_MACHINE_EXIT_RESET, "reset on request");
  return m != NULL;
}

static bool
op_shutdown(void *ctx, GError **error)
{
  NbMachine *m = current(ctx, error);
  if (m == NULL)
    return false;
  if (!nb_machine_press_power_button(m)) {
    g_set_error_literal(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NOT_LISTENING,
                        "the guest does not listen to the ACPI power button (it has not enabled the "
                        "event: no ACPI-aware OS is up yet, or it ignores the button); power it off instead");
    return false;
  }
  return true;
}

static bool
op_poweroff(void *ctx, GError **error)
{
  NbMachineControl *c = ctx;
  NbMachine *m = current(c, error);
  if (m)
    nb_machine_stop(m, NB_MACHINE_EXIT_STOPPED, "powered off on request");
  return m != NULL;
}

/* The NAT engine and the rule list of NIC nic, or a NO_NAT error. */
static NbNat *
nat_of(NbMachineControl *c, unsigned nic, GPtrArray **rules, GError **error)
{
  NbMachine *m = current(c, error);
  if (m == NULL)
    return NULL;
  GPtrArray *nats = nb_machine_nat_engines(m);
  NbNat *nat = nic < nats->len ? g_ptr_array_index(nats, nic) : NULL;
  if (nat == NULL || nic >= c->forwards->len || g_ptr_array_index(c->forwards, nic) == NULL) {
    if (nats->len == 0)
      g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT,
                  "this machine has no NAT network card, so it has no port forwards");
    else
      g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_NO_NAT,
                  "network card %u is not a NAT network card (the machine has %u)", nic, nats->len);
    return NULL;
  }
  *rules = g_ptr_array_index(c->forwards, nic);
  return nat;
}

static char *
format_rule(const NbNatHostFwd *f)
{
  return nb_nat_hostfwd_format(f);
}

/* "tcp:[ADDR]:PORT" is the start of a rule, so parse it as one. */
static bool
parse_removal(const char *rule, NbNatHostFwd *out, GError **error)
{
  if (strchr(rule, '-') != NULL) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_ARGS,
                "“%s”: give only the host side, [tcp|udp]:[HOSTADDR]:HOSTPORT", rule);
    return false;
  }
  g_autofree char *full = g_strconcat(rule, "-:1", NULL);
  g_autoptr(GError) local = NULL;
  if (!nb_nat_hostfwd_parse(full, out, &local)) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_ARGS,
                "“%s” is not [tcp|udp]:[HOSTADDR]:HOSTPORT", rule);
    return false;
  }
  return true;
}

static bool
op_add_port_forward(void *ctx, unsigned nic, const char *rule, GError **error)
{
  NbMachineControl *c = ctx;
  GPtrArray *rules = NULL;
  NbNat *nat = nat_of(c, nic, &rules, error);
  if (nat == NULL)
    return false;
  NbNatHostFwd fwd;
  g_autoptr(GError) local = NULL;
  if (!nb_nat_hostfwd_parse(rule, &fwd, &local)) {
    g_set_error(error, NB_CONTROL_ERROR, NB_CONTROL_ERROR_INVALID_ARGS, "%s", local->message);
    return false;
  }
  if (!nb_nat_add_hostfwd(nat, &fwd, error))
    return false;
  g_ptr_array_add(rules, format_rule(&fwd));
  return true;
}

static bool
op_remove_port_forward(void *ctx, unsigned nic, const char *rule, GError **error)
{
  NbMachineControl *c = ctx;
  GPtrArray *rules = NULL;
  NbNat *nat = nat_of(c, nic, &rules, error);
  if (nat == NULL)
    return false;
  NbNatHostFwd fwd;
  if (!parse_removal(rule, &fwd, error) ||
      !nb_nat_remove_hostfwd_rule(nat, &fwd, error))
    return false;
  g_autofree char *canonical = format_rule(&fwd);
  char *dash = strchr(canonical, '-');
  if (dash)
    dash[1] = '\0';
  for (guint i = 0; i < rules->len; i++) {
    if (g_str_has_prefix(g_ptr_array_index(rules, i), canonical)) {
      g_ptr_array_remove_index(rules, i);
      break;
    }
  }
  return true;
}

static char **
op_list_port_forwards(void *ctx, unsigned nic, GError **error)
{
  NbMachineControl *c = ctx;
  GPtrArray *rules = NULL;
  if (nat_of(c, nic, &rules, error) == NULL)
    return NULL;
  char **out = g_new0(char *, rules->len + 1);
  for (guint i = 0; i < rules->len; i++)
    out[i] = g_strdup(g_ptr_array_index(rules, i));
  return out;
}

static const NbControlOps machine_ops = {
  .pause = op_pause,
  .resume = op_resume,
  .reset = op_reset,
  .shutdown = op_shutdown,
  .poweroff = op_poweroff,
  .add_port_forward = op_add_port_forward,
  .remove_port_forward = op_remove_port_forward,
  .list_port_forwards = op_list_port_forwards,
};

static void
free_rules(gpointer rules)
{
  if (rules)
    g_ptr_array_unref(rules);
}

NbMachineControl *
nb_machine_control_new(const char *name, const char *dir, const NbVmOptions *options, NbConsoleIo *console,
                       GError **error)
{
  g_autofree char *runtime = nb_control_runtime_dir(error);
  if (runtime == NULL)
    return NULL;
  NbMachineControl *c = g_new0(NbMachineControl, 1);
  c->state_file = nb_machine_control_state_file(dir);
  /* The forwards the document starts each NAT card with. */
  c->forwards = g_ptr_array_new_with_free_func(free_rules);
  for (char **net = options->nets; net && *net; net++) {
    GPtrArray *rules = NULL;
    g_autoptr(GError) ignored = NULL;
    NbNatConfig *config = g_str_has_prefix(*net, "nat") ? nb_nat_config_parse(*net, &ignored) : NULL;
    if (config) {
      rules = g_ptr_array_new_with_free_func(g_free);
      for (guint i = 0; i < config->hostfwds->len; i++)
        g_ptr_array_add(rules, format_rule(&g_array_index(config->hostfwds, NbNatHostFwd, i)));
      nb_nat_config_free(config);
    }
    g_ptr_array_add(c->forwards, rules);
  }
  g_autofree char *path = nb_control_socket_path(name);
  g_autofree char *console_path = nb_console_socket_path(name);
  c->server = nb_control_server_new(path, name, &machine_ops, c, error);
  if (c->server)
    c->console = nb_console_server_new(console_path, console, error);
  if (c->server == NULL || c->console == NULL) {
    nb_machine_control_free(c);
    return NULL;
  }
  set_state(c, NB_MACHINE_STATE_STARTING);
  return c;
}

void
nb_machine_control_free(NbMachineControl *c)
{
  if (c == NULL)
    return;
  nb_console_server_free(c->console);
  nb_control_server_free(c->server);
  if (c->forwards)
    g_ptr_array_unref(c->forwards);
  g_free(c->state_file);
  g_free(c);
}

void
nb_machine_control_attach(NbMachineControl *c, NbMachine *machine)
{
  c->machine = machine;
  set_state(c, NB_MACHINE_STATE_RUNNING);
}

void
nb_machine_control_detach(NbMachineControl *c, NbMachineExit exit, bool restarting)
{
  c->machine = NULL;
  if (restarting)
    set_state(c, NB_MACHINE_STATE_STARTING);
  else if (exit == NB_MACHINE_EXIT_CRASH || exit == NB_MACHINE_EXIT_PANIC)
    set_state(c, NB_MACHINE_STATE_CRASHED);
  else
    set_state(c, NB_MACHINE_STATE_STOPPED);
}
