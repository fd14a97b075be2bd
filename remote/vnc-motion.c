#include "vnc-motion.h"

#include <glib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_LEN      16   /* pixels in a probe segment */
#define MAX_PROBES     8
#define PROBE_MATCHES  4    /* a probe found more often than this is ambiguous */
#define STRIP_WIDTH    128  /* pixels of each line hashed for scrolls */
#define ROW_MATCHES    4    /* likewise for a line's hash */
#define MAX_CANDIDATES 6

/* tiles[] while searching: 0 not damaged, DAMAGED, MOVED (then 1 on return). */
enum { DAMAGED = 1, MOVED = 2 };

typedef struct {
  const NbVncPictures *p;
  unsigned tiles_x, tiles_y;
  uint8_t *tiles;
  unsigned n_damaged;
  unsigned top, bottom;   /* lines spanned by the damaged tiles */
  unsigned left, right;   /* columns likewise */
} Search;

static const uint8_t *
new_at(const NbVncPictures *p, unsigned x, unsigned y)
{
  return p->new_pixels + (size_t)y * p->new_stride + (size_t)x * 4;
}

static const uint32_t *
old_at(const NbVncPictures *p, unsigned x, unsigned y)
{
  return p->old_pixels + (size_t)y * p->width + x;
}

void
nb_vnc_motion_tiles(unsigned width, unsigned height, unsigned *tiles_x, unsigned *tiles_y)
{
  *tiles_x = (width + NB_FB_TILE_WIDTH - 1) / NB_FB_TILE_WIDTH;
  *tiles_y = (height + NB_FB_TILE_HEIGHT - 1) / NB_FB_TILE_HEIGHT;
}

static void
tile_box(const Search *s, unsigned i, unsigned *x0, unsigned *y0, unsigned *x1, unsigned *y1)
{
  *x0 = (i % s->tiles_x) * NB_FB_TILE_WIDTH;
  *y0 = (i / s->tiles_x) * NB_FB_TILE_HEIGHT;
  *x1 = MIN(*x0 + NB_FB_TILE_WIDTH, s->p->width);
  *y1 = MIN(*y0 + NB_FB_TILE_HEIGHT, s->p->height);
}

static bool
line_moved(const NbVncPictures *p, unsigned x0, unsigned x1, unsigned y, NbVncMove mv)
{
  return memcmp(new_at(p, x0, y), old_at(p, (unsigned)((int)x0 - mv.dx), (unsigned)((int)y - mv.dy)),
                (size_t)(x1 - x0) * 4) == 0;
}

/* Whether tile i moved by mv: on every line (full), or on its first,
 * middle and last line (the quick look that ranks candidates). */
static bool
tile_moved(const Search *s, unsigned i, NbVncMove mv, bool full)
{
  const NbVncPictures *p = s->p;
  unsigned x0, y0, x1, y1;
  tile_box(s, i, &x0, &y0, &x1, &y1);
  if ((long long)x0 - mv.dx < 0 || (long long)y0 - mv.dy < 0 ||
      (long long)x1 - mv.dx > p->width || (long long)y1 - mv.dy > p->height)
    return false;   /* the source leaves the screen */
  if (!full)
    return line_moved(p, x0, x1, y0, mv) && line_moved(p, x0, x1, (y0 + y1) / 2, mv) &&
           line_moved(p, x0, x1, y1 - 1, mv);
  for (unsigned y = y0; y < y1; y++)
    if (!line_moved(p, x0, x1, y, mv))
      return false;
  return true;
}

/* Damaged tiles that moved by mv; with full, they are also marked. */
static unsigned
count_moved(Search *s, NbVncMove mv, bool full)
{
  unsigned n = 0;
  for (unsigned i = 0; i < s->tiles_x * s->tiles_y; i++) {
    if (s->tiles[i] && tile_moved(s, i, mv, full)) {
      n++;
      if (full)
        s->tiles[i] = MOVED;
    }
  }
  return n;
}

