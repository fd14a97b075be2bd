#include "hw/serial.h"

#include <string.h>

/* IER */
#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* THR empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */

/* IIR values, lowest four bits, highest priority first. */
#define IIR_NONE    0x01
#define IIR_RLS     0x06
#define IIR_RDA     0x04
#define IIR_CTI     0x0c
#define IIR_THRE    0x02
#define IIR_MSI     0x00
#define IIR_FIFO_ON 0xc0

/* FCR */
#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04

/* LCR */
#define LCR_DLAB 0x80

/* MCR */
#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

/* LSR */
#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_PE   0x04
#define LSR_FE   0x08
#define LSR_BI   0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_RXFE 0x80 /* an error byte somewhere in the FIFO */
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

/* A received character: the byte, and in the high half the LSR error bits
 * that come with it (a break is a NUL with BI and FE). */
typedef uint16_t RxChar;
#define RX_FLAGS(c) ((uint8_t)((c) >> 8))

/* MSR: deltas in the low nibble, line states in the high one. */
#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80
#define MSR_DELTAS 0x0f

/* What the host end looks like with loopback off: a terminal that is there
 * and ready, so drivers that honour carrier and CTS do not stall. */
#define HOST_MODEM_LINES (MSR_DCD | MSR_DSR | MSR_CTS)

struct NbSerial {
  GMutex lock;
  NbInterrupts *irqs;
  unsigned gsi;
  NbSerialOutputFunc output;
  void *output_ctx;

  uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
  uint16_t divisor;
  /* THR has become empty since IIR last reported it: the one interrupt
   * that an IIR read clears. */
  bool thr_pending;
  bool line_level;

  RxChar rx[NB_SERIAL_FIFO_SIZE];
  unsigned rx_head, rx_count;

  /* Host input not yet in the FIFO. */
  RxChar *backlog;
  size_t bl_head, bl_count;
};

static const unsigned trigger_levels[4] = { 1, 4, 8, 14 };

static bool
fifo_enabled(const NbSerial *dev)
{
  return dev->fcr & FCR_ENABLE;
}

/* Without the FIFO the receiver holds one byte, as an 8250 does. */
static unsigned
rx_capacity(const NbSerial *dev)
{
  return fifo_enabled(dev) ? NB_SERIAL_FIFO_SIZE : 1;
}

/* A character's errors show in LSR when it reaches the top of the FIFO,
 * so that a driver reading LSR then RBR learns each byte's status. */
static void
rx_reveal_top(NbSerial *dev)
{
  if (dev->rx_count > 0)
    dev->lsr |= RX_FLAGS(dev->rx[dev->rx_head]);
}

static void
rx_push(NbSerial *dev, RxChar c)
{
  dev->rx[(dev->rx_head + dev->rx_count) % NB_SERIAL_FIFO_SIZE] = c;
  dev->rx_count++;
  if (dev->rx_count == 1)
    rx_reveal_top(dev);
}

static uint8_t
rx_pop(NbSerial *dev)
{
  RxChar c = dev->rx[dev->rx_head];
  dev->rx_head = (dev->rx_head + 1) % NB_SERIAL_FIFO_SIZE;
  dev->rx_count--;
  rx_reveal_top(dev);
  return (uint8_t)c;
}

static bool
rx_has_error(const NbSerial *dev)
{
  for (unsigned i = 0; i < dev->rx_count; i++)
    if (RX_FLAGS(dev->rx[(dev->rx_head + i) % NB_SERIAL_FIFO_SIZE]) != 0)
      return true;
  return false;
}

/* Host input flows in while there is room, but not during loopback, when
 * the receiver hears only the transmitter. */
static void
rx_refill(NbSerial *dev)
{
  if (dev->mcr & MCR_LOOP)
    return;
  while (dev->bl_count > 0 && dev->rx_count < rx_capacity(dev)) {
    rx_push(dev, dev->backlog[dev->bl_head]);
    dev->bl_head = (dev->bl_head + 1) % NB_SERIAL_BACKLOG_SIZE;
    dev->bl_count--;
  }
}

