/* `nestboxctl disk …`: create, info, resize, convert, check and snapshot
 * disk images. */
#pragma once

#include <stdio.h>

/* Exit codes: the process's exit status. */
#define NB_DISK_TOOL_OK 0
#define NB_DISK_TOOL_FAILED 1
#define NB_DISK_TOOL_USAGE 2

/* argv[0] is "disk". Output goes to out, messages to err. */
int nb_disk_tool_run(int argc, char **argv, FILE *out, FILE *err);
