/* The CMOS real-time clock (MC146818) on ports 0x70 (index, bit 7 masks
 * NMI) and 0x71 (data), IRQ 8, with its 128 bytes of CMOS RAM.
 *
 * The clock is the host's CLOCK_REALTIME read as UTC, plus an offset that
 * changes when the guest sets the time (registers written while register
 * B's SET bit, or the divider reset in register A, holds the clock). The
 * time registers are computed when read, in the format registers B asks
 * for (BCD or binary, 12 or 24 hours); UIP in register A is set during the
 * last 244 us before each second.
 *
 * Update-ended, alarm and periodic flags are accounted for whenever the
 * guest looks and by a thread the device owns, which raises IRQ 8 when an
 * enabled one is due. Reading register C clears the flags and lowers the
 * line.
 *
 * All entry points are thread safe. */
#pragma once

#include "hw/interrupts.h"
#include "kvm/io-bus.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_RTC_PORT     0x70
#define NB_RTC_IRQ      8
#define NB_RTC_CMOS_SIZE 128

/* Register indexes. */
#define NB_RTC_SECONDS       0x00
#define NB_RTC_SECONDS_ALARM 0x01
#define NB_RTC_MINUTES       0x02
#define NB_RTC_MINUTES_ALARM 0x03
#define NB_RTC_HOURS         0x04
#define NB_RTC_HOURS_ALARM   0x05
#define NB_RTC_DAY_OF_WEEK   0x06
#define NB_RTC_DAY_OF_MONTH  0x07
#define NB_RTC_MONTH         0x08
#define NB_RTC_YEAR          0x09
#define NB_RTC_REG_A         0x0a
#define NB_RTC_REG_B         0x0b
#define NB_RTC_REG_C         0x0c
#define NB_RTC_REG_D         0x0d
#define NB_RTC_CENTURY       0x32

#define NB_RTC_A_UIP  0x80
#define NB_RTC_B_SET  0x80
#define NB_RTC_B_PIE  0x40
#define NB_RTC_B_AIE  0x20
#define NB_RTC_B_UIE  0x10
#define NB_RTC_B_SQWE 0x08
#define NB_RTC_B_DM   0x04 /* binary, not BCD */
#define NB_RTC_B_24H  0x02
#define NB_RTC_C_IRQF 0x80
#define NB_RTC_C_PF   0x40
#define NB_RTC_C_AF   0x20
#define NB_RTC_C_UF   0x10
#define NB_RTC_D_VRT  0x80

typedef struct NbRtc NbRtc;

NbRtc *nb_rtc_new(NbInterrupts *irqs);
void nb_rtc_free(NbRtc *dev);

/* A machine reset: interrupt enables and flags clear; the time, the
 * guest's offset and the CMOS RAM survive, as they would on a battery. */
void nb_rtc_reset(NbRtc *dev);

/* Registers ports 0x70 and 0x71. */
bool nb_rtc_register(NbRtc *dev, NbIoBus *pio, GError **error);

const NbIoOps *nb_rtc_io_ops(void);

/* Sets a CMOS RAM byte for the firmware (memory sizes at 0x34/0x35 and
 * 0x5b-0x5d, boot order...). Returns false for the clock's own registers
 * (0x00-0x0d and the century at 0x32) and out-of-range indexes.
 * nb_rtc_get_cmos reads any byte as the guest would, except that reading
 * register C this way does not clear it. */
bool nb_rtc_set_cmos(NbRtc *dev, unsigned index, uint8_t value);
uint8_t nb_rtc_get_cmos(NbRtc *dev, unsigned index);

/* The guest's clock is host time plus this offset, in seconds. Setting it
 * at creation gives a guest that expects local time in its RTC (Windows)
 * the host's UTC offset; the guest changes it by setting the time. */
int64_t nb_rtc_guest_offset(NbRtc *dev);
void nb_rtc_set_offset(NbRtc *dev, int64_t seconds);

/* Where "now" comes from, in nanoseconds since the epoch: CLOCK_REALTIME
 * unless replaced (tests pin it to check what happens at a given instant).
 * NULL restores the host clock. */
typedef int64_t (*NbRtcClockFunc)(void *ctx);
void nb_rtc_set_clock(NbRtc *dev, NbRtcClockFunc clock, void *ctx);