static void
rx_clear(NbSerial *dev)
{
  dev->rx_head = 0;
  dev->rx_count = 0;
}

/* The modem inputs as the guest sees them: in loopback they are the
 * modem outputs, wired back inside the chip. */
static uint8_t
modem_inputs(const NbSerial *dev)
{
  if (!(dev->mcr & MCR_LOOP))
    return HOST_MODEM_LINES;
  uint8_t in = 0;
  if (dev->mcr & MCR_RTS)
    in |= MSR_CTS;
  if (dev->mcr & MCR_DTR)
    in |= MSR_DSR;
  if (dev->mcr & MCR_OUT1)
    in |= MSR_RI;
  if (dev->mcr & MCR_OUT2)
    in |= MSR_DCD;
  return in;
}

static void
update_msr(NbSerial *dev)
{
  uint8_t now = modem_inputs(dev);
  uint8_t changed = (dev->msr ^ now) & 0xf0;
  uint8_t deltas = 0;
  if (changed & MSR_CTS)
    deltas |= MSR_DCTS;
  if (changed & MSR_DSR)
    deltas |= MSR_DDSR;
  if (changed & MSR_DCD)
    deltas |= MSR_DDCD;
  /* Only the trailing edge of ring indicate counts. */
  if ((changed & MSR_RI) && !(now & MSR_RI))
    deltas |= MSR_TERI;
  dev->msr = now | (dev->msr & MSR_DELTAS) | deltas;
}

/* The interrupt the IIR would report now, by priority. */
static uint8_t
pending_interrupt(const NbSerial *dev)
{
  if ((dev->ier & IER_ELSI) && (dev->lsr & LSR_ERRORS))
    return IIR_RLS;
  if ((dev->ier & IER_ERBFI) && dev->rx_count > 0) {
    if (!fifo_enabled(dev) || dev->rx_count >= trigger_levels[dev->fcr >> 6])
      return IIR_RDA;
    return IIR_CTI;
  }
  if ((dev->ier & IER_ETBEI) && dev->thr_pending)
    return IIR_THRE;
  if ((dev->ier & IER_EDSSI) && (dev->msr & MSR_DELTAS))
    return IIR_MSI;
  return IIR_NONE;
}

