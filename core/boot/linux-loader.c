#include "boot/linux-loader.h"
#include "boot/boot-layout.h"
#include "boot/e820.h"

#include <asm/bootparam.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK(nb-boot-error-quark, nb_boot_error)

/* The zero page and the setup header are little-endian, like the only hosts
 * KVM on x86 runs on; the struct is used as it lies in the file. */
#if G_BYTE_ORDER != G_LITTLE_ENDIAN
#error "the Linux loader assumes a little-endian host"
#endif

#define SETUP_HEADER_OFFSET 0x1f1
#define BOOT_FLAG_OFFSET    0x1fe
#define HDRS_OFFSET         0x202
#define HDRS_MAGIC          0x53726448u   /* "HdrS" */
#define ENTRY64_OFFSET      0x200
/* End of the real-mode heap relative to the setup code, as boot.rst suggests
 * for a setup at 0x90000 with its stack below 0x9FE00. Unused by a 64-bit
 * entry, but the kernel reads it before it knows how it was entered. */
#define HEAP_END_PTR        (0xfe00 - 0x200)
#define LOADER_UNDECLARED   0xff

static double
mib(uint64_t bytes)
{
  return (double)bytes / (double)(1 << 20);
}

static uint16_t
read_le16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
read_le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Validates the bzImage and copies its setup header into hdr. Fills
 * setup_size with the bytes before the protected-mode kernel. */
static bool
parse_header(const uint8_t *k, size_t size, const char *name, struct setup_header *hdr,
             size_t *setup_size, GError **error)
{
  if (size < HDRS_OFFSET + 8) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL,
                "%s is not a Linux kernel (bzImage): it is only %zu bytes long — "
                "give the path of a kernel image such as /boot/vmlinuz-…", name, size);
    return false;
  }
  if (read_le32(k + HDRS_OFFSET) != HDRS_MAGIC || read_le16(k + BOOT_FLAG_OFFSET) != 0xaa55) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL,
                "%s is not a Linux kernel (bzImage): it has no “HdrS” boot header at offset "
                "0x202 — give the path of a kernel image such as /boot/vmlinuz-… "
                "(an uncompressed vmlinux ELF file cannot be booted directly)", name);
    return false;
  }
  uint16_t version = read_le16(k + 0x206);
  if (version < NB_LINUX_MIN_PROTOCOL) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_UNSUPPORTED,
                "%s uses Linux boot protocol %u.%02u, which is too old: Nestbox needs 2.06 or "
                "later — use a newer kernel", name, version >> 8, version & 0xff);
    return false;
  }

  unsigned sects = k[SETUP_HEADER_OFFSET];
  if (sects == 0)
    sects = 4;   /* what a setup_sects of 0 has always meant */
  *setup_size = ((size_t)sects + 1) * 512;
  if (*setup_size >= size) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NOT_KERNEL,
                "%s is not a Linux kernel (bzImage): its %u setup sectors run past the end of "
                "the %zu-byte file — the file is truncated or damaged", name, sects, size);
    return false;
  }

  /* The header ends where the byte at 0x201 says; copy no more than that, no
   * more than the struct we know, and nothing from beyond the setup code. */
  size_t hdr_len = HDRS_OFFSET - SETUP_HEADER_OFFSET + k[0x201];
  hdr_len = MIN(hdr_len, sizeof *hdr);
  hdr_len = MIN(hdr_len, *setup_size - SETUP_HEADER_OFFSET);
  memset(hdr, 0, sizeof *hdr);
  memcpy(hdr, k + SETUP_HEADER_OFFSET, hdr_len);
  hdr->setup_sects = (uint8_t)sects;

  if (!(hdr->loadflags & LOADED_HIGH)) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_UNSUPPORTED,
                "%s is a zImage that must be loaded below 1 MiB: Nestbox boots only bzImage "
                "kernels — use a kernel built as bzImage", name);
    return false;
  }
  if (version < 0x020c || !(hdr->xloadflags & XLF_KERNEL_64)) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_UNSUPPORTED,
                "%s has no 64-bit entry point (boot protocol %u.%02u, xloadflags 0x%x): "
                "Nestbox boots x86-64 kernels only — use a 64-bit kernel (Linux 3.8 or later)",
                name, version >> 8, version & 0xff, hdr->xloadflags);
    return false;
  }
  return true;
}

/* The RAM region that holds 1 MiB: kernel, initrd and the low structures
 * all go there, since the kernel reads them before it can see high memory. */
static const NbRamRegion *
low_region(const NbGuestMemory *mem)
{
  for (unsigned i = 0; i < mem->n_regions; i++) {
    const NbRamRegion *r = &mem->regions[i];
    if (r->gpa <= NB_BOOT_KERNEL_ADDR && NB_BOOT_KERNEL_ADDR - r->gpa < r->size)
      return r;
  }
  return NULL;
}

