/* The viewer's session: connecting (our own TCP connect, so that the error says why;
 * then libvncclient's handshake on that socket), drawing the remote framebuffer scaled
 * into the window, sending input, and reconnecting with a backoff when the server goes
 * away. libvncclient is used from the main thread only; a small thread waits on the
 * socket and wakes the SDL event loop, so an idle viewer sleeps instead of polling. */
#include "viewer-session.h"

#include "viewer-geometry.h"
#include "viewer-keyboard.h"
#include "viewer-password.h"
#include "viewer-status.h"

#include <SDL.h>
#include <SDL_syswm.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <rfb/rfbclient.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The TCP connect may take this long before the host counts as unreachable. */
#define CONNECT_TIMEOUT_S 10
/* A server that stops in the middle of a message is dropped after this long. */
#define READ_TIMEOUT_S 20
/* Keepalive probes notice a server that vanished without closing (power cut, cable). */
#define KEEPALIVE_IDLE_S 10
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3
/* Reconnect backoff: 1 s, doubling, at most 16 s. */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 16000
/* The largest remote desktop accepted: what SDL textures and our memory allow. */
#define REMOTE_MAX_SIDE 16384
/* Server messages handled before input gets its turn again. */
#define MESSAGES_PER_WAKEUP 64

typedef enum {
  STATE_CONNECTING,    /* before the first connection */
  STATE_CONNECTED,
  STATE_RECONNECTING,  /* the connection was lost; the next try is due at retry_at */
} ViewerState;

typedef struct {
  const NbViewerOptions *options;
  char *name;                 /* "host:1", for messages and the title */

  SDL_Window *window;
  SDL_Renderer *renderer;
  SDL_Texture *texture;
  int texture_w, texture_h;
  bool fullscreen;
  bool covering;              /* "fullscreen" by a borderless window over the screen */
  SDL_Rect windowed;          /* the window's place before fullscreen */
  Uint64 fullscreen_check_at;

  rfbClient *client;
  guint8 *fb;                 /* the client's framebuffer, owned here */
  int fb_w, fb_h;
  bool fb_resized;            /* the texture must be made again */
  NbViewerRect damage;        /* framebuffer area not yet copied to the texture */
  bool damaged;
  bool sized_window;          /* the window got the remote size once */

  char *password;
  bool password_asked;
  GError *password_error;

  ViewerState state;
  bool ever_connected;        /* --wait: until then the panel says "waiting for" */
  guint32 backoff_ms;
  Uint64 retry_at;
  Uint64 retry_from;
  char *status_detail;        /* why the last try failed, shown while reconnecting */
  char *reason;               /* the last failure in a few words, for status_detail */

  NbViewerKeyboard keyboard;
  int buttons;
  int pointer_x, pointer_y;

  /* A connection attempt made while the window is up runs on a thread of its own, so
   * that the window stays responsive; quitting cancels it through these. */
  GCancellable *cancel;
  GMutex cancel_lock;
  int cancel_fd;              /* a duplicate of the socket being set up, for shutdown() */

  /* The socket watcher thread. */
  SDL_Thread *reader;
  SDL_sem *reader_go;         /* posted when the main thread has read what was there */
  int reader_stop[2];
  int reader_fd;
  Uint32 readable_event;
  Sint32 generation;          /* which connection a readable event belongs to */
} Viewer;

static Viewer *log_viewer;
static char last_log[512];

/* libvncclient reports everything, failures included, through these two hooks. The
 * last line is kept: it is the reason a handshake or a connection failed. */
static void G_GNUC_PRINTF(1, 2)
on_rfb_log(const char *format, ...)
{
  va_list args;
  va_start(args, format);
  vsnprintf(last_log, sizeof(last_log), format, args);
  va_end(args);
  g_strchomp(last_log);
  if (log_viewer && log_viewer->options->verbose)
    fprintf(stderr, "nestbox-viewer: libvncclient: %s\n", last_log);
}

static void G_GNUC_PRINTF(2, 3)
note(Viewer *viewer, const char *format, ...)
{
  va_list args;
  va_start(args, format);
  g_autofree char *text = g_strdup_vprintf(format, args);
  va_end(args);
  fprintf(stderr, "nestbox-viewer: %s\n", text);
}

static Viewer *
viewer_of(rfbClient *client)
{
  return rfbClientGetClientData(client, (void *)&log_viewer);
}

/* --- framebuffer ------------------------------------------------------------ */

static void
add_damage(Viewer *viewer, int x, int y, int w, int h)
{
  /* Clamp: the rectangle comes from the server. */
  if (x < 0 || y < 0 || w <= 0 || h <= 0 || x >= viewer->fb_w || y >= viewer->fb_h)
    return;
  if (w > viewer->fb_w - x)
    w = viewer->fb_w - x;
  if (h > viewer->fb_h - y)
    h = viewer->fb_h - y;
  if (!viewer->damaged) {
    viewer->damage = (NbViewerRect){ x, y, w, h };
    viewer->damaged = true;
    return;
  }
  NbViewerRect *d = &viewer->damage;
  int x1 = MIN(d->x, x), y1 = MIN(d->y, y);
  int x2 = MAX(d->x + d->w, x + w), y2 = MAX(d->y + d->h, y + h);
  *d = (NbViewerRect){ x1, y1, x2 - x1, y2 - y1 };
}

