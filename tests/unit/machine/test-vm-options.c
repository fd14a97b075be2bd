#include "machine/vm-options.h"

#include <string.h>

static bool
parse(NbVmOptions *options, GError **error, ...)
{
  GPtrArray *args = g_ptr_array_new();
  g_ptr_array_add(args, (char *)"nestbox-vm");
  va_list ap;
  va_start(ap, error);
  for (const char *a = va_arg(ap, const char *); a; a = va_arg(ap, const char *))
    g_ptr_array_add(args, (char *)a);
  va_end(ap);
  g_ptr_array_add(args, NULL);
  bool ok = nb_vm_options_parse(options, (int)args->len - 1, (char **)args->pdata, error);
  g_ptr_array_free(args, TRUE);
  return ok;
}

static void
test_full(void)
{
  NbVmOptions o;
  g_autoptr(GError) error = NULL;
  g_assert_true(parse(&o, &error, "--kernel", "/k", "--initrd", "/i", "--append", "console=ttyS0 quiet",
                      "--cpus", "8", "--memory", "5G", "--serial", "file:/tmp/log", "--no-reboot",
                      "--disk", "a.img", "--disk", "b.img,readonly", "--rng", NULL));
  g_assert_no_error(error);
  g_assert_cmpstr(o.kernel, ==, "/k");
  g_assert_cmpstr(o.initrd, ==, "/i");
  g_assert_cmpstr(o.append, ==, "console=ttyS0 quiet");
  g_assert_cmpuint(o.cpus, ==, 8);
  g_assert_cmpuint(o.memory, ==, 5ull << 30);
  g_assert_cmpint(o.serial, ==, NB_SERIAL_FILE);
  g_assert_cmpstr(o.serial_path, ==, "/tmp/log");
  g_assert_true(o.no_reboot);
  g_assert_cmpuint(o.disks->len, ==, 2);
  NbDiskSpec *b = &g_array_index(o.disks, NbDiskSpec, 1);
  g_assert_cmpstr(b->path, ==, "b.img");
  g_assert_true(b->read_only);
  g_assert_true(o.rng);
  nb_vm_options_clear(&o);
}

static void
test_firmware(void)
{
  NbVmOptions o;
  g_autoptr(GError) error = NULL;
  /* Firmware boot needs no kernel; direct boot stays the default. */
  g_assert_true(parse(&o, &error, "--firmware", "bios", "--disk", "a.img", "--boot", "disk,disk",
                      "--firmware-log", "/tmp/fw.log", NULL));
  g_assert_no_error(error);
  g_assert_cmpint(o.firmware, ==, NB_FIRMWARE_BIOS);
  g_assert_null(o.kernel);
  g_assert_null(o.firmware_file);
  g_assert_cmpstr(o.firmware_log, ==, "/tmp/fw.log");
  g_assert_cmpuint(g_strv_length(o.boot_order), ==, 2);
  nb_vm_options_clear(&o);
  g_assert_true(parse(&o, &error, "--firmware", "bios", "--firmware-file", "/x/bios.bin", NULL));
  g_assert_cmpstr(o.firmware_file, ==, "/x/bios.bin");
  g_assert_null(o.vga_bios_file);
  nb_vm_options_clear(&o);
  g_assert_true(parse(&o, &error, "--firmware", "bios", "--vga-bios-file", "/x/vga.bin", NULL));
  g_assert_cmpstr(o.vga_bios_file, ==, "/x/vga.bin");
  nb_vm_options_clear(&o);
  g_assert_true(parse(&o, &error, "--kernel", "/k", NULL));
  g_assert_cmpint(o.firmware, ==, NB_FIRMWARE_DIRECT);
  nb_vm_options_clear(&o);

  static const struct { const char *args[5]; const char *expect; } bad[] = {
    { { "--firmware", "uefi", NULL }, "--firmware uefi is not understood" },
    { { "--firmware", "bios", "--boot", "floppy", NULL }, "“floppy” is not a boot device" },
    { { "--kernel", "/k", "--boot", "disk", NULL }, "--boot only applies to firmware boot" },
    { { "--kernel", "/k", "--firmware-file", "/b", NULL }, "--firmware-file only applies" },
    { { "--firmware", "direct", NULL }, "no kernel given" },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) e = NULL;
    const char *const *a = bad[i].args;
    g_assert_false(parse(&o, &e, a[0], a[1], a[2], a[3], a[4]));
    g_assert_error(e, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID);
    if (!strstr(e->message, bad[i].expect))
      g_error("case %u: “%s” does not say “%s”", i, e->message, bad[i].expect);
  }
}

static void
test_defaults(void)
{
  NbVmOptions o;
  g_assert_true(parse(&o, NULL, "--kernel", "/k", NULL));
  g_assert_cmpuint(o.cpus, ==, 1);
  g_assert_cmpuint(o.memory, ==, NB_VM_DEFAULT_MEMORY);
  g_assert_cmpint(o.serial, ==, NB_SERIAL_STDIO);
  g_assert_false(o.no_reboot);
  g_assert_null(o.initrd);
  g_assert_cmpuint(o.disks->len, ==, 0);
  g_assert_cmpuint(o.console_ports->len, ==, 0);
  nb_vm_options_clear(&o);
}

