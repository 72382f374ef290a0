// The simulator's opaque mode as the tests see it. scripts/test runs the failure-path tests a second
// time with ZKLUKS_SIM_OPAQUE set: the simulator's tools and crypto calls then fail with no reason, as
// an unknown real tool might, and zkluks must tell what it can from its own probes.
import { simOpaqueMode } from '../../src/device/sim-opaque.ts';

export const OPAQUE = simOpaqueMode() !== null;

/**
 * The reason zkluks reports for a module that answers neither its tools nor its API: the simulator's
 * own reason, or `unknown` when failures are opaque (then only the LED tells unplugged, unbound,
 * bound elsewhere and self-destructed apart).
 */
export function silentModule(simReason: string): string {
  return OPAQUE ? 'unknown' : simReason;
}

/** What the message says of such a module: the simulator's reason, or the probes' account. */
export function silentModuleText(simText: RegExp): RegExp {
  return OPAQUE ? /answers no API call either .*only its LED tells which/ : simText;
}
