/* qcow2: creation, internal snapshots, consistency check and details for
 * `nestboxctl disk`. I/O goes through block.h like every other format. */
#pragma once

#include "block/block.h"

typedef struct {
  unsigned cluster_bits;        /* 9..21; 0 means 16 (64 KiB clusters) */
  unsigned version;             /* 2 or 3; 0 means 3 */
  unsigned refcount_order;      /* 0..6; 0 means 4 (16-bit), v2 needs 4 */
  const char *backing_file;     /* stored as given; relative to the image's folder */
  NbBlockFormat backing_format; /* AUTO: probe the backing file now */
} NbQcow2CreateOptions;

/* Creates an empty qcow2 image. With a backing file and size 0 the size is
 * the backing file's. Refuses to overwrite an existing file. */
bool nb_qcow2_create(const char *path, uint64_t size, const NbQcow2CreateOptions *options,
                     GError **error);

typedef struct {
  char *id;
  char *name;
  uint64_t disk_size;           /* virtual size when it was taken */
  uint64_t vm_state_size;
  uint32_t date_sec, date_nsec;
  uint64_t vm_clock_nsec;
} NbQcow2Snapshot;

void nb_qcow2_snapshot_free(NbQcow2Snapshot *snapshot);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NbQcow2Snapshot, nb_qcow2_snapshot_free)

/* The internal snapshots, oldest first (a GPtrArray of NbQcow2Snapshot). */
GPtrArray *nb_qcow2_snapshot_list(NbBlock *block, GError **error);
/* name must be new; the disk must be open for writing. */
bool nb_qcow2_snapshot_create(NbBlock *block, const char *name, GError **error);
/* Reverts the disk to the snapshot with that name or id. */
bool nb_qcow2_snapshot_apply(NbBlock *block, const char *name_or_id, GError **error);
bool nb_qcow2_snapshot_delete(NbBlock *block, const char *name_or_id, GError **error);

typedef struct {
  unsigned version;
  unsigned cluster_bits;
  unsigned refcount_bits;
  bool dirty;
  bool corrupt;
  char *backing_file;           /* as stored in the header, or NULL */
  char *backing_format;         /* or NULL */
  unsigned n_snapshots;
} NbQcow2Info;

void nb_qcow2_info_clear(NbQcow2Info *info);
/* false when block is not a qcow2 image. */
bool nb_qcow2_get_info(NbBlock *block, NbQcow2Info *info);

typedef struct {
  uint64_t corruptions;         /* refcount too low, bad offsets, bad flags */
  uint64_t leaks;               /* clusters counted but used by nothing */
  uint64_t allocated_clusters;
  uint64_t total_clusters;      /* of the virtual disk */
  uint64_t image_end_offset;
  GPtrArray *messages;          /* char *, one per problem found */
} NbQcow2CheckResult;

void nb_qcow2_check_result_clear(NbQcow2CheckResult *result);
/* Walks every table and compares the reference counts it finds with the
 * stored ones. With repair_leaks (image open for writing) it drops the
 * counts of leaked clusters. Returns false only when checking itself failed. */
bool nb_qcow2_check(NbBlock *block, bool repair_leaks, NbQcow2CheckResult *result,
                    GError **error);

/* The backing file of block, or NULL. */
NbBlock *nb_block_backing(NbBlock *block);
