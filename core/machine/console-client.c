#include "machine/console-client.h"
#include "control/control-server.h"
#include "machine/machine.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

char *
nb_console_socket_path(const char *name)
{
  return nb_control_runtime_path(name, ".console");
}

static bool
write_all(int fd, const uint8_t *data, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    len -= (size_t)n;
  }
  return true;
}

bool
nb_console_client_attach(const char *path, const char *name, bool take_over, FILE *err, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof addr.sun_path) {
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED, "the console socket path %s is too long", path);
    return false;
  }
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED,
                "cannot reach the console of machine %s (%s): %s", name, path, g_strerror(e));
    return false;
  }
  char request = take_over ? 'f' : 'a';
  char reply[8] = "";
  size_t got = 0;
  if (send(fd, &request, 1, MSG_NOSIGNAL) != 1) {
    close(fd);
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED, "the console of machine %s hung up", name);
    return false;
  }
  while (got < sizeof reply - 1 && (got == 0 || reply[got - 1] != '\n')) {
    ssize_t n = recv(fd, reply + got, 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  if (strcmp(reply, "OK\n") != 0) {
    close(fd);
    if (strcmp(reply, "BUSY\n") == 0)
      g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED,
                  "the console of machine %s is in use by another client; use --force to take it over", name);
    else
      g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED,
                  "the console of machine %s refused the connection", name);
    return false;
  }

  struct termios saved;
  bool raw = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
  }
  fprintf(err, "Connected to the console of %s; Ctrl-] detaches.%s", name, raw ? "\r\n" : "\n");
  fflush(err);

  uint8_t buf[4096];
  bool stdin_open = true;
  for (;;) {
    struct pollfd fds[2] = { { .fd = fd, .events = POLLIN }, { .fd = STDIN_FILENO, .events = POLLIN } };
    if (poll(fds, stdin_open ? 2 : 1, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[0].revents) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        fprintf(err, "%s[the machine's console closed]%s", raw ? "\r\n" : "\n", raw ? "\r\n" : "\n");
        break;
      }
      if (!write_all(STDOUT_FILENO, buf, (size_t)n))
        break;
    }
    if (stdin_open && fds[1].revents) {
      ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        /* Piped input ran out: keep showing output, as `socat` does not;
         * a script that wants to leave sends Ctrl-]. */
        stdin_open = false;
        continue;
      }
      uint8_t *detach = memchr(buf, NB_CONSOLE_DETACH_KEY, (size_t)n);
      size_t len = detach ? (size_t)(detach - buf) : (size_t)n;
      if (len && send(fd, buf, len, MSG_NOSIGNAL) < 0)
        break;
      if (detach) {
        fprintf(err, "%s[detached from %s]%s", raw ? "\r\n" : "\n", name, raw ? "\r\n" : "\n");
        break;
      }
    }
  }
  if (raw)
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  close(fd);
  return true;
}
