// What the hardware tier needs on the machine it runs on, shared by its files: each fails (never
// skips) with this list when something is missing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { scmDevices } from '../../src/device/zymbit-scm.ts';

const TOOL_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/usr/local/bin'];

/** Where a Zymbit tool is installed, if anywhere. */
export const tool = (name: string): string | undefined =>
  TOOL_DIRS.map((d) => join(d, name)).find((p) => existsSync(p));

/** What is missing for this tier, one line each; empty when it can run. */
export function missingHardware(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('not root (the Zymkey tools and zkifc need root)');
  for (const t of ['zkgrifs', 'zklockifs', 'zkunlockifs'])
    if (!tool(t)) missing.push(`${t} not installed (apt-get install zksaapps)`);
  if (!existsSync('/var/lib/zymbit')) missing.push('/var/lib/zymbit is missing (zkifc never ran here)');
  if (!existsSync('/dev/i2c-1') && scmDevices('/dev').length === 0)
    missing.push('no /dev/i2c-1 (I2C off: dtparam=i2c_arm=on) and no /dev/zscm* (SCM)');
  return missing;
}
