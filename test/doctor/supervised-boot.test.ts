// The doctor's Supervised Boot check over gathered facts: a changed or missing manifest file is an
// error whose hint runs as written; files zkluks has no digest of are unknown, not fine.
import { execa } from 'execa';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSupervisedBoot } from '../../src/doctor/checks/supervised-boot.ts';
import { known, type Facts, type SupervisedBootFacts } from '../../src/doctor/facts.ts';

type Entry = SupervisedBootFacts['entries'][number];
const seen = { sha256: 'a'.repeat(64), at: '2026-12-01T00:00:00.000Z', how: 'seen' as const };
const entry = (file: string, state: Entry['state']): Entry => ({
  file,
  path: `/boot/firmware/${file}`,
  state,
  recorded: state === 'unrecorded' ? null : seen,
});

function facts(entries: Entry[], mode: 'developer' | 'production' = 'production'): Facts {
  return {
    root: '/',
    zymkey: known({ binding: known({ mode, bound: true }) }),
    supervisedBoot: known({ bootPartition: '/boot/firmware', entries, takenOut: [] }),
  } as unknown as Facts;
}

describe('doctor: Supervised Boot', () => {
  it('a changed file is an error naming the command that signs it; in developer mode it says what production would do', () => {
    const [f] = checkSupervisedBoot(facts([entry('initrd.img', 'changed'), entry('config.txt', 'matches')]));
    expect(f).toMatchObject({ id: 'supervised-boot.changed', severity: 'error' });
    expect(f?.summary).toMatch(
      /\/boot\/firmware\/initrd.img changed since it was signed.*destroys every key/,
    );
    expect(f?.hint).toMatch(/^zkluks supervised-boot update initrd.img \(before any reboot/);
    const [dev] = checkSupervisedBoot(facts([entry('initrd.img', 'changed')], 'developer'));
    expect(dev?.summary).toMatch(/in developer mode the SCM only flashes 4-2/);
  });

  it("a missing file is an error whose hint runs Zymbit's remove call as written", async () => {
    const [f] = checkSupervisedBoot(facts([entry('cmdline.txt', 'missing')]));
    expect(f).toMatchObject({ id: 'supervised-boot.missing', severity: 'error' });
    const command = f?.hint.slice(f.hint.indexOf('python3 -c')) ?? '';
    const bin = mkdtempSync(join(tmpdir(), 'zkluks-python-'));
    try {
      writeFileSync(join(bin, 'python3'), '#!/bin/sh\nprintf %s "$2"\n');
      chmodSync(join(bin, 'python3'), 0o755);
      const r = await execa('sh', ['-c', command], { env: { PATH: `${bin}:${process.env.PATH}` } });
      expect(r.stdout).toBe('import zymkey; zymkey.client.remove_supervised_boot_file("cmdline.txt")');
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('files without a digest are reported as unknown (info), and all matching is ok', () => {
    expect(checkSupervisedBoot(facts([entry('kernel8.img', 'unrecorded')])).map((f) => f.id)).toEqual([
      'supervised-boot.unrecorded',
    ]);
    expect(checkSupervisedBoot(facts([entry('kernel8.img', 'matches')]))[0]).toMatchObject({
      id: 'supervised-boot.ok',
      severity: 'ok',
    });
  });
});
