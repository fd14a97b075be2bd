#include "machine/machine-run-tool.h"
#include "control/control-client.h"
#include "control/control-server.h"
#include "machine/console-client.h"
#include "machine/machine-control.h"
#include "machine/machine-registry.h"
#include "machine/machine-status.h"
#include "machine/machine-tool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const commands[] = {
  "start", "shutdown", "poweroff", "pause", "resume", "reset", "state", "log", "console", "forward", NULL,
};

bool
nb_machine_run_tool_handles(const char *command)
{
  return g_strv_contains(commands, command);
}

char *
nb_machine_run_tool_log_path(const char *dir)
{
  return g_build_filename(dir, "nestbox-vm.log", NULL);
}

static int
usage(FILE *err, const char *command, const char *text, const char *synopsis)
{
  fprintf(err, "nestboxctl %s: %s\nUsage: nestboxctl %s %s\n", command, text, command, synopsis);
  return NB_MACHINE_TOOL_USAGE;
}

static int
fail(FILE *err, const char *command, GError *error)
{
  fprintf(err, "nestboxctl %s: %s\n", command, error->message);
  if (error->domain == NB_MACHINE_DOC_ERROR && error->code == NB_MACHINE_DOC_ERROR_NOT_FOUND)
    return NB_MACHINE_TOOL_NOT_FOUND;
  return NB_MACHINE_TOOL_FAILED;
}

/* Options shared by the commands: NAME first, then flags. */
typedef struct {
  const char *name;
  bool json, headless, follow, serial, wait, force;
  int timeout;      /* seconds; 0: the command's default */
  int lines;        /* log: the last N lines; 0: all */
  unsigned nic;
  char **rest;      /* what is left after NAME and the flags */
} Args;

static bool
parse_args(int argc, char **argv, Args *a, const char *allowed, FILE *err, int *status)
{
  memset(a, 0, sizeof *a);
  GPtrArray *rest = g_ptr_array_new();
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    const char *flag = g_str_has_prefix(s, "--") ? s + 2 : NULL;
    char key[32] = "";
    const char *value = NULL;
    if (flag) {
      const char *eq = strchr(flag, '=');
      size_t n = eq ? (size_t)(eq - flag) : strlen(flag);
      if (n >= sizeof key)
        n = sizeof key - 1;
      memcpy(key, flag, n);
      key[n] = '\0';
      value = eq ? eq + 1 : NULL;
    }
    g_autofree char *needle = flag ? g_strconcat(",", key, ",", NULL) : NULL;
    g_autofree char *hay = g_strconcat(",", allowed, ",", NULL);
    if (flag && *key && strchr(key, ',') == NULL && strstr(hay, needle) != NULL) {
      bool takes_value = g_str_equal(key, "timeout") || g_str_equal(key, "lines") || g_str_equal(key, "nic");
      if (takes_value) {
        if (value == NULL && i + 1 < argc)
          value = argv[++i];
        char *end = NULL;
        long v = value ? strtol(value, &end, 10) : -1;
        if (value == NULL || *value == '\0' || *end != '\0' || v < 0 || v > 86400) {
          fprintf(err, "nestboxctl %s: --%s wants a number from 0 to 86400\n", argv[0], key);
          goto bad;
        }
        if (g_str_equal(key, "timeout")) a->timeout = (int)v;
        else if (g_str_equal(key, "lines")) a->lines = (int)v;
        else a->nic = (unsigned)v;
        continue;
      }
      if (value) {
        fprintf(err, "nestboxctl %s: --%s takes no value\n", argv[0], key);
        goto bad;
      }
      if (g_str_equal(key, "json")) a->json = true;
      else if (g_str_equal(key, "headless")) a->headless = true;
      else if (g_str_equal(key, "follow")) a->follow = true;
      else if (g_str_equal(key, "serial")) a->serial = true;
      else if (g_str_equal(key, "wait")) a->wait = true;
      else if (g_str_equal(key, "force")) a->force = true;
      continue;
    }
    if (flag && *flag) {
      fprintf(err, "nestboxctl %s: unknown option %s\n", argv[0], s);
      goto bad;
    }
    if (a->name == NULL)
      a->name = s;
    else
      g_ptr_array_add(rest, (gpointer)s);
  }
  g_ptr_array_add(rest, NULL);
  a->rest = (char **)g_ptr_array_free(rest, FALSE);
  if (a->name == NULL) {
    fprintf(err, "nestboxctl %s: expected a machine NAME\n", argv[0]);
    g_clear_pointer(&a->rest, g_free);
    *status = NB_MACHINE_TOOL_USAGE;
    return false;
  }
  return true;
