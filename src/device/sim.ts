// The sim backend: a software Zymkey behind the same port as the real module. Every call reads the
// host directory and the module afresh, so a breach or an unplug done by `zkluks sim …` in another
// process takes effect on the next call (also in a running `zkluks sim serve`).
//
// The module answers no more than the model it imitates: perimeter actions cannot be read back (the
// API has no getter), a ZYMKEY4 refuses the binding query, a destroyed module answers nothing.
// In opaque mode (ZKLUKS_SIM_OPAQUE) a failing crypto call reaches zkluks as an opaque tool run would
// and is explained from the same probes as the zymbit backend's, and a failing API call gives no reason.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ZymkeyUnavailableError } from '../errors.ts';
import { failureOf, zymkeyFailure } from './failures.ts';
import {
  checkRandomCount,
  type BindingInfo,
  type PerimeterChannel,
  type SupervisedBootInfo,
  type UnsealContext,
  type ZymkeyInfo,
  type ZymkeyPort,
} from './port.ts';
import { BlobError, openBlob, sealBlob } from './sealed-blob.ts';
import { simScmAddOrUpdate, simScmManifest, simScmRemove } from './sim-scm.ts';
import { simOpaqueMode, simToolFailure } from './sim-opaque.ts';
import {
  loadSimHost,
  loadSimModule,
  needsWakePin,
  parseSimModule,
  readHostSalt,
  readWakePin,
  saveSimModule,
  simCardId,
  simModuleStore,
  writeHostSalt,
  type SimHost,
  type SimModel,
  type SimModule,
} from './sim-state.ts';
import {
  DEFAULT_TOOL_TIMEOUT_MS,
  explainToolFailure,
  stateDirFact,
  type ModuleProbes,
} from './tool-failure.ts';
/** Models that answer get_current_binding_info (the HSM family, ZYMKEY5, SCM); a ZYMKEY4 refuses it. */
export function answersBindingQuery(model: SimModel): boolean {
  return model !== 'ZYMKEY4i';
}

/** Models with a battery policy of their own (set_battery_voltage_action). */
export function hasBatteryPolicy(model: SimModel): boolean {
  return model === 'HSM6' || model === 'HSM60' || model === 'SCM';
}

/**
 * What is asking: `api` is Zymbit's Python/C API through zkifc (needs zkifc running); `tool` is a
 * standalone zk*ifs tool (needs zkifc stopped); `backend` is the whole zymbit backend, which stops
 * zkifc around each tool and starts it again.
 */
export type SimCaller = 'api' | 'tool' | 'backend';

export interface SimSession {
  dir: string;
  host: SimHost;
  module: SimModule;
  card: string;
}

/** The production module locked to this directory's card, if any: it outlives a deleted host file. */
function moduleLockedToCard(dir: string): SimModule | null {
  let card: string;
  try {
    card = simCardId(dir);
  } catch {
    return null;
  }
  const store = simModuleStore(dir);
  let names: string[];
  try {
    names = readdirSync(store).filter((n) => n.endsWith('.json'));
  } catch {
    return null;
  }
  for (const name of names) {
    try {
      const file = join(store, name);
      const m = parseSimModule(readFileSync(file, 'utf8'), file);
      if (m.binding.lockedTo?.card === card) return m;
    } catch {
      // Not a module file of ours.
    }
  }
  return null;
}

/** A production module whose state was lost: it can never be used again. */
function loseState(dir: string, module: SimModule): void {
  if (module.dead === null) {
    module.dead = { why: 'state-lost', at: new Date().toISOString() };
    module.secret = null;
    saveSimModule(dir, module);
  }
}

function deadFailure(module: SimModule, action: string): ZymkeyUnavailableError {
  const d = module.dead;
  if (d?.why === 'state-lost') {
    return zymkeyFailure(
      'state-missing',
      action,
      `the module is in production mode and its /var/lib/zymbit state was deleted or damaged at ${d.at}; it can never be used again`,
    );
  }
  return zymkeyFailure(
    'self-destructed',
    action,
    d?.why === 'self-destruct'
      ? `perimeter channel ${d.channel} was breached at ${d.at} with self-destruct armed in production mode`
      : d?.why === 'battery'
        ? `the battery was removed at ${d?.at} with tamper detect armed in production mode`
        : d?.why === 'supervised-boot'
          ? `Supervised Boot found ${d.files.join(', ')} changed since it was signed, at the boot of ${d.at}, in production mode`
          : undefined,
  );
}

/**
 * Open a session with the module fitted to host `dir`, or fail the way the module would. Checks, in
 * order: host state, fitted module, destroyed, unplugged/asleep, production binding (Pi and card),
 * salt, binding established (brown-out, WAKE pin), zkifc.
 */