static void
update_irq(NbSerial *dev)
{
  bool gate = (dev->mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2;
  bool level = gate && pending_interrupt(dev) != IIR_NONE;
  if (level != dev->line_level) {
    dev->line_level = level;
    dev->irqs->ops->set_line(dev->irqs->ctx, dev->gsi, level);
  }
}

static uint8_t
read_lsr(NbSerial *dev)
{
  uint8_t value = dev->lsr | LSR_THRE | LSR_TEMT;
  if (dev->rx_count > 0)
    value |= LSR_DR;
  if (fifo_enabled(dev) && rx_has_error(dev))
    value |= LSR_RXFE;
  /* Error bits report once. */
  dev->lsr &= ~LSR_ERRORS;
  return value;
}

static uint8_t
reg_read(NbSerial *dev, unsigned reg)
{
  switch (reg) {
  case NB_UART_RBR:
    if (dev->lcr & LCR_DLAB)
      return dev->divisor & 0xff;
    if (dev->rx_count == 0)
      return 0;
    {
      uint8_t byte = rx_pop(dev);
      rx_refill(dev);
      return byte;
    }
  case NB_UART_IER:
    if (dev->lcr & LCR_DLAB)
      return dev->divisor >> 8;
    return dev->ier;
  case NB_UART_IIR: {
    uint8_t id = pending_interrupt(dev);
    if (id == IIR_THRE)
      dev->thr_pending = false;
    return id | (fifo_enabled(dev) ? IIR_FIFO_ON : 0);
  }
  case NB_UART_LCR:
    return dev->lcr;
  case NB_UART_MCR:
    return dev->mcr;
  case NB_UART_LSR:
    return read_lsr(dev);
  case NB_UART_MSR: {
    uint8_t value = dev->msr;
    dev->msr &= ~MSR_DELTAS;
    return value;
  }
  case NB_UART_SCR:
    return dev->scr;
  }
  return 0xff;
}

/* Returns true when byte was transmitted to the host. */
static bool
write_thr(NbSerial *dev, uint8_t byte)
{
  bool to_host = false;
  dev->thr_pending = false;
  if (dev->mcr & MCR_LOOP) {
    if (dev->rx_count < rx_capacity(dev))
      rx_push(dev, byte);
    else
      dev->lsr |= LSR_OE;
  } else {
    to_host = true;
  }
  /* Sent at once: THR is empty again, which is the interrupt the driver
   * waits for before it writes more. */
  dev->thr_pending = true;
  return to_host;
}

static void
write_fcr(NbSerial *dev, uint8_t value)
{
  /* Turning the FIFOs on or off empties them. */
  if ((value ^ dev->fcr) & FCR_ENABLE) {
    rx_clear(dev);
  } else if (value & FCR_CLEAR_RX) {
    rx_clear(dev);
  }
  /* The transmit FIFO is always empty: FCR_CLEAR_TX has nothing to do. */
  dev->fcr = value & (FCR_ENABLE | 0xc0);
  if (!fifo_enabled(dev))
    dev->fcr = 0;
  rx_refill(dev);
}

static bool
reg_write(NbSerial *dev, unsigned reg, uint8_t value)
{
  switch (reg) {
  case NB_UART_THR:
    if (dev->lcr & LCR_DLAB) {
      dev->divisor = (dev->divisor & 0xff00) | value;
      return false;
    }
    return write_thr(dev, value);
  case NB_UART_IER:
    if (dev->lcr & LCR_DLAB) {
      dev->divisor = (uint16_t)((dev->divisor & 0x00ff) | (value << 8));
      return false;
    }
    {
      uint8_t old = dev->ier;
      dev->ier = value & 0x0f;
      /* Enabling the THRE interrupt while THR is empty raises it, even if
       * an IIR read had cleared it: Linux's THRE test and Windows rely on
       * this. Disabling it forgets it. */
      if ((old ^ dev->ier) & IER_ETBEI)
        dev->thr_pending = (dev->ier & IER_ETBEI) != 0;
    }
    return false;
  case NB_UART_FCR:
    write_fcr(dev, value);
    return false;
  case NB_UART_LCR:
    dev->lcr = value;
    return false;
  case NB_UART_MCR:
    dev->mcr = value & 0x1f;
    update_msr(dev);
    rx_refill(dev);
    return false;
  case NB_UART_LSR:
  case NB_UART_MSR:
    /* Factory test registers on real parts; writes are ignored. */
    return false;
  case NB_UART_SCR:
    dev->scr = value;
    return false;
  }
  return false;
}

static uint64_t
serial_io_read(void *opaque, uint64_t offset, unsigned size)
{
  NbSerial *dev = opaque;
  uint64_t value = 0;
  g_mutex_lock(&dev->lock);
  /* A wide access touches consecutive byte registers, as the ISA bus
   * splits it. */
  for (unsigned i = 0; i < size && i < 8; i++) {
    uint64_t reg = offset + i;
    uint8_t byte = reg < NB_SERIAL_NR_PORTS ? reg_read(dev, (unsigned)reg) : 0xff;
    value |= (uint64_t)byte << (8 * i);
  }
  update_irq(dev);
  g_mutex_unlock(&dev->lock);
  return value;
}

static void
serial_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbSerial *dev = opaque;
  uint8_t out[8];
  size_t n_out = 0;
  g_mutex_lock(&dev->lock);
  for (unsigned i = 0; i < size && i < 8; i++) {
    uint64_t reg = offset + i;
    uint8_t byte = (uint8_t)(value >> (8 * i));
    if (reg < NB_SERIAL_NR_PORTS && reg_write(dev, (unsigned)reg, byte))
      out[n_out++] = byte;
  }
  update_irq(dev);
  NbSerialOutputFunc output = dev->output;
  void *ctx = dev->output_ctx;
  g_mutex_unlock(&dev->lock);
  /* Outside the lock: the sink may block on a slow terminal, and input
   * must still reach the device meanwhile. */
  if (n_out > 0 && output != NULL)
    output(ctx, out, n_out);
}

