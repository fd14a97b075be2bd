#include "hw/rtc.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

typedef struct {
  NbIoBus *pio;
  NbInterrupts irqs;
  NbRtc *rtc;
  /* Written by the clock thread. */
  gint level;
  gint raises;
  gint bad_gsi;
} Fixture;

static void
set_line(void *ctx, unsigned gsi, bool level)
{
  Fixture *f = ctx;
  if (gsi != NB_RTC_IRQ)
    g_atomic_int_set(&f->bad_gsi, 1);
  if (level && !g_atomic_int_get(&f->level))
    g_atomic_int_inc(&f->raises);
  g_atomic_int_set(&f->level, level);
}

static const NbInterruptOps irq_ops = { .set_line = set_line };

static void
fixture_init(Fixture *f, gconstpointer unused)
{
  memset(f, 0, sizeof *f);
  f->irqs = (NbInterrupts){ &irq_ops, f };
  f->pio = nb_io_bus_new("pio");
  f->rtc = nb_rtc_new(&f->irqs);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_rtc_register(f->rtc, f->pio, &error));
  g_assert_no_error(error);
}

static void
fixture_clear(Fixture *f, gconstpointer unused)
{
  nb_io_bus_free(f->pio);
  nb_rtc_free(f->rtc);
  g_assert_false(g_atomic_int_get(&f->bad_gsi));
}

static uint8_t
rd(Fixture *f, uint8_t index)
{
  uint8_t v = 0;
  g_assert_true(nb_io_bus_write(f->pio, 0x70, &index, 1));
  g_assert_true(nb_io_bus_read(f->pio, 0x71, &v, 1));
  return v;
}

static void
wr(Fixture *f, uint8_t index, uint8_t value)
{
  g_assert_true(nb_io_bus_write(f->pio, 0x70, &index, 1));
  g_assert_true(nb_io_bus_write(f->pio, 0x71, &value, 1));
}

static int
bcd(uint8_t v)
{
  g_assert_cmpuint(v & 0x0f, <=, 9);
  g_assert_cmpuint(v >> 4, <=, 9);
  return (v >> 4) * 10 + (v & 0x0f);
}

static int
bin(uint8_t v)
{
  return v;
}

/* Reads the clock the way Linux's mc146818_get_time does: wait for UIP to
 * clear, read, and retry if an update came in between. */
static int64_t
read_clock(Fixture *f, int (*dec)(uint8_t), bool h12)
{
  for (;;) {
    while (rd(f, NB_RTC_REG_A) & NB_RTC_A_UIP)
      g_usleep(50);
    uint8_t sec = rd(f, NB_RTC_SECONDS);
    struct tm tm = {
      .tm_sec = dec(sec),
      .tm_min = dec(rd(f, NB_RTC_MINUTES)),
      .tm_mday = dec(rd(f, NB_RTC_DAY_OF_MONTH)),
      .tm_mon = dec(rd(f, NB_RTC_MONTH)) - 1,
      .tm_year = dec(rd(f, NB_RTC_CENTURY)) * 100 + dec(rd(f, NB_RTC_YEAR)) - 1900,
    };
    uint8_t hour = rd(f, NB_RTC_HOURS);
    if (h12) {
      int h = dec(hour & 0x7f);
      g_assert_cmpint(h, >=, 1);
      g_assert_cmpint(h, <=, 12);
      tm.tm_hour = (h % 12) + ((hour & 0x80) ? 12 : 0);
    } else {
      tm.tm_hour = dec(hour);
      g_assert_cmpint(tm.tm_hour, <, 24);
    }
    int wday = dec(rd(f, NB_RTC_DAY_OF_WEEK));
    if (rd(f, NB_RTC_SECONDS) != sec)
      continue;
    int64_t t = (int64_t)timegm(&tm);
    struct tm check;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &check);
    g_assert_cmpint(wday, ==, check.tm_wday + 1);
    return t;
  }
}

