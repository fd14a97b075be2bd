/* A VNC client for tests (libvncclient): connects one or more clients,
 * checks that every one sees the test pattern exactly, sends keys and a
 * pointer position, and says what happened on stdout.
 *
 *   vnc-test-client HOST:PORT [--password-file F] [--clients N]
 *       [--pattern WxH]... [--text REGEX]... [--save FILE]
 *       [--keys SYM,SYM,...] [--pointer X,Y] [--timeout S]
 *       [--scancode-keys QNUM/SYM,...] [--expect-leds N,N,...]
 *   vnc-test-client --compare-rgb FILE WxH | --find-rgb FILE WxH PATTERN-WxH
 *   vnc-test-client HOST:PORT --sequence shared|exclusive|intruder,... [--password-file F]
 *   vnc-test-client HOST:PORT --watch STOP-FILE [--clients N] [--copyrect-clients N] [--save F]
 *
 * Each --pattern is waited for in turn ("MATCH WxH" once all clients show
 * it). --keys takes keysyms in hex: 0x61 is a press and a release, +0xffe1
 * a press, -0xffe1 a release.
 *
 * --text reads the screen as text without OCR: as 8x16 character cells (the
 * VGA BIOS's and Linux's console font size), each shown as '#' when it holds
 * two or more colours (a glyph) and '.' when it is one colour (a space, on
 * any background), a line of them per text row. It waits for a row matching
 * REGEX, such as "^#######\.########\." for "SeaBIOS (version" at the left
 * edge, and prints "TEXT-MATCH row N: ROW" (the row as it stands half a
 * second later if it still matches then, since text is drawn a glyph at a
 * time); on timeout it prints the rows that hold anything. --save writes
 * client 0's picture as raw RGB (WxH in
 * "SAVED WxH FILE") at the end. Exit status: 0 all good, 1 a picture never
 * matched (the first wrong pixel is printed), 2 usage, 3 the server refused
 * the connection or the password ("AUTH-FAILED").
 *
 * --scancode-keys sends each key as a QEMU extended key event (a press and
 * a release with its XT key number, "qnum") once the server has confirmed
 * that it takes them ("EXT-KEYS-CONFIRMED"; exit 1 if it never does).
 * --expect-leds asks for QEMU's LED state and waits for each value in turn
 * ("LEDS N" for every state the server reports; exit 1 on a timeout).
 *
 * --sequence connects one client after another, each asking for a shared
 * or an exclusive session (RFB's ClientInit flag) or, as an intruder, with
 * a wrong password, and after each one says
 * which clients are still connected: "AFTER 3 exclusive: gone gone up".
 *
 * --copyrect-clients N: the first N clients also take CopyRect (the others
 * have only the pixel encodings). --watch follows the screen: once every
 * client has a picture, they are the same and nothing changed for 0.3 s,
 * it says "READY", then asks
 * for every change until STOP-FILE exists (or --timeout), then says "BYTES i N" for
 * each client (what the kernel received on its connection since READY,
 * TCP_INFO) and "SAME-PICTURES" or "DIFFERENT-PICTURES client i at X,Y",
 * and saves client 0's picture with --save. */
#include "test-pattern.h"
#include "vnc-client-bytes.h"

#include <rfb/rfbclient.h>

#include <glib.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *password;

/* QEMU's LED State pseudo-encoding, which libvncclient 0.9.14 does not
 * know: a client extension reads it (one byte after the rectangle). */
static int leds_seen = -1;
static int led_encodings[] = { -261, 0 };

static rfbBool
handle_led_rect(rfbClient *c, rfbFramebufferUpdateRectHeader *rect)
{
  if ((int32_t)rect->encoding != -261)
    return FALSE;
  uint8_t b;
  if (!ReadFromRFBServer(c, (char *)&b, 1))
    return FALSE;
  leds_seen = b;
  printf("LEDS %u\n", b);
  return TRUE;
}

/* Updates the first client has seen in full. */
static unsigned updates_done;

static void
on_update_done(rfbClient *c)
{
  updates_done++;
}

static rfbClientProtocolExtension led_extension = {
  .encodings = led_encodings,
  .handleEncoding = handle_led_rect,
};

