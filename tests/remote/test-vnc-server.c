/* The VNC server against a real client (libvncclient, in a separate
 * process): exact pixels, password refusal, resize on a mode change, keys
 * through the German and French keymaps, pointer scaling, and twenty
 * clients at once. No guest: the test draws into the framebuffer itself. */
#include "test-pattern.h"
#include "vnc-server.h"

#include <gio/gio.h>
#include <linux/input-event-codes.h>
#include <string.h>
#include <unistd.h>

/* libvncserver 0.9.14 leaks a WebSocket client's context when the client
 * goes (its own bug; freeing it from the client-gone hook double-frees in
 * rfbCloseClient). Only that allocation is excused. */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
  return "leak:webSocketsCheck\n";
}

typedef struct {
  GArray *keys;          /* int: +code pressed, -code released */
  unsigned x, y, buttons;
  unsigned pointer_events;
  int leds;              /* what the guest's LEDs are (atomic) */
} Input;

static void
input_key(void *ctx, unsigned keycode, bool pressed)
{
  Input *in = ctx;
  int v = pressed ? (int)keycode : -(int)keycode;
  g_array_append_val(in->keys, v);
}

static void
input_pointer(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel)
{
  Input *in = ctx;
  in->x = x;
  in->y = y;
  in->buttons = buttons;
  in->pointer_events++;
}

static unsigned
input_leds(void *ctx)
{
  Input *in = ctx;
  return (unsigned)g_atomic_int_get(&in->leds);
}

static const NbVncInput input_ops = { input_key, input_pointer, input_leds };

typedef struct Fixture {
  NbFramebuffer *fb;
  NbVncServer *server;
  Input input;
  char *password_file;
  GMainLoop *loop;
  int status;
  GString *output;
  bool resize_on_match;
  bool leds_on_report;   /* the guest changes its LEDs once the client saw them */
  void (*on_line)(struct Fixture *f, const char *line);   /* each line the client says */
  void *line_data;
  int pending;           /* the client's exit and the end of its output */
} Fixture;

static void
draw(NbFramebuffer *fb, unsigned w, unsigned h)
{
  NbFbMode m = { .enabled = true, .width = w, .height = h, .stride = w * 4 + 64,
                 .bytes_per_pixel = 4, .format = NB_FB_FORMAT_XRGB8888, .offset = 4096 };
  uint8_t *p = nb_framebuffer_data(fb);
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = 0; x < w; x++) {
      uint32_t v = nb_test_pattern_rgb(x, y);
      memcpy(p + m.offset + (size_t)y * m.stride + x * 4, &v, 4);
    }
  nb_framebuffer_set_mode(fb, &m);
}

static unsigned websocket_port;   /* 0: none */
static NbVncShare share_policy;

static NbVncServer *
start_server(Fixture *f, const char *keymap, bool with_password)
{
  for (unsigned display = 60; display < 100; display++) {
    NbVncSpec spec = { .listen = (char *)"127.0.0.1", .display = display,
                       .password_file = with_password ? f->password_file : NULL,
                       .keymap = (char *)keymap,
                       .websocket = websocket_port ? websocket_port + display : 0,
                       .share = share_policy };
    g_autoptr(GError) error = NULL;
    NbVncServer *s = nb_vnc_server_new(&spec, &error);
    if (s)
      return s;
    g_assert_error(error, NB_VNC_ERROR, NB_VNC_ERROR_CONFIG);
  }
  g_error("no free VNC display between 60 and 99");
}

static void
setup(Fixture *f, const char *keymap, bool with_password)
{
  memset(f, 0, sizeof *f);
  g_autoptr(GError) error = NULL;
  f->fb = nb_framebuffer_new("test-fb", 8u << 20, &error);
  g_assert_no_error(error);
  draw(f->fb, 640, 480);
  f->input.keys = g_array_new(FALSE, FALSE, sizeof(int));
  g_autofree char *dir = g_dir_make_tmp("nb-vnc-XXXXXX", &error);
  g_assert_no_error(error);
  f->password_file = g_build_filename(dir, "password", NULL);
  g_assert_true(g_file_set_contents(f->password_file, "s3cret\n", -1, NULL));
  f->server = start_server(f, keymap, with_password);
  nb_vnc_server_attach(f->server, f->fb, &input_ops, &f->input);
  f->loop = g_main_loop_new(NULL, FALSE);
  f->output = g_string_new(NULL);
}

static void
teardown(Fixture *f)
{
  nb_vnc_server_free(f->server);
  nb_framebuffer_free(f->fb);
  g_array_free(f->input.keys, TRUE);
  g_autofree char *dir = g_path_get_dirname(f->password_file);
  unlink(f->password_file);
  rmdir(dir);
  g_free(f->password_file);
  g_main_loop_unref(f->loop);
  g_string_free(f->output, TRUE);
}

static void read_line(Fixture *f, GDataInputStream *in);

