#include "keymap.h"

#include <linux/input-event-codes.h>
#include <stddef.h>
#include <string.h>

/* One key of a layout: what it types alone, with Shift, with AltGr
 * (keysyms; 0 for nothing). Lowercase Latin-1 letters type their capital
 * with Shift without listing it. */
typedef struct {
  uint16_t keycode;
  uint32_t plain, shift, altgr;
} LayoutKey;

struct NbKeymap {
  const char *name;
  const LayoutKey *keys;
  size_t n_keys;
};

/* Keysyms outside Latin-1 that the layouts use. */
#define XK_EuroSign        0x20ac
#define XK_dead_grave      0xfe50
#define XK_dead_acute      0xfe51
#define XK_dead_circumflex 0xfe52
#define XK_dead_tilde      0xfe53
#define XK_dead_diaeresis  0xfe57

static const LayoutKey us_keys[] = {
  { KEY_GRAVE, '`', '~', 0 },
  { KEY_1, '1', '!', 0 }, { KEY_2, '2', '@', 0 }, { KEY_3, '3', '#', 0 },
  { KEY_4, '4', '$', 0 }, { KEY_5, '5', '%', 0 }, { KEY_6, '6', '^', 0 },
  { KEY_7, '7', '&', 0 }, { KEY_8, '8', '*', 0 }, { KEY_9, '9', '(', 0 },
  { KEY_0, '0', ')', 0 }, { KEY_MINUS, '-', '_', 0 }, { KEY_EQUAL, '=', '+', 0 },
  { KEY_Q, 'q', 0, 0 }, { KEY_W, 'w', 0, 0 }, { KEY_E, 'e', 0, 0 }, { KEY_R, 'r', 0, 0 },
  { KEY_T, 't', 0, 0 }, { KEY_Y, 'y', 0, 0 }, { KEY_U, 'u', 0, 0 }, { KEY_I, 'i', 0, 0 },
  { KEY_O, 'o', 0, 0 }, { KEY_P, 'p', 0, 0 }, { KEY_LEFTBRACE, '[', '{', 0 },
  { KEY_RIGHTBRACE, ']', '}', 0 }, { KEY_BACKSLASH, '\\', '|', 0 },
  { KEY_A, 'a', 0, 0 }, { KEY_S, 's', 0, 0 }, { KEY_D, 'd', 0, 0 }, { KEY_F, 'f', 0, 0 },
  { KEY_G, 'g', 0, 0 }, { KEY_H, 'h', 0, 0 }, { KEY_J, 'j', 0, 0 }, { KEY_K, 'k', 0, 0 },
  { KEY_L, 'l', 0, 0 }, { KEY_SEMICOLON, ';', ':', 0 }, { KEY_APOSTROPHE, '\'', '"', 0 },
  { KEY_Z, 'z', 0, 0 }, { KEY_X, 'x', 0, 0 }, { KEY_C, 'c', 0, 0 }, { KEY_V, 'v', 0, 0 },
  { KEY_B, 'b', 0, 0 }, { KEY_N, 'n', 0, 0 }, { KEY_M, 'm', 0, 0 },
  { KEY_COMMA, ',', '<', 0 }, { KEY_DOT, '.', '>', 0 }, { KEY_SLASH, '/', '?', 0 },
  { KEY_SPACE, ' ', 0, 0 },
};