static bool
choose_kernel_address(const struct setup_header *hdr, uint64_t need, uint64_t low_end,
                      const char *name, uint64_t *addr, GError **error)
{
  /* A relocatable kernel runs where it is put, but at its preferred address
   * it skips moving itself before it unpacks. */
  uint64_t pref = hdr->version >= 0x020a ? hdr->pref_address : 0;
  uint64_t align = hdr->kernel_alignment ? hdr->kernel_alignment : 1;
  if (hdr->relocatable_kernel && pref >= NB_BOOT_KERNEL_ADDR && pref % align == 0 &&
      pref < low_end && need <= low_end - pref) {
    *addr = pref;
    return true;
  }
  if (need > low_end - NB_BOOT_KERNEL_ADDR) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NO_ROOM,
                "kernel %s needs %.1f MiB from 1 MiB up to unpack itself, but the machine has "
                "only %.1f MiB of memory there — give the machine more memory",
                name, mib(need), mib(low_end - NB_BOOT_KERNEL_ADDR));
    return false;
  }
  *addr = NB_BOOT_KERNEL_ADDR;
  return true;
}

static bool
check_cmdline(const struct setup_header *hdr, const char *cmdline, const char *name,
              size_t *len_out, GError **error)
{
  size_t len = cmdline ? strlen(cmdline) : 0;
  /* cmdline_size excludes the NUL; our area's size includes it. */
  uint64_t limit = MIN((uint64_t)hdr->cmdline_size, NB_BOOT_CMDLINE_MAX - 1);
  if (len > limit) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_CMDLINE,
                "the kernel command line is %zu bytes long, but %s accepts at most %" G_GUINT64_FORMAT
                " — shorten the command line", len, name, limit);
    return false;
  }
  *len_out = len;
  return true;
}

typedef struct {
  int fd;
  uint64_t size;
  uint64_t addr;
} Initrd;

static void
initrd_clear(Initrd *rd)
{
  if (rd->fd >= 0)
    close(rd->fd);
  rd->fd = -1;
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Initrd, initrd_clear)

static bool
open_initrd(const char *path, Initrd *rd, GError **error)
{
  rd->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (rd->fd < 0) {
    int e = errno;
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_IO,
                "cannot open initrd %s: %s — check the path and its permissions",
                path, g_strerror(e));
    return false;
  }
  struct stat st;
  if (fstat(rd->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_IO,
                "initrd %s is not a regular file — give the path of an initramfs image", path);
    return false;
  }
  if (st.st_size == 0) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_IO,
                "initrd %s is empty — give the path of an initramfs image, or no initrd", path);
    return false;
  }
  rd->size = (uint64_t)st.st_size;
  return true;
}

/* As high as possible below what the kernel can reach and below the end of
 * low RAM, page-aligned, above the kernel's unpacking area. */
static bool
place_initrd(const struct setup_header *hdr, Initrd *rd, uint64_t kernel_end, uint64_t low_end,
             const char *path, GError **error)
{
  uint64_t top = MIN(low_end, (uint64_t)hdr->initrd_addr_max + 1);
  uint64_t room = top > kernel_end ? top - kernel_end : 0;
  uint64_t base = rd->size <= top ? (top - rd->size) & ~UINT64_C(0xfff) : 0;
  if (rd->size > top || base < kernel_end || rd->size > UINT32_MAX) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NO_ROOM,
                "initrd %s (%.1f MiB) does not fit in guest memory: only %.1f MiB are free "
                "between the kernel's end at 0x%" G_GINT64_MODIFIER "x and 0x%"
                G_GINT64_MODIFIER "x — give the machine more memory or use a smaller initrd",
                path, mib(rd->size), mib(room), kernel_end, top);
    return false;
  }
  rd->addr = base;
  return true;
}

static bool
read_initrd(NbGuestMemory *mem, Initrd *rd, const char *path, GError **error)
{
  uint8_t *dst = nb_guest_memory_ptr(mem, rd->addr, rd->size);
  g_assert(dst != NULL);   /* place_initrd kept it inside the low region */
  uint64_t done = 0;
  while (done < rd->size) {
    ssize_t n = pread(rd->fd, dst + done, MIN(rd->size - done, (uint64_t)1 << 30), (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_IO,
                  "cannot read initrd %s: %s — check the file", path,
                  n < 0 ? g_strerror(errno) : "it became shorter while it was read");
      return false;
    }
    done += (uint64_t)n;
  }
  return true;
}

static bool
write_low(NbGuestMemory *mem, uint64_t gpa, const void *src, size_t len, const char *what,
          GError **error)
{
  if (len == 0 || nb_guest_memory_write(mem, gpa, src, len))
    return true;
  g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NO_ROOM,
              "cannot place the %s at 0x%" G_GINT64_MODIFIER "x: the machine has no RAM there",
              what, gpa);
  return false;
}

