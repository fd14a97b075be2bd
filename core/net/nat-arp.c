/* ARP: the gateway and the DNS forwarder answer for their addresses, so the
 * guest can reach them and everything behind the gateway. */
#include "net/nat-private.h"

#define ARP_LEN 28

void
nat_arp_input(NbNat *nat, const uint8_t *frame, size_t len)
{
  if (len < NB_ETH_HLEN + ARP_LEN) {
    NAT_COUNT(nat, drop_arp);
    return;
  }
  const uint8_t *arp = frame + NB_ETH_HLEN;
  /* Ethernet hardware, IPv4 protocol, and the sizes that go with them. */
  if (nb_rd16(arp) != 1 || nb_rd16(arp + 2) != NB_ETH_TYPE_IPV4 || arp[4] != 6 || arp[5] != 4) {
    NAT_COUNT(nat, drop_arp);
    return;
  }
  uint16_t op = nb_rd16(arp + 6);
  const uint8_t *sha = arp + 8;
  uint32_t spa = nb_rd32(arp + 14);
  uint32_t tpa = nb_rd32(arp + 24);
  if (sha[0] & 1) {
    NAT_COUNT(nat, drop_arp);
    return;
  }
  if (op != 1 && op != 2) {
    NAT_COUNT(nat, drop_arp);
    return;
  }
  /* Requests and gratuitous announcements both tell us who the guest is. */
  if (spa && nat_is_guest_addr(nat, spa)) {
    memcpy(nat->guest_mac, sha, 6);
    nat->guest_mac_known = true;
    nat->guest_addr = spa;
  }
  if (op != 1 || (tpa != nat->cfg->gateway && tpa != nat->cfg->dns))
    return;
  if (spa == tpa)
    return; /* a probe for our own address: not a conflict we resolve */

  uint8_t reply[NB_ETH_HLEN + ARP_LEN];
  memcpy(reply, sha, 6);
  memcpy(reply + 6, nat->gw_mac, 6);
  nb_wr16(reply + 12, NB_ETH_TYPE_ARP);
  uint8_t *r = reply + NB_ETH_HLEN;
  nb_wr16(r, 1);
  nb_wr16(r + 2, NB_ETH_TYPE_IPV4);
  r[4] = 6;
  r[5] = 4;
  nb_wr16(r + 6, 2);
  memcpy(r + 8, nat->gw_mac, 6);
  nb_wr32(r + 14, tpa);
  memcpy(r + 18, sha, 6);
  nb_wr32(r + 24, spa);
  nat_deliver(nat, reply, sizeof reply, NULL);
}
