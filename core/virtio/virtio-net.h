/* virtio-net (spec 5.1): one receive and one transmit queue in front of an
 * NbNetBackend (the NAT engine, later TAP or nestbox-netd).
 *
 * Offered: the MAC address and link status in the device configuration,
 * mergeable receive buffers, and checksum and TCP segmentation offloads
 * both ways (CSUM, GUEST_CSUM, HOST_TSO4, GUEST_TSO4). The backend is told
 * what the guest driver accepted, so a guest without offloads gets fully
 * checksummed frames of its MTU; frames the backend offers anyway with
 * offloads the guest did not take are checksummed here, or dropped.
 *
 * Threads: the transport's worker only hands transmit notifications to the
 * backend's GMainContext, where frames are taken from the transmit queue,
 * copied out of guest memory once, checked and sent. Frames for the guest
 * arrive on that same thread (the backend's deliver callback) and are
 * copied straight into the guest's receive buffers. Each queue has a lock
 * of the device's own, which a reset also takes, so a reset never races
 * with a frame in flight.
 *
 * Everything the guest gives is untrusted: a short header, a frame over
 * NB_VIRTIO_NET_MAX_FRAME, unknown flags or GSO types, checksum offsets
 * outside the frame, buffers outside guest RAM. Each costs only the frame
 * it came with, which is dropped and counted in NbVirtioNetStats. */
#pragma once

#include "hw/pci.h"
#include "kvm/guest-memory.h"
#include "net/net-backend.h"
#include "virtio/virtqueue.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Feature bits (spec 5.1.3). */
#define NB_VIRTIO_NET_F_CSUM       0
#define NB_VIRTIO_NET_F_GUEST_CSUM 1
#define NB_VIRTIO_NET_F_MAC        5
#define NB_VIRTIO_NET_F_GUEST_TSO4 7
#define NB_VIRTIO_NET_F_HOST_TSO4  11
#define NB_VIRTIO_NET_F_MRG_RXBUF  15
#define NB_VIRTIO_NET_F_STATUS     16

/* struct virtio_net_hdr (5.1.6): with VERSION_1 always 12 bytes, the last
 * two num_buffers. */
#define NB_VIRTIO_NET_HDR_SIZE 12
#define NB_VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define NB_VIRTIO_NET_HDR_F_DATA_VALID 2
#define NB_VIRTIO_NET_HDR_GSO_NONE  0
#define NB_VIRTIO_NET_HDR_GSO_TCPV4 1
#define NB_VIRTIO_NET_HDR_GSO_ECN   0x80

#define NB_VIRTIO_NET_S_LINK_UP 1

#define NB_VIRTIO_NET_Q_RX 0
#define NB_VIRTIO_NET_Q_TX 1
#define NB_VIRTIO_NET_QUEUE_SIZE 256
/* The largest frame either way: an Ethernet header and the largest IPv4
 * packet, which is also what a 64 KiB TSO frame can reach. */
#define NB_VIRTIO_NET_MAX_FRAME (14 + 65535)

typedef struct {
  uint64_t tx_frames;       /* from the guest, handed to the backend */
  uint64_t tx_bytes;
  uint64_t tx_bad_header;   /* header short, unknown flags or GSO type, bad offsets */
  uint64_t tx_bad_size;     /* a runt, or larger than NB_VIRTIO_NET_MAX_FRAME */
  uint64_t tx_bad_buffer;   /* buffers outside guest RAM */
  uint64_t tx_sw_csum;      /* checksums completed here (offsets the backend does not take) */
  uint64_t rx_frames;       /* to the guest */
  uint64_t rx_bytes;
  uint64_t rx_no_buffer;    /* the guest had no (or too little) room: dropped */
  uint64_t rx_bad_buffer;   /* buffers too small, not writable or outside RAM: dropped */
  uint64_t rx_down;         /* the driver not ready, or the link down: dropped */
  uint64_t rx_sw_csum;      /* checksums completed for a guest without GUEST_CSUM */
  uint64_t rx_bad_offload;  /* offloaded frames the guest cannot take: dropped */
} NbVirtioNetStats;

typedef struct NbVirtioNet NbVirtioNet;

/* A NIC with address mac on backend. Attaches to the backend at once: call
 * before the backend's thread runs (nb_nat_start), or on that thread. The
 * backend must outlive the device. */
NbVirtioNet *nb_virtio_net_new(NbGuestMemory *mem, NbNetBackend *backend, const uint8_t mac[6],
                               GError **error);
/* Detaches from the backend (on its thread, waiting for it if it runs),
 * then stops and frees the device. Free the backend afterwards. */
void nb_virtio_net_free(NbVirtioNet *net);

/* What nb_pci_bus_add takes. */
NbPciDevice *nb_virtio_net_pci_device(NbVirtioNet *net);

/* The cable: a link that is down drops frames both ways, and a driver with
 * VIRTIO_NET_F_STATUS is told. Any thread. */
void nb_virtio_net_set_link(NbVirtioNet *net, bool up);

/* Any thread. */
void nb_virtio_net_get_stats(NbVirtioNet *net, NbVirtioNetStats *out);

/* Checks one transmit chain and sends its frame to the backend; returns
 * whether it was sent. The device calls it for every chain it takes; tests
 * and the fuzzer call it directly, on the backend's thread (or with the
 * backend not running). */
bool nb_virtio_net_process_tx(NbVirtioNet *net, const NbVirtqElement *elem);
