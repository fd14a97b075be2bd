/* Starting points for `nestboxctl create --preset`: sizes per guest type. */
#pragma once

#include <stdint.h>

typedef struct {
  const char *name;
  unsigned cpus;
  uint64_t memory;
  const char *description;
} NbMachinePreset;

/* NULL-name-terminated table; the first entry is the default. */
const NbMachinePreset *nb_machine_presets(void);
const NbMachinePreset *nb_machine_preset_find(const char *name);
