// The link to the module: the I2C bus, the wake pin (GPIO4) and what disturbs them.
import { valueOf, type Facts } from '../facts.ts';
import type { Finding } from '../finding.ts';
import { atLeast, compareKernelVersions } from '../kernel-version.ts';

const area = 'I2C' as const;

/** Zymbit's documented ZK_GPIO_WAKE_PIN values for kernels with global GPIO numbering (6.6+). */
export function wakePinFor(model: string): string | null {
  if (/Raspberry Pi 5.*Rev 1\.0/i.test(model)) return '575';
  if (/Raspberry Pi 5|Compute Module 5/i.test(model)) return '573';
  if (/Raspberry Pi 4|Compute Module 4|Raspberry Pi 400/i.test(model)) return '516';
  return null;
}

function probe(facts: Facts): Finding[] {
  if (!facts.i2c.ok) {
    return [
      {
        id: 'i2c.not-probed',
        area,
        severity: 'info',
        summary: 'The I2C bus was not probed.',
        evidence: [facts.i2c.reason],
        hint: '',
      },
    ];
  }
  const p = facts.i2c.value;
  const evidence = [`${p.busName ?? 'bus'}${p.bus === null ? '' : ` (i2c-${p.bus})`}: ${p.detail}`];
  switch (p.status) {
    case 'ok':
      return [
        {
          id: 'i2c.probe',
          area,
          severity: 'ok',
          summary: `The I2C bus answers and nothing else sits at ${p.address}.`,
          evidence,
          hint: '',
        },
      ];
    case 'conflict':
      return [
        {
          id: 'i2c.address-conflict',
          area,
          severity: 'error',
          summary: `Another chip answers at ${p.address}, the Zymkey's address (the Zymkey itself never answers a probe): the two collide on the bus.`,
          evidence,
          hint: "remove the other HAT or move the Zymkey with set_i2c_address (0x30-0x37, 0x60-0x67), then 'zkluks device probe'",
        },
      ];
    case 'bus-missing':
      return [
        {
          id: 'i2c.bus-missing',
          area,
          severity: 'error',
          summary: 'No I2C bus: the Zymkey cannot be reached.',
          evidence,
          hint: "set dtparam=i2c_arm=on in config.txt, 'modprobe i2c-dev', reboot",
        },
      ];
    case 'bus-timeout':
      return [
        {
          id: 'i2c.bus-timeout',
          area,
          severity: 'error',
          summary: 'The I2C bus times out: an electrical fault, a bad seat on the header, or a brown-out.',
          evidence,
          hint: 'power off, reseat the module, use a 5 V 3 A (Pi 5: 5 A) supply, then zkluks device probe',
        },
      ];
    default:
      return [
        {
          id: 'i2c.not-probed',
          area,
          severity: 'info',
          summary: 'The I2C bus was not probed.',
          evidence,
          hint: '',
        },
      ];
  }
}

function wakePin(facts: Facts): Finding[] {
  const kernels = [...facts.kernel.installed, ...(facts.kernel.running ? [facts.kernel.running] : [])].sort(
    compareKernelVersions,
  );
  const newest = kernels[kernels.length - 1];
  if (!newest) return [];
  const model = valueOf(facts.piModel) ?? 'unknown model';
  const expected = wakePinFor(model);
  const pin = valueOf(facts.zkenv)?.wakePin ?? null;
  const evidence = [
    `kernel ${newest}`,
    `model: ${model}`,
    facts.zkenv.ok
      ? `${facts.zkenv.value.path}: ${pin ? `ZK_GPIO_WAKE_PIN=${pin}` : 'no ZK_GPIO_WAKE_PIN'}`
      : `zkenv.conf: ${facts.zkenv.reason}`,
  ];
  if (atLeast(newest, 6, 6)) {
    if (!pin) {
      return [
        {
          id: 'i2c.wake-pin-unset',
          area,
          severity: 'error',
          summary:
            'Kernel 6.6 and later number GPIOs globally, and ZK_GPIO_WAKE_PIN is not set: the Zymkey never binds (LED: 5 blinks per second).',
          evidence,
          hint: `echo ZK_GPIO_WAKE_PIN=${expected ?? '<the GPIO4 number from grep GPIO4 /sys/kernel/debug/gpio>'} >> /var/lib/zymbit/zkenv.conf; systemctl restart zkifc; then rebuild the initramfs`,
        },
      ];
    }
    if (expected && pin !== expected) {
      return [
        {
          id: 'i2c.wake-pin-wrong',
          area,
          severity: 'warning',
          summary: `ZK_GPIO_WAKE_PIN=${pin}, but GPIO4 on this model is ${expected} under kernel 6.6 and later.`,
          evidence,
          hint: `set ZK_GPIO_WAKE_PIN=${expected} in /var/lib/zymbit/zkenv.conf (check with grep GPIO4 /sys/kernel/debug/gpio)`,
        },
      ];
    }
    return [
      {
        id: 'i2c.wake-pin',
        area,
        severity: 'ok',
        summary: `The wake pin is set (ZK_GPIO_WAKE_PIN=${pin}).`,
        evidence,
        hint: '',
      },
    ];
  }
  if (pin && Number(pin) >= 512) {
    return [
      {
        id: 'i2c.wake-pin-wrong',
        area,
        severity: 'warning',
        summary: `ZK_GPIO_WAKE_PIN=${pin} is a kernel 6.6+ number, but kernel ${newest} numbers GPIO4 as 4.`,
        evidence,
        hint: 'remove ZK_GPIO_WAKE_PIN from /var/lib/zymbit/zkenv.conf (or set it to 4)',
      },
    ];
  }
  return [];
}

function governor(facts: Facts): Finding[] {
  if (!facts.cpuGovernor.ok) return [];
  if (facts.cpuGovernor.value === 'ondemand') {
    return [
      {
        id: 'i2c.cpu-governor',
        area,
        severity: 'warning',
        summary: "The CPU governor is 'ondemand', which Zymbit reports disturbs the I2C bus.",
        evidence: ['scaling_governor: ondemand'],
        hint: "use 'performance' from a oneshot unit ordered Before=zkbootrtc.service",
      },
    ];
  }
  return [];
}

export function checkI2c(facts: Facts): Finding[] {
  return [...probe(facts), ...wakePin(facts), ...governor(facts)];
}
