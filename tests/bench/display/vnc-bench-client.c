/* The display benchmark's VNC client (libvncclient): connects with one
 * encoding, keeps asking for updates as a viewer does (libvncclient asks
 * for the next incremental update as soon as one is complete), and records
 * what arrives between "start" and "stop" on stdin.
 *
 *   vnc-bench-client HOST:PORT --encoding tight|zrle|raw
 *
 * (and CopyRect, which a server may use for moved content, with any of
 * them, as viewers ask for it)
 * After every complete framebuffer update it reads the frame stamp the
 * guest's workload (guest-vncload.c) draws in the bottom bar: 72 blocks of
 * 8x8 pixels from x = 8 at y = height - 12, one bit each (64 bits: frame
 * number and guest time; then an 8-bit check). A stamp that decodes with a
 * good check and a new frame number is a frame shown, with this host's
 * CLOCK_MONOTONIC at that moment.
 *
 * stdout: "READY WxH frame=K" once a stamp is seen; after "stop":
 *   RESULT bytes=B updates=U rects=R frames=F seconds=S
 *   FRAME K GUEST_US HOST_NS      one line per frame shown
 *   END
 * Bytes are what the kernel received on the connection (TCP_INFO's
 * tcpi_bytes_received): every byte the server sent, headers included.
 * Tight is asked for without JPEG (lossless), at libvncclient's default
 * compression level 3. Exit status: 0 done, 1 the connection failed or
 * ended, 2 usage. */
#include "vnc-client-bytes.h"

#include <rfb/rfbclient.h>

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STAMP_BLOCKS 72
#define STAMP_BLOCK 8

typedef struct {
  uint32_t frame;
  uint64_t guest_us;
  uint64_t host_ns;
} Shown;

static bool measuring;
static unsigned long updates, rects;
static Shown *shown;
static size_t n_shown, shown_cap;
static long last_frame = -1;

/* A short-lived tool that exits from several places: in sanitizer builds
 * its leaks at exit would only change its exit status. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
  return "detect_leaks=0";
}

static uint64_t
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void quiet_log(const char *format, ...) __attribute__((format(printf, 1, 2)));

static void
quiet_log(const char *format, ...)
{
  if (getenv("NB_VNC_CLIENT_DEBUG")) {
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
  }
}

/* Decodes the stamp; false when there is none (no picture yet, or a frame
 * torn between two updates). */
static bool
read_stamp(rfbClient *c, uint32_t *frame, uint64_t *guest_us)
{
  if (c->frameBuffer == NULL || c->width < 8 + STAMP_BLOCKS * STAMP_BLOCK || c->height < 16)
    return false;
  const uint32_t *px = (const uint32_t *)c->frameBuffer;
  unsigned y = (unsigned)c->height - 12 + STAMP_BLOCK / 2;
  uint64_t v = 0;
  unsigned check = 0;
  for (unsigned b = 0; b < STAMP_BLOCKS; b++) {
    uint32_t p = px[(size_t)y * (unsigned)c->width + 8 + b * STAMP_BLOCK + STAMP_BLOCK / 2];
    unsigned bit = ((p >> c->format.greenShift) & 0xff) >= 0x80;
    if (b < 64)
      v = v << 1 | bit;
    else
      check = check << 1 | bit;
  }
  unsigned x = 0;
  for (int i = 0; i < 8; i++)
    x ^= (v >> (8 * i)) & 0xff;
  if (x != check)
    return false;
  *frame = (uint32_t)(v >> 40);
  *guest_us = v & 0xffffffffffull;
  return true;
}

static void
on_rect(rfbClient *c, int x, int y, int w, int h)
{
  if (measuring)
    rects++;
}

