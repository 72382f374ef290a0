import { describe, expect, it } from 'vitest';
import { hasFile, imageFindings, zkluksInImage, type ImageContents } from '../../src/initramfs/inspect.ts';

const KV = '6.1.0-56-amd64';
const COMPLETE = [
  'usr/lib/cryptsetup/scripts/zkluks',
  'usr/lib/cryptsetup/askpass',
  'usr/sbin/cryptsetup',
  'usr/sbin/zkunlockifs',
  'usr/lib/aarch64-linux-gnu/libzk.so.1',
  'var/lib/zymbit',
  'var/lib/zymbit/zkenv.conf',
  'var/lib/zymbit/12345/s1_fp_salt.bin',
  'etc/zkluks/boot.conf',
  `usr/lib/modules/${KV}/kernel/drivers/i2c/i2c-dev.ko`,
  `usr/lib/modules/${KV}/kernel/drivers/i2c/busses/i2c-bcm2835.ko.xz`,
];
const expectations = {
  zkunlockifs: '/sbin/zkunlockifs',
  libraries: ['/lib/aarch64-linux-gnu/libzk.so.1'],
  builtinModules: null,
};
const contents = (files: string[]): ImageContents => ({ image: 'x', files, kernelVersions: [KV] });

describe('image inspection', () => {
  it('finds files where merged /usr put them', () => {
    expect(hasFile(['usr/lib/cryptsetup/scripts/zkluks'], '/lib/cryptsetup/scripts/zkluks')).toBe(true);
    expect(hasFile(['sbin/zkunlockifs'], '/usr/sbin/zkunlockifs')).toBe(true);
    expect(hasFile(['usr/sbin/other'], '/sbin/zkunlockifs')).toBe(false);
  });

  it('finds nothing wrong with a complete image', () => {
    const inside = zkluksInImage(contents(COMPLETE), expectations);
    expect(inside.i2cModules).toEqual(['i2c-dev', 'i2c-bcm2835']);
    expect(imageFindings(inside, expectations)).toEqual([]);
  });

  it('names the volumes whose token copy is whole inside', () => {
    const copies = [
      'etc/zkluks/tokens/cryptroot.copy',
      'etc/zkluks/tokens/cryptroot.sealed',
      'etc/zkluks/tokens/data.copy',
    ];
    expect(zkluksInImage(contents([...COMPLETE, ...copies]), expectations).tokenCopies).toEqual([
      'cryptroot',
    ]);
    expect(zkluksInImage(contents(COMPLETE), expectations).tokenCopies).toEqual([]);
  });

  it.each([
    ['usr/lib/cryptsetup/scripts/zkluks', /keyscript/],
    ['usr/sbin/zkunlockifs', /zkunlockifs is missing/],
    ['usr/lib/aarch64-linux-gnu/libzk.so.1', /libzk\.so\.1, needed by zkunlockifs/],
    ['var/lib/zymbit/zkenv.conf', /zkenv\.conf/],
    [`usr/lib/modules/${KV}/kernel/drivers/i2c/i2c-dev.ko`, /i2c-dev/],
    ['usr/lib/cryptsetup/askpass', /askpass/],
  ])('reports an error when %s is missing', (missing, message) => {
    const inside = zkluksInImage(contents(COMPLETE.filter((f) => f !== missing)), expectations);
    const findings = imageFindings(inside, expectations);
    expect(findings.filter((f) => f.level === 'error').map((f) => f.message)).toEqual([
      expect.stringMatching(message),
    ]);
  });

  it('reports missing Zymbit state and I2C modules', () => {
    const files = COMPLETE.filter((f) => !f.startsWith('var/') && !f.includes('/i2c'));
    const messages = imageFindings(zkluksInImage(contents(files), expectations), expectations).map(
      (f) => f.message,
    );
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/Zymbit state/),
        expect.stringMatching(/zkenv/),
        expect.stringMatching(/no I2C module/),
      ]),
    );
  });

  it('counts a module built into the kernel as present', () => {
    const files = COMPLETE.filter((f) => !f.includes('i2c-dev'));
    const expect2 = { ...expectations, builtinModules: ['i2c-dev'] };
    expect(zkluksInImage(contents(files), expect2).i2cModules).toEqual(['i2c-dev', 'i2c-bcm2835']);
  });
});
