/* The bochs display as the Linux bochs driver programs it, and the
 * framebuffer's damage tracking as a consumer sees it. */
#include "hw/bochs-display.h"

#include <string.h>

static void
dispi_set(NbBochsDisplay *dev, unsigned index, uint16_t value)
{
  nb_bochs_display_mmio_ops()->write(dev, NB_BOCHS_DISPI_OFFSET + 2 * index, value, 2);
}

static uint16_t
dispi_get(NbBochsDisplay *dev, unsigned index)
{
  return (uint16_t)nb_bochs_display_mmio_ops()->read(dev, NB_BOCHS_DISPI_OFFSET + 2 * index, 2);
}

/* What bochs_hw_setmode() in Linux writes. */
static void
linux_setmode(NbBochsDisplay *dev, unsigned w, unsigned h, unsigned bpp)
{
  nb_bochs_display_mmio_ops()->write(dev, NB_BOCHS_VGA_OFFSET, 0x20, 1);
  dispi_set(dev, NB_DISPI_ENABLE, 0);
  dispi_set(dev, NB_DISPI_BPP, (uint16_t)bpp);
  dispi_set(dev, NB_DISPI_XRES, (uint16_t)w);
  dispi_set(dev, NB_DISPI_YRES, (uint16_t)h);
  dispi_set(dev, NB_DISPI_BANK, 0);
  dispi_set(dev, NB_DISPI_VIRT_WIDTH, (uint16_t)w);
  dispi_set(dev, NB_DISPI_VIRT_HEIGHT, (uint16_t)(NB_BOCHS_VRAM_DEFAULT / (MAX(w, 1) * 4)));
  dispi_set(dev, NB_DISPI_X_OFFSET, 0);
  dispi_set(dev, NB_DISPI_Y_OFFSET, 0);
  dispi_set(dev, NB_DISPI_ENABLE, NB_DISPI_ENABLED | NB_DISPI_LFB_ENABLED);
}

typedef struct {
  unsigned modes;
  NbFbMode mode;
  GArray *rects;
} Seen;

static void
seen_mode(void *ctx, const NbFbMode *mode)
{
  Seen *s = ctx;
  s->modes++;
  s->mode = *mode;
}

static void
seen_damage(void *ctx, const NbFbRect *rects, unsigned n)
{
  Seen *s = ctx;
  g_array_append_vals(s->rects, rects, n);
}

static const NbFbListener listener = { seen_mode, seen_damage };

static NbBochsDisplay *
new_display(void)
{
  g_autoptr(GError) error = NULL;
  NbBochsDisplay *dev = nb_bochs_display_new(NB_BOCHS_VRAM_DEFAULT, &error);
  g_assert_no_error(error);
  return dev;
}

