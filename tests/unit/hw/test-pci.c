#include "hw/pci.h"
#include "kvm/memory-map.h"

#include <string.h>

typedef struct {
  unsigned reads, writes;
  uint64_t last_offset;
} Bar;

static uint64_t
bar_read(void *opaque, uint64_t offset, unsigned size)
{
  Bar *b = opaque;
  b->reads++;
  b->last_offset = offset;
  return 0xabcd;
}

static void
bar_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  Bar *b = opaque;
  b->writes++;
  b->last_offset = offset;
}

static const NbIoOps bar_ops = { bar_read, bar_write };

typedef struct {
  unsigned gsi;
  bool level;
  unsigned calls;
} Lines;

static void
set_line(void *ctx, unsigned gsi, bool level)
{
  Lines *l = ctx;
  l->gsi = gsi;
  l->level = level;
  l->calls++;
}

static const NbInterruptOps irq_ops = { .set_line = set_line };

typedef struct {
  NbIoBus *pio, *mmio;
  NbPciBus *bus;
  Lines lines;
  NbInterrupts irqs;
} Fixture;

static void
fixture_init(Fixture *f)
{
  memset(f, 0, sizeof *f);
  f->pio = nb_io_bus_new("pio");
  f->mmio = nb_io_bus_new("mmio");
  f->irqs = (NbInterrupts){ &irq_ops, &f->lines };
  f->bus = nb_pci_bus_new(f->pio, f->mmio, &f->irqs, 8 * NB_GiB);
  g_assert_true(nb_pci_bus_register_host_bridge(f->bus, NULL));
}

static void
fixture_clear(Fixture *f)
{
  nb_pci_bus_free(f->bus);
  nb_io_bus_free(f->pio);
  nb_io_bus_free(f->mmio);
}

static uint32_t
cfg_read(Fixture *f, unsigned slot, unsigned reg, unsigned size)
{
  uint32_t addr = 0x80000000u | (slot << 11) | (reg & 0xfc);
  nb_io_bus_write(f->pio, 0xcf8, &addr, 4);
  uint32_t v = 0;
  nb_io_bus_read(f->pio, 0xcfc + (reg & 3), &v, size);
  return v;
}

static void
cfg_write(Fixture *f, unsigned slot, unsigned reg, uint32_t value, unsigned size)
{
  uint32_t addr = 0x80000000u | (slot << 11) | (reg & 0xfc);
  nb_io_bus_write(f->pio, 0xcf8, &addr, 4);
  nb_io_bus_write(f->pio, 0xcfc + (reg & 3), &value, size);
}

static void
test_enumeration(void)
{
  Fixture f;
  fixture_init(&f);
  /* Slot 0 is the host bridge; empty slots read all ones. */
  g_assert_cmpuint(cfg_read(&f, 0, 0, 4), ==, 0x00081b36);
  g_assert_cmpuint(cfg_read(&f, 0, 0x08, 4) >> 8, ==, 0x060000);
  g_assert_cmpuint(cfg_read(&f, 5, 0, 4), ==, 0xffffffff);
  /* Disabled config address: nothing answers. */
  uint32_t off = 0;
  nb_io_bus_write(f.pio, 0xcf8, &off, 4);
  uint32_t v = 0;
  nb_io_bus_read(f.pio, 0xcfc, &v, 4);
  g_assert_cmpuint(v, ==, 0xffffffff);
  fixture_clear(&f);
}

