// A Debian amd64 kernel for the image and boot tiers, never installed on the host: the versioned
// package behind linux-image-amd64 is downloaded with `apt-get download`, unpacked with `dpkg -x`,
// given its modules.dep, and cached under .cache/boot/ so later runs start in milliseconds.
import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/cli.ts';

export interface TestKernel {
  /** e.g. 6.1.0-56-amd64 */
  version: string;
  /** The kernel image for QEMU's -kernel. */
  vmlinuz: string;
  /** Holds vmlinuz-<version> and config-<version> (mkinitramfs reads the config from /boot). */
  bootDir: string;
  /** Holds modules/<version>; overlaid on /usr/lib when building an initramfs. */
  usrLib: string;
}

export const bootCache = join(repoRoot, '.cache', 'boot');

async function kernelPackage(): Promise<string> {
  const r = await execa('apt-cache', ['depends', 'linux-image-amd64']);
  const pkg = /Depends: (linux-image-[0-9][^\s]*)/.exec(r.stdout)?.[1];
  if (pkg === undefined) throw new Error(`no versioned package behind linux-image-amd64:\n${r.stdout}`);
  return pkg;
}

function describeKernel(dir: string): TestKernel {
  const version = readdirSync(join(dir, 'usr', 'lib', 'modules'))[0];
  if (version === undefined) throw new Error(`no modules in ${dir}`);
  const bootDir = join(dir, 'boot');
  return { version, vmlinuz: join(bootDir, `vmlinuz-${version}`), bootDir, usrLib: join(dir, 'usr', 'lib') };
}

/** The cached test kernel, fetched on first use (about 10 s). */
export async function testKernel(): Promise<TestKernel> {
  const pkg = await kernelPackage();
  const dir = join(bootCache, pkg);
  if (existsSync(join(dir, 'usr', 'lib', 'modules'))) return describeKernel(dir);
  mkdirSync(bootCache, { recursive: true });
  const work = join(bootCache, `.${pkg}.${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    await execa('apt-get', ['download', '-q', pkg], { cwd: work });
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (deb === undefined) throw new Error(`apt-get download ${pkg} produced no .deb`);
    const tree = join(work, 'tree');
    await execa('dpkg', ['-x', join(work, deb), tree]);
    const version = readdirSync(join(tree, 'lib', 'modules'))[0] ?? '';
    await execa('depmod', ['-b', tree, version]);
    mkdirSync(join(tree, 'usr', 'lib'), { recursive: true });
    renameSync(join(tree, 'lib', 'modules'), join(tree, 'usr', 'lib', 'modules'));
    rmSync(join(work, deb));
    try {
      renameSync(tree, dir);
    } catch (error) {
      // Another run finished first; its copy is as good as ours.
      if (!existsSync(join(dir, 'usr', 'lib', 'modules'))) throw error;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return describeKernel(dir);
}
