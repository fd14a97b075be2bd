#include "hw/framebuffer.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

G_DEFINE_QUARK(nb-framebuffer-error-quark, nb_framebuffer_error)

typedef struct {
  guint id;
  NbFbListener listener;
  void *ctx;
} Listener;

struct NbFramebuffer {
  char *name;
  int fd;
  uint8_t *data;
  uint64_t size;

  GMutex lock;              /* mode and mode_gen */
  NbFbMode mode;
  guint64 mode_gen;

  NbFbDirtyLogFunc dirty_log;
  void *dirty_ctx;

  /* Consumer thread only. */
  guint64 seen_gen;
  NbFbMode shown;           /* the mode the shadow has */
  uint8_t *shadow;          /* width * height * bytes_per_pixel, packed */
  unsigned long *bitmap;
  size_t n_pages;
  uint8_t *tile_dirty;
  GArray *rects;            /* NbFbRect */
  GArray *listeners;        /* Listener */
  guint next_id;
  unsigned refreshes;
  guint64 missed_by_log;
};

unsigned
nb_fb_format_bytes_per_pixel(NbFbFormat format)
{
  switch (format) {
  case NB_FB_FORMAT_XRGB8888: return 4;
  case NB_FB_FORMAT_RGB888: return 3;
  case NB_FB_FORMAT_RGB565:
  case NB_FB_FORMAT_XRGB1555: return 2;
  }
  return 0;
}

bool
nb_fb_mode_valid(const NbFbMode *m, uint64_t size)
{
  if (!m->enabled)
    return true;
  unsigned bpp = nb_fb_format_bytes_per_pixel(m->format);
  if (bpp == 0 || bpp != m->bytes_per_pixel)
    return false;
  if (m->width == 0 || m->height == 0 || m->width > NB_FB_MAX_WIDTH || m->height > NB_FB_MAX_HEIGHT)
    return false;
  uint64_t line = (uint64_t)m->width * bpp;
  if (m->stride < line)
    return false;
  /* All in 64 bits: width, height and stride are bounded, so nothing wraps. */
  uint64_t end = m->offset + (uint64_t)(m->height - 1) * m->stride + line;
  return m->offset < size && end <= size;
}

NbFramebuffer *
nb_framebuffer_new(const char *name, uint64_t size, GError **error)
{
  if (size == 0 || size % NB_FB_PAGE_SIZE != 0) {
    g_set_error(error, NB_FRAMEBUFFER_ERROR, NB_FRAMEBUFFER_ERROR_FAILED,
                "framebuffer %s: size %" G_GUINT64_FORMAT " is not a positive multiple of %u",
                name, size, NB_FB_PAGE_SIZE);
    return NULL;
  }
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
    int err = errno;
    g_set_error(error, NB_FRAMEBUFFER_ERROR, NB_FRAMEBUFFER_ERROR_FAILED,
                "cannot create the %" G_GUINT64_FORMAT " MiB framebuffer %s: %s — free some "
                "memory or give the display less video memory",
                size >> 20, name, g_strerror(err));
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  /* Its size is fixed: a consumer in another process may rely on that. */
  (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    g_set_error(error, NB_FRAMEBUFFER_ERROR, NB_FRAMEBUFFER_ERROR_FAILED,
                "cannot map the framebuffer %s: %s", name, g_strerror(err));
    close(fd);
    return NULL;
  }
  NbFramebuffer *fb = g_new0(NbFramebuffer, 1);
  fb->name = g_strdup(name);
  fb->fd = fd;
  fb->data = p;
  fb->size = size;
  g_mutex_init(&fb->lock);
  fb->n_pages = size / NB_FB_PAGE_SIZE;
  fb->bitmap = g_new0(unsigned long, (fb->n_pages + 8 * sizeof(unsigned long) - 1) /
                                         (8 * sizeof(unsigned long)));
  fb->rects = g_array_new(FALSE, FALSE, sizeof(NbFbRect));
  fb->listeners = g_array_new(FALSE, FALSE, sizeof(Listener));
  fb->next_id = 1;
  return fb;
}

void
nb_framebuffer_free(NbFramebuffer *fb)
{
  if (fb == NULL)
    return;
  munmap(fb->data, fb->size);
  close(fb->fd);
  g_mutex_clear(&fb->lock);
  g_free(fb->shadow);
  g_free(fb->bitmap);
  g_free(fb->tile_dirty);
  g_array_free(fb->rects, TRUE);
  g_array_free(fb->listeners, TRUE);
  g_free(fb->name);
  g_free(fb);
}

int
nb_framebuffer_fd(NbFramebuffer *fb)
{
  return fb->fd;
}

