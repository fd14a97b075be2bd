/* `nestboxctl console`: attaches the terminal to a machine's serial console
 * socket (console-server.h) until Ctrl-] or the machine stops. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>

/* The detach key, as in virsh and telnet: Ctrl-]. */
#define NB_CONSOLE_DETACH_KEY 0x1d

/* $XDG_RUNTIME_DIR/nestbox/NAME.console */
char *nb_console_socket_path(const char *name);

/* Copies stdin to the console and the console to stdout, the terminal in raw
 * mode, until Ctrl-] on stdin, end of stdin, or the machine going away.
 * take_over: drop a client that is attached already instead of failing. */
bool nb_console_client_attach(const char *path, const char *name, bool take_over, FILE *err, GError **error);
