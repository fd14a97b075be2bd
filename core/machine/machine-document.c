/* machine.ini: GKeyFile gives us the syntax, the rules and the line numbers
 * (which GKeyFile does not report) are ours. */
#include "machine/machine-document.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "base/size.h"
#include "net/nat.h"

G_DEFINE_QUARK(nb-machine-doc-error-quark, nb_machine_doc_error)

static void disk_free(gpointer p)
{
  NbMachineDisk *d = p;
  g_free(d->path);
  g_free(d->format);
  g_free(d->serial);
  g_free(d);
}

static void net_free(gpointer p)
{
  NbMachineNet *n = p;
  g_free(n->mac);
  g_free(n->net);
  g_free(n->net6);
  g_free(n->ipv6);
  g_strfreev(n->hostfwd);
  g_free(n);
}

NbMachineDocument *nb_machine_document_new(const char *dir, const char *name)
{
  NbMachineDocument *doc = g_new0(NbMachineDocument, 1);
  doc->dir = g_strdup(dir);
  doc->name = g_strdup(name);
  doc->cpus = 1;
  doc->memory = NB_VM_DEFAULT_MEMORY;
  doc->disks = g_ptr_array_new_with_free_func(disk_free);
  doc->nets = g_ptr_array_new_with_free_func(net_free);
  doc->serial = NB_SERIAL_FILE;
  return doc;
}

void nb_machine_document_free(NbMachineDocument *doc)
{
  if (doc == NULL)
    return;
  g_free(doc->dir);
  g_free(doc->name);
  g_free(doc->description);
  g_free(doc->preset);
  g_free(doc->uuid);
  g_free(doc->kernel);
  g_free(doc->cdrom);
  g_free(doc->boot_order);
  g_free(doc->initrd);
  g_free(doc->cmdline);
  g_ptr_array_unref(doc->disks);
  g_ptr_array_unref(doc->nets);
  g_free(doc->serial_path);
  g_free(doc->display_type);
  g_free(doc->display_listen);
  g_free(doc->display_password_file);
  g_free(doc->display_keymap);
  g_free(doc->display_share);
  g_free(doc);
}

/* The 1-based line of [group] (key NULL) or of key inside group; 0 if not found. */
static unsigned find_line(const char *text, const char *group, const char *key)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  bool in_group = false;
  for (unsigned i = 0; lines[i]; i++) {
    const char *l = lines[i];
    while (*l == ' ' || *l == '\t')
      l++;
    if (*l == '[') {
      const char *end = strchr(l, ']');
      in_group = end && (size_t)(end - l - 1) == strlen(group) && strncmp(l + 1, group, end - l - 1) == 0;
      if (in_group && key == NULL)
        return i + 1;
      continue;
    }
    if (in_group && key) {
      size_t kl = strlen(key);
      if (strncmp(l, key, kl) == 0) {
        const char *r = l + kl;
        while (*r == ' ' || *r == '\t')
          r++;
        if (*r == '=')
          return i + 1;
      }
    }
  }
  return 0;
}

typedef struct {
  const char *file;
  const char *text;
} Ctx;

static bool fail(const Ctx *c, const char *group, const char *key, GError **error, const char *fmt, ...)
  G_GNUC_PRINTF(5, 6);
static bool fail(const Ctx *c, const char *group, const char *key, GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *what = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  unsigned line = c->text && group ? find_line(c->text, group, key) : 0;
  if (line == 0 && key && group)
    line = find_line(c->text, group, NULL);
  g_autofree char *where = key ? g_strdup_printf("[%s] %s", group, key)
                               : group ? g_strdup_printf("[%s]", group) : g_strdup("document");
  if (line)
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID, "%s:%u: %s: %s", c->file, line, where, what);
  else
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID, "%s: %s: %s", c->file, where, what);
  return false;
}

