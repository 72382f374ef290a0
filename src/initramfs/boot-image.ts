// Which initramfs image the boot firmware will actually load. On Raspberry Pi OS the firmware reads
// config.txt on the boot partition (/boot/firmware since Bookworm, /boot before): an explicit
// `initramfs FILE followkernel` line names the file; `auto_initramfs=1` loads the image named after
// the kernel (kernel8.img -> initramfs8, kernel_2712.img -> initramfs_2712). raspi-firmware copies
// /boot/initrd.img-<version> there. Elsewhere the bootloader loads /boot/initrd.img-<version>.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface ConfigTxtLine {
  /** The conditional section the line sits in ('all' before any section). */
  section: string;
  key: string;
  value: string;
}

/** config.txt's effective lines (comments and blanks dropped), with their section. */
export function parseConfigTxt(text: string): ConfigTxtLine[] {
  const out: ConfigTxtLine[] = [];
  let section = 'all';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const sectionMatch = /^\[([^\]]+)\]$/.exec(line);
    if (sectionMatch) {
      section = (sectionMatch[1] ?? 'all').trim().toLowerCase();
      continue;
    }
    const kv = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (kv) out.push({ section, key: kv[1] ?? '', value: (kv[2] ?? '').trim() });
    else {
      const [key = '', ...rest] = line.split(/\s+/);
      out.push({ section, key, value: rest.join(' ') });
    }
  }
  return out;
}

/** Kernel image -> initramfs name under auto_initramfs. */
export function autoInitramfsName(kernel: string): string | null {
  const m = /^kernel(.*)\.img$/.exec(kernel);
  return m ? `initramfs${m[1] ?? ''}` : null;
}

/** The kernel the firmware picks per model when config.txt has no kernel= line (64-bit OS). */
const DEFAULT_KERNELS: Array<{ models: string; kernel: string }> = [
  { models: 'Pi 5, CM5, Pi 500', kernel: 'kernel_2712.img' },
  { models: 'Pi 3, Pi 4, Pi 400, CM4, Zero 2 W', kernel: 'kernel8.img' },
  { models: '32-bit Pi 4/400 (arm_64bit=0)', kernel: 'kernel7l.img' },
  { models: '32-bit Pi 2/3 (arm_64bit=0)', kernel: 'kernel7.img' },
  { models: 'Pi 1, Zero', kernel: 'kernel.img' },
];

export interface BootImage {
  /** The image, as a path under the system root. */
  image: string;
  /** The kernel it goes with, as a path under the system root; null when unknown. */
  kernel: string | null;
  /** Why the firmware or bootloader loads this file, for people. */
  because: string;
  /** Which hardware this applies to ('all' when not model-specific). */
  models: string;
  exists: boolean;
}

export interface BootImageFacts {
  /** The boot partition as a path under the root ('/boot/firmware', '/boot'); null when none has config.txt. */
  bootPartition: string | null;
  configTxt: string | null;
  /** File names in the boot partition (Raspberry Pi) or in /boot. */
  bootFiles: string[];
}

export interface BootImageReport {
  kind: 'raspberry-pi' | 'generic';
  bootPartition: string | null;
  images: BootImage[];
}

/** Pure: the images the firmware (or bootloader) will load, from the boot partition's facts. */
export function bootImagesFrom(facts: BootImageFacts): BootImageReport {
  const has = (name: string) => facts.bootFiles.includes(name);
  if (facts.bootPartition === null || facts.configTxt === null) {
    const images = facts.bootFiles
      .filter((f) => f.startsWith('vmlinuz-'))
      .map((k) => {
        const version = k.slice('vmlinuz-'.length);
        const initrd = `initrd.img-${version}`;
        return {
          image: `/boot/${initrd}`,
          kernel: `/boot/${k}`,
          because: `the bootloader loads ${initrd} with ${k}`,
          models: 'all',
          exists: has(initrd),
        };
      });
    return { kind: 'generic', bootPartition: null, images };
  }
  const dir = facts.bootPartition;
  const lines = parseConfigTxt(facts.configTxt);
  const bySection = new Map<string, ConfigTxtLine[]>();
  for (const l of lines) bySection.set(l.section, [...(bySection.get(l.section) ?? []), l]);
  const images: BootImage[] = [];
  const sections = [...new Set(['all', ...lines.map((l) => l.section)])].filter((s) => s !== 'none');
  // Per section: a section-specific setting applies on that hardware, an [all] setting everywhere.
  for (const section of sections) {
    const effective = [
      ...(bySection.get('all') ?? []),
      ...(section === 'all' ? [] : (bySection.get(section) ?? [])),
    ];
    const last = (key: string) => effective.filter((l) => l.key === key).at(-1);
    const models = section === 'all' ? 'all' : `[${section}]`;
    const explicit = last('initramfs');
    const kernelLine = last('kernel');
    const kernels = kernelLine
      ? [{ models, kernel: kernelLine.value }]
      : section === 'all'
        ? DEFAULT_KERNELS.filter((d) => has(d.kernel))
        : [];
    const own = bySection.get(section) ?? [];
    if (section !== 'all' && !own.some((l) => ['initramfs', 'kernel', 'auto_initramfs'].includes(l.key))) {
      continue;
    }
    if (explicit) {
      const file = explicit.value.split(/\s+/)[0] ?? '';
      images.push({
        image: `${dir}/${file}`,
        kernel: kernels.length === 1 ? `${dir}/${kernels[0]?.kernel}` : null,
        because: `config.txt${section === 'all' ? '' : ` [${section}]`}: 'initramfs ${explicit.value}'`,
        models,
        exists: has(file),
      });
      continue;
    }
    if (last('auto_initramfs')?.value === '1') {
      for (const k of kernels) {
        const name = autoInitramfsName(k.kernel);
        if (name === null) continue;
        images.push({
          image: `${dir}/${name}`,
          kernel: `${dir}/${k.kernel}`,
          because: `config.txt${section === 'all' ? '' : ` [${section}]`}: auto_initramfs=1 with ${k.kernel}`,
          models: kernelLine ? models : k.models,
          exists: has(name),
        });
      }
    }
  }
  return { kind: 'raspberry-pi', bootPartition: dir, images };
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

/** Gather the facts under `root` (a path; '/' for the live system) and report the boot images. */
export function findBootImages(root: string): BootImageReport {
  for (const dir of ['/boot/firmware', '/boot']) {
    const config = join(root, dir, 'config.txt');
    if (existsSync(config)) {
      return bootImagesFrom({
        bootPartition: dir,
        configTxt: readFileSync(config, 'utf8'),
        bootFiles: listDir(join(root, dir)),
      });
    }
  }
  return bootImagesFrom({ bootPartition: null, configTxt: null, bootFiles: listDir(join(root, '/boot')) });
}
