/* Shows the test pattern in Nestbox's SDL window, for test-sdl-window.sh:
 *   sdl-test-window WIDTHxHEIGHT
 * Prints "SHOWING" once the window is up; input from the window is printed
 * as KEY CODE PRESSED, POINTER X Y BUTTONS WHEEL and CLOSE lines. SIGUSR1
 * switches the framebuffer to half the size (the pattern redrawn), as a
 * guest's mode change does. Runs until SIGTERM or SIGINT (or five minutes). */
#include "sdl-window.h"
#include "test-pattern.h"

#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static NbFramebuffer *fb;

static void
on_key(void *ctx, unsigned keycode, bool pressed)
{
  printf("KEY %u %d\n", keycode, pressed);
}

static void
on_pointer(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel)
{
  printf("POINTER %u %u %u %d\n", x, y, buttons, wheel);
}

static void
on_close(void *ctx)
{
  printf("CLOSE\n");
  nb_sdl_window_set_state(ctx, "closed");
}

static void
draw(unsigned w, unsigned h)
{
  /* Off to one side of the buffer, with a stride wider than a line, so the
   * window must honour both. */
  NbFbMode m = { .enabled = true, .width = w, .height = h, .stride = w * 4 + 64,
                 .bytes_per_pixel = 4, .format = NB_FB_FORMAT_XRGB8888, .offset = 8192 };
  uint8_t *p = nb_framebuffer_data(fb) + m.offset;
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = 0; x < w; x++) {
      uint32_t v = nb_test_pattern_rgb(x, y);
      memcpy(p + (size_t)y * m.stride + x * 4, &v, 4);
    }
  nb_framebuffer_set_mode(fb, &m);
  nb_framebuffer_invalidate(fb);
}

static unsigned width, height;

static gboolean
on_half(gpointer data)
{
  draw(width / 2, height / 2);
  printf("MODE %ux%u\n", width / 2, height / 2);
  return G_SOURCE_CONTINUE;
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
  if (argc < 2 || sscanf(argv[1], "%ux%u", &width, &height) != 2 || width < 2 || height < 2 ||
      width > 4096 || height > 4096) {
    fprintf(stderr, "usage: sdl-test-window WIDTHxHEIGHT\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_autoptr(GError) error = NULL;
  fb = nb_framebuffer_new("sdl-test", 64u << 20, &error);
  if (fb == NULL) {
    fprintf(stderr, "%s\n", error->message);
    return 1;
  }
  draw(width, height);
  NbSdlWindow *window = nb_sdl_window_new("sdl-test", &error);
  if (window == NULL) {
    fprintf(stderr, "%s\n", error->message);
    return 1;
  }
  NbSdlInput input = { on_key, on_pointer, on_close };
  nb_sdl_window_attach(window, fb, &input, window);
  nb_sdl_window_set_state(window, "running");
  printf("SHOWING\n");
  GMainLoop *loop = g_main_loop_new(NULL, FALSE);
  g_unix_signal_add(SIGTERM, on_stop, loop);
  g_unix_signal_add(SIGINT, on_stop, loop);
  g_unix_signal_add(SIGUSR1, on_half, NULL);
  g_timeout_add_seconds(300, on_stop, loop);
  g_main_loop_run(loop);
  g_main_loop_unref(loop);
  nb_sdl_window_free(window);
  nb_framebuffer_free(fb);
  return 0;
}
