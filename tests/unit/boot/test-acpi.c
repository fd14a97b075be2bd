/* ACPI tables as an OS finds them: from the RSDP through the XSDT to each
 * table, checksums and lengths right, the MADT listing every CPU, the FADT
 * pointing at the PM block, and iasl (ACPICA, what Linux's ACPI code is
 * built from) disassembling every table without complaint. */
#include "boot/acpi.h"
#include "boot/boot-layout.h"
#include "boot/linux-loader.h"
#include "hw/acpi-pm.h"
#include "kvm/memory-map.h"

#include <glib/gstdio.h>
#include <string.h>

#define BASE NB_BOOT_ACPI_ADDR

typedef struct {
  GBytes *blob;
  const uint8_t *data;
  gsize len;
  uint64_t base;
} Tables;

static uint64_t
le(const uint8_t *p, unsigned bytes)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < bytes; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void
tables_build(Tables *t, unsigned n_cpus, uint64_t base)
{
  NbAcpiConfig cfg;
  nb_acpi_config_init(&cfg, n_cpus, 8 * NB_GiB, 32 * NB_GiB);
  g_autoptr(GError) error = NULL;
  uint64_t rsdp = 0;
  t->blob = nb_acpi_build(&cfg, base, &rsdp, &error);
  g_assert_no_error(error);
  g_assert_cmphex(rsdp, ==, base);
  t->data = g_bytes_get_data(t->blob, &t->len);
  t->base = base;
}

/* The table at guest address gpa, checked for bounds and checksum. */
static const uint8_t *
table_at(const Tables *t, uint64_t gpa, const char *sig)
{
  g_assert_cmpuint(gpa, >=, t->base);
  uint64_t off = gpa - t->base;
  g_assert_cmpuint(off + 36, <=, t->len);
  const uint8_t *tab = t->data + off;
  g_assert_cmpmem(tab, 4, sig, 4);
  uint32_t len = (uint32_t)le(tab + 4, 4);
  g_assert_cmpuint(len, >=, 36);
  g_assert_cmpuint(off + len, <=, t->len);
  g_assert_cmpuint(nb_acpi_checksum(tab, len), ==, 0);
  g_assert_cmpmem(tab + 10, 6, "NESTBX", 6);
  return tab;
}

/* Every table the XSDT lists, found by signature. */
static const uint8_t *
find_table(const Tables *t, const char *sig)
{
  const uint8_t *rsdp = t->data;
  const uint8_t *xsdt = table_at(t, le(rsdp + 24, 8), "XSDT");
  uint32_t len = (uint32_t)le(xsdt + 4, 4);
  for (uint32_t off = 36; off + 8 <= len; off += 8) {
    uint64_t gpa = le(xsdt + off, 8);
    if (memcmp(t->data + (gpa - t->base), sig, 4) == 0)
      return table_at(t, gpa, sig);
  }
  return NULL;
}

static void
check_rsdp(const Tables *t)
{
  const uint8_t *rsdp = t->data;
  g_assert_cmpmem(rsdp, 8, "RSD PTR ", 8);
  g_assert_cmpuint(rsdp[15], ==, 2);
  g_assert_cmpuint(nb_acpi_checksum(rsdp, 20), ==, 0);
  g_assert_cmpuint(le(rsdp + 20, 4), ==, 36);
  g_assert_cmpuint(nb_acpi_checksum(rsdp, 36), ==, 0);
  g_assert_cmpuint(t->base % 16, ==, 0);

  /* RSDT and XSDT list the same tables. */
  const uint8_t *rsdt = table_at(t, le(rsdp + 16, 4), "RSDT");
  const uint8_t *xsdt = table_at(t, le(rsdp + 24, 8), "XSDT");
  uint32_t n = ((uint32_t)le(rsdt + 4, 4) - 36) / 4;
  g_assert_cmpuint(n, ==, 2);
  g_assert_cmpuint(le(xsdt + 4, 4), ==, 36 + 8 * n);
  for (uint32_t i = 0; i < n; i++)
    g_assert_cmphex(le(rsdt + 36 + 4 * i, 4), ==, le(xsdt + 36 + 8 * i, 8));
}

