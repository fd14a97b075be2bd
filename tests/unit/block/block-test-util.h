/* Helpers for the block tests: temporary folders, running qemu-img, files. */
#pragma once

#include "block/block.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline char *
bt_tmpdir(void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp("nb-block-XXXXXX", &error);
  g_assert_no_error(error);
  return dir;
}

static inline void
bt_rmdir(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d)) != NULL) {
    g_autofree char *p = g_build_filename(dir, name, NULL);
    g_unlink(p);
  }
  g_rmdir(dir);
}

/* Runs a shell command; returns its exit status and its output in *out. */
static inline int
bt_run(char **out, const char *format, ...) G_GNUC_PRINTF(2, 3);

static inline int
bt_run(char **out, const char *format, ...)
{
  va_list ap;
  va_start(ap, format);
  g_autofree char *cmd = g_strdup_vprintf(format, ap);
  va_end(ap);
  g_autofree char *so = NULL, *se = NULL;
  int status = -1;
  char *argv[] = { "/bin/sh", "-c", cmd, NULL };
  g_autoptr(GError) error = NULL;
  g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &so, &se, &status,
                             &error));
  if (out)
    *out = g_strconcat(so, se, NULL);
  else if (!g_spawn_check_wait_status(status, NULL))
    g_test_message("%s:\n%s%s", cmd, so, se);
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return -1;
}

static inline void
bt_require_qemu_img(void)
{
  g_autofree char *found = g_find_program_in_path("qemu-img");
  if (found == NULL) {
    g_print("qemu-img is missing: install qemu-utils\n");
    exit(77);
  }
}

/* qemu-img check must find no errors (leaks allowed only when told). */
static inline void
bt_assert_qemu_check(const char *path, bool allow_leaks)
{
  g_autofree char *out = NULL;
  int rc = bt_run(&out, "qemu-img check -f qcow2 '%s' 2>&1", path);
  if (rc != 0 && !(allow_leaks && rc == 3)) {
    g_printerr("qemu-img check %s failed (%d):\n%s\n", path, rc, out);
    g_assert_not_reached();
  }
}

static inline void
bt_assert_same(const char *a, const char *fa, const char *b, const char *fb)
{
  g_autofree char *out = NULL;
  int rc = bt_run(&out, "qemu-img compare -f %s -F %s '%s' '%s' 2>&1", fa, fb, a, b);
  if (rc != 0) {
    g_printerr("qemu-img compare %s %s: %s\n", a, b, out);
    g_assert_not_reached();
  }
}

static inline void
bt_fill(uint8_t *buf, size_t len, uint32_t seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (uint8_t)x;
  }
}

static inline void
bt_write(NbBlock *b, const void *buf, size_t len, uint64_t off)
{
  g_autoptr(GError) error = NULL;
  struct iovec iov = { (void *)buf, len };
  g_assert_true(nb_block_pwritev(b, &iov, 1, off, &error));
  g_assert_no_error(error);
}

static inline void
bt_read(NbBlock *b, void *buf, size_t len, uint64_t off)
{
  g_autoptr(GError) error = NULL;
  struct iovec iov = { buf, len };
  g_assert_true(nb_block_preadv(b, &iov, 1, off, &error));
  g_assert_no_error(error);
}

static inline char *
bt_file_checksum(const char *path)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_assert_true(g_file_get_contents(path, &data, &len, NULL));
  return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, len);
}
