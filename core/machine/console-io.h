/* The host end of the guest console: where the guest's serial output goes
 * (stdout or a file) and where its input comes from (stdin, when it is the
 * console). It outlives machine resets, so a rebooting guest keeps its
 * terminal; the current machine attaches its input sink to it. */
#pragma once

#include "machine/vm-options.h"

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

typedef struct NbConsoleIo NbConsoleIo;
typedef void (*NbConsoleInputFunc)(void *ctx, const uint8_t *data, size_t len);

/* For NB_SERIAL_STDIO with a terminal on stdin, the terminal is switched to
 * character mode (signals still work, so Ctrl-C stops the machine). */
NbConsoleIo *nb_console_io_new(NbSerialMode mode, const char *path, GError **error);
void nb_console_io_free(NbConsoleIo *io);

/* Called from vCPU threads with guest output. */
void nb_console_io_write(NbConsoleIo *io, const uint8_t *data, size_t len);

/* Where input goes; NULL detaches (input is then dropped). */
void nb_console_io_set_input(NbConsoleIo *io, NbConsoleInputFunc func, void *ctx);

/* A second reader of the output (the console socket): func sees every write,
 * on the writing thread, and must not block. NULL removes it. */
void nb_console_io_set_tap(NbConsoleIo *io, NbConsoleInputFunc func, void *ctx);
/* Input from elsewhere than stdin (the console socket), to the same sink. */
void nb_console_io_inject(NbConsoleIo *io, const uint8_t *data, size_t len);
