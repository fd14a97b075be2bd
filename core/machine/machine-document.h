/* The machine document: machine.ini in a machine's directory, parsed
 * strictly so a typo is reported with its file and line, never ignored. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "machine/vm-options.h"

#define NB_MACHINE_DOC_ERROR (nb_machine_doc_error_quark())
GQuark nb_machine_doc_error_quark(void);

typedef enum {
  NB_MACHINE_DOC_ERROR_INVALID,   /* the document or a value in it is wrong */
  NB_MACHINE_DOC_ERROR_NOT_FOUND, /* no such machine */
  NB_MACHINE_DOC_ERROR_EXISTS,    /* create over an existing machine */
  NB_MACHINE_DOC_ERROR_BUSY,      /* the machine is running (its lock is held) */
  NB_MACHINE_DOC_ERROR_IO,
} NbMachineDocError;

#define NB_MACHINE_MIN_MEMORY (64 * UINT64_C(1048576))
#define NB_MACHINE_MAX_CPUS 64

typedef struct {
  char *path; /* as written: relative to the machine directory or absolute */
  char *format;
  bool read_only;
  char *serial;
} NbMachineDisk;

typedef struct {
  char *mac;
  char *net;
  char *net6;  /* the guest's IPv6 /64, as --net nat,net6= */
  char *ipv6;  /* on or off, as --net nat,ipv6= */
  char **hostfwd;
} NbMachineNet;

typedef struct {
  char *dir;        /* the machine directory */
  char *name;
  char *description;
  char *preset;
  char *uuid;
  unsigned cpus;
  uint64_t memory;
  bool firmware_bios;  /* [boot] firmware=bios: SeaBIOS boots the disks */
  char *cdrom;         /* [boot] cdrom: an ISO in the CD-ROM drive */
  char *boot_order;    /* [boot] order: e.g. "cdrom,disk" */
  char *kernel;
  char *initrd;
  char *cmdline;
  GPtrArray *disks; /* NbMachineDisk */
  GPtrArray *nets;  /* NbMachineNet */
  NbSerialMode serial;
  char *serial_path;
  char *display_type;       /* [display] type: none (NULL) or vnc */
  char *display_listen;     /* listen = HOST:N (default 127.0.0.1:0) */
  char *display_password_file;
  char *display_keymap;
  char *display_share;      /* share = allow-exclusive (NULL) | force-shared | single | takeover */
} NbMachineDocument;

NbMachineDocument *nb_machine_document_new(const char *dir, const char *name);
void nb_machine_document_free(NbMachineDocument *doc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NbMachineDocument, nb_machine_document_free)

/* Parses text read from file_path (used in messages: "FILE:LINE: [group] key: ..."). */
NbMachineDocument *nb_machine_document_parse(const char *dir, const char *file_path, const char *text,
                                             GError **error);
/* Loads <dir>/machine.ini. */
NbMachineDocument *nb_machine_document_load(const char *dir, GError **error);
char *nb_machine_document_to_data(const NbMachineDocument *doc);
/* Writes <dir>/machine.ini atomically: temp file, fsync, rename, fsync dir. */
bool nb_machine_document_save(const NbMachineDocument *doc, GError **error);
/* Applies "group.key=value" (as `nestboxctl set` takes it), validated like a load. */
bool nb_machine_document_set(NbMachineDocument *doc, const char *assignment, GError **error);
/* Writes data to path atomically; exposed for tests. */
bool nb_machine_write_atomic(const char *path, const char *data, gsize len, GError **error);

bool nb_machine_document_to_vm_options(const NbMachineDocument *doc, NbVmOptions *options, GError **error);