static void
on_line(GObject *source, GAsyncResult *res, gpointer data)
{
  Fixture *f = data;
  g_autofree char *line = g_data_input_stream_read_line_finish(G_DATA_INPUT_STREAM(source), res,
                                                               NULL, NULL);
  if (line == NULL) {
    g_object_unref(source);
    if (--f->pending == 0)
      g_main_loop_quit(f->loop);
    return;
  }
  g_string_append_printf(f->output, "%s\n", line);
  /* The guest switches mode once the client has seen the first picture. */
  if (f->resize_on_match && g_str_equal(line, "MATCH 640x480"))
    draw(f->fb, 800, 600);
  /* Caps Lock goes out, Num and Scroll Lock on. */
  if (f->leds_on_report && g_str_equal(line, "LEDS 4"))
    g_atomic_int_set(&f->input.leds, 3);
  if (f->on_line)
    f->on_line(f, line);
  read_line(f, G_DATA_INPUT_STREAM(source));
}

static void
read_line(Fixture *f, GDataInputStream *in)
{
  g_data_input_stream_read_line_async(in, G_PRIORITY_DEFAULT, NULL, on_line, f);
}

static void
on_client_exit(GObject *source, GAsyncResult *res, gpointer data)
{
  Fixture *f = data;
  g_subprocess_wait_finish(G_SUBPROCESS(source), res, NULL);
  f->status = g_subprocess_get_if_exited(G_SUBPROCESS(source))
                  ? g_subprocess_get_exit_status(G_SUBPROCESS(source)) : -1;
  if (g_subprocess_get_if_signaled(G_SUBPROCESS(source)))
    g_test_message("the client was killed by signal %d",
                   g_subprocess_get_term_sig(G_SUBPROCESS(source)));
  if (--f->pending == 0)
    g_main_loop_quit(f->loop);
}

/* Runs the client with these arguments while the server's loop runs;
 * returns its exit status, its output in f->output. */
static int
run_client(Fixture *f, const char *first, ...)
{
  g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
  const char *client = g_getenv("NB_VNC_TEST_CLIENT");
  g_assert_nonnull(client);
  g_ptr_array_add(args, g_strdup(client));
  g_ptr_array_add(args, g_strdup_printf("127.0.0.1:%u", nb_vnc_server_port(f->server)));
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a; a = va_arg(ap, const char *))
    g_ptr_array_add(args, g_strdup(a));
  va_end(ap);
  g_ptr_array_add(args, NULL);
  g_autoptr(GError) error = NULL;
  g_string_truncate(f->output, 0);
  GSubprocess *p = g_subprocess_newv((const char *const *)args->pdata,
                                     G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error(error);
  f->pending = 2;
  read_line(f, g_data_input_stream_new(g_subprocess_get_stdout_pipe(p)));
  g_subprocess_wait_async(p, NULL, on_client_exit, f);
  g_main_loop_run(f->loop);
  g_object_unref(p);
  g_test_message("client said:\n%s", f->output->str);
  return f->status;
}

static void
test_pixels_and_password(void)
{
  Fixture f;
  setup(&f, NULL, true);
  g_assert_cmpint(run_client(&f, "--password-file", f.password_file, "--pattern", "640x480",
                             "--timeout", "20", NULL), ==, 0);
  g_assert_nonnull(strstr(f.output->str, "MATCH 640x480"));

  /* A wrong password, and none at all, are refused. */
  g_autofree char *wrong = g_strconcat(f.password_file, ".wrong", NULL);
  g_assert_true(g_file_set_contents(wrong, "guess\n", -1, NULL));
  g_assert_cmpint(run_client(&f, "--password-file", wrong, "--pattern", "640x480",
                             "--timeout", "5", NULL), ==, 3);
  g_assert_nonnull(strstr(f.output->str, "AUTH-FAILED"));
  g_assert_cmpint(run_client(&f, "--pattern", "640x480", "--timeout", "5", NULL), ==, 3);
  unlink(wrong);

  /* The guest draws: the client sees the change. */
  uint32_t v = 0x123456;
  NbFbMode m;
  nb_framebuffer_get_mode(f.fb, &m);
  memcpy(nb_framebuffer_data(f.fb) + m.offset + 100 * m.stride + 200 * 4, &v, 4);
  g_assert_cmpint(run_client(&f, "--password-file", f.password_file, "--pattern", "640x480",
                             "--timeout", "3", NULL), ==, 1);
  g_assert_nonnull(strstr(f.output->str, "MISMATCH at 200,100: got 123456"));
  teardown(&f);
}

static bool
count_dirty_log(void *ctx, unsigned long *bitmap, size_t n_pages)
{
  (*(unsigned *)ctx)++;
  return false;   /* no log: every page counts as written */
}

static gboolean
quit_loop(gpointer data)
{
  g_main_loop_quit(data);
  return G_SOURCE_REMOVE;
}

/* While no client is connected the screen is not looked at (no dirty log
 * read, no comparison); with one it is, and it stops again when the client
 * goes. */
