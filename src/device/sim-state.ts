// The simulator's persistent state, split the way the hardware is split:
//
// - The HOST side is the `--sim-state` directory, the simulator's /var/lib/zymbit: a host file
//   (the Pi's fingerprint, the kernel version, whether zkifc runs, which module is fitted), the
//   salt in a per-serial folder (`<serial>/s1_fp_salt.bin`) and `zkenv.conf` (ZK_GPIO_WAKE_PIN).
// - The MODULE (secret, salt copy, binding, perimeter, battery) lives in a module store OUTSIDE that
//   directory, one file per module id: by default `.zkluks-sim-modules/` beside the host directory,
//   or $ZKLUKS_SIM_MODULES. The chip is a separate board: copying, backing up or restoring the host
//   directory never copies, clones or revives a module.
//
// The SD card's identity (part of the production fingerprint) is the host directory's device and
// inode: a copy of the directory is another card, so a production module refuses it.
// Every read validates the whole file; every write is atomic (temp file + rename, mode 0600).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../atomic-write.ts';
import { ZymkeyUnavailableError } from '../errors.ts';
import type { BindingMode, PerimeterAction } from './port.ts';
import { ZKENV_FILE } from './wake-pin.ts';

export { needsWakePin, readWakePin } from './wake-pin.ts';

export const SIM_HOST_FILE = 'zkluks-sim-host.json';
export const SIM_HOST_FORMAT = 'zkluks-sim-host';
export const SIM_MODULE_FORMAT = 'zkluks-sim-module';
export const SIM_STATE_VERSION = 2;
export const SIM_SALT_FILE = 's1_fp_salt.bin';
export const SIM_ZKENV_FILE = ZKENV_FILE;
/** The module store's location, when not beside the host directory. */
export const SIM_MODULES_ENV = 'ZKLUKS_SIM_MODULES';
/** A fresh simulated host runs a current Raspberry Pi OS kernel (global GPIO numbering). */
export const SIM_DEFAULT_KERNEL = '6.12.25+rpt-rpi-v8';
/** The WAKE pin (GPIO4) under global numbering on a Pi 4, as Zymbit documents it. */
export const SIM_DEFAULT_WAKE_PIN = 516;

/** Models the simulator can pretend to be (the names the real modules report). */
export const SIM_MODELS = ['ZYMKEY4i', 'ZYMKEY5', 'HSM4', 'HSM6', 'HSM60', 'SCM'] as const;
export type SimModel = (typeof SIM_MODELS)[number];

export type SimBatteryAction = 'none' | 'sleep' | 'self-destruct';

/** set_supervised_boot_policy: 0 do nothing, 1 self-destruct, 2 hold the chip in reset. */
export const SIM_SCM_POLICIES = ['none', 'destroy', 'hold-reset'] as const;
export type SimScmPolicy = (typeof SIM_SCM_POLICIES)[number];

/** Supervised Boot (SCM): the policy and the signed manifest the module keeps inside itself. */
export interface SimScm {
  policy: SimScmPolicy;
  /** Path relative to the boot partition (as the API takes it) → SHA-256 hex of the file signed. */
  manifest: Record<string, string>;
  /** Production, policy hold-reset: since when the module holds the Pi in reset (for good). */
  held?: string | null;
}

export interface SimChannel {
  channel: 0 | 1;
  action: PerimeterAction;
  /** ISO 8601 time of the first breach since the last clear; null when none is latched. */
  firstBreach: string | null;
  /** The loop is open now (a breach is an open circuit, not an event: it stays breached). */
  open: boolean;
}

/** Why a module can never work again. */
export type SimDeath =
  | { why: 'self-destruct'; at: string; channel: 0 | 1 }
  | { why: 'battery'; at: string }
  | { why: 'state-lost'; at: string }
  | { why: 'supervised-boot'; at: string; files: string[] };

