/* The viewer's own messages on screen ("reconnecting to server:1 in 4 s"), drawn with a
 * built-in bitmap font: a thin client may have no fonts installed at all. */
#pragma once

#include <SDL_render.h>

/* Dims what is on the renderer and draws a panel with a line, an optional detail
 * (wrapped, at most three lines) and a progress bar (0 to 1; below 0 none). */
void nb_viewer_status_draw(SDL_Renderer *renderer, int out_w, int out_h, const char *line,
                           const char *detail, double progress);
