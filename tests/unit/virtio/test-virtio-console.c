/* virtio-console with MULTIPORT: the control handshake a Linux guest does,
 * hvc0 output and input, and a named port carried over a UNIX socket. */
#include "virtio-test-driver.h"
#include "virtio/virtio-console.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define N_QUEUES 6
#define Q_RX0 0
#define Q_TX0 1
#define Q_CIN 2
#define Q_COUT 3
#define Q_RX1 4
#define Q_TX1 5
#define BUF 256

typedef struct {
  TestDriver td;
  char *dir, *sock;
  NbVirtioConsole *con;
  GMutex out_lock;
  GString *output;
  uint64_t bufs[N_QUEUES][16];   /* gpa of the buffer behind each head */
} Fixture;

static void
capture_output(void *ctx, const uint8_t *data, size_t len)
{
  Fixture *f = ctx;
  g_mutex_lock(&f->out_lock);
  g_string_append_len(f->output, (const char *)data, (gssize)len);
  g_mutex_unlock(&f->out_lock);
}

static bool
wait_output(Fixture *f, const char *expect)
{
  for (unsigned i = 0; i < 5000; i++) {
    g_mutex_lock(&f->out_lock);
    bool ok = strstr(f->output->str, expect) != NULL;
    g_mutex_unlock(&f->out_lock);
    if (ok)
      return true;
    g_usleep(1000);
  }
  return false;
}

/* Gives the device a writable buffer on q. */
static void
post_rx(Fixture *f, unsigned q)
{
  uint64_t gpa = td_alloc(&f->td, BUF);
  TdBuf b = { gpa, BUF, true };
  uint16_t head = td_submit(&f->td, q, &b, 1);
  f->bufs[q][head] = gpa;
  td_kick(&f->td, q);
}

static void
send_tx(Fixture *f, unsigned q, const void *data, size_t len)
{
  uint64_t gpa = td_alloc(&f->td, len);
  memcpy(td_ptr(&f->td, gpa, len), data, len);
  TdBuf b = { gpa, (uint32_t)len, false };
  td_submit(&f->td, q, &b, 1);
  td_kick(&f->td, q);
  uint32_t id, used;
  g_assert_true(td_wait_used(&f->td, q, &id, &used, 5000));
}

static void
send_control(Fixture *f, uint32_t id, uint16_t event, uint16_t value)
{
  uint8_t msg[8];
  uint32_t i = GUINT32_TO_LE(id);
  uint16_t e = GUINT16_TO_LE(event), v = GUINT16_TO_LE(value);
  memcpy(msg, &i, 4);
  memcpy(msg + 4, &e, 2);
  memcpy(msg + 6, &v, 2);
  send_tx(f, Q_COUT, msg, sizeof msg);
}

/* Waits for data on an rx queue; returns it as a string. */
static char *
receive(Fixture *f, unsigned q, uint32_t *len_out)
{
  uint32_t id, len;
  if (!td_wait_used(&f->td, q, &id, &len, 5000))
    return NULL;
  g_assert_cmpuint(len, <=, BUF);
  if (len_out)
    *len_out = len;
  /* Each buffer is used once; give the device a fresh one. */
  char *s = g_malloc0(len + 1);
  memcpy(s, td_ptr(&f->td, f->bufs[q][id], BUF), len);
  post_rx(f, q);
  return s;
}

static void
expect_control(Fixture *f, uint32_t id, uint16_t event, uint16_t value, const char *extra)
{
  uint32_t len;
  g_autofree char *msg = receive(f, Q_CIN, &len);
  g_assert_nonnull(msg);
  uint32_t mid;
  uint16_t mev, mval;
  memcpy(&mid, msg, 4);
  memcpy(&mev, msg + 4, 2);
  memcpy(&mval, msg + 6, 2);
  g_test_message("control: id %u event %u value %u len %u", GUINT32_FROM_LE(mid), GUINT16_FROM_LE(mev), GUINT16_FROM_LE(mval), len);
  g_assert_cmpuint(GUINT32_FROM_LE(mid), ==, id);
  g_assert_cmpuint(GUINT16_FROM_LE(mev), ==, event);
  g_assert_cmpuint(GUINT16_FROM_LE(mval), ==, value);
  g_assert_cmpuint(len, ==, 8 + (extra ? strlen(extra) : 0));
  if (extra)
    g_assert_cmpmem(msg + 8, len - 8, extra, strlen(extra));
}

