/* Keysym to key code maps: the whole US layout as a PC keyboard has it,
 * and the German and French layouts' own characters; and QEMU's key
 * numbers (extended key events) against the PS/2 keyboard's own codes. */
#include "hw/i8042.h"
#include "keymap.h"
#include "vnc-qemu.h"

#include <glib.h>
#include <linux/input-event-codes.h>

typedef struct {
  const char *plain, *shifted;
  const uint16_t *codes;
} Row;

static void
check_row(const NbKeymap *map, const char *plain, const char *shifted, const uint16_t *codes)
{
  for (unsigned i = 0; plain[i]; i++) {
    NbKeyStroke k;
    g_assert_true(nb_keymap_lookup(map, (unsigned char)plain[i], &k));
    if (k.keycode != codes[i] || k.modifiers != 0)
      g_error("'%c': key %u mods %u, expected key %u", plain[i], k.keycode, k.modifiers, codes[i]);
    g_assert_true(nb_keymap_lookup(map, (unsigned char)shifted[i], &k));
    if (k.keycode != codes[i] || k.modifiers != NB_KEYMAP_SHIFT)
      g_error("'%c': key %u mods %u, expected Shift+%u", shifted[i], k.keycode, k.modifiers, codes[i]);
  }
}

static void
test_us(void)
{
  const NbKeymap *us = nb_keymap_get("us");
  g_assert_nonnull(us);
  static const uint16_t row1[] = { KEY_GRAVE, KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7,
                                   KEY_8, KEY_9, KEY_0, KEY_MINUS, KEY_EQUAL };
  check_row(us, "`1234567890-=", "~!@#$%^&*()_+", row1);
  static const uint16_t row2[] = { KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O,
                                   KEY_P, KEY_LEFTBRACE, KEY_RIGHTBRACE, KEY_BACKSLASH };
  check_row(us, "qwertyuiop[]\\", "QWERTYUIOP{}|", row2);
  static const uint16_t row3[] = { KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L,
                                   KEY_SEMICOLON, KEY_APOSTROPHE };
  check_row(us, "asdfghjkl;'", "ASDFGHJKL:\"", row3);
  static const uint16_t row4[] = { KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N, KEY_M, KEY_COMMA,
                                   KEY_DOT, KEY_SLASH };
  check_row(us, "zxcvbnm,./", "ZXCVBNM<>?", row4);
  /* Every printable ASCII character has a key. */
  for (unsigned c = 0x20; c < 0x7f; c++) {
    NbKeyStroke k;
    if (!nb_keymap_lookup(us, c, &k))
      g_error("US layout cannot type '%c'", c);
  }
  /* Keys outside the characters: the same everywhere, modifiers untouched. */
  static const struct { uint32_t sym; uint16_t code; } fixed[] = {
    { 0xff0d, KEY_ENTER }, { 0xff08, KEY_BACKSPACE }, { 0xff09, KEY_TAB }, { 0xff1b, KEY_ESC },
    { 0xffbe, KEY_F1 }, { 0xffc9, KEY_F12 }, { 0xff51, KEY_LEFT }, { 0xff54, KEY_DOWN },
    { 0xffe1, KEY_LEFTSHIFT }, { 0xffe3, KEY_LEFTCTRL }, { 0xffe9, KEY_LEFTALT },
    { 0xfe03, KEY_RIGHTALT }, { 0xffb5, KEY_KP5 }, { 0xff8d, KEY_KPENTER }, { 0xffff, KEY_DELETE },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(fixed); i++) {
    NbKeyStroke k;
    g_assert_true(nb_keymap_lookup(us, fixed[i].sym, &k));
    g_assert_cmpuint(k.keycode, ==, fixed[i].code);
    g_assert_cmpuint(k.modifiers, ==, NB_KEYMAP_ANY_MODS);
  }
  NbKeyStroke k;
  g_assert_false(nb_keymap_lookup(us, 0xe4, &k));   /* no ä on a US keyboard */
  g_assert_null(nb_keymap_get("klingon"));
}

static void
expect(const char *layout, uint32_t sym, uint16_t code, uint8_t mods)
{
  NbKeyStroke k;
  if (!nb_keymap_lookup(nb_keymap_get(layout), sym, &k))
    g_error("%s: keysym 0x%x has no key", layout, sym);
  if (k.keycode != code || k.modifiers != mods)
    g_error("%s: keysym 0x%x is key %u mods %u, expected %u mods %u", layout, sym, k.keycode,
            k.modifiers, code, mods);
}

static void
test_de(void)
{
  expect("de", 0xe4, KEY_APOSTROPHE, 0);            /* ä */
  expect("de", 0xc4, KEY_APOSTROPHE, NB_KEYMAP_SHIFT);
  expect("de", 0xf6, KEY_SEMICOLON, 0);             /* ö */
  expect("de", 0xfc, KEY_LEFTBRACE, 0);             /* ü */
  expect("de", 0xdc, KEY_LEFTBRACE, NB_KEYMAP_SHIFT);
  expect("de", 0xdf, KEY_MINUS, 0);                 /* ß */
  expect("de", 'z', KEY_Y, 0);
  expect("de", 'Y', KEY_Z, NB_KEYMAP_SHIFT);
  expect("de", '@', KEY_Q, NB_KEYMAP_ALTGR);
  expect("de", 0x20ac, KEY_E, NB_KEYMAP_ALTGR);     /* € */
  expect("de", '"', KEY_2, NB_KEYMAP_SHIFT);
  expect("de", '/', KEY_7, NB_KEYMAP_SHIFT);
  expect("de", '{', KEY_7, NB_KEYMAP_ALTGR);
  expect("de", '|', KEY_102ND, NB_KEYMAP_ALTGR);
  expect("de", '-', KEY_SLASH, 0);
  expect("de", 0xa7, KEY_3, NB_KEYMAP_SHIFT);       /* § */
  /* ^ and ` exist only as dead keys: the key, then Space. */
  expect("de", '^', KEY_GRAVE, NB_KEYMAP_THEN_SPACE);
  expect("de", '`', KEY_EQUAL, NB_KEYMAP_SHIFT | NB_KEYMAP_THEN_SPACE);
  /* Every printable ASCII character can be typed. */
  for (unsigned c = 0x20; c < 0x7f; c++) {
    NbKeyStroke k;
    if (!nb_keymap_lookup(nb_keymap_get("de"), c, &k))
      g_error("German layout cannot type '%c'", c);
  }
}

