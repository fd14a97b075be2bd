/* The NAT engine's settings and the --net option that sets them. */
#include "net/nat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

G_DEFINE_QUARK(nb-nat-error-quark, nb_nat_error)

#define DEFAULT_NET 0x0a000200u /* 10.0.2.0 */

NbNatConfig *
nb_nat_config_new(void)
{
  NbNatConfig *c = g_new0(NbNatConfig, 1);
  c->net = DEFAULT_NET;
  c->netmask = 0xffffff00u;
  c->gateway = DEFAULT_NET | 2;
  c->dns = DEFAULT_NET | 3;
  c->dhcp_start = DEFAULT_NET | 15;
  c->dhcp_pool_size = 0;
  c->lease_time = 86400;
  c->mtu = 1500;
  c->static_leases = g_array_new(FALSE, TRUE, sizeof(NbNatStaticLease));
  c->hostfwds = g_array_new(FALSE, TRUE, sizeof(NbNatHostFwd));
  c->host_loopback = true;
  c->resolv_conf = g_strdup("/etc/resolv.conf");
  c->max_tcp_flows = 4096;
  c->max_udp_flows = 1024;
  c->max_icmp_flows = 256;
  c->udp_timeout = 60;
  c->ipv6 = true;
  /* fd00:10:0:2::/64: a unique local prefix that reads like 10.0.2.0/24. */
  static const uint8_t net6[16] = { 0xfd, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x02 };
  memcpy(c->net6, net6, 16);
  return c;
}

NbNatConfig *
nb_nat_config_copy(const NbNatConfig *config)
{
  NbNatConfig *c = g_new0(NbNatConfig, 1);
  *c = *config;
  c->domain = g_strdup(config->domain);
  c->search = g_strdupv(config->search);
  c->hostname = g_strdup(config->hostname);
  c->resolv_conf = g_strdup(config->resolv_conf);
  c->static_leases = g_array_copy(config->static_leases);
  c->hostfwds = g_array_copy(config->hostfwds);
  return c;
}

void
nb_nat_config_free(NbNatConfig *config)
{
  if (!config)
    return;
  g_free(config->domain);
  g_strfreev(config->search);
  g_free(config->hostname);
  g_free(config->resolv_conf);
  g_array_unref(config->static_leases);
  g_array_unref(config->hostfwds);
  g_free(config);
}

static gboolean
parse_ip(const char *text, uint32_t *out)
{
  struct in_addr a;
  if (inet_pton(AF_INET, text, &a) != 1)
    return FALSE;
  *out = ntohl(a.s_addr);
  return TRUE;
}

static gboolean
parse_uint(const char *text, unsigned min, unsigned max, unsigned *out)
{
  if (!g_ascii_isdigit(text[0]))
    return FALSE;
  errno = 0;
  char *end = NULL;
  guint64 v = g_ascii_strtoull(text, &end, 10);
  if (errno || *end || v < min || v > max)
    return FALSE;
  *out = (unsigned)v;
  return TRUE;
}

static gboolean
parse_mac(const char *text, uint8_t mac[6])
{
  unsigned v[6];
  char tail;
  if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
             &tail) != 6 || strlen(text) != 17)
    return FALSE;
  for (int i = 0; i < 6; i++)
    mac[i] = (uint8_t)v[i];
  return TRUE;
}

static gboolean
parse_bool(const char *text, bool *out)
{
  if (!strcmp(text, "on") || !strcmp(text, "yes") || !strcmp(text, "true")) {
    *out = true;
    return TRUE;
  }
  if (!strcmp(text, "off") || !strcmp(text, "no") || !strcmp(text, "false")) {
    *out = false;
    return TRUE;
  }
  return FALSE;
}

/* A DNS name as DHCP can carry it: labels of 1 to 63 letters, digits,
 * hyphens or underscores. */
