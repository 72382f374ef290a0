// The Zymkey's LED patterns as Zymbit documents them. After a self-destruct the LED is the only
// signal the module gives, so `zkluks doctor --led PATTERN` folds what the user sees into the verdict.
import { UsageError } from '../errors.ts';
import type { Finding } from './finding.ts';

export interface LedPattern {
  name: string;
  aliases: string[];
  /** What the LED does, as a person would describe it. */
  looks: string;
  /** What it means. */
  means: string;
  severity: Finding['severity'];
  hint: string;
}

const CLEAR_BREACHES = "python3 -c 'import zymkey; zymkey.client.clear_perimeter_detect_info()'";

export const LED_PATTERNS: readonly LedPattern[] = [
  {
    name: 'dev-bound',
    aliases: ['1-per-3s', 'one-every-3s', 'once-every-3-seconds', 'developer'],
    looks: 'one blink every 3 seconds',
    means: 'bound to this host in developer mode; zkifc is running',
    severity: 'ok',
    hint: '',
  },
  {
    name: 'production-bound',
    aliases: ['3-per-3s', 'three-every-3s', 'production'],
    looks: 'three rapid blinks every 3 seconds',
    means: 'bound to this host in production mode',
    severity: 'ok',
    hint: '',
  },
  {
    name: 'not-bound',
    aliases: ['5-per-second', 'five-per-second', 'fast', 'waiting'],
    looks: 'five blinks per second, continuously',
    means:
      'powered but not bound to the host: I2C is off or faulty, the wake pin is unset (kernel 6.6 and later), or zkifc is not running',
    severity: 'error',
    hint: "check I2C ('zkluks device probe'), set ZK_GPIO_WAKE_PIN in /var/lib/zymbit/zkenv.conf, then 'systemctl restart zkifc'",
  },
  {
    name: 'comm-interrupted',
    aliases: ['8-slow', 'flash-8-slow', 'eight-slow'],
    looks: '1 s very rapid flash, 1 s off, 8 slow blinks',
    means: 'communication with the host was interrupted (I2C bus or power fault)',
    severity: 'error',
    hint: "check the power supply and the I2C bus ('zkluks device probe'), then reboot",
  },
  {
    name: 'atecc-unreachable',
    aliases: ['5-slow', 'flash-5-slow', 'five-slow', 'self-destruct', 'self-destructed'],
    looks: '1 s very rapid flash, 1 s off, 5 slow blinks',
    means:
      'the module cannot reach its secure element: in production mode with self-destruct armed this means a perimeter breach destroyed all key material; otherwise a hardware fault',
    severity: 'error',
    hint: 'the module cannot unseal anything again; keep the volume open and add a recovery key now: zkluks recovery add VOLUME',
  },
  {
    name: 'off',
    aliases: ['dark', 'rapid-then-off', 'led-off'],
    looks: 'rapid blinking, then the LED stays off',
    means:
      'a production-mode module refuses this host: the Pi, the SD card or the module is not the one it was bound to',
    severity: 'error',
    hint: 'put the module back on the original Pi and SD card, or type the recovery key at the boot prompt (an escrowed one: zkluks recovery unlock --identity FILE VOLUME)',
  },
  {
    name: 'supervised-boot-failed',
    aliases: ['4-2', '4-then-2', 'supervised-boot'],
    looks: '4 flashes, then 2, three times at power-on, then the Pi boots (SCM, Secure Edge Node)',
    means:
      "the SCM's Supervised Boot found a boot file that no longer matches its manifest; in developer mode it only shows this and boots, in production mode the same failure destroys every key",
    severity: 'error',
    hint: "'zkluks supervised-boot status'; before any reboot, 'zkluks supervised-boot update FILE' for each file changed on purpose, and put any other back",
  },
  // The SCM's and Secure Edge Node's event patterns (Zymbit's SEN production-mode page): in developer
  // mode an event is simulated, its pattern shown three times, and the module recovers; in production
  // a tamper destroys every key and a temperature event stops the boot. Where the page is silent (the
  // battery's production action, which circuit a sub-flash names) the stricter reading holds.
  ...[1, 2].map((circuit): LedPattern => ({
    name: `tamper-${circuit}`,
    aliases: [`6-${circuit}`, `6-then-${circuit}`, `tamper-circuit-${circuit}`],
    looks: `6 flashes, then ${circuit} (SCM, Secure Edge Node)`,
    means: `tamper detect saw a breach, the sub-flash naming perimeter circuit ${circuit} (API channel ${circuit - 1}); a developer-mode module only simulates it and recovers, but in production mode a tamper destroys every key at once`,
    severity: 'error',
    hint: `while the volume is open, add a way in that needs no module: zkluks recovery add VOLUME; then 'zkluks doctor' (each channel's latched breach); once the enclosure is closed: ${CLEAR_BREACHES}`,
  })),
  ...[
    { edge: 'low', sub: 1, side: 'below its low threshold (default -10 °C)' },
    { edge: 'high', sub: 2, side: 'above its high threshold (default 65 °C)' },
  ].map(({ edge, sub, side }): LedPattern => ({
    name: `${edge}-temperature`,
    aliases: [`20-${sub}`, `20-then-${sub}`, `${edge}-temp`, `temp-${edge}`],
    looks: `20 flashes, then ${sub} (SCM, Secure Edge Node)`,
    means: `the module's temperature is ${side}; a developer-mode module only simulates it and recovers, but in production mode a temperature event stops the Pi from booting`,
    severity: 'error',
    hint: `bring the Pi back into the module's temperature range and power it up again; read the module's temperature: python3 -c 'import zymkey; print(zymkey.client.get_cpu_temp())'`,
  })),
  {
    name: 'low-battery',
    aliases: ['4-1', '4-then-1', 'battery', 'battery-low'],
    looks: '4 flashes, then 1 (SCM, Secure Edge Node)',
    means:
      "the module's battery is below its threshold (default 2.3 V); the battery keeps tamper detect alive while the Pi is off, and a module whose battery action is self-destruct (or, on older modules, with tamper armed) destroys every key when it runs out",
    severity: 'error',
    hint: "before the battery is changed or runs out, add a way in that needs no module: zkluks recovery add VOLUME; read the voltage: python3 -c 'import zymkey; print(zymkey.client.get_batt_volt())'",
  },
  {
    name: 'rapid',
    aliases: ['rapid-flashing', 'flashing'],
    looks: 'rapid flashing that does not stop',
    means: 'zkifc has been stopped on purpose (during encryption or while a zk*ifs tool runs)',
    severity: 'info',
    hint: "if nothing is using the Zymkey tools, 'systemctl restart zkifc'",
  },
];