static void
test_unwatched(void)
{
  Fixture f;
  setup(&f, NULL, false);
  unsigned logs = 0;
  nb_framebuffer_set_dirty_log(f.fb, count_dirty_log, &logs);
  g_timeout_add(20 * NB_VNC_REFRESH_MS, quit_loop, f.loop);
  g_main_loop_run(f.loop);
  g_assert_cmpuint(logs, ==, 0);
  g_assert_cmpint(run_client(&f, "--pattern", "640x480", "--timeout", "20", NULL), ==, 0);
  g_assert_cmpuint(logs, >, 0);
  for (int i = 0; i < 500 && nb_vnc_server_clients(f.server) > 0; i++)
    g_usleep(10000);
  g_assert_cmpuint(nb_vnc_server_clients(f.server), ==, 0);
  unsigned watched = logs;
  g_timeout_add(20 * NB_VNC_REFRESH_MS, quit_loop, f.loop);
  g_main_loop_run(f.loop);
  g_assert_cmpuint(logs, <=, watched + 1);
  teardown(&f);
}

/* While the screen changes, the server looks at it every
 * NB_VNC_FAST_REFRESH_MS; once it is still, every NB_VNC_REFRESH_MS again.
 * The guest changes a pixel every 20 ms for PHASE_MS, then stops; the
 * dirty log reads (one per refresh) are counted in each phase. */
#define PHASE_MS 600

typedef struct {
  Fixture *f;
  unsigned logs;
  int phase;             /* 0 the first picture, 1 changing, 2 the hold runs out, 3 still */
  gint64 phase_end;
  unsigned at_start;     /* logs when the phase began */
  unsigned changing, still;
  char *stop_file;
  uint32_t v;
} FastScene;

static gboolean
fast_step(gpointer data)
{
  FastScene *sc = data;
  gint64 now = g_get_monotonic_time();
  if (sc->phase == 0 && sc->phase_end == 0) {
    if (nb_vnc_server_clients(sc->f->server) == 0)
      return G_SOURCE_CONTINUE;
    sc->phase_end = now + 500 * G_TIME_SPAN_MILLISECOND;
  }
  if (now >= sc->phase_end) {
    static const unsigned ms[] = { PHASE_MS, NB_VNC_FAST_HOLD_MS + 100, PHASE_MS };
    if (sc->phase == 1)
      sc->changing = sc->logs - sc->at_start;
    if (sc->phase == 3) {
      sc->still = sc->logs - sc->at_start;
      g_assert_true(g_file_set_contents(sc->stop_file, "", 0, NULL));
      return G_SOURCE_REMOVE;
    }
    sc->at_start = sc->logs;
    sc->phase_end = now + ms[sc->phase] * G_TIME_SPAN_MILLISECOND;
    sc->phase++;
  }
  if (sc->phase == 1) {
    sc->v ^= 0xffffff;
    memcpy(nb_framebuffer_data(sc->f->fb) + 4096, &sc->v, 4);
  }
  return G_SOURCE_CONTINUE;
}

static void
test_fast_refresh(void)
{
  Fixture f;
  setup(&f, NULL, false);
  FastScene sc = { .f = &f };
  nb_framebuffer_set_dirty_log(f.fb, count_dirty_log, &sc.logs);
  g_autofree char *dir = g_path_get_dirname(f.password_file);
  sc.stop_file = g_build_filename(dir, "stop", NULL);
  g_timeout_add(20, fast_step, &sc);
  g_assert_cmpint(run_client(&f, "--watch", sc.stop_file, "--timeout", "30", NULL), ==, 0);
  g_test_message("refreshes in %u ms: %u while changing, %u while still", PHASE_MS, sc.changing,
                 sc.still);
  /* At 30 ms there would be at most PHASE_MS / 30 + 1 = 21; at 10 ms about 60,
   * and 43 to 57 with two busy loops on this 2-core machine (late timers):
   * more than 30 tells the two apart with room. */
  g_assert_cmpuint(sc.changing, >, 3 * (PHASE_MS / NB_VNC_REFRESH_MS) / 2);
  g_assert_cmpuint(sc.still, <=, PHASE_MS / NB_VNC_REFRESH_MS + 2);
  unlink(sc.stop_file);
  g_free(sc.stop_file);
  teardown(&f);
}

static void
test_resize(void)
{
  Fixture f;
  setup(&f, NULL, false);
  f.resize_on_match = true;
  g_assert_cmpint(run_client(&f, "--pattern", "640x480", "--pattern", "800x600", "--timeout", "20",
                             NULL), ==, 0);
  g_assert_nonnull(strstr(f.output->str, "MATCH 800x600"));
  teardown(&f);
}

