/* What a libvncclient client has received on its connection: the kernel's
 * count (TCP_INFO's tcpi_bytes_received), every byte the server sent,
 * headers included. Shared by the test client and the benchmark's. */
#pragma once

#include <rfb/rfbclient.h>

#include <linux/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

static inline uint64_t
nb_vnc_client_bytes_received(rfbClient *c)
{
  struct tcp_info info;
  socklen_t len = sizeof info;
  memset(&info, 0, sizeof info);
  if (getsockopt(c->sock, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
    return 0;
  return info.tcpi_bytes_received;
}
