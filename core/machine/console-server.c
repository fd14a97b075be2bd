#include "machine/console-server.h"
#include "machine/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct NbConsoleServer {
  NbConsoleIo *io;
  char *path;
  int listen_fd;
  int stop_pipe[2];
  GThread *thread;
  GMutex lock;            /* client_fd: the vCPU threads write to it */
  int client_fd;
};

static const char taken_over[] = "\r\n[nestbox: another client took over this console]\r\n";

/* Guest output, on a vCPU thread: never wait for a slow client. */
static void
on_output(void *ctx, const uint8_t *data, size_t len)
{
  NbConsoleServer *s = ctx;
  g_mutex_lock(&s->lock);
  if (s->client_fd >= 0)
    (void)!send(s->client_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  g_mutex_unlock(&s->lock);
}

static void
drop_client(NbConsoleServer *s)
{
  g_mutex_lock(&s->lock);
  if (s->client_fd >= 0)
    close(s->client_fd);
  s->client_fd = -1;
  g_mutex_unlock(&s->lock);
}

static bool
same_user(int fd)
{
  struct ucred cred;
  socklen_t len = sizeof cred;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == getuid();
}

/* Reads the request byte (waiting briefly) and answers it. */
static void
handshake(NbConsoleServer *s, int fd)
{
  struct pollfd p = { .fd = fd, .events = POLLIN };
  char request = 0;
  if (!same_user(fd) || poll(&p, 1, 2000) != 1 || recv(fd, &request, 1, 0) != 1 ||
      (request != 'a' && request != 'f')) {
    close(fd);
    return;
  }
  g_mutex_lock(&s->lock);
  bool busy = s->client_fd >= 0;
  if (busy && request == 'a') {
    g_mutex_unlock(&s->lock);
    (void)!send(fd, "BUSY\n", 5, MSG_NOSIGNAL);
    close(fd);
    return;
  }
  if (busy) {
    (void)!send(s->client_fd, taken_over, sizeof taken_over - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(s->client_fd);
  }
  (void)!send(fd, "OK\n", 3, MSG_NOSIGNAL);
  s->client_fd = fd;
  g_mutex_unlock(&s->lock);
}

static gpointer
server_thread(gpointer data)
{
  NbConsoleServer *s = data;
  uint8_t buf[4096];
  for (;;) {
    g_mutex_lock(&s->lock);
    int client = s->client_fd;
    g_mutex_unlock(&s->lock);
    struct pollfd fds[3] = {
      { .fd = s->stop_pipe[0], .events = POLLIN },
      { .fd = s->listen_fd, .events = POLLIN },
      { .fd = client, .events = POLLIN },
    };
    if (poll(fds, client >= 0 ? 3 : 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[0].revents)
      break;
    if (fds[1].revents & POLLIN) {
      int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd >= 0)
        handshake(s, fd);
      continue;   /* the client may have changed */
    }
    if (client >= 0 && fds[2].revents) {
      ssize_t n = recv(client, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        nb_console_io_inject(s->io, buf, (size_t)n);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        g_mutex_lock(&s->lock);
        if (s->client_fd == client) {
          close(client);
          s->client_fd = -1;
        }
        g_mutex_unlock(&s->lock);
      }
    }
  }
  return NULL;
}

NbConsoleServer *
nb_console_server_new(const char *path, NbConsoleIo *io, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof addr.sun_path) {
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_CONFIG,
                "the console socket path %s is too long for a UNIX socket — use a shorter XDG_RUNTIME_DIR", path);
    return NULL;
  }
  strcpy(addr.sun_path, path);
  NbConsoleServer *s = g_new0(NbConsoleServer, 1);
  g_mutex_init(&s->lock);
  s->io = io;
  s->path = g_strdup(path);
  s->client_fd = -1;
  s->stop_pipe[0] = s->stop_pipe[1] = -1;
  s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(path);
  mode_t old_umask = umask(077);
  bool ok = s->listen_fd >= 0 && bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
            listen(s->listen_fd, 4) == 0;
  int err = errno;
  umask(old_umask);
  if (ok)
    chmod(path, 0600);
  if (!ok || pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
    if (ok)
      err = errno;
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED, "cannot listen on the console socket %s: %s",
                path, g_strerror(err));
    nb_console_server_free(s);
    return NULL;
  }
  nb_console_io_set_tap(io, on_output, s);
  s->thread = g_thread_new("console-socket", server_thread, s);
  return s;
}

void
nb_console_server_free(NbConsoleServer *s)
{
  if (s == NULL)
    return;
  if (s->thread) {
    nb_console_io_set_tap(s->io, NULL, NULL);
    (void)!write(s->stop_pipe[1], "x", 1);
    g_thread_join(s->thread);
    unlink(s->path);
  }
  drop_client(s);
  if (s->listen_fd >= 0)
    close(s->listen_fd);
  for (int i = 0; i < 2; i++)
    if (s->stop_pipe[i] >= 0)
      close(s->stop_pipe[i]);
  g_mutex_clear(&s->lock);
  g_free(s->path);
  g_free(s);
}
