/* The `nestboxctl disk` command: argument parsing and output for the block
 * library. Exit status 0 when it worked, 1 when the operation failed (or
 * check found problems), 2 for usage errors. */
#include "block/disk-tool.h"

#include "base/size.h"
#include "block/block.h"
#include "block/convert.h"
#include "block/qcow2.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
  FILE *out, *err;
} Tool;

static const char *usage_text =
  "Usage: nestboxctl disk COMMAND [OPTIONS] ...\n"
  "\n"
  "Commands:\n"
  "  create [--format qcow2|raw] [--backing FILE [--backing-format FMT]]\n"
  "         [--cluster-size SIZE] FILE [SIZE]   make a new, empty disk\n"
  "  info [--json] [--format FMT] [--no-lock] FILE  describe a disk and its backing chain\n"
  "  resize FILE [+]SIZE                            grow a disk (to or by SIZE)\n"
  "  convert [--format FMT] [-O qcow2|raw] [--cluster-size SIZE] SRC DST\n"
  "                                                 copy a disk (raw, qcow2, vdi, vmdk)\n"
  "                                                 into a new qcow2 or raw image\n"
  "  check [--json] [--repair] FILE                 check a qcow2 disk's metadata\n"
  "  snapshot list|create|apply|delete FILE [NAME]  internal snapshots of a qcow2 disk\n"
  "\n"
  "Sizes take K, M, G and T suffixes (20G). Exit status: 0 success, 1 failure,\n"
  "2 usage error.\n";

static int
usage(Tool *t, const char *format, ...) G_GNUC_PRINTF(2, 3);

static int
usage(Tool *t, const char *format, ...)
{
  va_list ap;
  va_start(ap, format);
  g_autofree char *msg = g_strdup_vprintf(format, ap);
  va_end(ap);
  fprintf(t->err, "nestboxctl disk: %s\n\n%s", msg, usage_text);
  return NB_DISK_TOOL_USAGE;
}

static int
failed(Tool *t, GError *error)
{
  fprintf(t->err, "nestboxctl disk: %s\n", error->message);
  g_error_free(error);
  return NB_DISK_TOOL_FAILED;
}

/* Parses the options of one command; NULL on a usage error (reported). */
static GOptionContext *
parse(Tool *t, const char *name, const GOptionEntry *entries, int *argc, char ***argv,
      int *status)
{
  GOptionContext *ctx = g_option_context_new(name);
  g_option_context_set_help_enabled(ctx, TRUE);
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, argc, argv, &error)) {
    *status = usage(t, "%s", error->message);
    g_option_context_free(ctx);
    return NULL;
  }
  return ctx;
}

static bool
parse_format(Tool *t, const char *name, NbBlockFormat *out, int *status)
{
  *out = NB_BLOCK_FORMAT_AUTO;
  if (name == NULL)
    return true;
  g_autoptr(GError) error = NULL;
  if (!nb_block_format_parse(name, out, &error)) {
    *status = usage(t, "%s", error->message);
    return false;
  }
  return true;
}

static bool
parse_size(Tool *t, const char *text, uint64_t *out, int *status)
{
  g_autoptr(GError) error = NULL;
  if (!nb_size_parse(text, out, &error)) {
    *status = usage(t, "%s", error->message);
    return false;
  }
  return true;
}

static bool
parse_cluster_size(Tool *t, const char *text, unsigned *bits, int *status)
{
  *bits = 0;
  if (text == NULL)
    return true;
  uint64_t bytes;
  if (!parse_size(t, text, &bytes, status))
    return false;
  if (bytes < 512 || bytes > (2u << 20) || (bytes & (bytes - 1)) != 0) {
    *status = usage(t, "cluster size %s must be a power of two from 512 to 2M", text);
    return false;
  }
  *bits = (unsigned)g_bit_nth_lsf(bytes, -1);
  return true;
}

static void
json_string(GString *s, const char *text)
{
  if (text == NULL) {
    g_string_append(s, "null");
    return;
  }
  g_string_append_c(s, '"');
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf(s, "\\%c", *p);
    else if (*p < 0x20)
      g_string_append_printf(s, "\\u%04x", *p);
    else
      g_string_append_c(s, (char)*p);
  }
  g_string_append_c(s, '"');
}

static char *
human(uint64_t bytes)
{
  return g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
}

/* ---- create ---- */

