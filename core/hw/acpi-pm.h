/* The ACPI power management block on I/O ports: PM1a event and control
 * registers, the PM timer, GPE0 and the reset register, as the FADT that
 * core/boot/acpi.c builds describes them.
 *
 * It is what lets a guest power off (SLP_TYP = S5 with SLP_EN), reboot
 * (the FADT reset register) and hear the power button (PWRBTN_STS raising
 * the SCI). The machine is ACPI-only: SCI_EN reads as set from reset and
 * there is no SMI command port, as on every current virtual machine.
 *
 * All entry points are thread safe: vCPU threads access the ports while the
 * control thread presses the power button. */
#pragma once

#include "hw/interrupts.h"
#include "kvm/io-bus.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Where the block lives, shared with the FADT and the machine. */
#define NB_ACPI_PM_BASE         0x600
#define NB_ACPI_PM_SIZE         0x20
#define NB_ACPI_SCI_IRQ         9

/* Registers, as offsets from the base. */
#define NB_ACPI_PM1_STS         0x00   /* 2 bytes, write 1 to clear */
#define NB_ACPI_PM1_EN          0x02   /* 2 bytes */
#define NB_ACPI_PM1_CNT         0x04   /* 2 bytes */
#define NB_ACPI_PM_TMR          0x08   /* 4 bytes, read-only, 24 bits count */
#define NB_ACPI_GPE0_STS        0x0c   /* 2 bytes, write 1 to clear */
#define NB_ACPI_GPE0_EN         0x0e   /* 2 bytes */
#define NB_ACPI_RESET_REG       0x10   /* 1 byte */

#define NB_ACPI_PM1_EVT_LEN     4
#define NB_ACPI_PM1_CNT_LEN     2
#define NB_ACPI_PM_TMR_LEN      4
#define NB_ACPI_GPE0_LEN        4      /* status half, then enable half */

/* Writing this to the reset register resets the machine. */
#define NB_ACPI_RESET_VALUE     0x0f

/* PM1 status and enable bits. */
#define NB_ACPI_PM1_TMR         (1u << 0)
#define NB_ACPI_PM1_GBL         (1u << 5)
#define NB_ACPI_PM1_PWRBTN      (1u << 8)
#define NB_ACPI_PM1_RTC         (1u << 10)
#define NB_ACPI_PM1_WAK_STS     (1u << 15)

/* PM1 control bits. */
#define NB_ACPI_PM1_CNT_SCI_EN  (1u << 0)
#define NB_ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define NB_ACPI_PM1_CNT_SLP_TYP_MASK  (7u << 10)
#define NB_ACPI_PM1_CNT_SLP_EN  (1u << 13)

/* The SLP_TYP values the DSDT's \_S0 and \_S5 packages give. */
#define NB_ACPI_SLP_TYP_S0      0
#define NB_ACPI_SLP_TYP_S5      5

#define NB_ACPI_PM_TIMER_HZ     3579545

typedef struct NbAcpiPm NbAcpiPm;

/* poweroff: the guest entered S5. reset: the guest wrote the reset value
 * to the reset register. Both run on the vCPU thread that did the write,
 * with no lock of the device held, and may be NULL. */
typedef void (*NbAcpiPmCallback)(void *ctx);

/* The SCI is raised on NB_ACPI_SCI_IRQ through irqs. */
NbAcpiPm *nb_acpi_pm_new(NbInterrupts *irqs, NbAcpiPmCallback poweroff,
                         NbAcpiPmCallback reset, void *ctx);
void nb_acpi_pm_free(NbAcpiPm *pm);

/* Back to the power-on state: events clear, SCI_EN set, the SCI lowered. */
void nb_acpi_pm_reset(NbAcpiPm *pm);

/* Registers the block at NB_ACPI_PM_BASE on the port bus. */
bool nb_acpi_pm_register(NbAcpiPm *pm, NbIoBus *pio, GError **error);
void nb_acpi_pm_unregister(NbAcpiPm *pm, NbIoBus *pio);

/* The I/O handlers, for a bus of one's own (and for tests). */
const NbIoOps *nb_acpi_pm_io_ops(void);

/* Presses the power button: sets PWRBTN_STS and raises the SCI if the guest
 * has enabled it. Returns whether the guest has (PWRBTN_EN set): when it has
 * not, no ACPI-aware OS is listening and the caller should tell the user so
 * instead of waiting for a shutdown that will not come. */
bool nb_acpi_pm_press_power_button(NbAcpiPm *pm);

/* Sets a general-purpose event (bit < 16), raising the SCI if enabled; for
 * devices that signal through GPE0 (hotplug, later). */
void nb_acpi_pm_set_gpe(NbAcpiPm *pm, unsigned bit);

/* The 24-bit PM timer as the guest would read it now. */
uint32_t nb_acpi_pm_timer(NbAcpiPm *pm);

/* State for save and restore. */
typedef struct {
  uint16_t pm1_sts;
  uint16_t pm1_en;
  uint16_t pm1_cnt;
  uint16_t gpe0_sts;
  uint16_t gpe0_en;
  uint32_t timer;      /* count when saved; the timer runs on from there */
} NbAcpiPmState;

void nb_acpi_pm_save(NbAcpiPm *pm, NbAcpiPmState *state);
void nb_acpi_pm_load(NbAcpiPm *pm, const NbAcpiPmState *state);
