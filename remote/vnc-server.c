#include "vnc-server.h"
#include "keymap.h"
#include "vnc-copy.h"
#include "vnc-motion.h"
#include "vnc-qemu.h"

#include <rfb/rfb.h>
#include <rfb/rfbregion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/input-event-codes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

G_DEFINE_QUARK(nb-vnc-error-quark, nb_vnc_error)

/* Where a client's picture is while the guest shows nothing. */
#define BLANK_WIDTH  640
#define BLANK_HEIGHT 480

struct NbVncServer {
  rfbScreenInfoPtr screen;
  unsigned port;
  char *passwords[2];          /* the list rfbCheckPasswordByList walks */
  const NbKeymap *keymap;

  /* Main-loop side. */
  NbFramebuffer *fb;
  guint listener_id;
  guint timer_id;
  unsigned period_ms;          /* the timer's: NB_VNC_REFRESH_MS or NB_VNC_FAST_REFRESH_MS */
  gint64 last_damage;          /* when a refresh last found a change (monotonic, us) */
  uint32_t *pixels;            /* what clients are sent: XRGB8888 */
  GPtrArray *retired;          /* earlier, smaller pixel buffers */
  size_t pixels_max;           /* pixels it holds */
  unsigned width, height;
  /* Set while refreshes are skipped for want of clients: pixels is then
   * older than the guest's picture until the next refresh, which a new
   * client's first update waits for (fresh_cond). */
  gint stale;
  GMutex fresh_lock;
  GCond fresh_cond;
  /* Moved content (vnc-motion.h): the last move sent, tried first next
   * time, and the search's tile map. */
  NbVncMove hint;
  uint8_t *tiles;
  NbFbRect *strips;            /* the move's edges in partly moved tiles */
  size_t tiles_max;

  /* Client threads. */
  GMutex input_lock;
  NbVncInput input;
  void *input_ctx;
  bool shift_left, shift_right, altgr;
  GHashTable *pressed;         /* keysym -> keycode, for the release */
  int last_buttons;
  GMutex clients_lock;
  unsigned clients;

  /* The extra WebSocket port. */
  int ws_fd;
  GThread *ws_thread;

  /* QEMU's extended key events and LED state. */
  NbVncQemu *qemu;
};

/* libvncserver writes its log to stderr; ours goes through GLib. Its
 * logging hook takes printf formats, which it builds itself. */
static void vnc_log(const char *format, ...) G_GNUC_PRINTF(1, 2);

static void
vnc_log(const char *format, ...)
{
  va_list args;
  va_start(args, format);
  g_autofree char *text = g_strdup_vprintf(format, args);
  va_end(args);
  g_strchomp(text);
  /* What the sharing policy did to a client is worth the admin's eye. */
  const char *kicked = "Not shared - closing connection to client ";
  const char *refused = "  refusing new client ";
  if (g_str_has_prefix(text, kicked))
    g_message("vnc: disconnected the client from %s: a client that may not share the screen "
              "connected (see share= of --vnc)", text + strlen(kicked));
  else if (g_str_has_prefix(text, refused))
    g_message("vnc: refused the client from %s: another client has the screen and share=single",
              text + strlen(refused));
  else
    g_debug("vnc: %s", text);
}

/* Input ------------------------------------------------------------------- */

static void
send_key(NbVncServer *s, unsigned keycode, bool down)
{
  s->input.key(s->input_ctx, keycode, down);
}

/* Presses keycode with exactly the Shift and AltGr state it needs in the
 * guest's layout, then puts the user's modifiers back. */
