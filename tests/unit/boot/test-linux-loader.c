/* Linux direct boot: what a kernel finds in guest memory when it starts, for
 * fake bzImages built here and, when one is present, a real Debian kernel. */
#include "boot/boot-layout.h"
#include "boot/e820.h"
#include "boot/linux-loader.h"
#include "kvm/memory-map.h"

#include <asm/bootparam.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#define FAKE_SETUP_SECTS 2
#define FAKE_PAYLOAD     (64 * 1024)

typedef struct {
  uint16_t version;
  uint8_t loadflags;
  uint16_t xloadflags;
  uint32_t cmdline_size;
  uint32_t initrd_addr_max;
  uint32_t init_size;
  uint8_t relocatable;
  uint64_t pref_address;
} FakeKernel;

static const FakeKernel default_kernel = {
  .version = 0x020f, .loadflags = LOADED_HIGH, .xloadflags = XLF_KERNEL_64,
  .cmdline_size = 2047, .initrd_addr_max = 0x7fffffff, .init_size = 4 << 20,
};

/* A bzImage as far as the boot protocol can tell: setup sectors with a
 * setup header, then a payload whose bytes the test can recognise. */
static GBytes *
fake_bzimage(const FakeKernel *fk)
{
  gsize size = (FAKE_SETUP_SECTS + 1) * 512 + FAKE_PAYLOAD;
  uint8_t *k = g_malloc0(size);
  struct setup_header h = { 0 };
  h.setup_sects = FAKE_SETUP_SECTS;
  h.boot_flag = 0xaa55;
  h.jump = 0x66eb;   /* short jump over the header: its end is at 0x202 + 0x66 */
  h.header = 0x53726448;
  h.version = fk->version;
  h.loadflags = fk->loadflags;
  h.code32_start = 0x100000;
  h.initrd_addr_max = fk->initrd_addr_max;
  h.kernel_alignment = 0x200000;
  h.relocatable_kernel = fk->relocatable;
  h.xloadflags = fk->xloadflags;
  h.cmdline_size = fk->cmdline_size;
  h.pref_address = fk->pref_address;
  h.init_size = fk->init_size;
  h.setup_data = 0xdeadbeef;   /* must not reach the guest */
  memcpy(k + 0x1f1, &h, sizeof h);
  for (gsize i = (FAKE_SETUP_SECTS + 1) * 512; i < size; i++)
    k[i] = (uint8_t)(i * 7 + 3);
  return g_bytes_new_take(k, size);
}

static bool
load_fake(NbGuestMemory *mem, const FakeKernel *fk, const NbLinuxBootConfig *cfg,
          NbLinuxBootInfo *info, GError **error)
{
  g_autoptr(GBytes) k = fake_bzimage(fk);
  gsize size;
  const uint8_t *data = g_bytes_get_data(k, &size);
  return nb_linux_load_image(mem, data, size, "fake-vmlinuz", cfg, info, error);
}

static char *
write_temp_file(const void *data, gsize len, uint64_t sparse_size)
{
  GError *error = NULL;
  char *path = NULL;
  int fd = g_file_open_tmp("nestbox-boot-XXXXXX", &path, &error);
  g_assert_no_error(error);
  if (len)
    g_assert_cmpint(write(fd, data, len), ==, (gssize)len);
  if (sparse_size)
    g_assert_cmpint(ftruncate(fd, (off_t)sparse_size), ==, 0);
  close(fd);
  return path;
}

static const struct boot_params *
zero_page(NbGuestMemory *mem)
{
  const struct boot_params *bp = nb_guest_memory_ptr(mem, NB_BOOT_PARAMS_ADDR, sizeof *bp);
  g_assert_nonnull(bp);
  return bp;
}

