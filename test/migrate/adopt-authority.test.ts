// On a Pi encrypted by Zymbit's script the only key is sealed in /var/lib/zymbit/key.bin.lock: there is
// no passphrase to authorize a change. `recovery add` and `enroll` take that sealed key as their
// authority (--unlock-zymbit-key), and the doctor's hints for that layout are commands that work there.
import { type Dirent, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { simInit, simZkifc } from '../../src/device/sim-control.ts';
import { runSimTool } from '../../src/device/sim-tools.ts';
import type { Diagnosis } from '../../src/doctor/diagnose.ts';
import { openZymkey } from '../../src/device/open.ts';
import { createRunner, type Runner } from '../../src/exec.ts';
import { unsealZymbitKey } from '../../src/keyslot/authority-zymbit.ts';
import { recoveryAdd } from '../../src/keyslot/operations.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { opens } from '../helpers/luks.ts';
import { buildZymbitPi, type ZymbitPi } from './zymbit-pi.ts';

let pi: ZymbitPi | undefined;
afterEach(() => {
  pi?.cleanup();
  pi = undefined;
});

const RECOVERY = /([cbdefghijklnrtuv]{8}-){7}[cbdefghijklnrtuv]{8}/;

/** Every file under `dir` whose bytes contain `needle` (other processes' files may vanish meanwhile). */
function filesHolding(dir: string, needle: Buffer): string[] {
  const out: string[] = [];
  let list: Dirent[];
  try {
    list = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of list) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesHolding(p, needle));
    else if (e.isFile()) {
      try {
        if (readFileSync(p).includes(needle)) out.push(p);
      } catch {
        // Removed since it was listed.
      }
    }
  }
  return out;
}

/** The zkluks commands a hint names, split into argv the way a shell would (single quotes only). */
function hintCommands(hint: string): string[][] {
  const out: string[][] = [];
  for (const m of hint.matchAll(/zkluks [^,;()]*/g)) {
    let text = m[0].trim();
    if (hint[m.index - 1] === "'" && text.endsWith("'")) text = text.slice(0, -1);
    const words = [...text.matchAll(/'([^']*)'|(\S+)/g)].map((w) => w[1] ?? w[2] ?? '');
    out.push(words.slice(1));
  }
  return out;
}

/** The doctor on the staged tree, finding the root volume through its crypttab as on the Pi. */
async function doctor(p: ZymbitPi): Promise<Diagnosis> {
  const r = await p.zkluks(['doctor', '--root', p.root, '--json']);
  return JSON.parse(r.stdout) as Diagnosis;
}