static const char *const machine_keys[] = { "name", "description", "preset", "uuid", NULL };
static const char *const cpu_keys[] = { "count", NULL };
static const char *const memory_keys[] = { "size", NULL };
static const char *const boot_keys[] = { "firmware", "kernel", "initrd", "cmdline", "cdrom", "order", NULL };
static const char *const disk_keys[] = { "path", "format", "readonly", "serial", NULL };
static const char *const net_keys[] = { "mode", "mac", "net", "net6", "ipv6", "hostfwd", NULL };
static const char *const display_keys[] = { "type", "listen", "password-file", "keymap", "share", NULL };
static const char *const serial_keys[] = { "mode", "path", NULL };

static bool check_keys(const Ctx *c, GKeyFile *kf, const char *group, const char *const *allowed, GError **error)
{
  g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);
  for (char **k = keys; k && *k; k++)
    if (!g_strv_contains(allowed, *k)) {
      g_autofree char *list = g_strjoinv(", ", (char **)allowed);
      return fail(c, group, *k, error, "unknown key; expected one of: %s", list);
    }
  return true;
}

static char *get_str(GKeyFile *kf, const char *group, const char *key)
{
  return g_key_file_get_string(kf, group, key, NULL);
}

static bool get_bool(const Ctx *c, GKeyFile *kf, const char *group, const char *key, bool *out, GError **error)
{
  g_autofree char *v = get_str(kf, group, key);
  if (v == NULL)
    return true;
  if (g_str_equal(v, "true") || g_str_equal(v, "yes") || g_str_equal(v, "1"))
    *out = true;
  else if (g_str_equal(v, "false") || g_str_equal(v, "no") || g_str_equal(v, "0"))
    *out = false;
  else
    return fail(c, group, key, error, "'%s' is not a boolean; expected true or false", v);
  return true;
}

/* "disk:N" with N a decimal index. */
static bool indexed_group(const char *group, const char *prefix)
{
  size_t pl = strlen(prefix);
  if (strncmp(group, prefix, pl) != 0 || group[pl] == '\0')
    return false;
  for (const char *p = group + pl; *p; p++)
    if (!g_ascii_isdigit(*p))
      return false;
  return true;
}

static bool parse_disk(const Ctx *c, GKeyFile *kf, const char *g, NbMachineDocument *doc, GError **error)
{
  if (!check_keys(c, kf, g, disk_keys, error))
    return false;
  NbMachineDisk *d = g_new0(NbMachineDisk, 1);
  g_ptr_array_add(doc->disks, d);
  d->path = get_str(kf, g, "path");
  if (d->path == NULL || *d->path == '\0')
    return fail(c, g, "path", error, "missing; expected the disk image's path (relative to the machine directory or absolute)");
  d->format = get_str(kf, g, "format");
  if (d->format && !g_str_equal(d->format, "raw") && !g_str_equal(d->format, "qcow2"))
    return fail(c, g, "format", error, "'%s' is not a disk format; expected raw or qcow2", d->format);
  d->serial = get_str(kf, g, "serial");
  if (d->serial && strlen(d->serial) > 20)
    return fail(c, g, "serial", error, "'%s' is longer than 20 characters (virtio-blk's limit)", d->serial);
  return get_bool(c, kf, g, "readonly", &d->read_only, error);
}