static void
check_fadt(const Tables *t)
{
  const uint8_t *fadt = find_table(t, "FACP");
  g_assert_nonnull(fadt);
  g_assert_cmpuint(le(fadt + 4, 4), ==, 276);
  g_assert_cmpuint(fadt[8], ==, 6);
  g_assert_cmpuint(le(fadt + 46, 2), ==, NB_ACPI_SCI_IRQ);
  g_assert_cmpuint(le(fadt + 48, 4), ==, 0);                 /* no SMI_CMD: ACPI always on */
  g_assert_cmphex(le(fadt + 56, 4), ==, NB_ACPI_PM_BASE + NB_ACPI_PM1_STS);
  g_assert_cmphex(le(fadt + 64, 4), ==, NB_ACPI_PM_BASE + NB_ACPI_PM1_CNT);
  g_assert_cmphex(le(fadt + 76, 4), ==, NB_ACPI_PM_BASE + NB_ACPI_PM_TMR);
  g_assert_cmphex(le(fadt + 80, 4), ==, NB_ACPI_PM_BASE + NB_ACPI_GPE0_STS);
  g_assert_cmpuint(fadt[88], ==, 4);
  g_assert_cmpuint(fadt[89], ==, 2);
  g_assert_cmpuint(fadt[91], ==, 4);
  g_assert_cmpuint(fadt[92], ==, NB_ACPI_GPE0_LEN);
  g_assert_cmphex(le(fadt + 109, 2), ==, 0x3);               /* legacy devices, 8042 */
  uint32_t flags = (uint32_t)le(fadt + 112, 4);
  g_assert_true(flags & (1u << 10));                         /* RESET_REG_SUP */
  g_assert_false(flags & (1u << 4));                         /* fixed power button */
  g_assert_false(flags & (1u << 20));                        /* not hardware-reduced */
  g_assert_false(flags & (1u << 8));                         /* 24-bit timer */
  /* Reset register: one byte on an I/O port, the value the PM device wants. */
  g_assert_cmpuint(fadt[116], ==, 1);
  g_assert_cmpuint(fadt[117], ==, 8);
  g_assert_cmphex(le(fadt + 120, 8), ==, NB_ACPI_PM_BASE + NB_ACPI_RESET_REG);
  g_assert_cmphex(fadt[128], ==, NB_ACPI_RESET_VALUE);
  /* 64-bit fields agree with the 32-bit ones. */
  g_assert_cmphex(le(fadt + 140, 8), ==, le(fadt + 40, 4));
  g_assert_cmphex(le(fadt + 148 + 4, 8), ==, NB_ACPI_PM_BASE);
  g_assert_cmpuint(fadt[148 + 1], ==, 32);
  g_assert_cmphex(le(fadt + 172 + 4, 8), ==, NB_ACPI_PM_BASE + NB_ACPI_PM1_CNT);
  g_assert_cmpuint(fadt[172 + 1], ==, 16);
  g_assert_cmphex(le(fadt + 208 + 4, 8), ==, NB_ACPI_PM_BASE + NB_ACPI_PM_TMR);

  /* FACS: 64-byte aligned, the size the spec fixes. */
  uint64_t facs = le(fadt + 36, 4);
  g_assert_cmpuint(facs % 64, ==, 0);
  const uint8_t *f = t->data + (facs - t->base);
  g_assert_cmpmem(f, 4, "FACS", 4);
  g_assert_cmpuint(le(f + 4, 4), ==, 64);

  const uint8_t *dsdt = table_at(t, le(fadt + 40, 4), "DSDT");
  g_assert_cmpuint(dsdt[8], ==, 2);
}