static void
expect_keys(Fixture *f, const int *want, unsigned n)
{
  GString *got = g_string_new(NULL);
  for (guint i = 0; i < f->input.keys->len; i++)
    g_string_append_printf(got, "%d ", g_array_index(f->input.keys, int, i));
  GString *exp = g_string_new(NULL);
  for (unsigned i = 0; i < n; i++)
    g_string_append_printf(exp, "%d ", want[i]);
  g_assert_cmpstr(got->str, ==, exp->str);
  g_string_free(got, TRUE);
  g_string_free(exp, TRUE);
  g_array_set_size(f->input.keys, 0);
}

static void
test_keys_us(void)
{
  Fixture f;
  setup(&f, "us", false);
  /* "a", then "A" with the user's Shift, then "!" without it (Shift is added),
   * then Return and F1. */
  g_assert_cmpint(run_client(&f, "--keys", "0x61,+0xffe1,0x41,-0xffe1,0x21,0xff0d,0xffbe", NULL), ==, 0);
  const int want[] = { KEY_A, -KEY_A, KEY_LEFTSHIFT, KEY_A, -KEY_A, -KEY_LEFTSHIFT,
                       KEY_LEFTSHIFT, KEY_1, -KEY_LEFTSHIFT, -KEY_1,
                       KEY_ENTER, -KEY_ENTER, KEY_F1, -KEY_F1 };
  expect_keys(&f, want, G_N_ELEMENTS(want));
  teardown(&f);
}

static void
test_keys_de(void)
{
  Fixture f;
  setup(&f, "de", false);
  /* ä, ß, z (on the Y key), @ (AltGr+Q) typed on a US client holding
   * nothing, Ö with Shift held, and ^ (the dead key, then Space). */
  g_assert_cmpint(run_client(&f, "--keys", "0xe4,0xdf,0x7a,0x40,+0xffe1,0xd6,-0xffe1,0x5e", NULL), ==, 0);
  const int want[] = { KEY_APOSTROPHE, -KEY_APOSTROPHE, KEY_MINUS, -KEY_MINUS, KEY_Y, -KEY_Y,
                       KEY_RIGHTALT, KEY_Q, -KEY_RIGHTALT, -KEY_Q,
                       KEY_LEFTSHIFT, KEY_SEMICOLON, -KEY_SEMICOLON, -KEY_LEFTSHIFT,
                       KEY_GRAVE, -KEY_GRAVE, KEY_SPACE, -KEY_SPACE };
  expect_keys(&f, want, G_N_ELEMENTS(want));
  teardown(&f);
}

static void
test_keys_fr(void)
{
  Fixture f;
  setup(&f, "fr", false);
  /* é, a (on the Q key), 1 (Shift+&), € (AltGr+E). */
  g_assert_cmpint(run_client(&f, "--keys", "0xe9,0x61,0x31,0x20ac", NULL), ==, 0);
  const int want[] = { KEY_2, -KEY_2, KEY_Q, -KEY_Q, KEY_LEFTSHIFT, KEY_1, -KEY_LEFTSHIFT, -KEY_1,
                       KEY_RIGHTALT, KEY_E, -KEY_RIGHTALT, -KEY_E };
  expect_keys(&f, want, G_N_ELEMENTS(want));
  teardown(&f);
}

/* QEMU's extended key events: the key the client names goes to the guest
 * as it is, whatever the keymap (a German one here); a key number that is
 * no PC key falls back to the keysym and the keymap. */
static void
test_keys_scancodes(void)
{
  Fixture f;
  setup(&f, "de", false);
  /* The US Z key (qnum 0x2c) typing "y" on a German client; Up (E0 48),
   * Right Ctrl (E0 1D), Pause (E0 46), Print Screen (E0 37), F12, the
   * keypad's Enter; qnum 0 and an unknown 0x7f with "z", which on a German
   * guest is the Y key. */
  g_assert_cmpint(run_client(&f, "--pattern", "640x480", "--scancode-keys",
                             "0x2c/0x79,0xc8/0xff52,0x9d/0xffe4,0xc6/0xff13,0xb7/0xff61,"
                             "0x58/0xffc9,0x9c/0xff8d,0x0/0x7a,0x7f/0x7a", NULL), ==, 0);
  g_assert_nonnull(strstr(f.output->str, "EXT-KEYS-CONFIRMED"));
  const int want[] = { KEY_Z, -KEY_Z, KEY_UP, -KEY_UP, KEY_RIGHTCTRL, -KEY_RIGHTCTRL,
                       KEY_PAUSE, -KEY_PAUSE, KEY_SYSRQ, -KEY_SYSRQ, KEY_F12, -KEY_F12,
                       KEY_KPENTER, -KEY_KPENTER, KEY_Y, -KEY_Y, KEY_Y, -KEY_Y };
  expect_keys(&f, want, G_N_ELEMENTS(want));
  teardown(&f);
}

/* QEMU's LED state: the client is told the guest's LEDs when it asks, and
 * again when they change. */
static void
test_leds(void)
{
  Fixture f;
  setup(&f, NULL, false);
  g_atomic_int_set(&f.input.leds, 4);   /* Caps Lock */
  f.leds_on_report = true;
  g_assert_cmpint(run_client(&f, "--expect-leds", "4,3", "--timeout", "10", NULL), ==, 0);
  g_assert_nonnull(strstr(f.output->str, "LEDS 4\nLEDS 3\n"));
  teardown(&f);
}

