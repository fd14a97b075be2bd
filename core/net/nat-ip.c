/* IPv4 fragment reassembly, bounded in memory and time: a guest sending
 * pieces that never complete, overlap, or add up past 64 KiB loses those
 * datagrams and nothing else. */
#include "net/nat-private.h"

#define FRAG_MAX_DATAGRAMS 32
#define FRAG_MAX_PIECES 64
#define FRAG_MAX_BYTES (1024 * 1024)
#define FRAG_TIMEOUT_US (10 * G_USEC_PER_SEC)

typedef struct {
  uint32_t src, dst;
  uint16_t id;
  uint8_t proto;
  int64_t deadline;
  uint8_t hdr[60];
  size_t hlen;          /* 0 until the first piece (offset 0) is in */
  size_t total;         /* payload length, 0 until the last piece is in */
  size_t received;
  uint8_t *data;
  size_t alloc;
  unsigned npieces;
  struct { uint32_t start, end; } pieces[FRAG_MAX_PIECES];
} FragEntry;

struct NatFrag {
  FragEntry *entries[FRAG_MAX_DATAGRAMS];
  size_t bytes;
};

NatFrag *
nat_frag_new(void)
{
  return g_new0(NatFrag, 1);
}

static void
frag_drop(NatFrag *frag, int i)
{
  FragEntry *e = frag->entries[i];
  frag->bytes -= e->alloc;
  g_free(e->data);
  g_free(e);
  frag->entries[i] = NULL;
}

void
nat_frag_free(NatFrag *frag)
{
  for (int i = 0; i < FRAG_MAX_DATAGRAMS; i++)
    if (frag->entries[i])
      frag_drop(frag, i);
  g_free(frag);
}

void
nat_frag_tick(NbNat *nat)
{
  NatFrag *frag = nat->frag;
  for (int i = 0; i < FRAG_MAX_DATAGRAMS; i++) {
    if (frag->entries[i] && frag->entries[i]->deadline < nat->now) {
      frag_drop(frag, i);
      NAT_COUNT(nat, drop_frag);
    }
  }
  nat->stats.frag_bytes = frag->bytes;
}

static int
frag_slot(NbNat *nat, uint32_t src, uint32_t dst, uint16_t id, uint8_t proto)
{
  NatFrag *frag = nat->frag;
  int free_slot = -1, oldest = -1;
  for (int i = 0; i < FRAG_MAX_DATAGRAMS; i++) {
    FragEntry *e = frag->entries[i];
    if (!e) {
      if (free_slot < 0)
        free_slot = i;
      continue;
    }
    if (e->src == src && e->dst == dst && e->id == id && e->proto == proto)
      return i;
    if (oldest < 0 || e->deadline < frag->entries[oldest]->deadline)
      oldest = i;
  }
  if (free_slot < 0) {
    /* Full: the oldest unfinished datagram makes room. */
    frag_drop(frag, oldest);
    NAT_COUNT(nat, drop_table_full);
    free_slot = oldest;
  }
  FragEntry *e = g_new0(FragEntry, 1);
  e->src = src;
  e->dst = dst;
  e->id = id;
  e->proto = proto;
  e->deadline = nat->now + FRAG_TIMEOUT_US;
  frag->entries[free_slot] = e;
  return free_slot;
}

uint8_t *
nat_frag_input(NbNat *nat, const uint8_t *ip, size_t hlen, size_t total, size_t *out_len)
{
  NatFrag *frag = nat->frag;
  uint16_t field = nb_rd16(ip + 6);
  bool more = field & 0x2000;
  size_t offset = (size_t)(field & 0x1fff) * 8;
  size_t len = total - hlen;
  if ((field & 0x8000) || (more && (len == 0 || len % 8)) || offset + len > 65535 - hlen) {
    NAT_COUNT(nat, drop_frag);
    return NULL;
  }
  int slot = frag_slot(nat, nb_rd32(ip + 12), nb_rd32(ip + 16), nb_rd16(ip + 4), ip[9]);
  FragEntry *e = frag->entries[slot];
  uint32_t start = (uint32_t)offset, end = (uint32_t)(offset + len);

  for (unsigned i = 0; i < e->npieces; i++) {
    if (e->pieces[i].start == start && e->pieces[i].end == end)
      return NULL; /* a duplicate, as a retransmission makes: harmless */
    if (start < e->pieces[i].end && e->pieces[i].start < end)
      goto bad; /* overlap: the classic way to confuse reassembly */
  }
  if (!more) {
    if (e->total && e->total != end)
      goto bad;
    e->total = end;
  }
  if (e->total && (end > e->total || (more && end == e->total)))
    goto bad;
  for (unsigned i = 0; e->total && i < e->npieces; i++)
    if (e->pieces[i].end > e->total)
      goto bad;
  if (e->npieces == FRAG_MAX_PIECES)
    goto bad;
  if (end > e->alloc) {
    size_t want = MAX((size_t)end, MIN(e->alloc * 2, (size_t)65535));
    if (frag->bytes - e->alloc + want > FRAG_MAX_BYTES) {
      NAT_COUNT(nat, drop_table_full);
      frag_drop(frag, slot);
      return NULL;
    }
    e->data = g_realloc(e->data, want);
    frag->bytes += want - e->alloc;
    e->alloc = want;
  }
  memcpy(e->data + start, ip + hlen, len);
  e->pieces[e->npieces].start = start;
  e->pieces[e->npieces].end = end;
  e->npieces++;
  e->received += len;
  if (offset == 0) {
    memcpy(e->hdr, ip, hlen);
    e->hlen = hlen;
  }
  if (!e->total || !e->hlen || e->received != e->total)
    return NULL;

  /* All pieces are in, none overlap, so they cover [0, total) exactly. */
  size_t whole_len = e->hlen + e->total;
  if (whole_len > 65535)
    goto bad; /* a long first header plus a full payload: too big for IPv4 */
  uint8_t *whole = g_malloc(whole_len);
  memcpy(whole, e->hdr, e->hlen);
  memcpy(whole + e->hlen, e->data, e->total);
  nb_wr16(whole + 2, (uint16_t)whole_len);
  nb_wr16(whole + 6, 0);
  frag_drop(frag, slot);
  *out_len = whole_len;
  return whole;

bad:
  NAT_COUNT(nat, drop_frag);
  frag_drop(frag, slot);
  return NULL;
}
