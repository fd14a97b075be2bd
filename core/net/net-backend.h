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

/* Flags of a frame delivered to the guest. */
typedef enum {
  /* The L4 checksum was not computed; the data is known good (it came from a
   * host socket). Only used when the peer asked for NB_NET_PEER_CSUM_OFFLOAD:
   * virtio-net reports it as VIRTIO_NET_HDR_F_DATA_VALID. */
  NB_NET_FRAME_DATA_VALID = 1 << 0,
} NbNetFrameFlags;

/* Features the frontend (the guest side) announces when it attaches. */
typedef enum {
  /* Frames with NB_NET_FRAME_DATA_VALID are fine: the checksum field may be
   * left unfilled, which saves a pass over every byte. */
  NB_NET_PEER_CSUM_OFFLOAD = 1 << 0,
} NbNetPeerFeatures;

typedef struct {
  /* A frame for the guest. Returns false when the guest has no room for it;
   * the frame is then dropped (TCP retransmits, UDP is lossy anyway). The
   * frame is only valid during the call. */
  bool (*deliver)(void *opaque, const uint8_t *frame, size_t len, unsigned flags);
} NbNetPeerOps;

typedef struct NbNetBackend NbNetBackend;

typedef struct {
  const char *name;
  /* A frame from the guest. The backend never keeps the pointer. */
  void (*send)(NbNetBackend *backend, const uint8_t *frame, size_t len);
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
void nb_net_backend_send(NbNetBackend *backend, const uint8_t *frame, size_t len);
void nb_net_backend_flush(NbNetBackend *backend);

/* Network -> guest, for backend implementations. */
bool nb_net_backend_deliver(NbNetBackend *backend, const uint8_t *frame, size_t len,
                            unsigned flags);

void nb_net_backend_free(NbNetBackend *backend);
