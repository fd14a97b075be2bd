/* The TCP state machine under a hostile guest: each input first opens a
 * real connection through the engine to a listener on the host's loopback,
 * then plays segments on it whose flags, sequence and acknowledgement
 * numbers (relative to the connection's), windows, options and data come
 * from the fuzzer, mixed with data and closes from the host side. Every
 * frame the engine sends back must be well formed (the harness checks
 * lengths and checksums). Inputs of odd length run over IPv6 (to the
 * gateway's IPv6 address, a listener on ::1), when the host has it. */
#include "nat-harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int listener = -1, listener6 = -1;
static uint16_t lport, lport6;

static void
setup_listener(void)
{
  listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (bind(listener, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(listener, 64) < 0)
    abort();
  socklen_t sl = sizeof sa;
  getsockname(listener, (struct sockaddr *)&sa, &sl);
  lport = ntohs(sa.sin_port);
  /* No IPv6 loopback on this host: every input runs over IPv4. */
  listener6 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
  if (listener6 >= 0 && (bind(listener6, (struct sockaddr *)&sa6, sizeof sa6) < 0 ||
                         listen(listener6, 64) < 0)) {
    close(listener6);
    listener6 = -1;
  }
  sl = sizeof sa6;
  if (listener6 >= 0 && getsockname(listener6, (struct sockaddr *)&sa6, &sl) == 0)
    lport6 = ntohs(sa6.sin6_port);
}

/* A segment from the guest to the listener, over either family. */
static size_t
segment(uint8_t *f, bool v6, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win,
        const uint8_t *opts, size_t optlen, const void *data, size_t len)
{
  if (v6)
    return build_tcp6(f, gw_ip6, 40000, lport6, seq, ack, flags, win, opts, optlen, data, len);
  return build_tcp(f, GW_IP, 40000, lport, seq, ack, flags, win, opts, optlen, data, len);
}

/* Closing with a RST leaves no TIME_WAIT behind: thousands of inputs a
 * minute would otherwise use up the loopback's ephemeral ports. */
static void
close_reset(int fd)
{
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

static void
check_frames(Harness *h)
{
  for (guint i = 0; i < h->frames->len; i++) {
    GByteArray *f = h->frames->pdata[i];
    if (nb_rd16(f->data + 12) == NB_ETH_TYPE_IPV4)
      rx_ip(f);
    else if (nb_rd16(f->data + 12) == NB_ETH_TYPE_IPV6)
      rx_ip6(f);
  }
  harness_clear(h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (listener < 0) {
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    setup_listener();
  }
  Harness *h = harness_new("restrict=on");
  uint8_t f[4096];
  static const uint8_t opts[] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 7 };
  uint32_t gseq = 1000;
  bool v6 = (size & 1) && listener6 >= 0;
  int lfd = v6 ? listener6 : listener;
  harness_send(h, f, segment(f, v6, gseq, 0, NB_TCP_SYN, 65535, opts, sizeof opts, NULL, 0));
  GByteArray *r = harness_wait(h, 1000);
  int afd = -1;
  for (int i = 0; i < 1000 && afd < 0; i++) {
    afd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (afd < 0)
      g_usleep(100);
  }
  if (!r || afd < 0) {
    /* The handshake itself must work. */
    NbNatStats st = harness_stats(h);
    fprintf(stderr, "handshake failed: %s, %s; tcp flows %" G_GUINT64_FORMAT
            ", table full %" G_GUINT64_FORMAT ", policy %" G_GUINT64_FORMAT "\n",
            r ? "a frame came back" : "no frame came back",
            afd < 0 ? g_strerror(errno) : "accepted", st.tcp_flows, st.drop_table_full,
            st.drop_policy);
    size_t ip_hlen = v6 ? NB_IP6_HLEN : NB_IP_HLEN;
    if (r && r->len >= NB_ETH_HLEN + ip_hlen + NB_TCP_HLEN)
      fprintf(stderr, "flags %#x\n", r->data[NB_ETH_HLEN + ip_hlen + 13]);
    abort();
  }
  const uint8_t *syn_ack = v6 ? rx_ip6(r).l4 : rx_ip(r).l4;
  uint32_t hseq = nb_rd32(syn_ack + 4) + 1;
  gseq++;
  harness_send(h, f, segment(f, v6, gseq, hseq, NB_TCP_ACK, 65535, NULL, 0, NULL, 0));

  size_t i = 0;
  while (i + 8 <= size) {
    uint8_t flags = data[i];
    int16_t dseq = (int16_t)nb_rd16(data + i + 1);
    int16_t dack = (int16_t)nb_rd16(data + i + 3);
    uint16_t win = nb_rd16(data + i + 5);
    uint8_t ctl = data[i + 7];
    i += 8;
    size_t optlen = (size_t)(ctl & 3) * 4;
    size_t len = (ctl >> 2) & 0x1f;
    len *= 37;
    if (optlen > size - i)
      optlen = 0;
    const uint8_t *o = data + i;
    i += optlen;
    if (len > size - i)
      len = size - i;
    const uint8_t *payload = data + i;
    i += len;
    harness_send(h, f, segment(f, v6, gseq + (uint32_t)(int32_t)dseq,
                               hseq + (uint32_t)(int32_t)dack, flags, win, o, optlen, payload,
                               len));
    /* The host side acts too, on the fuzzer's say. */
    if (ctl & 0x80) {
      if (afd >= 0 && (flags & 1))
        send(afd, data, MIN(size, (size_t)3000), MSG_DONTWAIT | MSG_NOSIGNAL);
      else if (afd >= 0 && (flags & 0x40)) {
        close_reset(afd);
        afd = -1;
      }
      char sink[4096];
      if (afd >= 0)
        while (recv(afd, sink, sizeof sink, MSG_DONTWAIT) > 0)
          ;
      g_main_context_iteration(nb_net_backend_get_context(h->be), FALSE);
    }
    check_frames(h);
    /* Follow the engine's sequence numbers so segments stay plausible. */
    if (flags & NB_TCP_ACK)
      gseq += (uint32_t)(dseq > 0 ? dseq : 0);
  }
  check_frames(h);
  if (afd >= 0)
    close_reset(afd);
  /* Fuzzed SYNs after a reset open new connections: take them off the
   * listener's queue, which would otherwise fill up over the run. */
  for (int extra; (extra = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
    close_reset(extra);
  /* Let the engine see the reset, so it does not close with a FIN. */
  harness_run(h, 0);
  g_main_context_iteration(nb_net_backend_get_context(h->be), FALSE);
  harness_free(h);
  return 0;
}
