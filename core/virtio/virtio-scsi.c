#include "virtio/virtio-scsi.h"
#include "virtio/virtio-pci.h"

#include <string.h>

#define QUEUE_CONTROL 0
#define QUEUE_EVENT   1
#define QUEUE_REQUEST 2

/* Control request types and the TMF answer (spec 5.6.6.2). */
#define CTRL_TMF       0
#define CTRL_AN_QUERY  1
#define CTRL_AN_SUBSCRIBE 2
#define TMF_FUNCTION_COMPLETE 0

/* struct virtio_scsi_config, little-endian. */
#define CONFIG_SIZE 36

struct NbVirtioScsi {
  NbVirtioPci *vp;
  NbScsiCdrom *cdrom;
};

static void
config_read(void *ctx, unsigned offset, void *data, unsigned len)
{
  (void)ctx;
  uint8_t c[CONFIG_SIZE] = { 0 };
  const uint32_t words[] = {
    1,                          /* num_queues (request queues) */
    126,                        /* seg_max */
    0xffff,                     /* max_sectors */
    128,                        /* cmd_per_lun */
    0,                          /* event_info_size: no events sent */
    NB_VIRTIO_SCSI_SENSE_SIZE,
    NB_VIRTIO_SCSI_CDB_SIZE,
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(words); i++) {
    uint32_t le = GUINT32_TO_LE(words[i]);
    memcpy(c + 4 * i, &le, 4);
  }
  /* max_channel 0, max_target 0 (u16 each at 28), max_lun 0 (u32 at 32). */
  memcpy(data, c + offset, len);
}

static void
config_write(void *ctx, unsigned offset, const void *data, unsigned len)
{
  /* sense_size and cdb_size are writable in the spec; we keep ours, which
   * are the largest a driver uses, and size every request by them. */
  (void)ctx;
  (void)offset;
  (void)data;
  (void)len;
}

uint32_t
nb_virtio_scsi_process(NbVirtioScsi *scsi, const NbVirtqElement *elem)
{
  /* Without room for the response there is nothing to tell the driver. */
  if (elem->in_len < NB_VIRTIO_SCSI_RESP_SIZE)
    return 0;
  uint8_t resp[NB_VIRTIO_SCSI_RESP_SIZE] = { 0 };
  size_t data_out = elem->out_len > NB_VIRTIO_SCSI_REQ_SIZE ? elem->out_len - NB_VIRTIO_SCSI_REQ_SIZE : 0;
  size_t data_in_len = elem->in_len - NB_VIRTIO_SCSI_RESP_SIZE;
  uint32_t written = NB_VIRTIO_SCSI_RESP_SIZE;
  uint32_t resid = 0;

  uint8_t req[NB_VIRTIO_SCSI_REQ_SIZE];
  if (elem->out_len < NB_VIRTIO_SCSI_REQ_SIZE) {
    resp[11] = NB_VIRTIO_SCSI_S_FAILURE;
  } else {
    nb_virtq_iov_to_buf(elem->out, elem->n_out, 0, req, sizeof req);
    const uint8_t *lun = req;
    /* Single-level LUN addressing: 1, target, 0x40 | LUN high, LUN low. */
    unsigned target = lun[1], lun_nr = ((lun[2] & 0x3f) << 8) | lun[3];
    if (lun[0] != 1 || target != 0 || lun_nr != 0 || (lun[2] & 0xc0) != 0x40) {
      resp[11] = NB_VIRTIO_SCSI_S_BAD_TARGET;
    } else {
      /* The data-in part: the device-writable bytes after the response. */
      struct iovec din[NB_SCSI_CDROM_MAX_SEGMENTS];
      int n = data_in_len ? nb_virtq_iov_slice(elem->in, elem->n_in, NB_VIRTIO_SCSI_RESP_SIZE,
                                               data_in_len, din, G_N_ELEMENTS(din))
                          : 0;
      if (n < 0) {
        resp[11] = NB_VIRTIO_SCSI_S_FAILURE;
      } else {
        NbScsiResult r;
        nb_scsi_cdrom_execute(scsi->cdrom, req + 19, NB_VIRTIO_SCSI_CDB_SIZE, din, (unsigned)n, &r);
        resp[10] = r.status;
        resp[11] = NB_VIRTIO_SCSI_S_OK;
        uint32_t sense_len = (uint32_t)MIN(r.sense_len, (size_t)NB_VIRTIO_SCSI_SENSE_SIZE);
        uint32_t le = GUINT32_TO_LE(sense_len);
        memcpy(resp, &le, 4);
        memcpy(resp + 12, r.sense, sense_len);
        /* We never consume data-out (a CD-ROM); report it all as residual. */
        resid = (uint32_t)(data_in_len ? data_in_len - r.data_len : data_out);
        written += (uint32_t)r.data_len;
      }
    }
  }
  uint32_t le = GUINT32_TO_LE(resid);
  memcpy(resp + 4, &le, 4);
  nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, resp, sizeof resp);
  return written;
}