static bool parse_net(const Ctx *c, GKeyFile *kf, const char *g, NbMachineDocument *doc, GError **error)
{
  if (!check_keys(c, kf, g, net_keys, error))
    return false;
  NbMachineNet *n = g_new0(NbMachineNet, 1);
  g_ptr_array_add(doc->nets, n);
  g_autofree char *mode = get_str(kf, g, "mode");
  if (mode && !g_str_equal(mode, "nat"))
    return fail(c, g, "mode", error, "'%s' is not supported; only mode=nat exists for now", mode);
  n->mac = get_str(kf, g, "mac");
  n->net = get_str(kf, g, "net");
  n->net6 = get_str(kf, g, "net6");
  n->ipv6 = get_str(kf, g, "ipv6");
  n->hostfwd = g_key_file_get_string_list(kf, g, "hostfwd", NULL, NULL);
  /* The NAT engine's own parser has the final word; run it now so errors carry the line. */
  g_autoptr(GString) spec = g_string_new("nat");
  if (n->mac)
    g_string_append_printf(spec, ",mac=%s", n->mac);
  if (n->net)
    g_string_append_printf(spec, ",net=%s", n->net);
  /* net6= and ipv6= alone first, so an error names the key at fault; a
   * comma would smuggle in another --net option. */
  const struct { const char *key; const char *value; } alone[] = { { "net6", n->net6 }, { "ipv6", n->ipv6 } };
  for (gsize i = 0; i < G_N_ELEMENTS(alone); i++) {
    if (alone[i].value == NULL)
      continue;
    g_autofree char *one = g_strdup_printf("nat,%s=%s", alone[i].key, alone[i].value);
    g_autoptr(GError) one_error = NULL;
    g_autoptr(NbNatConfig) one_config = strchr(alone[i].value, ',') ? NULL : nb_nat_config_parse(one, &one_error);
    if (one_config == NULL)
      return fail(c, g, alone[i].key, error, "%s",
                  one_error ? one_error->message : "a value may not hold a comma");
    g_string_append_printf(spec, ",%s=%s", alone[i].key, alone[i].value);
  }
  for (char **h = n->hostfwd; h && *h; h++)
    g_string_append_printf(spec, ",hostfwd=%s", *h);
  g_autoptr(GError) net_error = NULL;
  g_autoptr(NbNatConfig) config = nb_nat_config_parse(spec->str, &net_error);
  if (config == NULL || !nb_nat_config_check(config, &net_error))
    return fail(c, g, n->hostfwd ? "hostfwd" : n->net ? "net" : n->mac ? "mac" : "mode", error, "%s",
                net_error->message);
  return true;
}

