// The figures beside the peers, written to bench/RESULTS.md: the boot path (the cryptsetup floor, the
// zkluks keyscript with a stand-in unseal and with the simulator's tools, the header read it cannot
// skip and so its own overhead, a slot with cryptsetup's default KDF, clevis with a Tang server on
// 127.0.0.1), the bytes each adds to an initramfs, the CLI's start-up, the processes the keyscript
// forks, its base64 decoding against a forked base64, and peak memory. Medians of interleaved runs;
// wall-clock times on a machine that may be shared, so ratios matter more than milliseconds.
// clevis, clevis-luks and tang come from Debian's archive (installed here when missing, root only);
// clevis-initramfs is only downloaded and unpacked, so the host's initramfs hooks stay as they are.
import { execa } from 'execa';
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, hostname, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { buildInitramfs } from '../test/boot/initramfs-build.ts';
import { testKernel, type TestKernel } from '../test/boot/kernel.ts';
import { installBusyboxApplets } from '../test/helpers/busybox.ts';
import { repoRoot } from '../test/helpers/cli.ts';

const argv = process.argv.slice(2);
const smoke = argv.includes('--smoke');
/** Only the initramfs sizes, printed (not written to bench/RESULTS.md). */
const sizesOnly = argv.includes('--sizes');
const runs = smoke ? 1 : Number(argv[argv.indexOf('--runs') + 1] ?? 0) || 10;
const bundle = join(repoRoot, 'dist', 'zkluks.mjs');
const cache = join(repoRoot, '.cache', 'bench');
mkdirSync(cache, { recursive: true });
const W = mkdtempSync(join(cache, 'work-'));
const PASS = 'bench passphrase';

function run(file: string, args: string[], opts: SpawnSyncOptions = {}): Buffer {
  const r = spawnSync(file, args, { maxBuffer: 1 << 26, ...opts });
  if (r.status !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr?.toString() ?? ''}`,
    );
  }
  return r.stdout as Buffer;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const cmd = (file: string, ...args: string[]) => [file, ...args];
const pipeline = (script: string) => ['sh', '-c', script];

/** Time each command `runs` times, interleaved; returns medians in ms. */
function timeAll(cmds: Record<string, string[]>, env: NodeJS.ProcessEnv): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (let i = 0; i < runs + 1; i++) {
    for (const [name, [file, ...args]] of Object.entries(cmds)) {
      const t = process.hrtime.bigint();
      run(file as string, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (i > 0) (samples[name] ??= []).push(ms); // the first round warms caches
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

/** Peak RSS (KiB) of the largest process in the tree that runs `file args`. */
function peakRss(file: string, args: string[], env: NodeJS.ProcessEnv): number {
  const out = spawnSync('/usr/bin/time', ['-f', 'RSS %M', file, ...args], { env, encoding: 'utf8' });
  return Number(/RSS (\d+)/.exec(out.stderr)?.[1] ?? NaN);
}

function installPeers(): string | null {
  const missing = ['clevis', 'clevis-luks', 'tang'].filter(
    (p) =>
      spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout !==
      'install ok installed',
  );
  if (missing.length > 0) {
    const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      encoding: 'utf8',
    });
    if (r.status !== 0)
      return `apt-get install ${missing.join(' ')} failed: ${r.stderr.trim().split('\n').pop()}`;
  }
  return null;
}

/** clevis-initramfs, unpacked under .cache/bench (never installed). */
function clevisInitramfs(): string {
  const dir = join(cache, 'clevis-initramfs');
  if (existsSync(join(dir, 'usr'))) return dir;
  const dl = mkdtempSync(join(cache, 'dl-'));
  run('apt-get', ['download', '-q', 'clevis-initramfs'], { cwd: dl });
  const deb = readdirSync(dl).find((f) => f.endsWith('.deb')) as string;
  run('dpkg-deb', ['-x', join(dl, deb), dir]);
  rmSync(dl, { recursive: true, force: true });
  return dir;
}

/** A Tang server on 127.0.0.1: tangd (inetd-style) behind a small TCP listener. */
async function startTang(): Promise<{ url: string; stop: () => void }> {
  const keys = join(W, 'tang');
  mkdirSync(keys);
  run('/usr/libexec/tangd-keygen', [keys]);
  const server = spawn(
    process.execPath,
    [
      '-e',
      `const net=require('net'),{spawn}=require('child_process');
       const s=net.createServer((c)=>{const t=spawn('/usr/libexec/tangd',[${JSON.stringify(keys)}]);c.pipe(t.stdin);t.stdout.pipe(c);t.on('error',()=>c.destroy());c.on('error',()=>t.kill());});
       s.listen(0,'127.0.0.1',()=>console.log(s.address().port));`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<string>((resolve) =>
    server.stdout.once('data', (d) => resolve(String(d).trim())),
  );
  return { url: `http://127.0.0.1:${port}`, stop: () => server.kill() };
}

