/* fw_cfg as firmware sees it: the signature, ID and file directory through
 * the ports and through DMA, DMA requests with bad addresses failing alone,
 * and the ACPI tables handed over through the table loader: the test runs
 * the loader's script the way SeaBIOS does and checks that what comes out
 * is a valid set of tables that iasl disassembles. */
#include "boot/firmware.h"
#include "boot/fw-cfg.h"
#include "boot/linux-loader.h"
#include "kvm/io-bus.h"
#include "kvm/memory-map.h"

#include <glib/gstdio.h>
#include <string.h>

#define RAM (64 * NB_MiB)

typedef struct {
  NbGuestMemory *mem;
  NbIoBus *pio;
  NbFwCfg *cfg;
} Fixture;

static void
setup(Fixture *f, gconstpointer data)
{
  (void)data;
  g_autoptr(GError) error = NULL;
  f->mem = nb_guest_memory_new(RAM, &error);
  g_assert_no_error(error);
  f->pio = nb_io_bus_new("pio");
  f->cfg = nb_fw_cfg_new(f->mem);
  g_assert_true(nb_fw_cfg_register(f->cfg, f->pio, &error));
  g_assert_no_error(error);
}

static void
teardown(Fixture *f, gconstpointer data)
{
  (void)data;
  nb_fw_cfg_free(f->cfg);
  nb_io_bus_free(f->pio);
  nb_guest_memory_free(f->mem);
}

static void
out16(Fixture *f, uint16_t port, uint16_t v)
{
  nb_io_bus_write(f->pio, port, &v, 2);
}

static void
out32(Fixture *f, uint16_t port, uint32_t v)
{
  nb_io_bus_write(f->pio, port, &v, 4);
}

static uint8_t
in8(Fixture *f, uint16_t port)
{
  uint8_t v = 0;
  nb_io_bus_read(f->pio, port, &v, 1);
  return v;
}

static void
port_read(Fixture *f, uint16_t selector, void *buf, size_t len)
{
  out16(f, NB_FW_CFG_PORT_SELECTOR, selector);
  for (size_t i = 0; i < len; i++)
    ((uint8_t *)buf)[i] = in8(f, NB_FW_CFG_PORT_DATA);
}

/* Writes a descriptor at desc and starts it the way SeaBIOS does (low half
 * only); returns the control word the device wrote back. */
static uint32_t
dma(Fixture *f, uint64_t desc, uint32_t control, uint32_t length, uint64_t address)
{
  uint8_t d[16];
  uint32_t c = GUINT32_TO_BE(control), l = GUINT32_TO_BE(length);
  uint64_t a = GUINT64_TO_BE(address);
  memcpy(d, &c, 4);
  memcpy(d + 4, &l, 4);
  memcpy(d + 8, &a, 8);
  g_assert_true(nb_guest_memory_write(f->mem, desc, d, sizeof d));
  out32(f, NB_FW_CFG_PORT_DMA, GUINT32_TO_BE((uint32_t)(desc >> 32)));
  out32(f, NB_FW_CFG_PORT_DMA + 4, GUINT32_TO_BE((uint32_t)desc));
  g_assert_true(nb_guest_memory_read(f->mem, desc, &c, 4));
  return GUINT32_FROM_BE(c);
}

static void
test_signature_and_id(Fixture *f, gconstpointer data)
{
  (void)data;
  char sig[5] = { 0 };
  port_read(f, NB_FW_CFG_SIGNATURE, sig, 4);
  g_assert_cmpstr(sig, ==, "QEMU");
  uint32_t id;
  port_read(f, NB_FW_CFG_ID, &id, 4);
  g_assert_cmpuint(GUINT32_FROM_LE(id), ==, NB_FW_CFG_VERSION | NB_FW_CFG_VERSION_DMA);
  /* The DMA register reads "QEMU CFG", in memory order. */
  char dsig[9] = { 0 };
  uint32_t hi = 0, lo = 0;
  nb_io_bus_read(f->pio, NB_FW_CFG_PORT_DMA, &hi, 4);
  nb_io_bus_read(f->pio, NB_FW_CFG_PORT_DMA + 4, &lo, 4);
  memcpy(dsig, &hi, 4);
  memcpy(dsig + 4, &lo, 4);
  g_assert_cmpstr(dsig, ==, "QEMU CFG");
  /* A selector with nothing behind it reads zeros, past the end too. */
  uint8_t z[4] = { 1, 1, 1, 1 };
  port_read(f, 0x1234, z, 4);
  g_assert_cmpuint(z[0] | z[1] | z[2] | z[3], ==, 0);
}

