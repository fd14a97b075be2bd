/* TCP: the guest's connections end here and continue over host sockets.
 *
 * Toward the guest this is a real TCP endpoint (handshake, window scaling,
 * MSS, retransmission, FIN and RST both ways). Data from the host is never
 * copied into a buffer of ours: it stays in the host socket until the guest
 * acknowledges it, and each segment is read with MSG_PEEK straight into the
 * frame that carries it; a retransmission peeks the same bytes again. When
 * the guest's window is full the engine stops reading the socket, so the
 * host peer feels the guest's back-pressure. */
#include "net/nat-private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((a) - (b)) <= 0)
#define SEQ_GT(a, b) ((int32_t)((a) - (b)) > 0)

#define TCP_HDR_OFF NAT_L4_OFF
#define TCP_DATA_OFF (NAT_L4_OFF + NB_TCP_HLEN)
#define RTO_MIN_US (200 * 1000)
#define RTO_MAX_US (8 * G_USEC_PER_SEC)
#define MAX_RETRIES 10
#define HANDSHAKE_TIMEOUT_US (75 * G_USEC_PER_SEC)
#define CLOSING_TIMEOUT_US (120 * G_USEC_PER_SEC)
#define OUR_WSCALE 7
/* Bytes in flight toward the guest: bounded so a retransmission after a loss
 * (or the peek fallback's skip) stays cheap. */
#define MAX_INFLIGHT (4u << 20)
#define DISCARD_SIZE 65536
#define BATCH 32
#define DISCARD_BATCH (512u * 1024)
#define BATCH_SEG_MAX 9000
#define BATCH_STRIDE (TCP_DATA_OFF + BATCH_SEG_MAX + 64)
/* Large segments (MTU 65520, or TSO) are read a few at a time too: each
 * ACK of a guest opens its window by one or two 64 KiB segments, and one
 * peek for all of them halves the system calls per byte. */
#define BIG_BATCH 4
#define BIG_SEG_MAX 65535
#define BIG_STRIDE (TCP_DATA_OFF + BIG_SEG_MAX + 64)
/* Guest data the host socket had no room for, accepted anyway so the guest
 * does not have to send it again: bounded per flow and in all. */
#define PEND_MAX (2u * 1024 * 1024)
#define PEND_TOTAL_MAX (64u * 1024 * 1024)

enum {
  FLOW_CONNECTING, /* guest SYN seen, host connect() under way */
  FLOW_SYN_SENT,   /* forwarded connection: SYN sent to the guest */
  FLOW_SYN_RCVD,   /* SYN-ACK sent to the guest */
  FLOW_ESTABLISHED,
};

typedef struct {
  NatAddr gaddr, raddr; /* raddr as the guest sees it */
  uint16_t gport, rport;
} TcpKey;

typedef struct {
  TcpKey key;
  int fd;
  NatWatch watch;
  int state;
  bool dead;
  bool peek_off;    /* SO_PEEK_OFF works: peeks continue where the last ended */
  bool host_eof;    /* the host peer closed its side */
  bool guest_fin;   /* the guest closed its side (host socket shut down) */
  bool fin_sent;
  bool fin_acked;
  bool ack_pending;
  bool want_out;    /* host socket full: waiting for room */
  bool hup;         /* both directions of the host socket are shut: no more events */
  uint32_t acked_unread; /* acknowledged by the guest, not yet taken out of the socket */
  uint8_t *pend;    /* guest data waiting for room in the host socket */
  size_t pend_len, pend_cap;
  bool shut_pending;/* the guest's FIN waits for pend to drain */
  uint32_t iss, snd_una, snd_nxt, fin_seq;
  uint32_t snd_max; /* the highest sequence number sent: snd_nxt goes back on a rewind */
  uint32_t rcv_nxt;
  uint32_t snd_wnd; /* the guest's receive window, in bytes */
  uint8_t snd_wscale, rcv_wscale;
  uint16_t mss;
  int dupacks;
  int retries;
  int64_t rto_us;
  int64_t rto_at;   /* 0: no timer */
  int64_t last;
  int64_t born;
} TcpFlow;

struct NatTcp {
  GHashTable *flows;
  size_t pend_total;
  GPtrArray *pending; /* flows with an ACK to send at the end of the burst */
  uint8_t *discard;   /* sink for peeks without SO_PEEK_OFF */
  uint8_t *batch;     /* BATCH frames of up to BATCH_SEG_MAX bytes of data */
  uint8_t *big;       /* BIG_BATCH frames of up to BIG_SEG_MAX bytes of data */
};

static guint
tcp_key_hash(gconstpointer p)
{
  return nat_hash_bytes(p, sizeof(TcpKey));
}

static gboolean
tcp_key_equal(gconstpointer a, gconstpointer b)
{
  return memcmp(a, b, sizeof(TcpKey)) == 0;
}

static void
tcp_flow_free(gpointer p)
{
  TcpFlow *f = p;
  if (f->fd >= 0)
    close(f->fd);
  g_free(f->pend);
  g_free(f);
}

NatTcp *
nat_tcp_new(NbNat *nat)
{
  NatTcp *tcp = g_new0(NatTcp, 1);
  tcp->flows = g_hash_table_new(tcp_key_hash, tcp_key_equal);
  tcp->pending = g_ptr_array_new();
  return tcp;
}

unsigned
nat_tcp_flow_count(NbNat *nat)
{
  return g_hash_table_size(nat->tcp->flows);
}

