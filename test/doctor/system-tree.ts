// Builds a real Raspberry Pi system tree under a temp dir for the doctor: a LUKS2 image file made by
// cryptsetup, a Zymkey-sealed key in its own slot with a zkluks-zymkey token (sealed by the simulator's
// zklockifs), a recovery slot, crypttab, /var/lib/zymbit, config.txt, and an initramfs image built
// with cpio + gzip that unmkinitramfs reads. Each scenario then breaks one thing for real.
import { execa } from 'execa';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { bundle } from '../helpers/cli.ts';
import { addKey } from '../helpers/luks.ts';
import { recoveryToken, serializeToken, zymkeyToken } from '../../src/keyslot/token.ts';
import { readHeader } from '../../src/keyslot/header.ts';
import { createRunner } from '../../src/exec.ts';

/** The KDF salt of a keyslot, which zkluks records in the slot's token. */
async function saltOf(volume: string, slot: number): Promise<string> {
  const salt = (await readHeader(createRunner(), volume)).keyslots.find((k) => k.id === slot)?.salt;
  if (!salt) throw new Error(`keyslot ${slot} of ${volume} has no salt`);
  return salt;
}

export const KERNEL = '6.6.51+rpt-rpi-v8';
export const MODEL = 'Raspberry Pi 4 Model B Rev 1.4';

export interface Tree {
  dir: string;
  root: string;
  simState: string;
  volume: string;
  uuid: string;
  /** The passphrase slot's key file (slot 0). */
  passphraseFile: string;
  /** The Zymkey slot's plaintext key (for scenarios that leak it). */
  zymkeyKey: Buffer;
  zymkeySlot: number;
  env: Record<string, string>;
  file(path: string, content: string | Buffer, mode?: number): void;
  read(path: string): string;
  remove(path: string): void;
  /** Build <root>/boot/firmware/initramfs8 from the files in `image` (paths inside the image). */
  buildImage(image: Record<string, string | Buffer>, name?: string): Promise<void>;
  /** The image contents a healthy zkluks install produces, from the tree as it is now. */
  healthyImage(): Record<string, string | Buffer>;
  sim(...args: string[]): Promise<string>;
  /** Run a simulator tool (zkgrifs, zklockifs, zkunlockifs) and return its stdout bytes. */
  simTool(name: string, ...args: string[]): Promise<Buffer>;
  cryptsetup(...args: string[]): Promise<string>;
  cleanup(): void;
}

async function run(
  file: string,
  args: string[],
  options: { input?: Buffer | string; env?: Record<string, string> } = {},
) {
  const r = await execa(file, args, {
    input: options.input ?? '',
    env: options.env,
    encoding: 'buffer',
    stripFinalNewline: false,
    reject: false,
  });
  if (r.exitCode !== 0)
    throw new Error(`${file} ${args.join(' ')} failed: ${Buffer.from(r.stderr).toString()}`);
  return Buffer.from(r.stdout);
}

export interface TreeOptions {
  /** Add the zkluks Zymkey slot and token (default true). */
  zymkey?: boolean;
  /** Add a recovery slot with a zkluks-recovery token (default true). */
  recovery?: boolean;
}