static void
mark_damage(Search *s, const NbFbRect *rects, unsigned n_rects)
{
  const NbVncPictures *p = s->p;
  s->top = s->left = UINT_MAX;
  s->bottom = s->right = 0;
  for (unsigned k = 0; k < n_rects; k++) {
    const NbFbRect *r = &rects[k];
    uint64_t x1 = MIN((uint64_t)r->x + r->width, p->width);
    uint64_t y1 = MIN((uint64_t)r->y + r->height, p->height);
    if (r->x >= x1 || r->y >= y1)
      continue;
    unsigned tx0 = r->x / NB_FB_TILE_WIDTH, tx1 = (unsigned)((x1 - 1) / NB_FB_TILE_WIDTH);
    unsigned ty0 = r->y / NB_FB_TILE_HEIGHT, ty1 = (unsigned)((y1 - 1) / NB_FB_TILE_HEIGHT);
    for (unsigned ty = ty0; ty <= ty1; ty++) {
      for (unsigned tx = tx0; tx <= tx1; tx++) {
        uint8_t *t = &s->tiles[ty * s->tiles_x + tx];
        s->n_damaged += *t == 0;
        *t = DAMAGED;
      }
    }
    s->top = MIN(s->top, ty0 * NB_FB_TILE_HEIGHT);
    s->bottom = MAX(s->bottom, MIN((ty1 + 1) * NB_FB_TILE_HEIGHT, p->height));
    s->left = MIN(s->left, tx0 * NB_FB_TILE_WIDTH);
    s->right = MAX(s->right, MIN((tx1 + 1) * NB_FB_TILE_WIDTH, p->width));
  }
}

/* Scrolls ------------------------------------------------------------------ */

typedef struct {
  uint64_t hash;
  unsigned y;
} LineHash;

/* FNV-1a on 64-bit words, two lanes so the multiplications overlap. */
static uint64_t
hash_line(const uint8_t *data, unsigned pixels)
{
  uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;
  unsigned i = 0;
  for (; i + 4 <= pixels; i += 4) {
    uint64_t w0, w1;
    memcpy(&w0, data + (size_t)i * 4, 8);
    memcpy(&w1, data + (size_t)i * 4 + 8, 8);
    a = (a ^ w0) * 0x100000001b3ull;
    b = (b ^ w1) * 0x100000001b3ull;
  }
  for (; i < pixels; i++) {
    uint32_t w;
    memcpy(&w, data + (size_t)i * 4, 4);
    a = (a ^ w) * 0x100000001b3ull;
  }
  return a ^ (b * 31);
}

static int
cmp_line_hash(const void *a, const void *b)
{
  const LineHash *x = a, *y = b;
  if (x->hash != y->hash)
    return x->hash < y->hash ? -1 : 1;
  return x->y < y->y ? -1 : x->y > y->y;
}

/* A vertical scroll of the damaged band: each changed line of the new
 * picture (a strip at the band's left, where text starts) looks up the old
 * lines with the same hash and votes for the distance. Lines repeated in
 * the new picture (plain background) do not vote. */
static bool
scroll_candidate(const Search *s, NbVncMove *out)
{
  const NbVncPictures *p = s->p;
  unsigned band = s->bottom - s->top;
  unsigned strip = MIN(STRIP_WIDTH, s->right - s->left);
  if (band < 2 || strip == 0)
    return false;
  LineHash *old_lines = g_new(LineHash, band);
  uint64_t *new_hash = g_new(uint64_t, band);
  unsigned *votes = g_new0(unsigned, 2 * band);   /* dy + band */
  for (unsigned i = 0; i < band; i++) {
    unsigned y = s->top + i;
    old_lines[i] = (LineHash){ hash_line((const uint8_t *)old_at(p, s->left, y), strip), y };
    new_hash[i] = hash_line(new_at(p, s->left, y), strip);
  }
  uint64_t *old_hash_by_line = g_new(uint64_t, band);
  for (unsigned i = 0; i < band; i++)
    old_hash_by_line[i] = old_lines[i].hash;
  qsort(old_lines, band, sizeof *old_lines, cmp_line_hash);
  for (unsigned i = 0; i < band; i++) {
    if (new_hash[i] == old_hash_by_line[i] || (i > 0 && new_hash[i] == new_hash[i - 1]))
      continue;
    /* The first old line with this hash. */
    unsigned lo = 0, hi = band;
    while (lo < hi) {
      unsigned mid = lo + (hi - lo) / 2;
      if (old_lines[mid].hash < new_hash[i])
        lo = mid + 1;
      else
        hi = mid;
    }
    unsigned end = lo;
    while (end < band && old_lines[end].hash == new_hash[i] && end - lo <= ROW_MATCHES)
      end++;
    if (end == lo || end - lo > ROW_MATCHES)
      continue;
    for (unsigned k = lo; k < end; k++)
      votes[(int)(s->top + i) - (int)old_lines[k].y + (int)band]++;
  }
  unsigned best = 0, best_votes = 0;
  for (unsigned k = 1; k < 2 * band; k++) {
    if (k != band && votes[k] > best_votes) {
      best = k;
      best_votes = votes[k];
    }
  }
  g_free(old_lines);
  g_free(new_hash);
  g_free(old_hash_by_line);
  g_free(votes);
  if (best_votes < 2)
    return false;
  *out = (NbVncMove){ 0, (int)best - (int)band };
  return true;
}

