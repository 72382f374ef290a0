// bench/encrypt-rate: seconds per GiB of the in-place encryption the encrypt-root boot runs, on this
// machine: a plain ext4 image file of --mib MiB (its filesystem 32 MiB smaller, as after the
// shrink) encrypted with exactly the encrypting boot's command, `cryptsetup reencrypt --encrypt
// --reduce-device-size 32M` (data shift, LUKS2, pbkdf2 keyslot). Run: node bench/encrypt-rate.mjs
// [--mib N] [--runs N]
//
// The figure depends on the disk and the CPU's AES speed: on a Raspberry Pi the SD card's write rate
// usually dominates. Wall-clock times of whole runs; noisy under load, so the median is reported.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const mib = arg('--mib', 512);
const runs = arg('--runs', 3);

function run(file, args) {
  const r = spawnSync(file, args, { maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout.toString();
}

const dir = mkdtempSync(join(tmpdir(), 'zkluks-bench-encrypt-'));
const key = join(dir, 'recovery.key');
writeFileSync(key, 'bench recovery key', { mode: 0o600 });
const times = [];
try {
  for (let i = 0; i < runs; i++) {
    const img = join(dir, 'root.img');
    rmSync(img, { force: true });
    writeFileSync(img, '');
    truncateSync(img, mib * 2 ** 20);
    run('mkfs.ext4', ['-q', '-F', img, `${mib - 32}M`]);
    const start = process.hrtime.bigint();
    run('cryptsetup', [
      'reencrypt',
      '--encrypt',
      '--batch-mode',
      '--type',
      'luks2',
      '--reduce-device-size',
      '32M',
      '--key-slot',
      '0',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-file',
      key,
      img,
    ]);
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const sorted = [...times].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)];
const perGiB = (median * 1024) / mib;
console.log(`encrypt-rate: ${mib} MiB image, ${runs} runs: ${times.map((t) => t.toFixed(2)).join(' ')} s`);
console.log(`encrypt-rate: ${perGiB.toFixed(1)} s per GiB (median), ${(mib / median).toFixed(0)} MiB/s`);
