/* The SDL window's pure parts: the scancode table and the letterbox geometry. */
#include "sdl-keycodes.h"
#include "sdl-window.h"

#include <SDL_keyboard.h>
#include <glib.h>
#include <linux/input-event-codes.h>

static void
test_keycodes_letters_digits(void)
{
  /* HID usages 4..29 are a..z, 30..39 are 1..9, 0. */
  static const unsigned letters[] = { KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H,
                                      KEY_I, KEY_J, KEY_K, KEY_L, KEY_M, KEY_N, KEY_O, KEY_P,
                                      KEY_Q, KEY_R, KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X,
                                      KEY_Y, KEY_Z };
  for (unsigned i = 0; i < G_N_ELEMENTS(letters); i++)
    g_assert_cmpuint(nb_sdl_keycode((SDL_Scancode)(SDL_SCANCODE_A + i)), ==, letters[i]);
  static const unsigned digits[] = { KEY_1, KEY_2, KEY_3, KEY_4, KEY_5,
                                     KEY_6, KEY_7, KEY_8, KEY_9, KEY_0 };
  for (unsigned i = 0; i < G_N_ELEMENTS(digits); i++)
    g_assert_cmpuint(nb_sdl_keycode((SDL_Scancode)(SDL_SCANCODE_1 + i)), ==, digits[i]);
}

static void
test_keycodes_special(void)
{
  /* The keys whose names differ between HID and Linux, and the ISO keys
   * that European layouts need. */
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_RETURN), ==, KEY_ENTER);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_PERIOD), ==, KEY_DOT);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_LEFTBRACKET), ==, KEY_LEFTBRACE);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_EQUALS), ==, KEY_EQUAL);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_NONUSBACKSLASH), ==, KEY_102ND);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_NONUSHASH), ==, KEY_BACKSLASH);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_PRINTSCREEN), ==, KEY_SYSRQ);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_APPLICATION), ==, KEY_COMPOSE);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_RALT), ==, KEY_RIGHTALT);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_LGUI), ==, KEY_LEFTMETA);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_KP_ENTER), ==, KEY_KPENTER);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_KP_0), ==, KEY_KP0);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_NUMLOCKCLEAR), ==, KEY_NUMLOCK);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_F12), ==, KEY_F12);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_INTERNATIONAL1), ==, KEY_RO);
  /* No key, and out of range. */
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_UNKNOWN), ==, 0);
  g_assert_cmpuint(nb_sdl_keycode((SDL_Scancode)SDL_NUM_SCANCODES), ==, 0);
  g_assert_cmpuint(nb_sdl_keycode((SDL_Scancode)-1), ==, 0);
}

/* Every key of a 105-key PC keyboard has a code, and no two keys share one
 * (except the ISO hash key, which Linux names as the US backslash). */
static void
test_keycodes_full_keyboard(void)
{
  static const SDL_Scancode ranges[][2] = {
    { SDL_SCANCODE_A, SDL_SCANCODE_NONUSHASH - 1 },
    { SDL_SCANCODE_SEMICOLON, SDL_SCANCODE_KP_PERIOD },
    { SDL_SCANCODE_NONUSBACKSLASH, SDL_SCANCODE_APPLICATION },
    { SDL_SCANCODE_LCTRL, SDL_SCANCODE_RGUI },
  };
  bool seen[KEY_CNT] = { false };
  unsigned n = 0;
  for (unsigned r = 0; r < G_N_ELEMENTS(ranges); r++)
    for (int sc = ranges[r][0]; sc <= (int)ranges[r][1]; sc++) {
      unsigned code = nb_sdl_keycode((SDL_Scancode)sc);
      if (code == 0)
        g_error("scancode %d (%s) has no key code", sc, SDL_GetScancodeName((SDL_Scancode)sc));
      g_assert_cmpuint(code, <, KEY_CNT);
      if (seen[code])
        g_error("scancode %d gives key code %u twice", sc, code);
      seen[code] = true;
      n++;
    }
  g_assert_cmpuint(n, >=, 105);
  g_assert_true(seen[KEY_BACKSLASH]);
  g_assert_cmpuint(nb_sdl_keycode(SDL_SCANCODE_NONUSHASH), ==, KEY_BACKSLASH);
}

