// The LUKS2 header: is there a way in without the Zymkey, and do our tokens match the keyslots.
import { zkluksCommand } from '../../hint.ts';
import { linkCommand, resolveRootDevice } from '../../root-device.ts';
import { valueOf, type Facts, type VolumeFacts } from '../facts.ts';
import type { Finding } from '../finding.ts';
import { plural } from '../unlock-path.ts';
import { describeUnproven, slotsWithoutZymkey, waysIn, type WaysIn } from '../ways-in.ts';

const area = 'LUKS header' as const;

/** The way on from an unreadable header: say where the volume is, or look at what is there. */
function headerHint(facts: Facts, volume: VolumeFacts, reason: string): string {
  const path = volume.path;
  if (volume.present === false) {
    const device = resolveRootDevice(facts.root, volume.name);
    return facts.root === '/' || volume.from === 'argument'
      ? `name the LUKS partition or image file: ${zkluksCommand(facts.root, 'doctor', 'VOLUME')} (lsblk -f lists partitions)`
      : `say which device or image file holds ${volume.name}: ${linkCommand(facts.root, device)}, then ${zkluksCommand(facts.root, 'doctor')}`;
  }
  if (/LUKS1/.test(reason)) {
    return `cryptsetup luksHeaderBackup '${path}' --header-backup-file /root/luks1-header.img && cryptsetup convert --type luks2 '${path}'`;
  }
  return `cryptsetup luksDump '${path}' (blkid '${path}' says what the device holds)`;
}

/** Add a recovery key zkluks can prove, then keep the header safe. */
function recoveryAddHint(ways: WaysIn): string {
  const v = ways.volume;
  return `zkluks recovery add '${v}'${ways.zymbitAuthority} (optionally --escrow age1…), then cryptsetup luksHeaderBackup '${v}' --header-backup-file /root/header.img`;
}

/**
 * What the header says of the slots that may open without the Zymkey but are not proven to, with
 * the command that tests a passphrase against a slot no token explains.
 */
function notProven(ways: WaysIn): string[] {
  const v = ways.volume;
  return [
    ...ways.unproven.map(
      (u) =>
        `${describeUnproven(ways, u)}${u.reason === 'no-token' ? `; test a passphrase on it: cryptsetup open --test-passphrase --key-slot ${u.id} '${v}'` : ''}`,
    ),
    ...ways.ignoredSlots.map((s) => `slot ${s} has priority ignore: the boot prompt never tries it`),
  ];
}

