#include "machine/vm-options.h"
#include "base/size.h"
#include "kvm/guest-memory.h"
#include "kvm/vm.h"

#include <errno.h>
#include <stdlib.h>

G_DEFINE_QUARK(nb-vm-options-error-quark, nb_vm_options_error)

bool
nb_vm_options_parse(NbVmOptions *options, int argc, char **argv, GError **error)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *append = NULL;
  g_autofree char *cpus = NULL, *memory = NULL, *serial = NULL, *console = NULL;
  g_auto(GStrv) disks = NULL, nets = NULL, ports = NULL;
  gboolean no_reboot = FALSE, rng = FALSE;

  GOptionEntry entries[] = {
    { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &kernel, "Linux kernel (bzImage) to boot", "PATH" },
    { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &initrd, "Initial ramdisk", "PATH" },
    { "append", 0, 0, G_OPTION_ARG_STRING, &append, "Kernel command line", "TEXT" },
    { "cpus", 0, 0, G_OPTION_ARG_STRING, &cpus, "Number of vCPUs (1-64, default 1)", "N" },
    { "memory", 0, 0, G_OPTION_ARG_STRING, &memory, "Guest memory, like 512M or 2G (default 512M)", "SIZE" },
    { "serial", 0, 0, G_OPTION_ARG_STRING, &serial, "Serial console: stdio (default), file:PATH or none", "WHERE" },
    { "no-reboot", 0, 0, G_OPTION_ARG_NONE, &no_reboot, "Exit when the guest reboots", NULL },
    { "disk", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &disks, "Disk image (repeatable)", "PATH[,readonly][,serial=ID][,format=raw|qcow2]" },
    { "net", 0, 0, G_OPTION_ARG_STRING_ARRAY, &nets, "Network card (repeatable)", "nat[,mac=MAC][,net=CIDR][,hostfwd=...]" },
    { "console-port", 0, 0, G_OPTION_ARG_STRING_ARRAY, &ports, "Named virtio-console port on a UNIX socket (repeatable)", "NAME=SOCKET" },
    { "rng", 0, 0, G_OPTION_ARG_NONE, &rng, "Give the guest a virtio entropy source", NULL },
    { "console", 0, 0, G_OPTION_ARG_STRING, &console, "Guest console device: serial (default) or hvc", "DEVICE" },
    { NULL },
  };

  g_autoptr(GOptionContext) context = g_option_context_new("- run one Nestbox virtual machine");
  g_option_context_add_main_entries(context, entries, NULL);
  g_option_context_set_summary(context,
    "Boots a Linux kernel on KVM. Exits with 0 when the guest powers off, 2 on a usage or\n"
    "configuration error, 3 when the guest kernel panics, 1 when the machine fails.");

  /* GOption modifies its argv; parse a copy so the caller keeps theirs. */
  g_autofree char **args = g_new0(char *, argc + 1);
  for (int i = 0; i < argc; i++)
    args[i] = argv[i];
  int n_args = argc;
  char **parse_argv = args;
  if (!g_option_context_parse(context, &n_args, &parse_argv, error)) {
    if (error && *error) {
      g_prefix_error(error, "bad option: ");
      (*error)->domain = NB_VM_OPTIONS_ERROR;
      (*error)->code = NB_VM_OPTIONS_ERROR_INVALID;
    }
    return false;
  }
  if (n_args > 1) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "unexpected argument “%s”: options start with --, see --help", parse_argv[1]);
    return false;
  }

  *options = (NbVmOptions){ .cpus = 1, .memory = NB_VM_DEFAULT_MEMORY, .serial = NB_SERIAL_STDIO };

  if (kernel == NULL) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "no kernel given: pass --kernel PATH with a Linux bzImage (see --help)");
    return false;
  }

  if (cpus != NULL) {
    char *end = NULL;
    errno = 0;
    long n = strtol(cpus, &end, 10);
    if (errno != 0 || end == cpus || *end != '\0' || n < NB_VM_MIN_CPUS || n > NB_VM_MAX_CPUS) {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--cpus %s is out of range: give a whole number from %d to %d", cpus,
                  NB_VM_MIN_CPUS, NB_VM_MAX_CPUS);
      return false;
    }
    options->cpus = (unsigned)n;
  }

  if (memory != NULL) {
    g_autoptr(GError) size_error = NULL;
    if (!nb_size_parse(memory, &options->memory, &size_error)) {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID, "--memory: %s",
                  size_error->message);
      return false;
    }
    if (options->memory < NB_GUEST_MEMORY_MIN) {
      g_autofree char *min = nb_size_format(NB_GUEST_MEMORY_MIN);
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--memory %s is too little: a machine needs at least %s", memory, min);
      return false;
    }
    if (options->memory % (2 * UINT64_C(1048576)) != 0) {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--memory %s is not a whole number of 2M pages: round it, e.g. to 512M", memory);
      return false;
    }
  }

  if (serial != NULL) {
    if (g_str_equal(serial, "stdio")) {
      options->serial = NB_SERIAL_STDIO;
    } else if (g_str_equal(serial, "none")) {
      options->serial = NB_SERIAL_NONE;
    } else if (g_str_has_prefix(serial, "file:") && serial[5] != '\0') {
      options->serial = NB_SERIAL_FILE;
      options->serial_path = g_strdup(serial + 5);
    } else {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--serial %s is not understood: use stdio, none or file:PATH", serial);
      return false;
    }
  }

  if (console != NULL) {
    if (g_str_equal(console, "hvc")) {
      options->console_hvc = true;
    } else if (!g_str_equal(console, "serial")) {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--console %s is not understood: use serial or hvc", console);
      return false;
    }
  }

  options->kernel = g_steal_pointer(&kernel);
  options->initrd = g_steal_pointer(&initrd);
  options->append = g_steal_pointer(&append);
  options->no_reboot = no_reboot;
  options->rng = rng;
  options->disks = disks ? g_steal_pointer(&disks) : g_new0(char *, 1);
  options->nets = nets ? g_steal_pointer(&nets) : g_new0(char *, 1);
  options->console_ports = ports ? g_steal_pointer(&ports) : g_new0(char *, 1);
  return true;
}

void
nb_vm_options_clear(NbVmOptions *options)
{
  g_clear_pointer(&options->kernel, g_free);
  g_clear_pointer(&options->initrd, g_free);
  g_clear_pointer(&options->append, g_free);
  g_clear_pointer(&options->serial_path, g_free);
  g_clear_pointer(&options->disks, g_strfreev);
  g_clear_pointer(&options->nets, g_strfreev);
  g_clear_pointer(&options->console_ports, g_strfreev);
}
