/* The --net nat option parser on arbitrary text. */
#include "net/nat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = g_strndup((const char *)data, size);
  GError *error = NULL;
  NbNatConfig *c = nb_nat_config_parse(text, &error);
  /* Exactly one of a config and an error, never both, never neither. */
  if ((c == NULL) == (error == NULL))
    abort();
  /* Every port forward it took prints as a rule that reads back the same. */
  for (guint i = 0; c && i < c->hostfwds->len; i++) {
    const NbNatHostFwd *f = &g_array_index(c->hostfwds, NbNatHostFwd, i);
    char *rule = nb_nat_hostfwd_format(f);
    NbNatHostFwd back;
    if (!nb_nat_hostfwd_parse(rule, &back, NULL) || back.proto != f->proto ||
        back.host_v6 != f->host_v6 || back.guest_v6 != f->guest_v6 ||
        back.host_port != f->host_port || back.guest_port != f->guest_port ||
        (f->host_v6 ? memcmp(back.host_addr6, f->host_addr6, 16) != 0 : back.host_addr != f->host_addr) ||
        (f->guest_v6 ? memcmp(back.guest_addr6, f->guest_addr6, 16) != 0
                     : back.guest_addr != f->guest_addr))
      abort();
    g_free(rule);
  }
  nb_nat_config_free(c);
  g_clear_error(&error);
  g_free(text);
  return 0;
}