static int
cmd_create(Tool *t, int argc, char **argv)
{
  g_autofree char *format = NULL, *backing = NULL, *backing_format = NULL, *cluster = NULL;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, "qcow2 (default) or raw", "FMT" },
    { "backing", 'b', 0, G_OPTION_ARG_FILENAME, &backing, "backing file (qcow2 only)", "FILE" },
    { "backing-format", 'F', 0, G_OPTION_ARG_STRING, &backing_format, "its format", "FMT" },
    { "cluster-size", 0, 0, G_OPTION_ARG_STRING, &cluster, "qcow2 cluster size (64K)", "SIZE" },
    G_OPTION_ENTRY_NULL
  };
  int status = 0;
  g_autoptr(GOptionContext) ctx = parse(t, "FILE [SIZE] - make a new disk", entries, &argc,
                                        &argv, &status);
  if (ctx == NULL)
    return status;
  if (argc < 2 || argc > 3)
    return usage(t, "create needs a file name and a size (the size may be left out with --backing)");
  NbBlockFormat fmt, bfmt;
  unsigned bits;
  if (!parse_format(t, format ? format : "qcow2", &fmt, &status) ||
      !parse_format(t, backing_format, &bfmt, &status) ||
      !parse_cluster_size(t, cluster, &bits, &status))
    return status;
  uint64_t size = 0;
  if (argc == 3 && !parse_size(t, argv[2], &size, &status))
    return status;
  if (argc == 2 && backing == NULL)
    return usage(t, "create needs a size, like 20G");
  GError *error = NULL;
  bool ok;
  if (fmt == NB_BLOCK_FORMAT_RAW) {
    if (backing)
      return usage(t, "raw disks cannot have a backing file: use --format qcow2");
    ok = nb_raw_create(argv[1], size, &error);
  } else if (fmt == NB_BLOCK_FORMAT_QCOW2) {
    NbQcow2CreateOptions o = { .cluster_bits = bits, .backing_file = backing,
                               .backing_format = bfmt };
    ok = nb_qcow2_create(argv[1], size, &o, &error);
  } else {
    return usage(t, "can only create qcow2 or raw disks");
  }
  if (!ok)
    return failed(t, error);
  return NB_DISK_TOOL_OK;
}

/* ---- info ---- */

static void
info_text(Tool *t, NbBlock *b)
{
  for (NbBlock *cur = b; cur != NULL; cur = nb_block_backing(cur)) {
    if (cur != b)
      fprintf(t->out, "\n");
    g_autofree char *vs = human(nb_block_size(cur));
    g_autofree char *as = human(nb_block_allocated_bytes(cur));
    fprintf(t->out, "image: %s\n", nb_block_path(cur));
    fprintf(t->out, "file format: %s\n", nb_block_format_name(nb_block_format(cur)));
    fprintf(t->out, "virtual size: %s (%" G_GUINT64_FORMAT " bytes)\n", vs, nb_block_size(cur));
    fprintf(t->out, "disk size: %s\n", as);
    NbQcow2Info qi;
    if (!nb_qcow2_get_info(cur, &qi))
      continue;
    fprintf(t->out, "cluster size: %u\n", 1u << qi.cluster_bits);
    if (qi.backing_file)
      fprintf(t->out, "backing file: %s\nbacking file format: %s\n", qi.backing_file,
              qi.backing_format ? qi.backing_format : "(probed)");
    fprintf(t->out, "qcow2 version: %u (compat %s)\nrefcount bits: %u\n", qi.version,
            qi.version == 3 ? "1.1" : "0.10", qi.refcount_bits);
    if (qi.dirty || qi.corrupt)
      fprintf(t->out, "marked: %s%s\n", qi.dirty ? "dirty " : "", qi.corrupt ? "corrupt" : "");
    g_autoptr(GPtrArray) snaps = nb_qcow2_snapshot_list(cur, NULL);
    if (snaps && snaps->len > 0) {
      fprintf(t->out, "snapshots:\n%-6s %-24s %12s %s\n", "ID", "NAME", "DISK SIZE", "DATE");
      for (guint i = 0; i < snaps->len; i++) {
        NbQcow2Snapshot *sn = snaps->pdata[i];
        g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(sn->date_sec);
        g_autofree char *date = dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
        g_autofree char *ds = human(sn->disk_size);
        fprintf(t->out, "%-6s %-24s %12s %s\n", sn->id, sn->name, ds, date);
      }
    }
    nb_qcow2_info_clear(&qi);
  }
}

