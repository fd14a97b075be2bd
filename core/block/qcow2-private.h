/* qcow2 internals shared by qcow2*.c. Every value read from the file is
 * checked before it is used as an offset, size or index. */
#pragma once

#include "block/block-private.h"
#include "block/qcow2.h"

#include <zlib.h>

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20)        /* as QEMU: larger is an attack */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_TABLE (64u << 20)
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_VIRTUAL_SIZE (UINT64_C(1) << 55)  /* 32 PiB, host offsets are 56 bits */

#define QCOW2_OFLAG_COPIED (UINT64_C(1) << 63)
#define QCOW2_OFLAG_COMPRESSED (UINT64_C(1) << 62)
#define QCOW2_OFLAG_ZERO UINT64_C(1)
#define QCOW2_OFFSET_MASK UINT64_C(0x00fffffffffffe00)

#define QCOW2_INCOMPAT_DIRTY (UINT64_C(1) << 0)
#define QCOW2_INCOMPAT_CORRUPT (UINT64_C(1) << 1)
#define QCOW2_INCOMPAT_DATA_FILE (UINT64_C(1) << 2)
#define QCOW2_INCOMPAT_COMPRESSION (UINT64_C(1) << 3)
#define QCOW2_INCOMPAT_EXTL2 (UINT64_C(1) << 4)

#define QCOW2_EXT_END 0u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau

/* Header field offsets: the few fields updated in place. */
#define QCOW2_HDR_SIZE 24
#define QCOW2_HDR_L1_SIZE 36           /* u32 l1_size then u64 l1_table_offset */
#define QCOW2_HDR_REFTABLE 48          /* u64 offset then u32 clusters */
#define QCOW2_HDR_SNAPSHOTS 60         /* u32 nb_snapshots then u64 offset */
#define QCOW2_HDR_INCOMPAT 72
#define QCOW2_HDR_AUTOCLEAR 88

/* A small table cache: L2 tables (written back) and refcount blocks (written
 * through), one cluster each; see qcow2-cache.c for the ordering. */
typedef struct {
  uint64_t offset;   /* host offset of the cluster; 0 = free slot */
  uint64_t used;     /* LRU clock */
  bool dirty;        /* changed in memory, not yet in the file (L2 only) */
  uint8_t *data;     /* the cluster as on disk (big-endian) */
} NbQcow2CacheSlot;

typedef struct {
  NbQcow2CacheSlot *slots;
  unsigned n_slots;
  uint64_t clock;
} NbQcow2Cache;

typedef struct {
  uint64_t l1_offset;
  uint32_t l1_size;
  char *id;
  char *name;
  uint32_t date_sec, date_nsec;
  uint64_t vm_clock_nsec;
  uint64_t vm_state_size;
  uint64_t disk_size;
  uint32_t extra_size;   /* bytes of extra data as read; written back as 16 */
} NbQcow2SnapshotEntry;

typedef struct {
  NbBlock *block;
  GMutex lock;

  unsigned version;
  unsigned cluster_bits;
  uint64_t cluster_size;
  unsigned l2_bits;              /* entries per L2 table = 1 << l2_bits */
  unsigned refcount_order;
  unsigned rb_bits;              /* refcounts per refcount block = 1 << rb_bits */
  uint64_t refcount_max;
  uint32_t header_length;
  uint64_t incompatible, compatible, autoclear;
  uint64_t file_size;            /* at open, to check offsets in the file */

  uint64_t *l1;                  /* host byte order */
  uint32_t l1_size;
  uint64_t l1_offset;

  uint64_t *reftable;            /* host byte order */
  uint64_t reftable_entries;
  uint64_t reftable_offset;
  uint32_t reftable_clusters;

  NbQcow2Cache l2_cache;
  NbQcow2Cache rb_cache;
  /* Host offsets of refcount blocks and active L2 tables: a data cluster
   * there would let guest writes overwrite metadata. */
  GHashTable *meta;

  uint64_t end_cluster;          /* first cluster past everything in use */
  bool refcounts_unsynced;       /* refcount writes since the last fdatasync */
  uint64_t free_hint;            /* no free cluster below this one */
  GArray *reserved;              /* uint64 clusters counted but not used yet */
  unsigned reserve_batch;
  GArray *pending_free;          /* uint64 clusters to decrement after the next sync */

  char *backing_file;            /* as in the header */
  char *backing_format;
  NbBlock *backing;

  GArray *snapshots;             /* NbQcow2SnapshotEntry */
  uint64_t snapshots_offset;
  uint64_t snapshots_bytes;

  z_stream inflater;
  bool inflater_ready;
  uint8_t *cbuf;                 /* compressed input, 2 clusters */
  uint8_t *tmp;                  /* one cluster of scratch */
  uint64_t decompressed_entry;   /* L2 entry whose data is in decompressed */
  uint8_t *decompressed;
} NbQcow2;

static inline uint64_t nb_qcow2_size_to_clusters(const NbQcow2 *s, uint64_t bytes)
{
  return (bytes + s->cluster_size - 1) >> s->cluster_bits;
}

