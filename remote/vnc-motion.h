/* Finds content that moved between two pictures: a window dragged across
 * the screen, a terminal or a page that scrolled. The VNC server then sends
 * those parts as RFB CopyRect (a few bytes: "copy this from there") instead
 * of their pixels again.
 *
 * Pure function over pixel buffers (no libvncserver), run on every refresh
 * that has damage, so it is kept cheap: a few candidate vectors (the last
 * move found, a vertical scroll voted from row hashes of the damaged band,
 * and a 2-D search of short distinctive row segments within
 * NB_VNC_MOTION_RANGE pixels), each tried on a few rows of every damaged
 * tile; only the best is then checked on every pixel. A tile is reported as
 * moved only when every one of its new pixels equals the old pixel at
 * (x - dx, y - dy) with that source inside the screen: a CopyRect built from
 * it is pixel-exact. */
#pragma once

#include "hw/framebuffer.h"

#include <stddef.h>
#include <stdint.h>

/* The two pictures, both width x height. */
typedef struct {
  const uint32_t *old_pixels;   /* XRGB8888, lines width pixels apart */
  const uint8_t *new_pixels;    /* XRGB8888 bytes (as the guest's), lines new_stride apart */
  size_t new_stride;            /* bytes, at least width * 4 */
  unsigned width, height;
} NbVncPictures;

/* New pixel (x, y) is old pixel (x - dx, y - dy). */
typedef struct {
  int dx, dy;
} NbVncMove;

/* Fewer moved tiles than this are not worth a CopyRect (and are more
 * likely a coincidence of plain colours). */
#define NB_VNC_MOTION_MIN_TILES 4
/* How far the 2-D search looks, in pixels either way; vertical scrolls are
 * found at any distance. */
#define NB_VNC_MOTION_RANGE 48

/* Tiles (NB_FB_TILE_WIDTH x NB_FB_TILE_HEIGHT, the last row and column
 * clipped at the screen's edge) of a width x height screen. */
void nb_vnc_motion_tiles(unsigned width, unsigned height, unsigned *tiles_x, unsigned *tiles_y);

/* Looks for a move of the damaged rectangles' content (rectangles outside
 * the screen are clipped). hint is a candidate tried first (the last move
 * found; {0, 0} for none). tiles has tiles_x * tiles_y bytes, row by row:
 * each is set to 1 for a tile that intersects the damage and moved by
 * *move, to 0 otherwise. Returns the number of tiles set: 0 (and *move =
 * {0, 0}) when no move covers NB_VNC_MOTION_MIN_TILES tiles. */
unsigned nb_vnc_motion_find(const NbVncPictures *pics, const NbFbRect *rects, unsigned n_rects,
                            NbVncMove hint, NbVncMove *move, uint8_t *tiles);

/* The edges of a move found by nb_vnc_motion_find: in each damaged tile
 * that did not move as a whole but borders one that did (left, right,
 * above or below), the widest strip along that border whose pixels all
 * moved by move (source on the screen): where a window's edge or a scrolled
 * area's end cuts through a tile. Writes up to tiles_x * tiles_y strips to
 * out, one per tile at most, and returns how many. */
unsigned nb_vnc_motion_edges(const NbVncPictures *pics, const NbFbRect *rects, unsigned n_rects,
                             NbVncMove move, const uint8_t *tiles, NbFbRect *out);
