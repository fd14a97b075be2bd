/* nestbox-vm: runs one virtual machine. */
#include "machine/console-io.h"
#include "machine/machine-control.h"
#include "machine/machine-launch.h"
#include "machine/machine.h"
#include "machine/machine-registry.h"
#include "machine/vm-options.h"
#include "sdl-window.h"
#include "vnc-server.h"

#include <glib-unix.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>

enum {
  EXIT_GUEST_POWEROFF = 0,
  EXIT_MACHINE_FAILED = 1,
  EXIT_USAGE = 2,
  EXIT_GUEST_PANIC = 3,
};

static NbMachine *current_machine;

static void
vnc_key(void *ctx, unsigned keycode, bool pressed)
{
  nb_machine_key_event(ctx, keycode, pressed);
}

static void
vnc_pointer(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel)
{
  nb_machine_pointer_event(ctx, x, y, buttons, wheel);
}

static unsigned
vnc_leds(void *ctx)
{
  return nb_machine_keyboard_leds(ctx);
}

static const NbVncInput vnc_input = { vnc_key, vnc_pointer, vnc_leds };
static bool stop_requested;

/* Closing the window is a request to the guest, as a power button is (and
 * as VirtualBox's close dialog suggests by default): the guest shuts down
 * cleanly and nestbox-vm exits. A second close powers off at once, for a
 * guest that does not listen or takes too long. */
static NbSdlWindow *sdl_window;
static bool close_requested;

static void
sdl_close(void *ctx)
{
  NbMachine *machine = ctx;
  if (close_requested) {
    nb_machine_stop(machine, NB_MACHINE_EXIT_STOPPED, "powered off: its window was closed again");
    return;
  }
  close_requested = true;
  if (nb_machine_press_power_button(machine))
    nb_sdl_window_set_state(sdl_window, "shutting down (close again to power off now)");
  else
    nb_sdl_window_set_state(sdl_window,
                            "the guest ignores the power button (close again to power off now)");
}

static const NbSdlInput sdl_input = { vnc_key, vnc_pointer, sdl_close };

static gboolean
on_stop_signal(gpointer data)
{
  stop_requested = true;
  if (current_machine)
    nb_machine_stop(current_machine, NB_MACHINE_EXIT_STOPPED, data);
  return G_SOURCE_CONTINUE;
}