NbMachineDocument *nb_machine_document_parse(const char *dir, const char *file_path, const char *text,
                                             GError **error)
{
  Ctx c = { file_path, text };
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GError) local = NULL;
  if (!g_key_file_load_from_data(kf, text, -1, G_KEY_FILE_NONE, &local)) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID, "%s: not a valid machine document: %s",
                file_path, local->message);
    return NULL;
  }
  g_autoptr(NbMachineDocument) doc = nb_machine_document_new(dir, NULL);
  g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
  for (char **g = groups; *g; g++) {
    const char *const *allowed = NULL;
    if (g_str_equal(*g, "machine")) allowed = machine_keys;
    else if (g_str_equal(*g, "cpu")) allowed = cpu_keys;
    else if (g_str_equal(*g, "memory")) allowed = memory_keys;
    else if (g_str_equal(*g, "boot")) allowed = boot_keys;
    else if (g_str_equal(*g, "display")) allowed = display_keys;
    else if (g_str_equal(*g, "serial")) allowed = serial_keys;
    else if (indexed_group(*g, "disk:")) {
      if (!parse_disk(&c, kf, *g, doc, error))
        return NULL;
      continue;
    } else if (indexed_group(*g, "net:")) {
      if (!parse_net(&c, kf, *g, doc, error))
        return NULL;
      continue;
    } else {
      fail(&c, *g, NULL, error,
           "unknown group; expected machine, cpu, memory, boot, disk:N, net:N, display or serial");
      return NULL;
    }
    if (!check_keys(&c, kf, *g, allowed, error))
      return NULL;
  }

  doc->name = get_str(kf, "machine", "name");
  if (doc->name == NULL || *doc->name == '\0') {
    fail(&c, "machine", "name", error, "missing; every machine document names its machine");
    return NULL;
  }
  doc->description = get_str(kf, "machine", "description");
  doc->preset = get_str(kf, "machine", "preset");
  doc->uuid = get_str(kf, "machine", "uuid");
  if (doc->uuid && !g_uuid_string_is_valid(doc->uuid)) {
    fail(&c, "machine", "uuid", error, "'%s' is not a UUID; expected e.g. 123e4567-e89b-12d3-a456-426614174000",
         doc->uuid);
    return NULL;
  }

  g_autofree char *count = get_str(kf, "cpu", "count");
  if (count) {
    guint64 n = 0;
    if (!g_ascii_string_to_unsigned(count, 10, 1, NB_MACHINE_MAX_CPUS, &n, NULL)) {
      fail(&c, "cpu", "count", error, "'%s' is not a CPU count; expected a number from 1 to %d", count,
           NB_MACHINE_MAX_CPUS);
      return NULL;
    }
    doc->cpus = (unsigned)n;
  }

  g_autofree char *size = get_str(kf, "memory", "size");
  if (size) {
    uint64_t bytes = 0;
    if (!nb_size_parse(size, &bytes, NULL) || bytes < NB_MACHINE_MIN_MEMORY || bytes % (2 * 1048576) != 0) {
      fail(&c, "memory", "size", error, "'%s' is not a memory size; expected at least 64M, a multiple of 2M (e.g. 1G)",
           size);
      return NULL;
    }
    doc->memory = bytes;
  }

  g_autofree char *firmware = get_str(kf, "boot", "firmware");
  if (firmware && !g_str_equal(firmware, "direct") && !g_str_equal(firmware, "bios")) {
    fail(&c, "boot", "firmware", error, "'%s' is not supported yet; use direct (Linux direct boot) or bios (SeaBIOS)",
         firmware);
    return NULL;
  }
  doc->firmware_bios = firmware && g_str_equal(firmware, "bios");
  doc->cdrom = get_str(kf, "boot", "cdrom");
  doc->boot_order = get_str(kf, "boot", "order");
  if (doc->boot_order) {
    g_auto(GStrv) items = g_strsplit(doc->boot_order, ",", -1);
    for (char **i = items; *i; i++)
      if (!g_str_equal(*i, "cdrom") && !g_str_equal(*i, "disk")) {
        fail(&c, "boot", "order", error, "'%s' is not a boot device; expected cdrom and disk, e.g. cdrom,disk", *i);
        return NULL;
      }
  }
  doc->kernel = get_str(kf, "boot", "kernel");
  doc->initrd = get_str(kf, "boot", "initrd");
  doc->cmdline = get_str(kf, "boot", "cmdline");

  g_autofree char *display = get_str(kf, "display", "type");
  if (display && !g_str_equal(display, "none") && !g_str_equal(display, "vnc") &&
      !g_str_equal(display, "sdl")) {
    fail(&c, "display", "type", error, "'%s' is not a display type; expected none, vnc or sdl",
         display);
    return NULL;
  }
  if (display && g_str_equal(display, "sdl"))
    doc->display_type = g_strdup(display);
  if (display && g_str_equal(display, "vnc")) {
    doc->display_type = g_strdup(display);
    doc->display_listen = get_str(kf, "display", "listen");
    doc->display_password_file = get_str(kf, "display", "password-file");
    doc->display_keymap = get_str(kf, "display", "keymap");
    doc->display_share = get_str(kf, "display", "share");
    NbVncShare share;
    if (doc->display_share && !nb_vnc_share_parse(doc->display_share, &share)) {
      fail(&c, "display", "share", error, "'%s' is not a sharing policy; expected allow-exclusive, "
           "force-shared, single or takeover", doc->display_share);
      return NULL;
    }
    g_autoptr(GError) vnc_error = NULL;
    NbVncSpec *spec = nb_vnc_spec_parse(doc->display_listen ? doc->display_listen : "127.0.0.1:0", &vnc_error);
    if (spec == NULL || (doc->display_listen && strchr(doc->display_listen, ','))) {
      fail(&c, "display", "listen", error, "'%s' is not HOST:DISPLAY (e.g. 127.0.0.1:1, display 0 to 99)",
           doc->display_listen);
      nb_vnc_spec_free(spec);
      return NULL;
    }
    nb_vnc_spec_free(spec);
  }

  g_autofree char *serial = get_str(kf, "serial", "mode");
  if (serial) {
    if (g_str_equal(serial, "file")) doc->serial = NB_SERIAL_FILE;
    else if (g_str_equal(serial, "none")) doc->serial = NB_SERIAL_NONE;
    else {
      fail(&c, "serial", "mode", error, "'%s' is not a serial mode; expected file or none", serial);
      return NULL;
    }
  }
  doc->serial_path = get_str(kf, "serial", "path");
  return g_steal_pointer(&doc);
}

