/* virtio-scsi requests as a driver builds them, against the CD-ROM LUN: the
 * commands SeaBIOS and Linux's sr send, the sense data they get when
 * something is wrong, malformed requests and other LUNs, eject, the tray
 * lock and media changes. */
#include "virtio/virtio-scsi.h"

#include <glib/gstdio.h>
#include <string.h>

#define BLOCKS 3

typedef struct {
  NbGuestMemory *mem;
  NbBlock *block;
  NbVirtioScsi *scsi;
  char *path;
  uint8_t image[BLOCKS * NB_SCSI_CDROM_BLOCK];
} Fixture;

static void
setup(Fixture *f, gconstpointer data)
{
  (void)data;
  g_autoptr(GError) error = NULL;
  for (size_t i = 0; i < sizeof f->image; i++)
    f->image[i] = (uint8_t)(i / NB_SCSI_CDROM_BLOCK * 37 + i);
  int fd = g_file_open_tmp("nb-scsi-XXXXXX.iso", &f->path, &error);
  g_assert_no_error(error);
  close(fd);
  g_assert_true(g_file_set_contents(f->path, (const char *)f->image, sizeof f->image, &error));
  NbBlockOpenOptions opts = { .format = NB_BLOCK_FORMAT_RAW, .read_only = true };
  f->block = nb_block_open(f->path, &opts, &error);
  g_assert_no_error(error);
  f->mem = nb_guest_memory_new(64 * 1024 * 1024, &error);
  g_assert_no_error(error);
  f->scsi = nb_virtio_scsi_new(f->mem, f->block, &error);
  g_assert_no_error(error);
}

static void
teardown(Fixture *f, gconstpointer data)
{
  (void)data;
  nb_virtio_scsi_free(f->scsi);
  nb_block_close(f->block);
  nb_guest_memory_free(f->mem);
  g_unlink(f->path);
  g_free(f->path);
}

typedef struct {
  uint8_t req[NB_VIRTIO_SCSI_REQ_SIZE];
  uint8_t resp[NB_VIRTIO_SCSI_RESP_SIZE];
  uint8_t data[4 * NB_SCSI_CDROM_BLOCK];
  uint32_t written;
} Request;

/* Sends cdb to target/lun with a data-in buffer of data_len bytes, split
 * over two descriptors to exercise the slicing. */
static void
send(Fixture *f, Request *r, unsigned target, unsigned lun, const uint8_t *cdb, size_t cdb_len,
     size_t data_len)
{
  memset(r, 0, sizeof *r);
  r->req[0] = 1;
  r->req[1] = (uint8_t)target;
  r->req[2] = (uint8_t)(0x40 | (lun >> 8));
  r->req[3] = (uint8_t)lun;
  memcpy(r->req + 19, cdb, cdb_len);
  NbVirtqElement *e = g_malloc0(sizeof *e + 4 * sizeof(struct iovec));
  e->n_out = 1;
  e->out = e->iov;
  e->out[0] = (struct iovec){ r->req, sizeof r->req };
  e->out_len = sizeof r->req;
  e->in = e->iov + 1;
  e->in[0] = (struct iovec){ r->resp, sizeof r->resp };
  e->n_in = 1;
  if (data_len) {
    size_t half = data_len / 2;
    e->in[1] = (struct iovec){ r->data, half };
    e->in[2] = (struct iovec){ r->data + half, data_len - half };
    e->n_in = 3;
  }
  e->in_len = sizeof r->resp + data_len;
  r->written = nb_virtio_scsi_process(f->scsi, e);
  g_free(e);
}

static uint8_t status(const Request *r) { return r->resp[10]; }
static uint8_t response(const Request *r) { return r->resp[11]; }
static uint8_t sense_key(const Request *r) { return r->resp[12 + 2] & 0x0f; }
static uint8_t sense_asc(const Request *r) { return r->resp[12 + 12]; }