bad:
  g_ptr_array_free(rest, TRUE);
  *status = NB_MACHINE_TOOL_USAGE;
  return false;
}

/* The machine document, or an error status already reported. */
static NbMachineDocument *
find_machine(const char *command, const char *name, FILE *err, int *status)
{
  g_autoptr(GError) error = NULL;
  NbMachineDocument *doc = nb_machine_registry_find(name, &error);
  if (doc == NULL)
    *status = fail(err, command, error);
  return doc;
}

/* A client for a machine that runs, or a clear "not running". */
static NbControlClient *
connect_machine(const char *command, const NbMachineDocument *doc, FILE *err, int *status)
{
  g_autofree char *path = nb_control_socket_path(doc->name);
  g_autoptr(GError) error = NULL;
  NbControlClient *c = nb_control_client_connect(path, &error);
  if (c)
    return c;
  NbMachineState state = nb_machine_status_get(doc->name, doc->dir);
  if (state == NB_MACHINE_STATE_STOPPED)
    fprintf(err, "nestboxctl %s: machine %s is not running — start it with: nestboxctl start %s\n", command,
            doc->name, doc->name);
  else if (state == NB_MACHINE_STATE_CRASHED)
    fprintf(err, "nestboxctl %s: machine %s is not running: it crashed — see: nestboxctl log %s\n", command,
            doc->name, doc->name);
  else
    fprintf(err, "nestboxctl %s: machine %s does not answer on its control socket (%s): %s\n", command,
            doc->name, path, error->message);
  *status = NB_MACHINE_TOOL_FAILED;
  return NULL;
}

static void
print_log_tail(FILE *out, const char *path, int lines)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!g_file_get_contents(path, &text, &len, NULL) || len == 0) {
    fprintf(out, "    (the log %s is empty)\n", path);
    return;
  }
  const char *start = text + len;
  if (start > text && start[-1] == '\n')
    start--;
  for (int n = 0; start > text; start--)
    if (start[-1] == '\n' && ++n == lines)
      break;
  g_auto(GStrv) split = g_strsplit(start, "\n", -1);
  for (char **l = split; *l; l++)
    if (**l || l[1])
      fprintf(out, "    | %s\n", *l);
}

/* nestbox-vm: $NESTBOX_VM, else next to this program (an installed or a
 * build tree keeps them together), else on PATH. */
static char *
find_nestbox_vm(void)
{
  const char *env = g_getenv("NESTBOX_VM");
  if (env && *env)
    return g_strdup(env);
  g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
  if (self) {
    g_autofree char *dir = g_path_get_dirname(self);
    char *sibling = g_build_filename(dir, "nestbox-vm", NULL);
    if (g_file_test(sibling, G_FILE_TEST_IS_EXECUTABLE))
      return sibling;
    g_free(sibling);
    /* The build tree: app/nestboxctl and app/nestbox-vm. */
  }
  return g_find_program_in_path("nestbox-vm");
}

