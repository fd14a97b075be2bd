#include "sdl-window.h"
#include "sdl-keycodes.h"
#include "viewer-geometry.h"

#include <SDL.h>

#include <string.h>

G_DEFINE_QUARK(nb-sdl-error-quark, nb_sdl_error)

/* The window's size while the guest shows nothing. */
#define BLANK_WIDTH  640
#define BLANK_HEIGHT 480

struct NbSdlWindow {
  SDL_Window *window;
  SDL_Renderer *renderer;
  SDL_Texture *texture;        /* the guest's picture, XRGB8888, mode size */
  unsigned tex_width, tex_height;
  guint timer_id;
  bool needs_present;
  bool fullscreen;
  bool grabbed;
  char *name;
  char *state;
  char *title;

  NbFramebuffer *fb;
  guint listener_id;
  NbSdlInput input;
  void *input_ctx;

  bool pressed[SDL_NUM_SCANCODES];   /* keys the guest was told are down */
  bool swallowed[SDL_NUM_SCANCODES]; /* hot keys whose release is ours */
  unsigned buttons;
  unsigned tablet_x, tablet_y;
};

/* Geometry ------------------------------------------------------------------ */

void
nb_sdl_window_fit(int guest_w, int guest_h, int out_w, int out_h, int *x, int *y, int *w, int *h)
{
  NbViewerRect r = nb_viewer_fit(guest_w, guest_h, out_w, out_h);
  *x = r.x;
  *y = r.y;
  *w = r.w;
  *h = r.h;
}

bool
nb_sdl_window_to_tablet(int guest_w, int guest_h, int out_w, int out_h, int out_x, int out_y,
                        unsigned *tablet_x, unsigned *tablet_y)
{
  NbViewerRect r = nb_viewer_fit(guest_w, guest_h, out_w, out_h);
  int px, py;
  if (!nb_viewer_to_remote(r, guest_w, guest_h, out_x, out_y, &px, &py))
    return false;
  /* The same scale as the VNC server: the last pixel is the tablet's end. */
  *tablet_x = guest_w > 1 ? (unsigned)((int64_t)px * NB_SDL_POINTER_MAX / (guest_w - 1)) : 0;
  *tablet_y = guest_h > 1 ? (unsigned)((int64_t)py * NB_SDL_POINTER_MAX / (guest_h - 1)) : 0;
  return true;
}

/* Title --------------------------------------------------------------------- */

static void
update_title(NbSdlWindow *s)
{
  g_free(s->title);
  s->title = g_strdup_printf("%s - %s - %s", s->name, s->state,
                             s->grabbed ? "press Ctrl+Alt+G to release the keyboard"
                                        : "click to capture the keyboard");
  SDL_SetWindowTitle(s->window, s->title);
}

void
nb_sdl_window_set_state(NbSdlWindow *s, const char *state)
{
  g_free(s->state);
  s->state = g_strdup(state);
  update_title(s);
}

const char *
nb_sdl_window_title(NbSdlWindow *s)
{
  return s->title;
}

static void
set_grab(NbSdlWindow *s, bool grab)
{
  if (grab == s->grabbed)
    return;
  s->grabbed = grab;
  SDL_SetWindowKeyboardGrab(s->window, grab ? SDL_TRUE : SDL_FALSE);
  update_title(s);
}

/* The framebuffer ------------------------------------------------------------- */

/* A window as large as the guest's screen, or the largest one of its shape
 * that fits the desktop. */
static void
size_window(NbSdlWindow *s, int w, int h)
{
  if (s->fullscreen)
    return;
  SDL_Rect usable;
  int display = SDL_GetWindowDisplayIndex(s->window);
  if (display >= 0 && SDL_GetDisplayUsableBounds(display, &usable) == 0 && usable.w > 0 &&
      usable.h > 0 && (w > usable.w || h > usable.h)) {
    int x, y;
    nb_sdl_window_fit(w, h, usable.w, usable.h, &x, &y, &w, &h);
  }
  SDL_SetWindowSize(s->window, w, h);
}