/* Each bad command line fails with a message containing the given words. */
static void
test_errors(void)
{
  static const struct { const char *args[6]; const char *expect; } cases[] = {
    { { NULL }, "no kernel given" },
    { { "--kernel", "/k", "--cpus", "0" }, "--cpus 0 is out of range" },
    { { "--kernel", "/k", "--cpus", "65" }, "from 1 to 64" },
    { { "--kernel", "/k", "--cpus", "two" }, "--cpus two" },
    { { "--kernel", "/k", "--cpus", "4x" }, "--cpus 4x" },
    { { "--kernel", "/k", "--cpus", "-1" }, "out of range" },
    { { "--kernel", "/k", "--memory", "lots" }, "is not a size" },
    { { "--kernel", "/k", "--memory", "12Q" }, "unknown unit" },
    { { "--kernel", "/k", "--memory", "16M" }, "too little" },
    { { "--kernel", "/k", "--memory", "513M" }, "2M pages" },
    { { "--kernel", "/k", "--memory", "99999999999999999999" }, "too large" },
    { { "--kernel", "/k", "--serial", "tcp:1" }, "stdio, none or file:PATH" },
    { { "--kernel", "/k", "--serial", "file:" }, "file:PATH" },
    { { "--kernel", "/k", "--console", "vga" }, "serial or hvc" },
    { { "--kernel", "/k", "--frobnicate" }, "bad option" },
    { { "--kernel", "/k", "stray" }, "unexpected argument" },
    { { "--kernel" }, "bad option" },
    { { "--kernel", "/k", "--disk", "" }, "no image path" },
    { { "--kernel", "/k", "--disk", "a.img,fast" }, "unknown setting “fast”" },
    { { "--kernel", "/k", "--disk", "a.img,format=vdi" }, "unknown format “vdi”" },
    { { "--kernel", "/k", "--disk", "a.img,serial=" }, "1 to 20 characters" },
    { { "--kernel", "/k", "--disk", "a.img,serial=123456789012345678901" }, "1 to 20 characters" },
    { { "--kernel", "/k", "--disk", "a.img,serial=a\tb" }, "printable" },
    { { "--kernel", "/k", "--console-port", "noequals" }, "NAME=SOCKET" },
    { { "--kernel", "/k", "--net", "bridge" }, "--net bridge" },
    { { "--kernel", "/k", "--net", "nat,hostfwd=tcp:1" }, "--net nat,hostfwd=tcp:1" },
    { { "--kernel", "/k", "--net", "nat,net=10.0.2.0/33" }, "--net nat,net=10.0.2.0/33" },
    { { "--kernel", "/k", "--console-port", "=/s" }, "NAME=SOCKET" },
    { { "--kernel", "/k", "--console-port", "a/b=/s" }, "letters, digits" },
    { { "--kernel", "/k", "--console-port", "a=/s", "--console-port", "a=/t" }, "already given" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    char *argv[8] = { (char *)"nestbox-vm" };
    int argc = 1;
    for (int j = 0; j < 6 && cases[i].args[j]; j++)
      argv[argc++] = (char *)cases[i].args[j];
    NbVmOptions o;
    g_autoptr(GError) error = NULL;
    g_assert_false(nb_vm_options_parse(&o, argc, argv, &error));
    g_assert_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID);
    if (strstr(error->message, cases[i].expect) == NULL)
      g_error("case %zu: “%s” does not mention “%s”", i, error->message, cases[i].expect);
  }
}