static void
test_files(Fixture *f, gconstpointer data)
{
  (void)data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) a = g_bytes_new_static("hello", 5);
  g_autoptr(GBytes) b = g_bytes_new_static("0123456789", 10);
  g_assert_true(nb_fw_cfg_add_file(f->cfg, "etc/a", a, &error));
  g_assert_true(nb_fw_cfg_add_file(f->cfg, "opt/b", b, &error));
  g_assert_false(nb_fw_cfg_add_file(f->cfg, "etc/a", b, &error));
  g_assert_error(error, NB_FW_CFG_ERROR, NB_FW_CFG_ERROR_INVALID);
  g_clear_error(&error);
  g_assert_false(nb_fw_cfg_add_file(f->cfg, "", b, &error));
  g_clear_error(&error);
  char longname[80];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  g_assert_false(nb_fw_cfg_add_file(f->cfg, longname, b, &error));
  g_clear_error(&error);
  g_assert_false(nb_fw_cfg_add_item(f->cfg, NB_FW_CFG_FILE_DIR, b, &error));
  g_clear_error(&error);

  uint8_t dir[4 + 2 * 64];
  port_read(f, NB_FW_CFG_FILE_DIR, dir, sizeof dir);
  uint32_t count;
  memcpy(&count, dir, 4);
  g_assert_cmpuint(GUINT32_FROM_BE(count), ==, 2);
  const uint8_t *e = dir + 4 + 64;   /* opt/b */
  uint32_t size;
  uint16_t sel;
  memcpy(&size, e, 4);
  memcpy(&sel, e + 4, 2);
  g_assert_cmpuint(GUINT32_FROM_BE(size), ==, 10);
  g_assert_cmpstr((const char *)e + 8, ==, "opt/b");
  sel = GUINT16_FROM_BE(sel);

  char buf[12] = { 0 };
  port_read(f, sel, buf, 10);
  g_assert_cmpstr(buf, ==, "0123456789");

  /* DMA: select and read 4, skip 2, then read 6 of the 4 left: zero-filled. */
  uint64_t desc = 0x1000, target = 0x2000;
  g_assert_cmpuint(dma(f, desc, ((uint32_t)sel << 16) | NB_FW_CFG_DMA_SELECT | NB_FW_CFG_DMA_READ,
                       4, target), ==, 0);
  g_assert_cmpuint(dma(f, desc, NB_FW_CFG_DMA_SKIP, 2, 0), ==, 0);
  memset(buf, 'z', sizeof buf);
  g_assert_true(nb_guest_memory_write(f->mem, target + 4, buf, 8));
  g_assert_cmpuint(dma(f, desc, NB_FW_CFG_DMA_READ, 6, target + 4), ==, 0);
  g_assert_true(nb_guest_memory_read(f->mem, target, buf, 11));
  g_assert_cmpmem(buf, 11, "01236789\0\0z", 11);
  g_assert_cmpuint(nb_fw_cfg_dma_errors(f->cfg), ==, 0);
}

