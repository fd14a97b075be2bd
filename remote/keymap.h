/* X keysyms (what VNC clients send) to Linux key codes (what the guest's
 * keyboards take), for the guest's keyboard layout.
 *
 * A VNC client sends the symbol the user typed, not the key: "ä" arrives
 * as the keysym adiaeresis whatever the client's keyboard looks like. To
 * type it into a guest, Nestbox must press the key that makes "ä" in the
 * guest's layout (the key right of "ö" on a German keyboard), with the
 * modifiers that layout needs (Shift, AltGr). The layout is the guest's,
 * chosen with --vnc ...,keymap=us|de|fr (default us).
 *
 * Keys that are not characters (Return, F1, the keypad, Shift itself) map
 * to the same code in every layout. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Modifiers a character needs in the guest layout. */
#define NB_KEYMAP_SHIFT     0x1
#define NB_KEYMAP_ALTGR     0x2
/* A key whose meaning does not depend on modifiers (F1, arrows, keypad):
 * the modifiers the user holds are left as they are. */
#define NB_KEYMAP_ANY_MODS  0x4
/* The layout has the character only as a dead key: type the dead key,
 * then Space, as a user would (^ and ` on a German keyboard). */
#define NB_KEYMAP_THEN_SPACE 0x8

typedef struct {
  uint16_t keycode;   /* Linux KEY_* */
  uint8_t modifiers;  /* NB_KEYMAP_* */
} NbKeyStroke;

typedef struct NbKeymap NbKeymap;

/* "us", "de" or "fr"; NULL for an unknown name. Static: never freed. */
const NbKeymap *nb_keymap_get(const char *name);
/* The names nb_keymap_get knows, NULL-terminated. */
const char *const *nb_keymap_names(void);

/* Looks keysym up; false for a keysym the layout cannot type. */
bool nb_keymap_lookup(const NbKeymap *map, uint32_t keysym, NbKeyStroke *out);
