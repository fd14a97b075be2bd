#include "hw/debug-port.h"

struct NbDebugPort {
  NbDebugPortLineFunc on_line;
  void *ctx;
  GMutex lock;
  char line[NB_DEBUG_PORT_LINE_MAX + 1];
  unsigned len;
};

NbDebugPort *
nb_debug_port_new(NbDebugPortLineFunc on_line, void *ctx)
{
  NbDebugPort *dev = g_new0(NbDebugPort, 1);
  dev->on_line = on_line;
  dev->ctx = ctx;
  g_mutex_init(&dev->lock);
  return dev;
}

void
nb_debug_port_free(NbDebugPort *dev)
{
  if (dev == NULL)
    return;
  g_mutex_clear(&dev->lock);
  g_free(dev);
}

/* Called with the lock held. */
static void
emit(NbDebugPort *dev)
{
  dev->line[dev->len] = '\0';
  dev->len = 0;
  if (dev->on_line)
    dev->on_line(dev->ctx, dev->line);
}

static uint64_t
debug_read(void *opaque, uint64_t offset, unsigned size)
{
  (void)opaque;
  (void)size;
  return offset == 0 ? NB_DEBUG_PORT_READBACK : 0xff;
}

static void
debug_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
  NbDebugPort *dev = opaque;
  if (offset != 0 || size != 1)
    return;
  char c = (char)value;
  g_mutex_lock(&dev->lock);
  if (c == '\n') {
    emit(dev);
  } else if (c != '\r') {
    /* Control characters other than tab become '.', so a log stays text. */
    dev->line[dev->len++] = (c == '\t' || (unsigned char)c >= 0x20) ? c : '.';
    if (dev->len == NB_DEBUG_PORT_LINE_MAX)
      emit(dev);
  }
  g_mutex_unlock(&dev->lock);
}

static const NbIoOps debug_ops = { debug_read, debug_write };

bool
nb_debug_port_register(NbDebugPort *dev, NbIoBus *pio, GError **error)
{
  return nb_io_bus_register(pio, NB_DEBUG_PORT, 1, &debug_ops, dev, error);
}

void
nb_debug_port_flush(NbDebugPort *dev)
{
  g_mutex_lock(&dev->lock);
  if (dev->len)
    emit(dev);
  g_mutex_unlock(&dev->lock);
}