static void
test_load_basic(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(128 * NB_MiB, &error);
  g_assert_no_error(error);

  uint8_t initrd[3 * 4096 + 100];
  for (gsize i = 0; i < sizeof initrd; i++)
    initrd[i] = (uint8_t)(i ^ 0x5a);
  g_autofree char *initrd_path = write_temp_file(initrd, sizeof initrd, 0);

  NbLinuxBootConfig cfg = { .initrd_path = initrd_path,
                            .cmdline = "console=ttyS0 panic=-1", .rsdp_addr = 0xe0000 };
  NbLinuxBootInfo info;
  g_assert_true(load_fake(mem, &default_kernel, &cfg, &info, &error));
  g_assert_no_error(error);
  g_unlink(initrd_path);

  /* Not relocatable: at 1 MiB, entered 0x200 in. */
  g_assert_cmphex(info.kernel_addr, ==, 0x100000);
  g_assert_cmphex(info.entry, ==, 0x100200);
  g_assert_cmphex(info.boot_params, ==, NB_BOOT_PARAMS_ADDR);
  g_assert_cmphex(info.kernel_end, ==, 0x100000 + (4 << 20));
  g_assert_cmphex(info.protocol, ==, 0x020f);
  const uint8_t *kernel = nb_guest_memory_ptr(mem, info.kernel_addr, FAKE_PAYLOAD);
  for (gsize i = 0; i < FAKE_PAYLOAD; i++)
    g_assert_cmpuint(kernel[i], ==, (uint8_t)((i + (FAKE_SETUP_SECTS + 1) * 512) * 7 + 3));

  const struct boot_params *bp = zero_page(mem);
  g_assert_cmphex(bp->hdr.header, ==, 0x53726448);
  g_assert_cmphex(bp->hdr.version, ==, 0x020f);
  g_assert_cmpuint(bp->hdr.setup_sects, ==, FAKE_SETUP_SECTS);
  g_assert_cmphex(bp->hdr.type_of_loader, ==, 0xff);
  g_assert_cmphex(bp->hdr.vid_mode, ==, 0xffff);
  g_assert_true(bp->hdr.loadflags & CAN_USE_HEAP);
  g_assert_true(bp->hdr.loadflags & LOADED_HIGH);
  g_assert_cmphex(bp->hdr.heap_end_ptr, ==, 0xfe00 - 0x200);
  g_assert_cmphex(bp->hdr.setup_data, ==, 0);
  g_assert_cmphex(bp->acpi_rsdp_addr, ==, 0xe0000);
  g_assert_cmphex(bp->hdr.code32_start, ==, 0x100000);

  /* Command line where the header says, NUL-terminated. */
  g_assert_cmphex(bp->hdr.cmd_line_ptr, ==, NB_BOOT_CMDLINE_ADDR);
  const char *cmdline = nb_guest_memory_ptr(mem, bp->hdr.cmd_line_ptr, 64);
  g_assert_cmpstr(cmdline, ==, "console=ttyS0 panic=-1");

  /* The initrd at the very top of RAM, page-aligned, intact. */
  g_assert_cmphex(bp->hdr.ramdisk_image, ==, info.initrd_addr);
  g_assert_cmpuint(bp->hdr.ramdisk_size, ==, sizeof initrd);
  g_assert_cmphex(info.initrd_addr & 0xfff, ==, 0);
  g_assert_cmphex(info.initrd_addr, ==, (128 * NB_MiB - sizeof initrd) & ~0xfffull);
  g_assert_cmpuint(info.initrd_addr, >=, info.kernel_end);
  g_assert_cmpmem(nb_guest_memory_ptr(mem, info.initrd_addr, sizeof initrd), sizeof initrd,
                  initrd, sizeof initrd);

  /* The zero page's e820 is the builder's. */
  g_assert_cmpuint(bp->e820_entries, ==, 3);
  g_assert_cmphex(bp->e820_table[0].addr, ==, 0);
  g_assert_cmphex(bp->e820_table[0].size, ==, 0x9fc00);
  g_assert_cmpuint(bp->e820_table[0].type, ==, NB_E820_RAM);
  g_assert_cmphex(bp->e820_table[1].addr, ==, 0x9fc00);
  g_assert_cmphex(bp->e820_table[1].size, ==, 0x100000 - 0x9fc00);
  g_assert_cmpuint(bp->e820_table[1].type, ==, NB_E820_RESERVED);
  g_assert_cmphex(bp->e820_table[2].addr, ==, 0x100000);
  g_assert_cmphex(bp->e820_table[2].size, ==, 127 * NB_MiB);
  g_assert_cmpuint(bp->e820_table[2].type, ==, NB_E820_RAM);
}

static void
test_load_no_initrd_no_cmdline(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(64 * NB_MiB, &error);
  g_assert_no_error(error);
  /* Stale bytes where the command line goes must not leak into it. */
  memset(nb_guest_memory_ptr(mem, NB_BOOT_CMDLINE_ADDR, 16), 'x', 16);
  NbLinuxBootConfig cfg = { 0 };
  NbLinuxBootInfo info;
  g_assert_true(load_fake(mem, &default_kernel, &cfg, &info, &error));
  g_assert_no_error(error);
  const struct boot_params *bp = zero_page(mem);
  g_assert_cmpuint(bp->hdr.ramdisk_image, ==, 0);
  g_assert_cmpuint(bp->hdr.ramdisk_size, ==, 0);
  g_assert_cmpuint(info.initrd_addr, ==, 0);
  g_assert_cmpuint(bp->acpi_rsdp_addr, ==, 0);
  g_assert_cmpstr(nb_guest_memory_ptr(mem, NB_BOOT_CMDLINE_ADDR, 1), ==, "");
}

