/* Unit tests of the viewer's library: addresses, scaling, keysyms, key pairing. */
#include "viewer-address.h"
#include "viewer-geometry.h"
#include "viewer-keyboard.h"
#include "viewer-keysym.h"

#include <rfb/keysym.h>
#include <string.h>

static void
expect_address(const char *text, const char *host, guint port)
{
  NbViewerAddress address;
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_viewer_address_parse(text, &address, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(address.host, ==, host);
  g_assert_cmpuint(address.port, ==, port);
  nb_viewer_address_clear(&address);
}

static void
expect_bad_address(const char *text, const char *message_part)
{
  NbViewerAddress address;
  g_autoptr(GError) error = NULL;
  g_assert_false(nb_viewer_address_parse(text, &address, &error));
  g_assert_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_ADDRESS);
  if (strstr(error->message, message_part) == NULL)
    g_error("“%s”: message “%s” lacks “%s”", text, error->message, message_part);
  g_assert_null(address.host);
}

static void
test_address(void)
{
  expect_address("server", "server", 5900);
  expect_address("server:0", "server", 5900);
  expect_address("server:1", "server", 5901);
  expect_address("10.0.0.7:59635", "10.0.0.7", 65535);
  expect_address("server::5901", "server", 5901);
  expect_address("server::80", "server", 80);
  expect_address(":2", "localhost", 5902);
  expect_address("::5905", "localhost", 5905);
  expect_address("[::1]:3", "::1", 5903);
  expect_address("[fe80::1%eth0]::6000", "fe80::1%eth0", 6000);
  expect_address("[2001:db8::5]", "2001:db8::5", 5900);
  expect_address("thin-client_01.example.org:1", "thin-client_01.example.org", 5901);

  expect_bad_address("", "no server address");
  expect_bad_address("server:", "is not a display number");
  expect_bad_address("server:abc", "“abc” is not a display number");
  expect_bad_address("server:-1", "is not a display number");
  expect_bad_address("server:59636", "from 0 to 59635");
  expect_bad_address("server:1x", "is not a display number");
  expect_bad_address("server::0", "is not a TCP port from 1 to 65535");
  expect_bad_address("server::65536", "is not a TCP port");
  expect_bad_address("server::", "is not a TCP port");
  expect_bad_address("server:::1", "is not a TCP port");
  expect_bad_address("server:99999999999999999999", "is not a display number");
  expect_bad_address("fe80::1:1", "write IPv6 addresses in brackets");
  expect_bad_address("fe80:1:1", "write IPv6 addresses in brackets");
  expect_bad_address("[::1", "closing “]”");
  expect_bad_address("[]:1", "closing “]”");
  expect_bad_address("[::1]x", "after “]”");
  expect_bad_address("ser ver:1", "cannot be part of a host name");
  expect_bad_address("server/1", "cannot be part of a host name");
}

static void
test_address_to_string(void)
{
  NbViewerAddress a = { (char *)"server", 5901 };
  g_autofree char *s1 = nb_viewer_address_to_string(&a);
  g_assert_cmpstr(s1, ==, "server:1");
  a.port = 22;
  g_autofree char *s2 = nb_viewer_address_to_string(&a);
  g_assert_cmpstr(s2, ==, "server::22");
  a.host = (char *)"::1";
  a.port = 5900;
  g_autofree char *s3 = nb_viewer_address_to_string(&a);
  g_assert_cmpstr(s3, ==, "[::1]:0");
}

static void
expect_fit(int rw, int rh, int ow, int oh, int x, int y, int w, int h)
{
  NbViewerRect r = nb_viewer_fit(rw, rh, ow, oh);
  if (r.x != x || r.y != y || r.w != w || r.h != h)
    g_error("fit %dx%d in %dx%d: got %dx%d+%d+%d, expected %dx%d+%d+%d", rw, rh, ow, oh,
            r.w, r.h, r.x, r.y, w, h, x, y);
}

static void
test_fit(void)
{
  expect_fit(640, 480, 640, 480, 0, 0, 640, 480);      /* 1:1 */
  expect_fit(640, 480, 1280, 960, 0, 0, 1280, 960);    /* twice */
  expect_fit(640, 480, 800, 300, 200, 0, 400, 300);    /* pillarbox */
  expect_fit(720, 400, 640, 480, 0, 62, 640, 356);     /* letterbox: 355.6 rounds up */
  expect_fit(1920, 1080, 1024, 768, 0, 96, 1024, 576);
  expect_fit(1, 65535, 100, 100, 49, 0, 1, 100);       /* never empty */
  expect_fit(65535, 65535, 16384, 16384, 0, 0, 16384, 16384);
  expect_fit(0, 480, 640, 480, 0, 0, 0, 0);
  expect_fit(640, 480, 0, 0, 0, 0, 0, 0);
}

