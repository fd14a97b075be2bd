/* The serial console of a running machine on a UNIX socket,
 * $XDG_RUNTIME_DIR/nestbox/NAME.console (mode 0600, same uid only), for
 * `nestboxctl console`. One client at a time: a second one is refused unless
 * it asks to take over, and then the first is told and dropped.
 *
 * The protocol is one request byte from the client ('a' attach, 'f' take
 * over), one reply line from the server ("OK\n" or "BUSY\n"), then raw bytes
 * both ways: guest output to the client, the client's keys to the guest. */
#pragma once

#include "machine/console-io.h"

#include <glib.h>

typedef struct NbConsoleServer NbConsoleServer;

/* The socket is replaced if stale (the caller holds the run lock). */
NbConsoleServer *nb_console_server_new(const char *path, NbConsoleIo *io, GError **error);
void nb_console_server_free(NbConsoleServer *server);
