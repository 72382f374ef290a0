// A Zymbit SCM's Supervised Boot: the module verifies its signed manifest of boot files before the
// Pi boots and, in production mode, destroys every key when one no longer matches. The verdicts are
// the ones `zkluks initramfs check` reports too (initramfs/manifest-verdict.ts).
import { manifestVerdicts } from '../../initramfs/manifest-verdict.ts';
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
  const state = sb.ok
    ? { status: 'read' as const, ...sb.value }
    : { status: 'unreadable' as const, reason: sb.reason };
  return manifestVerdicts(facts.root, state, production, 'zkluks doctor').map((v) => ({ ...v, area }));
}
