/* The display benchmark's guest side (built with gcc -static at bench time,
 * like tests/kvm/guest-display.c): draws a scripted workload on /dev/fb0 and
 * takes its orders from the host over the serial console.
 *
 *   guest-vncload SERIAL_DEVICE
 *
 * On the serial line (raw mode, no echo):
 *   S                      answered at once with "Q <CLOCK_MONOTONIC ns>\n":
 *                          the host pairs it with its own clock (the
 *                          midpoint of its send and receive) to learn the
 *                          offset between the two clocks
 *   prep NAME\n            draws the first frame of workload NAME, answers
 *                          "PREPARED NAME"
 *   run NAME SECONDS FPS\n draws FPS frames a second for SECONDS, answers
 *                          "DONE NAME frames=N late=L ..."
 *   quit\n                 exits 0
 * Workloads:
 *   scroll  a full-screen text terminal (the kernel's console font) that
 *           scrolls by one text line per frame, like a log being tailed
 *   window  a 480x320 window (title bar, text) moved across a desktop
 *           background by 4 px across and 2 px down per frame
 *
 * Each frame carries a stamp in the bottom bar: 64 bits (the frame number,
 * 24 bits, and the guest's CLOCK_MONOTONIC in microseconds when the frame's
 * write began, 40 bits) and an 8-bit check (the XOR of those 8 bytes), as
 * 72 blocks of 8x8 pixels, white for 1 and black for 0, from x = 8 at
 * y = height - 12. A frame is written as the program that draws it would:
 * the rows that changed in one pwrite() (so Linux's DRM fbdev emulation
 * damages and copies exactly those rows to video memory at once, without
 * the 50 ms deferred-I/O delay of a mapping), then the stamp's rows; the
 * stamp's time is taken after the frame was drawn off screen, just before
 * that first write.
 *
 * The native delay benchmark (bench-vnc-delay.c) includes this file to draw
 * the same frames with no guest: it defines VNCLOAD_NO_MAIN (no command loop
 * or main) and VNCLOAD_PWRITE (its own write into the framebuffer). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fb.h>
#include <linux/kd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define STAMP_BLOCKS 72
#define STAMP_BLOCK 8
#define BAR_HEIGHT 16
#define WIN_W 480
#define WIN_H 320

#ifndef VNCLOAD_PWRITE
#define VNCLOAD_PWRITE pwrite
#endif

static int fb_fd, tty_fd;
static unsigned width, height, line_pixels;   /* line_pixels: stride in pixels */
static uint32_t *frame;                       /* the whole screen, as written */
static uint32_t *background;                  /* the desktop under the window */
static uint32_t *window_img;                  /* WIN_W x WIN_H */

/* The console font: 8 pixels wide, font_h rows, 256 glyphs. */
static uint8_t font[256][32];
static unsigned font_h = 16;
static const char *font_source = "kernel";

static uint64_t
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
say(const char *format, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *format, ...)
{
  char text[512];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(text, sizeof text, format, args);
  va_end(args);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof text)
    n = sizeof text - 1;
  (void)!write(tty_fd, text, (size_t)n);
}

/* xorshift64: the same text and colours on every run of a workload. */
static uint64_t rng;

static unsigned
rnd(unsigned n)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng % n);
}

/* The kernel console's own font, read before the console lets go of the
 * screen; a made-up one (glyphs of random strokes) where that fails. */
static void
load_font(void)
{
  static uint8_t data[512 * 32 * 4];
  struct console_font_op op = {
    .op = KD_FONT_OP_GET, .width = 32, .height = 32, .charcount = 512, .data = data,
  };
  int fd = open("/dev/tty1", O_RDWR);
  if (fd >= 0 && ioctl(fd, KDFONTOP, &op) == 0 && op.width == 8 && op.height >= 8 &&
      op.height <= 32 && op.charcount >= 256) {
    font_h = op.height;
    for (unsigned c = 0; c < 256; c++)
      memcpy(font[c], data + c * 32, 32);
  } else {
    font_source = "synthetic";
    rng = 0x5eed;
    for (unsigned c = 33; c < 127; c++)
      for (unsigned r = 3; r < 13; r++)
        font[c][r] = (uint8_t)(rnd(256) & 0x7e);
  }
  if (fd >= 0)
    close(fd);
}

