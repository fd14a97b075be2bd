#include "virtio/virtio-console.h"
#include "virtio/virtio-pci.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define Q_CONTROL_RX 2   /* host to guest control messages (c_ivq) */
#define Q_CONTROL_TX 3   /* guest to host (c_ovq) */
#define CONTROL_HEADER 8
#define CONFIG_SIZE 12
#define CFG_MAX_NR_PORTS 4
#define CFG_EMERG_WR 8
/* Guest output held back for a slow socket client: one chain's worth. */
#define PORT_OUT_MAX (1024 * 1024)

typedef struct NbVirtioConsole NbVirtioConsole;

typedef struct {
  NbVirtioConsole *con;
  unsigned id;
  char *name;               /* NULL for the console */
  char *socket_path;
  int listen_fd;
  int client_fd;
  bool guest_ready;         /* PORT_READY received */
  bool guest_open;          /* the guest has the port open */
  /* The client shut down its sending side (a one-shot "echo cmd | socat"):
   * it may still read the guest's answer, so the port stays connected
   * until the client closes completely. */
  bool peer_rdhup;          /* reported: stop asking for EPOLLRDHUP */
  bool peer_eof;            /* read everything: stop asking for EPOLLIN */
  GByteArray *out_pending;  /* guest output a socket client has not taken yet */
} Port;

struct NbVirtioConsole {
  NbVirtioPci *vp;
  NbVirtioConsoleOutputFunc output;
  void *output_ctx;
  unsigned n_ports;
  Port *ports;
  GQueue control_out;       /* GBytes, waiting for c_ivq buffers */
  GMutex input_lock;
  GByteArray *console_input;
  uint8_t config[CONFIG_SIZE];
};

static unsigned
rx_queue(unsigned port)
{
  return port == 0 ? 0 : 2 * (port + 1);
}

static bool
multiport(NbVirtioConsole *con)
{
  return nb_virtio_pci_has_feature(con->vp, NB_VIRTIO_CONSOLE_F_MULTIPORT);
}

static void
notify_if_needed(NbVirtioConsole *con, unsigned q)
{
  if (nb_virtqueue_should_notify(nb_virtio_pci_queue(con->vp, q)))
    nb_virtio_pci_notify_queue(con->vp, q);
}

/* Pops from q; marks the device broken on a corrupt ring. */
static NbVirtqElement *
pop(NbVirtioConsole *con, unsigned q)
{
  g_autoptr(GError) error = NULL;
  NbVirtqElement *elem = NULL;
  if (nb_virtqueue_pop(nb_virtio_pci_queue(con->vp, q), &elem, &error) == NB_VIRTQ_POP_BROKEN)
    nb_virtio_pci_set_broken(con->vp, error->message);
  return elem;
}

/* Control messages to the guest ---------------------------------------------- */

static void
flush_control(NbVirtioConsole *con)
{
  NbVirtqueue *vq = nb_virtio_pci_queue(con->vp, Q_CONTROL_RX);
  while (!g_queue_is_empty(&con->control_out)) {
    NbVirtqElement *elem = pop(con, Q_CONTROL_RX);
    if (elem == NULL)
      break;
    GBytes *msg = g_queue_pop_head(&con->control_out);
    gsize len;
    const uint8_t *data = g_bytes_get_data(msg, &len);
    size_t n = nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, data, len);
    nb_virtqueue_push(vq, elem->head, (uint32_t)n);
    g_bytes_unref(msg);
    g_free(elem);
  }
  nb_virtqueue_enable_notify(vq);
  notify_if_needed(con, Q_CONTROL_RX);
}

static void
send_control(NbVirtioConsole *con, unsigned id, uint16_t event, uint16_t value, const char *extra)
{
  size_t extra_len = extra ? strlen(extra) : 0;
  uint8_t *buf = g_malloc(CONTROL_HEADER + extra_len);
  uint32_t id_le = GUINT32_TO_LE(id);
  uint16_t ev_le = GUINT16_TO_LE(event), val_le = GUINT16_TO_LE(value);
  memcpy(buf, &id_le, 4);
  memcpy(buf + 4, &ev_le, 2);
  memcpy(buf + 6, &val_le, 2);
  if (extra_len)
    memcpy(buf + CONTROL_HEADER, extra, extra_len);
  g_queue_push_tail(&con->control_out, g_bytes_new_take(buf, CONTROL_HEADER + extra_len));
  flush_control(con);
}

/* Ports ----------------------------------------------------------------------- */

