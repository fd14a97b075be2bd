/* A running machine: the VM, its vCPU threads and its devices, assembled
 * from nestbox-vm's options. A reset is a new NbMachine: the old one is freed
 * whole, so no device state can leak across a reboot. */
#pragma once

#include "hw/framebuffer.h"
#include "machine/console-io.h"
#include "machine/vm-options.h"

#include <glib.h>

#define NB_MACHINE_ERROR (nb_machine_error_quark())
GQuark nb_machine_error_quark(void);

typedef enum {
  NB_MACHINE_ERROR_CONFIG,   /* the user's configuration cannot work */
  NB_MACHINE_ERROR_FAILED,
} NbMachineError;

typedef enum {
  NB_MACHINE_EXIT_POWEROFF,  /* the guest powered off (ACPI S5) */
  NB_MACHINE_EXIT_RESET,     /* the guest rebooted */
  NB_MACHINE_EXIT_PANIC,     /* the guest kernel panicked (pvpanic) */
  NB_MACHINE_EXIT_CRASH,     /* KVM could not go on */
  NB_MACHINE_EXIT_STOPPED,   /* stopped from the host (signal, request) */
  NB_MACHINE_EXIT_NO_BOOT,   /* the firmware found nothing to boot */
} NbMachineExit;

typedef struct NbMachine NbMachine;

NbMachine *nb_machine_new(const NbVmOptions *options, NbConsoleIo *console, GError **error);
void nb_machine_free(NbMachine *machine);

/* Starts the vCPUs and runs the calling thread's default main context until
 * the machine stops; returns why. detail (may be NULL) says more. */
NbMachineExit nb_machine_run(NbMachine *machine, char **detail);

/* Thread-safe; the first reason wins. */
void nb_machine_stop(NbMachine *machine, NbMachineExit reason, const char *detail);

const char *nb_machine_exit_describe(NbMachineExit exit);

/* The screen (NULL without --vnc or another display), and input for it from
 * displays; the input functions are thread safe. Keycodes are Linux KEY_*;
 * the pointer is absolute, x and y in 0..32767 across the screen, buttons
 * 1 left, 2 right, 4 middle. Keys go to the virtio keyboard once its driver
 * runs, else to the PS/2 keyboard; the pointer likewise to the tablet, else
 * to the PS/2 mouse as relative motion. */
NbFramebuffer *nb_machine_framebuffer(NbMachine *machine);
void nb_machine_key_event(NbMachine *machine, unsigned keycode, bool pressed);
/* The keyboard LEDs the guest last set (1 Scroll, 2 Num, 4 Caps Lock), on
 * the keyboard that nb_machine_key_event types on. */
unsigned nb_machine_keyboard_leds(NbMachine *machine);
void nb_machine_pointer_event(NbMachine *machine, unsigned x, unsigned y, unsigned buttons,
                              int wheel);
/* Stops every vCPU (out of KVM_RUN, held) and returns once all are held;
 * fails if they do not stop within seconds. Not from a vCPU thread. */
bool nb_machine_pause(NbMachine *machine, GError **error);
void nb_machine_resume(NbMachine *machine);
/* For the vCPU loop: holds the calling vCPU thread while a pause is asked
 * for; returns whether it was held. */
bool nb_machine_park_if_paused(NbMachine *machine);
/* The ACPI power button; false when the guest does not listen to it. */
bool nb_machine_press_power_button(NbMachine *machine);
/* NbNat engines (or NULL for a NIC without one), indexed like [net:N]. */
GPtrArray *nb_machine_nat_engines(NbMachine *machine);
