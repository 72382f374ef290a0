// `initramfs install`'s own usage hints repeat the admin's command line: followed as written, they
// install for the volume and the tree the admin named.
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { zkluks } from '../helpers/cli.ts';
import { makeLuksImage } from '../helpers/luks.ts';
import { stageTree } from '../boot/initramfs-build.ts';
import { follow, hintOf, printHintCounts } from './follow.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-initramfs-hints-'));
afterAll(() => {
  rmSync(W, { recursive: true, force: true });
  printHintCounts();
});

describe('initramfs install usage hints', () => {
  it('an out-of-range --timeout: the hint keeps the volume and the tree, and installs', async () => {
    const volume = await makeLuksImage();
    try {
      await execa('cryptsetup', ['token', 'import', volume.path], {
        input: JSON.stringify({ type: 'zkluks-zymkey', keyslots: ['0'], version: 1, sealed: 'AAAA' }),
      });
      const root = stageTree(join(W, 'tree'), { crypttab: '# staged system\n' });
      const given = ['initramfs', 'install', volume.path, '--root', root, '--no-update'];
      const failed = await zkluks([...given, '--timeout', '0']);
      expect(failed.exitCode).toBe(2);
      const hint = hintOf(failed);
      for (const w of given) expect(hint).toContain(w);
      await follow(hint, {});
      expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toMatch(
        /keyscript=\/lib\/cryptsetup\/scripts\/zkluks/,
      );
      expect(readFileSync(join(root, 'etc/zkluks/boot.conf'), 'utf8')).toContain('10');
    } finally {
      await volume.cleanup();
    }
  });
});