static void
test_identity(void)
{
  NbBochsDisplay *dev = new_display();
  NbPciDevice *pci = nb_bochs_display_pci_device(dev);
  g_assert_cmpuint(pci->config[0] | pci->config[1] << 8, ==, 0x1234);
  g_assert_cmpuint(pci->config[2] | pci->config[3] << 8, ==, 0x1111);
  g_assert_cmpuint(pci->config[0x0b], ==, 0x03);
  g_assert_cmpuint(pci->config[0x0a], ==, 0x80);
  g_assert_cmpuint(pci->config[NB_PCI_REVISION], ==, 2);
  g_assert_cmpuint(pci->bars[0].size, ==, NB_BOCHS_VRAM_DEFAULT);
  g_assert_true(pci->bars[0].ram == nb_framebuffer_data(nb_bochs_display_framebuffer(dev)));
  g_assert_cmpuint(pci->bars[2].size, ==, NB_BOCHS_MMIO_SIZE);

  g_assert_cmpuint(dispi_get(dev, NB_DISPI_ID), ==, 0xb0c5);
  g_assert_cmpuint(dispi_get(dev, NB_DISPI_VIDEO_MEMORY_64K), ==, NB_BOCHS_VRAM_DEFAULT >> 16);
  /* QEMU's extension block: its size, little-endian pixels. */
  g_assert_cmpuint(nb_bochs_display_mmio_ops()->read(dev, 0x600, 4), ==, 8);
  g_assert_cmpuint(nb_bochs_display_mmio_ops()->read(dev, 0x604, 4), ==, 0x1e1e1e1e);
  nb_bochs_display_mmio_ops()->write(dev, 0x604, 0xbebebebe, 4);
  g_assert_cmpuint(nb_bochs_display_mmio_ops()->read(dev, 0x604, 4), ==, 0x1e1e1e1e);

  /* GETCAPS shows the largest mode. */
  dispi_set(dev, NB_DISPI_ENABLE, NB_DISPI_GETCAPS);
  g_assert_cmpuint(dispi_get(dev, NB_DISPI_XRES), ==, NB_FB_MAX_WIDTH);
  g_assert_cmpuint(dispi_get(dev, NB_DISPI_YRES), ==, NB_FB_MAX_HEIGHT);
  g_assert_cmpuint(dispi_get(dev, NB_DISPI_BPP), ==, 32);
  dispi_set(dev, NB_DISPI_ENABLE, 0);
  nb_bochs_display_free(dev);
}

static void
test_edid(void)
{
  NbBochsDisplay *dev = new_display();
  uint8_t e[128];
  /* Read as the driver does, a byte at a time from the BAR. */
  for (unsigned i = 0; i < 128; i++)
    e[i] = (uint8_t)nb_bochs_display_mmio_ops()->read(dev, i, 1);
  static const uint8_t header[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0 };
  g_assert_cmpmem(e, 8, header, 8);
  uint8_t sum = 0;
  for (unsigned i = 0; i < 128; i++)
    sum += e[i];
  g_assert_cmpuint(sum, ==, 0);
  g_assert_cmpuint(e[18], ==, 1);
  g_assert_cmpuint(e[19], ==, 4);
  /* The first detailed timing (preferred): 1024x768 at 65 MHz. */
  const uint8_t *d = e + 54;
  g_assert_cmpuint(d[0] | d[1] << 8, ==, 6500);
  g_assert_cmpuint(d[2] | (d[4] >> 4) << 8, ==, NB_BOCHS_PREFERRED_WIDTH);
  g_assert_cmpuint(d[5] | (d[7] >> 4) << 8, ==, NB_BOCHS_PREFERRED_HEIGHT);
  /* Second: 1920x1080. */
  d = e + 72;
  g_assert_cmpuint(d[2] | (d[4] >> 4) << 8, ==, 1920);
  g_assert_cmpuint(d[5] | (d[7] >> 4) << 8, ==, 1080);
  /* The monitor name. */
  g_assert_cmpuint(e[108 + 3], ==, 0xfc);
  g_assert_cmpmem(e + 108 + 5, 8, "Nestbox\n", 8);
  /* The EDID cannot be written. */
  nb_bochs_display_mmio_ops()->write(dev, 0, 0x12, 1);
  g_assert_cmpuint(nb_bochs_display_mmio_ops()->read(dev, 0, 1), ==, 0);
  nb_bochs_display_free(dev);
}