static void
tur(Fixture *f, Request *r)
{
  static const uint8_t cdb[6] = { 0x00 };
  send(f, r, 0, 0, cdb, sizeof cdb, 0);
}

/* The power-on unit attention comes first, once. */
static void
clear_attention(Fixture *f)
{
  Request r;
  tur(f, &r);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_CHECK_CONDITION);
  g_assert_cmpuint(sense_key(&r), ==, 0x06);
  g_assert_cmpuint(sense_asc(&r), ==, 0x29);
  tur(f, &r);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
}

static void
test_identify(Fixture *f, gconstpointer data)
{
  (void)data;
  Request r;
  const uint8_t inquiry[6] = { 0x12, 0, 0, 0, 96, 0 };
  send(f, &r, 0, 0, inquiry, sizeof inquiry, 96);
  g_assert_cmpuint(response(&r), ==, NB_VIRTIO_SCSI_S_OK);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpuint(r.written, ==, NB_VIRTIO_SCSI_RESP_SIZE + 36);
  g_assert_cmpuint(r.data[0], ==, 0x05);             /* CD/DVD */
  g_assert_cmpuint(r.data[1] & 0x80, ==, 0x80);      /* removable */
  g_assert_cmpmem(r.data + 8, 7, "NESTBOX", 7);
  /* An allocation length shorter than the answer cuts it. */
  const uint8_t short_inq[6] = { 0x12, 0, 0, 0, 5, 0 };
  send(f, &r, 0, 0, short_inq, sizeof short_inq, 96);
  g_assert_cmpuint(r.written, ==, NB_VIRTIO_SCSI_RESP_SIZE + 5);

  clear_attention(f);
  const uint8_t capacity[10] = { 0x25 };
  send(f, &r, 0, 0, capacity, sizeof capacity, 8);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpuint(r.data[3], ==, BLOCKS - 1);
  g_assert_cmpuint((r.data[6] << 8) | r.data[7], ==, 2048);

  const uint8_t toc[10] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 100, 0 };
  send(f, &r, 0, 0, toc, sizeof toc, 100);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpuint((r.data[0] << 8) | r.data[1], ==, 18);   /* 2 + two descriptors */
  g_assert_cmpuint(r.data[4 + 8 + 2], ==, 0xaa);             /* lead-out */
  g_assert_cmpuint(r.data[4 + 8 + 7], ==, BLOCKS);

  const uint8_t config[10] = { 0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0 };
  send(f, &r, 0, 0, config, sizeof config, 64);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpuint((r.data[6] << 8) | r.data[7], ==, 0x0008);   /* CD-ROM profile */

  const uint8_t mode[10] = { 0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 128, 0 };
  send(f, &r, 0, 0, mode, sizeof mode, 128);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpuint(r.data[8], ==, 0x2a);
}

