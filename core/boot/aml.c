#include "boot/aml.h"

#include <gio/gio.h>
#include <stdarg.h>
#include <string.h>

/* Opcodes (ACPI 6.5, section 20.3). */
#define AML_ZERO          0x00
#define AML_ONE           0x01
#define AML_NAME          0x08
#define AML_BYTE_PREFIX   0x0a
#define AML_WORD_PREFIX   0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE         0x10
#define AML_BUFFER        0x11
#define AML_PACKAGE       0x12
#define AML_METHOD        0x14
#define AML_DUAL_NAME     0x2e
#define AML_MULTI_NAME    0x2f
#define AML_EXT_PREFIX    0x5b
#define AML_EXT_DEVICE    0x82
#define AML_ROOT_CHAR     0x5c
#define AML_PARENT_CHAR   0x5e
#define AML_RETURN        0xa4

/* Resource descriptor tags (ACPI 6.5, section 6.4). */
#define RES_IRQ_NOFLAGS   0x22   /* small item 0x04, length 2 */
#define RES_IO            0x47   /* small item 0x08, length 7 */
#define RES_END_TAG       0x79   /* small item 0x0f, length 1 */
#define RES_MEMORY32_FIXED 0x86
#define RES_DWORD_SPACE   0x87
#define RES_WORD_SPACE    0x88
#define RES_QWORD_SPACE   0x8a

#define SPACE_MEMORY      0
#define SPACE_IO          1
#define SPACE_BUS         2
/* General flags of an address space descriptor: a window a bridge produces,
 * positive decode, both ends fixed. */
#define SPACE_FLAGS_WINDOW 0x0c

typedef enum { FRAME_PACKAGE, FRAME_SCOPE } FrameKind;

typedef struct {
  FrameKind kind;
  size_t start;      /* where the PkgLength goes, once known */
  unsigned count;    /* elements so far, for a Package */
} Frame;

struct NbAml {
  GByteArray *code;
  GArray *frames;
  char *problem;     /* the first thing that went wrong, or NULL */
};

G_GNUC_PRINTF(2, 3) static void
fail(NbAml *aml, const char *format, ...)
{
  if (aml->problem)
    return;
  va_list args;
  va_start(args, format);
  aml->problem = g_strdup_vprintf(format, args);
  va_end(args);
}

NbAml *
nb_aml_new(void)
{
  NbAml *aml = g_new0(NbAml, 1);
  aml->code = g_byte_array_new();
  aml->frames = g_array_new(FALSE, FALSE, sizeof(Frame));
  return aml;
}

void
nb_aml_free(NbAml *aml)
{
  if (aml == NULL)
    return;
  g_byte_array_unref(aml->code);
  g_array_unref(aml->frames);
  g_free(aml->problem);
  g_free(aml);
}

GBytes *
nb_aml_finish(NbAml *aml, GError **error)
{
  if (aml->frames->len != 0)
    fail(aml, "%u package(s) or scope(s) still open at the end", aml->frames->len);
  if (aml->problem) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "bad AML: %s", aml->problem);
    return NULL;
  }
  return g_bytes_new(aml->code->data, aml->code->len);
}

static void
emit(NbAml *aml, const void *data, size_t len)
{
  g_byte_array_append(aml->code, data, (guint)len);
}

static void
emit_byte(NbAml *aml, uint8_t b)
{
  emit(aml, &b, 1);
}

static void
emit_le(NbAml *aml, uint64_t value, unsigned bytes)
{
  for (unsigned i = 0; i < bytes; i++)
    emit_byte(aml, (uint8_t)(value >> (8 * i)));
}

/* One more element of the enclosing Package, if there is one. */
static void
item_done(NbAml *aml)
{
  if (aml->frames->len == 0)
    return;
  Frame *top = &g_array_index(aml->frames, Frame, aml->frames->len - 1);
  top->count++;
}

