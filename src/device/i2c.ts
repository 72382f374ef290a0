// The I2C probe: is the bus the Zymkey needs there, does it answer, and is some other chip sitting at
// the Zymkey's address? The Zymkey itself never answers i2cdetect-style reads (its traffic is
// encrypted, not SMBus), so silence at 0x30 is the good outcome and an answer is a conflict.
// Opening a bus is lazy and proves nothing; only a real transfer does. The only i2c-bus importer.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ZYMKEY_I2C_ADDRESS = 0x30;

export type ProbeStatus = 'ok' | 'conflict' | 'bus-missing' | 'bus-timeout' | 'unavailable';

/** `zkluks device probe --json` prints exactly this. */
export interface ProbeResult {
  status: ProbeStatus;
  bus: number | null;
  busName: string | null;
  address: string;
  detail: string;
}

/** The part of an opened bus the probe uses. */
export interface I2cBusHandle {
  /** One SMBus receive-byte transfer from `address` (what i2cdetect does at 0x30-0x37). */
  receiveByte(address: number): Promise<number>;
  close(): Promise<void>;
}

export type I2cOpener = (bus: number) => Promise<I2cBusHandle>;

export interface ProbeOptions {
  /** The system tree whose /sys and /dev are probed; default "/". */
  root?: string;
  /** Bus number; default: found by /sys/class/i2c-dev/<dev>/name. */
  bus?: number;
  address?: number;
  /** Opens a bus; default: i2c-bus, loaded on first use. */
  open?: I2cOpener;
  /** Bound on the transfer. */
  timeoutMs?: number;
}

export interface I2cBusEntry {
  bus: number;
  name: string;
}

/** Raspberry Pi I2C controller names (bcm2835 on Pi 1-4, DesignWare through RP1 on Pi 5, legacy bcm2708). */
const PI_CONTROLLER = /bcm2835|bcm2708|designware/i;

/** Every bus under <root>/sys/class/i2c-dev, with its adapter name, by number. */
export function listI2cBuses(root = '/'): I2cBusEntry[] {
  const dir = join(root, 'sys/class/i2c-dev');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const buses: I2cBusEntry[] = [];
  for (const entry of names) {
    const m = /^i2c-(\d+)$/.exec(entry);
    if (!m) continue;
    let name = '';
    try {
      name = readFileSync(join(dir, entry, 'name'), 'utf8').trim();
    } catch {
      // A bus without a readable name still exists.
    }
    buses.push({ bus: Number(m[1]), name });
  }
  return buses.sort((a, b) => a.bus - b.bus);
}

/** Pi controllers first (bus 1, where the Zymkey sits, before others); a single bus is used as is. */
export function chooseI2cBus(buses: readonly I2cBusEntry[]): I2cBusEntry | undefined {
  const pi = buses.filter((b) => PI_CONTROLLER.test(b.name));
  if (pi.length > 0) return pi.find((b) => b.bus === 1) ?? pi[0];
  return buses.length === 1 ? buses[0] : undefined;
}

/** Load i2c-bus; a string says why it is not available. */
export async function loadI2cBusOpener(): Promise<I2cOpener | string> {
  try {
    type I2cModule = typeof import('i2c-bus');
    const mod = (await import('i2c-bus')) as Partial<I2cModule> & { default?: I2cModule };
    const i2c = mod.openPromisified ? (mod as I2cModule) : mod.default;
    if (!i2c?.openPromisified) return 'the i2c-bus module has no openPromisified';
    return async (bus) => {
      const handle = await i2c.openPromisified(bus);
      return { receiveByte: (address) => handle.receiveByte(address), close: () => handle.close() };
    };
  } catch (error) {
    return `i2c-bus is not installed or does not load here (${(error as Error).message.split('\n')[0]}); install it next to zkluks with: npm install i2c-bus`;
  }
}

const NO_ANSWER = new Set(['ENXIO', 'EREMOTEIO', 'ENODEV']);
const TIMED_OUT = new Set(['ETIMEDOUT', 'EAGAIN', 'EWOULDBLOCK']);

