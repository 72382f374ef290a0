// Facts from plain files of the system tree at --root: firmware config, Zymbit's state and settings,
// kernels, initramfs-tools settings and packages. Each read is a Fact; nothing here throws.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { under } from '../root-path.ts';
import {
  known,
  missing,
  unreadable,
  type Fact,
  type FileDigest,
  type FirmwareConfigFacts,
  type KernelFacts,
  type ZkenvFacts,
  type ZymbitStateFacts,
} from './facts.ts';

/** The text of a file under root, or why it could not be read. */
export function readUnder(root: string, path: string): Fact<string> {
  try {
    return known(readFileSync(under(root, path), 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return missing(`'${path}' does not exist`);
    return unreadable(`cannot read '${path}': ${(error as Error).message}`);
  }
}

function firstOf(root: string, paths: readonly string[]): { path: string; text: Fact<string> } {
  for (const path of paths) {
    const text = readUnder(root, path);
    if (text.ok || text.status !== 'missing') return { path, text };
  }
  return { path: paths[0] ?? '', text: missing(`none of ${paths.map((p) => `'${p}'`).join(', ')} exists`) };
}

/** Raspberry Pi OS mounts the boot partition at /boot/firmware (Bookworm) or /boot (older). */
export const BOOT_DIRS = ['/boot/firmware', '/boot'] as const;

function effectiveLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l !== '');
}

export function gatherFirmwareConfig(root: string): Fact<FirmwareConfigFacts> {
  const { path, text } = firstOf(
    root,
    BOOT_DIRS.map((d) => `${d}/config.txt`),
  );
  return text.ok ? known({ path, lines: effectiveLines(text.value) }) : text;
}

export function gatherKernelCmdline(root: string): Fact<string> {
  const { text } = firstOf(
    root,
    BOOT_DIRS.map((d) => `${d}/cmdline.txt`),
  );
  return text.ok ? known(text.value.trim()) : text;
}

export function gatherZkenv(root: string): Fact<ZkenvFacts> {
  const path = '/var/lib/zymbit/zkenv.conf';
  const text = readUnder(root, path);
  if (!text.ok) return text;
  const m = /^\s*(?:export\s+)?ZK_GPIO_WAKE_PIN=["']?(\d+)/m.exec(text.value);
  return known({ path, wakePin: m?.[1] ?? null });
}

export function gatherPiModel(root: string): Fact<string> {
  const { text } = firstOf(root, ['/proc/device-tree/model', '/sys/firmware/devicetree/base/model']);
  return text.ok ? known(text.value.replace(/\0/g, '').trim()) : text;
}

function digestTree(dir: string): FileDigest[] {
  const out: FileDigest[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        out.push({
          path: relative(dir, p),
          sha256: createHash('sha256').update(readFileSync(p)).digest('hex'),
        });
      }
    }
  };
  walk(dir);
  return out;
}

export function zymbitStateDigests(dir: string): FileDigest[] {
  return digestTree(dir);
}

export function gatherZymbitState(root: string): Fact<ZymbitStateFacts> {
  const path = '/var/lib/zymbit';
  try {
    return known({ path, files: digestTree(under(root, path)) });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return missing(`'${path}' does not exist`);
    return unreadable(`cannot read '${path}': ${(error as Error).message}`);
  }
}

export function gatherInitramfsModules(root: string): Fact<string> {
  const path = '/etc/initramfs-tools/initramfs.conf';
  const text = readUnder(root, path);
  if (!text.ok) return text;
  const values = [...text.value.matchAll(/^\s*MODULES=["']?(\w+)/gm)].map((m) => m[1] ?? '');
  return values.length > 0 ? known(values[values.length - 1] ?? '') : missing(`'${path}' sets no MODULES=`);
}

/** Whether a Debian package is installed, from dpkg's status file. */
export function gatherPackageInstalled(root: string, pkg: string): Fact<boolean> {
  const status = readUnder(root, '/var/lib/dpkg/status');
  if (!status.ok) return status;
  const stanza = status.value.split(/\n\n+/).find((s) => new RegExp(`^Package: ${pkg}$`, 'm').test(s));
  return known(stanza !== undefined && /^Status: .* installed$/m.test(stanza));
}

export function gatherCpuGovernor(root: string): Fact<string> {
  const text = readUnder(root, '/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor');
  return text.ok ? known(text.value.trim()) : text;
}

export function gatherKernelPostinstHook(root: string): Fact<string> {
  return readUnder(root, '/etc/kernel/postinst.d/initramfs-tools');
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

export function gatherKernels(root: string, running: string | null): KernelFacts {
  const installed = list(under(root, '/lib/modules')).filter((v) => /^\d/.test(v));
  const bootImages = [...new Set(BOOT_DIRS.flatMap((d) => list(under(root, d))))].filter((n) =>
    /^(vmlinuz-|kernel.*\.img$)/.test(n),
  );
  return { running, installed, bootImages };
}
