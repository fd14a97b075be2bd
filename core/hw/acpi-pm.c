#include "hw/acpi-pm.h"

#include <time.h>

/* Register indices for 16-bit registers: offset / 2 below the reset
 * register. Pairs not listed (0x06, the timer) take no writes. */
enum { REG_PM1_STS, REG_PM1_EN, REG_PM1_CNT, REG_PAD, REG_TMR_LO, REG_TMR_HI,
       REG_GPE0_STS, REG_GPE0_EN, N_REGS };

/* Enable bits the guest may set; no sleep button (the FADT says so). */
#define PM1_EN_WRITABLE (NB_ACPI_PM1_TMR | NB_ACPI_PM1_GBL | NB_ACPI_PM1_PWRBTN | NB_ACPI_PM1_RTC)
/* Events that raise the SCI. The timer's overflow is reported in TMR_STS
 * but not signalled: that would need a host timer firing every 4.7 s for a
 * feature no current OS uses. */
#define PM1_SCI_EVENTS  (NB_ACPI_PM1_GBL | NB_ACPI_PM1_PWRBTN | NB_ACPI_PM1_RTC)

#define NS_PER_SEC      UINT64_C(1000000000)
#define TIMER_MASK      0xffffffu

struct NbAcpiPm {
  GMutex lock;
  NbInterrupts *irqs;
  unsigned sci_gsi;
  NbAcpiPmCallback poweroff;
  NbAcpiPmCallback reset;
  void *ctx;

  uint16_t pm1_sts;        /* without TMR_STS, which is worked out on read */
  uint16_t pm1_en;
  uint16_t pm1_cnt;        /* SLP_EN is never stored: it reads as 0 */
  uint16_t gpe0_sts;
  uint16_t gpe0_en;
  uint64_t timer_origin;   /* CLOCK_MONOTONIC ns at which the count was 0 */
  uint64_t tmr_seen;       /* count >> 23 when TMR_STS was last cleared */
  bool sci_level;

  NbIoBus *pio;
};

typedef enum { ACTION_NONE, ACTION_POWEROFF, ACTION_RESET } Action;

static uint64_t
now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Whole ticks in ns nanoseconds, without overflowing for any uptime. */
static uint64_t
ns_to_ticks(uint64_t ns)
{
  return ns / NS_PER_SEC * NB_ACPI_PM_TIMER_HZ + ns % NS_PER_SEC * NB_ACPI_PM_TIMER_HZ / NS_PER_SEC;
}

static uint64_t
ticks_to_ns(uint64_t ticks)
{
  return ticks / NB_ACPI_PM_TIMER_HZ * NS_PER_SEC +
         ticks % NB_ACPI_PM_TIMER_HZ * NS_PER_SEC / NB_ACPI_PM_TIMER_HZ;
}

/* The free-running count, wider than the 24 bits the guest sees. */
static uint64_t
timer_ticks(const NbAcpiPm *pm)
{
  uint64_t now = now_ns();
  return now > pm->timer_origin ? ns_to_ticks(now - pm->timer_origin) : 0;
}

/* TMR_STS is set each time bit 23 of the count flips. */
static uint16_t
pm1_status(const NbAcpiPm *pm, uint64_t ticks)
{
  return (uint16_t)(pm->pm1_sts | ((ticks >> 23) != pm->tmr_seen ? NB_ACPI_PM1_TMR : 0));
}

/* Called with the lock held, so that the line's level always follows the
 * last state change, whichever thread made it. */
static void
update_sci(NbAcpiPm *pm)
{
  bool level = (pm->pm1_cnt & NB_ACPI_PM1_CNT_SCI_EN) &&
               ((pm->pm1_sts & pm->pm1_en & PM1_SCI_EVENTS) || (pm->gpe0_sts & pm->gpe0_en));
  if (level == pm->sci_level)
    return;
  pm->sci_level = level;
  if (pm->irqs && pm->irqs->ops->set_line)
    pm->irqs->ops->set_line(pm->irqs->ctx, pm->sci_gsi, level);
}

static void
reset_locked(NbAcpiPm *pm)
{
  pm->pm1_sts = 0;
  pm->pm1_en = 0;
  /* No SMI command port: the machine comes up in ACPI mode. */
  pm->pm1_cnt = NB_ACPI_PM1_CNT_SCI_EN;
  pm->gpe0_sts = 0;
  pm->gpe0_en = 0;
  pm->tmr_seen = timer_ticks(pm) >> 23;
  update_sci(pm);
}

NbAcpiPm *
nb_acpi_pm_new(NbInterrupts *irqs, NbAcpiPmCallback poweroff, NbAcpiPmCallback reset,
               void *ctx)
{
  NbAcpiPm *pm = g_new0(NbAcpiPm, 1);
  g_mutex_init(&pm->lock);
  pm->irqs = irqs;
  /* The ISA IRQ and the IOAPIC input are the same number: the MADT's
   * override maps IRQ 9 to GSI 9. */
  pm->sci_gsi = NB_ACPI_SCI_IRQ;
  pm->poweroff = poweroff;
  pm->reset = reset;
  pm->ctx = ctx;
  pm->timer_origin = now_ns();
  /* Make sure the line starts low whatever it was before. */
  pm->sci_level = true;
  reset_locked(pm);
  return pm;
}

