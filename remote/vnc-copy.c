#include "vnc-copy.h"

#include <glib.h>
#include <pthread.h>
#include <string.h>

static int
cmp_x(const void *a, const void *b)
{
  const sraRect *r = a, *s = b;
  return (r->x1 > s->x1) - (r->x1 < s->x1);
}

/* Moves every rectangle of copy by (dx, dy) within the framebuffer, so
 * that no source pixel is overwritten before it is read: line by line away
 * from the sources (bottom up when moving down), and along a line away
 * from them when the move is horizontal only. */
static void
move_pixels(rfbScreenInfoPtr screen, sraRegionPtr copy, int dx, int dy)
{
  GArray *rects = g_array_new(FALSE, FALSE, sizeof(sraRect));
  sraRectangleIterator *it = sraRgnGetIterator(copy);
  sraRect r;
  int top = screen->height, bottom = 0;
  while (sraRgnIteratorNext(it, &r)) {
    g_array_append_val(rects, r);
    top = MIN(top, r.y1);
    bottom = MAX(bottom, r.y2);
  }
  sraRgnReleaseIterator(it);
  g_array_sort(rects, cmp_x);
  const sraRect *rs = (const sraRect *)rects->data;
  const int n = (int)rects->len, stride = screen->paddedWidthInBytes;
  char *fb = screen->frameBuffer;
  for (int k = 0; k < bottom - top; k++) {
    int y = dy > 0 ? bottom - 1 - k : top + k;
    for (int j = 0; j < n; j++) {
      const sraRect *q = &rs[dx > 0 ? n - 1 - j : j];
      if (y < q->y1 || y >= q->y2)
        continue;
      memmove(fb + (size_t)y * stride + (size_t)q->x1 * 4,
              fb + (size_t)(y - dy) * stride + (size_t)(q->x1 - dx) * 4, (size_t)(q->x2 - q->x1) * 4);
    }
  }
  g_array_free(rects, TRUE);
}

/* One client's share, under its update lock. A client whose picture is
 * not the screen's own (scaled), or that lacks CopyRect, gets it all as
 * modified. Otherwise the copy joins the client's pending one (RFB has
 * one vector per CopyRect: a pending copy with another vector becomes
 * modified), and the parts whose source the client does not have yet are
 * sent as pixels instead. The rest is added last: the client gets it after
 * the copy (a CopyRect goes first in an update), which reads the client's
 * old pixels there, as the move did. */
static void
schedule(rfbClientPtr cl, sraRegionPtr copy, int dx, int dy, sraRegionPtr rest)
{
  if (!cl->useCopyRect || cl->scaledScreen != cl->screen) {
    sraRgnOr(cl->modifiedRegion, copy);
  } else {
    if (!sraRgnEmpty(cl->copyRegion) && (cl->copyDX != dx || cl->copyDY != dy)) {
      sraRgnOr(cl->modifiedRegion, cl->copyRegion);
      sraRgnMakeEmpty(cl->copyRegion);
    }
    /* The pending copy runs in the same CopyRect, from the client's
     * picture before it: its own destinations are thus no source for the
     * new copy, nor is anything pending as modified. (Earlier
     * destinations need nothing new: they read the old pixels they need.) */
    sraRegionPtr unsent = sraRgnCreateRgn(cl->copyRegion);
    sraRgnOr(unsent, cl->modifiedRegion);
    sraRgnOffset(unsent, dx, dy);
    sraRgnAnd(unsent, copy);
    sraRgnOr(cl->modifiedRegion, unsent);
    sraRgnOr(cl->copyRegion, copy);
    sraRgnDestroy(unsent);
    cl->copyDX = dx;
    cl->copyDY = dy;
  }
  sraRgnOr(cl->modifiedRegion, rest);
  pthread_cond_signal(&cl->updateCond);
}

static bool
held(GPtrArray *clients, rfbClientPtr cl)
{
  for (guint i = 0; i < clients->len; i++)
    if (clients->pdata[i] == cl)
      return true;
  return false;
}

bool
nb_vnc_copy_region(rfbScreenInfoPtr screen, sraRegionPtr copy, int dx, int dy,
                   sraRegionPtr rest, void (*paint)(void *ctx), void *ctx)
{
  GPtrArray *clients = g_ptr_array_new();
  bool ok = true;
  rfbClientIteratorPtr it = rfbGetClientIterator(screen);
  rfbClientPtr cl;
  while (ok && (cl = rfbClientIteratorNext(it)) != NULL) {
    /* A client that gets it all as pixels needs no lock now: whatever
     * it is sending meanwhile, it is sent all of it again after. */
    if (!cl->useCopyRect || cl->scaledScreen != cl->screen)
      continue;
    if (pthread_mutex_trylock(&cl->sendMutex) != 0) {
      ok = false;
    } else if (pthread_mutex_trylock(&cl->updateMutex) != 0) {
      pthread_mutex_unlock(&cl->sendMutex);
      ok = false;
    } else {
      rfbIncrClientRef(cl);   /* beyond the iterator's step */
      g_ptr_array_add(clients, cl);
    }
  }
  rfbReleaseClientIterator(it);
  ok = ok && clients->len > 0;   /* else plain pixels for all, without the move */
  if (ok) {
    move_pixels(screen, copy, dx, dy);
    paint(ctx);
    for (guint i = 0; i < clients->len; i++)
      schedule(clients->pdata[i], copy, dx, dy, rest);
  }
  for (guint i = 0; i < clients->len; i++) {
    cl = clients->pdata[i];
    pthread_mutex_unlock(&cl->updateMutex);
    pthread_mutex_unlock(&cl->sendMutex);
  }
  if (ok) {
    /* So do clients without CopyRect, and any that joined since the list
     * was walked (it may have been sent pixels halfway through the move). */
    sraRegionPtr all = sraRgnCreateRgn(copy);
    sraRgnOr(all, rest);
    it = rfbGetClientIterator(screen);
    while ((cl = rfbClientIteratorNext(it)) != NULL) {
      if (held(clients, cl))
        continue;
      pthread_mutex_lock(&cl->updateMutex);
      sraRgnOr(cl->modifiedRegion, all);
      pthread_cond_signal(&cl->updateCond);
      pthread_mutex_unlock(&cl->updateMutex);
    }
    rfbReleaseClientIterator(it);
    sraRgnDestroy(all);
  }
  for (guint i = 0; i < clients->len; i++)
    rfbDecrClientRef(clients->pdata[i]);
  g_ptr_array_free(clients, TRUE);
  return ok;
}