uint8_t *
nb_framebuffer_data(NbFramebuffer *fb)
{
  return fb->data;
}

uint64_t
nb_framebuffer_size(NbFramebuffer *fb)
{
  return fb->size;
}

void
nb_framebuffer_set_mode(NbFramebuffer *fb, const NbFbMode *mode)
{
  NbFbMode m = *mode;
  if (!m.enabled || !nb_fb_mode_valid(&m, fb->size))
    m = (NbFbMode){ .enabled = false, .format = NB_FB_FORMAT_XRGB8888, .bytes_per_pixel = 4 };
  g_mutex_lock(&fb->lock);
  if (memcmp(&m, &fb->mode, sizeof m) != 0) {
    fb->mode = m;
    fb->mode_gen++;
  }
  g_mutex_unlock(&fb->lock);
}

void
nb_framebuffer_invalidate(NbFramebuffer *fb)
{
  g_mutex_lock(&fb->lock);
  fb->mode_gen++;
  g_mutex_unlock(&fb->lock);
}

void
nb_framebuffer_get_mode(NbFramebuffer *fb, NbFbMode *mode)
{
  g_mutex_lock(&fb->lock);
  *mode = fb->mode;
  g_mutex_unlock(&fb->lock);
}

void
nb_framebuffer_set_dirty_log(NbFramebuffer *fb, NbFbDirtyLogFunc func, void *ctx)
{
  fb->dirty_log = func;
  fb->dirty_ctx = ctx;
}

guint
nb_framebuffer_add_listener(NbFramebuffer *fb, const NbFbListener *listener, void *ctx)
{
  Listener l = { fb->next_id++, *listener, ctx };
  g_array_append_val(fb->listeners, l);
  return l.id;
}

void
nb_framebuffer_remove_listener(NbFramebuffer *fb, guint id)
{
  for (guint i = 0; i < fb->listeners->len; i++) {
    if (g_array_index(fb->listeners, Listener, i).id == id) {
      g_array_remove_index(fb->listeners, i);
      return;
    }
  }
}

static void
notify_mode(NbFramebuffer *fb, const NbFbMode *mode)
{
  for (guint i = 0; i < fb->listeners->len; i++) {
    Listener *l = &g_array_index(fb->listeners, Listener, i);
    if (l->listener.mode_changed)
      l->listener.mode_changed(l->ctx, mode);
  }
}

static void
notify_damage(NbFramebuffer *fb)
{
  if (fb->rects->len == 0)
    return;
  for (guint i = 0; i < fb->listeners->len; i++) {
    Listener *l = &g_array_index(fb->listeners, Listener, i);
    if (l->listener.damage)
      l->listener.damage(l->ctx, (const NbFbRect *)fb->rects->data, fb->rects->len);
  }
}

/* Whether any page under [off, off + len) is marked in the bitmap. */
static bool
range_dirty(const unsigned long *bitmap, uint64_t off, uint64_t len)
{
  const unsigned bits = 8 * sizeof(unsigned long);
  for (uint64_t page = off / NB_FB_PAGE_SIZE; page <= (off + len - 1) / NB_FB_PAGE_SIZE; page++)
    if (bitmap[page / bits] & (1ul << (page % bits)))
      return true;
  return false;
}

/* Copies the visible picture into the shadow. */
static void
copy_all(NbFramebuffer *fb, const NbFbMode *m)
{
  size_t line = (size_t)m->width * m->bytes_per_pixel;
  for (unsigned y = 0; y < m->height; y++)
    memcpy(fb->shadow + y * line, fb->data + m->offset + (uint64_t)y * m->stride, line);
}

/* Adds the run of tiles [tx0, tx1) in tile row ty as a rectangle, joining it
 * to the rectangle just above when that has the same columns. */
static void
add_run(NbFramebuffer *fb, const NbFbMode *m, unsigned tx0, unsigned tx1, unsigned ty)
{
  NbFbRect r = {
    .x = tx0 * NB_FB_TILE_WIDTH,
    .y = ty * NB_FB_TILE_HEIGHT,
  };
  r.width = MIN(tx1 * NB_FB_TILE_WIDTH, m->width) - r.x;
  r.height = MIN((ty + 1) * NB_FB_TILE_HEIGHT, m->height) - r.y;
  for (guint i = 0; i < fb->rects->len; i++) {
    NbFbRect *above = &g_array_index(fb->rects, NbFbRect, i);
    if (above->x == r.x && above->width == r.width && above->y + above->height == r.y) {
      above->height += r.height;
      return;
    }
  }
  g_array_append_val(fb->rects, r);
}

