#include "hw/serial.h"

#include <string.h>

#define COM1 0x3f8

typedef struct {
  NbIoBus *pio;
  NbInterrupts irqs;
  NbSerial *uart;
  bool level;
  unsigned gsi;
  unsigned raises;
  GByteArray *out;
} Fixture;

static void
set_line(void *ctx, unsigned gsi, bool level)
{
  Fixture *f = ctx;
  f->gsi = gsi;
  if (level && !f->level)
    f->raises++;
  f->level = level;
}

static const NbInterruptOps irq_ops = { .set_line = set_line };

static void
on_output(void *ctx, const uint8_t *data, size_t len)
{
  Fixture *f = ctx;
  g_byte_array_append(f->out, data, (guint)len);
}

static void
fixture_init(Fixture *f, gconstpointer unused)
{
  memset(f, 0, sizeof *f);
  f->irqs = (NbInterrupts){ &irq_ops, f };
  f->out = g_byte_array_new();
  f->pio = nb_io_bus_new("pio");
  f->uart = nb_serial_new(&f->irqs, 4, on_output, f);
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_serial_register(f->uart, f->pio, COM1, &error));
  g_assert_no_error(error);
}

static void
fixture_clear(Fixture *f, gconstpointer unused)
{
  nb_io_bus_free(f->pio);
  nb_serial_free(f->uart);
  g_byte_array_unref(f->out);
}

static uint8_t
in8(Fixture *f, unsigned reg)
{
  uint8_t v = 0;
  g_assert_true(nb_io_bus_read(f->pio, COM1 + reg, &v, 1));
  return v;
}

static void
out8(Fixture *f, unsigned reg, uint8_t v)
{
  g_assert_true(nb_io_bus_write(f->pio, COM1 + reg, &v, 1));
}

static void
feed(Fixture *f, const char *text)
{
  size_t len = strlen(text);
  g_assert_cmpuint(nb_serial_receive(f->uart, (const uint8_t *)text, len), ==, len);
}

static void
test_reset_state(Fixture *f, gconstpointer unused)
{
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x01);
  g_assert_cmphex(in8(f, NB_UART_LSR), ==, 0x60);
  g_assert_cmphex(in8(f, NB_UART_IER), ==, 0x00);
  g_assert_cmphex(in8(f, NB_UART_MSR) & 0xf0, ==, 0xb0);
  g_assert_false(f->level);
}

static void
test_transmit(Fixture *f, gconstpointer unused)
{
  const char *msg = "Linux version";
  for (const char *p = msg; *p; p++) {
    g_assert_true(in8(f, NB_UART_LSR) & 0x20);
    out8(f, NB_UART_THR, (uint8_t)*p);
  }
  g_assert_cmpuint(f->out->len, ==, strlen(msg));
  g_assert_cmpmem(f->out->data, f->out->len, msg, strlen(msg));
  /* Transmitter empty again at once. */
  g_assert_cmphex(in8(f, NB_UART_LSR) & 0x60, ==, 0x60);
}

static void
test_scratch_and_wide_access(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_SCR, 0xa5);
  g_assert_cmphex(in8(f, NB_UART_SCR), ==, 0xa5);
  /* A 16-bit read of LCR and MCR sees both byte registers. */
  out8(f, NB_UART_LCR, 0x03);
  out8(f, NB_UART_MCR, 0x0b);
  uint16_t v = 0;
  g_assert_true(nb_io_bus_read(f->pio, COM1 + NB_UART_LCR, &v, 2));
  g_assert_cmphex(v, ==, 0x0b03);
}

static void
test_divisor_latch(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_IER, 0x05);
  out8(f, NB_UART_LCR, 0x83);
  out8(f, NB_UART_DLL, 0x01);
  out8(f, NB_UART_DLM, 0x02);
  g_assert_cmphex(in8(f, NB_UART_DLL), ==, 0x01);
  g_assert_cmphex(in8(f, NB_UART_DLM), ==, 0x02);
  /* Writing the divisor neither transmitted a byte nor touched IER. */
  g_assert_cmpuint(f->out->len, ==, 0);
  out8(f, NB_UART_LCR, 0x03);
  g_assert_cmphex(in8(f, NB_UART_IER), ==, 0x05);
  g_assert_cmphex(in8(f, NB_UART_LCR), ==, 0x03);
  /* The latch keeps its value across DLAB toggles. */
  out8(f, NB_UART_LCR, 0x80);
  g_assert_cmphex(in8(f, NB_UART_DLL), ==, 0x01);
  g_assert_cmphex(in8(f, NB_UART_DLM), ==, 0x02);
}

