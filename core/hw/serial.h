/* A 16550A UART on I/O ports (COM1: 0x3f8, IRQ 4), the serial console.
 *
 * Transmission is instantaneous: a byte written to THR reaches the output
 * function at once and THR reads as empty again, so the transmitter never
 * throttles the guest. Received bytes wait in a 16-byte FIFO and, beyond it,
 * in a bounded backlog that refills the FIFO as the guest reads, so a paste
 * from the host arrives whole instead of overrunning the FIFO.
 *
 * The character timeout interrupt is reported as soon as the FIFO holds
 * fewer bytes than its trigger level: host input comes in bursts, and
 * waiting four character times would only delay it.
 *
 * As on PCs, the interrupt reaches the IRQ line only while MCR.OUT2 is set
 * and loopback is off (loopback forces the modem outputs, OUT2 included,
 * inactive).
 *
 * All entry points are thread safe: vCPU threads access the ports while an
 * input thread calls nb_serial_receive. The output function is called
 * without the device lock held, from the vCPU thread that wrote THR. */
#pragma once

#include "hw/interrupts.h"
#include "kvm/io-bus.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NB_SERIAL_NR_PORTS 8
#define NB_SERIAL_FIFO_SIZE 16
/* Input held beyond the FIFO; more is dropped and reported as an overrun. */
#define NB_SERIAL_BACKLOG_SIZE (64 * 1024)

/* Register offsets from the base port. */
#define NB_UART_RBR 0 /* read, DLAB=0 */
#define NB_UART_THR 0 /* write, DLAB=0 */
#define NB_UART_DLL 0 /* DLAB=1 */
#define NB_UART_IER 1 /* DLAB=0 */
#define NB_UART_DLM 1 /* DLAB=1 */
#define NB_UART_IIR 2 /* read */
#define NB_UART_FCR 2 /* write */
#define NB_UART_LCR 3
#define NB_UART_MCR 4
#define NB_UART_LSR 5
#define NB_UART_MSR 6
#define NB_UART_SCR 7

typedef void (*NbSerialOutputFunc)(void *ctx, const uint8_t *data, size_t len);

typedef struct NbSerial NbSerial;

/* output may be NULL: transmitted bytes are then discarded. */
NbSerial *nb_serial_new(NbInterrupts *irqs, unsigned gsi, NbSerialOutputFunc output, void *ctx);
void nb_serial_free(NbSerial *dev);

/* Back to the power-on state; pending input is discarded. */
void nb_serial_reset(NbSerial *dev);

/* Registers the eight ports at base (0x3f8 for COM1). */
bool nb_serial_register(NbSerial *dev, NbIoBus *pio, uint16_t base, GError **error);

/* The port handlers, for buses and tests that dispatch themselves. */
const NbIoOps *nb_serial_io_ops(void);

/* Queues a break condition behind any pending input: the guest sees a NUL
 * with BI and FE in LSR, which Linux's serial console takes as the start of
 * a magic SysRq. */
void nb_serial_send_break(NbSerial *dev);

/* Queues host input for the guest. Returns how many bytes were taken:
 * fewer than len only when the backlog is full, and then the rest is
 * dropped and the guest sees an overrun. */
size_t nb_serial_receive(NbSerial *dev, const uint8_t *data, size_t len);

/* How many bytes nb_serial_receive would take now, for a caller that
 * paces its input instead of losing it. */
size_t nb_serial_receive_room(NbSerial *dev);