static void
test_read(Fixture *f, gconstpointer data)
{
  (void)data;
  clear_attention(f);
  Request r;
  const uint8_t read10[10] = { 0x28, 0, 0, 0, 0, 1, 0, 0, 2, 0 };   /* LBA 1, 2 blocks */
  send(f, &r, 0, 0, read10, sizeof read10, 2 * NB_SCSI_CDROM_BLOCK);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpuint(r.written, ==, NB_VIRTIO_SCSI_RESP_SIZE + 2 * NB_SCSI_CDROM_BLOCK);
  g_assert_cmpmem(r.data, 2 * NB_SCSI_CDROM_BLOCK, f->image + NB_SCSI_CDROM_BLOCK,
                  2 * NB_SCSI_CDROM_BLOCK);

  const uint8_t read12[12] = { 0xa8, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0 };
  send(f, &r, 0, 0, read12, sizeof read12, NB_SCSI_CDROM_BLOCK);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpmem(r.data, NB_SCSI_CDROM_BLOCK, f->image + 2 * NB_SCSI_CDROM_BLOCK,
                  NB_SCSI_CDROM_BLOCK);

  const uint8_t read16[16] = { 0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0 };
  send(f, &r, 0, 0, read16, sizeof read16, NB_SCSI_CDROM_BLOCK);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpmem(r.data, NB_SCSI_CDROM_BLOCK, f->image, NB_SCSI_CDROM_BLOCK);

  /* Past the end of the disc, and an LBA that would wrap. */
  const uint8_t past[10] = { 0x28, 0, 0, 0, 0, 2, 0, 0, 2, 0 };
  send(f, &r, 0, 0, past, sizeof past, 2 * NB_SCSI_CDROM_BLOCK);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_CHECK_CONDITION);
  g_assert_cmpuint(sense_key(&r), ==, 0x05);
  g_assert_cmpuint(sense_asc(&r), ==, 0x21);
  const uint8_t wrap[16] = { 0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 0, 0 };
  send(f, &r, 0, 0, wrap, sizeof wrap, 2 * NB_SCSI_CDROM_BLOCK);
  g_assert_cmpuint(sense_asc(&r), ==, 0x21);
  /* More blocks than the buffer holds. */
  const uint8_t big[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 3, 0 };
  send(f, &r, 0, 0, big, sizeof big, NB_SCSI_CDROM_BLOCK);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_CHECK_CONDITION);
  g_assert_cmpuint(sense_key(&r), ==, 0x05);

  /* Writes: a CD-ROM is write-protected. */
  const uint8_t write10[10] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
  send(f, &r, 0, 0, write10, sizeof write10, 0);
  g_assert_cmpuint(sense_key(&r), ==, 0x07);
  /* An unknown opcode. */
  const uint8_t unknown[10] = { 0xd9 };
  send(f, &r, 0, 0, unknown, sizeof unknown, 0);
  g_assert_cmpuint(sense_key(&r), ==, 0x05);
  g_assert_cmpuint(sense_asc(&r), ==, 0x20);
  /* REQUEST SENSE returns the last error, then nothing. */
  const uint8_t rs[6] = { 0x03, 0, 0, 0, 18, 0 };
  send(f, &r, 0, 0, rs, sizeof rs, 18);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpuint(r.data[12], ==, 0x20);
  send(f, &r, 0, 0, rs, sizeof rs, 18);
  g_assert_cmpuint(r.data[2], ==, 0);
}

static void
test_bad_requests(Fixture *f, gconstpointer data)
{
  (void)data;
  Request r;
  const uint8_t inquiry[6] = { 0x12, 0, 0, 0, 36, 0 };
  send(f, &r, 1, 0, inquiry, sizeof inquiry, 36);
  g_assert_cmpuint(response(&r), ==, NB_VIRTIO_SCSI_S_BAD_TARGET);
  send(f, &r, 0, 5, inquiry, sizeof inquiry, 36);
  g_assert_cmpuint(response(&r), ==, NB_VIRTIO_SCSI_S_BAD_TARGET);

  /* A request header cut short, a response area too small. */
  uint8_t req[10] = { 1 }, resp[NB_VIRTIO_SCSI_RESP_SIZE] = { 0 };
  NbVirtqElement *e = g_malloc0(sizeof *e + 2 * sizeof(struct iovec));
  e->out = e->iov;
  e->in = e->iov + 1;
  e->out[0] = (struct iovec){ req, sizeof req };
  e->n_out = 1;
  e->out_len = sizeof req;
  e->in[0] = (struct iovec){ resp, sizeof resp };
  e->n_in = 1;
  e->in_len = sizeof resp;
  g_assert_cmpuint(nb_virtio_scsi_process(f->scsi, e), ==, NB_VIRTIO_SCSI_RESP_SIZE);
  g_assert_cmpuint(resp[11], ==, NB_VIRTIO_SCSI_S_FAILURE);
  e->in[0].iov_len = 20;
  e->in_len = 20;
  g_assert_cmpuint(nb_virtio_scsi_process(f->scsi, e), ==, 0);
  /* Control: a task management function, and garbage. */
  uint8_t tmf[24] = { 0 }, tmf_resp = 0xff;
  e->out[0] = (struct iovec){ tmf, sizeof tmf };
  e->out_len = sizeof tmf;
  e->in[0] = (struct iovec){ &tmf_resp, 1 };
  e->in_len = 1;
  g_assert_cmpuint(nb_virtio_scsi_process_control(f->scsi, e), ==, 1);
  g_assert_cmpuint(tmf_resp, ==, 0);
  tmf[0] = 77;
  g_assert_cmpuint(nb_virtio_scsi_process_control(f->scsi, e), ==, 1);
  g_assert_cmpuint(tmf_resp, ==, NB_VIRTIO_SCSI_S_FAILURE);
  g_free(e);
}