static void
tcp_kill(NbNat *nat, TcpFlow *f, bool reset_host)
{
  if (f->dead)
    return;
  f->dead = true;
  nat->tcp->pend_total -= f->pend_len;
  g_hash_table_remove(nat->tcp->flows, &f->key);
  nat_watch_remove(nat, &f->watch);
  if (reset_host && f->fd >= 0) {
    /* Closing with a zero linger sends RST: the host peer sees the guest's
     * abort as an abort, not as a clean end. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  nat_defer_free(nat, f, tcp_flow_free);
  nat->stats.tcp_flows = g_hash_table_size(nat->tcp->flows);
}

void
nat_tcp_free(NbNat *nat, NatTcp *tcp)
{
  GHashTableIter it;
  gpointer v;
  g_autoptr(GPtrArray) all = g_ptr_array_new();
  g_hash_table_iter_init(&it, tcp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v))
    g_ptr_array_add(all, v);
  for (guint i = 0; i < all->len; i++)
    tcp_kill(nat, all->pdata[i], false);
  g_hash_table_unref(tcp->flows);
  g_ptr_array_unref(tcp->pending);
  g_free(tcp->discard);
  if (tcp->batch)
    g_free(tcp->batch - NAT_TX_HEADROOM);
  if (tcp->big)
    g_free(tcp->big - NAT_TX_HEADROOM);
  g_free(tcp);
}

/* ---- segments to the guest ---- */

/* Our receive window: the room left in the flow's buffer. Guest data goes
 * straight to the host socket while it has room, and into the buffer when it
 * has none, so anything inside the window we advertised is always taken: a
 * guest never has to send the same bytes twice because the host side was
 * slow. As the buffer fills the window closes, which is the guest's
 * back-pressure; the right edge never moves left. */
static uint32_t
tcp_our_window(NbNat *nat, TcpFlow *f)
{
  if (f->fd < 0 || f->guest_fin)
    return 65535u << f->rcv_wscale;
  return (uint32_t)(PEND_MAX - f->pend_len);
}

/* Sends a segment whose payload (len bytes) is already at
 * tx + TCP_DATA_OFF + optlen. */
static void
tcp_output_raw(NbNat *nat, const NatAddr *src, uint16_t sport, const NatAddr *dst, uint16_t dport,
               uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const uint8_t *opts,
               size_t optlen, size_t len, uint16_t gso_size)
{
  uint8_t *t = nat->tx + TCP_HDR_OFF;
  size_t hlen = NB_TCP_HLEN + optlen;
  nb_wr16(t, sport);
  nb_wr16(t + 2, dport);
  nb_wr32(t + 4, seq);
  nb_wr32(t + 8, ack);
  t[12] = (uint8_t)((hlen / 4) << 4);
  t[13] = flags;
  nb_wr16(t + 14, win);
  nb_wr16(t + 16, 0);
  nb_wr16(t + 18, 0);
  if (optlen)
    memcpy(t + NB_TCP_HLEN, opts, optlen);
  size_t total = hlen + len;
  NbNetFrameMeta meta = { 0 };
  if (nat_l4_csum_addr(nat, t, total, 16, NB_IP_PROTO_TCP, src, dst, true))
    meta.flags = NB_NET_FRAME_CSUM_PARTIAL;
  if (len > gso_size) {
    /* IPv4 only: IPv6 segments are never larger than the MSS. */
    meta.flags |= NB_NET_FRAME_GSO_TCPV4;
    meta.gso_size = gso_size;
  }
  nat_l4_send(nat, NB_IP_PROTO_TCP, src, dst, total, &meta);
}

static void tcp_update_events(NbNat *nat, TcpFlow *f);

/* The largest segment the guest's link carries: the MTU less the IP and
 * TCP headers. */
static unsigned
tcp_link_mss(NbNat *nat, const TcpKey *key)
{
  unsigned ip = nat_addr_is4(&key->gaddr) ? NB_IP_HLEN : NB_IP6_HLEN;
  return MIN(nat->cfg->mtu - ip - NB_TCP_HLEN, 65495u);
}

static void
tcp_discard_acked(TcpFlow *f)
{
  if (f->acked_unread) {
    recv(f->fd, NULL, f->acked_unread, MSG_TRUNC | MSG_DONTWAIT);
    f->acked_unread = 0;
  }
}
static bool tcp_host_drain(NbNat *nat, TcpFlow *f);

static void
tcp_output(NbNat *nat, TcpFlow *f, uint32_t seq, uint8_t flags, size_t len)
{
  uint8_t opts[8];
  size_t optlen = 0;
  if (flags & NB_TCP_SYN) {
    /* MSS, then window scale padded with a NOP. */
    opts[0] = 2;
    opts[1] = 4;
    nb_wr16(opts + 2, (uint16_t)tcp_link_mss(nat, &f->key));
    opts[4] = 1;
    opts[5] = 3;
    opts[6] = 3;
    opts[7] = f->rcv_wscale;
    optlen = f->rcv_wscale ? 8 : 4;
  }
  uint32_t wnd = tcp_our_window(nat, f);
  uint32_t field = (flags & NB_TCP_SYN) ? MIN(wnd, 65535u) : MIN(wnd >> f->rcv_wscale, 65535u);
  uint32_t ack = (flags & NB_TCP_ACK) ? f->rcv_nxt : 0;
  tcp_output_raw(nat, &f->key.raddr, f->key.rport, &f->key.gaddr, f->key.gport, seq, ack, flags,
                 (uint16_t)field, opts, optlen, len, f->mss);
  if (flags & NB_TCP_ACK)
    f->ack_pending = false;
  f->last = nat->now;
}

static void
tcp_ack_later(NbNat *nat, TcpFlow *f)
{
  if (!f->ack_pending) {
    f->ack_pending = true;
    g_ptr_array_add(nat->tcp->pending, f);
  }
}

void
nat_tcp_flush(NbNat *nat)
{
  GPtrArray *pending = nat->tcp->pending;
  for (guint i = 0; i < pending->len; i++) {
    TcpFlow *f = pending->pdata[i];
    if (!f->dead && f->ack_pending)
      tcp_output(nat, f, f->snd_nxt, NB_TCP_ACK, 0);
  }
  g_ptr_array_set_size(pending, 0);
}

static void
tcp_timer_start(NbNat *nat, TcpFlow *f)
{
  if (!f->rto_at)
    f->rto_at = nat->now + f->rto_us;
  nat_timer_wanted(nat);
}

/* The guest aborts or the host peer is gone: tell the guest. */
static void
tcp_reset_guest(NbNat *nat, TcpFlow *f)
{
  tcp_output(nat, f, f->snd_nxt, NB_TCP_RST | NB_TCP_ACK, 0);
}

static void
tcp_update_events(NbNat *nat, TcpFlow *f)
{
  uint32_t ev = 0;
  if (f->state == FLOW_CONNECTING) {
    ev = EPOLLOUT;
  } else if (f->state == FLOW_ESTABLISHED) {
    uint32_t inflight = f->snd_nxt - f->snd_una;
    if (!f->host_eof && !f->fin_sent && inflight < MIN(f->snd_wnd, MAX_INFLIGHT))
      ev |= EPOLLIN;
    if (f->want_out)
      ev |= EPOLLOUT;
  }
  nat_watch_modify(nat, &f->watch, ev);
}

static void
tcp_maybe_finish(NbNat *nat, TcpFlow *f)
{
  if (f->guest_fin && f->fin_sent && f->fin_acked && !f->pend_len && !f->shut_pending)
    tcp_kill(nat, f, false);
}

/* Whether the host peer has shut down its sending side. */
static bool
tcp_host_shut(int fd)
{
  struct pollfd p = { .fd = fd, .events = POLLRDHUP };
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Reads what the host sent into segments for the guest, as far as the
 * guest's window allows. */
static void
tcp_host_read(NbNat *nat, TcpFlow *f)
{
  if (f->state != FLOW_ESTABLISHED || f->dead)
    return;
  NatTcp *tcp = nat->tcp;
  /* After a rewind the host's EOF may be known already: the data before it
   * is still in the socket, and the peek that returns 0 marks where the FIN
   * goes. */
  while (!f->fin_sent) {
    uint32_t inflight = f->snd_nxt - f->snd_una;
    uint32_t wnd = MIN(f->snd_wnd, MAX_INFLIGHT);
    if (inflight >= wnd)
      break;
    /* A peer that takes TSO frames gets up to 64 KiB at once, cut into
     * MSS-sized segments by the device or the kernel. */
    size_t seg = (nat->backend.peer_features & NB_NET_PEER_TSO4) && nat_addr_is4(&f->key.gaddr)
                   ? 65535 - NB_IP_HLEN - NB_TCP_HLEN - 31
                   : f->mss;
    size_t avail = wnd - inflight;
    /* Small segments are read in a batch: one recvmsg() fills up to
     * BATCH frames, each straight behind the room for its headers. */
    size_t nseg = 1;
    uint8_t *slots = nat->tx;
    size_t stride = 0;
    if (seg <= BATCH_SEG_MAX) {
      /* Headroom in front, as for tx_main: an IPv6 header of slot i goes
       * into the slack after slot i - 1's data. */
      if (!tcp->batch)
        tcp->batch = (uint8_t *)g_malloc(NAT_TX_HEADROOM + BATCH * BATCH_STRIDE) + NAT_TX_HEADROOM;
      slots = tcp->batch;
      stride = BATCH_STRIDE;
      nseg = MIN((size_t)BATCH, (avail + seg - 1) / seg);
    } else if (seg <= BIG_SEG_MAX) {
      if (!tcp->big)
        tcp->big = (uint8_t *)g_malloc(NAT_TX_HEADROOM + BIG_BATCH * BIG_STRIDE) + NAT_TX_HEADROOM;
      slots = tcp->big;
      stride = BIG_STRIDE;
      nseg = MIN((size_t)BIG_BATCH, (avail + seg - 1) / seg);
    }
    struct iovec iov[MAX_INFLIGHT / DISCARD_SIZE + 8 + MAX(BATCH, BIG_BATCH)];
    int n = 0;
    size_t skip_total = inflight + f->acked_unread;
    if (!f->peek_off) {
      /* Skip the bytes already in flight by peeking them into a sink. */
      if (!tcp->discard)
        tcp->discard = g_malloc(DISCARD_SIZE);
      for (size_t skip = skip_total; skip; n++) {
        iov[n].iov_base = tcp->discard;
        iov[n].iov_len = MIN(skip, (size_t)DISCARD_SIZE);
        skip -= iov[n].iov_len;
      }
    }
    size_t want = 0;
    for (size_t i = 0; i < nseg; i++) {
      iov[n].iov_base = slots + i * stride + TCP_DATA_OFF;
      iov[n].iov_len = MIN(seg, avail - want);
      want += iov[n].iov_len;
      n++;
    }
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
    ssize_t r = recvmsg(f->fd, &msg, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        break;
      tcp_reset_guest(nat, f);
      tcp_kill(nat, f, false);
      return;
    }
    if (!f->peek_off)
      r -= (ssize_t)skip_total;
    if (r <= 0) {
      /* Without SO_PEEK_OFF (Linux before 6.9) a peek that brings back only
       * the bytes in flight means nothing new has come yet; the stream has
       * ended only if the host also shut down its side, and once it has,
       * all it sent is queued: more than we peeked means peek again. */
      if (!f->peek_off && skip_total > 0) {
        if (!tcp_host_shut(f->fd))
          break;
        int queued = 0;
        if (ioctl(f->fd, FIONREAD, &queued) == 0 && (size_t)queued > skip_total)
          continue;
      }
      f->host_eof = true;
      break;
    }
    size_t left = (size_t)r;
    for (size_t i = 0; i < nseg && left; i++) {
      size_t len = MIN(left, seg);
      left -= len;
      uint8_t flags = NB_TCP_ACK | (left == 0 && (size_t)r < want ? NB_TCP_PSH : 0);
      nat->tx = slots + i * stride;
      tcp_output(nat, f, f->snd_nxt, flags, len);
      nat->tx = nat->tx_main;
      f->snd_nxt += (uint32_t)len;
    }
    if (SEQ_GT(f->snd_nxt, f->snd_max))
      f->snd_max = f->snd_nxt;
    tcp_timer_start(nat, f);
    if ((size_t)r < want)
      break; /* the socket is drained for now */
  }
  if (f->host_eof && !f->fin_sent) {
    f->fin_seq = f->snd_nxt;
    f->fin_sent = true;
    tcp_output(nat, f, f->snd_nxt, NB_TCP_FIN | NB_TCP_ACK, 0);
    f->snd_nxt++;
    if (SEQ_GT(f->snd_nxt, f->snd_max))
      f->snd_max = f->snd_nxt;
    tcp_timer_start(nat, f);
  }
  tcp_update_events(nat, f);
}

/* Go back to the first unacknowledged byte and send again from there. */
static void
tcp_rewind(NbNat *nat, TcpFlow *f)
{
  tcp_discard_acked(f);
  if (f->fin_sent && !f->fin_acked) {
    f->fin_sent = false;
    f->host_eof = true; /* the EOF is still there; the FIN goes after the data */
  }
  f->snd_nxt = f->snd_una;
  if (f->peek_off) {
    int zero = 0;
    setsockopt(f->fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero);
  }
  tcp_host_read(nat, f);
}

static void
tcp_connected(NbNat *nat, TcpFlow *f)
{
  f->state = FLOW_SYN_RCVD;
  tcp_output(nat, f, f->iss, NB_TCP_SYN | NB_TCP_ACK, 0);
  f->rto_at = nat->now + f->rto_us;
  nat_timer_wanted(nat);
  tcp_update_events(nat, f);
}

static void
tcp_flow_ready(NbNat *nat, void *obj, uint32_t events)
{
  TcpFlow *f = obj;
  if (f->dead)
    return;
  if (f->state == FLOW_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err || (events & (EPOLLERR | EPOLLHUP))) {
      /* Refused or unreachable: the guest sees a refused connection. */
      tcp_output(nat, f, 0, NB_TCP_RST | NB_TCP_ACK, 0);
      tcp_kill(nat, f, false);
      return;
    }
    tcp_connected(nat, f);
    return;
  }
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      tcp_reset_guest(nat, f);
      tcp_kill(nat, f, false);
      return;
    }
  }
  if (events & EPOLLHUP) {
    /* epoll reports a hang-up whatever we ask for: stop watching, and let
     * the guest's ACKs drive what is left to read. */
    f->hup = true;
    f->want_out = false;
    nat_watch_remove(nat, &f->watch);
  }
  if (events & EPOLLOUT) {
    if (!tcp_host_drain(nat, f)) {
      tcp_reset_guest(nat, f);
      tcp_kill(nat, f, false);
      return;
    }
    f->want_out = f->pend_len > 0;
    tcp_output(nat, f, f->snd_nxt, NB_TCP_ACK, 0); /* window update */
    tcp_maybe_finish(nat, f);
    if (f->dead)
      return;
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
    tcp_host_read(nat, f);
  else
    tcp_update_events(nat, f);
}

static void
tcp_setup_socket(int fd, bool *peek_off)
{
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int zero = 0;
  *peek_off = setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) == 0;
}

