// Hardware tier, Supervised Boot: a Pi with a Zymbit SCM or Secure Edge Node (/dev/zscm*). By
// default it only READS: the manifest through Zymbit's Python API, what `zkluks supervised-boot
// status`, `initramfs check` and `doctor` make of it, and that reading changed neither the manifest
// nor zkluks's record. It never sets the policy and never signs, since a wrong signature on a
// production SCM destroys every key at the next boot. One step signs, and only when asked:
// ZKLUKS_HW_SCM_SIGN=FILE signs that manifest file as it is now (see the README's hardware kit).
// ZKLUKS_HW_SCM=1 asks for an SCM: without one the tier FAILS. Without an SCM and not asked, it
// checks that zkluks sees none. What the API answered goes to ZKLUKS_HW_SCM_REPORT
// (default zkluks-hw-scm.json), to share.
import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openZymkey } from '../../src/device/open.ts';
import type { SupervisedBootInfo } from '../../src/device/port.ts';
import { scmDevices } from '../../src/device/zymbit-scm.ts';
import { createRunner } from '../../src/exec.ts';
import { SUPERVISED_BOOT_RECORD } from '../../src/initramfs/supervised-boot.ts';
import { zkluks } from '../helpers/cli.ts';
import { missingHardware } from './hardware.ts';

const requested = process.env.ZKLUKS_HW_SCM === '1';
const signFile = process.env.ZKLUKS_HW_SCM_SIGN ?? '';
const devices = scmDevices('/dev');
const reportFile = resolve(process.env.ZKLUKS_HW_SCM_REPORT ?? 'zkluks-hw-scm.json');
const zymbit = ['--backend', 'zymbit', '--json'];
// The one step that changes the module runs only when asked; skipped, vitest counts it as skipped
// (never as passed) and the shared report says it was not tried.
const signing = signFile === '' ? 'not tried (ZKLUKS_HW_SCM_SIGN unset)' : `asked for: ${signFile}`;

interface Entry {
  file: string;
  path: string;
  state: 'matches' | 'changed' | 'missing' | 'unrecorded';
  recorded: { how: string } | null;
}

beforeAll(() => {
  const missing = missingHardware();
  if (requested && devices.length === 0)
    missing.push('no /dev/zscm* (ZKLUKS_HW_SCM=1 asks for a Zymbit SCM or Secure Edge Node)');
  if (signFile !== '' && devices.length === 0)
    missing.push('no /dev/zscm* (ZKLUKS_HW_SCM_SIGN asks to sign in an SCM manifest)');
  if (missing.length > 0) {
    throw new Error(`npm run test:hw needs a Pi with a Zymkey; missing here:\n- ${missing.join('\n- ')}`);
  }
});

/** The record's bytes (null when absent), to prove that reading writes nothing. */
const recordBytes = () => {
  const path = SUPERVISED_BOOT_RECORD;
  return existsSync(path) ? readFileSync(path) : null;
};

const manifestOfPort = (): Promise<SupervisedBootInfo> => {
  const port = openZymkey({ backend: 'zymbit', simState: '', runner: createRunner() });
  if (!port.supervisedBoot) throw new Error('the zymbit backend has no supervisedBoot()');
  return port.supervisedBoot();
};

async function status(): Promise<{ exitCode: number; scm: boolean; entries: Entry[] }> {
  const r = await zkluks(['supervised-boot', 'status', ...zymbit]);
  expect([0, 1], r.stderr).toContain(r.exitCode);
  return { exitCode: r.exitCode, ...(JSON.parse(r.stdout) as { scm: boolean; entries: Entry[] }) };
}

