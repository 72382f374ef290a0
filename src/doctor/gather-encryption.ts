// Facts about the encrypt-root journey: the armed boot's plan, the record the encrypting boot left
// in /run/zkluks, whether cmdline.txt commits the next boot, which of the encrypting boot's files are
// still there, and whether the volume's header says the in-place encryption is unfinished.
import { existsSync } from 'node:fs';
import type { Runner } from '../exec.ts';
import { parsePlanConf } from '../migrate/encrypt-root/boot-files.ts';
import { reencryptionPending } from '../migrate/encrypt-root/finish.ts';
import { ENCRYPT_PATHS, LEFTOVERS } from '../migrate/encrypt-root/layout.ts';
import { cmdlineRoot } from '../migrate/encrypt-root/root-files.ts';
import { under } from '../root-path.ts';
import { parseBootRecord } from './gather-boot-record.ts';
import { readText } from '../read-text.ts';

export interface EncryptionFacts {
  /** plan.conf's values; null when the next boot is not armed (or --finish removed it). */
  plan: Record<string, string> | null;
  /** The encrypting boot's record (state, reason, detail, progress…); null when there is none. */
  record: Record<string, string> | null;
  /** cmdline.txt's root= value; null when there is no cmdline.txt. */
  cmdlineRoot: string | null;
  /** The encrypting boot's files still on the system. */
  leftovers: string[];
  /** The volume's LUKS2 UUID (lower case) when the doctor read its header. */
  volumeUuid: string | null;
  /** The header records an unfinished in-place encryption (LUKS2 online-reencrypt requirement). */
  reencrypting: boolean;
}

export async function gatherEncryption(opts: {
  runner: Runner;
  root: string;
  volumePath: string | null;
  volumeUuid: string | null;
}): Promise<EncryptionFacts> {
  const { root } = opts;
  const plan = readText(under(root, ENCRYPT_PATHS.planConf));
  const record = readText(under(root, ENCRYPT_PATHS.record));
  const cmdline = ['/boot/firmware/cmdline.txt', '/boot/cmdline.txt']
    .map((p) => readText(under(root, p)))
    .find((t) => t !== null);
  const leftovers = LEFTOVERS.filter((p) => existsSync(under(root, p)));
  // The header is asked again only on a system that took the journey (the doctor reads it once).
  const journey = plan !== null || record !== null || leftovers.length > 0;
  return {
    plan: plan === null ? null : parsePlanConf(plan),
    record: record === null ? null : parseBootRecord(record),
    cmdlineRoot: cmdline == null ? null : cmdlineRoot(cmdline),
    leftovers,
    volumeUuid: opts.volumeUuid?.toLowerCase() ?? null,
    reencrypting:
      journey && opts.volumePath !== null ? await reencryptionPending(opts.runner, opts.volumePath) : false,
  };
}
