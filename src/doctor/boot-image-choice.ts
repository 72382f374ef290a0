// Which of the images the boot firmware may load (src/initramfs/boot-image.ts) this Pi will load:
// the one for its model when config.txt names several, else the first that exists.
import { findBootImages } from '../initramfs/boot-image.ts';
import { known, unavailable, type Fact } from './facts.ts';
import type { ImageChoice } from './gather-initramfs.ts';

/** "Raspberry Pi 4 Model B Rev 1.4" -> "Pi 4"; "Compute Module 4" -> "CM4". */
function family(model: string | undefined): string | null {
  if (!model) return null;
  const cm = /Compute Module (\d+)/.exec(model);
  if (cm) return `CM${cm[1]}`;
  const pi = /Raspberry Pi (\d+|Zero 2 W|Zero)/.exec(model);
  return pi ? `Pi ${pi[1]}` : null;
}

export function chooseBootImage(root: string, model: string | undefined): Fact<ImageChoice> {
  const report = findBootImages(root);
  if (report.images.length === 0) {
    return unavailable(
      report.kind === 'raspberry-pi'
        ? `config.txt in '${report.bootPartition}' loads no initramfs (no initramfs line, no auto_initramfs=1 with a kernel present)`
        : "no kernel in '/boot' to find an initramfs for",
    );
  }
  const fam = family(model);
  const forModel = fam ? report.images.filter((i) => i.models.split(/,\s*/).includes(fam)) : [];
  const pick = forModel[0] ?? report.images.find((i) => i.exists) ?? report.images[0];
  if (!pick) return unavailable('no boot image');
  return known({ image: pick.image, chosenBecause: pick.because });
}
