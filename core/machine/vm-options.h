/* nestbox-vm's command line: parsed and validated here, so every error a
 * user can make is checked by unit tests, and main() stays a dispatcher. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_VM_OPTIONS_ERROR (nb_vm_options_error_quark())
GQuark nb_vm_options_error_quark(void);

typedef enum {
  NB_VM_OPTIONS_ERROR_INVALID,
} NbVmOptionsError;

typedef enum {
  NB_SERIAL_STDIO,
  NB_SERIAL_FILE,
  NB_SERIAL_NONE,
} NbSerialMode;

#define NB_VM_MIN_CPUS 1
#define NB_VM_DEFAULT_MEMORY (512 * UINT64_C(1048576))

typedef struct {
  char *path;
  bool read_only;
  char *serial;          /* NULL: none */
  char *format;          /* NULL: detect */
} NbDiskSpec;

typedef struct {
  char *name;
  char *socket_path;
} NbConsolePortSpec;

/* Who may watch a machine's screen at once (--vnc ...,share=, [display] share=). */
typedef enum {
  NB_VNC_SHARE_ALLOW_EXCLUSIVE,  /* RFB's rule: a client asking for exclusive access
                                    disconnects the others (default) */
  NB_VNC_SHARE_FORCE_SHARED,     /* everybody shares; requests for exclusive access
                                    are taken as shared */
  NB_VNC_SHARE_SINGLE,           /* one client; others are refused while it is there */
  NB_VNC_SHARE_TAKEOVER,         /* one client; a new one disconnects the old one */
} NbVncShare;

/* The policy named NAME (allow-exclusive, force-shared, single, takeover). */
bool nb_vnc_share_parse(const char *name, NbVncShare *out);
const char *nb_vnc_share_name(NbVncShare share);
#define NB_VNC_SHARE_NAMES "allow-exclusive|force-shared|single|takeover"

/* --vnc [HOST]:DISPLAY[,password-file=PATH][,websocket=PORT][,keymap=LAYOUT][,share=POLICY] */
typedef struct {
  char *listen;          /* address to bind; default 127.0.0.1 */
  unsigned display;      /* 0..99: TCP port 5900 + display */
  char *password_file;   /* NULL: no password (only sensible on 127.0.0.1) */
  unsigned websocket;    /* extra port for WebSocket (noVNC) clients; 0: none */
  char *keymap;          /* the guest's keyboard layout (us, de, fr); NULL: us */
  NbVncShare share;      /* shared or exclusive sessions */
} NbVncSpec;

#define NB_VNC_MAX_DISPLAY 99
#define NB_VNC_BASE_PORT   5900
typedef enum {
  NB_FIRMWARE_DIRECT,    /* Linux direct boot (default) */
  NB_FIRMWARE_BIOS,      /* SeaBIOS from the seabios package */
} NbFirmwareKind;

#define NB_FIRMWARE_BIOS_DEFAULT_FILE "/usr/share/seabios/bios-256k.bin"
/* The bochs display's VGA BIOS, from the same package. */
#define NB_FIRMWARE_VGA_BIOS_DEFAULT_FILE "/usr/share/seabios/vgabios-bochs-display.bin"

typedef struct {
  char *kernel;
  char *initrd;
  char *append;
  unsigned cpus;
  uint64_t memory;
  NbSerialMode serial;
  char *serial_path;
  bool no_reboot;
  GArray *disks;         /* NbDiskSpec, from --disk PATH[,readonly][,serial=ID][,format=F] */
  char **nets;           /* --net, repeatable */
  GArray *console_ports; /* NbConsolePortSpec, from --console-port NAME=SOCKET */
  bool rng;
  bool console_hvc;      /* --console hvc: guest console on virtio-console */
  char *machine;         /* --machine NAME: everything else comes from its document */
  bool serial_given;     /* --serial was on the command line */
  NbVncSpec *vnc;        /* --vnc; NULL: no VNC server */
  bool graphics;         /* the machine has a display, keyboard and tablet */
  NbFirmwareKind firmware;  /* --firmware direct|bios */
  char *firmware_file;   /* --firmware-file PATH; NULL: the packaged SeaBIOS */
  char *firmware_log;    /* --firmware-log PATH: the firmware's debug log */
  char *vga_bios_file;   /* --vga-bios-file PATH; NULL: the packaged one */
  char *uuid;            /* the machine document's UUID, for the firmware; or NULL */
  char *name;            /* the machine document's name, for the firmware; or NULL */
  char **boot_order;     /* --boot cdrom,disk: NULL: CD-ROM, then disks */
  char *cdrom;           /* --cdrom PATH: an ISO on a virtio-scsi CD-ROM drive */
  bool display_sdl;      /* --display sdl: a local SDL window shows the screen */
} NbVmOptions;

/* Parses argv (argv[0] is the program). On error, sets a message that names
 * the option, what was wrong and what is expected. --help prints and exits. */
bool nb_vm_options_parse(NbVmOptions *options, int argc, char **argv, GError **error);
void nb_vm_options_clear(NbVmOptions *options);

/* One --disk value; the error names the option and the part that is wrong. */
bool nb_disk_spec_parse(const char *text, NbDiskSpec *out, GError **error);
void nb_disk_spec_clear(NbDiskSpec *spec);

/* One --vnc value (also the machine document's [display] listen key). */
NbVncSpec *nb_vnc_spec_parse(const char *text, GError **error);
void nb_vnc_spec_free(NbVncSpec *spec);