static int
run_start(int argc, char **argv, FILE *out, FILE *err)
{
  Args a;
  int status = 0;
  if (!parse_args(argc, argv, &a, "json,headless,timeout", err, &status))
    return status;
  g_autofree char **rest = a.rest;
  if (rest[0])
    return usage(err, "start", "unexpected argument", "NAME [--headless] [--timeout SECONDS] [--json]");
  g_autoptr(NbMachineDocument) doc = find_machine("start", a.name, err, &status);
  if (doc == NULL)
    return status;
  if (nb_machine_lock_is_held(doc->dir)) {
    fprintf(err, "nestboxctl start: machine %s is already running\n", doc->name);
    return NB_MACHINE_TOOL_FAILED;
  }
  g_autofree char *vm = find_nestbox_vm();
  if (vm == NULL) {
    fprintf(err, "nestboxctl start: cannot find nestbox-vm next to nestboxctl or on PATH — install it, "
                 "or set NESTBOX_VM to its path\n");
    return NB_MACHINE_TOOL_FAILED;
  }
  g_autofree char *log_path = nb_machine_run_tool_log_path(doc->dir);
  int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) {
    int e = errno;
    fprintf(err, "nestboxctl start: cannot open the machine's log %s: %s\n", log_path, g_strerror(e));
    return NB_MACHINE_TOOL_FAILED;
  }
  g_autoptr(GDateTime) now = g_date_time_new_now_local();
  g_autofree char *stamp = g_date_time_format(now, "%F %T");
  g_autofree char *banner = g_strdup_printf("nestboxctl: %s starting %s%s with %s\n", stamp, doc->name,
                                            a.headless ? " headless" : "", vm);
  (void)!write(log, banner, strlen(banner));

  fflush(out);
  fflush(err);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(log);
    fprintf(err, "nestboxctl start: cannot start nestbox-vm: %s\n", g_strerror(e));
    return NB_MACHINE_TOOL_FAILED;
  }
  if (pid == 0) {
    /* A session of its own: the machine outlives this terminal and nestboxctl. */
    setsid();
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0)
      dup2(null, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    signal(SIGPIPE, SIG_DFL);
    char *child_argv[] = { vm, (char *)"--machine", (char *)doc->name, NULL };
    execv(vm, child_argv);
    dprintf(STDERR_FILENO, "nestboxctl: cannot run %s: %s\n", vm, g_strerror(errno));
    _exit(127);
  }
  close(log);

  int timeout = a.timeout ? a.timeout : 120;
  g_autofree char *socket = nb_control_socket_path(doc->name);
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout * G_TIME_SPAN_SECOND;
  NbMachineState state = NB_MACHINE_STATE_STARTING;
  int wstatus = 0;
  bool exited = false;
  while (g_get_monotonic_time() < deadline) {
    if (waitpid(pid, &wstatus, WNOHANG) == pid) {
      exited = true;
      break;
    }
    g_autoptr(NbControlClient) c = nb_control_client_connect(socket, NULL);
    if (c && nb_control_client_get_state(c, &state, NULL) &&
        (state == NB_MACHINE_STATE_RUNNING || state == NB_MACHINE_STATE_PAUSED))
      break;
    g_usleep(100 * 1000);
  }
  if (exited || (state != NB_MACHINE_STATE_RUNNING && state != NB_MACHINE_STATE_PAUSED)) {
    if (exited && WIFEXITED(wstatus))
      fprintf(err, "nestboxctl start: machine %s did not start: nestbox-vm exited with status %d. "
                   "The end of its log (%s):\n", doc->name, WEXITSTATUS(wstatus), log_path);
    else if (exited)
      fprintf(err, "nestboxctl start: machine %s did not start: nestbox-vm was killed by signal %d. "
                   "The end of its log (%s):\n", doc->name, WTERMSIG(wstatus), log_path);
    else
      fprintf(err, "nestboxctl start: machine %s is not running after %d s (state %s); it goes on "
                   "starting in the background. The end of its log (%s):\n", doc->name, timeout,
              nb_machine_state_to_string(state), log_path);
    print_log_tail(err, log_path, 15);
    return NB_MACHINE_TOOL_FAILED;
  }
  if (a.json) {
    g_autofree char *name = nb_machine_tool_json_string(doc->name);
    g_autofree char *lp = nb_machine_tool_json_string(log_path);
    g_autofree char *sp = nb_machine_tool_json_string(socket);
    fprintf(out, "{\"name\":%s,\"state\":\"%s\",\"pid\":%d,\"log\":%s,\"socket\":%s}\n", name,
            nb_machine_state_to_string(state), (int)pid, lp, sp);
  } else {
    fprintf(out, "Started machine %s (process %d); its log is %s\n", doc->name, (int)pid, log_path);
  }
  return NB_MACHINE_TOOL_OK;
}

