/* The ACPI PM block as a guest drives it: the power button reaching the
 * SCI, S5 poweroff, the reset register, the PM timer, GPE0, and the same
 * under several threads at once. */
#include "hw/acpi-pm.h"
#include "kvm/io-bus.h"

#include <string.h>
#include <time.h>

typedef struct {
  GMutex lock;
  unsigned gsi;
  bool level;
  unsigned changes;
  unsigned poweroffs;
  unsigned resets;
} Machine;

static void
set_line(void *ctx, unsigned gsi, bool level)
{
  Machine *m = ctx;
  g_mutex_lock(&m->lock);
  m->gsi = gsi;
  m->level = level;
  m->changes++;
  g_mutex_unlock(&m->lock);
}

static void
poweroff(void *ctx)
{
  Machine *m = ctx;
  g_atomic_int_inc(&m->poweroffs);
}

static void
reset(void *ctx)
{
  Machine *m = ctx;
  g_atomic_int_inc(&m->resets);
}

static const NbInterruptOps irq_ops = { .set_line = set_line };

typedef struct {
  Machine m;
  NbInterrupts irqs;
  NbAcpiPm *pm;
  NbIoBus *pio;
} Fixture;

static void
fixture_set_up(Fixture *f, gconstpointer data)
{
  memset(&f->m, 0, sizeof f->m);
  g_mutex_init(&f->m.lock);
  f->irqs = (NbInterrupts){ .ops = &irq_ops, .ctx = &f->m };
  f->pm = nb_acpi_pm_new(&f->irqs, poweroff, reset, &f->m);
  f->pio = nb_io_bus_new("pio");
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_acpi_pm_register(f->pm, f->pio, &error));
  g_assert_no_error(error);
}

static void
fixture_tear_down(Fixture *f, gconstpointer data)
{
  nb_acpi_pm_free(f->pm);
  nb_io_bus_free(f->pio);
  g_mutex_clear(&f->m.lock);
}

/* Port accesses as a vCPU makes them, through the bus. */
static uint32_t
in(Fixture *f, unsigned reg, unsigned size)
{
  uint32_t v = 0;
  g_assert_true(nb_io_bus_read(f->pio, NB_ACPI_PM_BASE + reg, &v, size));
  return v;
}

static void
out(Fixture *f, unsigned reg, uint32_t v, unsigned size)
{
  g_assert_true(nb_io_bus_write(f->pio, NB_ACPI_PM_BASE + reg, &v, size));
}

static bool
sci(Fixture *f)
{
  g_mutex_lock(&f->m.lock);
  bool level = f->m.level;
  g_assert_true(f->m.changes == 0 || f->m.gsi == NB_ACPI_SCI_IRQ);
  g_mutex_unlock(&f->m.lock);
  return level;
}

static void
test_power_on_state(Fixture *f, gconstpointer data)
{
  /* ACPI mode from the start: the OS has no SMI port to ask for it. */
  g_assert_cmphex(in(f, NB_ACPI_PM1_CNT, 2), ==, NB_ACPI_PM1_CNT_SCI_EN);
  g_assert_cmphex(in(f, NB_ACPI_PM1_STS, 2) & ~NB_ACPI_PM1_TMR, ==, 0);
  g_assert_cmphex(in(f, NB_ACPI_PM1_EN, 2), ==, 0);
  g_assert_cmphex(in(f, NB_ACPI_GPE0_STS, 4), ==, 0);
  g_assert_false(sci(f));
  /* The block is exactly as long as the FADT and DSDT say. */
  g_autoptr(GError) error = NULL;
  g_assert_false(nb_io_bus_register(f->pio, NB_ACPI_PM_BASE + NB_ACPI_PM_SIZE - 1, 1,
                                    nb_acpi_pm_io_ops(), f, &error));
  g_assert_nonnull(error);
}