describe("Zymbit's key.bin.lock as the authority for a keyslot change", () => {
  it('recovery add without an authority cannot ask for a passphrase such a Pi never had', async () => {
    pi = await buildZymbitPi({ tree: false });
    const r = await pi.zkluks(['recovery', 'add', pi.volume]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/stdin is not a terminal/);
  });

  it('recovery add --unlock-zymbit-key adds a recovery key on its own; the sealed key is never written anywhere', async () => {
    pi = await buildZymbitPi({ tree: false });
    const lockBefore = readFileSync(pi.lock);
    const file = join(pi.dir, 'recovery.txt');
    const r = await pi.zkluks([
      'recovery',
      'add',
      pi.volume,
      '--unlock-zymbit-key',
      '--root',
      pi.root,
      '--recovery-key-file',
      file,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/added a recovery key .*keyslot 1/);
    const recovery = readFileSync(file, 'utf8');
    expect(await opens(pi.volume, recovery, 1)).toBe(true);
    // Nothing else changed: Zymbit's key still opens slot 0, key.bin.lock is as it was.
    expect(await opens(pi.volume, pi.key, 0)).toBe(true);
    expect(readFileSync(pi.lock).equals(lockBefore)).toBe(true);
    const header = await readHeader(createRunner(), pi.volume);
    expect(header.keyslots.map((k) => k.id)).toEqual([0, 1]);
    expect(header.tokens.map((t) => t.type)).toEqual(['zkluks-recovery']);
    // The plaintext key is in no file of the tree, the test's directory or /dev/shm, nor in the output.
    expect(filesHolding(pi.dir, pi.key)).toEqual([]);
    expect(filesHolding('/dev/shm', pi.key)).toEqual([]);
    expect(r.stdout + r.stderr).not.toContain(pi.key.toString('hex').slice(0, 32));
  });

  it('enroll --unlock-zymbit-key FILE seals a zkluks key beside a recovery key', async () => {
    pi = await buildZymbitPi({ tree: false });
    const r = await pi.zkluks([
      'enroll',
      pi.volume,
      '--unlock-zymbit-key',
      pi.lock,
      '--recovery-key-file',
      join(pi.dir, 'recovery.txt'),
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const header = await readHeader(createRunner(), pi.volume);
    expect(header.tokens.map((t) => t.type).sort()).toEqual(['zkluks-recovery', 'zkluks-zymkey']);
    expect((await pi.zkluks(['verify', pi.volume])).exitCode).toBe(0);
    expect(await opens(pi.volume, pi.key, 0)).toBe(true);
  });

  it('refuses, changing nothing, when key.bin.lock is missing, sealed by another module, or opens no slot', async () => {
    pi = await buildZymbitPi({ tree: false });
    const args = ['recovery', 'add', pi.volume, '--recovery-key-file', join(pi.dir, 'r.txt')];
    const missing = await pi.zkluks([...args, '--unlock-zymbit-key', join(pi.dir, 'nope.lock')]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/Failed to read Zymbit's sealed key '.*nope\.lock': ENOENT/);

    const other = join(pi.dir, 'other-sim');
    simInit(other);
    simZkifc(other, 'stopped');
    writeFileSync(join(pi.dir, 'k'), Buffer.alloc(512, 7));
    const foreign = (await runSimTool('zklockifs', [join(pi.dir, 'k')], other)).stdout;
    simZkifc(other, 'running');
    writeFileSync(join(pi.dir, 'foreign.lock'), foreign);
    const wrongModule = await pi.zkluks([...args, '--unlock-zymbit-key', join(pi.dir, 'foreign.lock')]);
    expect(wrongModule.exitCode).toBe(4);
    expect(wrongModule.stderr).toMatch(/Failed to unseal Zymbit's sealed key/);

    simZkifc(pi.simState, 'stopped');
    const stranger = (await runSimTool('zklockifs', [join(pi.dir, 'k')], pi.simState)).stdout;
    simZkifc(pi.simState, 'running');
    writeFileSync(join(pi.dir, 'stranger.lock'), stranger);
    const noSlot = await pi.zkluks([...args, '--unlock-zymbit-key', join(pi.dir, 'stranger.lock')]);
    expect(noSlot.exitCode).toBe(1);
    expect(noSlot.stderr).toMatch(/does not open any keyslot/);

    const both = await pi.zkluks([...args, '--unlock-zymbit-key', '--unlock-key-file', pi.lock]);
    expect(both.exitCode).toBe(2);
    const header = await readHeader(createRunner(), pi.volume);
    expect(header.keyslots.map((k) => k.id)).toEqual([0]);
    expect(header.tokens).toEqual([]);
  });

  it(
    "the doctor's hints for Zymbit's layout are commands that work there, followed literally",
    { timeout: 300_000 },
    async () => {
      pi = await buildZymbitPi();
      const before = await doctor(pi);
      const hints = before.findings.filter((f) => f.severity !== 'ok').map((f) => f.hint);
      const commands = hints.flatMap(hintCommands);
      const add = commands.find((c) => c[0] === 'recovery');
      // The volume as the tree names it (/dev/mmcblk0p2), or that device resolved inside the tree.
      expect(add?.[2]).toMatch(/\/dev\/mmcblk0p2$/);
      expect(add).toEqual(['recovery', 'add', add?.[2], '--unlock-zymbit-key', '--root', pi.root]);
      const added = await pi.zkluks(add ?? []);
      expect(added.exitCode, added.stderr).toBe(0);
      const key = RECOVERY.exec(added.stderr)?.[0];
      expect(key).toBeDefined();
      expect(await opens(pi.volume, key ?? '')).toBe(true);

      const after = await doctor(pi);
      expect(after.findings.map((f) => f.id)).not.toContain('luks.no-recovery-path');
      // The crypttab and kernel-hook findings name zkluks adopt; it works too (--yes: no terminal here).
      const adopt = commands.find((c) => c[0] === 'adopt');
      expect(adopt).toEqual(['adopt', '--root', pi.root]);
      const adopted = await pi.zkluks([...(adopt ?? []), '--yes']);
      expect(adopted.exitCode, adopted.stderr).toBe(0);
      const header = await readHeader(createRunner(), pi.volume);
      expect(header.tokens.map((t) => t.type).sort()).toEqual(['zkluks-recovery', 'zkluks-zymkey']);
    },
  );
});

describe('the unsealed Zymbit key in memory only', () => {
  it('never becomes a file, not even in the private tmpfs directory, while cryptsetup runs', async () => {
    pi = await buildZymbitPi({ tree: false });
    const shm = mkdtempSync('/dev/shm/zkluks-adopt-test-');
    const seen: string[] = [];
    const real = createRunner();
    const runner: Runner = async (file, args, options) => {
      seen.push(...filesHolding(shm, pi?.key ?? Buffer.alloc(0)));
      return real(file, args, options);
    };
    try {
      const deps = {
        runner,
        tmpfs: [shm],
        lockDir: pi.dir,
        zymkey: () => openZymkey({ backend: 'sim', simState: pi?.simState ?? '', runner }),
      };
      const { key } = await unsealZymbitKey(deps, pi.volume, pi.lock);
      const r = await recoveryAdd(deps, pi.volume, {
        unlock: key,
        force: false,
        escrow: null,
        dryRun: false,
      });
      expect(r.applied?.recoverySlot).toBe(1);
      expect(seen).toEqual([]);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });
});
