// What happens to the simulated module and its host from outside the crypto calls: the module is made
// and fitted (init), bound for production (bind-lock), the SD card moves to another Pi (swap-host),
// the perimeter is armed, opened, closed and cleared, the battery is removed, the power browns out,
// zkifc is started and stopped, the kernel and the WAKE pin change. Each operation reads the state,
// changes it, writes it atomically. Operations that Zymbit does through its API (bind-lock, arm,
// clear, battery policy) need the module to answer, as on the hardware.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RefusedError, UsageError, ZkluksError } from '../errors.ts';
import type { BindingMode, PerimeterAction } from './port.ts';
import { hasBatteryPolicy, simSession } from './sim.ts';
import {
  fileDigest,
  simSupervisedBoot,
  SCM_SHIPPED_MANIFEST,
  type SupervisedBootOutcome,
} from './sim-scm.ts';
import {
  loadSimHost,
  loadSimModule,
  needsWakePin,
  newFingerprint,
  newSimHost,
  newSimModule,
  readHostSalt,
  readWakePin,
  saveSimHost,
  saveSimModule,
  simCardId,
  simHostFile,
  simModuleStore,
  writeHostSalt,
  writeWakePin,
  SIM_DEFAULT_WAKE_PIN,
  type SimBatteryAction,
  type SimChannel,
  type SimHost,
  type SimModel,
  type SimModule,
} from './sim-state.ts';

/** The LED pattern names of src/doctor/led.ts, as the module would show them now. */
export type SimLed =
  'dev-bound' | 'production-bound' | 'not-bound' | 'comm-interrupted' | 'atecc-unreachable' | 'off' | 'rapid';

export interface SimStatus {
  stateDir: string;
  moduleStore: string;
  model: string;
  serial: string;
  firmware: string;
  moduleId: string;
  binding: { mode: Exclude<BindingMode, 'unknown'>; boundHost: string; host: string; hostMatches: boolean };
  reachable: boolean;
  keyMaterial: 'present' | 'destroyed';
  selfDestruct: { at: string; channel: 0 | 1 } | null;
  dead: SimModule['dead'];
  perimeter: SimChannel[];
  battery: SimModule['battery'];
  brownout: boolean;
  kernel: string;
  wakePin: number | null;
  zkifc: SimHost['zkifc'];
  led: SimLed;
  scm: SimModule['scm'];
}

/** The host and the module fitted to it, read without any of the module's checks (the bench view). */
export function simParts(dir: string): { host: SimHost; module: SimModule } {
  const host = loadSimHost(dir);
  const module = loadSimModule(dir, host.module);
  if (module === null) {
    throw new ZkluksError(
      `Failed to find the simulated module of '${dir}': module ${host.module} is not in the module store ${simModuleStore(dir)} (the host directory was copied away from its module, or the store was removed)`,
      { hint: `zkluks sim init --force --sim-state '${dir}' (fits a new module)` },
    );
  }
  return { host, module };
}

/** The LED as the admin would see it now. */
export function simLed(dir: string, host: SimHost, m: SimModule): SimLed {
  if (m.dead) return m.dead.why === 'state-lost' ? 'off' : 'atecc-unreachable';
  if (!m.plugged) return 'not-bound';
  if (m.asleep || m.scm?.held) return 'off';
  const lock = m.binding.lockedTo;
  const salt = readHostSalt(dir, m.serial);
  if (lock && (lock.pi !== host.pi || lock.card !== simCardId(dir) || salt !== m.salt)) return 'off';
  if (m.brownout) return 'comm-interrupted';
  if (salt === null || (needsWakePin(host.kernel) && readWakePin(dir) === null)) return 'not-bound';
  if (host.zkifc === 'stopped') return 'rapid';
  return m.binding.mode === 'production' ? 'production-bound' : 'dev-bound';
}

