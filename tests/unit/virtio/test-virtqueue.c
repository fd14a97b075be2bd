/* The split virtqueue against a hand-driven "guest": rings written into fake
 * guest memory exactly as a driver would, including every way a hostile one
 * could get them wrong. */
#include "virtio/virtqueue.h"

#include <string.h>

#define MiB (UINT64_C(1) << 20)
/* RAM [0, 32M) and [48M, 80M): a region end next to a hole. */
#define LOW_LIMIT (32 * MiB)
#define HIGH_BASE (48 * MiB)

#define QSIZE   16
#define DESC    0x1000
#define AVAIL   0x2000
#define USED    0x3000
#define TABLE   0x4000     /* an indirect table */
#define DATA    0x10000

typedef struct {
  NbGuestMemory *mem;
  NbVirtqueue vq;
  uint16_t avail_idx;
} Fixture;

static void
put_desc_at(Fixture *f, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
            uint16_t next)
{
  NbVirtqDesc d = { GUINT64_TO_LE(addr), GUINT32_TO_LE(len), GUINT16_TO_LE(flags),
                    GUINT16_TO_LE(next) };
  g_assert_true(nb_guest_memory_write(f->mem, table + 16 * i, &d, sizeof d));
}

static void
put_desc(Fixture *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
  put_desc_at(f, DESC, i, addr, len, flags, next);
}

static void
write16(Fixture *f, uint64_t gpa, uint16_t v)
{
  v = GUINT16_TO_LE(v);
  g_assert_true(nb_guest_memory_write(f->mem, gpa, &v, 2));
}

static uint16_t
read16(Fixture *f, uint64_t gpa)
{
  uint16_t v;
  g_assert_true(nb_guest_memory_read(f->mem, gpa, &v, 2));
  return GUINT16_FROM_LE(v);
}

static uint32_t
read32(Fixture *f, uint64_t gpa)
{
  uint32_t v;
  g_assert_true(nb_guest_memory_read(f->mem, gpa, &v, 4));
  return GUINT32_FROM_LE(v);
}

/* The driver makes a chain available. */
static void
offer(Fixture *f, uint16_t head)
{
  write16(f, AVAIL + 4 + 2 * (f->avail_idx % QSIZE), head);
  f->avail_idx++;
  write16(f, AVAIL + 2, f->avail_idx);
}

static void
setup(Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  f->mem = nb_guest_memory_new_split(64 * MiB, LOW_LIMIT, HIGH_BASE, &error);
  g_assert_no_error(error);
  nb_virtqueue_init(&f->vq, f->mem);
  g_assert_true(nb_virtqueue_enable(&f->vq, QSIZE, DESC, AVAIL, USED, true, false, &error));
  g_assert_no_error(error);
  f->avail_idx = 0;
}

static void
teardown(Fixture *f, gconstpointer data)
{
  nb_guest_memory_free(f->mem);
}

static NbVirtqElement *
pop_ok(Fixture *f)
{
  g_autoptr(GError) error = NULL;
  NbVirtqElement *e = NULL;
  g_assert_cmpint(nb_virtqueue_pop(&f->vq, &e, &error), ==, NB_VIRTQ_POP_OK);
  g_assert_no_error(error);
  g_assert_nonnull(e);
  return e;
}

static void
pop_broken(Fixture *f)
{
  g_autoptr(GError) error = NULL;
  NbVirtqElement *e = NULL;
  g_assert_cmpint(nb_virtqueue_pop(&f->vq, &e, &error), ==, NB_VIRTQ_POP_BROKEN);
  g_assert_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_BAD_DESCRIPTOR);
  g_assert_null(e);
  g_assert_true(f->vq.broken);
  g_test_message("broken: %s", error->message);
  /* Stays broken: the device does not touch the queue again until reset. */
  g_clear_error(&error);
  g_assert_cmpint(nb_virtqueue_pop(&f->vq, &e, &error), ==, NB_VIRTQ_POP_BROKEN);
  g_assert_false(nb_virtqueue_has_work(&f->vq));
}