static void
test_dma_bad(Fixture *f, gconstpointer data)
{
  (void)data;
  g_autoptr(GBytes) a = g_bytes_new_static("hello", 5);
  g_assert_true(nb_fw_cfg_add_file(f->cfg, "etc/a", a, NULL));
  uint32_t read_a = ((uint32_t)NB_FW_CFG_FILE_FIRST << 16) | NB_FW_CFG_DMA_SELECT | NB_FW_CFG_DMA_READ;
  uint64_t desc = 0x1000;

  /* A buffer outside RAM, one that runs off its end, one in the PCI hole. */
  g_assert_cmpuint(dma(f, desc, read_a, 5, RAM), ==, NB_FW_CFG_DMA_ERROR);
  g_assert_cmpuint(dma(f, desc, read_a, 5, RAM - 2), ==, NB_FW_CFG_DMA_ERROR);
  g_assert_cmpuint(dma(f, desc, read_a, 5, NB_MEM_PCI_MMIO_BASE), ==, NB_FW_CFG_DMA_ERROR);
  g_assert_cmpuint(dma(f, desc, read_a, UINT32_MAX, 0x2000), ==, NB_FW_CFG_DMA_ERROR);
  g_assert_cmpuint(dma(f, desc, read_a, 5, UINT64_MAX - 1), ==, NB_FW_CFG_DMA_ERROR);
  /* Nothing is writable. */
  g_assert_cmpuint(dma(f, desc, ((uint32_t)NB_FW_CFG_FILE_FIRST << 16) | NB_FW_CFG_DMA_SELECT |
                                    NB_FW_CFG_DMA_WRITE, 5, 0x2000), ==, NB_FW_CFG_DMA_ERROR);
  g_assert_cmpuint(nb_fw_cfg_dma_errors(f->cfg), ==, 6);

  /* A descriptor outside RAM, or straddling its end: ignored, counted. */
  out32(f, NB_FW_CFG_PORT_DMA, 0);
  out32(f, NB_FW_CFG_PORT_DMA + 4, GUINT32_TO_BE((uint32_t)RAM - 8));
  out32(f, NB_FW_CFG_PORT_DMA, GUINT32_TO_BE(0xffffffffu));
  out32(f, NB_FW_CFG_PORT_DMA + 4, GUINT32_TO_BE(0xfffffff0u));
  g_assert_cmpuint(nb_fw_cfg_dma_errors(f->cfg), ==, 8);

  /* Still works afterwards. */
  g_assert_cmpuint(dma(f, desc, read_a, 5, 0x2000), ==, 0);
  char buf[6] = { 0 };
  g_assert_true(nb_guest_memory_read(f->mem, 0x2000, buf, 5));
  g_assert_cmpstr(buf, ==, "hello");
}

/* The table loader, run as SeaBIOS runs it. */
typedef struct {
  char name[NB_FW_CFG_FILE_NAME_MAX];
  uint8_t *data;
  size_t len;
  uint64_t addr;
} Blob;

static Blob *
find_blob(Blob *blobs, unsigned n, const char *name)
{
  for (unsigned i = 0; i < n; i++)
    if (strncmp(blobs[i].name, name, NB_FW_CFG_FILE_NAME_MAX) == 0)
      return &blobs[i];
  g_error("the loader names %s, which was not allocated", name);
}

static uint64_t
le(const uint8_t *p, unsigned n)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static uint8_t
sum(const uint8_t *p, size_t n)
{
  uint8_t s = 0;
  for (size_t i = 0; i < n; i++)
    s += p[i];
  return s;
}

/* Puts the tables in one buffer "at" 0x100000 (tables) and 0xF0000 (RSDP). */
static void
run_loader(NbFwCfg *cfg, Blob *blobs, unsigned *n_blobs)
{
  GBytes *script = nb_fw_cfg_get_file(cfg, NB_FIRMWARE_TABLE_LOADER);
  g_assert_nonnull(script);
  gsize len;
  const uint8_t *s = g_bytes_get_data(script, &len);
  g_assert_cmpuint(len % 128, ==, 0);
  uint64_t high = 0x100000, fseg = 0xF0000;
  *n_blobs = 0;
  for (gsize at = 0; at < len; at += 128) {
    const uint8_t *e = s + at;
    uint32_t cmd = (uint32_t)le(e, 4);
    if (cmd == 1) {
      Blob *b = &blobs[(*n_blobs)++];
      memcpy(b->name, e + 4, NB_FW_CFG_FILE_NAME_MAX);
      GBytes *file = nb_fw_cfg_get_file(cfg, b->name);
      g_assert_nonnull(file);
      b->data = g_memdup2(g_bytes_get_data(file, NULL), g_bytes_get_size(file));
      b->len = g_bytes_get_size(file);
      uint32_t align = (uint32_t)le(e + 60, 4);
      uint64_t *next = e[64] == NB_FW_CFG_LOADER_ZONE_FSEG ? &fseg : &high;
      b->addr = (*next + align - 1) & ~((uint64_t)align - 1);
      *next = b->addr + b->len;
    } else if (cmd == 2) {
      Blob *dst = find_blob(blobs, *n_blobs, (const char *)e + 4);
      Blob *src = find_blob(blobs, *n_blobs, (const char *)e + 60);
      uint32_t off = (uint32_t)le(e + 116, 4);
      uint8_t size = e[120];
      g_assert_true(size == 1 || size == 2 || size == 4 || size == 8);
      g_assert_cmpuint(off + size, <=, dst->len);
      uint64_t v = le(dst->data + off, size) + src->addr;
      for (unsigned i = 0; i < size; i++)
        dst->data[off + i] = (uint8_t)(v >> (8 * i));
    } else if (cmd == 3) {
      Blob *b = find_blob(blobs, *n_blobs, (const char *)e + 4);
      uint32_t off = (uint32_t)le(e + 60, 4), start = (uint32_t)le(e + 64, 4),
               n = (uint32_t)le(e + 68, 4);
      g_assert_cmpuint(start + n, <=, b->len);
      g_assert_cmpuint(off, <, b->len);
      b->data[off] -= sum(b->data + start, n);
    } else {
      g_error("unexpected loader command %u", cmd);
    }
  }
}