export function simStatus(stateDir: string): SimStatus {
  const { host, module: m } = simParts(stateDir);
  const boundHost = m.binding.lockedTo?.pi ?? host.pi;
  return {
    stateDir,
    moduleStore: simModuleStore(stateDir),
    model: m.model,
    serial: m.serial,
    firmware: m.firmware,
    moduleId: m.id,
    binding: {
      mode: m.binding.mode,
      boundHost,
      host: host.pi,
      hostMatches:
        boundHost === host.pi && (m.binding.lockedTo?.card ?? simCardId(stateDir)) === simCardId(stateDir),
    },
    reachable: m.plugged,
    keyMaterial: m.secret === null ? 'destroyed' : 'present',
    selfDestruct: m.dead?.why === 'self-destruct' ? { at: m.dead.at, channel: m.dead.channel } : null,
    dead: m.dead,
    perimeter: m.perimeter.map((c) => ({ ...c })),
    battery: { ...m.battery },
    brownout: m.brownout,
    kernel: host.kernel,
    wakePin: readWakePin(stateDir),
    zkifc: host.zkifc,
    led: simLed(stateDir, host, m),
    scm: m.scm,
  };
}

/** Make a new simulated module and fit it to a fresh host in `stateDir`. Refuses to replace one unless `force`. */
export function simInit(
  stateDir: string,
  opts: { model?: SimModel; force?: boolean; now?: Date; boot?: string } = {},
): SimStatus {
  if (existsSync(simHostFile(stateDir)) && !opts.force) {
    throw new RefusedError(
      `Refusing to initialise the simulator in '${stateDir}': a simulated host with a fitted module already exists there, and replacing it loses that module, so everything it sealed could never be unsealed again`,
      { hint: `zkluks sim init --force --sim-state '${stateDir}'` },
    );
  }
  const module = newSimModule(opts.model, opts.now);
  const host = newSimHost(module.id, opts.now);
  if (opts.boot !== undefined && module.scm !== null) {
    // An SCM leaves the factory with its manifest signed over the boot files of its image.
    host.boot = opts.boot;
    for (const file of SCM_SHIPPED_MANIFEST) {
      const digest = fileDigest(join(opts.boot, file));
      if (digest !== null) module.scm.manifest[file] = digest;
    }
  }
  saveSimModule(stateDir, module);
  saveSimHost(stateDir, host);
  writeHostSalt(stateDir, module.serial, module.salt);
  writeWakePin(stateDir, SIM_DEFAULT_WAKE_PIN);
  return simStatus(stateDir);
}

function changeModule(stateDir: string, fn: (m: SimModule, host: SimHost) => void): SimStatus {
  const { host, module } = simParts(stateDir);
  fn(module, host);
  saveSimModule(stateDir, module);
  return simStatus(stateDir);
}

function changeHost(stateDir: string, fn: (host: SimHost) => void): SimStatus {
  const host = loadSimHost(stateDir);
  fn(host);
  saveSimHost(stateDir, host);
  return simStatus(stateDir);
}

function destroy(m: SimModule, death: NonNullable<SimModule['dead']>): void {
  if (m.dead !== null) return;
  m.dead = death;
  m.secret = null;
}

const stamp = (now: Date) => new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString();

/**
 * Production mode: cut the ZYMKEY4 tab / lock_binding() on the others. The binding becomes permanent
 * to the current Pi and SD card; a module already in production mode is never bound again.
 */
export function simBindLock(stateDir: string): SimStatus {
  const { module } = simParts(stateDir);
  if (module.binding.mode === 'production') {
    throw new RefusedError(
      `Refusing to lock the binding of simulated module ${module.serial}: it is already bound in production mode to Pi ${module.binding.lockedTo?.pi}, and production binding is permanent`,
      {
        hint: 'a module bound for production never binds to another host; fit a new module (zkluks sim init --force)',
      },
    );
  }
  const s = simSession(stateDir, 'lock the Zymkey binding', 'backend');
  s.module.binding = { mode: 'production', lockedTo: { pi: s.host.pi, card: s.card } };
  // Self-destruct works only once the binding is locked: an open loop armed for it fires now.
  const open = s.module.perimeter.find((c) => c.open && c.action === 'self-destruct');
  if (open) destroy(s.module, { why: 'self-destruct', at: stamp(new Date()), channel: open.channel });
  saveSimModule(stateDir, s.module);
  return simStatus(stateDir);
}

