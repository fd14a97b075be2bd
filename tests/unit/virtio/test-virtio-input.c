/* virtio-input as the Linux virtio_input driver sees it: identity and
 * capabilities through the config selects, events in its buffers, and what
 * happens when it gives none. */
#include "virtio-test-driver.h"
#include "virtio/virtio-input.h"

#include <linux/input-event-codes.h>
#include <string.h>

static unsigned
cfg_select(TestDriver *td, uint8_t select, uint8_t subsel, uint8_t *u)
{
  td_bar_write(td, NB_VIRTIO_PCI_DEVICE_OFF + 0, select, 1);
  td_bar_write(td, NB_VIRTIO_PCI_DEVICE_OFF + 1, subsel, 1);
  unsigned size = (unsigned)td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 2, 1);
  for (unsigned i = 0; i < 128; i++)
    u[i] = (uint8_t)td_bar_read(td, NB_VIRTIO_PCI_DEVICE_OFF + 8 + i, 1);
  return size;
}

static bool
bit(const uint8_t *u, unsigned b)
{
  return u[b / 8] & (1u << (b % 8));
}

static NbVirtioInput *
start(TestDriver *td, NbVirtioInputKind kind)
{
  td_init(td);
  g_autoptr(GError) error = NULL;
  NbVirtioInput *in = nb_virtio_input_new(td->mem, kind, &error);
  g_assert_no_error(error);
  td_add(td, nb_virtio_input_pci_device(in));
  g_assert_cmpuint(td_cfg_read(td, NB_PCI_DEVICE_ID, 2), ==, 0x1040 + 18);
  g_assert_true(td_negotiate(td, UINT64_C(1) << NB_VIRTIO_F_VERSION_1));
  td_setup_queue(td, 0, 64);
  td_setup_queue(td, 1, 8);
  td_driver_ok(td);
  return in;
}

typedef struct {
  uint16_t type, code;
  int32_t value;
} Ev;

/* Offers n 8-byte buffers on the event queue. */
static uint64_t
offer(TestDriver *td, unsigned n)
{
  uint64_t base = td_alloc(td, 8 * n);
  for (unsigned i = 0; i < n; i++) {
    TdBuf b = { base + 8 * i, 8, true };
    td_submit(td, 0, &b, 1);
  }
  td_kick(td, 0);
  return base;
}