static void
test_mode_and_damage(void)
{
  NbBochsDisplay *dev = new_display();
  NbFramebuffer *fb = nb_bochs_display_framebuffer(dev);
  Seen s = { .rects = g_array_new(FALSE, FALSE, sizeof(NbFbRect)) };
  guint id = nb_framebuffer_add_listener(fb, &listener, &s);

  linux_setmode(dev, 640, 480, 32);
  g_assert_cmpuint(nb_framebuffer_refresh(fb), ==, 1);
  g_assert_cmpuint(s.modes, ==, 1);
  g_assert_true(s.mode.enabled);
  g_assert_cmpuint(s.mode.width, ==, 640);
  g_assert_cmpuint(s.mode.height, ==, 480);
  g_assert_cmpuint(s.mode.stride, ==, 2560);
  g_assert_cmpuint(s.mode.format, ==, NB_FB_FORMAT_XRGB8888);
  g_assert_cmpuint(s.rects->len, ==, 1);
  NbFbRect all = g_array_index(s.rects, NbFbRect, 0);
  g_assert_cmpuint(all.width, ==, 640);
  g_assert_cmpuint(all.height, ==, 480);
  g_assert_cmpuint(dispi_get(dev, NB_DISPI_VIRT_HEIGHT), ==, NB_BOCHS_VRAM_DEFAULT / 2560);

  /* Nothing drawn: nothing reported. */
  g_array_set_size(s.rects, 0);
  g_assert_cmpuint(nb_framebuffer_refresh(fb), ==, 0);

  /* One pixel at (100, 50): its 32x32 tile. */
  uint8_t *px = nb_framebuffer_data(fb);
  memset(px + 50 * 2560 + 100 * 4, 0xff, 4);
  g_assert_cmpuint(nb_framebuffer_refresh(fb), ==, 1);
  NbFbRect r = g_array_index(s.rects, NbFbRect, 0);
  g_assert_cmpuint(r.x, ==, 96);
  g_assert_cmpuint(r.y, ==, 32);
  g_assert_cmpuint(r.width, ==, 32);
  g_assert_cmpuint(r.height, ==, 32);
  g_assert_cmpuint(nb_fb_pixel_to_rgb(NB_FB_FORMAT_XRGB8888, px + 50 * 2560 + 100 * 4), ==, 0xffffff);

  /* A horizontal bar over two tile rows becomes one rectangle; a separate
   * dot, another. The last column's tile is clipped to the screen. */
  g_array_set_size(s.rects, 0);
  for (unsigned y = 200; y < 260; y++)
    memset(px + y * 2560, 0x40, 640 * 4);
  px[479 * 2560 + 639 * 4] = 1;
  g_assert_cmpuint(nb_framebuffer_refresh(fb), ==, 2);
  r = g_array_index(s.rects, NbFbRect, 0);
  g_assert_cmpuint(r.x, ==, 0);
  g_assert_cmpuint(r.y, ==, 192);
  g_assert_cmpuint(r.width, ==, 640);
  g_assert_cmpuint(r.height, ==, 96);
  r = g_array_index(s.rects, NbFbRect, 1);
  g_assert_cmpuint(r.x, ==, 608);
  g_assert_cmpuint(r.y, ==, 448);
  g_assert_cmpuint(r.width, ==, 32);
  g_assert_cmpuint(r.height, ==, 32);

  /* Writing the same pixels again is no damage. */
  g_array_set_size(s.rects, 0);
  memset(px + 50 * 2560 + 100 * 4, 0xff, 4);
  g_assert_cmpuint(nb_framebuffer_refresh(fb), ==, 0);

  /* A page flip (Y offset) is a new mode at a new offset. */
  dispi_set(dev, NB_DISPI_Y_OFFSET, 480);
  nb_framebuffer_refresh(fb);
  g_assert_cmpuint(s.modes, ==, 2);
  g_assert_cmpuint(s.mode.offset, ==, 480 * 2560);

  nb_framebuffer_remove_listener(fb, id);
  g_array_free(s.rects, TRUE);
  nb_bochs_display_free(dev);
}

static void
expect_blank(NbBochsDisplay *dev, const char *why)
{
  NbFbMode m;
  nb_framebuffer_get_mode(nb_bochs_display_framebuffer(dev), &m);
  if (m.enabled)
    g_error("%s: mode %ux%u was accepted", why, m.width, m.height);
}

