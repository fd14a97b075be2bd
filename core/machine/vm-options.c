#include "machine/vm-options.h"
#include "machine/machine-firmware.h"
#include "base/size.h"
#include "kvm/guest-memory.h"
#include "kvm/vm.h"
#include "net/nat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK(nb-vm-options-error-quark, nb_vm_options_error)

/* A path may contain commas; QEMU's way is to double them. We split on
 * commas that are not doubled and undouble the rest. */
static GPtrArray *
split_option_list(const char *text)
{
  GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
  GString *cur = g_string_new(NULL);
  for (const char *p = text; *p; p++) {
    if (*p == ',' && p[1] == ',') {
      g_string_append_c(cur, ',');
      p++;
    } else if (*p == ',') {
      g_ptr_array_add(parts, g_string_free(g_steal_pointer(&cur), FALSE));
      cur = g_string_new(NULL);
    } else {
      g_string_append_c(cur, *p);
    }
  }
  g_ptr_array_add(parts, g_string_free(cur, FALSE));
  return parts;
}

bool
nb_disk_spec_parse(const char *text, NbDiskSpec *out, GError **error)
{
  g_autoptr(GPtrArray) parts = split_option_list(text);
  NbDiskSpec spec = { 0 };
  const char *path = g_ptr_array_index(parts, 0);
  if (*path == '\0') {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "--disk %s: no image path: write --disk PATH[,readonly][,serial=ID][,format=raw|qcow2]",
                text);
    return false;
  }
  spec.path = g_strdup(path);
  for (guint i = 1; i < parts->len; i++) {
    const char *part = g_ptr_array_index(parts, i);
    if (g_str_equal(part, "readonly") || g_str_equal(part, "ro")) {
      spec.read_only = true;
    } else if (g_str_has_prefix(part, "serial=")) {
      const char *serial = part + 7;
      if (*serial == '\0' || strlen(serial) > 20) {
        g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                    "--disk %s: the serial must be 1 to 20 characters", text);
        goto fail;
      }
      for (const char *c = serial; *c; c++) {
        if (!g_ascii_isprint(*c)) {
          g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                      "--disk %s: the serial must be printable ASCII", text);
          goto fail;
        }
      }
      g_free(spec.serial);
      spec.serial = g_strdup(serial);
    } else if (g_str_has_prefix(part, "format=")) {
      const char *format = part + 7;
      if (!g_str_equal(format, "raw") && !g_str_equal(format, "qcow2")) {
        g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                    "--disk %s: unknown format “%s”: use raw or qcow2", text, format);
        goto fail;
      }
      g_free(spec.format);
      spec.format = g_strdup(format);
    } else {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--disk %s: unknown setting “%s”: use readonly, serial=ID or format=raw|qcow2 "
                  "(a comma in the path is written as two)",
                  text, part);
      goto fail;
    }
  }
  *out = spec;
  return true;

fail:
  nb_disk_spec_clear(&spec);
  return false;
}

void
nb_disk_spec_clear(NbDiskSpec *spec)
{
  g_clear_pointer(&spec->path, g_free);
  g_clear_pointer(&spec->serial, g_free);
  g_clear_pointer(&spec->format, g_free);
}

static void
disk_spec_array_clear(gpointer data)
{
  nb_disk_spec_clear(data);
}

static void
console_port_spec_clear(gpointer data)
{
  NbConsolePortSpec *spec = data;
  g_clear_pointer(&spec->name, g_free);
  g_clear_pointer(&spec->socket_path, g_free);
}

static bool
parse_console_port(const char *text, NbConsolePortSpec *out, GError **error)
{
  const char *eq = strchr(text, '=');
  if (eq == NULL || eq == text || eq[1] == '\0') {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "--console-port %s: write NAME=SOCKET, e.g. org.qemu.guest_agent.0=/run/user/1000/ga.sock",
                text);
    return false;
  }
  g_autofree char *name = g_strndup(text, eq - text);
  for (const char *c = name; *c; c++) {
    if (!g_ascii_isalnum(*c) && !strchr("._-", *c)) {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--console-port %s: a port name may hold letters, digits, '.', '_' and '-' only",
                  text);
      return false;
    }
  }
  if (strlen(eq + 1) >= 108) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "--console-port %s: the socket path is too long for a UNIX socket (107 bytes at most)",
                text);
    return false;
  }
  out->name = g_steal_pointer(&name);
  out->socket_path = g_strdup(eq + 1);
  return true;
}