NbMachineDocument *nb_machine_document_load(const char *dir, GError **error)
{
  g_autofree char *path = g_build_filename(dir, "machine.ini", NULL);
  g_autofree char *text = NULL;
  g_autoptr(GError) local = NULL;
  if (!g_file_get_contents(path, &text, NULL, &local)) {
    int code = g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? NB_MACHINE_DOC_ERROR_NOT_FOUND
                                                                        : NB_MACHINE_DOC_ERROR_IO;
    g_set_error(error, NB_MACHINE_DOC_ERROR, code, "Cannot read the machine document: %s", local->message);
    return NULL;
  }
  return nb_machine_document_parse(dir, path, text, error);
}

char *nb_machine_document_to_data(const NbMachineDocument *doc)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_key_file_set_string(kf, "machine", "name", doc->name ? doc->name : "");
  if (doc->description) g_key_file_set_string(kf, "machine", "description", doc->description);
  if (doc->preset) g_key_file_set_string(kf, "machine", "preset", doc->preset);
  if (doc->uuid) g_key_file_set_string(kf, "machine", "uuid", doc->uuid);
  g_key_file_set_integer(kf, "cpu", "count", (int)doc->cpus);
  g_autofree char *mem = nb_size_format(doc->memory);
  g_key_file_set_string(kf, "memory", "size", mem);
  g_key_file_set_string(kf, "boot", "firmware", doc->firmware_bios ? "bios" : "direct");
  if (doc->kernel) g_key_file_set_string(kf, "boot", "kernel", doc->kernel);
  if (doc->initrd) g_key_file_set_string(kf, "boot", "initrd", doc->initrd);
  if (doc->cmdline) g_key_file_set_string(kf, "boot", "cmdline", doc->cmdline);
  if (doc->cdrom) g_key_file_set_string(kf, "boot", "cdrom", doc->cdrom);
  if (doc->boot_order) g_key_file_set_string(kf, "boot", "order", doc->boot_order);
  for (guint i = 0; i < doc->disks->len; i++) {
    const NbMachineDisk *d = doc->disks->pdata[i];
    g_autofree char *g = g_strdup_printf("disk:%u", i);
    g_key_file_set_string(kf, g, "path", d->path);
    if (d->format) g_key_file_set_string(kf, g, "format", d->format);
    g_key_file_set_boolean(kf, g, "readonly", d->read_only);
    if (d->serial) g_key_file_set_string(kf, g, "serial", d->serial);
  }
  for (guint i = 0; i < doc->nets->len; i++) {
    const NbMachineNet *n = doc->nets->pdata[i];
    g_autofree char *g = g_strdup_printf("net:%u", i);
    g_key_file_set_string(kf, g, "mode", "nat");
    if (n->mac) g_key_file_set_string(kf, g, "mac", n->mac);
    if (n->net) g_key_file_set_string(kf, g, "net", n->net);
    if (n->net6) g_key_file_set_string(kf, g, "net6", n->net6);
    if (n->ipv6) g_key_file_set_string(kf, g, "ipv6", n->ipv6);
    if (n->hostfwd) g_key_file_set_string_list(kf, g, "hostfwd", (const char *const *)n->hostfwd, g_strv_length(n->hostfwd));
  }
  g_key_file_set_string(kf, "display", "type", doc->display_type ? doc->display_type : "none");
  if (doc->display_listen) g_key_file_set_string(kf, "display", "listen", doc->display_listen);
  if (doc->display_password_file) g_key_file_set_string(kf, "display", "password-file", doc->display_password_file);
  if (doc->display_keymap) g_key_file_set_string(kf, "display", "keymap", doc->display_keymap);
  if (doc->display_share) g_key_file_set_string(kf, "display", "share", doc->display_share);
  g_key_file_set_string(kf, "serial", "mode", doc->serial == NB_SERIAL_NONE ? "none" : "file");
  if (doc->serial_path) g_key_file_set_string(kf, "serial", "path", doc->serial_path);
  return g_key_file_to_data(kf, NULL, NULL);
}

