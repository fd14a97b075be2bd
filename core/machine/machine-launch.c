#include "machine/machine-launch.h"
#include "machine/machine-document.h"
#include "machine/machine-registry.h"

int
nb_machine_launch_prepare(NbVmOptions *options, GError **error)
{
  g_return_val_if_fail(options->machine != NULL, -1);

  g_autoptr(NbMachineDocument) doc = nb_machine_registry_find(options->machine, error);
  if (doc == NULL)
    return -1;
  g_autofree char *dir = nb_machine_registry_dir(options->machine);
  int lock = nb_machine_lock_acquire(dir, error);
  if (lock < 0)
    return -1;

  NbVmOptions from_doc;
  if (!nb_machine_document_to_vm_options(doc, &from_doc, error)) {
    nb_machine_lock_release(lock);
    return -1;
  }
  from_doc.no_reboot = options->no_reboot;
  if (options->serial_given) {
    from_doc.serial = options->serial;
    g_free(from_doc.serial_path);
    from_doc.serial_path = g_strdup(options->serial_path);
  }
  from_doc.machine = g_strdup(options->machine);
  nb_vm_options_clear(options);
  *options = from_doc;
  return lock;
}
