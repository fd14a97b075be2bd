/* The viewer's keyboard: which keysym each pressed key sent, so that its release sends
 * the same one, and the pairing of SDL's key and text events. */
#pragma once

#include <SDL_events.h>
#include <glib.h>
#include <stdbool.h>

typedef void (*NbViewerKeySender)(void *data, guint32 keysym, bool down);

typedef struct {
  guint32 down[SDL_NUM_SCANCODES];  /* keysym sent for each pressed key, 0 if none */
  bool has_pending;                 /* a text key waits for its SDL_TEXTINPUT */
  SDL_Scancode pending;
  guint32 pending_fallback;
  NbViewerKeySender send;
  void *data;
} NbViewerKeyboard;

void nb_viewer_keyboard_init(NbViewerKeyboard *keyboard, NbViewerKeySender send, void *data);
/* SDL_KEYDOWN and SDL_KEYUP. */
void nb_viewer_keyboard_key(NbViewerKeyboard *keyboard, const SDL_KeyboardEvent *event);
/* SDL_TEXTINPUT: gives the pending text key the keysym of the character it typed. */
void nb_viewer_keyboard_text(NbViewerKeyboard *keyboard, const char *utf8);
/* Any other event: a pending key that got no text goes out with its plain keysym. */
void nb_viewer_keyboard_flush(NbViewerKeyboard *keyboard);
/* Focus lost or connection changed: release every key the server thinks is down, so
 * that none stays stuck there. With send_release false only forget them (the
 * connection they were sent on is gone). */
void nb_viewer_keyboard_release_all(NbViewerKeyboard *keyboard, bool send_release);