/* 2-D probes ------------------------------------------------------------- */

typedef struct {
  NbVncMove mv;
  unsigned votes;
} Vote;

static void
add_vote(Vote *v, unsigned *n, unsigned max, NbVncMove mv)
{
  for (unsigned i = 0; i < *n; i++) {
    if (v[i].mv.dx == mv.dx && v[i].mv.dy == mv.dy) {
      v[i].votes++;
      return;
    }
  }
  if (*n < max)
    v[(*n)++] = (Vote){ mv, 1 };
}

/* Where a probe (PROBE_LEN new pixels from (x, y)) is in the old picture
 * within NB_VNC_MOTION_RANGE, other than where it is now. Returns the
 * number found, PROBE_MATCHES + 1 meaning "too many to tell". */
static unsigned
find_probe(const NbVncPictures *p, unsigned x, unsigned y, NbVncMove *found)
{
  const uint8_t *probe = new_at(p, x, y);
  uint32_t first;
  memcpy(&first, probe, 4);
  unsigned n = 0;
  unsigned sy0 = y > NB_VNC_MOTION_RANGE ? y - NB_VNC_MOTION_RANGE : 0;
  unsigned sy1 = MIN(y + NB_VNC_MOTION_RANGE, p->height - 1);
  unsigned sx0 = x > NB_VNC_MOTION_RANGE ? x - NB_VNC_MOTION_RANGE : 0;
  unsigned sx1 = MIN(x + NB_VNC_MOTION_RANGE, p->width - PROBE_LEN);
  for (unsigned sy = sy0; sy <= sy1; sy++) {
    const uint32_t *line = old_at(p, 0, sy);
    for (unsigned sx = sx0; sx <= sx1; sx++) {
      if (line[sx] != first || memcmp(line + sx, probe, PROBE_LEN * 4) != 0)
        continue;
      if (sx == x && sy == y)
        continue;
      if (n == PROBE_MATCHES)
        return n + 1;
      found[n++] = (NbVncMove){ (int)x - (int)sx, (int)y - (int)sy };
    }
  }
  return n;
}

/* Probes are taken from the middle line of damaged tiles spread over the
 * damage: PROBE_LEN pixels around the first change of colour (a plain run
 * would be found everywhere), where the new picture differs from the old. */
static unsigned
probe_candidates(const Search *s, NbVncMove *out, unsigned max_out)
{
  const NbVncPictures *p = s->p;
  if (p->width < PROBE_LEN)
    return 0;
  Vote votes[MAX_PROBES * PROBE_MATCHES];
  unsigned n_votes = 0, probes = 0, seen = 0;
  unsigned step = MAX(1u, s->n_damaged / MAX_PROBES);
  for (unsigned i = 0; i < s->tiles_x * s->tiles_y && probes < MAX_PROBES; i++) {
    if (!s->tiles[i] || seen++ % step != 0)
      continue;
    unsigned x0, y0, x1, y1;
    tile_box(s, i, &x0, &y0, &x1, &y1);
    unsigned y = (y0 + y1) / 2;
    const uint8_t *line = new_at(p, 0, y);
    unsigned x = x0;
    while (x + 1 < x1 && memcmp(line + (size_t)x * 4, line + (size_t)(x + 1) * 4, 4) == 0)
      x++;
    if (x + 1 >= x1)
      continue;   /* one colour */
    x = x >= x0 + PROBE_LEN / 2 ? x - PROBE_LEN / 2 : x0;
    x = MIN(x, p->width - PROBE_LEN);
    if (memcmp(line + (size_t)x * 4, old_at(p, x, y), PROBE_LEN * 4) == 0)
      continue;   /* unchanged here */
    probes++;
    NbVncMove found[PROBE_MATCHES];
    unsigned n = find_probe(p, x, y, found);
    if (n > PROBE_MATCHES)
      continue;
    for (unsigned k = 0; k < n; k++)
      add_vote(votes, &n_votes, G_N_ELEMENTS(votes), found[k]);
  }
  unsigned n_out = 0;
  while (n_out < max_out) {
    unsigned best = n_votes;
    for (unsigned k = 0; k < n_votes; k++)
      if (votes[k].votes && (best == n_votes || votes[k].votes > votes[best].votes))
        best = k;
    if (best == n_votes)
      break;
    out[n_out++] = votes[best].mv;
    votes[best].votes = 0;
  }
  return n_out;
}