static void
test_pointer(void)
{
  Fixture f;
  setup(&f, NULL, false);
  g_assert_cmpint(run_client(&f, "--pattern", "640x480", "--pointer", "320,479", NULL), ==, 0);
  g_assert_cmpuint(f.input.pointer_events, >=, 1);
  g_assert_cmpuint(f.input.x, ==, 320u * 32767 / 639);
  g_assert_cmpuint(f.input.y, ==, 32767);
  teardown(&f);
}

static void
test_many_clients(void)
{
  Fixture f;
  setup(&f, NULL, true);
  g_assert_cmpint(run_client(&f, "--password-file", f.password_file, "--clients", "20",
                             "--pattern", "640x480", "--timeout", "60", NULL), ==, 0);
  g_assert_nonnull(strstr(f.output->str, "CONNECTED 20"));
  /* Past the limit, clients are refused; those within it are served. */
  g_assert_cmpint(run_client(&f, "--password-file", f.password_file, "--clients", "33", NULL), ==, 3);
  g_assert_nonnull(strstr(f.output->str, "AUTH-FAILED client 32"));
  teardown(&f);
}

/* What a browser (noVNC) sends: an HTTP upgrade; the RFB greeting must
 * come back inside a WebSocket frame. */
static bool
websocket_greets(unsigned port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_socket_client_set_timeout(client, 10);
  g_autoptr(GSocketConnection) conn = g_socket_client_connect_to_host(client, "127.0.0.1", (guint16)port,
                                                                      NULL, &error);
  g_assert_no_error(error);
  const char *req = "GET /websockify HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Protocol: binary\r\n\r\n";
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  g_assert_true(g_output_stream_write_all(out, req, strlen(req), NULL, NULL, &error));
  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
  GString *got = g_string_new(NULL);
  char buf[4096];
  while (!strstr(got->str, "RFB 003.008")) {
    gssize n = g_input_stream_read(in, buf, sizeof buf - 1, NULL, NULL);
    if (n <= 0)
      break;
    buf[n] = '\0';
    /* The frame header has no NULs for a short text; keep it as text. */
    for (gssize i = 0; i < n; i++)
      if (buf[i] == '\0')
        buf[i] = '.';
    g_string_append_len(got, buf, n);
  }
  bool ok = g_str_has_prefix(got->str, "HTTP/1.1 101") && strstr(got->str, "RFB 003.008");
  if (!ok)
    g_test_message("WebSocket answer: %s", got->str);
  g_string_free(got, TRUE);
  return ok;
}

static void
test_websocket(void)
{
  Fixture f;
  websocket_port = 5000;   /* 5000 + display */
  setup(&f, NULL, false);
  websocket_port = 0;
  g_assert_true(websocket_greets(nb_vnc_server_port(f.server)));
  g_assert_true(websocket_greets(nb_vnc_server_port(f.server) - 5900 + 5000));
  teardown(&f);
}

/* A raw RFB 3.8 session without a password, up to the normal phase. */
static GSocketConnection *
raw_session(unsigned port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_socket_client_set_timeout(client, 10);
  GSocketConnection *conn = g_socket_client_connect_to_host(client, "127.0.0.1", (guint16)port, NULL,
                                                            &error);
  g_assert_no_error(error);
  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  char buf[256];
  gsize n;
  g_assert_true(g_input_stream_read_all(in, buf, 12, &n, NULL, &error) && n == 12);
  g_assert_true(g_output_stream_write_all(out, "RFB 003.008\n", 12, NULL, NULL, &error));
  g_assert_true(g_input_stream_read_all(in, buf, 1, &n, NULL, &error) && n == 1);
  unsigned types = (unsigned char)buf[0];
  g_assert_cmpuint(types, >=, 1);
  g_assert_true(g_input_stream_read_all(in, buf, types, &n, NULL, &error));
  g_assert_true(memchr(buf, 1, types) != NULL);   /* None */
  g_assert_true(g_output_stream_write_all(out, "\x01", 1, NULL, NULL, &error));
  g_assert_true(g_input_stream_read_all(in, buf, 4, &n, NULL, &error) && n == 4);
  g_assert_cmpmem(buf, 4, "\0\0\0\0", 4);
  g_assert_true(g_output_stream_write_all(out, "\x01", 1, NULL, NULL, &error));   /* shared */
  g_assert_true(g_input_stream_read_all(in, buf, 24, &n, NULL, &error) && n == 24);
  guint32 name_len = (guint32)(unsigned char)buf[20] << 24 | (guint32)(unsigned char)buf[21] << 16 |
                     (guint32)(unsigned char)buf[22] << 8 | (unsigned char)buf[23];
  g_assert_cmpuint(name_len, <, sizeof buf);
  g_assert_true(g_input_stream_read_all(in, buf, name_len, &n, NULL, &error));
  return conn;
}

