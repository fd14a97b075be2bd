/* Arbitrary frames from the guest into the NAT engine. The input is a
 * sequence of frames, each prefixed with a 2-byte big-endian length, so the
 * fuzzer can build stateful sequences (fragments, DHCP exchanges, TCP).
 * The engine runs restricted with no resolvers and no host loopback: the
 * fuzzer exercises every parser without opening connections to the world.
 * IPv6 is on (the default): the ipv6-* seeds hold neighbor and router
 * solicitations, echo, extension header chains, fragments, UDP and TCP. */
#include "net/nat.h"

#include <stdint.h>
#include <stdlib.h>

static bool
sink(void *opaque, const uint8_t *frame, size_t len, const NbNetFrameMeta *meta)
{
  /* Touch every byte: the sanitizers see a frame built from freed or
   * uninitialised memory. */
  volatile uint8_t x = 0;
  for (size_t i = 0; i < len; i++)
    x ^= frame[i];
  (void)x;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static NbNatConfig *config;
  if (!config) {
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    config = nb_nat_config_parse("nat,restrict=on,loopback=off,resolv-conf=/nonexistent,"
                                 "pool=8,hostname=fuzz,domainname=fuzz.test,dnssearch=a.fuzz.test",
                                 NULL);
    if (!config)
      abort();
  }
  NbNat *nat = nb_nat_new(config, NULL);
  if (!nat)
    abort();
  NbNetBackend *be = nb_nat_get_backend(nat);
  NbNetPeerOps ops = { .deliver = sink };
  nb_net_backend_attach(be, &ops, NULL,
                        (size & 1) ? NB_NET_PEER_CSUM_OFFLOAD | NB_NET_PEER_TSO4 : 0);
  size_t i = 0;
  while (i + 2 <= size) {
    size_t len = (size_t)data[i] << 8 | data[i + 1];
    i += 2;
    if (len > size - i)
      len = size - i;
    /* A private copy, so reads past the frame are caught. */
    uint8_t *frame = malloc(len ? len : 1);
    memcpy(frame, data + i, len);
    /* Odd-length frames come with a partial checksum, as from a guest
     * that offloads it: nothing to verify, every parser still runs. */
    NbNetFrameMeta meta = { .flags = (len & 1) ? NB_NET_FRAME_CSUM_PARTIAL : 0 };
    nb_net_backend_send(be, frame, len, &meta);
    free(frame);
    i += len;
  }
  nb_net_backend_flush(be);
  g_main_context_iteration(nb_net_backend_get_context(be), FALSE);
  nb_nat_free(nat);
  return 0;
}
