// zkluks initramfs install/check/remove as an admin runs them, on a staged system tree and a real
// LUKS2 image file (no update-initramfs: --no-update).
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { zkluks } from '../helpers/cli.ts';
import { luksImage, type TestImage } from '../helpers/luks.ts';
import { stageZymbitRoot } from '../helpers/staged-root.ts';

const CRYPTTAB =
  '# <target> <source> <key> <options>\n\ncryptroot /dev/mmcblk0p2 none luks,discard,keyslot=0\ndata /dev/sda1 /etc/data.key luks\n';
let root: string;
let volume: TestImage;

beforeEach(async () => {
  root = stageZymbitRoot(mkdtempSync(join(tmpdir(), 'zkluks-cli-initramfs-')), CRYPTTAB);
  volume = await luksImage();
  await execa('cryptsetup', ['token', 'import', volume.path], {
    input: JSON.stringify({ type: 'zkluks-zymkey', keyslots: ['0'], version: 1, sealed: 'AAAA' }),
  });
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const install = (...options: string[]) =>
  zkluks(['initramfs', 'install', volume.path, '--root', root, '--no-update', ...options]);
const uuid = async () => (await execa('cryptsetup', ['luksUUID', volume.path])).stdout.trim();

describe('zkluks initramfs', () => {
  it('--dry-run prints the plan and changes nothing', async () => {
    const r = await install('--dry-run', '--name', 'root_crypt');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('would create /lib/cryptsetup/scripts/zkluks');
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe(CRYPTTAB);
    expect(existsSync(join(root, 'lib'))).toBe(false);
  });

  it('install writes the files and the crypttab line; check passes on them; remove puts crypttab back byte for byte', async () => {
    // The existing 'cryptroot' line names another device: install refuses to take its name.
    const clash = await install('--name', 'cryptroot');
    expect(clash.exitCode).toBe(3);
    expect(clash.stderr).toMatch(/Refusing to take over the crypttab line 'cryptroot'/);

    const r = await install('--name', 'root_crypt', '--timeout', '15', '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.plan.volume).toEqual({ name: 'root_crypt', uuid: await uuid(), device: volume.path });
    expect(out.plan.steps.map((s: { kind: string }) => s.kind)).toContain('write-crypttab');
    const crypttab = readFileSync(join(root, 'etc/crypttab'), 'utf8');
    expect(crypttab).toBe(
      `${CRYPTTAB}root_crypt UUID=${await uuid()} none luks,initramfs,keyscript=/lib/cryptsetup/scripts/zkluks\n`,
    );
    expect(readFileSync(join(root, 'etc/zkluks/crypttab.orig'), 'utf8')).toBe(CRYPTTAB);
    expect(statSync(join(root, 'etc/zkluks/crypttab.orig')).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, 'lib/cryptsetup/scripts/zkluks')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(root, 'lib/cryptsetup/scripts/zkluks'), 'utf8')).toContain(
      'UNLOCK=${ZKLUKS_UNLOCK:-/usr/sbin/zkunlockifs}',
    );
    expect(readFileSync(join(root, 'etc/zkluks/boot.conf'), 'utf8')).toContain('ZKLUKS_TIMEOUT=15\n');

    // Files and crypttab are right; only the image is missing (no update-initramfs ran).
    const check = await zkluks(['initramfs', 'check', 'root_crypt', '--root', root, '--json']);
    expect(check.exitCode).toBe(1);
    const report = JSON.parse(check.stdout);
    expect(report.files.map((f: { state: string }) => f.state)).toEqual([
      'current',
      'current',
      'current',
      'present',
    ]);
    expect(
      report.findings
        .filter((f: { level: string }) => f.level === 'error')
        .map((f: { message: string }) => f.message),
    ).toEqual(['no initramfs image found']);

    const removed = await zkluks(['initramfs', 'remove', '--root', root, '--no-update']);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe(CRYPTTAB);
    for (const f of [
      'lib/cryptsetup/scripts/zkluks',
      'etc/initramfs-tools/hooks/zkluks',
      'etc/kernel/postinst.d/zz-zkluks',
      'etc/zkluks/crypttab.orig',
    ]) {
      expect(existsSync(join(root, f)), f).toBe(false);
    }
  });

  it('install updates the existing line of the device in place and drops keyslot=', async () => {
    writeFileSync(
      join(root, 'etc/crypttab'),
      `# x\ncryptroot UUID=${await uuid()} none luks,discard,keyslot=0\n`,
    );
    const r = await install();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('dropped crypttab options: keyslot=0');
    expect(r.stdout).not.toContain('note:');
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe(
      `# x\ncryptroot UUID=${await uuid()} none luks,initramfs,discard,keyscript=/lib/cryptsetup/scripts/zkluks\n`,
    );
  });

  it('install says in its summary that it replaces a key file and raises tries=1', async () => {
    writeFileSync(
      join(root, 'etc/crypttab'),
      `cryptroot UUID=${await uuid()} /etc/root.key luks,tries=1\r\n`,
    );
    const r = await install();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("note: crypttab key file '/etc/root.key' becomes 'none'");
    expect(r.stdout).toContain('note: crypttab tries=1 becomes tries=2');
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe(
      `cryptroot UUID=${await uuid()} none luks,initramfs,tries=2,keyscript=/lib/cryptsetup/scripts/zkluks\n`,
    );
  });

  it('refuses with exit 3 when zkunlockifs is not installed', async () => {
    rmSync(join(root, 'usr/sbin/zkunlockifs'));
    const r = await install();
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/zkunlockifs is not installed/);
    expect(r.stderr).toMatch(/^hint: /m);
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe(CRYPTTAB);
  });

  it('reports where the passphrase prompt will appear: the last console= of cmdline.txt', async () => {
    mkdirSync(join(root, 'boot/firmware'), { recursive: true });
    writeFileSync(
      join(root, 'boot/firmware/cmdline.txt'),
      'console=serial0,115200 console=tty1 root=/dev/mapper/cryptroot\n',
    );
    writeFileSync(join(root, 'boot/firmware/config.txt'), 'auto_initramfs=1\n');
    writeFileSync(join(root, 'boot/firmware/kernel8.img'), '');
    const r = await zkluks(['initramfs', 'check', volume.path, '--root', root, '--json']);
    const report = JSON.parse(r.stdout);
    expect(report.console.device).toBe('tty1');
    expect(report.console.summary).toMatch(
      /appears on tty1 \(the screen and keyboard \(HDMI\)\).*not on serial0/,
    );
    expect(report.bootImages.images[0]).toMatchObject({ image: '/boot/firmware/initramfs8', exists: false });
  });
});
