#include "virtio/virtio-input.h"
#include "virtio/virtio-pci.h"

#include <linux/input-event-codes.h>
#include <string.h>

#define EVENT_QUEUE  0
#define STATUS_QUEUE 1

/* The keyboard has every key code up to KEY_MICMUTE, like a full PC
 * keyboard with multimedia keys. */
#define KEYBOARD_MAX_KEY KEY_MICMUTE

typedef struct {
  uint16_t type;
  uint16_t code;
  uint32_t value;
} InputEvent;

struct NbVirtioInput {
  NbVirtioPci *vp;
  NbVirtioInputKind kind;

  GMutex config_lock;
  uint8_t select, subsel;

  GMutex lock;                  /* the pending queue and host-side state */
  InputEvent *pending;          /* ring of NB_VIRTIO_INPUT_QUEUE_MAX */
  unsigned head, count;
  guint64 dropped;
  uint8_t keys_down[(KEY_MAX + 8) / 8];
  unsigned last_x, last_y, last_buttons;
  bool pointer_known;
  unsigned leds;                /* NB_VIRTIO_INPUT_LED_*, as the driver last set them */
};

/* Config space --------------------------------------------------------------- */

static void
set_bit_in(uint8_t *bitmap, unsigned bit)
{
  bitmap[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* Fills the union for the current select; returns its size (0: nothing). */
static unsigned
config_payload(NbVirtioInput *in, uint8_t select, uint8_t subsel, uint8_t *u)
{
  memset(u, 0, 128);
  bool keyboard = in->kind == NB_VIRTIO_INPUT_KEYBOARD;
  switch (select) {
  case NB_VIRTIO_INPUT_CFG_ID_NAME: {
    const char *name = keyboard ? "Nestbox Keyboard" : "Nestbox Tablet";
    if (subsel != 0)
      return 0;
    memcpy(u, name, strlen(name));
    return (unsigned)strlen(name);
  }
  case NB_VIRTIO_INPUT_CFG_ID_SERIAL:
    if (subsel != 0)
      return 0;
    memcpy(u, keyboard ? "nestbox-kbd-0" : "nestbox-tablet-0", keyboard ? 13 : 16);
    return keyboard ? 13 : 16;
  case NB_VIRTIO_INPUT_CFG_ID_DEVIDS: {
    if (subsel != 0)
      return 0;
    /* BUS_VIRTUAL, the virtio vendor, a product per kind, version 1. */
    uint16_t ids[4] = { GUINT16_TO_LE(0x06), GUINT16_TO_LE(0x0627),
                        GUINT16_TO_LE(keyboard ? 1 : 3), GUINT16_TO_LE(1) };
    memcpy(u, ids, sizeof ids);
    return sizeof ids;
  }
  case NB_VIRTIO_INPUT_CFG_PROP_BITS:
    return 0;
  case NB_VIRTIO_INPUT_CFG_EV_BITS: {
    unsigned last = 0;
    if (keyboard && subsel == EV_KEY) {
      for (unsigned k = 1; k <= KEYBOARD_MAX_KEY; k++)
        set_bit_in(u, k);
      last = KEYBOARD_MAX_KEY;
    } else if (keyboard && subsel == EV_LED) {
      set_bit_in(u, LED_NUML);
      set_bit_in(u, LED_CAPSL);
      set_bit_in(u, LED_SCROLLL);
      last = LED_SCROLLL;
    } else if (!keyboard && subsel == EV_KEY) {
      set_bit_in(u, BTN_LEFT);
      set_bit_in(u, BTN_RIGHT);
      set_bit_in(u, BTN_MIDDLE);
      last = BTN_MIDDLE;
    } else if (!keyboard && subsel == EV_ABS) {
      set_bit_in(u, ABS_X);
      set_bit_in(u, ABS_Y);
      last = ABS_Y;
    } else if (!keyboard && subsel == EV_REL) {
      set_bit_in(u, REL_WHEEL);
      last = REL_WHEEL;
    } else {
      return 0;   /* no EV_REP: repeats come from the host */
    }
    return last / 8 + 1;
  }
  case NB_VIRTIO_INPUT_CFG_ABS_INFO: {
    if (keyboard || (subsel != ABS_X && subsel != ABS_Y))
      return 0;
    uint32_t abs[5] = { 0, GUINT32_TO_LE(NB_VIRTIO_INPUT_ABS_MAX), 0, 0, 0 };
    memcpy(u, abs, sizeof abs);
    return sizeof abs;
  }
  default:
    return 0;
  }
}

static void
input_config_read(void *ctx, unsigned offset, void *data, unsigned len)
{
  NbVirtioInput *in = ctx;
  uint8_t cfg[NB_VIRTIO_INPUT_CONFIG_SIZE] = { 0 };
  g_mutex_lock(&in->config_lock);
  cfg[0] = in->select;
  cfg[1] = in->subsel;
  cfg[2] = (uint8_t)config_payload(in, in->select, in->subsel, cfg + 8);
  g_mutex_unlock(&in->config_lock);
  memcpy(data, cfg + offset, len);
}

static void
input_config_write(void *ctx, unsigned offset, const void *data, unsigned len)
{
  NbVirtioInput *in = ctx;
  const uint8_t *p = data;
  /* Only select and subsel are the driver's; the rest is read only. */
  g_mutex_lock(&in->config_lock);
  for (unsigned i = 0; i < len; i++) {
    if (offset + i == 0)
      in->select = p[i];
    else if (offset + i == 1)
      in->subsel = p[i];
  }
  g_mutex_unlock(&in->config_lock);
}

/* Queues ---------------------------------------------------------------------- */

/* Moves pending events into guest buffers; worker, transport lock held. */
static void
fill_events(NbVirtioInput *in)
{
  NbVirtqueue *vq = nb_virtio_pci_queue(in->vp, EVENT_QUEUE);
  bool pushed = false;
  g_mutex_lock(&in->lock);
  while (in->count > 0) {
    g_autoptr(GError) error = NULL;
    NbVirtqElement *elem = NULL;
    NbVirtqPopResult r = nb_virtqueue_pop(vq, &elem, &error);
    if (r == NB_VIRTQ_POP_EMPTY)
      break;
    if (r == NB_VIRTQ_POP_BROKEN) {
      g_mutex_unlock(&in->lock);
      nb_virtio_pci_set_broken(in->vp, error->message);
      return;
    }
    const InputEvent *ev = &in->pending[in->head];
    uint8_t wire[8];
    uint16_t type = GUINT16_TO_LE(ev->type), code = GUINT16_TO_LE(ev->code);
    uint32_t value = GUINT32_TO_LE(ev->value);
    memcpy(wire, &type, 2);
    memcpy(wire + 2, &code, 2);
    memcpy(wire + 4, &value, 4);
    /* A buffer too small for an event is the driver's bug: it gets
     * nothing written, and the event waits for the next buffer. */
    if (elem->in_len < sizeof wire) {
      nb_virtqueue_push(vq, elem->head, 0);
      g_free(elem);
      pushed = true;
      continue;
    }
    size_t n = nb_virtq_iov_from_buf(elem->in, elem->n_in, 0, wire, sizeof wire);
    nb_virtqueue_push(vq, elem->head, (uint32_t)n);
    g_free(elem);
    pushed = true;
    in->head = (in->head + 1) % NB_VIRTIO_INPUT_QUEUE_MAX;
    in->count--;
  }
  g_mutex_unlock(&in->lock);
  if (pushed && nb_virtqueue_should_notify(vq))
    nb_virtio_pci_notify_queue(in->vp, EVENT_QUEUE);
}

/* One status event from the driver: a keyboard LED it switched on or off
 * (Caps Lock pressed in the guest). Anything else is a driver's business
 * that a virtual keyboard has nothing to do with, and is ignored. */
static void
status_event(NbVirtioInput *in, const NbVirtqElement *elem)
{
  uint8_t wire[8];
  if (in->kind != NB_VIRTIO_INPUT_KEYBOARD ||
      nb_virtq_iov_to_buf(elem->out, elem->n_out, 0, wire, sizeof wire) != sizeof wire)
    return;
  uint16_t type = (uint16_t)(wire[0] | wire[1] << 8), code = (uint16_t)(wire[2] | wire[3] << 8);
  uint32_t value = (uint32_t)wire[4] | (uint32_t)wire[5] << 8 | (uint32_t)wire[6] << 16 |
                   (uint32_t)wire[7] << 24;
  unsigned bit = code == LED_SCROLLL ? NB_VIRTIO_INPUT_LED_SCROLL_LOCK
               : code == LED_NUML    ? NB_VIRTIO_INPUT_LED_NUM_LOCK
               : code == LED_CAPSL   ? NB_VIRTIO_INPUT_LED_CAPS_LOCK : 0;
  if (type != EV_LED || bit == 0)
    return;
  g_mutex_lock(&in->lock);
  in->leds = value ? in->leds | bit : in->leds & ~bit;
  g_mutex_unlock(&in->lock);
}

/* The driver's status events (LEDs): read and returned. */
static void
drain_status(NbVirtioInput *in)
{
  NbVirtqueue *vq = nb_virtio_pci_queue(in->vp, STATUS_QUEUE);
  for (;;) {
    g_autoptr(GError) error = NULL;
    NbVirtqElement *elem = NULL;
    NbVirtqPopResult r = nb_virtqueue_pop(vq, &elem, &error);
    if (r == NB_VIRTQ_POP_EMPTY)
      break;
    if (r == NB_VIRTQ_POP_BROKEN) {
      nb_virtio_pci_set_broken(in->vp, error->message);
      return;
    }
    status_event(in, elem);
    nb_virtqueue_push(vq, elem->head, 0);
    g_free(elem);
  }
  if (nb_virtqueue_should_notify(vq))
    nb_virtio_pci_notify_queue(in->vp, STATUS_QUEUE);
}

static void
input_queue_notify(void *ctx, unsigned queue)
{
  NbVirtioInput *in = ctx;
  if (queue == EVENT_QUEUE)
    fill_events(in);
  else if (queue == STATUS_QUEUE)
    drain_status(in);
}

static void
input_reset(void *ctx)
{
  NbVirtioInput *in = ctx;
  g_mutex_lock(&in->lock);
  in->head = in->count = 0;
  memset(in->keys_down, 0, sizeof in->keys_down);
  in->pointer_known = false;
  in->leds = 0;
  g_mutex_unlock(&in->lock);
  g_mutex_lock(&in->config_lock);
  in->select = in->subsel = 0;
  g_mutex_unlock(&in->config_lock);
}

static const NbVirtioDeviceOps input_ops = {
  .config_read = input_config_read,
  .config_write = input_config_write,
  .queue_notify = input_queue_notify,
  .reset = input_reset,
};

/* Host side ----------------------------------------------------------------- */

/* Appends one report (events then EV_SYN) whole, or drops it; lock held.
 * Returns whether it was queued. */
static bool
queue_report(NbVirtioInput *in, const InputEvent *events, unsigned n)
{
  if (n == 0)
    return false;
  if (in->count + n + 1 > NB_VIRTIO_INPUT_QUEUE_MAX) {
    in->dropped += n + 1;
    return false;
  }
  for (unsigned i = 0; i <= n; i++) {
    InputEvent ev = i < n ? events[i] : (InputEvent){ EV_SYN, SYN_REPORT, 0 };
    in->pending[(in->head + in->count) % NB_VIRTIO_INPUT_QUEUE_MAX] = ev;
    in->count++;
  }
  return true;
}

bool
nb_virtio_input_key_event(NbVirtioInput *in, unsigned keycode, bool pressed)
{
  if (in->kind != NB_VIRTIO_INPUT_KEYBOARD || keycode == 0 || keycode > KEYBOARD_MAX_KEY)
    return false;
  g_mutex_lock(&in->lock);
  bool down = in->keys_down[keycode / 8] & (1u << (keycode % 8));
  bool queued = false;
  if (pressed || down) {
    InputEvent ev = { EV_KEY, (uint16_t)keycode, pressed ? (down ? 2u : 1u) : 0u };
    queued = queue_report(in, &ev, 1);
  }
  /* The state follows what the guest will see: after a dropped release
   * the key is still down for it, so the next release is sent again. */
  if (queued && pressed)
    in->keys_down[keycode / 8] |= (uint8_t)(1u << (keycode % 8));
  else if (queued)
    in->keys_down[keycode / 8] &= (uint8_t) ~(1u << (keycode % 8));
  g_mutex_unlock(&in->lock);
  if (queued)
    nb_virtio_pci_kick(in->vp, EVENT_QUEUE);
  return true;
}

void
nb_virtio_input_tablet_event(NbVirtioInput *in, unsigned x, unsigned y, unsigned buttons,
                             int wheel)
{
  if (in->kind != NB_VIRTIO_INPUT_TABLET)
    return;
  x = MIN(x, NB_VIRTIO_INPUT_ABS_MAX);
  y = MIN(y, NB_VIRTIO_INPUT_ABS_MAX);
  static const struct { unsigned mask; uint16_t code; } map[] = {
    { NB_VIRTIO_INPUT_BUTTON_LEFT, BTN_LEFT },
    { NB_VIRTIO_INPUT_BUTTON_RIGHT, BTN_RIGHT },
    { NB_VIRTIO_INPUT_BUTTON_MIDDLE, BTN_MIDDLE },
  };
  InputEvent ev[8];
  unsigned n = 0;
  g_mutex_lock(&in->lock);
  if (!in->pointer_known || x != in->last_x)
    ev[n++] = (InputEvent){ EV_ABS, ABS_X, x };
  if (!in->pointer_known || y != in->last_y)
    ev[n++] = (InputEvent){ EV_ABS, ABS_Y, y };
  for (unsigned i = 0; i < G_N_ELEMENTS(map); i++)
    if ((buttons ^ in->last_buttons) & map[i].mask)
      ev[n++] = (InputEvent){ EV_KEY, map[i].code, (buttons & map[i].mask) ? 1u : 0u };
  if (wheel != 0)
    ev[n++] = (InputEvent){ EV_REL, REL_WHEEL, (uint32_t)CLAMP(wheel, -127, 127) };
  bool queued = queue_report(in, ev, n);
  if (queued) {
    in->last_x = x;
    in->last_y = y;
    in->last_buttons = buttons & 7;
    in->pointer_known = true;
  }
  g_mutex_unlock(&in->lock);
  if (queued)
    nb_virtio_pci_kick(in->vp, EVENT_QUEUE);
}

bool
nb_virtio_input_is_active(NbVirtioInput *in)
{
  return nb_virtio_pci_is_active(in->vp);
}

unsigned
nb_virtio_input_leds(NbVirtioInput *in)
{
  g_mutex_lock(&in->lock);
  unsigned leds = in->leds;
  g_mutex_unlock(&in->lock);
  return leds;
}

guint64
nb_virtio_input_dropped(NbVirtioInput *in)
{
  g_mutex_lock(&in->lock);
  guint64 d = in->dropped;
  g_mutex_unlock(&in->lock);
  return d;
}

/* Construction ---------------------------------------------------------------- */

NbVirtioInput *
nb_virtio_input_new(NbGuestMemory *mem, NbVirtioInputKind kind, GError **error)
{
  NbVirtioInput *in = g_new0(NbVirtioInput, 1);
  in->kind = kind;
  g_mutex_init(&in->lock);
  g_mutex_init(&in->config_lock);
  in->pending = g_new0(InputEvent, NB_VIRTIO_INPUT_QUEUE_MAX);
  NbVirtioDeviceInfo info = {
    .name = kind == NB_VIRTIO_INPUT_KEYBOARD ? "input-keyboard" : "input-tablet",
    .device_id = NB_VIRTIO_ID_INPUT,
    .pci_class = 0x098000,
    .num_queues = 2,
    .queue_size = 64,
    .config_size = NB_VIRTIO_INPUT_CONFIG_SIZE,
    .ops = &input_ops,
    .ctx = in,
  };
  in->vp = nb_virtio_pci_new(mem, &info, error);
  if (in->vp == NULL) {
    nb_virtio_input_free(in);
    return NULL;
  }
  return in;
}

void
nb_virtio_input_free(NbVirtioInput *in)
{
  if (in == NULL)
    return;
  nb_virtio_pci_free(in->vp);
  g_free(in->pending);
  g_mutex_clear(&in->lock);
  g_mutex_clear(&in->config_lock);
  g_free(in);
}

NbPciDevice *
nb_virtio_input_pci_device(NbVirtioInput *in)
{
  return nb_virtio_pci_device(in->vp);
}
