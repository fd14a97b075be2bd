#include "boot/smbios.h"

#include <string.h>

#define STRING_MAX 64

/* Handles: the type in the high byte, an index in the low one, so each
 * structure's is unique and a reader can tell them apart. */
#define HANDLE(type, index) ((uint16_t)((type) << 8 | (index)))
#define HANDLE_NONE    0xffff
#define HANDLE_NO_INFO 0xfffe   /* "no error information" */

typedef struct {
  GByteArray *out;
  unsigned count;
  unsigned max_size;
} Builder;

typedef struct {
  uint8_t data[64];   /* the formatted area */
  unsigned len;
  GString *strings;
  unsigned n_strings;
} Structure;

static void
put_le(uint8_t *p, uint64_t v, unsigned size)
{
  for (unsigned i = 0; i < size; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void
start(Structure *s, uint8_t type, uint8_t length, uint16_t handle)
{
  memset(s->data, 0, sizeof s->data);
  s->data[0] = type;
  s->data[1] = length;
  put_le(s->data + 2, handle, 2);
  s->len = length;
  s->strings = g_string_new(NULL);
  s->n_strings = 0;
}

/* Puts string number n (from 1) at offset; NULL or empty is "none" (0). */
static void
set_string(Structure *s, unsigned offset, const char *text)
{
  if (text == NULL || text[0] == '\0') {
    s->data[offset] = 0;
    return;
  }
  size_t n = strnlen(text, STRING_MAX);
  g_string_append_len(s->strings, text, (gssize)n);
  g_string_append_c(s->strings, '\0');
  s->data[offset] = (uint8_t)++s->n_strings;
}

static void
finish(Builder *b, Structure *s)
{
  g_byte_array_append(b->out, s->data, s->len);
  /* The string set ends with an extra NUL; with no strings, two NULs. */
  if (s->n_strings == 0)
    g_string_append_c(s->strings, '\0');
  g_string_append_c(s->strings, '\0');
  g_byte_array_append(b->out, (const uint8_t *)s->strings->str, s->strings->len);
  b->max_size = MAX(b->max_size, s->len + (unsigned)s->strings->len);
  b->count++;
  g_string_free(s->strings, TRUE);
}

static uint8_t
checksum(const uint8_t *p, size_t len)
{
  uint8_t sum = 0;
  for (size_t i = 0; i < len; i++)
    sum += p[i];
  return (uint8_t)(0x100 - sum);
}

void
nb_smbios_build(const NbSmbiosConfig *config, GBytes **anchor, GBytes **tables)
{
  Builder b = { .out = g_byte_array_new() };
  Structure s;

  /* Type 1, system information (SMBIOS 2.8: 27 bytes). The UUID's first
   * three fields are little-endian in SMBIOS since 2.6. */
  start(&s, 1, 27, HANDLE(1, 0));
  set_string(&s, 4, NB_SMBIOS_MANUFACTURER);
  set_string(&s, 5, NB_SMBIOS_PRODUCT);
  set_string(&s, 6, config->version);
  set_string(&s, 7, config->serial);
  if (config->uuid) {
    const uint8_t *u = config->uuid;
    uint8_t *d = s.data + 8;
    d[0] = u[3], d[1] = u[2], d[2] = u[1], d[3] = u[0];
    d[4] = u[5], d[5] = u[4];
    d[6] = u[7], d[7] = u[6];
    memcpy(d + 8, u + 8, 8);
  }
  s.data[24] = 0x06;                      /* woken by the power switch */
  set_string(&s, 25, NB_SMBIOS_PRODUCT);  /* SKU */
  set_string(&s, 26, "Virtual Machine");  /* family */
  finish(&b, &s);

  /* Type 3, chassis (21 bytes, no contained elements). */
  start(&s, 3, 21, HANDLE(3, 0));
  set_string(&s, 4, NB_SMBIOS_MANUFACTURER);
  s.data[5] = 0x01;                        /* other */
  s.data[9] = s.data[10] = s.data[11] = 0x03;  /* boot-up, power, thermal: safe */
  s.data[12] = 0x02;                       /* security: unknown */
  finish(&b, &s);

  /* Type 4, a processor per vCPU (SMBIOS 2.6: 42 bytes), each one socket
   * with one core. */
  for (unsigned i = 0; i < config->n_cpus; i++) {
    g_autofree char *socket = g_strdup_printf("CPU %u", i);
    start(&s, 4, 42, HANDLE(4, i));
    set_string(&s, 4, socket);
    s.data[5] = 0x03;                      /* central processor */
    s.data[6] = 0xfe;                      /* family: see the 16-bit field */
    set_string(&s, 7, NB_SMBIOS_MANUFACTURER);
    set_string(&s, 0x10, "virtual CPU");
    put_le(s.data + 0x14, 2000, 2);        /* max speed, MHz: unknown to us; a usual one */
    put_le(s.data + 0x16, 2000, 2);
    s.data[0x18] = 0x41;                   /* socket populated, CPU enabled */
    s.data[0x19] = 0x01;                   /* upgrade: other */
    put_le(s.data + 0x1a, HANDLE_NONE, 2);  /* no cache information */
    put_le(s.data + 0x1c, HANDLE_NONE, 2);
    put_le(s.data + 0x1e, HANDLE_NONE, 2);
    s.data[0x23] = s.data[0x24] = s.data[0x25] = 1;  /* cores, enabled, threads */
    put_le(s.data + 0x26, 0x0004, 2);      /* 64-bit capable */
    put_le(s.data + 0x28, 0x0001, 2);      /* family 2: other */
    finish(&b, &s);
  }

  uint64_t ram = 0;
  for (unsigned i = 0; i < config->mem->n_regions; i++)
    ram += config->mem->regions[i].size;
  uint64_t ram_kib = ram >> 10, ram_mib = ram >> 20;

  /* Type 16, the memory array (SMBIOS 2.7: 23 bytes). */
  start(&s, 16, 23, HANDLE(16, 0));
  s.data[4] = 0x01;                        /* location: other */
  s.data[5] = 0x03;                        /* system memory */
  s.data[6] = 0x06;                        /* error correction: multi-bit ECC */
  if (ram_kib < 0x80000000u) {
    put_le(s.data + 7, ram_kib, 4);
  } else {
    put_le(s.data + 7, 0x80000000u, 4);    /* see the extended field, in bytes */
    put_le(s.data + 15, ram, 8);
  }
  put_le(s.data + 11, HANDLE_NO_INFO, 2);
  put_le(s.data + 13, 1, 2);               /* one memory device */
  finish(&b, &s);

  /* Type 17, one memory device holding all RAM (SMBIOS 2.8: 40 bytes). */
  start(&s, 17, 40, HANDLE(17, 0));
  put_le(s.data + 4, HANDLE(16, 0), 2);
  put_le(s.data + 6, HANDLE_NO_INFO, 2);
  put_le(s.data + 8, 64, 2);               /* total and data width, bits */
  put_le(s.data + 10, 64, 2);
  if (ram_mib < 0x7fff) {
    put_le(s.data + 12, ram_mib, 2);
  } else {
    put_le(s.data + 12, 0x7fff, 2);        /* see the extended size */
    put_le(s.data + 0x1c, ram_mib, 4);
  }
  s.data[14] = 0x09;                       /* DIMM */
  set_string(&s, 16, "DIMM 0");
  s.data[18] = 0x07;                       /* RAM */
  put_le(s.data + 19, 0x0002, 2);          /* type detail: other */
  set_string(&s, 23, NB_SMBIOS_MANUFACTURER);
  finish(&b, &s);

  /* Type 19, an address range per RAM region (SMBIOS 2.7: 31 bytes), in
   * KiB, with the 64-bit byte addresses where they do not fit. */
  for (unsigned i = 0; i < config->mem->n_regions; i++) {
    uint64_t first = config->mem->regions[i].gpa;
    uint64_t last = first + config->mem->regions[i].size - 1;
    start(&s, 19, 31, HANDLE(19, i));
    if ((last >> 10) < 0xffffffffu) {
      put_le(s.data + 4, first >> 10, 4);
      put_le(s.data + 8, last >> 10, 4);
    } else {
      put_le(s.data + 4, 0xffffffffu, 4);
      put_le(s.data + 8, 0xffffffffu, 4);
      put_le(s.data + 15, first, 8);
      put_le(s.data + 23, last, 8);
    }
    put_le(s.data + 12, HANDLE(16, 0), 2);
    s.data[14] = 1;                        /* partition width: one device */
    finish(&b, &s);
  }

  /* Type 32, system boot: no errors. */
  start(&s, 32, 11, HANDLE(32, 0));
  finish(&b, &s);

  /* Type 127, the end. */
  start(&s, 127, 4, HANDLE(127, 0));
  finish(&b, &s);

  /* The SMBIOS 2.8 entry point, table address 0 until the firmware places
   * the tables. */
  uint8_t a[NB_SMBIOS_ANCHOR_SIZE] = { 0 };
  memcpy(a, "_SM_", 4);
  a[5] = NB_SMBIOS_ANCHOR_SIZE;
  a[6] = 2;
  a[7] = 8;
  put_le(a + 8, b.max_size, 2);
  memcpy(a + 0x10, "_DMI_", 5);
  put_le(a + 0x16, b.out->len, 2);
  put_le(a + 0x1c, b.count, 2);
  a[0x1e] = 0x28;                          /* BCD revision 2.8 */
  a[0x15] = checksum(a + 0x10, NB_SMBIOS_ANCHOR_SIZE - 0x10);
  a[4] = checksum(a, NB_SMBIOS_ANCHOR_SIZE);

  *anchor = g_bytes_new(a, sizeof a);
  *tables = g_byte_array_free_to_bytes(b.out);
}
