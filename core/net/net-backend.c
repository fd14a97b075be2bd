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
nb_net_backend_send(NbNetBackend *backend, const uint8_t *frame, size_t len)
{
  backend->klass->send(backend, frame, len);
}

void
nb_net_backend_flush(NbNetBackend *backend)
{
  if (backend->klass->flush)
    backend->klass->flush(backend);
}

bool
nb_net_backend_deliver(NbNetBackend *backend, const uint8_t *frame, size_t len, unsigned flags)
{
  if (!backend->peer.deliver)
    return false;
  return backend->peer.deliver(backend->peer_opaque, frame, len, flags);
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
