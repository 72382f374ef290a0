import { describe, expect, it } from 'vitest';
import { decodeLed, LED_PATTERNS, ledHelp } from '../../src/doctor/led.ts';
import { UsageError } from '../../src/errors.ts';

describe('decodeLed', () => {
  it('accepts a pattern name, an alias, or a description a person would type', () => {
    expect(decodeLed('atecc-unreachable').name).toBe('atecc-unreachable');
    expect(decodeLed('self-destruct').name).toBe('atecc-unreachable');
    expect(decodeLed('5 slow blinks').name).toBe('atecc-unreachable');
    expect(decodeLed('five slow blinks').name).toBe('atecc-unreachable');
    expect(decodeLed('8 slow blinks').name).toBe('comm-interrupted');
    expect(decodeLed('one blink every 3 seconds').name).toBe('dev-bound');
    expect(decodeLed('three rapid blinks').name).toBe('production-bound');
    expect(decodeLed('Five blinks per second').name).toBe('not-bound');
    expect(decodeLed('stays off').name).toBe('off');
  });

  it('refuses an unknown or ambiguous description with a usage error listing every pattern', () => {
    expect(() => decodeLed('purple')).toThrow(UsageError);
    expect(() => decodeLed('slow blinks')).toThrow(/more than one documented pattern/);
    try {
      decodeLed('purple');
    } catch (error) {
      for (const p of LED_PATTERNS) expect((error as UsageError).hint).toContain(p.name);
    }
  });

  it('documents every pattern in the --led help', () => {
    for (const p of LED_PATTERNS) expect(ledHelp()).toContain(`${p.name}: ${p.looks}`);
  });
});
