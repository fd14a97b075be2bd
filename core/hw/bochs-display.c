#include "hw/bochs-display.h"

#include <string.h>

/* What GETCAPS reports: the largest mode a guest may ask for. */
#define MAX_BPP 32

/* QEMU's extended register block: its size, and the byte-order register. */
#define QEXT_SIZE        8
#define QEXT_LITTLE      0x1e1e1e1eu
#define QEXT_BIG         0xbebebebeu

#define EDID_SIZE 128

struct NbBochsDisplay {
  NbPciDevice pci;
  NbFramebuffer *fb;
  uint32_t vram_size;
  uint8_t edid[EDID_SIZE];

  GMutex lock;                   /* registers */
  uint16_t regs[NB_DISPI_NUM_REGS];
  uint8_t vga[0x20];             /* what the guest wrote to 0x3c0-0x3df */
  uint32_t byte_order;
  bool warned;
};

/* EDID ------------------------------------------------------------------- */

typedef struct {
  unsigned clock_khz;
  unsigned hactive, hblank, hsync_off, hsync_width;
  unsigned vactive, vblank, vsync_off, vsync_width;
  bool hsync_pos, vsync_pos;
} Timing;

/* An 18-byte detailed timing descriptor (EDID 1.4, section 3.10.2). */
static void
put_dtd(uint8_t *d, const Timing *t)
{
  unsigned clock = t->clock_khz / 10;
  d[0] = clock & 0xff;
  d[1] = clock >> 8;
  d[2] = t->hactive & 0xff;
  d[3] = t->hblank & 0xff;
  d[4] = (uint8_t)((t->hactive >> 8) << 4 | (t->hblank >> 8));
  d[5] = t->vactive & 0xff;
  d[6] = t->vblank & 0xff;
  d[7] = (uint8_t)((t->vactive >> 8) << 4 | (t->vblank >> 8));
  d[8] = t->hsync_off & 0xff;
  d[9] = t->hsync_width & 0xff;
  d[10] = (uint8_t)((t->vsync_off & 0xf) << 4 | (t->vsync_width & 0xf));
  d[11] = (uint8_t)((t->hsync_off >> 8) << 6 | (t->hsync_width >> 8) << 4 |
                    (t->vsync_off >> 4) << 2 | (t->vsync_width >> 4));
  /* A 4:3 or 16:9 panel of about 17 or 24 inches, in mm. */
  unsigned hmm = t->hactive * 10 / 38, vmm = t->vactive * 10 / 38;
  d[12] = hmm & 0xff;
  d[13] = vmm & 0xff;
  d[14] = (uint8_t)((hmm >> 8) << 4 | (vmm >> 8));
  d[15] = d[16] = 0;
  /* Digital separate sync, with the polarities. */
  d[17] = (uint8_t)(0x18 | (t->vsync_pos ? 0x04 : 0) | (t->hsync_pos ? 0x02 : 0));
}

static void
put_text_descriptor(uint8_t *d, uint8_t tag, const char *text)
{
  memset(d, 0, 18);
  d[3] = tag;
  size_t n = MIN(strlen(text), 13);
  memcpy(d + 5, text, n);
  if (n < 13) {
    d[5 + n] = '\n';
    memset(d + 6 + n, ' ', 13 - n - 1);
  }
}

/* A monitor that prefers 1024x768 (the first detailed timing) and also
 * offers the usual desktop sizes, up to 1920x1080. */