static void
on_update_done(rfbClient *c)
{
  uint64_t t = now_ns();
  uint32_t frame;
  uint64_t guest_us;
  if (measuring)
    updates++;
  if (!read_stamp(c, &frame, &guest_us) || (long)frame == last_frame)
    return;
  if (last_frame < 0)
    printf("READY %dx%d frame=%u\n", c->width, c->height, frame);
  last_frame = frame;
  if (!measuring)
    return;
  if (n_shown == shown_cap) {
    shown_cap = shown_cap ? 2 * shown_cap : 1024;
    shown = realloc(shown, shown_cap * sizeof *shown);
    if (shown == NULL)
      exit(1);
  }
  shown[n_shown++] = (Shown){ frame, guest_us, t };
}

int
main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);   /* a VMM that goes away is reported, not a signal */
  if (argc != 4 || strcmp(argv[2], "--encoding") != 0 ||
      (strcmp(argv[3], "tight") != 0 && strcmp(argv[3], "zrle") != 0 &&
       strcmp(argv[3], "raw") != 0)) {
    fprintf(stderr, "usage: vnc-bench-client HOST:PORT --encoding tight|zrle|raw\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  char *host = strdup(argv[1]);
  char *colon = strrchr(host, ':');
  if (colon == NULL)
    return 2;
  *colon = '\0';
  rfbClientLog = quiet_log;
  rfbClientErr = quiet_log;
  rfbClient *c = rfbGetClient(8, 3, 4);
  free(c->serverHost);
  c->serverHost = host;
  c->serverPort = atoi(colon + 1);
  c->appData.shareDesktop = TRUE;
  /* CopyRect too, as every viewer asks for it (TigerVNC, noVNC, gtk-vnc,
   * Remmina): a server may send moved content as a copy. */
  static char encodings[64];
  snprintf(encodings, sizeof encodings, "copyrect %s", argv[3]);
  c->appData.encodingsString = encodings;
  c->appData.enableJPEG = FALSE;
  c->canHandleNewFBSize = TRUE;
  c->GotFrameBufferUpdate = on_rect;
  c->FinishedFrameBufferUpdate = on_update_done;
  if (!rfbInitClient(c, NULL, NULL)) {
    printf("CONNECT-FAILED\n");
    return 1;
  }

  uint64_t start_bytes = 0, start_ns = 0;
  char cmd[64];
  size_t cmd_len = 0;
  for (;;) {
    int n = WaitForMessage(c, 5000);
    if (n < 0) {
      printf("DISCONNECTED\n");
      return 1;
    }
    /* Everything already read into libvncclient's buffer is handled now,
     * not after the next packet arrives. */
    if (n > 0) {
      do {
        if (!HandleRFBServerMessage(c)) {
          printf("DISCONNECTED\n");
          return 1;
        }
      } while (c->buffered > 0);
    }
    struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
    while (poll(&p, 1, 0) > 0) {
      char ch;
      if (read(STDIN_FILENO, &ch, 1) != 1)
        return 0;   /* the driver went away */
      if (ch != '\n') {
        if (cmd_len + 1 < sizeof cmd)
          cmd[cmd_len++] = ch;
        continue;
      }
      cmd[cmd_len] = '\0';
      cmd_len = 0;
      if (strcmp(cmd, "start") == 0) {
        measuring = true;
        updates = rects = 0;
        n_shown = 0;
        start_bytes = nb_vnc_client_bytes_received(c);
        start_ns = now_ns();
        printf("STARTED\n");
      } else if (strcmp(cmd, "stop") == 0) {
        double secs = (double)(now_ns() - start_ns) / 1e9;
        printf("RESULT bytes=%llu updates=%lu rects=%lu frames=%zu seconds=%.3f\n",
               (unsigned long long)(nb_vnc_client_bytes_received(c) - start_bytes), updates, rects, n_shown,
               secs);
        for (size_t i = 0; i < n_shown; i++)
          printf("FRAME %u %llu %llu\n", shown[i].frame, (unsigned long long)shown[i].guest_us,
                 (unsigned long long)shown[i].host_ns);
        printf("END\n");
        fflush(stdout);
        free(c->frameBuffer);
        rfbClientCleanup(c);
        free(shown);
        return 0;
      }
    }
  }
}
