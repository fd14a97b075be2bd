/* The search for moved content (remote/vnc-motion.c) on pictures like the
 * ones users make: a scrolling text console, a window dragged over a
 * gradient desktop; and on what must not be taken for a move: noise, a
 * changed picture, a stale hint, sources off the screen, tiny screens.
 * Every tile reported is checked pixel by pixel here. The buffers are
 * allocated to their exact sizes so that the ASan build catches any read
 * outside them. */
#include "vnc-motion.h"

#include <glib.h>
#include <string.h>

#define PAD 12   /* bytes past each new line, so the stride is not width * 4 */

typedef struct {
  unsigned width, height;
  uint32_t *old_pixels;   /* width * height, exactly */
  uint32_t *next;         /* the new picture, built as pixels first */
  uint8_t *new_bytes;     /* then laid out with its stride */
  size_t stride;
  uint8_t *tiles;
  unsigned tiles_x, tiles_y;
} Pics;

static Pics *
pics_new(unsigned width, unsigned height)
{
  Pics *p = g_new0(Pics, 1);
  p->width = width;
  p->height = height;
  p->old_pixels = g_malloc0((size_t)width * height * 4 + (width * height == 0));
  p->next = g_malloc0((size_t)width * height * 4 + (width * height == 0));
  p->stride = (size_t)width * 4 + PAD;
  nb_vnc_motion_tiles(width, height, &p->tiles_x, &p->tiles_y);
  p->tiles = g_malloc0((size_t)p->tiles_x * p->tiles_y + 1);
  return p;
}

static void
pics_free(Pics *p)
{
  g_free(p->old_pixels);
  g_free(p->next);
  g_free(p->new_bytes);
  g_free(p->tiles);
  g_free(p);
}

static bool
tile_set(const Pics *p, unsigned tx, unsigned ty)
{
  return p->tiles[ty * p->tiles_x + tx] != 0;
}

/* How long the last search took, in microseconds (printed, not checked:
 * a loaded or emulated machine is many times slower). */
static gint64 last_us;

/* Runs the search on the whole screen as damage (or on rects). */
static unsigned
find(Pics *p, const NbFbRect *rects, unsigned n, NbVncMove hint, NbVncMove *mv)
{
  g_free(p->new_bytes);
  /* The last line is exactly width pixels long: nothing after it. */
  size_t size = p->height ? p->stride * (p->height - 1) + (size_t)p->width * 4 : 1;
  p->new_bytes = g_malloc0(size);
  for (unsigned y = 0; y < p->height; y++)
    memcpy(p->new_bytes + y * p->stride, p->next + (size_t)y * p->width, (size_t)p->width * 4);
  NbFbRect all = { 0, 0, p->width, p->height };
  if (rects == NULL) {
    rects = &all;
    n = 1;
  }
  NbVncPictures pics = { p->old_pixels, p->new_bytes, p->stride, p->width, p->height };
  gint64 t0 = g_get_monotonic_time();
  unsigned found = nb_vnc_motion_find(&pics, rects, n, hint, mv, p->tiles);
  last_us = g_get_monotonic_time() - t0;
  /* Every tile reported is an exact move with its source on the screen. */
  unsigned set = 0;
  for (unsigned ty = 0; ty < p->tiles_y; ty++) {
    for (unsigned tx = 0; tx < p->tiles_x; tx++) {
      if (!p->tiles[ty * p->tiles_x + tx])
        continue;
      set++;
      unsigned x0 = tx * NB_FB_TILE_WIDTH, y0 = ty * NB_FB_TILE_HEIGHT;
      unsigned x1 = MIN(x0 + NB_FB_TILE_WIDTH, p->width), y1 = MIN(y0 + NB_FB_TILE_HEIGHT, p->height);
      for (unsigned y = y0; y < y1; y++) {
        for (unsigned x = x0; x < x1; x++) {
          long sx = (long)x - mv->dx, sy = (long)y - mv->dy;
          g_assert_true(sx >= 0 && sy >= 0 && sx < p->width && sy < p->height);
          g_assert_cmphex(p->next[(size_t)y * p->width + x], ==,
                          p->old_pixels[(size_t)sy * p->width + sx]);
        }
      }
    }
  }
  g_assert_cmpuint(set, ==, found);
  /* So is every edge strip, outside the tiles that moved. */
  NbFbRect *strips = g_new(NbFbRect, p->tiles_x * p->tiles_y + 1);
  unsigned n_strips = nb_vnc_motion_edges(&pics, rects, n, *mv, p->tiles, strips);
  g_assert_true(found > 0 || n_strips == 0);
  for (unsigned i = 0; i < n_strips; i++) {
    const NbFbRect *e = &strips[i];
    g_assert_true(e->width > 0 && e->height > 0 && e->x + e->width <= p->width &&
                  e->y + e->height <= p->height);
    g_assert_false(tile_set(p, e->x / NB_FB_TILE_WIDTH, e->y / NB_FB_TILE_HEIGHT));
    for (unsigned y = e->y; y < e->y + e->height; y++)
      for (unsigned x = e->x; x < e->x + e->width; x++) {
        long sx = (long)x - mv->dx, sy = (long)y - mv->dy;
        g_assert_true(sx >= 0 && sy >= 0 && sx < p->width && sy < p->height);
        g_assert_cmphex(p->next[(size_t)y * p->width + x], ==,
                        p->old_pixels[(size_t)sy * p->width + sx]);
      }
  }
  g_free(strips);
  if (found == 0) {
    g_assert_cmpint(mv->dx, ==, 0);
    g_assert_cmpint(mv->dy, ==, 0);
  } else {
    g_assert_cmpuint(found, >=, NB_VNC_MOTION_MIN_TILES);
  }
  return found;
}

