// The boot-script templates, read from scripts/initramfs/ next to the running code: the package ships
// that directory beside dist/ (see package.json "files"), and the sources sit two levels below it.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ZkluksError } from '../errors.ts';

export type TemplateName = 'keyscript' | 'hook' | 'kernel-postinst';

const FILES: Record<TemplateName, string> = {
  keyscript: 'keyscript.sh.in',
  hook: 'hook.sh.in',
  'kernel-postinst': 'kernel-postinst.sh.in',
};

/** The directory holding the templates, or throws when the package is incomplete. */
export function templateDir(): string {
  const candidates = ['../scripts/initramfs/', '../../scripts/initramfs/'].map((rel) =>
    fileURLToPath(new URL(rel, import.meta.url)),
  );
  const found = candidates.find((dir) => existsSync(`${dir}${FILES.keyscript}`));
  if (found === undefined) {
    throw new ZkluksError(
      `Failed to find the zkluks boot-script templates: looked in ${candidates.join(', ')}`,
      {
        hint: 'install zkluks with its scripts/initramfs/ directory next to dist/ (npm install -g zkluks)',
      },
    );
  }
  return found;
}

export function readTemplate(name: TemplateName): string {
  return readFileSync(`${templateDir()}${FILES[name]}`, 'utf8');
}