static void
test_time_bcd(Fixture *f, gconstpointer unused)
{
  g_assert_cmphex(rd(f, NB_RTC_REG_B), ==, NB_RTC_B_24H);
  int64_t t = read_clock(f, bcd, false);
  int64_t host = (int64_t)time(NULL);
  g_assert_cmpint(t, >=, host - 2);
  g_assert_cmpint(t, <=, host + 2);
  g_assert_cmphex(rd(f, NB_RTC_CENTURY), ==, 0x20);
}

static void
test_time_binary(Fixture *f, gconstpointer unused)
{
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_DM);
  int64_t t = read_clock(f, bin, false);
  int64_t host = (int64_t)time(NULL);
  g_assert_cmpint(t, >=, host - 2);
  g_assert_cmpint(t, <=, host + 2);
  g_assert_cmphex(rd(f, NB_RTC_CENTURY), ==, 20);
}

static void
test_time_12h(Fixture *f, gconstpointer unused)
{
  wr(f, NB_RTC_REG_B, 0);
  int64_t t = read_clock(f, bcd, true);
  int64_t host = (int64_t)time(NULL);
  g_assert_cmpint(t, >=, host - 2);
  g_assert_cmpint(t, <=, host + 2);
  wr(f, NB_RTC_REG_B, NB_RTC_B_DM);
  t = read_clock(f, bin, true);
  g_assert_cmpint(t, >=, host - 2);
  g_assert_cmpint(t, <=, host + 3);
}

static void
check_set_time(Fixture *f, int64_t want)
{
  int64_t t = read_clock(f, bcd, false);
  g_assert_cmpint(t, >=, want);
  g_assert_cmpint(t, <=, want + 2);
  int64_t offset = nb_rtc_guest_offset(f->rtc);
  int64_t host = (int64_t)time(NULL);
  g_assert_cmpint(offset, >=, want - host - 2);
  g_assert_cmpint(offset, <=, want - host + 2);
}

static void
test_set_time(Fixture *f, gconstpointer unused)
{
  /* 2030-01-02 03:04:05 UTC, written with SET held. */
  struct tm tm = { .tm_year = 130, .tm_mon = 0, .tm_mday = 2, .tm_hour = 3,
                   .tm_min = 4, .tm_sec = 5 };
  int64_t want = (int64_t)timegm(&tm);
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_SET);
  wr(f, NB_RTC_SECONDS, 0x05);
  wr(f, NB_RTC_MINUTES, 0x04);
  wr(f, NB_RTC_HOURS, 0x03);
  wr(f, NB_RTC_DAY_OF_MONTH, 0x02);
  wr(f, NB_RTC_MONTH, 0x01);
  wr(f, NB_RTC_YEAR, 0x30);
  wr(f, NB_RTC_CENTURY, 0x20);
  /* Held: reads give what was written, and no update is in progress. */
  g_usleep(G_USEC_PER_SEC / 10);
  g_assert_cmphex(rd(f, NB_RTC_SECONDS), ==, 0x05);
  g_assert_false(rd(f, NB_RTC_REG_A) & NB_RTC_A_UIP);
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H);
  check_set_time(f, want);

  /* Linux's mc146818_set_time also holds the divider in reset. */
  tm = (struct tm){ .tm_year = 99, .tm_mon = 11, .tm_mday = 31, .tm_hour = 23,
                    .tm_min = 59, .tm_sec = 30 };
  want = (int64_t)timegm(&tm);
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_SET);
  wr(f, NB_RTC_REG_A, 0x26 | 0x70);
  wr(f, NB_RTC_SECONDS, 0x30);
  wr(f, NB_RTC_MINUTES, 0x59);
  wr(f, NB_RTC_HOURS, 0x23);
  wr(f, NB_RTC_DAY_OF_MONTH, 0x31);
  wr(f, NB_RTC_MONTH, 0x12);
  wr(f, NB_RTC_YEAR, 0x99);
  wr(f, NB_RTC_CENTURY, 0x19);
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H);
  /* Still held by the divider. */
  g_assert_cmphex(rd(f, NB_RTC_SECONDS), ==, 0x30);
  wr(f, NB_RTC_REG_A, 0x26);
  check_set_time(f, want);

  /* Writing one field of a running clock moves just that field. */
  wr(f, NB_RTC_YEAR, 0x05);
  g_assert_cmphex(rd(f, NB_RTC_YEAR), ==, 0x05);
  g_assert_cmphex(rd(f, NB_RTC_MONTH), ==, 0x12);

  /* Time survives a machine reset. */
  nb_rtc_reset(f->rtc);
  g_assert_cmphex(rd(f, NB_RTC_YEAR), ==, 0x05);
}

