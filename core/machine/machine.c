#include "machine/machine.h"
#include "machine/machine-firmware.h"
#include "block/block.h"
#include "boot/acpi.h"
#include "boot/linux-loader.h"
#include "hw/acpi-pm.h"
#include "hw/bochs-display.h"
#include "hw/i8042.h"
#include "hw/pci.h"
#include "hw/pvpanic.h"
#include "hw/rtc.h"
#include "hw/serial.h"
#include "kvm/cpuid.h"
#include "kvm/memory-map.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "net/nat.h"
#include "virtio/virtio-blk.h"
#include "virtio/virtio-console.h"
#include "virtio/virtio-input.h"
#include "virtio/virtio-net.h"
#include "virtio/virtio-rng.h"
#include "virtio/virtio-scsi.h"

#include <gio/gio.h>
#include <string.h>

G_DEFINE_QUARK(nb-machine-error-quark, nb_machine_error)

#define COM1_PORT 0x3f8
#define COM1_IRQ  4

struct NbMachine {
  unsigned n_cpus;
  NbGuestMemory *mem;
  NbVm *vm;
  NbVcpu *vcpus[NB_VM_MAX_CPUS];
  GThread *threads[NB_VM_MAX_CPUS];
  NbConsoleIo *console;

  NbPciBus *pci;
  NbSerial *serial;
  NbI8042 *i8042;
  NbRtc *rtc;
  NbAcpiPm *acpi_pm;
  NbPvpanic *pvpanic;
  GPtrArray *blocks;          /* NbBlock, closed after the devices using them */
  GPtrArray *virtio_blks;     /* NbVirtioBlk */
  NbVirtioRng *virtio_rng;
  NbVirtioConsole *virtio_console;
  GPtrArray *nats;            /* NbNat, one per --net (by NIC index), freed after its NIC */
  GPtrArray *virtio_nets;     /* NbVirtioNet */
  NbVirtioScsi *virtio_scsi;  /* the CD-ROM drive */
  bool console_on_hvc;
  NbBochsDisplay *display;
  NbVirtioInput *keyboard;
  NbVirtioInput *tablet;
  int mouse_x, mouse_y;       /* last pointer position sent as PS/2 motion */
  bool mouse_known;
  NbLinuxBootInfo boot;
  NbMachineFirmware *firmware;   /* firmware boot only */
  bool vga_bios;                 /* the display has its VGA BIOS */

  GMutex state_lock;
  GCond pause_cond;           /* vCPU threads park on it while paused (machine-control) */
  bool pause_requested;
  unsigned parked;            /* vCPU threads parked */
  bool stopping;
  NbMachineExit exit;
  char *exit_detail;
  GMainLoop *loop;
};

const char *
nb_machine_exit_describe(NbMachineExit exit)
{
  switch (exit) {
  case NB_MACHINE_EXIT_POWEROFF: return "the guest powered off";
  case NB_MACHINE_EXIT_RESET: return "the guest rebooted";
  case NB_MACHINE_EXIT_PANIC: return "the guest kernel panicked";
  case NB_MACHINE_EXIT_CRASH: return "the machine crashed";
  case NB_MACHINE_EXIT_STOPPED: return "the machine was stopped";
  case NB_MACHINE_EXIT_NO_BOOT: return "the firmware found no bootable device";
  }
  return "unknown";
}

static gboolean
quit_loop(gpointer data)
{
  NbMachine *m = data;
  g_main_loop_quit(m->loop);
  return G_SOURCE_REMOVE;
}

void
nb_machine_stop(NbMachine *m, NbMachineExit reason, const char *detail)
{
  g_mutex_lock(&m->state_lock);
  bool first = !m->stopping;
  if (first) {
    m->stopping = true;
    m->exit = reason;
    m->exit_detail = g_strdup(detail);
  }
  g_cond_broadcast(&m->pause_cond);   /* parked vCPUs wake up to stop */
  g_mutex_unlock(&m->state_lock);
  if (!first)
    return;
  for (unsigned i = 0; i < m->n_cpus; i++)
    if (m->vcpus[i])
      nb_vcpu_kick(m->vcpus[i]);
  /* An idle on the loop's context, not g_main_loop_quit here: a quit that
   * lands before g_main_loop_run starts would be forgotten. */
  g_idle_add(quit_loop, m);
}