/* German (de, QWERTZ), as Linux's and X's "de" layout has it. */
static const LayoutKey de_keys[] = {
  { KEY_GRAVE, XK_dead_circumflex, 0xb0, 0 },
  { KEY_1, '1', '!', 0xb9 }, { KEY_2, '2', '"', 0xb2 }, { KEY_3, '3', 0xa7, 0xb3 },
  { KEY_4, '4', '$', 0 }, { KEY_5, '5', '%', 0 }, { KEY_6, '6', '&', 0 },
  { KEY_7, '7', '/', '{' }, { KEY_8, '8', '(', '[' }, { KEY_9, '9', ')', ']' },
  { KEY_0, '0', '=', '}' }, { KEY_MINUS, 0xdf, '?', '\\' },
  { KEY_EQUAL, XK_dead_acute, XK_dead_grave, 0 },
  { KEY_Q, 'q', 0, '@' }, { KEY_W, 'w', 0, 0 }, { KEY_E, 'e', 0, XK_EuroSign },
  { KEY_R, 'r', 0, 0 }, { KEY_T, 't', 0, 0 }, { KEY_Y, 'z', 0, 0 }, { KEY_U, 'u', 0, 0 },
  { KEY_I, 'i', 0, 0 }, { KEY_O, 'o', 0, 0 }, { KEY_P, 'p', 0, 0 },
  { KEY_LEFTBRACE, 0xfc, 0xdc, 0 }, { KEY_RIGHTBRACE, '+', '*', '~' },
  { KEY_A, 'a', 0, 0 }, { KEY_S, 's', 0, 0 }, { KEY_D, 'd', 0, 0 }, { KEY_F, 'f', 0, 0 },
  { KEY_G, 'g', 0, 0 }, { KEY_H, 'h', 0, 0 }, { KEY_J, 'j', 0, 0 }, { KEY_K, 'k', 0, 0 },
  { KEY_L, 'l', 0, 0 }, { KEY_SEMICOLON, 0xf6, 0xd6, 0 }, { KEY_APOSTROPHE, 0xe4, 0xc4, 0 },
  { KEY_BACKSLASH, '#', '\'', 0 }, { KEY_102ND, '<', '>', '|' },
  { KEY_Z, 'y', 0, 0 }, { KEY_X, 'x', 0, 0 }, { KEY_C, 'c', 0, 0 }, { KEY_V, 'v', 0, 0 },
  { KEY_B, 'b', 0, 0 }, { KEY_N, 'n', 0, 0 }, { KEY_M, 'm', 0, 0xb5 },
  { KEY_COMMA, ',', ';', 0 }, { KEY_DOT, '.', ':', 0 }, { KEY_SLASH, '-', '_', 0 },
  { KEY_SPACE, ' ', 0, 0 },
};

/* French (fr, AZERTY). */
static const LayoutKey fr_keys[] = {
  { KEY_GRAVE, 0xb2, 0, 0 },
  { KEY_1, '&', '1', 0 }, { KEY_2, 0xe9, '2', '~' }, { KEY_3, '"', '3', '#' },
  { KEY_4, '\'', '4', '{' }, { KEY_5, '(', '5', '[' }, { KEY_6, '-', '6', '|' },
  { KEY_7, 0xe8, '7', '`' }, { KEY_8, '_', '8', '\\' }, { KEY_9, 0xe7, '9', '^' },
  { KEY_0, 0xe0, '0', '@' }, { KEY_MINUS, ')', 0xb0, ']' }, { KEY_EQUAL, '=', '+', '}' },
  { KEY_Q, 'a', 0, 0 }, { KEY_W, 'z', 0, 0 }, { KEY_E, 'e', 0, XK_EuroSign },
  { KEY_R, 'r', 0, 0 }, { KEY_T, 't', 0, 0 }, { KEY_Y, 'y', 0, 0 }, { KEY_U, 'u', 0, 0 },
  { KEY_I, 'i', 0, 0 }, { KEY_O, 'o', 0, 0 }, { KEY_P, 'p', 0, 0 },
  { KEY_LEFTBRACE, XK_dead_circumflex, XK_dead_diaeresis, 0 },
  { KEY_RIGHTBRACE, '$', 0xa3, 0xa4 },
  { KEY_A, 'q', 0, 0 }, { KEY_S, 's', 0, 0 }, { KEY_D, 'd', 0, 0 }, { KEY_F, 'f', 0, 0 },
  { KEY_G, 'g', 0, 0 }, { KEY_H, 'h', 0, 0 }, { KEY_J, 'j', 0, 0 }, { KEY_K, 'k', 0, 0 },
  { KEY_L, 'l', 0, 0 }, { KEY_SEMICOLON, 'm', 0, 0 }, { KEY_APOSTROPHE, 0xf9, '%', 0 },
  { KEY_BACKSLASH, '*', 0xb5, 0 }, { KEY_102ND, '<', '>', 0 },
  { KEY_Z, 'w', 0, 0 }, { KEY_X, 'x', 0, 0 }, { KEY_C, 'c', 0, 0 }, { KEY_V, 'v', 0, 0 },
  { KEY_B, 'b', 0, 0 }, { KEY_N, 'n', 0, 0 }, { KEY_M, ',', '?', 0 },
  { KEY_COMMA, ';', '.', 0 }, { KEY_DOT, ':', '/', 0 }, { KEY_SLASH, '!', 0xa7, 0 },
  { KEY_SPACE, ' ', 0, 0 },
};