static void
test_power_button(Fixture *f, gconstpointer data)
{
  /* Nobody listening yet: the status is latched, no interrupt. */
  g_assert_false(nb_acpi_pm_press_power_button(f->pm));
  g_assert_true(in(f, NB_ACPI_PM1_STS, 2) & NB_ACPI_PM1_PWRBTN);
  g_assert_false(sci(f));

  /* The OS enables the button: the pending press raises the SCI. */
  out(f, NB_ACPI_PM1_EN, NB_ACPI_PM1_PWRBTN, 2);
  g_assert_cmphex(in(f, NB_ACPI_PM1_EN, 2), ==, NB_ACPI_PM1_PWRBTN);
  g_assert_true(sci(f));

  /* Writing 0 to the status leaves it; writing 1 clears it. */
  out(f, NB_ACPI_PM1_STS, 0, 2);
  g_assert_true(in(f, NB_ACPI_PM1_STS, 2) & NB_ACPI_PM1_PWRBTN);
  g_assert_true(sci(f));
  out(f, NB_ACPI_PM1_STS, NB_ACPI_PM1_PWRBTN, 2);
  g_assert_false(in(f, NB_ACPI_PM1_STS, 2) & NB_ACPI_PM1_PWRBTN);
  g_assert_false(sci(f));

  /* A press now interrupts at once. */
  g_assert_true(nb_acpi_pm_press_power_button(f->pm));
  g_assert_true(sci(f));
  /* A 32-bit access covers status and enable together. */
  g_assert_cmphex(in(f, NB_ACPI_PM1_STS, 4) & ~NB_ACPI_PM1_TMR, ==,
                  NB_ACPI_PM1_PWRBTN | NB_ACPI_PM1_PWRBTN << 16);
  out(f, NB_ACPI_PM1_STS, NB_ACPI_PM1_PWRBTN | NB_ACPI_PM1_PWRBTN << 16, 4);
  g_assert_false(sci(f));
  g_assert_cmphex(in(f, NB_ACPI_PM1_EN, 2), ==, NB_ACPI_PM1_PWRBTN);

  /* Disabling the enable bit lowers a raised SCI too. */
  nb_acpi_pm_press_power_button(f->pm);
  g_assert_true(sci(f));
  out(f, NB_ACPI_PM1_EN, 0, 2);
  g_assert_false(sci(f));
}

static void
test_sleep_button_not_enabled(Fixture *f, gconstpointer data)
{
  /* The FADT declares no sleep button: its enable bit does not stick. */
  out(f, NB_ACPI_PM1_EN, 1u << 9, 2);
  g_assert_cmphex(in(f, NB_ACPI_PM1_EN, 2), ==, 0);
}

static void
test_s5_poweroff(Fixture *f, gconstpointer data)
{
  const uint32_t s5 = NB_ACPI_SLP_TYP_S5 << NB_ACPI_PM1_CNT_SLP_TYP_SHIFT;
  /* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN. */
  out(f, NB_ACPI_PM1_CNT, s5 | NB_ACPI_PM1_CNT_SCI_EN, 2);
  g_assert_cmpuint(g_atomic_int_get(&f->m.poweroffs), ==, 0);
  g_assert_cmphex(in(f, NB_ACPI_PM1_CNT, 2), ==, s5 | NB_ACPI_PM1_CNT_SCI_EN);
  out(f, NB_ACPI_PM1_CNT, s5 | NB_ACPI_PM1_CNT_SLP_EN | NB_ACPI_PM1_CNT_SCI_EN, 2);
  g_assert_cmpuint(g_atomic_int_get(&f->m.poweroffs), ==, 1);
  /* SLP_EN always reads as 0. */
  g_assert_false(in(f, NB_ACPI_PM1_CNT, 2) & NB_ACPI_PM1_CNT_SLP_EN);

  /* The same from a byte write to the high half. */
  out(f, NB_ACPI_PM1_CNT + 1, (s5 | NB_ACPI_PM1_CNT_SLP_EN) >> 8, 1);
  g_assert_cmpuint(g_atomic_int_get(&f->m.poweroffs), ==, 2);

  /* Sleep types we do not offer do nothing. */
  for (uint32_t typ = 0; typ < 8; typ++) {
    if (typ == NB_ACPI_SLP_TYP_S5)
      continue;
    out(f, NB_ACPI_PM1_CNT, typ << NB_ACPI_PM1_CNT_SLP_TYP_SHIFT | NB_ACPI_PM1_CNT_SLP_EN, 2);
  }
  g_assert_cmpuint(g_atomic_int_get(&f->m.poweroffs), ==, 2);
  g_assert_cmpuint(g_atomic_int_get(&f->m.resets), ==, 0);
  /* SCI_EN cannot be turned off: there is no legacy mode to go back to. */
  g_assert_true(in(f, NB_ACPI_PM1_CNT, 2) & NB_ACPI_PM1_CNT_SCI_EN);
}

static void
test_reset_register(Fixture *f, gconstpointer data)
{
  out(f, NB_ACPI_RESET_REG, 0x01, 1);
  out(f, NB_ACPI_RESET_REG, 0x00, 1);
  g_assert_cmpuint(g_atomic_int_get(&f->m.resets), ==, 0);
  out(f, NB_ACPI_RESET_REG, NB_ACPI_RESET_VALUE, 1);
  g_assert_cmpuint(g_atomic_int_get(&f->m.resets), ==, 1);
  g_assert_cmpuint(g_atomic_int_get(&f->m.poweroffs), ==, 0);
}

