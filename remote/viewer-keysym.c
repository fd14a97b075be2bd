/* SDL keycodes are Unicode characters for keys that type something and
 * SDL_SCANCODE_TO_KEYCODE values for the rest; X keysyms (X11/keysymdef.h, carried by
 * RFB KeyEvent messages) are Latin-1 for the former and 0xffXX for most of the latter. */
#include "viewer-keysym.h"

#include <rfb/keysym.h>

typedef struct {
  SDL_Keycode key;
  guint32 keysym;
} KeyMap;

/* Keys that type nothing. The keypad is special: it depends on Num Lock. */
static const KeyMap function_keys[] = {
  { SDLK_RETURN, XK_Return }, { SDLK_ESCAPE, XK_Escape }, { SDLK_BACKSPACE, XK_BackSpace },
  { SDLK_TAB, XK_Tab }, { SDLK_DELETE, XK_Delete }, { SDLK_INSERT, XK_Insert },
  { SDLK_HOME, XK_Home }, { SDLK_END, XK_End }, { SDLK_PAGEUP, XK_Page_Up },
  { SDLK_PAGEDOWN, XK_Page_Down }, { SDLK_LEFT, XK_Left }, { SDLK_RIGHT, XK_Right },
  { SDLK_UP, XK_Up }, { SDLK_DOWN, XK_Down },
  { SDLK_F1, XK_F1 }, { SDLK_F2, XK_F2 }, { SDLK_F3, XK_F3 }, { SDLK_F4, XK_F4 },
  { SDLK_F5, XK_F5 }, { SDLK_F6, XK_F6 }, { SDLK_F7, XK_F7 }, { SDLK_F8, XK_F8 },
  { SDLK_F9, XK_F9 }, { SDLK_F10, XK_F10 }, { SDLK_F11, XK_F11 }, { SDLK_F12, XK_F12 },
  { SDLK_F13, XK_F13 }, { SDLK_F14, XK_F14 }, { SDLK_F15, XK_F15 },
  { SDLK_LSHIFT, XK_Shift_L }, { SDLK_RSHIFT, XK_Shift_R },
  { SDLK_LCTRL, XK_Control_L }, { SDLK_RCTRL, XK_Control_R },
  { SDLK_LALT, XK_Alt_L }, { SDLK_RALT, XK_Alt_R },
  { SDLK_LGUI, XK_Super_L }, { SDLK_RGUI, XK_Super_R },
  /* SDL reports AltGr as MODE on layouts where X calls it ISO_Level3_Shift. */
  { SDLK_MODE, XK_ISO_Level3_Shift },
  { SDLK_CAPSLOCK, XK_Caps_Lock }, { SDLK_NUMLOCKCLEAR, XK_Num_Lock },
  { SDLK_SCROLLLOCK, XK_Scroll_Lock }, { SDLK_PRINTSCREEN, XK_Print },
  { SDLK_SYSREQ, XK_Sys_Req }, { SDLK_PAUSE, XK_Pause }, { SDLK_MENU, XK_Menu },
  { SDLK_APPLICATION, XK_Menu }, { SDLK_HELP, XK_Help }, { SDLK_UNDO, XK_Undo },
  { SDLK_KP_ENTER, XK_KP_Enter }, { SDLK_KP_DIVIDE, XK_KP_Divide },
  { SDLK_KP_MULTIPLY, XK_KP_Multiply }, { SDLK_KP_MINUS, XK_KP_Subtract },
  { SDLK_KP_PLUS, XK_KP_Add }, { SDLK_KP_EQUALS, XK_KP_Equal },
};

/* Keypad keys: { key, with Num Lock, without }. */
static const struct {
  SDL_Keycode key;
  guint32 num, nav;
} keypad_keys[] = {
  { SDLK_KP_0, XK_KP_0, XK_KP_Insert }, { SDLK_KP_1, XK_KP_1, XK_KP_End },
  { SDLK_KP_2, XK_KP_2, XK_KP_Down }, { SDLK_KP_3, XK_KP_3, XK_KP_Page_Down },
  { SDLK_KP_4, XK_KP_4, XK_KP_Left }, { SDLK_KP_5, XK_KP_5, XK_KP_Begin },
  { SDLK_KP_6, XK_KP_6, XK_KP_Right }, { SDLK_KP_7, XK_KP_7, XK_KP_Home },
  { SDLK_KP_8, XK_KP_8, XK_KP_Up }, { SDLK_KP_9, XK_KP_9, XK_KP_Page_Up },
  { SDLK_KP_PERIOD, XK_KP_Decimal, XK_KP_Delete },
};

guint32
nb_viewer_keysym_for_char(gunichar c)
{
  if (c < 0x20 || (c >= 0x7f && c < 0xa0) || c > 0x10ffff)
    return 0;
  if (c < 0x100)
    return c;
  return 0x01000000u | c;
}

guint32
nb_viewer_keysym_for_key(SDL_Keycode key, Uint16 mod, bool *text)
{
  *text = false;
  for (gsize i = 0; i < G_N_ELEMENTS(keypad_keys); i++) {
    if (keypad_keys[i].key == key)
      return (mod & KMOD_NUM) ? keypad_keys[i].num : keypad_keys[i].nav;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(function_keys); i++) {
    if (function_keys[i].key == key)
      return function_keys[i].keysym;
  }
  if (key & SDLK_SCANCODE_MASK)
    return 0;  /* a key X has no keysym for (media keys, brightness...) */
  guint32 keysym = nb_viewer_keysym_for_char((gunichar)key);
  if (keysym == 0)
    return 0;
  *text = true;
  /* Without a text event (Ctrl+C, or a layout SDL cannot read), the keysym must still
   * say what the modifiers made of the key: letters are upper case with Shift or Caps
   * Lock, which is what an X client would see. */
  bool upper = ((mod & KMOD_SHIFT) != 0) != ((mod & KMOD_CAPS) != 0);
  if (upper && key >= 'a' && key <= 'z')
    keysym = (guint32)(key - 'a' + 'A');
  return keysym;
}