/* The table at guest address addr, from the placed blobs. */
static const uint8_t *
table_at(Blob *blobs, unsigned n, uint64_t addr, const char *sig)
{
  for (unsigned i = 0; i < n; i++) {
    if (addr >= blobs[i].addr && addr < blobs[i].addr + blobs[i].len) {
      const uint8_t *t = blobs[i].data + (addr - blobs[i].addr);
      g_assert_cmpmem(t, 4, sig, 4);
      uint32_t len = (uint32_t)le(t + 4, 4);
      g_assert_cmpuint(addr + len, <=, blobs[i].addr + blobs[i].len);
      if (strcmp(sig, "FACS") != 0)
        g_assert_cmpuint(sum(t, len), ==, 0);
      return t;
    }
  }
  g_error("no table %s at 0x%" G_GINT64_MODIFIER "x", sig, addr);
}

static void
disassemble(const char *dir, const char *name, const uint8_t *table)
{
  uint32_t len = (uint32_t)le(table + 4, 4);
  g_autofree char *file = g_strdup_printf("%s.dat", name);
  g_autofree char *path = g_build_filename(dir, file, NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(g_file_set_contents(path, (const char *)table, len, &error));
  const char *argv[] = { "iasl", "-d", file, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                             &err, &status, &error));
  g_assert_no_error(error);
  if (!g_spawn_check_wait_status(status, NULL) || strstr(out, "rror") || strstr(err, "rror") ||
      strstr(out, "arning") || strstr(err, "arning"))
    g_error("iasl -d %s failed:\n%s\n%s", name, out, err);
}