static void
test_timer(Fixture *f, gconstpointer data)
{
  /* Counts at 3.579545 MHz: compare against the host clock around it. */
  gint64 t0 = g_get_monotonic_time();
  uint32_t a = in(f, NB_ACPI_PM_TMR, 4);
  g_usleep(20000);
  uint32_t b = in(f, NB_ACPI_PM_TMR, 4);
  gint64 t1 = g_get_monotonic_time();
  g_assert_cmpuint(a, <=, 0xffffff);
  g_assert_cmpuint(b, <=, 0xffffff);
  uint32_t ticks = (b - a) & 0xffffff;
  double expected_max = (double)(t1 - t0) * 3.579545 + 4;
  g_assert_cmpfloat(ticks, >=, 20000 * 3.579545 - 4);
  g_assert_cmpfloat(ticks, <=, expected_max);
  /* Writes to the timer are ignored. */
  out(f, NB_ACPI_PM_TMR, 0, 4);
  uint32_t c = in(f, NB_ACPI_PM_TMR, 4);
  g_assert_cmpuint((c - b) & 0xffffff, <, 0x800000);
  /* Narrow reads see the same count's bytes. */
  g_assert_cmpuint(in(f, NB_ACPI_PM_TMR + 3, 1), ==, 0);
  g_assert_cmpuint(nb_acpi_pm_timer(f->pm), <=, 0xffffff);
}

static void
test_timer_overflow_status(Fixture *f, gconstpointer data)
{
  /* Start the count just below bit 23 flipping: TMR_STS follows. */
  NbAcpiPmState s;
  nb_acpi_pm_save(f->pm, &s);
  s.timer = 0x7fffff - 3579;   /* 1 ms before */
  s.pm1_sts = 0;
  nb_acpi_pm_load(f->pm, &s);
  g_assert_false(in(f, NB_ACPI_PM1_STS, 2) & NB_ACPI_PM1_TMR);
  g_usleep(5000);
  g_assert_true(in(f, NB_ACPI_PM1_STS, 2) & NB_ACPI_PM1_TMR);
  g_assert_cmpuint(in(f, NB_ACPI_PM_TMR, 4), >=, 0x800000);
  /* It does not interrupt (nothing uses it), and clears like any status. */
  out(f, NB_ACPI_PM1_EN, NB_ACPI_PM1_TMR, 2);
  g_assert_false(sci(f));
  out(f, NB_ACPI_PM1_STS, NB_ACPI_PM1_TMR, 2);
  g_assert_false(in(f, NB_ACPI_PM1_STS, 2) & NB_ACPI_PM1_TMR);
}

static void
test_gpe(Fixture *f, gconstpointer data)
{
  nb_acpi_pm_set_gpe(f->pm, 3);
  g_assert_cmphex(in(f, NB_ACPI_GPE0_STS, 1), ==, 1u << 3);
  g_assert_false(sci(f));
  out(f, NB_ACPI_GPE0_EN, 1u << 3, 1);
  g_assert_true(sci(f));
  g_assert_cmphex(in(f, NB_ACPI_GPE0_STS, 4), ==, (1u << 3) | (1u << 3) << 16);
  out(f, NB_ACPI_GPE0_STS, 1u << 3, 1);
  g_assert_false(sci(f));
  nb_acpi_pm_set_gpe(f->pm, 12);
  g_assert_false(sci(f));
  out(f, NB_ACPI_GPE0_EN, 1u << 12, 2);
  g_assert_true(sci(f));
}

static void
test_reset_and_state(Fixture *f, gconstpointer data)
{
  out(f, NB_ACPI_PM1_EN, NB_ACPI_PM1_PWRBTN, 2);
  nb_acpi_pm_press_power_button(f->pm);
  g_assert_true(sci(f));

  NbAcpiPmState saved;
  nb_acpi_pm_save(f->pm, &saved);
  g_assert_true(saved.pm1_sts & NB_ACPI_PM1_PWRBTN);
  g_assert_cmphex(saved.pm1_en, ==, NB_ACPI_PM1_PWRBTN);

  nb_acpi_pm_reset(f->pm);
  g_assert_false(sci(f));
  g_assert_cmphex(in(f, NB_ACPI_PM1_EN, 2), ==, 0);
  g_assert_cmphex(in(f, NB_ACPI_PM1_STS, 2) & ~NB_ACPI_PM1_TMR, ==, 0);
  g_assert_cmphex(in(f, NB_ACPI_PM1_CNT, 2), ==, NB_ACPI_PM1_CNT_SCI_EN);

  /* Loading the saved state brings the pending press and its SCI back. */
  nb_acpi_pm_load(f->pm, &saved);
  g_assert_true(sci(f));
  g_assert_true(in(f, NB_ACPI_PM1_STS, 2) & NB_ACPI_PM1_PWRBTN);
  g_assert_cmpuint(in(f, NB_ACPI_PM_TMR, 4) - saved.timer, <, 3579545);
}

