/* The bochs display (PCI 1234:1111, class 0x0380), the device that Linux's
 * bochs DRM driver and SeaBIOS's vgabios-bochs-display drive, as QEMU's
 * "bochs-display" presents it:
 *
 *   BAR 0  the linear framebuffer: guest RAM of its own (a memfd, see
 *          hw/framebuffer.h), mapped straight into the guest, so drawing
 *          never exits to the VMM. KVM's dirty log on it says which pages
 *          were drawn on.
 *   BAR 2  4 KiB of registers:
 *          0x000-0x3ff  the monitor's EDID (read only); the driver reads it
 *                       when it finds a valid header there
 *          0x400-0x41f  the VGA ioports 0x3c0-0x3df (accepted; there is no
 *                       VGA behind them, the driver only unblanks)
 *          0x500-0x515  the DISPI (VBE) registers, 16 bits each
 *          0x600-0x607  QEMU's extended registers: size, byte order
 *
 * A mode the guest programs is checked before it is shown: zero or
 * oversized resolutions, an unknown depth, or a mode whose last line lies
 * past the framebuffer leave the screen blank, never touch memory outside
 * the buffer. */
#pragma once

#include "hw/framebuffer.h"
#include "hw/pci.h"

#include <glib.h>
#include <stdint.h>

#define NB_BOCHS_VENDOR 0x1234
#define NB_BOCHS_DEVICE 0x1111
#define NB_BOCHS_CLASS  0x038000

/* Default and bounds of the video memory (a power of two). */
#define NB_BOCHS_VRAM_DEFAULT (16u << 20)
#define NB_BOCHS_VRAM_MIN     (1u << 20)
#define NB_BOCHS_VRAM_MAX     (256u << 20)

#define NB_BOCHS_MMIO_SIZE    4096
#define NB_BOCHS_EDID_OFFSET  0x000
#define NB_BOCHS_VGA_OFFSET   0x400
#define NB_BOCHS_DISPI_OFFSET 0x500
#define NB_BOCHS_QEXT_OFFSET  0x600

/* DISPI register indices (each at DISPI_OFFSET + 2 * index). */
enum {
  NB_DISPI_ID,
  NB_DISPI_XRES,
  NB_DISPI_YRES,
  NB_DISPI_BPP,
  NB_DISPI_ENABLE,
  NB_DISPI_BANK,
  NB_DISPI_VIRT_WIDTH,
  NB_DISPI_VIRT_HEIGHT,
  NB_DISPI_X_OFFSET,
  NB_DISPI_Y_OFFSET,
  NB_DISPI_VIDEO_MEMORY_64K,
  NB_DISPI_NUM_REGS,
};

#define NB_DISPI_ID5            0xb0c5
#define NB_DISPI_ENABLED        0x01
#define NB_DISPI_GETCAPS        0x02
#define NB_DISPI_8BIT_DAC       0x20
#define NB_DISPI_LFB_ENABLED    0x40
#define NB_DISPI_NOCLEARMEM     0x80

/* The EDID's preferred mode, which Linux picks for its console. */
#define NB_BOCHS_PREFERRED_WIDTH  1024
#define NB_BOCHS_PREFERRED_HEIGHT 768

typedef struct NbBochsDisplay NbBochsDisplay;

/* vram_size: a power of two between the bounds above. */
NbBochsDisplay *nb_bochs_display_new(uint32_t vram_size, GError **error);
void nb_bochs_display_free(NbBochsDisplay *dev);
/* Back to power-on: display disabled, registers cleared (memory kept). */
void nb_bochs_display_reset(NbBochsDisplay *dev);

/* What nb_pci_bus_add takes. */
NbPciDevice *nb_bochs_display_pci_device(NbBochsDisplay *dev);
/* The picture, for consumers. Owned by the device. */
NbFramebuffer *nb_bochs_display_framebuffer(NbBochsDisplay *dev);

/* The register BAR's handlers, for tests. */
const NbIoOps *nb_bochs_display_mmio_ops(void);

/* The 128-byte EDID block the device presents, for tests. */
const uint8_t *nb_bochs_display_edid(NbBochsDisplay *dev);
