/* A minimal virtio-pci guest driver for tests: it programs a device through
 * PCI config space and its BAR exactly as a guest kernel would, over fake
 * guest memory and fake interrupts that count what the device raised. */
#pragma once

#include "hw/pci.h"
#include "kvm/guest-memory.h"
#include "kvm/io-bus.h"
#include "virtio/virtio-pci.h"

#include <stdbool.h>
#include <stdint.h>

#define TD_MAX_QUEUES 16
#define TD_MAX_ROUTES 64

typedef struct {
  GMutex lock;
  unsigned msi_sent;
  uint64_t last_msi_addr;
  uint32_t last_msi_data;
  unsigned routes;
  struct { uint64_t addr; uint32_t data; int irqfd; bool used; } route[TD_MAX_ROUTES];
  bool line[64];
  unsigned ioeventfds;
  struct { int efd; uint64_t addr; } ioeventfd[TD_MAX_QUEUES * 2];
  bool fail_ioeventfd;
} TdIrqs;

typedef struct {
  uint16_t size;
  uint64_t desc, avail, used;
  uint16_t avail_idx;
  uint16_t last_used;
  uint16_t next_desc;
} TdQueue;

typedef struct {
  NbGuestMemory *mem;
  NbIoBus *pio, *mmio;
  NbPciBus *bus;
  TdIrqs irq_state;
  NbInterrupts irqs;
  NbPciDevice *dev;
  unsigned slot;
  uint64_t bar;
  uint64_t next_alloc;
  TdQueue q[TD_MAX_QUEUES];
} TestDriver;

typedef struct {
  uint64_t gpa;
  uint32_t len;
  bool write;
} TdBuf;

void td_init(TestDriver *td);
void td_clear(TestDriver *td);
/* Puts the device on the bus and finds its BAR. */
void td_add(TestDriver *td, NbPciDevice *dev);

uint32_t td_cfg_read(TestDriver *td, unsigned off, unsigned size);
void td_cfg_write(TestDriver *td, unsigned off, uint32_t value, unsigned size);
uint64_t td_bar_read(TestDriver *td, uint64_t off, unsigned size);
void td_bar_write(TestDriver *td, uint64_t off, uint64_t value, unsigned size);

/* Finds the first capability with this ID; returns its offset or 0. */
unsigned td_find_cap(TestDriver *td, uint8_t id);
/* Finds a vendor capability of cfg_type; returns its config offset or 0. */
unsigned td_find_virtio_cap(TestDriver *td, uint8_t cfg_type);

/* Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether the
 * device kept FEATURES_OK. */
bool td_negotiate(TestDriver *td, uint64_t features);
uint64_t td_device_features(TestDriver *td);
void td_setup_queue(TestDriver *td, unsigned q, uint16_t size);
void td_driver_ok(TestDriver *td);
uint8_t td_status(TestDriver *td);
void td_reset(TestDriver *td);

/* MSI-X on, every vector unmasked with address 0xfee00000 and data = index. */
void td_msix_enable(TestDriver *td, unsigned n_vectors);
void td_set_queue_vector(TestDriver *td, unsigned q, uint16_t vector);

uint64_t td_alloc(TestDriver *td, uint64_t len);
void *td_ptr(TestDriver *td, uint64_t gpa, uint64_t len);
/* Writes a chain and makes it available (no notify); returns the head. */
uint16_t td_submit(TestDriver *td, unsigned q, const TdBuf *bufs, unsigned n);
/* The same chain as one indirect table. */
uint16_t td_submit_indirect(TestDriver *td, unsigned q, const TdBuf *bufs, unsigned n);
void td_kick(TestDriver *td, unsigned q);
/* Uses descriptors first .. first + n - 1 (the caller manages them). */
void td_submit_at(TestDriver *td, unsigned q, uint16_t first, const TdBuf *bufs, unsigned n);
/* Takes the next used entry if there is one (and asks for an interrupt for
 * the one after, as Linux does with EVENT_IDX). */
bool td_poll_used(TestDriver *td, unsigned q, uint32_t *id, uint32_t *len);
/* Waits up to timeout_ms for the next used entry. */
bool td_wait_used(TestDriver *td, unsigned q, uint32_t *id, uint32_t *len, unsigned timeout_ms);
/* Number of used entries the device has published so far. */
uint16_t td_used_idx(TestDriver *td, unsigned q);

/* Interrupt counts: MSIs sent directly plus irqfd signals. */
unsigned td_irqfd_count(TestDriver *td, unsigned route);
