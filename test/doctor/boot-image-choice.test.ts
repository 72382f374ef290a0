import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { chooseBootImage } from '../../src/doctor/boot-image-choice.ts';

let roots: string[] = [];
afterEach(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  roots = [];
});

/** A root whose /boot/firmware holds config.txt and the named (empty) files. */
function bootTree(configTxt: string, files: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'zkluks-bootimg-'));
  roots.push(root);
  const dir = join(root, 'boot/firmware');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.txt'), configTxt);
  for (const f of files) writeFileSync(join(dir, f), '');
  return root;
}

const image = (root: string, model: string | undefined) => {
  const c = chooseBootImage(root, model);
  return c.ok ? c.value.image : `unavailable: ${c.reason}`;
};

describe('chooseBootImage', () => {
  // Raspberry Pi OS 64-bit ships both kernels; auto_initramfs gives one image per kernel.
  const both = ['kernel8.img', 'kernel_2712.img', 'initramfs8', 'initramfs_2712'];

  it('picks the image of the kernel this model boots under auto_initramfs', () => {
    const root = bootTree('auto_initramfs=1\n', both);
    expect(image(root, 'Raspberry Pi 5 Model B Rev 1.0')).toBe('/boot/firmware/initramfs_2712');
    expect(image(root, 'Raspberry Pi 4 Model B Rev 1.4')).toBe('/boot/firmware/initramfs8');
    expect(image(root, 'Raspberry Pi Compute Module 4 Rev 1.0')).toBe('/boot/firmware/initramfs8');
    expect(image(root, 'Raspberry Pi Zero 2 W Rev 1.0')).toBe('/boot/firmware/initramfs8');
  });

  it('picks the image of a config.txt section filter naming the model', () => {
    const root = bootTree(
      '[pi4]\ninitramfs initrd-pi4 followkernel\n[pi5]\ninitramfs initrd-pi5 followkernel\n',
      ['kernel8.img', 'initrd-pi4', 'initrd-pi5'],
    );
    expect(image(root, 'Raspberry Pi 5 Model B Rev 1.0')).toBe('/boot/firmware/initrd-pi5');
    expect(image(root, 'Raspberry Pi 4 Model B Rev 1.4')).toBe('/boot/firmware/initrd-pi4');
  });

  it('without a known model, takes the first image that exists', () => {
    const root = bootTree('auto_initramfs=1\n', ['kernel8.img', 'kernel_2712.img', 'initramfs8']);
    expect(image(root, undefined)).toBe('/boot/firmware/initramfs8');
  });

  it('says why when config.txt loads no initramfs', () => {
    const root = bootTree('arm_64bit=1\n', ['kernel8.img']);
    expect(image(root, 'Raspberry Pi 4 Model B Rev 1.4')).toMatch(
      /^unavailable: config\.txt .* loads no initramfs/,
    );
  });
});