export interface SimModule {
  format: typeof SIM_MODULE_FORMAT;
  version: typeof SIM_STATE_VERSION;
  created: string;
  model: SimModel;
  serial: string;
  firmware: string;
  /** Public identity of the module, stamped into every blob it seals (hex, 16 bytes). */
  id: string;
  /** The device secret (base64, 32 bytes); null once the module destroyed it. */
  secret: string | null;
  /** The latest salt the module accepted (hex, 32 bytes). */
  salt: string;
  binding: {
    mode: Exclude<BindingMode, 'unknown'>;
    /** Production mode: the Pi and SD card the module is bound to, for good. */
    lockedTo: { pi: string; card: string } | null;
  };
  /** False models a module that does not answer: unplugged, I2C off. */
  plugged: boolean;
  /** A brown-out shut the security services down until the next power cycle. */
  brownout: boolean;
  battery: { present: boolean; action: SimBatteryAction };
  /** HSM6 with the sleep battery policy: asleep until the battery is back. */
  asleep: boolean;
  perimeter: [SimChannel, SimChannel];
  dead: SimDeath | null;
  /** Supervised Boot (SCM only): policy and the signed manifest of boot files. */
  scm: SimScm | null;
}

export interface SimHost {
  format: typeof SIM_HOST_FORMAT;
  version: typeof SIM_STATE_VERSION;
  created: string;
  /** The Pi (CPU id, memory id) the SD card is in now (hex fingerprint). */
  pi: string;
  /** `uname -r` of the running kernel. */
  kernel: string;
  /** Whether zkifc runs. Zymbit's standalone tools need it stopped; the Python API needs it running. */
  zkifc: 'running' | 'stopped';
  /** The id of the module fitted to this Pi. */
  module: string;
  /** The boot partition an SCM supervises (a directory; the API's paths are relative to it). */
  boot?: string | null;
}

export function simHostFile(dir: string): string {
  return join(dir, SIM_HOST_FILE);
}

/** The module store that belongs with host directory `dir`. */
export function simModuleStore(dir: string): string {
  const env = process.env[SIM_MODULES_ENV];
  return env ? resolve(env) : join(dirname(resolve(dir)), '.zkluks-sim-modules');
}

export function simModuleFile(dir: string, id: string): string {
  return join(simModuleStore(dir), `${id}.json`);
}

/** The salt file of module `serial` in host directory `dir` (Zymbit keeps one folder per serial). */
export function simSaltFile(dir: string, serial: string): string {
  return join(dir, serial, SIM_SALT_FILE);
}

/** The SD card's identity: a copy or a restored backup of the directory is a different card. */
export function simCardId(dir: string): string {
  const st = statSync(dir);
  return `${st.dev}:${st.ino}`;
}

export function newFingerprint(): string {
  return randomUUID().replace(/-/g, '');
}
export const newHostFingerprint = newFingerprint;

export function newSimModule(model: SimModel = 'ZYMKEY4i', now: Date = new Date()): SimModule {
  const channel = (c: 0 | 1): SimChannel => ({ channel: c, action: 'none', firstBreach: null, open: false });
  return {
    format: SIM_MODULE_FORMAT,
    version: SIM_STATE_VERSION,
    created: now.toISOString(),
    model,
    serial: `SIM-${randomBytes(6).toString('hex').toUpperCase()}`,
    firmware: '01.00.00-sim',
    id: randomBytes(16).toString('hex'),
    secret: randomBytes(32).toString('base64'),
    salt: randomBytes(32).toString('hex'),
    binding: { mode: 'developer', lockedTo: null },
    plugged: true,
    brownout: false,
    battery: { present: true, action: 'none' },
    asleep: false,
    perimeter: [channel(0), channel(1)],
    dead: null,
    // Zymbit's SCM firmware self-destructs on a Supervised Boot failure in production whatever the
    // policy says (release notes, issue #126); the simulator starts with that policy.
    scm: model === 'SCM' ? { policy: 'destroy', manifest: {}, held: null } : null,
  };
}