export function simSession(dir: string, action: string, caller: SimCaller): SimSession {
  let host: SimHost;
  try {
    host = loadSimHost(dir);
  } catch (error) {
    if (error instanceof ZymkeyUnavailableError && error.reason === 'state-missing') {
      const locked = moduleLockedToCard(dir);
      if (locked) {
        loseState(dir, locked);
        throw deadFailure(locked, action);
      }
    }
    throw error;
  }
  const module = loadSimModule(dir, host.module);
  if (module === null) {
    throw zymkeyFailure(
      'unreachable',
      action,
      `no module is fitted to this Pi (module ${host.module} is not in the module store ${simModuleStore(dir)})`,
    );
  }
  if (module.dead) throw deadFailure(module, action);
  if (!module.plugged) throw zymkeyFailure('unreachable', action, 'the simulated module is unplugged');
  if (module.scm?.held) {
    throw zymkeyFailure(
      'unreachable',
      action,
      `the SCM holds the Pi in reset since ${module.scm.held}: a Supervised Boot file failed verification in production mode`,
    );
  }
  if (module.asleep) {
    throw zymkeyFailure('unreachable', action, 'the module sleeps until its battery is replaced');
  }
  const card = simCardId(dir);
  const lock = module.binding.lockedTo;
  if (lock && (lock.pi !== host.pi || lock.card !== card)) {
    throw zymkeyFailure(
      'host-mismatch',
      action,
      lock.pi !== host.pi
        ? `the module is bound to Pi ${lock.pi} but sits on Pi ${host.pi}`
        : `the module is bound to SD card ${lock.card} but this state is on card ${card} (a copy or a restored backup)`,
    );
  }
  const salt = readHostSalt(dir, module.serial);
  if (salt === null) {
    if (module.binding.mode === 'production') {
      loseState(dir, module);
      throw deadFailure(module, action);
    }
    throw zymkeyFailure('state-missing', action, `the salt '${module.serial}/s1_fp_salt.bin' is missing`);
  }
  if (salt !== module.salt) {
    if (module.binding.mode === 'production') {
      throw zymkeyFailure(
        'state-corrupt',
        action,
        `the salt in '${module.serial}/s1_fp_salt.bin' does not match the one the module holds, and production mode requires a match`,
      );
    }
    // Developer mode accepts a salt that does not match and regenerates it.
    module.salt = randomBytes(32).toString('hex');
    writeHostSalt(dir, module.serial, module.salt);
    saveSimModule(dir, module);
  }
  if (module.brownout) {
    throw zymkeyFailure(
      'not-bound',
      action,
      'a brown-out shut the security services down until a power cycle',
    );
  }
  if (needsWakePin(host.kernel) && readWakePin(dir) === null) {
    throw zymkeyFailure(
      'not-bound',
      action,
      `kernel ${host.kernel} numbers GPIOs globally and zkenv.conf sets no ZK_GPIO_WAKE_PIN, so the module never binds`,
    );
  }
  if (caller === 'tool' && host.zkifc === 'running') {
    throw zymkeyFailure(
      'unknown',
      action,
      "zkifc is running; Zymbit's standalone tools need it stopped (systemctl stop zkifc)",
    );
  }
  if (caller === 'api' && host.zkifc === 'stopped') {
    throw zymkeyFailure('unknown', action, 'zkifc is not running, so the API cannot reach the module');
  }
  return { dir, host, module, card };
}

function secretOf(s: SimSession): Buffer {
  // A live module always holds its secret (parseSimModule guarantees dead ⇔ no secret).
  return Buffer.from(s.module.secret ?? '', 'base64');
}

/** Seal as the module of `session` does. */
export function simSeal(session: SimSession, plain: Buffer): Buffer {
  const m = session.module;
  return sealBlob(plain, {
    secret: secretOf(session),
    moduleId: Buffer.from(m.id, 'hex'),
    host: m.binding.mode === 'production' ? session.host.pi : null,
  });
}

/** Unseal as the module of `session` does. */
export function simUnseal(session: SimSession, sealed: Buffer, action: string): Buffer {
  try {
    return openBlob(sealed, secretOf(session), Buffer.from(session.module.id, 'hex'), session.host.pi);
  } catch (error) {
    if (error instanceof BlobError) throw zymkeyFailure(error.reason, action, error.message);
    throw error;
  }
}

/** The simulated host's running kernel, null when its host file cannot be read. */
function simHostKernel(dir: string): string | null {
  try {
    return loadSimHost(dir).kernel;
  } catch {
    return null;
  }
}

export class SimZymkey implements ZymkeyPort {
  readonly backend = 'sim' as const;

  constructor(readonly stateDir: string) {}

