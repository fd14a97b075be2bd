/* nestbox-vm --machine NAME: the machine's document becomes the options it
 * runs with, and the machine's run lock is held while it runs, so a second
 * start is refused rather than raced. */
#pragma once

#include "machine/vm-options.h"

#include <glib.h>

/* Replaces options (which name a machine) by the document's settings, keeping
 * --serial and --no-reboot from the command line. Returns the run lock's fd,
 * to keep open while the machine runs, or -1 with an error (the machine does
 * not exist, its document is invalid, or it is already running). */
int nb_machine_launch_prepare(NbVmOptions *options, GError **error);
