// The Zymkey port: everything zkluks asks of the module. Backends: zymbit (the real module through
// Zymbit's tools) and sim (the software Zymkey). Failures throw ZymkeyUnavailableError with a reason.
import { UsageError } from '../errors.ts';

export type Backend = 'zymbit' | 'sim';

export interface ZymkeyInfo {
  /** e.g. "ZYMKEY4i", "HSM6"; "unknown" when it cannot be read. */
  model: string;
  serial: string;
  firmware: string;
}

export type BindingMode = 'developer' | 'production' | 'unknown';

export interface BindingInfo {
  mode: BindingMode;
  /** Bound to a host at all; null when unknown. */
  bound: boolean | null;
}

export type PerimeterAction = 'none' | 'notify' | 'self-destruct';

export interface PerimeterChannel {
  channel: 0 | 1;
  action: PerimeterAction | 'unknown';
  /** ISO 8601 time of the first (latched) breach, null when none is latched. */
  firstBreach: string | null;
}

/** Supervised Boot (SCM, Secure Edge Node): what the module tells about its manifest of boot files. */
export interface SupervisedBootInfo {
  /** The module supervises the boot (an SCM); false: no such module here. */
  scm: boolean;
  /** The manifest's paths, relative to the boot partition; null when they could not be read. */
  manifest: string[] | null;
  /** Why the manifest could not be read; null when it was. */
  error: string | null;
}

/** What the caller knows about sealed data, for telling why an unseal failed. */
export interface UnsealContext {
  /** The serial of the module that sealed it, as the token recorded it. */
  sealedBy?: string;
}

export interface ZymkeyPort {
  readonly backend: Backend;
  randomBytes(n: number): Promise<Buffer>;
  seal(plain: Buffer): Promise<Buffer>;
  unseal(sealed: Buffer, context?: UnsealContext): Promise<Buffer>;
  info(): Promise<ZymkeyInfo>;
  binding(): Promise<BindingInfo>;
  perimeter(): Promise<PerimeterChannel[]>;
  /** Whether the module is an SCM and which files its Supervised Boot manifest holds. */
  supervisedBoot?(): Promise<SupervisedBootInfo>;
  /** Sign `file` (relative to the boot partition) in the manifest as it is now. */
  updateSupervisedBootFile?(file: string): Promise<void>;
  /** Take `file` out of the manifest: the module no longer verifies it at boot. */
  removeSupervisedBootFile?(file: string): Promise<void>;
}

/** Largest randomBytes request, like the real tools' practical limit (Zymbit seals 512 bytes). */
export const MAX_RANDOM_BYTES = 65536;

/** The count every backend's randomBytes accepts: a whole number from 1 to MAX_RANDOM_BYTES. */
export function checkRandomCount(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_RANDOM_BYTES) {
    throw new UsageError(
      `Failed to read random bytes: count must be an integer from 1 to ${MAX_RANDOM_BYTES}, got ${n}`,
    );
  }
}
