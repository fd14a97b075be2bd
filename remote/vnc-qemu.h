/* QEMU's extensions to RFB, for the VNC server (vnc-server.c), on top of
 * libvncserver's protocol extension hooks:
 *
 * - QEMU Extended Key Event (pseudo-encoding -258, client message 255/0):
 *   the client sends the physical key (an XT scancode, QEMU's "qnum")
 *   with each keysym. Keys then reach the guest as the keys the user
 *   pressed, whatever the two keyboard layouts are, and no keymap is
 *   needed. noVNC, gtk-vnc (virt-viewer, gvncviewer) and TigerVNC use it
 *   when the server confirms it, which it does in a FramebufferUpdate
 *   with one rectangle of that encoding.
 * - QEMU LED State (pseudo-encoding -261): the server tells the client
 *   the guest's Caps, Num and Scroll Lock LEDs (a rectangle of that
 *   encoding followed by one byte), so the client can keep its lock keys
 *   in step with the guest's.
 *
 * libvncserver 0.9.14 passes unknown client messages and pseudo-encodings
 * to a protocol extension enabled for the client, which is what this is;
 * it is enabled per client, not registered globally, so only Nestbox's
 * own screens have it. */
#pragma once

#include <rfb/rfb.h>

#include <stdbool.h>
#include <stdint.h>

#define NB_VNC_ENCODING_QEMU_EXT_KEY   (-258)
#define NB_VNC_ENCODING_QEMU_LED_STATE (-261)
#define NB_VNC_MSG_QEMU                255
#define NB_VNC_QEMU_EXT_KEY_EVENT      0

/* LED bits, as in the -261 byte (and the PS/2 Set LEDs command). */
#define NB_VNC_LED_SCROLL_LOCK 0x01
#define NB_VNC_LED_NUM_LOCK    0x02
#define NB_VNC_LED_CAPS_LOCK   0x04

/* A key event with its scancode, from a client thread: keycode is the
 * Linux KEY_* of the key, or 0 when the client's scancode is not a key a
 * PC keyboard has (then the keysym is all there is). */
typedef void (*NbVncScancodeKeyFunc)(rfbClientPtr cl, uint32_t keysym, unsigned keycode, bool down);

typedef struct NbVncQemu NbVncQemu;

NbVncQemu *nb_vnc_qemu_new(NbVncScancodeKeyFunc key);
/* After every client has gone. */
void nb_vnc_qemu_free(NbVncQemu *q);

/* Enables the extension for a client that was accepted (newClientHook),
 * and frees its part when the client has gone (clientGoneHook). */
void nb_vnc_qemu_client_new(NbVncQemu *q, rfbClientPtr cl);
void nb_vnc_qemu_client_gone(rfbClientPtr cl);

/* Call at each refresh, from one thread, with the guest's LEDs now
 * (NB_VNC_LED_*): clients that asked for LED state are told when they
 * change, and confirmations that must wait are sent. It never waits for a
 * client: one that is busy or not reading gets it on a later call. */
void nb_vnc_qemu_refresh(NbVncQemu *q, rfbScreenInfoPtr screen, unsigned leds);

/* The Linux KEY_* of a QEMU key number (XT set 1 make code, plus 0x80 for
 * one after an E0 prefix); 0 for none. */
unsigned nb_vnc_qemu_keycode(uint32_t qnum);
