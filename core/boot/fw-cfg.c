#include "boot/fw-cfg.h"

#include <string.h>

G_DEFINE_QUARK(nb-fw-cfg-error-quark, nb_fw_cfg_error)

#define MAX_FILES (NB_FW_CFG_ENTRY_MASK + 1 - NB_FW_CFG_FILE_FIRST)
#define DIR_ENTRY_SIZE 64   /* be32 size, be16 select, be16 reserved, name[56] */
#define LOADER_ENTRY_SIZE 128

typedef struct {
  char *name;       /* NULL for a fixed item */
  uint16_t selector;
  GBytes *data;
} Item;

struct NbFwCfg {
  NbGuestMemory *mem;
  GMutex lock;              /* vCPUs touch the ports concurrently */
  GHashTable *items;        /* selector -> Item */
  GPtrArray *files;         /* Item, in selector order */
  uint16_t selector;
  uint32_t offset;          /* into the selected item */
  uint32_t dma_high;        /* high half of the DMA address, as written */
  unsigned dma_errors;
};

static void
item_free(gpointer p)
{
  Item *item = p;
  g_free(item->name);
  g_bytes_unref(item->data);
  g_free(item);
}

static void
put_item(NbFwCfg *cfg, uint16_t selector, const char *name, GBytes *data)
{
  Item *item = g_new0(Item, 1);
  item->selector = selector;
  item->name = g_strdup(name);
  item->data = g_bytes_ref(data);
  g_hash_table_replace(cfg->items, GUINT_TO_POINTER(selector), item);
  if (name)
    g_ptr_array_add(cfg->files, item);
}

/* The directory is an item like any other: rebuilt when a file is added. */
static void
rebuild_directory(NbFwCfg *cfg)
{
  guint n = cfg->files->len;
  uint8_t *dir = g_malloc0(4 + (size_t)n * DIR_ENTRY_SIZE);
  uint32_t count = GUINT32_TO_BE(n);
  memcpy(dir, &count, 4);
  for (guint i = 0; i < n; i++) {
    const Item *f = g_ptr_array_index(cfg->files, i);
    uint8_t *e = dir + 4 + (size_t)i * DIR_ENTRY_SIZE;
    uint32_t size = GUINT32_TO_BE((uint32_t)g_bytes_get_size(f->data));
    uint16_t sel = GUINT16_TO_BE(f->selector);
    memcpy(e, &size, 4);
    memcpy(e + 4, &sel, 2);
    memcpy(e + 8, f->name, strlen(f->name));
  }
  g_autoptr(GBytes) bytes = g_bytes_new_take(dir, 4 + (size_t)n * DIR_ENTRY_SIZE);
  put_item(cfg, NB_FW_CFG_FILE_DIR, NULL, bytes);
}

NbFwCfg *
nb_fw_cfg_new(NbGuestMemory *mem)
{
  NbFwCfg *cfg = g_new0(NbFwCfg, 1);
  cfg->mem = mem;
  g_mutex_init(&cfg->lock);
  cfg->items = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, item_free);
  cfg->files = g_ptr_array_new();
  g_autoptr(GBytes) sig = g_bytes_new_static("QEMU", 4);
  put_item(cfg, NB_FW_CFG_SIGNATURE, NULL, sig);
  nb_fw_cfg_add_u32(cfg, NB_FW_CFG_ID, NB_FW_CFG_VERSION | NB_FW_CFG_VERSION_DMA, NULL);
  rebuild_directory(cfg);
  return cfg;
}

void
nb_fw_cfg_free(NbFwCfg *cfg)
{
  if (cfg == NULL)
    return;
  g_ptr_array_free(cfg->files, TRUE);
  g_hash_table_destroy(cfg->items);
  g_mutex_clear(&cfg->lock);
  g_free(cfg);
}