static void
test_load_relocatable_preferred(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(128 * NB_MiB, &error);
  FakeKernel fk = default_kernel;
  fk.relocatable = 1;
  fk.pref_address = 0x1000000;
  NbLinuxBootConfig cfg = { .cmdline = "quiet" };
  NbLinuxBootInfo info;
  g_assert_true(load_fake(mem, &fk, &cfg, &info, &error));
  g_assert_no_error(error);
  g_assert_cmphex(info.kernel_addr, ==, 0x1000000);
  g_assert_cmphex(info.entry, ==, 0x1000200);
  g_assert_cmphex(zero_page(mem)->hdr.code32_start, ==, 0x1000000);

  /* A preferred address that does not fit in RAM falls back to 1 MiB. */
  g_autoptr(NbGuestMemory) small = nb_guest_memory_new(64 * NB_MiB, &error);
  fk.pref_address = 62 * NB_MiB;
  g_assert_true(load_fake(small, &fk, &cfg, &info, &error));
  g_assert_cmphex(info.kernel_addr, ==, 0x100000);
  /* So does one that is not aligned as the kernel asks. */
  fk.pref_address = 0x1001000;
  g_assert_true(load_fake(small, &fk, &cfg, &info, &error));
  g_assert_cmphex(info.kernel_addr, ==, 0x100000);
}

static void
test_initrd_below_addr_max(void)
{
  g_autoptr(GError) error = NULL;
  /* 3 GiB of RAM below the hole, as a 5 GiB machine has; memfd is sparse. */
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(5 * NB_GiB, &error);
  g_assert_no_error(error);
  FakeKernel fk = default_kernel;
  fk.initrd_addr_max = 0x37ffffff;   /* what protocols before 2.03 assumed */
  uint8_t data[8192] = { 1, 2, 3 };
  g_autofree char *path = write_temp_file(data, sizeof data, 0);
  NbLinuxBootConfig cfg = { .initrd_path = path };
  NbLinuxBootInfo info;
  g_assert_true(load_fake(mem, &fk, &cfg, &info, &error));
  g_assert_no_error(error);
  g_unlink(path);
  g_assert_cmphex(info.initrd_addr, ==, 0x38000000 - 8192);
  g_assert_cmpuint(zero_page(mem)->e820_entries, ==, 4);

  /* With a generous limit it goes right under the 3 GiB hole. */
  fk.initrd_addr_max = 0xffffffff;
  g_autofree char *path2 = write_temp_file(data, sizeof data, 0);
  cfg.initrd_path = path2;
  g_assert_true(load_fake(mem, &fk, &cfg, &info, &error));
  g_unlink(path2);
  g_assert_cmphex(info.initrd_addr, ==, NB_MEM_LOW_LIMIT - 8192);
}

static void
test_rsdp_needs_protocol_2_14(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(64 * NB_MiB, &error);
  FakeKernel fk = default_kernel;
  fk.version = 0x020c;
  memset(nb_guest_memory_ptr(mem, NB_BOOT_PARAMS_ADDR, 4096), 0xcc, 4096);
  NbLinuxBootConfig cfg = { .rsdp_addr = 0xe0000 };
  NbLinuxBootInfo info;
  g_assert_true(load_fake(mem, &fk, &cfg, &info, &error));
  g_assert_no_error(error);
  /* The zero page is rebuilt from scratch, not patched. */
  g_assert_cmphex(zero_page(mem)->acpi_rsdp_addr, ==, 0);
  g_assert_cmphex(zero_page(mem)->sentinel, ==, 0);
}

static void
expect_refused(const FakeKernel *fk, const NbLinuxBootConfig *cfg, int code, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(64 * NB_MiB, &error);
  NbLinuxBootInfo info = { .entry = 42 };
  g_assert_false(load_fake(mem, fk, cfg, &info, &error));
  g_assert_error(error, NB_BOOT_ERROR, code);
  if (g_test_verbose())
    g_printerr("%s\n", error->message);
  g_assert_nonnull(strstr(error->message, needle));
  g_assert_cmpuint(info.entry, ==, 42);
}

