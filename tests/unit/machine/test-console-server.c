/* The serial console socket without a machine: the handshake, output to
 * the attached client, its keys to the console's input, one client at a
 * time, take-over, and clients that send garbage. */
#include "machine/console-io.h"
#include "machine/console-server.h"

#include <glib/gstdio.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
  GMutex lock;
  GString *input;
} Sink;

static void
on_input(void *ctx, const uint8_t *data, size_t len)
{
  Sink *s = ctx;
  g_mutex_lock(&s->lock);
  g_string_append_len(s->input, (const char *)data, (gssize)len);
  g_mutex_unlock(&s->lock);
}

static int
connect_to(const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy(addr.sun_path, path, sizeof addr.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof addr), ==, 0);
  return fd;
}

/* Reads until want has arrived (or the peer closes, or 5 s pass). */
static char *
read_until(int fd, const char *want)
{
  GString *got = g_string_new(NULL);
  gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
  while (strstr(got->str, want) == NULL && g_get_monotonic_time() < deadline) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 100) != 1)
      continue;
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    g_string_append_len(got, buf, n);
  }
  return g_string_free(got, FALSE);
}

static int
attach(const char *path, char request)
{
  int fd = connect_to(path);
  g_assert_cmpint(send(fd, &request, 1, 0), ==, 1);
  return fd;
}

static bool
wait_input(Sink *sink, const char *want)
{
  gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
  for (;;) {
    g_mutex_lock(&sink->lock);
    bool found = strstr(sink->input->str, want) != NULL;
    g_mutex_unlock(&sink->lock);
    if (found || g_get_monotonic_time() > deadline)
      return found;
    g_usleep(10000);
  }
}

static bool
closed_by_peer(int fd)
{
  struct pollfd p = { .fd = fd, .events = POLLIN };
  char c;
  return poll(&p, 1, 5000) == 1 && recv(fd, &c, 1, 0) == 0;
}

static void
test_console_server(void)
{
  g_autofree char *dir = g_dir_make_tmp("nb-console-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "m.console", NULL);
  g_autoptr(GError) error = NULL;
  Sink sink = { .input = g_string_new(NULL) };
  g_mutex_init(&sink.lock);
  NbConsoleIo *io = nb_console_io_new(NB_SERIAL_NONE, NULL, &error);
  g_assert_no_error(error);
  nb_console_io_set_input(io, on_input, &sink);
  /* A stale socket file is replaced. */
  g_assert_true(g_file_set_contents(path, "", 0, NULL));
  NbConsoleServer *server = nb_console_server_new(path, io, &error);
  g_assert_no_error(error);
  struct stat st;
  g_assert_cmpint(stat(path, &st), ==, 0);
  g_assert_true(S_ISSOCK(st.st_mode));
  g_assert_cmpint(st.st_mode & 0777, ==, 0600);

  /* Garbage instead of a request: dropped, and the server goes on. */
  int bad = attach(path, 'x');
  g_assert_true(closed_by_peer(bad));
  close(bad);

  int first = attach(path, 'a');
  g_autofree char *ok = read_until(first, "\n");
  g_assert_cmpstr(ok, ==, "OK\n");
  nb_console_io_write(io, (const uint8_t *)"guest says hi\r\n", 15);
  g_autofree char *out = read_until(first, "hi\r\n");
  g_assert_cmpstr(out, ==, "guest says hi\r\n");
  g_assert_cmpint(send(first, "ls\r", 3, 0), ==, 3);
  g_assert_true(wait_input(&sink, "ls\r"));

  /* A second client is refused while the first is attached. */
  int second = attach(path, 'a');
  g_autofree char *busy = read_until(second, "\n");
  g_assert_cmpstr(busy, ==, "BUSY\n");
  g_assert_true(closed_by_peer(second));
  close(second);

  /* Taking over: the first is told and dropped, the new one gets output. */
  int third = attach(path, 'f');
  g_autofree char *ok3 = read_until(third, "\n");
  g_assert_cmpstr(ok3, ==, "OK\n");
  g_autofree char *told = read_until(first, "took over");
  g_assert_nonnull(strstr(told, "took over"));
  g_assert_true(closed_by_peer(first));
  close(first);
  nb_console_io_write(io, (const uint8_t *)"more\n", 5);
  g_autofree char *more = read_until(third, "more\n");
  g_assert_cmpstr(more, ==, "more\n");

  /* Once it leaves, another can attach. */
  close(third);
  g_usleep(100000);
  int fourth = attach(path, 'a');
  g_autofree char *ok4 = read_until(fourth, "\n");
  g_assert_cmpstr(ok4, ==, "OK\n");

  nb_console_server_free(server);
  g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
  g_assert_true(closed_by_peer(fourth));
  close(fourth);
  /* Output with no server attached goes nowhere and does not crash. */
  nb_console_io_write(io, (const uint8_t *)"x", 1);
  nb_console_io_free(io);
  g_string_free(sink.input, TRUE);
  g_mutex_clear(&sink.lock);
  g_rmdir(dir);
}

static void
test_path_too_long(void)
{
  g_autoptr(GError) error = NULL;
  NbConsoleIo *io = nb_console_io_new(NB_SERIAL_NONE, NULL, &error);
  g_autofree char *path = g_strnfill(200, 'y');
  g_assert_null(nb_console_server_new(path, io, &error));
  g_assert_nonnull(error);
  g_assert_nonnull(strstr(error->message, "too long"));
  nb_console_io_free(io);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/console-server/attach-busy-takeover", test_console_server);
  g_test_add_func("/console-server/path-too-long", test_path_too_long);
  return g_test_run();
}
