#include "virtio/scsi-cdrom.h"
#include "virtio/virtqueue.h"

#include <string.h>

/* Sense keys and the additional sense codes we use (SPC, MMC). */
#define KEY_NOT_READY       0x02
#define KEY_MEDIUM_ERROR    0x03
#define KEY_ILLEGAL_REQUEST 0x05
#define KEY_UNIT_ATTENTION  0x06
#define KEY_DATA_PROTECT    0x07

#define ASC_INVALID_OPCODE      0x20
#define ASC_LBA_OUT_OF_RANGE    0x21
#define ASC_INVALID_FIELD       0x24
#define ASC_WRITE_PROTECTED     0x27
#define ASC_MEDIUM_CHANGED      0x28
#define ASC_POWER_ON_RESET      0x29
#define ASC_REMOVAL_PREVENTED   0x53
#define ASC_NO_MEDIUM           0x3a
#define ASC_READ_ERROR          0x11

/* Media event codes (GET EVENT STATUS NOTIFICATION, class 4). */
#define EVENT_NONE        0
#define EVENT_NEW_MEDIA   2
#define EVENT_REMOVAL     3

/* Largest reply of the small commands; reads go straight to the iovec. */
#define REPLY_MAX 256

struct NbScsiCdrom {
  GMutex lock;
  NbBlock *medium;
  uint64_t blocks;
  bool locked;            /* PREVENT MEDIUM REMOVAL */
  uint8_t attention_asc;  /* pending unit attention (0: none) */
  uint8_t media_event;    /* pending media event for GET EVENT STATUS */
  uint8_t sense[NB_SCSI_SENSE_SIZE];   /* what REQUEST SENSE returns */
};

static void
set_medium(NbScsiCdrom *cd, NbBlock *medium)
{
  cd->medium = medium;
  cd->blocks = medium ? nb_block_size(medium) / NB_SCSI_CDROM_BLOCK : 0;
}

NbScsiCdrom *
nb_scsi_cdrom_new(NbBlock *medium)
{
  NbScsiCdrom *cd = g_new0(NbScsiCdrom, 1);
  g_mutex_init(&cd->lock);
  set_medium(cd, medium);
  cd->attention_asc = ASC_POWER_ON_RESET;
  return cd;
}

void
nb_scsi_cdrom_free(NbScsiCdrom *cd)
{
  if (cd == NULL)
    return;
  g_mutex_clear(&cd->lock);
  g_free(cd);
}

void
nb_scsi_cdrom_reset(NbScsiCdrom *cd)
{
  g_mutex_lock(&cd->lock);
  cd->locked = false;
  cd->attention_asc = ASC_POWER_ON_RESET;
  memset(cd->sense, 0, sizeof cd->sense);
  g_mutex_unlock(&cd->lock);
}

bool
nb_scsi_cdrom_change(NbScsiCdrom *cd, NbBlock *medium, bool force, NbBlock **old_medium)
{
  g_mutex_lock(&cd->lock);
  bool ok = force || !cd->locked;
  if (ok) {
    if (old_medium)
      *old_medium = cd->medium;
    set_medium(cd, medium);
    cd->attention_asc = ASC_MEDIUM_CHANGED;
    cd->media_event = medium ? EVENT_NEW_MEDIA : EVENT_REMOVAL;
  }
  g_mutex_unlock(&cd->lock);
  return ok;
}

bool
nb_scsi_cdrom_has_medium(NbScsiCdrom *cd)
{
  g_mutex_lock(&cd->lock);
  bool has = cd->medium != NULL;
  g_mutex_unlock(&cd->lock);
  return has;
}

