import { describe, expect, it, vi } from 'vitest';
import { createParser } from '../../src/cli/main.ts';
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

  // Start-up work no command needs: yargs would render the command's whole help as its handler starts.
  it('runs a command without rendering its help text', async () => {
    const parser = await createParser(['list', '--json', '/nonexistent/zkluks-volume']);
    const usage = (
      parser as unknown as { getInternalMethods: () => { getUsageInstance: () => { help: () => string } } }
    )
      .getInternalMethods()
      .getUsageInstance();
    const help = vi.spyOn(usage, 'help');
    // The handler runs (and fails: there is no such volume).
    await expect(parser.parseAsync()).rejects.toThrow(/nonexistent/);
    expect(help).not.toHaveBeenCalled();
  });
});