static const NbKeymap keymaps[] = {
  { "us", us_keys, sizeof us_keys / sizeof us_keys[0] },
  { "de", de_keys, sizeof de_keys / sizeof de_keys[0] },
  { "fr", fr_keys, sizeof fr_keys / sizeof fr_keys[0] },
};

static const char *const keymap_names[] = { "us", "de", "fr", NULL };

/* Keys that are the same in every layout. */
typedef struct {
  uint32_t keysym;
  uint16_t keycode;
} FixedKey;

static const FixedKey fixed_keys[] = {
  { 0xff08, KEY_BACKSPACE }, { 0xff09, KEY_TAB }, { 0xfe20, KEY_TAB },   /* ISO_Left_Tab */
  { 0xff0d, KEY_ENTER }, { 0xff13, KEY_PAUSE }, { 0xff14, KEY_SCROLLLOCK },
  { 0xff15, KEY_SYSRQ }, { 0xff1b, KEY_ESC }, { 0xffff, KEY_DELETE },
  { 0xff50, KEY_HOME }, { 0xff51, KEY_LEFT }, { 0xff52, KEY_UP }, { 0xff53, KEY_RIGHT },
  { 0xff54, KEY_DOWN }, { 0xff55, KEY_PAGEUP }, { 0xff56, KEY_PAGEDOWN }, { 0xff57, KEY_END },
  { 0xff61, KEY_SYSRQ }, { 0xff63, KEY_INSERT }, { 0xff67, KEY_COMPOSE },
  { 0xff7f, KEY_NUMLOCK }, { 0xff8d, KEY_KPENTER },
  { 0xff95, KEY_KP7 }, { 0xff96, KEY_KP4 }, { 0xff97, KEY_KP8 }, { 0xff98, KEY_KP6 },
  { 0xff99, KEY_KP2 }, { 0xff9a, KEY_KP9 }, { 0xff9b, KEY_KP3 }, { 0xff9c, KEY_KP1 },
  { 0xff9d, KEY_KP5 }, { 0xff9e, KEY_KP0 }, { 0xff9f, KEY_KPDOT },
  { 0xffaa, KEY_KPASTERISK }, { 0xffab, KEY_KPPLUS }, { 0xffac, KEY_KPCOMMA },
  { 0xffad, KEY_KPMINUS }, { 0xffae, KEY_KPDOT }, { 0xffaf, KEY_KPSLASH },
  { 0xffb0, KEY_KP0 }, { 0xffb1, KEY_KP1 }, { 0xffb2, KEY_KP2 }, { 0xffb3, KEY_KP3 },
  { 0xffb4, KEY_KP4 }, { 0xffb5, KEY_KP5 }, { 0xffb6, KEY_KP6 }, { 0xffb7, KEY_KP7 },
  { 0xffb8, KEY_KP8 }, { 0xffb9, KEY_KP9 }, { 0xffbd, KEY_KPEQUAL },
  { 0xffbe, KEY_F1 }, { 0xffbf, KEY_F2 }, { 0xffc0, KEY_F3 }, { 0xffc1, KEY_F4 },
  { 0xffc2, KEY_F5 }, { 0xffc3, KEY_F6 }, { 0xffc4, KEY_F7 }, { 0xffc5, KEY_F8 },
  { 0xffc6, KEY_F9 }, { 0xffc7, KEY_F10 }, { 0xffc8, KEY_F11 }, { 0xffc9, KEY_F12 },
  { 0xffe1, KEY_LEFTSHIFT }, { 0xffe2, KEY_RIGHTSHIFT }, { 0xffe3, KEY_LEFTCTRL },
  { 0xffe4, KEY_RIGHTCTRL }, { 0xffe5, KEY_CAPSLOCK }, { 0xffe7, KEY_LEFTMETA },
  { 0xffe8, KEY_RIGHTMETA }, { 0xffe9, KEY_LEFTALT }, { 0xffea, KEY_RIGHTALT },
  { 0xffeb, KEY_LEFTMETA }, { 0xffec, KEY_RIGHTMETA },
  { 0xfe03, KEY_RIGHTALT }, { 0xff7e, KEY_RIGHTALT },   /* ISO_Level3_Shift, Mode_switch */
};

