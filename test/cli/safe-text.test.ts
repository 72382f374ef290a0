// `list` and `doctor` print header- and disk-derived strings without terminal escapes or line breaks:
// on a found disk every token field, label and crypttab field was chosen by whoever made it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRunner } from '../../src/exec.ts';
import { zkluks } from '../helpers/cli.ts';
import { luksImage } from '../helpers/luks.ts';

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

describe('header-derived text in human output', () => {
  it('list shows a crafted token type with its escapes made visible, on one line', async () => {
    const img = await luksImage();
    await createRunner()('cryptsetup', ['token', 'import', '--token-id', '4', '--json-file', '-', img.path], {
      input: JSON.stringify({ type: 'hsm\u001b[2J\u001b]0;pwned\u0007\nSLOT 9 passphrase', keyslots: ['0'] }),
    });
    const r = await zkluks(['list', img.path]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(CONTROL);
    expect(r.stdout).toContain('4:hsm\\x1b[2J\\x1b]0;pwned\\x07\\x0aSLOT 9 passphrase');
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(2);
  });

  it('doctor shows a crafted crypttab name with its escapes made visible', async () => {
    const root = mkdtempSync(join(tmpdir(), 'zkluks-safe-text-'));
    try {
      mkdirSync(join(root, 'etc'));
      writeFileSync(
        join(root, 'etc/crypttab'),
        'root\u001b[31m\u001b[8m /dev/nonexistent none luks,initramfs\n',
      );
      const r = await zkluks(
        ['doctor', '--root', root, '--backend', 'sim', '--sim-state', join(root, 'sim')],
        {
          env: { NO_COLOR: '1' },
        },
      );
      expect(r.stdout).toContain('root\\x1b[31m\\x1b[8m');
      expect(r.stdout).not.toMatch(CONTROL);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
