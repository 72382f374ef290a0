import { describe, expect, it } from 'vitest';
import { renderReport } from '../src/doctor/report.ts';
import type { Diagnosis } from '../src/doctor/diagnose.ts';
import { safeText } from '../src/safe-text.ts';

describe('safeText', () => {
  it('shows terminal escapes, line breaks and other controls as visible escapes', () => {
    expect(safeText('zkluks-zymkey\x1b[2J\x1b]0;owned\x07')).toBe('zkluks-zymkey\\x1b[2J\\x1b]0;owned\\x07');
    expect(safeText('a\nb\rc\td\x00e\x7f\x9b')).toBe('a\\x0ab\\x0dc\\x09d\\x00e\\x7f\\x9b');
    expect(safeText('x\u2028y\u202ez')).toBe('x\\u2028y\\u202ez');
  });

  it('keeps ordinary text, spaces, backslashes and non-ASCII letters as they are', () => {
    expect(safeText('cryptroot UUID=0b6d-… é ü 鍵 /dev/disk\\040x')).toBe(
      'cryptroot UUID=0b6d-… é ü 鍵 /dev/disk\\040x',
    );
  });
});

describe('doctor report', () => {
  it('prints header-derived text in findings without terminal escapes or line breaks', () => {
    const diagnosis = {
      verdict: { status: 'warning', summary: 'token \x1b[2Jwiped' },
      findings: [
        {
          id: 'luks.test',
          area: 'LUKS header',
          severity: 'warning',
          summary: 'token 3 (evil\x1b]0;title\x07) is unusable',
          evidence: ['label: a\nfake line'],
          hint: 'zkluks list\r/dev/x',
        },
      ],
    } as unknown as Diagnosis;
    const out = renderReport(diagnosis, { colour: false });
    // eslint-disable-next-line no-control-regex -- finding control characters is the point
    expect(out).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(out.split('\n')).toEqual([
      'verdict: WARNING token \\x1b[2Jwiped',
      '',
      'LUKS header',
      '  WARN  token 3 (evil\\x1b]0;title\\x07) is unusable',
      '        - label: a\\x0afake line',
      '        hint: zkluks list\\x0d/dev/x',
      '',
    ]);
  });
});