static bool
is_stopping(NbMachine *m)
{
  g_mutex_lock(&m->state_lock);
  bool stopping = m->stopping;
  g_mutex_unlock(&m->state_lock);
  return stopping;
}

/* Device callbacks ------------------------------------------------------- */

static void
on_serial_output(void *ctx, const uint8_t *data, size_t len)
{
  NbMachine *m = ctx;
  nb_console_io_write(m->console, data, len);
}

static void
on_console_input(void *ctx, const uint8_t *data, size_t len)
{
  NbMachine *m = ctx;
  if (m->console_on_hvc)
    nb_virtio_console_input(m->virtio_console, data, len);
  else
    nb_serial_receive(m->serial, data, len);
}

static void
on_hvc_output(void *ctx, const uint8_t *data, size_t len)
{
  NbMachine *m = ctx;
  nb_console_io_write(m->console, data, len);
}

static void
on_poweroff(void *ctx)
{
  nb_machine_stop(ctx, NB_MACHINE_EXIT_POWEROFF, NULL);
}

static void
on_reset(void *ctx)
{
  nb_machine_stop(ctx, NB_MACHINE_EXIT_RESET, NULL);
}

static void
on_no_boot(void *ctx, const char *message)
{
  nb_machine_stop(ctx, NB_MACHINE_EXIT_NO_BOOT, message);
}

static void
on_pvpanic(void *ctx, unsigned events)
{
  if (events & NB_PVPANIC_PANICKED)
    nb_machine_stop(ctx, NB_MACHINE_EXIT_PANIC, "the guest reported a kernel panic");
}

/* Assembly ---------------------------------------------------------------- */

/* The PC convention firmware and old tools read: KiB above 1 MiB (capped),
 * 64 KiB units above 16 MiB up to the hole, 64 KiB units above 4 GiB. */
static void
set_cmos_memory_size(NbMachine *m)
{
  uint64_t low = MIN(m->mem->ram_size, NB_MEM_LOW_LIMIT);
  uint64_t high = m->mem->ram_size - low;
  uint64_t ext_kb = MIN((low - NB_MiB) / 1024, 0xfc00);
  uint64_t above16 = low > 16 * NB_MiB ? MIN((low - 16 * NB_MiB) >> 16, 0xffff) : 0;
  uint64_t above4g = high >> 16;
  nb_rtc_set_cmos(m->rtc, 0x17, ext_kb & 0xff);
  nb_rtc_set_cmos(m->rtc, 0x18, ext_kb >> 8);
  nb_rtc_set_cmos(m->rtc, 0x30, ext_kb & 0xff);
  nb_rtc_set_cmos(m->rtc, 0x31, ext_kb >> 8);
  nb_rtc_set_cmos(m->rtc, 0x34, above16 & 0xff);
  nb_rtc_set_cmos(m->rtc, 0x35, above16 >> 8);
  nb_rtc_set_cmos(m->rtc, 0x5b, above4g & 0xff);
  nb_rtc_set_cmos(m->rtc, 0x5c, (above4g >> 8) & 0xff);
  nb_rtc_set_cmos(m->rtc, 0x5d, (above4g >> 16) & 0xff);
}

/* 64-bit BARs go above RAM, on a 1 GiB boundary. */
static uint64_t
pci_mmio64_base(NbMachine *m)
{
  uint64_t base = MAX(nb_guest_memory_end(m->mem), NB_MEM_HIGH_BASE);
  return (base + NB_GiB - 1) & ~(NB_GiB - 1);
}