static gboolean
valid_dns_name(const char *name)
{
  size_t len = strlen(name);
  if (len == 0 || len > 253)
    return FALSE;
  size_t label = 0;
  for (const char *p = name; *p; p++) {
    if (*p == '.') {
      if (label == 0)
        return FALSE;
      label = 0;
    } else if (g_ascii_isalnum(*p) || *p == '-' || *p == '_') {
      if (++label > 63)
        return FALSE;
    } else {
      return FALSE;
    }
  }
  return TRUE;
}

/* "[ADDR]:PORT": ADDR is IPv4, or IPv6 in brackets ("[::1]:2222"), or
 * empty when addr_optional. */
static gboolean
parse_addr_port(const char *text, bool addr_optional, uint32_t *addr, bool *v6, uint8_t addr6[16],
                uint16_t *port)
{
  const char *colon = strrchr(text, ':');
  if (!colon)
    return FALSE;
  g_autofree char *a = g_strndup(text, (gsize)(colon - text));
  unsigned p;
  if (!parse_uint(colon + 1, 0, 65535, &p))
    return FALSE;
  *addr = 0;
  *v6 = false;
  memset(addr6, 0, 16);
  size_t alen = strlen(a);
  if (alen == 0) {
    if (!addr_optional)
      return FALSE;
  } else if (a[0] == '[') {
    if (alen < 3 || a[alen - 1] != ']')
      return FALSE;
    a[alen - 1] = '\0';
    struct in6_addr in6;
    /* A scope ("%eth0") would need an interface: not taken. */
    if (inet_pton(AF_INET6, a + 1, &in6) != 1)
      return FALSE;
    memcpy(addr6, &in6, 16);
    *v6 = true;
  } else if (!parse_ip(a, addr)) {
    return FALSE;
  }
  *port = (uint16_t)p;
  return TRUE;
}

static gboolean
hostfwd_fields(const char *text, NbNatHostFwd *fwd)
{
  const char *rest = text;
  *fwd = (NbNatHostFwd){ .proto = NB_NAT_PROTO_TCP };
  if (g_str_has_prefix(text, "tcp:")) {
    rest = text + 4;
  } else if (g_str_has_prefix(text, "udp:")) {
    fwd->proto = NB_NAT_PROTO_UDP;
    rest = text + 4;
  } else if (rest[0] != ':') {
    return FALSE;
  }
  /* IPv6 addresses hold no '-', so the first one splits host from guest. */
  const char *dash = strchr(rest, '-');
  if (!dash)
    return FALSE;
  g_autofree char *host = g_strndup(rest, (gsize)(dash - rest));
  if (!parse_addr_port(host, true, &fwd->host_addr, &fwd->host_v6, fwd->host_addr6, &fwd->host_port))
    return FALSE;
  if (!parse_addr_port(dash + 1, true, &fwd->guest_addr, &fwd->guest_v6, fwd->guest_addr6,
                       &fwd->guest_port) || fwd->guest_port == 0)
    return FALSE;
  /* An empty host address means loopback: a forward should not open a guest
   * port to the whole network unless the user says 0.0.0.0 (or [::]). */
  if (host[0] == ':')
    fwd->host_addr = INADDR_LOOPBACK;
  return TRUE;
}

gboolean
nb_nat_hostfwd_parse(const char *text, NbNatHostFwd *out, GError **error)
{
  NbNatHostFwd fwd;
  if (!hostfwd_fields(text, &fwd)) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                "port forward “%s” is not valid: expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, "
                "for example tcp:127.0.0.1:2222-:22",
                text);
    return FALSE;
  }
  *out = fwd;
  return TRUE;
}

static void
format_addr(GString *s, bool v6, uint32_t addr, const uint8_t *addr6, bool empty_if_zero)
{
  char buf[INET6_ADDRSTRLEN];
  if (v6) {
    inet_ntop(AF_INET6, addr6, buf, sizeof buf);
    g_string_append_printf(s, "[%s]", buf);
  } else if (addr || !empty_if_zero) {
    struct in_addr a = { .s_addr = htonl(addr) };
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    g_string_append(s, buf);
  }
}

