// Where a crypttab source (`UUID=…`, `PARTUUID=…`, `LABEL=…` or a device path such as
// /dev/mmcblk0p2) is found when zkluks works on a system tree (--root DIR), the way a rescue admin
// expects:
//
//   1. the tree's own /dev entry (DIR/dev/…): a bind-mounted /dev, or a link the admin made to say
//      "this image or device is that disk" (ln -s /dev/sdb2 DIR/dev/mmcblk0p2);
//   2. else this host's block device of that name (/dev/…, /dev/disk/by-uuid/…);
//   3. else nothing: the name belongs to the machine the tree boots on (the Pi's SD card is
//      /dev/mmcblk0p2 there, /dev/sdb2 in a card reader here) and the admin has to say which device
//      it is.
//
// On the running system (--root /) the source is only looked up on the host.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { under } from './root-path.ts';

export interface RootDevice {
  /** The crypttab source as written. */
  source: string;
  /** The device path inside the system the tree belongs to (/dev/disk/by-uuid/… for UUID=). */
  name: string;
  /** Where it was found: the path to open, or null when neither the tree nor the host has it. */
  path: string | null;
  found: 'tree' | 'host' | null;
}

const TAGS: Record<string, string> = {
  UUID: '/dev/disk/by-uuid/',
  PARTUUID: '/dev/disk/by-partuuid/',
  LABEL: '/dev/disk/by-label/',
  PARTLABEL: '/dev/disk/by-partlabel/',
};

/** The /dev path a crypttab source stands for (`UUID=ab…` -> /dev/disk/by-uuid/ab…). */
export function sourceDevicePath(source: string): string {
  const m = /^(UUID|PARTUUID|LABEL|PARTLABEL)=["']?([^"']+)["']?$/i.exec(source.trim());
  if (!m) return source;
  const tag = (m[1] ?? '').toUpperCase();
  const value = m[2] ?? '';
  return `${TAGS[tag]}${tag === 'UUID' || tag === 'PARTUUID' ? value.toLowerCase() : value}`;
}

/** Resolve a crypttab source for the tree at `root` (see the order above). */
export function resolveRootDevice(root: string, source: string): RootDevice {
  const name = sourceDevicePath(source);
  if (!name.startsWith('/')) return { source, name, path: null, found: null };
  const live = root === '/' || root === '';
  if (!live) {
    const inTree = under(root, name);
    if (existsSync(inTree)) return { source, name, path: inTree, found: 'tree' };
  }
  if (existsSync(name)) return { source, name, path: name, found: 'host' };
  return { source, name, path: null, found: null };
}

/** The link that tells zkluks which device or image holds a source the tree names. */
export function linkCommand(root: string, device: RootDevice, target = 'DEVICE'): string {
  const link = join(root, device.name);
  const dir = link.slice(0, link.lastIndexOf('/'));
  return `mkdir -p '${dir}' && ln -s '${target}' '${link}'`;
}
