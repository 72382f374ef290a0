// The one line a user reads first: the worst finding, said plainly.
import { AREAS, worst, type Finding } from './finding.ts';

export interface Verdict {
  status: 'ok' | 'warning' | 'error';
  summary: string;
}

/** Findings that explain the others come first when several are errors. */
const HEADLINES = [
  'zymkey.self-destructed',
  'zymkey.host-mismatch',
  'zymkey.not-ready-for-production',
  'luks.no-recovery-path',
];

export function verdict(findings: readonly Finding[]): Verdict {
  const w = worst(findings);
  if (w === 'ok' || w === 'info') {
    const unseals = findings.some((f) => f.id === 'zymkey.unseal');
    const recovery = findings.some((f) => f.id === 'luks.recovery-path');
    return {
      status: 'ok',
      summary:
        unseals && recovery
          ? 'Healthy: the next boot will unlock through the Zymkey, and a recovery path exists.'
          : 'No problems found.',
    };
  }
  const candidates = findings.filter((f) => f.severity === w);
  const rank = (f: Finding) => {
    const i = HEADLINES.indexOf(f.id);
    return i >= 0 ? i : HEADLINES.length + AREAS.indexOf(f.area);
  };
  const head = [...candidates].sort((a, b) => rank(a) - rank(b))[0];
  const others = candidates.length - 1;
  return {
    status: w,
    summary: `${head?.summary ?? ''}${others > 0 ? ` (+${others} more ${w === 'error' ? 'error' : 'warning'}${others === 1 ? '' : 's'})` : ''}`,
  };
}
