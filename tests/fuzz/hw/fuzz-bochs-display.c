/* The bochs display's register BAR as a hostile guest drives it: any
 * sequence of reads and writes of any size at any offset, with drawing in
 * between and a consumer refreshing. Whatever mode results must lie inside
 * video memory, and a refresh must never read outside it. */
#include "hw/bochs-display.h"

#include <stdint.h>
#include <string.h>

static unsigned damage_calls;

static void
on_damage(void *ctx, const NbFbRect *rects, unsigned n)
{
  NbFbMode *m = ctx;
  for (unsigned i = 0; i < n; i++)
    if (rects[i].x + rects[i].width > m->width || rects[i].y + rects[i].height > m->height)
      __builtin_trap();
  damage_calls++;
}

static void
on_mode(void *ctx, const NbFbMode *mode)
{
  *(NbFbMode *)ctx = *mode;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static NbBochsDisplay *dev;
  if (dev == NULL) {
    g_log_set_writer_func(g_log_writer_default, NULL, NULL);
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    /* The smallest video memory makes oversized modes easy to reach. */
    dev = nb_bochs_display_new(NB_BOCHS_VRAM_MIN, NULL);
  }
  nb_bochs_display_reset(dev);
  NbFramebuffer *fb = nb_bochs_display_framebuffer(dev);
  NbFbMode shown = { 0 };
  static const NbFbListener listener = { on_mode, on_damage };
  guint id = nb_framebuffer_add_listener(fb, &listener, &shown);
  const NbIoOps *ops = nb_bochs_display_mmio_ops();
  /* Records of 8 bytes: op, size, offset (2), value (4). */
  for (size_t i = 0; i + 8 <= size; i += 8) {
    const uint8_t *r = data + i;
    unsigned sizes[4] = { 1, 2, 4, 8 };
    unsigned access = sizes[r[1] & 3];
    uint64_t offset = (uint64_t)(r[2] | r[3] << 8) & 0x1fff;   /* past the BAR too */
    uint32_t value;
    memcpy(&value, r + 4, 4);
    switch (r[0] & 3) {
    case 0: ops->write(dev, offset, value, access); break;
    case 1: (void)ops->read(dev, offset, access); break;
    case 2: {
      /* The guest draws somewhere in video memory. */
      uint64_t at = (uint64_t)value % NB_BOCHS_VRAM_MIN;
      nb_framebuffer_data(fb)[at] ^= r[1];
      break;
    }
    case 3: nb_framebuffer_refresh(fb); break;
    }
    NbFbMode m;
    nb_framebuffer_get_mode(fb, &m);
    if (!nb_fb_mode_valid(&m, NB_BOCHS_VRAM_MIN))
      __builtin_trap();
  }
  nb_framebuffer_refresh(fb);
  nb_framebuffer_remove_listener(fb, id);
  return 0;
}
