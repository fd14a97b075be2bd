/* Parsing of sizes as users type them: "512M", "2G", "4096". */
#pragma once

#include <glib.h>
#include <stdint.h>

#define NB_SIZE_ERROR (nb_size_error_quark())
GQuark nb_size_error_quark(void);

typedef enum {
  NB_SIZE_ERROR_INVALID,
  NB_SIZE_ERROR_OVERFLOW,
} NbSizeError;

/* Accepts a decimal number with an optional binary suffix K, M, G or T
 * (case-insensitive, optional "iB"/"B"). A bare number is bytes. */
gboolean nb_size_parse(const char *text, uint64_t *out_bytes, GError **error);

/* Formats bytes as the largest exact binary unit ("512M", "5G", "1536K"). */
char *nb_size_format(uint64_t bytes);
