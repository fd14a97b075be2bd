#include "kvm/io-bus.h"

#include <gio/gio.h>
#include <string.h>

typedef struct {
  uint64_t base;
  uint64_t len;
  const NbIoOps *ops;
  void *opaque;
} NbIoRange;

/* An immutable, sorted set of ranges. Dispatch takes a reference under the
 * lock and calls the handler after releasing it, so a handler may change the
 * bus it was called from (a PCI config write that moves an I/O BAR does). */
typedef struct {
  gint refcount;
  guint n;
  NbIoRange ranges[];
} NbIoMap;

struct NbIoBus {
  char *name;
  GRWLock lock;
  NbIoMap *map;
};

static NbIoMap *
map_new(guint n)
{
  NbIoMap *map = g_malloc0(sizeof *map + n * sizeof(NbIoRange));
  map->refcount = 1;
  map->n = n;
  return map;
}

static void
map_unref(NbIoMap *map)
{
  if (g_atomic_int_dec_and_test(&map->refcount))
    g_free(map);
}

static NbIoMap *
current_map(NbIoBus *bus)
{
  g_rw_lock_reader_lock(&bus->lock);
  NbIoMap *map = bus->map;
  g_atomic_int_inc(&map->refcount);
  g_rw_lock_reader_unlock(&bus->lock);
  return map;
}

NbIoBus *
nb_io_bus_new(const char *name)
{
  NbIoBus *bus = g_new0(NbIoBus, 1);
  bus->name = g_strdup(name);
  g_rw_lock_init(&bus->lock);
  bus->map = map_new(0);
  return bus;
}

void
nb_io_bus_free(NbIoBus *bus)
{
  if (bus == NULL)
    return;
  map_unref(bus->map);
  g_rw_lock_clear(&bus->lock);
  g_free(bus->name);
  g_free(bus);
}

bool
nb_io_bus_register(NbIoBus *bus, uint64_t base, uint64_t len, const NbIoOps *ops,
                   void *opaque, GError **error)
{
  if (len == 0 || base + len < base) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                "%s: invalid range 0x%" G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER "x",
                bus->name, base, len);
    return false;
  }
  g_rw_lock_writer_lock(&bus->lock);
  NbIoMap *old = bus->map;
  guint at = 0;
  for (; at < old->n; at++) {
    const NbIoRange *r = &old->ranges[at];
    if (base < r->base + r->len && r->base < base + len) {
      g_rw_lock_writer_unlock(&bus->lock);
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                  "%s: range 0x%" G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER
                  "x overlaps one at 0x%" G_GINT64_MODIFIER "x",
                  bus->name, base, len, r->base);
      return false;
    }
    if (r->base > base)
      break;
  }
  NbIoMap *map = map_new(old->n + 1);
  memcpy(map->ranges, old->ranges, at * sizeof(NbIoRange));
  map->ranges[at] = (NbIoRange){ base, len, ops, opaque };
  memcpy(map->ranges + at + 1, old->ranges + at, (old->n - at) * sizeof(NbIoRange));
  bus->map = map;
  g_rw_lock_writer_unlock(&bus->lock);
  map_unref(old);
  return true;
}

bool
nb_io_bus_unregister(NbIoBus *bus, uint64_t base, void *opaque)
{
  g_rw_lock_writer_lock(&bus->lock);
  NbIoMap *old = bus->map;
  for (guint i = 0; i < old->n; i++) {
    if (old->ranges[i].base == base && old->ranges[i].opaque == opaque) {
      NbIoMap *map = map_new(old->n - 1);
      memcpy(map->ranges, old->ranges, i * sizeof(NbIoRange));
      memcpy(map->ranges + i, old->ranges + i + 1, (old->n - i - 1) * sizeof(NbIoRange));
      bus->map = map;
      g_rw_lock_writer_unlock(&bus->lock);
      map_unref(old);
      return true;
    }
  }
  g_rw_lock_writer_unlock(&bus->lock);
  return false;
}

static const NbIoRange *
find_range(const NbIoMap *map, uint64_t addr)
{
  guint lo = 0, hi = map->n;
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    const NbIoRange *r = &map->ranges[mid];
    if (addr < r->base)
      hi = mid;
    else if (addr - r->base >= r->len)
      lo = mid + 1;
    else
      return r;
  }
  return NULL;
}

static uint64_t
load_le(const void *data, unsigned size)
{
  uint64_t v = 0;
  memcpy(&v, data, MIN(size, sizeof v));
  return v;
}

bool
nb_io_bus_read(NbIoBus *bus, uint64_t addr, void *data, unsigned size)
{
  NbIoMap *map = current_map(bus);
  const NbIoRange *r = find_range(map, addr);
  /* An access that straddles the end of a device's range is not the device's. */
  if (r == NULL || size > 8 || addr - r->base + size > r->len || r->ops->read == NULL) {
    map_unref(map);
    memset(data, 0xff, size);
    return false;
  }
  uint64_t v = r->ops->read(r->opaque, addr - r->base, size);
  map_unref(map);
  memcpy(data, &v, size);
  return true;
}

bool
nb_io_bus_write(NbIoBus *bus, uint64_t addr, const void *data, unsigned size)
{
  NbIoMap *map = current_map(bus);
  const NbIoRange *r = find_range(map, addr);
  if (r == NULL || size > 8 || addr - r->base + size > r->len || r->ops->write == NULL) {
    map_unref(map);
    return false;
  }
  r->ops->write(r->opaque, addr - r->base, load_le(data, size), size);
  map_unref(map);
  return true;
}