static bool
add_devices(NbMachine *m, GError **error)
{
  NbInterrupts *irqs = nb_vm_interrupts(m->vm);
  NbIoBus *pio = nb_vm_pio(m->vm);

  m->serial = nb_serial_new(irqs, COM1_IRQ, on_serial_output, m);
  if (!nb_serial_register(m->serial, pio, COM1_PORT, error))
    return false;

  m->i8042 = nb_i8042_new(irqs, on_reset, m);
  if (!nb_i8042_register(m->i8042, pio, error))
    return false;

  m->rtc = nb_rtc_new(irqs);
  if (!nb_rtc_register(m->rtc, pio, error))
    return false;
  set_cmos_memory_size(m);

  m->acpi_pm = nb_acpi_pm_new(irqs, on_poweroff, on_reset, m);
  if (!nb_acpi_pm_register(m->acpi_pm, pio, error))
    return false;

  m->pci = nb_pci_bus_new(pio, nb_vm_mmio(m->vm), irqs, pci_mmio64_base(m));
  nb_pci_bus_set_ram_mapper(m->pci, nb_vm_map_ram, m->vm);
  if (!nb_pci_bus_register_host_bridge(m->pci, error))
    return false;

  m->pvpanic = nb_pvpanic_new(on_pvpanic, m);
  if (!nb_pci_bus_add(m->pci, nb_pvpanic_pci_device(m->pvpanic), error))
    return false;
  return true;
}

static bool
add_disk(NbMachine *m, const NbDiskSpec *spec, unsigned index, GError **error)
{
  NbBlockOpenOptions open_options = { .format = NB_BLOCK_FORMAT_AUTO, .read_only = spec->read_only };
  if (spec->format && !nb_block_format_parse(spec->format, &open_options.format, error))
    return false;
  NbBlock *block = nb_block_open(spec->path, &open_options, error);
  if (block == NULL) {
    g_prefix_error(error, "disk %u: ", index + 1);
    return false;
  }
  g_ptr_array_add(m->blocks, block);
  NbVirtioBlk *blk = nb_virtio_blk_new(m->mem, block, spec->serial, error);
  if (blk == NULL)
    return false;
  g_ptr_array_add(m->virtio_blks, blk);
  return nb_pci_bus_add(m->pci, nb_virtio_blk_pci_device(blk), error);
}

/* One --net: a virtio-net NIC with a NAT engine of its own. Without mac=
 * the NIC gets 52:54:00:12:34:56 plus its index, the same every run, so
 * the guest's DHCP lease and interface names stay put. */
static bool
add_nic(NbMachine *m, const char *spec, unsigned index, GError **error)
{
  g_autoptr(NbNatConfig) config = nb_nat_config_parse(spec, error);
  if (config == NULL) {
    g_prefix_error(error, "network card %u: ", index + 1);
    return false;
  }
  uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t)(0x56 + index) };
  if (config->has_mac)
    memcpy(mac, config->mac, 6);
  NbNat *nat = nb_nat_new(config, error);
  if (nat == NULL) {
    g_prefix_error(error, "network card %u: ", index + 1);
    return false;
  }
  g_ptr_array_add(m->nats, nat);
  NbVirtioNet *net = nb_virtio_net_new(m->mem, nb_nat_get_backend(nat), mac, error);
  if (net == NULL) {
    g_prefix_error(error, "network card %u: ", index + 1);
    return false;
  }
  g_ptr_array_add(m->virtio_nets, net);
  /* The engine's thread starts once the NIC is attached to it. */
  return nb_pci_bus_add(m->pci, nb_virtio_net_pci_device(net), error) && nb_nat_start(nat, error);
}

/* An ISO on a virtio-scsi CD-ROM: always raw and read-only. */
static bool
add_cdrom(NbMachine *m, const char *path, GError **error)
{
  NbBlockOpenOptions open_options = { .format = NB_BLOCK_FORMAT_RAW, .read_only = true };
  NbBlock *block = nb_block_open(path, &open_options, error);
  if (block == NULL) {
    g_prefix_error(error, "CD-ROM: ");
    return false;
  }
  g_ptr_array_add(m->blocks, block);
  m->virtio_scsi = nb_virtio_scsi_new(m->mem, block, error);
  return m->virtio_scsi && nb_pci_bus_add(m->pci, nb_virtio_scsi_pci_device(m->virtio_scsi), error);
}

