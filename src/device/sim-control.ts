// What happens to the simulated module from outside the API: it is made (init), its tab is cut
// (bind-lock), it is moved to another Pi (swap-host), its perimeter is armed, breached and cleared,
// it is unplugged and plugged back. Each operation reads the state, changes it, writes it atomically.
import { existsSync } from 'node:fs';
import { RefusedError, ZkluksError } from '../errors.ts';
import type { BindingMode, PerimeterAction } from './port.ts';
import { reachableSimState } from './sim.ts';
import {
  loadSimState,
  newHostFingerprint,
  newSimState,
  saveSimState,
  simStateFile,
  type SimChannel,
  type SimModel,
  type SimState,
} from './sim-state.ts';

export interface SimStatus {
  stateDir: string;
  model: string;
  serial: string;
  firmware: string;
  moduleId: string;
  binding: { mode: Exclude<BindingMode, 'unknown'>; boundHost: string; host: string; hostMatches: boolean };
  reachable: boolean;
  keyMaterial: 'present' | 'destroyed';
  selfDestruct: { at: string; channel: 0 | 1 } | null;
  perimeter: SimChannel[];
}

export function simStatus(stateDir: string, state: SimState = loadSimState(stateDir)): SimStatus {
  return {
    stateDir,
    model: state.module.model,
    serial: state.module.serial,
    firmware: state.module.firmware,
    moduleId: state.module.id,
    binding: {
      mode: state.binding.mode,
      boundHost: state.binding.boundHost,
      host: state.host,
      hostMatches: state.host === state.binding.boundHost,
    },
    reachable: state.reachable,
    keyMaterial: state.secret === null ? 'destroyed' : 'present',
    selfDestruct: state.selfDestruct,
    perimeter: state.perimeter.map((c) => ({ ...c })),
  };
}

/** Make a new simulated module. Refuses to replace an existing one unless `force`. */
export function simInit(
  stateDir: string,
  opts: { model?: SimModel; force?: boolean; now?: Date } = {},
): SimStatus {
  if (existsSync(simStateFile(stateDir)) && !opts.force) {
    throw new RefusedError(
      `Refusing to initialise the simulator in '${stateDir}': a simulated module already exists there, and replacing it loses its device secret, so everything it sealed could never be unsealed again`,
      { hint: `zkluks sim init --force --sim-state '${stateDir}'` },
    );
  }
  const state = newSimState(opts.model, opts.now);
  saveSimState(stateDir, state);
  return simStatus(stateDir, state);
}

function update(stateDir: string, state: SimState): SimStatus {
  saveSimState(stateDir, state);
  return simStatus(stateDir, state);
}

/**
 * Production mode: cut the ZYMKEY4 tab / lock_binding() on HSMs. The binding becomes permanent to
 * the current host; it cannot be undone.
 */
export function simBindLock(stateDir: string): SimStatus {
  const state = reachableSimState(stateDir, 'lock the Zymkey binding');
  state.binding = { mode: 'production', boundHost: state.host };
  return update(stateDir, state);
}

/**
 * The module now sits on another Pi. In developer mode the temporary binding follows it; in
 * production mode it stays with the original host, so crypto calls fail 'host-mismatch'.
 * `host` names the Pi (e.g. to move the module back); default: a new one.
 */
export function simSwapHost(stateDir: string, host: string = newHostFingerprint()): SimStatus {
  if (!/^[0-9a-f]+$/.test(host)) {
    throw new ZkluksError(`Failed to swap the simulated host: '${host}' is not a hex fingerprint`, {
      hint: 'zkluks sim status --json (shows binding.boundHost)',
    });
  }
  const state = loadSimState(stateDir);
  state.host = host;
  if (state.binding.mode === 'developer') state.binding.boundHost = host;
  return update(stateDir, state);
}

/** set_perimeter_event_actions. Self-destruct cannot be turned off once set in production mode. */
export function simArm(stateDir: string, channel: 0 | 1, action: PerimeterAction): SimStatus {
  const state = reachableSimState(stateDir, `set the action of perimeter channel ${channel}`);
  const current = state.perimeter[channel];
  if (
    state.binding.mode === 'production' &&
    current.action === 'self-destruct' &&
    action !== 'self-destruct'
  ) {
    throw new RefusedError(
      `Refusing to change perimeter channel ${channel} from self-destruct to ${action}: in production mode self-destruct cannot be turned off once set`,
      { hint: 'zkluks sim init --force (a new simulated module)' },
    );
  }
  current.action = action;
  return update(stateDir, state);
}

export interface BreachOutcome {
  channel: 0 | 1;
  action: PerimeterAction;
  /** The latched first-breach time (unchanged when an earlier breach is still latched). */
  firstBreach: string;
  /** True when this breach is the one now latched. */
  latched: boolean;
  /** True when this breach destroyed the key material (self-destruct armed, production mode). */
  destroyed: boolean;
  /** True when self-destruct was armed but the module is in developer mode: reported only. */
  simulatedOnly: boolean;
}

/**
 * The perimeter loop of `channel` opens. Works whether or not the module is reachable from the host:
 * the module watches its perimeter on its own (battery-backed).
 */
export function simBreach(stateDir: string, channel: 0 | 1, now: Date = new Date()): BreachOutcome {
  const state = loadSimState(stateDir);
  const c = state.perimeter[channel];
  const at = new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString();
  const latched = c.firstBreach === null;
  if (latched) c.firstBreach = at;
  let destroyed = false;
  let simulatedOnly = false;
  if (c.action === 'self-destruct') {
    if (state.binding.mode === 'production') {
      if (state.secret !== null) {
        state.secret = null;
        state.selfDestruct = { at, channel };
        destroyed = true;
      }
    } else {
      simulatedOnly = true;
    }
  }
  saveSimState(stateDir, state);
  return { channel, action: c.action, firstBreach: c.firstBreach ?? at, latched, destroyed, simulatedOnly };
}

/** clear_perimeter_detect_info: unlatch both channels. Destroyed keys stay destroyed. */
export function simClear(stateDir: string): SimStatus {
  const state = reachableSimState(stateDir, 'clear the Zymkey perimeter events');
  for (const c of state.perimeter) c.firstBreach = null;
  return update(stateDir, state);
}

/** Unplug (false) or plug back (true): unreachable models I2C off, wake pin unset, no module. */
export function simSetReachable(stateDir: string, reachable: boolean): SimStatus {
  const state = loadSimState(stateDir);
  state.reachable = reachable;
  return update(stateDir, state);
}
