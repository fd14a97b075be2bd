/* The VNC path's added delay, natively: no guest, no sandbox, no KVM.
 *
 *   bench-vnc-delay --client PATH [--seconds N] [--display N]
 *                   [--workloads scroll:10,window:25] [--encodings none,tight,zrle,raw]
 *                   [--no-dirty-log]
 *
 * An NbFramebuffer of 16 MiB (the bochs display's default video memory)
 * shows 1024x768 XRGB8888, and an NbVncServer is attached to it on
 * 127.0.0.1 as nestbox-vm attaches one (its 30 ms refresh on this main
 * loop). A writer thread draws the display benchmark's workloads with the
 * guest's own drawing code (guest-vncload.c, included below), paced and
 * stamped as in the guest, except that each row write is a copy straight
 * into the framebuffer's memory instead of a pwrite() on /dev/fb0. Unless
 * --no-dirty-log, the framebuffer's dirty log reports exactly the 4 KiB
 * pages those copies touched since the last look, as KVM's log on video
 * memory does; without it every tile is compared on every refresh.
 *
 * For each workload and encoding, vnc-bench-client (the same client as the
 * sandbox benchmark) is connected; it stamps each new frame it decodes with
 * CLOCK_MONOTONIC, the clock the writer stamped the frame with, so the delay
 * needs no clock sync: from just before the frame's first row is copied to
 * the client's complete, decoded update. Printed per phase, as a Markdown
 * table row: delay median / p90 / max, frames shown of those written,
 * updates, bytes per frame written and Mbit/s on the wire, and the server's
 * CPU per frame written (this process's CPU time less the writer thread's,
 * over the workload and the 0.5 s after it: the refreshes, the comparison,
 * the copies, the encoding and the sending). Exit status 0, or 1 when a
 * phase failed. */

#include <sys/types.h>

/* The guest's drawing code, writing into the framebuffer (see above). */
static ssize_t bench_pwrite(int fd, const void *buf, size_t len, off_t off);
#define VNCLOAD_NO_MAIN
#define VNCLOAD_PWRITE bench_pwrite
#include "guest-vncload.c"

#include "hw/framebuffer.h"
#include "vnc-server.h"

#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define FB_SIZE (16u << 20)
#define SCREEN_W 1024
#define SCREEN_H 768

static NbFramebuffer *bench_fb;
static GMutex dirty_lock;
static unsigned long *dirty_bits;   /* pages written since the last dirty log call */
static size_t dirty_words;

static char *opt_client;
static int opt_seconds = 4;
static int opt_display = 77;
static char *opt_workloads;
static char *opt_encodings;
static gboolean opt_no_dirty_log;
static GMainLoop *loop;
static int done_pipe[2];   /* run()'s DONE line */
static bool failed;

/* Marks the pages under [off, off + len) written. */
static void
mark_pages(size_t off, size_t len)
{
  const size_t bits = 8 * sizeof(unsigned long);
  g_mutex_lock(&dirty_lock);
  for (size_t page = off / NB_FB_PAGE_SIZE; page <= (off + len - 1) / NB_FB_PAGE_SIZE; page++)
    dirty_bits[page / bits] |= 1ul << (page % bits);
  g_mutex_unlock(&dirty_lock);
}

static ssize_t
bench_pwrite(int fd, const void *buf, size_t len, off_t off)
{
  (void)fd;
  uint64_t size = nb_framebuffer_size(bench_fb);
  if (off < 0 || (uint64_t)off > size || len > size - (uint64_t)off) {
    errno = EINVAL;
    return -1;
  }
  if (len == 0)
    return 0;
  /* Marked before and after the copy, so a page counts as written whenever
   * a refresh reads the log during its copy: KVM marks a page at the write
   * fault before the first store, and again at the next store after a read
   * of the log write-protected it. Marking only before would hide the rest
   * of a copy that a refresh interrupts; only after, a full comparison during
   * the copy would find pages the log does not name yet. */
  mark_pages((size_t)off, len);
  memcpy(nb_framebuffer_data(bench_fb) + off, buf, len);
  mark_pages((size_t)off, len);
  return (ssize_t)len;
}