/* Called by libvncclient at the handshake and on every DesktopSize change. */
static rfbBool
on_rfb_resize(rfbClient *client)
{
  Viewer *viewer = viewer_of(client);
  int w = client->width, h = client->height;
  if (w <= 0 || h <= 0 || w > REMOTE_MAX_SIDE || h > REMOTE_MAX_SIDE) {
    note(viewer, "the server at %s announced a %dx%d desktop; only 1x1 to %dx%d can be shown",
         viewer->name, w, h, REMOTE_MAX_SIDE, REMOTE_MAX_SIDE);
    return FALSE;
  }
  guint8 *fb = g_try_malloc0((gsize)w * (gsize)h * 4);
  if (fb == NULL) {
    note(viewer, "no memory for a %dx%d remote desktop", w, h);
    return FALSE;
  }
  g_free(viewer->fb);
  viewer->fb = fb;
  viewer->fb_w = w;
  viewer->fb_h = h;
  viewer->fb_resized = true;
  viewer->damaged = false;
  client->frameBuffer = fb;
  /* 32-bit pixels laid out as SDL's XRGB8888: blue in the low byte. */
  client->format.bitsPerPixel = 32;
  client->format.depth = 24;
  client->format.redShift = 16;
  client->format.greenShift = 8;
  client->format.blueShift = 0;
  client->format.redMax = client->format.greenMax = client->format.blueMax = 255;
  if (viewer->state == STATE_CONNECTED || viewer->options->verbose)
    note(viewer, "the remote desktop is %dx%d", w, h);
  return TRUE;
}

static void
on_rfb_update(rfbClient *client, int x, int y, int w, int h)
{
  add_damage(viewer_of(client), x, y, w, h);
}

static char *
on_rfb_password(rfbClient *client)
{
  Viewer *viewer = viewer_of(client);
  viewer->password_asked = true;
  if (viewer->password == NULL) {
    g_autofree char *prompt = g_strdup_printf("Password for %s: ", viewer->name);
    g_clear_error(&viewer->password_error);
    if (viewer->options->password_file)  /* read again: it may have been corrected */
      viewer->password = nb_viewer_password_read_file(viewer->options->password_file,
                                                      &viewer->password_error);
    else
      viewer->password = nb_viewer_password_ask(prompt, &viewer->password_error);
    if (viewer->password == NULL)
      return NULL;
  }
  /* libvncclient frees what it gets, with free(). */
  return strdup(viewer->password);
}

/* --- the socket watcher ------------------------------------------------------ */

static int
reader_main(void *data)
{
  Viewer *viewer = data;
  for (;;) {
    struct pollfd fds[2] = {
      { .fd = viewer->reader_fd, .events = POLLIN },
      { .fd = viewer->reader_stop[0], .events = POLLIN },
    };
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[1].revents)
      break;
    SDL_Event event = { .type = viewer->readable_event };
    event.user.code = viewer->generation;
    if (SDL_PushEvent(&event) <= 0)
      SDL_Delay(10);  /* the queue is full: input is flooding in; try again shortly */
    else
      SDL_SemWait(viewer->reader_go);
  }
  return 0;
}

static bool
reader_start(Viewer *viewer, GError **error)
{
  viewer->generation++;
  viewer->reader_fd = viewer->client->sock;
  if (pipe2(viewer->reader_stop, O_CLOEXEC) < 0) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY,
                "cannot create a pipe: %s", g_strerror(errno));
    return false;
  }
  viewer->reader_go = SDL_CreateSemaphore(0);
  viewer->reader = viewer->reader_go ? SDL_CreateThread(reader_main, "vnc-reader", viewer)
                                     : NULL;
  if (viewer->reader == NULL) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY,
                "cannot start the socket thread: %s", SDL_GetError());
    return false;
  }
  return true;
}

static void
reader_stop(Viewer *viewer)
{
  if (viewer->reader) {
    if (write(viewer->reader_stop[1], "x", 1) < 0) {
      /* A pipe with room for a byte does not fail; if it did, the wait below hangs
       * visibly instead of leaving a thread on a closed socket. */
    }
    SDL_SemPost(viewer->reader_go);
    SDL_WaitThread(viewer->reader, NULL);
    viewer->reader = NULL;
  }
  if (viewer->reader_go) {
    SDL_DestroySemaphore(viewer->reader_go);
    viewer->reader_go = NULL;
  }
  for (int i = 0; i < 2; i++) {
    if (viewer->reader_stop[i] >= 0)
      close(viewer->reader_stop[i]);
    viewer->reader_stop[i] = -1;
  }
}

/* libvncclient 0.9.14 (Debian 12) asks for ExtendedDesktopSize and then ignores every
 * such resize whose screen id is 0, which is what QEMU sends: the next update after the
 * guest changes mode no longer fits, and the connection breaks. Fixed upstream after
 * 0.9.14. Until then, replace its encoding list with the same list minus
 * ExtendedDesktopSize, so that servers resize with plain DesktopSize, which it handles. */
static bool
ext_desktop_size_broken(void)
{
  int major = atoi(LIBVNCSERVER_VERSION_MAJOR), minor = atoi(LIBVNCSERVER_VERSION_MINOR),
      patch = atoi(LIBVNCSERVER_VERSION_PATCHLEVEL);
  return major == 0 && (minor < 9 || (minor == 9 && patch <= 14));
}

static bool
send_encodings(rfbClient *client)
{
  if (!ext_desktop_size_broken())
    return true;
  /* libvncclient's own default order and levels (compress 3, quality 5). */
  static const guint32 encodings[] = {
#if defined(LIBVNCSERVER_HAVE_LIBZ) && defined(LIBVNCSERVER_HAVE_LIBJPEG)
    rfbEncodingTight,
#endif
#ifdef LIBVNCSERVER_HAVE_LIBZ
    rfbEncodingZRLE,
#endif
    rfbEncodingUltra, rfbEncodingCopyRect, rfbEncodingHextile,
#ifdef LIBVNCSERVER_HAVE_LIBZ
    rfbEncodingZlib,
#endif
    rfbEncodingCoRRE, rfbEncodingRRE, rfbEncodingRaw,
    rfbEncodingCompressLevel0 + 3, rfbEncodingQualityLevel0 + 5,
    rfbEncodingKeyboardLedState, rfbEncodingNewFBSize, rfbEncodingLastRect,
    rfbEncodingSupportedMessages, rfbEncodingSupportedEncodings, rfbEncodingServerIdentity,
  };
  guint8 message[sz_rfbSetEncodingsMsg + sizeof(encodings)];
  rfbSetEncodingsMsg header = { .type = rfbSetEncodings,
                                .nEncodings = GUINT16_TO_BE(G_N_ELEMENTS(encodings)) };
  memcpy(message, &header, sz_rfbSetEncodingsMsg);
  for (gsize i = 0; i < G_N_ELEMENTS(encodings); i++) {
    guint32 be = GUINT32_TO_BE(encodings[i]);
    memcpy(message + sz_rfbSetEncodingsMsg + i * 4, &be, 4);
  }
  return WriteToRFBServer(client, (const char *)message, sizeof(message));
}