/* Text lines with no space anywhere (so no two are blank in the same
 * place: blank tiles are, exactly, a move of any other blank tile). */
static bool dense;

/* A line of made-up text: 8x16 cells, each a random glyph (two colours)
 * or a space, some lines indented or empty, as a console shows them. */
static void
draw_text_line(uint32_t *pix, unsigned width, unsigned y0, GRand *r)
{
  unsigned indent = dense ? 0 : g_rand_int_range(r, 0, 4) * 2;
  unsigned len = dense ? width / 8
                 : g_rand_int_range(r, 0, 6) == 0 ? 0u : (unsigned)g_rand_int_range(r, 10, (gint32)(width / 8));
  for (unsigned c = 0; c < width / 8; c++) {
    bool glyph = c >= indent && c < indent + len && (dense || g_rand_int_range(r, 0, 6) != 0);
    uint32_t fg = g_rand_boolean(r) ? 0xaaaaaa : 0x55ff55;
    uint32_t bits[16];
    for (unsigned k = 0; k < 16; k++)
      bits[k] = glyph && k > 2 && k < 14 ? g_rand_int(r) : 0;
    for (unsigned k = 0; k < 16; k++)
      for (unsigned b = 0; b < 8; b++)
        pix[(size_t)(y0 + k) * width + c * 8 + b] = bits[k] >> b & 1 ? fg : 0;
  }
}

static void
scroll_text(unsigned lines_up)
{
  const unsigned w = 1024, h = 768, rows = h / 16;
  Pics *p = pics_new(w, h);
  GRand *r = g_rand_new_with_seed(7);
  for (unsigned row = 0; row < rows; row++)
    draw_text_line(p->old_pixels, w, row * 16, r);
  memcpy(p->next, p->old_pixels + (size_t)lines_up * 16 * w, (size_t)(rows - lines_up) * 16 * w * 4);
  for (unsigned row = rows - lines_up; row < rows; row++)
    draw_text_line(p->next, w, row * 16, r);
  NbVncMove mv;
  unsigned n = find(p, NULL, 0, (NbVncMove){ 0, 0 }, &mv);
  g_test_message("%u lines up: %u tiles in %" G_GINT64_FORMAT " us", lines_up, n, last_us);
  g_assert_cmpuint(find(p, NULL, 0, mv, &mv), ==, n);
  g_test_message("again, with the move as hint: %" G_GINT64_FORMAT " us", last_us);
  g_assert_cmpint(mv.dx, ==, 0);
  g_assert_cmpint(mv.dy, ==, -(int)lines_up * 16);
  /* Every tile but those holding the new lines at the bottom. */
  unsigned moved_rows = (h - lines_up * 16) / NB_FB_TILE_HEIGHT;
  for (unsigned ty = 0; ty < p->tiles_y; ty++)
    for (unsigned tx = 0; tx < p->tiles_x; tx++)
      g_assert_cmpint(tile_set(p, tx, ty), ==, ty < moved_rows);
  g_rand_free(r);
  pics_free(p);
}

static void
test_scroll_line(void)
{
  scroll_text(1);
}

