// Boot tier: a Debian kernel in QEMU (TCG) boots a LUKS2 root through Debian's own cryptroot, which
// calls the zkluks keyscript; the keyscript's zkunlockifs (a test-only forwarder) asks
// `zkluks sim serve` on the host over virtio-serial. One initramfs serves every case. The fallback
// cases: a self-destructed simulator, a host end that never answers (the keyscript's time bound), and
// a token whose sealed key the Zymkey unseals but cryptsetup rejects (cryptroot's second try); and,
// on the same image, a self-destructed simulator behind a zkunlockifs that fails opaquely
// (ZKLUKS_SIM_OPAQUE on the kernel command line), once per opaque mode.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simArm, simBindLock, simBreach, simInit } from '../../src/device/sim-control.ts';
import { simToolFailure, type SimOpaqueMode } from '../../src/device/sim-opaque.ts';
import { BOOT_PATHS, DEFAULT_TIMEOUT_S } from '../../src/initramfs/boot-files.ts';
import { zkluks } from '../helpers/cli.ts';
import {
  makeBootDisk,
  PASSPHRASE,
  withForeignSealedKey,
  withPartitionDevice,
  type BootDisk,
} from './disk.ts';
import { buildInitramfs, stageTree } from './initramfs-build.ts';
import { testKernel, type TestKernel } from './kernel.ts';
import { bootVm, withSimulator as withSimServe, type BootResult } from './qemu.ts';
import { withSilentZymkey } from './silent-zymkey.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-boot-'));
const simState = join(W, 'sim');
const destroyedState = join(W, 'sim-destroyed');
let kernel: TestKernel;
let disk: BootDisk;
let foreignDisk: BootDisk;
/** The keyscript's time bound in the built image, from the staged boot.conf. */
let timeoutS: number;
let initrd: string;
const timings: Record<string, number> = {};

beforeAll(async () => {
  let t = performance.now();
  kernel = await testKernel();
  timings.kernel = performance.now() - t;

  t = performance.now();
  simInit(simState);
  mkdirSync(join(W, 'disk'));
  disk = await makeBootDisk(join(W, 'disk'), simState);
  // Another module (a copy of the host directory would share this one), then destroyed.
  simInit(destroyedState);
  simArm(destroyedState, 0, 'self-destruct');
  simBindLock(destroyedState);
  simBreach(destroyedState, 0);
  foreignDisk = await withForeignSealedKey(disk, simState, join(W, 'disk', 'foreign.img'));
  timings.disk = performance.now() - t;

  t = performance.now();
  const stage = stageTree(join(W, 'root'));
  const installed = await zkluks([
    'initramfs',
    'install',
    `UUID=${disk.uuid}`,
    '--root',
    stage,
    '--no-update',
  ]);
  expect(installed.exitCode, installed.stderr).toBe(0);
  initrd = join(stage, 'boot', `initrd.img-${kernel.version}`);
  // The volume is a block device of the build host, as on a Pi: the image carries its token's copy.
  const built = await withPartitionDevice(disk.path, () =>
    buildInitramfs({ kernel, stage, out: initrd, withNode: true }),
  );
  expect(built.stderr).not.toMatch(/I: zkluks: cryptroot:/);
  const check = await zkluks(['initramfs', 'check', '--root', stage]);
  expect(check.exitCode, check.stdout).toBe(0);
  timeoutS = Number(
    /^ZKLUKS_TIMEOUT=(\d+)$/m.exec(readFileSync(join(stage, BOOT_PATHS.bootConf), 'utf8'))?.[1],
  );
  timings.initramfs = performance.now() - t;
}, 600_000);

afterAll(() => {
  console.log(
    `boot tier setup: ${Object.entries(timings)
      .map(([k, v]) => `${k} ${Math.round(v)} ms`)
      .join(', ')}`,
  );
  rmSync(W, { recursive: true, force: true });
});

/** `zkluks sim serve` on `state` for the duration of `fn`; returns what it logged too. */
function withSimulator<T>(state: string, fn: (socket: string) => Promise<T>) {
  return withSimServe(state, W, fn);
}

function records(result: BootResult): Record<string, string> {
  return Object.fromEntries(
    [...result.console.matchAll(/^BOOTREC cryptroot\.record: ([a-z_]+)=(.*?)\r?$/gm)].map((m) => [
      m[1],
      m[2],
    ]),
  );
}

const promptFor = (reason: string) => `Please unlock disk cryptroot (Zymkey: ${reason}): `;