/* A short-lived test tool that exits from many places: in sanitizer builds
 * its leaks at exit would only change its exit status. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
  return "detect_leaks=0";
}

static char *
get_password(rfbClient *client)
{
  return strdup(password ? password : "");
}

static void quiet_log(const char *format, ...) G_GNUC_PRINTF(1, 2);

static void
quiet_log(const char *format, ...)
{
  if (g_getenv("NB_VNC_CLIENT_DEBUG")) {
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
  }
}

/* Compares the client's picture with the pattern; prints the first wrong
 * pixel when report is set. */
static bool
matches(rfbClient *c, unsigned w, unsigned h, bool report)
{
  if ((unsigned)c->width != w || (unsigned)c->height != h || c->frameBuffer == NULL) {
    if (report)
      printf("SIZE %dx%d, expected %ux%u\n", c->width, c->height, w, h);
    return false;
  }
  const uint32_t *px = (const uint32_t *)c->frameBuffer;
  for (unsigned y = 0; y < h; y++) {
    for (unsigned x = 0; x < w; x++) {
      uint32_t v = px[(size_t)y * w + x];
      uint32_t rgb = ((v >> c->format.redShift) & 0xff) << 16 |
                     ((v >> c->format.greenShift) & 0xff) << 8 | ((v >> c->format.blueShift) & 0xff);
      if (rgb != nb_test_pattern_rgb(x, y)) {
        if (report)
          printf("MISMATCH at %u,%u: got %06x, expected %06x\n", x, y, rgb, nb_test_pattern_rgb(x, y));
        return false;
      }
    }
  }
  return true;
}

/* One text row of the picture as a cell mask (see --text); NULL when the
 * client has no picture. */
static char *
text_row(rfbClient *c, unsigned row)
{
  unsigned cols = (unsigned)c->width / 8;
  if (c->frameBuffer == NULL || (row + 1) * 16 > (unsigned)c->height)
    return NULL;
  const uint32_t *px = (const uint32_t *)c->frameBuffer;
  char *mask = g_malloc(cols + 1);
  for (unsigned col = 0; col < cols; col++) {
    uint32_t first = px[(size_t)row * 16 * c->width + col * 8] & 0xffffff;
    bool two = false;
    for (unsigned y = 0; y < 16 && !two; y++)
      for (unsigned x = 0; x < 8 && !two; x++)
        two = (px[((size_t)row * 16 + y) * c->width + col * 8 + x] & 0xffffff) != first;
    mask[col] = two ? '#' : '.';
  }
  mask[cols] = '\0';
  return mask;
}

/* The first row matching re, or -1; its mask in *out. */
static int
find_text(rfbClient *c, const GRegex *re, char **out)
{
  for (unsigned row = 0; row < (unsigned)c->height / 16; row++) {
    char *mask = text_row(c, row);
    if (mask && g_regex_match(re, mask, 0, NULL)) {
      *out = mask;
      return (int)row;
    }
    g_free(mask);
  }
  return -1;
}

static void
print_text(rfbClient *c)
{
  for (unsigned row = 0; row < (unsigned)c->height / 16; row++) {
    g_autofree char *mask = text_row(c, row);
    if (mask && strchr(mask, '#'))
      printf("  row %2u: %s\n", row, mask);
  }
}

static bool
save_rgb(rfbClient *c, const char *path)
{
  size_t n = (size_t)c->width * c->height;
  g_autofree uint8_t *rgb = g_malloc(n * 3 + 1);
  const uint32_t *px = (const uint32_t *)c->frameBuffer;
  for (size_t i = 0; px && i < n; i++) {
    rgb[3 * i] = (px[i] >> c->format.redShift) & 0xff;
    rgb[3 * i + 1] = (px[i] >> c->format.greenShift) & 0xff;
    rgb[3 * i + 2] = (px[i] >> c->format.blueShift) & 0xff;
  }
  g_autoptr(GError) error = NULL;
  if (px == NULL || !g_file_set_contents(path, (const char *)rgb, (gssize)(n * 3), &error)) {
    fprintf(stderr, "vnc-test-client: cannot save the picture: %s\n",
            error ? error->message : "no picture");
    return false;
  }
  printf("SAVED %dx%d %s\n", c->width, c->height, path);
  return true;
}