static void
info_json_one(GString *s, NbBlock *b)
{
  g_string_append(s, "{\"filename\": ");
  json_string(s, nb_block_path(b));
  g_string_append(s, ", \"format\": ");
  json_string(s, nb_block_format_name(nb_block_format(b)));
  g_string_append_printf(s, ", \"virtual-size\": %" G_GUINT64_FORMAT
                         ", \"actual-size\": %" G_GUINT64_FORMAT,
                         nb_block_size(b), nb_block_allocated_bytes(b));
  NbQcow2Info qi;
  if (nb_qcow2_get_info(b, &qi)) {
    g_string_append_printf(s, ", \"cluster-size\": %u", 1u << qi.cluster_bits);
    if (qi.backing_file) {
      g_string_append(s, ", \"backing-filename\": ");
      json_string(s, qi.backing_file);
      g_string_append(s, ", \"backing-filename-format\": ");
      json_string(s, qi.backing_format);
    }
    g_string_append_printf(s, ", \"format-specific\": {\"compat\": \"%s\", \"refcount-bits\": %u, "
                           "\"dirty\": %s, \"corrupt\": %s}",
                           qi.version == 3 ? "1.1" : "0.10", qi.refcount_bits,
                           qi.dirty ? "true" : "false", qi.corrupt ? "true" : "false");
    g_string_append(s, ", \"snapshots\": [");
    g_autoptr(GPtrArray) snaps = nb_qcow2_snapshot_list(b, NULL);
    for (guint i = 0; snaps && i < snaps->len; i++) {
      NbQcow2Snapshot *sn = snaps->pdata[i];
      g_string_append(s, i ? ", {\"id\": " : "{\"id\": ");
      json_string(s, sn->id);
      g_string_append(s, ", \"name\": ");
      json_string(s, sn->name);
      g_string_append_printf(s, ", \"disk-size\": %" G_GUINT64_FORMAT ", \"date-sec\": %u, "
                             "\"date-nsec\": %u, \"vm-state-size\": %" G_GUINT64_FORMAT "}",
                             sn->disk_size, sn->date_sec, sn->date_nsec, sn->vm_state_size);
    }
    g_string_append(s, "]");
    nb_qcow2_info_clear(&qi);
  }
}

static int
cmd_info(Tool *t, int argc, char **argv)
{
  gboolean json = FALSE, no_lock = FALSE;
  g_autofree char *format = NULL;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "machine-readable output", NULL },
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, "the disk's format (default: detect)", "FMT" },
    { "no-lock", 'U', 0, G_OPTION_ARG_NONE, &no_lock,
      "read a disk that is in use (the answer may be stale)", NULL },
    G_OPTION_ENTRY_NULL
  };
  int status = 0;
  g_autoptr(GOptionContext) ctx = parse(t, "FILE - describe a disk", entries, &argc, &argv,
                                        &status);
  if (ctx == NULL)
    return status;
  if (argc != 2)
    return usage(t, "info needs one file name");
  NbBlockFormat fmt;
  if (!parse_format(t, format, &fmt, &status))
    return status;
  NbBlockOpenOptions o = { .format = fmt, .read_only = true, .no_lock = no_lock };
  GError *error = NULL;
  g_autoptr(NbBlock) b = nb_block_open(argv[1], &o, &error);
  if (b == NULL)
    return failed(t, error);
  if (!json) {
    info_text(t, b);
    return NB_DISK_TOOL_OK;
  }
  /* The image, with its backing chain nested like qemu-img's backing-image. */
  g_autoptr(GString) s = g_string_new(NULL);
  int depth = 0;
  for (NbBlock *cur = b; cur != NULL; cur = nb_block_backing(cur)) {
    if (cur != b)
      g_string_append(s, ", \"backing-image\": ");
    info_json_one(s, cur);
    depth++;
  }
  for (int i = 0; i < depth; i++)
    g_string_append_c(s, '}');
  fprintf(t->out, "%s\n", s->str);
  return NB_DISK_TOOL_OK;
}

/* ---- resize ---- */

static int
cmd_resize(Tool *t, int argc, char **argv)
{
  const GOptionEntry entries[] = { G_OPTION_ENTRY_NULL };
  int status = 0;
  g_autoptr(GOptionContext) ctx = parse(t, "FILE [+]SIZE - grow a disk", entries, &argc,
                                        &argv, &status);
  if (ctx == NULL)
    return status;
  if (argc != 3)
    return usage(t, "resize needs a file name and a size (20G, or +5G to add)");
  bool relative = argv[2][0] == '+';
  uint64_t size;
  if (!parse_size(t, argv[2] + (relative ? 1 : 0), &size, &status))
    return status;
  GError *error = NULL;
  g_autoptr(NbBlock) b = nb_block_open(argv[1], NULL, &error);
  if (b == NULL)
    return failed(t, error);
  if (relative) {
    if (size > UINT64_MAX - nb_block_size(b))
      return usage(t, "size %s is too large", argv[2]);
    size += nb_block_size(b);
  }
  if (!nb_block_resize(b, size, &error) || !nb_block_flush(b, &error))
    return failed(t, error);
  g_autofree char *h = human(size);
  fprintf(t->out, "%s is now %s (%" G_GUINT64_FORMAT " bytes)\n", argv[1], h, size);
  return NB_DISK_TOOL_OK;
}