static void
setup(Fixture *f, gconstpointer data)
{
  td_init(&f->td);
  g_mutex_init(&f->out_lock);
  f->output = g_string_new(NULL);
  g_autoptr(GError) error = NULL;
  f->dir = g_dir_make_tmp("nb-virtio-con-XXXXXX", &error);
  f->sock = g_build_filename(f->dir, "agent.sock", NULL);
  NbVirtioConsolePortSpec ports[] = { { "org.test.agent.0", f->sock } };
  f->con = nb_virtio_console_new(f->td.mem, ports, 1, capture_output, f, &error);
  g_assert_no_error(error);
  td_add(&f->td, nb_virtio_console_pci_device(f->con));
}

static void
teardown(Fixture *f, gconstpointer data)
{
  nb_virtio_console_free(f->con);
  g_assert_false(g_file_test(f->sock, G_FILE_TEST_EXISTS));
  td_clear(&f->td);
  rmdir(f->dir);
  g_free(f->sock);
  g_free(f->dir);
  g_string_free(f->output, TRUE);
  g_mutex_clear(&f->out_lock);
}

#define FEATURES ((UINT64_C(1) << NB_VIRTIO_F_VERSION_1) | (UINT64_C(1) << NB_VIRTIO_F_EVENT_IDX) | \
                  (UINT64_C(1) << NB_VIRTIO_CONSOLE_F_MULTIPORT))

/* What Linux's virtio_console does on probe, up to both ports being ready. */
static void
handshake(Fixture *f)
{
  g_assert_true(td_negotiate(&f->td, FEATURES));
  for (unsigned q = 0; q < N_QUEUES; q++)
    td_setup_queue(&f->td, q, 16);
  td_driver_ok(&f->td);
  for (unsigned i = 0; i < 4; i++)
    post_rx(f, Q_CIN);
  send_control(f, 0, NB_VIRTIO_CONSOLE_DEVICE_READY, 1);
  expect_control(f, 0, NB_VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL);
  post_rx(f, Q_RX0);
  post_rx(f, Q_RX1);
  send_control(f, 0, NB_VIRTIO_CONSOLE_PORT_READY, 1);
  expect_control(f, 0, NB_VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
  expect_control(f, 0, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
  send_control(f, 0, NB_VIRTIO_CONSOLE_PORT_OPEN, 1);   /* hvc0 is always open */
  send_control(f, 1, NB_VIRTIO_CONSOLE_PORT_READY, 1);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_NAME, 1, "org.test.agent.0");
}

static int
connect_client(Fixture *f)
{
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy(addr.sun_path, f->sock, sizeof addr.sun_path);
  g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof addr), ==, 0);
  struct timeval tv = { 5, 0 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void
test_config(Fixture *f, gconstpointer data)
{
  g_assert_cmpuint(td_cfg_read(&f->td, NB_PCI_DEVICE_ID, 2), ==, 0x1043);
  g_assert_cmpuint(td_bar_read(&f->td, NB_VIRTIO_PCI_DEVICE_OFF + 4, 4), ==, 2);
  g_assert_cmpuint(td_bar_read(&f->td, 0x12, 2), ==, N_QUEUES);
  uint64_t features = td_device_features(&f->td);
  g_assert_cmpuint(features & (1u << NB_VIRTIO_CONSOLE_F_MULTIPORT), !=, 0);
  /* Emergency write reaches the console before any queue is set up. */
  td_bar_write(&f->td, NB_VIRTIO_PCI_DEVICE_OFF + 8, '!', 4);
  g_assert_true(wait_output(f, "!"));
}

static void
test_socket_mode(Fixture *f, gconstpointer data)
{
  struct stat st;
  g_assert_cmpint(stat(f->sock, &st), ==, 0);
  g_assert_true(S_ISSOCK(st.st_mode));
  g_assert_cmpuint(st.st_mode & 0777, ==, 0600);
}

static void
test_hvc0(Fixture *f, gconstpointer data)
{
  handshake(f);
  send_tx(f, Q_TX0, "Debian GNU/Linux 12 hvc0\n", 25);
  g_assert_true(wait_output(f, "Debian GNU/Linux 12 hvc0\n"));
  nb_virtio_console_input(f->con, (const uint8_t *)"root\n", 5);
  g_autofree char *in = receive(f, Q_RX0, NULL);
  g_assert_cmpstr(in, ==, "root\n");
  /* Input that arrives with no buffer posted waits for one. */
  g_autofree char *in2 = NULL;
  nb_virtio_console_input(f->con, (const uint8_t *)"ls", 2);
  in2 = receive(f, Q_RX0, NULL);
  g_assert_cmpstr(in2, ==, "ls");
}

static void
test_named_port(Fixture *f, gconstpointer data)
{
  handshake(f);
  int c = connect_client(f);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
  /* Bytes the client sends before the guest opens the port wait for it. */
  g_assert_cmpint(write(c, "{\"execute\":\"guest-ping\"}", 24), ==, 24);
  g_usleep(20000);
  g_assert_cmpuint(td_used_idx(&f->td, Q_RX1), ==, 0);
  send_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1);
  g_autofree char *in = receive(f, Q_RX1, NULL);
  g_assert_cmpstr(in, ==, "{\"execute\":\"guest-ping\"}");

  send_tx(f, Q_TX1, "{\"return\":{}}\n", 14);
  char buf[64] = { 0 };
  size_t got = 0;
  while (got < 14) {
    ssize_t n = read(c, buf + got, sizeof buf - got);
    g_assert_cmpint(n, >, 0);
    got += (size_t)n;
  }
  g_assert_cmpstr(buf, ==, "{\"return\":{}}\n");

  /* A second client is turned away while the first is connected. */
  int c2 = connect_client(f);
  g_assert_cmpint(read(c2, buf, sizeof buf), ==, 0);
  close(c2);

  /* The client leaves: the guest is told. */
  close(c);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
  /* Guest output with nobody listening is dropped, not stuck. */
  send_tx(f, Q_TX1, "lost", 4);
  /* A new client is welcome. */
  c = connect_client(f);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
  g_assert_cmpint(write(c, "again", 5), ==, 5);
  g_autofree char *in2 = receive(f, Q_RX1, NULL);
  g_assert_cmpstr(in2, ==, "again");
  close(c);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
}