bool
nb_fw_cfg_add_item(NbFwCfg *cfg, uint16_t selector, GBytes *data, GError **error)
{
  uint16_t index = selector & NB_FW_CFG_ENTRY_MASK;
  bool arch = selector & NB_FW_CFG_ARCH_LOCAL;
  /* The write-channel bit (0x4000) is not part of a selector's name. */
  if ((selector & 0x4000) || (!arch && (index >= NB_FW_CFG_FILE_FIRST ||
                                        index == NB_FW_CFG_FILE_DIR ||
                                        index == NB_FW_CFG_SIGNATURE))) {
    g_set_error(error, NB_FW_CFG_ERROR, NB_FW_CFG_ERROR_INVALID,
                "fw_cfg selector 0x%04x is not a fixed item that can be set", selector);
    return false;
  }
  g_mutex_lock(&cfg->lock);
  put_item(cfg, selector, NULL, data);
  g_mutex_unlock(&cfg->lock);
  return true;
}

static bool
add_le(NbFwCfg *cfg, uint16_t selector, uint64_t value, size_t size, GError **error)
{
  uint64_t le = GUINT64_TO_LE(value);
  g_autoptr(GBytes) bytes = g_bytes_new(&le, size);
  return nb_fw_cfg_add_item(cfg, selector, bytes, error);
}

bool
nb_fw_cfg_add_u16(NbFwCfg *cfg, uint16_t selector, uint16_t value, GError **error)
{
  return add_le(cfg, selector, value, 2, error);
}

bool
nb_fw_cfg_add_u32(NbFwCfg *cfg, uint16_t selector, uint32_t value, GError **error)
{
  return add_le(cfg, selector, value, 4, error);
}

bool
nb_fw_cfg_add_u64(NbFwCfg *cfg, uint16_t selector, uint64_t value, GError **error)
{
  return add_le(cfg, selector, value, 8, error);
}

bool
nb_fw_cfg_add_file(NbFwCfg *cfg, const char *name, GBytes *data, GError **error)
{
  size_t len = strlen(name);
  if (len == 0 || len >= NB_FW_CFG_FILE_NAME_MAX) {
    g_set_error(error, NB_FW_CFG_ERROR, NB_FW_CFG_ERROR_INVALID,
                "fw_cfg file name “%s” must be 1 to %d bytes long", name, NB_FW_CFG_FILE_NAME_MAX - 1);
    return false;
  }
  if (g_bytes_get_size(data) > UINT32_MAX) {
    g_set_error(error, NB_FW_CFG_ERROR, NB_FW_CFG_ERROR_INVALID,
                "fw_cfg file %s is larger than 4 GiB", name);
    return false;
  }
  g_mutex_lock(&cfg->lock);
  bool ok = false;
  for (guint i = 0; i < cfg->files->len; i++) {
    const Item *f = g_ptr_array_index(cfg->files, i);
    if (g_str_equal(f->name, name)) {
      g_set_error(error, NB_FW_CFG_ERROR, NB_FW_CFG_ERROR_INVALID,
                  "fw_cfg file %s is already there", name);
      goto out;
    }
  }
  if (cfg->files->len >= MAX_FILES) {
    g_set_error(error, NB_FW_CFG_ERROR, NB_FW_CFG_ERROR_FULL,
                "cannot add fw_cfg file %s: all %d file selectors are used", name, MAX_FILES);
    goto out;
  }
  put_item(cfg, (uint16_t)(NB_FW_CFG_FILE_FIRST + cfg->files->len), name, data);
  rebuild_directory(cfg);
  ok = true;
out:
  g_mutex_unlock(&cfg->lock);
  return ok;
}

GBytes *
nb_fw_cfg_get_file(NbFwCfg *cfg, const char *name)
{
  GBytes *data = NULL;
  g_mutex_lock(&cfg->lock);
  for (guint i = 0; i < cfg->files->len && !data; i++) {
    const Item *f = g_ptr_array_index(cfg->files, i);
    if (g_str_equal(f->name, name))
      data = f->data;
  }
  g_mutex_unlock(&cfg->lock);
  return data;
}

void
nb_fw_cfg_reset(NbFwCfg *cfg)
{
  g_mutex_lock(&cfg->lock);
  cfg->selector = NB_FW_CFG_SIGNATURE;
  cfg->offset = 0;
  cfg->dma_high = 0;
  g_mutex_unlock(&cfg->lock);
}