char *
nb_nat_hostfwd_format(const NbNatHostFwd *fwd)
{
  GString *s = g_string_new(fwd->proto == NB_NAT_PROTO_TCP ? "tcp:" : "udp:");
  format_addr(s, fwd->host_v6, fwd->host_addr, fwd->host_addr6, false);
  g_string_append_printf(s, ":%u-", fwd->host_port);
  format_addr(s, fwd->guest_v6, fwd->guest_addr, fwd->guest_addr6, true);
  g_string_append_printf(s, ":%u", fwd->guest_port);
  return g_string_free(s, FALSE);
}

bool
nb_nat_config_guest_addr6_ok(const NbNatConfig *c, const uint8_t a[16])
{
  static const uint8_t zero8[8];
  /* Inside the /64, not the subnet-router anycast (::), nor the engine's
   * ::2 and ::3. */
  if (!c->ipv6 || memcmp(a, c->net6, 8) != 0 || memcmp(a + 8, zero8, 8) == 0)
    return false;
  static const uint8_t two[8] = { 0, 0, 0, 0, 0, 0, 0, 2 }, three[8] = { 0, 0, 0, 0, 0, 0, 0, 3 };
  return memcmp(a + 8, two, 8) != 0 && memcmp(a + 8, three, 8) != 0;
}

gboolean
nb_nat_config_check(const NbNatConfig *c, GError **error)
{
  uint32_t mask = c->netmask;
  if ((c->net & ~mask) != 0 || mask == 0 || (~mask & (~mask + 1)) != 0 || (~mask) < 7) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                "the NAT subnet is not valid: give net=ADDRESS/PREFIX with a prefix of 29 or less "
                "and no host bits, for example net=10.0.2.0/24");
    return FALSE;
  }
  const struct { const char *name; uint32_t addr; } inside[] = {
    { "host (gateway)", c->gateway }, { "dns", c->dns }, { "dhcpstart", c->dhcp_start },
  };
  uint32_t bcast = c->net | ~mask;
  for (gsize i = 0; i < G_N_ELEMENTS(inside); i++) {
    if ((inside[i].addr & mask) != c->net || inside[i].addr == c->net || inside[i].addr == bcast) {
      g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                  "the NAT %s address is not a host address inside the subnet: pick one inside net=",
                  inside[i].name);
      return FALSE;
    }
  }
  if (c->gateway == c->dns || c->dhcp_start == c->gateway || c->dhcp_start == c->dns) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                "the NAT gateway, DNS and first DHCP addresses must all differ");
    return FALSE;
  }
  if (c->mtu < 576 || c->mtu > 65520) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                "the NAT MTU %u is out of range: use 576 to 65520", c->mtu);
    return FALSE;
  }
  static const uint8_t zero8[8];
  if (c->ipv6 && (memcmp(c->net6 + 8, zero8, 8) != 0 || memcmp(c->net6, zero8, 8) == 0 ||
                  c->net6[0] == 0xff || (c->net6[0] == 0xfe && (c->net6[1] & 0xc0) == 0x80))) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                "the NAT IPv6 prefix is not valid: give net6=PREFIX/64 with no host bits, not "
                "link-local or multicast, for example net6=fd00:10:0:2::/64");
    return FALSE;
  }
  if (c->ipv6 && c->mtu < 1280) {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                "the NAT MTU %u is below IPv6's minimum of 1280: raise mtu= or add ipv6=off",
                c->mtu);
    return FALSE;
  }
  for (guint i = 0; i < c->hostfwds->len; i++) {
    const NbNatHostFwd *f = &g_array_index(c->hostfwds, NbNatHostFwd, i);
    if (f->guest_v6 && !nb_nat_config_guest_addr6_ok(c, f->guest_addr6)) {
      g_autofree char *rule = nb_nat_hostfwd_format(f);
      g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                  "port forward “%s” goes to an IPv6 address the guest cannot have: give one "
                  "inside net6= (and keep ipv6=on), or leave the guest address empty to reach "
                  "the guest over IPv4", rule);
      return FALSE;
    }
  }
  for (guint i = 0; i < c->static_leases->len; i++) {
    uint32_t a = g_array_index(c->static_leases, NbNatStaticLease, i).addr;
    if ((a & mask) != c->net || a == c->net || a == bcast || a == c->gateway || a == c->dns) {
      g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                  "a static lease address is not a free host address inside the NAT subnet");
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
bad_value(GError **error, const char *key, const char *value, const char *expected)
{
  g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
              "--net option %s=%s is not valid: expected %s", key, value, expected);
  return FALSE;
}

