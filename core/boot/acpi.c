#include "boot/acpi.h"
#include "boot/aml.h"
#include "boot/boot-layout.h"
#include "boot/linux-loader.h"
#include "hw/acpi-pm.h"
#include "kvm/memory-map.h"

#include <string.h>

#define OEM_ID        "NESTBX"     /* six characters */
#define OEM_REVISION  1
#define CREATOR_ID    "NBOX"
#define CREATOR_REV   1

#define HEADER_SIZE   36
#define RSDP_SIZE     36
#define FACS_SIZE     64
#define FADT_SIZE     276          /* revision 6 */
#define FADT_REVISION 6

/* FADT flags (ACPI 6.5, table 5.10). */
#define FADT_WBINVD          (1u << 0)
#define FADT_PROC_C1         (1u << 2)
#define FADT_SLP_BUTTON      (1u << 5)   /* set: no sleep button */
#define FADT_FIX_RTC         (1u << 6)   /* set: no RTC wake status in PM1 */
#define FADT_RESET_REG_SUP   (1u << 10)
/* IA-PC boot architecture flags. */
#define BOOT_ARCH_LEGACY_DEVICES (1u << 0)
#define BOOT_ARCH_8042           (1u << 1)

/* MADT. */
#define MADT_PCAT_COMPAT     (1u << 0)
#define MADT_LOCAL_APIC      0
#define MADT_IO_APIC         1
#define MADT_INT_OVERRIDE    2
#define MADT_LOCAL_APIC_NMI  4
#define MADT_LAPIC_ENABLED   (1u << 0)
#define MPS_ACTIVE_HIGH      0x1
#define MPS_LEVEL            0xc

#define GAS_SYSTEM_IO        1
#define GAS_ACCESS_BYTE      1
#define GAS_ACCESS_DWORD     3

/* The ISA IRQs of the legacy devices, as the machine wires them. */
#define IRQ_TIMER   0
#define IRQ_KBD     1
#define IRQ_COM1    4
#define IRQ_RTC     8
#define IRQ_MOUSE   12

/* Appending little-endian fields to the blob, and patching them later. */
static void
put(GByteArray *b, uint64_t value, unsigned bytes)
{
  g_assert(bytes <= 8);
  for (unsigned i = 0; i < bytes; i++) {
    uint8_t v = (uint8_t)(value >> (8 * i));
    g_byte_array_append(b, &v, 1);
  }
}

static void
put_bytes(GByteArray *b, const char *s, size_t len)
{
  g_byte_array_append(b, (const guint8 *)s, (guint)len);
}

static void
patch(GByteArray *b, size_t off, uint64_t value, unsigned bytes)
{
  for (unsigned i = 0; i < bytes; i++)
    b->data[off + i] = (uint8_t)(value >> (8 * i));
}

static void
pad_to(GByteArray *b, uint64_t base, unsigned align)
{
  while ((base + b->len) % align != 0)
    put(b, 0, 1);
}

uint8_t
nb_acpi_checksum(const uint8_t *data, size_t len)
{
  uint8_t sum = 0;
  for (size_t i = 0; i < len; i++)
    sum = (uint8_t)(sum + data[i]);
  return (uint8_t)(0 - sum);
}

/* A system description header with its length and checksum left to
 * table_end(); returns the table's offset in the blob. */
static size_t
table_begin(GByteArray *b, uint64_t base, const char *sig, uint8_t revision,
            const char *table_id)
{
  pad_to(b, base, 8);
  size_t off = b->len;
  put_bytes(b, sig, 4);
  put(b, 0, 4);                          /* length */
  put(b, revision, 1);
  put(b, 0, 1);                          /* checksum */
  put_bytes(b, OEM_ID, 6);
  char id[9];
  g_snprintf(id, sizeof id, "%-8s", table_id);
  put_bytes(b, id, 8);
  put(b, OEM_REVISION, 4);
  put_bytes(b, CREATOR_ID, 4);
  put(b, CREATOR_REV, 4);
  return off;
}

