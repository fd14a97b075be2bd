/* Serves the test pattern over VNC with Nestbox's server, for tests that
 * drive a real viewer (noVNC in Chromium, TigerVNC):
 *   vnc-test-server DISPLAY WIDTHxHEIGHT [PASSWORD-FILE|"" [WEBSOCKET-PORT]]
 * Prints "SERVING PORT" once it listens; runs until SIGTERM or SIGINT (or
 * five minutes). Input from clients is printed as KEY/POINTER lines. */
#include "test-pattern.h"
#include "vnc-server.h"

#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
on_key(void *ctx, unsigned keycode, bool pressed)
{
  printf("KEY %u %d\n", keycode, pressed);
}

static void
on_pointer(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel)
{
  printf("POINTER %u %u %u\n", x, y, buttons);
}

static gboolean
on_stop(gpointer loop)
{
  g_main_loop_quit(loop);
  return G_SOURCE_REMOVE;
}

int
main(int argc, char **argv)
{
  unsigned w, h;
  if (argc < 3 || sscanf(argv[2], "%ux%u", &w, &h) != 2 || w == 0 || h == 0 || w > 4096 || h > 4096) {
    fprintf(stderr, "usage: vnc-test-server DISPLAY WIDTHxHEIGHT [PASSWORD-FILE|\"\" [WEBSOCKET-PORT]]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_autoptr(GError) error = NULL;
  NbFramebuffer *fb = nb_framebuffer_new("vnc-test", 64u << 20, &error);
  if (fb == NULL) {
    fprintf(stderr, "%s\n", error->message);
    return 1;
  }
  NbFbMode m = { .enabled = true, .width = w, .height = h, .stride = w * 4, .bytes_per_pixel = 4,
                 .format = NB_FB_FORMAT_XRGB8888 };
  uint8_t *p = nb_framebuffer_data(fb);
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = 0; x < w; x++) {
      uint32_t v = nb_test_pattern_rgb(x, y);
      memcpy(p + (size_t)y * m.stride + x * 4, &v, 4);
    }
  nb_framebuffer_set_mode(fb, &m);
  NbVncSpec spec = { .listen = (char *)"127.0.0.1", .display = (unsigned)atoi(argv[1]),
                     .password_file = argc > 3 && argv[3][0] ? argv[3] : NULL,
                     .websocket = argc > 4 ? (unsigned)atoi(argv[4]) : 0 };
  NbVncServer *s = nb_vnc_server_new(&spec, &error);
  if (s == NULL) {
    fprintf(stderr, "%s\n", error->message);
    return 1;
  }
  static const NbVncInput input = { on_key, on_pointer, NULL };
  nb_vnc_server_attach(s, fb, &input, NULL);
  printf("SERVING %u\n", nb_vnc_server_port(s));
  GMainLoop *loop = g_main_loop_new(NULL, FALSE);
  g_unix_signal_add(SIGTERM, on_stop, loop);
  g_unix_signal_add(SIGINT, on_stop, loop);
  g_timeout_add_seconds(300, on_stop, loop);
  g_main_loop_run(loop);
  nb_vnc_server_free(s);
  nb_framebuffer_free(fb);
  g_main_loop_unref(loop);
  return 0;
}