unsigned
nb_aml_pkg_length_encode(size_t content_len, uint8_t out[4])
{
  /* The length counts its own bytes too. */
  if (content_len + 1 <= 0x3f) {
    out[0] = (uint8_t)(content_len + 1);
    return 1;
  }
  for (unsigned n = 2; n <= 4; n++) {
    size_t total = content_len + n;
    if (total < ((size_t)1 << (4 + 8 * (n - 1)))) {
      out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
      for (unsigned i = 1; i < n; i++)
        out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
      return n;
    }
  }
  return 0;
}

static bool
name_char_ok(char c, bool first)
{
  return c == '_' || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

/* NameString: prefixes, then one, two (DualNamePrefix) or more
 * (MultiNamePrefix) four-character segments; a bare prefix ends in NullName. */
static void
emit_name_string(NbAml *aml, const char *path)
{
  const char *p = path;
  if (*p == '\\')
    emit_byte(aml, AML_ROOT_CHAR), p++;
  else
    while (*p == '^')
      emit_byte(aml, AML_PARENT_CHAR), p++;

  g_auto(GStrv) segs = *p ? g_strsplit(p, ".", -1) : g_new0(char *, 1);
  guint n = g_strv_length(segs);
  if (n > 255) {
    fail(aml, "name “%s” has too many segments", path);
    return;
  }
  if (n == 0)
    emit_byte(aml, AML_ZERO);   /* NullName */
  else if (n == 2)
    emit_byte(aml, AML_DUAL_NAME);
  else if (n > 2)
    emit_byte(aml, AML_MULTI_NAME), emit_byte(aml, (uint8_t)n);

  for (guint i = 0; i < n; i++) {
    size_t len = strlen(segs[i]);
    bool ok = len >= 1 && len <= 4;
    for (size_t j = 0; ok && j < len; j++)
      ok = name_char_ok(segs[i][j], j == 0);
    if (!ok) {
      fail(aml, "“%s” is not a valid name (segments are 1-4 of A-Z, 0-9, _)", path);
        return;
    }
    char seg[4] = { '_', '_', '_', '_' };
    memcpy(seg, segs[i], len);
    emit(aml, seg, 4);
  }
}

void
nb_aml_integer(NbAml *aml, uint64_t value)
{
  if (value == 0)
    emit_byte(aml, AML_ZERO);
  else if (value == 1)
    emit_byte(aml, AML_ONE);
  else if (value <= 0xff)
    emit_byte(aml, AML_BYTE_PREFIX), emit_le(aml, value, 1);
  else if (value <= 0xffff)
    emit_byte(aml, AML_WORD_PREFIX), emit_le(aml, value, 2);
  else if (value <= 0xffffffff)
    emit_byte(aml, AML_DWORD_PREFIX), emit_le(aml, value, 4);
  else
    emit_byte(aml, AML_QWORD_PREFIX), emit_le(aml, value, 8);
  item_done(aml);
}

void
nb_aml_string(NbAml *aml, const char *text)
{
  for (const char *c = text; *c; c++) {
    if ((unsigned char)*c > 0x7f) {
      fail(aml, "strings are ASCII only: “%s”", text);
        return;
    }
  }
  emit_byte(aml, AML_STRING_PREFIX);
  emit(aml, text, strlen(text) + 1);
  item_done(aml);
}

bool
nb_aml_eisaid_encode(const char *id, uint32_t *out)
{
  /* Three letters of five bits each, then four hex digits, big-endian in a
   * little-endian integer. */
  if (id == NULL || strlen(id) != 7)
    return false;
  uint32_t letters = 0;
  for (int i = 0; i < 3; i++) {
    if (id[i] < 'A' || id[i] > 'Z')
      return false;
    letters = letters << 5 | (uint32_t)(id[i] - 0x40);
  }
  uint32_t digits = 0;
  for (int i = 3; i < 7; i++) {
    int v = g_ascii_xdigit_value(id[i]);
    if (v < 0 || g_ascii_islower(id[i]))
      return false;
    digits = digits << 4 | (uint32_t)v;
  }
  uint8_t b[4] = { (uint8_t)(letters >> 8), (uint8_t)letters, (uint8_t)(digits >> 8),
                   (uint8_t)digits };
  *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  return true;
}

void
nb_aml_eisaid(NbAml *aml, const char *id)
{
  uint32_t v;
  if (!nb_aml_eisaid_encode(id, &v)) {
    fail(aml, "“%s” is not an EISA ID (three capitals and four hex digits)", id);
    return;
  }
  nb_aml_integer(aml, v);
}

static void
emit_pkg_length(NbAml *aml, size_t content_len)
{
  uint8_t pl[4];
  unsigned n = nb_aml_pkg_length_encode(content_len, pl);
  if (n == 0) {
    fail(aml, "object of %zu bytes is too long", content_len);
    return;
  }
  emit(aml, pl, n);
}

void
nb_aml_buffer(NbAml *aml, const void *data, size_t len)
{
  /* The size operand is part of what PkgLength covers. */
  NbAml *size = nb_aml_new();
  nb_aml_integer(size, len);
  emit_byte(aml, AML_BUFFER);
  emit_pkg_length(aml, size->code->len + len);
  emit(aml, size->code->data, size->code->len);
  emit(aml, data, len);
  nb_aml_free(size);
  item_done(aml);
}

static void
push(NbAml *aml, FrameKind kind)
{
  Frame f = { .kind = kind, .start = aml->code->len, .count = 0 };
  g_array_append_val(aml->frames, f);
}

void
nb_aml_package_begin(NbAml *aml)
{
  emit_byte(aml, AML_PACKAGE);
  push(aml, FRAME_PACKAGE);
}

void
nb_aml_name(NbAml *aml, const char *name)
{
  emit_byte(aml, AML_NAME);
  emit_name_string(aml, name);
}

void
nb_aml_return(NbAml *aml)
{
  emit_byte(aml, AML_RETURN);
}

void
nb_aml_scope_begin(NbAml *aml, const char *path)
{
  emit_byte(aml, AML_SCOPE);
  push(aml, FRAME_SCOPE);
  emit_name_string(aml, path);
}

void
nb_aml_device_begin(NbAml *aml, const char *name)
{
  emit_byte(aml, AML_EXT_PREFIX);
  emit_byte(aml, AML_EXT_DEVICE);
  push(aml, FRAME_SCOPE);
  emit_name_string(aml, name);
}

void
nb_aml_method_begin(NbAml *aml, const char *name, unsigned n_args, bool serialized)
{
  if (n_args > 7) {
    fail(aml, "method %s cannot take %u arguments (at most 7)", name, n_args);
    return;
  }
  emit_byte(aml, AML_METHOD);
  push(aml, FRAME_SCOPE);
  emit_name_string(aml, name);
  emit_byte(aml, (uint8_t)(n_args | (serialized ? 0x08 : 0)));
}

void
nb_aml_end(NbAml *aml)
{
  if (aml->frames->len == 0) {
    fail(aml, "nb_aml_end() without an open scope");
    return;
  }
  Frame f = g_array_index(aml->frames, Frame, aml->frames->len - 1);
  g_array_set_size(aml->frames, aml->frames->len - 1);

  /* What goes between the opcode and the contents: PkgLength, and for a
   * Package its element count. */
  uint8_t head[5];
  unsigned head_len = 0;
  size_t content = aml->code->len - f.start;
  if (f.kind == FRAME_PACKAGE) {
    if (f.count > 255) {
      fail(aml, "a Package holds at most 255 elements, not %u", f.count);
        return;
    }
    content += 1;
  }
  head_len = nb_aml_pkg_length_encode(content, head);
  if (head_len == 0) {
    fail(aml, "object of %zu bytes is too long", content);
    return;
  }
  if (f.kind == FRAME_PACKAGE)
    head[head_len++] = (uint8_t)f.count;
  guint old_len = aml->code->len;
  g_byte_array_set_size(aml->code, old_len + head_len);
  memmove(aml->code->data + f.start + head_len, aml->code->data + f.start, old_len - f.start);
  memcpy(aml->code->data + f.start, head, head_len);

  if (f.kind == FRAME_PACKAGE)
    item_done(aml);
}

static void
res_le(GByteArray *res, uint64_t value, unsigned bytes)
{
  for (unsigned i = 0; i < bytes; i++) {
    uint8_t b = (uint8_t)(value >> (8 * i));
    g_byte_array_append(res, &b, 1);
  }
}

void
nb_aml_res_io(GByteArray *res, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
  res_le(res, RES_IO, 1);
  res_le(res, 1, 1);   /* decodes 16 address bits */
  res_le(res, min, 2);
  res_le(res, max, 2);
  res_le(res, align, 1);
  res_le(res, len, 1);
}

void
nb_aml_res_irq_noflags(GByteArray *res, unsigned irq)
{
  g_return_if_fail(irq < 16);
  res_le(res, RES_IRQ_NOFLAGS, 1);
  res_le(res, 1u << irq, 2);
}

void
nb_aml_res_memory32_fixed(GByteArray *res, uint32_t base, uint32_t len, bool writable)
{
  res_le(res, RES_MEMORY32_FIXED, 1);
  res_le(res, 9, 2);
  res_le(res, writable ? 1 : 0, 1);
  res_le(res, base, 4);
  res_le(res, len, 4);
}

/* Word, DWord and QWord address space descriptors share one shape:
 * type, flags, then granularity, min, max, translation and length, each
 * `width` bytes wide. */
static void
res_space(GByteArray *res, uint8_t tag, unsigned width, uint8_t space, uint8_t type_flags,
          uint64_t min, uint64_t max)
{
  res_le(res, tag, 1);
  res_le(res, 3 + 5 * width, 2);
  res_le(res, space, 1);
  res_le(res, SPACE_FLAGS_WINDOW, 1);
  res_le(res, type_flags, 1);
  res_le(res, 0, width);            /* granularity: none, both ends fixed */
  res_le(res, min, width);
  res_le(res, max, width);
  res_le(res, 0, width);            /* no translation */
  res_le(res, max - min + 1, width);
}

void
nb_aml_res_word_bus_number(GByteArray *res, uint16_t min, uint16_t max)
{
  g_return_if_fail(min <= max);
  res_space(res, RES_WORD_SPACE, 2, SPACE_BUS, 0, min, max);
}

void
nb_aml_res_dword_io(GByteArray *res, uint32_t min, uint32_t max)
{
  g_return_if_fail(min <= max);
  /* _RNG: the window covers both ISA and non-ISA ranges. */
  res_space(res, RES_DWORD_SPACE, 4, SPACE_IO, 0x03, min, max);
}

static uint8_t
memory_flags(bool cacheable)
{
  /* Read-write; _MEM cacheable (1) or non-cacheable (0). */
  return (uint8_t)(0x01 | (cacheable ? 0x02 : 0));
}

void
nb_aml_res_dword_memory(GByteArray *res, uint32_t min, uint32_t max, bool cacheable)
{
  g_return_if_fail(min <= max);
  res_space(res, RES_DWORD_SPACE, 4, SPACE_MEMORY, memory_flags(cacheable), min, max);
}

void
nb_aml_res_qword_memory(GByteArray *res, uint64_t min, uint64_t max, bool cacheable)
{
  g_return_if_fail(min <= max);
  res_space(res, RES_QWORD_SPACE, 8, SPACE_MEMORY, memory_flags(cacheable), min, max);
}

void
nb_aml_resource_template(NbAml *aml, const GByteArray *res)
{
  g_autoptr(GByteArray) buf = g_byte_array_sized_new(res->len + 2);
  g_byte_array_append(buf, res->data, res->len);
  /* End tag; a zero checksum means "treat as correct". */
  res_le(buf, RES_END_TAG, 1);
  res_le(buf, 0, 1);
  nb_aml_buffer(aml, buf->data, buf->len);
}