static void
test_bars(void)
{
  Fixture f;
  fixture_init(&f);
  NbPciDevice dev;
  Bar mem = { 0 }, io = { 0 }, mem64 = { 0 };
  nb_pci_device_init(&dev, "test", 0x1af4, 0x1041, 0x020000, 1, 0x1af4, 1);
  nb_pci_device_set_bar(&dev, 0, NB_PCI_BAR_MEM32, 0x1000, &bar_ops, &mem);
  nb_pci_device_set_bar(&dev, 1, NB_PCI_BAR_IO, 0x20, &bar_ops, &io);
  nb_pci_device_set_bar(&dev, 2, NB_PCI_BAR_MEM64, 0x4000, &bar_ops, &mem64);
  g_assert_true(nb_pci_bus_add(f.bus, &dev, NULL));
  g_assert_cmpuint(dev.slot, ==, 1);

  uint32_t bar0 = cfg_read(&f, 1, 0x10, 4);
  g_assert_cmpuint(bar0 & 0xf, ==, 0);
  g_assert_cmpuint(bar0, >=, NB_MEM_PCI_MMIO_BASE);
  uint32_t bar1 = cfg_read(&f, 1, 0x14, 4);
  g_assert_cmpuint(bar1 & 1, ==, 1);
  uint64_t bar2 = (cfg_read(&f, 1, 0x18, 4) & ~0xfu) | ((uint64_t)cfg_read(&f, 1, 0x1c, 4) << 32);
  g_assert_cmpuint(cfg_read(&f, 1, 0x18, 4) & 0x6, ==, 0x4);
  g_assert_cmpuint(bar2, >=, 8 * NB_GiB);

  /* Decoding is on: accesses reach the device. */
  uint32_t v = 1;
  g_assert_true(nb_io_bus_write(f.mmio, bar0 + 0x10, &v, 4));
  g_assert_cmpuint(mem.writes, ==, 1);
  g_assert_cmpuint(mem.last_offset, ==, 0x10);
  g_assert_true(nb_io_bus_read(f.pio, (bar1 & ~3u) + 4, &v, 2));
  g_assert_cmpuint(io.reads, ==, 1);
  g_assert_true(nb_io_bus_read(f.mmio, bar2 + 8, &v, 4));
  g_assert_cmpuint(mem64.reads, ==, 1);

  /* Sizing as SeaBIOS does it, decoding on: the all-ones pattern is no
   * placement (it would land on the firmware at the top of 4 GiB). */
  cfg_write(&f, 1, 0x10, 0xffffffff, 4);
  g_assert_false(nb_io_bus_write(f.mmio, 0xfffff000, &v, 4));
  g_assert_false(nb_io_bus_write(f.mmio, bar0, &v, 4));
  cfg_write(&f, 1, 0x10, bar0, 4);
  g_assert_true(nb_io_bus_write(f.mmio, bar0 + 0x10, &v, 4));
  g_assert_cmpuint(mem.writes, ==, 2);

  /* Sizing as Linux does it: decode off, write all ones, read the mask. */
  uint16_t cmd = cfg_read(&f, 1, 0x04, 2);
  cfg_write(&f, 1, 0x04, cmd & ~3u, 2);
  g_assert_false(nb_io_bus_write(f.mmio, bar0, &v, 4));
  cfg_write(&f, 1, 0x10, 0xffffffff, 4);
  g_assert_cmpuint(cfg_read(&f, 1, 0x10, 4), ==, 0xfffff000);
  cfg_write(&f, 1, 0x14, 0xffffffff, 4);
  g_assert_cmpuint(cfg_read(&f, 1, 0x14, 4), ==, 0xffffffe1);
  cfg_write(&f, 1, 0x1c, 0xffffffff, 4);
  g_assert_cmpuint(cfg_read(&f, 1, 0x1c, 4), ==, 0xffffffff);

  /* Move BAR0 and re-enable: the old address is gone, the new one works. */
  uint32_t moved = NB_MEM_PCI_MMIO_BASE + 0x100000;
  cfg_write(&f, 1, 0x10, moved, 4);
  cfg_write(&f, 1, 0x14, bar1, 4);
  cfg_write(&f, 1, 0x1c, (uint32_t)(bar2 >> 32), 4);
  cfg_write(&f, 1, 0x04, cmd, 2);
  g_assert_false(nb_io_bus_write(f.mmio, bar0, &v, 4));
  g_assert_true(nb_io_bus_write(f.mmio, moved + 4, &v, 4));
  g_assert_cmpuint(mem.writes, ==, 3);

  /* Read-only identity. */
  cfg_write(&f, 1, 0x00, 0x12345678, 4);
  g_assert_cmpuint(cfg_read(&f, 1, 0x00, 4), ==, 0x10411af4);

  nb_pci_device_clear(&dev);
  fixture_clear(&f);
}

/* The expansion ROM the way SeaBIOS maps a display's VGA BIOS: size it,
 * enable it where it was placed, read the image, disable it again. */