/* Waits for the machine's process to let go of its folder. */
static bool
wait_stopped(const NbMachineDocument *doc, int seconds)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)seconds * G_TIME_SPAN_SECOND;
  while (nb_machine_lock_is_held(doc->dir)) {
    if (g_get_monotonic_time() >= deadline)
      return false;
    g_usleep(100 * 1000);
  }
  return true;
}

static void
print_state(FILE *out, const NbMachineDocument *doc, NbMachineState state, bool json, const char *done)
{
  if (json) {
    g_autofree char *name = nb_machine_tool_json_string(doc->name);
    fprintf(out, "{\"name\":%s,\"state\":\"%s\"}\n", name, nb_machine_state_to_string(state));
  } else if (done) {
    fprintf(out, "%s machine %s (now %s)\n", done, doc->name, nb_machine_state_to_string(state));
  } else {
    fprintf(out, "%s\n", nb_machine_state_to_string(state));
  }
}

static int
run_request(int argc, char **argv, NbMachineRequest request, FILE *out, FILE *err)
{
  const char *command = argv[0];
  bool stops = request == NB_MACHINE_REQUEST_SHUTDOWN || request == NB_MACHINE_REQUEST_POWEROFF;
  Args a;
  int status = 0;
  if (!parse_args(argc, argv, &a, stops ? "json,wait,timeout" : "json", err, &status))
    return status;
  g_autofree char **rest = a.rest;
  if (rest[0])
    return usage(err, command, "unexpected argument",
                 stops ? "NAME [--wait] [--timeout SECONDS] [--json]" : "NAME [--json]");
  g_autoptr(NbMachineDocument) doc = find_machine(command, a.name, err, &status);
  if (doc == NULL)
    return status;
  g_autoptr(NbControlClient) c = connect_machine(command, doc, err, &status);
  if (c == NULL)
    return status;
  g_autoptr(GError) error = NULL;
  if (!nb_control_client_request(c, request, &error))
    return fail(err, command, error);

  NbMachineState state;
  /* PowerOff always waits a moment: once it returns, the machine is stopped. */
  if (request == NB_MACHINE_REQUEST_POWEROFF || a.wait) {
    g_clear_pointer(&c, nb_control_client_free);
    int seconds = a.timeout ? a.timeout : (request == NB_MACHINE_REQUEST_POWEROFF ? 30 : 300);
    if (!wait_stopped(doc, seconds)) {
      fprintf(err, "nestboxctl %s: machine %s is still running after %d s%s\n", command, doc->name, seconds,
              request == NB_MACHINE_REQUEST_SHUTDOWN ? "; the guest may be ignoring the power button — "
                                                       "nestboxctl poweroff stops it at once" : "");
      return NB_MACHINE_TOOL_FAILED;
    }
    state = nb_machine_status_get(doc->name, doc->dir);
  } else if (!nb_control_client_get_state(c, &state, &error)) {
    return fail(err, command, error);
  }
  static const char *const done[] = {
    [NB_MACHINE_REQUEST_PAUSE] = "Paused", [NB_MACHINE_REQUEST_RESUME] = "Resumed",
    [NB_MACHINE_REQUEST_RESET] = "Reset", [NB_MACHINE_REQUEST_SHUTDOWN] = "Pressed the power button of",
    [NB_MACHINE_REQUEST_POWEROFF] = "Powered off",
  };
  print_state(out, doc, state, a.json, done[request]);
  return NB_MACHINE_TOOL_OK;
}

