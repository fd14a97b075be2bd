/* The VNC server of one machine (libvncserver, in the VM process).
 *
 * It serves the machine's framebuffer (hw/framebuffer.h) to any number of
 * VNC clients (up to NB_VNC_MAX_CLIENTS), with VNC password authentication
 * when a password file is given, and WebSocket clients (noVNC) on the same
 * port or on an extra one. Updates follow the framebuffer's damage; a guest
 * mode change resizes every client that understands DesktopSize.
 *
 * Each client has its own threads inside libvncserver, so a client that
 * reads slowly (or never) delays only itself: the VM's main loop only
 * copies damaged pixels into the server's buffer and marks them.
 *
 * The server outlives machines: a guest reboot makes a new machine, which
 * is attached again, and clients stay connected. */
#pragma once

#include "hw/framebuffer.h"
#include "machine/vm-options.h"

#include <glib.h>
#include <stdbool.h>

#define NB_VNC_ERROR (nb_vnc_error_quark())
GQuark nb_vnc_error_quark(void);

typedef enum {
  NB_VNC_ERROR_CONFIG,   /* bad password file, unknown keymap, port in use */
  NB_VNC_ERROR_FAILED,
} NbVncError;

#define NB_VNC_MAX_CLIENTS 32
/* How often the framebuffer is looked at for changes while clients are
 * connected; and, while it is changing (a look in the last
 * NB_VNC_FAST_HOLD_MS found a change), how often then. */
#define NB_VNC_REFRESH_MS 30
#define NB_VNC_FAST_REFRESH_MS 10
#define NB_VNC_FAST_HOLD_MS 250

/* Where input from clients goes; both are called from client threads. */
typedef struct {
  /* A Linux KEY_* code went down or up. */
  void (*key)(void *ctx, unsigned keycode, bool pressed);
  /* Absolute pointer, x and y in 0..NB_VNC_POINTER_MAX over the screen;
   * buttons: 1 left, 2 right, 4 middle; wheel clicks (positive: up). */
  void (*pointer)(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel);
  /* The guest's keyboard LEDs now (NB_VNC_LED_* of vnc-qemu.h: 1 Scroll,
   * 2 Num, 4 Caps Lock), asked on the main loop at each refresh; NULL:
   * clients are not told. */
  unsigned (*leds)(void *ctx);
} NbVncInput;

#define NB_VNC_POINTER_MAX 32767

typedef struct NbVncServer NbVncServer;

/* Reads the password file, checks the keymap, and starts listening. */
NbVncServer *nb_vnc_server_new(const NbVncSpec *spec, GError **error);
void nb_vnc_server_free(NbVncServer *server);

/* Serves fb and sends input to input/ctx, until detached; refreshes run on
 * the calling thread's default main context. */
void nb_vnc_server_attach(NbVncServer *server, NbFramebuffer *fb, const NbVncInput *input,
                          void *ctx);
void nb_vnc_server_detach(NbVncServer *server);

/* The TCP port it listens on. */
unsigned nb_vnc_server_port(NbVncServer *server);
/* Clients connected now. */
unsigned nb_vnc_server_clients(NbVncServer *server);
