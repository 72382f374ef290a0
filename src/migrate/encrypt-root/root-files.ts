// The two boot files encrypt-root switches besides crypttab: the root line of /etc/fstab and the
// root= word of the firmware's cmdline.txt. Pure text edits that change only the one field zkluks
// owns and keep every other byte (comments, spacing, other lines, line ends) exactly as it was.

/** The fstab line that mounts `/`: its device field, filesystem type and where the field sits. */
export interface FstabRoot {
  spec: string;
  fstype: string;
  /** Index of the line in the file's lines (split on '\n'). */
  line: number;
}

/** The first non-comment fstab line whose mount point is `/`, or null. */
export function findFstabRoot(fstab: string): FstabRoot | null {
  const lines = fstab.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const text = (lines[i] ?? '').replace(/\r$/, '');
    if (/^\s*(#|$)/.test(text)) continue;
    const fields = text.trim().split(/\s+/);
    if (fields[1] === '/') return { spec: fields[0] ?? '', fstype: fields[2] ?? '', line: i };
  }
  return null;
}

/** fstab with the root line's device field replaced by `spec`; every other byte unchanged. */
export function setFstabRoot(fstab: string, spec: string): string {
  const root = findFstabRoot(fstab);
  if (root === null) throw new Error('fstab has no line for /');
  const lines = fstab.split('\n');
  const line = lines[root.line] ?? '';
  const at = line.indexOf(root.spec);
  lines[root.line] = line.slice(0, at) + spec + line.slice(at + root.spec.length);
  return lines.join('\n');
}

/** The value of the last root= word on the kernel command line, or null. */
export function cmdlineRoot(cmdline: string): string | null {
  const words = cmdline.split(/\s+/).filter((w) => w.startsWith('root='));
  const last = words.at(-1);
  return last === undefined ? null : last.slice('root='.length);
}

/**
 * cmdline.txt with every root= word's value replaced by `spec` (the kernel uses the last one; all
 * are switched so none can name the plain root); everything else, line end included, unchanged.
 */
export function setCmdlineRoot(cmdline: string, spec: string): string {
  if (cmdlineRoot(cmdline) === null) throw new Error('cmdline.txt has no root= word');
  return cmdline.replace(/(^|\s)root=\S*/g, (_m, lead: string) => `${lead}root=${spec}`);
}
