/* `nestboxctl start|shutdown|poweroff|pause|resume|reset|state|log|console|forward`:
 * the commands that run a machine or talk to a running one over its control
 * socket. Exit statuses as machine-tool.h: 0 done, 1 failed (including "not
 * running"), 2 usage, 3 no such machine. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

bool nb_machine_run_tool_handles(const char *command);
/* argv[0] is the command. */
int nb_machine_run_tool_run(int argc, char **argv, FILE *out, FILE *err);

/* The machine's own log (nestbox-vm's messages), next to its serial log. */
char *nb_machine_run_tool_log_path(const char *dir);
