/* Formats not implemented yet: opening them fails with a clear message. */
#include "block/block-private.h"

static bool
not_yet(NbBlock *block, GError **error)
{
  g_set_error(error, NB_BLOCK_ERROR, NB_BLOCK_ERROR_UNSUPPORTED,
              "%s: %s images are not supported yet: convert it to raw with qemu-img",
              block->path, nb_block_format_name(block->format));
  return false;
}

bool nb_vdi_open(NbBlock *block, GError **error) { return not_yet(block, error); }
bool nb_vmdk_open(NbBlock *block, GError **error) { return not_yet(block, error); }