static void
test_to_remote(void)
{
  int x, y;
  NbViewerRect view = nb_viewer_fit(640, 480, 800, 300);  /* 400x300 at x=200 */
  g_assert_true(nb_viewer_to_remote(view, 640, 480, 200, 0, &x, &y));
  g_assert_cmpint(x, ==, 0);
  g_assert_cmpint(y, ==, 0);
  g_assert_true(nb_viewer_to_remote(view, 640, 480, 599, 299, &x, &y));
  g_assert_cmpint(x, ==, 639);
  g_assert_cmpint(y, ==, 479);
  g_assert_true(nb_viewer_to_remote(view, 640, 480, 400, 150, &x, &y));
  g_assert_cmpint(x, ==, 320);
  g_assert_cmpint(y, ==, 240);
  /* On the border: clamped to the edge. */
  g_assert_true(nb_viewer_to_remote(view, 640, 480, 10, -5, &x, &y));
  g_assert_cmpint(x, ==, 0);
  g_assert_cmpint(y, ==, 0);
  g_assert_true(nb_viewer_to_remote(view, 640, 480, 790, 1000, &x, &y));
  g_assert_cmpint(x, ==, 639);
  g_assert_cmpint(y, ==, 479);
  /* 1:1 is exact everywhere. */
  view = nb_viewer_fit(640, 480, 640, 480);
  for (int i = 0; i < 640; i++) {
    g_assert_true(nb_viewer_to_remote(view, 640, 480, i, i % 480, &x, &y));
    g_assert_cmpint(x, ==, i);
    g_assert_cmpint(y, ==, i % 480);
  }
  NbViewerRect empty = { 0, 0, 0, 0 };
  g_assert_false(nb_viewer_to_remote(empty, 640, 480, 1, 1, &x, &y));
}

static void
test_keysym(void)
{
  bool text;
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_a, 0, &text), ==, XK_a);
  g_assert_true(text);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_a, KMOD_LSHIFT, &text), ==, XK_A);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_a, KMOD_CAPS, &text), ==, XK_A);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_a, KMOD_CAPS | KMOD_RSHIFT, &text), ==, XK_a);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_1, KMOD_LSHIFT, &text), ==, XK_1);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_SPACE, 0, &text), ==, XK_space);
  g_assert_cmphex(nb_viewer_keysym_for_key(0xe4, 0, &text), ==, XK_adiaeresis);  /* ä */
  g_assert_true(text);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_RETURN, 0, &text), ==, XK_Return);
  g_assert_false(text);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_ESCAPE, 0, &text), ==, XK_Escape);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_BACKSPACE, 0, &text), ==, XK_BackSpace);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_TAB, 0, &text), ==, XK_Tab);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_DELETE, 0, &text), ==, XK_Delete);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_F1, 0, &text), ==, XK_F1);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_F12, 0, &text), ==, XK_F12);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_LEFT, 0, &text), ==, XK_Left);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_PAGEDOWN, 0, &text), ==, XK_Page_Down);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_LSHIFT, 0, &text), ==, XK_Shift_L);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_RCTRL, 0, &text), ==, XK_Control_R);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_LALT, 0, &text), ==, XK_Alt_L);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_LGUI, 0, &text), ==, XK_Super_L);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_MODE, 0, &text), ==, XK_ISO_Level3_Shift);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_KP_1, KMOD_NUM, &text), ==, XK_KP_1);
  g_assert_false(text);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_KP_1, 0, &text), ==, XK_KP_End);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_KP_PERIOD, 0, &text), ==, XK_KP_Delete);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_KP_ENTER, 0, &text), ==, XK_KP_Enter);
  g_assert_cmphex(nb_viewer_keysym_for_key(SDLK_AUDIONEXT, 0, &text), ==, 0);

  g_assert_cmphex(nb_viewer_keysym_for_char('A'), ==, XK_A);
  g_assert_cmphex(nb_viewer_keysym_for_char(0xdf), ==, XK_ssharp);
  g_assert_cmphex(nb_viewer_keysym_for_char(0x20ac), ==, 0x010020ac);  /* € */
  g_assert_cmphex(nb_viewer_keysym_for_char('\n'), ==, 0);
  g_assert_cmphex(nb_viewer_keysym_for_char(0x85), ==, 0);
  g_assert_cmphex(nb_viewer_keysym_for_char(0x110000), ==, 0);
}

typedef struct {
  GString *log;
} Sent;

static void
record(void *data, guint32 keysym, bool down)
{
  Sent *sent = data;
  g_string_append_printf(sent->log, "%s%x ", down ? "+" : "-", keysym);
}