void
nb_vnc_spec_free(NbVncSpec *spec)
{
  if (spec == NULL)
    return;
  g_free(spec->listen);
  g_free(spec->password_file);
  g_free(spec->keymap);
  g_free(spec);
}

static bool
parse_port_number(const char *text, unsigned min, unsigned max, unsigned *out)
{
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || text[0] == '+' || v < min ||
      v > max)
    return false;
  *out = (unsigned)v;
  return true;
}

static const char *const vnc_share_names[] = {
  [NB_VNC_SHARE_ALLOW_EXCLUSIVE] = "allow-exclusive",
  [NB_VNC_SHARE_FORCE_SHARED] = "force-shared",
  [NB_VNC_SHARE_SINGLE] = "single",
  [NB_VNC_SHARE_TAKEOVER] = "takeover",
};

bool
nb_vnc_share_parse(const char *name, NbVncShare *out)
{
  for (unsigned i = 0; i < G_N_ELEMENTS(vnc_share_names); i++)
    if (g_str_equal(name, vnc_share_names[i])) {
      *out = (NbVncShare)i;
      return true;
    }
  return false;
}

const char *
nb_vnc_share_name(NbVncShare share)
{
  return (unsigned)share < G_N_ELEMENTS(vnc_share_names) ? vnc_share_names[share] : "?";
}

NbVncSpec *
nb_vnc_spec_parse(const char *text, GError **error)
{
  bool share_given = false;
  g_auto(GStrv) parts = g_strsplit(text, ",", -1);
  NbVncSpec *spec = g_new0(NbVncSpec, 1);
  const char *addr = parts[0] ? parts[0] : "";
  /* HOST:N, [IPV6]:N or :N; the display is after the last colon. */
  const char *colon = strrchr(addr, ':');
  if (colon == NULL || !parse_port_number(colon + 1, 0, NB_VNC_MAX_DISPLAY, &spec->display)) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "--vnc %s: write HOST:DISPLAY with a display number from 0 to %d (port 5900 + "
                "display), e.g. 127.0.0.1:1",
                text, NB_VNC_MAX_DISPLAY);
    nb_vnc_spec_free(spec);
    return NULL;
  }
  g_autofree char *host = g_strndup(addr, (gsize)(colon - addr));
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    char *inner = g_strndup(host + 1, strlen(host) - 2);
    g_free(host);
    host = inner;
  }
  if (host[0] == '\0') {
    g_free(host);
    host = g_strdup("127.0.0.1");
  }
  if (!g_hostname_is_ip_address(host) && !g_str_equal(host, "localhost")) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "--vnc %s: “%s” is not an IP address: give one the server should listen on, "
                "e.g. 127.0.0.1 or 0.0.0.0",
                text, host);
    nb_vnc_spec_free(spec);
    return NULL;
  }
  spec->listen = g_steal_pointer(&host);
  for (char **p = parts[0] ? parts + 1 : parts; *p; p++) {
    if (g_str_has_prefix(*p, "password-file=") && (*p)[14] != '\0' && spec->password_file == NULL) {
      spec->password_file = g_strdup(*p + 14);
    } else if (g_str_has_prefix(*p, "keymap=") && (*p)[7] != '\0' && spec->keymap == NULL) {
      /* The VNC server knows the layouts and refuses one it lacks. */
      spec->keymap = g_strdup(*p + 7);
    } else if (g_str_has_prefix(*p, "websocket=") && spec->websocket == 0) {
      if (!parse_port_number(*p + 10, 1, 65535, &spec->websocket)) {
        g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                    "--vnc %s: websocket=%s is not a TCP port (1-65535)", text, *p + 10);
        nb_vnc_spec_free(spec);
        return NULL;
      }
    } else if (g_str_has_prefix(*p, "share=") && !share_given) {
      share_given = true;
      if (!nb_vnc_share_parse(*p + 6, &spec->share)) {
        g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                    "--vnc %s: share=%s is not a sharing policy; expected allow-exclusive "
                    "(a client may ask to be alone), force-shared (everybody shares), single "
                    "(one client, others refused) or takeover (one client, a new one replaces it)",
                    text, *p + 6);
        nb_vnc_spec_free(spec);
        return NULL;
      }
    } else {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--vnc %s: “%s” is not understood (once each: password-file=PATH, "
                  "websocket=PORT, keymap=us|de|fr, share=" NB_VNC_SHARE_NAMES ")",
                  text, *p);
      nb_vnc_spec_free(spec);
      return NULL;
    }
  }
  if (spec->websocket == NB_VNC_BASE_PORT + spec->display) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "--vnc %s: the WebSocket port is the VNC port itself; choose another (noVNC "
                "can also use the VNC port directly)",
                text);
    nb_vnc_spec_free(spec);
    return NULL;
  }
  return spec;
}