static void
test_bad_modes(void)
{
  NbBochsDisplay *dev = new_display();
  linux_setmode(dev, 0, 480, 32);
  expect_blank(dev, "zero width");
  linux_setmode(dev, 640, 0, 32);
  expect_blank(dev, "zero height");
  linux_setmode(dev, 640, 480, 8);
  expect_blank(dev, "8 bpp");
  linux_setmode(dev, 640, 480, 7);
  expect_blank(dev, "7 bpp");
  linux_setmode(dev, 4096, 4096, 32);   /* 64 MiB in 16 */
  expect_blank(dev, "larger than video memory");
  linux_setmode(dev, 0xffff, 0xffff, 32);
  expect_blank(dev, "65535 square");
  /* A panning offset that puts the last line past the end. */
  linux_setmode(dev, 1024, 768, 32);
  dispi_set(dev, NB_DISPI_Y_OFFSET, 4096 - 767);
  expect_blank(dev, "offset past the end");
  dispi_set(dev, NB_DISPI_X_OFFSET, 0xffff);
  dispi_set(dev, NB_DISPI_Y_OFFSET, 0xffff);
  expect_blank(dev, "huge offsets");
  /* Sized exactly to the end is fine. */
  dispi_set(dev, NB_DISPI_X_OFFSET, 0);
  dispi_set(dev, NB_DISPI_Y_OFFSET, 4096 - 768);
  NbFbMode m;
  nb_framebuffer_get_mode(nb_bochs_display_framebuffer(dev), &m);
  g_assert_true(m.enabled);
  g_assert_cmpuint(m.offset + 768 * 4096, ==, NB_BOCHS_VRAM_DEFAULT);

  /* A refresh of whatever happened is harmless, and a good mode comes back. */
  nb_framebuffer_refresh(nb_bochs_display_framebuffer(dev));
  linux_setmode(dev, 800, 600, 16);
  nb_framebuffer_get_mode(nb_bochs_display_framebuffer(dev), &m);
  g_assert_true(m.enabled);
  g_assert_cmpuint(m.format, ==, NB_FB_FORMAT_RGB565);
  g_assert_cmpuint(m.stride, ==, 1600);

  /* Accesses outside the registers or of odd sizes do nothing. */
  const NbIoOps *ops = nb_bochs_display_mmio_ops();
  g_assert_cmpuint(ops->read(dev, NB_BOCHS_MMIO_SIZE - 1, 4), ==, ~UINT64_C(0));
  ops->write(dev, NB_BOCHS_MMIO_SIZE - 2, 0xffff, 8);
  ops->write(dev, NB_BOCHS_DISPI_OFFSET + 1, 0xffff, 2);
  ops->write(dev, NB_BOCHS_DISPI_OFFSET + 2 * NB_DISPI_NUM_REGS, 0xffff, 2);
  ops->write(dev, NB_BOCHS_DISPI_OFFSET + 2 * NB_DISPI_VIDEO_MEMORY_64K, 0xffff, 2);
  g_assert_cmpuint(dispi_get(dev, NB_DISPI_VIDEO_MEMORY_64K), ==, NB_BOCHS_VRAM_DEFAULT >> 16);
  nb_bochs_display_free(dev);
}

typedef struct {
  size_t dirty_page;
  unsigned calls;
} FakeLog;

static bool
fake_log(void *ctx, unsigned long *bitmap, size_t n_pages)
{
  FakeLog *f = ctx;
  f->calls++;
  memset(bitmap, 0, (n_pages + 63) / 64 * sizeof(unsigned long));
  bitmap[f->dirty_page / (8 * sizeof(unsigned long))] |= 1ul << (f->dirty_page % (8 * sizeof(unsigned long)));
  return true;
}

/* With a dirty log, only tiles on written pages are compared: a change on a
 * page the log does not name is not looked at. */
