#include "vnc-qemu.h"

#include <glib.h>
#include <linux/input-event-codes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct NbVncQemu {
  NbVncScancodeKeyFunc key;
  int leds;          /* atomic: the guest's LEDs, as last reported */
  int confirm;       /* atomic: a client waits for its extended key events to be confirmed */
  bool pending;      /* a client could not be written to (nb_vnc_qemu_refresh only) */
};

/* One client's part, under the client's sendMutex (taken by whoever
 * writes to the client, as libvncserver's own output thread does). */
typedef struct {
  NbVncQemu *q;
  bool want_leds;
  int leds_sent;     /* -1: not yet */
  bool confirm;      /* extended key events to be confirmed again */
} Client;

/* Key numbers ------------------------------------------------------------- */

/* QEMU's key numbers are XT (scancode set 1) make codes, 0x80 added for an
 * E0 prefix. Linux key codes 1 to 83 were made equal to set 1 codes, so
 * only the others need a table. */
static const struct {
  uint8_t qnum;
  uint16_t keycode;
} qnum_keys[] = {
  { 0x54, KEY_SYSRQ },          /* Alt+Print Screen; QEMU and noVNC send it for Print Screen */
  { 0x56, KEY_102ND },          { 0x57, KEY_F11 },           { 0x58, KEY_F12 },
  { 0x59, KEY_KPEQUAL },        { 0x70, KEY_KATAKANAHIRAGANA }, { 0x73, KEY_RO },
  { 0x79, KEY_HENKAN },         { 0x7b, KEY_MUHENKAN },      { 0x7d, KEY_YEN },
  { 0x7e, KEY_KPCOMMA },
  { 0x90, KEY_PREVIOUSSONG },   { 0x99, KEY_NEXTSONG },      { 0x9c, KEY_KPENTER },
  { 0x9d, KEY_RIGHTCTRL },      { 0xa0, KEY_MUTE },          { 0xa2, KEY_PLAYPAUSE },
  { 0xa4, KEY_STOPCD },         { 0xae, KEY_VOLUMEDOWN },    { 0xb0, KEY_VOLUMEUP },
  { 0xb5, KEY_KPSLASH },        { 0xb7, KEY_SYSRQ },         { 0xb8, KEY_RIGHTALT },
  { 0xc6, KEY_PAUSE },          /* E0 46: Ctrl+Break, the one code QEMU gives Pause */
  { 0xc7, KEY_HOME },           { 0xc8, KEY_UP },            { 0xc9, KEY_PAGEUP },
  { 0xcb, KEY_LEFT },           { 0xcd, KEY_RIGHT },         { 0xcf, KEY_END },
  { 0xd0, KEY_DOWN },           { 0xd1, KEY_PAGEDOWN },      { 0xd2, KEY_INSERT },
  { 0xd3, KEY_DELETE },         { 0xdb, KEY_LEFTMETA },      { 0xdc, KEY_RIGHTMETA },
  { 0xdd, KEY_COMPOSE },        { 0xde, KEY_POWER },         { 0xdf, KEY_SLEEP },
  { 0xe3, KEY_WAKEUP },
};

unsigned
nb_vnc_qemu_keycode(uint32_t qnum)
{
  if (qnum >= 1 && qnum <= 0x53)
    return qnum;
  for (gsize i = 0; i < G_N_ELEMENTS(qnum_keys); i++)
    if (qnum_keys[i].qnum == qnum)
      return qnum_keys[i].keycode;
  return 0;
}

/* Writing to a client ----------------------------------------------------- */

/* A FramebufferUpdate of one pseudo-rectangle (and its payload); with the
 * client's sendMutex held. Its geometry is 0x0 at 0,0: clients check a
 * rectangle against the screen's size, which may be changing just now. */