static void
test_eject_and_change(Fixture *f, gconstpointer data)
{
  (void)data;
  clear_attention(f);
  Request r;
  NbScsiCdrom *cd = nb_virtio_scsi_cdrom(f->scsi);
  /* Locked: the guest cannot eject, nor the host swap without force. */
  const uint8_t lock[6] = { 0x1e, 0, 0, 0, 1, 0 };
  send(f, &r, 0, 0, lock, sizeof lock, 0);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  const uint8_t eject[6] = { 0x1b, 0, 0, 0, 0x02, 0 };
  send(f, &r, 0, 0, eject, sizeof eject, 0);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_CHECK_CONDITION);
  g_assert_cmpuint(sense_asc(&r), ==, 0x53);
  g_assert_false(nb_scsi_cdrom_change(cd, NULL, false, NULL));
  const uint8_t unlock[6] = { 0x1e, 0, 0, 0, 0, 0 };
  send(f, &r, 0, 0, unlock, sizeof unlock, 0);
  send(f, &r, 0, 0, eject, sizeof eject, 0);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_false(nb_scsi_cdrom_has_medium(cd));

  tur(f, &r);
  g_assert_cmpuint(sense_key(&r), ==, 0x02);
  g_assert_cmpuint(sense_asc(&r), ==, 0x3a);
  const uint8_t event[10] = { 0x4a, 0x01, 0, 0, 0x10, 0, 0, 0, 8, 0 };
  send(f, &r, 0, 0, event, sizeof event, 8);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpuint(r.data[4], ==, 3);      /* media removal */
  g_assert_cmpuint(r.data[5] & 2, ==, 0);  /* no medium */
  const uint8_t read10[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
  send(f, &r, 0, 0, read10, sizeof read10, NB_SCSI_CDROM_BLOCK);
  g_assert_cmpuint(sense_key(&r), ==, 0x02);

  /* The host puts the disc back in: unit attention, a new-media event. */
  NbBlock *old = (NbBlock *)0x1;
  g_assert_true(nb_scsi_cdrom_change(cd, f->block, false, &old));
  g_assert_null(old);
  tur(f, &r);
  g_assert_cmpuint(sense_key(&r), ==, 0x06);
  g_assert_cmpuint(sense_asc(&r), ==, 0x28);
  send(f, &r, 0, 0, event, sizeof event, 8);
  g_assert_cmpuint(r.data[4], ==, 2);
  g_assert_cmpuint(r.data[5] & 2, ==, 2);
  send(f, &r, 0, 0, read10, sizeof read10, NB_SCSI_CDROM_BLOCK);
  g_assert_cmpuint(status(&r), ==, NB_SCSI_STATUS_GOOD);
  g_assert_cmpmem(r.data, NB_SCSI_CDROM_BLOCK, f->image, NB_SCSI_CDROM_BLOCK);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add("/virtio-scsi/identify", Fixture, NULL, setup, test_identify, teardown);
  g_test_add("/virtio-scsi/read", Fixture, NULL, setup, test_read, teardown);
  g_test_add("/virtio-scsi/bad-requests", Fixture, NULL, setup, test_bad_requests, teardown);
  g_test_add("/virtio-scsi/eject-and-change", Fixture, NULL, setup, test_eject_and_change, teardown);
  return g_test_run();
}
