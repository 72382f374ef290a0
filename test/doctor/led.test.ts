import { describe, expect, it } from 'vitest';
import { commandLineProblem } from '../../src/cli/command-spec.ts';
import { decodeLed, LED_PATTERNS, ledHelp } from '../../src/doctor/led.ts';
import { UsageError } from '../../src/errors.ts';
import { commandsOf } from '../hints/follow.ts';

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
    // SCM / Secure Edge Node events (SEN production-mode page): tamper 6 + the circuit's sub-flash,
    // low temperature 20-1, high temperature 20-2, low battery 4-1.
    ['tamper-1', '6 flashes, then 1'],
    ['tamper-2', '6 flashes, then 2'],
    ['low-temperature', '20 flashes, then 1'],
    ['high-temperature', '20 flashes, then 2'],
    ['low-battery', '4 flashes, then 1'],
  ] as const;

  it('documents every pattern Zymbit documents in the --led help, and decodes each description', () => {
    for (const [name, looks] of DOCUMENTED) {
      expect(ledHelp()).toContain(`${name}: ${looks}`);
      expect(decodeLed(looks).name).toBe(name);
    }
    expect(LED_PATTERNS.map((p) => p.name).sort()).toEqual(DOCUMENTED.map(([n]) => n).sort());
  });

  // What each SCM / SEN event means, written out: the severity and the words a hint must carry.
  const SCM_EVENTS = [
    [
      'six flashes, then one',
      'tamper-1',
      /circuit 1 \(API channel 0\).*production mode a tamper destroys every key/,
    ],
    ['6-2', 'tamper-2', /circuit 2 \(API channel 1\).*production mode a tamper destroys every key/],
    ['twenty flashes, then one', 'low-temperature', /below its low threshold.*stops the Pi from booting/],
    ['20-2', 'high-temperature', /above its high threshold.*stops the Pi from booting/],
    ['four flashes, then one', 'low-battery', /below its threshold \(default 2\.3 V\).*destroys every key/],
  ] as const;

  it("decodes the SCM's tamper, temperature and battery patterns as errors, each meaning written out", () => {
    for (const [typed, name, means] of SCM_EVENTS) {
      const p = decodeLed(typed);
      expect(p.name).toBe(name);
      expect(p.severity).toBe('error');
      expect(p.means).toMatch(means);
    }
    // A bare "6 flashes" does not say the circuit: the admin is asked which.
    expect(() => decodeLed('6 flashes')).toThrow(/more than one documented pattern/);
  });

  it("names in each SCM event's hint only zkluks command lines the CLI accepts and Zymbit's documented calls", async () => {
    const documented = /zymkey\.client\.(clear_perimeter_detect_info|get_cpu_temp|get_batt_volt)\(\)/;
    for (const [, name] of SCM_EVENTS) {
      const hint = decodeLed(name).hint;
      const commands = commandsOf(hint);
      const calls = hint.match(/python3 -c '[^']*'/g) ?? [];
      expect(commands.length + calls.length, hint).toBeGreaterThan(0);
      for (const [program, ...args] of commands) {
        if (program === 'zkluks') expect(await commandLineProblem(args), hint).toBeNull();
      }
      for (const call of calls) expect(call).toMatch(documented);
    }
    // Tamper and battery can cost every key: their hints add a way in that needs no module first.
    for (const name of ['tamper-1', 'tamper-2', 'low-battery'])
      expect(decodeLed(name).hint).toContain('zkluks recovery add VOLUME');
  });
});
