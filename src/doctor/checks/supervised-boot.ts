// A Zymbit SCM's Supervised Boot: the module verifies its signed manifest of boot files before the
// Pi boots and, in production mode, destroys every key when one no longer matches. Zymbit's API
// gives back the paths only, so a file counts as changed against zkluks's record of its digest.
import { signCommand, zymbitSignCommand } from '../../initramfs/supervised-boot.ts';
import type { Facts } from '../facts.ts';
import type { Finding } from '../finding.ts';

const area = 'boot firmware' as const;

export function checkSupervisedBoot(facts: Facts): Finding[] {
  const sb = facts.supervisedBoot;
  if (sb === undefined || (!sb.ok && sb.status === 'unavailable')) return [];
  const production =
    facts.zymkey.ok && facts.zymkey.value.binding.ok
      ? facts.zymkey.value.binding.value.mode === 'production'
      : null;
  const consequence =
    production === false
      ? 'in developer mode the SCM only flashes 4-2 three times and boots, but in production mode the same failure destroys every key'
      : 'in production mode the SCM then destroys every key (or holds the Pi in reset), and the Zymkey keyslot of every disk it sealed is useless';
  if (!sb.ok) {
    return [
      {
        id: 'supervised-boot.unreadable',
        area,
        severity: 'warning',
        summary:
          'This Pi has a Zymbit SCM but its Supervised Boot manifest cannot be read, so the doctor cannot tell whether the boot files still match it; zkluks refuses to change boot files until it can.',
        evidence: [sb.reason],
        hint: 'systemctl start zkifc, then zkluks doctor',
      },
    ];
  }
  const { entries } = sb.value;
  const findings: Finding[] = [];
  const changed = entries.filter((e) => e.state === 'changed');
  const missing = entries.filter((e) => e.state === 'missing');
  if (changed.length > 0) {
    findings.push({
      id: 'supervised-boot.changed',
      area,
      severity: 'error',
      summary: `The SCM's Supervised Boot manifest no longer matches the boot partition: ${changed.map((e) => e.path).join(', ')} changed since ${changed.length === 1 ? 'it was' : 'they were'} signed, so the next boot fails verification; ${consequence}.`,
      evidence: changed.map(
        (e) =>
          `${e.path}: differs from the digest zkluks ${e.recorded?.how ?? 'signed'} at ${e.recorded?.at ?? '?'}`,
      ),
      hint: `${signCommand(
        facts.root,
        changed.map((e) => e.file),
      )} (before any reboot, if the change is yours, e.g. a kernel or initramfs update; if it is not, put the file back instead)`,
    });
  }
  if (missing.length > 0) {
    findings.push({
      id: 'supervised-boot.missing',
      area,
      severity: 'error',
      summary: `${missing.map((e) => e.path).join(', ')} ${missing.length === 1 ? 'is' : 'are'} in the SCM's Supervised Boot manifest but not on disk, so the next boot fails verification; ${consequence}.`,
      evidence: missing.map((e) => `${e.path}: missing`),
      hint: `put ${missing.map((e) => e.path).join(', ')} back before any reboot, or take it out of the manifest: python3 -c 'import zymkey; zymkey.client.remove_supervised_boot_file("${missing[0]?.file ?? ''}")'`,
    });
  }
  const unrecorded = entries.filter((e) => e.state === 'unrecorded');
  if (unrecorded.length > 0) {
    findings.push({
      id: 'supervised-boot.unrecorded',
      area,
      severity: 'info',
      summary: `zkluks cannot tell whether ${unrecorded.map((e) => e.path).join(', ')} still match the SCM's manifest: Zymbit's API gives no signatures back, and zkluks has no digest of ${unrecorded.length === 1 ? 'it' : 'them'} yet.`,
      evidence: [`manifest: ${entries.map((e) => e.file).join(' ')}`],
      hint: `${signCommand(
        facts.root,
        unrecorded.map((e) => e.file),
      )} records them, once you know they are right (Zymbit's own call: ${zymbitSignCommand(unrecorded[0]?.file ?? 'FILE')})`,
    });
  }
  if (findings.length === 0) {
    findings.push({
      id: 'supervised-boot.ok',
      area,
      severity: 'ok',
      summary: `Every file of the SCM's Supervised Boot manifest (${entries.length}) matches what zkluks signed or saw.`,
      evidence: entries.map((e) => `${e.path}: matches`),
      hint: '',
    });
  }
  return findings;
}