/* Farther than the 2-D search looks: the line hashes find it. */
static void
test_scroll_page(void)
{
  scroll_text(20);
}

/* The benchmark's desktop: a vertical blue gradient with a window (frame,
 * title bar, a white page of text). */
static void
draw_desktop(uint32_t *pix, unsigned w, unsigned h, unsigned wx, unsigned wy, unsigned ww,
             unsigned wh, guint32 seed)
{
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = 0; x < w; x++)
      pix[(size_t)y * w + x] = 0x102040 + (y * 150 / h);
  GRand *r = g_rand_new_with_seed(seed);
  for (unsigned y = 0; y < wh; y++) {
    for (unsigned x = 0; x < ww; x++) {
      uint32_t c;
      if (x == 0 || y == 0 || x == ww - 1 || y == wh - 1)
        c = 0x404040;
      else if (y < 20)
        c = (x / 6 + y / 4) % 7 == 0 && x < 200 ? 0xffffff : 0x2050c0;
      else
        c = 0xffffff;
      pix[(size_t)(wy + y) * w + wx + x] = c;
    }
  }
  for (unsigned row = 0; row < (wh - 30) / 16; row++)
    for (unsigned c = 1; c < (ww - 16) / 8; c++)
      if (g_rand_int_range(r, 0, 5) != 0)
        for (unsigned k = 3; k < 14; k++) {
          guint32 bits = g_rand_int(r);
          for (unsigned b = 0; b < 8; b++)
            if (bits >> b & 1)
              pix[(size_t)(wy + 24 + row * 16 + k) * w + wx + c * 8 + b] = 0;
        }
  g_rand_free(r);
}

/* The damage of a window move: the tiles under its old and new places. */
static void
window_damage(unsigned x0, unsigned y0, unsigned x1, unsigned y1, unsigned w, unsigned h,
              NbFbRect *rect)
{
  unsigned tx0 = x0 / 32 * 32, ty0 = y0 / 32 * 32;
  unsigned tx1 = MIN((x1 + 31) / 32 * 32, w), ty1 = MIN((y1 + 31) / 32 * 32, h);
  *rect = (NbFbRect){ tx0, ty0, tx1 - tx0, ty1 - ty0 };
}

static void
test_window(void)
{
  const unsigned w = 1024, h = 768, ww = 480, wh = 320, wx = 100, wy = 80;
  Pics *p = pics_new(w, h);
  draw_desktop(p->old_pixels, w, h, wx, wy, ww, wh, 3);
  draw_desktop(p->next, w, h, wx + 4, wy + 2, ww, wh, 3);
  NbFbRect damage;
  window_damage(wx, wy, wx + 4 + ww, wy + 2 + wh, w, h, &damage);
  NbVncMove mv;
  unsigned n = find(p, &damage, 1, (NbVncMove){ 0, 0 }, &mv);
  g_test_message("window (4,2): %u tiles in %" G_GINT64_FORMAT " us", n, last_us);
  g_assert_cmpint(mv.dx, ==, 4);
  g_assert_cmpint(mv.dy, ==, 2);
  /* Every tile inside the window's new place whose source is inside its
   * old place; nothing outside the damage. */
  unsigned interior = 0;
  for (unsigned ty = 0; ty < p->tiles_y; ty++) {
    for (unsigned tx = 0; tx < p->tiles_x; tx++) {
      unsigned x0 = tx * 32, y0 = ty * 32, x1 = x0 + 32, y1 = y0 + 32;
      bool inside = x0 >= wx + 4 && y0 >= wy + 2 && x1 <= wx + 4 + ww && y1 <= wy + 2 + wh;
      bool in_damage = x0 >= damage.x && y0 >= damage.y && x1 <= damage.x + damage.width &&
                       y1 <= damage.y + damage.height;
      if (inside) {
        interior++;
        g_assert_true(tile_set(p, tx, ty));
      }
      if (!in_damage)
        g_assert_false(tile_set(p, tx, ty));
    }
  }
  g_assert_cmpuint(interior, >=, 120);
  g_assert_cmpuint(n, >=, interior);

  /* The window's edges in the tiles they cut (find() checked that they
   * are exact): with them nearly all of the window is copied. */
  NbFbRect *strips = g_new(NbFbRect, p->tiles_x * p->tiles_y);
  NbVncPictures pics = { p->old_pixels, p->new_bytes, p->stride, w, h };
  gint64 t0 = g_get_monotonic_time();
  unsigned n_strips = nb_vnc_motion_edges(&pics, &damage, 1, mv, p->tiles, strips);
  gint64 edges_us = g_get_monotonic_time() - t0;
  uint8_t *covered = g_malloc0((size_t)w * h);
  for (unsigned ty = 0; ty < p->tiles_y; ty++)
    for (unsigned tx = 0; tx < p->tiles_x; tx++)
      if (tile_set(p, tx, ty))
        for (unsigned y = ty * 32; y < MIN(ty * 32 + 32, h); y++)
          memset(covered + (size_t)y * w + tx * 32, 1, MIN(32u, w - tx * 32));
  for (unsigned i = 0; i < n_strips; i++) {
    const NbFbRect *r = &strips[i];
    g_assert_cmpuint(r->x / 32, ==, (r->x + r->width - 1) / 32);   /* inside one tile */
    g_assert_cmpuint(r->y / 32, ==, (r->y + r->height - 1) / 32);
    for (unsigned y = r->y; y < r->y + r->height; y++)
      memset(covered + (size_t)y * w + r->x, 1, r->width);
  }
  unsigned in_window = 0;
  for (unsigned y = wy + 2; y < wy + 2 + wh; y++)
    for (unsigned x = wx + 4; x < wx + 4 + ww; x++)
      in_window += covered[(size_t)y * w + x];
  g_test_message("window: %u edge strips in %" G_GINT64_FORMAT " us; %u of its %u pixels copied",
                 n_strips, edges_us, in_window, ww * wh);
  g_assert_cmpuint(in_window, >=, ww * wh * 95 / 100);
  g_free(covered);
  g_free(strips);

  /* A stale hint (the previous frame's move was another one) is not taken. */
  n = find(p, &damage, 1, (NbVncMove){ -4, 2 }, &mv);
  g_assert_cmpint(mv.dx, ==, 4);
  g_assert_cmpint(mv.dy, ==, 2);
  /* The hint alone finds it too. */
  g_assert_cmpuint(find(p, &damage, 1, (NbVncMove){ 4, 2 }, &mv), ==, n);
  g_test_message("again, with the move as hint: %" G_GINT64_FORMAT " us", last_us);
  pics_free(p);
}