static SDL_KeyboardEvent
key(Uint32 type, SDL_Scancode scancode, SDL_Keycode sym, Uint16 mod)
{
  SDL_KeyboardEvent event = { .type = type };
  event.keysym.scancode = scancode;
  event.keysym.sym = sym;
  event.keysym.mod = mod;
  return event;
}

static void
test_keyboard(void)
{
  Sent sent = { g_string_new("") };
  NbViewerKeyboard kb;
  nb_viewer_keyboard_init(&kb, record, &sent);
  SDL_KeyboardEvent e;

  /* Shift+1 types "!": the press and the release both say exclam. */
  e = key(SDL_KEYDOWN, SDL_SCANCODE_LSHIFT, SDLK_LSHIFT, KMOD_LSHIFT);
  nb_viewer_keyboard_key(&kb, &e);
  e = key(SDL_KEYDOWN, SDL_SCANCODE_1, SDLK_1, KMOD_LSHIFT);
  nb_viewer_keyboard_key(&kb, &e);
  g_assert_cmpstr(sent.log->str, ==, "+ffe1 ");  /* waits for the text */
  nb_viewer_keyboard_text(&kb, "!");
  e = key(SDL_KEYUP, SDL_SCANCODE_LSHIFT, SDLK_LSHIFT, 0);
  nb_viewer_keyboard_key(&kb, &e);
  e = key(SDL_KEYUP, SDL_SCANCODE_1, SDLK_1, 0);
  nb_viewer_keyboard_key(&kb, &e);
  g_assert_cmpstr(sent.log->str, ==, "+ffe1 +21 -ffe1 -21 ");
  g_string_truncate(sent.log, 0);

  /* A key whose text never comes (Ctrl held: a shortcut) is sent at once. */
  e = key(SDL_KEYDOWN, SDL_SCANCODE_C, SDLK_c, KMOD_LCTRL);
  nb_viewer_keyboard_key(&kb, &e);
  e = key(SDL_KEYUP, SDL_SCANCODE_C, SDLK_c, KMOD_LCTRL);
  nb_viewer_keyboard_key(&kb, &e);
  g_assert_cmpstr(sent.log->str, ==, "+63 -63 ");
  g_string_truncate(sent.log, 0);

  /* A text key with no text event before the next event: its own keysym. */
  e = key(SDL_KEYDOWN, SDL_SCANCODE_A, SDLK_a, 0);
  nb_viewer_keyboard_key(&kb, &e);
  nb_viewer_keyboard_flush(&kb);
  e = key(SDL_KEYUP, SDL_SCANCODE_A, SDLK_a, 0);
  nb_viewer_keyboard_key(&kb, &e);
  g_assert_cmpstr(sent.log->str, ==, "+61 -61 ");
  g_string_truncate(sent.log, 0);

  /* A non-Latin-1 character: the Unicode keysym. */
  e = key(SDL_KEYDOWN, SDL_SCANCODE_E, SDLK_e, KMOD_RALT);
  nb_viewer_keyboard_key(&kb, &e);
  nb_viewer_keyboard_text(&kb, "€");
  e = key(SDL_KEYUP, SDL_SCANCODE_E, SDLK_e, 0);
  nb_viewer_keyboard_key(&kb, &e);
  g_assert_cmpstr(sent.log->str, ==, "+10020ac -10020ac ");
  g_string_truncate(sent.log, 0);

  /* A release of a key never pressed sends nothing; bad UTF-8 is ignored. */
  e = key(SDL_KEYUP, SDL_SCANCODE_B, SDLK_b, 0);
  nb_viewer_keyboard_key(&kb, &e);
  nb_viewer_keyboard_text(&kb, "\xff\xfe");
  g_assert_cmpstr(sent.log->str, ==, "");

  /* Focus lost with keys down: all released, once (modifiers last: scancode order). */
  e = key(SDL_KEYDOWN, SDL_SCANCODE_LCTRL, SDLK_LCTRL, 0);
  nb_viewer_keyboard_key(&kb, &e);
  e = key(SDL_KEYDOWN, SDL_SCANCODE_F5, SDLK_F5, KMOD_LCTRL);
  nb_viewer_keyboard_key(&kb, &e);
  nb_viewer_keyboard_release_all(&kb, true);
  nb_viewer_keyboard_release_all(&kb, true);
  g_assert_cmpstr(sent.log->str, ==, "+ffe3 +ffc2 -ffc2 -ffe3 ");
  g_string_free(sent.log, TRUE);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/viewer/address", test_address);
  g_test_add_func("/viewer/address-to-string", test_address_to_string);
  g_test_add_func("/viewer/fit", test_fit);
  g_test_add_func("/viewer/to-remote", test_to_remote);
  g_test_add_func("/viewer/keysym", test_keysym);
  g_test_add_func("/viewer/keyboard", test_keyboard);
  return g_test_run();
}
