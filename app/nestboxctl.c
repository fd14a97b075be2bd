/* nestboxctl: the command-line tool. main() only picks the command. */
#include "block/disk-tool.h"
#include "machine/machine-tool.h"

#include <glib.h>
#include <locale.h>
#include <string.h>

static const char usage[] =
  "Usage: nestboxctl COMMAND ...\n"
  "\n"
  "Commands:\n"
  "  create    create a machine (--preset, --cpus, --memory, --kernel, --initrd, --cmdline, --disk)\n"
  "  list      list machines (--json)\n"
  "  info      show a machine (--json)\n"
  "  set       change a machine: set NAME GROUP.KEY=VALUE...\n"
  "  delete    delete a stopped machine (--yes)\n"
  "  presets   list the machine presets\n"
  "  disk      create, inspect, resize, convert, check and snapshot disk images\n"
  "\n"
  "Run “nestboxctl COMMAND --help” for a command's options.\n";

int
main(int argc, char **argv)
{
  setlocale(LC_ALL, "");
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  if (strcmp(argv[1], "disk") == 0)
    return nb_disk_tool_run(argc - 1, argv + 1, stdout, stderr);
  if (nb_machine_tool_handles(argv[1]))
    return nb_machine_tool_run(argc - 1, argv + 1, stdout, stderr);
  fprintf(stderr, "nestboxctl: unknown command “%s”\n\n%s", argv[1], usage);
  return 2;
}
