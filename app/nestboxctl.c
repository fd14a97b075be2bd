/* nestboxctl: the command-line tool. main() only picks the command. */
#include "block/disk-tool.h"
#include "machine/machine-run-tool.h"
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
  "  start     start a machine in the background (--headless, --timeout, --json)\n"
  "  shutdown  press a running machine's ACPI power button (--wait, --timeout)\n"
  "  poweroff  stop a machine at once, like pulling the plug\n"
  "  pause     stop a machine's CPUs; resume lets them run again\n"
  "  resume    let a paused machine run again\n"
  "  reset     restart a machine from power-on\n"
  "  state     show a machine's state (--json)\n"
  "  console   attach to a running machine's serial console; Ctrl-] detaches (--force)\n"
  "  log       show a machine's log (--serial: its serial console; --follow; --lines N)\n"
  "  forward   list, add or remove port forwards of a running machine's NAT network card\n"
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
  if (nb_machine_run_tool_handles(argv[1]))
    return nb_machine_run_tool_run(argc - 1, argv + 1, stdout, stderr);
  if (nb_machine_tool_handles(argv[1]))
    return nb_machine_tool_run(argc - 1, argv + 1, stdout, stderr);
  fprintf(stderr, "nestboxctl: unknown command “%s”\n\n%s", argv[1], usage);
  return 2;
}
