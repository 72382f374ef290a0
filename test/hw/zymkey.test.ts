// Hardware tier: runs only on a Pi with a real Zymkey (`npm run test:hw` sets ZKLUKS_HW=1) and
// Zymbit's zksaapps tools installed; skipped everywhere else. It exercises the zymbit backend the
// way enroll and the boot keyscript do, without touching any disk.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openZymkey } from '../../src/device/open.ts';
import { createRunner } from '../../src/exec.ts';

const toolsPresent = ['/sbin/zkunlockifs', '/usr/sbin/zkunlockifs', '/usr/bin/zkunlockifs'].some((p) =>
  existsSync(p),
);
const enabled = process.env.ZKLUKS_HW === '1' && toolsPresent && process.getuid?.() === 0;

describe.skipIf(!enabled)('a real Zymkey', () => {
  const port = () => openZymkey({ backend: 'zymbit', simState: '', runner: createRunner() });

  it('returns the requested number of random bytes, and not the same twice', async () => {
    const a = await port().randomBytes(64);
    const b = await port().randomBytes(64);
    expect(a.length).toBe(64);
    expect(a.equals(b)).toBe(false);
  });

  it('unseals exactly what it sealed', async () => {
    const zymkey = port();
    const plain = await zymkey.randomBytes(64);
    const sealed = await zymkey.seal(plain);
    expect(sealed.includes(plain)).toBe(false);
    expect((await zymkey.unseal(sealed)).equals(plain)).toBe(true);
  });

  it('reports its model, serial and binding', async () => {
    const zymkey = port();
    const info = await zymkey.info();
    expect(info.model).not.toBe('');
    expect(info.serial).not.toBe('');
    expect(['developer', 'production', 'unknown']).toContain((await zymkey.binding()).mode);
  });
});
