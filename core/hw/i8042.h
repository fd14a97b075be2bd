/* The i8042 keyboard controller on ports 0x60 (data) and 0x64 (status and
 * command), with a PS/2 keyboard on its first port (IRQ 1) and a PS/2 mouse
 * on its auxiliary port (IRQ 12). It is also how a PC guest resets itself
 * (command 0xfe, Linux's reboot=k).
 *
 * Key input is in Linux input keycodes (KEY_* of linux/input-event-codes.h),
 * the same codes that virtio-input carries, so one host map (VNC keysyms or
 * SDL scancodes to keycodes) serves both keyboards. The keyboard turns them
 * into scancode set 2 (or set 1 when the guest selects it), and the
 * controller translates set 2 to set 1 when the command byte's XLATE bit is
 * set, as a PC's does. Auto-repeat is the host's business: a held key
 * arrives as repeated presses.
 *
 * All entry points are thread safe: vCPU threads access the ports while the
 * display thread sends input. The reset function is called from the vCPU
 * thread that asked for the reset, without the device lock held. */
#pragma once

#include "hw/interrupts.h"
#include "kvm/io-bus.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_I8042_DATA_PORT    0x60
#define NB_I8042_COMMAND_PORT 0x64
#define NB_I8042_KBD_IRQ      1
#define NB_I8042_AUX_IRQ      12

/* Status register bits. */
#define NB_I8042_STR_OBF     0x01
#define NB_I8042_STR_IBF     0x02
#define NB_I8042_STR_SYS     0x04
#define NB_I8042_STR_CMD     0x08
#define NB_I8042_STR_UNLOCK  0x10
#define NB_I8042_STR_AUXDATA 0x20

/* Command byte bits. */
#define NB_I8042_CTR_KBDINT  0x01
#define NB_I8042_CTR_AUXINT  0x02
#define NB_I8042_CTR_SYS     0x04
#define NB_I8042_CTR_KBDDIS  0x10
#define NB_I8042_CTR_AUXDIS  0x20
#define NB_I8042_CTR_XLATE   0x40

/* Mouse buttons for nb_i8042_mouse_event. */
#define NB_I8042_BUTTON_LEFT   0x01
#define NB_I8042_BUTTON_RIGHT  0x02
#define NB_I8042_BUTTON_MIDDLE 0x04

typedef void (*NbI8042ResetFunc)(void *ctx);

typedef struct NbI8042 NbI8042;

NbI8042 *nb_i8042_new(NbInterrupts *irqs, NbI8042ResetFunc reset, void *ctx);
void nb_i8042_free(NbI8042 *dev);

/* Back to the power-on state: controller, keyboard and mouse. */
void nb_i8042_reset(NbI8042 *dev);

/* Registers ports 0x60 and 0x64. */
bool nb_i8042_register(NbI8042 *dev, NbIoBus *pio, GError **error);

/* The handlers for the data port and the command port, for tests and buses
 * that dispatch themselves (offset 0 is the port). */
const NbIoOps *nb_i8042_data_ops(void);
const NbIoOps *nb_i8042_command_ops(void);

/* A key pressed or released. Returns false for a keycode that a PC
 * keyboard does not have (nothing is sent). Input that the guest does not
 * read is queued up to a bound, then dropped. */
bool nb_i8042_key_event(NbI8042 *dev, unsigned keycode, bool pressed);

/* The keyboard LEDs the guest last set, for a display to mirror (VNC's
 * LED state, the host's Caps Lock): NB_I8042_LED_* bits. */
#define NB_I8042_LED_SCROLL_LOCK 0x01
#define NB_I8042_LED_NUM_LOCK    0x02
#define NB_I8042_LED_CAPS_LOCK   0x04
unsigned nb_i8042_keyboard_leds(NbI8042 *dev);

/* Relative motion and the buttons now held: dx to the right, dy downwards
 * (screen directions), dz wheel clicks (positive away from the user).
 * Motion the guest has not yet taken is added up, not lost. */
void nb_i8042_mouse_event(NbI8042 *dev, int dx, int dy, int dz, unsigned buttons);