/* The search --------------------------------------------------------------- */

static void
add_candidate(NbVncMove *c, unsigned *n, NbVncMove mv)
{
  if ((mv.dx == 0 && mv.dy == 0) || *n == MAX_CANDIDATES)
    return;
  for (unsigned i = 0; i < *n; i++)
    if (c[i].dx == mv.dx && c[i].dy == mv.dy)
      return;
  c[(*n)++] = mv;
}

unsigned
nb_vnc_motion_find(const NbVncPictures *pics, const NbFbRect *rects, unsigned n_rects,
                   NbVncMove hint, NbVncMove *move, uint8_t *tiles)
{
  Search s = { .p = pics, .tiles = tiles };
  nb_vnc_motion_tiles(pics->width, pics->height, &s.tiles_x, &s.tiles_y);
  const unsigned n_tiles = s.tiles_x * s.tiles_y;
  memset(tiles, 0, n_tiles);
  *move = (NbVncMove){ 0, 0 };
  if (n_tiles == 0)
    return 0;
  mark_damage(&s, rects, n_rects);
  unsigned found = 0;
  if (s.n_damaged >= NB_VNC_MOTION_MIN_TILES) {
    NbVncMove cand[MAX_CANDIDATES], mv;
    unsigned n_cand = 0;
    add_candidate(cand, &n_cand, hint);
    const unsigned hinted = n_cand;   /* the hint is candidate 0, if any */
    unsigned best = UINT_MAX, best_score = NB_VNC_MOTION_MIN_TILES - 1;
    if (hinted) {
      best_score = MAX(best_score, count_moved(&s, hint, false));
      if (best_score >= NB_VNC_MOTION_MIN_TILES)
        best = 0;
    }
    /* A move that goes on (a window dragged, a console scrolling) covers
     * most of the damage again: then the search is skipped. */
    if (best_score < MAX(NB_VNC_MOTION_MIN_TILES, s.n_damaged / 2)) {
      if (scroll_candidate(&s, &mv))
        add_candidate(cand, &n_cand, mv);
      NbVncMove probed[3];
      unsigned n_probed = probe_candidates(&s, probed, G_N_ELEMENTS(probed));
      for (unsigned k = 0; k < n_probed; k++)
        add_candidate(cand, &n_cand, probed[k]);
      for (unsigned k = hinted; k < n_cand; k++) {
        unsigned score = count_moved(&s, cand[k], false);
        if (score > best_score) {
          best = k;
          best_score = score;
        }
      }
    }
    if (best != UINT_MAX) {
      found = count_moved(&s, cand[best], true);
      if (found >= NB_VNC_MOTION_MIN_TILES)
        *move = cand[best];
      else
        found = 0;
    }
  }
  for (unsigned i = 0; i < n_tiles; i++)
    tiles[i] = found && tiles[i] == MOVED;
  return found;
}

/* Edges ------------------------------------------------------------------- */

static bool
pixel_moved(const NbVncPictures *p, unsigned x, unsigned y, NbVncMove mv)
{
  long long sx = (long long)x - mv.dx, sy = (long long)y - mv.dy;
  if (sx < 0 || sy < 0 || sx >= p->width || sy >= p->height)
    return false;
  return memcmp(new_at(p, x, y), old_at(p, (unsigned)sx, (unsigned)sy), 4) == 0;
}

