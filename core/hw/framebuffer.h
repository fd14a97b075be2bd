/* A guest framebuffer, shared between the display device that produces it
 * and the consumers that show it (the VNC server, the SDL window, the
 * manager's console in another process).
 *
 * The pixels live in a memfd (nb_framebuffer_fd) mapped shared: the guest
 * writes them directly through a PCI BAR, a consumer in this process reads
 * nb_framebuffer_data(), one in another process maps the fd it was passed.
 * Nothing is copied on the way to a consumer.
 *
 * What is visible is described by an NbFbMode: the guest picks it, the
 * device validates it (it always lies inside the buffer) and publishes it
 * with nb_framebuffer_set_mode.
 *
 * Consumers learn what changed by calling nb_framebuffer_refresh() from
 * their own loop, at the rate they want to show frames (30 to 60 times a
 * second). A refresh asks the device which pages the guest wrote since the
 * last one (KVM's dirty log), compares the tiles on those pages against a
 * shadow copy, and tells every listener, on the calling thread, first of a
 * mode change (then the whole screen is damaged) and then of the rectangles
 * whose pixels really changed. Without a dirty log every tile is compared,
 * which is slower but exact.
 *
 * Threads: set_mode and the data may be used from any thread (the guest's
 * vCPUs); refresh, add_listener and remove_listener belong to one consumer
 * thread (usually the main loop), and listeners run there. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NB_FRAMEBUFFER_ERROR (nb_framebuffer_error_quark())
GQuark nb_framebuffer_error_quark(void);

typedef enum {
  NB_FRAMEBUFFER_ERROR_FAILED,
} NbFramebufferError;

/* Pixel layouts, named as DRM names them; all little endian. */
typedef enum {
  NB_FB_FORMAT_XRGB8888,   /* 32 bpp: bytes B, G, R, unused */
  NB_FB_FORMAT_RGB888,     /* 24 bpp: bytes B, G, R */
  NB_FB_FORMAT_RGB565,     /* 16 bpp: rrrrrggg gggbbbbb */
  NB_FB_FORMAT_XRGB1555,   /* 15 bpp in 16 bits: xrrrrrgg gggbbbbb */
} NbFbFormat;

/* Largest width and height any device advertises. */
#define NB_FB_MAX_WIDTH  16000
#define NB_FB_MAX_HEIGHT 12000

typedef struct {
  bool enabled;          /* false: the guest shows nothing (the screen is blank) */
  unsigned width;        /* pixels; 0 when disabled */
  unsigned height;
  unsigned stride;       /* bytes from one line to the next */
  unsigned bytes_per_pixel;
  NbFbFormat format;
  uint64_t offset;       /* of the top-left visible pixel in the buffer */
} NbFbMode;

typedef struct {
  unsigned x, y, width, height;
} NbFbRect;

/* What a consumer is told. Either may be NULL. */
typedef struct {
  /* The visible mode changed; a damage of the whole screen follows. */
  void (*mode_changed)(void *ctx, const NbFbMode *mode);
  /* These rectangles (inside the current mode) have new pixels. */
  void (*damage)(void *ctx, const NbFbRect *rects, unsigned n_rects);
} NbFbListener;

/* The device's dirty log: sets a bit in bitmap for every page (4 KiB, from
 * the start of the buffer) that the guest wrote since the last call, and
 * clears the log. Returns false when no log is available now (the buffer is
 * not mapped into the guest): every page then counts as written. */
typedef bool (*NbFbDirtyLogFunc)(void *ctx, unsigned long *bitmap, size_t n_pages);

#define NB_FB_PAGE_SIZE 4096u
/* Every this many refreshes, all tiles are compared even with a dirty log,
 * so a log that misses writes (a host kernel bug, a nested setup) cannot
 * leave the picture stale for more than a moment. */
#define NB_FB_FULL_CHECK_EVERY 32
/* Damage granularity: a tile is this many pixels wide and lines high. */
#define NB_FB_TILE_WIDTH  32u
#define NB_FB_TILE_HEIGHT 32u

typedef struct NbFramebuffer NbFramebuffer;

/* A framebuffer of size bytes (a multiple of the page size), zeroed. */
NbFramebuffer *nb_framebuffer_new(const char *name, uint64_t size, GError **error);
void nb_framebuffer_free(NbFramebuffer *fb);

int nb_framebuffer_fd(NbFramebuffer *fb);
uint8_t *nb_framebuffer_data(NbFramebuffer *fb);
uint64_t nb_framebuffer_size(NbFramebuffer *fb);

/* Whether mode fits a buffer of size bytes and is one we can show. The
 * device validates with this before publishing. */
bool nb_fb_mode_valid(const NbFbMode *mode, uint64_t size);
/* bytes per pixel of a format */
unsigned nb_fb_format_bytes_per_pixel(NbFbFormat format);

/* Producer side: publishes a new mode (invalid modes are published as
 * disabled). Any thread. */
void nb_framebuffer_set_mode(NbFramebuffer *fb, const NbFbMode *mode);
/* The producer changed pixels itself (not through the guest's mapping, so
 * the dirty log does not show it): the next refresh repaints everything. */
void nb_framebuffer_invalidate(NbFramebuffer *fb);
/* The producer's dirty log; NULL for none. Before consumers refresh. */
void nb_framebuffer_set_dirty_log(NbFramebuffer *fb, NbFbDirtyLogFunc func, void *ctx);

/* The mode now published. Any thread. */
void nb_framebuffer_get_mode(NbFramebuffer *fb, NbFbMode *mode);

/* Consumer side. Returns an id for remove_listener (never 0). */
guint nb_framebuffer_add_listener(NbFramebuffer *fb, const NbFbListener *listener, void *ctx);
void nb_framebuffer_remove_listener(NbFramebuffer *fb, guint id);

/* Finds what changed since the last refresh and tells the listeners.
 * Returns the number of damage rectangles reported. */
unsigned nb_framebuffer_refresh(NbFramebuffer *fb);

/* Tiles that changed although the dirty log did not name their pages,
 * found by the periodic full comparison; 0 when the log is sound. */
guint64 nb_framebuffer_missed_by_log(NbFramebuffer *fb);

/* Converts one pixel of a format to 0x00RRGGBB. */
uint32_t nb_fb_pixel_to_rgb(NbFbFormat format, const uint8_t *pixel);
