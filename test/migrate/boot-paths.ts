// Which way a staged Pi would boot: the image its firmware loads (config.txt), the crypttab line inside
// that image, and whether the keys that line relies on open the volume. Used after every step and
// every interruption of adopt: at least one way must hold.
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBootImages } from '../../src/initramfs/boot-image.ts';
import { opens } from '../helpers/luks.ts';
import type { ZymbitPi } from './zymbit-pi.ts';

export interface BootPaths {
  /** The image the firmware loads, as a path under the root. */
  image: string | null;
  /** Zymbit's way: zk_get_key in the image's crypttab, key.bin.lock inside, and its key opens a slot. */
  old: boolean;
  /** zkluks's way: the zkluks keyscript in the image, a verified zkluks Zymkey slot or the recovery key. */
  new: boolean;
  /** What was seen, for a failing assertion. */
  detail: string;
}

async function imageFile(image: string, member: string): Promise<string | null> {
  const r = await execa('sh', ['-c', `gzip -dc '${image}' | cpio -i --quiet --to-stdout '${member}'`], {
    reject: false,
  });
  return r.exitCode === 0 && r.stdout !== '' ? r.stdout : null;
}

export async function bootPaths(pi: ZymbitPi, recoveryKey: string | null): Promise<BootPaths> {
  const images = findBootImages(pi.root).images.filter((i) => i.exists);
  const image = images[0]?.image ?? null;
  if (image === null) return { image, old: false, new: false, detail: 'no image the firmware loads' };
  const path = join(pi.root, image);
  const crypttab = (await imageFile(path, 'cryptroot/crypttab')) ?? '';
  const keyscript = /keyscript=([^,\s]+)/.exec(crypttab)?.[1] ?? '';
  const inImage = async (p: string) => (await imageFile(path, p.replace(/^\//, ''))) !== null;
  const old =
    keyscript.endsWith('/zk_get_key') &&
    (await inImage('/var/lib/zymbit/key.bin.lock')) &&
    existsSync(pi.lock) &&
    (await opens(pi.volume, pi.key));
  let newWay = false;
  if (keyscript === '/lib/cryptsetup/scripts/zkluks' && (await inImage(keyscript))) {
    const verify = await pi.zkluks(['verify', pi.volume]);
    newWay = verify.exitCode === 0 || (recoveryKey !== null && (await opens(pi.volume, recoveryKey)));
  }
  const tree = existsSync(join(pi.root, 'etc/crypttab'))
    ? readFileSync(join(pi.root, 'etc/crypttab'), 'utf8')
    : '';
  return {
    image,
    old,
    new: newWay,
    detail: `firmware loads ${image}; its crypttab: ${crypttab.trim() || '(none)'}; the tree's: ${tree.trim()}`,
  };
}