export async function buildTree(options: TreeOptions = {}): Promise<Tree> {
  const dir = mkdtempSync(join(tmpdir(), 'zkluks-doctor-'));
  const root = join(dir, 'root');
  const simState = join(dir, 'sim');
  const volume = join(dir, 'disk.img');
  const passphraseFile = join(dir, 'passphrase');
  const env = { ZKLUKS_SIM_STATE: simState, NO_COLOR: '1' };
  const file = (path: string, content: string | Buffer, mode = 0o644) => {
    const p = join(root, path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
    chmodSync(p, mode);
  };
  const cryptsetup = async (...args: string[]) => (await run('cryptsetup', args)).toString();
  const sim = async (...args: string[]) =>
    (await run(process.execPath, [bundle, 'sim', ...args], { env })).toString();
  // Zymbit's standalone tools (and the simulator's) run with zkifc stopped, as Zymbit's scripts do.
  const simTool = async (name: string, ...args: string[]) => {
    await sim('zkifc', 'stop');
    try {
      return await run(process.execPath, [bundle, 'sim', 'tool', name, ...args], { env });
    } finally {
      await sim('zkifc', 'start');
    }
  };

  await sim('init');
  writeFileSync(passphraseFile, 'correct horse battery staple', { mode: 0o600 });
  await run('truncate', ['-s', '32M', volume]);
  const fast = ['--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000'];
  await cryptsetup(
    'luksFormat',
    '--batch-mode',
    '--type',
    'luks2',
    ...fast,
    '--key-file',
    passphraseFile,
    volume,
  );
  const uuid = (await cryptsetup('luksUUID', volume)).trim();

  const zymkeyKey = randomBytes(64);
  const zymkeySlot = 1;
  const keyFile = join(dir, 'zymkey.key');
  writeFileSync(keyFile, zymkeyKey, { mode: 0o600 });
  if (options.zymkey !== false) {
    await addKey(volume, readFileSync(passphraseFile), zymkeyKey, zymkeySlot);
    await cryptsetup('config', '--priority', 'prefer', '--key-slot', String(zymkeySlot), volume);
    const sealed = await simTool('zklockifs', keyFile);
    const status = JSON.parse(await sim('status', '--json')) as {
      model: string;
      serial: string;
      binding: { mode: 'developer' | 'production' };
    };
    const token = zymkeyToken({
      keyslot: zymkeySlot,
      sealed,
      backend: 'sim',
      zymkey: { model: status.model, serial: status.serial, binding: status.binding.mode },
      created: new Date(),
      keyslotSalt: await saltOf(volume, zymkeySlot),
    });
    await run('cryptsetup', ['token', 'import', '--token-id', '0', volume], { input: serializeToken(token) });
  }
  if (options.recovery !== false) {
    await addKey(volume, readFileSync(passphraseFile), randomBytes(32).toString('hex'), 2);
    await run('cryptsetup', ['token', 'import', '--token-id', '1', volume], {
      input: serializeToken(
        recoveryToken({ keyslot: 2, created: new Date(), keyslotSalt: await saltOf(volume, 2) }),
      ),
    });
  }

  // The system tree: a Raspberry Pi 4 on Bookworm with zkluks installed.
  file(
    '/etc/crypttab',
    `# <target name> <source device> <key file> <options>\ncryptroot UUID=${uuid} none luks,initramfs,keyscript=/lib/cryptsetup/scripts/zkluks\n`,
  );
  file('/lib/cryptsetup/scripts/zkluks', '#!/bin/sh\n# zkluks keyscript\n', 0o755);
  file('/sbin/zkunlockifs', '#!/bin/sh\n', 0o755);
  file('/var/lib/zymbit/zkenv.conf', 'ZK_GPIO_WAKE_PIN=516\n');
  file('/var/lib/zymbit/SIM-0001/s1_fp_salt.bin', randomBytes(32));
  file(
    '/boot/firmware/config.txt',
    '# Raspberry Pi\n[all]\ndtparam=audio=on\ndtparam=i2c_arm=on\nauto_initramfs=1\narm_64bit=1\n',
  );
  file(
    '/boot/firmware/cmdline.txt',
    `console=serial0,115200 console=tty1 root=/dev/mapper/cryptroot rootfstype=ext4 fsck.repair=yes rootwait\n`,
  );
  file('/boot/firmware/kernel8.img', 'kernel');
  file(`/lib/modules/${KERNEL}/modules.dep`, '');
  file(`/boot/vmlinuz-${KERNEL}`, 'kernel');
  file('/proc/device-tree/model', `${MODEL}\0`);
  file('/etc/initramfs-tools/initramfs.conf', 'MODULES=most\nBUSYBOX=auto\nCOMPRESS=gzip\n');
  file(
    '/etc/kernel/postinst.d/initramfs-tools',
    '#!/bin/sh -e\n# initramfs-tools\nexec update-initramfs -c -k "$1"\n',
    0o755,
  );
  file(
    '/var/lib/dpkg/status',
    'Package: cryptsetup-initramfs\nStatus: install ok installed\n\nPackage: initramfs-tools\nStatus: install ok installed\n',
  );
  file(
    '/run/zkluks/cryptroot.record',
    'name=cryptroot\nsource=/dev/mmcblk0p2\nmethod=zymkey\ntried=0\nreason=ok\ndetail=unsealed with token 0\nelapsed_ms=412\nuptime=4.21\n',
  );

  const tree: Tree = {
    dir,
    root,
    simState,
    volume,
    uuid,
    passphraseFile,
    zymkeyKey,
    zymkeySlot,
    env,
    file,
    read: (path) => readFileSync(join(root, path), 'utf8'),
    remove: (path) => rmSync(join(root, path), { force: true, recursive: true }),
    async buildImage(image, name = '/boot/firmware/initramfs8') {
      const staging = join(dir, 'image-staging');
      rmSync(staging, { recursive: true, force: true });
      for (const [path, content] of Object.entries(image)) {
        const p = join(staging, path);
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, content);
      }
      const list = await execa('find', ['.'], { cwd: staging });
      const cpio = await execa('cpio', ['-o', '-H', 'newc', '--quiet'], {
        cwd: staging,
        input: list.stdout,
        encoding: 'buffer',
        stripFinalNewline: false,
      });
      const gz = await execa('gzip', ['-9n'], {
        input: Buffer.from(cpio.stdout),
        encoding: 'buffer',
        stripFinalNewline: false,
      });
      file(name, Buffer.from(gz.stdout));
    },
    healthyImage() {
      const state = (p: string) => readFileSync(join(root, '/var/lib/zymbit', p));
      return {
        'lib/cryptsetup/scripts/zkluks': tree.read('/lib/cryptsetup/scripts/zkluks'),
        'cryptroot/crypttab': `cryptroot UUID=${uuid} none luks,initramfs,keyscript=/lib/cryptsetup/scripts/zkluks\n`,
        'sbin/zkunlockifs': '#!/bin/sh\n',
        'var/lib/zymbit/zkenv.conf': state('zkenv.conf'),
        'var/lib/zymbit/SIM-0001/s1_fp_salt.bin': state('SIM-0001/s1_fp_salt.bin'),
        [`lib/modules/${KERNEL}/kernel/drivers/i2c/i2c-dev.ko.xz`]: 'module',
        [`lib/modules/${KERNEL}/kernel/drivers/i2c/busses/i2c-bcm2835.ko.xz`]: 'module',
        [`lib/modules/${KERNEL}/modules.dep`]: '',
        init: '#!/bin/sh\n',
      };
    },
    sim,
    simTool,
    cryptsetup,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  await tree.buildImage(tree.healthyImage());
  return tree;
}