static unsigned
collect(TestDriver *td, uint64_t base, Ev *out, unsigned max)
{
  unsigned n = 0;
  uint32_t id, len;
  while (n < max && td_wait_used(td, 0, &id, &len, n == 0 ? 3000 : 300)) {
    g_assert_cmpuint(len, ==, 8);
    const uint8_t *p = td_ptr(td, base + 8 * n, 8);
    out[n].type = (uint16_t)(p[0] | p[1] << 8);
    out[n].code = (uint16_t)(p[2] | p[3] << 8);
    out[n].value = (int32_t)((uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24);
    n++;
  }
  return n;
}

static void
test_keyboard(void)
{
  TestDriver td;
  NbVirtioInput *in = start(&td, NB_VIRTIO_INPUT_KEYBOARD);
  uint8_t u[128];
  unsigned size = cfg_select(&td, NB_VIRTIO_INPUT_CFG_ID_NAME, 0, u);
  g_assert_cmpuint(size, ==, strlen("Nestbox Keyboard"));
  g_assert_cmpmem(u, size, "Nestbox Keyboard", size);
  size = cfg_select(&td, NB_VIRTIO_INPUT_CFG_ID_DEVIDS, 0, u);
  g_assert_cmpuint(size, ==, 8);
  g_assert_cmpuint(u[0], ==, 0x06);   /* BUS_VIRTUAL */
  size = cfg_select(&td, NB_VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, u);
  g_assert_cmpuint(size, >, KEY_Z / 8);
  g_assert_true(bit(u, KEY_A) && bit(u, KEY_102ND) && bit(u, KEY_RIGHTALT) && bit(u, KEY_ESC));
  g_assert_false(bit(u, 0));
  g_assert_cmpuint(cfg_select(&td, NB_VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, u), ==, 0);
  g_assert_cmpuint(cfg_select(&td, NB_VIRTIO_INPUT_CFG_EV_BITS, EV_REP, u), ==, 0);
  g_assert_cmpuint(cfg_select(&td, NB_VIRTIO_INPUT_CFG_EV_BITS, EV_LED, u), ==, 1);
  g_assert_cmpuint(cfg_select(&td, 0x77, 0, u), ==, 0);
  /* The payload is read only. */
  td_bar_write(&td, NB_VIRTIO_PCI_DEVICE_OFF + 2, 0x55, 1);
  td_bar_write(&td, NB_VIRTIO_PCI_DEVICE_OFF + 8, 0x55, 1);
  g_assert_cmpuint(cfg_select(&td, NB_VIRTIO_INPUT_CFG_ID_NAME, 0, u), ==, 16);
  g_assert_cmpuint(u[0], ==, 'N');

  uint64_t base = offer(&td, 8);
  g_assert_true(nb_virtio_input_key_event(in, KEY_A, true));
  g_assert_true(nb_virtio_input_key_event(in, KEY_A, true));   /* held: a repeat */
  g_assert_true(nb_virtio_input_key_event(in, KEY_A, false));
  g_assert_true(nb_virtio_input_key_event(in, KEY_B, false));  /* never down: nothing */
  g_assert_false(nb_virtio_input_key_event(in, 0, true));
  g_assert_false(nb_virtio_input_key_event(in, 0x300, true));
  Ev ev[8];
  g_assert_cmpuint(collect(&td, base, ev, 8), ==, 6);
  const Ev want[6] = { { EV_KEY, KEY_A, 1 }, { EV_SYN, SYN_REPORT, 0 }, { EV_KEY, KEY_A, 2 },
                       { EV_SYN, SYN_REPORT, 0 }, { EV_KEY, KEY_A, 0 }, { EV_SYN, SYN_REPORT, 0 } };
  for (unsigned i = 0; i < 6; i++) {
    g_assert_cmpuint(ev[i].type, ==, want[i].type);
    g_assert_cmpuint(ev[i].code, ==, want[i].code);
    g_assert_cmpint(ev[i].value, ==, want[i].value);
  }
  nb_virtio_input_free(in);
  td_clear(&td);
}

static void
test_tablet(void)
{
  TestDriver td;
  NbVirtioInput *in = start(&td, NB_VIRTIO_INPUT_TABLET);
  uint8_t u[128];
  g_assert_cmpuint(cfg_select(&td, NB_VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, u), ==, 1);
  g_assert_true(bit(u, ABS_X) && bit(u, ABS_Y));
  g_assert_cmpuint(cfg_select(&td, NB_VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, u), >, BTN_LEFT / 8);
  g_assert_true(bit(u, BTN_LEFT) && bit(u, BTN_RIGHT) && bit(u, BTN_MIDDLE));
  g_assert_cmpuint(cfg_select(&td, NB_VIRTIO_INPUT_CFG_ABS_INFO, ABS_X, u), ==, 20);
  g_assert_cmpuint(u[4] | u[5] << 8, ==, NB_VIRTIO_INPUT_ABS_MAX);
  g_assert_cmpuint(cfg_select(&td, NB_VIRTIO_INPUT_CFG_ABS_INFO, ABS_PRESSURE, u), ==, 0);

  uint64_t base = offer(&td, 16);
  nb_virtio_input_tablet_event(in, 100, 200, 0, 0);
  nb_virtio_input_tablet_event(in, 100, 300, NB_VIRTIO_INPUT_BUTTON_LEFT, 0);
  nb_virtio_input_tablet_event(in, 99999, 300, NB_VIRTIO_INPUT_BUTTON_LEFT, -1);
  Ev ev[16];
  unsigned n = collect(&td, base, ev, 16);
  g_assert_cmpuint(n, ==, 3 + 3 + 3);
  g_assert_cmpuint(ev[0].code, ==, ABS_X);
  g_assert_cmpint(ev[0].value, ==, 100);
  g_assert_cmpuint(ev[1].code, ==, ABS_Y);
  g_assert_cmpint(ev[1].value, ==, 200);
  g_assert_cmpuint(ev[3].code, ==, ABS_Y);
  g_assert_cmpint(ev[3].value, ==, 300);
  g_assert_cmpuint(ev[4].code, ==, BTN_LEFT);
  g_assert_cmpint(ev[4].value, ==, 1);
  g_assert_cmpuint(ev[6].code, ==, ABS_X);
  g_assert_cmpint(ev[6].value, ==, NB_VIRTIO_INPUT_ABS_MAX);   /* clamped */
  g_assert_cmpuint(ev[7].type, ==, EV_REL);
  g_assert_cmpint(ev[7].value, ==, -1);
  g_assert_false(nb_virtio_input_key_event(in, KEY_A, true));   /* a tablet has no keys */
  nb_virtio_input_free(in);
  td_clear(&td);
}

/* A guest that gives no buffers: events wait up to the bound, then whole
 * reports are dropped; what waited arrives once buffers come. */
static void
test_no_buffers(void)
{
  TestDriver td;
  NbVirtioInput *in = start(&td, NB_VIRTIO_INPUT_KEYBOARD);
  for (unsigned i = 0; i < NB_VIRTIO_INPUT_QUEUE_MAX; i++) {
    nb_virtio_input_key_event(in, KEY_A, true);
    nb_virtio_input_key_event(in, KEY_A, false);
  }
  /* A press and a release take 4 events: a quarter of the presses fit.
   * The presses that did not fit were dropped (2 events each) and their
   * releases were not sent at all, since the guest never saw the key go down. */
  unsigned fitted = NB_VIRTIO_INPUT_QUEUE_MAX / 4;
  g_assert_cmpuint(nb_virtio_input_dropped(in), ==, (NB_VIRTIO_INPUT_QUEUE_MAX - fitted) * 2);
  uint64_t base = offer(&td, 6);
  Ev ev[6];
  g_assert_cmpuint(collect(&td, base, ev, 6), ==, 6);
  g_assert_cmpuint(ev[0].code, ==, KEY_A);
  g_assert_cmpint(ev[0].value, ==, 1);
  g_assert_cmpuint(ev[1].type, ==, EV_SYN);
  g_assert_cmpint(ev[2].value, ==, 0);
  nb_virtio_input_free(in);
  td_clear(&td);
}

/* Sends one status event the way virtio_input does when the guest's
 * keyboard handler switches an LED (Caps Lock), and waits for it back. */
static void
send_status(TestDriver *td, uint16_t type, uint16_t code, uint32_t value, uint32_t len)
{
  uint64_t gpa = td_alloc(td, 8);
  uint8_t *p = td_ptr(td, gpa, 8);
  uint8_t wire[8] = { (uint8_t)type, (uint8_t)(type >> 8), (uint8_t)code, (uint8_t)(code >> 8),
                      (uint8_t)value, (uint8_t)(value >> 8), (uint8_t)(value >> 16),
                      (uint8_t)(value >> 24) };
  memcpy(p, wire, 8);
  TdBuf b = { gpa, len, false };
  td_submit(td, 1, &b, 1);
  td_kick(td, 1);
  uint32_t id, used;
  g_assert_true(td_wait_used(td, 1, &id, &used, 3000));
  g_assert_cmpuint(used, ==, 0);
}

static void
test_leds(void)
{
  TestDriver td;
  NbVirtioInput *in = start(&td, NB_VIRTIO_INPUT_KEYBOARD);
  g_assert_cmpuint(nb_virtio_input_leds(in), ==, 0);
  send_status(&td, EV_LED, LED_CAPSL, 1, 8);
  g_assert_cmpuint(nb_virtio_input_leds(in), ==, NB_VIRTIO_INPUT_LED_CAPS_LOCK);
  send_status(&td, EV_LED, LED_NUML, 1, 8);
  send_status(&td, EV_LED, LED_SCROLLL, 1, 8);
  send_status(&td, EV_LED, LED_CAPSL, 0, 8);
  g_assert_cmpuint(nb_virtio_input_leds(in), ==,
                   NB_VIRTIO_INPUT_LED_NUM_LOCK | NB_VIRTIO_INPUT_LED_SCROLL_LOCK);
  /* What is not an LED this keyboard has, or is cut short, changes nothing. */
  send_status(&td, EV_LED, LED_KANA, 1, 8);
  send_status(&td, EV_SND, SND_BELL, 1, 8);
  send_status(&td, EV_LED, LED_CAPSL, 1, 6);
  g_assert_cmpuint(nb_virtio_input_leds(in), ==,
                   NB_VIRTIO_INPUT_LED_NUM_LOCK | NB_VIRTIO_INPUT_LED_SCROLL_LOCK);
  /* A reset (a guest reboot) puts them out. */
  td_reset(&td);
  g_assert_cmpuint(nb_virtio_input_leds(in), ==, 0);
  nb_virtio_input_free(in);
  td_clear(&td);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/virtio-input/keyboard", test_keyboard);
  g_test_add_func("/virtio-input/tablet", test_tablet);
  g_test_add_func("/virtio-input/no-buffers", test_no_buffers);
  g_test_add_func("/virtio-input/leds", test_leds);
  return g_test_run();
}
