#include "hw/rtc.h"

#include <string.h>
#include <time.h>

#define NS_PER_SEC 1000000000LL
/* How long before each update UIP reads as set (MC146818: 244 us). */
#define UIP_NS 244000LL

/* Register A's divider field: 110 and 111 hold the divider chain in reset,
 * which stops the clock as SET does. */
#define A_DV_MASK  0x70
#define A_DV_RESET 0x60
#define A_RS_MASK  0x0f

#define B_IRQ_ENABLES (NB_RTC_B_PIE | NB_RTC_B_AIE | NB_RTC_B_UIE)

struct NbRtc {
  GMutex lock;
  GCond wake;
  GThread *thread;
  bool quit;
  NbInterrupts *irqs;
  bool line;

  uint8_t index;
  bool nmi_masked; /* kept for the guest; we never raise NMIs */
  /* The CMOS RAM. The time registers hold values only while the clock is
   * held; otherwise they are computed from the host's clock when read. */
  uint8_t cmos[NB_RTC_CMOS_SIZE];
  /* Guest time minus host time, in seconds. */
  int64_t offset;
  bool holding;
  /* Host time up to which update, alarm and periodic events are counted. */
  int64_t checked_ns;
  NbRtcClockFunc clock;
  void *clock_ctx;
};

static const uint8_t time_registers[] = {
  NB_RTC_SECONDS, NB_RTC_MINUTES, NB_RTC_HOURS, NB_RTC_DAY_OF_WEEK,
  NB_RTC_DAY_OF_MONTH, NB_RTC_MONTH, NB_RTC_YEAR, NB_RTC_CENTURY,
};

static bool
is_time_register(unsigned index)
{
  for (gsize i = 0; i < G_N_ELEMENTS(time_registers); i++)
    if (time_registers[i] == index)
      return true;
  return false;
}

static int64_t
realtime_ns(void *unused)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t
host_now_ns(const NbRtc *dev)
{
  return dev->clock(dev->clock_ctx);
}

static int64_t
floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Formats ----------------------------------------------------------------- */

