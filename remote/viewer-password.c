/* Reading the password. The session keeps it for reconnecting and wipes it when it
 * ends; the buffers used here are wiped as soon as the password is copied out. */
#include "viewer-password.h"

#include "viewer-address.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* A VNC password is eight bytes; anything past a few kilobytes is not a password file. */
#define PASSWORD_FILE_MAX 4096

char *
nb_viewer_password_read_file(const char *path, GError **error)
{
  g_autofree char *contents = NULL;
  gsize length = 0;
  g_autoptr(GError) local = NULL;
  if (!g_file_get_contents(path, &contents, &length, &local)) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PASSWORD,
                "cannot read the password file: %s", local->message);
    return NULL;
  }
  if (length > PASSWORD_FILE_MAX) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PASSWORD,
                "the password file %s is %zu bytes: a password file holds one line",
                path, (size_t)length);
    explicit_bzero(contents, length);
    return NULL;
  }
  gsize line = strcspn(contents, "\r\n");
  char *password = g_strndup(contents, line);
  explicit_bzero(contents, length);
  if (*password == '\0') {
    g_free(password);
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PASSWORD,
                "the password file %s is empty: write the password on its first line", path);
    return NULL;
  }
  return password;
}

char *
nb_viewer_password_ask(const char *prompt, GError **error)
{
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_NO_TERMINAL,
                "the server asks for a password and there is no terminal to ask on (%s): "
                "give it with --password-file PATH", g_strerror(errno));
    return NULL;
  }
  struct termios saved, quiet;
  bool restore = tcgetattr(fd, &saved) == 0;
  if (restore) {
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  if (write(fd, prompt, strlen(prompt)) < 0) {
    /* Nothing to do: the read below still works or fails on its own. */
  }
  char buffer[256];
  gsize used = 0;
  bool ended = false;
  while (used < sizeof(buffer) - 1) {
    ssize_t n = read(fd, buffer + used, 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (buffer[used] == '\n') {
      ended = true;
      break;
    }
    used++;
  }
  buffer[used] = '\0';
  if (restore)
    tcsetattr(fd, TCSAFLUSH, &saved);
  if (write(fd, "\n", 1) < 0) {
    /* The newline the hidden input did not echo; losing it is harmless. */
  }
  close(fd);
  if (!ended && used == 0) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PASSWORD,
                "no password was typed (end of input on the terminal)");
    return NULL;
  }
  char *password = g_strndup(buffer, strcspn(buffer, "\r"));
  explicit_bzero(buffer, sizeof(buffer));
  return password;
}