static void
test_acpi_loader(Fixture *f, gconstpointer data)
{
  (void)data;
  NbAcpiConfig acpi;
  nb_acpi_config_init(&acpi, 4, 8 * NB_GiB, 64 * NB_GiB);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_firmware_add_acpi(f->cfg, &acpi, &error));
  g_assert_no_error(error);

  Blob blobs[4];
  unsigned n = 0;
  run_loader(f->cfg, blobs, &n);
  g_assert_cmpuint(n, ==, 2);
  Blob *rsdp = find_blob(blobs, n, NB_FIRMWARE_ACPI_RSDP_FILE);
  g_assert_cmpuint(rsdp->addr, >=, 0xE0000);
  g_assert_cmpuint(rsdp->addr + rsdp->len, <=, 0x100000);
  g_assert_cmpuint(rsdp->addr % 16, ==, 0);
  g_assert_cmpmem(rsdp->data, 8, "RSD PTR ", 8);
  g_assert_cmpuint(sum(rsdp->data, 20), ==, 0);
  g_assert_cmpuint(sum(rsdp->data, 36), ==, 0);

  const uint8_t *xsdt = table_at(blobs, n, le(rsdp->data + 24, 8), "XSDT");
  const uint8_t *rsdt = table_at(blobs, n, le(rsdp->data + 16, 4), "RSDT");
  uint32_t xn = ((uint32_t)le(xsdt + 4, 4) - 36) / 8, rn = ((uint32_t)le(rsdt + 4, 4) - 36) / 4;
  g_assert_cmpuint(xn, ==, 2);
  g_assert_cmpuint(rn, ==, 2);
  const uint8_t *fadt = NULL, *madt = NULL;
  for (uint32_t i = 0; i < xn; i++) {
    uint64_t a = le(xsdt + 36 + 8 * i, 8);
    g_assert_cmpuint(le(rsdt + 36 + 4 * i, 4), ==, a);
    const uint8_t *t = table_at(blobs, n, a, i == 0 ? "FACP" : "APIC");
    if (i == 0)
      fadt = t;
    else
      madt = t;
  }
  const uint8_t *dsdt = table_at(blobs, n, le(fadt + 140, 8), "DSDT");
  g_assert_cmpuint(le(fadt + 40, 4), ==, le(fadt + 140, 8));
  const uint8_t *facs = table_at(blobs, n, le(fadt + 36, 4), "FACS");
  g_assert_cmpuint(le(fadt + 36, 4) % 64, ==, 0);
  (void)facs;

  g_autofree char *iasl = g_find_program_in_path("iasl");
  if (iasl == NULL) {
    g_test_skip("iasl (acpica-tools) is not installed");
  } else {
    g_autofree char *dir = g_dir_make_tmp("nb-fwcfg-XXXXXX", &error);
    g_assert_no_error(error);
    disassemble(dir, "dsdt", dsdt);
    disassemble(dir, "facp", fadt);
    disassemble(dir, "apic", madt);
    disassemble(dir, "xsdt", xsdt);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    g_assert_cmpint(system(cmd), ==, 0);
  }
  for (unsigned i = 0; i < n; i++)
    g_free(blobs[i].data);
}

static void
test_machine_items(Fixture *f, gconstpointer data)
{
  (void)data;
  const char *order[] = { "/pci@i0cf8/scsi@3/disk@0,0", "/pci@i0cf8/scsi@4/disk@0,0", NULL };
  NbFirmwareConfig config = {
    .mem = f->mem, .n_cpus = 3, .acpi = NULL, .boot_order = order, .serial_console_port = 0x3f8,
  };
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_firmware_setup_fw_cfg(f->cfg, &config, &error));
  g_assert_no_error(error);
  uint16_t cpus;
  port_read(f, NB_FW_CFG_NB_CPUS, &cpus, 2);
  g_assert_cmpuint(GUINT16_FROM_LE(cpus), ==, 3);

  GBytes *e820 = nb_fw_cfg_get_file(f->cfg, "etc/e820");
  g_assert_nonnull(e820);
  g_assert_cmpuint(g_bytes_get_size(e820), ==, 20);
  const uint8_t *e = g_bytes_get_data(e820, NULL);
  g_assert_cmpuint(le(e, 8), ==, 0);
  g_assert_cmpuint(le(e + 8, 8), ==, RAM);
  g_assert_cmpuint(le(e + 16, 4), ==, 1);

  GBytes *boot = nb_fw_cfg_get_file(f->cfg, "bootorder");
  g_assert_nonnull(boot);
  g_assert_cmpstr(g_bytes_get_data(boot, NULL), ==,
                  "/pci@i0cf8/scsi@3/disk@0,0\n/pci@i0cf8/scsi@4/disk@0,0\n");
  GBytes *sercon = nb_fw_cfg_get_file(f->cfg, "etc/sercon-port");
  g_assert_nonnull(sercon);
  g_assert_cmpuint(le(g_bytes_get_data(sercon, NULL), 2), ==, 0x3f8);
}

static uint32_t
item_u32(Fixture *f, uint16_t selector)
{
  uint32_t v = 0;
  port_read(f, selector, &v, 4);
  return GUINT32_FROM_LE(v);
}