static void
on_mode_changed(void *ctx, const NbFbMode *mode)
{
  NbSdlWindow *s = ctx;
  s->needs_present = true;
  if (!mode->enabled) {
    /* Blank: keep the window as it is, show black. */
    g_clear_pointer(&s->texture, SDL_DestroyTexture);
    s->tex_width = s->tex_height = 0;
    return;
  }
  if (s->texture && mode->width == s->tex_width && mode->height == s->tex_height)
    return;
  g_clear_pointer(&s->texture, SDL_DestroyTexture);
  s->texture = SDL_CreateTexture(s->renderer, SDL_PIXELFORMAT_RGB888, SDL_TEXTUREACCESS_STREAMING,
                                 (int)mode->width, (int)mode->height);
  if (s->texture == NULL) {
    /* A renderer that cannot hold this size (a texture limit): show black
     * rather than fail the machine. */
    g_warning("sdl: cannot show a %ux%u screen: %s", mode->width, mode->height, SDL_GetError());
    s->tex_width = s->tex_height = 0;
    return;
  }
  s->tex_width = mode->width;
  s->tex_height = mode->height;
  size_window(s, (int)mode->width, (int)mode->height);
}

static void
on_damage(void *ctx, const NbFbRect *rects, unsigned n)
{
  NbSdlWindow *s = ctx;
  NbFbMode m;
  nb_framebuffer_get_mode(s->fb, &m);
  /* Damage belongs to the mode of its refresh; after a change since, the
   * next refresh reports the new mode and repaints. */
  if (s->texture == NULL || !m.enabled || m.width != s->tex_width || m.height != s->tex_height)
    return;
  const uint8_t *base = nb_framebuffer_data(s->fb) + m.offset;
  for (unsigned i = 0; i < n; i++) {
    const NbFbRect *r = &rects[i];
    if (r->width == 0 || r->height == 0 || r->x + r->width > m.width ||
        r->y + r->height > m.height)
      continue;
    SDL_Rect dst = { (int)r->x, (int)r->y, (int)r->width, (int)r->height };
    const uint8_t *src = base + (uint64_t)r->y * m.stride + (uint64_t)r->x * m.bytes_per_pixel;
    if (m.format == NB_FB_FORMAT_XRGB8888) {
      SDL_UpdateTexture(s->texture, &dst, src, (int)m.stride);
      continue;
    }
    uint32_t *line = g_new(uint32_t, (size_t)r->width * r->height);
    for (unsigned y = 0; y < r->height; y++)
      for (unsigned x = 0; x < r->width; x++)
        line[(size_t)y * r->width + x] =
          nb_fb_pixel_to_rgb(m.format, src + (size_t)y * m.stride + (size_t)x * m.bytes_per_pixel);
    SDL_UpdateTexture(s->texture, &dst, line, (int)r->width * 4);
    g_free(line);
  }
  s->needs_present = true;
}

static const NbFbListener fb_listener = { on_mode_changed, on_damage };

static void
present(NbSdlWindow *s)
{
  SDL_SetRenderDrawColor(s->renderer, 0, 0, 0, 255);
  SDL_RenderClear(s->renderer);
  int out_w, out_h;
  if (s->texture && SDL_GetRendererOutputSize(s->renderer, &out_w, &out_h) == 0) {
    SDL_Rect dst;
    nb_sdl_window_fit((int)s->tex_width, (int)s->tex_height, out_w, out_h, &dst.x, &dst.y, &dst.w,
                      &dst.h);
    SDL_RenderCopy(s->renderer, s->texture, NULL, &dst);
  }
  SDL_RenderPresent(s->renderer);
  s->needs_present = false;
}

/* Input ----------------------------------------------------------------------- */

static void
send_key(NbSdlWindow *s, SDL_Scancode sc, bool down)
{
  unsigned keycode = nb_sdl_keycode(sc);
  if (keycode == 0 || s->input.key == NULL || s->pressed[sc] == down)
    return;
  s->pressed[sc] = down;
  s->input.key(s->input_ctx, keycode, down);
}

/* Focus lost or machine gone: no key may stay down in the guest. */
static void
release_keys(NbSdlWindow *s)
{
  for (int sc = 0; sc < SDL_NUM_SCANCODES; sc++)
    send_key(s, (SDL_Scancode)sc, false);
}

static void
toggle_fullscreen(NbSdlWindow *s)
{
  s->fullscreen = !s->fullscreen;
  SDL_SetWindowFullscreen(s->window, s->fullscreen ? SDL_WINDOW_FULLSCREEN_DESKTOP : 0);
  if (!s->fullscreen && s->tex_width)
    size_window(s, (int)s->tex_width, (int)s->tex_height);
  s->needs_present = true;
}

