/* SDL scancodes (USB HID keyboard usages, page 7) as Linux KEY_* codes.
 *
 * The SDL window sends the guest the physical key, not the character the
 * host's layout makes of it: the guest applies its own layout, as it would
 * on a real keyboard. */
#pragma once

#include <SDL_scancode.h>

/* The Linux key code of scancode; 0 for a scancode no PC key makes. */
unsigned nb_sdl_keycode(SDL_Scancode scancode);