static TcpFlow *
tcp_flow_new(NbNat *nat, const TcpKey *key, int fd)
{
  TcpFlow *f = g_new0(TcpFlow, 1);
  f->key = *key;
  f->fd = fd;
  f->iss = g_random_int();
  f->snd_una = f->snd_nxt = f->snd_max = f->iss + 1;
  f->rto_us = RTO_MIN_US;
  f->mss = 536;
  f->born = f->last = nat->now;
  tcp_setup_socket(fd, &f->peek_off);
  if (!nat_watch_add(nat, &f->watch, fd, 0, tcp_flow_ready, f)) {
    close(fd);
    g_free(f);
    return NULL;
  }
  g_hash_table_insert(nat->tcp->flows, &f->key, f);
  nat->stats.tcp_flows = g_hash_table_size(nat->tcp->flows);
  return f;
}

/* ---- segments from the guest ---- */

typedef struct {
  uint32_t seq, ack;
  uint8_t flags;
  uint16_t win;
  const uint8_t *data;
  size_t len;
  int mss;    /* -1: none */
  int wscale; /* -1: none */
} TcpSeg;

static bool
tcp_parse_options(const uint8_t *o, size_t len, TcpSeg *seg)
{
  size_t i = 0;
  while (i < len) {
    uint8_t kind = o[i];
    if (kind == 0)
      break;
    if (kind == 1) {
      i++;
      continue;
    }
    if (i + 1 >= len)
      return false;
    uint8_t olen = o[i + 1];
    if (olen < 2 || olen > len - i)
      return false;
    if (kind == 2) {
      if (olen != 4)
        return false;
      seg->mss = nb_rd16(o + i + 2);
    } else if (kind == 3) {
      if (olen != 3)
        return false;
      seg->wscale = MIN(o[i + 2], 14);
    }
    i += olen;
  }
  return true;
}