static bool
send_pseudo_rect(rfbClientPtr cl, int encoding, const uint8_t *payload, size_t len)
{
  uint8_t buf[16 + 8];
  g_assert(len <= 8);
  memset(buf, 0, 16);
  buf[0] = rfbFramebufferUpdate;
  buf[3] = 1;                                  /* one rectangle */
  uint32_t e = (uint32_t)encoding;
  buf[12] = (uint8_t)(e >> 24), buf[13] = (uint8_t)(e >> 16);
  buf[14] = (uint8_t)(e >> 8), buf[15] = (uint8_t)e;
  if (len)
    memcpy(buf + 16, payload, len);
  return rfbWriteExact(cl, (char *)buf, (int)(16 + len)) >= 0;
}

static bool
send_leds(rfbClientPtr cl, unsigned leds)
{
  uint8_t b = (uint8_t)(leds & 7);
  return send_pseudo_rect(cl, NB_VNC_ENCODING_QEMU_LED_STATE, &b, 1);
}

/* The extension ----------------------------------------------------------- */

static int qemu_encodings[] = { NB_VNC_ENCODING_QEMU_EXT_KEY, NB_VNC_ENCODING_QEMU_LED_STATE, 0 };

/* From the client's thread, on each encoding of its SetEncodings that
 * libvncserver does not know itself. */
static rfbBool
enable_encoding(rfbClientPtr cl, void **data, int encoding)
{
  Client *c = *data;
  if (c == NULL)
    return FALSE;
  bool ok = true;
  if (encoding == NB_VNC_ENCODING_QEMU_EXT_KEY) {
    /* Confirmed by sending the encoding back. libvncserver then answers
     * a client that asked for SupportedMessages (libvncclient does) with
     * its own list of messages, in the next update, without QEMU's; a
     * client that believes it stops sending extended key events. So the
     * confirmation is sent again once that list is out (see refresh). */
    pthread_mutex_lock(&cl->sendMutex);
    ok = send_pseudo_rect(cl, encoding, NULL, 0);
    c->confirm = true;
    g_atomic_int_set(&c->q->confirm, 1);
    pthread_mutex_unlock(&cl->sendMutex);
  } else if (encoding == NB_VNC_ENCODING_QEMU_LED_STATE) {
    /* The state now, so the client starts in step. */
    pthread_mutex_lock(&cl->sendMutex);
    c->want_leds = true;
    int leds = g_atomic_int_get(&c->q->leds);
    ok = send_leds(cl, (unsigned)leds);
    c->leds_sent = leds;
    pthread_mutex_unlock(&cl->sendMutex);
  } else {
    return FALSE;
  }
  if (!ok)
    rfbCloseClient(cl);
  return TRUE;
}

/* From the client's thread, on a message type libvncserver does not know
 * (its type byte already read). */
static rfbBool
handle_message(rfbClientPtr cl, void *data, const rfbClientToServerMsg *msg)
{
  Client *c = data;
  if (c == NULL || msg->type != NB_VNC_MSG_QEMU)
    return FALSE;
  /* subtype u8, down-flag u16, keysym u32, keycode u32 */
  uint8_t m[11];
  if (rfbReadExact(cl, (char *)m, 1) <= 0) {
    rfbCloseClient(cl);
    return TRUE;
  }
  if (m[0] != NB_VNC_QEMU_EXT_KEY_EVENT) {
    /* QEMU's audio messages were not offered: a client that sends them
     * is not following the protocol. */
    rfbLog("QEMU client message %u not supported, closing client %s\n", m[0], cl->host);
    rfbCloseClient(cl);
    return TRUE;
  }
  if (rfbReadExact(cl, (char *)m + 1, 10) <= 0) {
    rfbCloseClient(cl);
    return TRUE;
  }
  bool down = (m[1] << 8 | m[2]) != 0;
  uint32_t keysym = (uint32_t)m[3] << 24 | (uint32_t)m[4] << 16 | (uint32_t)m[5] << 8 | m[6];
  uint32_t qnum = (uint32_t)m[7] << 24 | (uint32_t)m[8] << 16 | (uint32_t)m[9] << 8 | m[10];
  c->q->key(cl, keysym, nb_vnc_qemu_keycode(qnum), down);
  return TRUE;
}

static rfbProtocolExtension qemu_extension = {
  .pseudoEncodings = qemu_encodings,
  .enablePseudoEncoding = enable_encoding,
  .handleMessage = handle_message,
};

