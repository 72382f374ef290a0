// Loaded into zkluks with `node --import` by the crash harness: every file zkluks writes (the content
// of a new file, before it is renamed), renames, links or removes under ZKLUKS_SHIM_TREE is a boundary, counted in the same file as the
// shim's tool calls (ZKLUKS_SHIM_LOG). At call ZKLUKS_SHIM_AT it does what the shim does there:
// SIGKILL or SIGHUP to zkluks itself, before or after the file operation. No hook in zkluks.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const tree = process.env.ZKLUKS_SHIM_TREE;
const log = process.env.ZKLUKS_SHIM_LOG;
const at = Number(process.env.ZKLUKS_SHIM_AT ?? '0');
const mode = process.env.ZKLUKS_SHIM_MODE ?? 'count';

if (tree && log) {
  const original = {
    appendFileSync: fs.appendFileSync,
    readFileSync: fs.readFileSync,
  };
  const inTree = (p) => typeof p === 'string' && (p === tree || p.startsWith(`${tree}/`));
  const rel = (p) => p.slice(tree.length) || '/';
  /** Count one boundary; the signal to send before and after it (null: none). */
  const count = (label) => {
    original.appendFileSync(log, `fs ${label}\n`);
    const n = String(original.readFileSync(log, 'utf8'))
      .split('\n')
      .filter((l) => l !== '').length;
    if (n !== at) return [null, null];
    return (
      {
        'kill-before': ['SIGKILL', null],
        'kill-after': [null, 'SIGKILL'],
        'hup-before': ['SIGHUP', null],
        'hup-after': [null, 'SIGHUP'],
      }[mode] ?? [null, null]
    );
  };
  const around = (label, fn) => {
    const [before, after] = count(label);
    if (before) process.kill(process.pid, before);
    try {
      return fn();
    } finally {
      if (after) process.kill(process.pid, after);
    }
  };
  // One boundary per call zkluks makes: what fs does inside it (rmSync unlinks) is not another.
  let depth = 0;
  /** Wrap fs[name]; `which(args)` gives the label of a counted call, or null. */
  const wrap = (name, which) => {
    const real = fs[name];
    fs[name] = function (...args) {
      const label = depth > 0 ? null : which(args);
      if (label === null) return real.apply(this, args);
      return around(label, () => {
        depth++;
        try {
          return real.apply(this, args);
        } finally {
          depth--;
        }
      });
    };
  };
  wrap('writeFileSync', ([p]) => (inTree(p) ? `write ${rel(p)}` : null));
  wrap('renameSync', ([from, to]) => (inTree(to) ? `rename ${rel(from)} -> ${rel(to)}` : null));
  wrap('linkSync', ([from, to]) => (inTree(to) ? `link ${rel(from)} -> ${rel(to)}` : null));
  wrap('rmSync', ([p]) => (inTree(p) && fs.existsSync(p) ? `remove ${rel(p)}` : null));
  wrap('unlinkSync', ([p]) => (inTree(p) ? `remove ${rel(p)}` : null));
  wrap('symlinkSync', ([, p]) => (inTree(p) ? `symlink ${rel(p)}` : null));
  // Writes to a descriptor opened in the tree: the content of a temp file, before it is renamed.
  const openFds = new Map();
  const realOpen = fs.openSync;
  fs.openSync = function (p, ...rest) {
    const fd = realOpen.call(this, p, ...rest);
    if (inTree(p)) openFds.set(fd, p);
    return fd;
  };
  const realWrite = fs.writeFileSync;
  fs.writeFileSync = function (target, ...rest) {
    const p = typeof target === 'number' ? openFds.get(target) : undefined;
    if (p !== undefined) return around(`write ${rel(p)}`, () => realWrite.call(this, target, ...rest));
    return realWrite.call(this, target, ...rest);
  };
  const realClose = fs.closeSync;
  fs.closeSync = function (fd) {
    openFds.delete(fd);
    return realClose.call(this, fd);
  };
  syncBuiltinESMExports();
}
