#include "machine/machine-presets.h"

#include <string.h>

#define MIB (UINT64_C(1) << 20)

static const NbMachinePreset presets[] = {
  { "linux-direct", 2, 1024 * MIB, "Linux booted directly from a kernel and initrd" },
  { "linux-small", 1, 256 * MIB, "a small Linux guest (appliance, test machine)" },
  { "server", 4, 4096 * MIB, "a headless server" },
  { "desktop", 4, 8192 * MIB, "a desktop guest served over VNC" },
  { NULL, 0, 0, NULL },
};

const NbMachinePreset *nb_machine_presets(void)
{
  return presets;
}

const NbMachinePreset *nb_machine_preset_find(const char *name)
{
  for (const NbMachinePreset *p = presets; p->name; p++)
    if (strcmp(p->name, name) == 0)
      return p;
  return NULL;
}
