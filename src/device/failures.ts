// What each Zymkey failure means for the disk, and what to do about it. Every backend builds its
// ZymkeyUnavailableError here, so the same reason always reads the same way.
import { ZkluksError, ZymkeyUnavailableError, type ZymkeyFailure } from '../errors.ts';

/** What the operation was, as it reads after "Failed to": e.g. "unseal data with the Zymkey". */
export type ZymkeyAction = string;

interface Explanation {
  meaning: string;
  hint: string;
}

const RECOVER =
  'unlock with the recovery key or a passphrase at the boot prompt, then seal a new key: zkluks enroll --force --unlock-key-file FILE VOLUME';

const EXPLANATIONS: Record<ZymkeyFailure, Explanation> = {
  'self-destructed': {
    meaning:
      'the module destroyed its key material after a perimeter breach; data sealed by it can never be unsealed again, so the Zymkey keyslot of every disk it sealed is useless',
    hint: `${RECOVER} (once a new module is fitted)`,
  },
  unreachable: {
    meaning:
      'the module does not answer on I2C (I2C disabled, wake pin unset, module unplugged); nothing can be sealed or unsealed until it answers',
    hint: 'zkluks device probe (simulator: zkluks sim plug)',
  },
  'not-bound': {
    meaning: 'the module has not bound to this host yet; it refuses every crypto call until it binds',
    hint: 'systemctl restart zkifc, then wait for 1 blink every 3 s',
  },
  'host-mismatch': {
    meaning:
      'the module is bound in production mode to another host and shuts down its security services here; the disk unlocks with the Zymkey only on the original Pi with this module',
    hint: `put the module back on its original Pi, or ${RECOVER}`,
  },
  'wrong-module': {
    meaning: 'the data was sealed by a different Zymkey; only that module can unseal it',
    hint: `use the module that sealed it, or ${RECOVER}`,
  },
  'corrupt-blob': {
    meaning: 'the sealed data failed authentication (damaged or altered); no module can unseal it',
    hint: `restore the LUKS header backup, or ${RECOVER}`,
  },
  'state-missing': {
    meaning:
      'the module state directory is missing; the Zymkey cannot work without it (for good in production mode)',
    hint: 'zkluks sim init (simulator); on a real Pi restore /var/lib/zymbit from backup',
  },
  'state-corrupt': {
    meaning: 'the module state cannot be read; the Zymkey cannot work with it (for good in production mode)',
    hint: 'zkluks sim init --force (simulator); on a real Pi restore /var/lib/zymbit from backup',
  },
  'tool-missing': {
    meaning: "Zymbit's standalone tools are not installed, so the module cannot be reached from here",
    hint: 'apt-get install zksaapps',
  },
  timeout: {
    meaning:
      "the Zymkey did not answer: Zymbit's tool waited on the module until zkluks stopped it (the module hangs, or I2C does)",
    hint: 'zkluks device probe (does the module answer on I2C?), then zkluks doctor',
  },
  unknown: {
    meaning: 'zkluks cannot tell the cause from what it can check itself',
    hint: 'zkluks doctor',
  },
};

/**
 * `Failed to <action>: <cause>; <meaning>` with the reason's hint. `cause` is the specific
 * circumstance (e.g. "perimeter channel 0 breached at …"); it defaults to nothing.
 */
export function zymkeyFailure(
  reason: ZymkeyFailure,
  action: ZymkeyAction,
  cause?: string,
  hint?: string,
): ZymkeyUnavailableError {
  const e = EXPLANATIONS[reason];
  const because = cause ? `${cause}; ${e.meaning}` : e.meaning;
  return new ZymkeyUnavailableError(reason, `Failed to ${action}: ${reason}: ${because}`, {
    hint: hint ?? e.hint,
  });
}

/**
 * The part of a failure message after `Failed to <action>: <reason>: `, i.e. cause and meaning; the
 * whole message when it has no such prefix.
 */
export function failureExplanation(error: ZymkeyUnavailableError): string {
  const marker = `: ${error.reason}: `;
  const at = error.message.indexOf(marker);
  return at === -1 ? error.message : error.message.slice(at + marker.length);
}

/**
 * Any error of a Zymkey call as the reason and one-line explanation that the tool contract
 * (`<tool>: <reason>: <explanation>`) and the socket protocol (`ERR <reason> <explanation>`) carry.
 */
export function failureOf(error: unknown): { reason: ZymkeyFailure; explanation: string } {
  if (error instanceof ZymkeyUnavailableError) {
    return { reason: error.reason, explanation: failureExplanation(error) };
  }
  if (error instanceof ZkluksError) return { reason: 'unknown', explanation: error.message };
  return { reason: 'unknown', explanation: `internal error: ${(error as Error).message}` };
}
