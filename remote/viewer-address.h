/* The viewer's server address: HOST[:DISPLAY] or HOST::PORT, as VNC viewers write it. */
#pragma once

#include <glib.h>
#include <stdbool.h>

#define NB_VIEWER_ERROR (nb_viewer_error_quark())
GQuark nb_viewer_error_quark(void);

typedef enum {
  NB_VIEWER_ERROR_ADDRESS,     /* the address on the command line is malformed */
  NB_VIEWER_ERROR_CONNECT,     /* no TCP connection to the server */
  NB_VIEWER_ERROR_AUTH,        /* the server refused the password */
  NB_VIEWER_ERROR_PASSWORD,    /* no password could be read */
  NB_VIEWER_ERROR_PROTOCOL,    /* the server broke off the RFB handshake */
  NB_VIEWER_ERROR_DISPLAY,     /* SDL could not open a window */
  NB_VIEWER_ERROR_NO_TERMINAL, /* a password is needed and there is no terminal */
  NB_VIEWER_ERROR_QUIT,        /* the user quit at the password prompt */
} NbViewerError;

/* VNC display N listens on TCP port 5900 + N. */
#define NB_VIEWER_BASE_PORT 5900

typedef struct {
  char *host;  /* a name or an address, without IPv6 brackets; "localhost" if none given */
  guint16 port;
} NbViewerAddress;

/* Parses "HOST", "HOST:DISPLAY", "HOST::PORT", "[IPV6]:DISPLAY", "[IPV6]::PORT",
 * ":DISPLAY" (localhost). Fails with NB_VIEWER_ERROR_ADDRESS. */
bool nb_viewer_address_parse(const char *text, NbViewerAddress *address, GError **error);
void nb_viewer_address_clear(NbViewerAddress *address);
/* "host:1" for display ports, "host::PORT" for others; IPv6 in brackets. */
char *nb_viewer_address_to_string(const NbViewerAddress *address);
