// config.txt and cmdline.txt: what the Raspberry Pi firmware does before Linux starts.
import { systemFile, zkluksCommand } from '../../hint.ts';
import type { Facts } from '../facts.ts';
import type { Finding } from '../finding.ts';

const area = 'boot firmware' as const;
const ON = new Set(['on', 'true', 'yes', '1']);

/** dtparam=a=on,b=off lines as one map, later lines winning. */
function dtparams(lines: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of lines) {
    const m = /^dtparam=(.*)$/.exec(line);
    if (!m?.[1]) continue;
    for (const part of m[1].split(',')) {
      const [k, v] = part.split('=');
      if (k) out.set(k.trim(), (v ?? 'on').trim());
    }
  }
  return out;
}

export function checkBootFirmware(facts: Facts): Finding[] {
  if (!facts.firmwareConfig.ok) {
    return [
      {
        id: 'firmware.config-missing',
        area,
        severity: 'warning',
        summary:
          'No config.txt found: the I2C, initramfs and 1-Wire settings of the boot firmware are unknown.',
        evidence: [facts.firmwareConfig.reason],
        hint: `mount the boot partition at ${systemFile(facts.root, '/boot/firmware')} (or ${systemFile(facts.root, '/boot')}), then ${zkluksCommand(facts.root, 'doctor')}`,
      },
    ];
  }
  const { path, lines } = facts.firmwareConfig.value;
  const findings: Finding[] = [];
  const params = dtparams(lines);
  const i2c = params.get('i2c_arm') ?? params.get('i2c');
  if (!i2c || !ON.has(i2c)) {
    findings.push({
      id: 'firmware.i2c-disabled',
      area,
      severity: 'error',
      summary: 'I2C is disabled in config.txt: the Zymkey cannot be reached, at boot or after.',
      evidence: [`${path}: ${i2c ? `dtparam=i2c_arm=${i2c}` : 'no dtparam=i2c_arm=on line'}`],
      hint: `add 'dtparam=i2c_arm=on' to ${path} (or raspi-config nonint do_i2c 0) and reboot`,
    });
  } else {
    findings.push({
      id: 'firmware.i2c',
      area,
      severity: 'ok',
      summary: 'I2C is enabled.',
      evidence: [`${path}: dtparam=i2c_arm=${i2c}`],
      hint: '',
    });
  }
  const initramfsLine = [...lines].reverse().find((l) => /^initramfs\s/.test(l));
  const auto = [...lines].reverse().find((l) => /^auto_initramfs=/.test(l));
  if (!initramfsLine && !(auto && ON.has(auto.split('=')[1] ?? ''))) {
    findings.push({
      id: 'firmware.no-initramfs',
      area,
      severity: 'error',
      summary:
        'config.txt loads no initramfs (no initramfs line, auto_initramfs off): the kernel cannot unlock an encrypted root.',
      evidence: [`${path}: ${auto ?? 'no auto_initramfs line'}`],
      hint: `add 'auto_initramfs=1' to ${path}`,
    });
  } else if (facts.initramfs.ok) {
    findings.push({
      id: 'firmware.initramfs',
      area,
      severity: 'ok',
      summary: `The firmware loads '${facts.initramfs.value.image}'.`,
      evidence: [`${path}: ${initramfsLine ?? auto}`, facts.initramfs.value.chosenBecause],
      hint: '',
    });
  }
  for (const l of lines) {
    const m = /^dtoverlay=w1-gpio(?:-pullup)?(.*)$/.exec(l);
    if (!m) continue;
    const pin = /gpiopin=(\d+)/.exec(m[1] ?? '')?.[1] ?? '4';
    if (pin === '4') {
      findings.push({
        id: 'firmware.one-wire-gpio4',
        area,
        severity: 'error',
        summary: "The 1-Wire overlay claims GPIO4, the Zymkey's wake pin: the module cannot bind.",
        evidence: [`${path}: ${l}`],
        hint: `remove the line, or move 1-Wire with 'dtoverlay=w1-gpio,gpiopin=<other pin>', then reboot`,
      });
    }
  }
  if (facts.kernelCmdline.ok) {
    const consoles = [...facts.kernelCmdline.value.matchAll(/(?:^|\s)console=(\S+)/g)].map((m) => m[1]);
    const last = consoles[consoles.length - 1];
    findings.push({
      id: 'firmware.prompt-console',
      area,
      severity: 'info',
      summary: `The fallback passphrase prompt appears on '${last ?? 'tty0'}' only (the last console= on the kernel command line).`,
      evidence: [`cmdline: ${consoles.map((c) => `console=${c}`).join(' ') || 'no console='}`],
      hint: '',
    });
  }
  return findings;
}
