// The Ansible collection (ansible/) with Debian's ansible-core against localhost: the role and the
// zkluks.zkluks.volume module on real LUKS2 image files, the simulator for the Zymkey and a staged
// --root tree. The first run changes, the second changes nothing, check mode changes nothing, and a
// change zkluks refuses fails with zkluks's message and leaves the volume as it was.
import { execa } from 'execa';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle, nodeBin, repoRoot, zkluks } from '../helpers/cli.ts';
import { luksImage, type TestImage } from '../helpers/luks.ts';
import { stageZymbitRoot } from '../helpers/staged-root.ts';

const work = mkdtempSync(join(tmpdir(), 'zkluks-ansible-'));
const simState = join(work, 'sim');
const executable = join(work, 'bin/zkluks');
const env = { ZKLUKS_BACKEND: 'sim', ZKLUKS_SIM_STATE: simState };

beforeAll(async () => {
  // The collection as ansible finds it: <path>/ansible_collections/zkluks/zkluks.
  mkdirSync(join(work, 'collections/ansible_collections/zkluks'), { recursive: true });
  symlinkSync(join(repoRoot, 'ansible'), join(work, 'collections/ansible_collections/zkluks/zkluks'));
  mkdirSync(join(work, 'bin'));
  writeFileSync(executable, `#!/bin/sh\nexec '${nodeBin}' '${bundle}' "$@"\n`);
  chmodSync(executable, 0o755);
  expect((await zkluks(['sim', 'init', '--model', 'ZYMKEY4i'], { env })).exitCode).toBe(0);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A Pi's system tree (crypttab, Zymbit's zkunlockifs and state) for `--root`. */
function stagedRoot(): string {
  return stageZymbitRoot(mkdtempSync(join(work, 'root-')), '# <target> <source> <key> <options>\n');
}

interface TaskResult {
  changed?: boolean;
  failed?: boolean;
  msg?: string;
  state?: Record<string, unknown>;
  commands?: { command: string }[];
  diff?: unknown;
}

/** Runs a playbook; returns its exit code, the recap counts and the output. */
async function playbook(yaml: string, args: string[] = []) {
  const file = join(work, `play-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(file, yaml);
  const r = await execa('ansible-playbook', ['-i', 'localhost,', '-c', 'local', file, ...args], {
    reject: false,
    all: true,
    env: {
      ANSIBLE_COLLECTIONS_PATH: join(work, 'collections'),
      ANSIBLE_LOCAL_TEMP: join(work, 'tmp'),
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
      ANSIBLE_DEPRECATION_WARNINGS: '0',
    },
  });
  const recap =
    /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)\s+skipped=\d+\s+rescued=\d+\s+ignored=(\d+)/.exec(
      r.all ?? '',
    );
  if (!recap) throw new Error(`no PLAY RECAP in the output:\n${r.all}`);
  const [ok, changed, failed, ignored] = recap.slice(1).map(Number) as [number, number, number, number];
  return { exitCode: r.exitCode, stats: { ok, changed, failed, ignored }, raw: r.all ?? '' };
}

/** What a play saved of its registered `result` (see saveResult). */
const saved = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as TaskResult;
const saveResult = (variable: string, file: string) =>
  [
    `    - name: save the result`,
    `      ansible.builtin.copy: { content: "{{ ${variable} | to_json }}", dest: ${JSON.stringify(file)} }`,
    `      check_mode: false`,
    `      changed_when: false`,
  ].join('\n');

const header = async (img: TestImage) =>
  (await execa('cryptsetup', ['luksDump', '--dump-json-metadata', img.path])).stdout;

function moduleTask(name: string, img: TestImage, root: string, extra: Record<string, unknown>): string {
  const opts = {
    device: img.path,
    root,
    backend: 'sim',
    sim_state: simState,
    executable,
    update_initramfs: false,
    zkunlockifs: '/usr/sbin/zkunlockifs',
    ...extra,
  };
  return [
    `    - name: ${name}`,
    '      zkluks.zkluks.volume:',
    ...Object.entries(opts).map(([k, v]) => `        ${k}: ${JSON.stringify(v)}`),
    '      register: result',
    '      ignore_errors: true',
  ].join('\n');
}

const play = (tasks: string, file: string) =>
  `- hosts: localhost\n  gather_facts: false\n  tasks:\n${tasks}\n${saveResult('result', file)}\n`;

describe('ansible collection zkluks.zkluks', () => {
  it('documents the module (options and return values) and the fleet playbook parses', async () => {
    const ansibleEnv = { ANSIBLE_COLLECTIONS_PATH: join(work, 'collections'), ANSIBLE_NOCOLOR: '1' };
    const doc = await execa('ansible-doc', ['zkluks.zkluks.volume'], { env: ansibleEnv, all: true });
    for (const option of [
      'device',
      'state',
      'recovery_key',
      'escrow_recipient',
      'boot_files',
      'unlock_key',
    ]) {
      expect(doc.stdout).toMatch(new RegExp(`^[=-] ${option}\\b`, 'm'));
    }
    expect(doc.stdout).toContain('RETURN VALUES');
    const fleet = await execa(
      'ansible-playbook',
      ['--syntax-check', '-i', 'localhost,', join(repoRoot, 'ansible/playbooks/fleet.yml')],
      { env: ansibleEnv, all: true, reject: false },
    );
    expect(fleet.exitCode, fleet.all).toBe(0);
  }, 120_000);

  it('the role enrolls, keeps a recovery key, installs the boot files, runs the doctor and fetches the backups; a second run changes nothing', async () => {
    const img = await luksImage();
    const root = stagedRoot();
    const fetched = join(work, 'fetched');
    writeFileSync(join(img.dir, 'passphrase'), img.passphrase);
    const role = `- hosts: localhost
  gather_facts: false
  roles:
    - role: zkluks.zkluks.zkluks
      vars:
        zkluks_executable: ${JSON.stringify(executable)}
        zkluks_volume: ${JSON.stringify(img.path)}
        zkluks_unlock_key: ${JSON.stringify(img.passphrase)}
        zkluks_recovery_key_file: ${JSON.stringify(join(img.dir, 'recovery.txt'))}
        zkluks_header_backup: ${JSON.stringify(join(img.dir, 'header.img'))}
        zkluks_update_initramfs: false
        zkluks_zkunlockifs: /usr/sbin/zkunlockifs
        zkluks_root: ${JSON.stringify(root)}
        zkluks_backend: sim
        zkluks_sim_state: ${JSON.stringify(simState)}
        zkluks_fetch_dir: ${JSON.stringify(fetched)}
        # A staged tree has no initramfs image: the doctor's verdict is shown, not enforced.
        zkluks_doctor_fail_on_error: false
  post_tasks:
${saveResult('zkluks_volume_result', join(img.dir, 'volume.json'))}
${saveResult('zkluks_doctor_result', join(img.dir, 'doctor.json'))}
`;
    const first = await playbook(role);
    expect(first.exitCode, first.raw).toBe(0);
    expect(first.stats.failed).toBe(0);
    const enroll = saved(join(img.dir, 'volume.json'));
    expect(enroll.changed).toBe(true);
    expect(enroll.state).toMatchObject({
      enrolled: true,
      zymkey_slot: 1,
      recovery_slot: 2,
      boot_files: true,
    });
    // The passphrase never reaches the output.
    expect(first.raw).not.toContain(img.passphrase);
    expect(first.raw).not.toContain(readFileSync(join(img.dir, 'recovery.txt'), 'utf8').trim());
    expect(statSync(join(img.dir, 'recovery.txt')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toMatch(
      /keyscript=\/lib\/cryptsetup\/scripts\/zkluks/,
    );
    const doctor = saved(join(img.dir, 'doctor.json')) as TaskResult & { stdout: string };
    expect(JSON.parse(doctor.stdout).findings.length).toBeGreaterThan(0);
    expect(existsSync(join(fetched, 'localhost/header.img'))).toBe(true);
    expect(readFileSync(join(fetched, 'localhost/recovery.txt'), 'utf8')).toBe(
      readFileSync(join(img.dir, 'recovery.txt'), 'utf8'),
    );
    const list = JSON.parse((await zkluks(['list', img.path, '--json'], { env })).stdout);
    // The passphrase slot has no token: list calls it unknown (only a key given in a run proves it).
    expect(list.slots.map((s: { kind: string }) => s.kind)).toEqual(['unknown', 'zymkey', 'recovery']);

    const before = await header(img);
    const crypttab = readFileSync(join(root, 'etc/crypttab'), 'utf8');
    const second = await playbook(role);
    expect(second.exitCode, second.raw).toBe(0);
    expect(second.stats).toMatchObject({ changed: 0, failed: 0 });
    expect(saved(join(img.dir, 'volume.json')).changed).toBe(false);
    expect(await header(img)).toBe(before);
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe(crypttab);
  }, 600_000);

  it('check mode reports the changes and makes none', async () => {
    const img = await luksImage();
    const root = stagedRoot();
    const before = await header(img);
    const r = await playbook(
      play(
        moduleTask('enroll', img, root, {
          unlock_key: img.passphrase,
          recovery_key_file: join(img.dir, 'recovery.txt'),
          boot_files: 'present',
        }),
        join(img.dir, 'result.json'),
      ),
      ['--check', '--diff'],
    );
    expect(r.exitCode, r.raw).toBe(0);
    expect(r.stats.ignored).toBe(0);
    const task = saved(join(img.dir, 'result.json'));
    expect(task.changed).toBe(true);
    expect(
      task.commands!.some((c) => c.command.includes(' enroll ') && c.command.includes('--dry-run')),
    ).toBe(true);
    expect(task.diff).toBeDefined();
    expect(await header(img)).toBe(before);
    expect(existsSync(join(img.dir, 'recovery.txt'))).toBe(false);
    expect(readFileSync(join(root, 'etc/crypttab'), 'utf8')).toBe('# <target> <source> <key> <options>\n');
    expect(r.raw).not.toContain(img.passphrase);
  }, 600_000);

  it('a change zkluks refuses fails with its message and leaves the volume as it was', async () => {
    const img = await luksImage();
    const root = stagedRoot();
    // Enrolled with a recovery key, then the passphrase slot removed: the recovery key is the only
    // way in without the Zymkey.
    const setup = await playbook(
      play(
        moduleTask('enroll', img, root, {
          unlock_key: img.passphrase,
          recovery_key_file: join(img.dir, 'recovery.txt'),
        }),
        join(img.dir, 'setup.json'),
      ),
    );
    expect(setup.exitCode, setup.raw).toBe(0);
    expect(saved(join(img.dir, 'setup.json')).changed).toBe(true);
    await execa('cryptsetup', ['luksKillSlot', '--batch-mode', img.path, '0'], { stdin: 'ignore' });
    const before = await header(img);

    const r = await playbook(
      play(
        moduleTask('drop the recovery key', img, root, { recovery_key: 'absent' }),
        join(img.dir, 'refused.json'),
      ),
    );
    expect(r.stats.ignored).toBe(1);
    const task = saved(join(img.dir, 'refused.json'));
    expect(task.failed).toBe(true);
    expect(task.changed).toBeFalsy();
    expect(task.msg).toMatch(/refus|no other way in|lock/i);
    expect(await header(img)).toBe(before);
  }, 600_000);
});
