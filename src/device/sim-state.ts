// The simulator's persistent state: one versioned JSON file in the state directory (the simulator's
// /var/lib/zymbit). Every read validates the whole file; every write is atomic (temp file + rename,
// mode 0600), so a crash or a concurrent reader never sees half a state.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.ts';
import { ZymkeyUnavailableError } from '../errors.ts';
import type { BindingMode, PerimeterAction } from './port.ts';

export const SIM_STATE_FILE = 'zkluks-sim.json';
export const SIM_STATE_FORMAT = 'zkluks-sim';
export const SIM_STATE_VERSION = 1;

/** Models the simulator can pretend to be (the names the real modules report). */
export const SIM_MODELS = ['ZYMKEY4i', 'ZYMKEY5', 'HSM4', 'HSM6', 'HSM60'] as const;
export type SimModel = (typeof SIM_MODELS)[number];

export interface SimChannel {
  channel: 0 | 1;
  action: PerimeterAction;
  /** ISO 8601 time of the first breach since the last clear; null when none is latched. */
  firstBreach: string | null;
}

export interface SimState {
  format: typeof SIM_STATE_FORMAT;
  version: typeof SIM_STATE_VERSION;
  created: string;
  module: {
    model: SimModel;
    serial: string;
    firmware: string;
    /** Public identity of the module, stamped into every blob it seals (hex, 16 bytes). */
    id: string;
  };
  /** The device secret (base64, 32 bytes); null once a self-destruct destroyed it. */
  secret: string | null;
  /** The Pi the module currently sits on (hex fingerprint). */
  host: string;
  binding: {
    mode: Exclude<BindingMode, 'unknown'>;
    /** The host the module is bound to; in developer mode it follows the module to any host. */
    boundHost: string;
  };
  /** False models an unreachable module: I2C off, wake pin unset, unplugged. */
  reachable: boolean;
  perimeter: [SimChannel, SimChannel];
  /** Set when a self-destruct destroyed the key material. */
  selfDestruct: { at: string; channel: 0 | 1 } | null;
}

export function simStateFile(dir: string): string {
  return join(dir, SIM_STATE_FILE);
}

/** A fresh simulated module on a fresh host, in developer mode, perimeter unarmed. */
export function newSimState(model: SimModel = 'ZYMKEY4i', now: Date = new Date()): SimState {
  const host = newHostFingerprint();
  return {
    format: SIM_STATE_FORMAT,
    version: SIM_STATE_VERSION,
    created: now.toISOString(),
    module: {
      model,
      serial: `SIM-${randomBytes(6).toString('hex').toUpperCase()}`,
      firmware: '01.00.00-sim',
      id: randomBytes(16).toString('hex'),
    },
    secret: randomBytes(32).toString('base64'),
    host,
    binding: { mode: 'developer', boundHost: host },
    reachable: true,
    perimeter: [
      { channel: 0, action: 'none', firstBreach: null },
      { channel: 1, action: 'none', firstBreach: null },
    ],
    selfDestruct: null,
  };
}

export function newHostFingerprint(): string {
  return randomUUID().replace(/-/g, '');
}

function corrupt(file: string, why: string): ZymkeyUnavailableError {
  return new ZymkeyUnavailableError(
    'state-corrupt',
    `Failed to read simulator state '${file}': ${why}. A real Zymkey with damaged /var/lib/zymbit stops working (for good in production mode)`,
    {
      hint: 'zkluks sim init --force (creates a new simulated module; blobs sealed by the old one stay sealed)',
    },
  );
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isIso = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isHex = (v: unknown, bytes?: number): v is string =>
  typeof v === 'string' && /^[0-9a-f]+$/.test(v) && (bytes === undefined || v.length === bytes * 2);

/** Validate parsed JSON as a SimState; throws 'state-corrupt' naming the first bad field. */
export function parseSimState(text: string, file: string): SimState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw corrupt(file, `not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(raw) || raw.format !== SIM_STATE_FORMAT)
    throw corrupt(file, 'not a zkluks simulator state file');
  if (raw.version !== SIM_STATE_VERSION) {
    throw corrupt(
      file,
      `unknown state version ${JSON.stringify(raw.version)} (this zkluks reads version ${SIM_STATE_VERSION})`,
    );
  }
  const bad = (field: string) => corrupt(file, `field '${field}' is missing or invalid`);
  if (!isIso(raw.created)) throw bad('created');
  const m = raw.module;
  if (!isObject(m)) throw bad('module');
  if (!SIM_MODELS.includes(m.model as SimModel)) throw bad('module.model');
  if (typeof m.serial !== 'string' || m.serial === '') throw bad('module.serial');
  if (typeof m.firmware !== 'string') throw bad('module.firmware');
  if (!isHex(m.id, 16)) throw bad('module.id');
  if (
    raw.secret !== null &&
    (typeof raw.secret !== 'string' || Buffer.from(raw.secret, 'base64').length !== 32)
  ) {
    throw bad('secret');
  }
  if (!isHex(raw.host)) throw bad('host');
  const b = raw.binding;
  if (!isObject(b) || (b.mode !== 'developer' && b.mode !== 'production')) throw bad('binding.mode');
  if (!isHex(b.boundHost)) throw bad('binding.boundHost');
  if (typeof raw.reachable !== 'boolean') throw bad('reachable');
  const p = raw.perimeter;
  if (!Array.isArray(p) || p.length !== 2) throw bad('perimeter');
  p.forEach((c: unknown, i) => {
    if (!isObject(c) || c.channel !== i) throw bad(`perimeter[${i}].channel`);
    if (c.action !== 'none' && c.action !== 'notify' && c.action !== 'self-destruct')
      throw bad(`perimeter[${i}].action`);
    if (c.firstBreach !== null && !isIso(c.firstBreach)) throw bad(`perimeter[${i}].firstBreach`);
  });
  const sd = raw.selfDestruct;
  if (sd !== null && (!isObject(sd) || !isIso(sd.at) || (sd.channel !== 0 && sd.channel !== 1)))
    throw bad('selfDestruct');
  if (sd !== null && raw.secret !== null)
    throw corrupt(file, 'a self-destructed module still holds a secret');
  return raw as unknown as SimState;
}

/** Read the state; 'state-missing' when the directory or file is absent, 'state-corrupt' otherwise. */
export function loadSimState(dir: string): SimState {
  const file = simStateFile(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const dirExists = (() => {
        try {
          return statSync(dir).isDirectory();
        } catch {
          return false;
        }
      })();
      throw new ZymkeyUnavailableError(
        'state-missing',
        dirExists
          ? `Failed to read simulator state: '${file}' is missing. A Zymkey whose /var/lib/zymbit lost its files stops working (for good in production mode)`
          : `Failed to read simulator state: directory '${dir}' does not exist. A Zymkey without /var/lib/zymbit cannot work`,
        { hint: `zkluks sim init --sim-state '${dir}'` },
      );
    }
    throw corrupt(file, `cannot be read (${code ?? (error as Error).message})`);
  }
  return parseSimState(text, file);
}

/** Write the state atomically (a 0600 temp file beside it, flushed and renamed). */
export function saveSimState(dir: string, state: SimState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(simStateFile(dir), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}