/* --- connecting ---------------------------------------------------------------- */

static int
connect_socket(Viewer *viewer, GError **error)
{
  g_autoptr(GSocketClient) socket_client = g_socket_client_new();
  g_socket_client_set_timeout(socket_client, CONNECT_TIMEOUT_S);
  g_autoptr(GError) local = NULL;
  g_autoptr(GSocketConnection) connection =
    g_socket_client_connect_to_host(socket_client, viewer->options->address.host,
                                    viewer->options->address.port, viewer->cancel, &local);
  if (connection == NULL) {
    g_free(viewer->reason);
    viewer->reason = g_strdup(local->message);
    if (local->domain == G_RESOLVER_ERROR)
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_CONNECT,
                  "cannot connect to %s: %s — check the host name, or give an address",
                  viewer->name, local->message);
    else
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_CONNECT,
                  "cannot connect to %s (TCP port %u): %s — check that the machine is "
                  "running with its VNC server on, and that the network lets the port through",
                  viewer->name, viewer->options->address.port, local->message);
    return -1;
  }
  GSocket *socket = g_socket_connection_get_socket(connection);
  int fd = fcntl(g_socket_get_fd(socket), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_CONNECT,
                "cannot keep the connection to %s: %s", viewer->name, g_strerror(errno));
    return -1;
  }
  if (viewer->cancel) {
    g_mutex_lock(&viewer->cancel_lock);
    viewer->cancel_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    g_mutex_unlock(&viewer->cancel_lock);
  }
  /* The socket stays non-blocking: libvncclient's read timeout works only so. */
  int one = 1, idle = KEEPALIVE_IDLE_S, interval = KEEPALIVE_INTERVAL_S,
      count = KEEPALIVE_COUNT;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  return fd;
}

static void
forget_password(Viewer *viewer)
{
  if (viewer->password) {
    explicit_bzero(viewer->password, strlen(viewer->password));
    g_clear_pointer(&viewer->password, g_free);
  }
}

static bool
viewer_connect(Viewer *viewer, GError **error)
{
  int fd = connect_socket(viewer, error);
  if (fd < 0)
    return false;

  rfbClient *client = rfbGetClient(8, 3, 4);
  if (client == NULL) {
    close(fd);
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PROTOCOL, "out of memory");
    return false;
  }
  rfbClientSetClientData(client, (void *)&log_viewer, viewer);
  client->programName = "nestbox-viewer";
  client->MallocFrameBuffer = on_rfb_resize;
  client->GotFrameBufferUpdate = on_rfb_update;
  client->GetPassword = on_rfb_password;
  client->canHandleNewFBSize = TRUE;
  client->appData.useRemoteCursor = FALSE;
  client->readTimeout = READ_TIMEOUT_S;
  free(client->serverHost);
  client->serverHost = strdup(viewer->options->address.host);
  client->serverPort = viewer->options->address.port;
  /* We connected ourselves: libvncclient's "listen" mode takes the socket as it is. */
  client->sock = fd;
  client->listenSpecified = TRUE;
  client->format.redShift = 16;
  client->format.greenShift = 8;
  client->format.blueShift = 0;

  viewer->password_asked = false;
  last_log[0] = '\0';
  if (!rfbInitClient(client, NULL, NULL)) {
    /* rfbInitClient freed the client and closed the socket; the framebuffer is ours. */
    g_clear_pointer(&viewer->fb, g_free);
    viewer->fb_w = viewer->fb_h = 0;
    if (viewer->password_error) {
      g_propagate_error(error, g_steal_pointer(&viewer->password_error));
    } else if (viewer->password_asked) {
      forget_password(viewer);
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_AUTH,
                  "the server at %s refused the password (%s) — check the password%s",
                  viewer->name, last_log[0] ? last_log : "authentication failed",
                  viewer->options->password_file ? " in the password file" : "");
    } else {
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PROTOCOL,
                  "the VNC handshake with %s failed: %s", viewer->name,
                  last_log[0] ? last_log : "the server closed the connection");
    }
    g_free(viewer->reason);
    viewer->reason = g_strdup(last_log[0] ? last_log : "the server closed the connection");
    return false;
  }
  viewer->client = client;
  if (!send_encodings(client)) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PROTOCOL,
                "the connection to %s broke right after the handshake: %s", viewer->name,
                last_log[0] ? last_log : "the server closed the connection");
    rfbClientCleanup(client);
    viewer->client = NULL;
    g_clear_pointer(&viewer->fb, g_free);
    return false;
  }
  return true;
}

/* The connection is up: watch its socket, from the main thread. */
static bool
viewer_connected(Viewer *viewer, GError **error)
{
  if (!reader_start(viewer, error)) {
    reader_stop(viewer);
    rfbClientCleanup(viewer->client);
    viewer->client = NULL;
    g_clear_pointer(&viewer->fb, g_free);
    return false;
  }
  viewer->state = STATE_CONNECTED;
  viewer->ever_connected = true;
  return true;
}

static void
viewer_disconnect(Viewer *viewer)
{
  reader_stop(viewer);
  if (viewer->client) {
    rfbClientCleanup(viewer->client);
    viewer->client = NULL;
  }
  g_clear_pointer(&viewer->fb, g_free);
  viewer->fb_w = viewer->fb_h = 0;
  viewer->damaged = false;
  nb_viewer_keyboard_release_all(&viewer->keyboard, false);
  viewer->buttons = 0;
}