static bool
bench_dirty_log(void *ctx, unsigned long *bitmap, size_t n_pages)
{
  (void)ctx;
  size_t words = (n_pages + 8 * sizeof(unsigned long) - 1) / (8 * sizeof(unsigned long));
  g_mutex_lock(&dirty_lock);
  for (size_t i = 0; i < words; i++) {
    bitmap[i] = i < dirty_words ? dirty_bits[i] : 0;
    if (i < dirty_words)
      dirty_bits[i] = 0;
  }
  g_mutex_unlock(&dirty_lock);
  return true;
}

static void
no_key(void *ctx, unsigned keycode, bool pressed)
{
}

static void
no_pointer(void *ctx, unsigned x, unsigned y, unsigned buttons, int wheel)
{
}

/* The client, and its stdout read line by line with a timeout. */
typedef struct {
  GPid pid;
  int in, out;
  char buf[4096];
  size_t len;
} Client;

static bool
client_line(Client *c, char *line, size_t size, int timeout_ms)
{
  gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      size_t copy = n < size - 1 ? n : size - 1;
      memcpy(line, c->buf, copy);
      line[copy] = '\0';
      memmove(c->buf, nl + 1, c->len - n - 1);
      c->len -= n + 1;
      return true;
    }
    if (c->len == sizeof c->buf)
      c->len = 0;   /* a line longer than any the client prints */
    gint64 left = (end - g_get_monotonic_time()) / 1000;
    struct pollfd p = { .fd = c->out, .events = POLLIN };
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
      return false;
    ssize_t n = read(c->out, c->buf + c->len, sizeof c->buf - c->len);
    if (n <= 0)
      return false;
    c->len += (size_t)n;
  }
}

static bool
client_wait(Client *c, const char *word, char *line, size_t size, int timeout_ms)
{
  while (client_line(c, line, size, timeout_ms))
    if (strncmp(line, word, strlen(word)) == 0)
      return true;
  fprintf(stderr, "bench-vnc-delay: no %s from the client\n", word);
  return false;
}

static void
client_end(Client *c)
{
  close(c->in);
  close(c->out);
  int status;
  gint64 end = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
  while (waitpid(c->pid, &status, WNOHANG) == 0) {
    if (g_get_monotonic_time() > end) {
      kill(c->pid, SIGKILL);
      waitpid(c->pid, &status, 0);
      break;
    }
    g_usleep(10000);
  }
  g_spawn_close_pid(c->pid);
}

static bool
client_start(Client *c, const char *encoding)
{
  char address[32];
  snprintf(address, sizeof address, "127.0.0.1:%d", NB_VNC_BASE_PORT + opt_display);
  char *argv[] = { opt_client, address, (char *)"--encoding", (char *)encoding, NULL };
  g_autoptr(GError) error = NULL;
  *c = (Client){ 0 };
  if (!g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &c->pid,
                                &c->in, &c->out, NULL, &error)) {
    fprintf(stderr, "bench-vnc-delay: %s\n", error->message);
    return false;
  }
  char line[256];
  if (client_wait(c, "READY", line, sizeof line, 10000) && write(c->in, "start\n", 6) == 6 &&
      client_wait(c, "STARTED", line, sizeof line, 10000))
    return true;
  client_end(c);
  return false;
}

/* This process's CPU time less this (the writer's) thread's, in ns. */
static uint64_t
server_cpu_ns(void)
{
  struct timespec p, t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &p);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return ((uint64_t)p.tv_sec - (uint64_t)t.tv_sec) * 1000000000u + (uint64_t)p.tv_nsec -
         (uint64_t)t.tv_nsec;
}