/* A clock the test sets, read by the device's thread too. */
static _Atomic int64_t fake_now_ns;

static int64_t
fake_clock(void *ctx)
{
  return atomic_load(&fake_now_ns);
}

static void
set_fake_now(int64_t ns)
{
  atomic_store(&fake_now_ns, ns);
}

static void
test_uip(Fixture *f, gconstpointer unused)
{
  /* 2026-03-04 05:06:07 UTC and some. */
  const int64_t second = 1772600767;
  const int64_t ns = 1000000000;
  set_fake_now(second * ns + 500000000);
  nb_rtc_set_clock(f->rtc, fake_clock, NULL);
  g_assert_cmphex(rd(f, NB_RTC_SECONDS), ==, 0x07);
  g_assert_cmphex(rd(f, NB_RTC_REG_A), ==, 0x26);
  /* 300 us before the update: not yet. */
  set_fake_now((second + 1) * ns - 300000);
  g_assert_false(rd(f, NB_RTC_REG_A) & NB_RTC_A_UIP);
  /* Within the last 244 us: update in progress, registers still valid. */
  set_fake_now((second + 1) * ns - 200000);
  g_assert_true(rd(f, NB_RTC_REG_A) & NB_RTC_A_UIP);
  g_assert_cmphex(rd(f, NB_RTC_SECONDS), ==, 0x07);
  set_fake_now((second + 1) * ns - 1);
  g_assert_true(rd(f, NB_RTC_REG_A) & NB_RTC_A_UIP);
  /* Updated. */
  set_fake_now((second + 1) * ns);
  g_assert_false(rd(f, NB_RTC_REG_A) & NB_RTC_A_UIP);
  g_assert_cmphex(rd(f, NB_RTC_SECONDS), ==, 0x08);
  g_assert_cmphex(rd(f, NB_RTC_MINUTES), ==, 0x06);
  g_assert_cmphex(rd(f, NB_RTC_HOURS), ==, 0x05);
  g_assert_cmphex(rd(f, NB_RTC_DAY_OF_MONTH), ==, 0x04);
  g_assert_cmphex(rd(f, NB_RTC_MONTH), ==, 0x03);
  g_assert_cmphex(rd(f, NB_RTC_YEAR), ==, 0x26);
  g_assert_cmphex(rd(f, NB_RTC_DAY_OF_WEEK), ==, 0x04); /* a Wednesday */
  /* No update while the clock is held. */
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_SET);
  set_fake_now((second + 2) * ns - 100000);
  g_assert_false(rd(f, NB_RTC_REG_A) & NB_RTC_A_UIP);
  nb_rtc_set_clock(f->rtc, NULL, NULL);
}