void
nb_vnc_qemu_client_new(NbVncQemu *q, rfbClientPtr cl)
{
  /* Freed with free(): libvncserver's rfbDisableExtension would. */
  Client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->q = q;
  c->leds_sent = -1;
  if (!rfbEnableExtension(cl, &qemu_extension, c))
    free(c);
}

void
nb_vnc_qemu_client_gone(rfbClientPtr cl)
{
  /* libvncserver 0.9.14 frees neither an extension's data nor its own
   * record of it when a client goes: both are taken back here. */
  for (rfbExtensionData **p = &cl->extensions; *p;) {
    rfbExtensionData *e = *p;
    if (e->extension == &qemu_extension) {
      *p = e->next;
      free(e->data);
      free(e);
    } else {
      p = &e->next;
    }
  }
}

static Client *
client_of(rfbClientPtr cl)
{
  for (rfbExtensionData *e = cl->extensions; e; e = e->next)
    if (e->extension == &qemu_extension)
      return e->data;
  return NULL;
}

/* Whether a write of a few bytes to fd goes through at once. */
static bool
writable(int fd)
{
  struct pollfd p = { .fd = fd, .events = POLLOUT };
  return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) && !(p.revents & (POLLERR | POLLHUP));
}

/* Writes what c waits for; with the client's sendMutex and updateMutex.
 * Returns false when something is left for a later call. */
static bool
send_waiting(rfbClientPtr cl, Client *c, unsigned leds)
{
  if (cl->state != RFB_NORMAL || cl->sock == RFB_INVALID_SOCKET)
    return true;   /* going: nothing to wait for */
  /* SupportedMessages that is still to go out would undo a confirmation. */
  bool confirm = c->confirm && !cl->enableSupportedMessages;
  bool tell = c->want_leds && c->leds_sent != (int)leds;
  if (!confirm && !tell)
    return !c->confirm;
  if (!writable(cl->sock))
    return false;
  if (confirm && send_pseudo_rect(cl, NB_VNC_ENCODING_QEMU_EXT_KEY, NULL, 0))
    c->confirm = false;
  if (tell && send_leds(cl, leds))
    c->leds_sent = (int)leds;
  return !c->confirm;
}

void
nb_vnc_qemu_refresh(NbVncQemu *q, rfbScreenInfoPtr screen, unsigned leds)
{
  int old = g_atomic_int_get(&q->leds);
  if ((int)leds == old && !q->pending && !g_atomic_int_get(&q->confirm))
    return;
  g_atomic_int_set(&q->leds, (int)leds);
  g_atomic_int_set(&q->confirm, 0);
  bool pending = false;
  rfbClientIteratorPtr it = rfbGetClientIterator(screen);
  rfbClientPtr cl;
  while ((cl = rfbClientIteratorNext(it)) != NULL) {
    Client *c = client_of(cl);
    if (c == NULL)
      continue;
    /* Never wait: the output thread holds sendMutex while it writes an
     * update (which takes long for a client that reads slowly), and
     * libvncserver takes the two locks in either order. The client's
     * updateMutex keeps its thread from closing the socket under the
     * write. Whoever could not be told now is told on a later call. */
    if (pthread_mutex_trylock(&cl->sendMutex) != 0) {
      pending = true;
      continue;
    }
    if (pthread_mutex_trylock(&cl->updateMutex) == 0) {
      if (!send_waiting(cl, c, leds))
        pending = true;
      pthread_mutex_unlock(&cl->updateMutex);
    } else {
      pending = true;
    }
    pthread_mutex_unlock(&cl->sendMutex);
  }
  rfbReleaseClientIterator(it);
  q->pending = pending;
}

NbVncQemu *
nb_vnc_qemu_new(NbVncScancodeKeyFunc key)
{
  NbVncQemu *q = g_new0(NbVncQemu, 1);
  q->key = key;
  return q;
}

void
nb_vnc_qemu_free(NbVncQemu *q)
{
  g_free(q);
}
