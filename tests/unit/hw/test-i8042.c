#include "hw/i8042.h"

#include <linux/input-event-codes.h>
#include <string.h>

typedef struct {
  NbIoBus *pio;
  NbInterrupts irqs;
  NbI8042 *kbc;
  bool level[16];
  unsigned raises[16];
  unsigned resets;
} Fixture;

static void
set_line(void *ctx, unsigned gsi, bool level)
{
  Fixture *f = ctx;
  g_assert_cmpuint(gsi, <, 16);
  if (level && !f->level[gsi])
    f->raises[gsi]++;
  f->level[gsi] = level;
}

static const NbInterruptOps irq_ops = { .set_line = set_line };

static void
on_reset(void *ctx)
{
  Fixture *f = ctx;
  f->resets++;
}

static void
fixture_init(Fixture *f, gconstpointer unused)
{
  memset(f, 0, sizeof *f);
  f->irqs = (NbInterrupts){ &irq_ops, f };
  f->pio = nb_io_bus_new("pio");
  f->kbc = nb_i8042_new(&f->irqs, on_reset, f);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_i8042_register(f->kbc, f->pio, &error));
  g_assert_no_error(error);
}

static void
fixture_clear(Fixture *f, gconstpointer unused)
{
  nb_io_bus_free(f->pio);
  nb_i8042_free(f->kbc);
}

static uint8_t
in8(Fixture *f, uint16_t port)
{
  uint8_t v = 0;
  g_assert_true(nb_io_bus_read(f->pio, port, &v, 1));
  return v;
}

static void
out8(Fixture *f, uint16_t port, uint8_t v)
{
  g_assert_true(nb_io_bus_write(f->pio, port, &v, 1));
}

static uint8_t
status(Fixture *f)
{
  return in8(f, 0x64);
}

static void
command(Fixture *f, uint8_t cmd)
{
  out8(f, 0x64, cmd);
}

/* Reads one byte as a polling driver does; fails if none is there. */
static uint8_t
read_data(Fixture *f)
{
  g_assert_true(status(f) & NB_I8042_STR_OBF);
  return in8(f, 0x60);
}

static void
expect_empty(Fixture *f)
{
  g_assert_false(status(f) & NB_I8042_STR_OBF);
}

static void
expect_bytes(Fixture *f, const uint8_t *bytes, size_t n)
{
  for (size_t i = 0; i < n; i++)
    g_assert_cmphex(read_data(f), ==, bytes[i]);
  expect_empty(f);
}

#define EXPECT(f, ...) do { \
    static const uint8_t want_[] = { __VA_ARGS__ }; \
    expect_bytes((f), want_, sizeof want_); \
  } while (0)

static void
write_ctr(Fixture *f, uint8_t ctr)
{
  command(f, 0x60);
  out8(f, 0x60, ctr);
}

static uint8_t
read_ctr(Fixture *f)
{
  command(f, 0x20);
  return read_data(f);
}

static void
aux_write(Fixture *f, uint8_t byte)
{
  command(f, 0xd4);
  out8(f, 0x60, byte);
}

static void mouse_enable(Fixture *f);

static void
test_self_tests(Fixture *f, gconstpointer unused)
{
  expect_empty(f);
  g_assert_true(status(f) & NB_I8042_STR_SYS);
  command(f, 0xaa);
  g_assert_true(status(f) & NB_I8042_STR_CMD);
  EXPECT(f, 0x55);
  command(f, 0xab);
  EXPECT(f, 0x00);
  command(f, 0xa9);
  EXPECT(f, 0x00);
}

static void
test_command_byte(Fixture *f, gconstpointer unused)
{
  uint8_t ctr = read_ctr(f);
  g_assert_cmphex(ctr, ==, NB_I8042_CTR_KBDINT | NB_I8042_CTR_SYS | NB_I8042_CTR_XLATE);
  write_ctr(f, 0x47);
  g_assert_cmphex(read_ctr(f), ==, 0x47);
  /* Disable/enable commands flip the port bits in the command byte. */
  command(f, 0xad);
  command(f, 0xa7);
  g_assert_cmphex(read_ctr(f), ==, 0x47 | 0x30);
  command(f, 0xae);
  g_assert_cmphex(read_ctr(f), ==, 0x47 | 0x20);
  command(f, 0xa8);
  g_assert_cmphex(read_ctr(f), ==, 0x47);
  /* A response raises IRQ 1 when the keyboard interrupt is on... */
  command(f, 0x20);
  g_assert_true(f->level[1]);
  in8(f, 0x60);
  g_assert_false(f->level[1]);
  /* ...and not when it is off. */
  write_ctr(f, 0x44);
  command(f, 0x20);
  g_assert_false(f->level[1]);
  EXPECT(f, 0x44);
  /* The system flag follows the command byte. */
  write_ctr(f, 0x40);
  g_assert_false(status(f) & NB_I8042_STR_SYS);
}