function normalize(text: string): string {
  return text
    .toLowerCase()
    .replace(/\bone\b/g, '1')
    .replace(/\btwo\b/g, '2')
    .replace(/\bthree\b/g, '3')
    .replace(/\bfour\b/g, '4')
    .replace(/\bfive\b/g, '5')
    .replace(/\bsix\b/g, '6')
    .replace(/\beight\b/g, '8')
    .replace(/\btwenty\b/g, '20')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/** Decode what the user typed: a pattern name, an alias, or a description such as '5 slow blinks'. */
export function decodeLed(input: string): LedPattern {
  const want = normalize(input);
  const exact = LED_PATTERNS.find((p) => p.name === want || p.aliases.includes(want));
  if (exact) return exact;
  const described = LED_PATTERNS.filter((p) => normalize(p.looks).includes(want));
  if (described.length === 1 && described[0]) return described[0];
  throw new UsageError(
    `Failed to decode LED pattern '${input}': it matches ${described.length === 0 ? 'no' : 'more than one'} documented pattern`,
    {
      hint: `name one of: ${LED_PATTERNS.map((p) => `'${p.name}' (${p.looks})`).join(', ')}`,
    },
  );
}

/** The help text for --led. */
export function ledHelp(): string {
  return LED_PATTERNS.map((p) => `${p.name}: ${p.looks}`).join('; ');
}