/* A bzImage header is enough: the items are what the option ROM copies. */
static void
test_linux_items(Fixture *f, gconstpointer data)
{
  (void)data;
  size_t ksize = 64 * 1024;
  g_autofree uint8_t *k = g_malloc0(ksize);
  k[0x1f1] = 3;                                   /* setup: 4 sectors */
  k[0x1fe] = 0x55; k[0x1ff] = 0xaa;
  memcpy(k + 0x202, "HdrS", 4);
  k[0x206] = 0x0f; k[0x207] = 0x02;               /* protocol 2.15 */
  k[0x211] = 0x01;                                /* LOADED_HIGH */
  k[0x22c] = 0xff; k[0x22d] = 0xff; k[0x22e] = 0xff; k[0x22f] = 0x7f;
  k[0x238] = 0xff; k[0x239] = 0x07;               /* cmdline_size 2047 */
  for (size_t i = 2048; i < ksize; i++)
    k[i] = (uint8_t)i;
  uint8_t initrd[10000];
  memset(initrd, 0x5a, sizeof initrd);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_firmware_add_linux(f->cfg, f->mem, k, ksize, "k", initrd, sizeof initrd,
                                      "console=ttyS0", &error));
  g_assert_no_error(error);
  g_assert_cmpuint(item_u32(f, NB_FW_CFG_SETUP_SIZE), ==, 2048);
  g_assert_cmpuint(item_u32(f, NB_FW_CFG_KERNEL_SIZE), ==, ksize - 2048);
  g_assert_cmpuint(item_u32(f, NB_FW_CFG_KERNEL_ADDR), ==, 0x100000);
  g_assert_cmpuint(item_u32(f, NB_FW_CFG_CMDLINE_SIZE), ==, strlen("console=ttyS0") + 1);
  uint32_t initrd_addr = item_u32(f, NB_FW_CFG_INITRD_ADDR);
  g_assert_cmpuint(initrd_addr % 4096, ==, 0);
  g_assert_cmpuint(initrd_addr + sizeof initrd, <=, RAM - NB_MiB);
  g_assert_cmpuint(item_u32(f, NB_FW_CFG_INITRD_SIZE), ==, sizeof initrd);
  uint8_t setup[2048];
  port_read(f, NB_FW_CFG_SETUP_DATA, setup, sizeof setup);
  g_assert_cmpuint(le(setup + 0x228, 4), ==, 0x20000);      /* cmd_line_ptr */
  g_assert_cmpuint(le(setup + 0x218, 4), ==, initrd_addr);  /* ramdisk_image */
  g_assert_cmpuint(setup[0x211] & 0x80, ==, 0x80);          /* CAN_USE_HEAP */
  uint8_t first[4];
  port_read(f, NB_FW_CFG_KERNEL_DATA, first, 4);
  g_assert_cmpuint(first[0], ==, (uint8_t)2048);
  g_assert_cmpuint(first[1], ==, (uint8_t)2049);

  /* Not a kernel; an initrd that cannot fit; a command line too long. */
  g_autofree uint8_t *junk = g_malloc0(ksize);
  g_assert_false(nb_firmware_add_linux(f->cfg, f->mem, junk, ksize, "junk", NULL, 0, NULL, &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL);
  g_clear_error(&error);
  g_assert_false(nb_firmware_add_linux(f->cfg, f->mem, k, ksize, "k", initrd, RAM, NULL, &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NO_ROOM);
  g_clear_error(&error);
  g_autofree char *longline = g_strnfill(3000, 'x');
  g_assert_false(nb_firmware_add_linux(f->cfg, f->mem, k, ksize, "k", NULL, 0, longline, &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_CMDLINE);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add("/fw-cfg/signature-id", Fixture, NULL, setup, test_signature_and_id, teardown);
  g_test_add("/fw-cfg/files", Fixture, NULL, setup, test_files, teardown);
  g_test_add("/fw-cfg/dma-bad-addresses", Fixture, NULL, setup, test_dma_bad, teardown);
  g_test_add("/fw-cfg/acpi-table-loader", Fixture, NULL, setup, test_acpi_loader, teardown);
  g_test_add("/fw-cfg/machine-items", Fixture, NULL, setup, test_machine_items, teardown);
  g_test_add("/fw-cfg/linux-items", Fixture, NULL, setup, test_linux_items, teardown);
  return g_test_run();
}
