import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zkluks } from '../helpers/cli.ts';

const empty = mkdtempSync(join(tmpdir(), 'zkluks-doctor-cli-'));
afterAll(() => rmSync(empty, { recursive: true, force: true }));
/** `zkluks doctor` on the empty tree with its own simulator state, then `more`. */
const onEmpty = (...more: string[]) => [
  'doctor',
  '--root',
  empty,
  '--backend',
  'sim',
  '--sim-state',
  join(empty, 'sim'),
  ...more,
];

describe('zkluks doctor (CLI)', () => {
  it('lists the documented LED patterns in its help', async () => {
    const r = await zkluks(['doctor', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/--led/);
    expect(r.stdout).toMatch(/atecc-unreachable/);
  });

  it('on an empty tree reports every missing source as a finding, never a crash, with the stable JSON schema', async () => {
    const r = await zkluks(onEmpty('--json'));
    expect(r.stderr).not.toMatch(/internal error/);
    const out = JSON.parse(r.stdout) as {
      version: number;
      verdict: { status: string; summary: string };
      findings: Array<Record<string, unknown>>;
    };
    expect(out.version).toBe(1);
    expect(['ok', 'warning', 'error']).toContain(out.verdict.status);
    for (const f of out.findings) {
      expect(Object.keys(f).sort()).toEqual(['area', 'evidence', 'hint', 'id', 'severity', 'summary']);
    }
    const ids = out.findings.map((f) => f.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'crypttab.missing',
        'firmware.config-missing',
        'luks.no-volume',
        'zymkey.state-missing',
      ]),
    );
    expect(r.exitCode).toBe(1);
  });

  it('names a volume that is not LUKS in a finding and exits 1', async () => {
    const r = await zkluks(onEmpty(join(empty, 'nothing.img')));
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/ERROR The LUKS2 header of '.*nothing\.img' cannot be read/);
    expect(r.stdout.split('\n')[0]).toMatch(/^verdict: ERROR /);
  });

  it('turns each SCM event the admin reports with --led into an error finding whose hint says what to do', async () => {
    const cases = [
      ['6 flashes, then 2', 'tamper-2', 'zkluks recovery add VOLUME'],
      ['20-1', 'low-temperature', 'get_cpu_temp()'],
      ['twenty flashes, then two', 'high-temperature', 'get_cpu_temp()'],
      ['4 flashes, then 1', 'low-battery', 'zkluks recovery add VOLUME'],
    ] as const;
    for (const [typed, name, hint] of cases) {
      const r = await zkluks(onEmpty('--led', typed, '--json'));
      expect(r.exitCode, r.stderr).toBe(1);
      const finding = (
        JSON.parse(r.stdout) as { findings: { id: string; severity: string; hint: string }[] }
      ).findings.find((f) => f.id === `zymkey.led.${name}`);
      expect(finding?.severity).toBe('error');
      expect(finding?.hint).toContain(hint);
    }
  });

  it('prints no colour when NO_COLOR is set, even with --led', async () => {
    const r = await zkluks(onEmpty('--led', 'dev-bound'), {
      env: { NO_COLOR: '1' },
    });
    expect(r.stdout).not.toContain('\x1b[');
    expect(r.stdout).toMatch(/ok {4}The LED shows one blink every 3 seconds/);
  });
});
