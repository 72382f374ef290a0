// Which of the images the boot firmware may load (src/initramfs/boot-image.ts) this Pi will load:
// the one for its model when config.txt names several, else the first that exists.
import { findBootImages } from '../initramfs/boot-image.ts';
import { known, unavailable, type Fact } from './facts.ts';
import type { ImageChoice } from './gather-initramfs.ts';

/**
 * The names a BootImage's `models` may call this board by: the family as the default-kernel table
 * writes it ("Pi 4", "CM4", "Zero 2 W") and the config.txt section filter ("[pi4]", "[cm4]").
 */
function modelNames(model: string | undefined): string[] {
  if (!model) return [];
  const cm = /Compute Module (\d+)/.exec(model);
  if (cm) return [`CM${cm[1]}`, `[cm${cm[1]}]`];
  if (/Raspberry Pi Zero 2 W/.test(model)) return ['Zero 2 W'];
  if (/Raspberry Pi Zero/.test(model)) return ['Zero'];
  const pi = /Raspberry Pi (\d+)/.exec(model);
  return pi ? [`Pi ${pi[1]}`, `[pi${pi[1]}]`] : [];
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
  const names = modelNames(model);
  const forModel = report.images.filter((i) => i.models.split(/,\s*/).some((m) => names.includes(m)));
  const pick = forModel[0] ?? report.images.find((i) => i.exists) ?? report.images[0];
  if (!pick) return unavailable('no boot image');
  return known({ image: pick.image, chosenBecause: pick.because });
}