/**
 * The SD card now sits in another Pi (or the module moved with it). In developer mode the temporary
 * binding follows; in production mode the module stays bound to the original Pi. `host` names the
 * Pi (e.g. to move back); default: a new one.
 */
export function simSwapHost(stateDir: string, host: string = newFingerprint()): SimStatus {
  if (!/^[0-9a-f]+$/.test(host)) {
    throw new UsageError(`Failed to swap the simulated host: '${host}' is not a hex fingerprint`, {
      hint: 'zkluks sim status --json (shows binding.boundHost)',
    });
  }
  return changeHost(stateDir, (h) => {
    h.pi = host;
  });
}

/**
 * set_perimeter_event_actions. After the binding is locked the configuration is immutable, except
 * that self-destruct may be armed (once): Zymbit's production sequence arms it last.
 */
export function simArm(stateDir: string, channel: 0 | 1, action: PerimeterAction): SimStatus {
  const s = simSession(stateDir, `set the action of perimeter channel ${channel}`, 'backend');
  const current = s.module.perimeter[channel];
  if (
    s.module.binding.mode === 'production' &&
    (action !== 'self-destruct' || current.action === 'self-destruct')
  ) {
    throw new RefusedError(
      `Refusing to change perimeter channel ${channel} from ${current.action} to ${action}: after the binding is locked the perimeter configuration is immutable (only arming self-destruct is still possible, once)`,
      { hint: 'a production module keeps its perimeter configuration for good' },
    );
  }
  current.action = action;
  if (action === 'self-destruct' && current.open && s.module.binding.mode === 'production') {
    destroy(s.module, { why: 'self-destruct', at: stamp(new Date()), channel });
  }
  saveSimModule(stateDir, s.module);
  return simStatus(stateDir);
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
 * The perimeter loop of `channel` opens and stays open until `simCloseLoop`. Works whether or not
 * the module is reachable from the host: the module watches its perimeter on its own battery.
 */
export function simBreach(stateDir: string, channel: 0 | 1, now: Date = new Date()): BreachOutcome {
  const { module: m } = simParts(stateDir);
  const c = m.perimeter[channel];
  const at = stamp(now);
  const latched = c.firstBreach === null;
  if (latched) c.firstBreach = at;
  c.open = true;
  let destroyed = false;
  let simulatedOnly = false;
  if (c.action === 'self-destruct') {
    if (m.binding.mode === 'production') {
      destroyed = m.dead === null;
      destroy(m, { why: 'self-destruct', at, channel });
    } else {
      simulatedOnly = true;
    }
  }
  saveSimModule(stateDir, m);
  return { channel, action: c.action, firstBreach: c.firstBreach ?? at, latched, destroyed, simulatedOnly };
}

/** The perimeter loop of `channel` is closed again (the enclosure is shut). */
export function simCloseLoop(stateDir: string, channel: 0 | 1): SimStatus {
  return changeModule(stateDir, (m) => {
    m.perimeter[channel].open = false;
  });
}

/**
 * clear_perimeter_detect_info: clear and re-arm both channels. A loop that is still open latches
 * again at once. Destroyed keys stay destroyed.
 */
export function simClear(stateDir: string, now: Date = new Date()): SimStatus {
  const s = simSession(stateDir, 'clear the Zymkey perimeter events', 'backend');
  for (const c of s.module.perimeter) c.firstBreach = c.open ? stamp(now) : null;
  saveSimModule(stateDir, s.module);
  return simStatus(stateDir);
}

/** Unplug (false) or plug back (true): unreachable models I2C off or no module on the header. */
export function simSetReachable(stateDir: string, reachable: boolean): SimStatus {
  return changeModule(stateDir, (m) => {
    m.plugged = reachable;
  });
}

/**
 * The battery is removed (false) or put back (true). With tamper detect armed in production mode a
 * ZYMKEY4/HSM4/ZYMKEY5 destroys its keys; an HSM6/HSM60/SCM follows its battery policy (sleep until
 * replaced, or self-destruct; with no policy set and tamper armed, the stricter: self-destruct).
 */
export function simBattery(stateDir: string, present: boolean, now: Date = new Date()): SimStatus {
  return changeModule(stateDir, (m) => {
    m.battery.present = present;
    if (present) {
      m.asleep = false;
      return;
    }
    const production = m.binding.mode === 'production';
    const tamperArmed = m.perimeter.some((c) => c.action === 'self-destruct');
    if (hasBatteryPolicy(m.model) && m.battery.action === 'sleep') m.asleep = true;
    else if (
      production &&
      (tamperArmed || (hasBatteryPolicy(m.model) && m.battery.action === 'self-destruct'))
    )
      destroy(m, { why: 'battery', at: stamp(now) });
  });
}

/** set_battery_voltage_action: HSM6, HSM60 and SCM only, and only before the binding is locked. */
export function simBatteryAction(stateDir: string, action: SimBatteryAction): SimStatus {
  const s = simSession(stateDir, 'set the battery action', 'backend');
  if (!hasBatteryPolicy(s.module.model)) {
    throw new RefusedError(`Refusing to set a battery action: a ${s.module.model} has no battery policy`, {
      hint: 'battery policies exist on HSM6, HSM60 and SCM',
    });
  }
  if (s.module.binding.mode === 'production') {
    throw new RefusedError(
      'Refusing to set a battery action: thresholds and actions must be set before the binding is locked',
      {
        hint: 'a production module keeps its battery policy for good',
      },
    );
  }
  s.module.battery.action = action;
  saveSimModule(stateDir, s.module);
  return simStatus(stateDir);
}

/** A momentary brown-out: the module disables its security services until the next power cycle. */
export function simBrownOut(stateDir: string): SimStatus {
  return changeModule(stateDir, (m) => {
    m.brownout = true;
  });
}

/**
 * Power the Pi off and on: a brown-out is over, and an SCM verifies its Supervised Boot manifest
 * before the Pi boots (src/device/sim-scm.ts).
 */
export function simBoot(
  stateDir: string,
  now: Date = new Date(),
): { supervisedBoot: SupervisedBootOutcome; status: SimStatus } {
  changeModule(stateDir, (m) => {
    m.brownout = false;
  });
  const supervisedBoot = simSupervisedBoot(stateDir, now);
  return { supervisedBoot, status: simStatus(stateDir) };
}

export function simPowerCycle(stateDir: string): SimStatus {
  return simBoot(stateDir).status;
}

/** `systemctl start|stop zkifc` on the simulated host. */
export function simZkifc(stateDir: string, state: SimHost['zkifc']): SimStatus {
  return changeHost(stateDir, (h) => {
    h.zkifc = state;
  });
}

/** The simulated host now runs kernel `version` (`uname -r`). */
export function simKernel(stateDir: string, version: string): SimStatus {
  if (!/^\d+\.\d+/.test(version)) {
    throw new UsageError(`Failed to set the simulated kernel: '${version}' is not a kernel version`, {
      hint: 'e.g. zkluks sim kernel 6.1.0-rpi7-rpi-v8',
    });
  }
  return changeHost(stateDir, (h) => {
    h.kernel = version;
  });
}

/** Set (a number) or remove (null) ZK_GPIO_WAKE_PIN in the simulated zkenv.conf. */
export function simWakePin(stateDir: string, pin: number | null): SimStatus {
  loadSimHost(stateDir);
  writeWakePin(stateDir, pin);
  return simStatus(stateDir);
}