/* --- the window ---------------------------------------------------------------- */

static void
set_title(Viewer *viewer)
{
  if (viewer->window == NULL)
    return;
  const char *state = viewer->state == STATE_CONNECTED ? "" :
                      viewer->state == STATE_CONNECTING ? " — connecting" :
                      viewer->ever_connected ? " — reconnecting" : " — waiting for the server";
  g_autofree char *title = g_strdup_printf("%s%s — nestbox-viewer", viewer->name, state);
  SDL_SetWindowTitle(viewer->window, title);
}

/* Fullscreen is asked of the window manager. A thin client's kiosk session may have
 * none, and then nothing happens: the check that follows a change notices, and covers
 * the screen with a borderless window instead. */
#define FULLSCREEN_CHECK_MS 400

static void
set_fullscreen(Viewer *viewer, bool fullscreen)
{
  viewer->fullscreen = fullscreen;
  if (viewer->covering) {
    /* Leaving our own fullscreen: the window as it was. */
    viewer->covering = false;
    SDL_SetWindowBordered(viewer->window, SDL_TRUE);
    SDL_SetWindowSize(viewer->window, viewer->windowed.w, viewer->windowed.h);
    SDL_SetWindowPosition(viewer->window, viewer->windowed.x, viewer->windowed.y);
  }
  if (fullscreen) {
    SDL_GetWindowPosition(viewer->window, &viewer->windowed.x, &viewer->windowed.y);
    SDL_GetWindowSize(viewer->window, &viewer->windowed.w, &viewer->windowed.h);
  }
  SDL_SetWindowFullscreen(viewer->window, fullscreen ? SDL_WINDOW_FULLSCREEN_DESKTOP : 0);
  /* Fullscreen is the thin client's whole screen: its shortcuts belong to the remote
   * desktop. In a window they stay with the local desktop. */
  SDL_SetWindowKeyboardGrab(viewer->window, fullscreen ? SDL_TRUE : SDL_FALSE);
  viewer->fullscreen_check_at = fullscreen ? SDL_GetTicks64() + FULLSCREEN_CHECK_MS : 0;
  if (viewer->options->verbose)
    note(viewer, "%s", fullscreen ? "fullscreen" : "in a window");
}

static void
check_fullscreen(Viewer *viewer)
{
  viewer->fullscreen_check_at = 0;
  if (!viewer->fullscreen || viewer->covering)
    return;
  /* SDL reports the size it asked for; only X knows the size the window got. Other
   * video drivers (KMS/DRM, Wayland) do fullscreen without a window manager's help. */
  SDL_SysWMinfo info;
  SDL_VERSION(&info.version);
  if (!SDL_GetWindowWMInfo(viewer->window, &info) || info.subsystem != SDL_SYSWM_X11)
    return;
  XWindowAttributes attributes;
  if (!XGetWindowAttributes(info.info.x11.display, info.info.x11.window, &attributes))
    return;
  SDL_Rect bounds;
  if (SDL_GetDisplayBounds(SDL_GetWindowDisplayIndex(viewer->window), &bounds) < 0)
    return;
  int w = attributes.width, h = attributes.height;
  if (w >= bounds.w && h >= bounds.h)
    return;
  if (viewer->options->verbose)
    note(viewer, "the window manager did not make the window fullscreen (%dx%d on a %dx%d "
         "screen): covering the screen instead", w, h, bounds.w, bounds.h);
  SDL_SetWindowFullscreen(viewer->window, 0);
  viewer->covering = true;
  SDL_SetWindowBordered(viewer->window, SDL_FALSE);
  SDL_SetWindowPosition(viewer->window, bounds.x, bounds.y);
  SDL_SetWindowSize(viewer->window, bounds.w, bounds.h);
  SDL_RaiseWindow(viewer->window);
}

static bool
open_window(Viewer *viewer, GError **error)
{
  if (SDL_InitSubSystem(SDL_INIT_VIDEO) < 0) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY,
                "cannot open the display: %s — the viewer needs X11, Wayland or a KMS "
                "console (SDL_VIDEODRIVER chooses)", SDL_GetError());
    return false;
  }
  viewer->sized_window = viewer->fb_w > 0;
  int w = viewer->fb_w > 0 ? viewer->fb_w : 1024;
  int h = viewer->fb_h > 0 ? viewer->fb_h : 768;
  SDL_Rect usable;
  if (SDL_GetDisplayUsableBounds(0, &usable) == 0 && usable.w > 0 && usable.h > 0 &&
      (w > usable.w || h > usable.h)) {
    NbViewerRect fit = nb_viewer_fit(w, h, usable.w, usable.h);
    w = fit.w;
    h = fit.h;
  }
  Uint32 flags = SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI;
  viewer->window = SDL_CreateWindow("nestbox-viewer", SDL_WINDOWPOS_CENTERED,
                                    SDL_WINDOWPOS_CENTERED, w, h, flags);
  if (viewer->window == NULL) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY,
                "cannot open a window: %s", SDL_GetError());
    return false;
  }
  viewer->renderer = SDL_CreateRenderer(viewer->window, -1, 0);
  if (viewer->renderer == NULL)
    viewer->renderer = SDL_CreateRenderer(viewer->window, -1, SDL_RENDERER_SOFTWARE);
  if (viewer->renderer == NULL) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY,
                "cannot draw in the window: %s", SDL_GetError());
    return false;
  }
  set_fullscreen(viewer, viewer->options->fullscreen);
  set_title(viewer);
  return true;
}