static void
press_with_modifiers(NbVncServer *s, unsigned keycode, unsigned mods)
{
  bool want_shift = mods & NB_KEYMAP_SHIFT, want_altgr = mods & NB_KEYMAP_ALTGR;
  bool have_shift = s->shift_left || s->shift_right;
  if (want_shift && !have_shift)
    send_key(s, KEY_LEFTSHIFT, true);
  if (!want_shift && s->shift_left)
    send_key(s, KEY_LEFTSHIFT, false);
  if (!want_shift && s->shift_right)
    send_key(s, KEY_RIGHTSHIFT, false);
  if (want_altgr != s->altgr)
    send_key(s, KEY_RIGHTALT, want_altgr);
  send_key(s, keycode, true);
  if (want_altgr != s->altgr)
    send_key(s, KEY_RIGHTALT, s->altgr);
  if (!want_shift && s->shift_right)
    send_key(s, KEY_RIGHTSHIFT, true);
  if (!want_shift && s->shift_left)
    send_key(s, KEY_LEFTSHIFT, true);
  if (want_shift && !have_shift)
    send_key(s, KEY_LEFTSHIFT, false);
}

static void
on_key(rfbBool down, rfbKeySym keysym, rfbClientPtr cl)
{
  NbVncServer *s = cl->screen->screenData;
  g_mutex_lock(&s->input_lock);
  NbKeyStroke k;
  if (s->input.key == NULL || !nb_keymap_lookup(s->keymap, keysym, &k)) {
    if (s->input.key)
      g_debug("vnc: keysym 0x%x has no key in the guest's layout", (unsigned)keysym);
    g_mutex_unlock(&s->input_lock);
    return;
  }
  if (k.modifiers & NB_KEYMAP_ANY_MODS) {
    if (k.keycode == KEY_LEFTSHIFT)
      s->shift_left = down;
    else if (k.keycode == KEY_RIGHTSHIFT)
      s->shift_right = down;
    else if (k.keycode == KEY_RIGHTALT)
      s->altgr = down;
    send_key(s, k.keycode, down);
  } else if (down && (k.modifiers & NB_KEYMAP_THEN_SPACE)) {
    /* Dead key, then Space: the whole character on the press. */
    press_with_modifiers(s, k.keycode, k.modifiers);
    send_key(s, k.keycode, false);
    send_key(s, KEY_SPACE, true);
    send_key(s, KEY_SPACE, false);
    g_hash_table_insert(s->pressed, GUINT_TO_POINTER(keysym), GUINT_TO_POINTER(0));
  } else if (down) {
    g_hash_table_insert(s->pressed, GUINT_TO_POINTER(keysym), GUINT_TO_POINTER(k.keycode));
    press_with_modifiers(s, k.keycode, k.modifiers);
  } else {
    /* Release the key the press went to, even if the symbol changed
     * (nothing when the press already released it). */
    gpointer code;
    if (g_hash_table_steal_extended(s->pressed, GUINT_TO_POINTER(keysym), NULL, &code))
      k.keycode = (uint16_t)GPOINTER_TO_UINT(code);
    else if (k.modifiers & NB_KEYMAP_THEN_SPACE)
      k.keycode = 0;
    if (k.keycode != 0)
      send_key(s, k.keycode, false);
  }
  g_mutex_unlock(&s->input_lock);
}

/* A key sent with its scancode (QEMU's extended key event): the guest gets
 * that very key, and its own layout makes the character, as with a real
 * keyboard; the keymap is not involved. */
static void
on_scancode_key(rfbClientPtr cl, uint32_t keysym, unsigned keycode, bool down)
{
  if (keycode == 0) {
    on_key(down, keysym, cl);
    return;
  }
  NbVncServer *s = cl->screen->screenData;
  g_mutex_lock(&s->input_lock);
  if (s->input.key) {
    /* Kept for keysym events that may come in between. */
    if (keycode == KEY_LEFTSHIFT)
      s->shift_left = down;
    else if (keycode == KEY_RIGHTSHIFT)
      s->shift_right = down;
    else if (keycode == KEY_RIGHTALT)
      s->altgr = down;
    send_key(s, keycode, down);
  }
  g_mutex_unlock(&s->input_lock);
}