/* What Linux's 8250 autoconfig does to tell a 16550A from other parts. */
static void
test_linux_probe(Fixture *f, gconstpointer unused)
{
  /* IER test: only the four low bits stick. */
  out8(f, NB_UART_IER, 0);
  g_assert_cmphex(in8(f, NB_UART_IER) & 0x0f, ==, 0);
  out8(f, NB_UART_IER, 0xff);
  g_assert_cmphex(in8(f, NB_UART_IER), ==, 0x0f);
  out8(f, NB_UART_IER, 0);
  /* Loopback test: RTS|OUT2 come back as CTS|DCD. */
  out8(f, NB_UART_MCR, 0x10 | 0x0a);
  g_assert_cmphex(in8(f, NB_UART_MSR) & 0xf0, ==, 0x90);
  out8(f, NB_UART_MCR, 0);
  /* FIFO: IIR's top bits report it on. */
  out8(f, NB_UART_FCR, 0x01);
  g_assert_cmphex(in8(f, NB_UART_IIR) >> 6, ==, 3);
  /* No EFR behind LCR=0xbf, and no 64-byte FIFO (bit 5 stays clear). */
  out8(f, NB_UART_LCR, 0xbf);
  g_assert_cmphex(in8(f, NB_UART_IIR), !=, 0);
  out8(f, NB_UART_LCR, 0);
  out8(f, NB_UART_FCR, 0x21);
  g_assert_cmphex(in8(f, NB_UART_IIR) & 0xe0, ==, 0xc0);
}

static void
test_loopback(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_FCR, 0x07);
  out8(f, NB_UART_MCR, 0x10 | 0x0b);
  out8(f, NB_UART_THR, 'x');
  out8(f, NB_UART_THR, 'y');
  /* Nothing left the chip. */
  g_assert_cmpuint(f->out->len, ==, 0);
  g_assert_true(in8(f, NB_UART_LSR) & 0x01);
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 'x');
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 'y');
  g_assert_false(in8(f, NB_UART_LSR) & 0x01);

  /* Host input waits while loopback is on, then arrives. */
  feed(f, "h");
  g_assert_false(in8(f, NB_UART_LSR) & 0x01);
  /* MSR reports the change of the loopback lines as deltas. */
  out8(f, NB_UART_MCR, 0x10);
  g_assert_cmphex(in8(f, NB_UART_MSR), ==, 0x0b);
  out8(f, NB_UART_MCR, 0x0b);
  g_assert_true(in8(f, NB_UART_LSR) & 0x01);
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 'h');

  /* A full FIFO in loopback overruns; the error shows once. */
  out8(f, NB_UART_MCR, 0x10);
  for (unsigned i = 0; i < NB_SERIAL_FIFO_SIZE + 1; i++)
    out8(f, NB_UART_THR, (uint8_t)i);
  g_assert_true(in8(f, NB_UART_LSR) & 0x02);
  g_assert_false(in8(f, NB_UART_LSR) & 0x02);
  for (unsigned i = 0; i < NB_SERIAL_FIFO_SIZE; i++)
    g_assert_cmphex(in8(f, NB_UART_RBR), ==, i);
  g_assert_false(in8(f, NB_UART_LSR) & 0x01);
}

static void
test_rx_fifo_and_trigger(Fixture *f, gconstpointer unused)
{
  /* FIFO on, trigger at 8 bytes, RX interrupt on, OUT2 on. */
  out8(f, NB_UART_FCR, 0x81);
  out8(f, NB_UART_MCR, 0x0b);
  out8(f, NB_UART_IER, 0x01);
  g_assert_false(f->level);

  feed(f, "abc");
  /* Below the trigger: character timeout. */
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xcc);
  g_assert_true(f->level);
  g_assert_cmpuint(f->gsi, ==, 4);
  feed(f, "defgh");
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc4);
  char got[9] = { 0 };
  for (int i = 0; i < 8; i++)
    got[i] = (char)in8(f, NB_UART_RBR);
  g_assert_cmpstr(got, ==, "abcdefgh");
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc1);
  g_assert_false(f->level);

  /* Clearing the RX FIFO discards what it holds. */
  feed(f, "zz");
  out8(f, NB_UART_FCR, 0x83);
  g_assert_false(in8(f, NB_UART_LSR) & 0x01);
  g_assert_false(f->level);
}

static void
test_rx_without_fifo(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_MCR, 0x08);
  out8(f, NB_UART_IER, 0x01);
  feed(f, "ok");
  /* One holding register: RDA, no FIFO bits. */
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x04);
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 'o');
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x04);
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 'k');
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x01);
}