static void
test_aux_loop(Fixture *f, gconstpointer unused)
{
  /* Linux's i8042_check_aux: a byte written "from the mouse" comes back
   * with the aux flag and IRQ 12. */
  write_ctr(f, 0x47 & ~NB_I8042_CTR_AUXDIS);
  command(f, 0xd3);
  out8(f, 0x60, 0x5a);
  uint8_t st = status(f);
  g_assert_true(st & NB_I8042_STR_OBF);
  g_assert_true(st & NB_I8042_STR_AUXDATA);
  g_assert_true(f->level[12]);
  g_assert_false(f->level[1]);
  g_assert_cmphex(in8(f, 0x60), ==, 0x5a);
  g_assert_false(f->level[12]);
  /* And as the keyboard, without the aux flag. */
  command(f, 0xd2);
  out8(f, 0x60, 0x33);
  g_assert_false(status(f) & NB_I8042_STR_AUXDATA);
  EXPECT(f, 0x33);
}

static void
test_reset_pulse(Fixture *f, gconstpointer unused)
{
  /* Pulsing other lines does not reset. */
  command(f, 0xff);
  command(f, 0xfd);
  g_assert_cmpuint(f->resets, ==, 0);
  /* reboot=k */
  command(f, 0xfe);
  g_assert_cmpuint(f->resets, ==, 1);
  /* Output port: bit 0 low resets, with A20 kept. */
  command(f, 0xd0);
  uint8_t port = read_data(f);
  g_assert_cmphex(port & 0x03, ==, 0x03);
  command(f, 0xd1);
  out8(f, 0x60, 0x03);
  g_assert_cmpuint(f->resets, ==, 1);
  command(f, 0xd1);
  out8(f, 0x60, 0x02);
  g_assert_cmpuint(f->resets, ==, 2);
}

static void
test_keyboard_commands(Fixture *f, gconstpointer unused)
{
  out8(f, 0x60, 0xff);
  EXPECT(f, 0xfa, 0xaa);
  out8(f, 0x60, 0xf2);
  /* The ID's second byte goes through the controller's translation. */
  EXPECT(f, 0xfa, 0xab, 0x41);
  write_ctr(f, 0x05);
  out8(f, 0x60, 0xf2);
  EXPECT(f, 0xfa, 0xab, 0x83);
  out8(f, 0x60, 0xed);
  EXPECT(f, 0xfa);
  g_assert_cmpuint(nb_i8042_keyboard_leds(f->kbc), ==, 0);
  out8(f, 0x60, NB_I8042_LED_CAPS_LOCK | NB_I8042_LED_NUM_LOCK);
  EXPECT(f, 0xfa);
  g_assert_cmpuint(nb_i8042_keyboard_leds(f->kbc), ==,
                   NB_I8042_LED_CAPS_LOCK | NB_I8042_LED_NUM_LOCK);
  out8(f, 0x60, 0xf3);
  out8(f, 0x60, 0x20);
  EXPECT(f, 0xfa, 0xfa);
  out8(f, 0x60, 0xf0);
  out8(f, 0x60, 0x00);
  EXPECT(f, 0xfa, 0xfa, 0x02);
  out8(f, 0x60, 0xf0);
  out8(f, 0x60, 0x03);
  EXPECT(f, 0xfa, 0xfe);
  out8(f, 0x60, 0xee);
  EXPECT(f, 0xee);
  out8(f, 0x60, 0xf5);
  EXPECT(f, 0xfa);
  /* Scanning off: keys are not reported. */
  nb_i8042_key_event(f->kbc, KEY_A, true);
  expect_empty(f);
  out8(f, 0x60, 0xf4);
  EXPECT(f, 0xfa);
  nb_i8042_key_event(f->kbc, KEY_A, true);
  EXPECT(f, 0x1c);
  out8(f, 0x60, 0xf6);
  EXPECT(f, 0xfa);
  out8(f, 0x60, 0x12);
  EXPECT(f, 0xfe);
}