/* ---- convert ---- */

static int
cmd_convert(Tool *t, int argc, char **argv)
{
  g_autofree char *format = NULL, *out_format = NULL, *cluster = NULL;
  const GOptionEntry entries[] = {
    { "format", 'f', 0, G_OPTION_ARG_STRING, &format, "source format (default: detect)", "FMT" },
    { "output-format", 'O', 0, G_OPTION_ARG_STRING, &out_format, "qcow2 (default) or raw", "FMT" },
    { "cluster-size", 0, 0, G_OPTION_ARG_STRING, &cluster, "qcow2 cluster size (64K)", "SIZE" },
    G_OPTION_ENTRY_NULL
  };
  int status = 0;
  g_autoptr(GOptionContext) ctx = parse(t, "SRC DST - copy a disk into a new image", entries,
                                        &argc, &argv, &status);
  if (ctx == NULL)
    return status;
  if (argc != 3)
    return usage(t, "convert needs a source and a destination file");
  NbBlockFormat fmt, ofmt;
  unsigned bits;
  if (!parse_format(t, format, &fmt, &status) ||
      !parse_format(t, out_format ? out_format : "qcow2", &ofmt, &status) ||
      !parse_cluster_size(t, cluster, &bits, &status))
    return status;
  if (ofmt != NB_BLOCK_FORMAT_QCOW2 && ofmt != NB_BLOCK_FORMAT_RAW)
    return usage(t, "can only convert to qcow2 or raw");
  NbBlockOpenOptions o = { .format = fmt, .read_only = true };
  GError *error = NULL;
  g_autoptr(NbBlock) src = nb_block_open(argv[1], &o, &error);
  if (src == NULL)
    return failed(t, error);
  NbConvertOptions co = { .format = ofmt, .qcow2 = { .cluster_bits = bits } };
  if (!nb_block_convert(src, argv[2], &co, &error))
    return failed(t, error);
  return NB_DISK_TOOL_OK;
}

/* ---- check ---- */

static int
cmd_check(Tool *t, int argc, char **argv)
{
  gboolean json = FALSE, repair = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "machine-readable output", NULL },
    { "repair", 'r', 0, G_OPTION_ARG_NONE, &repair, "free leaked clusters", NULL },
    G_OPTION_ENTRY_NULL
  };
  int status = 0;
  g_autoptr(GOptionContext) ctx = parse(t, "FILE - check a qcow2 disk", entries, &argc, &argv,
                                        &status);
  if (ctx == NULL)
    return status;
  if (argc != 2)
    return usage(t, "check needs one file name");
  NbBlockOpenOptions o = { .format = NB_BLOCK_FORMAT_AUTO, .read_only = !repair };
  GError *error = NULL;
  g_autoptr(NbBlock) b = nb_block_open(argv[1], &o, &error);
  if (b == NULL)
    return failed(t, error);
  NbQcow2CheckResult r;
  if (!nb_qcow2_check(b, repair, &r, &error)) {
    nb_qcow2_check_result_clear(&r);
    return failed(t, error);
  }
  if (json) {
    g_autoptr(GString) s = g_string_new("{\"filename\": ");
    json_string(s, argv[1]);
    g_string_append_printf(s, ", \"format\": \"qcow2\", \"check-errors\": 0, "
                           "\"corruptions\": %" G_GUINT64_FORMAT ", \"leaks\": %" G_GUINT64_FORMAT
                           ", \"allocated-clusters\": %" G_GUINT64_FORMAT
                           ", \"total-clusters\": %" G_GUINT64_FORMAT
                           ", \"image-end-offset\": %" G_GUINT64_FORMAT ", \"messages\": [",
                           r.corruptions, r.leaks, r.allocated_clusters, r.total_clusters,
                           r.image_end_offset);
    for (guint i = 0; i < r.messages->len; i++) {
      if (i)
        g_string_append(s, ", ");
      json_string(s, r.messages->pdata[i]);
    }
    g_string_append(s, "]}");
    fprintf(t->out, "%s\n", s->str);
  } else {
    for (guint i = 0; i < r.messages->len; i++)
      fprintf(t->out, "%s\n", (char *)r.messages->pdata[i]);
    if (r.corruptions == 0 && r.leaks == 0)
      fprintf(t->out, "No errors were found on the image.\n");
    if (r.leaks)
      fprintf(t->out, "%" G_GUINT64_FORMAT " leaked clusters were found: they waste space but "
              "harm no data (free them with --repair)\n", r.leaks);
    if (r.corruptions)
      fprintf(t->out, "%" G_GUINT64_FORMAT " errors were found: copy the data off with "
              "“nestboxctl disk convert” and repair with qemu-img check -r all\n",
              r.corruptions);
    fprintf(t->out, "%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " clusters allocated\n"
            "Image end offset: %" G_GUINT64_FORMAT "\n", r.allocated_clusters,
            r.total_clusters, r.image_end_offset);
  }
  int rc = (r.corruptions || r.leaks) ? NB_DISK_TOOL_FAILED : NB_DISK_TOOL_OK;
  nb_qcow2_check_result_clear(&r);
  return rc;
}

