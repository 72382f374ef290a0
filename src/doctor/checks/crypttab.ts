// crypttab: the line that tells the initramfs how to unlock the root.
import { rebuildInitramfs, zkluksCommand } from '../../hint.ts';
import { valueOf, type Facts } from '../facts.ts';
import { isValidOption } from '../../initramfs/crypttab.ts';
import type { Finding } from '../finding.ts';

const area = 'crypttab' as const;

export function checkCrypttab(facts: Facts): Finding[] {
  if (!facts.crypttab.ok) {
    return [
      {
        id: 'crypttab.missing',
        area,
        severity: facts.crypttab.status === 'missing' ? 'warning' : 'error',
        summary: 'No readable crypttab: the initramfs has no entry that unlocks the root.',
        evidence: [facts.crypttab.reason],
        hint: zkluksCommand(facts.root, 'initramfs', 'install'),
      },
    ];
  }
  const volume = valueOf(facts.volume);
  const entry = facts.crypttab.value.entries.find((e) => e.name === volume?.crypttabName);
  if (!entry) {
    return [
      {
        id: 'crypttab.no-entry',
        area,
        severity: 'warning',
        summary: `crypttab has no entry for ${volume ? `'${volume.name}'` : 'the root volume'}.`,
        evidence: [
          `${facts.crypttab.value.path}: ${facts.crypttab.value.entries.map((e) => e.name).join(', ') || 'no entries'}`,
        ],
        hint: zkluksCommand(facts.root, 'initramfs', 'install'),
      },
    ];
  }
  const where = `${facts.crypttab.value.path}:${entry.line}`;
  const line = `${where}: ${entry.name} ${entry.source} ${entry.keyFile} ${entry.options.join(',')}`;
  const findings: Finding[] = [];
  const option = (name: string) => entry.options.find((o) => o === name || o.startsWith(`${name}=`));
  const keyscript = option('keyscript')?.slice('keyscript='.length) ?? null;

  const keyslot = option('keyslot') ?? option('key-slot');
  if (keyslot) {
    findings.push({
      id: 'crypttab.keyslot-option',
      area,
      severity: 'error',
      summary: `'${keyslot}' pins every try to one keyslot: when the Zymkey fails, the passphrase or recovery key typed at the prompt is tested against that slot only and never opens the volume.`,
      evidence: [line],
      hint: `${zkluksCommand(facts.root, 'initramfs', 'install')} (rewrites the line without '${keyslot}' and rebuilds the initramfs)`,
    });
  }
  if (keyscript && /zk_get_key$/.test(keyscript)) {
    findings.push({
      id: 'crypttab.zymbit-keyscript',
      area,
      severity: 'warning',
      summary:
        "Zymbit's zk_get_key keyscript unlocks the root: it has no passphrase fallback, so when the Zymkey fails the boot retries and ends in the initramfs shell.",
      evidence: [line],
      hint: `${zkluksCommand(facts.root, 'adopt')} (a recovery key first, then a Zymkey slot and keyscript of zkluks's own, with a prompt fallback; --dry-run shows the plan)`,
    });
  } else if (keyscript && /\/zkluks$/.test(keyscript) && entry.keyscriptPresent !== false) {
    findings.push({
      id: 'crypttab.entry',
      area,
      severity: 'ok',
      summary: `'${entry.name}' uses the zkluks keyscript, with the passphrase prompt as fallback.`,
      evidence: [line],
      hint: '',
    });
  } else if (!keyscript) {
    findings.push({
      id: 'crypttab.no-keyscript',
      area,
      severity: 'warning',
      summary: `'${entry.name}' has no keyscript: the boot never asks the Zymkey.`,
      evidence: [line],
      hint: zkluksCommand(facts.root, 'initramfs', 'install'),
    });
  }
  if (keyscript && entry.keyscriptPresent === false) {
    findings.push({
      id: 'crypttab.keyscript-missing',
      area,
      severity: 'error',
      summary: `The keyscript '${keyscript}' does not exist: update-initramfs skips this entry ("invalid value for 'keyscript' option").`,
      evidence: [line],
      hint: zkluksCommand(facts.root, 'initramfs', 'install'),
    });
  }
  const unknown = entry.options.map((o) => o.split('=')[0] ?? o).filter((o) => !isValidOption(o));
  if (unknown.length > 0) {
    findings.push({
      id: 'crypttab.unknown-options',
      area,
      severity: 'info',
      summary: `The initramfs ignores ${unknown.map((o) => `'${o}'`).join(', ')}.`,
      evidence: [line],
      hint: '',
    });
  }
  for (const k of facts.keyMaterial.filter((m) => m.where === 'crypttab')) {
    findings.push({
      id: 'crypttab.plaintext-key',
      area,
      severity: k.opensSlot !== null || !keyscript ? 'error' : 'warning',
      summary:
        k.opensSlot !== null
          ? `The key file '${k.path}' named in crypttab opens keyslot ${k.opensSlot}: the key lies in plaintext on the root filesystem (and cryptsetup-initramfs copies it into the initramfs).`
          : `The key file '${k.path}' named in crypttab exists${keyscript ? '' : ' and is read as the key itself'}: a plaintext key file defeats the Zymkey.`,
      evidence: [
        line,
        k.tried
          ? `cryptsetup --test-passphrase with '${k.path}': ${k.opensSlot !== null ? `opens slot ${k.opensSlot}` : 'opens no slot'}`
          : 'not tried against the header',
      ],
      hint: `shred -u '${k.path}'; cryptsetup luksKillSlot '${volume?.path ?? 'VOLUME'}' ${k.opensSlot ?? 'N'} if that slot holds it; set the key field to 'none' and run ${rebuildInitramfs(facts.root)}`,
    });
  }
  return findings;
}