static void
table_end(GByteArray *b, size_t off)
{
  patch(b, off + 4, b->len - off, 4);
  b->data[off + 9] = 0;
  b->data[off + 9] = nb_acpi_checksum(b->data + off, b->len - off);
}

/* Generic Address Structure for a register on I/O ports. */
static void
put_gas_io(GByteArray *b, uint64_t port, unsigned bit_width, unsigned access)
{
  put(b, port ? GAS_SYSTEM_IO : 0, 1);
  put(b, port ? bit_width : 0, 1);
  put(b, 0, 1);
  put(b, port ? access : 0, 1);
  put(b, port, 8);
}

static size_t
build_facs(GByteArray *b, uint64_t base)
{
  /* OSPM finds the global lock and waking vector here; the FADT must point
   * at one whenever the machine is not hardware-reduced. */
  pad_to(b, base, 64);
  size_t off = b->len;
  put_bytes(b, "FACS", 4);
  put(b, FACS_SIZE, 4);
  put(b, 0, 4);                          /* hardware signature */
  put(b, 0, 4);                          /* firmware waking vector */
  put(b, 0, 4);                          /* global lock */
  put(b, 0, 4);                          /* flags: no S4BIOS, no 64-bit wake */
  put(b, 0, 8);                          /* X firmware waking vector */
  put(b, 2, 1);                          /* version */
  put(b, 0, 3);
  put(b, 0, 4);                          /* OSPM flags */
  for (int i = 0; i < 3; i++)
    put(b, 0, 8);                        /* reserved */
  g_assert(b->len - off == FACS_SIZE);
  return off;
}

static void
crs_begin(GByteArray **res)
{
  *res = g_byte_array_new();
}

static void
crs_end(NbAml *aml, GByteArray *res)
{
  nb_aml_name(aml, "_CRS");
  nb_aml_resource_template(aml, res);
  g_byte_array_unref(res);
}

static void
dsdt_pci_host(NbAml *aml, const NbAcpiConfig *cfg)
{
  nb_aml_device_begin(aml, "PCI0");
  nb_aml_name(aml, "_HID");
  nb_aml_eisaid(aml, "PNP0A03");
  nb_aml_name(aml, "_UID");
  nb_aml_integer(aml, 0);
  nb_aml_name(aml, "_SEG");
  nb_aml_integer(aml, 0);
  nb_aml_name(aml, "_BBN");
  nb_aml_integer(aml, 0);

  /* What the host bridge decodes: every bus number, its own config ports,
   * all other I/O ports, the VGA hole and the BAR windows. */
  GByteArray *res;
  crs_begin(&res);
  nb_aml_res_word_bus_number(res, 0, 0xff);
  nb_aml_res_io(res, 0xcf8, 0xcf8, 1, 8);
  nb_aml_res_dword_io(res, 0x0000, 0x0cf7);
  nb_aml_res_dword_io(res, 0x0d00, 0xffff);
  nb_aml_res_dword_memory(res, 0xa0000, 0xbffff, true);
  nb_aml_res_dword_memory(res, (uint32_t)cfg->pci_mmio32_base,
                          (uint32_t)(cfg->pci_mmio32_end - 1), false);
  if (cfg->pci_mmio64_end > cfg->pci_mmio64_base)
    nb_aml_res_qword_memory(res, cfg->pci_mmio64_base, cfg->pci_mmio64_end - 1, true);
  crs_end(aml, res);

  /* INTx routing straight to IOAPIC inputs (source 0: a GSI, not a link
   * device), level-triggered and active-low as PCI interrupts are. */
  nb_aml_name(aml, "_PRT");
  nb_aml_package_begin(aml);
  for (unsigned slot = 0; slot < 32; slot++) {
    for (unsigned pin = 0; pin < 4; pin++) {
      nb_aml_package_begin(aml);
      nb_aml_integer(aml, (uint64_t)slot << 16 | 0xffff);   /* any function */
      nb_aml_integer(aml, pin);
      nb_aml_integer(aml, 0);
      nb_aml_integer(aml, nb_acpi_pci_intx_gsi(slot, pin));
      nb_aml_end(aml);
    }
  }
  nb_aml_end(aml);
  nb_aml_end(aml);
}