if (devices.length === 0) {
  describe('no SCM on this Pi', () => {
    it('zkluks sees none: supervised-boot status says so and initramfs check reports no manifest', async () => {
      const s = await status();
      expect(s).toMatchObject({ exitCode: 0, scm: false, entries: [] });
      const check = await zkluks(['initramfs', 'check', ...zymbit]);
      expect(JSON.parse(check.stdout)).toMatchObject({ supervisedBoot: { status: 'none' } });
    });
  });
} else {
  describe(`a real SCM (${devices.join(', ')}), read-only`, () => {
    let manifest: string[] = [];
    let record: Buffer | null = null;

    beforeAll(async () => {
      record = recordBytes();
      const info = await manifestOfPort();
      expect(info.error, 'the manifest through the Python API').toBeNull();
      manifest = [...(info.manifest ?? [])].sort();
    });

    it("zkluks's reading of the manifest is what the Python API itself answers", async () => {
      const raw = await execa(
        'python3',
        [
          '-c',
          'import json, zymkey; m = zymkey.client.get_supervised_boot_file_manifest(); print(json.dumps({"type": type(m).__name__, "repr": repr(m)}))',
        ],
        { reject: false, timeout: 60_000 },
      );
      expect(raw.exitCode, raw.stderr).toBe(0);
      const answer = JSON.parse(raw.stdout) as { type: string; repr: string };
      writeFileSync(
        reportFile,
        `${JSON.stringify({ created: new Date().toISOString(), devices, answer, manifest, signing }, null, 2)}\n`,
      );
      for (const file of manifest) expect(answer.repr, file).toContain(file);
      // An answer naming any file is a manifest zkluks must not read as empty.
      if (manifest.length === 0) expect(answer.repr).not.toMatch(/[A-Za-z0-9_]+\.(img|txt|dtb)/);
    });

    it('supervised-boot status lists every manifest file against the disk; exit 1 exactly when one changed or is missing', async () => {
      const s = await status();
      expect(s.scm).toBe(true);
      expect(s.entries.map((e) => e.file)).toEqual(manifest);
      for (const e of s.entries) expect(e.state === 'missing', e.path).toBe(!existsSync(e.path));
      expect(s.exitCode).toBe(s.entries.some((e) => e.state === 'changed' || e.state === 'missing') ? 1 : 0);
    });

    it('initramfs check and doctor reach the same verdict on the manifest', async () => {
      const s = await status();
      const check = JSON.parse((await zkluks(['initramfs', 'check', ...zymbit])).stdout) as {
        supervisedBoot: { status: string; entries: Entry[] };
      };
      expect(check.supervisedBoot.status).toBe('read');
      expect(check.supervisedBoot.entries.map((e) => [e.file, e.state])).toEqual(
        s.entries.map((e) => [e.file, e.state]),
      );
      const doctor = JSON.parse((await zkluks(['doctor', ...zymbit])).stdout) as {
        findings: { id: string }[];
      };
      const ids = doctor.findings.map((f) => f.id).filter((id) => id.startsWith('supervised-boot.'));
      expect(ids.length).toBeGreaterThan(0);
      expect(ids.includes('supervised-boot.changed')).toBe(s.entries.some((e) => e.state === 'changed'));
      expect(ids.includes('supervised-boot.missing')).toBe(s.entries.some((e) => e.state === 'missing'));
    });

    it("reading changed neither the SCM's manifest nor zkluks's record", async () => {
      const again = await manifestOfPort();
      expect([...(again.manifest ?? [])].sort()).toEqual(manifest);
      expect(recordBytes()).toEqual(record);
    });

    // Opt-in, changes the module: signs FILE as it is now. Safe only when FILE is what should boot.
    it.skipIf(signFile === '')(
      'ZKLUKS_HW_SCM_SIGN=FILE: signs that file as it is now, and status then says it matches',
      async () => {
        expect(manifest, `${signFile} is not in the SCM's manifest`).toContain(signFile);
        const before = (await status()).entries.find((e) => e.file === signFile);
        // A file that changed since zkluks signed or saw it is not signed over blindly.
        expect(
          before?.state,
          `${signFile} changed or is missing: check it, then sign it yourself`,
        ).not.toMatch(/changed|missing/);
        const r = await zkluks(['supervised-boot', 'update', signFile, ...zymbit]);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual({ signed: [signFile] });
        const after = (await status()).entries.find((e) => e.file === signFile);
        expect(after).toMatchObject({ state: 'matches', recorded: { how: 'signed' } });
        expect([...((await manifestOfPort()).manifest ?? [])].sort()).toEqual(manifest);
      },
    );
  });
}