static void
fill_noise(uint32_t *pix, size_t n, guint32 seed)
{
  GRand *r = g_rand_new_with_seed(seed);
  for (size_t i = 0; i < n; i++)
    pix[i] = g_rand_int(r) & 0xffffff;
  g_rand_free(r);
}

static void
test_no_move(void)
{
  const unsigned w = 640, h = 480;
  Pics *p = pics_new(w, h);
  NbVncMove mv;
  /* Noise, then other noise. */
  fill_noise(p->old_pixels, (size_t)w * h, 1);
  fill_noise(p->next, (size_t)w * h, 2);
  g_assert_cmpuint(find(p, NULL, 0, (NbVncMove){ 0, 0 }, &mv), ==, 0);
  /* Other text in the same place, with the last move as hint. */
  dense = true;
  GRand *r = g_rand_new_with_seed(5);
  for (unsigned row = 0; row < h / 16; row++) {
    draw_text_line(p->old_pixels, w, row * 16, r);
    draw_text_line(p->next, w, row * 16, r);
  }
  g_rand_free(r);
  dense = false;
  g_assert_cmpuint(find(p, NULL, 0, (NbVncMove){ 0, -16 }, &mv), ==, 0);
  /* A stale hint on a window that did not move but changed its page. */
  Pics *q = pics_new(1024, 768);
  draw_desktop(q->old_pixels, 1024, 768, 100, 80, 480, 320, 3);
  draw_desktop(q->next, 1024, 768, 100, 80, 480, 320, 4);
  NbFbRect damage = { 96, 96, 512, 320 };
  g_assert_cmpuint(find(q, &damage, 1, (NbVncMove){ 4, 2 }, &mv), ==, 0);
  /* No damage at all, and a picture that did not change. */
  g_assert_cmpuint(find(q, &damage, 0, (NbVncMove){ 4, 2 }, &mv), ==, 0);
  memcpy(q->next, q->old_pixels, (size_t)1024 * 768 * 4);
  g_assert_cmpuint(find(q, &damage, 1, (NbVncMove){ 4, 2 }, &mv), ==, 0);
  pics_free(q);
  pics_free(p);
}

/* Content that moved towards an edge: tiles whose source would be off the
 * screen are not reported. */
