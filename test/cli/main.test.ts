import { describe, expect, it } from 'vitest';
import { zkluks } from '../helpers/cli.ts';

describe('zkluks command line', () => {
  it('prints help and exits 0', async () => {
    const r = await zkluks(['--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Unlock a LUKS2 root filesystem');
  });

  it('exits 2 with a hint on an unknown command', async () => {
    const r = await zkluks(['no-such-command']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('Unknown command: no-such-command');
    expect(r.stderr).toContain('hint: zkluks --help');
    expect(r.stdout).toBe('');
  });

  it('exits 2 when no command is named', async () => {
    const r = await zkluks([]);
    expect(r.exitCode).toBe(2);
  });
});