export function checkLuksHeader(facts: Facts): Finding[] {
  const ways = waysIn(facts);
  const v = ways.volume;
  if (!facts.volume.ok) {
    return [
      {
        id: 'luks.no-volume',
        area,
        severity: 'warning',
        summary: 'No volume to examine.',
        evidence: [facts.volume.reason],
        hint: `name it: ${zkluksCommand(facts.root, 'doctor', 'VOLUME')} (the LUKS partition or image file)`,
      },
    ];
  }
  if (!facts.header.ok) {
    return [
      {
        id: 'luks.header-unreadable',
        area,
        severity: 'error',
        summary: `The LUKS2 header of '${v}' cannot be read.`,
        evidence: [facts.header.reason],
        hint: headerHint(facts, facts.volume.value, facts.header.reason),
      },
    ];
  }
  const header = facts.header.value;
  const slots = header.keyslots.map((k) => k.id);
  const findings: Finding[] = [];

  const withoutZymkey = slotsWithoutZymkey(ways);
  if (ways.zymkeySlots.length > 0 && withoutZymkey.length === 0) {
    findings.push({
      id: 'luks.no-recovery-path',
      area,
      severity: 'error',
      summary:
        'No recovery path: every keyslot needs the Zymkey, so a self-destruct, a dead Pi or a production-binding mismatch loses the data for good.',
      evidence: [
        `keyslots: ${slots.join(', ')}`,
        ways.zymbitLayout && header.tokens.length === 0
          ? "Zymbit's layout: the single slot opens only with the key sealed in /var/lib/zymbit/key.bin.lock"
          : `${plural(ways.zymkeySlots, 'slot')} belong${ways.zymkeySlots.length === 1 ? 's' : ''} to the Zymkey token`,
      ],
      hint: recoveryAddHint(ways),
    });
  } else if (ways.zymkeySlots.length > 0 && ways.provenSlots.length === 0) {
    findings.push({
      id: 'luks.recovery-path-unproven',
      area,
      severity: 'warning',
      summary: `No proven recovery path: ${notProven(ways).join('; ')}.`,
      evidence: [
        `keyslots: ${slots.join(', ')}; Zymkey ${plural(ways.zymkeySlots, 'slot')}; no zkluks-recovery token made for a slot the boot prompt tries`,
      ],
      hint: `${recoveryAddHint(ways)}${ways.ignoredSlots.length > 0 ? `; to let the boot prompt try ${plural(ways.ignoredSlots, 'slot')}: ${ways.ignoredSlots.map((s) => `cryptsetup config --priority normal --key-slot ${s} '${v}'`).join(', ')}` : ''}`,
    });
  } else if (ways.zymkeySlots.length === 0 && slots.length > 0) {
    findings.push({
      id: 'luks.not-enrolled',
      area,
      severity: 'warning',
      summary:
        'No keyslot of this volume belongs to the Zymkey: the boot never unlocks it without a typed passphrase.',
      evidence: [
        `keyslots: ${slots.join(', ')}; tokens: ${header.tokens.map((t) => t.type).join(', ') || 'none'}`,
      ],
      hint: `zkluks enroll '${v}'`,
    });
  }
  const entry = valueOf(facts.crypttab)?.entries.find((e) => e.name === ways.mapping);
  const zkluksLine = entry?.options.includes('keyscript=/lib/cryptsetup/scripts/zkluks') ?? false;
  const lock = valueOf(facts.zymbitState)?.files.some((f) => f.path === 'key.bin.lock') ?? false;
  const oldSlots = withoutZymkey.filter((s) => !ways.recoverySlots.includes(s));
  if (zkluksLine && lock && header.tokens.some((t) => t.type === 'zkluks-zymkey') && oldSlots.length > 0) {
    findings.push({
      id: 'luks.adopted-old-slot',
      area,
      severity: 'info',
      summary: `Adopted from Zymbit's layout, old slot still present: ${plural(oldSlots, 'slot')} and /var/lib/zymbit/key.bin.lock still open the volume beside the zkluks slots.`,
      evidence: [
        `crypttab '${entry?.name}' uses the zkluks keyscript`,
        `keyslots: ${slots.join(', ')}; zkluks Zymkey ${plural(ways.zymkeySlots, 'slot')}, recovery ${plural(ways.recoverySlots, 'slot')}`,
      ],
      hint: `once the recovery key is checked ('zkluks recovery verify ${v}') and the Pi has rebooted through zkluks: ${zkluksCommand(facts.root, 'adopt', '--remove-old')}`,
    });
  }
  if (ways.provenSlots.length > 0 && ways.zymkeySlots.length > 0) {
    const recovery = header.tokens.filter((t) => t.type === 'zkluks-recovery');
    const notes = notProven(ways);
    findings.push({
      id: 'luks.recovery-path',
      area,
      severity: 'ok',
      summary: `Recovery path: the recovery key in ${plural(ways.provenSlots, 'slot')} opens without the Zymkey${notes.length > 0 ? `; ${notes.join('; ')}` : ''}.`,
      evidence: recovery.map(
        (t) =>
          `token ${t.id}: recovery key for slot ${t.keyslots.join(',')}${t.escrowRecipient ? `, escrowed to ${t.escrowRecipient}` : ''}`,
      ),
      hint: '',
    });
  } else if (slots.length === 0) {
    findings.push({
      id: 'luks.no-keyslots',
      area,
      severity: 'error',
      summary: 'The header has no keyslots: nothing can open this volume.',
      evidence: [],
      hint: `restore a header backup: cryptsetup luksHeaderRestore '${v}' --header-backup-file FILE`,
    });
  }

  for (const t of header.tokens) {
    if (t.pending) {
      findings.push({
        id: 'luks.interrupted',
        area,
        severity: 'error',
        summary: `A zkluks change to '${v}' was interrupted: ${t.pending.description}.`,
        evidence: [
          `token ${t.id} (zkluks-pending) records it; keyslot ${t.pending.slots.join(', ') || 'none'} ${t.pending.slots.length === 1 ? 'is' : 'are'} pending`,
        ],
        hint: `zkluks repair '${v}' (or any zkluks change to it settles it first); 'zkluks repair --dry-run ${v}' shows how`,
      });
      continue;
    }
    if (!t.type.startsWith('zkluks-')) continue;
    if (!t.valid) {
      findings.push({
        id: 'luks.token-corrupt',
        area,
        severity: 'error',
        summary: `Token ${t.id} (${t.type}) is corrupt: the boot cannot use it.`,
        evidence: [t.problem ?? 'does not match the token schema'],
        hint: `cryptsetup token remove --token-id ${t.id} '${v}', then 'zkluks rotate ${v}'`,
      });
    }
    const named = t.keyslots[0];
    if (t.slotMatch === 'mismatch' && named !== undefined && slots.includes(named)) {
      const zymkey = t.type === 'zkluks-zymkey';
      findings.push({
        id: 'luks.token-foreign',
        area,
        severity: 'warning',
        summary: `Token ${t.id} (${t.type}) was not made for keyslot ${named}: the keyslot's salt differs from the one the token recorded — a token copied from another volume, or a slot re-keyed since (luksChangeKey, luksConvertKey). ${zymkey ? 'Unless its key still opens the slot, the boot falls back to the passphrase prompt.' : 'The recovery key it describes may not open this slot.'}`,
        evidence: [
          `token ${t.id} names keyslot ${named}; keyslot_salt recorded in the token does not match keyslot ${named}'s kdf.salt`,
        ],
        hint: zymkey
          ? `'zkluks verify ${v}' (does its key still open keyslot ${named}?), then 'zkluks enroll --force ${v}' (replaces the token; keyslot ${named} is wiped only if the Zymkey shows its key opens it, kept if it does not)`
          : `'zkluks recovery add --force ${v}' (a new recovery key; keyslot ${named} is kept, since zkluks cannot tell who opens it)`,
      });
    }
    const dangling =
      t.keyslots.length === 0 ? ['none'] : t.keyslots.filter((s) => !slots.includes(s)).map(String);
    if (dangling.length > 0) {
      findings.push({
        id: 'luks.token-dangling',
        area,
        severity: 'error',
        summary: `Token ${t.id} (${t.type}) points at a keyslot that does not exist: ${t.type === 'zkluks-zymkey' ? 'the Zymkey path cannot unlock this volume' : 'the recovery key it describes is gone'}.`,
        evidence: [
          `token ${t.id} keyslots: ${dangling.join(', ')}; existing keyslots: ${slots.join(', ') || 'none'}`,
        ],
        hint: `cryptsetup token remove --token-id ${t.id} '${v}', then ${t.type === 'zkluks-zymkey' ? `'zkluks enroll ${v}'` : `'zkluks recovery add ${v}'`}`,
      });
    }
  }

  const tokenSlots = new Set(header.tokens.flatMap((t) => t.keyslots));
  for (const k of header.keyslots) {
    if (k.priority === 'prefer' && !tokenSlots.has(k.id)) {
      findings.push({
        id: 'luks.slot-without-token',
        area,
        severity: 'warning',
        summary: `Keyslot ${k.id} is marked 'prefer' like a Zymkey slot, but no token names it: its sealed key is lost, so the slot is dead weight.`,
        evidence: [
          `keyslot ${k.id}: ${k.kdf}, priority prefer; tokens name slots ${[...tokenSlots].join(', ') || 'none'}`,
        ],
        hint: `'zkluks rotate ${v}' (new Zymkey slot), then cryptsetup luksKillSlot '${v}' ${k.id}`,
      });
    }
  }
  if (
    header.tokens.some((t) => t.type === 'zkluks-zymkey' && t.valid) &&
    !findings.some((f) => f.severity !== 'ok')
  ) {
    findings.push({
      id: 'luks.tokens',
      area,
      severity: 'ok',
      summary: 'Tokens and keyslots match.',
      evidence: header.tokens.map((t) => `token ${t.id}: ${t.type} -> slot ${t.keyslots.join(',')}`),
      hint: '',
    });
  }
  return findings;
}
