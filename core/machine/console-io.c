#include "machine/console-io.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

struct NbConsoleIo {
  int out_fd;
  bool owns_out_fd;
  GMutex out_lock;

  int in_fd;                 /* -1 when there is no input */
  int stop_pipe[2];
  GThread *input_thread;
  GMutex input_lock;
  NbConsoleInputFunc input_func;
  void *input_ctx;

  NbConsoleInputFunc tap_func;  /* a copy of the output (the console socket) */
  void *tap_ctx;

  bool restore_termios;
  struct termios saved_termios;
};

static gpointer
input_thread_main(gpointer data)
{
  NbConsoleIo *io = data;
  uint8_t buf[4096];
  for (;;) {
    struct pollfd fds[2] = {
      { .fd = io->in_fd, .events = POLLIN },
      { .fd = io->stop_pipe[0], .events = POLLIN },
    };
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[1].revents)
      break;
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    ssize_t n = read(io->in_fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n <= 0)
      break;                 /* end of input: the guest just gets no more */
    g_mutex_lock(&io->input_lock);
    if (io->input_func)
      io->input_func(io->input_ctx, buf, (size_t)n);
    g_mutex_unlock(&io->input_lock);
  }
  return NULL;
}

NbConsoleIo *
nb_console_io_new(NbSerialMode mode, const char *path, GError **error)
{
  NbConsoleIo *io = g_new0(NbConsoleIo, 1);
  g_mutex_init(&io->out_lock);
  g_mutex_init(&io->input_lock);
  io->in_fd = -1;
  io->out_fd = -1;
  io->stop_pipe[0] = io->stop_pipe[1] = -1;

  switch (mode) {
  case NB_SERIAL_NONE:
    return io;
  case NB_SERIAL_FILE:
    io->out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (io->out_fd < 0) {
      int err = errno;
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
                  "cannot open the serial output file %s: %s", path, g_strerror(err));
      nb_console_io_free(io);
      return NULL;
    }
    io->owns_out_fd = true;
    return io;
  case NB_SERIAL_STDIO:
    break;
  }

  io->out_fd = STDOUT_FILENO;
  io->in_fd = STDIN_FILENO;
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &io->saved_termios) == 0) {
    struct termios raw = io->saved_termios;
    /* Character at a time, no local echo (the guest echoes); keep ISIG so
     * Ctrl-C and Ctrl-\ still reach nestbox-vm and stop the machine. */
    raw.c_lflag &= ~(ICANON | ECHO | ECHONL | IEXTEN);
    raw.c_iflag &= ~(ICRNL | IXON);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
      io->restore_termios = true;
  }
  if (pipe2(io->stop_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "cannot create a pipe: %s",
                g_strerror(err));
    nb_console_io_free(io);
    return NULL;
  }
  io->input_thread = g_thread_new("console-input", input_thread_main, io);
  return io;
}

void
nb_console_io_free(NbConsoleIo *io)
{
  if (io == NULL)
    return;
  if (io->input_thread) {
    (void)!write(io->stop_pipe[1], "x", 1);
    g_thread_join(io->input_thread);
  }
  for (int i = 0; i < 2; i++)
    if (io->stop_pipe[i] >= 0)
      close(io->stop_pipe[i]);
  if (io->restore_termios)
    tcsetattr(STDIN_FILENO, TCSANOW, &io->saved_termios);
  if (io->owns_out_fd)
    close(io->out_fd);
  g_mutex_clear(&io->out_lock);
  g_mutex_clear(&io->input_lock);
  g_free(io);
}

void
nb_console_io_write(NbConsoleIo *io, const uint8_t *data, size_t len)
{
  g_mutex_lock(&io->out_lock);
  if (io->tap_func)
    io->tap_func(io->tap_ctx, data, len);
  if (io->out_fd < 0)
    len = 0;
  while (len > 0) {
    ssize_t n = write(io->out_fd, data, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        struct pollfd p = { .fd = io->out_fd, .events = POLLOUT };
        poll(&p, 1, 100);
        continue;
      }
      break;   /* a closed terminal or full disk: drop the output, keep running */
    }
    data += n;
    len -= (size_t)n;
  }
  g_mutex_unlock(&io->out_lock);
}

void
nb_console_io_set_input(NbConsoleIo *io, NbConsoleInputFunc func, void *ctx)
{
  g_mutex_lock(&io->input_lock);
  io->input_func = func;
  io->input_ctx = ctx;
  g_mutex_unlock(&io->input_lock);
}

void
nb_console_io_set_tap(NbConsoleIo *io, NbConsoleInputFunc func, void *ctx)
{
  g_mutex_lock(&io->out_lock);
  io->tap_func = func;
  io->tap_ctx = ctx;
  g_mutex_unlock(&io->out_lock);
}

void
nb_console_io_inject(NbConsoleIo *io, const uint8_t *data, size_t len)
{
  g_mutex_lock(&io->input_lock);
  if (io->input_func)
    io->input_func(io->input_ctx, data, len);
  g_mutex_unlock(&io->input_lock);
}
