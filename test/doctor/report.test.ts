import { describe, expect, it } from 'vitest';
import type { Diagnosis } from '../../src/doctor/diagnose.ts';
import { renderReport } from '../../src/doctor/report.ts';
import { verdict } from '../../src/doctor/verdict.ts';
import type { Finding } from '../../src/doctor/finding.ts';

const findings: Finding[] = [
  {
    id: 'i2c.probe',
    area: 'I2C',
    severity: 'ok',
    summary: 'The I2C bus answers.',
    evidence: ['bus 1'],
    hint: '',
  },
  {
    id: 'luks.no-recovery-path',
    area: 'LUKS header',
    severity: 'error',
    summary: 'No recovery path.',
    evidence: ['keyslots: 0'],
    hint: "zkluks recovery add '/dev/mmcblk0p2'",
  },
  {
    id: 'zymkey.binding',
    area: 'Zymkey',
    severity: 'warning',
    summary: 'Something odd.',
    evidence: ['e1'],
    hint: 'h1',
  },
];
const diagnosis: Diagnosis = { version: 1, verdict: verdict(findings), findings };

describe('renderReport', () => {
  it('puts the verdict first, then areas in a fixed order, with evidence and hint only for problems', () => {
    const text = renderReport(diagnosis, { colour: false });
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('verdict: ERROR No recovery path.');
    expect(text.indexOf('\nZymkey\n')).toBeLessThan(text.indexOf('\nI2C\n'));
    expect(text.indexOf('\nI2C\n')).toBeLessThan(text.indexOf('\nLUKS header\n'));
    expect(text).toContain("        hint: zkluks recovery add '/dev/mmcblk0p2'");
    expect(text).toContain('        - keyslots: 0');
    expect(text).not.toContain('bus 1');
    expect(text).not.toContain('\x1b[');
  });

  it('colours severities only when asked', () => {
    const text = renderReport(diagnosis, { colour: true });
    expect(text).toContain('\x1b[31mERROR\x1b[0m');
    expect(text).toContain('\x1b[33mWARN ');
  });
});

describe('verdict', () => {
  it('leads with the finding that explains the others', () => {
    const more: Finding[] = [
      ...findings,
      {
        id: 'zymkey.self-destructed',
        area: 'Zymkey',
        severity: 'error',
        summary: 'Keys destroyed.',
        evidence: [],
        hint: '',
      },
    ];
    expect(verdict(more)).toEqual({ status: 'error', summary: 'Keys destroyed. (+1 more error)' });
  });

  it('is ok when only ok and info findings remain, without claiming an unlock it did not test', () => {
    expect(verdict([{ ...findings[0]!, severity: 'info' }])).toEqual({
      status: 'ok',
      summary: 'No problems found.',
    });
  });
});
