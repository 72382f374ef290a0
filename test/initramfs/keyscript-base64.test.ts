// Shell tier: the keyscript's base64 decoder (b64_decode, shell builtins only), taken from the rendered
// keyscript and run by busybox sh and dash, against coreutils' `base64 -d` on random blobs of every
// length from 1 to 600 bytes and on every byte value, and on text the keyscript refuses.
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyscriptVars } from '../../src/initramfs/boot-files.ts';
import { render } from '../../src/initramfs/render.ts';
import { readTemplate } from '../../src/initramfs/templates.ts';

const W = mkdtempSync(join(tmpdir(), 'zkluks-base64-'));
const bb = join(W, 'busybox');
const decoder = join(W, 'b64_decode.sh');

/** Blobs of every length 1..600 (all padding cases), every byte value, and runs of NUL and 0xff. */
const blobs: Buffer[] = [
  ...Array.from({ length: 600 }, (_, i) => randomBytes(i + 1)),
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)),
  Buffer.alloc(64),
  Buffer.alloc(65, 0xff),
  Buffer.from('\n'),
  Buffer.from('%s%d\\n'),
];

/** Text the keyscript refuses as a sealed key; `base64 -d` refuses most of it too. */
const INVALID = [
  'not%base64!',
  'QUJD\nQUJD', // a line break
  'QUJD QUJD',
  'QQ', // missing padding
  'QQ=',
  'QUJ',
  'Q===',
  '====',
  'QU=D', // padding inside
  'QQ==QQ==',
  'QUJD====',
  '=QUJ',
  'QUJD-_==', // base64url
  'QUJD\u00e9',
  '*',
  '????',
  '$(x)',
];
/** Of those, the forms some `base64 -d` accepts but a header's sealed key never has. */
const STRICTER_THAN_BASE64 = new Set(['QUJD\nQUJD', 'QQ==QQ==', 'QUJD====', '====', '']);

beforeAll(async () => {
  mkdirSync(bb);
  await execa('busybox', ['--install', '-s', bb]);
  const keyscript = render(readTemplate('keyscript'), keyscriptVars({ zkunlockifs: '/sbin/zkunlockifs' }));
  const fn = /^b64_decode\(\) \{\n[\s\S]*?\n\}\n/m.exec(keyscript)?.[0];
  expect(fn).toBeDefined();
  // The function and what it needs of the keyscript (NL), nothing else.
  writeFileSync(decoder, `NL='\n'\n${fn}`);
}, 60_000);

afterAll(() => rmSync(W, { recursive: true, force: true }));

/** Decodes each line of `inputs` with b64_decode under `shell`; output and status of each. */
async function decodeAll(
  shell: string,
  name: string,
  inputs: string[],
): Promise<Array<{ out: Buffer; status: number }>> {
  const dir = join(W, `${shell}-${name}`);
  mkdirSync(dir);
  inputs.forEach((text, i) => writeFileSync(join(dir, `${i}.in`), text));
  // One shell for all of them; each input is read whole (it may hold a line break).
  const driver = `. '${decoder}'
i=0
while [ -e "${dir}/$i.in" ]; do
	s=$(cat "${dir}/$i.in"; echo .)
	s=\${s%.}
	b64_decode "$s" >"${dir}/$i.out"
	echo $? >"${dir}/$i.status"
	i=$((i + 1))
done
`;
  const argv: [string, string[]] =
    shell === 'busybox' ? ['busybox', ['sh', '-c', driver]] : ['dash', ['-c', driver]];
  const path = [shell === 'busybox' ? bb : null, '/usr/bin', '/bin'].filter((p) => p !== null).join(':');
  await execa(argv[0], argv[1], { env: { PATH: path }, extendEnv: false, timeout: 120_000 });
  return inputs.map((_, i) => ({
    out: readFileSync(join(dir, `${i}.out`)),
    status: Number(readFileSync(join(dir, `${i}.status`), 'utf8')),
  }));
}

const references = new Map<string, Buffer | null>();
/** coreutils' `base64 -d` on `text`: its output, or null when it refuses (run once per text). */
async function reference(text: string): Promise<Buffer | null> {
  if (!references.has(text)) {
    const r = await execa('/usr/bin/base64', ['-d'], {
      input: text,
      encoding: 'buffer',
      stripFinalNewline: false,
      reject: false,
    });
    references.set(text, r.exitCode === 0 ? Buffer.from(r.stdout) : null);
  }
  return references.get(text) as Buffer | null;
}

describe.each(['busybox', 'dash'])('the keyscript base64 decoder under %s', (shell) => {
  it('writes exactly the bytes base64 -d does, for every length 1..600 and every byte value', async () => {
    const texts = blobs.map((b) => b.toString('base64'));
    const results = await decodeAll(shell, 'valid', texts);
    let compared = 0;
    for (const [i, text] of texts.entries()) {
      const want = await reference(text);
      expect(want?.equals(blobs[i] as Buffer)).toBe(true);
      const got = results[i] as { out: Buffer; status: number };
      expect(got.status, `${text.length} characters`).toBe(0);
      expect(got.out.equals(want as Buffer), `blob ${i} (${(blobs[i] as Buffer).length} bytes)`).toBe(true);
      compared++;
    }
    // Every padding case and every character at every position of a group came by.
    expect(new Set(texts.map((t) => t.length - t.replace(/=+$/, '').length))).toEqual(new Set([0, 1, 2]));
    for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') {
      for (let pos = 0; pos < 4; pos++) {
        expect(texts.some((t) => [...t].some((x, j) => x === c && j % 4 === pos))).toBe(true);
      }
    }
    console.log(`b64_decode under ${shell}: ${compared} blobs equal to base64 -d`);
  }, 180_000);

  it('ignores the bits padding leaves over, as base64 -d does', async () => {
    const texts = ['QR==', 'QUK=', 'QUJE', '//==', '+/8='];
    const results = await decodeAll(shell, 'slack', texts);
    for (const [i, text] of texts.entries()) {
      expect(results[i]?.status).toBe(0);
      expect(results[i]?.out.equals((await reference(text)) as Buffer), text).toBe(true);
    }
  });

  it('refuses what base64 -d refuses, and the loose forms it accepts, writing nothing', async () => {
    const texts = [...INVALID, ''];
    const results = await decodeAll(shell, 'invalid', texts);
    for (const [i, text] of texts.entries()) {
      expect(results[i]?.status, JSON.stringify(text)).toBe(1);
      expect(results[i]?.out.length, JSON.stringify(text)).toBe(0);
      if (!STRICTER_THAN_BASE64.has(text)) expect(await reference(text), JSON.stringify(text)).toBeNull();
    }
  });
});