  /** What zkluks can check itself: the host directory and the module's API; the simulator has no bus. */
  private probes(): ModuleProbes {
    return {
      stateDir: this.stateDir,
      stateDirFact: () => stateDirFact(this.stateDir),
      bus: async () => null,
      zkifcNotStopped: null,
      api: async () => {
        try {
          return { answers: true, serial: (await this.info()).serial };
        } catch {
          return { answers: false, serial: null };
        }
      },
      kernel: simHostKernel(this.stateDir),
    };
  }

  /** A crypto call standing for `tool`; in opaque mode its failure is told as the zymbit backend tells one. */
  private async crypto<T>(
    tool: string,
    action: string,
    call: () => T,
    context: UnsealContext & { unsealing?: boolean } = {},
  ): Promise<T> {
    const mode = simOpaqueMode();
    try {
      return call();
    } catch (error) {
      if (mode === null || !(error instanceof ZymkeyUnavailableError)) throw error;
      const { reason, explanation } = failureOf(error);
      const r = simToolFailure(tool, reason, explanation, mode);
      const run = {
        tool,
        exitCode: r.exitCode,
        signal: r.signal ?? null,
        timedOut: r.hang === true,
        stderr: r.stderr,
      };
      throw await explainToolFailure(run, action, this.probes(), {
        timeoutMs: DEFAULT_TOOL_TIMEOUT_MS,
        ...context,
      });
    }
  }

  /** An API call; in opaque mode its failure carries no reason, as Zymbit's API gives none. */
  private api<T>(action: string, call: () => T): T {
    try {
      return call();
    } catch (error) {
      if (simOpaqueMode() === null || !(error instanceof ZymkeyUnavailableError)) throw error;
      throw zymkeyFailure(
        'unknown',
        action,
        'the API call failed (zkOpen failed or the call returned an error code)',
      );
    }
  }

  async randomBytes(n: number): Promise<Buffer> {
    checkRandomCount(n);
    const action = 'read random bytes from the Zymkey';
    return this.crypto('zkgrifs', action, () => {
      simSession(this.stateDir, action, 'backend');
      return randomBytes(n);
    });
  }

  async seal(plain: Buffer): Promise<Buffer> {
    const action = 'seal data with the Zymkey';
    return this.crypto('zklockifs', action, () =>
      simSeal(simSession(this.stateDir, action, 'backend'), plain),
    );
  }

  async unseal(sealed: Buffer, context: UnsealContext = {}): Promise<Buffer> {
    const action = 'unseal data with the Zymkey';
    return this.crypto(
      'zkunlockifs',
      action,
      () => simUnseal(simSession(this.stateDir, action, 'backend'), sealed, action),
      { ...context, unsealing: true },
    );
  }

  async info(): Promise<ZymkeyInfo> {
    const action = 'read Zymkey info';
    const { model, serial, firmware } = this.api(action, () =>
      simSession(this.stateDir, action, 'api'),
    ).module;
    return { model, serial, firmware };
  }

  async binding(): Promise<BindingInfo> {
    const action = 'read Zymkey binding';
    const s = this.api(action, () => simSession(this.stateDir, action, 'api'));
    // get_current_binding_info is only valid for the HSM family: a ZYMKEY4 gives nothing to read.
    if (!answersBindingQuery(s.module.model)) return { mode: 'unknown', bound: null };
    // A session exists only on a host the module is bound to (production) or follows (developer).
    return { mode: s.module.binding.mode, bound: true };
  }

  async perimeter(): Promise<PerimeterChannel[]> {
    const action = 'read Zymkey perimeter';
    const s = this.api(action, () => simSession(this.stateDir, action, 'api'));
    // get_perimeter_detect_info gives the first-breach times; the actions cannot be read back.
    return s.module.perimeter.map((c) => ({
      channel: c.channel,
      action: 'unknown',
      firstBreach: c.firstBreach,
    }));
  }

  /**
   * An SCM shows itself as a device (/dev/zscm*) whether or not its API answers: here, a fitted
   * module of model SCM. The manifest comes through the API.
   */
  async supervisedBoot(): Promise<SupervisedBootInfo> {
    let module: SimModule | null = null;
    try {
      module = loadSimModule(this.stateDir, loadSimHost(this.stateDir).module);
    } catch {
      module = null;
    }
    if (module?.model !== 'SCM') return { scm: false, manifest: null, error: null };
    try {
      return { scm: true, manifest: simScmManifest(this.stateDir), error: null };
    } catch (error) {
      return { scm: true, manifest: null, error: (error as Error).message };
    }
  }

  async updateSupervisedBootFile(file: string): Promise<void> {
    simScmAddOrUpdate(this.stateDir, file);
  }

  async removeSupervisedBootFile(file: string): Promise<void> {
    simScmRemove(this.stateDir, file);
  }
}
