// adopt's hints repeat the admin's own command line: followed literally, the confirmation hint and
// the hints of a refusal adopt with every option the admin gave (the escrow recipient, the volume,
// the tree, the backend), never a plainer adopt than the one asked for.
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRunner } from '../../src/exec.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { zkluks } from '../helpers/cli.ts';
import { opens } from '../helpers/luks.ts';
import { buildZymbitPi, type ZymbitPi } from '../migrate/zymbit-pi.ts';
import { commandsOf, follow, hintOf, printHintCounts } from './follow.ts';

const runner = createRunner();
let pi: ZymbitPi | undefined;
afterEach(() => {
  pi?.cleanup();
  pi = undefined;
});
afterAll(printHintCounts);

async function ageIdentity(dir: string): Promise<{ identity: string; recipient: string }> {
  const identity = join(dir, 'identity');
  await execa('age-keygen', ['-o', identity]);
  return { identity, recipient: (await execa('age-keygen', ['-y', identity])).stdout.trim() };
}

describe('adopt hints carry what the admin gave', () => {
  it('the confirmation hint, followed as written, adopts with the escrow, volume, tree and backend given', async () => {
    pi = await buildZymbitPi();
    const { identity, recipient } = await ageIdentity(pi.dir);
    const keyFile = join(pi.dir, 'recovery.txt');
    // Backend and simulator state on the command line only, as an admin without the variables types them.
    const env = {
      NO_COLOR: '1',
      PATH: pi.env.PATH ?? '',
      ZKLUKS_BACKEND: 'zymbit',
      ZKLUKS_SIM_STATE: '/nonexistent',
    };
    const given = [
      'adopt',
      pi.volume,
      '--root',
      pi.root,
      '--backend',
      'sim',
      '--sim-state',
      pi.simState,
      '--escrow',
      recipient,
      '--recovery-key-file',
      keyFile,
    ];
    const asked = await zkluks(given, { env });
    expect(asked.exitCode, asked.stderr).toBe(2);
    const hint = hintOf(asked);
    const [dry, run] = commandsOf(hint);
    for (const words of [dry, run]) {
      for (const w of given) expect(words, hint).toContain(w);
    }
    const { results } = await follow(hint, { env });
    expect(results[0]?.stdout).toMatch(/escrowed to age1/);
    const token = (await readHeader(runner, pi.volume)).tokens.find((t) => t.type === 'zkluks-recovery');
    expect(token?.json).toHaveProperty('escrow.recipient', recipient);
    // The escrowed copy is the key written to the file, and it opens the volume.
    const unlocked = await zkluks(['recovery', 'unlock', pi.volume, '--identity', identity], {
      env: pi.env,
    });
    expect(unlocked.stdout).toBe(readFileSync(keyFile, 'utf8'));
    expect(await opens(pi.volume, unlocked.stdout)).toBe(true);
  });
});
