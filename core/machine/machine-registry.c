/* Machines on disk. OFD locks (not flock or POSIX locks) because they belong
 * to the open file, so a thread or a library closing another fd to the same
 * file cannot drop them, and they vanish with the process if it crashes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_OFD_SETLK */
#endif
#include "machine/machine-registry.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

bool nb_machine_name_check(const char *name, GError **error)
{
  const char *why = NULL;
  bool blank = true;
  for (const char *p = name; *p; p++) {
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      why = "it contains a control character";
    else if (*p == '/')
      why = "it contains '/'";
    if (!g_ascii_isspace(*p))
      blank = false;
  }
  if (*name == '\0' || blank)
    why = "it is empty or only whitespace";
  else if (strlen(name) > NB_MACHINE_NAME_MAX)
    why = "it is longer than 64 bytes";
  else if (name[0] == '.')
    why = "it starts with '.'";
  else if (strstr(name, ".."))
    why = "it contains '..'";
  else if (!why && !g_utf8_validate(name, -1, NULL))
    why = "it is not valid UTF-8";
  if (why) {
    g_autofree char *shown = g_strescape(name, NULL);
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID,
                "'%s' cannot be a machine name: %s — use letters, digits, '-', '_' or '.' (at most %d bytes)", shown,
                why, NB_MACHINE_NAME_MAX);
    return false;
  }
  return true;
}

char *nb_machine_registry_root(void)
{
  return g_build_filename(g_get_user_data_dir(), "nestbox", "machines", NULL);
}

char *nb_machine_registry_dir(const char *name)
{
  g_autofree char *root = nb_machine_registry_root();
  return g_build_filename(root, name, NULL);
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

char **nb_machine_registry_list(GError **error)
{
  g_autofree char *root = nb_machine_registry_root();
  GPtrArray *names = g_ptr_array_new();
  g_autoptr(GError) local = NULL;
  g_autoptr(GDir) dir = g_dir_open(root, 0, &local);
  if (dir == NULL && !g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_IO, "Cannot list machines: %s", local->message);
    g_ptr_array_free(names, TRUE);
    return NULL;
  }
  for (const char *n; dir && (n = g_dir_read_name(dir));) {
    g_autofree char *ini = g_build_filename(root, n, "machine.ini", NULL);
    if (nb_machine_name_check(n, NULL) && g_file_test(ini, G_FILE_TEST_IS_REGULAR))
      g_ptr_array_add(names, g_strdup(n));
  }
  g_ptr_array_sort(names, compare_names);
  g_ptr_array_add(names, NULL);
  return (char **)g_ptr_array_free(names, FALSE);
}

NbMachineDocument *nb_machine_registry_find(const char *name, GError **error)
{
  if (!nb_machine_name_check(name, error))
    return NULL;
  g_autofree char *dir = nb_machine_registry_dir(name);
  g_autofree char *ini = g_build_filename(dir, "machine.ini", NULL);
  if (!g_file_test(ini, G_FILE_TEST_EXISTS)) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_NOT_FOUND,
                "No machine named '%s' — see the machines there are with: nestboxctl list", name);
    return NULL;
  }
  return nb_machine_document_load(dir, error);
}

bool nb_machine_registry_create(NbMachineDocument *doc, GError **error)
{
  if (!nb_machine_name_check(doc->name, error))
    return false;
  g_autofree char *root = nb_machine_registry_root();
  if (g_mkdir_with_parents(root, 0700) < 0) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_IO, "Cannot create %s: %s", root, g_strerror(errno));
    return false;
  }
  g_autofree char *dir = nb_machine_registry_dir(doc->name);
  /* mkdir is the atomic claim on the name: two creates cannot both succeed. */
  if (g_mkdir(dir, 0700) < 0) {
    int e = errno;
    g_set_error(error, NB_MACHINE_DOC_ERROR, e == EEXIST ? NB_MACHINE_DOC_ERROR_EXISTS : NB_MACHINE_DOC_ERROR_IO,
                e == EEXIST ? "Machine '%s' already exists (%s) — pick another name or delete it first"
                            : "Cannot create machine '%s' in %s", doc->name, dir);
    return false;
  }
  g_free(doc->dir);
  doc->dir = g_strdup(dir);
  if (doc->uuid == NULL)
    doc->uuid = g_uuid_string_random();
  if (!nb_machine_document_save(doc, error)) {
    g_rmdir(dir);
    return false;
  }
  return true;
}

static int lock_fd(const char *path, bool wait, GError **error)
{
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_IO, "Cannot open the lock file %s: %s", path,
                g_strerror(errno));
    return -1;
  }
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
  int r;
  while ((r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl)) < 0 && errno == EINTR)
    ;
  if (r < 0) {
    int e = errno;
    close(fd);
    g_set_error(error, NB_MACHINE_DOC_ERROR, (e == EAGAIN || e == EACCES) ? NB_MACHINE_DOC_ERROR_BUSY : NB_MACHINE_DOC_ERROR_IO,
                (e == EAGAIN || e == EACCES) ? "The machine is running (%s is locked) — stop it first"
                                             : "Cannot lock %s", path);
    return -1;
  }
  return fd;
}

int nb_machine_lock_acquire(const char *dir, GError **error)
{
  g_autofree char *path = g_build_filename(dir, "lock", NULL);
  return lock_fd(path, false, error);
}

void nb_machine_lock_release(int fd)
{
  if (fd >= 0)
    close(fd); /* closing the last fd of the open file drops its OFD lock */
}

bool nb_machine_lock_is_held(const char *dir)
{
  g_autofree char *path = g_build_filename(dir, "lock", NULL);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
  bool held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  close(fd);
  return held;
}

int nb_machine_edit_lock(const char *dir, GError **error)
{
  g_autofree char *path = g_build_filename(dir, "machine.ini.lock", NULL);
  return lock_fd(path, true, error);
}

static bool remove_tree(const char *path)
{
  if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    for (const char *n; d && (n = g_dir_read_name(d));) {
      g_autofree char *child = g_build_filename(path, n, NULL);
      if (!remove_tree(child))
        return false;
    }
    return g_rmdir(path) == 0;
  }
  return g_unlink(path) == 0;
}

bool nb_machine_registry_delete(const char *name, GError **error)
{
  if (!nb_machine_name_check(name, error))
    return false;
  g_autofree char *dir = nb_machine_registry_dir(name);
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_NOT_FOUND, "No machine named '%s'", name);
    return false;
  }
  /* Take the run lock ourselves so a start cannot slip in while we delete. */
  int fd = nb_machine_lock_acquire(dir, error);
  if (fd < 0)
    return false;
  bool ok = remove_tree(dir);
  nb_machine_lock_release(fd);
  if (!ok) {
    g_set_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_IO, "Cannot remove %s completely: %s", dir,
                g_strerror(errno));
    return false;
  }
  return true;
}
