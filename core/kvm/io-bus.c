#include "kvm/io-bus.h"

#include <gio/gio.h>
#include <string.h>

typedef struct {
  uint64_t base;
  uint64_t len;
  const NbIoOps *ops;
  void *opaque;
} NbIoRange;

struct NbIoBus {
  char *name;
  GRWLock lock;
  GArray *ranges;   /* NbIoRange, sorted by base, non-overlapping */
};

NbIoBus *
nb_io_bus_new(const char *name)
{
  NbIoBus *bus = g_new0(NbIoBus, 1);
  bus->name = g_strdup(name);
  g_rw_lock_init(&bus->lock);
  bus->ranges = g_array_new(FALSE, FALSE, sizeof(NbIoRange));
  return bus;
}

void
nb_io_bus_free(NbIoBus *bus)
{
  if (bus == NULL)
    return;
  g_array_free(bus->ranges, TRUE);
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
  guint at = 0;
  for (; at < bus->ranges->len; at++) {
    NbIoRange *r = &g_array_index(bus->ranges, NbIoRange, at);
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
  NbIoRange range = { base, len, ops, opaque };
  g_array_insert_val(bus->ranges, at, range);
  g_rw_lock_writer_unlock(&bus->lock);
  return true;
}

bool
nb_io_bus_unregister(NbIoBus *bus, uint64_t base, void *opaque)
{
  bool found = false;
  g_rw_lock_writer_lock(&bus->lock);
  for (guint i = 0; i < bus->ranges->len; i++) {
    NbIoRange *r = &g_array_index(bus->ranges, NbIoRange, i);
    if (r->base == base && r->opaque == opaque) {
      g_array_remove_index(bus->ranges, i);
      found = true;
      break;
    }
  }
  g_rw_lock_writer_unlock(&bus->lock);
  return found;
}

/* Binary search; the caller holds the reader lock. */
static const NbIoRange *
find_range(NbIoBus *bus, uint64_t addr)
{
  guint lo = 0, hi = bus->ranges->len;
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    const NbIoRange *r = &g_array_index(bus->ranges, NbIoRange, mid);
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
  g_rw_lock_reader_lock(&bus->lock);
  const NbIoRange *r = find_range(bus, addr);
  /* An access that straddles the end of a device's range is not the device's. */
  if (r == NULL || size > 8 || addr - r->base + size > r->len || r->ops->read == NULL) {
    g_rw_lock_reader_unlock(&bus->lock);
    memset(data, 0xff, size);
    return false;
  }
  uint64_t v = r->ops->read(r->opaque, addr - r->base, size);
  g_rw_lock_reader_unlock(&bus->lock);
  memcpy(data, &v, size);
  return true;
}

bool
nb_io_bus_write(NbIoBus *bus, uint64_t addr, const void *data, unsigned size)
{
  g_rw_lock_reader_lock(&bus->lock);
  const NbIoRange *r = find_range(bus, addr);
  if (r == NULL || size > 8 || addr - r->base + size > r->len || r->ops->write == NULL) {
    g_rw_lock_reader_unlock(&bus->lock);
    return false;
  }
  r->ops->write(r->opaque, addr - r->base, load_le(data, size), size);
  g_rw_lock_reader_unlock(&bus->lock);
  return true;
}
