/* virtio-input (spec 5.8): a keyboard or an absolute tablet, the guest's
 * /dev/input/event* through its virtio_input driver.
 *
 * The host sends Linux input events (EV_KEY, EV_ABS, EV_REL, each report
 * closed by EV_SYN) with the functions below, from any thread (the VNC
 * server's client threads, an SDL loop). They wait in a bounded queue until
 * the guest has put buffers on the event queue; when it has none for long
 * enough that the queue is full, whole reports are dropped, never halves.
 * Keycodes are KEY_* of linux/input-event-codes.h, as for the i8042, so one
 * host map serves both keyboards. */
#pragma once

#include "hw/pci.h"
#include "kvm/guest-memory.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_VIRTIO_ID_INPUT 18

/* Config selects (5.8.2). */
#define NB_VIRTIO_INPUT_CFG_UNSET     0x00
#define NB_VIRTIO_INPUT_CFG_ID_NAME   0x01
#define NB_VIRTIO_INPUT_CFG_ID_SERIAL 0x02
#define NB_VIRTIO_INPUT_CFG_ID_DEVIDS 0x03
#define NB_VIRTIO_INPUT_CFG_PROP_BITS 0x10
#define NB_VIRTIO_INPUT_CFG_EV_BITS   0x11
#define NB_VIRTIO_INPUT_CFG_ABS_INFO  0x12
#define NB_VIRTIO_INPUT_CONFIG_SIZE   136

/* The tablet's coordinate range on both axes (the host scales to it). */
#define NB_VIRTIO_INPUT_ABS_MAX 32767

/* Events waiting for guest buffers; beyond, reports are dropped. */
#define NB_VIRTIO_INPUT_QUEUE_MAX 1024

/* Tablet buttons for nb_virtio_input_tablet_event. */
#define NB_VIRTIO_INPUT_BUTTON_LEFT   0x01
#define NB_VIRTIO_INPUT_BUTTON_RIGHT  0x02
#define NB_VIRTIO_INPUT_BUTTON_MIDDLE 0x04

typedef enum {
  NB_VIRTIO_INPUT_KEYBOARD,
  NB_VIRTIO_INPUT_TABLET,
} NbVirtioInputKind;

typedef struct NbVirtioInput NbVirtioInput;

NbVirtioInput *nb_virtio_input_new(NbGuestMemory *mem, NbVirtioInputKind kind, GError **error);
void nb_virtio_input_free(NbVirtioInput *in);
/* What nb_pci_bus_add takes. */
NbPciDevice *nb_virtio_input_pci_device(NbVirtioInput *in);

/* Keyboard: a key went down or up. A press of a key already down is sent
 * as a repeat (value 2), which is what Linux expects from a held key.
 * Returns false for a keycode the keyboard does not have. */
bool nb_virtio_input_key_event(NbVirtioInput *in, unsigned keycode, bool pressed);

/* Tablet: the pointer is at (x, y) in 0..NB_VIRTIO_INPUT_ABS_MAX, these
 * buttons are held, and the wheel turned by wheel clicks (positive away
 * from the user). Only what changed is sent. */
void nb_virtio_input_tablet_event(NbVirtioInput *in, unsigned x, unsigned y, unsigned buttons,
                                  int wheel);

/* Whether the guest's driver runs it (DRIVER_OK). */
bool nb_virtio_input_is_active(NbVirtioInput *in);

/* Keyboard: the LEDs the guest's driver last switched on (status queue
 * events), for a display to mirror (VNC's LED state). The bits are those
 * of the PS/2 keyboard's Set LEDs command. */
#define NB_VIRTIO_INPUT_LED_SCROLL_LOCK 0x01
#define NB_VIRTIO_INPUT_LED_NUM_LOCK    0x02
#define NB_VIRTIO_INPUT_LED_CAPS_LOCK   0x04
unsigned nb_virtio_input_leds(NbVirtioInput *in);

/* Events dropped because the guest gave no buffers, for tests and stats. */
guint64 nb_virtio_input_dropped(NbVirtioInput *in);
