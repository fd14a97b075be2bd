/* SDL reports a key that types text twice: SDL_KEYDOWN with the key, then SDL_TEXTINPUT
 * with the character the client's layout and modifiers made of it ("!" for Shift+1 on a
 * US layout, "ö" on a German one). RFB wants that character's keysym, and the release
 * must carry the same keysym as the press, whatever the modifiers are by then. */
#include "viewer-keyboard.h"

#include "viewer-keysym.h"

#include <string.h>

void
nb_viewer_keyboard_init(NbViewerKeyboard *keyboard, NbViewerKeySender send, void *data)
{
  memset(keyboard, 0, sizeof(*keyboard));
  keyboard->send = send;
  keyboard->data = data;
}

static void
press(NbViewerKeyboard *keyboard, SDL_Scancode scancode, guint32 keysym)
{
  /* A key that changes keysym while held (repeat after a layout switch): release the
   * old one first, or the server keeps it down forever. */
  if (keyboard->down[scancode] && keyboard->down[scancode] != keysym)
    keyboard->send(keyboard->data, keyboard->down[scancode], false);
  keyboard->down[scancode] = keysym;
  keyboard->send(keyboard->data, keysym, true);
}

void
nb_viewer_keyboard_flush(NbViewerKeyboard *keyboard)
{
  if (!keyboard->has_pending)
    return;
  keyboard->has_pending = false;
  press(keyboard, keyboard->pending, keyboard->pending_fallback);
}

void
nb_viewer_keyboard_key(NbViewerKeyboard *keyboard, const SDL_KeyboardEvent *event)
{
  SDL_Scancode scancode = event->keysym.scancode;
  if ((unsigned)scancode >= SDL_NUM_SCANCODES)
    return;
  nb_viewer_keyboard_flush(keyboard);
  if (event->type == SDL_KEYUP) {
    if (keyboard->down[scancode]) {
      keyboard->send(keyboard->data, keyboard->down[scancode], false);
      keyboard->down[scancode] = 0;
    }
    return;
  }
  bool text;
  guint32 keysym = nb_viewer_keysym_for_key(event->keysym.sym, event->keysym.mod, &text);
  if (keysym == 0)
    return;
  /* With Ctrl, Alt or Super held the key is a shortcut: SDL sends no text for it, and
   * the server wants the key's own symbol (Ctrl+C, not a control character). */
  if (text && !(event->keysym.mod & (KMOD_CTRL | KMOD_LALT | KMOD_GUI))) {
    keyboard->has_pending = true;
    keyboard->pending = scancode;
    keyboard->pending_fallback = keysym;
    return;
  }
  press(keyboard, scancode, keysym);
}

void
nb_viewer_keyboard_text(NbViewerKeyboard *keyboard, const char *utf8)
{
  if (!g_utf8_validate(utf8, -1, NULL))
    return;
  const char *p = utf8;
  if (keyboard->has_pending && *p) {
    guint32 keysym = nb_viewer_keysym_for_char(g_utf8_get_char(p));
    keyboard->has_pending = false;
    press(keyboard, keyboard->pending, keysym ? keysym : keyboard->pending_fallback);
    p = g_utf8_next_char(p);
  }
  /* Text with no key of its own (an input method, a compose sequence): type it. */
  for (; *p; p = g_utf8_next_char(p)) {
    guint32 keysym = nb_viewer_keysym_for_char(g_utf8_get_char(p));
    if (keysym) {
      keyboard->send(keyboard->data, keysym, true);
      keyboard->send(keyboard->data, keysym, false);
    }
  }
}

void
nb_viewer_keyboard_release_all(NbViewerKeyboard *keyboard, bool send_release)
{
  keyboard->has_pending = false;
  for (gsize i = 0; i < G_N_ELEMENTS(keyboard->down); i++) {
    if (keyboard->down[i] && send_release)
      keyboard->send(keyboard->data, keyboard->down[i], false);
    keyboard->down[i] = 0;
  }
}