void
nb_acpi_pm_free(NbAcpiPm *pm)
{
  if (pm == NULL)
    return;
  if (pm->pio)
    nb_acpi_pm_unregister(pm, pm->pio);
  g_mutex_clear(&pm->lock);
  g_free(pm);
}

void
nb_acpi_pm_reset(NbAcpiPm *pm)
{
  g_mutex_lock(&pm->lock);
  reset_locked(pm);
  g_mutex_unlock(&pm->lock);
}

static uint8_t
read_byte(const NbAcpiPm *pm, uint64_t off, uint64_t ticks)
{
  unsigned shift = (off & 1) * 8;
  switch (off & ~UINT64_C(1)) {
  case NB_ACPI_PM1_STS:    return (uint8_t)(pm1_status(pm, ticks) >> shift);
  case NB_ACPI_PM1_EN:     return (uint8_t)(pm->pm1_en >> shift);
  case NB_ACPI_PM1_CNT:    return (uint8_t)(pm->pm1_cnt >> shift);
  case NB_ACPI_PM_TMR:
  case NB_ACPI_PM_TMR + 2: return (uint8_t)((ticks & TIMER_MASK) >> ((off - NB_ACPI_PM_TMR) * 8));
  case NB_ACPI_GPE0_STS:   return (uint8_t)(pm->gpe0_sts >> shift);
  case NB_ACPI_GPE0_EN:    return (uint8_t)(pm->gpe0_en >> shift);
  default:                 return 0;   /* the reset register and reserved bytes */
  }
}

static uint64_t
pm_read(void *opaque, uint64_t offset, unsigned size)
{
  NbAcpiPm *pm = opaque;
  uint64_t value = 0;
  g_mutex_lock(&pm->lock);
  /* One snapshot of the timer, so a 32-bit read is consistent. */
  uint64_t ticks = timer_ticks(pm);
  for (unsigned i = 0; i < size && i < 8; i++)
    if (offset + i < NB_ACPI_PM_SIZE)
      value |= (uint64_t)read_byte(pm, offset + i, ticks) << (8 * i);
  g_mutex_unlock(&pm->lock);
  return value;
}

/* Applies one access to a 16-bit register: value and mask hold the lanes
 * the access covered. */
static Action
write_reg(NbAcpiPm *pm, unsigned reg, uint16_t value, uint16_t mask)
{
  uint16_t v = value & mask;
  switch (reg) {
  case REG_PM1_STS:
    pm->pm1_sts &= (uint16_t)~v;
    if (v & NB_ACPI_PM1_TMR)
      pm->tmr_seen = timer_ticks(pm) >> 23;
    return ACTION_NONE;
  case REG_PM1_EN:
    pm->pm1_en = (uint16_t)((pm->pm1_en & ~mask) | (v & PM1_EN_WRITABLE));
    return ACTION_NONE;
  case REG_PM1_CNT: {
    uint16_t cnt = (uint16_t)((pm->pm1_cnt & ~mask) | v);
    pm->pm1_cnt = (uint16_t)((cnt & ~NB_ACPI_PM1_CNT_SLP_EN) | NB_ACPI_PM1_CNT_SCI_EN);
    if (!(v & NB_ACPI_PM1_CNT_SLP_EN))
      return ACTION_NONE;
    unsigned typ = (cnt & NB_ACPI_PM1_CNT_SLP_TYP_MASK) >> NB_ACPI_PM1_CNT_SLP_TYP_SHIFT;
    /* Only S5 is offered (\_S5 in the DSDT); S0 "sleep" means stay awake. */
    return typ == NB_ACPI_SLP_TYP_S5 ? ACTION_POWEROFF : ACTION_NONE;
  }
  case REG_GPE0_STS:
    pm->gpe0_sts &= (uint16_t)~v;
    return ACTION_NONE;
  case REG_GPE0_EN:
    pm->gpe0_en = (uint16_t)((pm->gpe0_en & ~mask) | v);
    return ACTION_NONE;
  default:
    return ACTION_NONE;    /* the timer and reserved bytes are read-only */
  }
}