static bool io_fail(GError **error, const char *what, const char *path)
{
  int e = errno;
  g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_IO, "Cannot %s %s: %s — check the directory's permissions and free space",
              what, path, g_strerror(e));
  return false;
}

bool nb_machine_write_atomic(const char *path, const char *data, gsize len, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
  int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0)
    return io_fail(error, "create a temporary file in", dir);
  gsize done = 0;
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      io_fail(error, "write", tmp);
      goto fail;
    }
    done += (gsize)n;
  }
  if (fsync(fd) < 0) {
    io_fail(error, "flush", tmp);
    goto fail;
  }
  close(fd);
  fd = -1;
  if (rename(tmp, path) < 0) {
    io_fail(error, "replace", path);
    goto fail;
  }
  /* The rename itself must reach the disk, or a crash could bring the old file back. */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return true;
fail:
  if (fd >= 0)
    close(fd);
  g_unlink(tmp);
  return false;
}

bool nb_machine_document_save(const NbMachineDocument *doc, GError **error)
{
  g_autofree char *path = g_build_filename(doc->dir, "machine.ini", NULL);
  g_autofree char *data = nb_machine_document_to_data(doc);
  return nb_machine_write_atomic(path, data, strlen(data), error);
}

bool nb_machine_document_set(NbMachineDocument *doc, const char *assignment, GError **error)
{
  const char *eq = strchr(assignment, '=');
  const char *dot = eq ? memchr(assignment, '.', (size_t)(eq - assignment)) : NULL;
  if (eq == NULL || dot == NULL || dot == assignment || dot + 1 == eq) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID,
                "'%s' is not a setting; expected GROUP.KEY=VALUE, e.g. cpu.count=4", assignment);
    return false;
  }
  /* The group may hold a dot-free index ("disk:0.path"): split at the last dot before '='. */
  const char *last = dot;
  for (const char *p = dot; p < eq; p++)
    if (*p == '.')
      last = p;
  g_autofree char *group = g_strndup(assignment, (gsize)(last - assignment));
  g_autofree char *key = g_strndup(last + 1, (gsize)(eq - last - 1));
  if (g_str_equal(group, "machine") && g_str_equal(key, "name")) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID,
                "machine.name cannot be set: a machine's name is its directory's name");
    return false;
  }
  g_autofree char *data = nb_machine_document_to_data(doc);
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_key_file_load_from_data(kf, data, -1, G_KEY_FILE_NONE, NULL);
  g_key_file_set_string(kf, group, key, eq + 1);
  g_autofree char *updated = g_key_file_to_data(kf, NULL, NULL);
  g_autofree char *label = g_strdup_printf("setting %s", assignment);
  g_autoptr(NbMachineDocument) parsed = nb_machine_document_parse(doc->dir, label, updated, error);
  if (parsed == NULL)
    return false;
  /* Swap contents so the caller's pointer stays valid. */
  NbMachineDocument tmp = *doc;
  *doc = *parsed;
  *parsed = tmp;
  return true;
}