/* Whether the server hangs up within a few seconds (reads and drops any
 * updates it still sends). */
static bool
hangs_up(GSocketConnection *conn)
{
  GSocket *sock = g_socket_connection_get_socket(conn);
  g_socket_set_timeout(sock, 5);
  char buf[65536];
  for (;;) {
    g_autoptr(GError) error = NULL;
    gssize n = g_socket_receive(sock, buf, sizeof buf, NULL, &error);
    if (n == 0 || (n < 0 && !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)))
      return true;
    if (n < 0)
      return false;
  }
}

/* Hostile clients: oversized cut text, an unknown message type, a huge
 * SetEncodings list. Each is dealt with; a proper client is served after. */
static void
test_bad_clients(void)
{
  Fixture f;
  setup(&f, NULL, false);
  unsigned port = nb_vnc_server_port(f.server);
  /* ClientCutText claiming 2 GiB. */
  GSocketConnection *conn = raw_session(port);
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  g_assert_true(g_output_stream_write_all(out, "\x06\0\0\0\x7f\xff\xff\xff", 8, NULL, NULL, NULL));
  g_assert_true(hangs_up(conn));
  g_object_unref(conn);
  /* A message type that does not exist. */
  conn = raw_session(port);
  out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  g_assert_true(g_output_stream_write_all(out, "\xee\xee\xee\xee", 4, NULL, NULL, NULL));
  g_assert_true(hangs_up(conn));
  g_object_unref(conn);
  /* A QEMU client message of a kind that was not offered (audio). */
  conn = raw_session(port);
  out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  g_assert_true(g_output_stream_write_all(out, "\xff\x01\0\0", 4, NULL, NULL, NULL));
  g_assert_true(hangs_up(conn));
  g_object_unref(conn);
  /* An extended key event with a key number and a keysym that mean
   * nothing, then one cut short by the client going away. */
  conn = raw_session(port);
  out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  g_assert_true(g_output_stream_write_all(out, "\xff\0\0\x01\xff\xff\xff\xff\xff\xff\xff\xff"
                                          "\xff\0\0", 15, NULL, NULL, NULL));
  g_object_unref(conn);
  /* SetEncodings announcing 65535 encodings and sending a few: the server
   * waits for the rest, then the client goes away. */
  conn = raw_session(port);
  out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
  g_assert_true(g_output_stream_write_all(out, "\x02\0\xff\xff\0\0\0\0\0\0\0\x05", 12, NULL, NULL, NULL));
  g_object_unref(conn);
  /* The server and a proper client are fine; no key reached the guest. */
  g_assert_cmpint(run_client(&f, "--pattern", "640x480", "--timeout", "20", NULL), ==, 0);
  g_assert_cmpuint(f.input.keys->len, ==, 0);
  /* A server that stops with a client connected hangs up on it. */
  conn = raw_session(port);
  teardown(&f);
  g_assert_true(hangs_up(conn));
  g_object_unref(conn);
}

/* Real clients one after another, asking for shared or exclusive sessions:
 * who stays connected under each policy. */
static void
test_sharing(void)
{
  /* Each line: after the Nth client connected, who is still connected. The
   * second client is an intruder with a wrong password: it is refused and
   * changes nothing, whatever the policy. */
  const struct {
    NbVncShare share;
    const char *want;
  } cases[] = {
    /* RFB's rule: the exclusive client is left alone; later ones may join. */
    { NB_VNC_SHARE_ALLOW_EXCLUSIVE, "AFTER 1 shared: up\nREFUSED 2\nAFTER 2 intruder: up gone\n"
      "AFTER 3 shared: up gone up\nAFTER 4 exclusive: gone gone gone up\n"
      "AFTER 5 shared: gone gone gone up up\n" },
    /* Nobody pushes anybody out. */
    { NB_VNC_SHARE_FORCE_SHARED, "AFTER 1 shared: up\nREFUSED 2\nAFTER 2 intruder: up gone\n"
      "AFTER 3 shared: up gone up\nAFTER 4 exclusive: up gone up up\n"
      "AFTER 5 shared: up gone up up up\n" },
    /* The first one keeps the screen; the others are turned away. */
    { NB_VNC_SHARE_SINGLE, "AFTER 1 shared: up\nREFUSED 2\nAFTER 2 intruder: up gone\n"
      "AFTER 3 shared: up gone gone\nAFTER 4 exclusive: up gone gone gone\n"
      "AFTER 5 shared: up gone gone gone gone\n" },
    /* The newest one has it (but only with the password). */
    { NB_VNC_SHARE_TAKEOVER, "AFTER 1 shared: up\nREFUSED 2\nAFTER 2 intruder: up gone\n"
      "AFTER 3 shared: gone gone up\nAFTER 4 exclusive: gone gone gone up\n"
      "AFTER 5 shared: gone gone gone gone up\n" },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
    Fixture f;
    share_policy = cases[i].share;
    setup(&f, NULL, true);
    share_policy = NB_VNC_SHARE_ALLOW_EXCLUSIVE;
    g_test_message("share=%s", nb_vnc_share_name(cases[i].share));
    g_assert_cmpint(run_client(&f, "--password-file", f.password_file, "--sequence",
                               "shared,intruder,shared,exclusive,shared", NULL), ==, 0);
    g_assert_cmpstr(f.output->str, ==, cases[i].want);
    teardown(&f);
  }
}