static int
cmp_u64_asc(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void
phase(const Workload *w, unsigned fps, const char *encoding)
{
  bool with_client = strcmp(encoding, "none") != 0;
  /* Each phase starts from the workload's first frame, as in the guest. */
  w->prep();
  write_rows(0, height - BAR_HEIGHT);
  stamp(0, now_ns() / 1000);
  Client c;
  if (with_client && !client_start(&c, encoding)) {
    printf("| %s %u fps | %s | failed: the client did not start |\n", w->name, fps, encoding);
    failed = true;
    return;
  }
  uint64_t cpu0 = server_cpu_ns();
  run(w, (unsigned)opt_seconds, fps);
  g_usleep(500000);   /* the last frames reach the client */
  uint64_t cpu1 = server_cpu_ns();
  char done[256] = "";
  ssize_t dn = read(done_pipe[0], done, sizeof done - 1);
  done[dn > 0 ? dn : 0] = '\0';
  unsigned written = 0, late = 0;
  if (sscanf(done, "DONE %*s frames=%u late=%u", &written, &late) != 2 || written == 0) {
    printf("| %s %u fps | %s | failed: %s |\n", w->name, fps, encoding, done);
    failed = true;
    if (with_client)
      client_end(&c);
    return;
  }
  double cpu_ms = (double)(cpu1 - cpu0) / 1e6 / written;
  if (!with_client) {
    printf("| %s %u fps | none | | | | | | | | %.3f | %u late |\n", w->name, fps, cpu_ms, late);
    return;
  }
  (void)!write(c.in, "stop\n", 5);
  char line[256];
  unsigned long long bytes = 0;
  unsigned long updates = 0;
  if (!client_wait(&c, "RESULT", line, sizeof line, 10000) ||
      sscanf(line, "RESULT bytes=%llu updates=%lu", &bytes, &updates) != 2) {
    printf("| %s %u fps | %s | failed: no result from the client |\n", w->name, fps, encoding);
    failed = true;
    client_end(&c);
    return;
  }
  GArray *delays = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  while (client_line(&c, line, sizeof line, 10000) && strcmp(line, "END") != 0) {
    unsigned k;
    unsigned long long stamp_us, host_ns;
    if (sscanf(line, "FRAME %u %llu %llu", &k, &stamp_us, &host_ns) == 3 && k > 0) {
      /* The stamp holds 40 bits of microseconds. */
      uint64_t d = (host_ns / 1000 - stamp_us) & 0xffffffffffull;
      g_array_append_val(delays, d);
    }
  }
  client_end(&c);
  uint64_t *d = (uint64_t *)delays->data;
  unsigned n = delays->len;
  qsort(d, n, sizeof *d, cmp_u64_asc);
  if (n == 0) {
    printf("| %s %u fps | %s | no frame shown |\n", w->name, fps, encoding);
    failed = true;
  } else {
    double secs = (double)written / fps;
    printf("| %s %u fps | %s | %.1f | %.1f | %.1f | %u/%u | %lu | %.1f | %.2f | %.3f | %u late |\n",
           w->name, fps, encoding, d[n / 2] / 1000.0, d[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1] / 1000.0,
           d[n - 1] / 1000.0, n, written, updates, bytes / 1024.0 / written, bytes * 8 / secs / 1e6,
           cpu_ms, late);
  }
  g_array_free(delays, TRUE);
}

static gpointer
bench_thread(gpointer data)
{
  (void)data;
  printf("| workload | encoding | delay median ms | p90 ms | max ms | frames shown/written | "
         "updates | KiB/frame | Mbit/s | server CPU ms/frame | |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|\n");
  g_auto(GStrv) ws = g_strsplit(opt_workloads ? opt_workloads : "scroll:10,window:25", ",", -1);
  g_auto(GStrv) es = g_strsplit(opt_encodings ? opt_encodings : "none,tight,zrle,raw", ",", -1);
  for (char **wp = ws; *wp; wp++) {
    char name[32];
    unsigned fps;
    const Workload *w;
    if (sscanf(*wp, "%31[^:]:%u", name, &fps) != 2 || fps < 1 || fps > 200 ||
        !(w = find_workload(name))) {
      fprintf(stderr, "bench-vnc-delay: bad workload %s (NAME:FPS, scroll or window)\n", *wp);
      failed = true;
      continue;
    }
    for (char **ep = es; *ep; ep++)
      phase(w, fps, *ep);
  }
  g_main_loop_quit(loop);
  return NULL;
}

int
main(int argc, char **argv)
{
  static GOptionEntry entries[] = {
    { "client", 0, 0, G_OPTION_ARG_FILENAME, &opt_client, "vnc-bench-client", "PATH" },
    { "seconds", 0, 0, G_OPTION_ARG_INT, &opt_seconds, "seconds per phase (4)", "N" },
    { "display", 0, 0, G_OPTION_ARG_INT, &opt_display, "VNC display (77: port 5977)", "N" },
    { "workloads", 0, 0, G_OPTION_ARG_STRING, &opt_workloads, "scroll:10,window:25", "LIST" },
    { "encodings", 0, 0, G_OPTION_ARG_STRING, &opt_encodings, "none,tight,zrle,raw", "LIST" },
    { "no-dirty-log", 0, 0, G_OPTION_ARG_NONE, &opt_no_dirty_log, "compare every tile", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) ctx = g_option_context_new("- the VNC path's added delay");
  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error) || opt_client == NULL ||
      opt_seconds < 1 || opt_seconds > 600 || opt_display < 0 || opt_display > NB_VNC_MAX_DISPLAY) {
    fprintf(stderr, "bench-vnc-delay: %s\n", error ? error->message : "needs --client PATH");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  bench_fb = nb_framebuffer_new("bench-vram", FB_SIZE, &error);
  if (bench_fb == NULL || pipe(done_pipe) != 0) {
    fprintf(stderr, "bench-vnc-delay: %s\n", error ? error->message : g_strerror(errno));
    return 1;
  }
  dirty_words = (FB_SIZE / NB_FB_PAGE_SIZE + 8 * sizeof(unsigned long) - 1) / (8 * sizeof(unsigned long));
  dirty_bits = g_new0(unsigned long, dirty_words);
  if (!opt_no_dirty_log)
    nb_framebuffer_set_dirty_log(bench_fb, bench_dirty_log, NULL);

  /* guest-vncload.c's screen, as its main() sets it up on /dev/fb0. */
  fb_fd = -1;
  tty_fd = done_pipe[1];
  width = SCREEN_W;
  height = SCREEN_H;
  line_pixels = SCREEN_W;
  frame = calloc((size_t)line_pixels * height, 4);
  background = calloc((size_t)line_pixels * height, 4);
  window_img = calloc(WIN_W * WIN_H, 4);
  if (!frame || !background || !window_img)
    return 1;
  load_font();
  fill(frame, line_pixels, 0, height - BAR_HEIGHT, width, BAR_HEIGHT, 0x202020);
  write_rows(height - BAR_HEIGHT, height);
  NbFbMode mode = { .enabled = true, .width = SCREEN_W, .height = SCREEN_H, .stride = SCREEN_W * 4,
                    .bytes_per_pixel = 4, .format = NB_FB_FORMAT_XRGB8888 };
  nb_framebuffer_set_mode(bench_fb, &mode);
  fprintf(stderr, "bench-vnc-delay: %ux%u, font %s 8x%u, %s, %d s per phase, port %d\n", width,
          height, font_source, font_h,
          opt_no_dirty_log ? "no dirty log (every tile compared)" : "dirty log of the pages written",
          opt_seconds, NB_VNC_BASE_PORT + opt_display);

  NbVncSpec spec = { .listen = (char *)"127.0.0.1", .display = (unsigned)opt_display };
  NbVncServer *server = nb_vnc_server_new(&spec, &error);
  if (server == NULL) {
    fprintf(stderr, "bench-vnc-delay: %s\n", error->message);
    return 1;
  }
  static const NbVncInput input = { no_key, no_pointer, NULL };
  nb_vnc_server_attach(server, bench_fb, &input, NULL);
  loop = g_main_loop_new(NULL, FALSE);
  GThread *writer = g_thread_new("writer", bench_thread, NULL);
  g_main_loop_run(loop);
  g_thread_join(writer);
  nb_vnc_server_detach(server);
  nb_vnc_server_free(server);
  g_main_loop_unref(loop);
  nb_framebuffer_free(bench_fb);
  free(frame);
  free(background);
  free(window_img);
  g_free(dirty_bits);
  return failed ? 1 : 0;
}