/* Brings the texture up to date with the framebuffer. */
static bool
upload(Viewer *viewer)
{
  if (viewer->fb == NULL)
    return true;
  if (viewer->fb_resized || viewer->texture == NULL) {
    if (viewer->texture)
      SDL_DestroyTexture(viewer->texture);
    viewer->texture = SDL_CreateTexture(viewer->renderer, SDL_PIXELFORMAT_RGB888,
                                        SDL_TEXTUREACCESS_STREAMING, viewer->fb_w,
                                        viewer->fb_h);
    if (viewer->texture == NULL) {
      note(viewer, "cannot show a %dx%d desktop: %s", viewer->fb_w, viewer->fb_h,
           SDL_GetError());
      return false;
    }
    viewer->texture_w = viewer->fb_w;
    viewer->texture_h = viewer->fb_h;
    viewer->fb_resized = false;
    viewer->damage = (NbViewerRect){ 0, 0, viewer->fb_w, viewer->fb_h };
    viewer->damaged = true;
    if (!viewer->sized_window && !viewer->fullscreen) {
      /* The first picture: a window of its size, unless the screen is smaller. */
      viewer->sized_window = true;
      SDL_Rect usable;
      int w = viewer->fb_w, h = viewer->fb_h;
      if (SDL_GetDisplayUsableBounds(0, &usable) == 0 && (w > usable.w || h > usable.h)) {
        NbViewerRect fit = nb_viewer_fit(w, h, usable.w, usable.h);
        w = fit.w;
        h = fit.h;
      }
      SDL_SetWindowSize(viewer->window, w, h);
    }
  }
  if (viewer->damaged) {
    NbViewerRect d = viewer->damage;
    SDL_Rect rect = { d.x, d.y, d.w, d.h };
    SDL_UpdateTexture(viewer->texture, &rect,
                      viewer->fb + ((gsize)d.y * (gsize)viewer->fb_w + (gsize)d.x) * 4,
                      viewer->fb_w * 4);
    viewer->damaged = false;
  }
  return true;
}

static NbViewerRect
view_rect(Viewer *viewer)
{
  int out_w = 0, out_h = 0;
  SDL_GetRendererOutputSize(viewer->renderer, &out_w, &out_h);
  return nb_viewer_fit(viewer->texture_w, viewer->texture_h, out_w, out_h);
}

static void
render(Viewer *viewer)
{
  if (viewer->window == NULL)
    return;
  SDL_SetRenderDrawColor(viewer->renderer, 0, 0, 0, 255);
  SDL_RenderClear(viewer->renderer);
  if (viewer->texture) {
    NbViewerRect v = view_rect(viewer);
    SDL_Rect dst = { v.x, v.y, v.w, v.h };
    SDL_RenderCopy(viewer->renderer, viewer->texture, NULL, &dst);
  }
  if (viewer->state != STATE_CONNECTED) {
    int out_w = 0, out_h = 0;
    SDL_GetRendererOutputSize(viewer->renderer, &out_w, &out_h);
    double progress = -1;
    g_autofree char *line = NULL;
    if (viewer->state == STATE_RECONNECTING) {
      Uint64 now = SDL_GetTicks64();
      guint64 remaining = viewer->retry_at > now ? viewer->retry_at - now : 0;
      progress = 1.0;
      if (viewer->retry_at > viewer->retry_from)
        progress = 1.0 - (double)remaining / (double)(viewer->retry_at - viewer->retry_from);
      const char *doing = viewer->ever_connected ? "reconnecting to" : "waiting for";
      line = remaining > 0 ? g_strdup_printf("%s %s: next try in %u s", doing, viewer->name,
                                             (unsigned)((remaining + 999) / 1000))
                           : g_strdup_printf("%s %s ...", doing, viewer->name);
    } else {
      line = g_strdup_printf("connecting to %s ...", viewer->name);
    }
    nb_viewer_status_draw(viewer->renderer, out_w, out_h, line, viewer->status_detail,
                          progress);
  }
  SDL_RenderPresent(viewer->renderer);
}

/* --- input ----------------------------------------------------------------------- */

static void
send_key(void *data, guint32 keysym, bool down)
{
  Viewer *viewer = data;
  if (viewer->client && !viewer->options->view_only)
    SendKeyEvent(viewer->client, keysym, down ? TRUE : FALSE);
}

static void
send_pointer(Viewer *viewer, int window_x, int window_y)
{
  if (viewer->client == NULL || viewer->options->view_only || viewer->texture == NULL)
    return;
  /* Window coordinates are in points; the picture is placed in output pixels. */
  int win_w = 1, win_h = 1, out_w = 1, out_h = 1;
  SDL_GetWindowSize(viewer->window, &win_w, &win_h);
  SDL_GetRendererOutputSize(viewer->renderer, &out_w, &out_h);
  int x = win_w > 0 ? (int)((gint64)window_x * out_w / win_w) : window_x;
  int y = win_h > 0 ? (int)((gint64)window_y * out_h / win_h) : window_y;
  int rx, ry;
  if (!nb_viewer_to_remote(view_rect(viewer), viewer->fb_w, viewer->fb_h, x, y, &rx, &ry))
    return;
  viewer->pointer_x = rx;
  viewer->pointer_y = ry;
  SendPointerEvent(viewer->client, rx, ry, viewer->buttons);
}

static int
button_bit(Uint8 button)
{
  switch (button) {
  case SDL_BUTTON_LEFT: return rfbButton1Mask;
  case SDL_BUTTON_MIDDLE: return rfbButton2Mask;
  case SDL_BUTTON_RIGHT: return rfbButton3Mask;
  default: return 0;
  }
}