static gboolean
apply_option(NbNatConfig *c, const char *key, const char *value, GPtrArray *search,
             bool *net_given, GError **error)
{
  if (!strcmp(key, "mac")) {
    if (!parse_mac(value, c->mac) || (c->mac[0] & 1))
      return bad_value(error, key, value, "a unicast MAC address like 52:54:00:12:34:56");
    c->has_mac = true;
  } else if (!strcmp(key, "net")) {
    g_auto(GStrv) parts = g_strsplit(value, "/", 2);
    unsigned prefix = 24;
    uint32_t addr;
    if (!parts[0] || !parse_ip(parts[0], &addr) ||
        (parts[1] && !parse_uint(parts[1], 1, 29, &prefix)))
      return bad_value(error, key, value, "a subnet like 10.0.2.0/24 (prefix 1 to 29)");
    c->netmask = prefix ? 0xffffffffu << (32 - prefix) : 0;
    c->net = addr & c->netmask;
    *net_given = true;
  } else if (!strcmp(key, "host") || !strcmp(key, "dns") || !strcmp(key, "dhcpstart")) {
    uint32_t addr;
    if (!parse_ip(value, &addr))
      return bad_value(error, key, value, "an IPv4 address inside the NAT subnet");
    if (!strcmp(key, "host"))
      c->gateway = addr;
    else if (!strcmp(key, "dns"))
      c->dns = addr;
    else
      c->dhcp_start = addr;
  } else if (!strcmp(key, "pool")) {
    if (!parse_uint(value, 1, 65536, &c->dhcp_pool_size))
      return bad_value(error, key, value, "a number of addresses from 1 to 65536");
  } else if (!strcmp(key, "lease-time")) {
    if (!parse_uint(value, 60, 0x7fffffff, &c->lease_time))
      return bad_value(error, key, value, "seconds, at least 60");
  } else if (!strcmp(key, "mtu")) {
    if (!parse_uint(value, 576, 65520, &c->mtu))
      return bad_value(error, key, value, "a number from 576 to 65520");
  } else if (!strcmp(key, "domainname") || !strcmp(key, "hostname") || !strcmp(key, "dnssearch")) {
    if (!valid_dns_name(value))
      return bad_value(error, key, value, "a DNS name such as example.com");
    if (!strcmp(key, "domainname")) {
      g_free(c->domain);
      c->domain = g_strdup(value);
    } else if (!strcmp(key, "hostname")) {
      g_free(c->hostname);
      c->hostname = g_strdup(value);
    } else {
      if (search->len >= 16)
        return bad_value(error, key, value, "at most 16 search domains");
      g_ptr_array_add(search, g_strdup(value));
    }
  } else if (!strcmp(key, "lease")) {
    NbNatStaticLease lease;
    const char *at = strchr(value, '@');
    g_autofree char *mac = at ? g_strndup(value, (gsize)(at - value)) : NULL;
    if (!at || !parse_mac(mac, lease.mac) || !parse_ip(at + 1, &lease.addr))
      return bad_value(error, key, value, "MAC@IP, for example 52:54:00:12:34:56@10.0.2.20");
    g_array_append_val(c->static_leases, lease);
  } else if (!strcmp(key, "hostfwd")) {
    NbNatHostFwd fwd;
    if (!nb_nat_hostfwd_parse(value, &fwd, error))
      return FALSE;
    g_array_append_val(c->hostfwds, fwd);
  } else if (!strcmp(key, "net6")) {
    g_auto(GStrv) parts = g_strsplit(value, "/", 2);
    uint8_t a[16];
    static const uint8_t zero[8];
    /* SLAAC makes addresses in a /64 only (RFC 4862 with Ethernet's
     * 64-bit interface identifiers); multicast and link-local prefixes
     * cannot be a subnet's. */
    if (!parts[0] || inet_pton(AF_INET6, parts[0], a) != 1 || (parts[1] && strcmp(parts[1], "64")) ||
        memcmp(a + 8, zero, 8) != 0 || a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||
        memcmp(a, zero, 8) == 0)
      return bad_value(error, key, value,
                       "an IPv6 /64 prefix with no host bits, such as fd00:10:0:2::/64");
    memcpy(c->net6, a, 16);
  } else if (!strcmp(key, "ipv6")) {
    if (!parse_bool(value, &c->ipv6))
      return bad_value(error, key, value, "on or off");
  } else if (!strcmp(key, "loopback") || !strcmp(key, "restrict")) {
    bool v;
    if (!parse_bool(value, &v))
      return bad_value(error, key, value, "on or off");
    if (!strcmp(key, "loopback"))
      c->host_loopback = v;
    else
      c->restrict_outbound = v;
  } else if (!strcmp(key, "resolv-conf")) {
    if (!*value)
      return bad_value(error, key, value, "a file path");
    g_free(c->resolv_conf);
    c->resolv_conf = g_strdup(value);
  } else if (!strcmp(key, "max-flows")) {
    unsigned n;
    if (!parse_uint(value, 16, 1u << 20, &n))
      return bad_value(error, key, value, "a number from 16 to 1048576");
    c->max_tcp_flows = n;
    c->max_udp_flows = MAX(16u, n / 4);
  } else {
    g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                "--net nat does not know the option “%s”: see nestbox-vm --help for the list", key);
    return FALSE;
  }
  return TRUE;
}