static int
run_state(int argc, char **argv, FILE *out, FILE *err)
{
  Args a;
  int status = 0;
  if (!parse_args(argc, argv, &a, "json", err, &status))
    return status;
  g_autofree char **rest = a.rest;
  if (rest[0])
    return usage(err, "state", "unexpected argument", "NAME [--json]");
  g_autoptr(NbMachineDocument) doc = find_machine("state", a.name, err, &status);
  if (doc == NULL)
    return status;
  print_state(out, doc, nb_machine_status_get(doc->name, doc->dir), a.json, NULL);
  return NB_MACHINE_TOOL_OK;
}

static int
run_log(int argc, char **argv, FILE *out, FILE *err)
{
  Args a;
  int status = 0;
  if (!parse_args(argc, argv, &a, "serial,follow,lines", err, &status))
    return status;
  g_autofree char **rest = a.rest;
  if (rest[0])
    return usage(err, "log", "unexpected argument", "NAME [--serial] [--follow] [--lines N]");
  g_autoptr(NbMachineDocument) doc = find_machine("log", a.name, err, &status);
  if (doc == NULL)
    return status;
  g_autofree char *path = NULL;
  if (a.serial) {
    g_autoptr(GError) error = NULL;
    NbVmOptions options;
    if (!nb_machine_document_to_vm_options(doc, &options, &error))
      return fail(err, "log", error);
    if (options.serial != NB_SERIAL_FILE) {
      nb_vm_options_clear(&options);
      fprintf(err, "nestboxctl log: machine %s keeps no serial log ([serial] mode is not file)\n", doc->name);
      return NB_MACHINE_TOOL_FAILED;
    }
    path = g_strdup(options.serial_path);
    nb_vm_options_clear(&options);
  } else {
    path = nb_machine_run_tool_log_path(doc->dir);
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && !a.follow) {
      fprintf(err, "nestboxctl log: machine %s has no log yet (%s): it has not been started with nestboxctl start\n",
              doc->name, path);
      return NB_MACHINE_TOOL_FAILED;
    }
    if (errno != ENOENT) {
      int e = errno;
      fprintf(err, "nestboxctl log: cannot read %s: %s\n", path, g_strerror(e));
      return NB_MACHINE_TOOL_FAILED;
    }
  }
  if (fd >= 0 && a.lines > 0) {
    /* Find where the last N lines begin, reading back from the end. */
    off_t end = lseek(fd, 0, SEEK_END), pos = end;
    int newlines = 0;
    char buf[4096];
    bool found = false;
    while (pos > 0 && !found) {
      off_t chunk = MIN(pos, (off_t)sizeof buf);
      pos -= chunk;
      if (pread(fd, buf, (size_t)chunk, pos) != chunk)
        break;
      for (off_t i = chunk - 1; i >= 0; i--) {
        if (buf[i] == '\n' && pos + i != end - 1 && ++newlines == a.lines) {
          pos += i + 1;
          found = true;
          break;
        }
      }
    }
    lseek(fd, found ? pos : 0, SEEK_SET);
  }
  char buf[65536];
  for (;;) {
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : 0;
    if (n > 0) {
      fwrite(buf, 1, (size_t)n, out);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (!a.follow)
      break;
    /* --follow: more as it comes, until the machine stops (and what it
     * wrote last has been read). */
    fflush(out);
    if (!nb_machine_lock_is_held(doc->dir)) {
      if (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0) {
        fwrite(buf, 1, (size_t)n, out);
        continue;
      }
      break;
    }
    g_usleep(200 * 1000);
    if (fd < 0)
      fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd >= 0)
    close(fd);
  fflush(out);
  return NB_MACHINE_TOOL_OK;
}

