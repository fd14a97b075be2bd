#include "hw/i8042.h"

#include <linux/input-event-codes.h>
#include <string.h>

/* Controller commands (port 0x64). */
#define CMD_READ_CTR      0x20
#define CMD_WRITE_CTR     0x60
#define CMD_AUX_DISABLE   0xa7
#define CMD_AUX_ENABLE    0xa8
#define CMD_AUX_TEST      0xa9
#define CMD_SELF_TEST     0xaa
#define CMD_KBD_TEST      0xab
#define CMD_KBD_DISABLE   0xad
#define CMD_KBD_ENABLE    0xae
#define CMD_READ_INPUT    0xc0
#define CMD_READ_OUTPUT   0xd0
#define CMD_WRITE_OUTPUT  0xd1
#define CMD_WRITE_KBD_OBUF 0xd2
#define CMD_WRITE_AUX_OBUF 0xd3
#define CMD_WRITE_AUX     0xd4
#define CMD_READ_TEST     0xe0
#define CMD_PULSE_FIRST   0xf0

/* Output port bits. */
#define OUTPORT_RESET 0x01 /* low resets the CPU */
#define OUTPORT_A20   0x02
#define OUTPORT_KBD_IRQ 0x10
#define OUTPORT_AUX_IRQ 0x20

/* PS/2 device replies. */
#define PS2_ACK      0xfa
#define PS2_RESEND   0xfe
#define PS2_BAT_OK   0xaa
#define PS2_ECHO     0xee

#define CTRL_QUEUE_SIZE 16
/* Room for many whole key sequences (the longest, Pause, is 8 bytes); a
 * real keyboard holds 16 bytes, but a host paste arrives faster. */
#define KBD_QUEUE_SIZE 256
#define AUX_QUEUE_SIZE 256

/* A power-on command byte as a PC BIOS leaves it: keyboard interrupt on,
 * system flag, translation to set 1. */
#define CTR_DEFAULT (NB_I8042_CTR_KBDINT | NB_I8042_CTR_SYS | NB_I8042_CTR_XLATE)

typedef struct {
  uint16_t data[KBD_QUEUE_SIZE];
  unsigned size, head, count;
} Queue;

static void
queue_init(Queue *q, unsigned size)
{
  q->size = MIN(size, KBD_QUEUE_SIZE);
  q->head = 0;
  q->count = 0;
}

static unsigned
queue_room(const Queue *q)
{
  return q->size - q->count;
}

static bool
queue_push(Queue *q, uint16_t v)
{
  if (q->count == q->size)
    return false;
  q->data[(q->head + q->count) % q->size] = v;
  q->count++;
  return true;
}

static uint16_t
queue_pop(Queue *q)
{
  uint16_t v = q->data[q->head];
  q->head = (q->head + 1) % q->size;
  q->count--;
  return v;
}

/* Controller queue entries carry the channel they are presented on. */
#define FROM_AUX 0x100

typedef struct {
  bool scanning;
  unsigned set;        /* 1 or 2 */
  uint8_t pending_cmd; /* waiting for this command's argument */
  uint8_t leds;
  uint8_t typematic;
  uint8_t last_sent;
} Keyboard;

typedef struct {
  bool reporting, remote, wrap, scaling21;
  uint8_t resolution, rate, id;
  uint8_t pending_cmd;
  uint8_t rates[3];
  uint8_t last_sent;
  unsigned buttons;
  int dx, dy, dz; /* motion not yet reported, PS/2 directions */
  bool dirty;
} Mouse;

struct NbI8042 {
  GMutex lock;
  NbInterrupts *irqs;
  NbI8042ResetFunc reset;
  void *reset_ctx;

  uint8_t ctr;
  uint8_t ram[32]; /* the controller's RAM; byte 0 is the command byte */
  uint8_t outport;
  uint8_t pending_cmd; /* a command waiting for its data byte */
  bool last_was_command;

  uint8_t obuf;
  bool obf, obuf_aux;
  /* The controller drops F0 from set 2 and sets bit 7 of the next byte. */
  bool xlate_break;

  Queue ctrl, kbd_q, aux_q;
  Keyboard kbd;
  Mouse mouse;

  bool kbd_level, aux_level;
};

/* Scancodes ---------------------------------------------------------------- */

#define E0 0x100

/* A PC keyboard's keys: Linux keycode, set 2 and set 1 make codes (E0 marks
 * an E0 prefix). Pause and Print Screen send longer sequences, below. */
