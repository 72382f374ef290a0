// The boot record the keyscript left in /run/zkluks: how the root was unlocked this boot.
import { valueOf, type Facts } from '../facts.ts';
import type { Finding } from '../finding.ts';
import { RECORDED_HOW } from '../unlock-path.ts';
import { waysIn } from '../ways-in.ts';
import { moduleFailure } from './zymkey.ts';

const area = 'last boot' as const;

const REASONS: Record<string, string> = {
  'self-destructed': 'the Zymkey had destroyed its keys',
  unreachable: 'the Zymkey did not answer on I2C',
  'no-bus': 'no I2C bus appeared in time',
  'no-token': 'the header has no zkluks-zymkey token',
  'corrupt-token': 'the zkluks-zymkey token is corrupt',
  timeout: "the keyscript's time budget ran out",
  'key-rejected': 'the unsealed key did not open the slot',
  'tool-missing': 'zkunlockifs is missing from the initramfs',
  'unseal-failed': 'zkunlockifs did not unseal the key',
};

export function checkLastBoot(facts: Facts): Finding[] {
  const ways = waysIn(facts);
  if (!facts.bootRecord.ok) {
    const entry = valueOf(facts.crypttab)?.entries.find((e) => e.name === ways.mapping);
    const ours = entry?.options.some((o) => /^keyscript=.*\/zkluks$/.test(o)) ?? false;
    return [
      {
        id: 'last-boot.no-record',
        area,
        severity: ours && facts.live ? 'warning' : 'info',
        summary:
          ours && facts.live
            ? 'No boot record: the zkluks keyscript did not run this boot, so the root was unlocked some other way.'
            : 'No boot record from the zkluks keyscript.',
        evidence: [facts.bootRecord.reason],
        hint: ours && facts.live ? 'zkluks initramfs check' : '',
      },
    ];
  }
  const { path, fields } = facts.bootRecord.value;
  const evidence = [
    `${path}: ${['method', 'reason', 'tried', 'elapsed_ms', 'uptime']
      .filter((k) => fields[k] !== undefined)
      .map((k) => `${k}=${fields[k]}`)
      .join(' ')}`,
    ...(fields.detail ? [`detail: ${fields.detail}`] : []),
  ];
  if (fields.method === 'zymkey' && (fields.reason ?? 'ok') === 'ok') {
    return [
      {
        id: 'last-boot.zymkey',
        area,
        severity: 'ok',
        summary: `This boot the root was unlocked through the Zymkey${fields.elapsed_ms ? ` in ${fields.elapsed_ms} ms` : ''}.`,
        evidence,
        hint: '',
      },
    ];
  }
  const recorded = fields.reason ?? 'unknown';
  // The record says how the unseal ended; the module's state now may say why (its keys destroyed).
  const now = RECORDED_HOW.has(recorded) ? moduleFailure(facts)?.code : undefined;
  const reason = now !== undefined && REASONS[now] !== undefined && !RECORDED_HOW.has(now) ? now : recorded;
  const hung = recorded === 'timeout' ? deadlineStep(fields.detail ?? '') : null;
  const how = hung?.what ?? REASONS[recorded] ?? recorded;
  return [
    {
      id: 'last-boot.fallback',
      area,
      severity: 'warning',
      summary: `This boot the Zymkey path failed (${reason === recorded ? how : `${REASONS[reason]}, as the module shows now; the keyscript recorded: ${how}`}) and the root was unlocked with a typed passphrase or recovery key.`,
      evidence,
      hint:
        reason === 'self-destructed'
          ? ''
          : hung?.step === 'unseal'
            ? `zkluks device probe (does the module answer on I2C?), then zkluks verify '${ways.volume}'; if it answers but slowly, allow the keyscript more time: zkluks initramfs install --timeout 30`
            : `zkluks verify '${ways.volume}'`,
    },
  ];
}

/** Which wait of the keyscript ran out, from the detail it recorded, in words. */
function deadlineStep(detail: string): { step: 'unseal' | 'header'; what: string } | null {
  const unseal = /^the Zymkey did not answer within ([\d.]+ s)/.exec(detail);
  if (unseal) {
    return {
      step: 'unseal',
      what: `the Zymkey did not answer within ${unseal[1]}: zkunlockifs hung until the keyscript stopped it at its deadline`,
    };
  }
  const header = /^the LUKS2 header of .* could not be read within ([\d.]+ s)/.exec(detail);
  if (header) {
    return {
      step: 'header',
      what: `reading the LUKS2 header took longer than ${header[1]}, so the Zymkey was never asked`,
    };
  }
  return null;
}