static void
tcp_reset_unknown(NbNat *nat, const NatPacket *pkt, const TcpSeg *seg, uint16_t sport,
                  uint16_t dport)
{
  /* RFC 793: a segment for no connection gets a RST that it will accept. */
  if (seg->flags & NB_TCP_RST)
    return;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = NB_TCP_RST;
  if (seg->flags & NB_TCP_ACK) {
    seq = seg->ack;
  } else {
    ack = seg->seq + (uint32_t)seg->len + !!(seg->flags & NB_TCP_SYN) + !!(seg->flags & NB_TCP_FIN);
    flags |= NB_TCP_ACK;
  }
  tcp_output_raw(nat, &pkt->daddr, dport, &pkt->saddr, sport, seq, ack, flags, 0, NULL, 0, 0, 65535);
}

static void
tcp_apply_syn_options(NbNat *nat, TcpFlow *f, const TcpSeg *seg)
{
  unsigned mss = seg->mss > 0 ? (unsigned)seg->mss : 536;
  f->mss = (uint16_t)CLAMP(mss, 64u, tcp_link_mss(nat, &f->key));
  if (seg->wscale >= 0) {
    f->snd_wscale = (uint8_t)seg->wscale;
    f->rcv_wscale = OUR_WSCALE;
  } else {
    f->snd_wscale = 0;
    f->rcv_wscale = 0;
  }
}

