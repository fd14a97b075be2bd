/* `nestboxctl create|list|info|set|delete|presets`: the offline commands. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#define NB_MACHINE_TOOL_OK 0
#define NB_MACHINE_TOOL_FAILED 1
#define NB_MACHINE_TOOL_USAGE 2
#define NB_MACHINE_TOOL_NOT_FOUND 3

bool nb_machine_tool_handles(const char *command);
/* argv[0] is the command. */
int nb_machine_tool_run(int argc, char **argv, FILE *out, FILE *err);

/* S (NULL as "") as a quoted JSON string, for the commands' --json output;
 * free with g_free(). */
char *nb_machine_tool_json_string(const char *s);