static void
check_madt(const Tables *t, unsigned n_cpus)
{
  const uint8_t *madt = find_table(t, "APIC");
  g_assert_nonnull(madt);
  g_assert_cmphex(le(madt + 36, 4), ==, NB_MEM_LAPIC_BASE);
  g_assert_cmphex(le(madt + 40, 4), ==, 1);
  uint32_t len = (uint32_t)le(madt + 4, 4);
  unsigned lapics = 0, ioapics = 0, overrides = 0, nmis = 0;
  for (uint32_t off = 44; off < len;) {
    uint8_t type = madt[off], elen = madt[off + 1];
    g_assert_cmpuint(elen, >=, 2);
    g_assert_cmpuint(off + elen, <=, len);
    switch (type) {
    case 0:
      g_assert_cmpuint(elen, ==, 8);
      g_assert_cmpuint(madt[off + 2], ==, lapics);   /* processor UID */
      g_assert_cmpuint(madt[off + 3], ==, lapics);   /* APIC ID = vCPU index */
      g_assert_cmpuint(le(madt + off + 4, 4), ==, 1);
      lapics++;
      break;
    case 1:
      g_assert_cmpuint(elen, ==, 12);
      g_assert_cmphex(le(madt + off + 4, 4), ==, NB_MEM_IOAPIC_BASE);
      g_assert_cmpuint(le(madt + off + 8, 4), ==, 0);
      ioapics++;
      break;
    case 2:
      g_assert_cmpuint(elen, ==, 10);
      if (madt[off + 3] == 0) {
        g_assert_cmpuint(le(madt + off + 4, 4), ==, 2);
      } else {
        g_assert_cmpuint(madt[off + 3], ==, NB_ACPI_SCI_IRQ);
        g_assert_cmpuint(le(madt + off + 4, 4), ==, NB_ACPI_SCI_IRQ);
        g_assert_cmphex(le(madt + off + 8, 2), ==, 0xd);
      }
      overrides++;
      break;
    case 4:
      g_assert_cmpuint(elen, ==, 6);
      g_assert_cmpuint(madt[off + 5], ==, 1);
      nmis++;
      break;
    default:
      g_assert_not_reached();
    }
    off += elen;
  }
  g_assert_cmpuint(lapics, ==, n_cpus);
  g_assert_cmpuint(ioapics, ==, 1);
  g_assert_cmpuint(overrides, ==, 2);
  g_assert_cmpuint(nmis, ==, 1);
}

static void
test_tables(gconstpointer data)
{
  unsigned n_cpus = GPOINTER_TO_UINT(data);
  Tables t;
  tables_build(&t, n_cpus, BASE);
  check_rsdp(&t);
  check_fadt(&t);
  check_madt(&t, n_cpus);
  g_assert_cmpuint(t.len, <=, NB_BOOT_ACPI_END - NB_BOOT_ACPI_ADDR);
  g_bytes_unref(t.blob);
}

static void
test_other_base(void)
{
  /* Pointers follow the base the blob is built for (firmware places it). */
  Tables t;
  tables_build(&t, 4, 0x7fe0000);
  check_rsdp(&t);
  check_fadt(&t);
  check_madt(&t, 4);
  g_bytes_unref(t.blob);
}

static void
test_bad_config(void)
{
  NbAcpiConfig cfg;
  uint64_t rsdp = 7;
  static const unsigned bad_cpus[] = { 0, NB_ACPI_MAX_CPUS + 1 };
  for (gsize i = 0; i < G_N_ELEMENTS(bad_cpus); i++) {
    g_autoptr(GError) error = NULL;
    nb_acpi_config_init(&cfg, bad_cpus[i], 8 * NB_GiB, NB_GiB);
    g_assert_null(nb_acpi_build(&cfg, BASE, &rsdp, &error));
    g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "between 1 and 64"));
  }
  g_autoptr(GError) error = NULL;
  nb_acpi_config_init(&cfg, 1, 8 * NB_GiB, NB_GiB);
  g_assert_null(nb_acpi_build(&cfg, BASE + 8, &rsdp, &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_INVALID);
  g_clear_error(&error);
  cfg.pci_mmio32_end = cfg.pci_mmio32_base;
  g_assert_null(nb_acpi_build(&cfg, BASE, &rsdp, &error));
  g_assert_error(error, NB_BOOT_ERROR, NB_BOOT_ERROR_INVALID);
  g_assert_cmpuint(rsdp, ==, 7);
}