static void port_fill_rx(NbVirtioConsole *con, Port *port);
static void port_drain_tx(NbVirtioConsole *con, Port *port);

static void
update_client_watch(NbVirtioConsole *con, Port *port)
{
  if (port->client_fd < 0)
    return;
  /* EPOLLHUP and EPOLLERR are always reported. */
  uint32_t events = port->peer_rdhup ? 0 : EPOLLRDHUP;
  /* Read from the socket only when the guest can take it: data for a port
   * the guest has not opened would be thrown away by its driver. */
  if (!port->peer_eof && port->guest_open &&
      nb_virtqueue_has_work(nb_virtio_pci_queue(con->vp, rx_queue(port->id))))
    events |= EPOLLIN;
  if (port->out_pending->len > 0)
    events |= EPOLLOUT;
  nb_virtio_pci_modify_fd(con->vp, port->client_fd, events);
}

static void
port_disconnect(NbVirtioConsole *con, Port *port)
{
  if (port->client_fd < 0)
    return;
  nb_virtio_pci_unwatch_fd(con->vp, port->client_fd);
  close(port->client_fd);
  port->client_fd = -1;
  g_byte_array_set_size(port->out_pending, 0);
  if (port->guest_ready && nb_virtio_pci_is_active(con->vp))
    send_control(con, port->id, NB_VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
}

/* Writes what is pending to the client; false when it must wait. */
static bool
flush_out_pending(NbVirtioConsole *con, Port *port)
{
  while (port->out_pending->len > 0) {
    ssize_t n = send(port->client_fd, port->out_pending->data, port->out_pending->len,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return false;
    if (n <= 0) {
      port_disconnect(con, port);
      return true;
    }
    g_byte_array_remove_range(port->out_pending, 0, (guint)n);
  }
  return true;
}

static void
port_fill_rx(NbVirtioConsole *con, Port *port)
{
  unsigned q = rx_queue(port->id);
  NbVirtqueue *vq = nb_virtio_pci_queue(con->vp, q);
  if (!nb_virtio_pci_is_active(con->vp))
    return;
  if (port->id == 0) {
    g_mutex_lock(&con->input_lock);
    while (port->guest_open && con->console_input->len > 0) {
      NbVirtqElement *elem = pop(con, q);
      if (elem == NULL)
        break;
      size_t n = nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, con->console_input->data,
                                       con->console_input->len);
      g_byte_array_remove_range(con->console_input, 0, (guint)n);
      nb_virtqueue_push(vq, elem->head, (uint32_t)n);
      g_free(elem);
    }
    g_mutex_unlock(&con->input_lock);
  } else {
    while (port->client_fd >= 0 && port->guest_open) {
      NbVirtqElement *elem = pop(con, q);
      if (elem == NULL)
        break;
      ssize_t n = elem->n_in ? readv(port->client_fd, elem->in, (int)MIN(elem->n_in, 1024u)) : 0;
      if (n > 0) {
        nb_virtqueue_push(vq, elem->head, (uint32_t)n);
        g_free(elem);
        continue;
      }
      int err = errno;
      nb_virtqueue_unpop(vq);
      g_free(elem);
      if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
        break;
      if (n == 0)
        port->peer_eof = true;        /* half-closed: answers may still go out */
      else
        port_disconnect(con, port);   /* a dead socket */
      break;
    }
    update_client_watch(con, port);
  }
  /* Tell us when the guest adds buffers, which is when we can go on. */
  nb_virtqueue_enable_notify(vq);
  notify_if_needed(con, q);
}

static void
port_drain_tx(NbVirtioConsole *con, Port *port)
{
  unsigned q = rx_queue(port->id) + 1;
  NbVirtqueue *vq = nb_virtio_pci_queue(con->vp, q);
  if (port->client_fd >= 0 && !flush_out_pending(con, port)) {
    update_client_watch(con, port);
    return;   /* the client is slow: the guest waits, as with a full pipe */
  }
  for (;;) {
    nb_virtqueue_disable_notify(vq);
    NbVirtqElement *elem;
    while ((elem = pop(con, q)) != NULL) {
      if (port->id == 0) {
        for (unsigned i = 0; i < elem->n_out; i++)
          if (con->output)
            con->output(con->output_ctx, elem->out[i].iov_base, elem->out[i].iov_len);
      } else if (port->client_fd >= 0) {
        /* Copy first: the chain goes back to the guest right away. */
        size_t len = MIN(elem->out_len, PORT_OUT_MAX);
        guint old = port->out_pending->len;
        g_byte_array_set_size(port->out_pending, old + (guint)len);
        nb_virtq_iov_to_buf(elem->out, elem->n_out, 0, port->out_pending->data + old, len);
      }
      /* With no client, output is dropped, as a serial line with nothing
       * attached would. */
      nb_virtqueue_push(vq, elem->head, 0);
      g_free(elem);
      if (port->client_fd >= 0 && !flush_out_pending(con, port)) {
        update_client_watch(con, port);
        notify_if_needed(con, q);
        return;
      }
    }
    if (!nb_virtqueue_enable_notify(vq))
      break;
  }
  notify_if_needed(con, q);
}

static void
port_client_event(NbVirtioConsole *con, Port *port, uint32_t events)
{
  if (events & EPOLLOUT) {
    if (flush_out_pending(con, port))
      port_drain_tx(con, port);
    if (port->client_fd < 0)
      return;
  }
  if (events & EPOLLIN)
    port_fill_rx(con, port);
  if (port->client_fd < 0)
    return;
  if (events & (EPOLLHUP | EPOLLERR)) {
    /* Gone both ways: what it sent and the guest has not read is lost, as
     * on a serial line. */
    port_disconnect(con, port);
    return;
  }
  if (events & EPOLLRDHUP)
    port->peer_rdhup = true;
  if (port->client_fd >= 0)
    update_client_watch(con, port);
}

static void
client_event(void *ctx, int fd, uint32_t events)
{
  Port *port = ctx;
  port_client_event(port->con, port, events);
}

static void
listen_event(void *ctx, int fd, uint32_t events)
{
  Port *port = ctx;
  NbVirtioConsole *con = port->con;
  int client = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (client < 0)
    return;
  if (port->client_fd >= 0) {
    /* One client at a time, like a serial line: the newcomer is turned away. */
    g_debug("virtio-console port %s: refusing a second client", port->name);
    close(client);
    return;
  }
  g_autoptr(GError) error = NULL;
  if (!nb_virtio_pci_watch_fd(con->vp, client, EPOLLRDHUP, client_event, port, &error)) {
    g_warning("virtio-console port %s: %s", port->name, error->message);
    close(client);
    return;
  }
  port->client_fd = client;
  port->peer_rdhup = false;
  port->peer_eof = false;
  if (port->guest_ready && nb_virtio_pci_is_active(con->vp))
    send_control(con, port->id, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
  update_client_watch(con, port);
}

/* Control messages from the guest --------------------------------------------- */

static void
handle_control(NbVirtioConsole *con, uint32_t id, uint16_t event, uint16_t value)
{
  if (event == NB_VIRTIO_CONSOLE_DEVICE_READY) {
    if (value == 1)
      for (unsigned i = 0; i < con->n_ports; i++)
        send_control(con, i, NB_VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL);
    return;
  }
  if (id >= con->n_ports)
    return;   /* a port we never announced */
  Port *port = &con->ports[id];
  switch (event) {
  case NB_VIRTIO_CONSOLE_PORT_READY:
    if (value != 1 || port->guest_ready)
      return;
    port->guest_ready = true;
    if (port->id == 0) {
      send_control(con, 0, NB_VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
      send_control(con, 0, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    } else {
      send_control(con, port->id, NB_VIRTIO_CONSOLE_PORT_NAME, 1, port->name);
      if (port->client_fd >= 0)
        send_control(con, port->id, NB_VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    }
    break;
  case NB_VIRTIO_CONSOLE_PORT_OPEN:
    port->guest_open = value != 0;
    if (port->guest_open) {
      port_fill_rx(con, port);
      port_drain_tx(con, port);
    }
    if (port->client_fd >= 0)
      update_client_watch(con, port);
    break;
  default:
    break;
  }
}

static void
drain_control(NbVirtioConsole *con)
{
  NbVirtqueue *vq = nb_virtio_pci_queue(con->vp, Q_CONTROL_TX);
  for (;;) {
    nb_virtqueue_disable_notify(vq);
    NbVirtqElement *elem;
    while ((elem = pop(con, Q_CONTROL_TX)) != NULL) {
      uint8_t msg[CONTROL_HEADER];
      if (nb_virtq_iov_to_buf(elem->out, elem->n_out, 0, msg, sizeof msg) == sizeof msg) {
        uint32_t id;
        uint16_t event, value;
        memcpy(&id, msg, 4);
        memcpy(&event, msg + 4, 2);
        memcpy(&value, msg + 6, 2);
        handle_control(con, GUINT32_FROM_LE(id), GUINT16_FROM_LE(event), GUINT16_FROM_LE(value));
      }
      nb_virtqueue_push(vq, elem->head, 0);
      g_free(elem);
      if (!nb_virtio_pci_is_active(con->vp))
        return;
    }
    if (!nb_virtqueue_enable_notify(vq))
      break;
  }
  notify_if_needed(con, Q_CONTROL_TX);
}

/* Device callbacks ------------------------------------------------------------ */

static void
console_queue_notify(void *ctx, unsigned queue)
{
  NbVirtioConsole *con = ctx;
  if (queue == Q_CONTROL_RX) {
    if (multiport(con))
      flush_control(con);
    return;
  }
  if (queue == Q_CONTROL_TX) {
    if (multiport(con))
      drain_control(con);
    return;
  }
  unsigned id = queue < 2 ? 0 : queue / 2 - 1;
  if (id >= con->n_ports || (id > 0 && !multiport(con)))
    return;
  Port *port = &con->ports[id];
  if (queue & 1)
    port_drain_tx(con, port);
  else
    port_fill_rx(con, port);
}

static void
console_activate(void *ctx)
{
  NbVirtioConsole *con = ctx;
  /* Without MULTIPORT there is only the console, open from the start. */
  if (!multiport(con)) {
    con->ports[0].guest_ready = true;
    con->ports[0].guest_open = true;
  }
}

static void
console_reset(void *ctx)
{
  NbVirtioConsole *con = ctx;
  g_queue_clear_full(&con->control_out, (GDestroyNotify)g_bytes_unref);
  for (unsigned i = 0; i < con->n_ports; i++) {
    Port *port = &con->ports[i];
    port->guest_ready = false;
    port->guest_open = false;
    /* Host clients stay connected: the next driver is told on PORT_READY. */
    g_byte_array_set_size(port->out_pending, 0);
    if (port->client_fd >= 0)
      nb_virtio_pci_modify_fd(con->vp, port->client_fd, EPOLLRDHUP);
  }
}

static void
console_kick_input(NbVirtioConsole *con)
{
  nb_virtio_pci_kick(con->vp, rx_queue(0));
}

void
nb_virtio_console_input(NbVirtioConsole *con, const uint8_t *data, size_t len)
{
  g_mutex_lock(&con->input_lock);
  size_t room = NB_VIRTIO_CONSOLE_INPUT_MAX - MIN(con->console_input->len, NB_VIRTIO_CONSOLE_INPUT_MAX);
  g_byte_array_append(con->console_input, data, (guint)MIN(len, room));
  g_mutex_unlock(&con->input_lock);
  console_kick_input(con);
}

static void
console_config_read(void *ctx, unsigned offset, void *data, unsigned len)
{
  NbVirtioConsole *con = ctx;
  memcpy(data, con->config + offset, len);
}

static void
console_config_write(void *ctx, unsigned offset, const void *data, unsigned len)
{
  NbVirtioConsole *con = ctx;
  /* Emergency write: one character, before the queues work (5.3.4). */
  if (offset == CFG_EMERG_WR && len >= 1 && con->output)
    con->output(con->output_ctx, data, 1);
}

static const NbVirtioDeviceOps console_ops = {
  .config_read = console_config_read,
  .config_write = console_config_write,
  .queue_notify = console_queue_notify,
  .activate = console_activate,
  .reset = console_reset,
};

/* Construction ----------------------------------------------------------------- */

static int
listen_unix(const char *path, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof addr.sun_path) {
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                "console port socket path %s is too long (at most %zu bytes)", path,
                sizeof addr.sun_path - 1);
    return -1;
  }
  strcpy(addr.sun_path, path);
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                  "cannot listen on %s for a console port: a file that is not a socket is there",
                  path);
      return -1;
    }
    /* A socket someone still listens on belongs to a running machine. */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 && connect(probe, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (probe >= 0)
      close(probe);
    if (live) {
      g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                  "cannot listen on %s for a console port: another process is listening there",
                  path);
      return -1;
    }
    unlink(path);   /* left by an earlier run */
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  /* Only this user may talk to the guest (the guest agent port can run
   * commands in it): tighten the mode before anyone can connect. */
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || chmod(path, 0600) < 0 ||
      listen(fd, 4) < 0) {
    int e = errno;
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                "cannot listen on %s for a console port: %s", path, g_strerror(e));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

NbVirtioConsole *
nb_virtio_console_new(NbGuestMemory *mem, const NbVirtioConsolePortSpec *ports, unsigned n_ports,
                      NbVirtioConsoleOutputFunc output, void *output_ctx, GError **error)
{
  if (n_ports > NB_VIRTIO_CONSOLE_MAX_NAMED_PORTS) {
    g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                "%u console ports asked for: at most %d fit on one device", n_ports,
                NB_VIRTIO_CONSOLE_MAX_NAMED_PORTS);
    return NULL;
  }
  for (unsigned i = 0; i < n_ports; i++) {
    if (ports[i].name == NULL || ports[i].name[0] == '\0' || strlen(ports[i].name) > 255 ||
        strchr(ports[i].name, '/')) {
      g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                  "console port name \"%s\" is not usable: give 1 to 255 characters without '/'",
                  ports[i].name ? ports[i].name : "");
      return NULL;
    }
    for (unsigned j = 0; j < i; j++)
      if (strcmp(ports[i].name, ports[j].name) == 0) {
        g_set_error(error, NB_VIRTIO_ERROR, NB_VIRTIO_ERROR_FAILED,
                    "console port \"%s\" is given twice", ports[i].name);
        return NULL;
      }
  }

  NbVirtioConsole *con = g_new0(NbVirtioConsole, 1);
  con->output = output;
  con->output_ctx = output_ctx;
  con->n_ports = n_ports + 1;
  con->ports = g_new0(Port, con->n_ports);
  g_queue_init(&con->control_out);
  g_mutex_init(&con->input_lock);
  con->console_input = g_byte_array_new();
  for (unsigned i = 0; i < con->n_ports; i++) {
    Port *port = &con->ports[i];
    port->con = con;
    port->id = i;
    port->listen_fd = -1;
    port->client_fd = -1;
    port->out_pending = g_byte_array_new();
    if (i > 0) {
      port->name = g_strdup(ports[i - 1].name);
      port->socket_path = g_strdup(ports[i - 1].socket_path);
    }
  }
  uint32_t max_ports = GUINT32_TO_LE(con->n_ports);
  memcpy(con->config + CFG_MAX_NR_PORTS, &max_ports, 4);

  NbVirtioDeviceInfo info = {
    .name = "console",
    .device_id = NB_VIRTIO_ID_CONSOLE,
    .pci_class = 0x078000,   /* communication, other */
    .features = (UINT64_C(1) << NB_VIRTIO_CONSOLE_F_MULTIPORT) |
                (UINT64_C(1) << NB_VIRTIO_CONSOLE_F_EMERG_WRITE),
    .num_queues = 2 * (con->n_ports + 1),
    .queue_size = 128,
    .config_size = CONFIG_SIZE,
    .ops = &console_ops,
    .ctx = con,
  };
  con->vp = nb_virtio_pci_new(mem, &info, error);
  if (con->vp == NULL)
    goto fail;
  for (unsigned i = 1; i < con->n_ports; i++) {
    Port *port = &con->ports[i];
    port->listen_fd = listen_unix(port->socket_path, error);
    if (port->listen_fd < 0 ||
        !nb_virtio_pci_watch_fd(con->vp, port->listen_fd, EPOLLIN, listen_event, port, error))
      goto fail;
  }
  return con;

fail:
  nb_virtio_console_free(con);
  return NULL;
}

void
nb_virtio_console_free(NbVirtioConsole *con)
{
  if (con == NULL)
    return;
  if (con->vp)
    nb_virtio_pci_stop(con->vp);
  for (unsigned i = 0; i < con->n_ports; i++) {
    Port *port = &con->ports[i];
    if (port->client_fd >= 0)
      close(port->client_fd);
    if (port->listen_fd >= 0) {
      close(port->listen_fd);
      unlink(port->socket_path);
    }
    g_byte_array_unref(port->out_pending);
    g_free(port->name);
    g_free(port->socket_path);
  }
  nb_virtio_pci_free(con->vp);
  g_free(con->ports);
  g_queue_clear_full(&con->control_out, (GDestroyNotify)g_bytes_unref);
  g_mutex_clear(&con->input_lock);
  g_byte_array_unref(con->console_input);
  g_free(con);
}

NbPciDevice *
nb_virtio_console_pci_device(NbVirtioConsole *con)
{
  return nb_virtio_pci_device(con->vp);
}