static void
on_pointer(int mask, int x, int y, rfbClientPtr cl)
{
  NbVncServer *s = cl->screen->screenData;
  g_mutex_lock(&s->input_lock);
  if (s->input.pointer) {
    int w = cl->screen->width, h = cl->screen->height;
    unsigned ax = w > 1 ? (unsigned)(CLAMP(x, 0, w - 1) * (int64_t)NB_VNC_POINTER_MAX / (w - 1)) : 0;
    unsigned ay = h > 1 ? (unsigned)(CLAMP(y, 0, h - 1) * (int64_t)NB_VNC_POINTER_MAX / (h - 1)) : 0;
    /* RFB: bit 0 left, 1 middle, 2 right, 3 wheel up, 4 wheel down (a
     * press and a release for each click). */
    unsigned buttons = (mask & 1 ? 1u : 0u) | (mask & 4 ? 2u : 0u) | (mask & 2 ? 4u : 0u);
    int pressed_now = mask & ~s->last_buttons;
    int wheel = (pressed_now & 8 ? 1 : 0) - (pressed_now & 16 ? 1 : 0);
    s->last_buttons = mask;
    s->input.pointer(s->input_ctx, ax, ay, buttons, wheel);
  }
  g_mutex_unlock(&s->input_lock);
}

/* There is no clipboard to give the text to; libvncserver already refuses
 * cut text over 1 MiB by disconnecting the client. */
static void
on_cut_text(char *text, int len, rfbClientPtr cl)
{
}

/* Clients ----------------------------------------------------------------- */

static void
on_client_gone(rfbClientPtr cl)
{
  NbVncServer *s = cl->screen->screenData;
  nb_vnc_qemu_client_gone(cl);
  g_mutex_lock(&s->clients_lock);
  s->clients--;
  g_mutex_unlock(&s->clients_lock);
}

static enum rfbNewClientAction
on_new_client(rfbClientPtr cl)
{
  NbVncServer *s = cl->screen->screenData;
  g_mutex_lock(&s->clients_lock);
  bool full = s->clients >= NB_VNC_MAX_CLIENTS;
  if (!full)
    s->clients++;
  g_mutex_unlock(&s->clients_lock);
  if (full) {
    g_message("vnc: refused a client from %s: %d clients are connected already", cl->host,
              NB_VNC_MAX_CLIENTS);
    return RFB_CLIENT_REFUSE;
  }
  cl->clientGoneHook = on_client_gone;
  nb_vnc_qemu_client_new(s->qemu, cl);
  return RFB_CLIENT_ACCEPT;
}

/* The extra WebSocket port: libvncserver tells WebSocket from RFB on any
 * connection, so accepted sockets are simply handed to it. */
static gpointer
websocket_thread(gpointer data)
{
  NbVncServer *s = data;
  for (;;) {
    int fd = accept4(s->ws_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return NULL;   /* shut down */
    }
    rfbClientPtr cl = rfbNewClient(s->screen, fd);
    if (cl && !cl->onHold)
      rfbStartOnHoldClient(cl);
  }
}

