// Every rendered boot script passes shellcheck as POSIX sh, at every severity.
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderBootFiles } from '../../src/initramfs/boot-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'zkluks-shellcheck-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('rendered boot scripts', () => {
  const scripts = renderBootFiles({ zkunlockifs: '/sbin/zkunlockifs' }).filter((f) =>
    f.content.startsWith('#!/bin/sh'),
  );
  it.each(scripts.map((f) => [f.path, f.content]))(
    '%s passes shellcheck --shell=sh',
    async (path, content) => {
      const file = join(dir, path.replaceAll('/', '_'));
      writeFileSync(file, content);
      const r = await execa('shellcheck', ['--shell=sh', '--severity=style', file], { reject: false });
      expect(r.stdout).toBe('');
      expect(r.exitCode).toBe(0);
    },
  );
});