static void
test_source_off_screen(void)
{
  const unsigned w = 300, h = 200;   /* tiles clipped at both edges */
  Pics *p = pics_new(w, h);
  fill_noise(p->old_pixels, (size_t)w * h, 9);
  /* Moved left by 8: new (x, y) = old (x + 8, y); the last 8 columns new. */
  for (unsigned y = 0; y < h; y++) {
    memcpy(p->next + (size_t)y * w, p->old_pixels + (size_t)y * w + 8, (size_t)(w - 8) * 4);
    for (unsigned x = w - 8; x < w; x++)
      p->next[(size_t)y * w + x] = 0x123456;
  }
  NbVncMove mv;
  g_assert_cmpuint(find(p, NULL, 0, (NbVncMove){ 0, 0 }, &mv), ==, (p->tiles_x - 1) * p->tiles_y);
  g_assert_cmpint(mv.dx, ==, -8);
  g_assert_cmpint(mv.dy, ==, 0);
  for (unsigned ty = 0; ty < p->tiles_y; ty++)
    g_assert_false(tile_set(p, p->tiles_x - 1, ty));
  /* Moved down by 5 (the top 5 lines new): the top tile row's source is
   * above the screen. */
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = 0; x < w; x++)
      p->next[(size_t)y * w + x] = y < 5 ? 0 : p->old_pixels[(size_t)(y - 5) * w + x];
  g_assert_cmpuint(find(p, NULL, 0, (NbVncMove){ 0, 0 }, &mv), ==, p->tiles_x * (p->tiles_y - 1));
  g_assert_cmpint(mv.dy, ==, 5);
  for (unsigned tx = 0; tx < p->tiles_x; tx++)
    g_assert_false(tile_set(p, tx, 0));
  /* Even a hint pointing off the screen is harmless. */
  g_assert_cmpuint(find(p, NULL, 0, (NbVncMove){ 100000, -100000 }, &mv), ==,
                   p->tiles_x * (p->tiles_y - 1));
  pics_free(p);
}

/* Screens smaller than a tile or than a probe, and damage that lies
 * outside the screen or overflows: nothing is read outside the buffers. */
static void
test_tiny_screens(void)
{
  static const unsigned sizes[][2] = { { 1, 1 }, { 5, 3 }, { 15, 40 }, { 20, 10 }, { 31, 33 },
                                       { 40, 40 }, { 64, 64 }, { 1, 300 }, { 300, 1 } };
  for (unsigned k = 0; k < G_N_ELEMENTS(sizes); k++) {
    unsigned w = sizes[k][0], h = sizes[k][1];
    Pics *p = pics_new(w, h);
    fill_noise(p->old_pixels, (size_t)w * h, k);
    /* Moved by (1, 1), and plain (every move matches a plain picture). */
    for (unsigned y = 0; y < h; y++)
      for (unsigned x = 0; x < w; x++)
        p->next[(size_t)y * w + x] = x && y ? p->old_pixels[(size_t)(y - 1) * w + x - 1] : 7;
    NbVncMove mv;
    NbFbRect rects[] = { { 0, 0, w, h }, { w, 0, 10, 10 }, { 0, h, 10, 10 },
                         { w - 1, h - 1, UINT_MAX, UINT_MAX }, { UINT_MAX, UINT_MAX, 5, 5 } };
    find(p, rects, G_N_ELEMENTS(rects), (NbVncMove){ 1, 1 }, &mv);
    find(p, rects, G_N_ELEMENTS(rects), (NbVncMove){ -1, -1 }, &mv);
    memset(p->old_pixels, 0, (size_t)w * h * 4);
    memset(p->next, 0, (size_t)w * h * 4);
    find(p, rects, G_N_ELEMENTS(rects), (NbVncMove){ 3, 0 }, &mv);
    pics_free(p);
  }
  /* No screen at all. */
  Pics *p = pics_new(0, 0);
  NbVncMove mv;
  g_assert_cmpuint(find(p, NULL, 0, (NbVncMove){ 0, 0 }, &mv), ==, 0);
  pics_free(p);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/vnc-motion/scroll-line", test_scroll_line);
  g_test_add_func("/vnc-motion/scroll-page", test_scroll_page);
  g_test_add_func("/vnc-motion/window", test_window);
  g_test_add_func("/vnc-motion/no-move", test_no_move);
  g_test_add_func("/vnc-motion/source-off-screen", test_source_off_screen);
  g_test_add_func("/vnc-motion/tiny-screens", test_tiny_screens);
  return g_test_run();
}
