/* Crash test: a writer is killed with SIGKILL at random points. Afterwards
 * qemu-img check may find leaked clusters but nothing worse, and every write
 * acknowledged by a flush before the kill reads back. */
#include "block/qcow2.h"
#include "block-test-util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS 48
#define SLOT_BYTES (24 * 1024)
#define SECTOR 512

/* Sector s of a write by op carries (op + 1, s) so any sector tells its writer. */
static void
stamp(uint8_t *buf, uint32_t op, size_t sectors)
{
  for (size_t s = 0; s < sectors; s++) {
    uint32_t hdr[2] = { op + 1, (uint32_t)s };
    memcpy(buf + s * SECTOR, hdr, sizeof hdr);
    bt_fill(buf + s * SECTOR + 8, SECTOR - 8, op * 1000 + (uint32_t)s);
  }
}

static void
slot_of(uint32_t op, uint32_t seed, uint32_t *slot, uint32_t *first, uint32_t *count)
{
  GRand *r = g_rand_new_with_seed(seed * 7919 + op);
  *slot = (uint32_t)g_rand_int_range(r, 0, SLOTS);
  *first = (uint32_t)g_rand_int_range(r, 0, SLOT_BYTES / SECTOR);
  *count = (uint32_t)g_rand_int_range(r, 1, SLOT_BYTES / SECTOR - (gint32)*first + 1);
  g_rand_free(r);
}

static G_NORETURN void
writer(const char *path, uint32_t seed, uint32_t start_op, int report)
{
  g_autoptr(GError) error = NULL;
  NbBlock *b = nb_block_open(path, NULL, &error);
  if (b == NULL)
    _exit(2);
  uint8_t *buf = g_malloc(SLOT_BYTES);
  for (uint32_t op = start_op;; op++) {
    uint32_t slot, first, count;
    slot_of(op, seed, &slot, &first, &count);
    stamp(buf, op, count);
    struct iovec iov = { buf, (size_t)count * SECTOR };
    if (!nb_block_pwritev(b, &iov, 1, (uint64_t)slot * SLOT_BYTES + first * SECTOR, &error))
      _exit(3);
    if (op % 5 == 4) {
      if (!nb_block_flush(b, &error))
        _exit(4);
      if (write(report, &op, sizeof op) != sizeof op)
        _exit(5);
    }
  }
}

