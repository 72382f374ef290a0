// busybox's applets as links in one directory, to put first on PATH as the initramfs has them.
import { execa } from 'execa';
import { mkdirSync } from 'node:fs';

/** Link every busybox applet into `dir` (created); returns the busybox binary the links point to. */
export async function installBusyboxApplets(dir: string): Promise<string> {
  const busybox = (await execa('sh', ['-c', 'command -v busybox'])).stdout.trim();
  mkdirSync(dir);
  await execa(busybox, ['--install', '-s', dir]);
  return busybox;
}
