/* Where the remote desktop lands in the viewer's window, and back. */
#pragma once

#include <stdbool.h>

typedef struct {
  int x, y, w, h;
} NbViewerRect;

/* The largest rectangle with the remote desktop's aspect ratio that fits the output,
 * centred; the rest of the output is a black border. Empty if either size is. */
NbViewerRect nb_viewer_fit(int remote_w, int remote_h, int out_w, int out_h);

/* A point of the output (in output pixels) as a remote pixel, clamped to the remote
 * desktop so that a pointer on the border stays at its edge. false if the remote
 * desktop is empty. */
bool nb_viewer_to_remote(NbViewerRect view, int remote_w, int remote_h, int out_x, int out_y,
                         int *remote_x, int *remote_y);
