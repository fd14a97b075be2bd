/* nestbox-viewer: the thin-client VNC viewer. main() parses the command line only. */
#include "viewer-address.h"
#include "viewer-session.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>

enum {
  EXIT_QUIT = 0,         /* the user quit */
  EXIT_FAILED = 1,       /* unreachable, password refused, connection lost (--no-reconnect) */
  EXIT_USAGE = 2,
};

int
main(int argc, char **argv)
{
  setlocale(LC_ALL, "");
  /* libvncclient writes with write(): a server that hangs up while we send
   * would otherwise kill the viewer with SIGPIPE instead of letting it say
   * so and reconnect. */
  signal(SIGPIPE, SIG_IGN);
  gboolean window = FALSE, no_reconnect = FALSE, wait = FALSE, view_only = FALSE,
           verbose = FALSE;
  g_autofree char *password_file = NULL;
  const GOptionEntry entries[] = {
    { "window", 'w', 0, G_OPTION_ARG_NONE, &window,
      "Show the remote desktop in a window instead of fullscreen", NULL },
    { "password-file", 'p', 0, G_OPTION_ARG_FILENAME, &password_file,
      "Read the VNC password from the first line of FILE", "FILE" },
    { "no-reconnect", 0, 0, G_OPTION_ARG_NONE, &no_reconnect,
      "Exit when the connection is lost instead of reconnecting", NULL },
    { "wait", 0, 0, G_OPTION_ARG_NONE, &wait,
      "Keep trying until the server answers, also the first time", NULL },
    { "view-only", 0, 0, G_OPTION_ARG_NONE, &view_only,
      "Send no keyboard or pointer input", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
      "Report every connection step", NULL },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr(GOptionContext) context = g_option_context_new("HOST[:DISPLAY] | HOST::PORT");
  g_option_context_set_summary(context,
    "Shows the desktop of a Nestbox machine (or any VNC server), fullscreen by default.\n"
    "Ctrl+Alt+F toggles fullscreen, Ctrl+Alt+Q quits. When the server goes away the\n"
    "viewer reconnects by itself.");
  g_option_context_add_main_entries(context, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    fprintf(stderr, "nestbox-viewer: %s (see --help)\n", error->message);
    return EXIT_USAGE;
  }
  if (argc != 2) {
    fprintf(stderr, "nestbox-viewer: %s — usage: nestbox-viewer [OPTION…] "
            "HOST[:DISPLAY] | HOST::PORT (see --help)\n",
            argc < 2 ? "no server address given" : "more than one server address given");
    return EXIT_USAGE;
  }

  NbViewerOptions options = {
    .fullscreen = !window,
    .reconnect = !no_reconnect,
    .wait = wait,
    .view_only = view_only,
    .verbose = verbose,
    .password_file = password_file,
  };
  if (!nb_viewer_address_parse(argv[1], &options.address, &error)) {
    fprintf(stderr, "nestbox-viewer: %s\n", error->message);
    return EXIT_USAGE;
  }
  bool ok = nb_viewer_run(&options, &error);
  if (!ok)
    fprintf(stderr, "nestbox-viewer: %s\n", error->message);
  nb_viewer_address_clear(&options.address);
  return ok ? EXIT_QUIT : EXIT_FAILED;
}
