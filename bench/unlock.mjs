// bench/unlock: time from the sealed token in the LUKS2 header to a key cryptsetup accepts, for the
// zkluks keyslot (unseal with zkunlockifs, pbkdf2 with 1000 iterations) beside a keyslot made with
// cryptsetup's defaults (argon2id, benchmarked to ~2 s of CPU, as Zymbit's own script creates).
// Both paths run the same programs the boot keyscript runs, on a real LUKS2 image file, with the
// simulator standing in for the Zymkey. Run: node bench/unlock.mjs [--runs N]
//
// The numbers are wall-clock times of one run on this machine; argon2id's cost is set by
// cryptsetup's own benchmark on the machine that adds the slot, and both sides are noisy under load.
import { Buffer } from 'node:buffer';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const bundle = join(repo, 'dist/zkluks.mjs');
const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
const passphrase = 'bench passphrase';

function run(file, args, options = {}) {
  const r = spawnSync(file, args, { ...options, maxBuffer: 1 << 24 });
  if (r.status !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed (${r.status}): ${r.stderr?.toString() ?? ''}`);
  }
  return r.stdout;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeMs(fn) {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const dir = mkdtempSync(join(tmpdir(), 'zkluks-bench-'));
try {
  execFileSync(process.execPath, [join(repo, 'scripts/bundle.mjs')], { stdio: 'ignore' });
  const image = join(dir, 'disk.img');
  const sim = join(dir, 'sim');
  const tools = join(dir, 'tools');
  const env = { ...process.env, ZKLUKS_BACKEND: 'sim', ZKLUKS_SIM_STATE: sim };
  writeFileSync(image, '');
  truncateSync(image, 64 * 1024 * 1024);
  run(
    'cryptsetup',
    [
      'luksFormat',
      '--batch-mode',
      '--type',
      'luks2',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-file',
      '-',
      image,
    ],
    { input: passphrase },
  );
  run(process.execPath, [bundle, 'sim', 'init'], { env });
  run(process.execPath, [bundle, 'sim', 'install-tools', tools], { env });
  run(process.execPath, [bundle, 'enroll', image, '--unlock-key-file=-', '--no-recovery-key'], {
    env,
    input: passphrase,
  });
  // Zymbit's standalone tools run with zkifc stopped (as in the initramfs).
  run(process.execPath, [bundle, 'sim', 'zkifc', 'stop'], { env });

  // A slot with cryptsetup's defaults, as `cryptsetup luksFormat` / Zymbit's script make it.
  const defaultKey = join(dir, 'default.key');
  writeFileSync(defaultKey, 'default-kdf passphrase', { mode: 0o600 });
  const addStart = process.hrtime.bigint();
  run('cryptsetup', ['luksAddKey', '--batch-mode', '--key-slot', '5', '--key-file', '-', image, defaultKey], {
    input: passphrase,
  });
  const addMs = Number(process.hrtime.bigint() - addStart) / 1e6;
  const header = JSON.parse(run('cryptsetup', ['luksDump', '--dump-json-metadata', image]).toString());
  const zToken = Object.entries(header.tokens).find(([, t]) => t.type === 'zkluks-zymkey');
  const [tokenId, token] = zToken;
  const zSlot = token.keyslots[0];
  const kdf5 = header.keyslots['5'].kdf;

  const sealedFile = join(dir, 'sealed');
  const zkluksPath = () => {
    // The keyscript's path: token export, base64 -d, zkunlockifs, open --test-passphrase.
    const json = JSON.parse(run('cryptsetup', ['token', 'export', '--token-id', tokenId, image]).toString());
    writeFileSync(sealedFile, Buffer.from(json.sealed, 'base64'), { mode: 0o600 });
    const key = run(join(tools, 'zkunlockifs'), [sealedFile], { env });
    run('cryptsetup', ['open', '--test-passphrase', '--key-slot', zSlot, '--key-file', '-', image], {
      input: key,
    });
  };
  const defaultPath = () => {
    run('cryptsetup', ['open', '--test-passphrase', '--key-slot', '5', '--key-file', '-', image], {
      input: 'default-kdf passphrase',
    });
  };
  const unsealOnly = () => run(join(tools, 'zkunlockifs'), [sealedFile], { env });
  let zKey;
  const zkluksKdfOnly = () => {
    zKey ??= unsealOnly();
    run('cryptsetup', ['open', '--test-passphrase', '--key-slot', zSlot, '--key-file', '-', image], {
      input: zKey,
    });
  };

  zkluksPath(); // warm caches
  const z = [];
  const d = [];
  const u = [];
  const k = [];
  for (let i = 0; i < runs; i++) {
    z.push(timeMs(zkluksPath));
    u.push(timeMs(unsealOnly));
    k.push(timeMs(zkluksKdfOnly));
    d.push(timeMs(defaultPath));
  }
  const zm = median(z);
  const dm = median(d);
  const fmt = (v) => `${v.toFixed(0).padStart(6)} ms`;
  const list = (vs) => vs.map((v) => v.toFixed(0)).join(', ');
  console.log(
    `bench/unlock: sealed token -> verified key, median of ${runs} runs (all runs in ms in brackets)`,
  );
  console.log(
    `  zkluks slot ${zSlot} (pbkdf2, 1000 iterations), token export + zkunlockifs (sim) + test-passphrase:`,
  );
  console.log(
    `    ${fmt(zm)}  [${list(z)}]  of which zkunlockifs alone: ${fmt(median(u)).trim()} (mostly Node start-up of the simulator),`,
  );
  console.log(`    test-passphrase on the pbkdf2 slot alone: ${fmt(median(k)).trim()}`);
  console.log(
    `  default slot 5 (${kdf5.type}, time ${kdf5.time ?? kdf5.iterations}, memory ${kdf5.memory ?? '-'} KiB, parallel ${kdf5.cpus ?? '-'}), test-passphrase:`,
  );
  console.log(`    ${fmt(dm)}  [${list(d)}]`);
  console.log(
    `  ratio default/zkluks: ${(dm / zm).toFixed(1)}x for the whole path, ${(dm / median(k)).toFixed(0)}x for the key check alone`,
  );
  console.log(`  (adding the default slot took ${addMs.toFixed(0)} ms, its KDF benchmark included)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