static int
run_console(int argc, char **argv, FILE *out, FILE *err)
{
  Args a;
  int status = 0;
  if (!parse_args(argc, argv, &a, "force", err, &status))
    return status;
  g_autofree char **rest = a.rest;
  if (rest[0])
    return usage(err, "console", "unexpected argument", "NAME [--force]");
  g_autoptr(NbMachineDocument) doc = find_machine("console", a.name, err, &status);
  if (doc == NULL)
    return status;
  if (!nb_machine_lock_is_held(doc->dir)) {
    fprintf(err, "nestboxctl console: machine %s is not running — start it with: nestboxctl start %s\n",
            doc->name, doc->name);
    return NB_MACHINE_TOOL_FAILED;
  }
  g_autofree char *path = nb_console_socket_path(doc->name);
  g_autoptr(GError) error = NULL;
  if (!nb_console_client_attach(path, doc->name, a.force, err, &error))
    return fail(err, "console", error);
  return NB_MACHINE_TOOL_OK;
}

static int
run_forward(int argc, char **argv, FILE *out, FILE *err)
{
  static const char synopsis[] = "NAME list|add|remove [--nic N] [--json] [RULE]";
  Args a;
  int status = 0;
  if (!parse_args(argc, argv, &a, "nic,json", err, &status))
    return status;
  g_autofree char **rest = a.rest;
  const char *verb = rest[0];
  if (verb == NULL)
    return usage(err, "forward", "expected list, add or remove", synopsis);
  bool list = g_str_equal(verb, "list");
  if (!list && !g_str_equal(verb, "add") && !g_str_equal(verb, "remove"))
    return usage(err, "forward", "expected list, add or remove", synopsis);
  if (list ? rest[1] != NULL : (rest[1] == NULL || rest[2] != NULL))
    return usage(err, "forward", list ? "list takes no RULE" : "expected one RULE", synopsis);
  g_autoptr(NbMachineDocument) doc = find_machine("forward", a.name, err, &status);
  if (doc == NULL)
    return status;
  g_autoptr(NbControlClient) c = connect_machine("forward", doc, err, &status);
  if (c == NULL)
    return status;
  g_autoptr(GError) error = NULL;
  if (list) {
    g_auto(GStrv) rules = nb_control_client_list_port_forwards(c, a.nic, &error);
    if (rules == NULL)
      return fail(err, "forward", error);
    if (a.json)
      fputs("[", out);
    for (char **r = rules; *r; r++) {
      if (a.json) {
        g_autofree char *j = nb_machine_tool_json_string(*r);
        fprintf(out, "%s%s", r == rules ? "" : ",", j);
      } else {
        fprintf(out, "%s\n", *r);
      }
    }
    if (a.json)
      fputs("]\n", out);
    return NB_MACHINE_TOOL_OK;
  }
  bool ok = g_str_equal(verb, "add") ? nb_control_client_add_port_forward(c, a.nic, rest[1], &error)
                                     : nb_control_client_remove_port_forward(c, a.nic, rest[1], &error);
  if (!ok)
    return fail(err, "forward", error);
  return NB_MACHINE_TOOL_OK;
}

int
nb_machine_run_tool_run(int argc, char **argv, FILE *out, FILE *err)
{
  const char *c = argv[0];
  if (g_str_equal(c, "start")) return run_start(argc, argv, out, err);
  if (g_str_equal(c, "pause")) return run_request(argc, argv, NB_MACHINE_REQUEST_PAUSE, out, err);
  if (g_str_equal(c, "resume")) return run_request(argc, argv, NB_MACHINE_REQUEST_RESUME, out, err);
  if (g_str_equal(c, "reset")) return run_request(argc, argv, NB_MACHINE_REQUEST_RESET, out, err);
  if (g_str_equal(c, "shutdown")) return run_request(argc, argv, NB_MACHINE_REQUEST_SHUTDOWN, out, err);
  if (g_str_equal(c, "poweroff")) return run_request(argc, argv, NB_MACHINE_REQUEST_POWEROFF, out, err);
  if (g_str_equal(c, "state")) return run_state(argc, argv, out, err);
  if (g_str_equal(c, "log")) return run_log(argc, argv, out, err);
  if (g_str_equal(c, "console")) return run_console(argc, argv, out, err);
  if (g_str_equal(c, "forward")) return run_forward(argc, argv, out, err);
  fprintf(err, "nestboxctl: unknown command “%s”\n", c);
  return NB_MACHINE_TOOL_USAGE;
}
