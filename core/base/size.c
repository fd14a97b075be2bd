#include "base/size.h"

#include <errno.h>
#include <stdlib.h>

G_DEFINE_QUARK(nb-size-error-quark, nb_size_error)

gboolean
nb_size_parse(const char *text, uint64_t *out_bytes, GError **error)
{
  if (text == NULL || *text == '\0') {
    g_set_error(error, NB_SIZE_ERROR, NB_SIZE_ERROR_INVALID,
                "empty size: expected a number with an optional K, M, G or T suffix, like 512M");
    return FALSE;
  }
  if (!g_ascii_isdigit(text[0])) {
    g_set_error(error, NB_SIZE_ERROR, NB_SIZE_ERROR_INVALID,
                "“%s” is not a size: expected a number with an optional K, M, G or T suffix, like 512M",
                text);
    return FALSE;
  }

  errno = 0;
  char *end = NULL;
  guint64 number = g_ascii_strtoull(text, &end, 10);
  if (errno == ERANGE) {
    g_set_error(error, NB_SIZE_ERROR, NB_SIZE_ERROR_OVERFLOW, "size “%s” is too large", text);
    return FALSE;
  }

  unsigned shift = 0;
  switch (g_ascii_toupper(*end)) {
  case '\0': break;
  case 'K': shift = 10; end++; break;
  case 'M': shift = 20; end++; break;
  case 'G': shift = 30; end++; break;
  case 'T': shift = 40; end++; break;
  case 'B': break;
  default:
    g_set_error(error, NB_SIZE_ERROR, NB_SIZE_ERROR_INVALID,
                "“%s” has an unknown unit: use K, M, G or T (for example 512M or 2G)", text);
    return FALSE;
  }
  if (shift && g_ascii_toupper(*end) == 'I' && g_ascii_toupper(end[1]) == 'B')
    end += 2;
  else if (g_ascii_toupper(*end) == 'B')
    end++;
  if (*end != '\0') {
    g_set_error(error, NB_SIZE_ERROR, NB_SIZE_ERROR_INVALID,
                "“%s” has trailing characters: expected a number with an optional K, M, G or T suffix",
                text);
    return FALSE;
  }
  if (shift && number > (G_MAXUINT64 >> shift)) {
    g_set_error(error, NB_SIZE_ERROR, NB_SIZE_ERROR_OVERFLOW, "size “%s” is too large", text);
    return FALSE;
  }
  *out_bytes = number << shift;
  return TRUE;
}

char *
nb_size_format(uint64_t bytes)
{
  static const char units[] = "KMGT";
  int unit = -1;
  while (unit < 3 && bytes != 0 && (bytes & 1023) == 0) {
    bytes >>= 10;
    unit++;
  }
  if (unit < 0)
    return g_strdup_printf("%" G_GUINT64_FORMAT, bytes);
  return g_strdup_printf("%" G_GUINT64_FORMAT "%c", bytes, units[unit]);
}