/* The flags a polling guest sees, at exact instants. */
static void
test_flags_by_the_clock(Fixture *f, gconstpointer unused)
{
  const int64_t second = 1772600767; /* 05:06:07 */
  const int64_t ns = 1000000000;
  wr(f, NB_RTC_REG_A, 0x20); /* no periodic rate */
  set_fake_now(second * ns + 100);
  nb_rtc_set_clock(f->rtc, fake_clock, NULL);
  rd(f, NB_RTC_REG_C);
  wr(f, NB_RTC_SECONDS_ALARM, 0x09);
  wr(f, NB_RTC_MINUTES_ALARM, 0x06);
  wr(f, NB_RTC_HOURS_ALARM, 0xc0);
  set_fake_now((second + 1) * ns - 1);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, 0);
  /* 05:06:08: an update, no alarm yet. */
  set_fake_now((second + 1) * ns);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, NB_RTC_C_UF);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, 0);
  /* 05:06:09: the alarm matches, any hour. */
  set_fake_now((second + 2) * ns + 5);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, NB_RTC_C_UF | NB_RTC_C_AF);
  /* Alarms are checked against each second as it passes, with the alarm
   * registers of that moment, even when the guest looks only later. */
  wr(f, NB_RTC_HOURS_ALARM, 0x05);
  set_fake_now((second + 3600) * ns);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, NB_RTC_C_UF);
  set_fake_now((second + 7200) * ns);
  wr(f, NB_RTC_HOURS_ALARM, 0x06); /* 06:06:09 is already past */
  set_fake_now((second + 7201) * ns);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, NB_RTC_C_UF);
  wr(f, NB_RTC_HOURS_ALARM, 0x07);
  set_fake_now((second + 7230) * ns);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, NB_RTC_C_UF | NB_RTC_C_AF);
  /* Periodic at 2 Hz: a flag per half second. */
  wr(f, NB_RTC_REG_A, 0x2f);
  rd(f, NB_RTC_REG_C);
  set_fake_now((second + 7230) * ns + 400000000);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, 0);
  set_fake_now((second + 7230) * ns + 600000000);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, NB_RTC_C_PF);
  /* With PIE the line follows. */
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_PIE);
  set_fake_now((second + 7231) * ns + 100000000);
  g_assert_cmphex(rd(f, NB_RTC_REG_C), ==, NB_RTC_C_IRQF | NB_RTC_C_PF | NB_RTC_C_UF);
  nb_rtc_set_clock(f->rtc, NULL, NULL);
}

static void
test_status_registers(Fixture *f, gconstpointer unused)
{
  g_assert_cmphex(rd(f, NB_RTC_REG_D), ==, NB_RTC_D_VRT);
  wr(f, NB_RTC_REG_D, 0);
  g_assert_cmphex(rd(f, NB_RTC_REG_D), ==, NB_RTC_D_VRT);
  wr(f, NB_RTC_REG_C, 0xff);
  g_assert_cmphex(rd(f, NB_RTC_REG_C) & NB_RTC_C_IRQF, ==, 0);
  /* UIP cannot be written. */
  wr(f, NB_RTC_REG_A, 0xa6);
  g_assert_cmphex(rd(f, NB_RTC_REG_A) & 0x7f, ==, 0x26);
  /* SET clears UIE. */
  wr(f, NB_RTC_REG_B, NB_RTC_B_SET | NB_RTC_B_UIE | NB_RTC_B_24H);
  g_assert_cmphex(rd(f, NB_RTC_REG_B), ==, NB_RTC_B_SET | NB_RTC_B_24H);
}

static bool
wait_level(Fixture *f, bool level, gint64 timeout_us)
{
  gint64 deadline = g_get_monotonic_time() + timeout_us;
  while (g_get_monotonic_time() < deadline) {
    if (g_atomic_int_get(&f->level) == level)
      return true;
    g_usleep(500);
  }
  return g_atomic_int_get(&f->level) == level;
}

static void
test_update_interrupt(Fixture *f, gconstpointer unused)
{
  rd(f, NB_RTC_REG_C);
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_UIE);
  g_assert_true(wait_level(f, true, 5000000));
  uint8_t c = rd(f, NB_RTC_REG_C);
  g_assert_cmphex(c & (NB_RTC_C_IRQF | NB_RTC_C_UF), ==, NB_RTC_C_IRQF | NB_RTC_C_UF);
  /* Reading C lowered the line, and it comes back on the next update. */
  g_assert_false(g_atomic_int_get(&f->level));
  int raises = g_atomic_int_get(&f->raises);
  g_assert_true(wait_level(f, true, 5000000));
  g_assert_cmpint(g_atomic_int_get(&f->raises), ==, raises + 1);
  rd(f, NB_RTC_REG_C);

  /* Without UIE, the flag is still there for a polling guest, but no
   * interrupt. */
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H);
  /* An alarm of all "don't care" matches every second. */
  wr(f, NB_RTC_SECONDS_ALARM, 0xc0);
  wr(f, NB_RTC_MINUTES_ALARM, 0xc0);
  wr(f, NB_RTC_HOURS_ALARM, 0xc0);
  rd(f, NB_RTC_REG_C);
  g_usleep(1100000);
  g_assert_false(g_atomic_int_get(&f->level));
  c = rd(f, NB_RTC_REG_C);
  /* The periodic flag too: the default rate runs whether or not PIE. */
  g_assert_cmphex(c, ==, NB_RTC_C_UF | NB_RTC_C_AF | NB_RTC_C_PF);
}