/* ---- snapshot ---- */

static int
cmd_snapshot(Tool *t, int argc, char **argv)
{
  const GOptionEntry entries[] = { G_OPTION_ENTRY_NULL };
  int status = 0;
  g_autoptr(GOptionContext) ctx = parse(t, "list|create|apply|delete FILE [NAME]", entries,
                                        &argc, &argv, &status);
  if (ctx == NULL)
    return status;
  if (argc < 3)
    return usage(t, "snapshot needs an action (list, create, apply, delete) and a file name");
  const char *action = argv[1], *file = argv[2];
  bool list = strcmp(action, "list") == 0;
  if (!list && strcmp(action, "create") != 0 && strcmp(action, "apply") != 0 &&
      strcmp(action, "delete") != 0)
    return usage(t, "unknown snapshot action “%s”: use list, create, apply or delete", action);
  if (list ? argc != 3 : argc != 4)
    return usage(t, list ? "snapshot list takes only a file name"
                         : "snapshot %s needs a file name and a snapshot name", action);
  NbBlockOpenOptions o = { .read_only = list };
  GError *error = NULL;
  g_autoptr(NbBlock) b = nb_block_open(file, &o, &error);
  if (b == NULL)
    return failed(t, error);
  if (list) {
    g_autoptr(GPtrArray) snaps = nb_qcow2_snapshot_list(b, &error);
    if (snaps == NULL)
      return failed(t, error);
    fprintf(t->out, "%-6s %-24s %12s %s\n", "ID", "NAME", "DISK SIZE", "DATE");
    for (guint i = 0; i < snaps->len; i++) {
      NbQcow2Snapshot *sn = snaps->pdata[i];
      g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(sn->date_sec);
      g_autofree char *date = dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
      g_autofree char *ds = human(sn->disk_size);
      fprintf(t->out, "%-6s %-24s %12s %s\n", sn->id, sn->name, ds, date);
    }
    return NB_DISK_TOOL_OK;
  }
  bool ok;
  if (strcmp(action, "create") == 0)
    ok = nb_qcow2_snapshot_create(b, argv[3], &error);
  else if (strcmp(action, "apply") == 0)
    ok = nb_qcow2_snapshot_apply(b, argv[3], &error);
  else
    ok = nb_qcow2_snapshot_delete(b, argv[3], &error);
  if (!ok || !nb_block_flush(b, &error))
    return failed(t, error);
  return NB_DISK_TOOL_OK;
}

int
nb_disk_tool_run(int argc, char **argv, FILE *out, FILE *err)
{
  Tool t = { out, err };
  if (argc < 2)
    return usage(&t, "a command is needed");
  static const struct {
    const char *name;
    int (*run)(Tool *, int, char **);
  } commands[] = {
    { "create", cmd_create }, { "info", cmd_info }, { "resize", cmd_resize },
    { "convert", cmd_convert }, { "check", cmd_check }, { "snapshot", cmd_snapshot },
  };
  if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "-h") == 0) {
    fputs(usage_text, out);
    return NB_DISK_TOOL_OK;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
    if (strcmp(argv[1], commands[i].name) == 0) {
      /* The command sees itself as argv[0], like a program of its own. */
      g_autofree char *prog = g_strdup_printf("nestboxctl disk %s", argv[1]);
      g_autofree char **copy = g_new0(char *, argc);
      copy[0] = prog;
      for (int j = 2; j < argc; j++)
        copy[j - 1] = argv[j];
      int n = argc - 1;
      char **v = copy;
      return commands[i].run(&t, n, v);
    }
  }
  return usage(&t, "unknown command “%s”", argv[1]);
}