static void
test_rom(void)
{
  Fixture f;
  fixture_init(&f);
  NbPciDevice dev, plain;
  uint8_t image[5000];
  for (unsigned i = 0; i < sizeof image; i++)
    image[i] = (uint8_t)(i * 7 + 3);
  image[0] = 0x55, image[1] = 0xaa;
  g_autoptr(GBytes) bytes = g_bytes_new(image, sizeof image);
  nb_pci_device_init(&dev, "display", 0x1234, 0x1111, 0x038000, 2, 0x1af4, 0x1100);
  nb_pci_device_set_rom(&dev, bytes);
  nb_pci_device_init(&plain, "plain", 0x1af4, 0x1041, 0x020000, 1, 0x1af4, 1);
  g_assert_true(nb_pci_bus_add(f.bus, &dev, NULL));
  g_assert_true(nb_pci_bus_add(f.bus, &plain, NULL));

  /* Placed but off: nothing answers there. */
  uint32_t rom = cfg_read(&f, 1, 0x30, 4);
  g_assert_cmpuint(rom & 1, ==, 0);
  g_assert_cmpuint(rom, >=, NB_MEM_PCI_MMIO_BASE);
  g_assert_cmpuint(rom % 8192, ==, 0);
  uint32_t v = 0;
  g_assert_false(nb_io_bus_read(f.mmio, rom, &v, 4));

  /* Sizing: 5000 bytes take an 8 KiB BAR; the enable bit stays writable. */
  cfg_write(&f, 1, 0x30, 0xfffffffe, 4);
  g_assert_cmpuint(cfg_read(&f, 1, 0x30, 4), ==, 0xffffe000);
  cfg_write(&f, 1, 0x30, rom | 1, 4);
  g_assert_cmpuint(cfg_read(&f, 1, 0x30, 4), ==, rom | 1);
  v = 0;
  g_assert_true(nb_io_bus_read(f.mmio, rom, &v, 2));
  g_assert_cmpuint(v, ==, 0xaa55);
  g_assert_true(nb_io_bus_read(f.mmio, rom + 4096, &v, 4));
  g_assert_cmpuint(v, ==, (uint32_t)image[4096] | image[4097] << 8 | image[4098] << 16 |
                          (uint32_t)image[4099] << 24);
  /* Past the image: erased, 0xff; the last image byte is still there. */
  v = 0;
  g_assert_true(nb_io_bus_read(f.mmio, rom + sizeof image - 1, &v, 2));
  g_assert_cmpuint(v, ==, 0xff00u | image[sizeof image - 1]);
  /* Read-only: a write changes nothing. */
  uint32_t junk = 0;
  g_assert_true(nb_io_bus_write(f.mmio, rom, &junk, 4));
  v = 0;
  g_assert_true(nb_io_bus_read(f.mmio, rom, &v, 2));
  g_assert_cmpuint(v, ==, 0xaa55);

  /* Memory decode off hides it, as does clearing the enable bit. */
  uint16_t cmd = cfg_read(&f, 1, 0x04, 2);
  cfg_write(&f, 1, 0x04, cmd & ~NB_PCI_COMMAND_MEMORY, 2);
  g_assert_false(nb_io_bus_read(f.mmio, rom, &v, 2));
  cfg_write(&f, 1, 0x04, cmd, 2);
  g_assert_true(nb_io_bus_read(f.mmio, rom, &v, 2));
  cfg_write(&f, 1, 0x30, rom, 4);
  g_assert_false(nb_io_bus_read(f.mmio, rom, &v, 2));

  /* A device without a ROM: the register reads 0 whatever is written. */
  cfg_write(&f, 2, 0x30, 0xffffffff, 4);
  g_assert_cmpuint(cfg_read(&f, 2, 0x30, 4), ==, 0);

  nb_pci_device_clear(&dev);
  nb_pci_device_clear(&plain);
  fixture_clear(&f);
}

static void
test_intx(void)
{
  Fixture f;
  fixture_init(&f);
  NbPciDevice dev;
  nb_pci_device_init(&dev, "test", 0x1af4, 0x1041, 0x020000, 1, 0x1af4, 1);
  g_assert_true(nb_pci_bus_add(f.bus, &dev, NULL));
  g_assert_cmpuint(cfg_read(&f, 1, 0x3d, 1), ==, 1);
  unsigned gsi = cfg_read(&f, 1, 0x3c, 1);
  g_assert_cmpuint(gsi, >=, 16);
  g_assert_cmpuint(gsi, <=, 23);

  nb_pci_device_set_intx(&dev, true);
  g_assert_true(f.lines.level);
  g_assert_cmpuint(f.lines.gsi, ==, gsi);
  g_assert_cmpuint(cfg_read(&f, 1, 0x06, 2) & NB_PCI_STATUS_INTX, !=, 0);
  /* INTx disable in the command register masks the line. */
  uint16_t cmd = cfg_read(&f, 1, 0x04, 2);
  cfg_write(&f, 1, 0x04, cmd | NB_PCI_COMMAND_INTX_OFF, 2);
  g_assert_false(f.lines.level);
  cfg_write(&f, 1, 0x04, cmd, 2);
  g_assert_true(f.lines.level);
  nb_pci_device_set_intx(&dev, false);
  g_assert_false(f.lines.level);
  nb_pci_device_clear(&dev);
  fixture_clear(&f);
}

static void
test_capabilities(void)
{
  NbPciDevice dev;
  nb_pci_device_init(&dev, "test", 0x1af4, 0x1041, 0x020000, 1, 0x1af4, 1);
  uint8_t body1[14] = { 1, 2, 3 };
  uint8_t body2[10] = { 9 };
  uint8_t a = nb_pci_device_add_capability(&dev, NB_PCI_CAP_ID_VENDOR, body1, sizeof body1, NULL);
  uint8_t b = nb_pci_device_add_capability(&dev, NB_PCI_CAP_ID_MSIX, body2, sizeof body2, NULL);
  g_assert_cmpuint(dev.config[NB_PCI_CAPABILITY_LIST], ==, a);
  g_assert_cmpuint(dev.config[a], ==, NB_PCI_CAP_ID_VENDOR);
  g_assert_cmpuint(dev.config[a + 1], ==, b);
  g_assert_cmpuint(dev.config[b + 1], ==, 0);
  g_assert_cmpuint(b % 4, ==, 0);
  g_assert_true(dev.config[NB_PCI_STATUS] & NB_PCI_STATUS_CAP_LIST);
  nb_pci_device_clear(&dev);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/pci/enumeration", test_enumeration);
  g_test_add_func("/pci/bars", test_bars);
  g_test_add_func("/pci/intx", test_intx);
  g_test_add_func("/pci/rom", test_rom);
  g_test_add_func("/pci/capabilities", test_capabilities);
  return g_test_run();
}
