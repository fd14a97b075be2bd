#include "kvm/guest-memory.h"
#include "kvm/memory-map.h"
#include "base/size.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

G_DEFINE_QUARK(nb-guest-memory-error-quark, nb_guest_memory_error)

static uint64_t
host_backable_bytes(void)
{
  struct sysinfo info;
  if (sysinfo(&info) != 0)
    return UINT64_MAX;
  return ((uint64_t)info.totalram + info.totalswap) * info.mem_unit;
}

NbGuestMemory *
nb_guest_memory_new(uint64_t ram_size, GError **error)
{
  return nb_guest_memory_new_split(ram_size, NB_MEM_LOW_LIMIT, NB_MEM_HIGH_BASE, error);
}

NbGuestMemory *
nb_guest_memory_new_split(uint64_t ram_size, uint64_t low_limit, uint64_t high_base,
                          GError **error)
{
  g_return_val_if_fail(low_limit <= high_base, NULL);

  if (ram_size < NB_GUEST_MEMORY_MIN) {
    g_autofree char *min = nb_size_format(NB_GUEST_MEMORY_MIN);
    g_set_error(error, NB_GUEST_MEMORY_ERROR, NB_GUEST_MEMORY_ERROR_TOO_SMALL,
                "%" G_GUINT64_FORMAT " bytes of memory is too little: a machine needs at least %s",
                ram_size, min);
    return NULL;
  }
  if ((ram_size & 4095) != 0) {
    g_set_error(error, NB_GUEST_MEMORY_ERROR, NB_GUEST_MEMORY_ERROR_TOO_SMALL,
                "memory size %" G_GUINT64_FORMAT " is not a multiple of 4 KiB", ram_size);
    return NULL;
  }
  uint64_t backable = host_backable_bytes();
  if (ram_size > backable) {
    g_autofree char *want = nb_size_format(ram_size);
    g_autofree char *have = nb_size_format(backable & ~(NB_MiB - 1));
    g_set_error(error, NB_GUEST_MEMORY_ERROR, NB_GUEST_MEMORY_ERROR_TOO_LARGE,
                "cannot give the machine %s of memory: this host has only about %s of RAM and swap — choose less memory",
                want, have);
    return NULL;
  }

  /* 2 MiB more than asked, trimmed to a 2 MiB boundary: guest-physical and
   * host addresses then agree modulo 2 MiB, which KVM needs before it maps a
   * huge page of the host as one large page of the guest. */
  size_t slack = NB_GUEST_MEMORY_HUGE_PAGE;
  uint8_t *raw = mmap(NULL, ram_size + slack, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    g_set_error(error, NB_GUEST_MEMORY_ERROR, NB_GUEST_MEMORY_ERROR_TOO_LARGE,
                "cannot map %" G_GUINT64_FORMAT " bytes of guest memory: %s — choose less memory",
                ram_size, g_strerror(errno));
    return NULL;
  }
  uint8_t *map = (uint8_t *)(((uintptr_t)raw + slack - 1) & ~(uintptr_t)(slack - 1));
  if (map > raw)
    munmap(raw, (size_t)(map - raw));
  if (map < raw + slack)
    munmap(map + ram_size, (size_t)(raw + slack - map));
  /* Private anonymous memory, not a shared memfd: transparent huge pages
   * back it (a shared memfd gets them only where the host's admin turned on
   * shmem huge pages, off by default), so the guest's TLB misses walk one
   * level less of the host's tables, and its boot faults in 2 MiB at a time
   * (tests/bench/virtio/RESULTS.md); KSM merges only private anonymous
   * pages, so identical pages across machines (zeroes, the same OS) can be
   * shared at all; and a process nestbox-vm forks does not inherit it. */
  (void)madvise(map, ram_size, MADV_HUGEPAGE);
  (void)madvise(map, ram_size, MADV_MERGEABLE);
  (void)madvise(map, ram_size, MADV_DONTFORK);

  NbGuestMemory *mem = g_new0(NbGuestMemory, 1);
  mem->mapping = map;
  mem->ram_size = ram_size;

  uint64_t low = MIN(ram_size, low_limit);
  mem->regions[0] = (NbRamRegion){ .gpa = 0, .size = low, .host = map };
  mem->n_regions = 1;
  if (ram_size > low) {
    mem->regions[1] = (NbRamRegion){ .gpa = high_base, .size = ram_size - low,
                                     .host = map + low };
    mem->n_regions = 2;
  }
  return mem;
}

void
nb_guest_memory_free(NbGuestMemory *mem)
{
  if (mem == NULL)
    return;
  munmap(mem->mapping, mem->ram_size);
  g_free(mem);
}

void *
nb_guest_memory_ptr(const NbGuestMemory *mem, uint64_t gpa, uint64_t len)
{
  if (len == 0)
    return NULL;
  for (unsigned i = 0; i < mem->n_regions; i++) {
    const NbRamRegion *r = &mem->regions[i];
    if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
      return r->host + (gpa - r->gpa);
  }
  return NULL;
}

bool
nb_guest_memory_read(const NbGuestMemory *mem, uint64_t gpa, void *dst, size_t len)
{
  const void *src = nb_guest_memory_ptr(mem, gpa, len);
  if (src == NULL)
    return false;
  memcpy(dst, src, len);
  return true;
}

bool
nb_guest_memory_write(NbGuestMemory *mem, uint64_t gpa, const void *src, size_t len)
{
  void *dst = nb_guest_memory_ptr(mem, gpa, len);
  if (dst == NULL)
    return false;
  memcpy(dst, src, len);
  return true;
}

uint64_t
nb_guest_memory_end(const NbGuestMemory *mem)
{
  const NbRamRegion *last = &mem->regions[mem->n_regions - 1];
  return last->gpa + last->size;
}