static void
test_alarm_interrupt(Fixture *f, gconstpointer unused)
{
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_DM);
  int64_t now = read_clock(f, bin, false);
  uint8_t when = (uint8_t)((now + 2) % 60);
  wr(f, NB_RTC_SECONDS_ALARM, when);
  wr(f, NB_RTC_MINUTES_ALARM, 0xc0);
  wr(f, NB_RTC_HOURS_ALARM, 0xff);
  rd(f, NB_RTC_REG_C);
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_DM | NB_RTC_B_AIE);
  g_assert_true(wait_level(f, true, 8000000));
  /* Not before its second (a slow test may look a little after). */
  unsigned late = (rd(f, NB_RTC_SECONDS) + 60u - when) % 60u;
  g_assert_cmpuint(late, <=, 5);
  uint8_t c = rd(f, NB_RTC_REG_C);
  g_assert_cmphex(c & (NB_RTC_C_IRQF | NB_RTC_C_AF), ==, NB_RTC_C_IRQF | NB_RTC_C_AF);
  g_assert_false(g_atomic_int_get(&f->level));
}

static void
test_periodic_interrupt(Fixture *f, gconstpointer unused)
{
  /* 64 Hz. */
  wr(f, NB_RTC_REG_A, 0x2a);
  rd(f, NB_RTC_REG_C);
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_PIE);
  int count = 0;
  gint64 start = g_get_monotonic_time();
  while (g_get_monotonic_time() - start < 500000) {
    if (g_atomic_int_get(&f->level)) {
      uint8_t c = rd(f, NB_RTC_REG_C);
      g_assert_true(c & NB_RTC_C_PF);
      g_assert_true(c & NB_RTC_C_IRQF);
      count++;
    }
    g_usleep(1000);
  }
  /* 32 ticks in half a second; a loaded machine merges some, never adds. */
  g_assert_cmpint(count, >=, 3);
  g_assert_cmpint(count, <=, 34);
  /* Rate 0 stops it. */
  wr(f, NB_RTC_REG_A, 0x20);
  rd(f, NB_RTC_REG_C);
  g_usleep(50000);
  g_assert_false(rd(f, NB_RTC_REG_C) & NB_RTC_C_PF);
}

static void
test_cmos_ram(Fixture *f, gconstpointer unused)
{
  g_assert_true(nb_rtc_set_cmos(f->rtc, 0x34, 0x12));
  g_assert_true(nb_rtc_set_cmos(f->rtc, 0x35, 0x34));
  g_assert_true(nb_rtc_set_cmos(f->rtc, 0x5d, 0x01));
  g_assert_false(nb_rtc_set_cmos(f->rtc, NB_RTC_SECONDS, 1));
  g_assert_false(nb_rtc_set_cmos(f->rtc, NB_RTC_REG_B, 1));
  g_assert_false(nb_rtc_set_cmos(f->rtc, NB_RTC_CENTURY, 1));
  g_assert_false(nb_rtc_set_cmos(f->rtc, 128, 1));
  g_assert_cmphex(rd(f, 0x34), ==, 0x12);
  g_assert_cmphex(rd(f, 0x35), ==, 0x34);
  g_assert_cmphex(rd(f, 0x5d), ==, 0x01);
  /* Bit 7 of the index is the NMI mask, not part of the index. */
  uint8_t idx = 0x80 | 0x34, v = 0;
  nb_io_bus_write(f->pio, 0x70, &idx, 1);
  nb_io_bus_read(f->pio, 0x71, &v, 1);
  g_assert_cmphex(v, ==, 0x12);
  wr(f, 0x7f, 0x99);
  g_assert_cmphex(nb_rtc_get_cmos(f->rtc, 0x7f), ==, 0x99);
  /* A 16-bit write sets index and data at once. */
  uint16_t pair = 0x5510;
  g_assert_true(nb_io_bus_write(f->pio, 0x70, &pair, 2));
  g_assert_cmphex(nb_rtc_get_cmos(f->rtc, 0x10), ==, 0x55);
  /* CMOS RAM survives a reset. */
  nb_rtc_reset(f->rtc);
  g_assert_cmphex(rd(f, 0x34), ==, 0x12);
}