static const struct {
  uint16_t keycode, set2, set1;
} keymap[] = {
  { KEY_ESC, 0x76, 0x01 }, { KEY_1, 0x16, 0x02 }, { KEY_2, 0x1e, 0x03 },
  { KEY_3, 0x26, 0x04 }, { KEY_4, 0x25, 0x05 }, { KEY_5, 0x2e, 0x06 },
  { KEY_6, 0x36, 0x07 }, { KEY_7, 0x3d, 0x08 }, { KEY_8, 0x3e, 0x09 },
  { KEY_9, 0x46, 0x0a }, { KEY_0, 0x45, 0x0b }, { KEY_MINUS, 0x4e, 0x0c },
  { KEY_EQUAL, 0x55, 0x0d }, { KEY_BACKSPACE, 0x66, 0x0e }, { KEY_TAB, 0x0d, 0x0f },
  { KEY_Q, 0x15, 0x10 }, { KEY_W, 0x1d, 0x11 }, { KEY_E, 0x24, 0x12 },
  { KEY_R, 0x2d, 0x13 }, { KEY_T, 0x2c, 0x14 }, { KEY_Y, 0x35, 0x15 },
  { KEY_U, 0x3c, 0x16 }, { KEY_I, 0x43, 0x17 }, { KEY_O, 0x44, 0x18 },
  { KEY_P, 0x4d, 0x19 }, { KEY_LEFTBRACE, 0x54, 0x1a }, { KEY_RIGHTBRACE, 0x5b, 0x1b },
  { KEY_ENTER, 0x5a, 0x1c }, { KEY_LEFTCTRL, 0x14, 0x1d }, { KEY_A, 0x1c, 0x1e },
  { KEY_S, 0x1b, 0x1f }, { KEY_D, 0x23, 0x20 }, { KEY_F, 0x2b, 0x21 },
  { KEY_G, 0x34, 0x22 }, { KEY_H, 0x33, 0x23 }, { KEY_J, 0x3b, 0x24 },
  { KEY_K, 0x42, 0x25 }, { KEY_L, 0x4b, 0x26 }, { KEY_SEMICOLON, 0x4c, 0x27 },
  { KEY_APOSTROPHE, 0x52, 0x28 }, { KEY_GRAVE, 0x0e, 0x29 }, { KEY_LEFTSHIFT, 0x12, 0x2a },
  { KEY_BACKSLASH, 0x5d, 0x2b }, { KEY_Z, 0x1a, 0x2c }, { KEY_X, 0x22, 0x2d },
  { KEY_C, 0x21, 0x2e }, { KEY_V, 0x2a, 0x2f }, { KEY_B, 0x32, 0x30 },
  { KEY_N, 0x31, 0x31 }, { KEY_M, 0x3a, 0x32 }, { KEY_COMMA, 0x41, 0x33 },
  { KEY_DOT, 0x49, 0x34 }, { KEY_SLASH, 0x4a, 0x35 }, { KEY_RIGHTSHIFT, 0x59, 0x36 },
  { KEY_KPASTERISK, 0x7c, 0x37 }, { KEY_LEFTALT, 0x11, 0x38 }, { KEY_SPACE, 0x29, 0x39 },
  { KEY_CAPSLOCK, 0x58, 0x3a }, { KEY_F1, 0x05, 0x3b }, { KEY_F2, 0x06, 0x3c },
  { KEY_F3, 0x04, 0x3d }, { KEY_F4, 0x0c, 0x3e }, { KEY_F5, 0x03, 0x3f },
  { KEY_F6, 0x0b, 0x40 }, { KEY_F7, 0x83, 0x41 }, { KEY_F8, 0x0a, 0x42 },
  { KEY_F9, 0x01, 0x43 }, { KEY_F10, 0x09, 0x44 }, { KEY_NUMLOCK, 0x77, 0x45 },
  { KEY_SCROLLLOCK, 0x7e, 0x46 }, { KEY_KP7, 0x6c, 0x47 }, { KEY_KP8, 0x75, 0x48 },
  { KEY_KP9, 0x7d, 0x49 }, { KEY_KPMINUS, 0x7b, 0x4a }, { KEY_KP4, 0x6b, 0x4b },
  { KEY_KP5, 0x73, 0x4c }, { KEY_KP6, 0x74, 0x4d }, { KEY_KPPLUS, 0x79, 0x4e },
  { KEY_KP1, 0x69, 0x4f }, { KEY_KP2, 0x72, 0x50 }, { KEY_KP3, 0x7a, 0x51 },
  { KEY_KP0, 0x70, 0x52 }, { KEY_KPDOT, 0x71, 0x53 }, { KEY_102ND, 0x61, 0x56 },
  { KEY_F11, 0x78, 0x57 }, { KEY_F12, 0x07, 0x58 }, { KEY_KPEQUAL, 0x0f, 0x59 },
  { KEY_KATAKANAHIRAGANA, 0x13, 0x70 }, { KEY_RO, 0x51, 0x73 }, { KEY_HENKAN, 0x64, 0x79 },
  { KEY_MUHENKAN, 0x67, 0x7b }, { KEY_YEN, 0x6a, 0x7d },
  { KEY_KPENTER, E0 | 0x5a, E0 | 0x1c }, { KEY_RIGHTCTRL, E0 | 0x14, E0 | 0x1d },
  { KEY_KPSLASH, E0 | 0x4a, E0 | 0x35 }, { KEY_RIGHTALT, E0 | 0x11, E0 | 0x38 },
  { KEY_HOME, E0 | 0x6c, E0 | 0x47 }, { KEY_UP, E0 | 0x75, E0 | 0x48 },
  { KEY_PAGEUP, E0 | 0x7d, E0 | 0x49 }, { KEY_LEFT, E0 | 0x6b, E0 | 0x4b },
  { KEY_RIGHT, E0 | 0x74, E0 | 0x4d }, { KEY_END, E0 | 0x69, E0 | 0x4f },
  { KEY_DOWN, E0 | 0x72, E0 | 0x50 }, { KEY_PAGEDOWN, E0 | 0x7a, E0 | 0x51 },
  { KEY_INSERT, E0 | 0x70, E0 | 0x52 }, { KEY_DELETE, E0 | 0x71, E0 | 0x53 },
  { KEY_LEFTMETA, E0 | 0x1f, E0 | 0x5b }, { KEY_RIGHTMETA, E0 | 0x27, E0 | 0x5c },
  { KEY_COMPOSE, E0 | 0x2f, E0 | 0x5d }, { KEY_POWER, E0 | 0x37, E0 | 0x5e },
  { KEY_SLEEP, E0 | 0x3f, E0 | 0x5f }, { KEY_WAKEUP, E0 | 0x5e, E0 | 0x63 },
  { KEY_MUTE, E0 | 0x23, E0 | 0x20 }, { KEY_VOLUMEDOWN, E0 | 0x21, E0 | 0x2e },
  { KEY_VOLUMEUP, E0 | 0x32, E0 | 0x30 }, { KEY_NEXTSONG, E0 | 0x4d, E0 | 0x19 },
  { KEY_PREVIOUSSONG, E0 | 0x15, E0 | 0x10 }, { KEY_STOPCD, E0 | 0x3b, E0 | 0x24 },
  { KEY_PLAYPAUSE, E0 | 0x34, E0 | 0x22 },
  /* The set 2 byte of Alt+Print Screen, for the translation table only. */
  { 0, 0x84, 0x54 },
};