static void
test_crash(void)
{
  g_autofree char *dir = bt_tmpdir();
  g_autofree char *base = g_build_filename(dir, "base.raw", NULL);
  g_autofree char *path = g_build_filename(dir, "crash.qcow2", NULL);
  g_autoptr(GError) error = NULL;
  uint64_t size = (uint64_t)SLOTS * SLOT_BYTES;
  g_autofree uint8_t *basedata = g_malloc(size);
  bt_fill(basedata, size, 5);
  g_assert_true(g_file_set_contents(base, (char *)basedata, (gssize)size, NULL));
  /* Small clusters over a backing file, with a snapshot: allocation, partial
   * copy-on-write and shared clusters all get interrupted. */
  NbQcow2CreateOptions o = { .cluster_bits = 12, .backing_file = "base.raw",
                             .backing_format = NB_BLOCK_FORMAT_RAW };
  g_assert_true(nb_qcow2_create(path, size, &o, &error));
  g_assert_no_error(error);

  GRand *rng = g_rand_new_with_seed(4242);
  /* Per sector, the op that last wrote it and was acknowledged (0 = none). */
  g_autofree uint32_t *acked = g_new0(uint32_t, size / SECTOR);
  uint32_t next_op = 0;
  for (int round = 0; round < 8; round++) {
    if (round == 3) {
      g_autoptr(NbBlock) b = nb_block_open(path, NULL, &error);
      g_assert_no_error(error);
      g_assert_true(nb_qcow2_snapshot_create(b, "mid", &error));
      g_assert_no_error(error);
    }
    int fds[2];
    g_assert_cmpint(pipe(fds), ==, 0);
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
      close(fds[0]);
      writer(path, 77, next_op, fds[1]);
    }
    close(fds[1]);
    g_usleep((gulong)g_rand_int_range(rng, 2000, 60000));
    kill(pid, SIGKILL);
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFSIGNALED(status));
    uint32_t last = UINT32_MAX, v;
    while (read(fds[0], &v, sizeof v) == sizeof v)
      last = v;
    close(fds[0]);
    g_test_message("round %d: last acknowledged op %d", round, (int)last);

    /* Leaks are allowed, errors are not. */
    g_autofree char *out = NULL;
    int rc = bt_run(&out, "qemu-img check -f qcow2 '%s' 2>&1", path);
    if (rc != 0 && rc != 3)
      g_error("round %d: qemu-img check says (%d):\n%s", round, rc, out);

    /* Acknowledged writes are there: each sector holds its last acknowledged
     * write or a later one (written, not yet flushed). */
    if (last != UINT32_MAX) {
      for (uint32_t op = next_op; op <= last; op++) {
        uint32_t slot, first, count;
        slot_of(op, 77, &slot, &first, &count);
        for (uint32_t s = 0; s < count; s++)
          acked[(uint64_t)slot * (SLOT_BYTES / SECTOR) + first + s] = op + 1;
      }
      next_op = last + 1;
    }
    NbBlockOpenOptions ro = { .read_only = true };
    g_autoptr(NbBlock) b = nb_block_open(path, &ro, &error);
    g_assert_no_error(error);
    g_autofree uint8_t *disk = g_malloc(size);
    bt_read(b, disk, size, 0);
    for (uint64_t sec = 0; sec < size / SECTOR; sec++) {
      uint32_t hdr[2];
      memcpy(hdr, disk + sec * SECTOR, sizeof hdr);
      if (acked[sec] == 0) {
        if (memcmp(disk + sec * SECTOR, basedata + sec * SECTOR, SECTOR) == 0)
          continue;
      }
      if (hdr[0] == 0 || hdr[0] < acked[sec])
        g_error("round %d: sector %" G_GUINT64_FORMAT " lost acknowledged write %u (has %u)",
                round, sec, acked[sec], hdr[0]);
      uint8_t want[SECTOR];
      stamp(want, hdr[0] - 1, 1);
      uint32_t slot, first, count;
      slot_of(hdr[0] - 1, 77, &slot, &first, &count);
      uint32_t idx = (uint32_t)(sec - (uint64_t)slot * (SLOT_BYTES / SECTOR)) - first;
      uint8_t full[SLOT_BYTES];
      stamp(full, hdr[0] - 1, count);
      g_assert_cmpmem(disk + sec * SECTOR, SECTOR, full + (size_t)idx * SECTOR, SECTOR);
    }
    /* Later writers start after the last op this one could have issued. */
    next_op += 100000;
    for (uint64_t sec = 0; sec < size / SECTOR; sec++) {
      uint32_t hdr[2];
      memcpy(hdr, disk + sec * SECTOR, sizeof hdr);
      if (hdr[0] > acked[sec] && hdr[0] < next_op + 1 &&
          memcmp(disk + sec * SECTOR, basedata + sec * SECTOR, SECTOR) != 0)
        acked[sec] = hdr[0];  /* what survived is now the baseline */
    }
  }
  g_rand_free(rng);
  /* Our check agrees there is no corruption, and its repair leaves an image
   * qemu-img finds clean. */
  NbQcow2CheckResult res;
  {
    NbBlockOpenOptions ro = { .read_only = true };
    g_autoptr(NbBlock) b = nb_block_open(path, &ro, &error);
    g_assert_true(nb_qcow2_check(b, false, &res, &error));
    g_assert_cmpuint(res.corruptions, ==, 0);
    g_test_message("%" G_GUINT64_FORMAT " leaked clusters", res.leaks);
    nb_qcow2_check_result_clear(&res);
  }
  {
    g_autoptr(NbBlock) b = nb_block_open(path, NULL, &error);
    g_assert_true(nb_qcow2_check(b, true, &res, &error));
    g_assert_cmpuint(res.corruptions, ==, 0);
    nb_qcow2_check_result_clear(&res);
  }
  bt_assert_qemu_check(path, false);
  bt_rmdir(dir);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  bt_require_qemu_img();
  g_test_add_func("/block/qcow2/crash", test_crash);
  return g_test_run();
}
