/* nb-nat-tap: plugs the NAT engine into a TAP device, so that a network
 * namespace (or anything else behind a TAP) plays the guest. A test tool:
 * the namespace tests and the benchmark run it.
 *
 *   nb-nat-tap --tap nbtap0 [--netns NAME] [--net "nat,hostfwd=..."] [--offload]
 *
 * --offload turns on the TAP device's virtio-net header with checksum and
 * TSO offloads, as a virtio-net guest would negotiate them.
 *
 * Commands on stdin, one per line, answered on stdout:
 *   add HOSTFWD          e.g. add tcp:127.0.0.1:8080-:80
 *   remove tcp|udp ADDR PORT
 *   stats */
#include "net/nat.h"
#include "net/packet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct {
  int fd;
  bool vnet_hdr;
  NbNat *nat;
  NbNetBackend *backend;
  uint8_t buf[NB_ETH_HLEN + 65535 + 64 + sizeof(struct virtio_net_hdr)];
} Tap;

static bool
tap_deliver(void *opaque, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  Tap *tap = opaque;
  struct virtio_net_hdr hdr = { 0 };
  struct iovec iov[2] = { { &hdr, sizeof hdr }, { (void *)frame, len } };
  uint16_t start, offset;
  if (meta && (meta->flags & NB_NET_FRAME_CSUM_PARTIAL) &&
      nb_net_frame_csum_offsets(frame, len, &start, &offset)) {
    hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    hdr.csum_start = start;
    hdr.csum_offset = offset;
    if (meta->flags & NB_NET_FRAME_GSO_TCPV4) {
      hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
      hdr.gso_size = meta->gso_size;
      hdr.hdr_len = (uint16_t)(start + (frame[start + 12] >> 4) * 4);
    }
  }
  int n = tap->vnet_hdr ? 2 : 1;
  struct iovec *v = tap->vnet_hdr ? iov : iov + 1;
  for (int tries = 0; tries < 100; tries++) {
    if (writev(tap->fd, v, n) >= 0)
      return true;
    if (errno != EAGAIN)
      return false;
    /* The namespace's backlog is full: wait for it briefly, as a NIC's
     * ring would hold the frame. */
    struct pollfd p = { .fd = tap->fd, .events = POLLOUT };
    poll(&p, 1, 10);
  }
  return false;
}