static void
test_reserved_bytes(Fixture *f, gconstpointer data)
{
  /* The bytes between the registers read 0 and ignore writes. */
  out(f, 0x06, 0xffff, 2);
  g_assert_cmphex(in(f, 0x06, 2), ==, 0);
  out(f, 0x11, 0xff, 1);
  g_assert_cmphex(in(f, 0x11, 1), ==, 0);
  g_assert_cmphex(in(f, NB_ACPI_PM_SIZE - 4, 4), ==, 0);
  g_assert_cmpuint(g_atomic_int_get(&f->m.resets), ==, 0);
}

typedef struct {
  Fixture *f;
  unsigned id;
} Worker;

static gpointer
hammer(gpointer data)
{
  Worker *w = data;
  for (unsigned i = 0; i < 5000; i++) {
    switch ((i + w->id) % 4) {
    case 0: nb_acpi_pm_press_power_button(w->f->pm); break;
    case 1: out(w->f, NB_ACPI_PM1_STS, NB_ACPI_PM1_PWRBTN, 2); break;
    case 2: out(w->f, NB_ACPI_PM1_EN, (i & 8) ? NB_ACPI_PM1_PWRBTN : 0, 2); break;
    case 3: (void)in(w->f, NB_ACPI_PM_TMR, 4); nb_acpi_pm_set_gpe(w->f->pm, i % 16); break;
    }
  }
  return NULL;
}

static void
test_threads(Fixture *f, gconstpointer data)
{
  /* vCPU threads and the control thread at once: whatever order they run
   * in, the SCI line ends up matching the registers. */
  out(f, NB_ACPI_GPE0_EN, 0, 2);
  Worker w[4];
  GThread *t[4];
  for (unsigned i = 0; i < 4; i++) {
    w[i] = (Worker){ .f = f, .id = i };
    t[i] = g_thread_new("hammer", hammer, &w[i]);
  }
  for (unsigned i = 0; i < 4; i++)
    g_thread_join(t[i]);
  uint32_t sts = in(f, NB_ACPI_PM1_STS, 2), en = in(f, NB_ACPI_PM1_EN, 2);
  bool want = (sts & en & NB_ACPI_PM1_PWRBTN) != 0;
  g_assert_cmpint(sci(f), ==, want);
  out(f, NB_ACPI_PM1_EN, NB_ACPI_PM1_PWRBTN, 2);
  nb_acpi_pm_press_power_button(f->pm);
  g_assert_true(sci(f));
  out(f, NB_ACPI_PM1_STS, 0xffff, 2);
  out(f, NB_ACPI_GPE0_STS, 0xffff, 2);
  g_assert_false(sci(f));
}

static void
test_direct_ops(void)
{
  /* The handlers work on a bus of anyone's, not just through register(). */
  Machine m = { 0 };
  g_mutex_init(&m.lock);
  NbInterrupts irqs = { .ops = &irq_ops, .ctx = &m };
  NbAcpiPm *pm = nb_acpi_pm_new(&irqs, NULL, NULL, &m);
  const NbIoOps *ops = nb_acpi_pm_io_ops();
  ops->write(pm, NB_ACPI_PM1_EN, NB_ACPI_PM1_PWRBTN, 2);
  g_assert_cmphex(ops->read(pm, NB_ACPI_PM1_EN, 2), ==, NB_ACPI_PM1_PWRBTN);
  g_assert_true(nb_acpi_pm_press_power_button(pm));
  g_assert_true(m.level);
  g_assert_cmpuint(m.gsi, ==, NB_ACPI_SCI_IRQ);
  /* No callbacks given: S5 and reset are ignored, not a crash. */
  ops->write(pm, NB_ACPI_PM1_CNT, NB_ACPI_SLP_TYP_S5 << NB_ACPI_PM1_CNT_SLP_TYP_SHIFT | NB_ACPI_PM1_CNT_SLP_EN, 2);
  ops->write(pm, NB_ACPI_RESET_REG, NB_ACPI_RESET_VALUE, 1);
  nb_acpi_pm_free(pm);
  g_mutex_clear(&m.lock);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add("/acpi-pm/" path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD("power-on-state", test_power_on_state);
  ADD("power-button", test_power_button);
  ADD("sleep-button-not-enabled", test_sleep_button_not_enabled);
  ADD("s5-poweroff", test_s5_poweroff);
  ADD("reset-register", test_reset_register);
  ADD("timer", test_timer);
  ADD("timer-overflow-status", test_timer_overflow_status);
  ADD("gpe", test_gpe);
  ADD("reset-and-state", test_reset_and_state);
  ADD("reserved-bytes", test_reserved_bytes);
  ADD("threads", test_threads);
#undef ADD
  g_test_add_func("/acpi-pm/direct-ops", test_direct_ops);
  return g_test_run();
}
