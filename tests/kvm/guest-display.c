/* Runs inside test guests (built with gcc -static at test time; busybox has
 * no evtest and cannot draw a picture fast):
 *   guest-display pattern        draws the test pattern on /dev/fb0
 *   guest-display events SECONDS prints key and absolute events from every
 *                                /dev/input/event* until F12 is released,
 *                                then the LEDs of each device that has LEDs
 * Output goes to stdout (the serial console), a line per fact. */
#include "../remote/test-pattern.h"

#include <fcntl.h>
#include <linux/fb.h>
#include <linux/input.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int
draw_pattern(void)
{
  int fd = open("/dev/fb0", O_RDWR);
  if (fd < 0) {
    perror("GUEST-DISPLAY-ERROR open /dev/fb0");
    return 1;
  }
  struct fb_var_screeninfo var;
  struct fb_fix_screeninfo fix;
  if (ioctl(fd, FBIOGET_VSCREENINFO, &var) < 0 || ioctl(fd, FBIOGET_FSCREENINFO, &fix) < 0) {
    perror("GUEST-DISPLAY-ERROR fb ioctl");
    return 1;
  }
  printf("FB %ux%u bpp=%u line=%u id=%.16s\n", var.xres, var.yres, var.bits_per_pixel,
         fix.line_length, fix.id);
  if (var.bits_per_pixel != 32) {
    printf("GUEST-DISPLAY-ERROR not 32 bpp\n");
    return 1;
  }
  /* The whole picture in one write, as a program that draws off screen and
   * then shows it would: Linux 6.1's DRM fbdev emulation turns a write of
   * exactly one whole line into an empty damage rectangle (its end column
   * wraps to 0), so line-by-line writes reach only its shadow buffer and
   * never the device's video memory. */
  size_t size = (size_t)fix.line_length * var.yres;
  uint8_t *picture = calloc(1, size);
  for (unsigned y = 0; y < var.yres; y++) {
    uint32_t *line = (uint32_t *)(picture + (size_t)y * fix.line_length);
    for (unsigned x = 0; x < var.xres; x++)
      line[x] = nb_test_pattern_rgb(x, y);
  }
  if (pwrite(fd, picture, size, 0) != (ssize_t)size) {
    perror("GUEST-DISPLAY-ERROR write");
    return 1;
  }
  fsync(fd);
  printf("PATTERN-DRAWN %ux%u\n", var.xres, var.yres);
  return 0;
}

static int
read_events(int seconds)
{
  struct pollfd fds[16];
  int n = 0;
  for (int i = 0; i < 16 && n < 16; i++) {
    char path[32], name[128] = "";
    snprintf(path, sizeof path, "/dev/input/event%d", i);
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
      continue;
    ioctl(fd, EVIOCGNAME(sizeof name), name);
    printf("INPUT-DEV %s %s\n", path, name);
    fds[n].fd = fd;
    fds[n].events = POLLIN;
    n++;
  }
  printf("EVENTS-READY %d\n", n);
  fflush(stdout);
  time_t end = time(NULL) + seconds;
  bool done = false;
  while (time(NULL) < end) {
    if (poll(fds, (nfds_t)n, done ? 0 : 1000) <= 0) {
      if (done)
        break;
      continue;
    }
    for (int i = 0; i < n; i++) {
      struct input_event ev;
      while (fds[i].revents & POLLIN && read(fds[i].fd, &ev, sizeof ev) == sizeof ev) {
        if (ev.type == EV_KEY)
          printf("KEY %u %d\n", ev.code, ev.value);
        else if (ev.type == EV_ABS)
          printf("ABS %u %d\n", ev.code, ev.value);
        fflush(stdout);
        /* F12 ends the reading, but only once every device is drained:
         * the tablet's events, sent before the keys, may sit on a device
         * read after the keyboard's. */
        if (ev.type == EV_KEY && ev.code == KEY_F12 && ev.value == 0)
          done = true;
      }
    }
  }
  /* What the guest's keyboard handler made of the lock keys: Linux's LED
   * bits (1 Num, 2 Caps, 4 Scroll Lock). */
  for (int i = 0; i < n; i++) {
    unsigned long ev_bits = 0, leds = 0;
    char name[128] = "";
    if (ioctl(fds[i].fd, EVIOCGBIT(0, sizeof ev_bits), &ev_bits) < 0 || !(ev_bits & (1ul << EV_LED)))
      continue;
    ioctl(fds[i].fd, EVIOCGNAME(sizeof name), name);
    if (ioctl(fds[i].fd, EVIOCGLED(sizeof leds), &leds) >= 0)
      printf("GUEST-LEDS %lu %s\n", leds, name);
  }
  if (done) {
    printf("EVENTS-DONE\n");
    return 0;
  }
  printf("EVENTS-TIMEOUT\n");
  return 1;
}

int
main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && strcmp(argv[1], "pattern") == 0)
    return draw_pattern();
  if (argc == 3 && strcmp(argv[1], "events") == 0)
    return read_events(atoi(argv[2]));
  fprintf(stderr, "usage: guest-display pattern | events SECONDS\n");
  return 2;
}