static void
draw_text(uint32_t *buf, unsigned stride, unsigned x, unsigned y, const char *text, uint32_t fg,
          uint32_t bg, unsigned max_x)
{
  for (; *text && x + 8 <= max_x; text++, x += 8) {
    const uint8_t *g = font[(uint8_t)*text];
    for (unsigned r = 0; r < font_h; r++) {
      uint32_t *p = buf + (size_t)(y + r) * stride + x;
      for (unsigned b = 0; b < 8; b++)
        p[b] = (g[r] & (0x80 >> b)) ? fg : bg;
    }
  }
}

static void
fill(uint32_t *buf, unsigned stride, unsigned x, unsigned y, unsigned w, unsigned h, uint32_t c)
{
  for (unsigned j = 0; j < h; j++)
    for (unsigned i = 0; i < w; i++)
      buf[(size_t)(y + j) * stride + x + i] = c;
}

/* A line of made-up log output: a time, a level, words. */
static void
make_line(char *line, size_t size, unsigned n, uint32_t *colour)
{
  static const char *levels[] = { "INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR" };
  static const uint32_t colours[] = { 0xc0c0c0, 0xc0c0c0, 0xc0c0c0, 0x808080, 0xe0e040, 0xff5050 };
  unsigned level = rnd(6);
  *colour = colours[level];
  int len = snprintf(line, size, "[%6u.%03u] %s ", n / 10, (n % 10) * 100 + rnd(100), levels[level]);
  unsigned target = 30 + rnd(90);
  while (len >= 0 && (size_t)len + 12 < size && (unsigned)len < target) {
    unsigned w = 1 + rnd(10);
    for (unsigned i = 0; i < w; i++)
      line[len++] = (char)(rnd(5) == 0 ? '0' + rnd(10) : 'a' + rnd(26));
    line[len++] = rnd(8) == 0 ? ',' : ' ';
  }
  line[len > 0 ? len : 0] = '\0';
}

static void
write_rows(unsigned y0, unsigned y1)
{
  size_t line = (size_t)line_pixels * 4;
  size_t len = (y1 - y0) * line;
  off_t off = (off_t)(y0 * line);
  const uint8_t *p = (const uint8_t *)frame + off;
  while (len > 0) {
    ssize_t n = VNCLOAD_PWRITE(fb_fd, p, len, off);
    if (n <= 0) {
      say("GUEST-VNCLOAD-ERROR write /dev/fb0: %s\n", strerror(errno));
      exit(1);
    }
    p += n, off += n, len -= (size_t)n;
  }
}

/* The bottom bar with frame number k and time t_us in it, then written. */
static void
stamp(uint32_t k, uint64_t t_us)
{
  uint64_t v = (uint64_t)(k & 0xffffff) << 40 | (t_us & 0xffffffffffull);
  uint8_t check = 0;
  for (int i = 0; i < 8; i++)
    check ^= (uint8_t)(v >> (8 * i));
  unsigned y = height - 12;
  for (unsigned b = 0; b < STAMP_BLOCKS; b++) {
    bool one = b < 64 ? (v >> (63 - b)) & 1 : (check >> (71 - b)) & 1;
    fill(frame, line_pixels, 8 + b * STAMP_BLOCK, y, STAMP_BLOCK, STAMP_BLOCK, one ? 0xffffff : 0);
  }
  write_rows(y, y + STAMP_BLOCK);
}

/* Workloads --------------------------------------------------------------- */

static unsigned term_line;

static void
scroll_prep(void)
{
  rng = 0x7e57;
  term_line = 0;
  fill(frame, line_pixels, 0, 0, width, height - BAR_HEIGHT, 0);
}

/* One frame: everything moves up a text line, a new line at the bottom.
 * Returns the rows to write in *y0, *y1. */
static void
scroll_frame(unsigned *y0, unsigned *y1)
{
  unsigned rows = (height - BAR_HEIGHT) / font_h;
  size_t line = (size_t)line_pixels * 4;
  memmove(frame, (uint8_t *)frame + font_h * line, (rows - 1) * font_h * line);
  char text[200];
  uint32_t colour;
  make_line(text, sizeof text, term_line++, &colour);
  unsigned y = (rows - 1) * font_h;
  fill(frame, line_pixels, 0, y, width, font_h, 0);
  draw_text(frame, line_pixels, 0, y, text, colour, 0, width);
  *y0 = 0;
  *y1 = rows * font_h;
}

static int win_x, win_y, win_dx, win_dy;