static bool
tcp_evict_for_new(NbNat *nat)
{
  /* Full: a flow in its handshake or its closing stage that has gone quiet
   * makes room; live connections are never cut for a new one. */
  GHashTableIter it;
  gpointer v;
  TcpFlow *victim = NULL;
  g_hash_table_iter_init(&it, nat->tcp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    TcpFlow *f = v;
    bool closing = f->state != FLOW_ESTABLISHED || f->host_eof || f->guest_fin;
    if (closing && nat->now - f->last > G_USEC_PER_SEC && (!victim || f->last < victim->last))
      victim = f;
  }
  if (!victim)
    return false;
  tcp_reset_guest(nat, victim);
  tcp_kill(nat, victim, true);
  return true;
}

static void
tcp_open(NbNat *nat, const NatPacket *pkt, const TcpSeg *seg, const TcpKey *key)
{
  NatSockaddr to;
  socklen_t tolen;
  int family = pkt->v6 ? AF_INET6 : AF_INET;
  NatAddr dns4;
  if (nat_addr_eq(&pkt->daddr, nat_dns_addr(nat, pkt->v6, &dns4))) {
    if (key->rport != 53 || !(tolen = nat_dns_resolver(nat, family, &to))) {
      NAT_COUNT(nat, drop_policy);
      tcp_reset_unknown(nat, pkt, seg, key->gport, key->rport);
      return;
    }
  } else {
    NatAddr host;
    if (!nat_translate_out_addr(nat, &pkt->daddr, &host)) {
      NAT_COUNT(nat, drop_policy);
      tcp_reset_unknown(nat, pkt, seg, key->gport, key->rport);
      return;
    }
    tolen = nat_sockaddr_set(&to, family, &host, key->rport);
  }
  if (g_hash_table_size(nat->tcp->flows) >= nat->cfg->max_tcp_flows && !tcp_evict_for_new(nat)) {
    NAT_COUNT(nat, drop_table_full);
    tcp_reset_unknown(nat, pkt, seg, key->gport, key->rport);
    return;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0 && family == AF_INET6) {
    int zero = 0; /* dual stack, for an IPv4 resolver */
    setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (fd < 0) {
    NAT_COUNT(nat, drop_table_full);
    tcp_reset_unknown(nat, pkt, seg, key->gport, key->rport);
    return;
  }
  TcpFlow *f = tcp_flow_new(nat, key, fd);
  if (!f)
    return;
  f->state = FLOW_CONNECTING;
  f->rcv_nxt = seg->seq + 1;
  f->snd_wnd = seg->win; /* never scaled in a SYN */
  tcp_apply_syn_options(nat, f, seg);
  if (connect(fd, &to.sa, tolen) == 0) {
    tcp_connected(nat, f);
  } else if (errno == EINPROGRESS) {
    tcp_update_events(nat, f);
  } else {
    tcp_output(nat, f, 0, NB_TCP_RST | NB_TCP_ACK, 0);
    tcp_kill(nat, f, false);
  }
}

/* Writes guest data to the host socket; what does not fit is kept (within
 * bounds). Returns how many bytes were taken, or -1 if the socket failed. */
static ssize_t
tcp_host_write(NbNat *nat, TcpFlow *f, const uint8_t *data, size_t len)
{
  NatTcp *tcp = nat->tcp;
  size_t sent = 0;
  if (f->pend_len == 0) {
    ssize_t w = send(f->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
      w = 0;
    }
    sent = (size_t)w;
  }
  size_t room = MIN(PEND_MAX - f->pend_len, PEND_TOTAL_MAX - tcp->pend_total);
  size_t take = MIN(len - sent, room);
  if (take) {
    if (f->pend_len + take > f->pend_cap) {
      f->pend_cap = MIN(MAX(f->pend_cap * 2, f->pend_len + take), (size_t)PEND_MAX);
      f->pend = g_realloc(f->pend, f->pend_cap);
    }
    memcpy(f->pend + f->pend_len, data + sent, take);
    f->pend_len += take;
    tcp->pend_total += take;
  }
  if (f->pend_len && !f->want_out) {
    f->want_out = true;
    tcp_update_events(nat, f);
  }
  return (ssize_t)(sent + take);
}

/* The host socket has room again: what waited goes first. */
static bool
tcp_host_drain(NbNat *nat, TcpFlow *f)
{
  if (f->pend_len) {
    ssize_t w = send(f->fd, f->pend, f->pend_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return false;
      w = 0;
    }
    memmove(f->pend, f->pend + w, f->pend_len - (size_t)w);
    f->pend_len -= (size_t)w;
    nat->tcp->pend_total -= (size_t)w;
  }
  if (!f->pend_len && f->shut_pending) {
    f->shut_pending = false;
    shutdown(f->fd, SHUT_WR);
  }
  return true;
}

/* Data from the guest, in order, goes to the host socket. */
static void
tcp_guest_data(NbNat *nat, TcpFlow *f, const TcpSeg *seg)
{
  uint32_t seq = seg->seq;
  const uint8_t *data = seg->data;
  size_t len = seg->len;
  bool fin = seg->flags & NB_TCP_FIN;

  if (SEQ_LT(seq, f->rcv_nxt)) {
    /* Partly or wholly a retransmission of what we already took. */
    uint32_t old = f->rcv_nxt - seq;
    if (old > len + fin) {
      tcp_ack_later(nat, f);
      return;
    }
    if (old > len) {
      fin = false; /* the FIN itself was taken */
      old = (uint32_t)len;
    }
    data += old;
    len -= old;
    seq += old;
  }
  if (seq != f->rcv_nxt) {
    /* Out of order: we keep no reassembly queue; a duplicate ACK makes the
     * guest resend from the hole. */
    tcp_output(nat, f, f->snd_nxt, NB_TCP_ACK, 0);
    return;
  }
  if (f->guest_fin) {
    if (len)
      NAT_COUNT(nat, drop_tcp); /* data after FIN */
    tcp_ack_later(nat, f);
    return;
  }
  if (len) {
    ssize_t w = tcp_host_write(nat, f, data, len);
    if (w < 0) {
      tcp_reset_guest(nat, f);
      tcp_kill(nat, f, false);
      return;
    }
    f->rcv_nxt += (uint32_t)w;
    if ((size_t)w < len) {
      /* Neither the socket nor our bounded buffer had room: what did not
       * fit is not acknowledged, and the guest sends it again. */
      fin = false;
    }
    tcp_ack_later(nat, f);
  }
  if (fin) {
    f->rcv_nxt++;
    f->guest_fin = true;
    if (f->pend_len)
      f->shut_pending = true;
    else
      shutdown(f->fd, SHUT_WR);
    tcp_output(nat, f, f->snd_nxt, NB_TCP_ACK, 0);
    tcp_maybe_finish(nat, f);
  }
}

static void
tcp_guest_ack(NbNat *nat, TcpFlow *f, const TcpSeg *seg)
{
  uint32_t ack = seg->ack;
  if (SEQ_GT(ack, f->snd_nxt) && SEQ_LEQ(ack, f->snd_max)) {
    /* An ACK for data sent before a rewind, late: the guest has it, so
     * sending resumes from there. */
    f->acked_unread += ack - f->snd_una;
    if (f->fin_sent && SEQ_GT(ack, f->fin_seq)) {
      f->fin_acked = true;
      f->acked_unread--;
    } else if (!f->fin_sent && f->host_eof && ack == f->snd_max) {
      /* The FIN sent before the rewind is what this acknowledges. */
      f->fin_sent = f->fin_acked = true;
      f->fin_seq = ack - 1;
      f->acked_unread--;
    }
    f->snd_una = f->snd_nxt = ack;
    tcp_discard_acked(f);
    if (f->peek_off) {
      int zero = 0;
      setsockopt(f->fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero);
    }
    f->rto_at = 0;
    f->retries = 0;
    f->rto_us = RTO_MIN_US;
  }
  if (SEQ_GT(ack, f->snd_nxt)) {
    /* Acknowledges what we never sent. */
    NAT_COUNT(nat, drop_tcp);
    tcp_output(nat, f, f->snd_nxt, NB_TCP_ACK, 0);
    return;
  }
  uint32_t old_wnd = f->snd_wnd;
  f->snd_wnd = (uint32_t)seg->win << f->snd_wscale;
  if (f->snd_wnd == 0)
    nat_timer_wanted(nat); /* zero-window probes */
  if (SEQ_GT(ack, f->snd_una)) {
    uint32_t acked = ack - f->snd_una;
    uint32_t data_acked = acked;
    if (f->fin_sent && SEQ_GT(ack, f->fin_seq)) {
      f->fin_acked = true;
      data_acked--;
    }
    /* The guest has these bytes: now they may leave the host socket, a
     * few ACKs' worth at a time to save system calls. */
    f->acked_unread += data_acked;
    if (f->acked_unread >= DISCARD_BATCH || ack == f->snd_nxt)
      tcp_discard_acked(f);
    f->snd_una = ack;
    f->retries = 0;
    f->dupacks = 0;
    f->rto_us = RTO_MIN_US;
    f->rto_at = f->snd_una == f->snd_nxt ? 0 : nat->now + f->rto_us;
    if (f->rto_at)
      nat_timer_wanted(nat);
  } else if (ack == f->snd_una && seg->len == 0 && f->snd_nxt != f->snd_una &&
             seg->win == (old_wnd >> f->snd_wscale) && !(seg->flags & (NB_TCP_SYN | NB_TCP_FIN))) {
    if (++f->dupacks == 3) {
      /* Fast retransmit: three duplicate ACKs mean a lost segment. */
      f->dupacks = 0;
      tcp_rewind(nat, f);
    }
  }
  if (f->fin_acked) {
    tcp_maybe_finish(nat, f);
    if (f->dead)
      return;
  }
  tcp_host_read(nat, f);
}

void
nat_tcp_input(NbNat *nat, const NatPacket *pkt)
{
  const uint8_t *t = pkt->l4;
  size_t len = pkt->l4_len;
  if (len < NB_TCP_HLEN) {
    NAT_COUNT(nat, drop_tcp);
    return;
  }
  size_t doff = (size_t)(t[12] >> 4) * 4;
  uint8_t flags = t[13];
  TcpSeg seg = { .seq = nb_rd32(t + 4), .ack = nb_rd32(t + 8), .flags = flags,
                 .win = nb_rd16(t + 14), .mss = -1, .wscale = -1 };
  /* Combinations no real stack sends: scans and confusion attempts. */
  bool bad_flags = (flags & (NB_TCP_SYN | NB_TCP_FIN)) == (NB_TCP_SYN | NB_TCP_FIN) ||
                   (flags & (NB_TCP_SYN | NB_TCP_RST)) == (NB_TCP_SYN | NB_TCP_RST) ||
                   (flags & (NB_TCP_FIN | NB_TCP_RST)) == (NB_TCP_FIN | NB_TCP_RST) ||
                   (flags & (NB_TCP_SYN | NB_TCP_FIN | NB_TCP_RST | NB_TCP_ACK)) == 0 ||
                   ((flags & NB_TCP_FIN) && !(flags & NB_TCP_ACK));
  if (doff < NB_TCP_HLEN || doff > len || bad_flags || (!pkt->v6 && pkt->src == 0) ||
      !tcp_parse_options(t + NB_TCP_HLEN, doff - NB_TCP_HLEN, &seg) ||
      (!pkt->csum_partial &&
       nb_csum_fold(nb_csum_partial(t, len, nat_pkt_pseudo(pkt, NB_IP_PROTO_TCP, len))) != 0)) {
    NAT_COUNT(nat, drop_tcp);
    return;
  }
  seg.data = t + doff;
  seg.len = len - doff;
  TcpKey key = { .gaddr = pkt->saddr, .raddr = pkt->daddr, .gport = nb_rd16(t),
                 .rport = nb_rd16(t + 2) };
  if (key.gport == 0 || key.rport == 0) {
    NAT_COUNT(nat, drop_tcp);
    return;
  }
  TcpFlow *f = g_hash_table_lookup(nat->tcp->flows, &key);

  if (!f) {
    if ((flags & (NB_TCP_SYN | NB_TCP_ACK)) == NB_TCP_SYN)
      tcp_open(nat, pkt, &seg, &key);
    else
      tcp_reset_unknown(nat, pkt, &seg, key.gport, key.rport);
    return;
  }

  if (flags & NB_TCP_RST) {
    /* Only a RST inside the window counts (RFC 5961): a blind one must not
     * tear down a connection. */
    bool ok = f->state == FLOW_SYN_SENT ? (seg.flags & NB_TCP_ACK) && seg.ack == f->iss + 1
                                       : seg.seq == f->rcv_nxt ||
                                           (SEQ_GT(seg.seq, f->rcv_nxt) &&
                                            SEQ_LT(seg.seq, f->rcv_nxt + (65535u << f->rcv_wscale)));
    if (ok)
      tcp_kill(nat, f, true);
    else
      NAT_COUNT(nat, drop_tcp);
    return;
  }

  switch (f->state) {
  case FLOW_CONNECTING:
    /* The guest retries its SYN while the host connects; nothing to do. */
    return;
  case FLOW_SYN_SENT:
    if ((flags & (NB_TCP_SYN | NB_TCP_ACK)) != (NB_TCP_SYN | NB_TCP_ACK) || seg.ack != f->iss + 1) {
      NAT_COUNT(nat, drop_tcp);
      return;
    }
    f->rcv_nxt = seg.seq + 1;
    tcp_apply_syn_options(nat, f, &seg);
    if (seg.wscale < 0)
      f->rcv_wscale = 0;
    f->snd_wnd = (uint32_t)seg.win << f->snd_wscale;
    f->snd_una = f->snd_nxt = f->iss + 1;
    f->state = FLOW_ESTABLISHED;
    f->rto_at = 0;
    f->retries = 0;
    tcp_output(nat, f, f->snd_nxt, NB_TCP_ACK, 0);
    tcp_host_read(nat, f);
    return;
  case FLOW_SYN_RCVD:
    if (flags & NB_TCP_SYN) {
      tcp_output(nat, f, f->iss, NB_TCP_SYN | NB_TCP_ACK, 0);
      return;
    }
    if (!(flags & NB_TCP_ACK) || seg.ack != f->iss + 1) {
      NAT_COUNT(nat, drop_tcp);
      tcp_reset_unknown(nat, pkt, &seg, key.gport, key.rport);
      return;
    }
    f->state = FLOW_ESTABLISHED;
    f->snd_una = f->snd_nxt = f->iss + 1;
    f->rto_at = 0;
    f->retries = 0;
    break;
  default:
    break;
  }

  if (flags & NB_TCP_SYN) {
    /* A SYN on a live connection: answer with an ACK (RFC 5961 4.2). */
    tcp_output(nat, f, f->snd_nxt, NB_TCP_ACK, 0);
    return;
  }
  if (!(flags & NB_TCP_ACK)) {
    NAT_COUNT(nat, drop_tcp);
    return;
  }
  f->last = nat->now;
  tcp_guest_ack(nat, f, &seg);
  if (f->dead)
    return;
  if (seg.len || (flags & NB_TCP_FIN))
    tcp_guest_data(nat, f, &seg);
}

/* ---- timers ---- */

bool
nat_tcp_tick(NbNat *nat)
{
  GHashTableIter it;
  gpointer v;
  bool timers = false;
  g_autoptr(GPtrArray) due = g_ptr_array_new();
  g_hash_table_iter_init(&it, nat->tcp->flows);
  while (g_hash_table_iter_next(&it, NULL, &v)) {
    TcpFlow *f = v;
    timers |= f->rto_at != 0 || (f->state == FLOW_ESTABLISHED && f->snd_wnd == 0);
    bool handshake = f->state != FLOW_ESTABLISHED;
    bool closing = f->host_eof || f->guest_fin;
    if ((handshake && nat->now - f->born > HANDSHAKE_TIMEOUT_US) ||
        (closing && nat->now - f->last > CLOSING_TIMEOUT_US) || (f->rto_at && f->rto_at <= nat->now) ||
        (f->state == FLOW_ESTABLISHED && f->snd_wnd == 0 && nat->now - f->last > RTO_MIN_US))
      g_ptr_array_add(due, f);
  }
  for (guint i = 0; i < due->len; i++) {
    TcpFlow *f = due->pdata[i];
    if (f->dead)
      continue;
    bool handshake = f->state != FLOW_ESTABLISHED;
    if ((handshake && nat->now - f->born > HANDSHAKE_TIMEOUT_US) ||
        ((f->host_eof || f->guest_fin) && nat->now - f->last > CLOSING_TIMEOUT_US) ||
        f->retries >= MAX_RETRIES) {
      if (f->state != FLOW_CONNECTING)
        tcp_reset_guest(nat, f);
      tcp_kill(nat, f, true);
      continue;
    }
    if (f->rto_at && f->rto_at <= nat->now) {
      f->retries++;
      f->rto_us = MIN(f->rto_us * 2, RTO_MAX_US);
      f->rto_at = nat->now + f->rto_us;
      if (f->state == FLOW_SYN_SENT)
        tcp_output(nat, f, f->iss, NB_TCP_SYN, 0);
      else if (f->state == FLOW_SYN_RCVD)
        tcp_output(nat, f, f->iss, NB_TCP_SYN | NB_TCP_ACK, 0);
      else
        tcp_rewind(nat, f);
    } else if (f->snd_wnd == 0) {
      /* Zero window probe: an old sequence number draws an ACK with the
       * guest's current window, in case its window update was lost. */
      tcp_output(nat, f, f->snd_una - 1, NB_TCP_ACK, 0);
    }
  }
  return timers;
}

/* ---- forwarded ports ---- */

void
nat_tcp_fwd_accept(NbNat *nat, NatFwd *fwd)
{
  for (int n = 0; n < 16; n++) {
    NatSockaddr peer;
    socklen_t pl = sizeof peer;
    int fd = accept4(fwd->fd, &peer.sa, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    NatAddr paddr;
    uint16_t pport;
    if (!nat_sockaddr_get(&peer, pl, &paddr, &pport)) {
      close(fd);
      continue;
    }
    /* The listening socket's family is the host side's only: the guest is
     * reached in the family of the forward's guest address. */
    TcpKey key = { .gaddr = nat_fwd_guest(nat, &fwd->fwd), .gport = fwd->fwd.guest_port,
                   .rport = pport };
    key.raddr = nat_fwd_peer(nat, &key.gaddr, &paddr);
    if (g_hash_table_contains(nat->tcp->flows, &key) ||
        (g_hash_table_size(nat->tcp->flows) >= nat->cfg->max_tcp_flows && !tcp_evict_for_new(nat))) {
      NAT_COUNT(nat, drop_table_full);
      close(fd);
      continue;
    }
    TcpFlow *f = tcp_flow_new(nat, &key, fd);
    if (!f)
      continue;
    f->state = FLOW_SYN_SENT;
    f->rcv_wscale = OUR_WSCALE;
    f->snd_una = f->snd_nxt = f->iss;
    tcp_output(nat, f, f->iss, NB_TCP_SYN, 0);
    f->snd_nxt = f->iss + 1;
    f->rto_at = nat->now + f->rto_us;
    nat_timer_wanted(nat);
  }
}