static void
dsdt_isa_device(NbAml *aml, const char *name, const char *hid, unsigned uid,
                GByteArray *res)
{
  nb_aml_device_begin(aml, name);
  nb_aml_name(aml, "_HID");
  nb_aml_eisaid(aml, hid);
  nb_aml_name(aml, "_UID");
  nb_aml_integer(aml, uid);
  crs_end(aml, res);
  nb_aml_end(aml);
}

static void
dsdt_legacy_devices(NbAml *aml, const NbAcpiConfig *cfg)
{
  GByteArray *res;

  crs_begin(&res);
  nb_aml_res_io(res, 0x3f8, 0x3f8, 1, 8);
  nb_aml_res_irq_noflags(res, IRQ_COM1);
  dsdt_isa_device(aml, "COM1", "PNP0501", 1, res);

  crs_begin(&res);
  nb_aml_res_io(res, 0x70, 0x70, 1, 2);
  nb_aml_res_irq_noflags(res, IRQ_RTC);
  dsdt_isa_device(aml, "RTC", "PNP0B00", 0, res);

  crs_begin(&res);
  nb_aml_res_io(res, 0x60, 0x60, 1, 1);
  nb_aml_res_io(res, 0x64, 0x64, 1, 1);
  nb_aml_res_irq_noflags(res, IRQ_KBD);
  dsdt_isa_device(aml, "KBD", "PNP0303", 0, res);

  crs_begin(&res);
  nb_aml_res_irq_noflags(res, IRQ_MOUSE);
  dsdt_isa_device(aml, "MOU", "PNP0F13", 0, res);

  /* The PM block's ports, claimed so that nothing else is given them. */
  crs_begin(&res);
  nb_aml_res_io(res, cfg->pm_base, cfg->pm_base, 1, NB_ACPI_PM_SIZE);
  dsdt_isa_device(aml, "PMIO", "PNP0C02", 1, res);
}

static void
dsdt_cpus(NbAml *aml, const NbAcpiConfig *cfg)
{
  /* Processor devices; _UID matches the MADT's processor UID. */
  for (unsigned i = 0; i < cfg->n_cpus; i++) {
    char name[5];
    g_snprintf(name, sizeof name, "C%03X", i);
    nb_aml_device_begin(aml, name);
    nb_aml_name(aml, "_HID");
    nb_aml_string(aml, "ACPI0007");
    nb_aml_name(aml, "_UID");
    nb_aml_integer(aml, i);
    nb_aml_method_begin(aml, "_STA", 0, false);
    nb_aml_return(aml);
    nb_aml_integer(aml, 0x0f);   /* present, enabled, shown, working */
    nb_aml_end(aml);
    nb_aml_end(aml);
  }
}

static void
dsdt_sleep_state(NbAml *aml, const char *name, unsigned slp_typ)
{
  /* SLP_TYPa, SLP_TYPb, two reserved. */
  nb_aml_name(aml, name);
  nb_aml_package_begin(aml);
  nb_aml_integer(aml, slp_typ);
  nb_aml_integer(aml, slp_typ);
  nb_aml_integer(aml, 0);
  nb_aml_integer(aml, 0);
  nb_aml_end(aml);
}

static bool
build_dsdt(GByteArray *b, uint64_t base, const NbAcpiConfig *cfg, size_t *off_out,
           GError **error)
{
  g_autoptr(NbAml) aml = nb_aml_new();
  dsdt_sleep_state(aml, "_S0", NB_ACPI_SLP_TYP_S0);
  dsdt_sleep_state(aml, "_S5", NB_ACPI_SLP_TYP_S5);
  nb_aml_scope_begin(aml, "\\_SB");
  dsdt_pci_host(aml, cfg);
  dsdt_legacy_devices(aml, cfg);
  dsdt_cpus(aml, cfg);
  nb_aml_end(aml);
  g_autoptr(GError) local = NULL;
  g_autoptr(GBytes) code = nb_aml_finish(aml, &local);
  if (code == NULL) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_INVALID,
                "cannot build the ACPI DSDT (a bug in Nestbox): %s", local->message);
    return false;
  }
  /* Revision 2: integers in AML are 64 bits wide. */
  size_t off = table_begin(b, base, "DSDT", 2, "NBDSDT");
  gsize len;
  const guint8 *data = g_bytes_get_data(code, &len);
  g_byte_array_append(b, data, (guint)len);
  table_end(b, off);
  *off_out = off;
  return true;
}