static void
window_prep(void)
{
  unsigned h = height - BAR_HEIGHT;
  /* A desktop: a vertical blue gradient with a column of icons. */
  for (unsigned y = 0; y < h; y++) {
    uint32_t c = (0x20 + 0x20 * y / h) << 16 | (0x40 + 0x40 * y / h) << 8 | (0x80 + 0x40 * y / h);
    for (unsigned x = 0; x < width; x++)
      background[(size_t)y * line_pixels + x] = c;
  }
  static const char *icons[] = { "Home", "Mail", "Files", "Notes", "Trash" };
  for (unsigned i = 0; i < 5 && 16 + i * 80 + 64 < h; i++) {
    fill(background, line_pixels, 24, 16 + i * 80, 40, 40, 0xe0c060 - i * 0x201000);
    draw_text(background, line_pixels, 16, 16 + i * 80 + 44, icons[i], 0xffffff, 0x2a4a8a, width);
  }
  /* The window: frame, title bar, a document. */
  fill(window_img, WIN_W, 0, 0, WIN_W, WIN_H, 0x303030);
  fill(window_img, WIN_W, 1, 1, WIN_W - 2, 22, 0x3060c0);
  draw_text(window_img, WIN_W, 8, 4, "Quarterly report - Editor", 0xffffff, 0x3060c0, WIN_W);
  fill(window_img, WIN_W, 1, 23, WIN_W - 2, WIN_H - 24, 0xffffff);
  rng = 0xd0c;
  for (unsigned y = 30; y + font_h < WIN_H - 4; y += font_h + 2) {
    char text[200];
    uint32_t colour;
    make_line(text, sizeof text, y, &colour);
    draw_text(window_img, WIN_W, 8, y, text + 13, 0x101010, 0xffffff, WIN_W - 8);
  }
  win_x = 100, win_y = 60, win_dx = 4, win_dy = 2;
  memcpy(frame, background, (size_t)h * line_pixels * 4);
  for (unsigned y = 0; y < WIN_H; y++)
    memcpy(frame + (size_t)(win_y + (int)y) * line_pixels + win_x, window_img + (size_t)y * WIN_W,
           WIN_W * 4);
}

static void
window_frame(unsigned *rows0, unsigned *rows1)
{
  int h = (int)(height - BAR_HEIGHT);
  int old_y = win_y;
  if (win_x + win_dx < 0 || win_x + win_dx + WIN_W > (int)width)
    win_dx = -win_dx;
  if (win_y + win_dy < 0 || win_y + win_dy + WIN_H > h)
    win_dy = -win_dy;
  win_x += win_dx;
  win_y += win_dy;
  int y0 = old_y < win_y ? old_y : win_y;
  int y1 = (old_y > win_y ? old_y : win_y) + WIN_H;
  for (int y = y0; y < y1; y++) {
    uint32_t *row = frame + (size_t)y * line_pixels;
    memcpy(row, background + (size_t)y * line_pixels, (size_t)width * 4);
    if (y >= win_y && y < win_y + WIN_H)
      memcpy(row + win_x, window_img + (size_t)(y - win_y) * WIN_W, WIN_W * 4);
  }
  *rows0 = (unsigned)y0;
  *rows1 = (unsigned)y1;
}

typedef struct {
  const char *name;
  void (*prep)(void);
  void (*frame)(unsigned *y0, unsigned *y1);   /* draws the next frame off screen */
} Workload;

static const Workload workloads[] = {
  { "scroll", scroll_prep, scroll_frame },
  { "window", window_prep, window_frame },
};