static gboolean
tap_readable(int fd, GIOCondition cond, gpointer data)
{
  Tap *tap = data;
  size_t skip = tap->vnet_hdr ? sizeof(struct virtio_net_hdr) : 0;
  for (int i = 0; i < 64; i++) {
    ssize_t r = read(fd, tap->buf, sizeof tap->buf);
    if (r < 0)
      break;
    if ((size_t)r < skip)
      continue;
    NbNetFrameMeta meta = { 0 };
    if (skip) {
      struct virtio_net_hdr hdr;
      memcpy(&hdr, tap->buf, sizeof hdr);
      if (hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
        meta.flags |= NB_NET_FRAME_CSUM_PARTIAL;
      if ((hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV4) {
        meta.flags |= NB_NET_FRAME_GSO_TCPV4;
        meta.gso_size = hdr.gso_size;
      }
    }
    nb_net_backend_send(tap->backend, tap->buf + skip, (size_t)r - skip, &meta);
  }
  nb_net_backend_flush(tap->backend);
  return G_SOURCE_CONTINUE;
}

static int
tap_open(const char *name, const char *netns, bool vnet_hdr, GError **error)
{
  int self = -1;
  if (netns) {
    g_autofree char *path = g_strdup_printf("/var/run/netns/%s", netns);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (ns < 0 || self < 0 || setns(ns, CLONE_NEWNET) < 0) {
      g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                  "cannot enter network namespace %s: %s", netns, g_strerror(errno));
      return -1;
    }
    close(ns);
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  struct ifreq ifr = { 0 };
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
  g_strlcpy(ifr.ifr_name, name, IFNAMSIZ);
  int err = 0;
  if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0)
    err = errno;
  if (self >= 0) {
    /* Back home: the engine's sockets belong to the host's namespace. */
    setns(self, CLONE_NEWNET);
    close(self);
  }
  if (err) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "cannot open TAP device %s: %s",
                name, g_strerror(err));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

static void
print_stats(NbNat *nat)
{
  NbNatStats s;
  nb_nat_get_stats(nat, &s);
  printf("stats rx=%" G_GUINT64_FORMAT " tx=%" G_GUINT64_FORMAT " tx_dropped=%" G_GUINT64_FORMAT
         " eth=%" G_GUINT64_FORMAT " arp=%" G_GUINT64_FORMAT " ip=%" G_GUINT64_FORMAT
         " ip6=%" G_GUINT64_FORMAT " ndp=%" G_GUINT64_FORMAT " frag=%" G_GUINT64_FORMAT " tcp=%" G_GUINT64_FORMAT " udp=%" G_GUINT64_FORMAT
         " icmp=%" G_GUINT64_FORMAT " dhcp=%" G_GUINT64_FORMAT " dns=%" G_GUINT64_FORMAT
         " policy=%" G_GUINT64_FORMAT " full=%" G_GUINT64_FORMAT " tcp_flows=%" G_GUINT64_FORMAT
         " udp_flows=%" G_GUINT64_FORMAT " leases=%" G_GUINT64_FORMAT "\n",
         s.rx_frames, s.tx_frames, s.tx_dropped, s.drop_eth, s.drop_arp, s.drop_ip,
         s.drop_ip6, s.drop_ndp, s.drop_frag,
         s.drop_tcp, s.drop_udp, s.drop_icmp, s.drop_dhcp, s.drop_dns, s.drop_policy,
         s.drop_table_full, s.tcp_flows, s.udp_flows, s.leases);
  fflush(stdout);
}

static gboolean
stdin_line(GIOChannel *ch, GIOCondition cond, gpointer data)
{
  Tap *tap = data;
  g_autofree char *line = NULL;
  gsize len;
  GIOStatus st = g_io_channel_read_line(ch, &line, &len, NULL, NULL);
  if (st == G_IO_STATUS_EOF || st == G_IO_STATUS_ERROR)
    return G_SOURCE_REMOVE; /* stdin closed: keep running until a signal */
  if (st != G_IO_STATUS_NORMAL)
    return G_SOURCE_CONTINUE;
  g_strstrip(line);
  g_auto(GStrv) w = g_strsplit(line, " ", -1);
  g_autoptr(GError) error = NULL;
  if (w[0] && !strcmp(w[0], "add") && w[1]) {
    NbNatHostFwd fwd;
    if (nb_nat_hostfwd_parse(w[1], &fwd, &error) && nb_nat_add_hostfwd(tap->nat, &fwd, &error))
      printf("ok\n");
  } else if (w[0] && !strcmp(w[0], "remove") && w[1] && !w[2]) {
    /* "remove tcp:[::1]:2222": the host side of a rule, either family. */
    g_autofree char *full = g_strconcat(w[1], "-:1", NULL);
    NbNatHostFwd key;
    if (nb_nat_hostfwd_parse(full, &key, &error) && nb_nat_remove_hostfwd_rule(tap->nat, &key, &error))
      printf("ok\n");
  } else if (w[0] && !strcmp(w[0], "remove") && w[1] && w[2] && w[3]) {
    struct in_addr a;
    if (inet_pton(AF_INET, w[2], &a) != 1) {
      printf("error: bad address\n");
    } else if (nb_nat_remove_hostfwd(tap->nat,
                                     !strcmp(w[1], "udp") ? NB_NAT_PROTO_UDP : NB_NAT_PROTO_TCP,
                                     ntohl(a.s_addr), (uint16_t)atoi(w[3]), &error)) {
      printf("ok\n");
    }
  } else if (w[0] && !strcmp(w[0], "stats")) {
    print_stats(tap->nat);
  } else if (w[0] && *w[0]) {
    printf("error: unknown command\n");
  }
  if (error)
    printf("error: %s\n", error->message);
  fflush(stdout);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_signal(gpointer loop)
{
  g_main_loop_quit(loop);
  return G_SOURCE_REMOVE;
}

int
main(int argc, char **argv)
{
  g_autofree char *tap_name = NULL, *netns = NULL, *net = NULL;
  gboolean offload = FALSE;
  GOptionEntry entries[] = {
    { "tap", 0, 0, G_OPTION_ARG_STRING, &tap_name, "TAP device to create or attach", "NAME" },
    { "netns", 0, 0, G_OPTION_ARG_STRING, &netns, "network namespace of the TAP device", "NAME" },
    { "net", 0, 0, G_OPTION_ARG_STRING, &net, "NAT options, as for nestbox-vm --net", "nat,..." },
    { "offload", 0, 0, G_OPTION_ARG_NONE, &offload, "checksum and TSO offloads, as virtio-net negotiates them", NULL },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- the NAT engine on a TAP device");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error) || !tap_name) {
    fprintf(stderr, "nb-nat-tap: %s\n", error ? error->message : "--tap NAME is required");
    return 2;
  }
  g_autoptr(NbNatConfig) config = nb_nat_config_parse(net ? net : "nat", &error);
  if (!config) {
    fprintf(stderr, "nb-nat-tap: %s\n", error->message);
    return 2;
  }
  Tap *tap = g_new0(Tap, 1);
  tap->vnet_hdr = offload;
  tap->fd = tap_open(tap_name, netns, offload, &error);
  if (tap->fd < 0) {
    fprintf(stderr, "nb-nat-tap: %s\n", error->message);
    return 1;
  }
  if (offload) {
    /* The namespace's kernel may then hand us unfinished checksums and
     * 64 KiB TCP segments, and take the same from us: what a virtio-net
     * guest with offloads does. */
    int sz = sizeof(struct virtio_net_hdr);
    if (ioctl(tap->fd, TUNSETVNETHDRSZ, &sz) < 0 ||
        ioctl(tap->fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) {
      fprintf(stderr, "nb-nat-tap: cannot turn on TAP offloads: %s\n", g_strerror(errno));
      return 1;
    }
  }
  tap->nat = nb_nat_new(config, &error);
  if (!tap->nat) {
    fprintf(stderr, "nb-nat-tap: %s\n", error->message);
    return 1;
  }
  tap->backend = nb_nat_get_backend(tap->nat);
  NbNetPeerOps ops = { .deliver = tap_deliver };
  nb_net_backend_attach(tap->backend, &ops, tap,
                        offload ? NB_NET_PEER_CSUM_OFFLOAD | NB_NET_PEER_TSO4 : 0);
  GSource *src = g_unix_fd_source_new(tap->fd, G_IO_IN);
  g_source_set_callback(src, (GSourceFunc)(void (*)(void))tap_readable, tap, NULL);
  g_source_attach(src, nb_net_backend_get_context(tap->backend));
  if (!nb_nat_start(tap->nat, &error)) {
    fprintf(stderr, "nb-nat-tap: %s\n", error->message);
    return 1;
  }

  GMainLoop *loop = g_main_loop_new(NULL, FALSE);
  g_unix_signal_add(SIGINT, on_signal, loop);
  g_unix_signal_add(SIGTERM, on_signal, loop);
  GIOChannel *in = g_io_channel_unix_new(0);
  g_io_add_watch(in, G_IO_IN | G_IO_HUP, stdin_line, tap);
  printf("ready\n");
  fflush(stdout);
  g_main_loop_run(loop);

  print_stats(tap->nat);
  nb_nat_free(tap->nat);
  g_source_destroy(src);
  g_source_unref(src);
  close(tap->fd);
  g_io_channel_unref(in);
  g_main_loop_unref(loop);
  g_free(tap);
  return 0;
}