unsigned
nb_fw_cfg_dma_errors(NbFwCfg *cfg)
{
  g_mutex_lock(&cfg->lock);
  unsigned n = cfg->dma_errors;
  g_mutex_unlock(&cfg->lock);
  return n;
}

/* The selected item; NULL when nothing is there (reads give zeros). */
static const Item *
current(NbFwCfg *cfg)
{
  /* Selectors with the write bit name the same item. */
  uint16_t key = cfg->selector & (NB_FW_CFG_ARCH_LOCAL | NB_FW_CFG_ENTRY_MASK);
  return g_hash_table_lookup(cfg->items, GUINT_TO_POINTER(key));
}

static uint8_t
next_byte(NbFwCfg *cfg)
{
  const Item *item = current(cfg);
  if (item == NULL)
    return 0;
  size_t size;
  const uint8_t *data = g_bytes_get_data(item->data, &size);
  if (cfg->offset >= size)
    return 0;
  return data[cfg->offset++];
}

static void
do_select(NbFwCfg *cfg, uint16_t selector)
{
  cfg->selector = selector;
  cfg->offset = 0;
}

/* Ports 0x510 (selector, 16-bit) and 0x511 (data, one byte at a time; wider
 * reads return consecutive bytes in memory order, as QEMU's do). */
static uint64_t
io_read(void *opaque, uint64_t offset, unsigned size)
{
  NbFwCfg *cfg = opaque;
  if (offset != 1 && !(offset == 0 && size == 2))
    return 0;
  if (offset == 0)
    return 0;   /* the selector register reads as zero, like QEMU's */
  uint64_t v = 0;
  g_mutex_lock(&cfg->lock);
  for (unsigned i = 0; i < size; i++)
    v |= (uint64_t)next_byte(cfg) << (8 * i);
  g_mutex_unlock(&cfg->lock);
  return v;
}

static void
io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbFwCfg *cfg = opaque;
  /* Writes through the data port are obsolete; items are read-only. */
  if (offset != 0 || size != 2)
    return;
  g_mutex_lock(&cfg->lock);
  do_select(cfg, (uint16_t)value);
  g_mutex_unlock(&cfg->lock);
}

static const NbIoOps io_ops = { io_read, io_write };

/* One DMA request; returns false when it fails (error bit). */
static bool
dma_run(NbFwCfg *cfg, uint32_t control, uint32_t length, uint64_t address)
{
  if (control & NB_FW_CFG_DMA_SELECT)
    do_select(cfg, (uint16_t)(control >> 16));
  if (control & NB_FW_CFG_DMA_WRITE)
    return false;    /* nothing here is writable */
  if (!(control & (NB_FW_CFG_DMA_READ | NB_FW_CFG_DMA_SKIP)) || length == 0)
    return true;

  const Item *item = current(cfg);
  size_t size = 0;
  const uint8_t *data = item ? g_bytes_get_data(item->data, &size) : NULL;
  size_t avail = cfg->offset < size ? size - cfg->offset : 0;
  size_t n = MIN(avail, (size_t)length);

  if (control & NB_FW_CFG_DMA_READ) {
    /* The whole buffer must be RAM, not just its start. */
    uint8_t *dst = nb_guest_memory_ptr(cfg->mem, address, length);
    if (dst == NULL)
      return false;
    if (n)
      memcpy(dst, data + cfg->offset, n);
    /* Past the end of the item the guest reads zeros, as from the port. */
    memset(dst + n, 0, length - n);
  }
  cfg->offset += (uint32_t)n;
  return true;
}

/* The guest writes the address of a 16-byte descriptor { be32 control,
 * be32 length, be64 address }; the device runs it and writes the control
 * word back as 0 (done) or with only the error bit. */
static void
dma_start(NbFwCfg *cfg, uint64_t desc_addr)
{
  uint8_t desc[16];
  if (!nb_guest_memory_read(cfg->mem, desc_addr, desc, sizeof desc)) {
    cfg->dma_errors++;
    return;   /* nowhere to report it: the guest gave no descriptor */
  }
  uint32_t control, length;
  uint64_t address;
  memcpy(&control, desc, 4);
  memcpy(&length, desc + 4, 4);
  memcpy(&address, desc + 8, 8);
  control = GUINT32_FROM_BE(control);
  length = GUINT32_FROM_BE(length);
  address = GUINT64_FROM_BE(address);

  bool ok = dma_run(cfg, control, length, address);
  if (!ok)
    cfg->dma_errors++;
  uint32_t done = GUINT32_TO_BE(ok ? 0 : NB_FW_CFG_DMA_ERROR);
  nb_guest_memory_write(cfg->mem, desc_addr, &done, 4);
}