static void
on_key(NbSdlWindow *s, const SDL_KeyboardEvent *e)
{
  SDL_Scancode sc = e->keysym.scancode;
  if ((unsigned)sc >= SDL_NUM_SCANCODES)
    return;
  bool down = e->type == SDL_KEYDOWN;
  if (!down && s->swallowed[sc]) {
    s->swallowed[sc] = false;
    return;
  }
  /* The guest repeats keys itself (Linux's input layer does). */
  if (down && e->repeat)
    return;
  if (down && (e->keysym.mod & KMOD_CTRL) && (e->keysym.mod & KMOD_ALT) &&
      (sc == SDL_SCANCODE_G || sc == SDL_SCANCODE_F)) {
    /* The hot key is ours; the guest saw Ctrl and Alt only. */
    s->swallowed[sc] = true;
    if (sc == SDL_SCANCODE_G)
      set_grab(s, false);
    else
      toggle_fullscreen(s);
    return;
  }
  send_key(s, sc, down);
}

static void
send_pointer(NbSdlWindow *s, int win_x, int win_y, int wheel)
{
  if (s->input.pointer == NULL || s->texture == NULL)
    return;
  /* Mouse events are in window units, the picture in output pixels (they
   * differ on high-DPI screens). */
  int win_w, win_h, out_w, out_h;
  SDL_GetWindowSize(s->window, &win_w, &win_h);
  if (SDL_GetRendererOutputSize(s->renderer, &out_w, &out_h) != 0 || win_w <= 0 || win_h <= 0)
    return;
  int ox = (int)((int64_t)win_x * out_w / win_w), oy = (int)((int64_t)win_y * out_h / win_h);
  unsigned tx, ty;
  if (!nb_sdl_window_to_tablet((int)s->tex_width, (int)s->tex_height, out_w, out_h, ox, oy, &tx,
                               &ty))
    return;
  s->tablet_x = tx;
  s->tablet_y = ty;
  s->input.pointer(s->input_ctx, tx, ty, s->buttons, wheel);
}

static unsigned
button_bit(Uint8 button)
{
  switch (button) {
  case SDL_BUTTON_LEFT: return 1;
  case SDL_BUTTON_RIGHT: return 2;
  case SDL_BUTTON_MIDDLE: return 4;
  default: return 0;
  }
}

static void
on_event(NbSdlWindow *s, const SDL_Event *e)
{
  switch (e->type) {
  case SDL_KEYDOWN:
  case SDL_KEYUP:
    on_key(s, &e->key);
    break;
  case SDL_MOUSEMOTION:
    send_pointer(s, e->motion.x, e->motion.y, 0);
    break;
  case SDL_MOUSEBUTTONDOWN:
  case SDL_MOUSEBUTTONUP:
    if (e->type == SDL_MOUSEBUTTONDOWN) {
      s->buttons |= button_bit(e->button.button);
      set_grab(s, true);
    } else {
      s->buttons &= ~button_bit(e->button.button);
    }
    send_pointer(s, e->button.x, e->button.y, 0);
    break;
  case SDL_MOUSEWHEEL: {
    int x, y;
    SDL_GetMouseState(&x, &y);
    int wheel = CLAMP(e->wheel.direction == SDL_MOUSEWHEEL_FLIPPED ? -e->wheel.y : e->wheel.y,
                      -127, 127);
    if (wheel != 0)
      send_pointer(s, x, y, wheel);
    break;
  }
  case SDL_WINDOWEVENT:
    switch (e->window.event) {
    case SDL_WINDOWEVENT_CLOSE:
      if (s->input.close)
        s->input.close(s->input_ctx);
      break;
    case SDL_WINDOWEVENT_FOCUS_LOST:
      release_keys(s);
      set_grab(s, false);
      break;
    case SDL_WINDOWEVENT_EXPOSED:
    case SDL_WINDOWEVENT_SIZE_CHANGED:
      s->needs_present = true;
      break;
    }
    break;
  default:
    break;
  }
}

static gboolean
on_tick(gpointer data)
{
  NbSdlWindow *s = data;
  SDL_Event e;
  while (SDL_PollEvent(&e))
    on_event(s, &e);
  if (s->fb)
    nb_framebuffer_refresh(s->fb);
  if (s->needs_present)
    present(s);
  return G_SOURCE_CONTINUE;
}

/* Attaching ------------------------------------------------------------------- */

