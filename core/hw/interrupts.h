/* What a device may do with interrupts and doorbells, without knowing KVM.
 *
 * The VM implements these with the in-kernel irqchip (KVM_IRQ_LINE, GSI
 * routing, irqfd, ioeventfd); unit tests implement them with counters. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
  /* Level of a wired interrupt line (ISA IRQ or IOAPIC pin). */
  void (*set_line)(void *ctx, unsigned gsi, bool level);
  /* Deliver one MSI now. */
  void (*msi_send)(void *ctx, uint64_t address, uint32_t data);
  /* A GSI routed to an MSI address/data pair; returns the GSI or -1. */
  int (*msi_route_new)(void *ctx, uint64_t address, uint32_t data, GError **error);
  bool (*msi_route_set)(void *ctx, unsigned gsi, uint64_t address, uint32_t data, GError **error);
  void (*msi_route_free)(void *ctx, unsigned gsi);
  /* Writing to eventfd raises gsi without leaving the kernel. */
  bool (*irqfd_attach)(void *ctx, int eventfd, unsigned gsi, GError **error);
  void (*irqfd_detach)(void *ctx, int eventfd, unsigned gsi);
  /* A guest write of len bytes at addr signals eventfd instead of exiting. */
  bool (*ioeventfd_attach)(void *ctx, int eventfd, uint64_t addr, unsigned len,
                           bool pio, GError **error);
  void (*ioeventfd_detach)(void *ctx, int eventfd, uint64_t addr, unsigned len, bool pio);
} NbInterruptOps;

typedef struct {
  const NbInterruptOps *ops;
  void *ctx;
} NbInterrupts;