static void
test_fit(void)
{
  int x, y, w, h;
  /* Same shape: all of it. */
  nb_sdl_window_fit(640, 480, 1024, 768, &x, &y, &w, &h);
  g_assert_cmpint(x, ==, 0); g_assert_cmpint(y, ==, 0);
  g_assert_cmpint(w, ==, 1024); g_assert_cmpint(h, ==, 768);
  /* Wider window: borders left and right. */
  nb_sdl_window_fit(640, 480, 800, 300, &x, &y, &w, &h);
  g_assert_cmpint(x, ==, 200); g_assert_cmpint(y, ==, 0);
  g_assert_cmpint(w, ==, 400); g_assert_cmpint(h, ==, 300);
  /* Taller window: borders above and below; not an integer scale. */
  nb_sdl_window_fit(1024, 768, 500, 700, &x, &y, &w, &h);
  g_assert_cmpint(w, ==, 500); g_assert_cmpint(h, ==, 375);
  g_assert_cmpint(x, ==, 0); g_assert_cmpint(y, ==, 162);
  /* Larger than the guest: scaled up. */
  nb_sdl_window_fit(320, 200, 1920, 1080, &x, &y, &w, &h);
  g_assert_cmpint(w, ==, 1728); g_assert_cmpint(h, ==, 1080);
  g_assert_cmpint(x, ==, 96);
  /* Empty sizes give an empty rectangle, never a division by zero. */
  nb_sdl_window_fit(0, 480, 800, 600, &x, &y, &w, &h);
  g_assert_cmpint(w, ==, 0);
  nb_sdl_window_fit(640, 480, 0, 0, &x, &y, &w, &h);
  g_assert_cmpint(w, ==, 0);
  /* The largest modes stay in range. */
  nb_sdl_window_fit(NB_FB_MAX_WIDTH, NB_FB_MAX_HEIGHT, 1, 1, &x, &y, &w, &h);
  g_assert_cmpint(w, ==, 1); g_assert_cmpint(h, ==, 1);
}

static void
test_to_tablet(void)
{
  unsigned tx, ty;
  /* 1:1: corners are the tablet's ends. */
  g_assert_true(nb_sdl_window_to_tablet(640, 480, 640, 480, 0, 0, &tx, &ty));
  g_assert_cmpuint(tx, ==, 0); g_assert_cmpuint(ty, ==, 0);
  g_assert_true(nb_sdl_window_to_tablet(640, 480, 640, 480, 639, 479, &tx, &ty));
  g_assert_cmpuint(tx, ==, NB_SDL_POINTER_MAX); g_assert_cmpuint(ty, ==, NB_SDL_POINTER_MAX);
  /* Letterboxed 800x300 (picture 400x300 at x 200): the picture's centre
   * is the guest's centre pixel 320,240. */
  g_assert_true(nb_sdl_window_to_tablet(640, 480, 800, 300, 400, 150, &tx, &ty));
  g_assert_cmpuint(tx, ==, 320u * NB_SDL_POINTER_MAX / 639);
  g_assert_cmpuint(ty, ==, 240u * NB_SDL_POINTER_MAX / 479);
  /* On the border: clamped to the picture's edge. */
  g_assert_true(nb_sdl_window_to_tablet(640, 480, 800, 300, 10, 150, &tx, &ty));
  g_assert_cmpuint(tx, ==, 0);
  g_assert_true(nb_sdl_window_to_tablet(640, 480, 800, 300, 790, -5, &tx, &ty));
  g_assert_cmpuint(tx, ==, NB_SDL_POINTER_MAX); g_assert_cmpuint(ty, ==, 0);
  /* Nothing to point at. */
  g_assert_false(nb_sdl_window_to_tablet(0, 0, 800, 300, 10, 10, &tx, &ty));
  g_assert_false(nb_sdl_window_to_tablet(640, 480, 0, 0, 10, 10, &tx, &ty));
  /* A one-pixel guest. */
  g_assert_true(nb_sdl_window_to_tablet(1, 1, 100, 100, 50, 50, &tx, &ty));
  g_assert_cmpuint(tx, ==, 0);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/sdl/keycodes/letters-digits", test_keycodes_letters_digits);
  g_test_add_func("/sdl/keycodes/special", test_keycodes_special);
  g_test_add_func("/sdl/keycodes/full-keyboard", test_keycodes_full_keyboard);
  g_test_add_func("/sdl/geometry/fit", test_fit);
  g_test_add_func("/sdl/geometry/to-tablet", test_to_tablet);
  return g_test_run();
}
