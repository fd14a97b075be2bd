#include "net/net-backend.h"

void
nb_net_backend_init(NbNetBackend *backend, const NbNetBackendClass *klass,
                    GMainContext *context)
{
  backend->klass = klass;
  backend->context = g_main_context_ref(context);
  backend->peer = (NbNetPeerOps){ 0 };
  backend->peer_opaque = NULL;
  backend->peer_features = 0;
}

void
nb_net_backend_attach(NbNetBackend *backend, const NbNetPeerOps *ops, void *opaque,
                      unsigned peer_features)
{
  backend->peer = ops ? *ops : (NbNetPeerOps){ 0 };
  backend->peer_opaque = opaque;
  backend->peer_features = peer_features;
}

GMainContext *
nb_net_backend_get_context(NbNetBackend *backend)
{
  return backend->context;
}

void
nb_net_backend_send(NbNetBackend *backend, const uint8_t *frame, size_t len,
                    const NbNetFrameMeta *meta)
{
  backend->klass->send(backend, frame, len, meta);
}

void
nb_net_backend_flush(NbNetBackend *backend)
{
  if (backend->klass->flush)
    backend->klass->flush(backend);
}

bool
nb_net_backend_deliver(NbNetBackend *backend, const uint8_t *frame, size_t len,
                       const NbNetFrameMeta *meta)
{
  if (!backend->peer.deliver)
    return false;
  return backend->peer.deliver(backend->peer_opaque, frame, len, meta);
}

bool
nb_net_frame_csum_offsets(const uint8_t *frame, size_t len, uint16_t *start, uint16_t *offset)
{
  if (len < 14 + 20 || frame[12] != 0x08 || frame[13] != 0x00 || (frame[14] >> 4) != 4)
    return false;
  size_t l4 = 14 + (size_t)(frame[14] & 0xf) * 4;
  uint8_t proto = frame[14 + 9];
  if (proto == 6 && l4 + 20 <= len) {
    *offset = 16;
  } else if (proto == 17 && l4 + 8 <= len) {
    *offset = 6;
  } else {
    return false;
  }
  *start = (uint16_t)l4;
  return true;
}

void
nb_net_backend_free(NbNetBackend *backend)
{
  if (!backend)
    return;
  GMainContext *context = backend->context;
  backend->klass->destroy(backend);
  g_main_context_unref(context);
}