/* Moved content: a console scrolling, a window dragged. Two clients watch
 * the same frames, one taking CopyRect and one not: both end with the
 * server's picture exactly, and the CopyRect one received far fewer bytes. */

#define SCENE_W 640
#define SCENE_H 480
#define SCENE_FRAMES 12

typedef struct {
  bool window;            /* else the console scrolls */
  unsigned frame;
  GRand *rand;
  uint32_t *win;          /* the window's pixels */
  unsigned win_w, win_h;
  int x, y;               /* the window's place */
  char *stop_file;        /* made when the client is to stop watching */
} Scene;

/* Line y of the framebuffer in draw()'s mode. */
static uint32_t *
scene_line(Fixture *f, unsigned y)
{
  return (uint32_t *)(nb_framebuffer_data(f->fb) + 4096 + (size_t)y * (SCENE_W * 4 + 64));
}

/* A text row of random glyphs (8x16 cells, grey or green on black). */
static void
console_row(Fixture *f, Scene *sc, unsigned row)
{
  for (unsigned k = 0; k < 16; k++) {
    uint32_t *line = scene_line(f, row * 16 + k);
    for (unsigned c = 0; c < SCENE_W / 8; c++) {
      guint32 bits = k > 2 && k < 14 && c < 70 ? g_rand_int(sc->rand) : 0;
      uint32_t fg = c % 9 < 4 ? 0xaaaaaa : 0x55ff55;
      for (unsigned b = 0; b < 8; b++)
        line[c * 8 + b] = bits >> b & 1 ? fg : 0;
    }
  }
}

/* The desktop (a vertical gradient) with the window at its place. */
static void
desktop(Fixture *f, Scene *sc)
{
  for (unsigned y = 0; y < SCENE_H; y++) {
    uint32_t *line = scene_line(f, y);
    for (unsigned x = 0; x < SCENE_W; x++)
      line[x] = 0x102040 + y * 150 / SCENE_H;
    if (y >= (unsigned)sc->y && y < sc->y + sc->win_h)
      memcpy(line + sc->x, sc->win + (size_t)(y - sc->y) * sc->win_w, sc->win_w * 4);
  }
}

/* A window: a frame, a blue title bar, a white page of text with margins. */
static void
make_window(Scene *sc)
{
  sc->win_w = 400;
  sc->win_h = 280;
  sc->win = g_new(uint32_t, sc->win_w * sc->win_h);
  for (unsigned y = 0; y < sc->win_h; y++)
    for (unsigned x = 0; x < sc->win_w; x++)
      sc->win[y * sc->win_w + x] = x == 0 || y == 0 || x == sc->win_w - 1 || y == sc->win_h - 1
                                       ? 0x404040 : y < 20 ? 0x2050c0 : 0xffffff;
  for (unsigned y = 40; y < sc->win_h - 24; y++) {
    for (unsigned c = 2; c < sc->win_w / 8 - 2; c++) {
      guint32 bits = y % 16 > 2 && y % 16 < 14 ? g_rand_int(sc->rand) : 0;
      for (unsigned b = 0; b < 8; b++)
        if (bits >> b & 1)
          sc->win[y * sc->win_w + c * 8 + b] = 0;
    }
  }
}

static gboolean
scene_stop(gpointer data)
{
  Fixture *f = data;
  Scene *sc = f->line_data;
  g_assert_true(g_file_set_contents(sc->stop_file, "", 0, NULL));
  return G_SOURCE_REMOVE;
}

/* One frame: the console scrolls up a line (a new one at the bottom), or
 * the window moves 4 px right and 2 px down. */
static gboolean
scene_frame(gpointer data)
{
  Fixture *f = data;
  Scene *sc = f->line_data;
  if (sc->window) {
    sc->x += 4;
    sc->y += 2;
    desktop(f, sc);
  } else {
    for (unsigned y = 0; y + 16 < SCENE_H; y++)
      memcpy(scene_line(f, y), scene_line(f, y + 16), SCENE_W * 4);
    console_row(f, sc, SCENE_H / 16 - 1);
  }
  if (++sc->frame < SCENE_FRAMES)
    return G_SOURCE_CONTINUE;
  /* Time for the last frame to reach both clients. */
  g_timeout_add(1500, scene_stop, f);
  return G_SOURCE_REMOVE;
}

static void
scene_on_line(Fixture *f, const char *line)
{
  if (g_str_equal(line, "READY"))
    g_timeout_add(4 * NB_VNC_REFRESH_MS, scene_frame, f);
}

