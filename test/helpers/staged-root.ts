// A Raspberry Pi's system tree for `--root`, as far as `initramfs install` reads it: Zymbit's
// zkunlockifs (a stub that fails: no Zymkey answers here), Zymbit's zkenv.conf with the wake pin,
// and /etc/crypttab.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Write the Zymbit files and `crypttab` into the existing directory `root`; returns `root`. */
export function stageZymbitRoot(root: string, crypttab: string): string {
  for (const d of ['etc', 'usr/sbin', 'var/lib/zymbit']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'usr/sbin/zkunlockifs'), '#!/bin/sh\nexit 1\n');
  chmodSync(join(root, 'usr/sbin/zkunlockifs'), 0o755);
  writeFileSync(join(root, 'var/lib/zymbit/zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
  writeFileSync(join(root, 'etc/crypttab'), crypttab);
  return root;
}