/* Reads what the server sent for up to usecs. False when it hung up. */
static bool
pump(rfbClient *c, unsigned usecs)
{
  int n = WaitForMessage(c, usecs);
  if (n < 0)
    return false;
  /* A message libvncclient has already read along with the one before it
   * waits in its buffer, where WaitForMessage does not look. */
  while (n > 0 || c->buffered > 0) {
    if (!HandleRFBServerMessage(c))
      return false;
    n = 0;
  }
  return true;
}

/* A raw RGB file against the pattern: 0 equal, 1 not. */
static int
compare_rgb(const char *path, const char *size)
{
  unsigned w, h;
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(GError) error = NULL;
  if (sscanf(size, "%ux%u", &w, &h) != 2 || !g_file_get_contents(path, &data, &len, &error)) {
    fprintf(stderr, "vnc-test-client: %s\n", error ? error->message : "bad size");
    return 2;
  }
  if (len != (gsize)w * h * 3) {
    printf("RGB file is %zu bytes, not %ux%u\n", (size_t)len, w, h);
    return 1;
  }
  const uint8_t *p = (const uint8_t *)data;
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = 0; x < w; x++, p += 3) {
      uint32_t rgb = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
      if (rgb != nb_test_pattern_rgb(x, y)) {
        printf("MISMATCH at %u,%u: got %06x, expected %06x\n", x, y, rgb, nb_test_pattern_rgb(x, y));
        return 1;
      }
    }
  printf("RGB-MATCHES %ux%u\n", w, h);
  return 0;
}

/* One connection per item of list, in turn (see the top). */
static int
run_sequence(const char *host, int port, const char *list)
{
  g_auto(GStrv) items = g_strsplit(list, ",", -1);
  guint n = g_strv_length(items);
  if (n == 0 || n > 16)
    return 2;
  rfbClient *c[16] = { NULL };
  for (guint i = 0; i < n; i++) {
    /* An intruder does not know the password (and wants to be alone). */
    bool shared = strcmp(items[i], "shared") == 0;
    bool intruder = strcmp(items[i], "intruder") == 0;
    if (!shared && !intruder && strcmp(items[i], "exclusive") != 0)
      return 2;
    char *real_password = password;
    if (intruder)
      password = (char *)"not-the-password";
    c[i] = rfbGetClient(8, 3, 4);
    free(c[i]->serverHost);
    c[i]->serverHost = strdup(host);
    c[i]->serverPort = port;
    c[i]->GetPassword = get_password;
    c[i]->appData.shareDesktop = shared;
    c[i]->canHandleNewFBSize = TRUE;
    if (!rfbInitClient(c[i], NULL, NULL)) {
      c[i] = NULL;   /* freed by rfbInitClient */
      /* The intruder's refusal is the password's, at a fixed point. A
       * sharing policy that turns a client away closes the socket just
       * after the server's ServerInit, so the client's first writes may or
       * may not fail within rfbInitClient: either way it is "gone" below. */
      if (intruder)
        printf("REFUSED %u\n", i + 1);
    }
    password = real_password;
    /* The server decides on ClientInit, before its first update: 0.6 s is
     * plenty to see every hang-up it does. */
    for (int t = 0; t < 30; t++)
      for (guint j = 0; j <= i; j++)
        if (c[j] && !pump(c[j], 20000)) {
          free(c[j]->frameBuffer);
          rfbClientCleanup(c[j]);
          c[j] = NULL;
        }
    GString *line = g_string_new(NULL);
    g_string_printf(line, "AFTER %u %s:", i + 1, items[i]);
    for (guint j = 0; j <= i; j++)
      g_string_append(line, c[j] ? " up" : " gone");
    printf("%s\n", line->str);
    g_string_free(line, TRUE);
  }
  for (guint i = 0; i < n; i++)
    if (c[i]) {
      free(c[i]->frameBuffer);
      rfbClientCleanup(c[i]);
    }
  return 0;
}

/* A screenshot (raw RGB, w x h) that should show the pattern (pw x ph)
 * somewhere, through a lossy encoding (noVNC asks for JPEG): finds where,
 * from a grid of sample points, then measures every pixel there. 0: found
 * and close (mean error per channel under 10, 95% of pixels within 32: a
 * picture that is not the pattern is off by about 100), 1:
 * not. */
