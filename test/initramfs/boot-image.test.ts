import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  autoInitramfsName,
  bootImagesFrom,
  findBootImages,
  parseConfigTxt,
} from '../../src/initramfs/boot-image.ts';

const BOOKWORM = `# For more options and information see
# http://rptl.io/configtxt
dtparam=i2c_arm=on
# Automatically load initramfs files, if found
auto_initramfs=1
arm_64bit=1

[cm4]
otg_mode=1

[all]
`;

describe('which image the firmware loads', () => {
  it('names the initramfs after the kernel under auto_initramfs', () => {
    expect(autoInitramfsName('kernel8.img')).toBe('initramfs8');
    expect(autoInitramfsName('kernel_2712.img')).toBe('initramfs_2712');
    expect(autoInitramfsName('kernel.img')).toBe('initramfs');
    expect(autoInitramfsName('vmlinuz')).toBeNull();
  });

  it('reads sections, key=value and command lines from config.txt', () => {
    expect(parseConfigTxt('a=1 # c\n[pi4]\ninitramfs initrd.img followkernel\n')).toEqual([
      { section: 'all', key: 'a', value: '1' },
      { section: 'pi4', key: 'initramfs', value: 'initrd.img followkernel' },
    ]);
  });

  it('on Bookworm with auto_initramfs lists initramfs8 and initramfs_2712 for the kernels present', () => {
    const r = bootImagesFrom({
      bootPartition: '/boot/firmware',
      configTxt: BOOKWORM,
      bootFiles: ['config.txt', 'kernel8.img', 'kernel_2712.img', 'initramfs8'],
    });
    expect(r.kind).toBe('raspberry-pi');
    expect(r.images.map((i) => [i.image, i.exists, i.models])).toEqual([
      ['/boot/firmware/initramfs_2712', false, 'Pi 5, CM5, Pi 500'],
      ['/boot/firmware/initramfs8', true, 'Pi 3, Pi 4, Pi 400, CM4, Zero 2 W'],
    ]);
    expect(r.images[1]?.because).toBe('config.txt: auto_initramfs=1 with kernel8.img');
  });

  it('prefers an explicit initramfs line over auto_initramfs', () => {
    const r = bootImagesFrom({
      bootPartition: '/boot',
      configTxt: `${BOOKWORM}initramfs initrd.img followkernel\n`,
      bootFiles: ['kernel8.img', 'initrd.img'],
    });
    expect(r.images).toEqual([
      {
        image: '/boot/initrd.img',
        kernel: '/boot/kernel8.img',
        because: "config.txt: 'initramfs initrd.img followkernel'",
        models: 'all',
        exists: true,
      },
    ]);
  });

  it('reports a model section that names its own kernel and image', () => {
    const r = bootImagesFrom({
      bootPartition: '/boot/firmware',
      configTxt: 'auto_initramfs=1\n[pi4]\nkernel=kernel-custom.img\ninitramfs initrd-pi4 followkernel\n',
      bootFiles: ['kernel8.img', 'initramfs8'],
    });
    expect(r.images.map((i) => [i.image, i.models])).toEqual([
      ['/boot/firmware/initramfs8', 'Pi 3, Pi 4, Pi 400, CM4, Zero 2 W'],
      ['/boot/firmware/initrd-pi4', '[pi4]'],
    ]);
  });

  it('without config.txt pairs each vmlinuz with its initrd.img', () => {
    const r = bootImagesFrom({
      bootPartition: null,
      configTxt: null,
      bootFiles: ['vmlinuz-6.1.0-56-amd64', 'initrd.img-6.1.0-56-amd64', 'vmlinuz-6.1.0-55-amd64'],
    });
    expect(r.kind).toBe('generic');
    expect(r.images.map((i) => [i.image, i.exists])).toEqual([
      ['/boot/initrd.img-6.1.0-56-amd64', true],
      ['/boot/initrd.img-6.1.0-55-amd64', false],
    ]);
  });

  it('finds the boot partition at /boot/firmware before /boot in a system tree', () => {
    const root = mkdtempSync(join(tmpdir(), 'zkluks-bootimg-'));
    try {
      mkdirSync(join(root, 'boot/firmware'), { recursive: true });
      writeFileSync(join(root, 'boot/firmware/config.txt'), BOOKWORM);
      writeFileSync(join(root, 'boot/firmware/kernel8.img'), '');
      expect(findBootImages(root).images.map((i) => i.image)).toEqual(['/boot/firmware/initramfs8']);
      rmSync(join(root, 'boot/firmware'), { recursive: true });
      expect(findBootImages(root)).toEqual({ kind: 'generic', bootPartition: null, images: [] });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
