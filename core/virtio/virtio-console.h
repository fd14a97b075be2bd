/* virtio-console (spec 5.3) with VIRTIO_CONSOLE_F_MULTIPORT.
 *
 * Port 0 is the guest console (hvc0): what the guest writes goes to an
 * output function, input is pushed in with nb_virtio_console_input(). Named
 * ports (/dev/virtio-ports/NAME in the guest, e.g. the guest agent's
 * "org.qemu.guest_agent.0") are UNIX stream sockets that the device listens
 * on: one client at a time, bytes flow both ways, and the guest sees the
 * port open while a client is connected. All port work runs on the device's
 * worker thread. */
#pragma once

#include "hw/pci.h"
#include "kvm/guest-memory.h"

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

/* Feature bits and control events (spec 5.3.3, 5.3.6.2). */
#define NB_VIRTIO_CONSOLE_F_SIZE        0
#define NB_VIRTIO_CONSOLE_F_MULTIPORT   1
#define NB_VIRTIO_CONSOLE_F_EMERG_WRITE 2

#define NB_VIRTIO_CONSOLE_DEVICE_READY  0
#define NB_VIRTIO_CONSOLE_DEVICE_ADD    1
#define NB_VIRTIO_CONSOLE_DEVICE_REMOVE 2
#define NB_VIRTIO_CONSOLE_PORT_READY    3
#define NB_VIRTIO_CONSOLE_CONSOLE_PORT  4
#define NB_VIRTIO_CONSOLE_RESIZE        5
#define NB_VIRTIO_CONSOLE_PORT_OPEN     6
#define NB_VIRTIO_CONSOLE_PORT_NAME     7

/* Named ports besides the console: each takes two queues of the 64. */
#define NB_VIRTIO_CONSOLE_MAX_NAMED_PORTS 30
/* Console input held while the guest has no buffers; more is dropped. */
#define NB_VIRTIO_CONSOLE_INPUT_MAX (64 * 1024)

typedef struct {
  const char *name;          /* what the guest sees, e.g. "org.qemu.guest_agent.0" */
  const char *socket_path;   /* where the host listens */
} NbVirtioConsolePortSpec;

/* Guest console output (port 0), called on the worker thread, or on a vCPU
 * thread for the emergency-write register. */
typedef void (*NbVirtioConsoleOutputFunc)(void *ctx, const uint8_t *data, size_t len);

typedef struct NbVirtioConsole NbVirtioConsole;

/* Creates the device and the listening sockets of the named ports. A stale
 * socket left at a path is replaced; any other file there is an error. */
NbVirtioConsole *nb_virtio_console_new(NbGuestMemory *mem, const NbVirtioConsolePortSpec *ports,
                                       unsigned n_ports, NbVirtioConsoleOutputFunc output,
                                       void *output_ctx, GError **error);
/* Closes clients and removes the sockets it created. */
void nb_virtio_console_free(NbVirtioConsole *con);

/* What nb_pci_bus_add takes. */
NbPciDevice *nb_virtio_console_pci_device(NbVirtioConsole *con);

/* Keyboard input for the guest console; any thread. */
void nb_virtio_console_input(NbVirtioConsole *con, const uint8_t *data, size_t len);