static void
test_chain(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 5);
  put_desc(f, 5, DATA + 0x100, 512, NB_VIRTQ_DESC_F_NEXT, 2);
  put_desc(f, 2, DATA + 0x1000, 1, NB_VIRTQ_DESC_F_WRITE, 0);
  g_assert_false(nb_virtqueue_has_work(&f->vq));
  offer(f, 0);
  g_assert_true(nb_virtqueue_has_work(&f->vq));

  g_autofree NbVirtqElement *e = pop_ok(f);
  g_assert_cmpuint(e->head, ==, 0);
  g_assert_cmpuint(e->n_out, ==, 2);
  g_assert_cmpuint(e->n_in, ==, 1);
  g_assert_cmpuint(e->out_len, ==, 528);
  g_assert_cmpuint(e->in_len, ==, 1);
  g_assert_true(e->out[0].iov_base == nb_guest_memory_ptr(f->mem, DATA, 16));
  g_assert_true(e->out[1].iov_base == nb_guest_memory_ptr(f->mem, DATA + 0x100, 512));
  g_assert_true(e->in[0].iov_base == nb_guest_memory_ptr(f->mem, DATA + 0x1000, 1));

  NbVirtqElement *none = NULL;
  g_assert_cmpint(nb_virtqueue_pop(&f->vq, &none, NULL), ==, NB_VIRTQ_POP_EMPTY);

  nb_virtqueue_push(&f->vq, e->head, 1);
  g_assert_cmpuint(read16(f, USED + 2), ==, 1);
  g_assert_cmpuint(read32(f, USED + 4), ==, 0);
  g_assert_cmpuint(read32(f, USED + 8), ==, 1);
}