static void
test_half_close(Fixture *f, gconstpointer data)
{
  /* "echo cmd | socat - UNIX-CONNECT:sock": the client sends, shuts down
   * its side, and waits for the answer. */
  handshake(f);
  send_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1);
  int c = connect_client(f);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
  g_assert_cmpint(write(c, "{\"execute\":\"guest-info\"}", 25), ==, 25);
  g_assert_cmpint(shutdown(c, SHUT_WR), ==, 0);
  g_autofree char *in = receive(f, Q_RX1, NULL);
  g_assert_cmpstr(in, ==, "{\"execute\":\"guest-info\"}");
  /* Still connected: no PORT_OPEN 0, and the answer reaches the client. */
  uint32_t id, len;
  g_assert_false(td_wait_used(&f->td, Q_CIN, &id, &len, 50));
  send_tx(f, Q_TX1, "{\"return\":{}}", 13);
  char buf[32] = { 0 };
  size_t got = 0;
  while (got < 13) {
    ssize_t n = read(c, buf + got, sizeof buf - got);
    g_assert_cmpint(n, >, 0);
    got += (size_t)n;
  }
  g_assert_cmpstr(buf, ==, "{\"return\":{}}");
  close(c);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
}

static void
test_big_transfer(Fixture *f, gconstpointer data)
{
  /* More than the guest's rx buffers hold at once, both ways. */
  handshake(f);
  int c = connect_client(f);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
  send_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1);
  enum { TOTAL = 8 * 1024 };
  static char pattern[TOTAL];
  for (unsigned i = 0; i < TOTAL; i++)
    pattern[i] = (char)('a' + i % 26);
  g_assert_cmpint(write(c, pattern, TOTAL), ==, TOTAL);
  GString *got = g_string_new(NULL);
  while (got->len < TOTAL) {
    uint32_t len;
    g_autofree char *part = receive(f, Q_RX1, &len);
    g_assert_nonnull(part);
    g_string_append_len(got, part, len);
  }
  g_assert_cmpmem(got->str, got->len, pattern, TOTAL);
  g_string_free(got, TRUE);
  close(c);
}

static void
test_bad_control(Fixture *f, gconstpointer data)
{
  handshake(f);
  /* Unknown ports, unknown events, a short message: ignored. */
  send_control(f, 77, NB_VIRTIO_CONSOLE_PORT_READY, 1);
  send_control(f, 0xffffffff, NB_VIRTIO_CONSOLE_PORT_OPEN, 1);
  send_control(f, 1, 999, 1);
  send_tx(f, Q_COUT, "abc", 3);
  /* PORT_READY twice does not announce twice. */
  send_control(f, 1, NB_VIRTIO_CONSOLE_PORT_READY, 1);
  g_usleep(20000);
  uint32_t id, len;
  g_assert_false(td_wait_used(&f->td, Q_CIN, &id, &len, 50));
  g_assert_cmpuint(td_status(&f->td) & NB_VIRTIO_STATUS_NEEDS_RESET, ==, 0);
  send_tx(f, Q_TX0, "still here\n", 11);
  g_assert_true(wait_output(f, "still here\n"));
}

