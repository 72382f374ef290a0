// The initramfs image the firmware will load, unpacked once with unmkinitramfs into a private tmpfs
// directory (it may hold key material) that is removed before this returns. From the unpacked tree
// alone (the image is read once): its file list, the kernel it was built for and the modules built
// into it, digests of the Zymbit state inside it, and files that look like plaintext keys, each
// tested against the header.
import { existsSync, readdirSync, readFileSync, lstatSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Runner } from '../exec.ts';
import { withPrivateTmpfsDir } from '../device/tmpfs-dir.ts';
import { BOOT_PATHS } from '../initramfs/boot-files.ts';
import { builtinModules, tokenCopiesIn } from '../initramfs/inspect.ts';
import { readText } from '../read-text.ts';
import { installedKernels } from '../initramfs/install-facts.ts';
import { under } from '../root-path.ts';
import {
  known,
  missing,
  unreadable,
  type Fact,
  type InitramfsFacts,
  type KeyMaterialFacts,
  type TokenCopyFacts,
} from './facts.ts';
import { zymbitStateDigests } from './gather-system.ts';

/** Names that hold a LUKS key in plaintext by convention (Zymbit's key.bin, crypttab key files). */
const KEY_NAME = /(^|\/)(key\.bin|[^/]*\.key|keyfile[^/]*)$|(^|\/)cryptroot\/keyfiles\//;

/**
 * The token copies among `files` of the unpacked image `dir` (whole ones, as inspect names them),
 * with what each holds; one that does not read as a boot would take it is left out.
 */
export function tokenCopies(dir: string, files: readonly string[]): TokenCopyFacts[] {
  const out: TokenCopyFacts[] = [];
  for (const name of tokenCopiesIn(files)) {
    const copy = join(dir, BOOT_PATHS.tokenCopyDir, name);
    const fields = new Map(
      (readText(`${copy}.copy`) ?? '')
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const csum = fields.get('csum') ?? '';
    const token = fields.get('token') ?? '';
    if (!/^[0-9a-f]{128}$/.test(csum) || !/^\d+$/.test(token)) continue;
    out.push({ name, csum, token: Number(token), sealed: readFileSync(`${copy}.sealed`).toString('base64') });
  }
  return out;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  const go = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) go(p);
      else out.push(relative(dir, p));
    }
  };
  go(dir);
  return out.sort();
}

/** The directory holding the main archive: unmkinitramfs splits early (microcode) and main cpios. */
function mainDir(dir: string): string {
  return existsSync(join(dir, 'main')) ? join(dir, 'main') : dir;
}

export interface ImageChoice {
  /** Path of the image under the system root (e.g. /boot/firmware/initramfs8). */
  image: string;
  chosenBecause: string;
}

export interface InitramfsGathered {
  initramfs: Fact<InitramfsFacts>;
  keyMaterial: KeyMaterialFacts[];
}

export async function gatherInitramfs(opts: {
  runner: Runner;
  root: string;
  choice: Fact<ImageChoice>;
  /** The crypttab key-file field, which cryptsetup-initramfs copies into the image. */
  crypttabKeyFile: string | null;
  /** Tests each candidate key file against this volume's header. */
  keyOpens: (file: string) => Promise<number | null>;
}): Promise<InitramfsGathered> {
  const { choice } = opts;
  if (!choice.ok) return { initramfs: choice, keyMaterial: [] };
  const { image, chosenBecause } = choice.value;
  const path = under(opts.root, image);
  if (!existsSync(path)) {
    return { initramfs: missing(`'${image}' does not exist (${chosenBecause})`), keyMaterial: [] };
  }
  return withPrivateTmpfsDir(async (tmp) => {
    const out = join(tmp.path, 'image');
    const r = await opts.runner('unmkinitramfs', [path, out], { reject: false, timeoutMs: 120_000 });
    if (r.exitCode !== 0 || !existsSync(out)) {
      return {
        initramfs: unreadable<InitramfsFacts>(
          `unmkinitramfs '${image}' failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`,
        ),
        keyMaterial: [],
      };
    }
    const dir = mainDir(out);
    const files = walk(dir);
    const versions = installedKernels(dir);
    const stateDir = join(dir, 'var/lib/zymbit');
    const zymbitState = existsSync(stateDir) ? zymbitStateDigests(stateDir) : [];
    const keyFile = opts.crypttabKeyFile?.replace(/^\/+/, '');
    const candidates = files.filter((f) => !f.endsWith('.lock') && (KEY_NAME.test(f) || f === keyFile));
    const keyMaterial: KeyMaterialFacts[] = [];
    for (const f of candidates) {
      const slot = await opts.keyOpens(join(dir, f));
      keyMaterial.push({ where: 'initramfs', path: `/${f}`, opensSlot: slot, tried: true });
    }
    return {
      initramfs: known({
        image,
        chosenBecause,
        files,
        kernelVersions: versions,
        builtinModules: versions.flatMap((v) => builtinModules(dir, v) ?? []),
        zymbitState,
        tokenCopies: tokenCopies(dir, files),
      }),
      keyMaterial,
    };
  });
}
