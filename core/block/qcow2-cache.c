/* Cache of qcow2 metadata clusters (L2 tables, refcount blocks), bounded and
 * least-recently-used, written through. */
#include "block/qcow2-private.h"

#include <string.h>

void
nb_qcow2_cache_init(NbQcow2Cache *cache, unsigned n_slots, uint64_t cluster_size)
{
  cache->n_slots = n_slots;
  cache->slots = g_new0(NbQcow2CacheSlot, n_slots);
  for (unsigned i = 0; i < n_slots; i++)
    cache->slots[i].data = g_malloc(cluster_size);
  cache->clock = 0;
}

void
nb_qcow2_cache_clear(NbQcow2Cache *cache)
{
  for (unsigned i = 0; i < cache->n_slots; i++)
    g_free(cache->slots[i].data);
  g_free(cache->slots);
  cache->slots = NULL;
  cache->n_slots = 0;
}

void
nb_qcow2_cache_drop(NbQcow2Cache *cache, uint64_t offset)
{
  for (unsigned i = 0; i < cache->n_slots; i++)
    if (cache->slots[i].offset == offset)
      cache->slots[i].offset = 0;
}

static NbQcow2CacheSlot *
victim(NbQcow2Cache *cache)
{
  NbQcow2CacheSlot *best = &cache->slots[0];
  for (unsigned i = 0; i < cache->n_slots; i++) {
    NbQcow2CacheSlot *slot = &cache->slots[i];
    if (slot->offset == 0)
      return slot;
    if (slot->used < best->used)
      best = slot;
  }
  return best;
}

uint8_t *
nb_qcow2_cache_get(NbQcow2 *s, NbQcow2Cache *cache, uint64_t offset, GError **error)
{
  for (unsigned i = 0; i < cache->n_slots; i++) {
    NbQcow2CacheSlot *slot = &cache->slots[i];
    if (slot->offset == offset) {
      slot->used = ++cache->clock;
      return slot->data;
    }
  }
  NbQcow2CacheSlot *slot = victim(cache);
  slot->offset = 0;
  if (!nb_block_pread_full(s->block->fd, slot->data, s->cluster_size, offset, s->block->path,
                           error))
    return NULL;
  slot->offset = offset;
  slot->used = ++cache->clock;
  return slot->data;
}

void
nb_qcow2_cache_put(NbQcow2 *s, NbQcow2Cache *cache, uint64_t offset, const uint8_t *data)
{
  nb_qcow2_cache_drop(cache, offset);
  NbQcow2CacheSlot *slot = victim(cache);
  memcpy(slot->data, data, s->cluster_size);
  slot->offset = offset;
  slot->used = ++cache->clock;
}

bool
nb_qcow2_cache_write(NbQcow2 *s, uint64_t offset, const uint8_t *data, size_t start,
                     size_t len, GError **error)
{
  return nb_block_pwrite_full(s->block->fd, data + start, len, offset + start, s->block->path,
                              error);
}