static bool
add_virtio_devices(NbMachine *m, const NbVmOptions *options, GError **error)
{
  for (guint i = 0; i < options->disks->len; i++)
    if (!add_disk(m, &g_array_index(options->disks, NbDiskSpec, i), i, error))
      return false;

  if (options->cdrom && !add_cdrom(m, options->cdrom, error))
    return false;

  if (options->rng) {
    m->virtio_rng = nb_virtio_rng_new(m->mem, error);
    if (m->virtio_rng == NULL ||
        !nb_pci_bus_add(m->pci, nb_virtio_rng_pci_device(m->virtio_rng), error))
      return false;
  }

  if (options->console_hvc || options->console_ports->len > 0) {
    guint n = options->console_ports->len;
    g_autofree NbVirtioConsolePortSpec *ports = g_new0(NbVirtioConsolePortSpec, MAX(n, 1));
    for (guint i = 0; i < n; i++) {
      const NbConsolePortSpec *spec = &g_array_index(options->console_ports, NbConsolePortSpec, i);
      ports[i] = (NbVirtioConsolePortSpec){ spec->name, spec->socket_path };
    }
    m->virtio_console = nb_virtio_console_new(m->mem, ports, n,
                                              options->console_hvc ? on_hvc_output : NULL, m, error);
    if (m->virtio_console == NULL ||
        !nb_pci_bus_add(m->pci, nb_virtio_console_pci_device(m->virtio_console), error))
      return false;
    m->console_on_hvc = options->console_hvc;
  }

  for (unsigned i = 0; options->nets && options->nets[i]; i++)
    if (!add_nic(m, options->nets[i], i, error))
      return false;
  return true;
}

static bool
framebuffer_dirty_log(void *ctx, unsigned long *bitmap, size_t n_pages)
{
  NbMachine *m = ctx;
  return nb_vm_get_dirty_log(m->vm, nb_framebuffer_data(nb_bochs_display_framebuffer(m->display)),
                             bitmap, n_pages);
}

/* A screen, a keyboard and a tablet, for --vnc and the other displays. */
static bool
add_graphics(NbMachine *m, GError **error)
{
  m->display = nb_bochs_display_new(NB_BOCHS_VRAM_DEFAULT, error);
  if (m->display == NULL)
    return false;
  /* The VGA BIOS sits in the display's expansion ROM BAR, where QEMU puts it
   * too. fw_cfg's vgaroms/ would be simpler, but SeaBIOS runs those with no
   * device: this VGA BIOS learns which device it drives (and so where its
   * registers and framebuffer are) from the PCI address the firmware passes
   * when it runs a device's own ROM, and SeaBIOS 1.16 runs the ROM of a
   * class 0x0380 display as the VGA BIOS when no VGA-class device exists. */
  if (m->firmware) {
    g_autoptr(GBytes) rom = nb_machine_firmware_load_vga_bios(m->firmware, NB_BOCHS_VENDOR,
                                                              NB_BOCHS_DEVICE);
    if (rom) {
      nb_pci_device_set_rom(nb_bochs_display_pci_device(m->display), rom);
      m->vga_bios = true;
    }
  }
  if (!nb_pci_bus_add(m->pci, nb_bochs_display_pci_device(m->display), error))
    return false;
  nb_framebuffer_set_dirty_log(nb_bochs_display_framebuffer(m->display), framebuffer_dirty_log, m);
  m->keyboard = nb_virtio_input_new(m->mem, NB_VIRTIO_INPUT_KEYBOARD, error);
  if (m->keyboard == NULL || !nb_pci_bus_add(m->pci, nb_virtio_input_pci_device(m->keyboard), error))
    return false;
  m->tablet = nb_virtio_input_new(m->mem, NB_VIRTIO_INPUT_TABLET, error);
  return m->tablet != NULL && nb_pci_bus_add(m->pci, nb_virtio_input_pci_device(m->tablet), error);
}