static void
send_wheel(Viewer *viewer, const SDL_MouseWheelEvent *wheel)
{
  if (viewer->client == NULL || viewer->options->view_only)
    return;
  int y = wheel->y, x = wheel->x;
  if (wheel->direction == SDL_MOUSEWHEEL_FLIPPED) {
    y = -y;
    x = -x;
  }
  /* RFB has wheel "buttons" 4 to 7: each notch is a press and a release. */
  int mask = y > 0 ? rfbButton4Mask : y < 0 ? rfbButton5Mask : x < 0 ? 32 : x > 0 ? 64 : 0;
  int notches = MIN(abs(y != 0 ? y : x), 10);
  for (int i = 0; i < notches; i++) {
    SendPointerEvent(viewer->client, viewer->pointer_x, viewer->pointer_y,
                     viewer->buttons | mask);
    SendPointerEvent(viewer->client, viewer->pointer_x, viewer->pointer_y, viewer->buttons);
  }
}

/* Ctrl+Alt+F and Ctrl+Alt+Q are the viewer's own; everything else goes to the server. */
static bool
hotkey(Viewer *viewer, const SDL_KeyboardEvent *key, bool *quit)
{
  Uint16 mod = key->keysym.mod;
  if (key->type != SDL_KEYDOWN || !(mod & KMOD_CTRL) || !(mod & KMOD_ALT))
    return false;
  if (key->keysym.sym == SDLK_f) {
    if (!key->repeat)
      set_fullscreen(viewer, !viewer->fullscreen);
    return true;
  }
  if (key->keysym.sym == SDLK_q) {
    *quit = true;
    return true;
  }
  return false;
}

/* --- the loop -------------------------------------------------------------------- */

static void
lost_connection(Viewer *viewer)
{
  const char *why = last_log[0] ? last_log : "the server closed the connection";
  g_free(viewer->status_detail);
  viewer->status_detail = g_strdup(why);
  note(viewer, "lost the connection to %s (%s)%s", viewer->name, why,
       viewer->options->reconnect ? "; reconnecting" : "");
  viewer_disconnect(viewer);
  viewer->state = STATE_RECONNECTING;
  viewer->backoff_ms = BACKOFF_FIRST_MS;
  viewer->retry_from = SDL_GetTicks64();
  viewer->retry_at = viewer->retry_from + viewer->backoff_ms;
  set_title(viewer);
}

/* Reads what the server sent; false if the connection broke. */
static bool
handle_readable(Viewer *viewer)
{
  for (int i = 0; i < MESSAGES_PER_WAKEUP; i++) {
    last_log[0] = '\0';
    if (!HandleRFBServerMessage(viewer->client))
      return false;
    if (viewer->client->buffered == 0 && WaitForMessage(viewer->client, 0) <= 0)
      break;
  }
  /* Data may wait in libvncclient's buffer with nothing left on the socket for the
   * watcher to see: come back for it right after the input. */
  if (viewer->client->buffered > 0) {
    SDL_Event event = { .type = viewer->readable_event };
    event.user.code = viewer->generation;
    /* The watcher still waits: this wakeup answers for it. If the queue is full, let
     * the watcher go; the rest is read with the next data the server sends. */
    if (SDL_PushEvent(&event) <= 0)
      SDL_SemPost(viewer->reader_go);
    return true;
  }
  SDL_SemPost(viewer->reader_go);
  return true;
}

/* The password typed into the window, for a viewer started with no terminal (by a
 * display manager or a kiosk session) and no password file. The handshake that asked
 * has been given up by then: a server would not wait for someone to type. */
static char *
ask_in_window(Viewer *viewer, bool *quit)
{
  GString *typed = g_string_new(NULL);
  g_autofree char *line = g_strdup_printf("password for %s:", viewer->name);
  g_autofree char *title = g_strdup_printf("%s — password — nestbox-viewer", viewer->name);
  SDL_SetWindowTitle(viewer->window, title);
  SDL_StartTextInput();
  *quit = false;
  bool done = false;
  while (!done && !*quit) {
    glong count = g_utf8_strlen(typed->str, -1);
    g_autofree char *stars = g_strnfill((gsize)count, '*');
    int out_w = 0, out_h = 0;
    SDL_GetRendererOutputSize(viewer->renderer, &out_w, &out_h);
    SDL_SetRenderDrawColor(viewer->renderer, 0, 0, 0, 255);
    SDL_RenderClear(viewer->renderer);
    if (viewer->texture) {
      NbViewerRect v = view_rect(viewer);
      SDL_Rect dst = { v.x, v.y, v.w, v.h };
      SDL_RenderCopy(viewer->renderer, viewer->texture, NULL, &dst);
    }
    nb_viewer_status_draw(viewer->renderer, out_w, out_h, line,
                          count ? stars : "type it and press Enter (Escape quits)", -1);
    SDL_RenderPresent(viewer->renderer);

    SDL_Event event;
    if (!SDL_WaitEvent(&event))
      continue;
    if (event.type == SDL_QUIT) {
      *quit = true;
    } else if (event.type == SDL_TEXTINPUT) {
      if (typed->len + strlen(event.text.text) < 256)
        g_string_append(typed, event.text.text);
    } else if (event.type == SDL_KEYDOWN) {
      SDL_Keycode sym = event.key.keysym.sym;
      if ((sym == SDLK_RETURN || sym == SDLK_KP_ENTER) && typed->len > 0) {
        done = true;
      } else if (sym == SDLK_BACKSPACE && typed->len > 0) {
        const char *last = g_utf8_find_prev_char(typed->str, typed->str + typed->len);
        g_string_truncate(typed, last ? (gsize)(last - typed->str) : 0);
      } else if (sym == SDLK_ESCAPE ||
                 (sym == SDLK_q && (event.key.keysym.mod & KMOD_CTRL) &&
                  (event.key.keysym.mod & KMOD_ALT))) {
        *quit = true;
      }
    }
  }
  char *password = done ? g_strdup(typed->str) : NULL;
  explicit_bzero(typed->str, typed->allocated_len);
  g_string_free(typed, TRUE);
  set_title(viewer);
  return password;
}

typedef struct {
  Viewer *viewer;
  GError *error;
  bool ok;
  SDL_atomic_t done;
} ConnectJob;