static void
test_disk_specs(void)
{
  NbDiskSpec spec;
  g_autoptr(GError) error = NULL;
  g_assert_true(nb_disk_spec_parse("/srv/a,,b.qcow2,readonly,serial=DISK-1,format=qcow2", &spec, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(spec.path, ==, "/srv/a,b.qcow2");
  g_assert_true(spec.read_only);
  g_assert_cmpstr(spec.serial, ==, "DISK-1");
  g_assert_cmpstr(spec.format, ==, "qcow2");
  nb_disk_spec_clear(&spec);
  g_assert_true(nb_disk_spec_parse("plain.img", &spec, NULL));
  g_assert_false(spec.read_only);
  g_assert_null(spec.serial);
  g_assert_null(spec.format);
  nb_disk_spec_clear(&spec);
}

static void
test_console_ports(void)
{
  NbVmOptions o;
  g_assert_true(parse(&o, NULL, "--kernel", "/k", "--console-port", "org.qemu.guest_agent.0=/run/ga.sock",
                      "--console-port", "log=/tmp/l", "--console", "hvc", NULL));
  g_assert_cmpuint(o.console_ports->len, ==, 2);
  NbConsolePortSpec *ga = &g_array_index(o.console_ports, NbConsolePortSpec, 0);
  g_assert_cmpstr(ga->name, ==, "org.qemu.guest_agent.0");
  g_assert_cmpstr(ga->socket_path, ==, "/run/ga.sock");
  g_assert_true(o.console_hvc);
  nb_vm_options_clear(&o);
}

static void
test_vnc(void)
{
  g_autoptr(GError) error = NULL;
  NbVncSpec *v = nb_vnc_spec_parse("127.0.0.1:1,password-file=/tmp/pw,websocket=5700", &error);
  g_assert_no_error(error);
  g_assert_cmpstr(v->listen, ==, "127.0.0.1");
  g_assert_cmpuint(v->display, ==, 1);
  g_assert_cmpstr(v->password_file, ==, "/tmp/pw");
  g_assert_cmpuint(v->websocket, ==, 5700);
  nb_vnc_spec_free(v);
  v = nb_vnc_spec_parse(":7", &error);
  g_assert_no_error(error);
  g_assert_cmpstr(v->listen, ==, "127.0.0.1");
  g_assert_cmpuint(v->display, ==, 7);
  g_assert_null(v->password_file);
  g_assert_cmpuint(v->websocket, ==, 0);
  nb_vnc_spec_free(v);
  v = nb_vnc_spec_parse("[::1]:0", &error);
  g_assert_no_error(error);
  g_assert_cmpstr(v->listen, ==, "::1");
  nb_vnc_spec_free(v);
  /* Sharing: RFB's rule by default, or the policy named. */
  v = nb_vnc_spec_parse(":1", &error);
  g_assert_cmpint(v->share, ==, NB_VNC_SHARE_ALLOW_EXCLUSIVE);
  nb_vnc_spec_free(v);
  const struct { const char *text, *name; NbVncShare share; } shares[] = {
    { ":1,share=allow-exclusive", "allow-exclusive", NB_VNC_SHARE_ALLOW_EXCLUSIVE },
    { ":1,share=force-shared", "force-shared", NB_VNC_SHARE_FORCE_SHARED },
    { ":1,keymap=de,share=single", "single", NB_VNC_SHARE_SINGLE },
    { ":1,share=takeover,password-file=/p", "takeover", NB_VNC_SHARE_TAKEOVER },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS(shares); i++) {
    v = nb_vnc_spec_parse(shares[i].text, &error);
    g_assert_no_error(error);
    g_assert_cmpint(v->share, ==, shares[i].share);
    g_assert_cmpstr(nb_vnc_share_name(v->share), ==, shares[i].name);
    nb_vnc_spec_free(v);
  }
  v = nb_vnc_spec_parse(":1,share=exclusive", &error);
  g_assert_null(v);
  g_assert_nonnull(strstr(error->message, "share=exclusive is not a sharing policy"));
  g_clear_error(&error);

  const char *bad[] = { "", "1", "127.0.0.1", "127.0.0.1:100", "127.0.0.1:-1", ":x", "host.example:1",
                        ":1,password-file=", ":1,websocket=0", ":1,websocket=70000", ":1,color=yes",
                        ":1,websocket=5901", ":1,websocket=1,websocket=2",
                        ":1,share=", ":1,share=single,share=takeover" };
  for (unsigned i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_clear_error(&error);
    g_assert_null(nb_vnc_spec_parse(bad[i], &error));
    g_assert_error(error, NB_VM_OPTIONS_ERROR, NB_VM_OPTIONS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "--vnc"));
  }
}

static void
test_display(void)
{
  g_autoptr(GError) error = NULL;
  NbVmOptions o;
  g_assert_true(parse(&o, &error, "--kernel", "/k", "--display", "sdl", "--vnc", ":2", NULL));
  g_assert_no_error(error);
  g_assert_true(o.display_sdl && o.graphics);
  g_assert_nonnull(o.vnc);
  nb_vm_options_clear(&o);
  g_assert_true(parse(&o, &error, "--kernel", "/k", "--display", "none", NULL));
  g_assert_false(o.display_sdl || o.graphics);
  nb_vm_options_clear(&o);
  g_assert_false(parse(&o, &error, "--kernel", "/k", "--display", "gtk", NULL));
  g_assert_nonnull(strstr(error->message, "--display gtk"));
  g_clear_error(&error);
  /* A machine's display is in its document. */
  g_assert_false(parse(&o, &error, "--machine", "web", "--display", "sdl", NULL));
  g_assert_nonnull(strstr(error->message, "nestboxctl set"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/vm-options/vnc", test_vnc);
  g_test_add_func("/vm-options/display", test_display);
  g_test_add_func("/vm-options/full", test_full);
  g_test_add_func("/vm-options/firmware", test_firmware);
  g_test_add_func("/vm-options/defaults", test_defaults);
  g_test_add_func("/vm-options/errors", test_errors);
  g_test_add_func("/vm-options/disk-specs", test_disk_specs);
  g_test_add_func("/vm-options/console-ports", test_console_ports);
  return g_test_run();
}
