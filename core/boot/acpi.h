/* ACPI tables for the machine: RSDP, XSDT and RSDT, FADT with its FACS,
 * DSDT and MADT.
 *
 * The tables describe a PC with a real ACPI PM block (core/hw/acpi-pm.h):
 * a fixed-feature power button, S5 poweroff, a reset register, an IOAPIC
 * and one local APIC per vCPU, a PCI host bridge with its windows and INTx
 * routing, and the legacy devices (COM1, RTC, i8042) on the ISA ports.
 *
 * They are built into one blob for a given guest address, so the same code
 * serves direct boot (tables at NB_BOOT_ACPI_ADDR) and firmware boot (the
 * blob handed over through fw_cfg). */
#pragma once

#include "kvm/guest-memory.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define NB_ACPI_MAX_CPUS 64

/* PCI INTx routing, shared by the DSDT's _PRT and the PCI bus: pin 0 is
 * INTA. Each slot's INTA..INTD go to IOAPIC inputs 16..23, rotated by the
 * slot number the way a PCI-to-PCI bridge swizzles them, so that devices in
 * neighbouring slots, which all use INTA, do not share a line:
 *   gsi = 16 + ((slot + pin) mod 8). */
#define NB_ACPI_PCI_GSI_BASE  16
#define NB_ACPI_PCI_GSI_COUNT 8

static inline unsigned
nb_acpi_pci_intx_gsi(unsigned slot, unsigned pin)
{
  return NB_ACPI_PCI_GSI_BASE + ((slot + pin) % NB_ACPI_PCI_GSI_COUNT);
}

typedef struct {
  unsigned n_cpus;            /* 1..NB_ACPI_MAX_CPUS; APIC ID = vCPU index */
  uint16_t pm_base;           /* the ACPI PM block (NB_ACPI_PM_BASE) */
  uint8_t sci_irq;            /* NB_ACPI_SCI_IRQ */
  uint8_t ioapic_id;
  uint64_t pci_mmio32_base;   /* 32-bit BAR window, end exclusive */
  uint64_t pci_mmio32_end;
  uint64_t pci_mmio64_base;   /* 64-bit BAR window; empty when base == end */
  uint64_t pci_mmio64_end;
} NbAcpiConfig;

/* The machine's usual layout (core/kvm/memory-map.h, core/hw/acpi-pm.h)
 * with n_cpus CPUs and a 64-bit window of mmio64_size from mmio64_base. */
void nb_acpi_config_init(NbAcpiConfig *cfg, unsigned n_cpus, uint64_t mmio64_base,
                         uint64_t mmio64_size);

/* Builds every table into one blob meant to sit at guest address base
 * (16-byte aligned, below 4 GiB); *rsdp_addr gets the RSDP's guest address.
 * Refuses a configuration that does not describe a machine. */
GBytes *nb_acpi_build(const NbAcpiConfig *cfg, uint64_t base, uint64_t *rsdp_addr,
                      GError **error);

/* Builds the tables at NB_BOOT_ACPI_ADDR and writes them there, for direct
 * boot; *rsdp_addr is what NbLinuxBootConfig.rsdp_addr wants. */
bool nb_acpi_install(NbGuestMemory *mem, const NbAcpiConfig *cfg, uint64_t *rsdp_addr,
                   GError **error);

/* The 8-bit sum that makes a table's bytes add up to zero. */
uint8_t nb_acpi_checksum(const uint8_t *data, size_t len);
