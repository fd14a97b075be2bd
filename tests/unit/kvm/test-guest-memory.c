#include "kvm/guest-memory.h"
#include "kvm/memory-map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
test_layout_small(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(128 * NB_MiB, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(mem->n_regions, ==, 1);
  g_assert_cmpuint(mem->regions[0].gpa, ==, 0);
  g_assert_cmpuint(mem->regions[0].size, ==, 128 * NB_MiB);
  g_assert_cmpuint(nb_guest_memory_end(mem), ==, 128 * NB_MiB);
}

static void
test_layout_crosses_hole(void)
{
  g_autoptr(GError) error = NULL;
  /* MAP_NORESERVE: 5 GiB of address space costs nothing until touched. */
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new(5 * NB_GiB, &error);
  if (mem == NULL && g_error_matches(error, NB_GUEST_MEMORY_ERROR, NB_GUEST_MEMORY_ERROR_TOO_LARGE)) {
    g_test_skip("host cannot back 5 GiB");
    return;
  }
  g_assert_no_error(error);
  g_assert_cmpuint(mem->n_regions, ==, 2);
  g_assert_cmpuint(mem->regions[0].size, ==, 3 * NB_GiB);
  g_assert_cmpuint(mem->regions[1].gpa, ==, 4 * NB_GiB);
  g_assert_cmpuint(mem->regions[1].size, ==, 2 * NB_GiB);
  g_assert_cmpuint(nb_guest_memory_end(mem), ==, 6 * NB_GiB);
  /* The hole is not RAM. */
  g_assert_null(nb_guest_memory_ptr(mem, 3 * NB_GiB, 1));
  g_assert_null(nb_guest_memory_ptr(mem, NB_MEM_LAPIC_BASE, 4));
  g_assert_nonnull(nb_guest_memory_ptr(mem, 4 * NB_GiB, 4096));
  g_assert_nonnull(nb_guest_memory_ptr(mem, 3 * NB_GiB - 4096, 4096));
}

static void
test_ranges_checked_whole(void)
{
  g_autoptr(GError) error = NULL;
  /* 64 MiB low, then 64 MiB at 256 MiB: a region end next to a hole. */
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new_split(128 * NB_MiB, 64 * NB_MiB,
                                                           256 * NB_MiB, &error);
  g_assert_no_error(error);
  uint64_t end = 64 * NB_MiB;
  g_assert_nonnull(nb_guest_memory_ptr(mem, end - 16, 16));
  g_assert_null(nb_guest_memory_ptr(mem, end - 16, 17));       /* runs past the end */
  g_assert_null(nb_guest_memory_ptr(mem, end, 1));             /* starts in the hole */
  g_assert_null(nb_guest_memory_ptr(mem, 0, 0));               /* empty */
  g_assert_null(nb_guest_memory_ptr(mem, UINT64_MAX - 3, 8));  /* wraps */
  g_assert_null(nb_guest_memory_ptr(mem, 16, UINT64_MAX));     /* huge */
  /* A copy across the hole is refused, not split. */
  uint8_t buf[32] = { 0 };
  g_assert_false(nb_guest_memory_read(mem, end - 16, buf, sizeof buf));
  g_assert_true(nb_guest_memory_write(mem, 256 * NB_MiB, buf, sizeof buf));
  g_assert_true(nb_guest_memory_read(mem, 256 * NB_MiB, buf, sizeof buf));
}

static void
test_refuses_bad_sizes(void)
{
  g_autoptr(GError) error = NULL;
  g_assert_null(nb_guest_memory_new(1 * NB_MiB, &error));
  g_assert_error(error, NB_GUEST_MEMORY_ERROR, NB_GUEST_MEMORY_ERROR_TOO_SMALL);
  g_clear_error(&error);
  g_assert_null(nb_guest_memory_new(UINT64_C(1) << 50, &error));
  g_assert_error(error, NB_GUEST_MEMORY_ERROR, NB_GUEST_MEMORY_ERROR_TOO_LARGE);
  g_assert_nonnull(strstr(error->message, "choose less memory"));
}

/* The mapping's lines in /proc/self/smaps: its header and the fields after
 * it, up to the next mapping's header. */
static char *
smaps_entry(const void *start)
{
  g_autofree char *smaps = NULL;
  if (!g_file_get_contents("/proc/self/smaps", &smaps, NULL, NULL))
    return NULL;
  g_autofree char *prefix = g_strdup_printf("%" G_GINTPTR_MODIFIER "x-", (guintptr)start);
  GString *entry = NULL;
  g_auto(GStrv) lines = g_strsplit(smaps, "\n", -1);
  for (char **l = lines; *l; l++) {
    bool header = g_ascii_isxdigit((*l)[0]) && strchr(*l, '-') && !strchr(*l, ':');
    if (entry && header)
      break;
    if (entry)
      g_string_append_printf(entry, "%s\n", *l);
    else if (g_str_has_prefix(*l, prefix))
      entry = g_string_append_c(g_string_new(*l), '\n');
  }
  return entry ? g_string_free(entry, FALSE) : NULL;
}

static void
test_backing_takes_huge_pages(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbGuestMemory) mem = nb_guest_memory_new_split(64 * NB_MiB, 32 * NB_MiB,
                                                           256 * NB_MiB, &error);
  g_assert_no_error(error);
  /* Guest-physical and host addresses agree modulo 2 MiB, in every region. */
  g_assert_cmpuint((guintptr)mem->mapping % NB_GUEST_MEMORY_HUGE_PAGE, ==, 0);
  for (unsigned i = 0; i < mem->n_regions; i++)
    g_assert_cmpuint(((guintptr)mem->regions[i].host - mem->regions[i].gpa) %
                     NB_GUEST_MEMORY_HUGE_PAGE, ==, 0);
  /* Private anonymous memory: a header with no file name, "p" for private. */
  g_autofree char *entry = smaps_entry(mem->mapping);
  g_assert_nonnull(entry);
  g_autofree char *header = g_strndup(entry, strcspn(entry, "\n"));
  char perms[8] = "";
  unsigned long inode = 1;
  int path_at = 0;
  g_assert_cmpint(sscanf(header, "%*s %7s %*s %*s %lu %n", perms, &inode, &path_at), ==, 2);
  g_assert_cmpstr(perms, ==, "rw-p");
  g_assert_cmpuint(inode, ==, 0);
  g_assert_cmpstr(g_strstrip(header + path_at), ==, "");
  /* What nestbox-vm asked of the kernel: not copied into a child (dc), huge
   * pages (hg, where the kernel has them), KSM may merge it (mg, likewise). */
  const char *flags = strstr(entry, "VmFlags:");
  g_assert_nonnull(flags);
  g_autofree char *flags_line = g_strndup(flags, strcspn(flags, "\n"));
  g_autofree char *vm_flags = g_strconcat(flags_line, " ", NULL);
  g_assert_nonnull(strstr(vm_flags, " dc "));
  if (g_file_test("/sys/kernel/mm/transparent_hugepage", G_FILE_TEST_IS_DIR))
    g_assert_nonnull(strstr(vm_flags, " hg "));
  if (g_file_test("/sys/kernel/mm/ksm", G_FILE_TEST_IS_DIR))
    g_assert_nonnull(strstr(vm_flags, " mg "));
  g_autofree char *thp = NULL;
  if (!g_file_get_contents("/sys/kernel/mm/transparent_hugepage/enabled", &thp, NULL, NULL) ||
      strstr(thp, "[never]")) {
    g_test_skip("this host has transparent huge pages off");
    return;
  }
  const char *eligible = strstr(entry, "THPeligible:");
  g_assert_nonnull(eligible);
  g_assert_cmpint(atoi(eligible + strlen("THPeligible:")), ==, 1);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/guest-memory/layout-small", test_layout_small);
  g_test_add_func("/guest-memory/layout-crosses-hole", test_layout_crosses_hole);
  g_test_add_func("/guest-memory/ranges-checked-whole", test_ranges_checked_whole);
  g_test_add_func("/guest-memory/refuses-bad-sizes", test_refuses_bad_sizes);
  g_test_add_func("/guest-memory/backing-takes-huge-pages", test_backing_takes_huge_pages);
  return g_test_run();
}