static void
test_reset_clears_interrupts(Fixture *f, gconstpointer unused)
{
  wr(f, NB_RTC_REG_A, 0x23); /* 8 kHz */
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_PIE | NB_RTC_B_UIE);
  g_assert_true(wait_level(f, true, 3000000));
  nb_rtc_reset(f->rtc);
  g_assert_false(g_atomic_int_get(&f->level));
  g_assert_cmphex(rd(f, NB_RTC_REG_B), ==, NB_RTC_B_24H);
  g_usleep(20000);
  g_assert_false(g_atomic_int_get(&f->level));
}

static void
test_garbage_never_crashes(Fixture *f, gconstpointer unused)
{
  GRand *rand = g_rand_new_with_seed(3);
  for (int i = 0; i < 5000; i++) {
    uint8_t index = (uint8_t)g_rand_int_range(rand, 0, 0x40);
    if (g_rand_boolean(rand))
      wr(f, index, (uint8_t)g_rand_int(rand));
    else
      rd(f, index);
  }
  g_rand_free(rand);
  /* Whatever the guest did, the clock can be set back and read. */
  wr(f, NB_RTC_REG_A, 0x26);
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H | NB_RTC_B_SET);
  int64_t now = (int64_t)time(NULL);
  time_t tt = (time_t)now;
  struct tm tm;
  gmtime_r(&tt, &tm);
#define TO_BCD(v) (uint8_t)((((v) / 10) << 4) | ((v) % 10))
  wr(f, NB_RTC_SECONDS, TO_BCD(tm.tm_sec));
  wr(f, NB_RTC_MINUTES, TO_BCD(tm.tm_min));
  wr(f, NB_RTC_HOURS, TO_BCD(tm.tm_hour));
  wr(f, NB_RTC_DAY_OF_MONTH, TO_BCD(tm.tm_mday));
  wr(f, NB_RTC_MONTH, TO_BCD(tm.tm_mon + 1));
  wr(f, NB_RTC_YEAR, TO_BCD(tm.tm_year % 100));
  wr(f, NB_RTC_CENTURY, TO_BCD((tm.tm_year + 1900) / 100));
#undef TO_BCD
  wr(f, NB_RTC_REG_B, NB_RTC_B_24H);
  int64_t t = read_clock(f, bcd, false);
  g_assert_cmpint(t, >=, now);
  g_assert_cmpint(t, <=, now + 2);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_init, fn, fixture_clear)
  ADD("/rtc/time-bcd", test_time_bcd);
  ADD("/rtc/time-binary", test_time_binary);
  ADD("/rtc/time-12h", test_time_12h);
  ADD("/rtc/set-time", test_set_time);
  ADD("/rtc/uip", test_uip);
  ADD("/rtc/flags-by-the-clock", test_flags_by_the_clock);
  ADD("/rtc/status-registers", test_status_registers);
  ADD("/rtc/update-interrupt", test_update_interrupt);
  ADD("/rtc/alarm-interrupt", test_alarm_interrupt);
  ADD("/rtc/periodic-interrupt", test_periodic_interrupt);
  ADD("/rtc/cmos-ram", test_cmos_ram);
  ADD("/rtc/reset-clears-interrupts", test_reset_clears_interrupts);
  ADD("/rtc/garbage-never-crashes", test_garbage_never_crashes);
#undef ADD
  return g_test_run();
}
