// The simulator's opaque mode as the tests see it. scripts/test runs the failure-path tests a second
// time with ZKLUKS_SIM_OPAQUE set: the simulator's tools and crypto calls then fail with no reason, as
// an unknown real tool might, and zkluks must tell what it can from its own probes.
import { simOpaqueMode } from '../../src/device/sim-opaque.ts';

const MODE = simOpaqueMode();
export const OPAQUE = MODE !== null;
/** The tools hang (ZKLUKS_SIM_OPAQUE=hang): zkluks stops them at its deadline. */
export const HANG = MODE === 'hang';

/**
 * The reason zkluks reports for a module that answers neither its tools nor its API: the simulator's
 * own reason, or `unknown` when failures are opaque (then only the LED tells unplugged, unbound,
 * bound elsewhere and self-destructed apart); `timeout` when the tools hang (zkluks stops them at
 * its deadline and says the module did not answer). `via: 'api'`: the reason of an API call (Python
 * API or the sim backend's), which fails rather than hangs.
 */
export function silentModule(simReason: string, via: 'tool' | 'api' = 'tool'): string {
  if (HANG && via === 'tool') return 'timeout';
  return OPAQUE ? 'unknown' : simReason;
}

/** What the message says of such a module: the simulator's reason, or the probes' account. */
export function silentModuleText(simText: RegExp): RegExp {
  if (HANG) return /did not answer/;
  return OPAQUE ? /answers no API call either .*only its LED tells which/ : simText;
}
