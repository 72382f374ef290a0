// Boot tier for adopt: a Pi as Zymbit's mk_encr_sd_rfs.sh leaves it (the sealed key.bin.lock as the
// volume's only keyslot, zk_get_key in crypttab, Zymbit's kernel hook; the migrate tier's fixture),
// whose LUKS2 volume holds the marker root. `zkluks adopt --root` runs on the staged tree; its
// rebuild step runs the real mkinitramfs for the test kernel (standing in for the chroot's
// update-initramfs) and places the image where raspi-firmware would, and QEMU boots that image:
// (a) the zkluks keyscript unlocks through the Zymkey (`zkluks sim serve`); (b) with the Zymkey dead
// (self-destructed), the boot prompts and the recovery key adopt delivered opens the root.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simArm, simBindLock, simBreach, simInit } from '../../src/device/sim-control.ts';
import { createRunner } from '../../src/exec.ts';
import { BOOT_PATHS } from '../../src/initramfs/boot-files.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { buildZymbitPi, ZYMBIT_CRYPTTAB, type ZymbitPi } from '../migrate/zymbit-pi.ts';
import { diskWithPartition, markerRootfs } from './disk.ts';
import { mkinitramfsScript, stageTestFiles } from './initramfs-build.ts';
import { testKernel, type TestKernel } from './kernel.ts';
import { bootVm, withSimulator, type BootResult } from './qemu.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-boot-adopt-'));
const NAME = 'cryptrfs';
const BOOT_CONF = 'ZKLUKS_TIMEOUT=60\nZKLUKS_BUS_WAIT=5\n';
const deadState = join(W, 'sim-dead');
let kernel: TestKernel;
let pi: ZymbitPi;
let initrd: string;
let disk: string;
let recoveryKey: string;
const timings: Record<string, number> = {};

/**
 * Stands in for `chroot ROOT update-initramfs -c -k all` (a staged tree has no userland to chroot
 * into): the real mkinitramfs for the test kernel from the tree's files, in a private mount
 * namespace, then the image placed as raspi-firmware's post-update hook places it for kernel8.img.
 */
function realChroot(k: TestKernel, root: string): string {
  const script = join(W, 'mkinitramfs.sh');
  writeFileSync(script, mkinitramfsScript(k, root, join(root, `boot/initrd.img-${k.version}`)));
  return `#!/bin/sh
set -eu
[ "$1" = '${root}' ] && [ "$2" = update-initramfs ] || { echo "chroot shim: only update-initramfs in ${root}" >&2; exit 1; }
unshare -m sh '${script}'
cp '${root}/boot/initrd.img-${k.version}' '${root}/boot/firmware/initramfs8.new'
mv '${root}/boot/firmware/initramfs8.new' '${root}/boot/firmware/initramfs8'
`;
}

beforeAll(async () => {
  let t = performance.now();
  kernel = await testKernel();
  timings.kernel = performance.now() - t;

  t = performance.now();
  pi = await buildZymbitPi({ rootfs: await markerRootfs(join(W, 'rootfs')) });
  // The forwarder to the host's simulator plays Zymbit's zkunlockifs; the image is built MODULES=list.
  stageTestFiles(pi.root, '/sbin/zkunlockifs');
  // The emulated boot shares two cores with other jobs, so the admin setting gives the unseal more
  // time than the default (adopt keeps an existing boot.conf); the time bound itself is boot.test.ts's.
  pi.file(BOOT_PATHS.bootConf, BOOT_CONF);
  // A dead Zymkey for (b): another module, self-destructed.
  simInit(deadState);
  simArm(deadState, 0, 'self-destruct');
  simBindLock(deadState);
  simBreach(deadState, 0);
  writeFileSync(join(pi.bin, 'chroot'), realChroot(kernel, pi.root), { mode: 0o755 });
  const header = await readHeader(createRunner(), pi.volume);
  expect(header.keyslots.map((k) => k.id)).toEqual([0]);
  expect(pi.read('/etc/crypttab')).toBe(ZYMBIT_CRYPTTAB);
  timings.fixture = performance.now() - t;

  t = performance.now();
  const keyFile = join(W, 'recovery.txt');
  const adopted = await pi.zkluks(['adopt', '--root', pi.root, '--yes', '--recovery-key-file', keyFile]);
  expect(adopted.exitCode, adopted.stderr).toBe(0);
  timings.adopt = performance.now() - t;
  recoveryKey = readFileSync(keyFile, 'utf8').trim();
  expect(pi.read('/etc/crypttab')).toMatch(
    new RegExp(
      `^${NAME} UUID=${pi.uuid} none luks,initramfs,.*keyscript=/lib/cryptsetup/scripts/zkluks`,
      'm',
    ),
  );
  expect(pi.read('/boot/firmware/config.txt')).toMatch(/^auto_initramfs=1$/m);
  expect(pi.read(BOOT_PATHS.bootConf)).toBe(BOOT_CONF);
  initrd = join(pi.root, 'boot/firmware/initramfs8');
  // Built by adopt's rebuild step (the fixture's Zymbit-era image is a gzip stand-in).
  expect(readFileSync(initrd).subarray(0, 4).toString('hex')).toBe('28b52ffd');
  expect(statSync(initrd).size).toBeGreaterThan(1024 * 1024);
  disk = await diskWithPartition(pi.volume, join(W, 'disk.img'));
}, 600_000);