static uint8_t
encode(const NbRtc *dev, unsigned v)
{
  if (dev->cmos[NB_RTC_REG_B] & NB_RTC_B_DM)
    return (uint8_t)v;
  return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

/* Garbage BCD from a guest decodes to some number; timegm() then brings
 * it into range. */
static int
decode(const NbRtc *dev, uint8_t r)
{
  if (dev->cmos[NB_RTC_REG_B] & NB_RTC_B_DM)
    return r;
  return (r >> 4) * 10 + (r & 0x0f);
}

static uint8_t
encode_hour(const NbRtc *dev, unsigned hour)
{
  if (dev->cmos[NB_RTC_REG_B] & NB_RTC_B_24H)
    return encode(dev, hour);
  unsigned h12 = hour % 12 == 0 ? 12 : hour % 12;
  return encode(dev, h12) | (hour >= 12 ? 0x80 : 0);
}

static int
decode_hour(const NbRtc *dev, uint8_t r)
{
  if (dev->cmos[NB_RTC_REG_B] & NB_RTC_B_24H)
    return decode(dev, r);
  int h = decode(dev, r & 0x7f) % 12;
  return (r & 0x80) ? h + 12 : h;
}

/* One time register's value at guest time t (seconds since the epoch). */
static uint8_t
time_register(const NbRtc *dev, int64_t t, unsigned index)
{
  time_t tt = (time_t)t;
  struct tm tm;
  if (gmtime_r(&tt, &tm) == NULL) {
    /* A guest-set year beyond what the C library can show. */
    memset(&tm, 0, sizeof tm);
    tm.tm_mday = 1;
    tm.tm_year = 70;
  }
  int year = tm.tm_year + 1900;
  switch (index) {
  case NB_RTC_SECONDS: return encode(dev, (unsigned)tm.tm_sec);
  case NB_RTC_MINUTES: return encode(dev, (unsigned)tm.tm_min);
  case NB_RTC_HOURS: return encode_hour(dev, (unsigned)tm.tm_hour);
  case NB_RTC_DAY_OF_WEEK: return encode(dev, (unsigned)tm.tm_wday + 1);
  case NB_RTC_DAY_OF_MONTH: return encode(dev, (unsigned)tm.tm_mday);
  case NB_RTC_MONTH: return encode(dev, (unsigned)tm.tm_mon + 1);
  case NB_RTC_YEAR: return encode(dev, (unsigned)(((year % 100) + 100) % 100));
  case NB_RTC_CENTURY: return encode(dev, (unsigned)CLAMP(year / 100, 0, 99));
  }
  return 0;
}

/* The guest time that the held time registers say. */
static int64_t
held_time(const NbRtc *dev)
{
  const uint8_t *c = dev->cmos;
  struct tm tm = {
    .tm_sec = decode(dev, c[NB_RTC_SECONDS]),
    .tm_min = decode(dev, c[NB_RTC_MINUTES]),
    .tm_hour = decode_hour(dev, c[NB_RTC_HOURS]),
    .tm_mday = decode(dev, c[NB_RTC_DAY_OF_MONTH]),
    .tm_mon = decode(dev, c[NB_RTC_MONTH]) - 1,
    .tm_year = decode(dev, c[NB_RTC_CENTURY]) * 100 + decode(dev, c[NB_RTC_YEAR]) - 1900,
  };
  return (int64_t)timegm(&tm);
}

static int64_t
guest_seconds(const NbRtc *dev, int64_t host_ns)
{
  return floor_div(host_ns, NS_PER_SEC) + dev->offset;
}

/* Events ------------------------------------------------------------------- */

static bool
alarm_matches(const NbRtc *dev, int64_t t)
{
  static const uint8_t pairs[3][2] = {
    { NB_RTC_SECONDS_ALARM, NB_RTC_SECONDS },
    { NB_RTC_MINUTES_ALARM, NB_RTC_MINUTES },
    { NB_RTC_HOURS_ALARM, NB_RTC_HOURS },
  };
  for (int i = 0; i < 3; i++) {
    uint8_t alarm = dev->cmos[pairs[i][0]];
    /* 11xxxxxx is "don't care". */
    if ((alarm & 0xc0) == 0xc0)
      continue;
    if (alarm != time_register(dev, t, pairs[i][1]))
      return false;
  }
  return true;
}

/* 32.768 kHz ticks of the time base, the periodic interrupt's clock. */
static int64_t
base_ticks(int64_t ns)
{
  int64_t s = floor_div(ns, NS_PER_SEC);
  int64_t frac = ns - s * NS_PER_SEC;
  return s * 32768 + frac * 32768 / NS_PER_SEC;
}

/* Rates 1 and 2 are 256 and 128 Hz, the same as 8 and 9. */
static unsigned
periodic_shift(const NbRtc *dev)
{
  unsigned rs = dev->cmos[NB_RTC_REG_A] & A_RS_MASK;
  if (rs == 0)
    return 0;
  if (rs < 3)
    rs += 7;
  return rs - 1;
}

/* Sets the flags for every update, alarm and periodic tick between the
 * last look and now. */
static void
catch_up(NbRtc *dev, int64_t now)
{
  /* Nothing happens while held; and if the host's clock stepped back,
   * counting restarts from the new time rather than waiting for the old. */
  if (dev->holding || now <= dev->checked_ns) {
    dev->checked_ns = now;
    return;
  }
  int64_t from = floor_div(dev->checked_ns, NS_PER_SEC);
  int64_t to = floor_div(now, NS_PER_SEC);
  if (to > from) {
    dev->cmos[NB_RTC_REG_C] |= NB_RTC_C_UF;
    /* An alarm matches at most once a second; a day covers every alarm
     * pattern, so a longer gap (a stopped process) need not be walked. */
    for (int64_t s = MAX(from + 1, to - 86400); s <= to; s++) {
      if (alarm_matches(dev, s + dev->offset)) {
        dev->cmos[NB_RTC_REG_C] |= NB_RTC_C_AF;
        break;
      }
    }
  }
  unsigned shift = periodic_shift(dev);
  if (shift != 0 && (base_ticks(now) >> shift) != (base_ticks(dev->checked_ns) >> shift))
    dev->cmos[NB_RTC_REG_C] |= NB_RTC_C_PF;
  dev->checked_ns = now;
}

static void
update_irq(NbRtc *dev)
{
  uint8_t c = dev->cmos[NB_RTC_REG_C] & 0x70;
  bool irqf = (c & dev->cmos[NB_RTC_REG_B] & B_IRQ_ENABLES) != 0;
  dev->cmos[NB_RTC_REG_C] = c | (irqf ? NB_RTC_C_IRQF : 0);
  if (irqf != dev->line) {
    dev->line = irqf;
    dev->irqs->ops->set_line(dev->irqs->ctx, NB_RTC_IRQ, irqf);
  }
}

/* Holding the clock -------------------------------------------------------- */

static bool
should_hold(const NbRtc *dev)
{
  return (dev->cmos[NB_RTC_REG_B] & NB_RTC_B_SET) ||
         (dev->cmos[NB_RTC_REG_A] & A_DV_MASK) >= A_DV_RESET;
}

/* Freezes the time registers at the current time, for the guest to read
 * and write. */
static void
hold(NbRtc *dev, int64_t now)
{
  catch_up(dev, now);
  int64_t t = guest_seconds(dev, now);
  for (gsize i = 0; i < G_N_ELEMENTS(time_registers); i++)
    dev->cmos[time_registers[i]] = time_register(dev, t, time_registers[i]);
  dev->holding = true;
}

/* Lets the clock run from what the held registers say; the guest's new
 * time becomes an offset from the host's. */
static void
release(NbRtc *dev, int64_t now)
{
  dev->offset = held_time(dev) - floor_div(now, NS_PER_SEC);
  dev->holding = false;
  dev->checked_ns = now;
}

static void
apply_hold(NbRtc *dev, int64_t now)
{
  bool want = should_hold(dev);
  if (want && !dev->holding)
    hold(dev, now);
  else if (!want && dev->holding)
    release(dev, now);
}

/* Registers ---------------------------------------------------------------- */

static uint8_t
reg_read(NbRtc *dev, unsigned index, bool side_effects)
{
  int64_t now = host_now_ns(dev);
  switch (index) {
  case NB_RTC_REG_A: {
    uint8_t a = dev->cmos[NB_RTC_REG_A] & 0x7f;
    int64_t frac = now - floor_div(now, NS_PER_SEC) * NS_PER_SEC;
    if (!dev->holding && frac >= NS_PER_SEC - UIP_NS)
      a |= NB_RTC_A_UIP;
    return a;
  }
  case NB_RTC_REG_C: {
    catch_up(dev, now);
    update_irq(dev);
    uint8_t c = dev->cmos[NB_RTC_REG_C];
    if (side_effects) {
      dev->cmos[NB_RTC_REG_C] = 0;
      update_irq(dev);
      g_cond_signal(&dev->wake);
    }
    return c;
  }
  case NB_RTC_REG_D:
    return NB_RTC_D_VRT;
  }
  if (is_time_register(index) && !dev->holding)
    return time_register(dev, guest_seconds(dev, now), index);
  return dev->cmos[index];
}

static void
reg_write(NbRtc *dev, unsigned index, uint8_t value)
{
  int64_t now = host_now_ns(dev);
  /* Events up to now happened under the registers as they were. */
  catch_up(dev, now);
  switch (index) {
  case NB_RTC_REG_A:
    dev->cmos[NB_RTC_REG_A] = value & 0x7f;
    apply_hold(dev, now);
    break;
  case NB_RTC_REG_B:
    /* Setting SET clears UIE: no update interrupts while the guest writes
     * the time. */
    if (value & NB_RTC_B_SET)
      value &= ~NB_RTC_B_UIE;
    /* The format changes underneath held registers too, as on the chip:
     * what the guest wrote is re-read in the new format. */
    dev->cmos[NB_RTC_REG_B] = value;
    apply_hold(dev, now);
    update_irq(dev);
    break;
  case NB_RTC_REG_C:
  case NB_RTC_REG_D:
    /* Read-only. */
    break;
  default:
    if (is_time_register(index) && !dev->holding) {
      /* A write to a running clock sets that field. */
      hold(dev, now);
      dev->cmos[index] = value;
      release(dev, now);
    } else {
      dev->cmos[index] = value;
    }
    break;
  }
  g_cond_signal(&dev->wake);
}

static uint64_t
rtc_io_read(void *opaque, uint64_t offset, unsigned size)
{
  NbRtc *dev = opaque;
  uint64_t value = 0;
  g_mutex_lock(&dev->lock);
  for (unsigned i = 0; i < size && i < 8; i++) {
    /* The index port is write-only: it reads as an idle bus. */
    uint8_t byte = offset + i == 1 ? reg_read(dev, dev->index, true) : 0xff;
    value |= (uint64_t)byte << (8 * i);
  }
  g_mutex_unlock(&dev->lock);
  return value;
}

static void
rtc_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbRtc *dev = opaque;
  g_mutex_lock(&dev->lock);
  for (unsigned i = 0; i < size && i < 8; i++) {
    uint8_t byte = (uint8_t)(value >> (8 * i));
    if (offset + i == 0) {
      dev->index = byte & 0x7f;
      dev->nmi_masked = (byte & 0x80) != 0;
    } else if (offset + i == 1) {
      reg_write(dev, dev->index, byte);
    }
  }
  g_mutex_unlock(&dev->lock);
}

