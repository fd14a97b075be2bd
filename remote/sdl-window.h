/* The local window of one machine (`nestbox-vm --display sdl`), SDL2.
 *
 * It shows the machine's framebuffer (hw/framebuffer.h) scaled to the
 * window with its aspect ratio kept (black borders around), follows the
 * guest's mode changes by resizing, and sends the guest the keys (as Linux
 * key codes of the physical keys, so the guest's own layout applies) and an
 * absolute pointer (the tablet).
 *
 * Keys: Ctrl+Alt+F toggles fullscreen. A click into the window captures
 * the keyboard (the desktop's own shortcuts, Alt+Tab and the like, then go
 * to the guest too); Ctrl+Alt+G releases it, as the title says.
 *
 * Closing the window does not end the machine by itself: it asks the
 * program (NbSdlInput.close), which presses the guest's power button.
 *
 * Everything here runs on the thread that made the window, which must be
 * the program's main thread (SDL's video needs it) and the one running the
 * default GLib main context: events are pumped and the framebuffer
 * refreshed from a timeout there, about 60 times a second.
 *
 * Like the VNC server, the window outlives machines: a guest reboot makes
 * a new machine, which is attached again. */
#pragma once

#include "hw/framebuffer.h"

#include <glib.h>
#include <stdbool.h>

#define NB_SDL_ERROR (nb_sdl_error_quark())
GQuark nb_sdl_error_quark(void);

typedef enum {
  NB_SDL_ERROR_FAILED,   /* no display to open a window on */
} NbSdlError;

/* How often events are pumped and the framebuffer looked at. */
#define NB_SDL_REFRESH_MS 16
/* The tablet's range, as the machine takes it. */
#define NB_SDL_POINTER_MAX 32767

/* Where input from the window goes; all called on the window's thread. */
typedef struct {
  /* A Linux KEY_* code went down or up. */
  void (*key)(void *ctx, unsigned keycode, bool pressed);
  /* Absolute pointer, x and y in 0..NB_SDL_POINTER_MAX over the screen;
   * buttons: 1 left, 2 right, 4 middle; wheel clicks (positive: up). */
  void (*pointer)(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel);
  /* The user closed the window. */
  void (*close)(void *ctx);
} NbSdlInput;

typedef struct NbSdlWindow NbSdlWindow;

/* Opens the window (black until a machine is attached); name is shown in
 * its title. */
NbSdlWindow *nb_sdl_window_new(const char *name, GError **error);
void nb_sdl_window_free(NbSdlWindow *window);

/* Shows fb and sends input to input/ctx until detached. */
void nb_sdl_window_attach(NbSdlWindow *window, NbFramebuffer *fb, const NbSdlInput *input,
                          void *ctx);
void nb_sdl_window_detach(NbSdlWindow *window);

/* What the title says the machine is doing ("running", "shutting down"). */
void nb_sdl_window_set_state(NbSdlWindow *window, const char *state);

/* The window's title now (for tests). */
const char *nb_sdl_window_title(NbSdlWindow *window);

/* Geometry, exposed for tests. The guest picture of guest_w x guest_h in
 * an output of out_w x out_h: the largest rectangle of the guest's aspect
 * ratio, centred. The point out_x, out_y of the output as a tablet position
 * (0..NB_SDL_POINTER_MAX), clamped to the picture's edges; false if either
 * size is empty. */
void nb_sdl_window_fit(int guest_w, int guest_h, int out_w, int out_h, int *x, int *y, int *w,
                       int *h);
bool nb_sdl_window_to_tablet(int guest_w, int guest_h, int out_w, int out_h, int out_x, int out_y,
                             unsigned *tablet_x, unsigned *tablet_y);
