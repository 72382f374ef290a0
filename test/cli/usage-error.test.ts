// A mistyped flag is answered with the nearest real one, in the form that was meant, and the
// subcommand's --help; the suggestion itself parses.
import { describe, expect, it } from 'vitest';
import { commandLineProblem } from '../../src/cli/command-spec.ts';
import { usageError } from '../../src/cli/usage-error.ts';

describe('unknown flags', () => {
  it('a mistyped --no-X of a boolean is answered with --no-X, which parses', async () => {
    const e = await usageError(['initramfs', 'install', '--no-updat'], 'Unknown arguments: no-updat');
    expect(e.message).toBe(
      "Failed to parse the arguments: 'zkluks initramfs install' has no option --no-updat (did you mean --no-update?)",
    );
    expect(e.hint).toBe('zkluks initramfs install --help');
    expect(await commandLineProblem(['initramfs', 'install', '--no-update'])).toBeNull();
  });

  it('a mistyped value option is answered with the option itself', async () => {
    const e = await usageError(['adopt', '--escro', 'x'], 'Unknown arguments: escro');
    expect(e.message).toContain('has no option --escro (did you mean --escrow?)');
  });
});