static void
build_edid(uint8_t *e)
{
  static const uint8_t header[8] = { 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00 };
  memset(e, 0, EDID_SIZE);
  memcpy(e, header, 8);
  /* Manufacturer "NBX" in three 5-bit letters, big endian. */
  uint16_t mfg = ('N' - '@') << 10 | ('B' - '@') << 5 | ('X' - '@');
  e[8] = mfg >> 8;
  e[9] = mfg & 0xff;
  e[10] = 0x01;                  /* product code */
  e[16] = 1;                     /* week */
  e[17] = 2024 - 1990;           /* year of manufacture */
  e[18] = 1;                     /* EDID 1.4 */
  e[19] = 4;
  e[20] = 0xa5;                  /* digital, 8 bits per colour, DisplayPort */
  e[21] = 27;                    /* 27 x 20 cm */
  e[22] = 20;
  e[23] = 120;                   /* gamma 2.2 */
  e[24] = 0x06;                  /* RGB 4:4:4, sRGB, preferred timing is native */
  /* sRGB chromaticity. */
  static const uint8_t chroma[10] = { 0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54 };
  memcpy(e + 25, chroma, 10);
  /* Established timings: 640x480@60, 800x600@60, 1024x768@60. */
  e[35] = 0x21;
  e[36] = 0x08;
  e[37] = 0x00;
  /* Standard timings: (width / 8 - 31), aspect << 6 | (refresh - 60). */
  static const uint8_t standard[16] = {
    0x81, 0x80,   /* 1280x1024 5:4 */
    0x81, 0xc0,   /* 1280x720 16:9 */
    0x81, 0x00,   /* 1280x800 16:10 */
    0x95, 0x00,   /* 1440x900 16:10 */
    0xa9, 0x40,   /* 1600x1200 4:3 */
    0xb3, 0x00,   /* 1680x1050 16:10 */
    0xd1, 0xc0,   /* 1920x1080 16:9 */
    0x01, 0x01,   /* unused */
  };
  memcpy(e + 38, standard, 16);
  static const Timing xga = { 65000, 1024, 320, 24, 136, 768, 38, 3, 6, false, false };
  static const Timing fhd = { 148500, 1920, 280, 88, 44, 1080, 45, 4, 5, true, true };
  put_dtd(e + 54, &xga);
  put_dtd(e + 72, &fhd);
  /* Range limits: 50-75 Hz, 30-83 kHz, 160 MHz, no extra timing formula. */
  uint8_t *r = e + 90;
  memset(r, 0, 18);
  r[3] = 0xfd;
  r[5] = 50;
  r[6] = 75;
  r[7] = 30;
  r[8] = 83;
  r[9] = 16;
  r[10] = 0x01;
  r[11] = 0x0a;
  memset(r + 12, ' ', 6);
  put_text_descriptor(e + 108, 0xfc, "Nestbox");
  e[126] = 0;                    /* no extension blocks */
  uint8_t sum = 0;
  for (unsigned i = 0; i < EDID_SIZE - 1; i++)
    sum += e[i];
  e[127] = (uint8_t)(0x100 - sum);
}

/* Modes ------------------------------------------------------------------- */

/* What the registers describe, checked; lock held. */
static void
update_mode(NbBochsDisplay *dev)
{
  const uint16_t *r = dev->regs;
  NbFbMode m = { .enabled = false };
  if (r[NB_DISPI_ENABLE] & NB_DISPI_ENABLED) {
    m.enabled = true;
    switch (r[NB_DISPI_BPP]) {
    case 32: m.format = NB_FB_FORMAT_XRGB8888; break;
    case 24: m.format = NB_FB_FORMAT_RGB888; break;
    case 16: m.format = NB_FB_FORMAT_RGB565; break;
    case 15: m.format = NB_FB_FORMAT_XRGB1555; break;
    default: m.enabled = false; break;   /* 4 and 8 bpp need a palette we lack */
    }
    m.bytes_per_pixel = nb_fb_format_bytes_per_pixel(m.format);
    m.width = r[NB_DISPI_XRES];
    m.height = r[NB_DISPI_YRES];
    /* A virtual width below the visible one means "the same", as on QEMU. */
    unsigned virt_width = MAX(r[NB_DISPI_VIRT_WIDTH], r[NB_DISPI_XRES]);
    m.stride = virt_width * m.bytes_per_pixel;
    m.offset = (uint64_t)r[NB_DISPI_Y_OFFSET] * m.stride +
               (uint64_t)r[NB_DISPI_X_OFFSET] * m.bytes_per_pixel;
    if (m.enabled && !nb_fb_mode_valid(&m, dev->vram_size)) {
      if (!dev->warned)
        g_message("bochs display: the guest set a mode the display cannot show (%ux%u, %u bpp, "
                  "offset %u,%u in %u KiB); the screen stays blank until it sets a valid one",
                  r[NB_DISPI_XRES], r[NB_DISPI_YRES], r[NB_DISPI_BPP], r[NB_DISPI_X_OFFSET],
                  r[NB_DISPI_Y_OFFSET], dev->vram_size >> 10);
      dev->warned = true;
      m.enabled = false;
    }
  }
  if (m.enabled)
    g_debug("bochs display: mode %ux%u, %u bytes per pixel, stride %u, offset %" G_GUINT64_FORMAT,
            m.width, m.height, m.bytes_per_pixel, m.stride, m.offset);
  nb_framebuffer_set_mode(dev->fb, &m);
}

