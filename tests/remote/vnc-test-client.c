/* A VNC client for tests (libvncclient): connects one or more clients,
 * checks that every one sees the test pattern exactly, sends keys and a
 * pointer position, and says what happened on stdout.
 *
 *   vnc-test-client HOST:PORT [--password-file F] [--clients N]
 *       [--pattern WxH]... [--text REGEX]... [--save FILE]
 *       [--keys SYM,SYM,...] [--pointer X,Y] [--timeout S]
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
 * time); on timeout it prints the rows that hold anything. --save writes client 0's picture as raw RGB (WxH in
 * "SAVED WxH FILE") at the end. Exit status: 0 all good, 1 a picture never
 * matched (the first wrong pixel is printed), 2 usage, 3 the server refused
 * the connection or the password ("AUTH-FAILED"). */
#include "test-pattern.h"

#include <rfb/rfbclient.h>

#include <glib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *password;

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
  if (n > 0 && !HandleRFBServerMessage(c))
    return false;
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

int
main(int argc, char **argv)
{
  if (argc == 4 && strcmp(argv[1], "--compare-rgb") == 0)
    return compare_rgb(argv[2], argv[3]);
  const char *password_file = NULL, *keys = NULL, *pointer = NULL;
  char **patterns = NULL, **texts = NULL;
  const char *save = NULL;
  int clients = 1, timeout = 60;
  GOptionEntry entries[] = {
    { "password-file", 0, 0, G_OPTION_ARG_FILENAME, &password_file, "Password", "FILE" },
    { "clients", 0, 0, G_OPTION_ARG_INT, &clients, "Clients at once", "N" },
    { "pattern", 0, 0, G_OPTION_ARG_STRING_ARRAY, &patterns, "Expect the test pattern", "WxH" },
    { "text", 0, 0, G_OPTION_ARG_STRING_ARRAY, &texts, "Expect a text row whose cells match", "REGEX" },
    { "save", 0, 0, G_OPTION_ARG_FILENAME, &save, "Save the picture as raw RGB", "FILE" },
    { "keys", 0, 0, G_OPTION_ARG_STRING, &keys, "Keysyms to send", "SYMS" },
    { "pointer", 0, 0, G_OPTION_ARG_STRING, &pointer, "Pointer position to send", "X,Y" },
    { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout, "Seconds to wait for each picture", "S" },
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

  rfbClient **c = g_new0(rfbClient *, clients);
  for (int i = 0; i < clients; i++) {
    c[i] = rfbGetClient(8, 3, 4);
    free(c[i]->serverHost);
    c[i]->serverHost = strdup(argv[1]);
    c[i]->serverPort = port;
    c[i]->GetPassword = get_password;
    c[i]->appData.shareDesktop = TRUE;
    c[i]->appData.encodingsString = g_getenv("NB_VNC_ENCODINGS") ? g_getenv("NB_VNC_ENCODINGS") : "tight zrle hextile raw";
    c[i]->canHandleNewFBSize = TRUE;
    /* Exact pixels: Tight without its lossy JPEG mode. */
    c[i]->appData.enableJPEG = FALSE;
    if (!rfbInitClient(c[i], NULL, NULL)) {
      /* rfbInitClient frees the client on failure. */
      printf("AUTH-FAILED client %d\n", i);
      return 3;
    }
  }
  printf("CONNECTED %d\n", clients);

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