afterAll(() => {
  console.log(
    `adopt boot setup: ${Object.entries(timings)
      .map(([k, v]) => `${k} ${Math.round(v)} ms`)
      .join(', ')}`,
  );
  pi?.cleanup();
  rmSync(W, { recursive: true, force: true });
});

function record(result: BootResult): Record<string, string> {
  const re = new RegExp(`^BOOTREC ${NAME}\\.record: ([a-z_]+)=(.*?)\\r?$`, 'gm');
  return Object.fromEntries([...result.console.matchAll(re)].map((m) => [m[1], m[2]]));
}

const prompt = (reason: string) => `Please unlock disk ${NAME} (Zymkey: ${reason}): `;

describe('booting a root adopted from Zymbit’s layout', () => {
  it('(a) unlocks through the Zymkey with the zkluks keyscript and reaches the root', async () => {
    const { value: boot, log } = await withSimulator(pi.simState, W, (socket) =>
      bootVm({ kernel, initrd, disk, rootName: NAME, simSocket: socket, timeoutMs: 300_000 }),
    );
    console.log(`boot (adopted, zymkey): ${Math.round(boot.durationMs)} ms`);
    expect(boot.console, boot.console).toContain('MARKER-ROOT-REACHED');
    expect(boot.console).toContain(`${NAME}: set up successfully`);
    expect(boot.console).not.toContain('Please unlock disk');
    expect(record(boot)).toMatchObject({ name: NAME, method: 'zymkey', reason: 'ok', tried: '0' });
    // One unseal: the zkluks token's sealed key; Zymbit's zk_get_key never ran.
    expect(log.match(/UNSEAL/g)).toHaveLength(1);
    expect(log).toMatch(/UNSEAL ok/);
  });

  it('(b) with the Zymkey dead, falls back to the prompt and the recovery key adopt delivered unlocks it', async () => {
    const { value: boot, log } = await withSimulator(deadState, W, (socket) =>
      bootVm({
        kernel,
        initrd,
        disk,
        rootName: NAME,
        simSocket: socket,
        answer: { prompt: prompt('unseal-failed'), reply: recoveryKey },
        timeoutMs: 300_000,
      }),
    );
    console.log(
      `boot (adopted, recovery key): ${Math.round(boot.durationMs)} ms, prompt at ${Math.round(boot.promptAtMs ?? -1)} ms`,
    );
    expect(log, 'the guest asked the Zymkey').toMatch(/UNSEAL err/);
    expect(boot.console, boot.console).toContain(prompt('unseal-failed'));
    expect(boot.console).toContain('MARKER-ROOT-REACHED');
    expect(boot.console).not.toContain(recoveryKey);
    expect(record(boot)).toMatchObject({ name: NAME, method: 'passphrase', reason: 'unseal-failed' });
  });
});
