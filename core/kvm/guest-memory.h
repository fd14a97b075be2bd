/* Guest RAM: one private anonymous mapping, 2 MiB aligned, backed by
 * transparent huge pages where the host has them, laid out around the PCI
 * hole.
 *
 * Every device reaches guest memory through nb_guest_memory_ptr(), which
 * checks the whole range, not just its start: a guest-supplied address that
 * runs past the end of a RAM region gets NULL, never a pointer. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NB_GUEST_MEMORY_ERROR (nb_guest_memory_error_quark())
GQuark nb_guest_memory_error_quark(void);

typedef enum {
  NB_GUEST_MEMORY_ERROR_TOO_SMALL,
  NB_GUEST_MEMORY_ERROR_TOO_LARGE,
  NB_GUEST_MEMORY_ERROR_FAILED,
} NbGuestMemoryError;

#define NB_GUEST_MEMORY_MAX_REGIONS 2

typedef struct {
  uint64_t gpa;        /* guest physical start */
  uint64_t size;       /* bytes */
  uint8_t *host;       /* where it is mapped in this process */
} NbRamRegion;

typedef struct NbGuestMemory {
  NbRamRegion regions[NB_GUEST_MEMORY_MAX_REGIONS];
  unsigned n_regions;
  uint64_t ram_size;
  uint8_t *mapping;    /* all of it, ram_size bytes, 2 MiB aligned */
} NbGuestMemory;

/* The alignment of guest RAM in this process: x86's 2 MiB huge page. */
#define NB_GUEST_MEMORY_HUGE_PAGE (2 * UINT64_C(1048576))

/* Smallest machine we boot: below this Linux cannot unpack an initramfs. */
#define NB_GUEST_MEMORY_MIN (64 * UINT64_C(1048576))

/* RAM below 3 GiB, the rest from 4 GiB. Refuses sizes below the minimum and
 * sizes the host cannot back (more than its RAM plus swap). */
NbGuestMemory *nb_guest_memory_new(uint64_t ram_size, GError **error);

/* The same with a chosen split, so tests can put a region end next to a hole
 * without allocating gigabytes: RAM up to low_limit, the rest at high_base. */
NbGuestMemory *nb_guest_memory_new_split(uint64_t ram_size, uint64_t low_limit,
                                         uint64_t high_base, GError **error);

void nb_guest_memory_free(NbGuestMemory *mem);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NbGuestMemory, nb_guest_memory_free)

/* Host pointer for [gpa, gpa + len) when the whole range lies in one RAM
 * region; NULL otherwise (including len == 0 and overflow). */
void *nb_guest_memory_ptr(const NbGuestMemory *mem, uint64_t gpa, uint64_t len);

/* Copies that may span regions are refused like any other bad range. */
bool nb_guest_memory_read(const NbGuestMemory *mem, uint64_t gpa, void *dst, size_t len);
bool nb_guest_memory_write(NbGuestMemory *mem, uint64_t gpa, const void *src, size_t len);

/* The guest-physical end of RAM (exclusive), for placing 64-bit BARs. */
uint64_t nb_guest_memory_end(const NbGuestMemory *mem);