static const NbIoOps rtc_ops = { rtc_io_read, rtc_io_write };

const NbIoOps *
nb_rtc_io_ops(void)
{
  return &rtc_ops;
}

/* The clock thread ----------------------------------------------------------- */

/* Host time of the next event that could raise the line. */
static int64_t
next_event(const NbRtc *dev, int64_t now)
{
  /* Every second, enabled or not: flags are due for a guest that polls,
   * and it keeps catch_up's walk short. */
  int64_t next = (floor_div(now, NS_PER_SEC) + 1) * NS_PER_SEC;
  unsigned shift = periodic_shift(dev);
  if (shift != 0 && (dev->cmos[NB_RTC_REG_B] & NB_RTC_B_PIE) && !dev->line && !dev->holding) {
    int64_t tick = ((base_ticks(now) >> shift) + 1) << shift;
    int64_t s = floor_div(tick, 32768);
    int64_t tick_ns = s * NS_PER_SEC + ((tick - s * 32768) * NS_PER_SEC + 32767) / 32768;
    next = MIN(next, tick_ns);
  }
  return next;
}

static gpointer
clock_thread(gpointer data)
{
  NbRtc *dev = data;
  g_mutex_lock(&dev->lock);
  while (!dev->quit) {
    int64_t now = host_now_ns(dev);
    catch_up(dev, now);
    update_irq(dev);
    int64_t wait_ns = next_event(dev, now) - now;
    gint64 until = g_get_monotonic_time() + wait_ns / 1000 + 1;
    g_cond_wait_until(&dev->wake, &dev->lock, until);
  }
  g_mutex_unlock(&dev->lock);
  return NULL;
}