bool
nb_linux_load_image(NbGuestMemory *mem, const uint8_t *kernel, size_t kernel_size,
                    const char *kernel_name, const NbLinuxBootConfig *cfg,
                    NbLinuxBootInfo *out, GError **error)
{
  g_return_val_if_fail(mem && kernel && cfg && out, false);

  struct setup_header hdr;
  size_t setup_size;
  if (!parse_header(kernel, kernel_size, kernel_name, &hdr, &setup_size, error))
    return false;

  size_t cmdline_len;
  if (!check_cmdline(&hdr, cfg->cmdline, kernel_name, &cmdline_len, error))
    return false;

  const NbRamRegion *low = low_region(mem);
  if (low == NULL) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NO_ROOM,
                "cannot load kernel %s: the machine has no RAM at 1 MiB", kernel_name);
    return false;
  }
  uint64_t low_end = low->gpa + low->size;

  const uint8_t *pm = kernel + setup_size;
  uint64_t pm_size = kernel_size - setup_size;
  uint64_t init_size = hdr.version >= 0x020a ? hdr.init_size : 0;
  uint64_t need = MAX(pm_size, init_size);
  uint64_t kaddr;
  if (!choose_kernel_address(&hdr, need, low_end, kernel_name, &kaddr, error))
    return false;
  uint64_t kernel_end = kaddr + need;

  g_auto(Initrd) rd = { .fd = -1 };
  if (cfg->initrd_path) {
    if (!open_initrd(cfg->initrd_path, &rd, error) ||
        !place_initrd(&hdr, &rd, kernel_end, low_end, cfg->initrd_path, error))
      return false;
  }

  /* Everything fits: now write. */
  if (!write_low(mem, kaddr, pm, pm_size, "kernel", error))
    return false;
  if (cfg->initrd_path && !read_initrd(mem, &rd, cfg->initrd_path, error))
    return false;

  char *cmdline_dst = nb_guest_memory_ptr(mem, NB_BOOT_CMDLINE_ADDR, cmdline_len + 1);
  if (cmdline_dst == NULL)
    return write_low(mem, NB_BOOT_CMDLINE_ADDR, NULL, 1, "command line", error);
  if (cmdline_len)
    memcpy(cmdline_dst, cfg->cmdline, cmdline_len);
  cmdline_dst[cmdline_len] = '\0';

  struct boot_params *bp = g_new0(struct boot_params, 1);
  bp->hdr = hdr;
  bp->hdr.type_of_loader = LOADER_UNDECLARED;
  bp->hdr.vid_mode = 0xffff;   /* "normal": no mode change */
  bp->hdr.loadflags |= CAN_USE_HEAP;
  bp->hdr.heap_end_ptr = HEAP_END_PTR;
  bp->hdr.code32_start = (uint32_t)kaddr;
  bp->hdr.cmd_line_ptr = (uint32_t)NB_BOOT_CMDLINE_ADDR;
  bp->hdr.ramdisk_image = (uint32_t)rd.addr;
  bp->hdr.ramdisk_size = (uint32_t)rd.size;
  bp->hdr.setup_data = 0;      /* the file's value means nothing here */
  if (hdr.version >= 0x020e)
    bp->acpi_rsdp_addr = cfg->rsdp_addr;

  NbE820Entry e820[NB_E820_MAX_ENTRIES];
  unsigned n = nb_e820_build(mem, e820, G_N_ELEMENTS(e820));
  G_STATIC_ASSERT(NB_E820_MAX_ENTRIES <= E820_MAX_ENTRIES_ZEROPAGE);
  for (unsigned i = 0; i < n; i++) {
    bp->e820_table[i].addr = e820[i].addr;
    bp->e820_table[i].size = e820[i].size;
    bp->e820_table[i].type = e820[i].type;
  }
  bp->e820_entries = (uint8_t)n;

  bool ok = write_low(mem, NB_BOOT_PARAMS_ADDR, bp, sizeof *bp, "zero page", error);
  g_free(bp);
  if (!ok)
    return false;

  *out = (NbLinuxBootInfo){
    .entry = kaddr + ENTRY64_OFFSET,
    .boot_params = NB_BOOT_PARAMS_ADDR,
    .kernel_addr = kaddr,
    .kernel_end = kernel_end,
    .initrd_addr = rd.addr,
    .initrd_size = rd.size,
    .protocol = hdr.version,
  };
  return true;
}

bool
nb_linux_load(NbGuestMemory *mem, const NbLinuxBootConfig *cfg, NbLinuxBootInfo *out,
              GError **error)
{
  g_return_val_if_fail(cfg && cfg->kernel_path, false);
  g_autofree char *data = NULL;
  gsize size = 0;
  g_autoptr(GError) local = NULL;
  if (!g_file_get_contents(cfg->kernel_path, &data, &size, &local)) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_IO,
                "cannot read kernel %s: %s — check the path and its permissions",
                cfg->kernel_path, local->message);
    return false;
  }
  return nb_linux_load_image(mem, (const uint8_t *)data, size, cfg->kernel_path, cfg, out,
                             error);
}