NbNatConfig *
nb_nat_config_parse(const char *text, GError **error)
{
  g_autoptr(NbNatConfig) c = nb_nat_config_new();
  g_autoptr(GPtrArray) search = g_ptr_array_new_with_free_func(g_free);
  g_auto(GStrv) items = g_strsplit(text ? text : "", ",", -1);
  bool net_given = false, host_given = false, dns_given = false, start_given = false;
  bool ipv6_given = false;

  for (int i = 0; items[i]; i++) {
    const char *item = items[i];
    if (i == 0 && !strcmp(item, "nat"))
      continue;
    if (*item == '\0') {
      if (i == 0 && !items[1])
        break;
      g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                  "--net has an empty option: remove the extra comma");
      return NULL;
    }
    const char *eq = strchr(item, '=');
    if (!eq) {
      g_set_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG,
                  "--net option “%s” has no value: write KEY=VALUE", item);
      return NULL;
    }
    g_autofree char *key = g_strndup(item, (gsize)(eq - item));
    host_given |= !strcmp(key, "host");
    dns_given |= !strcmp(key, "dns");
    start_given |= !strcmp(key, "dhcpstart");
    ipv6_given |= !strcmp(key, "ipv6");
    if (!apply_option(c, key, eq + 1, search, &net_given, error))
      return NULL;
  }
  /* A new subnet moves the defaults with it, as QEMU does: .2, .3 and .15. */
  if (net_given) {
    if (!host_given)
      c->gateway = c->net | 2;
    if (!dns_given)
      c->dns = c->net | 3;
    if (!start_given)
      c->dhcp_start = c->net | 15;
  }
  /* IPv6 needs links of 1280 bytes: a smaller mtu= turns it off unless
   * ipv6=on asks for it (then the check below says why that cannot be). */
  if (c->mtu < 1280 && !ipv6_given)
    c->ipv6 = false;
  if (search->len) {
    g_ptr_array_add(search, NULL);
    c->search = (char **)g_ptr_array_steal(search, NULL);
  }
  if (!nb_nat_config_check(c, error))
    return NULL;
  return g_steal_pointer(&c);
}