static void
test_reset_keeps_client(Fixture *f, gconstpointer data)
{
  handshake(f);
  int c = connect_client(f);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
  /* The guest reboots: the host client stays and is announced again. */
  handshake(f);
  expect_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
  send_control(f, 1, NB_VIRTIO_CONSOLE_PORT_OPEN, 1);
  g_assert_cmpint(write(c, "hi", 2), ==, 2);
  g_autofree char *in = receive(f, Q_RX1, NULL);
  g_assert_cmpstr(in, ==, "hi");
  close(c);
}

static void
test_single_port(Fixture *f, gconstpointer data)
{
  /* A driver without MULTIPORT: just hvc0 on queues 0 and 1. */
  g_assert_true(td_negotiate(&f->td, UINT64_C(1) << NB_VIRTIO_F_VERSION_1));
  td_setup_queue(&f->td, 0, 16);
  td_setup_queue(&f->td, 1, 16);
  td_driver_ok(&f->td);
  post_rx(f, Q_RX0);
  send_tx(f, Q_TX0, "plain\n", 6);
  g_assert_true(wait_output(f, "plain\n"));
  nb_virtio_console_input(f->con, (const uint8_t *)"x", 1);
  g_autofree char *in = receive(f, Q_RX0, NULL);
  g_assert_cmpstr(in, ==, "x");
}

static void
test_bad_specs(void)
{
  TestDriver td;
  td_init(&td);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("nb-virtio-con-XXXXXX", &error);
  g_autofree char *file = g_build_filename(dir, "not-a-socket", NULL);
  g_assert_true(g_file_set_contents(file, "keep me", -1, NULL));
  NbVirtioConsolePortSpec occupied[] = { { "a", file } };
  g_assert_null(nb_virtio_console_new(td.mem, occupied, 1, NULL, NULL, &error));
  g_assert_nonnull(strstr(error->message, "not a socket"));
  g_clear_error(&error);
  g_autofree char *contents = NULL;
  g_assert_true(g_file_get_contents(file, &contents, NULL, NULL));
  g_assert_cmpstr(contents, ==, "keep me");

  /* A socket a running machine listens on is not taken over; a stale one is. */
  g_autofree char *live = g_build_filename(dir, "live.sock", NULL);
  NbVirtioConsolePortSpec live_spec[] = { { "a", live } };
  NbVirtioConsole *first = nb_virtio_console_new(td.mem, live_spec, 1, NULL, NULL, &error);
  g_assert_no_error(error);
  g_assert_null(nb_virtio_console_new(td.mem, live_spec, 1, NULL, NULL, &error));
  g_assert_nonnull(strstr(error->message, "another process"));
  g_clear_error(&error);
  nb_virtio_console_free(first);
  int stale = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy(addr.sun_path, live, sizeof addr.sun_path);
  g_assert_cmpint(bind(stale, (struct sockaddr *)&addr, sizeof addr), ==, 0);
  close(stale);
  NbVirtioConsole *second = nb_virtio_console_new(td.mem, live_spec, 1, NULL, NULL, &error);
  g_assert_no_error(error);
  nb_virtio_console_free(second);
  g_assert_false(g_file_test(live, G_FILE_TEST_EXISTS));

  g_autofree char *s1 = g_build_filename(dir, "s1", NULL);
  NbVirtioConsolePortSpec slash[] = { { "a/b", s1 } };
  g_assert_null(nb_virtio_console_new(td.mem, slash, 1, NULL, NULL, &error));
  g_clear_error(&error);
  NbVirtioConsolePortSpec twice[] = { { "a", s1 }, { "a", s1 } };
  g_assert_null(nb_virtio_console_new(td.mem, twice, 2, NULL, NULL, &error));
  g_clear_error(&error);
  g_assert_false(g_file_test(s1, G_FILE_TEST_EXISTS));
  unlink(file);
  rmdir(dir);
  td_clear(&td);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define T(name, fn) g_test_add("/virtio-console/" name, Fixture, NULL, setup, fn, teardown)
  T("config", test_config);
  T("socket-mode", test_socket_mode);
  T("hvc0", test_hvc0);
  T("named-port", test_named_port);
  T("half-close", test_half_close);
  T("big-transfer", test_big_transfer);
  T("bad-control", test_bad_control);
  T("reset-keeps-client", test_reset_keeps_client);
  T("single-port", test_single_port);
#undef T
  g_test_add_func("/virtio-console/bad-specs", test_bad_specs);
  return g_test_run();
}
