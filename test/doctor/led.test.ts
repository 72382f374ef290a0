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
    expect(decodeLed('four flashes, then two').name).toBe('supervised-boot-failed');
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

  // Zymbit's documented patterns (troubleshooting pages), written out here rather than read from
  // LED_PATTERNS, so a pattern dropped from or garbled in the table fails this test.
  const DOCUMENTED = [
    ['dev-bound', 'one blink every 3 seconds'],
    ['production-bound', 'three rapid blinks every 3 seconds'],
    ['not-bound', 'five blinks per second, continuously'],
    ['comm-interrupted', '1 s very rapid flash, 1 s off, 8 slow blinks'],
    ['atecc-unreachable', '1 s very rapid flash, 1 s off, 5 slow blinks'],
    ['off', 'rapid blinking, then the LED stays off'],
    ['rapid', 'rapid flashing that does not stop'],
    // SCM / Secure Edge Node: a Supervised Boot failure, shown three times in developer mode.
    ['supervised-boot-failed', '4 flashes, then 2, three times at power-on'],
  ] as const;

  it('documents every pattern Zymbit documents in the --led help, and decodes each description', () => {
    for (const [name, looks] of DOCUMENTED) {
      expect(ledHelp()).toContain(`${name}: ${looks}`);
      expect(decodeLed(looks).name).toBe(name);
    }
    expect(LED_PATTERNS.map((p) => p.name).sort()).toEqual(DOCUMENTED.map(([n]) => n).sort());
  });
});
