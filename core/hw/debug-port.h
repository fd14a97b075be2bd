/* The debug console port (0x402) that QEMU-aware firmware writes its log to,
 * one byte at a time. Reading it gives 0xe9, which is how SeaBIOS tells that
 * the port is there. The device collects whole lines for the machine, which
 * logs them and watches them for what the user must hear about (no bootable
 * device). */
#pragma once

#include "kvm/io-bus.h"

#include <glib.h>
#include <stdbool.h>

#define NB_DEBUG_PORT          0x402
#define NB_DEBUG_PORT_READBACK 0xe9
#define NB_DEBUG_PORT_LINE_MAX 256   /* longer lines are cut in pieces */

/* line has no newline and is NUL-terminated; runs on a vCPU thread. */
typedef void (*NbDebugPortLineFunc)(void *ctx, const char *line);

typedef struct NbDebugPort NbDebugPort;

NbDebugPort *nb_debug_port_new(NbDebugPortLineFunc on_line, void *ctx);
void nb_debug_port_free(NbDebugPort *dev);
bool nb_debug_port_register(NbDebugPort *dev, NbIoBus *pio, GError **error);
/* Hands over a partial last line, if any. */
void nb_debug_port_flush(NbDebugPort *dev);