/* The controller's set 2 to set 1 table: bytes of key codes map to their
 * set 1 value; everything else (replies, prefixes) passes unchanged. */
static uint8_t xlate_table[256];

static gpointer
build_xlate_table(gpointer unused)
{
  for (unsigned i = 0; i < 256; i++)
    xlate_table[i] = (uint8_t)i;
  /* Set 2's error code becomes set 1's. */
  xlate_table[0x00] = 0xff;
  for (gsize i = 0; i < G_N_ELEMENTS(keymap); i++)
    xlate_table[keymap[i].set2 & 0xff] = keymap[i].set1 & 0xff;
  return NULL;
}

static uint8_t
xlate(uint8_t byte)
{
  static GOnce once = G_ONCE_INIT;
  g_once(&once, build_xlate_table, NULL);
  return xlate_table[byte];
}

/* Set 2 to set 1 the way the controller does it, one byte at a time.
 * Returns false for F0, which only marks the next byte as a release. */
static bool
xlate_byte(bool *in_break, uint8_t byte, uint8_t *out)
{
  if (byte == 0xf0) {
    *in_break = true;
    return false;
  }
  uint8_t v = xlate(byte);
  if (*in_break && byte < 0x80 + 0x05) /* key codes only, not replies */
    v |= 0x80;
  else if (*in_break)
    v = byte;
  *in_break = false;
  *out = v;
  return true;
}

/* Interrupts and the output buffer ---------------------------------------- */

static void
update_irq(NbI8042 *dev)
{
  bool kbd = dev->obf && !dev->obuf_aux && (dev->ctr & NB_I8042_CTR_KBDINT);
  bool aux = dev->obf && dev->obuf_aux && (dev->ctr & NB_I8042_CTR_AUXINT);
  if (kbd != dev->kbd_level) {
    dev->kbd_level = kbd;
    dev->irqs->ops->set_line(dev->irqs->ctx, NB_I8042_KBD_IRQ, kbd);
  }
  if (aux != dev->aux_level) {
    dev->aux_level = aux;
    dev->irqs->ops->set_line(dev->irqs->ctx, NB_I8042_AUX_IRQ, aux);
  }
}

