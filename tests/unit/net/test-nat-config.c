/* The --net nat option: what users type, and the errors they get. */
#include "net/nat.h"

static void
test_defaults(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbNatConfig) c = nb_nat_config_parse("nat", &error);
  g_assert_no_error(error);
  g_assert_cmpuint(c->net, ==, 0x0a000200);
  g_assert_cmpuint(c->netmask, ==, 0xffffff00);
  g_assert_cmpuint(c->gateway, ==, 0x0a000202);
  g_assert_cmpuint(c->dns, ==, 0x0a000203);
  g_assert_cmpuint(c->dhcp_start, ==, 0x0a00020f);
  g_assert_cmpuint(c->mtu, ==, 1500);
  g_assert_true(c->host_loopback);
  g_assert_false(c->restrict_outbound);
  g_assert_false(c->has_mac);
  g_assert_cmpuint(c->hostfwds->len, ==, 0);
}

static void
test_full(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbNatConfig) c = nb_nat_config_parse(
    "nat,mac=52:54:00:aa:bb:cc,net=172.16.0.0/16,host=172.16.0.1,dns=172.16.0.53,"
    "dhcpstart=172.16.1.0,pool=100,lease-time=600,mtu=9000,hostname=vm,domainname=lan,"
    "dnssearch=a.lan,dnssearch=b.lan,lease=52:54:00:00:00:09@172.16.0.9,"
    "hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-172.16.0.9:53,hostfwd=:8080-:80,"
    "loopback=off,restrict=on,max-flows=64",
    &error);
  g_assert_no_error(error);
  g_assert_true(c->has_mac);
  g_assert_cmpuint(c->mac[5], ==, 0xcc);
  g_assert_cmpuint(c->net, ==, 0xac100000);
  g_assert_cmpuint(c->netmask, ==, 0xffff0000);
  g_assert_cmpuint(c->gateway, ==, 0xac100001);
  g_assert_cmpuint(c->dns, ==, 0xac100035);
  g_assert_cmpuint(c->dhcp_start, ==, 0xac100100);
  g_assert_cmpuint(c->dhcp_pool_size, ==, 100);
  g_assert_cmpuint(c->lease_time, ==, 600);
  g_assert_cmpuint(c->mtu, ==, 9000);
  g_assert_cmpstr(c->hostname, ==, "vm");
  g_assert_cmpstr(c->domain, ==, "lan");
  g_assert_cmpstr(c->search[0], ==, "a.lan");
  g_assert_cmpstr(c->search[1], ==, "b.lan");
  g_assert_null(c->search[2]);
  g_assert_cmpuint(c->static_leases->len, ==, 1);
  g_assert_cmpuint(g_array_index(c->static_leases, NbNatStaticLease, 0).addr, ==, 0xac100009);
  g_assert_cmpuint(c->hostfwds->len, ==, 3);
  NbNatHostFwd *f = &g_array_index(c->hostfwds, NbNatHostFwd, 0);
  g_assert_cmpint(f->proto, ==, NB_NAT_PROTO_TCP);
  g_assert_cmpuint(f->host_addr, ==, 0x7f000001);
  g_assert_cmpuint(f->host_port, ==, 2222);
  g_assert_cmpuint(f->guest_addr, ==, 0);
  g_assert_cmpuint(f->guest_port, ==, 22);
  f = &g_array_index(c->hostfwds, NbNatHostFwd, 1);
  g_assert_cmpint(f->proto, ==, NB_NAT_PROTO_UDP);
  g_assert_cmpuint(f->host_addr, ==, 0x7f000001); /* empty host address: loopback only */
  g_assert_cmpuint(f->guest_addr, ==, 0xac100009);
  f = &g_array_index(c->hostfwds, NbNatHostFwd, 2);
  g_assert_cmpint(f->proto, ==, NB_NAT_PROTO_TCP);
  g_assert_cmpuint(f->host_port, ==, 8080);
  g_assert_false(c->host_loopback);
  g_assert_true(c->restrict_outbound);
  g_assert_cmpuint(c->max_tcp_flows, ==, 64);
}

static void
test_errors(void)
{
  static const struct { const char *text; const char *says; } cases[] = {
    { "nat,color=blue", "does not know the option “color”" },
    { "nat,mac=52:54:00:aa:bb", "mac=52:54:00:aa:bb is not valid" },
    { "nat,mac=01:00:5e:00:00:01", "unicast" },
    { "nat,net=10.0.2.0/33", "net=10.0.2.0/33 is not valid" },
    { "nat,net=banana", "subnet" },
    { "nat,net=", "subnet" },
    { "nat,net=10.0.2.0/30", "prefix 1 to 29" },
    { "nat,host=10.0.3.2", "host (gateway) address is not a host address inside the subnet" },
    { "nat,dns=10.0.2.2", "must all differ" },
    { "nat,dhcpstart=10.0.2.255", "dhcpstart" },
    { "nat,mtu=100", "576 to 65520" },
    { "nat,hostfwd=tcp:127.0.0.1:2222", "expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" },
    { "nat,hostfwd=sctp:1.2.3.4:1-:2", "not valid" },
    { "nat,hostfwd=tcp::70000-:22", "not valid" },
    { "nat,hostfwd=tcp::22-:0", "not valid" },
    { "nat,lease=52:54:00:00:00:01@10.0.9.9", "static lease" },
    { "nat,lease=nonsense", "MAC@IP" },
    { "nat,hostname=bad name", "DNS name" },
    { "nat,loopback=maybe", "on or off" },
    { "nat,,mtu=1500", "empty option" },
    { "nat,mtu", "has no value" },
    { "nat,lease-time=5", "at least 60" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(NbNatConfig) c = nb_nat_config_parse(cases[i].text, &error);
    if (c)
      g_error("“%s” was accepted", cases[i].text);
    g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_CONFIG);
    if (!strstr(error->message, cases[i].says))
      g_error("“%s”: message “%s” does not say “%s”", cases[i].text, error->message, cases[i].says);
  }
}

static void
test_hostfwd_bind_error(void)
{
  /* A forward to a port someone else holds fails with a message that says
   * which port and what to do. */
  g_autoptr(GError) error = NULL;
  g_autoptr(NbNatConfig) c = nb_nat_config_parse("nat,hostfwd=tcp:203.0.113.254:2222-:22", &error);
  g_assert_no_error(error);
  NbNat *nat = nb_nat_new(c, &error);
  g_assert_null(nat);
  g_assert_error(error, NB_NAT_ERROR, NB_NAT_ERROR_SOCKET);
  g_assert_nonnull(strstr(error->message, "203.0.113.254:2222"));
  g_assert_nonnull(strstr(error->message, "pick another"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/nat-config/defaults", test_defaults);
  g_test_add_func("/nat-config/full", test_full);
  g_test_add_func("/nat-config/errors", test_errors);
  g_test_add_func("/nat-config/hostfwd-bind-error", test_hostfwd_bind_error);
  return g_test_run();
}