static unsigned
pixel_error(const uint8_t *img, unsigned w, unsigned ox, unsigned oy, unsigned x, unsigned y)
{
  const uint8_t *p = img + ((size_t)(oy + y) * w + ox + x) * 3;
  uint32_t want = nb_test_pattern_rgb(x, y);
  int dr = abs((int)p[0] - (int)(want >> 16 & 0xff)), dg = abs((int)p[1] - (int)(want >> 8 & 0xff)),
      db = abs((int)p[2] - (int)(want & 0xff));
  return (unsigned)MAX(dr, MAX(dg, db));
}

static int
find_rgb(const char *path, const char *size, const char *pattern_size)
{
  unsigned w, h, pw, ph;
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(GError) error = NULL;
  if (sscanf(size, "%ux%u", &w, &h) != 2 || sscanf(pattern_size, "%ux%u", &pw, &ph) != 2 ||
      pw < 16 || ph < 16 || !g_file_get_contents(path, &data, &len, &error)) {
    fprintf(stderr, "vnc-test-client: %s\n", error ? error->message : "bad size");
    return 2;
  }
  if (len != (gsize)w * h * 3 || pw > w || ph > h) {
    printf("RGB file is %zu bytes, not %ux%u, or smaller than %ux%u\n", (size_t)len, w, h, pw, ph);
    return 1;
  }
  const uint8_t *img = (const uint8_t *)data;
  unsigned best_x = 0, best_y = 0;
  uint64_t best = UINT64_MAX;
  for (unsigned oy = 0; oy + ph <= h; oy++)
    for (unsigned ox = 0; ox + pw <= w; ox++) {
      uint64_t err = 0;
      for (unsigned sy = 0; sy < 8 && err < best; sy++)
        for (unsigned sx = 0; sx < 8; sx++)
          err += pixel_error(img, w, ox, oy, sx * (pw - 1) / 7, sy * (ph - 1) / 7);
      if (err < best)
        best = err, best_x = ox, best_y = oy;
    }
  uint64_t total = 0, close = 0;
  unsigned worst = 0;
  for (unsigned y = 0; y < ph; y++)
    for (unsigned x = 0; x < pw; x++) {
      unsigned e = pixel_error(img, w, best_x, best_y, x, y);
      total += e;
      close += e <= 32;
      worst = MAX(worst, e);
    }
  double mean = (double)total / ((double)pw * ph), share = 100.0 * (double)close / ((double)pw * ph);
  bool ok = mean < 10.0 && share >= 95.0;
  printf("%s %ux%u at %u,%u: mean error %.2f, %.2f%% of pixels within 32, worst %u\n",
         ok ? "PATTERN-FOUND" : "PATTERN-NOT-FOUND", pw, ph, best_x, best_y, mean, share, worst);
  return ok ? 0 : 1;
}

/* Whether client i's picture is client 0's; prints the first difference
 * when report is set. */
static bool
same_picture(rfbClient **c, int i, bool report)
{
  if (c[0]->frameBuffer == NULL || c[i]->frameBuffer == NULL || c[i]->width != c[0]->width ||
      c[i]->height != c[0]->height)
    return false;
  const uint32_t *a = (const uint32_t *)c[0]->frameBuffer, *b = (const uint32_t *)c[i]->frameBuffer;
  for (int y = 0; y < c[0]->height; y++)
    for (int x = 0; x < c[0]->width; x++)
      if ((a[(size_t)y * c[0]->width + x] & 0xffffff) != (b[(size_t)y * c[0]->width + x] & 0xffffff)) {
        if (report)
          printf("DIFFERENT-PICTURES client %d at %d,%d\n", i, x, y);
        return false;
      }
  return true;
}