static uint64_t
bytes_of(Fixture *f, int client)
{
  g_autofree char *key = g_strdup_printf("BYTES %d ", client);
  const char *at = strstr(f->output->str, key);
  g_assert_nonnull(at);
  return g_ascii_strtoull(at + strlen(key), NULL, 10);
}

/* min_ratio: how many times fewer bytes the CopyRect client must get (the
 * window's edges are sent as pixels: its tiles that hold desktop too). */
static void
moved_content(bool window, unsigned min_ratio)
{
  Fixture f;
  setup(&f, NULL, false);
  Scene sc = { .window = window, .rand = g_rand_new_with_seed(11), .x = 20, .y = 30 };
  if (window) {
    make_window(&sc);
    desktop(&f, &sc);
  } else {
    for (unsigned row = 0; row < SCENE_H / 16; row++)
      console_row(&f, &sc, row);
  }
  f.on_line = scene_on_line;
  f.line_data = &sc;
  g_autofree char *dir = g_path_get_dirname(f.password_file);
  g_autofree char *save = g_build_filename(dir, "picture.rgb", NULL);
  sc.stop_file = g_build_filename(dir, "stop", NULL);
  g_assert_cmpint(run_client(&f, "--watch", sc.stop_file, "--clients", "2", "--copyrect-clients", "1", "--save",
                             save, "--timeout", "60", NULL), ==, 0);
  g_assert_cmpuint(sc.frame, ==, SCENE_FRAMES);
  g_assert_nonnull(strstr(f.output->str, "SAME-PICTURES"));
  /* The clients' picture is the server's, exactly. */
  g_autofree char *rgb = NULL;
  gsize len = 0;
  g_assert_true(g_file_get_contents(save, &rgb, &len, NULL));
  g_assert_cmpuint(len, ==, SCENE_W * SCENE_H * 3);
  for (unsigned y = 0; y < SCENE_H; y++) {
    const uint32_t *line = scene_line(&f, y);
    for (unsigned x = 0; x < SCENE_W; x++) {
      const uint8_t *p = (const uint8_t *)rgb + ((size_t)y * SCENE_W + x) * 3;
      uint32_t got = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
      if (got != (line[x] & 0xffffff))
        g_error("pixel %u,%u: the client has %06x, the server %06x", x, y, got, line[x] & 0xffffff);
    }
  }
  unlink(save);
  unlink(sc.stop_file);
  g_free(sc.stop_file);
  uint64_t copy = bytes_of(&f, 0), plain = bytes_of(&f, 1);
  g_test_message("%s: %" G_GUINT64_FORMAT " bytes with CopyRect, %" G_GUINT64_FORMAT " without",
                 window ? "window" : "scroll", copy, plain);
  g_assert_cmpuint(plain, >, 0);
  g_assert_cmpuint(copy * min_ratio, <, plain);
  g_free(sc.win);
  g_rand_free(sc.rand);
  teardown(&f);
}

static void
test_scroll(void)
{
  moved_content(false, 8);
}

static void
test_window_move(void)
{
  moved_content(true, 3);
}

static void
test_bad_config(void)
{
  g_autoptr(GError) error = NULL;
  NbVncSpec spec = { .listen = (char *)"127.0.0.1", .display = 61, .keymap = (char *)"xx" };
  g_assert_null(nb_vnc_server_new(&spec, &error));
  g_assert_nonnull(strstr(error->message, "keymap"));
  g_clear_error(&error);
  spec.keymap = NULL;
  spec.password_file = (char *)"/nonexistent/password";
  g_assert_null(nb_vnc_server_new(&spec, &error));
  g_assert_nonnull(strstr(error->message, "password file"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/vnc-server/pixels-and-password", test_pixels_and_password);
  g_test_add_func("/vnc-server/resize", test_resize);
  g_test_add_func("/vnc-server/unwatched", test_unwatched);
  g_test_add_func("/vnc-server/fast-refresh", test_fast_refresh);
  g_test_add_func("/vnc-server/keys-us", test_keys_us);
  g_test_add_func("/vnc-server/keys-de", test_keys_de);
  g_test_add_func("/vnc-server/keys-fr", test_keys_fr);
  g_test_add_func("/vnc-server/keys-scancodes", test_keys_scancodes);
  g_test_add_func("/vnc-server/leds", test_leds);
  g_test_add_func("/vnc-server/pointer", test_pointer);
  g_test_add_func("/vnc-server/many-clients", test_many_clients);
  g_test_add_func("/vnc-server/websocket", test_websocket);
  g_test_add_func("/vnc-server/bad-clients", test_bad_clients);
  g_test_add_func("/vnc-server/sharing", test_sharing);
  g_test_add_func("/vnc-server/bad-config", test_bad_config);
  g_test_add_func("/vnc-server/scroll", test_scroll);
  g_test_add_func("/vnc-server/window-move", test_window_move);
  return g_test_run();
}
