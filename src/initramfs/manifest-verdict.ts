// An SCM's Supervised Boot manifest against the boot partition, and what that means for the next
// boot: read once, judged by one pure function that both `zkluks doctor` and `zkluks initramfs
// check` report. Zymbit's API gives the paths back, never the signatures, so a file counts as
// changed against zkluks's record of its digest.
import type { ZymkeyPort } from '../device/port.ts';
import { zkluksCommand } from '../hint.ts';
import {
  bootPartitionOf,
  MANIFEST_OUT,
  manifestEntries,
  readManifestOut,
  signCommand,
  supervisedBootInfo,
  zymbitSignCommand,
  type ManifestEntry,
} from './supervised-boot.ts';

export type ManifestState =
  /** No SCM: nothing verifies the boot files before boot. */
  | { status: 'none' }
  /** An SCM whose manifest cannot be read (zkifc stopped, Python API missing, …). */
  | { status: 'unreadable'; reason: string }
  | {
      status: 'read';
      bootPartition: string;
      entries: ManifestEntry[];
      /** Files an interrupted `zkluks adopt` took out of the manifest and has yet to sign again. */
      takenOut: string[];
    };

/** Read-only: the SCM's manifest (if any) against the files on disk. */
export async function readManifestState(port: ZymkeyPort, root: string): Promise<ManifestState> {
  const info = await supervisedBootInfo(port).catch((error: unknown) => ({
    scm: true,
    manifest: null,
    error: (error as Error).message,
  }));
  if (!info.scm) return { status: 'none' };
  if (info.manifest === null)
    return { status: 'unreadable', reason: info.error ?? 'the manifest cannot be read' };
  return {
    status: 'read',
    bootPartition: bootPartitionOf(root),
    entries: manifestEntries(root, info.manifest),
    takenOut: readManifestOut(root).filter((f) => !info.manifest?.includes(f)),
  };
}

/** Each entry's state in words. */
export const ENTRY_STATE_TEXT: Record<ManifestEntry['state'], string> = {
  matches: 'matches what zkluks signed or saw',
  changed: 'CHANGED since zkluks signed or saw it: the next boot fails verification',
  missing: 'MISSING: the next boot fails verification',
  unrecorded: 'not recorded by zkluks (the API gives no signatures back, so zkluks cannot tell)',
};

export interface ManifestVerdict {
  id:
    | 'supervised-boot.unreadable'
    | 'supervised-boot.changed'
    | 'supervised-boot.missing'
    | 'supervised-boot.unrecorded'
    | 'supervised-boot.taken-out'
    | 'supervised-boot.ok';
  severity: 'ok' | 'info' | 'warning' | 'error';
  summary: string;
  evidence: string[];
  hint: string;
}

/**
 * Pure: what an SCM's manifest state means for the next boot. `production`: the module's binding
 * mode when known (null when not asked or not answered), for what a failed verification does.
 */
export function manifestVerdicts(
  root: string,
  state: Exclude<ManifestState, { status: 'none' }>,
  production: boolean | null,
  recheck: string,
): ManifestVerdict[] {
  const consequence =
    production === false
      ? 'in developer mode the SCM only flashes 4-2 three times and boots, but in production mode the same failure destroys every key'
      : 'in production mode the SCM then destroys every key (or holds the Pi in reset), and the Zymkey keyslot of every disk it sealed is useless';
  if (state.status === 'unreadable') {
    return [
      {
        id: 'supervised-boot.unreadable',
        severity: 'warning',
        summary:
          'This Pi has a Zymbit SCM but its Supervised Boot manifest cannot be read, so zkluks cannot tell whether the boot files still match it; zkluks refuses to change boot files until it can.',
        evidence: [state.reason],
        hint: `systemctl start zkifc, then ${recheck}`,
      },
    ];
  }
  const { entries } = state;
  const out: ManifestVerdict[] = [];
  const changed = entries.filter((e) => e.state === 'changed');
  const missing = entries.filter((e) => e.state === 'missing');
  if (changed.length > 0) {
    out.push({
      id: 'supervised-boot.changed',
      severity: 'error',
      summary: `The SCM's Supervised Boot manifest no longer matches the boot partition: ${changed.map((e) => e.path).join(', ')} changed since ${changed.length === 1 ? 'it was' : 'they were'} signed, so the next boot fails verification; ${consequence}.`,
      evidence: changed.map(
        (e) =>
          `${e.path}: differs from the digest zkluks ${e.recorded?.how ?? 'signed'} at ${e.recorded?.at ?? '?'}`,
      ),
      hint: `${signCommand(
        root,
        changed.map((e) => e.file),
      )} (before any reboot, if the change is yours, e.g. a kernel or initramfs update; if it is not, put the file back instead)`,
    });
  }
  if (missing.length > 0) {
    out.push({
      id: 'supervised-boot.missing',
      severity: 'error',
      summary: `${missing.map((e) => e.path).join(', ')} ${missing.length === 1 ? 'is' : 'are'} in the SCM's Supervised Boot manifest but not on disk, so the next boot fails verification; ${consequence}.`,
      evidence: missing.map((e) => `${e.path}: missing`),
      hint: `put ${missing.map((e) => e.path).join(', ')} back before any reboot, or take it out of the manifest: python3 -c 'import zymkey; zymkey.client.remove_supervised_boot_file("${missing[0]?.file ?? ''}")'`,
    });
  }
  if (state.takenOut.length > 0) {
    const files = state.takenOut;
    out.push({
      id: 'supervised-boot.taken-out',
      severity: 'warning',
      summary: `${files.join(', ')} ${files.length === 1 ? 'is' : 'are'} out of the SCM's Supervised Boot manifest: an adopt that did not finish took ${files.length === 1 ? 'it' : 'them'} out while rewriting ${files.length === 1 ? 'it' : 'them'}, so the SCM does not verify ${files.length === 1 ? 'it' : 'them'} before boot (the boot itself is safe).`,
      evidence: [`${MANIFEST_OUT}: ${files.join(' ')}`],
      hint: `${zkluksCommand(root, 'adopt')} (it signs them back in first; --dry-run shows the plan)`,
    });
  }
  const unrecorded = entries.filter((e) => e.state === 'unrecorded');
  if (unrecorded.length > 0) {
    out.push({
      id: 'supervised-boot.unrecorded',
      severity: 'info',
      summary: `zkluks cannot tell whether ${unrecorded.map((e) => e.path).join(', ')} still match the SCM's manifest: Zymbit's API gives no signatures back, and zkluks has no digest of ${unrecorded.length === 1 ? 'it' : 'them'} yet.`,
      evidence: [`manifest: ${entries.map((e) => e.file).join(' ')}`],
      hint: `${signCommand(
        root,
        unrecorded.map((e) => e.file),
      )} records them, once you know they are right (Zymbit's own call: ${zymbitSignCommand(unrecorded[0]?.file ?? 'FILE')})`,
    });
  }
  if (out.length === 0) {
    out.push({
      id: 'supervised-boot.ok',
      severity: 'ok',
      summary: `Every file of the SCM's Supervised Boot manifest (${entries.length}) matches what zkluks signed or saw.`,
      evidence: entries.map((e) => `${e.path}: matches`),
      hint: '',
    });
  }
  return out;
}