/* --watch (see the top). */
static int
watch(rfbClient **c, int clients, const char *stop_file, int timeout, const char *save)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout * G_USEC_PER_SEC;
  /* Ready once the pictures agree and nothing new came for 0.3 s (the
   * screen's first picture may arrive in several updates). */
  bool ready = false;
  unsigned seen = 0;
  gint64 quiet_since = g_get_monotonic_time();
  while (!ready && g_get_monotonic_time() < deadline) {
    if (updates_done != seen) {
      seen = updates_done;
      quiet_since = g_get_monotonic_time();
    }
    ready = updates_done > 0 && g_get_monotonic_time() - quiet_since > 300000;
    for (int i = 0; i < clients; i++) {
      if (!pump(c[i], 20000))
        return 1;
      SendFramebufferUpdateRequest(c[i], 0, 0, c[i]->width, c[i]->height, TRUE);
      ready = ready && same_picture(c, i, false);
    }
  }
  if (!ready) {
    printf("NOT-READY\n");
    return 1;
  }
  uint64_t *base = g_new(uint64_t, clients);
  for (int i = 0; i < clients; i++)
    base[i] = nb_vnc_client_bytes_received(c[i]);
  printf("READY\n");
  bool stopped = false;
  while (!(stopped = g_file_test(stop_file, G_FILE_TEST_EXISTS)) && g_get_monotonic_time() < deadline)
    for (int i = 0; i < clients; i++) {
      if (!pump(c[i], 10000))
        return 1;
      SendFramebufferUpdateRequest(c[i], 0, 0, c[i]->width, c[i]->height, TRUE);
    }
  /* What is on its way still arrives. */
  for (int t = 0; t < 10; t++)
    for (int i = 0; i < clients; i++)
      if (!pump(c[i], 10000))
        return 1;
  for (int i = 0; i < clients; i++)
    printf("BYTES %d %" G_GUINT64_FORMAT "\n", i, nb_vnc_client_bytes_received(c[i]) - base[i]);
  g_free(base);
  bool same = true;
  for (int i = 1; i < clients && same; i++)
    same = same_picture(c, i, true);
  if (same)
    printf("SAME-PICTURES\n");
  if (save && !save_rgb(c[0], save))
    return 1;
  return stopped && same ? 0 : 1;
}