static void mouse_flush(NbI8042 *dev);

/* Moves the next byte into the output buffer once the guest has taken the
 * last. Controller replies go first, then the keyboard, then the mouse; a
 * device whose port is disabled keeps its bytes until it is enabled. */
static void
refill(NbI8042 *dev)
{
  if (dev->obf)
    return;
  if (dev->ctrl.count > 0) {
    uint16_t v = queue_pop(&dev->ctrl);
    dev->obuf = (uint8_t)v;
    dev->obuf_aux = (v & FROM_AUX) != 0;
    dev->obf = true;
    return;
  }
  if (!(dev->ctr & NB_I8042_CTR_KBDDIS)) {
    while (dev->kbd_q.count > 0) {
      uint8_t byte = (uint8_t)queue_pop(&dev->kbd_q);
      if (dev->ctr & NB_I8042_CTR_XLATE) {
        if (!xlate_byte(&dev->xlate_break, byte, &byte))
          continue;
      }
      dev->obuf = byte;
      dev->obuf_aux = false;
      dev->obf = true;
      return;
    }
  }
  if (!(dev->ctr & NB_I8042_CTR_AUXDIS) && dev->aux_q.count > 0) {
    dev->obuf = (uint8_t)queue_pop(&dev->aux_q);
    dev->obuf_aux = true;
    dev->obf = true;
    mouse_flush(dev);
  }
}

static void
ctrl_reply(NbI8042 *dev, uint8_t byte, bool aux)
{
  queue_push(&dev->ctrl, byte | (aux ? FROM_AUX : 0));
}

/* Keyboard ------------------------------------------------------------------ */

static void
kbd_send(NbI8042 *dev, uint8_t byte)
{
  dev->kbd.last_sent = byte;
  queue_push(&dev->kbd_q, byte);
}

static void
kbd_defaults(Keyboard *kbd)
{
  kbd->set = 2;
  kbd->typematic = 0x2b; /* 10.9 characters a second after 500 ms */
  kbd->pending_cmd = 0;
}

static void
kbd_reset(NbI8042 *dev)
{
  kbd_defaults(&dev->kbd);
  dev->kbd.scanning = true;
  dev->kbd.leds = 0;
  queue_init(&dev->kbd_q, KBD_QUEUE_SIZE);
}

static void
kbd_write(NbI8042 *dev, uint8_t byte)
{
  Keyboard *kbd = &dev->kbd;
  if (kbd->pending_cmd != 0 && byte < 0xed) {
    uint8_t cmd = kbd->pending_cmd;
    kbd->pending_cmd = 0;
    switch (cmd) {
    case 0xed:
      kbd->leds = byte & 0x07;
      kbd_send(dev, PS2_ACK);
      return;
    case 0xf3:
      kbd->typematic = byte & 0x7f;
      kbd_send(dev, PS2_ACK);
      return;
    case 0xf0:
      if (byte == 0) {
        kbd_send(dev, PS2_ACK);
        kbd_send(dev, (uint8_t)kbd->set);
      } else if (byte == 1 || byte == 2) {
        kbd->set = byte;
        kbd_send(dev, PS2_ACK);
      } else {
        /* Set 3 is not offered; the driver falls back to set 2. */
        kbd_send(dev, PS2_RESEND);
      }
      return;
    }
    return;
  }
  /* A command aborts a pending one, and the keyboard drops what it had not
   * yet sent. */
  kbd->pending_cmd = 0;
  queue_init(&dev->kbd_q, KBD_QUEUE_SIZE);
  switch (byte) {
  case 0xed: /* set LEDs */
  case 0xf0: /* scancode set */
  case 0xf3: /* typematic rate */
    kbd->pending_cmd = byte;
    kbd_send(dev, PS2_ACK);
    break;
  case 0xee:
    kbd_send(dev, PS2_ECHO);
    break;
  case 0xf2: /* identify: an MF2 keyboard */
    kbd_send(dev, PS2_ACK);
    kbd_send(dev, 0xab);
    kbd_send(dev, 0x83);
    break;
  case 0xf4:
    kbd->scanning = true;
    kbd_send(dev, PS2_ACK);
    break;
  case 0xf5:
    kbd_defaults(kbd);
    kbd->scanning = false;
    kbd_send(dev, PS2_ACK);
    break;
  case 0xf6:
    kbd_defaults(kbd);
    kbd->scanning = true;
    kbd_send(dev, PS2_ACK);
    break;
  case 0xf7: case 0xf8: case 0xf9: case 0xfa:
  case 0xfb: case 0xfc: case 0xfd:
    /* Set 3 key types: acknowledged, meaningless in set 2. */
    kbd_send(dev, PS2_ACK);
    break;
  case 0xfe:
    kbd_send(dev, kbd->last_sent);
    break;
  case 0xff:
    kbd_reset(dev);
    kbd_send(dev, PS2_ACK);
    kbd_send(dev, PS2_BAT_OK);
    break;
  default:
    kbd_send(dev, PS2_RESEND);
    break;
  }
}