/**
 * Bytes of `image` made deterministic: unpacked, mtimes zeroed, sorted newc cpio, zstd -9; and the
 * paths it holds.
 */
function deterministicSize(image: string): { bytes: number; files: Set<string> } {
  const dir = mkdtempSync(join(W, 'unpack-'));
  run('unmkinitramfs', [image, dir]);
  const root = existsSync(join(dir, 'main')) ? join(dir, 'main') : dir;
  run('find', [root, '-exec', 'touch', '-h', '-d', '@0', '{}', '+']);
  const r = run('sh', [
    '-c',
    `cd '${root}' && find . -print0 | LC_ALL=C sort -z | cpio --quiet -o -0 -H newc --reproducible | zstd -q -9 -c | wc -c`,
  ]);
  // Merged /usr or not, a file counts by the path it is reached by.
  const files = new Set(
    run('sh', ['-c', `cd '${root}' && find . ! -type d`])
      .toString()
      .split('\n')
      .map((f) => f.replace(/^\.\/usr\/(lib|sbin|bin)\//, './$1/')),
  );
  rmSync(dir, { recursive: true, force: true });
  return { bytes: Number(r.toString().trim()), files };
}

/**
 * An image that lacks files of the cryptsetup-only one, or the hook's own files, was built from a
 * tree mkinitramfs did not see as staged: its size says nothing about what the hook adds.
 */
function checkAdds(name: string, base: Set<string>, image: Set<string>, own: string[]): void {
  const lost = [...base].filter((f) => !image.has(f));
  const absent = own.filter((f) => !image.has(f));
  if (lost.length > 0 || absent.length > 0) {
    throw new Error(
      `the ${name} image is no superset of the cryptsetup-only one (missing ${[...absent, ...lost].slice(0, 5).join(', ')}${absent.length + lost.length > 5 ? ', …' : ''})`,
    );
  }
}

/**
 * A system tree for mkinitramfs: cryptsetup for a LUKS root, MODULES=list, zstd. Merged /usr, as on
 * the host: buildInitramfs overlays only /usr/lib, /usr/sbin, /etc and /var/lib, so a file installed
 * under the tree's /lib (the keyscript) reaches mkinitramfs only through the lib -> usr/lib link.
 */
function stage(dir: string, uuid: string): string {
  for (const d of [
    'boot',
    'usr/lib',
    'usr/sbin',
    'var/lib',
    'etc/initramfs-tools/hooks',
    'etc/cryptsetup-initramfs',
  ]) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  symlinkSync('usr/lib', join(dir, 'lib'));
  writeFileSync(join(dir, 'etc/crypttab'), `cryptroot UUID=${uuid} none luks,initramfs\n`);
  writeFileSync(join(dir, 'etc/cryptsetup-initramfs/conf-hook'), 'CRYPTSETUP=y\n');
  writeFileSync(
    join(dir, 'etc/initramfs-tools/initramfs.conf'),
    'MODULES=list\nBUSYBOX=auto\nCOMPRESS=zstd\nCOMPRESSLEVEL=1\nDEVICE=\nNFSROOT=auto\nRUNSIZE=10%\nFSTYPE=auto\nUMASK=0077\n',
  );
  return dir;
}

/** Zymbit's zkunlockifs is not installable here: a stand-in script takes its place in `tree`. */
function standInZkunlockifs(tree: string): void {
  mkdirSync(join(tree, 'usr/sbin'), { recursive: true });
  writeFileSync(join(tree, 'usr/sbin/zkunlockifs'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
}

async function initramfsSizes(kernel: TestKernel, uuid: string, env: NodeJS.ProcessEnv) {
  const base = stage(join(W, 'stage-base'), uuid);
  const zk = stage(join(W, 'stage-zkluks'), uuid);
  mkdirSync(join(zk, 'var/lib/zymbit'), { recursive: true });
  writeFileSync(join(zk, 'var/lib/zymbit/zkenv.conf'), 'ZK_GPIO_WAKE_PIN=516\n');
  standInZkunlockifs(zk);
  const installed = await execa(
    process.execPath,
    [bundle, 'initramfs', 'install', `UUID=${uuid}`, '--root', zk, '--no-update'],
    {
      env,
      reject: false,
    },
  );
  if (installed.exitCode !== 0) throw new Error(`zkluks initramfs install: ${installed.stderr}`);
  const cl = stage(join(W, 'stage-clevis'), uuid);
  // clevis-initramfs's hook and boot scripts, staged into the tree's /etc/initramfs-tools.
  const unpacked = join(clevisInitramfs(), 'usr/share/initramfs-tools');
  cpSync(unpacked, join(cl, 'etc/initramfs-tools'), { recursive: true });
  const sizes: Record<string, number> = {};
  const files: Record<string, Set<string>> = {};
  for (const [name, tree] of Object.entries({ base, zkluks: zk, clevis: cl })) {
    const out = join(W, `initrd-${name}`);
    await buildInitramfs({ kernel, stage: tree, out });
    ({ bytes: sizes[name]!, files: files[name]! } = deterministicSize(out));
  }
  const baseFiles = files.base as Set<string>;
  checkAdds('zkluks', baseFiles, files.zkluks as Set<string>, [
    './lib/cryptsetup/scripts/zkluks',
    './sbin/zkunlockifs',
  ]);
  checkAdds('clevis', baseFiles, files.clevis as Set<string>, []);
  return sizes;
}

interface Forks {
  forks: number;
  /** Every program run, in order. */
  programs: string[];
  /** Programs that took the place of a shell process (the keyscript or a subshell): no fork of their own. */
  replacing: string[];
}

/** Processes the keyscript forks on its success path, and the programs it runs, under `shell`. */
function forks(shell: string[], env: NodeJS.ProcessEnv, keyscript: string): Forks {
  const trace = join(W, 'strace');
  run(
    'sh',
    [
      '-c',
      `strace -f -qq -z -e trace=execve,clone,clone3,fork,vfork -e signal=none -o '${trace}' ${shell.join(' ')} '${keyscript}' none >/dev/null`,
    ],
    { env },
  );
  const lines = readFileSync(trace, 'utf8').split('\n');
  const isFork = (l: string) => /^\d+ +(?:clone3?|v?fork)\(/.test(l) && !l.includes('CLONE_THREAD');
  // A process that forked before it ran a program was a shell (the keyscript or a subshell of it).
  const forked = new Set<string>();
  const programs: string[] = [];
  const replacing: string[] = [];
  let shellPid: string | undefined;
  for (const l of lines) {
    const pid = /^(\d+) /.exec(l)?.[1];
    if (pid === undefined) continue;
    if (isFork(l)) forked.add(pid);
    const program = /^\d+ +execve\("(?:[^"]*\/)?([^"/]+)"/.exec(l)?.[1];
    if (program === undefined) continue;
    if (shellPid === undefined) {
      shellPid = pid; // the shell itself
      continue;
    }
    programs.push(program);
    if (pid === shellPid || forked.has(pid)) replacing.push(program);
  }
  return { forks: lines.filter(isFork).length, programs, replacing };
}

const machine = () => {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return `${hostname()}: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, Node ${process.version}, load average ${load} at the start`;
};

async function sizesMain(): Promise<void> {
  // clevis-initramfs's hook needs clevis and its tang pin on the host.
  const peers = installPeers();
  if (peers !== null) throw new Error(peers);
  const image = join(W, 'disk.img');
  writeFileSync(image, '');
  run('truncate', ['-s', '64M', image]);
  run('cryptsetup', ['luksFormat', '--type', 'luks2', '--batch-mode', '--key-file', '-', image], {
    input: PASS,
  });
  const uuid = run('cryptsetup', ['luksUUID', image]).toString().trim();
  const sizes = await initramfsSizes(await testKernel(), uuid, process.env);
  const added = (n: number) => `${((n - sizes.base!) / 1024).toFixed(1)} KiB`;
  console.log(
    `cryptsetup-only ${sizes.base} B; + zkluks hook ${sizes.zkluks} B (${added(sizes.zkluks!)}); + clevis-initramfs ${sizes.clevis} B (${added(sizes.clevis!)})`,
  );
}

async function main(): Promise<void> {
  if (sizesOnly) return sizesMain();
  const started = new Date();
  const host = machine();
  const peers = smoke ? 'not run in a smoke run' : installPeers();
  const image = join(W, 'disk.img');
  const sim = join(W, 'sim');
  const tools = join(W, 'tools');
  const env = { ...process.env, ZKLUKS_BACKEND: 'sim', ZKLUKS_SIM_STATE: sim };
  writeFileSync(image, '');
  run('truncate', ['-s', '64M', image]);
  const luks = ['--batch-mode', '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000'];
  run('cryptsetup', ['luksFormat', '--type', 'luks2', ...luks, '--key-file', '-', image], { input: PASS });
  const uuid = run('cryptsetup', ['luksUUID', image]).toString().trim();
  run(process.execPath, [bundle, 'sim', 'init'], { env });
  run(process.execPath, [bundle, 'sim', 'install-tools', tools], { env });
  run(process.execPath, [bundle, 'enroll', image, '--unlock-key-file=-', '--no-recovery-key'], {
    env,
    input: PASS,
  });
  const header = JSON.parse(run('cryptsetup', ['luksDump', '--dump-json-metadata', image]).toString());
  const [, token] = Object.entries(
    header.tokens as Record<string, { type: string; keyslots: string[]; sealed: string }>,
  ).find(([, t]) => t.type === 'zkluks-zymkey') as [string, { keyslots: string[]; sealed: string }];
  const zSlot = token.keyslots[0] as string;
  const sealedFile = join(W, 'sealed');
  writeFileSync(sealedFile, Buffer.from(token.sealed, 'base64'), { mode: 0o600 });
  // Zymbit's standalone tools (and the simulator's) run with zkifc stopped, as in the initramfs.
  run(process.execPath, [bundle, 'sim', 'zkifc', 'stop'], { env });
  const keyFile = join(W, 'zkluks.key');
  writeFileSync(keyFile, run(join(tools, 'zkunlockifs'), [sealedFile], { env }), { mode: 0o600 });
  // The stand-in unseal: prints the key at once (the Zymkey's own time taken out).
  const standin = join(W, 'standin-zkunlockifs');
  writeFileSync(standin, `#!/bin/sh\nexec cat '${keyFile}'\n`);
  chmodSync(standin, 0o755);
  // A slot with cryptsetup's defaults (argon2id, benchmarked), as Zymbit's own script makes it.
  const defaultKey = join(W, 'default.key');
  writeFileSync(defaultKey, 'default-kdf passphrase', { mode: 0o600 });
  run('cryptsetup', ['luksAddKey', '--batch-mode', '--key-slot', '5', '--key-file', '-', image, defaultKey], {
    input: PASS,
  });
  const kdf5 = JSON.parse(run('cryptsetup', ['luksDump', '--dump-json-metadata', image]).toString()).keyslots[
    '5'
  ].kdf;

  // The keyscript as `initramfs install` renders it, run as cryptroot would, busybox applets first.
  const ksStage = join(W, 'ks-stage');
  mkdirSync(join(ksStage, 'etc'), { recursive: true });
  writeFileSync(join(ksStage, 'etc/crypttab'), `cryptroot UUID=${uuid} none luks,initramfs\n`);
  standInZkunlockifs(ksStage);
  run(process.execPath, [bundle, 'initramfs', 'install', `UUID=${uuid}`, '--root', ksStage, '--no-update'], {
    env,
  });
  const keyscript = join(W, 'keyscript');
  cpSync(join(ksStage, 'lib/cryptsetup/scripts/zkluks'), keyscript);
  const bb = join(W, 'busybox');
  await installBusyboxApplets(bb);
  mkdirSync(join(W, 'sys/i2c-1'), { recursive: true });
  const copyDir = join(W, 'token-copy');
  /** `copy`: the image holds a copy of the token under the header's current checksum. */
  const ksEnv = (unlock: string, dir: string, copy = true): NodeJS.ProcessEnv => ({
    PATH: `${bb}:${tools}:/usr/sbin:/usr/bin:/sbin:/bin`,
    CRYPTTAB_NAME: 'cryptroot',
    CRYPTTAB_SOURCE: image,
    CRYPTTAB_TRIED: '0',
    ZKLUKS_SIM_STATE: sim,
    ZKLUKS_UNLOCK: unlock,
    ZKLUKS_MODPROBE: '/bin/true',
    ZKLUKS_RUN_DIR: join(W, dir, 'run'),
    ZKLUKS_WORK_DIR: join(W, dir, 'work'),
    ZKLUKS_TOKEN_COPY_DIR: copy ? copyDir : join(W, 'no-copy'),
    ZKLUKS_CONF: '/nonexistent',
    ZKLUKS_ZKENV: '/nonexistent',
    ZKLUKS_I2C_SYSFS: join(W, 'sys'),
    ZKLUKS_KMSG: '/dev/null',
    ZKLUKS_ASKPASS: '/bin/false',
  });
  const test = (slot: string) =>
    `cryptsetup open --test-passphrase --key-slot ${slot} --key-file - '${image}'`;

  let clevisNote = peers;
  let tang: { url: string; stop: () => void } | null = null;
  const boot: Record<string, string[]> = {
    floor: cmd('cryptsetup', 'open', '--test-passphrase', '--key-slot', zSlot, '--key-file', keyFile, image),
    // The same pipe as the keyscript rows (sh -c, env -i, busybox), with the key in hand: what the
    // harness itself adds to the floor.
    'floor-pipe': pipeline(`env -i busybox cat '${keyFile}' | ${test(zSlot)}`),
    'keyscript-copy': pipeline(
      `env -i ${envLine(ksEnv(standin, 'a'))} busybox sh '${keyscript}' none | ${test(zSlot)}`,
    ),
    'keyscript-header': pipeline(
      `env -i ${envLine(ksEnv(standin, 'c', false))} busybox sh '${keyscript}' none | ${test(zSlot)}`,
    ),
    'keyscript-sim': pipeline(
      `env -i ${envLine(ksEnv('zkunlockifs', 'b'))} busybox sh '${keyscript}' none | ${test(zSlot)}`,
    ),
    // The header read that the image's copy saves while the header is unchanged.
    luksDump: cmd('cryptsetup', 'luksDump', '--dump-json-metadata', image),
    'default-kdf': cmd(
      'cryptsetup',
      'open',
      '--test-passphrase',
      '--key-slot',
      '5',
      '--key-file',
      defaultKey,
      image,
    ),
  };
  if (peers === null) {
    try {
      tang = await startTang();
      const passFile = join(W, 'pass');
      writeFileSync(passFile, PASS, { mode: 0o600 });
      run('clevis', [
        'luks',
        'bind',
        '-y',
        '-d',
        image,
        '-s',
        '7',
        '-k',
        passFile,
        'tang',
        JSON.stringify({ url: tang.url }),
      ]);
      // Same KDF as the zkluks slot, so that only the way to the key differs.
      const clevisKey = join(W, 'clevis.key');
      writeFileSync(clevisKey, run('clevis', ['luks', 'pass', '-d', image, '-s', '7']), { mode: 0o600 });
      run('cryptsetup', ['luksConvertKey', ...luks, '--key-slot', '7', '--key-file', clevisKey, image]);
      rmSync(clevisKey);
      boot.clevis = pipeline(`clevis luks pass -d '${image}' -s 7 | ${test('7')}`);
    } catch (error) {
      clevisNote = `clevis with Tang failed: ${(error as Error).message.split('\n')[0]}`;
    }
  }
  // The scratch directory is there at boot (the hook ships it in the image, mode 0700).
  for (const dir of ['a', 'b', 'c', 'fork-busybox', 'fork-dash', 'fork-header']) {
    mkdirSync(join(W, dir, 'work'), { recursive: true, mode: 0o700 });
  }
  // The image's copy of the token, made as the hook makes it (the keyscript's own build-time mode),
  // once the header has its last change (clevis's slot and token above).
  run('busybox', ['sh', keyscript, 'none'], {
    env: {
      PATH: `${bb}:/usr/sbin:/usr/bin:/sbin:/bin`,
      CRYPTTAB_NAME: 'cryptroot',
      CRYPTTAB_SOURCE: image,
      ZKLUKS_MAKE_COPY: copyDir,
    },
  });
  const bootMs = timeAll(boot, env);

  const cli: Record<string, string[]> = {
    'node -e 0': cmd(process.execPath, '-e', '0'),
    'zkluks --version': cmd(process.execPath, bundle, '--version'),
    'zkluks --help': cmd(process.execPath, bundle, '--help'),
    'zkluks list --json': cmd(process.execPath, bundle, 'list', '--json', image),
    'luksDump --dump-json-metadata': cmd('cryptsetup', 'luksDump', '--dump-json-metadata', image),
    luksUUID: cmd('cryptsetup', 'luksUUID', image),
    ...(boot.clevis ? { 'clevis luks list': cmd('clevis', 'luks', 'list', '-d', image) } : {}),
  };
  const cliMs = timeAll(cli, env);
  tang?.stop();

  const decodeUs = base64Decode(keyscript, bb);
  const forkCounts = {
    busybox: forks(['busybox', 'sh'], ksEnv(standin, 'fork-busybox'), keyscript),
    dash: forks(
      ['dash'],
      { ...ksEnv(standin, 'fork-dash'), PATH: `${tools}:/usr/sbin:/usr/bin:/sbin:/bin` },
      keyscript,
    ),
    header: forks(['busybox', 'sh'], ksEnv(standin, 'fork-header', false), keyscript),
  };
  // Each keyscript row measures the path it names, or the bench says so and stops.
  if (
    forkCounts.busybox.programs.includes('cryptsetup') ||
    !forkCounts.header.programs.includes('cryptsetup')
  ) {
    throw new Error(
      `the keyscript did not take the path measured: ${forkCounts.busybox.programs.join(', ')} (copy) / ${forkCounts.header.programs.join(', ')} (header)`,
    );
  }
  const rss = {
    'zkluks --version': peakRss(process.execPath, [bundle, '--version'], env),
    'zkluks --help': peakRss(process.execPath, [bundle, '--help'], env),
    'zkluks list --json': peakRss(process.execPath, [bundle, 'list', '--json', image], env),
    'node -e 0': peakRss(process.execPath, ['-e', '0'], env),
    "keyscript, from the image's copy (largest process)": peakRss(
      'busybox',
      ['sh', keyscript, 'none'],
      ksEnv(standin, 'a'),
    ),
    'keyscript, reading the header (largest process: cryptsetup)': peakRss(
      'busybox',
      ['sh', keyscript, 'none'],
      ksEnv(standin, 'c', false),
    ),
    'busybox sh alone': peakRss('busybox', ['sh', '-c', ':'], env),
  };

  let sizes: Record<string, number> | null = null;
  let sizeNote = '';
  if (!smoke) {
    try {
      sizes = await initramfsSizes(await testKernel(), uuid, env);
    } catch (error) {
      sizeNote = `initramfs sizes not measured: ${(error as Error).message.split('\n')[0]}`;
    }
  }

  const f = (ms: number | undefined) => (ms === undefined ? 'n/a' : `${ms.toFixed(0)} ms`);
  const x = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? 'n/a' : `${(a / b).toFixed(2)}×`;
  const floor = bootMs.floor;
  const pipeFloor = bootMs['floor-pipe'];
  const ownOverhead =
    bootMs['keyscript-copy'] === undefined || pipeFloor === undefined
      ? undefined
      : bootMs['keyscript-copy'] - pipeFloor;
  const headerOverhead =
    bootMs['keyscript-header'] === undefined || pipeFloor === undefined || bootMs.luksDump === undefined
      ? undefined
      : bootMs['keyscript-header'] - pipeFloor - bootMs.luksDump;
  const ms1 = (v: number | undefined) => (v === undefined ? 'n/a' : `${v.toFixed(1)} ms`);
  const us = (v: number | undefined) => (v === undefined ? 'n/a' : `${v.toFixed(0)} µs`);
  const node0 = cliMs['node -e 0'];
  const listFloor = (node0 ?? 0) + (cliMs['luksDump --dump-json-metadata'] ?? 0) + (cliMs.luksUUID ?? 0);
  const lines = [
    '# zkluks bench results',
    '',
    `Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${smoke ? 'smoke run (1 run each)' : `medians of ${runs} interleaved runs`} (\`npm run bench\`).`,
    `Machine: ${host}.`,
    '',
    '## Boot path: from the header to a key cryptsetup accepted',
    '',
    '| path | median | vs floor |',
    '| --- | --- | --- |',
    `| floor: \`cryptsetup open --test-passphrase --key-file KEY\` on the zkluks slot (pbkdf2, 1000 iterations) | ${f(floor)} | 1× |`,
    `| the floor through the pipe the keyscript rows use (\`sh -c\`, \`env -i\`, busybox \`cat KEY |\`): the harness's own share | ${f(pipeFloor)} | ${x(pipeFloor, floor)} |`,
    `| zkluks keyscript (busybox sh), stand-in unseal that prints the key at once, piped into that test; the image's copy of the token is current (every boot between header changes) | ${f(bootMs['keyscript-copy'])} | ${x(bootMs['keyscript-copy'], floor)} |`,
    `| the same, the header changed since the image was built (after a rotate, until the next rebuild): the keyscript reads the header | ${f(bootMs['keyscript-header'])} | ${x(bootMs['keyscript-header'], floor)} |`,
    `| zkluks keyscript with the simulator's zkunlockifs (Node), the image's copy current, piped into that test | ${f(bootMs['keyscript-sim'])} | ${x(bootMs['keyscript-sim'], floor)} |`,
    `| \`cryptsetup luksDump --dump-json-metadata\` alone (the header read that the image's copy saves) | ${f(bootMs.luksDump)} | ${x(bootMs.luksDump, floor)} |`,
    `| slot with cryptsetup's default KDF (${kdf5.type}, ${kdf5.memory ?? '-'} KiB), key in hand | ${f(bootMs['default-kdf'])} | ${x(bootMs['default-kdf'], floor)} |`,
    `| \`clevis luks pass\` with Tang on 127.0.0.1, piped into the same test on its slot (same KDF) | ${boot.clevis ? f(bootMs.clevis) : `n/a (${clevisNote})`} | ${x(bootMs.clevis, floor)} |`,
    '',
    `The keyscript's own overhead (keyscript with the stand-in − the floor through the same pipe): ${ms1(ownOverhead)} from the image's copy (${x(bootMs['keyscript-copy'], pipeFloor)} that floor); reading the header, ${ms1(headerOverhead)} beyond the luksDump.`,
    '',
    `Processes the keyscript forks on its success path: ${forkCounts.busybox.forks} under busybox sh, ${forkCounts.dash.forks} under dash (${forkCounts.header.forks} under busybox sh when it reads the header). Programs run (busybox sh, in order): ${forkCounts.busybox.programs.join(', ')}; of these, ${forkCounts.busybox.replacing.map((p) => `\`${p}\``).join(' and ') || 'none'} took the place of a shell process (no fork of their own).`,
    '',
    `Base64 of a 500-byte sealed key under busybox sh, per decode (median of ${runs} loops of ${DECODES}): the keyscript's builtins (\`b64_decode\`) ${us(decodeUs.builtins)}, forking \`base64 -d\` ${us(decodeUs.fork)}.`,
    '',
    '## Initramfs bytes added over a cryptsetup-only image (same kernel; unpacked, mtimes zeroed, sorted cpio, zstd -9)',
    '',
    ...(sizes
      ? [
          '| image | bytes | added |',
          '| --- | --- | --- |',
          `| cryptsetup-initramfs only | ${sizes.base} | — |`,
          `| + zkluks hook (keyscript, boot.conf, Zymbit state; Zymbit's own zkunlockifs not installable here) | ${sizes.zkluks} | ${((sizes.zkluks! - sizes.base!) / 1024).toFixed(1)} KiB |`,
          `| + clevis-initramfs (Debian's) | ${sizes.clevis} | ${((sizes.clevis! - sizes.base!) / 1024 / 1024).toFixed(2)} MiB |`,
        ]
      : [smoke ? 'Not measured in a smoke run.' : sizeNote]),
    '',
    '## CLI start-up',
    '',
    '| command | median | ratio |',
    '| --- | --- | --- |',
    `| \`node -e 0\` | ${f(node0)} | 1× |`,
    `| \`zkluks --version\` | ${f(cliMs['zkluks --version'])} | ${x(cliMs['zkluks --version'], node0)} \`node -e 0\` |`,
    `| \`zkluks --help\` | ${f(cliMs['zkluks --help'])} | ${x(cliMs['zkluks --help'], node0)} \`node -e 0\` |`,
    `| \`zkluks list --json VOLUME\` | ${f(cliMs['zkluks list --json'])} | ${x(cliMs['zkluks list --json'], listFloor)} (\`node -e 0\` + its luksDump + luksUUID = ${f(listFloor)}) |`,
    `| \`clevis luks list -d VOLUME\` | ${f(cliMs['clevis luks list'])} | ${x(cliMs['clevis luks list'], node0)} \`node -e 0\` |`,
    '',
    '## Peak memory (maximum resident set size)',
    '',
    '| process | peak RSS |',
    '| --- | --- |',
    ...Object.entries(rss).map(([k, v]) => `| ${k} | ${(v / 1024).toFixed(1)} MiB |`),
    '',
  ];
  const text = lines.join('\n');
  if (!smoke) writeFileSync(join(repoRoot, 'bench', 'RESULTS.md'), text);
  console.log(text);
  console.log(smoke ? 'bench: smoke run ok' : 'bench: wrote bench/RESULTS.md');
}

const DECODES = 100;

/**
 * Microseconds per decode of a 500-byte blob's base64 under busybox sh: the keyscript's own b64_decode
 * (taken from the rendered keyscript) and a forked `base64 -d`, as the keyscript did before.
 */
function base64Decode(keyscript: string, bb: string): { builtins: number; fork: number } {
  const fn = /^b64_decode\(\) \{\n[\s\S]*?\n\}\n/m.exec(readFileSync(keyscript, 'utf8'))?.[0];
  if (fn === undefined) throw new Error('no b64_decode in the rendered keyscript');
  const dir = mkdtempSync(join(W, 'base64-'));
  writeFileSync(join(dir, 'decoder.sh'), `NL='\n'\n${fn}`);
  writeFileSync(join(dir, 'sealed.b64'), randomBytes(500).toString('base64'));
  const loop = (body: string) =>
    `. '${dir}/decoder.sh'\nread -r s <'${dir}/sealed.b64'\ni=0\nwhile [ $i -lt ${DECODES} ]; do\n${body}\ni=$((i + 1))\ndone\n`;
  const env = { PATH: `${bb}:/usr/bin:/bin` };
  const ms = timeAll(
    {
      builtins: cmd('busybox', 'sh', '-c', loop(`b64_decode "$s" >'${dir}/out'`)),
      fork: cmd('busybox', 'sh', '-c', loop(`base64 -d >'${dir}/out' 2>/dev/null <<EOF\n$s\nEOF`)),
      empty: cmd('busybox', 'sh', '-c', loop(`: >'${dir}/out'`)),
    },
    env,
  );
  const per = (v: number | undefined) => (((v ?? NaN) - (ms.empty ?? 0)) * 1000) / DECODES;
  return { builtins: per(ms.builtins), fork: per(ms.fork) };
}

function envLine(env: NodeJS.ProcessEnv): string {
  return Object.entries(env)
    .map(([k, v]) => `${k}='${String(v)}'`)
    .join(' ');
}

try {
  await main();
} finally {
  rmSync(W, { recursive: true, force: true });
}