static int
listen_tcp(const char *address, unsigned port, GError **error)
{
  struct sockaddr_storage ss = { 0 };
  socklen_t len;
  struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    len = sizeof *in4;
  } else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    len = sizeof *in6;
  } else {
    g_set_error(error, NB_VNC_ERROR, NB_VNC_ERROR_CONFIG, "%s is not an IP address", address);
    return -1;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0)
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 32) < 0) {
    int err = errno;
    g_set_error(error, NB_VNC_ERROR, NB_VNC_ERROR_CONFIG,
                "cannot listen on %s port %u: %s — choose another port or stop what uses it",
                address, port, g_strerror(err));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

/* The framebuffer ------------------------------------------------------------ */

static void
copy_rect(NbVncServer *s, const NbFbMode *m, const NbFbRect *r)
{
  const uint8_t *src = nb_framebuffer_data(s->fb) + m->offset;
  for (unsigned y = r->y; y < r->y + r->height; y++) {
    const uint8_t *line = src + (uint64_t)y * m->stride + (uint64_t)r->x * m->bytes_per_pixel;
    uint32_t *dst = s->pixels + (size_t)y * s->width + r->x;
    if (m->format == NB_FB_FORMAT_XRGB8888) {
      memcpy(dst, line, (size_t)r->width * 4);
    } else {
      for (unsigned x = 0; x < r->width; x++)
        dst[x] = nb_fb_pixel_to_rgb(m->format, line + (size_t)x * m->bytes_per_pixel);
    }
  }
}

static void
set_server_format(rfbScreenInfoPtr screen)
{
  /* Pixels are 0x00RRGGBB in host order, like the guest's XRGB8888. */
  screen->serverFormat.redShift = 16;
  screen->serverFormat.greenShift = 8;
  screen->serverFormat.blueShift = 0;
}

static void
on_mode_changed(void *ctx, const NbFbMode *mode)
{
  NbVncServer *s = ctx;
  unsigned w = mode->enabled ? mode->width : s->width;
  unsigned h = mode->enabled ? mode->height : s->height;
  if ((size_t)w * h > s->pixels_max) {
    /* Cannot happen with the buffer sized from video memory; stay safe. */
    w = BLANK_WIDTH;
    h = BLANK_HEIGHT;
  }
  if (w != s->width || h != s->height) {
    s->width = w;
    s->height = h;
    memset(s->pixels, 0, (size_t)w * h * 4);
    rfbNewFramebuffer(s->screen, (char *)s->pixels, (int)w, (int)h, 8, 3, 4);
    set_server_format(s->screen);
  }
  if (!mode->enabled) {
    memset(s->pixels, 0, (size_t)w * h * 4);
    rfbMarkRectAsModified(s->screen, 0, 0, (int)w, (int)h);
  }
}

static void
copy_region(NbVncServer *s, const NbFbMode *m, sraRegionPtr region)
{
  sraRectangleIterator *it = sraRgnGetIterator(region);
  sraRect r;
  while (sraRgnIteratorNext(it, &r)) {
    NbFbRect fr = { (unsigned)r.x1, (unsigned)r.y1, (unsigned)(r.x2 - r.x1), (unsigned)(r.y2 - r.y1) };
    copy_rect(s, m, &fr);
  }
  sraRgnReleaseIterator(it);
}

typedef struct {
  NbVncServer *s;
  const NbFbMode *m;
  sraRegionPtr rest;
} PaintRest;

static void
paint_rest(void *ctx)
{
  PaintRest *p = ctx;
  copy_region(p->s, p->m, p->rest);
}

/* Sends the part of the damage that is an exact move of what clients have
 * as CopyRect, and the rest as pixels. Returns false, having done nothing,
 * when there is no such move or it cannot be sent now. */
static bool
send_moves(NbVncServer *s, const NbFbMode *m, const NbFbRect *rects, unsigned n,
           sraRegionPtr changed)
{
  if (m->format != NB_FB_FORMAT_XRGB8888)
    return false;   /* the search compares the guest's bytes with ours */
  unsigned tiles_x, tiles_y;
  nb_vnc_motion_tiles(s->width, s->height, &tiles_x, &tiles_y);
  if ((size_t)tiles_x * tiles_y > s->tiles_max) {
    g_free(s->tiles);
    g_free(s->strips);
    s->tiles_max = (size_t)tiles_x * tiles_y;
    s->tiles = g_malloc(s->tiles_max);
    s->strips = g_new(NbFbRect, s->tiles_max);
  }
  NbVncPictures pics = {
    .old_pixels = s->pixels,
    .new_pixels = nb_framebuffer_data(s->fb) + m->offset,
    .new_stride = m->stride,
    .width = s->width,
    .height = s->height,
  };
  NbVncMove mv;
  if (nb_vnc_motion_find(&pics, rects, n, s->hint, &mv, s->tiles) == 0)
    return false;
  sraRegionPtr copy = sraRgnCreate();
  for (unsigned ty = 0; ty < tiles_y; ty++) {
    for (unsigned tx = 0; tx < tiles_x;) {
      if (!s->tiles[ty * tiles_x + tx]) {
        tx++;
        continue;
      }
      unsigned start = tx;
      while (tx < tiles_x && s->tiles[ty * tiles_x + tx])
        tx++;
      sraRegionPtr run = sraRgnCreateRect((int)(start * NB_FB_TILE_WIDTH), (int)(ty * NB_FB_TILE_HEIGHT),
                                          (int)MIN(tx * NB_FB_TILE_WIDTH, s->width),
                                          (int)MIN((ty + 1) * NB_FB_TILE_HEIGHT, s->height));
      sraRgnOr(copy, run);
      sraRgnDestroy(run);
    }
  }
  /* A window's edges cut through tiles: the parts of those that moved too
   * (without them about 40% of a 480x320 window's damaged tiles went out
   * as pixels). */
  unsigned n_strips = nb_vnc_motion_edges(&pics, rects, n, mv, s->tiles, s->strips);
  for (unsigned i = 0; i < n_strips; i++) {
    const NbFbRect *r = &s->strips[i];
    sraRegionPtr strip = sraRgnCreateRect((int)r->x, (int)r->y, (int)(r->x + r->width),
                                          (int)(r->y + r->height));
    sraRgnOr(copy, strip);
    sraRgnDestroy(strip);
  }
  sraRegionPtr rest = sraRgnCreateRgn(changed);
  sraRgnSubtract(rest, copy);
  PaintRest paint = { s, m, rest };
  bool sent = nb_vnc_copy_region(s->screen, copy, mv.dx, mv.dy, rest, paint_rest, &paint);
  if (sent)
    s->hint = mv;
  sraRgnDestroy(rest);
  sraRgnDestroy(copy);
  return sent;
}

static void
on_damage(void *ctx, const NbFbRect *rects, unsigned n)
{
  NbVncServer *s = ctx;
  NbFbMode m;
  nb_framebuffer_get_mode(s->fb, &m);
  /* A damage belongs to the mode of its refresh; if the guest changed the
   * mode since, the next refresh reports it and repaints everything. */
  if (!m.enabled || m.width != s->width || m.height != s->height)
    return;
  sraRegionPtr changed = sraRgnCreate();
  for (unsigned i = 0; i < n; i++) {
    const NbFbRect *r = &rects[i];
    if (r->x + r->width > s->width || r->y + r->height > s->height)
      continue;
    sraRegionPtr one = sraRgnCreateRect((int)r->x, (int)r->y, (int)(r->x + r->width),
                                        (int)(r->y + r->height));
    sraRgnOr(changed, one);
    sraRgnDestroy(one);
  }
  /* Every rectangle is copied first and then all are marked at once: a
   * client thread wakes on the first mark, and would otherwise send part
   * of the refresh in one update and the rest in the next, each a round
   * trip and a header more for the same picture. (send_moves does the
   * same with its copy and the rest.) */
  if (!sraRgnEmpty(changed) && !send_moves(s, &m, rects, n, changed)) {
    copy_region(s, &m, changed);
    rfbMarkRegionAsModified(s->screen, changed);
  }
  sraRgnDestroy(changed);
}

static const NbFbListener fb_listener = { on_mode_changed, on_damage };

/* Before every update a client thread sends: the first client after a
 * time with none waits for the refresh that brings the pixels up to date
 * (at most one refresh period), so it is not shown an old picture first.
 * Bounded, in case the main loop is busy. */
static void
on_before_update(rfbClientPtr cl)
{
  NbVncServer *s = cl->screen->screenData;
  if (!g_atomic_int_get(&s->stale))
    return;
  gint64 end = g_get_monotonic_time() + 10 * NB_VNC_REFRESH_MS * G_TIME_SPAN_MILLISECOND;
  g_mutex_lock(&s->fresh_lock);
  while (g_atomic_int_get(&s->stale) && g_cond_wait_until(&s->fresh_cond, &s->fresh_lock, end))
    ;
  g_mutex_unlock(&s->fresh_lock);
}

static gboolean on_refresh(gpointer data);

/* While the screen is changing, it is looked at more often: a change waits
 * for the next look, up to a whole period (30 ms, QEMU's rate too, is most
 * of the delay a client sees). A still screen, or one nobody watches, goes
 * back to the slow period, so the dirty log is read (and the guest's video
 * memory write-protected) faster only while something moves. Returns what
 * the running timer's callback returns. */
static gboolean
keep_period(NbVncServer *s, gint64 now)
{
  unsigned period = s->last_damage && now - s->last_damage < NB_VNC_FAST_HOLD_MS * G_TIME_SPAN_MILLISECOND
                        ? NB_VNC_FAST_REFRESH_MS : NB_VNC_REFRESH_MS;
  if (period == s->period_ms)
    return G_SOURCE_CONTINUE;
  s->period_ms = period;
  s->timer_id = g_timeout_add(period, on_refresh, s);
  return G_SOURCE_REMOVE;
}

static gboolean
on_refresh(gpointer data)
{
  NbVncServer *s = data;
  gint64 now = g_get_monotonic_time();
  /* With no client, nothing is looked at: KVM's dirty log keeps every page
   * the guest writes meanwhile, so the first refresh once a client is there
   * finds it all; until then the guest takes no write faults on video
   * memory and nothing is compared. */
  if (nb_vnc_server_clients(s) == 0) {
    g_atomic_int_set(&s->stale, 1);
    s->last_damage = 0;
    return keep_period(s, now);
  }
  if (nb_framebuffer_refresh(s->fb) > 0)
    s->last_damage = now;
  nb_vnc_qemu_refresh(s->qemu, s->screen, s->input.leds ? s->input.leds(s->input_ctx) : 0);
  if (g_atomic_int_get(&s->stale)) {
    g_mutex_lock(&s->fresh_lock);
    g_atomic_int_set(&s->stale, 0);
    g_cond_broadcast(&s->fresh_cond);
    g_mutex_unlock(&s->fresh_lock);
  }
  return keep_period(s, now);
}

void
nb_vnc_server_attach(NbVncServer *s, NbFramebuffer *fb, const NbVncInput *input, void *ctx)
{
  nb_vnc_server_detach(s);
  size_t need = (size_t)(nb_framebuffer_size(fb) / 2);   /* 16 bpp is the smallest */
  if (need > s->pixels_max) {
    /* Client threads may still be encoding from the old buffer: it is kept
     * until the server stops (this happens once, on the first attach). */
    g_ptr_array_add(s->retired, s->pixels);
    s->pixels_max = need;
    s->pixels = g_malloc0(s->pixels_max * 4);
    rfbNewFramebuffer(s->screen, (char *)s->pixels, (int)s->width, (int)s->height, 8, 3, 4);
    set_server_format(s->screen);
  }
  s->fb = fb;
  s->listener_id = nb_framebuffer_add_listener(fb, &fb_listener, s);
  s->period_ms = NB_VNC_REFRESH_MS;
  s->last_damage = 0;
  s->timer_id = g_timeout_add(s->period_ms, on_refresh, s);
  g_mutex_lock(&s->input_lock);
  s->input = *input;
  s->input_ctx = ctx;
  s->shift_left = s->shift_right = s->altgr = false;
  g_hash_table_remove_all(s->pressed);
  g_mutex_unlock(&s->input_lock);
  /* The first refresh reports the mode and paints it all. */
  nb_framebuffer_refresh(fb);
}

void
nb_vnc_server_detach(NbVncServer *s)
{
  if (s->fb == NULL)
    return;
  g_mutex_lock(&s->input_lock);
  s->input = (NbVncInput){ NULL, NULL, NULL };
  s->input_ctx = NULL;
  g_mutex_unlock(&s->input_lock);
  g_source_remove(s->timer_id);
  nb_framebuffer_remove_listener(s->fb, s->listener_id);
  s->timer_id = s->listener_id = 0;
  s->fb = NULL;
  g_mutex_lock(&s->fresh_lock);
  g_atomic_int_set(&s->stale, 0);   /* nothing more will come */
  g_cond_broadcast(&s->fresh_cond);
  g_mutex_unlock(&s->fresh_lock);
}

/* Lifetime ----------------------------------------------------------------- */

static char *
read_password(const char *path, GError **error)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) local = NULL;
  if (!g_file_get_contents(path, &text, NULL, &local)) {
    g_set_error(error, NB_VNC_ERROR, NB_VNC_ERROR_CONFIG, "cannot read the VNC password file: %s",
                local->message);
    return NULL;
  }
  char *nl = strpbrk(text, "\r\n");
  if (nl)
    *nl = '\0';
  if (text[0] == '\0') {
    g_set_error(error, NB_VNC_ERROR, NB_VNC_ERROR_CONFIG,
                "the VNC password file %s is empty: write the password on its first line", path);
    return NULL;
  }
  return g_steal_pointer(&text);
}

