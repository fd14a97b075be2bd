/* The DNS forwarder's view of the host's resolvers: the nameserver lines of
 * resolv.conf, read again when the file changes (a laptop moving between
 * networks gets new resolvers without restarting its machines). */
#include "net/nat-private.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#define DNS_MAX_RESOLVERS 3
#define DNS_RECHECK_US G_USEC_PER_SEC

struct NatDns {
  NatAddr resolvers[DNS_MAX_RESOLVERS]; /* IPv4-mapped or IPv6, all on port 53 */
  unsigned count;
  int64_t checked;
  struct stat st;
  bool have_st;
};

static void
dns_load(NbNat *nat, NatDns *dns)
{
  dns->count = 0;
  g_autofree char *text = NULL;
  if (!g_file_get_contents(nat->cfg->resolv_conf, &text, NULL, NULL))
    return;
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (int i = 0; lines[i] && dns->count < DNS_MAX_RESOLVERS; i++) {
    g_auto(GStrv) words = g_strsplit_set(g_strstrip(lines[i]), " \t", -1);
    if (!words[0] || strcmp(words[0], "nameserver"))
      continue;
    int w = 1;
    while (words[w] && !*words[w])
      w++;
    struct in_addr a;
    NatAddr *r = &dns->resolvers[dns->count];
    if (!words[w])
      continue;
    if (inet_pton(AF_INET, words[w], &a) == 1)
      *r = nat_addr4(ntohl(a.s_addr));
    else if (inet_pton(AF_INET6, words[w], r->b) != 1)
      continue; /* a link-local resolver with a %zone cannot be reached from our sockets */
    dns->count++;
  }
}

static void
dns_refresh(NbNat *nat)
{
  NatDns *dns = nat->dns;
  if (dns->have_st && nat->now - dns->checked < DNS_RECHECK_US)
    return;
  dns->checked = nat->now;
  struct stat st;
  if (stat(nat->cfg->resolv_conf, &st) < 0) {
    dns->count = 0;
    dns->have_st = false;
    return;
  }
  if (dns->have_st && st.st_ino == dns->st.st_ino && st.st_dev == dns->st.st_dev &&
      st.st_size == dns->st.st_size && st.st_mtim.tv_sec == dns->st.st_mtim.tv_sec &&
      st.st_mtim.tv_nsec == dns->st.st_mtim.tv_nsec)
    return;
  dns->st = st;
  dns->have_st = true;
  dns_load(nat, dns);
}

NatDns *
nat_dns_new(NbNat *nat)
{
  return g_new0(NatDns, 1);
}

void
nat_dns_free(NatDns *dns)
{
  g_free(dns);
}

socklen_t
nat_dns_resolver(NbNat *nat, int family, NatSockaddr *out)
{
  dns_refresh(nat);
  /* The guest's IPv4 queries go out of IPv4 sockets, to the first IPv4
   * resolver; IPv6 queries out of dual-stack IPv6 sockets, to the first
   * resolver of either family. */
  for (unsigned i = 0; i < nat->dns->count; i++) {
    const NatAddr *r = &nat->dns->resolvers[i];
    if (family == AF_INET6 || nat_addr_is4(r))
      return nat_sockaddr_set(out, family, r, 53);
  }
  return 0;
}

bool
nat_dns_is_resolver(NbNat *nat, const NatSockaddr *addr, socklen_t len)
{
  NatDns *dns = nat->dns;
  NatAddr a;
  uint16_t port;
  if (!nat_sockaddr_get(addr, len, &a, &port) || port != 53)
    return false;
  for (unsigned i = 0; i < dns->count; i++)
    if (nat_addr_eq(&dns->resolvers[i], &a))
      return true;
  return false;
}