static void
test_rx_backlog(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_FCR, 0xc7);
  gsize n = 5000;
  g_autofree uint8_t *paste = g_malloc(n);
  for (gsize i = 0; i < n; i++)
    paste[i] = (uint8_t)(i * 7 + 3);
  g_assert_cmpuint(nb_serial_receive(f->uart, paste, n), ==, n);
  for (gsize i = 0; i < n; i++) {
    g_assert_true(in8(f, NB_UART_LSR) & 0x01);
    g_assert_cmphex(in8(f, NB_UART_RBR), ==, paste[i]);
  }
  g_assert_false(in8(f, NB_UART_LSR) & 0x01);
  /* No overrun: the backlog held it all. */
  g_assert_false(in8(f, NB_UART_LSR) & 0x02);

  /* The backlog is bounded; what does not fit is refused and counted as
   * an overrun. */
  g_autofree uint8_t *flood = g_malloc0(NB_SERIAL_BACKLOG_SIZE + 100);
  size_t taken = nb_serial_receive(f->uart, flood, NB_SERIAL_BACKLOG_SIZE + 100);
  g_assert_cmpuint(taken, ==, NB_SERIAL_BACKLOG_SIZE);
  g_assert_true(in8(f, NB_UART_LSR) & 0x02);
  /* Once the guest has drained the FIFO, the backlog has room again. */
  for (int i = 0; i < NB_SERIAL_FIFO_SIZE; i++)
    in8(f, NB_UART_RBR);
  g_assert_cmpuint(nb_serial_receive(f->uart, (const uint8_t *)"abc", 3), ==, 3);
}

static void
test_break(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_FCR, 0x01);
  out8(f, NB_UART_MCR, 0x08);
  out8(f, NB_UART_IER, 0x05);
  feed(f, "ab");
  nb_serial_send_break(f->uart);
  feed(f, "c");
  /* The break is in the FIFO but not on top: only the FIFO error bit. */
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc4);
  g_assert_cmphex(in8(f, NB_UART_LSR), ==, 0x80 | 0x60 | 0x01);
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 'a');
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 'b');
  /* On top: line status interrupt, BI and FE with its NUL. */
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc6);
  g_assert_true(f->level);
  g_assert_cmphex(in8(f, NB_UART_LSR), ==, 0x80 | 0x60 | 0x10 | 0x08 | 0x01);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc4);
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 0x00);
  g_assert_cmphex(in8(f, NB_UART_LSR), ==, 0x60 | 0x01);
  g_assert_cmphex(in8(f, NB_UART_RBR), ==, 'c');
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc1);
}

static void
test_thre_interrupt(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_MCR, 0x08);
  /* Enabling ETBEI with THR empty raises THRE at once. */
  out8(f, NB_UART_IER, 0x02);
  g_assert_true(f->level);
  /* The IIR read that reports it clears it. */
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x02);
  g_assert_false(f->level);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x01);

  /* Linux's UART_BUG_THRE test: re-enabling raises it again. */
  out8(f, NB_UART_IER, 0x00);
  out8(f, NB_UART_IER, 0x02);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x02);
  out8(f, NB_UART_IER, 0x00);

  /* A THR write clears it; the byte leaves at once and THRE comes back,
   * as a new edge. */
  out8(f, NB_UART_IER, 0x02);
  unsigned raises = f->raises;
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x02);
  out8(f, NB_UART_THR, 'a');
  g_assert_true(f->level);
  g_assert_cmpuint(f->raises, ==, raises + 1);
  g_assert_cmpuint(f->out->len, ==, 1);

  /* Disabling ETBEI forgets it. */
  out8(f, NB_UART_IER, 0x00);
  g_assert_false(f->level);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x01);
}

static void
test_iir_priority(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_FCR, 0x01);
  out8(f, NB_UART_MCR, 0x08);
  /* Modem status pending: a loopback excursion changed the lines. */
  out8(f, NB_UART_MCR, 0x10 | 0x08);
  out8(f, NB_UART_MCR, 0x08);
  out8(f, NB_UART_IER, 0x08);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc0);
  g_assert_true(f->level);
  /* THRE outranks modem status. */
  out8(f, NB_UART_IER, 0x0a);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc2);
  /* That read cleared THRE; modem status shows again. */
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc0);
  out8(f, NB_UART_IER, 0x08);
  out8(f, NB_UART_IER, 0x0b);
  /* Received data outranks THRE. */
  feed(f, "q");
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc4);
  /* Line status outranks everything: overrun the backlog. */
  out8(f, NB_UART_IER, 0x0f);
  g_autofree uint8_t *flood = g_malloc0(NB_SERIAL_BACKLOG_SIZE + 1);
  nb_serial_receive(f->uart, flood, NB_SERIAL_BACKLOG_SIZE + 1);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc6);
  /* Reading LSR clears it, and the next one takes its place. */
  g_assert_true(in8(f, NB_UART_LSR) & 0x02);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc4);
  /* Reading MSR clears the modem status interrupt. */
  out8(f, NB_UART_FCR, 0x03); /* empties the FIFO, refilled from the backlog */
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc4);
  g_assert_cmphex(in8(f, NB_UART_MSR) & 0x0f, !=, 0);
  out8(f, NB_UART_IER, 0x08);
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0xc1);
  g_assert_false(f->level);
}