export function newSimHost(moduleId: string, now: Date = new Date()): SimHost {
  return {
    format: SIM_HOST_FORMAT,
    version: SIM_STATE_VERSION,
    created: now.toISOString(),
    pi: newFingerprint(),
    kernel: SIM_DEFAULT_KERNEL,
    zkifc: 'running',
    module: moduleId,
  };
}

function corrupt(file: string, why: string): ZymkeyUnavailableError {
  return new ZymkeyUnavailableError(
    'state-corrupt',
    `Failed to read simulator state '${file}': ${why}. A real Zymkey with damaged /var/lib/zymbit stops working (for good in production mode)`,
    {
      hint: 'zkluks sim init --force (fits a new simulated module; blobs sealed by the old one stay sealed)',
    },
  );
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isIso = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isHex = (v: unknown, bytes?: number): v is string =>
  typeof v === 'string' && /^[0-9a-f]+$/.test(v) && (bytes === undefined || v.length === bytes * 2);

function parseJson(text: string, file: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw corrupt(file, `not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(raw)) throw corrupt(file, 'not a zkluks simulator state file');
  return raw;
}

function checkVersion(raw: Record<string, unknown>, file: string, format: string): void {
  if (raw.format !== format) throw corrupt(file, 'not a zkluks simulator state file');
  if (raw.version !== SIM_STATE_VERSION) {
    throw corrupt(
      file,
      `unknown state version ${JSON.stringify(raw.version)} (this zkluks reads version ${SIM_STATE_VERSION})`,
    );
  }
}

/** Validate the host file; throws 'state-corrupt' naming the first bad field. */
export function parseSimHost(text: string, file: string): SimHost {
  const raw = parseJson(text, file);
  checkVersion(raw, file, SIM_HOST_FORMAT);
  const bad = (field: string) => corrupt(file, `field '${field}' is missing or invalid`);
  if (!isIso(raw.created)) throw bad('created');
  if (!isHex(raw.pi)) throw bad('pi');
  if (typeof raw.kernel !== 'string' || !/^\d+\.\d+/.test(raw.kernel)) throw bad('kernel');
  if (raw.zkifc !== 'running' && raw.zkifc !== 'stopped') throw bad('zkifc');
  if (!isHex(raw.module, 16)) throw bad('module');
  if (raw.boot !== undefined && raw.boot !== null && typeof raw.boot !== 'string') throw bad('boot');
  return raw as unknown as SimHost;
}

/** Validate a module file; throws 'state-corrupt' naming the first bad field. */
export function parseSimModule(text: string, file: string): SimModule {
  const raw = parseJson(text, file);
  checkVersion(raw, file, SIM_MODULE_FORMAT);
  const bad = (field: string) => corrupt(file, `field '${field}' is missing or invalid`);
  if (!isIso(raw.created)) throw bad('created');
  if (!SIM_MODELS.includes(raw.model as SimModel)) throw bad('model');
  if (typeof raw.serial !== 'string' || !/^[A-Za-z0-9-]+$/.test(raw.serial)) throw bad('serial');
  if (typeof raw.firmware !== 'string') throw bad('firmware');
  if (!isHex(raw.id, 16)) throw bad('id');
  if (
    raw.secret !== null &&
    (typeof raw.secret !== 'string' || Buffer.from(raw.secret, 'base64').length !== 32)
  ) {
    throw bad('secret');
  }
  if (!isHex(raw.salt, 32)) throw bad('salt');
  const b = raw.binding;
  if (!isObject(b) || (b.mode !== 'developer' && b.mode !== 'production')) throw bad('binding.mode');
  const l = b.lockedTo;
  if ((b.mode === 'production') !== (isObject(l) && isHex(l.pi) && typeof l.card === 'string'))
    throw bad('binding.lockedTo');
  for (const f of ['plugged', 'brownout', 'asleep'] as const) if (typeof raw[f] !== 'boolean') throw bad(f);
  const bat = raw.battery;
  if (
    !isObject(bat) ||
    typeof bat.present !== 'boolean' ||
    !['none', 'sleep', 'self-destruct'].includes(bat.action as string)
  )
    throw bad('battery');
  const p = raw.perimeter;
  if (!Array.isArray(p) || p.length !== 2) throw bad('perimeter');
  p.forEach((c: unknown, i) => {
    if (!isObject(c) || c.channel !== i) throw bad(`perimeter[${i}].channel`);
    if (c.action !== 'none' && c.action !== 'notify' && c.action !== 'self-destruct')
      throw bad(`perimeter[${i}].action`);
    if (c.firstBreach !== null && !isIso(c.firstBreach)) throw bad(`perimeter[${i}].firstBreach`);
    if (typeof c.open !== 'boolean') throw bad(`perimeter[${i}].open`);
  });
  const d = raw.dead;
  if (
    d !== null &&
    (!isObject(d) ||
      !isIso(d.at) ||
      !['self-destruct', 'battery', 'state-lost', 'supervised-boot'].includes(d.why as string))
  )
    throw bad('dead');
  if (d !== null && raw.secret !== null) throw corrupt(file, 'a destroyed module still holds a secret');
  const scm = raw.scm;
  if (
    scm !== null &&
    (!isObject(scm) ||
      !SIM_SCM_POLICIES.includes(scm.policy as SimScmPolicy) ||
      !isObject(scm.manifest) ||
      !Object.values(scm.manifest).every((h) => isHex(h, 32)) ||
      (scm.held !== undefined && scm.held !== null && !isIso(scm.held)))
  )
    throw bad('scm');
  return raw as unknown as SimModule;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw corrupt(file, `cannot be read (${code ?? (error as Error).message})`);
  }
}

function isDirectory(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** The host side; 'state-missing' when the directory or its host file is absent. */
export function loadSimHost(dir: string): SimHost {
  const file = simHostFile(dir);
  const text = readText(file);
  if (text === null) {
    throw new ZymkeyUnavailableError(
      'state-missing',
      isDirectory(dir)
        ? `Failed to read simulator state: '${file}' is missing. A Zymkey whose /var/lib/zymbit lost its files stops working (for good in production mode)`
        : `Failed to read simulator state: directory '${dir}' does not exist. A Zymkey without /var/lib/zymbit cannot work`,
      { hint: `zkluks sim init --sim-state '${dir}'` },
    );
  }
  return parseSimHost(text, file);
}

/** The module with this id in the store of `dir`; null when no such module exists there. */
export function loadSimModule(dir: string, id: string): SimModule | null {
  const file = simModuleFile(dir, id);
  const text = readText(file);
  return text === null ? null : parseSimModule(text, file);
}

export function saveSimHost(dir: string, host: SimHost): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(simHostFile(dir), `${JSON.stringify(host, null, 2)}\n`, 0o600);
}

export function saveSimModule(dir: string, module: SimModule): void {
  mkdirSync(simModuleStore(dir), { recursive: true, mode: 0o700 });
  writeFileAtomic(simModuleFile(dir, module.id), `${JSON.stringify(module, null, 2)}\n`, 0o600);
}

/** The salt in the host directory (hex), null when the file is missing or not 32 bytes. */
export function readHostSalt(dir: string, serial: string): string | null {
  try {
    const salt = readFileSync(simSaltFile(dir, serial));
    return salt.length === 32 ? salt.toString('hex') : null;
  } catch {
    return null;
  }
}

export function writeHostSalt(dir: string, serial: string, salt: string): void {
  mkdirSync(join(dir, serial), { recursive: true, mode: 0o700 });
  writeFileAtomic(simSaltFile(dir, serial), Buffer.from(salt, 'hex'), 0o600);
}

export function writeWakePin(dir: string, pin: number | null): void {
  writeFileAtomic(join(dir, SIM_ZKENV_FILE), pin === null ? '' : `ZK_GPIO_WAKE_PIN=${pin}\n`, 0o644);
}
