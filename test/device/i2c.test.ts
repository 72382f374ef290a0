// The I2C probe with an injected bus opener and a staged /sys and /dev under a temporary root.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chooseI2cBus, listI2cBuses, probeZymkeyBus, type I2cOpener } from '../../src/device/i2c.ts';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'zkluks-i2c-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function stageBus(bus: number, name: string, withDevice = true): void {
  mkdirSync(join(root, 'sys/class/i2c-dev', `i2c-${bus}`), { recursive: true });
  writeFileSync(join(root, 'sys/class/i2c-dev', `i2c-${bus}`, 'name'), `${name}\n`);
  if (withDevice) {
    mkdirSync(join(root, 'dev'), { recursive: true });
    writeFileSync(join(root, 'dev', `i2c-${bus}`), '');
  }
}

const errno = (code: string) => Object.assign(new Error(`${code}, transfer failed`), { code });

/** An opener whose receiveByte does `answer`; records the buses and addresses used. */
function opener(answer: () => Promise<number>, seen: string[] = []): I2cOpener {
  return async (bus) => ({
    receiveByte: async (address) => {
      seen.push(`${bus}@0x${address.toString(16)}`);
      return answer();
    },
    close: async () => undefined,
  });
}

describe('I2C probe', () => {
  it('no answer at 0x30 (ENXIO) is ok: the Zymkey stays silent to plain reads', async () => {
    stageBus(1, 'bcm2835 (i2c@7e804000)');
    const seen: string[] = [];
    const r = await probeZymkeyBus({ root, open: opener(() => Promise.reject(errno('ENXIO')), seen) });
    expect(r).toEqual({
      status: 'ok',
      bus: 1,
      busName: 'bcm2835 (i2c@7e804000)',
      address: '0x30',
      detail: expect.stringContaining('cannot prove'),
    });
    expect(seen).toEqual(['1@0x30']);
  });

  it('EREMOTEIO, as bcm2835 reports a NACK, is ok too', async () => {
    stageBus(1, 'bcm2835 (i2c@7e804000)');
    expect(
      (await probeZymkeyBus({ root, open: opener(() => Promise.reject(errno('EREMOTEIO'))) })).status,
    ).toBe('ok');
  });

  it('a chip answering at 0x30 is a conflict', async () => {
    stageBus(1, 'bcm2835 (i2c@7e804000)');
    const r = await probeZymkeyBus({ root, open: opener(async () => 0xa5) });
    expect(r.status).toBe('conflict');
    expect(r.detail).toContain('0xa5');
  });

  it('a transfer that times out (ETIMEDOUT or EAGAIN) is bus-timeout', async () => {
    stageBus(1, 'bcm2835 (i2c@7e804000)');
    expect(
      (await probeZymkeyBus({ root, open: opener(() => Promise.reject(errno('ETIMEDOUT'))) })).status,
    ).toBe('bus-timeout');
    expect((await probeZymkeyBus({ root, open: opener(() => Promise.reject(errno('EAGAIN'))) })).status).toBe(
      'bus-timeout',
    );
  });

  it('a transfer that never returns is bus-timeout after the bound', async () => {
    stageBus(1, 'bcm2835 (i2c@7e804000)');
    const r = await probeZymkeyBus({
      root,
      timeoutMs: 50,
      open: opener(() => new Promise<number>(() => undefined)),
    });
    expect(r.status).toBe('bus-timeout');
  });

  it('no I2C bus at all is bus-missing without a bus number', async () => {
    const r = await probeZymkeyBus({ root, open: opener(async () => 0) });
    expect(r).toMatchObject({ status: 'bus-missing', bus: null, busName: null });
  });

  it('a bus named in sysfs without its /dev node is bus-missing, and the opener is never used', async () => {
    stageBus(1, 'bcm2835 (i2c@7e804000)', false);
    const seen: string[] = [];
    const r = await probeZymkeyBus({ root, open: opener(async () => 0, seen) });
    expect(r).toMatchObject({ status: 'bus-missing', bus: 1 });
    expect(r.detail).toContain('/dev/i2c-1');
    expect(seen).toEqual([]);
  });

  it('--bus picks the bus explicitly, even one sysfs does not name', async () => {
    stageBus(0, 'SMBus PIIX4 adapter');
    mkdirSync(join(root, 'dev'), { recursive: true });
    writeFileSync(join(root, 'dev/i2c-7'), '');
    const seen: string[] = [];
    const r = await probeZymkeyBus({
      root,
      bus: 7,
      open: opener(() => Promise.reject(errno('ENXIO')), seen),
    });
    expect(r).toMatchObject({ status: 'ok', bus: 7, busName: null });
    expect(seen).toEqual(['7@0x30']);
  });

  it('errno numbers without codes are understood', async () => {
    stageBus(1, 'bcm2835 (i2c@7e804000)');
    const r = await probeZymkeyBus({
      root,
      open: opener(() => Promise.reject(Object.assign(new Error('x'), { errno: -121 }))),
    });
    expect(r.status).toBe('ok');
  });

  it('any other failure is unavailable with the error in the detail', async () => {
    stageBus(1, 'bcm2835 (i2c@7e804000)');
    const r = await probeZymkeyBus({ root, open: opener(() => Promise.reject(errno('EACCES'))) });
    expect(r.status).toBe('unavailable');
    expect(r.detail).toContain('EACCES');
  });

  it('a single bus of any name is used as is (the i2c-stub in the boot tier)', async () => {
    stageBus(0, 'SMBus stub driver');
    expect(chooseI2cBus(listI2cBuses(root))).toEqual({ bus: 0, name: 'SMBus stub driver' });
  });

  it('Raspberry Pi controllers come first, bus 1 before others', () => {
    stageBus(0, 'SMBus PIIX4 adapter');
    stageBus(11, 'Synopsys DesignWare I2C adapter');
    stageBus(1, 'Synopsys DesignWare I2C adapter');
    stageBus(20, 'fef04500.i2c');
    expect(chooseI2cBus(listI2cBuses(root))?.bus).toBe(1);
  });

  it('several buses without a Pi controller need --bus', async () => {
    stageBus(0, 'SMBus PIIX4 adapter');
    stageBus(1, 'SMBus stub driver');
    const r = await probeZymkeyBus({ root, open: opener(async () => 0) });
    expect(r).toMatchObject({ status: 'bus-missing', bus: null });
    expect(r.detail).toContain('--bus');
  });
});

describe('i2c-bus loading', () => {
  it('loads the installed i2c-bus and returns an opener', async () => {
    const { loadI2cBusOpener } = await import('../../src/device/i2c.ts');
    expect(typeof (await loadI2cBusOpener())).toBe('function');
  });
});