static char *resolve(const char *dir, const char *path)
{
  return g_path_is_absolute(path) ? g_strdup(path) : g_build_filename(dir, path, NULL);
}

bool nb_machine_document_to_vm_options(const NbMachineDocument *doc, NbVmOptions *options, GError **error)
{
  memset(options, 0, sizeof(*options));
  if (doc->firmware_bios) {
    /* The firmware's log sits next to the serial log. */
    options->firmware = NB_FIRMWARE_BIOS;
    options->firmware_log = resolve(doc->dir, "firmware.log");
    if (doc->boot_order)
      options->boot_order = g_strsplit(doc->boot_order, ",", -1);
    if (doc->cdrom && *doc->cdrom)
      options->cdrom = resolve(doc->dir, doc->cdrom);
    /* The firmware tells the guest (SMBIOS: dmidecode, /sys/class/dmi). */
    options->uuid = g_strdup(doc->uuid);
    options->name = g_strdup(doc->name);
  } else if (doc->kernel == NULL) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID,
                "Machine %s has no kernel to boot — set one with: nestboxctl set %s boot.kernel=PATH", doc->name,
                doc->name);
    return false;
  }
  options->kernel = doc->kernel && *doc->kernel ? resolve(doc->dir, doc->kernel) : NULL;
  options->initrd = doc->initrd ? resolve(doc->dir, doc->initrd) : NULL;
  options->append = g_strdup(doc->cmdline ? doc->cmdline : "");
  options->cpus = doc->cpus;
  options->memory = doc->memory;
  options->serial = doc->serial;
  if (doc->serial == NB_SERIAL_FILE)
    options->serial_path = resolve(doc->dir, doc->serial_path ? doc->serial_path : "serial.log");
  options->disks = g_array_new(FALSE, TRUE, sizeof(NbDiskSpec));
  g_array_set_clear_func(options->disks, (GDestroyNotify)nb_disk_spec_clear);
  for (guint i = 0; i < doc->disks->len; i++) {
    const NbMachineDisk *d = doc->disks->pdata[i];
    NbDiskSpec spec = { resolve(doc->dir, d->path), d->read_only, g_strdup(d->serial), g_strdup(d->format) };
    g_array_append_val(options->disks, spec);
  }
  options->nets = g_new0(char *, doc->nets->len + 1);
  for (guint i = 0; i < doc->nets->len; i++) {
    const NbMachineNet *n = doc->nets->pdata[i];
    GString *spec = g_string_new("nat");
    if (n->mac) g_string_append_printf(spec, ",mac=%s", n->mac);
    if (n->net) g_string_append_printf(spec, ",net=%s", n->net);
    if (n->net6) g_string_append_printf(spec, ",net6=%s", n->net6);
    if (n->ipv6) g_string_append_printf(spec, ",ipv6=%s", n->ipv6);
    for (char **h = n->hostfwd; h && *h; h++) g_string_append_printf(spec, ",hostfwd=%s", *h);
    options->nets[i] = g_string_free(spec, FALSE);
  }
  options->console_ports = g_array_new(FALSE, TRUE, sizeof(NbConsolePortSpec));
  if (doc->display_type && g_str_equal(doc->display_type, "vnc")) {
    options->vnc = nb_vnc_spec_parse(doc->display_listen ? doc->display_listen : "127.0.0.1:0", error);
    if (options->vnc == NULL)
      return false;
    options->vnc->password_file = doc->display_password_file ? resolve(doc->dir, doc->display_password_file) : NULL;
    options->vnc->keymap = g_strdup(doc->display_keymap);
    if (doc->display_share)
      nb_vnc_share_parse(doc->display_share, &options->vnc->share);
    options->graphics = true;
  }
  /* A local window on the desktop of whoever runs the machine. */
  if (doc->display_type && g_str_equal(doc->display_type, "sdl"))
    options->display_sdl = options->graphics = true;
  return true;
}
