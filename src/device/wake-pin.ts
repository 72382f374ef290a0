// The module's WAKE pin (GPIO4). From kernel 6.6 on, GPIOs are numbered globally and Zymbit's
// zkenv.conf must name the pin (ZK_GPIO_WAKE_PIN), or the module never binds to the host.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The file in Zymbit's state directory that sets ZK_GPIO_WAKE_PIN. */
export const ZKENV_FILE = 'zkenv.conf';

/** ZK_GPIO_WAKE_PIN from `<dir>/zkenv.conf`, null when unset or unreadable. */
export function readWakePin(dir: string): number | null {
  try {
    const m = /^\s*(?:export\s+)?ZK_GPIO_WAKE_PIN=["']?(\d+)/m.exec(
      readFileSync(join(dir, ZKENV_FILE), 'utf8'),
    );
    return m?.[1] ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Kernels from 6.6 on number GPIOs globally: the WAKE pin must be set or the module never binds. */
export function needsWakePin(kernel: string): boolean {
  const [major = 0, minor = 0] = kernel.split(/[.-]/).map((n) => Number.parseInt(n, 10));
  return major > 6 || (major === 6 && minor >= 6);
}