static size_t
build_fadt(GByteArray *b, uint64_t base, const NbAcpiConfig *cfg, uint64_t facs, uint64_t dsdt)
{
  uint16_t pm = cfg->pm_base;
  size_t off = table_begin(b, base, "FACP", FADT_REVISION, "NBFACP");
  put(b, facs, 4);                       /* FIRMWARE_CTRL */
  put(b, dsdt, 4);                       /* DSDT */
  put(b, 0, 1);
  put(b, 1, 1);                          /* preferred PM profile: desktop */
  put(b, cfg->sci_irq, 2);
  put(b, 0, 4);                          /* SMI_CMD: none, ACPI mode is always on */
  put(b, 0, 4);                          /* ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT */
  put(b, pm + NB_ACPI_PM1_STS, 4);       /* PM1a_EVT_BLK */
  put(b, 0, 4);
  put(b, pm + NB_ACPI_PM1_CNT, 4);       /* PM1a_CNT_BLK */
  put(b, 0, 4);
  put(b, 0, 4);                          /* PM2_CNT_BLK */
  put(b, pm + NB_ACPI_PM_TMR, 4);        /* PM_TMR_BLK */
  put(b, pm + NB_ACPI_GPE0_STS, 4);      /* GPE0_BLK */
  put(b, 0, 4);
  put(b, NB_ACPI_PM1_EVT_LEN, 1);
  put(b, NB_ACPI_PM1_CNT_LEN, 1);
  put(b, 0, 1);
  put(b, NB_ACPI_PM_TMR_LEN, 1);
  put(b, NB_ACPI_GPE0_LEN, 1);
  put(b, 0, 1);                          /* GPE1_BLK_LEN */
  put(b, 0, 1);                          /* GPE1_BASE */
  put(b, 0, 1);                          /* CST_CNT */
  put(b, 101, 2);                        /* P_LVL2_LAT > 100: no C2 */
  put(b, 1001, 2);                       /* P_LVL3_LAT > 1000: no C3 */
  put(b, 0, 4);                          /* FLUSH_SIZE, FLUSH_STRIDE */
  put(b, 0, 4);                          /* DUTY_OFFSET, DUTY_WIDTH, DAY_ALRM, MON_ALRM */
  put(b, 0, 1);                          /* CENTURY: not in CMOS */
  put(b, BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042, 2);
  put(b, 0, 1);
  /* PWR_BUTTON clear: the power button is the fixed-feature one. */
  put(b, FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC | FADT_RESET_REG_SUP, 4);
  put_gas_io(b, pm + NB_ACPI_RESET_REG, 8, GAS_ACCESS_BYTE);
  put(b, NB_ACPI_RESET_VALUE, 1);
  put(b, 0, 2);                          /* ARM_BOOT_ARCH */
  put(b, 0, 1);                          /* minor version */
  put(b, 0, 8);                          /* X_FIRMWARE_CTRL: FIRMWARE_CTRL is used */
  put(b, dsdt, 8);                       /* X_DSDT */
  put_gas_io(b, pm + NB_ACPI_PM1_STS, NB_ACPI_PM1_EVT_LEN * 8, 0);
  put_gas_io(b, 0, 0, 0);
  put_gas_io(b, pm + NB_ACPI_PM1_CNT, NB_ACPI_PM1_CNT_LEN * 8, 0);
  put_gas_io(b, 0, 0, 0);
  put_gas_io(b, 0, 0, 0);                /* X_PM2_CNT_BLK */
  put_gas_io(b, pm + NB_ACPI_PM_TMR, NB_ACPI_PM_TMR_LEN * 8, GAS_ACCESS_DWORD);
  put_gas_io(b, pm + NB_ACPI_GPE0_STS, NB_ACPI_GPE0_LEN * 8, 0);
  put_gas_io(b, 0, 0, 0);                /* X_GPE1_BLK */
  put_gas_io(b, 0, 0, 0);                /* SLEEP_CONTROL_REG: hardware-reduced only */
  put_gas_io(b, 0, 0, 0);                /* SLEEP_STATUS_REG */
  put_bytes(b, "NESTBOX\0", 8);          /* hypervisor vendor identity */
  table_end(b, off);
  g_assert(b->len - off == FADT_SIZE);
  return off;
}