/* The set 2 bytes of one key event; returns the count, 0 if unknown. */
static unsigned
set2_sequence(unsigned keycode, bool pressed, uint8_t seq[8])
{
  unsigned n = 0;
  if (keycode == KEY_PAUSE) {
    /* Pause sends its make and break together, and nothing on release. */
    if (!pressed)
      return 0;
    static const uint8_t pause[8] = { 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77 };
    memcpy(seq, pause, 8);
    return 8;
  }
  if (keycode == KEY_SYSRQ) {
    /* Print Screen comes with a fake left shift around it. */
    static const uint8_t make[4] = { 0xe0, 0x12, 0xe0, 0x7c };
    static const uint8_t brk[6] = { 0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12 };
    memcpy(seq, pressed ? make : brk, pressed ? 4 : 6);
    return pressed ? 4 : 6;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(keymap); i++) {
    if (keymap[i].keycode != keycode || keycode == 0)
      continue;
    if (keymap[i].set2 & E0)
      seq[n++] = 0xe0;
    if (!pressed)
      seq[n++] = 0xf0;
    seq[n++] = keymap[i].set2 & 0xff;
    return n;
  }
  return 0;
}

/* Mouse --------------------------------------------------------------------- */

static void
aux_send(NbI8042 *dev, uint8_t byte)
{
  dev->mouse.last_sent = byte;
  queue_push(&dev->aux_q, byte);
}

static void
mouse_defaults(Mouse *m)
{
  m->reporting = false;
  m->remote = false;
  m->scaling21 = false;
  m->resolution = 2; /* 4 counts per mm */
  m->rate = 100;
  m->pending_cmd = 0;
  m->dx = m->dy = m->dz = 0;
  m->dirty = false;
}

static void
mouse_reset(NbI8042 *dev)
{
  Mouse *m = &dev->mouse;
  unsigned buttons = m->buttons;
  memset(m, 0, sizeof *m);
  mouse_defaults(m);
  m->buttons = buttons;
  queue_init(&dev->aux_q, AUX_QUEUE_SIZE);
}

static int
take(int *acc, int lo, int hi)
{
  int v = CLAMP(*acc, lo, hi);
  *acc -= v;
  return v;
}

/* 2:1 scaling, which a mouse applies to streamed motion only: small
 * moves stay fine, larger ones double. */
static int
scale21(int v)
{
  static const int small[6] = { 0, 1, 1, 3, 6, 9 };
  int a = ABS(v);
  int s = a < 6 ? small[a] : 2 * a;
  return v < 0 ? -s : s;
}

static void
mouse_packet(NbI8042 *dev, bool streamed)
{
  Mouse *m = &dev->mouse;
  bool scaled = streamed && m->scaling21;
  /* Scaled moves are taken in halves so that they still fit a packet. */
  int lo = scaled ? -128 : -256, hi = scaled ? 127 : 255;
  int dx = take(&m->dx, lo, hi);
  int dy = take(&m->dy, lo, hi);
  if (scaled) {
    dx = scale21(dx);
    dy = scale21(dy);
  }
  uint8_t b0 = 0x08 | (m->buttons & 0x07);
  if (dx < 0)
    b0 |= 0x10;
  if (dy < 0)
    b0 |= 0x20;
  aux_send(dev, b0);
  aux_send(dev, (uint8_t)dx);
  aux_send(dev, (uint8_t)dy);
  if (m->id == 3)
    aux_send(dev, (uint8_t)take(&m->dz, -8, 7));
  else
    m->dz = 0;
  m->dirty = m->dx != 0 || m->dy != 0 || m->dz != 0;
}

/* Streams the motion gathered so far, as far as the queue has room for
 * whole packets; the rest waits for the guest to read. */
static void
mouse_flush(NbI8042 *dev)
{
  Mouse *m = &dev->mouse;
  unsigned packet_size = m->id == 3 ? 4 : 3;
  while (m->dirty && m->reporting && !m->remote && queue_room(&dev->aux_q) >= packet_size)
    mouse_packet(dev, true);
}

