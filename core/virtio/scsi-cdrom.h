/* A SCSI CD-ROM drive (MMC) over an image file: the logical unit that
 * virtio-scsi puts behind target 0, LUN 0.
 *
 * It answers what firmware (SeaBIOS's El Torito boot) and Linux's sr driver
 * send: INQUIRY, TEST UNIT READY, REQUEST SENSE, READ CAPACITY(10),
 * READ(10/12/16), MODE SENSE(6/10), GET CONFIGURATION, READ TOC, GET EVENT
 * STATUS NOTIFICATION, START STOP UNIT (eject) and PREVENT ALLOW MEDIUM
 * REMOVAL, with sense data the way MMC describes it. Media are read-only
 * 2048-byte-block images; changing or ejecting them raises a unit attention
 * and a media event so the guest notices.
 *
 * Every CDB field is untrusted: a bad one fails that command with CHECK
 * CONDITION and sense data, nothing else. */
#pragma once

#include "block/block.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define NB_SCSI_CDROM_BLOCK 2048
/* Most data-in segments one command may have (virtio-scsi's seg_max is
 * below this). */
#define NB_SCSI_CDROM_MAX_SEGMENTS 256

/* SCSI status bytes. */
#define NB_SCSI_STATUS_GOOD            0x00
#define NB_SCSI_STATUS_CHECK_CONDITION 0x02

#define NB_SCSI_SENSE_SIZE 18   /* fixed-format sense we produce */

typedef struct NbScsiCdrom NbScsiCdrom;

typedef struct {
  uint8_t status;                        /* NB_SCSI_STATUS_* */
  uint8_t sense[NB_SCSI_SENSE_SIZE];     /* valid with CHECK CONDITION */
  size_t sense_len;
  size_t data_len;                       /* bytes written to the data-in buffer */
} NbScsiResult;

/* medium may be NULL (an empty drive); the drive does not own it. */
NbScsiCdrom *nb_scsi_cdrom_new(NbBlock *medium);
void nb_scsi_cdrom_free(NbScsiCdrom *cd);

/* Runs one command: cdb of cdb_len bytes, data-in buffer din (what the
 * initiator allows us to return). Thread-safe against media changes. */
void nb_scsi_cdrom_execute(NbScsiCdrom *cd, const uint8_t *cdb, size_t cdb_len,
                           const struct iovec *din, unsigned n_din, NbScsiResult *result);

/* Puts another medium in (NULL: takes it out), as if the user swapped discs;
 * returns the medium that was in, for the caller to close. Refused (false)
 * while the guest has locked the tray, unless force. */
bool nb_scsi_cdrom_change(NbScsiCdrom *cd, NbBlock *medium, bool force, NbBlock **old_medium);

/* Whether a medium is in (the guest may have ejected it). */
bool nb_scsi_cdrom_has_medium(NbScsiCdrom *cd);

/* Back to power-on: unit attention pending, tray unlocked. */
void nb_scsi_cdrom_reset(NbScsiCdrom *cd);