NbVncServer *
nb_vnc_server_new(const NbVncSpec *spec, GError **error)
{
  const NbKeymap *keymap = nb_keymap_get(spec->keymap ? spec->keymap : "us");
  if (keymap == NULL) {
    g_autofree char *names = g_strjoinv(", ", (char **)nb_keymap_names());
    g_set_error(error, NB_VNC_ERROR, NB_VNC_ERROR_CONFIG,
                "--vnc: there is no keymap “%s”; the guest layouts known are %s", spec->keymap,
                names);
    return NULL;
  }
  char *password = NULL;
  if (spec->password_file) {
    password = read_password(spec->password_file, error);
    if (password == NULL)
      return NULL;
  }

  rfbLog = vnc_log;
  rfbErr = vnc_log;
  NbVncServer *s = g_new0(NbVncServer, 1);
  g_mutex_init(&s->input_lock);
  g_mutex_init(&s->clients_lock);
  g_mutex_init(&s->fresh_lock);
  g_cond_init(&s->fresh_cond);
  s->pressed = g_hash_table_new(NULL, NULL);
  s->retired = g_ptr_array_new_with_free_func(g_free);
  s->keymap = keymap;
  s->passwords[0] = password;
  s->ws_fd = -1;
  s->width = BLANK_WIDTH;
  s->height = BLANK_HEIGHT;
  s->port = NB_VNC_BASE_PORT + spec->display;
  s->qemu = nb_vnc_qemu_new(on_scancode_key);

  rfbScreenInfoPtr screen = rfbGetScreen(NULL, NULL, BLANK_WIDTH, BLANK_HEIGHT, 8, 3, 4);
  s->screen = screen;
  screen->screenData = s;
  screen->desktopName = "Nestbox";
  screen->frameBuffer = NULL;
  set_server_format(screen);
  /* The guest draws its own pointer; libvncserver would paint its default
   * one into the picture for clients without cursor-shape updates. */
  screen->cursor = NULL;
  screen->autoPort = FALSE;
  const char *address = g_str_equal(spec->listen, "localhost") ? "127.0.0.1" : spec->listen;
  if (strchr(address, ':')) {
    screen->port = 0;
    screen->ipv6port = (int)s->port;
    screen->listen6Interface = g_strdup(address);
  } else {
    screen->port = (int)s->port;
    screen->ipv6port = 0;
    rfbStringToAddr((char *)address, &screen->listenInterface);
  }
  screen->httpPort = 0;
  screen->httpDir = NULL;
  screen->kbdAddEvent = on_key;
  screen->ptrAddEvent = on_pointer;
  screen->setXCutText = on_cut_text;
  screen->newClientHook = on_new_client;
  screen->displayHook = on_before_update;
  screen->permitFileTransfer = FALSE;
  /* Sharing: libvncserver applies the policy when a client's ClientInit
   * (with its shared flag) arrives, after authentication, so a client that
   * does not know the password never pushes anybody out or keeps anybody
   * out. */
  switch (spec->share) {
  case NB_VNC_SHARE_ALLOW_EXCLUSIVE:
    break;   /* libvncserver's default is RFB's rule */
  case NB_VNC_SHARE_FORCE_SHARED:
    screen->alwaysShared = TRUE;
    break;
  case NB_VNC_SHARE_SINGLE:
    screen->neverShared = TRUE;
    screen->dontDisconnect = TRUE;
    break;
  case NB_VNC_SHARE_TAKEOVER:
    screen->neverShared = TRUE;
    break;
  }
  screen->handleEventsEagerly = TRUE;
  /* libvncserver holds each update back this long for more changes to
   * come (5 ms by default); a refresh marks all of its changes at once, so
   * there are none to wait for. Not 0: the same value paces a client
   * thread's polling while its client is still logging in. */
  screen->deferUpdateTime = 1;
  if (password) {
    screen->authPasswdData = s->passwords;
    screen->passwordCheck = rfbCheckPasswordByList;
  }
  /* A blank picture until a machine is attached. */
  s->pixels_max = (size_t)BLANK_WIDTH * BLANK_HEIGHT;
  s->pixels = NULL;
  uint32_t *blank = g_malloc0(s->pixels_max * 4);
  screen->frameBuffer = (char *)blank;
  rfbInitServer(screen);
  if ((screen->port && screen->listenSock == RFB_INVALID_SOCKET) ||
      (screen->ipv6port && screen->listen6Sock == RFB_INVALID_SOCKET)) {
    g_set_error(error, NB_VNC_ERROR, NB_VNC_ERROR_CONFIG,
                "cannot listen for VNC clients on %s port %u (display %u): the port is in use or "
                "the address is not this machine's — choose another display number",
                address, s->port, spec->display);
    rfbScreenCleanup(screen);
    s->screen = NULL;
    g_free(blank);
    nb_vnc_server_free(s);
    return NULL;
  }
  s->pixels = blank;   /* replaced by a buffer sized for the guest on attach */
  s->pixels_max = (size_t)BLANK_WIDTH * BLANK_HEIGHT;
  if (spec->websocket) {
    s->ws_fd = listen_tcp(address, spec->websocket, error);
    if (s->ws_fd < 0) {
      nb_vnc_server_free(s);
      return NULL;
    }
    s->ws_thread = g_thread_new("vnc-websocket", websocket_thread, s);
  }
  if (!password && !g_str_equal(address, "127.0.0.1") && !g_str_equal(address, "::1"))
    g_warning("VNC on %s port %u has no password: anyone who can reach it sees and controls "
              "the machine; add password-file=PATH to --vnc",
              address, s->port);
  rfbRunEventLoop(screen, -1, TRUE);
  return s;
}

