// The pieces of `hint:` lines that depend on where zkluks works: on the running system a command
// runs as it is; for a system tree (--root DIR) a command that acts on the system inside the tree runs
// through chroot, and zkluks's own commands carry --root. Every zkluks command line a hint names is
// checked against the CLI's own command definitions by the hint tests (test/hints/).

/** Quote one shell word the way hints do: plain words stay bare, others go in single quotes. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./=:@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function live(root: string): boolean {
  return root === '/' || root === '';
}

/** A system command for the tree at `root`: `chroot DIR …` unless the tree is the running system. */
export function inSystem(root: string, command: string): string {
  return live(root) ? command : `chroot ${shellWord(root)} ${command}`;
}

/**
 * The one rebuild command: makes the initramfs of every kernel the tree has (-c creates images that
 * are missing, where -u only refreshes those that exist).
 */
export function rebuildInitramfs(root: string): string {
  return inSystem(root, 'update-initramfs -c -k all');
}

/** `zkluks WORDS…` with `--root DIR` when the tree is not the running system. */
export function zkluksCommand(root: string, ...words: string[]): string {
  return ['zkluks', ...words, ...(live(root) ? [] : ['--root', shellWord(root)])].join(' ');
}

/** A file of the system at `root`, as the admin names it from the host. */
export function systemFile(root: string, path: string): string {
  return live(root) ? path : `${root.replace(/\/+$/, '')}${path}`;
}