static void
test_refuse_old_and_32bit(void)
{
  NbLinuxBootConfig cfg = { 0 };
  FakeKernel fk = default_kernel;
  fk.version = 0x0205;
  expect_refused(&fk, &cfg, NB_BOOT_ERROR_UNSUPPORTED, "boot protocol 2.05, which is too old");
  fk = default_kernel;
  fk.xloadflags = 0;
  expect_refused(&fk, &cfg, NB_BOOT_ERROR_UNSUPPORTED, "no 64-bit entry point");
  fk = default_kernel;
  fk.version = 0x020b;   /* before xloadflags existed */
  expect_refused(&fk, &cfg, NB_BOOT_ERROR_UNSUPPORTED, "no 64-bit entry point");
  fk = default_kernel;
  fk.loadflags = 0;
  expect_refused(&fk, &cfg, NB_BOOT_ERROR_UNSUPPORTED, "zImage");
}

static void
test_refuse_not_bzimage(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(64 * NB_MiB, &error);
  NbLinuxBootInfo info;

  /* An ELF vmlinux, as people try: big enough, wrong magic. */
  g_autofree uint8_t *elf = g_malloc0(8192);
  memcpy(elf, "\177ELF", 4);
  g_autofree char *path = write_temp_file(elf, 8192, 0);
  NbLinuxBootConfig cfg = { .kernel_path = path };
  g_assert_false(nb_linux_load(mem, &cfg, &info, &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL);
  g_autofree char *want = g_strdup_printf("%s is not a Linux kernel (bzImage)", path);
  g_assert_true(g_str_has_prefix(error->message, want));
  g_clear_error(&error);
  g_unlink(path);

  /* Too short to hold a header at all. */
  g_autofree char *tiny = write_temp_file("MZ", 2, 0);
  cfg.kernel_path = tiny;
  g_assert_false(nb_linux_load(mem, &cfg, &info, &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL);
  g_assert_nonnull(strstr(error->message, "only 2 bytes long"));
  g_clear_error(&error);
  g_unlink(tiny);

  /* A valid header whose setup sectors run past the end: truncated. */
  g_autoptr(GBytes) k = fake_bzimage(&default_kernel);
  g_assert_false(nb_linux_load_image(mem, g_bytes_get_data(k, NULL), 1024, "cut", &cfg, &info,
                                     &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL);
  g_assert_nonnull(strstr(error->message, "truncated"));
  g_clear_error(&error);

  /* Missing file. */
  cfg.kernel_path = "/nonexistent/vmlinuz";
  g_assert_false(nb_linux_load(mem, &cfg, &info, &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_IO);
  g_assert_nonnull(strstr(error->message, "/nonexistent/vmlinuz"));
}

static void
test_refuse_long_cmdline(void)
{
  FakeKernel fk = default_kernel;
  fk.cmdline_size = 255;
  g_autofree char *line = g_strnfill(256, 'a');
  NbLinuxBootConfig cfg = { .cmdline = line };
  expect_refused(&fk, &cfg, NB_BOOT_ERROR_CMDLINE, "256 bytes long, but fake-vmlinuz accepts at most 255");

  /* Exactly cmdline_size is fine. */
  line[255] = '\0';
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(64 * NB_MiB, &error);
  NbLinuxBootInfo info;
  g_assert_true(load_fake(mem, &fk, &cfg, &info, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(strlen(nb_guest_memory_ptr(mem, NB_BOOT_CMDLINE_ADDR, 1)), ==, 255);

  /* A kernel that claims more than our area holds is capped by the area. */
  fk.cmdline_size = 0x7fffffff;
  g_autofree char *huge = g_strnfill(NB_BOOT_CMDLINE_MAX, 'b');
  cfg.cmdline = huge;
  expect_refused(&fk, &cfg, NB_BOOT_ERROR_CMDLINE, "accepts at most 65535");
}

static void
test_refuse_initrd_too_big(void)
{
  /* 64 MiB machine, kernel unpacks into 1..41 MiB: a 30 MiB initrd cannot
   * go anywhere above it. The file is sparse, nothing is written. */
  g_autofree char *path = write_temp_file(NULL, 0, 30 * NB_MiB);
  FakeKernel fk = default_kernel;
  fk.init_size = 40 << 20;
  NbLinuxBootConfig cfg = { .initrd_path = path };
  expect_refused(&fk, &cfg, NB_BOOT_ERROR_NO_ROOM, "(30.0 MiB) does not fit in guest memory: only 23.0 MiB are free");
  g_unlink(path);

  cfg.initrd_path = "/nonexistent/initrd.img";
  expect_refused(&default_kernel, &cfg, NB_BOOT_ERROR_IO, "cannot open initrd /nonexistent/initrd.img");

  g_autofree char *empty = write_temp_file(NULL, 0, 0);
  cfg.initrd_path = empty;
  expect_refused(&default_kernel, &cfg, NB_BOOT_ERROR_IO, "is empty");
  g_unlink(empty);
}

static void
test_refuse_kernel_too_big(void)
{
  FakeKernel fk = default_kernel;
  fk.init_size = 70 << 20;
  NbLinuxBootConfig cfg = { 0 };
  expect_refused(&fk, &cfg, NB_BOOT_ERROR_NO_ROOM, "needs 70.0 MiB from 1 MiB up");
}

/* The kernel the KVM tests boot, when it has been built. */
static char *
find_real_kernel(void)
{
  const char *dir = g_getenv("NESTBOX_GUEST_DIR");
  g_autofree char *path = g_build_filename(dir ? dir : NESTBOX_GUEST_DIR_DEFAULT, "vmlinuz", NULL);
  return g_file_test(path, G_FILE_TEST_IS_REGULAR) ? g_steal_pointer(&path) : NULL;
}

static void
test_real_kernel(void)
{
  g_autofree char *kernel = find_real_kernel();
  if (kernel == NULL) {
    g_test_skip("no guest kernel: set NESTBOX_GUEST_DIR to a folder with vmlinuz "
                "(tests/images/build-guest-image.sh builds one)");
    return;
  }
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(256 * NB_MiB, &error);
  g_autofree char *path = write_temp_file("070701", 6, 4096);
  NbLinuxBootConfig cfg = { .kernel_path = kernel, .initrd_path = path,
                            .cmdline = "console=ttyS0", .rsdp_addr = NB_BOOT_ACPI_ADDR };
  NbLinuxBootInfo info;
  g_assert_true(nb_linux_load(mem, &cfg, &info, &error));
  g_assert_no_error(error);
  g_unlink(path);
  const struct boot_params *bp = zero_page(mem);
  g_test_message("%s: protocol %x, kernel at 0x%" G_GINT64_MODIFIER "x..0x%" G_GINT64_MODIFIER
                 "x, initrd at 0x%" G_GINT64_MODIFIER "x", kernel, info.protocol,
                 info.kernel_addr, info.kernel_end, info.initrd_addr);
  g_assert_cmpuint(info.protocol, >=, 0x020c);
  g_assert_true(bp->hdr.xloadflags & XLF_KERNEL_64);
  g_assert_cmphex(info.entry, ==, info.kernel_addr + 0x200);
  g_assert_cmpuint(info.kernel_addr % bp->hdr.kernel_alignment, ==, 0);
  g_assert_cmpuint(info.kernel_end - info.kernel_addr, >=, bp->hdr.init_size);
  g_assert_cmpuint(info.initrd_addr, >=, info.kernel_end);
  if (info.protocol >= 0x020e)
    g_assert_cmphex(bp->acpi_rsdp_addr, ==, NB_BOOT_ACPI_ADDR);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/linux-loader/load-basic", test_load_basic);
  g_test_add_func("/linux-loader/no-initrd-no-cmdline", test_load_no_initrd_no_cmdline);
  g_test_add_func("/linux-loader/relocatable-preferred", test_load_relocatable_preferred);
  g_test_add_func("/linux-loader/initrd-below-addr-max", test_initrd_below_addr_max);
  g_test_add_func("/linux-loader/rsdp-needs-2.14", test_rsdp_needs_protocol_2_14);
  g_test_add_func("/linux-loader/refuse-old-and-32bit", test_refuse_old_and_32bit);
  g_test_add_func("/linux-loader/refuse-not-bzimage", test_refuse_not_bzimage);
  g_test_add_func("/linux-loader/refuse-long-cmdline", test_refuse_long_cmdline);
  g_test_add_func("/linux-loader/refuse-initrd-too-big", test_refuse_initrd_too_big);
  g_test_add_func("/linux-loader/refuse-kernel-too-big", test_refuse_kernel_too_big);
  g_test_add_func("/linux-loader/real-kernel", test_real_kernel);
  return g_test_run();
}