static void
test_out2_gates_irq(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_IER, 0x01);
  feed(f, "x");
  /* Pending, but OUT2 is off: the PC's IRQ buffer is closed. */
  g_assert_cmphex(in8(f, NB_UART_IIR), ==, 0x04);
  g_assert_false(f->level);
  out8(f, NB_UART_MCR, 0x08);
  g_assert_true(f->level);
  /* Loopback forces OUT2 inactive at the pin. */
  out8(f, NB_UART_MCR, 0x18);
  g_assert_false(f->level);
  out8(f, NB_UART_MCR, 0x08);
  g_assert_true(f->level);
  in8(f, NB_UART_RBR);
  g_assert_false(f->level);
}

static void
test_reset(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_MCR, 0x08);
  out8(f, NB_UART_IER, 0x03);
  feed(f, "pending");
  g_assert_true(f->level);
  nb_serial_reset(f->uart);
  g_assert_false(f->level);
  g_assert_cmphex(in8(f, NB_UART_IER), ==, 0);
  g_assert_cmphex(in8(f, NB_UART_LSR), ==, 0x60);
}

typedef struct {
  NbSerial *uart;
  gsize total;
} Feeder;

static gpointer
feeder_main(gpointer data)
{
  Feeder *fd = data;
  uint8_t chunk[97];
  gsize sent = 0;
  while (sent < fd->total) {
    /* Read once: MIN() evaluates its arguments twice, and the room grows
     * while the reader drains, which overran chunk under load. */
    gsize room = nb_serial_receive_room(fd->uart);
    gsize n = MIN(MIN(sizeof chunk, fd->total - sent), room);
    if (n == 0) {
      g_usleep(100);
      continue;
    }
    for (gsize i = 0; i < n; i++)
      chunk[i] = (uint8_t)((sent + i) % 251);
    g_assert_cmpuint(nb_serial_receive(fd->uart, chunk, n), ==, n);
    sent += n;
  }
  return NULL;
}

/* An input thread feeding while a vCPU reads: every byte arrives, in
 * order. */
static void
test_threaded_input(Fixture *f, gconstpointer unused)
{
  out8(f, NB_UART_FCR, 0xc1);
  Feeder fd = { f->uart, 200000 };
  GThread *thread = g_thread_new("feeder", feeder_main, &fd);
  gsize got = 0;
  while (got < fd.total) {
    uint8_t lsr = in8(f, NB_UART_LSR);
    g_assert_false(lsr & 0x02);
    if (!(lsr & 0x01))
      continue;
    g_assert_cmpuint(in8(f, NB_UART_RBR), ==, got % 251);
    got++;
  }
  g_thread_join(thread);
  g_assert_false(in8(f, NB_UART_LSR) & 0x01);
}

static void
test_garbage_never_crashes(Fixture *f, gconstpointer unused)
{
  GRand *rand = g_rand_new_with_seed(42);
  for (int i = 0; i < 20000; i++) {
    unsigned reg = g_rand_int_range(rand, 0, 8);
    if (g_rand_boolean(rand))
      out8(f, reg, (uint8_t)g_rand_int(rand));
    else
      in8(f, reg);
    if (i % 97 == 0)
      feed(f, "input");
  }
  g_rand_free(rand);
  /* Outside the 8 ports the bus refuses the access. */
  uint8_t v = 0;
  g_assert_false(nb_io_bus_read(f->pio, COM1 + 8, &v, 1));
  uint32_t w = 0;
  g_assert_false(nb_io_bus_read(f->pio, COM1 + 6, &w, 4));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_init, fn, fixture_clear)
  ADD("/serial/reset-state", test_reset_state);
  ADD("/serial/transmit", test_transmit);
  ADD("/serial/scratch-and-wide-access", test_scratch_and_wide_access);
  ADD("/serial/divisor-latch", test_divisor_latch);
  ADD("/serial/linux-probe", test_linux_probe);
  ADD("/serial/loopback", test_loopback);
  ADD("/serial/rx-fifo-and-trigger", test_rx_fifo_and_trigger);
  ADD("/serial/rx-without-fifo", test_rx_without_fifo);
  ADD("/serial/rx-backlog", test_rx_backlog);
  ADD("/serial/break", test_break);
  ADD("/serial/thre-interrupt", test_thre_interrupt);
  ADD("/serial/iir-priority", test_iir_priority);
  ADD("/serial/out2-gates-irq", test_out2_gates_irq);
  ADD("/serial/reset", test_reset);
  ADD("/serial/threaded-input", test_threaded_input);
  ADD("/serial/garbage-never-crashes", test_garbage_never_crashes);
#undef ADD
  return g_test_run();
}