void
nb_sdl_window_attach(NbSdlWindow *s, NbFramebuffer *fb, const NbSdlInput *input, void *ctx)
{
  nb_sdl_window_detach(s);
  s->fb = fb;
  s->input = *input;
  s->input_ctx = ctx;
  s->buttons = 0;
  s->listener_id = nb_framebuffer_add_listener(fb, &fb_listener, s);
  /* The first refresh reports the mode and paints it all. */
  nb_framebuffer_refresh(fb);
}

void
nb_sdl_window_detach(NbSdlWindow *s)
{
  if (s->fb == NULL)
    return;
  /* The machine is going: its keyboard goes with it, so forget rather
   * than release. */
  memset(s->pressed, 0, sizeof s->pressed);
  nb_framebuffer_remove_listener(s->fb, s->listener_id);
  s->listener_id = 0;
  s->fb = NULL;
  s->input = (NbSdlInput){ NULL, NULL, NULL };
  s->input_ctx = NULL;
}

/* Lifetime -------------------------------------------------------------------- */

NbSdlWindow *
nb_sdl_window_new(const char *name, GError **error)
{
  /* nestbox-vm handles SIGINT and SIGTERM itself (it stops the machine);
   * SDL would turn them into a quit event. */
  SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");
  /* Keep the desktop's screensaver rules: a VM window is not a game. */
  SDL_SetHint(SDL_HINT_VIDEO_ALLOW_SCREENSAVER, "1");
  if (SDL_InitSubSystem(SDL_INIT_VIDEO) != 0) {
    g_set_error(error, NB_SDL_ERROR, NB_SDL_ERROR_FAILED,
                "--display sdl: cannot open a window: %s — run it in a desktop session (DISPLAY "
                "or WAYLAND_DISPLAY set), or use --vnc instead",
                SDL_GetError());
    return NULL;
  }
  /* With no desktop to show on, SDL falls back to drivers that draw
   * nowhere; a window nobody sees is an error unless asked for by name. */
  const char *driver = SDL_GetCurrentVideoDriver();
  if (driver && (g_str_equal(driver, "offscreen") || g_str_equal(driver, "dummy") ||
                 g_str_equal(driver, "evdev")) && g_getenv("SDL_VIDEODRIVER") == NULL) {
    g_set_error(error, NB_SDL_ERROR, NB_SDL_ERROR_FAILED,
                "--display sdl: there is no desktop to open a window on (DISPLAY and "
                "WAYLAND_DISPLAY are not set) — run it in a desktop session, or use --vnc");
    SDL_QuitSubSystem(SDL_INIT_VIDEO);
    return NULL;
  }
  NbSdlWindow *s = g_new0(NbSdlWindow, 1);
  s->name = g_strdup(name);
  s->state = g_strdup("starting");
  s->window = SDL_CreateWindow(name, SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED,
                               BLANK_WIDTH, BLANK_HEIGHT, SDL_WINDOW_RESIZABLE);
  if (s->window)
    s->renderer = SDL_CreateRenderer(s->window, -1, SDL_RENDERER_PRESENTVSYNC);
  /* Without a GPU (a remote X server, Xvfb) the software renderer does. */
  if (s->window && s->renderer == NULL)
    s->renderer = SDL_CreateRenderer(s->window, -1, SDL_RENDERER_SOFTWARE);
  if (s->renderer == NULL) {
    g_set_error(error, NB_SDL_ERROR, NB_SDL_ERROR_FAILED,
                "--display sdl: cannot create the machine's window: %s", SDL_GetError());
    nb_sdl_window_free(s);
    return NULL;
  }
  /* Smooth scaling when the window is not the guest's size. */
  SDL_SetHint(SDL_HINT_RENDER_SCALE_QUALITY, "linear");
  update_title(s);
  s->needs_present = true;
  present(s);
  s->timer_id = g_timeout_add(NB_SDL_REFRESH_MS, on_tick, s);
  return s;
}

void
nb_sdl_window_free(NbSdlWindow *s)
{
  if (s == NULL)
    return;
  nb_sdl_window_detach(s);
  if (s->timer_id)
    g_source_remove(s->timer_id);
  g_clear_pointer(&s->texture, SDL_DestroyTexture);
  g_clear_pointer(&s->renderer, SDL_DestroyRenderer);
  g_clear_pointer(&s->window, SDL_DestroyWindow);
  SDL_QuitSubSystem(SDL_INIT_VIDEO);
  g_free(s->name);
  g_free(s->state);
  g_free(s->title);
  g_free(s);
}
