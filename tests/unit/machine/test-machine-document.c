/* machine.ini as a user writes it: every refusal names file, line and key. */
#include <glib/gstdio.h>
#include <unistd.h>

#include "machine/machine-document.h"
#include "net/nat.h"
#include "machine/machine-registry.h"

static const char *good =
  "[machine]\nname=web\nuuid=123e4567-e89b-12d3-a456-426614174000\n"
  "[cpu]\ncount=4\n[memory]\nsize=2G\n"
  "[boot]\nfirmware=direct\nkernel=bzImage\ninitrd=/abs/initrd\ncmdline=console=ttyS0\n"
  "[disk:0]\npath=root.img\nformat=qcow2\nreadonly=false\nserial=ROOT\n"
  "[net:0]\nmode=nat\nhostfwd=tcp::2222-:22;\n"
  "[display]\ntype=none\n[serial]\nmode=file\n";

static void test_parse_good(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbMachineDocument) doc = nb_machine_document_parse("/m/web", "web.ini", good, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(doc->name, ==, "web");
  g_assert_cmpuint(doc->cpus, ==, 4);
  g_assert_cmpuint(doc->memory, ==, 2ull << 30);
  g_assert_cmpuint(doc->disks->len, ==, 1);
  NbVmOptions o;
  g_assert_true(nb_machine_document_to_vm_options(doc, &o, &error));
  g_assert_cmpstr(o.kernel, ==, "/m/web/bzImage");
  g_assert_cmpstr(o.initrd, ==, "/abs/initrd");
  g_assert_cmpstr(g_array_index(o.disks, NbDiskSpec, 0).path, ==, "/m/web/root.img");
  g_assert_cmpstr(o.nets[0], ==, "nat,hostfwd=tcp::2222-:22");
  g_assert_cmpstr(o.serial_path, ==, "/m/web/serial.log");
  nb_vm_options_clear(&o);

  /* What we write reads back the same. */
  g_autofree char *data = nb_machine_document_to_data(doc);
  g_autoptr(NbMachineDocument) again = nb_machine_document_parse("/m/web", "x", data, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(again->memory, ==, doc->memory);
  g_assert_cmpstr(again->uuid, ==, doc->uuid);
}

/* [boot] firmware=bios: no kernel needed, the firmware log in the folder. */
static void test_firmware_bios(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbMachineDocument) doc = nb_machine_document_parse(
    "/m/inst", "m.ini", "[machine]\nname=inst\n[boot]\nfirmware=bios\ncdrom=debian.iso\norder=cdrom,disk\n[disk:0]\npath=os.qcow2\n", &error);
  g_assert_no_error(error);
  g_assert_true(doc->firmware_bios);
  NbVmOptions o;
  g_assert_true(nb_machine_document_to_vm_options(doc, &o, &error));
  g_assert_cmpint(o.firmware, ==, NB_FIRMWARE_BIOS);
  g_assert_null(o.kernel);
  g_assert_cmpstr(o.firmware_log, ==, "/m/inst/firmware.log");
  g_assert_cmpstr(o.cdrom, ==, "/m/inst/debian.iso");
  g_assert_cmpuint(g_strv_length(o.boot_order), ==, 2);
  g_assert_cmpstr(o.boot_order[0], ==, "cdrom");
  nb_vm_options_clear(&o);
  g_autofree char *data = nb_machine_document_to_data(doc);
  g_assert_nonnull(strstr(data, "firmware=bios"));
  g_assert_nonnull(strstr(data, "order=cdrom,disk"));

  /* A kernel with firmware boot goes through fw_cfg. */
  g_autoptr(NbMachineDocument) both = nb_machine_document_parse(
    "/m/b", "m.ini", "[machine]\nname=b\n[boot]\nfirmware=bios\nkernel=vmlinuz\n", &error);
  g_assert_no_error(error);
  g_assert_true(nb_machine_document_to_vm_options(both, &o, &error));
  g_assert_cmpstr(o.kernel, ==, "/m/b/vmlinuz");
  nb_vm_options_clear(&o);
}

typedef struct {
  const char *text;
  const char *expect; /* substring of the message */
} Bad;