static void
mouse_write(NbI8042 *dev, uint8_t byte)
{
  Mouse *m = &dev->mouse;
  if (m->pending_cmd != 0) {
    uint8_t cmd = m->pending_cmd;
    m->pending_cmd = 0;
    if (cmd == 0xf3) {
      m->rate = byte;
      m->rates[0] = m->rates[1];
      m->rates[1] = m->rates[2];
      m->rates[2] = byte;
      /* The IntelliMouse knock: rates 200, 100, 80 turn the wheel on. */
      if (m->rates[0] == 200 && m->rates[1] == 100 && m->rates[2] == 80)
        m->id = 3;
    } else {
      m->resolution = byte & 3;
    }
    aux_send(dev, PS2_ACK);
    return;
  }
  if (m->wrap && byte != 0xec && byte != 0xff) {
    aux_send(dev, byte);
    return;
  }
  queue_init(&dev->aux_q, AUX_QUEUE_SIZE);
  switch (byte) {
  case 0xe6:
    m->scaling21 = false;
    aux_send(dev, PS2_ACK);
    break;
  case 0xe7:
    m->scaling21 = true;
    aux_send(dev, PS2_ACK);
    break;
  case 0xe8:
  case 0xf3:
    m->pending_cmd = byte;
    aux_send(dev, PS2_ACK);
    break;
  case 0xe9: /* status request */
    aux_send(dev, PS2_ACK);
    /* Left, middle, right in bits 2, 1, 0 here, unlike in packets. */
    aux_send(dev, (uint8_t)((m->remote ? 0x40 : 0) | (m->reporting ? 0x20 : 0) |
                            (m->scaling21 ? 0x10 : 0) |
                            ((m->buttons & NB_I8042_BUTTON_LEFT) ? 0x04 : 0) |
                            ((m->buttons & NB_I8042_BUTTON_MIDDLE) ? 0x02 : 0) |
                            ((m->buttons & NB_I8042_BUTTON_RIGHT) ? 0x01 : 0)));
    aux_send(dev, m->resolution);
    aux_send(dev, m->rate);
    break;
  case 0xea:
    m->remote = false;
    aux_send(dev, PS2_ACK);
    break;
  case 0xeb: /* read data, in remote mode */
    aux_send(dev, PS2_ACK);
    mouse_packet(dev, false);
    break;
  case 0xec:
    m->wrap = false;
    aux_send(dev, PS2_ACK);
    break;
  case 0xee:
    m->wrap = true;
    aux_send(dev, PS2_ACK);
    break;
  case 0xf0:
    m->remote = true;
    aux_send(dev, PS2_ACK);
    break;
  case 0xf2:
    aux_send(dev, PS2_ACK);
    aux_send(dev, m->id);
    break;
  case 0xf4:
    m->reporting = true;
    aux_send(dev, PS2_ACK);
    break;
  case 0xf5:
    m->reporting = false;
    m->dx = m->dy = m->dz = 0;
    m->dirty = false;
    aux_send(dev, PS2_ACK);
    break;
  case 0xf6:
    mouse_defaults(m);
    aux_send(dev, PS2_ACK);
    break;
  case 0xfe:
    aux_send(dev, m->last_sent);
    break;
  case 0xff:
    mouse_reset(dev);
    aux_send(dev, PS2_ACK);
    aux_send(dev, PS2_BAT_OK);
    aux_send(dev, 0x00);
    break;
  default:
    aux_send(dev, PS2_RESEND);
    break;
  }
}

/* Controller ---------------------------------------------------------------- */

static uint8_t
output_port(const NbI8042 *dev)
{
  uint8_t v = dev->outport & ~(OUTPORT_KBD_IRQ | OUTPORT_AUX_IRQ);
  if (dev->obf && !dev->obuf_aux)
    v |= OUTPORT_KBD_IRQ;
  if (dev->obf && dev->obuf_aux)
    v |= OUTPORT_AUX_IRQ;
  return v;
}

static void
set_ctr(NbI8042 *dev, uint8_t value)
{
  dev->ctr = value;
  dev->ram[0] = value;
}