static void
test_write_to_memory(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(64 * NB_MiB, &error);
  NbAcpiConfig cfg;
  nb_acpi_config_init(&cfg, 2, 8 * NB_GiB, NB_GiB);
  uint64_t rsdp = 0;
  g_assert_true(nb_acpi_install(mem, &cfg, &rsdp, &error));
  g_assert_no_error(error);
  g_assert_cmphex(rsdp, ==, NB_BOOT_ACPI_ADDR);

  /* An OS without acpi_rsdp_addr scans the BIOS area on 16-byte steps. */
  uint64_t found = 0;
  for (uint64_t a = 0xe0000; a < 0x100000 && !found; a += 16) {
    const uint8_t *p = nb_guest_memory_ptr(mem, a, 20);
    if (memcmp(p, "RSD PTR ", 8) == 0 && nb_acpi_checksum(p, 20) == 0)
      found = a;
  }
  g_assert_cmphex(found, ==, rsdp);
}

/* Runs iasl -d on one table in dir; returns its disassembly. */
static char *
disassemble(const char *dir, const char *name, const uint8_t *table)
{
  uint32_t len = (uint32_t)le(table + 4, 4);
  g_autofree char *file = g_strdup_printf("%s.dat", name);
  g_autofree char *path = g_build_filename(dir, file, NULL);
  g_autoptr(GError) error = NULL;
  g_assert_true(g_file_set_contents(path, (const char *)table, len, &error));

  const char *argv[] = { "iasl", "-d", file, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                             &err, &status, &error));
  g_assert_no_error(error);
  if (!g_spawn_check_wait_status(status, NULL) || strstr(out, "rror") || strstr(err, "rror") ||
      strstr(out, "arning") || strstr(err, "arning"))
    g_error("iasl -d %s failed:\n%s\n%s", name, out, err);

  g_autofree char *dsl_file = g_strdup_printf("%s.dsl", name);
  g_autofree char *dsl_path = g_build_filename(dir, dsl_file, NULL);
  char *dsl = NULL;
  g_assert_true(g_file_get_contents(dsl_path, &dsl, NULL, &error));
  return dsl;
}

/* Compiles a disassembled DSDT back: ACPICA's compiler checks more (names,
 * resource descriptors, reserved method types) than the disassembler. */
static void
recompile(const char *dir, const char *name)
{
  g_autofree char *file = g_strdup_printf("%s.dsl", name);
  const char *argv[] = { "iasl", "-p", "recompiled", file, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  g_autoptr(GError) error = NULL;
  g_assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                             &err, &status, &error));
  if (!g_spawn_check_wait_status(status, NULL) || !strstr(out, "0 Errors, 0 Warnings"))
    g_error("iasl could not compile the disassembled %s back:\n%s\n%s", name, out, err);
  if (g_test_verbose())
    g_printerr("%s", out);
}