const NbKeymap *
nb_keymap_get(const char *name)
{
  for (size_t i = 0; i < sizeof keymaps / sizeof keymaps[0]; i++)
    if (name && strcmp(keymaps[i].name, name) == 0)
      return &keymaps[i];
  return NULL;
}

const char *const *
nb_keymap_names(void)
{
  return keymap_names;
}

/* The lowercase of a Latin-1 capital letter, or 0. */
static uint32_t
latin1_lower(uint32_t sym)
{
  if (sym >= 'A' && sym <= 'Z')
    return sym + 32;
  if (sym >= 0xc0 && sym <= 0xde && sym != 0xd7)
    return sym + 32;
  return 0;
}

bool
nb_keymap_lookup(const NbKeymap *map, uint32_t keysym, NbKeyStroke *out)
{
  for (size_t i = 0; i < sizeof fixed_keys / sizeof fixed_keys[0]; i++) {
    if (fixed_keys[i].keysym == keysym) {
      *out = (NbKeyStroke){ fixed_keys[i].keycode, NB_KEYMAP_ANY_MODS };
      return true;
    }
  }
  /* Plain first, so a symbol on two keys takes the one with fewer modifiers. */
  for (int level = 0; level < 3; level++) {
    for (size_t i = 0; i < map->n_keys; i++) {
      const LayoutKey *k = &map->keys[i];
      uint32_t sym = level == 0 ? k->plain : level == 1 ? k->shift : k->altgr;
      if (sym != 0 && sym == keysym) {
        *out = (NbKeyStroke){ k->keycode, (uint8_t)(level == 1 ? NB_KEYMAP_SHIFT
                                                    : level == 2 ? NB_KEYMAP_ALTGR : 0) };
        return true;
      }
    }
  }
  /* A spacing accent the layout only has as a dead key. */
  static const struct { uint32_t plain, dead; } accents[] = {
    { '^', XK_dead_circumflex }, { '`', XK_dead_grave }, { '~', XK_dead_tilde },
    { 0xb4, XK_dead_acute }, { 0xa8, XK_dead_diaeresis },
  };
  for (size_t a = 0; a < sizeof accents / sizeof accents[0]; a++) {
    if (accents[a].plain == keysym && accents[a].dead != keysym &&
        nb_keymap_lookup(map, accents[a].dead, out)) {
      out->modifiers |= NB_KEYMAP_THEN_SPACE;
      return true;
    }
  }
  /* A capital letter is its small letter's key with Shift. */
  uint32_t lower = latin1_lower(keysym);
  if (lower != 0) {
    for (size_t i = 0; i < map->n_keys; i++) {
      if (map->keys[i].plain == lower && map->keys[i].shift == 0) {
        *out = (NbKeyStroke){ map->keys[i].keycode, NB_KEYMAP_SHIFT };
        return true;
      }
    }
  }
  return false;
}
