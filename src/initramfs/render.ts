// Fill a boot-script template: every `@NAME@` placeholder gets its value. A placeholder without a
// value, or a value no placeholder asks for, is a mistake and throws, so a half-rendered script can
// never reach an initramfs.
import { ZkluksError } from '../errors.ts';

const PLACEHOLDER = /@([A-Z][A-Z0-9_]*)@/g;

/** The placeholder names a template uses, in order of first appearance. */
export function placeholders(template: string): string[] {
  return [...new Set([...template.matchAll(PLACEHOLDER)].map((m) => m[1] ?? ''))];
}

export function render(template: string, vars: Readonly<Record<string, string>>, what = 'template'): string {
  const wanted = placeholders(template);
  const missing = wanted.filter((name) => !Object.hasOwn(vars, name));
  if (missing.length > 0) {
    throw new ZkluksError(
      `Failed to render ${what}: no value for ${missing.map((n) => `'@${n}@'`).join(', ')}`,
    );
  }
  const unknown = Object.keys(vars).filter((name) => !wanted.includes(name));
  if (unknown.length > 0) {
    throw new ZkluksError(
      `Failed to render ${what}: it has no placeholder ${unknown.map((n) => `'@${n}@'`).join(', ')}`,
    );
  }
  const out = template.replace(PLACEHOLDER, (_, name: string) => vars[name] ?? '');
  const left = placeholders(out);
  if (left.length > 0) {
    throw new ZkluksError(`Failed to render ${what}: placeholder '@${left[0]}@' left over after rendering`);
  }
  return out;
}