static size_t
build_madt(GByteArray *b, uint64_t base, const NbAcpiConfig *cfg)
{
  size_t off = table_begin(b, base, "APIC", 5, "NBAPIC");
  put(b, NB_MEM_LAPIC_BASE, 4);
  put(b, MADT_PCAT_COMPAT, 4);          /* dual 8259s present: mask them */

  for (unsigned i = 0; i < cfg->n_cpus; i++) {
    put(b, MADT_LOCAL_APIC, 1);
    put(b, 8, 1);
    put(b, i, 1);                        /* processor UID, the DSDT's _UID */
    put(b, i, 1);                        /* APIC ID */
    put(b, MADT_LAPIC_ENABLED, 4);
  }

  put(b, MADT_IO_APIC, 1);
  put(b, 12, 1);
  put(b, cfg->ioapic_id, 1);
  put(b, 0, 1);
  put(b, NB_MEM_IOAPIC_BASE, 4);
  put(b, 0, 4);                          /* GSI base */

  /* The PIT's IRQ 0 is wired to IOAPIC input 2, as on every PC. */
  put(b, MADT_INT_OVERRIDE, 1);
  put(b, 10, 1);
  put(b, 0, 1);                          /* ISA */
  put(b, IRQ_TIMER, 1);
  put(b, 2, 4);
  put(b, 0, 2);                          /* conforms to the bus */

  /* The SCI is level-triggered; active-high since the IOAPIC sees it as
   * KVM_IRQ_LINE drives it. */
  put(b, MADT_INT_OVERRIDE, 1);
  put(b, 10, 1);
  put(b, 0, 1);
  put(b, cfg->sci_irq, 1);
  put(b, cfg->sci_irq, 4);
  put(b, MPS_LEVEL | MPS_ACTIVE_HIGH, 2);

  /* NMI on LINT1 of every local APIC. */
  put(b, MADT_LOCAL_APIC_NMI, 1);
  put(b, 6, 1);
  put(b, 0xff, 1);                       /* all processors */
  put(b, 0, 2);
  put(b, 1, 1);                          /* LINT1 */
  table_end(b, off);
  return off;
}

static size_t
build_sdt(GByteArray *b, uint64_t base, const char *sig, const char *id, unsigned width,
          const uint64_t *tables, unsigned n)
{
  size_t off = table_begin(b, base, sig, 1, id);
  for (unsigned i = 0; i < n; i++)
    put(b, tables[i], width);
  table_end(b, off);
  return off;
}

static bool
check_config(const NbAcpiConfig *cfg, uint64_t base, GError **error)
{
  const char *why = NULL;
  if (cfg->n_cpus < 1 || cfg->n_cpus > NB_ACPI_MAX_CPUS)
    why = "the CPU count must be between 1 and 64";
  else if (cfg->sci_irq >= 16 || cfg->sci_irq == 0 || cfg->sci_irq == 2)
    why = "the SCI must be an ISA IRQ other than 0 and 2";
  else if (cfg->pm_base == 0 || cfg->pm_base > 0x10000 - NB_ACPI_PM_SIZE)
    why = "the ACPI PM block must lie in the I/O port space";
  else if (cfg->pci_mmio32_base >= cfg->pci_mmio32_end || cfg->pci_mmio32_end > 4 * NB_GiB)
    why = "the 32-bit PCI window must be a non-empty range below 4 GiB";
  else if (cfg->pci_mmio64_base > cfg->pci_mmio64_end)
    why = "the 64-bit PCI window ends before it starts";
  else if (base % 16 != 0 || base >= 4 * NB_GiB)
    why = "the tables must start 16-byte aligned below 4 GiB";
  if (why) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_INVALID,
                "cannot build the ACPI tables: %s", why);
    return false;
  }
  return true;
}