static void test_parse_bad(void)
{
  static const Bad cases[] = {
    { "[machine]\nname=a\n[cpu]\ncount=0\n", "m.ini:4: [cpu] count: '0'" },
    { "[machine]\nname=a\n[cpu]\ncount=65\n", "m.ini:4: [cpu] count" },
    { "[machine]\nname=a\n\n[cpu]\ncores=2\n", "m.ini:5: [cpu] cores: unknown key" },
    { "[machine]\nname=a\n[memory]\nsize=63M\n", "m.ini:4: [memory] size: '63M'" },
    { "[machine]\nname=a\n[memory]\nsize=65M\n", "multiple of 2M" },
    { "[machine]\nname=a\n[memory]\nsize=lots\n", "m.ini:4: [memory] size" },
    { "[machine]\nname=a\n[boot]\nfirmware=uefi\n", "m.ini:4: [boot] firmware: 'uefi' is not supported yet" },
    { "[machine]\nname=a\n[boot]\norder=cdrom,net\n", "m.ini:4: [boot] order: 'net' is not a boot device" },
    { "[machine]\nname=a\n[disk:0]\nformat=raw\n", "m.ini:3: [disk:0] path: missing" },
    { "[machine]\nname=a\n[disk:0]\npath=x\nformat=vhd\n", "m.ini:5: [disk:0] format" },
    { "[machine]\nname=a\n[disk:0]\npath=x\nreadonly=maybe\n", "m.ini:5: [disk:0] readonly" },
    { "[machine]\nname=a\n[disk:x]\npath=x\n", "m.ini:3: [disk:x]: unknown group" },
    { "[machine]\nname=a\n[net:0]\nmode=bridged\n", "m.ini:4: [net:0] mode" },
    { "[machine]\nname=a\n[net:0]\nnet=10.0.2.0/99\n", "m.ini:4: [net:0] net" },
    { "[machine]\nname=a\n[net:0]\nnet6=fd00:1::/48\n", "m.ini:4: [net:0] net6: --net option net6=fd00:1::/48 is not valid" },
    { "[machine]\nname=a\n[net:0]\nnet6=fe80::/64\n", "m.ini:4: [net:0] net6" },
    { "[machine]\nname=a\n[net:0]\nmode=nat\nnet6=fd00:1::/64,restrict=on\n", "m.ini:5: [net:0] net6: a value may not hold a comma" },
    { "[machine]\nname=a\n[net:0]\nipv6=maybe\n", "m.ini:4: [net:0] ipv6: --net option ipv6=maybe is not valid: expected on or off" },
    { "[machine]\nname=a\n[display]\ntype=spice\n", "m.ini:4: [display] type" },
    { "[machine]\nname=a\n[display]\ntype=vnc\nlisten=127.0.0.1:100\n", "m.ini:5: [display] listen" },
    { "[machine]\nname=a\n[display]\ntype=vnc\nlisten=:1,websocket=9\n", "m.ini:5: [display] listen" },
    { "[machine]\nname=a\n[display]\ntype=vnc\ncolour=yes\n", "m.ini:5: [display] colour: unknown key" },
    { "[machine]\nname=a\n[serial]\nmode=tty\n", "m.ini:4: [serial] mode" },
    { "[machine]\nname=a\nuuid=nope\n", "m.ini:3: [machine] uuid" },
    { "[machine]\ndescription=x\n", "m.ini:1: [machine] name: missing" },
    { "[cpu]\ncount=1\n", "[machine] name: missing" },
    { "[machine]\nname=a\n[sound]\n", "m.ini:3: [sound]: unknown group" },
    { "not an ini\n", "m.ini: not a valid machine document" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(NbMachineDocument) doc = nb_machine_document_parse("/m", "m.ini", cases[i].text, &error);
    g_assert_null(doc);
    g_assert_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID);
    if (!strstr(error->message, cases[i].expect))
      g_error("case %zu: '%s' lacks '%s'", i, error->message, cases[i].expect);
  }
}

