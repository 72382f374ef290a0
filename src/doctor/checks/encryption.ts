// The encrypt-root journey: armed, interrupted and resuming, failed before it began (and why),
// stopped after it began, encrypted with the encrypting boot's files still in place, or done.
import { inSystem, zkluksCommand } from '../../hint.ts';
import type { Facts } from '../facts.ts';
import type { Finding } from '../finding.ts';

const area = 'encryption' as const;

export function checkEncryption(facts: Facts): Finding[] {
  const e = facts.encryption;
  if (e === undefined) return [];
  const { plan, record } = e;
  if (plan === null && record === null && e.leftovers.length === 0 && !e.reencrypting) return [];
  const uuid = plan?.ZKLUKS_ENC_UUID ?? record?.uuid ?? '';
  const name = plan?.ZKLUKS_ENC_NAME ?? record?.name ?? 'cryptroot';
  const evidence = [
    ...(plan ? [`planned: LUKS2 ${uuid} as /dev/mapper/${name} from ${plan.ZKLUKS_ENC_DEVICE ?? '?'}`] : []),
    ...(record
      ? [
          `encrypting boot's record: state=${record.state ?? '?'}${record.reason ? ` reason=${record.reason}` : ''}${record.detail ? ` (${record.detail})` : ''}${record.progress ? `, progress ${record.progress}%` : ''}${record.resumed === '1' ? ', resumed after an interruption' : ''}`,
        ]
      : []),
    ...(e.cmdlineRoot ? [`cmdline.txt: root=${e.cmdlineRoot}`] : []),
    ...(e.leftovers.length ? [`still present: ${e.leftovers.join(', ')}`] : []),
  ];
  // A system tree (--root) is not the running system: its Pi boots it, and zkluks needs its device.
  const root = facts.root;
  const live = root === '/';
  const reboot = live ? 'reboot' : 'boot the Pi from this disk';
  const device = live ? [] : ['--device', 'DEVICE'];
  const disarm = zkluksCommand(root, 'encrypt-root', '--disarm', ...device);
  const finding = (id: string, severity: Finding['severity'], summary: string, hint: string): Finding[] => [
    { id: `encryption.${id}`, area, severity, summary, evidence, hint },
  ];

  if (e.reencrypting || record?.state === 'encrypting') {
    return finding(
      'interrupted',
      'warning',
      'Encryption of the root was interrupted and is not complete; the next boot resumes it where it stopped (LUKS2 keeps the progress in its header).',
      `${reboot} and do not switch off while it runs; the recovery key opens the volume meanwhile`,
    );
  }
  if (record?.state === 'failed') {
    return finding(
      'stopped',
      'error',
      `Encryption of the root began but did not complete its last step: ${record.detail || record.reason}. The recovery key (keyslot 0) opens the volume; the next boot tries again.`,
      `${reboot} to retry; if it fails again: zkluks doctor after the boot, zkluks enroll with the recovery key`,
    );
  }
  if (record?.state === 'not-started' && record.reason !== 'not-armed') {
    return finding(
      'failed-before-start',
      'error',
      `Encryption failed before it began, so the plain root booted as before: ${record.detail || record.reason}.`,
      record.reason === 'no-room'
        ? `free space on the root (${inSystem(root, 'apt-get clean')}, remove files) and ${reboot} to try again, or ${disarm}`
        : `fix the cause and ${reboot} to try again, or ${disarm}`,
    );
  }
  const encrypted = uuid !== '' && e.volumeUuid === uuid;
  if (encrypted && (plan !== null || e.leftovers.length > 0)) {
    return finding(
      'finish-pending',
      'warning',
      'The root is encrypted, but the boot files are still in the encrypting state (the initramfs still carries the sealed keys and the encrypting step).',
      zkluksCommand(root, 'encrypt-root', '--finish', ...device),
    );
  }
  if (plan !== null) {
    if (e.cmdlineRoot !== `/dev/mapper/${name}`) {
      return finding(
        'arming-incomplete',
        'warning',
        `Encryption is planned but not armed: cmdline.txt still names root=${e.cmdlineRoot ?? '(none)'}, so the next boot stays plain.`,
        `${disarm}, then ${zkluksCommand(root, 'encrypt-root', ...device)} (arms it again)`,
      );
    }
    return finding(
      'armed',
      'info',
      `Encryption is armed: the next boot encrypts the root in place as LUKS2 ${uuid}.`,
      `${reboot} when ready; do not switch off while it runs (after a power cut it resumes)`,
    );
  }
  return finding(
    'done',
    'ok',
    'The root was encrypted in place by zkluks encrypt-root and the encrypting boot’s files are gone.',
    '',
  );
}