static uint64_t
dma_read(void *opaque, uint64_t offset, unsigned size)
{
  (void)opaque;
  /* The signature, big-endian: memory order reads "QEMU CFG". */
  uint64_t v = 0;
  for (unsigned i = 0; i < size && offset + i < 8; i++)
    v |= ((NB_FW_CFG_DMA_SIGNATURE >> (8 * (7 - (offset + i)))) & 0xff) << (8 * i);
  return v;
}

static void
dma_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbFwCfg *cfg = opaque;
  if (size != 4 || (offset != 0 && offset != 4))
    return;
  uint32_t half = GUINT32_FROM_BE((uint32_t)value);
  g_mutex_lock(&cfg->lock);
  if (offset == 0) {
    cfg->dma_high = half;
  } else {
    uint64_t addr = ((uint64_t)cfg->dma_high << 32) | half;
    cfg->dma_high = 0;
    dma_start(cfg, addr);
  }
  g_mutex_unlock(&cfg->lock);
}

static const NbIoOps dma_ops = { dma_read, dma_write };

bool
nb_fw_cfg_register(NbFwCfg *cfg, NbIoBus *pio, GError **error)
{
  return nb_io_bus_register(pio, NB_FW_CFG_PORT_SELECTOR, 2, &io_ops, cfg, error) &&
         nb_io_bus_register(pio, NB_FW_CFG_PORT_DMA, 8, &dma_ops, cfg, error);
}

/* Table loader ------------------------------------------------------------- */

static uint8_t *
loader_entry(GByteArray *script, uint32_t command)
{
  guint at = script->len;
  g_byte_array_set_size(script, at + LOADER_ENTRY_SIZE);
  uint8_t *e = script->data + at;
  memset(e, 0, LOADER_ENTRY_SIZE);
  uint32_t le = GUINT32_TO_LE(command);
  memcpy(e, &le, 4);
  return e;
}

static void
put_name(uint8_t *at, const char *name)
{
  size_t len = strlen(name);
  g_return_if_fail(len < NB_FW_CFG_FILE_NAME_MAX);
  memcpy(at, name, len);
}

static void
put_le32(uint8_t *at, uint32_t v)
{
  uint32_t le = GUINT32_TO_LE(v);
  memcpy(at, &le, 4);
}

void
nb_fw_cfg_loader_allocate(GByteArray *script, const char *file, uint32_t align, uint8_t zone)
{
  uint8_t *e = loader_entry(script, 1);
  put_name(e + 4, file);
  put_le32(e + 4 + NB_FW_CFG_FILE_NAME_MAX, align);
  e[4 + NB_FW_CFG_FILE_NAME_MAX + 4] = zone;
}

void
nb_fw_cfg_loader_add_pointer(GByteArray *script, const char *dest_file, const char *src_file,
                             uint32_t offset, uint8_t size)
{
  uint8_t *e = loader_entry(script, 2);
  put_name(e + 4, dest_file);
  put_name(e + 4 + NB_FW_CFG_FILE_NAME_MAX, src_file);
  put_le32(e + 4 + 2 * NB_FW_CFG_FILE_NAME_MAX, offset);
  e[4 + 2 * NB_FW_CFG_FILE_NAME_MAX + 4] = size;
}

void
nb_fw_cfg_loader_add_checksum(GByteArray *script, const char *file, uint32_t offset,
                              uint32_t start, uint32_t length)
{
  uint8_t *e = loader_entry(script, 3);
  put_name(e + 4, file);
  put_le32(e + 4 + NB_FW_CFG_FILE_NAME_MAX, offset);
  put_le32(e + 8 + NB_FW_CFG_FILE_NAME_MAX, start);
  put_le32(e + 12 + NB_FW_CFG_FILE_NAME_MAX, length);
}