/* Public ------------------------------------------------------------------------ */

NbRtc *
nb_rtc_new(NbInterrupts *irqs)
{
  NbRtc *dev = g_new0(NbRtc, 1);
  g_mutex_init(&dev->lock);
  g_cond_init(&dev->wake);
  dev->irqs = irqs;
  dev->clock = realtime_ns;
  /* 32.768 kHz time base, 1024 Hz periodic rate; 24-hour BCD. */
  dev->cmos[NB_RTC_REG_A] = 0x26;
  dev->cmos[NB_RTC_REG_B] = NB_RTC_B_24H;
  dev->checked_ns = host_now_ns(dev);
  dev->thread = g_thread_new("rtc", clock_thread, dev);
  return dev;
}

void
nb_rtc_reset(NbRtc *dev)
{
  g_mutex_lock(&dev->lock);
  /* The chip's reset pin clears the interrupt enables and flags only. */
  dev->cmos[NB_RTC_REG_B] &= ~(B_IRQ_ENABLES | NB_RTC_B_SQWE);
  dev->cmos[NB_RTC_REG_C] = 0;
  dev->checked_ns = host_now_ns(dev);
  update_irq(dev);
  g_cond_signal(&dev->wake);
  g_mutex_unlock(&dev->lock);
}

bool
nb_rtc_register(NbRtc *dev, NbIoBus *pio, GError **error)
{
  return nb_io_bus_register(pio, NB_RTC_PORT, 2, &rtc_ops, dev, error);
}

bool
nb_rtc_set_cmos(NbRtc *dev, unsigned index, uint8_t value)
{
  if (index <= NB_RTC_REG_D || index == NB_RTC_CENTURY || index >= NB_RTC_CMOS_SIZE)
    return false;
  g_mutex_lock(&dev->lock);
  dev->cmos[index] = value;
  g_mutex_unlock(&dev->lock);
  return true;
}

uint8_t
nb_rtc_get_cmos(NbRtc *dev, unsigned index)
{
  if (index >= NB_RTC_CMOS_SIZE)
    return 0xff;
  g_mutex_lock(&dev->lock);
  uint8_t v = reg_read(dev, index, false);
  g_mutex_unlock(&dev->lock);
  return v;
}

void
nb_rtc_set_clock(NbRtc *dev, NbRtcClockFunc clock, void *ctx)
{
  g_mutex_lock(&dev->lock);
  dev->clock = clock != NULL ? clock : realtime_ns;
  dev->clock_ctx = ctx;
  dev->checked_ns = host_now_ns(dev);
  g_cond_signal(&dev->wake);
  g_mutex_unlock(&dev->lock);
}

void
nb_rtc_set_offset(NbRtc *dev, int64_t seconds)
{
  g_mutex_lock(&dev->lock);
  dev->offset = seconds;
  g_mutex_unlock(&dev->lock);
}

int64_t
nb_rtc_guest_offset(NbRtc *dev)
{
  g_mutex_lock(&dev->lock);
  int64_t offset = dev->offset;
  g_mutex_unlock(&dev->lock);
  return offset;
}

void
nb_rtc_free(NbRtc *dev)
{
  if (dev == NULL)
    return;
  g_mutex_lock(&dev->lock);
  dev->quit = true;
  g_cond_signal(&dev->wake);
  g_mutex_unlock(&dev->lock);
  g_thread_join(dev->thread);
  g_cond_clear(&dev->wake);
  g_mutex_clear(&dev->lock);
  g_free(dev);
}
