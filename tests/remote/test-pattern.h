/* The picture the display tests draw (in the guest, or into a framebuffer
 * directly) and the VNC test client expects, pixel for pixel. */
#pragma once

#include <stdint.h>

static inline uint32_t
nb_test_pattern_rgb(unsigned x, unsigned y)
{
  return ((x * 5u + y) & 0xffu) << 16 | ((y * 3u) & 0xffu) << 8 | ((x ^ y) & 0xffu);
}