bool
nb_vm_options_parse(NbVmOptions *options, int argc, char **argv, GError **error)
{
  g_autofree char *kernel = NULL, *initrd = NULL, *append = NULL;
  g_autofree char *cpus = NULL, *memory = NULL, *serial = NULL, *console = NULL, *machine = NULL;
  g_autofree char *vnc = NULL;
  g_autofree char *display = NULL;
  g_auto(GStrv) disks = NULL, nets = NULL, ports = NULL;
  gboolean no_reboot = FALSE, rng = FALSE;
  g_autofree char *firmware = NULL, *firmware_file = NULL, *firmware_log = NULL, *boot = NULL;
  g_autofree char *cdrom = NULL, *vga_bios = NULL;

  GOptionEntry entries[] = {
    { "machine", 0, 0, G_OPTION_ARG_STRING, &machine, "Run the machine NAME made with nestboxctl create", "NAME" },
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
    { "vnc", 0, 0, G_OPTION_ARG_STRING, &vnc, "Give the machine a screen, keyboard and tablet, served over VNC", "[HOST]:N[,password-file=PATH][,websocket=PORT][,keymap=us|de|fr][,share=" NB_VNC_SHARE_NAMES "]" },
    { "firmware", 0, 0, G_OPTION_ARG_STRING, &firmware, "How the machine boots: direct (Linux direct boot, default) or bios (SeaBIOS)", "KIND" },
    { "firmware-file", 0, 0, G_OPTION_ARG_FILENAME, &firmware_file, "BIOS image for --firmware bios (default " NB_FIRMWARE_BIOS_DEFAULT_FILE ")", "PATH" },
    { "vga-bios-file", 0, 0, G_OPTION_ARG_FILENAME, &vga_bios, "VGA BIOS for the display with --firmware bios and --vnc (default " NB_FIRMWARE_VGA_BIOS_DEFAULT_FILE ")", "PATH" },
    { "firmware-log", 0, 0, G_OPTION_ARG_FILENAME, &firmware_log, "Write the firmware's debug log to PATH", "PATH" },
    { "boot", 0, 0, G_OPTION_ARG_STRING, &boot, "Boot order for --firmware bios, e.g. cdrom,disk", "ORDER" },
    { "cdrom", 0, 0, G_OPTION_ARG_FILENAME, &cdrom, "ISO image in a CD-ROM drive (virtio-scsi)", "PATH" },
    { "display", 0, 0, G_OPTION_ARG_STRING, &display, "Show the machine's screen in a local window (sdl) or not at all (none, the default); goes with --vnc", "sdl|none" },
    G_OPTION_ENTRY_NULL,
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

  /* Firmware options first, so their errors come before "no kernel"; they
   * are parsed for keeps at the end, when nothing else can fail. */
  NbVmOptions check = { .kernel = kernel };
  bool firmware_ok = nb_vm_options_parse_firmware(&check, firmware, firmware_file, firmware_log,
                                                  boot, error);
  check.kernel = NULL;
  nb_vm_options_clear(&check);
  if (!firmware_ok)
    return false;

  if (machine != NULL) {
    /* A machine's settings live in its document; mixing in command-line
     * settings would make what runs differ from what `nestboxctl info` shows. */
    if (kernel || initrd || append || cpus || memory || disks || nets || ports || rng || console ||
        vnc || display || firmware || firmware_file || boot || cdrom || vga_bios) {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--machine %s takes its settings from the machine's document: change them with "
                  "“nestboxctl set %s KEY=VALUE” (only --serial and --no-reboot go with --machine)",
                  machine, machine);
      return false;
    }
  } else if (kernel == NULL && !(firmware && g_str_equal(firmware, "bios"))) {
    g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                "no kernel given: pass --kernel PATH with a Linux bzImage, --firmware bios to boot "
                "from a disk, or --machine NAME (see --help)");
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
    options->serial_given = true;
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

  options->disks = g_array_new(FALSE, TRUE, sizeof(NbDiskSpec));
  g_array_set_clear_func(options->disks, disk_spec_array_clear);
  for (char **d = disks; d && *d; d++) {
    NbDiskSpec spec;
    if (!nb_disk_spec_parse(*d, &spec, error)) {
      nb_vm_options_clear(options);
      return false;
    }
    g_array_append_val(options->disks, spec);
  }
  options->console_ports = g_array_new(FALSE, TRUE, sizeof(NbConsolePortSpec));
  g_array_set_clear_func(options->console_ports, console_port_spec_clear);
  for (char **p = ports; p && *p; p++) {
    NbConsolePortSpec spec;
    if (!parse_console_port(*p, &spec, error)) {
      nb_vm_options_clear(options);
      return false;
    }
    for (guint i = 0; i < options->console_ports->len; i++) {
      if (g_str_equal(g_array_index(options->console_ports, NbConsolePortSpec, i).name, spec.name)) {
        g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                    "--console-port %s: a port named %s is already given", *p, spec.name);
        console_port_spec_clear(&spec);
        nb_vm_options_clear(options);
        return false;
      }
    }
    g_array_append_val(options->console_ports, spec);
  }

  for (char **n = nets; n && *n; n++) {
    g_autoptr(GError) net_error = NULL;
    g_autoptr(NbNatConfig) config = nb_nat_config_parse(*n, &net_error);
    if (config == NULL || !nb_nat_config_check(config, &net_error)) {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID, "--net %s: %s", *n,
                  net_error->message);
      nb_vm_options_clear(options);
      return false;
    }
  }

  if (vnc != NULL) {
    options->vnc = nb_vnc_spec_parse(vnc, error);
    if (options->vnc == NULL) {
      nb_vm_options_clear(options);
      return false;
    }
    options->graphics = true;
  }

  if (!nb_vm_options_parse_firmware(options, firmware, firmware_file, firmware_log, boot, error)) {
    nb_vm_options_clear(options);
    return false;
  }
  options->cdrom = g_steal_pointer(&cdrom);
  options->vga_bios_file = g_steal_pointer(&vga_bios);

  if (display != NULL) {
    if (!g_str_equal(display, "sdl") && !g_str_equal(display, "none")) {
      g_set_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID,
                  "--display %s: expected sdl (a local window) or none; for remote access use --vnc",
                  display);
      nb_vm_options_clear(options);
      return false;
    }
    options->display_sdl = g_str_equal(display, "sdl");
    options->graphics = options->graphics || options->display_sdl;
  }

  options->machine = g_steal_pointer(&machine);
  options->kernel = g_steal_pointer(&kernel);
  options->initrd = g_steal_pointer(&initrd);
  options->append = g_steal_pointer(&append);
  options->no_reboot = no_reboot;
  options->rng = rng;
  options->nets = nets ? g_steal_pointer(&nets) : g_new0(char *, 1);
  return true;
}

void
nb_vm_options_clear(NbVmOptions *options)
{
  g_clear_pointer(&options->kernel, g_free);
  g_clear_pointer(&options->machine, g_free);
  g_clear_pointer(&options->initrd, g_free);
  g_clear_pointer(&options->append, g_free);
  g_clear_pointer(&options->serial_path, g_free);
  g_clear_pointer(&options->disks, g_array_unref);
  g_clear_pointer(&options->nets, g_strfreev);
  g_clear_pointer(&options->console_ports, g_array_unref);
  g_clear_pointer(&options->vnc, nb_vnc_spec_free);
  g_clear_pointer(&options->firmware_file, g_free);
  g_clear_pointer(&options->firmware_log, g_free);
  g_clear_pointer(&options->vga_bios_file, g_free);
  g_clear_pointer(&options->uuid, g_free);
  g_clear_pointer(&options->name, g_free);
  g_clear_pointer(&options->boot_order, g_strfreev);
  g_clear_pointer(&options->cdrom, g_free);
}
