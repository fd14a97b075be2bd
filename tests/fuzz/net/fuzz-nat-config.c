/* The --net nat option parser on arbitrary text. */
#include "net/nat.h"

#include <stdint.h>
#include <stdlib.h>

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
  nb_nat_config_free(c);
  g_clear_error(&error);
  g_free(text);
  return 0;
}