static void
test_scancodes_set2(Fixture *f, gconstpointer unused)
{
  write_ctr(f, 0x05); /* no translation */
  g_assert_true(nb_i8042_key_event(f->kbc, KEY_A, true));
  g_assert_true(f->level[1]);
  nb_i8042_key_event(f->kbc, KEY_A, false);
  nb_i8042_key_event(f->kbc, KEY_UP, true);
  nb_i8042_key_event(f->kbc, KEY_UP, false);
  nb_i8042_key_event(f->kbc, KEY_F7, true);
  EXPECT(f, 0x1c, 0xf0, 0x1c, 0xe0, 0x75, 0xe0, 0xf0, 0x75, 0x83);
  g_assert_false(f->level[1]);
  nb_i8042_key_event(f->kbc, KEY_PAUSE, true);
  g_assert_true(nb_i8042_key_event(f->kbc, KEY_PAUSE, false));
  EXPECT(f, 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77);
  /* Not a PC key. */
  g_assert_false(nb_i8042_key_event(f->kbc, KEY_PROG1, true));
  g_assert_false(nb_i8042_key_event(f->kbc, 100000, true));
  expect_empty(f);
}

/* Linux's i8042 reads one byte per interrupt: every byte needs its own
 * edge on the edge-triggered ISA line. */
static void
test_interrupt_per_byte(Fixture *f, gconstpointer unused)
{
  out8(f, 0x60, 0xf2);
  unsigned raises = f->raises[1];
  for (int i = 0; i < 3; i++) {
    g_assert_true(f->level[1]);
    g_assert_cmpuint(f->raises[1], ==, raises + i);
    in8(f, 0x60);
  }
  g_assert_false(f->level[1]);
  mouse_enable(f);
  nb_i8042_mouse_event(f->kbc, 1, 1, 0, 0);
  raises = f->raises[12];
  for (int i = 0; i < 3; i++) {
    g_assert_true(f->level[12]);
    g_assert_cmpuint(f->raises[12], ==, raises + i);
    in8(f, 0x60);
  }
  g_assert_false(f->level[12]);
}

static void
test_scancodes_translated(Fixture *f, gconstpointer unused)
{
  /* The power-on command byte translates. */
  nb_i8042_key_event(f->kbc, KEY_A, true);
  nb_i8042_key_event(f->kbc, KEY_A, false);
  nb_i8042_key_event(f->kbc, KEY_RIGHTCTRL, true);
  nb_i8042_key_event(f->kbc, KEY_RIGHTCTRL, false);
  nb_i8042_key_event(f->kbc, KEY_F7, false);
  nb_i8042_key_event(f->kbc, KEY_ESC, true);
  nb_i8042_key_event(f->kbc, KEY_PAUSE, true);
  nb_i8042_key_event(f->kbc, KEY_SYSRQ, true);
  EXPECT(f, 0x1e, 0x9e, 0xe0, 0x1d, 0xe0, 0x9d, 0xc1, 0x01,
         0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5, 0xe0, 0x2a, 0xe0, 0x37);
  /* Keyboard in set 1, controller not translating: the same codes. */
  write_ctr(f, 0x05);
  out8(f, 0x60, 0xf0);
  out8(f, 0x60, 0x01);
  EXPECT(f, 0xfa, 0xfa);
  nb_i8042_key_event(f->kbc, KEY_LEFTMETA, true);
  nb_i8042_key_event(f->kbc, KEY_LEFTMETA, false);
  nb_i8042_key_event(f->kbc, KEY_Z, false);
  EXPECT(f, 0xe0, 0x5b, 0xe0, 0xdb, 0xac);
}

static void
test_disabled_keyboard_holds_bytes(Fixture *f, gconstpointer unused)
{
  command(f, 0xad);
  nb_i8042_key_event(f->kbc, KEY_B, true);
  expect_empty(f);
  g_assert_false(f->level[1]);
  command(f, 0xae);
  EXPECT(f, 0x30);
}

static void
test_keyboard_queue_bounded(Fixture *f, gconstpointer unused)
{
  for (int i = 0; i < 10000; i++)
    nb_i8042_key_event(f->kbc, KEY_PAUSE, true);
  /* Bounded, and only whole sequences: every byte read is part of a Pause
   * sequence, and it ends on a sequence boundary. */
  static const uint8_t pause[6] = { 0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5 };
  unsigned n = 0;
  while (status(f) & NB_I8042_STR_OBF) {
    g_assert_cmphex(in8(f, 0x60), ==, pause[n % 6]);
    n++;
    g_assert_cmpuint(n, <, 1000);
  }
  g_assert_cmpuint(n % 6, ==, 0);
  g_assert_cmpuint(n, >, 0);
}

