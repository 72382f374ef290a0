/* Test-only /sbin/init for the boot tier's root filesystem: proves the root was reached, prints the
 * zkluks boot records carried over in /run, and powers the VM off. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

int main(void) {
  char path[512], line[512];
  printf("\nMARKER-ROOT-REACHED pid=%d\n", getpid());
  DIR *d = opendir("/run/zkluks");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (n < 7 || strcmp(e->d_name + n - 7, ".record") != 0) continue;
    snprintf(path, sizeof path, "/run/zkluks/%s", e->d_name);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) printf("BOOTREC %s: %s", e->d_name, line);
    if (f) fclose(f);
  }
  if (d) closedir(d);
  printf("MARKER-END\n");
  fflush(stdout);
  sync();
  reboot(RB_POWER_OFF);
  return 0;
}