uint32_t
nb_virtio_scsi_process_control(NbVirtioScsi *scsi, const NbVirtqElement *elem)
{
  (void)scsi;
  uint32_t type = 0;
  if (nb_virtq_iov_to_buf(elem->out, elem->n_out, 0, &type, 4) < 4)
    return 0;
  type = GUINT32_FROM_LE(type);
  if (type == CTRL_TMF) {
    /* Nothing is ever in flight: every task function is complete at once. */
    uint8_t resp = TMF_FUNCTION_COMPLETE;
    return elem->in_len >= 1 ? (uint32_t)nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, &resp, 1) : 0;
  }
  if (type == CTRL_AN_QUERY || type == CTRL_AN_SUBSCRIBE) {
    /* event_actual 0 (we send no asynchronous notifications), response OK. */
    uint8_t resp[5] = { 0 };
    return elem->in_len >= sizeof resp
               ? (uint32_t)nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, resp, sizeof resp)
               : 0;
  }
  /* Unknown type: the response field is the first byte for both shapes. */
  uint8_t bad = NB_VIRTIO_SCSI_S_FAILURE;
  return elem->in_len >= 1 ? (uint32_t)nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, &bad, 1) : 0;
}

static void
scsi_queue_notify(void *ctx, unsigned queue)
{
  NbVirtioScsi *scsi = ctx;
  if (queue == QUEUE_EVENT)
    return;   /* kept for events we never send */
  NbVirtqueue *vq = nb_virtio_pci_queue(scsi->vp, queue);
  do {
    nb_virtqueue_disable_notify(vq);
    for (;;) {
      g_autoptr(GError) error = NULL;
      NbVirtqElement *elem = NULL;
      NbVirtqPopResult r = nb_virtqueue_pop(vq, &elem, &error);
      if (r == NB_VIRTQ_POP_EMPTY)
        break;
      if (r == NB_VIRTQ_POP_BROKEN) {
        nb_virtio_pci_set_broken(scsi->vp, error->message);
        return;
      }
      uint32_t len = queue == QUEUE_CONTROL ? nb_virtio_scsi_process_control(scsi, elem)
                                            : nb_virtio_scsi_process(scsi, elem);
      nb_virtqueue_push(vq, elem->head, len);
      g_free(elem);
    }
  } while (nb_virtqueue_enable_notify(vq));
  if (nb_virtqueue_should_notify(vq))
    nb_virtio_pci_notify_queue(scsi->vp, queue);
}

static void
scsi_reset(void *ctx)
{
  NbVirtioScsi *scsi = ctx;
  nb_scsi_cdrom_reset(scsi->cdrom);
}

static const NbVirtioDeviceOps scsi_ops = {
  .config_read = config_read,
  .config_write = config_write,
  .queue_notify = scsi_queue_notify,
  .reset = scsi_reset,
};

NbVirtioScsi *
nb_virtio_scsi_new(NbGuestMemory *mem, NbBlock *medium, GError **error)
{
  NbVirtioScsi *scsi = g_new0(NbVirtioScsi, 1);
  scsi->cdrom = nb_scsi_cdrom_new(medium);
  NbVirtioDeviceInfo info = {
    .name = "scsi",
    .device_id = NB_VIRTIO_ID_SCSI,
    .pci_class = 0x010000,      /* mass storage, SCSI */
    .num_queues = 3,
    .queue_size = 128,
    .config_size = CONFIG_SIZE,
    .ops = &scsi_ops,
    .ctx = scsi,
  };
  scsi->vp = nb_virtio_pci_new(mem, &info, error);
  if (scsi->vp == NULL) {
    nb_scsi_cdrom_free(scsi->cdrom);
    g_free(scsi);
    return NULL;
  }
  return scsi;
}

void
nb_virtio_scsi_free(NbVirtioScsi *scsi)
{
  if (scsi == NULL)
    return;
  nb_virtio_pci_free(scsi->vp);
  nb_scsi_cdrom_free(scsi->cdrom);
  g_free(scsi);
}

NbPciDevice *
nb_virtio_scsi_pci_device(NbVirtioScsi *scsi)
{
  return nb_virtio_pci_device(scsi->vp);
}

NbScsiCdrom *
nb_virtio_scsi_cdrom(NbVirtioScsi *scsi)
{
  return scsi->cdrom;
}
