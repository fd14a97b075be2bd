/* The DNS forwarder's view of the host's resolvers: the nameserver lines of
 * resolv.conf, read again when the file changes (a laptop moving between
 * networks gets new resolvers without restarting its machines). */
#include "net/nat-private.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#define DNS_MAX_RESOLVERS 3
#define DNS_RECHECK_US G_USEC_PER_SEC

struct NatDns {
  struct sockaddr_in resolvers[DNS_MAX_RESOLVERS];
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
    if (!words[w] || inet_pton(AF_INET, words[w], &a) != 1)
      continue; /* IPv6 resolvers cannot take our IPv4 sockets' queries */
    struct sockaddr_in *sa = &dns->resolvers[dns->count++];
    *sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(53), .sin_addr = a };
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

bool
nat_dns_resolver(NbNat *nat, struct sockaddr_in *out)
{
  dns_refresh(nat);
  if (nat->dns->count == 0)
    return false;
  *out = nat->dns->resolvers[0];
  return true;
}

bool
nat_dns_is_resolver(NbNat *nat, const struct sockaddr_in *addr)
{
  NatDns *dns = nat->dns;
  for (unsigned i = 0; i < dns->count; i++)
    if (dns->resolvers[i].sin_addr.s_addr == addr->sin_addr.s_addr &&
        dns->resolvers[i].sin_port == addr->sin_port)
      return true;
  return false;
}