static void
mouse_enable(Fixture *f)
{
  write_ctr(f, 0x47);
  aux_write(f, 0xff);
  EXPECT(f, 0xfa, 0xaa, 0x00);
  aux_write(f, 0xf4);
  EXPECT(f, 0xfa);
}

static void
test_mouse_probe(Fixture *f, gconstpointer unused)
{
  write_ctr(f, 0x47);
  aux_write(f, 0xff);
  g_assert_true(status(f) & NB_I8042_STR_AUXDATA);
  g_assert_true(f->level[12]);
  EXPECT(f, 0xfa, 0xaa, 0x00);
  aux_write(f, 0xf2);
  EXPECT(f, 0xfa, 0x00);
  /* Status: stream mode, reporting off, resolution 2, 100 samples/s. */
  aux_write(f, 0xe9);
  EXPECT(f, 0xfa, 0x00, 0x02, 100);
  aux_write(f, 0xe8);
  aux_write(f, 0x03);
  EXPECT(f, 0xfa, 0xfa);
  aux_write(f, 0xe7);
  EXPECT(f, 0xfa);
  aux_write(f, 0xf4);
  EXPECT(f, 0xfa);
  /* A command makes the mouse drop what it had not sent yet. */
  nb_i8042_mouse_event(f->kbc, 1, 0, 0, 0);
  nb_i8042_mouse_event(f->kbc, 1, 0, 0, 0);
  g_assert_cmphex(read_data(f), ==, 0x08);
  aux_write(f, 0xf5);
  /* The byte already in the controller's buffer stays. */
  EXPECT(f, 0x01, 0xfa);
  aux_write(f, 0xe9);
  EXPECT(f, 0xfa, 0x10, 0x03, 100);
  /* The IntelliMouse knock turns the wheel on. */
  static const uint8_t knock[3] = { 200, 100, 80 };
  for (int i = 0; i < 3; i++) {
    aux_write(f, 0xf3);
    aux_write(f, knock[i]);
    EXPECT(f, 0xfa, 0xfa);
  }
  aux_write(f, 0xf2);
  EXPECT(f, 0xfa, 0x03);
  /* Wrap mode echoes until reset. */
  aux_write(f, 0xee);
  EXPECT(f, 0xfa);
  aux_write(f, 0x42);
  EXPECT(f, 0x42);
  aux_write(f, 0xec);
  EXPECT(f, 0xfa);
  aux_write(f, 0x01);
  EXPECT(f, 0xfe);
}

static void
test_mouse_packets(Fixture *f, gconstpointer unused)
{
  /* Nothing until reporting is enabled. */
  write_ctr(f, 0x47);
  nb_i8042_mouse_event(f->kbc, 5, 5, 0, 0);
  expect_empty(f);
  mouse_enable(f);

  nb_i8042_mouse_event(f->kbc, 10, 3, 0, NB_I8042_BUTTON_LEFT);
  g_assert_true(f->level[12]);
  /* Right 10, down 3 is y = -3 in PS/2 terms. */
  EXPECT(f, 0x08 | 0x01 | 0x20, 10, (uint8_t)-3);
  nb_i8042_mouse_event(f->kbc, -2, -7, 0, NB_I8042_BUTTON_RIGHT | NB_I8042_BUTTON_MIDDLE);
  EXPECT(f, 0x08 | 0x02 | 0x04 | 0x10, (uint8_t)-2, 7);
  /* A button release alone is a packet. */
  nb_i8042_mouse_event(f->kbc, 0, 0, 0, 0);
  EXPECT(f, 0x08, 0, 0);
  /* A big move splits into packets without overflow. */
  nb_i8042_mouse_event(f->kbc, 600, 0, 0, 0);
  EXPECT(f, 0x08, 255, 0, 0x08, 255, 0, 0x08, 90, 0);
  /* Motion while the guest does not read adds up, not lost. */
  for (int i = 0; i < 1000; i++)
    nb_i8042_mouse_event(f->kbc, 1, 0, 0, 0);
  int total = 0;
  while (status(f) & NB_I8042_STR_OBF) {
    uint8_t b0 = in8(f, 0x60);
    g_assert_true(b0 & 0x08);
    int dx = read_data(f);
    total += (b0 & 0x10) ? dx - 256 : dx;
    g_assert_cmphex(read_data(f), ==, 0);
  }
  g_assert_cmpint(total, ==, 1000);
  /* 2:1 scaling: small moves stay, larger ones double, and a big one
   * still fits its packets. */
  aux_write(f, 0xe7);
  EXPECT(f, 0xfa);
  nb_i8042_mouse_event(f->kbc, 2, 0, 0, 0);
  nb_i8042_mouse_event(f->kbc, 4, 0, 0, 0);
  nb_i8042_mouse_event(f->kbc, -10, 0, 0, 0);
  nb_i8042_mouse_event(f->kbc, 200, 0, 0, 0);
  EXPECT(f, 0x08, 1, 0, 0x08, 6, 0, 0x18, (uint8_t)-20, 0,
         0x08, 254, 0, 0x08, 146, 0);
  aux_write(f, 0xe6);
  EXPECT(f, 0xfa);
  /* Disabled reporting stops packets. */
  aux_write(f, 0xf5);
  EXPECT(f, 0xfa);
  nb_i8042_mouse_event(f->kbc, 1, 1, 0, 0);
  expect_empty(f);
}

