/* Cache of qcow2 metadata clusters (L2 tables, refcount blocks), bounded and
 * least-recently-used.
 *
 * Refcount blocks are written through. L2 tables are written back: a changed
 * table stays dirty in memory until a flush or until it is evicted, and
 * before any dirty table reaches the file the refcount changes made so far are
 * synced, so a table never points at a cluster whose count could be lost. A
 * crash loses only unflushed L2 updates, which leaks their clusters at most. */
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
    if (cache->slots[i].offset == offset) {
      cache->slots[i].offset = 0;
      cache->slots[i].dirty = false;
    }
}

static bool
write_back(NbQcow2 *s, NbQcow2CacheSlot *slot, GError **error)
{
  if (!slot->dirty)
    return true;
  if (s->refcounts_unsynced) {
    if (!nb_block_fdatasync(s->block->fd, s->block->path, error))
      return false;
    s->refcounts_unsynced = false;
  }
  if (!nb_block_pwrite_full(s->block->fd, slot->data, s->cluster_size, slot->offset,
                            s->block->path, error))
    return false;
  slot->dirty = false;
  return true;
}

bool
nb_qcow2_cache_flush(NbQcow2 *s, NbQcow2Cache *cache, GError **error)
{
  for (unsigned i = 0; i < cache->n_slots; i++)
    if (cache->slots[i].offset != 0 && !write_back(s, &cache->slots[i], error))
      return false;
  return true;
}

static NbQcow2CacheSlot *
victim(NbQcow2 *s, NbQcow2Cache *cache, GError **error)
{
  NbQcow2CacheSlot *best = &cache->slots[0];
  for (unsigned i = 0; i < cache->n_slots; i++) {
    NbQcow2CacheSlot *slot = &cache->slots[i];
    if (slot->offset == 0) {
      best = slot;
      break;
    }
    if (slot->used < best->used)
      best = slot;
  }
  if (best->offset != 0 && !write_back(s, best, error))
    return NULL;
  best->offset = 0;
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
  NbQcow2CacheSlot *slot = victim(s, cache, error);
  if (slot == NULL)
    return NULL;
  if (!nb_block_pread_full(s->block->fd, slot->data, s->cluster_size, offset, s->block->path,
                           error))
    return NULL;
  slot->offset = offset;
  slot->used = ++cache->clock;
  return slot->data;
}

bool
nb_qcow2_cache_put(NbQcow2 *s, NbQcow2Cache *cache, uint64_t offset, const uint8_t *data,
                   GError **error)
{
  nb_qcow2_cache_drop(cache, offset);
  NbQcow2CacheSlot *slot = victim(s, cache, error);
  if (slot == NULL)
    return false;
  memcpy(slot->data, data, s->cluster_size);
  slot->offset = offset;
  slot->used = ++cache->clock;
  return true;
}

void
nb_qcow2_cache_mark_dirty(NbQcow2Cache *cache, uint64_t offset)
{
  for (unsigned i = 0; i < cache->n_slots; i++)
    if (cache->slots[i].offset == offset)
      cache->slots[i].dirty = true;
}

bool
nb_qcow2_cache_write(NbQcow2 *s, uint64_t offset, const uint8_t *data, size_t start,
                     size_t len, GError **error)
{
  return nb_block_pwrite_full(s->block->fd, data + start, len, offset + start, s->block->path,
                              error);
}
