/* Test aid: holds a machine's run lock (as a running nestbox-vm would) for
 * SECONDS, printing "locked" once held, so scripts can test refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "machine/machine-registry.h"

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "Usage: hold-machine-lock MACHINE_DIR SECONDS\n");
    return 2;
  }
  g_autoptr(GError) error = NULL;
  int fd = nb_machine_lock_acquire(argv[1], &error);
  if (fd < 0) {
    fprintf(stderr, "hold-machine-lock: %s\n", error->message);
    return 1;
  }
  printf("locked\n");
  fflush(stdout);
  sleep((unsigned)atoi(argv[2]));
  nb_machine_lock_release(fd);
  return 0;
}