static void
test_mouse_wheel_and_remote(Fixture *f, gconstpointer unused)
{
  mouse_enable(f);
  static const uint8_t knock[3] = { 200, 100, 80 };
  for (int i = 0; i < 3; i++) {
    aux_write(f, 0xf3);
    aux_write(f, knock[i]);
    EXPECT(f, 0xfa, 0xfa);
  }
  /* Wheel away from the user is negative in the fourth byte. */
  nb_i8042_mouse_event(f->kbc, 0, 0, 1, 0);
  EXPECT(f, 0x08, 0, 0, 0xff);
  /* Remote mode: motion waits for Read Data. */
  aux_write(f, 0xf0);
  EXPECT(f, 0xfa);
  nb_i8042_mouse_event(f->kbc, 4, 0, 0, 0);
  expect_empty(f);
  aux_write(f, 0xeb);
  EXPECT(f, 0xfa, 0x08, 4, 0, 0);
}

static void
test_mouse_blocked_by_aux_disable(Fixture *f, gconstpointer unused)
{
  mouse_enable(f);
  command(f, 0xa7);
  nb_i8042_mouse_event(f->kbc, 1, 0, 0, 0);
  expect_empty(f);
  g_assert_false(f->level[12]);
  command(f, 0xa8);
  EXPECT(f, 0x08, 1, 0);
}

static void
test_reset_and_garbage(Fixture *f, gconstpointer unused)
{
  GRand *rand = g_rand_new_with_seed(7);
  for (int i = 0; i < 20000; i++) {
    uint16_t port = g_rand_boolean(rand) ? 0x60 : 0x64;
    uint8_t v = (uint8_t)g_rand_int(rand);
    switch (g_rand_int_range(rand, 0, 4)) {
    case 0: in8(f, port); break;
    case 1: out8(f, port, v); break;
    case 2: nb_i8042_key_event(f->kbc, v, g_rand_boolean(rand)); break;
    case 3: nb_i8042_mouse_event(f->kbc, g_rand_int_range(rand, -5000, 5000),
                                 g_rand_int_range(rand, -5000, 5000),
                                 g_rand_int_range(rand, -3, 3), v);
            break;
    }
  }
  g_rand_free(rand);
  nb_i8042_reset(f->kbc);
  expect_empty(f);
  g_assert_false(f->level[1]);
  g_assert_false(f->level[12]);
  command(f, 0xaa);
  EXPECT(f, 0x55);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_init, fn, fixture_clear)
  ADD("/i8042/self-tests", test_self_tests);
  ADD("/i8042/command-byte", test_command_byte);
  ADD("/i8042/aux-loop", test_aux_loop);
  ADD("/i8042/reset-pulse", test_reset_pulse);
  ADD("/i8042/keyboard-commands", test_keyboard_commands);
  ADD("/i8042/scancodes-set2", test_scancodes_set2);
  ADD("/i8042/scancodes-translated", test_scancodes_translated);
  ADD("/i8042/interrupt-per-byte", test_interrupt_per_byte);
  ADD("/i8042/disabled-keyboard-holds-bytes", test_disabled_keyboard_holds_bytes);
  ADD("/i8042/keyboard-queue-bounded", test_keyboard_queue_bounded);
  ADD("/i8042/mouse-probe", test_mouse_probe);
  ADD("/i8042/mouse-packets", test_mouse_packets);
  ADD("/i8042/mouse-wheel-and-remote", test_mouse_wheel_and_remote);
  ADD("/i8042/mouse-blocked-by-aux-disable", test_mouse_blocked_by_aux_disable);
  ADD("/i8042/reset-and-garbage", test_reset_and_garbage);
#undef ADD
  return g_test_run();
}