/* The widest strip of tile box [x0, x1) x [y0, y1) along one side whose
 * pixels all moved; side: 0 left, 1 right, 2 top, 3 bottom. Its area, 0
 * for none. */
static unsigned
edge_strip(const NbVncPictures *p, unsigned x0, unsigned y0, unsigned x1, unsigned y1,
           NbVncMove mv, int side, NbFbRect *strip)
{
  if (side <= 1) {
    /* Columns: each line bounds the strip at its first pixel that did not
     * move, counted from that side. */
    unsigned lo = x0, hi = x1;   /* the strip, shrinking */
    if ((long long)y0 - mv.dy < 0 || (long long)y1 - mv.dy > p->height)
      return 0;
    for (unsigned y = y0; y < y1 && lo < hi; y++) {
      /* Mostly the strip of the line above matches at once. */
      if ((long long)lo - mv.dx >= 0 && (long long)hi - mv.dx <= p->width &&
          line_moved(p, lo, hi, y, mv))
        continue;
      if (side == 0) {
        unsigned x = x0;
        while (x < hi && pixel_moved(p, x, y, mv))
          x++;
        hi = x;
      } else {
        unsigned x = x1;
        while (x > lo && pixel_moved(p, x - 1, y, mv))
          x--;
        lo = x;
      }
    }
    if (lo >= hi)
      return 0;
    *strip = (NbFbRect){ lo, y0, hi - lo, y1 - y0 };
  } else {
    /* Lines: whole lines that moved, from that side. */
    unsigned lo = y0, hi = y1;
    if (side == 2) {
      while (lo < hi && (long long)x0 - mv.dx >= 0 && (long long)x1 - mv.dx <= p->width &&
             (long long)lo - mv.dy >= 0 && (long long)lo - mv.dy < p->height &&
             line_moved(p, x0, x1, lo, mv))
        lo++;
      hi = lo;
      lo = y0;
    } else {
      while (hi > lo && (long long)x0 - mv.dx >= 0 && (long long)x1 - mv.dx <= p->width &&
             (long long)hi - 1 - mv.dy >= 0 && (long long)hi - 1 - mv.dy < p->height &&
             line_moved(p, x0, x1, hi - 1, mv))
        hi--;
      lo = hi;
      hi = y1;
    }
    if (lo >= hi)
      return 0;
    *strip = (NbFbRect){ x0, lo, x1 - x0, hi - lo };
  }
  return strip->width * strip->height;
}

unsigned
nb_vnc_motion_edges(const NbVncPictures *pics, const NbFbRect *rects, unsigned n_rects,
                    NbVncMove move, const uint8_t *tiles, NbFbRect *out)
{
  Search s = { .p = pics };
  nb_vnc_motion_tiles(pics->width, pics->height, &s.tiles_x, &s.tiles_y);
  const unsigned n_tiles = s.tiles_x * s.tiles_y;
  if (n_tiles == 0 || (move.dx == 0 && move.dy == 0))
    return 0;
  s.tiles = g_malloc0(n_tiles);
  mark_damage(&s, rects, n_rects);
  unsigned n = 0;
  for (unsigned i = 0; i < n_tiles; i++) {
    if (!s.tiles[i] || tiles[i])
      continue;
    unsigned tx = i % s.tiles_x, ty = i / s.tiles_x;
    /* The moved neighbour is on this side of the tile. */
    bool moved_side[4] = {
      tx > 0 && tiles[i - 1],
      tx + 1 < s.tiles_x && tiles[i + 1],
      ty > 0 && tiles[i - s.tiles_x],
      ty + 1 < s.tiles_y && tiles[i + s.tiles_x],
    };
    unsigned x0, y0, x1, y1, best = 0;
    tile_box(&s, i, &x0, &y0, &x1, &y1);
    for (int side = 0; side < 4; side++) {
      NbFbRect strip;
      unsigned area = moved_side[side] ? edge_strip(pics, x0, y0, x1, y1, move, side, &strip) : 0;
      if (area > best) {
        best = area;
        out[n] = strip;
      }
    }
    n += best > 0;
  }
  g_free(s.tiles);
  return n;
}
