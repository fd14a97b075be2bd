/* Translating SDL keys into X keysyms, the key names the RFB protocol carries. */
#pragma once

#include <SDL_keyboard.h>
#include <glib.h>
#include <stdbool.h>

/* The keysym for a key with no text of its own (F1, arrows, Shift_L, KP_1 ...), or
 * for a text key the keysym of its unshifted symbol. *text is set when the key also
 * produces a character, which SDL reports in a following SDL_TEXTINPUT event; that
 * character is the better keysym (it follows the client's layout and modifiers).
 * Returns 0 for keys that have no keysym. */
guint32 nb_viewer_keysym_for_key(SDL_Keycode key, Uint16 mod, bool *text);

/* The keysym for a character: Latin-1 keysyms are the code point itself, everything
 * else the Unicode keysym 0x01000000 + code point. 0 for control characters. */
guint32 nb_viewer_keysym_for_char(gunichar c);