NbFramebuffer *
nb_machine_framebuffer(NbMachine *m)
{
  return m->display ? nb_bochs_display_framebuffer(m->display) : NULL;
}

void
nb_machine_key_event(NbMachine *m, unsigned keycode, bool pressed)
{
  /* One keyboard at a time: the virtio one once its driver runs, else the
   * PS/2 one (firmware, early boot), so no key arrives twice. */
  if (m->keyboard && nb_virtio_input_is_active(m->keyboard))
    nb_virtio_input_key_event(m->keyboard, keycode, pressed);
  else
    nb_i8042_key_event(m->i8042, keycode, pressed);
}

unsigned
nb_machine_keyboard_leds(NbMachine *m)
{
  if (m->keyboard && nb_virtio_input_is_active(m->keyboard))
    return nb_virtio_input_leds(m->keyboard);
  return nb_i8042_keyboard_leds(m->i8042);
}

void
nb_machine_pointer_event(NbMachine *m, unsigned x, unsigned y, unsigned buttons, int wheel)
{
  if (m->tablet && nb_virtio_input_is_active(m->tablet)) {
    nb_virtio_input_tablet_event(m->tablet, x, y, buttons, wheel);
    return;
  }
  /* Without the tablet's driver, the PS/2 mouse moves by the difference, in
   * screen pixels; the guest's acceleration makes it approximate. */
  NbFbMode mode = { .enabled = false };
  if (m->display)
    nb_framebuffer_get_mode(nb_bochs_display_framebuffer(m->display), &mode);
  unsigned w = mode.enabled ? mode.width : 640, h = mode.enabled ? mode.height : 480;
  int px = (int)((uint64_t)x * w / 32768), py = (int)((uint64_t)y * h / 32768);
  g_mutex_lock(&m->state_lock);
  int dx = m->mouse_known ? px - m->mouse_x : 0, dy = m->mouse_known ? py - m->mouse_y : 0;
  m->mouse_x = px;
  m->mouse_y = py;
  m->mouse_known = true;
  g_mutex_unlock(&m->state_lock);
  /* The i8042's button bits are the tablet's. */
  nb_i8042_mouse_event(m->i8042, dx, dy, wheel, buttons & 7);
}

/* Before KVM is touched, so that a wrong kernel or initrd is reported as
 * such even on a host without KVM. */
static bool
load_linux(NbMachine *m, const NbVmOptions *options, GError **error)
{
  NbAcpiConfig acpi;
  nb_acpi_config_init(&acpi, m->n_cpus, pci_mmio64_base(m), 64 * NB_GiB);
  uint64_t rsdp = 0;
  if (!nb_acpi_install(m->mem, &acpi, &rsdp, error))
    return false;

  NbLinuxBootConfig boot = {
    .kernel_path = options->kernel,
    .initrd_path = options->initrd,
    .cmdline = options->append,
    .rsdp_addr = rsdp,
  };
  return nb_linux_load(m->mem, &boot, &m->boot, error);
}

static bool
attach_firmware(NbMachine *m, const NbVmOptions *options, GError **error)
{
  NbAcpiConfig acpi;
  nb_acpi_config_init(&acpi, m->n_cpus, pci_mmio64_base(m), 64 * NB_GiB);
  g_autofree unsigned *slots = g_new0(unsigned, m->virtio_blks->len + 1);
  for (guint i = 0; i < m->virtio_blks->len; i++)
    slots[i] = nb_virtio_blk_pci_device(g_ptr_array_index(m->virtio_blks, i))->slot;
  NbMachineFirmwareBoot boot = {
    .order = (const char *const *)options->boot_order,
    .disk_slots = slots,
    .n_disks = m->virtio_blks->len,
    .cdrom_slot = m->virtio_scsi ? (int)nb_virtio_scsi_pci_device(m->virtio_scsi)->slot : -1,
    .has_display = m->vga_bios,
  };
  return nb_machine_firmware_attach(m->firmware, m->vm, m->n_cpus, &acpi, &boot, on_no_boot, m,
                                    error);
}