static uint16_t
dispi_read(NbBochsDisplay *dev, unsigned index)
{
  const uint16_t *r = dev->regs;
  bool caps = r[NB_DISPI_ENABLE] & NB_DISPI_GETCAPS;
  switch (index) {
  case NB_DISPI_ID: return r[NB_DISPI_ID];
  case NB_DISPI_XRES: return caps ? NB_FB_MAX_WIDTH : r[index];
  case NB_DISPI_YRES: return caps ? NB_FB_MAX_HEIGHT : r[index];
  case NB_DISPI_BPP: return caps ? MAX_BPP : r[index];
  case NB_DISPI_VIRT_HEIGHT: {
    /* How many lines of the virtual width fit in video memory. */
    unsigned bytes = r[NB_DISPI_BPP] == 15 ? 2 : (r[NB_DISPI_BPP] + 7u) / 8;
    unsigned stride = MAX(r[NB_DISPI_VIRT_WIDTH], r[NB_DISPI_XRES]) * bytes;
    return stride ? (uint16_t)MIN(dev->vram_size / stride, 0xffffu) : r[index];
  }
  case NB_DISPI_VIDEO_MEMORY_64K: return (uint16_t)(dev->vram_size >> 16);
  default: return index < NB_DISPI_NUM_REGS ? r[index] : 0;
  }
}

static void
dispi_write(NbBochsDisplay *dev, unsigned index, uint16_t value)
{
  uint16_t *r = dev->regs;
  switch (index) {
  case NB_DISPI_ID:
    /* Drivers write the version they speak; we speak all of them. */
    if ((value & 0xfff0) == 0xb0c0)
      r[index] = MIN(value, NB_DISPI_ID5);
    return;
  case NB_DISPI_XRES:
  case NB_DISPI_YRES:
  case NB_DISPI_BPP:
  case NB_DISPI_VIRT_WIDTH:
  case NB_DISPI_X_OFFSET:
  case NB_DISPI_Y_OFFSET:
    r[index] = value;
    break;
  case NB_DISPI_ENABLE:
    /* Video memory is kept across mode changes (no VBE clear): Linux's
     * driver keeps buffers there that it has already drawn. */
    r[index] = value & (NB_DISPI_ENABLED | NB_DISPI_GETCAPS | NB_DISPI_8BIT_DAC |
                        NB_DISPI_LFB_ENABLED | NB_DISPI_NOCLEARMEM);
    break;
  case NB_DISPI_BANK:
    /* Banked access goes through the legacy VGA window, which this device
     * does not have; the register is kept for drivers that read it back. */
    r[index] = value;
    return;
  default:
    return;   /* VIRT_HEIGHT and VIDEO_MEMORY are computed; beyond: nothing */
  }
  update_mode(dev);
}

/* Register BAR ------------------------------------------------------------ */

static uint64_t
mmio_read(void *opaque, uint64_t offset, unsigned size)
{
  NbBochsDisplay *dev = opaque;
  uint64_t v = 0;
  if (size > 8 || offset + size > NB_BOCHS_MMIO_SIZE)
    return ~UINT64_C(0);
  g_mutex_lock(&dev->lock);
  if (offset < NB_BOCHS_VGA_OFFSET) {
    for (unsigned i = 0; i < size; i++) {
      uint64_t at = offset + i;
      v |= (uint64_t)(at < EDID_SIZE ? dev->edid[at] : 0) << (8 * i);
    }
  } else if (offset < NB_BOCHS_VGA_OFFSET + sizeof dev->vga) {
    for (unsigned i = 0; i < size && offset - NB_BOCHS_VGA_OFFSET + i < sizeof dev->vga; i++)
      v |= (uint64_t)dev->vga[offset - NB_BOCHS_VGA_OFFSET + i] << (8 * i);
  } else if (offset >= NB_BOCHS_DISPI_OFFSET && offset < NB_BOCHS_DISPI_OFFSET + 2 * NB_DISPI_NUM_REGS) {
    /* 16-bit registers; wider reads see consecutive ones, a byte read one half. */
    uint64_t rel = offset - NB_BOCHS_DISPI_OFFSET;
    for (unsigned i = 0; i < size; i++) {
      unsigned index = (unsigned)((rel + i) / 2);
      uint16_t reg = index < NB_DISPI_NUM_REGS ? dispi_read(dev, index) : 0;
      v |= (uint64_t)((reg >> (8 * ((rel + i) & 1))) & 0xff) << (8 * i);
    }
  } else if (offset == NB_BOCHS_QEXT_OFFSET && size == 4) {
    v = QEXT_SIZE;
  } else if (offset == NB_BOCHS_QEXT_OFFSET + 4 && size == 4) {
    v = dev->byte_order;
  }
  g_mutex_unlock(&dev->lock);
  return v;
}

