#include "machine/machine-tool.h"

#include <string.h>

#include "base/size.h"
#include "machine/machine-presets.h"
#include "machine/machine-registry.h"
#include "machine/machine-status.h"

static const char *const commands[] = { "create", "list", "info", "set", "delete", "presets", NULL };

bool nb_machine_tool_handles(const char *command)
{
  return g_strv_contains(commands, command);
}

static int report(FILE *err, const char *command, GError *error)
{
  fprintf(err, "nestboxctl %s: %s\n", command, error->message);
  if (error->domain == NB_MACHINE_DOC_ERROR && error->code == NB_MACHINE_DOC_ERROR_NOT_FOUND)
    return NB_MACHINE_TOOL_NOT_FOUND;
  return NB_MACHINE_TOOL_FAILED;
}

static int usage(FILE *err, const char *command, const char *text)
{
  fprintf(err, "nestboxctl %s: %s\nUsage: nestboxctl %s\n", command, text, command);
  return NB_MACHINE_TOOL_USAGE;
}

char *
nb_machine_tool_json_string(const char *s)
{
  GString *o = g_string_new("\"");
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf(o, "\\%c", *p);
    else if (*p < 0x20)
      g_string_append_printf(o, "\\u%04x", *p);
    else
      g_string_append_c(o, (char)*p);
  }
  g_string_append_c(o, '"');
  return g_string_free(o, FALSE);
}

static int run_create(int argc, char **argv, FILE *out, FILE *err)
{
  g_autofree char *preset = NULL, *memory = NULL, *kernel = NULL, *initrd = NULL, *cmdline = NULL;
  g_auto(GStrv) disks = NULL;
  int cpus = 0;
  GOptionEntry entries[] = {
    { "preset", 0, 0, G_OPTION_ARG_STRING, &preset, "Guest type preset (see: nestboxctl presets)", "P" },
    { "cpus", 0, 0, G_OPTION_ARG_INT, &cpus, "CPU count (1..64)", "N" },
    { "memory", 0, 0, G_OPTION_ARG_STRING, &memory, "Memory size, e.g. 2G", "SIZE" },
    { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &kernel, "Linux kernel", "PATH" },
    { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &initrd, "initrd", "PATH" },
    { "cmdline", 0, 0, G_OPTION_ARG_STRING, &cmdline, "Kernel command line", "TEXT" },
    { "disk", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &disks, "Disk image PATH[,readonly][,serial=ID][,format=F]", "SPEC" },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("NAME");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error))
    return usage(err, "create", error->message);
  if (argc != 2)
    return usage(err, "create", "expected exactly one machine NAME");
  const NbMachinePreset *p = nb_machine_preset_find(preset ? preset : nb_machine_presets()[0].name);
  if (p == NULL)
    return usage(err, "create", "unknown preset; list them with: nestboxctl presets");
  g_autoptr(NbMachineDocument) doc = nb_machine_document_new(NULL, argv[1]);
  doc->preset = g_strdup(p->name);
  doc->cpus = p->cpus;
  doc->memory = p->memory;
  doc->kernel = g_strdup(kernel);
  doc->initrd = g_strdup(initrd);
  doc->cmdline = g_strdup(cmdline);
  for (char **d = disks; d && *d; d++) {
    NbDiskSpec spec = { 0 };
    if (!nb_disk_spec_parse(*d, &spec, &error))
      return usage(err, "create", error->message);
    NbMachineDisk *md = g_new0(NbMachineDisk, 1);
    md->path = g_steal_pointer(&spec.path);
    md->format = g_steal_pointer(&spec.format);
    md->serial = g_steal_pointer(&spec.serial);
    md->read_only = spec.read_only;
    g_ptr_array_add(doc->disks, md);
  }
  /* Overrides go through the same validation as a document on disk. */
  g_autofree char *cpu_set = cpus ? g_strdup_printf("cpu.count=%d", cpus) : NULL;
  g_autofree char *mem_set = memory ? g_strdup_printf("memory.size=%s", memory) : NULL;
  if ((cpu_set && !nb_machine_document_set(doc, cpu_set, &error)) ||
      (mem_set && !nb_machine_document_set(doc, mem_set, &error)))
    return usage(err, "create", error->message);
  if (!nb_machine_registry_create(doc, &error))
    return report(err, "create", error);
  fprintf(out, "Created machine %s in %s\n", doc->name, doc->dir);
  return NB_MACHINE_TOOL_OK;
}

static const char *state_of(const NbMachineDocument *doc)
{
  return nb_machine_state_to_string(nb_machine_status_get(doc->name, doc->dir));
}

static int run_list(int argc, char **argv, FILE *out, FILE *err)
{
  bool json = argc == 2 && g_str_equal(argv[1], "--json");
  if (argc > 2 || (argc == 2 && !json))
    return usage(err, "list", "takes only --json");
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) names = nb_machine_registry_list(&error);
  if (names == NULL)
    return report(err, "list", error);
  if (json)
    fputs("[", out);
  else
    fprintf(out, "%-24s %-8s %4s %8s\n", "NAME", "STATE", "CPUS", "MEMORY");
  for (char **n = names; *n; n++) {
    g_autoptr(GError) e = NULL;
    g_autoptr(NbMachineDocument) doc = nb_machine_registry_find(*n, &e);
    g_autofree char *name = nb_machine_tool_json_string(*n);
    if (doc == NULL) {
      /* A broken document is shown, not hidden, so the user learns to fix it. */
      if (json)
        fprintf(out, "%s{\"name\":%s,\"state\":\"invalid\"}", n == names ? "" : ",", name);
      else
        fprintf(out, "%-24s %-8s\n", *n, "invalid");
      fprintf(err, "nestboxctl list: %s\n", e->message);
      continue;
    }
    g_autofree char *mem = nb_size_format(doc->memory);
    if (json)
      fprintf(out, "%s{\"name\":%s,\"state\":\"%s\",\"cpus\":%u,\"memory\":%" G_GUINT64_FORMAT "}",
              n == names ? "" : ",", name, state_of(doc), doc->cpus, doc->memory);
    else
      fprintf(out, "%-24s %-8s %4u %8s\n", *n, state_of(doc), doc->cpus, mem);
  }
  if (json)
    fputs("]\n", out);
  return NB_MACHINE_TOOL_OK;
}