NbMachine *
nb_machine_new(const NbVmOptions *options, NbConsoleIo *console, GError **error)
{
  g_autofree struct kvm_cpuid2 *supported = NULL;
  NbMachine *m = g_new0(NbMachine, 1);
  g_mutex_init(&m->state_lock);
  g_cond_init(&m->pause_cond);
  m->n_cpus = options->cpus;
  m->console = console;
  m->blocks = g_ptr_array_new();
  m->virtio_blks = g_ptr_array_new();
  m->nats = g_ptr_array_new();
  m->virtio_nets = g_ptr_array_new();

  m->mem = nb_guest_memory_new(options->memory, error);
  if (m->mem == NULL)
    goto fail;
  if (options->firmware == NB_FIRMWARE_BIOS)
    m->firmware = nb_machine_firmware_new(options, m->mem, error);
  if (options->firmware == NB_FIRMWARE_BIOS ? m->firmware == NULL : !load_linux(m, options, error))
    goto fail;
  m->vm = nb_vm_new(m->mem, error);
  if (m->vm == NULL)
    goto fail;

  supported = nb_cpuid_get_supported(nb_vm_kvm_fd(m->vm), error);
  if (supported == NULL)
    goto fail;
  for (unsigned i = 0; i < m->n_cpus; i++) {
    m->vcpus[i] = nb_vcpu_new(m->vm, i, m->n_cpus, supported, error);
    if (m->vcpus[i] == NULL)
      goto fail;
  }
  /* Firmware starts where KVM leaves a new vCPU: reset state, real mode at
   * F000:FFF0 for the BSP, the APs waiting for INIT/SIPI. */
  if ((!m->firmware &&
       !nb_vcpu_setup_linux64(m->vcpus[0], m->boot.entry, m->boot.boot_params, error)) ||
      !add_devices(m, error) || !add_virtio_devices(m, options, error) ||
      (options->graphics && !add_graphics(m, error)) ||
      (m->firmware && !attach_firmware(m, options, error)))
    goto fail;
  nb_console_io_set_input(m->console, on_console_input, m);
  return m;

fail:
  nb_machine_free(m);
  return NULL;
}