/* [net:N] net6= and ipv6= reach the NAT engine as --net's options do. */
static void test_net_ipv6(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbMachineDocument) doc = nb_machine_document_parse("/m/v6", "v6.ini",
      "[machine]\nname=v6\n[boot]\nkernel=vmlinuz\n"
      "[net:0]\nmode=nat\nnet6=fd00:aa:bb:cc::/64\nhostfwd=tcp:[::1]:2222-:22\n"
      "[net:1]\nmode=nat\nipv6=off\n", &error);
  g_assert_no_error(error);
  NbVmOptions o = { 0 };
  g_assert_true(nb_machine_document_to_vm_options(doc, &o, &error));
  g_assert_cmpstr(o.nets[0], ==, "nat,net6=fd00:aa:bb:cc::/64,hostfwd=tcp:[::1]:2222-:22");
  g_assert_cmpstr(o.nets[1], ==, "nat,ipv6=off");
  g_autoptr(NbNatConfig) c0 = nb_nat_config_parse(o.nets[0], &error);
  g_assert_no_error(error);
  static const uint8_t want[16] = { 0xfd, 0x00, 0x00, 0xaa, 0x00, 0xbb, 0x00, 0xcc };
  g_assert_true(c0->ipv6);
  g_assert_cmpmem(c0->net6, 16, want, 16);
  g_autoptr(NbNatConfig) c1 = nb_nat_config_parse(o.nets[1], &error);
  g_assert_no_error(error);
  g_assert_false(c1->ipv6);
  nb_vm_options_clear(&o);
  /* Saved and read back, the keys stay. */
  g_autofree char *text = nb_machine_document_to_data(doc);
  g_assert_nonnull(strstr(text, "net6=fd00:aa:bb:cc::/64"));
  g_assert_nonnull(strstr(text, "ipv6=off"));
  g_autoptr(NbMachineDocument) again = nb_machine_document_parse("/m/v6", "v6.ini", text, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(((NbMachineNet *)again->nets->pdata[0])->net6, ==, "fd00:aa:bb:cc::/64");
  g_assert_cmpstr(((NbMachineNet *)again->nets->pdata[1])->ipv6, ==, "off");
  /* nestboxctl set takes them the same way. */
  g_assert_true(nb_machine_document_set(again, "net:1.net6=fd00:1:2:3::/64", &error));
  g_assert_no_error(error);
  g_assert_cmpstr(((NbMachineNet *)again->nets->pdata[1])->net6, ==, "fd00:1:2:3::/64");
  g_assert_false(nb_machine_document_set(again, "net:0.ipv6=sometimes", &error));
  g_assert_nonnull(strstr(error->message, "[net:0] ipv6"));
  g_clear_error(&error);
  g_assert_cmpstr(((NbMachineNet *)again->nets->pdata[0])->ipv6, ==, NULL);
}

static void test_display_vnc(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbMachineDocument) doc = nb_machine_document_parse("/m/desk", "desk.ini",
      "[machine]\nname=desk\n[boot]\nkernel=vmlinuz\n[display]\ntype=vnc\nlisten=0.0.0.0:3\n"
      "password-file=vnc.pw\nkeymap=fr\nshare=takeover\n", &error);
  g_assert_no_error(error);
  NbVmOptions o = { 0 };
  g_assert_true(nb_machine_document_to_vm_options(doc, &o, &error));
  g_assert_true(o.graphics);
  g_assert_nonnull(o.vnc);
  g_assert_cmpstr(o.vnc->listen, ==, "0.0.0.0");
  g_assert_cmpuint(o.vnc->display, ==, 3);
  g_assert_cmpstr(o.vnc->password_file, ==, "/m/desk/vnc.pw");
  g_assert_cmpstr(o.vnc->keymap, ==, "fr");
  g_assert_cmpint(o.vnc->share, ==, NB_VNC_SHARE_TAKEOVER);
  nb_vm_options_clear(&o);
  /* Saved and read back, it is the same. */
  g_autofree char *text = nb_machine_document_to_data(doc);
  g_assert_nonnull(strstr(text, "type=vnc"));
  g_assert_nonnull(strstr(text, "listen=0.0.0.0:3"));
  g_assert_nonnull(strstr(text, "keymap=fr"));
  g_assert_nonnull(strstr(text, "share=takeover"));
  /* A policy that does not exist is refused with its line. */
  g_autoptr(NbMachineDocument) bad = nb_machine_document_parse("/m/desk", "desk.ini",
      "[machine]\nname=desk\n[display]\ntype=vnc\nshare=exclusive\n", &error);
  g_assert_null(bad);
  g_assert_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "desk.ini:5: [display] share: 'exclusive' is not a sharing policy"));
}

static void test_display_sdl(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbMachineDocument) doc = nb_machine_document_parse("/m/desk", "desk.ini",
      "[machine]\nname=desk\n[boot]\nkernel=vmlinuz\n[display]\ntype=sdl\n", &error);
  g_assert_no_error(error);
  NbVmOptions o = { 0 };
  g_assert_true(nb_machine_document_to_vm_options(doc, &o, &error));
  g_assert_true(o.graphics);
  g_assert_true(o.display_sdl);
  g_assert_null(o.vnc);
  nb_vm_options_clear(&o);
  g_autofree char *text = nb_machine_document_to_data(doc);
  g_assert_nonnull(strstr(text, "type=sdl"));
}

static void test_set(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(NbMachineDocument) doc = nb_machine_document_parse("/m/web", "web.ini", good, &error);
  g_assert_true(nb_machine_document_set(doc, "cpu.count=8", &error));
  g_assert_true(nb_machine_document_set(doc, "disk:0.readonly=true", &error));
  g_assert_no_error(error);
  g_assert_cmpuint(doc->cpus, ==, 8);
  g_assert_true(((NbMachineDisk *)doc->disks->pdata[0])->read_only);
  g_assert_false(nb_machine_document_set(doc, "memory.size=1K", &error));
  g_assert_nonnull(strstr(error->message, "[memory] size"));
  g_clear_error(&error);
  g_assert_false(nb_machine_document_set(doc, "cpucount4", &error));
  g_clear_error(&error);
  g_assert_false(nb_machine_document_set(doc, "cpu.threads=2", &error));
  g_assert_nonnull(strstr(error->message, "unknown key"));
  g_clear_error(&error);
  g_assert_cmpuint(doc->cpus, ==, 8);
}

