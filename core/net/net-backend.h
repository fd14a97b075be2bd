/* The frame interface between a guest network device (virtio-net) and
 * whatever carries its frames: the NAT engine, a TAP device, a stream socket
 * to nestbox-netd.
 *
 * A backend runs on a GMainContext of its own (usually in a thread of its
 * own). Everything below, except nb_net_backend_get_context() and
 * nb_net_backend_free(), must be called on that context's thread: a frontend
 * attaches its own sources (a queue-notify ioeventfd, a TAP fd) to that
 * context, so frames move without locks or hand-offs between threads. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a frame carries besides its bytes: the offloads of virtio-net
 * (VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4), which TAP devices
 * with IFF_VNET_HDR share. A frame without offloads has meta NULL or
 * flags 0. */
typedef enum {
  /* The TCP or UDP checksum field holds only the pseudo-header sum; the
   * rest is to be summed by whoever needs it. Where the checksum field is
   * can be found with nb_net_frame_csum_offsets(). */
  NB_NET_FRAME_CSUM_PARTIAL = 1 << 0,
  /* A TCP/IPv4 segment larger than the MTU, to be cut into segments of
   * gso_size payload bytes. Always with NB_NET_FRAME_CSUM_PARTIAL. */
  NB_NET_FRAME_GSO_TCPV4 = 1 << 1,
} NbNetFrameFlags;

typedef struct {
  unsigned flags;    /* NbNetFrameFlags */
  uint16_t gso_size;
} NbNetFrameMeta;

/* Features the frontend (the guest side) announces when it attaches: which
 * offloaded frames it takes. */
typedef enum {
  NB_NET_PEER_CSUM_OFFLOAD = 1 << 0, /* NB_NET_FRAME_CSUM_PARTIAL */
  NB_NET_PEER_TSO4 = 1 << 1,         /* NB_NET_FRAME_GSO_TCPV4 */
} NbNetPeerFeatures;

typedef struct {
  /* A frame for the guest. Returns false when the guest has no room for it;
   * the frame is then dropped (TCP retransmits, UDP is lossy anyway). The
   * frame is only valid during the call. */
  bool (*deliver)(void *opaque, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta);
} NbNetPeerOps;

/* For a frame with NB_NET_FRAME_CSUM_PARTIAL: where the summing starts (the
 * L4 header) and where, from there, the checksum field is. False if the
 * frame is not TCP or UDP over IPv4. */
bool nb_net_frame_csum_offsets(const uint8_t *frame, size_t len, uint16_t *start,
                               uint16_t *offset);

typedef struct NbNetBackend NbNetBackend;

typedef struct {
  const char *name;
  /* A frame from the guest. The backend never keeps the pointer. */
  void (*send)(NbNetBackend *backend, const uint8_t *frame, size_t len,
               const NbNetFrameMeta *meta);
  /* The end of a burst of send() calls: a backend may hold work (such as
   * acknowledgements) until then to batch it. */
  void (*flush)(NbNetBackend *backend);
  void (*destroy)(NbNetBackend *backend);
} NbNetBackendClass;

struct NbNetBackend {
  const NbNetBackendClass *klass;
  GMainContext *context;
  NbNetPeerOps peer;
  void *peer_opaque;
  unsigned peer_features;
};

/* For backend implementations: fills the common part. Takes a reference on
 * context. */
void nb_net_backend_init(NbNetBackend *backend, const NbNetBackendClass *klass,
                         GMainContext *context);

/* Connects the guest side. Until then, frames for the guest are dropped. */
void nb_net_backend_attach(NbNetBackend *backend, const NbNetPeerOps *ops, void *opaque,
                           unsigned peer_features);

GMainContext *nb_net_backend_get_context(NbNetBackend *backend);

/* Guest -> network. */
void nb_net_backend_send(NbNetBackend *backend, const uint8_t *frame, size_t len,
                         const NbNetFrameMeta *meta);
void nb_net_backend_flush(NbNetBackend *backend);

/* Network -> guest, for backend implementations. */
bool nb_net_backend_deliver(NbNetBackend *backend, const uint8_t *frame, size_t len,
                            const NbNetFrameMeta *meta);

void nb_net_backend_free(NbNetBackend *backend);