static const Workload *
find_workload(const char *name)
{
  for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
    if (strcmp(workloads[i].name, name) == 0)
      return &workloads[i];
  return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void
run(const Workload *w, unsigned seconds, unsigned fps)
{
  unsigned frames = seconds * fps;
  uint64_t period = 1000000000u / fps;
  uint64_t *write_ns = calloc(frames ? frames : 1, sizeof *write_ns);
  unsigned late = 0, written = 0;
  uint64_t start = now_ns();
  for (unsigned k = 1; k <= frames; k++) {
    uint64_t due = start + (uint64_t)k * period;
    uint64_t t = now_ns();
    if (t > due + period) {
      late++;          /* a whole period behind: skip it, as a player would */
      continue;
    }
    if (t < due) {
      struct timespec ts = { (time_t)(due / 1000000000u), (long)(due % 1000000000u) };
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    }
    unsigned y0, y1;
    w->frame(&y0, &y1);
    /* The stamp's time is when the frame's write begins. */
    t = now_ns();
    write_rows(y0, y1);
    stamp(k, t / 1000);
    write_ns[written++] = now_ns() - t;
  }
  uint64_t wall = now_ns() - start;
  qsort(write_ns, written, sizeof *write_ns, cmp_u64);
  say("DONE %s frames=%u late=%u wall_ms=%llu write_us_median=%llu write_us_max=%llu\n", w->name,
      written, late, (unsigned long long)(wall / 1000000),
      (unsigned long long)(written ? write_ns[written / 2] / 1000 : 0),
      (unsigned long long)(written ? write_ns[written - 1] / 1000 : 0));
  free(write_ns);
}

#ifndef VNCLOAD_NO_MAIN

/* Command loop ---------------------------------------------------------- */

static void
command(char *line)
{
  char name[32];
  unsigned seconds, fps;
  const Workload *w;
  if (sscanf(line, "prep %31s", name) == 1 && (w = find_workload(name))) {
    w->prep();
    write_rows(0, height - BAR_HEIGHT);
    stamp(0, now_ns() / 1000);
    say("PREPARED %s\n", name);
  } else if (sscanf(line, "run %31s %u %u", name, &seconds, &fps) == 3 &&
             (w = find_workload(name)) && fps >= 1 && fps <= 200 && seconds <= 3600) {
    run(w, seconds, fps);
  } else if (strcmp(line, "quit") == 0) {
    say("QUIT\n");
    exit(0);
  } else {
    say("GUEST-VNCLOAD-ERROR unknown command '%s'\n", line);
  }
}

int
main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: guest-vncload SERIAL_DEVICE\n");
    return 2;
  }
  tty_fd = open(argv[1], O_RDWR | O_NOCTTY);
  if (tty_fd < 0) {
    perror("GUEST-VNCLOAD-ERROR open serial");
    return 1;
  }
  struct termios t;
  if (tcgetattr(tty_fd, &t) == 0) {
    cfmakeraw(&t);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(tty_fd, TCSANOW, &t);
  }
  for (int i = 0; i < 300 && access("/dev/fb0", F_OK) != 0; i++)
    usleep(100000);
  load_font();
  /* The text console must not draw over the workload. */
  for (int i = 0; i < 4; i++) {
    char path[64], name[64] = "";
    snprintf(path, sizeof path, "/sys/class/vtconsole/vtcon%d/name", i);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    if (fgets(name, sizeof name, f) && strstr(name, "frame buffer")) {
      snprintf(path, sizeof path, "/sys/class/vtconsole/vtcon%d/bind", i);
      FILE *b = fopen(path, "w");
      if (b) {
        fputs("0", b);
        fclose(b);
      }
    }
    fclose(f);
  }
  fb_fd = open("/dev/fb0", O_RDWR);
  struct fb_var_screeninfo var;
  struct fb_fix_screeninfo fix;
  if (fb_fd < 0 || ioctl(fb_fd, FBIOGET_VSCREENINFO, &var) < 0 ||
      ioctl(fb_fd, FBIOGET_FSCREENINFO, &fix) < 0 || var.bits_per_pixel != 32 ||
      fix.line_length % 4 != 0 || var.xres < WIN_W + 16 || var.yres < WIN_H + BAR_HEIGHT + 16) {
    say("GUEST-VNCLOAD-ERROR no usable 32 bpp /dev/fb0 (%s)\n", strerror(errno));
    return 1;
  }
  width = var.xres;
  height = var.yres;
  line_pixels = fix.line_length / 4;
  frame = calloc((size_t)line_pixels * height, 4);
  background = calloc((size_t)line_pixels * height, 4);
  window_img = calloc(WIN_W * WIN_H, 4);
  /* The bottom bar: a dark strip the stamp sits in. */
  fill(frame, line_pixels, 0, height - BAR_HEIGHT, width, BAR_HEIGHT, 0x202020);
  write_rows(height - BAR_HEIGHT, height);
  say("VNCLOAD-READY %ux%u font=%s 8x%u fb=%.16s\n", width, height, font_source, font_h, fix.id);

  char line[128];
  size_t len = 0;
  for (;;) {
    char c;
    ssize_t n = read(tty_fd, &c, 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return 1;
    if (c == 'S' && len == 0) {
      /* Answered before anything else, so the reply's delay is as short
       * as the probe's. */
      say("Q %llu\n", (unsigned long long)now_ns());
      continue;
    }
    if (c == '\r' || c == '\n') {
      line[len] = '\0';
      if (len > 0)
        command(line);
      len = 0;
    } else if (len + 1 < sizeof line) {
      line[len++] = c;
    }
  }
}

#endif /* VNCLOAD_NO_MAIN */