int
main(int argc, char **argv)
{
  /* A server that turns this client away may close the socket between
   * libvncclient's writes: that is an error to report, not a SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  if (argc == 4 && strcmp(argv[1], "--compare-rgb") == 0)
    return compare_rgb(argv[2], argv[3]);
  if (argc == 5 && strcmp(argv[1], "--find-rgb") == 0)
    return find_rgb(argv[2], argv[3], argv[4]);
  const char *password_file = NULL, *keys = NULL, *pointer = NULL, *sequence = NULL;
  const char *scancode_keys = NULL, *expect_leds = NULL;
  char **patterns = NULL, **texts = NULL;
  const char *save = NULL;
  int clients = 1, timeout = 60, copyrect_clients = 0;
  const char *stop_file = NULL;
  GOptionEntry entries[] = {
    { "password-file", 0, 0, G_OPTION_ARG_FILENAME, &password_file, "Password", "FILE" },
    { "clients", 0, 0, G_OPTION_ARG_INT, &clients, "Clients at once", "N" },
    { "pattern", 0, 0, G_OPTION_ARG_STRING_ARRAY, &patterns, "Expect the test pattern", "WxH" },
    { "text", 0, 0, G_OPTION_ARG_STRING_ARRAY, &texts, "Expect a text row whose cells match", "REGEX" },
    { "save", 0, 0, G_OPTION_ARG_FILENAME, &save, "Save the picture as raw RGB", "FILE" },
    { "keys", 0, 0, G_OPTION_ARG_STRING, &keys, "Keysyms to send", "SYMS" },
    { "pointer", 0, 0, G_OPTION_ARG_STRING, &pointer, "Pointer position to send", "X,Y" },
    { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout, "Seconds to wait for each picture", "S" },
    { "scancode-keys", 0, 0, G_OPTION_ARG_STRING, &scancode_keys, "QEMU extended key events", "QNUM/SYM,..." },
    { "expect-leds", 0, 0, G_OPTION_ARG_STRING, &expect_leds, "LED states to wait for", "N,..." },
    { "sequence", 0, 0, G_OPTION_ARG_STRING, &sequence, "Clients one after another", "shared|exclusive,..." },
    { "copyrect-clients", 0, 0, G_OPTION_ARG_INT, &copyrect_clients, "Clients that take CopyRect", "N" },
    { "watch", 0, 0, G_OPTION_ARG_FILENAME, &stop_file, "Follow the screen until FILE exists", "FILE" },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("HOST:PORT");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc != 2 || clients < 1 || clients > 64) {
    fprintf(stderr, "vnc-test-client: %s\n", error ? error->message : "usage: HOST:PORT [options]");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (password_file) {
    if (!g_file_get_contents(password_file, &password, NULL, &error)) {
      fprintf(stderr, "vnc-test-client: %s\n", error->message);
      return 2;
    }
    g_strchomp(password);
  }
  char *colon = strrchr(argv[1], ':');
  if (!colon)
    return 2;
  *colon = '\0';
  int port = atoi(colon + 1);
  rfbClientLog = quiet_log;
  rfbClientErr = quiet_log;
  if (sequence)
    return run_sequence(argv[1], port, sequence);
  if (expect_leds)
    rfbClientRegisterExtension(&led_extension);

  rfbClient **c = g_new0(rfbClient *, clients);
  for (int i = 0; i < clients; i++) {
    c[i] = rfbGetClient(8, 3, 4);
    free(c[i]->serverHost);
    c[i]->serverHost = strdup(argv[1]);
    c[i]->serverPort = port;
    c[i]->GetPassword = get_password;
    c[i]->appData.shareDesktop = TRUE;
    c[i]->appData.encodingsString = g_getenv("NB_VNC_ENCODINGS") ? g_getenv("NB_VNC_ENCODINGS")
                                    : i < copyrect_clients ? "copyrect tight zrle hextile raw"
                                    : "tight zrle hextile raw";
    c[i]->canHandleNewFBSize = TRUE;
    /* Exact pixels: Tight without its lossy JPEG mode. */
    c[i]->appData.enableJPEG = FALSE;
    if (i == 0)
      c[i]->FinishedFrameBufferUpdate = on_update_done;
    if (!rfbInitClient(c[i], NULL, NULL)) {
      /* rfbInitClient frees the client on failure. */
      printf("AUTH-FAILED client %d\n", i);
      return 3;
    }
  }
  printf("CONNECTED %d\n", clients);
  if (stop_file)
    return watch(c, clients, stop_file, timeout, save);

  for (char **p = patterns; p && *p; p++) {
    unsigned w = 0, h = 0;
    if (sscanf(*p, "%ux%u", &w, &h) != 2)
      return 2;
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout * G_USEC_PER_SEC;
    bool all = false;
    for (unsigned round = 0; !all && g_get_monotonic_time() < deadline; round++) {
      all = true;
      for (int i = 0; i < clients; i++) {
        if (!pump(c[i], 20000)) {
          printf("DISCONNECTED client %d\n", i);
          return 1;
        }
        if (!matches(c[i], w, h, false)) {
          all = false;
          /* Ask for changes, and now and then for the whole picture. */
          SendFramebufferUpdateRequest(c[i], 0, 0, c[i]->width, c[i]->height, round % 16 != 15);
        }
      }
    }
    if (!all) {
      for (int i = 0; i < clients; i++)
        if (!matches(c[i], w, h, true))
          printf("client %d never showed the %ux%u pattern\n", i, w, h);
      return 1;
    }
    printf("MATCH %ux%u\n", w, h);
  }

  for (char **t = texts; t && *t; t++) {
    g_autoptr(GRegex) re = g_regex_new(*t, 0, 0, &error);
    if (re == NULL) {
      fprintf(stderr, "vnc-test-client: --text %s: %s\n", *t, error->message);
      return 2;
    }
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout * G_USEC_PER_SEC;
    g_autofree char *mask = NULL;
    int row = -1;
    for (unsigned round = 0; row < 0 && g_get_monotonic_time() < deadline; round++) {
      if (!pump(c[0], 20000)) {
        printf("DISCONNECTED client 0\n");
        return 1;
      }
      row = find_text(c[0], re, &mask);
      if (row < 0)
        SendFramebufferUpdateRequest(c[0], 0, 0, c[0]->width, c[0]->height, round % 16 != 15);
    }
    if (row < 0) {
      printf("NO-TEXT-MATCH /%s/ in %dx%d; the rows with anything:\n", *t, c[0]->width,
             c[0]->height);
      print_text(c[0]);
      if (save)
        save_rgb(c[0], save);
      return 1;
    }
    /* The row may still be being drawn: follow it for half a second and
     * report it as last seen while it still matched. */
    gint64 settle = g_get_monotonic_time() + G_USEC_PER_SEC / 2;
    for (unsigned round = 0; g_get_monotonic_time() < settle; round++) {
      if (!pump(c[0], 20000))
        break;
      SendFramebufferUpdateRequest(c[0], 0, 0, c[0]->width, c[0]->height, TRUE);
      g_autofree char *now = text_row(c[0], (unsigned)row);
      if (now == NULL || !g_regex_match(re, now, 0, NULL))
        break;
      g_free(mask);
      mask = g_steal_pointer(&now);
    }
    printf("TEXT-MATCH row %d: %s\n", row, mask);
  }
  if (save && !save_rgb(c[0], save))
    return 1;

  if (pointer) {
    int x, y;
    if (sscanf(pointer, "%d,%d", &x, &y) != 2)
      return 2;
    SendPointerEvent(c[0], x, y, 0);
    printf("SENT-POINTER %d,%d\n", x, y);
  }
  if (keys) {
    g_auto(GStrv) list = g_strsplit(keys, ",", -1);
    for (char **k = list; *k; k++) {
      const char *s = *k;
      int mode = 0;   /* 0 tap, 1 press, -1 release */
      if (*s == '+')
        mode = 1, s++;
      else if (*s == '-')
        mode = -1, s++;
      uint32_t sym = (uint32_t)strtoul(s, NULL, 16);
      if (mode >= 0)
        SendKeyEvent(c[0], sym, TRUE);
      if (mode <= 0)
        SendKeyEvent(c[0], sym, FALSE);
      pump(c[0], 20000);
    }
    printf("SENT-KEYS %s\n", keys);
  }
  if (scancode_keys) {
    /* libvncclient forgets the server's confirmation when the server's
     * list of supported messages (in its first update) arrives, until the
     * server confirms again: wait for that update, then give that time. */
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout * G_USEC_PER_SEC;
    while (updates_done == 0 && g_get_monotonic_time() < deadline)
      if (!pump(c[0], 20000))
        return 1;
    for (int t = 0; t < 15; t++)
      if (!pump(c[0], 20000))
        return 1;
    while (!SupportsClient2Server(c[0], rfbQemuEvent) && g_get_monotonic_time() < deadline)
      if (!pump(c[0], 20000))
        return 1;
    if (!SupportsClient2Server(c[0], rfbQemuEvent)) {
      printf("EXT-KEYS-NOT-CONFIRMED\n");
      return 1;
    }
    printf("EXT-KEYS-CONFIRMED\n");
    g_auto(GStrv) list = g_strsplit(scancode_keys, ",", -1);
    for (char **k = list; *k; k++) {
      char *slash = strchr(*k, '/');
      if (slash == NULL)
        return 2;
      uint32_t qnum = (uint32_t)strtoul(*k, NULL, 16), sym = (uint32_t)strtoul(slash + 1, NULL, 16);
      SendExtendedKeyEvent(c[0], sym, qnum, TRUE);
      SendExtendedKeyEvent(c[0], sym, qnum, FALSE);
      pump(c[0], 20000);
    }
    printf("SENT-SCANCODES %s\n", scancode_keys);
  }
  if (expect_leds) {
    g_auto(GStrv) list = g_strsplit(expect_leds, ",", -1);
    for (char **v = list; *v; v++) {
      int want = atoi(*v);
      gint64 deadline = g_get_monotonic_time() + (gint64)timeout * G_USEC_PER_SEC;
      while (leds_seen != want && g_get_monotonic_time() < deadline)
        if (!pump(c[0], 20000))
          return 1;
      if (leds_seen != want) {
        printf("LEDS-TIMEOUT waiting for %d\n", want);
        return 1;
      }
    }
  }
  /* Let the server read what was sent before the connection closes. */
  for (int t = 0; t < 25; t++)
    for (int i = 0; i < clients; i++)
      pump(c[i], 20000);
  for (int i = 0; i < clients; i++) {
    /* libvncclient leaves the picture to its owner. */
    free(c[i]->frameBuffer);
    rfbClientCleanup(c[i]);
  }
  g_free(c);
  g_free(password);
  g_strfreev(patterns);
  g_strfreev(texts);
  return 0;
}
