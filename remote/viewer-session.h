/* The thin-client viewer: one VNC connection shown in one SDL window. */
#pragma once

#include "viewer-address.h"

#include <glib.h>
#include <stdbool.h>

typedef struct {
  NbViewerAddress address;
  bool fullscreen;        /* start fullscreen (the default); Ctrl+Alt+F toggles */
  bool reconnect;         /* after losing a working connection, connect again */
  bool wait;              /* keep trying the first connection too (a thin client booting) */
  bool view_only;         /* send no keyboard or pointer input */
  bool verbose;           /* log libvncclient's messages and every state change */
  char *password_file;    /* NULL: ask on the terminal if the server wants a password */
} NbViewerOptions;

/* Runs until the user quits (true) or the connection fails in a way that trying again
 * would not fix: unreachable at the start, a refused password, no window (false). */
bool nb_viewer_run(const NbViewerOptions *options, GError **error);