static void
test_chain_in_high_region(Fixture *f, gconstpointer data)
{
  /* A buffer that ends exactly at the end of a region is fine. */
  put_desc(f, 0, LOW_LIMIT - 64, 64, NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc(f, 1, HIGH_BASE + 32 * MiB - 4096, 4096, NB_VIRTQ_DESC_F_WRITE, 0);
  offer(f, 0);
  g_autofree NbVirtqElement *e = pop_ok(f);
  g_assert_cmpuint(e->n_out, ==, 1);
  g_assert_cmpuint(e->n_in, ==, 1);
  g_assert_cmpuint(e->in_len, ==, 4096);
}

static void
test_write_only(Fixture *f, gconstpointer data)
{
  put_desc(f, 3, DATA, 100, NB_VIRTQ_DESC_F_WRITE | NB_VIRTQ_DESC_F_NEXT, 4);
  put_desc(f, 4, DATA + 100, 100, NB_VIRTQ_DESC_F_WRITE, 0);
  offer(f, 3);
  g_autofree NbVirtqElement *e = pop_ok(f);
  g_assert_cmpuint(e->n_out, ==, 0);
  g_assert_cmpuint(e->n_in, ==, 2);
  g_assert_cmpuint(e->in_len, ==, 200);
}

static void
test_indirect(Fixture *f, gconstpointer data)
{
  put_desc_at(f, TABLE, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 2);
  put_desc_at(f, TABLE, 2, DATA + 0x200, 4096, NB_VIRTQ_DESC_F_WRITE | NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc_at(f, TABLE, 1, DATA + 0x2000, 1, NB_VIRTQ_DESC_F_WRITE, 0);
  /* The WRITE flag on the descriptor that points to the table is ignored. */
  put_desc(f, 7, TABLE, 3 * 16, NB_VIRTQ_DESC_F_INDIRECT | NB_VIRTQ_DESC_F_WRITE, 0);
  offer(f, 7);
  g_autofree NbVirtqElement *e = pop_ok(f);
  g_assert_cmpuint(e->head, ==, 7);
  g_assert_cmpuint(e->n_out, ==, 1);
  g_assert_cmpuint(e->n_in, ==, 2);
  g_assert_cmpuint(e->out_len, ==, 16);
  g_assert_cmpuint(e->in_len, ==, 4097);
}

static void
test_direct_then_indirect(Fixture *f, gconstpointer data)
{
  put_desc_at(f, TABLE, 0, DATA + 0x2000, 8, NB_VIRTQ_DESC_F_WRITE, 0);
  put_desc(f, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc(f, 1, TABLE, 16, NB_VIRTQ_DESC_F_INDIRECT, 0);
  offer(f, 0);
  g_autofree NbVirtqElement *e = pop_ok(f);
  g_assert_cmpuint(e->n_out, ==, 1);
  g_assert_cmpuint(e->n_in, ==, 1);
}

static void
test_many_elements(Fixture *f, gconstpointer data)
{
  /* A long indirect chain grows the gather array past its inline part. */
  for (unsigned i = 0; i < 100; i++)
    put_desc_at(f, TABLE, i, DATA + 64 * i, 64,
                (i < 60 ? 0 : NB_VIRTQ_DESC_F_WRITE) | (i < 99 ? NB_VIRTQ_DESC_F_NEXT : 0), i + 1);
  put_desc(f, 0, TABLE, 100 * 16, NB_VIRTQ_DESC_F_INDIRECT, 0);
  offer(f, 0);
  g_autofree NbVirtqElement *e = pop_ok(f);
  g_assert_cmpuint(e->n_out, ==, 60);
  g_assert_cmpuint(e->n_in, ==, 40);
  g_assert_true(e->in[39].iov_base == nb_guest_memory_ptr(f->mem, DATA + 64 * 99, 64));
}

static void
test_indirect_not_negotiated(Fixture *f, gconstpointer data)
{
  g_assert_true(nb_virtqueue_enable(&f->vq, QSIZE, DESC, AVAIL, USED, false, false, NULL));
  put_desc_at(f, TABLE, 0, DATA, 16, 0, 0);
  put_desc(f, 0, TABLE, 16, NB_VIRTQ_DESC_F_INDIRECT, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_nested_indirect(Fixture *f, gconstpointer data)
{
  put_desc_at(f, TABLE + 0x100, 0, DATA, 16, 0, 0);
  put_desc_at(f, TABLE, 0, TABLE + 0x100, 16, NB_VIRTQ_DESC_F_INDIRECT, 0);
  put_desc(f, 0, TABLE, 16, NB_VIRTQ_DESC_F_INDIRECT, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_indirect_with_next(Fixture *f, gconstpointer data)
{
  put_desc_at(f, TABLE, 0, DATA, 16, 0, 0);
  put_desc(f, 0, TABLE, 16, NB_VIRTQ_DESC_F_INDIRECT | NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc(f, 1, DATA, 16, 0, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_indirect_bad_length(Fixture *f, gconstpointer data)
{
  static const uint32_t lens[] = { 0, 15, 17, 16 * (NB_VIRTQ_MAX_INDIRECT + 1) };
  for (unsigned i = 0; i < G_N_ELEMENTS(lens); i++) {
    nb_virtqueue_reset(&f->vq);
    g_assert_true(nb_virtqueue_enable(&f->vq, QSIZE, DESC, AVAIL, USED, true, false, NULL));
    f->avail_idx = 0;
    put_desc(f, 0, TABLE, lens[i], NB_VIRTQ_DESC_F_INDIRECT, 0);
    offer(f, 0);
    pop_broken(f);
  }
}

static void
test_indirect_outside_ram(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, LOW_LIMIT - 16, 32, NB_VIRTQ_DESC_F_INDIRECT, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_indirect_loop(Fixture *f, gconstpointer data)
{
  put_desc_at(f, TABLE, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc_at(f, TABLE, 1, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 0);
  put_desc(f, 0, TABLE, 32, NB_VIRTQ_DESC_F_INDIRECT, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_indirect_next_beyond_table(Fixture *f, gconstpointer data)
{
  put_desc_at(f, TABLE, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 2);
  put_desc(f, 0, TABLE, 32, NB_VIRTQ_DESC_F_INDIRECT, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_outside_ram(Fixture *f, gconstpointer data)
{
  /* In the hole between the regions. */
  put_desc(f, 0, LOW_LIMIT + 4096, 16, 0, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_crosses_region_end(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, LOW_LIMIT - 8, 16, 0, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_beyond_ram_end(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, HIGH_BASE + 32 * MiB - 8, 9, NB_VIRTQ_DESC_F_WRITE, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_address_wraps(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, UINT64_MAX - 7, 16, 0, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_loop(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc(f, 1, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 2);
  put_desc(f, 2, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_self_loop(Fixture *f, gconstpointer data)
{
  put_desc(f, 4, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 4);
  offer(f, 4);
  pop_broken(f);
}

static void
test_longest_chain(Fixture *f, gconstpointer data)
{
  /* A chain through every descriptor once is legal. */
  for (unsigned i = 0; i < QSIZE; i++)
    put_desc(f, i, DATA + 16 * i, 16, i + 1 < QSIZE ? NB_VIRTQ_DESC_F_NEXT : 0, i + 1);
  offer(f, 0);
  g_autofree NbVirtqElement *e = pop_ok(f);
  g_assert_cmpuint(e->n_out, ==, QSIZE);
}

static void
test_zero_length(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc(f, 1, DATA + 16, 0, NB_VIRTQ_DESC_F_WRITE, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_wrong_direction(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, NB_VIRTQ_DESC_F_WRITE | NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc(f, 1, DATA + 16, 16, 0, 0);
  offer(f, 0);
  pop_broken(f);
}

static void
test_next_beyond_queue(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, QSIZE);
  offer(f, 0);
  pop_broken(f);
}

static void
test_head_beyond_queue(Fixture *f, gconstpointer data)
{
  offer(f, QSIZE + 3);
  pop_broken(f);
}

static void
test_avail_jump(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, 0, 0);
  write16(f, AVAIL + 2, QSIZE + 1);
  pop_broken(f);
  /* Reset brings it back. */
  nb_virtqueue_reset(&f->vq);
  g_assert_false(f->vq.broken);
  g_assert_true(nb_virtqueue_enable(&f->vq, QSIZE, DESC, AVAIL, USED, true, false, NULL));
  write16(f, AVAIL + 2, 0);
  offer(f, 0);
  g_free(pop_ok(f));
}

static void
test_avail_full_queue(Fixture *f, gconstpointer data)
{
  /* Exactly size entries pending is legal. */
  for (unsigned i = 0; i < QSIZE; i++) {
    put_desc(f, i, DATA + 16 * i, 16, 0, 0);
    offer(f, i);
  }
  for (unsigned i = 0; i < QSIZE; i++) {
    g_autofree NbVirtqElement *e = pop_ok(f);
    g_assert_cmpuint(e->head, ==, i);
  }
}

static void
test_bad_queue_setup(Fixture *f, gconstpointer data)
{
  NbVirtqueue vq;
  nb_virtqueue_init(&vq, f->mem);
  static const uint16_t bad_sizes[] = { 0, 3, 6, 100, 0xffff };
  for (unsigned i = 0; i < G_N_ELEMENTS(bad_sizes); i++) {
    g_autoptr(GError) error = NULL;
    g_assert_false(nb_virtqueue_enable(&vq, bad_sizes[i], DESC, AVAIL, USED, true, true, &error));
    g_assert_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_BAD_RING);
    g_assert_false(vq.ready);
  }
  struct { uint64_t desc, avail, used; } bad_rings[] = {
    { DESC + 8, AVAIL, USED },                     /* descriptors misaligned */
    { DESC, AVAIL + 1, USED },                     /* avail misaligned */
    { DESC, AVAIL, USED + 2 },                     /* used misaligned */
    { LOW_LIMIT - 16 * 8, AVAIL, USED },           /* table crosses the region end */
    { DESC, LOW_LIMIT - 8, USED },                 /* avail crosses it */
    { DESC, AVAIL, LOW_LIMIT - 64 },               /* used crosses it */
    { DESC, AVAIL, HIGH_BASE - 4096 },             /* in the hole */
    { UINT64_MAX - 15, AVAIL, USED },              /* wraps */
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(bad_rings); i++) {
    g_autoptr(GError) error = NULL;
    g_assert_false(nb_virtqueue_enable(&vq, QSIZE, bad_rings[i].desc, bad_rings[i].avail,
                                       bad_rings[i].used, true, true, &error));
    g_assert_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_BAD_RING);
  }
  /* Largest legal queue in the high region. */
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_virtqueue_enable(&vq, 32768, HIGH_BASE, HIGH_BASE + 512 * 1024,
                                    HIGH_BASE + 1024 * 1024, true, true, &error));
  g_assert_no_error(error);
}

static void
test_wraparound(Fixture *f, gconstpointer data)
{
  /* Both indices start just below 65535, as after a long uptime. */
  f->vq.last_avail = 65530;
  f->vq.used_idx = 65530;
  f->avail_idx = 65530;
  write16(f, AVAIL + 2, 65530);
  write16(f, USED + 2, 65530);
  for (unsigned i = 0; i < 10; i++) {
    put_desc(f, i, DATA + 16 * i, 16, NB_VIRTQ_DESC_F_WRITE, 0);
    offer(f, i);
  }
  g_assert_cmpuint(read16(f, AVAIL + 2), ==, 4);
  for (unsigned i = 0; i < 10; i++) {
    g_autofree NbVirtqElement *e = pop_ok(f);
    g_assert_cmpuint(e->head, ==, i);
    nb_virtqueue_push(&f->vq, e->head, 16 + i);
  }
  NbVirtqElement *none = NULL;
  g_assert_cmpint(nb_virtqueue_pop(&f->vq, &none, NULL), ==, NB_VIRTQ_POP_EMPTY);
  g_assert_cmpuint(read16(f, USED + 2), ==, 4);
  for (unsigned i = 0; i < 10; i++) {
    unsigned slot = (65530u + i) % QSIZE;
    g_assert_cmpuint(read32(f, USED + 4 + 8 * slot), ==, i);
    g_assert_cmpuint(read32(f, USED + 8 + 8 * slot), ==, 16 + i);
  }
}

static void
test_no_interrupt_flag(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, 0, 0);
  offer(f, 0);
  g_free(pop_ok(f));
  nb_virtqueue_push(&f->vq, 0, 0);
  g_assert_true(nb_virtqueue_should_notify(&f->vq));
  write16(f, AVAIL, NB_VIRTQ_AVAIL_F_NO_INTERRUPT);
  nb_virtqueue_push(&f->vq, 0, 0);
  g_assert_false(nb_virtqueue_should_notify(&f->vq));
}

static void
test_no_notify_flag(Fixture *f, gconstpointer data)
{
  nb_virtqueue_disable_notify(&f->vq);
  g_assert_cmpuint(read16(f, USED) & NB_VIRTQ_USED_F_NO_NOTIFY, !=, 0);
  g_assert_false(nb_virtqueue_enable_notify(&f->vq));
  g_assert_cmpuint(read16(f, USED) & NB_VIRTQ_USED_F_NO_NOTIFY, ==, 0);
  /* A buffer that arrived while notifications were off is reported. */
  nb_virtqueue_disable_notify(&f->vq);
  put_desc(f, 0, DATA, 16, 0, 0);
  offer(f, 0);
  g_assert_true(nb_virtqueue_enable_notify(&f->vq));
}

static void
test_event_idx(Fixture *f, gconstpointer data)
{
  g_assert_true(nb_virtqueue_enable(&f->vq, QSIZE, DESC, AVAIL, USED, true, true, NULL));
  const uint64_t used_event = AVAIL + 4 + 2 * QSIZE;
  const uint64_t avail_event = USED + 4 + 8 * QSIZE;

  /* Device side: avail_event tells the driver when to notify next. */
  for (unsigned i = 0; i < 3; i++) {
    put_desc(f, i, DATA, 16, 0, 0);
    offer(f, i);
  }
  for (unsigned i = 0; i < 3; i++)
    g_free(pop_ok(f));
  g_assert_false(nb_virtqueue_enable_notify(&f->vq));
  g_assert_cmpuint(read16(f, avail_event), ==, 3);
  /* NO_NOTIFY is never used with EVENT_IDX. */
  nb_virtqueue_disable_notify(&f->vq);
  g_assert_cmpuint(read16(f, USED), ==, 0);
  offer(f, 3);
  g_assert_true(nb_virtqueue_enable_notify(&f->vq));

  /* Driver side: the first completion after setup always interrupts. */
  write16(f, used_event, 0);
  nb_virtqueue_push(&f->vq, 0, 0);                   /* used 1 */
  g_assert_true(nb_virtqueue_should_notify(&f->vq));
  /* The driver wants to hear when entry 2 is used (used_event = 1 means
   * "after used idx passes 1"). */
  write16(f, used_event, 2);
  nb_virtqueue_push(&f->vq, 1, 0);                   /* used 2 */
  g_assert_false(nb_virtqueue_should_notify(&f->vq));
  nb_virtqueue_push(&f->vq, 2, 0);                   /* used 3: passes 2 */
  g_assert_true(nb_virtqueue_should_notify(&f->vq));
  /* Batches: one interrupt for several completions crossing used_event. */
  write16(f, used_event, 4);
  nb_virtqueue_push(&f->vq, 0, 0);
  nb_virtqueue_push(&f->vq, 1, 0);                   /* used 5 */
  g_assert_true(nb_virtqueue_should_notify(&f->vq));
  /* used_event far behind: already notified for it, stay quiet. */
  nb_virtqueue_push(&f->vq, 2, 0);                   /* used 6 */
  g_assert_false(nb_virtqueue_should_notify(&f->vq));
  /* The flag is ignored once EVENT_IDX is negotiated. */
  write16(f, AVAIL, NB_VIRTQ_AVAIL_F_NO_INTERRUPT);
  write16(f, used_event, 6);
  nb_virtqueue_push(&f->vq, 0, 0);                   /* used 7 */
  g_assert_true(nb_virtqueue_should_notify(&f->vq));
}

static void
test_event_idx_wrap(Fixture *f, gconstpointer data)
{
  g_assert_true(nb_virtqueue_enable(&f->vq, QSIZE, DESC, AVAIL, USED, true, true, NULL));
  const uint64_t used_event = AVAIL + 4 + 2 * QSIZE;
  f->vq.used_idx = 65534;
  f->vq.signalled_used = 65534;
  f->vq.signalled_used_valid = true;
  write16(f, used_event, 65535);
  nb_virtqueue_push(&f->vq, 0, 0);                   /* 65535 */
  g_assert_false(nb_virtqueue_should_notify(&f->vq));
  nb_virtqueue_push(&f->vq, 0, 0);                   /* 0: passes 65535 */
  g_assert_true(nb_virtqueue_should_notify(&f->vq));
  g_assert_cmpuint(read16(f, USED + 2), ==, 0);
}

static void
test_unpop(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, 0, 0);
  offer(f, 0);
  g_free(pop_ok(f));
  g_assert_false(nb_virtqueue_has_work(&f->vq));
  nb_virtqueue_unpop(&f->vq);
  g_assert_true(nb_virtqueue_has_work(&f->vq));
  g_autofree NbVirtqElement *e = pop_ok(f);
  g_assert_cmpuint(e->head, ==, 0);
}

static void
test_iov_helpers(void)
{
  uint8_t a[4] = { 1, 2, 3, 4 }, b[3] = { 5, 6, 7 }, c[5] = { 8, 9, 10, 11, 12 };
  struct iovec iov[3] = { { a, 4 }, { b, 3 }, { c, 5 } };
  g_assert_cmpuint(nb_virtq_iov_size(iov, 3), ==, 12);
  uint8_t buf[12] = { 0 };
  g_assert_cmpuint(nb_virtq_iov_to_buf(iov, 3, 3, buf, 6), ==, 6);
  g_assert_cmpmem(buf, 6, ((uint8_t[]){ 4, 5, 6, 7, 8, 9 }), 6);
  g_assert_cmpuint(nb_virtq_iov_to_buf(iov, 3, 10, buf, 6), ==, 2);
  g_assert_cmpuint(nb_virtq_iov_from_buf(iov, 3, 6, (uint8_t[]){ 70, 80 }, 2), ==, 2);
  g_assert_cmpuint(b[2], ==, 70);
  g_assert_cmpuint(c[0], ==, 80);
  struct iovec s[3];
  g_assert_cmpint(nb_virtq_iov_slice(iov, 3, 2, 8, s, 3), ==, 3);
  g_assert_true(s[0].iov_base == a + 2 && s[0].iov_len == 2);
  g_assert_true(s[1].iov_base == b && s[1].iov_len == 3);
  g_assert_true(s[2].iov_base == c && s[2].iov_len == 3);
  g_assert_cmpint(nb_virtq_iov_slice(iov, 3, 2, 8, s, 2), ==, -1);
  g_assert_cmpint(nb_virtq_iov_slice(iov, 3, 5, 8, s, 3), ==, -1);   /* past the end */
  g_assert_cmpint(nb_virtq_iov_slice(iov, 3, 0, 0, s, 3), ==, 0);
}

/* The tolerant pop: a chain outside RAM, in the hole, or with an indirect
 * table outside RAM costs only itself; a corrupt ring still breaks. */
static void
test_tolerant(Fixture *f, gconstpointer data)
{
  put_desc(f, 0, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 1);
  put_desc(f, 1, LOW_LIMIT + 0x1000, 64, 0, 0);          /* in the hole */
  put_desc(f, 2, UINT64_C(1) << 40, 64, 0, 0);           /* beyond RAM */
  put_desc(f, 3, UINT64_C(1) << 40, 32, NB_VIRTQ_DESC_F_INDIRECT, 0);
  put_desc(f, 4, DATA, 0, 0, 0);                         /* empty */
  put_desc(f, 5, DATA, 32, NB_VIRTQ_DESC_F_WRITE, 0);    /* good */
  uint16_t heads[] = { 0, 2, 3, 4 };
  for (unsigned i = 0; i < G_N_ELEMENTS(heads); i++)
    offer(f, heads[i]);
  offer(f, 5);
  for (unsigned i = 0; i < G_N_ELEMENTS(heads); i++) {
    g_autoptr(GError) error = NULL;
    NbVirtqElement *e = NULL;
    uint16_t bad = 0xffff;
    g_assert_cmpint(nb_virtqueue_pop_tolerant(&f->vq, &e, &bad, &error), ==, NB_VIRTQ_POP_BAD_BUFFER);
    g_assert_no_error(error);
    g_assert_null(e);
    g_assert_cmpuint(bad, ==, heads[i]);
    g_assert_false(f->vq.broken);
    nb_virtqueue_push(&f->vq, bad, 0);
  }
  uint16_t bad;
  NbVirtqElement *e = NULL;
  g_assert_cmpint(nb_virtqueue_pop_tolerant(&f->vq, &e, &bad, NULL), ==, NB_VIRTQ_POP_OK);
  g_assert_cmpuint(e->head, ==, 5);
  g_assert_cmpuint(e->in_len, ==, 32);
  g_free(e);
  g_assert_cmpuint(read16(f, USED + 2), ==, 4);

  /* A loop is the ring's corruption, not one request's. */
  put_desc(f, 6, DATA, 16, NB_VIRTQ_DESC_F_NEXT, 6);
  offer(f, 6);
  g_autoptr(GError) error = NULL;
  g_assert_cmpint(nb_virtqueue_pop_tolerant(&f->vq, &e, &bad, &error), ==, NB_VIRTQ_POP_BROKEN);
  g_assert_true(f->vq.broken);
}

/* A batch becomes visible to the driver in one used->idx step. */
static void
test_push_batch(Fixture *f, gconstpointer data)
{
  uint16_t heads[3] = { 7, 3, 9 };
  uint32_t lens[3] = { 100, 200, 300 };
  nb_virtqueue_push(&f->vq, 1, 10);
  nb_virtqueue_push_batch(&f->vq, heads, lens, 3);
  g_assert_cmpuint(read16(f, USED + 2), ==, 4);
  for (unsigned i = 0; i < 3; i++) {
    g_assert_cmpuint(read32(f, USED + 4 + 8 * (i + 1)), ==, heads[i]);
    g_assert_cmpuint(read32(f, USED + 8 + 8 * (i + 1)), ==, lens[i]);
  }
  g_assert_true(nb_virtqueue_should_notify(&f->vq));
  /* Around the end of the ring. */
  for (unsigned i = 0; i < QSIZE - 5; i++)
    nb_virtqueue_push(&f->vq, 0, 0);
  nb_virtqueue_push_batch(&f->vq, heads, lens, 3);
  g_assert_cmpuint(read16(f, USED + 2), ==, QSIZE + 2);
  g_assert_cmpuint(read32(f, USED + 4 + 8 * (QSIZE - 1)), ==, 7);
  g_assert_cmpuint(read32(f, USED + 4), ==, 3);
  g_assert_cmpuint(read32(f, USED + 4 + 8), ==, 9);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define T(name, fn) g_test_add("/virtqueue/" name, Fixture, NULL, setup, fn, teardown)
  T("chain", test_chain);
  T("chain-in-high-region", test_chain_in_high_region);
  T("write-only", test_write_only);
  T("indirect", test_indirect);
  T("direct-then-indirect", test_direct_then_indirect);
  T("many-elements", test_many_elements);
  T("longest-chain", test_longest_chain);
  T("avail-full-queue", test_avail_full_queue);
  T("wraparound", test_wraparound);
  T("unpop", test_unpop);
  T("notify/no-interrupt-flag", test_no_interrupt_flag);
  T("notify/no-notify-flag", test_no_notify_flag);
  T("notify/event-idx", test_event_idx);
  T("notify/event-idx-wrap", test_event_idx_wrap);
  T("bad/indirect-not-negotiated", test_indirect_not_negotiated);
  T("bad/nested-indirect", test_nested_indirect);
  T("bad/indirect-with-next", test_indirect_with_next);
  T("bad/indirect-length", test_indirect_bad_length);
  T("bad/indirect-outside-ram", test_indirect_outside_ram);
  T("bad/indirect-loop", test_indirect_loop);
  T("bad/indirect-next-beyond-table", test_indirect_next_beyond_table);
  T("bad/outside-ram", test_outside_ram);
  T("bad/crosses-region-end", test_crosses_region_end);
  T("bad/beyond-ram-end", test_beyond_ram_end);
  T("bad/address-wraps", test_address_wraps);
  T("bad/loop", test_loop);
  T("bad/self-loop", test_self_loop);
  T("bad/zero-length", test_zero_length);
  T("bad/wrong-direction", test_wrong_direction);
  T("bad/next-beyond-queue", test_next_beyond_queue);
  T("bad/head-beyond-queue", test_head_beyond_queue);
  T("bad/avail-jump", test_avail_jump);
  T("bad/queue-setup", test_bad_queue_setup);
  T("tolerant-pop", test_tolerant);
  T("push-batch", test_push_batch);
#undef T
  g_test_add_func("/virtqueue/iov-helpers", test_iov_helpers);
  return g_test_run();
}