void
nb_vnc_server_free(NbVncServer *s)
{
  if (s == NULL)
    return;
  nb_vnc_server_detach(s);
  if (s->ws_fd >= 0) {
    shutdown(s->ws_fd, SHUT_RDWR);
    if (s->ws_thread)
      g_thread_join(s->ws_thread);
    close(s->ws_fd);
  }
  if (s->screen) {
    /* libvncserver's own disconnect (rfbShutdownServer(..., TRUE), or
     * rfbCloseClient here) tears clients down from this thread while their
     * threads may be doing the same, and frees twice. Instead shut their
     * sockets down: each client's thread then ends it as for a client that
     * hung up; wait for them to be gone. */
    rfbClientIteratorPtr it = rfbGetClientIterator(s->screen);
    rfbClientPtr cl;
    while ((cl = rfbClientIteratorNext(it)) != NULL) {
      int fd = cl->sock;
      if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    }
    rfbReleaseClientIterator(it);
    /* Up to 30 s: on a loaded machine a client's threads may take seconds
     * to be scheduled, and cleaning up under a live client hangs. */
    for (int i = 0; i < 3000 && nb_vnc_server_clients(s) > 0; i++)
      g_usleep(10000);
    /* The hook runs just before a client's last clean-up. */
    g_usleep(50000);
    rfbShutdownServer(s->screen, FALSE);
    g_free(s->screen->listen6Interface);
    s->screen->listen6Interface = NULL;
    rfbScreenCleanup(s->screen);
  }
  nb_vnc_qemu_free(s->qemu);
  g_free(s->pixels);
  g_free(s->tiles);
  g_free(s->strips);
  g_ptr_array_unref(s->retired);
  g_free(s->passwords[0]);
  g_hash_table_unref(s->pressed);
  g_mutex_clear(&s->input_lock);
  g_mutex_clear(&s->clients_lock);
  g_mutex_clear(&s->fresh_lock);
  g_cond_clear(&s->fresh_cond);
  g_free(s);
}

unsigned
nb_vnc_server_port(NbVncServer *s)
{
  return s->port;
}

unsigned
nb_vnc_server_clients(NbVncServer *s)
{
  g_mutex_lock(&s->clients_lock);
  unsigned n = s->clients;
  g_mutex_unlock(&s->clients_lock);
  return n;
}