static void
test_fr(void)
{
  expect("fr", 0xe9, KEY_2, 0);                     /* é */
  expect("fr", 0xe8, KEY_7, 0);                     /* è */
  expect("fr", 0xe7, KEY_9, 0);                     /* ç */
  expect("fr", 0xe0, KEY_0, 0);                     /* à */
  expect("fr", 0xf9, KEY_APOSTROPHE, 0);            /* ù */
  expect("fr", 'a', KEY_Q, 0);
  expect("fr", 'Q', KEY_A, NB_KEYMAP_SHIFT);
  expect("fr", 'm', KEY_SEMICOLON, 0);
  expect("fr", 'w', KEY_Z, 0);
  expect("fr", '1', KEY_1, NB_KEYMAP_SHIFT);
  expect("fr", '&', KEY_1, 0);
  expect("fr", '@', KEY_0, NB_KEYMAP_ALTGR);
  expect("fr", 0x20ac, KEY_E, NB_KEYMAP_ALTGR);
  expect("fr", '!', KEY_SLASH, 0);
  expect("fr", ',', KEY_M, 0);
  expect("fr", '^', KEY_9, NB_KEYMAP_ALTGR);        /* AltGr+9 is a plain ^ */
  for (unsigned c = 0x20; c < 0x7f; c++) {
    NbKeyStroke k;
    if (!nb_keymap_lookup(nb_keymap_get("fr"), c, &k))
      g_error("French layout cannot type '%c'", c);
  }
}

static void
no_irq(void *ctx, unsigned gsi, bool level)
{
}

/* A QEMU key number is the set 1 code a PC keyboard sends for the key
 * (0x80 added after E0): every key the emulated PS/2 keyboard has, typed on
 * it behind the controller's set 1 translation, must come back as itself
 * from nb_vnc_qemu_keycode. Two tables written apart check each other. */
static void
test_qemu_key_numbers(void)
{
  static const NbInterruptOps ops = { .set_line = no_irq };
  NbInterrupts irqs = { &ops, NULL };
  NbIoBus *pio = nb_io_bus_new("pio");
  NbI8042 *kbc = nb_i8042_new(&irqs, NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_i8042_register(kbc, pio, &error));
  unsigned checked = 0;
  for (unsigned code = 1; code < KEY_MAX; code++) {
    if (!nb_i8042_key_event(kbc, code, true))
      continue;
    uint8_t bytes[8], st;
    unsigned n = 0;
    while (nb_io_bus_read(pio, NB_I8042_COMMAND_PORT, &st, 1) && (st & NB_I8042_STR_OBF) && n < 8)
      g_assert_true(nb_io_bus_read(pio, NB_I8042_DATA_PORT, &bytes[n++], 1));
    nb_i8042_key_event(kbc, code, false);
    while (nb_io_bus_read(pio, NB_I8042_COMMAND_PORT, &st, 1) && (st & NB_I8042_STR_OBF))
      g_assert_true(nb_io_bus_read(pio, NB_I8042_DATA_PORT, &st, 1));
    unsigned qnum;
    if (n == 1)
      qnum = bytes[0];
    else if (n == 2 && bytes[0] == 0xe0)
      qnum = 0x80 | bytes[1];
    else
      continue;   /* Pause and Print Screen: longer sequences, below */
    if (nb_vnc_qemu_keycode(qnum) != code)
      g_error("key %u is set 1 code %#x, but QEMU key number %#x gives key %u", code, qnum, qnum,
              nb_vnc_qemu_keycode(qnum));
    checked++;
  }
  g_assert_cmpuint(checked, >, 100);
  /* QEMU's own numbers for the keys with longer sequences. */
  g_assert_cmpuint(nb_vnc_qemu_keycode(0xc6), ==, KEY_PAUSE);
  g_assert_cmpuint(nb_vnc_qemu_keycode(0xb7), ==, KEY_SYSRQ);
  g_assert_cmpuint(nb_vnc_qemu_keycode(0x54), ==, KEY_SYSRQ);
  g_assert_cmpuint(nb_vnc_qemu_keycode(0), ==, 0);
  g_assert_cmpuint(nb_vnc_qemu_keycode(0x80), ==, 0);
  g_assert_cmpuint(nb_vnc_qemu_keycode(0xffffffff), ==, 0);
  nb_io_bus_free(pio);
  nb_i8042_free(kbc);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/keymap/us", test_us);
  g_test_add_func("/keymap/de", test_de);
  g_test_add_func("/keymap/fr", test_fr);
  g_test_add_func("/keymap/qemu-key-numbers", test_qemu_key_numbers);
  return g_test_run();
}