static int
connect_job(void *data)
{
  ConnectJob *job = data;
  job->ok = viewer_connect(job->viewer, &job->error);
  SDL_AtomicSet(&job->done, 1);
  SDL_Event wake = { .type = job->viewer->readable_event };
  wake.user.code = -1;  /* no connection's: only wakes the loop below */
  SDL_PushEvent(&wake);
  return 0;
}

/* viewer_connect, keeping the window alive meanwhile: it is redrawn, and closing it or
 * Ctrl+Alt+Q cancels the attempt (a host that is off takes the whole connect timeout). */
static bool
connect_responsive(Viewer *viewer, GError **error)
{
  if (viewer->window == NULL)
    return viewer_connect(viewer, error);
  ConnectJob job = { .viewer = viewer };
  viewer->cancel = g_cancellable_new();
  viewer->cancel_fd = -1;
  SDL_Thread *thread = SDL_CreateThread(connect_job, "vnc-connect", &job);
  if (thread == NULL) {
    g_clear_object(&viewer->cancel);
    return viewer_connect(viewer, error);
  }
  bool quit = false;
  while (!SDL_AtomicGet(&job.done)) {
    render(viewer);
    SDL_Event event;
    if (!SDL_WaitEventTimeout(&event, 250))
      continue;
    do {
      bool wants_quit = event.type == SDL_QUIT ||
        (event.type == SDL_KEYDOWN && event.key.keysym.sym == SDLK_q &&
         (event.key.keysym.mod & KMOD_CTRL) && (event.key.keysym.mod & KMOD_ALT));
      if (wants_quit && !quit) {
        quit = true;
        g_cancellable_cancel(viewer->cancel);
        g_mutex_lock(&viewer->cancel_lock);
        if (viewer->cancel_fd >= 0)
          shutdown(viewer->cancel_fd, SHUT_RDWR);  /* ends a handshake that hangs */
        g_mutex_unlock(&viewer->cancel_lock);
      }
    } while (SDL_PollEvent(&event));
  }
  SDL_WaitThread(thread, NULL);
  g_mutex_lock(&viewer->cancel_lock);
  if (viewer->cancel_fd >= 0)
    close(viewer->cancel_fd);
  viewer->cancel_fd = -1;
  g_mutex_unlock(&viewer->cancel_lock);
  g_clear_object(&viewer->cancel);
  if (quit) {
    if (job.ok) {
      rfbClientCleanup(viewer->client);
      viewer->client = NULL;
      g_clear_pointer(&viewer->fb, g_free);
    }
    g_clear_error(&job.error);
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_QUIT, "quit while connecting");
    return false;
  }
  if (!job.ok)
    g_propagate_error(error, job.error);
  return job.ok;
}

/* Connects; when the server wants a password that only the window can ask for, asks
 * there and connects again. */
static bool
connect_asking(Viewer *viewer, GError **error)
{
  g_autoptr(GError) local = NULL;
  if (connect_responsive(viewer, &local))
    return viewer_connected(viewer, error);
  if (!g_error_matches(local, NB_VIEWER_ERROR, NB_VIEWER_ERROR_NO_TERMINAL)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return false;
  }
  if (viewer->window == NULL) {
    g_autoptr(GError) window_error = NULL;
    if (!open_window(viewer, &window_error)) {
      g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PASSWORD,
                  "%s; nor can it be asked in a window: %s", local->message,
                  window_error->message);
      return false;
    }
  }
  bool quit;
  viewer->password = ask_in_window(viewer, &quit);
  if (viewer->password == NULL) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_QUIT, "quit at the password prompt");
    return false;
  }
  return connect_responsive(viewer, error) && viewer_connected(viewer, error);
}

static bool
try_reconnect(Viewer *viewer, GError **error)
{
  render(viewer);
  g_autoptr(GError) local = NULL;
  bool again = viewer->ever_connected;
  if (connect_asking(viewer, &local)) {
    note(viewer, "connected to %s%s", viewer->name, again ? " again" : "");
    g_clear_pointer(&viewer->status_detail, g_free);
    set_title(viewer);
    return true;
  }
  /* A refused password is not going to change by trying again. */
  if (g_error_matches(local, NB_VIEWER_ERROR, NB_VIEWER_ERROR_AUTH) ||
      g_error_matches(local, NB_VIEWER_ERROR, NB_VIEWER_ERROR_QUIT) ||
      g_error_matches(local, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PASSWORD) ||
      g_error_matches(local, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY)) {
    g_propagate_error(error, g_steal_pointer(&local));
    return false;
  }
  viewer->backoff_ms = MIN(viewer->backoff_ms * 2, BACKOFF_MAX_MS);
  if (viewer->options->verbose)
    note(viewer, "%s; next try in %u s", local->message, viewer->backoff_ms / 1000);
  g_free(viewer->status_detail);
  viewer->status_detail = g_strdup(viewer->reason ? viewer->reason : local->message);
  viewer->retry_from = SDL_GetTicks64();
  viewer->retry_at = viewer->retry_from + viewer->backoff_ms;
  return true;
}

