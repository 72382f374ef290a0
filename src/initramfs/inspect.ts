// What an initramfs image holds, read with `lsinitramfs` (nothing is unpacked): the kernel version
// it was built for, and which of the files the zkluks keyscript needs at boot are inside.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../exec.ts';
import { ZkluksError } from '../errors.ts';
import { BOOT_PATHS, I2C_MODULES } from './boot-files.ts';

export interface ImageContents {
  /** The image file as given. */
  image: string;
  /** Paths inside, without a leading './' or '/'. */
  files: string[];
  /** Kernel versions with modules inside (usr/lib/modules/<v> or lib/modules/<v>). */
  kernelVersions: string[];
}

export async function listImage(runner: Runner, image: string): Promise<ImageContents> {
  const r = await runner('lsinitramfs', [image], { reject: false, timeoutMs: 120_000 });
  if (r.exitCode !== 0) {
    throw new ZkluksError(`Failed to list initramfs '${image}': ${r.stderr.trim() || `exit ${r.exitCode}`}`, {
      hint: 'rebuild it: update-initramfs -c -k all (for a --root tree: chroot DIR update-initramfs -c -k all)',
    });
  }
  const files = r.stdout
    .split('\n')
    .map((l) => l.trim().replace(/^\.\//, '').replace(/^\//, ''))
    .filter((l) => l !== '' && l !== '.');
  const versions = new Set<string>();
  for (const f of files) {
    const m = /^(?:usr\/)?lib\/modules\/([^/]+)\//.exec(f);
    if (m?.[1]) versions.add(m[1]);
  }
  return { image, files, kernelVersions: [...versions].sort() };
}

/** Whether the image holds `path` (absolute), also where merged /usr put it (lib/x -> usr/lib/x). */
export function hasFile(files: readonly string[], path: string): boolean {
  const rel = path.replace(/^\/+/, '');
  return (
    files.includes(rel) ||
    files.includes(`usr/${rel}`) ||
    (rel.startsWith('usr/') && files.includes(rel.slice(4)))
  );
}

/** The module a .ko file (possibly compressed) is, named with '-'; null for any other file. */
export function moduleName(file: string): string | null {
  const m = /\/([^/]+)\.ko(?:\.(?:xz|zst|gz))?$/.exec(file);
  return m?.[1] ? m[1].replaceAll('_', '-') : null;
}

export interface ImageExpectations {
  /** zkunlockifs on the system the image was built on. */
  zkunlockifs: string;
  /** Shared libraries zkunlockifs needs (ldd, plus Zymbit's libzk*), as absolute paths. */
  libraries: string[];
  /** Modules built into the kernel (from modules.builtin), normalized with '-'; null when unknown. */
  builtinModules: string[] | null;
}

export interface ZkluksInImage {
  keyscript: boolean;
  zkunlockifs: boolean;
  /** Libraries zkunlockifs needs that are not inside. */
  missingLibraries: string[];
  zymbitState: boolean;
  zkenv: boolean;
  bootConf: boolean;
  /** I2C modules inside the image or built into the kernel. */
  i2cModules: string[];
  askpass: boolean;
  cryptsetup: boolean;
  /**
   * Crypttab names whose token copy is inside (<name>.copy and <name>.sealed): their boots skip the
   * header read while the header is unchanged.
   */
  tokenCopies: string[];
}

/** The names with a whole token copy (<name>.copy and <name>.sealed) among the image's files. */
export function tokenCopiesIn(files: readonly string[]): string[] {
  const dir = `${BOOT_PATHS.tokenCopyDir.replace(/^\//, '')}/`;
  const names = files
    .filter((f) => f.startsWith(dir) && f.endsWith('.copy'))
    .map((f) => f.slice(dir.length, -'.copy'.length))
    .filter((n) => n !== '' && !n.includes('/'));
  return names.filter((n) => files.includes(`${dir}${n}.sealed`)).sort();
}

/** Pure: which of zkluks's and Zymbit's boot files an image holds. */
export function zkluksInImage(contents: ImageContents, expect: ImageExpectations): ZkluksInImage {
  const { files } = contents;
  const wanted = new Set<string>(I2C_MODULES);
  const modules = new Set<string>();
  for (const f of files) {
    const name = moduleName(f);
    if (name !== null && wanted.has(name)) modules.add(name);
  }
  for (const b of expect.builtinModules ?? []) if (wanted.has(b)) modules.add(b);
  const state = BOOT_PATHS.zymbitState.replace(/^\//, '');
  return {
    keyscript: hasFile(files, BOOT_PATHS.keyscript),
    zkunlockifs: hasFile(files, expect.zkunlockifs),
    missingLibraries: expect.libraries.filter(
      (lib) => !hasFile(files, lib) && !files.some((f) => f.endsWith(`/${lib.split('/').at(-1)}`)),
    ),
    zymbitState: files.some((f) => f.startsWith(`${state}/`)),
    zkenv: hasFile(files, BOOT_PATHS.zkenv),
    bootConf: hasFile(files, BOOT_PATHS.bootConf),
    i2cModules: I2C_MODULES.filter((m) => modules.has(m)),
    askpass: hasFile(files, '/lib/cryptsetup/askpass') || hasFile(files, '/usr/lib/cryptsetup/askpass'),
    cryptsetup: hasFile(files, '/sbin/cryptsetup') || hasFile(files, '/usr/sbin/cryptsetup'),
    tokenCopies: tokenCopiesIn(files),
  };
}

export interface ImageFinding {
  level: 'error' | 'warning';
  message: string;
}

/** Pure: what is wrong with an image for a zkluks boot. Errors mean the Zymkey path cannot work. */
export function imageFindings(inside: ZkluksInImage, expect: ImageExpectations): ImageFinding[] {
  const out: ImageFinding[] = [];
  const error = (message: string) => out.push({ level: 'error', message });
  if (!inside.keyscript) error(`the keyscript ${BOOT_PATHS.keyscript} is missing (is it named in crypttab?)`);
  if (!inside.zkunlockifs) error(`${expect.zkunlockifs} is missing`);
  for (const lib of inside.missingLibraries) error(`${lib}, needed by zkunlockifs, is missing`);
  if (!inside.zymbitState) error(`the Zymbit state ${BOOT_PATHS.zymbitState} is missing`);
  if (!inside.zkenv) error(`${BOOT_PATHS.zkenv} (the wake pin) is missing`);
  if (inside.i2cModules.length === 0) error(`no I2C module (${I2C_MODULES.join(', ')}) is inside`);
  else if (!inside.i2cModules.includes('i2c-dev')) error('the i2c-dev module is missing');
  if (!inside.askpass) error('askpass is missing, so the passphrase fallback cannot prompt');
  if (!inside.cryptsetup) error('cryptsetup is missing');
  if (!inside.bootConf)
    out.push({ level: 'warning', message: `${BOOT_PATHS.bootConf} is missing; defaults apply` });
  return out;
}

/** Libraries zkunlockifs links against (ldd), as absolute paths; none for a script. */
export async function linkedLibraries(runner: Runner, program: string): Promise<string[]> {
  const r = await runner('ldd', [program], { reject: false, timeoutMs: 30_000 });
  if (r.exitCode !== 0) return [];
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** Modules built into kernel `version` of the tree at `root`, or null when the tree does not say. */
export function builtinModules(root: string, version: string): string[] | null {
  for (const dir of ['/usr/lib/modules', '/lib/modules']) {
    const file = join(root, dir, version, 'modules.builtin');
    if (existsSync(file)) {
      return readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => moduleName(`/${l.trim()}`))
        .filter((m): m is string => m !== null);
    }
  }
  return null;
}

export interface ImageInspection {
  image: string;
  kernelVersions: string[];
  inside: ZkluksInImage;
  findings: ImageFinding[];
}

/** List `image` (a path on this machine) and judge it; `root` is the tree it was built from. */
export async function inspectImage(
  runner: Runner,
  image: string,
  opts: { root: string; zkunlockifs: string; libraries: string[] },
): Promise<ImageInspection> {
  const contents = await listImage(runner, image);
  const version = contents.kernelVersions[0];
  const expect: ImageExpectations = {
    zkunlockifs: opts.zkunlockifs,
    libraries: opts.libraries,
    builtinModules: version === undefined ? null : builtinModules(opts.root, version),
  };
  const inside = zkluksInImage(contents, expect);
  return { image, kernelVersions: contents.kernelVersions, inside, findings: imageFindings(inside, expect) };
}
