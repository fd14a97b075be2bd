/* What state a machine is in, seen from outside its process: asked over its
 * control socket while it runs, worked out from its run lock, its socket and
 * its recorded state when it does not. Used by nestboxctl and the manager. */
#pragma once

#include "control/machine-state.h"

#include <glib.h>

/* A machine whose process died without stopping it cleanly (killed, or a
 * VMM crash: the run lock is free but the socket is left behind, or the
 * recorded state is not "stopped") is crashed. A machine whose folder is
 * locked by a process that does not answer on a control socket is running
 * (or starting, if that is what it last recorded). */
NbMachineState nb_machine_status_get(const char *name, const char *dir);