/* Returns true when the guest asked for a CPU reset. */
static bool
command_write(NbI8042 *dev, uint8_t cmd)
{
  dev->pending_cmd = 0;
  if (cmd >= CMD_PULSE_FIRST) {
    /* Pulses the output port bits whose command bit is clear: bit 0 is the
     * CPU reset line. */
    return !(cmd & 0x01);
  }
  if (cmd >= CMD_READ_CTR && cmd < CMD_READ_CTR + 0x20) {
    ctrl_reply(dev, dev->ram[cmd & 0x1f], false);
    return false;
  }
  if (cmd >= CMD_WRITE_CTR && cmd < CMD_WRITE_CTR + 0x20) {
    dev->pending_cmd = cmd;
    return false;
  }
  switch (cmd) {
  case CMD_AUX_DISABLE:
    set_ctr(dev, dev->ctr | NB_I8042_CTR_AUXDIS);
    break;
  case CMD_AUX_ENABLE:
    set_ctr(dev, dev->ctr & ~NB_I8042_CTR_AUXDIS);
    break;
  case CMD_AUX_TEST:
  case CMD_KBD_TEST:
    ctrl_reply(dev, 0x00, false);
    break;
  case CMD_SELF_TEST:
    ctrl_reply(dev, 0x55, false);
    break;
  case CMD_KBD_DISABLE:
    set_ctr(dev, dev->ctr | NB_I8042_CTR_KBDDIS);
    break;
  case CMD_KBD_ENABLE:
    set_ctr(dev, dev->ctr & ~NB_I8042_CTR_KBDDIS);
    break;
  case CMD_READ_INPUT:
    /* Keyboard not locked, colour display jumper. */
    ctrl_reply(dev, 0x80, false);
    break;
  case CMD_READ_OUTPUT:
    ctrl_reply(dev, output_port(dev), false);
    break;
  case CMD_WRITE_OUTPUT:
  case CMD_WRITE_KBD_OBUF:
  case CMD_WRITE_AUX_OBUF:
  case CMD_WRITE_AUX:
    dev->pending_cmd = cmd;
    break;
  case CMD_READ_TEST:
    ctrl_reply(dev, 0x00, false);
    break;
  default:
    /* Unknown commands are ignored, as most controllers do. */
    break;
  }
  return false;
}

static bool
data_write(NbI8042 *dev, uint8_t byte)
{
  uint8_t cmd = dev->pending_cmd;
  dev->pending_cmd = 0;
  if (cmd >= CMD_WRITE_CTR && cmd < CMD_WRITE_CTR + 0x20) {
    if (cmd == CMD_WRITE_CTR)
      set_ctr(dev, byte);
    else
      dev->ram[cmd & 0x1f] = byte;
    return false;
  }
  switch (cmd) {
  case CMD_WRITE_OUTPUT:
    dev->outport = byte;
    return !(byte & OUTPORT_RESET);
  case CMD_WRITE_KBD_OBUF:
    ctrl_reply(dev, byte, false);
    return false;
  case CMD_WRITE_AUX_OBUF:
    ctrl_reply(dev, byte, true);
    return false;
  case CMD_WRITE_AUX:
    mouse_write(dev, byte);
    return false;
  default:
    kbd_write(dev, byte);
    return false;
  }
}

static uint64_t
data_read(void *opaque, uint64_t offset, unsigned size)
{
  NbI8042 *dev = opaque;
  g_mutex_lock(&dev->lock);
  /* With nothing new the last byte reads again, as on hardware. */
  uint8_t v = dev->obuf;
  dev->obf = false;
  /* The line drops before the next byte raises it again: IRQ 1 and 12 are
   * edge-triggered, and a driver takes one byte per interrupt. */
  update_irq(dev);
  refill(dev);
  update_irq(dev);
  g_mutex_unlock(&dev->lock);
  return v;
}

static void
finish_write(NbI8042 *dev, bool reset)
{
  refill(dev);
  update_irq(dev);
  NbI8042ResetFunc func = dev->reset;
  void *ctx = dev->reset_ctx;
  g_mutex_unlock(&dev->lock);
  if (reset && func != NULL)
    func(ctx);
}

static void
data_write_op(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbI8042 *dev = opaque;
  g_mutex_lock(&dev->lock);
  dev->last_was_command = false;
  bool reset = data_write(dev, (uint8_t)value);
  finish_write(dev, reset);
}

static uint64_t
status_read(void *opaque, uint64_t offset, unsigned size)
{
  NbI8042 *dev = opaque;
  g_mutex_lock(&dev->lock);
  uint8_t v = NB_I8042_STR_UNLOCK;
  if (dev->obf)
    v |= NB_I8042_STR_OBF;
  if (dev->obf && dev->obuf_aux)
    v |= NB_I8042_STR_AUXDATA;
  if (dev->ctr & NB_I8042_CTR_SYS)
    v |= NB_I8042_STR_SYS;
  if (dev->last_was_command)
    v |= NB_I8042_STR_CMD;
  g_mutex_unlock(&dev->lock);
  return v;
}

static void
command_write_op(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbI8042 *dev = opaque;
  g_mutex_lock(&dev->lock);
  dev->last_was_command = true;
  bool reset = command_write(dev, (uint8_t)value);
  finish_write(dev, reset);
}

static const NbIoOps data_ops = { data_read, data_write_op };
static const NbIoOps command_ops = { status_read, command_write_op };