static int run_info(int argc, char **argv, FILE *out, FILE *err)
{
  bool json = argc == 3 && g_str_equal(argv[2], "--json");
  if (argc < 2 || argc > 3 || (argc == 3 && !json))
    return usage(err, "info", "expected NAME [--json]");
  g_autoptr(GError) error = NULL;
  g_autoptr(NbMachineDocument) doc = nb_machine_registry_find(argv[1], &error);
  if (doc == NULL)
    return report(err, "info", error);
  if (json) {
    g_autofree char *name = nb_machine_tool_json_string(doc->name), *dir = nb_machine_tool_json_string(doc->dir), *kernel = nb_machine_tool_json_string(doc->kernel);
    fprintf(out, "{\"name\":%s,\"state\":\"%s\",\"dir\":%s,\"cpus\":%u,\"memory\":%" G_GUINT64_FORMAT
            ",\"kernel\":%s,\"disks\":%u,\"nets\":%u}\n", name, state_of(doc), dir, doc->cpus, doc->memory, kernel,
            doc->disks->len, doc->nets->len);
  } else {
    fprintf(out, "State: %s\nDirectory: %s\n", state_of(doc), doc->dir);
    g_autofree char *data = nb_machine_document_to_data(doc);
    fputs(data, out);
  }
  return NB_MACHINE_TOOL_OK;
}

static int run_set(int argc, char **argv, FILE *out, FILE *err)
{
  (void)out;
  if (argc < 3)
    return usage(err, "set", "expected NAME GROUP.KEY=VALUE...");
  g_autoptr(GError) error = NULL;
  if (!nb_machine_name_check(argv[1], &error))
    return report(err, "set", error);
  g_autofree char *dir = nb_machine_registry_dir(argv[1]);
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    fprintf(err, "nestboxctl set: No machine named '%s' — see: nestboxctl list\n", argv[1]);
    return NB_MACHINE_TOOL_NOT_FOUND;
  }
  /* Load, change and save under the edit lock, so a concurrent set waits and loses nothing. */
  int lock = nb_machine_edit_lock(dir, &error);
  if (lock < 0)
    return report(err, "set", error);
  int rc = NB_MACHINE_TOOL_OK;
  g_autoptr(NbMachineDocument) doc = nb_machine_document_load(dir, &error);
  if (doc == NULL)
    rc = report(err, "set", error);
  for (int i = 2; rc == NB_MACHINE_TOOL_OK && i < argc; i++)
    if (!nb_machine_document_set(doc, argv[i], &error))
      rc = report(err, "set", error);
  if (rc == NB_MACHINE_TOOL_OK && !nb_machine_document_save(doc, &error))
    rc = report(err, "set", error);
  nb_machine_lock_release(lock);
  return rc;
}

static int run_delete(int argc, char **argv, FILE *out, FILE *err)
{
  bool yes = argc == 3 && g_str_equal(argv[2], "--yes");
  if (argc < 2 || argc > 3 || (argc == 3 && !yes))
    return usage(err, "delete", "expected NAME [--yes]");
  g_autoptr(GError) error = NULL;
  g_autoptr(NbMachineDocument) doc = nb_machine_registry_find(argv[1], &error);
  if (doc == NULL)
    return report(err, "delete", error);
  if (!yes) {
    fprintf(err, "nestboxctl delete: this removes %s with its disks and logs; run again with --yes to confirm\n",
            doc->dir);
    return NB_MACHINE_TOOL_USAGE;
  }
  if (!nb_machine_registry_delete(argv[1], &error))
    return report(err, "delete", error);
  fprintf(out, "Deleted machine %s\n", argv[1]);
  return NB_MACHINE_TOOL_OK;
}

static int run_presets(FILE *out)
{
  for (const NbMachinePreset *p = nb_machine_presets(); p->name; p++) {
    g_autofree char *mem = nb_size_format(p->memory);
    fprintf(out, "%-14s %2u CPUs %6s  %s\n", p->name, p->cpus, mem, p->description);
  }
  return NB_MACHINE_TOOL_OK;
}

int nb_machine_tool_run(int argc, char **argv, FILE *out, FILE *err)
{
  const char *c = argv[0];
  if (g_str_equal(c, "create")) return run_create(argc, argv, out, err);
  if (g_str_equal(c, "list")) return run_list(argc, argv, out, err);
  if (g_str_equal(c, "info")) return run_info(argc, argv, out, err);
  if (g_str_equal(c, "set")) return run_set(argc, argv, out, err);
  if (g_str_equal(c, "delete")) return run_delete(argc, argv, out, err);
  if (g_str_equal(c, "presets")) return run_presets(out);
  return usage(err, c, "unknown command");
}