unsigned
nb_framebuffer_refresh(NbFramebuffer *fb)
{
  NbFbMode m;
  g_mutex_lock(&fb->lock);
  m = fb->mode;
  guint64 gen = fb->mode_gen;
  g_mutex_unlock(&fb->lock);

  bool have_log = fb->dirty_log && fb->dirty_log(fb->dirty_ctx, fb->bitmap, fb->n_pages);
  bool full_check = ++fb->refreshes % NB_FB_FULL_CHECK_EVERY == 0;
  g_array_set_size(fb->rects, 0);

  if (gen != fb->seen_gen) {
    fb->seen_gen = gen;
    fb->shown = m;
    g_clear_pointer(&fb->shadow, g_free);
    g_clear_pointer(&fb->tile_dirty, g_free);
    if (m.enabled) {
      fb->shadow = g_malloc((size_t)m.width * m.height * m.bytes_per_pixel);
      fb->tile_dirty = g_malloc0(((m.width + NB_FB_TILE_WIDTH - 1) / NB_FB_TILE_WIDTH));
      copy_all(fb, &m);
    }
    notify_mode(fb, &m);
    if (m.enabled) {
      NbFbRect all = { 0, 0, m.width, m.height };
      g_array_append_val(fb->rects, all);
      notify_damage(fb);
    }
    return fb->rects->len;
  }
  if (!m.enabled)
    return 0;

  const unsigned bpp = m.bytes_per_pixel;
  const size_t shadow_line = (size_t)m.width * bpp;
  const unsigned tiles_x = (m.width + NB_FB_TILE_WIDTH - 1) / NB_FB_TILE_WIDTH;
  const unsigned tiles_y = (m.height + NB_FB_TILE_HEIGHT - 1) / NB_FB_TILE_HEIGHT;
  for (unsigned ty = 0; ty < tiles_y; ty++) {
    unsigned y0 = ty * NB_FB_TILE_HEIGHT, y1 = MIN(y0 + NB_FB_TILE_HEIGHT, m.height);
    memset(fb->tile_dirty, 0, tiles_x);
    for (unsigned tx = 0; tx < tiles_x; tx++) {
      unsigned x0 = tx * NB_FB_TILE_WIDTH, x1 = MIN(x0 + NB_FB_TILE_WIDTH, m.width);
      size_t len = (size_t)(x1 - x0) * bpp;
      for (unsigned y = y0; y < y1; y++) {
        uint64_t off = m.offset + (uint64_t)y * m.stride + (uint64_t)x0 * bpp;
        bool logged = !have_log || range_dirty(fb->bitmap, off, len);
        if (!logged && !full_check)
          continue;
        uint8_t *shadow = fb->shadow + y * shadow_line + (size_t)x0 * bpp;
        if (memcmp(shadow, fb->data + off, len) != 0) {
          memcpy(shadow, fb->data + off, len);
          if (!logged && !fb->tile_dirty[tx]) {
            if (fb->missed_by_log++ == 0)
              g_message("framebuffer %s: the dirty log missed a change the guest made; "
                        "the picture is checked in full every %u refreshes",
                        fb->name, NB_FB_FULL_CHECK_EVERY);
          }
          fb->tile_dirty[tx] = 1;
        }
      }
    }
    for (unsigned tx = 0; tx < tiles_x;) {
      if (!fb->tile_dirty[tx]) {
        tx++;
        continue;
      }
      unsigned start = tx;
      while (tx < tiles_x && fb->tile_dirty[tx])
        tx++;
      add_run(fb, &m, start, tx, ty);
    }
  }
  notify_damage(fb);
  return fb->rects->len;
}

guint64
nb_framebuffer_missed_by_log(NbFramebuffer *fb)
{
  return fb->missed_by_log;
}

uint32_t
nb_fb_pixel_to_rgb(NbFbFormat format, const uint8_t *p)
{
  switch (format) {
  case NB_FB_FORMAT_XRGB8888:
  case NB_FB_FORMAT_RGB888:
    return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
  case NB_FB_FORMAT_RGB565: {
    unsigned v = p[0] | p[1] << 8;
    unsigned r = (v >> 11) & 0x1f, g = (v >> 5) & 0x3f, b = v & 0x1f;
    return (uint32_t)((r << 3 | r >> 2) << 16 | (g << 2 | g >> 4) << 8 | (b << 3 | b >> 2));
  }
  case NB_FB_FORMAT_XRGB1555: {
    unsigned v = p[0] | p[1] << 8;
    unsigned r = (v >> 10) & 0x1f, g = (v >> 5) & 0x1f, b = v & 0x1f;
    return (uint32_t)((r << 3 | r >> 2) << 16 | (g << 3 | g >> 2) << 8 | (b << 3 | b >> 2));
  }
  }
  return 0;
}