int
main(int argc, char **argv)
{
  setlocale(LC_ALL, "");
  g_autoptr(GError) error = NULL;
  NbVmOptions options;
  if (!nb_vm_options_parse(&options, argc, argv, &error)) {
    fprintf(stderr, "nestbox-vm: %s\n", error->message);
    return EXIT_USAGE;
  }

  int machine_lock = -1;
  if (options.machine) {
    machine_lock = nb_machine_launch_prepare(&options, &error);
    if (machine_lock < 0) {
      fprintf(stderr, "nestbox-vm: %s\n", error->message);
      nb_vm_options_clear(&options);
      return EXIT_USAGE;
    }
  }

  NbConsoleIo *console = nb_console_io_new(options.serial, options.serial_path, &error);
  if (console == NULL) {
    fprintf(stderr, "nestbox-vm: %s\n", error->message);
    nb_vm_options_clear(&options);
    if (machine_lock >= 0)
      nb_machine_lock_release(machine_lock);
    return EXIT_USAGE;
  }
  NbMachineControl *control = NULL;
  if (options.machine) {
    g_autofree char *dir = nb_machine_registry_dir(options.machine);
    control = nb_machine_control_new(options.machine, dir, &options, console, &error);
    if (control == NULL) {
      fprintf(stderr, "nestbox-vm: %s\n", error->message);
      nb_console_io_free(console);
      nb_vm_options_clear(&options);
      nb_machine_lock_release(machine_lock);
      return EXIT_USAGE;
    }
  }
  g_unix_signal_add_full(G_PRIORITY_HIGH, SIGINT, on_stop_signal, "interrupted (SIGINT)", NULL);
  g_unix_signal_add_full(G_PRIORITY_HIGH, SIGTERM, on_stop_signal, "terminated (SIGTERM)", NULL);
  g_unix_signal_add_full(G_PRIORITY_HIGH, SIGHUP, on_stop_signal, "hung up (SIGHUP)", NULL);
  signal(SIGPIPE, SIG_IGN);

  /* The VNC server lives across guest reboots, so clients stay connected. */
  NbVncServer *vnc = NULL;
  if (options.vnc) {
    vnc = nb_vnc_server_new(options.vnc, &error);
    if (vnc == NULL) {
      fprintf(stderr, "nestbox-vm: %s\n", error->message);
      nb_console_io_free(console);
      nb_vm_options_clear(&options);
      if (machine_lock >= 0)
        nb_machine_lock_release(machine_lock);
      return EXIT_USAGE;
    }
  }

  /* The window too, on this (the main) thread, where the machine's main
   * loop runs and pumps its events. */
  if (options.display_sdl) {
    sdl_window = nb_sdl_window_new(options.machine ? options.machine : "Nestbox machine", &error);
    if (sdl_window == NULL) {
      fprintf(stderr, "nestbox-vm: %s\n", error->message);
      nb_vnc_server_free(vnc);
      nb_console_io_free(console);
      nb_vm_options_clear(&options);
      if (machine_lock >= 0)
        nb_machine_lock_release(machine_lock);
      return EXIT_USAGE;
    }
  }

  int status = EXIT_GUEST_POWEROFF;
  for (;;) {
    NbMachine *machine = nb_machine_new(&options, console, &error);
    if (machine == NULL) {
      fprintf(stderr, "nestbox-vm: %s\n", error->message);
      status = EXIT_USAGE;
      if (control)
        nb_machine_control_detach(control, NB_MACHINE_EXIT_STOPPED, false);
      break;
    }
    current_machine = machine;
    if (vnc && nb_machine_framebuffer(machine))
      nb_vnc_server_attach(vnc, nb_machine_framebuffer(machine), &vnc_input, machine);
    if (sdl_window && nb_machine_framebuffer(machine)) {
      close_requested = false;
      nb_sdl_window_attach(sdl_window, nb_machine_framebuffer(machine), &sdl_input, machine);
      nb_sdl_window_set_state(sdl_window, "running");
    }
    if (stop_requested)
      nb_machine_stop(machine, NB_MACHINE_EXIT_STOPPED, "stopped before it started");
    g_autofree char *detail = NULL;
    if (control)
      nb_machine_control_attach(control, machine);
    NbMachineExit exit = nb_machine_run(machine, &detail);
    current_machine = NULL;
    if (vnc)
      nb_vnc_server_detach(vnc);
    if (sdl_window) {
      nb_sdl_window_detach(sdl_window);
      nb_sdl_window_set_state(sdl_window, nb_machine_exit_describe(exit));
    }
    nb_machine_free(machine);
    bool restarting = exit == NB_MACHINE_EXIT_RESET && !options.no_reboot && !stop_requested;
    if (control)
      nb_machine_control_detach(control, exit, restarting);

    /* A reset the guest did not ask for (a triple fault) or one asked for
     * over the control socket: said, so a log shows why the machine
     * restarted or stopped. */
    if (exit == NB_MACHINE_EXIT_RESET && detail)
      fprintf(stderr, "nestbox-vm: the machine reset: %s; %s\n", detail,
              restarting ? "restarting it" : "not restarting (--no-reboot)");
    if (restarting)
      continue;
    switch (exit) {
    case NB_MACHINE_EXIT_POWEROFF:
    case NB_MACHINE_EXIT_RESET:
      status = EXIT_GUEST_POWEROFF;
      break;
    case NB_MACHINE_EXIT_STOPPED:
      fprintf(stderr, "nestbox-vm: machine stopped: %s\n", detail ? detail : "on request");
      status = EXIT_GUEST_POWEROFF;
      break;
    case NB_MACHINE_EXIT_PANIC:
      fprintf(stderr, "nestbox-vm: the guest kernel panicked%s%s\n", detail ? ": " : "",
              detail ? detail : "");
      status = EXIT_GUEST_PANIC;
      break;
    case NB_MACHINE_EXIT_NO_BOOT:
      fprintf(stderr, "nestbox-vm: %s\n", detail ? detail : nb_machine_exit_describe(exit));
      status = EXIT_MACHINE_FAILED;
      break;
    case NB_MACHINE_EXIT_CRASH:
      fprintf(stderr, "nestbox-vm: the machine crashed: %s\n", detail ? detail : "unknown reason");
      status = EXIT_MACHINE_FAILED;
      break;
    }
    break;
  }

  nb_sdl_window_free(sdl_window);
  nb_vnc_server_free(vnc);
  nb_machine_control_free(control);
  nb_console_io_free(console);
  nb_vm_options_clear(&options);
  if (machine_lock >= 0)
    nb_machine_lock_release(machine_lock);
  return status;
}