const NbIoOps *
nb_i8042_data_ops(void)
{
  return &data_ops;
}

const NbIoOps *
nb_i8042_command_ops(void)
{
  return &command_ops;
}

/* Public -------------------------------------------------------------------- */

static void
reset_locked(NbI8042 *dev)
{
  memset(dev->ram, 0, sizeof dev->ram);
  set_ctr(dev, CTR_DEFAULT);
  dev->outport = OUTPORT_RESET | OUTPORT_A20;
  dev->pending_cmd = 0;
  dev->last_was_command = false;
  dev->obf = false;
  dev->obuf = 0;
  dev->obuf_aux = false;
  dev->xlate_break = false;
  queue_init(&dev->ctrl, CTRL_QUEUE_SIZE);
  kbd_reset(dev);
  dev->mouse.buttons = 0;
  mouse_reset(dev);
  update_irq(dev);
}

NbI8042 *
nb_i8042_new(NbInterrupts *irqs, NbI8042ResetFunc reset, void *ctx)
{
  NbI8042 *dev = g_new0(NbI8042, 1);
  g_mutex_init(&dev->lock);
  dev->irqs = irqs;
  dev->reset = reset;
  dev->reset_ctx = ctx;
  g_mutex_lock(&dev->lock);
  reset_locked(dev);
  g_mutex_unlock(&dev->lock);
  return dev;
}

void
nb_i8042_reset(NbI8042 *dev)
{
  g_mutex_lock(&dev->lock);
  reset_locked(dev);
  g_mutex_unlock(&dev->lock);
}

bool
nb_i8042_register(NbI8042 *dev, NbIoBus *pio, GError **error)
{
  if (!nb_io_bus_register(pio, NB_I8042_DATA_PORT, 1, &data_ops, dev, error))
    return false;
  if (!nb_io_bus_register(pio, NB_I8042_COMMAND_PORT, 1, &command_ops, dev, error)) {
    nb_io_bus_unregister(pio, NB_I8042_DATA_PORT, dev);
    return false;
  }
  return true;
}

bool
nb_i8042_key_event(NbI8042 *dev, unsigned keycode, bool pressed)
{
  uint8_t seq[8];
  unsigned n = set2_sequence(keycode, pressed, seq);
  if (n == 0)
    return keycode == KEY_PAUSE;
  g_mutex_lock(&dev->lock);
  if (dev->kbd.scanning) {
    uint8_t out[8];
    unsigned n_out = 0;
    if (dev->kbd.set == 1) {
      /* The keyboard's own set 1: the same conversion the controller
       * does, done inside the keyboard. */
      bool in_break = false;
      for (unsigned i = 0; i < n; i++)
        if (xlate_byte(&in_break, seq[i], &out[n_out]))
          n_out++;
    } else {
      memcpy(out, seq, n);
      n_out = n;
    }
    /* A sequence goes whole or not at all: half a key confuses a driver
     * more than a lost one. */
    if (queue_room(&dev->kbd_q) >= n_out)
      for (unsigned i = 0; i < n_out; i++)
        kbd_send(dev, out[i]);
    refill(dev);
    update_irq(dev);
  }
  g_mutex_unlock(&dev->lock);
  return true;
}

unsigned
nb_i8042_keyboard_leds(NbI8042 *dev)
{
  g_mutex_lock(&dev->lock);
  unsigned leds = dev->kbd.leds;
  g_mutex_unlock(&dev->lock);
  return leds;
}

void
nb_i8042_mouse_event(NbI8042 *dev, int dx, int dy, int dz, unsigned buttons)
{
  /* Bound what piles up while the guest does not read. */
  const int limit = 1 << 20;
  g_mutex_lock(&dev->lock);
  Mouse *m = &dev->mouse;
  if (m->reporting || m->remote) {
    m->dx = CLAMP(m->dx + CLAMP(dx, -limit, limit), -limit, limit);
    /* PS/2 counts up as positive, screens count down. */
    m->dy = CLAMP(m->dy - CLAMP(dy, -limit, limit), -limit, limit);
    /* The IntelliMouse byte counts towards the user as positive. */
    m->dz = CLAMP(m->dz - CLAMP(dz, -limit, limit), -limit, limit);
    m->dirty = m->dirty || dx != 0 || dy != 0 || (dz != 0 && m->id == 3) ||
               (buttons & 0x07) != m->buttons;
  }
  m->buttons = buttons & 0x07;
  mouse_flush(dev);
  refill(dev);
  update_irq(dev);
  g_mutex_unlock(&dev->lock);
}

void
nb_i8042_free(NbI8042 *dev)
{
  if (dev == NULL)
    return;
  g_mutex_clear(&dev->lock);
  g_free(dev);
}