/* qcow2-cache.c */
void nb_qcow2_cache_init(NbQcow2Cache *cache, unsigned n_slots, uint64_t cluster_size);
void nb_qcow2_cache_clear(NbQcow2Cache *cache);
void nb_qcow2_cache_drop(NbQcow2Cache *cache, uint64_t offset);
uint8_t *nb_qcow2_cache_get(NbQcow2 *s, NbQcow2Cache *cache, uint64_t offset, GError **error);
/* Puts a cluster the caller just wrote to the file into the cache. */
bool nb_qcow2_cache_put(NbQcow2 *s, NbQcow2Cache *cache, uint64_t offset, const uint8_t *data,
                        GError **error);
/* The cached cluster at offset was changed in memory: write it back later. */
void nb_qcow2_cache_mark_dirty(NbQcow2Cache *cache, uint64_t offset);
/* Writes every dirty cluster back (syncing refcounts first). */
bool nb_qcow2_cache_flush(NbQcow2 *s, NbQcow2Cache *cache, GError **error);
/* Writes bytes [start, start+len) of a cached cluster through to the file. */
bool nb_qcow2_cache_write(NbQcow2 *s, uint64_t offset, const uint8_t *data, size_t start,
                          size_t len, GError **error);

/* qcow2-refcount.c */
bool nb_qcow2_refcount_get(NbQcow2 *s, uint64_t cluster, uint64_t *out, GError **error);
bool nb_qcow2_refcount_set(NbQcow2 *s, uint64_t cluster, uint64_t value, GError **error);
/* Adds addend (may be negative) to every cluster that [offset, offset+len) touches. */
bool nb_qcow2_refcount_update_range(NbQcow2 *s, uint64_t offset, uint64_t len, int addend,
                                    GError **error);
/* One data or L2 cluster from the reserve (counted in batches). *zeroed
 * (may be NULL) says whether it was never written, so reads as zeroes. */
bool nb_qcow2_alloc_cluster(NbQcow2 *s, uint64_t *offset, bool *zeroed, GError **error);
/* The cluster index the next allocation returns, or UINT64_MAX. */
uint64_t nb_qcow2_next_reserved(NbQcow2 *s);
/* n contiguous clusters for a table, counted and synced before returning. */
bool nb_qcow2_alloc_contiguous(NbQcow2 *s, uint64_t n, uint64_t *offset, GError **error);
/* Drops the clusters [offset, offset+len) touches once the file is synced. */
void nb_qcow2_free_later(NbQcow2 *s, uint64_t offset, uint64_t len);
/* fdatasync, then applies the pending decrements. */
bool nb_qcow2_sync(NbQcow2 *s, GError **error);
/* Returns the reserve's clusters (at close and before snapshots). */
bool nb_qcow2_release_reserve(NbQcow2 *s, GError **error);
/* Host clusters of a compressed L2 entry. */
void nb_qcow2_compressed_range(const NbQcow2 *s, uint64_t entry, uint64_t *offset,
                               uint64_t *len);

/* qcow2-cluster.c */
typedef enum {
  NB_QCOW2_UNALLOCATED,  /* backing file or zeroes */
  NB_QCOW2_ZERO,         /* reads as zeroes; may still hold a cluster */
  NB_QCOW2_NORMAL,
  NB_QCOW2_COMPRESSED,
} NbQcow2ClusterType;

NbQcow2ClusterType nb_qcow2_entry_type(uint64_t l2_entry);
/* The L2 entry of a guest cluster (0 when its L2 table is absent). */
bool nb_qcow2_get_entry(NbQcow2 *s, uint64_t guest_cluster, uint64_t *entry, GError **error);
bool nb_qcow2_check_l2_offset(NbQcow2 *s, uint64_t offset, GError **error);
bool nb_qcow2_check_data_offset(NbQcow2 *s, uint64_t offset, GError **error);
bool nb_qcow2_read_compressed(NbQcow2 *s, uint64_t entry, GError **error);
/* Walks every L2 table of an L1 table adding addend to refcounts of what
 * they reference, then sets the COPIED flags of the active tables to match
 * the counts (addend 0 only fixes the flags). */
bool nb_qcow2_update_tree_refcounts(NbQcow2 *s, uint64_t *l1, uint32_t l1_size, int addend,
                                    bool active, GError **error);

/* qcow2-io.c */
extern const NbBlockDriver nb_qcow2_driver;
/* Moves the active L1 table to a bigger one (need entries). */
bool nb_qcow2_grow_l1(NbQcow2 *s, uint32_t need, GError **error);

/* qcow2-snapshot.c */
bool nb_qcow2_read_snapshots(NbQcow2 *s, uint64_t offset, uint32_t count, GError **error);
void nb_qcow2_snapshot_entry_clear(NbQcow2SnapshotEntry *entry);

/* qcow2.c */
void nb_qcow2_close(NbBlock *block);
void nb_qcow2_meta_add(NbQcow2 *s, uint64_t offset);
void nb_qcow2_meta_remove(NbQcow2 *s, uint64_t offset);
bool nb_qcow2_write_l1_entry(NbQcow2 *s, uint64_t index, GError **error);
bool nb_qcow2_header_write(NbQcow2 *s, size_t field, const void *data, size_t len,
                           GError **error);
bool nb_qcow2_corrupt(NbQcow2 *s, GError **error, const char *format, ...) G_GNUC_PRINTF(3, 4);
static inline NbQcow2 *nb_qcow2_state(NbBlock *block) { return block->opaque; }
