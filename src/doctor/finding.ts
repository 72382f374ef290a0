// A finding: one thing the doctor found out, how bad it is, what it rests on, and what to do.

export type Severity = 'ok' | 'info' | 'warning' | 'error';

export const AREAS = [
  'Zymkey',
  'I2C',
  'LUKS header',
  'crypttab',
  'initramfs',
  'boot firmware',
  'last boot',
  'encryption',
] as const;
export type Area = (typeof AREAS)[number];

export interface Finding {
  /** Stable identifier, e.g. 'zymkey.self-destructed'. */
  id: string;
  area: Area;
  severity: Severity;
  /** One sentence: what is true and what it means. */
  summary: string;
  /** The facts it rests on, one line each. */
  evidence: string[];
  /** The next step, naming the command; empty when there is nothing to do. */
  hint: string;
}

export type Check<F> = (facts: F) => Finding[];

const RANK: Record<Severity, number> = { ok: 0, info: 1, warning: 2, error: 3 };

export function worst(findings: readonly Finding[]): Severity {
  let out: Severity = 'ok';
  for (const f of findings) if (RANK[f.severity] > RANK[out]) out = f.severity;
  return out;
}

export function bySeverity(a: Finding, b: Finding): number {
  return RANK[b.severity] - RANK[a.severity];
}
