// The doctor's human output: the verdict first, then findings grouped by area. Problems carry their
// evidence and hint; healthy findings take one line each, so a healthy system fits on one screen.
import type { Diagnosis } from './diagnose.ts';
import { safeText } from '../safe-text.ts';
import { AREAS, bySeverity, type Finding, type Severity } from './finding.ts';

const MARK: Record<Severity, string> = { ok: 'ok', info: 'info', warning: 'WARN', error: 'ERROR' };
const COLOUR: Record<Severity, string> = { ok: '32', info: '2', warning: '33', error: '31' };

export function renderReport(diagnosis: Diagnosis, options: { colour: boolean }): string {
  const paint = (sev: Severity, text: string) =>
    options.colour ? `\x1b[${COLOUR[sev]}m${text}\x1b[0m` : text;
  const bold = (text: string) => (options.colour ? `\x1b[1m${text}\x1b[0m` : text);
  const { status, summary } = diagnosis.verdict;
  const out = [`${bold('verdict:')} ${paint(status, status.toUpperCase())} ${safeText(summary)}`];
  for (const area of AREAS) {
    const inArea = diagnosis.findings.filter((f) => f.area === area).sort(bySeverity);
    if (inArea.length === 0) continue;
    out.push('', bold(area));
    for (const f of inArea) out.push(...renderFinding(f, paint));
  }
  return `${out.join('\n')}\n`;
}

function renderFinding(f: Finding, paint: (sev: Severity, text: string) => string): string[] {
  const lines = [`  ${paint(f.severity, MARK[f.severity].padEnd(5))} ${safeText(f.summary)}`];
  if (f.severity === 'warning' || f.severity === 'error') {
    for (const e of f.evidence) lines.push(`        - ${safeText(e)}`);
    if (f.hint) lines.push(`        hint: ${safeText(f.hint)}`);
  }
  return lines;
}
