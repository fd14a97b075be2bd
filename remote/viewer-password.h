/* Where the viewer's VNC password comes from: a file, or the terminal. */
#pragma once

#include <glib.h>

/* The first line of path (without its newline). The file is the thin client's way:
 * it boots into the viewer with no one at a terminal. */
char *nb_viewer_password_read_file(const char *path, GError **error);

/* Asks on the controlling terminal without echo. Fails with NB_VIEWER_ERROR_NO_TERMINAL
 * when there is no terminal to ask on. */
char *nb_viewer_password_ask(const char *prompt, GError **error);