/** Boot `diskPath` with the Zymkey behind `socket`, typing the passphrase at the prompt for `reason`. */
function bootTypingPassphrase(
  reason: string,
  diskPath: string,
  socket: string,
  append?: string,
): Promise<BootResult> {
  return bootVm({
    kernel,
    initrd,
    disk: diskPath,
    simSocket: socket,
    answer: { prompt: promptFor(reason), reply: PASSPHRASE },
    timeoutMs: 180_000,
    append,
  });
}

/**
 * The boot fell back to the passphrase for `reason`: the prompt said why, the reason reached the
 * console, the typed passphrase opened the root (never echoed), and the boot record says so.
 */
function expectPassphraseFallback(boot: BootResult, reason: string): Record<string, string> {
  expect(boot.console, boot.console).toContain(promptFor(reason));
  expect(boot.console).toContain(`zkluks: cryptroot: Zymkey unlock failed: ${reason}:`);
  expect(boot.console).toContain('MARKER-ROOT-REACHED');
  expect(boot.console).not.toContain(PASSPHRASE);
  const record = records(boot);
  expect(record).toMatchObject({ name: 'cryptroot', method: 'passphrase', reason });
  return record;
}

describe('booting a LUKS2 root with the zkluks keyscript', () => {
  it('unlocks with the Zymkey and reaches the root with method=zymkey', async () => {
    const { value: boot, log } = await withSimulator(simState, (socket) =>
      bootVm({ kernel, initrd, disk: disk.path, simSocket: socket, timeoutMs: 180_000 }),
    );
    console.log(`boot (zymkey): ${Math.round(boot.durationMs)} ms`);
    expect(boot.console, boot.console).toContain('MARKER-ROOT-REACHED');
    expect(boot.console).toContain('cryptroot: set up successfully');
    expect(boot.console).not.toContain('Please unlock disk');
    expect(records(boot)).toMatchObject({
      name: 'cryptroot',
      method: 'zymkey',
      reason: 'ok',
      tried: '0',
    });
    // The header is the one the image's copy was made from: no cryptsetup before the unlock.
    expect(records(boot).detail).toMatch(/^unsealed with token \d+ \(the image's copy of the header\)$/);
    expect(log).toMatch(/UNSEAL.*ok/i);
  });

  it('shows the prompt with reason unseal-failed when the Zymkey self-destructed, and unlocks with the typed passphrase', async () => {
    const { value: boot } = await withSimulator(destroyedState, (socket) =>
      bootTypingPassphrase('unseal-failed', disk.path, socket),
    );
    console.log(
      `boot (passphrase fallback): ${Math.round(boot.durationMs)} ms, prompt at ${Math.round(boot.promptAtMs ?? -1)} ms`,
    );
    expectPassphraseFallback(boot, 'unseal-failed');
  });

  it('gives up on a Zymkey that never answers within its time bound, prompts with reason timeout, and unlocks with the typed passphrase', async () => {
    expect(timeoutS).toBe(DEFAULT_TIMEOUT_S);
    const { value: boot, received } = await withSilentZymkey(join(W, 'silent.sock'), (socket) =>
      bootTypingPassphrase('timeout', disk.path, socket),
    );
    const record = records(boot);
    console.log(
      `boot (silent Zymkey): ${Math.round(boot.durationMs)} ms, prompt ${record.elapsed_ms} ms after the keyscript started`,
    );
    expect(received, 'the guest asked the Zymkey').toMatch(/^UNSEAL [A-Za-z0-9+/]+=*\n$/);
    expect(expectPassphraseFallback(boot, 'timeout')).toMatchObject({ tried: '0' });
    // The record is written just before the prompt; elapsed_ms counts from the keyscript's start.
    // The keyscript polls zkunlockifs every 0.1 s; 1.5 s is the margin for an emulated CPU.
    const elapsed = Number(record.elapsed_ms);
    expect(elapsed).toBeGreaterThanOrEqual(timeoutS * 1000);
    expect(elapsed).toBeLessThanOrEqual(timeoutS * 1000 + 1500);
  });

  // This disk's header differs from the one the image's copy was made from (its token holds another
  // key), so the keyscript reads the header: had it taken the copy, the root would have opened.
  it('asks for the passphrase with reason key-rejected when cryptsetup rejects the key the Zymkey unsealed', async () => {
    const { value: boot, log } = await withSimulator(simState, (socket) =>
      bootTypingPassphrase('key-rejected', foreignDisk.path, socket),
    );
    console.log(
      `boot (key rejected): ${Math.round(boot.durationMs)} ms, prompt at ${Math.round(boot.promptAtMs ?? -1)} ms`,
    );
    expect(log).toMatch(/UNSEAL ok/);
    expect(boot.console, boot.console).toContain('cryptroot: cryptsetup failed, bad password or options?');
    expect(boot.console.indexOf('bad password or options?')).toBeLessThan(
      boot.console.indexOf(promptFor('key-rejected')),
    );
    expect(boot.console).toContain(
      'zkluks: cryptroot: Zymkey unlock failed: key-rejected: cryptsetup rejected the key the Zymkey unsealed',
    );
    expect(expectPassphraseFallback(boot, 'key-rejected')).toMatchObject({ tried: '1' });
  });

  it('runs zkluks device probe in the guest against i2c-stub: bus missing, ok, conflict at 0x30', async () => {
    const boot = await bootVm({
      kernel,
      initrd,
      disk: disk.path,
      append: 'zkluks_test=probe',
      timeoutMs: 180_000,
    });
    console.log(`boot (probe): ${Math.round(boot.durationMs)} ms`);
    expect(boot.console, boot.console).toContain('ZKLUKS-PROBE-DONE');
    const probes = Object.fromEntries(
      [...boot.console.matchAll(/^ZKLUKS-PROBE (\S+) (\{.*\})\r?$/gm)].map((m) => [
        m[1],
        JSON.parse(m[2] ?? '{}'),
      ]),
    );
    expect(probes['no-i2c-dev']).toMatchObject({ status: 'bus-missing', address: '0x30' });
    expect(probes['stub-at-0x50']).toMatchObject({ status: 'ok', busName: 'SMBus stub driver' });
    expect(probes['stub-at-0x30']).toMatchObject({ status: 'conflict', busName: 'SMBus stub driver' });
  });
});

/**
 * How the keyscript's detail tells a zkunlockifs run that failed as the simulator's tools fail in
 * `mode` (src/device/sim-opaque.ts): its exit status and last stderr line, or its signal.
 */
function opaqueDetail(mode: SimOpaqueMode): string {
  const r = simToolFailure('zkunlockifs', 'self-destructed', 'the module destroyed its keys', mode);
  if (r.signal) return `was killed by signal ${osConstants.signals[r.signal]}`;
  const line = r.stderr.trim();
  return `exited with status ${r.exitCode}${line ? `: ${line}` : ''}`;
}

describe("booting when the guest's zkunlockifs fails opaquely (ZKLUKS_SIM_OPAQUE)", () => {
  const failing = ['plain', 'exit2', 'silent', 'signal'] as const satisfies readonly SimOpaqueMode[];
  it.each(failing)(
    'falls back to the prompt with reason unseal-failed when zkunlockifs fails opaquely (%s), and unlocks with the typed passphrase',
    async (mode) => {
      const { value: boot, log } = await withSimulator(destroyedState, (socket) =>
        bootTypingPassphrase('unseal-failed', disk.path, socket, `ZKLUKS_SIM_OPAQUE=${mode}`),
      );
      console.log(`boot (opaque ${mode}): ${Math.round(boot.durationMs)} ms`);
      expect(log, 'the simulator refused the unseal').toMatch(/UNSEAL err self-destructed/);
      const record = expectPassphraseFallback(boot, 'unseal-failed');
      expect(record).toMatchObject({ tried: '0' });
      // The tool's own words, as it ended; the simulator's reason never reaches the guest.
      expect(record.detail?.endsWith(`zkunlockifs ${opaqueDetail(mode)}`), record.detail).toBe(true);
      expect(boot.console).not.toContain('self-destructed');
    },
  );

  it('gives up on a zkunlockifs that hangs (hang) at a short ZKLUKS_TIMEOUT, prompts with reason timeout, and unlocks with the typed passphrase', async () => {
    const shortTimeoutS = 3;
    const { value: boot, log } = await withSimulator(destroyedState, (socket) =>
      bootTypingPassphrase(
        'timeout',
        disk.path,
        socket,
        `ZKLUKS_SIM_OPAQUE=hang zkluks_test_timeout=${shortTimeoutS}`,
      ),
    );
    const record = records(boot);
    console.log(
      `boot (opaque hang): ${Math.round(boot.durationMs)} ms, prompt ${record.elapsed_ms} ms after the keyscript started`,
    );
    // The simulator answered at once; the tool it answered did not.
    expect(log, 'the simulator refused the unseal').toMatch(/UNSEAL err self-destructed/);
    expect(expectPassphraseFallback(boot, 'timeout')).toMatchObject({ tried: '0' });
    expect(record.detail).toContain(`(ZKLUKS_TIMEOUT=${shortTimeoutS})`);
    expect(boot.console).not.toContain('self-destructed');
    const elapsed = Number(record.elapsed_ms);
    expect(elapsed).toBeGreaterThanOrEqual(shortTimeoutS * 1000);
    expect(elapsed).toBeLessThanOrEqual(shortTimeoutS * 1000 + 1500);
  });
});