void
nb_machine_free(NbMachine *m)
{
  if (m == NULL)
    return;
  if (m->console)
    nb_console_io_set_input(m->console, NULL, NULL);
  for (unsigned i = 0; i < m->n_cpus; i++)
    nb_vcpu_free(m->vcpus[i]);
  for (guint i = 0; i < m->virtio_blks->len; i++)
    nb_virtio_blk_free(g_ptr_array_index(m->virtio_blks, i));
  g_ptr_array_free(m->virtio_blks, TRUE);
  nb_virtio_scsi_free(m->virtio_scsi);   /* before the image it reads */
  for (guint i = 0; i < m->blocks->len; i++)
    nb_block_close(g_ptr_array_index(m->blocks, i));
  g_ptr_array_free(m->blocks, TRUE);
  nb_virtio_rng_free(m->virtio_rng);
  nb_virtio_console_free(m->virtio_console);
  nb_virtio_input_free(m->keyboard);
  nb_virtio_input_free(m->tablet);
  nb_bochs_display_free(m->display);
  /* Each NIC detaches from its engine before the engine goes. */
  for (guint i = 0; i < m->virtio_nets->len; i++) {
    NbVirtioNet *net = g_ptr_array_index(m->virtio_nets, i);
    NbVirtioNetStats s;
    nb_virtio_net_get_stats(net, &s);
    g_debug("network card %u: tx %" G_GUINT64_FORMAT " frames (bad header %" G_GUINT64_FORMAT
            ", size %" G_GUINT64_FORMAT ", buffer %" G_GUINT64_FORMAT "), rx %" G_GUINT64_FORMAT
            " frames (no buffer %" G_GUINT64_FORMAT ", bad buffer %" G_GUINT64_FORMAT ", down %"
            G_GUINT64_FORMAT ", bad offload %" G_GUINT64_FORMAT ")",
            i + 1, s.tx_frames, s.tx_bad_header, s.tx_bad_size, s.tx_bad_buffer, s.rx_frames,
            s.rx_no_buffer, s.rx_bad_buffer, s.rx_down, s.rx_bad_offload);
    nb_virtio_net_free(net);
  }
  g_ptr_array_free(m->virtio_nets, TRUE);
  for (guint i = 0; i < m->nats->len; i++) {
    NbNat *nat = g_ptr_array_index(m->nats, i);
    NbNatStats s;
    nb_nat_get_stats(nat, &s);
    g_debug("NAT %u: from the guest %" G_GUINT64_FORMAT ", to it %" G_GUINT64_FORMAT
            " (no room %" G_GUINT64_FORMAT "); dropped: eth %" G_GUINT64_FORMAT ", ip %"
            G_GUINT64_FORMAT ", tcp %" G_GUINT64_FORMAT ", udp %" G_GUINT64_FORMAT ", policy %"
            G_GUINT64_FORMAT, i + 1, s.rx_frames, s.tx_frames, s.tx_dropped, s.drop_eth,
            s.drop_ip, s.drop_tcp, s.drop_udp, s.drop_policy);
    nb_nat_free(nat);
  }
  g_ptr_array_free(m->nats, TRUE);
  nb_pvpanic_free(m->pvpanic);
  nb_pci_bus_free(m->pci);
  nb_acpi_pm_free(m->acpi_pm);
  nb_rtc_free(m->rtc);
  nb_i8042_free(m->i8042);
  nb_serial_free(m->serial);
  nb_vm_free(m->vm);
  nb_machine_firmware_free(m->firmware);   /* after the VM that mapped it */
  nb_guest_memory_free(m->mem);
  g_free(m->exit_detail);
  g_cond_clear(&m->pause_cond);
  g_mutex_clear(&m->state_lock);
  g_free(m);
}

typedef struct {
  NbMachine *machine;
  NbVcpu *vcpu;
} VcpuThreadArgs;

static gpointer
vcpu_thread_main(gpointer data)
{
  VcpuThreadArgs *args = data;
  NbMachine *m = args->machine;
  NbVcpu *vcpu = args->vcpu;
  g_free(args);

  nb_vcpu_bind_thread(vcpu);
  while (!is_stopping(m)) {
    if (nb_machine_park_if_paused(m))
      continue;
    g_autofree char *detail = NULL;
    switch (nb_vcpu_run(vcpu, &detail)) {
    case NB_VCPU_EVENT_NONE:
      break;
    case NB_VCPU_EVENT_INTERRUPTED:
      nb_vcpu_clear_kick(vcpu);
      break;
    case NB_VCPU_EVENT_RESET:
      nb_machine_stop(m, NB_MACHINE_EXIT_RESET, detail);
      break;
    case NB_VCPU_EVENT_POWEROFF:
      nb_machine_stop(m, NB_MACHINE_EXIT_POWEROFF, NULL);
      break;
    case NB_VCPU_EVENT_CRASH:
      nb_machine_stop(m, NB_MACHINE_EXIT_CRASH, detail);
      break;
    }
  }
  return NULL;
}

static gboolean
flush_coalesced(gpointer data)
{
  NbMachine *m = data;
  nb_vm_flush_coalesced(m->vm);
  return G_SOURCE_CONTINUE;
}

