// Where the passphrase prompt appears. askpass speaks only on /dev/console, which is the LAST
// console= on the kernel command line: Raspberry Pi's `console=serial0,115200 console=tty1`
// prompts on HDMI and the keyboard, never on the serial port.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PromptConsole {
  /** The device askpass prompts on, e.g. 'tty1', 'ttyS0'; 'tty0' (the screen) when no console= is given. */
  device: string;
  /** Every console= value in order; the kernel's messages go to all of them. */
  consoles: string[];
  /** Where the command line was read from. */
  cmdlineFrom: string;
  /** For people: where to look for the prompt. */
  summary: string;
}

function describe(device: string): string {
  if (/^tty[0-9]+$/.test(device)) return 'the screen and keyboard (HDMI)';
  if (/^(serial|ttyS|ttyAMA|ttyAML|ttyUSB)/.test(device)) return 'the serial console';
  return device;
}

/** Pure: the prompt's console from a kernel command line. */
export function promptConsole(cmdline: string, cmdlineFrom = 'the kernel command line'): PromptConsole {
  const consoles = cmdline
    .split(/\s+/)
    .filter((w) => w.startsWith('console='))
    .map((w) => w.slice('console='.length));
  const last = consoles.at(-1);
  const device = last === undefined ? 'tty0' : (last.split(',')[0] ?? last);
  const others = consoles.slice(0, -1).map((c) => c.split(',')[0]);
  const summary =
    `the passphrase prompt appears on ${device} (${describe(device)}), the last console= in ${cmdlineFrom}` +
    (others.length > 0 ? `; not on ${others.join(', ')}` : '');
  return { device, consoles, cmdlineFrom, summary };
}

/** The command line the next boot will use: the Pi's cmdline.txt, else (live system) /proc/cmdline. */
export function readPromptConsole(root: string): PromptConsole | null {
  for (const file of ['/boot/firmware/cmdline.txt', '/boot/cmdline.txt']) {
    const path = join(root, file);
    if (existsSync(path)) return promptConsole(readFileSync(path, 'utf8'), file);
  }
  if (root === '/' && existsSync('/proc/cmdline')) {
    return promptConsole(readFileSync('/proc/cmdline', 'utf8'), '/proc/cmdline');
  }
  return null;
}
