/* Where machines live and who may touch them: names, the machines directory,
 * and the locks that keep a running machine and concurrent edits apart. */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "machine/machine-document.h"

#define NB_MACHINE_NAME_MAX 64

/* Refuses names that could escape the machines directory or confuse a shell. */
bool nb_machine_name_check(const char *name, GError **error);
/* $XDG_DATA_HOME/nestbox/machines */
char *nb_machine_registry_root(void);
char *nb_machine_registry_dir(const char *name);
/* Sorted names of the directories that hold a machine.ini. */
char **nb_machine_registry_list(GError **error);
NbMachineDocument *nb_machine_registry_find(const char *name, GError **error);
/* Creates the directory and writes doc there; refuses an existing machine. */
bool nb_machine_registry_create(NbMachineDocument *doc, GError **error);
/* Refused while the machine is running (its lock is held). */
bool nb_machine_registry_delete(const char *name, GError **error);

/* The run lock: an OFD write lock on <dir>/lock, held by nestbox-vm for as
 * long as the machine runs. Returns the fd to keep, or -1 (BUSY if held). */
int nb_machine_lock_acquire(const char *dir, GError **error);
void nb_machine_lock_release(int fd);
bool nb_machine_lock_is_held(const char *dir);

/* The edit lock: an OFD write lock on <dir>/machine.ini.lock, waited for,
 * held across a load-modify-save so concurrent edits serialize. */
int nb_machine_edit_lock(const char *dir, GError **error);
