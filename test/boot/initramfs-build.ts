// Builds a real initramfs with mkinitramfs from a staged system tree, leaving the host untouched:
// inside a private mount namespace (unshare -m), read-only overlays put the staged /etc, /usr/lib,
// /usr/sbin and /var/lib (and the test kernel's modules) over the host's, and the test kernel's
// /boot is bind-mounted, because mkinitramfs and its hooks read only those fixed paths.
import { execa } from 'execa';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { repoRoot } from '../helpers/cli.ts';
import type { TestKernel } from './kernel.ts';

const guest = join(repoRoot, 'test', 'boot', 'guest');

/**
 * An empty system tree with merged /usr, the test-only zkunlockifs forwarder, Zymbit state with a
 * wake pin, an initramfs-tools configuration for MODULES=list and the test hook and boot script.
 * `zkluks initramfs install --root <tree>` then adds zkluks's own files.
 */
export function stageTree(dir: string, opts: { crypttab?: string } = {}): string {
  for (const d of ['boot', 'etc', 'usr/lib', 'usr/sbin']) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  mkdirSync(join(dir, 'var/lib/zymbit/4a1b'), { recursive: true });
  symlinkSync('usr/lib', join(dir, 'lib'));
  writeFileSync(join(dir, 'var/lib/zymbit/zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
  writeFileSync(join(dir, 'var/lib/zymbit/4a1b/s1_fp_salt.bin'), 'test salt\n', { mode: 0o600 });
  writeFileSync(
    join(dir, 'etc/crypttab'),
    opts.crypttab ?? '# <target name> <source device> <key file> <options>\n',
  );
  return stageTestFiles(dir);
}

/**
 * What every booted tree gets from the boot tier, on top of its own files: the test-only
 * zkunlockifs forwarder at `zkunlockifs` (in place of Zymbit's), an initramfs-tools configuration
 * for MODULES=list and zstd (fast to build), and the test hook and boot script.
 */
export function stageTestFiles(dir: string, zkunlockifs = '/usr/sbin/zkunlockifs'): string {
  for (const d of [
    dirname(zkunlockifs),
    'etc/initramfs-tools/hooks',
    'etc/initramfs-tools/scripts/init-premount',
  ]) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  copyFileSync(join(guest, 'zkunlockifs.sh'), join(dir, zkunlockifs));
  chmodSync(join(dir, zkunlockifs), 0o755);
  writeFileSync(
    join(dir, 'etc/initramfs-tools/initramfs.conf'),
    'MODULES=list\nBUSYBOX=auto\nCOMPRESS=zstd\nCOMPRESSLEVEL=1\nDEVICE=\nNFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\nUMASK=0077\n',
  );
  copyFileSync(join(guest, 'hook.sh'), join(dir, 'etc/initramfs-tools/hooks/zz-zkluks-test'));
  chmodSync(join(dir, 'etc/initramfs-tools/hooks/zz-zkluks-test'), 0o755);
  copyFileSync(
    join(guest, 'init-premount.sh'),
    join(dir, 'etc/initramfs-tools/scripts/init-premount/zkluks-test'),
  );
  chmodSync(join(dir, 'etc/initramfs-tools/scripts/init-premount/zkluks-test'), 0o755);
  return dir;
}

export interface BuildResult {
  image: string;
  durationMs: number;
  stderr: string;
}

/** A real directory (not a merged-/usr link) of the staged tree, to overlay with /usr's. */
function ownDir(path: string): string[] {
  try {
    return lstatSync(path).isDirectory() ? [path] : [];
  } catch {
    return [];
  }
}

/**
 * The script (for `unshare -m sh`) that runs mkinitramfs for `kernel` from the staged tree `stage`
 * into `out`. A tree without merged /usr has its /lib and /sbin overlaid on /usr's.
 */
export function mkinitramfsScript(kernel: TestKernel, stage: string, out: string): string {
  const overlay = (target: string, ...lowers: string[]) => {
    const dirs = [...lowers.filter((d) => existsSync(d)), target];
    return `mount -t overlay overlay -o lowerdir=${dirs.join(':')} ${target}`;
  };
  return [
    'set -e',
    overlay('/usr/lib', join(stage, 'usr/lib'), ...ownDir(join(stage, 'lib')), kernel.usrLib),
    overlay('/usr/sbin', join(stage, 'usr/sbin'), ...ownDir(join(stage, 'sbin'))),
    overlay('/etc', join(stage, 'etc')),
    overlay('/var/lib', join(stage, 'var/lib')),
    `mount --bind ${kernel.bootDir} /boot`,
    `exec mkinitramfs -o ${out} ${kernel.version}`,
  ].join('\n');
}

/** mkinitramfs for `kernel` from the staged tree `stage`, into `out`. */
export async function buildInitramfs(opts: {
  kernel: TestKernel;
  stage: string;
  out: string;
  /** Also put Node, the bundle and i2c-bus in the image (for `device probe` in the guest). */
  withNode?: boolean;
}): Promise<BuildResult> {
  const { kernel, stage, out } = opts;
  const script = mkinitramfsScript(kernel, stage, out);
  const started = performance.now();
  const r = await execa('unshare', ['-m', 'sh', '-c', script], {
    reject: false,
    env: { ZKLUKS_TEST_REPO: opts.withNode ? repoRoot.replace(/\/$/, '') : '', TMPDIR: '/tmp' },
  });
  const durationMs = performance.now() - started;
  if (r.exitCode !== 0) throw new Error(`mkinitramfs failed (exit ${r.exitCode}):\n${r.stderr}`);
  return { image: out, durationMs, stderr: r.stderr };
}