static void
fail(NbScsiCdrom *cd, NbScsiResult *r, uint8_t key, uint8_t asc, uint8_t ascq)
{
  uint8_t *s = r->sense;
  memset(s, 0, NB_SCSI_SENSE_SIZE);
  s[0] = 0x70;                 /* current error, fixed format */
  s[2] = key;
  s[7] = NB_SCSI_SENSE_SIZE - 8;
  s[12] = asc;
  s[13] = ascq;
  memcpy(cd->sense, s, NB_SCSI_SENSE_SIZE);
  r->status = NB_SCSI_STATUS_CHECK_CONDITION;
  r->sense_len = NB_SCSI_SENSE_SIZE;
  r->data_len = 0;
}

static uint32_t
be(const uint8_t *p, unsigned n)
{
  uint32_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

static void
put_be(uint8_t *p, uint64_t v, unsigned n)
{
  for (unsigned i = 0; i < n; i++)
    p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* Replies no longer than the allocation length the CDB gave, nor than the
 * buffer the initiator supplied. */
static void
reply(NbScsiResult *r, const struct iovec *din, unsigned n_din, const uint8_t *data, size_t len,
      size_t alloc_len)
{
  len = MIN(len, alloc_len);
  r->data_len = nb_virtq_iov_from_buf(din, n_din, 0, data, len);
  r->status = NB_SCSI_STATUS_GOOD;
}

static void
lba_to_msf(uint8_t *p, uint32_t lba)
{
  lba += 150;   /* the 2-second pre-gap */
  p[0] = 0;
  p[1] = (uint8_t)(lba / (60 * 75));
  p[2] = (uint8_t)((lba / 75) % 60);
  p[3] = (uint8_t)(lba % 75);
}

static void
cmd_inquiry(NbScsiCdrom *cd, const uint8_t *cdb, const struct iovec *din, unsigned n_din,
            NbScsiResult *r)
{
  uint8_t b[REPLY_MAX] = { 0 };
  size_t alloc = be(cdb + 3, 2);
  if (cdb[1] & 0x01) {
    /* Vital product data: the list of pages, and a serial number. */
    b[0] = 0x05;
    b[1] = cdb[2];
    if (cdb[2] == 0x00) {
      b[3] = 2;
      b[4] = 0x00;
      b[5] = 0x80;
      reply(r, din, n_din, b, 6, alloc);
    } else if (cdb[2] == 0x80) {
      b[3] = 8;
      memcpy(b + 4, "NBCDROM0", 8);
      reply(r, din, n_din, b, 12, alloc);
    } else {
      fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
    }
    return;
  }
  if (cdb[2] != 0) {
    fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
    return;
  }
  b[0] = 0x05;                 /* CD/DVD device */
  b[1] = 0x80;                 /* removable medium */
  b[2] = 0x05;                 /* SPC-3 */
  b[3] = 0x02;                 /* response data format */
  b[4] = 36 - 5;
  memcpy(b + 8, "NESTBOX ", 8);
  memcpy(b + 16, "CD-ROM          ", 16);
  memcpy(b + 32, "1.0 ", 4);
  reply(r, din, n_din, b, 36, alloc);
}

/* MODE SENSE (6 or 10): the capabilities page (0x2A) Linux's sr asks for,
 * and an empty answer for the rest. */
static void
cmd_mode_sense(NbScsiCdrom *cd, const uint8_t *cdb, bool ten, const struct iovec *din,
               unsigned n_din, NbScsiResult *r)
{
  uint8_t b[REPLY_MAX] = { 0 };
  unsigned page = cdb[2] & 0x3f;
  size_t hdr = ten ? 8 : 4, len = hdr;
  size_t alloc = ten ? be(cdb + 7, 2) : cdb[4];
  if ((cdb[2] >> 6) == 3) {    /* saved values: not supported */
    fail(cd, r, KEY_ILLEGAL_REQUEST, 0x39, 0);
    return;
  }
  if (page == 0x2a || page == 0x3f) {
    uint8_t *p = b + len;
    p[0] = 0x2a;
    p[1] = 20 - 2;
    p[2] = 0x00;               /* reads CD-ROM only */
    p[4] = 0x71;               /* audio, mode 2 form 1/2, multisession */
    p[5] = 0x00;
    p[6] = 0x29;               /* tray loading, eject, lock */
    put_be(p + 8, 706, 2);     /* max read speed (KB/s), obsolete */
    put_be(p + 12, 2048, 2);   /* buffer size */
    len += 20;
  } else if (page != 0x01 && page != 0x0d && page != 0x0e && page != 0x1a) {
    fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
    return;
  }
  if (ten)
    put_be(b, len - 2, 2);
  else
    b[0] = (uint8_t)(len - 1);
  reply(r, din, n_din, b, len, alloc);
}

static void
cmd_read_toc(NbScsiCdrom *cd, const uint8_t *cdb, const struct iovec *din, unsigned n_din,
             NbScsiResult *r)
{
  uint8_t b[REPLY_MAX] = { 0 };
  bool msf = cdb[1] & 0x02;
  unsigned format = cdb[2] & 0x0f;
  if (format == 0 && cdb[9] >> 6)
    format = cdb[9] >> 6;      /* the old place for the format */
  size_t alloc = be(cdb + 7, 2), len = 4;
  uint32_t leadout = (uint32_t)cd->blocks;
  if (format == 0) {
    unsigned start = cdb[6];
    if (start > 1 && start != 0xaa) {
      fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
      return;
    }
    b[2] = 1;                  /* first and last track */
    b[3] = 1;
    if (start <= 1) {
      uint8_t *t = b + len;
      t[1] = 0x14;             /* data track, copy permitted */
      t[2] = 1;
      if (msf) lba_to_msf(t + 4, 0); else put_be(t + 4, 0, 4);
      len += 8;
    }
    uint8_t *t = b + len;
    t[1] = 0x14;
    t[2] = 0xaa;               /* lead-out */
    if (msf) lba_to_msf(t + 4, leadout); else put_be(t + 4, leadout, 4);
    len += 8;
  } else if (format == 1) {
    /* Session information: one session, its first track starts at 0. */
    b[2] = 1;
    b[3] = 1;
    b[5] = 0x14;
    b[6] = 1;
    if (msf) lba_to_msf(b + 8, 0);
    len = 12;
  } else {
    fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
    return;
  }
  put_be(b, len - 2, 2);
  reply(r, din, n_din, b, len, alloc);
}

static void
cmd_get_configuration(NbScsiCdrom *cd, const uint8_t *cdb, const struct iovec *din,
                      unsigned n_din, NbScsiResult *r)
{
  (void)cd;
  uint8_t b[REPLY_MAX] = { 0 };
  size_t alloc = be(cdb + 7, 2);
  /* CD-ROM profile (0x0008), or none without a disc. */
  uint16_t profile = cd->medium ? 0x0008 : 0x0000;
  put_be(b + 6, profile, 2);
  /* Feature 0, the profile list, with the one profile we have. */
  uint8_t *f = b + 8;
  put_be(f, 0x0000, 2);
  f[2] = 0x03;                 /* persistent, current */
  f[3] = 4;
  put_be(f + 4, 0x0008, 2);
  f[6] = profile ? 1 : 0;
  size_t len = 8 + 8;
  put_be(b, len - 4, 4);
  reply(r, din, n_din, b, len, alloc);
}

static void
cmd_get_event_status(NbScsiCdrom *cd, const uint8_t *cdb, const struct iovec *din,
                     unsigned n_din, NbScsiResult *r)
{
  uint8_t b[8] = { 0 };
  size_t alloc = be(cdb + 7, 2);
  if (!(cdb[1] & 0x01)) {      /* only polled operation */
    fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
    return;
  }
  b[3] = 0x10;                 /* we report media events only */
  size_t len = 4;
  if (cdb[4] & 0x10) {
    b[2] = 0x04;               /* media class */
    b[4] = cd->media_event;
    b[5] = cd->medium ? 0x02 : 0x00;
    cd->media_event = EVENT_NONE;
    len = 8;
  } else {
    b[2] = 0x80;               /* no event available */
  }
  put_be(b, len - 4, 2);
  reply(r, din, n_din, b, len, alloc);
}

static void
cmd_read(NbScsiCdrom *cd, uint64_t lba, uint64_t count, const struct iovec *din, unsigned n_din,
         NbScsiResult *r)
{
  if (cd->medium == NULL) {
    fail(cd, r, KEY_NOT_READY, ASC_NO_MEDIUM, 0);
    return;
  }
  if (lba > cd->blocks || count > cd->blocks - lba) {
    fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
    return;
  }
  uint64_t bytes = count * NB_SCSI_CDROM_BLOCK;
  size_t avail = nb_virtq_iov_size(din, n_din);
  if (bytes > avail) {
    /* The initiator asked for more than it gave room for. */
    fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
    return;
  }
  r->status = NB_SCSI_STATUS_GOOD;
  r->data_len = 0;
  if (bytes == 0)
    return;
  struct iovec part[NB_SCSI_CDROM_MAX_SEGMENTS];
  int n = nb_virtq_iov_slice(din, n_din, 0, bytes, part, G_N_ELEMENTS(part));
  g_autoptr(GError) error = NULL;
  if (n < 0) {
    /* Too fragmented for one call: bounce through a buffer. */
    g_autofree uint8_t *buf = g_try_malloc(bytes);
    struct iovec one = { buf, bytes };
    if (buf == NULL || !nb_block_preadv(cd->medium, &one, 1, lba * NB_SCSI_CDROM_BLOCK, &error)) {
      fail(cd, r, KEY_MEDIUM_ERROR, ASC_READ_ERROR, 0);
      return;
    }
    r->data_len = nb_virtq_iov_from_buf(din, n_din, 0, buf, bytes);
    return;
  }
  if (!nb_block_preadv(cd->medium, part, n, lba * NB_SCSI_CDROM_BLOCK, &error)) {
    g_debug("scsi-cdrom %s: read at block %" G_GUINT64_FORMAT " failed: %s",
            nb_block_path(cd->medium), lba, error->message);
    fail(cd, r, KEY_MEDIUM_ERROR, ASC_READ_ERROR, 0);
    return;
  }
  r->data_len = bytes;
}

void
nb_scsi_cdrom_execute(NbScsiCdrom *cd, const uint8_t *cdb, size_t cdb_len,
                      const struct iovec *din, unsigned n_din, NbScsiResult *r)
{
  memset(r, 0, sizeof *r);
  /* Group codes tell the CDB length: 6, 10, 10, -, 16, 12 bytes. */
  static const uint8_t group_len[8] = { 6, 10, 10, 0, 16, 12, 0, 0 };
  uint8_t op = cdb_len ? cdb[0] : 0xff;
  size_t need = group_len[op >> 5];
  g_mutex_lock(&cd->lock);
  if (cdb_len == 0 || need == 0 || cdb_len < need) {
    fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0);
    goto out;
  }

  /* A pending unit attention fails the next command except these, once. */
  if (cd->attention_asc && op != 0x12 && op != 0x03 && op != 0x4a && op != 0xa0) {
    uint8_t asc = cd->attention_asc;
    cd->attention_asc = 0;
    fail(cd, r, KEY_UNIT_ATTENTION, asc, 0);
    goto out;
  }

  switch (op) {
  case 0x00:   /* TEST UNIT READY */
    if (cd->medium == NULL)
      fail(cd, r, KEY_NOT_READY, ASC_NO_MEDIUM, 0);
    break;
  case 0x03: { /* REQUEST SENSE */
    uint8_t s[NB_SCSI_SENSE_SIZE];
    memcpy(s, cd->sense, sizeof s);
    if (s[0] == 0) {
      s[0] = 0x70;
      s[7] = NB_SCSI_SENSE_SIZE - 8;
      if (cd->medium == NULL) {
        s[2] = KEY_NOT_READY;
        s[12] = ASC_NO_MEDIUM;
      }
    }
    memset(cd->sense, 0, sizeof cd->sense);
    reply(r, din, n_din, s, sizeof s, cdb[4]);
    break;
  }
  case 0x12:   /* INQUIRY */
    cmd_inquiry(cd, cdb, din, n_din, r);
    break;
  case 0x1a:   /* MODE SENSE(6) */
    cmd_mode_sense(cd, cdb, false, din, n_din, r);
    break;
  case 0x5a:   /* MODE SENSE(10) */
    cmd_mode_sense(cd, cdb, true, din, n_din, r);
    break;
  case 0x1b:   /* START STOP UNIT */
    if ((cdb[4] & 0x03) == 0x02) {        /* LoEj, !Start: eject */
      if (cd->locked) {
        fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_REMOVAL_PREVENTED, 0x02);
      } else if (cd->medium) {
        /* The machine still owns the image and closes it. */
        set_medium(cd, NULL);
        cd->media_event = EVENT_REMOVAL;
      }
    }
    break;
  case 0x1e:   /* PREVENT ALLOW MEDIUM REMOVAL */
    cd->locked = cdb[4] & 0x01;
    break;
  case 0x25: { /* READ CAPACITY(10) */
    if (cd->medium == NULL) {
      fail(cd, r, KEY_NOT_READY, ASC_NO_MEDIUM, 0);
      break;
    }
    uint8_t b[8];
    uint64_t last = cd->blocks ? cd->blocks - 1 : 0;
    put_be(b, MIN(last, UINT32_MAX), 4);
    put_be(b + 4, NB_SCSI_CDROM_BLOCK, 4);
    reply(r, din, n_din, b, sizeof b, sizeof b);
    break;
  }
  case 0x28:   /* READ(10) */
    cmd_read(cd, be(cdb + 2, 4), be(cdb + 7, 2), din, n_din, r);
    break;
  case 0xa8:   /* READ(12) */
    cmd_read(cd, be(cdb + 2, 4), be(cdb + 6, 4), din, n_din, r);
    break;
  case 0x88:   /* READ(16) */
    cmd_read(cd, ((uint64_t)be(cdb + 2, 4) << 32) | be(cdb + 6, 4), be(cdb + 10, 4), din, n_din, r);
    break;
  case 0x43:   /* READ TOC/PMA/ATIP */
    if (cd->medium == NULL)
      fail(cd, r, KEY_NOT_READY, ASC_NO_MEDIUM, 0);
    else
      cmd_read_toc(cd, cdb, din, n_din, r);
    break;
  case 0x46:   /* GET CONFIGURATION */
    cmd_get_configuration(cd, cdb, din, n_din, r);
    break;
  case 0x4a:   /* GET EVENT STATUS NOTIFICATION */
    cmd_get_event_status(cd, cdb, din, n_din, r);
    break;
  case 0xa0: { /* REPORT LUNS: just LUN 0 */
    uint8_t b[16] = { 0 };
    put_be(b, 8, 4);
    reply(r, din, n_din, b, sizeof b, be(cdb + 6, 4));
    break;
  }
  case 0x35:   /* SYNCHRONIZE CACHE: nothing is ever dirty */
    break;
  case 0x0a: case 0x2a: case 0xaa: case 0x8a: case 0x2e:
    /* WRITE(6/10/12/16), WRITE AND VERIFY: a CD-ROM is read-only. */
    fail(cd, r, KEY_DATA_PROTECT, ASC_WRITE_PROTECTED, 0);
    break;
  default:
    fail(cd, r, KEY_ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0);
    break;
  }
out:
  g_mutex_unlock(&cd->lock);
}