static bool
run_loop(Viewer *viewer, GError **error)
{
  bool quit = false;
  while (!quit) {
    if (viewer->state == STATE_CONNECTED) {
      if (!upload(viewer)) {
        g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY,
                    "cannot show the remote desktop of %s: %s", viewer->name, SDL_GetError());
        return false;
      }
      render(viewer);
    } else {
      Uint64 now = SDL_GetTicks64();
      if (now >= viewer->retry_at) {
        if (!try_reconnect(viewer, error))
          return false;
        continue;
      }
      render(viewer);
    }

    /* Sleep until an event: input, the socket, or (reconnecting) the next second of
     * the countdown. */
    SDL_Event event;
    int got;
    Uint64 now = SDL_GetTicks64();
    if (viewer->fullscreen_check_at && now >= viewer->fullscreen_check_at)
      check_fullscreen(viewer);
    guint64 wait = G_MAXINT;
    if (viewer->state != STATE_CONNECTED)
      wait = MIN(viewer->retry_at > now ? viewer->retry_at - now : 0, 500);
    if (viewer->fullscreen_check_at)
      wait = MIN(wait, viewer->fullscreen_check_at > now ? viewer->fullscreen_check_at - now : 0);
    if (wait == G_MAXINT)
      got = SDL_WaitEvent(&event);
    else
      got = SDL_WaitEventTimeout(&event, (int)wait);
    while (got) {
      if (event.type != SDL_TEXTINPUT)
        nb_viewer_keyboard_flush(&viewer->keyboard);
      if (event.type == viewer->readable_event) {
        if (viewer->state == STATE_CONNECTED && event.user.code == viewer->generation &&
            !handle_readable(viewer)) {
          if (!viewer->options->reconnect) {
            g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_PROTOCOL,
                        "lost the connection to %s: %s", viewer->name,
                        last_log[0] ? last_log : "the server closed the connection");
            return false;
          }
          lost_connection(viewer);
        }
      } else {
        switch (event.type) {
        case SDL_QUIT:
          quit = true;
          break;
        case SDL_KEYDOWN:
        case SDL_KEYUP:
          if (!hotkey(viewer, &event.key, &quit))
            nb_viewer_keyboard_key(&viewer->keyboard, &event.key);
          break;
        case SDL_TEXTINPUT:
          nb_viewer_keyboard_text(&viewer->keyboard, event.text.text);
          break;
        case SDL_MOUSEMOTION:
          send_pointer(viewer, event.motion.x, event.motion.y);
          break;
        case SDL_MOUSEBUTTONDOWN:
        case SDL_MOUSEBUTTONUP:
          if (event.type == SDL_MOUSEBUTTONDOWN)
            viewer->buttons |= button_bit(event.button.button);
          else
            viewer->buttons &= ~button_bit(event.button.button);
          send_pointer(viewer, event.button.x, event.button.y);
          break;
        case SDL_MOUSEWHEEL:
          send_wheel(viewer, &event.wheel);
          break;
        case SDL_WINDOWEVENT:
          if (event.window.event == SDL_WINDOWEVENT_FOCUS_LOST)
            nb_viewer_keyboard_release_all(&viewer->keyboard, true);
          break;
        case SDL_RENDER_TARGETS_RESET:
        case SDL_RENDER_DEVICE_RESET:
          viewer->fb_resized = true;  /* the texture's contents are gone: upload again */
          break;
        default:
          break;
        }
      }
      got = SDL_PollEvent(&event);
    }
    nb_viewer_keyboard_flush(&viewer->keyboard);
  }
  return true;
}

bool
nb_viewer_run(const NbViewerOptions *options, GError **error)
{
  Viewer viewer_storage = { 0 };
  Viewer *viewer = &viewer_storage;
  viewer->options = options;
  viewer->name = nb_viewer_address_to_string(&options->address);
  viewer->reader_stop[0] = viewer->reader_stop[1] = -1;
  viewer->cancel_fd = -1;
  g_mutex_init(&viewer->cancel_lock);
  nb_viewer_keyboard_init(&viewer->keyboard, send_key, viewer);
  log_viewer = viewer;
  rfbClientLog = on_rfb_log;
  rfbClientErr = on_rfb_log;
  bool ok = false;

  /* A password file that cannot be read is a mistake to report now, not after the
   * server asked. */
  if (options->password_file) {
    viewer->password = nb_viewer_password_read_file(options->password_file, error);
    if (viewer->password == NULL)
      goto out;
  }

  SDL_SetHint(SDL_HINT_RENDER_SCALE_QUALITY, "linear");
  SDL_SetHint(SDL_HINT_VIDEO_MINIMIZE_ON_FOCUS_LOSS, "0");
  /* Events and timers first; the display once there is something to show, so that a
   * server that cannot be reached is reported as such, with or without a display. */
  if (SDL_Init(SDL_INIT_EVENTS | SDL_INIT_TIMER) < 0) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY,
                "cannot start SDL: %s", SDL_GetError());
    goto out;
  }
  viewer->readable_event = SDL_RegisterEvents(1);
  if (viewer->readable_event == (Uint32)-1) {
    g_set_error(error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_DISPLAY,
                "SDL has no user events left");
    goto out;
  }

  if (options->wait) {
    /* A thin client that boots before its server: show the window and keep trying. */
    viewer->state = STATE_RECONNECTING;
    viewer->backoff_ms = BACKOFF_FIRST_MS / 2;
    viewer->retry_from = viewer->retry_at = SDL_GetTicks64();
    if (!open_window(viewer, error))
      goto out;
    set_title(viewer);
  } else {
    viewer->state = STATE_CONNECTING;
    if (!connect_asking(viewer, error))
      goto out;
    if (viewer->window == NULL && !open_window(viewer, error))
      goto out;
  }
  if (options->verbose && viewer->state == STATE_CONNECTED)
    note(viewer, "connected to %s", viewer->name);
  ok = run_loop(viewer, error);

out:
  /* Escape or closing the window at the password prompt is the user quitting. */
  if (!ok && error && *error && g_error_matches(*error, NB_VIEWER_ERROR, NB_VIEWER_ERROR_QUIT)) {
    g_clear_error(error);
    ok = true;
  }
  viewer_disconnect(viewer);
  if (viewer->texture)
    SDL_DestroyTexture(viewer->texture);
  if (viewer->renderer)
    SDL_DestroyRenderer(viewer->renderer);
  if (viewer->window)
    SDL_DestroyWindow(viewer->window);
  SDL_Quit();
  forget_password(viewer);
  g_clear_error(&viewer->password_error);
  g_free(viewer->status_detail);
  g_free(viewer->reason);
  g_free(viewer->name);
  g_mutex_clear(&viewer->cancel_lock);
  log_viewer = NULL;
  return ok;
}