static void test_atomic_write(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp("nb-doc-XXXXXX", &error);
  g_autofree char *path = g_build_filename(dir, "machine.ini", NULL);
  g_assert_true(nb_machine_write_atomic(path, "old", 3, &error));
  g_assert_true(nb_machine_write_atomic(path, "new!", 4, &error));
  g_autofree char *text = NULL;
  g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
  g_assert_cmpstr(text, ==, "new!");
  /* Renaming onto a directory fails: the old file must stay and no temp file remain. */
  g_autofree char *blocker = g_build_filename(dir, "sub", NULL);
  g_mkdir(blocker, 0700);
  g_assert_false(nb_machine_write_atomic(blocker, "x", 1, &error));
  g_assert_nonnull(error);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  unsigned n = 0;
  for (const char *e; (e = g_dir_read_name(d));)
    n++;
  g_assert_cmpuint(n, ==, 2);
  g_rmdir(blocker);
  g_unlink(path);
  g_rmdir(dir);
}

static void test_names(void)
{
  static const char *bad[] = { "", "   ", "a/b", "..", "a..b", ".hidden", "a\nb", "tab\there",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    g_assert_false(nb_machine_name_check(bad[i], &error));
    g_assert_nonnull(strstr(error->message, "cannot be a machine name"));
  }
  g_assert_true(nb_machine_name_check("web-01.test", NULL));
  g_assert_true(nb_machine_name_check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL));
}

static void test_registry(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *home = g_dir_make_tmp("nb-reg-XXXXXX", &error);
  g_setenv("XDG_DATA_HOME", home, TRUE);
  g_autoptr(NbMachineDocument) doc = nb_machine_document_new(NULL, "alpha");
  g_assert_true(nb_machine_registry_create(doc, &error));
  g_assert_no_error(error);
  g_assert_false(nb_machine_registry_create(doc, &error));
  g_assert_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_EXISTS);
  g_clear_error(&error);
  g_auto(GStrv) names = nb_machine_registry_list(&error);
  g_assert_cmpuint(g_strv_length(names), ==, 1);
  g_assert_cmpstr(names[0], ==, "alpha");
  g_autoptr(NbMachineDocument) found = nb_machine_registry_find("alpha", &error);
  g_assert_no_error(error);
  g_assert_true(g_uuid_string_is_valid(found->uuid));
  g_assert_null(nb_machine_registry_find("beta", &error));
  g_assert_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_NOT_FOUND);
  g_clear_error(&error);

  /* A held run lock: seen by a separate open file, and delete is refused. */
  int fd = nb_machine_lock_acquire(found->dir, &error);
  g_assert_cmpint(fd, >=, 0);
  g_assert_true(nb_machine_lock_is_held(found->dir));
  g_assert_cmpint(nb_machine_lock_acquire(found->dir, &error), ==, -1);
  g_assert_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_BUSY);
  g_clear_error(&error);
  g_assert_false(nb_machine_registry_delete("alpha", &error));
  g_assert_error(error, NB_MACHINE_DOC_ERROR, NB_MACHINE_DOC_ERROR_BUSY);
  g_clear_error(&error);
  nb_machine_lock_release(fd);
  g_assert_false(nb_machine_lock_is_held(found->dir));
  g_assert_true(nb_machine_registry_delete("alpha", &error));
  g_assert_no_error(error);
  g_assert_false(g_file_test(found->dir, G_FILE_TEST_EXISTS));
  g_autofree char *root = g_build_filename(home, "nestbox", "machines", NULL);
  g_rmdir(root);
  g_autofree char *nb = g_build_filename(home, "nestbox", NULL);
  g_rmdir(nb);
  g_rmdir(home);
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/machine-document/parse-good", test_parse_good);
  g_test_add_func("/machine-document/parse-bad", test_parse_bad);
  g_test_add_func("/machine-document/firmware-bios", test_firmware_bios);
  g_test_add_func("/machine-document/set", test_set);
  g_test_add_func("/machine-document/net-ipv6", test_net_ipv6);
  g_test_add_func("/machine-document/display-vnc", test_display_vnc);
  g_test_add_func("/machine-document/display-sdl", test_display_sdl);
  g_test_add_func("/machine-document/atomic-write", test_atomic_write);
  g_test_add_func("/machine-document/names", test_names);
  g_test_add_func("/machine-document/registry", test_registry);
  return g_test_run();
}