GBytes *
nb_acpi_build(const NbAcpiConfig *cfg, uint64_t base, uint64_t *rsdp_addr, GError **error)
{
  if (!check_config(cfg, base, error))
    return NULL;

  g_autoptr(GByteArray) b = g_byte_array_new();
  /* The RSDP first, where a legacy scan of the BIOS area looks. */
  g_byte_array_set_size(b, RSDP_SIZE);
  memset(b->data, 0, RSDP_SIZE);

  size_t facs = build_facs(b, base);
  size_t dsdt;
  if (!build_dsdt(b, base, cfg, &dsdt, error))
    return NULL;
  size_t fadt = build_fadt(b, base, cfg, base + facs, base + dsdt);
  size_t madt = build_madt(b, base, cfg);
  const uint64_t tables[] = { base + fadt, base + madt };
  size_t xsdt = build_sdt(b, base, "XSDT", "NBXSDT", 8, tables, G_N_ELEMENTS(tables));
  size_t rsdt = build_sdt(b, base, "RSDT", "NBRSDT", 4, tables, G_N_ELEMENTS(tables));

  if (base + b->len > 4 * NB_GiB) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_INVALID,
                "cannot build the ACPI tables: they would cross 4 GiB");
    return NULL;
  }

  /* RSDP revision 2: a checksum over the ACPI 1.0 part, another over all. */
  memcpy(b->data, "RSD PTR ", 8);
  memcpy(b->data + 9, OEM_ID, 6);
  b->data[15] = 2;
  patch(b, 16, base + rsdt, 4);
  patch(b, 20, RSDP_SIZE, 4);
  patch(b, 24, base + xsdt, 8);
  b->data[8] = nb_acpi_checksum(b->data, 20);
  b->data[32] = nb_acpi_checksum(b->data, RSDP_SIZE);

  *rsdp_addr = base;
  return g_byte_array_free_to_bytes(g_steal_pointer(&b));
}

void
nb_acpi_config_init(NbAcpiConfig *cfg, unsigned n_cpus, uint64_t mmio64_base,
                    uint64_t mmio64_size)
{
  *cfg = (NbAcpiConfig){
    .n_cpus = n_cpus,
    .pm_base = NB_ACPI_PM_BASE,
    .sci_irq = NB_ACPI_SCI_IRQ,
    .ioapic_id = 0,
    .pci_mmio32_base = NB_MEM_PCI_MMIO_BASE,
    .pci_mmio32_end = NB_MEM_PCI_MMIO_END,
    .pci_mmio64_base = mmio64_base,
    .pci_mmio64_end = mmio64_base + mmio64_size,
  };
}

bool
nb_acpi_install(NbGuestMemory *mem, const NbAcpiConfig *cfg, uint64_t *rsdp_addr, GError **error)
{
  uint64_t rsdp;
  g_autoptr(GBytes) tables = nb_acpi_build(cfg, NB_BOOT_ACPI_ADDR, &rsdp, error);
  if (tables == NULL)
    return false;
  gsize len;
  const void *data = g_bytes_get_data(tables, &len);
  if (len > NB_BOOT_ACPI_END - NB_BOOT_ACPI_ADDR) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NO_ROOM,
                "the ACPI tables (%zu bytes) do not fit in the BIOS area (%" G_GUINT64_FORMAT
                " bytes) — use fewer CPUs", len, NB_BOOT_ACPI_END - NB_BOOT_ACPI_ADDR);
    return false;
  }
  if (!nb_guest_memory_write(mem, NB_BOOT_ACPI_ADDR, data, len)) {
    g_set_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_NO_ROOM,
                "cannot write the ACPI tables: the machine has no RAM at 0x%" G_GINT64_MODIFIER
                "x", NB_BOOT_ACPI_ADDR);
    return false;
  }
  *rsdp_addr = rsdp;
  return true;
}