/** Linux errno numbers of the codes above, for errors that carry only a number. */
const ERRNO_NAMES: Record<number, string> = {
  2: 'ENOENT',
  6: 'ENXIO',
  11: 'EAGAIN',
  13: 'EACCES',
  16: 'EBUSY',
  110: 'ETIMEDOUT',
  121: 'EREMOTEIO',
};

function errorCode(error: unknown): string {
  const e = error as { code?: unknown; errno?: unknown };
  if (typeof e.code === 'string') return e.code;
  if (typeof e.errno !== 'number') return 'unknown error';
  const errno = Math.abs(e.errno);
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

export async function probeZymkeyBus(opts: ProbeOptions = {}): Promise<ProbeResult> {
  const root = opts.root ?? '/';
  const address = opts.address ?? ZYMKEY_I2C_ADDRESS;
  const at = hex(address);
  const buses = listI2cBuses(root);
  const result = (
    status: ProbeStatus,
    bus: number | null,
    busName: string | null,
    detail: string,
  ): ProbeResult => ({
    status,
    bus,
    busName,
    address: at,
    detail,
  });

  let chosen: I2cBusEntry | undefined;
  if (opts.bus !== undefined) {
    chosen = buses.find((b) => b.bus === opts.bus) ?? { bus: opts.bus, name: '' };
  } else {
    chosen = chooseI2cBus(buses);
    if (!chosen) {
      return buses.length === 0
        ? result(
            'bus-missing',
            null,
            null,
            'no I2C bus: enable I2C (dtparam=i2c_arm=on in config.txt) and load i2c-dev',
          )
        : result(
            'bus-missing',
            null,
            null,
            `no Raspberry Pi I2C controller among ${buses.map((b) => `i2c-${b.bus} '${b.name}'`).join(', ')}; name one with --bus N`,
          );
    }
  }
  const busName = chosen.name === '' ? null : chosen.name;
  const device = join(root, 'dev', `i2c-${chosen.bus}`);
  if (!existsSync(device)) {
    return result(
      'bus-missing',
      chosen.bus,
      busName,
      `/dev/i2c-${chosen.bus} does not exist: enable I2C and load i2c-dev`,
    );
  }

  const open = opts.open ?? (await loadI2cBusOpener());
  if (typeof open === 'string') return result('unavailable', chosen.bus, busName, open);

  const timeoutMs = opts.timeoutMs ?? 2000;
  let handle: I2cBusHandle | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    handle = await open(chosen.bus);
    const transfer = handle.receiveByte(address);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error('transfer timed out'), { code: 'ETIMEDOUT' })),
        timeoutMs,
      );
    });
    const byte = await Promise.race([transfer, timeout]);
    return result(
      'conflict',
      chosen.bus,
      busName,
      `a chip answered a plain read at ${at} with ${hex(byte)}; the Zymkey never answers such reads, so another device uses its address: remove it or move the Zymkey with set_i2c_address`,
    );
  } catch (error) {
    const code = errorCode(error);
    if (NO_ANSWER.has(code)) {
      return result(
        'ok',
        chosen.bus,
        busName,
        `the bus answers and no other chip claims ${at} (${code}); the Zymkey stays silent to plain reads, so this cannot prove it is present`,
      );
    }
    if (TIMED_OUT.has(code)) {
      return result(
        'bus-timeout',
        chosen.bus,
        busName,
        `the transfer at ${at} timed out (${code}): check wiring, power and the I2C clock`,
      );
    }
    if (code === 'ENOENT') {
      return result('bus-missing', chosen.bus, busName, `/dev/i2c-${chosen.bus} vanished while probing`);
    }
    if (code === 'EBUSY') {
      return result(
        'conflict',
        chosen.bus,
        busName,
        `a kernel driver claims ${at} (EBUSY); the Zymkey needs that address for itself`,
      );
    }
    return result(
      'unavailable',
      chosen.bus,
      busName,
      `the transfer at ${at} failed: ${code}: ${(error as Error).message}`,
    );
  } finally {
    if (timer) clearTimeout(timer);
    // Not awaited: after a timeout the transfer may still hold the bus.
    void handle?.close().catch(() => undefined);
  }
}