NbMachineExit
nb_machine_run(NbMachine *m, char **detail)
{
  nb_vcpu_init_signals();
  m->loop = g_main_loop_new(NULL, FALSE);
  for (unsigned i = 0; i < m->n_cpus; i++) {
    VcpuThreadArgs *args = g_new0(VcpuThreadArgs, 1);
    args->machine = m;
    args->vcpu = m->vcpus[i];
    g_autofree char *name = g_strdup_printf("vcpu%u", i);
    m->threads[i] = g_thread_new(name, vcpu_thread_main, args);
  }
  /* Writes KVM coalesced reach their devices at the vCPUs' next exits; this
   * covers a guest that makes none for a while (halted in the firmware, the
   * only user so far). */
  guint flush = m->firmware ? g_timeout_add(200, flush_coalesced, m) : 0;
  g_main_loop_run(m->loop);
  if (flush)
    g_source_remove(flush);
  for (unsigned i = 0; i < m->n_cpus; i++) {
    nb_vcpu_kick(m->vcpus[i]);
    g_thread_join(m->threads[i]);
    m->threads[i] = NULL;
  }
  nb_vm_flush_coalesced(m->vm);
  g_clear_pointer(&m->loop, g_main_loop_unref);
  if (m->exit == NB_MACHINE_EXIT_CRASH || g_getenv("NESTBOX_DEBUG_VCPU")) {
    for (unsigned i = 0; i < m->n_cpus; i++) {
      g_autofree char *state = nb_vcpu_describe_state(m->vcpus[i]);
      g_message("%s", state);
    }
  }
  if (detail)
    *detail = g_strdup(m->exit_detail);
  return m->exit;
}

/* Pause and resume ----------------------------------------------------------
 * A pause kicks every vCPU out of KVM_RUN and holds its thread on pause_cond
 * until resume (or stop); nb_machine_pause returns once all of them are
 * parked, so a paused guest really runs no instruction. */

bool
nb_machine_park_if_paused(NbMachine *m)
{
  g_mutex_lock(&m->state_lock);
  bool parked = false;
  if (m->pause_requested && !m->stopping) {
    parked = true;
    m->parked++;
    g_cond_broadcast(&m->pause_cond);
    while (m->pause_requested && !m->stopping)
      g_cond_wait(&m->pause_cond, &m->state_lock);
    m->parked--;
  }
  g_mutex_unlock(&m->state_lock);
  return parked;
}

bool
nb_machine_pause(NbMachine *m, GError **error)
{
  g_mutex_lock(&m->state_lock);
  m->pause_requested = true;
  g_mutex_unlock(&m->state_lock);
  for (unsigned i = 0; i < m->n_cpus; i++)
    nb_vcpu_kick(m->vcpus[i]);

  gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
  g_mutex_lock(&m->state_lock);
  bool ok = true;
  while (m->parked < m->n_cpus && !m->stopping) {
    if (!g_cond_wait_until(&m->pause_cond, &m->state_lock, deadline)) {
      ok = m->parked == m->n_cpus;
      break;
    }
  }
  unsigned parked = m->parked;
  if (!ok || m->stopping) {
    m->pause_requested = false;
    g_cond_broadcast(&m->pause_cond);
  }
  bool stopping = m->stopping;
  g_mutex_unlock(&m->state_lock);
  if (stopping) {
    g_set_error_literal(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED, "the machine is stopping");
    return false;
  }
  if (!ok) {
    g_set_error(error, NB_MACHINE_ERROR, NB_MACHINE_ERROR_FAILED,
                "only %u of %u vCPUs stopped within 5 s; the machine goes on running", parked, m->n_cpus);
    return false;
  }
  return true;
}

void
nb_machine_resume(NbMachine *m)
{
  g_mutex_lock(&m->state_lock);
  m->pause_requested = false;
  g_cond_broadcast(&m->pause_cond);
  g_mutex_unlock(&m->state_lock);
}

bool
nb_machine_press_power_button(NbMachine *m)
{
  return nb_acpi_pm_press_power_button(m->acpi_pm);
}

GPtrArray *
nb_machine_nat_engines(NbMachine *m)
{
  return m->nats;
}
