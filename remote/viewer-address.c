/* Parsing the server address the way VNC viewers (TigerVNC, vncviewer) accept it, so
 * that a thin client's configuration can be copied from any of them. */
#include "viewer-address.h"

#include <string.h>

G_DEFINE_QUARK(nb-viewer-error-quark, nb_viewer_error)

static const char address_hint[] =
  "expected HOST, HOST:DISPLAY or HOST::PORT (for example server:1 or server::5901)";

/* A decimal number with no sign, no spaces and no trailing text, at most max. */
static bool
parse_number(const char *text, guint64 max, guint64 *value)
{
  if (*text == '\0' || strlen(text) > 5)
    return false;
  guint64 v = 0;
  for (const char *p = text; *p; p++) {
    if (!g_ascii_isdigit(*p))
      return false;
    v = v * 10 + (guint64)(*p - '0');
  }
  if (v > max)
    return false;
  *value = v;
  return true;
}

bool
nb_viewer_address_parse(const char *text, NbViewerAddress *address, GError **error)
{
  memset(address, 0, sizeof(*address));
  g_autofree char *host = NULL;
  const char *rest;

  if (text == NULL || *text == '\0') {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_ADDRESS,
                "no server address given: %s", address_hint);
    return false;
  }
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL || close == text + 1) {
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_ADDRESS,
                  "bad server address “%s”: an IPv6 address needs its closing “]”; %s",
                  text, address_hint);
      return false;
    }
    host = g_strndup(text + 1, (gsize)(close - text - 1));
    rest = close + 1;
    if (*rest != '\0' && *rest != ':') {
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_ADDRESS,
                  "bad server address “%s”: unexpected “%s” after “]”; %s",
                  text, rest, address_hint);
      return false;
    }
  } else {
    const char *colon = strchr(text, ':');
    host = colon ? g_strndup(text, (gsize)(colon - text)) : g_strdup(text);
    rest = colon ? colon : text + strlen(text);
  }
  for (const char *p = host; *p; p++) {
    /* Host names and addresses: letters, digits, '-', '.', '_' and, in brackets, ':' */
    if (!(g_ascii_isalnum(*p) || *p == '-' || *p == '.' || *p == '_' ||
          (text[0] == '[' && (*p == ':' || *p == '%')))) {
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_ADDRESS,
                  "bad server address “%s”: “%c” cannot be part of a host name "
                  "(write IPv6 addresses in brackets: [::1]:1); %s", text, *p, address_hint);
      return false;
    }
  }

  guint64 port = NB_VIEWER_BASE_PORT;
  /* "fe80::1:1" is an IPv6 address without its brackets, not a host and a port. */
  const char *digits = g_str_has_prefix(rest, "::") ? rest + 2 : *rest ? rest + 1 : rest;
  const char *v6_hint = strchr(digits, ':') ? " (write IPv6 addresses in brackets: [::1]:1)" : "";
  if (g_str_has_prefix(rest, "::")) {
    if (!parse_number(rest + 2, 65535, &port) || port == 0) {
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_ADDRESS,
                  "bad server address “%s”: “%s” is not a TCP port from 1 to 65535%s; %s",
                  text, rest + 2, v6_hint, address_hint);
      return false;
    }
  } else if (*rest == ':') {
    guint64 display;
    if (!parse_number(rest + 1, 65535 - NB_VIEWER_BASE_PORT, &display)) {
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_ADDRESS,
                  "bad server address “%s”: “%s” is not a display number from 0 to %d "
                  "(display N is TCP port %d+N)%s; %s", text, rest + 1,
                  65535 - NB_VIEWER_BASE_PORT, NB_VIEWER_BASE_PORT, v6_hint, address_hint);
      return false;
    }
    port = NB_VIEWER_BASE_PORT + display;
  }

  address->host = *host ? g_steal_pointer(&host) : g_strdup("localhost");
  address->port = (guint16)port;
  return true;
}

void
nb_viewer_address_clear(NbViewerAddress *address)
{
  g_clear_pointer(&address->host, g_free);
  address->port = 0;
}

char *
nb_viewer_address_to_string(const NbViewerAddress *address)
{
  bool v6 = strchr(address->host, ':') != NULL;
  const char *open = v6 ? "[" : "", *close = v6 ? "]" : "";
  if (address->port >= NB_VIEWER_BASE_PORT && address->port - NB_VIEWER_BASE_PORT < 100)
    return g_strdup_printf("%s%s%s:%d", open, address->host, close,
                           address->port - NB_VIEWER_BASE_PORT);
  return g_strdup_printf("%s%s%s::%d", open, address->host, close, address->port);
}