static void
test_dirty_log(void)
{
  NbBochsDisplay *dev = new_display();
  NbFramebuffer *fb = nb_bochs_display_framebuffer(dev);
  FakeLog f = { .dirty_page = 0 };
  nb_framebuffer_set_dirty_log(fb, fake_log, &f);
  Seen s = { .rects = g_array_new(FALSE, FALSE, sizeof(NbFbRect)) };
  nb_framebuffer_add_listener(fb, &listener, &s);
  linux_setmode(dev, 1024, 768, 32);
  nb_framebuffer_refresh(fb);
  g_array_set_size(s.rects, 0);

  uint8_t *px = nb_framebuffer_data(fb);
  px[0] = 1;                         /* page 0: line 0 */
  px[400 * 4096 + 4 * 500] = 1;      /* page 400: line 400 */
  g_assert_cmpuint(nb_framebuffer_refresh(fb), ==, 1);
  NbFbRect r = g_array_index(s.rects, NbFbRect, 0);
  g_assert_cmpuint(r.x, ==, 0);
  g_assert_cmpuint(r.y, ==, 0);
  /* Once the log names it, the other change shows. */
  g_array_set_size(s.rects, 0);
  f.dirty_page = 400;
  g_assert_cmpuint(nb_framebuffer_refresh(fb), ==, 1);
  r = g_array_index(s.rects, NbFbRect, 0);
  g_assert_cmpuint(r.x, ==, 480);
  g_assert_cmpuint(r.y, ==, 384);
  g_assert_cmpuint(f.calls, >=, 3);

  /* Turning the display off and on keeps video memory (Linux keeps its
   * buffers there). */
  dispi_set(dev, NB_DISPI_ENABLE, 0);
  dispi_set(dev, NB_DISPI_ENABLE, NB_DISPI_ENABLED | NB_DISPI_LFB_ENABLED);
  g_assert_cmpuint(px[400 * 4096 + 4 * 500], ==, 1);

  /* A change the log never names is still found by the periodic full
   * look (and reported as missed). */
  f.dirty_page = 0;
  nb_framebuffer_refresh(fb);
  g_array_set_size(s.rects, 0);
  px[700 * 4096 + 4 * 10] = 7;
  unsigned found = 0;
  for (unsigned i = 0; i < NB_FB_FULL_CHECK_EVERY + 1; i++)
    found += nb_framebuffer_refresh(fb);
  g_assert_cmpuint(found, ==, 1);
  r = g_array_index(s.rects, NbFbRect, 0);
  g_assert_cmpuint(r.y, ==, 672);
  g_assert_cmpuint(nb_framebuffer_missed_by_log(fb), ==, 1);
  g_array_free(s.rects, TRUE);
  nb_bochs_display_free(dev);
}

static void
test_bad_sizes(void)
{
  g_autoptr(GError) error = NULL;
  g_assert_null(nb_bochs_display_new(3u << 20, &error));
  g_assert_nonnull(strstr(error->message, "power of two"));
  g_clear_error(&error);
  g_assert_null(nb_bochs_display_new(512u << 20, &error));
  g_assert_nonnull(error);
}

static void
test_pixel_formats(void)
{
  uint8_t p565[2] = { 0x1f, 0xf8 };   /* red 31, green 0, blue 31 */
  g_assert_cmphex(nb_fb_pixel_to_rgb(NB_FB_FORMAT_RGB565, p565), ==, 0xff00ff);
  uint8_t p555[2] = { 0xe0, 0x03 };   /* green 31 */
  g_assert_cmphex(nb_fb_pixel_to_rgb(NB_FB_FORMAT_XRGB1555, p555), ==, 0x00ff00);
  uint8_t p888[3] = { 0x03, 0x02, 0x01 };
  g_assert_cmphex(nb_fb_pixel_to_rgb(NB_FB_FORMAT_RGB888, p888), ==, 0x010203);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/bochs-display/identity", test_identity);
  g_test_add_func("/bochs-display/edid", test_edid);
  g_test_add_func("/bochs-display/mode-and-damage", test_mode_and_damage);
  g_test_add_func("/bochs-display/bad-modes", test_bad_modes);
  g_test_add_func("/bochs-display/dirty-log", test_dirty_log);
  g_test_add_func("/bochs-display/bad-sizes", test_bad_sizes);
  g_test_add_func("/bochs-display/pixel-formats", test_pixel_formats);
  return g_test_run();
}