static void
pm_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbAcpiPm *pm = opaque;
  uint16_t vals[N_REGS] = { 0 }, masks[N_REGS] = { 0 };
  Action action = ACTION_NONE;

  /* Gather the bytes per register first: a 32-bit write to PM1_STS also
   * writes PM1_EN, and each register must see its bytes as one write. */
  for (unsigned i = 0; i < size && i < 8; i++) {
    uint64_t off = offset + i;
    uint8_t byte = (uint8_t)(value >> (8 * i));
    if (off == NB_ACPI_RESET_REG) {
      if (byte == NB_ACPI_RESET_VALUE)
        action = ACTION_RESET;
    } else if (off < 2 * N_REGS) {
      vals[off / 2] |= (uint16_t)(byte << ((off & 1) * 8));
      masks[off / 2] |= (uint16_t)(0xff << ((off & 1) * 8));
    }
  }

  g_mutex_lock(&pm->lock);
  for (unsigned r = 0; r < N_REGS; r++) {
    if (masks[r] == 0)
      continue;
    Action a = write_reg(pm, r, vals[r], masks[r]);
    if (a != ACTION_NONE)
      action = a;
  }
  update_sci(pm);
  g_mutex_unlock(&pm->lock);

  /* Outside the lock: the machine may stop vCPUs or reset this device. */
  if (action == ACTION_POWEROFF && pm->poweroff)
    pm->poweroff(pm->ctx);
  else if (action == ACTION_RESET && pm->reset)
    pm->reset(pm->ctx);
}

static const NbIoOps pm_io_ops = {
  .read = pm_read,
  .write = pm_write,
};

const NbIoOps *
nb_acpi_pm_io_ops(void)
{
  return &pm_io_ops;
}

bool
nb_acpi_pm_register(NbAcpiPm *pm, NbIoBus *pio, GError **error)
{
  g_return_val_if_fail(pm->pio == NULL, false);
  if (!nb_io_bus_register(pio, NB_ACPI_PM_BASE, NB_ACPI_PM_SIZE, &pm_io_ops, pm, error))
    return false;
  pm->pio = pio;
  return true;
}

void
nb_acpi_pm_unregister(NbAcpiPm *pm, NbIoBus *pio)
{
  if (pm->pio != pio)
    return;
  nb_io_bus_unregister(pio, NB_ACPI_PM_BASE, pm);
  pm->pio = NULL;
}

bool
nb_acpi_pm_press_power_button(NbAcpiPm *pm)
{
  g_mutex_lock(&pm->lock);
  pm->pm1_sts |= NB_ACPI_PM1_PWRBTN;
  update_sci(pm);
  bool listening = (pm->pm1_en & NB_ACPI_PM1_PWRBTN) && (pm->pm1_cnt & NB_ACPI_PM1_CNT_SCI_EN);
  g_mutex_unlock(&pm->lock);
  return listening;
}

void
nb_acpi_pm_set_gpe(NbAcpiPm *pm, unsigned bit)
{
  g_return_if_fail(bit < 16);
  g_mutex_lock(&pm->lock);
  pm->gpe0_sts |= (uint16_t)(1u << bit);
  update_sci(pm);
  g_mutex_unlock(&pm->lock);
}

uint32_t
nb_acpi_pm_timer(NbAcpiPm *pm)
{
  g_mutex_lock(&pm->lock);
  uint32_t t = (uint32_t)(timer_ticks(pm) & TIMER_MASK);
  g_mutex_unlock(&pm->lock);
  return t;
}

void
nb_acpi_pm_save(NbAcpiPm *pm, NbAcpiPmState *state)
{
  g_mutex_lock(&pm->lock);
  uint64_t ticks = timer_ticks(pm);
  *state = (NbAcpiPmState){
    .pm1_sts = pm1_status(pm, ticks),
    .pm1_en = pm->pm1_en,
    .pm1_cnt = pm->pm1_cnt,
    .gpe0_sts = pm->gpe0_sts,
    .gpe0_en = pm->gpe0_en,
    .timer = (uint32_t)(ticks & TIMER_MASK),
  };
  g_mutex_unlock(&pm->lock);
}

void
nb_acpi_pm_load(NbAcpiPm *pm, const NbAcpiPmState *state)
{
  g_mutex_lock(&pm->lock);
  /* Restart the count from the saved value; everything else as saved,
   * with the bits that cannot be stored masked as a guest write would. */
  uint64_t timer = state->timer & TIMER_MASK;
  uint64_t now = now_ns(), back = ticks_to_ns(timer);
  pm->timer_origin = now - MIN(back, now);
  uint64_t ticks = timer_ticks(pm);
  pm->tmr_seen = (ticks >> 23) ^ ((state->pm1_sts & NB_ACPI_PM1_TMR) ? 1 : 0);
  pm->pm1_sts = state->pm1_sts & (uint16_t)~NB_ACPI_PM1_TMR;
  pm->pm1_en = state->pm1_en & PM1_EN_WRITABLE;
  pm->pm1_cnt = (uint16_t)((state->pm1_cnt & ~NB_ACPI_PM1_CNT_SLP_EN) | NB_ACPI_PM1_CNT_SCI_EN);
  pm->gpe0_sts = state->gpe0_sts;
  pm->gpe0_en = state->gpe0_en;
  update_sci(pm);
  g_mutex_unlock(&pm->lock);
}