static void
test_iasl(gconstpointer data)
{
  g_autofree char *iasl = g_find_program_in_path("iasl");
  if (iasl == NULL) {
    /* Every other test here has run; this one needs ACPICA. */
    g_printerr("iasl not found: install acpica-tools (build-aux/install-deps.sh)\n");
    exit(77);
  }
  unsigned n_cpus = GPOINTER_TO_UINT(data);
  Tables t;
  tables_build(&t, n_cpus, BASE);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("nestbox-acpi-XXXXXX", &error);
  g_assert_no_error(error);

  const uint8_t *fadt = find_table(&t, "FACP");
  const uint8_t *dsdt = t.data + (le(fadt + 40, 4) - t.base);
  g_autofree char *fadt_dsl = disassemble(dir, "facp", fadt);
  g_autofree char *madt_dsl = disassemble(dir, "apic", find_table(&t, "APIC"));
  g_autofree char *dsdt_dsl = disassemble(dir, "dsdt", dsdt);
  g_autofree char *xsdt_dsl = disassemble(dir, "xsdt", t.data + (le(t.data + 24, 8) - t.base));
  g_autofree char *rsdt_dsl = disassemble(dir, "rsdt", t.data + (le(t.data + 16, 4) - t.base));
  recompile(dir, "dsdt");

  /* What the disassembly says is what we meant. */
  g_assert_nonnull(strstr(fadt_dsl, "Reset Register Supported (V2) : 1"));
  g_assert_nonnull(strstr(fadt_dsl, "Hardware Reduced (V5) : 0"));
  g_assert_nonnull(strstr(fadt_dsl, "Control Method Power Button (V1) : 0"));
  g_assert_nonnull(strstr(fadt_dsl, "SCI Interrupt : 0009"));
  unsigned lapics = 0;
  for (const char *p = madt_dsl; (p = strstr(p, "Subtable Type : 00 [Processor Local APIC]")); p++)
    lapics++;
  g_assert_cmpuint(lapics, ==, n_cpus);
  g_assert_nonnull(strstr(dsdt_dsl, "Name (_S5, Package (0x04)"));
  g_assert_nonnull(strstr(dsdt_dsl, "EisaId (\"PNP0A03\")"));
  g_assert_nonnull(strstr(dsdt_dsl, "EisaId (\"PNP0501\")"));
  g_assert_nonnull(strstr(dsdt_dsl, "Name (_PRT, Package (0x80)"));
  g_assert_nonnull(strstr(dsdt_dsl, "IRQNoFlags ()\n                    {4}"));
  /* The root tables point at the others by their signatures. */
  g_assert_nonnull(strstr(xsdt_dsl, "XSDT"));
  g_assert_nonnull(strstr(rsdt_dsl, "RSDT"));
  g_autofree char *last_cpu = g_strdup_printf("Device (C%03X)", n_cpus - 1);
  g_assert_nonnull(strstr(dsdt_dsl, last_cpu));

  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  for (const char *f; (f = g_dir_read_name(d));) {
    g_autofree char *p = g_build_filename(dir, f, NULL);
    g_unlink(p);
  }
  g_rmdir(dir);
  g_bytes_unref(t.blob);
}

static void
test_intx_routing(void)
{
  /* Neighbouring slots' INTA land on different lines; all in 16..23. */
  g_assert_cmpuint(nb_acpi_pci_intx_gsi(0, 0), ==, 16);
  g_assert_cmpuint(nb_acpi_pci_intx_gsi(1, 0), ==, 17);
  g_assert_cmpuint(nb_acpi_pci_intx_gsi(1, 3), ==, 20);
  g_assert_cmpuint(nb_acpi_pci_intx_gsi(7, 1), ==, 16);
  g_assert_cmpuint(nb_acpi_pci_intx_gsi(31, 3), ==, 18);
  for (unsigned slot = 0; slot < 32; slot++)
    for (unsigned pin = 0; pin < 4; pin++) {
      unsigned gsi = nb_acpi_pci_intx_gsi(slot, pin);
      g_assert_cmpuint(gsi, >=, 16);
      g_assert_cmpuint(gsi, <=, 23);
    }
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_data_func("/acpi/tables/1-cpu", GUINT_TO_POINTER(1), test_tables);
  g_test_add_data_func("/acpi/tables/2-cpus", GUINT_TO_POINTER(2), test_tables);
  g_test_add_data_func("/acpi/tables/64-cpus", GUINT_TO_POINTER(64), test_tables);
  g_test_add_func("/acpi/other-base", test_other_base);
  g_test_add_func("/acpi/bad-config", test_bad_config);
  g_test_add_func("/acpi/write-to-memory", test_write_to_memory);
  g_test_add_func("/acpi/intx-routing", test_intx_routing);
  g_test_add_data_func("/acpi/iasl/1-cpu", GUINT_TO_POINTER(1), test_iasl);
  g_test_add_data_func("/acpi/iasl/64-cpus", GUINT_TO_POINTER(64), test_iasl);
  return g_test_run();
}