static const NbIoOps serial_ops = { serial_io_read, serial_io_write };

const NbIoOps *
nb_serial_io_ops(void)
{
  return &serial_ops;
}

static void
reset_locked(NbSerial *dev)
{
  dev->ier = 0;
  dev->lcr = 0;
  dev->mcr = 0;
  dev->lsr = 0;
  dev->fcr = 0;
  dev->scr = 0;
  dev->divisor = 12; /* 9600 baud; the firmware or kernel sets its own. */
  dev->msr = HOST_MODEM_LINES;
  dev->thr_pending = false;
  rx_clear(dev);
  dev->bl_head = 0;
  dev->bl_count = 0;
  update_irq(dev);
}

NbSerial *
nb_serial_new(NbInterrupts *irqs, unsigned gsi, NbSerialOutputFunc output, void *ctx)
{
  NbSerial *dev = g_new0(NbSerial, 1);
  g_mutex_init(&dev->lock);
  dev->irqs = irqs;
  dev->gsi = gsi;
  dev->output = output;
  dev->output_ctx = ctx;
  dev->backlog = g_new(RxChar, NB_SERIAL_BACKLOG_SIZE);
  g_mutex_lock(&dev->lock);
  reset_locked(dev);
  g_mutex_unlock(&dev->lock);
  return dev;
}

void
nb_serial_reset(NbSerial *dev)
{
  g_mutex_lock(&dev->lock);
  reset_locked(dev);
  g_mutex_unlock(&dev->lock);
}

bool
nb_serial_register(NbSerial *dev, NbIoBus *pio, uint16_t base, GError **error)
{
  return nb_io_bus_register(pio, base, NB_SERIAL_NR_PORTS, &serial_ops, dev, error);
}

void
nb_serial_send_break(NbSerial *dev)
{
  g_mutex_lock(&dev->lock);
  if (dev->bl_count < NB_SERIAL_BACKLOG_SIZE) {
    dev->backlog[(dev->bl_head + dev->bl_count) % NB_SERIAL_BACKLOG_SIZE] =
        (RxChar)((LSR_BI | LSR_FE) << 8);
    dev->bl_count++;
  } else {
    dev->lsr |= LSR_OE;
  }
  rx_refill(dev);
  update_irq(dev);
  g_mutex_unlock(&dev->lock);
}

size_t
nb_serial_receive(NbSerial *dev, const uint8_t *data, size_t len)
{
  g_mutex_lock(&dev->lock);
  size_t room = NB_SERIAL_BACKLOG_SIZE - dev->bl_count;
  size_t taken = MIN(len, room);
  for (size_t i = 0; i < taken; i++)
    dev->backlog[(dev->bl_head + dev->bl_count + i) % NB_SERIAL_BACKLOG_SIZE] = data[i];
  dev->bl_count += taken;
  /* Lost input is what an overrun means to the guest. */
  if (taken < len)
    dev->lsr |= LSR_OE;
  rx_refill(dev);
  update_irq(dev);
  g_mutex_unlock(&dev->lock);
  return taken;
}

size_t
nb_serial_receive_room(NbSerial *dev)
{
  g_mutex_lock(&dev->lock);
  size_t room = NB_SERIAL_BACKLOG_SIZE - dev->bl_count;
  g_mutex_unlock(&dev->lock);
  return room;
}

void
nb_serial_free(NbSerial *dev)
{
  if (dev == NULL)
    return;
  g_mutex_clear(&dev->lock);
  g_free(dev->backlog);
  g_free(dev);
}