static void
mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbBochsDisplay *dev = opaque;
  if (size > 8 || offset + size > NB_BOCHS_MMIO_SIZE)
    return;
  g_mutex_lock(&dev->lock);
  if (offset >= NB_BOCHS_VGA_OFFSET && offset < NB_BOCHS_VGA_OFFSET + sizeof dev->vga) {
    for (unsigned i = 0; i < size && offset - NB_BOCHS_VGA_OFFSET + i < sizeof dev->vga; i++)
      dev->vga[offset - NB_BOCHS_VGA_OFFSET + i] = (uint8_t)(value >> (8 * i));
  } else if (offset >= NB_BOCHS_DISPI_OFFSET &&
             offset < NB_BOCHS_DISPI_OFFSET + 2 * NB_DISPI_NUM_REGS && (offset & 1) == 0 &&
             (size == 2 || size == 4)) {
    unsigned index = (unsigned)((offset - NB_BOCHS_DISPI_OFFSET) / 2);
    dispi_write(dev, index, (uint16_t)value);
    if (size == 4 && index + 1 < NB_DISPI_NUM_REGS)
      dispi_write(dev, index + 1, (uint16_t)(value >> 16));
  } else if (offset == NB_BOCHS_QEXT_OFFSET + 4 && size == 4) {
    /* Only little-endian pixels are shown; a big-endian request is kept so
     * the driver sees it refused when it reads back. */
    if ((uint32_t)value == QEXT_LITTLE)
      dev->byte_order = QEXT_LITTLE;
  }
  /* EDID is read only; everything else in the BAR is reserved. */
  g_mutex_unlock(&dev->lock);
}

static const NbIoOps mmio_ops = { mmio_read, mmio_write };

const NbIoOps *
nb_bochs_display_mmio_ops(void)
{
  return &mmio_ops;
}

/* Device ------------------------------------------------------------------ */

NbBochsDisplay *
nb_bochs_display_new(uint32_t vram_size, GError **error)
{
  if (vram_size < NB_BOCHS_VRAM_MIN || vram_size > NB_BOCHS_VRAM_MAX ||
      (vram_size & (vram_size - 1)) != 0) {
    g_set_error(error, NB_FRAMEBUFFER_ERROR, NB_FRAMEBUFFER_ERROR_FAILED,
                "bochs display: video memory of %u KiB is not a power of two between %u and "
                "%u MiB",
                vram_size >> 10, NB_BOCHS_VRAM_MIN >> 20, NB_BOCHS_VRAM_MAX >> 20);
    return NULL;
  }
  NbFramebuffer *fb = nb_framebuffer_new("nestbox-vram", vram_size, error);
  if (fb == NULL)
    return NULL;
  NbBochsDisplay *dev = g_new0(NbBochsDisplay, 1);
  dev->fb = fb;
  dev->vram_size = vram_size;
  g_mutex_init(&dev->lock);
  build_edid(dev->edid);
  /* Revision 2: the extended registers at 0x600 are there. */
  nb_pci_device_init(&dev->pci, "bochs-display", NB_BOCHS_VENDOR, NB_BOCHS_DEVICE,
                     NB_BOCHS_CLASS, 2, 0x1af4, 0x1100);
  dev->pci.config[NB_PCI_INTERRUPT_PIN] = 0;
  nb_pci_device_set_ram_bar(&dev->pci, 0, NB_PCI_BAR_MEM32, vram_size, nb_framebuffer_data(fb));
  nb_pci_device_set_bar(&dev->pci, 2, NB_PCI_BAR_MEM32, NB_BOCHS_MMIO_SIZE, &mmio_ops, dev);
  nb_bochs_display_reset(dev);
  return dev;
}

void
nb_bochs_display_reset(NbBochsDisplay *dev)
{
  g_mutex_lock(&dev->lock);
  memset(dev->regs, 0, sizeof dev->regs);
  memset(dev->vga, 0, sizeof dev->vga);
  dev->regs[NB_DISPI_ID] = NB_DISPI_ID5;
  dev->byte_order = QEXT_LITTLE;
  dev->warned = false;
  update_mode(dev);
  g_mutex_unlock(&dev->lock);
}

void
nb_bochs_display_free(NbBochsDisplay *dev)
{
  if (dev == NULL)
    return;
  nb_pci_device_clear(&dev->pci);
  nb_framebuffer_free(dev->fb);
  g_mutex_clear(&dev->lock);
  g_free(dev);
}

NbPciDevice *
nb_bochs_display_pci_device(NbBochsDisplay *dev)
{
  return &dev->pci;
}

NbFramebuffer *
nb_bochs_display_framebuffer(NbBochsDisplay *dev)
{
  return dev->fb;
}

const uint8_t *
nb_bochs_display_edid(NbBochsDisplay *dev)
{
  return dev->edid;
}
